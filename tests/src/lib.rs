//! Shared helpers for the end-to-end tests: the built binaries, the kernel
//! they boot (Debian's cloud kernel, where virtio, fuse and virtiofs are
//! modules), busybox root trees made per test, and a runner that starts
//! chrootvm as a black box and shows everything it printed (the qemu command
//! line included, via `--debug`) when an assertion fails.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workspace's target directory holding the release binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHROOTVM_BIN_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release")
}

/// A built binary (`chrootvm`, `mkinitrd`, `init`); panics with the fix
/// when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make` (or `make check`) first",
        path.display()
    );
    path
}

/// The kernel the tests boot: $CHROOTVM_TEST_KERNEL, else the newest
/// /boot/vmlinuz-*-cloud-amd64 (package linux-image-cloud-amd64).
pub fn kernel() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROOTVM_TEST_KERNEL") {
        return PathBuf::from(path);
    }
    newest_kernel(|release| release.ends_with("-cloud-amd64"))
        .expect("no /boot/vmlinuz-*-cloud-amd64: install linux-image-cloud-amd64 (make check does)")
}

/// Debian's generic kernel, which has 9p as modules:
/// $CHROOTVM_TEST_GENERIC_KERNEL, else the newest /boot/vmlinuz-*-amd64
/// that is not the cloud flavour (package linux-image-amd64).
pub fn generic_kernel() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROOTVM_TEST_GENERIC_KERNEL") {
        return PathBuf::from(path);
    }
    newest_kernel(|release| release.ends_with("-amd64") && !release.ends_with("-cloud-amd64"))
        .expect("no /boot/vmlinuz-*-amd64: install linux-image-amd64 (make check does)")
}

/// The release of a /boot/vmlinuz-RELEASE path (`6.1.0-57-cloud-amd64`):
/// the name of its module tree under /usr/lib/modules.
pub fn release(kernel: &Path) -> String {
    let name = kernel
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or_default();
    name.trim_start_matches("vmlinuz-").to_string()
}

/// The newest /boot/vmlinuz-RELEASE whose release `wanted` accepts, by
/// version (Debian's ABI number moves with point releases: -56, -57, ...).
fn newest_kernel(wanted: impl Fn(&str) -> bool) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir("/boot")
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(OsStr::to_str)
                        .and_then(|n| n.strip_prefix("vmlinuz-"))
                        .is_some_and(&wanted)
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|path| version_key(&release(path)));
    found.pop()
}

/// The numbers in a release, in order: `6.1.0-57-amd64` sorts after
/// `6.1.0-9-amd64`.
fn version_key(release: &str) -> Vec<u64> {
    release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The order in which kmod's own modprobe loads `modules` (each with what
/// it needs, each once) from the tree of kernel `release`: the oracle the
/// resolver is compared with, read at run time, as a point release can
/// change it.
pub fn modprobe_order(release: &str, modules: &[&str]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for module in modules {
        let out = Command::new("modprobe")
            .args(["--show-depends", "--set-version", release, module])
            .output()
            .expect("modprobe (package kmod) should run");
        assert!(
            out.status.success(),
            "modprobe --show-depends {module} failed"
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(path) = line.strip_prefix("insmod ") else {
                continue; // builtin, or an install command
            };
            let file = path.split_whitespace().next().unwrap_or_default();
            let name = Path::new(file)
                .file_name()
                .and_then(OsStr::to_str)
                .and_then(|n| n.split(".ko").next())
                .unwrap_or_default()
                .replace('-', "_");
            if !order.contains(&name) {
                order.push(name);
            }
        }
    }
    order
}

/// What mkinitrd packs by default for a virtiofs root, in load order, for
/// the test kernel: [`modprobe_order`] of virtio_pci and virtiofs.
pub fn virtiofs_modules() -> Vec<String> {
    modprobe_order(&release(&kernel()), &["virtio_pci", "virtiofs"])
}

/// The load order kmod.rs's unit test expects from its own small
/// modules.dep (modelled on Debian's cloud kernel): a fact about that
/// fixture, not about any installed kernel (see [`virtiofs_modules`]).
pub const VIRTIOFS_MODULES: [&str; 7] = [
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "fuse",
    "virtiofs",
];

/// The module tree of [`kernel`].
pub fn moddir() -> PathBuf {
    Path::new("/lib/modules").join(release(&kernel()))
}

/// A directory removed when dropped, named after its test: the one
/// temporary-directory helper of every test in the workspace (mkinitrd's
/// unit and CLI tests use it as `TempDir`).
pub struct Scratch {
    path: PathBuf,
}

static SCRATCH_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Scratch {
    /// A fresh directory under the system temp directory.
    pub fn new(test: &str) -> Scratch {
        let n = SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("chrootvm-test-{test}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory, created.
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.path.join(name);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes `contents` to `rel` (creating parents) and returns its path.
    pub fn write(&self, rel: &str, contents: &[u8]) -> PathBuf {
        let path = self.path.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        path
    }

    /// Sets the permission bits of `rel`.
    pub fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.path.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Makes a busybox root at `root`: the usual top-level directories, the
/// static busybox (package busybox-static) and a link per applet. The
/// applet list is asked of busybox once per test process.
pub fn busybox_root(root: &Path) {
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run", "tmp", "etc", "root",
        "var",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "no /bin/busybox: install busybox-static (make check does)"
    );
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in busybox_applets() {
        let _ = symlink("busybox", root.join("bin").join(applet));
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\ntty:x:5:\n").unwrap();
}

/// `busybox --list`, without busybox itself, run once.
fn busybox_applets() -> &'static [String] {
    static APPLETS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    APPLETS.get_or_init(|| {
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter(|a| *a != "busybox")
            .map(str::to_string)
            .collect()
    })
}

/// The long options a `--help` text documents: the `--words` on its
/// option lines (those that start with a dash), `--gdb[=PORT]` as `--gdb`.
pub fn help_options(help: &str) -> Vec<&str> {
    help.lines()
        .filter(|line| line.trim_start().starts_with('-'))
        .flat_map(|line| line.split(|c: char| c.is_whitespace() || c == ',' || c == '['))
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .collect()
}

/// A busybox root in a fresh scratch directory named after `test`.
pub fn busybox_scratch(test: &str) -> (Scratch, PathBuf) {
    let scratch = Scratch::new(test);
    let root = scratch.dir("root");
    busybox_root(&root);
    (scratch, root)
}

/// A pseudo-terminal for interactive runs: the test types on its master
/// side, a thread collects what the other side shows, and the terminal
/// side is chrootvm's stdin, stdout and stderr.
pub struct Pty {
    terminal: fs::File,
    keyboard: fs::File,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    /// A new pty pair, read from at once.
    pub fn open() -> Pty {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let terminal = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(Path::new(name.to_str().unwrap()))
            .unwrap();
        let keyboard = fs::File::from(master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        // Ends at EIO, once every terminal-side fd is closed; detached, so
        // a test never waits on it.
        drain(keyboard.try_clone().unwrap(), Arc::clone(&seen));
        Pty {
            terminal,
            keyboard,
            seen,
        }
    }

    /// Makes the terminal `command`'s stdin, stdout and stderr.
    pub fn attach(&self, command: &mut Command) {
        command
            .stdin(self.terminal.try_clone().unwrap())
            .stdout(self.terminal.try_clone().unwrap())
            .stderr(self.terminal.try_clone().unwrap());
    }

    /// The terminal's settings now.
    pub fn modes(&self) -> rustix::termios::Termios {
        rustix::termios::tcgetattr(&self.terminal).unwrap()
    }

    /// Types `keys`.
    pub fn type_keys(&self, keys: &[u8]) {
        (&self.keyboard).write_all(keys).unwrap();
    }

    /// Everything the terminal showed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal has shown `text` `times` times in all.
    pub fn wait_for(&self, text: &str, times: usize) {
        let end = Instant::now() + Duration::from_secs(180);
        while self.text().matches(text).count() < times {
            assert!(
                Instant::now() < end,
                "no {text:?} (x{times}) on the terminal; it shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes an executable `/bin/sh` script.
pub fn script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The ends of one chrootvm run.
pub struct Run {
    /// The command, for messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
    /// stdout byte for byte.
    pub raw_stdout: Vec<u8>,
    /// stderr byte for byte.
    pub raw_stderr: Vec<u8>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// Exit code (signal deaths give None).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Everything printed, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "command: {}\nstatus: {}, {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
            self.command,
            self.status,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }

    /// Panics with the transcript unless `ok`.
    #[track_caller]
    pub fn check(&self, ok: bool, what: &str) {
        assert!(ok, "{what}\n{}", self.transcript());
    }

    /// stdout and stderr together.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// chrootvm's usual test arguments: TCG (KVM hangs on these machines and
/// tests must not depend on it), the test kernel, `--debug` so a failure
/// shows the qemu command line, and a generous timeout as a safety net.
pub fn chrootvm_command() -> Command {
    let mut command = chrootvm_quiet();
    command.arg("--debug");
    command
}

/// [`chrootvm_command`] without `--debug`: output as a user sees it.
pub fn chrootvm_quiet() -> Command {
    let mut command = Command::new(bin("chrootvm"));
    command
        .arg("--accel")
        .arg("tcg")
        .arg("--kernel")
        .arg(kernel())
        .arg("--timeout")
        .arg("300");
    command
}

/// Runs a command to its end with nothing on stdin, collecting its output.
pub fn run(command: Command) -> Run {
    run_with_input(command, None)
}

/// Runs a command to its end, writing `input` (if any) to its stdin from a
/// thread, then closing it; collects its output.
pub fn run_with_input(mut command: Command, input: Option<Vec<u8>>) -> Run {
    let text = describe(&command);
    let start = Instant::now();
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {text}: {e}"));
    let feeder = child.stdin.take().zip(input).map(|(mut stdin, input)| {
        std::thread::spawn(move || {
            // A VM that ends without reading everything closes the pipe.
            let _ = stdin.write_all(&input);
        })
    });
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot run {text}: {e}"));
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    Run {
        command: text,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        raw_stdout: output.stdout,
        raw_stderr: output.stderr,
        elapsed: start.elapsed(),
    }
}

fn describe(command: &Command) -> String {
    let mut words: Vec<OsString> = vec![command.get_program().to_os_string()];
    words.extend(command.get_args().map(OsStr::to_os_string));
    words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// chrootvm's temp directories of process `pid` still on disk.
pub fn temp_dirs_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("chrootvm-vm-{pid}-");
    let mut bases = vec![std::env::temp_dir()];
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        bases.push(PathBuf::from(runtime));
    }
    bases
        .iter()
        .filter_map(|base| fs::read_dir(base).ok())
        .flat_map(|dir| dir.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect()
}

/// How a run under the subreaper is stopped, and what it must give.
pub struct Stop {
    /// The signal.
    pub signal: rustix::process::Signal,
    /// chrootvm's status then (128+N for a signal it did not catch).
    pub code: i32,
}

/// Runs `command` (a chrootvm) under the subreaper until `ready` shows on
/// `stderr` (or stdout when `on_stdout`), sends the signal and checks the
/// status, that nothing it started is left running and that its socket
/// directory is gone. The wait for `ready` is asserted: a test whose VM
/// never got there fails instead of passing unseen.
pub fn stop_when_ready(
    subreaper: &str,
    command: &Command,
    ready: &str,
    on_stdout: bool,
    stop: &Stop,
) {
    // After SIGKILL chrootvm cannot reap: its helpers die by the kernel's
    // parent-death signal an instant later, which the subreaper waits for.
    let grace = if stop.signal == rustix::process::Signal::KILL {
        "2000"
    } else {
        "0"
    };
    let mut vm = start_reaped_with(subreaper, command, &[("SUBREAPER_GRACE_MS", grace)]);
    if on_stdout {
        vm.wait_for_stdout(ready, Duration::from_secs(180));
    } else {
        vm.wait_for_stderr(ready, Duration::from_secs(180));
    }
    vm.signal(stop.signal);
    let pid = vm.pid;
    let (vm, left) = vm.finish();
    vm.check(
        vm.code() == Some(stop.code),
        &format!("chrootvm should end with {}", stop.code),
    );
    vm.check(left.is_empty(), &format!("left running: {left:?}"));
    // Even after SIGKILL: chrootvm removes its directory once qemu has
    // connected to every socket, which happened before `ready`.
    let dirs = temp_dirs_of(pid);
    vm.check(dirs.is_empty(), &format!("temp directories left: {dirs:?}"));
}

/// Whether a test can check what it is for on this host: `present` says
/// if what it needs is here. Under `make check` (CHROOTVM_REQUIRE_TOOLS)
/// and in CI (CI=true), which install everything, a missing piece is a
/// broken install: the test fails, naming `what`. A plain `cargo test`
/// on a bare machine skips, and says so on the terminal itself, where the
/// summary is read (the harness captures only the print macros).
pub fn require(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    let strict = std::env::var_os("CHROOTVM_REQUIRE_TOOLS")
        .is_some_and(|v| !v.is_empty() && v != "0")
        || std::env::var_os("CI").is_some_and(|v| v == "true");
    assert!(
        !strict,
        "{what} is missing: scripts/install-deps installs it (make check runs it)"
    );
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("SKIPPED: {what} is missing (run scripts/install-deps)\n").as_bytes());
    false
}

/// The Rust virtiofsd (built by scripts/install-deps into
/// ~/.cache/chrootvm), or $CHROOTVM_TEST_RUST_VIRTIOFSD.
pub fn rust_virtiofsd() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROOTVM_TEST_RUST_VIRTIOFSD") {
        return PathBuf::from(path);
    }
    let cache = Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache/chrootvm");
    let mut found: Vec<PathBuf> = fs::read_dir(&cache)
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("virtiofsd-"))
                .map(|e| e.path().join("bin/virtiofsd"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().expect(
        "no Rust virtiofsd in ~/.cache/chrootvm: run scripts/install-deps (make check does)",
    )
}

/// The two virtiofsd flavours as `VIRTIOFSD` values: Debian's legacy C
/// daemon and the Rust one.
pub fn both_virtiofsd() -> [(&'static str, PathBuf); 2] {
    [
        ("C", PathBuf::from("/usr/lib/qemu/virtiofsd")),
        ("Rust", rust_virtiofsd()),
    ]
}

/// A command run under the `subreaper` test program (tests/src/bin), so
/// that whatever it leaves running when it exits is reported at that very
/// instant.
pub struct Reaped {
    child: Child,
    command: String,
    start: Instant,
    /// The command's own pid (not the subreaper's).
    pub pid: u32,
    stdout: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// Starts `command` under `subreaper` (pass `env!("CARGO_BIN_EXE_subreaper")`).
pub fn start_reaped(subreaper: &str, command: &Command) -> Reaped {
    start_reaped_with(subreaper, command, &[])
}

/// [`start_reaped`] with more environment for the subreaper (and command).
pub fn start_reaped_with(subreaper: &str, command: &Command, env: &[(&str, &str)]) -> Reaped {
    let text = describe(command);
    let mut wrapped = Command::new(subreaper);
    wrapped.arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped.envs(env.iter().copied());
    let mut child = wrapped
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {text}: {e}"));
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        drain(child.stdout.take().unwrap(), Arc::clone(&stdout)),
        drain(child.stderr.take().unwrap(), Arc::clone(&stderr)),
    ];
    let start = Instant::now();
    let pid = loop {
        let text = String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
        // The line is one write, but the command may be mid-line on the
        // same stream, so it need not start a line.
        if let Some((_, rest)) = text.split_once("subreaper: started ")
            && let Some((pid, _)) = rest.split_once('\n')
        {
            break pid.parse().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "subreaper did not start {text}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    Reaped {
        child,
        command: text,
        start,
        pid,
        stdout,
        readers,
        stderr,
    }
}

/// Copies a pipe into a buffer on a thread, so the writer never blocks.
fn drain(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl Reaped {
    /// Waits until stdout holds `text` (an event from the guest); panics
    /// with everything printed so far after `limit`, or if the command
    /// ended first.
    pub fn wait_for_stdout(&mut self, text: &str, limit: Duration) {
        let stdout = Arc::clone(&self.stdout);
        self.wait_for(&stdout, text, limit);
    }

    /// As [`Reaped::wait_for_stdout`], on stderr (with `--debug`, the
    /// kernel's messages: "Linux version" says the VM is booting).
    pub fn wait_for_stderr(&mut self, text: &str, limit: Duration) {
        let stderr = Arc::clone(&self.stderr);
        self.wait_for(&stderr, text, limit);
    }

    fn wait_for(&mut self, stream: &Mutex<Vec<u8>>, text: &str, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            if String::from_utf8_lossy(&stream.lock().unwrap()).contains(text) {
                return;
            }
            let ended = self.child.try_wait().unwrap().is_some();
            if ended || Instant::now() > end {
                panic!(
                    "no {text:?} came ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    if ended { "it ended" } else { "timed out" },
                    String::from_utf8_lossy(&self.stdout.lock().unwrap()),
                    String::from_utf8_lossy(&self.stderr.lock().unwrap())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What came on stdout so far.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Sends `signal` to the command.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid).unwrap()).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Waits for the end: the run, and what was left running when the
    /// command exited (one `PID COMM CMDLINE` each).
    pub fn finish(mut self) -> (Run, Vec<String>) {
        let status = self.child.wait().unwrap();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let stdout = std::mem::take(&mut *self.stdout.lock().unwrap());
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap());
        let text = String::from_utf8_lossy(&stderr).into_owned();
        let left = text
            .lines()
            .filter_map(|l| l.strip_prefix("subreaper: left "))
            .map(str::to_string)
            .collect();
        let run = Run {
            command: self.command,
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: text,
            raw_stdout: stdout,
            raw_stderr: stderr,
            elapsed: self.start.elapsed(),
        };
        (run, left)
    }
}

/// Damaged copies of a valid input, for "never panics" tests of readers:
/// a fixed xorshift sequence (the same cases every run), a few bytes
/// overwritten, then the copy cut at a random length.
pub struct Mutator {
    state: u64,
}

impl Default for Mutator {
    fn default() -> Mutator {
        Mutator {
            state: 0x2545_f491_4f6c_dd1d,
        }
    }
}

impl Mutator {
    /// The next number of the sequence.
    pub fn number(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// A number from 1 to `max`.
    pub fn up_to(&mut self, max: u64) -> usize {
        usize::try_from(self.number() % max + 1).unwrap()
    }

    /// `original` with 1 to `max_changes` bytes overwritten, then cut.
    pub fn damage(&mut self, original: &[u8], max_changes: u64) -> Vec<u8> {
        let mut bytes = original.to_vec();
        for _ in 0..self.up_to(max_changes) {
            let at = usize::try_from(self.number() % bytes.len() as u64).unwrap();
            bytes[at] = self.number().to_le_bytes()[0];
        }
        let cut = usize::try_from(self.number() % (bytes.len() as u64 + 1)).unwrap();
        bytes.truncate(cut);
        bytes
    }
}

#[cfg(test)]
mod unit {
    use super::version_key;

    #[test]
    fn releases_sort_by_their_numbers() {
        let mut releases = ["6.1.0-57-amd64", "6.10.0-1-amd64", "6.1.0-9-amd64"];
        releases.sort_by_key(|r| version_key(r));
        assert_eq!(
            releases,
            ["6.1.0-9-amd64", "6.1.0-57-amd64", "6.10.0-1-amd64"]
        );
    }
}
