//! Records for tests: one complete, valid envelope per number, so a test spells out only the
//! fields it is about (`Record { service: "payments".into(), ..record(n) }`).

use corral_schema::fields::ENVELOPE_VERSION;
use corral_schema::{Level, Record, Stream, Timestamp};

/// The event time of [`record`]`(0)`.
pub const BASE_TS: &str = "2026-11-23T10:00:00Z";

/// Parses an RFC 3339 timestamp.
///
/// # Panics
/// When `text` is not one.
pub fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap_or_else(|| panic!("{text:?} is not an RFC 3339 timestamp"))
}

/// Returns record `n` of a deterministic stream: id `n` as 32 hex digits, `ts` [`BASE_TS`] + `n`
/// ms (so records sort by `n`), observed a second after [`BASE_TS`], an info line `record {n}`
/// of `orders` (pod `orders-0`, container `app`, stdout) with correlation id `req-{n / 10}`
/// and no fields or flags.
pub fn record(n: u64) -> Record {
    record_of("orders", n)
}

/// Returns [`record`]`(n)` as `service` logs it: instance `{service}-0/app`, pod `{service}-0`.
pub fn record_of(service: &str, n: u64) -> Record {
    Record {
        v: ENVELOPE_VERSION,
        id: format!("{n:032x}"),
        ts: at(BASE_TS).saturating_add_nanos(n as i64 * 1_000_000),
        observed_ts: at(BASE_TS).saturating_add_nanos(1_000_000_000),
        service: service.into(),
        version: "1.0.0".into(),
        instance: format!("{service}-0/app"),
        node: "node-1".into(),
        namespace: "shop".into(),
        pod: format!("{service}-0"),
        container: "app".into(),
        stream: Stream::Stdout,
        level: Some(Level::Info),
        corr: Some(format!("req-{}", n / 10)),
        span: None,
        msg: format!("record {n}"),
        fields: Default::default(),
        flags: Vec::new(),
        original_ts: None,
    }
}
