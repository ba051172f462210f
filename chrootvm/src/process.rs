//! Helper processes (virtiofsd, qemu) tied to chrootvm's lifetime.
//!
//! Each helper is started through chrootvm itself, re-executed as a tiny
//! launcher ([`LAUNCHER_ARG0`]): it asks the kernel to SIGKILL it when
//! chrootvm dies (`PR_SET_PDEATHSIG`), then checks that chrootvm is still
//! its parent (had chrootvm died before the request, the signal would never
//! come, so it gives up), then execs the helper, which keeps the request.
//! So a helper dies with chrootvm from the instant it exists, even when
//! chrootvm is SIGKILLed in its first milliseconds. This needs no `unsafe`
//! `pre_exec` and no second program.
//!
//! chrootvm is also a child subreaper: a helper's own children (the C
//! virtiofsd forks one) become chrootvm's when their parent dies, and
//! [`reap_descendants`] kills and reaps every one before chrootvm returns,
//! so nothing it started outlives it. Dropping a [`Helper`] kills and reaps
//! it, which covers every way out (error, signal, return).

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use rustix::io::Errno;
use rustix::process::{
    Pid, Signal, WaitOptions, getppid, kill_process, set_child_subreaper,
    set_parent_process_death_signal, waitpid,
};

use crate::error::{Error, OsText};

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

impl Helper {
    /// Starts `argv[0]` with the rest as arguments, dying with chrootvm.
    ///
    /// # Errors
    /// [`Error::Spawn`] when the launcher cannot be started.
    pub fn spawn(argv: &[OsString], streams: Streams) -> Result<Helper, Error> {
        let child = Command::new(SELF_EXE)
            .arg0(LAUNCHER_ARG0)
            .arg(std::process::id().to_string())
            .args(argv)
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

    /// Its stdout, when it was started with a pipe there.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut()?.stdout.take()
    }

    /// Waits for it to exit and reaps it.
    pub fn wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.wait().ok();
        self.child = None;
        status
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

/// chrootvm's own binary, as the kernel knows it (not looked up in PATH).
const SELF_EXE: &str = "/proc/self/exe";

/// `argv[0]` of chrootvm started as a helper's launcher: no user types
/// it, so the launcher is never entered by accident.
pub const LAUNCHER_ARG0: &str = "chrootvm (helper launcher)";

/// Exit status of a launcher that could not start its helper.
const LAUNCH_FAILED: i32 = 127;

/// The launcher: `PARENT PROGRAM ARGS...`. Arranges to be killed when
/// PARENT dies, gives up if it already has, then becomes PROGRAM.
pub fn launch(mut args: impl Iterator<Item = OsString>) -> ! {
    let parent = args.next().and_then(|p| p.to_str()?.parse::<i32>().ok());
    let Some(program) = args.next() else {
        note!("the helper launcher needs a parent and a program");
        std::process::exit(LAUNCH_FAILED);
    };
    if let Err(e) = set_parent_process_death_signal(Some(Signal::KILL)) {
        note!(
            "cannot tie {} to chrootvm: {}",
            program.to_string_lossy(),
            OsText(&e.into())
        );
        std::process::exit(LAUNCH_FAILED);
    }
    // Asked after the request: had chrootvm died before it, the kernel
    // would never send the signal, so the helper must not start at all.
    if getppid().map(Pid::as_raw_pid) != parent {
        std::process::exit(LAUNCH_FAILED);
    }
    let error = Command::new(&program).args(args).exec();
    note!(
        "cannot start {}: {}",
        program.to_string_lossy(),
        OsText(&error)
    );
    std::process::exit(LAUNCH_FAILED);
}

/// Makes chrootvm the reaper of its helpers' orphans, so that
/// [`reap_descendants`] finds them.
///
/// # Errors
/// The kernel refused (kernels before 3.4 lack the request).
pub fn become_subreaper() -> io::Result<()> {
    set_child_subreaper(Some(rustix::process::getpid())).map_err(io::Error::from)
}

/// Kills and reaps every child chrootvm still has, including orphans of its
/// helpers handed to it as their subreaper, until none is left. Call when
/// every [`Helper`] is gone: it reaps whatever is a child.
pub fn reap_descendants() {
    loop {
        let children = children();
        if children.is_empty() {
            return;
        }
        for &pid in &children {
            // ESRCH: it is gone already; the wait below reaps it.
            let _ = kill_process(pid, Signal::KILL);
        }
        // Killed children become zombies; their own children become ours
        // and are found by the next round.
        for _ in &children {
            match waitpid(None, WaitOptions::empty()) {
                Ok(_) => {}
                // ECHILD: nothing is left to reap.
                Err(Errno::CHILD) => return,
                Err(_) => break,
            }
        }
    }
}

/// chrootvm's children, from /proc/self/task/*/children; where the kernel
/// lacks those files (CONFIG_PROC_CHILDREN), from every process's parent.
fn children() -> Vec<Pid> {
    let mut pids = Vec::new();
    let mut listed = false;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            listed = true;
            pids.extend(text.split_whitespace().filter_map(parse_pid));
        }
    }
    if listed {
        return pids;
    }
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`, where COMM may hold anything.
        let Some(after) = stat.rfind(')').map(|end| &stat[end + 1..]) else {
            continue;
        };
        if after.split_whitespace().nth(1) == Some(me.as_str())
            && let Some(pid) = entry.file_name().to_str().and_then(parse_pid)
        {
            pids.push(pid);
        }
    }
    pids
}

fn parse_pid(text: &str) -> Option<Pid> {
    Pid::from_raw(text.parse().ok()?)
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

    #[test]
    fn children_lists_a_child_and_not_a_grandchild() {
        use std::io::BufRead;
        // A shell whose own child is a grandchild of this test process.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 1000 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild = parse_pid(line.trim()).unwrap();
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
        let listed = children();
        let _ = kill_process(grandchild, Signal::KILL);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(listed.contains(&pid), "{pid:?} not in {listed:?}");
        assert!(!listed.contains(&grandchild), "grandchild in {listed:?}");
    }

    #[test]
    fn parse_pid_takes_numbers_only() {
        assert_eq!(parse_pid("42"), Pid::from_raw(42));
        assert_eq!(parse_pid("0"), None);
        assert_eq!(parse_pid("x"), None);
    }
}
