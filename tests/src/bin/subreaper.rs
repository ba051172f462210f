//! `subreaper COMMAND [ARGS...]`: runs COMMAND as a child subreaper, so
//! that anything COMMAND started and left behind becomes our child, and
//! reports what is left the instant COMMAND has exited: one line
//! `subreaper: left PID COMM CMDLINE` on stderr per surviving descendant,
//! which is then killed and reaped. Its first line on stderr is
//! `subreaper: started PID` (COMMAND's pid, for signals). Exits with
//! COMMAND's status (128+N for signal N).
//!
//! The tests run chrootvm under it: "when chrootvm returns, no process it
//! started, nor a descendant of one, still exists" is then checked with no
//! sleep and no guess from command lines.
//!
//! With `SUBREAPER_GRACE_MS=N`, descendants get up to N ms to exit before
//! the report: for a COMMAND killed by SIGKILL, whose helpers die by the
//! kernel's parent-death signal an instant after it.

use std::io::Write as _;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions, kill_process, set_child_subreaper, waitpid};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: subreaper COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    if let Err(e) = set_child_subreaper(Some(rustix::process::getpid())) {
        eprintln!("subreaper: cannot become a subreaper: {e}");
        return ExitCode::from(2);
    }
    let child = match Command::new(&program).args(args).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("subreaper: cannot run {}: {e}", program.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    line(&format!("subreaper: started {}", child.id()));
    let pid = Pid::from_child(&child);
    // Waits for COMMAND alone: an orphan that exits first is reaped later.
    let status = loop {
        match waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => break status,
            Ok(None) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                eprintln!("subreaper: cannot wait: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let grace = std::env::var("SUBREAPER_GRACE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    let end = Instant::now() + grace;
    while Instant::now() < end && alive().next().is_some() {
        // Reap what died, so only the living remain listed.
        while let Ok(Some(_)) = waitpid(None, WaitOptions::NOHANG) {}
        std::thread::sleep(Duration::from_millis(10));
    }
    // Anything alive now outlived COMMAND (and the grace).
    for left in alive() {
        let stat = std::fs::read_to_string(format!("/proc/{left}/stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
        {
            continue; // exited already: only our wait was missing
        }
        let comm = std::fs::read_to_string(format!("/proc/{left}/comm")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{left}/cmdline")).unwrap_or_default();
        line(&format!(
            "subreaper: left {left} {} {}",
            comm.trim(),
            String::from_utf8_lossy(&cmdline).replace('\0', " ").trim()
        ));
    }
    // Clean up after the report.
    while !children().is_empty() {
        for left in children() {
            if let Some(pid) = Pid::from_raw(left) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        let _ = waitpid(None, WaitOptions::empty());
    }
    let code = match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(255),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        _ => 255,
    };
    ExitCode::from(code)
}

/// Our children that have not exited (zombies only miss our wait).
fn alive() -> impl Iterator<Item = i32> {
    children().into_iter().filter(|pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Our children, from /proc/self/task/*/children.
fn children() -> Vec<i32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    pids
}

/// Writes one line on stderr with a single write: COMMAND and what it left
/// share the stream and may be writing at the same instant.
fn line(text: &str) {
    let _ = std::io::stderr().write_all(format!("{text}\n").as_bytes());
}
