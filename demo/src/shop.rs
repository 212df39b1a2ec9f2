//! The shop: its services, Deployments, pods and catalogue.

use std::path::PathBuf;

use corral_collector::metadata::PodMeta;

/// Namespace of every simulated pod.
pub(crate) const NAMESPACE: &str = "shop";
/// Version of the `payments` canary; the stable pods run [`PAYMENTS_STABLE_VERSION`].
pub(crate) const PAYMENTS_CANARY_VERSION: &str = "2.4.0";
pub(crate) const PAYMENTS_STABLE_VERSION: &str = "2.3.0";
/// Share of charges that fail with an exception, per `payments` version.
pub(crate) const CANARY_ERROR_RATE: f64 = 0.15;
pub(crate) const STABLE_ERROR_RATE: f64 = 0.01;

/// One service of the shop; each prints JSON the way a different logging library does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Service {
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
    pub(crate) const ALL: [Service; 5] = [
        Service::Gateway,
        Service::Orders,
        Service::Payments,
        Service::Inventory,
        Service::Notifications,
    ];

    pub(crate) fn name(self) -> &'static str {
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
pub(crate) const DEPLOYMENTS: [(Service, &str, usize); 6] = [
    (Service::Gateway, "1.8.2", 2),
    (Service::Orders, "3.1.0", 3),
    (Service::Payments, PAYMENTS_STABLE_VERSION, 2),
    (Service::Payments, PAYMENTS_CANARY_VERSION, 1),
    (Service::Inventory, "5.0.3", 2),
    (Service::Notifications, "0.9.4", 2),
];

/// One simulated pod, with a single container named after its service.
#[derive(Debug, Clone)]
pub(crate) struct SimPod {
    pub(crate) service: Service,
    pub(crate) version: &'static str,
    /// Deployment-style name: `orders-7d9f8b6c4-x2k9p`.
    pub(crate) name: String,
    /// The ReplicaSet owning the pod: `orders-7d9f8b6c4`.
    pub(crate) owner: String,
    pub(crate) uid: String,
}

impl SimPod {
    pub(crate) fn container(&self) -> &'static str {
        self.service.name()
    }

    /// `shop_<pod>_<uid>/<container>`, as the kubelet lays it out.
    pub(crate) fn container_dir(&self) -> PathBuf {
        PathBuf::from(format!("{NAMESPACE}_{}_{}", self.name, self.uid)).join(self.container())
    }

    pub(crate) fn meta(&self) -> PodMeta {
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

/// Products on sale: sku, category, price in cents.
pub(crate) const PRODUCTS: [(&str, &str, i64); 8] = [
    ("SKU-1042-BLK", "shoes", 8990),
    ("SKU-1043-WHT", "shoes", 9490),
    ("SKU-2210-NVY", "jackets", 15900),
    ("SKU-2215-OLV", "jackets", 18900),
    ("SKU-3301-TAN", "bags", 6490),
    ("SKU-3307-BLK", "bags", 12900),
    ("SKU-4120-SLV", "accessories", 2490),
    ("SKU-4188-GLD", "accessories", 3990),
];
pub(crate) const CATEGORIES: [&str; 4] = ["shoes", "jackets", "bags", "accessories"];
pub(crate) const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36",
    "ShopApp/4.2.1 (iPhone; iOS 17.5)",
    "ShopApp/4.2.0 (Android 14; Pixel 8)",
];

/// The canary's bug: the fraud score it now reads can be missing.
pub(crate) const CANARY_STACK: [&str; 7] = [
    "java.lang.NullPointerException: Cannot invoke \"com.shop.payments.fraud.FraudScore.value()\" because \"score\" is null",
    "\tat com.shop.payments.charge.ChargeService.applyFraudRules(ChargeService.java:142)",
    "\tat com.shop.payments.charge.ChargeService.charge(ChargeService.java:87)",
    "\tat com.shop.payments.api.ChargeController.create(ChargeController.java:41)",
    "\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)",
    "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)",
    "\t... 48 common frames omitted",
];
/// The stable version's rare failure: the card processor does not answer in time.
pub(crate) const STABLE_STACK: [&str; 7] = [
    "java.net.SocketTimeoutException: Read timed out",
    "\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:278)",
    "\tat java.base/java.net.Socket$SocketInputStream.read(Socket.java:1099)",
    "\tat org.apache.hc.core5.http.impl.io.SessionInputBufferImpl.fillBuffer(SessionInputBufferImpl.java:149)",
    "\tat com.shop.payments.provider.AcquirerClient.capture(AcquirerClient.java:64)",
    "\tat com.shop.payments.charge.ChargeService.charge(ChargeService.java:95)",
    "\t... 52 common frames omitted",
];
pub(crate) const INVENTORY_TRACEBACK: [&str; 6] = [
    "Traceback (most recent call last):",
    "  File \"/app/inventory/reservations.py\", line 88, in reserve",
    "    rows = await db.fetch(RESERVE_SQL, sku, qty)",
    "  File \"/usr/local/lib/python3.12/site-packages/asyncpg/pool.py\", line 631, in fetch",
    "    return await con.fetch(query, *args, timeout=timeout)",
    "asyncpg.exceptions.QueryCanceledError: canceling statement due to statement timeout",
];
