//! Metadata for plain Docker hosts: the `docker` [`MetadataProvider`] (`--metadata docker`).
//!
//! Docker's json-file logging driver writes `<root>/containers/<id>/<id>-json.log` (rotated to
//! `<id>-json.log.1`, `.2` … by its `max-size`/`max-file` options) next to the container's
//! `config.v2.json`, which holds its name, image and labels. This provider reads that file — no
//! Docker API socket is needed — and stamps, first hit wins:
//! - service: label `resource.opentelemetry.io/service.name` (the OTel resource labels), else
//!   `com.docker.compose.service`, else `app.kubernetes.io/name`, else the container name;
//! - version: `resource.opentelemetry.io/service.version`, else `org.opencontainers.image.version`,
//!   else `app.kubernetes.io/version` / `version`, else the image tag;
//! - instance: `resource.opentelemetry.io/service.instance.id`, else the container name (unique
//!   on a host).
//!
//! The record's namespace is the compose project (`com.docker.compose.project`, else `docker`),
//! its pod the container name and its container the compose service (else the container name).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::metadata::{
    ANNOTATION_INSTANCE, ANNOTATION_SERVICE, ANNOTATION_VERSION, Identity, Located, MetadataProvider,
    PodMeta, image_tag,
};
use crate::pod_path::PodPath;

/// The json-file driver's log files, the default `--logs` with `--metadata docker`.
pub const DOCKER_LOGS_GLOB: &str = "/var/lib/docker/containers/*/*-json.log";

/// Label of the compose service a container belongs to.
pub const LABEL_COMPOSE_SERVICE: &str = "com.docker.compose.service";
/// Label of the compose project a container belongs to.
pub const LABEL_COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// The OCI image annotation for the image's version, which images carry as a label.
pub const LABEL_IMAGE_VERSION: &str = "org.opencontainers.image.version";

/// Namespace of a container outside any compose project.
const DOCKER_NAMESPACE: &str = "docker";
/// Largest `config.v2.json` read: a container's config is a few KiB.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads who wrote a json-file log from the container's `config.v2.json` beside it.
#[derive(Debug, Default)]
pub struct DockerProvider;

/// The parts of `config.v2.json` used.
#[derive(Debug, Deserialize)]
struct ContainerConfig {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Config")]
    config: InnerConfig,
}

#[derive(Debug, Deserialize)]
struct InnerConfig {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

impl DockerProvider {
    /// What `config.v2.json` in `dir` says; the error names the file and the problem.
    fn read_config(dir: &Path) -> anyhow::Result<ContainerConfig> {
        use std::io::Read;
        let path = dir.join("config.v2.json");
        let file =
            std::fs::File::open(&path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        let mut text = Vec::new();
        file.take(MAX_CONFIG_BYTES)
            .read_to_end(&mut text)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        serde_json::from_slice(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a container config: {e}", path.display()))
    }
}

/// Whether `path` is a json-file log (`<id>-json.log`, or one of its rotations) of the container
/// directory it is in.
fn is_json_file_log(path: &Path) -> bool {
    let (Some(name), Some(dir)) = (
        path.file_name().and_then(|n| n.to_str()),
        path.parent().and_then(|d| d.file_name()).and_then(|n| n.to_str()),
    ) else {
        return false;
    };
    name.strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix("-json.log"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The coordinates and identity of a container, from its config.
fn locate(config: &ContainerConfig) -> Located {
    let labels = config.config.labels.clone().unwrap_or_default();
    let label = |key: &str| labels.get(key).filter(|v| !v.is_empty()).cloned();
    let name = config.name.trim_start_matches('/');
    let name = if name.is_empty() {
        config.id.get(..12).unwrap_or(&config.id)
    } else {
        name
    };
    let service = label(ANNOTATION_SERVICE)
        .or_else(|| label(LABEL_COMPOSE_SERVICE))
        .or_else(|| label("app.kubernetes.io/name"))
        .unwrap_or_else(|| name.to_owned());
    let version = label(ANNOTATION_VERSION)
        .or_else(|| label(LABEL_IMAGE_VERSION))
        .or_else(|| label("app.kubernetes.io/version"))
        .or_else(|| label("version"))
        .or_else(|| image_tag(&config.config.image))
        .unwrap_or_else(|| corral_schema::fields::UNKNOWN.to_owned());
    let instance = label(ANNOTATION_INSTANCE).unwrap_or_else(|| name.to_owned());
    let pod = PodPath {
        namespace: label(LABEL_COMPOSE_PROJECT).unwrap_or_else(|| DOCKER_NAMESPACE.to_owned()),
        pod: name.to_owned(),
        uid: config.id.clone(),
        container: label(LABEL_COMPOSE_SERVICE).unwrap_or_else(|| name.to_owned()),
    };
    Located {
        pod,
        identity: Identity {
            service,
            version,
            instance,
        },
    }
}

impl MetadataProvider for DockerProvider {
    fn pod(&self, _namespace: &str, _name: &str) -> Option<Arc<PodMeta>> {
        None
    }

    fn locate(&self, path: &Path) -> Option<Located> {
        if !is_json_file_log(path) {
            return None;
        }
        match DockerProvider::read_config(path.parent()?) {
            Ok(config) => Some(locate(&config)),
            Err(error) => {
                tracing::warn!(file = %path.display(), error = %format!("{error:#}"), "no container metadata for this log yet; retried later");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `config.v2.json` as Docker 20.10 writes it for a compose service (trimmed to the keys
    /// around the ones read; the real file has dozens more, which must be ignored).
    const COMPOSE_CONFIG: &str = r#"{"StreamConfig":{},"State":{"Running":true,"Pid":4242},
      "ID":"3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100",
      "Created":"2026-12-02T10:00:00.123456789Z","Path":"/app","Args":[],
      "Config":{"Hostname":"3f4e5d6c7b8a","User":"","Env":["PATH=/usr/bin"],
        "Image":"registry.local:5000/shop/payments:2.3.9",
        "Labels":{"com.docker.compose.project":"shop","com.docker.compose.service":"payments",
                  "com.docker.compose.container-number":"1","org.opencontainers.image.version":"2.4.0"}},
      "Image":"sha256:0123","Name":"/shop-payments-1","RestartCount":0,"Driver":"overlay2",
      "LogPath":"/var/lib/docker/containers/3f4e/3f4e-json.log"}"#;

    fn identity(service: &str, version: &str, instance: &str) -> Identity {
        Identity {
            service: service.into(),
            version: version.into(),
            instance: instance.into(),
        }
    }

    fn config(text: &str) -> ContainerConfig {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn compose_labels_give_service_and_the_image_version_label_the_version() {
        let located = locate(&config(COMPOSE_CONFIG));
        assert_eq!(located.identity, identity("payments", "2.4.0", "shop-payments-1"));
        assert_eq!(
            located.pod,
            PodPath {
                namespace: "shop".into(),
                pod: "shop-payments-1".into(),
                uid: "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100".into(),
                container: "payments".into(),
            }
        );
    }

    #[test]
    fn precedence_otel_labels_first_then_compose_then_name_and_image_tag() {
        let with = |labels: &str, image: &str, name: &str| {
            config(&format!(
                r#"{{"ID":"abcdef0123456789","Name":"{name}","Config":{{"Image":"{image}","Labels":{labels}}}}}"#
            ))
        };
        let otel = r#"{"resource.opentelemetry.io/service.name":"billing","resource.opentelemetry.io/service.version":"7.1",
            "resource.opentelemetry.io/service.instance.id":"billing-a","com.docker.compose.service":"bill",
            "org.opencontainers.image.version":"1.0"}"#;
        let cases = [
            (
                "OTel labels win",
                with(otel, "bill:0.9", "/x"),
                identity("billing", "7.1", "billing-a"),
            ),
            (
                "no labels: name and image tag",
                with("null", "nginx:1.27.1", "/web"),
                identity("web", "1.27.1", "web"),
            ),
            (
                "an image without a tag",
                with("{}", "nginx", "/web"),
                identity("web", "unknown", "web"),
            ),
            (
                "kubernetes-style labels",
                with(
                    r#"{"app.kubernetes.io/name":"api","version":"3"}"#,
                    "api:latest",
                    "/api-1",
                ),
                identity("api", "3", "api-1"),
            ),
            (
                "no name: the short id",
                with("{}", "busybox:1", ""),
                identity("abcdef012345", "1", "abcdef012345"),
            ),
        ];
        for (what, config, want) in cases {
            assert_eq!(locate(&config).identity, want, "{what}");
        }
    }

    #[test]
    fn reads_config_beside_the_log_and_its_rotations_only() {
        let dir = tempfile::tempdir().unwrap();
        let id = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100";
        let container = dir.path().join(id);
        std::fs::create_dir(&container).unwrap();
        let provider = DockerProvider;
        let log = container.join(format!("{id}-json.log"));
        assert_eq!(
            provider.locate(&log),
            None,
            "no config.v2.json yet: not located (retried later)"
        );
        std::fs::write(container.join("config.v2.json"), "{not json").unwrap();
        assert_eq!(provider.locate(&log), None, "an unreadable config is not located");
        std::fs::write(container.join("config.v2.json"), COMPOSE_CONFIG).unwrap();
        for path in [log.clone(), container.join(format!("{id}-json.log.1"))] {
            let located = provider
                .locate(&path)
                .unwrap_or_else(|| panic!("{} located", path.display()));
            assert_eq!(located.identity.service, "payments");
        }
        for other in [
            container.join("hostconfig.json"),
            container.join("other-json.log"),
            dir.path().join("app.log"),
        ] {
            assert_eq!(
                provider.locate(&other),
                None,
                "{} is not a json-file log",
                other.display()
            );
        }
    }
}
