//! `logq`: the engineer's and auditor's view of corral (DESIGN §5).

use clap::Parser;

/// Shows one request across every service, in time order, from corral's indexers (TUI and CLI).
#[derive(Debug, Parser)]
#[command(name = "logq", version, about, long_about = None)]
struct Args {}

fn main() {
    let _args = Args::parse();
    eprintln!("logq: queries are not built yet; see `logq --help`");
    std::process::exit(2);
}
