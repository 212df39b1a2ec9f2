//! The ingest loop: poll the source, drop duplicates, add records to the active split, and every
//! `commit_interval` commit the split with the checkpoint, then tell the source.
//!
//! When the data dir's disk runs low the loop pauses before it writes, and a write that failed
//! for lack of space is recovered from in-process (see [`crate::disk`]): the store reopens at its
//! last commit and the source is rewound to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_schema::{Flag, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::decode::{RecentIds, normalise_times};
use crate::disk::DiskGuard;
use crate::manifest::Checkpoint;
use crate::metrics::{Metrics, ReasonLabel};
use crate::source::Source;
use crate::store::SplitStore;

/// Ids remembered for dropping duplicates.
pub const RECENT_IDS: usize = 2_000_000;

/// Drives one source into one split store.
#[derive(Debug)]
pub struct Ingest<S: Source> {
    store: SplitStore,
    source: S,
    recent: RecentIds,
    checkpoint: Checkpoint,
    metrics: Arc<Metrics>,
    commit_interval: Duration,
    max_future_skew: Duration,
    disk: Option<DiskGuard>,
    /// True while a due seal waits for space (said once, not at every commit).
    seal_deferred: bool,
}

impl<S: Source> Ingest<S> {
    /// Warms the duplicate filter with the ids of the newest splits, so records re-sent across a
    /// restart are still recognised.
    pub fn new(
        store: SplitStore,
        source: S,
        metrics: Arc<Metrics>,
        commit_interval: Duration,
    ) -> anyhow::Result<Self> {
        let mut recent = RecentIds::new(RECENT_IDS);
        for key in store.recent_ids(RECENT_IDS)? {
            recent.insert_key(key);
        }
        let checkpoint = store.checkpoint().clone();
        Ok(Ingest {
            store,
            source,
            recent,
            checkpoint,
            metrics,
            commit_interval,
            max_future_skew: corral_schema::DEFAULT_MAX_FUTURE_SKEW,
            disk: None,
            seal_deferred: false,
        })
    }

    /// Pauses ingest while the data dir's filesystem has less than `min_free` bytes, and
    /// recovers from writes that failed for lack of space.
    pub fn with_min_free_bytes(mut self, min_free: u64) -> Self {
        self.disk = Some(DiskGuard::new(self.store.data_dir(), min_free));
        self
    }

    /// Sets `max_future_skew` ([`crate::decode::normalise_times`]).
    pub fn with_max_future_skew(mut self, max_future_skew: Duration) -> Self {
        self.max_future_skew = max_future_skew;
        self
    }

    /// Runs until `stop` is set or the source ends, then commits what is pending. A write that
    /// failed because the disk is full does not end it: see `Ingest::recover`.
    pub fn run(mut self, stop: &CancellationToken) -> anyhow::Result<()> {
        loop {
            match self.ingest(stop) {
                Ok(()) => break,
                Err(error) if error.downcast_ref::<crate::store::Fenced>().is_some() => {
                    tracing::warn!("{error:#}");
                    self = self.start_over()?;
                }
                Err(error) => {
                    let Some(why) = self.disk.as_ref().and_then(|disk| disk.explains(&error)) else {
                        return Err(error);
                    };
                    tracing::error!(error = %format!("{error:#}"), "{why}");
                    match self.recover(why, stop)? {
                        Some(recovered) => self = recovered,
                        None => return Ok(()),
                    }
                }
            }
        }
        self.commit()?;
        self.store.close(&self.checkpoint)?;
        Ok(())
    }

    /// After a split was fenced: the active split (what followed it) is dropped too, the store
    /// reopens at what this indexer published, and the source resumes each partition after the
    /// furthest published position.
    fn start_over(self) -> anyhow::Result<Self> {
        let Ingest {
            store,
            mut source,
            metrics,
            commit_interval,
            max_future_skew,
            disk,
            ..
        } = self;
        metrics.storage.splits_fenced.inc();
        let active = store.data_dir().join(crate::store::ACTIVE_DIR);
        let closed = store.close_for_reopen();
        for dir in crate::store::subdirs(&active)? {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", dir.display()))?;
        }
        let store = closed.open()?;
        source.rewind(store.checkpoint())?;
        tracing::info!("ingest starts again after what is published");
        let mut ingest =
            Ingest::new(store, source, metrics, commit_interval)?.with_max_future_skew(max_future_skew);
        ingest.disk = disk;
        Ok(ingest)
    }

    /// After a write failed for lack of space: waits until there is room, reopens the store at
    /// its last commit and rewinds the source to it, as a restart would (the duplicate filter is
    /// warmed again from what is committed). `None` when stopped while waiting.
    fn recover(self, why: String, stop: &CancellationToken) -> anyhow::Result<Option<Self>> {
        let Ingest {
            store,
            mut source,
            metrics,
            commit_interval,
            max_future_skew,
            disk,
            ..
        } = self;
        let disk = disk.expect("recover is only called with a disk guard");
        metrics.write_failures_recovered.inc();
        metrics.set_disk_problem(Some(why));
        let closed = store.close_for_reopen();
        // Opening finishes an interrupted seal, which needs room too: wait and try again.
        let store = loop {
            if !wait_for_space(&disk, stop, || 0) {
                return Ok(None);
            }
            match closed.open() {
                Ok(store) => break store,
                Err(error) => match disk.explains(&error) {
                    Some(why) => {
                        tracing::error!(error = %format!("{error:#}"), "{why}");
                        metrics.set_disk_problem(Some(why));
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    None => return Err(error),
                },
            }
        };
        source.rewind(store.checkpoint())?;
        metrics.set_disk_problem(None);
        tracing::info!("space returned: ingest resumes from the last commit");
        let mut ingest =
            Ingest::new(store, source, metrics, commit_interval)?.with_max_future_skew(max_future_skew);
        ingest.disk = Some(disk);
        Ok(Some(ingest))
    }

    /// The loop itself; returns when stopped or the source ended, or on the first error.
    fn ingest(&mut self, stop: &CancellationToken) -> anyhow::Result<()> {
        let mut last_commit = Instant::now();
        let mut dirty = false;
        loop {
            // A running seal's final merge still writes: its share is kept free too, so the
            // reserve still holds when it is done.
            let reserved = self.store.seal_reserve();
            if let Some(why) = self.disk.as_ref().and_then(|disk| disk.low(reserved)) {
                // Commit what is pending while the reserve still holds it, then read nothing
                // until there is room: the source (Kafka, the collector's files) is the buffer.
                if dirty {
                    self.commit()?;
                    dirty = false;
                }
                tracing::error!("{why}");
                self.metrics.set_disk_problem(Some(why));
                let disk = self.disk.clone().expect("checked above");
                if !wait_for_space(&disk, stop, || self.store.seal_reserve()) {
                    return Ok(());
                }
                self.metrics.set_disk_problem(None);
                tracing::info!("space returned: ingest resumes");
            }
            let until_commit = self.commit_interval.saturating_sub(last_commit.elapsed());
            let polled = self.source.poll(until_commit.min(Duration::from_millis(100)))?;
            let Some(batch) = polled else {
                tracing::info!("source ended");
                break;
            };
            self.metrics.set_problem(self.source.problem());
            for incoming in batch {
                if let Some((partition, offset)) = incoming.position {
                    let next = self.checkpoint.entry(partition).or_insert(0);
                    *next = (*next).max(offset + 1);
                    self.store.note_position(partition, offset);
                }
                dirty = true;
                let mut decoded = incoming.decoded;
                if normalise_times(&mut decoded, self.max_future_skew, Timestamp::now())
                    && decoded.record.has_flag(Flag::TsAdjusted)
                {
                    self.metrics.ts_adjusted.inc();
                }
                if let Some(problem) = decoded.problem {
                    self.metrics
                        .invalid_records
                        .get_or_create(&ReasonLabel {
                            reason: problem.as_str(),
                        })
                        .inc();
                }
                if !self.recent.insert(&decoded.record.id) {
                    self.metrics.duplicates_dropped.inc();
                    continue;
                }
                self.metrics.bytes_indexed.inc_by(decoded.source.len() as u64);
                if self.store.add(decoded.record, decoded.source)? {
                    self.metrics.fields_capped.inc();
                }
                self.metrics.records_indexed.inc();
            }
            // A seal that ended with an error (a fenced split) says so now.
            self.store.poll_seal()?;
            let revoked = self.source.revoked();
            if !revoked.is_empty() {
                // Partitions leave: what this split holds of them is published before they go.
                self.commit()?;
                dirty = false;
                last_commit = Instant::now();
                self.store.seal_now_if_shared()?;
                for done in revoked {
                    let _ = done.send(());
                }
            }
            if last_commit.elapsed() >= self.commit_interval {
                if dirty || self.store.seal_due() {
                    self.commit()?;
                    dirty = false;
                }
                last_commit = Instant::now();
            }
            if stop.is_cancelled() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let sealed_before = self.store.sealed_count();
        self.store.commit(&self.checkpoint)?;
        if self.store.seal_due() && self.room_to_seal()? {
            self.store.seal_in_background()?;
        }
        self.metrics
            .splits_sealed
            .inc_by(self.store.sealed_count() - sealed_before);
        self.metrics.splits.set(self.store.catalog().len() as i64);
        self.metrics.commits.inc();
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.source.committed(&self.checkpoint);
        Ok(())
    }

    /// Whether a due seal may start: its final merge writes about the split's size again, and
    /// that must fit above the disk's reserve. A deferred seal is tried at the next commit; the
    /// split stays active and searchable meanwhile.
    fn room_to_seal(&mut self) -> anyhow::Result<bool> {
        let Some(disk) = &self.disk else {
            return Ok(true);
        };
        let bytes = self.store.active_bytes()?;
        let room = disk.room_for(bytes);
        if !room && !self.seal_deferred {
            tracing::warn!(
                split_bytes = bytes,
                "the active split is due to be sealed, but its final merge would not fit above \
                 indexer.min_free_bytes; the seal waits for space"
            );
        }
        self.seal_deferred = !room;
        Ok(room)
    }
}

/// Waits until `disk` has room again beside what `reserved` says a running seal still needs;
/// false when `stop` was set first.
fn wait_for_space(disk: &DiskGuard, stop: &CancellationToken, reserved: impl Fn() -> u64) -> bool {
    let mut waited = Instant::now();
    while !disk.recovered(reserved()) {
        if stop.is_cancelled() {
            return false;
        }
        if waited.elapsed() >= Duration::from_secs(60) {
            if let Some(why) = disk.low(reserved()) {
                tracing::error!("{why}");
            }
            waited = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    true
}
