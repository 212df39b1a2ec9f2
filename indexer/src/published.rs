//! What other indexers see (DESIGN §7), for an object store several indexers publish to: the
//! catalog brought up to date with it ([`refresh_catalog`]), uploads a crash cut short finished
//! at open (`reconcile`), and how far every partition is published ([`published_checkpoint`]),
//! where a moving partition resumes and against which a stale split is fenced.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::cache::RemoteSplit;
use crate::manifest::Checkpoint;
use crate::storage::{SplitKey, SplitStorage};
use crate::store::{Catalog, CommitState};

/// At open, for an object store: publishes this indexer's sealed splits whose upload a crash cut
/// short, and removes its own published copies that a tier move cut short left behind.
pub(crate) fn reconcile(storage: &SplitStorage, catalog: &Catalog, indexer: &str) -> anyhow::Result<()> {
    let own: Vec<_> = catalog
        .splits()
        .into_iter()
        .filter(|v| !v.active && v.indexer == indexer)
        .collect();
    for view in &own {
        let key = SplitKey {
            tier: view.tier.clone(),
            id: view.id.clone(),
        };
        if !storage.is_published(&view.dir, &key)? {
            tracing::warn!(split = %view.id, tier = %view.tier, "publishing a split whose upload was cut short");
            storage.publish(&view.dir)?;
        }
    }
    for key in storage.list()? {
        if own.iter().any(|v| v.id == key.id && v.tier != key.tier)
            && storage.read_manifest(&key)?.indexer == indexer
        {
            tracing::warn!(split = %key.id, tier = %key.tier, "removing the published copy a cut-short tier move left behind");
            storage.unpublish(&key)?;
        }
    }
    Ok(())
}

/// Per partition, the furthest checkpoint of any split published in `storage` now: those in
/// the catalog and those listed but not fetched yet (their manifests are read). Where a
/// partition moving to this indexer resumes when another indexer had it since.
pub fn published_checkpoint(
    storage: &SplitStorage,
    catalog: &Catalog,
    topic: &str,
) -> anyhow::Result<Checkpoint> {
    published_checkpoint_except(storage, catalog, topic, None)
}

/// As [`published_checkpoint`], leaving out the splits of indexer `except`.
fn published_checkpoint_except(
    storage: &SplitStorage,
    catalog: &Catalog,
    topic: &str,
    except: Option<&str>,
) -> anyhow::Result<Checkpoint> {
    let mut furthest = Checkpoint::new();
    let mut raise = |checkpoint: &Checkpoint| {
        for (partition, next) in checkpoint {
            let entry = furthest.entry(*partition).or_insert(*next);
            *entry = (*entry).max(*next);
        }
    };
    let views = catalog.splits();
    let remote = catalog.remote();
    // Another topic's partition 0 is not this one's.
    let counted =
        |indexer: &str, source: &str| except.is_none_or(|except| except != indexer) && source == topic;
    for view in views
        .iter()
        .filter(|v| !v.active && counted(&v.indexer, &v.source))
    {
        raise(&view.checkpoint);
    }
    for split in remote.iter().filter(|s| counted(&s.indexer, &s.source)) {
        raise(&split.checkpoint);
    }
    // A fresh listing: what was published since the last refresh counts too.
    for key in storage.list()? {
        let known = views
            .iter()
            .any(|v| !v.active && v.id == key.id && v.tier == key.tier)
            || remote.iter().any(|s| s.key == key);
        if !known {
            let manifest = storage.read_manifest(&key)?;
            if counted(&manifest.indexer, &manifest.source) {
                raise(&manifest.checkpoint);
            }
        }
    }
    Ok(furthest)
}

/// What one [`refresh_catalog`] changed.
#[derive(Debug, Clone, Default)]
pub struct Refreshed {
    /// Splits newly listed (their manifests read; their files are fetched when a query needs
    /// them).
    pub added: u64,
    /// Splits removed because their owner removed them from the store (or moved them).
    pub removed: u64,
    /// Splits whose manifest could not be read, with why.
    pub failed: Vec<(String, String)>,
}

/// Brings the catalog up to date with an object store (nothing for a local one): the splits
/// published, moved or removed since — other indexers', and this indexer's own that its data
/// dir lost — by their manifests only ([`crate::cache`] fetches their files when a query
/// needs them).
pub fn refresh_catalog(storage: &SplitStorage, catalog: &Catalog) -> anyhow::Result<Refreshed> {
    let mut refreshed = Refreshed::default();
    if !storage.is_shared() {
        return Ok(refreshed);
    }
    // What the catalog holds before the listing starts: a split published and added after
    // this is not taken for one removed.
    let (local, remote) = catalog.snapshot();
    // Splits learned from a root's share are read again, to be held as listed.
    let known: HashMap<SplitKey, Arc<RemoteSplit>> = remote
        .into_iter()
        .filter(|split| !split.learned)
        .map(|split| (split.key.clone(), split))
        .collect();
    let opened: HashSet<String> = local.iter().map(|v| v.id.clone()).collect();
    let versions = storage.list_versions()?;
    storage.metrics().catalog_splits.set(versions.len() as i64);
    let listed: Vec<SplitKey> = versions.keys().cloned().collect();
    let mut added: Vec<(Arc<RemoteSplit>, usize)> = Vec::new();
    for key in &listed {
        // Opened here: a split of this indexer being published.
        if opened.contains(&key.id) {
            continue;
        }
        let held = known.get(key);
        if held.is_some_and(|held| held.version == versions[key]) {
            continue;
        }
        match storage.read_manifest(key) {
            Ok(manifest) => {
                if let Some(held) = held {
                    // Listed at another version than held: rewritten in place (retention
                    // removed records, which is the only in-place change), so the cached copy is
                    // stale — unless it is a split this indexer put in place itself and holds
                    // without a version yet (sealed or rewritten here), with the same records.
                    let same = held.version.is_empty() && held.docs == manifest.docs;
                    if !same && let Some(cache) = catalog.cache() {
                        cache.forget(&key.id);
                    }
                }
                // A split listed in two tiers (a move between its publish and its removal of
                // the old copy) is held once: the copy re-encoded more often is the newer one.
                let encodings = manifest
                    .files
                    .keys()
                    .filter(|f| f.starts_with(crate::retention::PREV_MANIFEST_PREFIX))
                    .count();
                // (Another tier's: the same key held is this one's older version.)
                let known_copy = known.keys().any(|k| k.id == key.id && k != key);
                match added.iter().position(|(other, _)| other.key.id == key.id) {
                    Some(i) if added[i].1 >= encodings => continue,
                    Some(i) => {
                        added.remove(i);
                    }
                    None if known_copy => {
                        // Keep the copy held unless this one is newer.
                        let held = known
                            .keys()
                            .find(|k| k.id == key.id && *k != key)
                            .expect("just found");
                        let held = storage.read_manifest(held).map(|m| {
                            m.files
                                .keys()
                                .filter(|f| f.starts_with(crate::retention::PREV_MANIFEST_PREFIX))
                                .count()
                        });
                        if held.is_ok_and(|held| held >= encodings) {
                            continue;
                        }
                    }
                    None => {}
                }
                let split = RemoteSplit {
                    version: versions[key].clone(),
                    ..RemoteSplit::new(key.clone(), &manifest)
                };
                added.push((Arc::new(split), encodings));
            }
            Err(error) => {
                tracing::warn!(split = %key.id, tier = %key.tier, "cannot read a published split: {error:#}");
                refreshed.failed.push((key.id.clone(), format!("{error:#}")));
            }
        }
    }
    let added: Vec<Arc<RemoteSplit>> = added.into_iter().map(|(split, _)| split).collect();
    let listed: HashSet<&SplitKey> = listed.iter().collect();
    let gone: Vec<SplitKey> = known.into_keys().filter(|key| !listed.contains(key)).collect();
    if let Some(cache) = catalog.cache() {
        for key in &gone {
            // A split moved to another tier is fetched anew; one removed leaves the disk.
            if !added.iter().any(|split| split.key.id == key.id) {
                cache.forget_tier(&key.id, &key.tier);
            }
        }
    }
    refreshed.added = added.len() as u64;
    refreshed.removed = gone.len() as u64;
    catalog.update_remote(&gone, added);
    catalog.set_unfetched(refreshed.failed.clone());
    Ok(refreshed)
}

/// Adds the published splits of `keys` the catalog does not list yet (a root listed them
/// before this indexer's next refresh) by reading their manifests; returns those that cannot
/// be read, with why. Nothing for a local store.
pub fn learn(catalog: &Catalog, keys: &[SplitKey]) -> Vec<(String, String)> {
    let Some(cache) = catalog.cache() else {
        return Vec::new();
    };
    // By id: a split held in another tier is not replaced by what a root says (its refresh
    // may be the older one).
    let (local, remote) = catalog.snapshot();
    let mut known: HashSet<String> = remote.iter().map(|s| s.key.id.clone()).collect();
    known.extend(local.iter().map(|v| v.id.clone()));
    let mut learned = Vec::new();
    let mut failed = Vec::new();
    for key in keys.iter().filter(|key| !known.contains(&key.id)) {
        match cache.storage().read_manifest(key) {
            Ok(manifest) => learned.push(Arc::new(RemoteSplit {
                learned: true,
                ..RemoteSplit::new(key.clone(), &manifest)
            })),
            Err(error) => failed.push((key.id.clone(), format!("cannot read its manifest: {error:#}"))),
        }
    }
    if !learned.is_empty() {
        catalog.add_remote(learned);
    }
    failed
}

/// A split not published because other indexers published records of its partitions since
/// it started: publishing it would count them twice.
#[derive(Debug, thiserror::Error)]
#[error(
    "split {split} is fenced: another indexer published records of partitions {partitions:?} past where it starts; it is dropped and ingest goes on from what is published"
)]
pub struct Fenced {
    pub split: String,
    pub partitions: Vec<i32>,
}

/// The partitions of the split sealed in `committed` that another indexer has published
/// records of at or after this split's first record of them (a fresh listing).
pub(crate) fn overlapping(
    storage: &SplitStorage,
    catalog: &Catalog,
    indexer: &str,
    source: &str,
    committed: &CommitState,
) -> anyhow::Result<Vec<i32>> {
    let others = published_checkpoint_except(storage, catalog, source, Some(indexer))?;
    Ok(committed
        .start
        .iter()
        .filter(|(partition, first)| others.get(partition).is_some_and(|end| end > first))
        .map(|(partition, _)| *partition)
        .collect())
}

/// Publishes a sealed split, trying again with a growing pause while the store refuses: the
/// next seal waits meanwhile, and Kafka holds what is not indexed yet.
pub(crate) fn publish_until_done(storage: &SplitStorage, dir: &Path) {
    let published = until_done(storage, &format!("publish the split {}", dir.display()), || {
        storage.publish(dir)
    });
    if storage.is_shared() {
        tracing::info!(
            split = %dir.display(),
            files = published.files,
            bytes = published.bytes,
            took_ms = published.took.as_millis() as u64,
            "published split"
        );
    }
}

/// Runs `attempt`, a step of publishing that talks to the object store, until it succeeds,
/// with a pause growing from 200 ms to 30 s between failures: an outage of the store delays a
/// seal (and so ingest, while Kafka holds what is not indexed yet) but never ends the indexer.
/// `attempt` must be safe to repeat after it failed part way. Each failure is logged, naming
/// `what` failed, and counted in `publish_failures`.
pub(crate) fn until_done<T>(
    storage: &SplitStorage,
    what: &str,
    mut attempt: impl FnMut() -> anyhow::Result<T>,
) -> T {
    let mut pause = std::time::Duration::from_millis(200);
    loop {
        match attempt() {
            Ok(done) => return done,
            Err(error) => {
                storage.metrics().publish_failures.inc();
                tracing::error!(storage = %storage.url(), "cannot {what}, trying again in {pause:?}: {error:#}");
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}
