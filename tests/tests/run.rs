//! Issue 3: chrootvm runs commands like chroot(1). Each test boots Debian's
//! cloud kernel under TCG over a busybox root made here (the C virtiofsd
//! unless said otherwise) and checks what only run mode gives: the
//! command's status, its own stdout/stderr/stdin, and nothing left behind.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::process::Signal;
use tests::{
    Pty, Scratch, Stop, chrootvm_command, chrootvm_quiet, generic_kernel, kernel, run,
    run_with_input, rust_virtiofsd, start_reaped, stop_when_ready, temp_dirs_of,
};

const SUBREAPER: &str = env!("CARGO_BIN_EXE_subreaper");

/// Deterministic bytes covering all 256 values (an LCG), different per
/// seed.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            state.to_be_bytes()[0]
        })
        .collect()
}

/// A busybox root in a fresh scratch directory.
fn root(test: &str) -> (Scratch, PathBuf) {
    tests::busybox_scratch(test)
}

/// The command's exit code comes back as chrootvm's: normal exits, a
/// signal death (128+9), not executable (126) and not found (127).
#[test]
fn exit_statuses_pass_through() {
    let (_scratch, root) = root("status");
    fs::write(root.join("not-executable"), "data\n").unwrap();
    let cases: [(&[&str], i32); 6] = [
        (&["true"], 0),
        (&["false"], 1),
        (&["sh", "-c", "exit 7"], 7),
        (&["sh", "-c", "kill -9 $$"], 137),
        (&["/not-executable"], 126),
        (&["no-such-command"], 127),
    ];
    for (argv, code) in cases {
        let mut command = chrootvm_quiet();
        command.arg(&root).args(argv);
        let vm = run(command);
        vm.check(
            vm.code() == Some(code),
            &format!("{argv:?} should give status {code}"),
        );
        if code == 127 {
            vm.check(
                vm.stderr.contains("no-such-command: command not found"),
                "a command not found should be named on stderr",
            );
        }
    }
}

/// stdout and stderr arrive separately, byte for byte, several MiB of
/// them; with no `--debug`, not one kernel or init line joins them.
#[test]
fn stdout_and_stderr_are_separate_and_byte_exact() {
    let (_scratch, root) = root("streams");
    let out = noise(5 << 20, 1);
    let err = noise(1 << 20, 2);
    fs::write(root.join("out.bin"), &out).unwrap();
    fs::write(root.join("err.bin"), &err).unwrap();
    let mut command = chrootvm_quiet();
    command
        .arg(&root)
        .args(["sh", "-c", "cat /out.bin; cat /err.bin >&2; echo done"]);
    let vm = run(command);
    let mut expected_out = out;
    expected_out.extend_from_slice(b"done\n");
    assert!(
        vm.code() == Some(0) && vm.raw_stdout == expected_out && vm.raw_stderr == err,
        "stdout should be exactly out.bin + done ({} bytes, got {}), stderr exactly err.bin \
         ({} bytes, got {}); status {}; stderr starts {:?}",
        expected_out.len(),
        vm.raw_stdout.len(),
        err.len(),
        vm.raw_stderr.len(),
        vm.status,
        String::from_utf8_lossy(&vm.raw_stderr[..vm.raw_stderr.len().min(400)]),
    );
}

/// What is piped into chrootvm is the command's stdin, to the end.
#[test]
fn stdin_reaches_the_command() {
    let (_scratch, root) = root("stdin");
    let mut command = chrootvm_quiet();
    command.arg(&root).arg("cat");
    let vm = run_with_input(command, Some(b"hi\n".to_vec()));
    vm.check(
        vm.code() == Some(0) && vm.stdout == "hi\n",
        "`echo hi | chrootvm ROOT cat` should print hi",
    );
    let input = noise(3 << 20, 3);
    let mut command = chrootvm_quiet();
    command.arg(&root).args(["sh", "-c", "cat; echo end"]);
    let vm = run_with_input(command, Some(input.clone()));
    let mut expected = input;
    expected.extend_from_slice(b"end\n");
    vm.check(
        vm.code() == Some(0) && vm.raw_stdout == expected,
        &format!(
            "3 MiB of stdin should come back through cat ({} bytes expected, {} got)",
            expected.len(),
            vm.raw_stdout.len()
        ),
    );
}

/// 200 arguments of 100 bytes and a 64 KiB variable: far beyond the
/// kernel command line, they travel in the run spec.
#[test]
fn long_arguments_and_environment_arrive_intact() {
    let (_scratch, root) = root("argv");
    let args: Vec<String> = (0..200)
        .map(|i| format!("{i:03}-{}", "x".repeat(96)))
        .collect();
    let big: String = (0..65536u32)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap()))
        .collect();
    let mut command = chrootvm_quiet();
    command
        .env("BIG", &big)
        .arg(&root)
        .args(["sh", "-c", "printf '%s\\n' \"$#\" \"$@\" \"$BIG\"", "sh"])
        .args(&args);
    let vm = run(command);
    let expected = format!("200\n{}\n{big}\n", args.join("\n"));
    vm.check(
        vm.code() == Some(0) && vm.stdout == expected,
        "the arguments and $BIG should arrive unchanged",
    );
}

/// Orphans are init's children: those that exit are reaped at once (no
/// zombie), and one still running when the command ends does not keep the
/// VM up.
#[test]
fn orphans_are_reaped_and_do_not_outlive_the_command() {
    let (_scratch, root) = root("orphans");
    let body = r#"
        ( sh -c 'exit 0' & sh -c 'exit 0' & sh -c 'exit 0' & sleep 1000 & )
        sleep 1
        zombies=0 sleeping=0
        for stat in /proc/[0-9]*/stat; do
            read -r line < "$stat" 2>/dev/null || continue
            case "$line" in *") Z "*) zombies=$((zombies + 1)) ;; esac
            case "$line" in *" (sleep) S "*) sleeping=$((sleeping + 1)) ;; esac
        done
        echo "zombies=$zombies orphans=$sleeping"
    "#;
    let mut command = chrootvm_quiet();
    command.arg(&root).args(["sh", "-c", body]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.stdout == "zombies=0 orphans=1\n",
        "exited orphans should be reaped while the long one runs, and the VM should end",
    );
}

/// `--timeout 5` on `sleep 1000`: chrootvm's timeout code, said on
/// stderr, and nothing left.
#[test]
fn timeout_kills_the_vm_and_leaves_nothing() {
    let (_scratch, root) = root("timeout");
    let mut command = chrootvm_quiet();
    command
        .args(["--timeout", "5"])
        .arg(&root)
        .args(["sleep", "1000"]);
    let vm = start_reaped(SUBREAPER, &command);
    let pid = vm.pid;
    let (vm, left) = vm.finish();
    vm.check(vm.code() == Some(124), "a timeout should give 124");
    vm.check(
        vm.stderr.contains("--timeout"),
        "the timeout should be said on stderr",
    );
    vm.check(left.is_empty(), &format!("left running: {left:?}"));
    let dirs = temp_dirs_of(pid);
    vm.check(dirs.is_empty(), &format!("temp directories left: {dirs:?}"));
}

/// SIGINT, SIGTERM or SIGKILL to chrootvm once the command runs (it says
/// "running"): 130, 143 or death, and qemu, virtiofsd and the temp
/// directory go with it.
fn stop_mid_run(name: &str, signal: Signal, code: i32) {
    let (_scratch, root) = root(name);
    let mut command = chrootvm_command();
    command
        .arg(&root)
        .args(["sh", "-c", "echo running; exec sleep 1000"]);
    stop_when_ready(SUBREAPER, &command, "running", true, &Stop { signal, code });
}

#[test]
fn sigint_mid_run_leaves_nothing_behind() {
    stop_mid_run("run-sigint", Signal::INT, 130);
}

#[test]
fn sigterm_mid_run_leaves_nothing_behind() {
    stop_mid_run("run-sigterm", Signal::TERM, 143);
}

#[test]
fn sigkill_mid_run_takes_the_vm_along() {
    stop_mid_run("run-sigkill", Signal::KILL, 128 + 9);
}

/// Every path under `root` with its type, mode, size, mtime and content.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, Vec<u8>)> {
    let mut found = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let content = if meta.is_dir() {
            todo.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            Vec::new()
        } else if meta.file_type().is_symlink() {
            fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else {
            fs::read(&path).unwrap()
        };
        found.insert(
            path.strip_prefix(root).unwrap().to_path_buf(),
            (meta.mode(), meta.len(), meta.mtime(), content),
        );
    }
    found
}

/// `--rw`: writes reach the directory. The default: the root refuses them.
#[test]
fn rw_writes_land_in_the_directory() {
    let (_scratch, root) = root("rw");
    let write = "echo written > /file && mkdir /dir && rm /etc/group";
    let mut command = chrootvm_quiet();
    command.arg(&root).args(["sh", "-c", write]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(1) && !root.join("file").exists(),
        "by default the root should be read-only",
    );
    let mut command = chrootvm_quiet();
    command.arg("--rw").arg(&root).args(["sh", "-c", write]);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "writes should succeed with --rw");
    vm.check(
        fs::read_to_string(root.join("file")).unwrap_or_default() == "written\n"
            && root.join("dir").is_dir()
            && !root.join("etc/group").exists(),
        "--rw writes should be in the directory",
    );
}

/// `--overlay`: writes, removals and new files are seen during the run and
/// gone after; the directory is byte-identical.
#[test]
fn overlay_writes_vanish_and_leave_the_directory_untouched() {
    let (_scratch, root) = root("overlay");
    fs::write(root.join("file"), "original\n").unwrap();
    let before = snapshot(&root);
    let mut command = chrootvm_quiet();
    command.arg("--overlay").arg(&root).args([
        "sh",
        "-c",
        "echo changed > /file && touch /new && rm /etc/group && chmod 700 /bin \
         && echo \"$(cat /file) $(ls /new) $(ls /etc/group 2>&1 | grep -c 'No such')\"",
    ]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.stdout == "changed /new 1\n",
        "overlay writes should be visible during the run",
    );
    let after = snapshot(&root);
    vm.check(
        before == after,
        "the directory should be byte-identical after an --overlay run",
    );
}

/// The Rust daemon (`--shared-dir`) serves the root as well as the C one.
#[test]
fn rust_virtiofsd_serves_the_root() {
    let (_scratch, root) = root("rust-virtiofsd");
    fs::write(root.join("marker"), "served by rust\n").unwrap();
    let daemon = rust_virtiofsd();
    let mut command = chrootvm_command();
    command
        .env("VIRTIOFSD", &daemon)
        .arg("--rw")
        .arg(&root)
        .args(["sh", "-c", "cat /marker; echo back > /written; exit 5"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(5),
        "the command's status should come back",
    );
    vm.check(
        vm.stdout.contains("served by rust")
            && fs::read_to_string(root.join("written")).unwrap_or_default() == "back\n",
        "the root should be read and written through the Rust daemon",
    );
    vm.check(
        vm.stderr.lines().any(|l| {
            l.starts_with(&format!("chrootvm: running {} ", daemon.display()))
                && l.contains(" --shared-dir ")
        }),
        "the Rust daemon should have been the one started, with --shared-dir",
    );
}

/// No virtiofsd and a kernel without 9p (Debian's cloud kernel): one line
/// saying what to install, status 125, nothing started.
#[test]
fn no_virtiofsd_and_no_9p_is_one_clear_error() {
    let (_scratch, root) = root("no-virtiofsd");
    let mut command = chrootvm_quiet();
    command.env("VIRTIOFSD", "").arg(&root).arg("true");
    let vm = run(command);
    vm.check(
        vm.code() == Some(125),
        "a missing virtiofsd should give 125",
    );
    vm.check(
        vm.stderr.lines().count() == 1
            && vm.stderr.starts_with("chrootvm: ")
            && vm.stderr.contains("9p")
            && vm.stderr.contains("install virtiofsd"),
        "one line should name virtiofsd, 9p and what to install",
    );
}

/// No virtiofsd, a kernel with 9p: the root is shared over qemu's 9p and
/// the command runs.
#[test]
fn no_virtiofsd_falls_back_to_9p() {
    let (_scratch, root) = root("ninep");
    let mut command = chrootvm_quiet();
    command
        .env("VIRTIOFSD", "")
        .arg("--kernel")
        .arg(generic_kernel())
        .arg(&root)
        .args(["sh", "-c", "grep ' / ' /proc/mounts; exit 4"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(4),
        "the command's status should come back",
    );
    vm.check(
        vm.stdout.starts_with("rootfs / 9p "),
        "the root should be mounted over 9p",
    );
}

/// `--initrd IMAGE`: an image made by mkinitrd, plus a busybox tree, is
/// the root; the command runs in it.
#[test]
fn initrd_image_is_the_root() {
    let (scratch, tree) = root("initrd");
    fs::write(tree.join("marker"), "from the image\n").unwrap();
    let base = scratch.path().join("base.cpio");
    let status = Command::new(tests::bin("mkinitrd"))
        .arg("--moddir")
        .arg(tests::moddir())
        .arg("-o")
        .arg(&base)
        .status()
        .unwrap();
    assert!(status.success(), "mkinitrd should pack the base image");
    let mut cpio = Command::new("cpio")
        .args(["--quiet", "-o", "-H", "newc"])
        .current_dir(&tree)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cpio should run: install cpio (make check does)");
    let mut names = String::new();
    let mut todo = vec![PathBuf::from(".")];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(tree.join(&dir)).unwrap().flatten() {
            let path = dir.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                todo.push(path.clone());
            }
            names.push_str(&format!("{}\n", path.display()));
        }
    }
    cpio.stdin
        .take()
        .unwrap()
        .write_all(names.as_bytes())
        .unwrap();
    let mut extra = Vec::new();
    cpio.stdout.take().unwrap().read_to_end(&mut extra).unwrap();
    assert!(cpio.wait().unwrap().success(), "cpio should pack the tree");
    let mut image = fs::read(&base).unwrap();
    image.extend_from_slice(&extra);
    let image_path = scratch.path().join("image.cpio");
    fs::write(&image_path, image).unwrap();
    fs::remove_dir_all(&tree).unwrap();
    let mut command = chrootvm_quiet();
    command
        .arg("--initrd")
        .arg(&image_path)
        .args(["sh", "-c", "cat /marker; exit 9"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(9) && vm.stdout == "from the image\n",
        "the image's files should be the root",
    );
}

/// An interactive shell on a pseudo-terminal: the prompt appears, commands
/// run in the guest, `exit 3` ends the VM with 3, and the terminal, raw
/// during the session, has its settings back afterwards.
#[test]
fn interactive_shell_on_a_terminal() {
    use rustix::termios::LocalModes;

    let (_scratch, root) = root("pty");
    let pty = Pty::open();
    let before = pty.modes();
    let mut command = chrootvm_quiet();
    command
        .env("SHELL", "/bin/sh")
        .env("PS1", "vm-prompt$ ")
        .arg(&root);
    pty.attach(&mut command);
    let mut child = command.spawn().unwrap();
    // The command keeps copies of the terminal; only the Pty's may stay.
    drop(command);
    pty.wait_for("vm-prompt$ ", 1);
    let during = pty.modes();
    pty.type_keys(b"echo $((6*7)) $(uname -r)\n");
    pty.wait_for(&format!("42 {}", tests::release(&kernel())), 1);
    pty.type_keys(b"exit 3\n");
    let status = child.wait().unwrap();
    let after = pty.modes();
    let text = pty.text();
    assert_eq!(
        status.code(),
        Some(3),
        "exit 3 should end chrootvm with 3:\n{text}"
    );
    assert!(
        !during.local_modes.contains(LocalModes::ICANON),
        "the terminal should be raw during the session"
    );
    assert!(
        after.local_modes == before.local_modes
            && after.input_modes == before.input_modes
            && after.output_modes == before.output_modes
            && after.control_modes == before.control_modes,
        "the terminal's settings should be restored"
    );
}

/// Issue 12: with the initramfs as root (`--initrd`), shares are mounted
/// at /run/mnt/TAG of the initramfs, as with a shared root.
#[test]
fn initrd_root_gets_its_shares() {
    let scratch = Scratch::new("initrd-shares");
    let share = scratch.dir("share");
    fs::write(share.join("f"), "from the share\n").unwrap();
    let image = scratch.path().join("image.cpio");
    let status = Command::new(tests::bin("mkinitrd"))
        .arg("--moddir")
        .arg(tests::moddir())
        .args(["--file", "/bin/busybox:/bin/busybox"])
        .args(["--symlink", "/bin/cat:busybox"])
        .arg("-o")
        .arg(&image)
        .status()
        .unwrap();
    assert!(status.success(), "mkinitrd should pack the image");
    let mut command = chrootvm_command();
    command
        .arg("--initrd")
        .arg(&image)
        .arg("--mount-ro")
        .arg("s1")
        .arg(&share)
        .args(["cat", "/run/mnt/s1/f"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.stdout == "from the share\n",
        "the share should be at /run/mnt/s1 in the initramfs",
    );
}

/// Issue 12: a tree holding only a static program, with no /dev, /proc,
/// /sys, /run or /tmp, runs like `chroot ./tree /bin/busybox ...`: its
/// stdin, stdout, stderr and status come through (init opens the ports
/// before the switch), read-only, `--rw` and `--overlay`, and the tree
/// is left as it was (the command sees no /proc or /dev, as under chroot).
#[test]
fn tree_with_only_a_static_program_runs_like_chroot() {
    let scratch = Scratch::new("bare-tree");
    let tree = scratch.dir("tree");
    fs::create_dir(tree.join("bin")).unwrap();
    fs::copy("/bin/busybox", tree.join("bin/busybox")).unwrap();
    for mode in [None, Some("--rw"), Some("--overlay")] {
        let mut command = chrootvm_command();
        command.args(mode).arg(&tree).args([
            "/bin/busybox",
            "sh",
            "-c",
            "read line; echo \"in: $line\"; /bin/busybox ls /; echo to-stderr >&2; exit 7",
        ]);
        let vm = run_with_input(command, Some(b"typed\n".to_vec()));
        vm.check(
            vm.code() == Some(7) && vm.stdout == "in: typed\nbin\n",
            &format!("{mode:?}: the command should run with its stdio and status"),
        );
        vm.check(
            vm.stderr.lines().any(|l| l == "to-stderr"),
            &format!("{mode:?}: stderr should come through"),
        );
        let entries: Vec<_> = fs::read_dir(&tree)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        vm.check(entries == ["bin"], "the tree should be left as it was");
    }
}

/// Issue 13: an argument list longer than execve takes (2.5 MiB; the
/// guest's limit is a quarter of the 8 MiB stack limit) fails as execvp
/// fails, with 126 and a line naming the command as given (`sh`, not a
/// PATH entry it was tried in) and the limit.
#[test]
fn argument_list_beyond_execve_limit_names_the_command() {
    let (_scratch, root) = root("e2big");
    // The host takes 6 MiB of arguments under a 64 MiB stack limit, so
    // chrootvm itself can be started with them.
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let hard = getrlimit(Resource::Stack).maximum;
    setrlimit(
        Resource::Stack,
        Rlimit {
            current: Some(64 << 20),
            maximum: hard,
        },
    )
    .unwrap();
    let arg = "x".repeat(64 << 10);
    let mut command = chrootvm_quiet();
    command
        .arg(&root)
        .args(["sh", "-c", "echo ran", "sh"])
        .args(std::iter::repeat_n(&arg, 40));
    let vm = run(command);
    vm.check(vm.code() == Some(126), "E2BIG should give 126");
    vm.check(
        vm.stderr.contains(
            "init: cannot execute sh: Argument list too long (execve takes at most 2048 KiB \
             of arguments and environment, a quarter of the stack size limit, and 128 KiB \
             per string)",
        ),
        "the error should name the command as given and the limit",
    );
}

/// Issue 13: thousands of arguments (init used to stop at 1023) reach the
/// command, as they would under chroot(1).
#[test]
fn thousands_of_arguments_reach_the_command() {
    let (_scratch, root) = root("many-args");
    let args: Vec<String> = (0..20000).map(|i| i.to_string()).collect();
    let mut command = chrootvm_quiet();
    command
        .arg(&root)
        .args(["sh", "-c", "echo $# \"$1\" \"${20000}\"", "sh"])
        .args(&args);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.stdout == "20000 0 19999\n",
        "all 20000 arguments should arrive",
    );
}
