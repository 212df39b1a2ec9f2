//! The container runtime's wrapper around every application line (log-formats.md §A).
//!
//! - CRI (containerd, CRI-O): `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <content>`;
//! - Docker json-file: `{"log":"…\n","stream":"stdout","time":"…"}`, partial when `log` does
//!   not end in `\n`;
//! - plain: any other file, one line per record.
//!
//! The format is detected per file from its first line. A line that does not fit its file's
//! format is kept whole as a plain stdout line: nothing is dropped.

use std::borrow::Cow;

use corral_schema::{Stream, Timestamp};
use serde::Deserialize;

/// The wrapper format of one log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Cri,
    Docker,
    Plain,
}

/// One line with the runtime's wrapper taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLine<'a> {
    /// The runtime's timestamp, when the wrapper has one.
    pub ts: Option<Timestamp>,
    pub stream: Stream,
    /// True when the application's line continues in the next line of this stream.
    pub partial: bool,
    /// The application's bytes, without the line terminator.
    pub content: Cow<'a, [u8]>,
}

impl LogFormat {
    /// Detects a file's format from its first line (without the trailing `\n`).
    pub fn detect(first_line: &[u8]) -> LogFormat {
        if parse_cri(first_line).is_some() {
            LogFormat::Cri
        } else if first_line.starts_with(b"{") && parse_docker(first_line).is_some() {
            LogFormat::Docker
        } else {
            LogFormat::Plain
        }
    }

    /// Unwraps one line (without its trailing `\n`) of a file of this format. A line that does
    /// not fit the format comes back as a plain line.
    pub fn unwrap_line(self, line: &[u8]) -> RuntimeLine<'_> {
        let parsed = match self {
            LogFormat::Cri => parse_cri(line),
            LogFormat::Docker => parse_docker(line),
            LogFormat::Plain => None,
        };
        parsed.unwrap_or_else(|| plain(line))
    }
}

fn plain(line: &[u8]) -> RuntimeLine<'_> {
    let content = line.strip_suffix(b"\r").unwrap_or(line);
    RuntimeLine {
        ts: None,
        stream: Stream::Stdout,
        partial: false,
        content: Cow::Borrowed(content),
    }
}

/// Parses a CRI line: `2026-11-23T10:15:00.123456789Z stdout F content`.
pub fn parse_cri(line: &[u8]) -> Option<RuntimeLine<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?)
        .ok()
        .and_then(Timestamp::parse)?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let tag = parts.next()?;
    // The tag may carry extra `:`-separated tags (`P:TAG1:TAG2`); the first says full or partial.
    let partial = match tag.split(|b| *b == b':').next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let content = parts.next().unwrap_or_default();
    let content = if partial {
        content
    } else {
        content.strip_suffix(b"\r").unwrap_or(content)
    };
    Some(RuntimeLine {
        ts: Some(ts),
        stream,
        partial,
        content: Cow::Borrowed(content),
    })
}

#[derive(Deserialize)]
struct DockerLine {
    log: String,
    stream: String,
    #[serde(default)]
    time: Option<String>,
}

/// Parses a Docker json-file line.
pub fn parse_docker(line: &[u8]) -> Option<RuntimeLine<'static>> {
    let parsed: DockerLine = serde_json::from_slice(line).ok()?;
    let stream = match parsed.stream.as_str() {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let ts = parsed.time.as_deref().and_then(Timestamp::parse);
    let mut content = parsed.log.into_bytes();
    let partial = !content.ends_with(b"\n");
    if !partial {
        content.pop();
        if content.ends_with(b"\r") {
            content.pop();
        }
    }
    Some(RuntimeLine {
        ts,
        stream,
        partial,
        content: Cow::Owned(content),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Option<Timestamp> {
        Timestamp::parse(text)
    }

    #[test]
    fn unwraps_each_runtime_format() {
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, LogFormat, (Option<Timestamp>, Stream, bool, &str))] = &[
            // containerd, UTC node: trimmed fraction, Z.
            (
                "2026-11-23T10:15:00.1234Z stdout F {\"msg\":\"hi\"}",
                LogFormat::Cri,
                (
                    ts("2026-11-23T10:15:00.1234Z"),
                    Stream::Stdout,
                    false,
                    "{\"msg\":\"hi\"}",
                ),
            ),
            // containerd on a node in a local zone, no fraction.
            (
                "2026-11-23T11:15:00+01:00 stderr F boom",
                LogFormat::Cri,
                (ts("2026-11-23T10:15:00Z"), Stream::Stderr, false, "boom"),
            ),
            // CRI-O: nine digits, numeric offset.
            (
                "2026-11-23T10:15:00.000000001+00:00 stdout P part one ",
                LogFormat::Cri,
                (
                    ts("2026-11-23T10:15:00.000000001Z"),
                    Stream::Stdout,
                    true,
                    "part one ",
                ),
            ),
            // Extra tags after P, empty content, CRLF stripped from a full line.
            (
                "2026-11-23T10:15:00Z stdout P:TAG1:TAG2 x",
                LogFormat::Cri,
                (ts("2026-11-23T10:15:00Z"), Stream::Stdout, true, "x"),
            ),
            (
                "2026-11-23T10:15:00Z stdout F",
                LogFormat::Cri,
                (ts("2026-11-23T10:15:00Z"), Stream::Stdout, false, ""),
            ),
            (
                "2026-11-23T10:15:00Z stdout F windows\r",
                LogFormat::Cri,
                (ts("2026-11-23T10:15:00Z"), Stream::Stdout, false, "windows"),
            ),
            // Docker json-file: full and partial.
            (
                r#"{"log":"{\"level\":\"info\"}\n","stream":"stdout","time":"2026-11-23T10:15:00.8443515Z"}"#,
                LogFormat::Docker,
                (
                    ts("2026-11-23T10:15:00.8443515Z"),
                    Stream::Stdout,
                    false,
                    "{\"level\":\"info\"}",
                ),
            ),
            (
                r#"{"log":"chunk \u003cb\u003e","stream":"stderr","attrs":{"tag":"x"},"time":"2026-11-23T10:15:00Z"}"#,
                LogFormat::Docker,
                (ts("2026-11-23T10:15:00Z"), Stream::Stderr, true, "chunk <b>"),
            ),
            // Plain lines, and lines that do not fit their file's format.
            (
                "just text",
                LogFormat::Plain,
                (None, Stream::Stdout, false, "just text"),
            ),
            (
                "not a cri line",
                LogFormat::Cri,
                (None, Stream::Stdout, false, "not a cri line"),
            ),
            (
                "2026-11-23T10:15:00Z stdin F x",
                LogFormat::Cri,
                (None, Stream::Stdout, false, "2026-11-23T10:15:00Z stdin F x"),
            ),
            (
                "2026-11-23T10:15:00Z stdout X x",
                LogFormat::Cri,
                (None, Stream::Stdout, false, "2026-11-23T10:15:00Z stdout X x"),
            ),
            (
                "{\"log\":1}",
                LogFormat::Docker,
                (None, Stream::Stdout, false, "{\"log\":1}"),
            ),
        ];
        for (line, format, (want_ts, want_stream, want_partial, want_content)) in cases {
            let got = format.unwrap_line(line.as_bytes());
            assert_eq!(got.ts, *want_ts, "ts of {line:?}");
            assert_eq!(got.stream, *want_stream, "stream of {line:?}");
            assert_eq!(got.partial, *want_partial, "partial of {line:?}");
            assert_eq!(
                String::from_utf8_lossy(&got.content),
                *want_content,
                "content of {line:?}"
            );
        }
    }

    #[test]
    fn detects_the_format_from_the_first_line() {
        assert_eq!(
            LogFormat::detect(b"2026-11-23T10:15:00.5Z stdout F hello"),
            LogFormat::Cri
        );
        assert_eq!(
            LogFormat::detect(b"2026-11-23T10:15:00.123456789+02:00 stderr P x"),
            LogFormat::Cri
        );
        assert_eq!(
            LogFormat::detect(br#"{"log":"hello\n","stream":"stdout","time":"2026-11-23T10:15:00Z"}"#),
            LogFormat::Docker
        );
        assert_eq!(
            LogFormat::detect(br#"{"msg":"an app writing JSON to a file"}"#),
            LogFormat::Plain
        );
        assert_eq!(LogFormat::detect(b"plain text"), LogFormat::Plain);
        assert_eq!(LogFormat::detect(b""), LogFormat::Plain);
        assert_eq!(LogFormat::detect(b"\xff\xfe\x00garbage"), LogFormat::Plain);
    }
}
