//! The catalog (DESIGN §4.3, §7): what a query can search at one moment — the splits opened
//! here (the active split, and sealed splits of a store of its own or not published yet) and the
//! splits published to an object store, read through the cache — under one lock, so a split
//! moving from one to the other is seen in exactly one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use anyhow::Context;
use corral_schema::Timestamp;
use corral_schema::index_schema::{IndexFields, build_schema};
use tantivy::IndexReader;
use tantivy::schema::Schema;
use tokio::sync::watch;

use crate::cache::{RemoteSplit, SplitCache};
use crate::manifest::Checkpoint;
use crate::storage::{SplitKey, local_root};
use crate::store::{open_sealed, split_dirs};

/// One searchable split as the query engine sees it.
pub struct SplitView {
    pub id: String,
    pub tier: String,
    /// The indexer that wrote it (its manifest's `indexer`; this indexer for the active split).
    pub indexer: String,
    /// The topic its checkpoint is of (its manifest's `source`).
    pub source: String,
    pub dir: PathBuf,
    pub reader: IndexReader,
    pub fields: IndexFields,
    pub min_ts: Option<Timestamp>,
    pub max_ts: Option<Timestamp>,
    pub docs: u64,
    /// The source checkpoint as of the split's last commit (a sealed split's manifest's).
    pub checkpoint: Checkpoint,
    /// True for the split still being written.
    pub active: bool,
}

impl std::fmt::Debug for SplitView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitView")
            .field("id", &self.id)
            .field("tier", &self.tier)
            .field("docs", &self.docs)
            .field("active", &self.active)
            .finish()
    }
}

/// The searchable splits, newest first, and the sequence number of the latest commit.
#[derive(Debug)]
pub struct Catalog {
    /// Opened splits and other published ones, under one lock so a query sees a split moving
    /// from one to the other in exactly one of them.
    lists: RwLock<Lists>,
    committed_seq: watch::Sender<u64>,
    schema: Schema,
    /// Held while sealed split directories and manifests change (a seal, a retention step), so
    /// one never reads what the other is halfway through.
    layout: Mutex<()>,
    /// Published splits the last refresh could not read the manifest of, and why: every
    /// answer names them.
    unfetched: RwLock<Vec<(String, String)>>,
    /// Where published splits are fetched into when a query needs them (an object store only).
    cache: OnceLock<Arc<SplitCache>>,
}

#[derive(Debug, Default)]
struct Lists {
    /// Opened here: the active split, and sealed splits of a store of its own (a local
    /// directory) or not published yet; newest first.
    local: Vec<Arc<SplitView>>,
    /// Published to an object store (this indexer's and the others'), read through the cache;
    /// newest first.
    remote: Vec<Arc<RemoteSplit>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new()
    }
}

impl Catalog {
    /// An empty catalog of splits with the current schema; for tools that open sealed splits
    /// without a store.
    pub fn new() -> Catalog {
        Catalog {
            lists: RwLock::new(Lists::default()),
            committed_seq: watch::channel(0).0,
            schema: build_schema(true).0,
            layout: Mutex::new(()),
            unfetched: RwLock::new(Vec::new()),
            cache: OnceLock::new(),
        }
    }

    /// Opens every sealed split of the store data dir `data_dir` (its local split root:
    /// [`local_root`]) into a new catalog.
    pub fn open_sealed(data_dir: &Path) -> anyhow::Result<Catalog> {
        let catalog = Catalog::new();
        for dir in split_dirs(&local_root(data_dir))? {
            catalog.replace(open_sealed(&dir)?);
        }
        Ok(catalog)
    }

    pub(crate) fn lock_layout(&self) -> MutexGuard<'_, ()> {
        self.layout.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Lists> {
        self.lists.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Lists> {
        self.lists.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn remove(&self, id: &str) {
        self.write().local.retain(|s| s.id != id);
    }

    /// Drops a published split from the catalog (and its cache entry, not its files).
    pub(crate) fn remove_remote(&self, id: &str) {
        self.write().remote.retain(|s| s.id() != id);
        if let Some(cache) = self.cache() {
            cache.release(id);
        }
    }

    /// Forgets the published copy `key` of a split (another tier's copy stays).
    pub(crate) fn remove_remote_copy(&self, key: &crate::storage::SplitKey) {
        self.write().remote.retain(|s| s.key != *key);
    }

    /// Published splits the last refresh could not fetch (id, why): not searched here.
    pub fn unfetched(&self) -> Vec<(String, String)> {
        self.unfetched.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the published splits the last refresh could not fetch.
    pub(crate) fn set_unfetched(&self, unfetched: Vec<(String, String)>) {
        *self.unfetched.write().unwrap_or_else(|e| e.into_inner()) = unfetched;
    }

    /// The newest published split of each indexer in this catalog: what a root tells its
    /// peers it holds.
    pub fn newest_by_indexer(&self) -> std::collections::BTreeMap<String, String> {
        newest_by_indexer(&self.remote())
    }

    /// Splits published to an object store at this moment (this indexer's and the others'),
    /// newest first; their files are read through [`Catalog::cache`].
    pub fn remote(&self) -> Vec<Arc<RemoteSplit>> {
        self.read().remote.clone()
    }

    /// Splits searchable through this catalog: opened and published.
    pub fn len(&self) -> usize {
        let lists = self.read();
        lists.local.len() + lists.remote.len()
    }

    /// True when no split is searchable (not even an active one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`Catalog::splits`] and [`Catalog::remote`] at the same moment.
    pub fn snapshot(&self) -> (Vec<Arc<SplitView>>, Vec<Arc<RemoteSplit>>) {
        let lists = self.read();
        (lists.local.clone(), lists.remote.clone())
    }

    /// Adds (or moves to their new tier) published splits.
    pub(crate) fn add_remote(&self, splits: Vec<Arc<RemoteSplit>>) {
        let mut lists = self.write();
        lists
            .remote
            .retain(|s| !splits.iter().any(|new| new.key.id == s.key.id));
        lists.remote.extend(splits);
        lists.remote.sort_by(|a, b| b.key.id.cmp(&a.key.id));
    }

    /// Applies what a listing of the store found changed since the catalog it started from:
    /// `gone` removed, `added` added (what was added meanwhile, by a seal, stays).
    pub(crate) fn update_remote(&self, gone: &[SplitKey], added: Vec<Arc<RemoteSplit>>) {
        let mut lists = self.write();
        lists.remote.retain(|s| !gone.contains(&s.key));
        lists
            .remote
            .retain(|s| !added.iter().any(|new| new.key.id == s.key.id));
        lists.remote.extend(added);
        lists.remote.sort_by(|a, b| b.key.id.cmp(&a.key.id));
    }

    /// Moves this indexer's sealed split `id`, now published as `split`, from the opened
    /// splits to the published ones: its opened view goes into the cache (searched from there
    /// while it is not evicted, fetched back from the store when it is).
    pub(crate) fn hand_to_cache(&self, id: &str, split: RemoteSplit) -> anyhow::Result<()> {
        let view = self
            .read()
            .local
            .iter()
            .find(|v| v.id == id)
            .cloned()
            .with_context(|| format!("split {id} is not open here"))?;
        self.put_published(view, split)
    }

    /// Puts `view`, published as `split`, in the cache and among the published splits in place
    /// of any split of its id (opened or published), in one step for queries.
    pub(crate) fn put_published(&self, view: Arc<SplitView>, split: RemoteSplit) -> anyhow::Result<()> {
        let cache = self.cache().context("no cache for an object store")?;
        // Into the cache first, outside the catalog's lock (it may evict, removing files);
        // queries meanwhile still find the split where it was.
        cache.insert_open(view);
        let mut lists = self.write();
        lists.local.retain(|v| v.id != split.key.id);
        lists.remote.retain(|s| s.key.id != split.key.id);
        lists.remote.push(Arc::new(split));
        lists.remote.sort_by(|a, b| b.key.id.cmp(&a.key.id));
        Ok(())
    }

    /// The cache published splits are read through (an object store only).
    pub fn cache(&self) -> Option<&Arc<SplitCache>> {
        self.cache.get()
    }

    /// The cache, made by `make` if there is none yet (a store opening on an object store).
    pub(crate) fn cache_or_init(&self, make: impl FnOnce() -> Arc<SplitCache>) -> Arc<SplitCache> {
        Arc::clone(self.cache.get_or_init(make))
    }

    /// Says that records up to sequence number `next_seq` are searchable (a commit).
    pub(crate) fn set_committed_seq(&self, next_seq: u64) {
        self.committed_seq.send_replace(next_seq);
    }

    /// Returns the splits opened here at this moment, newest first: the active split and, in
    /// a store of its own, every sealed split (with an object store, sealed splits are in
    /// [`Catalog::remote`] once published).
    pub fn splits(&self) -> Vec<Arc<SplitView>> {
        self.read().local.clone()
    }

    /// Notifies on every commit with the first sequence number not yet searchable.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed_seq.subscribe()
    }

    /// First sequence number not yet searchable.
    pub fn committed_seq(&self) -> u64 {
        *self.committed_seq.borrow()
    }

    /// The split schema (the same for every split of this version).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub(crate) fn replace(&self, view: SplitView) {
        let mut lists = self.write();
        lists.local.retain(|s| s.id != view.id);
        lists.local.push(Arc::new(view));
        lists.local.sort_by(|a, b| b.id.cmp(&a.id));
    }
}

/// The newest listed split of each indexer among `remote` (learned ones left out).
pub fn newest_by_indexer(remote: &[Arc<RemoteSplit>]) -> std::collections::BTreeMap<String, String> {
    let mut newest = std::collections::BTreeMap::new();
    for split in remote.iter().filter(|s| !s.learned) {
        let entry = newest
            .entry(split.indexer.clone())
            .or_insert_with(|| split.id().to_owned());
        if split.id() > entry.as_str() {
            *entry = split.id().to_owned();
        }
    }
    newest
}
