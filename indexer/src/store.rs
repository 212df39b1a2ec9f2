//! The split store: the active split records are written to, the sealed splits, and the
//! [`Catalog`] the query engine reads (DESIGN §4.2).
//!
//! Layout:
//! - `<data-dir>/active/<split-id>/` — the split being written; every commit carries a payload
//!   with the source checkpoint, so after a crash the split reopens at its last commit and the
//!   source resumes exactly there;
//! - `splits/<tier>/<split-id>/` under the storage's local root ([`SplitStorage::root`]) —
//!   sealed splits, each with its `corral-split.json` manifest.
//!
//! Sealing: final merge into one segment → manifest written into the active directory → the
//! directory renamed into `splits/hot/` → published ([`SplitStorage::publish`]: for an object
//! store, uploaded, manifest last). A crash before the rename leaves an active split with a
//! manifest, which [`SplitStore::open`] finishes moving; one before the upload ends leaves a
//! split the next open publishes.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use corral_schema::index_schema::{IndexFields, build_schema};
use corral_schema::{Record, Timestamp};
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::indexer::{LogMergePolicy, NoMergePolicy};
use tantivy::schema::Schema;
use tantivy::store::Compressor;
use tantivy::{Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, TantivyDocument};

use crate::audit::AuditLog;
use crate::cache::{RemoteSplit, SplitCache};
pub use crate::catalog::{Catalog, SplitView, newest_by_indexer};
pub use crate::chain::{CHAIN_HEAD_FILE, ChainHead, anchor_audit_head, read_chain_head};
use crate::chain::{
    newest_sealed_manifest, publish_chain_head, repair_chain_head, write_chain_head, write_local_chain_head,
};
use crate::disk::dir_bytes;
use crate::field_cap::FieldPaths;
use crate::manifest::{Checkpoint, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, sync_dir};
pub use crate::published::Fenced;
use crate::published::{overlapping, publish_until_done, reconcile, refresh_catalog, until_done};
pub use crate::storage::SPLITS_DIR;
use crate::storage::{SplitKey, SplitStorage, local_root};

/// Directory of the active split, under the data dir.
pub const ACTIVE_DIR: &str = "active";
/// Tier of a newly sealed split.
pub const HOT_TIER: &str = "hot";

/// How the store writes and seals splits.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub split_max_docs: u64,
    pub split_max_age: std::time::Duration,
    pub writer_memory_bytes: usize,
    /// Name written into manifests: the pod name, or the host name.
    pub indexer_name: String,
    /// Most distinct `fields.*` paths one split indexes ([`crate::field_cap`]).
    pub max_indexed_field_paths: usize,
}

/// What every commit of the active split records in tantivy's commit payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitState {
    pub checkpoint: Checkpoint,
    /// Per partition, the offset of the first record of it in this split: with `checkpoint`,
    /// the range of each partition the split covers.
    #[serde(default)]
    pub start: Checkpoint,
    /// The Kafka topic of `checkpoint` ([`SplitStore::set_source`]), so a split sealed when the
    /// store reopens after a crash still names it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub next_seq: u64,
    pub min_ts: Option<Timestamp>,
    pub max_ts: Option<Timestamp>,
    pub docs: u64,
}

/// A store closed by [`SplitStore::close_for_reopen`], to be opened again.
#[derive(Debug)]
pub struct ClosedStore {
    data_dir: PathBuf,
    storage: Arc<SplitStorage>,
    source: String,
    options: StoreOptions,
    catalog: Arc<Catalog>,
    sealed: u64,
}

impl ClosedStore {
    /// Opens the store again as a restart would: the active split at its last commit, an
    /// interrupted seal finished. May be tried again when it fails (a disk still full).
    pub fn open(&self) -> anyhow::Result<SplitStore> {
        let mut store = SplitStore::open_with_catalog(
            &self.data_dir,
            Arc::clone(&self.storage),
            self.options.clone(),
            Arc::clone(&self.catalog),
        )?;
        store.sealed += self.sealed;
        store.source = self.source.clone();
        Ok(store)
    }
}

/// The split being written.
struct ActiveSplit {
    id: String,
    dir: PathBuf,
    index: Index,
    writer: IndexWriter,
    reader: IndexReader,
    /// State as of the last commit.
    committed: CommitState,
    /// State including records added since.
    pending: CommitState,
    opened: Instant,
    created: Timestamp,
    /// The `fields.*` paths it indexes.
    paths: FieldPaths,
}

/// Owns the active split and seals it; shares what is searchable through a [`Catalog`].
pub struct SplitStore {
    data_dir: PathBuf,
    storage: Arc<SplitStorage>,
    options: StoreOptions,
    /// The Kafka topic of the checkpoints ([`SplitStore::set_source`]).
    source: String,
    schema: Schema,
    fields: IndexFields,
    active: Option<ActiveSplit>,
    catalog: Arc<Catalog>,
    sealed: u64,
    /// The background seal running, if any.
    sealer: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    /// Bytes of the split the running seal merges: its final merge may write about as much.
    sealing_bytes: u64,
    /// The audit log whose head seals and [`SplitStore::close`] anchor in the chain head.
    audit: Option<Arc<AuditLog>>,
}

impl std::fmt::Debug for SplitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitStore")
            .field("data_dir", &self.data_dir)
            .field("active", &self.active.as_ref().map(|a| &a.id))
            .finish()
    }
}

impl SplitStore {
    /// Opens the store under `data_dir`, recovering from any crash: half-sealed splits are moved
    /// into place, the active split reopens at its last commit (or a new one starts from the
    /// newest sealed split's checkpoint).
    /// Sealed splits go to the default storage, `<data-dir>/store`.
    pub fn open(data_dir: &Path, options: StoreOptions) -> anyhow::Result<SplitStore> {
        let storage = SplitStorage::open(&crate::storage::StorageUrl::default_for(data_dir), data_dir)?;
        SplitStore::open_in(data_dir, Arc::new(storage), options)
    }

    /// As [`SplitStore::open`], sealed splits published to `storage`.
    pub fn open_in(
        data_dir: &Path,
        storage: Arc<SplitStorage>,
        options: StoreOptions,
    ) -> anyhow::Result<SplitStore> {
        SplitStore::open_with_catalog(data_dir, storage, options, Arc::new(Catalog::new()))
    }

    /// Closes the store without committing, as a crash would, keeping what is needed to open
    /// it again ([`ClosedStore::open`]): the catalog (and so every query engine reading it) is
    /// kept. For recovering from a failed write (a full disk).
    pub fn close_for_reopen(mut self) -> ClosedStore {
        if let Some(sealer) = self.sealer.take() {
            // A seal that failed is finished when the store opens again.
            match sealer.join() {
                Ok(Ok(())) => self.sealed += 1,
                Ok(Err(error)) => tracing::warn!("a seal failed, it is redone on reopen: {error:#}"),
                Err(_) => tracing::warn!("the seal thread panicked; the seal is redone on reopen"),
            }
        }
        let closed = ClosedStore {
            data_dir: self.data_dir.clone(),
            storage: Arc::clone(&self.storage),
            source: self.source.clone(),
            options: self.options.clone(),
            catalog: Arc::clone(&self.catalog),
            sealed: self.sealed,
        };
        // Dropping the writer releases the split's lock; what it held uncommitted is gone.
        drop(self);
        closed
    }

    /// The data dir this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where sealed splits are published.
    pub fn storage(&self) -> &Arc<SplitStorage> {
        &self.storage
    }

    fn open_with_catalog(
        data_dir: &Path,
        storage: Arc<SplitStorage>,
        options: StoreOptions,
        catalog: Arc<Catalog>,
    ) -> anyhow::Result<SplitStore> {
        let active_root = data_dir.join(ACTIVE_DIR);
        fs::create_dir_all(&active_root)
            .with_context(|| format!("cannot create {}", active_root.display()))?;
        let root = storage.root().to_owned();
        fs::create_dir_all(storage.tier_dir(HOT_TIER))?;
        let (schema, fields) = build_schema(true);
        let mut store = SplitStore {
            data_dir: data_dir.to_owned(),
            storage,
            options,
            source: String::new(),
            schema,
            fields,
            active: None,
            catalog,
            sealed: 0,
            sealer: None,
            sealing_bytes: 0,
            audit: None,
        };

        // Finish seals interrupted after the manifest was written.
        let mut unsealed = Vec::new();
        for dir in subdirs(&active_root)? {
            if crate::disk::exists(&dir.join(MANIFEST_FILE))? {
                move_sealed(&store.seal_context(), &dir)?;
            } else if has_commit_payload(&dir)? {
                unsealed.push(dir);
            } else {
                // Killed before its first commit: it holds no record and no checkpoint.
                tracing::info!(split = %dir.display(), "removing a split that was never committed");
                fs::remove_dir_all(&dir)?;
            }
        }
        crate::retention::recover(&store.storage)?;
        let name = store.options.indexer_name.clone();
        if store.storage.is_shared() && read_chain_head(&root)?.is_none() {
            // A new or lost data dir: this indexer's chain continues from its published head.
            if let Some(bytes) = store.storage.fetch_chain_head(&name)? {
                let head: ChainHead =
                    serde_json::from_slice(&bytes).context("invalid published chain head")?;
                write_chain_head(&store.storage, &name, &head)?;
                tracing::info!(indexer = %name, "continuing the manifest chain from its published head");
            }
        }
        repair_chain_head(&store.storage, &name)?;
        let cache = store.storage.is_shared().then(|| {
            store.catalog.cache_or_init(|| {
                Arc::new(SplitCache::new(
                    Arc::clone(&store.storage),
                    crate::cache::DEFAULT_CACHE_MAX_BYTES,
                ))
            })
        });
        for dir in split_dirs(&root)? {
            match open_sealed(&dir) {
                // Another indexer's split, fetched by an earlier run.
                Ok(view) => match &cache {
                    // Another indexer's split, fetched by an earlier run.
                    Some(cache) if view.indexer != name => cache.adopt(view),
                    _ => store.catalog.replace(view),
                },
                Err(error) => {
                    tracing::error!(split = %dir.display(), "cannot open sealed split, skipping it: {error:#}")
                }
            }
        }
        if store.storage.is_shared() {
            reconcile(&store.storage, &store.catalog, &name)?;
            // Published, each of them: read through the cache from now on.
            for view in store.catalog.splits().into_iter().filter(|v| !v.active) {
                hand_to_cache(&store.catalog, &view.dir)?;
            }
            refresh_catalog(&store.storage, &store.catalog)?;
        }
        // Older active splits (a crash while a new one was being started) are sealed as they are.
        unsealed.sort();
        let newest = unsealed.pop();
        for dir in unsealed {
            let split = store.reopen_active(&dir)?;
            match seal_split(split, &store.seal_context()) {
                Ok(()) => store.sealed += 1,
                Err(error) if error.downcast_ref::<Fenced>().is_some() => tracing::warn!("{error:#}"),
                Err(error) => return Err(error),
            }
        }
        let active = match newest {
            Some(dir) => store.reopen_active(&dir)?,
            None => {
                let start = store.newest_sealed_state();
                store.create_active(start)?
            }
        };
        store.catalog.set_committed_seq(active.committed.next_seq);
        store.publish(&active);
        store.active = Some(active);
        Ok(store)
    }

    /// Anchors the head of `audit` in the chain head at every seal and at [`Self::close`].
    pub fn anchor_audit(&mut self, audit: Arc<AuditLog>) {
        self.audit = Some(audit);
    }

    /// The catalog the query engine reads.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog)
    }

    /// Source checkpoint as of the last commit.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.active().committed.checkpoint
    }

    /// Number of records added since the last commit.
    pub fn uncommitted(&self) -> u64 {
        let active = self.active();
        active.pending.docs - active.committed.docs
    }

    /// Id keys ([`corral_schema::record::id_key`]) of the newest `limit` records by ingest
    /// sequence, oldest first, for warming the duplicate filter after a restart (it then forgets
    /// the oldest first). Reads the hot splits newest first and stops at the first that holds
    /// nothing that recent.
    pub fn recent_ids(&self, limit: usize) -> anyhow::Result<Vec<u128>> {
        let from = self.active().committed.next_seq.saturating_sub(limit as u64);
        let mut keyed: Vec<(u64, u128)> = Vec::new();
        // Later tiers keep no id columns, and hold nothing recent.
        let (local, remote) = self.catalog.snapshot();
        let mut hot: Vec<Arc<SplitView>> = local.into_iter().filter(|v| v.tier == HOT_TIER).collect();
        if let Some(cache) = self.catalog.cache() {
            // This indexer's published splits that can hold one of those sequence numbers.
            for split in remote.iter().filter(|s| {
                s.indexer == self.options.indexer_name && s.tier() == HOT_TIER && s.next_seq > from
            }) {
                hot.push(cache.get(split)?);
            }
        }
        hot.sort_by(|a, b| b.id.cmp(&a.id));
        for view in hot {
            let before = keyed.len();
            let searcher = view.reader.searcher();
            for segment in searcher.segment_readers() {
                let fast = segment.fast_fields();
                let (hi, lo, seq) = (
                    fast.u64(corral_schema::fields::ID_HI)?,
                    fast.u64(corral_schema::fields::ID_LO)?,
                    fast.u64(corral_schema::fields::SEQ)?,
                );
                for doc in segment.doc_ids_alive() {
                    if let (Some(seq), Some(hi), Some(lo)) = (seq.first(doc), hi.first(doc), lo.first(doc))
                        && seq >= from
                    {
                        keyed.push((seq, (u128::from(hi) << 64) | u128::from(lo)));
                    }
                }
            }
            // Sequence numbers grow from split to split: older splits hold nothing newer.
            if view.docs > 0 && keyed.len() == before {
                break;
            }
        }
        keyed.sort_unstable_by_key(|(seq, _)| *seq);
        let skip = keyed.len().saturating_sub(limit);
        Ok(keyed.into_iter().skip(skip).map(|(_, key)| key).collect())
    }

    /// Notes that the next record added is at `offset` of Kafka `partition`: the split's range
    /// of each partition starts at its first record ([`CommitState::start`]).
    pub fn note_position(&mut self, partition: i32, offset: i64) {
        let active = self
            .active
            .as_mut()
            .expect("the store always has an active split");
        active.pending.start.entry(partition).or_insert(offset);
    }

    /// Ends a seal that has finished, if one has: its error (a fenced split: [`Fenced`]) comes
    /// out here rather than at the next seal.
    pub fn poll_seal(&mut self) -> anyhow::Result<()> {
        if self.sealer.as_ref().is_some_and(|s| s.is_finished()) {
            self.wait_for_seal()?;
        }
        Ok(())
    }

    /// Adds a record to the active split; `source` is its envelope JSON, stored verbatim unless
    /// the record holds `fields.*` paths beyond the split's cap (then it gains flag
    /// `fields_capped`, and `true` is returned).
    pub fn add(&mut self, record: Record, source: String) -> anyhow::Result<bool> {
        let fields = self.fields;
        let active = self
            .active
            .as_mut()
            .expect("the store always has an active split");
        let seq = active.pending.next_seq;
        active.pending.next_seq += 1;
        active.pending.docs += 1;
        active.pending.min_ts = Some(active.pending.min_ts.map_or(record.ts, |t| t.min(record.ts)));
        active.pending.max_ts = Some(active.pending.max_ts.map_or(record.ts, |t| t.max(record.ts)));
        let (record, source, capped) = active.paths.cap(record, source);
        active.writer.add_document(fields.document(record, source, seq))?;
        Ok(capped)
    }

    /// Commits the active split with `checkpoint` (the source position just past every record
    /// added) and makes the records searchable.
    pub fn commit(&mut self, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        let active = self
            .active
            .as_mut()
            .expect("the store always has an active split");
        active.pending.checkpoint = checkpoint.clone();
        if !self.source.is_empty() {
            active.pending.source = self.source.clone();
        }
        let payload = serde_json::to_string(&active.pending)?;
        let mut prepared = active.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        active.reader.reload()?;
        active.committed = active.pending.clone();
        let next_seq = active.committed.next_seq;
        let active = self.active.take().expect("checked above");
        self.publish(&active);
        self.active = Some(active);
        self.catalog.set_committed_seq(next_seq);
        Ok(())
    }

    /// True when the active split holds `split_max_docs` records, or records and is older than
    /// `split_max_age`.
    pub fn seal_due(&self) -> bool {
        let active = self.active();
        active.committed.docs >= self.options.split_max_docs
            || (active.committed.docs > 0 && active.opened.elapsed() >= self.options.split_max_age)
    }

    /// Bytes the active split takes on disk now; its seal's final merge writes about as much
    /// again before the old segments are removed.
    pub fn active_bytes(&self) -> anyhow::Result<u64> {
        dir_bytes(&self.active().dir)
    }

    /// Bytes a running background seal may still write: the size of the split it merges, or 0
    /// when no seal runs. Ingest keeps this much free beside its own reserve.
    pub fn seal_reserve(&self) -> u64 {
        match &self.sealer {
            Some(sealer) if !sealer.is_finished() => self.sealing_bytes,
            _ => 0,
        }
    }

    /// Number of splits sealed by this store since it was opened.
    pub fn sealed_count(&self) -> u64 {
        self.sealed
    }

    /// Seals the active split (final merge, manifest, move into `splits/hot/`) and starts a new
    /// one that continues from its checkpoint; returns when the seal is done.
    pub fn seal(&mut self) -> anyhow::Result<()> {
        self.seal_in_background()?;
        self.wait_for_seal()
    }

    /// Starts a new active split at once and seals the full one on a background thread, so
    /// ingest does not wait for the final merge. One seal runs at a time (manifests chain in
    /// order); the full split stays searchable until its sealed copy replaces it.
    pub fn seal_in_background(&mut self) -> anyhow::Result<()> {
        self.wait_for_seal()?;
        let sealing_bytes = self.active_bytes()?;
        let full = self.active.take().expect("the store always has an active split");
        let next = self.create_active(CommitState {
            checkpoint: full.committed.checkpoint.clone(),
            next_seq: full.committed.next_seq,
            ..CommitState::default()
        });
        let next = match next {
            Ok(next) => next,
            Err(error) => {
                self.active = Some(full);
                return Err(error);
            }
        };
        self.publish(&next);
        self.active = Some(next);
        let context = self.seal_context();
        self.sealing_bytes = sealing_bytes;
        self.sealer = Some(
            std::thread::Builder::new()
                .name("seal".into())
                .spawn(move || seal_split(full, &context))?,
        );
        Ok(())
    }

    /// Waits for a background seal, if one runs.
    pub fn wait_for_seal(&mut self) -> anyhow::Result<()> {
        if let Some(sealer) = self.sealer.take() {
            sealer
                .join()
                .map_err(|_| anyhow::anyhow!("the seal thread panicked"))??;
            self.sealed += 1;
        }
        Ok(())
    }

    /// With an object store other indexers read: seals and publishes the active split now
    /// (when it holds records) and waits for it, so its partitions can move to another indexer
    /// that goes on after it. Nothing for a store of its own.
    pub fn seal_now_if_shared(&mut self) -> anyhow::Result<()> {
        if !self.storage.is_shared() {
            return Ok(());
        }
        if self.active().committed.docs > 0 {
            self.seal_in_background()?;
        }
        self.wait_for_seal()
    }

    /// Commits what is pending, finishes a running seal and releases the writer; used at
    /// shutdown. With an object store the active split is sealed and published too: its
    /// partitions' next owner goes on after it.
    pub fn close(mut self, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        self.commit(checkpoint)?;
        self.seal_now_if_shared()?;
        self.wait_for_seal()?;
        if let Some(active) = self.active.take() {
            active.writer.wait_merging_threads()?;
        }
        if let Some(audit) = &self.audit {
            let _layout = self.catalog.lock_layout();
            anchor_audit_head(&self.storage, &self.options.indexer_name, audit)?;
        }
        Ok(())
    }

    fn active(&self) -> &ActiveSplit {
        self.active
            .as_ref()
            .expect("the store always has an active split")
    }

    fn seal_context(&self) -> SealContext {
        SealContext {
            storage: Arc::clone(&self.storage),
            writer_memory_bytes: self.options.writer_memory_bytes,
            indexer_name: self.options.indexer_name.clone(),
            source: self.source.clone(),
            catalog: Arc::clone(&self.catalog),
            audit: self.audit.clone(),
        }
    }

    /// Names the Kafka topic the checkpoints are of: written into manifests, and only splits of
    /// the same topic count when a partition resumes or a split is fenced.
    pub fn set_source(&mut self, topic: &str) {
        self.source = topic.to_owned();
    }

    /// Where a new active split starts when none exists: the newest sealed split's checkpoint.
    fn newest_sealed_state(&self) -> CommitState {
        let me = &self.options.indexer_name;
        let shared = self.storage.is_shared();
        let (local, remote) = self.catalog.snapshot();
        // (id, next_seq, checkpoint) of every sealed split of this indexer; another indexer's
        // checkpoint is of its partitions, not this one's.
        let mut sealed: Vec<(String, u64, Checkpoint)> = local
            .iter()
            .filter(|s| !s.active && (s.indexer == *me || !shared))
            .filter_map(|s| Manifest::read(&s.dir).ok())
            .map(|m| (m.id, m.next_seq, m.checkpoint))
            .collect();
        sealed.extend(
            remote
                .iter()
                .filter(|s| s.indexer == *me)
                .map(|s| (s.id().to_owned(), s.next_seq, s.checkpoint.clone())),
        );
        let next_seq = sealed.iter().map(|(_, next, _)| *next).max().unwrap_or(0);
        let checkpoint = sealed
            .into_iter()
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, _, checkpoint)| checkpoint)
            .unwrap_or_default();
        CommitState {
            checkpoint,
            next_seq,
            ..CommitState::default()
        }
    }

    /// The newest id of this indexer's splits, opened or published.
    fn newest_id(&self) -> Option<String> {
        let (local, remote) = self.catalog.snapshot();
        let local = local.first().map(|v| v.id.clone());
        let published = remote
            .iter()
            .filter(|s| s.indexer == self.options.indexer_name)
            .map(|s| s.id().to_owned())
            .max();
        local.max(published)
    }

    fn create_active(&self, start: CommitState) -> anyhow::Result<ActiveSplit> {
        let created = Timestamp::now();
        let mut id = format!("{:020}", created.unix_nanos().max(0));
        // Ids must stay unique and increasing even if the clock steps back.
        if let Some(newest) = self.newest_id()
            && newest >= id
        {
            id = next_id(&newest);
        }
        let dir = self.data_dir.join(ACTIVE_DIR).join(&id);
        fs::create_dir_all(&dir)?;
        let settings = IndexSettings {
            docstore_compression: Compressor::Lz4,
            ..IndexSettings::default()
        };
        let index = Index::builder()
            .schema(self.schema.clone())
            .settings(settings)
            .create_in_dir(&dir)
            .with_context(|| format!("cannot create split {}", dir.display()))?;
        let mut split = self.open_writer(id, dir, index, start, created)?;
        // The first commit records where this split starts, before any record is added.
        let state = split.committed.clone();
        let mut prepared = split.writer.prepare_commit()?;
        prepared.set_payload(&serde_json::to_string(&state)?);
        prepared.commit()?;
        split.reader.reload()?;
        Ok(split)
    }

    fn reopen_active(&self, dir: &Path) -> anyhow::Result<ActiveSplit> {
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .context("split directory name is not UTF-8")?
            .to_owned();
        let index = Index::open(MmapDirectory::open(dir)?)
            .with_context(|| format!("cannot open split {}", dir.display()))?;
        let metas = index.load_metas()?;
        let state: CommitState = match metas.payload.as_deref() {
            Some(payload) => serde_json::from_str(payload)
                .with_context(|| format!("invalid commit payload in {}", dir.display()))?,
            None => bail!("split {} has no commit payload", dir.display()),
        };
        // A reopened split is as old as it was when it was created, judged by its id.
        let created = id
            .parse::<i64>()
            .ok()
            .and_then(Timestamp::from_epoch_i64)
            .unwrap_or_else(Timestamp::now);
        self.open_writer(id, dir.to_owned(), index, state, created)
    }

    fn open_writer(
        &self,
        id: String,
        dir: PathBuf,
        index: Index,
        state: CommitState,
        created: Timestamp,
    ) -> anyhow::Result<ActiveSplit> {
        let writer: IndexWriter<TantivyDocument> = index
            .writer_with_num_threads(1, self.options.writer_memory_bytes)
            .with_context(|| {
                format!(
                    "cannot open a writer on {} (is another indexer using it?)",
                    dir.display()
                )
            })?;
        // One-second commits make many small segments; merging them less eagerly saves CPU,
        // and sealing merges everything into one segment anyway.
        let mut policy = LogMergePolicy::default();
        policy.set_min_num_segments(12);
        policy.set_min_layer_size(50_000);
        writer.set_merge_policy(Box::new(policy));
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let age = Timestamp::now()
            .unix_nanos()
            .saturating_sub(created.unix_nanos())
            .max(0);
        let opened = Instant::now()
            .checked_sub(std::time::Duration::from_nanos(age as u64))
            .unwrap_or_else(Instant::now);
        let paths = FieldPaths::of_searcher(
            self.options.max_indexed_field_paths,
            &reader.searcher(),
            self.fields.fields,
        )
        .with_context(|| format!("cannot read the indexed paths of {}", dir.display()))?;
        Ok(ActiveSplit {
            id,
            dir,
            index,
            writer,
            reader,
            committed: state.clone(),
            pending: state,
            opened,
            created,
            paths,
        })
    }

    fn publish(&self, active: &ActiveSplit) {
        self.catalog.replace(SplitView {
            id: active.id.clone(),
            tier: HOT_TIER.to_owned(),
            indexer: self.options.indexer_name.clone(),
            source: self.source.clone(),
            dir: active.dir.clone(),
            reader: active.reader.clone(),
            fields: self.fields,
            min_ts: active.committed.min_ts,
            max_ts: active.committed.max_ts,
            docs: active.committed.docs,
            checkpoint: active.committed.checkpoint.clone(),
            active: true,
        });
    }
}

/// How long a claim of a partition's records whose split was never published holds (see
/// [`SplitStorage::claim_start`]): an indexer that claimed and then lost its data dir blocks
/// that start no longer than this.
const CLAIM_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// What sealing needs from the store, owned so a seal can run on its own thread.
struct SealContext {
    storage: Arc<SplitStorage>,
    source: String,
    writer_memory_bytes: usize,
    indexer_name: String,
    catalog: Arc<Catalog>,
    /// The audit log whose head every seal anchors in the chain head.
    audit: Option<Arc<AuditLog>>,
}

/// Seals a split: final merge into one segment, manifest chained to the newest sealed one,
/// move into `splits/hot/`, and the sealed split replaces the active one in the catalog.
fn seal_split(split: ActiveSplit, context: &SealContext) -> anyhow::Result<()> {
    let ActiveSplit {
        id,
        dir,
        index,
        writer,
        committed,
        created,
        ..
    } = split;
    let started = Instant::now();
    // Wait for background merges, then merge what is left into one segment.
    writer.wait_merging_threads()?;
    let segments = index.searchable_segment_ids()?;
    if segments.len() > 1 {
        let mut writer: IndexWriter<TantivyDocument> =
            index.writer_with_num_threads(1, context.writer_memory_bytes)?;
        writer.set_merge_policy(Box::new(NoMergePolicy));
        writer.merge(&segments).wait()?;
        writer.garbage_collect_files().wait()?;
        writer.wait_merging_threads()?;
    }
    drop(index);
    let source = if committed.source.is_empty() {
        context.source.clone()
    } else {
        committed.source.clone()
    };
    if context.storage.is_shared() {
        let overlapping = until_done(
            &context.storage,
            &format!("claim the records of split {id}"),
            || claim_or_overlapping(context, &id, &source, &committed),
        );
        if !overlapping.is_empty() {
            // Another indexer published records of these partitions past where this split
            // starts: this one is stale (its indexer was paused or cut off while the partitions
            // moved). It is dropped, and ingest starts again from what is published.
            let _layout = context.catalog.lock_layout();
            context.catalog.remove(&id);
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
            return Err(Fenced {
                split: id,
                partitions: overlapping,
            }
            .into());
        }
    }
    let _layout = context.catalog.lock_layout();
    // The link goes to the chain head, even when retention has since rewritten or deleted
    // that split (verify follows rewrites and accepts audited deletions).
    let head = read_chain_head(context.storage.root())?;
    let prev = match head.as_ref().and_then(ChainHead::split) {
        Some((id, hash)) => Some((id.to_owned(), hash.to_owned())),
        None => newest_sealed_manifest(&context.storage, &context.indexer_name)?,
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id: id.clone(),
        tier: HOT_TIER.to_owned(),
        indexer: context.indexer_name.clone(),
        source,
        created,
        sealed: Timestamp::now(),
        min_ts: committed.min_ts,
        max_ts: committed.max_ts,
        docs: committed.docs,
        checkpoint: committed.checkpoint.clone(),
        checkpoint_start: committed.start.clone(),
        next_seq: committed.next_seq,
        files: crate::manifest::hash_split_files(&dir)?,
        prev: prev.as_ref().map(|(_, hash)| hash.clone()),
        prev_id: prev.map(|(id, _)| id),
    };
    let hash = manifest.write(&dir)?;
    let sealed = move_sealed(context, &dir)?;
    // The audit log's head is anchored with every seal.
    let head = ChainHead {
        id: Some(id.clone()),
        manifest_sha256: Some(hash),
        audit: match &context.audit {
            Some(audit) => audit.head(),
            None => head.and_then(|h| h.audit),
        },
    };
    let bytes = write_local_chain_head(&context.storage, &head)?;
    until_done(&context.storage, "publish the chain head", || {
        publish_chain_head(&context.storage, &context.indexer_name, &head, &bytes)
    });
    drop(_layout);
    publish_until_done(&context.storage, &sealed);
    if context.storage.is_shared() {
        hand_to_cache(&context.catalog, &sealed)?;
    }
    tracing::info!(
        split = %id,
        docs = committed.docs,
        took_ms = started.elapsed().as_millis() as u64,
        "sealed split"
    );
    Ok(())
}

/// Claims each partition's start of the split `id` sealed in `committed` (in partition order,
/// so two contenders meet at the first partition they share): of two splits resumed from the
/// same published checkpoint only one gets there, even while neither is published yet. Returns
/// the partitions another split claimed or another indexer published records of past this
/// split's start, after giving back what this split claimed; empty when the split may be
/// published. Safe to repeat after a failure of the store (a claim of one's own is kept).
fn claim_or_overlapping(
    context: &SealContext,
    id: &str,
    source: &str,
    committed: &CommitState,
) -> anyhow::Result<Vec<i32>> {
    let mut claimed = Vec::new();
    let mut contested = Vec::new();
    for (&partition, &start) in &committed.start {
        match context.storage.claim_start(
            source,
            partition,
            start,
            id,
            &context.indexer_name,
            CLAIM_STALE_AFTER,
        )? {
            None => claimed.push((partition, start)),
            Some(holder) => {
                tracing::warn!(split = %id, partition, start, %holder, "another split claimed this partition's records from the same offset");
                contested.push(partition);
                break;
            }
        }
    }
    let mut overlapping = if contested.is_empty() {
        overlapping(
            &context.storage,
            &context.catalog,
            &context.indexer_name,
            source,
            committed,
        )?
    } else {
        Vec::new()
    };
    overlapping.extend(contested);
    if !overlapping.is_empty() {
        for (partition, start) in claimed {
            context.storage.release_claim(source, partition, start, id)?;
        }
    }
    Ok(overlapping)
}

/// Moves this indexer's published split in `dir` from its opened splits to its published ones
/// (read through the cache from now on).
pub(crate) fn hand_to_cache(catalog: &Catalog, dir: &Path) -> anyhow::Result<()> {
    let manifest = Manifest::read(dir)?;
    let key = SplitKey {
        tier: manifest.tier.clone(),
        id: manifest.id.clone(),
    };
    catalog.hand_to_cache(&manifest.id, RemoteSplit::new(key, &manifest))
}

/// Renames a split directory holding a manifest into its tier directory and opens it in the
/// catalog; returns where it went.
fn move_sealed(context: &SealContext, dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = Manifest::read(dir)?;
    let tier_dir = context.storage.tier_dir(&manifest.tier);
    fs::create_dir_all(&tier_dir)?;
    let target = tier_dir.join(&manifest.id);
    fs::rename(dir, &target)
        .with_context(|| format!("cannot move {} to {}", dir.display(), target.display()))?;
    sync_dir(&tier_dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    let view = open_sealed(&target)?;
    context.catalog.replace(view);
    Ok(target)
}

/// True when the split in `dir` was committed at least once: every commit of ours carries a
/// payload, and tantivy writes a `meta.json` without one when the index is created.
fn has_commit_payload(dir: &Path) -> anyhow::Result<bool> {
    let meta = dir.join("meta.json");
    let bytes = match fs::read(&meta) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", meta.display())),
    };
    let metas: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("invalid {}", meta.display()))?;
    Ok(metas.get("payload").is_some_and(|p| !p.is_null()))
}

/// Opens a sealed split for searching.
pub(crate) fn open_sealed(dir: &Path) -> anyhow::Result<SplitView> {
    let manifest = Manifest::read(dir)?;
    let index =
        Index::open(MmapDirectory::open(dir)?).with_context(|| format!("cannot open {}", dir.display()))?;
    let fields = IndexFields::from_schema(&index.schema())?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    Ok(SplitView {
        id: manifest.id,
        tier: manifest.tier,
        indexer: manifest.indexer,
        source: manifest.source,
        dir: dir.to_owned(),
        reader,
        fields,
        min_ts: manifest.min_ts,
        max_ts: manifest.max_ts,
        docs: manifest.docs,
        checkpoint: manifest.checkpoint,
        active: false,
    })
}

/// Every sealed split directory of the store data dir `data_dir` (in its local split root,
/// [`local_root`]), all tiers.
pub fn sealed_split_dirs(data_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    split_dirs(&local_root(data_dir))
}

/// Every sealed split directory under the split root `root`, all tiers.
pub(crate) fn split_dirs(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let root = root.join(SPLITS_DIR);
    let mut dirs = Vec::new();
    if !crate::disk::exists(&root)? {
        return Ok(dirs);
    }
    for tier in subdirs(&root)? {
        dirs.extend(subdirs(&tier)?);
    }
    Ok(dirs)
}

pub(crate) fn subdirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The id after `id`: the same width, one more.
fn next_id(id: &str) -> String {
    let n: u128 = id.parse().unwrap_or(0);
    format!("{:020}", n + 1)
}

/// Every record id in every split under `data_dir` (sealed and active), with repeats: for
/// tests and tools that check what the index holds.
pub fn all_ids(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut dirs = sealed_split_dirs(data_dir)?;
    // An object store's local copies.
    dirs.extend(split_dirs(&data_dir.join(crate::storage::CACHE_DIR))?);
    let active = data_dir.join(ACTIVE_DIR);
    if crate::disk::exists(&active)? {
        dirs.extend(subdirs(&active)?);
    }
    let mut ids = Vec::new();
    for dir in dirs {
        if !crate::disk::exists(&dir.join("meta.json"))? {
            continue;
        }
        let index = Index::open(MmapDirectory::open(&dir)?)?;
        let fields = IndexFields::from_schema(&index.schema())?;
        let searcher = index.reader()?.searcher();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(64)?;
            for doc_id in segment.doc_ids_alive() {
                let doc: TantivyDocument = store.get(doc_id)?;
                let source = doc
                    .get_first(fields.source)
                    .and_then(|v| tantivy::schema::Value::as_str(&v))
                    .context("document without _source")?;
                let record: serde_json::Value = serde_json::from_str(source)?;
                ids.push(record["id"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    Ok(ids)
}

/// Distinct ids among `ids`.
pub fn distinct(ids: &[String]) -> usize {
    ids.iter().collect::<HashSet<_>>().len()
}
