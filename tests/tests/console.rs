//! Issue 16: a console that behaves like a terminal. Under a real
//! terminal (tmux), the guest's size follows the window; the terminal is
//! restored however chrootvm ends; without a terminal, the shell reads its
//! commands like chroot(1)'s would.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{Pty, Scratch, chrootvm_quiet, run_with_input};

fn root(test: &str) -> (Scratch, PathBuf) {
    tests::busybox_scratch(test)
}

/// tmux on its own socket in the scratch directory, killed when dropped.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-S").arg(&self.socket);
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self
            .cmd()
            .args(args)
            .output()
            .expect("tmux (make check installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "vm"])
    }

    fn wait_for(&self, text: &str) {
        let end = Instant::now() + Duration::from_secs(180);
        while !self.screen().contains(text) {
            assert!(
                Instant::now() < end,
                "no {text:?} on the terminal:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

/// In a 120x40 tmux window the guest's terminal is 40x120; resized to
/// 100x30, it is 30x100 (SIGWINCH reaches the guest); TERM and the locale
/// come through.
#[test]
fn the_guest_terminal_follows_the_window() {
    let (scratch, root) = root("winsize");
    let tmux = Tmux {
        socket: scratch.path().join("tmux.sock"),
    };
    // The session runs a script, so no shell between tmux and chrootvm
    // re-splits the words.
    let chrootvm = chrootvm_quiet();
    let mut words = vec![chrootvm.get_program().to_string_lossy().into_owned()];
    words.extend(
        chrootvm
            .get_args()
            .map(|a| a.to_string_lossy().into_owned()),
    );
    words.push(root.display().to_string());
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let start = scratch.path().join("start.sh");
    tests::script(
        &start,
        &format!(
            "export SHELL=/bin/sh PS1='vm$ ' LANG=C.UTF-8\nexec {}\n",
            quoted.join(" ")
        ),
    );
    let status = tmux
        .cmd()
        .args(["new-session", "-d", "-s", "vm", "-x", "120", "-y", "40"])
        .arg(&start)
        .status()
        .unwrap();
    assert!(status.success(), "tmux should start");
    // capture-pane drops trailing blanks: the prompt shows as "vm$".
    tmux.wait_for("vm$");
    // A trap shows the guest got SIGWINCH, not only a new size.
    tmux.run(&[
        "send-keys",
        "-t",
        "vm",
        "trap 'echo got-winch' WINCH; echo size=$(stty size) term=$TERM lang=$LANG",
        "Enter",
    ]);
    tmux.wait_for("size=40 120 term=");
    tmux.run(&["resize-window", "-t", "vm", "-x", "100", "-y", "30"]);
    tmux.wait_for("got-winch");
    tmux.run(&["send-keys", "-t", "vm", "echo size=$(stty size)", "Enter"]);
    tmux.wait_for("size=30 100");
    let screen = tmux.screen();
    assert!(
        screen.contains("term=tmux-256color lang=C.UTF-8") || screen.contains("term=screen"),
        "TERM and LANG should reach the guest:\n{screen}"
    );
    tmux.run(&["send-keys", "-t", "vm", "exit", "Enter"]);
}

/// Without a terminal and without a command, the shell reads its commands
/// from stdin: only their output and their status, no banner, prompt or
/// job-control complaint.
#[test]
fn a_shell_without_a_terminal_reads_its_commands() {
    let (_scratch, root) = root("piped-shell");
    let mut command = chrootvm_quiet();
    command.env("SHELL", "/bin/sh").arg(&root);
    let vm = run_with_input(command, Some(b"echo hi; echo err >&2; exit 4\n".to_vec()));
    vm.check(
        vm.code() == Some(4) && vm.stdout == "hi\n" && vm.stderr == "err\n",
        "only the commands' output and status",
    );
}

/// chrootvm's shell on a pty, ended by `end` once the prompt shows: the
/// terminal must be back in its first settings afterwards.
fn restored_after(test: &str, options: &[&str], end: impl FnOnce(u32), code: i32) {
    let (_scratch, root) = root(test);
    let pty = Pty::open();
    let before = pty.modes();
    let mut command = chrootvm_quiet();
    command
        .env("SHELL", "/bin/sh")
        .env("PS1", "vm-prompt$ ")
        .args(options)
        .arg(&root);
    pty.attach(&mut command);
    let mut child = command.spawn().unwrap();
    drop(command);
    pty.wait_for("vm-prompt$ ", 1);
    let during = pty.modes();
    end(child.id());
    let status = child.wait().unwrap();
    let after = pty.modes();
    assert_eq!(status.code(), Some(code), "{test}: chrootvm's status");
    assert!(
        !during
            .local_modes
            .contains(rustix::termios::LocalModes::ICANON),
        "{test}: raw during the session"
    );
    assert!(
        after.local_modes == before.local_modes
            && after.input_modes == before.input_modes
            && after.output_modes == before.output_modes,
        "{test}: the terminal's settings should be restored"
    );
}

#[test]
fn the_terminal_is_restored_after_a_signal() {
    restored_after(
        "restore-sigterm",
        &[],
        |pid| {
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap(),
                rustix::process::Signal::TERM,
            )
            .unwrap();
        },
        143,
    );
}

#[test]
fn the_terminal_is_restored_after_the_timeout() {
    // The last --timeout wins over chrootvm_quiet's; the prompt comes in
    // seconds, the timeout after.
    restored_after("restore-timeout", &["--timeout", "30"], |_| {}, 124);
}
