//! `corral-indexer verify` (DESIGN §4.2): re-hashes every file of every sealed split against its
//! manifest, walks the manifest chain of each indexer up to the chain head, and walks the audit
//! log's chain up to the head the chain head anchors. A split that is gone must be one the audit
//! log records retention deleting, and that deletion must name a manifest the split's history
//! (its link from the next split or the chain head, then the audited moves and rewrites)
//! reaches. Every problem names the split or audit file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::audit::{AUDIT_DIR, RecordedStep, retention_steps, verify_chain_to};
use crate::disk::exists;
use crate::manifest::{Manifest, hash_split_files, manifest_hash, sha256_hex};
use crate::retention::PREV_MANIFEST_PREFIX;
use crate::store::{ACTIVE_DIR, CHAIN_HEAD_FILE, ChainHead, SPLITS_DIR, read_chain_head, sealed_split_dirs};

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    pub splits: usize,
    pub files: usize,
    pub docs: u64,
    pub audit_entries: u64,
    /// False when no audit log was checked (`verify --storage` without `--data-dir`).
    pub audit_checked: bool,
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
pub fn store_root(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let standalone = data_dir.join("index");
    Ok(
        if !exists(&data_dir.join(SPLITS_DIR))?
            && !exists(&data_dir.join(crate::storage::DEFAULT_STORE_DIR))?
            && !exists(&data_dir.join(ACTIVE_DIR))?
            && exists(&standalone)?
        {
            standalone
        } else {
            data_dir.to_owned()
        },
    )
}

/// The splits the audit log records retention deleting, where the deletion follows from the
/// split's history: it names a manifest reachable from `links[split]` (the hash the next split
/// or the chain head points at) through the split's audited moves and rewrites. A deletion that
/// does not is a problem, and does not count; one of a split nothing links to cannot be
/// checked, and counts.
fn audited_deletions(
    steps: &[RecordedStep],
    links: &HashMap<&str, &str>,
    problems: &mut Vec<String>,
) -> HashSet<String> {
    let mut deleted = HashSet::new();
    for delete in steps.iter().filter(|s| s.action == "retention.delete") {
        let Some(start) = links.get(delete.split.as_str()) else {
            deleted.insert(delete.split.clone());
            continue;
        };
        let mut reached = HashSet::from([(*start).to_owned()]);
        // Steps a crash undid are redone from the same manifest: follow every edge.
        loop {
            let before = reached.len();
            for step in steps
                .iter()
                .filter(|s| s.split == delete.split && s.seq < delete.seq)
            {
                if let (Some(from), Some(to)) = (&step.manifest_sha256, &step.new_manifest_sha256)
                    && reached.contains(from)
                {
                    reached.insert(to.clone());
                }
            }
            if reached.len() == before {
                break;
            }
        }
        match &delete.manifest_sha256 {
            Some(hash) if reached.contains(hash) => {
                deleted.insert(delete.split.clone());
            }
            named => problems.push(format!(
                "split {}: the audit log's retention.delete (entry {}) names manifest {}, which the split's manifest chain never reached (it starts at {start}; the audited moves and rewrites lead to {} manifest(s)): the deletion does not follow from the split's history",
                delete.split,
                delete.seq,
                named.as_deref().unwrap_or("none"),
                reached.len()
            )),
        }
    }
    deleted
}

/// `corral-indexer verify` as asked: a data dir, or an object store (with a data dir's audit
/// log).
pub fn run(args: &crate::cli::VerifyArgs) -> anyhow::Result<Report> {
    match (&args.storage, &args.data_dir) {
        (Some(url), data_dir) => {
            let indexer = args.indexer_id.clone().unwrap_or_else(crate::app::host_name);
            let scratch = std::env::temp_dir().join(format!("corral-verify-{}", std::process::id()));
            let audit = data_dir.as_deref().map(|dir| (indexer.as_str(), dir));
            let tiers = match &args.config {
                Some(path) => crate::config::IndexerConfig::load(path)?
                    .retention
                    .map(|retention| retention.tiers)
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            verify_storage(url, &tiers, &scratch, audit)
        }
        (None, Some(data_dir)) => verify(data_dir),
        (None, None) => anyhow::bail!("verify needs --data-dir or --storage"),
    }
}

/// Verifies the splits and the audit log under `data_dir`.
pub fn verify(data_dir: &Path) -> anyhow::Result<Report> {
    let root = store_root(data_dir)?;
    let audit_dir = data_dir.join(AUDIT_DIR);
    verify_store(&root, Some(&audit_dir), Some(&audit_dir))
}

/// `verify --storage`: every split published to an object store (and to the stores of `tiers`
/// that have one), each indexer's manifest chain
/// up to the chain head it published; the audit log of `audit` (`--data-dir`, of the indexer
/// `--indexer-id`) when given. Files are fetched into `scratch` (removed afterwards): a file
/// that does not match its manifest is named, as is a split that cannot be fetched.
pub fn verify_storage(
    url: &crate::storage::StorageUrl,
    tiers: &[crate::retention::Tier],
    scratch: &Path,
    audit: Option<(&str, &Path)>,
) -> anyhow::Result<Report> {
    let result = (|| {
        let mut storage = crate::storage::SplitStorage::open(url, scratch)?;
        for tier in tiers {
            if let Some(tier_url) = &tier.storage {
                storage = storage.with_tier_storage(&tier.name, tier_url)?;
            }
        }
        let mut report = Report::default();
        let mut indexers: BTreeMap<String, PathBuf> = BTreeMap::new();
        for key in storage.list()? {
            let placed = storage.download(&key).and_then(|dir| {
                let manifest = Manifest::read(&dir)?;
                let root = scratch.join("by-indexer").join(&manifest.indexer);
                let tier_dir = root.join(SPLITS_DIR).join(&key.tier);
                std::fs::create_dir_all(&tier_dir)?;
                std::fs::rename(&dir, tier_dir.join(&key.id))?;
                indexers.insert(manifest.indexer, root);
                Ok(())
            });
            if let Err(error) = placed {
                report
                    .problems
                    .push(format!("split {} (tier {}): {error:#}", key.id, key.tier));
            }
        }
        // Every indexer that published a chain head, even one none of whose splits is left (a
        // chain whose every split was removed must still be accounted for).
        let published = storage.published_indexers()?;
        for indexer in published
            .iter()
            .map(String::as_str)
            .chain(audit.map(|(id, _)| id))
        {
            indexers
                .entry(indexer.to_owned())
                .or_insert_with(|| scratch.join("by-indexer").join(indexer));
        }
        // The audit log given records the retention steps of the indexer that ran them: with a
        // cluster's janitor, steps on every indexer's splits.
        let evidence = audit.map(|(_, dir)| dir.join(AUDIT_DIR));
        for (indexer, root) in &indexers {
            std::fs::create_dir_all(root.join(SPLITS_DIR))?;
            if let Some(head) = storage.fetch_chain_head(indexer)? {
                std::fs::write(root.join(SPLITS_DIR).join(CHAIN_HEAD_FILE), head)?;
            }
            let audit_dir = audit
                .filter(|(id, _)| id == indexer)
                .map(|(_, dir)| dir.join(AUDIT_DIR));
            let part = verify_store(root, audit_dir.as_deref(), evidence.as_deref())?;
            report.splits += part.splits;
            report.files += part.files;
            report.docs += part.docs;
            report.audit_entries += part.audit_entries;
            report.audit_checked |= part.audit_checked;
            report.problems.extend(
                part.problems
                    .into_iter()
                    .map(|p| format!("indexer {indexer}: {p}")),
            );
        }
        Ok(report)
    })();
    if let Err(error) = std::fs::remove_dir_all(scratch)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %scratch.display(), "cannot remove verify's scratch directory: {error}");
    }
    result
}

/// Verifies the sealed splits under `root` (a split root: `splits/<tier>/<id>/` and the chain
/// head) and, when `audit_dir` is given, the audit log the chain head anchors. A split that is
/// gone must be one whose deletion the audit log `evidence` records (the log of whoever ran
/// retention); without one, deletions cannot be checked and count as problems.
fn verify_store(root: &Path, audit_dir: Option<&Path>, evidence: Option<&Path>) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut manifests: Vec<Split> = Vec::new();
    for dir in sealed_split_dirs(root)? {
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
    let chain_head = read_chain_head(&crate::storage::local_root(root))?;
    let steps = evidence
        .map(|dir| retention_steps(dir).unwrap_or_default())
        .unwrap_or_default();
    // Where each split's history starts: the hash the split sealed after it (or the chain
    // head) points at.
    let mut links: HashMap<&str, &str> = HashMap::new();
    for split in &manifests {
        if let (Some(prev_id), Some(prev)) = (&split.link.0, &split.link.1) {
            links.insert(prev_id, prev);
        }
    }
    if let Some((id, hash)) = chain_head.as_ref().and_then(ChainHead::split) {
        links.entry(id).or_insert(hash);
    }
    let deleted = audited_deletions(&steps, &links, &mut report.problems);
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
    match (chain_head.as_ref().and_then(ChainHead::split), newest) {
        (Some((head_id, _)), _) if deleted.contains(head_id) && !by_id.contains_key(head_id) => {}
        (Some((head_id, head_hash)), Some(_)) => match by_id.get(head_id) {
            None => report.problems.push(format!(
                "split {head_id} was removed: the chain head names it as the newest"
            )),
            Some(versions) if !versions.contains(head_hash) => {
                report.problems.push(format!(
                    "split {head_id}: its manifest differs from the one the chain head recorded"
                ));
            }
            Some(_) => {}
        },
        (Some((head_id, _)), None) => {
            report.problems.push(format!(
                "split {head_id} was removed: the chain head names it and no sealed split is left"
            ));
        }
        (None, Some(newest)) => {
            report.problems.push(format!(
                "the chain head file {SPLITS_DIR}/{CHAIN_HEAD_FILE} names no split, yet split {} is sealed",
                newest.manifest.id
            ));
        }
        (None, None) => {}
    }

    let anchor = chain_head.as_ref().and_then(|h| h.audit.as_ref());
    if let Some(audit_dir) = audit_dir {
        report.audit_checked = true;
        match verify_chain_to(audit_dir, anchor) {
            Ok(entries) => report.audit_entries = entries,
            Err(error) => report.problems.push(format!(
                "audit log: {error:#} (anchor: {})",
                crate::storage::local_root(root)
                    .join(SPLITS_DIR)
                    .join(CHAIN_HEAD_FILE)
                    .display()
            )),
        }
    }
    Ok(report)
}
