//! The real-broker harness works end to end: 10,000 envelopes produced the way the collector
//! will produce them (idempotent, acks=all, zstd, keyed by corr) to a 4-partition topic come
//! back through a consumer group, each exactly once and equal to what was sent.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use corral_schema::{Level, Record, Stream, Timestamp, fields};
use corral_tests::broker::Broker;
use corral_tests::record::record;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const COUNT: usize = 10_000;
const TOPIC: &str = "roundtrip";

/// Envelope `i` as the collector would send it, every field varied the ways real ones vary.
fn envelope(i: usize) -> Record {
    let services = ["gateway", "orders", "payments", "inventory", "notifications"];
    let service = services[i % services.len()];
    Record {
        id: format!("{:016x}{:016x}", i as u64 ^ 0x9e37_79b9_7f4a_7c15, i as u64),
        ts: Timestamp::from_unix_nanos(1_795_428_900_000_000_000 + i as i64 * 1_000_001),
        observed_ts: Timestamp::from_unix_nanos(1_795_428_900_000_000_000 + i as i64 * 1_000_001 + 5_000),
        service: service.into(),
        version: if i.is_multiple_of(7) { "2.1.0".into() } else { "2.0.3".into() },
        instance: format!("{service}-7d9f8b6c4-x2k9p/app"),
        pod: format!("{service}-7d9f8b6c4-x2k9p"),
        stream: if i.is_multiple_of(11) { Stream::Stderr } else { Stream::Stdout },
        level: [None, Some(Level::Info), Some(Level::Warn), Some(Level::Error)][i % 4],
        corr: (!i.is_multiple_of(3)).then(|| format!("req-{}", i / 5)),
        msg: format!("handled request {i} with ünïcode and \"quotes\""),
        fields: serde_json::json!({"http": {"status": 200 + i % 5, "path": format!("/orders/{i}")}, "duration_ms": i as f64 / 7.0})
            .as_object()
            .unwrap()
            .clone(),
        ..record(i as u64)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_envelopes_round_trip_exactly_once() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 4);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "zstd")
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    let sent: Vec<Record> = (0..COUNT).map(envelope).collect();
    let mut deliveries = Vec::with_capacity(COUNT);
    for record in &sent {
        let payload = serde_json::to_vec(record).unwrap();
        let headers = OwnedHeaders::new().insert(Header {
            key: fields::SCHEMA_HEADER,
            value: Some(fields::SCHEMA_HEADER_V1),
        });
        let message = FutureRecord::to(TOPIC)
            .key(record.kafka_key())
            .payload(&payload)
            .headers(headers);
        deliveries.push(
            producer
                .send_result(message)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        );
    }
    for delivery in deliveries {
        delivery
            .await
            .expect("delivery not cancelled")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", "roundtrip-test")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");

    let expected: HashMap<&str, &Record> = sent.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut partitions = [0usize; 4];
    // The next offset to read of each partition.
    let mut next_offset = [0i64; 4];
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = Instant::now();
        assert!(
            now < deadline,
            "only {} of {COUNT} ids arrived in 90 s\n--- broker log ---\n{}",
            seen.len(),
            broker.logs()
        );
        let message = match tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            Ok(result) => result.expect("consume"),
            Err(_) => continue,
        };
        let received: Record =
            serde_json::from_slice(message.payload().expect("payload")).expect("envelope JSON");
        let original = expected
            .get(received.id.as_str())
            .unwrap_or_else(|| panic!("unexpected id {}", received.id));
        assert_eq!(&&received, original, "record {} changed in transit", received.id);
        assert_eq!(
            message.key(),
            Some(original.kafka_key().as_bytes()),
            "key of {}",
            received.id
        );
        let header = message.headers().expect("headers").get(0);
        assert_eq!(
            (header.key, header.value),
            (fields::SCHEMA_HEADER, Some(&b"1"[..]))
        );
        partitions[message.partition() as usize] += 1;
        next_offset[message.partition() as usize] = message.offset() + 1;
        *seen.entry(received.id).or_default() += 1;
        // Every id arrived: read on to the end of every partition, so a duplicate would show
        // (everything was delivered before reading began, so the ends do not move).
        if seen.len() == COUNT
            && (0..4).all(|partition| {
                let (_, high) = consumer
                    .fetch_watermarks(TOPIC, partition, Duration::from_secs(10))
                    .expect("watermarks");
                next_offset[partition as usize] >= high
            })
        {
            break;
        }
    }

    let duplicates: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "ids delivered more than once: {duplicates:?}"
    );
    assert_eq!(seen.len(), COUNT);
    assert_eq!(partitions.iter().sum::<usize>(), COUNT);
    assert!(
        partitions.iter().all(|n| *n > 0),
        "keys should spread over all 4 partitions: {partitions:?}"
    );
}
