//! The other indexers of a cluster (DESIGN §7): who they are (`--peers`), how a root spreads a
//! query's splits over them, and asking each of them for its share.
//!
//! The indexer a query reaches is its root. It takes the published splits the query can touch
//! (its catalog lists them all, see [`crate::published::refresh_catalog`]) and gives each to one
//! member of the cluster by rendezvous hashing on the split's id ([`rendezvous`]): itself and
//! every live peer, so each split is read, and cached, by the same indexer whichever is root. It
//! asks every peer, in parallel and within `peer_timeout`, for its share (sent as the request's
//! body, `<tier>/<split-id>` a line) and for what only the peer has: its active split, and the
//! splits it sealed since the newest of its splits the root lists (the `x-corral-peer` header
//! says which: `have=<indexer>:<split-id>,…`). A peer answers such a request from those splits
//! only, and never asks further. The share of a peer that fails or is late is searched by the
//! root itself; the peer is named in the answer's `missing` (its active split is not searched).
//! The caller's `Authorization` goes along, so roles, tier limits and the audit log hold on
//! every peer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
/// How long a peer that failed gets no share (it is still asked for its active split).
pub const FAILED_PEER_PAUSE: Duration = Duration::from_secs(30);
/// A peer's stream (a tail) that sends nothing, not even a keep-alive, this long is dropped.
pub const STREAM_IDLE: Duration = Duration::from_secs(30);

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

/// The member of `members` (their keys) that the split `split` goes to: the highest weight
/// of (member, split). Removing a member moves only its own splits.
pub fn rendezvous(split: &str, members: &[&str]) -> usize {
    let weight = |member: &str| {
        // FNV-1a over member, a separator and split, then a 64-bit finalizer (splitmix64) so
        // ids that differ in their last digits spread.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in member.bytes().chain([0xff]).chain(split.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^ (hash >> 31)
    };
    (0..members.len())
        .max_by_key(|i| (weight(members[*i]), std::cmp::Reverse(*i)))
        .unwrap_or(0)
}

/// A peer as a root sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub url: String,
    /// What [`rendezvous`] hashes: the peer's indexer id once it has answered, its URL before.
    pub key: String,
    /// False for a peer that failed within [`FAILED_PEER_PAUSE`]: it gets no share.
    pub live: bool,
}

/// One peer's reply to a root.
#[derive(Debug)]
pub enum Reply {
    /// Its answer's body.
    Answered(Vec<u8>),
    /// The address was this indexer's own (a headless Service lists every member).
    Itself,
    /// Why there is no answer.
    Failed(String),
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
    /// For streams: no bound on the whole request, only on connecting and on silence.
    streams: reqwest::Client,
    timeout: Duration,
    me: String,
    errors: Family<PeerLabel, Counter>,
    /// What answers taught: each peer URL's indexer id (this indexer's own among them), and
    /// when a peer last failed.
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashMap<String, String>,
    failed: HashMap<String, Instant>,
}

impl Peers {
    /// Peers `addrs` of the indexer `me`, each given `timeout` to answer.
    pub fn new(addrs: Vec<PeerAddr>, me: &str, timeout: Duration) -> anyhow::Result<Peers> {
        crate::storage::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        let streams = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(STREAM_IDLE)
            .build()?;
        Ok(Peers {
            addrs,
            client,
            streams,
            timeout,
            me: me.to_owned(),
            errors: Family::default(),
            seen: Mutex::new(Seen::default()),
        })
    }

    /// Counts failed and late peers in `errors`, by peer.
    pub fn with_errors(mut self, errors: Family<PeerLabel, Counter>) -> Peers {
        self.errors = errors;
        self
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
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
        urls.sort();
        urls.dedup();
        (urls, missing)
    }

    /// The peers now, this indexer's own address left out once it is known; a name that does
    /// not resolve is missing.
    pub async fn members(&self) -> (Vec<Member>, Vec<Missing>) {
        let (urls, missing) = self.urls().await;
        let seen = self.seen();
        // One address per indexer (a name can give one indexer several: IPv4 and IPv6).
        let mut ids = std::collections::HashSet::new();
        let members = urls
            .into_iter()
            .filter(|url| seen.ids.get(url) != Some(&self.me))
            .filter(|url| seen.ids.get(url).is_none_or(|id| ids.insert(id.clone())))
            .map(|url| Member {
                key: seen.ids.get(&url).cloned().unwrap_or_else(|| url.clone()),
                live: seen
                    .failed
                    .get(&url)
                    .is_none_or(|at| at.elapsed() >= FAILED_PEER_PAUSE),
                url,
            })
            .collect();
        (members, missing)
    }

    /// Asks every member `GET <path>?<query>` as a root, in parallel, each with its share
    /// (`shares`: URL → request body) and `have` in [`PEER_HEADER`]; the caller's
    /// `authorization` goes along.
    pub async fn ask(
        &self,
        members: &[Member],
        path: &str,
        query: &str,
        authorization: Option<&HeaderValue>,
        have: &str,
        shares: &HashMap<String, String>,
    ) -> Vec<(String, Reply)> {
        let asks = members.iter().map(|member| {
            let peer = member.url.clone();
            let mut request = self
                .client
                .get(format!("{peer}{path}?{query}"))
                .header(PEER_HEADER, have)
                .body(shares.get(&peer).cloned().unwrap_or_default());
            if let Some(authorization) = authorization {
                request = request.header(reqwest::header::AUTHORIZATION, authorization.as_bytes());
            }
            async move {
                let reply = async {
                    let response = request.send().await.map_err(|e| describe(&e, self.timeout))?;
                    let indexer = response
                        .headers()
                        .get(INDEXER_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let status = response.status();
                    let bytes = response.bytes().await.map_err(|e| describe(&e, self.timeout))?;
                    if let Some(indexer) = indexer {
                        let itself = indexer == self.me;
                        self.seen().ids.insert(peer.clone(), indexer);
                        if itself {
                            return Ok(Reply::Itself);
                        }
                    }
                    if !status.is_success() {
                        let text = String::from_utf8_lossy(&bytes);
                        return Err(format!("HTTP {}: {}", status.as_u16(), text.trim()));
                    }
                    Ok(Reply::Answered(bytes.to_vec()))
                }
                .await;
                (peer, reply.unwrap_or_else(Reply::Failed))
            }
        });
        let replies = futures_util::future::join_all(asks).await;
        let mut seen = self.seen();
        for (peer, reply) in &replies {
            match reply {
                Reply::Failed(_) => {
                    self.errors.get_or_create(&PeerLabel { peer: peer.clone() }).inc();
                    seen.failed.insert(peer.clone(), Instant::now());
                }
                Reply::Answered(_) | Reply::Itself => {
                    seen.failed.remove(peer);
                }
            }
        }
        replies
    }

    /// Asks every peer for `path?query` with no share (only what only the peer has): tail.
    pub async fn ask_all(
        &self,
        path: &str,
        query: &str,
        authorization: Option<&HeaderValue>,
        have: &str,
    ) -> (Vec<PeerAnswer>, Vec<Missing>) {
        let (members, mut missing) = self.members().await;
        let replies = self
            .ask(&members, path, query, authorization, have, &HashMap::new())
            .await;
        let mut answers = Vec::new();
        for (peer, reply) in replies {
            match reply {
                Reply::Answered(body) => answers.push(PeerAnswer { peer, body: Ok(body) }),
                Reply::Itself => {}
                Reply::Failed(reason) => missing.push(Missing::peer(peer, reason)),
            }
        }
        (answers, missing)
    }

    /// Opens a root's stream from the peer at `url` (`GET <path>?<query>`: a tail), waiting at
    /// most `peer_timeout` for its answer; `Ok(None)` when the address is this indexer's own.
    pub async fn open_stream(
        &self,
        url: &str,
        path: &str,
        query: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<Option<reqwest::Response>, String> {
        let mut request = self
            .streams
            .get(format!("{url}{path}?{query}"))
            .header(PEER_HEADER, "have=");
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization.as_bytes());
        }
        let opened = async {
            let response = tokio::time::timeout(self.timeout, request.send())
                .await
                .map_err(|_| format!("no answer within peer_timeout ({:?})", self.timeout))?
                .map_err(|e| describe(&e, self.timeout))?;
            let indexer = response
                .headers()
                .get(INDEXER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(indexer) = indexer {
                let itself = indexer == self.me;
                self.seen().ids.insert(url.to_owned(), indexer);
                if itself {
                    return Ok(None);
                }
            }
            let status = response.status();
            if !status.is_success() {
                let text = tokio::time::timeout(self.timeout, response.text())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                return Err(format!("HTTP {}: {}", status.as_u16(), text.trim()));
            }
            Ok(Some(response))
        }
        .await;
        if opened.is_err() {
            self.errors
                .get_or_create(&PeerLabel { peer: url.to_owned() })
                .inc();
        }
        opened
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
    fn rendezvous_spreads_splits_and_a_member_leaving_moves_only_its_own() {
        let splits: Vec<String> = (0..3_000u64)
            .map(|n| format!("{:020}", 1_700_000_000_000_000_000 + n * 60_000_000_000))
            .collect();
        let three = ["indexer-0", "indexer-1", "indexer-2"];
        let owners: Vec<usize> = splits.iter().map(|s| rendezvous(s, &three)).collect();
        for member in 0..3 {
            let share = owners.iter().filter(|o| **o == member).count();
            assert!(
                (800..1_200).contains(&share),
                "member {member} got {share} of 3000"
            );
        }
        // indexer-1 leaves: its splits spread over the others, nobody else's move.
        let two = ["indexer-0", "indexer-2"];
        for (split, owner) in splits.iter().zip(&owners) {
            let now = two[rendezvous(split, &two)];
            if *owner != 1 {
                assert_eq!(now, three[*owner], "split {split} moved though its member stayed");
            }
        }
        // The same answer whatever order the members are listed in.
        let reversed = ["indexer-2", "indexer-1", "indexer-0"];
        for (split, owner) in splits.iter().zip(&owners) {
            assert_eq!(reversed[rendezvous(split, &reversed)], three[*owner]);
        }
        assert_eq!(rendezvous("any", &["only"]), 0);
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
