//! `corral-collector` as a user runs it: the real binary over real files in the kubelet layout.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corral_schema::{Flag, Level, Record, Stream};
use corral_tests::bench::process_peak_rss_kib;
use corral_tests::process::{ChildGuard, wait_for_ok};

/// (service, container, stream, level, corr, msg, flags) of a record.
type Summary<'a> = (
    &'a str,
    &'a str,
    Stream,
    Option<Level>,
    Option<&'a str>,
    &'a str,
    &'a [Flag],
);

const BIN: &str = env!("CARGO_BIN_EXE_corral-collector");

fn run_once(root: &Path, data: &Path, extra: &[&str]) -> Vec<Record> {
    let output = Command::new(BIN)
        .args(["--once", "--sink", "stdout", "--node", "node-a"])
        .args(["--logs", &format!("{}/pods/*/*/*.log", root.display())])
        .args(["--logs", &format!("{}/plain/*.log", root.display())])
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .output()
        .expect("run corral-collector");
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("stdout is UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad envelope {line}: {e}")))
        .collect()
}

fn append(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn once_reads_every_format_then_only_what_was_added() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let containerd = root
        .path()
        .join("pods/shop_checkout-7d9f8b6c4-x2k9p_uid-1/app/0.log");
    let crio = root.path().join("pods/shop_db-0_uid-2/pg/0.log");
    let docker = root.path().join("pods/edge_proxy-x2k9p_uid-3/envoy/0.log");
    let plain = root.path().join("plain/legacy.log");
    let long = "y".repeat(5000);
    append(
        &containerd,
        format!(
            "2026-11-23T10:15:00.5Z stdout F {{\"level\":\"info\",\"ts\":1795428900.25,\"msg\":\"order placed\",\"trace_id\":\"t-1\",\"order\":{{\"id\":7}}}}\n\
             2026-11-23T10:15:01Z stderr P {{\"level\":\"error\",\"msg\":\"split \n\
             2026-11-23T10:15:01Z stdout F interleaved stdout line\n\
             2026-11-23T10:15:01Z stderr F across chunks\"}}\n\
             2026-11-23T10:15:02Z stdout F {long}\n"
        )
        .as_bytes(),
    );
    append(
        &crio,
        b"2026-11-23T11:15:03.000000001+01:00 stdout F plain text with NUL \0 inside\n",
    );
    append(
        &crio,
        b"2026-11-23T11:15:04.000000001+01:00 stdout F bad utf8 \xff\xfe here\n",
    );
    append(
        &docker,
        br#"{"log":"{\"message\":\"upstream\",\"x_request_id\":\"r-9\",\"severity\":\"WARNING\"}\n","stream":"stdout","time":"2026-11-23T10:15:05.8443515Z"}
{"log":"part one ","stream":"stderr","time":"2026-11-23T10:15:06Z"}
{"log":"part two\n","stream":"stderr","time":"2026-11-23T10:15:06.1Z"}
"#,
    );
    append(&plain, b"a legacy line\n");
    let config = root.path().join("collector.toml");
    fs::write(&config, "max_line_bytes = 4096\ndefault_namespace = \"legacy\"\n").unwrap();
    let config_args = ["--config", config.to_str().unwrap()];

    let records = run_once(root.path(), &data, &config_args);
    let summary: Vec<Summary<'_>> = records
        .iter()
        .map(|r| {
            (
                r.service.as_str(),
                r.container.as_str(),
                r.stream,
                r.level,
                r.corr.as_deref(),
                r.msg.as_str(),
                &r.flags[..],
            )
        })
        .collect();
    let cut = "y".repeat(4096);
    let expected: Vec<Summary<'_>> = vec![
        (
            "proxy",
            "envoy",
            Stream::Stdout,
            Some(Level::Warn),
            Some("r-9"),
            "upstream",
            &[],
        ),
        (
            "proxy",
            "envoy",
            Stream::Stderr,
            None,
            None,
            "part one part two",
            &[Flag::PartialMerged, Flag::Unparsed],
        ),
        (
            "db",
            "pg",
            Stream::Stdout,
            None,
            None,
            "plain text with NUL \0 inside",
            &[Flag::Unparsed],
        ),
        (
            "db",
            "pg",
            Stream::Stdout,
            None,
            None,
            "bad utf8 \u{fffd}\u{fffd} here",
            &[Flag::InvalidUtf8, Flag::Unparsed],
        ),
        (
            "checkout",
            "app",
            Stream::Stdout,
            Some(Level::Info),
            Some("t-1"),
            "order placed",
            &[],
        ),
        (
            "checkout",
            "app",
            Stream::Stdout,
            None,
            None,
            "interleaved stdout line",
            &[Flag::Unparsed],
        ),
        (
            "checkout",
            "app",
            Stream::Stderr,
            Some(Level::Error),
            None,
            "split across chunks",
            &[Flag::PartialMerged],
        ),
        (
            "checkout",
            "app",
            Stream::Stdout,
            None,
            None,
            &cut,
            &[Flag::Truncated, Flag::Unparsed],
        ),
        (
            "unknown",
            "legacy",
            Stream::Stdout,
            None,
            None,
            "a legacy line",
            &[Flag::Unparsed],
        ),
    ];
    let mut got = summary.clone();
    let mut want = expected.clone();
    got.sort_by_key(|r| (r.0, r.1, r.5.to_owned()));
    want.sort_by_key(|r| (r.0, r.1, r.5.to_owned()));
    assert_eq!(got, want);

    let order = records.iter().find(|r| r.msg == "order placed").unwrap();
    assert_eq!(
        order.ts.to_string(),
        "2026-11-23T10:15:00.250000000Z",
        "the app's own timestamp wins"
    );
    assert_eq!(
        order.fields,
        serde_json::json!({"order": {"id": 7}})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(
        (order.namespace.as_str(), order.pod.as_str(), order.node.as_str()),
        ("shop", "checkout-7d9f8b6c4-x2k9p", "node-a")
    );
    assert_eq!(order.instance, "checkout-7d9f8b6c4-x2k9p/app");
    let nul = records.iter().find(|r| r.msg.contains("NUL")).unwrap();
    assert_eq!(
        nul.ts.to_string(),
        "2026-11-23T10:15:03.000000001Z",
        "runtime timestamp without an app one"
    );
    let legacy = records.iter().find(|r| r.msg == "a legacy line").unwrap();
    assert_eq!(
        legacy.namespace, "legacy",
        "files outside the kubelet layout take the configured namespace"
    );
    let ids: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), records.len(), "ids are distinct");

    // Nothing new: nothing printed.
    assert_eq!(run_once(root.path(), &data, &config_args), vec![]);
    // Only what was added since.
    append(
        &containerd,
        b"2026-11-23T10:16:00Z stdout F {\"msg\":\"later\",\"level\":\"warn\"}\n",
    );
    append(&plain, b"another legacy line\n");
    let added = run_once(root.path(), &data, &config_args);
    let mut msgs: Vec<&str> = added.iter().map(|r| r.msg.as_str()).collect();
    msgs.sort();
    assert_eq!(msgs, ["another legacy line", "later"]);

    // The same lines read again from scratch get the same ids.
    let again = run_once(root.path(), &root.path().join("fresh-data"), &config_args);
    let again_ids: std::collections::HashSet<&str> = again.iter().map(|r| r.id.as_str()).collect();
    assert!(ids.is_subset(&again_ids), "re-reading a line yields its id again");
    assert_eq!(again.len(), records.len() + 2);
}

/// Regression (hardening #6): the format was detected from a 4 KiB fingerprint, so a docker
/// json-file log whose first line is a 16 KiB partial (docker splits a long line every 16 KiB)
/// was read as plain text: partials not merged, the wrapper taken for the app's JSON.
#[test]
fn a_docker_log_whose_first_line_is_a_16_kib_partial_is_unwrapped_and_merged() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let log = root.path().join("pods/shop_search-x2k9p_uid-4/api/0.log");
    let app_line = format!(
        "{{\"level\":\"info\",\"msg\":\"index rebuilt\",\"trace_id\":\"t-16k\",\"shards\":\"{}\"}}\n",
        "s\\\"q".repeat(8000)
    );
    // docker json-file: the log field carries at most 16 KiB; the last chunk ends in \n.
    let mut wrapped = String::new();
    let mut rest = app_line.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(16 * 1024);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        wrapped +=
            &serde_json::json!({"log": chunk, "stream": "stdout", "time": "2026-11-23T10:15:00.8443515Z"})
                .to_string();
        wrapped.push('\n');
        rest = tail;
    }
    assert!(
        wrapped.lines().next().unwrap().len() > 16 * 1024,
        "a real-shaped first line"
    );
    append(&log, wrapped.as_bytes());
    append(
        &log,
        br#"{"log":"{\"level\":\"warn\",\"msg\":\"after\"}\n","stream":"stderr","time":"2026-11-23T10:15:01Z"}
"#,
    );
    let records = run_once(root.path(), &data, &[]);
    #[allow(clippy::type_complexity)] // (msg, stream, level, corr, flags)
    let summary: Vec<(&str, Stream, Option<Level>, Option<&str>, &[Flag])> = records
        .iter()
        .map(|r| (r.msg.as_str(), r.stream, r.level, r.corr.as_deref(), &r.flags[..]))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "index rebuilt",
                Stream::Stdout,
                Some(Level::Info),
                Some("t-16k"),
                &[Flag::PartialMerged][..]
            ),
            ("after", Stream::Stderr, Some(Level::Warn), None, &[][..]),
        ]
    );
    assert_eq!(
        records[0].fields["shards"].as_str().map(str::len),
        Some(3 * 8000),
        "the merged line is the app's whole JSON"
    );
    assert_eq!(records[0].ts.to_string(), "2026-11-23T10:15:00.844351500Z");
}

/// Regression (hardening #7): when a container restarts, kubelet writes `1.log` beside `0.log`
/// and both start with the same banner; only one of them was read.
#[test]
fn a_restarted_containers_logs_with_the_same_banner_are_both_read() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dir = root.path().join("pods/shop_orders-7d9f8b6c4-x2k9p_uid-5/app");
    let banner = "2026-11-23T10:15:00Z stdout F {\"msg\":\"orders v2.3.1 starting\",\"level\":\"info\"}\n";
    append(
        &dir.join("0.log"),
        format!("{banner}2026-11-23T10:15:01Z stderr F {{\"msg\":\"panic: nil map\",\"level\":\"fatal\"}}\n")
            .as_bytes(),
    );
    append(
        &dir.join("1.log"),
        format!("{banner}2026-11-23T10:16:00Z stdout F {{\"msg\":\"ready\",\"level\":\"info\"}}\n")
            .as_bytes(),
    );
    let records = run_once(root.path(), &data, &[]);
    let mut msgs: Vec<&str> = records.iter().map(|r| r.msg.as_str()).collect();
    msgs.sort();
    assert_eq!(
        msgs,
        [
            "orders v2.3.1 starting",
            "orders v2.3.1 starting",
            "panic: nil map",
            "ready"
        ]
    );
    let ids: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "the two banners have distinct ids");
    // And a second run sends nothing again.
    assert_eq!(run_once(root.path(), &data, &[]), vec![]);
}

#[test]
fn a_config_typo_is_rejected_naming_the_key() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("bad.toml");
    fs::write(&config, "max_line_bytes = 4096\nscan_intervall = \"1s\"\n").unwrap();
    let output = Command::new(BIN)
        .args([
            "--once",
            "--logs",
            "/nonexistent/*.log",
            "--config",
            config.to_str().unwrap(),
        ])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown field `scan_intervall`") && stderr.contains("bad.toml"),
        "{stderr}"
    );
    // The collector's own logs are JSON lines.
    let log: serde_json::Value =
        serde_json::from_str(stderr.lines().last().unwrap()).expect("a JSON log line");
    assert_eq!(log["level"], "ERROR");
    assert_eq!(log["fields"]["message"], "corral-collector stopped");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_100_mib_line_is_cut_with_bounded_memory() {
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("pods/shop_big-x2k9p_uid/app/0.log");
    let mut content = b"2026-11-23T10:15:00Z stdout F ".to_vec();
    content.resize(content.len() + 100 * 1024 * 1024, b'z');
    content.extend_from_slice(b"\n2026-11-23T10:15:01Z stdout F after\n");
    append(&log, &content);
    drop(content);
    let child = Command::new(BIN)
        .args([
            "--once",
            "--node",
            "n",
            "--logs",
            &format!("{}/pods/*/*/*.log", root.path().display()),
        ])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut collector = ChildGuard(child);
    let pid = collector.0.id();
    let stdout = collector.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|l| serde_json::from_str::<Record>(&l.unwrap()).unwrap())
            .collect::<Vec<_>>()
    });
    // Peak resident memory (VmHWM) of the child, sampled until it exits.
    let mut peak_kib = 0u64;
    while collector.0.try_wait().unwrap().is_none() {
        peak_kib = peak_kib.max(process_peak_rss_kib(pid));
        std::thread::sleep(Duration::from_millis(2));
    }
    let records = reader.join().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].msg.len(), 1024 * 1024);
    assert_eq!(records[0].flags, vec![Flag::Truncated, Flag::Unparsed]);
    assert_eq!(records[1].msg, "after");
    assert!(peak_kib > 0, "sampled the child's memory");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB for a 100 MiB line");
}

/// Regression (hardening #8): a rotated 50 MiB gzip holding unread data is read in steps of the
/// read budget, with the memory of one step (it was decompressed whole into one batch).
#[test]
fn a_50_mib_rotated_gzip_is_read_with_bounded_memory() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dir = root.path().join("pods/shop_big-x2k9p_uid/app");
    let log = dir.join("0.log");
    append(&log, b"2026-11-23T10:15:00Z stdout F first\n");
    assert_eq!(run_once(root.path(), &data, &[]).len(), 1);
    let line = format!(
        "2026-11-23T10:15:01Z stdout F {{\"msg\":\"{}\"}}\n",
        "g".repeat(200)
    );
    let count = 50 * 1024 * 1024 / line.len();
    let rotated = dir.join("0.log.20261123-101500.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        fs::File::create(dir.join("tmp.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(b"2026-11-23T10:15:00Z stdout F first\n")
        .unwrap();
    for _ in 0..count {
        encoder.write_all(line.as_bytes()).unwrap();
    }
    encoder.finish().unwrap();
    fs::rename(dir.join("tmp.gz"), &rotated).unwrap();
    fs::remove_file(&log).unwrap();

    let child = Command::new(BIN)
        .args(["--once", "--node", "n"])
        .args(["--logs", &format!("{}/pods/*/*/*.log", root.path().display())])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut collector = ChildGuard(child);
    let pid = collector.0.id();
    let stdout = collector.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || BufReader::new(stdout).lines().count());
    let mut peak_kib = 0u64;
    while collector.0.try_wait().unwrap().is_none() {
        peak_kib = peak_kib.max(process_peak_rss_kib(pid));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(reader.join().unwrap(), count, "every line of the gzip, once");
    println!("peak RSS reading a 50 MiB rotated gzip: {} MiB", peak_kib / 1024);
    assert!(peak_kib > 0, "sampled the child's memory");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB for a 50 MiB gzip");
}

#[test]
fn running_collector_discovers_new_files_and_stops_cleanly_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let port = corral_tests::broker::free_port().unwrap();
    let child = Command::new(BIN)
        .args([
            "--node",
            "n",
            "--logs",
            &format!("{}/pods/*/*/*.log", root.path().display()),
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut collector = ChildGuard(child);
    let stdout = collector.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(serde_json::from_str::<Record>(&line.unwrap()).unwrap());
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let written = Instant::now();
    let line = b"2026-11-23T10:15:00Z stdout F {\"msg\":\"hello\"}\n";
    append(&root.path().join("pods/shop_new-x2k9p_uid/app/0.log"), line);
    let record = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the new file's line within 5 s");
    let latency = written.elapsed();
    assert_eq!(record.msg, "hello");
    assert!(
        latency < Duration::from_secs(2),
        "discovered after {latency:?} (scan interval 250 ms)"
    );

    // Operations endpoints.
    assert_eq!(
        corral_tests::http::get(port, "/healthz"),
        (200, "ok\n".to_owned())
    );
    assert_eq!(
        corral_tests::http::get(port, "/readyz"),
        (200, "ready\n".to_owned())
    );
    // Metrics are updated right after the record is written: wait (bounded) until they show it.
    let want = [
        "corral_collector_lines_read_total 1",
        "corral_collector_records_delivered_total 1",
        "corral_collector_lost_total{reason=\"truncated_before_read\"} 0",
        "corral_collector_lost_bytes_total{reason=\"deleted_before_read\"} 0",
        "corral_collector_in_flight_bytes 0",
        "corral_collector_open_files 1",
    ];
    wait_for_ok("the record in /metrics", Duration::from_secs(5), || {
        let (status, metrics) = corral_tests::http::get(port, "/metrics");
        assert_eq!(status, 200);
        let missing: Vec<&str> = want
            .iter()
            .copied()
            .filter(|w| !metrics.lines().any(|l| l == *w))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing {missing:?} in\n{metrics}"))
        }
    });

    // SIGTERM exits 0.
    collector.terminate(Duration::from_secs(30));
    let checkpoint = fs::read_to_string(data.join("collector-positions.json")).unwrap();
    let saved = format!("\"offset\":{}", line.len());
    assert!(
        checkpoint.contains(&saved),
        "position {saved} saved at shutdown: {checkpoint}"
    );
}

/// `--metadata docker` on Docker's own layout: `<root>/containers/<id>/<id>-json.log` and its
/// rotation `.1`, who wrote it read from the `config.v2.json` beside it (recorded from Docker
/// 20.10, trimmed). The rotated file was seen before its rotation, so both are read in order.
#[test]
fn docker_json_file_logs_are_stamped_from_the_containers_config() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let id = "9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d";
    let dir = root.path().join("containers").join(id);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("config.v2.json"),
        format!(
            r#"{{"State":{{"Running":true}},"ID":"{id}","Path":"app-writer","Args":["orders"],
            "Config":{{"Hostname":"9c1d2e3f4a5b","Image":"corral-system-tools:latest",
            "Labels":{{"com.docker.compose.project":"shop","com.docker.compose.service":"node1-orders",
            "resource.opentelemetry.io/service.name":"orders","org.opencontainers.image.version":"1.4.2"}}}},
            "Name":"/shop_node1-orders_1","LogPath":"{}"}}"#,
            dir.join(format!("{id}-json.log")).display()
        ),
    )
    .unwrap();
    let log = dir.join(format!("{id}-json.log"));
    let line = |seq: u32| {
        let app = format!("{{\"level\":\"info\",\"msg\":\"line {seq}\",\"corr\":\"orders-{seq}\"}}\n");
        serde_json::json!({"log": app, "stream": "stdout", "time": "2026-12-02T10:00:00.5Z"}).to_string()
            + "\n"
    };
    append(&log, line(1).as_bytes());
    let glob = format!("{}/containers/*/*-json.log", root.path().display());
    let once = |data: &Path| {
        let output = Command::new(BIN)
            .args([
                "--once",
                "--sink",
                "stdout",
                "--node",
                "node1",
                "--metadata",
                "docker",
            ])
            .args(["--logs", &glob])
            .arg("--data-dir")
            .arg(data)
            .output()
            .expect("run corral-collector");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Record>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let first = once(&data);
    // json-file's rotation: the file is renamed to .1 and a new one started.
    append(&log, line(2).as_bytes());
    fs::rename(&log, dir.join(format!("{id}-json.log.1"))).unwrap();
    append(&log, line(3).as_bytes());
    let records: Vec<Record> = first.into_iter().chain(once(&data)).collect();
    let got: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.msg.as_str(),
                r.service.as_str(),
                r.version.as_str(),
                r.instance.as_str(),
                r.namespace.as_str(),
                r.pod.as_str(),
                r.container.as_str(),
            )
        })
        .collect();
    let want = |msg| {
        (
            msg,
            "orders",
            "1.4.2",
            "shop_node1-orders_1",
            "shop",
            "shop_node1-orders_1",
            "node1-orders",
        )
    };
    assert_eq!(got, [want("line 1"), want("line 2"), want("line 3")]);
}
