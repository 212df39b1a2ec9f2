//! A full checkpoint directory (hardening #17): the real collector stops reading, says why on
//! `/readyz` (503, naming the directory and its free space), and resumes by itself when space
//! returns — every line delivered exactly once.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_schema::Record;
use corral_tests::disk::SmallDisk;
use corral_tests::process::{ChildGuard, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_corral-collector");

#[test]
fn a_full_checkpoint_dir_pauses_reading_and_resumes_with_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "8m");
    let data = disk.path.join("collector");
    let pod = dir.path().join("pods/shop_orders-7d9f8b6c4-x2k9p_uid/app");
    fs::create_dir_all(&pod).unwrap();
    let log = pod.join("0.log");
    fs::write(
        &log,
        "2026-11-23T10:00:00.000000000Z stdout F {\"msg\":\"first\"}\n",
    )
    .unwrap();
    let port = corral_tests::broker::free_port().unwrap();
    let mut child = Command::new(BIN)
        .args(["--sink", "stdout", "--node", "n"])
        .args(["--logs", &format!("{}/pods/*/*/*.log", dir.path().display())])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                lines.lock().unwrap().push(line.unwrap());
            }
        })
    };
    let collector = ChildGuard(child);
    let delivered = || lines.lock().unwrap().len();
    wait_until("the first line", Duration::from_secs(20), || delivered() == 1);

    // The disk fills up: the next save of positions (every 250 ms) fails.
    let ballast = disk.fill("ballast", 0);
    let mut why = String::new();
    wait_until(
        "/readyz to say the checkpoints cannot be saved",
        Duration::from_secs(20),
        || {
            if TcpStream::connect(("127.0.0.1", port)).is_err() {
                return false;
            }
            let (status, body) = corral_tests::http::get(port, "/readyz");
            why = body;
            status == 503 && why.contains("cannot save positions")
        },
    );
    assert!(
        why.contains(&data.display().to_string()) && why.contains("MiB free"),
        "{why}"
    );
    // Reading is paused: lines written now wait in the file.
    let mut file = fs::OpenOptions::new().append(true).open(&log).unwrap();
    for n in 0..2_000 {
        writeln!(
            file,
            "2026-11-23T10:00:01.{n:09}Z stdout F {{\"msg\":\"line {n}\"}}"
        )
        .unwrap();
    }
    drop(file);
    // Time for the paused collector to read, if it would: while positions cannot be saved it
    // shows nothing that could be waited for (its lag gauges change only when a save succeeds).
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(delivered(), 1, "nothing is read while positions cannot be saved");

    // Space returns: reading resumes by itself, every line once.
    fs::remove_file(&ballast).unwrap();
    wait_until("every line", Duration::from_secs(30), || delivered() >= 2_001);
    wait_until("/readyz 200", Duration::from_secs(10), || {
        corral_tests::http::get(port, "/readyz").0 == 200
    });
    collector.terminate(Duration::from_secs(20));
    reader.join().unwrap();
    let lines = lines.lock().unwrap();
    let ids: HashSet<String> = lines
        .iter()
        .map(|line| serde_json::from_str::<Record>(line).unwrap().id)
        .collect();
    assert_eq!((lines.len(), ids.len()), (2_001, 2_001), "each line once");
    drop(disk);
}
