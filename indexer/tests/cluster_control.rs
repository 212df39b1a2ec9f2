//! Cluster control with real `serve` processes, a real broker (tansu) and a real S3-compatible
//! server (s3s-fs): legal holds are cluster state in the control topic `corral.control.v1`, so
//! a hold placed through one indexer protects the records every indexer published; one elected
//! janitor (a lease in the object store) runs retention for the whole published catalog and reads
//! the holds to the topic's end before each step, so a hold placed between two steps of a
//! running pass is honoured; a killed janitor is replaced and its pass finished.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use corral_indexer::audit::{Entry, Stored};
use corral_indexer::audit_store::chunk_name;
use corral_indexer::manifest::{Manifest, manifest_hash, sha256_hex};
use corral_schema::{Record, Timestamp};
use corral_tests::broker::{Broker, free_port};
use corral_tests::http;
use corral_tests::object_store::{BUCKET, ObjectStoreServer};
use corral_tests::process::{ChildGuard, wait_for, wait_until};
use corral_tests::record::record;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");
const TOPIC: &str = "corral.logs.v1";
const CONTROL: &str = "corral.control.v1";
const READER: &str = "reader-token-aaaaaaaaaaaaaaaaa";
const AUDITOR: &str = "auditor-token-bbbbbbbbbbbbbbbb";
const ADMIN: &str = "admin-token-cccccccccccccccccc";
/// Services of the records: held from the start, held during the pass, never held.
const SERVICES: [&str; 3] = ["orders", "billing", "search"];

struct Cluster {
    broker: Broker,
    s3: ObjectStoreServer,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    /// The `[[retention.tiers]]` of every indexer's config.
    tiers: String,
}

impl Cluster {
    /// Three indexers' worth of ports, a broker with the logs topic (3 partitions) and the
    /// control topic, and the object store; nothing started yet.
    fn new() -> Cluster {
        let broker = Broker::start();
        broker.create_topic(TOPIC, 3);
        broker.create_topic(CONTROL, 1);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tokens.toml"),
            format!(
                "[[token]]\nname = \"rita\"\ntoken = \"{READER}\"\nrole = \"reader\"\n\
                 [[token]]\nname = \"audrey\"\ntoken = \"{AUDITOR}\"\nrole = \"auditor\"\n\
                 [[token]]\nname = \"ada\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n"
            ),
        )
        .unwrap();
        Cluster {
            broker,
            s3: ObjectStoreServer::start(),
            dir,
            ports: (0..3).map(|_| free_port().unwrap()).collect(),
            tiers: "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"1h\"\n".into(),
        }
    }

    /// The published splits in the store: (tier, id) of each with a manifest.
    fn published(&self) -> Vec<(String, String)> {
        let mut splits = Vec::new();
        for tier in std::fs::read_dir(self.s3.objects("cluster/splits"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for split in std::fs::read_dir(tier.path()).into_iter().flatten().flatten() {
                if let Ok(manifest) = Manifest::read(&split.path()) {
                    splits.push((tier.file_name().to_string_lossy().into_owned(), manifest.id));
                }
            }
        }
        splits.sort();
        splits
    }

    fn data_dir(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("indexer-{n}"))
    }

    /// Starts indexer `n` with every other as its peer: records sealed every 2 s are expired at
    /// once (their `ts` is days old, the one tier keeps 1 h) and a pass runs every second.
    fn start(&self, n: usize, env: &[(&str, String)]) -> ChildGuard {
        let config = self.dir.path().join(format!("indexer-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "[indexer]\ncommit_interval = \"200ms\"\nwriter_memory_mb = 32\nsplit_max_docs = 200\n\
                 split_max_age = \"2s\"\ncatalog_refresh = \"500ms\"\njanitor_lease = \"4s\"\n\
                 [auth]\ntokens_file = \"{}\"\n\
                 [retention]\ncheck_interval = \"1s\"\n{}\
                 [kafka]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n",
                self.dir.path().join("tokens.toml").display(),
                self.tiers
            ),
        )
        .unwrap();
        let peers: Vec<String> = (0..3)
            .filter(|&m| m != n)
            .map(|m| format!("http://127.0.0.1:{}", self.ports[m]))
            .collect();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--brokers", &self.broker.bootstrap_servers()])
            .args(["--topic", TOPIC, "--control-topic", CONTROL])
            .args(["--indexer-id", &format!("indexer-{n}")])
            .args(["--storage", &format!("s3://{BUCKET}/cluster")])
            .arg("--data-dir")
            .arg(self.data_dir(n))
            .args(["--listen", &format!("127.0.0.1:{}", self.ports[n])])
            .arg("--config")
            .arg(&config)
            .args(["--peers", &peers.join(",")])
            .envs(self.s3.env())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("POD_NAME")
            .env(
                "CORRAL_LOG",
                std::env::var("CORRAL_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null());
        let child = ChildGuard(command.spawn().expect("start corral-indexer"));
        let port = self.ports[n];
        wait_until(&format!("indexer-{n} answers"), Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    }

    /// Produces `count` records; record `n` is of service `SERVICES[n % 3]`.
    fn produce(&self, count: u64) {
        self.produce_records((0..count).map(|n| Record {
            service: SERVICES[(n % 3) as usize].into(),
            ..record(n)
        }));
    }

    fn produce_records(&self, records: impl Iterator<Item = Record>) {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        for record in records {
            let payload = serde_json::to_vec(&record).unwrap();
            producer
                .send(BaseRecord::to(TOPIC).key(record.kafka_key()).payload(&payload))
                .map_err(|(error, _)| error)
                .expect("queued");
        }
        producer.flush(Duration::from_secs(60)).unwrap();
    }

    fn send(&self, n: usize, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let (status, text) = http::request(self.ports[n], method, path, &[("Authorization", &auth)], body);
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Records per service through indexer `n`, when its answer is complete.
    fn by_service(&self, n: usize) -> Option<Vec<(String, u64)>> {
        let (status, stats) = self.send(n, "GET", "/api/v1/stats?by=service", AUDITOR, "");
        if status != 200 || stats["complete"] != true {
            return None;
        }
        let mut groups: Vec<(String, u64)> = stats["groups"]
            .as_array()?
            .iter()
            .map(|g| {
                (
                    g["key"].as_str().unwrap_or("").to_owned(),
                    g["count"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        groups.sort();
        Some(groups)
    }

    /// Waits until indexer `n` answers exactly `want` per service (it learns of the janitor's
    /// last steps at its next catalog refresh); panics with what it answered after `timeout`.
    fn settles(&self, n: usize, want: &[(String, u64)], timeout: Duration) {
        let started = std::time::Instant::now();
        loop {
            let seen = self.by_service(n);
            if seen.as_deref() == Some(want) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "indexer-{n}: exactly the held records within {timeout:?}: {seen:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metric(&self, n: usize, name: &str) -> Option<f64> {
        let (status, text) = http::get(self.ports[n], "/metrics");
        (status == 200).then_some(())?;
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// `verify --storage` of the cluster's store, with `--brokers` when `brokers`: its exit
    /// code and what it printed.
    fn verify(&self, brokers: bool) -> (Option<i32>, String) {
        let mut command = Command::new(BIN);
        command
            .args(["verify", "--storage", &format!("s3://{BUCKET}/cluster")])
            .envs(self.s3.env());
        if brokers {
            command.args([
                "--brokers",
                &self.broker.bootstrap_servers(),
                "--control-topic",
                CONTROL,
            ]);
        }
        let output = command.output().expect("run verify");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    }

    /// Waits until the janitor pauses at the stage `CORRAL_RETENTION_PAUSE_AT` names (the
    /// gate's `.paused` marker), SIGKILLs it and opens the gate for the others; returns which
    /// indexer it was.
    fn kill_janitor_paused_at(&self, gate: &Path, indexers: &mut [Option<ChildGuard>]) -> usize {
        let paused = PathBuf::from(format!("{}.paused", gate.display()));
        wait_until("the janitor paused mid-pass", Duration::from_secs(120), || {
            matches!(paused.try_exists(), Ok(true))
        });
        // Paused, it still renews its lease: the janitor is the paused one.
        let alive: Vec<usize> = (0..indexers.len()).filter(|&n| indexers[n].is_some()).collect();
        let janitor = self.janitor(&alive);
        let mut child = indexers[janitor].take().expect("running");
        child.0.kill().expect("SIGKILL the janitor");
        child.0.wait().expect("reap it");
        std::fs::write(gate, "go").unwrap();
        janitor
    }

    /// The indexer among `of` that is the janitor now, once exactly one says so.
    fn janitor(&self, of: &[usize]) -> usize {
        wait_for("exactly one elected janitor", Duration::from_secs(60), || {
            let elected: Vec<usize> = of
                .iter()
                .copied()
                .filter(|&n| self.metric(n, "corral_indexer_retention_janitor") == Some(1.0))
                .collect();
            (elected.len() == 1).then(|| elected[0])
        })
    }
}

/// The audit entries of retention steps in a data dir's audit log.
fn retention_entries(data_dir: &Path) -> Vec<Value> {
    let mut entries = Vec::new();
    for file in std::fs::read_dir(data_dir.join("audit"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        for line in text.lines() {
            if let Ok(entry) = serde_json::from_str::<Value>(line)
                && entry["action"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("retention."))
            {
                entries.push(entry);
            }
        }
    }
    entries
}

fn count_of(groups: &[(String, u64)], service: &str) -> u64 {
    groups
        .iter()
        .find(|(key, _)| key == service)
        .map_or(0, |(_, count)| *count)
}

#[test]
fn a_hold_through_any_indexer_protects_every_indexers_records_even_one_placed_mid_pass() {
    const RECORDS: u64 = 900;
    let cluster = Cluster::new();
    let gate = cluster.dir.path().join("gate");
    // The janitor (whichever is elected) pauses once, after the first step of its first pass.
    let pause = [
        ("CORRAL_RETENTION_PAUSE_AT", "placed".to_owned()),
        ("CORRAL_RETENTION_PAUSE_FILE", gate.display().to_string()),
    ];
    let indexers: Vec<ChildGuard> = (0..3).map(|n| cluster.start(n, &pause)).collect();

    // Placed through indexer 0, before any record exists; listed through the others.
    let (status, placed) = cluster.send(
        0,
        "POST",
        "/api/v1/holds",
        ADMIN,
        r#"{"selector":{"service":"orders"},"reason":"case 7"}"#,
    );
    assert_eq!(status, 201, "{placed}");
    for n in 1..3 {
        let (status, listed) = cluster.send(n, "GET", "/api/v1/holds", AUDITOR, "");
        assert_eq!(status, 200, "{listed}");
        assert_eq!(
            listed["holds"][0]["id"], placed["id"],
            "indexer-{n} lists the hold placed through indexer-0"
        );
        let (status, refused) = cluster.send(n, "GET", "/api/v1/holds", READER, "");
        assert_eq!(status, 403, "a reader may not list holds: {refused}");
    }

    cluster.produce(RECORDS);
    let paused = PathBuf::from(format!("{}.paused", gate.display()));
    wait_until(
        "the janitor paused after its first step",
        Duration::from_secs(120),
        || matches!(paused.try_exists(), Ok(true)),
    );
    let janitor = cluster.janitor(&[0, 1, 2]);
    // Every record is searchable but those the first step removed (its audit entry says how
    // many); ingest goes on while the pass is paused.
    let first_step = retention_entries(&cluster.data_dir(janitor));
    assert_eq!(first_step.len(), 1, "one step before the pause: {first_step:?}");
    let removed: u64 = first_step[0]["params"]["removed"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut before = Vec::new();
    wait_until("every record indexed", Duration::from_secs(120), || {
        before = cluster.by_service(janitor).unwrap_or_default();
        before.iter().map(|(_, n)| n).sum::<u64>() == RECORDS - removed
    });
    let billing = count_of(&before, "billing");
    assert!(
        billing > 0,
        "billing records are searchable at the pause: {before:?}"
    );
    assert_eq!(
        count_of(&before, "orders"),
        RECORDS / 3,
        "the first step kept every held record: {before:?}"
    );
    let other = (janitor + 1) % 3;
    // Placed with logq (the same endpoint and token rules as its other subcommands), through
    // an indexer that is not the janitor.
    let logq = |n: usize, token: &str, args: &[&str]| {
        let output = Command::new(corral_tests::process::workspace_binary("logq"))
            .args(args)
            .args(["--endpoint", &format!("http://127.0.0.1:{}", cluster.ports[n])])
            .args(["--token", token, "-o", "jsonl"])
            .output()
            .expect("run logq");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, second, stderr) = logq(
        other,
        ADMIN,
        &["holds", "add", "--service", "billing", "--reason", "case 8"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let second = second.trim().to_owned();
    assert!(!second.is_empty(), "logq holds add prints the hold's id");
    std::fs::write(&gate, "go").unwrap();

    // The pass goes on: every record of search goes, every held one stays, through any indexer.
    let mut last = None;
    wait_until("only held records left", Duration::from_secs(120), || {
        last = cluster.by_service(other);
        last.as_ref()
            .is_some_and(|groups| count_of(groups, "search") == 0)
    });
    // Every indexer lists the janitor's last steps within a catalog refresh (500 ms here).
    let held = vec![
        ("billing".to_owned(), billing),
        ("orders".to_owned(), RECORDS / 3),
    ];
    for n in 0..3 {
        cluster.settles(n, &held, Duration::from_secs(10));
    }
    // Steps are audited once, by the janitor.
    for n in 0..3 {
        let entries = retention_entries(&cluster.data_dir(n));
        if n == janitor {
            assert!(!entries.is_empty(), "the janitor audited its steps");
        } else {
            assert!(
                entries.is_empty(),
                "indexer-{n} is not the janitor but audited {entries:?}"
            );
        }
    }

    // logq for auditors: the cluster's holds through one indexer, the merged audit log through
    // one that is not the janitor (its retention entries come from the janitor's log).
    let (code, listed, _) = logq(other, AUDITOR, &["holds", "list"]);
    assert_eq!(code, Some(0));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let (code, _, refused) = logq(other, READER, &["holds", "list"]);
    assert_eq!(code, Some(2), "a reader is refused: {refused}");
    assert!(refused.contains("HTTP 403"), "{refused}");
    let (code, log, stderr) = logq(other, AUDITOR, &["audit", "--since", "7d", "--who", "retention"]);
    assert_eq!(code, Some(0), "{stderr}");
    let janitor_name = format!("indexer-{janitor}");
    let steps: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(steps.len(), retention_entries(&cluster.data_dir(janitor)).len());
    assert!(
        steps.iter().all(|e| e["indexer"] == janitor_name.as_str()),
        "{log}"
    );

    // Released through a third indexer: the next passes remove the records it kept.
    let id = placed["id"].as_str().unwrap();
    let (status, released) = cluster.send(janitor, "DELETE", &format!("/api/v1/holds/{id}"), ADMIN, "");
    assert_eq!(status, 200, "{released}");
    wait_until("orders removed once released", Duration::from_secs(120), || {
        cluster
            .by_service(other)
            .is_some_and(|groups| count_of(&groups, "orders") == 0 && count_of(&groups, "billing") == billing)
    });

    let (code, released, stderr) = logq(other, ADMIN, &["holds", "release", &second]);
    assert_eq!(
        (code, released.trim()),
        (Some(0), format!("released {second}").as_str()),
        "{stderr}"
    );
    wait_until(
        "every record removed once nothing is held",
        Duration::from_secs(120),
        || cluster.by_service(other).is_some_and(|groups| groups.is_empty()),
    );

    // Fresh records (the tier keeps an hour) leave splits to tamper with. Stopped, every
    // indexer seals and publishes what it holds, uploads its audit log and publishes its head.
    cluster.produce_records((0..30).map(|n| Record {
        service: "search".into(),
        // Observed now too: a ts far ahead of observed_ts is taken back to it at ingest.
        ts: Timestamp::now(),
        observed_ts: Timestamp::now(),
        ..record(RECORDS + n)
    }));
    wait_until("the fresh records searchable", Duration::from_secs(60), || {
        cluster
            .by_service(other)
            .is_some_and(|groups| count_of(&groups, "search") == 30)
    });
    for indexer in indexers {
        indexer.terminate(Duration::from_secs(60));
    }

    // verify --storage: every split, every chain, every indexer's audit log from the store,
    // each deletion accounted for by the janitor's log, each log reaching the head its indexer
    // published to the control topic.
    let verify = |brokers: bool| cluster.verify(brokers);
    let caught = |what: &str, wants: &[&str]| {
        let (code, report) = verify(true);
        assert_eq!(code, Some(1), "{what}: {report}");
        for want in wants {
            assert!(
                report.contains(want),
                "{what}: the report names {want:?}: {report}"
            );
        }
    };
    let (code, report) = verify(true);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains("3 audit log(s)")
            && report.contains("each reaching the head its indexer published to the control topic"),
        "{report}"
    );
    let (code, report) = verify(false);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains("not checked against the control topic"),
        "{report}"
    );

    // Each tampering is named, then undone.
    let store = cluster.s3.objects("cluster");
    let mut splits: Vec<(PathBuf, Manifest)> = std::fs::read_dir(store.join("splits/hot"))
        .unwrap()
        .flatten()
        .filter_map(|e| Some((e.path(), Manifest::read(&e.path()).ok()?)))
        .collect();
    splits.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    let (split, manifest) = splits
        .last()
        .unwrap_or_else(|| panic!("a fresh split in the store: {:?}", cluster.published()))
        .clone();
    // A modified object.
    let file = split.join(manifest.files.keys().next().unwrap());
    let original = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"altered").unwrap();
    caught(
        "a modified file",
        &[&manifest.id, "does not match its manifest's SHA-256"],
    );
    std::fs::write(&file, &original).unwrap();
    // An added object.
    std::fs::write(split.join("extra.bin"), b"added").unwrap();
    caught("an added file", &["extra.bin", "it was added"]);
    std::fs::remove_file(split.join("extra.bin")).unwrap();
    // The janitor's audit log: its last chunk removed, then cut short by one entry.
    let janitor_log = store.join(format!("indexers/indexer-{janitor}/audit"));
    let mut chunks: Vec<PathBuf> = std::fs::read_dir(&janitor_log)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    chunks.sort();
    let last = chunks.last().unwrap().clone();
    let last_bytes = std::fs::read(&last).unwrap();
    let janitor_says = format!("indexer indexer-{janitor}: audit log in the store");
    std::fs::remove_file(&last).unwrap();
    caught("a removed audit tail", &[&janitor_says, "are gone"]);
    let text = String::from_utf8(last_bytes.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(
        &last,
        format!("{}\n", lines[..lines.len() - 1].join("\n")).trim_start(),
    )
    .unwrap();
    caught("a truncated audit tail", &[&janitor_says, "are gone"]);
    std::fs::write(&last, &last_bytes).unwrap();
    // The janitor's whole log removed: nothing accounts for the deletions on any indexer.
    let aside = cluster.dir.path().join("audit-aside");
    std::fs::rename(&janitor_log, &aside).unwrap();
    let (code, report) = verify(false);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("its audit log is not in the object store"),
        "{report}"
    );
    assert!(
        report.contains("was removed"),
        "the splits the janitor deleted are named: {report}"
    );
    std::fs::rename(&aside, &janitor_log).unwrap();
    assert_eq!(verify(true).0, Some(0), "all undone");

    // A removed split, then a forged deletion entry for it: chained correctly onto the
    // janitor's log, it passes for a real one without the control topic, and with it is named
    // as after the last head the janitor published there.
    let removed_aside = cluster.dir.path().join("split-aside");
    std::fs::rename(&split, &removed_aside).unwrap();
    caught(
        "a removed split",
        &[&format!("split {} was removed", manifest.id)],
    );
    let last_line = *lines.last().unwrap();
    let last_entry: Stored = serde_json::from_str(last_line).unwrap();
    let forged = Stored {
        seq: last_entry.seq + 1,
        prev: sha256_hex(last_line.as_bytes()),
        entry: Entry {
            at: Timestamp::now(),
            who: "retention".into(),
            role: "system".into(),
            action: "retention.delete".into(),
            params: [
                ("split".to_owned(), manifest.id.clone()),
                (
                    "manifest_sha256".to_owned(),
                    manifest_hash(&removed_aside).unwrap(),
                ),
            ]
            .into(),
            count: manifest.docs,
            tiers: vec!["hot".into()],
            took_ms: 0,
            refused: None,
            namespaces: None,
        },
    };
    std::fs::write(
        janitor_log.join(chunk_name(forged.seq, forged.seq)),
        format!("{}\n", serde_json::to_string(&forged).unwrap()),
    )
    .unwrap();
    let (code, report) = verify(false);
    assert_eq!(
        code,
        Some(0),
        "without the control topic a well-chained forgery passes: {report}"
    );
    caught(
        "a forged deletion entry",
        &[
            &format!("split {} was removed", manifest.id),
            "that the control topic anchors",
            &format!("entry {} of indexer indexer-{janitor}'s audit log", forged.seq),
        ],
    );
}

#[test]
fn a_janitor_killed_mid_pass_is_replaced_and_the_pass_finished() {
    const RECORDS: u64 = 600;
    let cluster = Cluster::new();
    // Whichever indexer is the janitor stops after a step's audit entry, and is SIGKILLed
    // there; the gate is opened then, so no other pauses.
    let gate = cluster.dir.path().join("gate");
    let pause = [
        ("CORRAL_RETENTION_PAUSE_AT", "audited".to_owned()),
        ("CORRAL_RETENTION_PAUSE_FILE", gate.display().to_string()),
    ];
    let mut indexers: Vec<Option<ChildGuard>> = (0..3).map(|n| Some(cluster.start(n, &pause))).collect();
    let (status, placed) = cluster.send(
        1,
        "POST",
        "/api/v1/holds",
        ADMIN,
        r#"{"selector":{"service":"orders"},"reason":"case 9"}"#,
    );
    assert_eq!(status, 201, "{placed}");
    cluster.janitor(&[0, 1, 2]);
    cluster.produce(RECORDS);
    let first = cluster.kill_janitor_paused_at(&gate, &mut indexers);
    let alive: Vec<usize> = (0..3).filter(|&n| n != first).collect();
    let next = cluster.janitor(&alive);
    assert_ne!(next, first);
    // Restarted, the dead indexer publishes what it had not; the new janitor finishes the pass.
    indexers[first] = Some(cluster.start(first, &[]));
    wait_until("only held records left", Duration::from_secs(180), || {
        cluster
            .by_service(next)
            .is_some_and(|groups| groups == vec![("orders".to_owned(), RECORDS / 3)])
    });
    // Every indexer lists the pass's last steps within a catalog refresh (500 ms here); the
    // restarted one also has its own splits to publish and its cache to catch up.
    let held = vec![("orders".to_owned(), RECORDS / 3)];
    for n in 0..3 {
        cluster.settles(n, &held, Duration::from_secs(30));
    }
    assert!(
        !retention_entries(&cluster.data_dir(next)).is_empty(),
        "the new janitor took the steps"
    );
    // Both janitors' steps, the one cut short and redone included, account for every split
    // gone; every log in the store reaches the head its indexer published.
    for indexer in indexers.into_iter().flatten() {
        indexer.terminate(Duration::from_secs(60));
    }
    let (code, report) = cluster.verify(true);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("3 audit log(s)"), "{report}");
}

#[test]
fn a_tier_move_a_killed_janitor_left_half_done_is_finished_by_the_next_without_it() {
    const RECORDS: u64 = 300;
    let mut cluster = Cluster::new();
    // Records days old leave hot at once and stay in archive.
    cluster.tiers = "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"1h\"\n\
                     [[retention.tiers]]\nname = \"archive\"\nmax_age = \"3650d\"\n"
        .into();
    // The janitor is SIGKILLed after a move published the split's archive copy, before it
    // removed the hot one.
    let gate = cluster.dir.path().join("gate");
    let pause = [
        ("CORRAL_RETENTION_PAUSE_AT", "placed-locally".to_owned()),
        ("CORRAL_RETENTION_PAUSE_FILE", gate.display().to_string()),
    ];
    let mut indexers: Vec<Option<ChildGuard>> = (0..3).map(|n| Some(cluster.start(n, &pause))).collect();
    cluster.janitor(&[0, 1, 2]);
    cluster.produce(RECORDS);
    let first = cluster.kill_janitor_paused_at(&gate, &mut indexers);
    let twice = |published: &[(String, String)]| {
        let mut ids: Vec<&String> = published.iter().map(|(_, id)| id).collect();
        ids.sort();
        ids.windows(2).any(|w| w[0] == w[1])
    };
    assert!(
        twice(&cluster.published()),
        "the killed janitor left a split in both tiers: {:?}",
        cluster.published()
    );
    // Without the dead indexer: the next janitor removes the old copy, and moves the rest.
    let alive: Vec<usize> = (0..3).filter(|&n| n != first).collect();
    cluster.janitor(&alive);
    let mut last = Vec::new();
    wait_until(
        "every published split once, in archive",
        Duration::from_secs(120),
        || {
            last = cluster.published();
            !last.is_empty() && !twice(&last) && last.iter().all(|(tier, _)| tier == "archive")
        },
    );
    // Restarted, the dead indexer publishes what it had not; every record is there once.
    indexers[first] = Some(cluster.start(first, &[]));
    for n in 0..3 {
        cluster.settles(
            n,
            &[
                ("billing".to_owned(), RECORDS / 3),
                ("orders".to_owned(), RECORDS / 3),
                ("search".to_owned(), RECORDS / 3),
            ],
            Duration::from_secs(60),
        );
    }
    for indexer in indexers.into_iter().flatten() {
        indexer.terminate(Duration::from_secs(60));
    }
    let (code, report) = cluster.verify(true);
    assert_eq!(code, Some(0), "{report}");
}
