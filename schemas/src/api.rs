//! Request and response types of the indexer's HTTP API (DESIGN §4.3), shared by the indexer
//! (which serves them) and `logq` (which calls them).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::duration::parse_duration;
use crate::{Level, Timestamp};

/// Path of the search endpoint.
pub const SEARCH_PATH: &str = "/api/v1/search";
/// Path of the tail endpoint.
pub const TAIL_PATH: &str = "/api/v1/tail";
/// Header of a tail's response: what the tail does not follow (peers that could not be reached
/// when it started), a JSON array of [`Missing`]; absent when it follows the whole cluster.
pub const TAIL_MISSING_HEADER: &str = "x-corral-missing";
/// Path of the stats endpoint.
pub const STATS_PATH: &str = "/api/v1/stats";
/// Default for [`Page::limit`].
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

/// Which endpoint a query string is for: besides the [`Selector`], search takes a [`Page`]
/// and stats a [`GroupBy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Search,
    Tail,
    Stats,
}

/// A bad request parameter; the message names the parameter and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

/// Which records a request is about — a search, a tail, stats, a legal hold. Every field given
/// must match. `logq` writes it as query-string parameters ([`ApiQuery::to_pairs`]), the
/// indexer reads and validates it ([`ApiQuery::parse`]); a hold's body carries it as JSON.
///
/// `since` and `until` stay text: RFC 3339 instants or durations back from now (`15m`, `7d`),
/// resolved with [`resolve_time_bound`] by the server at request time (a hold takes instants
/// only: it must not move with the clock).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
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
    /// Kubernetes namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Minimum level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Start of the time range: RFC 3339 or a duration back from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// End of the time range: RFC 3339 or a duration back from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl Selector {
    /// True when nothing is selected on (every record matches).
    pub fn is_empty(&self) -> bool {
        *self == Selector::default()
    }

    /// The selector's parameters in query-string order, for a request.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        for (key, value) in [
            ("corr", &self.corr),
            ("q", &self.q),
            ("service", &self.service),
            ("version", &self.version),
            ("instance", &self.instance),
            ("namespace", &self.namespace),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(value) = value {
                pairs.push((key, value.clone()));
            }
        }
        if let Some(level) = self.level {
            pairs.push(("level", level.as_str().to_owned()));
        }
        pairs
    }
}

/// Which page of a search: how many hits, in which order, after which hit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Maximum number of hits; [`DEFAULT_LIMIT`] when absent.
    pub limit: Option<usize>,
    /// Order of hits by `ts`; ascending when absent.
    pub order: Option<Order>,
    /// The page starts strictly after this hit in `order`.
    pub after: Option<Cursor>,
}

/// The parameters of a search, tail or stats request: what the query string of
/// `GET /api/v1/search|tail|stats` says, parsed and checked, but not yet resolved against the
/// clock (`since=15m` stays text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiQuery {
    pub selector: Selector,
    /// Search only.
    pub page: Page,
    /// Stats only, and required there.
    pub by: Option<GroupBy>,
}

const SELECTOR_KEYS: [&str; 9] = [
    "corr",
    "q",
    "service",
    "version",
    "instance",
    "namespace",
    "level",
    "since",
    "until",
];

impl ApiQuery {
    /// Parses a URL query string (`corr=…&since=15m`) for `endpoint`. Each bad parameter is an
    /// error naming it: given twice, empty, unknown to the endpoint, or a value of the wrong
    /// form.
    pub fn parse(query: &str, endpoint: Endpoint) -> Result<ApiQuery, ParamError> {
        let mut parsed = ApiQuery::default();
        let mut seen = std::collections::HashSet::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let key = key.into_owned();
            if !seen.insert(key.clone()) {
                return Err(ParamError(format!("parameter {key} is given more than once")));
            }
            let value = value.into_owned();
            let text = || -> Result<Option<String>, ParamError> {
                if value.is_empty() {
                    return Err(ParamError(format!("parameter {key} is empty")));
                }
                Ok(Some(value.clone()))
            };
            let selector = &mut parsed.selector;
            match (key.as_str(), endpoint) {
                ("corr", _) => selector.corr = text()?,
                ("q", _) => selector.q = text()?,
                ("service", _) => selector.service = text()?,
                ("version", _) => selector.version = text()?,
                ("instance", _) => selector.instance = text()?,
                ("namespace", _) => selector.namespace = text()?,
                ("level", _) => {
                    selector.level = Some(
                        Level::parse_strict(&value)
                            .map_err(|error| ParamError(format!("parameter level: {error}")))?,
                    );
                }
                ("since", _) | ("until", _) => {
                    // Checked now, resolved against the clock by the server.
                    resolve_time_bound(&value, Timestamp::from_unix_nanos(0))
                        .map_err(|error| ParamError(format!("parameter {key}: {error}")))?;
                    if key == "since" {
                        selector.since = Some(value);
                    } else {
                        selector.until = Some(value);
                    }
                }
                ("limit", Endpoint::Search) => {
                    // The upper bound is the indexer's `max_limit`.
                    parsed.page.limit =
                        Some(value.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                            ParamError(format!(
                                "parameter limit: expected a positive integer; got {value:?}"
                            ))
                        })?);
                }
                ("after", Endpoint::Search) => {
                    parsed.page.after = Some(
                        value
                            .parse::<Cursor>()
                            .map_err(|error| ParamError(format!("parameter after: {error}")))?,
                    );
                }
                ("order", Endpoint::Search) => {
                    parsed.page.order = Some(match value.as_str() {
                        "asc" => Order::Asc,
                        "desc" => Order::Desc,
                        _ => {
                            return Err(ParamError(format!(
                                "parameter order: expected asc or desc; got {value:?}"
                            )));
                        }
                    });
                }
                ("by", Endpoint::Stats) => {
                    parsed.by = Some(
                        value
                            .parse::<GroupBy>()
                            .map_err(|error| ParamError(format!("parameter by: {error}")))?,
                    );
                }
                (other, endpoint) => {
                    let mut known: Vec<&str> = SELECTOR_KEYS.to_vec();
                    match endpoint {
                        Endpoint::Search => known.extend(["limit", "order", "after"]),
                        Endpoint::Stats => known.push("by"),
                        Endpoint::Tail => {}
                    }
                    return Err(ParamError(format!(
                        "unknown parameter {other:?}: expected one of {}",
                        known.join(", ")
                    )));
                }
            }
        }
        if endpoint == Endpoint::Stats && parsed.by.is_none() {
            return Err(ParamError(
                "parameter by is required: expected service, version, instance or level".to_owned(),
            ));
        }
        Ok(parsed)
    }

    /// The query's parameters, in the order [`ApiQuery::parse`] reads them back.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = self.selector.to_pairs();
        if let Some(limit) = self.page.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if let Some(order) = self.page.order {
            pairs.push(("order", order.as_str().to_owned()));
        }
        if let Some(after) = &self.page.after {
            pairs.push(("after", after.to_string()));
        }
        if let Some(by) = self.by {
            pairs.push(("by", by.field().to_owned()));
        }
        pairs
    }
}

/// Order of search hits by event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl Order {
    /// `asc` or `desc`, as the `order` parameter spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// Response of `GET /api/v1/search`, generic over the hit: both ends keep hits as raw JSON
/// (`Box<RawValue>` in `logq`, the stored envelope text in the indexer), so a hit arrives byte
/// for byte as it was indexed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse<H> {
    /// Matching records ordered by `ts` then `id`, deduplicated by `id`. First: the indexer
    /// writes its hits in place of an empty list ([`SearchResponse::write_with_hits`]).
    pub hits: Vec<H>,
    /// Number of hits returned.
    #[serde(default)]
    pub count: usize,
    /// True when more records matched than `limit` allowed.
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub took_ms: u64,
    /// Number of splits searched.
    #[serde(default)]
    pub splits: usize,
    /// Tiers searched, newest first.
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Set when not everything was searched: a reader's tier limit, or splits that cannot answer
    /// a phrase query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// Set when `truncated`: the [`Cursor`] of the last hit, to pass back as `after` for the
    /// next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// False when part of the cluster could not be searched: see `missing`.
    #[serde(default = "complete_when_unsaid")]
    pub complete: bool,
    /// What could not be searched, and why: peers, splits.
    #[serde(default)]
    pub missing: Vec<Missing>,
}

/// What an answer could not search: a peer (an indexer of the cluster), a split, or the splits
/// of a tier (hidden from the caller's role, or unable to answer a phrase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// The peer's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The split's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// The tier whose splits (how many: `splits`) were not searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<usize>,
    pub reason: String,
}

impl Missing {
    /// A peer that did not answer.
    pub fn peer(peer: impl Into<String>, reason: impl Into<String>) -> Missing {
        Missing {
            peer: Some(peer.into()),
            split: None,
            tier: None,
            splits: None,
            reason: reason.into(),
        }
    }

    /// A split that could not be searched.
    pub fn split(split: impl Into<String>, reason: impl Into<String>) -> Missing {
        Missing {
            peer: None,
            split: Some(split.into()),
            tier: None,
            splits: None,
            reason: reason.into(),
        }
    }

    /// `splits` splits of `tier` that were not searched.
    pub fn tier(tier: impl Into<String>, splits: usize, reason: impl Into<String>) -> Missing {
        Missing {
            peer: None,
            split: None,
            tier: Some(tier.into()),
            splits: Some(splits),
            reason: reason.into(),
        }
    }
}

/// Why a reader's answer lacks the tiers after hot.
pub const HIDDEN_TIER_REASON: &str =
    "the caller's role (reader) searches the hot tier only; an auditor sees every tier";
/// Why splits after hot did not answer a phrase.
pub const NO_POSITIONS_REASON: &str = "phrase queries (and words the tokenizer splits, like order-42) need term positions, which tiers after hot do not keep; search single words to include them";

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.peer, &self.split, &self.tier) {
            (Some(peer), ..) => write!(f, "peer {peer} not searched: {}", self.reason),
            (None, Some(split), _) => write!(f, "split {split} not searched: {}", self.reason),
            (None, None, Some(tier)) => write!(
                f,
                "{} split(s) of tier {tier} not searched: {}",
                self.splits.unwrap_or(0),
                self.reason
            ),
            (None, None, None) => write!(f, "not searched: {}", self.reason),
        }
    }
}

impl<H> Default for SearchResponse<H> {
    fn default() -> Self {
        SearchResponse {
            hits: Vec::new(),
            count: 0,
            truncated: false,
            took_ms: 0,
            splits: 0,
            tiers: Vec::new(),
            notice: None,
            after: None,
            complete: true,
            missing: Vec::new(),
        }
    }
}

impl Default for StatsResponse {
    fn default() -> Self {
        StatsResponse {
            groups: Vec::new(),
            total: 0,
            took_ms: 0,
            notice: None,
            complete: true,
            missing: Vec::new(),
        }
    }
}

/// An answer from a server that does not say is complete (one from before `complete`).
fn complete_when_unsaid() -> bool {
    true
}

impl SearchResponse<()> {
    /// Writes this response as JSON with `hits` — each already a JSON value — as its hits,
    /// copied as they are (no parse, no re-encoding). `self.hits` must be empty.
    pub fn write_with_hits<'a>(&self, hits: impl IntoIterator<Item = &'a str>) -> String {
        debug_assert!(self.hits.is_empty());
        let meta = serde_json::to_string(self).expect("a search response serializes");
        let rest = meta
            .strip_prefix("{\"hits\":[]")
            .expect("hits is the first field of a search response");
        let mut out = String::with_capacity(meta.len() + 64);
        out.push_str("{\"hits\":[");
        for (i, hit) in hits.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(hit);
        }
        out.push(']');
        out.push_str(rest);
        out
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResponse {
    pub groups: Vec<StatsGroup>,
    pub total: u64,
    pub took_ms: u64,
    /// Set when splits could not answer the query (a phrase on a tier without positions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// False when part of the cluster could not be counted: see `missing`.
    #[serde(default = "complete_when_unsaid")]
    pub complete: bool,
    /// What could not be counted, and why.
    #[serde(default)]
    pub missing: Vec<Missing>,
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
    fn a_query_round_trips_through_its_query_string() {
        let query = ApiQuery {
            selector: Selector {
                corr: Some("abc".into()),
                q: Some("card declined".into()),
                level: Some(Level::Warn),
                since: Some("15m".into()),
                ..Selector::default()
            },
            page: Page {
                limit: Some(10),
                order: Some(Order::Desc),
                after: Some("12:0a1b".parse().unwrap()),
            },
            by: None,
        };
        let text: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query.to_pairs())
            .finish();
        assert_eq!(ApiQuery::parse(&text, Endpoint::Search), Ok(query));
        let stats = ApiQuery::parse("by=version&service=orders", Endpoint::Stats).unwrap();
        assert_eq!(stats.by, Some(GroupBy::Version));
        assert_eq!(
            stats.to_pairs(),
            [("service", "orders".to_owned()), ("by", "version".to_owned())]
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases: &[(&str, Endpoint, &str)] = &[
            (
                "corr=a&corr=b",
                Endpoint::Search,
                "parameter corr is given more than once",
            ),
            ("q=", Endpoint::Search, "parameter q is empty"),
            ("level=loud", Endpoint::Tail, "parameter level: expected one of"),
            (
                "since=yesterday",
                Endpoint::Search,
                "parameter since: invalid time",
            ),
            (
                "limit=0",
                Endpoint::Search,
                "parameter limit: expected a positive integer",
            ),
            ("limit=5", Endpoint::Tail, "unknown parameter \"limit\""),
            (
                "order=up",
                Endpoint::Search,
                "parameter order: expected asc or desc",
            ),
            ("service=x", Endpoint::Stats, "parameter by is required"),
            ("corr_id=x", Endpoint::Search, "expected one of corr, q,"),
        ];
        for (query, endpoint, want) in cases {
            let error = ApiQuery::parse(query, *endpoint).unwrap_err().0;
            assert!(error.contains(want), "{query}: {error}");
        }
    }

    #[test]
    fn a_search_response_carries_its_hits_byte_for_byte() {
        let meta = SearchResponse::<()> {
            count: 2,
            truncated: true,
            tiers: vec!["hot".into()],
            after: Some("12:b".into()),
            ..SearchResponse::default()
        };
        let hits = [r#"{"id":"a","msg":"x  y"}"#, r#"{"id":"b","n":1.50}"#];
        let json = meta.write_with_hits(hits);
        let back: SearchResponse<Box<serde_json::value::RawValue>> = serde_json::from_str(&json).unwrap();
        assert_eq!(back.hits.iter().map(|h| h.get()).collect::<Vec<_>>(), hits);
        assert_eq!(
            (back.count, back.truncated, back.after.as_deref()),
            (2, true, Some("12:b"))
        );
        assert_eq!(
            meta.write_with_hits([]),
            r#"{"hits":[],"count":2,"truncated":true,"took_ms":0,"splits":0,"tiers":["hot"],"after":"12:b","complete":true,"missing":[]}"#
        );
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
