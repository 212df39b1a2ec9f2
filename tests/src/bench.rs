//! What the benchmarks (`make bench`) measure besides wall time, said once: CPU seconds and
//! memory of a process from Linux `/proc`, and nearest-rank percentiles of timings.
//!
//! Readings are best effort: a process that is gone or a `/proc` without the field reads as 0,
//! since a benchmark prints what it can rather than fail at the end of a long run.

use std::time::Duration;

/// User + system CPU seconds of this process, every thread.
pub fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// User + system CPU seconds of another process (0 when it is gone).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name in parentheses may hold spaces: fields are counted after it.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// Peak resident set (`VmHWM`) of this process, in KiB.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM")
}

/// Peak resident set (`VmHWM`) of another process, in KiB (0 when it is gone).
pub fn process_peak_rss_kib(pid: u32) -> u64 {
    process_status_kib(pid, "VmHWM")
}

/// A KiB figure of this process's `/proc/self/status`: `key` is `VmRSS`, `VmHWM` …
pub fn status_kib(key: &str) -> u64 {
    status_file_kib("/proc/self/status", key)
}

/// A KiB figure of another process's `/proc/<pid>/status` (0 when it is gone).
pub fn process_status_kib(pid: u32, key: &str) -> u64 {
    status_file_kib(&format!("/proc/{pid}/status"), key)
}

fn status_file_kib(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The median, 99th percentile and maximum of some timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Nearest-rank percentiles of `values`.
///
/// # Panics
/// When `values` is empty.
pub fn percentiles(values: &[Duration]) -> Percentiles {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = |p: f64| sorted[nearest_rank(p, sorted.len())];
    Percentiles {
        p50: rank(0.50),
        p99: rank(0.99),
        max: rank(1.0),
    }
}

/// The nearest-rank `p`-th percentile (`p` from 0 to 1) of `values`.
///
/// # Panics
/// When `values` is empty or holds a NaN.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN among the values"));
    sorted[nearest_rank(p, sorted.len())]
}

/// Index of the nearest-rank `p`-th percentile in a sorted slice of `len` values.
fn nearest_rank(p: f64, len: usize) -> usize {
    assert!(len > 0, "a percentile of no values");
    ((p * len as f64).ceil() as usize).clamp(1, len) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |n| Duration::from_millis(n);
        let values: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(
            percentiles(&values),
            Percentiles {
                p50: ms(50),
                p99: ms(99),
                max: ms(100)
            }
        );
        assert_eq!(percentiles(&[ms(5), ms(1), ms(3)]).p50, ms(3));
        assert_eq!(percentile(&[3.0, 1.0, 2.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0, 4.0], 0.99), 4.0);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        // Spins until the kernel has counted a tick of CPU time: the stat fields are read.
        let started = std::time::Instant::now();
        while cpu_seconds() < 0.01 {
            assert!(started.elapsed() < Duration::from_secs(10), "no CPU time read");
            std::hint::black_box((0..10_000u64).sum::<u64>());
        }
        assert!(process_cpu_seconds(std::process::id()) >= 0.01);
        assert!(peak_rss_kib() > 0);
        assert!(status_kib("VmRSS") > 0);
        assert_eq!(process_status_kib(u32::MAX, "VmRSS"), 0, "no such process");
    }
}
