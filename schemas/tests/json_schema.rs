//! The published JSON Schema (`schemas/record.v1.schema.json`) describes exactly what the Rust
//! types serialize: real records validate, broken ones are rejected.

use corral_schema::{Flag, Level, Record, Stream, Timestamp, fields};
use serde_json::{Value, json};

fn validator() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(corral_schema::RECORD_V1_JSON_SCHEMA).expect("schema file is JSON");
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn records() -> Vec<Record> {
    let base = Record {
        id: "9f86d081884c7d659a2feaa0c55ad015".into(),
        ts: Timestamp::parse("2026-11-23T10:15:00.5Z").unwrap(),
        observed_ts: Timestamp::parse("2026-11-23T10:15:00.6Z").unwrap(),
        service: "orders".into(),
        version: "1.4.2".into(),
        instance: "orders-5c7d8f9b6-abcde/app".into(),
        node: "node-1".into(),
        namespace: "shop".into(),
        pod: "orders-5c7d8f9b6-abcde".into(),
        container: "app".into(),
        stream: Stream::Stdout,
        level: Some(Level::Info),
        corr: Some("req-1".into()),
        msg: "order created".into(),
        fields: json!({"order": {"id": 17, "items": [1, 2]}, "duration_ms": 12.5})
            .as_object()
            .unwrap()
            .clone(),
        ..Record::default()
    };
    vec![
        base.clone(),
        Record {
            level: None,
            corr: None,
            fields: Default::default(),
            ..base.clone()
        },
        Record {
            msg: "panic: runtime error: index out of range \u{fffd}".into(),
            stream: Stream::Stderr,
            flags: vec![
                Flag::Unparsed,
                Flag::InvalidUtf8,
                Flag::Truncated,
                Flag::PartialMerged,
            ],
            ..base.clone()
        },
        Record {
            service: fields::UNKNOWN.into(),
            version: fields::UNKNOWN.into(),
            ..base
        },
    ]
}

#[test]
fn serialized_records_validate() {
    let validator = validator();
    for record in records() {
        let value = serde_json::to_value(&record).unwrap();
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "record {value} is invalid: {errors:?}");
    }
}

/// Producers other than corral write RFC 3339 with fewer digits and offsets; the schema says
/// what the indexer accepts (tests/…/kafka_ingest.rs feeds the same forms to the real indexer).
#[test]
fn timestamps_of_other_producers_validate() {
    let validator = validator();
    let good = serde_json::to_value(&records()[0]).unwrap();
    for ts in [
        "2026-11-23T10:15:00Z",
        "2026-11-23T10:15:00.5Z",
        "2026-11-23T12:15:00+02:00",
        "2026-11-23T05:15:00.123-05:00",
        "2026-11-23t10:15:00.123456789z",
    ] {
        let mut value = good.clone();
        value[fields::TS] = json!(ts);
        value[fields::OBSERVED_TS] = json!(ts);
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{ts}: {errors:?}");
    }
    let mut adjusted = good.clone();
    adjusted[fields::FLAGS] = json!(["ts_adjusted"]);
    adjusted[fields::ORIGINAL_TS] = json!("2200-01-01T00:00:00.000000000Z");
    assert!(validator.is_valid(&adjusted), "{adjusted}");
    let mut spanned = good.clone();
    spanned[fields::SPAN] = json!("00f067aa0ba902b7");
    spanned[fields::FLAGS] = json!(["redacted", "fields_capped"]);
    assert!(validator.is_valid(&spanned), "{spanned}");
}

#[test]
fn broken_records_are_rejected() {
    let validator = validator();
    let good = serde_json::to_value(&records()[0]).unwrap();
    assert!(validator.is_valid(&good));

    let mut cases: Vec<(&str, Value)> = Vec::new();
    for missing in [
        fields::ID,
        fields::TS,
        fields::SERVICE,
        fields::LEVEL,
        fields::FIELDS,
    ] {
        let mut value = good.clone();
        value.as_object_mut().unwrap().remove(missing);
        cases.push((missing, value));
    }
    let mut edit = |what: &'static str, key: &str, new: Value| {
        let mut value = good.clone();
        value[key] = new;
        cases.push((what, value));
    };
    edit("level WARNING", fields::LEVEL, json!("WARNING"));
    edit("level number", fields::LEVEL, json!(40));
    edit(
        "id not hex",
        fields::ID,
        json!("not-a-hex-id-not-a-hex-id-000000"),
    );
    edit("id short", fields::ID, json!("abc"));
    edit("ts without a zone", fields::TS, json!("2026-11-23T10:15:00"));
    edit(
        "ts with ten fraction digits",
        fields::TS,
        json!("2026-11-23T10:15:00.1234567891Z"),
    );
    edit("ts epoch", fields::TS, json!("1795428900"));
    edit("original_ts not a time", fields::ORIGINAL_TS, json!("2200"));
    edit("service empty", fields::SERVICE, json!(""));
    edit("stream", fields::STREAM, json!("stdin"));
    edit("flags empty", fields::FLAGS, json!([]));
    edit("flags unknown", fields::FLAGS, json!(["mangled"]));
    edit("v2", fields::V, json!(2));
    edit("fields array", fields::FIELDS, json!([1]));
    edit("unknown field", "extra", json!(1));
    edit("span empty", fields::SPAN, json!(""));
    edit("span null", fields::SPAN, json!(null));

    for (what, value) in cases {
        assert!(!validator.is_valid(&value), "{what}: {value} should be rejected");
    }
}
