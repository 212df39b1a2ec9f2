//! [`Query`]: what the TUI shows, and how it starts the background work that fetches it — a
//! search or stats as a tokio task that answers with an [`Event`], a tail as a channel of
//! [`TailEvent`]s.

use corral_schema::api::{ApiQuery, Order};
use tokio::sync::mpsc;

use super::{App, Event};
use crate::client::{Client, TailEvent};
use crate::model::{merge, sum_stats};

/// What the TUI shows.
#[derive(Debug, Clone)]
pub enum Query {
    /// A search (`--corr` or `search`), optionally followed.
    Search {
        params: ApiQuery,
        limit: usize,
        follow: bool,
    },
    /// Follow only.
    Tail { params: ApiQuery },
    /// Stats grouped by a field.
    Stats { params: ApiQuery, by: String },
}

/// The work a [`Query`] started: what follow mode tails, and the tail when it follows from the
/// start.
#[derive(Debug)]
pub(super) struct Started {
    /// The parameters `F` (and `--follow`) tail with.
    pub tail_params: ApiQuery,
    /// The running tail, if the query follows from the start.
    pub follow: Option<mpsc::Receiver<TailEvent>>,
}

impl Query {
    /// Sets `app` up for this query and starts its work on `runtime`: a search or stats task
    /// that sends its answer on `tx`, and the tail when the query follows. A followed search
    /// starts the tail before the search, so nothing is missed in between.
    pub(super) fn start(
        &self,
        runtime: &tokio::runtime::Runtime,
        client: &Client,
        app: &mut App,
        tx: &mpsc::Sender<Event>,
    ) -> Started {
        let mut follow = None;
        let tail_params;
        match self {
            Query::Search {
                params,
                limit,
                follow: want,
            } => {
                tail_params = ApiQuery {
                    selector: params.selector.clone(),
                    ..ApiQuery::default()
                };
                if *want {
                    app.following = true;
                    follow = Some(start_tail(runtime, client, &tail_params));
                }
                let client = client.clone();
                let params = params.clone();
                let limit = *limit;
                let tx = tx.clone();
                runtime.spawn(async move {
                    let fan = client.search(&params, limit).await;
                    let (hits, truncated) = merge(fan.answers, Order::Asc, limit);
                    // The status line shows what was not searched beside what failed.
                    let errors = fan.errors.into_iter().chain(fan.notices).collect();
                    let _ = tx
                        .send(Event::Results {
                            hits,
                            truncated,
                            errors,
                        })
                        .await;
                });
            }
            Query::Tail { params } => {
                tail_params = params.clone();
                app.following = true;
                app.loading = false;
                follow = Some(start_tail(runtime, client, &tail_params));
            }
            Query::Stats { params, by } => {
                tail_params = ApiQuery::default();
                app.stats_by = Some(by.clone());
                let client = client.clone();
                let params = params.clone();
                let tx = tx.clone();
                runtime.spawn(async move {
                    let fan = client.stats(&params).await;
                    let _ = tx
                        .send(Event::Stats {
                            stats: sum_stats(fan.answers),
                            errors: fan.errors,
                        })
                        .await;
                });
            }
        }
        Started { tail_params, follow }
    }
}

/// Starts tailing every endpoint with `params` on `runtime`; the receiver yields what they send.
pub(super) fn start_tail(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    params: &ApiQuery,
) -> mpsc::Receiver<TailEvent> {
    let (tail_tx, tail_rx) = mpsc::channel(1024);
    let _guard = runtime.enter();
    client.tail(params, &tail_tx);
    tail_rx
}
