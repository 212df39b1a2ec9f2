//! Command line of `corral-collector`.

use clap::Parser;

/// Tails Kubernetes container logs on this node, parses them and ships them as corral records.
#[derive(Debug, Parser)]
#[command(name = "corral-collector", version, about, long_about = None)]
pub struct Args {}
