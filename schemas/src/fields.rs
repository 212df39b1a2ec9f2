//! Names that cross process boundaries: JSON field names of the envelope, the Kafka topic and
//! header, metric prefixes. Code everywhere refers to these constants, never to string literals.

/// Envelope version carried in [`V`].
pub const ENVELOPE_VERSION: u32 = 1;

/// Envelope version.
pub const V: &str = "v";
/// Deterministic record id: 32 lowercase hex digits.
pub const ID: &str = "id";
/// Event time, RFC 3339 with nanoseconds, UTC.
pub const TS: &str = "ts";
/// When the collector read the line.
pub const OBSERVED_TS: &str = "observed_ts";
/// Service name stamped by the collector.
pub const SERVICE: &str = "service";
/// Service version stamped by the collector.
pub const VERSION: &str = "version";
/// Service instance stamped by the collector.
pub const INSTANCE: &str = "instance";
/// Kubernetes node the line was read on.
pub const NODE: &str = "node";
/// Kubernetes namespace of the pod.
pub const NAMESPACE: &str = "namespace";
/// Pod name.
pub const POD: &str = "pod";
/// Container name.
pub const CONTAINER: &str = "container";
/// `stdout` or `stderr`.
pub const STREAM: &str = "stream";
/// Normalised level, or null.
pub const LEVEL: &str = "level";
/// Correlation id, or null.
pub const CORR: &str = "corr";
/// Span id (W3C `traceparent`'s parent id, OpenTelemetry `span_id`); omitted when unknown.
pub const SPAN: &str = "span";
/// The message.
pub const MSG: &str = "msg";
/// Every other key of the application's JSON object.
pub const FIELDS: &str = "fields";
/// Processing flags; omitted when empty.
pub const FLAGS: &str = "flags";

/// With flag `ts_adjusted` only: the line's own (implausible) timestamp.
pub const ORIGINAL_TS: &str = "original_ts";

/// All envelope field names, in the order records serialize them (without the optional
/// [`SPAN`] and [`ORIGINAL_TS`]).
pub const ALL: [&str; 17] = [
    V,
    ID,
    TS,
    OBSERVED_TS,
    SERVICE,
    VERSION,
    INSTANCE,
    NODE,
    NAMESPACE,
    POD,
    CONTAINER,
    STREAM,
    LEVEL,
    CORR,
    MSG,
    FIELDS,
    FLAGS,
];

/// Index-only field that stores the whole envelope as JSON (never part of the envelope itself).
pub const SOURCE: &str = "_source";
/// Index-only fields: the record id's 128-bit key ([`crate::record::id_key`]), high and low
/// halves, as fast columns (cheap to write, read back to warm the duplicate filter).
pub const ID_HI: &str = "_id_hi";
pub const ID_LO: &str = "_id_lo";
/// Index-only field: the indexer's ingest sequence number, increasing in commit order. `tail`
/// follows it to stream records as they become searchable, whatever their `ts`.
pub const SEQ: &str = "_seq";

/// Kafka topic that carries envelopes.
pub const TOPIC: &str = "corral.logs.v1";
/// Kafka header naming the envelope version of a message's value.
pub const SCHEMA_HEADER: &str = "corral-schema";
/// Value of [`SCHEMA_HEADER`] for envelope v1.
pub const SCHEMA_HEADER_V1: &str = "1";
/// Kafka consumer group of the indexers.
pub const CONSUMER_GROUP: &str = "corral-indexer";
/// Value of `service`, `version` or `instance` when nothing better is known.
pub const UNKNOWN: &str = "unknown";
