//! Identity of a log file across rename, copytruncate and compression, and record ids.
//!
//! Two hashes, both [`FileKey`]s:
//! - the *fingerprint* ([`FileKey::new`]): directory and first line (at most
//!   [`FINGERPRINT_MAX`] bytes). Copies keep it (logrotate's copy, gzip of a rotated file), so it
//!   finds where a file's content went; but different files may share it (a container restarted
//!   into `1.log` prints the same banner as `0.log`).
//! - the *key* ([`FileKey::for_file`]): fingerprint plus (device, inode, birth time) of the file
//!   the content was first seen in. It tells such files apart; it is saved in the checkpoint
//!   and so survives restarts, renames and the copies the fingerprint finds. Content that
//!   replaces a file's content in place (a truncation) gets [`FileKey::successor`] of the old
//!   key, never the old key again. Checkpoints from before keys held the inode carry the
//!   fingerprint as their key, and keep it.
//!
//! Record ids hash (node, key, byte offset), so the same line of the same file has the same id
//! across restarts and re-sends, and lines of different files never share one.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// How much of the first line identifies a file.
pub const FINGERPRINT_MAX: usize = 4096;

/// The identity of one log file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey(pub u128);

impl FileKey {
    /// Derives the key from the file's directory and its fingerprint bytes.
    pub fn new(dir: &Path, fingerprint: &[u8]) -> FileKey {
        let mut hasher = Xxh3::new();
        hasher.update(dir.as_os_str().as_encoded_bytes());
        hasher.update(&[0]);
        hasher.update(fingerprint);
        FileKey(hasher.digest128())
    }

    /// Derives the key of content first seen in file (`dev`, `ino`) born at `born` (nanoseconds
    /// since the epoch, when the file system knows it: it tells a reused inode apart).
    pub fn for_file(fingerprint: FileKey, dev: u64, ino: u64, born: Option<i128>) -> FileKey {
        let mut hasher = Xxh3::new();
        hasher.update(b"file\0");
        hasher.update(&fingerprint.0.to_le_bytes());
        hasher.update(&dev.to_le_bytes());
        hasher.update(&ino.to_le_bytes());
        hasher.update(&born.unwrap_or_default().to_le_bytes());
        FileKey(hasher.digest128())
    }

    /// Derives the key of the content that replaced this key's content in place (the file was
    /// truncated after `offset` bytes of it were read).
    pub fn successor(self, offset: u64) -> FileKey {
        let mut hasher = Xxh3::new();
        hasher.update(b"truncated\0");
        hasher.update(&self.0.to_le_bytes());
        hasher.update(&offset.to_le_bytes());
        FileKey(hasher.digest128())
    }

    /// Returns the key as 32 hex digits (checkpoint files).
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(text: &str) -> Option<FileKey> {
        (text.len() == 32)
            .then(|| u128::from_str_radix(text, 16).ok())
            .flatten()
            .map(FileKey)
    }
}

/// Returns the record id of the line at `offset` of `file` read on `node`: 32 lowercase hex.
pub fn record_id(node: &str, file: FileKey, offset: u64) -> String {
    let mut buf = Vec::with_capacity(node.len() + 1 + 16 + 8);
    buf.extend_from_slice(node.as_bytes());
    buf.push(0);
    buf.extend_from_slice(&file.0.to_le_bytes());
    buf.extend_from_slice(&offset.to_le_bytes());
    hex32(xxh3_128(&buf))
}

/// Formats a 128-bit value as 32 lowercase hex digits without `core::fmt` (once per record).
fn hex32(value: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = vec![0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((value >> (124 - 4 * i)) & 0xf) as usize];
    }
    // Only ASCII hex digits were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Reads a file's fingerprint: its first line including `\n`, or its first [`FINGERPRINT_MAX`]
/// bytes. Returns `None` while the file holds less than that and no complete line.
pub fn read_fingerprint(path: &Path, gzip: bool) -> io::Result<Option<Vec<u8>>> {
    let file = File::open(path)?;
    let mut buf = vec![0u8; FINGERPRINT_MAX];
    let filled = if gzip {
        fill(&mut GzDecoder::new(file), &mut buf)?
    } else {
        fill(&mut &file, &mut buf)?
    };
    Ok(fingerprint_of(&buf[..filled]).map(<[u8]>::to_vec))
}

/// Returns the fingerprint part of a file's first bytes, if complete.
pub fn fingerprint_of(head: &[u8]) -> Option<&[u8]> {
    match memchr::memchr(b'\n', head) {
        Some(newline) => Some(&head[..=newline]),
        None if head.len() >= FINGERPRINT_MAX => Some(&head[..FINGERPRINT_MAX]),
        None => None,
    }
}

fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A gzip file still being written ends early: use what was decoded.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let key = FileKey::new(Path::new("/var/log/pods/a/b"), b"first line\n");
        assert_eq!(record_id("node-1", key, 42), record_id("node-1", key, 42));
        assert_eq!(record_id("node-1", key, 42).len(), 32);
        assert_eq!(
            hex32(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            "0123456789abcdef0011223344556677"
        );
        assert_eq!(hex32(7), format!("{:032x}", 7));
        let mut seen = HashSet::new();
        for offset in 0..200_000u64 {
            assert!(
                seen.insert(record_id("node-1", key, offset * 37)),
                "collision at {offset}"
            );
        }
        assert_ne!(record_id("node-2", key, 42), record_id("node-1", key, 42));
        let other = FileKey::new(Path::new("/var/log/pods/a/c"), b"first line\n");
        assert_ne!(other, key);
        assert_eq!(FileKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(FileKey::from_hex("xyz"), None);
    }

    #[test]
    fn keys_tell_apart_files_with_the_same_first_line() {
        let fp = FileKey::new(Path::new("/var/log/pods/a/b"), b"banner\n");
        let zero = FileKey::for_file(fp, 1, 100, Some(5));
        assert_eq!(zero, FileKey::for_file(fp, 1, 100, Some(5)), "stable");
        assert_ne!(zero, FileKey::for_file(fp, 1, 101, Some(5)), "another inode");
        assert_ne!(zero, FileKey::for_file(fp, 1, 100, Some(6)), "a reused inode");
        assert_ne!(zero, fp);
        assert_ne!(zero.successor(10), zero);
        assert_ne!(zero.successor(10), zero.successor(11));
        assert_eq!(zero.successor(10), zero.successor(10));
    }

    #[test]
    fn fingerprints_need_a_whole_first_line() {
        assert_eq!(fingerprint_of(b"abc\ndef"), Some(&b"abc\n"[..]));
        assert_eq!(fingerprint_of(b"abc"), None);
        let long = vec![b'x'; FINGERPRINT_MAX + 10];
        assert_eq!(fingerprint_of(&long).map(<[u8]>::len), Some(FINGERPRINT_MAX));
    }
}
