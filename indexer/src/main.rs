use clap::Parser;
use corral_indexer::cli::{Args, Command};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    init_logging();
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

/// Sends the indexer's own logs to stderr as JSON lines; `CORRAL_LOG` sets the level
/// (`error`, `warn`, `info` (default), `debug`, `trace`).
fn init_logging() {
    let level = std::env::var("CORRAL_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .init();
}
