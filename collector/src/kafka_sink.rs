//! The Kafka sink (DESIGN §3.3): one message per record on `corral.logs.v1`, key = corr or
//! instance, value = the envelope JSON, header `corral-schema: 1`; acknowledged when the
//! broker confirms delivery (librdkafka's delivery report), so checkpoints follow Kafka.
//!
//! Producer defaults: `acks=all`, `enable.idempotence=true`, `compression.type=zstd`,
//! `linger.ms=20`; any librdkafka property can be set in the config's `[kafka.producer]` table.
//! A record larger than `message.max.bytes` is cut to fit and flagged `truncated`, never dropped.
//! A delivery that fails for good (after librdkafka's own retries) is produced again.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use corral_schema::fields::{SCHEMA_HEADER, SCHEMA_HEADER_V1};
use corral_schema::{Flag, Record};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::ack::Ticket;
use crate::sink::Sink;

/// Default `message.max.bytes` of librdkafka and of most brokers.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// Room for the message's key, header and batch overhead inside `message.max.bytes`.
const MESSAGE_OVERHEAD: usize = 4096;

/// Producer properties corral sets unless the config overrides them.
pub const PRODUCER_DEFAULTS: [(&str, &str); 4] = [
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("compression.type", "zstd"),
    ("linger.ms", "20"),
];

/// Counters of the sink, readable while it runs.
#[derive(Debug, Default)]
pub struct KafkaSinkStats {
    pub delivered: AtomicU64,
    pub delivery_errors: AtomicU64,
    pub truncated: AtomicU64,
}

#[derive(Debug, Default)]
struct Reports {
    acked: Vec<Ticket>,
    failed: Vec<(Ticket, Vec<u8>, Vec<u8>)>,
    /// The last client error (e.g. all brokers down), cleared by the next delivery.
    problem: Option<String>,
    errors_reported: u64,
}

/// Receives librdkafka's delivery reports on its polling thread.
#[derive(Debug)]
struct DeliveryContext {
    reports: Mutex<Reports>,
    stats: Arc<KafkaSinkStats>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, reason, "kafka client error");
        self.reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .problem = Some(format!("{error}: {reason}"));
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Self::DeliveryOpaque) {
        let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                reports.acked.push(*ticket);
                reports.problem = None;
            }
            Err((error, message)) => {
                self.stats.delivery_errors.fetch_add(1, Ordering::Relaxed);
                reports.errors_reported += 1;
                tracing::warn!(%error, "kafka delivery failed; producing again");
                let key = message.key().unwrap_or_default().to_vec();
                let payload = message.payload().unwrap_or_default().to_vec();
                reports.failed.push((*ticket, key, payload));
            }
        }
    }
}

/// Produces records to Kafka and acknowledges them on delivery.
pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
    max_message_bytes: usize,
    stats: Arc<KafkaSinkStats>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Connects to `brokers` and checks that `topic` exists; `properties` (the config's
    /// `[kafka.producer]` table) override the defaults. Errors name the brokers and the topic.
    pub fn connect(
        brokers: &str,
        topic: &str,
        properties: &BTreeMap<String, String>,
    ) -> anyhow::Result<KafkaSink> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers);
        for (key, value) in PRODUCER_DEFAULTS {
            config.set(key, value);
        }
        for (key, value) in properties {
            config.set(key, value);
        }
        let max_message_bytes = config
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let stats = Arc::new(KafkaSinkStats::default());
        let context = DeliveryContext {
            reports: Mutex::default(),
            stats: stats.clone(),
        };
        let producer: ThreadedProducer<DeliveryContext> = config
            .create_with_context(context)
            .context("cannot create the Kafka producer")?;
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("cannot reach Kafka brokers {brokers}"))?;
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
            Some(t) => bail!(
                "topic {topic} is not available on brokers {brokers}: {}",
                t.error()
                    .map(|e| format!("{:?}", RDKafkaErrorCode::from(e)))
                    .unwrap_or_else(|| "no partitions".into())
            ),
            None => bail!("topic {topic} does not exist on brokers {brokers}"),
        }
        Ok(KafkaSink {
            producer,
            topic: topic.to_owned(),
            max_message_bytes,
            stats,
        })
    }

    /// Returns the sink's counters.
    pub fn stats(&self) -> Arc<KafkaSinkStats> {
        self.stats.clone()
    }

    /// Serializes a record, cutting `msg` (then dropping `fields`) to fit `message.max.bytes`.
    fn payload(&self, record: &mut Record) -> io::Result<Vec<u8>> {
        let limit = self.max_message_bytes.saturating_sub(MESSAGE_OVERHEAD);
        let mut payload = serde_json::to_vec(&*record)?;
        if payload.len() <= limit {
            return Ok(payload);
        }
        self.stats.truncated.fetch_add(1, Ordering::Relaxed);
        record.add_flag(Flag::Truncated);
        let excess = payload.len() - limit;
        // JSON escaping can make the message longer than its text: cut with a margin, then check.
        let mut keep = record.msg.len().saturating_sub(excess + excess / 4 + 64);
        while !record.msg.is_char_boundary(keep) {
            keep -= 1;
        }
        record.msg.truncate(keep);
        payload = serde_json::to_vec(&*record)?;
        if payload.len() > limit {
            record.fields = serde_json::Map::new();
            record.msg.truncate(record.msg.len().min(limit / 8));
            while !record.msg.is_char_boundary(record.msg.len()) {
                record.msg.pop();
            }
            payload = serde_json::to_vec(&*record)?;
        }
        Ok(payload)
    }

    fn produce(&self, ticket: Ticket, key: &[u8], payload: &[u8], ts_millis: Option<i64>) -> io::Result<()> {
        let mut message = BaseRecord::with_opaque_to(&self.topic, Box::new(ticket))
            .key(key)
            .payload(payload)
            .headers(OwnedHeaders::new().insert(Header {
                key: SCHEMA_HEADER,
                value: Some(SCHEMA_HEADER_V1),
            }));
        if let Some(ts) = ts_millis {
            message = message.timestamp(ts);
        }
        loop {
            match self.producer.send(message) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // librdkafka's queue is full: wait for deliveries to drain it.
                    message = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => {
                    self.stats.delivery_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(io::Error::other(format!(
                        "cannot produce to {}: {error}",
                        self.topic
                    )));
                }
            }
        }
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, batch: Vec<(Ticket, Record)>) -> io::Result<()> {
        for (ticket, mut record) in batch {
            let payload = self.payload(&mut record)?;
            let ts_millis = record.ts.unix_nanos().div_euclid(1_000_000);
            self.produce(ticket, record.kafka_key().as_bytes(), &payload, Some(ts_millis))?;
        }
        Ok(())
    }

    fn problem(&self) -> Option<String> {
        self.reports().problem.clone()
    }

    fn take_delivery_errors(&mut self) -> u64 {
        std::mem::take(&mut self.reports().errors_reported)
    }

    fn poll_acks(&mut self, acks: &mut Vec<Ticket>) {
        let failed = {
            let mut reports = self
                .producer
                .context()
                .reports
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            acks.append(&mut reports.acked);
            std::mem::take(&mut reports.failed)
        };
        for (ticket, key, payload) in failed {
            if let Err(error) = self.produce(ticket, &key, &payload, None) {
                tracing::error!(%error, "cannot produce again; the record stays unacknowledged and is re-read on restart");
            }
        }
    }
}

impl KafkaSink {
    fn reports(&self) -> std::sync::MutexGuard<'_, Reports> {
        self.producer
            .context()
            .reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}
