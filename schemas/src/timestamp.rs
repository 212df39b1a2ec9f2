//! Event and observation times.
//!
//! A [`Timestamp`] is nanoseconds since the Unix epoch, always UTC. Its envelope form is RFC 3339
//! with exactly nine fraction digits and `Z` (`2026-11-23T10:15:00.123456789Z`): fixed width, so
//! string order is time order.
//!
//! [`Timestamp::parse`] reads what applications print: RFC 3339 / ISO 8601 with 0–9 fraction
//! digits (`.` or `,`), `Z` or numeric offsets (`+01:00`, `+0100`), no zone (taken as UTC);
//! Go's `time.Time.String()` layout `2006-01-02 15:04:05.999999999 -0700 MST` (with or without
//! the monotonic `m=+…` suffix); and epoch numbers written as strings. Epoch numbers from JSON go
//! through [`Timestamp::from_epoch_i64`] / [`Timestamp::from_epoch_f64`], which pick seconds,
//! milliseconds, microseconds or nanoseconds from the magnitude.
//!
//! The calendar arithmetic is written out here (Howard Hinnant's `days_from_civil`) rather than
//! taken from a date crate: it runs once per log line on the collector's hot path, allocates
//! nothing, and is covered by the table-driven tests below.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// An instant in UTC with nanosecond precision (years 1677 to 2262).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    nanos: i64,
}

/// Default of `max_future_skew` (collector and indexer): how far after the moment a line was
/// read its own timestamp may lie before it is taken for a wrong clock.
pub const DEFAULT_MAX_FUTURE_SKEW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp { nanos: 0 };

    /// The earliest event time taken as it is, 1970-01-02T00:00:00Z: anything before it comes
    /// from a clock that was never set (or a zero value printed as a time).
    pub const EARLIEST_PLAUSIBLE: Timestamp = Timestamp {
        nanos: 86_400 * NANOS_PER_SEC,
    };

    /// Returns true when `self` cannot be the event time of a line read at `observed`: more than
    /// `max_future_skew` after it, or before [`Timestamp::EARLIEST_PLAUSIBLE`]. Such a record is
    /// indexed at `observed` and flagged `ts_adjusted` (DESIGN §2): one line stamped in the year
    /// 2200 would otherwise keep its whole split out of every retention pass and inside every
    /// `since=` query.
    pub fn is_implausible_for(self, observed: Timestamp, max_future_skew: std::time::Duration) -> bool {
        let skew = i64::try_from(max_future_skew.as_nanos()).unwrap_or(i64::MAX);
        self < Timestamp::EARLIEST_PLAUSIBLE || self > observed.saturating_add_nanos(skew)
    }

    /// Builds a timestamp from nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Timestamp {
        Timestamp { nanos }
    }

    /// Returns nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.nanos
    }

    /// Returns the current time of the system clock.
    pub fn now() -> Timestamp {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp {
            nanos: i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
        }
    }

    /// Returns this instant moved by `delta` nanoseconds, saturating at the representable range.
    pub fn saturating_add_nanos(self, delta: i64) -> Timestamp {
        Timestamp {
            nanos: self.nanos.saturating_add(delta),
        }
    }

    /// Parses a timestamp as applications print it (see the module docs for the forms).
    /// Returns `None` for anything else; never panics.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        let bytes = text.as_bytes();
        if bytes.len() >= 19 && bytes[4] == b'-' {
            return parse_calendar(bytes);
        }
        parse_epoch_text(text)
    }

    /// Interprets an integer epoch value, choosing the unit by magnitude: below 10^11 seconds,
    /// below 10^14 milliseconds (pino), below 10^17 microseconds, else nanoseconds.
    pub fn from_epoch_i64(value: i64) -> Option<Timestamp> {
        let magnitude = value.unsigned_abs();
        let nanos = if magnitude < 100_000_000_000 {
            value.checked_mul(NANOS_PER_SEC)?
        } else if magnitude < 100_000_000_000_000 {
            value.checked_mul(1_000_000)?
        } else if magnitude < 100_000_000_000_000_000 {
            value.checked_mul(1_000)?
        } else {
            value
        };
        Some(Timestamp { nanos })
    }

    /// Interprets a floating-point epoch value (zap's `1.7e9` seconds), choosing the unit by
    /// magnitude like [`Timestamp::from_epoch_i64`]. Sub-microsecond digits of seconds and
    /// milliseconds are beyond an `f64`'s precision and are rounded to the microsecond.
    pub fn from_epoch_f64(value: f64) -> Option<Timestamp> {
        if !value.is_finite() {
            return None;
        }
        let magnitude = value.abs();
        let micros = if magnitude < 1e11 {
            value * 1e6
        } else if magnitude < 1e14 {
            value * 1e3
        } else if magnitude < 1e17 {
            value
        } else {
            let nanos = value.round();
            return (nanos.abs() < 9.2e18).then_some(Timestamp { nanos: nanos as i64 });
        };
        let micros = micros.round();
        if micros.abs() >= 9.2e15 {
            return None;
        }
        Some(Timestamp {
            nanos: micros as i64 * 1_000,
        })
    }

    /// Returns the UTC calendar fields `(year, month, day, hour, minute, second, nanosecond)`.
    pub fn to_civil(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let secs = self.nanos.div_euclid(NANOS_PER_SEC);
        let subsec = self.nanos.rem_euclid(NANOS_PER_SEC) as u32;
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        (
            year,
            month,
            day,
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60,
            subsec,
        )
    }
}

impl Timestamp {
    /// Returns the envelope form `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` as fixed-width ASCII, written
    /// digit by digit: this runs twice per record, and `core::fmt` padding was a measurable share
    /// of the collector benchmark.
    pub fn to_rfc3339_bytes(self) -> [u8; 30] {
        let (y, mo, d, h, mi, s, ns) = self.to_civil();
        let mut out = *b"0000-00-00T00:00:00.000000000Z";
        let put = |out: &mut [u8; 30], at: usize, width: usize, mut value: u64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(&mut out, 0, 4, y.clamp(0, 9999) as u64);
        put(&mut out, 5, 2, u64::from(mo));
        put(&mut out, 8, 2, u64::from(d));
        put(&mut out, 11, 2, u64::from(h));
        put(&mut out, 14, 2, u64::from(mi));
        put(&mut out, 17, 2, u64::from(s));
        put(&mut out, 20, 9, u64::from(ns));
        out
    }
}

impl fmt::Display for Timestamp {
    /// Writes the envelope form: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_rfc3339_bytes();
        // The buffer holds ASCII digits and separators only.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_rfc3339_bytes();
        serializer.serialize_str(std::str::from_utf8(&bytes).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {text:?}, expected RFC 3339")))
    }
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.fraction][zone]` where zone is empty (UTC), `Z`, `±HH:MM`,
/// `±HHMM`, or Go's ` ±HHMM ZONE[ m=±…]`.
fn parse_calendar(b: &[u8]) -> Option<Timestamp> {
    let year = digits(b, 0, 4)? as i64;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut pos = 19;
    let mut subsec: i64 = 0;
    if pos < b.len() && matches!(b[pos], b'.' | b',') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 9 {
                subsec = subsec * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        let count = pos - start;
        if count == 0 {
            return None;
        }
        for _ in count..9 {
            subsec *= 10;
        }
    }

    let offset_secs = parse_zone(&b[pos..])?;
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    let nanos = secs.checked_mul(NANOS_PER_SEC)?.checked_add(subsec)?;
    Some(Timestamp { nanos })
}

/// Returns the zone's offset from UTC in seconds.
fn parse_zone(rest: &[u8]) -> Option<i64> {
    match rest {
        [] | b"Z" | b"z" | b" UTC" | b" GMT" | b"UTC" => Some(0),
        [b' ', tail @ ..] if matches!(tail.first(), Some(b'+' | b'-')) => {
            // Go: ` -0700 MST`, optionally followed by ` m=+0.000000001`.
            let (offset, after) = parse_numeric_offset(tail)?;
            (after.is_empty() || after[0] == b' ').then_some(offset)
        }
        [b'+' | b'-', ..] => {
            let (offset, after) = parse_numeric_offset(rest)?;
            after.is_empty().then_some(offset)
        }
        _ => None,
    }
}

/// Parses `±HH:MM`, `±HHMM` or `±HH` and returns the offset in seconds and the unread rest.
fn parse_numeric_offset(b: &[u8]) -> Option<(i64, &[u8])> {
    let sign = if b[0] == b'-' { -1 } else { 1 };
    let hours = digits(b, 1, 2)?;
    let (minutes, used) = if b.get(3) == Some(&b':') {
        (digits(b, 4, 2)?, 6)
    } else if b.len() >= 5 && b[3].is_ascii_digit() {
        (digits(b, 3, 2)?, 5)
    } else {
        (0, 3)
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((sign * i64::from(hours * 3600 + minutes * 60), &b[used..]))
}

/// Parses epoch numbers written as text: `1700000000`, `1700000000.123456789`, `1700000000123`.
/// Fraction digits are kept exactly (no float rounding).
fn parse_epoch_text(text: &str) -> Option<Timestamp> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    if int_part.is_empty() || int_part.len() > 19 || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int_value: i64 = int_part.parse().ok()?;
    let whole = Timestamp::from_epoch_i64(int_value)?.nanos;
    let unit_nanos = if int_value < 100_000_000_000 {
        NANOS_PER_SEC
    } else if int_value < 100_000_000_000_000 {
        1_000_000
    } else if int_value < 100_000_000_000_000_000 {
        1_000
    } else {
        1
    };
    let mut frac_nanos = 0i64;
    if let Some(frac) = frac_part {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut scale = unit_nanos;
        for digit in frac.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            frac_nanos += i64::from(digit - b'0') * scale;
        }
    }
    let nanos = whole.checked_add(frac_nanos)?;
    Some(Timestamp {
        nanos: if negative { -nanos } else { nanos },
    })
}

/// Reads `count` ASCII digits at `start` as a number.
fn digits(b: &[u8], start: usize, count: usize) -> Option<u32> {
    let slice = b.get(start..start + count)?;
    let mut value = 0u32;
    for &c in slice {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(c - b'0');
    }
    Some(value)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_future_and_unset_clocks_are_implausible() {
        let observed = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        let skew = DEFAULT_MAX_FUTURE_SKEW;
        let cases = [
            ("2026-11-23T10:00:00Z", false),
            ("2026-11-23T10:14:59Z", false),
            ("2026-11-23T10:15:01Z", true),
            ("2200-01-01T00:00:00Z", true),
            ("2020-01-01T00:00:00Z", false),
            ("1970-01-02T00:00:00Z", false),
            ("1970-01-01T23:59:59Z", true),
            ("1970-01-01T00:00:00Z", true),
        ];
        for (ts, want) in cases {
            let ts = Timestamp::parse(ts).unwrap();
            assert_eq!(ts.is_implausible_for(observed, skew), want, "{ts}");
        }
    }

    /// 2026-11-23T10:15:00Z
    const BASE: i64 = 1_795_428_900;

    fn at(secs: i64, nanos: i64) -> Option<Timestamp> {
        Some(Timestamp::from_unix_nanos(secs * NANOS_PER_SEC + nanos))
    }

    #[test]
    fn parses_what_applications_print() {
        let cases: &[(&str, Option<Timestamp>)] = &[
            // RFC 3339, 0–9 fraction digits, Z or offsets.
            ("2026-11-23T10:15:00Z", at(BASE, 0)),
            ("2026-11-23T10:15:00.1Z", at(BASE, 100_000_000)),
            ("2026-11-23T10:15:00.12Z", at(BASE, 120_000_000)),
            ("2026-11-23T10:15:00.123Z", at(BASE, 123_000_000)),
            ("2026-11-23T10:15:00.123456Z", at(BASE, 123_456_000)),
            ("2026-11-23T10:15:00.123456789Z", at(BASE, 123_456_789)),
            ("2026-11-23T10:15:00.1234567891Z", at(BASE, 123_456_789)),
            ("2026-11-23t10:15:00z", at(BASE, 0)),
            ("2026-11-23T11:15:00+01:00", at(BASE, 0)),
            ("2026-11-23T05:15:00.5-05:00", at(BASE, 500_000_000)),
            ("2026-11-23T11:15:00.000000001+0100", at(BASE, 1)), // CRI-O style numeric offset
            ("2026-11-23T10:15:00.123+00:00", at(BASE, 123_000_000)),
            // ISO without zone (python asctime with comma, logback): taken as UTC.
            ("2026-11-23 10:15:00,123", at(BASE, 123_000_000)),
            ("2026-11-23T10:15:00", at(BASE, 0)),
            // Go time.Time.String() (logrus), with and without monotonic suffix.
            ("2026-11-23 03:15:00.123456789 -0700 MST", at(BASE, 123_456_789)),
            ("2026-11-23 10:15:00 +0000 UTC", at(BASE, 0)),
            (
                "2026-11-23 11:15:00.5 +0100 CET m=+0.000512301",
                at(BASE, 500_000_000),
            ),
            ("2026-11-23 10:15:00 UTC", at(BASE, 0)),
            // Epoch numbers as text.
            ("1795428900", at(BASE, 0)),
            ("1795428900.123456789", at(BASE, 123_456_789)),
            ("1795428900123", at(BASE, 123_000_000)),
            ("1795428900123.5", at(BASE, 123_500_000)),
            ("1795428900123456", at(BASE, 123_456_000)),
            ("1795428900123456789", at(BASE, 123_456_789)),
            // Edges of the calendar.
            ("1970-01-01T00:00:00Z", at(0, 0)),
            ("1969-12-31T23:59:59.999999999Z", at(-1, 999_999_999)),
            ("2024-02-29T00:00:00Z", at(1_709_164_800, 0)),
            ("2000-03-01T00:00:00Z", at(951_868_800, 0)),
            // Garbage never panics.
            ("", None),
            ("yesterday", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-02-29T00:00:00Z", None),
            ("2026-11-23T24:00:00Z", None),
            ("2026-11-23T10:15:00.Z", None),
            ("2026-11-23T10:15:00+25:00", None),
            ("2026-11-23T10:15:00 MST", None),
            ("2026-11-23T10:15:00Zjunk", None),
            ("2026-11-23X10:15:00Z", None),
            ("9999-12-31T23:59:59Z", None), // beyond i64 nanoseconds
            ("2026-11-2", None),
            ("-", None),
            ("1.2.3", None),
            ("17954289001234567890123", None),
            ("２０２６-11-23T10:15:00Z", None),
        ];
        for (input, want) in cases {
            assert_eq!(Timestamp::parse(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn epoch_numbers_pick_their_unit_by_magnitude() {
        assert_eq!(Timestamp::from_epoch_i64(1_795_428_900), at(BASE, 0));
        assert_eq!(
            Timestamp::from_epoch_i64(1_795_428_900_123),
            at(BASE, 123_000_000)
        );
        assert_eq!(
            Timestamp::from_epoch_i64(1_795_428_900_123_456),
            at(BASE, 123_456_000)
        );
        assert_eq!(
            Timestamp::from_epoch_i64(1_795_428_900_123_456_789),
            at(BASE, 123_456_789)
        );
        assert_eq!(
            Timestamp::from_epoch_f64(1_795_428_900.123456),
            at(BASE, 123_456_000)
        );
        assert_eq!(
            Timestamp::from_epoch_f64(1_795_428_900_123.0),
            at(BASE, 123_000_000)
        );
        assert_eq!(Timestamp::from_epoch_f64(f64::NAN), None);
        assert_eq!(Timestamp::from_epoch_f64(1e300), None);
        assert_eq!(Timestamp::from_epoch_i64(i64::MAX / 10), at(0, i64::MAX / 10));
    }

    #[test]
    fn formats_fixed_width_utc_and_round_trips() {
        let ts = Timestamp::parse("2026-11-23T11:15:00.000000042+01:00").unwrap();
        assert_eq!(ts.to_string(), "2026-11-23T10:15:00.000000042Z");
        assert_eq!(Timestamp::EPOCH.to_string(), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(at(-1, 0).unwrap().to_string(), "1969-12-31T23:59:59.000000000Z");
        // Every day over several centuries survives format → parse.
        for day in (-100_000i64..100_000).step_by(7) {
            let ts = Timestamp::from_unix_nanos(day * 86_400 * NANOS_PER_SEC + 12_345);
            assert_eq!(Timestamp::parse(&ts.to_string()), Some(ts), "day {day}");
        }
        let json = serde_json::to_string(&ts).unwrap();
        assert_eq!(json, "\"2026-11-23T10:15:00.000000042Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), ts);
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
    }
}
