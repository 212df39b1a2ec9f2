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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use corral_schema::Timestamp;
use corral_schema::api::{
    ApiQuery, ErrorResponse, SEARCH_PATH, STATS_PATH, SearchResponse, StatsResponse, TAIL_PATH,
};
use tokio::net::TcpListener;

use crate::audit::{AuditLog, Entry, Refusal};
use crate::auth::{Caller, Role, Tokens};
use crate::holds::{Holds, NewHold};
use crate::metrics::{EndpointLabel, Metrics, RefusedLabel};
use crate::query::{Endpoint, Filters, ParamError, QueryEngine, QueryError};
use crate::store::HOT_TIER;

/// Records sent per tail round at most.
const TAIL_BATCH: usize = 10_000;
/// A tail with nothing to send writes an empty line this often.
pub const TAIL_KEEPALIVE: Duration = Duration::from_secs(5);

/// Path of the audit-log endpoint.
pub const AUDIT_PATH: &str = "/api/v1/audit";
/// Path of the legal-holds endpoint.
pub const HOLDS_PATH: &str = "/api/v1/holds";
/// What a reader's search response says about the tiers it did not search.
pub const READER_NOTICE: &str = "role reader searches the hot tier only: older tiers were not searched";

/// Why a call is answered with an error, as `{"error": "..."}`. [`ApiError::status`] is the one
/// place a kind of error gets its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A parameter or body the caller got wrong, or a query the engine refuses to run.
    #[error("{0}")]
    BadRequest(String),
    /// No token, or one nobody was given.
    #[error("{0}")]
    Unauthorized(String),
    /// A known caller whose role is too low.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing by that name.
    #[error("{0}")]
    NotFound(String),
    /// Over a limit on concurrent work (tails).
    #[error("{0}")]
    TooManyRequests(String),
    /// A fault of the server itself.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text of the `error` field.
    pub fn message(&self) -> &str {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::TooManyRequests(m)
            | ApiError::Internal(m) => m,
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(error: ParamError) -> ApiError {
        ApiError::BadRequest(error.0)
    }
}

impl From<QueryError> for ApiError {
    /// A query refused is the caller's mistake; any other failure is ours.
    fn from(error: QueryError) -> ApiError {
        match error {
            QueryError::Refused(param) => param.into(),
            QueryError::Failed(error) => ApiError::Internal(format!("{error:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        error(status, self.message())
    }
}

/// Why a caller was refused ([`Access::identify`], [`Identity::may`]): the answer, and who it
/// was when the token was known.
#[derive(Debug, Clone)]
pub struct Denied {
    pub error: ApiError,
    pub caller: Option<Caller>,
}

/// Bounds on tail streams (`[indexer] max_tails`, `tail_buffer_bytes`), and the count of open ones.
#[derive(Debug, Clone)]
pub struct TailPolicy {
    pub max_tails: usize,
    pub buffer_bytes: usize,
    open: Arc<AtomicUsize>,
}

impl TailPolicy {
    pub fn new(max_tails: usize, buffer_bytes: usize) -> TailPolicy {
        TailPolicy {
            max_tails,
            buffer_bytes,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A place for one more tail, or `None` when `max_tails` are open.
    fn try_open(&self, metrics: &Arc<Metrics>) -> Option<TailPermit> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_tails).then_some(n + 1)
            })
            .ok()?;
        metrics.tails_open.inc();
        Some(TailPermit {
            open: Arc::clone(&self.open),
            metrics: Arc::clone(metrics),
        })
    }
}

impl Default for TailPolicy {
    fn default() -> Self {
        TailPolicy::new(
            crate::config::DEFAULT_MAX_TAILS,
            crate::config::DEFAULT_TAIL_BUFFER_BYTES,
        )
    }
}

/// Held by a tail while it is served; frees its place when dropped.
#[derive(Debug)]
struct TailPermit {
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Drop for TailPermit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.metrics.tails_open.dec();
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
    /// Who presents these headers: the caller of a known bearer token (anyone, as
    /// `anonymous`, on an open API), or why not (401).
    pub fn identify(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        let Access::Tokens(tokens) = self else {
            return Ok(Caller::anonymous());
        };
        let unauthorized = |message: &str| Denied {
            error: ApiError::Unauthorized(message.to_owned()),
            caller: None,
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
        tokens
            .caller(token)
            .cloned()
            .ok_or_else(|| unauthorized("unknown token"))
    }
}

/// Who is calling: an axum extractor over the `Authorization` header. It never rejects a
/// request itself; the handler decides what the caller may do ([`Identity::may`]), so a refusal
/// is audited with the call's own action and parameters.
#[derive(Debug, Clone)]
pub struct Identity(Result<Caller, Denied>);

impl FromRequestParts<ApiState> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Identity, Self::Rejection> {
        Ok(Identity(state.access.identify(&parts.headers)))
    }
}

impl Identity {
    /// The caller if it may act as `needed` to `what`: 401 without a known token, 403 when its
    /// role is below `needed`.
    pub fn may(self, needed: Role, what: &str) -> Result<Caller, Denied> {
        let caller = self.0?;
        if caller.role < needed {
            return Err(Denied {
                error: ApiError::Forbidden(format!(
                    "{} (role {}) may not {what}: it needs role {} or above",
                    caller.name,
                    caller.role.as_str(),
                    needed.as_str()
                )),
                caller: Some(caller),
            });
        }
        Ok(caller)
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
    pub tails: TailPolicy,
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

fn label(endpoint: Endpoint) -> EndpointLabel {
    EndpointLabel {
        endpoint: action(endpoint),
    }
}

/// The audit action (and metric label) of an endpoint.
fn action(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Search => "search",
        Endpoint::Tail => "tail",
        Endpoint::Stats => "stats",
    }
}

/// Authorizes, parses and bounds the filters, counts the call; `Err` is the response to send.
fn prepare(
    state: &ApiState,
    identity: Identity,
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
    Ok((caller, filters))
}

async fn search(State(state): State<ApiState>, identity: Identity, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(&state, identity, query.as_deref(), Endpoint::Search) {
        Ok(prepared) => prepared,
        Err(response) => return *response,
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
        Ok(Err(e)) => return query_failed(&state, Endpoint::Search, &caller, query.as_deref(), e),
        Err(e) => return ApiError::Internal(format!("search failed: {e}")).into_response(),
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
    let notices: Vec<String> = (caller.role == Role::Reader)
        .then(|| READER_NOTICE.to_owned())
        .into_iter()
        .chain(QueryEngine::unsearched_notice(&outcome.unsearched))
        .collect();
    let response = SearchResponse::<()> {
        hits: Vec::new(),
        count: outcome.hits.len(),
        truncated: outcome.truncated,
        took_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        splits: outcome.splits,
        tiers: outcome.tiers,
        notice: (!notices.is_empty()).then(|| notices.join("; ")),
        after: outcome.after.map(|after| after.to_string()),
    };
    // Hits are the stored envelopes, written out verbatim.
    let body = response.write_with_hits(outcome.hits.iter().map(|hit| hit.source.as_str()));
    json(body)
}

fn query_failed(
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

async fn stats(State(state): State<ApiState>, identity: Identity, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(&state, identity, query.as_deref(), Endpoint::Stats) {
        Ok(prepared) => prepared,
        Err(response) => return *response,
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
        Ok(Err(e)) => query_failed(&state, Endpoint::Stats, &caller, query.as_deref(), e),
        Err(e) => ApiError::Internal(format!("stats failed: {e}")).into_response(),
    }
}

/// Streams matching records as they become searchable, one JSON envelope per line, and an
/// empty line every [`TAIL_KEEPALIVE`] while there is nothing to send.
async fn tail(State(state): State<ApiState>, identity: Identity, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(&state, identity, query.as_deref(), Endpoint::Tail) {
        Ok(prepared) => prepared,
        Err(response) => return *response,
    };
    let Some(permit) = state.tails.try_open(&state.metrics) else {
        return state.refuse(
            Some(&caller),
            "tail",
            query_params(query.as_deref()),
            ApiError::TooManyRequests(format!(
                "too many tails: {} are open (indexer.max_tails); close one or try again later",
                state.tails.max_tails
            )),
        );
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
        Ok(Err(e)) => return query_failed(&state, Endpoint::Tail, &caller, query.as_deref(), e),
        Err(e) => return ApiError::Internal(format!("tail failed: {e}")).into_response(),
    }
    // A tail is recorded when it starts; what it streams is not known yet.
    if let Err(e) = state.record(&caller, "tail", query.as_deref(), 0, tiers, started.elapsed()) {
        return e.into_response();
    }
    // Bytes handed to the response body and not yet taken by it: bounded by
    // `tail_buffer_bytes` (the body is polled only as fast as the client reads).
    let queued = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(TAIL_CHANNEL);
    tokio::spawn(follow(
        engine,
        filters,
        committed,
        TailSender {
            tx,
            queued: Arc::clone(&queued),
            limit: state.tails.buffer_bytes,
            metrics: Arc::clone(&state.metrics),
            _permit: permit,
        },
    ));
    let stream = futures_util::stream::unfold((rx, queued), |(mut rx, queued)| async move {
        let bytes = rx.recv().await?;
        queued.fetch_sub(bytes.len(), Ordering::AcqRel);
        Some((Ok::<_, std::io::Error>(bytes), (rx, queued)))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// Chunks a tail may have in its channel; their bytes are bounded by `tail_buffer_bytes`.
const TAIL_CHANNEL: usize = 256;

/// The sending end of one tail: refuses to queue past its byte limit.
struct TailSender {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    metrics: Arc<Metrics>,
    _permit: TailPermit,
}

impl TailSender {
    /// Queues `bytes` for the client; false when the tail must end: the client went away, or
    /// stopped reading and the buffer is full (then the tail is closed and counted).
    fn send(&self, bytes: Bytes) -> bool {
        let len = bytes.len();
        let fits = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued + len <= self.limit).then_some(queued + len)
            })
            .is_ok();
        let sent = fits && self.tx.try_send(bytes).is_ok();
        if !sent && !self.tx.is_closed() {
            self.metrics.tails_closed_slow.inc();
            tracing::warn!(
                buffered = self.queued.load(Ordering::Acquire),
                limit = self.limit,
                "closing a tail whose client stopped reading (indexer.tail_buffer_bytes)"
            );
        }
        sent
    }
}

/// Sends every record committed from sequence number `from` on that matches, until the client
/// goes away or stops reading.
async fn follow(engine: Arc<QueryEngine>, filters: Filters, mut from: u64, tx: TailSender) {
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
            if !lines.is_empty() && !tx.send(Bytes::from(lines)) {
                return;
            }
            from = if complete { to } else { last + 1 };
            if !complete {
                continue;
            }
        }
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return },
            () = tx.tx.closed() => return,
            () = tokio::time::sleep(TAIL_KEEPALIVE) => {
                if !tx.send(Bytes::from_static(b"\n")) {
                    return;
                }
            }
        }
    }
}

/// The audit log between `since` and `until`, of `who`, for auditors.
async fn audit(State(state): State<ApiState>, identity: Identity, RawQuery(query): RawQuery) -> Response {
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

/// Places a legal hold (admin).
async fn create_hold(State(state): State<ApiState>, identity: Identity, body: Bytes) -> Response {
    let started = Instant::now();
    let caller = match state.authorize(identity, Role::Admin, "place legal holds", "hold.create", || {
        BTreeMap::from([(
            "body".to_owned(),
            String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
        )])
    }) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let bad = |message: String| {
        state.refuse(
            Some(&caller),
            "hold.create",
            BTreeMap::from([(
                "body".to_owned(),
                String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
            )]),
            ApiError::BadRequest(message),
        )
    };
    let new = match NewHold::parse(&body) {
        Ok(new) => new,
        Err(message) => return bad(message),
    };
    if let Some(q) = &new.selector.q
        && let Err(e) = state.engine.check_query(q)
    {
        return bad(format!("invalid hold: selector {}", e.0));
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
        refused: None,
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
    ApiError::Internal(format!("{e:#}")).into_response()
}

/// Lists the legal holds (auditor and admin).
async fn list_holds(State(state): State<ApiState>, identity: Identity) -> Response {
    let started = Instant::now();
    let caller = match state.authorize(
        identity,
        Role::Auditor,
        "list legal holds",
        "hold.list",
        BTreeMap::new,
    ) {
        Ok(caller) => caller,
        Err(response) => return *response,
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
async fn release_hold(State(state): State<ApiState>, identity: Identity, Path(id): Path<String>) -> Response {
    let started = Instant::now();
    let caller = match state.authorize(
        identity,
        Role::Admin,
        "release legal holds",
        "hold.release",
        || BTreeMap::from([("id".to_owned(), id.clone())]),
    ) {
        Ok(caller) => caller,
        Err(response) => return *response,
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
        Ok(None) => ApiError::NotFound(format!("no hold {id:?}")).into_response(),
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
