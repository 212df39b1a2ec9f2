//! The collector behind `stats`: documents counted per (group value, level), read from the
//! fast columns without loading a document.

use std::collections::HashMap;

use corral_schema::fields as f;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentReader};

/// Counts documents per (group value, level) from fast fields.
pub(crate) struct GroupCounter {
    pub(crate) group_field: &'static str,
}

pub(crate) struct SegmentGroupCounter {
    group: Option<StrColumn>,
    level: Option<StrColumn>,
    counts: HashMap<(Option<u64>, Option<u64>), u64>,
}

const NO_LEVEL: &str = "none";

impl Collector for GroupCounter {
    type Fruit = HashMap<(String, String), u64>;
    type Child = SegmentGroupCounter;

    fn for_segment(
        &self,
        _segment_ord: u32,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentGroupCounter> {
        let fast = segment.fast_fields();
        Ok(SegmentGroupCounter {
            group: fast.str(self.group_field)?,
            level: fast.str(f::LEVEL)?,
            counts: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut merged = HashMap::new();
        for fruit in fruits {
            for (key, n) in fruit {
                *merged.entry(key).or_default() += n;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for SegmentGroupCounter {
    type Fruit = HashMap<(String, String), u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let ord = |column: &Option<StrColumn>| column.as_ref().and_then(|c| c.ords().first(doc));
        *self
            .counts
            .entry((ord(&self.group), ord(&self.level)))
            .or_default() += 1;
    }

    fn harvest(self) -> Self::Fruit {
        let name = |column: &Option<StrColumn>, ord: Option<u64>, missing: &str| {
            let mut text = String::new();
            match (column, ord) {
                (Some(column), Some(ord)) if column.ord_to_str(ord, &mut text).unwrap_or(false) => text,
                _ => missing.to_owned(),
            }
        };
        self.counts
            .into_iter()
            .map(|((group, level), n)| {
                (
                    (
                        name(&self.group, group, NO_LEVEL),
                        name(&self.level, level, NO_LEVEL),
                    ),
                    n,
                )
            })
            .fold(HashMap::new(), |mut merged, (key, n)| {
                *merged.entry(key).or_default() += n;
                merged
            })
    }
}
