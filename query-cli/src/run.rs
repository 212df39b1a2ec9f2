//! What each command does, and its exit status: 0 when something matched, 1 when nothing did,
//! 2 on error (like grep).

use std::io::{IsTerminal, Write};

use corral_schema::api::{DEFAULT_LIMIT, Order};
use tokio::sync::mpsc;

use crate::cli::{Args, Command, ConfigFile, Output, resolve_endpoints};
use crate::client::{Client, EndpointError, Params, TailEvent};
use crate::model::{Hit, error_rate, errors, merge, sum_stats};
use crate::output::{jsonl_line, logfmt_line, text_line};
use crate::tui::{self, Query};

/// Something matched.
pub const MATCHED: i32 = 0;
/// Nothing matched.
pub const NO_MATCH: i32 = 1;
/// Bad flags, unreachable endpoints, HTTP errors.
pub const ERROR: i32 = 2;

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
    let client = Client::new(endpoints, token)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let output = args.output();
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    match &args.command {
        Some(Command::Stats { by }) => {
            let by_name = by.field().to_owned();
            let params = args
                .filter_params()
                .into_iter()
                .chain([("by", by_name.clone())])
                .collect::<Params>();
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
            Ok(if stats.total > 0 { MATCHED } else { NO_MATCH })
        }
        Some(Command::Tail) => {
            let params = args.filter_params();
            if output == Output::Tui {
                let matched = tui::run(&runtime, &client, "tail".to_owned(), &Query::Tail { params })?;
                return Ok(if matched { MATCHED } else { NO_MATCH });
            }
            let printed = runtime.block_on(follow(&client, &params, output, color, Vec::new(), None))?;
            Ok(if printed > 0 { MATCHED } else { NO_MATCH })
        }
        Some(Command::Search { .. }) | None => {
            if args.command.is_none() && args.filter_params().is_empty() {
                anyhow::bail!(
                    "nothing to query: use --corr <id>, `search <query>`, `tail` or `stats --by <field>` (see --help)"
                );
            }
            let params = args.search_params();
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
    params: &Params,
    limit: usize,
    output: Output,
    color: bool,
    follow_on: bool,
) -> anyhow::Result<i32> {
    // With --follow the tail starts first, so nothing committed during the search is missed;
    // records seen in both are shown once.
    let tail = follow_on.then(|| {
        let (tx, rx) = mpsc::channel(4096);
        let tail_params: Params = params.iter().filter(|(k, _)| *k != "limit").cloned().collect();
        client.tail(&tail_params, &tx);
        rx
    });
    let fan = client.search(params).await;
    report(&fan.errors);
    report(&fan.notices);
    if fan.answers.is_empty() {
        return Ok(ERROR);
    }
    let (hits, truncated) = merge(fan.answers, Order::Asc, limit);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for hit in &hits {
        if let Err(e) = print_hit(&mut out, hit, output, color) {
            return broken_pipe(e, !hits.is_empty());
        }
    }
    if let Err(e) = out.flush() {
        return broken_pipe(e, !hits.is_empty());
    }
    drop(out);
    if truncated {
        eprintln!("logq: more records matched than --limit {limit}; showing the first {limit}");
    }
    let Some(tail) = tail else {
        return Ok(if hits.is_empty() { NO_MATCH } else { MATCHED });
    };
    let seen = hits.iter().map(|h| h.record.id.clone()).collect();
    let printed = follow(client, params, output, color, seen, Some(tail)).await?;
    Ok(if hits.is_empty() && printed == 0 {
        NO_MATCH
    } else {
        MATCHED
    })
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
/// many were printed.
async fn follow(
    client: &Client,
    params: &Params,
    output: Output,
    color: bool,
    seen: Vec<String>,
    started: Option<mpsc::Receiver<TailEvent>>,
) -> anyhow::Result<usize> {
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
    let mut out = std::io::stdout();
    while open > 0 {
        let Some(event) = rx.recv().await else { break };
        match event {
            TailEvent::Hit(hit) => {
                if seen.insert(hit.record.id.clone()) {
                    if let Err(e) = print_hit(&mut out, &hit, output, color).and_then(|()| out.flush()) {
                        return broken_pipe(e, true).map(|_| printed);
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
        }
    }
    if failed == client.endpoints().len() {
        anyhow::bail!("no endpoint could be followed");
    }
    Ok(printed)
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
