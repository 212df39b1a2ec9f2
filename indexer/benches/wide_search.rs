//! Wide-search benchmark (`make bench`): one search with `limit=10000` over 50 sealed splits of
//! the demo corpus (`corral_demo::corpus`)
//! that all overlap its time range, the engine's way (one top-k across splits from the `ts`
//! column, documents loaded for the final page only) next to the way searches worked before
//! (the top `limit + 1` documents of every split loaded, then merged) in the same run. Prints
//! wall time and the process's peak RSS during each (VmHWM reset before each, Linux
//! `/proc/self/clear_refs`), next to the RSS before.

use std::fs;
use std::time::{Duration, Instant};

use corral_demo::corpus::envelopes;
use corral_indexer::query::{Endpoint, Filters, QueryEngine};
use corral_indexer::store::{SplitStore, StoreOptions};
use corral_schema::Timestamp;
use corral_schema::fields::TS;
use corral_tests::bench::{percentiles, status_kib};
use tantivy::collector::TopDocs;
use tantivy::query::AllQuery;
use tantivy::schema::Value;
use tantivy::{DateTime, TantivyDocument};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPLITS: u64 = 50;
const PER_SPLIT: u64 = 20_000;
const LIMIT: usize = 10_000;
const RUNS: usize = 5;

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("corral-bench-wide-")
        .tempdir()
        .expect("temp dir");
    let t = Instant::now();
    let mut store = SplitStore::open(
        dir.path(),
        StoreOptions {
            split_max_docs: PER_SPLIT,
            split_max_age: Duration::from_secs(3600),
            writer_memory_bytes: 64 * 1024 * 1024,
            indexer_name: "bench".to_owned(),
            max_indexed_field_paths: corral_indexer::field_cap::DEFAULT_MAX_INDEXED_FIELD_PATHS,
        },
    )
    .expect("open store");
    let base = Timestamp::parse("2026-11-23T10:00:00Z").expect("timestamp");
    let mut checkpoint = corral_indexer::manifest::Checkpoint::new();
    let mut corpus = envelopes((SPLITS * PER_SPLIT) as usize).into_iter();
    for split in 0..SPLITS {
        for n in 0..PER_SPLIT {
            // Every split spans the same hour, so every split overlaps every search.
            let mut record = corpus.next().expect("one record per slot");
            record.ts = base.saturating_add_nanos((n * 180_000_000 + split) as i64);
            let source = serde_json::to_string(&record).expect("serializes");
            store.add(record, source).expect("add");
        }
        checkpoint.insert(0, ((split + 1) * PER_SPLIT) as i64);
        store.commit(&checkpoint).expect("commit");
        store.seal().expect("seal");
    }
    let catalog = store.catalog();
    println!(
        "wide search: {SPLITS} sealed splits × {PER_SPLIT} records built in {:.0} s; limit={LIMIT}, {RUNS} runs each",
        t.elapsed().as_secs_f64()
    );
    let engine = QueryEngine::new(catalog.clone());
    let filters = Filters {
        limit: LIMIT,
        order: corral_schema::api::Order::Desc,
        ..Filters::parse("", Endpoint::Search, Timestamp::now()).expect("filters")
    };

    let (engine_times, engine_before, engine_peak) = measure(|| {
        let outcome = engine.search(&filters).expect("search");
        assert_eq!(outcome.hits.len(), LIMIT);
        outcome.hits.len()
    });
    let (baseline_times, baseline_before, baseline_peak) = measure(|| {
        // Before: the top limit + 1 of every split, each document loaded, then merged.
        let mut loaded: Vec<(i64, String)> = Vec::new();
        for view in catalog.splits() {
            let searcher = view.reader.searcher();
            let top = searcher
                .search(
                    &AllQuery,
                    &TopDocs::with_limit(LIMIT + 1).order_by_fast_field::<DateTime>(TS, tantivy::Order::Desc),
                )
                .expect("search");
            for (ts, address) in top {
                let doc: TantivyDocument = searcher.doc(address).expect("doc");
                let source = doc
                    .get_first(view.fields.source)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                loaded.push((ts.map_or(0, |t| t.into_timestamp_nanos()), source));
            }
        }
        loaded.sort_by_key(|b| std::cmp::Reverse(b.0));
        loaded.truncate(LIMIT);
        loaded.len()
    });
    let line = |label: &str, times: &[Duration], before: u64, peak: u64| {
        let p = percentiles(times);
        println!(
            "{label:<28} p50 {:>7.1} ms  max {:>7.1} ms   RSS before {:>5} MiB, peak during {:>5} MiB (+{} MiB)",
            p.p50.as_secs_f64() * 1e3,
            p.max.as_secs_f64() * 1e3,
            before / 1024,
            peak / 1024,
            peak.saturating_sub(before) / 1024
        );
    };
    line("engine (one top-k)", &engine_times, engine_before, engine_peak);
    line(
        "baseline (load per split)",
        &baseline_times,
        baseline_before,
        baseline_peak,
    );
}

/// Runs `search` [`RUNS`] times; returns the wall times, the RSS before and the peak RSS during
/// (KiB).
fn measure(mut search: impl FnMut() -> usize) -> (Vec<Duration>, u64, u64) {
    // Writing 5 resets the peak resident set (VmHWM) to the current one.
    let _ = fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS");
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        std::hint::black_box(search());
        times.push(started.elapsed());
    }
    (times, before, status_kib("VmHWM"))
}
