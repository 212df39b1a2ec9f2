use clap::Parser;
use corral_indexer::cli::{Args, Command};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    corral_collector::logging::init();
    let result = match &args.command {
        Command::Serve(serve) => corral_indexer::app::serve(serve),
        Command::Standalone(standalone) => corral_indexer::app::standalone(standalone),
    };
    if let Err(error) = result {
        tracing::error!(error = %format!("{error:#}"), "corral-indexer stopped");
        eprintln!("corral-indexer: {error:#}");
        std::process::exit(1);
    }
}
