//! The cluster's objects beside the splits, under an object store's prefix: control objects
//! (the janitor's lease), each indexer's chain head and audit chunks, the claims of partitions'
//! start offsets, and a listing of every object for `verify`. Every path is built in `Remote`.

use anyhow::{Context, bail};
use object_store::ObjectStoreExt as _;

use super::{AUDIT_CHUNKS_DIR, CONTROL_DIR, Duration, INDEXERS_DIR, SplitStorage};

impl SplitStorage {
    /// The names of the cluster's control objects under `<prefix>/control/<dir>/` (the
    /// janitor's lease), sorted; empty without an object store.
    pub fn control_names(&self, dir: &str) -> anyhow::Result<Vec<String>> {
        let Some(remote) = &self.remote else {
            return Ok(Vec::new());
        };
        let prefix = remote.prefix.clone().join(CONTROL_DIR).join(dir);
        let mut names: Vec<String> = remote
            .list(&prefix, &self.url)?
            .into_iter()
            .filter_map(|meta| meta.location.filename().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// A control object's bytes, if it exists.
    pub fn control_get(&self, dir: &str, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        let location = remote.prefix.clone().join(CONTROL_DIR).join(dir).join(name);
        Ok(remote.get_if_exists(&location, &self.url)?.map(|b| b.to_vec()))
    }

    /// Writes a control object. With `create`, only if no object has that name yet (a
    /// conditional write the store decides): `Ok(false)` when one had.
    pub fn control_put(&self, dir: &str, name: &str, bytes: &[u8], create: bool) -> anyhow::Result<bool> {
        let Some(remote) = &self.remote else {
            bail!("{} is not an object store: it has no control objects", self.url);
        };
        let location = remote.prefix.clone().join(CONTROL_DIR).join(dir).join(name);
        let mode = if create {
            object_store::PutMode::Create
        } else {
            object_store::PutMode::Overwrite
        };
        remote.put_with(&location, bytes.to_vec(), mode, &self.url)
    }

    /// Removes a control object (nothing when it is gone already).
    pub fn control_delete(&self, dir: &str, name: &str) -> anyhow::Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let location = remote.prefix.clone().join(CONTROL_DIR).join(dir).join(name);
        match remote.runtime.block_on(remote.store.delete(&location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot remove {location} from {}", self.url)),
        }
    }

    /// The indexers that published a chain head to the object store (none for a local one).
    pub fn published_indexers(&self) -> anyhow::Result<Vec<String>> {
        self.indexers_with(|rest| matches!(rest, [file] if file == crate::store::CHAIN_HEAD_FILE))
    }

    /// The indexers that uploaded an audit chunk.
    pub fn audited_indexers(&self) -> anyhow::Result<Vec<String>> {
        self.indexers_with(|rest| matches!(rest, [dir, _] if dir == AUDIT_CHUNKS_DIR))
    }

    /// The indexers with an object `indexers/<id>/<rest…>` for which `matches(rest)`, sorted.
    fn indexers_with(&self, matches: impl Fn(&[String]) -> bool) -> anyhow::Result<Vec<String>> {
        let Some(remote) = &self.remote else {
            return Ok(Vec::new());
        };
        let prefix = remote.prefix.clone().join(INDEXERS_DIR);
        let mut indexers: Vec<String> = remote
            .list(&prefix, &self.url)?
            .into_iter()
            .filter_map(|meta| {
                let parts: Vec<String> = meta
                    .location
                    .prefix_match(&prefix)?
                    .map(|p| p.as_ref().to_owned())
                    .collect();
                let (indexer, rest) = parts.split_first()?;
                matches(rest).then(|| indexer.clone())
            })
            .collect();
        indexers.sort();
        indexers.dedup();
        Ok(indexers)
    }

    /// Claims for `split` the records of `partition` of the topic `source` from offset `start`
    /// on, before the split is published: a create-only object
    /// `claims/<source>/<partition>/<start>.json`, so of two indexers sealing splits that start
    /// at the same place (both resumed a moving partition from the same published checkpoint)
    /// exactly one publishes, even when neither has published yet. `Ok(None)`: claimed (now,
    /// or before by the same split); `Ok(Some(holder))`: another split holds the claim. A claim
    /// older than `stale_after` whose split was never published (its indexer lost everything
    /// before publishing) is taken over. Nothing to claim in a store of one's own.
    pub fn claim_start(
        &self,
        source: &str,
        partition: i32,
        start: i64,
        split: &str,
        indexer: &str,
        stale_after: Duration,
    ) -> anyhow::Result<Option<String>> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        let location = remote.claim(source, partition, start);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let claim = serde_json::json!({"split": split, "indexer": indexer, "at_ms": now_ms}).to_string();
        for _ in 0..3 {
            if remote.put_with(
                &location,
                claim.clone().into_bytes(),
                object_store::PutMode::Create,
                &self.url,
            )? {
                return Ok(None);
            }
            let Some(bytes) = remote.get_if_exists(&location, &self.url)? else {
                continue;
            };
            let held: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let holder = held["split"].as_str().unwrap_or_default();
            if holder == split {
                return Ok(None);
            }
            let age = now_ms.saturating_sub(held["at_ms"].as_u64().unwrap_or_default());
            let published = self.list()?.iter().any(|key| key.id == holder);
            if published || u128::from(age) < stale_after.as_millis() {
                return Ok(Some(format!(
                    "split {holder} of indexer {}",
                    held["indexer"].as_str().unwrap_or("?")
                )));
            }
            tracing::warn!(claim = %location, holder, age_ms = age, "taking over a stale claim whose split was never published");
            remote.block_on_delete(&location, &self.url)?;
        }
        bail!("cannot claim {location} in {}: it keeps changing", self.url)
    }

    /// Gives back a claim [`Self::claim_start`] made for `split` (nothing if another holds it).
    pub fn release_claim(&self, source: &str, partition: i32, start: i64, split: &str) -> anyhow::Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let location = remote.claim(source, partition, start);
        if let Some(bytes) = remote.get_if_exists(&location, &self.url)?
            && serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default()["split"] == split
        {
            remote.block_on_delete(&location, &self.url)?;
        }
        Ok(())
    }

    /// The names of the audit chunks `indexer` uploaded (`indexers/<id>/audit/`), sorted: in
    /// chain order, as their names start with their first entry's zero-padded `seq`.
    pub fn audit_chunk_names(&self, indexer: &str) -> anyhow::Result<Vec<String>> {
        let Some(remote) = &self.remote else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = remote
            .list(&remote.audit_prefix(indexer), &self.url)?
            .into_iter()
            .filter_map(|meta| meta.location.filename().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Uploads an audit chunk, never over one of the same name: `Ok(false)` when it exists
    /// already (an upload repeated after a crash; its bytes are the same entries).
    pub fn put_audit_chunk(&self, indexer: &str, name: &str, bytes: Vec<u8>) -> anyhow::Result<bool> {
        let Some(remote) = &self.remote else {
            bail!(
                "{} is not an object store: audit logs stay in the data dir",
                self.url
            );
        };
        let location = remote.audit_prefix(indexer).join(name);
        remote.put_with(&location, bytes, object_store::PutMode::Create, &self.url)
    }

    /// An uploaded audit chunk's bytes.
    pub fn get_audit_chunk(&self, indexer: &str, name: &str) -> anyhow::Result<Vec<u8>> {
        let Some(remote) = &self.remote else {
            bail!("{} is not an object store: it holds no audit log", self.url);
        };
        Ok(remote
            .get(&remote.audit_prefix(indexer).join(name), &self.url)?
            .to_vec())
    }

    /// Every object of the store and of the tiers' own stores, as `(store URL, path below the
    /// prefix)`: what `verify` accounts for, object by object.
    pub fn all_objects(&self) -> anyhow::Result<Vec<(String, Vec<String>)>> {
        let mut objects = Vec::new();
        let Some(remote) = &self.remote else {
            return Ok(objects);
        };
        let stores = std::iter::once((remote, &self.url))
            .chain(self.tiers.values().map(|(url, remote)| (remote, url)));
        for (remote, url) in stores {
            for object in remote.list(&remote.prefix, url)? {
                let parts = match object.location.prefix_match(&remote.prefix) {
                    Some(parts) => parts.map(|p| p.as_ref().to_owned()).collect(),
                    None => vec![object.location.to_string()],
                };
                objects.push((url.to_string(), parts));
            }
        }
        Ok(objects)
    }
}
