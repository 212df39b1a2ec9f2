//! Drawing the TUI: header, timeline / detail / waterfall / stats, status line and key footer.
//! Pure functions of [`App`] so tests render them into a `TestBackend`.

use corral_schema::Level;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{App, Input};
use crate::model::{error_rate, errors};
use crate::output::{level_label, service_color_index};

/// Colours a service can get (same order as the text output's ANSI palette).
const SERVICE_COLORS: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Yellow,
    Color::Green,
    Color::Blue,
    Color::LightRed,
];
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// The key footer.
pub const FOOTER: &str = "↑↓ ⏎detail w:waterfall s:service l:level t:filter /:find n/N F:follow q:quit";

pub fn service_color(service: &str) -> Color {
    SERVICE_COLORS[service_color_index(service)]
}

pub fn level_style(level: Option<Level>) -> Style {
    let style = Style::default();
    match level {
        Some(Level::Fatal) => style.fg(Color::Magenta).add_modifier(Modifier::BOLD),
        Some(Level::Error) => style.fg(Color::Red).add_modifier(Modifier::BOLD),
        Some(Level::Warn) => style.fg(Color::Yellow),
        Some(Level::Info) => style.fg(Color::Green),
        Some(Level::Debug) => style.fg(Color::Blue),
        Some(Level::Trace) | None => style.add_modifier(Modifier::DIM),
    }
}

fn dim() -> Style {
    Style::default().add_modifier(Modifier::DIM)
}

/// Time of day to the millisecond: `10:15:00.123`.
fn clock(ts: &corral_schema::Timestamp) -> String {
    let text = ts.to_string();
    text.get(11..23).unwrap_or(&text).to_owned()
}

/// Draws the whole screen.
pub fn render(app: &mut App, frame: &mut Frame<'_>) {
    let [header, body, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_line(app)), header);
    if app.stats.is_some() || app.stats_by.is_some() {
        render_stats(app, frame, body);
    } else if app.waterfall {
        render_waterfall(app, frame, body);
    } else if app.detail {
        let [list, detail] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(body);
        render_timeline(app, frame, list);
        render_detail(app, frame, detail);
    } else {
        render_timeline(app, frame, body);
    }
    frame.render_widget(Paragraph::new(status_line(app)), status);
    frame.render_widget(Paragraph::new(Line::styled(FOOTER, dim())), footer);
}

fn header_line(app: &App) -> Line<'static> {
    let mut spans = vec![
        Span::styled(
            " logq ",
            Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED),
        ),
        Span::raw(format!(" {} ", app.title)),
    ];
    if app.stats.is_none() && app.stats_by.is_none() {
        let services = app.services().len();
        spans.push(Span::styled(
            format!(
                " {} record{} · {} service{}",
                app.view.len(),
                if app.view.len() == 1 { "" } else { "s" },
                services,
                if services == 1 { "" } else { "s" }
            ),
            dim(),
        ));
        if let (Some(first), Some(last)) = (app.records.first(), app.records.last()) {
            let day = first.record.ts.to_string();
            spans.push(Span::styled(
                format!(
                    " · {} {}–{}",
                    &day[..10.min(day.len())],
                    clock(&first.record.ts),
                    clock(&last.record.ts)
                ),
                dim(),
            ));
        }
    }
    if app.truncated {
        spans.push(Span::styled(
            " (truncated: raise --limit)",
            Style::default().fg(Color::Yellow),
        ));
    }
    if app.following {
        spans.push(Span::styled(" ● following", Style::default().fg(Color::Green)));
    }
    if app.loading {
        spans.push(Span::raw(format!(
            " {} loading",
            SPINNER[app.spinner % SPINNER.len()]
        )));
    }
    Line::from(spans)
}

fn status_line(app: &App) -> Line<'static> {
    match &app.input {
        Some(Input::Find(text)) => return Line::from(format!("/{text}▏")),
        Some(Input::Filter(text)) => return Line::from(format!("filter text: {text}▏")),
        None => {}
    }
    if let Some(status) = &app.status {
        return Line::styled(status.clone(), Style::default().fg(Color::Red));
    }
    let mut filters = Vec::new();
    if let Some(service) = &app.service_filter {
        filters.push(format!("service={service}"));
    }
    if let Some(level) = app.level_filter {
        filters.push(format!("level≥{}", level.as_str()));
    }
    if !app.text_filter.is_empty() {
        filters.push(format!("text={:?}", app.text_filter));
    }
    if !app.find.is_empty() {
        filters.push(format!("find={:?}", app.find));
    }
    if filters.is_empty() {
        if !app.loading && app.records.is_empty() && app.stats.is_none() {
            return Line::styled("no records matched", Style::default().fg(Color::Yellow));
        }
        return Line::styled("no filters", dim());
    }
    Line::styled(filters.join("  "), Style::default().fg(Color::Cyan))
}

fn render_timeline(app: &mut App, frame: &mut Frame<'_>, area: Rect) {
    let height = area.height as usize;
    if app.selected < app.offset {
        app.offset = app.selected;
    } else if height > 0 && app.selected >= app.offset + height {
        app.offset = app.selected + 1 - height;
    }
    let who_width = app
        .view
        .iter()
        .map(|&i| {
            let r = &app.records[i].record;
            r.service.len() + 1 + r.version.len()
        })
        .max()
        .unwrap_or(0)
        .min(24);
    let instance_width = app
        .view
        .iter()
        .map(|&i| app.records[i].record.instance.len())
        .max()
        .unwrap_or(0)
        .min(22);
    let lines: Vec<Line<'static>> = app
        .view
        .iter()
        .enumerate()
        .skip(app.offset)
        .take(height)
        .map(|(row, &i)| {
            let r = &app.records[i].record;
            let who = fit(&format!("{}@{}", r.service, r.version), who_width);
            let instance = fit(&r.instance, instance_width);
            let line = Line::from(vec![
                Span::styled(clock(&r.ts), dim()),
                Span::raw(" "),
                Span::styled(who, Style::default().fg(service_color(&r.service))),
                Span::raw(" "),
                Span::styled(instance, dim()),
                Span::raw(" "),
                Span::styled(format!("{:<5}", level_label(r.level)), level_style(r.level)),
                Span::raw(" "),
                // The waterfall labels a record's span, where it has one.
                Span::styled(
                    r.span.as_ref().map(|s| format!("[{s}] ")).unwrap_or_default(),
                    dim(),
                ),
                Span::raw(r.msg.replace('\n', "⏎")),
            ]);
            if row == app.selected {
                line.style(Style::default().add_modifier(Modifier::REVERSED))
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

/// Pads or cuts `text` to exactly `width` characters (cut text ends with `…`).
fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        format!("{text:<width$}")
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn render_detail(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let text = match app.selected_hit() {
        Some(hit) => pretty_record(&hit.raw),
        None => String::new(),
    };
    let block = Block::default()
        .borders(Borders::TOP)
        .title(" record (Enter/Esc closes) ");
    frame.render_widget(Paragraph::new(text).block(block), area);
}

/// Keys shown first in the detail pane, in this order: what a reader looks at first.
const DETAIL_ORDER: [&str; 8] = [
    "ts", "service", "version", "instance", "level", "corr", "msg", "fields",
];

/// Pretty JSON of an envelope with the most telling keys first, the rest after in name order.
pub fn pretty_record(raw: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(raw) else {
        return raw.to_owned();
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| {
        (
            DETAIL_ORDER
                .iter()
                .position(|o| o == k)
                .unwrap_or(DETAIL_ORDER.len()),
            k.as_str(),
        )
    });
    let mut out = String::from("{\n");
    for (n, key) in keys.iter().enumerate() {
        let value = serde_json::to_string_pretty(&map[*key])
            .unwrap_or_default()
            .replace('\n', "\n  ");
        let comma = if n + 1 < keys.len() { "," } else { "" };
        out.push_str(&format!(
            "  {}: {value}{comma}\n",
            serde_json::Value::String((*key).clone())
        ));
    }
    out.push('}');
    out
}

/// One row per service instance: a bar from its first to its last record, `✖` where it logged
/// an error.
fn render_waterfall(app: &App, frame: &mut Frame<'_>, area: Rect) {
    struct Row {
        label: String,
        service: String,
        first: i64,
        last: i64,
        errors: Vec<i64>,
        count: usize,
    }
    let mut rows: Vec<Row> = Vec::new();
    for &i in &app.view {
        let r = &app.records[i].record;
        // A row per span where the records carry spans (a trace's waterfall), else per instance.
        let label = match &r.span {
            Some(span) => format!("{} {span}", r.service),
            None => format!("{}@{} {}", r.service, r.version, r.instance),
        };
        let t = r.ts.unix_nanos();
        let is_error = r.level.is_some_and(|l| l >= Level::Error);
        match rows.iter_mut().find(|row| row.label == label) {
            Some(row) => {
                row.first = row.first.min(t);
                row.last = row.last.max(t);
                row.count += 1;
                if is_error {
                    row.errors.push(t);
                }
            }
            None => rows.push(Row {
                label,
                service: r.service.clone(),
                first: t,
                last: t,
                errors: if is_error { vec![t] } else { vec![] },
                count: 1,
            }),
        }
    }
    let (Some(start), Some(end)) = (
        rows.iter().map(|r| r.first).min(),
        rows.iter().map(|r| r.last).max(),
    ) else {
        frame.render_widget(Paragraph::new("nothing to draw"), area);
        return;
    };
    let span = (end - start).max(1);
    let label_width = 30.min(area.width as usize * 2 / 5);
    let bar_width = (area.width as usize).saturating_sub(label_width + 8).max(1);
    let position = |t: i64| (((t - start) as i128 * (bar_width as i128 - 1)) / span as i128) as usize;
    let mut lines = vec![Line::styled(
        format!(
            "{:label_width$} {} → +{} ms",
            "waterfall (w closes)",
            clock(&corral_schema::Timestamp::from_unix_nanos(start)),
            span / 1_000_000
        ),
        dim(),
    )];
    for row in &rows {
        let (from, to) = (position(row.first), position(row.last));
        let errors: Vec<usize> = row.errors.iter().map(|&t| position(t)).collect();
        let mut spans = vec![
            Span::styled(
                fit(&row.label, label_width),
                Style::default().fg(service_color(&row.service)),
            ),
            Span::raw(" │"),
        ];
        for x in 0..bar_width {
            if errors.contains(&x) {
                spans.push(Span::styled(
                    "✖",
                    Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
                ));
            } else if (from..=to).contains(&x) {
                spans.push(Span::styled(
                    "█",
                    Style::default().fg(service_color(&row.service)),
                ));
            } else {
                spans.push(Span::raw(" "));
            }
        }
        spans.push(Span::raw(format!("│ {}", row.count)));
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// Count, errors and error rate per group, with a bar per group's error rate.
fn render_stats(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let Some(stats) = &app.stats else {
        frame.render_widget(Paragraph::new(""), area);
        return;
    };
    let by = app.stats_by.clone().unwrap_or_default();
    let key_width = stats
        .groups
        .iter()
        .map(|g| g.key.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(by.len(), 28);
    let bar_width = (area.width as usize).saturating_sub(key_width + 30).max(1);
    let max_rate = stats.groups.iter().map(error_rate).fold(0.0_f64, f64::max);
    let mut lines = vec![Line::styled(
        format!(
            "{:key_width$} {:>9} {:>7} {:>7}  error rate",
            by, "count", "errors", "rate"
        ),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    for group in &stats.groups {
        let rate = error_rate(group);
        let bar = if max_rate > 0.0 {
            ((rate / max_rate) * bar_width as f64).round() as usize
        } else {
            0
        };
        let worst = max_rate > 0.0 && (rate - max_rate).abs() < f64::EPSILON;
        lines.push(Line::from(vec![
            Span::raw(format!(
                "{} {:>9} {:>7} {:>6.2}%  ",
                fit(&group.key, key_width),
                group.count,
                errors(group),
                rate * 100.0
            )),
            Span::styled(
                "█".repeat(bar),
                Style::default().fg(if worst { Color::Red } else { Color::Yellow }),
            ),
        ]));
    }
    lines.push(Line::styled(format!("{} records in total", stats.total), dim()));
    frame.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyCode;

    use super::*;
    use crate::tui::app::tests::{key, sample_app};

    fn screen(app: &mut App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| render(app, frame)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn the_timeline_shows_one_row_per_record() {
        let mut app = sample_app();
        let lines = screen(&mut app, 80, 24);
        assert_eq!(
            lines[..7],
            [
                " logq  corr req-1  5 records · 4 services · 2026-11-23 10:00:00.000–10:00:00.050",
                "10:00:00.000 gateway@1.0.0   gateway-0/app   INFO  GET /checkout",
                "10:00:00.012 orders@1.0.0    orders-0/app    DEBUG reserving stock",
                "10:00:00.020 inventory@1.0.0 inventory-0/app WARN  low stock for sku 42",
                "10:00:00.035 payments@1.0.0  payments-0/app  ERROR card declined",
                "10:00:00.050 gateway@1.0.0   gateway-0/app   INFO  502 in 50ms",
                "",
            ]
        );
        assert_eq!(lines[22], "no filters");
        assert_eq!(lines[23], FOOTER);
    }

    #[test]
    fn enter_shows_the_selected_record_as_json() {
        let mut app = sample_app();
        app.on_key(key(KeyCode::Down));
        app.on_key(key(KeyCode::Down));
        app.on_key(key(KeyCode::Down));
        app.on_key(key(KeyCode::Enter));
        let lines = screen(&mut app, 80, 24);
        // 22 body rows: 8 for the list (40%), 14 for the detail.
        assert_eq!(
            lines[4],
            "10:00:00.035 payments@1.0.0  payments-0/app  ERROR card declined"
        );
        assert_eq!(lines[9], format!(" record (Enter/Esc closes) {}", "─".repeat(53)));
        assert_eq!(
            lines[10..22],
            [
                "{",
                "  \"ts\": \"2026-11-23T10:00:00.035000000Z\",",
                "  \"service\": \"payments\",",
                "  \"version\": \"1.0.0\",",
                "  \"instance\": \"payments-0/app\",",
                "  \"level\": \"error\",",
                "  \"corr\": \"req-1\",",
                "  \"msg\": \"card declined\",",
                "  \"fields\": {",
                "    \"http\": {",
                "      \"status\": 200",
                "    },",
            ]
        );
    }

    #[test]
    fn the_waterfall_has_a_row_per_span_where_records_carry_spans() {
        let mut app = sample_app();
        for (n, record) in app.records.iter_mut().enumerate() {
            // The two gateway records are one span; the others one each, payments none.
            record.record.span = match record.record.service.as_str() {
                "gateway" => Some("aaaa000000000001".into()),
                "payments" => None,
                _ => Some(format!("bbbb00000000000{n}")),
            };
        }
        app.on_key(key(KeyCode::Char('w')));
        let lines = screen(&mut app, 100, 24);
        let labels: Vec<&str> = lines[2..6]
            .iter()
            .map(|l| l.split(" │").next().unwrap().trim_end())
            .collect();
        assert_eq!(
            labels,
            [
                "gateway aaaa000000000001",
                "orders bbbb000000000001",
                "inventory bbbb000000000002",
                "payments@1.0.0 payments-0/app",
            ]
        );
        assert!(lines[2].ends_with("│ 2"), "{}", lines[2]);
    }

    #[test]
    fn the_waterfall_has_a_row_per_instance_with_error_marks() {
        let mut app = sample_app();
        app.on_key(key(KeyCode::Char('w')));
        let lines = screen(&mut app, 80, 24);
        // Bars span 0..50 ms over 42 columns (80 - 30 label - 8).
        let bar = |from: usize, to: usize, mark: Option<usize>| -> String {
            (0..42)
                .map(|x| {
                    if Some(x) == mark {
                        '✖'
                    } else if (from..=to).contains(&x) {
                        '█'
                    } else {
                        ' '
                    }
                })
                .collect()
        };
        assert_eq!(lines[1], "waterfall (w closes)           10:00:00.000 → +50 ms");
        assert_eq!(
            lines[2],
            format!("gateway@1.0.0 gateway-0/app    │{}│ 2", bar(0, 41, None))
        );
        assert_eq!(
            lines[3],
            format!("orders@1.0.0 orders-0/app      │{}│ 1", bar(9, 9, None))
        );
        assert_eq!(
            lines[4],
            format!("inventory@1.0.0 inventory-0/a… │{}│ 1", bar(16, 16, None))
        );
        assert_eq!(
            lines[5],
            format!("payments@1.0.0 payments-0/app  │{}│ 1", bar(99, 99, Some(28)))
        );
    }

    #[test]
    fn stats_show_error_rates_per_group() {
        let mut app = App::new("stats by version");
        app.stats_by = Some("version".into());
        app.on_event(crate::tui::Event::Stats {
            stats: corral_schema::api::StatsResponse {
                groups: vec![
                    corral_schema::api::StatsGroup {
                        key: "2.3.0".into(),
                        count: 1000,
                        levels: [("info".to_string(), 990), ("error".to_string(), 10)].into(),
                    },
                    corral_schema::api::StatsGroup {
                        key: "2.4.0".into(),
                        count: 200,
                        levels: [("info".to_string(), 170), ("error".to_string(), 30)].into(),
                    },
                ],
                total: 1200,
                took_ms: 4,
                notice: None,
                complete: true,
                missing: Vec::new(),
            },
            errors: vec![],
        });
        let lines = screen(&mut app, 80, 24);
        assert_eq!(lines[1], "version     count  errors    rate  error rate");
        assert_eq!(
            lines[2],
            format!("2.3.0        1000      10   1.00%  {}", "█".repeat(3))
        );
        assert_eq!(
            lines[3],
            format!("2.4.0         200      30  15.00%  {}", "█".repeat(43))
        );
        assert_eq!(lines[4], "1200 records in total");
    }
}
