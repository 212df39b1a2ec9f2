//! Read positions saved under `--data-dir`, so a restart resumes where delivery stopped.
//!
//! The file is written atomically: a temp file, fsync, rename over the old one, fsync of the
//! directory. A corrupt or unreadable file is reported and set aside (renamed with a
//! `.corrupt-<unix time>` suffix); the collector then starts from scratch instead of crash-looping.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tailer::FilePosition;

/// File name of the checkpoint under the data dir.
pub const CHECKPOINT_FILE: &str = "collector-positions.json";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointFile {
    version: u32,
    files: Vec<FilePosition>,
}

/// Loads and saves the collector's file positions.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

/// What loading found.
#[derive(Debug)]
pub struct Loaded {
    pub positions: Vec<FilePosition>,
    /// Where a corrupt checkpoint was moved to, if one was.
    pub set_aside: Option<(PathBuf, String)>,
}

impl CheckpointStore {
    /// Creates a store in `data_dir`, creating the directory if needed.
    pub fn open(data_dir: &Path) -> io::Result<CheckpointStore> {
        fs::create_dir_all(data_dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create data dir {}: {e}", data_dir.display()),
            )
        })?;
        Ok(CheckpointStore {
            path: data_dir.join(CHECKPOINT_FILE),
        })
    }

    /// Returns the checkpoint file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads saved positions; a missing file means none, a corrupt one is set aside.
    pub fn load(&self) -> io::Result<Loaded> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    positions: Vec::new(),
                    set_aside: None,
                });
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read checkpoint {}: {e}", self.path.display()),
                ));
            }
        };
        match serde_json::from_slice::<CheckpointFile>(&text) {
            Ok(file) if file.version == 1 => Ok(Loaded {
                positions: file.files,
                set_aside: None,
            }),
            result => {
                let reason = match result {
                    Ok(file) => format!("unknown checkpoint version {}", file.version),
                    Err(e) => e.to_string(),
                };
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let aside = self.path.with_extension(format!("json.corrupt-{secs}"));
                fs::rename(&self.path, &aside)?;
                Ok(Loaded {
                    positions: Vec::new(),
                    set_aside: Some((aside, reason)),
                })
            }
        }
    }

    /// Saves positions atomically.
    pub fn save(&self, positions: &[FilePosition]) -> io::Result<()> {
        let body = serde_json::to_vec(&CheckpointFile {
            version: 1,
            files: positions.to_vec(),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("cannot write checkpoint {}: {e}", tmp.display()),
            )
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(context)?;
        file.write_all(&body).map_err(context)?;
        file.sync_all().map_err(context)?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(context)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(context)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_format::LogFormat;
    use crate::tailer::ContentCheck;

    fn position() -> FilePosition {
        FilePosition {
            key: "0123456789abcdef0123456789abcdef".into(),
            source: "/var/log/pods/a_b_c/app/0.log".into(),
            path: "/var/log/pods/a_b_c/app/0.log.20261123-101500".into(),
            offset: 1234,
            size: 2000,
            seq: 3,
            format: LogFormat::Cri,
            fingerprint: Some("fedcba9876543210fedcba9876543210".into()),
            dev: Some(64769),
            ino: Some(1_234_567),
            check: Some(ContentCheck {
                end: 1300,
                len: 64,
                hash: 42,
            }),
        }
    }

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(&dir.path().join("nested")).unwrap();
        assert!(store.load().unwrap().positions.is_empty());
        store.save(&[position()]).unwrap();
        assert_eq!(store.load().unwrap().positions, vec![position()]);
        assert!(!store.path().with_extension("json.tmp").try_exists().unwrap());
    }

    #[test]
    fn a_checkpoint_without_inodes_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        // As written before positions held (device, inode) and a content check.
        fs::write(
            store.path(),
            br#"{"version":1,"files":[{"key":"0123456789abcdef0123456789abcdef","source":"/var/log/pods/a_b_c/app/0.log","path":"/var/log/pods/a_b_c/app/0.log","offset":1234,"size":2000,"seq":3,"format":"cri"}]}"#,
        )
        .unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded.set_aside.is_none());
        assert_eq!(
            loaded.positions,
            vec![FilePosition {
                path: "/var/log/pods/a_b_c/app/0.log".into(),
                fingerprint: None,
                dev: None,
                ino: None,
                check: None,
                ..position()
            }]
        );
    }

    #[test]
    fn a_corrupt_checkpoint_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        fs::write(store.path(), b"{\"version\":1,\"files\":[{\"key\":").unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded.positions.is_empty());
        let (aside, reason) = loaded.set_aside.expect("set aside");
        assert!(
            aside.to_string_lossy().contains(".corrupt-"),
            "{}",
            aside.display()
        );
        assert!(reason.contains("EOF"), "{reason}");
        assert!(aside.try_exists().unwrap() && !store.path().try_exists().unwrap());
        // And the next load starts clean.
        assert!(store.load().unwrap().set_aside.is_none());
    }
}
