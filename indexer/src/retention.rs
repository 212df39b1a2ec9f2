//! Retention (DESIGN §4.2): sealed splits move through the configured tiers as their newest
//! record ages, and after the last tier they are deleted — or rewritten with only the records a
//! keep rule or a legal hold protects.
//!
//! Moving or rewriting a split re-encodes it into a staging directory, `retention/<id>/`, with
//! the target tier's encoding (the hot tier: lz4 docstore, positions; later tiers: zstd docstore,
//! one segment and `build_schema(false)`: no positions, frequencies, norms or id columns) and a
//! new manifest whose `prev` is the hash of the old manifest, kept beside it as
//! `prev-manifest-<sha256>.json` so the chain can still be walked. Then, in
//! order: the audit entry; the old directory set aside as `retention/<id>.replaced`; the new one
//! renamed into `splits/<tier>/<id>`; the old one removed. A crash leaves a state
//! [`recover`] resolves on the next start: a finished staging directory whose old split is still
//! in place is dropped (the step is redone by the next pass), one whose old split was already set
//! aside is moved into place. Either the old or the new split is searchable, never both.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use corral_schema::api::Selector;
use corral_schema::index_schema::build_schema;
use corral_schema::{Record, Timestamp};
use serde::Serialize;
use tantivy::indexer::NoMergePolicy;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{DocAddress, Index, IndexSettings, IndexWriter, TantivyDocument};
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditLog, Entry};
use crate::cache::RemoteSplit;
use crate::control::Janitor;
use crate::field_cap::FieldPaths;
use crate::holds::{Hold, Holds};
use crate::manifest::{MANIFEST_FILE, Manifest, hash_split_files, sha256_hex, sync_dir};
use crate::query::{Filters, QueryEngine};
use crate::storage::{SplitKey, SplitStorage};
use crate::store::{Catalog, HOT_TIER, SplitView, open_sealed, split_dirs, subdirs};

/// Staging directory of retention steps, under the data dir.
pub const STAGING_DIR: &str = "retention";
/// Prefix of the earlier manifests a re-encoded split keeps.
pub const PREV_MANIFEST_PREFIX: &str = "prev-manifest-";
/// zstd level of the docstore of tiers after `hot`, unless the tier sets `zstd_level`. On the
/// bench's records: level 7 stores 78 B/rec at 34 µs/rec of CPU for the move, 11 75 B at
/// 43 µs, 15 67 B at 158 µs, 19 63 B at 536 µs.
pub const ARCHIVE_ZSTD_LEVEL: i32 = 15;
/// Docstore block size of tiers after `hot`: bigger blocks compress repetitive logs better.
pub const ARCHIVE_BLOCK_SIZE: usize = 256 * 1024;
const REPLACED_SUFFIX: &str = ".replaced";
/// Who retention actions are recorded as in the audit log.
pub const RETENTION_ACTOR: &str = "retention";

/// The `[retention]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    pub check_interval: Duration,
    /// In order; the first is `hot`.
    pub tiers: Vec<Tier>,
    pub keep: Vec<KeepRule>,
}

/// A tier: a sealed split stays in it while its newest record is younger than `max_age`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub name: String,
    pub max_age: Duration,
    /// zstd level of the docstore of splits moved into this tier (not `hot`, which is lz4);
    /// [`ARCHIVE_ZSTD_LEVEL`] when not set.
    pub zstd_level: Option<i32>,
    /// The object store this tier's splits are published to (`storage = "s3://cold/corral"`);
    /// `None`: the indexer's `--storage`.
    pub storage: Option<crate::storage::StorageUrl>,
}

/// Records matching this are kept `max_age` (from their `ts`), whatever their tier says.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepRule {
    /// Which records: `service`, `level` (minimum) and `q` of the API's selector.
    pub selector: Selector,
    /// Kubernetes namespace (keep rules only: not a search parameter).
    pub namespace: Option<String>,
    pub max_age: Duration,
}

impl KeepRule {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(service) = &self.selector.service {
            parts.push(format!("service={service}"));
        }
        if let Some(namespace) = &self.namespace {
            parts.push(format!("namespace={namespace}"));
        }
        if let Some(level) = self.selector.level {
            parts.push(format!("level>={}", level.as_str()));
        }
        if let Some(q) = &self.selector.q {
            parts.push(format!("q={q:?}"));
        }
        format!("{} for {}", parts.join(" "), format_age(self.max_age))
    }

    fn filters(&self, now: Timestamp) -> Filters {
        // Without time bounds of its own, a selector always resolves.
        let selected = Filters::select(&self.selector, now).unwrap_or_default();
        Filters {
            namespace: self.namespace.clone(),
            since: Some(before(now, self.max_age)),
            ..selected
        }
    }
}

fn hold_filters(hold: &Hold) -> Filters {
    // A hold's bounds are instants (checked when it was placed): the clock does not matter.
    Filters::select(&hold.selector, Timestamp::now()).unwrap_or_else(|error| {
        tracing::error!(hold = %hold.id, %error, "a hold's selector cannot be read; it holds everything");
        Filters::default()
    })
}

fn before(now: Timestamp, age: Duration) -> Timestamp {
    now.saturating_add_nanos(-i64::try_from(age.as_nanos()).unwrap_or(i64::MAX))
}

fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    for (unit, size) in [("y", 365 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// What a pass does to one split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Re-encoded into a later tier, every record kept.
    Move,
    /// Re-encoded with only the records keep rules and holds protect.
    Rewrite,
    /// Removed: nothing in it is protected.
    Delete,
}

impl Step {
    fn action(self) -> &'static str {
        match self {
            Step::Move => "retention.move",
            Step::Rewrite => "retention.rewrite",
            Step::Delete => "retention.delete",
        }
    }
}

/// One planned step and why.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub step: Step,
    pub split: String,
    pub from: String,
    /// Tier after the step (`None` for a deletion).
    pub to: Option<String>,
    /// Records in the split now, and after the step.
    pub docs: u64,
    pub kept: u64,
    pub why: String,
}

impl std::fmt::Display for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            Step::Move => write!(
                f,
                "move    split {} {} → {} ({} records): {}",
                self.split,
                self.from,
                self.to.as_deref().unwrap_or("?"),
                self.docs,
                self.why
            ),
            Step::Rewrite => write!(
                f,
                "rewrite split {} {} → {} (keep {} of {} records): {}",
                self.split,
                self.from,
                self.to.as_deref().unwrap_or("?"),
                self.kept,
                self.docs,
                self.why
            ),
            Step::Delete => write!(
                f,
                "delete  split {} in {} ({} records): {}",
                self.split, self.from, self.docs, self.why
            ),
        }
    }
}

/// Runs retention over the sealed splits of one store.
pub struct Retention {
    /// The storage's local root: `splits/` and the staging directory are under it.
    root: PathBuf,
    storage: Arc<SplitStorage>,
    /// This indexer: in a shared store, the splits it wrote are the ones it manages.
    indexer: String,
    config: RetentionConfig,
    engine: QueryEngine,
    writer_memory_bytes: usize,
    /// With an object store shared by a cluster: the election that makes this indexer the one
    /// janitor of every published split. `None`: this retention manages its own splits.
    janitor: Option<Arc<Janitor>>,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention").field("root", &self.root).finish()
    }
}

impl Retention {
    /// Retention over the splits of the store data dir `data_dir` (in its local split root,
    /// [`crate::storage::local_root`]) that `catalog` holds.
    pub fn new(
        data_dir: &Path,
        config: RetentionConfig,
        catalog: Arc<Catalog>,
        writer_memory_bytes: usize,
    ) -> Retention {
        let root = crate::storage::local_root(data_dir);
        let storage = Arc::new(SplitStorage::local_unchecked(&root));
        Retention {
            root,
            storage,
            indexer: String::new(),
            config,
            engine: QueryEngine::new(catalog),
            writer_memory_bytes,
            janitor: None,
        }
    }

    /// Retention for the whole cluster: while `janitor` says this indexer is elected, it
    /// manages every published split, whoever published it; otherwise it does nothing.
    pub fn as_janitor(mut self, janitor: Arc<Janitor>) -> Retention {
        self.janitor = Some(janitor);
        self
    }

    /// Whether this retention may take a step now: always for its own splits; for the
    /// cluster's, only while it is the elected janitor.
    pub fn on_duty(&self) -> bool {
        self.janitor.as_ref().is_none_or(|janitor| janitor.elected())
    }

    /// Retention over the splits `indexer` published to `storage` (all of them in a store of
    /// its own): each step is published there too.
    pub fn with_storage(mut self, storage: Arc<SplitStorage>, indexer: &str) -> Retention {
        self.root = storage.root().to_owned();
        self.storage = storage;
        self.indexer = indexer.to_owned();
        self
    }

    /// What a pass at `now` would do, split by split, oldest first.
    pub fn plan(&self, holds: &[Hold], now: Timestamp) -> anyhow::Result<Vec<Planned>> {
        let mut planned = Vec::new();
        for split in self.own_splits() {
            match self.plan_split(&split, holds, now) {
                Ok(Some(step)) => planned.push(step),
                Ok(None) => {}
                // A published split that cannot be fetched now waits for the next pass; the
                // others go on.
                Err(error) if matches!(split, OwnSplit::Published(_)) => {
                    tracing::warn!(split = %split.id(), "cannot plan retention for the split, leaving it to the next pass: {error:#}");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(planned)
    }

    /// The sealed splits this retention manages, oldest first: those opened here, and (with an
    /// object store) those this indexer published — or, for the cluster's janitor, every
    /// published split. Without a janitor another indexer's splits are its own retention's.
    fn own_splits(&self) -> Vec<OwnSplit> {
        let shared = self.storage.is_shared();
        let (local, remote) = self.engine.catalog().snapshot();
        let mut own: Vec<OwnSplit> = local
            .into_iter()
            .filter(|v| !v.active && (!shared || v.indexer == self.indexer))
            .map(OwnSplit::Open)
            .collect();
        if shared {
            own.extend(
                remote
                    .into_iter()
                    .filter(|s| self.janitor.is_some() || s.indexer == self.indexer)
                    .map(OwnSplit::Published),
            );
        }
        own.sort_by(|a, b| a.id().cmp(b.id()));
        own
    }

    fn plan_split(
        &self,
        split: &OwnSplit,
        holds: &[Hold],
        now: Timestamp,
    ) -> anyhow::Result<Option<Planned>> {
        let tiers = &self.config.tiers;
        let (id, tier, docs) = (split.id(), split.tier(), split.docs());
        let Some(current) = tiers.iter().position(|t| t.name == tier) else {
            tracing::warn!(split = %id, tier = %tier, "split is in a tier the retention config does not list; left alone");
            return Ok(None);
        };
        let last = tiers.len() - 1;
        let newest = split.max_ts();
        let target = newest.and_then(|max| tiers.iter().position(|t| max > before(now, t.max_age)));
        let planned = |step, to: Option<usize>, kept, why| Planned {
            step,
            split: id.to_owned(),
            from: tier.to_owned(),
            to: to.map(|t| tiers[t].name.clone()),
            docs,
            kept,
            why,
        };
        let newest_text = newest.map_or_else(|| "none (empty split)".to_owned(), |t| t.to_string());
        match target {
            Some(t) if t > current => {
                let why = format!(
                    "newest record {newest_text} is older than {}'s max_age {}",
                    tiers[t - 1].name,
                    format_age(tiers[t - 1].max_age)
                );
                Ok(Some(planned(Step::Move, Some(t), docs, why)))
            }
            Some(_) => Ok(None),
            None => {
                let expired = format!(
                    "newest record {newest_text} is older than the last tier's ({}) max_age {}",
                    tiers[last].name,
                    format_age(tiers[last].max_age)
                );
                let view = split.view(self.engine.catalog())?;
                let (kept, reasons) = self.protected(&view, holds, now)?;
                let kept_count = kept.len() as u64;
                if kept_count == 0 {
                    let why = format!("{expired}; no keep rule or hold matches any of its records");
                    Ok(Some(planned(Step::Delete, None, 0, why)))
                } else if kept_count >= docs {
                    if current == last {
                        Ok(None)
                    } else {
                        let why = format!("{expired}, but every record is kept: {reasons}");
                        Ok(Some(planned(Step::Move, Some(last), docs, why)))
                    }
                } else {
                    let why = format!("{expired}; kept: {reasons}");
                    Ok(Some(planned(Step::Rewrite, Some(last), kept_count, why)))
                }
            }
        }
    }

    /// The records of `view` keep rules and holds protect at `now`, and a summary of why.
    fn protected(
        &self,
        view: &SplitView,
        holds: &[Hold],
        now: Timestamp,
    ) -> anyhow::Result<(HashSet<DocAddress>, String)> {
        let mut selections = Vec::new();
        let mut reasons = Vec::new();
        for (n, rule) in self.config.keep.iter().enumerate() {
            let filters = rule.filters(now);
            let count = self.engine.count_in(view, &filters)?;
            if count > 0 {
                reasons.push(format!("{count} by keep rule #{} ({})", n + 1, rule.describe()));
            }
            selections.push(filters);
        }
        for hold in holds {
            let filters = hold_filters(hold);
            let count = self.engine.count_in(view, &filters)?;
            if count > 0 {
                reasons.push(format!("{count} by hold {} ({})", hold.id, hold.reason));
            }
            selections.push(filters);
        }
        Ok((self.engine.select(view, &selections)?, reasons.join(", ")))
    }

    /// Runs one pass over a fixed set of holds: plans at `now`, then carries every step out,
    /// recording each in `audit`. Returns the steps taken.
    pub fn run(&self, holds: &[Hold], audit: &AuditLog, now: Timestamp) -> anyhow::Result<Vec<Planned>> {
        self.run_with(&Holds::fixed(holds.to_vec()), audit, now)
    }

    /// Runs one pass over the live `holds` (see `run_until`); returns the steps taken.
    pub fn run_with(&self, holds: &Holds, audit: &AuditLog, now: Timestamp) -> anyhow::Result<Vec<Planned>> {
        self.run_until(holds, audit, now, &CancellationToken::new())
    }

    /// Plans at `now`, then carries the steps out one by one, stopping before the next step once
    /// `stop` is set; returns the steps taken. Each step is planned again with the holds as they
    /// are when it starts, and a step that removes records is done under the holds' lock after
    /// checking that no hold was placed while it was prepared (if one was, it is prepared
    /// again): a hold placed during a pass protects its records from the next step on.
    fn run_until(
        &self,
        holds: &Holds,
        audit: &AuditLog,
        now: Timestamp,
        stop: &CancellationToken,
    ) -> anyhow::Result<Vec<Planned>> {
        if !self.on_duty() {
            return Ok(Vec::new());
        }
        if self.janitor.is_some() {
            self.remove_moved_copies()?;
        }
        let planned = self.plan(&holds.list()?, now)?;
        let mut taken = Vec::with_capacity(planned.len());
        for step in &planned {
            if stop.is_cancelled() {
                break;
            }
            if !self.on_duty() {
                tracing::info!("no longer the janitor: the pass stops before its next step");
                break;
            }
            let started = Instant::now();
            let done = self
                .apply(&step.split, holds, audit, now)
                .with_context(|| format!("retention step failed: {step}"))?;
            if let Some(done) = done {
                tracing::info!(split = %done.split, step = ?done.step, took_ms = started.elapsed().as_millis() as u64, "{done}");
                taken.push(done);
            }
        }
        if !taken.is_empty() {
            // The pass's entries are anchored outside the log.
            let _layout = self.engine.catalog().lock_layout();
            crate::store::anchor_audit_head(&self.storage, &self.indexer, audit)?;
        }
        Ok(taken)
    }

    /// A tier move whose janitor died after publishing the split's new copy but before
    /// removing the old one leaves the split in two tiers (searched once: the catalog holds
    /// the newer). The next janitor finishes the move: it removes a copy once another copy's
    /// manifest names that copy's manifest as an earlier version, so the records are in the
    /// copy that stays. The move was audited when it was taken.
    fn remove_moved_copies(&self) -> anyhow::Result<()> {
        let mut by_id: std::collections::BTreeMap<String, Vec<SplitKey>> = Default::default();
        for key in self.storage.list()? {
            by_id.entry(key.id.clone()).or_default().push(key);
        }
        for keys in by_id.into_values().filter(|keys| keys.len() > 1) {
            let mut copies = Vec::new();
            for key in keys {
                let manifest = self.storage.read_manifest(&key)?;
                let hash = self.storage.manifest_sha256(&key)?;
                copies.push((key, manifest, hash));
            }
            for (key, _, hash) in &copies {
                let earlier = format!("{PREV_MANIFEST_PREFIX}{hash}.json");
                let Some((newer, _, _)) = copies
                    .iter()
                    .find(|(other, manifest, _)| other != key && manifest.files.contains_key(&earlier))
                else {
                    continue;
                };
                if !self.on_duty() {
                    return Ok(());
                }
                tracing::warn!(split = %key.id, old_tier = %key.tier, new_tier = %newer.tier, "finishing a tier move a janitor did not: removing the old copy");
                self.storage.unpublish(key)?;
                self.engine.catalog().remove_remote_copy(key);
            }
        }
        Ok(())
    }

    /// Plans and carries out the step for split `id` with the holds in force now; `None` when
    /// the split needs no step any more.
    fn apply(
        &self,
        id: &str,
        holds: &Holds,
        audit: &AuditLog,
        now: Timestamp,
    ) -> anyhow::Result<Option<Planned>> {
        let split = self
            .own_splits()
            .into_iter()
            .find(|s| s.id() == id)
            .with_context(|| format!("split {id} is gone"))?;
        // A published split is fetched back (through the cache) for the step, and kept there
        // until the step is done: the step reads its files, and may put its new copy in their
        // place.
        let catalog = self.engine.catalog();
        let _pinned = catalog.cache().map(|cache| cache.pin(id));
        let view = split.view(catalog)?;
        let split = OwnSplit::Open(Arc::clone(&view));
        // Optimistic first: prepare without the lock (a rewrite can take minutes), then check
        // under it that no hold was placed meanwhile. After that many retries, prepare under it.
        for attempt in 0..=HOLD_RETRIES {
            let exclusive = (attempt == HOLD_RETRIES).then(|| holds.lock()).transpose()?;
            let seen = match &exclusive {
                Some(guard) => guard.to_vec(),
                None => holds.list()?,
            };
            let Some(step) = self.plan_split(&split, &seen, now)? else {
                return Ok(None);
            };
            let prepared = self.prepare(&step, &view, &seen, now)?;
            let held = match exclusive {
                Some(guard) => guard,
                None => {
                    // With the control topic, this reads the holds to its end: a hold any
                    // indexer acknowledged before now is seen.
                    let guard = holds.lock()?;
                    if step.step != Step::Move && guard.iter().any(|h| !seen.contains(h)) {
                        drop(guard);
                        tracing::info!(split = %step.split, "a hold was placed while the step was prepared; preparing it again");
                        if let Some((staging, _)) = &prepared.staged {
                            fs::remove_dir_all(staging)?;
                        }
                        continue;
                    }
                    guard
                }
            };
            if !self.on_duty() {
                // Another indexer was elected meanwhile: the step is its to take.
                if let Some((staging, _)) = &prepared.staged {
                    fs::remove_dir_all(staging)?;
                }
                return Ok(None);
            }
            self.commit(&step, &view, prepared, audit)?;
            drop(held);
            stage_point("placed");
            let aside = self
                .root
                .join(STAGING_DIR)
                .join(format!("{}{REPLACED_SUFFIX}", step.split));
            fs::remove_dir_all(&aside).with_context(|| format!("cannot remove {}", aside.display()))?;
            return Ok(Some(step));
        }
        unreachable!("the last attempt holds the lock throughout")
    }

    /// Re-encodes the split into `retention/<id>/` for a move or rewrite (nothing for a
    /// deletion) and gathers the audit entry's parameters.
    fn prepare(
        &self,
        step: &Planned,
        view: &SplitView,
        holds: &[Hold],
        now: Timestamp,
    ) -> anyhow::Result<Prepared> {
        let staging_root = self.root.join(STAGING_DIR);
        fs::create_dir_all(&staging_root)?;
        let old_hash = sha256_hex(&fs::read(view.dir.join(MANIFEST_FILE))?);
        let mut params = std::collections::BTreeMap::from([
            ("split".to_owned(), step.split.clone()),
            ("from".to_owned(), step.from.clone()),
            ("docs".to_owned(), step.docs.to_string()),
            ("kept".to_owned(), step.kept.to_string()),
            ("removed".to_owned(), (step.docs - step.kept).to_string()),
            ("manifest_sha256".to_owned(), old_hash),
            ("why".to_owned(), step.why.clone()),
        ]);
        let started = Instant::now();
        let mut staged = None;
        if let Some(to) = &step.to {
            let staging = staging_root.join(&step.split);
            if crate::disk::exists(&staging)? {
                fs::remove_dir_all(&staging)?;
            }
            let keep = match step.step {
                Step::Rewrite => Some(self.protected(view, holds, now)?.0),
                _ => None,
            };
            let level = self
                .config
                .tiers
                .iter()
                .find(|t| &t.name == to)
                .and_then(|t| t.zstd_level)
                .unwrap_or(ARCHIVE_ZSTD_LEVEL);
            let new_hash = reencode(
                view,
                keep.as_ref(),
                (to, level),
                &staging,
                self.writer_memory_bytes,
            )?;
            sync_dir(&staging_root)?;
            stage_point("staged");
            params.insert("to".to_owned(), to.clone());
            params.insert("new_manifest_sha256".to_owned(), new_hash);
            staged = Some((staging, self.storage.tier_dir(to).join(&step.split)));
        }
        Ok(Prepared {
            params,
            staged,
            started,
        })
    }

    /// The audit entry, then the old directory set aside and the new one put in its place.
    fn commit(
        &self,
        step: &Planned,
        view: &SplitView,
        prepared: Prepared,
        audit: &AuditLog,
    ) -> anyhow::Result<()> {
        let catalog = self.engine.catalog();
        let staging_root = self.root.join(STAGING_DIR);
        let Prepared {
            params,
            staged,
            started,
        } = prepared;
        audit.append(Entry {
            at: Timestamp::now(),
            who: RETENTION_ACTOR.to_owned(),
            role: "system".to_owned(),
            action: step.step.action().to_owned(),
            params,
            // Records moved, or removed.
            count: match step.step {
                Step::Move => step.docs,
                Step::Rewrite | Step::Delete => step.docs - step.kept,
            },
            tiers: vec![step.from.clone()],
            took_ms: started.elapsed().as_millis() as u64,
            refused: None,
            namespaces: None,
        })?;
        stage_point("audited");
        let aside = staging_root.join(format!("{}{REPLACED_SUFFIX}", step.split));
        let _layout = catalog.lock_layout();
        fs::rename(&view.dir, &aside).with_context(|| format!("cannot move {} aside", view.dir.display()))?;
        sync_dir(&staging_root)?;
        if let Some(parent) = view.dir.parent() {
            sync_dir(parent)?;
        }
        stage_point("set-aside");
        match &staged {
            Some((staging, target)) => {
                let tier_dir = target.parent().expect("a tier directory");
                fs::create_dir_all(tier_dir)?;
                fs::rename(staging, target)
                    .with_context(|| format!("cannot move {} to {}", staging.display(), target.display()))?;
                sync_dir(tier_dir)?;
                sync_dir(&staging_root)?;
                let view = open_sealed(target)?;
                self.storage.publish(target)?;
                if self.storage.is_shared() {
                    let manifest = Manifest::read(target)?;
                    let key = SplitKey {
                        tier: manifest.tier.clone(),
                        id: manifest.id.clone(),
                    };
                    catalog.put_published(Arc::new(view), RemoteSplit::new(key, &manifest))?;
                } else {
                    catalog.replace(view);
                }
            }
            None => {
                catalog.remove(&step.split);
                catalog.remove_remote(&step.split);
            }
        }
        stage_point("placed-locally");
        // The old copy leaves the store while it is still set aside here: a crash before this
        // is finished by `recover`.
        if staged
            .as_ref()
            .is_none_or(|_| step.to.as_deref() != Some(step.from.as_str()))
        {
            self.storage.unpublish(&SplitKey {
                tier: step.from.clone(),
                id: step.split.clone(),
            })?;
        }
        Ok(())
    }
}

/// A sealed split retention manages: opened here, or published (and read through the cache).
enum OwnSplit {
    Open(Arc<SplitView>),
    Published(Arc<RemoteSplit>),
}

impl OwnSplit {
    fn id(&self) -> &str {
        match self {
            OwnSplit::Open(view) => &view.id,
            OwnSplit::Published(split) => split.id(),
        }
    }

    fn tier(&self) -> &str {
        match self {
            OwnSplit::Open(view) => &view.tier,
            OwnSplit::Published(split) => split.tier(),
        }
    }

    fn docs(&self) -> u64 {
        match self {
            OwnSplit::Open(view) => view.docs,
            OwnSplit::Published(split) => split.docs,
        }
    }

    fn max_ts(&self) -> Option<Timestamp> {
        match self {
            OwnSplit::Open(view) => view.max_ts,
            OwnSplit::Published(split) => split.max_ts,
        }
    }

    /// The split opened: at once, or from the cache (fetched back from the store if evicted).
    fn view(&self, catalog: &Catalog) -> anyhow::Result<Arc<SplitView>> {
        match self {
            OwnSplit::Open(view) => Ok(Arc::clone(view)),
            OwnSplit::Published(split) => catalog
                .cache()
                .context("a published split without a cache")?
                .get(split),
        }
    }
}

/// What [`Retention::prepare`] made ready for [`Retention::commit`].
struct Prepared {
    params: std::collections::BTreeMap<String, String>,
    /// The staging directory and where it goes.
    staged: Option<(PathBuf, PathBuf)>,
    started: Instant,
}

/// How often a step is prepared again because holds were placed meanwhile before it is
/// prepared under the holds' lock.
const HOLD_RETRIES: usize = 3;

/// A named stage of a step, where the tests crash or pause a pass (see [`crash_point`] and
/// [`pause_point`]). Both are test hooks, compiled in only with the `test-hooks` feature (which
/// the tests turn on); a build without it never reads their variables.
fn stage_point(name: &str) {
    if cfg!(feature = "test-hooks") {
        crash_point(name);
        pause_point(name);
    }
}

/// Holds a pass at a named stage once, when `CORRAL_RETENTION_PAUSE_AT` names it: creates
/// `<CORRAL_RETENTION_PAUSE_FILE>.paused` and waits until `CORRAL_RETENTION_PAUSE_FILE` exists
/// (a minute at most). How the tests act during a pass. `staged` and `placed` are outside the
/// holds' lock; a pause at `audited` or `set-aside` also holds up hold changes.
fn pause_point(name: &str) {
    static PAUSED: AtomicBool = AtomicBool::new(false);
    if !std::env::var("CORRAL_RETENTION_PAUSE_AT").is_ok_and(|at| at == name) {
        return;
    }
    let Ok(gate) = std::env::var("CORRAL_RETENTION_PAUSE_FILE") else {
        return;
    };
    if PAUSED.swap(true, Ordering::Relaxed) {
        return;
    }
    let gate = PathBuf::from(gate);
    let mut paused = gate.clone().into_os_string();
    paused.push(".paused");
    eprintln!(
        "corral-indexer: pausing at retention stage {name:?} until {} exists",
        gate.display()
    );
    let _ = fs::write(&paused, name);
    let until = Instant::now() + Duration::from_secs(60);
    while !matches!(gate.try_exists(), Ok(true)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Aborts the process at a named point when `CORRAL_RETENTION_CRASH_AT` names it: how the tests
/// kill a retention step between its stages.
fn crash_point(name: &str) {
    if std::env::var("CORRAL_RETENTION_CRASH_AT").is_ok_and(|at| at == name) {
        eprintln!("corral-indexer: crashing at retention stage {name:?} (CORRAL_RETENTION_CRASH_AT)");
        std::process::abort();
    }
}

/// Re-encodes the records of `view` (only those in `keep`, if given) into a new split in
/// `dest` for `tier`, with a manifest chained to the old one; returns the new manifest's hash.
fn reencode(
    view: &SplitView,
    keep: Option<&HashSet<DocAddress>>,
    (tier, zstd_level): (&str, i32),
    dest: &Path,
    writer_memory_bytes: usize,
) -> anyhow::Result<String> {
    let hot = tier == HOT_TIER;
    fs::create_dir_all(dest)?;
    let (schema, fields) = build_schema(hot);
    let settings = if hot {
        IndexSettings {
            docstore_compression: Compressor::Lz4,
            ..IndexSettings::default()
        }
    } else {
        IndexSettings {
            docstore_compression: Compressor::Zstd(ZstdCompressor {
                compression_level: Some(zstd_level),
            }),
            docstore_blocksize: ARCHIVE_BLOCK_SIZE,
            ..IndexSettings::default()
        }
    };
    let index = Index::builder()
        .schema(schema)
        .settings(settings)
        .create_in_dir(dest)
        .with_context(|| format!("cannot create {}", dest.display()))?;
    let mut writer: IndexWriter<TantivyDocument> = index.writer_with_num_threads(1, writer_memory_bytes)?;
    writer.set_merge_policy(Box::new(NoMergePolicy));
    let searcher = view.reader.searcher();
    // The stored records hold every field; the new split indexes the paths the old one did.
    let mut paths = FieldPaths::frozen(&searcher, view.fields.fields)?;
    let (mut docs, mut min_ts, mut max_ts) = (0u64, None::<Timestamp>, None::<Timestamp>);
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let store = segment.get_store_reader(64)?;
        let seqs = segment.fast_fields().u64(corral_schema::fields::SEQ)?;
        for doc_id in segment.doc_ids_alive() {
            if keep.is_some_and(|keep| !keep.contains(&DocAddress::new(ord as u32, doc_id))) {
                continue;
            }
            let doc: TantivyDocument = store.get(doc_id)?;
            let source = doc
                .get_first(view.fields.source)
                .and_then(|v| tantivy::schema::Value::as_str(&v))
                .with_context(|| format!("split {}: a document without _source", view.id))?
                .to_owned();
            let record: Record = serde_json::from_str(&source)
                .with_context(|| format!("split {}: a stored record does not parse", view.id))?;
            let seq = seqs.first(doc_id).unwrap_or(0);
            min_ts = Some(min_ts.map_or(record.ts, |t| t.min(record.ts)));
            max_ts = Some(max_ts.map_or(record.ts, |t| t.max(record.ts)));
            docs += 1;
            let (record, source, _) = paths.cap(record, source);
            writer.add_document(fields.document(record, source, seq))?;
        }
    }
    writer.commit()?;
    let segments = index.searchable_segment_ids()?;
    if segments.len() > 1 {
        writer.merge(&segments).wait()?;
    }
    writer.garbage_collect_files().wait()?;
    writer.wait_merging_threads()?;

    let old_bytes = fs::read(view.dir.join(MANIFEST_FILE))?;
    let old_hash = sha256_hex(&old_bytes);
    let old = Manifest::read(&view.dir)?;
    // The earlier manifests come along, so verify can walk from this one to the chain link.
    // Each is fsync'd: the manifest written below makes the directory's entries durable.
    for entry in fs::read_dir(&view.dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREV_MANIFEST_PREFIX) {
            let copy = dest.join(&name);
            fs::copy(entry.path(), &copy)?;
            fs::File::open(&copy)?.sync_all()?;
        }
    }
    let prev_path = dest.join(format!("{PREV_MANIFEST_PREFIX}{old_hash}.json"));
    let mut prev_file =
        fs::File::create(&prev_path).with_context(|| format!("cannot create {}", prev_path.display()))?;
    std::io::Write::write_all(&mut prev_file, &old_bytes)?;
    prev_file.sync_all()?;
    let manifest = Manifest {
        tier: tier.to_owned(),
        min_ts,
        max_ts,
        docs,
        files: hash_split_files(dest)?,
        prev: Some(old_hash),
        prev_id: Some(old.id.clone()),
        ..old
    };
    manifest.write(dest)
}

/// Finishes or undoes retention steps a crash interrupted (see the module docs); in an object
/// store, the split placed is published and the one set aside removed.
pub fn recover(storage: &SplitStorage) -> anyhow::Result<()> {
    let root = storage.root();
    let staging_root = root.join(STAGING_DIR);
    if !crate::disk::exists(&staging_root)? {
        return Ok(());
    }
    let sealed = split_dirs(root)?;
    for dir in subdirs(&staging_root)? {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.ends_with(REPLACED_SUFFIX) {
            continue;
        }
        let finished = crate::disk::exists(&dir.join(MANIFEST_FILE))?;
        // The step took effect once the old copy was set aside (after its audit entry); with an
        // object store, an old copy that is not in place may just have left the cache.
        let set_aside = crate::disk::exists(&staging_root.join(format!("{name}{REPLACED_SUFFIX}")))?;
        let old_in_place = sealed.iter().any(|d| d.file_name().is_some_and(|n| *n == *name));
        if finished && set_aside && !old_in_place {
            let manifest = Manifest::read(&dir)?;
            let tier_dir = storage.tier_dir(&manifest.tier);
            fs::create_dir_all(&tier_dir)?;
            fs::rename(&dir, tier_dir.join(&manifest.id))?;
            sync_dir(&tier_dir)?;
            storage.publish(&tier_dir.join(&manifest.id))?;
            tracing::warn!(split = %manifest.id, tier = %manifest.tier, "finished a retention step a crash interrupted");
        } else {
            tracing::warn!(split = %name, "undoing a retention step a crash interrupted; the next pass redoes it");
            fs::remove_dir_all(&dir)?;
        }
    }
    for dir in subdirs(&staging_root)? {
        // A split set aside by a step: what replaced it (if anything) is in place by now, so
        // its old version leaves the store.
        if storage.is_shared()
            && dir.to_string_lossy().ends_with(REPLACED_SUFFIX)
            && let Ok(old) = Manifest::read(&dir)
        {
            let key = SplitKey {
                tier: old.tier.clone(),
                id: old.id.clone(),
            };
            // Only while the store still holds that old version: a split rewritten in place
            // (same tier) is published under the same key, and its new copy may have left the
            // cache since.
            if storage.list()?.contains(&key) && storage.read_manifest(&key)? == old {
                storage.unpublish(&key)?;
            }
        }
        fs::remove_dir_all(&dir)?;
    }
    sync_dir(&staging_root)?;
    Ok(())
}

/// Runs a pass every `check_interval` until `stop`, which ends a pass before its next step (the
/// step in progress finishes: a tier move of a big split can take minutes; a kill meanwhile is
/// undone by [`recover`] on the next start). A failed pass is logged and retried at the next
/// interval.
pub fn run_periodically(
    retention: &Retention,
    holds: &crate::holds::Holds,
    audit: &AuditLog,
    stop: &CancellationToken,
    after_pass: &dyn Fn(),
) {
    let mut next = Instant::now();
    while !stop.is_cancelled() {
        // A janitor's first pass starts as soon as it is elected.
        if Instant::now() >= next && retention.on_duty() {
            if let Err(error) = retention.run_until(holds, audit, Timestamp::now(), stop) {
                tracing::error!(error = %format!("{error:#}"), "retention pass failed");
            }
            after_pass();
            next = Instant::now() + retention.config.check_interval;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use corral_schema::Level;

    use super::*;
    use crate::manifest::Checkpoint;
    use crate::store::{SplitStore, StoreOptions};
    use corral_schema::Stream;

    /// Two sealed splits of month-old records, due to move to archive.
    fn store(dir: &Path) -> SplitStore {
        let mut store = SplitStore::open(
            dir,
            StoreOptions {
                split_max_docs: 1_000_000,
                split_max_age: Duration::from_secs(3600),
                writer_memory_bytes: 16 * 1024 * 1024,
                indexer_name: "indexer-0".into(),
                max_indexed_field_paths: crate::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
            },
        )
        .unwrap();
        let month_ago = Timestamp::now().saturating_add_nanos(-30 * 86_400_000_000_000);
        for split in 0..2u64 {
            for n in split * 10..split * 10 + 10 {
                let record = Record {
                    v: 1,
                    id: format!("{n:032x}"),
                    ts: month_ago.saturating_add_nanos(n as i64),
                    observed_ts: month_ago,
                    service: "orders".into(),
                    version: "1.0.0".into(),
                    instance: "orders-0/app".into(),
                    node: "node-1".into(),
                    namespace: "shop".into(),
                    pod: "orders-0".into(),
                    container: "app".into(),
                    stream: Stream::Stdout,
                    level: Some(Level::Info),
                    corr: None,
                    span: None,
                    msg: format!("record {n}"),
                    fields: serde_json::Map::new(),
                    flags: vec![],
                    original_ts: None,
                };
                let source = serde_json::to_string(&record).unwrap();
                store.add(record, source).unwrap();
            }
            store
                .commit(&Checkpoint::from([(0, split as i64 * 10 + 10)]))
                .unwrap();
            store.seal().unwrap();
        }
        store
    }

    #[test]
    fn a_stopped_pass_takes_no_further_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let config = RetentionConfig {
            check_interval: Duration::from_secs(60),
            tiers: vec![
                Tier {
                    name: HOT_TIER.into(),
                    max_age: Duration::from_secs(7 * 86_400),
                    zstd_level: None,
                    storage: None,
                },
                Tier {
                    name: "archive".into(),
                    max_age: Duration::from_secs(400 * 86_400),
                    zstd_level: Some(3),
                    storage: None,
                },
            ],
            keep: Vec::new(),
        };
        let retention = Retention::new(dir.path(), config, store.catalog(), 16 * 1024 * 1024);
        let audit = AuditLog::open(dir.path()).unwrap();
        let tiers = || {
            let mut tiers: Vec<String> = store
                .catalog()
                .splits()
                .iter()
                .filter(|s| !s.active)
                .map(|s| s.tier.clone())
                .collect();
            tiers.sort();
            tiers
        };
        let stopped = retention
            .run_until(&Holds::fixed(Vec::new()), &audit, Timestamp::now(), &{
                let stop = CancellationToken::new();
                stop.cancel();
                stop
            })
            .unwrap();
        assert!(stopped.is_empty(), "{stopped:?}");
        assert_eq!(tiers(), ["hot", "hot"]);
        let done = retention.run(&[], &audit, Timestamp::now()).unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(tiers(), ["archive", "archive"]);
    }
}
