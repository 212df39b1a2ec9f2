//! The split store and query engine together, on real directories: commits with checkpoints,
//! sealing with manifests, reopening after a restart, and every kind of query.

use std::path::Path;
use std::time::Duration;

use corral_indexer::decode::{MessageOrigin, decode};
use corral_indexer::manifest::{Checkpoint, MANIFEST_FILE, Manifest, manifest_hash};
use corral_indexer::query::{Endpoint, Filters, QueryEngine};
use corral_indexer::store::{SplitStore, StoreOptions};
use corral_schema::{Level, Record, Timestamp};
use corral_tests::record::record_of;
use serde_json::json;

fn options(max_docs: u64) -> StoreOptions {
    StoreOptions {
        split_max_docs: max_docs,
        split_max_age: Duration::from_secs(3600),
        writer_memory_bytes: 32 * 1024 * 1024,
        indexer_name: "test-indexer".into(),
        max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
    }
}

fn record(n: u64, service: &str, version: &str, level: Level, corr: &str, msg: &str) -> Record {
    Record {
        version: version.into(),
        level: Some(level),
        corr: Some(corr.into()),
        msg: msg.into(),
        fields: json!({"user": {"id": n % 50}, "http": {"method": "POST", "status": 200 + (n % 3)}})
            .as_object()
            .unwrap()
            .clone(),
        ..record_of(service, n)
    }
}

fn add(store: &mut SplitStore, record: Record) {
    let source = serde_json::to_string(&record).unwrap();
    store.add(record, source).unwrap();
}

fn filters(query: &str, endpoint: Endpoint) -> Filters {
    Filters::parse(query, endpoint, Timestamp::parse("2026-11-23T12:00:00Z").unwrap()).unwrap()
}

fn ids(engine: &QueryEngine, query: &str) -> Vec<String> {
    engine
        .search(&filters(query, Endpoint::Search))
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.id)
        .collect()
}

fn id(n: u64) -> String {
    format!("{n:032x}")
}

/// A small fleet: 300 records, every 10th a request `req-<n/10>` spanning 3 services.
fn fill(store: &mut SplitStore) {
    for n in 0..300 {
        let (service, version) = match n % 3 {
            0 => ("gateway", "1.0.0"),
            1 => ("orders", "2.0.0"),
            _ => ("payments", if n % 2 == 0 { "2.3.0" } else { "2.4.0" }),
        };
        let level = if n % 7 == 0 { Level::Error } else { Level::Info };
        let msg = if n % 5 == 0 {
            "payment declined by bank"
        } else {
            "request done"
        };
        add(
            store,
            record(n, service, version, level, &format!("req-{}", n / 10), msg),
        );
    }
}

#[test]
fn commits_carry_the_checkpoint_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SplitStore::open(dir.path(), options(1_000_000)).unwrap();
    assert_eq!(store.checkpoint(), &Checkpoint::new());
    fill(&mut store);
    store.commit(&Checkpoint::from([(0, 120), (1, 180)])).unwrap();
    // Added but never committed: lost with the crash below, and re-read from the checkpoint.
    add(
        &mut store,
        record(999, "gateway", "1.0.0", Level::Info, "late", "never committed"),
    );
    drop(store);

    let store = SplitStore::open(dir.path(), options(1_000_000)).unwrap();
    assert_eq!(store.checkpoint(), &Checkpoint::from([(0, 120), (1, 180)]));
    let engine = QueryEngine::new(store.catalog());
    assert_eq!(engine.count(&filters("", Endpoint::Search)).unwrap(), 300);
    assert_eq!(ids(&engine, "corr=late"), Vec::<String>::new());
    // The duplicate filter is warmed from what the split holds.
    let recent = store.recent_ids(10_000).unwrap();
    assert_eq!(recent.len(), 300);
    assert!(recent.contains(&299));
}

#[test]
fn the_duplicate_filter_warms_with_the_newest_ids_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SplitStore::open(dir.path(), options(1_000_000)).unwrap();
    fill(&mut store);
    store.commit(&Checkpoint::from([(0, 300)])).unwrap();
    store.seal().unwrap();
    for n in 1000..1050 {
        add(
            &mut store,
            record(n, "orders", "2.0.0", Level::Info, "new", "after the seal"),
        );
    }
    store.commit(&Checkpoint::from([(0, 350)])).unwrap();
    drop(store);

    let store = SplitStore::open(dir.path(), options(1_000_000)).unwrap();
    // Ids are hex numbers, so a record's key is its number.
    let newest: Vec<u128> = (250..300).chain(1000..1050).collect();
    assert_eq!(store.recent_ids(100).unwrap(), newest);
    assert_eq!(store.recent_ids(20).unwrap(), (1030..1050).collect::<Vec<u128>>());
}

#[test]
fn queries_filter_order_limit_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SplitStore::open(dir.path(), options(1_000_000)).unwrap();
    fill(&mut store);
    store.commit(&Checkpoint::new()).unwrap();
    let engine = QueryEngine::new(store.catalog());

    // corr: one request, every service, time order.
    assert_eq!(ids(&engine, "corr=req-3"), (30..40).map(id).collect::<Vec<_>>());
    assert_eq!(
        ids(&engine, "corr=req-3&order=desc&limit=3"),
        vec![id(39), id(38), id(37)]
    );
    let limited = engine
        .search(&filters("corr=req-3&limit=4", Endpoint::Search))
        .unwrap();
    assert_eq!(limited.hits.len(), 4);
    assert!(limited.truncated);
    assert!(
        !engine
            .search(&filters("corr=req-3&limit=10", Endpoint::Search))
            .unwrap()
            .truncated
    );
    // Keyword filters and minimum level.
    assert_eq!(
        ids(&engine, "corr=req-3&service=orders"),
        vec![id(31), id(34), id(37)]
    );
    assert_eq!(ids(&engine, "corr=req-3&level=error"), vec![id(35)]);
    assert_eq!(
        ids(&engine, "corr=req-3&level=warn&service=payments"),
        vec![id(35)]
    );
    assert_eq!(
        ids(&engine, "corr=req-3&level=warn&service=gateway"),
        Vec::<String>::new()
    );
    // Time range (each record is 1 ms after the previous).
    assert_eq!(
        ids(
            &engine,
            "since=2026-11-23T10:00:00.100Z&until=2026-11-23T10:00:00.102Z"
        ),
        vec![id(100), id(101), id(102)]
    );
    // q: words, phrases, nested fields, AND/OR.
    assert_eq!(ids(&engine, "corr=req-1&q=declined"), vec![id(10), id(15)]);
    assert_eq!(
        ids(&engine, "corr=req-1&q=%22declined+by+bank%22"),
        vec![id(10), id(15)]
    );
    assert_eq!(
        ids(&engine, "corr=req-1&q=%22bank+declined%22"),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&engine, "q=fields.user.id:42"),
        vec![id(42), id(92), id(142), id(192), id(242), id(292)]
    );
    assert_eq!(
        ids(&engine, "corr=req-1&q=fields.http.status:201"),
        vec![id(10), id(13), id(16), id(19)]
    );
    assert_eq!(
        ids(&engine, "corr=req-1&q=fields.http.status:201+AND+declined"),
        vec![id(10)]
    );
    assert_eq!(
        ids(&engine, "corr=req-1&q=fields.user.id:11+OR+fields.user.id:12"),
        vec![id(11), id(12)]
    );
    // A query that cannot be parsed is the caller's error, naming q.
    let error = engine
        .search(&filters("q=fields.user.id:(", Endpoint::Search))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("parameter q: cannot parse"), "{error}");

    // Stats by version, with counts per level.
    let stats = engine
        .stats(&filters("by=version&service=payments", Endpoint::Stats))
        .unwrap();
    assert_eq!(stats.total, 100);
    let summary: Vec<(String, u64, u64)> = stats
        .groups
        .iter()
        .map(|g| {
            (
                g.key.clone(),
                g.count,
                g.levels.get("error").copied().unwrap_or(0),
            )
        })
        .collect();
    // payments is n % 3 == 2: even n → 2.3.0, odd → 2.4.0; errors are n % 7 == 0.
    let expect = |odd: u64| {
        let ns: Vec<u64> = (0..300).filter(|n| n % 3 == 2 && n % 2 == odd).collect();
        (ns.len() as u64, ns.iter().filter(|n| *n % 7 == 0).count() as u64)
    };
    let (stable, stable_errors) = expect(0);
    let (canary, canary_errors) = expect(1);
    assert_eq!(
        summary,
        vec![
            ("2.3.0".to_string(), stable, stable_errors),
            ("2.4.0".to_string(), canary, canary_errors)
        ]
    );
    let by_level = engine.stats(&filters("by=level", Endpoint::Stats)).unwrap();
    let errors = by_level.groups.iter().find(|g| g.key == "error").unwrap();
    assert_eq!(errors.count, (0..300).filter(|n| n % 7 == 0).count() as u64);

    // Tail follows ingest order: sequence numbers 0..300 were committed.
    let tail = engine
        .tail_batch(&filters("service=gateway", Endpoint::Tail), 290, 300, 100)
        .unwrap();
    assert_eq!(
        tail.iter()
            .map(|(seq, hit)| (*seq, hit.id.clone()))
            .collect::<Vec<_>>(),
        vec![(291, id(291)), (294, id(294)), (297, id(297))]
    );
}

#[test]
fn bad_input_is_indexed_and_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SplitStore::open(dir.path(), options(1_000_000)).unwrap();
    let origin = |offset| MessageOrigin {
        topic: "t",
        partition: 0,
        offset,
        timestamp: Timestamp::parse("2026-11-23T10:00:00Z"),
    };
    // The same field as a number, then as a string, then as an object.
    let mut payloads: Vec<Vec<u8>> = [json!(42), json!("forty-two"), json!({"deep": true})]
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let mut r = record(i as u64, "orders", "1", Level::Info, "conflict", "typed");
            r.fields.insert("amount".into(), value);
            serde_json::to_vec(&r).unwrap()
        })
        .collect();
    payloads.push(b"Exception in thread main java.lang.NullPointerException".to_vec());
    payloads.push(br#"{"msg": "no envelope", "service": 7, "corr": "conflict"}"#.to_vec());
    let mut huge = record(10, "orders", "1", Level::Info, "conflict", "");
    huge.msg = format!("start {} hugeword end", "x".repeat(6 * 1024 * 1024));
    payloads.push(serde_json::to_vec(&huge).unwrap());
    for (offset, payload) in payloads.iter().enumerate() {
        let decoded = decode(payload.clone(), origin(offset as i64));
        store.add(decoded.record, decoded.source).unwrap();
    }
    store
        .commit(&Checkpoint::from([(0, payloads.len() as i64)]))
        .unwrap();
    let engine = QueryEngine::new(store.catalog());
    assert_eq!(engine.count(&filters("", Endpoint::Search)).unwrap(), 6);
    assert_eq!(ids(&engine, "q=fields.amount:42"), vec![id(0)]);
    assert_eq!(ids(&engine, "q=fields.amount:forty"), vec![id(1)]);
    assert_eq!(ids(&engine, "q=fields.amount.deep:true"), vec![id(2)]);
    let npe = engine
        .search(&filters("q=NullPointerException", Endpoint::Search))
        .unwrap();
    assert_eq!(npe.hits.len(), 1);
    let hit: Record = serde_json::from_str(&npe.hits[0].source).unwrap();
    assert_eq!(
        hit.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        vec!["invalid_envelope", "unparsed"]
    );
    let salvaged = engine
        .search(&filters("q=envelope&corr=conflict", Endpoint::Search))
        .unwrap();
    assert_eq!(salvaged.hits.len(), 1);
    let hit: Record = serde_json::from_str(&salvaged.hits[0].source).unwrap();
    assert_eq!(hit.fields["service"], json!(7));
    let big = engine.search(&filters("q=hugeword", Endpoint::Search)).unwrap();
    assert_eq!(big.hits.len(), 1);
    assert!(big.hits[0].source.len() > 6 * 1024 * 1024);
}

fn manifests(data_dir: &Path) -> Vec<Manifest> {
    let mut manifests: Vec<Manifest> = corral_indexer::store::sealed_split_dirs(data_dir)
        .unwrap()
        .iter()
        .map(|dir| Manifest::read(dir).unwrap())
        .collect();
    manifests.sort_by(|a, b| a.id.cmp(&b.id));
    manifests
}

#[test]
fn full_splits_are_sealed_with_chained_manifests_and_stay_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SplitStore::open(dir.path(), options(100)).unwrap();
    for n in 0..250 {
        add(
            &mut store,
            record(
                n,
                "gateway",
                "1.0.0",
                Level::Info,
                &format!("req-{}", n / 10),
                "hello",
            ),
        );
        if n % 50 == 49 {
            store.commit(&Checkpoint::from([(0, n as i64 + 1)])).unwrap();
            if store.seal_due() {
                store.seal().unwrap();
            }
        }
    }
    store.commit(&Checkpoint::from([(0, 250)])).unwrap();
    // A record repeated in a sealed split and the active one is returned once.
    add(
        &mut store,
        record(5, "gateway", "1.0.0", Level::Info, "req-0", "hello"),
    );
    store.commit(&Checkpoint::from([(0, 251)])).unwrap();

    let sealed = manifests(dir.path());
    assert_eq!(sealed.len(), 2);
    assert_eq!(sealed.iter().map(|m| m.docs).collect::<Vec<_>>(), vec![100, 100]);
    assert_eq!(sealed[0].checkpoint, Checkpoint::from([(0, 100)]));
    assert_eq!(sealed[1].checkpoint, Checkpoint::from([(0, 200)]));
    assert_eq!(sealed[0].prev, None);
    let first_dir = dir.path().join("store/splits/hot").join(&sealed[0].id);
    assert_eq!(
        sealed[1].prev.as_deref(),
        Some(manifest_hash(&first_dir).unwrap().as_str())
    );
    assert_eq!(sealed[1].prev_id.as_deref(), Some(sealed[0].id.as_str()));
    assert_eq!(sealed[0].min_ts, Some(record(0, "", "", Level::Info, "", "").ts));
    assert_eq!(sealed[0].max_ts, Some(record(99, "", "", Level::Info, "", "").ts));
    // Every file is hashed, and the hashes are right.
    assert!(sealed[0].files.contains_key("meta.json"));
    for (name, hash) in &sealed[0].files {
        assert_eq!(
            &corral_indexer::manifest::sha256_file(&first_dir.join(name)).unwrap(),
            hash
        );
    }
    assert!(first_dir.join(MANIFEST_FILE).try_exists().unwrap());

    let engine = QueryEngine::new(store.catalog());
    let all = engine.search(&filters("limit=1000", Endpoint::Search)).unwrap();
    assert_eq!(all.hits.len(), 250);
    assert_eq!(all.splits, 3);
    assert_eq!(all.tiers, vec!["hot".to_string()]);
    assert_eq!(ids(&engine, "corr=req-0").len(), 10);
    drop(store);

    // After a restart the checkpoint comes from the newest split: the active one.
    let store = SplitStore::open(dir.path(), options(100)).unwrap();
    assert_eq!(store.checkpoint(), &Checkpoint::from([(0, 251)]));
    assert_eq!(
        QueryEngine::new(store.catalog())
            .search(&filters("", Endpoint::Search))
            .unwrap()
            .hits
            .len(),
        250
    );
}

#[test]
fn a_seal_interrupted_after_the_manifest_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SplitStore::open(dir.path(), options(1_000)).unwrap();
    for n in 0..20 {
        add(
            &mut store,
            record(n, "gateway", "1.0.0", Level::Info, "r", "hello"),
        );
    }
    store.commit(&Checkpoint::from([(0, 20)])).unwrap();
    store.seal().unwrap();
    drop(store);
    // Put the sealed split back where a crash before the rename would have left it.
    let sealed = manifests(dir.path()).pop().unwrap();
    let from = dir.path().join("store/splits/hot").join(&sealed.id);
    std::fs::rename(&from, dir.path().join("active").join(&sealed.id)).unwrap();

    let store = SplitStore::open(dir.path(), options(1_000)).unwrap();
    assert!(from.join(MANIFEST_FILE).try_exists().unwrap());
    assert_eq!(store.checkpoint(), &Checkpoint::from([(0, 20)]));
    let engine = QueryEngine::new(store.catalog());
    assert_eq!(ids(&engine, "corr=r").len(), 20);
}

#[test]
fn a_split_killed_before_its_first_commit_is_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SplitStore::open(dir.path(), options(1_000)).unwrap();
    for n in 0..30 {
        add(
            &mut store,
            record(n, "gateway", "1.0.0", Level::Info, "r", "hello"),
        );
    }
    store.commit(&Checkpoint::from([(0, 30)])).unwrap();
    store.seal().unwrap();
    drop(store);
    // What a kill between creating the next active split and its first commit leaves: an index
    // whose meta.json has no payload.
    let killed = dir.path().join("active").join("99999999999999999999");
    std::fs::create_dir_all(&killed).unwrap();
    tantivy::Index::create_in_dir(&killed, corral_schema::index_schema::build_schema(true).0).unwrap();
    assert!(killed.join("meta.json").try_exists().unwrap());

    let store = SplitStore::open(dir.path(), options(1_000)).unwrap();
    assert!(
        !killed.try_exists().unwrap(),
        "the never-committed split is removed"
    );
    assert_eq!(store.checkpoint(), &Checkpoint::from([(0, 30)]));
    let engine = QueryEngine::new(store.catalog());
    assert_eq!(ids(&engine, "corr=r").len(), 30);
}

/// Two indexers publishing to one object store (in memory here; the end-to-end tests use a
/// real S3 server): a split holding records of a partition that another indexer has published
/// past this split's first record of it is fenced — dropped, not published — whichever
/// indexer seals second; one that starts where the other's ended is published.
#[test]
fn a_split_overlapping_another_indexers_published_records_is_fenced() {
    use corral_indexer::storage::{SplitStorage, StorageUrl};
    use corral_indexer::store::Fenced;
    use std::sync::Arc;

    let memory: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let url = StorageUrl::S3 {
            bucket: "b".into(),
            prefix: "p".into(),
        };
        let data_dir = dir.path().join(name);
        let storage = SplitStorage::remote(url, Arc::clone(&memory), "p", &data_dir.join("cache")).unwrap();
        let options = StoreOptions {
            indexer_name: name.into(),
            max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
            ..options(1_000_000)
        };
        SplitStore::open_in(&data_dir, Arc::new(storage), options).unwrap()
    };
    let fill = |store: &mut SplitStore, offsets: std::ops::Range<i64>, first_id: u64| {
        for (n, offset) in offsets.clone().enumerate() {
            store.note_position(0, offset);
            add(
                store,
                record(first_id + n as u64, "orders", "1.0", Level::Info, "r", "m"),
            );
        }
        store.commit(&Checkpoint::from([(0, offsets.end)])).unwrap();
    };

    // x publishes partition 0 up to offset 100.
    let mut x = open("indexer-x");
    fill(&mut x, 0..100, 0);
    x.seal().unwrap();
    // y read offsets 50..150 of it (it had the partition while x was cut off): fenced.
    let mut y = open("indexer-y");
    fill(&mut y, 50..150, 1_000);
    let error = y.seal().unwrap_err();
    let fenced = error
        .downcast_ref::<Fenced>()
        .unwrap_or_else(|| panic!("{error:#}"));
    assert_eq!(fenced.partitions, vec![0]);
    assert!(
        y.catalog()
            .splits()
            .iter()
            .all(|s| s.active || s.indexer == "indexer-x"),
        "the fenced split is gone from y's catalog"
    );
    let published = y.storage().list().unwrap();
    assert_eq!(published.len(), 1, "only x's split is published: {published:?}");

    // z starts where x ended: published.
    let mut z = open("indexer-z");
    fill(&mut z, 100..120, 2_000);
    z.seal().unwrap();
    assert_eq!(z.storage().list().unwrap().len(), 2);

    // Two indexers resumed partition 0 from the same published checkpoint (120) and seal at
    // once: w claimed the start first and has not published yet, so v's listing shows no
    // overlap — v's claim of the same start is what fences it.
    let w = z.storage();
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(
        w.claim_start("", 0, 120, "w-split", "indexer-w", hour).unwrap(),
        None
    );
    assert_eq!(
        w.claim_start("", 0, 120, "w-split", "indexer-w", hour).unwrap(),
        None,
        "claiming again for the same split (a retry) holds"
    );
    let mut v = open("indexer-v");
    fill(&mut v, 120..140, 3_000);
    let error = v.seal().unwrap_err();
    let fenced = error
        .downcast_ref::<Fenced>()
        .unwrap_or_else(|| panic!("{error:#}"));
    assert_eq!(fenced.partitions, vec![0]);
    assert_eq!(v.storage().list().unwrap().len(), 2, "v's split is not published");
    // A claim whose split was never published stops holding once stale (its indexer lost its
    // data dir before publishing): the start can be claimed again.
    assert_eq!(
        w.claim_start("", 0, 120, "u-split", "indexer-u", hour)
            .unwrap()
            .as_deref(),
        Some("split w-split of indexer indexer-w")
    );
    assert_eq!(
        w.claim_start("", 0, 120, "u-split", "indexer-u", std::time::Duration::ZERO)
            .unwrap(),
        None
    );
}
