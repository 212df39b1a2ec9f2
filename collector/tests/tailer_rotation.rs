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

/// Operations of the model writer/rotator.
#[derive(Debug, Clone)]
enum Op {
    Write(u8),
    Poll,
    Restart,
    RenameRotate,
    CopyTruncate,
    CompressRotated,
    DeleteRotated,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..20).prop_map(Op::Write),
        4 => Just(Op::Poll),
        1 => Just(Op::Restart),
        2 => Just(Op::RenameRotate),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::CompressRotated),
        1 => Just(Op::DeleteRotated),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Records read equal lines written, in order, none missing, none doubled. The model polls
    /// before it rotates, compresses or deletes (the kubelet rotates at most every 10 s; the
    /// collector scans every 250 ms), which is what makes the guarantee possible.
    #[test]
    fn reads_equal_writes_under_rotation(ops in prop::collection::vec(op(), 1..40)) {
        let (root, dir) = setup();
        let log = dir.join("0.log");
        let mut written: Vec<String> = Vec::new();
        let mut read: Vec<String> = Vec::new();
        let mut t = tailer(root.path(), vec![]);
        let mut rotations = 0;
        let mut rotated: Vec<PathBuf> = Vec::new();
        for op in ops {
            match op {
                Op::Write(n) => {
                    let mut text = String::new();
                    for _ in 0..n {
                        let line = format!("line-{}", written.len());
                        text += &cri("F", &line);
                        written.push(line);
                    }
                    append(&log, &text);
                }
                Op::Poll => read.extend(drain(&mut t)),
                Op::Restart => {
                    read.extend(drain(&mut t));
                    let positions = t.positions();
                    t = tailer(root.path(), positions);
                }
                Op::RenameRotate => {
                    read.extend(drain(&mut t));
                    if log.exists() {
                        rotations += 1;
                        let to = dir.join(format!("0.log.{rotations:04}"));
                        fs::rename(&log, &to).unwrap();
                        rotated.push(to);
                    }
                }
                Op::CopyTruncate => {
                    read.extend(drain(&mut t));
                    if log.exists() {
                        rotations += 1;
                        let to = dir.join(format!("0.log.{rotations:04}"));
                        fs::copy(&log, &to).unwrap();
                        OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
                        rotated.push(to);
                    }
                }
                Op::CompressRotated => {
                    read.extend(drain(&mut t));
                    if let Some(i) = rotated.iter().position(|p| p.extension().is_none_or(|e| e != "gz")) {
                        let from = rotated.remove(i);
                        let to = PathBuf::from(format!("{}.gz", from.display()));
                        gzip(&from, &to);
                        rotated.push(to);
                    }
                }
                Op::DeleteRotated => {
                    read.extend(drain(&mut t));
                    if !rotated.is_empty() {
                        fs::remove_file(rotated.remove(0)).unwrap();
                    }
                }
            }
        }
        read.extend(drain(&mut t));
        prop_assert_eq!(read, written);
    }
}
