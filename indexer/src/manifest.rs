//! The manifest of a sealed split, `corral-split.json` (DESIGN §4.2): what the split holds and
//! the SHA-256 of every file in it, chained to the previous manifest of the same indexer so a
//! removed or altered split shows as a broken link.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::Context;
use corral_schema::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// File name of a split's manifest.
pub const MANIFEST_FILE: &str = "corral-split.json";
/// Version of the manifest format.
pub const MANIFEST_FORMAT: u32 = 1;

/// Source positions: Kafka partition → next offset to read.
pub type Checkpoint = BTreeMap<i32, i64>;

/// The manifest of one sealed split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Split id: the creation time in nanoseconds, zero-padded, so ids sort by age.
    pub id: String,
    /// Retention tier the split belongs to (`hot` when sealed).
    pub tier: String,
    /// Name of the indexer that wrote it (its pod name, or the host name).
    pub indexer: String,
    /// The Kafka topic its checkpoint is of; empty for the collector of standalone mode (and in
    /// manifests from before it was recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub created: Timestamp,
    pub sealed: Timestamp,
    /// Oldest and newest event time in the split; absent for an empty split.
    pub min_ts: Option<Timestamp>,
    pub max_ts: Option<Timestamp>,
    pub docs: u64,
    /// Source checkpoint as of the split's final commit.
    pub checkpoint: Checkpoint,
    /// Source checkpoint the split started at: with `checkpoint`, the range of offsets per
    /// partition it covers. Absent in manifests from before it was recorded.
    #[serde(default, skip_serializing_if = "Checkpoint::is_empty")]
    pub checkpoint_start: Checkpoint,
    /// Ingest sequence number the next record after this split gets.
    pub next_seq: u64,
    /// Relative path → SHA-256 (hex) of every file of the split except this manifest.
    pub files: BTreeMap<String, String>,
    /// SHA-256 (hex) of the previous manifest of this indexer; `None` for the first.
    pub prev: Option<String>,
    /// Id of the split whose manifest `prev` hashes.
    pub prev_id: Option<String>,
}

impl Manifest {
    /// Reads a split's manifest.
    pub fn read(split_dir: &Path) -> anyhow::Result<Manifest> {
        let path = split_dir.join(MANIFEST_FILE);
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Writes the manifest into `split_dir` durably (temporary file, fsync, rename) and returns
    /// the SHA-256 of the bytes written.
    pub fn write(&self, split_dir: &Path) -> anyhow::Result<String> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        let tmp = split_dir.join(format!("{MANIFEST_FILE}.tmp"));
        let mut file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, split_dir.join(MANIFEST_FILE))?;
        sync_dir(split_dir)?;
        Ok(sha256_hex(&bytes))
    }
}

/// Returns the SHA-256 (hex) of a split's manifest file as it is on disk.
pub fn manifest_hash(split_dir: &Path) -> anyhow::Result<String> {
    let path = split_dir.join(MANIFEST_FILE);
    let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

/// Hashes every file of a split directory (tantivy's lock files and the manifest excepted).
pub fn hash_split_files(split_dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(split_dir).with_context(|| format!("cannot list {}", split_dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type()?.is_file() || is_not_content(&name) {
            continue;
        }
        files.insert(name, sha256_file(&entry.path())?);
    }
    Ok(files)
}

/// Files of a split directory that are not part of its content: tantivy's locks and the
/// manifest (and its temporary file).
fn is_not_content(name: &str) -> bool {
    name.ends_with(".lock") || name.starts_with(MANIFEST_FILE)
}

/// SHA-256 (hex) of a file's bytes, read in 64 KiB blocks.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 (hex) of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of a digest.
pub fn hex_digest(bytes: &[u8]) -> String {
    hex(bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Makes a directory's entries (creations, renames) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_hash_what_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("meta.json"), b"{}").unwrap();
        fs::write(dir.path().join(".tantivy-writer.lock"), b"").unwrap();
        let files = hash_split_files(dir.path()).unwrap();
        assert_eq!(
            files,
            BTreeMap::from([(
                "meta.json".to_owned(),
                // sha256("{}")
                "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".to_owned()
            )])
        );
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            id: "00000000000000000001".into(),
            tier: "hot".into(),
            indexer: "test".into(),
            source: "corral.logs.v1".into(),
            created: Timestamp::parse("2026-11-23T10:00:00Z").unwrap(),
            sealed: Timestamp::parse("2026-11-23T11:00:00Z").unwrap(),
            min_ts: None,
            max_ts: None,
            docs: 0,
            checkpoint: Checkpoint::from([(0, 10), (3, 7)]),
            checkpoint_start: Checkpoint::from([(0, 4)]),
            next_seq: 0,
            files,
            prev: None,
            prev_id: None,
        };
        let hash = manifest.write(dir.path()).unwrap();
        assert_eq!(manifest_hash(dir.path()).unwrap(), hash);
        assert_eq!(Manifest::read(dir.path()).unwrap(), manifest);
        // The manifest does not hash itself.
        assert_eq!(hash_split_files(dir.path()).unwrap().len(), 1);
    }
}
