//! `corral-indexer standalone` as a user runs it: the real binary tails real files in the kubelet
//! layout and serves the API; tested through HTTP only.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corral_schema::Record;
use corral_tests::broker::free_port;
use corral_tests::http;
use corral_tests::process::{ChildGuard, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");

fn start(args: &[&str], data_dir: &Path, port: u16) -> ChildGuard {
    let child = Command::new(BIN)
        .arg("standalone")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start corral-indexer standalone");
    ChildGuard(child)
}

fn write_lines(root: &Path, pod: &str, lines: &[String]) {
    let dir = root.join(format!("shop_{pod}_0000-uid/app"));
    fs::create_dir_all(&dir).unwrap();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("0.log"))
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

fn cri(ms: u32, json: &str) -> String {
    format!("2026-11-23T10:00:00.{ms:03}000000Z stdout F {json}")
}

fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = http::get(port, path);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

fn hits(port: u16, query: &str) -> Vec<Record> {
    let (status, body) = get_json(port, &format!("/api/v1/search?{query}"));
    assert_eq!(status, 200, "{query}: {body}");
    serde_json::from_value(body["hits"].clone()).unwrap()
}

fn api_up(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn files_become_searchable_and_the_api_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("pods");
    let data = dir.path().join("data");
    // One request across three services, plus unrelated records and a stack trace.
    write_lines(
        &logs,
        "gateway-7d9f8b6c4-x2k9p",
        &[
            cri(
                1,
                r#"{"level":"info","msg":"GET /checkout","corr":"req-1","http":{"status":200}}"#,
            ),
            cri(9, r#"{"level":"info","msg":"GET /health","corr":"req-2"}"#),
        ],
    );
    write_lines(
        &logs,
        "orders-6f7c9d5b4-wxzqt",
        &[
            cri(
                2,
                r#"{"level":"warn","msg":"slow stock check","corr":"req-1","user":{"id":42}}"#,
            ),
            cri(3, "java.lang.IllegalStateException: boom"),
        ],
    );
    write_lines(
        &logs,
        "payments-6f7c9d8b5-fghjk",
        &[cri(
            4,
            r#"{"level":"error","msg":"card declined","corr":"req-1","amount":12.5}"#,
        )],
    );
    let port = free_port().unwrap();
    let glob = format!("{}/*/*/*.log", logs.display());
    let indexer = start(&["--logs", &glob], &data, port);
    wait_until("5 records", Duration::from_secs(30), || {
        api_up(port) && hits(port, "").len() == 5
    });

    // One request across every service, in time order.
    let request = hits(port, "corr=req-1");
    assert_eq!(
        request
            .iter()
            .map(|r| (r.service.as_str(), r.msg.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("gateway", "GET /checkout"),
            ("orders", "slow stock check"),
            ("payments", "card declined")
        ]
    );
    assert_eq!(hits(port, "q=fields.user.id:42")[0].msg, "slow stock check");
    assert_eq!(
        hits(port, "q=IllegalStateException")[0].flags[0].as_str(),
        "unparsed"
    );
    assert_eq!(hits(port, "level=warn").len(), 2);
    assert_eq!(
        hits(
            port,
            "since=2026-11-23T10:00:00.003Z&until=2026-11-23T10:00:00.004Z"
        )
        .len(),
        2
    );
    let (_, limited) = get_json(port, "/api/v1/search?limit=2");
    assert_eq!(limited["count"], 2);
    assert_eq!(limited["truncated"], true);
    assert_eq!(limited["splits"], 1);
    assert_eq!(limited["tiers"], serde_json::json!(["hot"]));

    let (status, stats) = get_json(port, "/api/v1/stats?by=service");
    assert_eq!(status, 200);
    assert_eq!(stats["total"], 5);
    assert_eq!(stats["groups"][0]["key"], "gateway");
    assert_eq!(stats["groups"][0]["count"], 2);
    assert_eq!(stats["groups"][0]["levels"]["info"], 2);

    // Bad parameters: 400 with a JSON error naming the parameter.
    for (path, want) in [
        ("/api/v1/search?limit=abc", "parameter limit"),
        ("/api/v1/search?level=loud", "parameter level"),
        ("/api/v1/search?since=yesterday", "parameter since"),
        ("/api/v1/search?q=fields.user.id:(", "parameter q"),
        ("/api/v1/search?corr_id=x", "unknown parameter \"corr_id\""),
        ("/api/v1/stats", "parameter by is required"),
        ("/api/v1/stats?by=pod", "parameter by"),
        ("/api/v1/tail?q=(", "parameter q"),
    ] {
        let (status, body) = get_json(port, path);
        assert_eq!(status, 400, "{path}");
        assert!(body["error"].as_str().unwrap().contains(want), "{path}: {body}");
    }
    assert_eq!(http::get(port, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(http::get(port, "/readyz").0, 200);
    let (_, metrics) = http::get(port, "/metrics");
    assert!(
        metrics.contains("corral_indexer_records_indexed_total 5"),
        "{metrics}"
    );

    // Tail: a line written now arrives on an open stream.
    let mut tail = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        tail,
        "GET /api/v1/tail?service=orders HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    tail.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    // The response head arrives first; only then is the stream surely following.
    wait_until("tail response head", Duration::from_secs(5), || {
        if let Ok(n) = tail.read(&mut buf) {
            received.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&received).contains("application/x-ndjson")
    });
    write_lines(
        &logs,
        "gateway-7d9f8b6c4-x2k9p",
        &[cri(20, r#"{"msg":"not for this tail","corr":"req-3"}"#)],
    );
    write_lines(
        &logs,
        "orders-6f7c9d5b4-wxzqt",
        &[cri(21, r#"{"msg":"order placed","corr":"req-3"}"#)],
    );
    let written = Instant::now();
    wait_until("the tailed record", Duration::from_secs(5), || {
        if let Ok(n) = tail.read(&mut buf) {
            received.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&received).contains("order placed")
    });
    let latency = written.elapsed();
    let text = String::from_utf8_lossy(&received).into_owned();
    assert!(!text.contains("not for this tail"), "{text}");
    assert!(latency < Duration::from_secs(4), "tail latency {latency:?}");
    drop(tail);

    // A clean stop and a restart: nothing read twice, nothing lost.
    indexer.terminate(Duration::from_secs(20));
    write_lines(
        &logs,
        "payments-6f7c9d8b5-fghjk",
        &[cri(30, r#"{"msg":"written while stopped","corr":"req-4"}"#)],
    );
    let indexer = start(&["--logs", &glob], &data, port);
    wait_until(
        "the record written while stopped",
        Duration::from_secs(30),
        || api_up(port) && hits(port, "corr=req-4").len() == 1,
    );
    let all = hits(port, "");
    assert_eq!(all.len(), 8);
    let (_, stats) = get_json(port, "/api/v1/stats?by=level");
    assert_eq!(stats["total"], 8, "no record indexed twice");
    indexer.terminate(Duration::from_secs(20));
}

#[test]
fn the_demo_prints_a_request_that_crosses_every_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port().unwrap();
    let mut indexer = start(&["--demo"], &data, port);
    let stdout = indexer.0.stdout.take().unwrap();
    let mut corr = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // `logq --corr <id> --endpoint <url>`, logq maybe given by its path.
        if let Some((command, rest)) = line.trim().split_once(" --corr ")
            && command.ends_with("logq")
        {
            corr = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let corr = corr.expect("a logq --corr line on stdout");
    let services = |records: &[Record]| {
        let mut services: Vec<String> = records.iter().map(|r| r.service.clone()).collect();
        services.sort();
        services.dedup();
        services
    };
    let mut request = Vec::new();
    wait_until(
        "the showcase request in every service",
        Duration::from_secs(30),
        || {
            request = if api_up(port) {
                hits(port, &format!("corr={corr}"))
            } else {
                Vec::new()
            };
            services(&request).len() == 5
        },
    );
    assert_eq!(
        services(&request),
        vec!["gateway", "inventory", "notifications", "orders", "payments"]
    );
    assert!(request.windows(2).all(|w| w[0].ts <= w[1].ts), "time order");
    // Two versions of payments, and the canary's errors are visible by version.
    let (_, stats) = get_json(port, "/api/v1/stats?by=version&service=payments");
    let versions: Vec<&str> = stats["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert!(
        versions.contains(&"2.3.0") && versions.contains(&"2.4.0"),
        "{stats}"
    );
    indexer.terminate(Duration::from_secs(20));
}

/// `--metadata file:<json>` as for the collector: standalone records carry the version (and
/// service) the pod metadata gives, where the path alone says `unknown`; bad values are named.
#[test]
fn standalone_takes_pod_metadata_as_the_collector_does() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("pods");
    write_lines(
        &logs,
        "orders-6f7c9d5b4-wxzqt",
        &[cri(1, r#"{"level":"info","msg":"order placed","corr":"req-7"}"#)],
    );
    let pods = dir.path().join("pods.json");
    fs::write(
        &pods,
        r#"{"pods":[{"namespace":"shop","name":"orders-6f7c9d5b4-wxzqt",
            "annotations":{"resource.opentelemetry.io/service.name":"checkout-orders",
                           "resource.opentelemetry.io/service.version":"2.4.0"},
            "containers":{"app":"registry.example/orders:2.4.0"}}]}"#,
    )
    .unwrap();
    let glob = format!("{}/*/*/*.log", logs.display());
    let metadata = format!("file:{}", pods.display());
    let port = free_port().unwrap();
    let indexer = start(
        &["--logs", &glob, "--metadata", &metadata],
        &dir.path().join("with"),
        port,
    );
    wait_until("the record", Duration::from_secs(30), || {
        api_up(port) && hits(port, "corr=req-7").len() == 1
    });
    let record = &hits(port, "corr=req-7")[0];
    assert_eq!(
        (record.service.as_str(), record.version.as_str()),
        ("checkout-orders", "2.4.0")
    );
    drop(indexer);
    // The path alone: the version is unknown.
    let port = free_port().unwrap();
    let indexer = start(&["--logs", &glob], &dir.path().join("without"), port);
    wait_until("the record", Duration::from_secs(30), || {
        api_up(port) && hits(port, "corr=req-7").len() == 1
    });
    assert_eq!(hits(port, "corr=req-7")[0].version, "unknown");
    drop(indexer);

    let refused = |args: &[&str]| {
        let output = Command::new(BIN)
            .arg("standalone")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path().join("refused"))
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = refused(&["--logs", &glob, "--metadata", "ldap"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(r#"unknown --metadata "ldap": expected path, kube, docker or file:<json>"#),
        "{stderr}"
    );
    let missing = dir.path().join("nope.json");
    let (code, stderr) = refused(&[
        "--logs",
        &glob,
        "--metadata",
        &format!("file:{}", missing.display()),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read metadata file {}", missing.display())),
        "{stderr}"
    );
    let (code, stderr) = refused(&["--demo", "--metadata", "path"]);
    assert_eq!(code, Some(2), "--demo brings its own pod metadata: {stderr}");
}
