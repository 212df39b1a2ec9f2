//! Turning what arrives into records: Kafka message values are decoded as envelopes, and
//! anything that is not one is salvaged rather than dropped (DESIGN §4.1). A message that is not
//! JSON, lacks fields or has fields of the wrong type is indexed as well as it can be and flagged
//! `invalid_envelope`; it never stops its partition.
//!
//! Also here: [`RecentIds`], the bounded set of recently indexed ids that drops re-sent records.

use std::collections::{HashSet, VecDeque};

use corral_schema::fields::{self as f, ENVELOPE_VERSION, UNKNOWN};
use corral_schema::record::id_key;
use corral_schema::{Flag, Level, LevelScale, Record, Stream, Timestamp};
use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_128;

/// Where a Kafka message came from: gives a record that has no id of its own a deterministic
/// one, so re-reading the message yields the same id.
#[derive(Debug, Clone, Copy)]
pub struct MessageOrigin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The message's timestamp, used when the payload has no usable `ts`.
    pub timestamp: Option<Timestamp>,
}

/// Why a message needed salvaging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not a JSON object at all.
    NotJson,
    /// A JSON object, but not a valid envelope (missing or mistyped fields).
    BadEnvelope,
}

impl Problem {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::NotJson => "not_json",
            Problem::BadEnvelope => "bad_envelope",
        }
    }
}

/// A decoded message: the record and the JSON stored as its `_source`.
#[derive(Debug)]
pub struct Decoded {
    pub record: Record,
    pub source: String,
    pub problem: Option<Problem>,
}

/// Decodes a Kafka message value. A valid envelope is stored verbatim (fields unknown to this
/// version are kept); anything else is rebuilt into a flagged envelope.
pub fn decode(payload: Vec<u8>, origin: MessageOrigin<'_>) -> Decoded {
    let valid = serde_json::from_slice::<Record>(&payload)
        .ok()
        .filter(|record| is_valid_id(&record.id));
    let payload = match (valid, String::from_utf8(payload)) {
        // The payload becomes the stored source without a copy.
        (Some(record), Ok(source)) => {
            return Decoded {
                record,
                source,
                problem: None,
            };
        }
        (_, Ok(text)) => text.into_bytes(),
        (_, Err(error)) => error.into_bytes(),
    };
    let (record, problem) = match serde_json::from_slice::<Value>(&payload) {
        Ok(Value::Object(object)) => (salvage(object, origin), Problem::BadEnvelope),
        _ => (unparsed(&payload, origin), Problem::NotJson),
    };
    let source = serde_json::to_string(&record).expect("a record always serializes");
    Decoded {
        record,
        source,
        problem: Some(problem),
    }
}

/// Applies the time rules every envelope goes through, whoever produced it (DESIGN §2):
/// - an implausible `ts` ([`Timestamp::is_implausible_for`] against `observed_ts`, or against
///   `now` when `observed_ts` is itself implausible) is replaced, flagged `ts_adjusted` and kept
///   in `original_ts`;
/// - `ts`/`observed_ts` written in another RFC 3339 form (`…:00Z`, `+02:00`) are rewritten in
///   corral's (UTC, nine digits), so the stored envelope says what the index holds.
///
/// corral's own envelopes pass with two substring checks and no copy. Returns true when the
/// envelope was rewritten.
pub fn normalise_times(decoded: &mut Decoded, max_future_skew: std::time::Duration, now: Timestamp) -> bool {
    let record = &mut decoded.record;
    let reference = if record.observed_ts.is_implausible_for(now, max_future_skew) {
        now
    } else {
        record.observed_ts
    };
    let adjusted = record.adjust_implausible_ts(reference, max_future_skew);
    let canonical = |key: &str, ts: Timestamp| {
        let mut needle = Vec::with_capacity(key.len() + 36);
        needle.push(b'"');
        needle.extend_from_slice(key.as_bytes());
        needle.extend_from_slice(b"\":\"");
        needle.extend_from_slice(&ts.to_rfc3339_bytes());
        needle.push(b'"');
        memchr::memmem::find(decoded.source.as_bytes(), &needle).is_some()
    };
    if !adjusted && canonical(f::TS, record.ts) && canonical(f::OBSERVED_TS, record.observed_ts) {
        return false;
    }
    // Rewrite the stored JSON itself, so keys this version does not know are kept.
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(&decoded.source) else {
        decoded.source = serde_json::to_string(record).expect("a record always serializes");
        return true;
    };
    let text = |ts: Timestamp| Value::String(ts.to_string());
    object.insert(f::TS.to_owned(), text(record.ts));
    object.insert(f::OBSERVED_TS.to_owned(), text(record.observed_ts));
    if let Some(original) = record.original_ts {
        object.insert(f::ORIGINAL_TS.to_owned(), text(original));
    }
    if !record.flags.is_empty() {
        object.insert(
            f::FLAGS.to_owned(),
            serde_json::to_value(&record.flags).expect("flags serialize"),
        );
    }
    decoded.source = Value::Object(object).to_string();
    true
}

/// A deterministic id for a message that carries none: 128-bit hash of its Kafka position.
pub fn origin_id(origin: MessageOrigin<'_>) -> String {
    let key = format!("kafka\0{}\0{}\0{}", origin.topic, origin.partition, origin.offset);
    format!("{:032x}", xxh3_128(key.as_bytes()))
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128
}

fn base_record(origin: MessageOrigin<'_>) -> Record {
    let now = Timestamp::now();
    Record {
        v: ENVELOPE_VERSION,
        id: origin_id(origin),
        ts: origin.timestamp.unwrap_or(now),
        observed_ts: now,
        service: UNKNOWN.to_owned(),
        version: UNKNOWN.to_owned(),
        instance: UNKNOWN.to_owned(),
        node: UNKNOWN.to_owned(),
        namespace: UNKNOWN.to_owned(),
        pod: UNKNOWN.to_owned(),
        container: UNKNOWN.to_owned(),
        stream: Stream::Stdout,
        level: None,
        corr: None,
        span: None,
        msg: String::new(),
        fields: Map::new(),
        flags: vec![Flag::InvalidEnvelope],
        original_ts: None,
    }
}

/// A payload that is not a JSON object: the whole payload becomes the message.
fn unparsed(payload: &[u8], origin: MessageOrigin<'_>) -> Record {
    let mut record = base_record(origin);
    record.add_flag(Flag::Unparsed);
    match String::from_utf8_lossy(payload) {
        std::borrow::Cow::Borrowed(text) => record.msg = text.to_owned(),
        std::borrow::Cow::Owned(text) => {
            record.msg = text;
            record.add_flag(Flag::InvalidUtf8);
        }
    }
    record
}

/// A JSON object that is not a valid envelope: every field that has a usable value is kept,
/// anything else unknown goes into `fields` so nothing is lost.
fn salvage(mut object: Map<String, Value>, origin: MessageOrigin<'_>) -> Record {
    let mut record = base_record(origin);
    let take_string = |object: &mut Map<String, Value>, key: &str, into: &mut String| {
        if let Some(Value::String(text)) = object.get(key)
            && !text.is_empty()
        {
            *into = text.clone();
            object.remove(key);
        }
    };
    take_string(&mut object, f::ID, &mut record.id);
    if !is_valid_id(&record.id) {
        record.id = origin_id(origin);
    }
    take_string(&mut object, f::SERVICE, &mut record.service);
    take_string(&mut object, f::VERSION, &mut record.version);
    take_string(&mut object, f::INSTANCE, &mut record.instance);
    take_string(&mut object, f::NODE, &mut record.node);
    take_string(&mut object, f::NAMESPACE, &mut record.namespace);
    take_string(&mut object, f::POD, &mut record.pod);
    take_string(&mut object, f::CONTAINER, &mut record.container);
    take_string(&mut object, f::MSG, &mut record.msg);
    if let Some(ts) = object.get(f::TS).and_then(time_of) {
        record.ts = ts;
        object.remove(f::TS);
    }
    if let Some(ts) = object.get(f::OBSERVED_TS).and_then(time_of) {
        record.observed_ts = ts;
        object.remove(f::OBSERVED_TS);
    }
    if let Some(Value::String(stream)) = object.get(f::STREAM)
        && stream == "stderr"
    {
        record.stream = Stream::Stderr;
        object.remove(f::STREAM);
    }
    match object.get(f::LEVEL) {
        Some(Value::String(name)) => record.level = Level::from_name(name, LevelScale::Pino),
        Some(Value::Number(n)) => {
            record.level = n.as_i64().and_then(|n| Level::from_number(n, LevelScale::Pino))
        }
        _ => {}
    }
    if record.level.is_some() || object.get(f::LEVEL).is_some_and(Value::is_null) {
        object.remove(f::LEVEL);
    }
    match object.remove(f::CORR) {
        Some(Value::String(corr)) if !corr.is_empty() => record.corr = Some(corr),
        Some(Value::Null) | None => {}
        Some(other) => record.corr = Some(other.to_string()),
    }
    match object.remove(f::FIELDS) {
        Some(Value::Object(fields)) => record.fields = fields,
        Some(other) => {
            object.insert(f::FIELDS.to_owned(), other);
        }
        None => {}
    }
    if let Some(Value::Array(flags)) = object.remove(f::FLAGS) {
        for flag in flags {
            if let Ok(flag) = serde_json::from_value::<Flag>(flag) {
                record.add_flag(flag);
            }
        }
    }
    object.remove(f::V);
    // Whatever is left (mistyped envelope fields, unknown keys) is kept under `fields`.
    for (key, value) in object {
        record.fields.entry(key).or_insert(value);
    }
    record
}

fn time_of(value: &Value) -> Option<Timestamp> {
    match value {
        Value::String(text) => Timestamp::parse(text),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Timestamp::from_epoch_i64(i),
            None => n.as_f64().and_then(Timestamp::from_epoch_f64),
        },
        _ => None,
    }
}

/// The ids of the most recently indexed records, at most `capacity`; older ones are forgotten
/// first. Re-sent records (collector retries, consumer rebalances) arrive close to the original,
/// so a bounded window catches them; queries dedup whatever slips past.
#[derive(Debug)]
pub struct RecentIds {
    set: HashSet<u128>,
    order: VecDeque<u128>,
    capacity: usize,
}

impl RecentIds {
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds {
            set: HashSet::with_capacity(capacity.min(1 << 20)),
            order: VecDeque::with_capacity(capacity.min(1 << 20)),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`; returns false when it was seen recently (a duplicate).
    pub fn insert(&mut self, id: &str) -> bool {
        self.insert_key(id_key(id))
    }

    /// Records an id by its key ([`id_key`]); returns false when it was seen recently.
    pub fn insert_key(&mut self, key: u128) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ORIGIN: MessageOrigin<'static> = MessageOrigin {
        topic: "corral.logs.v1",
        partition: 2,
        offset: 41,
        timestamp: None,
    };

    fn valid() -> Value {
        json!({
            "v": 1, "id": "0123456789abcdef0123456789abcdef", "ts": "2026-11-23T10:00:00.000000001Z",
            "observed_ts": "2026-11-23T10:00:00.5Z", "service": "orders", "version": "1.2.0",
            "instance": "orders-1/app", "node": "n1", "namespace": "shop", "pod": "orders-1",
            "container": "app", "stream": "stdout", "level": "info", "corr": "req-1",
            "msg": "placed", "fields": {"order": {"id": 7}}, "future_field": true
        })
    }

    #[test]
    fn a_valid_envelope_is_stored_verbatim() {
        let payload = serde_json::to_vec(&valid()).unwrap();
        let decoded = decode(payload.clone(), ORIGIN);
        assert_eq!(decoded.problem, None);
        assert_eq!(decoded.record.service, "orders");
        assert_eq!(decoded.source.as_bytes(), payload.as_slice());
    }

    #[test]
    fn bad_messages_are_salvaged_and_flagged() {
        // Not JSON, and invalid UTF-8 on top.
        let decoded = decode(b"panic: \xff boom".to_vec(), ORIGIN);
        assert_eq!(decoded.problem, Some(Problem::NotJson));
        assert_eq!(decoded.record.msg, "panic: \u{fffd} boom");
        assert_eq!(
            decoded.record.flags,
            vec![Flag::InvalidEnvelope, Flag::Unparsed, Flag::InvalidUtf8]
        );
        assert_eq!(decoded.record.id, origin_id(ORIGIN));
        assert_eq!(decoded.record.service, "unknown");
        // The stored source is a valid envelope.
        let again: Record = serde_json::from_str(&decoded.source).unwrap();
        assert_eq!(again, decoded.record);

        // Missing id and service, level as a pino number, ts as epoch millis, `fields` a string.
        let mut object = valid();
        let map = object.as_object_mut().unwrap();
        map.remove("id");
        map.remove("service");
        map.insert("level".into(), json!(50));
        map.insert("ts".into(), json!(1_795_428_900_000_i64));
        map.insert("fields".into(), json!("not an object"));
        map.insert("stream".into(), json!(7));
        let decoded = decode(serde_json::to_vec(&object).unwrap(), ORIGIN);
        assert_eq!(decoded.problem, Some(Problem::BadEnvelope));
        let record = &decoded.record;
        assert_eq!(record.id, origin_id(ORIGIN));
        assert_eq!(record.service, "unknown");
        assert_eq!(record.version, "1.2.0");
        assert_eq!(record.level, Some(Level::Error));
        assert_eq!(record.ts, Timestamp::from_epoch_i64(1_795_428_900_000).unwrap());
        assert_eq!(record.corr.as_deref(), Some("req-1"));
        assert_eq!(record.msg, "placed");
        assert_eq!(record.flags, vec![Flag::InvalidEnvelope]);
        // Nothing is lost: the mistyped values are kept under `fields`.
        assert_eq!(record.fields["fields"], json!("not an object"));
        assert_eq!(record.fields["stream"], json!(7));
        assert_eq!(record.fields["future_field"], json!(true));

        // A JSON value that is not an object.
        let decoded = decode(b"[1,2,3]".to_vec(), ORIGIN);
        assert_eq!(decoded.problem, Some(Problem::NotJson));
        assert_eq!(decoded.record.msg, "[1,2,3]");
    }

    #[test]
    fn origin_ids_are_deterministic_and_distinct() {
        let other = MessageOrigin { offset: 42, ..ORIGIN };
        assert_eq!(origin_id(ORIGIN), origin_id(ORIGIN));
        assert_ne!(origin_id(ORIGIN), origin_id(other));
        assert_eq!(origin_id(ORIGIN).len(), 32);
    }

    #[test]
    fn recent_ids_drop_repeats_within_the_window() {
        let mut ids = RecentIds::new(3);
        assert!(ids.insert("0123456789abcdef0123456789abcdef"));
        assert!(!ids.insert("0123456789abcdef0123456789abcdef"));
        assert!(ids.insert("b"));
        assert!(ids.insert("c"));
        assert!(ids.insert("d")); // forgets the first
        assert_eq!(ids.len(), 3);
        assert!(ids.insert("0123456789abcdef0123456789abcdef"));
        assert!(!ids.insert("d"));
    }
}
