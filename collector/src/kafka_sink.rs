//! The Kafka sink (DESIGN §3.3): one message per record on `corral.logs.v1`, key = corr or
//! instance, value = the envelope JSON, header `corral-schema: 1`; acknowledged when the
//! broker confirms delivery (librdkafka's delivery report), so checkpoints follow Kafka.
//!
//! Producer defaults: `acks=all`, `enable.idempotence=true`, `compression.type=zstd`,
//! `linger.ms=20`; any librdkafka property can be set in the config's `[kafka.producer]` table.
//! A record larger than `message.max.bytes` is cut to fit and flagged `truncated`, never dropped.
//! A delivery that fails for good (after librdkafka's own retries) is produced again; when
//! producing again fails too (other than a full queue: e.g. the topic is gone, the producer hit
//! a fatal error), the record waits in a [`ResendQueue`] and is tried again with exponential
//! backoff — never dropped, its ticket still unacknowledged — while [`Sink::problem`] says so
//! (`/readyz` not ready) and each failed attempt is counted.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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
    /// Bytes cut from records to fit `message.max.bytes`.
    pub truncated_bytes: AtomicU64,
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
                // Not ready until a delivery succeeds again: a record that keeps failing
                // (a deleted topic) must show although each re-send is taken at first.
                reports.problem = Some(format!(
                    "deliveries to Kafka fail ({error}); producing them again"
                ));
                tracing::warn!(%error, "kafka delivery failed; producing again");
                let key = message.key().unwrap_or_default().to_vec();
                let payload = message.payload().unwrap_or_default().to_vec();
                reports.failed.push((*ticket, key, payload));
            }
        }
    }
}

/// First wait before a failed re-send is tried again; doubled per failure up to [`RESEND_MAX_BACKOFF`].
pub const RESEND_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two attempts to produce a record again.
pub const RESEND_MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A record whose delivery failed and that could not be produced again yet.
#[derive(Debug)]
struct Resend {
    ticket: Ticket,
    key: Vec<u8>,
    payload: Vec<u8>,
}

/// Records waiting to be produced again, oldest first, with the backoff of their retries.
///
/// Holds at most what is in flight (the collector stops reading at `max_in_flight_bytes`), so
/// it is bounded like the rest of the in-flight window.
#[derive(Debug, Default)]
pub struct ResendQueue {
    waiting: VecDeque<Resend>,
    /// Failed attempts in a row; the backoff doubles with each.
    failures: u32,
    next_attempt: Option<Instant>,
    /// Why the last attempt failed, while records are waiting.
    problem: Option<String>,
    /// Failed attempts since [`ResendQueue::take_failures`] was last called.
    failed_attempts: u64,
}

impl ResendQueue {
    /// Queues a record to be produced again.
    pub fn push(&mut self, ticket: Ticket, key: Vec<u8>, payload: Vec<u8>) {
        self.waiting.push_back(Resend { ticket, key, payload });
    }

    /// Queues a record whose delivery failed at `now`. While deliveries keep failing, each
    /// round of re-sends waits a backoff that doubles, so a record the broker keeps refusing
    /// is not produced again in a busy loop; [`ResendQueue::delivered`] ends the streak.
    pub fn push_undelivered(&mut self, now: Instant, ticket: Ticket, key: Vec<u8>, payload: Vec<u8>) {
        self.push(ticket, key, payload);
        if self.next_attempt.is_none_or(|at| at <= now) {
            self.failures = self.failures.saturating_add(1);
            self.next_attempt = Some(now + self.backoff());
        }
    }

    /// Records that a delivery succeeded: the backoff starts again from [`RESEND_BACKOFF`].
    pub fn delivered(&mut self) {
        self.failures = 0;
    }

    /// The wait after the current streak of failures.
    fn backoff(&self) -> Duration {
        RESEND_BACKOFF
            .saturating_mul(2u32.saturating_pow(self.failures.saturating_sub(1)))
            .min(RESEND_MAX_BACKOFF)
    }

    /// Returns the number of records waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Returns true when no record waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Produces waiting records, oldest first, with `produce`, unless the backoff of the last
    /// failure has not passed at `now`. The first failure stops the round: the record stays at
    /// the head, the backoff doubles and [`ResendQueue::problem`] says why.
    pub fn retry(&mut self, now: Instant, mut produce: impl FnMut(Ticket, &[u8], &[u8]) -> io::Result<()>) {
        if self.waiting.is_empty() || self.next_attempt.is_some_and(|at| now < at) {
            return;
        }
        while let Some(head) = self.waiting.front() {
            match produce(head.ticket, &head.key, &head.payload) {
                Ok(()) => {
                    self.waiting.pop_front();
                }
                Err(error) => {
                    self.failed(now, &error);
                    return;
                }
            }
        }
        self.next_attempt = None;
        if self.problem.take().is_some() {
            tracing::info!("records produced again after failures");
        }
    }

    /// Queues a record whose first attempt to be produced failed with `error` at `now`: it
    /// waits with the others, and the backoff starts (or grows) as for a failed re-send.
    pub fn push_failed(
        &mut self,
        now: Instant,
        ticket: Ticket,
        key: Vec<u8>,
        payload: Vec<u8>,
        error: &io::Error,
    ) {
        self.push(ticket, key, payload);
        self.failed(now, error);
    }

    /// Counts a failed attempt at `now` and sets the backoff and the problem it reports.
    fn failed(&mut self, now: Instant, error: &io::Error) {
        self.failures = self.failures.saturating_add(1);
        self.failed_attempts += 1;
        let backoff = self.backoff();
        self.next_attempt = Some(now + backoff);
        let problem = format!(
            "{} records cannot be produced again ({error}); next try in {backoff:?}",
            self.waiting.len()
        );
        if self.problem.is_none() {
            tracing::error!(%error, records = self.waiting.len(), "cannot produce again; retrying with backoff");
        }
        self.problem = Some(problem);
    }

    /// Returns why records are waiting, if an attempt to produce them failed.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Returns and resets the number of failed attempts.
    pub fn take_failures(&mut self) -> u64 {
        std::mem::take(&mut self.failed_attempts)
    }
}

/// Produces records to Kafka and acknowledges them on delivery.
pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
    max_message_bytes: usize,
    stats: Arc<KafkaSinkStats>,
    resends: ResendQueue,
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
            resends: ResendQueue::default(),
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
        let whole = payload.len();
        payload = serde_json::to_vec(&*record)?;
        if payload.len() > limit {
            record.fields = serde_json::Map::new();
            record.msg.truncate(record.msg.len().min(limit / 8));
            while !record.msg.is_char_boundary(record.msg.len()) {
                record.msg.pop();
            }
            payload = serde_json::to_vec(&*record)?;
        }
        self.stats
            .truncated_bytes
            .fetch_add(whole.saturating_sub(payload.len()) as u64, Ordering::Relaxed);
        Ok(payload)
    }

    /// Hands one message to librdkafka, waiting while its queue is full. The ticket travels
    /// with the message and comes back in the delivery report.
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
            let key = record.kafka_key();
            // A record librdkafka refuses (the topic deleted meanwhile, say) waits with the
            // failed re-sends, is tried again with backoff and holds its file's checkpoint.
            if let Err(error) = self.produce(ticket, key.as_bytes(), &payload, Some(ts_millis)) {
                self.resends
                    .push_failed(Instant::now(), ticket, key.as_bytes().to_vec(), payload, &error);
            }
        }
        Ok(())
    }

    fn problem(&self) -> Option<String> {
        if let Some(problem) = self.resends.problem() {
            return Some(problem.to_owned());
        }
        self.reports().problem.clone()
    }

    fn take_delivery_errors(&mut self) -> u64 {
        std::mem::take(&mut self.reports().errors_reported)
    }

    fn take_resend_failures(&mut self) -> u64 {
        self.resends.take_failures()
    }

    fn take_message_cuts(&mut self) -> (u64, u64) {
        (
            self.stats.truncated.swap(0, Ordering::Relaxed),
            self.stats.truncated_bytes.swap(0, Ordering::Relaxed),
        )
    }

    fn poll_acks(&mut self, acks: &mut Vec<Ticket>) {
        let failed = {
            let mut reports = self
                .producer
                .context()
                .reports
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !reports.acked.is_empty() {
                self.resends.delivered();
            }
            acks.append(&mut reports.acked);
            std::mem::take(&mut reports.failed)
        };
        let now = Instant::now();
        for (ticket, key, payload) in failed {
            self.resends.push_undelivered(now, ticket, key, payload);
        }
        let mut resends = std::mem::take(&mut self.resends);
        resends.retry(now, |ticket, key, payload| {
            self.produce(ticket, key, payload, None)
        });
        self.resends = resends;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_resends_wait_with_backoff_and_say_why_until_they_go_through() {
        let mut queue = ResendQueue::default();
        for ticket in 0..3 {
            queue.push(ticket, b"k".to_vec(), vec![ticket as u8]);
        }
        let start = Instant::now();
        let mut sent = Vec::new();
        let mut broken = true;
        let attempt = |queue: &mut ResendQueue, at: Instant, broken: bool, sent: &mut Vec<Ticket>| {
            queue.retry(at, |ticket, _, _| {
                if broken {
                    Err(io::Error::other("Local: Unknown topic"))
                } else {
                    sent.push(ticket);
                    Ok(())
                }
            })
        };
        attempt(&mut queue, start, broken, &mut sent);
        assert_eq!(
            (queue.len(), queue.take_failures()),
            (3, 1),
            "nothing dropped, the failure counted"
        );
        let problem = queue.problem().expect("a problem while records wait").to_owned();
        assert!(
            problem.contains("Unknown topic") && problem.contains("3 records"),
            "{problem}"
        );
        // Within the backoff nothing is tried; after it, the next failure doubles it.
        attempt(&mut queue, start + Duration::from_millis(50), broken, &mut sent);
        assert_eq!(queue.take_failures(), 0);
        attempt(&mut queue, start + RESEND_BACKOFF, broken, &mut sent);
        assert_eq!(queue.take_failures(), 1);
        attempt(&mut queue, start + RESEND_BACKOFF * 2, broken, &mut sent);
        assert_eq!(queue.take_failures(), 0, "the backoff doubled");
        let mut at = start + RESEND_BACKOFF * 3;
        for _ in 0..20 {
            attempt(&mut queue, at, broken, &mut sent);
            at += RESEND_MAX_BACKOFF;
        }
        assert_eq!(queue.take_failures(), 20, "the backoff is capped");
        broken = false;
        attempt(&mut queue, at, broken, &mut sent);
        assert_eq!(sent, [0, 1, 2], "in order, once each");
        assert!(queue.is_empty() && queue.problem().is_none());
    }

    #[test]
    fn records_whose_deliveries_keep_failing_are_produced_again_with_a_growing_backoff() {
        let mut queue = ResendQueue::default();
        let start = Instant::now();
        let mut sent = 0;
        let mut produce = |queue: &mut ResendQueue, at: Instant| {
            queue.retry(at, |_, _, _| {
                sent += 1;
                Ok(())
            })
        };
        queue.push_undelivered(start, 7, b"k".to_vec(), b"v".to_vec());
        produce(&mut queue, start);
        assert_eq!(queue.len(), 1, "not produced again at once");
        produce(&mut queue, start + RESEND_BACKOFF);
        assert!(queue.is_empty());
        // The delivery fails again: the next wait is twice as long.
        let again = start + RESEND_BACKOFF;
        queue.push_undelivered(again, 7, b"k".to_vec(), b"v".to_vec());
        produce(&mut queue, again + RESEND_BACKOFF);
        assert_eq!(queue.len(), 1, "the backoff doubled");
        produce(&mut queue, again + RESEND_BACKOFF * 2);
        assert!(queue.is_empty());
        // A delivery succeeds: the streak ends.
        queue.delivered();
        let later = again + RESEND_BACKOFF * 2;
        queue.push_undelivered(later, 7, b"k".to_vec(), b"v".to_vec());
        produce(&mut queue, later + RESEND_BACKOFF);
        assert!(queue.is_empty(), "back to the first backoff");
        assert_eq!(
            queue.take_failures(),
            0,
            "failed deliveries are not failed re-sends"
        );
        assert_eq!(sent, 3);
    }
}
