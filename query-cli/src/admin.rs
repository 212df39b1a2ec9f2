//! The auditor's and admin's commands: `logq holds list|add|release` and `logq audit`. Holds
//! are cluster state, so one indexer answers for all (the endpoints are tried in turn); the
//! audit log is merged across the cluster by the indexer asked, and across the endpoints here.

use std::io::Write;

use corral_schema::api::{Missing, Selector};
use reqwest::Method;
use serde_json::Value;

use crate::cli::{Args, HoldsAction, Output};
use crate::client::Client;
use crate::run::{ERROR, INCOMPLETE, MATCHED, NO_MATCH};

const HOLDS_PATH: &str = "/api/v1/holds";
const AUDIT_PATH: &str = "/api/v1/audit";

/// `logq holds …`.
pub async fn holds(
    client: &Client,
    args: &Args,
    action: &HoldsAction,
    output: Output,
) -> anyhow::Result<i32> {
    match action {
        HoldsAction::List => {
            let body = match client.call(Method::GET, HOLDS_PATH, &[], None).await {
                Ok(body) => body,
                Err(error) => return failed(&error),
            };
            let listed: Value = serde_json::from_slice(&body)?;
            let holds = listed["holds"].as_array().cloned().unwrap_or_default();
            let mut out = std::io::stdout().lock();
            for hold in &holds {
                match output {
                    Output::Jsonl => writeln!(out, "{hold}")?,
                    _ => writeln!(
                        out,
                        "{}  {}  by {}  {}  {}",
                        hold["id"].as_str().unwrap_or("?"),
                        hold["created_at"].as_str().unwrap_or("?"),
                        hold["created_by"].as_str().unwrap_or("?"),
                        key_values(&hold["selector"]),
                        hold["reason"].as_str().unwrap_or("")
                    )?,
                }
            }
            Ok(if holds.is_empty() { NO_MATCH } else { MATCHED })
        }
        HoldsAction::Add { reason, query } => {
            let selector = Selector {
                q: query.clone(),
                ..args.query().selector
            };
            if selector.is_empty() {
                anyhow::bail!(
                    "a hold needs a selector: --corr, --service, --version, --instance, --level, --since, --until or --query"
                );
            }
            let body = serde_json::json!({"selector": selector, "reason": reason}).to_string();
            match client.call(Method::POST, HOLDS_PATH, &[], Some(body)).await {
                Ok(answer) => {
                    let placed: Value = serde_json::from_slice(&answer)?;
                    println!("{}", placed["id"].as_str().unwrap_or("?"));
                    Ok(MATCHED)
                }
                Err(error) => failed(&error),
            }
        }
        HoldsAction::Release { id } => {
            let path = format!("{HOLDS_PATH}/{}", encode_segment(id));
            match client.call(Method::DELETE, &path, &[], None).await {
                Ok(_) => {
                    println!("released {id}");
                    Ok(MATCHED)
                }
                Err(error) => failed(&error),
            }
        }
    }
}

/// `logq audit`: the merged log of every endpoint (each already the cluster's, so an entry
/// two endpoints return is shown once), in time order.
pub async fn audit(client: &Client, args: &Args, who: Option<&str>, output: Output) -> anyhow::Result<i32> {
    let mut query = Vec::new();
    if let Some(since) = &args.since {
        query.push(("since", since.clone()));
    }
    if let Some(until) = &args.until {
        query.push(("until", until.clone()));
    }
    if let Some(who) = who {
        query.push(("who", who.to_owned()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let answers = futures_util::future::join_all(client.endpoints().iter().map(|endpoint| {
        let one = Client::clone(client).only(endpoint);
        let query = query.clone();
        async move { one.call(Method::GET, AUDIT_PATH, &query, None).await }
    }))
    .await;
    let mut entries: Vec<Value> = Vec::new();
    let mut missing: Vec<Missing> = Vec::new();
    let mut answered = false;
    let mut truncated = false;
    for answer in answers {
        match answer {
            Ok(body) => {
                answered = true;
                let log: Value = serde_json::from_slice(&body)?;
                truncated |= log["truncated"] == true;
                if let Some(listed) = log["missing"].as_array() {
                    missing.extend(
                        listed
                            .iter()
                            .filter_map(|m| serde_json::from_value(m.clone()).ok()),
                    );
                }
                entries.extend(log["entries"].as_array().cloned().unwrap_or_default());
            }
            Err(error) => eprintln!("logq: {error}"),
        }
    }
    if !answered {
        return Ok(ERROR);
    }
    let key = |e: &Value| {
        (
            e["at"].as_str().unwrap_or("").to_owned(),
            e["indexer"].as_str().unwrap_or("").to_owned(),
            e["seq"].as_u64().unwrap_or(0),
        )
    };
    entries.sort_by_key(key);
    entries.dedup_by(|a, b| key(a) == key(b));
    let mut out = std::io::stdout().lock();
    for entry in &entries {
        match output {
            Output::Jsonl => writeln!(out, "{entry}")?,
            _ => writeln!(out, "{}", audit_line(entry))?,
        }
    }
    drop(out);
    if truncated {
        eprintln!("logq: more entries than the limit; narrow --since/--until or raise --limit");
    }
    for m in &missing {
        eprintln!("logq: incomplete answer: {m}");
    }
    Ok(match (entries.is_empty(), missing.is_empty()) {
        (true, _) => NO_MATCH,
        (false, false) => INCOMPLETE,
        (false, true) => MATCHED,
    })
}

/// One audit entry as a line: when, where, who, what, and its parameters.
fn audit_line(entry: &Value) -> String {
    let params = key_values(&entry["params"]);
    let refused = entry["refused"]
        .as_str()
        .map(|r| format!(" refused={}", crate::output::logfmt_value(r)))
        .unwrap_or_default();
    format!(
        "{} {} {}({}) {} count={}{refused} {params}",
        entry["at"].as_str().unwrap_or("?"),
        entry["indexer"].as_str().unwrap_or("-"),
        entry["who"].as_str().unwrap_or("?"),
        entry["role"].as_str().unwrap_or("?"),
        entry["action"].as_str().unwrap_or("?"),
        entry["count"].as_u64().unwrap_or(0),
    )
}

/// A JSON object's members as `key=value` pairs (values quoted as logfmt quotes them).
fn key_values(object: &Value) -> String {
    object
        .as_object()
        .map(|members| {
            members
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        crate::output::logfmt_value(v.as_str().unwrap_or(&v.to_string()))
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A path segment percent-encoded (hold ids are plain, but a typo must not change the path).
fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn failed(error: &crate::client::EndpointError) -> anyhow::Result<i32> {
    eprintln!("logq: {error}");
    Ok(ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_holds_read_as_one_line_each() {
        let entry = serde_json::json!({
            "at": "2026-12-01T10:00:00Z", "indexer": "indexer-1", "who": "alice", "role": "reader",
            "action": "search", "count": 3, "params": {"corr": "req 1"}, "seq": 4
        });
        assert_eq!(
            audit_line(&entry),
            "2026-12-01T10:00:00Z indexer-1 alice(reader) search count=3 corr=\"req 1\""
        );
        let selector = serde_json::json!({"service": "orders", "since": "2026-01-01T00:00:00Z"});
        assert_eq!(key_values(&selector), "service=orders since=2026-01-01T00:00:00Z");
        assert_eq!(encode_segment("hold-1/../x"), "hold-1%2F..%2Fx");
    }
}
