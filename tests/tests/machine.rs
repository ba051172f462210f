//! Issue 17: the VM's shape. The default is qemu's microvm booting the
//! kernel through PVH; `--machine q35` keeps the PCI machine, and a kernel
//! that lacks what microvm needs boots q35 without being asked.

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tests::{Scratch, busybox_root, chrootvm_command, kernel, moddir, release, run, script};

/// The machine qemu was started with, from `--debug`'s command line.
fn machine_of(output: &str) -> Option<&str> {
    let line = output
        .lines()
        .find(|l| l.starts_with("chrootvm: running ") && l.contains("qemu-system"))?;
    line.split(" -machine ").nth(1)?.split([',', ' ']).next()
}

/// The default boots microvm, and the guest's clocks are right: the wall
/// clock comes from the RTC, the TSC is the clocksource, and it runs at
/// the rate chrootvm told the kernel under TCG: over one interval between
/// two ticks of the RTC (the host's time, counted by qemu), the guest's
/// uptime advances as many seconds, give or take the shell's polling.
#[test]
fn microvm_is_the_default_and_keeps_time() {
    let scratch = Scratch::new("machine-default");
    let root = scratch.dir("root");
    busybox_root(&root);
    let measure = "date +%s; cat /sys/devices/system/clocksource/clocksource0/current_clocksource
rtc() { cat /sys/class/rtc/rtc0/since_epoch; }
edge() { r=$(rtc); while [ \"$(rtc)\" = \"$r\" ]; do :; done; }
edge; r0=$(rtc); u0=$(cut -d' ' -f1 /proc/uptime)
sleep 3; edge; r1=$(rtc); u1=$(cut -d' ' -f1 /proc/uptime)
echo $((r1 - r0)) $u0 $u1";
    let mut command = chrootvm_command();
    command.arg(&root).args(["sh", "-c", measure]);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "chrootvm should exit 0");
    vm.check(
        machine_of(&vm.stderr) == Some("microvm"),
        "the default machine should be microvm",
    );
    let mut lines = vm.stdout.lines();
    let guest: u64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let host = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    vm.check(
        host.abs_diff(guest) < 120,
        "the guest's wall clock should be the host's (the RTC)",
    );
    // The TSC, as the early clocksource or the final one: which of the
    // two it is at this moment depends on how far the kernel got with
    // registering the final one (a loaded host showed tsc-early); jiffies
    // would be the failure.
    vm.check(
        matches!(lines.next(), Some("tsc" | "tsc-early")),
        "the guest should keep time with the TSC",
    );
    let numbers: Vec<f64> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    vm.check(
        numbers.len() == 3 && (numbers[2] - numbers[1] - numbers[0]).abs() < 0.5,
        &format!("the guest's uptime should advance as the RTC does: {numbers:?}"),
    );
}

/// `--machine q35`: a command with a share, its output and status, and a
/// hand-over with a discarded-writes root, on PCI devices.
#[test]
fn q35_runs_a_command_and_hands_over() {
    let scratch = Scratch::new("machine-q35");
    let root = scratch.dir("root");
    busybox_root(&root);
    let share = scratch.dir("share");
    fs::write(share.join("f"), "from the share\n").unwrap();
    let mut command = chrootvm_command();
    command
        .args(["--machine", "q35", "--mount-ro", "s"])
        .arg(&share)
        .arg(&root)
        .args(["sh", "-c", "cat /run/mnt/s/f; exit 3"]);
    let vm = run(command);
    vm.check(vm.code() == Some(3), "chrootvm should exit 3");
    vm.check(vm.stdout == "from the share\n", "the share should be read");
    vm.check(
        machine_of(&vm.stderr) == Some("q35"),
        "--machine q35 should boot q35",
    );
    vm.check(
        vm.stderr.contains("vhost-user-fs-pci,"),
        "q35's devices should be on PCI",
    );

    script(
        &root.join("write.sh"),
        "echo x > /written && echo WROTE; poweroff -f\n",
    );
    let mut command = chrootvm_command();
    command
        .args(["--machine", "q35", "--overlay", "--init", "/write.sh"])
        .arg(&root);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "chrootvm should exit 0");
    vm.check(
        vm.output().contains("WROTE"),
        "the overlay should take a write",
    );
    vm.check(
        !root.join("written").exists(),
        "the write should not reach the root",
    );
}

/// A module tree like the test kernel's but without virtio_mmio, in a
/// directory named after the release (chrootvm matches the two).
fn tree_without_virtio_mmio(scratch: &Scratch) -> std::path::PathBuf {
    let source = moddir();
    let tree = scratch.dir("modules").join(release(&kernel()));
    fs::create_dir_all(&tree).unwrap();
    // The indexes that name virtio_mmio are rewritten without it; the rest
    // (the modules themselves included) are links to the real tree.
    let rewritten = ["modules.dep", "modules.alias"];
    for entry in fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if rewritten.iter().any(|r| name == *r) {
            let text = fs::read_to_string(entry.path()).unwrap();
            let kept: String = text
                .lines()
                .filter(|line| !line.contains("virtio_mmio"))
                .map(|line| format!("{line}\n"))
                .collect();
            fs::write(tree.join(&name), kept).unwrap();
        } else {
            std::os::unix::fs::symlink(entry.path(), tree.join(&name)).unwrap();
        }
    }
    tree
}

/// A kernel without virtio_mmio boots q35 without being asked, and says
/// why under --debug; `--machine microvm` refuses it with the reason.
#[test]
fn a_kernel_without_virtio_mmio_falls_back_to_q35() {
    let scratch = Scratch::new("machine-fallback");
    let root = scratch.dir("root");
    busybox_root(&root);
    let tree = tree_without_virtio_mmio(&scratch);
    let mut command = chrootvm_command();
    command
        .arg("--moddir")
        .arg(&tree)
        .arg(&root)
        .args(["echo", "booted"]);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "chrootvm should exit 0");
    vm.check(vm.stdout == "booted\n", "the command should run");
    vm.check(machine_of(&vm.stderr) == Some("q35"), "it should boot q35");
    vm.check(
        vm.stderr
            .contains("chrootvm: booting q35, not microvm: the kernel has no virtio_mmio driver"),
        "--debug should say why",
    );

    let mut command = chrootvm_command();
    command
        .args(["--machine", "microvm", "--moddir"])
        .arg(&tree)
        .arg(&root)
        .arg("true");
    let vm = run(command);
    vm.check(vm.code() == Some(125), "chrootvm should exit 125");
    vm.check(
        vm.stderr.contains(
            "chrootvm: cannot boot a microvm: the kernel has no virtio_mmio driver (use --machine q35)",
        ),
        "the error should say what is missing",
    );
}

/// The uncompressed kernel is unpacked once, into the cache.
#[test]
fn the_vmlinux_is_cached() {
    let scratch = Scratch::new("machine-cache");
    let root = scratch.dir("root");
    busybox_root(&root);
    let cache = scratch.dir("cache");
    for _ in 0..2 {
        let mut command = chrootvm_command();
        command.env("XDG_CACHE_HOME", &cache).arg(&root).arg("true");
        let vm = run(command);
        vm.check(vm.code() == Some(0), "chrootvm should exit 0");
    }
    let kept: Vec<_> = fs::read_dir(cache.join("chrootvm"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        kept.len() == 1 && kept[0].starts_with("vmlinux-"),
        "one vmlinux should be cached: {kept:?}"
    );
    let elf = fs::read(Path::new(&cache).join("chrootvm").join(&kept[0])).unwrap();
    assert!(elf.starts_with(b"\x7fELF"));
}
