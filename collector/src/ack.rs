//! Acknowledgement tracking: a file's checkpoint moves only over lines the sink has
//! acknowledged, whatever order acknowledgements come back in (DESIGN §3.3).
//!
//! Every record handed to a sink gets a ticket that *holds* the offsets its line came from (the
//! first chunk's, and the last chunk's too when a rotation fell between them). A file's
//! checkpoint is the smallest of the tailer's position and every offset still held in it; an
//! acknowledgement releases the ticket's holds.

use std::collections::{BTreeMap, HashMap};

use crate::file_identity::FileKey;
use crate::partial::AssembledLine;

/// Identifies one record in flight.
pub type Ticket = u64;

/// Offsets held by records not yet acknowledged.
#[derive(Debug, Default)]
pub struct AckTracker {
    next: Ticket,
    in_flight: HashMap<Ticket, Held>,
    held: HashMap<FileKey, BTreeMap<u64, u32>>,
    bytes: usize,
}

/// What one ticket holds back: the offsets of its first (and, across a rotation, last) chunk.
#[derive(Debug)]
struct Held {
    first: (FileKey, u64),
    last: Option<(FileKey, u64)>,
    bytes: usize,
}

impl AckTracker {
    /// Issues the ticket of a record built from `line`, `bytes` long once serialized.
    pub fn issue(&mut self, line: &AssembledLine, bytes: usize) -> Ticket {
        let ticket = self.next;
        self.next += 1;
        let first = (line.origin.file, line.origin.offset);
        let last = (line.last.file != line.origin.file).then_some((line.last.file, line.last.offset));
        for (file, offset) in std::iter::once(first).chain(last) {
            *self.held.entry(file).or_default().entry(offset).or_default() += 1;
        }
        self.in_flight.insert(ticket, Held { first, last, bytes });
        self.bytes += bytes;
        ticket
    }

    /// Releases an acknowledged ticket; unknown or repeated tickets are ignored.
    pub fn ack(&mut self, ticket: Ticket) {
        let Some(holds) = self.in_flight.remove(&ticket) else {
            return;
        };
        self.bytes -= holds.bytes;
        for (file, offset) in std::iter::once(holds.first).chain(holds.last) {
            if let Some(offsets) = self.held.get_mut(&file) {
                if let Some(count) = offsets.get_mut(&offset) {
                    *count -= 1;
                    if *count == 0 {
                        offsets.remove(&offset);
                    }
                }
                if offsets.is_empty() {
                    self.held.remove(&file);
                }
            }
        }
    }

    /// Returns the smallest offset of `file` held by an unacknowledged record.
    pub fn held_offset(&self, file: FileKey) -> Option<u64> {
        self.held
            .get(&file)
            .and_then(|offsets| offsets.keys().next().copied())
    }

    /// Returns the number of records in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Returns the serialized bytes of records in flight.
    pub fn in_flight_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use corral_schema::Stream;

    use super::*;
    use crate::partial::Origin;

    fn line(file: u128, offset: u64, last: Option<(u128, u64)>) -> AssembledLine {
        let origin = Origin {
            file: FileKey(file),
            offset,
        };
        let last = last.map_or(origin, |(f, o)| Origin {
            file: FileKey(f),
            offset: o,
        });
        AssembledLine {
            origin,
            last,
            ts: None,
            stream: Stream::Stdout,
            content: vec![],
            truncated: false,
            chunks: 1,
        }
    }

    #[test]
    fn out_of_order_acks_release_only_the_smallest_contiguous_prefix() {
        let mut tracker = AckTracker::default();
        let tickets: Vec<Ticket> = [0u64, 10, 20, 30]
            .iter()
            .map(|o| tracker.issue(&line(1, *o, None), 100))
            .collect();
        assert_eq!(tracker.held_offset(FileKey(1)), Some(0));
        // Partition B acknowledges before partition A.
        tracker.ack(tickets[2]);
        tracker.ack(tickets[1]);
        assert_eq!(
            tracker.held_offset(FileKey(1)),
            Some(0),
            "line 0 is still in flight"
        );
        tracker.ack(tickets[0]);
        assert_eq!(tracker.held_offset(FileKey(1)), Some(30));
        assert_eq!((tracker.in_flight(), tracker.in_flight_bytes()), (1, 100));
        tracker.ack(tickets[3]);
        tracker.ack(tickets[3]);
        assert_eq!(tracker.held_offset(FileKey(1)), None);
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn a_line_merged_across_a_rotation_holds_both_files() {
        let mut tracker = AckTracker::default();
        let ticket = tracker.issue(&line(1, 500, Some((2, 0))), 10);
        assert_eq!(
            (tracker.held_offset(FileKey(1)), tracker.held_offset(FileKey(2))),
            (Some(500), Some(0))
        );
        tracker.ack(ticket);
        assert_eq!(
            (tracker.held_offset(FileKey(1)), tracker.held_offset(FileKey(2))),
            (None, None)
        );
    }
}
