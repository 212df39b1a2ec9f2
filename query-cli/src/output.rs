//! Line output for pipes and terminals: `text` (`time service@version instance LEVEL msg`),
//! `jsonl` (the envelopes exactly as the API returned them) and `logfmt`.

use std::fmt::Write as _;

use corral_schema::{Level, Record};
use serde_json::Value;

use crate::model::Hit;

/// ANSI colours a service can get; the same name always gets the same one.
const SERVICE_ANSI: [&str; 6] = ["36", "35", "33", "32", "34", "91"];

/// Index of a service's colour in the palette: a stable hash of its name.
pub fn service_color_index(service: &str) -> usize {
    // FNV-1a: stable across runs and platforms.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in service.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as usize % SERVICE_ANSI.len()
}

fn level_ansi(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Fatal) => "1;35",
        Some(Level::Error) => "1;31",
        Some(Level::Warn) => "33",
        Some(Level::Info) => "32",
        Some(Level::Debug) => "34",
        Some(Level::Trace) | None => "2",
    }
}

/// The time as shown: RFC 3339 to the millisecond, UTC.
pub fn short_time(record: &Record) -> String {
    let full = record.ts.to_string();
    // `2026-11-23T10:15:00.123456789Z` → `2026-11-23T10:15:00.123Z`
    match full.find('.') {
        Some(dot) if full.len() >= dot + 4 => format!("{}Z", &full[..dot + 4]),
        _ => full,
    }
}

/// Upper-case level name, or `-` without a level.
pub fn level_label(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Trace) => "TRACE",
        Some(Level::Debug) => "DEBUG",
        Some(Level::Info) => "INFO",
        Some(Level::Warn) => "WARN",
        Some(Level::Error) => "ERROR",
        Some(Level::Fatal) => "FATAL",
        None => "-",
    }
}

/// `time service@version instance LEVEL [span] msg`, coloured when `color` (`[span]` only
/// when the record has one).
pub fn text_line(hit: &Hit, color: bool) -> String {
    let r = &hit.record;
    let msg = match &r.span {
        Some(span) => format!("[{span}] {}", r.msg.replace('\n', "\\n")),
        None => r.msg.replace('\n', "\\n"),
    };
    if !color {
        return format!(
            "{} {}@{} {} {:<5} {}",
            short_time(r),
            r.service,
            r.version,
            r.instance,
            level_label(r.level),
            msg
        );
    }
    format!(
        "\x1b[2m{}\x1b[0m \x1b[{}m{}@{}\x1b[0m \x1b[2m{}\x1b[0m \x1b[{}m{:<5}\x1b[0m {}",
        short_time(r),
        SERVICE_ANSI[service_color_index(&r.service)],
        r.service,
        r.version,
        r.instance,
        level_ansi(r.level),
        level_label(r.level),
        msg
    )
}

/// The envelope exactly as received.
pub fn jsonl_line(hit: &Hit) -> &str {
    &hit.raw
}

/// `key=value` pairs: the envelope's fields, then `fields.*` flattened with dots.
pub fn logfmt_line(hit: &Hit) -> String {
    let r = &hit.record;
    let mut out = String::new();
    let mut pair = |key: &str, value: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&logfmt_value(value));
    };
    pair("ts", &r.ts.to_string());
    pair("service", &r.service);
    pair("version", &r.version);
    pair("instance", &r.instance);
    pair("level", r.level.map_or("", Level::as_str));
    if let Some(corr) = &r.corr {
        pair("corr", corr);
    }
    if let Some(span) = &r.span {
        pair("span", span);
    }
    pair("msg", &r.msg);
    let mut flat = Vec::new();
    for (key, value) in &r.fields {
        flatten(&format!("fields.{key}"), value, &mut flat);
    }
    for (key, value) in flat {
        pair(&key, &value);
    }
    if !r.flags.is_empty() {
        let flags: Vec<&str> = r.flags.iter().map(|f| f.as_str()).collect();
        pair("flags", &flags.join(","));
    }
    pair("id", &r.id);
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                flatten(&format!("{prefix}.{key}"), value, out);
            }
        }
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Null => out.push((prefix.to_owned(), String::new())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// Quotes a value when it is empty or holds spaces, quotes, `=` or control characters.
pub fn logfmt_value(value: &str) -> String {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
    if !needs_quotes {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04x}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use corral_schema::Level;

    use super::*;
    use crate::model::tests::hit;

    #[test]
    fn text_lines_read_at_a_glance() {
        let h = hit(5, "orders", Level::Warn, "slow\nstock");
        assert_eq!(
            text_line(&h, false),
            "2026-11-23T10:00:00.005Z orders@1.0.0 orders-0/app WARN  slow\\nstock"
        );
        let coloured = text_line(&h, true);
        assert!(coloured.contains("\x1b[33mWARN "), "{coloured:?}");
        assert!(coloured.ends_with("slow\\nstock"));
        let mut spanned = h.clone();
        spanned.record.span = Some("00f067aa0ba902b7".into());
        assert_eq!(
            text_line(&spanned, false),
            "2026-11-23T10:00:00.005Z orders@1.0.0 orders-0/app WARN  [00f067aa0ba902b7] slow\\nstock"
        );
        assert!(logfmt_line(&spanned).contains(" corr=req-1 span=00f067aa0ba902b7 msg="));
    }

    #[test]
    fn logfmt_quotes_and_flattens() {
        let h = hit(1, "orders", Level::Info, "order \"7\" placed");
        assert_eq!(
            logfmt_line(&h),
            format!(
                "ts=2026-11-23T10:00:00.001000000Z service=orders version=1.0.0 instance=orders-0/app level=info \
                 corr=req-1 msg=\"order \\\"7\\\" placed\" fields.http.status=200 fields.user=\"a b\" id={:032x}",
                1
            )
        );
    }

    #[test]
    fn jsonl_is_the_raw_envelope_and_colours_are_stable() {
        let h = hit(1, "orders", Level::Info, "x");
        assert_eq!(jsonl_line(&h), h.raw);
        assert_eq!(service_color_index("orders"), service_color_index("orders"));
        let distinct: std::collections::HashSet<usize> =
            ["gateway", "orders", "payments", "inventory", "notifications"]
                .iter()
                .map(|s| service_color_index(s))
                .collect();
        assert!(
            distinct.len() >= 3,
            "five services share too few colours: {distinct:?}"
        );
    }
}
