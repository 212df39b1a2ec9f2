//! Where records go: the [`Sink`] seam (DESIGN §3.5). This module has the `stdout` sink
//! (NDJSON envelopes, for debugging and piping).

use std::io::{self, BufWriter, Write};

use corral_schema::Record;

/// Delivers records. `send` returning `Ok` means the records are delivered (acknowledged):
/// the caller may then move checkpoints past them.
pub trait Sink: Send {
    /// Delivers a batch of records, in order.
    fn send(&mut self, records: &[Record]) -> io::Result<()>;
}

/// Writes one JSON envelope per line.
#[derive(Debug)]
pub struct StdoutSink<W: Write + Send> {
    out: BufWriter<W>,
}

impl<W: Write + Send> StdoutSink<W> {
    /// Creates a sink writing to `out`.
    pub fn new(out: W) -> Self {
        StdoutSink {
            out: BufWriter::with_capacity(256 * 1024, out),
        }
    }
}

impl<W: Write + Send> Sink for StdoutSink<W> {
    fn send(&mut self, records: &[Record]) -> io::Result<()> {
        for record in records {
            serde_json::to_writer(&mut self.out, record)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }
}
