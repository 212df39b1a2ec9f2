//! The collector's telemetry: every metric defined once, with its help text, behind typed
//! handles (DESIGN §3.6). Served as Prometheus text on `/metrics` by [`crate::http`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of a parse failure: `unparsed`, `invalid_utf8`, `truncated`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// Label of lost data: why it was lost (see [`LOSS_REASONS`]).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Label of a `[[redact]]` rule's counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: String,
}

/// Label of per-service counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

/// Label of per-file gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabel {
    pub path: String,
}

/// Every `reason` of `corral_collector_lost_total` and `corral_collector_lost_bytes_total`.
pub const LOSS_REASONS: [&str; 5] = [
    // The file was deleted (and no copy found) before it was read to its end.
    "deleted_before_read",
    // The file was truncated in place (no copy found) before it was read to its end.
    "truncated_before_read",
    // The file could not be read any further (I/O error, corrupt gzip).
    "unreadable",
    // A line longer than `max_line_bytes`: kept cut and flagged `truncated`; the rest is lost.
    "line_too_long",
    // A record larger than Kafka's `message.max.bytes`: kept cut and flagged `truncated`.
    "message_too_large",
];

/// Handles of every collector metric.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub lines_read: Counter,
    pub bytes_read: Counter,
    pub records_delivered: Counter,
    pub delivery_errors: Counter,
    pub resend_failures: Counter,
    pub parse_failures: Family<KindLabel, Counter>,
    pub truncations: Counter,
    pub lost: Family<ReasonLabel, Counter>,
    pub lost_bytes: Family<ReasonLabel, Counter>,
    pub redacted: Family<RuleLabel, Counter>,
    pub sampled_out: Family<ServiceLabel, Counter>,
    pub file_lag_bytes: Family<FileLabel, Gauge>,
    pub open_files: Gauge,
    pub checkpoint_age_seconds: Gauge<f64, AtomicU64>,
    pub in_flight_bytes: Gauge,
    pub in_flight_records: Gauge,
    health: Mutex<HealthState>,
    /// Unix seconds of the last saved checkpoint.
    last_checkpoint: AtomicI64,
}

#[derive(Debug)]
struct HealthState {
    /// Set while the sink reports a problem (e.g. Kafka unreachable).
    sink_problem: Option<String>,
    /// Set while positions cannot be saved (a full disk): reading is paused meanwhile.
    checkpoint_problem: Option<String>,
    /// Since when the oldest unacknowledged record has waited, if any.
    waiting_since: Option<Instant>,
    /// Since when a file has had unread bytes without any being read.
    stalled_since: Option<Instant>,
}

/// How long records may wait for acknowledgement, or a growing file go unread, before the
/// collector reports itself not ready.
pub const STALL_LIMIT: Duration = Duration::from_secs(30);
/// How long unacknowledged records may wait before the sink counts as unreachable.
pub const SINK_LIMIT: Duration = Duration::from_secs(10);

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `corral_collector_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("corral_collector");
        let metrics = Metrics {
            lines_read: Counter::default(),
            bytes_read: Counter::default(),
            records_delivered: Counter::default(),
            delivery_errors: Counter::default(),
            resend_failures: Counter::default(),
            parse_failures: Family::default(),
            truncations: Counter::default(),
            lost: Family::default(),
            lost_bytes: Family::default(),
            redacted: Family::default(),
            sampled_out: Family::default(),
            file_lag_bytes: Family::default(),
            open_files: Gauge::default(),
            checkpoint_age_seconds: Gauge::default(),
            in_flight_bytes: Gauge::default(),
            in_flight_records: Gauge::default(),
            health: Mutex::new(HealthState {
                sink_problem: None,
                checkpoint_problem: None,
                waiting_since: None,
                stalled_since: None,
            }),
            last_checkpoint: AtomicI64::new(0),
            registry: Registry::default(),
        };
        registry.register(
            "lines_read",
            "Log lines read (after merging partial chunks)",
            metrics.lines_read.clone(),
        );
        registry.register(
            "bytes_read",
            "Bytes read from log files",
            metrics.bytes_read.clone(),
        );
        registry.register(
            "records_delivered",
            "Records acknowledged by the sink",
            metrics.records_delivered.clone(),
        );
        registry.register(
            "delivery_errors",
            "Failed deliveries (retried)",
            metrics.delivery_errors.clone(),
        );
        registry.register(
            "resend_failures",
            "Failed attempts to produce a record again after a failed delivery (it waits and is \
             tried again with backoff; /readyz is not ready meanwhile)",
            metrics.resend_failures.clone(),
        );
        registry.register(
            "parse_failures",
            "Lines not understood, by kind",
            metrics.parse_failures.clone(),
        );
        registry.register(
            "truncations",
            "Lines cut at max_line_bytes or the broker's message limit",
            metrics.truncations.clone(),
        );
        registry.register(
            "lost",
            "Times data was given up on, by reason: files for deleted_before_read, \
             truncated_before_read and unreadable; records for line_too_long and message_too_large",
            metrics.lost.clone(),
        );
        registry.register(
            "lost_bytes",
            "Bytes known to be lost, by reason (a lower bound: bytes written after a file was \
             last seen cannot be known)",
            metrics.lost_bytes.clone(),
        );
        // Make every loss counter visible at 0 before anything is lost.
        for reason in LOSS_REASONS {
            let _ = metrics.lost.get_or_create(&ReasonLabel { reason });
            let _ = metrics.lost_bytes.get_or_create(&ReasonLabel { reason });
        }
        registry.register(
            "redacted",
            "Records a [[redact]] rule changed, by rule",
            metrics.redacted.clone(),
        );
        registry.register(
            "sampled_out",
            "Records not shipped by a [[sample]] rule (their request was not sampled), by service",
            metrics.sampled_out.clone(),
        );
        registry.register(
            "file_lag_bytes",
            "Bytes of a file not yet delivered",
            metrics.file_lag_bytes.clone(),
        );
        registry.register(
            "open_files",
            "Log files being followed",
            metrics.open_files.clone(),
        );
        registry.register(
            "checkpoint_age_seconds",
            "Seconds since positions were last saved",
            metrics.checkpoint_age_seconds.clone(),
        );
        registry.register(
            "in_flight_bytes",
            "Bytes handed to the sink and not yet acknowledged",
            metrics.in_flight_bytes.clone(),
        );
        registry.register(
            "in_flight_records",
            "Records handed to the sink and not yet acknowledged",
            metrics.in_flight_records.clone(),
        );
        Metrics { registry, ..metrics }
    }

    /// Renders the Prometheus text exposition.
    pub fn render(&self) -> String {
        let age = now_secs() - self.last_checkpoint.load(Ordering::Relaxed);
        if self.last_checkpoint.load(Ordering::Relaxed) > 0 {
            self.checkpoint_age_seconds.set(age as f64);
        }
        let mut text = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts `times` losses of `bytes` for `reason` (one of [`LOSS_REASONS`]).
    pub fn count_loss(&self, reason: &'static str, times: u64, bytes: u64) {
        debug_assert!(LOSS_REASONS.contains(&reason), "unknown loss reason {reason}");
        self.lost.get_or_create(&ReasonLabel { reason }).inc_by(times);
        self.lost_bytes
            .get_or_create(&ReasonLabel { reason })
            .inc_by(bytes);
    }

    /// Records that positions were saved now.
    pub fn checkpoint_saved(&self) {
        self.last_checkpoint.store(now_secs(), Ordering::Relaxed);
        self.checkpoint_age_seconds.set(0.0);
    }

    /// Sets or clears the sink's reported problem.
    pub fn set_sink_problem(&self, problem: Option<String>) {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sink_problem = problem;
    }

    /// Sets or clears why positions cannot be saved.
    pub fn set_checkpoint_problem(&self, problem: Option<String>) {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .checkpoint_problem = problem;
    }

    /// Updates what readiness looks at: whether records wait for acknowledgement and whether
    /// some file has unread bytes that are not being read.
    pub fn observe_progress(&self, waiting: bool, stalled: bool) {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        health.waiting_since = if waiting {
            Some(health.waiting_since.unwrap_or(now))
        } else {
            None
        };
        health.stalled_since = if stalled {
            Some(health.stalled_since.unwrap_or(now))
        } else {
            None
        };
    }

    /// Returns `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(problem) = &health.checkpoint_problem {
            return Err(format!("checkpoints: {problem}"));
        }
        if let Some(problem) = &health.sink_problem {
            return Err(format!("sink: {problem}"));
        }
        if let Some(since) = health.waiting_since.filter(|s| s.elapsed() >= SINK_LIMIT) {
            return Err(format!(
                "sink has acknowledged nothing for {}s",
                since.elapsed().as_secs()
            ));
        }
        if let Some(since) = health.stalled_since.filter(|s| s.elapsed() >= STALL_LIMIT) {
            return Err(format!("growing files unread for {}s", since.elapsed().as_secs()));
        }
        Ok(())
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_its_prefix() {
        let metrics = Metrics::new();
        metrics.lines_read.inc_by(3);
        metrics
            .parse_failures
            .get_or_create(&KindLabel { kind: "unparsed" })
            .inc();
        metrics
            .file_lag_bytes
            .get_or_create(&FileLabel {
                path: "/var/log/pods/a/0.log".into(),
            })
            .set(42);
        let text = metrics.render();
        for line in [
            "corral_collector_lines_read_total 3",
            "corral_collector_parse_failures_total{kind=\"unparsed\"} 1",
            "corral_collector_lost_total{reason=\"truncated_before_read\"} 0",
            "corral_collector_lost_bytes_total{reason=\"deleted_before_read\"} 0",
            "corral_collector_file_lag_bytes{path=\"/var/log/pods/a/0.log\"} 42",
            "corral_collector_in_flight_bytes 0",
            "corral_collector_open_files 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn readiness_follows_the_sink_and_progress() {
        let metrics = Metrics::new();
        assert_eq!(metrics.readiness(), Ok(()));
        metrics.set_sink_problem(Some("all brokers down".into()));
        assert_eq!(metrics.readiness(), Err("sink: all brokers down".into()));
        metrics.set_sink_problem(None);
        metrics.observe_progress(true, false);
        assert_eq!(metrics.readiness(), Ok(()), "waiting briefly is fine");
    }
}
