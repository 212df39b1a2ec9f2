//! A small filesystem for tests of what happens when a disk fills up.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted for one test, unmounted (lazily) when dropped — also when
/// the test fails. Mounting needs root, as CI runs; elsewhere the test fails saying so.
#[derive(Debug)]
pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`96m`) on `path`, creating it.
    ///
    /// # Panics
    /// When not run as root or when the mount fails.
    pub fn mount(path: &Path, size: &str) -> SmallDisk {
        let uid = Command::new("id").arg("-u").output().expect("run id -u");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test mounts a small tmpfs to fill: run it as root (CI does)"
        );
        std::fs::create_dir_all(path).expect("create the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs on {}", path.display());
        SmallDisk {
            path: path.to_owned(),
        }
    }

    /// Fills the filesystem with a file `name` until at most `leave` bytes are free; returns
    /// its path (remove it to give the space back).
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn fill(&self, name: &str, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.path.join(name);
        let mut file = std::fs::File::create(&path).expect("create the ballast file");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            let free = fs4::available_space(&self.path).expect("free space");
            if free <= leave {
                break;
            }
            let n = chunk.len().min((free - leave) as usize);
            if file.write_all(&chunk[..n]).is_err() {
                break;
            }
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
