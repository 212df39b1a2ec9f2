//! The running fleet: a writer thread appending CRI lines to the pods' files.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use corral_collector::metadata::PodMeta;
use corral_schema::Timestamp;

use crate::generator::{Entry, FleetGenerator, Request};
use crate::shop::SimPod;

pub(crate) const NANOS_PER_MS: i64 = 1_000_000;
/// How long the writer thread sleeps between batches; also the longest wait for a stop.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// Upper bound of a request's span, from the gateway's first record to its last; guaranteed
/// by the latencies below (the slowest chain stays under 1 s).
pub(crate) const MAX_REQUEST_SPAN_NS: i64 = 2_000 * NANOS_PER_MS;
/// Requests written by [`Fleet::start`] before it returns, the showcase request among them.
pub(crate) const WARMUP_REQUESTS: usize = 24;
/// How far in the past the warm-up starts: pod startup, then the warm-up requests, all of them
/// finished (by [`MAX_REQUEST_SPAN_NS`]) before `start` returns.
const WARMUP_NS: i64 = 10_000 * NANOS_PER_MS;
/// Time from the warm-up start to its first request (the pods start in between).
const WARMUP_STARTUP_NS: i64 = 2_000 * NANOS_PER_MS;
/// Time between two warm-up requests.
const WARMUP_SPACING_NS: i64 = 200 * NANOS_PER_MS;
/// Longest stretch of missed arrivals the writer catches up after a stall (a suspended laptop, a
/// stopped process): older arrivals are skipped, so a stall never turns into a burst of lines.
pub(crate) const MAX_CATCH_UP_NS: i64 = 5_000 * NANOS_PER_MS;
/// Highest accepted request rate: pending lines stay bounded (rate × request span).
pub const MAX_REQUESTS_PER_SECOND: u32 = 5_000;

/// What the demo fleet writes, where and how fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// Directory holding the pod directories; created if missing.
    pub root: PathBuf,
    /// Mean arrival rate of requests at the gateway (Poisson arrivals); 0 writes the warm-up
    /// requests only. At most [`MAX_REQUESTS_PER_SECOND`].
    pub requests_per_second: u32,
    /// Seed of everything generated: pod names, ids, latencies, outcomes.
    pub seed: u64,
}

impl Default for FleetConfig {
    /// Returns `demo-logs`, 20 requests per second and a fixed seed.
    fn default() -> Self {
        FleetConfig {
            root: PathBuf::from("demo-logs"),
            requests_per_second: 20,
            seed: 0x00c0_ffee_5eed,
        }
    }
}

/// A running demo fleet: its writer thread appends to the pods' log files until stopped.
#[derive(Debug)]
pub struct Fleet {
    root: PathBuf,
    pods: Vec<PodMeta>,
    showcase_corr: String,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fleet {
    /// Creates the pod directories, writes the first requests (including the showcase request)
    /// synchronously, then starts the writer thread.
    ///
    /// The warm-up is dated in the last ten seconds, so records are fresh. Files are opened with
    /// `O_APPEND`; a root that already holds the fleet's files gets the next restart's files
    /// (see the module docs).
    pub fn start(config: FleetConfig) -> io::Result<Fleet> {
        let rate = config.requests_per_second;
        if rate > MAX_REQUESTS_PER_SECOND {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("demo requests_per_second {rate} exceeds {MAX_REQUESTS_PER_SECOND}"),
            ));
        }
        let pods = FleetGenerator::new(config.seed, 0).pods().to_vec();
        let restart = next_restart(&config.root, &pods)?;
        let mut generator = FleetGenerator::new(config.seed, restart);
        let written = Arc::new(AtomicU64::new(0));
        let mut writer = FleetWriter::open(&config.root, &pods, restart, Arc::clone(&written))?;

        let now = Timestamp::now().unix_nanos();
        let warmup = now - WARMUP_NS;
        writer.push(generator.startup(warmup));
        let mut showcase_corr = String::new();
        for i in 0..WARMUP_REQUESTS {
            let start = warmup + WARMUP_STARTUP_NS + i as i64 * WARMUP_SPACING_NS;
            let request = if i == WARMUP_REQUESTS / 2 {
                let request = generator.showcase(start);
                showcase_corr.clone_from(&request.corr);
                request
            } else {
                generator.random_request(start)
            };
            writer.push_request(request);
        }
        writer.flush(now)?;

        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("corral-demo-fleet".into())
            .spawn(move || run_writer(generator, writer, rate, now, &thread_stop))?;
        Ok(Fleet {
            root: config.root,
            pods: pods.iter().map(SimPod::meta).collect(),
            showcase_corr,
            written,
            stop,
            thread: Some(thread),
        })
    }

    /// Correlation id of a request, already written when `start` returns, whose records touch
    /// every service: an order whose charge fails on the `payments` canary.
    pub fn showcase_corr(&self) -> &str {
        &self.showcase_corr
    }

    /// Returns a glob matching every log file the fleet writes: `<root>/*/*/*.log`.
    pub fn log_glob(&self) -> String {
        format!(
            "{}/*/*/*.log",
            glob::Pattern::escape(&self.root.to_string_lossy())
        )
    }

    /// Returns the metadata of every simulated pod, with the labels
    /// `app.kubernetes.io/name|version|instance` that [`corral_collector::metadata::resolve`] turns into
    /// service, version and instance (the pod name).
    pub fn pods(&self) -> Vec<PodMeta> {
        self.pods.clone()
    }

    /// Returns the number of requests whose lines have all been written.
    pub fn requests_written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Stops the writer thread and waits for it. Lines dated after the stop are never written.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::Release);
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::error!("demo fleet writer thread panicked");
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The writer thread: every tick, generates the requests that arrived since the last one and
/// writes every line whose time has come. Ends at the stop flag or at the first write error.
fn run_writer(
    mut generator: FleetGenerator,
    mut writer: FleetWriter,
    rate: u32,
    mut next_arrival: i64,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        let now = Timestamp::now().unix_nanos();
        if rate > 0 {
            next_arrival = next_arrival.max(now - MAX_CATCH_UP_NS);
            while next_arrival <= now {
                writer.push_request(generator.random_request(next_arrival));
                next_arrival += generator.arrival_gap(rate);
            }
        }
        if let Err(error) = writer.flush(now) {
            tracing::error!("demo fleet stops writing: {error}");
            return;
        }
        // `Fleet::shutdown` unparks the thread, so a stop does not wait for the tick.
        thread::park_timeout(TICK);
    }
}

/// Returns the restart number of the next run: one more than the highest `<n>.log` of any pod,
/// 0 when there is none.
fn next_restart(root: &Path, pods: &[SimPod]) -> io::Result<u64> {
    let mut next = 0;
    for pod in pods {
        let dir = root.join(pod.container_dir());
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot list demo directory {}: {e}", dir.display()),
                ));
            }
        };
        for entry in entries {
            let name = entry?.file_name();
            let restart = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log")?.parse::<u64>().ok());
            if let Some(restart) = restart {
                next = next.max(restart + 1);
            }
        }
    }
    Ok(next)
}

/// Appends generated lines to the pods' files in time order.
#[derive(Debug)]
struct FleetWriter {
    files: Vec<File>,
    /// Per pod, the CRI timestamp of the last line written: a file's timestamps never go back.
    last_ts: Vec<i64>,
    /// Lines not yet due, kept in (time, sequence) order at each flush.
    pending: Vec<Entry>,
    /// End times of the requests not yet completely written.
    pending_ends: BinaryHeap<Reverse<i64>>,
    written: Arc<AtomicU64>,
    buffers: Vec<Vec<u8>>,
}

impl FleetWriter {
    /// Creates every pod's container directory and opens its `<restart>.log` for appending.
    fn open(root: &Path, pods: &[SimPod], restart: u64, written: Arc<AtomicU64>) -> io::Result<FleetWriter> {
        let mut files = Vec::with_capacity(pods.len());
        for pod in pods {
            let path = root.join(pod.container_dir()).join(format!("{restart}.log"));
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot create demo directory {}: {e}", dir.display()),
                    )
                })?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot open demo log {}: {e}", path.display()))
                })?;
            files.push(file);
        }
        Ok(FleetWriter {
            last_ts: vec![i64::MIN; files.len()],
            buffers: vec![Vec::new(); files.len()],
            files,
            pending: Vec::new(),
            pending_ends: BinaryHeap::new(),
            written,
        })
    }

    fn push(&mut self, entries: Vec<Entry>) {
        self.pending.extend(entries);
    }

    fn push_request(&mut self, request: Request) {
        self.pending_ends.push(Reverse(request.end));
        self.pending.extend(request.entries);
    }

    /// Writes every pending line dated at or before `until`, one `write` per file, and counts
    /// the requests thereby completed.
    fn flush(&mut self, until: i64) -> io::Result<()> {
        self.pending.sort_by_key(|entry| (entry.at, entry.seq));
        let due = self.pending.partition_point(|entry| entry.at <= until);
        for entry in self.pending.drain(..due) {
            let ts = entry.at.max(self.last_ts[entry.pod]);
            self.last_ts[entry.pod] = ts;
            let buffer = &mut self.buffers[entry.pod];
            buffer.extend_from_slice(&Timestamp::from_unix_nanos(ts).to_rfc3339_bytes());
            buffer.push(b' ');
            buffer.extend_from_slice(entry.stream.as_str().as_bytes());
            buffer.extend_from_slice(b" F ");
            buffer.extend_from_slice(entry.content.as_bytes());
            buffer.push(b'\n');
        }
        for (file, buffer) in self.files.iter_mut().zip(&mut self.buffers) {
            if !buffer.is_empty() {
                file.write_all(buffer)?;
                file.flush()?;
                buffer.clear();
            }
        }
        let mut completed = 0;
        while self.pending_ends.peek().is_some_and(|Reverse(end)| *end <= until) {
            self.pending_ends.pop();
            completed += 1;
        }
        self.written.fetch_add(completed, Ordering::AcqRel);
        Ok(())
    }
}
