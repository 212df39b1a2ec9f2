//! Where records go: the [`Sink`] seam (DESIGN §3.5).
//!
//! A sink takes batches of records, each with the [`Ticket`] the collector issued for it, and
//! later reports which tickets are acknowledged — delivered for good. The collector moves a
//! file's checkpoint only over acknowledged records, so what a sink has not acknowledged is
//! read and sent again after a crash (with the same ids).
//!
//! - [`StdoutSink`]: NDJSON envelopes on a writer; acknowledged once written and flushed.
//! - [`channel`]: an in-process pair for standalone mode; the receiving side (the indexer)
//!   acknowledges, so its commit drives the collector's checkpoints.

use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};

use corral_schema::Record;

pub use crate::ack::Ticket;

/// Delivers records and reports their acknowledgements.
pub trait Sink: Send {
    /// Hands a batch over for delivery, in order. An error means the sink cannot deliver any
    /// more (the collector stops; nothing unacknowledged is checkpointed).
    fn send(&mut self, batch: Vec<(Ticket, Record)>) -> io::Result<()>;

    /// Appends the tickets acknowledged since the last call to `acks`, without blocking.
    fn poll_acks(&mut self, acks: &mut Vec<Ticket>);

    /// Returns what currently keeps the sink from delivering (for `/readyz`), if anything.
    fn problem(&self) -> Option<String> {
        None
    }

    /// Returns and resets the number of failed delivery attempts since the last call.
    fn take_delivery_errors(&mut self) -> u64 {
        0
    }

    /// Returns and resets the number of failed attempts to hand a record over again after a
    /// failed delivery (the record waits and is tried again with backoff).
    fn take_resend_failures(&mut self) -> u64 {
        0
    }

    /// Returns and resets (records, bytes) cut from records to fit the sink's message size limit
    /// (the records are delivered cut and flagged `truncated`).
    fn take_message_cuts(&mut self) -> (u64, u64) {
        (0, 0)
    }
}

/// Writes one JSON envelope per line.
#[derive(Debug)]
pub struct StdoutSink<W: Write + Send> {
    out: BufWriter<W>,
    acked: Vec<Ticket>,
}

impl<W: Write + Send> StdoutSink<W> {
    /// Creates a sink writing to `out`.
    pub fn new(out: W) -> Self {
        StdoutSink {
            out: BufWriter::with_capacity(256 * 1024, out),
            acked: Vec::new(),
        }
    }
}

impl<W: Write + Send> Sink for StdoutSink<W> {
    fn send(&mut self, batch: Vec<(Ticket, Record)>) -> io::Result<()> {
        for (_, record) in &batch {
            serde_json::to_writer(&mut self.out, record)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()?;
        self.acked.extend(batch.iter().map(|(ticket, _)| *ticket));
        Ok(())
    }

    fn poll_acks(&mut self, acks: &mut Vec<Ticket>) {
        acks.append(&mut self.acked);
    }
}

/// Creates the in-process sink/receiver pair of standalone mode. At most `capacity` batches
/// wait in the channel; beyond that `send` blocks, which pauses reading (the files are the
/// buffer).
pub fn channel(capacity: usize) -> (ChannelSink, ChannelReceiver) {
    let (batch_tx, batch_rx) = mpsc::sync_channel(capacity);
    let (ack_tx, ack_rx) = mpsc::channel();
    (
        ChannelSink { batch_tx, ack_rx },
        ChannelReceiver { batch_rx, ack_tx },
    )
}

/// The collector's end of [`channel`].
#[derive(Debug)]
pub struct ChannelSink {
    batch_tx: SyncSender<Vec<(Ticket, Record)>>,
    ack_rx: Receiver<Vec<Ticket>>,
}

/// The consumer's end of [`channel`]: receives batches and acknowledges them once durable.
#[derive(Debug)]
pub struct ChannelReceiver {
    batch_rx: Receiver<Vec<(Ticket, Record)>>,
    ack_tx: Sender<Vec<Ticket>>,
}

impl Sink for ChannelSink {
    fn send(&mut self, batch: Vec<(Ticket, Record)>) -> io::Result<()> {
        self.batch_tx
            .send(batch)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the channel's receiver is gone"))
    }

    fn poll_acks(&mut self, acks: &mut Vec<Ticket>) {
        loop {
            match self.ack_rx.try_recv() {
                Ok(mut tickets) => acks.append(&mut tickets),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }
}

impl ChannelReceiver {
    /// Waits for the next batch; `None` when the collector has gone.
    pub fn recv(&self) -> Option<Vec<(Ticket, Record)>> {
        self.batch_rx.recv().ok()
    }

    /// Waits up to `timeout` for the next batch. `Ok(None)` on timeout, `Err` when the
    /// collector has gone and nothing is left.
    pub fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<Vec<(Ticket, Record)>>, mpsc::RecvTimeoutError> {
        match self.batch_rx.recv_timeout(timeout) {
            Ok(batch) => Ok(Some(batch)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Returns the next batch if one is waiting.
    pub fn try_recv(&self) -> Option<Vec<(Ticket, Record)>> {
        self.batch_rx.try_recv().ok()
    }

    /// Acknowledges records: the collector may checkpoint past them.
    pub fn ack(&self, tickets: Vec<Ticket>) {
        // A collector that is gone needs no acknowledgement.
        let _ = self.ack_tx.send(tickets);
    }
}
