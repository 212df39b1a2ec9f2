//! `corral-indexer verify` (DESIGN §4.2): re-hashes every file of every sealed split against its
//! manifest, walks the manifest chain of each indexer up to the chain head, and walks the audit
//! log's chain. Every problem names the split or audit file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::audit::{AUDIT_DIR, verify_chain};
use crate::manifest::{Manifest, hash_split_files, manifest_hash};
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
    let mut manifests: Vec<(Manifest, String)> = Vec::new();
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
        manifests.push((manifest, hash));
    }

    // The chain of each indexer: every manifest points at the one sealed before it.
    let by_id: HashMap<&str, &str> = manifests
        .iter()
        .map(|(m, h)| (m.id.as_str(), h.as_str()))
        .collect();
    let mut per_indexer: BTreeMap<&str, Vec<&Manifest>> = BTreeMap::new();
    for (manifest, _) in &manifests {
        per_indexer
            .entry(manifest.indexer.as_str())
            .or_default()
            .push(manifest);
    }
    for chain in per_indexer.values_mut() {
        chain.sort_by(|a, b| a.id.cmp(&b.id));
        for (n, manifest) in chain.iter().enumerate() {
            match (&manifest.prev_id, &manifest.prev) {
                (None, _) if n == 0 => {}
                (None, _) => report.problems.push(format!(
                    "split {}: its manifest starts a new chain, but split {} was sealed before it",
                    manifest.id,
                    chain[n - 1].id
                )),
                (Some(prev_id), prev) => match by_id.get(prev_id.as_str()) {
                    None => report.problems.push(format!(
                        "split {prev_id} was removed: split {} points at it and it is gone",
                        manifest.id
                    )),
                    Some(hash) if prev.as_deref() != Some(*hash) => report.problems.push(format!(
                        "split {}: chain link broken: split {prev_id}'s manifest is not the one it points at",
                        manifest.id
                    )),
                    Some(_) => {}
                },
            }
        }
    }
    // The newest sealed split is the chain head: nothing later points at it.
    let newest = manifests.iter().max_by(|a, b| a.0.id.cmp(&b.0.id));
    match (read_chain_head(&root)?, newest) {
        (Some(head), Some((manifest, hash))) => {
            if head.id != manifest.id && !by_id.contains_key(head.id.as_str()) {
                report.problems.push(format!(
                    "split {} was removed: the chain head names it as the newest",
                    head.id
                ));
            } else if head.id == manifest.id && &head.manifest_sha256 != hash {
                report.problems.push(format!(
                    "split {}: its manifest differs from the one the chain head recorded",
                    head.id
                ));
            }
        }
        (Some(head), None) => {
            report.problems.push(format!(
                "split {} was removed: the chain head names it and no sealed split is left",
                head.id
            ));
        }
        (None, Some((manifest, _))) => {
            report.problems.push(format!(
                "the chain head file is missing, yet split {} is sealed",
                manifest.id
            ));
        }
        (None, None) => {}
    }

    match verify_chain(&data_dir.join(AUDIT_DIR)) {
        Ok(entries) => report.audit_entries = entries,
        Err(error) => report.problems.push(format!("audit log: {error:#}")),
    }
    Ok(report)
}
