//! A real Kafka-protocol broker for tests: `tansu broker` with in-memory storage on a free
//! loopback port.
//!
//! [`Broker::start`] spawns the broker, waits until it answers a Kafka metadata request and
//! returns a guard; dropping the guard kills the broker, also when the test panics (the broker's
//! log is then printed to stderr, since it is what someone debugging the failure needs).
//! When the broker cannot be started the test fails, saying how to install it: tests that need
//! Kafka never skip.

use std::collections::HashMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tempfile::TempDir;

/// How long a starting broker may take to answer its first metadata request.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The tansu version `make test` installs.
pub const TANSU_VERSION: &str = "0.6.0";

/// A running tansu broker, killed on drop.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    port: u16,
    log_path: PathBuf,
    _dir: TempDir,
}

impl Broker {
    /// Starts a broker on a free 127.0.0.1 port and waits until it serves metadata.
    ///
    /// # Panics
    /// When tansu is not installed, exits early or does not answer within a minute; the message
    /// says how to install it and includes the broker's log.
    pub fn start() -> Broker {
        match Broker::try_start() {
            Ok(broker) => broker,
            Err(message) => panic!("{message}"),
        }
    }

    /// Starts a broker like [`Broker::start`], returning the reason as an error instead of panicking.
    pub fn try_start() -> Result<Broker, String> {
        Broker::try_start_with(tansu_binary())
    }

    /// Starts the broker binary at `binary`; `None` means none was found.
    fn try_start_with(binary: Option<PathBuf>) -> Result<Broker, String> {
        let binary = binary.ok_or_else(|| {
            format!(
                "the test broker `tansu` is not installed: run `make test` (it installs it), or \
                 `cargo install tansu --locked --version {TANSU_VERSION} --features dynostore,libsql`"
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("corral-broker-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for the broker: {e}"))?;
        let port = free_port().map_err(|e| format!("cannot find a free port for the broker: {e}"))?;
        let log_path = dir.path().join("tansu.log");
        let log =
            File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone log handle: {e}"))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args([
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                "corral-test",
            ])
            .env_remove("STORAGE_ENGINE")
            .env(
                "RUST_LOG",
                std::env::var("CORRAL_BROKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut broker = Broker {
            child,
            port,
            log_path,
            _dir: dir,
        };
        broker.wait_ready()?;
        Ok(broker)
    }

    /// Returns the `bootstrap.servers` value for clients.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Returns the broker's process id (for pausing it with SIGSTOP in fault tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns everything the broker has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("(cannot read broker log: {e})"))
    }

    /// Returns the path of the broker's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Creates a topic with `partitions` partitions and waits until its metadata lists them all.
    ///
    /// # Panics
    /// When the broker refuses, with the broker's log.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .create()
            .expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        // The admin future is completed by librdkafka's own threads; a private runtime on a
        // separate thread drives it, so this works from sync tests and from inside tokio tests.
        let results = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("runtime");
                    runtime.block_on(admin.create_topics([&topic], &options))
                })
                .join()
                .expect("create_topics thread")
        })
        .unwrap_or_else(|e| panic!("create topic {name}: {e}\n--- broker log ---\n{}", self.logs()));
        for result in results {
            if let Err((topic, code)) = result {
                panic!(
                    "create topic {topic}: {code}\n--- broker log ---\n{}",
                    self.logs()
                );
            }
        }
        let consumer = self.metadata_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = consumer
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .ok()
                .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
                .unwrap_or(0);
            if seen == partitions as usize {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name} shows {seen} of {partitions} partitions after 30 s\n--- broker log ---\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Reads `topic` from the beginning of every partition until at least `expected` messages
    /// arrived, every partition is read to its high watermark (so nothing already in the topic
    /// is missed, duplicates or not) and no more came for `settle` (so extra messages that
    /// producers still send would show; `Duration::ZERO` once no producer runs, since the
    /// watermarks are then final); panics after `timeout`.
    pub fn consume_all(
        &self,
        topic: &str,
        expected: usize,
        settle: Duration,
        timeout: Duration,
    ) -> Vec<OwnedMessage> {
        self.consume(topic, expected, settle, timeout, true)
    }

    /// Reads `topic` from the beginning until at least `expected` messages arrived, while
    /// producers may still be writing; panics after `timeout`.
    pub fn consume_at_least(&self, topic: &str, expected: usize, timeout: Duration) -> Vec<OwnedMessage> {
        self.consume(topic, expected, Duration::ZERO, timeout, false)
    }

    fn consume(
        &self,
        topic: &str,
        expected: usize,
        settle: Duration,
        timeout: Duration,
        to_watermarks: bool,
    ) -> Vec<OwnedMessage> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .set("group.id", format!("corral-test-reader-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("topic metadata");
        let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|p| p.id()).collect();
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            assignment
                .add_partition_offset(topic, *partition, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&assignment).expect("assign");
        let mut next_offset: HashMap<i32, i64> = HashMap::new();
        let mut messages = Vec::new();
        let deadline = Instant::now() + timeout;
        let mut last_arrival = Instant::now();
        loop {
            // Whether the consumer had nothing more to hand out: only then are the watermarks
            // asked for (a request per partition, too slow to make for every message).
            let idle = match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    next_offset.insert(message.partition(), message.offset() + 1);
                    messages.push(message.detach());
                    last_arrival = Instant::now();
                    false
                }
                Some(Err(error)) => panic!("consume {topic}: {error}\n--- broker log ---\n{}", self.logs()),
                None => true,
            };
            if messages.len() >= expected && last_arrival.elapsed() >= settle && (idle || !to_watermarks) {
                let caught_up = !to_watermarks
                    || partitions.iter().all(|partition| {
                        let (low, high) = consumer
                            .fetch_watermarks(topic, *partition, Duration::from_secs(5))
                            .expect("watermarks");
                        high <= low || next_offset.get(partition).copied().unwrap_or(low) >= high
                    });
                if caught_up {
                    return messages;
                }
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {expected} messages on {topic} after {timeout:?}\n--- broker log ---\n{}",
                messages.len(),
                self.logs()
            );
        }
    }

    fn metadata_client(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .set("log_level", "3")
            .create()
            .expect("metadata client")
    }

    /// Polls the broker with metadata requests until one succeeds.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = self.metadata_client();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "tansu exited during startup ({status})\n--- broker log ---\n{}",
                    self.logs()
                ));
            }
            if client.fetch_metadata(None, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "tansu did not answer a metadata request on {} within {START_TIMEOUT:?}\n--- broker log ---\n{}",
                    self.bootstrap_servers(),
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- tansu broker log ({}) ---\n{}",
                self.log_path.display(),
                self.logs()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds the tansu binary: `$TANSU_BIN`, then `PATH`, then cargo's bin directory.
fn tansu_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return Some(PathBuf::from(path));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect())
        .unwrap_or_default();
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(cargo_home).join("bin/tansu"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Returns a port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_broker_fails_with_install_instructions() {
        let error = Broker::try_start_with(None).expect_err("no binary, no broker");
        assert!(
            error.contains("cargo install tansu --locked --version 0.6.0"),
            "{error}"
        );
        let error = Broker::try_start_with(Some("/nonexistent/tansu".into())).expect_err("bad path");
        assert!(error.starts_with("cannot start /nonexistent/tansu:"), "{error}");
    }

    #[test]
    fn a_broker_that_exits_at_startup_is_reported_with_its_log() {
        // `false` stands in for a broker binary that dies immediately.
        let error = Broker::try_start_with(Some("/bin/false".into())).expect_err("exits at once");
        assert!(error.starts_with("tansu exited during startup"), "{error}");
        assert!(error.contains("--- broker log ---"), "{error}");
    }
}
