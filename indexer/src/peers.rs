//! The other indexers of a cluster (DESIGN §7): who they are (`--peers`), and asking each of them
//! for what only it has.
//!
//! The indexer a query reaches is its root. It searches every published split itself (its
//! catalog holds them all, see [`crate::published::refresh_catalog`]) and asks every peer, in
//! parallel and within `peer_timeout`, for the rest: the peer's active split, and the splits the
//! peer sealed since the newest of its splits the root holds (the `x-corral-peer` header says
//! which: `have=<indexer>:<split-id>,…`). A peer answers such a request from those splits only,
//! and never asks further. The caller's `Authorization` goes along, so roles, tier limits and the
//! audit log hold on every peer. A peer that fails or is late is named in the answer's `missing`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::HeaderValue;
use corral_schema::api::Missing;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::PeerLabel;

/// Request header marking a root's request to a peer, with the splits the root holds.
pub const PEER_HEADER: &str = "x-corral-peer";
/// Response header naming the indexer that answered (a root ignores its own answer, which a
/// headless Service's address list includes).
pub const INDEXER_HEADER: &str = "x-corral-indexer";
/// Default of `[indexer] peer_timeout`.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// One `--peers` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    /// `http://host:port`.
    Url(String),
    /// `dns+http://name:port`: every address the name resolves to, each time peers are asked.
    Dns { name: String, port: u16 },
}

/// Parses `--peers`: comma-separated `http://host:port` or `dns+http://name:port`.
pub fn parse_peers(list: &str) -> Result<Vec<PeerAddr>, String> {
    let mut peers = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let expected = "expected http://host:port or dns+http://name:port";
        if let Some(rest) = entry.strip_prefix("dns+http://") {
            let (name, port) = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .ok_or_else(|| format!("--peers {entry:?}: no port ({expected})"))?;
            let port = port
                .parse()
                .map_err(|_| format!("--peers {entry:?}: bad port {port:?} ({expected})"))?;
            if name.is_empty() {
                return Err(format!("--peers {entry:?}: no name ({expected})"));
            }
            peers.push(PeerAddr::Dns {
                name: name.to_owned(),
                port,
            });
        } else if let Some(rest) = entry.strip_prefix("http://") {
            if rest.trim_end_matches('/').is_empty() || rest.contains(['?', '#']) {
                return Err(format!("--peers {entry:?}: no host ({expected})"));
            }
            peers.push(PeerAddr::Url(entry.trim_end_matches('/').to_owned()));
        } else {
            return Err(format!("--peers {entry:?}: {expected}"));
        }
    }
    Ok(peers)
}

/// The splits a root holds: for each other indexer, the newest of its splits in the root's
/// catalog. Sent in [`PEER_HEADER`] as `have=<indexer>:<split-id>,…`.
pub fn have_header(have: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = have
        .iter()
        .map(|(indexer, id)| format!("{indexer}:{id}"))
        .collect();
    format!("have={}", pairs.join(","))
}

/// Reads [`PEER_HEADER`]: the newest split of `me` the root holds (`None`: none of them).
pub fn parse_have(header: &str, me: &str) -> Option<String> {
    let list = header.strip_prefix("have=")?;
    list.split(',')
        .filter_map(|pair| pair.split_once(':'))
        .find(|(indexer, _)| *indexer == me)
        .map(|(_, id)| id.to_owned())
}

/// One peer's answer: its body, or why there is none.
#[derive(Debug)]
pub struct PeerAnswer {
    pub peer: String,
    pub body: Result<Vec<u8>, String>,
}

/// The other indexers and a client to ask them.
#[derive(Debug)]
pub struct Peers {
    addrs: Vec<PeerAddr>,
    client: reqwest::Client,
    timeout: Duration,
    me: String,
    errors: Family<PeerLabel, Counter>,
}

impl Peers {
    /// Peers `addrs` of the indexer `me`, each given `timeout` to answer.
    pub fn new(addrs: Vec<PeerAddr>, me: &str, timeout: Duration) -> anyhow::Result<Peers> {
        crate::storage::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Peers {
            addrs,
            client,
            timeout,
            me: me.to_owned(),
            errors: Family::default(),
        })
    }

    /// Counts failed and late peers in `errors`, by peer.
    pub fn with_errors(mut self, errors: Family<PeerLabel, Counter>) -> Peers {
        self.errors = errors;
        self
    }

    /// The peers' base URLs now (names resolved); a name that does not resolve is missing.
    async fn urls(&self) -> (Vec<String>, Vec<Missing>) {
        let mut urls = Vec::new();
        let mut missing = Vec::new();
        for addr in &self.addrs {
            match addr {
                PeerAddr::Url(url) => urls.push(url.clone()),
                PeerAddr::Dns { name, port } => match tokio::net::lookup_host((name.as_str(), *port)).await {
                    Ok(found) => {
                        let mut found: Vec<_> = found.map(|a| format!("http://{a}")).collect();
                        found.sort();
                        found.dedup();
                        urls.extend(found);
                    }
                    Err(error) => missing.push(Missing::peer(
                        format!("dns+http://{name}:{port}"),
                        format!("the name does not resolve: {error}"),
                    )),
                },
            }
        }
        (urls, missing)
    }

    /// Asks every peer `GET <path>?<query>` as a root, in parallel; answers from this indexer
    /// itself (a name that resolves to every member) are dropped. Failed and late peers come
    /// back as `missing`.
    pub async fn ask(
        &self,
        path: &str,
        query: &str,
        authorization: Option<&HeaderValue>,
        have: &str,
    ) -> (Vec<PeerAnswer>, Vec<Missing>) {
        let (urls, mut missing) = self.urls().await;
        let asks = urls.into_iter().map(|peer| {
            let mut request = self
                .client
                .get(format!("{peer}{path}?{query}"))
                .header(PEER_HEADER, have);
            if let Some(authorization) = authorization {
                request = request.header(reqwest::header::AUTHORIZATION, authorization.as_bytes());
            }
            async move {
                let body = async {
                    let response = request.send().await.map_err(|e| describe(&e, self.timeout))?;
                    let indexer = response
                        .headers()
                        .get(INDEXER_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let status = response.status();
                    let bytes = response.bytes().await.map_err(|e| describe(&e, self.timeout))?;
                    if indexer.as_deref() == Some(self.me.as_str()) {
                        return Ok(None);
                    }
                    if !status.is_success() {
                        let text = String::from_utf8_lossy(&bytes);
                        return Err(format!("HTTP {}: {}", status.as_u16(), text.trim()));
                    }
                    Ok(Some(bytes.to_vec()))
                }
                .await;
                (peer, body)
            }
        });
        let mut answers = Vec::new();
        for (peer, body) in futures_util::future::join_all(asks).await {
            match body {
                Ok(Some(body)) => answers.push(PeerAnswer { peer, body: Ok(body) }),
                Ok(None) => {}
                Err(reason) => {
                    self.errors.get_or_create(&PeerLabel { peer: peer.clone() }).inc();
                    missing.push(Missing::peer(peer, reason));
                }
            }
        }
        (answers, missing)
    }

    /// True when there is no peer to ask.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        format!("no answer within peer_timeout ({timeout:?})")
    } else if error.is_connect() {
        format!("cannot connect: {error}")
    } else {
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_entries_are_named() {
        assert_eq!(
            parse_peers("http://10.0.0.2:7280, dns+http://corral-indexer-headless:7280,").unwrap(),
            vec![
                PeerAddr::Url("http://10.0.0.2:7280".into()),
                PeerAddr::Dns {
                    name: "corral-indexer-headless".into(),
                    port: 7280
                }
            ]
        );
        for bad in [
            "10.0.0.2:7280",
            "dns+http://name",
            "dns+http://:80",
            "http://",
            "https://x:1",
        ] {
            let error = parse_peers(bad).unwrap_err();
            assert!(error.contains(bad) && error.contains("expected"), "{error}");
        }
    }

    #[test]
    fn the_have_header_round_trips_per_indexer() {
        let have = BTreeMap::from([
            ("indexer-0".to_owned(), "0001".to_owned()),
            ("indexer-1".to_owned(), "0002".to_owned()),
        ]);
        let header = have_header(&have);
        assert_eq!(header, "have=indexer-0:0001,indexer-1:0002");
        assert_eq!(parse_have(&header, "indexer-1").as_deref(), Some("0002"));
        assert_eq!(parse_have(&header, "indexer-2"), None);
        assert_eq!(parse_have("have=", "indexer-2"), None);
    }
}
