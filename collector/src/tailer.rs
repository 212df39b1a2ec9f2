//! Reading log files exactly once while they exist: discovery by glob, identity by
//! [`FileKey`], rename-rotation, copytruncate, deletion and gzip'd rotated files.
//!
//! Every scan the tailer
//! 1. finds candidate files: glob matches (*active* files) and, in the same directories, rotated
//!    siblings named `*.log.*` (`0.log.20261123-101500`, `….gz`);
//! 2. binds every known entry to its file by (device, inode) — a renamed file keeps its inode and
//!    so its read position. A file that no longer holds what was read from it (smaller than the
//!    read position, another first line, or other bytes just before the read position) was
//!    truncated in place: its new content becomes a new entry read from 0 with a new key
//!    ([`FileKey::successor`]), never the old position;
//! 3. gives an entry whose file is gone (or was truncated) the copy of it that a rotation made:
//!    a rotated sibling with the same fingerprint that holds the bytes just before the read
//!    position (logrotate's copy, a gzip'd rotated file);
//! 3. makes a rotated file nobody read a new entry read from 0 when a rotation made it while
//!    the tailer looked away: one not there at the last scan, or (on the first scan after a
//!    restart) one changed after a file its directory's checkpointed entries read. A runtime
//!    rotating at a small `max-size` under a burst creates and rotates a file between two scans,
//!    or while the collector is down. Any other rotated file nobody read is old data, left
//!    alone, and so is a rotated file with the first line of a file being read (a copy that
//!    copytruncate has made but not yet truncated: step 2 of the next scan finishes from it);
//! 4. makes every other active file a new entry read from 0, keyed by fingerprint and inode
//!    ([`FileKey::for_file`]), so two files with the same first line (`0.log` and `1.log` of a
//!    restarted container) are two entries with distinct record ids.
//!
//! Every poll reads every entry from its position up to the read budget, oldest file of a
//! directory first (so a line split across a rotation is merged in order), through the
//! [`LineSplitter`], the runtime [`LogFormat`] (detected from the file's first whole line) and
//! the per-container [`PartialAssembler`].
//!
//! An entry whose file vanished keeps reading its open handle to the end (a deleted file's
//! data is still there), then goes. A gzip'd file is decompressed only when its size trailer
//! says it holds bytes past the entry's position, and then incrementally, within the read
//! budget of each poll like any file. What can no longer be read is counted by [`LossReason`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::file_identity::{FileKey, read_fingerprint};
use crate::line_splitter::{LineSplitter, RawLine};
use crate::partial::{AssembledLine, Origin, PartialAssembler};
use crate::runtime_format::LogFormat;

/// How the tailer reads.
#[derive(Debug, Clone)]
pub struct TailerConfig {
    /// Glob patterns of active log files.
    pub globs: Vec<String>,
    /// Longest line kept; longer ones are cut and flagged.
    pub max_line_bytes: usize,
    /// Most bytes read from one file in one poll (decompressed bytes for a gzip'd file), so one
    /// busy file cannot starve the others and one poll's lines stay a bounded batch.
    pub read_budget: usize,
    /// How often polls look for new, rotated and vanished files; polls in between only read.
    pub scan_interval: Duration,
}

/// A complete line and the file it came from.
#[derive(Debug, Clone)]
pub struct TailedLine {
    pub line: AssembledLine,
    /// The path the file had when first seen (its pod coordinates come from it).
    pub source: Arc<Path>,
}

/// A check that a file still holds what was read from it: the hash of the (at most
/// [`CHECK_WINDOW`]) bytes just before `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentCheck {
    pub end: u64,
    pub len: u32,
    pub hash: u64,
}

/// How many of the last bytes read a [`ContentCheck`] covers.
pub const CHECK_WINDOW: usize = 64;

/// The saved state of one file: what a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// [`FileKey`] as hex: record ids derive from it.
    pub key: String,
    /// Path where the file was first seen.
    pub source: PathBuf,
    /// Path where the file was last seen.
    pub path: PathBuf,
    /// Offset of the first line not yet delivered.
    pub offset: u64,
    /// Size of the file when last seen.
    pub size: u64,
    /// Discovery order: older files of a directory are read first.
    pub seq: u64,
    /// The runtime format; detected again from the first line when `offset` is 0.
    pub format: LogFormat,
    /// Fingerprint ([`FileKey::new`]) as hex. Absent in checkpoints written before identities
    /// held the inode: their key is the fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Device and inode of the file the position is in; absent in old checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    /// What the file held just before the read position (absent in old checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ContentCheck>,
}

pub use crate::losses::{LossReason, Losses};

#[derive(Debug)]
struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
}

/// An open gzip stream and how far into its decompressed bytes it is.
struct GzReader {
    decoder: GzDecoder<File>,
    pos: u64,
}

impl std::fmt::Debug for GzReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzReader")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Entry {
    key: FileKey,
    /// [`FileKey::new`] of the first line, once the file has one.
    fingerprint: Option<FileKey>,
    /// (device, inode) of the file the entry reads; `None` until bound (old checkpoints) or
    /// after its file was truncated.
    inode: Option<(u64, u64)>,
    seq: u64,
    dir: PathBuf,
    source: Arc<Path>,
    path: PathBuf,
    /// `None` until the first whole line has been read.
    format: Option<LogFormat>,
    splitter: LineSplitter,
    size: u64,
    gzip: bool,
    /// Bound to a candidate in the last scan.
    bound: bool,
    reader: Option<OpenFile>,
    gz: Option<GzReader>,
    /// Compressed size of a gzip'd file that failed to decompress: not tried again unless it
    /// changes.
    gz_failed: Option<u64>,
    /// The last bytes read, ending at the splitter's read position.
    window: Vec<u8>,
    /// The check loaded from a checkpoint, used until something is read.
    saved_check: Option<ContentCheck>,
    /// The file was found truncated in place; unless a copy is found, what was unread is lost.
    truncated: bool,
    /// Reading the file failed: what is unread is lost.
    failed: bool,
}

impl Entry {
    /// A new entry reading `found` from 0.
    fn fresh(key: FileKey, found: &Candidate, seq: u64, max_line_bytes: usize) -> Entry {
        Entry {
            key,
            fingerprint: found.fingerprint,
            inode: Some(found.inode()),
            seq,
            dir: found.path.parent().map(Path::to_path_buf).unwrap_or_default(),
            source: Arc::from(found.path.as_path()),
            path: found.path.clone(),
            format: None,
            splitter: LineSplitter::new(max_line_bytes + WRAPPER_ALLOWANCE, 0),
            size: found.size,
            gzip: false,
            bound: true,
            reader: None,
            gz: None,
            gz_failed: None,
            window: Vec::new(),
            saved_check: None,
            truncated: false,
            failed: false,
        }
    }

    /// Returns the check of what was last read, if anything was.
    fn check(&self) -> Option<ContentCheck> {
        if self.window.is_empty() {
            return self.saved_check;
        }
        Some(ContentCheck {
            end: self.splitter.read_pos(),
            len: self.window.len() as u32,
            hash: xxh3_64(&self.window),
        })
    }
}

#[derive(Debug, Clone)]
struct Candidate {
    path: PathBuf,
    active: bool,
    gzip: bool,
    dev: u64,
    ino: u64,
    size: u64,
    born: Option<i128>,
    modified: Option<i128>,
    fingerprint: Option<FileKey>,
}

impl Candidate {
    fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// Counters of one poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollStats {
    pub bytes_read: u64,
    pub lines: u64,
    /// Files truncated in place with no copy to finish from (copytruncate without a copy):
    /// whatever was written between the last read and the truncation is gone; how much is
    /// known only up to the size last seen ([`Losses`]).
    pub truncations: u64,
    /// What was given up on, by reason.
    pub lost: Losses,
}

/// The file-reading engine of the collector.
#[derive(Debug)]
pub struct Tailer {
    config: TailerConfig,
    entries: BTreeMap<FileKey, Entry>,
    assemblers: HashMap<PathBuf, PartialAssembler>,
    next_seq: u64,
    gzip_fingerprints: HashMap<(u64, u64, u64), FileKey>,
    buf: Vec<u8>,
    last_scan: Option<Instant>,
    /// (device, inode) of the rotated files the last scan left alone.
    rotated_unread: HashSet<(u64, u64)>,
}

impl Tailer {
    /// Creates a tailer that resumes from `positions` (empty on first start).
    pub fn new(config: TailerConfig, positions: Vec<FilePosition>) -> Tailer {
        let mut tailer = Tailer {
            entries: BTreeMap::new(),
            assemblers: HashMap::new(),
            next_seq: 0,
            gzip_fingerprints: HashMap::new(),
            buf: vec![0; 256 * 1024],
            last_scan: None,
            rotated_unread: HashSet::new(),
            config,
        };
        for position in positions {
            let Some(key) = FileKey::from_hex(&position.key) else {
                continue;
            };
            // A checkpoint from before keys held the inode: its key is the fingerprint.
            let fingerprint = match &position.fingerprint {
                Some(hex) => FileKey::from_hex(hex),
                None => Some(key),
            };
            let dir = position.path.parent().map(Path::to_path_buf).unwrap_or_default();
            tailer.next_seq = tailer.next_seq.max(position.seq + 1);
            tailer.entries.insert(
                key,
                Entry {
                    key,
                    fingerprint,
                    inode: position.dev.zip(position.ino),
                    seq: position.seq,
                    dir,
                    source: Arc::from(position.source.as_path()),
                    path: position.path,
                    format: (position.offset > 0).then_some(position.format),
                    splitter: LineSplitter::new(
                        tailer.config.max_line_bytes + WRAPPER_ALLOWANCE,
                        position.offset,
                    ),
                    size: position.size,
                    gzip: false,
                    bound: false,
                    reader: None,
                    gz: None,
                    gz_failed: None,
                    window: Vec::new(),
                    saved_check: position.check,
                    truncated: false,
                    failed: false,
                },
            );
        }
        tailer
    }

    /// Reads what the files hold (up to the read budget each), appending complete lines to
    /// `out`; scans for new, rotated and vanished files first when the scan interval has passed.
    pub fn poll(&mut self, out: &mut Vec<TailedLine>) -> PollStats {
        let mut stats = PollStats::default();
        if self
            .last_scan
            .is_none_or(|at| at.elapsed() >= self.config.scan_interval)
        {
            self.scan(&mut stats);
            self.last_scan = Some(Instant::now());
        }
        // A directory's newer file waits while an older one has more than a budget left: the
        // line a rotation split (a docker or CRI partial) is merged in order, never interleaved.
        let mut behind: Vec<PathBuf> = Vec::new();
        for key in self.read_order() {
            match self.entries.get(&key) {
                Some(entry) if !behind.contains(&entry.dir) => {}
                _ => continue,
            }
            let before = stats.bytes_read;
            self.read_entry(key, out, &mut stats);
            if stats.bytes_read - before >= self.config.read_budget as u64
                && let Some(entry) = self.entries.get(&key)
            {
                behind.push(entry.dir.clone());
            }
        }
        self.drop_finished(out, &mut stats);
        stats
    }

    /// Hands out lines still waiting for a continuation chunk (shutdown, `--once`).
    pub fn flush(&mut self, out: &mut Vec<TailedLine>) {
        for (dir, assembler) in &mut self.assemblers {
            let source = self
                .entries
                .values()
                .find(|e| &e.dir == dir)
                .map(|e| e.source.clone())
                .unwrap_or_else(|| Arc::from(dir.as_path()));
            out.extend(assembler.flush().map(|line| TailedLine {
                line,
                source: source.clone(),
            }));
        }
    }

    /// Returns the position of every known file: the first line not yet handed out, held back
    /// to the first chunk of a line still being merged.
    pub fn positions(&self) -> Vec<FilePosition> {
        self.entries
            .values()
            .map(|entry| {
                let held = self
                    .assemblers
                    .get(&entry.dir)
                    .and_then(|a| a.held_offset(entry.key));
                let offset = held.map_or(entry.splitter.line_start(), |h| {
                    h.min(entry.splitter.line_start())
                });
                FilePosition {
                    key: entry.key.to_hex(),
                    source: entry.source.to_path_buf(),
                    path: entry.path.clone(),
                    offset,
                    size: entry.size,
                    seq: entry.seq,
                    format: entry.format.unwrap_or(LogFormat::Plain),
                    fingerprint: entry.fingerprint.map(FileKey::to_hex),
                    dev: entry.inode.map(|(dev, _)| dev),
                    ino: entry.inode.map(|(_, ino)| ino),
                    check: entry.check(),
                }
            })
            .collect()
    }

    /// Updates every known file's size without reading it, so lag stays true while reading is
    /// paused (backpressure).
    pub fn refresh_sizes(&mut self) {
        for entry in self.entries.values_mut() {
            if !entry.gzip
                && let Ok(meta) = std::fs::metadata(&entry.path)
                && entry.inode == Some((meta.dev(), meta.ino()))
            {
                entry.size = meta.len();
            }
        }
    }

    /// Returns the number of files currently known.
    pub fn file_count(&self) -> usize {
        self.entries.len()
    }

    /// Returns the keys of all entries, oldest file of each directory first.
    fn read_order(&self) -> Vec<FileKey> {
        let mut order: Vec<(&Path, u64, FileKey)> = self
            .entries
            .values()
            .map(|e| (e.dir.as_path(), e.seq, e.key))
            .collect();
        order.sort();
        order.into_iter().map(|(_, _, key)| key).collect()
    }

    fn discover(&mut self) -> Vec<Candidate> {
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut active_paths: HashSet<PathBuf> = HashSet::new();
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for pattern in &self.config.globs {
            let Ok(paths) = glob::glob(pattern) else { continue };
            for path in paths.flatten() {
                if active_paths.contains(&path) {
                    continue;
                }
                if let Some(candidate) = candidate(&path, true) {
                    if let Some(dir) = path.parent() {
                        dirs.insert(dir.to_path_buf());
                    }
                    active_paths.insert(path);
                    candidates.push(candidate);
                }
            }
        }
        dirs.extend(self.entries.values().map(|e| e.dir.clone()));
        for dir in &dirs {
            let Ok(listing) = std::fs::read_dir(dir) else {
                continue;
            };
            for item in listing.flatten() {
                let path = item.path();
                let name = item.file_name();
                let name = name.to_string_lossy();
                if name.contains(".log.") && !name.ends_with(".tmp") && !active_paths.contains(&path) {
                    candidates.extend(candidate(&path, false));
                }
            }
        }
        for candidate in &mut candidates {
            candidate.fingerprint = self.fingerprint_of(candidate);
        }
        candidates
    }

    fn scan(&mut self, stats: &mut PollStats) {
        let first_scan = self.last_scan.is_none();
        let candidates = self.discover();
        let by_inode: HashMap<(u64, u64), usize> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (c.inode(), i))
            .collect();
        let mut claimed = vec![false; candidates.len()];
        let order = self.read_order();
        for entry in self.entries.values_mut() {
            entry.bound = false;
        }

        // 1. Every entry to its inode (entries of old checkpoints: to their fingerprint).
        let mut successors: Vec<Entry> = Vec::new();
        for pass_by_inode in [true, false] {
            for key in &order {
                let Some(entry) = self.entries.get_mut(key) else {
                    continue;
                };
                if entry.inode.is_some() != pass_by_inode || entry.truncated {
                    continue;
                }
                let found = match entry.inode {
                    Some(inode) => by_inode.get(&inode).copied().filter(|i| !claimed[*i]),
                    None => migrated_match(entry, &candidates, &claimed),
                };
                let Some(i) = found else { continue };
                let found = &candidates[i];
                claimed[i] = true;
                if !found.gzip && replaced(entry, found) {
                    let successor = Entry {
                        dir: entry.dir.clone(),
                        ..Entry::fresh(
                            entry.key.successor(entry.splitter.read_pos()),
                            found,
                            self.next_seq,
                            self.config.max_line_bytes,
                        )
                    };
                    self.next_seq += 1;
                    tracing::info!(
                        path = %found.path.display(),
                        read = entry.splitter.read_pos(),
                        size = found.size,
                        "log file truncated in place; reading its new content from the start"
                    );
                    entry.truncated = true;
                    entry.inode = None;
                    entry.reader = None;
                    successors.push(successor);
                    continue;
                }
                bind(entry, found);
            }
        }
        for successor in successors {
            self.entries.entry(successor.key).or_insert(successor);
        }

        // 2. An entry whose file is gone (and not open) or truncated to the copy a rotation made.
        for key in &order {
            let Some(entry) = self.entries.get_mut(key) else {
                continue;
            };
            if entry.bound || entry.reader.is_some() {
                continue;
            }
            if let Some(i) = copy_of(entry, &candidates, &claimed) {
                claimed[i] = true;
                entry.truncated = false;
                bind(entry, &candidates[i]);
            }
        }

        // 3. A rotated file a rotation made while the tailer looked away is new, oldest first;
        // 4. so is every other active file. Both are read from 0.
        let fresh_rotated = self.rotated_since_last_look(&candidates, &claimed, first_scan);
        let active: Vec<usize> = (0..candidates.len()).filter(|&i| candidates[i].active).collect();
        for i in fresh_rotated.into_iter().chain(active) {
            let found = &candidates[i];
            if claimed[i] || found.gzip {
                continue;
            }
            let Some(fingerprint) = found.fingerprint else {
                continue;
            };
            let key = FileKey::for_file(fingerprint, found.dev, found.ino, found.born);
            if self.entries.contains_key(&key) {
                continue;
            }
            claimed[i] = true;
            if !found.active {
                tracing::info!(path = %found.path.display(), size = found.size, "reading a log file rotated before it was seen");
            }
            let entry = Entry::fresh(key, found, self.next_seq, self.config.max_line_bytes);
            self.next_seq += 1;
            self.entries.insert(key, entry);
        }
        self.rotated_unread = candidates
            .iter()
            .zip(&claimed)
            .filter(|(found, claimed)| !found.active && !**claimed)
            .map(|(found, _)| found.inode())
            .collect();

        // 5. Truncated without a copy: what was not read is gone.
        let lost: Vec<FileKey> = self
            .entries
            .values()
            .filter(|e| e.truncated && !e.bound)
            .map(|e| e.key)
            .collect();
        for key in lost {
            if let Some(entry) = self.entries.remove(&key) {
                stats.truncations += 1;
                let unread = entry.size.saturating_sub(entry.splitter.read_pos());
                stats.lost.add(LossReason::TruncatedBeforeRead, unread);
                if unread > 0 {
                    tracing::warn!(path = %entry.path.display(), bytes = unread, "log file truncated before it was read to its end; bytes lost");
                }
            }
        }
    }

    /// The plain rotated files nobody reads that a rotation made while the tailer looked away,
    /// oldest first: since the last scan, one not there then; on the first scan, one changed
    /// after a file that a checkpointed entry of its directory reads. A file with the first
    /// line of a file being read is a copy, not new.
    fn rotated_since_last_look(
        &self,
        candidates: &[Candidate],
        claimed: &[bool],
        first_scan: bool,
    ) -> Vec<usize> {
        let being_read: HashSet<FileKey> = self.entries.values().filter_map(|e| e.fingerprint).collect();
        let mut read_since: HashMap<&Path, i128> = HashMap::new();
        for (found, _) in candidates.iter().zip(claimed).filter(|(_, claimed)| **claimed) {
            if let (Some(dir), Some(modified)) = (found.path.parent(), found.modified) {
                let since = read_since.entry(dir).or_insert(modified);
                *since = (*since).min(modified);
            }
        }
        let mut fresh: Vec<usize> = (0..candidates.len())
            .filter(|&i| {
                let found = &candidates[i];
                // `>=`: file times are coarse (a clock tick), and a file written in the tick a
                // read file was last written in was rotated after it started.
                let unseen = if first_scan {
                    let since = found.path.parent().and_then(|dir| read_since.get(dir));
                    since.is_some_and(|since| found.modified.is_some_and(|m| m >= *since))
                } else {
                    !self.rotated_unread.contains(&found.inode())
                };
                !claimed[i]
                    && !found.active
                    && !found.gzip
                    && unseen
                    && found.fingerprint.is_some_and(|f| !being_read.contains(&f))
            })
            .collect();
        fresh.sort_by_key(|&i| (candidates[i].modified, candidates[i].born));
        fresh
    }

    fn fingerprint_of(&mut self, candidate: &Candidate) -> Option<FileKey> {
        let dir = candidate.path.parent()?;
        if candidate.gzip {
            let cache_key = (candidate.dev, candidate.ino, candidate.size);
            if let Some(key) = self.gzip_fingerprints.get(&cache_key) {
                return Some(*key);
            }
            let key = FileKey::new(dir, &read_fingerprint(&candidate.path, true).ok()??);
            self.gzip_fingerprints.insert(cache_key, key);
            return Some(key);
        }
        Some(FileKey::new(
            dir,
            &read_fingerprint(&candidate.path, false).ok()??,
        ))
    }

    fn read_entry(&mut self, key: FileKey, out: &mut Vec<TailedLine>, stats: &mut PollStats) {
        let Tailer {
            entries,
            assemblers,
            buf,
            config,
            ..
        } = self;
        let Some(entry) = entries.get_mut(&key) else {
            return;
        };
        if entry.failed {
            return;
        }
        let assembler = assemblers
            .entry(entry.dir.clone())
            .or_insert_with(|| PartialAssembler::new(config.max_line_bytes));
        let mut format = entry.format;
        let source = entry.source.clone();
        let mut cut_lines = 0;
        let mut emit = |raw: RawLine<'_>| {
            // The format is detected from the first whole line (up to the splitter's bound),
            // however long: a 16 KiB docker partial is a docker line, not plain text.
            let format = *format.get_or_insert_with(|| LogFormat::detect(raw.bytes));
            let line = format.unwrap_line(raw.bytes);
            if let Some(line) = assembler.push(
                Origin {
                    file: key,
                    offset: raw.start,
                },
                &line,
                raw.truncated,
            ) {
                cut_lines += u64::from(line.truncated);
                out.push(TailedLine {
                    line,
                    source: source.clone(),
                });
            }
        };

        if entry.gzip {
            if entry.bound {
                read_gzip(entry, buf, config.read_budget, &mut emit, stats);
            }
        } else {
            read_plain(entry, buf, config.read_budget, &mut emit, stats);
        }
        entry.format = format;
        let cut = entry.splitter.take_cut() + assembler.take_cut();
        if cut_lines > 0 || cut > 0 {
            stats.lost.add_many(LossReason::LineTooLong, cut_lines, cut);
        }
    }

    /// Forgets files that are gone and fully read (counting what was not read); flushes a
    /// directory's unfinished lines when its last file goes.
    fn drop_finished(&mut self, out: &mut Vec<TailedLine>, stats: &mut PollStats) {
        let gone: Vec<FileKey> = self
            .entries
            .values()
            .filter(|e| !e.bound && e.reader.is_none() && e.gz.is_none())
            .map(|e| e.key)
            .collect();
        for key in gone {
            let Some(entry) = self.entries.remove(&key) else {
                continue;
            };
            let unread = entry.size.saturating_sub(entry.splitter.read_pos());
            if unread > 0 || entry.failed {
                let reason = if entry.failed {
                    LossReason::Unreadable
                } else {
                    LossReason::DeletedBeforeRead
                };
                tracing::warn!(
                    path = %entry.path.display(),
                    bytes = unread,
                    reason = reason.as_str(),
                    "log file gone before it was read to its end; bytes lost"
                );
                stats.lost.add(reason, unread);
            }
            if !self.entries.values().any(|e| e.dir == entry.dir)
                && let Some(mut assembler) = self.assemblers.remove(&entry.dir)
            {
                out.extend(assembler.flush().map(|line| TailedLine {
                    line,
                    source: entry.source.clone(),
                }));
            }
        }
    }
}

/// Reads the next part of a plain entry, at most `budget` bytes; a vanished file read to its
/// end (or unreadable) hands out its unterminated tail and closes.
fn read_plain(
    entry: &mut Entry,
    buf: &mut [u8],
    budget: usize,
    emit: &mut impl FnMut(RawLine<'_>),
    stats: &mut PollStats,
) {
    if entry.reader.is_none() {
        let Some((dev, ino)) = entry.inode.filter(|_| entry.bound) else {
            return;
        };
        match File::open(&entry.path) {
            Ok(file) => match file.metadata() {
                Ok(meta) if (meta.dev(), meta.ino()) == (dev, ino) => {
                    entry.reader = Some(OpenFile { file, dev, ino });
                }
                _ => return,
            },
            Err(_) => return,
        }
    }
    let Some(reader) = entry.reader.as_mut() else {
        return;
    };
    if reader
        .file
        .seek(SeekFrom::Start(entry.splitter.read_pos()))
        .is_err()
    {
        return;
    }
    let mut budget = budget;
    let mut failed = false;
    while budget > 0 {
        let want = buf.len().min(budget);
        match reader.file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                budget -= n;
                stats.bytes_read += n as u64;
                entry.splitter.push(&buf[..n], emit);
                remember(&mut entry.window, &buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::warn!(path = %entry.path.display(), %error, "cannot read log file");
                failed = true;
                break;
            }
        }
    }
    if !entry.bound && (budget > 0 || failed) {
        // Vanished and read to its end (or unreadable): the unterminated tail will never grow.
        entry.splitter.finish(emit);
        entry.reader = None;
        entry.failed = failed;
    }
}

/// Keeps the last [`CHECK_WINDOW`] bytes read in `window` (`chunk` was just read).
fn remember(window: &mut Vec<u8>, chunk: &[u8]) {
    if chunk.len() >= CHECK_WINDOW {
        window.clear();
        window.extend_from_slice(&chunk[chunk.len() - CHECK_WINDOW..]);
    } else {
        window.extend_from_slice(chunk);
        let excess = window.len().saturating_sub(CHECK_WINDOW);
        window.drain(..excess);
    }
}

/// Room for the runtime's wrapper (CRI prefix, docker JSON escaping) on top of `max_line_bytes`.
const WRAPPER_ALLOWANCE: usize = 64 * 1024;

fn candidate(path: &Path, active: bool) -> Option<Candidate> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let gzip = path.extension().is_some_and(|e| e == "gz");
    let nanos = |t: io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
    };
    let born = nanos(meta.created());
    let modified = nanos(meta.modified());
    Some(Candidate {
        path: path.to_path_buf(),
        active,
        gzip,
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.len(),
        born,
        modified,
        fingerprint: None,
    })
}

/// Points `entry` at `found` for this scan.
fn bind(entry: &mut Entry, found: &Candidate) {
    if entry
        .reader
        .as_ref()
        .is_some_and(|r| (r.dev, r.ino) != found.inode())
    {
        entry.reader = None;
    }
    if entry.inode != Some(found.inode()) {
        entry.gz = None;
    }
    if entry.fingerprint.is_none() {
        entry.fingerprint = found.fingerprint;
    }
    entry.inode = Some(found.inode());
    entry.bound = true;
    entry.path = found.path.clone();
    entry.gzip = found.gzip;
    // A gzip'd file's size is what it decompresses to (its trailer), like the file it was.
    entry.size = if found.gzip {
        gzip_size(&found.path).map_or(found.size, u64::from)
    } else {
        found.size
    };
}

/// Returns true when `found`, the file `entry` was reading, no longer holds what was read from
/// it: it is smaller than the read position, starts with another line, or holds other bytes
/// just before the read position (it was truncated and written again past that point). A
/// position from a checkpoint without a check must at least follow a `\n`.
fn replaced(entry: &Entry, found: &Candidate) -> bool {
    let read = entry.splitter.read_pos();
    if found.size < read {
        return true;
    }
    if let (Some(was), Some(now)) = (entry.fingerprint, found.fingerprint)
        && was != now
    {
        return true;
    }
    if read == 0 {
        return false;
    }
    let opened;
    let file = match &entry.reader {
        Some(reader) if (reader.dev, reader.ino) == found.inode() => &reader.file,
        _ => match File::open(&found.path) {
            Ok(file) => {
                opened = file;
                &opened
            }
            // Cannot look: let reading find out.
            Err(_) => return false,
        },
    };
    match entry.check() {
        Some(check) => !holds(file, check),
        None if entry.splitter.line_start() == read => {
            let mut before = [0u8; 1];
            file.read_exact_at(&mut before, read - 1).is_ok() && before[0] != b'\n'
        }
        None => false,
    }
}

/// Returns true when `file` holds the bytes `check` describes.
fn holds(file: &File, check: ContentCheck) -> bool {
    let mut bytes = vec![0u8; check.len as usize];
    let Some(start) = check.end.checked_sub(bytes.len() as u64) else {
        return false;
    };
    file.read_exact_at(&mut bytes, start).is_ok() && xxh3_64(&bytes) == check.hash
}

/// Returns true when the gzip'd file at `path` holds the bytes `check` describes (decompressing
/// up to `check.end`: done once, when a copy is chosen).
fn gzip_holds(path: &Path, check: ContentCheck) -> bool {
    let Ok(file) = File::open(path) else { return false };
    let mut decoder = GzDecoder::new(file);
    let start = check.end - u64::from(check.len);
    let skipped = io::copy(&mut (&mut decoder).take(start), &mut io::sink()).unwrap_or(0);
    if skipped < start {
        return false;
    }
    let mut bytes = vec![0u8; check.len as usize];
    decoder.read_exact(&mut bytes).is_ok() && xxh3_64(&bytes) == check.hash
}

/// Finds the file an entry of an old checkpoint (keyed by fingerprint) is in, as then: the
/// plain file before its compressed copy, the active path, the longest copy.
fn migrated_match(entry: &Entry, candidates: &[Candidate], claimed: &[bool]) -> Option<usize> {
    let fingerprint = entry.fingerprint?;
    candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| !claimed[*i] && c.fingerprint == Some(fingerprint))
        .min_by_key(|(_, c)| (c.gzip, !c.active, std::cmp::Reverse(c.size)))
        .map(|(i, _)| i)
}

/// Finds the rotated copy of a gone or truncated entry's file: a rotated sibling with its
/// fingerprint that holds the bytes just before its read position. Siblings named after the
/// entry's file come first, then plain files before compressed ones, then the longest.
fn copy_of(entry: &Entry, candidates: &[Candidate], claimed: &[bool]) -> Option<usize> {
    let fingerprint = entry.fingerprint?;
    let read = entry.splitter.read_pos();
    let prefix = entry
        .source
        .file_name()
        .map(|n| format!("{}.", n.to_string_lossy()));
    let named = |c: &Candidate| {
        prefix.as_ref().is_some_and(|p| {
            c.path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(p.as_str()))
        })
    };
    let mut found: Vec<usize> = (0..candidates.len())
        .filter(|i| {
            let c = &candidates[*i];
            !claimed[*i]
                && !c.active
                && c.fingerprint == Some(fingerprint)
                && c.path.parent() == Some(entry.dir.as_path())
                && (c.gzip || c.size >= read)
        })
        .collect();
    found.sort_by_key(|i| {
        let c = &candidates[*i];
        (!named(c), c.gzip, std::cmp::Reverse(c.size))
    });
    let check = entry.check();
    found.into_iter().find(|i| {
        let c = &candidates[*i];
        match check {
            None => true,
            Some(check) if c.gzip => gzip_holds(&c.path, check),
            Some(check) => File::open(&c.path).is_ok_and(|file| holds(&file, check)),
        }
    })
}

/// Returns the uncompressed size (mod 2^32) from a gzip file's trailer.
fn gzip_size(path: &Path) -> Option<u32> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::End(-4)).ok()?;
    let mut trailer = [0u8; 4];
    file.read_exact(&mut trailer).ok()?;
    Some(u32::from_le_bytes(trailer))
}

/// Reads the next part of a gzip'd entry, at most `budget` decompressed bytes (skipping to the
/// entry's position counts too): a big rotated file is read over many polls with the memory of
/// one, and backpressure pauses it like any file.
fn read_gzip(
    entry: &mut Entry,
    buf: &mut [u8],
    budget: usize,
    emit: &mut impl FnMut(RawLine<'_>),
    stats: &mut PollStats,
) {
    if entry.gz.is_none() {
        let compressed = std::fs::metadata(&entry.path).map(|m| m.len()).ok();
        let unread = gzip_size(&entry.path).is_some_and(|size| size != entry.splitter.read_pos() as u32);
        if !unread || (entry.gz_failed.is_some() && entry.gz_failed == compressed) {
            return;
        }
        match File::open(&entry.path) {
            Ok(file) => {
                entry.gz = Some(GzReader {
                    decoder: GzDecoder::new(file),
                    pos: 0,
                });
            }
            Err(error) => {
                tracing::warn!(path = %entry.path.display(), %error, "cannot read log file");
                return;
            }
        }
    }
    let Some(gz) = entry.gz.as_mut() else { return };
    let mut budget = budget;
    let target = entry.splitter.read_pos();
    let result = loop {
        if budget == 0 {
            break Ok(false);
        }
        let want = buf.len().min(budget);
        match gz.decoder.read(&mut buf[..want]) {
            Ok(0) => break Ok(true),
            Ok(n) => {
                budget -= n;
                let start = gz.pos;
                gz.pos += n as u64;
                if gz.pos <= target {
                    continue;
                }
                // Only the bytes past the entry's position are new.
                let new = &buf[(target.max(start) - start) as usize..n];
                stats.bytes_read += new.len() as u64;
                entry.splitter.push(new, emit);
                remember(&mut entry.window, new);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    match result {
        Ok(false) => {}
        Ok(true) => {
            if gz.pos >= target {
                entry.splitter.finish(emit);
            }
            entry.gz = None;
        }
        Err(error) => {
            let size = gzip_size(&entry.path).map_or(0, u64::from);
            let unread = size.saturating_sub(entry.splitter.read_pos());
            tracing::warn!(path = %entry.path.display(), %error, bytes = unread, "cannot decompress rotated log file; bytes lost");
            entry.splitter.finish(emit);
            entry.gz = None;
            entry.gz_failed = std::fs::metadata(&entry.path).map(|m| m.len()).ok();
            stats.lost.add(LossReason::Unreadable, unread);
        }
    }
}
