//! Command line of `corral-indexer`.

use clap::Parser;

/// Indexes corral records from Kafka into tantivy splits with retention tiers and serves the query API.
#[derive(Debug, Parser)]
#[command(name = "corral-indexer", version, about, long_about = None)]
pub struct Args {}
