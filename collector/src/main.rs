use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Parser;
use corral_collector::cli::{Args, SinkKind};
use corral_collector::config::CollectorConfig;
use corral_collector::http;
use corral_collector::kafka_sink::KafkaSink;
use corral_collector::metrics::Metrics;
use corral_collector::pipeline::{Collector, RecordBuilder};
use corral_collector::sink::{Sink, StdoutSink};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = Args::parse();
    corral_collector::logging::init();
    if let Err(error) = run(&args) {
        tracing::error!(error = %format!("{error:#}"), "corral-collector stopped");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => CollectorConfig::load(path)?,
        None => CollectorConfig::default(),
    };
    let node = match args.node.clone() {
        Some(node) => node,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| corral_schema::fields::UNKNOWN.to_owned()),
    };
    let metadata = corral_collector::kube_provider::provider_for(&args.metadata, &node)?;
    let builder = RecordBuilder::new(node, &config, metadata);
    match args.sink {
        SinkKind::Stdout => drive(args, &config, builder, StdoutSink::new(std::io::stdout())),
        SinkKind::Kafka => {
            let brokers = args
                .brokers
                .as_deref()
                .context("--sink kafka needs --brokers (or CORRAL_BROKERS)")?;
            let sink = KafkaSink::connect(brokers, &args.topic, &config.kafka_producer)?;
            drive(args, &config, builder, sink)
        }
    }
}

/// Runs the collector with `sink` until done (`--once`) or until SIGTERM/SIGINT.
fn drive<S: Sink + 'static>(
    args: &Args,
    config: &CollectorConfig,
    builder: RecordBuilder,
    sink: S,
) -> anyhow::Result<()> {
    let mut collector = Collector::new(args.log_globs(), &args.data_dir, config, builder, sink)
        .with_context(|| format!("cannot start with data dir {}", args.data_dir.display()))?;
    if args.once {
        collector.run_once()?;
        return Ok(());
    }
    let metrics = Arc::new(Metrics::new());
    let mut collector = collector.with_metrics(metrics.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let worker_stop = stop.clone();
    // The process ends when the collector thread does: an error that stops reading must not
    // leave a process that answers "ready" and reads nothing.
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = std::thread::spawn(move || {
        let result = collector.run(&worker_stop);
        let _ = ended_tx.send(());
        result
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(http::serve(listener, metrics, async {
            let _ = done_rx.await;
        }));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = ended_rx => {}
        }
        let _ = done_tx.send(());
        let _ = server.await;
        anyhow::Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the collector thread panicked"))??;
    Ok(())
}
