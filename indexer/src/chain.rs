//! Each indexer's manifest chain and the head that anchors it (DESIGN §4.2): the newest sealed
//! split and its manifest's hash, and the audit log's last entry, in `splits/chain-head.json`
//! under the storage's local root (published to an object store as
//! `indexers/<id>/chain-head.json`). `verify` walks from it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditHead, AuditLog};
use crate::manifest::{Manifest, manifest_hash, sync_dir};
use crate::storage::{SPLITS_DIR, SplitStorage};
use crate::store::split_dirs;

/// The sealed split directories `indexer` wrote: every one in a store of its own.
fn own_split_dirs(storage: &SplitStorage, indexer: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = split_dirs(storage.root())?;
    if storage.is_shared() {
        dirs.retain(|dir| Manifest::read(dir).is_ok_and(|m| m.indexer == indexer));
    }
    Ok(dirs)
}

/// The newest split `indexer` sealed: its id and manifest hash, the link the next manifest
/// points at.
pub(crate) fn newest_sealed_manifest(
    storage: &SplitStorage,
    indexer: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let newest = own_split_dirs(storage, indexer)?
        .into_iter()
        .filter_map(|dir| Some((dir.file_name()?.to_str()?.to_owned(), dir)))
        .max_by(|a, b| a.0.cmp(&b.0));
    match newest {
        Some((id, dir)) => Ok(Some((id, manifest_hash(&dir)?))),
        None => Ok(None),
    }
}

/// File naming the newest sealed split and its manifest's hash, under `splits/`: removing the
/// newest split (which no later manifest points at) shows against it. It also anchors the audit
/// log's head (last `seq` and the hash of its line), written at every seal, after every
/// retention pass and at shutdown: a removed tail, day file or edit of the log shows against it.
pub const CHAIN_HEAD_FILE: &str = "chain-head.json";

/// The ends of this indexer's manifest chain and audit chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHead {
    /// The newest sealed split; absent before the first seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// SHA-256 of that split's manifest when it was sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    /// The audit log's last entry when the head was written; absent before the first entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditHead>,
}

impl ChainHead {
    /// The newest sealed split's id and manifest hash, when a split was sealed.
    pub fn split(&self) -> Option<(&str, &str)> {
        Some((self.id.as_deref()?, self.manifest_sha256.as_deref()?))
    }
}

/// Reads the chain head under the split root `root`, if one was written.
pub fn read_chain_head(root: &Path) -> anyhow::Result<Option<ChainHead>> {
    let path = root.join(SPLITS_DIR).join(CHAIN_HEAD_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).with_context(|| format!("invalid {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `indexer`'s chain head into the storage's local root, and publishes it.
pub(crate) fn write_chain_head(
    storage: &SplitStorage,
    indexer: &str,
    head: &ChainHead,
) -> anyhow::Result<()> {
    let bytes = write_local_chain_head(storage, head)?;
    publish_chain_head(storage, indexer, head, &bytes)
}

/// Writes the chain head into the storage's local root (replacing the one there at once);
/// returns the bytes written, for [`publish_chain_head`].
pub(crate) fn write_local_chain_head(storage: &SplitStorage, head: &ChainHead) -> anyhow::Result<Vec<u8>> {
    let dir = storage.root().join(SPLITS_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!("{CHAIN_HEAD_FILE}.tmp"));
    let mut file = fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let bytes = serde_json::to_vec(head)?;
    std::io::Write::write_all(&mut file, &bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(CHAIN_HEAD_FILE))?;
    sync_dir(&dir)?;
    Ok(bytes)
}

/// Publishes `indexer`'s chain `head` (written as `bytes`) to the object store, after the
/// audit entries it anchors; nothing for a store of its own. Safe to repeat.
pub(crate) fn publish_chain_head(
    storage: &SplitStorage,
    indexer: &str,
    head: &ChainHead,
    bytes: &[u8],
) -> anyhow::Result<()> {
    // The published head never anchors audit entries the store does not hold.
    if head.audit.is_some() {
        storage.upload_audit()?;
    }
    storage.publish_chain_head(indexer, bytes)
}

/// Records the audit log's head in `indexer`'s chain head in `storage` (the manifest chain's
/// end is kept). Callers that may run beside a seal hold the catalog's layout lock.
pub fn anchor_audit_head(storage: &SplitStorage, indexer: &str, audit: &AuditLog) -> anyhow::Result<()> {
    let Some(head) = audit.head() else {
        return Ok(());
    };
    let mut chain = read_chain_head(storage.root())?.unwrap_or_default();
    if chain.audit.as_ref() == Some(&head) {
        return Ok(());
    }
    chain.audit = Some(head);
    write_chain_head(storage, indexer, &chain)
        .with_context(|| format!("cannot anchor the audit log's head in {}", storage.url()))
}

/// After a crash between moving a sealed split into place and writing the chain head, the
/// newest manifest points at the head: move the head forward to it.
pub(crate) fn repair_chain_head(storage: &SplitStorage, indexer: &str) -> anyhow::Result<()> {
    let Some((id, hash)) = newest_sealed_manifest(storage, indexer)? else {
        return Ok(());
    };
    let head = read_chain_head(storage.root())?;
    if head
        .as_ref()
        .and_then(ChainHead::split)
        .is_some_and(|(head_id, _)| head_id == id)
    {
        return Ok(());
    }
    let newest = Manifest::read(
        &split_dirs(storage.root())?
            .into_iter()
            .find(|d| d.ends_with(&id))
            .context("newest split")?,
    )?;
    let follows_head = match head.as_ref().and_then(ChainHead::split) {
        Some((head_id, head_hash)) => {
            newest.prev_id.as_deref() == Some(head_id) && newest.prev.as_deref() == Some(head_hash)
        }
        None => newest.prev.is_none(),
    };
    if follows_head {
        write_chain_head(
            storage,
            indexer,
            &ChainHead {
                id: Some(id),
                manifest_sha256: Some(hash),
                audit: head.and_then(|h| h.audit),
            },
        )?;
    }
    Ok(())
}
