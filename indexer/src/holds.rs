//! Legal holds (DESIGN §4.2): a selector, a reason and who placed it. Records a hold matches
//! are never deleted by retention until the hold is released. Standalone keeps them in
//! `<data-dir>/holds.json`, rewritten atomically on every change; `serve` keeps them in the
//! cluster's control topic ([`crate::control`]), so a hold placed through any indexer protects
//! the records of every indexer.
//!
//! Order of a change, all under the one lock of [`Holds`]: the caller's audit entry (fsync'd) →
//! `holds.json` rewritten, or the control topic's acknowledgement → the in-memory list. An
//! audit entry that cannot be written leaves the holds as they were; a crash after the entry
//! leaves the change recorded but not made (for a release: the records stay held). Retention
//! takes the same lock ([`Holds::lock`]) from its last look at the holds until a step that
//! removes records is done, so a hold placed meanwhile through this indexer waits for the step
//! and the next step sees it; with the control topic, [`Holds::lock`] first reads the topic to
//! its end, so a hold any indexer acknowledged before the step is seen.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use corral_schema::Timestamp;
use serde::{Deserialize, Serialize};

use crate::control::ControlTopic;
use crate::manifest::sync_dir;

/// File of the holds, under the data dir.
pub const HOLDS_FILE: &str = "holds.json";
/// Under a `serve` indexer's data dir: names the control topic its holds are in.
pub const HOLDS_MARKER: &str = "holds.control";

/// Which records a hold keeps: the API's selector. At least one key; all given keys must
/// match; `since` and `until` are RFC 3339 instants (a hold must not move with the clock).
pub use corral_schema::api::Selector;

/// One legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub id: String,
    pub selector: Selector,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// The body of `POST /api/v1/holds`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    pub selector: Selector,
    pub reason: String,
}

impl NewHold {
    /// Parses and checks a request body; the error says what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<NewHold, String> {
        let hold: NewHold = serde_json::from_slice(body).map_err(|e| {
            format!(
                "invalid hold: {e}; expected {{\"selector\": {{\"corr\"|\"q\"|\"service\"|\"version\"|\"instance\"|\"namespace\"|\"level\"|\"since\"|\"until\": …}}, \"reason\": \"…\"}}"
            )
        })?;
        if hold.selector.is_empty() {
            return Err(
                "invalid hold: the selector is empty; give at least one of corr, q, service, version, instance, namespace, level, since, until"
                    .into(),
            );
        }
        if hold.reason.trim().is_empty() {
            return Err("invalid hold: reason is empty; say why the records are held (case, ticket)".into());
        }
        let instant = |key: &str, text: &Option<String>| -> Result<Option<Timestamp>, String> {
            let Some(text) = text else { return Ok(None) };
            match Timestamp::parse(text) {
                Some(ts) if text.len() >= 19 => Ok(Some(ts)),
                _ => Err(format!(
                    "invalid hold: selector {key} {text:?} is not an RFC 3339 instant (2026-11-23T10:15:00Z); a hold must not move with the clock, so durations are not accepted"
                )),
            }
        };
        let since = instant("since", &hold.selector.since)?;
        let until = instant("until", &hold.selector.until)?;
        if let (Some(since), Some(until)) = (since, until)
            && since > until
        {
            return Err(format!(
                "invalid hold: selector since ({since}) is after until ({until})"
            ));
        }
        Ok(hold)
    }
}

impl ChangeError<std::convert::Infallible> {
    /// The save error of a change made without an audit entry.
    fn unaudited(self) -> anyhow::Error {
        match self {
            ChangeError::Save(error) | ChangeError::Read(error) => error,
            ChangeError::Audit(never) => match never {},
        }
    }
}

/// The holds in force: of one indexer (a file), or of the cluster (the control topic).
#[derive(Debug)]
pub struct Holds {
    /// `None` for a fixed set that is never saved ([`Holds::fixed`]), and with `control`.
    path: Option<PathBuf>,
    /// The cluster's holds: read to the end before every look, written before every change.
    control: Option<Arc<ControlTopic>>,
    holds: Mutex<Vec<Hold>>,
}

/// Why a change to the holds was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError<E> {
    /// The audit entry could not be written: nothing changed.
    #[error("the change could not be audited, so it was not made: {0:#}")]
    Audit(E),
    /// The entry was written but the holds could not be saved: nothing changed.
    #[error("cannot save the holds: {0:#}")]
    Save(anyhow::Error),
    /// The holds in force could not be read (the control topic): nothing changed.
    #[error("cannot read the holds in force: {0:#}")]
    Read(anyhow::Error),
}

impl Holds {
    /// Loads the holds under `data_dir` (none if the file does not exist yet).
    pub fn open(data_dir: &Path) -> anyhow::Result<Holds> {
        fs::create_dir_all(data_dir)?;
        let path = data_dir.join(HOLDS_FILE);
        let holds = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("invalid holds file {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Holds {
            path: Some(path),
            control: None,
            holds: Mutex::new(holds),
        })
    }

    /// The holds of `data_dir` for a tool that reads them itself (`corral-indexer retention`):
    /// refused for the data dir of a `serve` indexer, whose holds are in the control topic.
    pub fn open_local(data_dir: &Path) -> anyhow::Result<Holds> {
        let marker = data_dir.join(HOLDS_MARKER);
        if crate::disk::exists(&marker)? {
            let topic = fs::read_to_string(&marker).unwrap_or_default();
            anyhow::bail!(
                "the legal holds of {} are in the control topic {:?} ({} says so): pass --brokers so they are honoured",
                data_dir.display(),
                topic.trim(),
                marker.display()
            );
        }
        Holds::open(data_dir)
    }

    /// The cluster's holds in `control`. Holds an earlier version kept in `data_dir`'s
    /// `holds.json` are written to the topic first (once they all are, the file is renamed
    /// `holds.json.migrated`): upgrading loses no hold.
    pub fn cluster(control: Arc<ControlTopic>, data_dir: &Path) -> anyhow::Result<Holds> {
        let local = Holds::open(data_dir)?;
        let old = local.list()?;
        if !old.is_empty() {
            let known = control.holds()?;
            for hold in old.iter().filter(|h| !known.iter().any(|k| k.id == h.id)) {
                control.put_hold(hold)?;
            }
            tracing::info!(
                holds = old.len(),
                topic = control.topic(),
                "moved this indexer's holds to the control topic"
            );
        }
        // The marker first: a tool that reads this data dir's holds from now on is told where
        // they are, even if the rename below does not happen.
        let marker = data_dir.join(HOLDS_MARKER);
        fs::write(&marker, format!("{}\n", control.topic()))
            .with_context(|| format!("cannot write {}", marker.display()))?;
        sync_dir(data_dir)?;
        if let Some(path) = &local.path
            && crate::disk::exists(path)?
        {
            fs::rename(path, path.with_extension("json.migrated"))
                .with_context(|| format!("cannot rename {}", path.display()))?;
        }
        let holds = control.holds()?;
        Ok(Holds {
            path: None,
            control: Some(control),
            holds: Mutex::new(holds),
        })
    }

    /// A fixed set of holds, kept in memory only (a pass over a given set, tests).
    pub fn fixed(holds: Vec<Hold>) -> Holds {
        Holds {
            path: None,
            control: None,
            holds: Mutex::new(holds),
        }
    }

    /// The holds in force now (with the control topic: as of its end).
    pub fn list(&self) -> anyhow::Result<Vec<Hold>> {
        Ok(self.lock()?.clone())
    }

    /// Takes the lock every change takes: while the guard lives, no hold is placed or released
    /// through this indexer. With the control topic the list is first read to the topic's end;
    /// an error when it cannot be (the holds are then unknown).
    pub fn lock(&self) -> anyhow::Result<MutexGuard<'_, Vec<Hold>>> {
        let mut holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(control) = &self.control {
            *holds = control.holds()?;
        }
        Ok(holds)
    }

    /// Places a hold without an audit entry (tools and tests); it is durable when this returns.
    pub fn create(&self, new: NewHold, who: &str) -> anyhow::Result<Hold> {
        self.create_audited(new, who, |_| Ok(()))
            .map_err(ChangeError::unaudited)
    }

    /// Places a hold: `audit` records it first (under the lock); the hold exists, durably, only
    /// once that succeeded and it was saved.
    pub fn create_audited<E: std::fmt::Display>(
        &self,
        new: NewHold,
        who: &str,
        audit: impl FnOnce(&Hold) -> Result<(), E>,
    ) -> Result<Hold, ChangeError<E>> {
        let mut holds = self.lock().map_err(ChangeError::Read)?;
        let created_at = Timestamp::now();
        let id = format!(
            "hold-{:016x}",
            xxhash_rust::xxh3::xxh3_64(format!("{created_at}{who}{}{}", new.reason, holds.len()).as_bytes())
        );
        let hold = Hold {
            id,
            selector: new.selector,
            reason: new.reason,
            created_by: who.to_owned(),
            created_at,
        };
        let mut next = holds.clone();
        next.push(hold.clone());
        audit(&hold).map_err(ChangeError::Audit)?;
        match &self.control {
            Some(control) => control.put_hold(&hold).map_err(ChangeError::Save)?,
            None => self.save(&next).map_err(ChangeError::Save)?,
        }
        *holds = next;
        Ok(hold)
    }

    /// Releases a hold without an audit entry (tools and tests); `None` when there is no hold
    /// with that id.
    pub fn release(&self, id: &str) -> anyhow::Result<Option<Hold>> {
        self.release_audited(id, |_| Ok(()))
            .map_err(ChangeError::unaudited)
    }

    /// Releases a hold: `audit` records it first (under the lock); the hold stays in force
    /// unless that succeeded and the release was saved. `Ok(None)` (nothing audited) when there
    /// is no hold with that id.
    pub fn release_audited<E: std::fmt::Display>(
        &self,
        id: &str,
        audit: impl FnOnce(&Hold) -> Result<(), E>,
    ) -> Result<Option<Hold>, ChangeError<E>> {
        let mut holds = self.lock().map_err(ChangeError::Read)?;
        let Some(pos) = holds.iter().position(|h| h.id == id) else {
            return Ok(None);
        };
        let mut next = holds.clone();
        let released = next.remove(pos);
        audit(&released).map_err(ChangeError::Audit)?;
        match &self.control {
            Some(control) => control.remove_hold(&released.id).map_err(ChangeError::Save)?,
            None => self.save(&next).map_err(ChangeError::Save)?,
        }
        *holds = next;
        Ok(Some(released))
    }

    fn save(&self, holds: &[Hold]) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("json.tmp");
        let mut bytes = serde_json::to_vec_pretty(holds)?;
        bytes.push(b'\n');
        fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_persist_and_bad_ones_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let holds = Holds::open(dir.path()).unwrap();
        let hold = holds
            .create(
                NewHold::parse(
                    br#"{"selector":{"corr":"req-1","since":"2025-01-01T00:00:00Z"},"reason":"case 42"}"#,
                )
                .unwrap(),
                "ada",
            )
            .unwrap();
        assert!(hold.id.starts_with("hold-"));
        let other = holds
            .create(
                NewHold::parse(br#"{"selector":{"service":"payments"},"reason":"audit"}"#).unwrap(),
                "ada",
            )
            .unwrap();
        drop(holds);
        let holds = Holds::open(dir.path()).unwrap();
        assert_eq!(holds.list().unwrap(), vec![hold.clone(), other.clone()]);
        assert_eq!(holds.release(&hold.id).unwrap(), Some(hold.clone()));
        assert_eq!(holds.release(&hold.id).unwrap(), None);
        assert_eq!(Holds::open(dir.path()).unwrap().list().unwrap(), vec![other]);

        let cases: [(&[u8], &str); 5] = [
            (br#"{"selector":{},"reason":"x"}"#, "the selector is empty"),
            (br#"{"selector":{"corr":"a"},"reason":" "}"#, "reason is empty"),
            (br#"{"selector":{"pod":"a"},"reason":"x"}"#, "unknown field `pod`"),
            (br#"{"selector":{"since":"15m"},"reason":"x"}"#, "since \"15m\" is not an RFC 3339 instant"),
            (br#"{"selector":{"since":"2026-01-02T00:00:00Z","until":"2026-01-01T00:00:00Z"},"reason":"x"}"#, "is after until"),
        ];
        for (body, want) in cases {
            let error = NewHold::parse(body).unwrap_err();
            assert!(
                error.contains(want),
                "{} gave {error}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
