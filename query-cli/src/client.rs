//! HTTP to one or more indexers, in parallel. An endpoint that fails is reported by name and
//! the others' answers are still used.
//!
//! Every request is bounded in time ([`Timeouts`]): an endpoint that accepts the connection and
//! never answers is named and given up on, instead of holding logq forever; a tail stream that
//! sends nothing (not even the indexer's keep-alive line) for the response timeout is ended
//! the same way. Searches larger than one page are paged with the indexer's `after` cursor.

use std::collections::VecDeque;
use std::time::Duration;

use corral_schema::api::{
    ApiQuery, DEFAULT_MAX_LIMIT, ErrorResponse, Missing, SEARCH_PATH, STATS_PATH, StatsResponse,
    TAIL_MISSING_HEADER, TAIL_PATH,
};
use futures_util::future::join_all;
use tokio::sync::mpsc;

use crate::model::{Hit, RawSearch, parse_hits};

/// Default of `--connect-timeout` / `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default of `--timeout` / `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long logq waits for an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To establish a connection.
    pub connect: Duration,
    /// For a whole response; for a tail, the longest silence between two chunks.
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            response: DEFAULT_TIMEOUT,
        }
    }
}

/// Query-string parameters of a request.
/// What `logq` asks an indexer: the request's parameters, written as its query string.
pub type Params = ApiQuery;

/// What went wrong with one endpoint, as a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    pub endpoint: String,
    pub message: String,
}

impl std::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.endpoint, self.message)
    }
}

/// Answers of every endpoint that answered, and the errors of the others.
#[derive(Debug)]
pub struct FanOut<T> {
    pub answers: Vec<T>,
    pub errors: Vec<EndpointError>,
    /// What endpoints said was not searched (a reader's tier limit, archive splits that cannot
    /// answer a phrase): worth showing, not a failure.
    pub notices: Vec<EndpointError>,
}

/// What a tail stream delivers.
#[derive(Debug)]
pub enum TailEvent {
    Hit(Box<Hit>),
    /// The endpoint failed or its stream ended with an error.
    Error(EndpointError),
    /// The endpoint's stream ended.
    Ended(String),
    /// What the endpoint's tail does not follow (peers it could not reach when it started).
    Missing(Vec<Missing>),
}

/// Talks to a set of indexers.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoints: Vec<String>,
    token: Option<String>,
    timeouts: Timeouts,
}

impl Client {
    pub fn new(endpoints: Vec<String>, token: Option<String>, timeouts: Timeouts) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .build()?;
        let endpoints = endpoints
            .into_iter()
            .map(|e| e.trim_end_matches('/').to_owned())
            .collect();
        Ok(Client {
            http,
            endpoints,
            token,
            timeouts,
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The same client for one of its endpoints.
    pub fn only(mut self, endpoint: &str) -> Client {
        self.endpoints = vec![endpoint.to_owned()];
        self
    }

    fn request(&self, endpoint: &str, path: &str, params: &Params) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .get(format!("{endpoint}{path}"))
            .query(&params.to_pairs());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// GETs `path` from one endpoint; the body on 2xx, else the server's error text.
    async fn get(&self, endpoint: &str, path: &str, params: &Params) -> Result<Vec<u8>, EndpointError> {
        let fail = |message: String| EndpointError {
            endpoint: endpoint.to_owned(),
            message,
        };
        let timeout = self.timeouts.response;
        let response = self
            .request(endpoint, path, params)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| fail(describe_after(&e, timeout)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(describe_after(&e, timeout)))?;
        if !status.is_success() {
            return Err(fail(server_error(status, &body)));
        }
        Ok(body.to_vec())
    }

    /// Sends `method path?query` with a JSON `body` to the endpoints in turn until one
    /// answers (cluster state such as holds needs one indexer, not all); the body on 2xx.
    /// Transport failures move on to the next endpoint; an HTTP error answer is final.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<String>,
    ) -> Result<Vec<u8>, EndpointError> {
        let timeout = self.timeouts.response;
        let mut last = None;
        for endpoint in &self.endpoints {
            let fail = |message: String| EndpointError {
                endpoint: endpoint.clone(),
                message,
            };
            let mut request = self
                .http
                .request(method.clone(), format!("{endpoint}{path}"))
                .query(query)
                .timeout(timeout);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    last = Some(fail(describe_after(&e, timeout)));
                    continue;
                }
            };
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| fail(describe_after(&e, timeout)))?;
            if !status.is_success() {
                return Err(fail(server_error(status, &bytes)));
            }
            return Ok(bytes.to_vec());
        }
        Err(last.unwrap_or_else(|| EndpointError {
            endpoint: "logq".into(),
            message: "no endpoint configured".into(),
        }))
    }

    async fn fan_out<T>(
        &self,
        path: &str,
        params: &Params,
        parse: impl Fn(&[u8]) -> Result<(T, Option<String>), String>,
    ) -> FanOut<T> {
        let answers = join_all(self.endpoints.iter().map(|e| self.get(e, path, params))).await;
        let mut out = FanOut {
            answers: Vec::new(),
            errors: Vec::new(),
            notices: Vec::new(),
        };
        for (endpoint, answer) in self.endpoints.iter().zip(answers) {
            match answer.and_then(|body| {
                parse(&body).map_err(|message| EndpointError {
                    endpoint: endpoint.clone(),
                    message,
                })
            }) {
                Ok((value, notice)) => {
                    out.answers.push(value);
                    out.notices.extend(notice.map(|message| EndpointError {
                        endpoint: endpoint.clone(),
                        message,
                    }));
                }
                Err(error) => out.errors.push(error),
            }
        }
        out
    }

    /// Searches every endpoint for up to `limit` hits each, following `after` past one page.
    pub async fn search(&self, params: &Params, limit: usize) -> FanOut<(Vec<Hit>, bool)> {
        let mut pages = self.search_pages(params, limit).await;
        let mut out = FanOut {
            answers: Vec::new(),
            errors: std::mem::take(&mut pages.errors),
            notices: std::mem::take(&mut pages.notices),
        };
        for mut endpoint in pages.answers {
            let mut hits: Vec<Hit> = endpoint.buffer.drain(..).collect();
            while endpoint.more() {
                match endpoint.next_page(self).await {
                    Ok(()) => hits.extend(endpoint.buffer.drain(..)),
                    Err(error) => {
                        out.errors.push(error);
                        break;
                    }
                }
            }
            // What an endpoint could not search is said beside the results (the TUI's status).
            out.notices
                .extend(endpoint.missing.iter().map(|missing| EndpointError {
                    endpoint: endpoint.endpoint.clone(),
                    message: format!("incomplete: {missing}"),
                }));
            out.answers.push((hits, endpoint.truncated));
        }
        out
    }

    /// The first page of a search from every endpoint, each as a [`SearchPages`] that fetches
    /// the rest as it is read.
    pub async fn search_pages(&self, params: &Params, limit: usize) -> FanOut<SearchPages> {
        let mut starts: Vec<SearchPages> = self
            .endpoints
            .iter()
            .map(|endpoint| SearchPages {
                endpoint: endpoint.clone(),
                params: ApiQuery {
                    selector: params.selector.clone(),
                    ..ApiQuery::default()
                },
                page: DEFAULT_MAX_LIMIT,
                remaining: limit,
                after: None,
                buffer: VecDeque::new(),
                started: false,
                truncated: false,
                notice: None,
                missing: Vec::new(),
            })
            .collect();
        let results = join_all(starts.iter_mut().map(|pages| pages.next_page(self))).await;
        let mut out = FanOut {
            answers: Vec::new(),
            errors: Vec::new(),
            notices: Vec::new(),
        };
        for (pages, result) in starts.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    out.notices
                        .extend(pages.notice.clone().map(|message| EndpointError {
                            endpoint: pages.endpoint.clone(),
                            message,
                        }));
                    out.answers.push(pages);
                }
                Err(error) => out.errors.push(error),
            }
        }
        out
    }

    /// Stats from every endpoint.
    pub async fn stats(&self, params: &Params) -> FanOut<StatsResponse> {
        self.fan_out(STATS_PATH, params, |body| {
            // The notice stays in the response: `sum_stats` combines them.
            serde_json::from_slice::<StatsResponse>(body)
                .map(|stats| (stats, None))
                .map_err(|e| format!("unexpected stats response: {e}"))
        })
        .await
    }

    /// Follows `/api/v1/tail` on every endpoint, sending what arrives to `events` until the
    /// receiver is dropped. Returns at once; one task per endpoint.
    pub fn tail(&self, params: &Params, events: &mpsc::Sender<TailEvent>) {
        for endpoint in &self.endpoints {
            let client = self.clone();
            let endpoint = endpoint.clone();
            let params = params.clone();
            let events = events.clone();
            tokio::spawn(async move {
                let result = client.follow(&endpoint, &params, &events).await;
                let last = match result {
                    Ok(()) => TailEvent::Ended(endpoint),
                    Err(message) => TailEvent::Error(EndpointError { endpoint, message }),
                };
                let _ = events.send(last).await;
            });
        }
    }

    async fn follow(
        &self,
        endpoint: &str,
        params: &Params,
        events: &mpsc::Sender<TailEvent>,
    ) -> Result<(), String> {
        let idle = self.timeouts.response;
        let silent = || {
            format!(
                "the tail sent nothing for {} (not even a keep-alive): giving up on it",
                humanize(idle)
            )
        };
        let mut response = tokio::time::timeout(idle, self.request(endpoint, TAIL_PATH, params).send())
            .await
            .map_err(|_| silent())?
            .map_err(|e| describe(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = tokio::time::timeout(idle, response.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(server_error(status, &body));
        }
        let missing: Vec<Missing> = response
            .headers()
            .get(TAIL_MISSING_HEADER)
            .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
            .unwrap_or_default();
        if !missing.is_empty() && events.send(TailEvent::Missing(missing)).await.is_err() {
            return Ok(());
        }
        let mut pending = Vec::new();
        loop {
            let chunk = tokio::time::timeout(idle, response.chunk())
                .await
                .map_err(|_| silent())?
                .map_err(|e| describe(&e))?;
            let Some(chunk) = chunk else { break };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                if text.trim().is_empty() {
                    continue;
                }
                let hit = Hit::parse(&text).map_err(|e| format!("unexpected tail record: {e}"))?;
                if events.send(TailEvent::Hit(Box::new(hit))).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// One endpoint's search, page by page: the hits fetched and not yet taken, and where the next
/// page starts.
#[derive(Debug)]
pub struct SearchPages {
    pub endpoint: String,
    params: Params,
    /// Hits asked for per page: at most the indexer's `max_limit`.
    page: usize,
    /// Hits still wanted from this endpoint.
    remaining: usize,
    after: Option<String>,
    /// Fetched hits in (`ts`, `id`) order, not yet taken.
    pub buffer: VecDeque<Hit>,
    started: bool,
    /// More matched than `limit` (or the endpoint said so).
    pub truncated: bool,
    notice: Option<String>,
    /// What the endpoint said it could not search (peers, splits), over every page.
    pub missing: Vec<corral_schema::api::Missing>,
}

impl SearchPages {
    /// True when another page is to be fetched once the buffer is empty.
    pub fn more(&self) -> bool {
        !self.started || (self.after.is_some() && self.remaining > 0)
    }

    /// Fetches the next page into the buffer.
    pub async fn next_page(&mut self, client: &Client) -> Result<(), EndpointError> {
        loop {
            let mut params = self.params.clone();
            params.page.limit = Some(self.page.min(self.remaining.max(1)));
            params.page.after = match &self.after {
                Some(after) => Some(after.parse().map_err(|e| EndpointError {
                    endpoint: self.endpoint.clone(),
                    message: format!("unexpected search response: after: {e}"),
                })?),
                None => None,
            };
            let body = match client.get(&self.endpoint, SEARCH_PATH, &params).await {
                Ok(body) => body,
                // An indexer configured with a smaller page says so: use its page size.
                Err(error) if !self.started => match smaller_page(&error.message, self.page) {
                    Some(page) => {
                        self.page = page;
                        continue;
                    }
                    None => return Err(error),
                },
                Err(error) => return Err(error),
            };
            let search = serde_json::from_slice::<RawSearch>(&body).map_err(|e| EndpointError {
                endpoint: self.endpoint.clone(),
                message: format!("unexpected search response: {e}"),
            })?;
            let after = search.after.clone();
            if !self.started {
                self.notice = search.notice.clone();
            }
            let truncated = search.truncated;
            for missing in &search.missing {
                if !self.missing.contains(missing) {
                    self.missing.push(missing.clone());
                }
            }
            let hits = parse_hits(&search).map_err(|e| EndpointError {
                endpoint: self.endpoint.clone(),
                message: format!("unexpected search response: {e}"),
            })?;
            self.started = true;
            self.remaining = self.remaining.saturating_sub(hits.len());
            self.after = if truncated { after } else { None };
            // Pages end where the indexer's did; past `limit` the answer is cut here.
            self.truncated = truncated && (self.remaining == 0 || self.after.is_none());
            self.buffer.extend(hits);
            return Ok(());
        }
    }
}

/// The page size an indexer's refusal of `limit` names (`indexer.max_limit = N`), when smaller.
fn smaller_page(message: &str, page: usize) -> Option<usize> {
    let (_, rest) = message.split_once("indexer.max_limit = ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<usize>().ok().filter(|n| *n >= 1 && *n < page)
}

/// A duration as people write it (`30s`, `1500ms`).
fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// As [`describe`], saying how long was waited when it timed out.
fn describe_after(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        format!(
            "no answer within {} (--timeout): giving up on this endpoint",
            humanize(timeout)
        )
    } else {
        describe(error)
    }
}

/// The server's `{"error": …}` text, or the status and body when it is not one.
fn server_error(status: reqwest::StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(error) => format!("HTTP {}: {}", status.as_u16(), error.error),
        Err(_) => format!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(200)
                .collect::<String>()
        ),
    }
}

/// A transport error as one line, with its cause (reqwest's own message is terse).
fn describe(error: &reqwest::Error) -> String {
    let mut message = if error.is_connect() {
        "cannot connect".to_owned()
    } else if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    let mut last = String::new();
    while let Some(cause) = source {
        last = cause.to_string();
        source = cause.source();
    }
    if !last.is_empty() && !message.contains(&last) {
        message = format!("{message}: {last}");
    }
    message
}
