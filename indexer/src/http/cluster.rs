//! A root's query across the cluster (see [`crate::peers`]): this indexer's own answer merged
//! with its peers' shares, and what could not be searched named in `missing`.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use corral_schema::Timestamp;
use corral_schema::api::{Cursor, Missing, SearchResponse, StatsGroup, StatsResponse};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::ApiState;
use crate::peers::{PEER_HEADER, parse_have};
use crate::query::{Filters, Hit, PeerScope, SearchOutcome, sort_hits};

/// The cluster an indexer belongs to: its own id, and its peers (none: a one-node cluster).
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub indexer: String,
    pub peers: Option<std::sync::Arc<crate::peers::Peers>>,
}

/// The share a root's request asks of this indexer, when it comes from a root.
pub(super) fn peer_scope(state: &ApiState, headers: &HeaderMap) -> Option<PeerScope> {
    let header = headers.get(PEER_HEADER)?.to_str().ok()?;
    Some(PeerScope {
        indexer: state.cluster.indexer.clone(),
        after_split: parse_have(header, &state.cluster.indexer),
    })
}

/// Published splits this indexer could not fetch: missing from every answer it roots.
pub(super) fn unfetched(state: &ApiState) -> Vec<Missing> {
    state
        .engine
        .catalog()
        .unfetched()
        .into_iter()
        .map(|(split, reason)| Missing::split(split, reason))
        .collect()
}

/// Asks the peers for their shares of `path?query` when this indexer is the root (not itself
/// asked as a peer, and with peers); the caller's `Authorization` goes along.
pub(super) async fn ask_peers(
    state: &ApiState,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<(Vec<crate::peers::PeerAnswer>, Vec<Missing>)> {
    let peers = state.cluster.peers.as_ref()?;
    if headers.contains_key(PEER_HEADER) || peers.is_empty() {
        return None;
    }
    let have = crate::peers::have_header(&state.engine.catalog().newest_by_indexer(&state.cluster.indexer));
    Some(
        peers
            .ask(
                path,
                query.unwrap_or(""),
                headers.get(header::AUTHORIZATION),
                &have,
            )
            .await,
    )
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
    answers: Vec<crate::peers::PeerAnswer>,
    mut missing: Vec<Missing>,
    filters: &Filters,
) -> Merged {
    let mut outcome = local;
    let mut notices = Vec::new();
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
                outcome.hits.extend(hits);
                outcome.truncated |= response.truncated;
                outcome.splits += response.splits;
                for tier in response.tiers {
                    if !outcome.tiers.contains(&tier) {
                        outcome.tiers.push(tier);
                    }
                }
                notices.extend(response.notice);
                missing.extend(response.missing);
            }
            Err(reason) => missing.push(Missing::peer(answer.peer, reason)),
        }
    }
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
    Merged {
        outcome,
        notices,
        missing,
    }
}

/// Adds the peers' stats answers to `local`: counts summed per group and level.
pub(super) fn merge_stats(
    local: &mut StatsResponse,
    answers: Vec<crate::peers::PeerAnswer>,
    missing: &mut Vec<Missing>,
) {
    let mut groups: BTreeMap<String, StatsGroup> =
        local.groups.drain(..).map(|g| (g.key.clone(), g)).collect();
    for answer in answers {
        let parsed = answer.body.and_then(|body| {
            serde_json::from_slice::<StatsResponse>(&body)
                .map_err(|e| format!("unexpected stats response: {e}"))
        });
        match parsed {
            Ok(response) => {
                local.total += response.total;
                for group in response.groups {
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
                missing.extend(response.missing);
            }
            Err(reason) => missing.push(Missing::peer(answer.peer, reason)),
        }
    }
    let mut groups: Vec<StatsGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    local.groups = groups;
}
