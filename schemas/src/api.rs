//! Request and response types of the indexer's HTTP API (DESIGN §4.3), shared by the indexer
//! (which serves them) and `logq` (which calls them).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::duration::parse_duration;
use crate::{Level, Record, Timestamp};

/// Path of the search endpoint.
pub const SEARCH_PATH: &str = "/api/v1/search";
/// Path of the tail endpoint.
pub const TAIL_PATH: &str = "/api/v1/tail";
/// Path of the stats endpoint.
pub const STATS_PATH: &str = "/api/v1/stats";
/// Default for [`SearchParams::limit`].
pub const DEFAULT_LIMIT: usize = 1000;
/// Default of the indexer's `max_limit`: the most hits one search answers; more are paged
/// with [`Cursor`]s.
pub const DEFAULT_MAX_LIMIT: usize = 10_000;

/// Where a page of search hits ended: the last hit's (`ts`, `id`). Passed back as the `after`
/// parameter, the next page starts strictly after it in the search's order.
///
/// Written `<ts as Unix nanoseconds>:<id>` (`1795428900123456789:0a1b…`): exact, and opaque
/// enough that clients pass it back rather than build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub ts: i64,
    pub id: String,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ts, self.id)
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("expected <ts nanoseconds>:<id> as a search response's after gave it; got {s:?}");
        let (ts, id) = s.split_once(':').ok_or_else(bad)?;
        let ts = ts.parse::<i64>().map_err(|_| bad())?;
        if id.is_empty() {
            return Err(bad());
        }
        Ok(Cursor {
            ts,
            id: id.to_owned(),
        })
    }
}

/// Filters shared by search, tail and stats, as query-string parameters.
///
/// `since` and `until` stay text here: they are either RFC 3339 instants or durations back from
/// now (`15m`, `7d`), resolved with [`resolve_time_bound`] by the server at request time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Correlation id: every record of one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corr: Option<String>,
    /// tantivy query syntax over `msg` and `fields` (`timeout AND fields.user.id:42`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Minimum level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Start of the time range: RFC 3339 or a duration back from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// End of the time range: RFC 3339 or a duration back from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Maximum number of hits; [`DEFAULT_LIMIT`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Order of hits by `ts`; ascending when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
}

/// Order of search hits by event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// Response of `GET /api/v1/search`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// Matching records ordered by `ts` then `id`, deduplicated by `id`.
    pub hits: Vec<Record>,
    /// Number of hits returned.
    pub count: usize,
    /// True when more records matched than `limit` allowed.
    pub truncated: bool,
    pub took_ms: u64,
    /// Number of splits searched.
    pub splits: usize,
    /// Tiers searched, newest first.
    pub tiers: Vec<String>,
    /// Set when not everything was searched: a reader's tier limit, or splits that cannot answer
    /// a phrase query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// Set when `truncated`: the [`Cursor`] of the last hit, to pass back as `after` for the
    /// next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// What a stats query groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Service,
    Version,
    Instance,
    Level,
}

impl GroupBy {
    /// Returns the envelope field name grouped on.
    pub fn field(self) -> &'static str {
        match self {
            GroupBy::Service => crate::fields::SERVICE,
            GroupBy::Version => crate::fields::VERSION,
            GroupBy::Instance => crate::fields::INSTANCE,
            GroupBy::Level => crate::fields::LEVEL,
        }
    }
}

impl FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "service" => Ok(GroupBy::Service),
            "version" => Ok(GroupBy::Version),
            "instance" => Ok(GroupBy::Instance),
            "level" => Ok(GroupBy::Level),
            other => Err(format!(
                "cannot group by {other:?}: expected service, version, instance or level"
            )),
        }
    }
}

/// One group of a stats response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsGroup {
    /// The group's value of the grouped field.
    pub key: String,
    pub count: u64,
    /// Count per level name; records without a level are counted under `none`.
    pub levels: BTreeMap<String, u64>,
}

/// Response of `GET /api/v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResponse {
    pub groups: Vec<StatsGroup>,
    pub total: u64,
    pub took_ms: u64,
    /// Set when splits could not answer the query (a phrase on a tier without positions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// Body of every 4xx/5xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
}

/// Error returned for a `since`/`until` value that is neither an instant nor a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TimeBoundError {
    pub input: String,
}

impl fmt::Display for TimeBoundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid time {:?}: expected RFC 3339 (2026-11-23T10:15:00Z) or a duration back from now (15m, 24h, 7d)",
            self.input
        )
    }
}

/// Resolves a `since`/`until` value: an RFC 3339 instant as it is, `now`, or a duration taken
/// back from `now`.
pub fn resolve_time_bound(text: &str, now: Timestamp) -> Result<Timestamp, TimeBoundError> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Ok(duration) = parse_duration(text) {
        let nanos = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        return Ok(now.saturating_add_nanos(-nanos));
    }
    // Only calendar forms: a bare number is ambiguous between an epoch and a mistake.
    if text.len() >= 19
        && let Some(ts) = Timestamp::parse(text)
    {
        return Ok(ts);
    }
    Err(TimeBoundError {
        input: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_round_trip_through_a_query_string_shape() {
        let params = SearchParams {
            corr: Some("abc".into()),
            level: Some(Level::Warn),
            since: Some("15m".into()),
            limit: Some(10),
            order: Some(Order::Desc),
            ..SearchParams::default()
        };
        let value = serde_json::to_value(&params).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"corr":"abc","level":"warn","since":"15m","limit":10,"order":"desc"})
        );
        assert_eq!(serde_json::from_value::<SearchParams>(value).unwrap(), params);
        assert!(serde_json::from_value::<SearchParams>(serde_json::json!({"corr_id": "x"})).is_err());
    }

    #[test]
    fn time_bounds_take_instants_and_durations() {
        let now = Timestamp::parse("2026-11-23T10:15:00Z").unwrap();
        let cases: &[(&str, Option<&str>)] = &[
            ("15m", Some("2026-11-23T10:00:00.000000000Z")),
            ("7d", Some("2026-11-16T10:15:00.000000000Z")),
            ("now", Some("2026-11-23T10:15:00.000000000Z")),
            (
                "2026-01-01T00:00:00+01:00",
                Some("2025-12-31T23:00:00.000000000Z"),
            ),
            ("yesterday", None),
            ("1795428900", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = resolve_time_bound(input, now).ok().map(|ts| ts.to_string());
            assert_eq!(got.as_deref(), *want, "input {input:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let cursor = Cursor {
            ts: 1_795_428_900_123_456_789,
            id: "0a1b".into(),
        };
        assert_eq!(cursor.to_string(), "1795428900123456789:0a1b");
        assert_eq!("1795428900123456789:0a1b".parse::<Cursor>(), Ok(cursor));
        for bad in ["", "12", "x:0a1b", "12:"] {
            assert!(
                bad.parse::<Cursor>()
                    .unwrap_err()
                    .contains("expected <ts nanoseconds>:<id>")
            );
        }
    }

    #[test]
    fn group_by_parses_only_known_fields() {
        assert_eq!("version".parse::<GroupBy>(), Ok(GroupBy::Version));
        assert_eq!(GroupBy::Level.field(), "level");
        assert!("pod".parse::<GroupBy>().unwrap_err().contains("\"pod\""));
    }
}
