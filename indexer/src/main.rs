use clap::Parser;
use corral_indexer::cli::Args;

fn main() {
    let _args = Args::parse();
    eprintln!("corral-indexer: ingest and the query API are not built yet; see `corral-indexer --help`");
    std::process::exit(2);
}
