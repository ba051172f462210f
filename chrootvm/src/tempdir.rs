//! A private directory for virtiofsd's and qemu's sockets, removed when
//! dropped. Under $XDG_RUNTIME_DIR when set (a tmpfs only we can reach),
//! else the system temp directory; mode 0700.
//!
//! A chrootvm killed by SIGKILL cannot remove its directory (it goes as
//! soon as qemu has connected to every socket, so only the first moments
//! of a run are exposed): the next run removes the directories of this
//! user's chrootvm processes that no longer exist.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory that exists as long as this value.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

/// Distinguishes directories made by one process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TempDir {
    /// [`TempDir::create`] for tests, panicking on failure.
    #[cfg(test)]
    pub fn new(prefix: &str) -> TempDir {
        Self::create(prefix).expect("cannot create a temp directory")
    }

    /// Creates `chrootvm-PREFIX-PID-N` in the runtime or temp directory.
    ///
    /// # Errors
    /// The base directory is not writable.
    pub fn create(prefix: &str) -> io::Result<TempDir> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        sweep(&base, prefix);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("chrootvm-{prefix}-{}-{n}", std::process::id()));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", base.display()))),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory now (dropping does the same, ignoring errors).
    pub fn remove(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.path);
            self.path = PathBuf::new();
        }
    }
}

/// Removes `chrootvm-PREFIX-PID-N` directories in `base` that this user
/// owns and whose process is gone. Best effort: what cannot be removed
/// stays for the next run.
fn sweep(base: &Path, prefix: &str) {
    use std::os::unix::fs::MetadataExt;
    let start = format!("chrootvm-{prefix}-");
    let uid = rustix::process::geteuid().as_raw();
    for entry in fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&start))
            .and_then(|rest| rest.split('-').next())
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_drop_and_private() {
        let dir = TempDir::new("test");
        let path = dir.path().to_path_buf();
        fs::write(path.join("x"), "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn directories_of_dead_processes_are_swept() {
        let base = TempDir::new("sweep-base");
        // PID 0x7fffffff is above any pid_max: never a live process.
        let dead = base.path().join("chrootvm-vm-2147483647-0");
        let live = base
            .path()
            .join(format!("chrootvm-vm-{}-9", std::process::id()));
        let other = base.path().join("chrootvm-vmx-2147483647-0");
        for dir in [&dead, &live, &other] {
            fs::create_dir(dir).unwrap();
            fs::write(dir.join("fs0.sock"), "").unwrap();
        }
        sweep(base.path(), "vm");
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
    }

    #[test]
    fn names_are_unique() {
        let a = TempDir::new("u");
        let b = TempDir::new("u");
        assert_ne!(a.path(), b.path());
    }
}
