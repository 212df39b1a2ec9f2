//! [`Event`]: what the background tasks a query starts report to the UI. The tasks send it,
//! [`App::on_event`](super::App::on_event) applies it.

use corral_schema::api::StatsResponse;

use crate::client::{EndpointError, TailEvent};
use crate::model::Hit;

/// What background work reports to the UI.
#[derive(Debug)]
pub enum Event {
    /// A search finished.
    Results {
        hits: Vec<Hit>,
        truncated: bool,
        errors: Vec<EndpointError>,
    },
    /// Stats finished.
    Stats {
        stats: StatsResponse,
        errors: Vec<EndpointError>,
    },
    /// Follow mode delivered something.
    Tail(TailEvent),
}
