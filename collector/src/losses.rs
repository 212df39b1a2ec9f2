//! What the tailer gives up on, by reason: the `reason` label of `corral_collector_lost_*`.

/// Why bytes of a file were given up on (the `reason` label of `corral_collector_lost_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// The file was deleted (and no copy of it found) before it was read to its end.
    DeletedBeforeRead,
    /// The file was truncated in place (copytruncate without a copy to finish from) before it
    /// was read to its end.
    TruncatedBeforeRead,
    /// The file could not be read any further (an I/O error, a corrupt gzip stream).
    Unreadable,
    /// A line longer than `max_line_bytes` was kept cut (flagged `truncated`): its rest is lost.
    LineTooLong,
}

impl LossReason {
    /// Every reason, in the order of [`Losses`]' counters.
    pub const ALL: [LossReason; 4] = [
        LossReason::DeletedBeforeRead,
        LossReason::TruncatedBeforeRead,
        LossReason::Unreadable,
        LossReason::LineTooLong,
    ];

    /// Returns the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::DeletedBeforeRead => "deleted_before_read",
            LossReason::TruncatedBeforeRead => "truncated_before_read",
            LossReason::Unreadable => "unreadable",
            LossReason::LineTooLong => "line_too_long",
        }
    }
}

/// What a poll gave up on: files (lines for [`LossReason::LineTooLong`]) and the bytes known
/// unread, by reason. Bytes written after a
/// file was last seen cannot be known, so the byte counts are lower bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses {
    pub files: [u64; LossReason::ALL.len()],
    pub bytes: [u64; LossReason::ALL.len()],
}

impl Losses {
    pub(crate) fn add(&mut self, reason: LossReason, bytes: u64) {
        self.add_many(reason, 1, bytes);
    }

    pub(crate) fn add_many(&mut self, reason: LossReason, times: u64, bytes: u64) {
        let i = reason as usize;
        self.files[i] += times;
        self.bytes[i] += bytes;
    }

    /// Returns (files, bytes) lost for `reason`.
    pub fn get(&self, reason: LossReason) -> (u64, u64) {
        (self.files[reason as usize], self.bytes[reason as usize])
    }
}
