//! Pod metadata from the Kubernetes API: the `kube` [`MetadataProvider`] (DESIGN §3.4).
//!
//! [`KubeProvider`] watches the pods of one node (`spec.nodeName=<node>`) with
//! [`kube::runtime::watcher()`] on a dedicated thread that runs its own current-thread tokio
//! runtime, and keeps a cache of [`PodMeta`] up to date. [`MetadataProvider::pod`] only reads that
//! cache: enrichment never waits on the network.
//!
//! A deleted pod stays in the cache as a tombstone for a configurable period, so the last lines
//! of its logs — read after the pod is gone — are still stamped with its service and version.
//! A re-list (after the watch lost its place) treats pods missing from the new list as deleted.
//! Watch errors are logged to stderr and retried with kube's default backoff; until the first
//! list completes the provider knows nothing, and enrichment falls back to the file path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::oneshot;

use crate::metadata::{MetadataProvider, PodMeta};

/// Default time a deleted pod's metadata is kept for late log lines.
pub const DEFAULT_TOMBSTONE: Duration = Duration::from_secs(300);

/// Longest pause between two purges of expired tombstones (purges also run more often when the
/// tombstone period is shorter).
const MAX_PURGE_INTERVAL: Duration = Duration::from_secs(30);
/// Shortest pause between two purges, so a zero tombstone does not spin the watch thread.
const MIN_PURGE_INTERVAL: Duration = Duration::from_millis(50);

/// Pod metadata of one node, kept up to date by a Kubernetes watch on a background thread.
///
/// Dropping the provider stops the watch and joins its thread.
pub struct KubeProvider {
    shared: Arc<Shared>,
    node: String,
    shutdown_tx: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// State shared between the watch thread and the readers.
#[derive(Debug)]
struct Shared {
    cache: RwLock<PodCache>,
    synced: Mutex<bool>,
    synced_changed: Condvar,
}

/// The pods of the node: namespace → pod name → slot. Two levels so that a lookup by `&str`
/// needs no allocation.
#[derive(Debug, Default)]
struct PodCache {
    namespaces: HashMap<String, HashMap<String, Slot>>,
    tombstone: Duration,
    /// Pods seen since the last `Init` of the watcher, while a (re-)list is in progress.
    relisted: Option<HashSet<(String, String)>>,
}

#[derive(Debug)]
struct Slot {
    meta: Arc<PodMeta>,
    /// When the pod was deleted; `None` while it exists.
    deleted_at: Option<Instant>,
}

impl KubeProvider {
    /// Starts watching the pods of `node` on the API server described by `config`, on a new
    /// thread; returns at once, before anything is known (see [`KubeProvider::wait_synced`]).
    ///
    /// Takes a [`kube::Config`] rather than a [`kube::Client`] because a client is bound to the
    /// tokio runtime it was built in: this one is built in the watch thread's own runtime.
    /// Metadata of a deleted pod stays available for `tombstone` after its deletion.
    /// Fails only when the runtime, the client (e.g. its TLS setup) or the thread cannot be
    /// created; an unreachable API server is retried in the background, not an error.
    pub fn try_start(config: kube::Config, node: &str, tombstone: Duration) -> anyhow::Result<KubeProvider> {
        let runtime = watch_runtime()?;
        KubeProvider::start_on(runtime, config, node, tombstone)
    }

    /// Like [`KubeProvider::try_start`], with the configuration `kube::Client::try_default()`
    /// uses: `KUBECONFIG` (or `~/.kube/config`), else the in-cluster service account. Blocks
    /// while it reads them, so it must not be called from within a tokio runtime. The error says
    /// why neither source could be used.
    pub fn from_env(node: &str, tombstone: Duration) -> anyhow::Result<KubeProvider> {
        let runtime = watch_runtime()?;
        let config = runtime.block_on(kube::Config::infer()).context(
            "cannot configure the Kubernetes client from KUBECONFIG or the in-cluster service account",
        )?;
        KubeProvider::start_on(runtime, config, node, tombstone)
    }

    fn start_on(
        runtime: tokio::runtime::Runtime,
        config: kube::Config,
        node: &str,
        tombstone: Duration,
    ) -> anyhow::Result<KubeProvider> {
        let cluster_url = config.cluster_url.clone();
        let client = {
            // The client spawns its request buffer on the current runtime.
            let _guard = runtime.enter();
            Client::try_from(config)
                .with_context(|| format!("cannot build a Kubernetes client for {cluster_url}"))?
        };
        let shared = Arc::new(Shared {
            cache: RwLock::new(PodCache::new(tombstone)),
            synced: Mutex::new(false),
            synced_changed: Condvar::new(),
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("corral-kube-watch".into())
            .spawn({
                let shared = shared.clone();
                let node = node.to_owned();
                move || {
                    runtime.block_on(watch_pods(client, &node, &shared, shutdown_rx));
                    // Do not wait for a DNS lookup stuck in the blocking pool.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                }
            })
            .context("cannot start the Kubernetes watch thread")?;
        Ok(KubeProvider {
            shared,
            node: node.to_owned(),
            shutdown_tx: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// Returns whether the first list of the node's pods has completed (it stays true across
    /// later re-lists).
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits up to `timeout` for the first list to complete; returns [`KubeProvider::is_synced`].
    pub fn wait_synced(&self, timeout: Duration) -> bool {
        let synced = self.shared.synced.lock().unwrap_or_else(PoisonError::into_inner);
        let (synced, _) = self
            .shared
            .synced_changed
            .wait_timeout_while(synced, timeout, |synced| !*synced)
            .unwrap_or_else(PoisonError::into_inner);
        *synced
    }
}

impl MetadataProvider for KubeProvider {
    /// Reads the cache; a pod deleted longer ago than the tombstone period is unknown even before
    /// the next purge.
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>> {
        self.shared
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(namespace, name, Instant::now())
    }
}

impl std::fmt::Debug for KubeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.shared.cache.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("KubeProvider")
            .field("node", &self.node)
            .field("tombstone", &cache.tombstone)
            .field("synced", &self.is_synced())
            .field("pods", &cache.len())
            .finish_non_exhaustive()
    }
}

impl Drop for KubeProvider {
    fn drop(&mut self) {
        if let Some(shutdown_tx) = self.shutdown_tx.take() {
            let _ = shutdown_tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime of the Kubernetes watch")
}

/// Applies the watch events of the pods of `node` to the cache until `shutdown_rx` fires (or
/// its sender is dropped), and purges expired tombstones on the way.
async fn watch_pods(client: Client, node: &str, shared: &Shared, mut shutdown_rx: oneshot::Receiver<()>) {
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut events = std::pin::pin!(watcher::watcher(pods, config).default_backoff());
    let tombstone = shared
        .cache
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .tombstone;
    let mut purge = tokio::time::interval(tombstone.clamp(MIN_PURGE_INTERVAL, MAX_PURGE_INTERVAL));
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown_rx => return,
            _ = purge.tick() => {
                shared.cache.write().unwrap_or_else(PoisonError::into_inner).purge(Instant::now());
            }
            event = events.next() => match event {
                Some(Ok(event)) => shared.apply(event),
                Some(Err(e)) => tracing::warn!(error = %e, "kube watch failed; retrying"),
                // The watcher re-lists forever; an end means there is nothing left to do.
                None => return,
            },
        }
    }
}

impl Shared {
    fn apply(&self, event: Event<Pod>) {
        let now = Instant::now();
        let init_done = matches!(event, Event::InitDone);
        {
            let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
            match event {
                Event::Init => cache.begin_relist(),
                Event::InitApply(pod) => cache.relist_apply(pod_meta(&pod)),
                Event::InitDone => cache.end_relist(now),
                Event::Apply(pod) => cache.apply(pod_meta(&pod)),
                Event::Delete(pod) => cache.delete(pod_meta(&pod), now),
            }
            cache.purge(now);
        }
        if init_done {
            *self.synced.lock().unwrap_or_else(PoisonError::into_inner) = true;
            self.synced_changed.notify_all();
        }
    }
}

impl PodCache {
    fn new(tombstone: Duration) -> PodCache {
        PodCache {
            tombstone,
            ..PodCache::default()
        }
    }

    /// Returns the pod unless it was deleted longer than the tombstone period before `now`.
    fn get(&self, namespace: &str, name: &str, now: Instant) -> Option<Arc<PodMeta>> {
        let slot = self.namespaces.get(namespace)?.get(name)?;
        match slot.deleted_at {
            Some(deleted_at) if now.saturating_duration_since(deleted_at) > self.tombstone => None,
            _ => Some(slot.meta.clone()),
        }
    }

    fn len(&self) -> usize {
        self.namespaces.values().map(HashMap::len).sum()
    }

    /// Inserts or replaces a live pod (a deleted pod of the same name comes back to life).
    fn apply(&mut self, meta: PodMeta) {
        self.insert(meta, None);
    }

    /// Records the pod's final state as a tombstone; a tombstone already running keeps its time.
    fn delete(&mut self, meta: PodMeta, now: Instant) {
        let deleted_at = self
            .namespaces
            .get(&meta.namespace)
            .and_then(|pods| pods.get(&meta.name))
            .and_then(|slot| slot.deleted_at)
            .unwrap_or(now);
        self.insert(meta, Some(deleted_at));
    }

    fn insert(&mut self, meta: PodMeta, deleted_at: Option<Instant>) {
        let pods = self.namespaces.entry(meta.namespace.clone()).or_default();
        pods.insert(
            meta.name.clone(),
            Slot {
                meta: Arc::new(meta),
                deleted_at,
            },
        );
    }

    /// Starts a (re-)list: the pods it returns are the node's complete set.
    fn begin_relist(&mut self) {
        self.relisted = Some(HashSet::new());
    }

    fn relist_apply(&mut self, meta: PodMeta) {
        if let Some(relisted) = &mut self.relisted {
            relisted.insert((meta.namespace.clone(), meta.name.clone()));
        }
        self.apply(meta);
    }

    /// Ends a (re-)list: live pods it did not return were deleted while the watch was away.
    fn end_relist(&mut self, now: Instant) {
        let Some(relisted) = self.relisted.take() else {
            return;
        };
        for (namespace, pods) in &mut self.namespaces {
            for (name, slot) in pods.iter_mut() {
                if slot.deleted_at.is_none() && !relisted.contains(&(namespace.clone(), name.clone())) {
                    slot.deleted_at = Some(now);
                }
            }
        }
    }

    /// Forgets the pods deleted longer than the tombstone period before `now`.
    fn purge(&mut self, now: Instant) {
        let tombstone = self.tombstone;
        self.namespaces.retain(|_, pods| {
            pods.retain(|_, slot| {
                slot.deleted_at
                    .is_none_or(|deleted_at| now.saturating_duration_since(deleted_at) <= tombstone)
            });
            !pods.is_empty()
        });
    }
}

/// Converts a pod to what enrichment needs: labels, annotations, the images of its containers
/// (init and ephemeral ones included: they write logs too) and its controlling owner.
fn pod_meta(pod: &Pod) -> PodMeta {
    let metadata = &pod.metadata;
    let mut containers = std::collections::BTreeMap::new();
    if let Some(spec) = &pod.spec {
        let init = spec.init_containers.iter().flatten();
        let ephemeral = spec.ephemeral_containers.iter().flatten();
        for (name, image) in init
            .chain(&spec.containers)
            .map(|c| (&c.name, &c.image))
            .chain(ephemeral.map(|c| (&c.name, &c.image)))
        {
            if let Some(image) = image {
                containers.insert(name.clone(), image.clone());
            }
        }
    }
    PodMeta {
        namespace: metadata.namespace.clone().unwrap_or_default(),
        name: metadata.name.clone().unwrap_or_default(),
        labels: metadata.labels.clone().unwrap_or_default(),
        annotations: metadata.annotations.clone().unwrap_or_default(),
        containers,
        owner: metadata
            .owner_references
            .iter()
            .flatten()
            .find(|owner| owner.controller == Some(true))
            .map(|owner| owner.name.clone()),
    }
}

/// The pod metadata a `--metadata` value names: `path` (the file path only), `kube` (the
/// Kubernetes API, pods of `node`; waits up to 10 s for the first listing), `docker` (a Docker
/// container's `config.v2.json` beside its json-file log) or `file:<json>` (static pod metadata). The error names a bad value and what is expected.
pub fn provider_for(
    spec: &str,
    node: &str,
) -> anyhow::Result<std::sync::Arc<dyn crate::metadata::MetadataProvider>> {
    use crate::metadata::{PathProvider, StaticFileProvider};
    Ok(match spec {
        "path" => std::sync::Arc::new(PathProvider),
        "kube" => {
            let provider = KubeProvider::from_env(node, DEFAULT_TOMBSTONE)?;
            if !provider.wait_synced(std::time::Duration::from_secs(10)) {
                tracing::warn!(
                    %node,
                    "pods not listed from the Kubernetes API within 10s; starting anyway, enrichment uses the file path until they are"
                );
            }
            std::sync::Arc::new(provider)
        }
        "docker" => std::sync::Arc::new(crate::docker_provider::DockerProvider),
        other => match other.strip_prefix("file:") {
            Some(path) => std::sync::Arc::new(StaticFileProvider::load(path.as_ref())?),
            None => anyhow::bail!("unknown --metadata {other:?}: expected path, kube, docker or file:<json>"),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::metadata::{Identity, resolve};
    use crate::pod_path::PodPath;

    // A real API server cannot run here: these tests serve RECORDED API responses (a PodList
    // and a watch stream, in the shapes kube-apiserver returns) from a small local HTTP/1.1
    // server, and point a real kube client at it.

    /// `GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500`, as recorded.
    const POD_LIST: &str = r#"{
  "apiVersion": "v1",
  "kind": "PodList",
  "metadata": {"resourceVersion": "100"},
  "items": [
    {
      "metadata": {
        "name": "checkout-7d9f8b6c4-x2k9p",
        "namespace": "shop",
        "uid": "6f1c2f0e-8d2b-4c53-9a51-0c8a2b7e4d11",
        "resourceVersion": "97",
        "labels": {
          "app.kubernetes.io/name": "checkout",
          "app.kubernetes.io/version": "2.1.0",
          "pod-template-hash": "7d9f8b6c4"
        },
        "annotations": {"kubectl.kubernetes.io/default-container": "app"},
        "ownerReferences": [
          {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9f8b6c4",
           "uid": "0b7e9a3c-5d4f-4e2a-8c1b-9f6a7d8e2c30", "controller": true, "blockOwnerDeletion": true}
        ]
      },
      "spec": {
        "nodeName": "node-a",
        "initContainers": [{"name": "migrate", "image": "registry.local/shop/checkout-migrate:2.1.0"}],
        "containers": [{"name": "app", "image": "registry.local/shop/checkout:2.1.0"}]
      },
      "status": {"phase": "Running"}
    },
    {
      "metadata": {
        "name": "db-0",
        "namespace": "shop",
        "uid": "a3d5e7f9-1b2c-4d6e-8f0a-2c4e6a8b0d13",
        "resourceVersion": "98",
        "labels": {"app": "postgres", "statefulset.kubernetes.io/pod-name": "db-0"},
        "ownerReferences": [
          {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
           "uid": "c1e3a5b7-9d2f-4a6c-8e0b-4d6f8a0c2e15", "controller": true, "blockOwnerDeletion": true}
        ]
      },
      "spec": {"nodeName": "node-a", "containers": [{"name": "pg", "image": "postgres:16.4"}]},
      "status": {"phase": "Running"}
    }
  ]
}"#;

    /// The watch from resourceVersion 100, as recorded: one event per line.
    const WATCH_EVENTS: [&str; 2] = [
        r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"payments-5c7d8f9b6-bcdfg","namespace":"shop","uid":"e5f7a9b1-3c4d-4e8f-9a1b-6c8e0a2c4e17","resourceVersion":"101","labels":{"app":"payments-legacy","pod-template-hash":"5c7d8f9b6"},"annotations":{"resource.opentelemetry.io/service.name":"payments","resource.opentelemetry.io/service.version":"3.0.0"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"payments-5c7d8f9b6","uid":"f7a9b1c3-5e6f-4a0b-8c2d-8e0a2c4e6a19","controller":true}]},"spec":{"nodeName":"node-a","containers":[{"name":"app","image":"registry.local/shop/payments:3.0.0"}]},"status":{"phase":"Pending"}}}"#,
        r#"{"type":"DELETED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"db-0","namespace":"shop","uid":"a3d5e7f9-1b2c-4d6e-8f0a-2c4e6a8b0d13","resourceVersion":"102","deletionTimestamp":"2025-06-01T12:00:00Z","labels":{"app":"postgres","statefulset.kubernetes.io/pod-name":"db-0"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"db","uid":"c1e3a5b7-9d2f-4a6c-8e0b-4d6f8a0c2e15","controller":true}]},"spec":{"nodeName":"node-a","containers":[{"name":"pg","image":"postgres:16.4"}]},"status":{"phase":"Succeeded"}}}"#,
    ];

    const SERVER_ERROR: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"etcdserver: request timed out","reason":"InternalError","code":500}"#;

    /// A local stand-in for kube-apiserver that replays the recorded responses.
    struct RecordedApiServer {
        url: String,
        /// Request lines (`GET /api/v1/pods?… HTTP/1.1`) in arrival order.
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl RecordedApiServer {
        /// Answers lists with [`POD_LIST`] (or a 500 when `fail_lists`), the watch from
        /// resourceVersion 100 with [`WATCH_EVENTS`], and any other watch with an empty stream;
        /// watch streams stay open until the client hangs up.
        fn start(fail_lists: bool) -> RecordedApiServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = requests.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let seen = seen.clone();
                    std::thread::spawn(move || serve_connection(stream, &seen, fail_lists));
                }
            });
            RecordedApiServer { url, requests }
        }

        fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }

        fn provider(&self, tombstone: Duration) -> KubeProvider {
            let config = kube::Config::new(self.url.parse().unwrap());
            KubeProvider::try_start(config, "node-a", tombstone).unwrap()
        }
    }

    /// Serves the requests of one keep-alive connection until the client closes it.
    fn serve_connection(stream: TcpStream, seen: &Mutex<Vec<String>>, fail_lists: bool) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            // Skip the headers: GET requests have no body.
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                if header == "\r\n" {
                    break;
                }
            }
            let request_line = request_line.trim_end().to_owned();
            seen.lock().unwrap().push(request_line.clone());
            let target = request_line.split(' ').nth(1).unwrap_or_default();
            let query = percent_decode(target.split_once('?').map_or("", |(_, q)| q));
            let params: Vec<&str> = query.split('&').collect();
            if params.contains(&"watch=true") || params.contains(&"watch=1") {
                let events: &[&str] = if params.contains(&"resourceVersion=100") {
                    &WATCH_EVENTS
                } else {
                    &[]
                };
                let head =
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                let _ = writer.write_all(head.as_bytes());
                for event in events {
                    let chunk = format!("{event}\n");
                    let _ = write!(writer, "{:x}\r\n{chunk}\r\n", chunk.len());
                    let _ = writer.flush();
                }
                // Keep the stream open until the client goes away.
                let mut rest = Vec::new();
                let _ = std::io::Read::read_to_end(&mut reader, &mut rest);
                return;
            }
            let (status, body) = if fail_lists {
                ("500 Internal Server Error", SERVER_ERROR)
            } else {
                ("200 OK", POD_LIST)
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if writer.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn percent_decode(text: &str) -> String {
        let mut bytes = Vec::new();
        let mut rest = text.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            if b == b'%'
                && tail.len() >= 2
                && let Ok(byte) = u8::from_str_radix(std::str::from_utf8(&tail[..2]).unwrap_or("zz"), 16)
            {
                bytes.push(byte);
                rest = &tail[2..];
            } else {
                bytes.push(b);
                rest = tail;
            }
        }
        String::from_utf8(bytes).unwrap()
    }

    /// Polls `condition` every 20 ms for up to 5 s.
    fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn slot_deleted(provider: &KubeProvider, namespace: &str, name: &str) -> Option<bool> {
        let cache = provider.shared.cache.read().unwrap();
        let slot = cache.namespaces.get(namespace)?.get(name)?;
        Some(slot.deleted_at.is_some())
    }

    fn path(pod: &str, container: &str) -> PodPath {
        PodPath {
            namespace: "shop".into(),
            pod: pod.into(),
            uid: "u".into(),
            container: container.into(),
        }
    }

    fn identity(service: &str, version: &str, instance: &str) -> Identity {
        Identity {
            service: service.into(),
            version: version.into(),
            instance: instance.into(),
        }
    }

    #[test]
    fn lists_and_watches_the_pods_of_the_node() {
        let server = RecordedApiServer::start(false);
        let provider = server.provider(DEFAULT_TOMBSTONE);
        assert!(
            provider.wait_synced(Duration::from_secs(5)),
            "not synced: {:?}",
            server.requests()
        );
        assert!(provider.is_synced());

        let checkout = provider
            .pod("shop", "checkout-7d9f8b6c4-x2k9p")
            .expect("checkout listed");
        assert_eq!(checkout.labels["app.kubernetes.io/name"], "checkout");
        assert_eq!(
            checkout.annotations["kubectl.kubernetes.io/default-container"],
            "app"
        );
        assert_eq!(checkout.owner.as_deref(), Some("checkout-7d9f8b6c4"));
        assert_eq!(checkout.containers["app"], "registry.local/shop/checkout:2.1.0");
        assert_eq!(
            checkout.containers["migrate"],
            "registry.local/shop/checkout-migrate:2.1.0"
        );
        assert_eq!(
            resolve(&path("checkout-7d9f8b6c4-x2k9p", "app"), Some(&checkout)),
            identity("checkout", "2.1.0", "checkout-7d9f8b6c4-x2k9p/app")
        );

        eventually("the ADDED payments pod", || {
            provider.pod("shop", "payments-5c7d8f9b6-bcdfg").is_some()
        });
        let payments = provider.pod("shop", "payments-5c7d8f9b6-bcdfg").unwrap();
        assert_eq!(payments.owner.as_deref(), Some("payments-5c7d8f9b6"));
        assert_eq!(
            resolve(&path("payments-5c7d8f9b6-bcdfg", "app"), Some(&payments)),
            identity("payments", "3.0.0", "payments-5c7d8f9b6-bcdfg/app")
        );

        // The DELETED event turns db-0 into a tombstone that still answers.
        eventually("the DELETED db-0 event", || {
            slot_deleted(&provider, "shop", "db-0") == Some(true)
        });
        let db = provider
            .pod("shop", "db-0")
            .expect("db-0 kept for the tombstone period");
        assert_eq!(db.owner.as_deref(), Some("db"));
        assert_eq!(
            resolve(&path("db-0", "pg"), Some(&db)),
            identity("postgres", "16.4", "db-0/pg")
        );
        assert!(provider.pod("shop", "db-1").is_none());
        assert!(provider.pod("other", "db-0").is_none());

        let requests = server.requests();
        let list = percent_decode(&requests[0]);
        assert!(
            list.starts_with("GET /api/v1/pods?") && list.contains("fieldSelector=spec.nodeName=node-a"),
            "{list}"
        );
        assert!(!list.contains("watch="), "the first request lists: {list}");
        let watch = requests
            .iter()
            .map(|r| percent_decode(r))
            .find(|r| r.contains("resourceVersion=100") && r.contains("watch="))
            .unwrap_or_else(|| panic!("no watch from the list's version: {requests:?}"));
        assert!(watch.contains("fieldSelector=spec.nodeName=node-a"), "{watch}");
    }

    #[test]
    fn deleted_pods_are_forgotten_after_the_tombstone_period() {
        let server = RecordedApiServer::start(false);
        let provider = server.provider(Duration::from_millis(1));
        assert!(provider.wait_synced(Duration::from_secs(5)));
        eventually("the ADDED payments pod", || {
            provider.pod("shop", "payments-5c7d8f9b6-bcdfg").is_some()
        });
        // Purged from the cache by the watch thread, not only hidden.
        eventually("db-0 purged", || {
            slot_deleted(&provider, "shop", "db-0").is_none()
        });
        assert!(provider.pod("shop", "db-0").is_none());
        assert!(
            provider.pod("shop", "checkout-7d9f8b6c4-x2k9p").is_some(),
            "live pods stay"
        );
    }

    #[test]
    fn a_failing_api_server_is_retried_without_panicking() {
        let server = RecordedApiServer::start(true);
        let provider = server.provider(DEFAULT_TOMBSTONE);
        assert!(!provider.wait_synced(Duration::from_millis(200)));
        // The default backoff's first pauses are at most a couple of seconds.
        eventually("a retried list", || server.requests().len() >= 2);
        assert!(!provider.is_synced());
        assert!(provider.pod("shop", "db-0").is_none());
        assert!(
            server.requests().iter().all(|r| !r.contains("watch=")),
            "no watch without a list: {:?}",
            server.requests()
        );
        drop(provider); // stops and joins the watch thread
    }

    fn meta(name: &str) -> PodMeta {
        PodMeta {
            namespace: "shop".into(),
            name: name.into(),
            ..PodMeta::default()
        }
    }

    #[test]
    fn cache_keeps_tombstones_for_their_period_and_relists_delete_missing_pods() {
        let t0 = Instant::now();
        let tombstone = Duration::from_secs(60);
        let mut cache = PodCache::new(tombstone);
        cache.begin_relist();
        cache.relist_apply(meta("a"));
        cache.relist_apply(meta("b"));
        cache.end_relist(t0);
        assert!(cache.get("shop", "a", t0).is_some() && cache.get("shop", "b", t0).is_some());

        cache.delete(meta("a"), t0);
        let t1 = t0 + Duration::from_secs(30);
        // A second delete (a re-delivered event) does not restart the tombstone.
        cache.delete(meta("a"), t1);
        assert!(
            cache.get("shop", "a", t0 + tombstone).is_some(),
            "kept for the whole period"
        );
        assert!(
            cache
                .get("shop", "a", t0 + tombstone + Duration::from_millis(1))
                .is_none()
        );
        assert_eq!(cache.len(), 2, "hidden before the purge");
        cache.purge(t0 + tombstone + Duration::from_millis(1));
        assert_eq!(cache.len(), 1, "forgotten by the purge");

        // A re-list that no longer returns b: b was deleted while the watch was away.
        cache.begin_relist();
        cache.relist_apply(meta("c"));
        cache.end_relist(t1);
        assert!(cache.get("shop", "b", t1).is_some(), "b is a tombstone");
        assert!(
            cache
                .get("shop", "b", t1 + tombstone + Duration::from_secs(1))
                .is_none()
        );
        assert!(
            cache
                .get("shop", "c", t1 + tombstone + Duration::from_secs(1))
                .is_some()
        );

        // A pod re-created under the same name (a StatefulSet's) is live again.
        cache.delete(meta("c"), t1);
        cache.apply(meta("c"));
        assert!(cache.get("shop", "c", t1 + tombstone * 2).is_some());
    }

    #[test]
    fn pod_meta_takes_the_controlling_owner_and_every_container() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata":{"name":"backup-28374650-x2k9p","namespace":"ops",
                "ownerReferences":[
                  {"apiVersion":"v1","kind":"Node","name":"node-a","uid":"1"},
                  {"apiVersion":"batch/v1","kind":"Job","name":"backup-28374650","uid":"2","controller":true}]},
              "spec":{"containers":[{"name":"run","image":"backup:1.0"},{"name":"noimage"}],
                      "initContainers":[{"name":"init","image":"busybox:1.36"}],
                      "ephemeralContainers":[{"name":"debugger","image":"busybox:debug"}]}}"#,
        )
        .unwrap();
        let meta = pod_meta(&pod);
        assert_eq!(
            (meta.namespace.as_str(), meta.name.as_str()),
            ("ops", "backup-28374650-x2k9p")
        );
        assert_eq!(meta.owner.as_deref(), Some("backup-28374650"));
        let containers: Vec<(&str, &str)> = meta
            .containers
            .iter()
            .map(|(n, i)| (n.as_str(), i.as_str()))
            .collect();
        assert_eq!(
            containers,
            [
                ("debugger", "busybox:debug"),
                ("init", "busybox:1.36"),
                ("run", "backup:1.0")
            ]
        );
        assert!(meta.labels.is_empty() && meta.annotations.is_empty());

        let orphan: Pod = serde_json::from_str(r#"{"metadata":{"name":"p","namespace":"n"}}"#).unwrap();
        assert_eq!(pod_meta(&orphan).owner, None);
    }
}
