//! Where sealed splits are kept (DESIGN §7): the `--storage` URL, the layout of published
//! splits, and the one seam sealing, search, retention and verify go through.
//!
//! Every split lives at `splits/<tier>/<split-id>/` under the storage root, its manifest
//! `corral-split.json` beside its files; each indexer's chain head is `splits/chain-head.json`
//! locally and `indexers/<indexer-id>/chain-head.json` in an object store, and the retention
//! janitor's lease `control/janitor/epoch-<n>.json` (see [`crate::control::Janitor`]).
//!
//! - `file:///abs/path` (the default, `<data-dir>/store`): the directory *is* the store. A
//!   split is published by renaming its finished directory into place, which shows the files
//!   and the manifest at once.
//! - `s3://bucket/prefix`: the object store holds every published split under
//!   `<prefix>/splits/<tier>/<split-id>/`, its files first and its manifest last: a split exists
//!   once its manifest does, so a crash during an upload leaves nothing half-visible, and the
//!   next start uploads the split again. Locally `<data-dir>/cache` holds the splits in the
//!   same layout, so tantivy reads them (mmap) as it reads local ones: this indexer's own splits
//!   as it sealed them, and the other indexers' as downloaded, whole files, each checked against
//!   its manifest's SHA-256.
//!
//! S3 settings come from the standard AWS environment variables (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP=true` for a
//! plain-HTTP server).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::manifest::{MANIFEST_FILE, Manifest, sha256_file, sha256_hex, sync_dir};
use crate::metrics::StorageMetrics;

mod cluster;

/// Directory of sealed splits (one subdirectory per tier), under the storage root.
pub const SPLITS_DIR: &str = "splits";
/// The local root of an object store's splits, under the data dir.
pub const CACHE_DIR: &str = "cache";
/// The default storage, under the data dir.
pub const DEFAULT_STORE_DIR: &str = "store";
/// Each indexer's published chain head, under an object store's prefix.
pub const INDEXERS_DIR: &str = "indexers";
/// The cluster's control objects (the retention janitor's lease), under an object store's prefix.
pub const CONTROL_DIR: &str = "control";
/// Claims of checkpoint ranges (see [`SplitStorage::claim_start`]), under an object store's prefix.
pub const CLAIMS_DIR: &str = "claims";
/// Directory of an indexer's uploaded audit chunks, under `indexers/<id>/`.
pub const AUDIT_CHUNKS_DIR: &str = "audit";
/// Where downloads are assembled before they are renamed into place, under the cache.
const DOWNLOADS_DIR: &str = "downloads";

/// A `--storage` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// `file:///abs/path`: a local directory.
    File(PathBuf),
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
}

impl StorageUrl {
    /// The default: `<data-dir>/store`.
    pub fn default_for(data_dir: &Path) -> StorageUrl {
        StorageUrl::File(data_dir.join(DEFAULT_STORE_DIR))
    }
}

impl FromStr for StorageUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<StorageUrl, String> {
        let expected = "expected file:///absolute/path or s3://bucket/prefix";
        if let Some(path) = url.strip_prefix("file://") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!(
                    "{url:?}: a file:// URL needs an absolute path ({expected})"
                ));
            }
            return Ok(StorageUrl::File(path));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{url:?}: no bucket ({expected})"));
            }
            let prefix = prefix.trim_matches('/').to_owned();
            if prefix.split('/').any(|part| part == "." || part == "..") {
                return Err(format!("{url:?}: the prefix may not hold . or .. ({expected})"));
            }
            return Ok(StorageUrl::S3 {
                bucket: bucket.to_owned(),
                prefix,
            });
        }
        Err(format!("{url:?}: unknown storage ({expected})"))
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageUrl::File(path) => write!(f, "file://{}", path.display()),
            StorageUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// A split published in the store: its tier and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SplitKey {
    pub tier: String,
    pub id: String,
}

/// What one publish sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Published {
    pub files: u64,
    pub bytes: u64,
    pub took: Duration,
}

/// The sealed splits' storage: a local directory, or an object store mirrored in a local
/// cache directory. Shared by sealing, search, retention and verify.
pub struct SplitStorage {
    url: StorageUrl,
    /// The local directory holding `splits/<tier>/<id>/`.
    root: PathBuf,
    remote: Option<Remote>,
    /// Tiers published to an object store of their own (`[[retention.tiers]] storage`).
    tiers: std::collections::BTreeMap<String, (StorageUrl, Remote)>,
    /// Uploads the audit log before a chain head that anchors it is published (shared stores).
    audit_uploader: std::sync::OnceLock<crate::audit_store::AuditUploader>,
    metrics: StorageMetrics,
}

struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The store's client is async; this indexer's sealing and retention are not.
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for SplitStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitStorage")
            .field("url", &self.url.to_string())
            .field("root", &self.root)
            .finish()
    }
}

/// The local split root of the store data dir `data_dir` (tools, tests): its default storage
/// `<data-dir>/store`, or the data dir itself when it still has the layout from before
/// `--storage` (sealed splits in `<data-dir>/splits/`), which opening it moves.
pub fn local_root(data_dir: &Path) -> PathBuf {
    let store = data_dir.join(DEFAULT_STORE_DIR);
    if !store.is_dir() && data_dir.join(SPLITS_DIR).is_dir() {
        data_dir.to_owned()
    } else {
        store
    }
}

/// Moves a data dir's sealed splits and retention staging from the layout before `--storage`
/// (`<data-dir>/splits/`, `<data-dir>/retention/`) into the default storage `<data-dir>/store/`.
fn migrate_legacy_layout(data_dir: &Path) -> anyhow::Result<()> {
    let store = data_dir.join(DEFAULT_STORE_DIR);
    let legacy = data_dir.join(SPLITS_DIR);
    if crate::disk::exists(&store)? || !crate::disk::exists(&legacy)? {
        return Ok(());
    }
    fs::create_dir_all(&store)?;
    for name in [SPLITS_DIR, crate::retention::STAGING_DIR] {
        let from = data_dir.join(name);
        if crate::disk::exists(&from)? {
            let to = store.join(name);
            fs::rename(&from, &to)
                .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        }
    }
    sync_dir(&store)?;
    sync_dir(data_dir)?;
    tracing::info!(from = %legacy.display(), to = %store.display(), "moved the sealed splits into the default storage");
    Ok(())
}

impl SplitStorage {
    /// Opens the storage `url` for the indexer whose data dir is `data_dir`.
    pub fn open(url: &StorageUrl, data_dir: &Path) -> anyhow::Result<SplitStorage> {
        match url {
            StorageUrl::File(root) if *url == StorageUrl::default_for(data_dir) => {
                migrate_legacy_layout(data_dir)?;
                SplitStorage::local(root)
            }
            StorageUrl::File(root) => SplitStorage::local(root),
            StorageUrl::S3 { bucket, prefix } => {
                install_tls_provider();
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .with_context(|| format!("--storage {url}: cannot configure the S3 client"))?;
                SplitStorage::remote(url.clone(), Arc::new(store), prefix, &data_dir.join(CACHE_DIR))
            }
        }
    }

    /// A local directory as the store.
    pub fn local(root: &Path) -> anyhow::Result<SplitStorage> {
        fs::create_dir_all(root.join(SPLITS_DIR))
            .with_context(|| format!("cannot create the storage directory {}", root.display()))?;
        Ok(SplitStorage::local_unchecked(root))
    }

    /// Counts uploads, fetches and publishes in `metrics` (the served ones).
    pub fn with_metrics(mut self, metrics: StorageMetrics) -> SplitStorage {
        self.metrics = metrics;
        self
    }

    /// The metrics this storage counts in.
    pub fn metrics(&self) -> &StorageMetrics {
        &self.metrics
    }

    /// A local directory as the store, not created when missing (a tool reading a data dir).
    pub fn local_unchecked(root: &Path) -> SplitStorage {
        SplitStorage {
            url: StorageUrl::File(root.to_owned()),
            root: root.to_owned(),
            remote: None,
            tiers: Default::default(),
            audit_uploader: Default::default(),
            metrics: StorageMetrics::default(),
        }
    }

    /// An object store, mirrored under `cache`; for S3 and for tests (an in-memory store).
    pub fn remote(
        url: StorageUrl,
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        cache: &Path,
    ) -> anyhow::Result<SplitStorage> {
        fs::create_dir_all(cache.join(SPLITS_DIR))
            .with_context(|| format!("cannot create the cache directory {}", cache.display()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("storage")
            .enable_all()
            .build()?;
        Ok(SplitStorage {
            url,
            root: cache.to_owned(),
            remote: Some(Remote {
                store,
                prefix: ObjectPath::from(prefix),
                runtime,
            }),
            tiers: Default::default(),
            audit_uploader: Default::default(),
            metrics: StorageMetrics::default(),
        })
    }

    /// Publishes tier `tier`'s splits to the object store `url` (S3, with the AWS environment
    /// as for `--storage`) instead of the main one; needs an object store as the main one too
    /// (a local store's directories are its only copy, never evicted to a cache).
    pub fn with_tier_storage(self, tier: &str, url: &StorageUrl) -> anyhow::Result<SplitStorage> {
        let StorageUrl::S3 { bucket, prefix } = url else {
            bail!("retention tier {tier}: storage {url} is not an object store (s3://bucket/prefix)");
        };
        if self.remote.is_none() {
            bail!(
                "retention tier {tier}: storage {url} needs --storage to be an object store too (now {}): a tier's own store holds its splits once they leave the local disk",
                self.url
            );
        }
        install_tls_provider();
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .with_context(|| {
                format!("retention tier {tier}: storage {url}: cannot configure the S3 client")
            })?;
        self.with_tier_store(tier, url.clone(), Arc::new(store), prefix)
    }

    /// As [`Self::with_tier_storage`], with a given client (tests: an in-memory store).
    pub fn with_tier_store(
        mut self,
        tier: &str,
        url: StorageUrl,
        store: Arc<dyn ObjectStore>,
        prefix: &str,
    ) -> anyhow::Result<SplitStorage> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("storage")
            .enable_all()
            .build()?;
        let remote = Remote {
            store,
            prefix: ObjectPath::from(prefix),
            runtime,
        };
        self.tiers.insert(tier.to_owned(), (url, remote));
        Ok(self)
    }

    /// The store a tier's splits are published to, and its URL (`None`: a local store).
    fn remote_for(&self, tier: &str) -> Option<(&Remote, &StorageUrl)> {
        match self.tiers.get(tier) {
            Some((url, remote)) => Some((remote, url)),
            None => self.remote.as_ref().map(|remote| (remote, &self.url)),
        }
    }

    /// The storage URL, for messages.
    pub fn url(&self) -> &StorageUrl {
        &self.url
    }

    /// The local directory holding `splits/<tier>/<id>/`: the store itself, or its cache.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when other indexers publish into the same store (an object store): their splits
    /// are searched here, and this indexer's retention touches only its own.
    pub fn is_shared(&self) -> bool {
        self.remote.is_some()
    }

    /// The local directory of a split.
    pub fn split_dir(&self, key: &SplitKey) -> PathBuf {
        self.tier_dir(&key.tier).join(&key.id)
    }

    /// The local directory of a tier's splits.
    pub fn tier_dir(&self, tier: &str) -> PathBuf {
        self.root.join(SPLITS_DIR).join(tier)
    }

    /// Publishes the sealed split in its local directory `dir` (`splits/<tier>/<id>/` under
    /// [`Self::root`]): for an object store its files are uploaded, then its manifest. Uploading
    /// again is harmless: the same bytes under the same names.
    pub fn publish(&self, dir: &Path) -> anyhow::Result<Published> {
        if self.remote.is_none() {
            return Ok(Published::default());
        }
        let started = Instant::now();
        let manifest = Manifest::read(dir)?;
        let key = SplitKey {
            tier: manifest.tier.clone(),
            id: manifest.id.clone(),
        };
        let (remote, url) = self.remote_for(&key.tier).expect("an object store");
        let mut published = Published::default();
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_file() && !name.ends_with(".lock") && !name.starts_with(MANIFEST_FILE) {
                names.push(name);
            }
        }
        names.sort();
        names.push(MANIFEST_FILE.to_owned());
        for name in &names {
            #[cfg(feature = "test-hooks")]
            if name == MANIFEST_FILE
                && std::env::var("CORRAL_PUBLISH_CRASH_AT").as_deref() == Ok("before-manifest")
            {
                eprintln!("CORRAL_PUBLISH_CRASH_AT=before-manifest: aborting");
                std::process::abort();
            }
            let bytes = fs::read(dir.join(name))
                .with_context(|| format!("cannot read {}", dir.join(name).display()))?;
            published.bytes += bytes.len() as u64;
            published.files += 1;
            self.metrics.uploads.inc();
            self.metrics.upload_bytes.inc_by(bytes.len() as u64);
            let location = remote.object(&key, name);
            remote
                .runtime
                .block_on(remote.store.put(&location, PutPayload::from(bytes)))
                .with_context(|| format!("cannot upload {location} to {}", url))?;
        }
        // A split published again (retention rewrote it in place) leaves no file of its
        // earlier version behind: the new manifest is in place, nothing reads them any more.
        for object in remote.list(&remote.split_prefix(&key), url)? {
            if object
                .location
                .filename()
                .is_some_and(|name| !names.iter().any(|n| n == name))
            {
                remote.block_on_delete(&object.location, url)?;
            }
        }
        published.took = started.elapsed();
        self.metrics.publish_seconds.observe(published.took.as_secs_f64());
        Ok(published)
    }

    /// Removes a published split: its manifest first (the split is gone from then on), then its
    /// files. Nothing for a local store, where the caller removes the directory.
    pub fn unpublish(&self, key: &SplitKey) -> anyhow::Result<()> {
        let Some((remote, url)) = self.remote_for(&key.tier) else {
            return Ok(());
        };
        remote.block_on_delete(&remote.object(key, MANIFEST_FILE), url)?;
        for object in remote.list(&remote.split_prefix(key), url)? {
            remote.block_on_delete(&object.location, url)?;
        }
        Ok(())
    }

    /// Every split published in an object store (those whose manifest exists); empty for a
    /// local store, whose directories are the catalog.
    pub fn list(&self) -> anyhow::Result<Vec<SplitKey>> {
        Ok(self.list_versions()?.into_keys().collect())
    }

    /// As [`SplitStorage::list`], each split with its manifest's version in the store (its
    /// ETag, else its time and size): a split rewritten in place has a new one.
    pub fn list_versions(&self) -> anyhow::Result<std::collections::BTreeMap<SplitKey, String>> {
        let mut keys = std::collections::BTreeMap::new();
        let Some(remote) = &self.remote else {
            return Ok(keys);
        };
        // The main store holds the tiers without a store of their own; each of those, its tier.
        let stores = std::iter::once((remote, &self.url, None)).chain(
            self.tiers
                .iter()
                .map(|(tier, (url, remote))| (remote, url, Some(tier.as_str()))),
        );
        for (remote, url, only) in stores {
            let splits = remote.prefix.clone().join(SPLITS_DIR);
            for object in remote.list(&splits, url)? {
                let parts: Vec<_> = object
                    .location
                    .prefix_match(&splits)
                    .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect())
                    .unwrap_or_default();
                let [tier, id, file] = parts.as_slice() else {
                    continue;
                };
                let here = match only {
                    Some(only) => tier == only,
                    None => !self.tiers.contains_key(tier),
                };
                if file == MANIFEST_FILE && here {
                    let version = object
                        .e_tag
                        .clone()
                        .unwrap_or_else(|| format!("{}/{}", object.last_modified.to_rfc3339(), object.size));
                    keys.insert(
                        SplitKey {
                            tier: tier.clone(),
                            id: id.clone(),
                        },
                        version,
                    );
                }
            }
        }
        Ok(keys)
    }

    /// Reads a published split's manifest.
    pub fn read_manifest(&self, key: &SplitKey) -> anyhow::Result<Manifest> {
        let Some((remote, url)) = self.remote_for(&key.tier) else {
            return Manifest::read(&self.split_dir(key));
        };
        let location = remote.object(key, MANIFEST_FILE);
        let bytes = remote.get(&location, url)?;
        serde_json::from_slice(&bytes).with_context(|| format!("invalid manifest {location} in {}", url))
    }

    /// The SHA-256 of a published split's manifest, as stored.
    pub fn manifest_sha256(&self, key: &SplitKey) -> anyhow::Result<String> {
        let Some((remote, url)) = self.remote_for(&key.tier) else {
            return crate::manifest::manifest_hash(&self.split_dir(key));
        };
        Ok(sha256_hex(&remote.get(&remote.object(key, MANIFEST_FILE), url)?))
    }

    /// Downloads a published split into its local directory (assembled aside, each file checked
    /// against the manifest's SHA-256, then renamed into place) and returns that directory.
    pub fn download(&self, key: &SplitKey) -> anyhow::Result<PathBuf> {
        let Some((remote, url)) = self.remote_for(&key.tier) else {
            return Ok(self.split_dir(key));
        };
        let manifest_location = remote.object(key, MANIFEST_FILE);
        let manifest_bytes = remote.get(&manifest_location, url)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .with_context(|| format!("invalid manifest {manifest_location} in {}", url))?;
        let staging = self.root.join(DOWNLOADS_DIR).join(&key.id);
        if crate::disk::exists(&staging)? {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir_all(&staging)?;
        // `files` lists every file but the manifest, the earlier manifests a re-encoded split
        // keeps included.
        // A few files at a time, each streamed to disk and hashed on the way: memory stays at a
        // few chunks whatever the split's size.
        let fetches = manifest.files.iter().map(|(name, sha256)| {
            let location = remote.object(key, name);
            let path = staging.join(name);
            async move {
                let fetched = fetch_to(&*remote.store, &location, &path).await;
                (location, sha256, fetched)
            }
        });
        let fetched: Vec<_> = remote.runtime.block_on(
            futures_util::stream::iter(fetches)
                .buffer_unordered(PARALLEL_FETCHES)
                .collect(),
        );
        for (location, sha256, result) in fetched {
            let (bytes, hash) = result.with_context(|| format!("cannot fetch {location} from {}", url))?;
            if &hash != sha256 {
                bail!("{location} in {} does not match its manifest's SHA-256", url);
            }
            self.metrics.cache_bytes_fetched.inc_by(bytes);
        }
        fs::write(staging.join(MANIFEST_FILE), &manifest_bytes)?;
        for entry in fs::read_dir(&staging)? {
            fs::File::open(entry?.path())?.sync_all()?;
        }
        let target = self.split_dir(key);
        fs::create_dir_all(self.tier_dir(&key.tier))?;
        if crate::disk::exists(&target)? {
            fs::remove_dir_all(&target)?;
        }
        fs::rename(&staging, &target)
            .with_context(|| format!("cannot move {} to {}", staging.display(), target.display()))?;
        sync_dir(&self.tier_dir(&key.tier))?;
        self.metrics.cache_misses.inc();
        Ok(target)
    }

    /// From now on, uploads `audit`, `indexer`'s audit log, to the object store before every
    /// chain head that anchors it (nothing for a local store, whose log is in the data dir).
    pub fn upload_audit_log(&self, indexer: &str, audit: std::sync::Arc<crate::audit::AuditLog>) {
        if self.remote.is_some() {
            let _ = self
                .audit_uploader
                .set(crate::audit_store::AuditUploader::new(indexer, audit));
        }
    }

    /// Uploads the audit log's entries not in the object store yet; returns the last entry it
    /// holds (`None` when none, or when the log is not uploaded here).
    pub fn upload_audit(&self) -> anyhow::Result<Option<u64>> {
        match self.audit_uploader.get() {
            Some(uploader) => uploader.upload(self),
            None => Ok(None),
        }
    }

    /// True when the audit log is uploaded to this store.
    pub fn uploads_audit(&self) -> bool {
        self.audit_uploader.get().is_some()
    }

    /// Stores this indexer's chain head (its bytes as written locally) in an object store.
    pub fn publish_chain_head(&self, indexer: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let location = remote.chain_head(indexer);
        remote
            .runtime
            .block_on(remote.store.put(&location, PutPayload::from(bytes.to_vec())))
            .with_context(|| format!("cannot upload {location} to {}", self.url))?;
        Ok(())
    }

    /// This indexer's chain head as last published in an object store, if any.
    pub fn fetch_chain_head(&self, indexer: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        Ok(remote
            .get_if_exists(&remote.chain_head(indexer), &self.url)?
            .map(|bytes| bytes.to_vec()))
    }

    /// True when the split's published copy matches its local one: the same manifest bytes.
    pub fn is_published(&self, dir: &Path, key: &SplitKey) -> anyhow::Result<bool> {
        let Some((remote, url)) = self.remote_for(&key.tier) else {
            return Ok(true);
        };
        let local = sha256_file(&dir.join(MANIFEST_FILE))?;
        let published = remote.get_if_exists(&remote.object(key, MANIFEST_FILE), url)?;
        Ok(published.is_some_and(|bytes| sha256_hex(&bytes) == local))
    }
}

/// Files of a split fetched at once.
const PARALLEL_FETCHES: usize = 4;

/// Streams the object at `location` into a new file at `path`; returns its size and SHA-256.
async fn fetch_to(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    path: &Path,
) -> anyhow::Result<(u64, String)> {
    use sha2::Digest as _;
    use std::io::Write as _;
    let mut stream = store.get(location).await?.into_stream();
    let mut file = fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        file.write_all(&chunk)?;
        bytes += chunk.len() as u64;
    }
    file.sync_all()?;
    Ok((bytes, crate::manifest::hex_digest(&hasher.finalize())))
}

impl Remote {
    fn split_prefix(&self, key: &SplitKey) -> ObjectPath {
        self.prefix
            .clone()
            .join(SPLITS_DIR)
            .join(key.tier.as_str())
            .join(key.id.as_str())
    }

    fn object(&self, key: &SplitKey, name: &str) -> ObjectPath {
        self.split_prefix(key).join(name)
    }

    fn claim(&self, source: &str, partition: i32, start: i64) -> ObjectPath {
        let source = if source.is_empty() { "_" } else { source };
        self.prefix
            .clone()
            .join(CLAIMS_DIR)
            .join(source)
            .join(partition.to_string())
            .join(format!("{start:020}.json"))
    }

    fn audit_prefix(&self, indexer: &str) -> ObjectPath {
        self.prefix
            .clone()
            .join(INDEXERS_DIR)
            .join(indexer)
            .join(AUDIT_CHUNKS_DIR)
    }

    fn chain_head(&self, indexer: &str) -> ObjectPath {
        self.prefix
            .clone()
            .join(INDEXERS_DIR)
            .join(indexer)
            .join(crate::store::CHAIN_HEAD_FILE)
    }

    /// Every object under `prefix`.
    fn list(&self, prefix: &ObjectPath, url: &StorageUrl) -> anyhow::Result<Vec<object_store::ObjectMeta>> {
        self.runtime
            .block_on(async {
                self.store
                    .list(Some(prefix))
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
            })
            .with_context(|| format!("cannot list {prefix} in {url}"))
    }

    /// Writes `bytes` at `location` in `mode`; with [`object_store::PutMode::Create`], only if
    /// no object has that name yet (the store decides): `Ok(false)` when one had.
    fn put_with(
        &self,
        location: &ObjectPath,
        bytes: Vec<u8>,
        mode: object_store::PutMode,
        url: &StorageUrl,
    ) -> anyhow::Result<bool> {
        let put = self.runtime.block_on(self.store.put_opts(
            location,
            PutPayload::from(bytes),
            object_store::PutOptions::from(mode),
        ));
        match put {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Ok(false)
            }
            Err(error) => Err(error).with_context(|| format!("cannot write {location} to {url}")),
        }
    }

    /// The object at `location`, or `None` when there is none.
    fn get_if_exists(&self, location: &ObjectPath, url: &StorageUrl) -> anyhow::Result<Option<bytes::Bytes>> {
        self.runtime
            .block_on(async {
                match self.store.get(location).await {
                    Ok(got) => got.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(error) => Err(error),
                }
            })
            .with_context(|| format!("cannot read {location} in {url}"))
    }

    fn get(&self, location: &ObjectPath, url: &StorageUrl) -> anyhow::Result<bytes::Bytes> {
        self.runtime
            .block_on(async { self.store.get(location).await?.bytes().await })
            .with_context(|| format!("cannot read {location} in {url}"))
    }

    fn block_on_delete(&self, location: &ObjectPath, url: &StorageUrl) -> anyhow::Result<()> {
        match self.runtime.block_on(self.store.delete(location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot delete {location} in {url}")),
        }
    }
}

/// rustls needs one crypto provider for the process (reqwest is built without one): ring, as
/// for the collector's kube client. Called before any HTTP client is made.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(
            "file:///var/lib/corral/store".parse::<StorageUrl>(),
            Ok(StorageUrl::File("/var/lib/corral/store".into()))
        );
        assert_eq!(
            "s3://logs/corral/prod/".parse::<StorageUrl>(),
            Ok(StorageUrl::S3 {
                bucket: "logs".into(),
                prefix: "corral/prod".into()
            })
        );
        assert_eq!(
            "s3://logs".parse::<StorageUrl>(),
            Ok(StorageUrl::S3 {
                bucket: "logs".into(),
                prefix: String::new()
            })
        );
        for bad in [
            "file://relative/dir",
            "s3:///prefix",
            "gs://bucket",
            "/var/lib",
            "s3://b/../x",
        ] {
            let error = bad.parse::<StorageUrl>().unwrap_err();
            assert!(error.contains(bad) && error.contains("expected"), "{error}");
        }
    }

    fn sealed_dir(root: &Path, id: &str) -> PathBuf {
        let dir = root.join(SPLITS_DIR).join("hot").join(id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("meta.json"), b"{}").unwrap();
        fs::write(dir.join("a.store"), b"records").unwrap();
        let manifest = Manifest {
            format: crate::manifest::MANIFEST_FORMAT,
            id: id.to_owned(),
            tier: "hot".into(),
            indexer: "indexer-0".into(),
            source: String::new(),
            created: corral_schema::Timestamp::now(),
            sealed: corral_schema::Timestamp::now(),
            min_ts: None,
            max_ts: None,
            docs: 0,
            checkpoint: Default::default(),
            checkpoint_start: Default::default(),
            next_seq: 0,
            files: crate::manifest::hash_split_files(&dir).unwrap(),
            prev: None,
            prev_id: None,
        };
        manifest.write(&dir).unwrap();
        dir
    }

    #[test]
    fn a_published_split_is_listed_downloaded_checked_and_unpublished_manifest_first() {
        let local = tempfile::tempdir().unwrap();
        let store = Arc::new(object_store::memory::InMemory::new());
        let url = StorageUrl::S3 {
            bucket: "b".into(),
            prefix: "p".into(),
        };
        let a = SplitStorage::remote(url.clone(), store.clone(), "p", &local.path().join("a")).unwrap();
        let dir = sealed_dir(a.root(), "0001");
        let key = SplitKey {
            tier: "hot".into(),
            id: "0001".into(),
        };
        assert!(!a.is_published(&dir, &key).unwrap());
        let published = a.publish(&dir).unwrap();
        assert_eq!(published.files, 3, "two files and the manifest");
        assert!(a.is_published(&dir, &key).unwrap());
        // Another indexer's cache.
        let b = SplitStorage::remote(url, store.clone(), "p", &local.path().join("b")).unwrap();
        assert_eq!(b.list().unwrap(), vec![key.clone()]);
        let copy = b.download(&key).unwrap();
        assert_eq!(fs::read(copy.join("a.store")).unwrap(), b"records");
        assert_eq!(Manifest::read(&copy).unwrap().id, "0001");
        // A file altered in the store is refused, naming it.
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(store.put(
            &ObjectPath::from("p/splits/hot/0001/a.store"),
            PutPayload::from_static(b"edited"),
        ))
        .unwrap();
        let error = b.download(&key).unwrap_err().to_string();
        assert!(error.contains("a.store") && error.contains("SHA-256"), "{error}");
        // Published again with other files (a rewrite in place): no file of the earlier
        // version is left in the store.
        fs::remove_file(dir.join("a.store")).unwrap();
        fs::write(dir.join("b.store"), b"rewritten").unwrap();
        let mut manifest = Manifest::read(&dir).unwrap();
        manifest.files = crate::manifest::hash_split_files(&dir).unwrap();
        manifest.write(&dir).unwrap();
        a.publish(&dir).unwrap();
        let names = |rt: &tokio::runtime::Runtime| -> Vec<String> {
            let mut names: Vec<String> = rt
                .block_on(async { store.list(None).collect::<Vec<_>>().await })
                .into_iter()
                .map(|meta| meta.unwrap().location.to_string())
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            names(&rt),
            vec![
                "p/splits/hot/0001/b.store",
                "p/splits/hot/0001/corral-split.json",
                "p/splits/hot/0001/meta.json"
            ]
        );
        a.unpublish(&key).unwrap();
        assert!(b.list().unwrap().is_empty());
        let left = rt.block_on(async { store.list(None).collect::<Vec<_>>().await });
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_data_dir_from_before_storage_is_moved_into_the_default_store() {
        let data = tempfile::tempdir().unwrap();
        sealed_dir(data.path(), "0001");
        assert_eq!(local_root(data.path()), data.path());
        let storage = SplitStorage::open(&StorageUrl::default_for(data.path()), data.path()).unwrap();
        assert_eq!(storage.root(), data.path().join(DEFAULT_STORE_DIR));
        assert!(
            storage
                .split_dir(&SplitKey {
                    tier: "hot".into(),
                    id: "0001".into()
                })
                .join(MANIFEST_FILE)
                .is_file()
        );
        assert!(!data.path().join(SPLITS_DIR).is_dir());
        assert_eq!(local_root(data.path()), storage.root());
    }
}
