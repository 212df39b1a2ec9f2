//! `corral-indexer verify` (DESIGN §4.2): re-hashes every file of every sealed split against its
//! manifest, walks the manifest chain of each indexer up to the chain head, and walks the audit
//! log's chain. Every problem names the split or audit file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::audit::{AUDIT_DIR, retention_deletions, verify_chain};
use crate::manifest::{Manifest, hash_split_files, manifest_hash, sha256_hex};
use crate::retention::PREV_MANIFEST_PREFIX;
use crate::store::{ACTIVE_DIR, SPLITS_DIR, read_chain_head, sealed_split_dirs};

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    pub splits: usize,
    pub files: usize,
    pub docs: u64,
    pub audit_entries: u64,
    /// One line per problem, naming the split or audit file.
    pub problems: Vec<String>,
}

/// A sealed split as verify sees it.
struct Split {
    manifest: Manifest,
    /// Hashes of its current manifest and of every earlier one (retention re-encodings).
    versions: HashSet<String>,
    /// `(prev_id, prev)` of its first version: the link to the split sealed before it.
    link: (Option<String>, Option<String>),
}

/// Where the split store of a data dir is: the data dir itself (`serve`) or its `index/`
/// (`standalone`).
pub fn store_root(data_dir: &Path) -> PathBuf {
    let standalone = data_dir.join("index");
    if !data_dir.join(SPLITS_DIR).exists() && !data_dir.join(ACTIVE_DIR).exists() && standalone.exists() {
        standalone
    } else {
        data_dir.to_owned()
    }
}

/// Verifies the splits and the audit log under `data_dir`.
pub fn verify(data_dir: &Path) -> anyhow::Result<Report> {
    let root = store_root(data_dir);
    let mut report = Report::default();
    let mut manifests: Vec<Split> = Vec::new();
    for dir in sealed_split_dirs(&root)? {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_owned();
        let manifest = match Manifest::read(&dir) {
            Ok(manifest) => manifest,
            Err(error) => {
                report.problems.push(format!("split {name}: {error:#}"));
                continue;
            }
        };
        report.splits += 1;
        report.docs += manifest.docs;
        let on_disk = hash_split_files(&dir)?;
        for (file, hash) in &manifest.files {
            report.files += 1;
            match on_disk.get(file) {
                None => report.problems.push(format!(
                    "split {name}: file {file} is listed in the manifest but missing"
                )),
                Some(actual) if actual != hash => report.problems.push(format!(
                    "split {name}: file {file} was modified (SHA-256 differs from the manifest)"
                )),
                Some(_) => {}
            }
        }
        for file in on_disk.keys().filter(|f| !manifest.files.contains_key(*f)) {
            report
                .problems
                .push(format!("split {name}: file {file} is not in the manifest"));
        }
        let hash = manifest_hash(&dir)?;
        // A split retention re-encoded points at its earlier manifest, kept beside it; the
        // chain link to the split sealed before is in the first one.
        let mut versions = HashSet::from([hash.clone()]);
        let mut link = (manifest.prev_id.clone(), manifest.prev.clone());
        let mut steps = 0;
        while let (Some(prev_id), Some(prev)) = (&link.0, &link.1)
            && *prev_id == manifest.id
            && steps < 1000
        {
            steps += 1;
            let path = dir.join(format!("{PREV_MANIFEST_PREFIX}{prev}.json"));
            let earlier = match std::fs::read(&path) {
                Ok(bytes) if sha256_hex(&bytes) == *prev => serde_json::from_slice::<Manifest>(&bytes).ok(),
                _ => None,
            };
            let Some(earlier) = earlier else {
                report.problems.push(format!(
                    "split {name}: its earlier manifest {prev} (before retention re-encoded it) is missing or altered"
                ));
                break;
            };
            versions.insert(prev.clone());
            link = (earlier.prev_id, earlier.prev);
        }
        manifests.push(Split {
            manifest,
            versions,
            link,
        });
    }
    let audit_dir = data_dir.join(AUDIT_DIR);
    let deleted = retention_deletions(&audit_dir).unwrap_or_default();

    // The chain of each indexer: every split points at the one sealed before it (at any of its
    // versions); a split that is gone must be one the audit log records retention deleting.
    let by_id: HashMap<&str, &HashSet<String>> = manifests
        .iter()
        .map(|s| (s.manifest.id.as_str(), &s.versions))
        .collect();
    let mut per_indexer: BTreeMap<&str, Vec<&Split>> = BTreeMap::new();
    for split in &manifests {
        per_indexer
            .entry(split.manifest.indexer.as_str())
            .or_default()
            .push(split);
    }
    for chain in per_indexer.values_mut() {
        chain.sort_by(|a, b| a.manifest.id.cmp(&b.manifest.id));
        for (n, split) in chain.iter().enumerate() {
            let id = &split.manifest.id;
            match &split.link {
                (None, _) if n == 0 => {}
                (None, _) => report.problems.push(format!(
                    "split {id}: its manifest starts a new chain, but split {} was sealed before it",
                    chain[n - 1].manifest.id
                )),
                (Some(prev_id), prev) => match by_id.get(prev_id.as_str()) {
                    None if deleted.contains(prev_id) => {}
                    None => report.problems.push(format!(
                        "split {prev_id} was removed: split {id} points at it, it is gone, and the audit log records no retention deletion of it"
                    )),
                    Some(versions) if !prev.as_ref().is_some_and(|p| versions.contains(p)) => {
                        report.problems.push(format!(
                            "split {id}: chain link broken: split {prev_id}'s manifest is not the one it points at"
                        ));
                    }
                    Some(_) => {}
                },
            }
        }
    }
    // The chain head names the newest sealed split.
    let newest = manifests.iter().max_by(|a, b| a.manifest.id.cmp(&b.manifest.id));
    match (read_chain_head(&root)?, newest) {
        (Some(head), _) if deleted.contains(&head.id) && !by_id.contains_key(head.id.as_str()) => {}
        (Some(head), Some(_)) => match by_id.get(head.id.as_str()) {
            None => report.problems.push(format!(
                "split {} was removed: the chain head names it as the newest",
                head.id
            )),
            Some(versions) if !versions.contains(&head.manifest_sha256) => {
                report.problems.push(format!(
                    "split {}: its manifest differs from the one the chain head recorded",
                    head.id
                ));
            }
            Some(_) => {}
        },
        (Some(head), None) => {
            report.problems.push(format!(
                "split {} was removed: the chain head names it and no sealed split is left",
                head.id
            ));
        }
        (None, Some(newest)) => {
            report.problems.push(format!(
                "the chain head file is missing, yet split {} is sealed",
                newest.manifest.id
            ));
        }
        (None, None) => {}
    }

    match verify_chain(&audit_dir) {
        Ok(entries) => report.audit_entries = entries,
        Err(error) => report.problems.push(format!("audit log: {error:#}")),
    }
    Ok(report)
}
