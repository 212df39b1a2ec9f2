//! What logq receives from indexers, and how answers from several indexers become one: hits
//! merged by `ts` then `id` and deduplicated by `id`; stats groups summed.

use std::collections::{BTreeMap, HashSet};

use corral_schema::Record;
use corral_schema::api::{Order, SearchResponse, StatsGroup, StatsResponse};
use serde_json::value::RawValue;

/// One record as an indexer returned it: parsed, and the exact JSON for `-o jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub record: Record,
    pub raw: String,
}

impl Hit {
    /// Parses one envelope.
    pub fn parse(raw: &str) -> Result<Hit, serde_json::Error> {
        Ok(Hit {
            record: serde_json::from_str(raw)?,
            raw: raw.to_owned(),
        })
    }
}

/// A search response with the hits kept as raw JSON, byte for byte as the indexer stored them.
pub type RawSearch = SearchResponse<Box<RawValue>>;

/// Parses every hit of a search response.
pub fn parse_hits(search: &RawSearch) -> Result<Vec<Hit>, serde_json::Error> {
    search.hits.iter().map(|raw| Hit::parse(raw.get())).collect()
}

/// Sorts by (`ts`, `id`) in `order`.
pub fn sort_hits(hits: &mut [Hit], order: Order) {
    hits.sort_by(|a, b| {
        let natural = a
            .record
            .ts
            .cmp(&b.record.ts)
            .then_with(|| a.record.id.cmp(&b.record.id));
        match order {
            Order::Asc => natural,
            Order::Desc => natural.reverse(),
        }
    });
}

/// Merges the hits of several indexers: ordered by (`ts`, `id`), one per `id`, at most
/// `limit`. Returns the hits and whether anything was cut (by an indexer or here).
pub fn merge(sets: Vec<(Vec<Hit>, bool)>, order: Order, limit: usize) -> (Vec<Hit>, bool) {
    let mut truncated = sets.iter().any(|(_, t)| *t);
    let mut hits: Vec<Hit> = sets.into_iter().flat_map(|(hits, _)| hits).collect();
    sort_hits(&mut hits, order);
    let mut seen = HashSet::with_capacity(hits.len());
    hits.retain(|hit| seen.insert(hit.record.id.clone()));
    if hits.len() > limit {
        hits.truncate(limit);
        truncated = true;
    }
    (hits, truncated)
}

/// Sums the stats of several indexers group by group; groups ordered by count, then key.
pub fn sum_stats(responses: Vec<StatsResponse>) -> StatsResponse {
    let mut groups: BTreeMap<String, StatsGroup> = BTreeMap::new();
    let mut total = 0;
    let mut took_ms = 0;
    let mut notices: Vec<String> = Vec::new();
    let mut missing: Vec<corral_schema::api::Missing> = Vec::new();
    for response in responses {
        total += response.total;
        for m in response.missing {
            if !missing.contains(&m) {
                missing.push(m);
            }
        }
        if let Some(notice) = response.notice
            && !notices.contains(&notice)
        {
            notices.push(notice);
        }
        took_ms = took_ms.max(response.took_ms);
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
    }
    let mut groups: Vec<StatsGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    StatsResponse {
        groups,
        total,
        took_ms,
        notice: (!notices.is_empty()).then(|| notices.join("; ")),
        complete: missing.is_empty(),
        missing,
    }
}

/// Records at `error` or `fatal` in a group.
pub fn errors(group: &StatsGroup) -> u64 {
    group.levels.get("error").copied().unwrap_or(0) + group.levels.get("fatal").copied().unwrap_or(0)
}

/// Share of a group's records at `error` or above, 0.0 – 1.0.
pub fn error_rate(group: &StatsGroup) -> f64 {
    if group.count == 0 {
        0.0
    } else {
        errors(group) as f64 / group.count as f64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use corral_schema::{Level, Stream, Timestamp};

    use super::*;

    /// A record for tests: `n` milliseconds after 10:00, in `service`.
    pub fn hit(n: u64, service: &str, level: Level, msg: &str) -> Hit {
        let record = Record {
            v: 1,
            id: format!("{n:032x}"),
            ts: Timestamp::parse("2026-11-23T10:00:00Z")
                .unwrap()
                .saturating_add_nanos(n as i64 * 1_000_000),
            observed_ts: Timestamp::parse("2026-11-23T10:00:01Z").unwrap(),
            service: service.into(),
            version: "1.0.0".into(),
            instance: format!("{service}-0/app"),
            node: "node-1".into(),
            namespace: "shop".into(),
            pod: format!("{service}-0"),
            container: "app".into(),
            stream: Stream::Stdout,
            level: Some(level),
            corr: Some("req-1".into()),
            span: None,
            msg: msg.into(),
            fields: serde_json::json!({"http": {"status": 200}, "user": "a b"})
                .as_object()
                .unwrap()
                .clone(),
            flags: vec![],
            original_ts: None,
        };
        let raw = serde_json::to_string(&record).unwrap();
        Hit { record, raw }
    }

    fn ids(hits: &[Hit]) -> Vec<String> {
        hits.iter().map(|h| h.record.id.clone()).collect()
    }

    #[test]
    fn merging_orders_dedups_and_limits() {
        let a = vec![hit(1, "a", Level::Info, "x"), hit(4, "a", Level::Info, "x")];
        let b = vec![
            hit(2, "b", Level::Info, "x"),
            hit(4, "a", Level::Info, "x"),
            hit(3, "b", Level::Info, "x"),
        ];
        let (merged, truncated) = merge(vec![(a.clone(), false), (b.clone(), false)], Order::Asc, 10);
        assert_eq!(
            ids(&merged),
            ids(&[
                hit(1, "", Level::Info, ""),
                hit(2, "", Level::Info, ""),
                hit(3, "", Level::Info, ""),
                hit(4, "", Level::Info, "")
            ])
        );
        assert!(!truncated);
        let (merged, truncated) = merge(vec![(a.clone(), false), (b.clone(), false)], Order::Desc, 2);
        assert_eq!(ids(&merged), vec![format!("{:032x}", 4), format!("{:032x}", 3)]);
        assert!(truncated);
        let (_, truncated) = merge(vec![(a, true), (b, false)], Order::Asc, 10);
        assert!(truncated, "an indexer's truncation carries over");
    }

    #[test]
    fn stats_are_summed_per_group() {
        let response = |groups: Vec<(&str, u64, u64)>| StatsResponse {
            total: groups.iter().map(|g| g.1).sum(),
            took_ms: 3,
            notice: None,
            complete: true,
            missing: Vec::new(),
            groups: groups
                .into_iter()
                .map(|(key, count, errors)| StatsGroup {
                    key: key.into(),
                    count,
                    levels: BTreeMap::from([
                        ("info".to_string(), count - errors),
                        ("error".to_string(), errors),
                    ]),
                })
                .collect(),
        };
        let sum = sum_stats(vec![
            response(vec![("2.3.0", 100, 1), ("2.4.0", 10, 2)]),
            response(vec![("2.4.0", 40, 6)]),
        ]);
        assert_eq!(sum.total, 150);
        assert_eq!(sum.groups.len(), 2);
        assert_eq!(
            (
                sum.groups[0].key.as_str(),
                sum.groups[0].count,
                errors(&sum.groups[0])
            ),
            ("2.3.0", 100, 1)
        );
        assert_eq!(
            (
                sum.groups[1].key.as_str(),
                sum.groups[1].count,
                errors(&sum.groups[1])
            ),
            ("2.4.0", 50, 8)
        );
        assert!((error_rate(&sum.groups[1]) - 0.16).abs() < 1e-9);
    }
}
