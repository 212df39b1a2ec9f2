//! How each service's logging library prints a record.

use corral_schema::{Level, Timestamp};

use crate::fleet::NANOS_PER_MS;
use crate::json::{JsonLine, Val};
use crate::shop::{Service, SimPod};

/// Prints one record the way `pod`'s logging library does (see [`Service`]).
pub(crate) fn render(
    pod: &SimPod,
    corr: Option<&str>,
    at: i64,
    level: Level,
    msg: &str,
    fields: &[(&str, Val)],
) -> String {
    // The envelope form: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    let rfc3339 = Timestamp::from_unix_nanos(at).to_string();
    let mut json = JsonLine::new();
    match pod.service {
        Service::Gateway => {
            json.str("time", &rfc3339)
                .str("level", &level.as_str().to_ascii_uppercase())
                .str("msg", msg);
            if let Some(corr) = corr {
                json.str("correlation_id", corr);
            }
            json.fields(fields);
        }
        Service::Orders => {
            let pino_level = match level {
                Level::Trace => 10,
                Level::Debug => 20,
                Level::Info => 30,
                Level::Warn => 40,
                Level::Error => 50,
                Level::Fatal => 60,
            };
            json.raw("level", pino_level)
                .raw("time", at.div_euclid(NANOS_PER_MS))
                .raw("pid", 1)
                .str("hostname", &pod.name);
            if let Some(corr) = corr {
                json.str("corr", corr);
            }
            json.fields(fields).str("msg", msg);
        }
        Service::Payments => {
            let level_value = match level {
                Level::Trace => 5_000,
                Level::Debug => 10_000,
                Level::Info => 20_000,
                Level::Warn => 30_000,
                Level::Error | Level::Fatal => 40_000,
            };
            // One request is served by one thread: pick it from the correlation id.
            let thread = match corr {
                Some(corr) => format!(
                    "http-nio-8080-exec-{}",
                    corr.bytes().map(u32::from).sum::<u32>() % 16 + 1
                ),
                None => "main".to_owned(),
            };
            let logger = if msg.starts_with("Started") {
                "com.shop.payments.PaymentsApplication"
            } else {
                "com.shop.payments.charge.ChargeService"
            };
            json.str("@timestamp", &format!("{}Z", &rfc3339[..23]))
                .str("@version", "1")
                .str("message", msg)
                .str("logger_name", logger)
                .str("thread_name", &thread)
                .str("level", &level.as_str().to_ascii_uppercase())
                .raw("level_value", level_value);
            if let Some(corr) = corr {
                json.str("correlationId", corr);
            }
            json.fields(fields);
        }
        Service::Inventory => {
            if let Some(corr) = corr {
                json.str("request_id", corr);
            }
            let level = match level {
                Level::Warn => "warning",
                Level::Fatal => "critical",
                other => other.as_str(),
            };
            json.fields(fields)
                .str("event", msg)
                .str("level", level)
                .str("logger", "inventory.api")
                .str("timestamp", &format!("{}Z", &rfc3339[..26]));
        }
        Service::Notifications => {
            let seconds = format!(
                "{}.{:06}",
                at.div_euclid(1_000_000_000),
                at.rem_euclid(1_000_000_000) / 1_000
            );
            json.str("level", level.as_str())
                .raw("ts", seconds)
                .str("caller", "notify/sender.go:112")
                .str("msg", msg);
            if let Some(corr) = corr {
                json.str("trace_id", corr);
            }
            json.fields(fields);
        }
    }
    json.finish()
}
