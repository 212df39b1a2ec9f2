//! `[[redact]]` and `[[sample]]` through the real `corral-collector` binary: secrets never reach
//! a sink (stdout or a real Kafka-protocol broker), each rule is counted in `/metrics`, and
//! sampling keeps or drops whole requests identically in two collector processes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use corral_schema::{Flag, Record};
use corral_tests::process::{ChildGuard, wait_for_ok, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_corral-collector");
const KEY: &str = "governance-test-key";

const REDACT_CONFIG: &str = r#"
[[redact]]
name = "emails"
builtin = "email"
action = "mask"
[[redact]]
name = "cards"
builtin = "card"
action = "mask"
[[redact]]
name = "bearer"
builtin = "bearer"
action = "mask"
[[redact]]
name = "jwt"
builtin = "jwt"
action = "mask"
[[redact]]
name = "aws"
builtin = "aws_key"
action = "mask"
[[redact]]
name = "ips"
builtin = "ipv4"
action = "hash"
[[redact]]
name = "user-email"
fields = ["fields.user.email", "fields.card.*"]
action = "hash"
[[redact]]
name = "accounts"
regex = "acct-[0-9]{6}"
action = "drop"
"#;

/// The secrets written below; none may appear in anything a sink receives.
const SECRETS: [&str; 9] = [
    "ann.lee@shop.example.com",
    "bob@example.org",
    "4111 1111 1111 1111",
    "5500005555555559",
    "s3cr3t-t0ken",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
    "AKIAIOSFODNN7EXAMPLE",
    "10.20.30.40",
    "acct-123456",
];

fn append(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Writes the lines with secrets (and one without) as CRI lines of one pod.
fn write_secret_lines(root: &Path) {
    let lines = [
        r#"{"msg":"signup by ann.lee@shop.example.com","user":{"email":"bob@example.org","id":7}}"#,
        r#"{"msg":"charged","card":{"number":"4111 1111 1111 1111","exp":"12/30"},"note":"fallback 5500005555555559"}"#,
        r#"{"msg":"call upstream","headers":{"authorization":"Bearer s3cr3t-t0ken"}}"#,
        r#"{"msg":"session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl ok","key":"AKIAIOSFODNN7EXAMPLE"}"#,
        r#"{"msg":"connect from 10.20.30.40","peer":"10.20.30.40"}"#,
        r#"{"msg":"closing acct-123456","ticket":"acct-123456 by user","kept":"yes"}"#,
        r#"{"msg":"GET /health 200","ms":3}"#,
        "plain text line from 10.20.30.40 for bob@example.org",
    ];
    let mut text = String::new();
    for line in lines {
        text.push_str(&format!("2026-11-23T10:15:00Z stdout F {line}\n"));
    }
    append(
        &root.join("pods/shop_signup-7d9f8b6c4-x2k9p_uid-1/app/0.log"),
        text.as_bytes(),
    );
}

/// Checks the redacted records: by msg prefix, what each must have become.
fn check_redacted(records: &[Record]) {
    assert_eq!(records.len(), 8, "one record per line: {records:#?}");
    let by_msg = |prefix: &str| -> &Record {
        records
            .iter()
            .find(|r| r.msg.starts_with(prefix))
            .unwrap_or_else(|| panic!("no record with msg {prefix:?} in {records:#?}"))
    };
    let signup = by_msg("signup by");
    assert_eq!(signup.msg, "signup by ***");
    let email_token = signup.fields["user"]["email"].as_str().unwrap();
    assert!(
        email_token.starts_with("hmac:") && email_token.len() == 21,
        "{email_token}"
    );
    assert_eq!(signup.fields["user"]["id"], 7);
    let charged = by_msg("charged");
    assert!(
        charged.fields["card"]["number"]
            .as_str()
            .unwrap()
            .starts_with("hmac:")
    );
    assert!(
        charged.fields["card"]["exp"]
            .as_str()
            .unwrap()
            .starts_with("hmac:")
    );
    assert_eq!(charged.fields["note"], "fallback ***");
    let upstream = by_msg("call upstream");
    assert_eq!(upstream.fields["headers"]["authorization"], "Bearer ***");
    let session = by_msg("session");
    assert_eq!(session.msg, "session *** ok");
    assert_eq!(session.fields["key"], "***");
    // Hashed, so the same address is the same token wherever it appears.
    let connect = by_msg("connect from");
    let ip_token = connect.fields["peer"].as_str().unwrap();
    assert!(ip_token.starts_with("hmac:"), "{ip_token}");
    assert_eq!(connect.msg, format!("connect from {ip_token}"));
    // `drop`: the values holding the match are gone, the rest kept.
    let closing = records.iter().find(|r| r.fields.get("kept").is_some()).unwrap();
    assert_eq!(closing.msg, "");
    assert!(closing.fields.get("ticket").is_none(), "{closing:?}");
    let plain = by_msg("plain text line");
    assert_eq!(plain.msg, format!("plain text line from {ip_token} for ***"));
    assert!(plain.has_flag(Flag::Unparsed));
    for record in records {
        let clean = record.msg.starts_with("GET /health");
        assert_eq!(record.has_flag(Flag::Redacted), !clean, "{record:?}");
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret:?} reached {what}:\n{text}");
    }
}

#[test]
fn redaction_scrubs_every_record_before_stdout_and_counts_each_rule() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("collector.toml");
    fs::write(&config, REDACT_CONFIG).unwrap();
    write_secret_lines(root.path());
    let port = corral_tests::broker::free_port().unwrap();
    let child = Command::new(BIN)
        .args([
            "--node",
            "n",
            "--logs",
            &format!("{}/pods/*/*/*.log", root.path().display()),
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .env("CORRAL_REDACT_KEY", KEY)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut collector = ChildGuard(child);
    let stdout = collector.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|line| line.unwrap())
            .collect::<Vec<_>>()
    });
    // Each rule counted once per record it changed; every rule visible.
    let want = [
        "corral_collector_redacted_total{rule=\"emails\"} 2",
        "corral_collector_redacted_total{rule=\"cards\"} 1",
        "corral_collector_redacted_total{rule=\"bearer\"} 1",
        "corral_collector_redacted_total{rule=\"jwt\"} 1",
        "corral_collector_redacted_total{rule=\"aws\"} 1",
        "corral_collector_redacted_total{rule=\"ips\"} 2",
        "corral_collector_redacted_total{rule=\"user-email\"} 2",
        "corral_collector_redacted_total{rule=\"accounts\"} 1",
        "corral_collector_records_delivered_total 8",
    ];
    wait_until("the collector listening", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    wait_for_ok(
        "the redaction counters in /metrics",
        Duration::from_secs(10),
        || {
            let (_, metrics) = corral_tests::http::get(port, "/metrics");
            let missing: Vec<&str> = want
                .iter()
                .copied()
                .filter(|w| !metrics.lines().any(|l| l == *w))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?} in\n{metrics}"))
            }
        },
    );
    collector.terminate(Duration::from_secs(30));
    let lines = reader.join().unwrap();
    assert_no_secret("stdout", &lines.join("\n"));
    let records: Vec<Record> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    check_redacted(&records);
}

#[test]
fn redaction_applies_before_records_reach_kafka() {
    let broker = corral_tests::broker::Broker::start();
    broker.create_topic(corral_schema::fields::TOPIC, 1);
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("collector.toml");
    let key = root.path().join("redact.key");
    fs::write(&key, format!("{KEY}\n")).unwrap();
    fs::write(
        &config,
        format!(
            "redact_key_file = {:?}\n{REDACT_CONFIG}",
            key.display().to_string()
        ),
    )
    .unwrap();
    write_secret_lines(root.path());
    let output = Command::new(BIN)
        .args(["--once", "--node", "n", "--sink", "kafka"])
        .args(["--brokers", &broker.bootstrap_servers()])
        .args(["--logs", &format!("{}/pods/*/*/*.log", root.path().display())])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .env_remove("CORRAL_REDACT_KEY")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let messages = broker.consume_at_least(corral_schema::fields::TOPIC, 8, Duration::from_secs(30));
    let payloads: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8(rdkafka::Message::payload(m).unwrap().to_vec()).unwrap())
        .collect();
    assert_no_secret("Kafka", &payloads.join("\n"));
    let records: Vec<Record> = payloads
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    check_redacted(&records);
}

#[test]
fn a_bad_rule_stops_the_collector_with_an_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[redact]]\nname = \"tokens\"\nbuiltin = \"token\"\naction = \"mask\"\n",
            "redact rule \"tokens\": builtin = \"token\": expected one of email, card, bearer, jwt, aws_key, ipv4",
        ),
        (
            "[[redact]]\nname = \"ids\"\nregex = \"id-(\"\naction = \"mask\"\n",
            "redact rule \"ids\": regex = \"id-(\"",
        ),
        (
            "[[redact]]\nname = \"users\"\nfields = [\"fields.user\"]\naction = \"hash\"\n",
            "redact rule \"users\": action = \"hash\" needs a key",
        ),
        (
            "[[sample]]\nservice = \"api\"\nkeep = -1\n",
            "sample rule for service \"api\": keep = -1 is not a fraction",
        ),
    ];
    for (text, want) in cases {
        let config = root.path().join("bad.toml");
        fs::write(&config, text).unwrap();
        let output = Command::new(BIN)
            .args(["--once", "--node", "n", "--logs", "/nonexistent/*.log"])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(root.path().join("data"))
            .env_remove("CORRAL_REDACT_KEY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{text}: {stderr}");
        // The log is JSON lines: the error is the stop line's `error` field.
        let errors: Vec<String> = stderr
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|line| line["fields"]["error"].as_str().map(String::from))
            .collect();
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{want:?} not in {stderr}"
        );
        assert!(output.stdout.is_empty());
    }
}

/// Writes `requests` requests of 3 lines each (debug, info, and warn for every 10th) to `file`.
fn write_requests(file: &Path, requests: usize, node: &str) -> usize {
    let mut text = String::new();
    let mut lines = 0;
    for n in 0..requests {
        let corr = format!("req-{n:05}");
        let levels: &[&str] = if n.is_multiple_of(10) {
            &["debug", "info", "warn"]
        } else {
            &["debug", "info", "info"]
        };
        for (step, level) in levels.iter().enumerate() {
            text.push_str(&format!(
                "2026-11-23T10:15:00Z stdout F {{\"level\":\"{level}\",\"corr\":\"{corr}\",\"msg\":\"{node} step {step}\"}}\n"
            ));
            lines += 1;
        }
    }
    // Lines without a corr id belong to no request: always kept.
    text.push_str("2026-11-23T10:15:01Z stdout F {\"level\":\"info\",\"msg\":\"started\"}\n");
    append(file, text.as_bytes());
    lines + 1
}

#[test]
fn sampling_keeps_whole_requests_and_the_same_ones_in_two_collectors() {
    const REQUESTS: usize = 2_000;
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("collector.toml");
    fs::write(
        &config,
        "[[sample]]\nservice = \"api\"\nkeep = 0.3\nalways_keep_level = \"warn\"\n",
    )
    .unwrap();
    let mut kept_by_node = Vec::new();
    for node in ["node-a", "node-b"] {
        let logs = root.path().join(node);
        let file = logs.join("pods/shop_api-7d9f8b6c4-x2k9p_uid-1/app/0.log");
        let written = write_requests(&file, REQUESTS, node);
        // Another service with the same corr ids is not sampled.
        let other = logs.join("pods/shop_web-5c8d7b9f6-q7w8z_uid-2/app/0.log");
        let written_other = write_requests(&other, 100, node);
        let port = corral_tests::broker::free_port().unwrap();
        let data = root.path().join(format!("data-{node}"));
        let child = Command::new(BIN)
            .args([
                "--node",
                node,
                "--logs",
                &format!("{}/pods/*/*/*.log", logs.display()),
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut collector = ChildGuard(child);
        let stdout = collector.0.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map(|line| serde_json::from_str::<Record>(&line.unwrap()).unwrap())
                .collect::<Vec<_>>()
        });
        let total = written + written_other;
        wait_until("the collector listening", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let dropped: u64 = wait_for_ok(
            "every line read and the dropped ones counted",
            Duration::from_secs(30),
            || {
                let (_, metrics) = corral_tests::http::get(port, "/metrics");
                let value = |name: &str| -> Option<u64> {
                    metrics
                        .lines()
                        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                };
                let read = value("corral_collector_lines_read_total").unwrap_or(0);
                let delivered = value("corral_collector_records_delivered_total").unwrap_or(0);
                let dropped = value("corral_collector_sampled_out_total{service=\"api\"}").unwrap_or(0);
                if read == total as u64 && delivered + dropped == total as u64 {
                    Ok(dropped)
                } else {
                    Err(format!(
                        "read {read}, delivered {delivered}, dropped {dropped} of {total}"
                    ))
                }
            },
        );
        collector.terminate(Duration::from_secs(30));
        let records = reader.join().unwrap();
        assert_eq!(records.len() as u64 + dropped, total as u64);
        // The checkpoint passed the dropped lines: nothing is held back by them.
        let checkpoint = fs::read_to_string(data.join("collector-positions.json")).unwrap();
        for path in [&file, &other] {
            let size = fs::metadata(path).unwrap().len();
            assert!(
                checkpoint.contains(&format!("\"offset\":{size}")),
                "{size} in {checkpoint}"
            );
        }
        let web: Vec<&Record> = records.iter().filter(|r| r.service == "web").collect();
        assert_eq!(web.len(), written_other, "the unsampled service keeps every line");
        let mut steps: BTreeMap<String, usize> = BTreeMap::new();
        for record in records.iter().filter(|r| r.service == "api") {
            match &record.corr {
                Some(corr) => *steps.entry(corr.clone()).or_default() += 1,
                None => assert_eq!(record.msg, "started"),
            }
        }
        for n in (0..REQUESTS).step_by(10) {
            let corr = format!("req-{n:05}");
            assert!(steps.contains_key(&corr), "{corr} has a warn line and is kept");
        }
        // A kept request has all 3 lines; one with a warn line keeps at least that one.
        let whole: BTreeSet<String> = steps
            .iter()
            .filter(|(corr, count)| {
                let n: usize = corr[4..].parse().unwrap();
                assert!(
                    **count == 3 || (n.is_multiple_of(10) && **count == 1),
                    "{corr}: {count} lines"
                );
                **count == 3
            })
            .map(|(corr, _)| corr.clone())
            .collect();
        let fraction = whole.len() as f64 / REQUESTS as f64;
        assert!(
            (0.25..=0.35).contains(&fraction),
            "kept {fraction:.3} of requests at keep = 0.3"
        );
        kept_by_node.push(whole);
    }
    assert_eq!(
        kept_by_node[0], kept_by_node[1],
        "both collectors keep the same requests"
    );
}
