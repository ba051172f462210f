//! Issue 14: promises of the README and `--help` that had no test. Each
//! test checks what only the promised behaviour produces.

use std::fs;
use std::path::PathBuf;

use rustix::process::Signal;
use tests::{
    Pty, Scratch, Stop, bin, chrootvm_command, chrootvm_quiet, kernel, run, rust_virtiofsd, script,
    stop_when_ready,
};

const SUBREAPER: &str = env!("CARGO_BIN_EXE_subreaper");

fn root(test: &str) -> (Scratch, PathBuf) {
    tests::busybox_scratch(test)
}

/// A kernel, kernel version or module tree that is not there: 125 and one
/// line naming it, before anything starts.
#[test]
fn a_missing_kernel_or_module_tree_is_125() {
    let (scratch, root) = root("no-kernel");
    let missing = scratch.path().join("no-such-vmlinuz");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--kernel".into(), missing.display().to_string()],
            format!("{}", missing.display()),
        ),
        (
            vec!["--kver".into(), "0.0.0-none".into()],
            "cannot find a kernel to boot".into(),
        ),
        (
            vec![
                "--kernel".into(),
                kernel().display().to_string(),
                "--moddir".into(),
                scratch.path().join("no-modules").display().to_string(),
            ],
            "no-modules".into(),
        ),
    ];
    for (options, named) in cases {
        let mut command = std::process::Command::new(bin("chrootvm"));
        command
            .args(["--accel", "tcg"])
            .args(&options)
            .arg(&root)
            .arg("true");
        let vm = run(command);
        let lines: Vec<&str> = vm.stderr.lines().collect();
        vm.check(
            vm.code() == Some(125)
                && lines.len() == 1
                && lines[0].starts_with("chrootvm: cannot ")
                && lines[0].contains(&named),
            &format!("{options:?} should be one line naming {named:?}"),
        );
    }
}

/// SIGHUP (a closed terminal) stops chrootvm like SIGTERM: 129, nothing
/// left.
#[test]
fn sighup_stops_the_run() {
    let (_scratch, root) = root("sighup");
    let mut command = chrootvm_quiet();
    command
        .arg(&root)
        .args(["sh", "-c", "echo ready; exec sleep 1000"]);
    stop_when_ready(
        SUBREAPER,
        &command,
        "ready",
        true,
        &Stop {
            signal: Signal::HUP,
            code: 129,
        },
    );
}

/// --memory and --cpus size the VM; the command runs like chroot(1)'s:
/// in /, with writable /tmp and /run on a read-only root, and PATH, HOME
/// and TERM set even when the caller has none.
#[test]
fn the_vm_is_sized_and_the_command_runs_like_chroots() {
    let (_scratch, root) = root("sized");
    let mut command = chrootvm_quiet();
    command
        .env_clear()
        .args(["--memory", "300M", "--cpus", "3"])
        .arg(&root)
        .args([
            "sh",
            "-c",
            "echo cpus=$(nproc) mem=$(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2); \
             echo cwd=$(pwd); touch /tmp/t /run/r && echo writable; touch /x 2>/dev/null || echo ro-root; \
             echo PATH=$PATH; echo HOME=$HOME TERM=$TERM",
        ]);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "the command should succeed");
    let line = |key: &str| {
        vm.stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
            .to_string()
    };
    let mem: u64 = line("cpus=3 mem=")
        .trim_start_matches("cpus=3 mem=")
        .parse()
        .unwrap_or(0);
    vm.check(
        (200_000..=300 * 1024).contains(&mem),
        &format!("3 CPUs and a MemTotal under 300 MiB (the kernel keeps some), not {mem} kB"),
    );
    vm.check(
        line("cwd=") == "cwd=/"
            && vm.stdout.contains("\nwritable\nro-root\n")
            && line("PATH=") == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            && line("HOME=") == "HOME=/root TERM=dumb",
        "cwd /, writable /tmp and /run, and the environment's defaults",
    );
}

/// init= arguments after `--` reach the real init, and
/// systemd.machine_id= lands in /etc/machine-id of a writable root
/// (--overlay here: the host's tree keeps none).
#[test]
fn init_arguments_and_machine_id_reach_a_booted_system() {
    let (_scratch, root) = root("init-args");
    script(
        &root.join("probe.sh"),
        "echo \"args=$*\"; echo \"id=$(cat /etc/machine-id)\"; poweroff -f\n",
    );
    let mut command = chrootvm_command();
    command
        .args(["--overlay", "--init", "/probe.sh", "--append"])
        .arg("systemd.machine_id=0123456789abcdef0123456789abcdef -- one two")
        .arg(&root);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "the system should power off");
    vm.check(
        vm.stdout.contains("args=one two"),
        "the arguments after -- should reach the real init",
    );
    vm.check(
        vm.stdout.contains("id=0123456789abcdef0123456789abcdef"),
        "the machine id should be written",
    );
    vm.check(
        !root.join("etc/machine-id").exists(),
        "the host's tree should be untouched",
    );
}

/// virtiofsd is looked for in PATH before the distributions' places, and
/// a $VIRTIOFSD that is not one is one clear error.
#[test]
fn virtiofsd_is_found_in_path_first_and_a_wrong_one_is_named() {
    let (scratch, root) = root("virtiofsd-order");
    let tools = scratch.dir("tools");
    fs::copy(rust_virtiofsd(), tools.join("virtiofsd")).unwrap();
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = chrootvm_command();
    command
        .env("PATH", &path)
        .env_remove("VIRTIOFSD")
        .arg(&root)
        .arg("true");
    let vm = run(command);
    vm.check(
        vm.code() == Some(0)
            && vm.stderr.contains(&format!(
                "chrootvm: running {} --socket-path",
                tools.join("virtiofsd").display()
            )),
        "the virtiofsd in PATH should serve, not /usr/lib/qemu's",
    );
    let mut command = chrootvm_quiet();
    command.env("VIRTIOFSD", "/bin/true").arg(&root).arg("true");
    let vm = run(command);
    vm.check(
        vm.code() == Some(125)
            && vm.stderr
                == "chrootvm: cannot use VIRTIOFSD=/bin/true: not a virtiofsd (set it to the daemon, or empty for none)\n",
        "a $VIRTIOFSD that is not a virtiofsd should be named",
    );
}

/// Ctrl-C on the terminal reaches the command in the guest, not chrootvm:
/// `sleep` dies by SIGINT, the shell goes on and says so.
#[test]
fn ctrl_c_reaches_the_command_on_a_terminal() {
    let (_scratch, root) = root("ctrl-c");
    let pty = Pty::open();
    let mut command = chrootvm_quiet();
    command
        .env("SHELL", "/bin/sh")
        .env("PS1", "vm$ ")
        .arg(&root);
    pty.attach(&mut command);
    let mut child = command.spawn().unwrap();
    drop(command);
    pty.wait_for("vm$ ", 1);
    pty.type_keys(b"sh -c 'echo started; exec sleep 1000'\n");
    // "started" comes from the job itself: by then the shell's line editor
    // has put the terminal back in cooked mode (a Ctrl-C typed while its
    // raw mode held would be a plain byte that nothing reads), and the job
    // is the terminal's foreground group (a Ctrl-C before that reaches the
    // shell, which ignores it while it waits for the job).
    pty.wait_for("started\r\n", 1);
    // A Ctrl-C that reaches the guest ends sleep (or the line before it
    // runs), and the shell prompts again; one that reached chrootvm would
    // end the run with 130, one that reached nothing would leave sleep.
    pty.type_keys(b"\x03");
    pty.wait_for("vm$ ", 2);
    pty.type_keys(b"exit 5\n");
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "chrootvm should outlive the Ctrl-C:\n{}",
        pty.text()
    );
}
