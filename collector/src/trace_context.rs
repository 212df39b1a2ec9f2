//! W3C Trace Context: the `traceparent` a line's JSON may carry
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>), which [`crate::app_json`] reads
//! into a record's corr and span.

/// Keys holding a W3C Trace Context `traceparent`.
pub const TRACEPARENT_KEYS: [&str; 3] = ["traceparent", "traceParent", "trace_parent"];

/// The ids of a W3C `traceparent` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub span_id: String,
}

impl TraceParent {
    /// Parses `<version>-<trace-id>-<parent-id>-<flags>` as W3C Trace Context says: lowercase
    /// hex of 2, 32, 16 and 2 digits, version `ff` and all-zero ids invalid; a version after
    /// `00` may carry more fields after the flags, `00` none.
    pub fn parse(text: &str) -> Option<TraceParent> {
        let mut parts = text.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |part: &str, len: usize| {
            part.len() == len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let valid = hex(version, 2)
            && version != "ff"
            && hex(trace_id, 32)
            && hex(span_id, 16)
            && hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && span_id.bytes().any(|b| b != b'0')
            && (version != "00" || parts.next().is_none());
        valid.then(|| TraceParent {
            trace_id: trace_id.to_owned(),
            span_id: span_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_values_are_read_as_w3c_trace_context_says() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let span = "00f067aa0ba902b7";
        // (value, valid)
        let cases = [
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true),
            (" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", true),
            // A later version may carry more after the flags; 00 may not.
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                true,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                false,
            ),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", false),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", false),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01", false),
            ("", false),
        ];
        for (value, valid) in cases {
            let parsed = TraceParent::parse(value);
            assert_eq!(parsed.is_some(), valid, "{value:?}");
            if let Some(parsed) = parsed {
                assert_eq!((parsed.trace_id.as_str(), parsed.span_id.as_str()), (trace, span));
            }
        }
    }
}
