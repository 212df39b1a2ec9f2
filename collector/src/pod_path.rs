//! Where a log file comes from, read off the kubelet's layout
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`.

use std::path::Path;

/// The Kubernetes coordinates of a log file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodPath {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
}

impl PodPath {
    /// Parses the kubelet layout; returns `None` for a file outside it.
    pub fn parse(path: &Path) -> Option<PodPath> {
        let container_dir = path.parent()?;
        let container = container_dir.file_name()?.to_str()?;
        let pod_dir = container_dir.parent()?.file_name()?.to_str()?;
        // Namespaces and pod names are DNS labels/subdomains: they never contain `_`.
        let mut parts = pod_dir.splitn(3, '_');
        let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
        if namespace.is_empty() || pod.is_empty() || uid.is_empty() || container.is_empty() {
            return None;
        }
        Some(PodPath {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            uid: uid.to_owned(),
            container: container.to_owned(),
        })
    }

    /// Coordinates for a file outside the kubelet layout: the configured namespace and pod
    /// (or `unknown`), and the file name without extension as the container.
    pub fn fallback(path: &Path, namespace: Option<&str>, pod: Option<&str>) -> PodPath {
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.split('.').next().unwrap_or(n))
            .filter(|s| !s.is_empty())
            .unwrap_or(corral_schema::fields::UNKNOWN);
        PodPath {
            namespace: namespace.unwrap_or(corral_schema::fields::UNKNOWN).to_owned(),
            pod: pod.unwrap_or(corral_schema::fields::UNKNOWN).to_owned(),
            uid: String::new(),
            container: stem.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kubelet_layout() {
        let path = Path::new(
            "/var/log/pods/shop_checkout-7d9f8b6c4-x2k9p_0b1c2d3e-aaaa-bbbb-cccc-123456789abc/app/0.log",
        );
        assert_eq!(
            PodPath::parse(path),
            Some(PodPath {
                namespace: "shop".into(),
                pod: "checkout-7d9f8b6c4-x2k9p".into(),
                uid: "0b1c2d3e-aaaa-bbbb-cccc-123456789abc".into(),
                container: "app".into(),
            })
        );
        assert_eq!(PodPath::parse(Path::new("/var/log/app.log")), None);
        assert_eq!(PodPath::parse(Path::new("/tmp/x/y/0.log")), None);
        let fallback = PodPath::fallback(Path::new("/var/log/nginx/access.log"), Some("edge"), None);
        assert_eq!(
            (
                fallback.namespace.as_str(),
                fallback.pod.as_str(),
                fallback.container.as_str()
            ),
            ("edge", "unknown", "access")
        );
    }
}
