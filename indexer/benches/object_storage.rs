//! Object-storage benchmark (`make bench`, DESIGN §7): 20 splits sealed and published to a real
//! S3-compatible server (s3s-fs on loopback), next to the same seals on local storage in the
//! same run (publish throughput); then a `corr` search on an indexer that owns none of them —
//! cold (its data dir empty: the catalog listed and every split fetched, whole files, before
//! the first answer) and warm — next to the same search on the owner.
//!
//! Splits are fetched as whole files, not read by ranges: a split's files are read by tantivy
//! through mmap and every search touches the term dictionary, the `ts` column and the
//! docstore of each overlapping split, so ranged reads would fetch most of the bytes anyway,
//! in many more round trips. This bench measures the whole-file path only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_demo::corpus::envelopes;
use corral_indexer::query::{Endpoint, Filters, QueryEngine};
use corral_indexer::storage::{SplitStorage, StorageUrl};
use corral_indexer::store::{SplitStore, StoreOptions};
use corral_schema::Timestamp;
use corral_tests::bench::percentiles;
use corral_tests::object_store::{BUCKET, ObjectStoreServer};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPLITS: usize = 20;
const PER_SPLIT: usize = 20_000;
const SEARCHES: usize = 200;

fn options(name: &str) -> StoreOptions {
    StoreOptions {
        split_max_docs: PER_SPLIT as u64,
        split_max_age: Duration::from_secs(3600),
        writer_memory_bytes: 64 * 1024 * 1024,
        indexer_name: name.to_owned(),
    }
}

fn s3(server: &ObjectStoreServer, cache: &std::path::Path) -> Arc<SplitStorage> {
    corral_indexer::storage::install_tls_provider();
    let env: std::collections::HashMap<_, _> = server.env().into_iter().collect();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&env["AWS_ENDPOINT_URL"])
        .with_region(&env["AWS_REGION"])
        .with_access_key_id(&env["AWS_ACCESS_KEY_ID"])
        .with_secret_access_key(&env["AWS_SECRET_ACCESS_KEY"])
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .build()
        .expect("an S3 client");
    let url = StorageUrl::S3 {
        bucket: BUCKET.to_owned(),
        prefix: "bench".to_owned(),
    };
    Arc::new(SplitStorage::remote(url, Arc::new(store), "bench", cache).expect("storage"))
}

/// Fills and seals `SPLITS` splits; returns the time spent sealing (and publishing).
fn seal_all(store: &mut SplitStore, records: &[corral_schema::Record]) -> Duration {
    let mut sealing = Duration::ZERO;
    let mut checkpoint = corral_indexer::manifest::Checkpoint::new();
    for (split, chunk) in records.chunks(PER_SPLIT).enumerate() {
        for (n, record) in chunk.iter().enumerate() {
            store.note_position(0, (split * PER_SPLIT + n) as i64);
            let source = serde_json::to_string(record).expect("serializes");
            store.add(record.clone(), source).expect("add");
        }
        checkpoint.insert(0, ((split + 1) * PER_SPLIT) as i64);
        store.commit(&checkpoint).expect("commit");
        let started = Instant::now();
        store.seal().expect("seal");
        sealing += started.elapsed();
    }
    sealing
}

fn main() {
    let server = ObjectStoreServer::start();
    let dir = tempfile::Builder::new()
        .prefix("corral-bench-storage-")
        .tempdir()
        .expect("temp dir");
    let records = envelopes(SPLITS * PER_SPLIT);
    let corr = records[PER_SPLIT * SPLITS / 2]
        .corr
        .clone()
        .expect("demo records carry a corr");

    // Baseline: the same seals on local storage.
    let mut local = SplitStore::open(&dir.path().join("local"), options("local")).expect("store");
    let local_sealing = seal_all(&mut local, &records);
    let owner_dir = dir.path().join("owner");
    let mut owner = SplitStore::open_in(
        &owner_dir,
        s3(&server, &owner_dir.join("cache")),
        options("owner"),
    )
    .expect("store");
    let s3_sealing = seal_all(&mut owner, &records);
    let published: u64 = walk_bytes(&server.objects("bench/splits"));
    let publishing = s3_sealing.saturating_sub(local_sealing);
    println!(
        "publish: {SPLITS} splits × {PER_SPLIT} records, {:.1} MiB uploaded; sealing took {:.2} s on S3 vs {:.2} s local \
         → publishing {:.2} s, {:.1} MiB/s",
        published as f64 / 1048576.0,
        s3_sealing.as_secs_f64(),
        local_sealing.as_secs_f64(),
        publishing.as_secs_f64(),
        published as f64 / 1048576.0 / publishing.as_secs_f64().max(1e-9)
    );

    let filters = Filters {
        corr: Some(corr.clone()),
        ..Filters::parse("", Endpoint::Search, Timestamp::now()).expect("filters")
    };
    let owner_engine = QueryEngine::new(owner.catalog());
    let expected = owner_engine.search(&filters).expect("search").hits.len();
    assert!(expected > 0, "the corr has records");

    // Cold: an indexer with an empty data dir, up to its first answer.
    let started = Instant::now();
    let other_dir = dir.path().join("other");
    let other = SplitStore::open_in(
        &other_dir,
        s3(&server, &other_dir.join("cache")),
        options("other"),
    )
    .expect("store");
    let other_engine = QueryEngine::new(other.catalog());
    assert_eq!(
        other_engine.search(&filters).expect("search").hits.len(),
        expected
    );
    let cold = started.elapsed();

    let run = |engine: &QueryEngine| {
        let mut times = Vec::with_capacity(SEARCHES);
        for _ in 0..SEARCHES {
            let started = Instant::now();
            std::hint::black_box(engine.search(&filters).expect("search"));
            times.push(started.elapsed());
        }
        percentiles(&times)
    };
    let warm = run(&other_engine);
    let on_owner = run(&owner_engine);
    println!(
        "corr search over {SPLITS} published splits ({expected} hits): non-owner cold (list + fetch {SPLITS} splits + search) {:.0} ms; \
         warm p50 {:.2} ms p99 {:.2} ms; owner p50 {:.2} ms p99 {:.2} ms",
        cold.as_secs_f64() * 1e3,
        warm.p50.as_secs_f64() * 1e3,
        warm.p99.as_secs_f64() * 1e3,
        on_owner.p50.as_secs_f64() * 1e3,
        on_owner.p99.as_secs_f64() * 1e3,
    );
}

fn walk_bytes(dir: &std::path::Path) -> u64 {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            bytes += walk_bytes(&path);
        } else if let Ok(meta) = entry.metadata() {
            bytes += meta.len();
        }
    }
    bytes
}
