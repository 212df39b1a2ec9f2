//! Tails: matching records streamed as they become searchable, bounded in number and in
//! buffered bytes, kept alive while quiet.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::search::{prepare, query_failed};
use super::{ApiError, ApiState, Identity, query_params};
use crate::metrics::Metrics;
use crate::query::{Endpoint, Filters, QueryEngine};

/// Records sent per tail round at most.
pub(super) const TAIL_BATCH: usize = 10_000;
/// A tail with nothing to send writes an empty line this often.
pub const TAIL_KEEPALIVE: Duration = Duration::from_secs(5);

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
pub(super) struct TailPermit {
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Drop for TailPermit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.metrics.tails_open.dec();
    }
}

/// Streams matching records as they become searchable, one JSON envelope per line, and an
/// empty line every [`TAIL_KEEPALIVE`] while there is nothing to send.
pub(super) async fn tail(
    State(state): State<ApiState>,
    identity: Identity,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(
        &state,
        identity,
        &axum::http::HeaderMap::new(),
        query.as_deref(),
        Endpoint::Tail,
    ) {
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
pub(super) const TAIL_CHANNEL: usize = 256;

/// The sending end of one tail: refuses to queue past its byte limit.
pub(super) struct TailSender {
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
pub(super) async fn follow(engine: Arc<QueryEngine>, filters: Filters, mut from: u64, tx: TailSender) {
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
