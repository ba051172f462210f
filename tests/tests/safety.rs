//! Issue 12: safe defaults on any host and tree. chrootvm never hangs (a
//! KVM that cannot boot Linux falls back to TCG, a silent guest ends with
//! 123), nothing it started outlives it, the user is told what is actually
//! wrong, and any path chroot(1) takes works. Each test boots Debian's
//! cloud kernel over a busybox root made here.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::Signal;
use tests::{
    Reaped, Scratch, bin, both_virtiofsd, busybox_root, chrootvm_quiet, kernel, run,
    rust_virtiofsd, script, start_reaped,
};

const SUBREAPER: &str = env!("CARGO_BIN_EXE_subreaper");

/// How long a guest may take to print "ready" on a loaded 2-core host.
const READY: Duration = Duration::from_secs(180);

/// A busybox root and a directory to share, in a fresh scratch directory.
fn root_and_share(test: &str) -> (Scratch, PathBuf, PathBuf) {
    let scratch = Scratch::new(test);
    let root = scratch.dir("root");
    busybox_root(&root);
    let share = scratch.dir("share");
    fs::write(share.join("f"), "shared\n").unwrap();
    (scratch, root, share)
}

/// chrootvm over `root` with one read-only share (two virtiofsd), the
/// given daemon, `options` and `command`.
fn two_daemons(
    daemon: &Path,
    root: &Path,
    share: &Path,
    options: &[&str],
    command: &[&str],
) -> Command {
    let mut chrootvm = chrootvm_quiet();
    chrootvm
        .env("VIRTIOFSD", daemon)
        .args(options)
        .arg("--mount-ro")
        .arg("s")
        .arg(share)
        .arg(root)
        .args(command);
    chrootvm
}

/// Runs `command` under the subreaper until it prints "ready", then sends
/// `signal`; checks the status and that nothing it started is left.
fn stop_when_ready(name: &str, signal: Signal, code: i32) {
    for (flavour, daemon) in both_virtiofsd() {
        let (_scratch, root, share) = root_and_share(name);
        let command = two_daemons(
            &daemon,
            &root,
            &share,
            &[],
            &["sh", "-c", "cat /run/mnt/s/f; echo ready; exec sleep 1000"],
        );
        let mut vm: Reaped = start_reaped(SUBREAPER, &command);
        vm.wait_for_stdout("ready", READY);
        vm.signal(signal);
        let (vm, left) = vm.finish();
        vm.check(
            vm.code() == Some(code),
            &format!("{flavour} virtiofsd: chrootvm should end with {code}"),
        );
        vm.check(
            left.is_empty(),
            &format!("{flavour} virtiofsd: left running when chrootvm returned: {left:?}"),
        );
    }
}

#[test]
fn nothing_outlives_chrootvm_after_sigterm() {
    stop_when_ready("sigterm-reaped", Signal::TERM, 143);
}

#[test]
fn nothing_outlives_chrootvm_after_sigint() {
    stop_when_ready("sigint-reaped", Signal::INT, 130);
}

#[test]
fn nothing_outlives_chrootvm_after_a_normal_exit() {
    for (flavour, daemon) in both_virtiofsd() {
        let (_scratch, root, share) = root_and_share("exit-reaped");
        let command = two_daemons(
            &daemon,
            &root,
            &share,
            &[],
            &["sh", "-c", "cat /run/mnt/s/f; exit 4"],
        );
        let (vm, left) = start_reaped(SUBREAPER, &command).finish();
        vm.check(
            vm.code() == Some(4) && vm.stdout == "shared\n",
            &format!("{flavour} virtiofsd: the command should run and end with 4"),
        );
        vm.check(
            left.is_empty(),
            &format!("{flavour} virtiofsd: left running when chrootvm returned: {left:?}"),
        );
    }
}

#[test]
fn nothing_outlives_chrootvm_after_its_timeout() {
    for (flavour, daemon) in both_virtiofsd() {
        let (_scratch, root, share) = root_and_share("timeout-reaped");
        // The last --timeout wins over chrootvm_quiet's safety net.
        let command = two_daemons(
            &daemon,
            &root,
            &share,
            &["--timeout", "20"],
            &["sleep", "1000"],
        );
        let (vm, left) = start_reaped(SUBREAPER, &command).finish();
        vm.check(
            vm.code() == Some(124),
            &format!("{flavour} virtiofsd: --timeout should end chrootvm with 124"),
        );
        vm.check(
            left.is_empty(),
            &format!("{flavour} virtiofsd: left running when chrootvm returned: {left:?}"),
        );
    }
}

/// chrootvm as a user runs it, with the default accelerator: no
/// `--accel`, a cache directory of its own, and a bound (`--timeout`) so a
/// hang fails the test instead of stalling it.
fn default_accel(home: &Path) -> Command {
    let mut command = Command::new(bin("chrootvm"));
    command
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .arg("--kernel")
        .arg(kernel())
        .args(["--timeout", "300"]);
    command
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

fn verdicts(home: &Path) -> String {
    fs::read_to_string(home.join(".cache/chrootvm/kvm-verdicts")).unwrap_or_default()
}

/// On these machines KVM opens but cannot boot Linux: the default must
/// still finish, and the verdict be remembered for this host boot.
#[test]
fn the_default_accelerator_finishes_and_remembers_its_verdict() {
    let (scratch, root, _share) = root_and_share("default-accel");
    let home = scratch.dir("home");
    let mut command = default_accel(&home);
    command.arg(&root).args(["sh", "-c", "exit 7"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(7),
        "the command's status should come back",
    );
    let remembered = verdicts(&home);
    vm.check(
        remembered.starts_with(&format!("{}\t", boot_id()))
            && (remembered.contains("\tkvm\t") || remembered.contains("\ttcg\t")),
        &format!("a verdict for this host boot should be kept, not {remembered:?}"),
    );
    let mut again = default_accel(&home);
    again.arg("--debug").arg(&root).args(["sh", "-c", "exit 8"]);
    let vm = run(again);
    vm.check(vm.code() == Some(8), "the second run should work too");
    vm.check(
        vm.stderr
            .contains("chrootvm: remembered for this host boot: using "),
        "the second run should use the remembered verdict, not probe again",
    );
}

/// A verdict that says KVM works, on a host where it does not: the boot
/// watchdog sees no sign of life, says so on stderr (without --debug),
/// boots once more under TCG and remembers. Where KVM does boot Linux,
/// the run simply uses it.
#[test]
fn a_silent_kvm_boot_falls_back_to_tcg_once() {
    let (scratch, root, _share) = root_and_share("kvm-fallback");
    let home = scratch.dir("home");
    let cache = home.join(".cache/chrootvm");
    fs::create_dir_all(&cache).unwrap();
    let qemu = [
        "/usr/bin/qemu-system-x86_64",
        "/usr/local/bin/qemu-system-x86_64",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap();
    fs::write(
        cache.join("kvm-verdicts"),
        format!("{}\t{qemu}\tkvm\tseeded by the test\n", boot_id()),
    )
    .unwrap();
    let mut command = default_accel(&home);
    // The CPU the guest sees tells the engines apart: qemu's "QEMU TCG
    // CPU" under TCG, the host's own under KVM (-cpu host).
    command
        .arg(&root)
        .args(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo; exit 6"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(6) && vm.stdout.starts_with("model name"),
        "the command should run, under KVM or after the fallback",
    );
    let under_tcg = vm.stdout.contains("QEMU TCG CPU");
    let fell_back = vm
        .stderr
        .lines()
        .filter(|l| l.starts_with("chrootvm: ") && l.contains("booting again under TCG"))
        .count();
    let remembered = verdicts(&home);
    if fell_back == 0 {
        vm.check(
            remembered.contains("\tkvm\t") && !under_tcg,
            "without a fallback, KVM must have run the guest",
        );
    } else {
        vm.check(
            fell_back == 1 && under_tcg,
            "one fallback to TCG, said once",
        );
        vm.check(
            remembered.contains("\ttcg\t") && !remembered.contains("seeded"),
            &format!("the fallback should be remembered, not {remembered:?}"),
        );
    }
}

/// `--accel kvm` forces KVM: it works, or fails at once with one line.
#[test]
fn forced_kvm_works_or_says_why_in_one_line() {
    let (scratch, root, _share) = root_and_share("kvm-forced");
    let home = scratch.dir("home");
    let mut command = default_accel(&home);
    command
        .args(["--accel", "kvm"])
        .arg(&root)
        .args(["sh", "-c", "exit 5"]);
    let vm = run(command);
    if vm.code() != Some(5) {
        let ours: Vec<&str> = vm
            .stderr
            .lines()
            .filter(|l| l.starts_with("chrootvm: "))
            .collect();
        vm.check(
            vm.code() == Some(125)
                && ours.len() == 1
                && ours[0].starts_with("chrootvm: cannot use KVM: ")
                && ours[0].ends_with("(use --accel tcg)"),
            "a KVM that cannot boot Linux should be one clear error",
        );
    }
}

/// Builds an initramfs whose /init (a busybox script) never reports to
/// chrootvm: a foreign init that prints `said` (if anything) and waits
/// forever.
fn silent_image(scratch: &Scratch, said: Option<&str>) -> PathBuf {
    let name = if said.is_some() { "says" } else { "silent" };
    let tree = scratch.dir(name);
    for dir in ["bin", "dev"] {
        fs::create_dir_all(tree.join(dir)).unwrap();
    }
    fs::copy("/bin/busybox", tree.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", tree.join("bin/sh")).unwrap();
    let say = said.map_or(String::new(), |said| {
        format!("echo '{said}' > /dev/console\n")
    });
    script(
        &tree.join("init"),
        &format!("{say}exec /bin/busybox sleep 1000\n"),
    );
    let node = tree.join("dev/console");
    let made = Command::new("mknod")
        .arg(&node)
        .args(["c", "5", "1"])
        .status()
        .unwrap();
    assert!(made.success(), "mknod in the test's own directory");
    let image = scratch.path().join(format!("{name}.cpio"));
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&tree)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&image).unwrap())
        .spawn()
        .expect("GNU cpio (make check installs it)");
    cpio.stdin
        .take()
        .unwrap()
        .write_all(b"bin\nbin/busybox\nbin/sh\ndev\ndev/console\ninit\n")
        .unwrap();
    assert!(cpio.wait().unwrap().success());
    image
}

/// A guest that never shows it booted ends with 123 and one line naming
/// what was last seen, whether or not --timeout was given.
#[test]
fn a_silent_guest_ends_with_123_naming_what_was_last_seen() {
    let scratch = Scratch::new("silent-guest");
    let image = silent_image(&scratch, Some("stuck in a foreign init"));
    let mut command = chrootvm_quiet();
    command
        .args(["--boot-timeout", "15", "--initrd"])
        .arg(&image)
        .arg("true");
    let vm = run(command);
    vm.check(vm.code() == Some(123), "a silent guest should end with 123");
    vm.check(
        vm.stderr.lines().last()
            == Some(
                "chrootvm: the VM did not boot: init did not report within 15s (--boot-timeout); the console's last line: stuck in a foreign init",
            ),
        "the last line should name the limit and what was seen last",
    );
    // The same with nothing on the console at all: on q35, as on microvm
    // the kernel always says "PCI: Fatal: No config space access function
    // found" (an error, so `quiet` shows it): x86's PCI setup prints it on
    // a machine without PCI, pci=off or not.
    let image = silent_image(&scratch, None);
    let mut command = chrootvm_quiet();
    command
        .args(["--machine", "q35", "--boot-timeout", "15", "--initrd"])
        .arg(&image)
        .arg("true");
    let vm = run(command);
    vm.check(
        vm.code() == Some(123)
            && vm.stderr.contains(
                "init did not report within 15s (--boot-timeout); nothing on the console",
            ),
        "a guest that says nothing should be named as such",
    );
}

/// Paths with spaces, commas, a backslash and a newline, as the root and
/// as a share, with both daemons (the C one splits `-o source=` on
/// commas), and in qemu's options.
#[test]
fn odd_paths_work_as_root_and_share_with_both_daemons() {
    for (flavour, daemon) in both_virtiofsd() {
        let scratch = Scratch::new("odd-paths");
        let root = scratch.dir("odd dir,with=comma\\and\nnewline/root");
        busybox_root(&root);
        fs::write(root.join("marker"), "root\n").unwrap();
        let share = scratch.dir("share, too,");
        fs::write(share.join("f"), "share\n").unwrap();
        let mut command = chrootvm_quiet();
        command
            .env("VIRTIOFSD", &daemon)
            .arg("--mount-ro")
            .arg("s")
            .arg(&share)
            .arg(&root)
            .args(["sh", "-c", "cat /marker /run/mnt/s/f"]);
        let vm = run(command);
        vm.check(
            vm.code() == Some(0) && vm.stdout == "root\nshare\n",
            &format!("{flavour} virtiofsd: odd paths should work"),
        );
    }
}

/// As an ordinary user: the Rust virtiofsd runs unprivileged and serves
/// the root; with only Debian's C daemon, which needs root, the error says
/// so and names the way out.
#[test]
fn an_unprivileged_user_is_served_or_told_why_not() {
    let (scratch, root, _share) = root_and_share("unprivileged");
    fs::write(root.join("marker"), "as nobody\n").unwrap();
    // Programs where the user "nobody" can reach them (not under /root).
    let tools = scratch.dir("bin");
    for (from, name) in [
        (bin("chrootvm"), "chrootvm"),
        (bin("init"), "init"),
        (rust_virtiofsd(), "virtiofsd"),
    ] {
        fs::copy(&from, tools.join(name)).unwrap();
    }
    let only_c = scratch.dir("only-c");
    fs::copy(bin("chrootvm"), only_c.join("chrootvm")).unwrap();
    fs::copy(bin("init"), only_c.join("init")).unwrap();
    for dir in [scratch.path(), &tools, &only_c] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_nobody = |dir: &Path| {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "env",
                "-i",
            ])
            .arg(format!("PATH={}:/usr/bin:/bin", dir.display()))
            .arg(format!("HOME={}", scratch.path().display()))
            .arg(dir.join("chrootvm"))
            .args(["--accel", "tcg", "--timeout", "300", "--kernel"])
            .arg(kernel())
            .arg(&root)
            .args(["sh", "-c", "cat /marker; exit 3"]);
        command
    };
    let vm = run(as_nobody(&tools));
    vm.check(
        vm.code() == Some(3) && vm.stdout == "as nobody\n",
        "the Rust virtiofsd should serve an unprivileged run",
    );
    let vm = run(as_nobody(&only_c));
    vm.check(
        vm.code() == Some(125)
            && vm.stderr.contains(
                "/usr/lib/qemu/virtiofsd, is QEMU's legacy C daemon, which runs only as root",
            )
            && vm.stderr.contains("cargo install virtiofsd"),
        "with only the C daemon, the error should say it needs root and what to do",
    );
}
