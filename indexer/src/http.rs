//! The HTTP API (DESIGN §4.3): search, tail and stats over the splits, plus `/metrics`,
//! `/healthz` and `/readyz`.
//!
//! Every `/api/v1/*` handler asks [`Access::authorize`] who is calling before it runs; the API is
//! open until tokens and roles land (the retention/audit work), which then only changes
//! [`Access`].

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use corral_schema::Timestamp;
use corral_schema::api::{ErrorResponse, SEARCH_PATH, STATS_PATH, StatsResponse, TAIL_PATH};
use tokio::net::TcpListener;

use crate::metrics::{EndpointLabel, Metrics};
use crate::query::{Endpoint, Filters, QueryEngine};

/// Records sent per tail round at most.
const TAIL_BATCH: usize = 10_000;

/// Who is calling the API. Until tokens land every caller is anonymous with every right.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
}

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

/// Decides who may call the API: the seam where tokens and roles plug in.
#[derive(Debug, Clone, Default)]
pub struct Access;

impl Access {
    /// Returns the caller, or the error response to send.
    pub fn authorize(&self, _headers: &HeaderMap) -> Result<Caller, ApiError> {
        Ok(Caller {
            name: "anonymous".to_owned(),
        })
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub engine: Arc<QueryEngine>,
    pub metrics: Arc<Metrics>,
    pub access: Access,
    /// Set once ingest runs (store opened, source connected).
    pub ready: Arc<AtomicBool>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(SEARCH_PATH, get(search))
        .route(TAIL_PATH, get(tail))
        .route(STATS_PATH, get(stats))
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
    let caller = state.access.authorize(headers)?;
    let filters = Filters::parse(query.unwrap_or(""), endpoint, Timestamp::now()).map_err(|e| {
        state.metrics.query_errors.get_or_create(&label(endpoint)).inc();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: e.0,
        }
    })?;
    Ok((caller, filters))
}

async fn search(State(state): State<ApiState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let (_caller, filters) = match prepare(&state, &headers, query.as_deref(), Endpoint::Search) {
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
        "],\"count\":{},\"truncated\":{},\"took_ms\":{},\"splits\":{},\"tiers\":{}}}",
        outcome.hits.len(),
        outcome.truncated,
        took.as_millis(),
        outcome.splits,
        tiers
    );
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
    let (_caller, filters) = match prepare(&state, &headers, query.as_deref(), Endpoint::Stats) {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let engine = Arc::clone(&state.engine);
    let outcome = tokio::task::spawn_blocking(move || engine.stats(&filters)).await;
    let took = started.elapsed();
    state
        .metrics
        .query_seconds
        .get_or_create(&label(Endpoint::Stats))
        .observe(took.as_secs_f64());
    match outcome {
        Ok(Ok((groups, total))) => json(
            serde_json::to_string(&StatsResponse {
                groups,
                total,
                took_ms: took.as_millis() as u64,
            })
            .expect("serializes"),
        ),
        Ok(Err(e)) => query_failed(&state, Endpoint::Stats, &e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("stats failed: {e}")),
    }
}

/// Streams matching records as they become searchable, one JSON envelope per line.
async fn tail(State(state): State<ApiState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let (_caller, filters) = match prepare(&state, &headers, query.as_deref(), Endpoint::Tail) {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
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
