//! The audit log in the object store (DESIGN §7): each indexer uploads its log as it grows,
//! in immutable chunks `indexers/<id>/audit/audit-<first seq>-<last seq>.jsonl` holding the
//! entries' lines exactly as written, so `verify --storage` checks every indexer's log, and the
//! retention steps a janitor recorded, without any indexer's disk.
//!
//! A chunk is uploaded before the head it reaches is published to the control topic: a
//! published head is always in the store, and a log there that ends before it lost its tail.
//! The uploaded chain only grows: the next chunk must continue the last one uploaded, or
//! nothing more is uploaded (a data dir whose log was replaced does not fork the cluster's copy).

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};

use crate::audit::{AuditLog, Stored};
use crate::manifest::sha256_hex;
use crate::storage::SplitStorage;

/// About how many bytes of entries one chunk holds at most.
const MAX_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// The name of the chunk holding entries `first` to `last`: names sort in chain order.
pub fn chunk_name(first: u64, last: u64) -> String {
    format!("audit-{first:020}-{last:020}.jsonl")
}

/// The entries `(first, last)` a chunk's name says it holds.
pub fn chunk_range(name: &str) -> Option<(u64, u64)> {
    let (first, last) = name
        .strip_prefix("audit-")?
        .strip_suffix(".jsonl")?
        .split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// Where the uploaded chain ends: the last entry's `seq` and the SHA-256 of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Uploaded {
    seq: u64,
    sha256: String,
}

/// Uploads one indexer's audit log to the object store, chunk by chunk.
pub struct AuditUploader {
    indexer: String,
    log: Arc<AuditLog>,
    /// `None` until the store was read; then where the uploaded chain ends (`Some(None)`:
    /// nothing uploaded yet).
    uploaded: Mutex<Option<Option<Uploaded>>>,
}

impl std::fmt::Debug for AuditUploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditUploader")
            .field("indexer", &self.indexer)
            .finish()
    }
}

impl AuditUploader {
    pub fn new(indexer: &str, log: Arc<AuditLog>) -> AuditUploader {
        AuditUploader {
            indexer: indexer.to_owned(),
            log,
            uploaded: Mutex::new(None),
        }
    }

    /// Where the chain uploaded earlier ends, read from its last chunk.
    fn read_uploaded(&self, storage: &SplitStorage) -> anyhow::Result<Option<Uploaded>> {
        let names = storage.audit_chunk_names(&self.indexer)?;
        let Some(name) = names.iter().rev().find(|name| chunk_range(name).is_some()) else {
            return Ok(None);
        };
        let bytes = storage.get_audit_chunk(&self.indexer, name)?;
        let text = String::from_utf8(bytes).with_context(|| format!("audit chunk {name} is not UTF-8"))?;
        let Some(line) = text.lines().rev().find(|line| !line.trim().is_empty()) else {
            bail!("audit chunk {name} of indexer {} holds no entry", self.indexer);
        };
        let stored: Stored = serde_json::from_str(line).with_context(|| {
            format!(
                "audit chunk {name} of indexer {} ends in a line that is not an entry",
                self.indexer
            )
        })?;
        Ok(Some(Uploaded {
            seq: stored.seq,
            sha256: sha256_hex(line.as_bytes()),
        }))
    }

    /// Uploads to `storage` every entry not uploaded yet; returns the last `seq` it holds.
    pub fn upload(&self, storage: &SplitStorage) -> anyhow::Result<Option<u64>> {
        let mut state = self.uploaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut uploaded = match &*state {
            Some(uploaded) => uploaded.clone(),
            None => self.read_uploaded(storage)?,
        };
        *state = Some(uploaded.clone());
        loop {
            let lines = self
                .log
                .lines_after(uploaded.as_ref().map(|u| u.seq), MAX_CHUNK_BYTES)?;
            let (Some((first, line)), Some((last, last_line))) = (lines.first(), lines.last()) else {
                break;
            };
            let stored: Stored = serde_json::from_str(line)?;
            let expected = uploaded.as_ref().map(|u| (u.seq + 1, u.sha256.as_str()));
            let continues = match expected {
                None => stored.seq == 0 && stored.prev == crate::audit::GENESIS,
                Some((seq, prev)) => stored.seq == seq && stored.prev == prev,
            };
            if !continues {
                bail!(
                    "the audit log in {} does not continue the one indexer {} uploaded (the object store's copy ends at entry {}; the next local entry is {}): nothing more is uploaded; restore the data dir's log, then run corral-indexer verify",
                    self.log.dir().display(),
                    self.indexer,
                    uploaded.as_ref().map_or("none".to_owned(), |u| u.seq.to_string()),
                    first
                );
            }
            let mut bytes = Vec::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
            for (_, line) in &lines {
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
            }
            storage.put_audit_chunk(&self.indexer, &chunk_name(*first, *last), bytes)?;
            uploaded = Some(Uploaded {
                seq: *last,
                sha256: sha256_hex(last_line.as_bytes()),
            });
            *state = Some(uploaded.clone());
        }
        Ok(uploaded.map(|u| u.seq))
    }
}

/// Downloads the audit chunks `indexer` uploaded into `dir` (under their names, which the
/// audit module reads as files of a log in chain order); returns how many. A chunk whose
/// name is not a chunk's is a problem, named in `problems`.
pub fn fetch_log(
    storage: &SplitStorage,
    indexer: &str,
    dir: &Path,
    problems: &mut Vec<String>,
) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut fetched = 0;
    for name in storage.audit_chunk_names(indexer)? {
        let Some((first, last)) = chunk_range(&name) else {
            problems.push(format!(
                "audit object {name} of indexer {indexer} is not an audit chunk (audit-<first>-<last>.jsonl): it was added"
            ));
            continue;
        };
        let bytes = storage.get_audit_chunk(indexer, &name)?;
        // The entries a chunk holds must be the ones its name says: a chunk cut short shows
        // here even when the chain goes on after it.
        let text = String::from_utf8_lossy(&bytes);
        let seqs: Vec<u64> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| serde_json::from_str::<Stored>(line).ok().map(|s| s.seq))
            .collect();
        if seqs.first() != Some(&first) || seqs.last() != Some(&last) {
            problems.push(format!(
                "audit chunk {name} of indexer {indexer} holds entries {} to {}, not {first} to {last}: it was cut short or altered",
                seqs.first().map_or("none".to_owned(), u64::to_string),
                seqs.last().map_or("none".to_owned(), u64::to_string),
            ));
        }
        std::fs::write(dir.join(&name), &bytes)
            .with_context(|| format!("cannot write {}", dir.join(&name).display()))?;
        fetched += 1;
    }
    Ok(fetched)
}

/// Restores `indexer`'s audit log from the store into `dir`, the audit directory of a data dir
/// that holds no entry (lost and started again): each entry, byte for byte, into the file of
/// its UTC day. The chain must be whole; returns how many entries were restored.
pub fn restore_log(storage: &SplitStorage, indexer: &str, dir: &Path) -> anyhow::Result<u64> {
    let scratch = dir.join(".restore");
    if crate::disk::exists(&scratch)? {
        std::fs::remove_dir_all(&scratch)?;
    }
    let mut problems = Vec::new();
    fetch_log(storage, indexer, &scratch, &mut problems)?;
    if !problems.is_empty() {
        bail!(
            "cannot restore the audit log of indexer {indexer} from the store: {}",
            problems.join("; ")
        );
    }
    let entries = crate::audit::verify_chain(&scratch)
        .with_context(|| format!("cannot restore the audit log of indexer {indexer} from the store"))?;
    let mut days: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for path in crate::audit::segments(&scratch)? {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let stored: Stored = serde_json::from_str(line)?;
            let at = stored.entry.at.to_string();
            let day = days.entry(at[..10.min(at.len())].to_owned()).or_default();
            day.extend_from_slice(line.as_bytes());
            day.push(b'\n');
        }
    }
    for (day, bytes) in days {
        let path = dir.join(format!("audit-{day}.jsonl"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.sync_all()?;
    }
    crate::manifest::sync_dir(dir)?;
    std::fs::remove_dir_all(&scratch)?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::audit::Entry;
    use crate::storage::StorageUrl;

    fn search(log: &AuditLog, who: &str) {
        log.append(Entry {
            at: corral_schema::Timestamp::now(),
            who: who.into(),
            role: "reader".into(),
            action: "search".into(),
            params: BTreeMap::new(),
            count: 1,
            tiers: vec!["hot".into()],
            took_ms: 0,
            refused: None,
            namespaces: None,
        })
        .unwrap();
    }

    #[test]
    fn the_log_is_uploaded_in_chunks_that_continue_each_other_and_a_replaced_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let memory: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let url: StorageUrl = "s3://bucket/cluster".parse().unwrap();
        let storage = SplitStorage::remote(url, memory, "cluster", &dir.path().join("cache")).unwrap();
        let log = Arc::new(AuditLog::open(&dir.path().join("a")).unwrap());
        let uploader = AuditUploader::new("indexer-0", Arc::clone(&log));
        assert_eq!(uploader.upload(&storage).unwrap(), None, "nothing to upload yet");
        for who in ["alice", "bob", "carol"] {
            search(&log, who);
        }
        assert_eq!(uploader.upload(&storage).unwrap(), Some(2));
        assert_eq!(
            uploader.upload(&storage).unwrap(),
            Some(2),
            "nothing new, nothing uploaded"
        );
        search(&log, "dave");
        search(&log, "erin");
        assert_eq!(uploader.upload(&storage).unwrap(), Some(4));
        assert_eq!(
            storage.audit_chunk_names("indexer-0").unwrap(),
            vec![chunk_name(0, 2), chunk_name(3, 4)]
        );
        // Another process (a restart) reads where the store's copy ends and goes on from there.
        search(&log, "frank");
        let again = AuditUploader::new("indexer-0", Arc::clone(&log));
        assert_eq!(again.upload(&storage).unwrap(), Some(5));
        let fetched = dir.path().join("fetched");
        let mut problems = Vec::new();
        assert_eq!(
            fetch_log(&storage, "indexer-0", &fetched, &mut problems).unwrap(),
            3
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(crate::audit::verify_chain(&fetched).unwrap(), 6);
        assert_eq!(storage.audited_indexers().unwrap(), vec!["indexer-0".to_owned()]);

        // A data dir whose log was replaced (lost, started again) does not fork the store's copy.
        let other = Arc::new(AuditLog::open(&dir.path().join("b")).unwrap());
        for n in 0..8 {
            search(&other, &format!("user-{n}"));
        }
        let replaced = AuditUploader::new("indexer-0", other);
        let error = format!("{:#}", replaced.upload(&storage).unwrap_err());
        assert!(
            error.contains("does not continue the one indexer indexer-0 uploaded")
                && error.contains("ends at entry 5"),
            "{error}"
        );
        assert_eq!(
            storage.audit_chunk_names("indexer-0").unwrap().len(),
            3,
            "nothing more uploaded"
        );

        // A data dir lost: its log comes back from the store, and goes on from there.
        let lost = dir.path().join("lost");
        std::fs::create_dir_all(lost.join(crate::audit::AUDIT_DIR)).unwrap();
        assert_eq!(
            restore_log(&storage, "indexer-0", &lost.join(crate::audit::AUDIT_DIR)).unwrap(),
            6
        );
        let restored = Arc::new(AuditLog::open(&lost).unwrap());
        assert_eq!(restored.head(), log.head(), "the same chain, to the same entry");
        search(&restored, "grace");
        let after = AuditUploader::new("indexer-0", restored);
        assert_eq!(after.upload(&storage).unwrap(), Some(6));
    }

    #[test]
    fn chunk_names_sort_in_chain_order_and_parse_back() {
        let names = [chunk_name(9, 10), chunk_name(11, 200), chunk_name(0, 8)];
        let mut sorted = names.to_vec();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![chunk_name(0, 8), chunk_name(9, 10), chunk_name(11, 200)]
        );
        assert_eq!(chunk_range(&chunk_name(11, 200)), Some((11, 200)));
        assert_eq!(chunk_range("audit-2026-12-01.jsonl"), None);
        assert!(chunk_name(0, 1).starts_with("audit-") && chunk_name(0, 1).ends_with(".jsonl"));
    }
}
