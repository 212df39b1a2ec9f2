//! The audit log (DESIGN §4.3): every search, tail, stats and hold call — who, role, when, the
//! parameters, the result count, the tiers searched, the duration — appended to
//! `<data-dir>/audit/audit-<YYYY-MM-DD>.jsonl` (one file per UTC day), never rewritten.
//!
//! Entries are hash-chained: each carries `seq` (0, 1, 2 … across files) and `prev`, the SHA-256
//! of the previous entry's line (64 zeros for the first), so a removed or altered entry breaks
//! the chain. Every entry is fsync'd before the API answers: a call that cannot be recorded
//! fails.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use corral_schema::Timestamp;
use fs4::fs_std::FileExt as _;
use serde::{Deserialize, Serialize};

use crate::manifest::sha256_hex;

/// Directory of the audit log, under the data dir.
pub const AUDIT_DIR: &str = "audit";
/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What one API call or retention action was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: Timestamp,
    pub who: String,
    pub role: String,
    /// `search`, `tail`, `stats`, `audit`, `hold.create` …
    pub action: String,
    /// The request's parameters as given.
    pub params: BTreeMap<String, String>,
    /// Records returned (or acted on).
    pub count: u64,
    /// Tiers searched.
    pub tiers: Vec<String>,
    pub took_ms: u64,
    /// Set when the call was refused (400, 401, 403, 429): nothing was searched or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
}

/// Why a call was refused, as its audit entry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The HTTP status answered.
    pub status: u16,
    /// The error message answered (never the presented token).
    pub reason: String,
}

/// An entry as stored: its place in the chain, then the entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub seq: u64,
    pub prev: String,
    #[serde(flatten)]
    pub entry: Entry,
}

struct Head {
    next_seq: u64,
    last_hash: String,
    /// Time of the last entry: entries never go back in time, so day files stay in chain order.
    last_at: Option<Timestamp>,
}

/// The append-only, hash-chained audit log of one indexer.
pub struct AuditLog {
    dir: PathBuf,
    head: Mutex<Head>,
    /// Exclusively locked while the log is open: one writer per chain.
    _lock: File,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dir", &self.dir).finish()
    }
}

/// The audit files of `dir` in chain order (their names sort by date).
pub fn segments(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("audit-") && name.ends_with(".jsonl") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

impl AuditLog {
    /// Opens (creating) the audit log under `data_dir`, continuing the chain where it ends.
    pub fn open(data_dir: &Path) -> anyhow::Result<AuditLog> {
        let dir = data_dir.join(AUDIT_DIR);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock_path = dir.join(".lock");
        let lock =
            File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
        let locked = lock
            .try_lock_exclusive()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        if !locked {
            anyhow::bail!(
                "the audit log in {} is in use by another process (an indexer serving this data dir?); stop it first",
                dir.display()
            );
        }
        let mut head = Head {
            next_seq: 0,
            last_hash: GENESIS.to_owned(),
            last_at: None,
        };
        // The chain continues from the last whole entry of the newest file that has one. A line
        // torn by a crash mid-write is cut off; empty files are skipped.
        for file in segments(&dir)?.into_iter().rev() {
            let text =
                fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut valid_end = 0;
            let mut last = None;
            for line in text.split_inclusive('\n') {
                let body = line.trim_end_matches('\n');
                if !line.ends_with('\n') || serde_json::from_str::<Stored>(body).is_err() {
                    break;
                }
                valid_end += line.len();
                last = Some(body.to_owned());
            }
            if valid_end < text.len() {
                tracing::warn!(file = %file.display(), "cutting a torn last line off the audit log");
                OpenOptions::new()
                    .write(true)
                    .open(&file)?
                    .set_len(valid_end as u64)?;
            }
            if let Some(line) = last {
                let stored: Stored = serde_json::from_str(&line)?;
                head = Head {
                    next_seq: stored.seq + 1,
                    last_hash: sha256_hex(line.as_bytes()),
                    last_at: Some(stored.entry.at),
                };
                break;
            }
        }
        Ok(AuditLog {
            dir,
            head: Mutex::new(head),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends an entry durably; returns its sequence number.
    pub fn append(&self, mut entry: Entry) -> anyhow::Result<u64> {
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        // Callers stamp entries before they take the lock: keep the chain in time order.
        if let Some(last) = head.last_at {
            entry.at = entry.at.max(last);
        }
        let stored = Stored {
            seq: head.next_seq,
            prev: head.last_hash.clone(),
            entry,
        };
        let line = serde_json::to_string(&stored)?;
        let day = stored.entry.at.to_string();
        let path = self
            .dir
            .join(format!("audit-{}.jsonl", &day[..10.min(day.len())]));
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let before = file.metadata()?.len();
        if let Err(error) = file
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_data())
        {
            // Leave no fragment for the next entry to be appended to.
            let _ = file.set_len(before);
            return Err(error).with_context(|| format!("cannot write {}", path.display()));
        }
        head.next_seq += 1;
        head.last_hash = sha256_hex(line.as_bytes());
        head.last_at = Some(stored.entry.at);
        Ok(stored.seq)
    }

    /// Entries between `since` and `until` (inclusive), of `who` if given, oldest first, at
    /// most `limit`; returns them and whether more matched.
    pub fn read(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        who: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<(Vec<Stored>, bool)> {
        let mut out = Vec::new();
        for path in segments(&self.dir)? {
            // A file holds one UTC day: skip days outside the range by name.
            let day = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("audit-"))
                .and_then(|n| n.strip_suffix(".jsonl"))
                .unwrap_or_default()
                .to_owned();
            let day_start = Timestamp::parse(&format!("{day}T00:00:00Z"));
            if let (Some(until), Some(start)) = (until, day_start)
                && start > until
            {
                continue;
            }
            if let (Some(since), Some(start)) = (since, day_start)
                && start.saturating_add_nanos(86_400_000_000_000) <= since
            {
                continue;
            }
            for line in BufReader::new(File::open(&path)?).lines() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let stored: Stored = serde_json::from_str(&line)
                    .with_context(|| format!("{} holds a line that is not an audit entry", path.display()))?;
                let at = stored.entry.at;
                if since.is_some_and(|s| at < s) || until.is_some_and(|u| at > u) {
                    continue;
                }
                if who.is_some_and(|w| stored.entry.who != w) {
                    continue;
                }
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(stored);
            }
        }
        Ok((out, false))
    }
}

/// Ids of the splits the audit log records as deleted by retention (`retention.delete`).
pub fn retention_deletions(dir: &Path) -> anyhow::Result<std::collections::HashSet<String>> {
    let mut deleted = std::collections::HashSet::new();
    for path in segments(dir)? {
        for line in BufReader::new(File::open(&path)?).lines() {
            let line = line?;
            // Cheap filter first: most entries are queries.
            if !line.contains("\"retention.delete\"") {
                continue;
            }
            if let Ok(stored) = serde_json::from_str::<Stored>(&line)
                && stored.entry.action == "retention.delete"
                && let Some(split) = stored.entry.params.get("split")
            {
                deleted.insert(split.clone());
            }
        }
    }
    Ok(deleted)
}

/// Walks the chain of every audit file; `Err` names the file and entry where it breaks.
pub fn verify_chain(dir: &Path) -> anyhow::Result<u64> {
    let mut expected_seq = 0;
    let mut prev = GENESIS.to_owned();
    for path in segments(dir)? {
        for (n, line) in BufReader::new(File::open(&path)?).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let stored: Stored = serde_json::from_str(&line)
                .with_context(|| format!("{} line {}: not an audit entry", path.display(), n + 1))?;
            if stored.seq != expected_seq || stored.prev != prev {
                anyhow::bail!(
                    "{} line {}: the chain breaks at entry {} (expected entry {expected_seq} after {prev})",
                    path.display(),
                    n + 1,
                    stored.seq
                );
            }
            expected_seq += 1;
            prev = sha256_hex(line.as_bytes());
        }
    }
    Ok(expected_seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: &str, who: &str, action: &str) -> Entry {
        Entry {
            at: Timestamp::parse(at).unwrap(),
            who: who.into(),
            role: "auditor".into(),
            action: action.into(),
            params: BTreeMap::from([("corr".to_string(), "req-1".to_string())]),
            count: 3,
            tiers: vec!["hot".into()],
            took_ms: 1,
            refused: None,
        }
    }

    #[test]
    fn entries_chain_across_days_and_restarts_and_tampering_shows() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(
            log.append(entry("2026-11-22T23:59:00Z", "alice", "search"))
                .unwrap(),
            0
        );
        assert_eq!(
            log.append(entry("2026-11-23T00:01:00Z", "bob", "stats")).unwrap(),
            1
        );
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(
            log.append(entry("2026-11-23T10:00:00Z", "alice", "tail"))
                .unwrap(),
            2
        );
        assert_eq!(segments(log.dir()).unwrap().len(), 2);
        assert_eq!(verify_chain(log.dir()).unwrap(), 3);

        let (all, more) = log.read(None, None, None, 100).unwrap();
        assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(!more);
        assert_eq!(all[0].prev, GENESIS);
        let (alice, _) = log.read(None, None, Some("alice"), 100).unwrap();
        assert_eq!(
            alice.iter().map(|s| s.entry.action.as_str()).collect::<Vec<_>>(),
            vec!["search", "tail"]
        );
        let (today, _) = log
            .read(
                Timestamp::parse("2026-11-23T00:00:00Z"),
                Timestamp::parse("2026-11-23T05:00:00Z"),
                None,
                100,
            )
            .unwrap();
        assert_eq!(today.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1]);
        let (first, more) = log.read(None, None, None, 1).unwrap();
        assert_eq!((first.len(), more), (1, true));

        // A torn last line (a crash mid-write) is cut off on open and the chain goes on; an
        // empty newest file is skipped.
        drop(log);
        let newest = dir.path().join(AUDIT_DIR).join("audit-2026-11-23.jsonl");
        let mut torn = fs::OpenOptions::new().append(true).open(&newest).unwrap();
        torn.write_all(b"{\"seq\":3,\"prev\":\"ab").unwrap();
        drop(torn);
        fs::write(dir.path().join(AUDIT_DIR).join("audit-2026-11-24.jsonl"), b"").unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(
            log.append(entry("2026-11-23T11:00:00Z", "dave", "search"))
                .unwrap(),
            3
        );
        assert_eq!(verify_chain(log.dir()).unwrap(), 4);
        // Entries never go back in time.
        assert_eq!(
            log.append(entry("2026-11-23T09:00:00Z", "erin", "search"))
                .unwrap(),
            4
        );
        let (last, _) = log.read(None, None, Some("erin"), 10).unwrap();
        assert_eq!(
            last[0].entry.at,
            Timestamp::parse("2026-11-23T11:00:00Z").unwrap()
        );

        // Altering an entry breaks the chain at the next one.
        let file = log.dir().join("audit-2026-11-22.jsonl");
        let text = fs::read_to_string(&file).unwrap().replace("alice", "mallory");
        fs::write(&file, text).unwrap();
        let error = verify_chain(log.dir()).unwrap_err().to_string();
        assert!(
            error.contains("audit-2026-11-23.jsonl line 1: the chain breaks at entry 1"),
            "{error}"
        );
    }
}
