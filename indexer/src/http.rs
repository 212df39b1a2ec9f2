//! The HTTP API (DESIGN §4.3): search, tail and stats over the splits, plus `/metrics`,
//! `/healthz` and `/readyz`.
//!
//! Every `/api/v1/*` handler asks [`Access::authorize`] who is calling (bearer tokens and roles,
//! or an open API without a tokens file), and every call is appended to the [`AuditLog`] before
//! it is answered. A `reader` searches the hot tier only and is told so.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use corral_schema::Timestamp;
use corral_schema::api::{ErrorResponse, SEARCH_PATH, STATS_PATH, StatsResponse, TAIL_PATH};
use tokio::net::TcpListener;

use crate::audit::{AuditLog, Entry};
use crate::auth::{Caller, Role, Tokens};
use crate::holds::{Holds, NewHold};
use crate::metrics::{EndpointLabel, Metrics};
use crate::query::{Endpoint, Filters, QueryEngine};
use crate::store::HOT_TIER;

/// Records sent per tail round at most.
const TAIL_BATCH: usize = 10_000;

/// Path of the audit-log endpoint.
pub const AUDIT_PATH: &str = "/api/v1/audit";
/// Path of the legal-holds endpoint.
pub const HOLDS_PATH: &str = "/api/v1/holds";
/// What a reader's search response says about the tiers it did not search.
pub const READER_NOTICE: &str = "role reader searches the hot tier only: older tiers were not searched";

/// An error answered as `{"error": "..."}` with its status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, self.message)
    }
}

/// Decides who may call the API.
#[derive(Debug, Clone, Default)]
pub enum Access {
    /// No tokens file: every caller is anonymous with every right (loopback only, unless the
    /// operator insisted).
    #[default]
    Open,
    /// Bearer tokens from a tokens file.
    Tokens(Arc<Tokens>),
}

impl Access {
    /// Returns the caller if it may act as `needed`: 401 without a known token, 403 when its
    /// role is below `needed`.
    pub fn authorize(&self, headers: &HeaderMap, needed: Role, what: &str) -> Result<Caller, ApiError> {
        let Access::Tokens(tokens) = self else {
            return Ok(Caller::anonymous());
        };
        let unauthorized = |message: &str| ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.to_owned(),
        };
        let header = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing token: send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("malformed Authorization header: expected Bearer <token>"))?;
        let caller = tokens
            .caller(token)
            .ok_or_else(|| unauthorized("unknown token"))?;
        if caller.role < needed {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "{} (role {}) may not {what}: it needs role {} or above",
                    caller.name,
                    caller.role.as_str(),
                    needed.as_str()
                ),
            });
        }
        Ok(caller.clone())
    }
}

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
}

impl ApiState {
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
        let params = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        self.record_params(caller, action, params, count, tiers, took)
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
        };
        // The append waits for an fsync: let the runtime move other tasks off this worker.
        tokio::task::block_in_place(|| self.audit.append(entry))
            .map(|_| ())
            .map_err(|e| ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("cannot write the audit log, so the call is refused: {e:#}"),
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

fn label(endpoint: Endpoint) -> EndpointLabel {
    EndpointLabel {
        endpoint: match endpoint {
            Endpoint::Search => "search",
            Endpoint::Tail => "tail",
            Endpoint::Stats => "stats",
        },
    }
}

/// Authorizes, parses the filters, counts the call; `Err` is the response to send.
fn prepare(
    state: &ApiState,
    headers: &HeaderMap,
    query: Option<&str>,
    endpoint: Endpoint,
) -> Result<(Caller, Filters), ApiError> {
    state.metrics.queries.get_or_create(&label(endpoint)).inc();
    let caller = state.access.authorize(headers, Role::Reader, "query logs")?;
    let mut filters = Filters::parse(query.unwrap_or(""), endpoint, Timestamp::now()).map_err(|e| {
        state.metrics.query_errors.get_or_create(&label(endpoint)).inc();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: e.0,
        }
    })?;
    if caller.role == Role::Reader {
        filters.tiers = Some(vec![HOT_TIER.to_owned()]);
    }
    Ok((caller, filters))
}

async fn search(State(state): State<ApiState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(&state, &headers, query.as_deref(), Endpoint::Search) {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let engine = Arc::clone(&state.engine);
    let outcome = tokio::task::spawn_blocking(move || engine.search(&filters)).await;
    let took = started.elapsed();
    state
        .metrics
        .query_seconds
        .get_or_create(&label(Endpoint::Search))
        .observe(took.as_secs_f64());
    let outcome = match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => return query_failed(&state, Endpoint::Search, &e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("search failed: {e}")),
    };
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
    // Hits are the stored envelopes, written out verbatim.
    let mut body =
        String::with_capacity(outcome.hits.iter().map(|h| h.source.len() + 1).sum::<usize>() + 128);
    body.push_str("{\"hits\":[");
    for (i, hit) in outcome.hits.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&hit.source);
    }
    let tiers = serde_json::to_string(&outcome.tiers).expect("strings serialize");
    let _ = write!(
        body,
        "],\"count\":{},\"truncated\":{},\"took_ms\":{},\"splits\":{},\"tiers\":{}",
        outcome.hits.len(),
        outcome.truncated,
        took.as_millis(),
        outcome.splits,
        tiers
    );
    let notices: Vec<String> = (caller.role == Role::Reader)
        .then(|| READER_NOTICE.to_owned())
        .into_iter()
        .chain(QueryEngine::unsearched_notice(&outcome.unsearched))
        .collect();
    if !notices.is_empty() {
        let _ = write!(
            body,
            ",\"notice\":{}",
            serde_json::Value::from(notices.join("; "))
        );
    }
    body.push('}');
    json(body)
}

fn query_failed(state: &ApiState, endpoint: Endpoint, e: &anyhow::Error) -> Response {
    state.metrics.query_errors.get_or_create(&label(endpoint)).inc();
    // A query that cannot be built is the caller's mistake; anything else is ours.
    match e.downcast_ref::<crate::query::ParamError>() {
        Some(param) => error(StatusCode::BAD_REQUEST, param.0.clone()),
        None => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn stats(State(state): State<ApiState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(&state, &headers, query.as_deref(), Endpoint::Stats) {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let tiers = filters.tiers.clone().unwrap_or_default();
    let engine = Arc::clone(&state.engine);
    let outcome = tokio::task::spawn_blocking(move || engine.stats(&filters)).await;
    let took = started.elapsed();
    state
        .metrics
        .query_seconds
        .get_or_create(&label(Endpoint::Stats))
        .observe(took.as_secs_f64());
    match outcome {
        Ok(Ok((groups, total, unsearched))) => {
            if let Err(e) = state.record(&caller, "stats", query.as_deref(), total, tiers, took) {
                return e.into_response();
            }
            json(
                serde_json::to_string(&StatsResponse {
                    groups,
                    total,
                    took_ms: took.as_millis() as u64,
                    notice: QueryEngine::unsearched_notice(&unsearched),
                })
                .expect("serializes"),
            )
        }
        Ok(Err(e)) => query_failed(&state, Endpoint::Stats, &e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("stats failed: {e}")),
    }
}

/// Streams matching records as they become searchable, one JSON envelope per line.
async fn tail(State(state): State<ApiState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(&state, &headers, query.as_deref(), Endpoint::Tail) {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let tiers = filters.tiers.clone().unwrap_or_default();
    // Check the query once up front so a bad `q` is a 400, not a silent empty stream.
    let engine = Arc::clone(&state.engine);
    let committed = engine.catalog().committed_seq();
    let check = {
        let engine = Arc::clone(&engine);
        let filters = filters.clone();
        tokio::task::spawn_blocking(move || engine.tail_batch(&filters, committed, committed + 1, 1)).await
    };
    match check {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return query_failed(&state, Endpoint::Tail, &e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("tail failed: {e}")),
    }
    // A tail is recorded when it starts; what it streams is not known yet.
    if let Err(e) = state.record(&caller, "tail", query.as_deref(), 0, tiers, started.elapsed()) {
        return e.into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(follow(engine, filters, committed, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, std::io::Error>(bytes), rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// Sends every record committed from sequence number `from` on that matches, until the client
/// goes away.
async fn follow(
    engine: Arc<QueryEngine>,
    filters: Filters,
    mut from: u64,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let mut commits = engine.catalog().subscribe();
    let filters = Arc::new(filters);
    loop {
        let to = *commits.borrow_and_update();
        if to > from {
            let batch = {
                let engine = Arc::clone(&engine);
                let filters = Arc::clone(&filters);
                tokio::task::spawn_blocking(move || engine.tail_batch(&filters, from, to, TAIL_BATCH)).await
            };
            let Ok(Ok(batch)) = batch else {
                return;
            };
            // A full batch may have more behind it: continue from the last one sent.
            let complete = batch.len() < TAIL_BATCH;
            let mut lines = String::new();
            let mut last = from;
            for (seq, hit) in batch {
                lines.push_str(&hit.source);
                lines.push('\n');
                last = seq;
            }
            if !lines.is_empty() && tx.send(Bytes::from(lines)).await.is_err() {
                return;
            }
            from = if complete { to } else { last + 1 };
            if !complete {
                continue;
            }
        }
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// The audit log between `since` and `until`, of `who`, for auditors.
async fn audit(State(state): State<ApiState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let caller = match state
        .access
        .authorize(&headers, Role::Auditor, "read the audit log")
    {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let now = Timestamp::now();
    let (mut since, mut until, mut who, mut limit) = (None, None, None, 10_000);
    for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        let bad = |message: String| error(StatusCode::BAD_REQUEST, message);
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

/// Places a legal hold (admin).
async fn create_hold(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let caller = match state.access.authorize(&headers, Role::Admin, "place legal holds") {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let new = match NewHold::parse(&body) {
        Ok(new) => new,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if let Some(q) = &new.selector.q
        && let Err(e) = state.engine.check_query(q)
    {
        return error(StatusCode::BAD_REQUEST, format!("invalid hold: selector {}", e.0));
    }
    // The entry is written under the holds' lock before the hold exists: a hold the audit log
    // does not show placed never takes effect.
    let created = tokio::task::block_in_place(|| {
        state.holds.create_audited(new, &caller.name, |hold| {
            let mut params = std::collections::BTreeMap::from([
                ("id".to_owned(), hold.id.clone()),
                ("reason".to_owned(), hold.reason.clone()),
            ]);
            params.insert(
                "selector".to_owned(),
                serde_json::to_string(&hold.selector).expect("serializes"),
            );
            state
                .audit
                .append(hold_entry(&caller, "hold.create", params, started))
                .map(|_| ())
        })
    });
    match created {
        Ok(hold) => (
            StatusCode::CREATED,
            json(serde_json::json!({"id": hold.id}).to_string()),
        )
            .into_response(),
        Err(e) => hold_change_failed(&state, &caller, "hold.create", &e),
    }
}

/// The audit entry of a hold change.
fn hold_entry(
    caller: &Caller,
    action: &str,
    params: std::collections::BTreeMap<String, String>,
    started: Instant,
) -> Entry {
    Entry {
        at: Timestamp::now(),
        who: caller.name.clone(),
        role: caller.role.as_str().to_owned(),
        action: action.to_owned(),
        params,
        count: 1,
        tiers: Vec::new(),
        took_ms: started.elapsed().as_millis() as u64,
    }
}

/// The 500 of a hold change that was not made. When its entry was written but the holds could
/// not be saved, a second entry says the change did not happen.
fn hold_change_failed(
    state: &ApiState,
    caller: &Caller,
    action: &str,
    e: &crate::holds::ChangeError<anyhow::Error>,
) -> Response {
    if let crate::holds::ChangeError::Save(save) = e {
        let params = std::collections::BTreeMap::from([("error".to_owned(), format!("{save:#}"))]);
        let failed = hold_entry(caller, &format!("{action}.failed"), params, Instant::now());
        if let Err(audit) = tokio::task::block_in_place(|| state.audit.append(failed)) {
            tracing::error!(error = %format!("{audit:#}"), "cannot record that a hold change failed");
        }
    }
    error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

/// Lists the legal holds (auditor and admin).
async fn list_holds(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let caller = match state
        .access
        .authorize(&headers, Role::Auditor, "list legal holds")
    {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let holds = state.holds.list();
    if let Err(e) = state.record(
        &caller,
        "hold.list",
        None,
        holds.len() as u64,
        Vec::new(),
        started.elapsed(),
    ) {
        return e.into_response();
    }
    json(serde_json::json!({"holds": holds}).to_string())
}

/// Releases a legal hold (admin).
async fn release_hold(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let started = Instant::now();
    let caller = match state
        .access
        .authorize(&headers, Role::Admin, "release legal holds")
    {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    // Audited under the holds' lock before the release takes effect: a hold the audit log does
    // not show released stays in force.
    let released = tokio::task::block_in_place(|| {
        state.holds.release_audited(&id, |hold| {
            let params = std::collections::BTreeMap::from([
                ("id".to_owned(), hold.id.clone()),
                ("reason".to_owned(), hold.reason.clone()),
            ]);
            state
                .audit
                .append(hold_entry(&caller, "hold.release", params, started))
                .map(|_| ())
        })
    });
    match released {
        Ok(Some(hold)) => json(serde_json::json!({"released": hold.id}).to_string()),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no hold {id:?}")),
        Err(e) => hold_change_failed(&state, &caller, "hold.release", &e),
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(state): State<ApiState>) -> Response {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    // Ready means "can answer queries": an ingest problem (Kafka unreachable) must not take
    // what is already indexed out of the Services. It is reported here and in the metrics.
    match state.metrics.problem() {
        Some(problem) => format!("ready; ingest problem: {problem}\n").into_response(),
        None => "ready\n".into_response(),
    }
}
