//! The query engine (DESIGN §4.3): filters parsed from a query string, turned into one tantivy
//! query run over every split whose time range overlaps; hits merged by `ts` then `id` and
//! deduplicated by `id`.
//!
//! A `corr` lookup is a term query on the `corr` keyword field: its cost follows the number of
//! records of that request, not the size of the index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use corral_schema::api::{ApiQuery, Cursor, DEFAULT_LIMIT, GroupBy, Order, Selector, resolve_time_bound};
use corral_schema::fields as f;
use corral_schema::{Level, Timestamp};
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query, QueryParser, RangeQuery, RegexQuery,
    TermQuery,
};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{DateTime, DocAddress, TantivyDocument, TantivyError, Term};

use crate::auth::NamespaceScope;
use crate::cache::RemoteSplit;
use crate::group_count::GroupCounter;
use crate::limits::QueryLimits;
use crate::storage::SplitKey;
use crate::store::{Catalog, SplitView};

pub use corral_schema::api::{Endpoint, ParamError};

/// Filters of a search, tail or stats request, validated.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub corr: Option<String>,
    pub q: Option<String>,
    pub service: Option<String>,
    /// Kubernetes namespace (parameter `namespace`, a hold's selector, retention keep rules).
    pub namespace: Option<String>,
    /// The namespaces a scoped token may see (`None`: all); set from the caller's token, never
    /// from the query string, and added to every query this engine runs.
    pub namespaces: Option<NamespaceScope>,
    pub version: Option<String>,
    pub instance: Option<String>,
    pub level: Option<Level>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub limit: usize,
    pub order: Order,
    /// Search only: the page starts strictly after this (`ts`, `id`) in `order`.
    pub after: Option<Cursor>,
    pub by: Option<GroupBy>,
    /// Tiers the caller may search (`None`: all); set from the caller's role, never from the
    /// query string.
    pub tiers: Option<Vec<String>>,
    /// The splits to search when not all of them: a root's or a peer's share of a query
    /// across the cluster (see [`crate::peers`]).
    pub scope: Option<Scope>,
}

/// A share of a query across the cluster: which of the splits this indexer can search it
/// searches (see [`crate::peers`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Published splits, by id.
    pub splits: HashSet<String>,
    /// This indexer's active split.
    pub active: bool,
    /// As a root's peer: this indexer (`.0`)'s own splits sealed after the newest of them the
    /// root listed (`.1`; `None`: the root listed none), which the root cannot know of yet.
    pub own_after: Option<(String, Option<String>)>,
}

impl Scope {
    /// True for the split `id` of `indexer` (`active`: the one it is writing).
    pub fn covers(&self, id: &str, indexer: &str, active: bool) -> bool {
        if active {
            return self.active;
        }
        self.splits.contains(id)
            || self
                .own_after
                .as_ref()
                .is_some_and(|(me, after)| indexer == me && after.as_deref().is_none_or(|after| id > after))
    }
}

impl Filters {
    /// Parses a URL query string (`corr=…&since=15m`) for `endpoint` ([`ApiQuery::parse`]) and
    /// resolves it against `now`.
    pub fn parse(query: &str, endpoint: Endpoint, now: Timestamp) -> Result<Filters, ParamError> {
        Filters::resolve(ApiQuery::parse(query, endpoint)?, now)
    }

    /// The filters of a parsed request, its durations resolved against `now`; the limit is
    /// [`DEFAULT_LIMIT`] when the request gives none.
    pub fn resolve(query: ApiQuery, now: Timestamp) -> Result<Filters, ParamError> {
        let mut filters = Filters::select(&query.selector, now)?;
        filters.limit = query.page.limit.unwrap_or(DEFAULT_LIMIT);
        filters.order = query.page.order.unwrap_or_default();
        filters.after = query.page.after;
        filters.by = query.by;
        Ok(filters)
    }

    /// The filters of a [`Selector`] (a request's, a hold's), `since`/`until` resolved against
    /// `now`.
    pub fn select(selector: &Selector, now: Timestamp) -> Result<Filters, ParamError> {
        let bound = |key: &str, text: &Option<String>| -> Result<Option<Timestamp>, ParamError> {
            text.as_deref()
                .map(|text| {
                    resolve_time_bound(text, now)
                        .map_err(|error| ParamError(format!("parameter {key}: {error}")))
                })
                .transpose()
        };
        let filters = Filters {
            corr: selector.corr.clone(),
            q: selector.q.clone(),
            service: selector.service.clone(),
            version: selector.version.clone(),
            instance: selector.instance.clone(),
            namespace: selector.namespace.clone(),
            level: selector.level,
            since: bound("since", &selector.since)?,
            until: bound("until", &selector.until)?,
            ..Filters::default()
        };
        if let (Some(since), Some(until)) = (filters.since, filters.until)
            && since > until
        {
            return Err(ParamError(format!(
                "parameter since ({since}) is after until ({until})"
            )));
        }
        Ok(filters)
    }
}

/// Why a query was not answered: the request (the caller's to fix) or the server.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request cannot be run as asked: a parameter, or a `q` the engine refuses to run.
    #[error(transparent)]
    Refused(#[from] ParamError),
    /// A fault of the server itself (a split that cannot be read …).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<TantivyError> for QueryError {
    fn from(error: TantivyError) -> QueryError {
        QueryError::Failed(error.into())
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
    /// Other indexers' splits that could not be fetched into the cache: (split id, why).
    pub unfetched: Vec<(String, String)>,
    /// Set when `truncated`: where this page ended, for the next one's `after`.
    pub after: Option<Cursor>,
}

/// What a root spreads over the cluster ([`QueryEngine::published_for`]).
#[derive(Debug, Default)]
pub struct Published {
    pub splits: Vec<SplitKey>,
    /// The newest listed split of each indexer.
    pub have: BTreeMap<String, String>,
    /// The newest sealed split of the root itself.
    pub newest_own: Option<String>,
}

/// What a stats request counted.
#[derive(Debug, Default)]
pub struct StatsOutcome {
    pub groups: Vec<corral_schema::api::StatsGroup>,
    pub total: u64,
    /// Splits that could not answer the query, by tier ([`QueryEngine::unsearched_notice`]).
    pub unsearched: BTreeMap<String, usize>,
    /// Other indexers' splits that could not be fetched into the cache: (split id, why).
    pub unfetched: Vec<(String, String)>,
}

/// Runs queries against the splits of a [`Catalog`].
pub struct QueryEngine {
    catalog: Arc<Catalog>,
    parser: QueryParser,
    limits: QueryLimits,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("catalog", &self.catalog)
            .finish()
    }
}

impl QueryEngine {
    /// An engine with the default [`QueryLimits`].
    pub fn new(catalog: Arc<Catalog>) -> QueryEngine {
        QueryEngine::with_limits(catalog, QueryLimits::default())
    }

    /// An engine that refuses requests beyond `limits`.
    pub fn with_limits(catalog: Arc<Catalog>, limits: QueryLimits) -> QueryEngine {
        let schema = catalog.schema().clone();
        let default_fields = vec![
            schema.get_field(f::MSG).expect("schema has msg"),
            schema.get_field(f::FIELDS).expect("schema has fields"),
        ];
        let mut parser = QueryParser::new(schema, default_fields, TokenizerManager::default());
        // `payment declined` means both words, as in every log search tool.
        parser.set_conjunction_by_default();
        QueryEngine {
            catalog,
            parser,
            limits,
        }
    }

    /// The schema `q` is parsed against: the current one.
    fn parser_schema(&self) -> &tantivy::schema::Schema {
        self.catalog.schema()
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Checks that `q` is within the limits and parses, as a search's `q` would be.
    /// The error names `q` alone (`q: cannot parse …`), for callers that say where it came from
    /// (`retention.keep[0].q`, a hold's `selector q`).
    pub fn check_query(&self, q: &str) -> Result<(), ParamError> {
        self.parse_q(q)
            .map(|_| ())
            .map_err(|e| ParamError(e.0.strip_prefix("parameter ").unwrap_or(&e.0).to_owned()))
    }

    /// Checks what a request asks for against the [`QueryLimits`] before any split is touched.
    pub fn validate(&self, filters: &Filters) -> Result<(), ParamError> {
        if filters.limit > self.limits.max_limit {
            return Err(ParamError(format!(
                "parameter limit: {} is more than one search answers (indexer.max_limit = {}); page \
                 through the rest by passing each response's after back as after",
                filters.limit, self.limits.max_limit
            )));
        }
        if let Some(q) = &filters.q {
            self.limits.check_q(q)?;
        }
        Ok(())
    }

    /// Parses `q` once per request (checked against the limits first), for every split.
    fn parse_q(&self, q: &str) -> Result<Box<dyn Query>, ParamError> {
        self.limits.check_q(q)?;
        self.parser
            .parse_query(q)
            .map_err(|error| ParamError(format!("parameter q: cannot parse {q:?}: {error}")))
    }

    /// The parsed `q` of `filters`, if any.
    fn parsed_q(&self, filters: &Filters) -> Result<Option<Box<dyn Query>>, ParamError> {
        filters.q.as_deref().map(|q| self.parse_q(q)).transpose()
    }

    /// Builds the tantivy query of `filters` with `q` already parsed; `seq` adds an
    /// ingest-sequence range (for tail), `ts` a range on event time (for paging).
    fn build(
        &self,
        view: &SplitView,
        filters: &Filters,
        q: Option<&dyn Query>,
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
        if let Some(scope) = &filters.namespaces {
            let mut allowed: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for pattern in scope.patterns() {
                let query: Box<dyn Query> =
                    if pattern.contains('*') {
                        let regex = pattern
                            .split('*')
                            .map(regex_escape)
                            .collect::<Vec<_>>()
                            .join(".*");
                        Box::new(RegexQuery::from_pattern(&regex, fields.namespace).map_err(|e| {
                            ParamError(format!("the token's namespace pattern {pattern:?}: {e}"))
                        })?)
                    } else {
                        term(fields.namespace, pattern)
                    };
                allowed.push((Occur::Should, query));
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(allowed))));
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
        if let Some(q) = q {
            // A split written before records had spans has no `span` field: no record of it
            // has one, and a query naming the field would name a field its schema lacks.
            if view.fields.span.is_none()
                && let Ok(span) = self.parser_schema().get_field(f::SPAN)
                && mentions_field(q, span)
            {
                return Ok(Box::new(EmptyQuery));
            }
            clauses.push((Occur::Must, q.box_clone()));
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
        q: Option<&dyn Query>,
        seq: Option<(u64, u64)>,
    ) -> Result<Option<Box<dyn Query>>, ParamError> {
        let query = self.build(view, filters, q, seq)?;
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

    /// What a response says about splits that could not answer (see `query_for`).
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
            let q = self.parsed_q(filters)?;
            let query = self.build(view, filters, q.as_deref(), None)?;
            clauses.push((Occur::Should, self.answerable_or_wider(view, query)));
        }
        if clauses.is_empty() {
            return Ok(HashSet::new());
        }
        let searcher = view.reader.searcher();
        searcher
            .search(&BooleanQuery::new(clauses), &DocSetCollector)
            .map_err(|e| refused(e, None).into())
    }

    /// Number of documents of `view` matching `filters`.
    pub fn count_in(&self, view: &SplitView, filters: &Filters) -> Result<u64, anyhow::Error> {
        let q = self.parsed_q(filters)?;
        let query = self.answerable_or_wider(view, self.build(view, filters, q.as_deref(), None)?);
        Ok(view
            .reader
            .searcher()
            .search(&query, &Count)
            .map_err(|e| refused(e, filters.q.as_deref()))? as u64)
    }

    /// The splits, by tier, a query with `filters` would search were the caller not limited to
    /// `filters.tiers`: what a reader's answer lacks.
    pub fn hidden_tiers(&self, filters: &Filters) -> BTreeMap<String, usize> {
        let mut hidden = BTreeMap::new();
        let Some(allowed) = &filters.tiers else {
            return hidden;
        };
        let unlimited = Filters {
            tiers: None,
            ..filters.clone()
        };
        let (local, remote) = self.catalog.snapshot();
        let metas = local
            .iter()
            .map(|v| Meta::of_view(v))
            .chain(remote.iter().filter(|s| !s.learned).map(|s| Meta::of_remote(s)));
        // A published split may be open here too (this indexer's own): count it once.
        let mut seen = HashSet::new();
        for meta in metas {
            if !allowed.iter().any(|t| t == meta.tier)
                && Self::wants(&unlimited, meta)
                && seen.insert(meta.id.to_owned())
            {
                *hidden.entry(meta.tier.to_owned()).or_default() += 1;
            }
        }
        hidden
    }

    /// Whether a query with `filters` searches the split `split`.
    fn wants(filters: &Filters, split: Meta<'_>) -> bool {
        let (Some(min), Some(max)) = (split.min_ts, split.max_ts) else {
            return false; // empty
        };
        filters
            .tiers
            .as_ref()
            .is_none_or(|tiers| tiers.iter().any(|t| t == split.tier))
            && filters
                .scope
                .as_ref()
                .is_none_or(|scope| scope.covers(split.id, split.indexer, split.active))
            && filters.since.is_none_or(|since| max >= since)
            && filters.until.is_none_or(|until| min <= until)
    }

    /// What a root spreads, from one moment of the catalog: the published splits (this
    /// indexer's and others') a query with `filters` would search, the newest listed split of
    /// each indexer (what it tells its peers it holds), and the newest published split of `me`.
    /// Its splits opened here (not published yet, or in a store of its own) are in no share:
    /// the root searches them itself.
    pub fn published_for(&self, filters: &Filters, me: &str) -> Published {
        let (_, remote) = self.catalog.snapshot();
        let newest_own = remote
            .iter()
            .filter(|s| s.indexer == me)
            .map(|s| s.id().to_owned())
            .max();
        // Splits learned from another root's share are searched when asked, not spread: this
        // catalog may lack their indexer's older splits, which its `have` would then hide.
        let splits = remote
            .iter()
            .filter(|s| !s.learned && Self::wants(filters, Meta::of_remote(s)))
            .map(|s| s.key.clone())
            .collect();
        Published {
            splits,
            have: crate::store::newest_by_indexer(&remote),
            newest_own,
        }
    }

    /// The splits a query can touch: those opened here, and published ones read through the
    /// cache a few at a time ([`Splits::next_batch`]).
    fn splits_for(&self, filters: &Filters) -> Splits<'_> {
        let (local, remote) = self.catalog.snapshot();
        let mut unfetched = Vec::new();
        // A share names splits by id: one this indexer does not know is not silently skipped.
        if let Some(scope) = filters.scope.as_ref().filter(|scope| !scope.splits.is_empty()) {
            let mut known: HashSet<&str> = local.iter().map(|v| v.id.as_str()).collect();
            known.extend(remote.iter().map(|s| s.id()));
            for id in &scope.splits {
                if !known.contains(id.as_str()) {
                    unfetched.push((id.clone(), "not in this indexer's catalog".to_owned()));
                }
            }
        }
        let mut local: Vec<Arc<SplitView>> = local
            .into_iter()
            .filter(|v| Self::wants(filters, Meta::of_view(v)))
            .collect();
        local.sort_by(|a, b| b.id.cmp(&a.id));
        let remote: std::collections::VecDeque<_> = remote
            .into_iter()
            .filter(|s| Self::wants(filters, Meta::of_remote(s)))
            .collect();
        Splits {
            local: Some(local),
            remote,
            cache: self.catalog.cache(),
            unfetched,
        }
    }

    /// Runs a search: hits ordered by `ts` then `id`, deduplicated by `id`, at most `limit`,
    /// starting after `filters.after`.
    ///
    /// Work is bounded by `limit`, not by `limit` × splits: each split gives the `ts` and address
    /// of its top `limit + 1` from the fast column (no document loaded), the candidates of all
    /// splits are kept to one top-k by `ts`, and only the documents of the final page (plus
    /// duplicates and `ts` ties at its edge) are loaded.
    pub fn search(&self, filters: &Filters) -> Result<SearchOutcome, QueryError> {
        self.validate(filters)?;
        let q = self.parsed_q(filters)?;
        let mut splits = self.splits_for(filters);
        let mut outcome = SearchOutcome::default();
        let order = match filters.order {
            Order::Asc => tantivy::Order::Asc,
            Order::Desc => tantivy::Order::Desc,
        };
        let keep = filters.limit + 1;
        // The splits candidates point into; a split none points into any more is let go.
        let mut searchers: Vec<Option<(tantivy::Searcher, Arc<SplitView>)>> = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::new();
        while let Some(batch) = splits.next_batch() {
            for view in &batch {
                let Some(query) = self.query_for(view, filters, q.as_deref(), None)? else {
                    *outcome.unsearched.entry(view.tier.clone()).or_default() += 1;
                    continue;
                };
                // Only what was searched is reported (and audited) as searched.
                outcome.splits += 1;
                if !outcome.tiers.contains(&view.tier) {
                    outcome.tiers.push(view.tier.clone());
                }
                let split = searchers.len();
                let searcher = view.reader.searcher();
                let refuse = |e| refused(e, filters.q.as_deref());
                let query: Box<dyn Query> = match &filters.after {
                    None => query,
                    Some(after) => {
                        // Records at exactly the cursor's ts are few (one nanosecond): load them to
                        // compare ids; the rest must be strictly past it.
                        let at = self.with_ts(
                            view,
                            query.box_clone(),
                            Bound::Included(after.ts),
                            Bound::Included(after.ts),
                        );
                        for address in searcher.search(&at, &DocSetCollector).map_err(refuse)? {
                            let hit = load_hit(&searcher, view, address, None)?;
                            if past(&hit, after, filters.order) {
                                candidates.push(Candidate {
                                    ts: hit.ts,
                                    split,
                                    address,
                                    hit: Some(hit),
                                });
                            }
                        }
                        let (from, to) = match filters.order {
                            Order::Asc => (Bound::Excluded(after.ts), Bound::Unbounded),
                            Order::Desc => (Bound::Unbounded, Bound::Excluded(after.ts)),
                        };
                        self.with_ts(view, query, from, to)
                    }
                };
                let top = searcher
                    .search(
                        &query,
                        &TopDocs::with_limit(keep).order_by_fast_field::<DateTime>(f::TS, order),
                    )
                    .map_err(refuse)?;
                // A split with more matches than the limit means more exist, duplicates or not.
                outcome.truncated |= top.len() > filters.limit;
                // A full top-k cut its last instant arbitrarily: records of that instant are ordered
                // by id, so all of them must be candidates, or a page could skip some for good.
                let edge = (top.len() == keep)
                    .then(|| {
                        top.last()
                            .and_then(|(ts, _)| ts.map(|t| t.into_timestamp_nanos()))
                    })
                    .flatten();
                let taken: HashSet<DocAddress> = top.iter().map(|(_, address)| *address).collect();
                candidates.extend(top.into_iter().map(|(ts, address)| Candidate {
                    ts: ts.map_or(i64::MIN, |t| t.into_timestamp_nanos()),
                    split,
                    address,
                    hit: None,
                }));
                if let Some(edge) = edge {
                    let at = self.with_ts(
                        view,
                        query.box_clone(),
                        Bound::Included(edge),
                        Bound::Included(edge),
                    );
                    for address in searcher.search(&at, &DocSetCollector).map_err(refuse)? {
                        if !taken.contains(&address) {
                            candidates.push(Candidate {
                                ts: edge,
                                split,
                                address,
                                hit: None,
                            });
                        }
                    }
                }
                let pointed_at = candidates.iter().any(|c| c.split == split && c.hit.is_none());
                searchers.push(pointed_at.then(|| (searcher, Arc::clone(view))));
                // One top-k across splits: never more than twice the page in memory.
                if candidates.len() > 2 * keep {
                    keep_first(&mut candidates, keep, filters.order);
                    let kept: HashSet<usize> = candidates
                        .iter()
                        .filter(|c| c.hit.is_none())
                        .map(|c| c.split)
                        .collect();
                    for (n, slot) in searchers.iter_mut().enumerate() {
                        if !kept.contains(&n) {
                            *slot = None;
                        }
                    }
                }
            }
        }
        outcome.unfetched = std::mem::take(&mut splits.unfetched);
        sort_candidates(&mut candidates, filters.order);
        // Load in order until the page is full and the next candidate's ts differs from the
        // last one taken (ties are ordered by id, which only the document holds).
        let mut hits: Vec<Hit> = Vec::with_capacity(keep.min(candidates.len()));
        let mut seen = HashSet::new();
        for candidate in candidates {
            if hits.len() >= keep && hits.last().is_some_and(|last| last.ts != candidate.ts) {
                break;
            }
            let hit = match candidate.hit {
                Some(hit) => hit,
                None => {
                    let (searcher, view) = searchers[candidate.split]
                        .as_ref()
                        .expect("the split of a kept candidate is kept");
                    load_hit(searcher, view, candidate.address, Some(candidate.ts))?
                }
            };
            if seen.insert(hit.id.clone()) {
                hits.push(hit);
            }
        }
        sort_hits(&mut hits, filters.order);
        outcome.truncated |= hits.len() > filters.limit;
        hits.truncate(filters.limit);
        if outcome.truncated {
            outcome.after = hits.last().map(|hit| Cursor {
                ts: hit.ts,
                id: hit.id.clone(),
            });
        }
        outcome.hits = hits;
        Ok(outcome)
    }

    /// `query` restricted to event times within (`from`, `to`) in Unix nanoseconds.
    fn with_ts(
        &self,
        view: &SplitView,
        query: Box<dyn Query>,
        from: Bound<i64>,
        to: Bound<i64>,
    ) -> Box<dyn Query> {
        let term = |ts: i64| Term::from_field_date(view.fields.ts, DateTime::from_timestamp_nanos(ts));
        let range: Box<dyn Query> = Box::new(RangeQuery::new(from.map(term), to.map(term)));
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, query),
            (Occur::Must, range),
        ]))
    }

    /// Counts matching records per group of `filters.by`, with counts per level.
    /// Also returns the splits that could not answer, by tier.
    pub fn stats(&self, filters: &Filters) -> Result<StatsOutcome, QueryError> {
        let by = filters.by.unwrap_or(GroupBy::Service);
        let mut counts: HashMap<(String, String), u64> = HashMap::new();
        let mut unsearched: BTreeMap<String, usize> = BTreeMap::new();
        self.validate(filters)?;
        let q = self.parsed_q(filters)?;
        let mut splits = self.splits_for(filters);
        while let Some(batch) = splits.next_batch() {
            for view in batch {
                let Some(query) = self.query_for(&view, filters, q.as_deref(), None)? else {
                    *unsearched.entry(view.tier.clone()).or_default() += 1;
                    continue;
                };
                let searcher = view.reader.searcher();
                let fruit = searcher
                    .search(
                        &query,
                        &GroupCounter {
                            group_field: by.field(),
                        },
                    )
                    .map_err(|e| refused(e, filters.q.as_deref()))?;
                for (key, n) in fruit {
                    *counts.entry(key).or_default() += n;
                }
            }
        }
        let unfetched = splits.unfetched;
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
        Ok(StatsOutcome {
            groups,
            total,
            unsearched,
            unfetched,
        })
    }

    /// Records with ingest sequence numbers in `from..to` matching `filters`, in ingest order,
    /// at most `max`; for tail.
    pub fn tail_batch(
        &self,
        filters: &Filters,
        from: u64,
        to: u64,
        max: usize,
    ) -> Result<Vec<(u64, Hit)>, QueryError> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        self.validate(filters)?;
        let q = self.parsed_q(filters)?;
        for view in self.catalog.splits() {
            if view.docs == 0
                || filters
                    .tiers
                    .as_ref()
                    .is_some_and(|tiers| !tiers.contains(&view.tier))
            {
                continue;
            }
            let Some(query) = self.query_for(&view, filters, q.as_deref(), Some((from, to)))? else {
                continue;
            };
            let searcher = view.reader.searcher();
            let top = searcher
                .search(
                    &query,
                    &TopDocs::with_limit(max).order_by_fast_field::<u64>(f::SEQ, tantivy::Order::Asc),
                )
                .map_err(|e| refused(e, filters.q.as_deref()))?;
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
    pub fn count(&self, filters: &Filters) -> Result<usize, QueryError> {
        let mut total = 0;
        let q = self.parsed_q(filters)?;
        let mut splits = self.splits_for(filters);
        while let Some(batch) = splits.next_batch() {
            for view in batch {
                if let Some(query) = self.query_for(&view, filters, q.as_deref(), None)? {
                    total += view
                        .reader
                        .searcher()
                        .search(&query, &Count)
                        .map_err(|e| refused(e, filters.q.as_deref()))?;
                }
            }
        }
        Ok(total)
    }
}

/// The splits one query searches, handed out batch by batch: a published split is fetched
/// when its batch comes, and a batch can be dropped before the next is fetched, so a query
/// touching more than the cache holds keeps little more than it on the disk.
struct Splits<'a> {
    local: Option<Vec<Arc<SplitView>>>,
    remote: std::collections::VecDeque<Arc<RemoteSplit>>,
    cache: Option<&'a Arc<crate::cache::SplitCache>>,
    /// Splits that could not be fetched (or are not known): (split id, why).
    unfetched: Vec<(String, String)>,
}

impl Splits<'_> {
    /// The next splits: first those opened here, then published ones,
    /// [`crate::cache::PARALLEL_SPLIT_FETCHES`] at a time; `None` after the last.
    fn next_batch(&mut self) -> Option<Vec<Arc<SplitView>>> {
        if let Some(local) = self.local.take() {
            return Some(local);
        }
        let cache = self.cache?;
        if self.remote.is_empty() {
            return None;
        }
        let n = crate::cache::PARALLEL_SPLIT_FETCHES.min(self.remote.len());
        let batch: Vec<_> = self.remote.drain(..n).collect();
        let mut views = Vec::with_capacity(n);
        for (split, fetched) in batch.iter().zip(cache.get_all(&batch)) {
            match fetched {
                Ok(view) => views.push(view),
                Err(error) => self.unfetched.push((split.id().to_owned(), format!("{error:#}"))),
            }
        }
        Some(views)
    }
}

/// What decides whether a query searches a split, for this indexer's splits and others'.
#[derive(Clone, Copy)]
struct Meta<'a> {
    id: &'a str,
    tier: &'a str,
    indexer: &'a str,
    active: bool,
    min_ts: Option<Timestamp>,
    max_ts: Option<Timestamp>,
}

impl<'a> Meta<'a> {
    fn of_view(view: &'a SplitView) -> Meta<'a> {
        Meta {
            id: &view.id,
            tier: &view.tier,
            indexer: &view.indexer,
            active: view.active,
            min_ts: view.min_ts,
            max_ts: view.max_ts,
        }
    }

    fn of_remote(split: &'a RemoteSplit) -> Meta<'a> {
        Meta {
            id: split.id(),
            tier: split.tier(),
            indexer: &split.indexer,
            active: false,
            min_ts: split.min_ts,
            max_ts: split.max_ts,
        }
    }
}

fn load_hit(
    searcher: &tantivy::Searcher,
    view: &SplitView,
    address: DocAddress,
    ts: Option<i64>,
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
        ts: ts.unwrap_or(keys.ts.unix_nanos()),
        id: keys.id,
        source,
    })
}

/// A search hit before its document is loaded: its `ts` from the fast column and where it is.
struct Candidate {
    ts: i64,
    split: usize,
    address: DocAddress,
    /// Already loaded (the ties at a cursor's ts).
    hit: Option<Hit>,
}

fn sort_candidates(candidates: &mut [Candidate], order: Order) {
    match order {
        Order::Asc => candidates.sort_by_key(|c| c.ts),
        Order::Desc => candidates.sort_by_key(|c| std::cmp::Reverse(c.ts)),
    }
}

/// Keeps the first `keep` candidates in `order`, and every candidate tied with the last of them.
fn keep_first(candidates: &mut Vec<Candidate>, keep: usize, order: Order) {
    sort_candidates(candidates, order);
    if let Some(edge) = candidates.get(keep.saturating_sub(1)).map(|c| c.ts) {
        let end = keep + candidates[keep..].iter().take_while(|c| c.ts == edge).count();
        candidates.truncate(end);
    }
}

/// True when `hit` comes strictly after `after` in `order`.
fn past(hit: &Hit, after: &Cursor, order: Order) -> bool {
    let natural = hit.ts.cmp(&after.ts).then_with(|| hit.id.as_str().cmp(&after.id));
    match order {
        Order::Asc => natural.is_gt(),
        Order::Desc => natural.is_lt(),
    }
}

/// An error of running a query: what the engine refuses to run (a range on a JSON field, a
/// field it does not know) is the caller's mistake, named as `q`'s; anything else is a fault of
/// the server and stays one.
fn refused(error: TantivyError, q: Option<&str>) -> QueryError {
    match error {
        TantivyError::InvalidArgument(reason)
        | TantivyError::SchemaError(reason)
        | TantivyError::FieldNotFound(reason) => ParamError(format!(
            "parameter q: the query engine cannot run {:?}: {reason}. Supported: words, \"phrases\", \
             field:value on msg, fields.<path>, service, version, instance, node, namespace, pod, \
             container, stream, level and corr, AND/OR/NOT, +/-, parentheses; ranges ([a TO b], >, <) only on ts (use since \
             and until)",
            q.unwrap_or("")
        ))
        .into(),
        other => QueryError::Failed(other.into()),
    }
}

/// Orders hits by (`ts`, `id`) in `order`.
pub fn sort_hits(hits: &mut [Hit], order: Order) {
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

/// True when `query` needs term positions (a phrase).
/// True when a term of `query` is on `field`.
fn mentions_field(query: &dyn Query, field: tantivy::schema::Field) -> bool {
    let mut found = false;
    query.query_terms(&mut |term, _| found |= term.field() == field);
    found
}

/// Escapes the characters tantivy's (regex-syntax) patterns give a meaning, so a namespace
/// pattern's text matches only itself.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-23T10:15:00Z").unwrap()
    }

    #[test]
    fn a_query_naming_span_is_told_from_one_that_does_not() {
        // What keeps splits written before spans existed from being asked for a field they lack.
        let (schema, fields) = corral_schema::index_schema::build_schema(true);
        let parser = QueryParser::new(
            schema,
            vec![fields.msg, fields.fields],
            TokenizerManager::default(),
        );
        let span = fields.span.expect("the current schema has span");
        for (q, names_span) in [
            ("span:00f067aa0ba902b7", true),
            ("timeout OR span:00f067aa0ba902b7", true),
            ("timeout AND fields.span:x", false),
            ("span", false),
            ("corr:req-1", false),
        ] {
            let query = parser.parse_query(q).unwrap();
            assert_eq!(mentions_field(query.as_ref(), span), names_span, "{q}");
        }
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
                "parameter limit: expected a positive integer; got \"abc\"",
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
            (
                "after=12",
                Endpoint::Search,
                "parameter after: expected <ts nanoseconds>:<id>",
            ),
            ("after=1:a", Endpoint::Stats, "unknown parameter \"after\""),
        ];
        for (query, endpoint, want) in cases {
            let error = Filters::parse(query, endpoint, now()).unwrap_err().0;
            assert!(error.contains(want), "{query:?} gave {error:?}");
        }
    }
}
