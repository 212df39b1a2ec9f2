//! Envelope corpora for benchmarks: the records the collector would build for a small shop,
//! deterministic for a seed, so every run of a bench indexes the same data.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use corral_schema::{Level, Record, Stream, Timestamp};
use serde_json::{Map, Value, json};

use crate::rng::SplitMix64;

/// Seed of [`envelopes`].
const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// Services of the corpus, in the order a request crosses them.
pub const SERVICES: [&str; 5] = ["gateway", "orders", "payments", "inventory", "notifications"];
/// Stable and canary version of each service; the third instance runs the canary.
pub const VERSIONS: [[&str; 2]; 5] = [
    ["3.2.0", "3.3.0"],
    ["1.14.2", "1.15.0"],
    ["2.3.0", "2.4.0"],
    ["0.9.7", "0.10.0"],
    ["5.0.1", "5.1.0"],
];
pub const REPLICA_SETS: [&str; 5] = ["7d9f8b6c4", "6f7c9d5b4", "6f7c9d8b5", "5b8d7c6f9", "8c6b5d4f7"];
pub const POD_SUFFIXES: [&str; 3] = ["x2k9p", "wxzqt", "fghjk"];

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Envelopes as the collector builds them for a small shop: requests cross the services in
/// order (3–7 records sharing a `corr`), ~5 % background records carry no `corr`, the canary
/// instance of each service logs more errors.
pub fn envelopes(count: usize) -> Vec<Record> {
    let base = Timestamp::parse("2026-11-23T10:00:00Z").expect("valid timestamp");
    let pods: Vec<Vec<String>> = SERVICES
        .iter()
        .zip(REPLICA_SETS)
        .map(|(service, set)| {
            POD_SUFFIXES
                .iter()
                .map(|suffix| format!("{service}-{set}-{suffix}"))
                .collect()
        })
        .collect();
    let mut rng = SplitMix64::new(SEED);
    let mut records = Vec::with_capacity(count);
    let (mut corr, mut left, mut step, mut user, mut order) = (String::new(), 0u64, 0usize, 0u64, 0u64);
    for i in 0..count {
        let background = rng.below(100) < 5;
        if !background && left == 0 {
            left = 3 + rng.below(5);
            step = 0;
            corr = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
            user = 10_000 + rng.below(190_000);
            order = 4_000_000 + i as u64;
        }
        let s = if background {
            rng.below(5) as usize
        } else {
            step % SERVICES.len()
        };
        let instance = rng.below(3) as usize;
        let canary = instance == 2;
        let roll = rng.below(1000);
        let errors = if canary { 60 } else { 20 };
        let level = if roll < errors {
            Level::Error
        } else if roll < errors + 60 {
            Level::Warn
        } else if roll < errors + 140 {
            Level::Debug
        } else {
            Level::Info
        };
        let ts = base.saturating_add_nanos(i as i64 * 1_000_000 + rng.below(1_000_000) as i64);
        let duration = (rng.below(4_000) as f64) / 10.0 + if level == Level::Warn { 500.0 } else { 1.0 };
        let status = match level {
            Level::Error => 502,
            Level::Warn => 429,
            _ => 200,
        };
        let (msg, mut fields) = if background {
            let entries = rng.below(50_000);
            (
                format!("cache refreshed: {entries} entries in {duration:.1} ms"),
                object(json!({"job": "cache-refresh", "entries": entries, "duration_ms": duration})),
            )
        } else {
            service_line(s, level, &mut rng, user, order, duration, status)
        };
        if !background {
            fields.insert("user".into(), json!({"id": user}));
            left -= 1;
            step += 1;
        }
        let pod = &pods[s][instance];
        records.push(Record {
            v: 1,
            id: format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
            ts,
            observed_ts: ts.saturating_add_nanos(2_000_000 + rng.below(40_000_000) as i64),
            service: SERVICES[s].to_owned(),
            version: VERSIONS[s][usize::from(canary)].to_owned(),
            instance: format!("{pod}/app"),
            node: format!("node-{}", (s * 3 + instance) % 4 + 1),
            namespace: "shop".to_owned(),
            pod: pod.clone(),
            container: "app".to_owned(),
            stream: if level == Level::Error {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            level: Some(level),
            corr: (!background).then(|| corr.clone()),
            span: None,
            msg,
            fields,
            flags: Vec::new(),
            original_ts: None,
        });
    }
    records
}

/// The message and fields of one request's record in service `s`.
fn service_line(
    s: usize,
    level: Level,
    rng: &mut SplitMix64,
    user: u64,
    order: u64,
    duration: f64,
    status: u16,
) -> (String, Map<String, Value>) {
    let (method, path, msg, extra) = match SERVICES[s] {
        "gateway" => {
            let method = *rng.pick(&["GET", "POST", "PUT"]);
            let path = format!("/api/v1/orders/{order}");
            let msg = format!("{method} {path} {status} {duration:.1}ms");
            let client = json!({"ip": format!("10.{}.{}.{}", rng.below(256), rng.below(256), rng.below(256)), "app": *rng.pick(&["ios", "android", "web"])});
            (method, path, msg, ("client", client))
        }
        "orders" => {
            let items = 1 + rng.below(9);
            let total = (rng.below(50_000) as f64) / 100.0;
            let msg = match level {
                Level::Error => format!("cannot create order {order}: stock service unavailable"),
                _ => format!("order {order} created with {items} items for user {user}"),
            };
            let detail = json!({"id": order, "items": items, "total": total});
            ("POST", "/api/v1/orders".to_owned(), msg, ("order", detail))
        }
        "payments" => {
            let provider = *rng.pick(&["stripe", "adyen", "paypal"]);
            let amount = (rng.below(50_000) as f64) / 100.0;
            let msg = match level {
                Level::Error => format!(
                    "card declined for order {order}: {}",
                    *rng.pick(&["insufficient funds", "expired card", "do not honor"])
                ),
                _ => format!("payment authorized for order {order}: {amount:.2} EUR via {provider}"),
            };
            let detail = json!({"provider": provider, "amount": amount, "currency": "EUR"});
            (
                "POST",
                "/api/v1/payments/authorize".to_owned(),
                msg,
                ("payment", detail),
            )
        }
        "inventory" => {
            let sku = rng.below(20_000);
            let quantity = 1 + rng.below(5);
            let warehouse = *rng.pick(&["ams-1", "fra-2", "par-1"]);
            let msg = format!("reserved {quantity} units of sku-{sku} in warehouse {warehouse}");
            let detail = json!({"sku": format!("sku-{sku}"), "quantity": quantity, "warehouse": warehouse});
            (
                "POST",
                "/api/v1/inventory/reserve".to_owned(),
                msg,
                ("reservation", detail),
            )
        }
        _ => {
            let channel = *rng.pick(&["email", "sms", "push"]);
            let msg = format!("sent {channel} notification for order {order} to user {user}");
            let detail = json!({"channel": channel, "template": "order-confirmed"});
            (
                "POST",
                "/internal/notify".to_owned(),
                msg,
                ("notification", detail),
            )
        }
    };
    let msg = if level == Level::Warn {
        format!("slow ({duration:.0} ms): {msg}")
    } else {
        msg
    };
    let mut fields = object(json!({
        "http": {"method": method, "path": path, "status": status, "duration_ms": duration},
    }));
    fields.insert(extra.0.to_owned(), extra.1);
    (msg, fields)
}

/// What [`write_cri_logs`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriLogs {
    /// Bytes written, CRI prefixes included.
    pub bytes: u64,
    /// Application lines written as two CRI partial chunks.
    pub partial_lines: usize,
}

/// Writes `lines` CRI lines of realistic application JSON (300–600 bytes) round-robin into
/// `pods` kubelet-layout files `<root>/pods/shop_<pod>_uid-<n>/app/0.log`; about 3 % of the
/// lines are written as two partial (`P`) chunks. Panics on I/O errors: it is for benchmarks.
pub fn write_cri_logs(root: &Path, pods: usize, lines: usize) -> CriLogs {
    let services = ["gateway", "orders", "payments", "inventory", "notifications"];
    let mut writers: Vec<BufWriter<File>> = (0..pods)
        .map(|p| {
            let service = services[p % services.len()];
            let dir = root.join(format!("pods/shop_{service}-7d9f8b6c4-x2k{p}p_uid-{p}/app"));
            fs::create_dir_all(&dir).unwrap();
            BufWriter::with_capacity(1 << 20, File::create(dir.join("0.log")).unwrap())
        })
        .collect();
    let mut corpus = CriLogs {
        bytes: 0,
        partial_lines: 0,
    };
    let mut rng = SplitMix64::new(SEED);
    let levels = ["info", "info", "info", "debug", "warn", "error"];
    let paths = [
        "/api/v1/orders",
        "/api/v1/payments/authorize",
        "/api/v1/inventory/reserve",
        "/healthz",
    ];
    for i in 0..lines {
        let pod = i % pods;
        let r = rng.next_u64();
        let padding = "x".repeat((r % 220) as usize);
        let json = format!(
            "{{\"level\":\"{}\",\"ts\":\"2026-11-23T10:{:02}:{:02}.{:06}Z\",\"logger\":\"{}.handler\",\"msg\":\"handled request {} for user {}\",\"trace_id\":\"{:032x}\",\"http\":{{\"method\":\"POST\",\"path\":\"{}\",\"status\":{},\"duration_ms\":{}.{}}},\"user\":{{\"id\":{},\"tier\":\"gold\"}},\"detail\":\"{}\"}}",
            levels[(r % 6) as usize],
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1_000_000,
            services[pod % services.len()],
            i,
            r % 100_000,
            (r as u128) << 7 | i as u128,
            paths[(r % 4) as usize],
            [200, 201, 404, 500][(r >> 8) as usize % 4],
            r % 900,
            r % 10,
            r % 50_000,
            padding
        );
        let ts = format!(
            "2026-11-23T10:{:02}:{:02}.{:09}Z",
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i
        );
        let out = &mut writers[pod];
        let written = if r % 100 < 3 {
            // A partial line: the runtime wrote it in two chunks.
            corpus.partial_lines += 1;
            let cut = json.len() / 2;
            let first = format!("{ts} stdout P {}\n", &json[..cut]);
            let second = format!("{ts} stdout F {}\n", &json[cut..]);
            out.write_all(first.as_bytes()).unwrap();
            out.write_all(second.as_bytes()).unwrap();
            first.len() + second.len()
        } else {
            let line = format!("{ts} stdout F {json}\n");
            out.write_all(line.as_bytes()).unwrap();
            line.len()
        };
        corpus.bytes += written as u64;
    }
    for mut w in writers {
        w.flush().unwrap();
    }
    corpus
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn envelopes_are_deterministic_and_requests_share_a_corr() {
        let records = envelopes(2_000);
        assert_eq!(records, envelopes(2_000), "the same corpus every run");
        let mut per_corr: HashMap<&str, usize> = HashMap::new();
        for record in &records {
            if let Some(corr) = &record.corr {
                *per_corr.entry(corr).or_default() += 1;
            }
        }
        let background = records.iter().filter(|r| r.corr.is_none()).count();
        assert!(
            (40..=160).contains(&background),
            "~5 % background records, got {background}"
        );
        // A request may straddle the end of the corpus; every other one has 3–7 records.
        let sizes: Vec<usize> = per_corr.values().copied().collect();
        assert!(
            sizes.iter().filter(|n| !(3..=7).contains(*n)).count() <= 1,
            "{sizes:?}"
        );
        assert!(
            records.windows(2).all(|w| w[0].ts < w[1].ts),
            "records in time order"
        );
    }

    #[test]
    fn cri_logs_hold_every_line_and_some_partial_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_cri_logs(dir.path(), 3, 1_000);
        let mut bytes = 0;
        let mut whole = 0;
        for pod in fs::read_dir(dir.path().join("pods")).unwrap() {
            let text = fs::read_to_string(pod.unwrap().path().join("app/0.log")).unwrap();
            bytes += text.len() as u64;
            whole += text.lines().filter(|l| l.contains(" stdout F ")).count();
        }
        assert_eq!(bytes, written.bytes);
        assert_eq!(
            whole, 1_000,
            "one whole (F) line or final chunk per application line"
        );
        assert!(
            written.partial_lines > 0 && written.partial_lines < 100,
            "{written:?}"
        );
    }
}
