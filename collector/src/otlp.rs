//! OpenTelemetry OTLP/JSON `LogRecord`s (`timeUnixNano`, `severityText`/`severityNumber`,
//! `body` and `attributes` as `AnyValue`s): recognised by their keys and turned into the plain
//! object [`crate::app_json`] reads, so `body.stringValue` is the message and attributes are
//! ordinary fields. The ts, level and corr keys themselves are in `KeyConfig`.

use serde_json::{Map, Value};

/// OpenTelemetry's numeric level key (1-4 trace … 21-24 fatal).
pub(crate) const OTLP_SEVERITY_NUMBER: &str = "severityNumber";
/// Keys that only an OpenTelemetry OTLP/JSON `LogRecord` carries: their presence makes `body`
/// and `attributes` be read as OTLP `AnyValue`s.
const MARKERS: [&str; 4] = [
    "timeUnixNano",
    "observedTimeUnixNano",
    "severityText",
    OTLP_SEVERITY_NUMBER,
];
/// The variants of an OTLP `AnyValue` (`{"stringValue":"…"}`, …).
const ANY_VALUE_KEYS: [&str; 7] = [
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "bytesValue",
    "arrayValue",
    "kvlistValue",
];

/// True when `map` has a key only an OTLP `LogRecord` carries.
pub(crate) fn is_log_record(map: &Map<String, Value>) -> bool {
    MARKERS.iter().any(|key| map.contains_key(*key))
}

/// Turns an OpenTelemetry OTLP/JSON `LogRecord`'s `body` (an `AnyValue`) into the plain value
/// it holds and its `attributes` (a `[{"key":…,"value":AnyValue}]` list) into a plain object, so
/// `body.stringValue` becomes the message and attributes are ordinary fields. Anything not of
/// those shapes is left as it is.
pub(crate) fn unwrap_log_record(map: &mut Map<String, Value>) {
    if let Some(body) = map.get_mut("body") {
        let value = std::mem::take(body);
        *body = any_value(value).unwrap_or_else(|value| value);
    }
    if let Some(attributes) = map.get_mut("attributes") {
        let value = std::mem::take(attributes);
        *attributes = key_values(value).unwrap_or_else(|value| value);
    }
}

/// Returns the plain value of an OTLP `AnyValue` (`intValue`, a string in OTLP/JSON, becomes a
/// number), or the value unchanged (`Err`) when it is no `AnyValue`.
fn any_value(value: Value) -> Result<Value, Value> {
    let Value::Object(mut object) = value else {
        return Err(value);
    };
    let variant = match object.keys().next() {
        Some(key) if object.len() == 1 && ANY_VALUE_KEYS.contains(&key.as_str()) => key.clone(),
        _ => return Err(Value::Object(object)),
    };
    let inner = object.remove(&variant).unwrap_or_default();
    Ok(match (variant.as_str(), inner) {
        ("intValue", Value::String(text)) => match text.parse::<i64>() {
            Ok(int) => Value::from(int),
            Err(_) => Value::String(text),
        },
        ("arrayValue", Value::Object(mut array)) => match array.remove("values") {
            Some(Value::Array(values)) => Value::Array(
                values
                    .into_iter()
                    .map(|v| any_value(v).unwrap_or_else(|v| v))
                    .collect(),
            ),
            None => Value::Array(Vec::new()),
            Some(other) => {
                array.insert("values".to_owned(), other);
                Value::Object(array)
            }
        },
        ("kvlistValue", Value::Object(mut list)) => match list.remove("values") {
            Some(values) => key_values(values).unwrap_or_else(|values| {
                list.insert("values".to_owned(), values);
                Value::Object(list)
            }),
            None => Value::Object(Map::new()),
        },
        (_, inner) => inner,
    })
}

/// Turns an OTLP `[{"key":…,"value":AnyValue}]` list into an object, or returns the value
/// unchanged (`Err`) when it is not such a list.
fn key_values(value: Value) -> Result<Value, Value> {
    let shaped = value.as_array().is_some_and(|items| {
        items.iter().all(|item| {
            item.as_object().is_some_and(|kv| {
                kv.get("key").is_some_and(Value::is_string) && kv.keys().all(|k| k == "key" || k == "value")
            })
        })
    });
    if !shaped {
        return Err(value);
    }
    let Value::Array(items) = value else {
        return Err(value);
    };
    let mut object = Map::new();
    for item in items {
        if let Value::Object(mut kv) = item {
            let Some(Value::String(key)) = kv.remove("key") else {
                continue;
            };
            let value = kv
                .remove("value")
                .map_or(Value::Null, |v| any_value(v).unwrap_or_else(|v| v));
            object.insert(key, value);
        }
    }
    Ok(Value::Object(object))
}
