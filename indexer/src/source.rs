//! Where records come from (DESIGN §4.1): [`KafkaSource`] (a consumer group, the blocking poll
//! loop on its own thread feeding a bounded channel) and [`ChannelSource`] (the in-process
//! collector of standalone mode).
//!
//! The ingest loop polls a source, indexes what it gets, commits the split with the source's
//! checkpoint and then tells the source, which commits Kafka offsets or acknowledges the
//! collector's tickets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use corral_collector::ack::Ticket;
use corral_collector::sink::ChannelReceiver;
use corral_schema::{Record, Timestamp};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::decode::{Decoded, MessageOrigin, decode};
use crate::manifest::Checkpoint;

/// One record from a source, decoded, with its Kafka position if it has one.
#[derive(Debug)]
pub struct Incoming {
    pub decoded: Decoded,
    /// `(partition, offset)` of the Kafka message.
    pub position: Option<(i32, i64)>,
    /// Size of the message as received.
    pub bytes: usize,
}

/// A source of records for the ingest loop.
pub trait Source: Send {
    /// Waits up to `timeout` for records. `Ok(None)` when the source has ended for good (the
    /// collector of standalone mode stopped); an empty batch on timeout.
    fn poll(&mut self, timeout: Duration) -> anyhow::Result<Option<Vec<Incoming>>>;

    /// Called after the split was committed with `checkpoint`: everything polled so far is
    /// durable in the index.
    fn committed(&mut self, checkpoint: &Checkpoint);

    /// A problem the source reports (broker unreachable …), shown by `/readyz`.
    fn problem(&self) -> Option<String> {
        None
    }

    /// Delivers again, from the next poll on, everything after `checkpoint` (the index's last
    /// commit): what was polled since was lost with a failed write.
    fn rewind(&mut self, checkpoint: &Checkpoint) -> anyhow::Result<()>;

    /// Partitions are being revoked and everything polled from them was handed out: the ingest
    /// loop commits, seals and publishes the active split, then answers each of these so the
    /// partitions are released (see [`ClusterHooks`]). Empty when nothing is being revoked.
    fn revoked(&mut self) -> Vec<SyncSender<()>> {
        Vec::new()
    }
}

/// The collector's channel in standalone mode: records arrive already built; their tickets are
/// acknowledged after the commit, which lets the collector checkpoint past them.
#[derive(Debug)]
pub struct ChannelSource {
    receiver: ChannelReceiver,
    pending: Vec<Ticket>,
    /// The envelopes polled since the last commit, to deliver again after a rewind: the
    /// collector only re-sends what was never acknowledged after it restarts.
    uncommitted: Vec<String>,
    replay: Vec<String>,
}

impl ChannelSource {
    pub fn new(receiver: ChannelReceiver) -> ChannelSource {
        ChannelSource {
            receiver,
            pending: Vec::new(),
            uncommitted: Vec::new(),
            replay: Vec::new(),
        }
    }
}

impl ChannelSource {
    /// A record from the collector, remembered until its commit so a rewind can deliver it again.
    fn incoming(&mut self, record: Record, source: String) -> Incoming {
        self.uncommitted.push(source.clone());
        Incoming {
            bytes: source.len(),
            decoded: Decoded {
                record,
                source,
                problem: None,
            },
            position: None,
        }
    }
}

impl Source for ChannelSource {
    fn poll(&mut self, timeout: Duration) -> anyhow::Result<Option<Vec<Incoming>>> {
        if !self.replay.is_empty() {
            let replay = std::mem::take(&mut self.replay);
            let mut out = Vec::with_capacity(replay.len());
            for source in replay {
                let record = serde_json::from_str(&source)?;
                out.push(self.incoming(record, source));
            }
            return Ok(Some(out));
        }
        let batch = match self.receiver.recv_timeout(timeout) {
            Ok(Some(batch)) => batch,
            Ok(None) => return Ok(Some(Vec::new())),
            Err(_) => return Ok(None),
        };
        let mut out = Vec::with_capacity(batch.len());
        for (ticket, record) in batch {
            self.pending.push(ticket);
            let source = serde_json::to_string(&record)?;
            out.push(self.incoming(record, source));
        }
        Ok(Some(out))
    }

    fn committed(&mut self, _checkpoint: &Checkpoint) {
        self.uncommitted.clear();
        if !self.pending.is_empty() {
            self.receiver.ack(std::mem::take(&mut self.pending));
        }
    }

    fn rewind(&mut self, _checkpoint: &Checkpoint) -> anyhow::Result<()> {
        // Tickets stay pending: they are acknowledged by the commit of the replayed records.
        let mut replay = std::mem::take(&mut self.uncommitted);
        replay.append(&mut self.replay);
        self.replay = replay;
        Ok(())
    }
}

/// Settings of [`KafkaSource::connect`].
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    /// Static membership (`group.instance.id`), normally the pod name.
    pub instance_id: Option<String>,
    /// librdkafka properties from the config file, overriding corral's defaults.
    pub properties: BTreeMap<String, String>,
    /// With an object store shared by several indexers (DESIGN §7).
    pub cluster: Option<Arc<ClusterHooks>>,
}

/// How partitions move between indexers that publish to one object store, exactly once: a
/// revoked partition is released only after the active split holding its records was sealed
/// and published (within `seal_timeout`), and an assigned partition resumes from the furthest
/// of this index's checkpoint and every published split's.
pub struct ClusterHooks {
    /// Per partition, the furthest checkpoint of any split published now (a fresh listing).
    pub published: Box<dyn Fn() -> Checkpoint + Send + Sync>,
    /// How long a revocation waits for the seal and publish before it releases anyway.
    pub seal_timeout: Duration,
}

impl std::fmt::Debug for ClusterHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHooks")
            .field("seal_timeout", &self.seal_timeout)
            .finish()
    }
}

/// Revocations waiting for the ingest loop's seal, and whether the source is closing (then
/// nobody seals: the ingest loop has already sealed what it had).
#[derive(Debug, Default)]
struct Revocations {
    pending: Mutex<Vec<SyncSender<()>>>,
    closing: AtomicBool,
}

/// Messages waiting between the poll thread and the ingest loop. librdkafka buffers more behind
/// it (`queued.max.messages.kbytes`), so this only needs to keep the ingest loop busy.
const CHANNEL_CAPACITY: usize = 4_096;
/// Most messages handed to the ingest loop at once.
const MAX_BATCH: usize = 4_096;

enum Polled {
    Message {
        partition: i32,
        offset: i64,
        timestamp: Option<Timestamp>,
        payload: Vec<u8>,
    },
    Error(String),
}

/// How many offsets before its checkpoint a partition is resumed. Kafka serves a fetch from the
/// record batch holding the requested offset, but some Kafka-protocol brokers (tansu 0.6) serve
/// it from the first batch that *starts* at or after it, which would skip the rest of a batch a
/// checkpoint falls inside. Resuming earlier and dropping what was already delivered
/// ([`KafkaSource`] keeps the position of every partition) loses nothing on either kind; it
/// covers batches of up to this many messages (librdkafka's producer default is 10,000).
const RESUME_REWIND: i64 = 10_000;

/// Seeks newly assigned partitions to (a little before) the index's checkpoint, or the
/// published one when further; has revoked partitions sealed before they are released.
struct SeekingContext {
    topic: String,
    checkpoint: Arc<Mutex<Checkpoint>>,
    cluster: Option<Arc<ClusterHooks>>,
    revocations: Arc<Revocations>,
    /// Per assigned partition, the offset it resumes at: what is fetched below it (resuming a
    /// little early, [`RESUME_REWIND`]) was indexed already, here or by another indexer.
    floors: Arc<Mutex<Checkpoint>>,
}

impl ClientContext for SeekingContext {}

impl ConsumerContext for SeekingContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let checkpoint = self.checkpoint.lock().unwrap_or_else(|e| e.into_inner()).clone();
                // What other indexers published for these partitions while they had them.
                let published = self
                    .cluster
                    .as_ref()
                    .map(|cluster| (cluster.published)())
                    .unwrap_or_default();
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                let mut floors = self.floors.lock().unwrap_or_else(|e| e.into_inner());
                for partition in &partitions {
                    // Partitions no index has seen start from the group's committed offset —
                    // except in a cluster, where that offset may be of records another indexer
                    // holds unpublished (and could lose with its volume): from the beginning.
                    let own = checkpoint.get(partition).copied();
                    let next = own.max(published.get(partition).copied());
                    if let Some(next) = next {
                        floors.insert(*partition, next);
                        if next > own.unwrap_or(-1) {
                            tracing::info!(partition, next, "resuming after what another indexer published");
                        }
                        let from = next.saturating_sub(RESUME_REWIND).max(0);
                        let _ = tpl.set_partition_offset(&self.topic, *partition, Offset::Offset(from));
                    } else if self.cluster.is_some() {
                        let _ = tpl.set_partition_offset(&self.topic, *partition, Offset::Beginning);
                    }
                }
                drop(floors);
                tracing::info!(
                    ?partitions,
                    "partitions assigned; resuming from the index checkpoint"
                );
                if let Err(error) = consumer.assign(tpl) {
                    tracing::error!("cannot take the assigned partitions: {error}");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!("partitions revoked");
                if let Some(cluster) = &self.cluster
                    && tpl.count() > 0
                    && !self.revocations.closing.load(Ordering::Relaxed)
                {
                    // The ingest loop seals and publishes what it holds of them first: their
                    // next owner resumes after it.
                    let (done, wait) = mpsc::sync_channel(1);
                    self.revocations
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(done);
                    match wait.recv_timeout(cluster.seal_timeout) {
                        Ok(()) => tracing::info!("the revoked partitions' records are published"),
                        Err(_) => tracing::warn!(
                            timeout_s = cluster.seal_timeout.as_secs(),
                            "releasing revoked partitions before their records were published: their next owner reads them again"
                        ),
                    }
                }
                if let Err(error) = consumer.unassign() {
                    tracing::error!("cannot release the revoked partitions: {error}");
                }
            }
            other => tracing::error!("rebalance error: {other:?}"),
        }
    }
}

/// A Kafka consumer-group source.
pub struct KafkaSource {
    options: KafkaOptions,
    topic: String,
    consumer: Arc<BaseConsumer<SeekingContext>>,
    checkpoint: Arc<Mutex<Checkpoint>>,
    /// Per partition, the offset after the last message handed to the ingest loop: a message
    /// below it (a partition resumed before its checkpoint) was delivered already.
    delivered: Checkpoint,
    messages: Option<Receiver<Polled>>,
    /// A message taken to see whether the channel was empty, handed out next.
    stashed: Option<Polled>,
    floors: Arc<Mutex<Checkpoint>>,
    revocations: Arc<Revocations>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    problem: Option<(String, Instant)>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource").field("topic", &self.topic).finish()
    }
}

impl KafkaSource {
    /// Joins the consumer group and starts the poll thread. `checkpoint` is the index's: every
    /// partition assigned now or later starts there.
    pub fn connect(options: &KafkaOptions, checkpoint: Checkpoint) -> anyhow::Result<KafkaSource> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &options.brokers)
            .set("group.id", &options.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Logs are never skipped: a new group starts at the beginning of the topic.
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        if let Some(instance) = &options.instance_id {
            config.set("group.instance.id", instance);
        }
        for (key, value) in &options.properties {
            config.set(key, value);
        }
        let delivered = checkpoint.clone();
        let shared = Arc::new(Mutex::new(checkpoint));
        let revocations = Arc::new(Revocations::default());
        let floors = Arc::new(Mutex::new(Checkpoint::new()));
        let context = SeekingContext {
            topic: options.topic.clone(),
            checkpoint: Arc::clone(&shared),
            cluster: options.cluster.clone(),
            revocations: Arc::clone(&revocations),
            floors: Arc::clone(&floors),
        };
        let consumer: BaseConsumer<SeekingContext> = config
            .create_with_context(context)
            .with_context(|| format!("cannot create a Kafka consumer for {}", options.brokers))?;
        // Fail early and clearly when the topic does not exist.
        let metadata = consumer
            .fetch_metadata(Some(&options.topic), Duration::from_secs(10))
            .with_context(|| format!("cannot reach Kafka at {}", options.brokers))?;
        let known = metadata
            .topics()
            .iter()
            .any(|t| t.name() == options.topic && t.error().is_none() && !t.partitions().is_empty());
        if !known {
            bail!(
                "topic {:?} does not exist on {} (create it, or pass --topic)",
                options.topic,
                options.brokers
            );
        }
        consumer
            .subscribe(&[&options.topic])
            .with_context(|| format!("cannot subscribe to {}", options.topic))?;
        let consumer = Arc::new(consumer);
        let (tx, rx) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let consumer = Arc::clone(&consumer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("kafka-poll".into())
                .spawn(move || poll_loop(&consumer, &tx, &stop))?
        };
        Ok(KafkaSource {
            options: options.clone(),
            topic: options.topic.clone(),
            consumer,
            checkpoint: shared,
            delivered,
            messages: Some(rx),
            stashed: None,
            floors,
            revocations,
            stop,
            thread: Some(thread),
            problem: None,
        })
    }

    fn receive(&mut self, timeout: Duration) -> Option<Polled> {
        if let Some(stashed) = self.stashed.take() {
            return Some(stashed);
        }
        let messages = self.messages.as_ref()?;
        // Timeout and a finished poll thread both mean "nothing now".
        messages.recv_timeout(timeout).ok()
    }

    fn accept(&mut self, polled: Polled, out: &mut Vec<Incoming>) {
        match polled {
            Polled::Message {
                partition,
                offset,
                timestamp,
                payload,
            } => {
                self.problem = None;
                let floor = self
                    .floors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&partition)
                    .copied()
                    .unwrap_or(0);
                let next = self.delivered.entry(partition).or_insert(0);
                if offset < (*next).max(floor) {
                    return;
                }
                *next = offset + 1;
                let bytes = payload.len();
                let origin = MessageOrigin {
                    topic: &self.topic,
                    partition,
                    offset,
                    timestamp,
                };
                out.push(Incoming {
                    bytes,
                    decoded: decode(payload, origin),
                    position: Some((partition, offset)),
                });
            }
            Polled::Error(error) => {
                tracing::warn!("Kafka: {error}");
                self.problem = Some((error, Instant::now()));
            }
        }
    }
}

fn poll_loop(consumer: &BaseConsumer<SeekingContext>, tx: &SyncSender<Polled>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let polled = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Ok(message)) => Polled::Message {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message
                    .timestamp()
                    .to_millis()
                    .and_then(Timestamp::from_epoch_i64),
                payload: message.payload().unwrap_or_default().to_vec(),
            },
            Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(error)) => Polled::Error(error.to_string()),
        };
        if tx.send(polled).is_err() {
            return; // the source is gone
        }
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, timeout: Duration) -> anyhow::Result<Option<Vec<Incoming>>> {
        let mut out = Vec::new();
        let Some(first) = self.receive(timeout) else {
            return Ok(Some(out));
        };
        self.accept(first, &mut out);
        while out.len() < MAX_BATCH {
            let Some(next) = self.receive(Duration::ZERO) else {
                break;
            };
            self.accept(next, &mut out);
        }
        Ok(Some(out))
    }

    fn committed(&mut self, checkpoint: &Checkpoint) {
        *self.checkpoint.lock().unwrap_or_else(|e| e.into_inner()) = checkpoint.clone();
        // Only partitions this indexer owns now: committing a revoked partition's (older)
        // position would move its new owner's committed offset back.
        let assigned: std::collections::HashSet<i32> = match self.consumer.assignment() {
            Ok(assignment) => assignment
                .elements()
                .iter()
                .filter(|e| e.topic() == self.topic)
                .map(|e| e.partition())
                .collect(),
            Err(error) => {
                tracing::debug!("Kafka assignment unknown, no offsets committed: {error}");
                return;
            }
        };
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in checkpoint.iter().filter(|(p, _)| assigned.contains(p)) {
            let _ = offsets.add_partition_offset(&self.topic, *partition, Offset::Offset(*next));
        }
        if offsets.count() == 0 {
            return;
        }
        // For lag monitoring and partitions moving to another indexer; the index's own
        // checkpoint is what this indexer resumes from.
        if let Err(error) = self.consumer.commit(&offsets, CommitMode::Async) {
            tracing::debug!("Kafka offset commit: {error}");
        }
    }

    fn rewind(&mut self, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        // A new consumer is assigned the partitions again and seeks them to the checkpoint,
        // exactly as after a restart; nothing fetched before the rewind can slip in.
        let options = self.options.clone();
        self.shut_down();
        // Leave the group before the new consumer joins it: a member still in the group that
        // never polls again would hold the new one's join for the whole rebalance timeout.
        // Polling here serves the revocation; what it returns predates the rewind.
        self.consumer.unsubscribe();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self
                .consumer
                .assignment()
                .is_ok_and(|assigned| assigned.count() > 0)
        {
            let _ = self.consumer.poll(Duration::from_millis(100));
        }
        *self = KafkaSource::connect(&options, checkpoint.clone())?;
        Ok(())
    }

    fn revoked(&mut self) -> Vec<SyncSender<()>> {
        let mut pending = self.revocations.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() || self.stashed.is_some() {
            return Vec::new();
        }
        // The poll thread waits in the revocation: the channel only empties. What is still in
        // it is handed out (and sealed) first.
        if let Some(messages) = &self.messages
            && let Ok(next) = messages.try_recv()
        {
            self.stashed = Some(next);
            return Vec::new();
        }
        std::mem::take(&mut *pending)
    }

    fn problem(&self) -> Option<String> {
        // An error the consumer recovers from is not worth reporting for long.
        self.problem
            .as_ref()
            .filter(|(_, at)| at.elapsed() < Duration::from_secs(30))
            .map(|(error, _)| error.clone())
    }
}

impl KafkaSource {
    /// Stops the poll thread.
    fn shut_down(&mut self) {
        self.revocations.closing.store(true, Ordering::Relaxed);
        for waiting in self
            .revocations
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = waiting.send(());
        }
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks a poll thread waiting on a full channel.
        self.messages = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.shut_down();
    }
}
