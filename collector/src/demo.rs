//! The demo fleet: a background thread that writes the container logs of a small simulated shop,
//! so `corral-indexer standalone --demo` shows the pipeline at work without a cluster.
//!
//! Five services in namespace `shop` call each other: `gateway` → `orders` → `inventory`,
//! `payments` → `notifications`; a product listing only goes `gateway` → `inventory`, a login
//! stays in `gateway`. Each service runs two or three pods; `payments` runs 2.3.0 on two pods
//! and a 2.4.0 canary on one, and the canary fails about 15 % of its charges (2.3.0: 1 %).
//!
//! Files follow the kubelet layout `<root>/shop_<pod>_<uid>/<container>/<restart>.log`, one CRI
//! line per application line (`<RFC3339Nano> stdout|stderr F <content>`). A fresh root gets
//! `0.log`; a fleet started again on the same root is a restart of the same pods and writes
//! `1.log`, `2.log` … as the kubelet does, so every file stays in time order and the new run's
//! correlation ids differ from the last run's.
//!
//! Each service prints JSON the way a different logging library does (log-formats.md §B):
//! `gateway` Go slog, `orders` pino, `payments` logstash-logback-encoder, `inventory` structlog,
//! `notifications` zap. Each uses its own correlation key, all carrying the request's 32-hex id.
//! Errors are followed by a Java or Python stack trace on stderr, one CRI line per trace line,
//! and every pod starts with a few plain-text lines.
//!
//! Generation (`FleetGenerator`) is deterministic for a seed and does no I/O, so tests call it
//! directly; the writer (`FleetWriter`) writes a line once the wall clock reaches its timestamp,
//! so every file is in time order although requests overlap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use corral_schema::{Level, Stream, Timestamp};

use crate::metadata::PodMeta;

/// Namespace of every simulated pod.
const NAMESPACE: &str = "shop";
/// Version of the `payments` canary; the stable pods run [`PAYMENTS_STABLE_VERSION`].
const PAYMENTS_CANARY_VERSION: &str = "2.4.0";
const PAYMENTS_STABLE_VERSION: &str = "2.3.0";
/// Share of charges that fail with an exception, per `payments` version.
const CANARY_ERROR_RATE: f64 = 0.15;
const STABLE_ERROR_RATE: f64 = 0.01;
/// The Kubernetes name-suffix alphabet (`k8s.io/apimachinery` `rand.SafeEncodeString`).
const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const NANOS_PER_MS: i64 = 1_000_000;
/// How long the writer thread sleeps between batches; also the longest wait for a stop.
const TICK: Duration = Duration::from_millis(100);
/// Upper bound of a request's span, from the gateway's first record to its last; guaranteed
/// by the latencies below (the slowest chain stays under 1 s).
const MAX_REQUEST_SPAN_NS: i64 = 2_000 * NANOS_PER_MS;
/// Requests written by [`Fleet::start`] before it returns, the showcase request among them.
const WARMUP_REQUESTS: usize = 24;
/// How far in the past the warm-up starts: pod startup, then the warm-up requests, all of them
/// finished (by [`MAX_REQUEST_SPAN_NS`]) before `start` returns.
const WARMUP_NS: i64 = 10_000 * NANOS_PER_MS;
/// Time from the warm-up start to its first request (the pods start in between).
const WARMUP_STARTUP_NS: i64 = 2_000 * NANOS_PER_MS;
/// Time between two warm-up requests.
const WARMUP_SPACING_NS: i64 = 200 * NANOS_PER_MS;
/// Longest stretch of missed arrivals the writer catches up after a stall (a suspended laptop, a
/// stopped process): older arrivals are skipped, so a stall never turns into a burst of lines.
const MAX_CATCH_UP_NS: i64 = 5_000 * NANOS_PER_MS;
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
    /// `app.kubernetes.io/name|version|instance` that [`crate::metadata::resolve`] turns into
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

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny and well mixed. The fleet needs reproducible
/// variety, not cryptographic randomness.
#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a uniform integer in `0..n`; `n` must be positive.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Returns a uniform float in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Returns nanoseconds between `lo_ms` and `hi_ms`, uniformly.
    fn uniform_ms(&mut self, lo_ms: f64, hi_ms: f64) -> i64 {
        ((lo_ms + (hi_ms - lo_ms) * self.unit()) * 1e6) as i64
    }

    /// Returns nanoseconds between `lo_ms` and `hi_ms`, skewed towards `lo_ms`: most calls are
    /// fast, a few are slow.
    fn latency_ms(&mut self, lo_ms: f64, hi_ms: f64) -> i64 {
        let u = self.unit();
        ((lo_ms + (hi_ms - lo_ms) * u * u * u) * 1e6) as i64
    }

    /// Returns `digits` lowercase hex digits.
    fn hex(&mut self, digits: usize) -> String {
        let mut out = String::with_capacity(digits);
        while out.len() < digits {
            let _ = write!(out, "{:016x}", self.next_u64());
        }
        out.truncate(digits);
        out
    }

    /// Returns `len` characters of the Kubernetes name-suffix alphabet.
    fn k8s_suffix(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(*self.pick(K8S_ALPHABET))).collect()
    }
}

/// One service of the shop; each prints JSON the way a different logging library does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Service {
    /// Go, log/slog JSONHandler: `time` RFC 3339 ns, `level` INFO, `msg`, `correlation_id`.
    Gateway,
    /// Node, pino: `level` 30, `time` epoch ms, `msg` last, `corr`.
    Orders,
    /// Java, logstash-logback-encoder: `@timestamp` ms, `level` + `level_value`, `message`,
    /// `correlationId` from the MDC.
    Payments,
    /// Python, structlog: `event`, `level` warning, `timestamp` µs, `request_id`.
    Inventory,
    /// Go, zap: `level`, `ts` float epoch seconds, `msg`, `trace_id`.
    Notifications,
}

impl Service {
    #[cfg(test)]
    const ALL: [Service; 5] = [
        Service::Gateway,
        Service::Orders,
        Service::Payments,
        Service::Inventory,
        Service::Notifications,
    ];

    fn name(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::Orders => "orders",
            Service::Payments => "payments",
            Service::Inventory => "inventory",
            Service::Notifications => "notifications",
        }
    }
}

/// The Deployments of the shop: service, version, replicas.
const DEPLOYMENTS: [(Service, &str, usize); 6] = [
    (Service::Gateway, "1.8.2", 2),
    (Service::Orders, "3.1.0", 3),
    (Service::Payments, PAYMENTS_STABLE_VERSION, 2),
    (Service::Payments, PAYMENTS_CANARY_VERSION, 1),
    (Service::Inventory, "5.0.3", 2),
    (Service::Notifications, "0.9.4", 2),
];

/// One simulated pod, with a single container named after its service.
#[derive(Debug, Clone)]
struct SimPod {
    service: Service,
    version: &'static str,
    /// Deployment-style name: `orders-7d9f8b6c4-x2k9p`.
    name: String,
    /// The ReplicaSet owning the pod: `orders-7d9f8b6c4`.
    owner: String,
    uid: String,
}

impl SimPod {
    fn container(&self) -> &'static str {
        self.service.name()
    }

    /// `shop_<pod>_<uid>/<container>`, as the kubelet lays it out.
    fn container_dir(&self) -> PathBuf {
        PathBuf::from(format!("{NAMESPACE}_{}_{}", self.name, self.uid)).join(self.container())
    }

    fn meta(&self) -> PodMeta {
        let labels = [
            ("app.kubernetes.io/name", self.service.name()),
            ("app.kubernetes.io/version", self.version),
            ("app.kubernetes.io/instance", self.name.as_str()),
            ("app.kubernetes.io/part-of", NAMESPACE),
        ];
        PodMeta {
            namespace: NAMESPACE.to_owned(),
            name: self.name.clone(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            annotations: Default::default(),
            containers: [(
                self.container().to_owned(),
                format!(
                    "registry.local/{NAMESPACE}/{}:{}",
                    self.service.name(),
                    self.version
                ),
            )]
            .into(),
            owner: Some(self.owner.clone()),
        }
    }
}

/// One line to write: an application line of one pod at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Nanoseconds since the Unix epoch.
    at: i64,
    /// Generation order: orders lines of the same instant (a stack trace stays in one piece).
    seq: u64,
    /// Index into [`FleetGenerator::pods`].
    pod: usize,
    stream: Stream,
    /// The application's line, without `\n`.
    content: String,
}

/// One generated request: its correlation id, its end and its lines (the first one is the
/// gateway's, at the request's arrival).
#[derive(Debug, Clone)]
struct Request {
    corr: String,
    /// Time of the request's last line.
    end: i64,
    entries: Vec<Entry>,
}

/// Where the lines of one request (or of the pods' startup) are collected.
#[derive(Debug)]
struct Trace {
    corr: Option<String>,
    user_id: String,
    /// Forces the showcase path: the charge goes to the canary and fails.
    showcase: bool,
    entries: Vec<Entry>,
}

/// What the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `GET /api/products`: gateway → inventory.
    ListProducts,
    /// `GET /api/orders/{id}`: gateway → orders.
    GetOrder,
    /// `POST /api/orders`: gateway → orders → inventory, payments → notifications.
    PlaceOrder,
    /// `POST /api/login`: gateway only.
    Login,
}

/// Outcome of a stock reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reservation {
    Reserved,
    OutOfStock,
    Failed,
}

/// Outcome of a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    Captured,
    Declined,
    Failed,
}

/// A JSON value of a generated record.
#[derive(Debug, Clone)]
enum Val {
    Str(String),
    Int(i64),
    /// A number printed with a fixed count of decimals (amounts, durations).
    Fixed(f64, usize),
    Bool(bool),
    Obj(Vec<(&'static str, Val)>),
}

impl From<&str> for Val {
    fn from(value: &str) -> Val {
        Val::Str(value.to_owned())
    }
}

impl From<&String> for Val {
    fn from(value: &String) -> Val {
        Val::Str(value.clone())
    }
}

impl From<i64> for Val {
    fn from(value: i64) -> Val {
        Val::Int(value)
    }
}

impl From<bool> for Val {
    fn from(value: bool) -> Val {
        Val::Bool(value)
    }
}

/// Milliseconds with three decimals, from nanoseconds.
fn millis(nanos: i64) -> Val {
    Val::Fixed(nanos as f64 / 1e6, 3)
}

/// An amount in euros, from cents.
fn euros(cents: i64) -> Val {
    Val::Fixed(cents as f64 / 100.0, 2)
}

/// Builds one JSON object line, keys in the order written (as the logging libraries print them).
#[derive(Debug)]
struct JsonLine {
    out: String,
}

impl JsonLine {
    fn new() -> JsonLine {
        JsonLine {
            out: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_json_str(&mut self.out, key);
        self.out.push(':');
    }

    fn field(&mut self, key: &str, value: &Val) -> &mut JsonLine {
        self.key(key);
        push_json_value(&mut self.out, value);
        self
    }

    fn str(&mut self, key: &str, value: &str) -> &mut JsonLine {
        self.key(key);
        push_json_str(&mut self.out, value);
        self
    }

    /// Writes `value` as it is: a number.
    fn raw(&mut self, key: &str, value: impl std::fmt::Display) -> &mut JsonLine {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    fn fields(&mut self, fields: &[(&str, Val)]) -> &mut JsonLine {
        for (key, value) in fields {
            self.field(key, value);
        }
        self
    }

    fn finish(&mut self) -> String {
        self.out.push('}');
        std::mem::take(&mut self.out)
    }
}

fn push_json_value(out: &mut String, value: &Val) {
    match value {
        Val::Str(text) => push_json_str(out, text),
        Val::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Val::Fixed(x, decimals) => {
            let _ = write!(out, "{x:.decimals$}");
        }
        Val::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Val::Obj(fields) => {
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(out, key);
                out.push(':');
                push_json_value(out, value);
            }
            out.push('}');
        }
    }
}

fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Products on sale: sku, category, price in cents.
const PRODUCTS: [(&str, &str, i64); 8] = [
    ("SKU-1042-BLK", "shoes", 8990),
    ("SKU-1043-WHT", "shoes", 9490),
    ("SKU-2210-NVY", "jackets", 15900),
    ("SKU-2215-OLV", "jackets", 18900),
    ("SKU-3301-TAN", "bags", 6490),
    ("SKU-3307-BLK", "bags", 12900),
    ("SKU-4120-SLV", "accessories", 2490),
    ("SKU-4188-GLD", "accessories", 3990),
];
const CATEGORIES: [&str; 4] = ["shoes", "jackets", "bags", "accessories"];
const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36",
    "ShopApp/4.2.1 (iPhone; iOS 17.5)",
    "ShopApp/4.2.0 (Android 14; Pixel 8)",
];

/// The canary's bug: the fraud score it now reads can be missing.
const CANARY_STACK: [&str; 7] = [
    "java.lang.NullPointerException: Cannot invoke \"com.shop.payments.fraud.FraudScore.value()\" because \"score\" is null",
    "\tat com.shop.payments.charge.ChargeService.applyFraudRules(ChargeService.java:142)",
    "\tat com.shop.payments.charge.ChargeService.charge(ChargeService.java:87)",
    "\tat com.shop.payments.api.ChargeController.create(ChargeController.java:41)",
    "\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)",
    "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)",
    "\t... 48 common frames omitted",
];
/// The stable version's rare failure: the card processor does not answer in time.
const STABLE_STACK: [&str; 7] = [
    "java.net.SocketTimeoutException: Read timed out",
    "\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:278)",
    "\tat java.base/java.net.Socket$SocketInputStream.read(Socket.java:1099)",
    "\tat org.apache.hc.core5.http.impl.io.SessionInputBufferImpl.fillBuffer(SessionInputBufferImpl.java:149)",
    "\tat com.shop.payments.provider.AcquirerClient.capture(AcquirerClient.java:64)",
    "\tat com.shop.payments.charge.ChargeService.charge(ChargeService.java:95)",
    "\t... 52 common frames omitted",
];
const INVENTORY_TRACEBACK: [&str; 6] = [
    "Traceback (most recent call last):",
    "  File \"/app/inventory/reservations.py\", line 88, in reserve",
    "    rows = await db.fetch(RESERVE_SQL, sku, qty)",
    "  File \"/usr/local/lib/python3.12/site-packages/asyncpg/pool.py\", line 631, in fetch",
    "    return await con.fetch(query, *args, timeout=timeout)",
    "asyncpg.exceptions.QueryCanceledError: canceling statement due to statement timeout",
];

/// Generates the fleet's pods and requests from a seed, without I/O or sleeping.
#[derive(Debug)]
struct FleetGenerator {
    rng: SplitMix64,
    pods: Vec<SimPod>,
    next_seq: u64,
}

impl FleetGenerator {
    /// Builds the pods of `seed`; `restart` (the run's restart number) varies everything else,
    /// so a restarted fleet does not repeat its correlation ids.
    fn new(seed: u64, restart: u64) -> FleetGenerator {
        let mut rng = SplitMix64::new(seed);
        let mut pods = Vec::new();
        for (service, version, replicas) in DEPLOYMENTS {
            let hash_len = 9 + rng.below(2) as usize;
            let owner = format!("{}-{}", service.name(), rng.k8s_suffix(hash_len));
            for _ in 0..replicas {
                // A version-4 UUID: version nibble 4, variant nibble 8, 9, a or b.
                let uid = format!(
                    "{}-{}-4{}-{}{}-{}",
                    rng.hex(8),
                    rng.hex(4),
                    rng.hex(3),
                    char::from(*rng.pick(b"89ab")),
                    rng.hex(3),
                    rng.hex(12)
                );
                pods.push(SimPod {
                    service,
                    version,
                    name: format!("{owner}-{}", rng.k8s_suffix(5)),
                    owner: owner.clone(),
                    uid,
                });
            }
        }
        FleetGenerator {
            rng: SplitMix64::new(rng.next_u64() ^ restart.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            pods,
            next_seq: 0,
        }
    }

    fn pods(&self) -> &[SimPod] {
        &self.pods
    }

    /// Returns the time to the next arrival of a Poisson process of `rate` requests per second.
    fn arrival_gap(&mut self, rate: u32) -> i64 {
        let u = 1.0 - self.rng.unit(); // in (0, 1]: ln is finite
        let gap = -u.ln() / f64::from(rate.max(1)) * 1e9;
        (gap as i64).clamp(1, MAX_CATCH_UP_NS)
    }

    /// Returns the lines each pod prints when it starts, from `at` on.
    fn startup(&mut self, at: i64) -> Vec<Entry> {
        let mut trace = Trace {
            corr: None,
            user_id: String::new(),
            showcase: false,
            entries: Vec::new(),
        };
        for pod in 0..self.pods.len() {
            let mut t = at + self.rng.uniform_ms(0.0, 1_500.0);
            let version = self.pods[pod].version;
            match self.pods[pod].service {
                Service::Gateway => {
                    let text = format!("gateway {version} (go1.22.5) listening on :8080");
                    self.plain(&mut trace, pod, t, Stream::Stdout, &text);
                }
                Service::Orders => {
                    let text = format!("> orders@{version} start");
                    self.plain(&mut trace, pod, t, Stream::Stdout, &text);
                    self.plain(&mut trace, pod, t, Stream::Stdout, "> node dist/server.js");
                    t += self.rng.uniform_ms(200.0, 400.0);
                    let fields = vec![("port", Val::Int(3000))];
                    self.log(&mut trace, pod, t, Level::Info, "server listening", &fields);
                }
                Service::Payments => {
                    let text = "Picked up JAVA_TOOL_OPTIONS: -XX:MaxRAMPercentage=75.0";
                    self.plain(&mut trace, pod, t, Stream::Stderr, text);
                    t += self.rng.uniform_ms(300.0, 500.0);
                    let message = "Started PaymentsApplication in 7.31 seconds (process running for 8.02)";
                    self.log(&mut trace, pod, t, Level::Info, message, &[]);
                }
                Service::Inventory => {
                    for text in [
                        "INFO:     Started server process [1]",
                        "INFO:     Waiting for application startup.",
                        "INFO:     Application startup complete.",
                        "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)",
                    ] {
                        self.plain(&mut trace, pod, t, Stream::Stderr, text);
                        t += self.rng.uniform_ms(1.0, 30.0);
                    }
                }
                Service::Notifications => {
                    let fields = vec![("version", Val::from(version)), ("workers", Val::Int(8))];
                    self.log(&mut trace, pod, t, Level::Info, "starting notifications", &fields);
                }
            }
        }
        trace.entries
    }

    /// Generates one request arriving at the gateway at `start`, on a random route.
    fn random_request(&mut self, start: i64) -> Request {
        let route = match self.rng.below(100) {
            0..35 => Route::ListProducts,
            35..60 => Route::GetOrder,
            60..95 => Route::PlaceOrder,
            _ => Route::Login,
        };
        self.request(start, route, false)
    }

    /// Generates the showcase request: an order whose charge fails on the `payments` canary,
    /// so its records touch all five services and show an error in context.
    fn showcase(&mut self, start: i64) -> Request {
        self.request(start, Route::PlaceOrder, true)
    }

    fn request(&mut self, start: i64, route: Route, showcase: bool) -> Request {
        let corr = self.rng.hex(32);
        let user_id = format!("u-{}", 10_000 + self.rng.below(90_000));
        let mut trace = Trace {
            corr: Some(corr.clone()),
            user_id,
            showcase,
            entries: Vec::new(),
        };
        let end = self.gateway(&mut trace, start, route);
        debug_assert!(end - start < MAX_REQUEST_SPAN_NS);
        Request {
            corr,
            end,
            entries: trace.entries,
        }
    }

    /// A network hop between two services: at least 1 ms, so a callee's records stay inside
    /// its caller's span also at millisecond timestamp precision.
    fn hop(&mut self) -> i64 {
        self.rng.uniform_ms(1.0, 3.0)
    }

    fn pick_pod(&mut self, service: Service) -> usize {
        let candidates: Vec<usize> = (0..self.pods.len())
            .filter(|&i| self.pods[i].service == service)
            .collect();
        *self.rng.pick(&candidates)
    }

    /// Handles a request at the gateway; returns the time of its last record.
    fn gateway(&mut self, trace: &mut Trace, t0: i64, route: Route) -> i64 {
        let pod = self.pick_pod(Service::Gateway);
        let (method, path) = match route {
            Route::ListProducts => {
                let category = *self.rng.pick(&CATEGORIES);
                ("GET", format!("/api/products?category={category}"))
            }
            Route::GetOrder => ("GET", format!("/api/orders/ord_{}", self.rng.hex(12))),
            Route::PlaceOrder => ("POST", "/api/orders".to_owned()),
            Route::Login => ("POST", "/api/login".to_owned()),
        };
        let remote_ip = format!(
            "10.{}.{}.{}",
            self.rng.below(4),
            self.rng.below(256),
            1 + self.rng.below(254)
        );
        let user_agent = *self.rng.pick(&USER_AGENTS);
        let fields = vec![
            (
                "http",
                Val::Obj(vec![("method", method.into()), ("path", (&path).into())]),
            ),
            ("remote_ip", (&remote_ip).into()),
            ("user_agent", user_agent.into()),
        ];
        self.log(trace, pod, t0, Level::Debug, "request received", &fields);
        let mut t = t0 + self.rng.uniform_ms(0.1, 1.0);
        if matches!(route, Route::GetOrder | Route::PlaceOrder) {
            let fields = vec![("user_id", (&trace.user_id).into()), ("auth", "jwt".into())];
            self.log(trace, pod, t, Level::Debug, "token verified", &fields);
            t += self.rng.uniform_ms(0.1, 0.5);
        }
        let (t_done, status) = match route {
            Route::ListProducts => {
                let category = path.rsplit('=').next().unwrap_or_default().to_owned();
                let t_start = t + self.hop();
                (self.inventory_list(trace, t_start, &category), 200)
            }
            Route::GetOrder => {
                let order_id = path.rsplit('/').next().unwrap_or_default().to_owned();
                let t_start = t + self.hop();
                self.orders_get(trace, t_start, &order_id)
            }
            Route::PlaceOrder => {
                let t_start = t + self.hop();
                self.orders_create(trace, t_start)
            }
            Route::Login => {
                // Password hashing is slow on purpose.
                let t_done = t + self.rng.latency_ms(40.0, 120.0);
                (t_done, if self.rng.chance(0.08) { 401 } else { 200 })
            }
        };
        let t_end = t_done + if route == Route::Login { 0 } else { self.hop() };
        let (level, msg) = match status {
            500.. => (Level::Error, "request failed"),
            400.. => (Level::Warn, "request completed"),
            _ => (Level::Info, "request completed"),
        };
        let fields = vec![
            (
                "http",
                Val::Obj(vec![
                    ("method", method.into()),
                    ("path", (&path).into()),
                    ("status", Val::Int(status)),
                ]),
            ),
            ("duration_ms", millis(t_end - t0)),
            ("user_id", (&trace.user_id).into()),
        ];
        self.log(trace, pod, t_end, level, msg, &fields);
        t_end
    }

    /// `GET /api/orders/{id}` at orders; returns the time of its last record and the status.
    fn orders_get(&mut self, trace: &mut Trace, t0: i64, order_id: &str) -> (i64, i64) {
        let pod = self.pick_pod(Service::Orders);
        let user = Val::Obj(vec![("id", (&trace.user_id).into())]);
        let fields = vec![("order_id", order_id.into()), ("user", user.clone())];
        self.log(trace, pod, t0, Level::Debug, "loading order", &fields);
        let t = t0 + self.rng.latency_ms(2.0, 40.0);
        if self.rng.chance(0.06) {
            let fields = vec![("order_id", order_id.into()), ("user", user)];
            self.log(trace, pod, t, Level::Warn, "order not found", &fields);
            return (t, 404);
        }
        let state = *self.rng.pick(&["paid", "shipped", "delivered"]);
        let fields = vec![
            ("order_id", order_id.into()),
            ("user", user),
            ("state", state.into()),
            ("db_ms", millis(t - t0)),
        ];
        self.log(trace, pod, t, Level::Info, "order loaded", &fields);
        (t, 200)
    }

    /// `POST /api/orders` at orders: reserve stock, charge, notify. Returns the time of its last
    /// record and the status.
    fn orders_create(&mut self, trace: &mut Trace, t0: i64) -> (i64, i64) {
        let pod = self.pick_pod(Service::Orders);
        let order_id = format!("ord_{}", self.rng.hex(12));
        let (sku, _, price) = *self.rng.pick(&PRODUCTS);
        let quantity = 1 + self.rng.below(3) as i64;
        let amount = price * quantity;
        let user = Val::Obj(vec![("id", (&trace.user_id).into())]);
        let fields = vec![
            ("order_id", (&order_id).into()),
            ("user", user.clone()),
            ("sku", sku.into()),
            ("quantity", quantity.into()),
            ("amount", euros(amount)),
            ("currency", "EUR".into()),
        ];
        self.log(trace, pod, t0, Level::Info, "creating order", &fields);
        let t = t0 + self.rng.latency_ms(1.0, 8.0);

        let t_start = t + self.hop();
        let (t_done, reservation) = self.inventory_reserve(trace, t_start, sku, quantity);
        let t = t_done + self.hop();
        let failed = match reservation {
            Reservation::Reserved => None,
            Reservation::OutOfStock => Some((409, Level::Warn, "order rejected: insufficient stock")),
            Reservation::Failed => Some((503, Level::Error, "order failed: inventory unavailable")),
        };
        if let Some((status, level, msg)) = failed {
            let fields = vec![
                ("order_id", (&order_id).into()),
                ("user", user),
                ("sku", sku.into()),
            ];
            self.log(trace, pod, t, level, msg, &fields);
            return (t, status);
        }

        let t_start = t + self.hop();
        let (t_done, charge) = self.payments_charge(trace, t_start, &order_id, amount);
        let t = t_done + self.hop();
        let (template, status, level, msg) = match charge {
            Charge::Captured => ("order_confirmed", 201, Level::Info, "order placed"),
            Charge::Declined => (
                "payment_declined",
                402,
                Level::Warn,
                "order cancelled: payment declined",
            ),
            Charge::Failed => (
                "payment_failed",
                502,
                Level::Warn,
                "order cancelled: payment failed",
            ),
        };
        let t_start = t + self.hop();
        let t_done = self.notifications_send(trace, t_start, template, &order_id);
        let t = t_done + self.hop();
        let fields = vec![
            ("order_id", (&order_id).into()),
            ("user", user),
            ("amount", euros(amount)),
            ("currency", "EUR".into()),
            ("status", Val::Int(status)),
            ("duration_ms", millis(t - t0)),
        ];
        self.log(trace, pod, t, level, msg, &fields);
        (t, status)
    }

    /// `GET /products` at inventory; returns the time of its last record.
    fn inventory_list(&mut self, trace: &mut Trace, t0: i64, category: &str) -> i64 {
        let pod = self.pick_pod(Service::Inventory);
        let cache_hit = self.rng.chance(0.7);
        let fields = vec![
            ("cache_key", Val::Str(format!("products:{category}:page1"))),
            ("hit", cache_hit.into()),
        ];
        self.log(trace, pod, t0, Level::Debug, "cache lookup", &fields);
        let t = t0
            + if cache_hit {
                self.rng.latency_ms(0.3, 2.0)
            } else {
                self.rng.latency_ms(5.0, 120.0)
            };
        let count = PRODUCTS.iter().filter(|(_, c, _)| *c == category).count() as i64;
        let fields = vec![
            ("category", category.into()),
            ("count", count.into()),
            ("duration_ms", millis(t - t0)),
        ];
        self.log(trace, pod, t, Level::Info, "products listed", &fields);
        if t - t0 > 60 * NANOS_PER_MS {
            let fields = vec![
                ("category", category.into()),
                ("duration_ms", millis(t - t0)),
                ("threshold_ms", Val::Int(60)),
            ];
            self.log(trace, pod, t, Level::Warn, "slow query", &fields);
        }
        t
    }

    /// Reserves stock at inventory; returns the time of its last record and the outcome.
    fn inventory_reserve(
        &mut self,
        trace: &mut Trace,
        t0: i64,
        sku: &str,
        quantity: i64,
    ) -> (i64, Reservation) {
        let pod = self.pick_pod(Service::Inventory);
        let fields = vec![("sku", sku.into()), ("quantity", quantity.into())];
        self.log(trace, pod, t0, Level::Debug, "reserving stock", &fields);
        let t = t0 + self.rng.latency_ms(1.0, 25.0);
        if !trace.showcase && self.rng.chance(0.005) {
            let fields = vec![
                ("sku", sku.into()),
                ("error", "QueryCanceledError".into()),
                ("exc_info", true.into()),
            ];
            self.log(trace, pod, t, Level::Error, "stock reservation failed", &fields);
            for line in INVENTORY_TRACEBACK {
                self.plain(trace, pod, t, Stream::Stderr, line);
            }
            return (t, Reservation::Failed);
        }
        if !trace.showcase && self.rng.chance(0.05) {
            let available = self.rng.below(quantity as u64) as i64;
            let fields = vec![
                ("sku", sku.into()),
                ("requested", quantity.into()),
                ("available", available.into()),
            ];
            self.log(trace, pod, t, Level::Warn, "insufficient stock", &fields);
            return (t, Reservation::OutOfStock);
        }
        let remaining = if trace.showcase {
            3
        } else {
            self.rng.below(200) as i64
        };
        let fields = vec![
            ("sku", sku.into()),
            ("quantity", quantity.into()),
            ("remaining", remaining.into()),
        ];
        self.log(trace, pod, t, Level::Info, "stock reserved", &fields);
        if remaining < 10 {
            let fields = vec![("sku", sku.into()), ("remaining", remaining.into())];
            self.log(trace, pod, t, Level::Warn, "stock running low", &fields);
        }
        (t, Reservation::Reserved)
    }

    /// Charges a card at payments; returns the time of its last record and the outcome.
    fn payments_charge(&mut self, trace: &mut Trace, t0: i64, order_id: &str, amount: i64) -> (i64, Charge) {
        let pod = if trace.showcase {
            (0..self.pods.len())
                .find(|&i| self.pods[i].version == PAYMENTS_CANARY_VERSION)
                .unwrap_or_default()
        } else {
            self.pick_pod(Service::Payments)
        };
        let canary = self.pods[pod].version == PAYMENTS_CANARY_VERSION;
        let fields = vec![
            ("orderId", order_id.into()),
            ("customerId", (&trace.user_id).into()),
            ("amount", euros(amount)),
            ("currency", "EUR".into()),
        ];
        self.log(trace, pod, t0, Level::Info, "charge requested", &fields);
        let t = t0 + self.rng.latency_ms(2.0, 15.0);
        let score = self.rng.below(100) as i64;
        let fields = vec![("orderId", order_id.into()), ("fraudScore", score.into())];
        self.log(trace, pod, t, Level::Debug, "fraud score computed", &fields);

        let error_rate = if canary {
            CANARY_ERROR_RATE
        } else {
            STABLE_ERROR_RATE
        };
        if trace.showcase || self.rng.chance(error_rate) {
            let (t, stack) = if canary {
                (t + self.rng.uniform_ms(0.2, 1.0), CANARY_STACK)
            } else {
                (t + self.rng.uniform_ms(300.0, 320.0), STABLE_STACK)
            };
            let exception = stack[0].split(':').next().unwrap_or_default();
            let fields = vec![("orderId", order_id.into()), ("exception", exception.into())];
            self.log(trace, pod, t, Level::Error, "charge failed", &fields);
            for line in stack {
                self.plain(trace, pod, t, Stream::Stderr, line);
            }
            return (t, Charge::Failed);
        }
        let t = t + self.rng.latency_ms(40.0, 400.0);
        if self.rng.chance(0.04) {
            let fields = vec![
                ("orderId", order_id.into()),
                ("declineCode", "insufficient_funds".into()),
                ("providerLatencyMs", millis(t - t0)),
            ];
            self.log(trace, pod, t, Level::Warn, "card declined", &fields);
            return (t, Charge::Declined);
        }
        let fields = vec![
            ("orderId", order_id.into()),
            ("paymentId", Val::Str(format!("pay_{}", self.rng.hex(14)))),
            ("amount", euros(amount)),
            ("providerLatencyMs", millis(t - t0)),
        ];
        self.log(trace, pod, t, Level::Info, "charge captured", &fields);
        (t, Charge::Captured)
    }

    /// Sends an email at notifications; returns the time of its last record.
    fn notifications_send(&mut self, trace: &mut Trace, t0: i64, template: &str, order_id: &str) -> i64 {
        let pod = self.pick_pod(Service::Notifications);
        let fields = vec![
            ("template", template.into()),
            ("channel", "email".into()),
            ("order_id", order_id.into()),
        ];
        self.log(trace, pod, t0, Level::Debug, "rendering template", &fields);
        let mut t = t0 + self.rng.latency_ms(1.0, 5.0);
        if self.rng.chance(0.03) {
            let fields = vec![
                ("smtp_code", Val::Int(421)),
                ("attempt", Val::Int(1)),
                ("order_id", order_id.into()),
            ];
            self.log(
                trace,
                pod,
                t,
                Level::Warn,
                "smtp temporary failure, retrying",
                &fields,
            );
            t += self.rng.uniform_ms(50.0, 150.0);
        }
        t += self.rng.latency_ms(5.0, 80.0);
        let fields = vec![
            ("template", template.into()),
            ("channel", "email".into()),
            ("order_id", order_id.into()),
            (
                "message_id",
                Val::Str(format!("<{}@mail.shop.local>", self.rng.hex(16))),
            ),
            ("duration_ms", millis(t - t0)),
        ];
        self.log(trace, pod, t, Level::Info, "notification sent", &fields);
        t
    }

    fn plain(&mut self, trace: &mut Trace, pod: usize, at: i64, stream: Stream, text: &str) {
        self.push(trace, pod, at, stream, text.to_owned());
    }

    /// Adds one JSON record, printed as `pod`'s service prints it.
    fn log(
        &mut self,
        trace: &mut Trace,
        pod: usize,
        at: i64,
        level: Level,
        msg: &str,
        fields: &[(&'static str, Val)],
    ) {
        let content = render(&self.pods[pod], trace.corr.as_deref(), at, level, msg, fields);
        self.push(trace, pod, at, Stream::Stdout, content);
    }

    fn push(&mut self, trace: &mut Trace, pod: usize, at: i64, stream: Stream, content: String) {
        debug_assert!(!content.contains('\n'));
        trace.entries.push(Entry {
            at,
            seq: self.next_seq,
            pod,
            stream,
            content,
        });
        self.next_seq += 1;
    }
}

/// Prints one record the way `pod`'s logging library does (see [`Service`]).
fn render(
    pod: &SimPod,
    corr: Option<&str>,
    at: i64,
    level: Level,
    msg: &str,
    fields: &[(&str, Val)],
) -> String {
    // The envelope form: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    let rfc3339 = Timestamp::from_unix_nanos(at).to_string();
    let mut json = JsonLine::new();
    match pod.service {
        Service::Gateway => {
            json.str("time", &rfc3339)
                .str("level", &level.as_str().to_ascii_uppercase())
                .str("msg", msg);
            if let Some(corr) = corr {
                json.str("correlation_id", corr);
            }
            json.fields(fields);
        }
        Service::Orders => {
            let pino_level = match level {
                Level::Trace => 10,
                Level::Debug => 20,
                Level::Info => 30,
                Level::Warn => 40,
                Level::Error => 50,
                Level::Fatal => 60,
            };
            json.raw("level", pino_level)
                .raw("time", at.div_euclid(NANOS_PER_MS))
                .raw("pid", 1)
                .str("hostname", &pod.name);
            if let Some(corr) = corr {
                json.str("corr", corr);
            }
            json.fields(fields).str("msg", msg);
        }
        Service::Payments => {
            let level_value = match level {
                Level::Trace => 5_000,
                Level::Debug => 10_000,
                Level::Info => 20_000,
                Level::Warn => 30_000,
                Level::Error | Level::Fatal => 40_000,
            };
            // One request is served by one thread: pick it from the correlation id.
            let thread = match corr {
                Some(corr) => format!(
                    "http-nio-8080-exec-{}",
                    corr.bytes().map(u32::from).sum::<u32>() % 16 + 1
                ),
                None => "main".to_owned(),
            };
            let logger = if msg.starts_with("Started") {
                "com.shop.payments.PaymentsApplication"
            } else {
                "com.shop.payments.charge.ChargeService"
            };
            json.str("@timestamp", &format!("{}Z", &rfc3339[..23]))
                .str("@version", "1")
                .str("message", msg)
                .str("logger_name", logger)
                .str("thread_name", &thread)
                .str("level", &level.as_str().to_ascii_uppercase())
                .raw("level_value", level_value);
            if let Some(corr) = corr {
                json.str("correlationId", corr);
            }
            json.fields(fields);
        }
        Service::Inventory => {
            if let Some(corr) = corr {
                json.str("request_id", corr);
            }
            let level = match level {
                Level::Warn => "warning",
                Level::Fatal => "critical",
                other => other.as_str(),
            };
            json.fields(fields)
                .str("event", msg)
                .str("level", level)
                .str("logger", "inventory.api")
                .str("timestamp", &format!("{}Z", &rfc3339[..26]));
        }
        Service::Notifications => {
            let seconds = format!(
                "{}.{:06}",
                at.div_euclid(1_000_000_000),
                at.rem_euclid(1_000_000_000) / 1_000
            );
            json.str("level", level.as_str())
                .raw("ts", seconds)
                .str("caller", "notify/sender.go:112")
                .str("msg", msg);
            if let Some(corr) = corr {
                json.str("trace_id", corr);
            }
            json.fields(fields);
        }
    }
    json.finish()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::app_json::{AppFields, KeyConfig, parse_app_json};
    use crate::metadata::{Identity, resolve, service_from_pod_name};
    use crate::pod_path::PodPath;
    use crate::runtime_format::parse_cri;

    const SEED: u64 = 42;
    /// 2026-11-23T10:15:00Z.
    const T0: i64 = 1_795_428_900 * 1_000_000_000;

    fn app(content: &str) -> Option<AppFields> {
        parse_app_json(&mut content.as_bytes().to_vec(), &KeyConfig::default())
    }

    /// Every request of `count`, one per 50 ms from `T0`.
    fn requests(generator: &mut FleetGenerator, count: usize) -> Vec<Request> {
        (0..count)
            .map(|i| generator.random_request(T0 + i as i64 * 50 * NANOS_PER_MS))
            .collect()
    }

    fn config(root: &Path, requests_per_second: u32) -> FleetConfig {
        FleetConfig {
            root: root.to_owned(),
            requests_per_second,
            seed: SEED,
        }
    }

    /// Reads every file of the fleet: (pod path, lines).
    fn read_files(fleet: &Fleet) -> Vec<(PodPath, Vec<String>)> {
        let mut files: Vec<_> = glob::glob(&fleet.log_glob())
            .unwrap()
            .map(|path| {
                let path = path.unwrap();
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.ends_with('\n'), "{} ends mid-line", path.display());
                let pod_path =
                    PodPath::parse(&path).unwrap_or_else(|| panic!("not kubelet layout: {}", path.display()));
                (pod_path, text.lines().map(str::to_owned).collect())
            })
            .collect();
        files.sort_by(|a, b| a.0.pod.cmp(&b.0.pod));
        files
    }

    fn identity_of(fleet: &Fleet, path: &PodPath) -> Identity {
        let pods = fleet.pods();
        let meta = pods.iter().find(|meta| meta.name == path.pod);
        assert!(meta.is_some(), "no metadata for {}", path.pod);
        resolve(path, meta)
    }

    #[test]
    fn start_writes_valid_cri_lines_in_the_kubelet_layout() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::start(config(dir.path(), 0)).unwrap();
        assert_eq!(fleet.requests_written(), WARMUP_REQUESTS as u64);
        let files = read_files(&fleet);
        assert_eq!(files.len(), 12);
        let now = Timestamp::now();
        for (path, lines) in &files {
            assert_eq!(path.namespace, NAMESPACE);
            assert_eq!(path.container, identity_of(&fleet, path).service, "{path:?}");
            assert!(!lines.is_empty(), "{path:?}");
            let mut last = Timestamp::EPOCH;
            for line in lines {
                let cri = parse_cri(line.as_bytes()).unwrap_or_else(|| panic!("not CRI: {line}"));
                assert!(!cri.partial, "{line}");
                let ts = cri.ts.unwrap();
                assert!(last <= ts && ts <= now, "{line} after {last}");
                last = ts;
            }
        }
        let glob = fleet.log_glob();
        assert_eq!(glob, format!("{}/*/*/*.log", dir.path().display()));
        fleet.stop();
    }

    #[test]
    fn the_showcase_request_touches_every_service_in_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::start(config(dir.path(), 0)).unwrap();
        let corr = fleet.showcase_corr().to_owned();
        assert_eq!(corr.len(), 32);
        assert!(corr.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut services = BTreeMap::<String, usize>::new();
        let mut canary_errors = 0;
        for (path, lines) in read_files(&fleet) {
            let identity = identity_of(&fleet, &path);
            for line in &lines {
                let content =
                    String::from_utf8(parse_cri(line.as_bytes()).unwrap().content.to_vec()).unwrap();
                let Some(fields) = app(&content) else { continue };
                if fields.corr.as_deref() == Some(corr.as_str()) {
                    *services.entry(identity.service.clone()).or_default() += 1;
                    if identity.version == PAYMENTS_CANARY_VERSION && fields.level == Some(Level::Error) {
                        canary_errors += 1;
                    }
                }
            }
        }
        let names: Vec<&str> = services.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["gateway", "inventory", "notifications", "orders", "payments"]
        );
        assert!(services.values().all(|n| (1..=3).contains(n)), "{services:?}");
        assert_eq!(canary_errors, 1);
        fleet.stop();
    }

    #[test]
    fn the_writer_thread_appends_until_stopped_and_a_restart_gets_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::start(config(dir.path(), 200)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while fleet.requests_written() < WARMUP_REQUESTS as u64 + 50 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} requests written",
                fleet.requests_written()
            );
            thread::sleep(Duration::from_millis(50));
        }
        let first_corr = fleet.showcase_corr().to_owned();
        let glob = fleet.log_glob();
        let stopping = std::time::Instant::now();
        fleet.stop();
        assert!(
            stopping.elapsed() < Duration::from_secs(2),
            "{:?}",
            stopping.elapsed()
        );
        let sizes = |files: &[PathBuf]| -> Vec<u64> {
            files
                .iter()
                .map(|p| std::fs::metadata(p).unwrap().len())
                .collect()
        };
        let files: Vec<PathBuf> = glob::glob(&glob).unwrap().map(Result::unwrap).collect();
        assert_eq!(files.len(), 12);
        assert!(files.iter().all(|p| p.ends_with("0.log")), "{files:?}");
        let before = sizes(&files);
        thread::sleep(TICK * 3);
        assert_eq!(sizes(&files), before, "files grew after stop");

        // The same fleet started again is a restart: `1.log` next to the untouched `0.log`.
        let again = Fleet::start(config(dir.path(), 0)).unwrap();
        assert_ne!(again.showcase_corr(), first_corr);
        let all: Vec<PathBuf> = glob::glob(&again.log_glob())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(all.len(), 24);
        assert_eq!(all.iter().filter(|p| p.ends_with("1.log")).count(), 12);
        assert_eq!(sizes(&files), before);
        again.stop();
    }

    #[test]
    fn start_rejects_an_unbounded_rate() {
        let dir = tempfile::tempdir().unwrap();
        let error = Fleet::start(config(dir.path(), MAX_REQUESTS_PER_SECOND + 1)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(error.to_string(), "demo requests_per_second 5001 exceeds 5000");
    }

    #[test]
    fn pods_resolve_to_service_version_and_instance() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::start(config(dir.path(), 0)).unwrap();
        let generator = FleetGenerator::new(SEED, 0);
        let pods = fleet.pods();
        assert_eq!(pods.len(), generator.pods().len());
        let mut versions = BTreeMap::<(String, String), usize>::new();
        for (meta, pod) in pods.iter().zip(generator.pods()) {
            let path = PodPath::parse(&dir.path().join(pod.container_dir()).join("0.log")).unwrap();
            assert_eq!(
                (path.namespace.as_str(), path.pod.as_str()),
                (NAMESPACE, meta.name.as_str())
            );
            let identity = resolve(&path, Some(meta));
            assert_eq!(
                identity,
                Identity {
                    service: pod.service.name().to_owned(),
                    version: pod.version.to_owned(),
                    instance: meta.name.clone(),
                }
            );
            // Deployment-style names: the path alone gives the service too.
            assert_eq!(
                service_from_pod_name(&meta.name),
                identity.service,
                "{}",
                meta.name
            );
            *versions.entry((identity.service, identity.version)).or_default() += 1;
        }
        let want: BTreeMap<(String, String), usize> = [
            ("gateway", "1.8.2", 2),
            ("inventory", "5.0.3", 2),
            ("notifications", "0.9.4", 2),
            ("orders", "3.1.0", 3),
            ("payments", "2.3.0", 2),
            ("payments", "2.4.0", 1),
        ]
        .into_iter()
        .map(|(s, v, n)| ((s.to_owned(), v.to_owned()), n))
        .collect();
        assert_eq!(versions, want);
        fleet.stop();
    }

    #[test]
    fn generation_is_deterministic_per_seed() {
        let names = |seed| -> Vec<String> {
            FleetGenerator::new(seed, 0)
                .pods()
                .iter()
                .map(|p| p.name.clone())
                .collect()
        };
        assert_eq!(names(SEED), names(SEED));
        assert_ne!(names(SEED), names(SEED + 1));
        let contents = |seed| -> Vec<String> {
            let mut generator = FleetGenerator::new(seed, 0);
            let requests = requests(&mut generator, 20);
            requests
                .into_iter()
                .flat_map(|r| r.entries)
                .map(|e| e.content)
                .collect()
        };
        assert_eq!(contents(SEED), contents(SEED));
        assert_ne!(contents(SEED), contents(SEED + 1));
        let generator = FleetGenerator::new(SEED, 0);
        let pod_name = &generator.pods()[0].name;
        let segments: Vec<&str> = pod_name.split('-').collect();
        assert_eq!(segments.len(), 3, "{pod_name}");
        assert!(
            (9..=10).contains(&segments[1].len()) && segments[2].len() == 5,
            "{pod_name}"
        );
        for pod in generator.pods() {
            let groups: Vec<&str> = pod.uid.split('-').collect();
            let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            assert_eq!(lengths, [8, 4, 4, 4, 12], "{}", pod.uid);
            assert!(
                groups[2].starts_with('4') && "89ab".contains(&groups[3][..1]),
                "{}",
                pod.uid
            );
        }
    }

    #[test]
    fn the_canary_fails_more_often_than_the_stable_version() {
        let mut generator = FleetGenerator::new(SEED, 0);
        // (error records, records) per payments version.
        let mut counts = BTreeMap::<&str, (usize, usize)>::new();
        for request in requests(&mut generator, 2_000) {
            for entry in &request.entries {
                let pod = &generator.pods()[entry.pod];
                let Some(fields) = app(&entry.content) else {
                    continue;
                };
                if pod.service == Service::Payments {
                    let count = counts.entry(pod.version).or_default();
                    count.0 += usize::from(fields.level == Some(Level::Error));
                    count.1 += 1;
                }
            }
        }
        let share = |version| {
            let (errors, records) = counts[version];
            assert!(records > 500, "{version}: {records} records");
            errors as f64 / records as f64
        };
        let (canary, stable) = (share(PAYMENTS_CANARY_VERSION), share(PAYMENTS_STABLE_VERSION));
        // Expected: 15 % and 1 % of charges fail, a charge logs 3 records: 5 % and 0.33 %.
        assert!((0.03..=0.08).contains(&canary), "canary {canary} {counts:?}");
        assert!(stable <= 0.01, "stable {stable} {counts:?}");
        assert!(canary > 5.0 * stable, "canary {canary}, stable {stable}");
    }

    #[test]
    fn requests_follow_their_call_chain() {
        let mut generator = FleetGenerator::new(SEED, 0);
        let mut services_touched = BTreeMap::<usize, usize>::new();
        let mut levels = BTreeSet::new();
        let mut plain_lines = 0;
        let mut requests = requests(&mut generator, 500);
        requests.push(generator.showcase(T0 + 30_000 * NANOS_PER_MS));
        for request in &requests {
            let start = request.entries[0].at;
            assert_eq!(generator.pods()[request.entries[0].pod].service, Service::Gateway);
            assert!(request.end - start < MAX_REQUEST_SPAN_NS);
            // Per service: (first, last) event time and record count.
            let mut spans = BTreeMap::<Service, (Timestamp, Timestamp, usize)>::new();
            for entry in &request.entries {
                assert!((start..=request.end).contains(&entry.at));
                let Some(fields) = app(&entry.content) else {
                    assert_eq!(entry.stream, Stream::Stderr, "{}", entry.content);
                    plain_lines += 1;
                    continue;
                };
                assert_eq!(
                    fields.corr.as_deref(),
                    Some(request.corr.as_str()),
                    "{}",
                    entry.content
                );
                assert!(fields.msg.is_some(), "{}", entry.content);
                levels.insert(fields.level.unwrap());
                let ts = fields.ts.unwrap();
                let span = spans
                    .entry(generator.pods()[entry.pod].service)
                    .or_insert((ts, ts, 0));
                assert!(span.1 <= ts, "time goes back: {}", entry.content);
                span.1 = ts;
                span.2 += 1;
            }
            assert!(spans.values().all(|span| (1..=3).contains(&span.2)), "{spans:?}");
            let within = |child: Service, parent: Service| {
                if let (Some(c), Some(p)) = (spans.get(&child), spans.get(&parent)) {
                    assert!(p.0 < c.0 && c.1 < p.1, "{child:?} {c:?} outside {parent:?} {p:?}");
                }
            };
            assert!(spans.contains_key(&Service::Gateway));
            for service in &Service::ALL[1..] {
                within(*service, Service::Gateway);
            }
            for service in &Service::ALL[2..] {
                within(*service, Service::Orders);
            }
            *services_touched.entry(spans.len()).or_default() += 1;
        }
        let showcase = requests.last().unwrap();
        let showcase_services: BTreeSet<Service> = showcase
            .entries
            .iter()
            .map(|e| generator.pods()[e.pod].service)
            .collect();
        assert_eq!(showcase_services.len(), 5);
        assert!(showcase.entries.iter().any(|e| e.content == CANARY_STACK[0]));
        // Gateway only (login), gateway + one service, all five.
        assert_eq!(
            services_touched.keys().copied().collect::<Vec<_>>(),
            [1, 2, 3, 5],
            "{services_touched:?}"
        );
        assert!(services_touched[&5] >= 100, "{services_touched:?}");
        assert_eq!(
            levels.into_iter().collect::<Vec<_>>(),
            [Level::Debug, Level::Info, Level::Warn, Level::Error]
        );
        assert!(
            plain_lines >= CANARY_STACK.len() * 10,
            "{plain_lines} stack trace lines"
        );
    }

    #[test]
    fn startup_prints_plain_lines_and_json() {
        let mut generator = FleetGenerator::new(SEED, 0);
        let entries = generator.startup(T0);
        let plain = entries.iter().filter(|e| app(&e.content).is_none()).count();
        let json: Vec<AppFields> = entries.iter().filter_map(|e| app(&e.content)).collect();
        // gateway 1 × 2, orders 2 × 3, payments 1 × 3, inventory 4 × 2.
        assert_eq!(plain, 2 + 6 + 3 + 8);
        // orders 3, payments 3, notifications 2; none belongs to a request.
        assert_eq!(json.len(), 8);
        assert!(
            json.iter()
                .all(|f| f.corr.is_none() && f.level == Some(Level::Info) && f.ts.is_some())
        );
    }
}
