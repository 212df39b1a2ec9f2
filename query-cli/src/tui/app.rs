//! [`App`]: the TUI's state — records, filters, selection, input, follow and stats mode — and
//! how keys and background [`Event`]s change it. It knows nothing of terminals, so tests drive
//! it and render it into a ratatui `TestBackend`.

use std::collections::HashSet;

use corral_schema::Level;
use corral_schema::api::{Order, StatsResponse};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::Event;
use crate::client::{EndpointError, TailEvent};
use crate::model::{Hit, sort_hits};

/// What the user is typing, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `/`: text to find within the results.
    Find(String),
    /// `t`: text filter.
    Filter(String),
}

/// What a key asks the loop to do besides redrawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    StartFollow,
    StopFollow,
}

/// The state of the TUI.
#[derive(Debug)]
pub struct App {
    /// What was asked, shown in the header (`corr 4bf9…`, `search "timeout"`).
    pub title: String,
    /// Every record received, in time order.
    pub records: Vec<Hit>,
    ids: HashSet<String>,
    /// Indices into `records` that pass the filters.
    pub view: Vec<usize>,
    /// Index into `view` of the selected row.
    pub selected: usize,
    /// First visible row of the timeline.
    pub offset: usize,
    pub detail: bool,
    pub waterfall: bool,
    pub service_filter: Option<String>,
    pub level_filter: Option<Level>,
    pub text_filter: String,
    pub find: String,
    pub input: Option<Input>,
    pub following: bool,
    pub loading: bool,
    pub spinner: usize,
    pub status: Option<String>,
    pub truncated: bool,
    /// Stats mode: the table and chart instead of the timeline.
    pub stats: Option<StatsResponse>,
    pub stats_by: Option<String>,
}

impl App {
    pub fn new(title: impl Into<String>) -> App {
        App {
            title: title.into(),
            records: Vec::new(),
            ids: HashSet::new(),
            view: Vec::new(),
            selected: 0,
            offset: 0,
            detail: false,
            waterfall: false,
            service_filter: None,
            level_filter: None,
            text_filter: String::new(),
            find: String::new(),
            input: None,
            following: false,
            loading: true,
            spinner: 0,
            status: None,
            truncated: false,
            stats: None,
            stats_by: None,
        }
    }

    /// Applies a background event.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::Results {
                hits,
                truncated,
                errors,
            } => {
                self.loading = false;
                self.truncated = truncated;
                self.status = errors_status(&errors);
                self.add(hits);
            }
            Event::Stats { stats, errors } => {
                self.loading = false;
                self.status = errors_status(&errors);
                self.stats = Some(stats);
            }
            Event::Tail(TailEvent::Hit(hit)) => self.add(vec![*hit]),
            Event::Tail(TailEvent::Error(error)) => self.status = Some(format!("follow: {error}")),
            Event::Tail(TailEvent::Ended(endpoint)) => {
                self.status = Some(format!("follow: {endpoint} ended the stream"));
            }
            Event::Tail(TailEvent::Missing(missing)) => {
                let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
                self.status = Some(format!("follow: incomplete: {}", missing.join("; ")));
            }
        }
    }

    /// Adds records (ignoring ids already shown), keeping time order and the selection.
    pub fn add(&mut self, hits: Vec<Hit>) {
        let selected_id = self.selected_hit().map(|h| h.record.id.clone());
        let at_end = self.view.is_empty() || self.selected + 1 >= self.view.len();
        let mut added = false;
        for hit in hits {
            if self.ids.insert(hit.record.id.clone()) {
                self.records.push(hit);
                added = true;
            }
        }
        if !added {
            return;
        }
        sort_hits(&mut self.records, Order::Asc);
        self.refilter();
        // Following keeps the newest in view; otherwise the selection stays on its record.
        if self.following && at_end {
            self.selected = self.view.len().saturating_sub(1);
        } else if let Some(id) = selected_id
            && let Some(pos) = self.view.iter().position(|&i| self.records[i].record.id == id)
        {
            self.selected = pos;
        }
    }

    /// Recomputes which records pass the filters; the selection stays on its record when that
    /// is still shown.
    pub fn refilter(&mut self) {
        let selected_id = self.selected_hit().map(|h| h.record.id.clone());
        let text = self.text_filter.to_lowercase();
        self.view = self
            .records
            .iter()
            .enumerate()
            .filter(|(_, hit)| {
                let r = &hit.record;
                self.service_filter.as_ref().is_none_or(|s| &r.service == s)
                    && self
                        .level_filter
                        .is_none_or(|min| r.level.is_some_and(|l| l >= min))
                    && (text.is_empty() || hit.raw.to_lowercase().contains(&text))
            })
            .map(|(i, _)| i)
            .collect();
        match selected_id.and_then(|id| self.view.iter().position(|&i| self.records[i].record.id == id)) {
            Some(pos) => self.selected = pos,
            None => self.selected = self.selected.min(self.view.len().saturating_sub(1)),
        }
    }

    pub fn selected_hit(&self) -> Option<&Hit> {
        self.view.get(self.selected).map(|&i| &self.records[i])
    }

    /// Services present in the records, in order of first appearance.
    pub fn services(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for hit in &self.records {
            if !seen.contains(&hit.record.service) {
                seen.push(hit.record.service.clone());
            }
        }
        seen
    }

    fn move_by(&mut self, delta: isize) {
        if self.view.is_empty() {
            return;
        }
        let last = self.view.len() - 1;
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }

    /// Moves to the next (or previous) record containing the find text.
    fn find_next(&mut self, forward: bool) {
        if self.find.is_empty() || self.view.is_empty() {
            return;
        }
        let needle = self.find.to_lowercase();
        let n = self.view.len();
        for step in 1..=n {
            let pos = if forward {
                (self.selected + step) % n
            } else {
                (self.selected + n - step % n) % n
            };
            if self.records[self.view[pos]].raw.to_lowercase().contains(&needle) {
                self.selected = pos;
                self.status = None;
                return;
            }
        }
        self.status = Some(format!("not found: {}", self.find));
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if let Some(input) = &mut self.input {
            let buffer = match input {
                Input::Find(text) | Input::Filter(text) => text,
            };
            match key.code {
                KeyCode::Esc => self.input = None,
                KeyCode::Backspace => {
                    buffer.pop();
                }
                KeyCode::Char(c) => buffer.push(c),
                KeyCode::Enter => {
                    match self.input.take() {
                        Some(Input::Find(text)) => {
                            self.find = text;
                            // Search from the row above, so a match on the current row counts.
                            self.selected = self
                                .selected
                                .checked_sub(1)
                                .unwrap_or(self.view.len().saturating_sub(1));
                            self.find_next(true);
                        }
                        Some(Input::Filter(text)) => {
                            self.text_filter = text;
                            self.refilter();
                        }
                        None => {}
                    }
                }
                _ => {}
            }
            return Action::None;
        }
        let page = 10;
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Esc => {
                if self.detail {
                    self.detail = false;
                } else {
                    return Action::Quit;
                }
            }
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown => self.move_by(page),
            KeyCode::PageUp => self.move_by(-page),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = self.view.len().saturating_sub(1),
            KeyCode::Enter => self.detail = !self.detail,
            KeyCode::Char('w') => self.waterfall = !self.waterfall,
            KeyCode::Char('s') => {
                let services = self.services();
                self.service_filter = match &self.service_filter {
                    None => services.first().cloned(),
                    Some(current) => services
                        .iter()
                        .position(|s| s == current)
                        .and_then(|i| services.get(i + 1))
                        .cloned(),
                };
                self.refilter();
            }
            KeyCode::Char('l') => {
                self.level_filter = match self.level_filter {
                    None => Some(Level::Debug),
                    Some(Level::Trace | Level::Debug) => Some(Level::Info),
                    Some(Level::Info) => Some(Level::Warn),
                    Some(Level::Warn) => Some(Level::Error),
                    Some(Level::Error | Level::Fatal) => None,
                };
                self.refilter();
            }
            KeyCode::Char('t') => self.input = Some(Input::Filter(self.text_filter.clone())),
            KeyCode::Char('/') => self.input = Some(Input::Find(String::new())),
            KeyCode::Char('n') => self.find_next(true),
            KeyCode::Char('N') => self.find_next(false),
            KeyCode::Char('F') => {
                self.following = !self.following;
                return if self.following {
                    Action::StartFollow
                } else {
                    Action::StopFollow
                };
            }
            _ => {}
        }
        Action::None
    }
}

fn errors_status(errors: &[EndpointError]) -> Option<String> {
    (!errors.is_empty()).then(|| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
pub(super) mod tests {
    use ratatui::crossterm::event::KeyEventState;

    use super::*;
    use crate::model::tests::hit;

    pub(crate) fn key(code: KeyCode) -> KeyEvent {
        KeyEvent {
            code,
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        }
    }

    pub(crate) fn sample_app() -> App {
        let mut app = App::new("corr req-1");
        app.on_event(Event::Results {
            hits: vec![
                hit(0, "gateway", Level::Info, "GET /checkout"),
                hit(12, "orders", Level::Debug, "reserving stock"),
                hit(20, "inventory", Level::Warn, "low stock for sku 42"),
                hit(35, "payments", Level::Error, "card declined"),
                hit(50, "gateway", Level::Info, "502 in 50ms"),
            ],
            truncated: false,
            errors: vec![],
        });
        app
    }

    #[test]
    fn keys_move_filter_find_and_quit() {
        let mut app = sample_app();
        assert_eq!(app.view.len(), 5);
        app.on_key(key(KeyCode::Down));
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.selected_hit().unwrap().record.service, "inventory");
        app.on_key(key(KeyCode::Char('l'))); // ≥ debug
        app.on_key(key(KeyCode::Char('l'))); // ≥ info
        app.on_key(key(KeyCode::Char('l'))); // ≥ warn
        assert_eq!(app.view.len(), 2);
        assert_eq!(app.selected_hit().unwrap().record.service, "inventory");
        app.on_key(key(KeyCode::Char('l')));
        app.on_key(key(KeyCode::Char('l'))); // off
        assert_eq!(app.view.len(), 5);
        app.on_key(key(KeyCode::Char('s')));
        assert_eq!(app.service_filter.as_deref(), Some("gateway"));
        assert_eq!(app.view.len(), 2);
        for _ in 0..4 {
            app.on_key(key(KeyCode::Char('s')));
        }
        assert_eq!(app.service_filter, None);
        // Find within: `/declined⏎`, then n wraps around to the same match.
        app.on_key(key(KeyCode::Home));
        for code in [
            KeyCode::Char('/'),
            KeyCode::Char('d'),
            KeyCode::Char('e'),
            KeyCode::Char('c'),
            KeyCode::Enter,
        ] {
            app.on_key(key(code));
        }
        assert_eq!(app.selected_hit().unwrap().record.msg, "card declined");
        app.on_key(key(KeyCode::Char('n')));
        assert_eq!(app.selected_hit().unwrap().record.msg, "card declined");
        // Text filter.
        for code in [
            KeyCode::Char('t'),
            KeyCode::Char('s'),
            KeyCode::Char('t'),
            KeyCode::Char('o'),
            KeyCode::Enter,
        ] {
            app.on_key(key(code));
        }
        // "sto" is in "reserving stock" and "low stock".
        assert_eq!(app.view.len(), 2);
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::None);
        assert!(app.detail);
        assert_eq!(
            app.on_key(key(KeyCode::Esc)),
            Action::None,
            "Esc closes the detail first"
        );
        assert_eq!(app.on_key(key(KeyCode::Char('F'))), Action::StartFollow);
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
    }

    #[test]
    fn following_appends_and_dedups() {
        let mut app = sample_app();
        app.following = true;
        app.on_key(key(KeyCode::End));
        app.on_event(Event::Tail(TailEvent::Hit(Box::new(hit(
            60,
            "notifications",
            Level::Info,
            "mail sent",
        )))));
        app.on_event(Event::Tail(TailEvent::Hit(Box::new(hit(
            60,
            "notifications",
            Level::Info,
            "mail sent",
        )))));
        assert_eq!(app.records.len(), 6);
        assert_eq!(app.selected_hit().unwrap().record.service, "notifications");
    }
}
