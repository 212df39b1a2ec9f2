//! The HTTP API (DESIGN §4.3): search, tail and stats over the splits, plus `/metrics`,
//! `/healthz` and `/readyz`.
//!
//! Every `/api/v1/*` handler takes the caller's [`Identity`] (an extractor over the bearer
//! token, or `anonymous` on an open API without a tokens file) and asks whether its role may
//! make the call; every call is appended to the [`AuditLog`] before it is answered — refused ones too (400, 401, 403, 429: who or `anonymous`, why, the
//! parameters; never the presented token), counted in `corral_indexer_refused_total`. A
//! `reader` searches the hot tier only and is told so. Errors are [`ApiError`]s, whose kind
//! alone decides the status.
//!
//! Work per request is bounded: `q` by length and nesting ([`crate::limits::QueryLimits`]), a
//! search by `max_limit` (more is paged with `after`), tails by [`TailPolicy`]: at most
//! `max_tails` at once, each closed when `tail_buffer_bytes` wait for a client that stopped
//! reading, and kept alive with an empty line every [`TAIL_KEEPALIVE`] so clients can tell a
//! quiet stream from a dead one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use corral_schema::Timestamp;
use corral_schema::api::{ErrorResponse, SEARCH_PATH, STATS_PATH, TAIL_PATH};
use tokio::net::TcpListener;

use crate::audit::{AuditLog, Entry, Refusal};
use crate::auth::{Caller, Role};
use crate::holds::Holds;
use crate::metrics::{Metrics, RefusedLabel};
use crate::query::QueryEngine;

mod audit;
mod auth;
mod cluster;
mod error;
mod holds;
mod ops;
mod search;
mod tail;

use audit::audit;
pub use auth::{Access, Denied, Identity};
pub use cluster::Cluster;
pub use error::ApiError;
use holds::{create_hold, list_holds, release_hold};
use ops::{metrics, readyz};
use search::{search, stats};
use tail::tail;
pub use tail::{TAIL_KEEPALIVE, TailPolicy};

/// Path of the audit-log endpoint.
pub const AUDIT_PATH: &str = "/api/v1/audit";
/// Path of the legal-holds endpoint.
pub const HOLDS_PATH: &str = "/api/v1/holds";
/// What a reader's search response says about the tiers it did not search.
pub const READER_NOTICE: &str = "role reader searches the hot tier only: older tiers were not searched";

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub engine: Arc<QueryEngine>,
    pub metrics: Arc<Metrics>,
    pub access: Access,
    pub audit: Arc<AuditLog>,
    pub holds: Arc<Holds>,
    /// Set once ingest runs (store opened, source connected).
    pub ready: Arc<AtomicBool>,
    pub tails: TailPolicy,
    /// This indexer's id and its peers.
    pub cluster: Cluster,
}

/// The parameters of a query string, as the audit log records them.
fn query_params(query: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl ApiState {
    /// Returns the caller if it may act as `needed`; else the refusal, audited and counted.
    fn authorize(
        &self,
        identity: Identity,
        needed: Role,
        what: &str,
        action: &'static str,
        params: impl FnOnce() -> BTreeMap<String, String>,
    ) -> Result<Caller, Box<Response>> {
        identity
            .may(needed, what)
            .map_err(|denied| Box::new(self.refuse(denied.caller.as_ref(), action, params(), denied.error)))
    }

    /// Answers a refused call: audited first (who, or `anonymous`; the status and why; the
    /// parameters), counted in `refused`, then sent. A refusal whose entry cannot be written is
    /// still refused, and the failure logged.
    fn refuse(
        &self,
        caller: Option<&Caller>,
        action: &'static str,
        params: BTreeMap<String, String>,
        error: ApiError,
    ) -> Response {
        self.metrics
            .refused
            .get_or_create(&RefusedLabel {
                endpoint: action,
                status: error.status().as_u16(),
            })
            .inc();
        let entry = Entry {
            at: Timestamp::now(),
            who: caller.map_or_else(|| "anonymous".to_owned(), |c| c.name.clone()),
            role: caller.map_or("none", |c| c.role.as_str()).to_owned(),
            action: action.to_owned(),
            params,
            count: 0,
            tiers: Vec::new(),
            took_ms: 0,
            refused: Some(Refusal {
                status: error.status().as_u16(),
                reason: error.message().to_owned(),
            }),
            namespaces: caller.and_then(Caller::scope_patterns),
        };
        if let Err(e) = tokio::task::block_in_place(|| self.audit.append(entry)) {
            tracing::error!(error = %format!("{e:#}"), action, "cannot audit a refused call");
        }
        error.into_response()
    }

    /// Appends an audit entry for a call; an entry that cannot be written fails the call.
    fn record(
        &self,
        caller: &Caller,
        action: &str,
        query: Option<&str>,
        count: u64,
        tiers: Vec<String>,
        took: Duration,
    ) -> Result<(), ApiError> {
        self.record_params(caller, action, query_params(query), count, tiers, took)
    }

    /// Appends an audit entry with parameters given as a map (holds: id, reason, selector).
    fn record_params(
        &self,
        caller: &Caller,
        action: &str,
        params: std::collections::BTreeMap<String, String>,
        count: u64,
        tiers: Vec<String>,
        took: Duration,
    ) -> Result<(), ApiError> {
        let entry = Entry {
            at: Timestamp::now(),
            who: caller.name.clone(),
            role: caller.role.as_str().to_owned(),
            action: action.to_owned(),
            params,
            count,
            tiers,
            took_ms: took.as_millis() as u64,
            refused: None,
            namespaces: caller.scope_patterns(),
        };
        // The append waits for an fsync: let the runtime move other tasks off this worker.
        tokio::task::block_in_place(|| self.audit.append(entry))
            .map(|_| ())
            .map_err(|e| {
                ApiError::Internal(format!(
                    "cannot write the audit log, so the call is refused: {e:#}"
                ))
            })
    }
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(SEARCH_PATH, get(search))
        .route(TAIL_PATH, get(tail))
        .route(STATS_PATH, get(stats))
        .route(AUDIT_PATH, get(audit))
        .route(HOLDS_PATH, get(list_holds).post(create_hold))
        .route("/api/v1/holds/{id}", delete(release_hold))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::to_string(&ErrorResponse {
        error: message.into(),
    })
    .expect("serializes");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl ApiState {
    /// A JSON answer of a query, saying which indexer gave it (a root drops its own answer
    /// when its peer list includes itself).
    fn answer(&self, body: String) -> Response {
        let mut response = json(body);
        if let Ok(value) = header::HeaderValue::from_str(&self.cluster.indexer) {
            response.headers_mut().insert(crate::peers::INDEXER_HEADER, value);
        }
        response
    }
}
