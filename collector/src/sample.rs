//! Request-coherent sampling (`[[sample]]` in the collector config).
//!
//! For a service with a rule, a record is kept when a hash of its corr id falls below `keep`
//! (a fraction, 0 to 1): every record of one request is kept or dropped together, on every node
//! and by every collector, with no coordination — the hash (xxh3-64 of the corr id's bytes) has
//! no seed and no state. Records at or above `always_keep_level` are always kept, and so are
//! records without a corr id (they belong to no request that could be kept whole). Records of
//! services without a rule are all kept.

use std::collections::HashMap;

use corral_schema::{Level, Record};
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

/// A `[[sample]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSample {
    pub service: Option<String>,
    pub keep: Option<f64>,
    pub always_keep_level: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    /// Records whose corr hash is below this are kept: `keep` × 2^64.
    threshold: u128,
    always_keep: Option<Level>,
}

/// The compiled `[[sample]]` rules, by service.
#[derive(Debug, Clone, Default)]
pub struct Sampler {
    rules: HashMap<String, Rule>,
}

impl Sampler {
    /// Validates rules; errors name the rule (by service, else position).
    pub fn compile(raw: &[RawSample]) -> anyhow::Result<Sampler> {
        let mut rules = HashMap::new();
        for (index, rule) in raw.iter().enumerate() {
            let label = match &rule.service {
                Some(service) => format!("sample rule for service {service:?}"),
                None => format!("sample rule #{}", index + 1),
            };
            let service = match &rule.service {
                Some(service) if !service.is_empty() => service.clone(),
                _ => anyhow::bail!("{label}: needs a service"),
            };
            let keep = rule.keep.ok_or_else(|| {
                anyhow::anyhow!("{label}: needs keep (the fraction of requests kept, 0 to 1)")
            })?;
            if !(0.0..=1.0).contains(&keep) {
                anyhow::bail!("{label}: keep = {keep} is not a fraction from 0 to 1");
            }
            let always_keep = match &rule.always_keep_level {
                Some(level) => Some(
                    Level::parse_strict(level)
                        .map_err(|e| anyhow::anyhow!("{label}: always_keep_level: {e}"))?,
                ),
                None => None,
            };
            let threshold = (keep * (1u128 << 64) as f64) as u128;
            if rules
                .insert(
                    service,
                    Rule {
                        threshold,
                        always_keep,
                    },
                )
                .is_some()
            {
                anyhow::bail!("{label}: the service has another sample rule");
            }
        }
        Ok(Sampler { rules })
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when `record` is kept.
    pub fn keeps(&self, record: &Record) -> bool {
        let Some(rule) = self.rules.get(&record.service) else {
            return true;
        };
        if let (Some(level), Some(floor)) = (record.level, rule.always_keep)
            && level >= floor
        {
            return true;
        }
        match &record.corr {
            Some(corr) => u128::from(xxh3_64(corr.as_bytes())) < rule.threshold,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(keep: f64, level: Option<&str>) -> Sampler {
        Sampler::compile(&[RawSample {
            service: Some("api".into()),
            keep: Some(keep),
            always_keep_level: level.map(String::from),
        }])
        .unwrap()
    }

    fn record(service: &str, corr: Option<&str>, level: Option<Level>) -> Record {
        Record {
            service: service.into(),
            corr: corr.map(String::from),
            level,
            ..Record::default()
        }
    }

    #[test]
    fn a_fraction_of_requests_is_kept_whole() {
        let sampler = sampler(0.25, None);
        let mut kept = 0;
        for n in 0..10_000 {
            let corr = format!("req-{n}");
            let first = sampler.keeps(&record("api", Some(&corr), Some(Level::Info)));
            // Every record of the request gets the same answer.
            for level in [Level::Debug, Level::Info, Level::Error] {
                assert_eq!(sampler.keeps(&record("api", Some(&corr), Some(level))), first);
            }
            kept += usize::from(first);
        }
        assert!((2_300..=2_700).contains(&kept), "kept {kept} of 10,000 at 0.25");
    }

    #[test]
    fn levels_at_or_above_the_floor_uncorrelated_records_and_other_services_are_kept() {
        let sampler = sampler(0.0, Some("warn"));
        assert!(!sampler.keeps(&record("api", Some("r"), Some(Level::Info))));
        assert!(!sampler.keeps(&record("api", Some("r"), None)));
        assert!(sampler.keeps(&record("api", Some("r"), Some(Level::Warn))));
        assert!(sampler.keeps(&record("api", Some("r"), Some(Level::Fatal))));
        assert!(sampler.keeps(&record("api", None, Some(Level::Info))));
        assert!(sampler.keeps(&record("web", Some("r"), Some(Level::Info))));
        let all = super::tests::sampler(1.0, None);
        assert!(all.keeps(&record("api", Some("r"), Some(Level::Info))));
    }

    #[test]
    fn bad_rules_are_errors_naming_the_rule() {
        let cases = [
            (
                RawSample {
                    service: None,
                    keep: Some(0.5),
                    always_keep_level: None,
                },
                "sample rule #1: needs a service",
            ),
            (
                RawSample {
                    service: Some("api".into()),
                    keep: None,
                    always_keep_level: None,
                },
                "sample rule for service \"api\": needs keep",
            ),
            (
                RawSample {
                    service: Some("api".into()),
                    keep: Some(1.5),
                    always_keep_level: None,
                },
                "keep = 1.5 is not a fraction",
            ),
            (
                RawSample {
                    service: Some("api".into()),
                    keep: Some(0.5),
                    always_keep_level: Some("loud".into()),
                },
                "sample rule for service \"api\": always_keep_level: expected one of trace",
            ),
        ];
        for (raw, want) in cases {
            let error = format!("{:#}", Sampler::compile(&[raw]).unwrap_err());
            assert!(error.contains(want), "{want:?} not in {error:?}");
        }
        let twice = RawSample {
            service: Some("api".into()),
            keep: Some(0.5),
            always_keep_level: None,
        };
        let error = format!("{:#}", Sampler::compile(&[twice.clone(), twice]).unwrap_err());
        assert!(error.contains("another sample rule"), "{error}");
    }
}
