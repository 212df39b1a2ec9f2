//! Reading log files exactly once while they exist: discovery by glob, identity by
//! [`FileKey`], rename-rotation, copytruncate, deletion and gzip'd rotated files.
//!
//! Every poll the tailer
//! 1. finds candidate files: glob matches (*active* files) and, in the same directories, rotated
//!    siblings named `*.log.*` (`0.log.20261123-101500`, `….gz`);
//! 2. keys each candidate by its first line and binds it to the entry of that key — a renamed,
//!    copied or compressed file keeps its key and so its read position; a new active file gets a
//!    new entry read from 0; a rotated file nobody read before is left alone (it is old data);
//! 3. reads every entry from its position, oldest file of a directory first (so a line split
//!    across a rotation is merged in order), through the [`LineSplitter`], the runtime
//!    [`LogFormat`] and the per-container [`PartialAssembler`].
//!
//! An entry whose file vanished keeps reading its open handle to the end (a deleted file's
//! data is still there), then goes. A gzip'd file is decompressed only when its size trailer
//! says it holds bytes past the entry's position.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};

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
    /// Most bytes read from one file in one poll, so one busy file cannot starve the others
    /// and one poll's lines stay a bounded batch.
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

/// The saved state of one file: what a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// [`FileKey`] as hex.
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
    pub format: LogFormat,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
}

#[derive(Debug)]
struct Entry {
    key: FileKey,
    seq: u64,
    dir: PathBuf,
    source: Arc<Path>,
    path: PathBuf,
    format: LogFormat,
    splitter: LineSplitter,
    size: u64,
    gzip: bool,
    /// Bound to a candidate in the last scan.
    bound: Option<(u64, u64)>,
    reader: Option<OpenFile>,
}

#[derive(Debug, Clone)]
struct Candidate {
    path: PathBuf,
    active: bool,
    gzip: bool,
    dev: u64,
    ino: u64,
    size: u64,
}

/// Counters of one poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollStats {
    pub bytes_read: u64,
    pub lines: u64,
    /// Files truncated in place with no copy to finish from (copytruncate without a copy):
    /// whatever was written between the last read and the truncation is gone, and how much
    /// cannot be known.
    pub truncations: u64,
}

/// The file-reading engine of the collector.
#[derive(Debug)]
pub struct Tailer {
    config: TailerConfig,
    entries: BTreeMap<FileKey, Entry>,
    assemblers: HashMap<PathBuf, PartialAssembler>,
    next_seq: u64,
    gzip_keys: HashMap<(u64, u64, u64), FileKey>,
    buf: Vec<u8>,
    last_scan: Option<Instant>,
}

impl Tailer {
    /// Creates a tailer that resumes from `positions` (empty on first start).
    pub fn new(config: TailerConfig, positions: Vec<FilePosition>) -> Tailer {
        let mut tailer = Tailer {
            entries: BTreeMap::new(),
            assemblers: HashMap::new(),
            next_seq: 0,
            gzip_keys: HashMap::new(),
            buf: vec![0; 256 * 1024],
            last_scan: None,
            config,
        };
        for position in positions {
            let Some(key) = FileKey::from_hex(&position.key) else {
                continue;
            };
            let dir = position.path.parent().map(Path::to_path_buf).unwrap_or_default();
            tailer.next_seq = tailer.next_seq.max(position.seq + 1);
            tailer.entries.insert(
                key,
                Entry {
                    key,
                    seq: position.seq,
                    dir,
                    source: Arc::from(position.source.as_path()),
                    path: position.path,
                    format: position.format,
                    splitter: LineSplitter::new(
                        tailer.config.max_line_bytes + WRAPPER_ALLOWANCE,
                        position.offset,
                    ),
                    size: position.size,
                    gzip: false,
                    bound: None,
                    reader: None,
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
        let mut order: Vec<(PathBuf, u64, FileKey)> = self
            .entries
            .values()
            .map(|e| (e.dir.clone(), e.seq, e.key))
            .collect();
        order.sort();
        for (_, _, key) in order {
            self.read_entry(key, out, &mut stats);
        }
        self.drop_finished(out);
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
                    format: entry.format,
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
            {
                entry.size = meta.len();
            }
        }
    }

    /// Returns the number of files currently known.
    pub fn file_count(&self) -> usize {
        self.entries.len()
    }

    fn scan(&mut self, stats: &mut PollStats) {
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut active_paths: HashSet<PathBuf> = HashSet::new();
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for pattern in &self.config.globs {
            let Ok(paths) = glob::glob(pattern) else { continue };
            for path in paths.flatten() {
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

        let mut claimed: HashSet<(u64, u64)> = HashSet::new();
        let mut by_key: HashMap<FileKey, Vec<Candidate>> = HashMap::new();
        for candidate in candidates {
            claimed.insert((candidate.dev, candidate.ino));
            let Some(key) = self.key_of(&candidate) else {
                continue;
            };
            by_key.entry(key).or_default().push(candidate);
        }

        for entry in self.entries.values_mut() {
            entry.bound = None;
        }
        for (key, mut found) in by_key {
            // Prefer the plain file over its compressed copy, the active path, the longest copy.
            found.sort_by_key(|c| (c.gzip, !c.active, std::cmp::Reverse(c.size)));
            let best = found.swap_remove(0);
            if let Some(entry) = self.entries.get_mut(&key) {
                if entry
                    .reader
                    .as_ref()
                    .is_some_and(|r| (r.dev, r.ino) != (best.dev, best.ino))
                {
                    entry.reader = None;
                }
                entry.bound = Some((best.dev, best.ino));
                entry.path = best.path;
                entry.gzip = best.gzip;
                entry.size = best.size;
            } else if best.active && !best.gzip {
                let format = read_fingerprint(&best.path, false)
                    .ok()
                    .flatten()
                    .map(|fp| LogFormat::detect(fp.strip_suffix(b"\n").unwrap_or(&fp)))
                    .unwrap_or(LogFormat::Plain);
                let dir = best.path.parent().map(Path::to_path_buf).unwrap_or_default();
                let seq = self.next_seq;
                self.next_seq += 1;
                self.entries.insert(
                    key,
                    Entry {
                        key,
                        seq,
                        dir,
                        source: Arc::from(best.path.as_path()),
                        path: best.path.clone(),
                        format,
                        splitter: LineSplitter::new(self.config.max_line_bytes + WRAPPER_ALLOWANCE, 0),
                        size: best.size,
                        gzip: false,
                        bound: Some((best.dev, best.ino)),
                        reader: None,
                    },
                );
            }
        }
        for entry in self.entries.values_mut() {
            if entry.bound.is_none() {
                // The file's inode now holds other content (truncated): never read it as ours.
                if entry
                    .reader
                    .as_ref()
                    .is_some_and(|r| claimed.contains(&(r.dev, r.ino)))
                {
                    entry.reader = None;
                    stats.truncations += 1;
                }
            }
        }
    }

    fn key_of(&mut self, candidate: &Candidate) -> Option<FileKey> {
        let dir = candidate.path.parent()?;
        if candidate.gzip {
            let cache_key = (candidate.dev, candidate.ino, candidate.size);
            if let Some(key) = self.gzip_keys.get(&cache_key) {
                return Some(*key);
            }
            let key = FileKey::new(dir, &read_fingerprint(&candidate.path, true).ok()??);
            self.gzip_keys.insert(cache_key, key);
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
        let assembler = assemblers
            .entry(entry.dir.clone())
            .or_insert_with(|| PartialAssembler::new(config.max_line_bytes));
        let format = entry.format;
        let source = entry.source.clone();
        let mut emit = |raw: RawLine<'_>| {
            let line = format.unwrap_line(raw.bytes);
            if let Some(line) = assembler.push(
                Origin {
                    file: key,
                    offset: raw.start,
                },
                &line,
                raw.truncated,
            ) {
                out.push(TailedLine {
                    line,
                    source: source.clone(),
                });
            }
        };

        if entry.gzip {
            if entry.bound.is_some()
                && gzip_size(&entry.path).is_some_and(|size| size != entry.splitter.read_pos() as u32)
            {
                let before = entry.splitter.read_pos();
                if let Err(error) = read_gzip(&entry.path, &mut entry.splitter, buf, &mut emit) {
                    tracing::warn!(path = %entry.path.display(), %error, "cannot read log file");
                }
                entry.splitter.finish(&mut emit);
                stats.bytes_read += entry.splitter.read_pos() - before;
            }
            return;
        }

        if entry.reader.is_none() {
            let Some((dev, ino)) = entry.bound else { return };
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
        let mut budget = config.read_budget;
        while budget > 0 {
            let want = buf.len().min(budget);
            match reader.file.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    budget -= n;
                    stats.bytes_read += n as u64;
                    entry.splitter.push(&buf[..n], &mut emit);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::warn!(path = %entry.path.display(), %error, "cannot read log file");
                    break;
                }
            }
        }
        if entry.bound.is_none() && budget > 0 {
            // Vanished and read to its end: the unterminated tail will never grow.
            entry.splitter.finish(&mut emit);
            entry.reader = None;
        }
    }

    /// Forgets files that are gone and fully read; flushes a directory's unfinished lines
    /// when its last file goes.
    fn drop_finished(&mut self, out: &mut Vec<TailedLine>) {
        let gone: Vec<FileKey> = self
            .entries
            .values()
            .filter(|e| e.bound.is_none() && e.reader.is_none())
            .map(|e| e.key)
            .collect();
        for key in gone {
            if let Some(entry) = self.entries.remove(&key)
                && !self.entries.values().any(|e| e.dir == entry.dir)
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

/// Room for the runtime's wrapper (CRI prefix, docker JSON escaping) on top of `max_line_bytes`.
const WRAPPER_ALLOWANCE: usize = 64 * 1024;

fn candidate(path: &Path, active: bool) -> Option<Candidate> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let gzip = path.extension().is_some_and(|e| e == "gz");
    Some(Candidate {
        path: path.to_path_buf(),
        active,
        gzip,
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.len(),
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

fn read_gzip(
    path: &Path,
    splitter: &mut LineSplitter,
    buf: &mut [u8],
    emit: &mut impl FnMut(RawLine<'_>),
) -> io::Result<()> {
    let mut decoder = GzDecoder::new(File::open(path)?);
    let skip = splitter.read_pos();
    let skipped = io::copy(&mut (&mut decoder).take(skip), &mut io::sink())?;
    if skipped < skip {
        return Ok(());
    }
    loop {
        match decoder.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => splitter.push(&buf[..n], emit),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
