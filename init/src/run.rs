//! Step 9 in run mode (SPEC §3.4): init stays PID 1 and runs the command
//! chrootvm packed in /init.run as its child, on the console (as its
//! controlling terminal) or on the virtio ports; it reaps every child,
//! relays and counts the command's output, then reports the status, waits
//! for the host to have all output, syncs and powers off.

use core::ffi::CStr;
use core::mem::MaybeUninit;
use init::buf::{CPath, Show};
use init::errno::Text;
use init::runspec::{self, RunSpec};
use init::status::{self, Status};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, Signal, WaitOptions, WaitStatus, wait};

use crate::boot::{Boot, fatal, power_off, write_all};
use crate::fsutil::{find_virtio_port, read_file};
use crate::log::{debug, error, warning};
use crate::rt;

/// PATH when the spec's environment has none.
const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long the stdio ports may take to appear (virtio_console adds them
/// from a work queue).
const PORT_WAIT_MS: u32 = 2000;

/// How long to wait for processes killed at the command's end to go.
const STRAGGLER_WAIT_MS: i64 = 2000;

/// Reads /init.run when chrootvm put one in the image, before the
/// initramfs is freed.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn read_spec<'b>(boot: &Boot<'_>, buf: &'b mut [u8]) -> Option<RunSpec<'b>> {
    let capacity = buf.len();
    let data = match read_file(runspec::PATH.to_bytes(), buf) {
        Ok(data) if data.len() == capacity => fatal!(
            boot,
            "cannot use {}: larger than {} bytes",
            Show(runspec::PATH.to_bytes()),
            capacity
        ),
        Ok(data) => data,
        Err(Errno::NOENT) => return None,
        Err(errno) => fatal!(
            boot,
            "cannot read {}: {}",
            Show(runspec::PATH.to_bytes()),
            Text(errno)
        ),
    };
    match RunSpec::parse(data) {
        Ok(spec) => Some(spec),
        Err(problem) => fatal!(
            boot,
            "cannot use {}: {}",
            Show(runspec::PATH.to_bytes()),
            problem
        ),
    }
}

/// One of the command's output streams: the pipe init reads and the port
/// it writes to.
struct Relay {
    from: Option<OwnedFd>,
    to: OwnedFd,
    bytes: u64,
}

/// Where the command's stdin, stdout and stderr go.
enum Streams {
    /// The console's tty, to become its controlling terminal.
    Console(OwnedFd),
    /// The virtio ports; the command writes to pipes init relays.
    Ports {
        stdin: OwnedFd,
        stdout: (OwnedFd, OwnedFd),
        stderr: (OwnedFd, OwnedFd),
        stdout_port: OwnedFd,
        stderr_port: OwnedFd,
    },
}

/// The command to run, with what it needs from /dev and /proc opened
/// while the initramfs's are at hand: the root it runs in may have no
/// /dev, /proc or /sys at all (a tree chroot(1) takes).
pub struct Command<'a> {
    spec: RunSpec<'a>,
    streams: Streams,
    /// /proc/sys/kernel/printk, to quiet the console before power-off.
    printk: Option<OwnedFd>,
}

/// Opens the command's stdio (the console's tty, or the virtio ports and
/// the pipes) and what the end needs. All close-on-exec: the child dup2s
/// what it needs onto 0-2.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn prepare<'a>(boot: &Boot<'_>, spec: RunSpec<'a>) -> Command<'a> {
    let streams = if spec.tty {
        match crate::console::open_terminal() {
            Ok(tty) => Streams::Console(tty),
            Err(errno) => fatal!(boot, "cannot open the console's tty: {}", Text(errno)),
        }
    } else {
        open_ports(boot)
    };
    let printk = rustix::fs::open(
        c"/proc/sys/kernel/printk",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    );
    Command {
        spec,
        streams,
        printk: printk.ok(),
    }
}

/// Runs the command, reports its status and powers off.
pub fn run_command(boot: &Boot<'_>, command: Command<'_>) -> ! {
    let Command {
        spec,
        streams,
        printk,
    } = command;
    let spec = &spec;
    // SIGCHLD becomes an fd before the fork, so no exit can be missed.
    let sigchld = rt::block_sigchld().and_then(|()| rt::sigchld_fd());
    let sigchld = match sigchld {
        Ok(fd) => fd,
        Err(errno) => fatal!(boot, "cannot watch for child exits: {}", Text(errno)),
    };
    debug!(boot.log, "running {}", Show(spec.command().to_bytes()));
    // The host's sign that the guest is up: its boot watchdog stops here,
    // and what it holds back for the command (stdin, the console) flows.
    boot.report(Status::Run);
    let pid = match rt::fork() {
        Ok(None) => start_command(boot, spec, &streams),
        Ok(Some(pid)) => pid,
        Err(errno) => fatal!(
            boot,
            "cannot start {}: {}",
            Show(spec.command().to_bytes()),
            Text(errno)
        ),
    };
    let (mut relays, tty) = match streams {
        Streams::Console(tty) => ([None, None], Some(tty)),
        // The write ends close here: only the command holds them now.
        Streams::Ports {
            stdout,
            stderr,
            stdout_port,
            stderr_port,
            ..
        } => (
            [
                Some(Relay {
                    from: Some(stdout.0),
                    to: stdout_port,
                    bytes: 0,
                }),
                Some(Relay {
                    from: Some(stderr.0),
                    to: stderr_port,
                    bytes: 0,
                }),
            ],
            None,
        ),
    };
    // On the console, the host sends the terminal's new sizes.
    let resize = tty.as_ref().zip(boot.status());
    let code = supervise(boot, pid, &sigchld, &mut relays, resize);
    let [stdout, stderr] = relays.map(|relay| relay.map_or(0, |r| r.bytes));
    debug!(
        boot.log,
        "{} exited with status {code} after {stdout} bytes of stdout and {stderr} of stderr",
        Show(spec.command().to_bytes())
    );
    // Writes to a --rw root reach the host before the VM is gone.
    rustix::fs::sync();
    boot.report(Status::Exit {
        code,
        stdout,
        stderr,
    });
    boot.wait_for_ack();
    // Keeps the kernel's power-off message off a console the user is
    // reading: console log level 0 prints nothing.
    if let Some(printk) = printk {
        let _ = rustix::io::write(&printk, b"0");
    }
    power_off()
}

/// Opens the stdio ports and the pipes for stdout and stderr.
fn open_ports(boot: &Boot<'_>) -> Streams {
    let open = |name: &[u8], flags: OFlags| -> OwnedFd {
        let Some(path) = find_virtio_port(name, PORT_WAIT_MS) else {
            fatal!(
                boot,
                "cannot find the virtio port {} (is virtio_console loaded?)",
                Show(name)
            );
        };
        match rustix::fs::open(
            path.as_c_str(),
            flags | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(errno) => fatal!(
                boot,
                "cannot open {}: {}",
                Show(path.as_bytes()),
                Text(errno)
            ),
        }
    };
    let pipe = || match pipe_with(PipeFlags::CLOEXEC) {
        Ok(pipe) => pipe,
        Err(errno) => fatal!(boot, "cannot create a pipe: {}", Text(errno)),
    };
    Streams::Ports {
        stdin: open(status::STDIN_PORT, OFlags::RDONLY),
        stdout_port: open(status::STDOUT_PORT, OFlags::WRONLY),
        stderr_port: open(status::STDERR_PORT, OFlags::WRONLY),
        stdout: pipe(),
        stderr: pipe(),
    }
}

/// In the child: session, stdio, working directory, signals, exec.
/// Messages go to the command's stderr even under `quiet`, as they are
/// the command's; failures exit 126 or 127.
fn start_command(boot: &Boot<'_>, spec: &RunSpec<'_>, streams: &Streams) -> ! {
    // A new session, so the console can become its controlling terminal
    // and Ctrl-C and job control reach the command, not init.
    let _ = rustix::process::setsid();
    let stdio = match streams {
        Streams::Console(tty) => crate::console::take_terminal(tty, spec.winsize),
        Streams::Ports {
            stdin,
            stdout,
            stderr,
            ..
        } => rustix::stdio::dup2_stdin(stdin)
            .and_then(|()| rustix::stdio::dup2_stdout(&stdout.1))
            .and_then(|()| rustix::stdio::dup2_stderr(&stderr.1)),
    };
    if let Err(errno) = stdio {
        error!(
            boot.log,
            "cannot set up the command's stdio: {}",
            Text(errno)
        );
        rt::exit_group(126);
    }
    if let Err(errno) = rustix::process::chdir(spec.cwd) {
        error!(
            boot.log,
            "cannot change to {}: {}",
            Show(spec.cwd.to_bytes()),
            Text(errno)
        );
        rt::exit_group(126);
    }
    let _ = rt::unblock_signals();
    exec_command(boot, spec)
}

/// execvp: the command as a path, or looked up in the spec's PATH. Exits
/// 127 when it is not found, 126 when it cannot be executed.
fn exec_command(boot: &Boot<'_>, spec: &RunSpec<'_>) -> ! {
    let command = spec.command().to_bytes();
    let slots = rt::exec_slots();
    let mut exec = |path: &CStr| rt::execve(path, spec.args(), spec.env(), slots);
    if command.contains(&b'/') {
        exec_failed(boot, command, exec(spec.command()));
    }
    let path = spec.var(b"PATH").unwrap_or(DEFAULT_PATH);
    let mut denied = false;
    for dir in path.split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let Ok(candidate) = CPath::<4096>::join(&[dir, b"/", command]) else {
            continue;
        };
        match exec(candidate.as_c_str()) {
            Errno::NOENT | Errno::NOTDIR => {}
            // Keep looking, as execvp does; report it if nothing else runs.
            Errno::ACCESS => denied = true,
            // The lists are too long wherever the command is: name it as
            // given, not a PATH entry (a host's, perhaps) it was tried in.
            Errno::TOOBIG => exec_failed(boot, command, Errno::TOOBIG),
            errno => exec_failed(boot, candidate.as_bytes(), errno),
        }
    }
    if denied {
        exec_failed(boot, command, Errno::ACCESS);
    }
    error!(
        boot.log,
        "cannot execute {}: command not found (PATH={})",
        Show(command),
        Show(path)
    );
    rt::exit_group(127)
}

/// Says why `name` cannot be executed and exits as the shell does: 127
/// when it is not there, 126 otherwise. E2BIG says the limit it met.
fn exec_failed(boot: &Boot<'_>, name: &[u8], errno: Errno) -> ! {
    if errno == Errno::TOOBIG {
        let stack = rustix::process::getrlimit(rustix::process::Resource::Stack).current;
        error!(
            boot.log,
            "cannot execute {}: {} (execve takes at most {} KiB of arguments and environment, a quarter of the stack size limit, and {} KiB per string)",
            Show(name),
            Text(errno),
            runspec::exec_arg_limit(stack) >> 10,
            runspec::MAX_ARG_STRLEN >> 10
        );
    } else {
        error!(boot.log, "cannot execute {}: {}", Show(name), Text(errno));
    }
    rt::exit_group(if errno == Errno::NOENT { 127 } else { 126 })
}

/// Relays output and reaps children until the command has exited, its
/// leftovers are gone and its output is relayed. Returns its status.
fn supervise(
    boot: &Boot<'_>,
    pid: Pid,
    sigchld: &OwnedFd,
    relays: &mut [Option<Relay>; 2],
    mut resize: Option<(&OwnedFd, &OwnedFd)>,
) -> u8 {
    let mut code = None;
    let mut children_left = true;
    let buf = rt::relay_buffer();
    loop {
        let relaying = relays.iter().flatten().any(|r| r.from.is_some());
        if code.is_some() && !relaying && !children_left {
            return code.unwrap_or(0);
        }
        // One slot per relay; a closed relay's slot watches nothing.
        let mut fds = [
            PollFd::new(sigchld, PollFlags::IN),
            slot(&relays[0], sigchld),
            slot(&relays[1], sigchld),
            match resize {
                Some((_, port)) => PollFd::new(port, PollFlags::IN),
                None => PollFd::new(sigchld, PollFlags::empty()),
            },
        ];
        // Once the command is gone, stragglers get a bounded time to die.
        let timeout = code.map(|_| rustix::event::Timespec {
            tv_sec: STRAGGLER_WAIT_MS / 1000,
            tv_nsec: 0,
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) if code.is_some() => {
                warning!(
                    boot.log,
                    "processes left by the command did not exit: not waiting for them"
                );
                return code.unwrap_or(0);
            }
            Ok(_) | Err(Errno::INTR) => {}
            Err(errno) => fatal!(boot, "cannot wait for the command: {}", Text(errno)),
        }
        let ready = [fds[1].revents(), fds[2].revents()].map(|r| !r.is_empty());
        if let Some((tty, port)) = resize.filter(|_| !fds[3].revents().is_empty())
            && !apply_size(tty, port)
        {
            resize = None;
        }
        if !fds[0].revents().is_empty() {
            drain(sigchld);
            children_left = reap(boot, pid, &mut code);
        }
        for (relay, ready) in relays.iter_mut().zip(ready) {
            if let (Some(relay), true) = (relay, ready) {
                pump(boot, relay, buf);
            }
        }
    }
}

/// Reads the host's `stty ROWS,COLS` lines from the status port and sets
/// the terminal's size; the kernel signals its foreground processes
/// (SIGWINCH). False when the port has closed.
fn apply_size(tty: &OwnedFd, port: &OwnedFd) -> bool {
    let mut buf = [0u8; 64];
    let Ok(n @ 1..) = rustix::io::read(port, &mut buf) else {
        return false;
    };
    for line in buf[..n].split(|&b| b == b'\n') {
        if let Some(Ok((rows, cols))) = line.strip_prefix(b"stty ").map(init::rapido::stty) {
            let size = rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let _ = rustix::termios::tcsetwinsize(tty, size);
        }
    }
    true
}

/// The poll slot of a relay: its pipe, or (closed) an fd watched for
/// nothing.
fn slot<'a>(relay: &'a Option<Relay>, placeholder: &'a OwnedFd) -> PollFd<'a> {
    match relay.as_ref().and_then(|r| r.from.as_ref()) {
        Some(fd) => PollFd::new(fd, PollFlags::IN),
        None => PollFd::new(placeholder, PollFlags::empty()),
    }
}

/// Reads the signalfd's queued records; their content is not needed, as
/// every exit is collected by waitpid.
fn drain(sigchld: &OwnedFd) {
    let mut records = [MaybeUninit::<u8>::uninit(); 128 * 8];
    while rustix::io::read(sigchld, &mut records).is_ok_and(|(read, _)| !read.is_empty()) {}
}

/// Reaps every exited child (orphans included). When the command itself
/// exits, whatever it left running is killed: the VM is about to end, and
/// its pipes must close. Returns whether any child is left.
fn reap(boot: &Boot<'_>, pid: Pid, code: &mut Option<u8>) -> bool {
    loop {
        // wait4(-1): rustix's `waitpid(None)` is wait4(0), this process
        // group only, and the command runs in a session of its own.
        match wait(WaitOptions::NOHANG) {
            Ok(Some((child, status))) if child == pid => {
                *code = Some(exit_code(status));
                // ESRCH: nothing else is running.
                let _ = rt::kill_all(Signal::KILL);
                debug!(boot.log, "the command exited; stopped what it left running");
            }
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(Errno::INTR) => {}
            // ECHILD: no children at all.
            Err(_) => return false,
        }
    }
}

/// The shell's status for a wait status: the exit code, or 128+N for
/// signal N.
fn exit_code(status: WaitStatus) -> u8 {
    if let Some(code) = status.exit_status() {
        u8::try_from(code & 0xff).unwrap_or(1)
    } else if let Some(signal) = status.terminating_signal() {
        u8::try_from(128 + (signal & 0x7f)).unwrap_or(255)
    } else {
        1
    }
}

/// Moves what the pipe has to the port, counting it; closes the pipe at
/// EOF.
fn pump(boot: &Boot<'_>, relay: &mut Relay, buf: &mut [u8]) {
    let Some(from) = relay.from.as_ref() else {
        return;
    };
    match rustix::io::read(from, &mut *buf) {
        Ok(0) => relay.from = None,
        Ok(n) => {
            if let Err(errno) = write_all(&relay.to, &buf[..n]) {
                warning!(
                    boot.log,
                    "cannot pass the command's output to the host: {}",
                    Text(errno)
                );
                relay.from = None;
            } else {
                relay.bytes += u64::try_from(n).unwrap_or(0);
            }
        }
        Err(Errno::INTR | Errno::AGAIN) => {}
        Err(_) => relay.from = None,
    }
}
