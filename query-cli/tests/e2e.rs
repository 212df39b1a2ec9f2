//! The real `logq` binary against real `corral-indexer standalone` processes: exact records
//! with `-o jsonl`, exit codes 0/1/2, two endpoints merged, a dead endpoint tolerated, and the
//! TUI driven in tmux.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use corral_schema::Record;
use corral_tests::broker::free_port;
use corral_tests::http;
use corral_tests::process::{ChildGuard, wait_for_ok, wait_until, workspace_binary};

const LOGQ: &str = env!("CARGO_BIN_EXE_logq");

fn cri(ms: u32, json: &str) -> String {
    format!("2026-11-23T10:00:00.{ms:03}000000Z stdout F {json}\n")
}

fn write_pod(root: &Path, pod: &str, lines: &[String]) {
    let dir = root.join(format!("shop_{pod}_uid-{pod}/app"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("0.log"), lines.concat()).unwrap();
}

struct Indexer {
    _child: ChildGuard,
    url: String,
    port: u16,
}

fn start_indexer(globs: &[String], data_dir: &Path, name: &str, expected: usize) -> Indexer {
    start_indexer_with(globs, data_dir, name, expected, None)
}

/// As [`start_indexer`], with a config file.
fn start_indexer_with(
    globs: &[String],
    data_dir: &Path,
    name: &str,
    expected: usize,
    config: Option<&Path>,
) -> Indexer {
    let port = free_port().unwrap();
    let mut command = Command::new(workspace_binary("corral-indexer"));
    command.arg("standalone");
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    for glob in globs {
        command.args(["--logs", glob]);
    }
    let child = command
        .arg("--data-dir")
        .arg(data_dir.join(format!("data-{name}")))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start corral-indexer");
    let indexer = Indexer {
        _child: ChildGuard(child),
        url: format!("http://127.0.0.1:{port}"),
        port,
    };
    wait_until(
        &format!("indexer {name} to hold {expected} records"),
        Duration::from_secs(30),
        || {
            TcpStream::connect(("127.0.0.1", port)).is_ok() && {
                let (_, body) = http::get(port, "/api/v1/stats?by=service");
                let total = serde_json::from_str::<serde_json::Value>(&body).unwrap()["total"].as_u64();
                total == Some(expected as u64)
            }
        },
    );
    indexer
}

fn logq(args: &[&str]) -> Output {
    Command::new(LOGQ)
        .args(args)
        .env_remove("LOGQ_ENDPOINT")
        .env_remove("LOGQ_TOKEN")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("run logq")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Two indexers: A holds gateway and orders, B holds orders (the same file, so the same ids:
/// the merge must show them once) and payments.
fn fleet(dir: &Path) -> (Indexer, Indexer) {
    let gateway = [
        cri(1, r#"{"level":"info","msg":"GET /checkout","corr":"req-1"}"#),
        cri(50, r#"{"level":"info","msg":"GET /health","corr":"req-2"}"#),
    ];
    let orders = [cri(
        2,
        r#"{"level":"warn","msg":"slow stock check","corr":"req-1","user":{"id":42}}"#,
    )];
    let payments = [cri(
        3,
        r#"{"level":"error","msg":"card declined","corr":"req-1"}"#,
    )];
    let a = dir.join("a");
    let b = dir.join("b");
    write_pod(&a, "gateway-7d9f8b6c4-x2k9p", &gateway);
    write_pod(&a, "orders-6f7c9d5b4-wxzqt", &orders);
    write_pod(&b, "payments-6f7c9d8b5-fghjk", &payments);
    let orders_glob = format!("{}/shop_orders-*/*/*.log", a.display());
    (
        start_indexer(&[format!("{}/*/*/*.log", a.display())], dir, "a", 3),
        start_indexer(&[format!("{}/*/*/*.log", b.display()), orders_glob], dir, "b", 2),
    )
}

fn search_raw(indexer: &Indexer, query: &str) -> Vec<String> {
    let (status, body) = http::get(indexer.port, &format!("/api/v1/search?{query}"));
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    // The raw text of each hit as the API sent it.
    let hits = body.split_once("\"hits\":[").unwrap().1;
    let count = value["hits"].as_array().unwrap().len();
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in hits.char_indices() {
        if out.len() == count {
            break;
        }
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    out.push(hits[start..=i].to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn jsonl_text_stats_and_exit_codes_across_two_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = fleet(dir.path());

    // Two endpoints merged: every service of the request once, in time order, byte for byte.
    let output = logq(&[
        "--corr",
        "req-1",
        "-o",
        "jsonl",
        "--endpoint",
        &a.url,
        "--endpoint",
        &b.url,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut expected = search_raw(&a, "corr=req-1");
    expected.extend(search_raw(&b, "corr=req-1"));
    let mut by_id: Vec<(Record, String)> = expected
        .into_iter()
        .map(|raw| (serde_json::from_str::<Record>(&raw).unwrap(), raw))
        .collect();
    by_id.sort_by(|x, y| x.0.ts.cmp(&y.0.ts).then(x.0.id.cmp(&y.0.id)));
    by_id.dedup_by(|x, y| x.0.id == y.0.id);
    let want: String = by_id.iter().map(|(_, raw)| format!("{raw}\n")).collect();
    assert_eq!(stdout(&output), want);
    let services: Vec<String> = by_id.iter().map(|(r, _)| r.service.clone()).collect();
    assert_eq!(services, vec!["gateway", "orders", "payments"]);

    // Text lines.
    let output = logq(&["--corr", "req-1", "--endpoint", &a.url, "--endpoint", &b.url]);
    assert_eq!(output.status.code(), Some(0));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[2].starts_with(
            "2026-11-23T10:00:00.003Z payments@unknown payments-6f7c9d8b5-fghjk/app ERROR card declined"
        ),
        "{lines:?}"
    );

    // logfmt and search.
    let output = logq(&[
        "search",
        "fields.user.id:42",
        "-o",
        "logfmt",
        "--endpoint",
        &a.url,
    ]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).contains("msg=\"slow stock check\" fields.user.id=42"),
        "{}",
        stdout(&output)
    );

    // Nothing matched: exit 1, nothing printed.
    let output = logq(&["--corr", "no-such-request", "-o", "jsonl", "--endpoint", &a.url]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");

    // A dead endpoint is named, the others still answer.
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    let output = logq(&[
        "--corr",
        "req-1",
        "-o",
        "jsonl",
        "--endpoint",
        &a.url,
        "--endpoint",
        &dead,
    ]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().count(), 2);
    assert!(
        stderr(&output).contains(&format!("logq: {dead}: cannot connect")),
        "{}",
        stderr(&output)
    );

    // Only dead endpoints: exit 2, one line naming it.
    let output = logq(&["--corr", "req-1", "--endpoint", &dead]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));

    // The server's 400 reaches the user with the endpoint named.
    let output = logq(&["search", "fields.user.id:(", "--endpoint", &a.url]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!("logq: {}: HTTP 400: parameter q: cannot parse", a.url)),
        "{}",
        stderr(&output)
    );
    // A bad flag: exit 2 before any request.
    let output = logq(&["--level", "loud", "--corr", "x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("expected one of trace"));
    let output = logq(&["--endpoint", &a.url]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("nothing to query"));

    // Stats summed across endpoints (orders is in both indexers: 1 + 1).
    let output = logq(&[
        "stats",
        "--by",
        "service",
        "--endpoint",
        &a.url,
        "--endpoint",
        &b.url,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec![
            "service       count   errors     rate",
            "gateway           2        0    0.00%",
            "orders            2        0    0.00%",
            "payments          1        1  100.00%",
            "total             5",
        ]
    );
}

/// A tmux server on its own socket, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "logq"])
    }

    fn wait_for(&self, what: &str, timeout: Duration) -> String {
        wait_for_ok(&format!("{what:?} on the screen"), timeout, || {
            let screen = self.screen();
            if screen.contains(what) {
                Ok(screen)
            } else {
                Err(format!("screen:\n{screen}"))
            }
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("run-logq.sh");
    let mut file = fs::File::create(&path).unwrap();
    writeln!(file, "#!/bin/sh\n{body}").unwrap();
    drop(file);
    Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    path
}

#[test]
fn the_tui_shows_the_request_its_json_and_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = fleet(dir.path());
    let script = script(
        dir.path(),
        &format!(
            "XDG_CONFIG_HOME=/nonexistent '{LOGQ}' --corr req-1 --endpoint {} --endpoint {}\necho \"logq exited $?\"\nsleep 30",
            a.url, b.url
        ),
    );
    let tmux = Tmux {
        socket: format!("corral-test-{}", std::process::id()),
    };
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "logq",
        "-x",
        "100",
        "-y",
        "30",
        &script.display().to_string(),
    ]);
    let screen = tmux.wait_for("card declined", Duration::from_secs(15));
    for expected in [
        "gateway@unknown",
        "orders@unknown",
        "payments@unknown",
        "3 records",
        "q:quit",
    ] {
        assert!(screen.contains(expected), "{expected:?} missing from:\n{screen}");
    }
    // Enter on the first record shows its JSON.
    tmux.run(&["send-keys", "-t", "logq", "Enter"]);
    let screen = tmux.wait_for("\"msg\": \"GET /checkout\"", Duration::from_secs(5));
    assert!(screen.contains("record (Enter/Esc closes)"), "{screen}");
    // The waterfall.
    tmux.run(&["send-keys", "-t", "logq", "w"]);
    tmux.wait_for("waterfall (w closes)", Duration::from_secs(5));
    // q exits 0 and the shell's screen is back: no trace of the TUI.
    tmux.run(&["send-keys", "-t", "logq", "q"]);
    let screen = tmux.wait_for("logq exited 0", Duration::from_secs(5));
    assert!(
        !screen.contains("q:quit"),
        "the TUI is still on screen:\n{screen}"
    );
    assert!(!screen.contains("waterfall"), "{screen}");
}

/// What an endpoint did not search (here: a reader's tier limit) is printed on stderr beside the
/// results, so nobody mistakes a partial answer for the whole history.
#[test]
fn a_search_prints_what_the_endpoint_did_not_search() {
    const READER: &str = "reader-token-cccccccccccccccc";
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    write_pod(
        &logs,
        "gateway-7d9f8b6c4-x2k9p",
        &[cri(1, r#"{"level":"info","msg":"GET /checkout","corr":"req-1"}"#)],
    );
    let tokens = dir.path().join("tokens.toml");
    fs::write(
        &tokens,
        format!("[[token]]\nname = \"rita\"\ntoken = \"{READER}\"\nrole = \"reader\"\n"),
    )
    .unwrap();
    let config = dir.path().join("indexer.toml");
    fs::write(
        &config,
        format!("[auth]\ntokens_file = {:?}\n", tokens.display().to_string()),
    )
    .unwrap();
    let port = free_port().unwrap();
    let child = Command::new(workspace_binary("corral-indexer"))
        .arg("standalone")
        .args(["--logs", &format!("{}/*/*/*.log", logs.display())])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&config)
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start corral-indexer");
    let _indexer = ChildGuard(child);
    let auth = format!("Bearer {READER}");
    wait_until("the record to be indexed", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && {
            let (_, body) = http::get_with(port, "/api/v1/stats?by=service", &[("Authorization", &auth)]);
            serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v["total"] == 1)
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let output = logq(&[
        "search",
        "checkout",
        "-o",
        "jsonl",
        "--token",
        READER,
        "--endpoint",
        &url,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 1);
    assert_eq!(
        stderr(&output),
        format!("logq: {url}: role reader searches the hot tier only: older tiers were not searched\n")
    );
}

/// Accepts connections and never answers (`Stalled::Headers` sends a 200 head of a streamed
/// body and then nothing): what a wedged indexer or a half-open proxy looks like.
struct Silent {
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Stalled {
    Nothing,
    Headers,
}

impl Silent {
    fn start(stalled: Stalled) -> Silent {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            if stalled == Stalled::Headers {
                                stream.set_nonblocking(false).unwrap();
                                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                                let mut request = [0u8; 4096];
                                let _ = stream.read(&mut request);
                                let _ = stream.write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n",
                                );
                            }
                            held.push(stream);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Silent {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Regression: an endpoint that accepted the connection and never answered kept
/// `logq --corr …` waiting forever (still waiting after 90 s).
#[test]
fn a_silent_endpoint_is_named_and_given_up_on_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _b) = fleet(dir.path());
    let silent = Silent::start(Stalled::Nothing);

    // The other endpoint's records are still shown; the silent one is named.
    let started = Instant::now();
    let output = logq(&[
        "--corr",
        "req-1",
        "-o",
        "jsonl",
        "--timeout",
        "2s",
        "--endpoint",
        &a.url,
        "--endpoint",
        &silent.url,
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 2);
    assert!(
        stderr(&output).contains(&format!("logq: {}: no answer within 2s (--timeout)", silent.url)),
        "{}",
        stderr(&output)
    );
    // None answered: exit 2. The timeout may come from the config file.
    let config = dir.path().join("logq.toml");
    fs::write(&config, "timeout = \"1s\"\n").unwrap();
    let started = Instant::now();
    let output = logq(&[
        "--corr",
        "req-1",
        "--config",
        config.to_str().unwrap(),
        "--endpoint",
        &silent.url,
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no answer within 1s"),
        "{}",
        stderr(&output)
    );
    let output = logq(&[
        "stats",
        "--by",
        "service",
        "--timeout",
        "1s",
        "--endpoint",
        &silent.url,
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    // A tail that never answers, and one whose stream stops sending, end the same way.
    for (stalled, what) in [(Stalled::Nothing, "silent"), (Stalled::Headers, "stalled stream")] {
        let server = Silent::start(stalled);
        let started = Instant::now();
        let output = logq(&[
            "tail",
            "-o",
            "jsonl",
            "--timeout",
            "1s",
            "--endpoint",
            &server.url,
        ]);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert_eq!(output.status.code(), Some(2), "{what}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("sent nothing for 1s"),
            "{what}: {}",
            stderr(&output)
        );
    }
    // A live tail is kept alive by the indexer's empty lines (every 5 s) past the timeout.
    let mut tail = ChildGuard(
        Command::new(LOGQ)
            .args(["tail", "-o", "jsonl", "--timeout", "6s", "--endpoint", &a.url])
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Time itself is what is tested: more than twice the timeout passes without a record.
    std::thread::sleep(Duration::from_secs(13));
    assert!(
        tail.0.try_wait().unwrap().is_none(),
        "a quiet but live tail was given up on"
    );
}

/// A search larger than the indexers' page (`max_limit`) is paged with `after` by logq itself:
/// every record once, in order, also merged from two indexers holding the same records.
#[test]
fn an_export_past_the_page_size_is_paged_and_returns_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("pods");
    for pod in ["orders-6f7c9d5b4-wxzqt", "payments-6f7c9d8b5-fghjk"] {
        let lines: Vec<String> = (0..750u32)
            .map(|n| {
                format!(
                    "2026-11-23T10:00:{:02}.{:06}000Z stdout F {{\"msg\":\"record {n}\",\"corr\":\"req-{}\"}}\n",
                    n / 100,
                    n % 100 / 2,
                    n % 3
                )
            })
            .collect();
        write_pod(&logs, pod, &lines);
    }
    let config = dir.path().join("indexer.toml");
    fs::write(&config, "[indexer]\nmax_limit = 100\nsplit_max_docs = 400\n").unwrap();
    let glob = format!("{}/*/*/*.log", logs.display());
    let a = start_indexer_with(std::slice::from_ref(&glob), dir.path(), "a", 1_500, Some(&config));
    let b = start_indexer_with(std::slice::from_ref(&glob), dir.path(), "b", 1_500, Some(&config));
    let ids_of = |output: &Output| -> Vec<(String, String)> {
        stdout(output)
            .lines()
            .map(|line| {
                let record: Record = serde_json::from_str(line).unwrap();
                (record.ts.to_string(), record.id)
            })
            .collect()
    };
    for endpoints in [vec![&a.url], vec![&a.url, &b.url]] {
        let mut args = vec!["search", "record", "--limit", "5000", "-o", "jsonl"];
        for url in &endpoints {
            args.extend(["--endpoint", url.as_str()]);
        }
        let output = logq(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let got = ids_of(&output);
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(got.len(), 1_500, "{} endpoint(s): every record", endpoints.len());
        assert_eq!(
            got,
            sorted,
            "{} endpoint(s): each once, in (ts, id) order",
            endpoints.len()
        );
        assert!(
            !stderr(&output).contains("more records matched"),
            "{}",
            stderr(&output)
        );
    }
    // --limit below the total: cut there, and said so.
    let output = logq(&[
        "search",
        "record",
        "--limit",
        "250",
        "-o",
        "jsonl",
        "--endpoint",
        &a.url,
        "--endpoint",
        &b.url,
    ]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(ids_of(&output).len(), 250);
    assert!(
        stderr(&output).contains("more records matched than --limit 250"),
        "{}",
        stderr(&output)
    );
    // The TUI's fetch pages too (`--corr` of 500 records, past the page of 100).
    let output = logq(&[
        "--corr",
        "req-1",
        "--limit",
        "5000",
        "-o",
        "jsonl",
        "--endpoint",
        &a.url,
    ]);
    assert_eq!(ids_of(&output).len(), 500);
}

#[test]
fn trace_finds_a_w3c_traced_request_and_labels_its_spans() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    write_pod(
        &logs,
        "gateway-7d9f8b6c4-x2k9p",
        &[
            cri(
                1,
                &format!(
                    r#"{{"level":"info","msg":"GET /checkout","traceparent":"00-{TRACE}-00f067aa0ba902b7-01"}}"#
                ),
            ),
            cri(9, r#"{"level":"info","msg":"untraced"}"#),
        ],
    );
    write_pod(
        &logs,
        "payments-6f7c9d8b5-fghjk",
        &[cri(
            4,
            &format!(
                r#"{{"level":"error","msg":"card declined","trace_id":"{TRACE}","span_id":"b7ad6b7169203331"}}"#
            ),
        )],
    );
    let indexer = start_indexer(&[format!("{}/*/*/*.log", logs.display())], dir.path(), "t", 3);

    // `--trace` is `--corr`: both services' records, in time order, each labelled by its span.
    let output = logq(&["--trace", TRACE, "--endpoint", &indexer.url]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("gateway") && lines[0].ends_with("[00f067aa0ba902b7] GET /checkout"),
        "{text}"
    );
    assert!(
        lines[1].contains("payments") && lines[1].ends_with("[b7ad6b7169203331] card declined"),
        "{text}"
    );
    let output = logq(&["--trace", TRACE, "-o", "jsonl", "--endpoint", &indexer.url]);
    let records: Vec<Record> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<(Option<&str>, Option<&str>)> = records
        .iter()
        .map(|r| (r.corr.as_deref(), r.span.as_deref()))
        .collect();
    assert_eq!(
        ids,
        [
            (Some(TRACE), Some("00f067aa0ba902b7")),
            (Some(TRACE), Some("b7ad6b7169203331"))
        ]
    );
    // The traceparent became the corr and span: it is no field of the record.
    assert!(records[0].fields.get("traceparent").is_none(), "{:?}", records[0]);
    // The span is a keyword field of the index.
    assert_eq!(search_raw(&indexer, "q=span:b7ad6b7169203331").len(), 1);
}
