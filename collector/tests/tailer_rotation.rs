//! The tailer reads every line exactly once while files exist: rename-rotation, copytruncate,
//! deletion, gzip'd rotated files, partial lines across a rotation, restarts from positions —
//! and, in a property test, any interleaving of those against a model writer.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_collector::file_identity::FileKey;
use corral_collector::tailer::{FilePosition, TailedLine, Tailer, TailerConfig};
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;

const POD_DIR: &str = "shop_checkout-7d9f8b6c4-x2k9p_0b1c2d3e/app";

fn tailer(root: &Path, positions: Vec<FilePosition>) -> Tailer {
    let glob = format!("{}/*/*/*.log", root.display());
    Tailer::new(
        TailerConfig {
            globs: vec![glob],
            max_line_bytes: 1024 * 1024,
            read_budget: 1 << 20,
            scan_interval: Duration::ZERO,
        },
        positions,
    )
}

/// Polls until nothing more is read; returns the contents of the lines.
fn drain(tailer: &mut Tailer) -> Vec<String> {
    let mut lines: Vec<TailedLine> = Vec::new();
    loop {
        if tailer.poll(&mut lines).bytes_read == 0 {
            break;
        }
    }
    lines
        .into_iter()
        .map(|l| String::from_utf8(l.line.content).unwrap())
        .collect()
}

fn cri(tag: &str, content: &str) -> String {
    format!("2026-11-23T10:15:00.000000001Z stdout {tag} {content}\n")
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn gzip(from: &Path, to: &Path) {
    let tmp = to.with_extension("gz.tmp");
    let mut encoder = GzEncoder::new(File::create(&tmp).unwrap(), Compression::fast());
    encoder.write_all(&fs::read(from).unwrap()).unwrap();
    encoder.finish().unwrap();
    fs::rename(&tmp, to).unwrap();
    fs::remove_file(from).unwrap();
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(POD_DIR);
    fs::create_dir_all(&dir).unwrap();
    (root, dir)
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &(cri("F", "a1") + &cri("F", "a2")));
    let mut t = tailer(root.path(), vec![]);
    assert_eq!(drain(&mut t), ["a1", "a2"]);
    append(&log, &cri("F", "a3"));
    fs::rename(&log, dir.join("0.log.20261123-101500")).unwrap();
    append(&log, &cri("F", "b1"));
    assert_eq!(drain(&mut t), ["a3", "b1"]);
    assert_eq!(drain(&mut t), Vec::<String>::new());
}

#[test]
fn copytruncate_continues_in_the_copy_and_restarts_the_original_at_zero() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &cri("F", "a1"));
    let mut t = tailer(root.path(), vec![]);
    assert_eq!(drain(&mut t), ["a1"]);
    append(&log, &cri("F", "a2"));
    fs::copy(&log, dir.join("0.log.1")).unwrap();
    OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &cri("F", "b1"));
    assert_eq!(drain(&mut t), ["a2", "b1"]);
}

#[test]
fn copytruncate_without_a_copy_reads_the_new_content_and_counts_the_loss() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &cri("F", "a1"));
    let mut t = tailer(root.path(), vec![]);
    assert_eq!(drain(&mut t), ["a1"]);
    append(&log, &cri("F", "a2-lost"));
    OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &cri("F", "b1"));
    let mut lines = Vec::new();
    let stats = t.poll(&mut lines);
    assert_eq!(
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.line.content).into_owned())
            .collect::<Vec<_>>(),
        ["b1"]
    );
    assert_eq!(stats.truncations, 1);
}

#[test]
fn a_deleted_file_is_read_to_the_end_through_its_open_handle() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &cri("F", "a1"));
    let mut t = tailer(root.path(), vec![]);
    assert_eq!(drain(&mut t), ["a1"]);
    append(&log, &(cri("F", "a2") + &cri("F", "a3")));
    fs::remove_file(&log).unwrap();
    assert_eq!(drain(&mut t), ["a2", "a3"]);
    assert_eq!(t.file_count(), 0, "a deleted, fully read file is forgotten");
}

#[test]
fn gzip_rotated_files_are_read_only_for_what_was_not_read() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &(cri("F", "a1") + &cri("F", "a2")));
    let mut t = tailer(root.path(), vec![]);
    assert_eq!(drain(&mut t), ["a1", "a2"]);
    let positions = t.positions();
    drop(t);
    // While the collector is down: more lines, rotation, compression.
    append(&log, &cri("F", "a3"));
    let rotated = dir.join("0.log.20261123-101500");
    fs::rename(&log, &rotated).unwrap();
    gzip(&rotated, &dir.join("0.log.20261123-101500.gz"));
    append(&log, &cri("F", "b1"));
    let mut t = tailer(root.path(), positions);
    assert_eq!(drain(&mut t), ["a3", "b1"]);
    // A fully read .gz is never read again.
    assert_eq!(drain(&mut t), Vec::<String>::new());
    let mut t = tailer(root.path(), t.positions());
    assert_eq!(drain(&mut t), Vec::<String>::new());
    // A rotated .gz the collector never saw is old data: not read.
    let other = root.path().join("shop_other-x2k9p_uid/app");
    fs::create_dir_all(&other).unwrap();
    let old = other.join("0.log.20261122-000000");
    fs::write(&old, cri("F", "never")).unwrap();
    gzip(&old, &other.join("0.log.20261122-000000.gz"));
    assert_eq!(drain(&mut t), Vec::<String>::new());
}

#[test]
fn files_created_and_rotated_between_two_scans_are_read_in_order() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &cri("F", "a1"));
    let mut t = tailer(root.path(), vec![]);
    assert_eq!(drain(&mut t), ["a1"]);
    // Between two scans, as Docker's json-file driver rotating at a small max-size under a
    // burst: the file is rotated, a new one written and rotated in turn, and a third written.
    append(&log, &cri("F", "a2"));
    fs::rename(&log, dir.join("0.log.2")).unwrap();
    append(&log, &cri("F", "b1"));
    fs::rename(&log, dir.join("0.log.1")).unwrap();
    append(&log, &cri("F", "c1"));
    assert_eq!(drain(&mut t), ["a2", "b1", "c1"]);
    // A container first seen after the first scan: its rotated file is new data too.
    let other = root.path().join("shop_other-x2k9p_uid/app");
    fs::create_dir_all(&other).unwrap();
    append(&other.join("0.log"), &cri("F", "d1"));
    fs::rename(other.join("0.log"), other.join("0.log.1")).unwrap();
    append(&other.join("0.log"), &cri("F", "e1"));
    assert_eq!(drain(&mut t), ["d1", "e1"]);
    let mut t = tailer(root.path(), t.positions());
    assert_eq!(drain(&mut t), Vec::<String>::new());
}

#[test]
fn files_rotated_while_the_collector_was_down_are_read_after_the_restart() {
    let (root, dir) = setup();
    // From before the collector's first start: old data, never read.
    append(&dir.join("0.log.3"), &cri("F", "old"));
    let log = dir.join("0.log");
    append(&log, &cri("F", "a1"));
    let mut t = tailer(root.path(), vec![]);
    assert_eq!(drain(&mut t), ["a1"]);
    let positions = t.positions();
    drop(t);
    append(&log, &cri("F", "a2"));
    fs::rename(&log, dir.join("0.log.2")).unwrap();
    append(&log, &cri("F", "b1"));
    fs::rename(&log, dir.join("0.log.1")).unwrap();
    append(&log, &cri("F", "c1"));
    let mut t = tailer(root.path(), positions);
    assert_eq!(drain(&mut t), ["a2", "b1", "c1"]);
    assert_eq!(drain(&mut t), Vec::<String>::new());
}

#[test]
fn a_copy_not_yet_truncated_is_not_read_as_a_new_file() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &(cri("F", "a1") + &cri("F", "a2")));
    let mut t = tailer(root.path(), vec![]);
    assert_eq!(drain(&mut t), ["a1", "a2"]);
    // copytruncate, seen between its copy and its truncation.
    fs::copy(&log, dir.join("0.log.1")).unwrap();
    assert_eq!(drain(&mut t), Vec::<String>::new());
    OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &cri("F", "b1"));
    assert_eq!(drain(&mut t), ["b1"]);
}

#[test]
fn a_partial_line_merges_across_a_rotation_and_a_restart() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &(cri("F", "whole") + &cri("P", "first half, ")));
    let mut t = tailer(root.path(), vec![]);
    let mut lines = Vec::new();
    t.poll(&mut lines);
    assert_eq!(lines.len(), 1);
    let positions = t.positions();
    assert_eq!(
        positions[0].offset,
        cri("F", "whole").len() as u64,
        "checkpoint holds at the open partial"
    );
    drop(t);
    fs::rename(&log, dir.join("0.log.20261123-101500")).unwrap();
    append(&log, &cri("F", "second half"));
    let mut t = tailer(root.path(), positions);
    let mut lines = Vec::new();
    t.poll(&mut lines);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].line.content, b"first half, second half");
    assert_eq!(lines[0].line.chunks, 2);
    let key = lines[0].line.origin.file;
    assert_ne!(key, FileKey(0));
    assert_eq!(
        lines[0].line.origin.offset,
        cri("F", "whole").len() as u64,
        "id comes from the first chunk"
    );
}

#[test]
fn a_newer_file_waits_until_the_older_one_is_read_to_its_end() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    let mut t = Tailer::new(
        TailerConfig {
            globs: vec![format!("{}/*/*/*.log", root.path().display())],
            max_line_bytes: 1024 * 1024,
            read_budget: 4096,
            scan_interval: Duration::ZERO,
        },
        vec![],
    );
    append(&log, &cri("F", "a0"));
    assert_eq!(drain(&mut t), ["a0"]);
    // A backlog of many read budgets, ending in a partial line that the next file finishes.
    let mut want: Vec<String> = Vec::new();
    let mut text = String::new();
    for i in 0..400 {
        let line = format!("a-line-{i:04}");
        text += &cri("F", &line);
        want.push(line);
    }
    append(&log, &(text + &cri("P", "first half, ")));
    fs::rename(&log, dir.join("0.log.1")).unwrap();
    append(&log, &(cri("F", "second half") + &cri("F", "next")));
    want.extend(["first half, second half".to_owned(), "next".to_owned()]);
    assert_eq!(drain(&mut t), want);
}

#[test]
fn a_dangling_partial_is_flushed_not_lost() {
    let (root, dir) = setup();
    append(&dir.join("0.log"), &cri("P", "never finished"));
    let mut t = tailer(root.path(), vec![]);
    let mut lines = Vec::new();
    t.poll(&mut lines);
    assert!(lines.is_empty());
    t.flush(&mut lines);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].line.content, b"never finished");
}

/// Regression (hardening #8): a rotated gzip was decompressed whole in one poll; many big ones
/// after a broker outage blew the collector's memory limit. Each poll now reads at most the
/// read budget of decompressed bytes, so a poll's batch of lines stays bounded.
#[test]
fn a_50_mib_rotated_gzip_is_read_in_steps_within_the_read_budget() {
    const BUDGET: usize = 64 * 1024;
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &cri("F", "first"));
    let config = |positions| {
        Tailer::new(
            TailerConfig {
                globs: vec![format!("{}/*/*/*.log", root.path().display())],
                max_line_bytes: 1024 * 1024,
                read_budget: BUDGET,
                scan_interval: Duration::ZERO,
            },
            positions,
        )
    };
    let mut t = config(vec![]);
    assert_eq!(drain(&mut t), ["first"]);
    let positions = t.positions();
    drop(t);
    // While the collector is down (the broker was out): 50 MiB more, rotated and compressed.
    let line = cri("F", &"z".repeat(1000));
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    let total_lines = 50 * 1024 * 1024 / line.len();
    for _ in 0..total_lines {
        file.write_all(line.as_bytes()).unwrap();
    }
    drop(file);
    let rotated = dir.join("0.log.20261123-101500");
    fs::rename(&log, &rotated).unwrap();
    gzip(&rotated, &dir.join("0.log.20261123-101500.gz"));

    let mut t = config(positions);
    let (mut polls, mut lines_read, mut bytes) = (0usize, 0usize, 0u64);
    let mut biggest = 0;
    loop {
        let mut lines = Vec::new();
        let stats = t.poll(&mut lines);
        if stats.bytes_read == 0 {
            break;
        }
        polls += 1;
        bytes += stats.bytes_read;
        biggest = biggest.max(stats.bytes_read);
        lines_read += lines.len();
        assert!(
            lines.len() <= BUDGET / line.len() + 1,
            "poll {polls} handed out {} lines",
            lines.len()
        );
    }
    assert_eq!(lines_read, total_lines, "every line read");
    assert_eq!(bytes, (total_lines * line.len()) as u64);
    assert!(biggest <= BUDGET as u64, "a poll read {biggest} bytes");
    assert!(polls >= total_lines * line.len() / BUDGET, "{polls} polls");
    // Read to its end: never decompressed again.
    assert_eq!(drain(&mut t), Vec::<String>::new());
}

/// Lines read with the file name they were first seen under and the (key, offset) of their id.
fn drain_origins(tailer: &mut Tailer) -> Vec<(String, String, FileKey, u64)> {
    let mut lines: Vec<TailedLine> = Vec::new();
    while tailer.poll(&mut lines).bytes_read > 0 {}
    lines
        .into_iter()
        .map(|l| {
            let name = l.source.file_name().unwrap().to_string_lossy().into_owned();
            let content = String::from_utf8(l.line.content).unwrap();
            (name, content, l.line.origin.file, l.line.origin.offset)
        })
        .collect()
}

const BANNER: &str = "starting checkout v1.4.2 (git 9f2c1e)";

/// Regression (hardening #7): kubelet writes `1.log` beside `0.log` when a container restarts,
/// both starting with the same banner; they shared a key and only one was read.
#[test]
fn two_files_with_the_same_first_line_are_both_read_with_distinct_ids() {
    let (root, dir) = setup();
    append(&dir.join("0.log"), &(cri("F", BANNER) + &cri("F", "first run")));
    append(&dir.join("1.log"), &(cri("F", BANNER) + &cri("F", "second run")));
    let mut t = tailer(root.path(), vec![]);
    let read = drain_origins(&mut t);
    let mut contents: Vec<(&str, &str)> = read.iter().map(|(f, c, _, _)| (f.as_str(), c.as_str())).collect();
    contents.sort();
    assert_eq!(
        contents,
        [
            ("0.log", "first run"),
            ("0.log", BANNER),
            ("1.log", "second run"),
            ("1.log", BANNER)
        ]
    );
    let key_of = |name: &str| read.iter().find(|r| r.0 == name).unwrap().2;
    let (key0, key1) = (key_of("0.log"), key_of("1.log"));
    assert_ne!(
        key0, key1,
        "distinct files have distinct keys, so distinct record ids"
    );

    // Keys survive a restart and a rename-rotation: the same line keeps its id.
    let positions = t.positions();
    drop(t);
    append(&dir.join("0.log"), &cri("F", "after restart"));
    fs::rename(dir.join("0.log"), dir.join("0.log.20261123-101500")).unwrap();
    append(&dir.join("1.log"), &cri("F", "second after restart"));
    let mut t = tailer(root.path(), positions);
    let read = drain_origins(&mut t);
    let got: Vec<(&str, FileKey)> = read.iter().map(|(_, c, k, _)| (c.as_str(), *k)).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&("after restart", key0)), "{got:?}");
    assert!(got.contains(&("second after restart", key1)), "{got:?}");
}

/// Regression (hardening #7): a copytruncated file rewritten with the same first line, grown
/// past the old read position before the next poll, was resumed mid-line at the old offset.
#[test]
fn a_copytruncated_file_rewritten_with_the_same_first_line_restarts_at_zero() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &(cri("F", BANNER) + &cri("F", "a1")));
    let mut t = tailer(root.path(), vec![]);
    let first = drain_origins(&mut t);
    assert_eq!(first.len(), 2);
    append(&log, &cri("F", "a2"));
    fs::copy(&log, dir.join("0.log.1")).unwrap();
    OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    let rewritten = cri("F", BANNER) + &cri("F", &"b".repeat(200));
    append(&log, &rewritten);
    let read = drain_origins(&mut t);
    let contents: Vec<&str> = read.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(contents, ["a2", BANNER, &"b".repeat(200)]);
    assert_eq!(read[0].2, first[0].2, "the copy continues the old file's key");
    assert_ne!(
        read[1].2, first[0].2,
        "the rewritten file is new content: a new key"
    );
    assert_eq!(read[1].3, 0);
}

/// Regression (hardening #7): the same while the collector is down, without a copy: the file
/// is rewritten with the same banner and is longer than the saved position.
#[test]
fn a_file_rewritten_with_the_same_first_line_while_down_restarts_at_zero() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    append(&log, &(cri("F", BANNER) + &cri("F", "a1")));
    let mut t = tailer(root.path(), vec![]);
    let first = drain_origins(&mut t);
    let positions = t.positions();
    drop(t);
    OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &(cri("F", BANNER) + &cri("F", &"b".repeat(200))));
    let mut t = tailer(root.path(), positions);
    let mut lines = Vec::new();
    let mut truncations = 0;
    loop {
        let stats = t.poll(&mut lines);
        truncations += stats.truncations;
        if stats.bytes_read == 0 {
            break;
        }
    }
    let contents: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.line.content).into_owned())
        .collect();
    assert_eq!(contents, [BANNER.to_owned(), "b".repeat(200)]);
    assert_ne!(lines[0].line.origin.file, first[0].2, "new content, new key");
    assert_eq!(truncations, 1, "the truncation is counted");
}

/// Checkpoints written before identities held (device, inode) still resume where they were,
/// with the key (and so the record ids) they had.
#[test]
fn an_old_checkpoint_without_inode_resumes_with_its_old_key() {
    let (root, dir) = setup();
    let log = dir.join("0.log");
    let head = cri("F", BANNER) + &cri("F", "a1");
    append(&log, &(head.clone() + &cri("F", "a2")));
    let old_key = FileKey::new(&dir, cri("F", BANNER).as_bytes());
    let old = serde_json::json!({
        "key": old_key.to_hex(),
        "source": log,
        "path": log,
        "offset": head.len(),
        "size": head.len(),
        "seq": 0,
        "format": "cri",
    });
    let position: FilePosition = serde_json::from_value(old).unwrap();
    let mut t = tailer(root.path(), vec![position]);
    let read = drain_origins(&mut t);
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(
        (read[0].1.as_str(), read[0].2, read[0].3),
        ("a2", old_key, head.len() as u64)
    );
    // The migrated entry now carries its inode: a restart resumes it again.
    append(&log, &cri("F", "a3"));
    let mut t = tailer(root.path(), t.positions());
    let read = drain_origins(&mut t);
    assert_eq!(
        read.iter().map(|r| (r.1.as_str(), r.2)).collect::<Vec<_>>(),
        [("a3", old_key)]
    );
}

/// Operations of the model writers/rotator. Two writers share the pod directory (`0.log`, and
/// `1.log` after a container restart); every file either writes starts with the same banner.
#[derive(Debug, Clone)]
enum Op {
    Write(usize, u8),
    Poll,
    Restart,
    RenameRotate(usize),
    CopyTruncate(usize),
    CompressRotated,
    DeleteRotated,
}

fn writer() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 1 => Just(1usize)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (writer(), 1u8..20).prop_map(|(w, n)| Op::Write(w, n)),
        4 => Just(Op::Poll),
        1 => Just(Op::Restart),
        2 => writer().prop_map(Op::RenameRotate),
        1 => writer().prop_map(Op::CopyTruncate),
        1 => Just(Op::CompressRotated),
        1 => Just(Op::DeleteRotated),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Records read equal lines written, per writer, in order, none missing, none doubled, and
    /// no two records share an id (key, offset) — although every file starts with the same
    /// line. The model polls before it rotates, compresses or deletes (the kubelet rotates at
    /// most every 10 s; the collector scans every 250 ms), which is what makes the guarantee
    /// possible; a file's banner is written with its first line, as an application does.
    #[test]
    fn reads_equal_writes_under_rotation(ops in prop::collection::vec(op(), 1..40)) {
        let (root, dir) = setup();
        let logs = [dir.join("0.log"), dir.join("1.log")];
        let mut written: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        let mut count = 0;
        let mut read: Vec<(String, String, FileKey, u64)> = Vec::new();
        let mut t = tailer(root.path(), vec![]);
        let mut rotations = 0;
        let mut rotated: Vec<PathBuf> = Vec::new();
        for op in ops {
            match op {
                Op::Write(w, n) => {
                    let mut text = String::new();
                    if fs::metadata(&logs[w]).map_or(true, |m| m.len() == 0) {
                        text += &cri("F", BANNER);
                        written[w].push(BANNER.to_owned());
                    }
                    for _ in 0..n {
                        let line = format!("w{w}-line-{count}");
                        count += 1;
                        text += &cri("F", &line);
                        written[w].push(line);
                    }
                    append(&logs[w], &text);
                }
                Op::Poll => read.extend(drain_origins(&mut t)),
                Op::Restart => {
                    read.extend(drain_origins(&mut t));
                    let positions = t.positions();
                    t = tailer(root.path(), positions);
                }
                Op::RenameRotate(w) => {
                    read.extend(drain_origins(&mut t));
                    if logs[w].try_exists().unwrap() {
                        rotations += 1;
                        let to = dir.join(format!("{w}.log.{rotations:04}"));
                        fs::rename(&logs[w], &to).unwrap();
                        rotated.push(to);
                    }
                }
                Op::CopyTruncate(w) => {
                    read.extend(drain_origins(&mut t));
                    if logs[w].try_exists().unwrap() {
                        rotations += 1;
                        let to = dir.join(format!("{w}.log.{rotations:04}"));
                        fs::copy(&logs[w], &to).unwrap();
                        OpenOptions::new().write(true).truncate(true).open(&logs[w]).unwrap();
                        rotated.push(to);
                    }
                }
                Op::CompressRotated => {
                    read.extend(drain_origins(&mut t));
                    if let Some(i) = rotated.iter().position(|p| p.extension().is_none_or(|e| e != "gz")) {
                        let from = rotated.remove(i);
                        let to = PathBuf::from(format!("{}.gz", from.display()));
                        gzip(&from, &to);
                        rotated.push(to);
                    }
                }
                Op::DeleteRotated => {
                    read.extend(drain_origins(&mut t));
                    if !rotated.is_empty() {
                        fs::remove_file(rotated.remove(0)).unwrap();
                    }
                }
            }
        }
        read.extend(drain_origins(&mut t));
        let mut ids = std::collections::HashSet::new();
        for (_, content, key, offset) in &read {
            prop_assert!(ids.insert((*key, *offset)), "two records share the id of ({key:?}, {offset}): {content}");
        }
        for (w, want) in written.iter().enumerate() {
            let name = format!("{w}.log");
            let got: Vec<&String> = read.iter().filter(|r| r.0 == name).map(|r| &r.1).collect();
            let want: Vec<&String> = want.iter().collect();
            prop_assert_eq!(got, want, "writer {}", w);
        }
    }
}
