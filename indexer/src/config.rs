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
//! max_query_bytes = 8192       # longest q (searches, holds, keep rules)
//! max_query_depth = 32         # deepest nesting of parentheses and NOT/+/- in a q
//! max_limit = 10000            # most hits one search answers; more are paged with `after`
//! max_tails = 64               # concurrent /api/v1/tail streams; more get 429
//! tail_buffer_bytes = 4194304  # a tail whose client stops reading is closed past this
//! max_future_skew = "15m"      # a ts this far after observed_ts is indexed at observed_ts
//! catalog_refresh = "5s"       # with an object store: how often its published splits are listed
//! janitor_lease = "30s"        # with an object store: a dead retention janitor is replaced after this
//! peer_timeout = "5s"          # a peer that does not answer a query by then is named in `missing`
//! cache_max_bytes = 8589934592 # with an object store: other indexers' splits kept on local disk
//! min_free_bytes = 268435456   # below this much free space on the data dir, ingest pauses
//! max_indexed_field_paths = 1000 # distinct fields.* paths one split indexes; the rest stored only
//! [auth]
//! tokens_file = "/etc/corral/auth/tokens.toml"   # [[token]] name, token, role (see `auth`)
//! [retention]
//! check_interval = "5m"
//! [[retention.tiers]]          # in order; a sealed split moves on when its newest record is older than max_age
//! name = "hot"
//! max_age = "7d"
//! [[retention.tiers]]
//! name = "archive"
//! max_age = "400d"             # after the last tier: deleted, except what keep rules and holds protect
//! # storage = "s3://cold/corral"   # this tier's own object store (with --storage s3://… too)
//! [[retention.keep]]           # any of service, namespace, level (minimum), q; plus max_age
//! service = "payments"
//! max_age = "7y"
//! ```
//! Unknown keys are rejected with the key's name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use corral_schema::Level;
use corral_schema::api::Selector;
use corral_schema::duration::parse_duration;
use serde::Deserialize;

use crate::limits::QueryLimits;
use crate::query::QueryEngine;
use crate::retention::{KeepRule, RetentionConfig, Tier};
use crate::store::{Catalog, HOT_TIER};

/// Default for `commit_interval`.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Default for `split_max_docs`.
pub const DEFAULT_SPLIT_MAX_DOCS: u64 = 5_000_000;
/// Default for `split_max_age`.
pub const DEFAULT_SPLIT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Default for `writer_memory_mb`.
pub const DEFAULT_WRITER_MEMORY_MB: usize = 128;
/// Default for `max_tails`.
pub const DEFAULT_MAX_TAILS: usize = 64;
/// Default for `tail_buffer_bytes`.
pub const DEFAULT_TAIL_BUFFER_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    kafka: BTreeMap<String, toml::Value>,
    indexer: Option<RawIndexer>,
    auth: Option<RawAuth>,
    retention: Option<RawRetention>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    check_interval: Option<String>,
    #[serde(default)]
    tiers: Vec<RawTier>,
    #[serde(default)]
    keep: Vec<RawKeep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    name: String,
    max_age: String,
    zstd_level: Option<i64>,
    storage: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeep {
    service: Option<String>,
    namespace: Option<String>,
    level: Option<String>,
    q: Option<String>,
    max_age: String,
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
    max_query_bytes: Option<usize>,
    max_query_depth: Option<usize>,
    max_limit: Option<usize>,
    max_tails: Option<usize>,
    tail_buffer_bytes: Option<usize>,
    max_future_skew: Option<String>,
    catalog_refresh: Option<String>,
    janitor_lease: Option<String>,
    peer_timeout: Option<String>,
    cache_max_bytes: Option<u64>,
    min_free_bytes: Option<u64>,
    max_indexed_field_paths: Option<usize>,
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
    /// Query length, nesting and page size bounds.
    pub limits: QueryLimits,
    /// Concurrent tail streams served; more are refused with 429.
    pub max_tails: usize,
    /// Bytes a tail may have waiting for its client before it is closed.
    pub tail_buffer_bytes: usize,
    /// How far after `observed_ts` a record's `ts` may be before it is indexed at `observed_ts`.
    pub max_future_skew: Duration,
    /// How often the published catalog of an object store is listed.
    pub catalog_refresh: Duration,
    /// How long the retention janitor's lease lasts unrenewed (it renews every quarter of it).
    pub janitor_lease: Duration,
    /// How long a root waits for a peer's share of a query.
    pub peer_timeout: Duration,
    /// Bytes of other indexers' published splits kept on local disk (the least recently
    /// searched go first).
    pub cache_max_bytes: u64,
    /// Free space the data dir's filesystem keeps; below it ingest pauses until space returns.
    pub min_free_bytes: u64,
    /// Distinct `fields.*` paths one split indexes ([`crate::field_cap`]).
    pub max_indexed_field_paths: usize,
    /// API tokens and roles; without it the API is open (and loopback-only unless forced).
    pub tokens_file: Option<PathBuf>,
    /// Tiers and keep rules; without a `[retention]` section nothing is ever moved or deleted.
    pub retention: Option<RetentionConfig>,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            kafka: BTreeMap::new(),
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            split_max_docs: DEFAULT_SPLIT_MAX_DOCS,
            split_max_age: DEFAULT_SPLIT_MAX_AGE,
            writer_memory_mb: DEFAULT_WRITER_MEMORY_MB,
            limits: QueryLimits::default(),
            max_tails: DEFAULT_MAX_TAILS,
            tail_buffer_bytes: DEFAULT_TAIL_BUFFER_BYTES,
            max_future_skew: corral_schema::DEFAULT_MAX_FUTURE_SKEW,
            max_indexed_field_paths: crate::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
            catalog_refresh: Duration::from_secs(5),
            janitor_lease: Duration::from_secs(30),
            peer_timeout: crate::peers::DEFAULT_PEER_TIMEOUT,
            cache_max_bytes: crate::cache::DEFAULT_CACHE_MAX_BYTES,
            min_free_bytes: crate::disk::DEFAULT_MIN_FREE_BYTES,
            tokens_file: None,
            retention: None,
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
        let bounded = |key: &str, value: Option<usize>, range: std::ops::RangeInclusive<usize>| match value {
            Some(n) if !range.contains(&n) => Err(anyhow::anyhow!(
                "indexer.{key} = {n} is out of range: use {} to {}",
                range.start(),
                range.end()
            )),
            other => Ok(other),
        };
        if let Some(n) = bounded("max_query_bytes", indexer.max_query_bytes, 64..=1 << 20)? {
            config.limits.max_query_bytes = n;
        }
        if let Some(n) = bounded("max_query_depth", indexer.max_query_depth, 1..=256)? {
            config.limits.max_query_depth = n;
        }
        if let Some(n) = bounded("max_limit", indexer.max_limit, 1..=1_000_000)? {
            config.limits.max_limit = n;
        }
        if let Some(n) = bounded(
            "max_indexed_field_paths",
            indexer.max_indexed_field_paths,
            1..=100_000,
        )? {
            config.max_indexed_field_paths = n;
        }
        if let Some(n) = bounded("max_tails", indexer.max_tails, 1..=100_000)? {
            config.max_tails = n;
        }
        if let Some(n) = bounded("tail_buffer_bytes", indexer.tail_buffer_bytes, 4096..=1 << 30)? {
            config.tail_buffer_bytes = n;
        }
        if let Some(min_free) = indexer.min_free_bytes {
            config.min_free_bytes = min_free;
        }
        if let Some(every) = indexer.catalog_refresh {
            config.catalog_refresh = parse_duration(&every).context("indexer.catalog_refresh")?;
            if config.catalog_refresh.is_zero() {
                bail!("indexer.catalog_refresh must be more than 0");
            }
        }
        if let Some(lease) = indexer.janitor_lease {
            config.janitor_lease = parse_duration(&lease).context("indexer.janitor_lease")?;
            if config.janitor_lease < Duration::from_secs(2) {
                bail!("indexer.janitor_lease must be at least 2s (it is renewed every quarter of it)");
            }
        }
        if let Some(timeout) = indexer.peer_timeout {
            config.peer_timeout = parse_duration(&timeout).context("indexer.peer_timeout")?;
            if config.peer_timeout.is_zero() {
                bail!("indexer.peer_timeout must be more than 0");
            }
        }
        if let Some(max) = indexer.cache_max_bytes {
            config.cache_max_bytes = max;
        }
        if let Some(skew) = indexer.max_future_skew {
            config.max_future_skew = parse_duration(&skew).context("indexer.max_future_skew")?;
        }
        config.tokens_file = raw.auth.and_then(|auth| auth.tokens_file);
        config.retention = raw
            .retention
            .map(|retention| parse_retention(retention, config.limits))
            .transpose()?;
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

/// Default for `retention.check_interval`.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(300);

fn parse_retention(raw: RawRetention, limits: QueryLimits) -> anyhow::Result<RetentionConfig> {
    let check_interval = match raw.check_interval {
        Some(text) => parse_duration(&text).context("retention.check_interval")?,
        None => DEFAULT_CHECK_INTERVAL,
    };
    if check_interval < Duration::from_secs(1) {
        bail!("retention.check_interval must be at least 1s");
    }
    if raw.tiers.is_empty() {
        bail!("retention.tiers is empty: give at least the {HOT_TIER:?} tier and its max_age");
    }
    let mut tiers: Vec<Tier> = Vec::new();
    for (n, tier) in raw.tiers.into_iter().enumerate() {
        let max_age = parse_duration(&tier.max_age)
            .with_context(|| format!("retention.tiers[{n}] ({}).max_age", tier.name))?;
        if n == 0 && tier.name != HOT_TIER {
            bail!(
                "retention.tiers[0] is {:?}: the first tier must be {HOT_TIER:?}, where splits are sealed",
                tier.name
            );
        }
        if tier.name.is_empty()
            || !tier
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "retention.tiers[{n}].name = {:?}: use letters, digits, - and _",
                tier.name
            );
        }
        if tiers.iter().any(|t| t.name == tier.name) {
            bail!("retention.tiers: {:?} is listed twice", tier.name);
        }
        if let Some(before) = tiers.last()
            && max_age <= before.max_age
        {
            bail!(
                "retention.tiers[{n}] ({}).max_age = {:?} must be longer than {}'s, since a split only moves on",
                tier.name,
                tier.max_age,
                before.name
            );
        }
        let zstd_level = match tier.zstd_level {
            None => None,
            Some(_) if n == 0 => bail!(
                "retention.tiers[0] (hot).zstd_level: the hot tier's docstore is lz4 (fast to write); the level applies to later tiers"
            ),
            Some(level @ 1..=22) => Some(level as i32),
            Some(level) => bail!(
                "retention.tiers[{n}] ({}).zstd_level = {level}: zstd levels are 1 to 22",
                tier.name
            ),
        };
        let storage = match tier.storage {
            None => None,
            Some(_) if n == 0 => bail!(
                "retention.tiers[0] (hot).storage: sealed splits start in the hot tier, which is published to --storage; a storage applies to later tiers"
            ),
            Some(url) => match url.parse::<crate::storage::StorageUrl>() {
                Ok(url @ crate::storage::StorageUrl::S3 { .. }) => Some(url),
                Ok(_) => bail!(
                    "retention.tiers[{n}] ({}).storage = {url:?}: a tier's own storage is an object store (s3://bucket/prefix)",
                    tier.name
                ),
                Err(error) => bail!("retention.tiers[{n}] ({}).storage: {error}", tier.name),
            },
        };
        tiers.push(Tier {
            name: tier.name,
            max_age,
            zstd_level,
            storage,
        });
    }
    let mut keep = Vec::new();
    for (n, rule) in raw.keep.into_iter().enumerate() {
        let max_age =
            parse_duration(&rule.max_age).with_context(|| format!("retention.keep[{n}].max_age"))?;
        let level = match rule.level {
            Some(name) => Some(
                Level::parse_strict(&name)
                    .map_err(|error| anyhow::anyhow!("retention.keep[{n}].level = {name:?}: {error}"))?,
            ),
            None => None,
        };
        if rule.service.is_none() && rule.namespace.is_none() && level.is_none() && rule.q.is_none() {
            bail!("retention.keep[{n}] selects nothing: give at least one of service, namespace, level, q");
        }
        // A rule that cannot be evaluated would fail every retention pass: refuse it now.
        if let Some(q) = &rule.q {
            QueryEngine::with_limits(Arc::new(Catalog::new()), limits)
                .check_query(q)
                .map_err(|e| anyhow::anyhow!("retention.keep[{n}].{}", e.0))?;
        }
        keep.push(KeepRule {
            selector: Selector {
                service: rule.service,
                level,
                q: rule.q,
                ..Selector::default()
            },
            namespace: rule.namespace,
            max_age,
        });
    }
    Ok(RetentionConfig {
        check_interval,
        tiers,
        keep,
    })
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
            max_query_bytes = 1024
            max_query_depth = 8
            max_limit = 500
            max_tails = 2
            tail_buffer_bytes = 65536
            max_future_skew = "1h"
            cache_max_bytes = 1048576
            [auth]
            tokens_file = "/etc/corral/auth/tokens.toml"
            "#,
        )
        .unwrap();
        assert_eq!(config.cache_max_bytes, 1 << 20);
        assert_eq!(config.kafka["fetch.max.bytes"], "52428800");
        assert_eq!(config.kafka["session.timeout.ms"], "6000");
        assert_eq!(config.commit_interval, Duration::from_millis(500));
        assert_eq!(config.split_max_docs, 1000);
        assert_eq!(config.split_max_age, Duration::from_secs(900));
        assert_eq!(config.writer_memory_mb, 64);
        assert_eq!(
            config.limits,
            QueryLimits {
                max_query_bytes: 1024,
                max_query_depth: 8,
                max_limit: 500
            }
        );
        assert_eq!(config.max_tails, 2);
        assert_eq!(config.tail_buffer_bytes, 65536);
        assert_eq!(config.max_future_skew, Duration::from_secs(3600));
        assert_eq!(
            config.tokens_file,
            Some(PathBuf::from("/etc/corral/auth/tokens.toml"))
        );
        assert_eq!(config.retention, None);
        let defaults = IndexerConfig::parse("").unwrap();
        assert_eq!(defaults.commit_interval, DEFAULT_COMMIT_INTERVAL);
        assert_eq!(defaults.split_max_docs, DEFAULT_SPLIT_MAX_DOCS);
    }

    #[test]
    fn retention_tiers_and_keep_rules() {
        let config = IndexerConfig::parse(
            r#"
            [retention]
            check_interval = "90s"
            [[retention.tiers]]
            name = "hot"
            max_age = "36h"
            [[retention.tiers]]
            name = "archive"
            max_age = "1y"
            zstd_level = 11
            storage = "s3://cold/corral"
            [[retention.keep]]
            service = "payments"
            level = "WARN"
            max_age = "7y"
            "#,
        )
        .unwrap();
        let retention = config.retention.unwrap();
        assert_eq!(retention.check_interval, Duration::from_secs(90));
        assert_eq!(
            retention.tiers,
            vec![
                Tier {
                    name: "hot".into(),
                    max_age: Duration::from_secs(36 * 3600),
                    zstd_level: None,
                    storage: None,
                },
                Tier {
                    name: "archive".into(),
                    max_age: Duration::from_secs(365 * 86_400),
                    zstd_level: Some(11),
                    storage: Some(crate::storage::StorageUrl::S3 {
                        bucket: "cold".into(),
                        prefix: "corral".into(),
                    }),
                },
            ]
        );
        assert_eq!(
            retention.keep,
            vec![KeepRule {
                selector: Selector {
                    service: Some("payments".into()),
                    level: Some(Level::Warn),
                    ..Selector::default()
                },
                namespace: None,
                max_age: Duration::from_secs(7 * 365 * 86_400),
            }]
        );
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
            (
                "[indexer]\nmax_limit = 0",
                "indexer.max_limit = 0 is out of range",
            ),
            (
                "[indexer]\nmax_query_depth = 1000",
                "indexer.max_query_depth = 1000 is out of range",
            ),
            (
                "[indexer]\nmax_future_skew = \"later\"",
                "indexer.max_future_skew",
            ),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.keep]]\nq = \"((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))\"\nmax_age = \"1y\"",
                "retention.keep[0].q nests 34 levels deep",
            ),
            ("[kafka]\n\"group.id\" = [1]", "kafka.group.id"),
            ("[indexr]\n", "unknown field `indexr`"),
            ("[auth]\ntoken_file = \"x\"", "unknown field `token_file`"),
            ("[retention]\n", "retention.tiers is empty"),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\nstorage = \"s3://cold/corral\"",
                "retention.tiers[0] (hot).storage",
            ),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.tiers]]\nname = \"archive\"\nmax_age = \"1y\"\nstorage = \"file:///cold\"",
                "retention.tiers[1] (archive).storage = \"file:///cold\": a tier's own storage is an object store",
            ),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.tiers]]\nname = \"archive\"\nmax_age = \"1y\"\nstorage = \"cold\"",
                "retention.tiers[1] (archive).storage",
            ),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.tiers]]\nname = \"archive\"\nmax_age = \"1d\"",
                "must be longer than hot's",
            ),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.tiers]]\nname = \"hot\"\nmax_age = \"9d\"",
                "\"hot\" is listed twice",
            ),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.keep]]\nlevel = \"loud\"\nmax_age = \"1y\"",
                "retention.keep[0].level = \"loud\"",
            ),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.keep]]\nq = \"(\"\nmax_age = \"1y\"",
                "retention.keep[0].q: cannot parse \"(\"",
            ),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\nzstd_level = 3",
                "the hot tier's docstore is lz4",
            ),
            (
                "[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"\n[[retention.tiers]]\nname = \"cold\"\nmax_age = \"9d\"\nzstd_level = 30",
                "retention.tiers[1] (cold).zstd_level = 30: zstd levels are 1 to 22",
            ),
            (
                "[retention]\ncheck_interval = \"10ms\"\n[[retention.tiers]]\nname = \"hot\"\nmax_age = \"7d\"",
                "at least 1s",
            ),
        ];
        for (text, want) in cases {
            let error = format!("{:#}", IndexerConfig::parse(text).unwrap_err());
            assert!(error.contains(want), "{text:?} gave {error:?}");
        }
    }
}
