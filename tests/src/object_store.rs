//! A real S3-compatible server for tests: `s3s-fs` (from crates.io) on a free loopback port,
//! keeping objects as files under a temporary directory.
//!
//! [`ObjectStoreServer::start`] spawns it with an access key and secret, creates the bucket
//! (a directory of its root), waits until it answers HTTP and returns a guard that kills it on
//! drop, printing its log when the test panicked. When the server cannot be started the test
//! fails, saying how to install it: tests that need it never skip.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::broker::free_port;

/// The s3s-fs version `make test` installs.
pub const S3S_FS_VERSION: &str = "0.14.1";
const ACCESS_KEY: &str = "corral-test";
const SECRET_KEY: &str = "corral-test-secret";
/// The bucket every test server has.
pub const BUCKET: &str = "corral";
/// A second bucket every test server has (a tier with a store of its own).
pub const COLD_BUCKET: &str = "corral-cold";

/// A running s3s-fs server, killed on drop.
#[derive(Debug)]
pub struct ObjectStoreServer {
    child: Child,
    port: u16,
    log_path: PathBuf,
    dir: TempDir,
}

impl ObjectStoreServer {
    /// Starts a server on a free 127.0.0.1 port with the buckets [`BUCKET`] and [`COLD_BUCKET`].
    ///
    /// # Panics
    /// When s3s-fs is not installed or does not answer within 30 s, with how to install it and
    /// the server's log.
    pub fn start() -> ObjectStoreServer {
        let binary = binary().unwrap_or_else(|| {
            panic!(
                "the test object store `s3s-fs` is not installed: run `make test` (it installs it), \
                 or `cargo install s3s-fs --locked --version {S3S_FS_VERSION} --features binary`"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("corral-s3-")
            .tempdir()
            .expect("a temp dir for the object store");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(BUCKET)).expect("the bucket directory");
        std::fs::create_dir_all(root.join(COLD_BUCKET)).expect("the second bucket's directory");
        let port = free_port().expect("a free port");
        let log_path = dir.path().join("s3s-fs.log");
        let log = File::create(&log_path).expect("the object store's log");
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut server = ObjectStoreServer {
            child,
            port,
            log_path,
            dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("s3s-fs exited with {status}:\n{}", self.logs());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "s3s-fs did not listen within 30 s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `AWS_ENDPOINT_URL` for clients.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The standard AWS environment a client of this server needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// The directory holding the objects under `prefix` of the bucket, as the server keeps
    /// them (for checking what was published).
    pub fn objects(&self, prefix: &str) -> PathBuf {
        self.dir.path().join("root").join(BUCKET).join(prefix)
    }

    /// As [`Self::objects`], in bucket `bucket`.
    pub fn objects_in(&self, bucket: &str, prefix: &str) -> PathBuf {
        self.dir.path().join("root").join(bucket).join(prefix)
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("(cannot read the log: {e})"))
    }

    /// The server's process id (to stop it with SIGSTOP in fault tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ObjectStoreServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- s3s-fs log ({}) ---\n{}",
                self.log_path.display(),
                self.logs()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$S3S_FS_BIN`, then `PATH`, then cargo's bin directory.
fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("S3S_FS_BIN") {
        return Some(PathBuf::from(path));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("s3s-fs")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/s3s-fs"));
    }
    candidates.into_iter().find(|p| p.is_file())
}
