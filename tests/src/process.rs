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
