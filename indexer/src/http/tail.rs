//! Tails: matching records streamed as they become searchable, bounded in number and in
//! buffered bytes, kept alive while quiet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use corral_schema::api::{Missing, TAIL_MISSING_HEADER, TAIL_PATH};

use super::search::{prepare, query_failed};
use super::{ApiError, ApiState, Identity, query_params};
use crate::metrics::Metrics;
use crate::peers::{PEER_HEADER, Peers};
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
/// empty line every [`TAIL_KEEPALIVE`] while there is nothing to send. With peers, a tail that
/// is not itself a peer's relays every peer's tail too (records reach each indexer's active
/// split only); the peers it cannot reach when it starts are named in [`TAIL_MISSING_HEADER`],
/// and it keeps trying them.
pub(super) async fn tail(
    State(state): State<ApiState>,
    identity: Identity,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let (caller, filters) = match prepare(
        &state,
        identity,
        (&headers, &[]),
        query.as_deref(),
        Endpoint::Tail,
    ) {
        Ok(prepared) => (prepared.caller, prepared.filters),
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
    let sender = TailSender {
        tx,
        queued: Arc::clone(&queued),
        limit: state.tails.buffer_bytes,
        overflowed: Arc::new(AtomicBool::new(false)),
        metrics: Arc::clone(&state.metrics),
        _permit: Arc::new(permit),
    };
    let missing = match state.cluster.peers.as_ref() {
        Some(peers) if !headers.contains_key(PEER_HEADER) && !peers.is_empty() => {
            relay_peers(
                Arc::clone(peers),
                query.clone().unwrap_or_default(),
                headers.get(header::AUTHORIZATION).cloned(),
                &sender,
            )
            .await
        }
        _ => Vec::new(),
    };
    tokio::spawn(follow(engine, filters, committed, sender));
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
    if !missing.is_empty() {
        // A header is ASCII: other characters of a reason are escaped as JSON allows.
        let json = serde_json::to_string(&missing).expect("serializes");
        let ascii: String = json
            .chars()
            .flat_map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    vec![c]
                } else {
                    let mut units = [0u16; 2];
                    c.encode_utf16(&mut units)
                        .iter()
                        .flat_map(|u| format!("\\u{u:04x}").chars().collect::<Vec<_>>())
                        .collect()
                }
            })
            .collect();
        if let Ok(value) = HeaderValue::from_str(&ascii) {
            response.headers_mut().insert(TAIL_MISSING_HEADER, value);
        }
    }
    response
}

/// Starts relaying every peer's tail of `query` into `sender`; returns the peers that could not
/// be reached now (each is tried again while the tail lasts).
async fn relay_peers(
    peers: Arc<Peers>,
    query: String,
    authorization: Option<HeaderValue>,
    sender: &TailSender,
) -> Vec<Missing> {
    let (members, mut missing) = peers.members().await;
    let opened = futures_util::future::join_all(
        members
            .iter()
            .map(|member| peers.open_stream(&member.url, TAIL_PATH, &query, authorization.as_ref())),
    )
    .await;
    for (member, first) in members.into_iter().zip(opened) {
        if let Err(reason) = &first {
            missing.push(Missing::peer(member.url.clone(), reason.clone()));
        }
        let relay = Relay {
            peers: Arc::clone(&peers),
            url: member.url,
            query: query.clone(),
            authorization: authorization.clone(),
            sender: sender.clone(),
        };
        tokio::spawn(relay.run(first));
    }
    missing
}

/// One peer's tail, relayed into a root's.
struct Relay {
    peers: Arc<Peers>,
    url: String,
    query: String,
    authorization: Option<HeaderValue>,
    sender: TailSender,
}

impl Relay {
    /// Forwards the peer's records until the root's client goes away; a stream that fails or
    /// ends is opened again after a growing pause (what the peer committed meanwhile is not
    /// relayed: a tail shows records as they arrive).
    async fn run(self, first: Result<Option<reqwest::Response>, String>) {
        let mut opened = first;
        let mut pause = Duration::from_secs(1);
        loop {
            match opened {
                Ok(None) => return, // this indexer's own address
                Ok(Some(response)) => {
                    pause = Duration::from_secs(1);
                    if !self.forward(response).await {
                        return;
                    }
                }
                Err(reason) => {
                    tracing::debug!(peer = %self.url, "cannot follow the peer's tail: {reason}");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.sender.tx.closed() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(10));
            opened = self
                .peers
                .open_stream(&self.url, TAIL_PATH, &self.query, self.authorization.as_ref())
                .await;
        }
    }

    /// Sends the stream's records (its keep-alives dropped) on; false when the client went away.
    async fn forward(&self, mut response: reqwest::Response) -> bool {
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::select! {
                chunk = response.chunk() => chunk,
                () = self.sender.tx.closed() => return false,
            };
            let Ok(Some(chunk)) = chunk else {
                return true;
            };
            // A tail closed for a slow client ends its relays even while they only get
            // keep-alives.
            if self.sender.overflowed.load(Ordering::Acquire) {
                return false;
            }
            pending.extend_from_slice(&chunk);
            let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let complete: Vec<u8> = pending.drain(..=end).collect();
            let mut lines = Vec::with_capacity(complete.len());
            for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines.extend_from_slice(line);
                lines.push(b'\n');
            }
            if !lines.is_empty() && !self.sender.send(Bytes::from(lines)) {
                return false;
            }
        }
    }
}

/// Chunks a tail may have in its channel; their bytes are bounded by `tail_buffer_bytes`.
pub(super) const TAIL_CHANNEL: usize = 256;

/// The sending end of one tail (its own records' and its peers' relays): refuses to queue past
/// its byte limit.
#[derive(Clone)]
pub(super) struct TailSender {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    /// Set when the client stopped reading and the buffer filled: the tail ends.
    overflowed: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    _permit: Arc<TailPermit>,
}

impl TailSender {
    /// Queues `bytes` for the client; false when the tail must end: the client went away, or
    /// stopped reading and the buffer is full (then the tail is closed and counted).
    fn send(&self, bytes: Bytes) -> bool {
        if self.overflowed.load(Ordering::Acquire) {
            return false;
        }
        let len = bytes.len();
        let fits = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued + len <= self.limit).then_some(queued + len)
            })
            .is_ok();
        let sent = fits && self.tx.try_send(bytes).is_ok();
        // Once, for every sender of the tail: its relays stop with it.
        if !sent && !self.tx.is_closed() && !self.overflowed.swap(true, Ordering::AcqRel) {
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
