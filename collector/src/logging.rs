//! The binaries' own logs: JSON lines on stderr, level from `CORRAL_LOG` (`error`, `warn`,
//! `info` (default), `debug`, `trace`, `off`). Shared by `corral-collector` and `corral-indexer`.

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init() {
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
