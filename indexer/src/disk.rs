//! Free space on the data dir's filesystem: ingest pauses before it fills the disk, and a write
//! that failed because it did fill it is recovered from instead of ending the process.
//!
//! The order when space runs out (DESIGN §4.1 keeps the rest): stop reading the source →
//! `/readyz` answers 503 naming the data dir and its free space, queries go on → wait until
//! space returns → reopen the active split at its last commit (what was added since is read
//! again from the source, rewound to the same checkpoint) → resume. Nothing is lost, nothing is
//! indexed twice: the same path a restart takes.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Default of `[indexer] min_free_bytes`: room for commits and a seal's final merge of a
/// modest split; below it ingest pauses.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;

/// Free space below which a failed write is taken for the disk's fault even without an
/// out-of-space error to say so.
pub const LOW_FREE_BYTES: u64 = 256 * 1024 * 1024;

/// Returns whether `path` exists; unlike `Path::exists`, a failed check (permission denied, an
/// I/O error) is an error naming the path, never taken for "not there".
pub fn exists(path: &Path) -> anyhow::Result<bool> {
    path.try_exists()
        .map_err(|error| anyhow::anyhow!("cannot tell whether {} exists: {error}", path.display()))
}

/// Bytes of the files directly in `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        // tantivy's merges remove an active split's segment files at any time: one gone
        // between the listing and its stat takes no room any more.
        match entry.metadata() {
            Ok(metadata) if metadata.is_file() => bytes += metadata.len(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", entry.path().display())),
        }
    }
    Ok(bytes)
}

/// Watches the free space of one directory's filesystem.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    dir: PathBuf,
    min_free: u64,
}

impl DiskGuard {
    pub fn new(dir: &Path, min_free: u64) -> DiskGuard {
        DiskGuard {
            dir: dir.to_owned(),
            min_free,
        }
    }

    /// Bytes available to this process on the directory's filesystem.
    pub fn free(&self) -> std::io::Result<u64> {
        fs4::available_space(&self.dir)
    }

    /// Why ingest must pause now, or `None` while there is room (or the space cannot be read:
    /// a write will then say what is wrong). `reserved` bytes are kept free beside the minimum:
    /// what a running seal may still write.
    pub fn low(&self, reserved: u64) -> Option<String> {
        let free = self.free().ok()?;
        (free < self.min_free.saturating_add(reserved)).then(|| self.describe(free))
    }

    /// True once there is room again: twice the minimum (plus `reserved`), so ingest does not
    /// flap at the edge.
    pub fn recovered(&self, reserved: u64) -> bool {
        self.free()
            .is_ok_and(|free| free >= self.min_free.saturating_mul(2).saturating_add(reserved))
    }

    /// True when `bytes` more can be written and the minimum still be free: whether a seal
    /// whose final merge writes about `bytes` may start.
    pub fn room_for(&self, bytes: u64) -> bool {
        self.free()
            .is_ok_and(|free| free >= self.min_free.saturating_add(bytes))
    }

    /// Why `error` happened if it was the disk: an out-of-space error anywhere in its chain, or
    /// a failed write (an I/O error, or tantivy's killed writer, which reports a failed
    /// background write without the I/O error) while free space is low: below twice the minimum
    /// or [`LOW_FREE_BYTES`].
    pub fn explains(&self, error: &anyhow::Error) -> Option<String> {
        let out_of_space = error.chain().any(|cause| {
            cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
                io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28)
            }) || cause.to_string().contains("No space left on device")
        });
        let failed_write = error.chain().any(|cause| {
            let text = cause.to_string();
            cause.downcast_ref::<std::io::Error>().is_some()
                || text.contains("index writer was killed")
                || text.contains("An IO error occurred")
        });
        let free = self.free().ok()?;
        let low = free < self.min_free.saturating_mul(2).max(LOW_FREE_BYTES);
        (out_of_space || (failed_write && low)).then(|| self.describe(free))
    }

    fn describe(&self, free: u64) -> String {
        format!(
            "disk full: the data dir {} has {} free, less than indexer.min_free_bytes = {}; ingest is \
             paused (queries are still answered) and resumes by itself when space returns",
            self.dir.display(),
            mib(free),
            mib(self.min_free)
        )
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_below_the_minimum_is_low_and_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(DiskGuard::new(dir.path(), 1).low(0), None);
        assert!(
            DiskGuard::new(dir.path(), 1).low(u64::MAX).is_some(),
            "a reserve counts"
        );
        assert!(DiskGuard::new(dir.path(), 1).room_for(1));
        assert!(!DiskGuard::new(dir.path(), 1).room_for(u64::MAX));
        let why = DiskGuard::new(dir.path(), u64::MAX).low(0).unwrap();
        assert!(
            why.contains(&dir.path().display().to_string()) && why.contains("MiB free"),
            "{why}"
        );
        let enospc = anyhow::Error::from(std::io::Error::from_raw_os_error(28)).context("commit");
        assert!(DiskGuard::new(dir.path(), 1).explains(&enospc).is_some());
        let other = anyhow::anyhow!("a corrupt segment");
        assert!(DiskGuard::new(dir.path(), 1).explains(&other).is_none());
    }

    /// A file removed between the listing and its stat (as tantivy's merges remove an active
    /// split's segment files) is not an error: it takes no room. Before, the indexer stopped
    /// with a bare "No such file or directory" when a revocation sealed during a merge.
    #[test]
    fn files_removed_while_a_directory_is_counted_count_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kept"), [0u8; 100]).unwrap();
        let churn_dir = dir.path().to_owned();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let churn = std::thread::spawn(move || {
            let mut i = 0u64;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let path = churn_dir.join(format!("seg-{}", i % 64));
                std::fs::write(&path, [1u8; 10]).unwrap();
                let _ = std::fs::remove_file(churn_dir.join(format!("seg-{}", (i + 32) % 64)));
                i += 1;
            }
        });
        let started = std::time::Instant::now();
        let mut counted = 0;
        let result = loop {
            match dir_bytes(dir.path()) {
                Ok(bytes) => assert!(bytes >= 100, "{bytes}"),
                Err(error) => break Err(error),
            }
            counted += 1;
            if started.elapsed() > std::time::Duration::from_secs(3) {
                break Ok(());
            }
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
        if let Err(error) = result {
            panic!("counting failed after {counted} counts: {error:#}");
        }
    }
}
