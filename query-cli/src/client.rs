//! HTTP to one or more indexers, in parallel. An endpoint that fails is reported by name and
//! the others' answers are still used.

use std::time::Duration;

use corral_schema::api::{ErrorResponse, SEARCH_PATH, STATS_PATH, StatsResponse, TAIL_PATH};
use futures_util::future::join_all;
use tokio::sync::mpsc;

use crate::model::{Hit, RawSearch};

/// Query-string parameters of a request.
pub type Params = Vec<(&'static str, String)>;

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
}

/// Talks to a set of indexers.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoints: Vec<String>,
    token: Option<String>,
}

impl Client {
    pub fn new(endpoints: Vec<String>, token: Option<String>) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let endpoints = endpoints
            .into_iter()
            .map(|e| e.trim_end_matches('/').to_owned())
            .collect();
        Ok(Client {
            http,
            endpoints,
            token,
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    fn request(&self, endpoint: &str, path: &str, params: &Params) -> reqwest::RequestBuilder {
        let mut request = self.http.get(format!("{endpoint}{path}")).query(params);
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
        let response = self
            .request(endpoint, path, params)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map_err(|e| fail(describe(&e)))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| fail(describe(&e)))?;
        if !status.is_success() {
            return Err(fail(server_error(status, &body)));
        }
        Ok(body.to_vec())
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

    /// Searches every endpoint.
    pub async fn search(&self, params: &Params) -> FanOut<(Vec<Hit>, bool)> {
        self.fan_out(SEARCH_PATH, params, |body| {
            serde_json::from_slice::<RawSearch>(body)
                .and_then(|search| {
                    let notice = search.notice.clone();
                    Ok((search.into_hits()?, notice))
                })
                .map_err(|e| format!("unexpected search response: {e}"))
        })
        .await
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
        let mut response = self
            .request(endpoint, TAIL_PATH, params)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(server_error(status, &body));
        }
        let mut pending = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
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
