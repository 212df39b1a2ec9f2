//! Collector configuration: the TOML file (`--config`), validated into [`CollectorConfig`].
//!
//! ```toml
//! max_line_bytes = 1048576      # longer lines are cut and flagged `truncated`
//! scan_interval = "250ms"       # how often globs are re-scanned and files read
//! drain_timeout = "10s"         # at shutdown, how long to wait for the sink's acknowledgements
//! max_in_flight_bytes = 67108864 # unacknowledged bytes before reading pauses (backpressure)
//! default_namespace = "edge"    # for files outside the kubelet layout (else "unknown")
//! default_pod = "nginx"
//! max_future_skew = "15m"       # a line stamped further after it was read is indexed at observed_ts
//! redact_key_file = "/etc/corral/redact.key" # the `hash` key of [[redact]] (else CORRAL_REDACT_KEY)
//! [keys]                        # JSON keys holding ts / level / msg / corr, first present wins
//! corr = ["corr", "request_id", "trace_id"]
//! [kafka.producer]              # librdkafka properties, passed through
//! "message.max.bytes" = 4000000
//! [[redact]]                    # see crate::redact
//! name = "emails"
//! builtin = "email"
//! action = "mask"
//! [[sample]]                    # see crate::sample
//! service = "checkout"
//! keep = 0.1
//! always_keep_level = "warn"
//! ```
//! Unknown keys are rejected with the key's name.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use corral_schema::duration::parse_duration;
use serde::Deserialize;

use crate::app_json::KeyConfig;
use crate::redact::{KEY_ENV, RawRule, Redactor};
use crate::sample::{RawSample, Sampler};

/// Default for `max_line_bytes`: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// Default for `max_in_flight_bytes`: 64 MiB.
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 64 * 1024 * 1024;
/// Default for `drain_timeout`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `scan_interval`.
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    max_line_bytes: Option<usize>,
    scan_interval: Option<String>,
    drain_timeout: Option<String>,
    max_in_flight_bytes: Option<usize>,
    default_namespace: Option<String>,
    default_pod: Option<String>,
    max_future_skew: Option<String>,
    /// Lists left out keep their defaults.
    keys: Option<KeyConfig>,
    kafka: Option<RawKafka>,
    redact_key_file: Option<std::path::PathBuf>,
    #[serde(default)]
    redact: Vec<RawRule>,
    #[serde(default)]
    sample: Vec<RawSample>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    /// librdkafka producer properties, passed through.
    #[serde(default)]
    producer: BTreeMap<String, toml::Value>,
}

/// Validated collector configuration.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub max_line_bytes: usize,
    pub scan_interval: Duration,
    /// How long shutdown waits for the sink to acknowledge records in flight.
    pub drain_timeout: Duration,
    /// Most bytes handed to the sink and not yet acknowledged; past it reading pauses.
    pub max_in_flight_bytes: usize,
    pub default_namespace: Option<String>,
    pub default_pod: Option<String>,
    /// A line whose own timestamp is further than this after the moment it was read (or before
    /// 1970-01-02) gets `ts` = `observed_ts`, flag `ts_adjusted` and `original_ts`.
    pub max_future_skew: Duration,
    pub keys: KeyConfig,
    /// librdkafka producer properties from `[kafka.producer]`, overriding corral's defaults.
    pub kafka_producer: BTreeMap<String, String>,
    /// `[[redact]]`: applied to every record before it is handed to a sink.
    pub redactor: Redactor,
    /// `[[sample]]`: which records of sampled services are kept.
    pub sampler: Sampler,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            scan_interval: DEFAULT_SCAN_INTERVAL,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            default_namespace: None,
            default_pod: None,
            max_future_skew: corral_schema::DEFAULT_MAX_FUTURE_SKEW,
            keys: KeyConfig::default(),
            kafka_producer: BTreeMap::new(),
            redactor: Redactor::default(),
            sampler: Sampler::default(),
        }
    }
}

impl CollectorConfig {
    /// Reads and validates a config file; errors name the file and the offending key.
    pub fn load(path: &Path) -> anyhow::Result<CollectorConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        CollectorConfig::parse(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// Parses and validates config text; the `hash` key is read from `redact_key_file`, else
    /// from the environment ([`KEY_ENV`]).
    pub fn parse(text: &str) -> anyhow::Result<CollectorConfig> {
        CollectorConfig::parse_with_env_key(text, std::env::var(KEY_ENV).ok())
    }

    /// [`CollectorConfig::parse`] with the environment's key given.
    pub fn parse_with_env_key(text: &str, env_key: Option<String>) -> anyhow::Result<CollectorConfig> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let mut config = CollectorConfig::default();
        if let Some(max) = raw.max_line_bytes {
            if max < 1024 {
                bail!("max_line_bytes = {max} is too small: use at least 1024");
            }
            config.max_line_bytes = max;
        }
        if let Some(interval) = raw.scan_interval {
            config.scan_interval = parse_duration(&interval).context("scan_interval")?;
            if config.scan_interval.is_zero() {
                bail!("scan_interval must be more than 0");
            }
        }
        if let Some(timeout) = raw.drain_timeout {
            config.drain_timeout = parse_duration(&timeout).context("drain_timeout")?;
        }
        if let Some(max) = raw.max_in_flight_bytes {
            if max < 64 * 1024 {
                bail!("max_in_flight_bytes = {max} is too small: use at least 65536");
            }
            config.max_in_flight_bytes = max;
        }
        config.default_namespace = raw.default_namespace;
        config.default_pod = raw.default_pod;
        if let Some(skew) = raw.max_future_skew {
            config.max_future_skew = parse_duration(&skew).context("max_future_skew")?;
        }
        if let Some(keys) = raw.keys {
            config.keys = keys;
        }
        for (key, value) in raw.kafka.unwrap_or_default().producer {
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(x) => x.to_string(),
                other => bail!("kafka.producer.{key} = {other:?}: expected a string, number or boolean"),
            };
            config.kafka_producer.insert(key, text);
        }
        let key = match &raw.redact_key_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("redact_key_file: cannot read {}", path.display()))?;
                let key = bytes.trim_ascii_end().to_vec();
                if key.is_empty() {
                    bail!("redact_key_file: {} is empty", path.display());
                }
                Some(key)
            }
            None => env_key.filter(|k| !k.is_empty()).map(String::into_bytes),
        };
        config.redactor = Redactor::compile(&raw.redact, key)?;
        config.sampler = Sampler::compile(&raw.sample)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_config_sets_every_key() {
        let config = CollectorConfig::parse(
            r#"
            max_line_bytes = 65536
            scan_interval = "1s"
            default_namespace = "edge"
            [keys]
            corr = ["x-b3-traceid"]
            [kafka.producer]
            "linger.ms" = 50
            "security.protocol" = "SASL_SSL"
            "#,
        )
        .unwrap();
        assert_eq!(config.max_line_bytes, 65536);
        assert_eq!(config.scan_interval, Duration::from_secs(1));
        assert_eq!(config.default_namespace.as_deref(), Some("edge"));
        assert_eq!(config.keys.corr, vec!["x-b3-traceid".to_string()]);
        assert_eq!(config.keys.msg, KeyConfig::default().msg);
        assert_eq!(config.kafka_producer["linger.ms"], "50");
        assert_eq!(config.kafka_producer["security.protocol"], "SASL_SSL");
        assert!(config.redactor.is_empty() && config.sampler.is_empty());
    }

    #[test]
    fn redact_and_sample_rules_compile_with_the_key_from_a_file_or_the_environment() {
        let text = r#"
            [[redact]]
            name = "emails"
            builtin = "email"
            action = "mask"
            [[redact]]
            name = "user-email"
            fields = ["fields.user.email", "fields.card.*"]
            action = "hash"
            [[redact]]
            name = "accounts"
            regex = "acct-[0-9]{6}"
            action = "mask"
            [[sample]]
            service = "checkout"
            keep = 0.1
            always_keep_level = "warn"
            "#;
        let config = CollectorConfig::parse_with_env_key(text, Some("k".into())).unwrap();
        assert_eq!(
            config.redactor.rule_names().collect::<Vec<_>>(),
            ["emails", "user-email", "accounts"]
        );
        assert!(!config.sampler.is_empty());
        let error = format!(
            "{:#}",
            CollectorConfig::parse_with_env_key(text, None).unwrap_err()
        );
        assert!(
            error.contains("redact rule \"user-email\": action = \"hash\" needs a key"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "secret\n").unwrap();
        let with_file = format!("redact_key_file = {:?}\n{text}", key.display().to_string());
        assert!(CollectorConfig::parse_with_env_key(&with_file, None).is_ok());
        std::fs::write(&key, "\n").unwrap();
        let error = format!(
            "{:#}",
            CollectorConfig::parse_with_env_key(&with_file, None).unwrap_err()
        );
        assert!(error.contains("is empty"), "{error}");
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            ("max_line_byte = 10", "unknown field `max_line_byte`"),
            ("[keys]\ncor = []", "unknown field `cor`"),
            ("scan_interval = \"soon\"", "scan_interval"),
            ("max_line_bytes = 10", "too small"),
            ("max_line_bytes = \"big\"", "invalid type"),
            ("[kafka]\nproducr = {}", "unknown field `producr`"),
            ("[kafka.producer]\n\"acks\" = [1]", "kafka.producer.acks"),
            (
                "[[redact]]\nname = \"x\"\nbuiltin = \"mail\"\naction = \"mask\"",
                "redact rule \"x\": builtin = \"mail\"",
            ),
            (
                "[[redact]]\nname = \"x\"\nbuiltin = \"email\"\nactoin = \"mask\"",
                "unknown field `actoin`",
            ),
            (
                "redact_key_file = \"/nonexistent/key\"",
                "redact_key_file: cannot read /nonexistent/key",
            ),
            (
                "[[sample]]\nservice = \"api\"\nkeep = 2.0",
                "sample rule for service \"api\": keep = 2",
            ),
        ];
        for (text, want) in cases {
            let error = format!(
                "{:#}",
                CollectorConfig::parse_with_env_key(text, None).unwrap_err()
            );
            assert!(error.contains(want), "{text:?} gave {error:?}");
        }
    }
}
