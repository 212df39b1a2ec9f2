//! Bounds on the work one request may ask for (`[indexer]` config keys), checked before any
//! split is touched: the length and nesting of `q`, and the most hits of one search.

use corral_schema::api::DEFAULT_MAX_LIMIT;

use crate::query::ParamError;

/// Default of `[indexer] max_query_bytes`.
pub const DEFAULT_MAX_QUERY_BYTES: usize = 8 * 1024;
/// Default of `[indexer] max_query_depth`.
pub const DEFAULT_MAX_QUERY_DEPTH: usize = 32;

/// Bounds on the work one request may ask for (`[indexer]` config keys). Checked before any
/// split is touched: tantivy's query parser recurses once per nesting level, so an unchecked
/// `((((…` of a few KB overflows the stack and takes the whole process down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// `max_query_bytes`: the longest `q` accepted (searches, holds, keep rules).
    pub max_query_bytes: usize,
    /// `max_query_depth`: the deepest nesting of parentheses and `NOT`/`+`/`-` in a `q`.
    pub max_query_depth: usize,
    /// `max_limit`: the most hits one search answers; more are paged with `after`.
    pub max_limit: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_query_bytes: DEFAULT_MAX_QUERY_BYTES,
            max_query_depth: DEFAULT_MAX_QUERY_DEPTH,
            max_limit: DEFAULT_MAX_LIMIT,
        }
    }
}

impl QueryLimits {
    /// Checks the length and nesting of `q` without parsing it.
    pub fn check_q(&self, q: &str) -> Result<(), ParamError> {
        if q.len() > self.max_query_bytes {
            return Err(ParamError(format!(
                "parameter q is {} bytes long: at most {} are accepted (indexer.max_query_bytes)",
                q.len(),
                self.max_query_bytes
            )));
        }
        let depth = nesting_depth(q);
        if depth > self.max_query_depth {
            return Err(ParamError(format!(
                "parameter q nests {depth} levels deep (parentheses, NOT, + and -): at most {} are \
                 accepted (indexer.max_query_depth)",
                self.max_query_depth
            )));
        }
        Ok(())
    }
}

/// The deepest nesting of `q` as tantivy's parser would recurse into it: each open parenthesis
/// and each prefix operator (`NOT`, `+`, `-`) waiting for its operand is one level. Quoted
/// phrases and escaped characters are skipped. Linear, and never recursive itself.
fn nesting_depth(q: &str) -> usize {
    let bytes = q.as_bytes();
    // Prefix operators pending when each open parenthesis was entered.
    let mut stack: Vec<usize> = Vec::new();
    let mut outer = 0; // sum of `stack`
    let mut pending = 0; // prefix operators waiting for their operand at this level
    let mut deepest = 0;
    let mut i = 0;
    let at_token_start = |i: usize| {
        i == 0
            || matches!(
                bytes[i - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'(' | b'+' | b'-' | b':'
            )
    };
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => {
                // A phrase is one operand.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                pending = 0;
            }
            b'(' => {
                stack.push(pending);
                outer += pending;
                pending = 0;
            }
            b')' => {
                outer -= stack.pop().unwrap_or(0);
                pending = 0;
            }
            b'+' | b'-' if at_token_start(i) => pending += 1,
            b'N' if at_token_start(i)
                && bytes[i..].starts_with(b"NOT")
                && bytes
                    .get(i + 3)
                    .is_none_or(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'(')) =>
            {
                pending += 1;
                i += 2;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                // An operand (a word, field:value, a range) ends every pending prefix.
                deepest = deepest.max(stack.len() + outer + pending);
                while i + 1 < bytes.len()
                    && !matches!(bytes[i + 1], b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b'"')
                {
                    // An escaped character belongs to the word, parenthesis or not.
                    i += if bytes[i + 1] == b'\\' { 2 } else { 1 };
                }
                pending = 0;
            }
        }
        deepest = deepest.max(stack.len() + outer + pending);
        i += 1;
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_without_parsing() {
        let cases = [
            ("payment declined", 0),
            ("(a OR b) AND c", 1),
            ("((a))", 2),
            ("NOT a", 1),
            ("-a +b", 1),
            ("-(-(-(a)))", 6),
            ("NOT NOT NOT a", 3),
            ("fields.user.id:(42 OR 43)", 1),
            ("\"((((\" AND order-42", 0),
            ("a\\(b", 0),
            ("NOTE -x", 1),
        ];
        for (q, want) in cases {
            assert_eq!(nesting_depth(q), want, "{q:?}");
        }
        let limits = QueryLimits::default();
        assert!(limits.check_q(&"(".repeat(32)).is_ok());
        let error = limits.check_q(&format!("{}a", "(".repeat(33))).unwrap_err().0;
        assert!(error.contains("nests 33 levels deep"), "{error}");
        let error = limits.check_q(&"a".repeat(8193)).unwrap_err().0;
        assert!(error.contains("8193 bytes long: at most 8192"), "{error}");
    }
}
