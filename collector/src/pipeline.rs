//! The collector's loop: poll the tailer, turn lines into records, deliver them, checkpoint.
//!
//! [`RecordBuilder`] is the pure part (line → envelope); [`Collector`] owns the loop and its
//! ordering: records are delivered before the positions that cover them are saved, so a crash
//! re-sends (with the same ids) rather than loses.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use corral_schema::fields::ENVELOPE_VERSION;
use corral_schema::{Flag, Record, Timestamp};

use crate::ack::{AckTracker, Ticket};
use crate::app_json::{KeyConfig, parse_app_json};
use crate::checkpoint::CheckpointStore;
use crate::config::CollectorConfig;
use crate::file_identity::{FileKey, record_id};
use crate::metadata::{Identity, MetadataProvider, resolve};
use crate::metrics::{KindLabel, Metrics, RuleLabel, ServiceLabel, SharedMetrics};
use crate::pod_path::PodPath;
use crate::redact::Redactor;
use crate::sample::Sampler;
use crate::sink::Sink;
use crate::tailer::{LossReason, PollStats, TailedLine, Tailer, TailerConfig};

/// Turns tailed lines into envelopes: parsing, flags, enrichment, ids.
#[derive(Debug)]
pub struct RecordBuilder {
    node: String,
    keys: KeyConfig,
    metadata: Arc<dyn MetadataProvider>,
    default_namespace: Option<String>,
    default_pod: Option<String>,
    max_future_skew: std::time::Duration,
    writers: HashMap<Arc<Path>, Writer>,
    scratch: Vec<u8>,
}

impl RecordBuilder {
    /// Creates a builder stamping records read on `node`.
    pub fn new(node: String, config: &CollectorConfig, metadata: Arc<dyn MetadataProvider>) -> RecordBuilder {
        RecordBuilder {
            node,
            keys: config.keys.clone(),
            metadata,
            default_namespace: config.default_namespace.clone(),
            default_pod: config.default_pod.clone(),
            max_future_skew: config.max_future_skew,
            writers: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// Builds the record of one line, read at `observed`.
    pub fn build(&mut self, tailed: TailedLine, observed: Timestamp) -> Record {
        let line = tailed.line;
        let mut flags = Vec::new();
        if line.chunks > 1 {
            flags.push(Flag::PartialMerged);
        }
        if line.truncated {
            flags.push(Flag::Truncated);
        }
        let text = match String::from_utf8(line.content) {
            Ok(text) => text,
            Err(invalid) => {
                flags.push(Flag::InvalidUtf8);
                String::from_utf8_lossy(invalid.as_bytes()).into_owned()
            }
        };

        let app = if text.trim_start().starts_with('{') {
            self.scratch.clear();
            self.scratch.extend_from_slice(text.as_bytes());
            parse_app_json(&mut self.scratch, &self.keys)
        } else {
            None
        };

        let id = record_id(&self.node, line.origin.file, line.origin.offset);
        let node = self.node.clone();
        let Writer { pod, identity, .. } = self.writer(&tailed.source);
        let mut record = Record {
            v: ENVELOPE_VERSION,
            id,
            ts: line.ts.unwrap_or(observed),
            observed_ts: observed,
            service: identity.service.clone(),
            version: identity.version.clone(),
            instance: identity.instance.clone(),
            node,
            namespace: pod.namespace.clone(),
            pod: pod.pod.clone(),
            container: pod.container.clone(),
            stream: line.stream,
            level: None,
            corr: None,
            span: None,
            msg: String::new(),
            fields: serde_json::Map::new(),
            flags,
            original_ts: None,
        };
        match app {
            Some(app) => {
                if let Some(ts) = app.ts {
                    record.ts = ts;
                }
                record.level = app.level;
                record.corr = app.corr;
                record.span = app.span;
                record.msg = app.msg.unwrap_or_default();
                record.fields = app.fields;
            }
            None => {
                record.msg = text;
                record.add_flag(Flag::Unparsed);
            }
        }
        record.adjust_implausible_ts(observed, self.max_future_skew);
        record
    }

    fn writer(&mut self, source: &Arc<Path>) -> &Writer {
        let stale = match self.writers.get(source) {
            None => true,
            Some(cached) => cached
                .unresolved_since
                .is_some_and(|since| since.elapsed() >= UNRESOLVED_RETRY),
        };
        if stale {
            let (pod, identity, unresolved_since) = match self.metadata.locate(source) {
                Some(located) => (located.pod, located.identity, None),
                None => {
                    let pod = PodPath::parse(source).unwrap_or_else(|| {
                        PodPath::fallback(
                            source,
                            self.default_namespace.as_deref(),
                            self.default_pod.as_deref(),
                        )
                    });
                    let meta = self.metadata.pod(&pod.namespace, &pod.pod);
                    let identity = resolve(&pod, meta.as_deref());
                    (pod, identity, meta.is_none().then(Instant::now))
                }
            };
            self.writers.insert(
                source.clone(),
                Writer {
                    pod,
                    identity,
                    unresolved_since,
                },
            );
        }
        &self.writers[source]
    }

    /// Forgets cached identities, so pod metadata that changed is looked up again.
    pub fn forget_writers(&mut self) {
        self.writers.clear();
    }
}

/// Who writes a file: its pod coordinates and the identity resolved for them, cached per file.
#[derive(Debug)]
struct Writer {
    pod: PodPath,
    identity: Identity,
    /// When the identity was resolved without pod metadata (the provider may not know a new
    /// pod yet); such identities are looked up again after [`UNRESOLVED_RETRY`].
    unresolved_since: Option<Instant>,
}

/// How long an identity resolved without metadata is used before asking the provider again.
const UNRESOLVED_RETRY: Duration = Duration::from_secs(5);

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Records handed to the sink (sampled-out records are not).
    pub records: u64,
    /// Records a `[[sample]]` rule left out.
    pub sampled_out: u64,
    pub bytes_read: u64,
    pub truncations: u64,
}

/// The collector: tailer → builder → sink, with checkpoints.
#[derive(Debug)]
pub struct Collector<S: Sink> {
    tailer: Tailer,
    builder: RecordBuilder,
    store: CheckpointStore,
    sink: S,
    tracker: AckTracker,
    acks: Vec<Ticket>,
    scan_interval: Duration,
    drain_timeout: Duration,
    /// Bytes handed to the sink and not yet acknowledged before reading pauses: the kubelet's
    /// files are the buffer while the sink is slow.
    max_in_flight_bytes: usize,
    /// Acknowledgements received since readiness was last updated.
    acks_since_observe: usize,
    stats: RunStats,
    metrics: SharedMetrics,
    sampler: Sampler,
    redactor: Redactor,
}

/// Bytes read from one file per poll: bounds the batch of records in memory at once.
const READ_BUDGET: usize = 64 * 1024;

/// How often positions are saved while running (DESIGN: at least once a second). More often
/// means fewer re-sent lines after a crash, for one small fsync'd write each time.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

impl<S: Sink> Collector<S> {
    /// Builds a collector resuming from the checkpoint under `data_dir`.
    pub fn new(
        globs: Vec<String>,
        data_dir: &Path,
        config: &CollectorConfig,
        builder: RecordBuilder,
        sink: S,
    ) -> anyhow::Result<Collector<S>> {
        let store = CheckpointStore::open(data_dir)?;
        let loaded = store.load()?;
        if let Some((aside, reason)) = &loaded.set_aside {
            tracing::error!(
                checkpoint = %store.path().display(),
                moved_to = %aside.display(),
                %reason,
                "checkpoint unreadable; set aside, starting from the beginning of every file"
            );
        }
        let tailer = Tailer::new(
            TailerConfig {
                globs,
                max_line_bytes: config.max_line_bytes,
                read_budget: READ_BUDGET,
                scan_interval: config.scan_interval,
            },
            loaded.positions,
        );
        Ok(Collector {
            tailer,
            builder,
            store,
            sink,
            tracker: AckTracker::default(),
            acks: Vec::new(),
            scan_interval: config.scan_interval,
            drain_timeout: config.drain_timeout,
            max_in_flight_bytes: config.max_in_flight_bytes,
            acks_since_observe: 0,
            stats: RunStats::default(),
            metrics: Arc::new(Metrics::new()),
            sampler: config.sampler.clone(),
            redactor: config.redactor.clone(),
        }
        .with_rule_counters())
    }

    /// Reports into `metrics` (shared with the `/metrics` endpoint) instead of private ones.
    pub fn with_metrics(mut self, metrics: SharedMetrics) -> Self {
        self.metrics = metrics;
        self.with_rule_counters()
    }

    /// Makes every redaction rule's counter visible at 0 before it first counts.
    fn with_rule_counters(self) -> Self {
        for rule in self.redactor.rule_names() {
            let _ = self.metrics.redacted.get_or_create(&RuleLabel {
                rule: rule.to_owned(),
            });
        }
        self
    }

    /// Reads everything the files hold now, delivers it, saves positions and returns.
    pub fn run_once(&mut self) -> anyhow::Result<RunStats> {
        loop {
            self.collect_acks();
            if self.tracker.in_flight_bytes() >= self.max_in_flight_bytes {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            if self.step()?.bytes_read == 0 {
                break;
            }
        }
        self.finish()
    }

    /// Runs until `stop` is set, then delivers what is pending and saves positions.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<RunStats> {
        let mut last_save = Instant::now();
        let mut known_files = self.tailer.file_count();
        // While positions cannot be saved (a full disk) nothing more is read: a crash would
        // otherwise re-send an ever larger window. Saving is retried; reading resumes with it.
        let mut saving_fails = false;
        while !stop.load(Ordering::Relaxed) {
            self.collect_acks();
            let backpressured = self.tracker.in_flight_bytes() >= self.max_in_flight_bytes;
            let read = if backpressured || saving_fails {
                self.tailer.refresh_sizes();
                0
            } else {
                self.step()?.bytes_read
            };
            self.metrics.set_sink_problem(self.sink.problem());
            self.metrics
                .observe_progress(self.tracker.in_flight() > 0, backpressured);
            // A newly found file is saved at once: should it be rotated away before the next
            // save and the collector crash, the checkpoint still knows it and finds it again.
            let files = self.tailer.file_count();
            if last_save.elapsed() >= CHECKPOINT_INTERVAL || files != known_files {
                match self.save() {
                    Ok(()) => {
                        if saving_fails {
                            tracing::info!("positions saved again: reading resumes");
                            self.metrics.set_checkpoint_problem(None);
                        }
                        saving_fails = false;
                    }
                    Err(error) => {
                        let dir = self.store.path().parent().unwrap_or(self.store.path()).to_owned();
                        let free = fs4::available_space(&dir)
                            .map(|b| format!("{:.1} MiB free", b as f64 / 1048576.0))
                            .unwrap_or_else(|e| format!("free space unknown: {e}"));
                        let problem = format!(
                            "cannot save positions in {} ({free}): {error:#}; reading is paused until \
                             they can be saved",
                            dir.display()
                        );
                        if !saving_fails {
                            tracing::error!("{problem}");
                        }
                        self.metrics.set_checkpoint_problem(Some(problem));
                        saving_fails = true;
                    }
                }
                last_save = Instant::now();
                known_files = files;
            }
            if read == 0 {
                sleep_unless(stop, self.scan_interval.min(Duration::from_millis(50)));
            }
        }
        self.finish()
    }

    fn step(&mut self) -> anyhow::Result<PollStats> {
        let mut lines = Vec::new();
        let stats = self.tailer.poll(&mut lines);
        self.metrics.lines_read.inc_by(lines.len() as u64);
        self.metrics.bytes_read.inc_by(stats.bytes_read);
        for reason in LossReason::ALL {
            let (times, bytes) = stats.lost.get(reason);
            self.metrics.count_loss(reason.as_str(), times, bytes);
        }
        self.deliver(lines)?;
        self.stats.bytes_read += stats.bytes_read;
        self.stats.truncations += stats.truncations;
        Ok(stats)
    }

    fn deliver(&mut self, lines: Vec<TailedLine>) -> anyhow::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let observed = Timestamp::now();
        let mut batch: Vec<(Ticket, Record)> = Vec::with_capacity(lines.len());
        for line in lines {
            // The serialized size is not known yet: the line plus a typical envelope.
            let ticket = self.tracker.issue(&line.line, line.line.content.len() + 400);
            let mut record = self.builder.build(line, observed);
            if !self.sampler.keeps(&record) {
                // Not shipped, so nothing may hold its offset back: the checkpoint passes it.
                self.tracker.ack(ticket);
                self.stats.sampled_out += 1;
                self.metrics
                    .sampled_out
                    .get_or_create(&ServiceLabel {
                        service: record.service,
                    })
                    .inc();
                continue;
            }
            let metrics = &self.metrics;
            self.redactor.apply(&mut record, |rule| {
                metrics
                    .redacted
                    .get_or_create(&RuleLabel {
                        rule: rule.to_owned(),
                    })
                    .inc();
            });
            batch.push((ticket, record));
        }
        self.stats.records += batch.len() as u64;
        for (_, record) in &batch {
            for flag in &record.flags {
                let kind = match flag {
                    Flag::Unparsed => "unparsed",
                    Flag::InvalidUtf8 => "invalid_utf8",
                    Flag::TsAdjusted => "ts_adjusted",
                    Flag::Truncated => {
                        self.metrics.truncations.inc();
                        continue;
                    }
                    // The collector never sets `invalid_envelope`: only the indexer does.
                    // `redacted` is counted per rule above.
                    // `fields_capped` is the indexer's too.
                    Flag::PartialMerged | Flag::InvalidEnvelope | Flag::Redacted | Flag::FieldsCapped => {
                        continue;
                    }
                };
                self.metrics
                    .parse_failures
                    .get_or_create(&KindLabel { kind })
                    .inc();
            }
        }
        self.sink.send(batch).context("cannot deliver records")?;
        self.collect_acks();
        Ok(())
    }

    fn collect_acks(&mut self) {
        self.sink.poll_acks(&mut self.acks);
        self.metrics.records_delivered.inc_by(self.acks.len() as u64);
        self.acks_since_observe += self.acks.len();
        self.metrics
            .delivery_errors
            .inc_by(self.sink.take_delivery_errors());
        self.metrics
            .resend_failures
            .inc_by(self.sink.take_resend_failures());
        let (cut, bytes) = self.sink.take_message_cuts();
        self.metrics.count_loss("message_too_large", cut, bytes);
        for ticket in self.acks.drain(..) {
            self.tracker.ack(ticket);
        }
        self.metrics
            .in_flight_bytes
            .set(self.tracker.in_flight_bytes() as i64);
        self.metrics
            .in_flight_records
            .set(self.tracker.in_flight() as i64);
    }

    fn finish(&mut self) -> anyhow::Result<RunStats> {
        let mut lines = Vec::new();
        self.tailer.flush(&mut lines);
        self.deliver(lines)?;
        let deadline = Instant::now() + self.drain_timeout;
        while self.tracker.in_flight() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            self.collect_acks();
        }
        if self.tracker.in_flight() > 0 {
            tracing::warn!(
                records = self.tracker.in_flight(),
                drain_timeout = ?self.drain_timeout,
                "records not acknowledged at shutdown; they will be sent again on restart"
            );
        }
        self.save()?;
        Ok(self.stats)
    }

    /// Returns the positions to checkpoint: the tailer's, held back to the first line not yet
    /// acknowledged.
    pub fn positions(&self) -> Vec<crate::tailer::FilePosition> {
        let mut positions = self.tailer.positions();
        for position in &mut positions {
            if let Some(held) = FileKey::from_hex(&position.key).and_then(|key| self.tracker.held_offset(key))
            {
                position.offset = position.offset.min(held);
            }
        }
        positions
    }

    fn save(&self) -> anyhow::Result<()> {
        let positions = self.positions();
        self.store.save(&positions)?;
        self.metrics.checkpoint_saved();
        self.metrics.open_files.set(positions.len() as i64);
        self.metrics.file_lag_bytes.clear();
        for position in &positions {
            let label = crate::metrics::FileLabel {
                path: position.path.display().to_string(),
            };
            self.metrics
                .file_lag_bytes
                .get_or_create(&label)
                .set(position.size.saturating_sub(position.offset) as i64);
        }
        Ok(())
    }
}

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let deadline = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
