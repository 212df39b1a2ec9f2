#!/usr/bin/env python3
"""`make system-test`: the whole pipeline as a system, in containers, under faults.

Each scenario starts its own docker-compose topology on a private network: the broker (tansu),
the S3-compatible server (s3s-fs), three indexers (`serve --storage s3://… --peers …`), two
"nodes" — each a set of app containers writing JSON lines with known sequence numbers through
Docker's json-file driver (`max-size` rotation) and a collector container reading them with
`--metadata docker` — then applies its fault and asserts, through `logq` (its image) against one
indexer, that every line written is searchable exactly once with the right
service/version/instance. Each scenario prints

    scenario <name>: written N, searchable N, duplicates N, lost-counted N

and fails on any difference the collectors' loss counters (`/metrics`) do not explain.

Usage: tests/system/run.py [--keep] [SCENARIO ...]   (default: every scenario)
       tests/system/run.py [--keep] --soak MINUTES     (`make soak`: 20 MiB/s, RSS and freshness)
Needs: the Docker engine, docker-compose, the images `make images` builds, and tansu and
s3s-fs installed (scripts/install-test-deps.sh); the runner builds the small tools image.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "tests", "system")
PROJECT = "corralsys"
NETWORK = f"{PROJECT}_backend"
TOOLS_IMAGE = "corral-system-tools:latest"
RUNTIME_BASE = "corral-local/debian:bookworm-slim"
TOPIC = "corral.logs.v1"
PARTITIONS = 3
INDEXERS = ["a", "b", "c"]
COLLECTOR_DATA = "/var/lib/corral/collector"
# The loss reasons of whole lines; line_too_long and message_too_large keep the line, cut.
LINE_LOSSES = ("deleted_before_read", "truncated_before_read", "unreadable")
S3_ENV = {
    "AWS_ENDPOINT_URL": "http://s3:9000",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "corral",
    "AWS_SECRET_ACCESS_KEY": "corral-secret-key",
    "AWS_ALLOW_HTTP": "true",
}


def version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        text = f.read()
    section = text.split("[workspace.package]", 1)[1]
    return re.search(r'^version = "([^"]+)"', section, re.M).group(1)


VERSION = version()


def log(message):
    print(f"system-test: {message}", file=sys.stderr, flush=True)


class Failure(Exception):
    pass


def run(*args, check=True, input=None, timeout=600):
    result = subprocess.run(
        args, input=input, capture_output=True, timeout=timeout, text=input is None or isinstance(input, str)
    )
    if check and result.returncode != 0:
        raise Failure(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result


def wait_until(what, condition, timeout, interval=0.5):
    """Polls `condition` until it returns a true value; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # the condition's own failure is the reason to report
            last = error
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def build_tools_image():
    """tansu, s3s-fs and the app writer on the locally made Debian base."""
    context = tempfile.mkdtemp(prefix="corral-tools-")
    try:
        for tool in ["tansu", "s3s-fs"]:
            path = shutil.which(tool)
            if not path:
                raise Failure(f"{tool} is not installed: run scripts/install-test-deps.sh")
            shutil.copy(path, os.path.join(context, tool))
        shutil.copy(os.path.join(HERE, "app-writer.sh"), os.path.join(context, "app-writer"))
        dockerfile = (
            f"FROM {RUNTIME_BASE}\n"
            "COPY tansu s3s-fs app-writer /usr/local/bin/\n"
            "RUN chmod 0755 /usr/local/bin/app-writer\n"
        )
        run("docker", "build", "--quiet", "-t", TOOLS_IMAGE, "-f", "-", context, input=dockerfile)
    finally:
        shutil.rmtree(context)


class App:
    """One app container of a node."""

    def __init__(self, node, service, version, count, batch=50, pause=0.05, pad=0, kind="good", max_size="1m"):
        self.node, self.service, self.version = node, service, version
        self.name = f"{node}-{service}"
        self.count, self.batch, self.pause, self.pad, self.kind = count, batch, pause, pad, kind
        self.max_size = max_size

    @property
    def container(self):
        return f"{PROJECT}_{self.name}_1"


class Topology:
    def __init__(self, scenario, apps, indexer_settings="", collector_settings="", broker_storage="memory://tansu/"):
        self.scenario = scenario
        self.broker_storage = broker_storage
        self.apps = apps
        self.nodes = sorted({app.node for app in apps})
        self.dir = tempfile.mkdtemp(prefix=f"corral-system-{scenario}-")
        os.chmod(self.dir, 0o755)
        self.indexer_settings = indexer_settings
        self.collector_settings = collector_settings
        self.compose_file = os.path.join(self.dir, "compose.json")
        self.app_ids = {}

    # --- compose -------------------------------------------------------------------------
    def compose(self, *args, check=True, timeout=600):
        return run("docker-compose", "-p", PROJECT, "-f", self.compose_file, *args, check=check, timeout=timeout)

    def write_compose(self):
        with open(os.path.join(self.dir, "indexer.toml"), "w") as f:
            f.write(
                "[indexer]\ncommit_interval = \"500ms\"\nsplit_max_age = \"20s\"\nwriter_memory_mb = 32\n"
                + self.indexer_settings
                + "[kafka]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n"
            )
        with open(os.path.join(self.dir, "collector.toml"), "w") as f:
            f.write(self.collector_settings)
        services = {
            "broker": {
                "image": TOOLS_IMAGE,
                "command": [
                    "tansu", "broker", "--listener-url", "tcp://0.0.0.0:9092",
                    "--advertised-listener-url", "tcp://broker:9092",
                    "--storage-engine", self.broker_storage, "--cluster-id", "corral-system",
                ],
                "environment": {**S3_ENV, "RUST_LOG": "warn"},
                "networks": ["backend"],
            },
            "s3": {
                "image": TOOLS_IMAGE,
                "command": [
                    "bash", "-c",
                    "mkdir -p /data/corral /data/tansu && exec s3s-fs --host 0.0.0.0 --port 9000 "
                    f"--access-key {S3_ENV['AWS_ACCESS_KEY_ID']} --secret-key {S3_ENV['AWS_SECRET_ACCESS_KEY']} /data",
                ],
                "environment": {"RUST_LOG": "warn"},
                "networks": ["backend"],
            },
        }
        for id in INDEXERS:
            peers = ",".join(f"http://indexer-{p}:7280" for p in INDEXERS if p != id)
            services[f"indexer-{id}"] = {
                "image": f"corral-indexer:{VERSION}",
                "read_only": True,
                "command": [
                    "serve", "--brokers", "broker:9092", "--indexer-id", id,
                    "--storage", "s3://corral/system", "--peers", peers,
                    "--listen", "0.0.0.0:7280", "--insecure-open",
                    "--config", "/etc/corral/indexer.toml",
                ],
                "environment": {**S3_ENV, "CORRAL_LOG": "info"},
                "volumes": [
                    f"indexer-{id}:/var/lib/corral/indexer",
                    f"{self.dir}/indexer.toml:/etc/corral/indexer.toml:ro",
                ],
                "networks": ["backend"],
            }
        for app in self.apps:
            services[app.name] = {
                "image": TOOLS_IMAGE,
                "command": ["app-writer", app.service, str(app.count), str(app.batch), str(app.pause), str(app.pad), app.kind],
                "labels": {
                    "resource.opentelemetry.io/service.name": app.service,
                    "org.opencontainers.image.version": app.version,
                },
                "logging": {"driver": "json-file", "options": {"max-size": app.max_size, "max-file": "5"}},
                "network_mode": "none",
            }
        for node in self.nodes:
            logs = []
            for app in self.apps:
                if app.node == node and app.name in self.app_ids:
                    cid = self.app_ids[app.name]
                    logs += ["--logs", f"/var/lib/docker/containers/{cid}/{cid}-json.log"]
            services[f"collector-{node}"] = {
                "image": f"corral-collector:{VERSION}",
                "read_only": True,
                # uid 0 with no capabilities: Docker's log files belong to root (as the
                # DaemonSet does for the kubelet's).
                "user": "0",
                "cap_drop": ["ALL"],
                "command": [
                    "--sink", "kafka", "--brokers", "broker:9092", "--metadata", "docker",
                    "--node", node, "--config", "/etc/corral/collector.toml", "--data-dir", COLLECTOR_DATA, *logs,
                ],
                "environment": {"CORRAL_LOG": "info"},
                "volumes": [
                    # A host directory, root's as the DaemonSet's hostPath is: the image's
                    # own directory belongs to uid 10001, which uid 0 without capabilities
                    # cannot write.
                    f"{self.collector_dir(node)}:{COLLECTOR_DATA}",
                    "/var/lib/docker/containers:/var/lib/docker/containers:ro",
                    f"{self.dir}/collector.toml:/etc/corral/collector.toml:ro",
                ],
                "networks": ["backend"],
            }
        volumes = {f"indexer-{id}": {} for id in INDEXERS}
        if self.broker_storage.startswith("sqlite://"):
            # tansu opens sqlite://<dir>/<file> relative to its working directory.
            services["broker"]["volumes"] = ["broker:/broker"]
            services["broker"]["working_dir"] = "/"
            volumes["broker"] = {}
        compose = {
            "version": "2.4",
            "services": services,
            "networks": {"backend": {"driver": "bridge"}},
            "volumes": volumes,
        }
        with open(self.compose_file, "w") as f:
            json.dump(compose, f, indent=1)

    def collector_dir(self, node):
        path = os.path.join(self.dir, f"collector-{node}")
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    # --- addresses ----------------------------------------------------------------------
    def container(self, service):
        return f"{PROJECT}_{service}_1"

    def ip(self, service):
        out = run("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                  self.container(service)).stdout.split()
        if not out:
            raise Failure(f"{service} has no address (is it running?)")
        return out[0]

    def url(self, service, port, path):
        return f"http://{self.ip(service)}:{port}{path}"

    def ready(self, service, port):
        status, _ = http_get(self.url(service, port, "/readyz"))
        return status == 200

    # --- lifecycle ----------------------------------------------------------------------
    def up(self):
        self.down(quiet=True)
        self.write_compose()
        log(f"[{self.scenario}] starting broker and object store")
        self.compose("up", "-d", "broker", "s3")
        wait_until("the broker to create the topic", lambda: run(
            "docker", "exec", self.container("broker"), "tansu", "topic", "create", TOPIC,
            "--broker", "tcp://localhost:9092", "--partitions", str(PARTITIONS), check=False).returncode == 0, 60)
        log(f"[{self.scenario}] starting indexers {', '.join(INDEXERS)}")
        self.compose("up", "-d", *[f"indexer-{id}" for id in INDEXERS])
        for id in INDEXERS:
            wait_until(f"indexer-{id} /readyz", lambda: self.ready(f"indexer-{id}", 7280), 120)
        # Apps are created first (their ids name their log files), collectors started next,
        # apps last: every line is written while its collector runs.
        self.compose("up", "--no-start", *[app.name for app in self.apps])
        for app in self.apps:
            self.app_ids[app.name] = run("docker", "inspect", "-f", "{{.Id}}", app.container).stdout.strip()
        self.write_compose()
        log(f"[{self.scenario}] starting collectors of {', '.join(self.nodes)}")
        self.compose("up", "-d", "--no-recreate", *[f"collector-{node}" for node in self.nodes])
        for node in self.nodes:
            wait_until(f"collector-{node} /readyz", lambda: self.ready(f"collector-{node}", 7281), 60)
        log(f"[{self.scenario}] starting {len(self.apps)} apps")
        run("docker", "start", *[app.container for app in self.apps])

    def down(self, quiet=False):
        if os.path.exists(self.compose_file):
            self.compose("down", "-v", "--remove-orphans", "-t", "2", check=False)
        else:  # a topology left by an earlier run
            names = run("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout.split()
            if names:
                run("docker", "rm", "-f", "-v", *names, check=False)
            vols = run("docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout.split()
            if vols:
                run("docker", "volume", "rm", "-f", *vols, check=False)
            run("docker", "network", "rm", NETWORK, check=False)

    def apps_done(self):
        for app in self.apps:
            state = json.loads(run("docker", "inspect", "-f", "{{json .State}}", app.container).stdout)
            if state["Running"]:
                return False
            if state["ExitCode"] != 0:
                raise Failure(f"app {app.name} exited {state['ExitCode']}")
        return True

    def logs_of(self, service, tail=40):
        return self.compose("logs", "--no-color", "--tail", str(tail), service, check=False).stdout

    # --- what the pipeline holds --------------------------------------------------------
    def logq(self, *args, timeout=300):
        result = run(
            "docker", "run", "--rm", "--network", NETWORK, "--read-only", f"logq:{VERSION}",
            "--endpoint", "http://indexer-a:7280", "--timeout", "60s", *args, check=False, timeout=timeout)
        return result

    def searchable(self, app):
        """(distinct seqs, records, wrong identities) of `app` through logq against indexer-a."""
        instance = app.container.lstrip("/")
        result = self.logq("search", "systest", "--service", app.service, "--instance", instance,
                           "--limit", str(app.count * 2 + 10), "-o", "jsonl")
        if result.returncode not in (0, 1):
            raise Failure(f"logq exited {result.returncode}: {result.stderr.strip()[-500:]}")
        seqs, records, wrong = set(), 0, []
        for line in result.stdout.splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            found = re.search(r"systest \S+ line (\d+)", record.get("msg", ""))
            if not found:
                continue
            records += 1
            seqs.add(int(found.group(1)))
            got = (record.get("service"), record.get("version"), record.get("instance"))
            if got != (app.service, app.version, instance):
                wrong.append(got)
        return seqs, records, wrong

    def losses(self):
        """{reason: count} of `corral_collector_lost_total` over every collector."""
        total = {}
        for node in self.nodes:
            status, text = http_get(self.url(f"collector-{node}", 7281, "/metrics"))
            if status != 200:
                raise Failure(f"collector-{node} /metrics answered {status}")
            for line in text.splitlines():
                found = re.match(r'corral_collector_lost_total\{.*reason="([a-z_]+)".*\} (\S+)$', line)
                if found:
                    total[found.group(1)] = total.get(found.group(1), 0) + int(float(found.group(2)))
        return total

    def check_counts(self, settle=180):
        """Waits until every written line is searchable (or `settle` s), prints the scenario
        line and fails on any difference the loss counters do not explain."""
        wait_until("the apps to finish writing", self.apps_done, 600, interval=1)
        written = sum(app.count for app in self.apps)

        def tally():
            total = dict(searchable=0, records=0, wrong=[], missing={})
            for app in self.apps:
                seqs, records, wrong = self.searchable(app)
                bad = {s for s in seqs if not 1 <= s <= app.count}
                if bad:
                    raise Failure(f"{app.name}: sequence numbers never written: {sorted(bad)[:10]}")
                missing = sorted(set(range(1, app.count + 1)) - seqs)
                total["missing"][app.name] = missing
                total["searchable"] += len(seqs)
                total["records"] += records
                total["wrong"] += wrong
            return total

        counts = {}

        def complete():
            counts.update(tally())
            return counts["searchable"] >= written

        try:
            wait_until("every written line to be searchable", complete, settle, interval=3)
        except Failure:
            pass
        losses = self.losses()
        lost = sum(losses.get(reason, 0) for reason in LINE_LOSSES)
        cut = {reason: n for reason, n in losses.items() if reason not in LINE_LOSSES and n}
        if cut:
            log(f"[{self.scenario}] kept but cut (flagged truncated): {cut}")
        duplicates = counts["records"] - counts["searchable"]
        print(
            f"scenario {self.scenario}: written {written}, searchable {counts['searchable']}, "
            f"duplicates {duplicates}, lost-counted {lost}",
            flush=True,
        )
        problems = []
        for name, missing in counts["missing"].items():
            if missing:
                log(f"[{self.scenario}] {name}: {len(missing)} not searchable, first {missing[:12]}")
        # A counted loss is of a file's unread bytes, not of a number of lines: it explains
        # lines missing only when some are missing.
        if counts["searchable"] < written and lost == 0:
            problems.append(f"{written - counts['searchable']} lines not searchable and no loss counted")
        if duplicates:
            problems.append(f"{duplicates} duplicate records")
        if counts["wrong"]:
            problems.append(f"{len(counts['wrong'])} records with a wrong service/version/instance, e.g. {counts['wrong'][0]}")
        if problems:
            raise Failure("; ".join(problems))


# --- scenarios ----------------------------------------------------------------------------
def fleet(count=3000, **kwargs):
    return [
        App("node1", "orders", "1.4.2", count, **kwargs),
        App("node1", "payments", "2.4.0", count, **kwargs),
        App("node2", "orders", "1.4.2", count, **kwargs),
        App("node2", "billing", "0.9.1", count, **kwargs),
    ]


def scenario_collector_kill(topology_for):
    """SIGKILL of a collector every few seconds (10 times) while the apps write."""
    top = topology_for("collector-kill", fleet(count=6000, batch=20, pause=0.1))
    top.up()
    for round in range(10):
        node = top.nodes[round % len(top.nodes)]
        time.sleep(3)
        run("docker", "kill", "-s", "KILL", top.container(f"collector-{node}"))
        run("docker", "start", top.container(f"collector-{node}"))
    for node in top.nodes:
        wait_until(f"collector-{node} ready again", lambda: top.ready(f"collector-{node}", 7281), 60)
    top.check_counts()
    return top


def scenario_indexer_restart(topology_for):
    """SIGKILL and restart of each indexer in turn, then one indexer's volume removed (disk loss)."""
    top = topology_for("indexer-restart", fleet(count=5000, batch=20, pause=0.1))
    top.up()
    for id in INDEXERS:
        time.sleep(5)
        log(f"[indexer-restart] SIGKILL indexer-{id}")
        run("docker", "kill", "-s", "KILL", top.container(f"indexer-{id}"))
        run("docker", "start", top.container(f"indexer-{id}"))
        wait_until(f"indexer-{id} ready again", lambda: top.ready(f"indexer-{id}", 7280), 120)
    lost = INDEXERS[1]
    log(f"[indexer-restart] indexer-{lost} loses its volume")
    top.compose("rm", "-s", "-f", f"indexer-{lost}")
    run("docker", "volume", "rm", f"{PROJECT}_indexer-{lost}")
    top.compose("up", "-d", f"indexer-{lost}")
    wait_until(f"indexer-{lost} ready on an empty volume", lambda: top.ready(f"indexer-{lost}", 7280), 120)
    top.check_counts()
    return top


def scenario_broker_pause(topology_for):
    """The broker paused for 60 s while apps write: collectors go unready and come back; nothing lost."""
    top = topology_for("broker-pause", fleet(count=4000, batch=20, pause=0.1))
    top.up()
    time.sleep(3)
    log("[broker-pause] docker pause broker (60 s)")
    run("docker", "pause", top.container("broker"))
    paused = time.monotonic()
    try:
        for node in top.nodes:
            wait_until(f"collector-{node} /readyz to answer 503 while the broker is paused",
                       lambda: not top.ready(f"collector-{node}", 7281), 55, interval=1)
        time.sleep(max(0.0, 60 - (time.monotonic() - paused)))
    finally:
        run("docker", "unpause", top.container("broker"))
    log("[broker-pause] broker resumed")
    for node in top.nodes:
        wait_until(f"collector-{node} /readyz back to 200", lambda: top.ready(f"collector-{node}", 7281), 120)
    top.check_counts()
    return top


def scenario_zombie_indexer(topology_for):
    """An indexer cut off the network past the session timeout (6 s), then reconnected."""
    top = topology_for("zombie-indexer", fleet(count=5000, batch=20, pause=0.1))
    top.up()
    time.sleep(5)
    zombie = top.container("indexer-c")
    log("[zombie-indexer] indexer-c disconnected for 30 s")
    run("docker", "network", "disconnect", NETWORK, zombie)
    try:
        time.sleep(30)
    finally:
        run("docker", "network", "connect", "--alias", "indexer-c", NETWORK, zombie)
    log("[zombie-indexer] indexer-c reconnected")
    wait_until("indexer-c ready again", lambda: top.ready("indexer-c", 7280), 120)
    top.check_counts()
    return top


def scenario_indexer_churn(topology_for):
    """Partitions moving while apps write: 3 -> 2 indexers (one stopped), 2 -> 3 (started
    again), then one frozen (docker pause, as SIGSTOP) past the session timeout and thawed."""
    top = topology_for("indexer-churn", fleet(count=8000, batch=20, pause=0.1))
    top.up()

    def assigned(service):
        return top.logs_of(service, tail=100000).count("partitions assigned")

    time.sleep(5)
    log("[indexer-churn] 3 -> 2: indexer-c stopped")
    run("docker", "stop", "-t", "30", top.container("indexer-c"))
    time.sleep(5)
    before = assigned("indexer-c")
    log("[indexer-churn] 2 -> 3: indexer-c started again")
    run("docker", "start", top.container("indexer-c"))
    wait_until("indexer-c ready again", lambda: top.ready("indexer-c", 7280), 120)
    wait_until("indexer-c to be assigned partitions again", lambda: assigned("indexer-c") > before, 60)
    time.sleep(3)
    log("[indexer-churn] indexer-b frozen for 20 s (past the 6 s session timeout)")
    run("docker", "pause", top.container("indexer-b"))
    try:
        time.sleep(20)
    finally:
        run("docker", "unpause", top.container("indexer-b"))
    log("[indexer-churn] indexer-b thawed")
    wait_until("indexer-b ready again", lambda: top.ready("indexer-b", 7280), 120)
    top.check_counts()
    return top


def scenario_rotation_storm(topology_for):
    """Apps writing ~5 MiB/s each through json-file with max-size=1m."""
    apps = [App("node1", "orders", "1.4.2", 60000, batch=500, pause=0.1, pad=1000),
            App("node2", "billing", "0.9.1", 60000, batch=500, pause=0.1, pad=1000)]
    top = topology_for("rotation-storm", apps)
    top.up()
    top.check_counts()
    return top


def scenario_bad_input(topology_for):
    """Invalid UTF-8, NUL bytes, 10 MiB lines, deeply nested JSON, type-conflicting fields."""
    # Every 6th line is 10 MiB: at a max-size below it every one rotates the file, and 5 files
    # come and go faster than a scan (a file rotated and deleted unseen is lost uncounted).
    # 50m keeps ~5 of them a file; the bad input, not the rotation, is what this is about.
    apps = [App("node1", "orders", "1.4.2", 120, batch=10, pause=0.5, kind="bad", max_size="50m"),
            App("node2", "billing", "0.9.1", 3000)]
    top = topology_for("bad-input", apps)
    top.up()
    top.check_counts()
    for node in top.nodes:
        if not top.ready(f"collector-{node}", 7281):
            raise Failure(f"collector-{node} is not ready after the bad input")
    return top


def scenario_images(topology_for):
    """Each image runs read-only as an arbitrary non-root user; the collector carries no
    tantivy or TUI code."""
    checks = [("corral-collector", ["--version"], f"corral-collector {VERSION}"),
              ("corral-indexer", ["--version"], f"corral-indexer {VERSION}"),
              ("logq", ["-V"], f"logq {VERSION}")]
    for image, version_args, want in checks:
        base = ["docker", "run", "--rm", "--read-only", "--user", "65532", "--network", "none", f"{image}:{VERSION}"]
        got = run(*base, *version_args).stdout.strip()
        if got != want:
            raise Failure(f"{image} {' '.join(version_args)} printed {got!r}, not {want!r}")
        help_text = run(*base, "--help").stdout
        if "Usage:" not in help_text:
            raise Failure(f"{image} --help printed no usage: {help_text[:200]!r}")
        label = run("docker", "image", "inspect", "-f",
                    '{{index .Config.Labels "org.opencontainers.image.version"}}', f"{image}:{VERSION}").stdout.strip()
        if label != VERSION:
            raise Failure(f"{image}'s org.opencontainers.image.version label is {label!r}, not {VERSION}")
        user = run("docker", "image", "inspect", "-f", "{{.Config.User}}", f"{image}:{VERSION}").stdout.strip()
        if user.split(":")[0] in ("", "0", "root"):
            raise Failure(f"{image} runs as root by default (USER {user!r})")
    carried = run("docker", "run", "--rm", "--read-only", "--user", "65532", "--network", "none",
                  "--entrypoint", "grep", f"corral-collector:{VERSION}",
                  "-c", "-a", "-E", "tantivy|ratatui|crossterm", "/usr/local/bin/corral-collector", check=False)
    if carried.returncode != 1:
        raise Failure(f"the collector binary mentions tantivy/ratatui/crossterm ({carried.stdout.strip()} lines)"
                      f" or could not be read: {carried.stderr.strip()}")
    for image in ["corral-collector", "corral-indexer", "logq"]:
        size = int(run("docker", "image", "inspect", "-f", "{{.Size}}", f"{image}:{VERSION}").stdout)
        print(f"image {image}:{VERSION}: {size / 2**20:.0f} MiB", flush=True)


# --- the soak (`make soak`, not in CI) ---------------------------------------------------
SOAK_RATE = 20 << 20  # bytes a second through the whole topology
SOAK_PAD = 2000
SOAK_WARMUP = 300  # seconds before RSS must stop growing
SOAK_GROWTH = 0.20
SOAK_FRESHNESS_P99 = 2.0
SOAK_BROKER_STORAGE = "memory://tansu/"


def rss_kib(container):
    pid = run("docker", "inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failure(f"{container} (pid {pid}) has no VmRSS")


def follow_freshness(top, stop, delays, errors):
    """Reads indexer-a's tail of the probe's lines; appends now − written (s) for each."""
    try:
        url = top.url("indexer-a", 7280, "/api/v1/tail?service=probe")
        with urllib.request.urlopen(url, timeout=30) as response:
            for raw in response:
                if stop.is_set():
                    return
                if not raw.strip():
                    continue
                record = json.loads(raw)
                at = (record.get("fields") or {}).get("at")
                if isinstance(at, (int, float)):
                    delays.append(time.time() - at)
    except Exception as error:  # reported by the caller: a soak without freshness fails
        errors.append(error)


def soak(minutes, keep, rate=SOAK_RATE):
    """`rate` bytes a second (20 MiB) through the whole topology for `minutes`; RSS of every
    process each 10 s; fails when one grows more than 20 % after the first 5 minutes, freshness
    p99 exceeds 2 s, or the apps could not write at `rate` (they end late)."""

    seconds = int(minutes * 60)
    if seconds <= SOAK_WARMUP + 60:
        raise Failure(f"a soak of {minutes} min cannot judge growth after the first {SOAK_WARMUP // 60} min: use > 6")
    line_bytes = SOAK_PAD + 150
    apps = []
    per_app = rate // 4 // line_bytes  # lines a second
    for node, service, ver in [("node1", "orders", "1.4.2"), ("node1", "payments", "2.4.0"),
                               ("node2", "orders", "1.4.2"), ("node2", "billing", "0.9.1")]:
        apps.append(App(node, service, ver, per_app * seconds, batch=max(1, per_app // 20),
                        pause=f"@{per_app}", pad=SOAK_PAD, max_size="50m"))
    apps.append(App("node1", "probe", "1.0.0", seconds * 10, batch=1, pause="@10"))
    # None of tansu 0.6's engines carries a long soak here: memory keeps all it is given (at
    # 20 MiB/s 36 GB in 30 min, more than this machine's RAM: its RSS grows by design), s3://
    # fenced the collectors' idempotent producers (ProducerFenced on every produce), and sqlite://
    # panicked after 3.5 min at 8 MiB/s ("more or less than one row", lite.rs:503) and answered
    # nothing after. CORRAL_SOAK_BROKER_STORAGE picks another (postgres://… needs a tansu built
    # with its `postgres` feature and a server the broker container reaches).
    top = Topology("soak", apps, broker_storage=os.environ.get("CORRAL_SOAK_BROKER_STORAGE", SOAK_BROKER_STORAGE))
    try:
        top.up()
        began = time.monotonic()
        stop = threading.Event()
        delays, errors = [], []
        follower = threading.Thread(target=follow_freshness, args=(top, stop, delays, errors), daemon=True)
        follower.start()
        services = ["broker", "s3"] + [f"indexer-{i}" for i in INDEXERS] + [f"collector-{n}" for n in top.nodes]
        samples = []  # (elapsed s, {service: KiB})
        print("soak: RSS MiB every 10 s\n" + "  min " + "".join(f"{s:>17}" for s in services), flush=True)
        while not top.apps_done():
            elapsed = time.monotonic() - began
            row = {service: rss_kib(top.container(service)) for service in services}
            samples.append((elapsed, row))
            print(f"{elapsed / 60:5.1f} " + "".join(f"{row[s] / 1024:17.0f}" for s in services), flush=True)
            time.sleep(max(0.0, 10 - (time.monotonic() - began - elapsed)))
        written = sum(app.count * (line_bytes if app.service != "probe" else 150) for app in apps)
        took = time.monotonic() - began
        time.sleep(5)
        stop.set()
        problems = []
        print(f"soak: {written / 2**20:.0f} MiB written in {took:.0f} s ({written / took / 2**20:.1f} MiB/s;"
              f" asked {rate / 2**20:.1f} MiB/s for {seconds} s)", flush=True)
        if took > seconds * 1.05 + 30:
            problems.append(f"the apps wrote {written / took / 2**20:.1f} MiB/s, not {rate / 2**20:.1f}: "
                            f"they took {took:.0f} s, not {seconds}")
        for service in services:
            # Growth is judged against the highest RSS of the warm-up, not one sample of it: a
            # process's buffers (librdkafka's queue, tantivy's writer) fill and drain with the
            # load, and a bound they reach early is a bound, not growth.
            warming = [row[service] for at, row in samples if at < SOAK_WARMUP]
            warm = [row[service] for at, row in samples if at >= SOAK_WARMUP]
            if not warm or not warming:
                continue
            base, peak = max(warming), max(warm)
            growth = (peak - base) / base
            print(f"soak: {service}: peak {base / 1024:.0f} MiB in the first {SOAK_WARMUP // 60} min,"
                  f" {peak / 1024:.0f} MiB after ({growth:+.0%})", flush=True)
            if growth > SOAK_GROWTH:
                problems.append(f"{service} RSS grew {growth:.0%} after the first {SOAK_WARMUP // 60} min")
        if errors:
            problems.append(f"the freshness tail failed: {errors[0]}")
        if not delays:
            problems.append("no probe line came through the tail")
        else:
            ordered = sorted(delays)
            p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            print(f"soak: freshness of {len(ordered)} probe lines: p50 {p50:.2f} s, p99 {p99:.2f} s,"
                  f" max {ordered[-1]:.2f} s", flush=True)
            if p99 > SOAK_FRESHNESS_P99:
                problems.append(f"freshness p99 {p99:.2f} s > {SOAK_FRESHNESS_P99} s")
        losses = top.losses()
        print(f"soak: collectors' counted losses {losses or 'none'}", flush=True)
        if problems:
            raise Failure("; ".join(problems))
    finally:
        if not keep:
            top.down()
            shutil.rmtree(top.dir, ignore_errors=True)


SCENARIOS = {
    "images": scenario_images,
    "collector-kill": scenario_collector_kill,
    "indexer-restart": scenario_indexer_restart,
    "broker-pause": scenario_broker_pause,
    "zombie-indexer": scenario_zombie_indexer,
    "indexer-churn": scenario_indexer_churn,
    "rotation-storm": scenario_rotation_storm,
    "bad-input": scenario_bad_input,
}


def main(argv):
    keep = "--keep" in argv
    soak_minutes = None
    soak_rate = SOAK_RATE
    if "--rate" in argv:
        at = argv.index("--rate")
        try:
            soak_rate = int(float(argv[at + 1]) * 2**20)
            if soak_rate <= 0:
                raise ValueError
        except (IndexError, ValueError):
            print("--rate takes the soak's MiB a second through the topology, e.g. --rate 20", file=sys.stderr)
            return 2
        argv = argv[:at] + argv[at + 2:]
    if "--soak" in argv:
        at = argv.index("--soak")
        try:
            soak_minutes = float(argv[at + 1])
        except (IndexError, ValueError):
            print("--soak takes the duration in minutes, e.g. --soak 30", file=sys.stderr)
            return 2
        argv = argv[:at] + argv[at + 2:]
    names = [a for a in argv if not a.startswith("--")] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    for image in [f"corral-collector:{VERSION}", f"corral-indexer:{VERSION}", f"logq:{VERSION}", RUNTIME_BASE]:
        if run("docker", "image", "inspect", image, check=False).returncode != 0:
            print(f"image {image} is missing: run `make images`", file=sys.stderr)
            return 2
    build_tools_image()
    if soak_minutes is not None:
        try:
            soak(soak_minutes, keep, soak_rate)
        except Failure as error:
            print(f"soak: FAILED: {error}", flush=True)
            return 1
        print("soak: passed", flush=True)
        return 0
    started = time.monotonic()
    passed, failed = [], []
    for name in names:
        began = time.monotonic()
        current = []

        def topology_for(scenario, apps, **kwargs):
            top = Topology(scenario, apps, **kwargs)
            current.append(top)
            return top

        try:
            SCENARIOS[name](topology_for)
            passed.append(name)
            log(f"[{name}] passed in {time.monotonic() - began:.0f} s")
        except Exception as error:
            failed.append(name)
            print(f"scenario {name}: FAILED: {error}", flush=True)
            for top in current:
                for service in ["collector-node1", "collector-node2"] + [f"indexer-{i}" for i in INDEXERS]:
                    print(f"--- last lines of {service} ---\n{top.logs_of(service)}", file=sys.stderr)
        finally:
            for top in current:
                if not keep:
                    top.down()
                    shutil.rmtree(top.dir, ignore_errors=True)
    print(f"system-test: {len(passed)} passed, {len(failed)} failed in {time.monotonic() - started:.0f} s"
          + (f" (failed: {', '.join(failed)})" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
