//! Indexer benchmark (`make bench`), each figure next to a baseline measured in the same run:
//!
//! 1. ingest into the active split of `CORRAL_BENCH_RECORDS` generated envelopes (default
//!    1,000,000; 5 services, two versions each, 3 instances, correlation ids shared by ~5
//!    records, nested `fields`), through the ingest loop of standalone mode (records handed over
//!    in batches and serialized, as `ChannelSource` does) and from a 4-partition topic on a real
//!    Kafka-protocol broker (`KafkaSource`), next to raw tantivy indexing of the same documents
//!    (one indexing thread, the same memory budget) with a minimal schema (`msg` + `_source`)
//!    and with the split schema, which tells the store's and ingest loop's cost from the schema's;
//! 2. bytes on disk per record of the sealed split, next to the envelope JSON bytes per record;
//! 3. `corr` lookup latency over 100k records and over all of them;
//! 4. freshness of the release binary in standalone mode: a CRI line appended → its record on an
//!    open `/api/v1/tail` stream;
//! 5. the tier move of the big sealed split to the archive tier (time, bytes per record next to
//!    the hot split and the raw JSON) and `corr` lookups when the records sit in the archive.
//!
//! MB = 10^6 bytes of envelope JSON; "per core" = per CPU-second of this process (user +
//! system, every thread), so the figures do not depend on how many cores the machine has.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_collector::kafka_sink::PRODUCER_DEFAULTS;
use corral_demo::SplitMix64;
use corral_demo::corpus::{SERVICES, envelopes};
use corral_indexer::audit::AuditLog;
use corral_indexer::config::{
    DEFAULT_COMMIT_INTERVAL, DEFAULT_SPLIT_MAX_AGE, DEFAULT_SPLIT_MAX_DOCS, DEFAULT_WRITER_MEMORY_MB,
};
use corral_indexer::decode::Decoded;
use corral_indexer::ingest::Ingest;
use corral_indexer::manifest::Checkpoint;
use corral_indexer::metrics::Metrics;
use corral_indexer::query::{Endpoint, Filters, QueryEngine};
use corral_indexer::retention::{Retention, RetentionConfig, Tier};
use corral_indexer::source::{Incoming, KafkaOptions, KafkaSource, Source};
use corral_indexer::store::{Catalog, SplitStore, StoreOptions};
use corral_schema::fields::{CONSUMER_GROUP, MSG, SOURCE, TOPIC};
use corral_schema::index_schema::build_schema;
use corral_schema::{Record, Timestamp};
use corral_tests::bench::{cpu_seconds, percentiles, process_cpu_seconds, process_peak_rss_kib};
use corral_tests::broker::{Broker, free_port};
use corral_tests::process::ChildGuard;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tantivy::schema::{STORED, Schema, TEXT};
use tantivy::store::Compressor;
use tantivy::{Index, IndexSettings, IndexWriter, TantivyDocument};

/// The indexer binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The release build of the binary (cargo builds it for the bench with the bench profile).
const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");
/// tantivy's indexing memory budget, the indexer's default.
const WRITER_MEMORY: usize = DEFAULT_WRITER_MEMORY_MB * 1024 * 1024;
/// Records of the small index the `corr` lookups are also timed on.
const SMALL: usize = 100_000;
/// `corr` lookups timed per index.
const LOOKUPS: usize = 300;
/// Lines appended for the freshness measurement, and their rate.
const FRESH_LINES: usize = 300;
const FRESH_PER_SECOND: u64 = 50;
/// Records per batch handed to the ingest loop by the in-process source.
const CHANNEL_BATCH: usize = 1_000;
/// Goals on this machine (the issue's): ingest MB/s per core, lookup p99, freshness p99.
const GOAL_MB_PER_CORE: f64 = 25.0;
const GOAL_LOOKUP_P99: Duration = Duration::from_millis(50);
const GOAL_FRESH_P99: Duration = Duration::from_secs(2);

fn main() {
    let started = Instant::now();
    let count: usize = std::env::var("CORRAL_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let small = SMALL.min(count);

    let t = Instant::now();
    let records = envelopes(count);
    let generated = t.elapsed().as_secs_f64();
    // The envelope JSON exactly as the ingest loop stores it and the collector produces it.
    let cpu_before = cpu_seconds();
    let t = Instant::now();
    let jsons: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("a record serializes"))
        .collect();
    let serialize_wall = t.elapsed().as_secs_f64();
    let serialize_cpu = cpu_seconds() - cpu_before;
    let bytes: u64 = jsons.iter().map(|j| j.len() as u64).sum();
    let (min_len, max_len) = jsons
        .iter()
        .fold((usize::MAX, 0), |(lo, hi), j| (lo.min(j.len()), hi.max(j.len())));
    let corr_counts = corr_counts(&records);
    println!(
        "indexer bench: {count} envelopes, {:.1} MB of JSON ({:.0} B avg, {min_len}–{max_len}), {} services, {:.2} records per corr, generated in {:.1} s",
        mb(bytes),
        bytes as f64 / count as f64,
        SERVICES.len(),
        corr_counts.values().sum::<usize>() as f64 / corr_counts.len() as f64,
        generated + serialize_wall,
    );
    println!(
        "  MB = 10^6 bytes of envelope JSON; per core = per CPU-second of this process; tantivy: 1 indexing thread, {DEFAULT_WRITER_MEMORY_MB} MiB, commit every {:?}",
        DEFAULT_COMMIT_INTERVAL
    );

    // Baselines: raw tantivy on the same documents with a minimal schema and with the split
    // schema (no ingest loop, no store), and serializing alone.
    let minimal = tantivy_baseline(&records, &jsons, BaselineSchema::Minimal);
    let split_schema = tantivy_baseline(&records, &jsons, BaselineSchema::Split);
    let serialize = Run {
        wall: serialize_wall,
        cpu: serialize_cpu,
    };
    for (label, run, note) in [
        (
            "baseline minimal",
            &minimal,
            "raw tantivy: msg TEXT + _source STORED",
        ),
        (
            "baseline split",
            &split_schema,
            "raw tantivy: the split schema via IndexFields::document, no ingest loop",
        ),
        (
            "baseline to_string",
            &serialize,
            "serde_json::to_string of every record alone",
        ),
    ] {
        println!("{}   ({note})", figures(label, count, bytes, run));
    }
    let baselines = format!(
        "baselines tantivy: minimal schema {:.1}, split schema {:.1} MB/s/core",
        mb(bytes) / minimal.cpu,
        mb(bytes) / split_schema.cpu
    );

    // Kept for later sections before the channel path consumes the records.
    let keys: Vec<String> = records.iter().map(|r| r.kafka_key().to_owned()).collect();
    let small_records = records[..small].to_vec();
    let sample = lookup_sample(&small_records, &corr_counts);

    // 1a. The ingest loop of standalone mode, fed in-process.
    let channel_dir = temp_dir("corral-bench-channel-");
    let store = open_store(channel_dir.path());
    let (run, _) = timed_ingest(
        store,
        VecSource::new(records),
        count as u64,
        Duration::from_secs(600),
    );
    print_ingest("ingest channel", count, bytes, &run, &baselines);

    // 3. `corr` lookups: a small sealed split, the big active split, the big sealed split.
    let small_dir = temp_dir("corral-bench-small-");
    let mut small_store = open_store(small_dir.path());
    for record in small_records {
        let source = serde_json::to_string(&record).expect("a record serializes");
        small_store.add(record, source).expect("add");
    }
    small_store.commit(&Checkpoint::new()).expect("commit");
    small_store.seal().expect("seal");
    let small_latency = lookups(small_store.catalog(), &sample, |s| s.1);
    print_lookups(&format!("{} sealed", size_label(small)), &small_latency);
    drop(small_store);
    drop(small_dir);

    let mut store = open_store(channel_dir.path());
    let segments = segment_count(&store.catalog());
    let active_latency = lookups(store.catalog(), &sample, |s| s.2);
    print_lookups(
        &format!("{} active ({segments} segments)", size_label(count)),
        &active_latency,
    );
    let t = Instant::now();
    store.seal().expect("seal");
    let seal_seconds = t.elapsed().as_secs_f64();
    let sealed_latency = lookups(store.catalog(), &sample, |s| s.2);
    print_lookups(&format!("{} sealed", size_label(count)), &sealed_latency);

    // 2. Bytes on disk of the sealed split.
    let sealed = store
        .catalog()
        .splits()
        .into_iter()
        .find(|s| !s.active)
        .expect("a sealed split");
    assert_eq!(sealed.docs, count as u64, "every record in the sealed split");
    let disk = dir_bytes(&sealed.dir);
    // Measured now: the archive move below replaces the hot split.
    let sealed_kinds = bytes_by_kind(&sealed.dir);
    println!(
        "on disk            {:>8} rec {:>6.1} B/rec in the sealed split   (raw JSON {:.1} B/rec, ratio {:.2}; seal = merge of {segments} segments + manifest: {:.1} s)",
        sealed.docs,
        disk as f64 / sealed.docs as f64,
        bytes as f64 / count as f64,
        disk as f64 / bytes as f64,
        seal_seconds
    );

    // 5. The sealed split moved to the archive tier: re-encoded, zstd docstore, no positions.
    let audit_dir = temp_dir("corral-bench-audit-");
    let audit = AuditLog::open(audit_dir.path()).expect("audit log");
    let retention = Retention::new(
        channel_dir.path(),
        RetentionConfig {
            check_interval: Duration::from_secs(60),
            tiers: vec![
                Tier {
                    name: "hot".into(),
                    max_age: Duration::ZERO,
                    zstd_level: None,
                    storage: None,
                },
                Tier {
                    name: "archive".into(),
                    max_age: Duration::from_secs(100 * 365 * 86_400),
                    zstd_level: None,
                    storage: None,
                },
            ],
            keep: Vec::new(),
        },
        store.catalog(),
        WRITER_MEMORY,
    );
    let cpu_before = cpu_seconds();
    let t = Instant::now();
    let steps = retention.run(&[], &audit, Timestamp::now()).expect("tier move");
    let move_wall = t.elapsed().as_secs_f64();
    let move_cpu = cpu_seconds() - cpu_before;
    assert_eq!(steps.len(), 1, "one split moved");
    let archived = store
        .catalog()
        .splits()
        .into_iter()
        .find(|s| s.tier == "archive")
        .expect("the archived split");
    assert_eq!(archived.docs, count as u64, "every record archived");
    let archive_disk = dir_bytes(&archived.dir);
    let (hot_per, archive_per, raw_per) = (
        disk as f64 / count as f64,
        archive_disk as f64 / count as f64,
        bytes as f64 / count as f64,
    );
    println!(
        "on disk archive    {count:>8} rec {archive_per:>6.1} B/rec   (hot {hot_per:.1} B/rec: {:.1}× smaller; raw JSON {raw_per:.1} B/rec: {:.1}× smaller)  goal ≥ 3× and ≥ 10×: {}",
        hot_per / archive_per,
        raw_per / archive_per,
        verdict(hot_per / archive_per >= 3.0 && raw_per / archive_per >= 10.0)
    );
    println!(
        "  by kind, B/rec    hot:     {}",
        kinds_per_record(&sealed_kinds, count)
    );
    println!(
        "  by kind, B/rec    archive: {}",
        kinds_per_record(&bytes_by_kind(&archived.dir), count)
    );
    println!(
        "tier move          {count:>8} rec hot → archive in {move_wall:.1} s wall, {move_cpu:.1} s CPU ({:.0} records/s)",
        count as f64 / move_wall
    );
    let archive_latency = lookups(store.catalog(), &sample, |s| s.2);
    print_lookups(&format!("{} archive", size_label(count)), &archive_latency);
    drop(retention);
    drop(store);
    drop(channel_dir);

    // 1b. The same envelopes from Kafka: produced first (not timed), then consumed.
    let broker = Broker::start();
    broker.create_topic(TOPIC, 4);
    let t = Instant::now();
    produce(&broker, &jsons, &keys);
    let produced = t.elapsed().as_secs_f64();
    drop(jsons);
    drop(keys);
    let kafka_dir = temp_dir("corral-bench-kafka-");
    let store = open_store(kafka_dir.path());
    let broker_cpu_before = process_cpu_seconds(broker.pid());
    let source = KafkaSource::connect(
        &KafkaOptions {
            brokers: broker.bootstrap_servers(),
            topic: TOPIC.to_owned(),
            group: CONSUMER_GROUP.to_owned(),
            // No static membership: tansu 0.6 mishandles it (see indexer/tests/kafka_ingest.rs).
            instance_id: None,
            properties: Default::default(),
            cluster: None,
        },
        store.checkpoint().clone(),
    )
    .expect("kafka source");
    let (run, first_docs) = timed_ingest(store, source, count as u64, Duration::from_secs(600));
    let broker_cpu = process_cpu_seconds(broker.pid()) - broker_cpu_before;
    print_ingest(
        "ingest kafka",
        count,
        bytes,
        &run,
        &format!(
            "{baselines}; first commit after {:.1} s (group join); produced in {produced:.1} s beforehand; broker CPU {broker_cpu:.1} s, not counted",
            first_docs.as_secs_f64()
        ),
    );
    drop(broker);
    drop(kafka_dir);

    // 4. Freshness of the release binary in standalone mode.
    let fresh = freshness();
    let p = percentiles(&fresh.latencies);
    println!(
        "freshness          {FRESH_LINES:>8} lines at {FRESH_PER_SECOND}/s       p50 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms   (line appended → record on /api/v1/tail; standalone peak RSS {:.0} MiB)  goal p99 ≤ {:?}: {}",
        ms(p.p50),
        ms(p.p99),
        ms(p.max),
        fresh.peak_rss_kib as f64 / 1024.0,
        GOAL_FRESH_P99,
        verdict(p.p99 <= GOAL_FRESH_P99)
    );
    println!("total bench runtime {:.0} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// Corpus

/// Records per `corr`.
fn corr_counts(records: &[Record]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for record in records {
        if let Some(corr) = &record.corr {
            *counts.entry(corr.clone()).or_default() += 1;
        }
    }
    counts
}

/// `LOOKUPS` random `corr` ids of the small set: (corr, records in the small set, in all).
fn lookup_sample(small: &[Record], all: &HashMap<String, usize>) -> Vec<(String, usize, usize)> {
    let in_small = corr_counts(small);
    let mut distinct: Vec<&String> = in_small.keys().collect();
    distinct.sort();
    let mut rng = SplitMix64::new(42);
    (0..LOOKUPS)
        .map(|_| {
            let corr = distinct[rng.below(distinct.len() as u64) as usize];
            (corr.clone(), in_small[corr], all[corr])
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Ingest

/// The corpus handed to the ingest loop in batches and serialized on the way, as standalone
/// mode's `ChannelSource` does with the in-process collector's records.
#[derive(Debug)]
struct VecSource {
    records: std::vec::IntoIter<Record>,
}

impl VecSource {
    fn new(records: Vec<Record>) -> VecSource {
        VecSource {
            records: records.into_iter(),
        }
    }
}

impl Source for VecSource {
    fn poll(&mut self, _timeout: Duration) -> anyhow::Result<Option<Vec<Incoming>>> {
        let mut out = Vec::with_capacity(CHANNEL_BATCH);
        for record in self.records.by_ref().take(CHANNEL_BATCH) {
            let source = serde_json::to_string(&record)?;
            out.push(Incoming {
                bytes: source.len(),
                decoded: Decoded {
                    record,
                    source,
                    problem: None,
                },
                position: None,
            });
        }
        Ok((!out.is_empty()).then_some(out))
    }

    fn committed(&mut self, _checkpoint: &Checkpoint) {}

    fn rewind(&mut self, _checkpoint: &Checkpoint) -> anyhow::Result<()> {
        anyhow::bail!("the bench's source cannot be rewound")
    }
}

fn store_options() -> StoreOptions {
    StoreOptions {
        split_max_docs: DEFAULT_SPLIT_MAX_DOCS,
        split_max_age: DEFAULT_SPLIT_MAX_AGE,
        writer_memory_bytes: WRITER_MEMORY,
        indexer_name: "bench".to_owned(),
        max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
    }
}

fn open_store(dir: &Path) -> SplitStore {
    SplitStore::open(dir, store_options()).expect("open split store")
}

/// Wall and CPU seconds of a timed section.
struct Run {
    wall: f64,
    cpu: f64,
}

/// Runs the ingest loop over `source` on its own thread, as the binary does, from the start until
/// `expected` records are committed (searchable), then stops it. Also returns when the first
/// records were searchable.
fn timed_ingest<S: Source + 'static>(
    store: SplitStore,
    source: S,
    expected: u64,
    timeout: Duration,
) -> (Run, Duration) {
    let catalog = store.catalog();
    let metrics = Arc::new(Metrics::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let ingest = Ingest::new(store, source, Arc::clone(&metrics), DEFAULT_COMMIT_INTERVAL).expect("ingest");
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || ingest.run(&stop))
    };
    let mut first_docs = None;
    loop {
        let docs: u64 = catalog.splits().iter().map(|s| s.docs).sum();
        if docs > 0 && first_docs.is_none() {
            first_docs = Some(started.elapsed());
        }
        if docs >= expected {
            break;
        }
        if thread.is_finished() {
            let result = thread.join().expect("ingest thread");
            panic!("the ingest loop ended after {docs} of {expected} records: {result:?}");
        }
        assert!(
            started.elapsed() < timeout,
            "only {docs} of {expected} records searchable after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    stop.cancel();
    thread.join().expect("ingest thread").expect("ingest loop");
    assert_eq!(metrics.records_indexed.get(), expected, "records indexed");
    assert_eq!(metrics.duplicates_dropped.get(), 0, "no duplicates in the corpus");
    (Run { wall, cpu }, first_docs.unwrap_or_default())
}

/// The common columns: records, wall and CPU seconds, records and MB per CPU-second.
fn figures(label: &str, count: usize, bytes: u64, run: &Run) -> String {
    format!(
        "{label:<18} {count:>8} rec {:>6.1} s wall {:>6.1} s CPU {:>8.0} rec/s/core {:>6.1} MB/s/core",
        run.wall,
        run.cpu,
        count as f64 / run.cpu,
        mb(bytes) / run.cpu
    )
}

fn print_ingest(label: &str, count: usize, bytes: u64, run: &Run, note: &str) {
    let per_core = mb(bytes) / run.cpu;
    println!(
        "{}   ({:.0} rec/s wall; {note})  goal ≥ {GOAL_MB_PER_CORE} MB/s/core: {}",
        figures(label, count, bytes, run),
        count as f64 / run.wall,
        verdict(per_core >= GOAL_MB_PER_CORE)
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BaselineSchema {
    /// `msg` as full text with positions (as the split schema has it), the envelope as stored
    /// `_source`.
    Minimal,
    /// The split schema and documents exactly as the store builds them.
    Split,
}

/// Raw tantivy on the same documents: lz4 docstore, one indexing thread, the same memory
/// budget, a commit every commit interval; timed until the last commit. Records are cloned
/// (for `IndexFields::document`) before the clock starts.
fn tantivy_baseline(records: &[Record], jsons: &[String], kind: BaselineSchema) -> Run {
    let dir = temp_dir("corral-bench-baseline-");
    let (schema, split_fields) = match kind {
        BaselineSchema::Split => {
            let (schema, fields) = build_schema(true);
            (schema, Some(fields))
        }
        BaselineSchema::Minimal => {
            let mut builder = Schema::builder();
            builder.add_text_field(MSG, TEXT);
            builder.add_text_field(SOURCE, STORED);
            (builder.build(), None)
        }
    };
    let msg = schema.get_field(MSG).expect("msg field");
    let source = schema.get_field(SOURCE).expect("_source field");
    let index = Index::builder()
        .schema(schema)
        .settings(IndexSettings {
            docstore_compression: Compressor::Lz4,
            ..IndexSettings::default()
        })
        .create_in_dir(dir.path())
        .expect("baseline index");
    let mut owned = split_fields
        .map(|_| records.to_vec())
        .unwrap_or_default()
        .into_iter();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut writer: IndexWriter<TantivyDocument> =
        index.writer_with_num_threads(1, WRITER_MEMORY).expect("writer");
    let mut last_commit = Instant::now();
    for (n, (record, json)) in records.iter().zip(jsons).enumerate() {
        let doc = match (&split_fields, owned.next()) {
            (Some(fields), Some(record)) => fields.document(record, json.clone(), n as u64),
            _ => {
                let mut doc = TantivyDocument::default();
                doc.add_text(msg, &record.msg);
                doc.add_text(source, json);
                doc
            }
        };
        writer.add_document(doc).expect("add");
        if n % 1024 == 0 && last_commit.elapsed() >= DEFAULT_COMMIT_INTERVAL {
            writer.commit().expect("commit");
            last_commit = Instant::now();
        }
    }
    writer.commit().expect("commit");
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    writer.wait_merging_threads().expect("merges");
    Run { wall, cpu }
}

// ---------------------------------------------------------------------------------------------
// Kafka

/// Counts librdkafka's delivery reports; keeps the first error.
#[derive(Debug, Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// Produces every envelope to `TOPIC` with the collector's producer defaults (acks=all,
/// idempotent, zstd) and its key (corr, else instance); checks every one was delivered. (Not by
/// the topic's watermarks: tansu 0.6 under-reports the high watermark of zstd batches.)
fn produce(broker: &Broker, jsons: &[String], keys: &[String]) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.bootstrap_servers());
    for (key, value) in PRODUCER_DEFAULTS {
        config.set(key, value);
    }
    config
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "1048576");
    let producer: ThreadedProducer<Deliveries> = config
        .create_with_context(Deliveries::default())
        .expect("producer");
    for (json, key) in jsons.iter().zip(keys) {
        let mut record = BaseRecord::to(TOPIC).key(key.as_str()).payload(json.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((error, _)) => panic!("produce: {error}"),
            }
        }
    }
    producer.flush(Duration::from_secs(600)).expect("flush");
    let deliveries = producer.context();
    assert_eq!(
        deliveries.failed.load(Ordering::Relaxed),
        0,
        "failed deliveries, first: {:?}",
        deliveries.first_error.lock().unwrap_or_else(|e| e.into_inner())
    );
    assert_eq!(
        deliveries.delivered.load(Ordering::Relaxed),
        jsons.len() as u64,
        "delivered"
    );
}

// ---------------------------------------------------------------------------------------------
// Lookups

/// Times a `corr` search (query string parsed, every split searched, hits loaded from
/// `_source`) for each sampled id; `expected` picks how many hits each must return.
fn lookups(
    catalog: Arc<Catalog>,
    sample: &[(String, usize, usize)],
    expected: impl Fn(&(String, usize, usize)) -> usize,
) -> Vec<Duration> {
    let engine = QueryEngine::new(catalog);
    sample
        .iter()
        .map(|entry| {
            let started = Instant::now();
            let filters = Filters::parse(&format!("corr={}", entry.0), Endpoint::Search, Timestamp::now())
                .expect("filters");
            let outcome = engine.search(&filters).expect("search");
            let took = started.elapsed();
            assert_eq!(outcome.hits.len(), expected(entry), "hits of corr={}", entry.0);
            took
        })
        .collect()
}

fn print_lookups(label: &str, latencies: &[Duration]) {
    let p = percentiles(latencies);
    println!(
        "corr lookup        {:<30} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms   ({} lookups of ~5 hits)  goal p99 ≤ {:?}: {}",
        label,
        ms(p.p50),
        ms(p.p99),
        ms(p.max),
        latencies.len(),
        GOAL_LOOKUP_P99,
        verdict(p.p99 <= GOAL_LOOKUP_P99)
    );
}

fn segment_count(catalog: &Catalog) -> usize {
    catalog
        .splits()
        .iter()
        .map(|s| s.reader.searcher().segment_readers().len())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Freshness

struct Freshness {
    latencies: Vec<Duration>,
    peak_rss_kib: u64,
}

/// Runs `corral-indexer standalone` on a kubelet-layout CRI file, follows `/api/v1/tail`, appends
/// `FRESH_LINES` lines at `FRESH_PER_SECOND` and times each line from written to received.
fn freshness() -> Freshness {
    let dir = temp_dir("corral-bench-fresh-");
    let container = dir
        .path()
        .join("pods/shop_fresh-5c7d9f8b6-q4r2t_0000-fresh-uid/app");
    fs::create_dir_all(&container).expect("log dir");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(container.join("0.log"))
        .expect("log file");
    let line = |json: &str| format!("{} stdout F {json}\n", Timestamp::now());
    file.write_all(line(r#"{"msg":"warm up","corr":"warmup"}"#).as_bytes())
        .expect("write");
    let port = free_port().expect("free port");
    let child = ChildGuard(
        Command::new(BIN)
            .arg("standalone")
            .arg("--logs")
            .arg(format!("{}/pods/*/*/*.log", dir.path().display()))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CORRAL_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}")),
    );
    // Up, and the first line searchable: the collector has found the file.
    let started = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let (status, body) = corral_tests::http::get(port, "/api/v1/search?corr=warmup");
            if status == 200 && body.contains("\"count\":1") {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "standalone did not index the warm-up line within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut tail = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(tail, "GET /api/v1/tail HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    tail.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut head = Vec::new();
    let mut buf = [0u8; 65536];
    let started = Instant::now();
    while !String::from_utf8_lossy(&head).contains("\r\n\r\n") {
        if let Ok(n) = tail.read(&mut buf) {
            head.extend_from_slice(&buf[..n]);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no tail response head"
        );
    }
    assert!(
        String::from_utf8_lossy(&head).contains("application/x-ndjson"),
        "tail answered {}",
        String::from_utf8_lossy(&head)
    );

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || read_tail(tail, &done))
    };
    let mut written = Vec::with_capacity(FRESH_LINES);
    let started = Instant::now();
    for n in 0..FRESH_LINES {
        let due = started + Duration::from_millis(n as u64 * 1000 / FRESH_PER_SECOND);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let text = line(&format!(r#"{{"msg":"fresh {n}","corr":"f-{n}"}}"#));
        file.write_all(text.as_bytes()).expect("write");
        written.push(Instant::now());
    }
    // Whatever has not arrived 10 s after the last line is reported missing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Ordering::Relaxed);
    let received = reader.join().expect("tail reader");
    let peak_rss_kib = process_peak_rss_kib(child.0.id());
    drop(child);
    let missing: Vec<usize> = (0..FRESH_LINES).filter(|n| received[*n].is_none()).collect();
    assert!(
        missing.is_empty(),
        "{} lines never arrived on the tail stream, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let latencies = written
        .iter()
        .zip(&received)
        .map(|(w, r)| r.expect("checked").saturating_duration_since(*w))
        .collect();
    Freshness {
        latencies,
        peak_rss_kib,
    }
}

/// Reads the tail stream until every fresh line arrived or `done` is set; returns when each
/// arrived. Finds `"msg":"fresh N"` in complete lines, so HTTP chunk headers do not matter.
fn read_tail(mut tail: TcpStream, done: &AtomicBool) -> Vec<Option<Instant>> {
    const NEEDLE: &str = "\"msg\":\"fresh ";
    let mut received = vec![None; FRESH_LINES];
    let mut seen = 0;
    let mut pending = Vec::new();
    let mut buf = [0u8; 65536];
    while seen < FRESH_LINES && !done.load(Ordering::Relaxed) {
        let n = match tail.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => continue, // read timeout: check `done`
        };
        let now = Instant::now();
        pending.extend_from_slice(&buf[..n]);
        let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
            continue;
        };
        let complete: Vec<u8> = pending.drain(..=end).collect();
        for line in String::from_utf8_lossy(&complete).lines() {
            let Some(at) = line.find(NEEDLE) else {
                continue;
            };
            let digits: String = line[at + NEEDLE.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(k) = digits.parse::<usize>()
                && k < FRESH_LINES
                && received[k].is_none()
            {
                received[k] = Some(now);
                seen += 1;
            }
        }
    }
    received
}

// ---------------------------------------------------------------------------------------------
// Measuring

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// `100k`, `1M`, `2.5M`.
fn size_label(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{}M", n as f64 / 1e6)
    } else {
        format!("{}k", n as f64 / 1e3)
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

/// Sum of the sizes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("list split dir")
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes of a split's files by kind: tantivy's file extension (`store` docstore, `idx`
/// postings, `pos` positions, `term` dictionary, `fast` columns, `fieldnorm`), else `other`.
fn bytes_by_kind(dir: &Path) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    for entry in fs::read_dir(dir).expect("list split dir").flatten() {
        let path = entry.path();
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some(ext @ ("store" | "idx" | "pos" | "term" | "fast" | "fieldnorm")) => ext.to_owned(),
            _ => "other".to_owned(),
        };
        *kinds.entry(kind).or_default() += entry.metadata().map(|m| m.len()).unwrap_or(0);
    }
    kinds
}

fn kinds_per_record(kinds: &BTreeMap<String, u64>, count: usize) -> String {
    kinds
        .iter()
        .map(|(kind, bytes)| format!("{kind} {:.1}", *bytes as f64 / count as f64))
        .collect::<Vec<_>>()
        .join(", ")
}
