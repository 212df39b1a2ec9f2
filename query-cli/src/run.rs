//! What each command does, and its exit status: 0 when something matched, 1 when nothing did,
//! 2 on error (like grep), 3 when something matched but an indexer said its answer is
//! incomplete (a peer or split it could not search, printed on stderr).

use std::io::{IsTerminal, Write};

use corral_schema::api::DEFAULT_LIMIT;
use tokio::sync::mpsc;

use crate::cli::{Args, Command, ConfigFile, Output, resolve_endpoints, resolve_timeouts};
use corral_schema::api::ApiQuery;

use crate::client::{Client, EndpointError, TailEvent};
use crate::model::{Hit, error_rate, errors, sum_stats};
use crate::output::{jsonl_line, logfmt_line, text_line};
use crate::tui::{self, Query};

/// Something matched.
pub const MATCHED: i32 = 0;
/// Nothing matched.
pub const NO_MATCH: i32 = 1;
/// Bad flags, unreachable endpoints, HTTP errors.
pub const ERROR: i32 = 2;
/// Something matched, but part of the cluster could not be searched.
pub const INCOMPLETE: i32 = 3;

/// Says on stderr what was not searched; true when something was not.
fn report_missing(missing: &[corral_schema::api::Missing]) -> bool {
    for m in missing {
        eprintln!("logq: incomplete answer: {m}");
    }
    !missing.is_empty()
}

/// Runs logq; returns the exit status.
pub fn main(args: &Args) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("logq: {error:#}");
            ERROR
        }
    }
}

fn report(errors: &[EndpointError]) {
    for error in errors {
        eprintln!("logq: {error}");
    }
}

fn run(args: &Args) -> anyhow::Result<i32> {
    let config = ConfigFile::load(args.config.as_ref())?;
    let (endpoints, token) = resolve_endpoints(args, &config);
    let client = Client::new(endpoints, token, resolve_timeouts(args, &config)?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let output = args.output();
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Holds and the audit log are lines for people and pipes: the TUI shows records.
    let listing = if output == Output::Tui {
        Output::Text
    } else {
        output
    };
    match &args.command {
        Some(Command::Holds { action }) => {
            runtime.block_on(crate::admin::holds(&client, args, action, listing))
        }
        Some(Command::Audit { who }) => {
            runtime.block_on(crate::admin::audit(&client, args, who.as_deref(), listing))
        }
        Some(Command::Stats { by }) => {
            let by_name = by.field().to_owned();
            let params = ApiQuery {
                by: Some(*by),
                ..args.query()
            };
            if output == Output::Tui {
                let matched = tui::run(
                    &runtime,
                    &client,
                    format!("stats by {by_name}"),
                    &Query::Stats { params, by: by_name },
                )?;
                return Ok(if matched { MATCHED } else { NO_MATCH });
            }
            let fan = runtime.block_on(client.stats(&params));
            report(&fan.errors);
            if fan.answers.is_empty() {
                return Ok(ERROR);
            }
            let stats = sum_stats(fan.answers);
            if let Some(notice) = &stats.notice {
                eprintln!("logq: {notice}");
            }
            print_stats(&stats, &by_name, output)?;
            let incomplete = report_missing(&stats.missing);
            Ok(match (stats.total > 0, incomplete) {
                (false, _) => NO_MATCH,
                (true, true) => INCOMPLETE,
                (true, false) => MATCHED,
            })
        }
        Some(Command::Tail) => {
            let params = args.query();
            if output == Output::Tui {
                let matched = tui::run(&runtime, &client, "tail".to_owned(), &Query::Tail { params })?;
                return Ok(if matched { MATCHED } else { NO_MATCH });
            }
            let (printed, incomplete) =
                runtime.block_on(follow(&client, &params, output, color, Vec::new(), None))?;
            Ok(match (printed > 0, incomplete) {
                (false, _) => NO_MATCH,
                (true, true) => INCOMPLETE,
                (true, false) => MATCHED,
            })
        }
        Some(Command::Search { .. }) | None => {
            if args.command.is_none() && args.query().selector.is_empty() {
                anyhow::bail!(
                    "nothing to query: use --corr <id>, `search <query>`, `tail` or `stats --by <field>` (see --help)"
                );
            }
            let params = args.query();
            let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
            let title = match (&args.corr, &args.command) {
                (Some(corr), _) => format!("corr {corr}"),
                (None, Some(Command::Search { query })) => format!("search {query:?}"),
                _ => "search".to_owned(),
            };
            if output == Output::Tui {
                let matched = tui::run(
                    &runtime,
                    &client,
                    title,
                    &Query::Search {
                        params,
                        limit,
                        follow: args.follow,
                    },
                )?;
                return Ok(if matched { MATCHED } else { NO_MATCH });
            }
            runtime.block_on(search(&client, &params, limit, output, color, args.follow))
        }
    }
}

/// Prints one record in the chosen format.
fn print_hit(out: &mut impl Write, hit: &Hit, output: Output, color: bool) -> std::io::Result<()> {
    match output {
        Output::Jsonl => writeln!(out, "{}", jsonl_line(hit)),
        Output::Logfmt => writeln!(out, "{}", logfmt_line(hit)),
        Output::Text | Output::Tui => writeln!(out, "{}", text_line(hit, color)),
    }
}

async fn search(
    client: &Client,
    params: &ApiQuery,
    limit: usize,
    output: Output,
    color: bool,
    follow_on: bool,
) -> anyhow::Result<i32> {
    // With --follow the tail starts first, so nothing committed during the search is missed;
    // records seen in both are shown once.
    let tail = follow_on.then(|| {
        let (tx, rx) = mpsc::channel(4096);
        client.tail(params, &tx);
        rx
    });
    let fan = client.search_pages(params, limit).await;
    report(&fan.errors);
    report(&fan.notices);
    if fan.answers.is_empty() {
        return Ok(ERROR);
    }
    // Each endpoint's pages arrive in (ts, id) order: merge them as they come, so an export of
    // millions of records holds one page per endpoint, not the whole answer.
    let mut endpoints = fan.answers;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut printed = 0usize;
    let mut seen = std::collections::HashSet::new();
    // Ids shown at the current ts: a record held by two endpoints arrives at the same place.
    let mut at_ts: (
        Option<corral_schema::Timestamp>,
        std::collections::HashSet<String>,
    ) = (None, std::collections::HashSet::new());
    let mut cut = false;
    loop {
        for endpoint in &mut endpoints {
            while endpoint.buffer.is_empty() && endpoint.more() {
                if let Err(error) = endpoint.next_page(client).await {
                    eprintln!("logq: {error}");
                    endpoint.buffer.clear();
                    break;
                }
            }
        }
        let next = endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.buffer.front().map(|hit| (i, hit)))
            .min_by(|(_, a), (_, b)| {
                a.record
                    .ts
                    .cmp(&b.record.ts)
                    .then_with(|| a.record.id.cmp(&b.record.id))
            })
            .map(|(i, _)| i);
        let Some(i) = next else { break };
        let hit = endpoints[i].buffer.pop_front().expect("a head");
        if at_ts.0 != Some(hit.record.ts) {
            at_ts = (Some(hit.record.ts), std::collections::HashSet::new());
        }
        if !at_ts.1.insert(hit.record.id.clone()) {
            continue;
        }
        if printed == limit {
            cut = true;
            break;
        }
        if let Err(e) = print_hit(&mut out, &hit, output, color) {
            return broken_pipe(e, printed > 0);
        }
        printed += 1;
        if follow_on {
            seen.insert(hit.record.id);
        }
    }
    if let Err(e) = out.flush() {
        return broken_pipe(e, printed > 0);
    }
    drop(out);
    if cut || endpoints.iter().any(|e| e.truncated) {
        eprintln!("logq: more records matched than --limit {limit}; showing the first {limit}");
    }
    let mut missing = Vec::new();
    for m in endpoints.iter().flat_map(|e| &e.missing) {
        if !missing.contains(m) {
            missing.push(m.clone());
        }
    }
    let incomplete = report_missing(&missing);
    let Some(tail) = tail else {
        return Ok(match (printed > 0, incomplete) {
            (false, _) => NO_MATCH,
            (true, true) => INCOMPLETE,
            (true, false) => MATCHED,
        });
    };
    let (printed_tail, tail_incomplete) = follow(
        client,
        params,
        output,
        color,
        seen.into_iter().collect(),
        Some(tail),
    )
    .await?;
    Ok(
        match (printed + printed_tail > 0, incomplete || tail_incomplete) {
            (false, _) => NO_MATCH,
            (true, true) => INCOMPLETE,
            (true, false) => MATCHED,
        },
    )
}

/// A closed pipe (`| head`) ends output quietly.
fn broken_pipe(error: std::io::Error, matched: bool) -> anyhow::Result<i32> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(if matched { MATCHED } else { NO_MATCH })
    } else {
        Err(error.into())
    }
}

/// Prints records from the tail of every endpoint until every stream has ended; returns how
/// many were printed, and whether a tail said it does not follow part of the cluster.
async fn follow(
    client: &Client,
    params: &ApiQuery,
    output: Output,
    color: bool,
    seen: Vec<String>,
    started: Option<mpsc::Receiver<TailEvent>>,
) -> anyhow::Result<(usize, bool)> {
    let mut rx = match started {
        Some(rx) => rx,
        None => {
            let (tx, rx) = mpsc::channel(4096);
            client.tail(params, &tx);
            rx
        }
    };
    let mut seen: std::collections::HashSet<String> = seen.into_iter().collect();
    let mut open = client.endpoints().len();
    let mut failed = 0;
    let mut printed = 0;
    let mut incomplete = false;
    let mut out = std::io::stdout();
    while open > 0 {
        let Some(event) = rx.recv().await else { break };
        match event {
            TailEvent::Hit(hit) => {
                if seen.insert(hit.record.id.clone()) {
                    if let Err(e) = print_hit(&mut out, &hit, output, color).and_then(|()| out.flush()) {
                        return broken_pipe(e, true).map(|_| (printed, incomplete));
                    }
                    printed += 1;
                }
            }
            TailEvent::Error(error) => {
                eprintln!("logq: {error}");
                open -= 1;
                failed += 1;
            }
            TailEvent::Ended(_) => open -= 1,
            TailEvent::Missing(missing) => incomplete |= report_missing(&missing),
        }
    }
    if failed == client.endpoints().len() {
        anyhow::bail!("no endpoint could be followed");
    }
    Ok((printed, incomplete))
}

fn print_stats(stats: &corral_schema::api::StatsResponse, by: &str, output: Output) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Jsonl => {
            for group in &stats.groups {
                writeln!(out, "{}", serde_json::to_string(group)?)?;
            }
        }
        Output::Logfmt => {
            for group in &stats.groups {
                write!(
                    out,
                    "{by}={} count={} errors={} error_rate={:.4}",
                    group.key,
                    group.count,
                    errors(group),
                    error_rate(group)
                )?;
                for (level, n) in &group.levels {
                    write!(out, " level.{level}={n}")?;
                }
                writeln!(out)?;
            }
        }
        Output::Text | Output::Tui => {
            let width = stats
                .groups
                .iter()
                .map(|g| g.key.len())
                .max()
                .unwrap_or(0)
                .max(by.len());
            writeln!(out, "{by:width$} {:>10} {:>8} {:>8}", "count", "errors", "rate")?;
            for group in &stats.groups {
                writeln!(
                    out,
                    "{:width$} {:>10} {:>8} {:>7.2}%",
                    group.key,
                    group.count,
                    errors(group),
                    error_rate(group) * 100.0
                )?;
            }
            writeln!(out, "{:width$} {:>10}", "total", stats.total)?;
        }
    }
    Ok(())
}
