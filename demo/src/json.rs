//! JSON object lines written key by key, in the order each logging library prints them.

use std::fmt::Write as _;

/// A JSON value of a generated record.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Str(String),
    Int(i64),
    /// A number printed with a fixed count of decimals (amounts, durations).
    Fixed(f64, usize),
    Bool(bool),
    Obj(Vec<(&'static str, Val)>),
}

impl From<&str> for Val {
    fn from(value: &str) -> Val {
        Val::Str(value.to_owned())
    }
}

impl From<&String> for Val {
    fn from(value: &String) -> Val {
        Val::Str(value.clone())
    }
}

impl From<i64> for Val {
    fn from(value: i64) -> Val {
        Val::Int(value)
    }
}

impl From<bool> for Val {
    fn from(value: bool) -> Val {
        Val::Bool(value)
    }
}

/// Milliseconds with three decimals, from nanoseconds.
pub(crate) fn millis(nanos: i64) -> Val {
    Val::Fixed(nanos as f64 / 1e6, 3)
}

/// An amount in euros, from cents.
pub(crate) fn euros(cents: i64) -> Val {
    Val::Fixed(cents as f64 / 100.0, 2)
}

/// Builds one JSON object line, keys in the order written (as the logging libraries print them).
#[derive(Debug)]
pub(crate) struct JsonLine {
    pub(crate) out: String,
}

impl JsonLine {
    pub(crate) fn new() -> JsonLine {
        JsonLine {
            out: String::from("{"),
        }
    }

    pub(crate) fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_json_str(&mut self.out, key);
        self.out.push(':');
    }

    pub(crate) fn field(&mut self, key: &str, value: &Val) -> &mut JsonLine {
        self.key(key);
        push_json_value(&mut self.out, value);
        self
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut JsonLine {
        self.key(key);
        push_json_str(&mut self.out, value);
        self
    }

    /// Writes `value` as it is: a number.
    pub(crate) fn raw(&mut self, key: &str, value: impl std::fmt::Display) -> &mut JsonLine {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    pub(crate) fn fields(&mut self, fields: &[(&str, Val)]) -> &mut JsonLine {
        for (key, value) in fields {
            self.field(key, value);
        }
        self
    }

    pub(crate) fn finish(&mut self) -> String {
        self.out.push('}');
        std::mem::take(&mut self.out)
    }
}

pub(crate) fn push_json_value(out: &mut String, value: &Val) {
    match value {
        Val::Str(text) => push_json_str(out, text),
        Val::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Val::Fixed(x, decimals) => {
            let _ = write!(out, "{x:.decimals$}");
        }
        Val::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Val::Obj(fields) => {
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(out, key);
                out.push(':');
                push_json_value(out, value);
            }
            out.push('}');
        }
    }
}

pub(crate) fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
