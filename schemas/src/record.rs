//! The record envelope v1 (DESIGN §2): one log line becomes one [`Record`].
//!
//! Serialization follows the published JSON Schema (`schemas/record.v1.schema.json`): `level`
//! and `corr` are always present (null when unknown), `flags` is omitted when empty. Readers
//! ignore fields they do not know, so later minor additions do not break old readers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fields::ENVELOPE_VERSION;
use crate::{Level, Timestamp};

/// One log line, parsed and stamped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Envelope version, [`ENVELOPE_VERSION`].
    pub v: u32,
    /// Deterministic id: a 128-bit hash of (node, file identity, byte offset), 32 lowercase hex.
    pub id: String,
    /// Event time: the application's own timestamp if it has one, else the runtime's.
    pub ts: Timestamp,
    /// When the collector read the line.
    pub observed_ts: Timestamp,
    pub service: String,
    pub version: String,
    pub instance: String,
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub stream: Stream,
    /// Normalised level; `None` when the line carries none.
    #[serde(default)]
    pub level: Option<Level>,
    /// Correlation id; `None` when the line carries none.
    #[serde(default)]
    pub corr: Option<String>,
    /// Span id within the trace `corr` names (W3C `traceparent`, OpenTelemetry `span_id`);
    /// omitted when the line carries none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<String>,
    /// The message; for a line that is not a JSON object, the whole line.
    pub msg: String,
    /// Every other key of the application's JSON object, nested as it came.
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// What happened to the line on its way in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Flag>,
    /// With flag `ts_adjusted`: the line's own timestamp, which was implausible
    /// ([`Timestamp::is_implausible_for`]) and replaced by `observed_ts` in `ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_ts: Option<Timestamp>,
}

impl Record {
    /// Returns the Kafka message key: the correlation id when present, else the instance, so
    /// one request's records (or one instance's) stay in order on one partition.
    pub fn kafka_key(&self) -> &str {
        self.corr.as_deref().unwrap_or(&self.instance)
    }

    /// Returns true when the record carries `flag`.
    pub fn has_flag(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }

    /// Moves an implausible `ts` (see [`Timestamp::is_implausible_for`]) to `original_ts`,
    /// indexes the record at `reference` instead and flags it `ts_adjusted`. Returns true when it
    /// did.
    pub fn adjust_implausible_ts(
        &mut self,
        reference: Timestamp,
        max_future_skew: std::time::Duration,
    ) -> bool {
        if !self.ts.is_implausible_for(reference, max_future_skew) {
            return false;
        }
        self.original_ts.get_or_insert(self.ts);
        self.ts = reference;
        self.add_flag(Flag::TsAdjusted);
        true
    }

    /// Adds `flag` unless the record already has it.
    pub fn add_flag(&mut self, flag: Flag) {
        if !self.has_flag(flag) {
            self.flags.push(flag);
        }
    }
}

/// The 128-bit key of a record id: a 32-hex id (all the collector writes) is its own key;
/// anything else is hashed (xxh3-128). The index stores ids as this key, and duplicate filters
/// compare it.
pub fn id_key(id: &str) -> u128 {
    if id.len() == 32
        && let Ok(key) = u128::from_str_radix(id, 16)
    {
        return key;
    }
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

impl Default for Record {
    /// An empty record of the current envelope version, for builders and tests.
    fn default() -> Self {
        Record {
            v: ENVELOPE_VERSION,
            id: String::new(),
            ts: Timestamp::EPOCH,
            observed_ts: Timestamp::EPOCH,
            service: String::new(),
            version: String::new(),
            instance: String::new(),
            node: String::new(),
            namespace: String::new(),
            pod: String::new(),
            container: String::new(),
            stream: Stream::Stdout,
            level: None,
            corr: None,
            span: None,
            msg: String::new(),
            fields: Map::new(),
            flags: Vec::new(),
            original_ts: None,
        }
    }
}

/// The container stream a line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// Returns `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Something that happened to a line on its way into a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The content was not a JSON object; `msg` holds the whole line.
    Unparsed,
    /// The line was longer than `max_line_bytes` and was cut.
    Truncated,
    /// The line held invalid UTF-8, repaired lossily.
    InvalidUtf8,
    /// The line was merged from runtime partial chunks (CRI `P`, docker lines without `\n`).
    PartialMerged,
    /// The indexer received something that was not a valid envelope (not JSON, missing or
    /// mistyped fields); it kept what it could and put the raw payload in `msg`.
    InvalidEnvelope,
    /// The line's own timestamp was implausible (far in the future, or before 1970-01-02):
    /// `ts` is `observed_ts` and the original is in `original_ts`.
    TsAdjusted,
    /// A `[[redact]]` rule of the collector masked, hashed or dropped part of the record.
    Redacted,
    /// The record held `fields.*` paths beyond its split's `max_indexed_field_paths`: stored
    /// whole, but those paths are not searchable.
    FieldsCapped,
}

impl Flag {
    /// Returns the envelope spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Unparsed => "unparsed",
            Flag::Truncated => "truncated",
            Flag::InvalidUtf8 => "invalid_utf8",
            Flag::PartialMerged => "partial_merged",
            Flag::InvalidEnvelope => "invalid_envelope",
            Flag::TsAdjusted => "ts_adjusted",
            Flag::Redacted => "redacted",
            Flag::FieldsCapped => "fields_capped",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::fields;

    /// A record with every field set, as the collector would produce for a zap line.
    pub(crate) fn sample() -> Record {
        Record {
            id: "0123456789abcdef0123456789abcdef".into(),
            ts: Timestamp::parse("2026-11-23T10:15:00.123456789Z").unwrap(),
            observed_ts: Timestamp::parse("2026-11-23T10:15:00.200000000Z").unwrap(),
            service: "checkout".into(),
            version: "2.1.0".into(),
            instance: "checkout-7d9f8b6c4-x2k9p/app".into(),
            node: "node-a".into(),
            namespace: "shop".into(),
            pod: "checkout-7d9f8b6c4-x2k9p".into(),
            container: "app".into(),
            stream: Stream::Stderr,
            level: Some(Level::Error),
            corr: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            msg: "payment declined".into(),
            fields: json!({"http": {"method": "POST", "status": 402}, "user": {"id": 42}})
                .as_object()
                .unwrap()
                .clone(),
            flags: vec![Flag::PartialMerged],
            ..Record::default()
        }
    }

    #[test]
    fn serializes_with_the_envelope_field_names() {
        let value = serde_json::to_value(sample()).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want: Vec<&str> = fields::ALL.to_vec();
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(value["ts"], "2026-11-23T10:15:00.123456789Z");
        assert_eq!(value["level"], "error");
        assert_eq!(value["stream"], "stderr");
        assert_eq!(value["flags"], json!(["partial_merged"]));
    }

    #[test]
    fn empty_flags_are_omitted_and_nulls_kept() {
        let record = Record {
            level: None,
            corr: None,
            flags: vec![],
            ..sample()
        };
        let value = serde_json::to_value(&record).unwrap();
        assert!(value.get("flags").is_none());
        assert_eq!(value["level"], Value::Null);
        assert_eq!(value["corr"], Value::Null);
        assert_eq!(record.kafka_key(), "checkout-7d9f8b6c4-x2k9p/app");
        assert_eq!(sample().kafka_key(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn round_trips_and_ignores_unknown_fields() {
        let record = sample();
        let mut value = serde_json::to_value(&record).unwrap();
        value["added_in_v1_1"] = json!({"anything": true});
        let back: Record = serde_json::from_value(value).unwrap();
        assert_eq!(back, record);
    }
}
