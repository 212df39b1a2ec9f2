//! logq: the engineer's and auditor's view of corral (DESIGN §5). Talks only HTTP to one or
//! more indexers: [`client`] fans out and [`model`] merges; [`output`] prints lines for pipes;
//! [`tui`] is the interactive view; [`admin`] the holds and audit commands; [`run`] ties them to
//! the command line.

pub mod admin;
pub mod cli;
pub mod client;
pub mod model;
pub mod output;
pub mod run;
pub mod tui;
