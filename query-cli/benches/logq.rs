//! logq benchmark (`make bench`): against a release `corral-indexer` holding 1,000,000 records of
//! the demo corpus (`corral_demo::corpus`),
//! - time from start to first paint and to the full results of `logq --corr` in the TUI
//!   (driven in tmux, timings written by logq itself through `LOGQ_BENCH_TIMINGS`), next to
//!   the same search as one raw HTTP request;
//! - `-o jsonl` throughput for a 100,000-record result, next to the raw HTTP response time.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corral_demo::corpus::envelopes;
use corral_indexer::manifest::Checkpoint;
use corral_indexer::store::{SplitStore, StoreOptions};
use corral_schema::api::DEFAULT_MAX_LIMIT;
use corral_tests::bench::percentile;
use corral_tests::broker::free_port;
use corral_tests::http;
use corral_tests::process::{ChildGuard, workspace_binary};

const RECORDS: u64 = 1_000_000;
const RUNS: usize = 20;

/// Indexes the demo corpus; returns one correlation id of every 10,000 records.
fn build_index(data_dir: &Path) -> Vec<String> {
    let started = Instant::now();
    let mut store = SplitStore::open(
        &data_dir.join("index"),
        StoreOptions {
            split_max_docs: 5_000_000,
            split_max_age: Duration::from_secs(3600),
            writer_memory_bytes: 256 * 1024 * 1024,
            indexer_name: "bench".into(),
            max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
        },
    )
    .unwrap();
    let mut corrs = Vec::new();
    for (n, record) in envelopes(RECORDS as usize).into_iter().enumerate() {
        if n % 10_000 == 0
            && let Some(corr) = &record.corr
        {
            corrs.push(corr.clone());
        }
        let source = serde_json::to_string(&record).unwrap();
        store.add(record, source).unwrap();
        if n % 200_000 == 199_999 {
            store.commit(&Checkpoint::new()).unwrap();
        }
    }
    store.close(&Checkpoint::new()).unwrap();
    println!(
        "  (built an index of {RECORDS} records in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    corrs
}

fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

struct Tmux(String);

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.0, "kill-server"]).status();
    }
}

/// Runs `logq --corr` in the TUI once; returns (first paint, full results) in ms from start.
fn tui_run(tmux: &Tmux, logq: &Path, url: &str, corr: &str, dir: &Path, run: usize) -> (f64, f64) {
    let timings = dir.join(format!("timings-{run}"));
    let started = unix_ms();
    let command = format!(
        // The shell lingers after logq quits, so the tmux server does not exit under us.
        "LOGQ_BENCH_TIMINGS='{}' XDG_CONFIG_HOME=/nonexistent '{}' --corr {corr} --endpoint {url}; sleep 5",
        timings.display(),
        logq.display()
    );
    let status = Command::new("tmux")
        .args([
            "-L",
            &tmux.0,
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            &command,
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&timings)
            && text.contains("results_unix_ms")
        {
            let value = |key: &str| -> u128 {
                text.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim_start_matches('=').parse().ok())
                    .unwrap()
            };
            let first = value("first_paint_unix_ms") - started;
            let full = value("results_unix_ms") - started;
            return (first as f64, full as f64);
        }
        assert!(Instant::now() < deadline, "logq never painted its results");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    println!("logq benchmark — {RECORDS} records in one indexer (release build)");
    let corrs = build_index(&data);
    let indexer_bin = workspace_binary("corral-indexer");
    // Built with this bench, so with its `bench-timings` feature.
    let logq = std::path::PathBuf::from(env!("CARGO_BIN_EXE_logq"));
    let port = free_port().unwrap();
    let _indexer = ChildGuard(
        Command::new(&indexer_bin)
            .arg("standalone")
            .args(["--logs", &format!("{}/no-logs/*.log", dir.path().display())])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CORRAL_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "indexer did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // First paint and full results, over different requests.
    let tmux = Tmux(format!("corral-bench-{}", std::process::id()));
    let mut first = Vec::new();
    let mut full = Vec::new();
    let mut raw = Vec::new();
    for run in 0..RUNS {
        let corr = &corrs[(run * 37) % corrs.len()];
        let started = Instant::now();
        let (status, body) = http::get(port, &format!("/api/v1/search?corr={corr}"));
        raw.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200);
        assert!(!body.contains("\"count\":0,"), "{body}");
        let (f, r) = tui_run(&tmux, &logq, &url, corr, dir.path(), run);
        first.push(f);
        full.push(r);
    }
    println!(
        "logq --corr (TUI)    first paint p50 {:>5.0} ms  p99 {:>5.0} ms   full results p50 {:>5.0} ms  p99 {:>5.0} ms   [goal: first paint ≤ 300 ms]",
        percentile(&first, 0.50),
        percentile(&first, 0.99),
        percentile(&full, 0.50),
        percentile(&full, 0.99)
    );
    println!(
        "  baseline: the same search as one raw HTTP request   p50 {:>5.1} ms  p99 {:>5.1} ms",
        percentile(&raw, 0.50),
        percentile(&raw, 0.99)
    );

    // jsonl throughput on a 100k-record result. The baseline reads the same records as raw
    // HTTP pages of the indexer's `max_limit` (one search answers at most that many), following
    // `after` as logq does.
    let started = Instant::now();
    let (mut raw_hits, mut raw_bytes, mut after) = (0u64, 0usize, None::<String>);
    while raw_hits < 100_000 {
        let page = (100_000 - raw_hits).min(DEFAULT_MAX_LIMIT as u64);
        let mut path = format!("/api/v1/search?service=gateway&limit={page}");
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let (status, body) = http::get(port, &path);
        assert_eq!(status, 200, "{body}");
        let response: serde_json::Value = serde_json::from_str(&body).unwrap();
        raw_hits += response["count"].as_u64().unwrap();
        raw_bytes += body.len();
        after = response["after"].as_str().map(str::to_owned);
        if after.is_none() {
            break;
        }
    }
    let raw_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(raw_hits, 100_000, "the baseline read 100k records");
    let started = Instant::now();
    let mut child = Command::new(&logq)
        .args([
            "--service",
            "gateway",
            "--limit",
            "100000",
            "-o",
            "jsonl",
            "--endpoint",
            &url,
        ])
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    child.wait().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let lines = out.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines, 100_000);
    println!(
        "logq -o jsonl        {lines} records in {:>6.0} ms   {:>9.0} rec/s   {:>6.1} MB/s   (baseline: raw HTTP pages of {DEFAULT_MAX_LIMIT} {:.0} ms, {:.1} MB)",
        seconds * 1000.0,
        lines as f64 / seconds,
        out.len() as f64 / seconds / 1e6,
        raw_ms,
        raw_bytes as f64 / 1e6
    );
}
