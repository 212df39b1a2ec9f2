//! The query engine (DESIGN §4.3): filters parsed from a query string, turned into one tantivy
//! query run over every split whose time range overlaps; hits merged by `ts` then `id` and
//! deduplicated by `id`.
//!
//! A `corr` lookup is a term query on the `corr` keyword field: its cost follows the number of
//! records of that request, not the size of the index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use corral_schema::api::{GroupBy, Order, resolve_time_bound};
use corral_schema::fields as f;
use corral_schema::{Level, Timestamp};
use tantivy::collector::{Collector, Count, DocSetCollector, SegmentCollector, TopDocs};
use tantivy::columnar::StrColumn;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query, QueryParser, RangeQuery, TermQuery,
};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{DateTime, DocAddress, DocId, Score, SegmentReader, TantivyDocument, Term};

use crate::store::{Catalog, SplitView};

/// Largest `limit` a search accepts.
pub const MAX_LIMIT: usize = 100_000;

/// Which endpoint a query string is for: each accepts a slightly different set of parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Search,
    Tail,
    Stats,
}

/// Filters of a search, tail or stats request, validated.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub corr: Option<String>,
    pub q: Option<String>,
    pub service: Option<String>,
    /// Kubernetes namespace (retention keep rules; not a search parameter).
    pub namespace: Option<String>,
    pub version: Option<String>,
    pub instance: Option<String>,
    pub level: Option<Level>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: usize,
    pub order: Order,
    pub by: Option<GroupBy>,
    /// Tiers the caller may search (`None`: all); set from the caller's role, never from the
    /// query string.
    pub tiers: Option<Vec<String>>,
}

/// A bad request parameter; the message names the parameter and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

const COMMON: [&str; 8] = [
    "corr", "q", "service", "version", "instance", "level", "since", "until",
];

impl Filters {
    /// Parses a URL query string (`corr=…&since=15m`) for `endpoint`, resolving durations
    /// against `now`.
    pub fn parse(query: &str, endpoint: Endpoint, now: Timestamp) -> Result<Filters, ParamError> {
        let mut filters = Filters {
            limit: corral_schema::api::DEFAULT_LIMIT,
            ..Filters::default()
        };
        let mut seen = HashSet::new();
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
            match (key.as_str(), endpoint) {
                ("corr", _) => filters.corr = text()?,
                ("q", _) => filters.q = text()?,
                ("service", _) => filters.service = text()?,
                ("version", _) => filters.version = text()?,
                ("instance", _) => filters.instance = text()?,
                ("level", _) => {
                    let level = Level::ALL
                        .into_iter()
                        .find(|l| l.as_str() == value.to_ascii_lowercase());
                    filters.level = Some(level.ok_or_else(|| {
                        ParamError(format!(
                            "parameter level: expected one of trace, debug, info, warn, error, fatal; got {value:?}"
                        ))
                    })?);
                }
                ("since", _) | ("until", _) => {
                    let ts = resolve_time_bound(&value, now)
                        .map_err(|error| ParamError(format!("parameter {key}: {error}")))?;
                    if key == "since" {
                        filters.since = Some(ts);
                    } else {
                        filters.until = Some(ts);
                    }
                }
                ("limit", Endpoint::Search) => {
                    filters.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ParamError(format!(
                                "parameter limit: expected an integer from 1 to {MAX_LIMIT}; got {value:?}"
                            ))
                        })?;
                }
                ("order", Endpoint::Search) => {
                    filters.order = match value.as_str() {
                        "asc" => Order::Asc,
                        "desc" => Order::Desc,
                        _ => {
                            return Err(ParamError(format!(
                                "parameter order: expected asc or desc; got {value:?}"
                            )));
                        }
                    };
                }
                ("by", Endpoint::Stats) => {
                    filters.by = Some(
                        value
                            .parse::<GroupBy>()
                            .map_err(|error| ParamError(format!("parameter by: {error}")))?,
                    );
                }
                (other, endpoint) => {
                    let mut known: Vec<&str> = COMMON.to_vec();
                    match endpoint {
                        Endpoint::Search => known.extend(["limit", "order"]),
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
        if let (Some(since), Some(until)) = (filters.since, filters.until)
            && since > until
        {
            return Err(ParamError(format!(
                "parameter since ({since}) is after until ({until})"
            )));
        }
        if endpoint == Endpoint::Stats && filters.by.is_none() {
            return Err(ParamError(
                "parameter by is required: expected service, version, instance or level".to_owned(),
            ));
        }
        Ok(filters)
    }
}

/// One hit: its sort keys and the stored envelope JSON.
#[derive(Debug, Clone)]
pub struct Hit {
    pub ts: i64,
    pub id: String,
    pub source: String,
}

/// What a search found.
#[derive(Debug, Default)]
pub struct SearchOutcome {
    pub hits: Vec<Hit>,
    pub truncated: bool,
    pub splits: usize,
    pub tiers: Vec<String>,
    /// Splits that could not answer the query, by tier ([`QueryEngine::unsearched_notice`]).
    pub unsearched: BTreeMap<String, usize>,
}

/// Runs queries against the splits of a [`Catalog`].
pub struct QueryEngine {
    catalog: Arc<Catalog>,
    parser: QueryParser,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("catalog", &self.catalog)
            .finish()
    }
}

impl QueryEngine {
    pub fn new(catalog: Arc<Catalog>) -> QueryEngine {
        let schema = catalog.schema().clone();
        let default_fields = vec![
            schema.get_field(f::MSG).expect("schema has msg"),
            schema.get_field(f::FIELDS).expect("schema has fields"),
        ];
        let mut parser = QueryParser::new(schema, default_fields, TokenizerManager::default());
        // `payment declined` means both words, as in every log search tool.
        parser.set_conjunction_by_default();
        QueryEngine { catalog, parser }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Checks that `q` parses, as a search's `q` would be.
    pub fn check_query(&self, q: &str) -> Result<(), ParamError> {
        self.parser
            .parse_query(q)
            .map(|_| ())
            .map_err(|error| ParamError(format!("q: cannot parse {q:?}: {error}")))
    }

    /// Builds the tantivy query of `filters`; `seq` adds an ingest-sequence range (for tail).
    fn build(
        &self,
        view: &SplitView,
        filters: &Filters,
        seq: Option<(u64, u64)>,
    ) -> Result<Box<dyn Query>, ParamError> {
        let fields = &view.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let term = |field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        if let Some(corr) = &filters.corr {
            clauses.push((Occur::Must, term(fields.corr, corr)));
        }
        if let Some(service) = &filters.service {
            clauses.push((Occur::Must, term(fields.service, service)));
        }
        if let Some(namespace) = &filters.namespace {
            clauses.push((Occur::Must, term(fields.namespace, namespace)));
        }
        if let Some(version) = &filters.version {
            clauses.push((Occur::Must, term(fields.version, version)));
        }
        if let Some(instance) = &filters.instance {
            clauses.push((Occur::Must, term(fields.instance, instance)));
        }
        if let Some(min) = filters.level {
            let levels: Vec<(Occur, Box<dyn Query>)> = Level::ALL
                .into_iter()
                .filter(|l| *l >= min)
                .map(|l| (Occur::Should, term(fields.level, l.as_str())))
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(levels))));
        }
        if filters.since.is_some() || filters.until.is_some() {
            let bound = |ts: Option<Timestamp>| match ts {
                Some(ts) => Bound::Included(Term::from_field_date(
                    fields.ts,
                    DateTime::from_timestamp_nanos(ts.unix_nanos()),
                )),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(filters.since), bound(filters.until))),
            ));
        }
        if let Some((from, to)) = seq {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_u64(fields.seq, from)),
                    Bound::Excluded(Term::from_field_u64(fields.seq, to)),
                )),
            ));
        }
        if let Some(q) = &filters.q {
            let query = self
                .parser
                .parse_query(q)
                .map_err(|error| ParamError(format!("parameter q: cannot parse {q:?}: {error}")))?;
            clauses.push((Occur::Must, query));
        }
        Ok(match clauses.len() {
            0 => Box::new(AllQuery),
            1 => clauses.pop().expect("one clause").1,
            _ => Box::new(BooleanQuery::new(clauses)),
        })
    }

    /// The query for `view`, or `None` when the split cannot answer it: a phrase (or a word the
    /// tokenizer splits, like `order-42`) needs term positions, which tiers after hot do not keep.
    fn query_for(
        &self,
        view: &SplitView,
        filters: &Filters,
        seq: Option<(u64, u64)>,
    ) -> Result<Option<Box<dyn Query>>, ParamError> {
        let query = self.build(view, filters, seq)?;
        Ok((!needs_positions(query.as_ref()) || has_positions(view)).then_some(query))
    }

    /// `query` as `view` can answer it, matching at least what it would: each phrase becomes all
    /// of its words. For what retention must keep, where keeping too much is safe and too little
    /// is not.
    fn answerable_or_wider(&self, view: &SplitView, query: Box<dyn Query>) -> Box<dyn Query> {
        if has_positions(view) {
            query
        } else {
            widen_without_positions(query)
        }
    }

    /// What a response says about splits that could not answer (see [`Self::query_for`]).
    pub fn unsearched_notice(unsearched: &BTreeMap<String, usize>) -> Option<String> {
        if unsearched.is_empty() {
            return None;
        }
        let tiers: Vec<String> = unsearched
            .iter()
            .map(|(tier, n)| format!("{n} split(s) of tier {tier}"))
            .collect();
        Some(format!(
            "{} not searched: phrase queries (and words the tokenizer splits, like order-42) need term \
             positions, which tiers after hot do not keep; search single words to include them",
            tiers.join(", ")
        ))
    }

    /// The documents of `view` that match any of `selections` (retention keep rules, holds).
    pub fn select(
        &self,
        view: &SplitView,
        selections: &[Filters],
    ) -> Result<HashSet<DocAddress>, anyhow::Error> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for filters in selections {
            let query = self.build(view, filters, None)?;
            clauses.push((Occur::Should, self.answerable_or_wider(view, query)));
        }
        if clauses.is_empty() {
            return Ok(HashSet::new());
        }
        let searcher = view.reader.searcher();
        Ok(searcher.search(&BooleanQuery::new(clauses), &DocSetCollector)?)
    }

    /// Number of documents of `view` matching `filters`.
    pub fn count_in(&self, view: &SplitView, filters: &Filters) -> Result<u64, anyhow::Error> {
        let query = self.answerable_or_wider(view, self.build(view, filters, None)?);
        Ok(view.reader.searcher().search(&query, &Count)? as u64)
    }

    /// The splits a time range can touch, newest first.
    fn splits_for(&self, filters: &Filters) -> Vec<Arc<SplitView>> {
        self.catalog
            .splits()
            .into_iter()
            .filter(|view| {
                filters
                    .tiers
                    .as_ref()
                    .is_none_or(|tiers| tiers.contains(&view.tier))
            })
            .filter(|view| {
                let (Some(min), Some(max)) = (view.min_ts, view.max_ts) else {
                    return false; // empty
                };
                filters.since.is_none_or(|since| max >= since)
                    && filters.until.is_none_or(|until| min <= until)
            })
            .collect()
    }

    /// Runs a search: hits ordered by `ts` then `id`, deduplicated by `id`, at most `limit`.
    pub fn search(&self, filters: &Filters) -> anyhow::Result<SearchOutcome> {
        let splits = self.splits_for(filters);
        let mut outcome = SearchOutcome::default();
        let order = match filters.order {
            Order::Asc => tantivy::Order::Asc,
            Order::Desc => tantivy::Order::Desc,
        };
        let mut hits = Vec::new();
        for view in &splits {
            let Some(query) = self.query_for(view, filters, None)? else {
                *outcome.unsearched.entry(view.tier.clone()).or_default() += 1;
                continue;
            };
            // Only what was searched is reported (and audited) as searched.
            outcome.splits += 1;
            if !outcome.tiers.contains(&view.tier) {
                outcome.tiers.push(view.tier.clone());
            }
            let searcher = view.reader.searcher();
            let top = searcher.search(
                &query,
                &TopDocs::with_limit(filters.limit + 1).order_by_fast_field::<DateTime>(f::TS, order),
            )?;
            // A split with more matches than the limit means more exist, duplicates or not.
            outcome.truncated |= top.len() > filters.limit;
            for (ts, address) in top {
                hits.push(load_hit(&searcher, view, address, ts)?);
            }
        }
        sort_hits(&mut hits, filters.order);
        dedup_hits(&mut hits);
        outcome.truncated |= hits.len() > filters.limit;
        hits.truncate(filters.limit);
        outcome.hits = hits;
        Ok(outcome)
    }

    /// Counts matching records per group of `filters.by`, with counts per level.
    /// Also returns the splits that could not answer, by tier.
    pub fn stats(&self, filters: &Filters) -> anyhow::Result<StatsOutcome> {
        let by = filters.by.unwrap_or(GroupBy::Service);
        let mut counts: HashMap<(String, String), u64> = HashMap::new();
        let mut unsearched: BTreeMap<String, usize> = BTreeMap::new();
        for view in self.splits_for(filters) {
            let Some(query) = self.query_for(&view, filters, None)? else {
                *unsearched.entry(view.tier.clone()).or_default() += 1;
                continue;
            };
            let searcher = view.reader.searcher();
            let fruit = searcher.search(
                &query,
                &GroupCounter {
                    group_field: by.field(),
                },
            )?;
            for (key, n) in fruit {
                *counts.entry(key).or_default() += n;
            }
        }
        let mut groups: BTreeMap<String, corral_schema::api::StatsGroup> = BTreeMap::new();
        let mut total = 0;
        for ((group, level), n) in counts {
            total += n;
            let entry = groups
                .entry(group.clone())
                .or_insert_with(|| corral_schema::api::StatsGroup {
                    key: group,
                    count: 0,
                    levels: BTreeMap::new(),
                });
            entry.count += n;
            *entry.levels.entry(level).or_default() += n;
        }
        let mut groups: Vec<_> = groups.into_values().collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        Ok((groups, total, unsearched))
    }

    /// Records with ingest sequence numbers in `from..to` matching `filters`, in ingest order,
    /// at most `max`; for tail.
    pub fn tail_batch(
        &self,
        filters: &Filters,
        from: u64,
        to: u64,
        max: usize,
    ) -> anyhow::Result<Vec<(u64, Hit)>> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        for view in self.catalog.splits() {
            if view.docs == 0
                || filters
                    .tiers
                    .as_ref()
                    .is_some_and(|tiers| !tiers.contains(&view.tier))
            {
                continue;
            }
            let Some(query) = self.query_for(&view, filters, Some((from, to)))? else {
                continue;
            };
            let searcher = view.reader.searcher();
            let top = searcher.search(
                &query,
                &TopDocs::with_limit(max).order_by_fast_field::<u64>(f::SEQ, tantivy::Order::Asc),
            )?;
            for (seq, address) in top {
                let hit = load_hit(&searcher, &view, address, None)?;
                out.push((seq.unwrap_or(0), hit));
            }
        }
        out.sort_by_key(|(seq, _)| *seq);
        out.truncate(max);
        Ok(out)
    }

    /// Number of documents matching `filters` in every split, without dedup; for tests and tools.
    pub fn count(&self, filters: &Filters) -> anyhow::Result<usize> {
        let mut total = 0;
        for view in self.splits_for(filters) {
            if let Some(query) = self.query_for(&view, filters, None)? {
                total += view.reader.searcher().search(&query, &Count)?;
            }
        }
        Ok(total)
    }
}

fn load_hit(
    searcher: &tantivy::Searcher,
    view: &SplitView,
    address: DocAddress,
    ts: Option<DateTime>,
) -> anyhow::Result<Hit> {
    let doc: TantivyDocument = searcher.doc(address)?;
    let source = doc
        .get_first(view.fields.source)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    #[derive(serde::Deserialize)]
    struct Keys {
        id: String,
        ts: Timestamp,
    }
    let keys: Keys = serde_json::from_str(&source)?;
    Ok(Hit {
        ts: ts.map_or(keys.ts.unix_nanos(), |t| t.into_timestamp_nanos()),
        id: keys.id,
        source,
    })
}

fn sort_hits(hits: &mut [Hit], order: Order) {
    hits.sort_by(|a, b| {
        let natural = a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id));
        match order {
            Order::Asc => natural,
            Order::Desc => natural.reverse(),
        }
    });
}

/// Drops repeated ids, keeping the first of each.
pub fn dedup_hits(hits: &mut Vec<Hit>) {
    let mut seen = HashSet::with_capacity(hits.len());
    hits.retain(|hit| seen.insert(hit.id.clone()));
}

/// The result of [`QueryEngine::stats`]: groups, total, and the splits that could not answer.
pub type StatsOutcome = (Vec<corral_schema::api::StatsGroup>, u64, BTreeMap<String, usize>);

/// True when `query` needs term positions (a phrase).
fn needs_positions(query: &dyn Query) -> bool {
    let mut needs = false;
    query.query_terms(&mut |_, positions| needs |= positions);
    needs
}

/// True when the split keeps term positions on `msg` (and `fields`): the hot tier.
fn has_positions(view: &SplitView) -> bool {
    view.reader
        .searcher()
        .schema()
        .get_field_entry(view.fields.msg)
        .field_type()
        .get_index_record_option()
        .is_some_and(|option| option.has_positions())
}

/// `query` without positions, matching a superset of it: a phrase becomes all of its words, an
/// excluded phrase excludes nothing, and anything else needing positions matches everything.
fn widen_without_positions(query: Box<dyn Query>) -> Box<dyn Query> {
    if !needs_positions(query.as_ref()) {
        return query;
    }
    if let Some(phrase) = query.downcast_ref::<PhraseQuery>() {
        let words = phrase
            .phrase_terms()
            .into_iter()
            .map(|term| {
                let word: Box<dyn Query> = Box::new(TermQuery::new(term, IndexRecordOption::Basic));
                (Occur::Must, word)
            })
            .collect();
        return Box::new(BooleanQuery::new(words));
    }
    if let Some(boolean) = query.downcast_ref::<BooleanQuery>() {
        let clauses = boolean
            .clauses()
            .iter()
            .map(|(occur, clause)| match occur {
                Occur::MustNot if needs_positions(clause.as_ref()) => {
                    let nothing: Box<dyn Query> = Box::new(EmptyQuery);
                    (Occur::MustNot, nothing)
                }
                _ => (*occur, widen_without_positions(clause.box_clone())),
            })
            .collect();
        return Box::new(BooleanQuery::new(clauses));
    }
    Box::new(AllQuery)
}

/// Counts documents per (group value, level) from fast fields.
struct GroupCounter {
    group_field: &'static str,
}

struct SegmentGroupCounter {
    group: Option<StrColumn>,
    level: Option<StrColumn>,
    counts: HashMap<(Option<u64>, Option<u64>), u64>,
}

const NO_LEVEL: &str = "none";

impl Collector for GroupCounter {
    type Fruit = HashMap<(String, String), u64>;
    type Child = SegmentGroupCounter;

    fn for_segment(
        &self,
        _segment_ord: u32,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentGroupCounter> {
        let fast = segment.fast_fields();
        Ok(SegmentGroupCounter {
            group: fast.str(self.group_field)?,
            level: fast.str(f::LEVEL)?,
            counts: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut merged = HashMap::new();
        for fruit in fruits {
            for (key, n) in fruit {
                *merged.entry(key).or_default() += n;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for SegmentGroupCounter {
    type Fruit = HashMap<(String, String), u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let ord = |column: &Option<StrColumn>| column.as_ref().and_then(|c| c.ords().first(doc));
        *self
            .counts
            .entry((ord(&self.group), ord(&self.level)))
            .or_default() += 1;
    }

    fn harvest(self) -> Self::Fruit {
        let name = |column: &Option<StrColumn>, ord: Option<u64>, missing: &str| {
            let mut text = String::new();
            match (column, ord) {
                (Some(column), Some(ord)) if column.ord_to_str(ord, &mut text).unwrap_or(false) => text,
                _ => missing.to_owned(),
            }
        };
        self.counts
            .into_iter()
            .map(|((group, level), n)| {
                (
                    (
                        name(&self.group, group, NO_LEVEL),
                        name(&self.level, level, NO_LEVEL),
                    ),
                    n,
                )
            })
            .fold(HashMap::new(), |mut merged, (key, n)| {
                *merged.entry(key).or_default() += n;
                merged
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-23T10:15:00Z").unwrap()
    }

    #[test]
    fn parameters_parse_and_bad_ones_are_named() {
        let filters = Filters::parse(
            "corr=req-1&level=WARN&since=15m&limit=5&order=desc&q=fields.user.id%3A42",
            Endpoint::Search,
            now(),
        )
        .unwrap();
        assert_eq!(filters.corr.as_deref(), Some("req-1"));
        assert_eq!(filters.level, Some(Level::Warn));
        assert_eq!(filters.since, Timestamp::parse("2026-11-23T10:00:00Z"));
        assert_eq!(filters.limit, 5);
        assert_eq!(filters.order, Order::Desc);
        assert_eq!(filters.q.as_deref(), Some("fields.user.id:42"));

        let cases = [
            (
                "limit=abc",
                Endpoint::Search,
                "parameter limit: expected an integer from 1 to 100000; got \"abc\"",
            ),
            ("limit=0", Endpoint::Search, "parameter limit"),
            (
                "level=loud",
                Endpoint::Search,
                "parameter level: expected one of trace",
            ),
            (
                "since=yesterday",
                Endpoint::Search,
                "parameter since: invalid time \"yesterday\"",
            ),
            (
                "order=up",
                Endpoint::Search,
                "parameter order: expected asc or desc",
            ),
            ("corr_id=x", Endpoint::Search, "unknown parameter \"corr_id\""),
            ("corr=", Endpoint::Search, "parameter corr is empty"),
            ("corr=a&corr=b", Endpoint::Search, "more than once"),
            ("since=1h&until=2h", Endpoint::Search, "is after until"),
            ("", Endpoint::Stats, "parameter by is required"),
            ("by=pod", Endpoint::Stats, "parameter by: cannot group by \"pod\""),
            ("limit=5", Endpoint::Tail, "unknown parameter \"limit\""),
        ];
        for (query, endpoint, want) in cases {
            let error = Filters::parse(query, endpoint, now()).unwrap_err().0;
            assert!(error.contains(want), "{query:?} gave {error:?}");
        }
    }
}
