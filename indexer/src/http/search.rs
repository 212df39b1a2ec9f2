//! Search and stats: a request's filters authorized, parsed and bounded, run on the engine, answered.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use corral_schema::Timestamp;
use corral_schema::api::{
    ApiQuery, HIDDEN_TIER_REASON, Missing, NO_POSITIONS_REASON, SEARCH_PATH, STATS_PATH, SearchResponse,
    StatsResponse,
};

use super::cluster::{
    Asked, add_stats, ask_shares, merge_search, merge_stats, peer_scope, spread, unfetched,
};
use super::{ApiError, ApiState, Identity, READER_NOTICE, query_params};
use crate::auth::{Caller, Role};
use crate::metrics::EndpointLabel;
use crate::peers::PeerAnswer;
use crate::query::{Endpoint, Filters, QueryEngine, QueryError, StatsOutcome};
use crate::storage::SplitKey;
use crate::store::HOT_TIER;

pub(super) fn label(endpoint: Endpoint) -> EndpointLabel {
    EndpointLabel {
        endpoint: action(endpoint),
    }
}

/// The audit action (and metric label) of an endpoint.
pub(super) fn action(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Search => "search",
        Endpoint::Tail => "tail",
        Endpoint::Stats => "stats",
    }
}

/// Authorizes, parses and bounds the filters, counts the call; `Err` is the response to send.
/// A request's caller and filters, and when a root asked it of this indexer, the published
/// splits of its share (to look up in the store if the catalog does not list them yet).
pub(super) struct Prepared {
    pub caller: Caller,
    pub filters: Filters,
    pub share: Vec<SplitKey>,
}

pub(super) fn prepare(
    state: &ApiState,
    identity: Identity,
    (headers, body): (&HeaderMap, &[u8]),
    query: Option<&str>,
    endpoint: Endpoint,
) -> Result<Prepared, Box<Response>> {
    state.metrics.queries.get_or_create(&label(endpoint)).inc();
    let caller = state.authorize(identity, Role::Reader, "query logs", action(endpoint), || {
        query_params(query)
    })?;
    let parsed = ApiQuery::parse(query.unwrap_or(""), endpoint).and_then(|api| {
        let limit_given = api.page.limit.is_some();
        let mut filters = Filters::resolve(api, Timestamp::now())?;
        // The default page is never more than the cap; a `limit` asked for is checked.
        if !limit_given {
            filters.limit = filters.limit.min(state.engine.limits().max_limit);
        }
        state.engine.validate(&filters).map(|()| filters)
    });
    let mut filters = parsed.map_err(|e| {
        state.metrics.query_errors.get_or_create(&label(endpoint)).inc();
        Box::new(state.refuse(
            Some(&caller),
            action(endpoint),
            query_params(query),
            ApiError::BadRequest(e.0),
        ))
    })?;
    if caller.role == Role::Reader {
        filters.tiers = Some(vec![HOT_TIER.to_owned()]);
    }
    // A scoped token's namespaces are added to the query itself, here and on every peer (the
    // peer sees the same token): no parameter can widen them.
    filters.namespaces = caller.namespaces.clone();
    let mut share = Vec::new();
    match peer_scope(state, headers, body) {
        Ok(Some((scope, keys))) => {
            filters.scope = Some(scope);
            share = keys;
        }
        Ok(None) => {}
        Err(error) => {
            return Err(Box::new(state.refuse(
                Some(&caller),
                action(endpoint),
                query_params(query),
                ApiError::BadRequest(error),
            )));
        }
    }
    Ok(Prepared {
        caller,
        filters,
        share,
    })
}

/// Completes `missing` with the tiers the caller's role hid (the root of a query counts them for
/// the whole catalog; a peer asked for its share does not), then sums the entries of one tier
/// and reason that several indexers sent.
fn tiers_missing(state: &ApiState, filters: &Filters, missing: &mut Vec<Missing>) {
    if filters.scope.is_none() {
        missing.extend(
            state
                .engine
                .hidden_tiers(filters)
                .into_iter()
                .map(|(tier, n)| Missing::tier(tier, n, HIDDEN_TIER_REASON)),
        );
    }
    let mut merged: Vec<Missing> = Vec::with_capacity(missing.len());
    for entry in missing.drain(..) {
        match merged
            .iter_mut()
            .find(|m| entry.tier.is_some() && m.tier == entry.tier && m.reason == entry.reason)
        {
            Some(same) => same.splits = Some(same.splits.unwrap_or(0) + entry.splits.unwrap_or(0)),
            None => merged.push(entry),
        }
    }
    *missing = merged;
}

/// Runs `run` on the engine off the async threads, after looking up the splits of a root's
/// `share` this indexer's catalog does not list yet; those that cannot be come back as missing.
async fn on_engine<T: Send + 'static>(
    state: &ApiState,
    share: Vec<SplitKey>,
    run: impl FnOnce(&QueryEngine) -> Result<T, QueryError> + Send + 'static,
) -> Result<(Result<T, QueryError>, Vec<Missing>), ApiError> {
    let engine = Arc::clone(&state.engine);
    tokio::task::spawn_blocking(move || {
        let unknown = crate::published::learn(engine.catalog(), &share);
        let missing = unknown
            .into_iter()
            .map(|(split, reason)| Missing::split(split, reason))
            .collect();
        (run(&engine), missing)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the query failed: {e}")))
}

/// One API call as the cluster fan-out needs it.
struct Call<'a> {
    caller: &'a Caller,
    endpoint: Endpoint,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
}

/// A query run across the cluster ([`fan_out`]).
struct Fanned<T> {
    /// This indexer's answer: its own share as a root, else all it was asked.
    own: T,
    answers: Vec<PeerAnswer>,
    missing: Vec<Missing>,
    /// The shares of peers that failed, answered here.
    left: Option<T>,
    /// This indexer was the query's root.
    root: bool,
}

/// Runs `run` (a search or stats) on this indexer's share while its peers are asked for theirs
/// (when it is the query's root), then on the shares of peers that failed. `Err` is the
/// response to send: the engine refused the query, or failed.
async fn fan_out<T: Send + 'static>(
    state: &ApiState,
    call: &Call<'_>,
    filters: &Filters,
    share: Vec<SplitKey>,
    run: fn(&QueryEngine, &Filters) -> Result<T, QueryError>,
) -> Result<Fanned<T>, Response> {
    let failed = |e| query_failed(state, call.endpoint, call.caller, call.query, e);
    let path = match call.endpoint {
        Endpoint::Stats => STATS_PATH,
        Endpoint::Search | Endpoint::Tail => SEARCH_PATH,
    };
    let spread = spread(state, filters, call.headers).await;
    let mut own = filters.clone();
    if let Some(spread) = &spread {
        own.scope = Some(spread.own.clone());
    }
    let (local, asked) = tokio::join!(on_engine(state, share, move |engine| run(engine, &own)), async {
        match &spread {
            Some(spread) => Some(ask_shares(state, spread, path, call.query, call.headers).await),
            None => None,
        }
    });
    let (own, mut missing) = match local {
        Ok((Ok(own), missing)) => (own, missing),
        Ok((Err(e), _)) => return Err(failed(e)),
        Err(e) => return Err(e.into_response()),
    };
    let root = asked.is_some();
    let Asked {
        answers,
        missing: peers_missing,
        left,
    } = asked.unwrap_or_default();
    missing.extend(peers_missing);
    let left = if left.splits.is_empty() {
        None
    } else {
        let mut theirs = filters.clone();
        theirs.scope = Some(left);
        match on_engine(state, Vec::new(), move |engine| run(engine, &theirs)).await {
            Ok((Ok(theirs), _)) => Some(theirs),
            Ok((Err(e), _)) => return Err(failed(e)),
            Err(e) => return Err(e.into_response()),
        }
    };
    // Published splits whose manifests could not be read, for an answer of the whole cluster.
    if filters.scope.is_none() || root {
        missing.extend(unfetched(state));
    }
    Ok(Fanned {
        own,
        answers,
        missing,
        left,
        root,
    })
}

pub(super) async fn search(
    State(state): State<ApiState>,
    identity: Identity,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let Prepared {
        caller,
        filters,
        share,
    } = match prepare(
        &state,
        identity,
        (&headers, &body),
        query.as_deref(),
        Endpoint::Search,
    ) {
        Ok(prepared) => prepared,
        Err(response) => return *response,
    };
    let call = Call {
        caller: &caller,
        endpoint: Endpoint::Search,
        query: query.as_deref(),
        headers: &headers,
    };
    let fanned = match fan_out(&state, &call, &filters, share, QueryEngine::search).await {
        Ok(fanned) => fanned,
        Err(response) => return response,
    };
    let root = fanned.root;
    let mut merged = merge_search(fanned.own, fanned.answers, fanned.missing, &filters);
    if let Some(theirs) = fanned.left {
        merged.absorb(theirs, &filters);
    }
    let took = started.elapsed();
    state
        .metrics
        .query_seconds
        .get_or_create(&label(Endpoint::Search))
        .observe(took.as_secs_f64());
    let outcome = merged.outcome;
    let count = outcome.hits.len() as u64;
    if let Err(e) = state.record(
        &caller,
        "search",
        query.as_deref(),
        count,
        outcome.tiers.clone(),
        took,
    ) {
        return e.into_response();
    }
    let mut notices: Vec<String> = (caller.role == Role::Reader)
        .then(|| READER_NOTICE.to_owned())
        .into_iter()
        .chain(QueryEngine::unsearched_notice(&outcome.unsearched))
        .collect();
    for notice in merged.notices {
        if root && !notices.contains(&notice) {
            notices.push(notice);
        }
    }
    let mut missing = merged.missing;
    missing.extend(
        outcome
            .unsearched
            .iter()
            .map(|(tier, n)| Missing::tier(tier, *n, NO_POSITIONS_REASON)),
    );
    tiers_missing(&state, &filters, &mut missing);
    let response = SearchResponse::<()> {
        hits: Vec::new(),
        count: outcome.hits.len(),
        truncated: outcome.truncated,
        took_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        splits: outcome.splits,
        tiers: outcome.tiers,
        notice: (!notices.is_empty()).then(|| notices.join("; ")),
        after: outcome.after.map(|after| after.to_string()),
        complete: missing.is_empty(),
        missing,
    };
    // Hits are the stored envelopes, written out verbatim.
    let body = response.write_with_hits(outcome.hits.iter().map(|hit| hit.source.as_str()));
    state.answer(body)
}

pub(super) fn query_failed(
    state: &ApiState,
    endpoint: Endpoint,
    caller: &Caller,
    query: Option<&str>,
    e: QueryError,
) -> Response {
    state.metrics.query_errors.get_or_create(&label(endpoint)).inc();
    match ApiError::from(e) {
        // The caller's mistake: audited as a refusal.
        refused @ ApiError::BadRequest(_) => {
            state.refuse(Some(caller), action(endpoint), query_params(query), refused)
        }
        failed => failed.into_response(),
    }
}

pub(super) async fn stats(
    State(state): State<ApiState>,
    identity: Identity,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let Prepared {
        caller,
        filters,
        share,
    } = match prepare(
        &state,
        identity,
        (&headers, &body),
        query.as_deref(),
        Endpoint::Stats,
    ) {
        Ok(prepared) => prepared,
        Err(response) => return *response,
    };
    let tiers = filters.tiers.clone().unwrap_or_default();
    let call = Call {
        caller: &caller,
        endpoint: Endpoint::Stats,
        query: query.as_deref(),
        headers: &headers,
    };
    let fanned = match fan_out(&state, &call, &filters, share, QueryEngine::stats).await {
        Ok(fanned) => fanned,
        Err(response) => return response,
    };
    let mut missing = fanned.missing;
    let mut response = stats_response(fanned.own, &mut missing);
    merge_stats(&mut response, fanned.answers, &mut missing);
    if let Some(theirs) = fanned.left {
        let theirs = stats_response(theirs, &mut missing);
        add_stats(&mut response, theirs, &mut missing);
    }
    let took = started.elapsed();
    state
        .metrics
        .query_seconds
        .get_or_create(&label(Endpoint::Stats))
        .observe(took.as_secs_f64());
    response.took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    tiers_missing(&state, &filters, &mut missing);
    response.complete = missing.is_empty();
    response.missing = missing;
    let total = response.total;
    if let Err(e) = state.record(&caller, "stats", query.as_deref(), total, tiers, took) {
        return e.into_response();
    }
    state.answer(serde_json::to_string(&response).expect("serializes"))
}

/// The answer of one engine's stats; the splits it could not fetch or that could not answer go
/// to `missing`.
fn stats_response(outcome: StatsOutcome, missing: &mut Vec<Missing>) -> StatsResponse {
    missing.extend(
        outcome
            .unfetched
            .into_iter()
            .map(|(split, reason)| Missing::split(split, reason)),
    );
    missing.extend(
        outcome
            .unsearched
            .iter()
            .map(|(tier, n)| Missing::tier(tier, *n, NO_POSITIONS_REASON)),
    );
    StatsResponse {
        groups: outcome.groups,
        total: outcome.total,
        notice: QueryEngine::unsearched_notice(&outcome.unsearched),
        ..StatsResponse::default()
    }
}
