//! Application JSON: the app-level parts of a record (ts, level, msg, corr, fields) from one line's
//! content, once the runtime wrapper (CRI / docker) is gone.
//!
//! The content is parsed with simd-json when its first non-whitespace byte is `{`. The keys that
//! carry the four extracted values come from [`KeyConfig`], whose defaults cover the libraries of
//! DESIGN §3.2 (`../shared/reference/log-formats.md` lists each one's keys and value forms).
//! Every extracted key is removed from the object; every other key lands in
//! [`AppFields::fields`] as it came, nesting kept. A value that cannot be interpreted (a `time`
//! that is no timestamp, a `level` that is no level) stays in `fields`: no data is lost.
//!
//! Keys are matched as flat top-level keys first (`log.level`, `trace.id`,
//! `logging.googleapis.com/trace` are flat in ECS and Google Cloud output). A key containing `.`
//! then also matches as a nested path (`{"log":{"level":…}}`, tracing-subscriber's
//! `{"fields":{"message":…}}` and `{"span":{"request_id":…}}`); only that leaf is removed, and
//! parent objects left empty are dropped.
//!
//! Hot path: parser buffers and the tape are reused per thread (lines up to
//! 64 KiB), the input is parsed in place with caller-side padding (no copy), and
//! extracted values are moved out of the object, never cloned.

use std::cell::Cell;

use corral_schema::{Level, LevelScale, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value};
use simd_json::{Buffers, INPUT_PADDING, Tape};

use crate::otlp::OTLP_SEVERITY_NUMBER;
use crate::trace_context::{TRACEPARENT_KEYS, TraceParent};

/// Deepest nesting of objects and arrays accepted, like serde_json's recursion limit. Deeper
/// content is not parsed (the caller keeps it as an unparsed line): it bounds the stack used by
/// deserializing and dropping the nested value.
const MAX_DEPTH: usize = 128;

/// Longest content parsed with the thread's reused buffers. Longer lines get buffers of their
/// own, dropped afterwards, so one huge line does not pin megabytes to every parsing thread.
const SCRATCH_MAX_LINE: usize = 64 * 1024;

/// Numeric timestamps and epoch strings before this instant (1990-01-01T00:00:00Z) are not taken
/// as event times: `"t": 42` is a counter, not 1970-01-01T00:00:42Z, and a record dated 1970
/// would fall straight out of retention.
const MIN_PLAUSIBLE_TS: Timestamp = Timestamp::from_unix_nanos(631_152_000 * 1_000_000_000);

/// Serilog CLEF keys whose presence marks a CLEF event (`@timestamp`, `@version` are logstash's,
/// not CLEF, and do not count).
const CLEF_MARKERS: [&str; 3] = ["@t", "@m", "@mt"];
/// CLEF's level key; CLEF omits it for Information.
const CLEF_LEVEL: &str = "@l";
/// Google Cloud's level key, whose `DEFAULT` means "no level assigned".
const GOOGLE_SEVERITY: &str = "severity";
/// logstash-logback-encoder's numeric level key (5000 trace … 40000 error).
const LOGSTASH_LEVEL_VALUE: &str = "level_value";
/// What precedes the trace id in a Google Cloud trace resource name
/// (`projects/<project>/traces/<id>`).
const GOOGLE_TRACES_SEGMENT: &str = "/traces/";

/// Which JSON keys carry ts, level, msg and corr, in priority order (first present wins).
///
/// "Present" means present with a value of the right kind: a ts that does not parse, a level
/// that is not recognised, an empty corr are skipped and the next key is tried. A list left out
/// of a config file takes its default (`#[serde(default)]`), so overriding `corr` alone keeps
/// the default `ts`, `level` and `msg` lists.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// Event time keys: RFC 3339 / ISO 8601 / Go `Time.String()` / epoch strings, epoch numbers
    /// (unit by magnitude: s, ms, µs, ns), or Google's `{"seconds":…,"nanos":…}`.
    pub ts: Vec<String>,
    /// Level keys: names (any case) or numbers on the pino/bunyan scale; the key `level_value`
    /// is read on logstash's scale.
    pub level: Vec<String>,
    /// Message keys: strings as they are, any other non-null value as its JSON text.
    pub msg: Vec<String>,
    /// Correlation keys: non-empty strings or numbers; a Google Cloud trace resource name
    /// `projects/<p>/traces/<id>` yields `<id>`. When none is present, a W3C `traceparent`
    /// (`00-<trace-id>-<span-id>-<flags>`, keys [`TRACEPARENT_KEYS`]) gives its trace id.
    pub corr: Vec<String>,
    /// Span id keys (OpenTelemetry); when none is present, a valid `traceparent`'s span id.
    pub span: Vec<String>,
}

impl Default for KeyConfig {
    /// Returns key lists covering every library of DESIGN §3.2, most specific first.
    ///
    /// Order decisions: `level_value` comes last among levels (logstash prints `level` too, so it
    /// is only a fallback). `event` is structlog's message but ECS's namespace object; ECS lines
    /// carry `message`, which comes first, and namespace objects are never taken as a message
    /// (see [`parse_app_json`]). Request ids come before trace ids among correlation keys, so
    /// an ASP.NET Core line groups by `RequestId` rather than by its `@tr`.
    fn default() -> Self {
        fn strings(keys: &[&str]) -> Vec<String> {
            keys.iter().map(|key| (*key).to_owned()).collect()
        }
        KeyConfig {
            ts: strings(&[
                "ts",
                "time",
                "timestamp",
                "@timestamp",
                "@t",
                "t",
                "date",
                "datetime",
                "asctime",
                "created",
                "timeUnixNano",
                "observedTimeUnixNano",
                "time_iso8601",
                "start_time",
            ]),
            level: strings(&[
                "level",
                "lvl",
                "severity",
                "log.level",
                "levelname",
                "@l",
                "loglevel",
                "log_level",
                "level_name",
                "levelName",
                "severityText",
                OTLP_SEVERITY_NUMBER,
                LOGSTASH_LEVEL_VALUE,
            ]),
            msg: strings(&[
                "msg",
                "message",
                "@m",
                "@mt",
                "event",
                "fields.message",
                "log",
                "text",
                "body",
            ]),
            corr: strings(&[
                "corr",
                "correlation_id",
                "correlationId",
                "correlation-id",
                "x-correlation-id",
                "x_correlation_id",
                "request_id",
                "requestId",
                "req_id",
                "reqId",
                "x_request_id",
                "x-request-id",
                "RequestId",
                "trace_id",
                "traceId",
                "trace.id",
                "@tr",
                "logging.googleapis.com/trace",
                "span.request_id",
                "TraceId",
            ]),
            span: strings(&[
                "span_id",
                "spanId",
                "span.id",
                "SpanId",
                "@sp",
                "logging.googleapis.com/spanId",
            ]),
        }
    }
}

/// The app-level parts of one record, taken from a JSON object line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppFields {
    /// The application's own event time; `None` when no ts key held a plausible timestamp.
    pub ts: Option<Timestamp>,
    /// The normalised level; `None` when no level key held a recognised level.
    pub level: Option<Level>,
    /// The message; `None` when no msg key was present.
    pub msg: Option<String>,
    /// The correlation id; `None` when no corr key was present.
    pub corr: Option<String>,
    /// The span id; `None` when no span key or valid `traceparent` was present.
    pub span: Option<String>,
    /// Every other key of the object, nesting kept.
    pub fields: Map<String, Value>,
}

/// Parses `content` as a JSON object and extracts ts/level/msg/corr; returns None when the content
/// is not a JSON object (caller then keeps the whole line as msg with flag `unparsed`).
/// `content` may be modified (simd-json parses in place).
///
/// Invariants: never panics, whatever the bytes; `content` keeps its length (padding needed by
/// the parser is appended and removed again, so a caller that leaves [`INPUT_PADDING`] spare
/// capacity saves a reallocation). Objects nested deeper than 128 levels, invalid UTF-8 and
/// trailing data after the object all return `None`.
///
/// Rules beyond "first present key wins": a Serilog CLEF event (any of `@t`, `@m`, `@mt`) without
/// `@l` is Information; Google's `severity: DEFAULT` is consumed and gives no level (our level
/// table reads `default` as info for other keys); winston's `http` is debug and `silly` trace;
/// numbers above 100 are no pino level (Monolog prints `level: 300` next to `level_name`, which
/// then wins). An object under a msg key that is the parent of another configured dotted key
/// (`log` of `log.level`) is a namespace, not a message, and stays in `fields`.
pub fn parse_app_json(content: &mut Vec<u8>, keys: &KeyConfig) -> Option<AppFields> {
    let first = content.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let mut map = parse_object(content)?;
    if crate::otlp::is_log_record(&map) {
        crate::otlp::unwrap_log_record(&mut map);
    }

    let clef = !map.contains_key(CLEF_LEVEL) && CLEF_MARKERS.iter().any(|key| map.contains_key(*key));

    let ts = take_first(&mut map, &keys.ts, |_, value| ts_from_value(value)).map(|(ts, _)| ts);
    let level = match take_first(&mut map, &keys.level, level_from_value) {
        Some((level, _)) => level,
        None if clef => Some(Level::Info),
        None => None,
    };
    let mut corr = take_first(&mut map, &keys.corr, |_, value| is_corr(value).then_some(()))
        .map(|((), value)| corr_text(value));
    let mut span = take_first(&mut map, &keys.span, |_, value| is_corr(value).then_some(()))
        .map(|((), value)| corr_text(value));
    if let Some((key, parent)) = TRACEPARENT_KEYS
        .iter()
        .find_map(|key| Some((*key, map.get(*key)?.as_str().and_then(TraceParent::parse)?)))
    {
        if corr.is_none() {
            // The traceparent became the corr: like any corr key, it leaves `fields`.
            map.remove(key);
            corr = Some(parent.trace_id);
        }
        span.get_or_insert(parent.span_id);
    }
    let msg = take_first(&mut map, &keys.msg, |key, value| {
        let namespace = value.is_object() && is_namespace(keys, key);
        (!value.is_null() && !namespace).then_some(())
    })
    .map(|((), value)| json_text(value));

    Some(AppFields {
        ts,
        level,
        msg,
        corr,
        span,
        fields: map,
    })
}

/// Parses `content` into an object with simd-json, in place. `None` for anything that is not
/// exactly one JSON object.
fn parse_object(content: &mut Vec<u8>) -> Option<Map<String, Value>> {
    let len = content.len();
    let reuse = len <= SCRATCH_MAX_LINE;
    let cached = if reuse {
        SCRATCH.try_with(Cell::take).ok().flatten()
    } else {
        None
    };
    let mut scratch = cached.unwrap_or_else(|| Scratch::new(len));
    content.resize(len + INPUT_PADDING, b' ');
    let parsed = scratch.parse(content, len);
    content.truncate(len);
    if reuse {
        // Fails only while the thread is being torn down; the scratch is then simply dropped.
        let _ = SCRATCH.try_with(|cell| cell.set(Some(scratch)));
    }
    parsed
}

thread_local! {
    /// The thread's parser buffers, taken out for one parse and put back afterwards (so a
    /// re-entrant call would simply build its own).
    static SCRATCH: Cell<Option<Scratch>> = const { Cell::new(None) };
}

/// simd-json's reusable allocations: stage buffers and the tape.
struct Scratch {
    buffers: Buffers,
    tape: Tape<'static>,
}

impl Scratch {
    fn new(len: usize) -> Scratch {
        Scratch {
            buffers: Buffers::with_max_depth(len, MAX_DEPTH),
            tape: Tape(Vec::new()),
        }
    }

    /// Parses `padded[..len]`; `padded[len..]` is at least [`INPUT_PADDING`] bytes of padding.
    fn parse(&mut self, padded: &mut [u8], len: usize) -> Option<Map<String, Value>> {
        let mut tape: Tape<'_> = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let parsed = match simd_json::fill_tape_padded(padded, len, &mut self.buffers, &mut tape) {
            Ok(()) => {
                let mut deserializer = simd_json::Deserializer::from_tape(tape);
                let map = Map::deserialize(&mut deserializer).ok();
                tape = deserializer.into_tape();
                map
            }
            Err(_) => None,
        };
        self.tape = tape.reset();
        parsed
    }
}

/// Finds the first of `keys` whose value `accept` takes, removes it from `map` and returns what
/// `accept` made of it together with the removed value (so it can be moved, not cloned).
fn take_first<T>(
    map: &mut Map<String, Value>,
    keys: &[String],
    mut accept: impl FnMut(&str, &Value) -> Option<T>,
) -> Option<(T, Value)> {
    for key in keys {
        let Some((value, nested)) = find(map, key) else {
            continue;
        };
        if let Some(accepted) = accept(key, value) {
            let removed = if nested {
                remove_nested(map, key)
            } else {
                map.remove(key.as_str())
            };
            // `find` just saw the value, so removal cannot miss.
            return removed.map(|value| (accepted, value));
        }
    }
    None
}

/// Looks `key` up as a flat key, then, when it contains `.`, as a nested path. The flag says
/// whether the nested path matched.
fn find<'a>(map: &'a Map<String, Value>, key: &str) -> Option<(&'a Value, bool)> {
    if let Some(value) = map.get(key) {
        return Some((value, false));
    }
    let (head, mut rest) = key.split_once('.')?;
    let mut object = map.get(head)?.as_object()?;
    loop {
        match rest.split_once('.') {
            None => return object.get(rest).map(|value| (value, true)),
            Some((head, tail)) => {
                object = object.get(head)?.as_object()?;
                rest = tail;
            }
        }
    }
}

/// Removes the leaf at the dotted `path` and drops the parent objects it leaves empty.
fn remove_nested(map: &mut Map<String, Value>, path: &str) -> Option<Value> {
    let Some((head, rest)) = path.split_once('.') else {
        return map.remove(path);
    };
    let child = map.get_mut(head)?.as_object_mut()?;
    let removed = remove_nested(child, rest);
    if child.is_empty() {
        map.remove(head);
    }
    removed
}

/// Returns true when `key` is the parent of another configured dotted key (`log` of
/// `log.level`): its object is a namespace of fields, not a message.
fn is_namespace(keys: &KeyConfig, key: &str) -> bool {
    [&keys.ts, &keys.level, &keys.msg, &keys.corr, &keys.span]
        .into_iter()
        .flatten()
        .any(|other| other.len() > key.len() && other.starts_with(key) && other.as_bytes()[key.len()] == b'.')
}

/// Reads an event time: a string in any form [`Timestamp::parse`] knows, an epoch number, or
/// Google's `{"seconds":…,"nanos":…}`. Implausibly early instants are rejected.
fn ts_from_value(value: &Value) -> Option<Timestamp> {
    let ts = match value {
        Value::String(text) => Timestamp::parse(text),
        Value::Number(number) => match number.as_i64() {
            Some(int) => Timestamp::from_epoch_i64(int),
            None => number.as_f64().and_then(Timestamp::from_epoch_f64),
        },
        Value::Object(object) => {
            let seconds = object.get("seconds")?.as_i64()?;
            let nanos = match object.get("nanos") {
                Some(nanos) => nanos.as_i64()?,
                None => 0,
            };
            if object.len() > 2 || !(0..1_000_000_000).contains(&nanos) {
                return None;
            }
            seconds
                .checked_mul(1_000_000_000)
                .and_then(|secs| secs.checked_add(nanos))
                .map(Timestamp::from_unix_nanos)
        }
        _ => None,
    }?;
    (ts >= MIN_PLAUSIBLE_TS).then_some(ts)
}

/// Reads a level under `key`. The outer `None` means "not a level, try the next key"; the inner
/// one is Google's `DEFAULT`, a level field that says there is no level.
fn level_from_value(key: &str, value: &Value) -> Option<Option<Level>> {
    match value {
        Value::String(name) => {
            let name = name.trim();
            if key == GOOGLE_SEVERITY && name.eq_ignore_ascii_case("default") {
                return Some(None);
            }
            if let Ok(number) = name.parse::<i64>() {
                return level_from_number(key, number).map(Some);
            }
            if name.eq_ignore_ascii_case("http") {
                Some(Some(Level::Debug)) // winston: between info and verbose
            } else if name.eq_ignore_ascii_case("silly") {
                Some(Some(Level::Trace)) // winston: below debug
            } else {
                Level::from_name(name, LevelScale::Pino).map(Some)
            }
        }
        Value::Number(number) => number
            .as_i64()
            .and_then(|number| level_from_number(key, number))
            .map(Some),
        _ => None,
    }
}

/// Reads a numeric level: OpenTelemetry's scale under `severityNumber`, logstash's under
/// `level_value`, else pino/bunyan's (1 … 100;
/// larger numbers belong to other scales, such as Monolog's 100 … 600).
fn level_from_number(key: &str, number: i64) -> Option<Level> {
    if key == OTLP_SEVERITY_NUMBER {
        return match number {
            1..=4 => Some(Level::Trace),
            5..=8 => Some(Level::Debug),
            9..=12 => Some(Level::Info),
            13..=16 => Some(Level::Warn),
            17..=20 => Some(Level::Error),
            21..=24 => Some(Level::Fatal),
            _ => None,
        };
    }
    if key == LOGSTASH_LEVEL_VALUE {
        return match number {
            1..=5_000 => Some(Level::Trace),
            5_001..=10_000 => Some(Level::Debug),
            10_001..=20_000 => Some(Level::Info),
            20_001..=30_000 => Some(Level::Warn),
            30_001..=40_000 => Some(Level::Error),
            40_001..=50_000 => Some(Level::Fatal),
            _ => None,
        };
    }
    if number > 100 {
        return None;
    }
    Level::from_number(number, LevelScale::Pino)
}

/// Returns true for a usable correlation id: a string with something in it (after the Google
/// resource-name prefix, if any) or a number.
fn is_corr(value: &Value) -> bool {
    match value {
        Value::String(text) => !google_trace_id(text).trim().is_empty(),
        Value::Number(_) => true,
        _ => false,
    }
}

/// Turns an accepted corr value into its id text, moving the string.
fn corr_text(value: Value) -> String {
    match value {
        Value::String(mut text) => {
            let prefix = text.len() - google_trace_id(&text).len();
            text.drain(..prefix);
            text
        }
        other => other.to_string(),
    }
}

/// Returns the `<id>` of a Google Cloud trace resource name `projects/<p>/traces/<id>`, and any
/// other text unchanged.
fn google_trace_id(text: &str) -> &str {
    if text.starts_with("projects/")
        && let Some((_, id)) = text.split_once(GOOGLE_TRACES_SEGMENT)
    {
        return id;
    }
    text
}

/// Returns a string value as it is (moved) and any other value as its compact JSON text.
fn json_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// One real-world line and everything that must come out of it.
    struct Case {
        name: &'static str,
        line: &'static str,
        ts: Option<&'static str>,
        level: Option<Level>,
        msg: Option<&'static str>,
        corr: Option<&'static str>,
        /// The leftover fields, as JSON.
        fields: &'static str,
    }

    fn parse(line: &str) -> Option<AppFields> {
        parse_app_json(&mut line.as_bytes().to_vec(), &KeyConfig::default())
    }

    fn check(cases: &[Case]) {
        for case in cases {
            let name = case.name;
            let got = parse(case.line).unwrap_or_else(|| panic!("{name}: not parsed"));
            assert_eq!(got.ts.map(|ts| ts.to_string()).as_deref(), case.ts, "{name}: ts");
            assert_eq!(got.level, case.level, "{name}: level");
            assert_eq!(got.msg.as_deref(), case.msg, "{name}: msg");
            assert_eq!(got.corr.as_deref(), case.corr, "{name}: corr");
            let want: Map<String, Value> = serde_json::from_str(case.fields).unwrap();
            assert_eq!(got.fields, want, "{name}: fields");
        }
    }

    #[test]
    fn traceparent_and_span_keys_fill_corr_and_span() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let span = "00f067aa0ba902b7";
        // In a line: the trace id is the corr when no corr key is present, the span id the span.
        let got = parse(&format!(
            r#"{{"msg":"m","traceparent":"00-{trace}-{span}-01","a":1}}"#
        ))
        .unwrap();
        assert_eq!(
            (got.corr.as_deref(), got.span.as_deref()),
            (Some(trace), Some(span))
        );
        assert_eq!(Value::Object(got.fields), serde_json::json!({"a": 1}));
        // A request id stays the corr; the traceparent still gives the span and stays a field.
        let line = format!(r#"{{"msg":"m","request_id":"r-1","traceParent":"00-{trace}-{span}-01"}}"#);
        let got = parse(&line).unwrap();
        assert_eq!(
            (got.corr.as_deref(), got.span.as_deref()),
            (Some("r-1"), Some(span))
        );
        assert!(got.fields.contains_key("traceParent"));
        // OpenTelemetry's keys.
        let got = parse(r#"{"msg":"m","trace_id":"t-9","span_id":"s-9","spanId":"other"}"#).unwrap();
        assert_eq!(
            (got.corr.as_deref(), got.span.as_deref()),
            (Some("t-9"), Some("s-9"))
        );
        assert_eq!(got.fields.get("spanId"), Some(&Value::from("other")));
        // Other libraries' span keys: logstash-logback, Serilog CLEF, Google Cloud.
        for (line, want) in [
            (
                r#"{"message":"m","traceId":"t","spanId":"1f2e3d4c5b6a7980"}"#,
                "1f2e3d4c5b6a7980",
            ),
            (
                r#"{"@mt":"m","@tr":"t","@sp":"00f067aa0ba902b7"}"#,
                "00f067aa0ba902b7",
            ),
            (
                r#"{"message":"m","logging.googleapis.com/spanId":"000000000000004a"}"#,
                "000000000000004a",
            ),
        ] {
            assert_eq!(parse(line).unwrap().span.as_deref(), Some(want), "{line}");
        }
        // An invalid traceparent is an ordinary field.
        let got = parse(r#"{"msg":"m","traceparent":"00-nope"}"#).unwrap();
        assert_eq!((got.corr, got.span), (None, None));
        assert_eq!(got.fields.get("traceparent"), Some(&Value::from("00-nope")));
    }

    #[test]
    fn extracts_every_library_of_the_reference() {
        check(&[
            Case {
                name: "zap: float epoch seconds",
                line: r#"{"level":"info","ts":1795428900.123456,"caller":"server/handler.go:87","msg":"request served","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","status":200}"#,
                ts: Some("2026-11-23T10:15:00.123456000Z"),
                level: Some(Level::Info),
                msg: Some("request served"),
                corr: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
                fields: r#"{"caller":"server/handler.go:87","status":200}"#,
            },
            Case {
                name: "logrus: Go time.Time.String(), warning",
                line: r#"{"level":"warning","msg":"disk usage above threshold","time":"2026-11-23 03:15:00.123456789 -0700 MST","mount":"/data","used_pct":91}"#,
                ts: Some("2026-11-23T10:15:00.123456789Z"),
                level: Some(Level::Warn),
                msg: Some("disk usage above threshold"),
                corr: None,
                fields: r#"{"mount":"/data","used_pct":91}"#,
            },
            Case {
                name: "logrus: modern RFC 3339 seconds",
                line: r#"{"level":"error","msg":"upstream timeout","request_id":"a1b2c3d4","time":"2026-11-23T18:15:00+08:00","upstream":"payments"}"#,
                ts: Some("2026-11-23T10:15:00.000000000Z"),
                level: Some(Level::Error),
                msg: Some("upstream timeout"),
                corr: Some("a1b2c3d4"),
                fields: r#"{"upstream":"payments"}"#,
            },
            Case {
                name: "slog: RFC 3339 nanos with offset",
                line: r#"{"time":"2026-11-23T05:15:00.123456789-05:00","level":"INFO","msg":"order created","request_id":"req-7f3a","order_id":98121}"#,
                ts: Some("2026-11-23T10:15:00.123456789Z"),
                level: Some(Level::Info),
                msg: Some("order created"),
                corr: Some("req-7f3a"),
                fields: r#"{"order_id":98121}"#,
            },
            Case {
                name: "zerolog: int epoch seconds, message",
                line: r#"{"level":"debug","user":"alice","time":1795428900,"message":"cache miss"}"#,
                ts: Some("2026-11-23T10:15:00.000000000Z"),
                level: Some(Level::Debug),
                msg: Some("cache miss"),
                corr: None,
                fields: r#"{"user":"alice"}"#,
            },
            Case {
                name: "pino: level 30, epoch ms",
                line: r#"{"level":30,"time":1795428900123,"pid":17,"hostname":"api-6d9f7c-x2k4p","reqId":"req-1","msg":"incoming request"}"#,
                ts: Some("2026-11-23T10:15:00.123000000Z"),
                level: Some(Level::Info),
                msg: Some("incoming request"),
                corr: Some("req-1"),
                fields: r#"{"pid":17,"hostname":"api-6d9f7c-x2k4p"}"#,
            },
            Case {
                name: "pino: level 50, nested err kept",
                line: r#"{"level":50,"time":1795428900456,"pid":17,"hostname":"api","reqId":"req-2","err":{"type":"Error","message":"boom","stack":"Error: boom\n    at handler"},"msg":"request failed"}"#,
                ts: Some("2026-11-23T10:15:00.456000000Z"),
                level: Some(Level::Error),
                msg: Some("request failed"),
                corr: Some("req-2"),
                fields: r#"{"pid":17,"hostname":"api","err":{"type":"Error","message":"boom","stack":"Error: boom\n    at handler"}}"#,
            },
            Case {
                name: "bunyan: level 40, ISO ms",
                line: r#"{"name":"billing","hostname":"billing-0","pid":1,"req_id":"9f0e3c2a-5b1d-4e7f-8a6b-2c4d6e8f0a1b","level":40,"msg":"retrying charge","time":"2026-11-23T10:15:00.851Z","v":0}"#,
                ts: Some("2026-11-23T10:15:00.851000000Z"),
                level: Some(Level::Warn),
                msg: Some("retrying charge"),
                corr: Some("9f0e3c2a-5b1d-4e7f-8a6b-2c4d6e8f0a1b"),
                fields: r#"{"name":"billing","hostname":"billing-0","pid":1,"v":0}"#,
            },
            Case {
                name: "winston: http",
                line: r#"{"level":"http","message":"GET /healthz 200","timestamp":"2026-11-23T10:15:00.042Z","service":"gateway"}"#,
                ts: Some("2026-11-23T10:15:00.042000000Z"),
                level: Some(Level::Debug),
                msg: Some("GET /healthz 200"),
                corr: None,
                fields: r#"{"service":"gateway"}"#,
            },
            Case {
                name: "winston: silly",
                line: r#"{"level":"silly","message":"cache state dumped","timestamp":"2026-11-23T10:15:01.000Z","service":"gateway","correlationId":"c-77"}"#,
                ts: Some("2026-11-23T10:15:01.000000000Z"),
                level: Some(Level::Trace),
                msg: Some("cache state dumped"),
                corr: Some("c-77"),
                fields: r#"{"service":"gateway"}"#,
            },
            Case {
                name: "structlog: event, warning",
                line: r#"{"event":"user logged in","level":"warning","timestamp":"2026-11-23T10:15:00.123456Z","request_id":"5d1c9a7e","user_id":42}"#,
                ts: Some("2026-11-23T10:15:00.123456000Z"),
                level: Some(Level::Warn),
                msg: Some("user logged in"),
                corr: Some("5d1c9a7e"),
                fields: r#"{"user_id":42}"#,
            },
            Case {
                name: "python-json-logger: asctime with comma, no zone",
                line: r#"{"asctime":"2026-11-23 10:15:00,123","levelname":"CRITICAL","name":"worker","message":"database unreachable"}"#,
                ts: Some("2026-11-23T10:15:00.123000000Z"),
                level: Some(Level::Fatal),
                msg: Some("database unreachable"),
                corr: None,
                fields: r#"{"name":"worker"}"#,
            },
            Case {
                name: "logstash-logback-encoder: offset, level_value stays",
                line: r#"{"@timestamp":"2026-11-23T11:15:00.123+01:00","@version":"1","message":"payment declined","logger_name":"com.acme.PaymentService","thread_name":"http-nio-8080-exec-3","level":"WARN","level_value":30000,"traceId":"65a1f2c3d4e5f60718293a4b5c6d7e8f","spanId":"1f2e3d4c5b6a7980"}"#,
                ts: Some("2026-11-23T10:15:00.123000000Z"),
                level: Some(Level::Warn),
                msg: Some("payment declined"),
                corr: Some("65a1f2c3d4e5f60718293a4b5c6d7e8f"),
                fields: r#"{"@version":"1","logger_name":"com.acme.PaymentService","thread_name":"http-nio-8080-exec-3","level_value":30000}"#,
            },
            Case {
                name: "logstash-logback-encoder: level_value alone",
                line: r#"{"@timestamp":"2026-11-23T11:15:00.123+01:00","message":"charge failed","level_value":40000}"#,
                ts: Some("2026-11-23T10:15:00.123000000Z"),
                level: Some(Level::Error),
                msg: Some("charge failed"),
                corr: None,
                fields: "{}",
            },
            Case {
                name: "log4j2 ECS: dotted top-level keys",
                line: r#"{"@timestamp":"2026-11-23T10:15:00.123Z","log.level":"ERROR","message":"Order failed","ecs.version":"1.2.0","service.name":"orders","process.thread.name":"main","log.logger":"com.acme.Orders","trace.id":"0af7651916cd43dd8448eb211c80319c","transaction.id":"b7ad6b7169203331"}"#,
                ts: Some("2026-11-23T10:15:00.123000000Z"),
                level: Some(Level::Error),
                msg: Some("Order failed"),
                corr: Some("0af7651916cd43dd8448eb211c80319c"),
                fields: r#"{"ecs.version":"1.2.0","service.name":"orders","process.thread.name":"main","log.logger":"com.acme.Orders","transaction.id":"b7ad6b7169203331"}"#,
            },
            Case {
                name: "log4j2 ECS: nested objects, emptied parents dropped",
                line: r#"{"@timestamp":"2026-11-23T10:15:00.123Z","log":{"level":"INFO","logger":"com.acme.Orders"},"message":"Order placed","trace":{"id":"0af7651916cd43dd8448eb211c80319c"},"service":{"name":"orders"}}"#,
                ts: Some("2026-11-23T10:15:00.123000000Z"),
                level: Some(Level::Info),
                msg: Some("Order placed"),
                corr: Some("0af7651916cd43dd8448eb211c80319c"),
                fields: r#"{"log":{"logger":"com.acme.Orders"},"service":{"name":"orders"}}"#,
            },
            Case {
                name: "Serilog CLEF: template only, no @l is info",
                line: r#"{"@t":"2026-11-23T10:15:00.8532799Z","@mt":"Processed {@Position} in {Elapsed:000} ms.","Position":{"Latitude":25,"Longitude":134},"Elapsed":34,"@tr":"4bf92f3577b34da6a3ce929d0e0e4736","@sp":"00f067aa0ba902b7"}"#,
                ts: Some("2026-11-23T10:15:00.853279900Z"),
                level: Some(Level::Info),
                msg: Some("Processed {@Position} in {Elapsed:000} ms."),
                corr: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
                fields: r#"{"Position":{"Latitude":25,"Longitude":134},"Elapsed":34}"#,
            },
            Case {
                name: "Serilog CLEF: @l Warning, rendered @m preferred",
                line: r#"{"@t":"2026-11-23T10:15:00.1234567Z","@m":"Disk quota 93% reached","@mt":"Disk quota {Percent}% reached","@l":"Warning","Percent":93,"RequestId":"0HN7M2KQ3B1QF:00000001"}"#,
                ts: Some("2026-11-23T10:15:00.123456700Z"),
                level: Some(Level::Warn),
                msg: Some("Disk quota 93% reached"),
                corr: Some("0HN7M2KQ3B1QF:00000001"),
                fields: r#"{"@mt":"Disk quota {Percent}% reached","Percent":93}"#,
            },
            Case {
                name: "tracing-subscriber: fields.message and span.request_id nested",
                line: r#"{"timestamp":"2026-11-23T10:15:00.123456Z","level":"INFO","fields":{"message":"handled request","status":200},"target":"api::http","span":{"request_id":"d3b07384","name":"request"},"spans":[{"request_id":"d3b07384","name":"request"}]}"#,
                ts: Some("2026-11-23T10:15:00.123456000Z"),
                level: Some(Level::Info),
                msg: Some("handled request"),
                corr: Some("d3b07384"),
                fields: r#"{"fields":{"status":200},"target":"api::http","span":{"name":"request"},"spans":[{"request_id":"d3b07384","name":"request"}]}"#,
            },
            Case {
                name: "Google Cloud: NOTICE, trace resource name",
                line: r#"{"severity":"NOTICE","message":"user signed up","time":"2026-11-23T10:15:00.123456789Z","logging.googleapis.com/trace":"projects/acme-prod/traces/06796866738c859f2f19b7cfb3214824","logging.googleapis.com/spanId":"000000000000004a","logging.googleapis.com/trace_sampled":true,"component":"signup"}"#,
                ts: Some("2026-11-23T10:15:00.123456789Z"),
                level: Some(Level::Info),
                msg: Some("user signed up"),
                corr: Some("06796866738c859f2f19b7cfb3214824"),
                fields: r#"{"logging.googleapis.com/trace_sampled":true,"component":"signup"}"#,
            },
            Case {
                name: "Google Cloud: ERROR",
                line: r#"{"severity":"ERROR","message":"payment backend unavailable","time":"2026-11-23T10:15:02Z","logging.googleapis.com/trace":"projects/acme-prod/traces/4bf92f3577b34da6a3ce929d0e0e4736"}"#,
                ts: Some("2026-11-23T10:15:02.000000000Z"),
                level: Some(Level::Error),
                msg: Some("payment backend unavailable"),
                corr: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
                fields: "{}",
            },
            Case {
                name: "Google Cloud: DEFAULT is no level",
                line: r#"{"severity":"DEFAULT","message":"starting","timestamp":{"seconds":1795428900,"nanos":5000}}"#,
                ts: Some("2026-11-23T10:15:00.000005000Z"),
                level: None,
                msg: Some("starting"),
                corr: None,
                fields: "{}",
            },
            Case {
                name: "nginx JSON access log: no level, no msg",
                line: r#"{"time_iso8601":"2026-11-23T10:15:00+00:00","remote_addr":"10.0.3.17","request":"GET /api/orders?page=2 HTTP/1.1","status":"200","body_bytes_sent":"5120","request_time":"0.012","http_user_agent":"curl/8.5.0","request_id":"7c8d2f0e9a1b4c3d5e6f7a8b9c0d1e2f"}"#,
                ts: Some("2026-11-23T10:15:00.000000000Z"),
                level: None,
                msg: None,
                corr: Some("7c8d2f0e9a1b4c3d5e6f7a8b9c0d1e2f"),
                fields: r#"{"remote_addr":"10.0.3.17","request":"GET /api/orders?page=2 HTTP/1.1","status":"200","body_bytes_sent":"5120","request_time":"0.012","http_user_agent":"curl/8.5.0"}"#,
            },
            Case {
                name: "envoy JSON access log",
                line: r#"{"start_time":"2026-11-23T10:15:00.310Z","method":"POST","path":"/v1/charge","protocol":"HTTP/2","response_code":503,"response_flags":"UO","duration":12,"upstream_host":"10.0.7.4:8080","x_request_id":"3e5b8c1a-7d2f-4e6a-9b0c-1d2e3f4a5b6c"}"#,
                ts: Some("2026-11-23T10:15:00.310000000Z"),
                level: None,
                msg: None,
                corr: Some("3e5b8c1a-7d2f-4e6a-9b0c-1d2e3f4a5b6c"),
                fields: r#"{"method":"POST","path":"/v1/charge","protocol":"HTTP/2","response_code":503,"response_flags":"UO","duration":12,"upstream_host":"10.0.7.4:8080"}"#,
            },
            Case {
                name: "OTLP-style flat record: epoch ns",
                line: r#"{"timeUnixNano":1795428900123456789,"body":"hello","traceId":"5B8EFFF798038103D269B633813FC60C"}"#,
                ts: Some("2026-11-23T10:15:00.123456789Z"),
                level: None,
                msg: Some("hello"),
                corr: Some("5B8EFFF798038103D269B633813FC60C"),
                fields: "{}",
            },
            Case {
                name: "OpenTelemetry OTLP/JSON LogRecord: AnyValue body, attributes list",
                line: r#"{"timeUnixNano":"1795428900123456789","observedTimeUnixNano":"1795428900200000000","severityNumber":17,"severityText":"Error","body":{"stringValue":"charge declined"},"attributes":[{"key":"payment.provider","value":{"stringValue":"acme"}},{"key":"retry","value":{"intValue":"2"}},{"key":"amount","value":{"doubleValue":12.5}},{"key":"live","value":{"boolValue":true}},{"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"1"}]}}},{"key":"card","value":{"kvlistValue":{"values":[{"key":"brand","value":{"stringValue":"visa"}}]}}}],"droppedAttributesCount":0,"flags":1,"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}"#,
                ts: Some("2026-11-23T10:15:00.123456789Z"),
                level: Some(Level::Error),
                msg: Some("charge declined"),
                corr: Some("5b8efff798038103d269b633813fc60c"),
                fields: r#"{"observedTimeUnixNano":"1795428900200000000","severityNumber":17,"attributes":{"payment.provider":"acme","retry":2,"amount":12.5,"live":true,"tags":["a",1],"card":{"brand":"visa"}},"droppedAttributesCount":0,"flags":1}"#,
            },
            Case {
                name: "OpenTelemetry OTLP/JSON LogRecord: no event time, severityNumber only, structured body",
                line: r#"{"timeUnixNano":"0","observedTimeUnixNano":"1795428900200000000","severityNumber":9,"body":{"kvlistValue":{"values":[{"key":"event","value":{"stringValue":"login"}}]}},"traceId":"","spanId":""}"#,
                ts: Some("2026-11-23T10:15:00.200000000Z"),
                level: Some(Level::Info),
                msg: Some(r#"{"event":"login"}"#),
                corr: None,
                fields: r#"{"timeUnixNano":"0","traceId":"","spanId":""}"#,
            },
            Case {
                name: "Monolog: numeric level off the pino scale, level_name wins",
                line: r#"{"message":"quota low","context":{"left":3},"level":300,"level_name":"WARNING","channel":"app","datetime":"2026-11-23T10:15:00.123456+00:00","extra":{}}"#,
                ts: Some("2026-11-23T10:15:00.123456000Z"),
                level: Some(Level::Warn),
                msg: Some("quota low"),
                corr: None,
                fields: r#"{"context":{"left":3},"level":300,"channel":"app","extra":{}}"#,
            },
        ]);
    }

    #[test]
    fn uninterpretable_values_stay_in_fields() {
        check(&[
            Case {
                name: "ts that does not parse",
                line: r#"{"time":"yesterday","level":"info","msg":"x"}"#,
                ts: None,
                level: Some(Level::Info),
                msg: Some("x"),
                corr: None,
                fields: r#"{"time":"yesterday"}"#,
            },
            Case {
                name: "first ts key bad, next one parses",
                line: r#"{"ts":"not a time","timestamp":"2026-11-23T10:15:00Z","msg":"x"}"#,
                ts: Some("2026-11-23T10:15:00.000000000Z"),
                level: None,
                msg: Some("x"),
                corr: None,
                fields: r#"{"ts":"not a time"}"#,
            },
            Case {
                name: "small number is no event time",
                line: r#"{"t":42,"date":"Mon, 23 Nov","msg":"x"}"#,
                ts: None,
                level: None,
                msg: Some("x"),
                corr: None,
                fields: r#"{"t":42,"date":"Mon, 23 Nov"}"#,
            },
            Case {
                name: "unknown level",
                line: r#"{"level":"loud","msg":"x"}"#,
                ts: None,
                level: None,
                msg: Some("x"),
                corr: None,
                fields: r#"{"level":"loud"}"#,
            },
            Case {
                name: "unknown level, next key recognised",
                line: r#"{"level":"INFO+2","severity":"warning"}"#,
                ts: None,
                level: Some(Level::Warn),
                msg: None,
                corr: None,
                fields: r#"{"level":"INFO+2"}"#,
            },
            Case {
                name: "CLEF with unknown @l is not defaulted to info",
                line: r#"{"@t":"2026-11-23T10:15:00Z","@l":"Loud","@m":"x"}"#,
                ts: Some("2026-11-23T10:15:00.000000000Z"),
                level: None,
                msg: Some("x"),
                corr: None,
                fields: r#"{"@l":"Loud"}"#,
            },
            Case {
                name: "empty and null corr skipped, bool corr kept",
                line: r#"{"corr":true,"request_id":"","trace_id":null,"traceId":"abc"}"#,
                ts: None,
                level: None,
                msg: None,
                corr: Some("abc"),
                fields: r#"{"corr":true,"request_id":"","trace_id":null}"#,
            },
            Case {
                name: "null msg skipped",
                line: r#"{"msg":null,"message":"real"}"#,
                ts: None,
                level: None,
                msg: Some("real"),
                corr: None,
                fields: r#"{"msg":null}"#,
            },
        ]);
    }

    #[test]
    fn odd_shapes_are_handled() {
        check(&[
            Case {
                name: "empty object",
                line: "{}",
                ts: None,
                level: None,
                msg: None,
                corr: None,
                fields: "{}",
            },
            Case {
                name: "whitespace around the object",
                line: " \t{\"msg\":\"x\"}\r\n ",
                ts: None,
                level: None,
                msg: Some("x"),
                corr: None,
                fields: "{}",
            },
            Case {
                name: "number msg and number corr become text",
                line: r#"{"msg":42,"request_id":12345}"#,
                ts: None,
                level: None,
                msg: Some("42"),
                corr: Some("12345"),
                fields: "{}",
            },
            Case {
                name: "level as digit string",
                line: r#"{"level":"40"}"#,
                ts: None,
                level: Some(Level::Warn),
                msg: None,
                corr: None,
                fields: "{}",
            },
            Case {
                name: "flat key beats nested path",
                line: r#"{"trace.id":"flat","trace":{"id":"nested"}}"#,
                ts: None,
                level: None,
                msg: None,
                corr: Some("flat"),
                fields: r#"{"trace":{"id":"nested"}}"#,
            },
            Case {
                name: "namespace object is no message",
                line: r#"{"log":{"level":"info","logger":"app"}}"#,
                ts: None,
                level: Some(Level::Info),
                msg: None,
                corr: None,
                fields: r#"{"log":{"logger":"app"}}"#,
            },
            Case {
                name: "nested fields kept as nested, escapes decoded",
                line: r#"{"msg":"tab\there \u00e9\ud83d\ude00","http":{"request":{"method":"GET","headers":{"x-a":["1","2"]}},"status":200},"tags":["a",{"b":null}],"ratio":0.5,"ok":false}"#,
                ts: None,
                level: None,
                msg: Some("tab\there é😀"),
                corr: None,
                fields: r#"{"http":{"request":{"method":"GET","headers":{"x-a":["1","2"]}},"status":200},"tags":["a",{"b":null}],"ratio":0.5,"ok":false}"#,
            },
        ]);
    }

    #[test]
    fn object_msg_becomes_its_json_text() {
        let got = parse(r#"{"message":{"text":"hi","code":7},"level":"info"}"#).unwrap();
        let msg: Value = serde_json::from_str(got.msg.as_deref().unwrap()).unwrap();
        assert_eq!(msg, serde_json::json!({"text":"hi","code":7}));
        assert!(got.fields.is_empty());
    }

    #[test]
    fn not_a_json_object_is_none_and_never_panics() {
        let deep_open = "{\"a\":".repeat(10_000);
        let deep = format!("{deep_open}1{}", "}".repeat(10_000));
        let invalid_utf8: &[u8] = b"{\"a\":\"\xff\xfe\",\"msg\":\"x\"}";
        let lossy_key: &[u8] = b"{\"\xc3\":1}";
        let not_objects: Vec<&[u8]> = vec![
            b"",
            b"   ",
            b"not json",
            b"{",
            b"{\"a\":",
            b"{\"a\":1",
            b"{\"a\":1}trailing",
            b"{\"a\":1} {\"b\":2}",
            b"{\"a\":1,}",
            b"{'a':1}",
            b"{\"a\":NaN}",
            b"{a:1}",
            b"[1]",
            b"\"str\"",
            b"42",
            b"null",
            b"}{",
            deep.as_bytes(),
            invalid_utf8,
            lossy_key,
        ];
        for input in not_objects {
            let mut content = input.to_vec();
            let got = parse_app_json(&mut content, &KeyConfig::default());
            assert_eq!(got, None, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(content.len(), input.len(), "content keeps its length");
        }

        // Accepted or not, these must not panic; when accepted, the value is kept.
        for input in [
            &b"{\"a\":123456789012345678901234567890}"[..],
            b"{\"a\":1e999}",
            b"{\"a\":-0}",
        ] {
            if let Some(got) = parse_app_json(&mut input.to_vec(), &KeyConfig::default()) {
                assert!(
                    got.fields.contains_key("a"),
                    "input {:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn nesting_up_to_the_limit_parses() {
        let nested = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let got = parse(&nested(MAX_DEPTH)).expect("nesting within the limit parses");
        let mut value = &Value::Object(got.fields);
        for _ in 0..MAX_DEPTH {
            value = &value["a"];
        }
        assert_eq!(value, &Value::from(1));
        assert_eq!(parse(&nested(MAX_DEPTH + 1)), None);
    }

    #[test]
    fn reused_buffers_survive_long_and_failed_lines() {
        let long_msg = "x".repeat(SCRATCH_MAX_LINE * 2);
        let long = format!(r#"{{"msg":"{long_msg}","level":"warn"}}"#);
        let lines = [
            r#"{"msg":"first","level":"info"}"#.to_owned(),
            r#"{"msg":"broken""#.to_owned(),
            long,
            r#"{"msg":"after","level":"error","n":1}"#.to_owned(),
        ];
        let got: Vec<Option<(Option<Level>, usize)>> = lines
            .iter()
            .map(|line| parse(line).map(|app| (app.level, app.msg.map_or(0, |msg| msg.len()))))
            .collect();
        assert_eq!(
            got,
            vec![
                Some((Some(Level::Info), 5)),
                None,
                Some((Some(Level::Warn), long_msg.len())),
                Some((Some(Level::Error), 5)),
            ]
        );
    }

    #[test]
    fn key_config_overrides_defaults_and_rejects_typos() {
        let keys: KeyConfig = serde_json::from_str(r#"{"corr":["tenant_request"]}"#).unwrap();
        assert_eq!(keys.corr, vec!["tenant_request".to_owned()]);
        assert_eq!(keys.ts, KeyConfig::default().ts);
        let got = parse_app_json(
            &mut br#"{"tenant_request":"t-1","request_id":"r-1","msg":"x"}"#.to_vec(),
            &keys,
        )
        .unwrap();
        assert_eq!(got.corr.as_deref(), Some("t-1"));
        assert_eq!(got.fields.get("request_id"), Some(&Value::from("r-1")));

        let err = serde_json::from_str::<KeyConfig>(r#"{"corr_keys":["x"]}"#).unwrap_err();
        assert!(err.to_string().contains("corr_keys"), "{err}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut content = b"{".to_vec();
            content.extend_from_slice(&tail);
            let len = content.len();
            let _ = parse_app_json(&mut content, &KeyConfig::default());
            prop_assert_eq!(content.len(), len);
        }

        #[test]
        fn unconfigured_keys_land_in_fields_as_serde_json_reads_them(
            object in proptest::collection::btree_map(
                "x_[a-z.]{0,8}",
                prop_oneof![
                    any::<String>().prop_map(Value::from),
                    any::<i64>().prop_map(Value::from),
                    any::<bool>().prop_map(Value::from),
                ],
                0..12,
            )
        ) {
            let object: Map<String, Value> = object.into_iter().collect();
            let line = serde_json::to_string(&object).unwrap();
            let got = parse(&line).unwrap();
            prop_assert_eq!(got.fields, object);
            prop_assert_eq!(got.msg, None);
        }
    }
}
