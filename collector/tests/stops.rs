//! A collector that can no longer deliver ends its process with the reason, instead of
//! staying up, answering "ready" and reading nothing (the pod is then restarted and resumes
//! from its checkpoint).

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use corral_tests::process::{ChildGuard, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_corral-collector");

#[test]
fn a_sink_that_fails_for_good_ends_the_process_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pods/shop_orders-7d9f8b6c4-x2k9p_uid/app");
    fs::create_dir_all(&pod).unwrap();
    let log = pod.join("0.log");
    fs::write(&log, "").unwrap();
    let port = corral_tests::broker::free_port().unwrap();
    let mut child = Command::new(BIN)
        .args(["--sink", "stdout", "--node", "n"])
        .args(["--logs", &format!("{}/pods/*/*/*.log", dir.path().display())])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads the collector's output any more: writing it fails with a broken pipe.
    drop(child.stdout.take());
    let stderr = child.stderr.take().unwrap();
    let mut collector = ChildGuard(child);
    wait_until("the collector's /healthz", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let mut file = fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(
        file,
        "2026-11-23T10:00:00.000000000Z stdout F {{\"msg\":\"one\"}}"
    )
    .unwrap();
    let mut status = None;
    wait_until("the collector to exit", Duration::from_secs(20), || {
        status = collector.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(1), "a failure exit, not a clean one");
    let said = std::io::read_to_string(stderr).unwrap();
    assert!(
        said.contains("corral-collector stopped") && said.contains("Broken pipe"),
        "the reason on stderr: {said}"
    );
}
