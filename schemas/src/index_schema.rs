//! The tantivy schema of a split, built in one place from the envelope's field constants.
//!
//! - `_id_hi`, `_id_lo`: the id's 128-bit key as two fast u64 columns (ids are never searched;
//!   an inverted index of one unique term per record cost a third of the indexing time);
//! - keyword fields (raw tokenizer, exact match): `service`, `version`, `instance`,
//!   `node`, `namespace`, `pod`, `container`, `stream`, `level`, `corr`; the ones stats group
//!   by are also fast fields;
//! - `ts`: fast date with nanosecond precision (time ranges and ordering read the column);
//! - `msg`: full text with positions (phrase queries);
//! - later tiers than hot: no positions, frequencies, field norms or id columns
//!   ([`build_schema`]);
//! - `fields`: JSON, full text, dotted keys expanded (`fields.user.id:42` finds
//!   `{"user":{"id":42}}` and `{"user.id":42}` alike);
//! - `_source`: the whole envelope as stored JSON; hits are returned from it verbatim;
//! - `_seq`: the indexer's ingest sequence number (fast), which `tail` follows;
//! - `span`: keyword, last (splits written before it existed lack it).

use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, IndexRecordOption, JsonObjectOptions, NumericOptions,
    OwnedValue, STORED, STRING, Schema, TEXT, TextFieldIndexing, TextOptions,
};
use tantivy::{DateTime, TantivyDocument};

use crate::Record;
use crate::fields as f;

/// Handles of every field of the split schema.
#[derive(Debug, Clone, Copy)]
pub struct IndexFields {
    pub id_hi: Field,
    pub id_lo: Field,
    pub ts: Field,
    pub service: Field,
    pub version: Field,
    pub instance: Field,
    pub node: Field,
    pub namespace: Field,
    pub pod: Field,
    pub container: Field,
    pub stream: Field,
    pub level: Field,
    pub corr: Field,
    pub msg: Field,
    pub fields: Field,
    pub source: Field,
    pub seq: Field,
    /// `None` in splits written before the envelope had spans.
    pub span: Option<Field>,
}

/// Builds the split schema. `hot` is the hot tier's: term positions on `msg` and `fields` for
/// phrase queries, term frequencies and field norms. Later tiers (`hot` false) keep none of
/// them, nor the id columns (only the duplicate filter reads those, from the newest splits):
/// results are ordered by time, never scored, so the same term queries answer from smaller
/// splits.
pub fn build_schema(hot: bool) -> (Schema, IndexFields) {
    let mut builder = Schema::builder();
    let (keyword, record_option) = if hot {
        (STRING, IndexRecordOption::WithFreqsAndPositions)
    } else {
        (
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("raw")
                    .set_index_option(IndexRecordOption::Basic)
                    .set_fieldnorms(false),
            ),
            IndexRecordOption::Basic,
        )
    };
    let grouped = keyword.clone() | FAST;
    let text_indexing = TextFieldIndexing::default()
        .set_tokenizer("default")
        .set_index_option(record_option)
        .set_fieldnorms(hot);
    let text = TextOptions::default().set_indexing_options(text_indexing.clone());
    let json = JsonObjectOptions::from(TEXT)
        .set_indexing_options(text_indexing)
        .set_expand_dots_enabled();
    let id = if hot {
        NumericOptions::default().set_fast()
    } else {
        NumericOptions::default()
    };
    let fields = IndexFields {
        id_hi: builder.add_u64_field(f::ID_HI, id.clone()),
        id_lo: builder.add_u64_field(f::ID_LO, id),
        ts: builder.add_date_field(
            f::TS,
            // Fast only: time ranges and ordering read the column; an inverted index of
            // timestamps would cost indexing time and serve nothing.
            DateOptions::default()
                .set_fast()
                .set_precision(DateTimePrecision::Nanoseconds),
        ),
        service: builder.add_text_field(f::SERVICE, grouped.clone()),
        version: builder.add_text_field(f::VERSION, grouped.clone()),
        instance: builder.add_text_field(f::INSTANCE, grouped.clone()),
        node: builder.add_text_field(f::NODE, keyword.clone()),
        namespace: builder.add_text_field(f::NAMESPACE, keyword.clone()),
        pod: builder.add_text_field(f::POD, keyword.clone()),
        container: builder.add_text_field(f::CONTAINER, keyword.clone()),
        stream: builder.add_text_field(f::STREAM, keyword.clone()),
        level: builder.add_text_field(f::LEVEL, grouped),
        corr: builder.add_text_field(f::CORR, keyword.clone()),
        msg: builder.add_text_field(f::MSG, text),
        fields: builder.add_json_field(f::FIELDS, json),
        source: builder.add_text_field(f::SOURCE, STORED),
        seq: builder.add_u64_field(f::SEQ, FAST),
        // Last: the field ids before it are those of splits written before spans existed.
        span: Some(builder.add_text_field(f::SPAN, keyword)),
    };
    (builder.build(), fields)
}

impl IndexFields {
    /// Looks every field up by name in an existing split's schema.
    pub fn from_schema(schema: &Schema) -> tantivy::Result<IndexFields> {
        let get = |name: &str| schema.get_field(name);
        Ok(IndexFields {
            id_hi: get(f::ID_HI)?,
            id_lo: get(f::ID_LO)?,
            ts: get(f::TS)?,
            service: get(f::SERVICE)?,
            version: get(f::VERSION)?,
            instance: get(f::INSTANCE)?,
            node: get(f::NODE)?,
            namespace: get(f::NAMESPACE)?,
            pod: get(f::POD)?,
            container: get(f::CONTAINER)?,
            stream: get(f::STREAM)?,
            level: get(f::LEVEL)?,
            corr: get(f::CORR)?,
            msg: get(f::MSG)?,
            fields: get(f::FIELDS)?,
            source: get(f::SOURCE)?,
            seq: get(f::SEQ)?,
            span: get(f::SPAN).ok(),
        })
    }

    /// Turns a record into a tantivy document; `source` is the record's envelope JSON, stored
    /// verbatim so a hit returns exactly what was ingested; `seq` is its ingest sequence number.
    pub fn document(&self, record: Record, source: String, seq: u64) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        let key = crate::record::id_key(&record.id);
        doc.add_u64(self.id_hi, (key >> 64) as u64);
        doc.add_u64(self.id_lo, key as u64);
        doc.add_date(self.ts, DateTime::from_timestamp_nanos(record.ts.unix_nanos()));
        doc.add_text(self.service, &record.service);
        doc.add_text(self.version, &record.version);
        doc.add_text(self.instance, &record.instance);
        doc.add_text(self.node, &record.node);
        doc.add_text(self.namespace, &record.namespace);
        doc.add_text(self.pod, &record.pod);
        doc.add_text(self.container, &record.container);
        doc.add_text(self.stream, record.stream.as_str());
        if let Some(level) = record.level {
            doc.add_text(self.level, level.as_str());
        }
        if let Some(corr) = &record.corr {
            doc.add_text(self.corr, corr);
        }
        if let (Some(field), Some(span)) = (self.span, &record.span) {
            doc.add_text(field, span);
        }
        doc.add_text(self.msg, &record.msg);
        if !record.fields.is_empty() {
            doc.add_field_value(self.fields, &OwnedValue::from(record.fields));
        }
        doc.add_text(self.source, source);
        doc.add_u64(self.seq, seq);
        doc
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tantivy::collector::TopDocs;
    use tantivy::query::{QueryParser, TermQuery};
    use tantivy::schema::Value;
    use tantivy::{Index, Term};

    use super::*;
    use crate::record::tests::sample;

    fn ids_of(index: &Index, query: &dyn tantivy::query::Query, fields: &IndexFields) -> Vec<String> {
        let searcher = index.reader().unwrap().searcher();
        let mut ids: Vec<String> = searcher
            .search(query, &TopDocs::with_limit(10).order_by_score())
            .unwrap()
            .into_iter()
            .map(|(_, address)| {
                let doc: TantivyDocument = searcher.doc(address).unwrap();
                let source = doc.get_first(fields.source).unwrap().as_str().unwrap().to_owned();
                serde_json::from_str::<Record>(&source).unwrap().id
            })
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn finds_records_by_corr_msg_word_and_nested_field() {
        let (schema, fields) = build_schema(true);
        let index = Index::create_in_ram(schema);
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let records = [
            Record {
                id: "a".repeat(32),
                ..sample()
            },
            Record {
                id: "b".repeat(32),
                corr: Some("other-request".into()),
                msg: "cache warmed".into(),
                fields: json!({"user": {"id": 7}, "http": {"path": "/health"}})
                    .as_object()
                    .unwrap()
                    .clone(),
                ..sample()
            },
            Record {
                id: "c".repeat(32),
                corr: None,
                msg: "order placed".into(),
                fields: json!({"http.path": "/checkout", "user": {"id": 9}})
                    .as_object()
                    .unwrap()
                    .clone(),
                ..sample()
            },
        ];
        for (seq, record) in (0..).zip(&records) {
            let source = serde_json::to_string(record).unwrap();
            writer
                .add_document(fields.document(record.clone(), source, seq))
                .unwrap();
        }
        writer.commit().unwrap();

        let by_corr = TermQuery::new(
            Term::from_field_text(fields.corr, "other-request"),
            IndexRecordOption::Basic,
        );
        assert_eq!(ids_of(&index, &by_corr, &fields), vec!["b".repeat(32)]);

        let parser = QueryParser::for_index(&index, vec![fields.msg, fields.fields]);
        let cases: &[(&str, Vec<String>)] = &[
            ("declined", vec!["a".repeat(32)]),
            ("\"order placed\"", vec!["c".repeat(32)]),
            ("fields.user.id:42", vec!["a".repeat(32)]),
            ("fields.http.path:checkout", vec!["c".repeat(32)]),
            ("fields.http.method:post", vec!["a".repeat(32)]),
            ("nothing_matches_this", vec![]),
        ];
        for (text, want) in cases {
            let query = parser.parse_query(text).unwrap();
            assert_eq!(&ids_of(&index, &query, &fields), want, "query {text:?}");
        }

        // The stored source is the exact record.
        let searcher = index.reader().unwrap().searcher();
        let (_, address) = searcher
            .search(&by_corr, &TopDocs::with_limit(1).order_by_score())
            .unwrap()[0];
        let doc: TantivyDocument = searcher.doc(address).unwrap();
        let source = doc.get_first(fields.source).unwrap().as_str().unwrap();
        assert_eq!(serde_json::from_str::<Record>(source).unwrap(), records[1]);
        assert_eq!(
            IndexFields::from_schema(&index.schema()).unwrap().corr,
            fields.corr
        );
    }
}
