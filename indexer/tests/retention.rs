//! Retention as an operator and an auditor meet it, with records carrying old timestamps (no
//! waiting days): `corral-indexer retention` moves splits to the archive tier, rewrites expired
//! ones down to what keep rules and holds protect, deletes the rest, records each step in the
//! audit log, and `verify` still passes; a crash between any two steps of a move leaves the
//! split searchable exactly once.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use corral_indexer::audit::{AUDIT_DIR, AuditLog, Stored};
use corral_indexer::config::IndexerConfig;
use corral_indexer::holds::{Holds, NewHold, Selector};
use corral_indexer::manifest::{Checkpoint, Manifest};
use corral_indexer::query::{Filters, QueryEngine};
use corral_indexer::retention::Retention;
use corral_indexer::store::{Catalog, SplitStore, StoreOptions, all_ids, sealed_split_dirs};
use corral_schema::{Record, Timestamp};
use corral_tests::broker::free_port;
use corral_tests::http::request;
use corral_tests::process::{ChildGuard, wait_until};
use corral_tests::record::record_of;

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");
const DAY_NS: i64 = 86_400_000_000_000;

const CONFIG: &str = r#"
[retention]
check_interval = "1m"
[[retention.tiers]]
name = "hot"
max_age = "7d"
[[retention.tiers]]
name = "archive"
max_age = "400d"
[[retention.keep]]
service = "payments"
max_age = "7y"
"#;

fn record(n: u64, service: &str, corr: &str, days_ago: i64) -> Record {
    Record {
        ts: Timestamp::now().saturating_add_nanos(-days_ago * DAY_NS + n as i64),
        observed_ts: Timestamp::now(),
        corr: Some(corr.into()),
        msg: format!("{service} handled request {corr}"),
        fields: serde_json::json!({"http": {"status": 200}, "user": {"id": n % 7}})
            .as_object()
            .unwrap()
            .clone(),
        ..record_of(service, n)
    }
}

fn open(dir: &Path) -> SplitStore {
    SplitStore::open(
        dir,
        StoreOptions {
            split_max_docs: 1_000_000,
            split_max_age: Duration::from_secs(3600),
            writer_memory_bytes: 16 * 1024 * 1024,
            indexer_name: "indexer-0".into(),
            max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
        },
    )
    .unwrap()
}

/// Seals one split holding `records`.
fn seal(store: &mut SplitStore, records: Vec<Record>, offset: &mut i64) {
    for record in records {
        let source = serde_json::to_string(&record).unwrap();
        store.add(record, source).unwrap();
        *offset += 1;
    }
    store.commit(&Checkpoint::from([(0, *offset)])).unwrap();
    store.seal().unwrap();
}

/// Three sealed splits: 40 records 500 days old (10 payments, 30 gateway of which 5 are
/// request `case-7`), 30 records 30 days old, 20 records an hour old.
fn data_dir(root: &Path) -> PathBuf {
    let dir = root.join("data");
    let mut store = open(&dir);
    let mut offset = 0;
    let old = (0..40)
        .map(|n| match n {
            0..10 => record(n, "payments", &format!("req-{n}"), 500),
            10..15 => record(n, "gateway", "case-7", 500),
            _ => record(n, "gateway", &format!("req-{n}"), 500),
        })
        .collect();
    seal(&mut store, old, &mut offset);
    let month = (100..130)
        .map(|n| record(n, "orders", &format!("month-{}", n % 3), 30))
        .collect();
    seal(&mut store, month, &mut offset);
    let fresh = (200..220).map(|n| record(n, "orders", "fresh", 0)).collect();
    seal(&mut store, fresh, &mut offset);
    drop(store);
    std::fs::write(root.join("indexer.toml"), CONFIG).unwrap();
    dir
}

fn retention(root: &Path, extra: &[&str], crash_at: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("retention")
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--config")
        .arg(root.join("indexer.toml"))
        .args(extra)
        .env("CORRAL_LOG", "warn");
    if let Some(stage) = crash_at {
        command.env("CORRAL_RETENTION_CRASH_AT", stage);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "retention failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn verify(dir: &Path) -> (bool, String) {
    let output = Command::new(BIN)
        .arg("verify")
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Tier of each sealed split, by id, and the records in each.
fn tiers(dir: &Path) -> BTreeMap<String, (String, u64)> {
    sealed_split_dirs(dir)
        .unwrap()
        .into_iter()
        .map(|d| {
            let m = Manifest::read(&d).unwrap();
            (m.id, (m.tier, m.docs))
        })
        .collect()
}

fn corr(engine: &QueryEngine, corr: &str, tiers: Option<&[&str]>) -> Vec<String> {
    engine
        .search(&Filters {
            corr: Some(corr.into()),
            limit: 1000,
            tiers: tiers.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
            ..Filters::default()
        })
        .unwrap()
        .hits
        .into_iter()
        .map(|h| serde_json::from_str::<Record>(&h.source).unwrap().service)
        .collect()
}

fn retention_entries(dir: &Path) -> Vec<Stored> {
    let log = AuditLog::open(dir).unwrap();
    let (entries, _) = log.read(None, None, Some("retention"), 1000).unwrap();
    entries
}

#[test]
fn splits_move_to_archive_expire_and_keep_what_rules_and_holds_protect() {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(root.path());
    let ids: Vec<String> = tiers(&dir).keys().cloned().collect();
    let (old, month, fresh) = (&ids[0], &ids[1], &ids[2]);
    // A legal hold on request case-7.
    let holds = Holds::open(&dir).unwrap();
    let hold = holds
        .create(
            NewHold {
                selector: Selector {
                    corr: Some("case-7".into()),
                    ..Selector::default()
                },
                reason: "case 2026-114".into(),
            },
            "legal",
        )
        .unwrap();
    drop(holds);

    // The dry run says what and why, and changes nothing.
    let before = tiers(&dir);
    let plan = stdout(&retention(root.path(), &["--dry-run"], None));
    assert!(
        plan.contains(&format!(
            "rewrite split {old} hot → archive (keep 15 of 40 records)"
        )),
        "{plan}"
    );
    assert!(
        plan.contains("10 by keep rule #1 (service=payments for 7y)"),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("5 by hold {} (case 2026-114)", hold.id)),
        "{plan}"
    );
    assert!(
        plan.contains(&format!(
            "move    split {month} hot → archive (30 records): newest record"
        )),
        "{plan}"
    );
    assert!(plan.contains("older than hot's max_age 7d"), "{plan}");
    assert!(!plan.contains(fresh.as_str()), "{plan}");
    assert!(
        plan.contains(
            "dry run: would have 1 moved, 1 rewritten, 0 deleted (1 holds in force); nothing was changed"
        ),
        "{plan}"
    );
    assert_eq!(tiers(&dir), before);

    // The pass.
    let done = stdout(&retention(root.path(), &[], None));
    assert!(done.contains("1 moved, 1 rewritten, 0 deleted"), "{done}");
    assert_eq!(
        tiers(&dir),
        BTreeMap::from([
            (old.clone(), ("archive".to_owned(), 15)),
            (month.clone(), ("archive".to_owned(), 30)),
            (fresh.clone(), ("hot".to_owned(), 20)),
        ])
    );
    let (ok, report) = verify(&dir);
    assert!(ok, "{report}");
    {
        let store = open(&dir);
        let engine = QueryEngine::new(store.catalog());
        // An auditor finds archived records by corr; a reader (hot only) does not.
        assert_eq!(corr(&engine, "month-1", None).len(), 10);
        assert_eq!(corr(&engine, "month-1", Some(&["hot"])).len(), 0);
        assert_eq!(corr(&engine, "case-7", None), vec!["gateway"; 5]);
        assert_eq!(corr(&engine, "req-3", None), vec!["payments"]);
        assert_eq!(corr(&engine, "req-20", None), Vec::<String>::new());
        assert_eq!(corr(&engine, "fresh", Some(&["hot"])).len(), 20);
        // Field and text queries work on archived splits.
        let q = |q: &str| {
            engine
                .count(&Filters {
                    q: Some(q.into()),
                    ..Filters::default()
                })
                .unwrap()
        };
        assert_eq!(q("fields.http.status:200"), 65);
        assert_eq!(q("handled"), 65);
    }
    let entries = retention_entries(&dir);
    let actions: Vec<(&str, &str, u64)> = entries
        .iter()
        .map(|e| {
            (
                e.entry.action.as_str(),
                e.entry.params["split"].as_str(),
                e.entry.count,
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("retention.rewrite", old.as_str(), 25),
            ("retention.move", month.as_str(), 30)
        ]
    );
    assert_eq!(entries[0].entry.params["kept"], "15");
    assert_eq!(entries[0].entry.params["to"], "archive");

    // A second pass has nothing to do: what is left of the old split is all protected.
    let again = stdout(&retention(root.path(), &[], None));
    assert!(again.contains("0 moved, 0 rewritten, 0 deleted"), "{again}");

    // The hold released: its records go, the payments records stay.
    Holds::open(&dir).unwrap().release(&hold.id).unwrap();
    let released = stdout(&retention(root.path(), &[], None));
    assert!(
        released.contains(&format!(
            "rewrite split {old} archive → archive (keep 10 of 15 records)"
        )),
        "{released}"
    );
    // Without the keep rule the rest of the split is deleted.
    std::fs::write(
        root.path().join("indexer.toml"),
        CONFIG.split("[[retention.keep]]").next().unwrap(),
    )
    .unwrap();
    let deleted = stdout(&retention(root.path(), &[], None));
    assert!(
        deleted.contains(&format!("delete  split {old} in archive (10 records)")),
        "{deleted}"
    );
    assert_eq!(tiers(&dir).len(), 2);
    let (ok, report) = verify(&dir);
    assert!(ok, "an audited deletion is not tampering: {report}");
    let entries = retention_entries(&dir);
    assert_eq!(entries.last().unwrap().entry.action, "retention.delete");
    assert_eq!(entries.last().unwrap().entry.count, 10);
    {
        let store = open(&dir);
        let engine = QueryEngine::new(store.catalog());
        assert_eq!(corr(&engine, "req-3", None), Vec::<String>::new());
        assert_eq!(engine.count(&Filters::default()).unwrap(), 50);
    }

    // Removing a split by hand is not retention: verify names it.
    std::fs::remove_dir_all(dir.join("store/splits/archive").join(month)).unwrap();
    let (ok, report) = verify(&dir);
    assert!(!ok);
    assert!(report.contains(&format!("split {month} was removed")), "{report}");
}

#[test]
fn a_crash_between_any_two_steps_of_a_move_leaves_every_record_searchable_once() {
    for (stage, moved) in [
        ("staged", false),
        ("audited", false),
        ("set-aside", true),
        ("placed", true),
    ] {
        let root = tempfile::tempdir().unwrap();
        let dir = data_dir(root.path());
        std::fs::write(root.path().join("indexer.toml"), CONFIG.replace("400d", "1000d")).unwrap();
        // The oldest split is the first step of the pass: the one the crash interrupts.
        let first = tiers(&dir).keys().next().unwrap().clone();
        let output = retention(root.path(), &[], Some(stage));
        assert!(!output.status.success(), "{stage}: the pass was to crash");

        // The next start finishes or undoes the step.
        let store = open(&dir);
        let engine = QueryEngine::new(store.catalog());
        assert_eq!(
            engine.count(&Filters::default()).unwrap(),
            90,
            "{stage}: every record searchable"
        );
        let ids = all_ids(&dir).unwrap();
        let mut seen: HashMap<&str, u32> = HashMap::new();
        for id in &ids {
            *seen.entry(id.as_str()).or_default() += 1;
        }
        assert_eq!(
            (ids.len(), seen.len()),
            (90, 90),
            "{stage}: no record twice on disk"
        );
        let tier = &tiers(&dir)[&first].0;
        assert_eq!(tier, if moved { "archive" } else { "hot" }, "{stage}");
        drop(engine);
        drop(store);
        assert!(
            !dir.join("retention").try_exists().unwrap()
                || std::fs::read_dir(dir.join("retention")).unwrap().count() == 0,
            "{stage}: staging cleaned up"
        );
        let (ok, report) = verify(&dir);
        assert!(ok, "{stage}: {report}");

        // The next pass completes the work.
        let done = stdout(&retention(root.path(), &[], None));
        let expected = if moved { "1 moved" } else { "2 moved" };
        assert!(done.contains(expected), "{stage}: {done}");
        let all: Vec<String> = tiers(&dir).values().map(|(t, _)| t.clone()).collect();
        assert_eq!(all, vec!["archive", "archive", "hot"], "{stage}");
        let (ok, report) = verify(&dir);
        assert!(ok, "{stage}: {report}");
        assert!(root.path().join("data").join(AUDIT_DIR).try_exists().unwrap());
    }
}

#[test]
fn the_pass_is_refused_while_an_indexer_holds_the_data_dir_and_bad_configs_are_named() {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(root.path());
    let held = AuditLog::open(&dir).unwrap();
    let output = retention(root.path(), &[], None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    drop(held);

    for (config, want) in [
        (
            "[indexer]\ncommit_interval = \"1s\"\n",
            "has no [retention] section",
        ),
        (
            "[retention]\n[[retention.tiers]]\nname = \"archive\"\nmax_age = \"7d\"\n",
            "the first tier must be \"hot\"",
        ),
        (
            "[retention]\n[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7 days\"\n",
            "retention.tiers[0] (hot).max_age",
        ),
        (
            "[retention]\n[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.keep]]\nmax_age = \"1y\"\n",
            "retention.keep[0] selects nothing",
        ),
        ("[retention]\nkeep_for = \"1y\"\n", "unknown field `keep_for`"),
    ] {
        std::fs::write(root.path().join("indexer.toml"), config).unwrap();
        let output = retention(root.path(), &["--dry-run"], None);
        assert!(!output.status.success(), "{config}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(want), "{config:?}: {stderr}");
    }
}

/// Tiers after hot keep no term positions: a phrase search tells the caller which splits it could
/// not search instead of failing, and a hold whose query is a phrase still protects its records
/// there (answered as all of the phrase's words: keeping too much, never too little).
#[test]
fn phrases_on_the_archive_are_reported_and_phrase_holds_still_protect() {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(root.path());
    let config = IndexerConfig::parse(CONFIG).unwrap().retention.unwrap();
    let catalog = Arc::new(Catalog::open_sealed(&dir).unwrap());
    let retention = Retention::new(&dir, config, Arc::clone(&catalog), 16 * 1024 * 1024);
    let audit = AuditLog::open(&dir).unwrap();
    let now = Timestamp::now();
    // The month-old split moves to archive; the old one is cut down to its payments records.
    retention.run(&[], &audit, now).unwrap();
    let tiers_now: Vec<(String, u64)> = tiers(&dir).into_values().collect();
    assert_eq!(
        tiers_now,
        vec![
            ("archive".to_owned(), 10),
            ("archive".to_owned(), 30),
            ("hot".to_owned(), 20)
        ]
    );

    let engine = QueryEngine::new(Arc::clone(&catalog));
    let search = |q: &str| {
        engine
            .search(&Filters {
                q: Some(q.into()),
                limit: 1000,
                ..Filters::default()
            })
            .unwrap()
    };
    let phrase = search("\"handled request\"");
    assert_eq!(phrase.hits.len(), 20, "only the hot split answers a phrase");
    assert_eq!(phrase.unsearched, BTreeMap::from([("archive".to_owned(), 2)]));
    assert_eq!((phrase.splits, phrase.tiers.clone()), (1, vec!["hot".to_owned()]));
    let notice = QueryEngine::unsearched_notice(&phrase.unsearched).unwrap();
    assert!(
        notice.starts_with("2 split(s) of tier archive not searched"),
        "{notice}"
    );
    // A word the tokenizer splits is a phrase too.
    assert_eq!(search("month-1").unsearched.len(), 1);
    let word = search("handled");
    assert_eq!(word.hits.len(), 60, "single words search every tier");
    assert!(word.unsearched.is_empty());
    assert_eq!(word.splits, 3);
    let stats = engine
        .stats(&Filters {
            q: Some("\"handled request\"".into()),
            ..Filters::default()
        })
        .unwrap();
    assert_eq!((stats.total, stats.unsearched.len()), (20, 1));

    // 400 days on, the month-old split expires; a phrase hold keeps its records, which are
    // answered on the archive split as all of the phrase's words.
    let holds = Holds::open(&dir).unwrap();
    holds
        .create(
            NewHold {
                selector: Selector {
                    q: Some("\"orders handled\"".into()),
                    ..Selector::default()
                },
                reason: "case 2027-3".into(),
            },
            "alice",
        )
        .unwrap();
    let later = now.saturating_add_nanos(400 * DAY_NS);
    let steps = retention.run(&holds.list().unwrap(), &audit, later).unwrap();
    let month_after: Vec<u64> = tiers(&dir)
        .into_values()
        .filter(|(tier, _)| tier == "archive")
        .map(|(_, docs)| docs)
        .collect();
    // The month's split stays whole (the hold keeps every record of it); the fresh one, held
    // too, moved on to archive.
    assert_eq!(month_after, vec![10, 30, 20], "{steps:?}");
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(
        steps[0].why.contains("every record is kept: 20 by hold"),
        "{steps:?}"
    );
    assert_eq!(search("orders").hits.len(), 50, "the month's 30 and the fresh 20");
}

/// A data dir of `corral-indexer standalone` whose store (`index/`) holds one sealed split per
/// entry of `splits`, and the config `config`.
fn standalone_data(root: &Path, splits: Vec<Vec<Record>>, config: &str) -> PathBuf {
    let data = root.join("data");
    let mut store = open(&data.join("index"));
    let mut offset = 0;
    for records in splits {
        seal(&mut store, records, &mut offset);
    }
    drop(store);
    std::fs::create_dir_all(root.join("pods")).unwrap();
    std::fs::write(root.join("indexer.toml"), config).unwrap();
    data
}

/// The real `corral-indexer standalone` on `root`'s data dir, with `env`, serving on `port`
/// once it answers.
fn standalone(root: &Path, port: u16, env: &[(&str, &Path)]) -> ChildGuard {
    let mut command = Command::new(BIN);
    command
        .arg("standalone")
        .args(["--logs", &format!("{}/pods/*.log", root.display())])
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--config")
        .arg(root.join("indexer.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    ChildGuard(command.spawn().unwrap())
}

fn api(port: u16, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = request(port, method, path, &[], body);
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}")),
    )
}

/// Runs standalone with its first retention pass paused once at `stage`; while it waits,
/// places a hold on request `case-9`; then lets the pass go on and returns, once `steps`
/// retention entries are in the audit log, their (action, split, kept) and how many records
/// of `case-9` are searchable.
fn hold_during_pass(root: &Path, stage: &str, steps: usize) -> (Vec<(String, String, String)>, u64) {
    let port = free_port().unwrap();
    let gate = root.join("gate");
    let paused = root.join("gate.paused");
    let stage_file = root.join("stage");
    std::fs::write(&stage_file, stage).unwrap();
    let indexer = standalone(
        root,
        port,
        &[
            ("CORRAL_RETENTION_PAUSE_AT", Path::new(stage)),
            ("CORRAL_RETENTION_PAUSE_FILE", &gate),
        ],
    );
    wait_until("the pass to pause", Duration::from_secs(60), || {
        paused.try_exists().unwrap()
    });
    wait_until("the API", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (status, body) = api(
        port,
        "POST",
        "/api/v1/holds",
        r#"{"selector":{"corr":"case-9"},"reason":"case 9, placed during a pass"}"#,
    );
    assert_eq!(status, 201, "{body}");
    std::fs::write(&gate, b"go").unwrap();
    let mut entries = Vec::new();
    wait_until("the pass to finish", Duration::from_secs(60), || {
        let (_, body) = api(port, "GET", "/api/v1/audit?who=retention", "");
        entries = body["entries"].as_array().unwrap().clone();
        entries.len() >= steps
    });
    let (_, found) = api(port, "GET", "/api/v1/search?corr=case-9", "");
    drop(indexer);
    let steps = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["params"]["split"].as_str().unwrap().to_owned(),
                e["params"]["kept"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (steps, found["count"].as_u64().unwrap())
}

/// The pass planned to delete both expired splits; the hold placed after it deleted the first
/// protects the records of the second.
#[test]
fn a_hold_placed_between_two_steps_of_a_pass_protects_the_next_split() {
    let root = tempfile::tempdir().unwrap();
    let first = (0..10)
        .map(|n| record(n, "gateway", &format!("req-{n}"), 500))
        .collect();
    let second = (10..20)
        .map(|n| match n {
            10..13 => record(n, "gateway", "case-9", 500),
            _ => record(n, "gateway", &format!("req-{n}"), 500),
        })
        .collect();
    let data = standalone_data(
        root.path(),
        vec![first, second],
        CONFIG.split("[[retention.keep]]").next().unwrap(),
    );
    let ids: Vec<String> = tiers(&data.join("index")).keys().cloned().collect();
    let (steps, held) = hold_during_pass(root.path(), "placed", 2);
    assert_eq!(
        steps,
        vec![
            ("retention.delete".to_owned(), ids[0].clone(), "0".to_owned()),
            ("retention.rewrite".to_owned(), ids[1].clone(), "3".to_owned()),
        ]
    );
    assert_eq!(held, 3, "the held records survived the pass");
    let (ok, report) = verify(&data);
    assert!(ok, "{report}");
}

/// A hold placed while a split is being rewritten (after its records to keep were chosen) is
/// seen before the rewrite takes effect: the split is rewritten again, keeping them too.
#[test]
fn a_hold_placed_while_a_split_is_rewritten_is_kept_by_that_rewrite() {
    let root = tempfile::tempdir().unwrap();
    let split = (0..20)
        .map(|n| match n {
            0..10 => record(n, "payments", &format!("req-{n}"), 500),
            10..13 => record(n, "gateway", "case-9", 500),
            _ => record(n, "gateway", &format!("req-{n}"), 500),
        })
        .collect();
    let data = standalone_data(root.path(), vec![split], CONFIG);
    let id = tiers(&data.join("index")).keys().next().unwrap().clone();
    let (steps, held) = hold_during_pass(root.path(), "staged", 1);
    assert_eq!(
        steps,
        vec![("retention.rewrite".to_owned(), id.clone(), "13".to_owned())]
    );
    assert_eq!(held, 3, "the held records survived the rewrite");
    assert_eq!(tiers(&data.join("index"))[&id], ("archive".to_owned(), 13));
    let (ok, report) = verify(&data);
    assert!(ok, "{report}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    files
}

/// A second indexer started on a data dir an indexer serves stops at the lock, naming it,
/// before its recovery touches a half-done retention step it finds staged.
#[test]
fn a_second_indexer_on_a_data_dir_in_use_stops_at_the_lock_and_touches_nothing() {
    let root = tempfile::tempdir().unwrap();
    let records = (0..10).map(|n| record(n, "orders", "req", 30)).collect();
    let data = standalone_data(
        root.path(),
        vec![records],
        "[indexer]\ncommit_interval = \"1s\"\n",
    );
    let port = free_port().unwrap();
    let _first = standalone(root.path(), port, &[]);
    wait_until("the first indexer's API", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // A finished staging copy of the sealed split: recovery would drop it (its old split is
    // still in place).
    let split = sealed_split_dirs(&data.join("index")).unwrap().remove(0);
    let staged = data
        .join("index/store/retention")
        .join(split.file_name().unwrap());
    copy_dir(&split, &staged);
    // The running indexer writes its active split; the sealed splits and staging are still.
    let still = || {
        (
            snapshot(&data.join("index/store/retention")),
            snapshot(&data.join("index/store/splits")),
        )
    };
    let before = still();

    let second = Command::new(BIN)
        .arg("standalone")
        .args(["--logs", &format!("{}/pods/*.log", root.path().display())])
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port().unwrap())])
        .env("CORRAL_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut second = ChildGuard(second);
    let mut status = None;
    wait_until("the second indexer to exit", Duration::from_secs(20), || {
        status = second.0.try_wait().unwrap();
        status.is_some()
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(second.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.unwrap().code(), Some(1), "{stderr}");
    assert!(
        staged.join("corral-split.json").try_exists().unwrap(),
        "the staged step was touched: {stderr}"
    );
    assert!(still() == before, "the store was touched: {stderr}");
    let lock = data.canonicalize().unwrap().join("audit/.lock");
    assert!(
        stderr.contains(&format!("it holds the lock {}", lock.display())) && stderr.contains("in use"),
        "{stderr}"
    );
}

/// With an object store, this indexer's published splits leave its disk when the cache is full
/// (here its bound is one byte): retention fetches each split back for its step, publishes the
/// result under its new tier and removes the old copy from the store, and every record is
/// searchable exactly once afterwards, read back through the cache.
#[test]
fn with_an_object_store_retention_fetches_evicted_splits_back_and_publishes_each_step() {
    use corral_indexer::storage::{SplitKey, SplitStorage, StorageUrl};
    use corral_tests::object_store::{BUCKET, ObjectStoreServer};
    let s3 = ObjectStoreServer::start();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let env: HashMap<_, _> = s3.env().into_iter().collect();
    corral_indexer::storage::install_tls_provider();
    let client = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&env["AWS_ENDPOINT_URL"])
        .with_region(&env["AWS_REGION"])
        .with_access_key_id(&env["AWS_ACCESS_KEY_ID"])
        .with_secret_access_key(&env["AWS_SECRET_ACCESS_KEY"])
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .build()
        .unwrap();
    let url = StorageUrl::S3 {
        bucket: BUCKET.into(),
        prefix: "retention".into(),
    };
    let storage =
        Arc::new(SplitStorage::remote(url, Arc::new(client), "retention", &data.join("cache")).unwrap());
    let options = || StoreOptions {
        split_max_docs: 1_000_000,
        split_max_age: Duration::from_secs(3600),
        writer_memory_bytes: 16 * 1024 * 1024,
        indexer_name: "indexer-0".into(),
        max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
    };
    let mut store = SplitStore::open_in(&data, Arc::clone(&storage), options()).unwrap();
    let catalog = store.catalog();
    catalog.cache().unwrap().set_max_bytes(1);
    let mut offset = 0;
    let old = (0..40)
        .map(|n| match n {
            0..10 => record(n, "payments", &format!("req-{n}"), 500),
            10..15 => record(n, "gateway", "case-7", 500),
            _ => record(n, "gateway", &format!("req-{n}"), 500),
        })
        .collect();
    seal(&mut store, old, &mut offset);
    let month = (100..130).map(|n| record(n, "orders", "month", 30)).collect();
    seal(&mut store, month, &mut offset);
    let fresh = (200..220).map(|n| record(n, "orders", "fresh", 0)).collect();
    seal(&mut store, fresh, &mut offset);
    // Published, and read through the cache: only the newest is still on the disk.
    assert_eq!(catalog.remote().len(), 3);
    assert_eq!(
        catalog.splits().len(),
        1,
        "only the active split is opened outside the cache"
    );
    let on_disk = || sealed_split_dirs(&data.join("cache")).unwrap().len();
    assert_eq!(on_disk(), 1);

    let config = IndexerConfig::parse(CONFIG).unwrap().retention.unwrap();
    let retention = Retention::new(&data, config, Arc::clone(&catalog), 16 * 1024 * 1024)
        .with_storage(Arc::clone(&storage), "indexer-0");
    let audit = AuditLog::open(&data).unwrap();
    let taken = retention.run(&[], &audit, Timestamp::now()).unwrap();
    let steps: Vec<(String, Option<String>, u64)> = taken
        .iter()
        .map(|p| (p.from.clone(), p.to.clone(), p.kept))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("hot".to_owned(), Some("archive".to_owned()), 10), // expired: payments kept
            ("hot".to_owned(), Some("archive".to_owned()), 30), // a month old: moved
        ]
    );
    let mut tiers: Vec<String> = storage
        .list()
        .unwrap()
        .into_iter()
        .map(|k: SplitKey| k.tier)
        .collect();
    tiers.sort();
    assert_eq!(
        tiers,
        ["archive", "archive", "hot"],
        "each step published, the old copies gone"
    );
    assert!(on_disk() <= 1, "{} splits on the disk", on_disk());
    let engine = QueryEngine::new(Arc::clone(&catalog));
    let count = |query: &str| {
        engine
            .count(&Filters::parse(query, corral_indexer::query::Endpoint::Search, Timestamp::now()).unwrap())
            .unwrap()
    };
    assert_eq!(count(""), 60, "10 kept + 30 moved + 20 fresh, each once");
    assert_eq!(count("corr=case-7"), 0, "expired records are gone");
    assert_eq!(count("corr=month"), 30);
    // A new start reads it all from the store again: the catalog lists the published splits.
    drop(store);
    std::fs::remove_dir_all(&data).unwrap();
    let store = SplitStore::open_in(&data, storage, options()).unwrap();
    let engine = QueryEngine::new(store.catalog());
    assert_eq!(
        engine
            .count(&Filters::parse("", corral_indexer::query::Endpoint::Search, Timestamp::now()).unwrap())
            .unwrap(),
        60
    );
}
