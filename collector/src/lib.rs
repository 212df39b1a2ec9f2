//! corral-collector: discovery, tailing, parsing and enrichment of container logs, and the
//! sinks that deliver records (Kafka, in-process channel, stdout).
//!
//! The pipeline lands module by module (DESIGN §3); this crate currently holds the command
//! line only.

pub mod cli;
