//! Object-storage benchmark (`make bench`, DESIGN §7): 20 splits sealed and published to a real
//! S3-compatible server (s3s-fs on loopback), next to the same seals on local storage in the
//! same run (publish throughput); then a `corr` search on an indexer that owns none of them —
//! cold (its data dir empty: the catalog listed and every split fetched, whole files, before
//! the first answer) and warm — next to the same search on the owner.
//!
//! Then freshness through a non-owning indexer: two release `serve` processes with a real broker
//! (tansu), a record produced to one's topic and searched by its `corr` through the other.
//!
//! Whole files or ranged reads: the same cold search is also run with every split opened
//! straight from the object store, each read tantivy makes one ranged GET (`RangedDir`), and
//! the GETs, bytes and time of both are printed. corral fetches whole files: see the figures
//! in README (a cold split costs one round trip per file, not one per read, and stays cached
//! for the next query).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    Directory, DirectoryLock, FileHandle, Lock, OwnedBytes, WatchCallback, WatchHandle, WritePtr,
};

use corral_demo::corpus::envelopes;
use corral_indexer::query::{Endpoint, Filters, QueryEngine};
use corral_indexer::storage::{SplitStorage, StorageUrl};
use corral_indexer::store::{SplitStore, StoreOptions};
use corral_schema::Timestamp;
use corral_tests::bench::percentiles;
use corral_tests::object_store::{BUCKET, ObjectStoreServer};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");
const SPLITS: usize = 20;
const PER_SPLIT: usize = 20_000;
const SEARCHES: usize = 200;

fn options(name: &str) -> StoreOptions {
    StoreOptions {
        split_max_docs: PER_SPLIT as u64,
        split_max_age: Duration::from_secs(3600),
        writer_memory_bytes: 64 * 1024 * 1024,
        indexer_name: name.to_owned(),
        max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
    }
}

fn s3(server: &ObjectStoreServer, cache: &std::path::Path) -> Arc<SplitStorage> {
    let url = StorageUrl::S3 {
        bucket: BUCKET.to_owned(),
        prefix: "bench".to_owned(),
    };
    Arc::new(SplitStorage::remote(url, s3_client(server), "bench", cache).expect("storage"))
}

fn s3_client(server: &ObjectStoreServer) -> Arc<dyn ObjectStore> {
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
    Arc::new(store)
}

/// GETs and bytes a [`RangedDir`] asked for.
#[derive(Debug, Default)]
struct Gets {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// A split read straight from the object store: every read tantivy makes is one ranged GET.
/// Read-only; for this bench's comparison.
#[derive(Debug, Clone)]
struct RangedDir {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    sizes: Arc<HashMap<PathBuf, usize>>,
    runtime: Arc<tokio::runtime::Runtime>,
    gets: Arc<Gets>,
}

impl RangedDir {
    /// The split under `prefix` (its files listed once, as a catalog's manifest would give).
    fn open(
        store: Arc<dyn ObjectStore>,
        prefix: String,
        runtime: Arc<tokio::runtime::Runtime>,
        gets: Arc<Gets>,
    ) -> RangedDir {
        let listed: Vec<_> = runtime.block_on(
            store
                .list(Some(&ObjectPath::from(prefix.as_str())))
                .collect::<Vec<_>>(),
        );
        let sizes = listed
            .into_iter()
            .map(|meta| {
                let meta = meta.expect("listed");
                let name = meta.location.as_ref()[prefix.len() + 1..].to_owned();
                (PathBuf::from(name), meta.size as usize)
            })
            .collect();
        RangedDir {
            store,
            prefix,
            sizes: Arc::new(sizes),
            runtime,
            gets,
        }
    }

    fn location(&self, path: &Path) -> ObjectPath {
        ObjectPath::from(format!("{}/{}", self.prefix, path.display()))
    }

    fn get(&self, path: &Path, range: std::ops::Range<usize>) -> std::io::Result<Vec<u8>> {
        let location = self.location(path);
        let bytes = self
            .runtime
            .block_on(
                self.store
                    .get_range(&location, range.start as u64..range.end as u64),
            )
            .map_err(std::io::Error::other)?;
        self.gets.requests.fetch_add(1, Ordering::Relaxed);
        self.gets.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes.to_vec())
    }
}

#[derive(Debug)]
struct RangedFile {
    dir: RangedDir,
    path: PathBuf,
    len: usize,
}

impl tantivy::HasLen for RangedFile {
    fn len(&self) -> usize {
        self.len
    }
}

impl FileHandle for RangedFile {
    fn read_bytes(&self, range: std::ops::Range<usize>) -> std::io::Result<OwnedBytes> {
        if range.is_empty() {
            return Ok(OwnedBytes::empty());
        }
        Ok(OwnedBytes::new(self.dir.get(&self.path, range)?))
    }
}

impl Directory for RangedDir {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        let len = *self
            .sizes
            .get(path)
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_owned()))?;
        Ok(Arc::new(RangedFile {
            dir: self.clone(),
            path: path.to_owned(),
            len,
        }))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::FileDoesNotExist(path.to_owned()))
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        Ok(self.sizes.contains_key(path))
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::wrap_io_error(
            std::io::Error::other("read-only"),
            path.to_owned(),
        ))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let len = *self
            .sizes
            .get(path)
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_owned()))?;
        self.get(path, 0..len)
            .map_err(|e| OpenReadError::wrap_io_error(e, path.to_owned()))
    }

    fn atomic_write(&self, _path: &Path, _data: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("read-only"))
    }

    fn sync_directory(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn acquire_lock(&self, _lock: &Lock) -> Result<DirectoryLock, LockError> {
        Ok(DirectoryLock::from(Box::new(())))
    }

    fn watch(&self, _callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(WatchHandle::empty())
    }
}

/// The cold `corr` search done with ranged reads: every split opened from the object store
/// and searched as the engine would (a term query on `corr`, the top hits by `ts`, their
/// documents loaded). Returns the hits, the time, and the GETs.
fn ranged_search(server: &ObjectStoreServer, corr: &str) -> (usize, Duration, Arc<Gets>) {
    use tantivy::collector::TopDocs;
    use tantivy::query::TermQuery;
    use tantivy::schema::IndexRecordOption;
    let store = s3_client(server);
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime"),
    );
    let gets = Arc::new(Gets::default());
    let started = Instant::now();
    let listed: Vec<_> = runtime.block_on(
        store
            .list(Some(&ObjectPath::from("bench/splits/hot")))
            .collect::<Vec<_>>(),
    );
    let mut splits: Vec<String> = listed
        .into_iter()
        .filter_map(|meta| {
            let location = meta.expect("listed").location.to_string();
            location
                .ends_with(corral_indexer::manifest::MANIFEST_FILE)
                .then(|| location.rsplit_once('/').expect("a split dir").0.to_owned())
        })
        .collect();
    splits.sort();
    let mut hits = 0;
    for prefix in splits {
        let dir = RangedDir::open(
            Arc::clone(&store),
            prefix,
            Arc::clone(&runtime),
            Arc::clone(&gets),
        );
        let index = tantivy::Index::open(dir).expect("a split opened by ranges");
        let field = index
            .schema()
            .get_field(corral_schema::fields::CORR)
            .expect("corr");
        let searcher = index.reader().expect("reader").searcher();
        let query = TermQuery::new(
            tantivy::Term::from_field_text(field, corr),
            IndexRecordOption::Basic,
        );
        let top = searcher
            .search(
                &query,
                &TopDocs::with_limit(1_001)
                    .order_by_fast_field::<tantivy::DateTime>(corral_schema::fields::TS, tantivy::Order::Asc),
            )
            .expect("search");
        for (_, address) in top {
            let _: tantivy::TantivyDocument = searcher.doc(address).expect("doc");
            hits += 1;
        }
    }
    (hits, started.elapsed(), gets)
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

    let fetched = walk_bytes(&other_dir.join("cache"));
    let files: usize = walk_files(&other_dir.join("cache").join("splits"));
    let (ranged_hits, ranged, gets) = ranged_search(&server, &corr);
    assert_eq!(ranged_hits, expected, "the ranged search finds the same records");
    println!(
        "cold corr search, whole files vs ranged reads: whole files {:.0} ms ({files} GETs, {:.1} MiB, cached for the next query); \
         ranged reads {:.0} ms ({} GETs, {:.2} MiB, nothing kept)",
        cold.as_secs_f64() * 1e3,
        fetched as f64 / 1048576.0,
        ranged.as_secs_f64() * 1e3,
        gets.requests.load(Ordering::Relaxed),
        gets.bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
    );

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

    let fresh = percentiles(&freshness_through_a_peer(&server));
    println!(
        "freshness through a non-owning indexer ({FRESH_RECORDS} records, commit_interval 1 s): produced → found by corr \
         through the other indexer p50 {:.0} ms p99 {:.0} ms max {:.0} ms; goal p99 ≤ 2000 ms: {}",
        fresh.p50.as_secs_f64() * 1e3,
        fresh.p99.as_secs_f64() * 1e3,
        fresh.max.as_secs_f64() * 1e3,
        if fresh.p99 <= Duration::from_secs(2) {
            "met"
        } else {
            "NOT met"
        },
    );
}

fn walk_files(dir: &std::path::Path) -> usize {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files += walk_files(&path);
        } else {
            files += 1;
        }
    }
    files
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

/// Records produced one at a time for the freshness measurement.
const FRESH_RECORDS: usize = 40;

/// Freshness through an indexer that does not own the records: two `serve` processes (the
/// release binary) on their own topics, each the other's peer, with the object store; a record
/// produced to indexer a's topic, then searched by its `corr` through indexer b (which asks a
/// for its active split) every 10 ms until found. Returns each record's produce → found time.
fn freshness_through_a_peer(server: &ObjectStoreServer) -> Vec<Duration> {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let broker = corral_tests::broker::Broker::start();
    broker.create_topic("fresh-a", 1);
    broker.create_topic("fresh-b", 1);
    let dir = tempfile::Builder::new()
        .prefix("corral-bench-fresh-")
        .tempdir()
        .expect("temp dir");
    let ports = [
        corral_tests::broker::free_port().expect("port"),
        corral_tests::broker::free_port().expect("port"),
    ];
    let start = |n: usize| {
        let me = ["a", "b"][n];
        let mut command = std::process::Command::new(BIN);
        command
            .args(["serve", "--brokers", &broker.bootstrap_servers()])
            .args([
                "--topic",
                &format!("fresh-{me}"),
                "--group",
                &format!("fresh-{me}"),
            ])
            .args(["--indexer-id", &format!("indexer-{me}")])
            .args(["--storage", &format!("s3://{BUCKET}/fresh")])
            .arg("--data-dir")
            .arg(dir.path().join(me))
            .args(["--listen", &format!("127.0.0.1:{}", ports[n])])
            .args(["--peers", &format!("http://127.0.0.1:{}", ports[1 - n])])
            .envs(server.env())
            .env_remove("POD_NAME")
            .env("CORRAL_LOG", "warn")
            .stdout(std::process::Stdio::null());
        corral_tests::process::ChildGuard(command.spawn().expect("start corral-indexer"))
    };
    let indexers = [start(0), start(1)];
    for port in ports {
        corral_tests::process::wait_until("an indexer ready", Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && corral_tests::http::get(port, "/readyz").0 == 200
        });
    }
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let mut times = Vec::with_capacity(FRESH_RECORDS);
    for n in 0..FRESH_RECORDS {
        let corr = format!("fresh-{n}");
        let record = corral_schema::Record {
            ts: Timestamp::now(),
            observed_ts: Timestamp::now(),
            corr: Some(corr.clone()),
            ..corral_tests::record::record(n as u64)
        };
        let payload = serde_json::to_vec(&record).expect("serializes");
        let started = Instant::now();
        producer
            .send(
                BaseRecord::to("fresh-a")
                    .key(record.kafka_key())
                    .payload(&payload),
            )
            .map_err(|(error, _)| error)
            .expect("queued");
        producer.flush(Duration::from_secs(10)).expect("flushed");
        loop {
            let (status, body) = corral_tests::http::get(ports[1], &format!("/api/v1/search?corr={corr}"));
            if status == 200 && body.contains("\"count\":1") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "record {n} never found: {body}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        times.push(started.elapsed());
        // Records arrive at an uneven pace, not in step with the commits.
        std::thread::sleep(Duration::from_millis(97 + (n as u64 * 37) % 300));
    }
    for indexer in indexers {
        indexer.terminate(Duration::from_secs(30));
    }
    times
}
