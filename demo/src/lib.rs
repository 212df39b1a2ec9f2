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

pub mod corpus;
mod dialect;
mod fleet;
mod generator;
mod json;
mod rng;
mod shop;
#[cfg(test)]
mod tests;

pub use fleet::{Fleet, FleetConfig, MAX_REQUESTS_PER_SECOND};
pub use rng::SplitMix64;
