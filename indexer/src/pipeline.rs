//! The ingest loop: poll the source, drop duplicates, add records to the active split, and every
//! `commit_interval` commit the split with the checkpoint, then tell the source.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::ingest::RecentIds;
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
        })
    }

    /// Runs until `stop` is set or the source ends, then commits what is pending.
    pub fn run(mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut last_commit = Instant::now();
        let mut dirty = false;
        loop {
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
                }
                dirty = true;
                let decoded = incoming.decoded;
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
                self.store.add(decoded.record, decoded.source)?;
                self.metrics.records_indexed.inc();
            }
            if last_commit.elapsed() >= self.commit_interval {
                if dirty || self.store.seal_due() {
                    self.commit()?;
                    dirty = false;
                }
                last_commit = Instant::now();
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        self.commit()?;
        self.store.close(&self.checkpoint)?;
        Ok(())
    }

    fn commit(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let sealed_before = self.store.sealed_count();
        self.store.commit(&self.checkpoint)?;
        if self.store.seal_due() {
            self.store.seal_in_background()?;
        }
        self.metrics
            .splits_sealed
            .inc_by(self.store.sealed_count() - sealed_before);
        self.metrics
            .splits
            .set(self.store.catalog().splits().len() as i64);
        self.metrics.commits.inc();
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.source.committed(&self.checkpoint);
        Ok(())
    }
}
