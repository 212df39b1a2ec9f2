//! The cluster's control state (DESIGN §7): the compacted, one-partition Kafka topic
//! `corral.control.v1` holds the legal holds and every indexer's published audit head; a lease
//! in the object store ([`Janitor`]) elects the one retention janitor.
//!
//! Every message is keyed: `hold/<id>` carries a [`Hold`] as JSON (an empty value, a
//! tombstone, releases it), `audit-head/<indexer>` a [`PublishedHead`]. The newest message of a
//! key wins, so compaction only drops what a reader would overwrite anyway. A reader takes
//! the state as of the topic's end: [`ControlTopic::read_to_end`] reads up to the high
//! watermark it asked for first, so a change the broker acknowledged before the call is seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use corral_schema::Timestamp;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditHead;
use crate::holds::Hold;

/// The control topic's default name.
pub const CONTROL_TOPIC: &str = "corral.control.v1";
/// How long a read to the topic's end or a write's acknowledgement may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
const HOLD_KEY: &str = "hold/";
const AUDIT_HEAD_KEY: &str = "audit-head/";

/// An indexer's audit head as published to the control topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedHead {
    pub indexer: String,
    pub seq: u64,
    pub sha256: String,
    /// When it was published.
    pub at: Timestamp,
}

/// What the control topic says, as of the last read.
#[derive(Debug, Default, Clone)]
pub struct ControlState {
    /// By hold id.
    pub holds: BTreeMap<String, Hold>,
    /// By indexer.
    pub heads: BTreeMap<String, PublishedHead>,
}

impl ControlState {
    fn apply(&mut self, key: &str, value: Option<&[u8]>) -> anyhow::Result<()> {
        if let Some(id) = key.strip_prefix(HOLD_KEY) {
            match value {
                Some(bytes) => {
                    let hold: Hold = serde_json::from_slice(bytes).context("invalid hold")?;
                    self.holds.insert(id.to_owned(), hold);
                }
                None => {
                    self.holds.remove(id);
                }
            }
        } else if let Some(indexer) = key.strip_prefix(AUDIT_HEAD_KEY) {
            match value {
                Some(bytes) => {
                    let head: PublishedHead = serde_json::from_slice(bytes).context("invalid audit head")?;
                    self.heads.insert(indexer.to_owned(), head);
                }
                None => {
                    self.heads.remove(indexer);
                }
            }
        } else {
            // A newer version's key: not ours to read, and nothing we hold depends on it.
            tracing::debug!(key, "control message of an unknown kind, skipped");
        }
        Ok(())
    }
}

/// Hands each produced message's delivery report to the thread waiting for it.
struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<mpsc::Sender<Result<i64, String>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: Self::DeliveryOpaque) {
        let report = match result {
            Ok(message) => Ok(message.offset()),
            Err((error, _)) => Err(error.to_string()),
        };
        let _ = waiter.send(report);
    }
}

struct Reader {
    consumer: BaseConsumer,
    /// Offset of the next message to apply.
    next: i64,
    state: ControlState,
}

/// The control topic: written with acknowledgement from every in-sync replica, read to its end.
pub struct ControlTopic {
    topic: String,
    brokers: String,
    producer: BaseProducer<Deliveries>,
    reader: Mutex<Reader>,
}

impl std::fmt::Debug for ControlTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlTopic")
            .field("topic", &self.topic)
            .finish()
    }
}

/// The client settings of the `[kafka]` section that apply to a client of the control topic:
/// security and connection settings, not the logs consumer's group and fetch tuning.
fn client_config(brokers: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in properties {
        let shared = [
            "security.",
            "ssl.",
            "sasl.",
            "socket.",
            "client.",
            "broker.",
            "reconnect.",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix));
        if shared {
            config.set(key, value);
        }
    }
    config
}

impl ControlTopic {
    /// Connects to `topic` on `brokers`, creating it (compacted, one partition) when it does
    /// not exist, and reads it to its end.
    pub fn connect(
        brokers: &str,
        topic: &str,
        properties: &BTreeMap<String, String>,
    ) -> anyhow::Result<ControlTopic> {
        ensure_topic(brokers, topic, properties)?;
        let producer: BaseProducer<Deliveries> = client_config(brokers, properties)
            .set("acks", "all")
            .set("message.timeout.ms", CONTROL_TIMEOUT.as_millis().to_string())
            .set("linger.ms", "0")
            .create_with_context(Deliveries)
            .with_context(|| format!("cannot create a Kafka producer for {brokers}"))?;
        let consumer: BaseConsumer = client_config(brokers, properties)
            // Assigned, never subscribed or committed: the group id only satisfies the client.
            .set("group.id", "corral-control-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .with_context(|| format!("cannot create a Kafka consumer for {brokers}"))?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        let control = ControlTopic {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
            producer,
            reader: Mutex::new(Reader {
                consumer,
                next: 0,
                state: ControlState::default(),
            }),
        };
        control.read_to_end()?;
        Ok(control)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Reads the topic up to the end it has now, and returns the state as of then.
    pub fn read_to_end(&self) -> anyhow::Result<ControlState> {
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        self.catch_up(&mut reader)?;
        Ok(reader.state.clone())
    }

    fn catch_up(&self, reader: &mut MutexGuard<'_, Reader>) -> anyhow::Result<()> {
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        let (low, high) = reader
            .consumer
            .fetch_watermarks(&self.topic, 0, CONTROL_TIMEOUT)
            .with_context(|| format!("cannot read the end of {} on {}", self.topic, self.brokers))?;
        if high < reader.next {
            bail!(
                "{} on {} ends at offset {high}, before offset {} this indexer already read: was the topic deleted and created again?",
                self.topic,
                self.brokers,
                reader.next
            );
        }
        let Reader {
            consumer,
            next,
            state,
        } = &mut **reader;
        *next = (*next).max(low);
        while *next < high {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "cannot read {} on {} to its end within {} s: at offset {} of {high}",
                    self.topic,
                    self.brokers,
                    CONTROL_TIMEOUT.as_secs(),
                    *next
                );
            }
            let Some(polled) = consumer.poll(left.min(Duration::from_millis(500))) else {
                continue;
            };
            let message = polled.with_context(|| format!("cannot read {}", self.topic))?;
            if message.offset() < *next {
                continue;
            }
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            let value = message.payload().filter(|p| !p.is_empty());
            if let Err(error) = state.apply(&key, value) {
                // One bad message must not hide every later hold: it is named and skipped.
                tracing::error!(
                    topic = %self.topic,
                    offset = message.offset(),
                    key,
                    "skipping an unreadable control message: {error:#}"
                );
            }
            *next = message.offset() + 1;
        }
        Ok(())
    }

    /// The holds in force as of the topic's end, oldest first.
    pub fn holds(&self) -> anyhow::Result<Vec<Hold>> {
        let mut holds: Vec<Hold> = self.read_to_end()?.holds.into_values().collect();
        holds.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(holds)
    }

    /// Writes `hold`; it is in force for the cluster when this returns.
    pub fn put_hold(&self, hold: &Hold) -> anyhow::Result<()> {
        let key = format!("{HOLD_KEY}{}", hold.id);
        self.write(&key, Some(&serde_json::to_vec(hold)?))
            .with_context(|| format!("cannot write hold {} to {}", hold.id, self.topic))
    }

    /// Releases hold `id` (a tombstone); released for the cluster when this returns.
    pub fn remove_hold(&self, id: &str) -> anyhow::Result<()> {
        self.write(&format!("{HOLD_KEY}{id}"), None)
            .with_context(|| format!("cannot release hold {id} in {}", self.topic))
    }

    /// Publishes `indexer`'s audit head.
    pub fn publish_audit_head(&self, indexer: &str, head: &AuditHead) -> anyhow::Result<()> {
        let published = PublishedHead {
            indexer: indexer.to_owned(),
            seq: head.seq,
            sha256: head.sha256.clone(),
            at: Timestamp::now(),
        };
        self.write(
            &format!("{AUDIT_HEAD_KEY}{indexer}"),
            Some(&serde_json::to_vec(&published)?),
        )
        .with_context(|| format!("cannot publish the audit head of {indexer} to {}", self.topic))
    }

    /// Produces one message and waits for the broker's acknowledgement.
    fn write(&self, key: &str, value: Option<&[u8]>) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel();
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(tx))
            .key(key)
            .partition(0);
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.producer
            .send(record)
            .map_err(|(error, _)| anyhow::Error::new(error))?;
        let deadline = Instant::now() + CONTROL_TIMEOUT + Duration::from_secs(2);
        loop {
            self.producer.poll(Duration::from_millis(50));
            match rx.try_recv() {
                Ok(Ok(_offset)) => return Ok(()),
                Ok(Err(error)) => bail!("the broker did not take it: {error}"),
                Err(mpsc::TryRecvError::Disconnected) => bail!("the delivery report was lost"),
                Err(mpsc::TryRecvError::Empty) if Instant::now() > deadline => {
                    bail!("no acknowledgement from {} in time", self.brokers)
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
    }
}

/// Creates `topic` (compacted, one partition) unless it exists.
fn ensure_topic(brokers: &str, topic: &str, properties: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let probe: BaseConsumer = client_config(brokers, properties)
        .create()
        .with_context(|| format!("cannot create a Kafka client for {brokers}"))?;
    let metadata = probe
        .fetch_metadata(Some(topic), CONTROL_TIMEOUT)
        .with_context(|| format!("cannot reach Kafka at {brokers}"))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    match partitions {
        1 => return Ok(()),
        0 => {}
        n => bail!(
            "control topic {topic:?} on {brokers} has {n} partitions; it must have exactly one (its order is the cluster's order of holds)"
        ),
    }
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, properties)
        .create()
        .with_context(|| format!("cannot create a Kafka admin client for {brokers}"))?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(CONTROL_TIMEOUT));
    // librdkafka's own threads complete the future; a private runtime on a scoped thread waits
    // for it, from inside the API's runtime or outside any.
    let results = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|e| anyhow::anyhow!(e))
                    .and_then(|rt| Ok(rt.block_on(admin.create_topics([&new], &options))?))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the topic creation thread panicked"))?
    })
    .with_context(|| format!("cannot create the control topic {topic:?} on {brokers}"))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, "control topic created (compacted, one partition)"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => bail!(
                "control topic {topic:?} does not exist on {brokers} and cannot be created ({code}); create it: one partition, cleanup.policy=compact"
            ),
        }
    }
    Ok(())
}

/// The janitor's lease objects, under the object store's `control/`.
const LEASE_DIR: &str = "janitor";

/// One term of the janitor's lease: `epoch-<n>.json`, created only if absent (the store
/// decides which claimant wins a term), then rewritten by its holder to renew it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Term {
    holder: String,
    /// Unix milliseconds of the last renewal; 0 when its holder stepped down.
    renewed_ms: u64,
}

fn term_name(epoch: u64) -> String {
    format!("epoch-{epoch:020}.json")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The election of the one retention janitor of a cluster sharing an object store: a lease
/// in the store, taken by a conditional write (create-if-absent) of the next term, renewed
/// by its holder every `ttl / 4`, taken over once it is `ttl` old. [`Janitor::elected`] is
/// true only while this indexer holds the newest term and renewed it within `ttl / 2`: a
/// janitor paused past its lease (SIGSTOP, a cut network) is not elected when it resumes,
/// and sees the newer term at its next renewal.
pub struct Janitor {
    storage: Arc<crate::storage::SplitStorage>,
    me: String,
    ttl: Duration,
    held: Mutex<Option<(u64, Instant)>>,
    elected: AtomicBool,
    gauge: Gauge,
}

impl std::fmt::Debug for Janitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Janitor")
            .field("me", &self.me)
            .field("elected", &self.elected())
            .finish()
    }
}

impl Janitor {
    /// Takes part in the election in `storage` as `me`; a lease lasts `ttl`.
    pub fn new(storage: Arc<crate::storage::SplitStorage>, me: &str, ttl: Duration, gauge: Gauge) -> Janitor {
        Janitor {
            storage,
            me: me.to_owned(),
            ttl,
            held: Mutex::new(None),
            elected: AtomicBool::new(false),
            gauge,
        }
    }

    /// True while this indexer holds the lease (renewed within half its length).
    pub fn elected(&self) -> bool {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        self.elected.load(Ordering::SeqCst)
            && held.is_some_and(|(_, renewed)| renewed.elapsed() < self.ttl / 2)
    }

    fn set(&self, held: Option<(u64, Instant)>) {
        let elected = held.is_some();
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = held;
        if self.elected.swap(elected, Ordering::SeqCst) != elected {
            self.gauge.set(i64::from(elected));
            if elected {
                tracing::info!(term = held.map_or(0, |(n, _)| n), "elected the retention janitor");
            } else {
                tracing::info!("no longer the retention janitor");
            }
        }
    }

    /// One look at the lease: renews it when held, takes it when it lapsed.
    pub fn check(&self) -> anyhow::Result<()> {
        let terms = self.storage.control_names(LEASE_DIR)?;
        let newest = terms
            .iter()
            .filter_map(|name| {
                name.strip_prefix("epoch-")?
                    .strip_suffix(".json")?
                    .parse::<u64>()
                    .ok()
            })
            .max();
        let term = match newest {
            Some(epoch) => self
                .storage
                .control_get(LEASE_DIR, &term_name(epoch))?
                .and_then(|bytes| serde_json::from_slice::<Term>(&bytes).ok())
                .map(|term| (epoch, term)),
            None => None,
        };
        let mine = *self.held.lock().unwrap_or_else(|e| e.into_inner());
        match term {
            Some((epoch, term)) if term.holder == self.me && mine.is_some_and(|(n, _)| n == epoch) => {
                self.write(epoch, now_ms(), false)?;
                self.set(Some((epoch, Instant::now())));
                // Terms long past are of no use to anyone.
                for old in terms.iter().filter(|n| **n < term_name(epoch.saturating_sub(2))) {
                    self.storage.control_delete(LEASE_DIR, old)?;
                }
            }
            Some((_, term)) if now_ms().saturating_sub(term.renewed_ms) < self.ttl.as_millis() as u64 => {
                // Someone else's live term (or one this indexer held before a restart, which it
                // leaves to lapse: it cannot know what it did since).
                self.set(None);
            }
            lapsed => {
                let next = lapsed.map_or(1, |(epoch, _)| epoch + 1);
                if self.write(next, now_ms(), true)? {
                    self.set(Some((next, Instant::now())));
                } else {
                    self.set(None);
                }
            }
        }
        Ok(())
    }

    fn write(&self, epoch: u64, renewed_ms: u64, create: bool) -> anyhow::Result<bool> {
        let term = Term {
            holder: self.me.clone(),
            renewed_ms,
        };
        self.storage
            .control_put(LEASE_DIR, &term_name(epoch), &serde_json::to_vec(&term)?, create)
    }

    /// Looks at the lease every `ttl / 4` until `stop`, then steps down (another indexer
    /// takes over at its next look, not a lease later).
    pub fn run(&self, stop: &CancellationToken) {
        let every = self.ttl / 4;
        while !stop.is_cancelled() {
            if let Err(error) = self.check() {
                tracing::warn!("janitor lease: {error:#}");
            }
            let started = Instant::now();
            while started.elapsed() < every && !stop.is_cancelled() {
                std::thread::sleep(Duration::from_millis(100).min(every));
            }
        }
        let held = *self.held.lock().unwrap_or_else(|e| e.into_inner());
        self.set(None);
        if let Some((epoch, _)) = held
            && let Err(error) = self.write(epoch, 0, false)
        {
            tracing::warn!("cannot step down as the retention janitor: {error:#}");
        }
    }
}
