//! corral-indexer: Kafka source, tantivy split store, retention tiers, query engine and HTTP API.
//!
//! The indexer lands module by module (DESIGN §4); this crate currently holds the command line
//! only.

pub mod cli;
