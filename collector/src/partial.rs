//! Merging of split lines: CRI `P` chunks and docker lines without `\n` join the next chunks
//! of the same stream, per container, also when the file is rotated between two chunks.
//!
//! A merged line longer than `max_line_bytes` keeps its first `max_line_bytes` bytes and is
//! flagged truncated; memory per stream is bounded by `max_line_bytes`.

use corral_schema::{Stream, Timestamp};

use crate::file_identity::FileKey;
use crate::runtime_format::RuntimeLine;

/// Where a line (or the first chunk of a merged line) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub file: FileKey,
    pub offset: u64,
}

/// A complete application line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledLine {
    /// Start of the (first chunk of the) line: the record's id is derived from it.
    pub origin: Origin,
    /// Start of the last chunk (the same as `origin` for a whole line); in another file when a
    /// rotation fell between two chunks.
    pub last: Origin,
    /// The runtime timestamp of the first chunk.
    pub ts: Option<Timestamp>,
    pub stream: Stream,
    pub content: Vec<u8>,
    /// The line was cut at `max_line_bytes`.
    pub truncated: bool,
    /// Number of runtime chunks merged into this line (1 for a whole line).
    pub chunks: u32,
}

/// Joins partial chunks per stream of one container.
#[derive(Debug)]
pub struct PartialAssembler {
    max_line_bytes: usize,
    open: [Option<AssembledLine>; 2],
    /// Bytes of merged lines not kept, since [`PartialAssembler::take_cut`] was last called.
    cut: u64,
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl PartialAssembler {
    /// Creates an assembler for one container.
    pub fn new(max_line_bytes: usize) -> PartialAssembler {
        PartialAssembler {
            max_line_bytes,
            open: [None, None],
            cut: 0,
        }
    }

    /// Takes the next runtime line of this container; returns the completed line, if any.
    /// `raw_truncated` says the raw line was already cut while reading.
    pub fn push(
        &mut self,
        origin: Origin,
        line: &RuntimeLine<'_>,
        raw_truncated: bool,
    ) -> Option<AssembledLine> {
        let max = self.max_line_bytes;
        let open = &mut self.open[slot(line.stream)];
        let pending = open.get_or_insert_with(|| AssembledLine {
            origin,
            last: origin,
            ts: line.ts,
            stream: line.stream,
            content: Vec::with_capacity(line.content.len().min(max)),
            truncated: false,
            chunks: 0,
        });
        let room = max - pending.content.len();
        if line.content.len() > room {
            pending.truncated = true;
            self.cut += (line.content.len() - room) as u64;
        }
        pending
            .content
            .extend_from_slice(&line.content[..line.content.len().min(room)]);
        pending.truncated |= raw_truncated;
        pending.chunks += 1;
        pending.last = origin;
        if line.partial { None } else { open.take() }
    }

    /// Returns the earliest offset in `file` that an unfinished line still needs: a checkpoint
    /// must not move past it.
    pub fn held_offset(&self, file: FileKey) -> Option<u64> {
        self.open
            .iter()
            .flatten()
            .filter(|p| p.origin.file == file)
            .map(|p| p.origin.offset)
            .min()
    }

    /// Returns and resets the number of bytes of merged lines that were not kept.
    pub fn take_cut(&mut self) -> u64 {
        std::mem::take(&mut self.cut)
    }

    /// Returns true when a line is waiting for its next chunk.
    pub fn has_open(&self) -> bool {
        self.open.iter().any(Option::is_some)
    }

    /// Hands out unfinished lines as they are (shutdown, or the container's logs are gone).
    pub fn flush(&mut self) -> impl Iterator<Item = AssembledLine> + '_ {
        self.open.iter_mut().filter_map(Option::take)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn line(stream: Stream, partial: bool, content: &str) -> RuntimeLine<'static> {
        RuntimeLine {
            ts: None,
            stream,
            partial,
            content: Cow::Owned(content.as_bytes().to_vec()),
        }
    }

    fn at(file: u128, offset: u64) -> Origin {
        Origin {
            file: FileKey(file),
            offset,
        }
    }

    #[test]
    fn merges_per_stream_and_keeps_the_first_origin() {
        let mut a = PartialAssembler::new(1024);
        assert_eq!(a.push(at(1, 0), &line(Stream::Stdout, true, "hel"), false), None);
        assert_eq!(
            a.push(at(1, 10), &line(Stream::Stderr, false, "err"), false)
                .unwrap()
                .content,
            b"err"
        );
        assert_eq!(a.held_offset(FileKey(1)), Some(0));
        // The next chunk comes from another file (rotation between two parts).
        let done = a
            .push(at(2, 0), &line(Stream::Stdout, false, "lo"), false)
            .unwrap();
        assert_eq!(
            (done.origin, done.content.as_slice(), done.chunks),
            (at(1, 0), &b"hello"[..], 2)
        );
        assert_eq!(done.last, at(2, 0), "the last chunk came from the new file");
        assert_eq!(a.held_offset(FileKey(1)), None);
        assert!(!a.has_open());
    }

    #[test]
    fn bounds_merged_lines_and_flushes_leftovers() {
        let mut a = PartialAssembler::new(4);
        assert_eq!(a.push(at(1, 0), &line(Stream::Stdout, true, "abc"), false), None);
        assert_eq!(a.push(at(1, 5), &line(Stream::Stdout, true, "def"), false), None);
        let done = a
            .push(at(1, 9), &line(Stream::Stdout, false, "ghi"), false)
            .unwrap();
        assert_eq!(
            (done.content.as_slice(), done.truncated, done.chunks),
            (&b"abcd"[..], true, 3)
        );
        assert_eq!(a.take_cut(), 5, "the bytes not kept are counted");
        a.push(at(1, 20), &line(Stream::Stderr, true, "dangling"), false);
        let left: Vec<AssembledLine> = a.flush().collect();
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0].content.as_slice(), left[0].truncated),
            (&b"dang"[..], true)
        );
        assert!(!a.has_open());
    }
}
