//! No silent loss (hardening #9): every path on which the collector gives data up counts it in
//! `corral_collector_lost_total{reason}` and `corral_collector_lost_bytes_total{reason}`, with
//! the bytes it knows were unread — one test per reason, through the real binary and `/metrics`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use corral_schema::{Flag, Record};
use corral_tests::process::{ChildGuard, wait_for_ok};
use flate2::Compression;
use flate2::write::GzEncoder;

const BIN: &str = env!("CARGO_BIN_EXE_corral-collector");
const POD_DIR: &str = "pods/shop_orders-7d9f8b6c4-x2k9p_uid/app";

fn logs_glob(root: &Path) -> String {
    format!("{}/pods/*/*/*.log", root.display())
}

/// `--once` into stdout: returns the records.
fn run_once(root: &Path, extra: &[&str]) -> Vec<Record> {
    let output = Command::new(BIN)
        .args(["--once", "--sink", "stdout", "--node", "n"])
        .args(["--logs", &logs_glob(root)])
        .arg("--data-dir")
        .arg(root.join("data"))
        .args(extra)
        .output()
        .expect("run corral-collector");
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A running collector (stdout sink) with its operations endpoint; killed when dropped.
struct Running {
    child: ChildGuard,
    port: u16,
}

impl Running {
    fn start(root: &Path, extra: &[&str]) -> Running {
        let port = corral_tests::broker::free_port().unwrap();
        let child = Command::new(BIN)
            .args(["--sink", "stdout", "--node", "n"])
            .args(["--logs", &logs_glob(root)])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(root.join("data"))
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Running {
            child: ChildGuard(child),
            port,
        }
    }

    /// Waits (bounded) until `/metrics` has every line of `want`; returns the metrics text.
    fn wait_for(&mut self, want: &[String]) -> String {
        wait_for_ok("the wanted lines on /metrics", Duration::from_secs(10), || {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                panic!("the collector exited early: {status}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return Err(format!("no /metrics on :{}", self.port));
            }
            let (status, text) = corral_tests::http::get(self.port, "/metrics");
            assert_eq!(status, 200);
            if want.iter().all(|w| text.lines().any(|l| l == w)) {
                Ok(text)
            } else {
                Err(format!("missing some of {want:#?} in\n{text}"))
            }
        })
    }
}

fn lost(reason: &str, times: u64, bytes: u64) -> Vec<String> {
    vec![
        format!("corral_collector_lost_total{{reason=\"{reason}\"}} {times}"),
        format!("corral_collector_lost_bytes_total{{reason=\"{reason}\"}} {bytes}"),
    ]
}

fn cri(content: &str) -> String {
    format!("2026-11-23T10:15:00Z stdout F {content}\n")
}

/// Numbered lines, `total` bytes in all (each line 100 bytes).
fn lines(from: usize, total: usize) -> String {
    assert_eq!(total % 100, 0);
    (from..from + total / 100)
        .map(|i| cri(&format!("line {i:0>64}")))
        .inspect(|l| assert_eq!(l.len(), 100))
        .collect()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(POD_DIR);
    fs::create_dir_all(&dir).unwrap();
    (root, dir)
}

/// Rewrites the saved position of every file to `offset`, as when only that much was delivered
/// (the sink was down) before the collector stopped.
fn set_checkpoint_offset(root: &Path, offset: u64) {
    let path = root.join("data/collector-positions.json");
    let mut saved: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for file in saved["files"].as_array_mut().unwrap() {
        file["offset"] = offset.into();
    }
    fs::write(&path, serde_json::to_vec(&saved).unwrap()).unwrap();
}

/// Regression (hardening #9): a file deleted while the collector was down, its checkpoint at
/// 100 of 10,000 bytes, disappeared without a count.
#[test]
fn a_file_deleted_before_it_was_read_counts_its_unread_bytes() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    fs::write(&log, lines(0, 10_000)).unwrap();
    assert_eq!(run_once(root.path(), &[]).len(), 100);
    set_checkpoint_offset(root.path(), 100);
    fs::remove_file(&log).unwrap();
    let mut running = Running::start(root.path(), &[]);
    running.wait_for(&lost("deleted_before_read", 1, 9_900));
}

/// A file truncated in place while the collector was down, with no copy to finish from: the
/// bytes between the checkpoint and the size last seen are counted; the new content is read.
#[test]
fn a_file_truncated_before_it_was_read_counts_its_unread_bytes() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    fs::write(&log, lines(0, 10_000)).unwrap();
    assert_eq!(run_once(root.path(), &[]).len(), 100);
    set_checkpoint_offset(root.path(), 100);
    OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    fs::write(&log, lines(500, 300)).unwrap();
    let mut running = Running::start(root.path(), &[]);
    let mut want = lost("truncated_before_read", 1, 9_900);
    want.push("corral_collector_lines_read_total 3".into());
    running.wait_for(&want);
}

/// A rotated gzip that cannot be decompressed past some point: what it still held is counted.
#[test]
fn an_unreadable_rotated_gzip_counts_its_unread_bytes() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    fs::write(&log, lines(0, 1_000)).unwrap();
    assert_eq!(run_once(root.path(), &[]).len(), 10);
    // While the collector is down: 200 KB more, rotation, compression into stored (level 0)
    // deflate blocks, whose second block is then corrupted.
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(lines(10, 200_000).as_bytes()).unwrap();
    drop(file);
    let rotated = dir.join("0.log.20261123-101500");
    fs::rename(&log, &rotated).unwrap();
    let gz = dir.join("0.log.20261123-101500.gz");
    let mut encoder = GzEncoder::new(File::create(&gz).unwrap(), Compression::none());
    encoder.write_all(&fs::read(&rotated).unwrap()).unwrap();
    encoder.finish().unwrap();
    fs::remove_file(&rotated).unwrap();
    let mut bytes = fs::read(&gz).unwrap();
    // gzip header (10 bytes), then stored blocks: 1 header byte, LEN, NLEN, LEN bytes. Corrupt
    // the NLEN of the first block starting past 64 KiB (the decoder works 32 KiB ahead, and the
    // first line must still decompress for the file to be recognised).
    let (mut at, mut decoded) = (10usize, 0u64);
    while decoded < 64 * 1024 {
        assert_eq!(bytes[at] & 0b110, 0, "a stored block at {at}");
        let len = u16::from_le_bytes([bytes[at + 1], bytes[at + 2]]);
        at += 5 + usize::from(len);
        decoded += u64::from(len);
    }
    bytes[at + 3] ^= 0xff;
    fs::write(&gz, &bytes).unwrap();

    let mut running = Running::start(root.path(), &[]);
    let text = running.wait_for(&["corral_collector_lost_total{reason=\"unreadable\"} 1".to_owned()]);
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
    };
    let lost = value("corral_collector_lost_bytes_total{reason=\"unreadable\"}");
    let read = value("corral_collector_bytes_read_total");
    assert_eq!(
        lost + read,
        200_000,
        "what was not read is counted lost: lost {lost}, read {read}"
    );
    assert!(
        lost >= 201_000 - decoded,
        "lost {lost}: at least what follows the corrupt block"
    );
}

/// A line longer than `max_line_bytes` is kept cut and flagged; the cut-off bytes are counted.
#[test]
fn a_line_longer_than_max_line_bytes_counts_the_bytes_cut() {
    let (root, dir) = setup();
    let config = root.path().join("collector.toml");
    fs::write(&config, "max_line_bytes = 4096\n").unwrap();
    let long = "x".repeat(10_000);
    fs::write(dir.join("0.log"), cri(&long) + &cri("short")).unwrap();
    let config_args = ["--config", config.to_str().unwrap()];
    let mut running = Running::start(root.path(), &config_args);
    let mut want = lost("line_too_long", 1, 10_000 - 4096);
    want.push("corral_collector_lines_read_total 2".into());
    want.push("corral_collector_lost_total{reason=\"deleted_before_read\"} 0".into());
    running.wait_for(&want);
    drop(running);
    // The record itself is kept, cut and flagged.
    fs::remove_dir_all(root.path().join("data")).unwrap();
    let records = run_once(root.path(), &config_args);
    assert_eq!(records[0].msg.len(), 4096);
    assert!(records[0].flags.contains(&Flag::Truncated));
}
