//! Tokens, roles and the audit log through the real `corral-indexer standalone`: 401 and 403,
//! a reader told it saw the hot tier only, every call recorded in a hash-chained audit log, and
//! an open API refused on a non-loopback address.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use corral_indexer::audit::{AUDIT_DIR, verify_chain};
use corral_tests::broker::free_port;
use corral_tests::http::{get_with, request};
use corral_tests::process::{ChildGuard, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");
const READER: &str = "reader-token-aaaaaaaaaaaaaaaa";
const AUDITOR: &str = "auditor-token-bbbbbbbbbbbbbbbb";
const ADMIN: &str = "admin-token-cccccccccccccccccc";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn call(port: u16, path: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, body) = get_with(port, path, &headers);
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

fn setup(dir: &Path) -> std::path::PathBuf {
    let logs = dir.join("pods/shop_orders-6f7c9d5b4-wxzqt_uid/app");
    fs::create_dir_all(&logs).unwrap();
    fs::write(
        logs.join("0.log"),
        "2026-11-23T10:00:00.001000000Z stdout F {\"msg\":\"order placed\",\"corr\":\"req-1\",\"level\":\"info\"}\n\
         2026-11-23T10:00:00.002000000Z stdout F {\"msg\":\"order paid\",\"corr\":\"req-1\",\"level\":\"info\"}\n",
    )
    .unwrap();
    fs::write(
        dir.join("tokens.toml"),
        format!(
            "[[token]]\nname = \"rita\"\ntoken = \"{READER}\"\nrole = \"reader\"\n\
             [[token]]\nname = \"audrey\"\ntoken = \"{AUDITOR}\"\nrole = \"auditor\"\n\
             [[token]]\nname = \"ada\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n"
        ),
    )
    .unwrap();
    let config = dir.join("indexer.toml");
    fs::write(
        &config,
        format!(
            "[auth]\ntokens_file = \"{}\"\n",
            dir.join("tokens.toml").display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn tokens_roles_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let port = free_port().unwrap();
    let data = dir.path().join("data");
    let _indexer = ChildGuard(
        Command::new(BIN)
            .arg("standalone")
            .args(["--logs", &format!("{}/pods/*/*/*.log", dir.path().display())])
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CORRAL_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(
        "the records to become searchable",
        Duration::from_secs(30),
        || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && call(port, "/api/v1/search?corr=req-1", Some(AUDITOR)).1["count"] == 2
        },
    );

    // 401 without or with an unknown token, as JSON errors.
    let (status, body) = call(port, "/api/v1/search?corr=req-1", None);
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "missing token: send Authorization: Bearer <token>")
    );
    let (status, body) = call(port, "/api/v1/stats?by=service", Some("not-a-token-at-all-0000"));
    assert_eq!((status, body["error"].as_str().unwrap()), (401, "unknown token"));
    // A reader searches the hot tier only and is told so.
    let (status, body) = call(port, "/api/v1/search?corr=req-1", Some(READER));
    assert_eq!(status, 200);
    assert_eq!(body["count"], 2);
    assert_eq!(body["tiers"], serde_json::json!(["hot"]));
    assert!(
        body["notice"]
            .as_str()
            .unwrap()
            .contains("older tiers were not searched"),
        "{body}"
    );
    // 403: a reader may not read the audit log.
    let (status, body) = call(port, "/api/v1/audit", Some(READER));
    assert_eq!(status, 403);
    assert_eq!(
        body["error"],
        "rita (role reader) may not read the audit log: it needs role auditor or above"
    );
    // An auditor's search has no notice; stats work.
    let (_, body) = call(port, "/api/v1/search?corr=req-1&limit=1", Some(AUDITOR));
    assert_eq!(body["count"], 1);
    assert!(body.get("notice").is_none());
    let (status, _) = call(port, "/api/v1/stats?by=level", Some(READER));
    assert_eq!(status, 200);

    // The audit log has every call, in order, with who and what; refused ones say so.
    let (status, body) = call(port, "/api/v1/audit?who=rita", Some(AUDITOR));
    assert_eq!(status, 200, "{body}");
    let (refused, entries): (Vec<&Value>, Vec<&Value>) = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|e| !e["refused"].is_null());
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["action"], "audit");
    assert_eq!(refused[0]["refused"]["status"], 403);
    let summary: Vec<(String, String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["role"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("search".to_string(), "reader".to_string(), 2),
            ("stats".to_string(), "reader".to_string(), 2),
        ]
    );
    assert_eq!(entries[0]["params"], serde_json::json!({"corr": "req-1"}));
    assert_eq!(entries[0]["tiers"], serde_json::json!(["hot"]));
    let (_, all) = call(port, "/api/v1/audit", Some(AUDITOR));
    let actions: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["refused"].is_null())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // After the polling searches: rita's search, audrey's search, rita's stats, audrey's first
    // audit read (a read is recorded after it is taken, so it does not list itself). Refused
    // calls (401, 403, 400) are there too, marked `refused`; left out here.
    assert_eq!(
        actions[actions.len() - 4..],
        ["search", "search", "stats", "audit"]
    );
    assert!(
        actions[..actions.len() - 4].iter().all(|a| *a == "search"),
        "{actions:?}"
    );
    let (status, body) = call(port, "/api/v1/audit?since=yesterday", Some(AUDITOR));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().starts_with("parameter since"));
    // Legal holds: admins place and release them, auditors list them, readers may not.
    let hold = r#"{"selector":{"corr":"req-1","since":"2026-01-01T00:00:00Z"},"reason":"case 42"}"#;
    let send = |method: &str, path: &str, token: &str, body: &str| {
        let auth = bearer(token);
        let (status, text) = request(port, method, path, &[("Authorization", &auth)], body);
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{text}: {e}")),
        )
    };
    let (status, body) = send("POST", "/api/v1/holds", READER, hold);
    assert_eq!(status, 403, "{body}");
    let (status, body) = send("POST", "/api/v1/holds", ADMIN, hold);
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    for (bad, want) in [
        (r#"{"selector":{},"reason":"x"}"#, "the selector is empty"),
        (
            r#"{"selector":{"q":"fields.a:("},"reason":"x"}"#,
            "invalid hold: selector q: cannot parse",
        ),
        ("not json", "invalid hold"),
    ] {
        let (status, body) = send("POST", "/api/v1/holds", ADMIN, bad);
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].as_str().unwrap().contains(want), "{bad}: {body}");
    }
    let (status, body) = send("GET", "/api/v1/holds", AUDITOR, "");
    assert_eq!(status, 200);
    assert_eq!(body["holds"][0]["id"], id.as_str());
    assert_eq!(body["holds"][0]["created_by"], "ada");
    assert_eq!(body["holds"][0]["reason"], "case 42");
    let (status, _) = send("DELETE", &format!("/api/v1/holds/{id}"), AUDITOR, "");
    assert_eq!(status, 403);
    let (status, body) = send("DELETE", &format!("/api/v1/holds/{id}"), ADMIN, "");
    assert_eq!((status, body["released"].as_str()), (200, Some(id.as_str())));
    let (status, body) = send("DELETE", &format!("/api/v1/holds/{id}"), ADMIN, "");
    assert_eq!(status, 404, "{body}");
    let (_, body) = call(port, "/api/v1/audit?who=ada", Some(AUDITOR));
    let actions: Vec<(&str, bool)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), !e["refused"].is_null()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("hold.create", false),
            ("hold.create", true),
            ("hold.create", true),
            ("hold.create", true),
            ("hold.release", false)
        ]
    );
    assert_eq!(body["entries"][0]["params"]["reason"], "case 42");
    assert_eq!(body["entries"][0]["params"]["id"], id.as_str());

    // logq carries the token (`--token` or LOGQ_TOKEN), and says what the server refused.
    let logq = corral_tests::process::workspace_binary("logq");
    let endpoint = format!("http://127.0.0.1:{port}");
    let run = |token: Option<&str>| {
        let mut command = Command::new(&logq);
        command
            .args(["--corr", "req-1", "-o", "jsonl", "--endpoint", &endpoint])
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env_remove("LOGQ_TOKEN");
        if let Some(token) = token {
            command.env("LOGQ_TOKEN", token);
        }
        command.output().unwrap()
    };
    let with = run(Some(READER));
    assert_eq!(with.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&with.stdout).lines().count(), 2);
    let without = run(None);
    assert_eq!(without.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("HTTP 401: missing token"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
    // The chain verifies.
    let entries_on_disk = verify_chain(&data.join(AUDIT_DIR)).unwrap();
    assert!(entries_on_disk >= 6, "{entries_on_disk}");
}

#[test]
fn an_open_api_is_refused_on_a_public_address_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("pods")).unwrap();
    let port = free_port().unwrap();
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .arg("standalone")
            .args(["--logs", &format!("{}/pods/*.log", dir.path().display())])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("0.0.0.0:{port}")])
            .args(extra)
            .env("CORRAL_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let refused = run(&[]).wait_with_output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refusing to serve an open API on 0.0.0.0:") && stderr.contains("--insecure-open"),
        "{stderr}"
    );
    let _forced = ChildGuard(run(&["--insecure-open"]));
    wait_until("--insecure-open to serve", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (status, _) = call(port, "/api/v1/stats?by=service", None);
    assert_eq!(status, 200);
}

/// Replaces every audit file a write could go to (the existing ones, today's and tomorrow's)
/// by a directory, so appending fails even for root; returns how to put them back.
fn break_audit_log(audit: &Path) -> impl FnOnce() + use<> {
    let now = corral_schema::Timestamp::now();
    let day = |ts: corral_schema::Timestamp| format!("audit-{}.jsonl", &ts.to_string()[..10]);
    let mut names: Vec<String> = fs::read_dir(audit)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.push(day(now));
    names.push(day(now.saturating_add_nanos(86_400_000_000_000)));
    names.sort();
    names.dedup();
    let mut moved = Vec::new();
    for name in &names {
        let path = audit.join(name);
        let aside = audit.join(format!("{name}.aside"));
        if path.try_exists().unwrap() {
            fs::rename(&path, &aside).unwrap();
            moved.push((path.clone(), aside));
        }
        fs::create_dir(&path).unwrap();
    }
    let paths: Vec<_> = names.iter().map(|n| audit.join(n)).collect();
    move || {
        for path in paths {
            fs::remove_dir(&path).unwrap();
        }
        for (path, aside) in moved {
            fs::rename(aside, path).unwrap();
        }
    }
}

/// A hold change the audit log cannot record is refused with a 500 and changes nothing: a
/// release does not take effect (it did, unaudited, when holds were saved first), nor does a
/// new hold.
#[test]
fn a_hold_change_that_cannot_be_audited_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("pods")).unwrap();
    let port = free_port().unwrap();
    let data = dir.path().join("data");
    let _indexer = ChildGuard(
        Command::new(BIN)
            .arg("standalone")
            .args(["--logs", &format!("{}/pods/*.log", dir.path().display())])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CORRAL_LOG", "off")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the API to come up", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let send = |method: &str, path: &str, body: &str| {
        let (status, text) = request(port, method, path, &[], body);
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{text}: {e}")),
        )
    };
    let (status, body) = send(
        "POST",
        "/api/v1/holds",
        r#"{"selector":{"corr":"req-1"},"reason":"case 42"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let holds_file = data.join("holds.json");
    let saved = fs::read(&holds_file).unwrap();

    let restore = break_audit_log(&data.join(AUDIT_DIR));
    let (status, body) = send("DELETE", &format!("/api/v1/holds/{id}"), "");
    assert_eq!(status, 500, "{body}");
    let refused = body["error"].as_str().unwrap().to_owned();
    let (status, body) = send(
        "POST",
        "/api/v1/holds",
        r#"{"selector":{"service":"payments"},"reason":"audit 7"}"#,
    );
    assert_eq!(status, 500, "{body}");
    assert_eq!(fs::read(&holds_file).unwrap(), saved, "holds.json changed");
    restore();
    assert!(refused.contains("could not be audited"), "{refused}");

    // The hold is still in force, alone; the log records neither refused change.
    let (status, body) = send("GET", "/api/v1/holds", "");
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
    let (_, body) = send("GET", "/api/v1/audit", "");
    let actions: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["hold.create", "hold.list"]);
    verify_chain(&data.join(AUDIT_DIR)).unwrap();
    // With the log writable again the release goes through, audited.
    let (status, _) = send("DELETE", &format!("/api/v1/holds/{id}"), "");
    assert_eq!(status, 200);
}
