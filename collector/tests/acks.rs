//! Checkpoints move only over acknowledged records: what the sink has not acknowledged when the
//! collector stops is read and sent again, with the same ids, and nothing else is.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use corral_collector::config::CollectorConfig;
use corral_collector::metadata::PathProvider;
use corral_collector::pipeline::{Collector, RecordBuilder};
use corral_collector::sink::{self, ChannelReceiver, Ticket};
use corral_schema::Record;

fn collector(root: &Path, sink: sink::ChannelSink) -> Collector<sink::ChannelSink> {
    let config = CollectorConfig {
        drain_timeout: Duration::from_millis(300),
        ..CollectorConfig::default()
    };
    let builder = RecordBuilder::new("node-a".into(), &config, Arc::new(PathProvider));
    let globs = vec![format!("{}/pods/*/*/*.log", root.display())];
    Collector::new(globs, &root.join("data"), &config, builder, sink).unwrap()
}

/// Consumes every batch, acknowledging the records `ack` accepts; returns all records seen.
fn consume(
    receiver: ChannelReceiver,
    ack: impl Fn(&Record) -> bool + Send + 'static,
) -> std::thread::JoinHandle<Vec<Record>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Some(batch) = receiver.recv() {
            // Acknowledge in reverse order, as partitions might.
            let tickets: Vec<Ticket> = batch
                .iter()
                .rev()
                .filter(|(_, r)| ack(r))
                .map(|(t, _)| *t)
                .collect();
            receiver.ack(tickets);
            seen.extend(batch.into_iter().map(|(_, r)| r));
        }
        seen
    })
}

#[test]
fn unacknowledged_records_are_sent_again_with_the_same_ids() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pods/shop_orders-x2k9p_uid/app");
    fs::create_dir_all(&dir).unwrap();
    let lines: String = (0..10)
        .map(|i| format!("2026-11-23T10:15:00Z stdout F {{\"msg\":\"line-{i}\"}}\n"))
        .collect();
    fs::write(dir.join("0.log"), &lines).unwrap();

    // First run: the consumer never acknowledges line-3.
    let (sink, receiver) = sink::channel(4);
    let consumer = consume(receiver, |r| r.msg != "line-3");
    let mut first = collector(root.path(), sink);
    let stats = first.run_once().unwrap();
    assert_eq!(stats.records, 10);
    let positions = first.positions();
    drop(first);
    let seen_first = consumer.join().unwrap();
    assert_eq!(seen_first.len(), 10);
    let line_len = lines.lines().next().unwrap().len() as u64 + 1;
    assert_eq!(
        positions[0].offset,
        3 * line_len,
        "the checkpoint stops at the unacknowledged line"
    );

    // Second run: everything from line-3 on comes again, with the ids it had.
    let (sink, receiver) = sink::channel(4);
    let consumer = consume(receiver, |_| true);
    let mut second = collector(root.path(), sink);
    second.run_once().unwrap();
    let final_offset = second.positions()[0].offset;
    drop(second);
    let seen_second = consumer.join().unwrap();
    let msgs: Vec<&str> = seen_second.iter().map(|r| r.msg.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "line-3", "line-4", "line-5", "line-6", "line-7", "line-8", "line-9"
        ]
    );
    for record in &seen_second {
        let before = seen_first.iter().find(|r| r.msg == record.msg).unwrap();
        assert_eq!(before.id, record.id, "{} keeps its id", record.msg);
    }
    assert_eq!(final_offset, lines.len() as u64);
}
