//! The audit log, read by auditors.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use corral_schema::Timestamp;

use super::{ApiError, ApiState, Identity, error, json, query_params};
use crate::auth::Role;

/// The audit log between `since` and `until`, of `who`, for auditors.
pub(super) async fn audit(
    State(state): State<ApiState>,
    identity: Identity,
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
    // Reading the audit log is itself recorded.
    if let Err(e) = state.record(
        &caller,
        "audit",
        query.as_deref(),
        entries.len() as u64,
        Vec::new(),
        started.elapsed(),
    ) {
        return e.into_response();
    }
    json(serde_json::json!({"entries": entries, "truncated": truncated}).to_string())
}
