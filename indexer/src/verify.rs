//! `corral-indexer verify` (DESIGN §4.2): re-hashes every file of every sealed split against its
//! manifest, walks the manifest chain of each indexer up to the chain head, and walks the audit
//! log's chain up to the head the chain head anchors. A split that is gone must be one the audit
//! log records retention deleting, and that deletion must name a manifest the split's history
//! (its link from the next split or the chain head, then the audited moves and rewrites)
//! reaches. Every problem names the split or audit file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::audit::{AUDIT_DIR, AuditHead, RecordedStep, retention_steps, verify_chain_to};
use crate::control::ControlState;
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
    /// The audit logs checked (one per indexer for `verify --storage`).
    pub audit_logs: usize,
    /// True when the logs were checked against the heads in the control topic (`--brokers`).
    pub control_checked: bool,
    /// Entries after the last head their indexer published to the control topic: not yet
    /// anchored outside the store, so they do not count as evidence of a deletion.
    pub unanchored: u64,
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
            // The steps may come from several indexers' logs (janitors take turns): their
            // `seq`s do not order them, the manifests they name do.
            for step in steps.iter().filter(|s| s.split == delete.split) {
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
            let control = match &args.brokers {
                Some(brokers) => {
                    let properties = match &args.config {
                        Some(path) => crate::config::IndexerConfig::load(path)?.kafka,
                        None => Default::default(),
                    };
                    let topic =
                        crate::control::ControlTopic::connect(brokers, &args.control_topic, &properties)
                            .with_context(|| {
                                format!(
                                    "cannot read the control topic {} on {brokers}",
                                    args.control_topic
                                )
                            })?;
                    Some(topic.read_to_end()?)
                }
                None => None,
            };
            verify_storage(url, &tiers, &scratch, audit, control.as_ref())
        }
        (None, Some(data_dir)) => verify(data_dir),
        (None, None) => anyhow::bail!("verify needs --data-dir or --storage"),
    }
}

/// Verifies the splits and the audit log under `data_dir`.
pub fn verify(data_dir: &Path) -> anyhow::Result<Report> {
    let root = store_root(data_dir)?;
    let audit_dir = data_dir.join(AUDIT_DIR);
    let steps = retention_steps(&audit_dir).unwrap_or_default();
    let mut report = verify_store(&root, &steps, &HashMap::new())?;
    let anchor = read_chain_head(&crate::storage::local_root(&root))?.and_then(|h| h.audit);
    let anchored_in = crate::storage::local_root(&root)
        .join(SPLITS_DIR)
        .join(CHAIN_HEAD_FILE);
    check_audit_log(
        &mut report,
        &audit_dir,
        &[Anchor {
            by: "the chain head".into(),
            head: anchor,
            at: anchored_in.display().to_string(),
        }],
        "audit log",
    );
    Ok(report)
}

/// A head of an audit log recorded outside it.
struct Anchor {
    /// Who recorded it, for messages: "the chain head", "the control topic".
    by: String,
    head: Option<AuditHead>,
    /// Where it is.
    at: String,
}

/// Walks the audit log in `dir` against each anchor, counting its entries into `report` or
/// naming the problem, prefixed with `what`.
fn check_audit_log(report: &mut Report, dir: &Path, anchors: &[Anchor], what: &str) {
    report.audit_checked = true;
    report.audit_logs += 1;
    let mut entries = None;
    for anchor in anchors {
        match verify_chain_to(dir, anchor.head.as_ref(), &anchor.by) {
            Ok(n) => entries = Some(n),
            Err(error) => {
                report
                    .problems
                    .push(format!("{what}: {error:#} (anchor: {})", anchor.at));
                return;
            }
        }
    }
    if anchors.is_empty() {
        match verify_chain_to(dir, None, "") {
            Ok(n) => entries = Some(n),
            Err(error) => report.problems.push(format!("{what}: {error:#}")),
        }
    }
    report.audit_entries += entries.unwrap_or_default();
}

/// `verify --storage`: every split published to an object store (and to the stores of `tiers`
/// that have one), each indexer's manifest chain up to the chain head it published, every
/// object of the store accounted for, and every indexer's audit log uploaded there against the
/// head its chain head anchors and, with `control` (`--brokers`), the head it published to the
/// control topic. The audit log of `audit` (`--data-dir`, of the indexer `--indexer-id`) is
/// checked too when given. Files are fetched into `scratch` (removed afterwards): a file that
/// does not match its manifest is named, as is a split that cannot be fetched.
pub fn verify_storage(
    url: &crate::storage::StorageUrl,
    tiers: &[crate::retention::Tier],
    scratch: &Path,
    audit: Option<(&str, &Path)>,
    control: Option<&ControlState>,
) -> anyhow::Result<Report> {
    let result = (|| {
        let mut storage = crate::storage::SplitStorage::open(url, scratch)?;
        for tier in tiers {
            if let Some(tier_url) = &tier.storage {
                storage = storage.with_tier_storage(&tier.name, tier_url)?;
            }
        }
        let mut report = Report {
            control_checked: control.is_some(),
            ..Report::default()
        };
        let mut indexers: BTreeMap<String, PathBuf> = BTreeMap::new();
        // The files each published split's manifest accounts for, by (tier, id).
        let mut accounted: HashMap<(String, String), HashSet<String>> = HashMap::new();
        let published_keys = storage.list()?;
        for key in &published_keys {
            let placed = storage.download(key).and_then(|dir| {
                let manifest = Manifest::read(&dir)?;
                let mut files: HashSet<String> = manifest.files.keys().cloned().collect();
                files.insert(crate::manifest::MANIFEST_FILE.to_owned());
                accounted.insert((key.tier.clone(), key.id.clone()), files);
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
        account_objects(&storage, &accounted, &mut report.problems)?;
        // Every indexer that published a chain head or an audit log, even one none of whose
        // splits is left (a chain whose every split was removed must still be accounted for).
        let with_logs = storage.audited_indexers()?;
        for indexer in storage
            .published_indexers()?
            .iter()
            .chain(&with_logs)
            .map(String::as_str)
            .chain(audit.map(|(id, _)| id))
            .chain(
                control
                    .into_iter()
                    .flat_map(|c| c.heads.keys().map(String::as_str)),
            )
        {
            indexers
                .entry(indexer.to_owned())
                .or_insert_with(|| scratch.join("by-indexer").join(indexer));
        }
        // Each indexer's audit log as uploaded, and the retention steps the logs record: a
        // janitor's log holds steps on every indexer's splits. With the control topic, only
        // steps at or before the head an indexer published there count.
        let mut logs: BTreeMap<&str, PathBuf> = BTreeMap::new();
        let mut steps = Vec::new();
        let mut unanchored: HashMap<String, String> = HashMap::new();
        let mut add_steps = |indexer: &str, dir: &Path, unanchored_entries: &mut u64| {
            let head = control.map(|c| c.heads.get(indexer).map(|h| h.seq));
            for step in retention_steps(dir).unwrap_or_default() {
                match head {
                    Some(head) if head.is_none_or(|head| step.seq > head) => {
                        if step.action == "retention.delete" {
                            unanchored.insert(
                                step.split.clone(),
                                format!("entry {} of indexer {indexer}'s audit log", step.seq),
                            );
                        }
                        *unanchored_entries += 1;
                    }
                    _ => steps.push(step),
                }
            }
        };
        for indexer in indexers.keys() {
            let dir = scratch.join("audit").join(indexer);
            if crate::audit_store::fetch_log(&storage, indexer, &dir, &mut report.problems)? > 0 {
                add_steps(indexer, &dir, &mut report.unanchored);
                logs.insert(indexer, dir);
            }
        }
        if let Some((indexer, dir)) = audit {
            add_steps(indexer, &dir.join(AUDIT_DIR), &mut report.unanchored);
        }
        for (indexer, root) in &indexers {
            std::fs::create_dir_all(root.join(SPLITS_DIR))?;
            let chain_head = storage.fetch_chain_head(indexer)?;
            if let Some(head) = &chain_head {
                std::fs::write(root.join(SPLITS_DIR).join(CHAIN_HEAD_FILE), head)?;
            }
            let mut part = verify_store(root, &steps, &unanchored)?;
            let anchor = read_chain_head(&crate::storage::local_root(root))?.and_then(|h| h.audit);
            let mut anchors = vec![Anchor {
                by: "the chain head".into(),
                head: anchor.clone(),
                at: format!("indexers/{indexer}/{CHAIN_HEAD_FILE} in {url}"),
            }];
            if let Some(control) = control {
                match control.heads.get(indexer) {
                    Some(head) => anchors.push(Anchor {
                        by: "the control topic".into(),
                        head: Some(AuditHead {
                            seq: head.seq,
                            sha256: head.sha256.clone(),
                        }),
                        at: format!("the head indexer {indexer} published at {}", head.at),
                    }),
                    None if logs.contains_key(indexer.as_str()) || anchor.is_some() => part.problems.push(
                        "the control topic holds no audit head of this indexer, yet its audit log has entries: its head was never published or was removed, so the log's tail cannot be checked".to_owned()
                    ),
                    None => {}
                }
            }
            match logs.get(indexer.as_str()) {
                Some(dir) => check_audit_log(&mut part, dir, &anchors, "audit log in the store"),
                None => {
                    if let Some(anchor) = anchors.iter().rev().find(|a| a.head.is_some()) {
                        part.problems.push(format!(
                            "its audit log is not in the object store (indexers/{indexer}/{}/), yet {} anchored entry {} ({}): the log was removed",
                            crate::storage::AUDIT_CHUNKS_DIR,
                            anchor.by,
                            anchor.head.as_ref().map_or(0, |h| h.seq),
                            anchor.at,
                        ));
                    }
                }
            }
            if let Some((id, dir)) = audit
                && id == indexer
            {
                check_audit_log(
                    &mut part,
                    &dir.join(AUDIT_DIR),
                    &anchors,
                    &format!("audit log in {}", dir.display()),
                );
            }
            report.splits += part.splits;
            report.files += part.files;
            report.docs += part.docs;
            report.audit_entries += part.audit_entries;
            report.audit_logs += part.audit_logs;
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

/// Names every object of the store that nothing accounts for: a file in a published split's
/// directory its manifest does not list, or an object outside the splits, chain heads, audit
/// logs and control objects. A split directory without a manifest is an upload in progress or
/// cut short (the next start of its indexer finishes or discards it): it is no problem.
fn account_objects(
    storage: &crate::storage::SplitStorage,
    accounted: &HashMap<(String, String), HashSet<String>>,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    use crate::storage::{AUDIT_CHUNKS_DIR, CLAIMS_DIR, CONTROL_DIR, INDEXERS_DIR};
    for (store, parts) in storage.all_objects()? {
        let path = parts.join("/");
        let mut in_split = None;
        let known = match parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            [SPLITS_DIR, tier, id, file] => {
                // A split that could not be fetched was named already.
                let key = ((*tier).to_owned(), (*id).to_owned());
                in_split = Some(*id);
                accounted.get(&key).is_none_or(|files| files.contains(*file))
            }
            [INDEXERS_DIR, _, CHAIN_HEAD_FILE] | [INDEXERS_DIR, _, AUDIT_CHUNKS_DIR, _] => true,
            [CONTROL_DIR, ..] | [CLAIMS_DIR, ..] => true,
            _ => false,
        };
        match (known, in_split) {
            (true, _) => {}
            (false, Some(id)) => problems.push(format!(
                "split {id}: object {path} in {store} is not in the split's manifest: it was added (or left by a publication of a new version cut short)"
            )),
            (false, None) => problems.push(format!(
                "object {path} in {store} is not part of any published split, chain head, audit log or control object: it was added"
            )),
        }
    }
    Ok(())
}

/// Verifies the sealed splits under `root` (a split root: `splits/<tier>/<id>/` and the chain
/// head). A split that is gone must be one whose deletion `steps` records (from the log of
/// whoever ran retention); `unanchored` names the splits whose deletion only a not yet anchored
/// entry records, for the message.
fn verify_store(
    root: &Path,
    steps: &[RecordedStep],
    unanchored: &HashMap<String, String>,
) -> anyhow::Result<Report> {
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
    let deleted = audited_deletions(steps, &links, &mut report.problems);
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
                        "split {prev_id} was removed: split {id} points at it, it is gone, and the audit log records no retention deletion of it{}",
                        not_anchored(unanchored, prev_id)
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
    // A chain does not fork: two splits pointing at the same one means one was added.
    let mut pointed: HashMap<&str, &str> = HashMap::new();
    for split in &manifests {
        if let (Some(prev_id), _) = &split.link
            && let Some(other) = pointed.insert(prev_id, &split.manifest.id)
        {
            report.problems.push(format!(
                "splits {other} and {} both follow split {prev_id}: the chain forks, so one of them was added",
                split.manifest.id
            ));
        }
    }
    // The chain head names the newest sealed split.
    let newest = manifests.iter().max_by(|a, b| a.manifest.id.cmp(&b.manifest.id));
    match (chain_head.as_ref().and_then(ChainHead::split), newest) {
        (Some((head_id, _)), _) if deleted.contains(head_id) && !by_id.contains_key(head_id) => {}
        (Some((head_id, head_hash)), Some(_)) => match by_id.get(head_id) {
            None => report.problems.push(format!(
                "split {head_id} was removed: the chain head names it as the newest{}",
                not_anchored(unanchored, head_id)
            )),
            Some(versions) if !versions.contains(head_hash) => {
                report.problems.push(format!(
                    "split {head_id}: its manifest differs from the one the chain head recorded"
                ));
            }
            Some(_) => {
                // Nothing of the same indexer was sealed after the chain head's split.
                let owner = manifests
                    .iter()
                    .find(|s| s.manifest.id == head_id)
                    .map(|s| s.manifest.indexer.as_str());
                for later in manifests.iter().filter(|s| {
                    Some(s.manifest.indexer.as_str()) == owner && s.manifest.id.as_str() > head_id
                }) {
                    report.problems.push(format!(
                        "split {} is newer than split {head_id}, the newest the chain head names: it was added (or published after the chain head was last written)",
                        later.manifest.id
                    ));
                }
            }
        },
        (Some((head_id, _)), None) => {
            report.problems.push(format!(
                "split {head_id} was removed: the chain head names it and no sealed split is left{}",
                not_anchored(unanchored, head_id)
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

    Ok(report)
}

/// The end of a removed split's message when its deletion is recorded only after the last head
/// its indexer published to the control topic.
fn not_anchored(unanchored: &HashMap<String, String>, split: &str) -> String {
    match unanchored.get(split) {
        Some(entry) => format!(
            " that the control topic anchors ({entry} records one, after the last head that indexer published there: an entry the control topic has not seen cannot be told from a forged one; if it is new, verify again after the next head, at most a minute later)"
        ),
        None => String::new(),
    }
}
