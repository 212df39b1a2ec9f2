//! The audit log (DESIGN §4.3): every search, tail, stats and hold call — who, role, when, the
//! parameters, the result count, the tiers searched, the duration — appended to
//! `<data-dir>/audit/audit-<YYYY-MM-DD>.jsonl` (one file per UTC day), never rewritten.
//!
//! Entries are hash-chained: each carries `seq` (0, 1, 2 … across files) and `prev`, the SHA-256
//! of the previous entry's line (64 zeros for the first), so a removed or altered entry breaks
//! the chain. Every entry is fsync'd before the API answers: a call that cannot be recorded
//! fails. The directory is fsync'd when a day's file is created.
//!
//! The end of the chain is anchored outside the log: [`AuditLog::head`] (last `seq`, SHA-256 of
//! its line) goes into the store's chain head at every seal, retention pass and shutdown, so
//! [`verify_chain_to`] sees a removed tail, a removed or truncated day file and an edited last
//! entry, which the chain alone cannot show.
//!
//! Opening the log checks its newest file: only a torn final line (no trailing `\n`: a crash
//! mid-write, so never acknowledged) is cut, and the cut is itself recorded (`audit.repair`);
//! any other damage refuses the open with the file and line.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use corral_schema::Timestamp;
use fs4::fs_std::FileExt as _;
use serde::{Deserialize, Serialize};

use crate::manifest::{sha256_hex, sync_dir};

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
    /// The namespaces the caller's token is scoped to; absent for a token that sees all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
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

/// The last entry of the chain: what the chain head anchors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    pub seq: u64,
    /// SHA-256 of the entry's line (without its `\n`): the next entry's `prev`.
    pub sha256: String,
}

/// Who the log's own repairs are recorded as.
pub const AUDIT_ACTOR: &str = "indexer";

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
    if !crate::disk::exists(dir)? {
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

/// The `seq` of the first entry of an audit file (`None` when it holds none).
fn first_seq(path: &Path) -> anyhow::Result<Option<u64>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        return Ok(serde_json::from_str::<Stored>(&line)
            .ok()
            .map(|stored| stored.seq));
    }
    Ok(None)
}

/// A final line without its `\n`, where a crash stopped a write.
struct TornLine {
    file: PathBuf,
    /// 1-based line number.
    line: usize,
    /// Where the line starts.
    offset: u64,
    bytes: Vec<u8>,
}

/// The chain's head as the newest non-empty file ends, and its torn final line if it has one.
/// Every other line of the files read must be an entry chained to the one before.
fn read_head(dir: &Path) -> anyhow::Result<(Head, Option<TornLine>)> {
    let mut torn = None;
    let mut newest = true;
    for file in segments(dir)?.into_iter().rev() {
        let bytes = fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        if bytes.is_empty() {
            continue;
        }
        let damaged = |line: usize, what: String| {
            anyhow::anyhow!(
                "the audit log is damaged: {} line {line}: {what}; the indexer does not append to a damaged log (restore the file, then run corral-indexer verify)",
                file.display()
            )
        };
        let mut last: Option<(Stored, &[u8])> = None;
        let mut offset = 0usize;
        for (n, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            let Some(body) = line.strip_suffix(b"\n") else {
                if !newest {
                    return Err(damaged(
                        n + 1,
                        "a line without its newline ends a file older than the newest".into(),
                    ));
                }
                torn = Some(TornLine {
                    file: file.clone(),
                    line: n + 1,
                    offset: offset as u64,
                    bytes: line.to_vec(),
                });
                break;
            };
            offset += line.len();
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let stored: Stored = serde_json::from_slice(body)
                .map_err(|e| damaged(n + 1, format!("not an audit entry ({e})")))?;
            if let Some((prev, prev_body)) = &last
                && (stored.seq != prev.seq + 1 || stored.prev != sha256_hex(prev_body))
            {
                return Err(damaged(
                    n + 1,
                    format!(
                        "the chain breaks at entry {} (expected entry {} after the line before)",
                        stored.seq,
                        prev.seq + 1
                    ),
                ));
            }
            last = Some((stored, body));
        }
        newest = false;
        if let Some((stored, body)) = last {
            let head = Head {
                next_seq: stored.seq + 1,
                last_hash: sha256_hex(body),
                last_at: Some(stored.entry.at),
            };
            return Ok((head, torn));
        }
    }
    let empty = Head {
        next_seq: 0,
        last_hash: GENESIS.to_owned(),
        last_at: None,
    };
    Ok((empty, torn))
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
                "the data dir {} is in use by another process (an indexer serving it, or a retention pass): it holds the lock {}; stop it first",
                data_dir.display(),
                lock_path.display()
            );
        }
        let (head, torn) = read_head(&dir)?;
        let log = AuditLog {
            dir,
            head: Mutex::new(head),
            _lock: lock,
        };
        if let Some(torn) = torn {
            log.cut_torn_line(&torn)?;
        }
        Ok(log)
    }

    /// Cuts the torn final line of the newest file and records the cut.
    fn cut_torn_line(&self, torn: &TornLine) -> anyhow::Result<()> {
        let name = torn
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        tracing::warn!(file = %torn.file.display(), line = torn.line, bytes = torn.bytes.len(), "cutting a torn last line (a crash mid-write) off the audit log");
        let file = OpenOptions::new()
            .write(true)
            .open(&torn.file)
            .with_context(|| format!("cannot open {}", torn.file.display()))?;
        file.set_len(torn.offset)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot cut the torn last line of {}", torn.file.display()))?;
        let text = String::from_utf8_lossy(&torn.bytes);
        let params = BTreeMap::from([
            ("file".to_owned(), name),
            ("line".to_owned(), torn.line.to_string()),
            ("bytes_cut".to_owned(), torn.bytes.len().to_string()),
            ("cut_sha256".to_owned(), sha256_hex(&torn.bytes)),
            ("cut_text".to_owned(), text.chars().take(1024).collect()),
        ]);
        self.append(Entry {
            at: Timestamp::now(),
            who: AUDIT_ACTOR.to_owned(),
            role: "system".to_owned(),
            action: "audit.repair".to_owned(),
            params,
            count: 1,
            tiers: Vec::new(),
            took_ms: 0,
            refused: None,
            namespaces: None,
        })
        .context("cannot record the cut of a torn audit line")?;
        Ok(())
    }

    /// Checks that the log still holds `anchor`, the head recorded outside it (in
    /// `anchored_in`), as it was. A log that lost entries (a removed tail or day file, a
    /// truncation) or was rewritten below the anchor must not be continued: the next anchor
    /// would hide the loss.
    pub fn check_anchor(&self, anchor: &AuditHead, anchored_in: &Path) -> anyhow::Result<()> {
        let refuse = |what: String| {
            anyhow::anyhow!(
                "the audit log in {} {what}, but {} anchored entry {} (SHA-256 {}): the indexer does not continue a log that lost or changed entries; restore them, then run corral-indexer verify",
                self.dir.display(),
                anchored_in.display(),
                anchor.seq,
                anchor.sha256
            )
        };
        let head = self.head();
        let last = match &head {
            None => return Err(refuse("holds no entry".into())),
            Some(head) if head.seq < anchor.seq => {
                return Err(refuse(format!("ends at entry {}", head.seq)));
            }
            Some(head) => head,
        };
        let hash = if last.seq == anchor.seq {
            Some(last.sha256.clone())
        } else {
            self.entry_hash(anchor.seq)?
        };
        match hash {
            Some(hash) if hash == anchor.sha256 => Ok(()),
            Some(hash) => Err(refuse(format!(
                "holds another entry {} (SHA-256 {hash})",
                anchor.seq
            ))),
            None => Err(refuse(format!("has no entry {}", anchor.seq))),
        }
    }

    /// SHA-256 of the line of entry `seq`, searching the newest files first.
    fn entry_hash(&self, seq: u64) -> anyhow::Result<Option<String>> {
        for path in segments(&self.dir)?.into_iter().rev() {
            let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let mut first = None;
            for line in BufReader::new(file).lines() {
                let line = line.with_context(|| format!("cannot read {}", path.display()))?;
                let Ok(stored) = serde_json::from_str::<Stored>(&line) else {
                    continue;
                };
                first.get_or_insert(stored.seq);
                if stored.seq == seq {
                    return Ok(Some(sha256_hex(line.as_bytes())));
                }
            }
            // Files hold the chain in order: an older one may hold it only if this one starts
            // after it.
            if first.is_some_and(|first| first < seq) {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// The last entry written, or `None` while the log is empty.
    pub fn head(&self) -> Option<AuditHead> {
        let head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        (head.next_seq > 0).then(|| AuditHead {
            seq: head.next_seq - 1,
            sha256: head.last_hash.clone(),
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
        // A new day's file: its directory entry is made durable too.
        let (mut file, created) = match OpenOptions::new().append(true).create_new(true).open(&path) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (
                OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
                false,
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        };
        if created {
            sync_dir(&self.dir).with_context(|| format!("cannot sync {}", self.dir.display()))?;
        }
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

    /// The lines of the entries after `after` (from the first with `None`) up to the head,
    /// oldest first, as stored (without their `\n`), until about `max_bytes` are read. Only
    /// entries the head already counts are read: a line being written is never seen half.
    pub fn lines_after(&self, after: Option<u64>, max_bytes: usize) -> anyhow::Result<Vec<(u64, String)>> {
        let Some(head) = self.head() else {
            return Ok(Vec::new());
        };
        let want = after.map_or(0, |after| after + 1);
        if want > head.seq {
            return Ok(Vec::new());
        }
        let files = segments(&self.dir)?;
        // From the newest file that starts at or before the first entry wanted.
        let mut start = 0;
        for (n, path) in files.iter().enumerate().rev() {
            if first_seq(path)?.is_some_and(|first| first <= want) {
                start = n;
                break;
            }
        }
        let mut lines = Vec::new();
        let mut bytes = 0;
        for path in &files[start..] {
            let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            for line in BufReader::new(file).lines() {
                let line = line.with_context(|| format!("cannot read {}", path.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let stored: Stored = serde_json::from_str(&line)
                    .with_context(|| format!("{} holds a line that is not an audit entry", path.display()))?;
                if stored.seq < want {
                    continue;
                }
                if stored.seq > head.seq {
                    return Ok(lines);
                }
                bytes += line.len() + 1;
                lines.push((stored.seq, line));
                if bytes >= max_bytes || stored.seq == head.seq {
                    return Ok(lines);
                }
            }
        }
        Ok(lines)
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

/// A retention step as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedStep {
    pub seq: u64,
    /// `retention.move`, `retention.rewrite` or `retention.delete`.
    pub action: String,
    pub split: String,
    /// The split's manifest before the step, and after it (not for a deletion).
    pub manifest_sha256: Option<String>,
    pub new_manifest_sha256: Option<String>,
}

/// The retention steps the audit log records, in order.
pub fn retention_steps(dir: &Path) -> anyhow::Result<Vec<RecordedStep>> {
    let mut steps = Vec::new();
    for path in segments(dir)? {
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        for line in BufReader::new(file).lines() {
            let line = line?;
            // Cheap filter first: most entries are queries.
            if !line.contains("\"retention.") {
                continue;
            }
            if let Ok(stored) = serde_json::from_str::<Stored>(&line)
                && stored.entry.who == crate::retention::RETENTION_ACTOR
                && stored.entry.action.starts_with("retention.")
                && let Some(split) = stored.entry.params.get("split")
            {
                steps.push(RecordedStep {
                    seq: stored.seq,
                    action: stored.entry.action.clone(),
                    split: split.clone(),
                    manifest_sha256: stored.entry.params.get("manifest_sha256").cloned(),
                    new_manifest_sha256: stored.entry.params.get("new_manifest_sha256").cloned(),
                });
            }
        }
    }
    Ok(steps)
}

/// Walks the chain of every audit file; `Err` names the file and entry where it breaks.
pub fn verify_chain(dir: &Path) -> anyhow::Result<u64> {
    verify_chain_to(dir, None, "")
}

/// [`verify_chain`], and the chain must hold `anchor` (the head recorded outside the log, in
/// `anchored_by`: "the chain head", "the control topic") as it was: an entry missing there,
/// or a different one, fails naming it.
pub fn verify_chain_to(dir: &Path, anchor: Option<&AuditHead>, anchored_by: &str) -> anyhow::Result<u64> {
    let mut expected_seq = 0;
    let mut prev = GENESIS.to_owned();
    let mut last_file = None;
    for path in segments(dir)? {
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
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
            prev = sha256_hex(line.as_bytes());
            if let Some(anchor) = anchor
                && anchor.seq == stored.seq
                && anchor.sha256 != prev
            {
                anyhow::bail!(
                    "{} line {}: entry {} is not the one {anchored_by} anchored (SHA-256 {}, anchored {}): it was edited, or the log rewritten from there",
                    path.display(),
                    n + 1,
                    stored.seq,
                    prev,
                    anchor.sha256
                );
            }
            expected_seq += 1;
        }
        last_file = Some(path);
    }
    if let Some(anchor) = anchor
        && anchor.seq >= expected_seq
    {
        let ends = match (expected_seq, &last_file) {
            (0, _) | (_, None) => "the log holds no entry".to_owned(),
            (n, Some(file)) => format!("the log ends at entry {} in {}", n - 1, file.display()),
        };
        anyhow::bail!(
            "{ends}, but {anchored_by} anchored entry {} (SHA-256 {}): entries {expected_seq} to {} are gone (a removed tail, a removed or truncated file)",
            anchor.seq,
            anchor.sha256,
            anchor.seq
        );
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
            namespaces: None,
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

        // A torn last line (a crash mid-write) is cut off on open, the cut is recorded, and the
        // chain goes on; an empty newest file is skipped.
        drop(log);
        let newest = dir.path().join(AUDIT_DIR).join("audit-2026-11-23.jsonl");
        let mut torn = fs::OpenOptions::new().append(true).open(&newest).unwrap();
        torn.write_all(b"{\"seq\":3,\"prev\":\"ab").unwrap();
        drop(torn);
        fs::write(dir.path().join(AUDIT_DIR).join("audit-2026-11-24.jsonl"), b"").unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let (repair, _) = log.read(None, None, Some(AUDIT_ACTOR), 10).unwrap();
        assert_eq!(repair.len(), 1);
        assert_eq!(repair[0].seq, 3);
        assert_eq!(repair[0].entry.action, "audit.repair");
        assert_eq!(repair[0].entry.params["file"], "audit-2026-11-23.jsonl");
        assert_eq!(repair[0].entry.params["line"], "3");
        assert_eq!(repair[0].entry.params["bytes_cut"], "19");
        assert_eq!(repair[0].entry.params["cut_text"], "{\"seq\":3,\"prev\":\"ab");
        assert_eq!(log.head().unwrap().seq, 3);
        let at = repair[0].entry.at.to_string();
        assert_eq!(log.append(entry(&at, "dave", "search")).unwrap(), 4);
        assert_eq!(verify_chain(log.dir()).unwrap(), 5);
        // Entries never go back in time.
        assert_eq!(
            log.append(entry("2026-11-23T09:00:00Z", "erin", "search"))
                .unwrap(),
            5
        );
        let (last, _) = log.read(None, None, Some("erin"), 10).unwrap();
        assert_eq!(last[0].entry.at, Timestamp::parse(&at).unwrap());

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

    #[test]
    fn damage_other_than_a_torn_last_line_refuses_the_open_and_cuts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for who in ["alice", "bob", "carol"] {
            log.append(entry("2026-11-23T10:00:00Z", who, "search")).unwrap();
        }
        drop(log);
        let file = dir.path().join(AUDIT_DIR).join("audit-2026-11-23.jsonl");
        let good = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = good.lines().collect();
        for (damaged, want) in [
            (
                format!("{}\n{{not json\n{}\n", lines[0], lines[2]),
                "line 2: not an audit entry",
            ),
            (
                format!("{}\n{}\n", lines[0], lines[2]),
                "line 2: the chain breaks at entry 2",
            ),
        ] {
            fs::write(&file, &damaged).unwrap();
            let error = format!("{:#}", AuditLog::open(dir.path()).unwrap_err());
            assert!(error.contains(&format!("{} {want}", file.display())), "{error}");
            assert_eq!(fs::read_to_string(&file).unwrap(), damaged, "nothing cut");
        }
        // A torn line ending a file older than the newest is damage too.
        fs::write(&file, good.trim_end()).unwrap();
        fs::write(
            dir.path().join(AUDIT_DIR).join("audit-2026-11-24.jsonl"),
            b"{\"seq\":3",
        )
        .unwrap();
        let error = format!("{:#}", AuditLog::open(dir.path()).unwrap_err());
        assert!(error.contains("line 3: a line without its newline"), "{error}");
    }
}
