//! `corral-indexer verify` as an auditor runs it: a clean data dir passes with a summary, and
//! each kind of tampering fails naming the split or audit file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use corral_indexer::audit::{AuditLog, Entry};
use corral_indexer::manifest::{Checkpoint, MANIFEST_FILE};
use corral_indexer::store::{SplitStore, StoreOptions, sealed_split_dirs};
use corral_schema::{Level, Record, Stream, Timestamp};

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");

fn record(n: u64) -> Record {
    Record {
        v: 1,
        id: format!("{n:032x}"),
        ts: Timestamp::parse("2026-11-23T10:00:00Z")
            .unwrap()
            .saturating_add_nanos(n as i64),
        observed_ts: Timestamp::parse("2026-11-23T10:00:00Z").unwrap(),
        service: "orders".into(),
        version: "1".into(),
        instance: "orders-0/app".into(),
        node: "n".into(),
        namespace: "shop".into(),
        pod: "orders-0".into(),
        container: "app".into(),
        stream: Stream::Stdout,
        level: Some(Level::Info),
        corr: Some(format!("req-{}", n / 10)),
        msg: format!("record {n}"),
        fields: serde_json::Map::new(),
        flags: vec![],
        original_ts: None,
    }
}

/// A data dir with three sealed splits of 50 records, an active one, and audit entries.
fn data_dir(root: &Path) -> PathBuf {
    let dir = root.join("data");
    let mut store = SplitStore::open(
        &dir,
        StoreOptions {
            split_max_docs: 50,
            split_max_age: Duration::from_secs(3600),
            writer_memory_bytes: 16 * 1024 * 1024,
            indexer_name: "indexer-0".into(),
        },
    )
    .unwrap();
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
    let audit = AuditLog::open(&dir).unwrap();
    for who in ["alice", "bob", "carol"] {
        audit
            .append(Entry {
                at: Timestamp::now(),
                who: who.into(),
                role: "reader".into(),
                action: "search".into(),
                params: BTreeMap::from([("corr".to_string(), "req-1".to_string())]),
                count: 10,
                tiers: vec!["hot".into()],
                took_ms: 1,
                refused: None,
            })
            .unwrap();
    }
    dir
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
            && stdout.contains("150 records): every file matches its manifest and the manifest chain is unbroken; audit log: 3 entries, chain unbroken"),
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
        let file = fs::read_dir(dir.join("audit"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .unwrap();
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
