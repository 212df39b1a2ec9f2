#!/usr/bin/env python3
"""Checks corral's rendered Kubernetes manifests against the rules of issue 8 and DESIGN §3.6, §4, §7.

Usage: deploy-rules.py --repo-root DIR --out DIR RENDERED.yaml...

Each RENDERED.yaml is the output of `kustomize build` of one overlay (its file name, without
`.yaml`, is the overlay's name: `dev`, `prod`, `base`). Schema validity is checked separately
(kubernetes-validate); this script checks what schemas cannot: that the manifests agree with the
binaries' flags, ports and config files, and with the safety rules (read-only log mount, downward
API, least-privilege RBAC, probes, volumes, no secrets in git, prod's high availability).

It also writes, for every rendering, the config files the binaries will read to
OUT/<overlay>/config/{collector,indexer}.toml — rendered through the prod overlay's own
render-config.sh with made-up credentials where the pods render them — so that
tests/tests/deploy_manifests.rs can feed them to the real binaries.

Prints one line per broken rule, `<overlay>: <Kind>/<name>: <rule>: <what is wrong>`, and exits 1
if there is any.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

NAMESPACE = "corral"
COLLECTOR = "corral-collector"
INDEXER = "corral-indexer"
HEADLESS = "corral-indexer-headless"
IMAGES = {"corral-collector", "corral-indexer", "corral-logq"}
COLLECTOR_PORT = 7281
INDEXER_PORT = 7280
LOG_DIR = "/var/log/pods"
CHECKPOINT_DIR = "/var/lib/corral/collector"
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
}
WORKLOADS = {"DaemonSet", "StatefulSet", "Deployment", "Job", "CronJob", "ReplicaSet", "Pod"}
SECRET_ENV = re.compile(r"TOKEN|PASSW|SECRET|CREDENTIAL|API_?KEY|PRIVATE", re.I)
# A config line that sets a secret to a literal (commented lines are skipped before this is used).
SECRET_ASSIGNMENT = re.compile(
    r"""^\s*"?(sasl\.password|sasl\.username|ssl\.key\.password|token|password|secret)"?\s*=\s*["']?[^"'\s]""",
    re.I,
)
TOKEN_LIKE = re.compile(r"\bBearer\s+[A-Za-z0-9._~+/-]{8,}|\b[0-9a-f]{32,}\b|\b[A-Za-z0-9+/]{40,}={0,2}")
CREDENTIALS_MARKER = "# corral:kafka-credentials"
# Made-up SASL credentials for rendering the prod templates: quote and backslash test the escaping.
FAKE_USERNAME = "corral-validate"
FAKE_PASSWORD = 'not-a-secret "quoted" back\\slash'


class Rendering:
    """One overlay's rendered objects, indexed by kind and name (generated names without their hash)."""

    def __init__(self, name, docs):
        self.name = name
        self.docs = [d for d in docs if d]
        self.failures = []

    def fail(self, obj, rule, message):
        if obj is None:
            where = "(overlay)"
        else:
            where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        self.failures.append(f"{self.name}: {where}: {rule}: {message}")

    def of_kind(self, kind):
        return [d for d in self.docs if d.get("kind") == kind]

    def named(self, kind, name):
        """The object of that kind whose name is exactly `name` (a reference inside the rendering)."""
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    def get(self, kind, name):
        """The object of that kind whose name is `name` or `name-<kustomize hash>`."""
        for d in self.of_kind(kind):
            actual = d["metadata"]["name"]
            if actual == name or re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", actual):
                return d
        return None


def pod_spec(obj):
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def pod_labels(obj):
    if obj["kind"] == "Pod":
        return obj["metadata"].get("labels", {})
    return obj["spec"]["template"]["metadata"].get("labels", {})


def containers(spec, init=True):
    found = list(spec.get("containers", []))
    if init:
        found += spec.get("initContainers", [])
    return found


def main_container(r, obj, name):
    for c in pod_spec(obj).get("containers", []):
        if c["name"] == name:
            return c
    r.fail(obj, "container", f"no container named {name}")
    return None


def arg_value(container, flag):
    """The value of `--flag=value` or `--flag value` in the container's args, else None."""
    args = container.get("args", [])
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def env_of(container, name):
    for e in container.get("env", []):
        if e["name"] == name:
            return e
    return None


def volume(spec, name):
    for v in spec.get("volumes", []):
        if v["name"] == name:
            return v
    return None


def mount_at(container, path):
    """The volumeMount whose mountPath is `path` or a parent of it, deepest first."""
    best = None
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    return best


def image_name(image):
    """Repository name without registry and tag: registry.example.com/x/corral-collector:1 -> corral-collector."""
    without_digest = image.split("@", 1)[0]
    last = without_digest.rsplit("/", 1)[-1]
    return last.split(":", 1)[0], (last.split(":", 1)[1] if ":" in last else None)


def parse_duration_seconds(text):
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    if not match:
        return None
    n, unit = int(match.group(1)), match.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def uncommented(text):
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


# ---------------------------------------------------------------------------------------------
# Rules for every rendering


def check_namespaces(r):
    for d in r.docs:
        if d["kind"] in CLUSTER_SCOPED:
            continue
        ns = d["metadata"].get("namespace")
        if ns != NAMESPACE:
            r.fail(d, "namespace", f"is in namespace {ns!r}, not {NAMESPACE!r} (is `namespace: {NAMESPACE}` missing from a kustomization?)")


def check_rbac(r):
    for role in r.of_kind("ClusterRole") + r.of_kind("Role"):
        for rule in role.get("rules", []):
            if rule.get("nonResourceURLs"):
                r.fail(role, "rbac-pods-read-only", f"grants non-resource URLs {rule['nonResourceURLs']}")
            groups = rule.get("apiGroups", [])
            resources = rule.get("resources", [])
            verbs = rule.get("verbs", [])
            if groups != [""] or resources != ["pods"]:
                r.fail(role, "rbac-pods-read-only", f"grants apiGroups {groups} resources {resources}: only core pods are allowed")
            extra = sorted(set(verbs) - {"get", "list", "watch"})
            if extra:
                r.fail(role, "rbac-pods-read-only", f"grants verbs {extra}: only get, list and watch are allowed")
    for binding in r.of_kind("ClusterRoleBinding") + r.of_kind("RoleBinding"):
        ref = binding["roleRef"]
        if r.get(ref["kind"], ref["name"]) is None:
            r.fail(binding, "rbac-pods-read-only", f"binds {ref['kind']} {ref['name']}, which is not one of corral's own")


def check_exposure(r):
    for svc in r.of_kind("Service"):
        kind = svc["spec"].get("type", "ClusterIP")
        if kind not in ("ClusterIP",):
            r.fail(svc, "no-external-exposure", f"type {kind}: the API stays on the cluster network")
    for ing in r.of_kind("Ingress"):
        r.fail(ing, "no-external-exposure", "an Ingress exposes the API outside the cluster")
    for d in r.docs:
        if d["kind"] not in WORKLOADS:
            continue
        spec = pod_spec(d)
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            r.fail(d, "no-host-namespaces", "uses hostNetwork, hostPID or hostIPC")
        for c in containers(spec):
            for p in c.get("ports", []):
                if p.get("hostPort"):
                    r.fail(d, "no-external-exposure", f"container {c['name']} binds hostPort {p['hostPort']}")


def check_containers(r, version):
    for d in r.docs:
        if d["kind"] not in WORKLOADS:
            continue
        spec = pod_spec(d)
        is_collector = d["kind"] == "DaemonSet" and d["metadata"]["name"] == COLLECTOR
        pod_sc = spec.get("securityContext", {})
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            r.fail(d, "security-context", "pod securityContext.seccompProfile.type is not RuntimeDefault")
        if not is_collector:
            if pod_sc.get("runAsNonRoot") is not True:
                r.fail(d, "security-context", "runAsNonRoot is not true (only the collector may run as uid 0)")
            if pod_sc.get("runAsUser") in (None, 0):
                r.fail(d, "security-context", "runAsUser is unset or 0 (set a numeric non-root uid)")
        for c in containers(spec):
            sc = c.get("securityContext", {})
            where = f"container {c['name']}"
            if sc.get("allowPrivilegeEscalation") is not False:
                r.fail(d, "security-context", f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                r.fail(d, "security-context", f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("privileged"):
                r.fail(d, "security-context", f"{where}: privileged")
            caps = sc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []):
                r.fail(d, "security-context", f"{where}: capabilities.drop does not hold ALL")
            if caps.get("add"):
                r.fail(d, "security-context", f"{where}: adds capabilities {caps['add']}")
            if (sc.get("runAsUser") == 0 or sc.get("runAsNonRoot") is False) and not is_collector:
                r.fail(d, "security-context", f"{where}: runs as root")
            res = c.get("resources", {})
            for key in ("cpu", "memory"):
                if key not in res.get("requests", {}):
                    r.fail(d, "resources", f"{where}: no {key} request")
            if "memory" not in res.get("limits", {}):
                r.fail(d, "resources", f"{where}: no memory limit")
            name, tag = image_name(c["image"])
            if name in IMAGES and tag != version:
                r.fail(d, "image-version", f"{where}: image {c['image']} is not tagged with the workspace version {version}")
        # Probes: every long-running container. A Job's container runs to completion and serves nothing.
        if d["kind"] in ("Job", "CronJob"):
            continue
        for c in spec.get("containers", []):
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    r.fail(d, "probes", f"container {c['name']} has no {probe}")


def check_probe_targets(r, obj, container, port, health, ready):
    """The probes hit the binary's health endpoints on the port it listens on."""
    listen = arg_value(container, "--listen")
    if listen is None or not listen.endswith(f":{port}"):
        r.fail(obj, "listen", f"--listen is {listen!r}, not the port {port} the Services, probes and docs use")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if port not in ports.values():
        r.fail(obj, "listen", f"containerPort {port} is not declared")
    for probe, path in (("livenessProbe", health), ("readinessProbe", ready)):
        get = (container.get(probe) or {}).get("httpGet")
        if not get:
            continue  # reported by check_containers
        target = ports.get(get["port"], get["port"])
        if get.get("path") != path or target != port:
            r.fail(obj, "probes", f"{probe} is httpGet {get.get('path')} on {get['port']}, expected {path} on {port}")


# ---------------------------------------------------------------------------------------------
# The collector


def check_collector(r):
    ds = r.get("DaemonSet", COLLECTOR)
    if ds is None:
        r.fail(None, "collector", f"no DaemonSet {COLLECTOR}")
        return
    spec = pod_spec(ds)
    c = main_container(r, ds, "collector")
    if c is None:
        return
    # hostPath volumes: the log directory read-only, the checkpoint directory, nothing else.
    host_paths = {}
    for v in spec.get("volumes", []):
        if "hostPath" in v:
            host_paths[v["name"]] = v["hostPath"]["path"].rstrip("/")
    for name, path in host_paths.items():
        if path not in (LOG_DIR, CHECKPOINT_DIR):
            r.fail(ds, "collector-host-paths", f"hostPath volume {name} mounts {path}: only {LOG_DIR} (read-only) and {CHECKPOINT_DIR}")
    log_volumes = [n for n, p in host_paths.items() if p == LOG_DIR]
    if not log_volumes:
        r.fail(ds, "collector-log-mount-read-only", f"no hostPath volume for {LOG_DIR}")
    for cont in containers(spec):
        for m in cont.get("volumeMounts", []):
            if m["name"] in log_volumes and m.get("readOnly") is not True:
                r.fail(ds, "collector-log-mount-read-only", f"container {cont['name']} mounts {LOG_DIR} without readOnly: true")
    globs = [a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--logs=")] or ["/var/log/pods/*/*/*.log"]
    for glob in globs:
        m = mount_at(c, glob.split("*", 1)[0].rstrip("/"))
        if m is None or m["name"] not in log_volumes:
            r.fail(ds, "collector-log-mount-read-only", f"--logs {glob} is not under the read-only {LOG_DIR} mount")
    data_dir = arg_value(c, "--data-dir") or CHECKPOINT_DIR
    m = mount_at(c, data_dir)
    if m is None or host_paths.get(m["name"]) != CHECKPOINT_DIR:
        r.fail(ds, "collector-checkpoints", f"--data-dir {data_dir} is not the hostPath {CHECKPOINT_DIR} (checkpoints must survive the pod)")
    elif m.get("readOnly"):
        r.fail(ds, "collector-checkpoints", f"{data_dir} is mounted read-only")
    # Downward API.
    for name, field in (("NODE_NAME", "spec.nodeName"), ("POD_NAME", "metadata.name")):
        e = env_of(c, name)
        got = ((e or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        if got != field:
            r.fail(ds, "collector-downward-api", f"env {name} does not come from the downward API fieldRef {field}")
    for flag, value in (("--sink", "kafka"), ("--metadata", "kube")):
        if arg_value(c, flag) != value:
            r.fail(ds, "collector-args", f"{flag} is {arg_value(c, flag)!r}, expected {value!r}")
    if not (env_of(c, "CORRAL_BROKERS") or arg_value(c, "--brokers")):
        r.fail(ds, "collector-args", "no brokers: neither env CORRAL_BROKERS nor --brokers")
    check_probe_targets(r, ds, c, COLLECTOR_PORT, "/healthz", "/readyz")
    # Every node, the priority class, the update strategy, the service account.
    tolerations = spec.get("tolerations", [])
    if not any(t.get("operator") == "Exists" and not t.get("key") for t in tolerations):
        r.fail(ds, "collector-every-node", "no toleration `operator: Exists` (without key): it would not run on tainted or control-plane nodes")
    pc = spec.get("priorityClassName")
    if not pc or r.get("PriorityClass", pc) is None:
        r.fail(ds, "collector-priority", f"priorityClassName {pc!r} is unset or not defined in the rendering")
    strategy = ds["spec"].get("updateStrategy", {})
    rolling = strategy.get("rollingUpdate", {})
    if strategy.get("type") != "RollingUpdate" or "maxUnavailable" not in rolling:
        r.fail(ds, "collector-rollout", "updateStrategy is not RollingUpdate with maxUnavailable")
    if str(rolling.get("maxSurge", 0)) not in ("0", "0%"):
        r.fail(ds, "collector-rollout", "maxSurge is not 0: two collectors on a node would share one checkpoint directory")
    sa = spec.get("serviceAccountName")
    binding = r.get("ClusterRoleBinding", COLLECTOR)
    if sa != COLLECTOR or binding is None or not any(
        s.get("kind") == "ServiceAccount" and s.get("name") == sa and s.get("namespace") == NAMESPACE for s in binding.get("subjects", [])
    ):
        r.fail(ds, "collector-rbac", f"service account {sa!r} is not the one ClusterRoleBinding {COLLECTOR} binds (--metadata kube needs it)")


# ---------------------------------------------------------------------------------------------
# The indexer


def check_indexer(r):
    sts = r.get("StatefulSet", INDEXER)
    if sts is None:
        r.fail(None, "indexer", f"no StatefulSet {INDEXER}")
        return
    spec = pod_spec(sts)
    c = main_container(r, sts, "indexer")
    if c is None:
        return
    if not c.get("args") or c["args"][0] != "serve":
        r.fail(sts, "indexer-args", "the first argument is not the `serve` subcommand")
    if not (env_of(c, "CORRAL_BROKERS") or arg_value(c, "--brokers")):
        r.fail(sts, "indexer-args", "no brokers: neither env CORRAL_BROKERS nor --brokers")
    e = env_of(c, "POD_NAME")
    if ((e or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        r.fail(sts, "indexer-downward-api", "env POD_NAME (static group membership) does not come from fieldRef metadata.name")
    data_dir = arg_value(c, "--data-dir") or "/var/lib/corral/indexer"
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    if not claims:
        r.fail(sts, "indexer-pvc-template", "no volumeClaimTemplates: splits would die with the pod")
    m = mount_at(c, data_dir)
    if m is None or m["name"] not in claims:
        r.fail(sts, "indexer-pvc-template", f"--data-dir {data_dir} is not on a volumeClaimTemplate")
    peers = arg_value(c, "--peers") or ""
    if f"dns+http://{HEADLESS}:{INDEXER_PORT}" not in peers.split(","):
        r.fail(sts, "indexer-peers", f"--peers is {peers!r}: without dns+http://{HEADLESS}:{INDEXER_PORT} a query through the Service sees one replica's share")
    if (spec.get("terminationGracePeriodSeconds") or 30) < 30:
        r.fail(sts, "indexer-shutdown", "terminationGracePeriodSeconds under 30 s leaves no time for the final commit")
    check_probe_targets(r, sts, c, INDEXER_PORT, "/healthz", "/readyz")
    labels = pod_labels(sts)
    headless = r.get("Service", HEADLESS)
    if sts["spec"].get("serviceName") != HEADLESS:
        r.fail(sts, "indexer-services", f"serviceName is {sts['spec'].get('serviceName')!r}, not {HEADLESS}")
    if headless is None:
        r.fail(None, "indexer-services", f"no headless Service {HEADLESS} for logq fan-out")
    else:
        if headless["spec"].get("clusterIP") != "None":
            r.fail(headless, "indexer-services", "is not headless (clusterIP: None)")
        if headless["spec"].get("publishNotReadyAddresses", False) is not False:
            r.fail(headless, "indexer-services", "publishNotReadyAddresses is not false: logq would fan out to indexers that cannot answer")
    api = r.get("Service", INDEXER)
    if api is None:
        r.fail(None, "indexer-services", f"no ClusterIP Service {INDEXER} for the API")
    for svc in [s for s in (headless, api) if s]:
        selector = svc["spec"].get("selector", {})
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            r.fail(svc, "indexer-services", f"selector {selector} does not select the indexer pods {labels}")
        if not any(p["port"] == INDEXER_PORT for p in svc["spec"].get("ports", [])):
            r.fail(svc, "indexer-services", f"does not serve port {INDEXER_PORT}")


# ---------------------------------------------------------------------------------------------
# Kafka, configs and secrets


def check_kafka(r):
    cm = r.get("ConfigMap", "corral-kafka")
    if cm is None:
        r.fail(None, "kafka", "no ConfigMap corral-kafka")
        return None
    data = cm.get("data", {})
    for key in ("brokers", "topic", "partitions", "replication_factor", "min_insync_replicas", "retention_ms", "security_protocol", "sasl_mechanism"):
        if not data.get(key):
            r.fail(cm, "kafka", f"key {key} is missing or empty")
    try:
        partitions = int(data.get("partitions", "0"))
        rf, isr = int(data.get("replication_factor", "0")), int(data.get("min_insync_replicas", "0"))
        int(data.get("retention_ms", "x"))
    except ValueError as e:
        r.fail(cm, "kafka", f"a number is not a number: {e}")
        return data
    if not 1 <= isr <= rf:
        r.fail(cm, "kafka", f"min_insync_replicas {isr} must be between 1 and replication_factor {rf}")
    sts = r.get("StatefulSet", INDEXER)
    if sts and partitions < sts["spec"].get("replicas", 1):
        r.fail(cm, "kafka", f"{partitions} partitions for {sts['spec'].get('replicas')} indexers: some indexers would get none")
    if data.get("topic") != "corral.logs.v1":
        r.fail(cm, "kafka", f"topic {data.get('topic')!r} is not corral.logs.v1 (DESIGN §3.3)")
    return data


def config_source(r, obj, container, flag, key):
    """Where the file given by `flag` comes from: (ConfigMap, rendered-by-init-container)."""
    path = arg_value(container, flag)
    if path is None:
        r.fail(obj, "config", f"no {flag}")
        return None, False
    spec = pod_spec(obj)
    m = mount_at(container, path)
    v = volume(spec, m["name"]) if m else None
    if v is None:
        r.fail(obj, "config", f"{flag} {path} is not on any volume")
        return None, False
    file_name = os.path.relpath(path, m["mountPath"])
    if "configMap" in v:
        cm = r.named("ConfigMap", v["configMap"]["name"])
        if cm is None or file_name not in cm.get("data", {}):
            r.fail(obj, "config", f"{flag} {path}: ConfigMap {v['configMap']['name']} has no key {file_name}")
            return None, False
        return cm, False
    if "emptyDir" in v:
        # Rendered at pod start: an init container writing `path` from a ConfigMap template.
        for init in spec.get("initContainers", []):
            command = init.get("command", []) + init.get("args", [])
            if path in command:
                template = command[command.index(path) - 1]
                tm = mount_at(init, template)
                tv = volume(spec, tm["name"]) if tm else None
                if tv and "configMap" in tv:
                    cm = r.named("ConfigMap", tv["configMap"]["name"])
                    if cm is not None and os.path.relpath(template, tm["mountPath"]) == key:
                        return cm, True
        r.fail(obj, "config", f"{flag} {path} is on an emptyDir that no init container renders from a ConfigMap")
        return None, False
    r.fail(obj, "config", f"{flag} {path} is on volume {m['name']}, neither a ConfigMap nor a rendered emptyDir")
    return None, False


def render_template(r, obj, template_text, out_path):
    """Runs the rendering's own render-config.sh over the template with made-up credentials."""
    script_cm = r.get("ConfigMap", "corral-render-config")
    if script_cm is None or "render-config.sh" not in script_cm.get("data", {}):
        r.fail(obj, "config", "renders its config at start but the rendering has no ConfigMap corral-render-config")
        return False
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "render-config.sh")
        template = os.path.join(tmp, "template.toml")
        creds = os.path.join(tmp, "kafka-client")
        os.mkdir(creds)
        for name, text in (("render-config.sh", script_cm["data"]["render-config.sh"]), ("template.toml", template_text)):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        for name, text in (("username", FAKE_USERNAME), ("password", FAKE_PASSWORD + "\n")):
            with open(os.path.join(creds, name), "w") as f:
                f.write(text)
        run = subprocess.run(["sh", script, template, out_path, creds], capture_output=True, text=True)
        if run.returncode != 0:
            r.fail(obj, "config", f"render-config.sh failed: {run.stderr.strip()}")
            return False
    return True


def check_configs(r, out_dir, kafka):
    config_dir = os.path.join(out_dir, r.name, "config")
    shutil.rmtree(config_dir, ignore_errors=True)
    os.makedirs(config_dir)
    parsed = {}
    for kind, name, container_name, key in (
        ("DaemonSet", COLLECTOR, "collector", "collector.toml"),
        ("StatefulSet", INDEXER, "indexer", "indexer.toml"),
    ):
        obj = r.get(kind, name)
        c = main_container(r, obj, container_name) if obj else None
        if c is None:
            continue
        cm, rendered = config_source(r, obj, c, "--config", key)
        if cm is None:
            continue
        text = cm["data"][key]
        out_path = os.path.join(config_dir, key)
        for line in uncommented(text):
            if SECRET_ASSIGNMENT.search(line) or TOKEN_LIKE.search(line):
                r.fail(cm, "no-hard-coded-secrets", f"{key} sets a credential in the ConfigMap: {line.strip()[:40]}…")
        if rendered:
            if CREDENTIALS_MARKER not in text.splitlines():
                r.fail(cm, "config", f"{key} is rendered at start but has no line {CREDENTIALS_MARKER!r}")
                continue
            if not render_template(r, obj, text, out_path):
                continue
        else:
            if CREDENTIALS_MARKER in text.splitlines():
                r.fail(cm, "config", f"{key} has the {CREDENTIALS_MARKER!r} line but nothing renders it: the binary would run without credentials")
            with open(out_path, "w") as f:
                f.write(text)
        with open(out_path, "rb") as f:
            try:
                parsed[key] = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                r.fail(cm, "config", f"{key} is not valid TOML{' after rendering' if rendered else ''}: {e}")
                continue
        if rendered:
            props = parsed[key].get("kafka", {})
            props = props.get("producer", {}) if key == "collector.toml" else props
            if props.get("sasl.password") != FAKE_PASSWORD or props.get("sasl.username") != FAKE_USERNAME:
                r.fail(cm, "config", f"{key}: the rendered sasl.username/sasl.password are not the credentials given (escaping?)")
    # Drain time fits the grace period.
    ds = r.get("DaemonSet", COLLECTOR)
    drain = parse_duration_seconds(str(parsed.get("collector.toml", {}).get("drain_timeout", "10s")))
    if ds and drain is not None and (pod_spec(ds).get("terminationGracePeriodSeconds") or 30) <= drain:
        r.fail(ds, "collector-shutdown", f"terminationGracePeriodSeconds does not exceed drain_timeout ({drain:g} s)")
    # The librdkafka security settings agree with what the topic Job uses.
    if kafka:
        for key, props in (
            ("collector.toml", parsed.get("collector.toml", {}).get("kafka", {}).get("producer", {})),
            ("indexer.toml", parsed.get("indexer.toml", {}).get("kafka", {})),
        ):
            if key not in parsed:
                continue
            protocol = props.get("security.protocol", "PLAINTEXT").upper()
            if protocol != kafka.get("security_protocol", "PLAINTEXT").upper():
                r.fail(None, "kafka-security", f"{key} uses security.protocol {protocol}, ConfigMap corral-kafka says {kafka.get('security_protocol')}")
            if protocol.startswith("SASL") and props.get("sasl.mechanism", "GSSAPI") != kafka.get("sasl_mechanism"):
                r.fail(None, "kafka-security", f"{key} uses sasl.mechanism {props.get('sasl.mechanism')}, ConfigMap corral-kafka says {kafka.get('sasl_mechanism')}")


def check_secrets(r):
    for s in r.of_kind("Secret"):
        if s.get("data") or s.get("stringData"):
            r.fail(s, "no-hard-coded-secrets", "a Secret with content is applied from git: create it out of band (deploy/README.md)")
    for d in r.docs:
        if d["kind"] not in WORKLOADS:
            continue
        for c in containers(pod_spec(d)):
            for e in c.get("env", []):
                if SECRET_ENV.search(e["name"]) and "value" in e:
                    r.fail(d, "no-hard-coded-secrets", f"container {c['name']}: env {e['name']} has a literal value: use secretKeyRef")
            for arg in c.get("args", []) + c.get("command", []):
                if re.match(r"--(token|password)", arg) or TOKEN_LIKE.search(arg):
                    r.fail(d, "no-hard-coded-secrets", f"container {c['name']}: argument {arg[:30]}… looks like a credential")
    for cm in r.of_kind("ConfigMap"):
        for key, text in cm.get("data", {}).items():
            if key.endswith(".toml"):
                continue  # checked line by line in check_configs
            for line in uncommented(text):
                if TOKEN_LIKE.search(line):
                    r.fail(cm, "no-hard-coded-secrets", f"{key} holds something token-like: {line.strip()[:40]}…")


# ---------------------------------------------------------------------------------------------
# Per overlay


def check_prod(r):
    sts = r.get("StatefulSet", INDEXER)
    if sts is None:
        return
    labels = pod_labels(sts)
    spec = pod_spec(sts)
    if sts["spec"].get("replicas") != 3:
        r.fail(sts, "prod-replicas", f"replicas is {sts['spec'].get('replicas')}, prod runs 3 indexers")
    pdbs = [
        p for p in r.of_kind("PodDisruptionBudget")
        if all(labels.get(k) == v for k, v in p["spec"].get("selector", {}).get("matchLabels", {}).items())
        and p["spec"].get("selector", {}).get("matchLabels")
    ]
    if not pdbs:
        r.fail(sts, "prod-pdb", "no PodDisruptionBudget selects the indexer pods")
    for p in pdbs:
        if str(p["spec"].get("maxUnavailable", "")) != "1" and "minAvailable" not in p["spec"]:
            r.fail(p, "prod-pdb", "sets neither maxUnavailable 1 nor minAvailable")
    anti = spec.get("affinity", {}).get("podAntiAffinity", {})
    required = anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    if not any(
        t.get("topologyKey") == "kubernetes.io/hostname"
        and t.get("labelSelector", {}).get("matchLabels")
        and all(labels.get(k) == v for k, v in t["labelSelector"]["matchLabels"].items())
        for t in required
    ):
        r.fail(sts, "prod-anti-affinity", "no required pod anti-affinity on kubernetes.io/hostname for the indexer pods")
    c = main_container(r, sts, "indexer")
    tokens = [v for v in spec.get("volumes", []) if v.get("secret", {}).get("secretName") == "corral-api-tokens"]
    if not tokens or tokens[0]["secret"].get("optional", False):
        r.fail(sts, "prod-api-tokens", "Secret corral-api-tokens is not mounted, or mounted optional: prod requires tokens")
    elif c and not any(m["name"] == tokens[0]["name"] for m in c.get("volumeMounts", [])):
        r.fail(sts, "prod-api-tokens", "the corral-api-tokens volume is not mounted in the indexer container")
    if c and any(a == "--insecure-open" or a.startswith("--insecure-open=") for a in c.get("args", [])):
        r.fail(sts, "prod-api-tokens", "the indexer runs with --insecure-open: prod requires tokens")
    auth_configs = [
        cm for cm in r.of_kind("ConfigMap")
        if "indexer.toml" in cm.get("data", {})
        and re.search(r'^\[auth\]\s*$(?:\n(?!\[).*)*?^tokens_file\s*=\s*"/etc/corral/auth/tokens\.toml"',
                      cm["data"]["indexer.toml"], re.M)
    ]
    if not auth_configs:
        r.fail(sts, "prod-api-tokens", 'indexer.toml has no [auth] tokens_file = "/etc/corral/auth/tokens.toml": prod requires tokens')
    if c:
        storage = (env_of(c, "CORRAL_STORAGE") or {}).get("valueFrom", {}).get("configMapKeyRef", {})
        cm = r.get("ConfigMap", storage.get("name", "")) if storage else None
        url = (cm or {}).get("data", {}).get(storage.get("key", ""), "")
        if not url.startswith("s3://"):
            r.fail(sts, "prod-object-storage", f"CORRAL_STORAGE is {url!r}, not an s3:// URL from a ConfigMap: a lost volume would lose its splits")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            ref = ((env_of(c, name) or {}).get("valueFrom") or {}).get("secretKeyRef")
            if not ref:
                r.fail(sts, "prod-object-storage", f"env {name} does not come from a Secret (secretKeyRef)")
    kafka = r.get("ConfigMap", "corral-kafka")
    if kafka and kafka["data"].get("security_protocol") not in ("SSL", "SASL_SSL"):
        r.fail(kafka, "prod-kafka-tls", f"security_protocol is {kafka['data'].get('security_protocol')}: prod talks to Kafka over TLS")
    policies = [
        n for n in r.of_kind("NetworkPolicy")
        if all(labels.get(k) == v for k, v in n["spec"].get("podSelector", {}).get("matchLabels", {}).items())
        and n["spec"].get("podSelector", {}).get("matchLabels")
        and "Ingress" in n["spec"].get("policyTypes", ["Ingress"])
    ]
    if not policies:
        r.fail(sts, "prod-api-closed", "no NetworkPolicy limits who reaches the indexers' API")


def check_dev(r):
    sts = r.get("StatefulSet", INDEXER)
    if sts is not None and sts["spec"].get("replicas") != 1:
        r.fail(sts, "dev-replicas", f"replicas is {sts['spec'].get('replicas')}, dev runs 1 indexer")
    c = main_container(r, sts, "indexer") if sts is not None else None
    if c and (env_of(c, "CORRAL_STORAGE") or arg_value(c, "--storage")):
        r.fail(sts, "dev-local-storage", "dev keeps sealed splits on the volume (the default storage): no CORRAL_STORAGE or --storage")


def workspace_version(repo_root):
    with open(os.path.join(repo_root, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo-root", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("rendered", nargs="+")
    args = parser.parse_args()
    version = workspace_version(args.repo_root)
    failures = []
    objects = 0
    for path in args.rendered:
        name = os.path.basename(path).removesuffix(".yaml")
        with open(path) as f:
            r = Rendering(name, list(yaml.safe_load_all(f)))
        objects += len(r.docs)
        check_namespaces(r)
        check_rbac(r)
        check_exposure(r)
        check_containers(r, version)
        check_collector(r)
        check_indexer(r)
        kafka = check_kafka(r)
        check_configs(r, args.out, kafka)
        check_secrets(r)
        if name == "prod":
            check_prod(r)
        elif name == "dev":
            check_dev(r)
        failures += r.failures
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    if failures:
        print(f"deploy-rules: {len(failures)} broken rule(s) in {len(args.rendered)} rendering(s)", file=sys.stderr)
        return 1
    print(f"deploy-rules: every rule holds for {objects} objects in {len(args.rendered)} rendering(s) (images at version {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
