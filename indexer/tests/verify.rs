//! `corral-indexer verify` as an auditor runs it: a clean data dir passes with a summary, and
//! each kind of tampering fails naming the split or audit file — also the audit log's tail,
//! day files and last entry, which only the head anchored in `splits/chain-head.json` shows.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use corral_indexer::audit::{AuditLog, Entry};
use corral_indexer::manifest::{Checkpoint, MANIFEST_FILE, manifest_hash};
use corral_indexer::store::{SplitStore, StoreOptions, sealed_split_dirs};
use corral_schema::Timestamp;
use corral_tests::process::wait_for;
use corral_tests::record::record;

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");

/// Days of the audit entries of [`data_dir`]: three on the first, two on the second.
const AUDIT_DAYS: [&str; 2] = ["2026-11-22", "2026-11-23"];

/// A data dir with five audit entries over two day files, then three sealed splits of 50
/// records and an active one; the indexer's audit log is anchored at every seal and at close.
fn data_dir(root: &Path) -> PathBuf {
    let dir = root.join("data");
    let audit = Arc::new(AuditLog::open(&dir).unwrap());
    for (n, who) in ["alice", "bob", "carol", "dave", "erin"].into_iter().enumerate() {
        let day = AUDIT_DAYS[n / 3];
        audit
            .append(Entry {
                at: Timestamp::parse(&format!("{day}T10:00:0{n}Z")).unwrap(),
                who: who.into(),
                role: "reader".into(),
                action: "search".into(),
                params: BTreeMap::from([("corr".to_string(), "req-1".to_string())]),
                count: 10,
                tiers: vec!["hot".into()],
                took_ms: 1,
                refused: None,
                namespaces: None,
            })
            .unwrap();
    }
    let mut store = SplitStore::open(
        &dir,
        StoreOptions {
            split_max_docs: 50,
            split_max_age: Duration::from_secs(3600),
            writer_memory_bytes: 16 * 1024 * 1024,
            indexer_name: "indexer-0".into(),
            max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
        },
    )
    .unwrap();
    store.anchor_audit(Arc::clone(&audit));
    for n in 0..170 {
        let r = record(n);
        let source = serde_json::to_string(&r).unwrap();
        store.add(r, source).unwrap();
        if n % 10 == 9 {
            store.commit(&Checkpoint::from([(0, n as i64 + 1)])).unwrap();
            if store.seal_due() {
                store.seal().unwrap();
            }
        }
    }
    store.close(&Checkpoint::from([(0, 170)])).unwrap();
    dir
}

/// The audit file of `day`.
fn audit_file(dir: &Path, day: &str) -> PathBuf {
    dir.join("audit").join(format!("audit-{day}.jsonl"))
}

fn verify(dir: &Path) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(["verify", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn split_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = sealed_split_dirs(dir).unwrap();
    dirs.sort();
    dirs
}

fn id_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_str().unwrap().to_owned()
}

#[test]
fn a_clean_data_dir_verifies() {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(root.path());
    assert_eq!(split_dirs(&dir).len(), 3);
    let (code, stdout, stderr) = verify(&dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("verified 3 sealed splits (")
            && stdout.contains("150 records): every file matches its manifest and the manifest chain is unbroken; audit log: 5 entries, chain unbroken"),
        "{stdout}"
    );
}

/// Applies `tamper` to a fresh data dir and returns what verify printed on stderr.
fn tampered(tamper: impl FnOnce(&Path, &[PathBuf])) -> String {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(root.path());
    let splits = split_dirs(&dir);
    tamper(&dir, &splits);
    let (code, _, stderr) = verify(&dir);
    assert_eq!(code, 1, "tampering went unnoticed: {stderr}");
    stderr
}

#[test]
fn a_modified_file_is_named() {
    let mut name = String::new();
    let stderr = tampered(|_, splits| {
        let file = fs::read_dir(&splits[1])
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "store"))
            .unwrap();
        name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let mut bytes = fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&file, bytes).unwrap();
    });
    assert!(stderr.contains(&format!("file {name} was modified")), "{stderr}");
}

#[test]
fn an_added_file_is_named() {
    let stderr = tampered(|_, splits| fs::write(splits[0].join("extra.bin"), b"x").unwrap());
    assert!(
        stderr.contains("file extra.bin is not in the manifest"),
        "{stderr}"
    );
}

#[test]
fn a_removed_split_breaks_the_chain() {
    let mut removed = String::new();
    let stderr = tampered(|_, splits| {
        removed = id_of(&splits[1]);
        fs::remove_dir_all(&splits[1]).unwrap();
    });
    assert!(
        stderr.contains(&format!("split {removed} was removed: split")),
        "{stderr}"
    );
}

#[test]
fn removing_the_newest_split_shows_against_the_chain_head() {
    let mut removed = String::new();
    let stderr = tampered(|_, splits| {
        removed = id_of(&splits[2]);
        fs::remove_dir_all(&splits[2]).unwrap();
    });
    assert!(
        stderr.contains(&format!("split {removed} was removed: the chain head names it")),
        "{stderr}"
    );
}

#[test]
fn an_edited_manifest_breaks_the_next_link() {
    let mut edited = String::new();
    let stderr = tampered(|_, splits| {
        edited = id_of(&splits[0]);
        let path = splits[0].join(MANIFEST_FILE);
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("\"docs\": 50", "\"docs\": 49");
        fs::write(&path, text).unwrap();
    });
    assert!(
        stderr.contains(&format!(
            "chain link broken: split {edited}'s manifest is not the one it points at"
        )),
        "{stderr}"
    );
}

#[test]
fn a_removed_audit_entry_is_named() {
    let stderr = tampered(|dir, _| {
        let file = audit_file(dir, AUDIT_DAYS[0]);
        let text = fs::read_to_string(&file).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(n, _)| *n != 1)
            .map(|(_, l)| l)
            .collect();
        fs::write(&file, format!("{}\n", kept.join("\n"))).unwrap();
    });
    assert!(
        stderr.contains("audit log: ") && stderr.contains("line 2: the chain breaks at entry 2"),
        "{stderr}"
    );
}

#[test]
fn a_removed_tail_of_the_audit_log_shows_against_the_anchored_head() {
    let stderr = tampered(|dir, _| {
        let file = audit_file(dir, AUDIT_DAYS[1]);
        let text = fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap();
        fs::write(&file, format!("{first}\n")).unwrap();
        // The indexer does not continue it either (its next anchor would hide the loss).
        let (ok, stderr) = open_by_the_indexer(dir.parent().unwrap(), dir);
        assert!(!ok && stderr.contains("ends at entry 3, but"), "{stderr}");
    });
    assert!(
        stderr.contains("the log ends at entry 3 in ")
            && stderr.contains(&format!("audit-{}.jsonl", AUDIT_DAYS[1]))
            && stderr.contains("but the chain head anchored entry 4")
            && stderr.contains("chain-head.json"),
        "{stderr}"
    );
}

#[test]
fn a_removed_audit_day_file_shows_against_the_anchored_head() {
    let stderr = tampered(|dir, _| fs::remove_file(audit_file(dir, AUDIT_DAYS[1])).unwrap());
    assert!(
        stderr.contains("the log ends at entry 2 in ")
            && stderr.contains(&format!("audit-{}.jsonl", AUDIT_DAYS[0]))
            && stderr.contains("but the chain head anchored entry 4"),
        "{stderr}"
    );
}

#[test]
fn an_edited_last_audit_entry_shows_against_the_anchored_head() {
    let stderr = tampered(|dir, _| {
        let file = audit_file(dir, AUDIT_DAYS[1]);
        let text = fs::read_to_string(&file).unwrap().replace("erin", "mallory");
        fs::write(&file, text).unwrap();
    });
    assert!(
        stderr.contains(&format!(
            "audit-{}.jsonl line 2: entry 4 is not the one the chain head anchored",
            AUDIT_DAYS[1]
        )),
        "{stderr}"
    );
}

/// A retention pass of the real indexer (one that has nothing to do): it opens the audit log.
fn open_by_the_indexer(root: &Path, dir: &Path) -> (bool, String) {
    fs::write(
        root.join("indexer.toml"),
        "[retention]\n[[retention.tiers]]\nname = \"hot\"\nmax_age = \"3650d\"\n",
    )
    .unwrap();
    let pass = Command::new(BIN)
        .args(["retention", "--data-dir"])
        .arg(dir)
        .arg("--config")
        .arg(root.join("indexer.toml"))
        .env("CORRAL_LOG", "warn")
        .output()
        .unwrap();
    (
        pass.status.success(),
        String::from_utf8_lossy(&pass.stderr).into_owned(),
    )
}

/// The `audit.repair` entries of the log.
fn repairs(dir: &Path) -> Vec<corral_indexer::audit::Stored> {
    let log = AuditLog::open(dir).unwrap();
    log.read(None, None, Some("indexer"), 10).unwrap().0
}

/// A file cut in the middle of its last, anchored entry: the indexer opening the log cuts the
/// torn line and records the cut, then refuses to continue a log that lost an anchored entry;
/// verify names the entry.
#[test]
fn a_truncated_audit_file_is_cut_recorded_and_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(root.path());
    let file = audit_file(&dir, AUDIT_DAYS[1]);
    let text = fs::read_to_string(&file).unwrap();
    let cut = text.len() - 40;
    fs::write(&file, &text[..cut]).unwrap();
    let (ok, stderr) = open_by_the_indexer(root.path(), &dir);
    assert!(!ok, "the indexer continued a log that lost an anchored entry");
    assert!(
        stderr.contains("holds another entry 4") && stderr.contains("chain-head.json anchored entry 4"),
        "{stderr}"
    );
    let repairs = repairs(&dir);
    assert_eq!(repairs.len(), 1, "the cut is recorded: {repairs:?}");
    assert_eq!(
        (repairs[0].seq, repairs[0].entry.action.as_str()),
        (4, "audit.repair")
    );
    assert_eq!(
        repairs[0].entry.params["file"],
        format!("audit-{}.jsonl", AUDIT_DAYS[1])
    );
    assert_eq!(
        repairs[0].entry.params["bytes_cut"],
        (cut - text.find('\n').unwrap() - 1).to_string()
    );
    let (code, _, stderr) = verify(&dir);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("entry 4 is not the one the chain head anchored"),
        "{stderr}"
    );
}

/// A crash in the middle of writing an entry nobody anchored yet: the torn line is cut, the cut
/// recorded, the indexer goes on and verify passes.
#[test]
fn a_torn_last_line_after_the_anchor_is_cut_and_recorded() {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(root.path());
    let log = AuditLog::open(&dir).unwrap();
    let entry = |who: &str| Entry {
        at: Timestamp::now(),
        who: who.into(),
        role: "reader".into(),
        action: "search".into(),
        params: BTreeMap::new(),
        count: 0,
        tiers: vec![],
        took_ms: 0,
        refused: None,
        namespaces: None,
    };
    log.append(entry("frank")).unwrap();
    drop(log);
    let newest = corral_indexer::audit::segments(&dir.join("audit"))
        .unwrap()
        .pop()
        .unwrap();
    let text = fs::read_to_string(&newest).unwrap();
    fs::write(&newest, &text[..text.len() - 30]).unwrap();
    let (ok, stderr) = open_by_the_indexer(root.path(), &dir);
    assert!(ok, "{stderr}");
    let repairs = repairs(&dir);
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert_eq!(repairs[0].seq, 5);
    assert!(
        repairs[0].entry.params["cut_text"].contains("frank"),
        "{repairs:?}"
    );
    let (code, stdout, stderr) = verify(&dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("audit log: 6 entries"), "{stdout}");
}

/// Damage that is not a torn last line stops the real indexer before it serves, naming the
/// file and line, and nothing of the log is cut.
#[test]
fn a_damaged_audit_line_stops_the_indexer_naming_file_and_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(root.path());
    let newest = audit_file(&dir, AUDIT_DAYS[1]);
    let damaged_newest = fs::read_to_string(&newest)
        .unwrap()
        .replacen("{\"seq\":3", "{\"seq\":3,oops", 1);
    fs::write(&newest, &damaged_newest).unwrap();
    fs::create_dir_all(root.path().join("pods")).unwrap();
    let port = corral_tests::broker::free_port().unwrap();
    let mut indexer = corral_tests::process::ChildGuard(
        Command::new(BIN)
            .arg("standalone")
            .args(["--logs", &format!("{}/pods/*.log", root.path().display())])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CORRAL_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait_for(
        "the indexer to refuse a damaged audit log (it kept running)",
        Duration::from_secs(20),
        || indexer.0.try_wait().unwrap(),
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(indexer.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{} line 1: not an audit entry", newest.display())),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(&newest).unwrap(),
        damaged_newest,
        "nothing cut"
    );
}

/// Someone removes a split and appends a well-chained `retention.delete` for it: the entry
/// names a manifest the split's history never reached, so verify names both.
#[test]
fn a_retention_delete_that_does_not_follow_the_splits_history_is_named() {
    let mut removed = String::new();
    let stderr = tampered(|dir, splits| {
        removed = id_of(&splits[1]);
        // The hash of another split's manifest: not where this split's chain ended.
        let other = manifest_hash(&splits[0]).unwrap();
        fs::remove_dir_all(&splits[1]).unwrap();
        let audit = AuditLog::open(dir).unwrap();
        audit
            .append(Entry {
                at: Timestamp::now(),
                who: "retention".into(),
                role: "system".into(),
                action: "retention.delete".into(),
                params: BTreeMap::from([
                    ("split".to_string(), removed.clone()),
                    ("manifest_sha256".to_string(), other),
                ]),
                count: 50,
                tiers: vec!["hot".into()],
                took_ms: 1,
                refused: None,
                namespaces: None,
            })
            .unwrap();
    });
    assert!(
        stderr.contains(&format!(
            "split {removed}: the audit log's retention.delete (entry 5) names manifest"
        )) && stderr.contains("the deletion does not follow from the split's history"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("split {removed} was removed: split")),
        "{stderr}"
    );
}
