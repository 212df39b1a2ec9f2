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

use crate::app_json::{KeyConfig, parse_app_json};
use crate::checkpoint::CheckpointStore;
use crate::config::CollectorConfig;
use crate::file_identity::record_id;
use crate::metadata::{Identity, MetadataProvider, resolve};
use crate::pod_path::PodPath;
use crate::sink::Sink;
use crate::tailer::{PollStats, TailedLine, Tailer, TailerConfig};

/// Turns tailed lines into envelopes: parsing, flags, enrichment, ids.
#[derive(Debug)]
pub struct RecordBuilder {
    node: String,
    keys: KeyConfig,
    metadata: Arc<dyn MetadataProvider>,
    default_namespace: Option<String>,
    default_pod: Option<String>,
    sources: HashMap<Arc<Path>, Source>,
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
            sources: HashMap::new(),
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
        let Source { pod, identity, .. } = self.source(&tailed.source);
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
            msg: String::new(),
            fields: serde_json::Map::new(),
            flags,
        };
        match app {
            Some(app) => {
                if let Some(ts) = app.ts {
                    record.ts = ts;
                }
                record.level = app.level;
                record.corr = app.corr;
                record.msg = app.msg.unwrap_or_default();
                record.fields = app.fields;
            }
            None => {
                record.msg = text;
                record.add_flag(Flag::Unparsed);
            }
        }
        record
    }

    fn source(&mut self, source: &Arc<Path>) -> &Source {
        let stale = match self.sources.get(source) {
            None => true,
            Some(cached) => cached
                .unresolved_since
                .is_some_and(|since| since.elapsed() >= UNRESOLVED_RETRY),
        };
        if stale {
            let pod = PodPath::parse(source).unwrap_or_else(|| {
                PodPath::fallback(
                    source,
                    self.default_namespace.as_deref(),
                    self.default_pod.as_deref(),
                )
            });
            let meta = self.metadata.pod(&pod.namespace, &pod.pod);
            let identity = resolve(&pod, meta.as_deref());
            let unresolved_since = meta.is_none().then(Instant::now);
            self.sources.insert(
                source.clone(),
                Source {
                    pod,
                    identity,
                    unresolved_since,
                },
            );
        }
        &self.sources[source]
    }

    /// Forgets cached identities, so pod metadata that changed is looked up again.
    pub fn forget_sources(&mut self) {
        self.sources.clear();
    }
}

/// A file's coordinates and identity, cached per file.
#[derive(Debug)]
struct Source {
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
    pub records: u64,
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
    scan_interval: Duration,
    stats: RunStats,
}

/// Bytes read from one file per poll: bounds the batch of records in memory at once.
const READ_BUDGET: usize = 64 * 1024;

/// How often positions are saved while running.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

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
            eprintln!(
                "corral-collector: checkpoint {} was unreadable ({reason}); moved it to {} and starting from the beginning of every file",
                store.path().display(),
                aside.display()
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
            scan_interval: config.scan_interval,
            stats: RunStats::default(),
        })
    }

    /// Reads everything the files hold now, delivers it, saves positions and returns.
    pub fn run_once(&mut self) -> anyhow::Result<RunStats> {
        loop {
            let stats = self.step()?;
            if stats.bytes_read == 0 {
                break;
            }
        }
        self.finish()
    }

    /// Runs until `stop` is set, then delivers what is pending and saves positions.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<RunStats> {
        let mut last_save = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let stats = self.step()?;
            if last_save.elapsed() >= CHECKPOINT_INTERVAL {
                self.save()?;
                last_save = Instant::now();
            }
            if stats.bytes_read == 0 {
                sleep_unless(stop, self.scan_interval);
            }
        }
        self.finish()
    }

    fn step(&mut self) -> anyhow::Result<PollStats> {
        let mut lines = Vec::new();
        let stats = self.tailer.poll(&mut lines);
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
        let records: Vec<Record> = lines
            .into_iter()
            .map(|line| self.builder.build(line, observed))
            .collect();
        self.sink.send(&records).context("cannot deliver records")?;
        self.stats.records += records.len() as u64;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<RunStats> {
        let mut lines = Vec::new();
        self.tailer.flush(&mut lines);
        self.deliver(lines)?;
        self.save()?;
        Ok(self.stats)
    }

    fn save(&self) -> anyhow::Result<()> {
        Ok(self.store.save(&self.tailer.positions())?)
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
