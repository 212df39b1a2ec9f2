//! corral-collector: discovery, tailing, parsing and enrichment of container logs, and the
//! sinks that deliver records.
//!
//! Data flows through the modules in this order:
//! [`tailer`] finds files and reads them by identity across rotation ([`file_identity`]) →
//! [`line_splitter`] cuts lines with bounded memory → [`runtime_format`] unwraps the CRI /
//! docker / plain line → [`partial`] merges split lines → [`app_json`] extracts ts, level, msg,
//! corr and fields → [`metadata`] stamps service, version and instance → [`sample`] keeps a
//! fraction of a service's requests → [`redact`] scrubs secrets → [`sink`] writes the
//! record; [`ack`] holds checkpoints until the sink acknowledges; [`checkpoint`] remembers
//! read positions. [`pipeline`] wires them together.

pub mod ack;
pub mod app_json;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod docker_provider;
pub mod file_identity;
pub mod http;
pub mod kafka_sink;
pub mod kube_provider;
pub mod line_splitter;
pub mod logging;
pub mod losses;
pub mod metadata;
pub mod metrics;
pub mod otlp;
pub mod partial;
pub mod pipeline;
pub mod pod_path;
pub mod redact;
pub mod runtime_format;
pub mod sample;
pub mod sink;
pub mod tailer;
pub mod trace_context;
