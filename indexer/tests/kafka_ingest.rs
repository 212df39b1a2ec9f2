//! The indexer against a real Kafka-protocol broker (tansu): exactly once in the index across
//! repeated SIGKILLs, and bad messages indexed without stalling their partition.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use corral_indexer::manifest::Checkpoint;
use corral_indexer::store::{SplitStore, StoreOptions, all_ids};
use corral_schema::{Level, Record, Timestamp};
use corral_tests::broker::{Broker, free_port};
use corral_tests::disk::SmallDisk;
use corral_tests::http;
use corral_tests::process::{ChildGuard, wait_for, wait_for_ok, wait_until};
use corral_tests::record::{BASE_TS, at, record};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");

fn start_indexer(broker: &Broker, topic: &str, data_dir: &Path, port: u16) -> ChildGuard {
    start_indexer_with(broker, topic, data_dir, port, "split_max_docs = 4000\n", "")
}

/// Starts `serve` with `indexer_keys` added to its `[indexer]` section and `extra` to its
/// config.
fn start_indexer_with(
    broker: &Broker,
    topic: &str,
    data_dir: &Path,
    port: u16,
    indexer_keys: &str,
    extra: &str,
) -> ChildGuard {
    let config = data_dir.with_extension("toml");
    std::fs::write(
        &config,
        format!(
            "[indexer]\ncommit_interval = \"200ms\"\nwriter_memory_mb = 32\n{indexer_keys}[kafka]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n{extra}"
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--brokers",
            &broker.bootstrap_servers(),
            "--topic",
            topic,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&config)
        // No static membership: tansu 0.6 revokes a static member's partitions right after
        // assigning them, every session timeout, so the group never settles.
        .env_remove("POD_NAME")
        .env(
            "CORRAL_LOG",
            std::env::var("CORRAL_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("start corral-indexer");
    ChildGuard(child)
}

/// Messages whose delivery failed for good (key, payload), kept to be sent again: this test is
/// about the indexer, so a message the broker did not take must not count against it.
#[derive(Default)]
struct Undelivered(Mutex<Vec<(Vec<u8>, Vec<u8>)>>);

impl ClientContext for Undelivered {}

impl ProducerContext for Undelivered {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            eprintln!(
                "delivery to partition {} failed, sending again: {error}",
                message.partition()
            );
            let key = message.key().unwrap_or_default().to_vec();
            let payload = message.payload().unwrap_or_default().to_vec();
            self.0.lock().unwrap().push((key, payload));
        }
    }
}

fn producer(broker: &Broker) -> ThreadedProducer<Undelivered> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.max.bytes", "10000000")
        .create_with_context(Undelivered::default())
        .expect("producer")
}

/// Record `n` of five services' pods `pod-0` … `pod-6`, one request per five records, a µs apart.
fn envelope(n: u64) -> Record {
    let pod = format!("pod-{}", n % 7);
    Record {
        ts: at(BASE_TS).saturating_add_nanos(n as i64 * 1_000),
        service: ["gateway", "orders", "payments", "inventory", "notifications"][(n % 5) as usize].into(),
        instance: format!("{pod}/app"),
        pod,
        corr: Some(format!("req-{}", n / 5)),
        ..record(n)
    }
}

/// Total records the indexer reports through `/api/v1/stats`, if it answers.
fn indexed(port: u16) -> Option<u64> {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    drop(stream);
    let (status, body) = http::get(port, "/api/v1/stats?by=service");
    if status != 200 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(&body).ok()?;
    value["total"].as_u64()
}

fn wait_for_total(port: u16, expected: u64, timeout: Duration, broker: &Broker) {
    if let Err(last) = try_wait_for_total(port, expected, timeout) {
        panic!(
            "the indexer reported {last:?} records after {timeout:?}, expected {expected}\nbroker log:\n{}",
            broker.logs()
        );
    }
}

/// Waits until the indexer reports `expected` records; the last total it reported if not.
fn try_wait_for_total(port: u16, expected: u64, timeout: Duration) -> Result<(), Option<u64>> {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < timeout {
        last = indexed(port);
        if last.is_some_and(|n| n >= expected) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

/// What a failed exactly-once run needs to be understood: which records the index lacks, where
/// the broker holds them, and the checkpoints the index recorded.
fn diagnose_missing(data_dir: &Path, broker: &Broker, topic: &str, records: u64, sent: u64) -> String {
    let mut report = String::new();
    let indexed: BTreeSet<u64> = all_ids(data_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|id| u64::from_str_radix(id, 16).ok())
        .collect();
    let missing: Vec<u64> = (0..records).filter(|n| !indexed.contains(n)).collect();
    report += &format!("{} of {records} records missing from the index\n", missing.len());
    // The producer has finished: the topic's ends are final.
    let messages = broker.consume_all(topic, sent as usize, Duration::ZERO, Duration::from_secs(60));
    let mut on_broker: HashMap<u64, Vec<(i32, i64)>> = HashMap::new();
    for message in &messages {
        let Some(record) = message
            .payload()
            .and_then(|p| serde_json::from_slice::<Record>(p).ok())
        else {
            continue;
        };
        if let Ok(n) = u64::from_str_radix(&record.id, 16) {
            on_broker
                .entry(n)
                .or_default()
                .push((message.partition(), message.offset()));
        }
    }
    report += &format!(
        "the broker holds {} messages, {} distinct records\n",
        messages.len(),
        on_broker.len()
    );
    for n in missing.iter().take(40) {
        report += &format!(
            "  record {n}: on the broker at (partition, offset) {:?}\n",
            on_broker.get(n)
        );
    }
    for dir in corral_indexer::store::sealed_split_dirs(data_dir).unwrap_or_default() {
        let manifest = std::fs::read_to_string(dir.join("corral-split.json")).unwrap_or_default();
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap_or_default();
        report += &format!(
            "sealed {}: {} docs, checkpoint {}\n",
            dir.display(),
            manifest["docs"],
            manifest["checkpoint"]
        );
    }
    for entry in std::fs::read_dir(data_dir.join("active"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let meta = std::fs::read_to_string(entry.path().join("meta.json")).unwrap_or_default();
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap_or_default();
        report += &format!("active {}: payload {}\n", entry.path().display(), meta["payload"]);
    }
    report
}

/// The index's checkpoint as its files say now: per partition, the highest next offset of the
/// sealed splits' manifests and of the active split's last commit.
fn index_checkpoint(data_dir: &Path) -> Checkpoint {
    let mut checkpoint = Checkpoint::new();
    let mut take = |value: &serde_json::Value| {
        for (partition, next) in value.as_object().into_iter().flatten() {
            if let (Ok(partition), Some(next)) = (partition.parse::<i32>(), next.as_i64()) {
                let known = checkpoint.entry(partition).or_insert(next);
                *known = (*known).max(next);
            }
        }
    };
    for dir in corral_indexer::store::sealed_split_dirs(data_dir).unwrap_or_default() {
        let manifest = std::fs::read_to_string(dir.join("corral-split.json")).unwrap_or_default();
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap_or_default();
        take(&manifest["checkpoint"]);
    }
    for entry in std::fs::read_dir(data_dir.join("active"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let meta = std::fs::read_to_string(entry.path().join("meta.json")).unwrap_or_default();
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap_or_default();
        let state: serde_json::Value =
            serde_json::from_str(meta["payload"].as_str().unwrap_or("null")).unwrap_or_default();
        take(&state["checkpoint"]);
    }
    checkpoint
}

/// Waits until the index has read every partition of `topic` (the producers done) to its end,
/// so nothing more can arrive: what it holds now is what it will hold.
fn wait_for_index_at_topic_ends(data_dir: &Path, broker: &Broker, topic: &str, partitions: i32) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .create()
        .unwrap();
    let ends: Checkpoint = (0..partitions)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (p, high)
        })
        .collect();
    corral_tests::process::wait_until(
        &format!("the index's checkpoint at the topic's ends {ends:?}"),
        Duration::from_secs(60),
        || {
            let at = index_checkpoint(data_dir);
            ends.iter()
                .all(|(p, end)| *end == 0 || at.get(p).is_some_and(|next| next >= end))
        },
    );
}

#[test]
fn every_record_is_indexed_exactly_once_across_sigkills() {
    const RECORDS: u64 = 50_000;
    let broker = Broker::start();
    let topic = "exactly-once";
    broker.create_topic(topic, 4);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("indexer");
    let port = free_port().unwrap();

    // Produce in the background, spread over ~45 s (a restarted indexer waits ~6 s for the
    // group to drop its killed predecessor), with re-sends: every 10th
    // record again right after, every 97th again much later.
    let produce = {
        let producer = producer(&broker);
        let topic = topic.to_owned();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            let mut send = |record: &Record| {
                let payload = serde_json::to_vec(record).unwrap();
                let key = record.kafka_key().to_owned();
                loop {
                    match producer.send(BaseRecord::to(&topic).key(&key).payload(&payload)) {
                        Ok(()) => break,
                        Err((_, _)) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                sent += 1;
            };
            for n in 0..RECORDS {
                let record = envelope(n);
                send(&record);
                if n % 10 == 0 {
                    send(&record);
                }
                if n >= 20_000 && n % 97 == 0 {
                    send(&envelope(n - 20_000));
                }
                if n % 1_000 == 999 {
                    // Pacing, not waiting: production is spread over the kills.
                    std::thread::sleep(Duration::from_millis(900));
                }
            }
            producer.flush(Duration::from_secs(30)).unwrap();
            loop {
                let failed = std::mem::take(&mut *producer.context().0.lock().unwrap());
                if failed.is_empty() {
                    break;
                }
                for (key, payload) in failed {
                    while producer
                        .send(BaseRecord::to(&topic).key(&key).payload(&payload))
                        .is_err()
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    sent += 1;
                }
                producer.flush(Duration::from_secs(30)).unwrap();
            }
            sent
        })
    };

    // Each kill comes once the restarted indexer has made progress, a moment into its next
    // commits, so every one interrupts ingest.
    let mut indexer = start_indexer(&broker, topic, &data_dir, port);
    let mut totals = Vec::new();
    let mut last = 0;
    for kill in 0..7u64 {
        wait_until(
            &format!("progress after restart {kill}; searchable before each kill: {totals:?}"),
            Duration::from_secs(60),
            || indexed(port).is_some_and(|n| n > last),
        );
        std::thread::sleep(Duration::from_millis(150 + 170 * (kill % 3)));
        let before = indexed(port);
        totals.push(before);
        last = before.unwrap_or(last);
        indexer.0.kill().unwrap();
        indexer.0.wait().unwrap();
        indexer = start_indexer(&broker, topic, &data_dir, port);
    }
    let sent = produce.join().unwrap();
    assert!(sent > RECORDS + RECORDS / 10, "re-sends were produced: {sent}");
    if let Err(last) = try_wait_for_total(port, RECORDS, Duration::from_secs(180)) {
        indexer.terminate(Duration::from_secs(30));
        panic!(
            "the indexer reported {last:?} records after 180 s, expected {RECORDS}\n{}\nbroker log:\n{}",
            diagnose_missing(&data_dir, &broker, topic, RECORDS, sent),
            broker.logs()
        );
    }
    // Every partition read to its end: a duplicate that slipped through is counted by now.
    wait_for_index_at_topic_ends(&data_dir, &broker, topic, 4);
    let total = indexed(port).unwrap();
    indexer.terminate(Duration::from_secs(30));

    let ids = all_ids(&data_dir).unwrap();
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for id in &ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        repeated.is_empty(),
        "ids indexed more than once, e.g. {repeated:?}"
    );
    assert_eq!(counts.len() as u64, RECORDS, "distinct ids in the index");
    assert_eq!(ids.len() as u64, RECORDS, "documents in the index");
    for n in (0..RECORDS).step_by(7) {
        assert!(
            counts.contains_key(format!("{n:032x}").as_str()),
            "record {n} missing"
        );
    }
    assert_eq!(total, RECORDS);
    // Splits were sealed along the way (at 4,000 records or more each; catching up after a
    // restart makes bigger ones), in the background while ingest went on.
    let sealed = corral_indexer::store::sealed_split_dirs(&data_dir).unwrap().len();
    assert!((4..=13).contains(&sealed), "{sealed} splits sealed");
    // The kills happened while records were arriving, after some had been committed.
    eprintln!("records searchable just before each SIGKILL: {totals:?}");
    assert!(
        totals
            .iter()
            .filter(|t| t.is_some_and(|t| t > 0 && t < RECORDS))
            .count()
            >= 5,
        "kills during ingest: {totals:?}"
    );
}

/// A checkpoint can fall inside a producer's record batch. tansu 0.6 serves a fetch from the
/// first batch starting at or after the requested offset (Kafka serves the batch holding it), so
/// resuming exactly at such a checkpoint would skip the rest of the batch.
#[test]
fn a_checkpoint_inside_a_record_batch_resumes_without_skipping_its_rest() {
    let broker = Broker::start();
    let topic = "mid-batch";
    broker.create_topic(topic, 1);
    // 100 records in one batch: a long linger, then one flush.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("linger.ms", "5000")
        .set("batch.num.messages", "1000")
        .create()
        .expect("producer");
    for n in 0..100 {
        let payload = serde_json::to_vec(&envelope(n)).unwrap();
        producer
            .send(BaseRecord::to(topic).key("same").payload(&payload))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let offsets: Vec<i64> = broker
        .consume_all(topic, 100, Duration::ZERO, Duration::from_secs(30))
        .iter()
        .map(|m| m.offset())
        .collect();
    assert_eq!(offsets, (0..100).collect::<Vec<i64>>());

    // An index that holds the first 50 and says so in its checkpoint, as a crash leaves it.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("indexer");
    let mut store = SplitStore::open(
        &data_dir,
        StoreOptions {
            split_max_docs: 1_000_000,
            split_max_age: Duration::from_secs(3600),
            writer_memory_bytes: 16 * 1024 * 1024,
            indexer_name: "indexer-0".into(),
            max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
        },
    )
    .unwrap();
    for n in 0..50 {
        let record = envelope(n);
        let source = serde_json::to_string(&record).unwrap();
        store.add(record, source).unwrap();
    }
    store.close(&Checkpoint::from([(0, 50)])).unwrap();

    let port = free_port().unwrap();
    let indexer = start_indexer(&broker, topic, &data_dir, port);
    wait_for_total(port, 100, Duration::from_secs(60), &broker);
    // Nothing more arrives once the partition is read to its end: the records re-read before
    // the checkpoint were dropped.
    wait_for_index_at_topic_ends(&data_dir, &broker, topic, 1);
    assert_eq!(indexed(port), Some(100));
    indexer.terminate(Duration::from_secs(30));
    let mut ids = all_ids(&data_dir).unwrap();
    ids.sort();
    let expected: Vec<String> = (0..100).map(|n| format!("{n:032x}")).collect();
    assert_eq!(ids, expected);
}

#[test]
fn bad_messages_are_indexed_and_never_stall_their_partition() {
    let broker = Broker::start();
    let topic = "bad-input";
    broker.create_topic(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("indexer");
    let port = free_port().unwrap();

    let mut conflict_number = envelope(1);
    conflict_number
        .fields
        .insert("amount".into(), serde_json::json!(42));
    let mut conflict_string = envelope(2);
    conflict_string
        .fields
        .insert("amount".into(), serde_json::json!("forty-two"));
    let mut huge = envelope(3);
    huge.msg = format!("start {} hugeword", "y".repeat(3 * 1024 * 1024));
    let payloads: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&envelope(0)).unwrap(),
        b"Traceback (most recent call last): not json at all".to_vec(),
        br#"{"msg":"missing everything","level":"warn","corr":"bad-1"}"#.to_vec(),
        serde_json::to_vec(&conflict_number).unwrap(),
        serde_json::to_vec(&conflict_string).unwrap(),
        serde_json::to_vec(&huge).unwrap(),
        b"\xff\xfe invalid utf-8".to_vec(),
        serde_json::to_vec(&envelope(4)).unwrap(),
    ];
    let producer = producer(&broker);
    for payload in &payloads {
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(payload))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let indexer = start_indexer(&broker, topic, &data_dir, port);
    wait_for_total(port, payloads.len() as u64, Duration::from_secs(60), &broker);
    let search = |query: &str| -> Vec<Record> {
        let (status, body) = http::get(port, &format!("/api/v1/search?{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        serde_json::from_value(value["hits"].clone()).unwrap()
    };
    // The record after all the bad ones arrived: the partition did not stall.
    let request: Vec<Record> = search("corr=req-0");
    assert_eq!(
        request.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        (0..5u64).map(|n| format!("{n:032x}")).collect::<Vec<_>>()
    );
    assert_eq!(search("q=%22record+4%22").len(), 1);
    let traceback = search("q=Traceback");
    assert_eq!(traceback.len(), 1);
    assert_eq!(
        traceback[0].flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        vec!["invalid_envelope", "unparsed"]
    );
    let salvaged = search("corr=bad-1");
    assert_eq!(salvaged.len(), 1);
    assert_eq!(salvaged[0].msg, "missing everything");
    assert_eq!(salvaged[0].level, Some(Level::Warn));
    assert_eq!(salvaged[0].service, "unknown");
    assert_eq!(search("q=fields.amount:42").len(), 1);
    assert_eq!(search("q=fields.amount:forty").len(), 1);
    let big = search("q=hugeword");
    assert_eq!(big.len(), 1);
    assert_eq!(big[0].msg.len(), huge.msg.len());
    let utf8 = search("q=invalid");
    assert_eq!(utf8.len(), 1);
    assert!(utf8[0].msg.starts_with("\u{fffd}\u{fffd} invalid"));

    let (_, metrics) = http::get(port, "/metrics");
    assert!(
        metrics.contains("corral_indexer_invalid_records_total{reason=\"not_json\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("corral_indexer_invalid_records_total{reason=\"bad_envelope\"} 1"));
    assert!(metrics.contains("corral_indexer_records_indexed_total 8"));
    indexer.terminate(Duration::from_secs(30));
}

/// Waits until the audit log shows retention moving `expected` records in all.
fn wait_for_moved(port: u16, expected: u64, token: Option<&str>) {
    wait_for_ok(
        &format!("retention to move {expected} old records"),
        Duration::from_secs(60),
        || {
            let audit = match token {
                Some(token) => get_as(port, "/api/v1/audit?who=retention", token),
                None => serde_json::from_str(&http::get(port, "/api/v1/audit?who=retention").1).unwrap(),
            };
            let moved: u64 = audit["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["action"] == "retention.move")
                .map(|e| e["count"].as_u64().unwrap())
                .sum();
            if moved == expected {
                Ok(())
            } else {
                Err(format!("moved {moved}: {audit}"))
            }
        },
    );
}

/// GET with a bearer token; the JSON body.
fn get_as(port: u16, path: &str, token: &str) -> serde_json::Value {
    let auth = format!("Bearer {token}");
    let (status, body) = http::get_with(port, path, &[("Authorization", auth.as_str())]);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn the_serving_indexer_moves_old_splits_to_archive_where_only_auditors_find_them() {
    const READER: &str = "reader-token-aaaaaaaaaaaaaaaa";
    const AUDITOR: &str = "auditor-token-bbbbbbbbbbbbbbbb";
    let broker = Broker::start();
    let topic = "retention";
    broker.create_topic(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("indexer");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"rita\"\ntoken = \"{READER}\"\nrole = \"reader\"\n\
             [[token]]\nname = \"audrey\"\ntoken = \"{AUDITOR}\"\nrole = \"auditor\"\n"
        ),
    )
    .unwrap();
    let port = free_port().unwrap();
    // Records from 30 days ago: past the hot tier's 7 days, well inside the archive's 400.
    let month_ago = Timestamp::now().saturating_add_nanos(-30 * 86_400_000_000_000);
    let producer = producer(&broker);
    let send = |record: &Record| {
        producer
            .send(
                BaseRecord::to(topic)
                    .key(record.kafka_key())
                    .payload(&serde_json::to_vec(record).unwrap()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    };
    for n in 0..200 {
        let mut record = envelope(n);
        record.ts = month_ago.saturating_add_nanos(n as i64);
        send(&record);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    // Splits are sealed once a second, so the old records are sealed on their own.
    let indexer = start_indexer_with(
        &broker,
        topic,
        &data_dir,
        port,
        "split_max_age = \"1s\"\n",
        &format!(
            "[retention]\ncheck_interval = \"1s\"\n[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.tiers]]\nname = \"archive\"\nmax_age = \"400d\"\n[auth]\ntokens_file = \"{}\"\n",
            tokens.display()
        ),
    );

    wait_until("the indexer to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    // The indexer's own retention passes move what it sealed to the archive tier.
    wait_for_moved(port, 200, Some(AUDITOR));
    // Fresh records stay hot.
    for n in 1000..1010 {
        let mut record = envelope(n);
        // Observed now too: a ts far after its observed_ts would be indexed at observed_ts.
        record.ts = Timestamp::now();
        record.observed_ts = record.ts;
        send(&record);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    wait_until("the fresh records to be indexed", Duration::from_secs(60), || {
        get_as(port, "/api/v1/stats?by=service", AUDITOR)["total"].as_u64() == Some(210)
    });

    // An auditor finds an archived request; a reader does not, and is told why.
    let audited = get_as(port, "/api/v1/search?corr=req-7", AUDITOR);
    assert_eq!(audited["count"], 5, "{audited}");
    assert!(
        audited["tiers"].as_array().unwrap().contains(&"archive".into()),
        "{audited}"
    );
    assert_eq!(audited["complete"], true, "{audited}");
    let read = get_as(port, "/api/v1/search?corr=req-7", READER);
    assert_eq!(read["count"], 0, "{read}");
    assert!(read["notice"].as_str().unwrap().contains("hot"), "{read}");
    // The answer says it is incomplete, and which tier's splits the role hid.
    let hidden = |answer: &serde_json::Value| -> Vec<(String, u64, String)> {
        answer["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["tier"].as_str().unwrap_or_default().to_owned(),
                    m["splits"].as_u64().unwrap_or(0),
                    m["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(read["complete"], false, "{read}");
    let read_missing = hidden(&read);
    assert_eq!(read_missing.len(), 1, "{read}");
    assert_eq!(read_missing[0].0, "archive");
    assert!(read_missing[0].1 >= 1, "{read}");
    assert_eq!(read_missing[0].2, corral_schema::api::HIDDEN_TIER_REASON);
    let fresh = get_as(port, "/api/v1/search?corr=req-201", READER);
    assert_eq!(fresh["count"], 5, "{fresh}");
    assert_eq!(
        fresh["complete"], false,
        "the archive might hold more of it: {fresh}"
    );
    // A time range the archive does not reach hides nothing.
    let recent = get_as(port, "/api/v1/search?corr=req-201&since=1h", READER);
    assert_eq!(
        (recent["count"].as_u64(), &recent["complete"]),
        (Some(5), &true.into()),
        "{recent}"
    );
    let stats = get_as(port, "/api/v1/stats?by=service", READER);
    assert_eq!(stats["complete"], false, "{stats}");
    assert_eq!(hidden(&stats), read_missing, "{stats}");
    // logq exits 3 and says why on stderr; 0 when the answer is complete.
    let logq = |extra: &[&str]| {
        Command::new(corral_tests::process::workspace_binary("logq"))
            .args([
                "--corr",
                "req-201",
                "-o",
                "jsonl",
                "--endpoint",
                &format!("http://127.0.0.1:{port}"),
            ])
            .args(["--token", READER])
            .args(extra)
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .output()
            .unwrap()
    };
    let output = logq(&[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("logq: incomplete answer: ")
            && stderr.contains("split(s) of tier archive not searched: the caller's role (reader)"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 5);
    let output = logq(&["--since", "1h"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A phrase cannot search the archive (no positions): the hot records answer, and the
    // response says what was left out.
    let phrase = get_as(port, "/api/v1/search?q=%22record%201005%22", AUDITOR);
    assert_eq!(phrase["count"], 1, "{phrase}");
    assert!(
        phrase["notice"]
            .as_str()
            .unwrap()
            .contains("of tier archive not searched: phrase queries"),
        "{phrase}"
    );
    assert_eq!(phrase["complete"], false, "{phrase}");
    let phrase_missing = hidden(&phrase);
    assert_eq!(phrase_missing.len(), 1, "{phrase}");
    assert_eq!(
        (phrase_missing[0].0.as_str(), phrase_missing[0].2.as_str()),
        ("archive", corral_schema::api::NO_POSITIONS_REASON)
    );
    // A single word searches every tier: complete.
    let word = get_as(port, "/api/v1/search?q=record", AUDITOR);
    assert_eq!(word["complete"], true, "{word}");
    indexer.terminate(Duration::from_secs(30));

    let output = std::process::Command::new(BIN)
        .arg("verify")
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Envelopes written by other producers: RFC 3339 with fewer digits or an offset is accepted
/// and normalised to UTC nanoseconds (keys this version does not know are kept), and a `ts` in
/// the year 2200 is indexed at `observed_ts` — so its split ages out on schedule instead of
/// staying hot (and inside every `since=`) until 2200.
#[test]
fn other_producers_timestamps_are_normalised_and_a_far_future_one_ages_out() {
    let broker = Broker::start();
    let topic = "producers";
    broker.create_topic(topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("indexer");
    let port = free_port().unwrap();
    let month_ago = Timestamp::now().saturating_add_nanos(-30 * 86_400_000_000_000);
    let envelope_json = |n: u64, ts: &str, observed: &str, extra: &str| {
        let mut value = serde_json::to_value(envelope(n)).unwrap();
        value["ts"] = ts.into();
        value["observed_ts"] = observed.into();
        value["corr"] = format!("producer-{n}").into();
        if !extra.is_empty() {
            value[extra] = "kept".into();
        }
        value.to_string()
    };
    let payloads = [
        envelope_json(
            1,
            "2026-11-23T10:15:00Z",
            "2026-11-23T12:15:01+02:00",
            "producer_note",
        ),
        envelope_json(2, "2026-11-23T12:15:00.5+02:00", "2026-11-23T10:15:01.25Z", ""),
        envelope_json(3, "2200-01-01T00:00:00Z", &month_ago.to_string(), ""),
    ];
    let producer = producer(&broker);
    for payload in &payloads {
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(payload.as_bytes()))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let indexer = start_indexer_with(
        &broker,
        topic,
        &data_dir,
        port,
        "split_max_age = \"1s\"\n",
        "[retention]\ncheck_interval = \"1s\"\n[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.tiers]]\nname = \"archive\"\nmax_age = \"400d\"\n",
    );
    wait_for_total(port, 3, Duration::from_secs(60), &broker);
    let search = |query: &str| -> serde_json::Value {
        let (status, body) = http::get(port, &format!("/api/v1/search?{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let one = |corr: &str| {
        let found = search(&format!("corr={corr}"));
        assert_eq!(found["count"], 1, "{found}");
        found["hits"][0].clone()
    };
    let first = one("producer-1");
    assert_eq!(first["ts"], "2026-11-23T10:15:00.000000000Z", "{first}");
    assert_eq!(first["observed_ts"], "2026-11-23T10:15:01.000000000Z", "{first}");
    assert_eq!(first["producer_note"], "kept", "{first}");
    assert!(first.get("flags").is_none(), "{first}");
    let second = one("producer-2");
    assert_eq!(second["ts"], "2026-11-23T10:15:00.500000000Z", "{second}");
    assert_eq!(
        second["observed_ts"], "2026-11-23T10:15:01.250000000Z",
        "{second}"
    );
    // Time ranges see the normalised instants.
    let window = search("since=2026-11-23T10:15:00.2Z&until=2026-11-23T10:15:00.6Z");
    assert_eq!(window["count"], 1, "{window}");
    assert_eq!(window["hits"][0]["corr"], "producer-2");
    let future = one("producer-3");
    assert_eq!(future["flags"], serde_json::json!(["ts_adjusted"]), "{future}");
    assert_eq!(
        future["original_ts"], "2200-01-01T00:00:00.000000000Z",
        "{future}"
    );
    assert_eq!(future["ts"], month_ago.to_string(), "{future}");
    assert_eq!(search("since=2100-01-01T00:00:00Z")["count"], 0);
    // Every record is past the hot tier's 7 days, the adjusted one included: all move.
    wait_for_moved(port, 3, None);
    assert_eq!(one("producer-3")["original_ts"], "2200-01-01T00:00:00.000000000Z");
    let (_, metrics) = http::get(port, "/metrics");
    assert!(
        metrics.contains("corral_indexer_ts_adjusted_total 1"),
        "{metrics}"
    );
    indexer.terminate(Duration::from_secs(30));
}

/// Regression: on a full data dir the indexer exited with "An index writer was killed". Now it
/// stops ingesting with an error naming the data dir and its free space, `/readyz` answers 503,
/// queries are still answered, and ingest resumes by itself when space returns — with every
/// record indexed exactly once.
#[test]
fn a_full_disk_pauses_ingest_keeps_answering_and_resumes_with_every_record_once() {
    full_disk(Fill::PausedBeforeFull);
}

/// The same when writes fail for lack of space (no reserve: `min_free_bytes = 0`): each failed
/// write is recovered from in-process — the store reopens at its last commit, the source is
/// rewound to it — and once space returns every record is there exactly once.
#[test]
fn writes_that_fail_on_a_full_disk_are_recovered_with_every_record_once() {
    full_disk(Fill::WritesFail);
}

#[derive(Clone, Copy, PartialEq)]
enum Fill {
    PausedBeforeFull,
    WritesFail,
}

fn full_disk(fill: Fill) {
    const RECORDS: u64 = 60_000;
    let broker = Broker::start();
    let topic = "full-disk";
    broker.create_topic(topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "96m");
    let data_dir = disk.path.join("indexer");
    // Leave ~28 MiB: the index of the records below needs more. Without a reserve, less: a
    // seal that does not fit waits, so only the records themselves must overflow it.
    let leave = match fill {
        Fill::PausedBeforeFull => 28,
        Fill::WritesFail => 12,
    };
    let ballast = disk.fill("ballast", leave * 1024 * 1024);
    let producer = producer(&broker);
    let mut words = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..RECORDS {
        let mut record = envelope(n);
        // Text that compresses poorly, so the index grows as a real one would.
        let mut text = String::new();
        for _ in 0..24 {
            words ^= words << 13;
            words ^= words >> 7;
            words ^= words << 17;
            text.push_str(&format!("{:x} ", words % 1_000_003));
        }
        record.msg = format!("record {n} {text}");
        let payload = serde_json::to_vec(&record).unwrap();
        while producer
            .send(BaseRecord::to(topic).key(record.kafka_key()).payload(&payload))
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    assert!(
        producer.context().0.lock().unwrap().is_empty(),
        "every record delivered"
    );

    let port = free_port().unwrap();
    let min_free = match fill {
        Fill::PausedBeforeFull => 8 * 1024 * 1024,
        Fill::WritesFail => 0,
    };
    let indexer = start_indexer_with(
        &broker,
        topic,
        &data_dir,
        port,
        &format!("split_max_docs = 20000\nmin_free_bytes = {min_free}\n"),
        // A rebalance waits at most this long for a member that stopped polling.
        "\"max.poll.interval.ms\" = 20000\n",
    );
    if fill == Fill::PausedBeforeFull {
        // The disk fills: ingest pauses, says why, and the API still answers.
        let why = wait_for(
            "ingest to pause for the full disk",
            Duration::from_secs(120),
            || {
                if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                    drop(stream);
                    let (status, body) = http::get(port, "/readyz");
                    if status == 503 && body.contains("disk full") {
                        return Some(body);
                    }
                }
                assert!(
                    indexed(port) != Some(RECORDS),
                    "everything fitted: the disk never filled"
                );
                None
            },
        );
        assert!(
            why.contains(&data_dir.display().to_string()) && why.contains("MiB free"),
            "{why}"
        );
        let (_, metrics) = http::get(port, "/metrics");
        assert!(metrics.contains("corral_indexer_ingest_paused 1"), "{metrics}");
    } else {
        // Writes fail and are recovered from, again and again while the disk stays full.
        wait_until(
            "a write to fail for the full disk",
            Duration::from_secs(120),
            || {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let (_, metrics) = http::get(port, "/metrics");
                    if metrics
                        .lines()
                        .find_map(|l| l.strip_prefix("corral_indexer_write_failures_recovered_total "))
                        .is_some_and(|n| n.trim() != "0")
                    {
                        return true;
                    }
                }
                assert!(
                    indexed(port) != Some(RECORDS),
                    "everything fitted: the disk never filled"
                );
                false
            },
        );
    }
    if fill == Fill::PausedBeforeFull {
        // The reserve leaves room for the audit entry every query writes. (Without one, a
        // query on a full disk is refused: it cannot be audited.)
        // (The pause itself was seen above. It may already have ended: a merge that finished
        // meanwhile can free enough for ingest to resume, so the count is not checked here.)
        indexed(port).expect("stats answered while the disk is full");
        let (status, body) = http::get(port, "/api/v1/search?corr=req-1");
        assert_eq!(status, 200, "{body}");
    }

    // Space returns: ingest resumes by itself and catches up.
    std::fs::remove_file(&ballast).unwrap();
    wait_for_total(port, RECORDS, Duration::from_secs(180), &broker);
    let (status, _) = http::get(port, "/readyz");
    assert_eq!(status, 200);
    indexer.terminate(Duration::from_secs(30));
    let ids = all_ids(&data_dir).unwrap();
    assert_eq!(ids.len() as u64, RECORDS, "documents in the index");
    assert_eq!(
        corral_indexer::store::distinct(&ids) as u64,
        RECORDS,
        "distinct ids"
    );
    drop(disk);
}

/// A partition moved to another member keeps the offset its new owner commits: the indexer
/// commits only the partitions it is assigned now, not every partition in its checkpoint.
#[test]
fn offsets_are_committed_only_for_partitions_the_indexer_is_assigned() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let broker = Broker::start();
    let topic = "moved";
    broker.create_topic(topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("indexer");
    let port = free_port().unwrap();
    let producer = producer(&broker);
    let send = |n: u64, partition: i32| {
        let record = envelope(n);
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(partition)
                    .key(record.kafka_key())
                    .payload(&serde_json::to_vec(&record).unwrap()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    };
    for n in 0..100 {
        send(n, (n % 2) as i32);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let indexer = start_indexer(&broker, topic, &data_dir, port);
    wait_for_total(port, 100, Duration::from_secs(60), &broker);

    // A second member of the group takes one of the two partitions and commits offset 1 for it.
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", corral_schema::fields::CONSUMER_GROUP)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    member.subscribe(&[topic]).unwrap();
    let started = Instant::now();
    let taken = loop {
        let _ = member.poll(Duration::from_millis(100));
        let assignment = member.assignment().unwrap();
        if let Some(element) = assignment.elements().first() {
            break element.partition();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the second member was never assigned a partition\nbroker log:\n{}",
            broker.logs()
        );
    };
    let kept = 1 - taken;
    let mut mine = TopicPartitionList::new();
    mine.add_partition_offset(topic, taken, Offset::Offset(1))
        .unwrap();
    member.commit(&mine, CommitMode::Sync).unwrap();

    // The indexer, owning the other partition only, indexes and commits more of it.
    for n in 100..140 {
        send(n, kept);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let mut both = TopicPartitionList::new();
    both.add_partition(topic, taken);
    both.add_partition(topic, kept);
    let committed = |partition: i32| {
        let offsets = member
            .committed_offsets(both.clone(), Duration::from_secs(10))
            .unwrap();
        offsets.find_partition(topic, partition).unwrap().offset()
    };
    let started = Instant::now();
    // 50 records were in the kept partition before, 40 more now.
    while committed(kept) != Offset::Offset(90) {
        let _ = member.poll(Duration::from_millis(100));
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the indexer never committed offset 90 of partition {kept} (it is at {:?})",
            committed(kept)
        );
    }
    assert_eq!(
        committed(taken),
        Offset::Offset(1),
        "the indexer committed partition {taken}, which it no longer owns, over its new owner's offset"
    );
    drop(member);
    drop(indexer);
}
