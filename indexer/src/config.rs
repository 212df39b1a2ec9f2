//! Indexer configuration: the TOML file (`--config`, DESIGN §4.2a), validated into
//! [`IndexerConfig`].
//!
//! ```toml
//! [kafka]                      # librdkafka consumer properties, passed through
//! "fetch.max.bytes" = "52428800"
//! [indexer]
//! commit_interval = "1s"       # the active split is committed (and so searchable) this often
//! split_max_docs = 5000000     # seal the active split at this many docs …
//! split_max_age = "1h"         # … or when it is this old
//! writer_memory_mb = 128       # tantivy indexing buffer
//! [auth]
//! tokens_file = "/etc/corral/auth/tokens.toml"   # [[token]] name, token, role (see `auth`)
//! ```
//! Unknown keys are rejected with the key's name. Retention tiers come with their own section
//! once they are built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use corral_schema::duration::parse_duration;
use serde::Deserialize;

/// Default for `commit_interval`.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Default for `split_max_docs`.
pub const DEFAULT_SPLIT_MAX_DOCS: u64 = 5_000_000;
/// Default for `split_max_age`.
pub const DEFAULT_SPLIT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Default for `writer_memory_mb`.
pub const DEFAULT_WRITER_MEMORY_MB: usize = 128;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    kafka: BTreeMap<String, toml::Value>,
    indexer: Option<RawIndexer>,
    auth: Option<RawAuth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    tokens_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndexer {
    commit_interval: Option<String>,
    split_max_docs: Option<u64>,
    split_max_age: Option<String>,
    writer_memory_mb: Option<usize>,
}

/// Validated indexer configuration.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// librdkafka consumer properties from `[kafka]`, overriding corral's defaults.
    pub kafka: BTreeMap<String, String>,
    pub commit_interval: Duration,
    pub split_max_docs: u64,
    pub split_max_age: Duration,
    /// tantivy's indexing memory budget in MiB.
    pub writer_memory_mb: usize,
    /// API tokens and roles; without it the API is open (and loopback-only unless forced).
    pub tokens_file: Option<PathBuf>,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            kafka: BTreeMap::new(),
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            split_max_docs: DEFAULT_SPLIT_MAX_DOCS,
            split_max_age: DEFAULT_SPLIT_MAX_AGE,
            writer_memory_mb: DEFAULT_WRITER_MEMORY_MB,
            tokens_file: None,
        }
    }
}

impl IndexerConfig {
    /// Reads and validates a config file; errors name the file and the offending key.
    pub fn load(path: &Path) -> anyhow::Result<IndexerConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        IndexerConfig::parse(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> anyhow::Result<IndexerConfig> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let mut config = IndexerConfig::default();
        let indexer = raw.indexer.unwrap_or_default();
        if let Some(interval) = indexer.commit_interval {
            config.commit_interval = parse_duration(&interval).context("indexer.commit_interval")?;
            if config.commit_interval < Duration::from_millis(10) {
                bail!("indexer.commit_interval = {interval:?} is too short: use at least 10ms");
            }
        }
        if let Some(max) = indexer.split_max_docs {
            if max == 0 {
                bail!("indexer.split_max_docs must be more than 0");
            }
            config.split_max_docs = max;
        }
        if let Some(age) = indexer.split_max_age {
            config.split_max_age = parse_duration(&age).context("indexer.split_max_age")?;
            if config.split_max_age.is_zero() {
                bail!("indexer.split_max_age must be more than 0");
            }
        }
        if let Some(mb) = indexer.writer_memory_mb {
            if !(16..=4096).contains(&mb) {
                bail!("indexer.writer_memory_mb = {mb} is out of range: use 16 to 4096");
            }
            config.writer_memory_mb = mb;
        }
        config.tokens_file = raw.auth.and_then(|auth| auth.tokens_file);
        for (key, value) in raw.kafka {
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(x) => x.to_string(),
                other => bail!("kafka.{key} = {other:?}: expected a string, number or boolean"),
            };
            config.kafka.insert(key, text);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_config_sets_every_key() {
        let config = IndexerConfig::parse(
            r#"
            [kafka]
            "fetch.max.bytes" = "52428800"
            "session.timeout.ms" = 6000
            [indexer]
            commit_interval = "500ms"
            split_max_docs = 1000
            split_max_age = "15m"
            writer_memory_mb = 64
            [auth]
            tokens_file = "/etc/corral/auth/tokens.toml"
            "#,
        )
        .unwrap();
        assert_eq!(config.kafka["fetch.max.bytes"], "52428800");
        assert_eq!(config.kafka["session.timeout.ms"], "6000");
        assert_eq!(config.commit_interval, Duration::from_millis(500));
        assert_eq!(config.split_max_docs, 1000);
        assert_eq!(config.split_max_age, Duration::from_secs(900));
        assert_eq!(config.writer_memory_mb, 64);
        assert_eq!(
            config.tokens_file,
            Some(PathBuf::from("/etc/corral/auth/tokens.toml"))
        );
        let defaults = IndexerConfig::parse("").unwrap();
        assert_eq!(defaults.commit_interval, DEFAULT_COMMIT_INTERVAL);
        assert_eq!(defaults.split_max_docs, DEFAULT_SPLIT_MAX_DOCS);
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            (
                "[indexer]\ncommit_intervall = \"1s\"",
                "unknown field `commit_intervall`",
            ),
            ("[indexer]\ncommit_interval = \"soon\"", "indexer.commit_interval"),
            ("[indexer]\ncommit_interval = \"1ms\"", "too short"),
            ("[indexer]\nsplit_max_docs = 0", "split_max_docs"),
            ("[indexer]\nsplit_max_docs = \"many\"", "invalid type"),
            ("[indexer]\nwriter_memory_mb = 1", "out of range"),
            ("[kafka]\n\"group.id\" = [1]", "kafka.group.id"),
            ("[indexr]\n", "unknown field `indexr`"),
            ("[auth]\ntoken_file = \"x\"", "unknown field `token_file`"),
        ];
        for (text, want) in cases {
            let error = format!("{:#}", IndexerConfig::parse(text).unwrap_err());
            assert!(error.contains(want), "{text:?} gave {error:?}");
        }
    }
}
