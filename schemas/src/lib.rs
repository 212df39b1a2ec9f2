//! corral's shared vocabulary: the record envelope v1 and everything that must mean the same
//! thing in the collector, the indexer and `logq`.
//!
//! - [`fields`]: every JSON field name, topic name and header name, as constants;
//! - [`record`]: the envelope types ([`Record`], [`Stream`], [`Flag`]);
//! - [`level`]: level normalisation from any logging library's spelling to six levels;
//! - [`timestamp`]: parsing the timestamps applications print, and the envelope's RFC 3339 form;
//! - [`duration`]: human durations (`500ms`, `15m`, `7d`, `1y`) for config and query parameters;
//! - [`api`]: request and response types of the indexer's HTTP API;
//! - `index_schema` (feature `tantivy`): the tantivy schema built from the field constants.
//!
//! This crate does no I/O.

pub mod api;
pub mod duration;
pub mod fields;
#[cfg(feature = "tantivy")]
pub mod index_schema;
pub mod level;
pub mod record;
pub mod timestamp;

pub use level::{Level, LevelScale};
pub use record::{Flag, Record, Stream};
pub use timestamp::{DEFAULT_MAX_FUTURE_SKEW, Timestamp};

/// The JSON Schema (draft 2020-12) of the record envelope v1, as published in
/// `schemas/record.v1.schema.json`.
pub const RECORD_V1_JSON_SCHEMA: &str = include_str!("../record.v1.schema.json");
