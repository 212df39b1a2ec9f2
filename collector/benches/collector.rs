//! Collector benchmark (`make bench`): the whole read → merge → parse → enrich → serialize path
//! over a generated corpus of kubelet-layout CRI files, next to parse-only ceilings of simd-json
//! and serde_json measured on the same lines in the same run.
//!
//! Corpus: `CORRAL_BENCH_LINES` lines (default 1,000,000) of realistic JSON (300–600 bytes),
//! ~3 % written as CRI partial chunks, across 10 pods.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use corral_collector::config::CollectorConfig;
use corral_collector::kafka_sink::KafkaSink;
use corral_collector::metadata::PathProvider;
use corral_collector::pipeline::{Collector, RecordBuilder};
use corral_collector::sink::StdoutSink;
use corral_demo::corpus::write_cri_logs;
use corral_tests::bench::{cpu_seconds, peak_rss_kib};
use simd_json::prelude::ValueAsObject;

const PODS: usize = 10;

/// The collector binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let lines: usize = std::env::var("CORRAL_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = tempfile::Builder::new()
        .prefix("corral-bench-")
        .tempdir()
        .expect("temp dir");
    let started = Instant::now();
    let corpus = write_cri_logs(root.path(), PODS, lines);
    println!(
        "collector bench: {} CRI lines ({:.1}% partial chunks), {:.1} MiB in {PODS} files, generated in {:.1} s",
        lines,
        100.0 * corpus.partial_lines as f64 / lines as f64,
        mib(corpus.bytes),
        started.elapsed().as_secs_f64()
    );

    // Whole path, single-threaded, into a sink that serializes every envelope.
    let config = CollectorConfig::default();
    let builder = RecordBuilder::new("bench-node".into(), &config, Arc::new(PathProvider));
    let globs = vec![format!("{}/pods/*/*/*.log", root.path().display())];
    let mut collector = Collector::new(
        globs,
        &root.path().join("data"),
        &config,
        builder,
        StdoutSink::new(std::io::sink()),
    )
    .expect("collector");
    let cpu_before = cpu_seconds();
    let wall = Instant::now();
    let stats = collector.run_once().expect("run");
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    assert_eq!(stats.records, lines as u64, "every line becomes one record");
    let peak = peak_rss_kib();
    println!(
        "whole path (read → merge → parse → enrich → serialize): {:.2} s wall, {:.2} s CPU → {:.0} lines/s, {:.1} MiB/s per core",
        wall,
        cpu,
        lines as f64 / cpu,
        mib(corpus.bytes) / cpu
    );
    println!("peak RSS of the whole path: {:.1} MiB", peak as f64 / 1024.0);

    // The same whole path with every built-in redaction rule on (mask), next to it.
    let redacting = CollectorConfig::parse_with_env_key(&builtin_rules(), None).expect("built-in rules");
    let builder = RecordBuilder::new("bench-node".into(), &redacting, Arc::new(PathProvider));
    let globs = vec![format!("{}/pods/*/*/*.log", root.path().display())];
    let mut collector = Collector::new(
        globs,
        &root.path().join("data-redact"),
        &redacting,
        builder,
        StdoutSink::new(std::io::sink()),
    )
    .expect("collector");
    let cpu_before = cpu_seconds();
    let stats = collector.run_once().expect("run");
    let cpu_redact = cpu_seconds() - cpu_before;
    assert_eq!(stats.records, lines as u64);
    println!(
        "whole path with the 6 built-in [[redact]] rules on: {:.2} s CPU → {:.1} MiB/s per core, {:+.1} % CPU next to off ({:.2} s)",
        cpu_redact,
        mib(corpus.bytes) / cpu_redact,
        100.0 * (cpu_redact / cpu - 1.0),
        cpu
    );

    // The same corpus into a real Kafka-protocol broker (tansu, another process on this
    // machine), every record acknowledged before the run ends.
    let broker = corral_tests::broker::Broker::start();
    broker.create_topic(corral_schema::fields::TOPIC, 4);
    let sink = KafkaSink::connect(
        &broker.bootstrap_servers(),
        corral_schema::fields::TOPIC,
        &Default::default(),
    )
    .expect("kafka sink");
    let builder = RecordBuilder::new("bench-node".into(), &config, Arc::new(PathProvider));
    let globs = vec![format!("{}/pods/*/*/*.log", root.path().display())];
    let mut collector =
        Collector::new(globs, &root.path().join("data-kafka"), &config, builder, sink).expect("collector");
    let cpu_before = cpu_seconds();
    let wall_kafka = Instant::now();
    let stats = collector.run_once().expect("run");
    let positions = collector.positions();
    drop(collector);
    let wall_kafka = wall_kafka.elapsed().as_secs_f64();
    let cpu_kafka = cpu_seconds() - cpu_before;
    assert_eq!(stats.records, lines as u64);
    let undelivered: u64 = positions.iter().map(|p| p.size - p.offset).sum();
    assert_eq!(undelivered, 0, "every record acknowledged by the broker");
    println!(
        "collector → broker (acks=all, idempotent, zstd): {:.2} s wall → {:.0} records/s, {:.1} MiB/s; collector CPU {:.2} s = {:.1} CPU s per GiB (stdout sink, same run: {:.1} CPU s per GiB)",
        wall_kafka,
        lines as f64 / wall_kafka,
        mib(corpus.bytes) / wall_kafka,
        cpu_kafka,
        cpu_kafka / (mib(corpus.bytes) / 1024.0),
        cpu / (mib(corpus.bytes) / 1024.0)
    );
    println!(
        "peak RSS of the collector process after both runs: {:.1} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
    drop(broker);

    // Parse-only ceilings on the same application lines (the JSON of the full CRI lines).
    let sample: Vec<Vec<u8>> = json_sample(root.path(), 200_000);
    let sample_bytes: u64 = sample.iter().map(|l| l.len() as u64).sum();
    let mut copies = sample.clone();
    let t = Instant::now();
    let mut keys = 0usize;
    for line in &mut copies {
        let value = simd_json::to_borrowed_value(line).expect("valid JSON");
        keys += value.as_object().map_or(0, |o| o.len());
    }
    let simd = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for line in &sample {
        let value: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
        keys += value.as_object().map_or(0, |o| o.len());
    }
    let serde = t.elapsed().as_secs_f64();
    println!(
        "baseline, parse only ({} lines, {:.1} MiB of JSON): simd-json {:.1} MiB/s, serde_json {:.1} MiB/s ({keys} keys)",
        sample.len(),
        mib(sample_bytes),
        mib(sample_bytes) / simd,
        mib(sample_bytes) / serde
    );
}

/// A config with one `mask` rule per built-in pattern.
fn builtin_rules() -> String {
    corral_collector::redact::builtin_names()
        .map(|name| format!("[[redact]]\nname = \"{name}\"\nbuiltin = \"{name}\"\naction = \"mask\"\n"))
        .collect()
}

/// Reads back the application JSON of up to `limit` whole (`F`) CRI lines.
fn json_sample(root: &Path, limit: usize) -> Vec<Vec<u8>> {
    let mut sample = Vec::with_capacity(limit);
    for entry in glob_files(root) {
        let text = fs::read(&entry).unwrap();
        let mut after_partial = false;
        for line in text.split(|b| *b == b'\n') {
            if sample.len() == limit {
                return sample;
            }
            // `<ts> stdout F <json>`: whole lines only; the chunks of a split line are not JSON.
            let mut parts = line.splitn(4, |b| *b == b' ');
            let (tag, json) = (parts.nth(2), parts.next());
            if let (Some(b"F"), Some(json), false) = (tag, json, after_partial) {
                sample.push(json.to_vec());
            }
            after_partial = tag == Some(b"P");
        }
    }
    sample
}

fn glob_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(root.join("pods"))
        .unwrap()
        .flatten()
        .map(|pod| pod.path().join("app/0.log"))
        .collect();
    files.sort();
    files
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
