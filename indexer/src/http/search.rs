//! Search and stats: a request's filters authorized, parsed and bounded, run on the engine, answered.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use corral_schema::Timestamp;
use corral_schema::api::{ApiQuery, SEARCH_PATH, STATS_PATH, SearchResponse, StatsResponse};

use super::cluster::{ask_peers, merge_search, merge_stats, peer_scope, unfetched};
use super::{ApiError, ApiState, Identity, READER_NOTICE, query_params};
use crate::auth::{Caller, Role};
use crate::metrics::EndpointLabel;
use crate::query::{Endpoint, Filters, QueryEngine, QueryError};
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
pub(super) fn prepare(
    state: &ApiState,
    identity: Identity,
    headers: &HeaderMap,
    query: Option<&str>,
    endpoint: Endpoint,
) -> Result<(Caller, Filters), Box<Response>> {
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
    filters.scope = peer_scope(state, headers);
    Ok((caller, filters))
}

pub(super) async fn search(
    State(state): State<ApiState>,
    identity: Identity,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(&state, identity, &headers, query.as_deref(), Endpoint::Search) {
        Ok(prepared) => prepared,
        Err(response) => return *response,
    };
    let engine = Arc::clone(&state.engine);
    let local = {
        let filters = filters.clone();
        tokio::task::spawn_blocking(move || engine.search(&filters))
    };
    // The peers are asked while this indexer searches its own splits.
    let (outcome, peers) = tokio::join!(local, ask_peers(&state, SEARCH_PATH, query.as_deref(), &headers));
    let took = started.elapsed();
    state
        .metrics
        .query_seconds
        .get_or_create(&label(Endpoint::Search))
        .observe(took.as_secs_f64());
    let outcome = match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => return query_failed(&state, Endpoint::Search, &caller, query.as_deref(), e),
        Err(e) => return ApiError::Internal(format!("search failed: {e}")).into_response(),
    };
    let root = peers.is_some();
    let (answers, missing) = peers.unwrap_or_default();
    let mut merged = merge_search(outcome, answers, missing, &filters);
    if filters.scope.is_none() {
        merged.missing.extend(unfetched(&state));
    }
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
    let response = SearchResponse::<()> {
        hits: Vec::new(),
        count: outcome.hits.len(),
        truncated: outcome.truncated,
        took_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        splits: outcome.splits,
        tiers: outcome.tiers,
        notice: (!notices.is_empty()).then(|| notices.join("; ")),
        after: outcome.after.map(|after| after.to_string()),
        complete: merged.missing.is_empty(),
        missing: merged.missing,
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
) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(&state, identity, &headers, query.as_deref(), Endpoint::Stats) {
        Ok(prepared) => prepared,
        Err(response) => return *response,
    };
    let tiers = filters.tiers.clone().unwrap_or_default();
    let peer = filters.scope.is_some();
    let engine = Arc::clone(&state.engine);
    let local = tokio::task::spawn_blocking(move || engine.stats(&filters));
    let (outcome, peers) = tokio::join!(local, ask_peers(&state, STATS_PATH, query.as_deref(), &headers));
    let took = started.elapsed();
    state
        .metrics
        .query_seconds
        .get_or_create(&label(Endpoint::Stats))
        .observe(took.as_secs_f64());
    match outcome {
        Ok(Ok((groups, total, unsearched))) => {
            let mut response = StatsResponse {
                groups,
                total,
                took_ms: took.as_millis() as u64,
                notice: QueryEngine::unsearched_notice(&unsearched),
                ..StatsResponse::default()
            };
            let (answers, mut missing) = peers.unwrap_or_default();
            merge_stats(&mut response, answers, &mut missing);
            if !peer {
                missing.extend(unfetched(&state));
            }
            response.complete = missing.is_empty();
            response.missing = missing;
            let total = response.total;
            if let Err(e) = state.record(&caller, "stats", query.as_deref(), total, tiers, took) {
                return e.into_response();
            }
            state.answer(serde_json::to_string(&response).expect("serializes"))
        }
        Ok(Err(e)) => query_failed(&state, Endpoint::Stats, &caller, query.as_deref(), e),
        Err(e) => ApiError::Internal(format!("stats failed: {e}")).into_response(),
    }
}
