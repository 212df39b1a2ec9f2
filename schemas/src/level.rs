//! Level normalisation: every logging library's spelling of a level becomes one of six.
//!
//! Names are matched case-insensitively (`WARNING`, `Warning`, `warn`, Serilog's `Information`,
//! `WRN`, Google Cloud's `CRITICAL`, Java's `SEVERE` …). Numbers are read on the scale the field
//! says: pino/bunyan (10 … 60) or syslog severities (0 … 7).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A normalised log level, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

/// The numeric scale a level field uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelScale {
    /// pino and bunyan: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal; values in
    /// between round up to the next level (a custom pino level 35 is a warning).
    Pino,
    /// syslog severities (RFC 5424): 0 emergency … 7 debug.
    Syslog,
}

impl Level {
    /// All levels, least severe first.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// Parses one of the six envelope names, in any case — what a request parameter, a flag
    /// or a config key takes (unlike [`Level::from_name`], no library spellings). The error says
    /// what is accepted.
    pub fn parse_strict(text: &str) -> Result<Level, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("expected one of trace, debug, info, warn, error, fatal; got {text:?}"))
    }

    /// Returns the envelope spelling (`trace` … `fatal`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Normalises a level name as any common logging library prints it, ignoring case and
    /// surrounding whitespace. A string of digits is read as a number on `scale`.
    /// Returns `None` for anything unrecognised.
    pub fn from_name(name: &str, scale: LevelScale) -> Option<Level> {
        let name = name.trim();
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            return name
                .parse::<i64>()
                .ok()
                .and_then(|n| Level::from_number(n, scale));
        }
        // Lowercase into a stack buffer: level names are short and this runs once per line.
        let mut buf = [0u8; 16];
        if name.len() > buf.len() {
            return None;
        }
        for (dst, src) in buf.iter_mut().zip(name.bytes()) {
            *dst = src.to_ascii_lowercase();
        }
        let level = match &buf[..name.len()] {
            b"trace" | b"trc" | b"verbose" | b"vrb" | b"finest" | b"finer" | b"all" => Level::Trace,
            b"debug" | b"dbg" | b"fine" | b"config" | b"d" => Level::Debug,
            b"info" | b"information" | b"informational" | b"inf" | b"notice" | b"default" | b"i" => {
                Level::Info
            }
            b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
            b"error" | b"err" | b"eror" | b"severe" | b"e" => Level::Error,
            b"fatal" | b"ftl" | b"critical" | b"crit" | b"panic" | b"dpanic" | b"alert" | b"emergency"
            | b"emerg" | b"f" => Level::Fatal,
            _ => return None,
        };
        Some(level)
    }

    /// Normalises a numeric level on the given scale. Returns `None` outside the scale.
    pub fn from_number(n: i64, scale: LevelScale) -> Option<Level> {
        match scale {
            LevelScale::Pino => match n {
                i64::MIN..=0 => None,
                1..=10 => Some(Level::Trace),
                11..=20 => Some(Level::Debug),
                21..=30 => Some(Level::Info),
                31..=40 => Some(Level::Warn),
                41..=50 => Some(Level::Error),
                _ => Some(Level::Fatal),
            },
            LevelScale::Syslog => match n {
                0..=2 => Some(Level::Fatal),
                3 => Some(Level::Error),
                4 => Some(Level::Warn),
                5 | 6 => Some(Level::Info),
                7 => Some(Level::Debug),
                _ => None,
            },
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string is not one of the six envelope level names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?} (expected one of trace, debug, info, warn, error, fatal)")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    /// Parses a level as a user types it (`--level warn`, `level=WARNING`): any spelling that
    /// [`Level::from_name`] understands, numbers excluded.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.bytes().any(|b| b.is_ascii_digit()) {
            return Err(UnknownLevel(s.to_owned()));
        }
        Level::from_name(s, LevelScale::Pino).ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_in_any_case() {
        let cases: &[(&str, Option<Level>)] = &[
            ("trace", Some(Level::Trace)),
            ("TRACE", Some(Level::Trace)),
            ("verbose", Some(Level::Trace)),
            ("Verbose", Some(Level::Trace)), // Serilog
            ("VRB", Some(Level::Trace)),
            ("finest", Some(Level::Trace)), // java.util.logging
            ("debug", Some(Level::Debug)),
            ("DEBUG", Some(Level::Debug)),
            ("Debug", Some(Level::Debug)),
            ("DBG", Some(Level::Debug)),
            ("fine", Some(Level::Debug)),
            ("info", Some(Level::Info)),
            ("INFO", Some(Level::Info)),
            ("Information", Some(Level::Info)), // Serilog
            ("INF", Some(Level::Info)),
            ("notice", Some(Level::Info)),
            ("NOTICE", Some(Level::Info)),  // Google Cloud
            ("DEFAULT", Some(Level::Info)), // Google Cloud
            ("  info ", Some(Level::Info)),
            ("warn", Some(Level::Warn)),
            ("WARN", Some(Level::Warn)),
            ("warning", Some(Level::Warn)), // structlog, python
            ("WARNING", Some(Level::Warn)),
            ("Warning", Some(Level::Warn)), // Serilog
            ("WRN", Some(Level::Warn)),
            ("error", Some(Level::Error)),
            ("ERROR", Some(Level::Error)),
            ("err", Some(Level::Error)),
            ("Error", Some(Level::Error)),
            ("SEVERE", Some(Level::Error)), // java.util.logging
            ("fatal", Some(Level::Fatal)),
            ("FATAL", Some(Level::Fatal)),
            ("Fatal", Some(Level::Fatal)),    // Serilog
            ("CRITICAL", Some(Level::Fatal)), // python, Google Cloud
            ("crit", Some(Level::Fatal)),
            ("panic", Some(Level::Fatal)),  // zap, logrus, zerolog
            ("dpanic", Some(Level::Fatal)), // zap
            ("ALERT", Some(Level::Fatal)),
            ("EMERGENCY", Some(Level::Fatal)),
            ("", None),
            ("loud", None),
            ("informationinformation", None),
            ("wärning", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                Level::from_name(input, LevelScale::Pino),
                *want,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn numbers_normalise_on_their_scale() {
        let pino: &[(i64, Option<Level>)] = &[
            (10, Some(Level::Trace)),
            (20, Some(Level::Debug)),
            (30, Some(Level::Info)),
            (35, Some(Level::Warn)),
            (40, Some(Level::Warn)),
            (50, Some(Level::Error)),
            (60, Some(Level::Fatal)),
            (100, Some(Level::Fatal)),
            (0, None),
            (-1, None),
        ];
        for (n, want) in pino {
            assert_eq!(Level::from_number(*n, LevelScale::Pino), *want, "pino {n}");
        }
        let syslog: &[(i64, Option<Level>)] = &[
            (0, Some(Level::Fatal)),
            (1, Some(Level::Fatal)),
            (2, Some(Level::Fatal)),
            (3, Some(Level::Error)),
            (4, Some(Level::Warn)),
            (5, Some(Level::Info)),
            (6, Some(Level::Info)),
            (7, Some(Level::Debug)),
            (8, None),
            (-1, None),
        ];
        for (n, want) in syslog {
            assert_eq!(Level::from_number(*n, LevelScale::Syslog), *want, "syslog {n}");
        }
        assert_eq!(Level::from_name("30", LevelScale::Pino), Some(Level::Info));
        assert_eq!(Level::from_name("3", LevelScale::Syslog), Some(Level::Error));
    }

    #[test]
    fn levels_order_by_severity_and_parse_from_user_input() {
        assert!(Level::Warn > Level::Info && Level::Fatal > Level::Error && Level::Trace < Level::Debug);
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        assert_eq!("30".parse::<Level>(), Err(UnknownLevel("30".into())));
        assert_eq!(serde_json::to_string(&Level::Warn).unwrap(), "\"warn\"");
        assert!(
            serde_json::from_str::<Level>("\"WARNING\"").is_err(),
            "the envelope spelling is strict"
        );
    }
}
