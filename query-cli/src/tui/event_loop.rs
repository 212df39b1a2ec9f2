//! [`run`]: the terminal loop. It takes the terminal, starts the [`Query`]'s work, then draws,
//! reads keys and applies what the background work reports until the user quits, and gives the
//! terminal back.

use std::time::Duration;

use ratatui::crossterm::event::{self, Event as TermEvent};
use tokio::sync::mpsc;

use super::query::start_tail;
use super::{Action, App, Event, Query, view};
use crate::client::{Client, TailEvent};

/// Runs the TUI until the user quits; returns whether anything matched. The terminal is
/// restored on every exit path (ratatui's panic hook covers panics).
pub fn run(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    title: String,
    query: &Query,
) -> anyhow::Result<bool> {
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let mut app = App::new(title);
    let started = query.start(runtime, client, &mut app, &tx);
    let tail_params = started.tail_params;
    let mut follow = started.follow;

    // For `make bench` (the `bench-timings` feature only): when set, the moments of the first
    // paint and of the first paint with results are written to this file (Unix ms) and the TUI
    // quits.
    let timings = if cfg!(feature = "bench-timings") {
        std::env::var_os("LOGQ_BENCH_TIMINGS").map(std::path::PathBuf::from)
    } else {
        None
    };
    let mut first_paint = None;
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        loop {
            terminal.draw(|frame| view::render(&mut app, frame))?;
            if let Some(path) = &timings {
                let now = unix_ms();
                let first = *first_paint.get_or_insert(now);
                if !app.loading {
                    std::fs::write(
                        path,
                        format!("first_paint_unix_ms={first}\nresults_unix_ms={now}\n"),
                    )?;
                    return Ok(());
                }
            }
            // While a query runs, look for its answer often so it is drawn as soon as it comes.
            let wait = if app.loading { 10 } else { 80 };
            if event::poll(Duration::from_millis(wait))?
                && let TermEvent::Key(key) = event::read()?
            {
                match app.on_key(key) {
                    Action::Quit => return Ok(()),
                    Action::StartFollow => follow = Some(start_tail(runtime, client, &tail_params)),
                    Action::StopFollow => follow = None,
                    Action::None => {}
                }
            }
            while let Ok(event) = rx.try_recv() {
                app.on_event(event);
            }
            if let Some(tail) = &mut follow {
                let mut batch = Vec::new();
                while let Ok(event) = tail.try_recv() {
                    match event {
                        TailEvent::Hit(hit) => batch.push(*hit),
                        other => app.on_event(Event::Tail(other)),
                    }
                }
                app.add(batch);
            }
            app.spinner = app.spinner.wrapping_add(1);
        }
    })();
    ratatui::restore();
    result?;
    Ok(!app.records.is_empty() || app.stats.as_ref().is_some_and(|s| s.total > 0))
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
