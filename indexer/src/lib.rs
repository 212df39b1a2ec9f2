//! corral-indexer: consumes records into tantivy splits and serves the query API (DESIGN §4).
//!
//! Data flows through the modules in this order: a [`source`] (Kafka, or the in-process
//! collector) → [`decode`] turns messages into records → [`ingest`] drops duplicates, adds records to the
//! active split of the [`store`] (its [`field_cap`] bounding the indexed `fields.*` paths) and commits it with the source checkpoint → [`manifest`] seals
//! splits with hash-chained manifests → [`storage`] publishes them (a local directory, or an
//! object store other indexers read too) → [`retention`] moves them through tiers, keeping what
//! keep rules and holds protect → [`query`] searches every split → [`http`] serves the
//! API, asking the [`peers`] of a cluster for what only they hold. [`app`] wires `serve` and `standalone`.

pub mod app;
pub mod audit;
pub mod audit_store;
pub mod auth;
pub mod cache;
pub mod catalog;
pub mod chain;
pub mod cli;
pub mod config;
pub mod control;
pub mod decode;
pub mod disk;
pub mod field_cap;
mod group_count;
pub mod holds;
pub mod http;
pub mod ingest;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod peers;
pub mod published;
pub mod query;
pub mod retention;
pub mod source;
pub mod storage;
pub mod store;
pub mod verify;
