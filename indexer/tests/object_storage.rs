//! Sealed splits in a real S3-compatible object store (s3s-fs) with real `serve` processes and
//! a real broker (tansu): splits are published files first, manifest last; an indexer with an
//! empty data dir answers for every published split; an indexer that lost its data dir goes on
//! from what it published with every record exactly once; an upload a crash cut short is
//! finished by the next start and never seen half-done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use corral_indexer::manifest::{MANIFEST_FILE, Manifest, sha256_file};
use corral_indexer::store::{all_ids, distinct};
use corral_schema::Record;
use corral_tests::broker::{Broker, free_port};
use corral_tests::http;
use corral_tests::object_store::{BUCKET, ObjectStoreServer};
use corral_tests::process::{ChildGuard, wait_for, wait_until};
use corral_tests::record::{BASE_TS, at, record};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");
const PREFIX: &str = "cluster";

struct Indexer<'a> {
    broker: &'a Broker,
    s3: &'a ObjectStoreServer,
    topic: &'a str,
    group: &'a str,
    id: &'a str,
    data_dir: PathBuf,
    port: u16,
    /// `[indexer]` settings after the defaults below.
    settings: &'a str,
    peers: Option<String>,
}

const DEFAULT_SETTINGS: &str = "split_max_docs = 400\nsplit_max_age = \"2s\"\ncatalog_refresh = \"500ms\"\n";

impl Indexer<'_> {
    fn start(&self, env: &[(&str, &str)]) -> ChildGuard {
        let config = self.data_dir.with_extension("toml");
        std::fs::write(
            &config,
            format!(
                "[indexer]\ncommit_interval = \"200ms\"\nwriter_memory_mb = 32\n{}\
                 [kafka]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 500\n",
                self.settings
            ),
        )
        .unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--brokers", &self.broker.bootstrap_servers()])
            .args(["--topic", self.topic, "--group", self.group])
            .args(["--indexer-id", self.id])
            .args(["--storage", &format!("s3://{BUCKET}/{PREFIX}")])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--config")
            .arg(&config)
            .envs(self.s3.env())
            .args(self.peers.iter().flat_map(|peers| ["--peers", peers.as_str()]))
            .envs(env.iter().copied())
            .env_remove("POD_NAME")
            .env(
                "CORRAL_LOG",
                std::env::var("CORRAL_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null());
        ChildGuard(command.spawn().expect("start corral-indexer"))
    }
}

fn producer(broker: &Broker) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

fn produce(broker: &Broker, topic: &str, records: std::ops::Range<u64>) {
    produce_with(broker, topic, records, |n| format!("req-{}", n / 5));
}

fn produce_with(broker: &Broker, topic: &str, records: std::ops::Range<u64>, corr: impl Fn(u64) -> String) {
    let producer = producer(broker);
    for n in records {
        let record = Record {
            ts: at(BASE_TS).saturating_add_nanos(n as i64 * 1_000),
            corr: Some(corr(n)),
            ..record(n)
        };
        let payload = serde_json::to_vec(&record).unwrap();
        producer
            .send(BaseRecord::to(topic).key(record.kafka_key()).payload(&payload))
            .map_err(|(error, _)| error)
            .expect("queued");
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// Records an indexer reports through `/api/v1/stats`, if it answers.
fn indexed(port: u16) -> Option<u64> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let (status, body) = http::get(port, "/api/v1/stats?by=service");
    if status != 200 {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(&body).ok()?["total"].as_u64()
}

fn wait_for_indexed(port: u16, expected: u64, what: &str) {
    let mut last = None;
    wait_until(what, Duration::from_secs(120), || {
        last = indexed(port);
        last == Some(expected)
    });
}

/// The manifests published under the test prefix, by split id, read from the server's files.
fn published(s3: &ObjectStoreServer) -> BTreeMap<String, (PathBuf, Manifest)> {
    let mut splits = BTreeMap::new();
    let root = s3.objects(&format!("{PREFIX}/splits"));
    let Ok(tiers) = std::fs::read_dir(&root) else {
        return splits;
    };
    for tier in tiers.flatten() {
        for split in std::fs::read_dir(tier.path()).into_iter().flatten().flatten() {
            let dir = split.path();
            if let Ok(manifest) = Manifest::read(&dir) {
                splits.insert(manifest.id.clone(), (dir, manifest));
            }
        }
    }
    splits
}

fn published_docs(s3: &ObjectStoreServer) -> u64 {
    published(s3).values().map(|(_, m)| m.docs).sum()
}

fn hits(port: u16, corr: &str) -> Vec<String> {
    let (status, body) = http::get(port, &format!("/api/v1/search?corr={corr}"));
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_every_file_matches_its_manifest(dir: &Path, manifest: &Manifest) {
    for (name, sha256) in &manifest.files {
        let path = dir.join(name);
        assert_eq!(
            &sha256_file(&path).unwrap(),
            sha256,
            "{} as published",
            path.display()
        );
    }
}

#[test]
fn published_splits_are_answered_by_a_new_indexer_and_survive_the_loss_of_the_data_dir() {
    let broker = Broker::start();
    let s3 = ObjectStoreServer::start();
    broker.create_topic("logs", 2);
    broker.create_topic("other", 1);
    let dir = tempfile::tempdir().unwrap();
    let a = Indexer {
        broker: &broker,
        s3: &s3,
        topic: "logs",
        group: "indexers",
        id: "indexer-a",
        data_dir: dir.path().join("a"),
        port: free_port().unwrap(),
        settings: DEFAULT_SETTINGS,
        peers: None,
    };
    let indexer_a = a.start(&[]);
    // Two batches, so there are several splits and the manifests chain.
    produce(&broker, "logs", 0..1_000);
    wait_until("the first batch published", Duration::from_secs(120), || {
        published_docs(&s3) == 1_000
    });
    produce(&broker, "logs", 1_000..2_000);
    wait_until("every record published", Duration::from_secs(120), || {
        published_docs(&s3) == 2_000
    });
    wait_for_indexed(a.port, 2_000, "indexer a answers for its records");
    let splits = published(&s3);
    assert!(splits.len() >= 2, "{} splits", splits.len());
    for (dir, manifest) in splits.values() {
        assert_eq!(manifest.indexer, "indexer-a");
        assert_every_file_matches_its_manifest(dir, manifest);
    }
    assert!(
        s3.objects(&format!("{PREFIX}/indexers/indexer-a/chain-head.json"))
            .is_file(),
        "the chain head is published"
    );

    // An indexer with an empty data dir, reading another topic, answers for what was published.
    let b = Indexer {
        topic: "other",
        group: "others",
        id: "indexer-b",
        data_dir: dir.path().join("b"),
        port: free_port().unwrap(),
        peers: None,
        ..a
    };
    let indexer_b = b.start(&[]);
    wait_for_indexed(
        b.port,
        2_000,
        "indexer b answers for indexer a's published splits",
    );
    assert_eq!(hits(b.port, "req-7").len(), 5, "one request's records, each once");
    // Uploads, publishes and fetches are counted.
    assert!(metric(a.port, "corral_indexer_uploads_total").unwrap() >= 3.0 * splits.len() as f64);
    assert!(metric(a.port, "corral_indexer_publish_seconds_count").unwrap() >= splits.len() as f64);
    assert_eq!(
        metric(b.port, "corral_indexer_cache_misses_total"),
        Some(splits.len() as f64)
    );
    assert!(metric(b.port, "corral_indexer_cache_bytes").unwrap() > 0.0);
    assert_eq!(
        metric(b.port, "corral_indexer_catalog_splits"),
        Some(splits.len() as f64)
    );

    // Indexer a loses its data dir: it continues from what it published, exactly once. Its
    // audit log (the queries above) is in the store by then: uploaded with the head a
    // publishes every 30 s.
    let uploaded = s3.objects(&format!("{PREFIX}/indexers/indexer-a/audit"));
    wait_until("a's audit log uploaded", Duration::from_secs(60), || {
        std::fs::read_dir(&uploaded).is_ok_and(|mut dir| dir.next().is_some())
    });
    drop(indexer_a); // SIGKILL
    std::fs::remove_dir_all(&a.data_dir).unwrap();
    let indexer_a = a.start(&[]);
    wait_for_indexed(a.port, 2_000, "indexer a answers again from the object store");
    produce(&broker, "logs", 2_000..3_000);
    wait_until("the new records published", Duration::from_secs(120), || {
        published_docs(&s3) == 3_000
    });
    wait_for_indexed(a.port, 3_000, "indexer a has every record");
    wait_for_indexed(b.port, 3_000, "indexer b sees the new splits");
    // Each request's 5 records, each once, in splits sealed before and after the loss.
    for corr in ["req-0", "req-199", "req-200", "req-399", "req-400", "req-599"] {
        let found = hits(a.port, corr);
        let distinct: std::collections::BTreeSet<_> = found.iter().collect();
        assert_eq!((found.len(), distinct.len()), (5, 5), "{corr}: {found:?}");
    }
    indexer_a.terminate(Duration::from_secs(30));
    indexer_b.terminate(Duration::from_secs(30));
    // a's audit log came back from the store and went on: its first entry is the one a wrote
    // before the loss, and the store's copy holds what it wrote after.
    let first_line = |dir: &Path| -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        let text = std::fs::read_to_string(&files[0]).unwrap();
        text.lines().next().unwrap().to_owned()
    };
    assert_eq!(
        first_line(&a.data_dir.join("audit")),
        first_line(&uploaded),
        "the restarted indexer's log starts with the entry it wrote before the loss"
    );

    // `verify --storage` checks the whole cluster in the store: every file, every chain.
    let verify = || {
        Command::new(BIN)
            .args(["verify", "--storage", &format!("s3://{BUCKET}/{PREFIX}")])
            .envs(s3.env())
            .output()
            .unwrap()
    };
    let verified = verify();
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success()
            && stdout.contains("records): every file matches")
            && stdout.contains("2 audit log(s)")
            && stdout.contains("chains unbroken, not checked against the control topic"),
        "{stdout}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let (dir, manifest) = published(&s3).into_values().next().unwrap();
    let file = manifest.files.keys().next().unwrap();
    std::fs::write(dir.join(file), b"altered").unwrap();
    let verified = verify();
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert_eq!(verified.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&manifest.id) && stderr.contains("SHA-256"),
        "the altered split is named: {stderr}"
    );
}

#[test]
fn an_upload_cut_short_is_never_seen_and_the_next_start_finishes_it() {
    let broker = Broker::start();
    let s3 = ObjectStoreServer::start();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().unwrap();
    let a = Indexer {
        broker: &broker,
        s3: &s3,
        topic: "logs",
        group: "indexers",
        id: "indexer-a",
        data_dir: dir.path().join("a"),
        port: free_port().unwrap(),
        settings: DEFAULT_SETTINGS,
        peers: None,
    };
    produce(&broker, "logs", 0..500);
    let mut crashing = a.start(&[("CORRAL_PUBLISH_CRASH_AT", "before-manifest")]);
    let status = wait_for(
        "the indexer to abort before the manifest",
        Duration::from_secs(120),
        || crashing.0.try_wait().unwrap(),
    );
    assert!(!status.success());
    // The split's files are there, its manifest is not: no one sees it.
    let uploaded: Vec<_> = std::fs::read_dir(s3.objects(&format!("{PREFIX}/splits/hot")))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(uploaded.len(), 1, "{uploaded:?}");
    assert!(
        std::fs::read_dir(&uploaded[0]).unwrap().count() > 0,
        "files were uploaded"
    );
    assert!(
        !uploaded[0].join(MANIFEST_FILE).is_file(),
        "the manifest comes last"
    );
    assert!(published(&s3).is_empty());
    // The next start publishes the sealed split; everything is there once.
    let indexer_a = a.start(&[]);
    wait_until("the cut-short upload finished", Duration::from_secs(60), || {
        published_docs(&s3) == 500
    });
    let (dir_a, manifest) = published(&s3).into_values().next().unwrap();
    assert_every_file_matches_its_manifest(&dir_a, &manifest);
    wait_for_indexed(a.port, 500, "indexer a has every record once");
    indexer_a.terminate(Duration::from_secs(30));
    let ids = all_ids(&a.data_dir).unwrap();
    assert_eq!((ids.len(), distinct(&ids)), (500, 500));
}

#[test]
fn an_object_store_that_stops_answering_during_a_seal_delays_publishing_and_ends_nothing() {
    let broker = Broker::start();
    let s3 = ObjectStoreServer::start();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().unwrap();
    let a = Indexer {
        broker: &broker,
        s3: &s3,
        topic: "logs",
        group: "indexers",
        id: "indexer-a",
        data_dir: dir.path().join("a"),
        port: free_port().unwrap(),
        settings: "split_max_docs = 400\nsplit_max_age = \"1h\"\ncatalog_refresh = \"500ms\"\n",
        peers: None,
    };
    let mut indexer_a = a.start(&[]);
    wait_for_indexed(a.port, 0, "indexer a answers");
    let signal = |signal: &str| {
        assert!(
            Command::new("kill")
                .args([signal, &s3.pid().to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    // The store accepts connections and answers nothing (as a store cut off mid-request):
    // the seal of the first 400 (or more) records cannot claim them, and tries again, alive.
    signal("-STOP");
    produce(&broker, "logs", 0..500);
    wait_for("a failed attempt to publish", Duration::from_secs(120), || {
        if let Some(status) = indexer_a.0.try_wait().unwrap() {
            signal("-CONT");
            panic!("the indexer ended while the object store did not answer: {status}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", a.port)).is_err() {
            signal("-CONT");
            panic!("the indexer stopped answering while the object store did not answer");
        }
        metric(a.port, "corral_indexer_publish_failures_total").filter(|failures| *failures >= 1.0)
    });
    signal("-CONT");
    wait_until("the delayed split published", Duration::from_secs(120), || {
        published_docs(&s3) >= 400
    });
    wait_for_indexed(a.port, 500, "indexer a has every record once");
    assert!(indexer_a.0.try_wait().unwrap().is_none(), "indexer a is running");
    indexer_a.terminate(Duration::from_secs(30));
    let ids = all_ids(&a.data_dir).unwrap();
    assert_eq!((ids.len(), distinct(&ids)), (500, 500));
}

/// The value of metric `name` (with its labels, as written) on `/metrics`.
fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = http::get(port, "/metrics");
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn get_json(port: u16, path: &str) -> serde_json::Value {
    let (status, body) = http::get(port, path);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Two indexers on their own topics with one object store, each the other's peer: through
/// either, every record is found exactly once — those still in the other's active split, and
/// its sealed splits this one has not fetched — and a peer that stops answering is named in
/// `missing`, with logq exiting 3.
#[test]
fn any_indexer_answers_for_the_cluster_and_names_a_peer_that_does_not_answer() {
    let broker = Broker::start();
    let s3 = ObjectStoreServer::start();
    broker.create_topic("logs-a", 1);
    broker.create_topic("logs-b", 1);
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port().unwrap(), free_port().unwrap());
    // Seals at 300 records, and no catalog refresh after the start: what the other sealed is
    // only reached through it.
    let settings =
        "split_max_docs = 300\nsplit_max_age = \"1h\"\ncatalog_refresh = \"1h\"\npeer_timeout = \"1s\"\n";
    let a = Indexer {
        broker: &broker,
        s3: &s3,
        topic: "logs-a",
        group: "group-a",
        id: "indexer-a",
        data_dir: dir.path().join("a"),
        port: port_a,
        settings,
        peers: Some(format!("http://127.0.0.1:{port_b},http://127.0.0.1:{port_a}")),
    };
    let b = Indexer {
        topic: "logs-b",
        group: "group-b",
        id: "indexer-b",
        data_dir: dir.path().join("b"),
        port: port_b,
        peers: Some(format!("http://127.0.0.1:{port_a}")),
        ..a
    };
    let indexer_a = a.start(&[]);
    let indexer_b = b.start(&[]);
    // Every request's records are on both topics.
    let corr = |n: u64| format!("req-{}", n % 100);
    produce_with(&broker, "logs-a", 0..600, corr);
    produce_with(&broker, "logs-b", 600..1_000, corr);
    // Each indexer's own share (asked as a peer would be).
    let own = |port: u16| {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let (status, body) = http::get_with(port, "/api/v1/stats?by=service", &[("x-corral-peer", "have=")]);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["total"].as_u64()
    };
    wait_until(
        "each indexer to index its topic",
        Duration::from_secs(120),
        || own(port_a) == Some(600) && own(port_b) == Some(400),
    );
    for port in [port_a, port_b] {
        let stats = get_json(port, "/api/v1/stats?by=service");
        assert_eq!(
            (stats["total"].as_u64(), &stats["complete"]),
            (Some(1_000), &serde_json::json!(true)),
            "{stats}"
        );
        let search = get_json(port, "/api/v1/search?corr=req-7");
        let ids: std::collections::BTreeSet<_> = search["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!((search["count"].as_u64(), ids.len()), (Some(10), 10), "{search}");
        assert_eq!(search["missing"], serde_json::json!([]), "{search}");
    }
    assert!(
        published_docs(&s3) >= 300,
        "indexer a sealed a split that b reached only through a"
    );

    // Indexer a stops answering: b answers with its own records and names a.
    let stop = |signal: &str| {
        assert!(
            Command::new("kill")
                .args([signal, &indexer_a.0.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    stop("-STOP");
    let search = get_json(port_b, "/api/v1/search?corr=req-7");
    assert_eq!(search["complete"], serde_json::json!(false), "{search}");
    // b's own 4, and those in a's published splits b was given a share of by a before (b's
    // catalog is not refreshed: it learned them from those shares).
    let found = search["count"].as_u64().unwrap();
    assert!((4..=10).contains(&found), "{search}");
    let missing = search["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{search}");
    assert_eq!(
        missing[0]["peer"].as_str(),
        Some(format!("http://127.0.0.1:{port_a}").as_str())
    );
    let logq = Command::new(corral_tests::process::workspace_binary("logq"))
        .args([
            "--corr",
            "req-7",
            "-o",
            "jsonl",
            "--endpoint",
            &format!("http://127.0.0.1:{port_b}"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&logq.stderr);
    assert_eq!(logq.status.code(), Some(3), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&logq.stdout).lines().count() as u64,
        found
    );
    assert!(
        stderr.contains("incomplete answer") && stderr.contains(&port_a.to_string()),
        "{stderr}"
    );
    assert_eq!(
        metric(
            port_b,
            &format!("corral_indexer_peer_errors_total{{peer=\"http://127.0.0.1:{port_a}\"}}")
        ),
        Some(2.0),
        "the search and logq's"
    );
    stop("-CONT");
    indexer_a.terminate(Duration::from_secs(30));
    indexer_b.terminate(Duration::from_secs(30));
}

/// Partitions moving between indexers (1 → 2 → 1) are indexed exactly once: a revoked
/// partition's records are sealed and published before it is released, also when an indexer
/// stops, and its next owner resumes after what was published — not from its own older
/// checkpoint of the partition.
#[test]
fn partitions_moving_between_indexers_are_published_before_release_and_indexed_once() {
    let broker = Broker::start();
    let s3 = ObjectStoreServer::start();
    broker.create_topic("logs", 4);
    let dir = tempfile::tempdir().unwrap();
    // Only a revocation or a shutdown seals.
    let settings = "split_max_docs = 1000000\nsplit_max_age = \"1h\"\ncatalog_refresh = \"500ms\"\n";
    let a = Indexer {
        broker: &broker,
        s3: &s3,
        topic: "logs",
        group: "indexers",
        id: "indexer-a",
        data_dir: dir.path().join("a"),
        port: free_port().unwrap(),
        settings,
        peers: None,
    };
    let b = Indexer {
        id: "indexer-b",
        data_dir: dir.path().join("b"),
        port: free_port().unwrap(),
        peers: None,
        ..a
    };
    // Each indexer's own records (asked as a peer would be).
    let own = |port: u16| {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let (status, body) = http::get_with(port, "/api/v1/stats?by=service", &[("x-corral-peer", "have=")]);
        (status == 200)
            .then(|| serde_json::from_str::<serde_json::Value>(&body).unwrap()["total"].as_u64())?
    };
    let indexer_a = a.start(&[]);
    produce(&broker, "logs", 0..1_000);
    wait_until(
        "indexer a to index the first batch",
        Duration::from_secs(120),
        || own(a.port) == Some(1_000),
    );
    assert_eq!(published_docs(&s3), 0, "nothing is sealed yet");

    // b joins: a's partitions are revoked, so a publishes what it has of them first.
    let indexer_b = b.start(&[]);
    wait_until(
        "the revoked partitions' records published",
        Duration::from_secs(120),
        || published_docs(&s3) == 1_000,
    );
    produce(&broker, "logs", 1_000..2_000);
    wait_until(
        "both indexers to take a share of the second batch",
        Duration::from_secs(120),
        || {
            let (in_a, in_b) = (own(a.port), own(b.port));
            in_a.zip(in_b)
                .is_some_and(|(x, y)| x + y == 2_000 && x > 1_000 && y > 0)
        },
    );

    // b stops: it publishes its share, and a takes its partitions back after it.
    indexer_b.terminate(Duration::from_secs(60));
    wait_until("b's share published", Duration::from_secs(120), || {
        published_docs(&s3) == 2_000
    });
    produce(&broker, "logs", 2_000..3_000);
    wait_for_indexed(a.port, 3_000, "indexer a has every record");
    indexer_a.terminate(Duration::from_secs(60));
    let ids = all_ids(&a.data_dir).unwrap();
    assert_eq!(
        (ids.len(), distinct(&ids)),
        (3_000, 3_000),
        "every record once in a's splits and copies"
    );
}

/// `--peers` without an object store (the dev overlay): sealed splits stay local and a peer
/// that does not answer is named — the indexer starts and answers (it once could not build its
/// peers' HTTP client without the TLS provider an object store installed).
#[test]
fn peers_without_an_object_store_answer_and_name_a_peer_that_is_down() {
    let broker = Broker::start();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().unwrap();
    let (port, down) = (free_port().unwrap(), free_port().unwrap());
    let config = dir.path().join("indexer.toml");
    std::fs::write(
        &config,
        "[indexer]\ncommit_interval = \"200ms\"\npeer_timeout = \"1s\"\n",
    )
    .unwrap();
    let indexer = ChildGuard(
        Command::new(BIN)
            .args([
                "serve",
                "--brokers",
                &broker.bootstrap_servers(),
                "--topic",
                "logs",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--peers", &format!("http://127.0.0.1:{down}")])
            .arg("--config")
            .arg(&config)
            .env_remove("POD_NAME")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    produce(&broker, "logs", 0..10);
    let search = wait_for(
        "the indexer to answer with its records",
        Duration::from_secs(60),
        || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            let search = get_json(port, "/api/v1/search?corr=req-1");
            (search["count"].as_u64() == Some(5)).then_some(search)
        },
    );
    assert_eq!(search["complete"], serde_json::json!(false), "{search}");
    assert_eq!(
        search["missing"][0]["peer"].as_str(),
        Some(format!("http://127.0.0.1:{down}").as_str()),
        "{search}"
    );
    indexer.terminate(Duration::from_secs(30));
}

/// Two indexers, each the other's peer, with many published splits: a root spreads them over
/// both (rendezvous hashing), so neither fetches every split of the other; when its peer stops
/// answering, the root searches that peer's share itself and says the peer is missing. The
/// root's cache is bounded to one byte: splits are fetched, searched and evicted, and every
/// answer stays whole and exact.
#[test]
fn a_root_spreads_published_splits_over_its_peers_and_searches_a_stopped_peers_share_itself() {
    let broker = Broker::start();
    let s3 = ObjectStoreServer::start();
    broker.create_topic("logs-a", 1);
    broker.create_topic("logs-b", 1);
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port().unwrap(), free_port().unwrap());
    let settings_a = "split_max_docs = 25\nsplit_max_age = \"1h\"\ncatalog_refresh = \"300ms\"\n\
                      peer_timeout = \"1s\"\ncache_max_bytes = 1\n";
    let settings_b = "split_max_docs = 25\nsplit_max_age = \"1h\"\ncatalog_refresh = \"300ms\"\n\
                      peer_timeout = \"1s\"\n";
    let a = Indexer {
        broker: &broker,
        s3: &s3,
        topic: "logs-a",
        group: "group-a",
        id: "indexer-a",
        data_dir: dir.path().join("a"),
        port: port_a,
        settings: settings_a,
        peers: Some(format!("http://127.0.0.1:{port_b}")),
    };
    let b = Indexer {
        topic: "logs-b",
        group: "group-b",
        id: "indexer-b",
        data_dir: dir.path().join("b"),
        port: port_b,
        settings: settings_b,
        peers: Some(format!("http://127.0.0.1:{port_a}")),
        ..a
    };
    let indexer_a = a.start(&[]);
    let indexer_b = b.start(&[]);
    // 20 sealed splits each (a split is sealed at a commit, so 25 records at a time), nothing
    // left in the active splits; every request on both topics.
    let corr = |n: u64| format!("req-{}", n % 50);
    for chunk in 0..20 {
        produce_with(&broker, "logs-a", chunk * 25..(chunk + 1) * 25, corr);
        produce_with(&broker, "logs-b", 500 + chunk * 25..500 + (chunk + 1) * 25, corr);
        wait_until("the chunk published", Duration::from_secs(60), || {
            published_docs(&s3) == (chunk + 1) * 50
        });
    }
    let mut seen = (0, None, None);
    wait_until(
        "40 splits published and listed by both (published docs, listed by a, by b)",
        Duration::from_secs(120),
        || {
            seen = (
                published_docs(&s3),
                metric(port_a, "corral_indexer_catalog_splits"),
                metric(port_b, "corral_indexer_catalog_splits"),
            );
            seen == (1_000, Some(40.0), Some(40.0))
        },
    );
    let misses = |port| metric(port, "corral_indexer_cache_misses_total").unwrap_or(0.0);
    let stats = get_json(port_a, "/api/v1/stats?by=service");
    assert_eq!(
        (stats["total"].as_u64(), &stats["complete"]),
        (Some(1_000), &serde_json::json!(true)),
        "{stats}"
    );
    // Each indexer searched its share: b (its own splits cached since it sealed them) fetched
    // some of a's 20 splits, not all; a (whose cache holds one split) some of the 40.
    let (fetched_a, fetched_b) = (misses(port_a), misses(port_b));
    assert!(
        fetched_b > 0.0 && fetched_b < 20.0 && fetched_a > 0.0 && fetched_a < 40.0,
        "b fetched {fetched_b} of a's 20 splits, a {fetched_a} of the 40"
    );
    let search = get_json(port_a, "/api/v1/search?corr=req-7");
    let ids: std::collections::BTreeSet<_> = search["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!((search["count"].as_u64(), ids.len()), (Some(20), 20), "{search}");
    assert_eq!(search["complete"], serde_json::json!(true), "{search}");
    // a's cache holds one split at most (its bound is a byte); the rest were evicted.
    assert!(metric(port_a, "corral_indexer_cache_evictions_total").unwrap_or(0.0) > 0.0);
    let one_split = metric(port_a, "corral_indexer_cache_fetched_bytes_total").unwrap() / fetched_a;
    let cached = metric(port_a, "corral_indexer_cache_bytes").unwrap();
    assert!(
        cached <= 2.0 * one_split,
        "{cached} bytes cached, splits are ~{one_split}"
    );

    // A tail through a follows b's records too (they reach only b's active split).
    let tail = LogqTail::start(port_a);
    wait_until(
        "the tail open on a and relayed from b",
        Duration::from_secs(30),
        || {
            [port_a, port_b]
                .iter()
                .all(|port| metric(*port, "corral_indexer_tails_open") == Some(1.0))
        },
    );
    let tailed = |n: u64| format!("tail-{}", n % 2);
    produce_with(&broker, "logs-a", 1_000..1_010, tailed);
    produce_with(&broker, "logs-b", 1_010..1_020, tailed);
    let lines = tail.lines(20, Duration::from_secs(60));
    let ids: std::collections::BTreeSet<String> = lines
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: std::collections::BTreeSet<String> = (1_000..1_020).map(|n| record(n).id).collect();
    assert_eq!(ids, expected, "every record once, from both indexers");
    drop(tail);

    // b stops: a searches b's share itself; the answer has every record and names b.
    let signal = |signal: &str| {
        assert!(
            Command::new("kill")
                .args([signal, &indexer_b.0.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    let stats = get_json(port_a, "/api/v1/stats?by=service");
    // All but the 10 tailed records still in b's active split.
    assert_eq!(stats["total"].as_u64(), Some(1_010), "{stats}");
    assert_eq!(stats["complete"], serde_json::json!(false), "{stats}");
    let missing = stats["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{stats}");
    assert_eq!(
        missing[0]["peer"].as_str(),
        Some(format!("http://127.0.0.1:{port_b}").as_str())
    );
    assert!(
        missing[0]["reason"]
            .as_str()
            .unwrap()
            .contains("was searched by indexer-a"),
        "{stats}"
    );
    // b is given no share while it is failing: the next answer comes without waiting for it.
    let search = get_json(port_a, "/api/v1/search?corr=req-7");
    assert_eq!(search["count"].as_u64(), Some(20), "{search}");
    // A tail started now says on stderr that it does not follow b.
    let tail = LogqTail::start(port_a);
    let said = tail.stderr_line(Duration::from_secs(30));
    assert!(
        said.contains("incomplete answer") && said.contains(&port_b.to_string()),
        "{said}"
    );
    drop(tail);
    signal("-CONT");
    indexer_a.terminate(Duration::from_secs(30));
    indexer_b.terminate(Duration::from_secs(30));
}

/// `logq tail -o jsonl` against one indexer, its output read line by line.
struct LogqTail {
    child: ChildGuard,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl LogqTail {
    fn start(port: u16) -> LogqTail {
        let mut child = Command::new(corral_tests::process::workspace_binary("logq"))
            .args([
                "tail",
                "-o",
                "jsonl",
                "--endpoint",
                &format!("http://127.0.0.1:{port}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = |pipe: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        LogqTail {
            child: ChildGuard(child),
            stdout,
            stderr,
        }
    }

    /// The next `n` records printed, within `within`.
    fn lines(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + within;
        let mut lines = Vec::new();
        while lines.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => panic!("logq tail printed {} of {n} records: {lines:?}", lines.len()),
            }
        }
        lines
    }

    fn stderr_line(&self, within: Duration) -> String {
        self.stderr
            .recv_timeout(within)
            .expect("logq tail said nothing on stderr")
    }
}

impl Drop for LogqTail {
    fn drop(&mut self) {
        let _ = self.child.0.kill();
    }
}

/// A tier with an object store of its own (`[[retention.tiers]] storage`): retention moves
/// month-old splits into the archive tier, published to the second bucket and removed from the
/// first; another indexer with the same config (and an empty data dir) answers for them.
#[test]
fn a_tier_with_its_own_store_is_published_there_and_answered_by_any_indexer() {
    use corral_tests::object_store::COLD_BUCKET;
    let broker = Broker::start();
    let s3 = ObjectStoreServer::start();
    broker.create_topic("logs", 1);
    broker.create_topic("other", 1);
    let dir = tempfile::tempdir().unwrap();
    let settings = format!(
        "split_max_docs = 100\nsplit_max_age = \"1h\"\ncatalog_refresh = \"300ms\"\n\
         [retention]\ncheck_interval = \"1s\"\n\
         [[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n\
         [[retention.tiers]]\nname = \"archive\"\nmax_age = \"400d\"\nstorage = \"s3://{COLD_BUCKET}/archive\"\n"
    );
    let a = Indexer {
        broker: &broker,
        s3: &s3,
        topic: "logs",
        group: "indexers",
        id: "indexer-a",
        data_dir: dir.path().join("a"),
        port: free_port().unwrap(),
        settings: &settings,
        peers: None,
    };
    let indexer_a = a.start(&[]);
    // 300 records a month old, 100 at a time so they seal into 3 splits.
    let producer = producer(&broker);
    let month_ago = corral_schema::Timestamp::now().saturating_add_nanos(-30 * 86_400_000_000_000);
    for batch in 0..3u64 {
        for n in batch * 100..(batch + 1) * 100 {
            let record = Record {
                ts: month_ago.saturating_add_nanos(n as i64 * 1_000),
                corr: Some(format!("req-{}", n / 5)),
                ..record(n)
            };
            let payload = serde_json::to_vec(&record).unwrap();
            producer
                .send(BaseRecord::to("logs").key(record.kafka_key()).payload(&payload))
                .map_err(|(error, _)| error)
                .expect("queued");
        }
        producer.flush(Duration::from_secs(60)).unwrap();
        wait_for_indexed(a.port, (batch + 1) * 100, "the batch indexed");
    }
    let archived = || -> u64 {
        let root = s3.objects_in(COLD_BUCKET, "archive/splits/archive");
        std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|split| Manifest::read(&split.path()).ok())
            .map(|m| m.docs)
            .sum()
    };
    wait_until(
        "every record archived in the second bucket",
        Duration::from_secs(120),
        || archived() == 300,
    );
    wait_until(
        "the hot copies gone from the first bucket",
        Duration::from_secs(60),
        || published(&s3).values().all(|(_, m)| m.tier != "hot"),
    );
    assert_eq!(
        published_docs(&s3),
        0,
        "nothing archived in the main bucket: {:?}",
        published(&s3).keys()
    );
    wait_for_indexed(a.port, 300, "indexer a answers for its archived records");

    // Another indexer, with the same tiers and an empty data dir.
    let b = Indexer {
        topic: "other",
        group: "others",
        id: "indexer-b",
        data_dir: dir.path().join("b"),
        port: free_port().unwrap(),
        ..a
    };
    let indexer_b = b.start(&[]);
    wait_for_indexed(b.port, 300, "indexer b answers for the archived records");
    let found = hits(b.port, "req-7");
    let distinct: std::collections::BTreeSet<_> = found.iter().collect();
    assert_eq!((found.len(), distinct.len()), (5, 5), "{found:?}");
    indexer_a.terminate(Duration::from_secs(30));
    indexer_b.terminate(Duration::from_secs(30));
    // verify --storage with the config checks the second bucket too.
    let verified = Command::new(BIN)
        .args(["verify", "--storage", &format!("s3://{BUCKET}/{PREFIX}")])
        .arg("--config")
        .arg(a.data_dir.with_extension("toml"))
        .envs(s3.env())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && stdout.contains("(") && stdout.contains("300 records"),
        "{stdout}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}
