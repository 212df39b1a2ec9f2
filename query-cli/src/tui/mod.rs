//! The TUI: a timeline of records, a detail pane with the selected record's JSON, a waterfall
//! of the request over services, filters, search-within and follow mode.
//!
//! [`App`] (`app.rs`) holds the state and handles keys; it knows nothing of terminals, so tests
//! drive it and render it into a ratatui `TestBackend` with the drawing in [`view`]. [`run`]
//! (`event_loop.rs`) is the terminal loop: the [`Query`] (`query.rs`) runs as background tasks
//! that send [`Event`]s (`event.rs`), so the UI keeps drawing (a spinner) while it waits.

mod app;
mod event;
mod event_loop;
mod query;
pub mod view;

pub use app::{Action, App, Input};
pub use event::Event;
pub use event_loop::run;
pub use query::Query;
