//! The cap on indexed `fields.*` paths per split (`[indexer] max_indexed_field_paths`).
//!
//! A service that logs thousands of distinct keys (ids used as keys, maps dumped whole) would
//! otherwise grow every split's term dictionary and slow every query. Each split admits paths
//! in the order it first meets them, up to the cap; a record with a path beyond it is stored
//! whole (returned and exported unchanged, plus flag `fields_capped`) but indexed with the
//! admitted paths only, so the others are not searchable by path. A path is the dotted chain of
//! keys to a string, number or boolean (`fields.user.id`; arrays are looked through, and a key
//! holding dots counts as its parts, as tantivy's expanded dots do).

use std::collections::HashSet;

use corral_schema::{Flag, Record};
use serde_json::{Map, Value};
use tantivy::Searcher;
use tantivy::schema::Field;

/// Default for `max_indexed_field_paths`.
pub const DEFAULT_MAX_INDEXED_FIELD_PATHS: usize = 1_000;

/// The `fields.*` paths one split indexes.
#[derive(Debug, Clone)]
pub struct FieldPaths {
    cap: usize,
    known: HashSet<String>,
}

impl FieldPaths {
    /// An empty set admitting up to `cap` paths.
    pub fn new(cap: usize) -> FieldPaths {
        FieldPaths {
            cap,
            known: HashSet::new(),
        }
    }

    /// The paths a split indexes, admitting no more: a split re-encoded from its stored records
    /// indexes what it did before, not the paths its records hold beyond the cap.
    pub fn frozen(searcher: &Searcher, field: Field) -> anyhow::Result<FieldPaths> {
        let mut paths = FieldPaths::of_searcher(0, searcher, field)?;
        paths.cap = paths.known.len();
        Ok(paths)
    }

    /// The paths a split already indexes, read from its JSON field's term dictionary (where each
    /// term starts with its path), admitting more up to `cap`: an active split reopened after a
    /// restart knows what it indexed before.
    pub fn of_searcher(cap: usize, searcher: &Searcher, field: Field) -> anyhow::Result<FieldPaths> {
        let mut paths = FieldPaths::new(cap);
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(field)?;
            let mut stream = inverted.terms().stream()?;
            let mut last: Vec<u8> = Vec::new();
            while stream.advance() {
                let key = stream.key();
                // tantivy's JSON term: path segments split by 0x01, 0x00, then the type and value.
                let Some(end) = key.iter().position(|b| *b == 0) else {
                    continue;
                };
                let path = &key[..end];
                if path == last.as_slice() {
                    continue;
                }
                last.clear();
                last.extend_from_slice(path);
                let text: String = String::from_utf8_lossy(path)
                    .chars()
                    .map(|c| if c == '\u{1}' { '.' } else { c })
                    .collect();
                paths.known.insert(text);
            }
        }
        Ok(paths)
    }

    /// The number of paths admitted.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Admits the record's paths while there is room. A record with a path beyond the cap
    /// comes back flagged `fields_capped` and with only its admitted paths in `fields` (for
    /// indexing), and its `source` rewritten with the flag (everything else as it was); the
    /// returned bool says so.
    pub fn cap(&mut self, mut record: Record, source: String) -> (Record, String, bool) {
        let mut path = String::new();
        if self.admit(&record.fields, &mut path) {
            return (record, source, false);
        }
        let mut path = String::new();
        record.fields = self.prune(&record.fields, &mut path);
        record.add_flag(Flag::FieldsCapped);
        let source = flag_source(&source).unwrap_or(source);
        (record, source, true)
    }

    /// Admits the leaf paths under `map`; false when one is beyond the cap.
    fn admit(&mut self, map: &Map<String, Value>, path: &mut String) -> bool {
        let mut all = true;
        for (key, value) in map {
            let before = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            all &= self.admit_value(value, path);
            path.truncate(before);
        }
        all
    }

    fn admit_value(&mut self, value: &Value, path: &mut String) -> bool {
        match value {
            Value::Object(map) => self.admit(map, path),
            Value::Array(items) => {
                let mut all = true;
                for item in items {
                    all &= self.admit_value(item, path);
                }
                all
            }
            Value::Null => true,
            _ => {
                if self.known.contains(path.as_str()) {
                    true
                } else if self.known.len() < self.cap {
                    self.known.insert(path.clone());
                    true
                } else {
                    false
                }
            }
        }
    }

    /// A copy of `map` with only admitted leaf paths (and the objects leading to them).
    fn prune(&self, map: &Map<String, Value>, path: &mut String) -> Map<String, Value> {
        let mut kept = Map::new();
        for (key, value) in map {
            let before = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            if let Some(value) = self.prune_value(value, path) {
                kept.insert(key.clone(), value);
            }
            path.truncate(before);
        }
        kept
    }

    fn prune_value(&self, value: &Value, path: &mut String) -> Option<Value> {
        match value {
            Value::Object(map) => {
                let kept = self.prune(map, path);
                (!kept.is_empty()).then_some(Value::Object(kept))
            }
            Value::Array(items) => {
                let kept: Vec<Value> = items
                    .iter()
                    .filter_map(|item| self.prune_value(item, path))
                    .collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            Value::Null => None,
            leaf => self.known.contains(path.as_str()).then(|| leaf.clone()),
        }
    }
}

/// The envelope `source` with `fields_capped` added to its flags; `None` if it is not a JSON
/// object (never for an envelope the decoder passed).
fn flag_source(source: &str) -> Option<String> {
    let mut value: Value = serde_json::from_str(source).ok()?;
    let object = value.as_object_mut()?;
    let flags = object
        .entry(corral_schema::fields::FLAGS)
        .or_insert_with(|| Value::Array(Vec::new()));
    let flag = Value::String(Flag::FieldsCapped.as_str().to_owned());
    match flags {
        Value::Array(list) if !list.contains(&flag) => list.push(flag),
        Value::Array(_) => {}
        other => *other = Value::Array(vec![flag]),
    }
    serde_json::to_string(&value).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tantivy::{Index, doc};

    use super::*;

    fn record(fields: Value) -> (Record, String) {
        let Value::Object(fields) = fields else {
            panic!("fields must be an object")
        };
        let record = Record {
            id: "r".into(),
            fields,
            ..Record::default()
        };
        let source = serde_json::to_string(&record).unwrap();
        (record, source)
    }

    #[test]
    fn paths_beyond_the_cap_are_stored_but_not_indexed_and_the_record_flagged() {
        let mut paths = FieldPaths::new(3);
        let (first, source) = record(json!({"a": 1, "b": {"c": "x", "d.e": true}, "n": null}));
        let (indexed, stored, capped) = paths.cap(first.clone(), source.clone());
        assert!(!capped);
        assert_eq!((indexed, stored), (first, source));
        assert_eq!(paths.len(), 3, "a, b.c, b.d.e; null is no path");

        // Known paths and arrays of them stay; a fourth path is over the cap.
        let (second, source) =
            record(json!({"a": [1, 2], "b": {"c": "y"}, "z": {"deep": 1}, "list": [{"q": 1}]}));
        let (indexed, stored, capped) = paths.cap(second, source.clone());
        assert!(capped);
        assert_eq!(
            Value::Object(indexed.fields.clone()),
            json!({"a": [1, 2], "b": {"c": "y"}})
        );
        assert!(indexed.has_flag(Flag::FieldsCapped));
        let stored: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(stored["flags"], json!(["fields_capped"]));
        let original: Value = serde_json::from_str(&source).unwrap();
        assert_eq!(
            stored["fields"], original["fields"],
            "the stored record keeps every field"
        );
        assert_eq!(paths.len(), 3);
    }

    #[test]
    fn an_existing_flag_list_gains_the_flag_once() {
        let source = r#"{"v":1,"id":"x","flags":["truncated"],"extra_key_of_a_newer_version":1}"#;
        let flagged: Value = serde_json::from_str(&flag_source(source).unwrap()).unwrap();
        assert_eq!(flagged["flags"], json!(["truncated", "fields_capped"]));
        assert_eq!(flagged["extra_key_of_a_newer_version"], 1);
        let again: Value = serde_json::from_str(&flag_source(&flagged.to_string()).unwrap()).unwrap();
        assert_eq!(again["flags"], json!(["truncated", "fields_capped"]));
    }

    #[test]
    fn a_reopened_split_knows_the_paths_it_indexed() {
        let (schema, fields) = corral_schema::index_schema::build_schema(true);
        let index = Index::create_in_ram(schema);
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let (one, source) = record(json!({"user": {"id": 42, "name": "ann"}, "dotted.key": "v", "ok": true}));
        writer.add_document(fields.document(one, source, 0)).unwrap();
        writer.add_document(doc!()).unwrap();
        writer.commit().unwrap();
        let paths = FieldPaths::of_searcher(10, &index.reader().unwrap().searcher(), fields.fields).unwrap();
        let mut known: Vec<&str> = paths.known.iter().map(String::as_str).collect();
        known.sort_unstable();
        assert_eq!(known, ["dotted.key", "ok", "user.id", "user.name"]);
    }
}
