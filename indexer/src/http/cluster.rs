//! A root's query across the cluster (see [`crate::peers`]): this indexer's own answer merged
//! with its peers' shares, and what could not be searched named in `missing`.

use std::collections::{BTreeMap, HashMap};

use axum::http::{HeaderMap, header};
use corral_schema::Timestamp;
use corral_schema::api::{Cursor, Missing, SearchResponse, StatsGroup, StatsResponse};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::ApiState;
use crate::peers::{Member, PEER_HEADER, PeerAnswer, Reply, have_header, parse_have, rendezvous};
use crate::query::{Filters, Hit, Scope, SearchOutcome, sort_hits};
use crate::storage::SplitKey;

/// The cluster an indexer belongs to: its own id, and its peers (none: a one-node cluster).
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub indexer: String,
    pub peers: Option<std::sync::Arc<crate::peers::Peers>>,
}

/// The share a root's request asks of this indexer, when it comes from a root: the published
/// splits in its body (`<tier>/<split-id>` a line), its active split, and its own splits the
/// root cannot list yet. `Err`: a body that is not such a list.
pub(super) fn peer_scope(
    state: &ApiState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<(Scope, Vec<SplitKey>)>, String> {
    let Some(header) = headers.get(PEER_HEADER).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let keys = parse_share(body)?;
    let me = &state.cluster.indexer;
    let scope = Scope {
        splits: keys.iter().map(|key| key.id.clone()).collect(),
        active: true,
        own_after: Some((me.clone(), parse_have(header, me))),
    };
    Ok(Some((scope, keys)))
}

/// A share as a root sends it: `<tier>/<split-id>` a line.
fn share_body(keys: &[SplitKey]) -> String {
    keys.iter()
        .map(|key| format!("{}/{}\n", key.tier, key.id))
        .collect()
}

/// Reads a share sent by a root; `Err` names the first bad line.
fn parse_share(body: &[u8]) -> Result<Vec<SplitKey>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the share of splits is not UTF-8".to_owned())?;
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (tier, id) = line
                .split_once('/')
                .filter(|(tier, id)| !tier.is_empty() && !id.is_empty() && !id.contains('/'))
                .ok_or_else(|| {
                    format!("bad line {line:?} in the share of splits: expected <tier>/<split-id>")
                })?;
            Ok(SplitKey {
                tier: tier.to_owned(),
                id: id.to_owned(),
            })
        })
        .collect()
}

/// Published splits whose manifests this indexer could not read: missing from every answer it
/// roots.
pub(super) fn unfetched(state: &ApiState) -> Vec<Missing> {
    state
        .engine
        .catalog()
        .unfetched()
        .into_iter()
        .map(|(split, reason)| Missing::split(split, reason))
        .collect()
}

/// A query spread over the cluster by its root ([`spread`]).
#[derive(Debug)]
pub(super) struct Spread {
    members: Vec<Member>,
    /// [`PEER_HEADER`]'s value: the newest split of each indexer the root listed.
    have: String,
    /// Peer URL → its share.
    shares: HashMap<String, Vec<SplitKey>>,
    /// What the root searches itself: its share and its active split.
    pub own: Scope,
    /// Peers that could not even be listed (a name that does not resolve).
    missing: Vec<Missing>,
}

/// Spreads the published splits a query can touch over this indexer and its live peers
/// ([`rendezvous`]) when it is the query's root: not itself asked as a peer, and with peers.
pub(super) async fn spread(state: &ApiState, filters: &Filters, headers: &HeaderMap) -> Option<Spread> {
    let peers = state.cluster.peers.as_ref()?;
    if headers.contains_key(PEER_HEADER) || peers.is_empty() {
        return None;
    }
    let (members, missing) = peers.members().await;
    let live: Vec<&Member> = members.iter().filter(|m| m.live).collect();
    let keys: Vec<&str> = std::iter::once(state.cluster.indexer.as_str())
        .chain(live.iter().map(|m| m.key.as_str()))
        .collect();
    let me = &state.cluster.indexer;
    let published = state.engine.published_for(filters, me);
    // Its own splits not in the listing (sealed since, or not published) are in no share:
    // the root searches them.
    let mut own = Scope {
        active: true,
        own_after: Some((me.clone(), published.newest_own)),
        ..Scope::default()
    };
    let mut shares: HashMap<String, Vec<SplitKey>> = HashMap::new();
    for key in published.splits {
        match rendezvous(&key.id, &keys) {
            0 => {
                own.splits.insert(key.id);
            }
            member => shares.entry(live[member - 1].url.clone()).or_default().push(key),
        }
    }
    Some(Spread {
        members,
        have: have_header(&published.have),
        shares,
        own,
        missing,
    })
}

/// What the peers of a spread query answered.
#[derive(Debug, Default)]
pub(super) struct Asked {
    pub answers: Vec<PeerAnswer>,
    pub missing: Vec<Missing>,
    /// The shares of peers that failed (or turned out to be this indexer): the root searches
    /// them itself.
    pub left: Scope,
}

/// Asks every peer of `spread` for its share of `path?query`; the caller's `Authorization`
/// goes along.
pub(super) async fn ask_shares(
    state: &ApiState,
    spread: &Spread,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Asked {
    let Some(peers) = state.cluster.peers.as_ref() else {
        return Asked::default();
    };
    let bodies: HashMap<String, String> = spread
        .shares
        .iter()
        .map(|(peer, keys)| (peer.clone(), share_body(keys)))
        .collect();
    let replies = peers
        .ask(
            &spread.members,
            path,
            query.unwrap_or(""),
            headers.get(header::AUTHORIZATION),
            &spread.have,
            &bodies,
        )
        .await;
    let mut asked = Asked {
        missing: spread.missing.clone(),
        ..Asked::default()
    };
    for (peer, reply) in replies {
        let share = spread.shares.get(&peer).map(Vec::as_slice).unwrap_or_default();
        match reply {
            Reply::Answered(body) => asked.answers.push(PeerAnswer { peer, body: Ok(body) }),
            Reply::Itself => asked.left.splits.extend(share.iter().map(|key| key.id.clone())),
            Reply::Failed(reason) => {
                asked.left.splits.extend(share.iter().map(|key| key.id.clone()));
                let reason = if share.is_empty() {
                    reason
                } else {
                    format!(
                        "{reason}; its share of {} published split(s) was searched by {}",
                        share.len(),
                        state.cluster.indexer
                    )
                };
                asked.missing.push(Missing::peer(peer, reason));
            }
        }
    }
    asked
}

/// The sort keys of a hit from a peer.
#[derive(Deserialize)]
struct Keys {
    id: String,
    ts: Timestamp,
}

/// What a root's search adds up to: its own outcome with the peers' hits merged in.
#[derive(Debug, Default)]
pub(super) struct Merged {
    pub outcome: SearchOutcome,
    pub notices: Vec<String>,
    pub missing: Vec<Missing>,
}

/// Merges the peers' search answers into `local`: ordered by (`ts`, `id`), deduplicated by
/// `id`, cut at `limit` with the cursor of the last hit kept.
pub(super) fn merge_search(
    local: SearchOutcome,
    answers: Vec<PeerAnswer>,
    missing: Vec<Missing>,
    filters: &Filters,
) -> Merged {
    let mut merged = Merged {
        outcome: SearchOutcome::default(),
        notices: Vec::new(),
        missing,
    };
    merged.absorb(local, filters);
    for answer in answers {
        let parsed = answer.body.and_then(|body| {
            let response: SearchResponse<Box<RawValue>> =
                serde_json::from_slice(&body).map_err(|e| format!("unexpected search response: {e}"))?;
            let mut hits = Vec::with_capacity(response.hits.len());
            for raw in &response.hits {
                let keys: Keys = serde_json::from_str(raw.get())
                    .map_err(|e| format!("unexpected hit in its response: {e}"))?;
                hits.push(Hit {
                    ts: keys.ts.unix_nanos(),
                    id: keys.id,
                    source: raw.get().to_owned(),
                });
            }
            Ok((response, hits))
        });
        match parsed {
            Ok((response, hits)) => {
                let outcome = SearchOutcome {
                    hits,
                    truncated: response.truncated,
                    splits: response.splits,
                    tiers: response.tiers,
                    ..SearchOutcome::default()
                };
                merged.notices.extend(response.notice);
                merged.missing.extend(response.missing);
                merged.absorb(outcome, filters);
            }
            Err(reason) => merged.missing.push(Missing::peer(answer.peer, reason)),
        }
    }
    merged
}

impl Merged {
    /// Adds another search's outcome (a peer's, or a failed peer's share searched here).
    pub(super) fn absorb(&mut self, other: SearchOutcome, filters: &Filters) {
        let outcome = &mut self.outcome;
        outcome.hits.extend(other.hits);
        outcome.truncated |= other.truncated;
        outcome.splits += other.splits;
        for tier in other.tiers {
            if !outcome.tiers.contains(&tier) {
                outcome.tiers.push(tier);
            }
        }
        for (tier, n) in other.unsearched {
            *outcome.unsearched.entry(tier).or_default() += n;
        }
        self.missing.extend(
            other
                .unfetched
                .into_iter()
                .map(|(split, reason)| Missing::split(split, reason)),
        );
        sort_hits(&mut outcome.hits, filters.order);
        let mut seen = std::collections::HashSet::new();
        outcome.hits.retain(|hit| seen.insert(hit.id.clone()));
        outcome.truncated |= outcome.hits.len() > filters.limit;
        outcome.hits.truncate(filters.limit);
        outcome.after = outcome
            .truncated
            .then(|| outcome.hits.last())
            .flatten()
            .map(|hit| Cursor {
                ts: hit.ts,
                id: hit.id.clone(),
            });
    }
}

/// Adds the peers' stats answers to `local`: counts summed per group and level.
pub(super) fn merge_stats(local: &mut StatsResponse, answers: Vec<PeerAnswer>, missing: &mut Vec<Missing>) {
    for answer in answers {
        let parsed = answer.body.and_then(|body| {
            serde_json::from_slice::<StatsResponse>(&body)
                .map_err(|e| format!("unexpected stats response: {e}"))
        });
        match parsed {
            Ok(response) => add_stats(local, response, missing),
            Err(reason) => missing.push(Missing::peer(answer.peer, reason)),
        }
    }
}

/// Adds `other` to `local`: counts summed per group and level, groups ordered by count.
pub(super) fn add_stats(local: &mut StatsResponse, other: StatsResponse, missing: &mut Vec<Missing>) {
    let mut groups: BTreeMap<String, StatsGroup> =
        local.groups.drain(..).map(|g| (g.key.clone(), g)).collect();
    local.total += other.total;
    for group in other.groups {
        let entry = groups.entry(group.key.clone()).or_insert_with(|| StatsGroup {
            key: group.key.clone(),
            count: 0,
            levels: BTreeMap::new(),
        });
        entry.count += group.count;
        for (level, n) in group.levels {
            *entry.levels.entry(level).or_default() += n;
        }
    }
    missing.extend(other.missing);
    let mut groups: Vec<StatsGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    local.groups = groups;
}
