//! The indexer's telemetry, every metric defined once with its help text (served on `/metrics`).

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of a salvaged message: `not_json`, `bad_envelope`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Label of an API call: `search`, `tail`, `stats`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: &'static str,
}

/// Label of a refused API call: the endpoint (`search`, `holds` …) and the HTTP status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabel {
    pub endpoint: &'static str,
    pub status: u16,
}

/// Label of a peer: its URL.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    pub peer: String,
}

/// The metrics of split storage and the cluster, handed to [`crate::storage::SplitStorage`]
/// and [`crate::peers::Peers`] (created unregistered for tools and tests).
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    pub publish_seconds: Histogram,
    pub publish_failures: Counter,
    pub uploads: Counter,
    pub upload_bytes: Counter,
    /// Published splits fetched into the local cache: what was not there yet.
    pub cache_misses: Counter,
    pub cache_bytes_fetched: Counter,
    /// Searches of another indexer's published split that found it in the local cache.
    pub cache_hits: Counter,
    /// Splits removed from the local cache to keep it within `cache_max_bytes`.
    pub cache_evictions: Counter,
    pub cache_bytes: Gauge,
    pub catalog_splits: Gauge,
    pub peer_errors: Family<PeerLabel, Counter>,
    /// Splits dropped unpublished because another indexer published their partitions' records.
    pub splits_fenced: Counter,
    /// 1 while this indexer is the cluster's elected retention janitor.
    pub janitor: Gauge,
}

impl Default for StorageMetrics {
    fn default() -> Self {
        StorageMetrics {
            publish_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            publish_failures: Counter::default(),
            uploads: Counter::default(),
            upload_bytes: Counter::default(),
            cache_misses: Counter::default(),
            cache_bytes_fetched: Counter::default(),
            cache_hits: Counter::default(),
            cache_evictions: Counter::default(),
            cache_bytes: Gauge::default(),
            catalog_splits: Gauge::default(),
            peer_errors: Family::default(),
            splits_fenced: Counter::default(),
            janitor: Gauge::default(),
        }
    }
}

impl StorageMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "publish_seconds",
            "Time taken to publish a sealed split (upload its files, then its manifest)",
            self.publish_seconds.clone(),
        );
        registry.register(
            "publish_failures",
            "Publish attempts that failed and were tried again",
            self.publish_failures.clone(),
        );
        registry.register(
            "uploads",
            "Files uploaded to the object store",
            self.uploads.clone(),
        );
        registry.register(
            "upload_bytes",
            "Bytes uploaded to the object store",
            self.upload_bytes.clone(),
        );
        registry.register(
            "cache_misses",
            "Published splits fetched into the local cache",
            self.cache_misses.clone(),
        );
        registry.register(
            "cache_fetched_bytes",
            "Bytes fetched from the object store into the local cache",
            self.cache_bytes_fetched.clone(),
        );
        registry.register(
            "cache_hits",
            "Searches of another indexer's published split that found it in the local cache",
            self.cache_hits.clone(),
        );
        registry.register(
            "cache_evictions",
            "Splits removed from the local cache to keep it within cache_max_bytes",
            self.cache_evictions.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes of other indexers' published splits in the local cache (at most cache_max_bytes, but for the split being searched)",
            self.cache_bytes.clone(),
        );
        registry.register(
            "catalog_splits",
            "Splits published in the object store at the last catalog refresh",
            self.catalog_splits.clone(),
        );
        registry.register(
            "splits_fenced",
            "Splits dropped unpublished because another indexer had published records of their partitions (a paused or cut-off indexer); their records were read again",
            self.splits_fenced.clone(),
        );
        registry.register(
            "retention_janitor",
            "1 while this indexer holds the cluster's retention janitor lease (in the object store)",
            self.janitor.clone(),
        );
        registry.register(
            "peer_errors",
            "Peers that failed or were late to answer a query's share",
            self.peer_errors.clone(),
        );
    }
}

/// Handles of every indexer metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub records_indexed: Counter,
    pub bytes_indexed: Counter,
    pub duplicates_dropped: Counter,
    pub invalid_records: Family<ReasonLabel, Counter>,
    pub commits: Counter,
    pub commit_seconds: Histogram,
    pub splits_sealed: Counter,
    pub source_errors: Counter,
    pub splits: Gauge,
    pub queries: Family<EndpointLabel, Counter>,
    pub query_errors: Family<EndpointLabel, Counter>,
    pub query_seconds: Family<EndpointLabel, Histogram>,
    pub ts_adjusted: Counter,
    pub fields_capped: Counter,
    pub refused: Family<RefusedLabel, Counter>,
    pub tails_open: Gauge,
    pub tails_closed_slow: Counter,
    pub ingest_paused: Gauge,
    pub write_failures_recovered: Counter,
    pub storage: StorageMetrics,
    /// Set while the disk is too full to ingest; `/readyz` answers 503 with it.
    disk_problem: Mutex<Option<String>>,
    /// Set while ingest is failing; `/readyz` reports it.
    problem: Mutex<Option<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("corral_indexer");
        let records_indexed = Counter::default();
        registry.register(
            "records_indexed",
            "Records added to the index",
            records_indexed.clone(),
        );
        let bytes_indexed = Counter::default();
        registry.register(
            "bytes_indexed",
            "Envelope JSON bytes added to the index",
            bytes_indexed.clone(),
        );
        let duplicates_dropped = Counter::default();
        registry.register(
            "duplicates_dropped",
            "Records not indexed because a record with the same id was indexed recently",
            duplicates_dropped.clone(),
        );
        let invalid_records = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "invalid_records",
            "Messages that were not valid envelopes, indexed as well as they could be and flagged",
            invalid_records.clone(),
        );
        let commits = Counter::default();
        registry.register("commits", "Commits of the active split", commits.clone());
        let commit_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "commit_seconds",
            "Time taken by a commit of the active split",
            commit_seconds.clone(),
        );
        let splits_sealed = Counter::default();
        registry.register(
            "splits_sealed",
            "Splits sealed (merged, manifested, moved)",
            splits_sealed.clone(),
        );
        let source_errors = Counter::default();
        registry.register(
            "source_errors",
            "Errors reported by the source (Kafka)",
            source_errors.clone(),
        );
        let splits = Gauge::default();
        registry.register("splits", "Searchable splits, active included", splits.clone());
        let queries = Family::<EndpointLabel, Counter>::default();
        registry.register("queries", "API queries served", queries.clone());
        let query_errors = Family::<EndpointLabel, Counter>::default();
        registry.register(
            "query_errors",
            "API queries answered with an error",
            query_errors.clone(),
        );
        let query_seconds = Family::<EndpointLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "query_seconds",
            "Time taken by API queries",
            query_seconds.clone(),
        );
        let ts_adjusted = Counter::default();
        registry.register(
            "ts_adjusted",
            "Records whose ts was implausible (beyond max_future_skew, or before 1970-01-02) and were indexed at observed_ts",
            ts_adjusted.clone(),
        );
        let fields_capped = Counter::default();
        registry.register(
            "fields_capped",
            "Records holding fields.* paths beyond their split's max_indexed_field_paths: stored whole and flagged fields_capped, those paths not searchable",
            fields_capped.clone(),
        );
        let refused = Family::<RefusedLabel, Counter>::default();
        registry.register(
            "refused",
            "API calls refused (400 bad request, 401 no or unknown token, 403 role too low, 429 too many tails), each also in the audit log",
            refused.clone(),
        );
        let tails_open = Gauge::default();
        registry.register("tails_open", "Tail streams being served", tails_open.clone());
        let tails_closed_slow = Counter::default();
        registry.register(
            "tails_closed_slow",
            "Tail streams closed because their client stopped reading and tail_buffer_bytes filled up",
            tails_closed_slow.clone(),
        );
        let ingest_paused = Gauge::default();
        registry.register(
            "ingest_paused",
            "1 while ingest is paused because the data dir's disk has less than min_free_bytes free",
            ingest_paused.clone(),
        );
        let write_failures_recovered = Counter::default();
        registry.register(
            "write_failures_recovered",
            "Writes that failed for lack of disk space, recovered from by reopening the store at its last commit and rewinding the source",
            write_failures_recovered.clone(),
        );
        let storage = StorageMetrics::default();
        storage.register(&mut registry);
        Metrics {
            registry,
            storage,
            ingest_paused,
            write_failures_recovered,
            disk_problem: Mutex::new(None),
            ts_adjusted,
            fields_capped,
            refused,
            tails_open,
            tails_closed_slow,
            records_indexed,
            bytes_indexed,
            duplicates_dropped,
            invalid_records,
            commits,
            commit_seconds,
            splits_sealed,
            source_errors,
            splits,
            queries,
            query_errors,
            query_seconds,
            problem: Mutex::new(None),
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }

    /// Records (or clears, with `None`) a problem that makes the indexer unready.
    pub fn set_problem(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }

    /// Records (or clears) that ingest is paused for lack of disk space.
    pub fn set_disk_problem(&self, problem: Option<String>) {
        self.ingest_paused.set(i64::from(problem.is_some()));
        *self.disk_problem.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }

    pub fn disk_problem(&self) -> Option<String> {
        self.disk_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn problem(&self) -> Option<String> {
        self.problem.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
