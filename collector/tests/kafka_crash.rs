//! Crash safety against a real broker: the collector killed with SIGKILL at random moments
//! while three pods write (one of them rotating) loses nothing, and re-sent lines keep their
//! ids; after SIGTERM and a restart nothing is sent twice.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corral_schema::{Record, fields};
use corral_tests::broker::Broker;
use corral_tests::process::ChildGuard;
use rdkafka::message::Message;

const BIN: &str = env!("CARGO_BIN_EXE_corral-collector");

fn start(root: &Path, broker: &Broker, once: bool) -> ChildGuard {
    let mut command = Command::new(BIN);
    command
        .args([
            "--sink",
            "kafka",
            "--brokers",
            &broker.bootstrap_servers(),
            "--node",
            "n1",
        ])
        .args(["--logs", &format!("{}/pods/*/*/*.log", root.display())])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(root.join("data"))
        .stdout(Stdio::null());
    if once {
        command.arg("--once");
    }
    ChildGuard(command.spawn().expect("start corral-collector"))
}

fn signal(child: &ChildGuard, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// Writes lines `from..lines` for `pod`, rotating by rename before line `rotate_at` if given.
fn writer(
    root: PathBuf,
    pod: &'static str,
    from: usize,
    lines: usize,
    rotate_at: Option<usize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let dir = root.join(format!("pods/shop_{pod}_uid/app"));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("0.log");
        for i in from..lines {
            if Some(i) == rotate_at {
                fs::rename(&log, dir.join("0.log.20261123-101500")).unwrap();
            }
            let line = format!(
                "2026-11-23T10:15:00.{i:09}Z stdout F {{\"msg\":\"{pod} {i}\",\"request_id\":\"r{}\"}}\n",
                i % 97
            );
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap()
                .write_all(line.as_bytes())
                .unwrap();
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
}

/// Reads the topic to its ends, at least `expected` records. Only once no collector runs are
/// those ends final, so only then does a duplicate surely show: each test's last call.
fn consume(broker: &Broker, expected: usize) -> Vec<Record> {
    broker
        .consume_all(fields::TOPIC, expected, Duration::ZERO, Duration::from_secs(90))
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap())
        .collect()
}

#[test]
fn sigkill_five_times_loses_nothing_and_resends_with_the_same_ids() {
    let broker = Broker::start();
    broker.create_topic(fields::TOPIC, 4);
    let root = tempfile::tempdir().unwrap();
    const LINES: usize = 2500;
    let writers = [
        writer(
            root.path().to_path_buf(),
            "orders-7d9f8b6c4-bcdfg",
            0,
            LINES,
            None,
        ),
        writer(
            root.path().to_path_buf(),
            "payments-7d9f8b6c4-bcdfh",
            0,
            LINES,
            Some(LINES / 2),
        ),
        writer(
            root.path().to_path_buf(),
            "gateway-7d9f8b6c4-bcdfj",
            0,
            LINES,
            None,
        ),
    ];
    let mut seed = Instant::now().elapsed().as_nanos() as u64 | 1;
    seed ^= std::process::id() as u64;
    println!("kill schedule seed {seed}");
    let mut kills = 0;
    let mut child = start(root.path(), &broker, false);
    while kills < 5 || writers.iter().any(|w| !w.is_finished()) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // A random moment to kill at, not a wait for something.
        std::thread::sleep(Duration::from_millis(300 + seed % 900));
        signal(&child, "KILL");
        child.0.wait().unwrap();
        kills += 1;
        child = start(root.path(), &broker, false);
    }
    for w in writers {
        w.join().unwrap();
    }
    signal(&child, "KILL");
    child.0.wait().unwrap();
    // Whatever is left is delivered by one last run.
    let status = start(root.path(), &broker, true).0.wait().unwrap();
    assert!(status.success());

    let written = 3 * LINES;
    let records = consume(&broker, written);
    let mut by_msg: HashMap<&str, Vec<&str>> = HashMap::new();
    for record in &records {
        by_msg
            .entry(record.msg.as_str())
            .or_default()
            .push(record.id.as_str());
    }
    for pod in [
        "orders-7d9f8b6c4-bcdfg",
        "payments-7d9f8b6c4-bcdfh",
        "gateway-7d9f8b6c4-bcdfj",
    ] {
        for i in 0..LINES {
            let msg = format!("{pod} {i}");
            let ids = by_msg
                .get(msg.as_str())
                .unwrap_or_else(|| panic!("line {msg:?} was lost"));
            assert!(
                ids.iter().all(|id| *id == ids[0]),
                "{msg} was re-sent with another id: {ids:?}"
            );
        }
    }
    assert_eq!(by_msg.len(), written, "no line that was not written");
    let duplicates = records.len() - written;
    println!(
        "{kills} SIGKILLs: {written} lines written, {} messages, {duplicates} duplicates (same ids)",
        records.len()
    );
    assert!(kills >= 5);
}

#[test]
fn sigterm_then_restart_sends_nothing_twice() {
    let broker = Broker::start();
    broker.create_topic(fields::TOPIC, 4);
    let root = tempfile::tempdir().unwrap();
    // The collector must have seen the file before it is rotated (a rotated file it never saw
    // is old data it leaves alone): the first lines' arrival in Kafka proves it has.
    let mut child = start(root.path(), &broker, false);
    writer(root.path().to_path_buf(), "orders-7d9f8b6c4-bcdfg", 0, 10, None)
        .join()
        .unwrap();
    assert_eq!(consume(&broker, 10).len(), 10);
    writer(
        root.path().to_path_buf(),
        "orders-7d9f8b6c4-bcdfg",
        10,
        500,
        Some(250),
    )
    .join()
    .unwrap();
    assert_eq!(consume(&broker, 500).len(), 500);
    signal(&child, "TERM");
    assert_eq!(child.0.wait().unwrap().code(), Some(0), "SIGTERM exits 0");
    let status = start(root.path(), &broker, true).0.wait().unwrap();
    assert!(status.success());
    assert_eq!(
        consume(&broker, 500).len(),
        500,
        "0 duplicates after SIGTERM and restart"
    );
}
