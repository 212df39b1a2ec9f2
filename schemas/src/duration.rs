//! Human durations as config files and query parameters spell them: `500ms`, `90s`, `15m`,
//! `36h`, `7d`, `2w`, `1y` (365 days), and sums of those (`1h30m`).

use std::time::Duration;

/// Error returned for a string that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: expected a number and a unit (ms, s, m, h, d, w, y), e.g. 15m or 7d")]
pub struct DurationError {
    /// The text that was rejected.
    pub input: String,
}

/// Parses a human duration. Returns an error naming the input for anything else, including
/// an empty string, a number without a unit and values that overflow.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let error = || DurationError {
        input: input.to_owned(),
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(error());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(error());
        }
        let value: u64 = rest[..digits_end].parse().map_err(|_| error())?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit_secs: u64 = match &rest[..unit_end] {
            "ms" => {
                total = total
                    .checked_add(Duration::from_millis(value))
                    .ok_or_else(error)?;
                rest = &rest[unit_end..];
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            _ => return Err(error()),
        };
        let secs = value.checked_mul(unit_secs).ok_or_else(error)?;
        total = total.checked_add(Duration::from_secs(secs)).ok_or_else(error)?;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("500ms", Some(Duration::from_millis(500))),
            ("90s", Some(Duration::from_secs(90))),
            ("15m", Some(Duration::from_secs(900))),
            ("36h", Some(Duration::from_secs(36 * 3600))),
            ("7d", Some(Duration::from_secs(7 * 86_400))),
            ("2w", Some(Duration::from_secs(14 * 86_400))),
            ("1y", Some(Duration::from_secs(365 * 86_400))),
            ("7y", Some(Duration::from_secs(7 * 365 * 86_400))),
            ("1h30m", Some(Duration::from_secs(5400))),
            (" 0s ", Some(Duration::ZERO)),
            ("", None),
            ("15", None),
            ("m", None),
            ("15 m", None),
            ("-5m", None),
            ("1.5h", None),
            ("3fortnights", None),
            ("99999999999999999999y", None),
            ("999999999999999999y", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).ok(), *want, "input {input:?}");
        }
        assert_eq!(
            parse_duration("15").unwrap_err().to_string(),
            "invalid duration \"15\": expected a number and a unit (ms, s, m, h, d, w, y), e.g. 15m or 7d"
        );
    }
}
