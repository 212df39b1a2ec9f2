//! `corral-collector --sink kafka` against a real Kafka-protocol broker (tansu): every line
//! becomes exactly one message with the right key and header, checkpoints follow delivery,
//! a record larger than the broker accepts is cut and flagged, a missing topic is a clear error.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use corral_schema::{Flag, Record, fields};
use corral_tests::broker::Broker;
use rdkafka::message::{Headers, Message};

const BIN: &str = env!("CARGO_BIN_EXE_corral-collector");

fn collector(root: &Path, broker: &Broker, topic: &str) -> std::process::Output {
    Command::new(BIN)
        .args([
            "--once",
            "--sink",
            "kafka",
            "--brokers",
            &broker.bootstrap_servers(),
            "--topic",
            topic,
            "--node",
            "n1",
        ])
        .args(["--logs", &format!("{}/pods/*/*/*.log", root.display())])
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--config")
        .arg(root.join("collector.toml"))
        .output()
        .expect("run corral-collector")
}

#[test]
fn every_line_is_one_message_and_checkpoints_follow_delivery() {
    let broker = Broker::start();
    broker.create_topic(fields::TOPIC, 4);
    let root = tempfile::tempdir().unwrap();
    fs::write(
        root.path().join("collector.toml"),
        "max_line_bytes = 4194304\n[kafka.producer]\n\"linger.ms\" = 5\n",
    )
    .unwrap();
    let mut expected = 0;
    let mut sizes = Vec::new();
    for pod in [
        "orders-7d9f8b6c4-bcdfg",
        "payments-7d9f8b6c4-bcdfh",
        "gateway-7d9f8b6c4-bcdfj",
    ] {
        let path = root.path().join(format!("pods/shop_{pod}_uid/app/0.log"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut text = String::new();
        for i in 0..2000 {
            let corr = if i % 2 == 0 {
                format!(",\"request_id\":\"req-{}\"", i / 10)
            } else {
                String::new()
            };
            text += &format!("2026-11-23T10:15:00.{i:09}Z stdout F {{\"msg\":\"{pod} line {i}\"{corr}}}\n");
            expected += 1;
        }
        fs::write(&path, &text).unwrap();
        sizes.push((path, text.len() as u64));
    }
    // One line of 2 MiB: more than the broker's 1 MB message limit.
    let big = root.path().join("pods/shop_big-x2k9p_uid/app/0.log");
    fs::create_dir_all(big.parent().unwrap()).unwrap();
    let big_line = format!("2026-11-23T10:15:01Z stdout F {}\n", "b".repeat(2 * 1024 * 1024));
    fs::write(&big, &big_line).unwrap();
    expected += 1;

    let output = collector(root.path(), &broker, fields::TOPIC);
    assert!(
        output.status.success(),
        "collector failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The collector has exited: reading to the topic's ends shows every message it sent.
    let messages = broker.consume_all(fields::TOPIC, expected, Duration::ZERO, Duration::from_secs(60));
    assert_eq!(messages.len(), expected, "exactly one message per line");
    let mut by_msg: HashMap<String, Record> = HashMap::new();
    let mut partitions = [0usize; 4];
    for message in &messages {
        let record: Record = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let header = message.headers().unwrap().get(0);
        assert_eq!(
            (header.key, header.value),
            (fields::SCHEMA_HEADER, Some(&b"1"[..]))
        );
        assert_eq!(
            message.key(),
            Some(record.kafka_key().as_bytes()),
            "key is corr, else instance"
        );
        assert!(message.payload().unwrap().len() < 1_000_000);
        partitions[message.partition() as usize] += 1;
        assert!(
            by_msg.insert(record.msg.clone(), record).is_none(),
            "a line arrived twice"
        );
    }
    assert!(
        partitions.iter().all(|n| *n > 0),
        "keys spread over partitions: {partitions:?}"
    );
    let order = &by_msg["orders-7d9f8b6c4-bcdfg line 10"];
    assert_eq!(
        (order.corr.as_deref(), order.service.as_str()),
        (Some("req-1"), "orders")
    );
    let cut = by_msg
        .values()
        .find(|r| r.service == "big")
        .expect("the big line arrived");
    assert!(cut.flags.contains(&Flag::Truncated), "flags {:?}", cut.flags);
    assert!(
        cut.msg.len() > 500_000 && cut.msg.chars().all(|c| c == 'b'),
        "kept {} bytes",
        cut.msg.len()
    );

    // Positions cover exactly what was delivered; a second run sends nothing.
    let checkpoint = fs::read_to_string(root.path().join("data/collector-positions.json")).unwrap();
    for (path, size) in &sizes {
        let entry = format!("\"path\":\"{}\",\"offset\":{size}", path.display());
        assert!(checkpoint.contains(&entry), "{entry} missing in {checkpoint}");
    }
    let output = collector(root.path(), &broker, fields::TOPIC);
    assert!(output.status.success());
    let again = broker.consume_all(fields::TOPIC, expected, Duration::ZERO, Duration::from_secs(30));
    assert_eq!(again.len(), expected, "nothing was sent twice");
}

#[test]
fn a_missing_topic_is_a_clear_error() {
    let broker = Broker::start();
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("collector.toml"), "").unwrap();
    let output = collector(root.path(), &broker, "no.such.topic");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no.such.topic") && stderr.contains(&broker.bootstrap_servers()),
        "{stderr}"
    );
}

/// Loss reason `message_too_large` (hardening #9): the part of a record Kafka would not take is
/// counted in `/metrics` with its bytes, while the record itself arrives cut and flagged.
#[test]
fn a_record_too_large_for_kafka_is_counted_as_a_loss_with_its_bytes() {
    let broker = Broker::start();
    broker.create_topic("too-large", 1);
    let root = tempfile::tempdir().unwrap();
    fs::write(
        root.path().join("collector.toml"),
        "max_line_bytes = 4194304\n[kafka.producer]\n\"linger.ms\" = 5\n",
    )
    .unwrap();
    let big = root.path().join("pods/shop_big-x2k9p_uid/app/0.log");
    fs::create_dir_all(big.parent().unwrap()).unwrap();
    fs::write(
        &big,
        format!("2026-11-23T10:15:01Z stdout F {}\n", "b".repeat(2 * 1024 * 1024)),
    )
    .unwrap();
    let port = corral_tests::broker::free_port().unwrap();
    let child = Command::new(BIN)
        .args(["--sink", "kafka", "--brokers", &broker.bootstrap_servers()])
        .args(["--topic", "too-large", "--node", "n1"])
        .args(["--logs", &format!("{}/pods/*/*/*.log", root.path().display())])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .arg("--config")
        .arg(root.path().join("collector.toml"))
        .env("CORRAL_LOG", "warn")
        .spawn()
        .expect("start corral-collector");
    let _collector = corral_tests::process::ChildGuard(child);
    let mut metrics = String::new();
    corral_tests::process::wait_until("the loss counted", Duration::from_secs(60), || {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return false;
        }
        metrics = corral_tests::http::get(port, "/metrics").1;
        metrics.contains("corral_collector_lost_total{reason=\"message_too_large\"} 1")
    });
    let lost_bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("corral_collector_lost_bytes_total{reason=\"message_too_large\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        (500_000..2 * 1024 * 1024).contains(&lost_bytes),
        "bytes cut off the 2 MiB record: {lost_bytes}\n{metrics}"
    );
    let messages = broker.consume_at_least("too-large", 1, Duration::from_secs(30));
    let record: Record = serde_json::from_slice(messages[0].payload().unwrap()).unwrap();
    assert!(record.flags.contains(&Flag::Truncated), "{:?}", record.flags);
}
