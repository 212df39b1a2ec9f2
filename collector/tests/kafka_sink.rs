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
use corral_tests::process::ChildGuard;
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

/// Starts `corral-collector --sink kafka` running (not `--once`) on the logs under `root`, with
/// `root/collector.toml`, serving `/metrics` and `/readyz` on `port`.
fn serving_collector(root: &Path, broker: &Broker, topic: &str, port: u16) -> ChildGuard {
    ChildGuard(
        Command::new(BIN)
            .args(["--sink", "kafka", "--brokers", &broker.bootstrap_servers()])
            .args(["--topic", topic, "--node", "n1"])
            .args(["--logs", &format!("{}/pods/*/*/*.log", root.display())])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(root.join("data"))
            .arg("--config")
            .arg(root.join("collector.toml"))
            .env("CORRAL_LOG", "error")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start corral-collector"),
    )
}

/// The value of the metric line that starts with `name` (labels included) on `port`'s
/// `/metrics`; `None` when the collector does not answer or has no such line.
fn metric(port: u16, name: &str) -> Option<u64> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let (_, body) = corral_tests::http::get(port, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
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
    let _collector = serving_collector(root.path(), &broker, "too-large", port);
    corral_tests::process::wait_until("the loss counted", Duration::from_secs(60), || {
        metric(port, "corral_collector_lost_total{reason=\"message_too_large\"}") == Some(1)
    });
    let lost_bytes = metric(
        port,
        "corral_collector_lost_bytes_total{reason=\"message_too_large\"}",
    )
    .unwrap_or(0);
    assert!(
        (500_000..2 * 1024 * 1024).contains(&lost_bytes),
        "bytes cut off the 2 MiB record: {lost_bytes}"
    );
    let messages = broker.consume_at_least("too-large", 1, Duration::from_secs(30));
    let record: Record = serde_json::from_slice(messages[0].payload().unwrap()).unwrap();
    assert!(record.flags.contains(&Flag::Truncated), "{:?}", record.flags);
}

/// Re-sends that fail for another reason than a full queue (hardening #11): the topic is
/// deleted under a running collector, so deliveries fail and producing the records again is
/// refused (the topic is unknown). The collector keeps running, retries with backoff, counts the
/// failures and says why on `/readyz`; the records it could not deliver hold their checkpoint,
/// so a collector started again against a broker that has the topic delivers them.
#[test]
fn failed_resends_are_retried_counted_and_shown_on_readyz_and_never_lost() {
    use std::io::Write;

    use corral_tests::process::wait_until;

    let root = tempfile::tempdir().unwrap();
    // Deliveries give up fast, and the producer learns soon that the topic is gone.
    fs::write(
        root.path().join("collector.toml"),
        "[kafka.producer]\n\"allow.auto.create.topics\" = false\n\"message.timeout.ms\" = 3000\n\"topic.metadata.refresh.interval.ms\" = 500\n\"topic.metadata.propagation.max.ms\" = 1000\n",
    )
    .unwrap();
    let pod = root.path().join("pods/shop_orders-7d9f8b6c4-x2k9p_uid/app");
    fs::create_dir_all(&pod).unwrap();
    let log = pod.join("0.log");
    let line = |n: u32| format!("2026-11-23T10:00:00.000000000Z stdout F {{\"msg\":\"line {n}\"}}\n");
    fs::write(&log, line(0)).unwrap();
    let topic = "resent";
    let broker = Broker::start();
    broker.create_topic(topic, 1);
    let port = corral_tests::broker::free_port().unwrap();
    let mut collector = serving_collector(root.path(), &broker, topic, port);
    broker.consume_at_least(topic, 1, Duration::from_secs(30));

    let status = Command::new("tansu")
        .args([
            "topic",
            "delete",
            "--broker",
            &format!("tcp://{}", broker.bootstrap_servers()),
            topic,
        ])
        .status()
        .expect("run tansu topic delete");
    assert!(status.success(), "tansu topic delete {topic}");
    let metric = |name: &str| metric(port, name).unwrap_or(0);
    // Lines keep coming until the producer learns that the topic is gone and refuses them.
    let mut file = fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut written = 0;
    let mut why = String::new();
    wait_until(
        "failed re-sends counted and /readyz saying why",
        Duration::from_secs(60),
        || {
            written += 1;
            file.write_all(line(written).as_bytes()).unwrap();
            let (status, body) = corral_tests::http::get(port, "/readyz");
            why = body;
            status == 503 && metric("corral_collector_resend_failures_total") > 0
        },
    );
    assert!(
        why.contains("cannot be produced again") || why.contains("deliveries to Kafka fail"),
        "{why}"
    );
    // Lines written now cannot be produced: they wait, retried with backoff, and the collector
    // goes on running.
    let failures = metric("corral_collector_resend_failures_total");
    let waiting: Vec<String> = (written + 1..=written + 5).map(|n| format!("line {n}")).collect();
    for n in written + 1..=written + 5 {
        file.write_all(line(n).as_bytes()).unwrap();
    }
    written += 5;
    wait_until("the new lines read and refused", Duration::from_secs(30), || {
        metric("corral_collector_lines_read_total") == u64::from(written) + 1
            && metric("corral_collector_resend_failures_total") > failures
    });
    assert!(
        collector.0.try_wait().unwrap().is_none(),
        "the collector still runs"
    );
    assert!(metric("corral_collector_in_flight_records") >= 5);

    // Killed while they wait, and started again against a broker that has the topic: what was
    // never acknowledged is read again from the checkpoint and delivered.
    drop(collector);
    drop(broker);
    let broker = Broker::start();
    broker.create_topic(topic, 1);
    let _collector = serving_collector(root.path(), &broker, topic, port);
    // Every line read again is delivered: nothing in flight, nothing waiting.
    let mut read = 0;
    wait_until("the lines read again delivered", Duration::from_secs(60), || {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return false;
        }
        read = metric("corral_collector_lines_read_total");
        read >= waiting.len() as u64
            && metric("corral_collector_in_flight_records") == 0
            && corral_tests::http::get(port, "/readyz").0 == 200
    });
    let held: Vec<String> = broker
        .consume_at_least(topic, read as usize, Duration::from_secs(60))
        .iter()
        .map(|m| {
            serde_json::from_slice::<Record>(m.payload().unwrap())
                .unwrap()
                .msg
        })
        .collect();
    for line in &waiting {
        assert!(
            held.contains(line),
            "{line} delivered after the restart: {held:?}"
        );
    }
}
