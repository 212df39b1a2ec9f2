//! The two ways to run the indexer: `serve` (Kafka → splits → API) and `standalone` (collector
//! in-process → splits → API, optionally with the demo fleet).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use corral_collector::config::CollectorConfig;
use corral_collector::metadata::{MetadataProvider, PathProvider, StaticFileProvider};
use corral_collector::pipeline::{Collector, RecordBuilder};
use corral_collector::sink;
use corral_demo::{Fleet, FleetConfig};
use corral_schema::Timestamp;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditLog;
use crate::auth::Tokens;
use crate::cli::{RetentionArgs, ServeArgs, StandaloneArgs};
use crate::config::IndexerConfig;
use crate::control::{ControlTopic, Janitor};
use crate::holds::Holds;
use crate::http::{Access, ApiState, Cluster, TailPolicy};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::peers::Peers;
use crate::query::QueryEngine;
use crate::retention::{Retention, Step};
use crate::source::{ChannelSource, ClusterHooks, KafkaOptions, KafkaSource, Source};
use crate::storage::{SplitStorage, StorageUrl};
use crate::store::{Catalog, SplitStore, StoreOptions};

/// Batches waiting between the in-process collector and the indexer.
const STANDALONE_CHANNEL: usize = 64;

fn load_config(path: Option<&Path>) -> anyhow::Result<IndexerConfig> {
    match path {
        Some(path) => IndexerConfig::load(path),
        None => Ok(IndexerConfig::default()),
    }
}

fn open_store(
    data_dir: &Path,
    storage: Option<&StorageUrl>,
    config: &IndexerConfig,
    name: String,
    metrics: &Metrics,
) -> anyhow::Result<SplitStore> {
    let url = storage
        .cloned()
        .unwrap_or_else(|| StorageUrl::default_for(data_dir));
    let mut storage = SplitStorage::open(&url, data_dir)?.with_metrics(metrics.storage.clone());
    for tier in config.retention.iter().flat_map(|retention| &retention.tiers) {
        if let Some(tier_url) = &tier.storage {
            storage = storage.with_tier_storage(&tier.name, tier_url)?;
            tracing::info!(tier = %tier.name, storage = %tier_url, "tier storage");
        }
    }
    tracing::info!(storage = %url, local = %storage.root().display(), indexer = %name, "split storage");
    let store = SplitStore::open_in(
        data_dir,
        Arc::new(storage),
        StoreOptions {
            split_max_docs: config.split_max_docs,
            split_max_age: config.split_max_age,
            writer_memory_bytes: config.writer_memory_mb * 1024 * 1024,
            indexer_name: name,
            max_indexed_field_paths: config.max_indexed_field_paths,
        },
    )
    .with_context(|| format!("cannot open the split store in {}", data_dir.display()))?;
    if let Some(cache) = store.catalog().cache() {
        cache.set_max_bytes(config.cache_max_bytes);
    }
    Ok(store)
}

/// Who may call the API: the tokens file's tokens, or everyone — which is refused on a
/// non-loopback address unless `insecure_open`.
fn access(config: &IndexerConfig, listen: SocketAddr, insecure_open: bool) -> anyhow::Result<Access> {
    match &config.tokens_file {
        Some(path) => {
            let tokens = Tokens::load(path)?;
            tracing::info!(tokens = tokens.len(), file = %path.display(), "API tokens loaded");
            Ok(Access::Tokens(Arc::new(tokens)))
        }
        None if listen.ip().is_loopback() => Ok(Access::Open),
        None if insecure_open => {
            tracing::warn!(%listen, "the API is open to anyone who can reach {listen} (--insecure-open)");
            Ok(Access::Open)
        }
        None => anyhow::bail!(
            "refusing to serve an open API on {listen}: set [auth] tokens_file in the config, listen on a loopback address, or pass --insecure-open"
        ),
    }
}

/// Retention over the store's splits, when the config has a `[retention]` section.
fn retention(store: &SplitStore, config: &IndexerConfig, indexer: &str) -> Option<Retention> {
    let catalog = &store.catalog();
    let retention = config.retention.clone()?;
    tracing::info!(
        tiers = %retention.tiers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(" → "),
        keep_rules = retention.keep.len(),
        every_s = retention.check_interval.as_secs(),
        "retention on"
    );
    Some(
        Retention::new(
            store.data_dir(),
            retention,
            Arc::clone(catalog),
            config.writer_memory_mb * 1024 * 1024,
        )
        .with_storage(Arc::clone(store.storage()), indexer),
    )
}

/// `corral-indexer retention`: one pass over a data dir, or with `--dry-run` what a pass would do.
pub fn retention_pass(args: &RetentionArgs) -> anyhow::Result<()> {
    let config = IndexerConfig::load(&args.config)?;
    let Some(retention_config) = config.retention.clone() else {
        anyhow::bail!(
            "{} has no [retention] section: there is nothing to move or delete",
            args.config.display()
        );
    };
    let root = crate::verify::store_root(&args.data_dir)?;
    let split_root = crate::storage::local_root(&root);
    if !crate::disk::exists(&split_root.join(crate::store::SPLITS_DIR))? {
        anyhow::bail!(
            "{} holds no sealed splits (no {}/ directory): is it an indexer data dir?",
            args.data_dir.display(),
            crate::store::SPLITS_DIR
        );
    }
    // The audit lock first: it also keeps a running indexer's own retention out of the way.
    let audit = if args.dry_run {
        None
    } else {
        let audit = open_audit(&args.data_dir, &root)?;
        crate::retention::recover(&SplitStorage::local_unchecked(&split_root))?;
        Some(audit)
    };
    let catalog = Arc::new(Catalog::open_sealed(&root)?);
    let holds = match &args.brokers {
        Some(brokers) => Holds::cluster(
            Arc::new(ControlTopic::connect(
                brokers,
                &args.control_topic,
                &config.kafka,
            )?),
            &args.data_dir,
        )?,
        None => Holds::open_local(&args.data_dir)?,
    };
    let retention = Retention::new(
        &root,
        retention_config,
        catalog,
        config.writer_memory_mb * 1024 * 1024,
    );
    let now = Timestamp::now();
    let steps = match &audit {
        None => retention.plan(&holds.list()?, now)?,
        Some(audit) => retention.run_with(&holds, audit, now)?,
    };
    for step in &steps {
        println!("{step}");
    }
    let count = |kind| steps.iter().filter(|s| s.step == kind).count();
    println!(
        "{}{} moved, {} rewritten, {} deleted ({} holds in force){}",
        if args.dry_run { "dry run: would have " } else { "" },
        count(Step::Move),
        count(Step::Rewrite),
        count(Step::Delete),
        holds.list()?.len(),
        if args.dry_run { "; nothing was changed" } else { "" }
    );
    Ok(())
}

/// Opens the audit log of `data_dir` (its lock first, then the check of its newest file) and
/// checks it against the head the chain head of the store under `store_root` anchored.
fn open_audit(data_dir: &Path, store_root: &Path) -> anyhow::Result<AuditLog> {
    let audit = AuditLog::open(data_dir)?;
    let split_root = crate::storage::local_root(store_root);
    if let Some(anchor) = crate::store::read_chain_head(&split_root)?.and_then(|h| h.audit) {
        let anchored_in = split_root
            .join(crate::store::SPLITS_DIR)
            .join(crate::store::CHAIN_HEAD_FILE);
        audit.check_anchor(&anchor, &anchored_in)?;
    }
    Ok(audit)
}

/// An empty audit log where the object store holds this indexer's (its data dir was lost):
/// the log is restored from the store before anything is appended, so its chain goes on.
fn restore_lost_audit_log(
    audit: AuditLog,
    storage: &SplitStorage,
    indexer: &str,
    data_dir: &Path,
) -> anyhow::Result<AuditLog> {
    if audit.head().is_some() || !storage.is_shared() || storage.audit_chunk_names(indexer)?.is_empty() {
        return Ok(audit);
    }
    let dir = audit.dir().to_owned();
    // Restored under the log's lock, then opened again to read the restored head.
    let entries = crate::audit_store::restore_log(storage, indexer, &dir)?;
    drop(audit);
    tracing::warn!(entries, dir = %dir.display(), "the data dir held no audit log: restored the one in the object store");
    open_audit(data_dir, data_dir)
}

pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "indexer".to_owned())
}

/// `corral-indexer serve`.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let access = access(&config, args.listen, args.insecure_open)?;
    let name = args
        .indexer_id
        .clone()
        .or_else(|| args.instance_id.clone())
        .unwrap_or_else(host_name);
    // The audit log's lock first: a second indexer on this data dir stops here, before the
    // store's recovery touches anything.
    let audit = open_audit(&args.data_dir, &args.data_dir)?;
    let metrics = Arc::new(Metrics::new());
    let mut store = open_store(
        &args.data_dir,
        args.storage.as_ref(),
        &config,
        name.clone(),
        &metrics,
    )?;
    let audit = Arc::new(restore_lost_audit_log(
        audit,
        store.storage(),
        &name,
        &args.data_dir,
    )?);
    let audit_at_exit = Arc::clone(&audit);
    store.anchor_audit(Arc::clone(&audit));
    store.storage().upload_audit_log(&name, Arc::clone(&audit));
    // A log that does not continue the store's copy is refused here, before any seal needs it.
    store.storage().upload_audit()?;
    store.set_source(&args.topic);
    let catalog = store.catalog();
    let source = KafkaSource::connect(
        &KafkaOptions {
            brokers: args.brokers.clone(),
            topic: args.topic.clone(),
            group: args.group.clone(),
            instance_id: args.instance_id.clone(),
            properties: config.kafka.clone(),
            cluster: cluster_hooks(&store, &args.topic),
        },
        store.checkpoint().clone(),
    )?;
    tracing::info!(
        brokers = %args.brokers,
        topic = %args.topic,
        group = %args.group,
        data_dir = %args.data_dir.display(),
        listen = %args.listen,
        "indexer started"
    );
    let control = Arc::new(ControlTopic::connect(
        &args.brokers,
        &args.control_topic,
        &config.kafka,
    )?);
    // With a store shared by the cluster, one elected janitor runs retention for all of it;
    // with a store of its own, each indexer's retention keeps its own splits.
    let janitor = match (&config.retention, store.storage().is_shared()) {
        (Some(_), true) => Some(Arc::new(Janitor::new(
            Arc::clone(store.storage()),
            &name,
            config.janitor_lease,
            metrics.storage.janitor.clone(),
        ))),
        _ => None,
    };
    let retention = retention(&store, &config, &name).map(|retention| match &janitor {
        Some(janitor) => retention.as_janitor(Arc::clone(janitor)),
        None => retention,
    });
    let refresher = Refresher::new(&store, config.catalog_refresh, &metrics);
    let storage_at_exit = Arc::clone(store.storage());
    let control_at_exit = Arc::clone(&control);
    let pass_ended = Arc::new(AtomicBool::new(false));
    let ingest = Ingest::new(store, source, Arc::clone(&metrics), config.commit_interval)?
        .with_max_future_skew(config.max_future_skew)
        .with_min_free_bytes(config.min_free_bytes);
    let stop = CancellationToken::new();
    let peers = match &args.peers {
        Some(peers) => Some(Arc::new(
            Peers::new(peers.0.clone(), &name, config.peer_timeout)?
                .with_errors(metrics.storage.peer_errors.clone()),
        )),
        None => None,
    };
    run_with_api(
        args.listen,
        ApiState {
            engine: Arc::new(QueryEngine::with_limits(catalog, config.limits)),
            metrics,
            access,
            audit,
            holds: Arc::new(Holds::cluster(Arc::clone(&control), &args.data_dir)?),
            ready: Arc::new(AtomicBool::new(true)),
            tails: TailPolicy::new(config.max_tails, config.tail_buffer_bytes),
            cluster: Cluster {
                indexer: name.clone(),
                peers,
            },
        },
        Background {
            retention,
            refresher,
            janitor,
            heads: Some(HeadPublisher {
                control,
                audit: Arc::clone(&audit_at_exit),
                indexer: name.clone(),
                storage: Arc::clone(&storage_at_exit),
                soon: Arc::clone(&pass_ended),
            }),
            pass_ended,
        },
        ingest,
        stop.clone(),
        move || stop.cancel(),
        move || {
            crate::store::anchor_audit_head(&storage_at_exit, &name, &audit_at_exit)?;
            HeadPublisher {
                storage: Arc::clone(&storage_at_exit),
                control: control_at_exit,
                audit: audit_at_exit,
                indexer: name,
                soon: Arc::default(),
            }
            .publish()
        },
    )
}

/// `corral-indexer standalone`.
pub fn standalone(args: &StandaloneArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let access = access(&config, args.listen, args.insecure_open)?;
    let collector_config = match &args.collector_config {
        Some(path) => CollectorConfig::load(path)?,
        None => CollectorConfig::default(),
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    // The audit log's lock first: a second indexer on this data dir stops here, before the
    // store's recovery (or the demo fleet) touches anything.
    let audit = Arc::new(open_audit(&data_dir, &data_dir.join("index"))?);
    let audit_at_exit = Arc::clone(&audit);
    let mut globs = args.logs.clone();
    let node = std::env::var("NODE_NAME").unwrap_or_else(|_| host_name());
    let mut metadata: Arc<dyn MetadataProvider> = match &args.metadata {
        Some(spec) => corral_collector::kube_provider::provider_for(spec, &node)?,
        None => Arc::new(PathProvider),
    };
    let fleet = if args.demo {
        let fleet = Fleet::start(FleetConfig {
            root: data_dir.join("demo-logs"),
            requests_per_second: args.demo_rate,
            ..FleetConfig::default()
        })
        .context("cannot start the demo fleet")?;
        globs.push(fleet.log_glob());
        metadata = Arc::new(StaticFileProvider::from_pods(fleet.pods()));
        Some(fleet)
    } else {
        None
    };
    if globs.is_empty() {
        anyhow::bail!("nothing to collect: pass --logs <glob> (repeatable) or --demo");
    }
    let name = args.indexer_id.clone().unwrap_or_else(host_name);
    let metrics = Arc::new(Metrics::new());
    let mut store = open_store(
        &data_dir.join("index"),
        args.storage.as_ref(),
        &config,
        name.clone(),
        &metrics,
    )?;
    store.anchor_audit(Arc::clone(&audit));
    let catalog = store.catalog();
    let retention = retention(&store, &config, &name);
    let refresher = Refresher::new(&store, config.catalog_refresh, &metrics);
    let storage_at_exit = Arc::clone(store.storage());
    let (channel_sink, receiver) = sink::channel(STANDALONE_CHANNEL);
    let builder = RecordBuilder::new(host_name(), &collector_config, metadata);
    let mut collector = Collector::new(
        globs.clone(),
        &data_dir.join("collector"),
        &collector_config,
        builder,
        channel_sink,
    )
    .context("cannot start the collector")?;
    let collector_stop = Arc::new(AtomicBool::new(false));
    let collector_thread = {
        let stop = Arc::clone(&collector_stop);
        std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || collector.run(&stop))?
    };
    let ingest = Ingest::new(
        store,
        ChannelSource::new(receiver),
        Arc::clone(&metrics),
        config.commit_interval,
    )?
    .with_max_future_skew(config.max_future_skew)
    .with_min_free_bytes(config.min_free_bytes);
    let url = format!("http://{}", args.listen);
    let mut banner = vec![
        format!("corral standalone: collecting {}", globs.join(" ")),
        format!("  data:   {}", data_dir.display()),
        format!("  API:    {url}/api/v1/search?since=15m"),
    ];
    if let Some(fleet) = &fleet {
        let corr = fleet.showcase_corr();
        banner.extend([
            format!(
                "  demo:   a simulated fleet writes to {}",
                data_dir.join("demo-logs").display()
            ),
            String::new(),
            "  One request across every service, in time order:".to_owned(),
            format!("    {} --corr {corr} --endpoint {url}", logq_command()),
            format!("    curl -s '{url}/api/v1/search?corr={corr}'"),
            String::new(),
            "  Canary error rate by version:".to_owned(),
            format!("    curl -s '{url}/api/v1/stats?by=version&service=payments'"),
        ]);
    }
    banner.push("  Ctrl-C stops.\n".to_owned());
    // Whoever reads the banner may stop reading (`| head`): the server runs on regardless.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(banner.join("\n").as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);
    let ingest_stop = CancellationToken::new();
    let collector_stop_on_error = Arc::clone(&collector_stop);
    let result = run_with_api(
        args.listen,
        ApiState {
            engine: Arc::new(QueryEngine::with_limits(catalog, config.limits)),
            metrics,
            access,
            audit,
            holds: Arc::new(Holds::open(&data_dir)?),
            ready: Arc::new(AtomicBool::new(true)),
            tails: TailPolicy::new(config.max_tails, config.tail_buffer_bytes),
            cluster: Cluster {
                indexer: name.clone(),
                peers: None,
            },
        },
        Background {
            retention,
            refresher,
            janitor: None,
            heads: None,
            pass_ended: Arc::default(),
        },
        ingest,
        ingest_stop.clone(),
        // The collector drains into the channel and ends; the ingest loop then ends with it.
        move || collector_stop.store(true, Ordering::Relaxed),
        move || {
            if let Some(fleet) = fleet {
                fleet.stop();
            }
            crate::store::anchor_audit_head(&storage_at_exit, &name, &audit_at_exit)
        },
    );
    ingest_stop.cancel();
    // Also when the API could not start (port taken): the collector must stop before the join.
    collector_stop_on_error.store(true, Ordering::Relaxed);
    let collected = collector_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the collector thread panicked"))?;
    result?;
    collected?;
    Ok(())
}

/// How to run `logq` from here: `logq` when it sits next to this binary is shown by its path
/// (relative to the working directory when it can be), else plain `logq` from the PATH.
fn logq_command() -> String {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("logq")))
        .filter(|path| matches!(path.try_exists(), Ok(true)));
    let Some(path) = sibling else {
        return "logq".to_owned();
    };
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
    {
        Some(relative) => format!("./{}", relative.display()),
        None => path.display().to_string(),
    }
}

/// Runs `ingest`, retention and the API until SIGTERM/SIGINT (or the ingest loop ends), then
/// shuts down in order: `on_signal` (which makes ingest end: `serve` cancels `ingest_stop`,
/// `standalone` stops its collector so the channel drains and closes), ingest's final commit,
/// then `after_ingest` is cancelled for retention (after the step it is on) and the API, every
/// task of `tasks` is waited for, and `on_shutdown` anchors the audit log's head in the chain
/// head. Threads and tasks stop on cancellation tokens and are waited for through one tracker.
fn run_with_api<S: Source + 'static>(
    listen: SocketAddr,
    state: ApiState,
    background: Background,
    ingest: Ingest<S>,
    ingest_stop: CancellationToken,
    on_signal: impl FnOnce(),
    on_shutdown: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("cannot listen on {listen}"))?;
    let tasks = TaskTracker::new();
    let after_ingest = CancellationToken::new();
    let _context = runtime.enter();
    let mut ingest_task = tasks.spawn_blocking(move || ingest.run(&ingest_stop));
    let Background {
        retention,
        refresher,
        janitor,
        heads,
        pass_ended,
    } = background;
    if let Some(janitor) = janitor {
        let stop = after_ingest.clone();
        tasks.spawn_blocking(move || janitor.run(&stop));
    }
    if let Some(heads) = heads {
        let stop = after_ingest.clone();
        tasks.spawn_blocking(move || heads.run(&stop));
    }
    if let Some(retention) = retention {
        let (holds, audit, stop) = (
            Arc::clone(&state.holds),
            Arc::clone(&state.audit),
            after_ingest.clone(),
        );
        tasks.spawn_blocking(move || {
            crate::retention::run_periodically(&retention, &holds, &audit, &stop, &|| {
                pass_ended.store(true, Ordering::Relaxed)
            })
        });
    }
    if let Some(refresher) = refresher {
        let stop = after_ingest.clone();
        tasks.spawn_blocking(move || refresher.run(&stop));
    }
    let server = tasks.spawn(crate::http::serve(
        listener,
        state,
        after_ingest.clone().cancelled_owned(),
    ));
    tasks.close();
    let ingest_result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let ended_early = tokio::select! {
            _ = tokio::signal::ctrl_c() => None,
            _ = term.recv() => None,
            ended = &mut ingest_task => Some(ended),
        };
        if ended_early.is_none() {
            tracing::info!("stopping: final commit, then the API");
        }
        on_signal();
        let ended = match ended_early {
            Some(ended) => ended,
            None => ingest_task.await,
        };
        after_ingest.cancel();
        // Open tail streams never end by themselves: give the server a moment, then go.
        if tokio::time::timeout(std::time::Duration::from_secs(2), tasks.wait())
            .await
            .is_err()
        {
            server.abort();
            // Retention stops after the step it is on: wait for it, however long that is.
            tasks.wait().await;
        }
        anyhow::Ok(ended.map_err(|_| anyhow::anyhow!("the ingest thread panicked"))?)
    })?;
    drop(_context);
    runtime.shutdown_background();
    // Every thread that writes the audit log or the chain head has ended.
    let shut_down = on_shutdown();
    ingest_result?;
    shut_down
}

/// How long a revocation waits for the active split to be sealed and published (well within
/// librdkafka's default `max.poll.interval.ms`, 5 minutes).
const REVOKE_SEAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// With an object store: partitions move between indexers exactly once ([`ClusterHooks`]).
fn cluster_hooks(store: &SplitStore, topic: &str) -> Option<Arc<ClusterHooks>> {
    if !store.storage().is_shared() {
        return None;
    }
    let storage = Arc::clone(store.storage());
    let catalog = store.catalog();
    let topic = topic.to_owned();
    Some(Arc::new(ClusterHooks {
        published: Box::new(move || {
            crate::published::published_checkpoint(&storage, &catalog, &topic).unwrap_or_else(|error| {
                tracing::warn!(
                    "cannot list the published splits; resuming from this index's checkpoint: {error:#}"
                );
                Default::default()
            })
        }),
        seal_timeout: REVOKE_SEAL_TIMEOUT,
    }))
}

/// The threads beside ingest and the API: retention passes, catalog refreshes, the janitor
/// election, audit heads published.
struct Background {
    retention: Option<Retention>,
    refresher: Option<Refresher>,
    janitor: Option<Arc<Janitor>>,
    heads: Option<HeadPublisher>,
    /// Set after each retention pass: the audit head is published then.
    pass_ended: Arc<AtomicBool>,
}

/// How often an indexer publishes its audit head to the control topic (and at shutdown).
const AUDIT_HEAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Publishes the audit log's head to the control topic, outside this indexer: a log cut short
/// or rewritten later no longer matches what the cluster saw. With a shared object store the
/// log is uploaded there first (see [`crate::audit_store`]), so every published head is in it.
struct HeadPublisher {
    control: Arc<ControlTopic>,
    audit: Arc<AuditLog>,
    indexer: String,
    /// The store the log is uploaded to first (see [`SplitStorage::upload_audit_log`]).
    storage: Arc<SplitStorage>,
    /// Set (by a retention pass that ended) to publish now rather than at the next interval.
    soon: Arc<AtomicBool>,
}

impl HeadPublisher {
    fn publish(&self) -> anyhow::Result<()> {
        let Some(head) = self.audit.head() else {
            return Ok(());
        };
        if self.storage.uploads_audit() {
            // Publish no further than the store holds: the upload may stop short of the head.
            match self.storage.upload_audit()? {
                Some(uploaded) if uploaded < head.seq => {
                    anyhow::bail!(
                        "the audit log was uploaded up to entry {uploaded} only, not to its head {}",
                        head.seq
                    )
                }
                Some(_) => {}
                None => anyhow::bail!("the audit log could not be uploaded"),
            }
        }
        let published = self.control.read_to_end()?.heads.remove(&self.indexer);
        if published.is_some_and(|p| p.seq == head.seq && p.sha256 == head.sha256) {
            return Ok(());
        }
        self.control.publish_audit_head(&self.indexer, &head)
    }

    /// Publishes every [`AUDIT_HEAD_INTERVAL`], and soon after a retention pass, until `stop`;
    /// a failure is logged and retried.
    fn run(self, stop: &CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(error) = self.publish() {
                tracing::warn!("cannot publish the audit head: {error:#}");
            }
            let started = std::time::Instant::now();
            while started.elapsed() < AUDIT_HEAD_INTERVAL
                && !stop.is_cancelled()
                && !self.soon.swap(false, Ordering::Relaxed)
            {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
}

/// Keeps the catalog up to date with an object store's published splits (see
/// [`crate::published::refresh_catalog`]).
struct Refresher {
    storage: Arc<SplitStorage>,
    catalog: Arc<Catalog>,
    every: std::time::Duration,
    metrics: Arc<Metrics>,
}

impl Refresher {
    /// A refresher for `store`'s storage; `None` for a store of its own (a local directory).
    fn new(store: &SplitStore, every: std::time::Duration, metrics: &Arc<Metrics>) -> Option<Refresher> {
        store.storage().is_shared().then(|| Refresher {
            storage: Arc::clone(store.storage()),
            catalog: store.catalog(),
            every,
            metrics: Arc::clone(metrics),
        })
    }

    /// Refreshes every `every` until `stop`; a failed listing is logged and tried again.
    fn run(self, stop: &CancellationToken) {
        while !stop.is_cancelled() {
            match crate::published::refresh_catalog(&self.storage, &self.catalog) {
                Ok(refreshed) => {
                    if refreshed.added + refreshed.removed > 0 {
                        tracing::info!(
                            added = refreshed.added,
                            removed = refreshed.removed,
                            "catalog refreshed"
                        );
                    }
                    self.metrics.splits.set(self.catalog.len() as i64);
                }
                Err(error) => {
                    tracing::warn!(storage = %self.storage.url(), "cannot refresh the catalog: {error:#}")
                }
            }
            let started = std::time::Instant::now();
            while started.elapsed() < self.every && !stop.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(100).min(self.every));
            }
        }
    }
}
