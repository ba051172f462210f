//! Issue 5: init for real systems. Each test boots Debian's cloud kernel
//! under TCG over a busybox root made here and checks what only the
//! feature under test produces.

use tests::{Scratch, busybox_root, chrootvm_command, run, script};

/// rapido's parameters reach the booted system: hostname and NIS domain,
/// the console size (no stty program ran before), the MAC as a file and in
/// the real init's environment, and lo is up. Malformed values are
/// reported and ignored.
#[test]
fn rapido_parameters_name_the_vm_and_size_its_console() {
    let scratch = Scratch::new("rapido");
    let root = scratch.dir("root");
    busybox_root(&root);
    script(
        &root.join("probe.sh"),
        "echo \"host=$(hostname) domain=$(cat /proc/sys/kernel/domainname) size=$(stty size) \
         lo=$(cat /sys/class/net/lo/flags) mac=$(cat /run/rapido/mac.eth0) env=$RAPIDO_MAC_ETH0 \
         bad=$(ls /run/rapido)\"\npoweroff -f\n",
    );
    let mut command = chrootvm_command();
    command
        .arg("--append")
        .arg(
            "rapido.hostname=box.example rapido.vm_num=7 rapido.stty=40,120 \
             rapido.mac.eth0=52:54:00:12:34:56 rapido.mac.bad=zz",
        )
        .arg("--init")
        .arg("/probe.sh")
        .arg(&root);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "the VM should boot and power off");
    // lo's flags: IFF_UP (0x1) | IFF_LOOPBACK (0x8).
    vm.check(
        vm.output().contains(
            "host=box domain=example size=40 120 lo=0x9 mac=52:54:00:12:34:56 \
             env=52:54:00:12:34:56 bad=mac.eth0",
        ),
        "hostname, domain, console size, lo, and the MAC file and variable should be set",
    );
    vm.check(
        vm.output().contains("init: cannot use rapido.mac.bad=zz: "),
        "a malformed MAC should be reported",
    );

    // rapido.vm_num alone names the host rapidoN; a bad stty is ignored.
    script(
        &root.join("probe.sh"),
        "echo \"host=$(hostname) size=$(stty size)\"\npoweroff -f\n",
    );
    let mut command = chrootvm_command();
    command
        .arg("--append")
        .arg("rapido.vm_num=7 rapido.stty=abc")
        .arg("--init")
        .arg("/probe.sh")
        .arg(&root);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.stdout.lines().any(|l| l == "host=rapido7 size="),
        "rapido.vm_num should name the host, and a bad stty leave the serial console \
         without a size (busybox's stty size fails on 0x0 and prints nothing)",
    );
    vm.check(
        vm.output()
            .contains("init: cannot use rapido.stty=abc: expected ROWS,COLS; ignored"),
        "a malformed stty should be reported and ignored",
    );
}

/// `init.shell`: a fatal error opens /bin/sh on the console instead of
/// powering off; leaving it powers off, and chrootvm says init failed.
#[test]
fn init_shell_opens_a_shell_on_a_fatal_error() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let scratch = Scratch::new("init-shell");
    let root = scratch.dir("root");
    busybox_root(&root);
    let mut command = chrootvm_command();
    command
        .args(["--append", "init.shell", "--init", "/nonexistent"])
        .arg(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let collect = Arc::clone(&seen);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            collect.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    while !text().contains("(init) # ") {
        assert!(Instant::now() < deadline, "no shell prompt:\n{}", text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stdin = child.stdin.take().unwrap();
    // ash asks the terminal where the cursor is (ESC [6n) and reads the
    // answer from its input; answer as a terminal would, so the typed line
    // is not taken for part of the answer.
    let asked = Instant::now() + Duration::from_secs(5);
    while !text().contains("\x1b[6n") && Instant::now() < asked {
        std::thread::sleep(Duration::from_millis(20));
    }
    if text().contains("\x1b[6n") {
        stdin.write_all(b"\x1b[1;10R").unwrap();
    }
    stdin
        .write_all(b"echo in-shell-$((6*7))-$$\nexit\n")
        .unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let text = text();
    assert!(
        text.contains("init: cannot execute /nonexistent")
            && text.contains("init: starting an emergency shell"),
        "the error and the shell should be announced:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("in-shell-42-")),
        "the shell should run what is typed:\n{text}"
    );
    assert_eq!(
        status.code(),
        Some(123),
        "init failed, so chrootvm says so:\n{stderr}"
    );
}

/// An ext4 image made from a busybox tree, for the block root tests.
fn ext4_image(scratch: &Scratch) -> std::path::PathBuf {
    let tree = scratch.dir("tree");
    busybox_root(&tree);
    std::fs::write(tree.join("marker"), "on the disk\n").unwrap();
    let image = scratch.path().join("disk.img");
    let made = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&image)
        .arg("64M")
        .status()
        .expect("mkfs.ext4 should run: install e2fsprogs");
    assert!(made.success(), "mkfs.ext4 -d should make the image");
    image
}

/// A file in an ext4 image, read with debugfs (no mount needed).
fn debugfs_cat(image: &std::path::Path, path: &str) -> String {
    let out = std::process::Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(image)
        .output()
        .expect("debugfs should run: install e2fsprogs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--disk IMAGE --root /dev/vda`: the ext4 image is the root; with
/// `--rw` a file written in the guest is in the image after power-off.
#[test]
fn ext4_disk_image_boots_as_a_block_root() {
    let scratch = Scratch::new("block-root");
    let image = ext4_image(&scratch);
    let mut command = chrootvm_command();
    command
        .arg("--disk")
        .arg(&image)
        .args([
            "--root",
            "/dev/vda",
            "--rw",
            "--append",
            "rootflags=commit=7",
        ])
        .args(["sh", "-c"])
        .arg("cat /marker; grep ' / ' /proc/mounts; echo from-the-guest > /written");
    let vm = run(command);
    vm.check(vm.code() == Some(0), "the command should succeed");
    vm.check(
        vm.stdout.starts_with("on the disk\n/dev/vda / ext4 rw"),
        "the root should be the image's ext4, read-write",
    );
    vm.check(
        vm.stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains(",commit=7")),
        "rootflags= should reach the root's mount",
    );
    vm.check(
        debugfs_cat(&image, "/written") == "from-the-guest\n",
        "the guest's write should be in the image",
    );
}

/// A missing device and a wrong file system type: init's error line, a
/// power-off, chrootvm's "did not boot" status; no hang.
#[test]
fn missing_device_and_wrong_fstype_are_init_errors() {
    let scratch = Scratch::new("block-errors");
    let image = ext4_image(&scratch);
    let mut command = chrootvm_command();
    command
        .arg("--disk")
        .arg(&image)
        .args(["--root", "/dev/vdb", "true"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(123),
        "a missing root device should fail the boot",
    );
    vm.check(
        vm.output().contains(
            "init: cannot find root device /dev/vdb after 10 s; block devices present: vda",
        ),
        "init should name the device and list the disks there are",
    );
    let mut command = chrootvm_command();
    command.arg("--disk").arg(&image).args([
        "--root",
        "/dev/vda",
        "--append",
        "rootfstype=xfs",
        "true",
    ]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(123),
        "a wrong fstype should fail the boot",
    );
    vm.check(
        vm.output()
            .contains("init: cannot mount root /dev/vda on /sysroot (tried xfs): Invalid argument"),
        "init should name the device and the type it tried",
    );
}

/// The bookworm tree with systemd that scripts/install-deps makes, or
/// $CHROOTVM_TEST_DEBIAN_ROOT.
fn debian_root() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("CHROOTVM_TEST_DEBIAN_ROOT") {
        return path.into();
    }
    let root = std::path::Path::new(&std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/chrootvm/bookworm-systemd");
    assert!(
        root.join("lib/systemd/systemd").exists(),
        "no Debian tree at {}: run scripts/install-deps (make check does)",
        root.display()
    );
    root
}

/// A Debian system under systemd boots to poweroff.target over an
/// overlay and powers the VM off itself; the same tree runs a command.
#[test]
fn debian_with_systemd_boots_and_runs_commands() {
    let root = debian_root();
    let mut command = chrootvm_command();
    command
        .args(["--overlay", "--append", "systemd.unit=poweroff.target"])
        .args(["--init", "/lib/systemd/systemd"])
        .arg(&root);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0),
        "systemd should power the VM off, and chrootvm exit 0",
    );
    vm.check(
        vm.output().contains("systemd[1]: systemd ")
            && vm.output().contains("Reached target poweroff.target"),
        "systemd should run as PID 1 and reach poweroff.target",
    );
    let mut command = tests::chrootvm_quiet();
    command.arg(&root).args(["apt-get", "--version"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.stdout.starts_with("apt 2."),
        "apt-get --version should run in the tree",
    );
}

/// Under `init.debug` each step has its start and duration, and one line
/// before the hand-over sums init's time and its module initialisation,
/// and gives init's own user-mode CPU time, a part of the total.
#[test]
fn debug_boot_prints_a_profile() {
    let scratch = Scratch::new("profile");
    let root = scratch.dir("root");
    busybox_root(&root);
    script(&root.join("bye.sh"), "poweroff -f\n");
    let mut command = chrootvm_command();
    command.arg("--init").arg("/bye.sh").arg(&root);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "the VM should boot and power off");
    let output = vm.output();
    let steps: Vec<&str> = output.lines().filter(|l| l.contains("] step ")).collect();
    vm.check(
        steps.len() >= 6
            && steps
                .iter()
                .any(|l| l.contains("step modules: started at ")),
        "every step should have a profile line",
    );
    let total = output
        .lines()
        .find_map(|l| l.split("init took ").nth(1))
        .unwrap_or_default();
    let numbers: Vec<u64> = total
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    vm.check(
        numbers.len() == 5
            && numbers[0] >= numbers[1] + numbers[2] + numbers[3] - 2
            && numbers[1] > 0
            && numbers[4] <= numbers[0],
        &format!("the summary should add up: {numbers:?}"),
    );
}
