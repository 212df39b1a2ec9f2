//! Command line of `corral-indexer`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::peers::{PeerAddr, parse_peers};
use crate::storage::StorageUrl;

/// The `--peers` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerList(pub Vec<PeerAddr>);

fn parse_peers_arg(list: &str) -> Result<PeerList, String> {
    parse_peers(list).map(PeerList)
}

/// An `--indexer-id`: what a pod name may hold, as it names objects and headers.
fn parse_indexer_id(id: &str) -> Result<String, String> {
    if id.is_empty()
        || id.len() > 253
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!(
            "{id:?}: an indexer id is 1 to 253 letters, digits, '-', '.' or '_' (a pod name)"
        ));
    }
    Ok(id.to_owned())
}

/// Indexes corral records from Kafka into tantivy splits and serves the query API.
#[derive(Debug, Parser)]
#[command(
    name = "corral-indexer",
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  corral-indexer serve --brokers kafka:9092 --data-dir /var/lib/corral/indexer\n  corral-indexer standalone --demo\n  corral-indexer standalone --logs '/var/log/pods/*/*/*.log' --data-dir ./corral-data\n  corral-indexer verify --data-dir /var/lib/corral/indexer\n  corral-indexer verify --storage s3://corral-logs/prod\n  corral-indexer retention --data-dir /var/lib/corral/indexer --config indexer.toml --dry-run"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume a Kafka topic into splits and serve the query API.
    Serve(ServeArgs),
    /// Run collector, indexer and API in one process, without Kafka.
    Standalone(StandaloneArgs),
    /// Re-hash every sealed split against its manifest and walk the manifest and audit-log
    /// chains; exit 1 naming each split or audit file that does not match.
    Verify(VerifyArgs),
    /// Run one retention pass over a data dir (tier moves, rewrites for keep rules and holds,
    /// deletions, each recorded in the audit log), or show what it would do with --dry-run.
    /// Refused while an indexer serves the same data dir (it runs its own passes).
    Retention(RetentionArgs),
}

/// Options of `retention`.
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// The indexer's data dir (of `serve` or of `standalone`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Indexer configuration with the `[retention]` section (tiers, keep rules).
    #[arg(long, value_name = "TOML")]
    pub config: PathBuf,
    /// Print what would move, be rewritten and be deleted, and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Kafka bootstrap servers of the cluster whose control topic holds the legal holds: needed
    /// for the data dir of a `serve` indexer (its holds are not in the data dir).
    #[arg(long, env = "CORRAL_BROKERS", value_name = "HOST:PORT,…")]
    pub brokers: Option<String>,
    /// With --brokers: the control topic.
    #[arg(long, default_value = crate::control::CONTROL_TOPIC, value_name = "TOPIC")]
    pub control_topic: String,
}

/// Options of `verify`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["data_dir", "storage"])))]
pub struct VerifyArgs {
    /// The indexer's data dir (of `serve` or of `standalone`). With --storage: the audit log of
    /// the indexer --indexer-id is read from it.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Verify the whole cluster in an object store (s3://bucket/prefix, with the AWS_*
    /// environment as for `serve`): every published split is fetched and re-hashed, and each
    /// indexer's manifest chain walked up to the chain head it published.
    #[arg(long, value_name = "URL")]
    pub storage: Option<StorageUrl>,
    /// With --storage: the indexers' configuration, for the tiers published to a store of their
    /// own (`[[retention.tiers]] storage`), which are verified too.
    #[arg(long, value_name = "TOML", requires = "storage")]
    pub config: Option<PathBuf>,
    /// With --storage and --data-dir: whose audit log the data dir holds (default: POD_NAME,
    /// else the host name).
    #[arg(long, env = "POD_NAME", value_name = "ID", value_parser = parse_indexer_id)]
    pub indexer_id: Option<String>,
    /// With --storage: Kafka bootstrap servers of the cluster. Every indexer's audit log in the
    /// store is then checked against the head it last published to the control topic, outside
    /// the store: a removed or cut tail, or a log rewritten with a forged entry, shows; entries
    /// after that head do not count as evidence of a deletion.
    #[arg(long, value_name = "HOST:PORT,…", requires = "storage")]
    pub brokers: Option<String>,
    /// With --brokers: the control topic.
    #[arg(long, default_value = crate::control::CONTROL_TOPIC, value_name = "TOPIC")]
    pub control_topic: String,
}

/// Options of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "CORRAL_BROKERS", value_name = "HOST:PORT,…")]
    pub brokers: String,
    /// Topic carrying the envelopes.
    #[arg(long, default_value = corral_schema::fields::TOPIC)]
    pub topic: String,
    /// Consumer group shared by every indexer.
    #[arg(long, default_value = corral_schema::fields::CONSUMER_GROUP)]
    pub group: String,
    /// The cluster's control topic (compacted, one partition; created if missing): legal holds
    /// and audit heads, and through its consumer group `corral-janitor` the retention janitor.
    #[arg(long, env = "CORRAL_CONTROL_TOPIC", default_value = crate::control::CONTROL_TOPIC, value_name = "TOPIC")]
    pub control_topic: String,
    /// Static group membership (`group.instance.id`) and the name in split manifests;
    /// in Kubernetes, the pod name from the downward API.
    #[arg(long = "instance-id", env = "POD_NAME", value_name = "NAME")]
    pub instance_id: Option<String>,
    /// The identity under which this indexer publishes splits and its chain head (default: the
    /// instance id, else the host name).
    #[arg(long, value_name = "ID", value_parser = parse_indexer_id)]
    pub indexer_id: Option<String>,
    /// Where the active split, the audit log, holds and (with an object store) the cache live.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/corral/indexer")]
    pub data_dir: PathBuf,
    /// Where sealed splits are published: file:///abs/path or s3://bucket/prefix (S3 settings
    /// from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ALLOW_HTTP). Default: store/ in the data dir.
    #[arg(long, env = "CORRAL_STORAGE", value_name = "URL")]
    pub storage: Option<StorageUrl>,
    /// The other indexers' APIs, comma-separated: http://host:port, or dns+http://name:port for
    /// every address of a name (a headless Service). A query to any indexer then answers for the
    /// whole cluster. None: a one-node cluster.
    #[arg(long, env = "CORRAL_PEERS", value_name = "URL,…", value_parser = parse_peers_arg)]
    pub peers: Option<PeerList>,
    /// Address of the query API, `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7280")]
    pub listen: SocketAddr,
    /// Indexer configuration (TOML): `[kafka]` consumer properties, `[indexer]` commit and split
    /// settings, `[retention]` tiers and keep rules, `[auth] tokens_file`.
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Serve the API without tokens on a non-loopback address (refused otherwise).
    #[arg(long)]
    pub insecure_open: bool,
}

/// Options of `standalone`.
#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// Log files to tail (repeatable), kubelet layout or any file.
    #[arg(long = "logs", value_name = "GLOB")]
    pub logs: Vec<String>,
    /// Where splits and collector checkpoints live.
    #[arg(long, value_name = "DIR", default_value = "corral-data")]
    pub data_dir: PathBuf,
    /// Where sealed splits are published, as for `serve`. Default: index/store/ in the data dir.
    #[arg(long, value_name = "URL")]
    pub storage: Option<StorageUrl>,
    /// The identity under which this indexer publishes (default: the host name).
    #[arg(long, value_name = "ID", value_parser = parse_indexer_id)]
    pub indexer_id: Option<String>,
    /// Address of the query API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7280")]
    pub listen: SocketAddr,
    /// Indexer configuration (TOML), as for `serve`.
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Serve the API without tokens on a non-loopback address (refused otherwise).
    #[arg(long)]
    pub insecure_open: bool,
    /// Collector configuration (TOML), as for `corral-collector --config`.
    #[arg(long, value_name = "TOML")]
    pub collector_config: Option<PathBuf>,
    /// Where pod metadata (service, version, instance) comes from, as for `corral-collector
    /// --metadata`: `path` (the file path only: version `unknown`), `kube` (the Kubernetes API,
    /// pods of this node, NODE_NAME or the host name), `docker` (each container's `config.v2.json`
    /// beside its json-file log) or `file:<json>` (static pod metadata).
    #[arg(long, value_name = "path|kube|file:<json>", conflicts_with = "demo")]
    pub metadata: Option<String>,
    /// Also run a simulated microservice fleet writing kubelet-style logs under the data dir
    /// (with the fleet's own pod metadata).
    #[arg(long)]
    pub demo: bool,
    /// Requests per second of the simulated fleet.
    #[arg(long, value_name = "N", default_value_t = 20, requires = "demo")]
    pub demo_rate: u32,
}
