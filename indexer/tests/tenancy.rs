//! Tokens scoped to namespaces, through the real `corral-indexer standalone`: a scoped reader
//! never sees another namespace's record by any endpoint or parameter (search, paging, stats,
//! tail, `q` naming `namespace`), its audit entries record the scope, and a scoped admin's holds
//! must select one of its namespaces.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use corral_tests::broker::free_port;
use corral_tests::http::{get_with, request};
use corral_tests::process::{ChildGuard, wait_until};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_corral-indexer");
const TEAM: &str = "team-token-aaaaaaaaaaaaaaaaaa";
const TEAM_ADMIN: &str = "team-admin-token-bbbbbbbbbbbb";
const AUDITOR: &str = "auditor-token-cccccccccccccccc";
const ADMIN: &str = "admin-token-dddddddddddddddddd";
/// In every line of the namespace no scoped token may see.
const SECRET_MARK: &str = "vaultmark";

fn call(port: u16, path: &str, token: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, body) = get_with(port, path, &[("Authorization", auth.as_str())]);
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

fn send(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, text) = request(port, method, path, &[("Authorization", auth.as_str())], body);
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}")),
    )
}

fn append(dir: &Path, pod_dir: &str, lines: &[String]) {
    let logs = dir.join("pods").join(pod_dir).join("app");
    fs::create_dir_all(&logs).unwrap();
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("0.log"))
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

fn cri(second: u32, json: &str) -> String {
    format!("2026-11-23T10:00:{second:02}.000000000Z stdout F {json}")
}

/// Per namespace: its pod directory and service.
const PODS: [(&str, &str); 3] = [
    ("shop_orders-6f7c9d5b4-wxzqt_uid-1", "shop"),
    ("payments-eu_api-5c8d7b9f6-q7w8z_uid-2", "payments-eu"),
    ("secret_vault-7d9f8b6c4-x2k9p_uid-3", "secret"),
];

fn setup(dir: &Path) -> std::path::PathBuf {
    for (pod, namespace) in PODS {
        let lines: Vec<String> = (0..5)
            .map(|n| {
                let mark = if namespace == "secret" { SECRET_MARK } else { "plain" };
                cri(
                    n,
                    &format!(
                        r#"{{"msg":"{mark} step {n} in {namespace}","corr":"req-shared","level":"info","ns_copy":"{namespace}"}}"#
                    ),
                )
            })
            .collect();
        append(dir, pod, &lines);
    }
    fs::write(
        dir.join("tokens.toml"),
        format!(
            "[[token]]\nname = \"team\"\ntoken = \"{TEAM}\"\nrole = \"auditor\"\nnamespaces = [\"shop\", \"payments-*\"]\n\
             [[token]]\nname = \"team-admin\"\ntoken = \"{TEAM_ADMIN}\"\nrole = \"admin\"\nnamespaces = [\"shop\"]\n\
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

/// The namespaces of a search answer's hits.
fn namespaces_of(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {body}"))
        .iter()
        .map(|h| h["namespace"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_scoped_token_sees_only_its_namespaces_by_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let port = free_port().unwrap();
    let _indexer = ChildGuard(
        Command::new(BIN)
            .arg("standalone")
            .args(["--logs", &format!("{}/pods/*/*/*.log", dir.path().display())])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CORRAL_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("every record searchable", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && call(port, "/api/v1/search?corr=req-shared", AUDITOR).1["count"] == 15
    });

    // Every parameter combination a scoped caller might try to widen its view with.
    let widening = [
        "/api/v1/search",
        "/api/v1/search?corr=req-shared",
        "/api/v1/search?namespace=secret",
        "/api/v1/search?q=namespace:secret",
        "/api/v1/search?q=namespace:secret%20OR%20namespace:shop",
        "/api/v1/search?q=vaultmark",
        "/api/v1/search?q=fields.ns_copy:secret",
        "/api/v1/search?q=*",
        "/api/v1/search?service=vault",
        "/api/v1/search?order=desc&limit=3",
        "/api/v1/search?limit=1000&since=3650d",
    ];
    for path in widening {
        let (status, body) = call(port, path, TEAM);
        assert_eq!(status, 200, "{path}: {body}");
        let seen = namespaces_of(&body);
        assert!(
            seen.iter().all(|ns| ns == "shop" || ns == "payments-eu"),
            "{path} showed {seen:?}"
        );
        assert!(!body.to_string().contains(SECRET_MARK), "{path}: {body}");
    }
    let (_, all) = call(port, "/api/v1/search?limit=1000", TEAM);
    assert_eq!(all["count"], 10, "{all}");
    let (_, only_secret) = call(port, "/api/v1/search?namespace=secret", TEAM);
    assert_eq!(only_secret["count"], 0);
    // The same queries unscoped see the third namespace: the scope, not the data, hid it.
    let (_, unscoped) = call(port, "/api/v1/search?q=namespace:secret", AUDITOR);
    assert_eq!(unscoped["count"], 5);
    // The namespace parameter narrows within the scope.
    let (_, shop) = call(port, "/api/v1/search?namespace=shop", TEAM);
    assert_eq!(namespaces_of(&shop), vec!["shop"; 5]);

    // Paging through everything with the cursor never leaves the scope.
    let mut after: Option<String> = None;
    let mut paged = 0;
    loop {
        let path = match &after {
            Some(cursor) => format!("/api/v1/search?limit=3&after={cursor}"),
            None => "/api/v1/search?limit=3".to_owned(),
        };
        let (_, page) = call(port, &path, TEAM);
        let seen = namespaces_of(&page);
        assert!(seen.iter().all(|ns| ns != "secret"), "{page}");
        paged += seen.len();
        match page["after"].as_str() {
            Some(next) if !seen.is_empty() => after = Some(next.to_owned()),
            _ => break,
        }
    }
    assert_eq!(paged, 10);

    // Stats count and group within the scope only.
    let (status, stats) = call(port, "/api/v1/stats?by=service", TEAM);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], 10, "{stats}");
    assert!(!stats.to_string().contains("vault"), "{stats}");
    let (_, stats) = call(port, "/api/v1/stats?by=level&q=namespace:secret", TEAM);
    assert_eq!(stats["total"], 0, "{stats}");

    // Tail: a scoped stream never carries the other namespace's new records.
    let mut tail = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        tail,
        "GET /api/v1/tail HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEAM}\r\n\r\n"
    )
    .unwrap();
    tail.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    wait_until("the tail's response head", Duration::from_secs(5), || {
        if let Ok(n) = tail.read(&mut buf) {
            received.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&received).contains("application/x-ndjson")
    });
    append(
        dir.path(),
        PODS[2].0,
        &[cri(
            30,
            &format!(r#"{{"msg":"{SECRET_MARK} tailed","corr":"req-tail"}}"#),
        )],
    );
    wait_until("the secret line indexed", Duration::from_secs(10), || {
        call(port, "/api/v1/search?corr=req-tail", AUDITOR).1["count"] == 1
    });
    append(
        dir.path(),
        PODS[0].0,
        &[cri(31, r#"{"msg":"shop tailed","corr":"req-tail"}"#)],
    );
    wait_until("the shop line on the tail", Duration::from_secs(10), || {
        if let Ok(n) = tail.read(&mut buf) {
            received.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&received).contains("shop tailed")
    });
    let streamed = String::from_utf8_lossy(&received).into_owned();
    assert!(!streamed.contains(SECRET_MARK), "{streamed}");
    drop(tail);

    // The audit log records the scope of each of the team's calls, and none for the others.
    let (_, audit) = call(port, "/api/v1/audit?who=team", AUDITOR);
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries.len() >= widening.len(), "{audit}");
    for entry in entries {
        assert_eq!(entry["namespaces"], json!(["shop", "payments-*"]), "{entry}");
    }
    let (_, audit) = call(port, "/api/v1/audit?who=audrey", AUDITOR);
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("namespaces").is_none()),
        "{audit}"
    );

    // Holds: a scoped admin's must select one of its namespaces.
    let hold = |selector: Value| json!({"selector": selector, "reason": "case 7"}).to_string();
    let (status, body) = send(
        port,
        "POST",
        "/api/v1/holds",
        TEAM_ADMIN,
        &hold(json!({"service": "orders"})),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("must select one of them"),
        "{body}"
    );
    let (status, _) = send(
        port,
        "POST",
        "/api/v1/holds",
        TEAM_ADMIN,
        &hold(json!({"namespace": "secret"})),
    );
    assert_eq!(status, 403);
    let (status, own) = send(
        port,
        "POST",
        "/api/v1/holds",
        TEAM_ADMIN,
        &hold(json!({"namespace": "shop"})),
    );
    assert_eq!(status, 201, "{own}");
    let (status, other) = send(
        port,
        "POST",
        "/api/v1/holds",
        ADMIN,
        &hold(json!({"namespace": "secret"})),
    );
    assert_eq!(status, 201, "{other}");
    // It lists and releases its own holds only.
    let (_, listed) = call(port, "/api/v1/holds", TEAM_ADMIN);
    let ids: Vec<&str> = listed["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own["id"].as_str().unwrap()]);
    let (_, listed) = call(port, "/api/v1/holds", ADMIN);
    assert_eq!(listed["holds"].as_array().unwrap().len(), 2);
    let other_id = other["id"].as_str().unwrap();
    let (status, body) = send(
        port,
        "DELETE",
        &format!("/api/v1/holds/{other_id}"),
        TEAM_ADMIN,
        "",
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(
        port,
        "DELETE",
        &format!("/api/v1/holds/{}", own["id"].as_str().unwrap()),
        TEAM_ADMIN,
        "",
    );
    assert_eq!(status, 200);
    let (_, listed) = call(port, "/api/v1/holds", ADMIN);
    assert_eq!(
        listed["holds"].as_array().unwrap().len(),
        1,
        "the other namespace's hold stays"
    );
}

#[test]
fn a_bad_namespaces_entry_stops_the_indexer_naming_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    fs::write(
        dir.path().join("tokens.toml"),
        format!("[[token]]\nname = \"team\"\ntoken = \"{TEAM}\"\nrole = \"reader\"\nnamespaces = []\n"),
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("standalone")
        .args(["--logs", &format!("{}/pods/*/*/*.log", dir.path().display())])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{}", free_port().unwrap())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("token 1 (\\\"team\\\"): namespaces = []")
            || stderr.contains("token 1 (\"team\"): namespaces = []"),
        "{stderr}"
    );
}
