//! The Kubernetes manifests under `deploy/` are valid and safe (issue 8): `scripts/validate-deploy.sh`
//! renders every kustomize overlay, validates each object against the Kubernetes schemas (strict),
//! lints the Dockerfiles and checks corral's deployment rules. These tests run it on the real
//! `deploy/`, feed the config files the pods will read to the real binaries, and break copies of
//! `deploy/` one rule at a time to show that each breakage is caught and named.
//!
//! The script installs its tools (a venv under target/deploy-tools, from PyPI) when they are
//! missing; `make test-deps` does that ahead of the tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use corral_tests::process::workspace_binary;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `scripts/validate-deploy.sh` on `deploy_dir`, writing its renderings under `out`.
fn validate(deploy_dir: &Path, out: &Path) -> Output {
    Command::new("bash")
        .arg(repo_root().join("scripts/validate-deploy.sh"))
        .arg("--deploy-dir")
        .arg(deploy_dir)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/validate-deploy.sh")
}

fn transcript(output: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create directory");
    for entry in fs::read_dir(from).expect("read deploy/") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

#[test]
fn deploy_manifests_pass_schema_validation_and_rules() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = validate(&repo_root().join("deploy"), out.path());
    assert!(
        output.status.success(),
        "scripts/validate-deploy.sh failed\n{}",
        transcript(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for overlay in ["dev", "prod"] {
        assert!(
            stdout.contains(overlay),
            "overlay {overlay} was not rendered\n{stdout}"
        );
    }
    assert!(stdout.contains("validate-deploy: OK"), "{stdout}");
}

/// Runs `binary args…` against an unreachable broker. A config that corral's parser and librdkafka
/// both accept gets as far as connecting; anything else stops earlier with another error.
fn reaches_the_broker_stage(binary: &str, args: &[&str], config: &Path) -> Result<(), String> {
    let scratch = tempfile::tempdir().expect("temp dir");
    // The prod configs name the Kafka CA mounted from a Secret; librdkafka loads it when the client
    // is created, so give it a real bundle at that path's stead.
    let text = fs::read_to_string(config).expect("read config");
    let system_cas = "/etc/ssl/certs/ca-certificates.crt";
    let local = scratch.path().join(config.file_name().expect("config file name"));
    // The prod config names the API tokens mounted from a Secret: give it a tokens file there.
    let tokens = scratch.path().join("tokens.toml");
    fs::write(
        &tokens,
        "[[token]]\nname = \"check\"\ntoken = \"0123456789abcdef0123\"\nrole = \"reader\"\n",
    )
    .expect("write tokens");
    fs::write(
        &local,
        text.replace("/etc/corral/kafka-client/ca.crt", system_cas)
            .replace("/etc/corral/auth/tokens.toml", &tokens.display().to_string()),
    )
    .expect("write config");
    let output = Command::new(workspace_binary(binary))
        .args(args)
        .arg("--brokers=127.0.0.1:1")
        .arg(format!("--config={}", local.display()))
        .arg(format!("--data-dir={}", scratch.path().join("data").display()))
        .env("CORRAL_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("cannot reach Kafka") {
        Ok(())
    } else {
        Err(format!("{binary} {}:\n{}", config.display(), transcript(&output)))
    }
}

#[test]
fn rendered_configs_are_accepted_by_the_binaries() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = validate(&repo_root().join("deploy"), out.path());
    assert!(
        output.status.success(),
        "scripts/validate-deploy.sh failed\n{}",
        transcript(&output)
    );
    assert!(
        Path::new("/etc/ssl/certs/ca-certificates.crt").is_file(),
        "the prod configs are checked with the system CA bundle: install ca-certificates"
    );
    // Each check waits for librdkafka's 10 s metadata timeout: run them side by side.
    let mut checks = Vec::new();
    for overlay in ["base", "dev", "prod"] {
        let dir = out.path().join(overlay).join("config");
        checks.push(std::thread::spawn({
            let config = dir.join("collector.toml");
            move || {
                let logs = format!("--logs={}/none/*.log", config.parent().unwrap().display());
                reaches_the_broker_stage("corral-collector", &["--once", "--sink=kafka", &logs], &config)
            }
        }));
        checks.push(std::thread::spawn({
            let config = dir.join("indexer.toml");
            move || reaches_the_broker_stage("corral-indexer", &["serve", "--listen=127.0.0.1:0"], &config)
        }));
    }
    let failures: Vec<String> = checks
        .into_iter()
        .filter_map(|c| c.join().expect("check thread").err())
        .collect();
    assert!(
        failures.is_empty(),
        "configs the pods would be refused with:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_config_the_binary_rejects_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("indexer.toml");
    // A retention tier whose max_age is not a duration corral reads.
    fs::write(
        &config,
        "[indexer]\ncommit_interval = \"1s\"\n[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7 days\"\n",
    )
    .expect("write");
    let error = reaches_the_broker_stage("corral-indexer", &["serve", "--listen=127.0.0.1:0"], &config)
        .expect_err("a bad retention config must stop the indexer before it connects");
    assert!(error.contains("retention.tiers[0] (hot).max_age"), "{error}");
}

/// Breaks a copy of deploy/ by replacing `find` (which must occur) in `file`, and asserts that
/// the validation fails with a message holding `expect`.
fn assert_caught(file: &str, find: &str, replace: &str, expect: &str) {
    let scratch = tempfile::tempdir().expect("temp dir");
    let deploy = scratch.path().join("deploy");
    copy_dir(&repo_root().join("deploy"), &deploy);
    let path = deploy.join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {file}: {e}"));
    assert!(
        text.contains(find),
        "{file} no longer contains {find:?}: update this test"
    );
    fs::write(&path, text.replacen(find, replace, 1)).expect("write broken manifest");
    let output = validate(&deploy, &scratch.path().join("out"));
    let all = transcript(&output);
    assert!(
        !output.status.success(),
        "a broken {file} passed validation\n{all}"
    );
    assert!(all.contains(expect), "the failure does not say {expect:?}\n{all}");
}

/// One test per rule: the file to break, the text to replace, its replacement, and what the
/// failure must say (the rule and the object).
macro_rules! breakage {
    ($name:ident, $file:expr, $find:expr, $replace:expr, $expect:expr) => {
        #[test]
        fn $name() {
            assert_caught($file, $find, $replace, $expect);
        }
    };
}

breakage!(
    writable_log_mount_is_caught,
    "base/collector-daemonset.yaml",
    "mountPath: /var/log/pods\n              readOnly: true",
    "mountPath: /var/log/pods",
    "DaemonSet/corral-collector: collector-log-mount-read-only"
);

breakage!(
    node_name_not_from_downward_api_is_caught,
    "base/collector-daemonset.yaml",
    "fieldPath: spec.nodeName",
    "fieldPath: metadata.namespace",
    "DaemonSet/corral-collector: collector-downward-api: env NODE_NAME"
);

breakage!(
    rbac_beyond_reading_pods_is_caught,
    "base/collector-rbac.yaml",
    "verbs: [\"get\", \"list\", \"watch\"]",
    "verbs: [\"get\", \"list\", \"watch\", \"delete\"]",
    "ClusterRole/corral-collector: rbac-pods-read-only: grants verbs ['delete']"
);

breakage!(
    missing_readiness_probe_is_caught,
    "base/indexer-statefulset.yaml",
    "          readinessProbe:\n            httpGet:\n              path: /readyz\n              port: http\n            periodSeconds: 5\n            timeoutSeconds: 3\n            failureThreshold: 3\n",
    "",
    "StatefulSet/corral-indexer: probes: container indexer has no readinessProbe"
);

breakage!(
    data_dir_off_the_claim_template_is_caught,
    "base/indexer-statefulset.yaml",
    "      metadata:\n        name: data\n",
    "      metadata:\n        name: scratch\n",
    "StatefulSet/corral-indexer: indexer-pvc-template"
);

breakage!(
    hard_coded_token_is_caught,
    "base/collector-daemonset.yaml",
    "            - name: CORRAL_LOG\n              value: info\n",
    "            - name: CORRAL_LOG\n              value: info\n            - name: API_TOKEN\n              value: s3cr3t\n",
    "no-hard-coded-secrets: container collector: env API_TOKEN has a literal value"
);

breakage!(
    prod_with_two_indexers_is_caught,
    "overlays/prod/indexer-prod.yaml",
    "replicas: 3",
    "replicas: 2",
    "prod: StatefulSet/corral-indexer: prod-replicas"
);

breakage!(
    prod_without_pdb_is_caught,
    "overlays/prod/kustomization.yaml",
    "  - indexer-pdb.yaml\n",
    "",
    "prod: StatefulSet/corral-indexer: prod-pdb"
);

breakage!(
    prod_without_anti_affinity_is_caught,
    "overlays/prod/indexer-prod.yaml",
    "topologyKey: kubernetes.io/hostname",
    "topologyKey: topology.kubernetes.io/zone",
    "prod: StatefulSet/corral-indexer: prod-anti-affinity"
);

breakage!(
    unknown_field_fails_the_schema,
    "base/indexer-services.yaml",
    "publishNotReadyAddresses: false",
    "publishNotReadyAdresses: false",
    "'publishNotReadyAdresses' was unexpected"
);

breakage!(
    api_exposed_outside_the_cluster_is_caught,
    "base/indexer-services.yaml",
    "  type: ClusterIP\n",
    "  type: LoadBalancer\n",
    "Service/corral-indexer: no-external-exposure"
);

breakage!(
    indexer_without_peers_is_caught,
    "base/indexer-statefulset.yaml",
    "            - --peers=dns+http://corral-indexer-headless:7280\n",
    "",
    "prod: StatefulSet/corral-indexer: indexer-peers"
);

breakage!(
    prod_without_object_storage_is_caught,
    "overlays/prod/kustomization.yaml",
    "url=s3://corral-logs/prod",
    "url=file:///var/lib/corral/indexer/store",
    "prod: StatefulSet/corral-indexer: prod-object-storage"
);
