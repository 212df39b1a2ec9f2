//! Operations endpoints: `/metrics` and `/readyz`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;

pub(super) async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

pub(super) async fn readyz(State(state): State<ApiState>) -> Response {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    // A full disk stops ingest: not ready, so it is seen (queries are still answered).
    if let Some(problem) = state.metrics.disk_problem() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {problem}\n")).into_response();
    }
    // Otherwise ready means "can answer queries": an ingest problem (Kafka unreachable) must not
    // take what is already indexed out of the Services. It is reported here and in the metrics.
    match state.metrics.problem() {
        Some(problem) => format!("ready; ingest problem: {problem}\n").into_response(),
        None => "ready\n".into_response(),
    }
}
