//! Issue 13: chrootvm ends right in every way a run can end: a SIGKILL in
//! its first milliseconds, a reader that goes away, a guest that halts,
//! powers off, reboots or panics under the command, signals ignored by
//! whoever started it, and inputs it must refuse before starting.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::Signal;
use tests::{Scratch, both_virtiofsd, chrootvm_quiet, run, start_reaped, temp_dirs_of};

const SUBREAPER: &str = env!("CARGO_BIN_EXE_subreaper");

fn root(test: &str) -> (Scratch, PathBuf) {
    tests::busybox_scratch(test)
}

/// SIGKILL at 0 to ~40 ms after the start, when helpers are being
/// started: none may survive (they die with chrootvm by the kernel's
/// parent-death signal), and the next run sweeps the socket directory the
/// dead one could not remove.
#[test]
fn sigkill_in_the_first_milliseconds_leaves_nothing() {
    for (flavour, daemon) in both_virtiofsd() {
        let (scratch, root) = root("sigkill-early");
        let share = scratch.dir("share");
        let share2 = scratch.dir("share2");
        for attempt in 0..8u64 {
            let mut command = chrootvm_quiet();
            command
                .env("VIRTIOFSD", &daemon)
                .env("SUBREAPER_GRACE_MS", "2000")
                .arg("--mount-ro")
                .arg("d")
                .arg(&share)
                .arg("--mount-ro")
                .arg("e")
                .arg(&share2)
                .arg(&root)
                .args(["sleep", "20"]);
            let vm = start_reaped(SUBREAPER, &command);
            // The moment is the point here: spread over chrootvm's start.
            std::thread::sleep(Duration::from_millis(attempt * 5));
            vm.signal(Signal::KILL);
            let pid = vm.pid;
            let (vm, left) = vm.finish();
            vm.check(
                vm.code() == Some(128 + 9),
                &format!("{flavour} virtiofsd: SIGKILL should end chrootvm"),
            );
            vm.check(
                left.is_empty(),
                &format!(
                    "{flavour}, kill after {} ms: left running: {left:?}",
                    attempt * 5
                ),
            );
            // A later run (here one refused after its start) sweeps the
            // directory of the dead one.
            let mut later = chrootvm_quiet();
            later
                .arg("--mount")
                .arg("x")
                .arg(scratch.path().join("missing"))
                .arg(&root);
            let later = run(later);
            later.check(later.code() == Some(125), "the later run is refused");
            let dirs = temp_dirs_of(pid);
            later.check(
                dirs.is_empty(),
                &format!("the dead run's directories should be swept: {dirs:?}"),
            );
        }
    }
}

/// The reader of the command's stderr, or of its stdout, goes away: the
/// run ends at once with 141, as SIGPIPE would end a command.
#[test]
fn a_reader_that_goes_away_ends_the_run_on_either_stream() {
    let (_scratch, root) = root("reader-gone");
    for (stream, script) in [("stderr", "yes >&2"), ("stdout", "yes")] {
        let mut command = chrootvm_quiet();
        command
            .arg(&root)
            .args(["sh", "-c", script])
            .stdin(Stdio::null());
        let mut child = if stream == "stderr" {
            command.stdout(Stdio::null()).stderr(Stdio::piped())
        } else {
            command.stdout(Stdio::piped()).stderr(Stdio::null())
        }
        .spawn()
        .unwrap();
        let pipe: Box<dyn std::io::Read> = match child.stderr.take() {
            Some(err) => Box::new(err),
            None => Box::new(child.stdout.take().unwrap()),
        };
        let mut line = String::new();
        BufReader::new(pipe).read_line(&mut line).unwrap();
        assert_eq!(line, "y\n", "{stream}: the command's first line");
        // The reader is gone (dropped above); chrootvm's own --timeout 300
        // bounds a hang, which then shows as 124.
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(141),
            "{stream}: a closed reader should end the run with 141"
        );
    }
}

/// The command halts, powers off or reboots the VM, or the kernel panics
/// under it: the run ends promptly, 123, saying what happened.
#[test]
fn a_guest_that_ends_under_the_command_is_named() {
    let (_scratch, root) = root("guest-ends");
    for (how, said) in [
        (
            "halt -f",
            "the command started, but the guest halted before it ended (did the command halt the VM?)",
        ),
        (
            "poweroff -f",
            "the command started, but the guest powered off before it ended (did the command power off the VM?)",
        ),
        (
            "reboot -f",
            "the command started, but the guest rebooted before it ended (did the command reboot the VM?)",
        ),
        (
            "echo c > /proc/sysrq-trigger",
            "the command started, but the guest panicked (Kernel panic - not syncing: sysrq triggered crash) before it ended (did the command crash the kernel?)",
        ),
    ] {
        let mut command = chrootvm_quiet();
        command
            .arg(&root)
            .args(["sh", "-c", &format!("echo before; {how}; sleep 1000")]);
        let vm = run(command);
        vm.check(
            vm.code() == Some(123) && vm.stdout == "before\n",
            &format!("`{how}` should end the run with 123"),
        );
        vm.check(
            vm.stderr
                .lines()
                .any(|l| l == format!("chrootvm: the VM did not boot: {said}")),
            &format!("`{how}` should be named"),
        );
    }
}

/// Signals ignored when chrootvm starts stay ignored: `nohup` (SIGHUP)
/// and a shell's background job (SIGINT). Here they are sent, then stdin
/// is closed, which ends the command: its status is chrootvm's, not 129
/// or 130.
#[test]
fn signals_ignored_at_start_stay_ignored() {
    let (_scratch, root) = root("ignored-signals");
    for (trap, signal) in [("HUP", Signal::HUP), ("INT", Signal::INT)] {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("trap '' {trap}; exec \"$@\""))
            .arg("sh")
            .arg(chrootvm_quiet().get_program())
            .args(chrootvm_quiet().get_args())
            .arg(&root)
            .args(["sh", "-c", "echo ready; cat >/dev/null; exit 9"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "the command should be running");
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap(),
            signal,
        )
        .unwrap();
        stdin.write_all(b"bye\n").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(9),
            "SIG{trap} ignored at start should not stop chrootvm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The host's own root, shared by either daemon (the C one cannot
/// pivot_root into /).
#[test]
fn the_host_root_is_a_root_for_both_daemons() {
    for (flavour, daemon) in both_virtiofsd() {
        let mut command = chrootvm_quiet();
        command.env("VIRTIOFSD", &daemon).arg("/").args([
            "sh",
            "-c",
            "test -f /etc/debian_version && echo host root",
        ]);
        let vm = run(command);
        vm.check(
            vm.code() == Some(0) && vm.stdout == "host root\n",
            &format!("{flavour} virtiofsd: / should boot"),
        );
    }
}

/// What chrootvm refuses before it starts anything: one line each, 125.
#[test]
fn bad_requests_are_refused_before_anything_starts() {
    let (scratch, root) = root("refused");
    let file = scratch.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let mut many = chrootvm_quiet();
    for i in 0..29 {
        many.arg("--mount-ro").arg(format!("t{i}")).arg(&root);
    }
    many.arg(&root).arg("true");
    let mut share_file = chrootvm_quiet();
    share_file.arg("--mount").arg("data").arg(&file).arg(&root);
    let cases: Vec<(Command, String)> = vec![
        (
            many,
            "chrootvm: 29 shares are too many: the guest mounts at most 28 (see chrootvm --help)"
                .into(),
        ),
        (
            with(&["--memory", "64M"], &root),
            "chrootvm: --memory 64M is too small: the guest needs at least 96M to boot (see chrootvm --help)".into(),
        ),
        (
            with(&["--memory", "0"], &root),
            "chrootvm: --memory 0 is too small: the guest needs at least 96M to boot (see chrootvm --help)".into(),
        ),
        (
            share_file,
            format!(
                "chrootvm: cannot share {} as \"data\": Not a directory",
                file.display()
            ),
        ),
    ];
    for (command, line) in cases {
        let vm = run(command);
        vm.check(
            vm.code() == Some(125) && vm.stderr == format!("{line}\n") && vm.stdout.is_empty(),
            &format!("should be refused with {line:?}"),
        );
    }
}

fn with(options: &[&str], root: &Path) -> Command {
    let mut command = chrootvm_quiet();
    command.args(options).arg(root).arg("true");
    command
}

/// chrootvm's stdout fails (a full disk, here a node like /dev/full made
/// in the test's own directory): 122 and one line saying so.
#[test]
fn an_output_that_fails_is_its_own_status() {
    let (scratch, root) = root("output-fails");
    let full = scratch.path().join("full");
    let made = Command::new("mknod")
        .arg(&full)
        .args(["c", "1", "7"])
        .status()
        .unwrap();
    assert!(made.success());
    let mut command = chrootvm_quiet();
    command
        .arg(&root)
        .args(["echo", "hello"])
        .stdout(fs::OpenOptions::new().write(true).open(&full).unwrap());
    let out = command.stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(122), "{stderr}");
    assert!(
        stderr.contains(
            "chrootvm: cannot write the command's output to stdout: No space left on device; the VM was killed"
        ),
        "{stderr}"
    );
}
