use clap::Parser;
use corral_collector::cli::Args;

fn main() {
    let _args = Args::parse();
    eprintln!("corral-collector: the tailing pipeline is not built yet; see `corral-collector --help`");
    std::process::exit(2);
}
