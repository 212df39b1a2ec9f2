//! Splits a file's bytes into lines, remembering where each starts, with bounded memory.
//!
//! A line longer than the bound keeps its first `max_bytes` bytes and is marked truncated; the
//! rest is skipped as it streams past, so a 100 MiB line costs `max_bytes` of memory, not 100 MiB.

/// Streaming line splitter for one file.
#[derive(Debug)]
pub struct LineSplitter {
    max_bytes: usize,
    /// Bytes of the line in progress (at most `max_bytes`).
    pending: Vec<u8>,
    /// File offset where the line in progress starts.
    line_start: u64,
    /// File offset of the next byte to be pushed.
    read_pos: u64,
    /// The line in progress is longer than `max_bytes`.
    overflow: bool,
    /// Bytes of long lines not kept, since [`LineSplitter::take_cut`] was last called.
    cut: u64,
}

/// One complete line handed to the caller.
#[derive(Debug, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just past the line's `\n`.
    pub end: u64,
    /// The line without `\n`, at most `max_bytes` long.
    pub bytes: &'a [u8],
    /// The line was longer than `max_bytes`.
    pub truncated: bool,
}

impl LineSplitter {
    /// Creates a splitter that starts reading at `offset` (a line start).
    pub fn new(max_bytes: usize, offset: u64) -> LineSplitter {
        LineSplitter {
            max_bytes,
            pending: Vec::new(),
            line_start: offset,
            read_pos: offset,
            overflow: false,
            cut: 0,
        }
    }

    /// Returns the offset of the next byte this splitter expects.
    pub fn read_pos(&self) -> u64 {
        self.read_pos
    }

    /// Returns the offset where the first line not yet handed out starts.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Returns and resets the number of bytes of long lines that were not kept.
    pub fn take_cut(&mut self) -> u64 {
        std::mem::take(&mut self.cut)
    }

    /// Returns true when bytes of an unterminated line are held.
    pub fn has_pending(&self) -> bool {
        self.read_pos > self.line_start
    }

    /// Feeds the next bytes of the file, calling `emit` for every line they complete.
    pub fn push(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(RawLine<'_>)) {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(newline) => {
                    let end = self.read_pos + newline as u64 + 1;
                    if self.pending.is_empty() && !self.overflow {
                        let bytes = &chunk[..newline];
                        let truncated = bytes.len() > self.max_bytes;
                        self.cut += bytes.len().saturating_sub(self.max_bytes) as u64;
                        let bytes = &bytes[..bytes.len().min(self.max_bytes)];
                        emit(RawLine {
                            start: self.line_start,
                            end,
                            bytes,
                            truncated,
                        });
                    } else {
                        self.keep(&chunk[..newline]);
                        emit(RawLine {
                            start: self.line_start,
                            end,
                            bytes: &self.pending,
                            truncated: self.overflow,
                        });
                        self.pending.clear();
                        self.overflow = false;
                    }
                    self.line_start = end;
                    self.read_pos = end;
                    chunk = &chunk[newline + 1..];
                }
                None => {
                    self.keep(chunk);
                    self.read_pos += chunk.len() as u64;
                    chunk = &[];
                }
            }
        }
    }

    /// Hands out the unterminated last line, if any (the file will not grow any more).
    pub fn finish(&mut self, emit: &mut impl FnMut(RawLine<'_>)) {
        if self.has_pending() {
            emit(RawLine {
                start: self.line_start,
                end: self.read_pos,
                bytes: &self.pending,
                truncated: self.overflow,
            });
            self.pending.clear();
            self.overflow = false;
            self.line_start = self.read_pos;
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = self.max_bytes - self.pending.len();
        if bytes.len() > room {
            self.overflow = true;
            self.cut += (bytes.len() - room) as u64;
        }
        self.pending.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<(u64, u64, String, bool)>, LineSplitter) {
        let mut splitter = LineSplitter::new(max, 100);
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut |l| {
                lines.push((
                    l.start,
                    l.end,
                    String::from_utf8_lossy(l.bytes).into_owned(),
                    l.truncated,
                ))
            });
        }
        (lines, splitter)
    }

    #[test]
    fn splits_across_chunks_with_offsets() {
        let (lines, splitter) = split(100, &[b"ab\ncd", b"e\n\nf"]);
        assert_eq!(
            lines,
            vec![
                (100, 103, "ab".into(), false),
                (103, 107, "cde".into(), false),
                (107, 108, "".into(), false)
            ]
        );
        assert_eq!((splitter.line_start(), splitter.read_pos()), (108, 109));
        assert!(splitter.has_pending());
    }

    #[test]
    fn long_lines_are_cut_and_flagged_with_bounded_memory() {
        let big = vec![b'x'; 10_000];
        let (lines, splitter) = split(8, &[b"short\n", &big, &big, b"tail\nok\n"]);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], (100, 106, "short".into(), false));
        assert_eq!(lines[1], (106, 106 + 20_005, "xxxxxxxx".into(), true));
        assert_eq!(lines[2], (20_111, 20_114, "ok".into(), false));
        assert!(splitter.pending.capacity() < 1024, "memory stays bounded");
        let mut splitter = splitter;
        assert_eq!(
            splitter.take_cut(),
            20_005 - 1 - 8,
            "the bytes not kept are counted"
        );
        // A long line inside one chunk is cut too.
        let (lines, _) = split(3, &[b"abcdef\n"]);
        assert_eq!(lines, vec![(100, 107, "abc".into(), true)]);
    }

    #[test]
    fn finish_hands_out_the_unterminated_tail() {
        let (_, mut splitter) = split(100, &[b"a\nunterminated"]);
        let mut tail = Vec::new();
        splitter.finish(&mut |l| tail.push((l.start, l.end, l.bytes.to_vec())));
        assert_eq!(tail, vec![(102, 114, b"unterminated".to_vec())]);
        assert!(!splitter.has_pending());
    }
}
