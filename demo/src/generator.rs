//! Generation of the fleet's pods and requests from a seed, without I/O or sleeping.

use corral_schema::{Level, Stream};

use crate::dialect::render;
use crate::fleet::{MAX_CATCH_UP_NS, MAX_REQUEST_SPAN_NS, NANOS_PER_MS};
use crate::json::{Val, euros, millis};
use crate::rng::SplitMix64;
use crate::shop::*;

/// One line to write: an application line of one pod at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Nanoseconds since the Unix epoch.
    pub(crate) at: i64,
    /// Generation order: orders lines of the same instant (a stack trace stays in one piece).
    pub(crate) seq: u64,
    /// Index into [`FleetGenerator::pods`].
    pub(crate) pod: usize,
    pub(crate) stream: Stream,
    /// The application's line, without `\n`.
    pub(crate) content: String,
}

/// One generated request: its correlation id, its end and its lines (the first one is the
/// gateway's, at the request's arrival).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) corr: String,
    /// Time of the request's last line.
    pub(crate) end: i64,
    pub(crate) entries: Vec<Entry>,
}

/// Where the lines of one request (or of the pods' startup) are collected.
#[derive(Debug)]
pub(crate) struct Trace {
    pub(crate) corr: Option<String>,
    pub(crate) user_id: String,
    /// Forces the showcase path: the charge goes to the canary and fails.
    pub(crate) showcase: bool,
    pub(crate) entries: Vec<Entry>,
}

/// What the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
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
pub(crate) enum Reservation {
    Reserved,
    OutOfStock,
    Failed,
}

/// Outcome of a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    Captured,
    Declined,
    Failed,
}

/// Generates the fleet's pods and requests from a seed, without I/O or sleeping.
#[derive(Debug)]
pub(crate) struct FleetGenerator {
    pub(crate) rng: SplitMix64,
    pub(crate) pods: Vec<SimPod>,
    pub(crate) next_seq: u64,
}

impl FleetGenerator {
    /// Builds the pods of `seed`; `restart` (the run's restart number) varies everything else,
    /// so a restarted fleet does not repeat its correlation ids.
    pub(crate) fn new(seed: u64, restart: u64) -> FleetGenerator {
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

    pub(crate) fn pods(&self) -> &[SimPod] {
        &self.pods
    }

    /// Returns the time to the next arrival of a Poisson process of `rate` requests per second.
    pub(crate) fn arrival_gap(&mut self, rate: u32) -> i64 {
        let u = 1.0 - self.rng.unit(); // in (0, 1]: ln is finite
        let gap = -u.ln() / f64::from(rate.max(1)) * 1e9;
        (gap as i64).clamp(1, MAX_CATCH_UP_NS)
    }

    /// Returns the lines each pod prints when it starts, from `at` on.
    pub(crate) fn startup(&mut self, at: i64) -> Vec<Entry> {
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
    pub(crate) fn random_request(&mut self, start: i64) -> Request {
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
    pub(crate) fn showcase(&mut self, start: i64) -> Request {
        self.request(start, Route::PlaceOrder, true)
    }

    pub(crate) fn request(&mut self, start: i64, route: Route, showcase: bool) -> Request {
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
    pub(crate) fn hop(&mut self) -> i64 {
        self.rng.uniform_ms(1.0, 3.0)
    }

    pub(crate) fn pick_pod(&mut self, service: Service) -> usize {
        let candidates: Vec<usize> = (0..self.pods.len())
            .filter(|&i| self.pods[i].service == service)
            .collect();
        *self.rng.pick(&candidates)
    }

    /// Handles a request at the gateway; returns the time of its last record.
    pub(crate) fn gateway(&mut self, trace: &mut Trace, t0: i64, route: Route) -> i64 {
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
    pub(crate) fn orders_get(&mut self, trace: &mut Trace, t0: i64, order_id: &str) -> (i64, i64) {
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
    pub(crate) fn orders_create(&mut self, trace: &mut Trace, t0: i64) -> (i64, i64) {
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
    pub(crate) fn inventory_list(&mut self, trace: &mut Trace, t0: i64, category: &str) -> i64 {
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
    pub(crate) fn inventory_reserve(
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
    pub(crate) fn payments_charge(
        &mut self,
        trace: &mut Trace,
        t0: i64,
        order_id: &str,
        amount: i64,
    ) -> (i64, Charge) {
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
    pub(crate) fn notifications_send(
        &mut self,
        trace: &mut Trace,
        t0: i64,
        template: &str,
        order_id: &str,
    ) -> i64 {
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

    pub(crate) fn plain(&mut self, trace: &mut Trace, pod: usize, at: i64, stream: Stream, text: &str) {
        self.push(trace, pod, at, stream, text.to_owned());
    }

    /// Adds one JSON record, printed as `pod`'s service prints it.
    pub(crate) fn log(
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

    pub(crate) fn push(&mut self, trace: &mut Trace, pod: usize, at: i64, stream: Stream, content: String) {
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
