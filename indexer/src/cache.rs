//! Published splits as this indexer knows them (DESIGN §7): each one's manifest
//! summary in the catalog ([`RemoteSplit`]), its files fetched only when a query needs them, into
//! a local cache bounded by `cache_max_bytes` that forgets the least recently searched first.
//!
//! A split is fetched once however many queries want it at the same time. A split evicted while
//! a search still reads it stays readable to that search (its files are mapped; removing the
//! directory does not unmap them). This indexer's own sealed splits join the cache once they
//! are published: its local disk holds its active split and the cache, and its retention
//! fetches a split back when a step needs it.

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use corral_schema::Timestamp;

use crate::disk::dir_bytes;
use crate::manifest::{Checkpoint, Manifest};
use crate::storage::{SplitKey, SplitStorage};
use crate::store::{SplitView, open_sealed};

/// Default of `[indexer] cache_max_bytes`: 8 GiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 8 << 30;
/// Cold splits one query fetches at the same time (each fetches its files a few at a time).
pub const PARALLEL_SPLIT_FETCHES: usize = 4;

/// Another indexer's published split: what its manifest says, enough to decide whether a query
/// needs it before its files are fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSplit {
    pub key: SplitKey,
    pub indexer: String,
    pub source: String,
    pub min_ts: Option<Timestamp>,
    pub max_ts: Option<Timestamp>,
    pub docs: u64,
    pub checkpoint: Checkpoint,
    /// The ingest sequence number after the split's records (its indexer's numbering).
    pub next_seq: u64,
    /// Its manifest's version in the store when it was listed (empty: not from a listing); a
    /// refresh that lists another version (a rewrite in place) reads it again.
    pub version: String,
    /// Added from a root's share rather than from a listing of the store: searched, but not
    /// spread as a root, nor told to peers as held, until a refresh lists it (the catalog may
    /// lack older splits of its indexer).
    pub learned: bool,
}

impl RemoteSplit {
    pub fn new(key: SplitKey, manifest: &Manifest) -> RemoteSplit {
        RemoteSplit {
            key,
            indexer: manifest.indexer.clone(),
            source: manifest.source.clone(),
            min_ts: manifest.min_ts,
            max_ts: manifest.max_ts,
            docs: manifest.docs,
            checkpoint: manifest.checkpoint.clone(),
            next_seq: manifest.next_seq,
            version: String::new(),
            learned: false,
        }
    }

    pub fn id(&self) -> &str {
        &self.key.id
    }

    pub fn tier(&self) -> &str {
        &self.key.tier
    }
}

/// The local cache of other indexers' splits, opened and ready to search.
pub struct SplitCache {
    storage: Arc<SplitStorage>,
    max_bytes: AtomicU64,
    state: Mutex<State>,
    /// One lock per split being fetched: a second query wanting it waits for the first fetch.
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Splits never evicted now, and by how many pins.
    pinned: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for SplitCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SplitCache")
            .field("max_bytes", &self.max_bytes.load(Ordering::Relaxed))
            .field("bytes", &state.bytes)
            .field("splits", &state.open.len())
            .finish()
    }
}

#[derive(Default)]
struct State {
    open: HashMap<String, Cached>,
    bytes: u64,
    /// Advances at every use: the least recently used entry has the smallest `used`.
    clock: u64,
}

struct Cached {
    view: Arc<SplitView>,
    bytes: u64,
    used: u64,
}

/// Keeps a split in the cache, its files on the disk, while held (a retention step reading and
/// replacing them); see [`SplitCache::pin`].
#[derive(Debug)]
pub struct Pin<'a> {
    cache: &'a SplitCache,
    id: String,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let mut pinned = self.cache.pinned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = pinned.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                pinned.remove(&self.id);
            }
        }
        drop(pinned);
        self.cache.evict(None);
    }
}

impl SplitCache {
    /// A cache of at most `max_bytes` (but for the split being searched) in `storage`'s local
    /// directory.
    pub fn new(storage: Arc<SplitStorage>, max_bytes: u64) -> SplitCache {
        SplitCache {
            storage,
            max_bytes: AtomicU64::new(max_bytes),
            state: Mutex::new(State::default()),
            fetching: Mutex::new(HashMap::new()),
            pinned: Mutex::new(HashMap::new()),
        }
    }

    /// Bounds the cache at `max_bytes` (`[indexer] cache_max_bytes`), evicting what no longer fits.
    pub fn set_max_bytes(&self, max_bytes: u64) {
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
        self.evict(None);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in a split found in the cache directory at start (fetched by an earlier run).
    pub fn adopt(&self, view: SplitView) {
        self.insert_open(Arc::new(view));
    }

    /// Takes in a split already open here (one this indexer sealed and published, or moved to
    /// another tier), in place of any earlier entry of the same id.
    pub fn insert_open(&self, view: Arc<SplitView>) {
        let id = view.id.clone();
        let gate = self.gate(&id);
        {
            let _filling = gate.lock().unwrap_or_else(|e| e.into_inner());
            let bytes = dir_bytes(&view.dir).unwrap_or(0);
            self.insert(view, bytes);
        }
        self.release_gate(&id, gate);
    }

    /// Drops a split's entry, leaving its files (a retention step has moved them).
    pub fn release(&self, id: &str) {
        let mut state = self.lock();
        if let Some(cached) = state.open.remove(id) {
            state.bytes -= cached.bytes;
        }
        self.storage.metrics().cache_bytes.set(state.bytes as i64);
    }

    /// The split opened, from the cache or fetched into it now.
    pub fn get(&self, split: &RemoteSplit) -> anyhow::Result<Arc<SplitView>> {
        if let Some(view) = self.hit(split) {
            return Ok(view);
        }
        let gate = self.gate(split.id());
        let result = {
            let _fetch = gate.lock().unwrap_or_else(|e| e.into_inner());
            // Whoever held the gate before may have fetched it.
            match self.hit(split) {
                Some(view) => Ok(view),
                None => self.fetch(split),
            }
        };
        self.release_gate(split.id(), gate);
        result
    }

    /// The lock of split `id`'s directory: held while it is fetched or filled, and while an
    /// evicted copy's files are removed.
    fn gate(&self, id: &str) -> Arc<Mutex<()>> {
        let mut fetching = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(fetching.entry(id.to_owned()).or_default())
    }

    /// Drops `gate`, and its entry when nobody else holds it (clones are only made under the
    /// map's lock, so the count cannot rise meanwhile).
    fn release_gate(&self, id: &str, gate: Arc<Mutex<()>>) {
        let mut fetching = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
        drop(gate);
        if fetching.get(id).is_some_and(|g| Arc::strong_count(g) == 1) {
            fetching.remove(id);
        }
    }

    /// Every split of `splits`, in order: those cached at once, the others fetched
    /// [`PARALLEL_SPLIT_FETCHES`] at a time.
    pub fn get_all(&self, splits: &[Arc<RemoteSplit>]) -> Vec<anyhow::Result<Arc<SplitView>>> {
        let mut results: Vec<Option<anyhow::Result<Arc<SplitView>>>> =
            splits.iter().map(|split| self.hit(split).map(Ok)).collect();
        let cold: Vec<usize> = (0..splits.len()).filter(|i| results[*i].is_none()).collect();
        if cold.len() == 1 {
            results[cold[0]] = Some(self.get(&splits[cold[0]]));
        } else if !cold.is_empty() {
            let next = AtomicUsize::new(0);
            let fetched = Mutex::new(Vec::with_capacity(cold.len()));
            std::thread::scope(|scope| {
                for _ in 0..PARALLEL_SPLIT_FETCHES.min(cold.len()) {
                    scope.spawn(|| {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&i) = cold.get(n) else { break };
                            let result = self.get(&splits[i]);
                            fetched
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((i, result));
                        }
                    });
                }
            });
            for (i, result) in fetched.into_inner().unwrap_or_else(|e| e.into_inner()) {
                results[i] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|result| result.expect("every split looked up"))
            .collect()
    }

    fn hit(&self, split: &RemoteSplit) -> Option<Arc<SplitView>> {
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        let cached = state.open.get_mut(split.id())?;
        // A split another indexer moved to a later tier is a different copy.
        if cached.view.tier != split.tier() {
            return None;
        }
        cached.used = clock;
        self.storage.metrics().cache_hits.inc();
        Some(Arc::clone(&cached.view))
    }

    fn fetch(&self, split: &RemoteSplit) -> anyhow::Result<Arc<SplitView>> {
        let dir = self.storage.download(&split.key)?;
        let view = Arc::new(open_sealed(&dir)?);
        let bytes = dir_bytes(&dir).unwrap_or(0);
        // The copy of an earlier tier, if cached, is replaced.
        self.forget(split.id());
        self.insert(Arc::clone(&view), bytes);
        Ok(view)
    }

    fn insert(&self, view: Arc<SplitView>, bytes: u64) {
        let id = view.id.clone();
        {
            let mut state = self.lock();
            state.clock += 1;
            let used = state.clock;
            if let Some(old) = state.open.insert(id.clone(), Cached { view, bytes, used }) {
                state.bytes -= old.bytes;
            }
            state.bytes += bytes;
        }
        self.evict(Some(&id));
    }

    /// Keeps split `id` (whatever copy of it the cache holds, now or later) from eviction until
    /// the pin is dropped: a retention step reads its files and replaces them.
    pub fn pin(&self, id: &str) -> Pin<'_> {
        *self
            .pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_owned())
            .or_default() += 1;
        Pin {
            cache: self,
            id: id.to_owned(),
        }
    }

    /// Removes the least recently used splits (never `keep`, the one just fetched, nor a pinned
    /// one) until the cache fits its bound.
    fn evict(&self, keep: Option<&str>) {
        let max_bytes = self.max_bytes.load(Ordering::Relaxed);
        let pinned: std::collections::HashSet<String> = self
            .pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let evicted = {
            let mut state = self.lock();
            let mut evicted = Vec::new();
            while state.bytes > max_bytes {
                let Some(oldest) = state
                    .open
                    .iter()
                    .filter(|(other, _)| Some(other.as_str()) != keep && !pinned.contains(*other))
                    .min_by_key(|(_, cached)| cached.used)
                    .map(|(other, _)| other.clone())
                else {
                    break;
                };
                let cached = state.open.remove(&oldest).expect("just found");
                state.bytes -= cached.bytes;
                evicted.push(cached.view);
            }
            self.storage.metrics().cache_bytes.set(state.bytes as i64);
            evicted
        };
        for view in evicted {
            self.storage.metrics().cache_evictions.inc();
            self.remove_evicted(&view);
        }
    }

    /// Removes an evicted copy's files, unless the split is being fetched again right now (its
    /// fetch replaces the directory) or is back in the cache in that same directory.
    fn remove_evicted(&self, view: &SplitView) {
        let gate = self.gate(&view.id);
        // Never wait here: the thread evicting may hold another split's gate.
        if let Ok(_held) = gate.try_lock() {
            let back = self
                .lock()
                .open
                .get(&view.id)
                .is_some_and(|cached| cached.view.dir == view.dir);
            if !back {
                remove(view);
            }
        }
        self.release_gate(&view.id, gate);
    }

    /// Drops the copy of tier `tier` of a split from the cache, and its files from the disk
    /// (its owner removed it from the store, or moved it to another tier); a copy of another
    /// tier stays.
    pub fn forget_tier(&self, id: &str, tier: &str) {
        let cached = self.lock().open.get(id).map(|cached| cached.view.tier.clone());
        if cached.as_deref() == Some(tier) {
            self.forget(id);
        }
    }

    /// Drops a split from the cache and its files from the disk; not a pinned one (a retention
    /// step of this indexer is replacing it).
    pub fn forget(&self, id: &str) {
        if self
            .pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
        {
            return;
        }
        let cached = {
            let mut state = self.lock();
            let cached = state.open.remove(id);
            if let Some(cached) = &cached {
                state.bytes -= cached.bytes;
            }
            self.storage.metrics().cache_bytes.set(state.bytes as i64);
            cached
        };
        if let Some(cached) = cached {
            remove(&cached.view);
        }
    }

    /// The store the cache fetches from.
    pub fn storage(&self) -> &Arc<SplitStorage> {
        &self.storage
    }

    /// Bytes cached now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// True when the split is cached now (in any tier).
    pub fn holds(&self, id: &str) -> bool {
        self.lock().open.contains_key(id)
    }
}

fn remove(view: &SplitView) {
    if let Err(error) = fs::remove_dir_all(&view.dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(split = %view.id, dir = %view.dir.display(), "cannot remove a split from the cache: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::{HOT_TIER, SplitStore, StoreOptions};

    /// Publishes `n` one-record splits of indexer `writer` in an in-memory object store and
    /// returns another indexer's storage of it, with the splits as its catalog knows them.
    fn published(n: u64, dir: &std::path::Path) -> (Arc<SplitStorage>, Vec<RemoteSplit>) {
        let (storage, splits, _) = published_in_memory(n, dir);
        (storage, splits)
    }

    /// As [`published`], with the in-memory store itself.
    fn published_in_memory(
        n: u64,
        dir: &std::path::Path,
    ) -> (
        Arc<SplitStorage>,
        Vec<RemoteSplit>,
        Arc<dyn object_store::ObjectStore>,
    ) {
        let url = crate::storage::StorageUrl::S3 {
            bucket: "b".into(),
            prefix: "p".into(),
        };
        let memory: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let writer = Arc::new(
            SplitStorage::remote(url.clone(), Arc::clone(&memory), "p", &dir.join("writer-cache")).unwrap(),
        );
        let options = StoreOptions {
            split_max_docs: 1_000,
            split_max_age: std::time::Duration::from_secs(3600),
            writer_memory_bytes: 15_000_000,
            indexer_name: "writer".into(),
            max_indexed_field_paths: crate::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
        };
        let mut store = SplitStore::open_in(&dir.join("writer"), writer, options).unwrap();
        for i in 0..n {
            store.add(corral_tests::record::record(i), String::new()).unwrap();
            store.commit(&Checkpoint::from([(0, i as i64 + 1)])).unwrap();
            store.seal().unwrap();
        }
        drop(store);
        let reader =
            Arc::new(SplitStorage::remote(url, Arc::clone(&memory), "p", &dir.join("reader-cache")).unwrap());
        let splits = reader
            .list()
            .unwrap()
            .into_iter()
            .map(|key| {
                let manifest = reader.read_manifest(&key).unwrap();
                RemoteSplit::new(key, &manifest)
            })
            .collect();
        (reader, splits, memory)
    }

    #[test]
    fn a_split_its_owner_rewrote_in_place_is_read_again_and_its_stale_copy_dropped() {
        use object_store::{ObjectStoreExt, PutPayload};
        let dir = tempfile::tempdir().unwrap();
        let (storage, splits, memory) = published_in_memory(1, dir.path());
        let options = StoreOptions {
            split_max_docs: 1_000,
            split_max_age: std::time::Duration::from_secs(3600),
            writer_memory_bytes: 15_000_000,
            indexer_name: "reader".into(),
            max_indexed_field_paths: crate::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
        };
        let store = SplitStore::open_in(&dir.path().join("reader"), Arc::clone(&storage), options).unwrap();
        let catalog = store.catalog();
        let held = catalog.remote();
        assert_eq!((held.len(), held[0].docs), (1, 1));
        assert!(!held[0].version.is_empty(), "listed with its manifest's version");
        let cache = catalog.cache().unwrap();
        cache.get(&held[0]).unwrap();
        // The owner's retention rewrites it where it is: a new manifest under the same key.
        let mut manifest = storage.read_manifest(&splits[0].key).unwrap();
        manifest.docs = 0;
        let location = object_store::path::Path::from(format!(
            "p/splits/hot/{}/{}",
            manifest.id,
            crate::manifest::MANIFEST_FILE
        ));
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(memory.put(
                &location,
                PutPayload::from(serde_json::to_vec(&manifest).unwrap()),
            ))
            .unwrap();
        crate::published::refresh_catalog(&storage, &catalog).unwrap();
        let now = catalog.remote();
        assert_eq!((now.len(), now[0].docs), (1, 0), "the new manifest is held");
        assert!(!cache.holds(splits[0].id()), "the stale copy left the cache");
        // Unchanged since: nothing is read or dropped again.
        cache.get(&now[0]).ok();
        let version = now[0].version.clone();
        crate::published::refresh_catalog(&storage, &catalog).unwrap();
        assert_eq!(catalog.remote()[0].version, version);
    }

    #[test]
    fn the_cache_stays_within_its_bound_and_forgets_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, splits) = published(3, dir.path());
        assert_eq!(splits.len(), 3);
        assert!(splits.iter().all(|s| s.tier() == HOT_TIER && s.docs == 1));
        let one = {
            let probe = SplitCache::new(Arc::clone(&storage), u64::MAX);
            probe.get(&splits[0]).unwrap();
            let bytes = probe.bytes();
            probe.forget(splits[0].id());
            bytes
        };
        // Room for two splits, not three.
        let cache = SplitCache::new(Arc::clone(&storage), one * 2 + one / 2);
        cache.get(&splits[0]).unwrap();
        cache.get(&splits[1]).unwrap();
        cache.get(&splits[0]).unwrap(); // 1 is now the least recently used
        let view = cache.get(&splits[2]).unwrap();
        assert!(cache.holds(splits[0].id()) && cache.holds(splits[2].id()));
        assert!(
            !cache.holds(splits[1].id()),
            "the least recently used split stays"
        );
        assert!(
            cache.bytes() <= one * 2 + one / 2,
            "{} bytes cached",
            cache.bytes()
        );
        assert!(
            !storage.split_dir(&splits[1].key).try_exists().unwrap(),
            "an evicted split's files stay"
        );
        assert_eq!(storage.metrics().cache_evictions.get(), 1);
        assert_eq!(view.docs, 1);
        // Fetched again when asked for again.
        let misses = storage.metrics().cache_misses.get();
        cache.get(&splits[1]).unwrap();
        assert_eq!(storage.metrics().cache_misses.get(), misses + 1);
    }

    #[test]
    fn a_pinned_split_is_never_evicted_and_goes_once_unpinned() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, splits) = published(3, dir.path());
        let cache = SplitCache::new(Arc::clone(&storage), 1);
        let pin = cache.pin(splits[0].id());
        cache.get(&splits[0]).unwrap();
        cache.get(&splits[1]).unwrap();
        cache.get(&splits[2]).unwrap();
        assert!(cache.holds(splits[0].id()), "pinned, so kept past the bound");
        assert!(storage.split_dir(&splits[0].key).try_exists().unwrap());
        drop(pin);
        assert!(!cache.holds(splits[0].id()), "evicted once unpinned");
        assert!(!storage.split_dir(&splits[0].key).try_exists().unwrap());
    }

    #[test]
    fn a_split_larger_than_the_whole_cache_is_still_searched() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, splits) = published(2, dir.path());
        let cache = SplitCache::new(Arc::clone(&storage), 1);
        assert_eq!(cache.get(&splits[0]).unwrap().docs, 1);
        assert_eq!(cache.get(&splits[1]).unwrap().docs, 1);
        assert!(cache.holds(splits[1].id()) && !cache.holds(splits[0].id()));
    }

    #[test]
    fn queries_wanting_the_same_cold_split_fetch_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, splits) = published(1, dir.path());
        let cache = Arc::new(SplitCache::new(Arc::clone(&storage), u64::MAX));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let cache = Arc::clone(&cache);
                let split = splits[0].clone();
                scope.spawn(move || cache.get(&split).unwrap());
            }
        });
        assert_eq!(storage.metrics().cache_misses.get(), 1);
    }
}
