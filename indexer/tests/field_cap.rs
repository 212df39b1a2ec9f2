//! A flood of distinct keys through the real `corral-indexer standalone`: a split indexes at
//! most `max_indexed_field_paths` `fields.*` paths, the records beyond keep every field in what
//! search returns and carry flag `fields_capped`, `/metrics` counts them, and an active split
//! reopened after SIGKILL still knows the paths it indexed.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corral_tests::broker::free_port;
use corral_tests::http::get;
use corral_tests::process::{ChildGuard, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");
const CAP: usize = 50;
/// Distinct keys each record adds.
const KEYS_PER_RECORD: usize = 5;
const RECORDS: usize = 300;

fn search(port: u16, query: &str) -> Value {
    let (status, body) = get(port, &format!("/api/v1/search?limit=1000&{query}"));
    assert_eq!(status, 200, "{query}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn write_records(log: &Path, prefix: &str, count: usize) {
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    for n in 0..count {
        let keys: Vec<String> = (0..KEYS_PER_RECORD)
            .map(|i| format!(r#""{prefix}{n:03}_{i}":"v""#))
            .collect();
        writeln!(
            file,
            r#"2026-11-23T10:00:00.{n:09}Z stdout F {{"msg":"flood","corr":"{prefix}-{n}","common":"x",{}}}"#,
            keys.join(",")
        )
        .unwrap();
    }
}

fn start(dir: &Path, port: u16) -> Child {
    Command::new(BIN)
        .arg("standalone")
        .args(["--logs", &format!("{}/pods/*/*/*.log", dir.display())])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("indexer.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_flood_of_distinct_keys_indexes_at_most_the_cap_and_keeps_every_field() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("indexer.toml"),
        format!("[indexer]\nmax_indexed_field_paths = {CAP}\ncommit_interval = \"200ms\"\n"),
    )
    .unwrap();
    let log = dir.path().join("pods/shop_flood-7d9f8b6c4-x2k9p_uid-1/app/0.log");
    write_records(&log, "k", RECORDS);
    let port = free_port().unwrap();
    let indexer = ChildGuard(start(dir.path(), port));
    wait_until("every record searchable", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && search(port, "q=flood")["count"] == RECORDS
    });

    // `common` and the first records' keys fill the cap, in the order they arrive: `common`
    // and 49 others are the records 0..9 (5 keys each) and 4 keys of record 9.
    let whole = (CAP - 1) / KEYS_PER_RECORD;
    assert_eq!(search(port, "q=fields.common:x")["count"], RECORDS);
    assert_eq!(search(port, "q=fields.k000_0:v")["count"], 1);
    assert_eq!(
        search(port, &format!("q=fields.k{:03}_3:v", whole))["count"],
        1,
        "the last path that fit"
    );
    assert_eq!(
        search(port, &format!("q=fields.k{:03}_4:v", whole))["count"],
        0,
        "the first that did not"
    );
    assert_eq!(search(port, "q=fields.k200_0:v")["count"], 0);

    // What search returns is the record as it came, with every field, flagged when capped.
    let hit = |corr: &str| search(port, &format!("corr={corr}"))["hits"][0].clone();
    let first = hit("k-0");
    assert!(first.get("flags").is_none(), "{first}");
    let late = hit("k-200");
    assert_eq!(late["flags"], serde_json::json!(["fields_capped"]), "{late}");
    for i in 0..KEYS_PER_RECORD {
        assert_eq!(late["fields"][format!("k200_{i}")], "v", "{late}");
    }
    assert_eq!(late["fields"]["common"], "x");
    assert_eq!(late["msg"], "flood");
    let capped = RECORDS - whole;
    wait_until("the capped records counted", Duration::from_secs(5), || {
        get(port, "/metrics")
            .1
            .contains(&format!("corral_indexer_fields_capped_total {capped}"))
    });

    // SIGKILL: the active split is reopened, and still admits no path past the cap.
    drop(indexer);
    write_records(&log, "n", 10);
    let _indexer = ChildGuard(start(dir.path(), port));
    wait_until("the new records searchable", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && search(port, "q=flood")["count"] == RECORDS + 10
    });
    assert_eq!(
        search(port, "q=fields.n000_0:v")["count"],
        0,
        "a path beyond the cap after a restart"
    );
    assert_eq!(
        search(port, "q=fields.k000_0:v")["count"],
        1,
        "a path indexed before it"
    );
    assert_eq!(hit("n-0")["flags"], serde_json::json!(["fields_capped"]));
}
