//! Enrichment: who wrote a line — service, version and instance (DESIGN §3.4).
//!
//! A [`MetadataProvider`] answers "what do we know about pod P in namespace N"; [`resolve`]
//! applies the precedence, first hit wins:
//! 1. OTel annotations `resource.opentelemetry.io/service.name|service.version|service.instance.id`;
//! 2. labels `app.kubernetes.io/name|version|instance`;
//! 3. labels `app`, `version`;
//! 4. the container image tag (version);
//! 5. the path: the owner or pod name without ReplicaSet/StatefulSet/Job suffixes (service) and
//!    `<pod>/<container>` (instance).
//!
//! Providers: [`crate::kube_provider::KubeProvider`] (the Kubernetes API: the pods of this node,
//! watched), [`PathProvider`] (knows nothing, always works), [`StaticFileProvider`] (a JSON file
//! of pod metadata, for tests and hosts without Kubernetes), and
//! [`crate::docker_provider::DockerProvider`] (plain Docker hosts: a container's
//! `config.v2.json`, found by its log's path).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use corral_schema::fields::UNKNOWN;
use serde::Deserialize;

use crate::pod_path::PodPath;

/// OTel resource annotation for the service name.
pub const ANNOTATION_SERVICE: &str = "resource.opentelemetry.io/service.name";
/// OTel resource annotation for the service version.
pub const ANNOTATION_VERSION: &str = "resource.opentelemetry.io/service.version";
/// OTel resource annotation for the instance id.
pub const ANNOTATION_INSTANCE: &str = "resource.opentelemetry.io/service.instance.id";

/// What the collector knows about one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodMeta {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Container name → image reference.
    #[serde(default)]
    pub containers: BTreeMap<String, String>,
    /// Name of the controlling owner (a ReplicaSet, StatefulSet, Job …), if any.
    #[serde(default)]
    pub owner: Option<String>,
}

/// Source of pod metadata.
pub trait MetadataProvider: Send + Sync + std::fmt::Debug {
    /// Returns what is known of pod `name` in `namespace`, if anything.
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>>;

    /// Who wrote the file at `path`, for providers that know a writer by its file rather than by
    /// pod coordinates (a Docker container's json-file log); `None` leaves it to the kubelet
    /// layout and [`MetadataProvider::pod`].
    fn locate(&self, _path: &Path) -> Option<Located> {
        None
    }
}

/// A file's writer, as a provider that locates files by path knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The record's namespace, pod and container.
    pub pod: PodPath,
    pub identity: Identity,
}

/// Knows nothing: enrichment falls back to the file path. Always available.
#[derive(Debug, Default)]
pub struct PathProvider;

impl MetadataProvider for PathProvider {
    fn pod(&self, _namespace: &str, _name: &str) -> Option<Arc<PodMeta>> {
        None
    }
}

/// Pod metadata from a static JSON file: `{"pods": [PodMeta…]}`.
#[derive(Debug, Default)]
pub struct StaticFileProvider {
    pods: HashMap<(String, String), Arc<PodMeta>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticFile {
    pods: Vec<PodMeta>,
}

impl StaticFileProvider {
    /// Loads the file; the error names the file and what is wrong in it.
    pub fn load(path: &Path) -> anyhow::Result<StaticFileProvider> {
        let text = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read metadata file {}: {e}", path.display()))?;
        let file: StaticFile = serde_json::from_slice(&text)
            .map_err(|e| anyhow::anyhow!("invalid metadata file {}: {e}", path.display()))?;
        Ok(StaticFileProvider::from_pods(file.pods))
    }

    /// Builds the provider from pods in memory.
    pub fn from_pods(pods: Vec<PodMeta>) -> StaticFileProvider {
        StaticFileProvider {
            pods: pods
                .into_iter()
                .map(|p| ((p.namespace.clone(), p.name.clone()), Arc::new(p)))
                .collect(),
        }
    }
}

impl MetadataProvider for StaticFileProvider {
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>> {
        self.pods.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }
}

/// The service, version and instance stamped on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub service: String,
    pub version: String,
    pub instance: String,
}

/// Applies the precedence of the module docs.
pub fn resolve(path: &PodPath, meta: Option<&PodMeta>) -> Identity {
    let annotation = |key: &str| {
        meta.and_then(|m| m.annotations.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let label = |key: &str| {
        meta.and_then(|m| m.labels.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let service = annotation(ANNOTATION_SERVICE)
        .or_else(|| label("app.kubernetes.io/name"))
        .or_else(|| label("app"))
        .or_else(|| meta.and_then(|m| m.owner.as_deref()).map(strip_owner_suffix))
        .or_else(|| (path.pod != UNKNOWN).then(|| service_from_pod_name(&path.pod)))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNKNOWN.to_owned());
    let version = annotation(ANNOTATION_VERSION)
        .or_else(|| label("app.kubernetes.io/version"))
        .or_else(|| label("version"))
        .or_else(|| {
            meta.and_then(|m| m.containers.get(&path.container))
                .and_then(|image| image_tag(image))
        })
        .unwrap_or_else(|| UNKNOWN.to_owned());
    let instance = annotation(ANNOTATION_INSTANCE)
        .or_else(|| label("app.kubernetes.io/instance"))
        .unwrap_or_else(|| format!("{}/{}", path.pod, path.container));
    Identity {
        service,
        version,
        instance,
    }
}

/// The Kubernetes name-suffix alphabet (`k8s.io/apimachinery` `rand.SafeEncodeString`): no
/// vowels, no look-alike digits — so `master` or `api` are never mistaken for a hash.
fn is_generated(segment: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&segment.len())
        && segment
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
}

/// Returns the service name in a pod name: `checkout-7d9f8b6c4-x2k9p` → `checkout`
/// (Deployment), `db-0` → `db` (StatefulSet), `fluentd-x2k9p` → `fluentd` (DaemonSet, Job),
/// `backup-28374650-x2k9p` → `backup` (CronJob).
pub fn service_from_pod_name(pod: &str) -> String {
    let mut segments: Vec<&str> = pod.split('-').collect();
    if segments.len() < 2 {
        return pod.to_owned();
    }
    let last = segments[segments.len() - 1];
    if last.bytes().all(|b| b.is_ascii_digit()) {
        segments.pop();
    } else if is_generated(last, 5, 5) {
        segments.pop();
        if segments.len() >= 2 {
            let hash = segments[segments.len() - 1];
            if is_generated(hash, 6, 10) || (hash.len() >= 8 && hash.bytes().all(|b| b.is_ascii_digit())) {
                segments.pop();
            }
        }
    }
    segments.join("-")
}

/// Strips a generated suffix from an owner name: `checkout-7d9f8b6c4` (ReplicaSet) → `checkout`,
/// `backup-28374650` (Job of a CronJob) → `backup`.
fn strip_owner_suffix(owner: &str) -> String {
    match owner.rsplit_once('-') {
        Some((base, hash))
            if !base.is_empty()
                && (is_generated(hash, 6, 10)
                    || (hash.len() >= 8 && hash.bytes().all(|b| b.is_ascii_digit()))) =>
        {
            base.to_owned()
        }
        _ => owner.to_owned(),
    }
}

/// Returns an image reference's tag: `registry:5000/shop/checkout:2.1.0@sha256:…` → `2.1.0`.
pub fn image_tag(image: &str) -> Option<String> {
    let image = image.split('@').next()?;
    let name = image.rsplit('/').next()?;
    let (_, tag) = name.rsplit_once(':')?;
    (!tag.is_empty()).then(|| tag.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_path(pod: &str) -> PodPath {
        PodPath {
            namespace: "shop".into(),
            pod: pod.into(),
            uid: "u".into(),
            container: "app".into(),
        }
    }

    fn meta(
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
        image: Option<&str>,
        owner: Option<&str>,
    ) -> PodMeta {
        PodMeta {
            namespace: "shop".into(),
            name: "checkout-7d9f8b6c4-x2k9p".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            containers: image
                .map(|i| [("app".to_string(), i.to_string())].into())
                .unwrap_or_default(),
            owner: owner.map(str::to_owned),
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
    fn each_precedence_step_wins_over_the_next() {
        let path = pod_path("checkout-7d9f8b6c4-x2k9p");
        let all_labels = [
            ("app.kubernetes.io/name", "k8s-name"),
            ("app.kubernetes.io/version", "k8s-version"),
            ("app.kubernetes.io/instance", "k8s-instance"),
            ("app", "app-label"),
            ("version", "version-label"),
        ];
        let otel = [
            (ANNOTATION_SERVICE, "otel-svc"),
            (ANNOTATION_VERSION, "9.9.9"),
            (ANNOTATION_INSTANCE, "otel-inst"),
        ];
        let image = Some("registry:5000/shop/checkout:2.1.0@sha256:abc");
        let owner = Some("checkout-7d9f8b6c4");
        let cases: Vec<(&str, PodMeta, Identity)> = vec![
            (
                "otel annotations",
                meta(&all_labels, &otel, image, owner),
                identity("otel-svc", "9.9.9", "otel-inst"),
            ),
            (
                "app.kubernetes.io labels",
                meta(&all_labels, &[], image, owner),
                identity("k8s-name", "k8s-version", "k8s-instance"),
            ),
            (
                "app/version labels",
                meta(&all_labels[3..], &[], image, owner),
                identity("app-label", "version-label", "checkout-7d9f8b6c4-x2k9p/app"),
            ),
            (
                "image tag and owner",
                meta(&[], &[], image, owner),
                identity("checkout", "2.1.0", "checkout-7d9f8b6c4-x2k9p/app"),
            ),
            (
                "owner without hash",
                meta(&[], &[], Some("checkout"), Some("checkout-canary")),
                identity("checkout-canary", "unknown", "checkout-7d9f8b6c4-x2k9p/app"),
            ),
        ];
        for (what, meta, want) in cases {
            assert_eq!(resolve(&path, Some(&meta)), want, "{what}");
        }
        assert_eq!(
            resolve(&path, None),
            identity("checkout", "unknown", "checkout-7d9f8b6c4-x2k9p/app"),
            "path only"
        );
        let unknown = PodPath::fallback(Path::new("/var/log/app.log"), None, None);
        assert_eq!(
            resolve(&unknown, None),
            identity("unknown", "unknown", "unknown/app")
        );
    }

    #[test]
    fn pod_names_lose_their_generated_suffixes() {
        let cases = [
            ("checkout-7d9f8b6c4-x2k9p", "checkout"),
            (
                "payment-gateway-5c7d8f9b6-abcde",
                "payment-gateway-5c7d8f9b6-abcde",
            ), // 'a', 'e': not generated
            ("payment-gateway-5c7d8f9b6-bcdfg", "payment-gateway"),
            ("db-0", "db"),
            ("kafka-broker-12", "kafka-broker"),
            ("fluentd-x2k9p", "fluentd"),
            ("backup-28374650-x2k9p", "backup"),
            ("redis-master", "redis-master"),
            ("api", "api"),
            ("my-api-v2", "my-api-v2"),
        ];
        for (pod, want) in cases {
            assert_eq!(service_from_pod_name(pod), want, "pod {pod}");
        }
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("nginx:1.27").as_deref(), Some("1.27"));
        assert_eq!(image_tag("registry:5000/nginx").as_deref(), None);
        assert_eq!(
            image_tag("registry:5000/team/nginx:1.2@sha256:00").as_deref(),
            Some("1.2")
        );
        assert_eq!(image_tag("nginx@sha256:00").as_deref(), None);
    }

    #[test]
    fn static_file_provider_loads_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pods.json");
        std::fs::write(
            &path,
            r#"{"pods":[{"namespace":"shop","name":"db-0","labels":{"app":"postgres"},"containers":{"pg":"postgres:16.4"}}]}"#,
        )
        .unwrap();
        let provider = StaticFileProvider::load(&path).unwrap();
        let meta = provider.pod("shop", "db-0").unwrap();
        let path_info = PodPath {
            namespace: "shop".into(),
            pod: "db-0".into(),
            uid: "u".into(),
            container: "pg".into(),
        };
        assert_eq!(
            resolve(&path_info, Some(&meta)),
            identity("postgres", "16.4", "db-0/pg")
        );
        assert!(provider.pod("shop", "db-1").is_none());

        std::fs::write(&path, r#"{"pods":[{"namespace":"shop","nme":"x"}]}"#).unwrap();
        let error = StaticFileProvider::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("invalid metadata file") && error.contains("nme"),
            "{error}"
        );
    }
}
