//! Command line of `corral-collector`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Tails Kubernetes container logs on this node, parses them and ships them as corral records.
#[derive(Debug, Parser)]
#[command(
    name = "corral-collector",
    version,
    about = "Tails Kubernetes container logs on this node, parses them and ships them as corral records",
    after_help = "Examples:\n  corral-collector --once --sink stdout --logs '/var/log/pods/*/*/*.log'\n  corral-collector --sink kafka --brokers kafka:9092 --metadata kube\n  corral-collector --metadata file:pods.json --data-dir /tmp/corral --logs 'logs/*.log'\n  corral-collector --sink kafka --brokers kafka:9092 --metadata docker   # reads /var/lib/docker/containers"
)]
pub struct Args {
    /// Glob of log files to read (repeatable) [default: /var/log/pods/*/*/*.log, the kubelet's
    /// layout; with --metadata docker, /var/lib/docker/containers/*/*-json.log, Docker's
    /// json-file driver].
    #[arg(long = "logs", value_name = "GLOB")]
    pub logs: Vec<String>,
    /// Directory for read positions (checkpoints).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/corral/collector")]
    pub data_dir: PathBuf,
    /// Where records go.
    #[arg(long, value_enum, default_value_t = SinkKind::Stdout)]
    pub sink: SinkKind,
    /// Kafka bootstrap servers (`--sink kafka`).
    #[arg(long, env = "CORRAL_BROKERS", value_name = "HOST:PORT,…")]
    pub brokers: Option<String>,
    /// Kafka topic (`--sink kafka`).
    #[arg(long, default_value = corral_schema::fields::TOPIC)]
    pub topic: String,
    /// Name of this node, stamped on every record [default: the host name].
    #[arg(long, env = "NODE_NAME")]
    pub node: Option<String>,
    /// Where pod metadata comes from: `path` (the file path only), `kube` (the Kubernetes API, pods of
    /// this node), `docker` (a plain Docker host: each container's labels and name from the
    /// `config.v2.json` beside its json-file log, no API socket), `file:<json>` (static pod metadata).
    #[arg(long, value_name = "PROVIDER", default_value = "path")]
    pub metadata: String,
    /// Read what the files hold now, deliver it, save positions and exit.
    #[arg(long)]
    pub once: bool,
    /// Address of /metrics, /healthz and /readyz (not served with --once).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7281")]
    pub listen: std::net::SocketAddr,
    /// Configuration file (TOML).
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
}

impl Args {
    /// The globs to read: `--logs`, else the layout `--metadata` implies.
    pub fn log_globs(&self) -> Vec<String> {
        if !self.logs.is_empty() {
            return self.logs.clone();
        }
        let default = match self.metadata.as_str() {
            "docker" => crate::docker_provider::DOCKER_LOGS_GLOB,
            _ => "/var/log/pods/*/*/*.log",
        };
        vec![default.to_owned()]
    }
}

/// Sinks selectable on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SinkKind {
    /// NDJSON envelopes on standard output.
    Stdout,
    /// One Kafka message per record, acknowledged on delivery.
    Kafka,
}
