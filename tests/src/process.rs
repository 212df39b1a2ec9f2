//! Child processes of end-to-end tests.

use std::process::Child;

/// A process under test, killed and reaped when dropped — also when the test panics, so no
/// orphan keeps running or holds the test's output pipe open.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ChildGuard {
    /// Sends SIGTERM and waits up to `timeout` for a clean exit.
    ///
    /// # Panics
    /// When the process does not exit in time or exits unsuccessfully.
    pub fn terminate(mut self, timeout: std::time::Duration) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.0.id());
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for the process") {
                assert!(status.success(), "exited with {status} after SIGTERM");
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "did not stop within {timeout:?} of SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Path of a workspace binary (`corral-indexer`, `logq` …) for tests of another package, which
/// cargo's `CARGO_BIN_EXE_*` does not cover: next to the test's own build output, built first
/// with the same profile when it is not there yet.
///
/// # Panics
/// When the binary cannot be built.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile> directory");
    let binary = profile_dir.join(name);
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_build_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !binary.try_exists().expect("the target directory can be read") {
        let mut command = std::process::Command::new(env!("CARGO"));
        command.args(["build", "--bin", name]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    binary
}

/// How often the `wait_*` functions poll.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Polls `check` every 100 ms until it holds.
///
/// # Panics
/// When it still does not hold after `timeout`, naming `what`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut check: impl FnMut() -> bool) {
    wait_for(what, timeout, || check().then_some(()))
}

/// Polls `check` every 100 ms until it returns `Some`; returns its value.
///
/// # Panics
/// When it still returns `None` after `timeout`, naming `what`.
pub fn wait_for<T>(what: &str, timeout: std::time::Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `check` every 100 ms until it returns `Ok`; returns its value. An `Err` says what
/// was seen instead (the metrics, the screen, a count), for the message when time runs out.
///
/// # Panics
/// When it still returns `Err` after `timeout`, naming `what` and the last `Err`.
pub fn wait_for_ok<T, E: std::fmt::Display>(
    what: &str,
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let started = std::time::Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) => assert!(
                started.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; last seen: {seen}"
            ),
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
