//! Bounded work per request and honest answers, through the real `corral-indexer standalone`
//! (the hardening issue): a hostile `q` is a 400 and the process lives on; what the engine
//! refuses to run is a 400 naming `q`; searches are capped by `max_limit` and paged with
//! `after`; tails are capped and a tail whose client stops reading is closed; refused calls
//! are audited; a line stamped in the year 2200 is indexed when it was read.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use corral_tests::broker::free_port;
use corral_tests::http;
use corral_tests::process::{ChildGuard, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");

struct Standalone {
    _child: ChildGuard,
    port: u16,
    logs: PathBuf,
    data: PathBuf,
}

/// Starts standalone over `<dir>/pods/*/*/*.log` with `config` as its config file.
fn start(dir: &Path, config: &str) -> Standalone {
    let logs = dir.join("pods");
    fs::create_dir_all(&logs).unwrap();
    let config_path = dir.join("indexer.toml");
    fs::write(&config_path, config).unwrap();
    let data = dir.join("data");
    // A free port can be taken by another test's server before this one binds it: then this
    // process exits at once, and it is started again on another port.
    for _ in 0..3 {
        let port = free_port().unwrap();
        let mut child = Command::new(BIN)
            .arg("standalone")
            .args(["--logs", &format!("{}/*/*/*.log", logs.display())])
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config_path)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CORRAL_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start corral-indexer standalone");
        let mut exited = false;
        wait_until("the API", Duration::from_secs(30), || {
            exited = child.try_wait().unwrap().is_some();
            exited || TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !exited && child.try_wait().unwrap().is_none() {
            return Standalone {
                _child: ChildGuard(child),
                port,
                logs,
                data,
            };
        }
    }
    panic!("corral-indexer standalone exited at start three times");
}

fn append(root: &Path, pod: &str, lines: impl IntoIterator<Item = String>) {
    let dir = root.join(format!("shop_{pod}_0000-uid/app"));
    fs::create_dir_all(&dir).unwrap();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("0.log"))
        .unwrap();
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    file.write_all(text.as_bytes()).unwrap();
}

fn cri(n: u64, json: &str) -> String {
    format!(
        "2026-11-23T10:{:02}:{:02}.{:09}Z stdout F {json}",
        n / 60_000_000 % 60,
        n / 1_000_000 % 60,
        n % 1_000_000 * 1000
    )
}

fn get_json(port: u16, path: &str) -> (u16, Value) {
    get_json_with(port, path, &[])
}

fn get_json_with(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, body) = http::get_with(port, path, headers);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

fn count(port: u16) -> u64 {
    get_json(port, "/api/v1/stats?by=service").1["total"]
        .as_u64()
        .unwrap_or(0)
}

fn error_of(port: u16, path: &str) -> (u16, String) {
    let (status, body) = get_json(port, path);
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

fn encode(q: &str) -> String {
    form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

/// Regression: 5,000 nested parentheses in `q` overflowed the stack of tantivy's recursive
/// parser and aborted the whole indexer (API, ingest and tails).
#[test]
fn a_deeply_nested_or_long_query_is_a_400_and_the_indexer_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let indexer = start(dir.path(), "");
    append(
        &indexer.logs,
        "orders-6f7c9d5b4-wxzqt",
        [cri(1, r#"{"msg":"order placed","corr":"req-1"}"#)],
    );
    wait_until("1 record", Duration::from_secs(30), || count(indexer.port) == 1);
    let port = indexer.port;

    let nested = |depth: usize| format!("{}order{}", "(".repeat(depth), ")".repeat(depth));
    let (status, error) = error_of(port, &format!("/api/v1/search?q={}", encode(&nested(5_000))));
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("parameter q is 10005 bytes long"), "{error}");
    // Short enough, too deep: refused before tantivy's parser sees it.
    let (status, error) = error_of(port, &format!("/api/v1/search?q={}", encode(&nested(40))));
    assert_eq!(status, 400, "{error}");
    assert!(
        error.contains("parameter q nests 40 levels deep") && error.contains("indexer.max_query_depth"),
        "{error}"
    );
    let nots = format!("{}order", "NOT -".repeat(20));
    let (status, error) = error_of(port, &format!("/api/v1/stats?by=service&q={}", encode(&nots)));
    assert_eq!(
        (status, error.contains("nests 40 levels deep")),
        (400, true),
        "{error}"
    );
    let (status, error) = error_of(port, &format!("/api/v1/tail?q={}", encode(&nested(40))));
    assert_eq!(
        (status, error.contains("parameter q nests")),
        (400, true),
        "{error}"
    );
    // A hold selector goes through the same check.
    let body = serde_json::json!({"selector": {"q": nested(5_000)}, "reason": "x"}).to_string();
    let (status, answer) = http::request(port, "POST", "/api/v1/holds", &[], &body);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("q is 10005 bytes long"), "{answer}");
    // Within the limits it is answered.
    let (status, body) = get_json(port, &format!("/api/v1/search?q={}", encode(&nested(30))));
    assert_eq!((status, body["count"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(http::get(port, "/healthz"), (200, "ok\n".to_owned()));
    // Ingest lives on too.
    append(
        &indexer.logs,
        "orders-6f7c9d5b4-wxzqt",
        [cri(2, r#"{"msg":"order paid","corr":"req-1"}"#)],
    );
    wait_until("2 records", Duration::from_secs(30), || count(port) == 2);
}

/// Regression: `q=fields.user_id:>5` answered 500 with tantivy's internal text.
#[test]
fn a_query_the_engine_refuses_is_a_400_naming_q() {
    let dir = tempfile::tempdir().unwrap();
    let indexer = start(dir.path(), "");
    append(
        &indexer.logs,
        "orders-6f7c9d5b4-wxzqt",
        [cri(1, r#"{"msg":"order placed","corr":"req-1","user_id":7}"#)],
    );
    wait_until("1 record", Duration::from_secs(30), || count(indexer.port) == 1);
    for q in [
        "fields.user_id:>5",
        "fields.user_id:[1 TO 9]",
        "fields.user_id:<=9",
    ] {
        for endpoint in ["search?", "stats?by=service&"] {
            let path = format!("/api/v1/{endpoint}q={}", encode(q));
            let (status, error) = error_of(indexer.port, &path);
            assert_eq!(status, 400, "{path}: {error}");
            assert!(
                error.starts_with("parameter q: the query engine cannot run") && error.contains("Supported:"),
                "{path}: {error}"
            );
        }
    }
    let (_, metrics) = http::get(indexer.port, "/metrics");
    assert!(
        metrics.contains("corral_indexer_refused_total{endpoint=\"search\",status=\"400\"} 3"),
        "{metrics}"
    );
}

/// A search is capped at `max_limit`; past it the caller pages with `after` and sees every
/// record once, in the same order as one big search.
#[test]
fn pages_followed_with_after_return_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // Small splits, so pages cross split boundaries; records of equal ts test the tie-break.
    let indexer = start(
        dir.path(),
        "[indexer]\nmax_limit = 500\nsplit_max_docs = 300\ncommit_interval = \"100ms\"\n",
    );
    let port = indexer.port;
    // Four rounds, each committed (and sealed past 300 records) before the next.
    for round in 0..4u64 {
        for pod in ["orders-6f7c9d5b4-wxzqt", "payments-6f7c9d8b5-fghjk"] {
            append(
                &indexer.logs,
                pod,
                (round * 300..(round + 1) * 300)
                    .map(|n| cri(n / 2, &format!(r#"{{"msg":"record {n}","corr":"c{}"}}"#, n % 7))),
            );
        }
        let want = (round + 1) * 600;
        wait_until("a round of records", Duration::from_secs(60), || {
            count(port) == want
        });
    }
    let (_, metrics) = http::get(port, "/metrics");
    assert!(
        !metrics.contains("corral_indexer_splits 1\n"),
        "pages must cross splits: {metrics}"
    );
    let (status, error) = error_of(port, "/api/v1/search?limit=501");
    assert_eq!(status, 400);
    assert!(
        error.contains("parameter limit: 501 is more than one search answers (indexer.max_limit = 500)"),
        "{error}"
    );
    for (order, extra) in [("asc", ""), ("desc", "&q=record"), ("asc", "&corr=c3")] {
        // The whole answer in pages of 500 (the cap) …
        let mut paged: Vec<Value> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/search?limit=500&order={order}{extra}");
            if let Some(after) = &after {
                path.push_str(&format!("&after={}", encode(after)));
            }
            let (status, body) = get_json(port, &path);
            assert_eq!(status, 200, "{path}: {body}");
            paged.extend(body["hits"].as_array().unwrap().iter().cloned());
            match body["after"].as_str() {
                Some(next) => {
                    assert_eq!(body["truncated"], true);
                    after = Some(next.to_owned());
                }
                None => {
                    assert_eq!(body["truncated"], false, "{path}");
                    break;
                }
            }
        }
        // … and in pages of 7, which split runs of equal ts.
        let mut small: Vec<Value> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/search?limit=7&order={order}{extra}");
            if let Some(after) = &after {
                path.push_str(&format!("&after={}", encode(after)));
            }
            let (_, body) = get_json(port, &path);
            small.extend(body["hits"].as_array().unwrap().iter().cloned());
            match body["after"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        let ids = |hits: &[Value]| -> Vec<String> {
            hits.iter()
                .map(|h| h["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let want = if extra.contains("corr") {
            2 * (0..1_200).filter(|n| n % 7 == 3).count()
        } else {
            2_400
        };
        let mut unique = ids(&paged);
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), want, "{order}{extra}: every record");
        assert_eq!(paged.len(), want, "{order}{extra}: each once");
        assert_eq!(
            ids(&paged),
            ids(&small),
            "{order}{extra}: page size does not matter"
        );
        // The same order as one search could give: by (ts, id).
        let key = |h: &Value| {
            (
                h["ts"].as_str().unwrap().to_owned(),
                h["id"].as_str().unwrap().to_owned(),
            )
        };
        let mut sorted = paged.clone();
        sorted.sort_by_key(key);
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(ids(&paged), ids(&sorted), "{order}{extra}: ordered by (ts, id)");
    }
    let (status, error) = error_of(port, "/api/v1/search?after=12");
    assert_eq!(status, 400);
    assert!(
        error.contains("parameter after: expected <ts nanoseconds>:<id>"),
        "{error}"
    );
}

/// Regression: a page's top-k cut the records of its last instant arbitrarily, and records of
/// that instant with a smaller id than the cursor's were then skipped by every later page.
#[test]
fn paging_through_many_records_of_one_instant_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let indexer = start(dir.path(), "");
    let port = indexer.port;
    append(
        &indexer.logs,
        "orders-6f7c9d5b4-wxzqt",
        (0..120u64).map(|n| cri(7, &format!(r#"{{"msg":"same instant {n}"}}"#))),
    );
    wait_until("120 records", Duration::from_secs(30), || count(port) == 120);
    for order in ["asc", "desc"] {
        let mut seen: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/search?limit=7&order={order}");
            if let Some(after) = &after {
                path.push_str(&format!("&after={}", encode(after)));
            }
            let (_, body) = get_json(port, &path);
            seen.extend(
                body["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h["id"].as_str().unwrap().to_owned()),
            );
            match body["after"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(seen.len(), 120, "{order}: every record of the instant");
        assert_eq!(seen, sorted, "{order}: ordered by id within the instant");
    }
}

/// Tails are capped (429 past `max_tails`), and one whose client stops reading is closed once
/// `tail_buffer_bytes` wait for it, freeing its place.
#[test]
fn tails_are_capped_and_a_tail_whose_client_stops_reading_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let indexer = start(
        dir.path(),
        "[indexer]\nmax_tails = 2\ntail_buffer_bytes = 65536\ncommit_interval = \"100ms\"\n",
    );
    let port = indexer.port;
    let open_tail = |query: &str| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(stream, "GET /api/v1/tail{query} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = [0u8; 1024];
        let n = stream.read(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]).into_owned();
        (stream, head)
    };
    let (stalled, head) = open_tail("");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Matches nothing: it has nothing to fall behind on.
    let (_second, head) = open_tail("?service=nothing");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (status, error) = error_of(port, "/api/v1/tail");
    assert_eq!(status, 429);
    assert!(
        error.contains("too many tails: 2 are open (indexer.max_tails)"),
        "{error}"
    );
    // The first client reads nothing more while far more than its buffer (and the sockets'
    // own buffers) is written.
    let payload = "x".repeat(400);
    for batch in 0..20u64 {
        append(
            &indexer.logs,
            "orders-6f7c9d5b4-wxzqt",
            (0..5_000u64).map(|n| cri(batch * 5_000 + n, &format!(r#"{{"msg":"{payload} {n}"}}"#))),
        );
    }
    wait_until("the stalled tail closed", Duration::from_secs(120), || {
        let (_, metrics) = http::get(port, "/metrics");
        metrics.contains("corral_indexer_tails_closed_slow_total 1")
            && metrics.contains("corral_indexer_tails_open 1")
    });
    let (third, head) = open_tail("?service=nothing");
    assert!(head.starts_with("HTTP/1.1 200"), "its place was freed: {head}");
    drop((stalled, third));
    let (_, metrics) = http::get(port, "/metrics");
    assert!(
        metrics.contains("corral_indexer_refused_total{endpoint=\"tail\",status=\"429\"} 1"),
        "{metrics}"
    );
}

/// Refused calls (401, 403, 400, 429) leave an audit entry: who (or `anonymous`), the status
/// and reason, the parameters; never the presented token.
#[test]
fn refused_calls_are_audited_and_counted_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let reader = "reader-token-aaaaaaaaaaaaaaaa";
    let auditor = "auditor-token-bbbbbbbbbbbbbbbb";
    let wrong = "stolen-token-zzzzzzzzzzzzzzzzzz";
    fs::write(
        dir.path().join("tokens.toml"),
        format!(
            "[[token]]\nname = \"rita\"\ntoken = \"{reader}\"\nrole = \"reader\"\n\
             [[token]]\nname = \"audrey\"\ntoken = \"{auditor}\"\nrole = \"auditor\"\n"
        ),
    )
    .unwrap();
    let indexer = start(
        dir.path(),
        &format!(
            "[auth]\ntokens_file = \"{}\"\n",
            dir.path().join("tokens.toml").display()
        ),
    );
    let port = indexer.port;
    let bearer = |token: &str| format!("Bearer {token}");
    let as_ = |token: &str, path: &str| {
        let auth = bearer(token);
        get_json_with(port, path, &[("Authorization", auth.as_str())])
    };
    assert_eq!(get_json(port, "/api/v1/search?corr=req-1").0, 401);
    assert_eq!(as_(wrong, "/api/v1/search?corr=req-2").0, 401);
    assert_eq!(as_(reader, "/api/v1/audit?since=1h").0, 403);
    assert_eq!(as_(reader, "/api/v1/search?level=loud").0, 400);
    let (status, body) = as_(auditor, "/api/v1/audit");
    assert_eq!(status, 200, "{body}");
    let refused: Vec<(String, String, String, u64, String)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["refused"].is_null())
        .map(|e| {
            (
                e["who"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                serde_json::to_string(&e["params"]).unwrap(),
                e["refused"]["status"].as_u64().unwrap(),
                e["refused"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("anonymous", "search", r#"{"corr":"req-1"}"#, 401, "missing token"),
        ("anonymous", "search", r#"{"corr":"req-2"}"#, 401, "unknown token"),
        (
            "rita",
            "audit",
            r#"{"since":"1h"}"#,
            403,
            "may not read the audit log",
        ),
        ("rita", "search", r#"{"level":"loud"}"#, 400, "parameter level"),
    ];
    assert_eq!(refused.len(), expected.len(), "{refused:?}");
    for (got, want) in refused.iter().zip(expected) {
        assert_eq!(
            (got.0.as_str(), got.1.as_str(), got.2.as_str(), got.3),
            (want.0, want.1, want.2, want.3)
        );
        assert!(got.4.contains(want.4), "{got:?}");
    }
    // The presented token is nowhere in the audit log.
    for entry in fs::read_dir(indexer.data.join("audit")).unwrap() {
        let text = fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains(wrong) && !text.contains(reader),
            "a token in the audit log"
        );
    }
    let (_, metrics) = http::get(port, "/metrics");
    for line in [
        "corral_indexer_refused_total{endpoint=\"search\",status=\"401\"} 2",
        "corral_indexer_refused_total{endpoint=\"audit\",status=\"403\"} 1",
        "corral_indexer_refused_total{endpoint=\"search\",status=\"400\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

/// Regression: a line stamped in the year 2200 kept its split out of every retention pass and
/// inside every `since=` query. It is indexed at `observed_ts`, flagged, and keeps its own time.
#[test]
fn a_line_stamped_in_2200_is_indexed_when_it_was_read_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let indexer = start(dir.path(), "");
    let before = corral_schema::Timestamp::now();
    append(
        &indexer.logs,
        "orders-6f7c9d5b4-wxzqt",
        [
            cri(
                1,
                r#"{"ts":"2200-01-01T00:00:00Z","msg":"from the future","corr":"req-1"}"#,
            ),
            // The runtime's clock was never set, and the line has no time of its own.
            format!(
                "1970-01-01T00:00:00.000000000Z stdout F {}",
                r#"{"msg":"from a clock never set","corr":"req-1"}"#
            ),
            cri(3, r#"{"msg":"on time","corr":"req-1"}"#),
        ],
    );
    wait_until("3 records", Duration::from_secs(30), || count(indexer.port) == 3);
    let (_, recent) = get_json(indexer.port, "/api/v1/search?since=1h&corr=req-1");
    assert_eq!(recent["count"], 2, "both adjusted records are recent: {recent}");
    let (_, body) = get_json(indexer.port, "/api/v1/search?corr=req-1");
    let hits = body["hits"].as_array().unwrap();
    let by_msg = |msg: &str| {
        hits.iter()
            .find(|h| h["msg"] == msg)
            .unwrap_or_else(|| panic!("{msg} in {body}"))
    };
    for (msg, original) in [
        ("from the future", "2200-01-01T00:00:00.000000000Z"),
        ("from a clock never set", "1970-01-01T00:00:00.000000000Z"),
    ] {
        let hit = by_msg(msg);
        assert_eq!(hit["flags"], serde_json::json!(["ts_adjusted"]), "{hit}");
        assert_eq!(hit["original_ts"], original, "{hit}");
        assert_eq!(hit["ts"], hit["observed_ts"], "{hit}");
        let ts = corral_schema::Timestamp::parse(hit["ts"].as_str().unwrap()).unwrap();
        assert!(ts >= before, "{hit}");
    }
    // The runtime's own timestamp (2026-11-23) is plausible: kept.
    let on_time = by_msg("on time");
    assert!(
        on_time.get("flags").is_none() && on_time.get("original_ts").is_none(),
        "{on_time}"
    );
    let (_, future) = get_json(indexer.port, "/api/v1/search?since=2100-01-01T00:00:00Z");
    assert_eq!(future["count"], 0, "nothing is indexed in the future: {future}");
}
