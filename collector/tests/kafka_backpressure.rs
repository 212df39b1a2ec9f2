//! Backpressure against a real broker: with the broker stopped (SIGSTOP) for 30 s while a pod
//! keeps writing, the collector stops reading once its in-flight bound is reached, its memory
//! stays bounded, `/readyz` says not ready — and after SIGCONT every line is delivered.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corral_schema::{Record, fields};
use corral_tests::broker::{Broker, free_port};
use corral_tests::process::{ChildGuard, wait_until};
use rdkafka::message::Message;

const BIN: &str = env!("CARGO_BIN_EXE_corral-collector");
const MAX_IN_FLIGHT: usize = 256 * 1024;

fn kill(pid: u32, signal: &str) {
    assert!(
        Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, text) = corral_tests::http::get(port, "/metrics");
    text.lines()
        .filter(|l| l.starts_with(name))
        .find_map(|l| l.split_whitespace().last().and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("metric {name} missing in\n{text}"))
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_stopped_broker_pauses_reading_and_everything_arrives_after() {
    let broker = Broker::start();
    broker.create_topic(fields::TOPIC, 4);
    let root = tempfile::tempdir().unwrap();
    fs::write(
        root.path().join("collector.toml"),
        format!("max_in_flight_bytes = {MAX_IN_FLIGHT}\n[kafka.producer]\n\"linger.ms\" = 5\n"),
    )
    .unwrap();
    let dir = root.path().join("pods/shop_orders-7d9f8b6c4-bcdfg_uid/app");
    fs::create_dir_all(&dir).unwrap();
    let port = free_port().unwrap();
    let collector = ChildGuard(
        Command::new(BIN)
            .args([
                "--sink",
                "kafka",
                "--brokers",
                &broker.bootstrap_servers(),
                "--node",
                "n1",
            ])
            .args(["--logs", &format!("{}/pods/*/*/*.log", root.path().display())])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(root.path().join("data"))
            .arg("--config")
            .arg(root.path().join("collector.toml"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // A pod writing ~400 KB/s until told to stop.
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, stop, log) = (written.clone(), stop.clone(), dir.join("0.log"));
        std::thread::spawn(move || {
            let mut file = OpenOptions::new().create(true).append(true).open(log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let mut text = String::new();
                for _ in 0..40 {
                    let i = written.fetch_add(1, Ordering::Relaxed);
                    text += &format!(
                        "2026-11-23T10:15:00Z stdout F {{\"msg\":\"line {i}\",\"pad\":\"{}\"}}\n",
                        "p".repeat(200)
                    );
                }
                file.write_all(text.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };

    // Flowing: the first lines arrive.
    broker.consume_at_least(fields::TOPIC, 100, Duration::from_secs(30));
    assert_eq!(corral_tests::http::get(port, "/readyz").0, 200);

    kill(broker.pid(), "STOP");
    let stopped = Instant::now();
    let mut max_in_flight = 0.0f64;
    let mut max_rss = 0;
    let mut not_ready_seen = false;
    // A window, not a wait: the broker stays stopped past the sink limit while the bounds are
    // sampled.
    while stopped.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(500));
        max_in_flight = max_in_flight.max(metric(port, "corral_collector_in_flight_bytes"));
        max_rss = max_rss.max(rss_kib(collector.0.id()));
        let (status, body) = corral_tests::http::get(port, "/readyz");
        if status == 503 {
            not_ready_seen = true;
            assert!(body.starts_with("not ready: "), "{body}");
        }
    }
    let lag = metric(port, "corral_collector_file_lag_bytes{");
    kill(broker.pid(), "CONT");
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = written.load(Ordering::Relaxed);

    assert!(
        not_ready_seen,
        "/readyz reported not ready while the broker was stopped"
    );
    // One poll's batch (64 KiB of reading per file) may go past the bound.
    assert!(
        max_in_flight <= (MAX_IN_FLIGHT + 256 * 1024) as f64,
        "in flight peaked at {max_in_flight} bytes"
    );
    assert!(
        lag > 1_000_000.0,
        "reading paused: {lag} bytes of the file unread at the end of the stop"
    );
    assert!(max_rss < 150 * 1024, "collector RSS peaked at {max_rss} KiB");

    // Nothing more is sent once every line is read and every record acknowledged: then the
    // topic's ends are final, and reading to them shows every duplicate.
    wait_until(
        "every line read and acknowledged",
        Duration::from_secs(120),
        || {
            // Read leniently: a save briefly clears the per-file gauges.
            let (_, text) = corral_tests::http::get(port, "/metrics");
            let value = |name: &str| {
                text.lines()
                    .filter(|l| l.starts_with(name))
                    .find_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            };
            value("corral_collector_file_lag_bytes{") == Some(0.0)
                && value("corral_collector_in_flight_records") == Some(0.0)
        },
    );
    let messages = broker.consume_all(fields::TOPIC, total, Duration::ZERO, Duration::from_secs(120));
    let mut seen = vec![false; total];
    for message in &messages {
        let record: Record = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let i: usize = record.msg.strip_prefix("line ").unwrap().parse().unwrap();
        seen[i] = true;
    }
    let missing: Vec<usize> = (0..total).filter(|i| !seen[*i]).collect();
    assert!(
        missing.is_empty(),
        "{} of {total} lines missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    println!(
        "broker stopped 30 s: {total} lines written, {} messages ({} duplicates), in flight ≤ {max_in_flight} bytes, RSS ≤ {max_rss} KiB, {lag} bytes waiting",
        messages.len(),
        messages.len() - total
    );
    drop(collector);
}
