//! The audit log, read by auditors: through any indexer of a cluster, every indexer's log
//! merged in time order, each entry naming its `indexer`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use corral_schema::Timestamp;
use corral_schema::api::Missing;

use super::{AUDIT_PATH, ApiError, ApiState, Identity, error, json, query_params};
use crate::auth::Role;
use crate::peers::PEER_HEADER;

/// The audit log between `since` and `until`, of `who`, for auditors.
pub(super) async fn audit(
    State(state): State<ApiState>,
    identity: Identity,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let caller = match state.authorize(identity, Role::Auditor, "read the audit log", "audit", || {
        query_params(query.as_deref())
    }) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let now = Timestamp::now();
    let (mut since, mut until, mut who, mut limit) = (None, None, None, 10_000);
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        let bad = |message: String| {
            state.refuse(
                Some(&caller),
                "audit",
                query_params(query.as_deref()),
                ApiError::BadRequest(message),
            )
        };
        match key.as_ref() {
            "since" | "until" => match corral_schema::api::resolve_time_bound(&value, now) {
                Ok(ts) if key == "since" => since = Some(ts),
                Ok(ts) => until = Some(ts),
                Err(e) => return bad(format!("parameter {key}: {e}")),
            },
            "who" => who = Some(value.into_owned()),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=100_000).contains(&n) => limit = n,
                _ => {
                    return bad(format!(
                        "parameter limit: expected an integer from 1 to 100000; got {value:?}"
                    ));
                }
            },
            other => {
                return bad(format!(
                    "unknown parameter {other:?}: expected one of since, until, who, limit"
                ));
            }
        }
    }
    let audit = Arc::clone(&state.audit);
    let read = tokio::task::spawn_blocking(move || audit.read(since, until, who.as_deref(), limit)).await;
    let (entries, truncated) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the audit log: {e:#}"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the audit log: {e}"),
            );
        }
    };
    let me = &state.cluster.indexer;
    let mut merged: Vec<serde_json::Value> = entries
        .iter()
        .map(|stored| with_indexer(serde_json::to_value(stored).expect("serializes"), me))
        .collect();
    let mut truncated = truncated;
    let mut missing = Vec::new();
    // A root asks every peer for its own log (a peer asked does not ask on): the cluster's log.
    if let Some(peers) = &state.cluster.peers
        && !headers.contains_key(PEER_HEADER)
        && !peers.is_empty()
    {
        let (answers, failed) = peers
            .ask_all(
                AUDIT_PATH,
                query.as_deref().unwrap_or(""),
                headers.get(AUTHORIZATION),
                "",
            )
            .await;
        missing = failed;
        for answer in answers {
            let peer_log = answer.body.and_then(|body| {
                serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| e.to_string())
            });
            match peer_log {
                Ok(log) => {
                    truncated |= log["truncated"] == true;
                    let indexer = log["indexer"].as_str().unwrap_or(&answer.peer).to_owned();
                    let entries = log["entries"].as_array().cloned().unwrap_or_default();
                    merged.extend(entries.into_iter().map(|e| with_indexer(e, &indexer)));
                }
                Err(reason) => missing.push(Missing::peer(answer.peer, reason)),
            }
        }
        // One log in time order; at the same instant, by indexer and place in its chain.
        merged.sort_by(|a, b| {
            let key = |e: &serde_json::Value| {
                (
                    e["at"].as_str().unwrap_or("").to_owned(),
                    e["indexer"].as_str().unwrap_or("").to_owned(),
                    e["seq"].as_u64().unwrap_or(0),
                )
            };
            key(a).cmp(&key(b))
        });
        if merged.len() > limit {
            merged.truncate(limit);
            truncated = true;
        }
    }
    // Reading the audit log is itself recorded.
    if let Err(e) = state.record(
        &caller,
        "audit",
        query.as_deref(),
        merged.len() as u64,
        Vec::new(),
        started.elapsed(),
    ) {
        return e.into_response();
    }
    json(
        serde_json::json!({
            "entries": merged,
            "truncated": truncated,
            "indexer": me,
            "complete": missing.is_empty(),
            "missing": missing,
        })
        .to_string(),
    )
}

/// An entry of `indexer`'s log, saying whose it is.
fn with_indexer(mut entry: serde_json::Value, indexer: &str) -> serde_json::Value {
    if let Some(fields) = entry.as_object_mut() {
        fields.insert(
            "indexer".to_owned(),
            serde_json::Value::String(indexer.to_owned()),
        );
    }
    entry
}
