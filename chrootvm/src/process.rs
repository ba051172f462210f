//! Helper processes (virtiofsd, qemu) tied to chrootvm's lifetime. Each is
//! started through util-linux's `setpriv --pdeathsig KILL`, so the kernel
//! kills it if chrootvm dies, even by SIGKILL; dropping a [`Helper`] kills
//! and reaps it, which covers every other way out (error, signal, return).
//! setpriv keeps chrootvm free of `unsafe` (no `pre_exec`); it is in
//! util-linux, which every Debian system has.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;

use crate::error::Error;

/// A running helper, killed and reaped when dropped.
#[derive(Debug)]
pub struct Helper {
    child: Option<Child>,
}

/// How a helper's standard streams are connected.
pub struct Streams {
    /// Its stdin.
    pub stdin: Stdio,
    /// Its stdout.
    pub stdout: Stdio,
    /// Its stderr.
    pub stderr: Stdio,
}

impl Streams {
    /// All three inherited from chrootvm.
    pub fn inherit() -> Streams {
        Streams {
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
        }
    }
}

impl Helper {
    /// Starts `argv[0]` with the rest as arguments, dying with chrootvm.
    ///
    /// # Errors
    /// [`Error::Spawn`] when the program cannot be started.
    pub fn spawn(argv: &[OsString], streams: Streams) -> Result<Helper, Error> {
        let mut command = match setpriv() {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]).args(argv);
                command
            }
            None => {
                let mut command = Command::new(&argv[0]);
                command.args(&argv[1..]);
                command
            }
        };
        let child = command
            .stdin(streams.stdin)
            .stdout(streams.stdout)
            .stderr(streams.stderr)
            .spawn()
            .map_err(|e| Error::Spawn(argv[0].to_string_lossy().into_owned(), e))?;
        Ok(Helper { child: Some(child) })
    }

    /// Its process id.
    pub fn child(&self) -> &Child {
        self.child.as_ref().expect("helper already reaped")
    }

    /// Whether it has exited, and how (reaping it if so).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Kills (SIGKILL) and reaps it; a helper already gone is fine.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // ESRCH-like errors mean it is already dead: reaping is all left.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// util-linux's setpriv, looked up once.
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV.get_or_init(|| find_program("setpriv")).as_deref()
}

/// A program in PATH (or the sbin directories root's PATH has).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// A regular file with an execute bit.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn drop_kills_and_reaps() {
        let helper = Helper::spawn(&["sleep".into(), "1000".into()], Streams::inherit()).unwrap();
        let pid = helper.child().id();
        drop(helper);
        // Reaped: /proc has no entry (not even a zombie).
        let gone = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn helper_dies_with_its_parent() {
        if setpriv().is_none() {
            eprintln!("note: no setpriv, skipped");
            return;
        }
        // A shell starts a helper through setpriv and is then killed; the
        // helper must die too (what happens when chrootvm is SIGKILLed).
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{} --pdeathsig KILL -- sleep 1000 & echo $!; exec sleep 1000",
                setpriv().unwrap().display()
            ))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut parent = out;
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(parent.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid = line.trim().to_string();
        std::thread::sleep(Duration::from_millis(100));
        parent.kill().unwrap();
        parent.wait().unwrap();
        let gone = Instant::now() + Duration::from_secs(5);
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        };
        while alive() && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(), "helper {pid} outlived its parent");
    }
}
