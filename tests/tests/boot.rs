//! Issue 2: boot a directory as a VM, end to end. Each test boots Debian's
//! cloud kernel under TCG with the legacy C virtiofsd over a busybox root
//! made here, and checks something only the feature under test produces.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tests::{
    Scratch, Stop, busybox_root, chrootvm_command, run, script, start_reaped, stop_when_ready,
    temp_dirs_of,
};

const SUBREAPER: &str = env!("CARGO_BIN_EXE_subreaper");

/// osbuild's command line, `rootfstype=virtiofs root=rootfs ro mount=mnt0
/// init=/run/mnt/mnt0/<script>`: the script runs as PID 1 from the share.
#[test]
fn osbuild_command_line_runs_a_script_from_the_share_as_pid_1() {
    let scratch = Scratch::new("osbuild");
    let root = scratch.dir("root");
    busybox_root(&root);
    let share = scratch.dir("share");
    script(
        &share.join("vm.sh"),
        "echo \"PID=$$ ARGV0=$0\"\necho \"CMDLINE=$(cat /proc/cmdline)\"\npoweroff -f\n",
    );
    let mut command = chrootvm_command();
    command
        .arg("--mount")
        .arg("mnt0")
        .arg(&share)
        .arg("--init")
        .arg("/run/mnt/mnt0/vm.sh")
        .arg(&root);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0),
        "chrootvm should exit 0 after the script powers off",
    );
    vm.check(
        vm.stdout.contains("PID=1 ARGV0=/run/mnt/mnt0/vm.sh"),
        "the share's script should run as PID 1",
    );
    let cmdline = vm
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("CMDLINE="))
        .unwrap_or_default()
        .to_string();
    vm.check(
        cmdline.contains("root=rootfs rootfstype=virtiofs ro mount=mnt0 init=/run/mnt/mnt0/vm.sh"),
        "the guest should have booted with osbuild's parameters",
    );
}

/// `rootfs=TAG`, osbuild/initrd's own key, also selects the root.
#[test]
fn rootfs_key_selects_the_root() {
    let scratch = Scratch::new("rootfs-key");
    let root = scratch.dir("root");
    busybox_root(&root);
    fs::write(root.join("marker"), "root-tree\n").unwrap();
    let share = scratch.dir("share");
    script(
        &share.join("probe.sh"),
        "echo \"SEEN=$(cat /marker)\"\npoweroff -f\n",
    );
    // The share is offered as the root by rootfs=, the last key winning
    // over root=rootfs; /marker then comes from the share, not the root.
    fs::write(share.join("marker"), "share-tree\n").unwrap();
    fs::create_dir_all(share.join("bin")).unwrap();
    fs::copy(root.join("bin/busybox"), share.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "poweroff"] {
        std::os::unix::fs::symlink("busybox", share.join("bin").join(applet)).unwrap();
    }
    for dir in ["dev", "proc", "sys", "run", "tmp"] {
        fs::create_dir_all(share.join(dir)).unwrap();
    }
    let mut command = chrootvm_command();
    command
        .arg("--mount-ro")
        .arg("alt")
        .arg(&share)
        .arg("--append")
        .arg("rootfs=alt")
        .arg("--init")
        .arg("/probe.sh")
        .arg(&root);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "chrootvm should exit 0");
    vm.check(
        vm.stdout.contains("SEEN=share-tree"),
        "rootfs=alt should make the share the root",
    );
}

/// The root is read-only; a `mount-ro` share is read-only; a `mount` share
/// is writable and what the guest writes appears on the host.
#[test]
fn root_and_read_only_shares_refuse_writes_and_writable_shares_keep_them() {
    let scratch = Scratch::new("modes");
    let root = scratch.dir("root");
    busybox_root(&root);
    let rw = scratch.dir("rw");
    let ro = scratch.dir("ro");
    fs::write(ro.join("keep"), "original\n").unwrap();
    let tools = scratch.dir("tools");
    script(
        &tools.join("check.sh"),
        "touch /root-write 2>/dev/null && echo ROOT=writable || echo ROOT=read-only\n\
         echo changed > /run/mnt/ro/keep 2>/dev/null && echo RO=writable || echo RO=read-only\n\
         echo from-the-guest > /run/mnt/rw/written && echo RW=writable || echo RW=read-only\n\
         sync\npoweroff -f\n",
    );
    let mut command = chrootvm_command();
    command
        .arg("--mount")
        .arg("rw")
        .arg(&rw)
        .arg("--mount-ro")
        .arg("ro")
        .arg(&ro)
        .arg("--mount-ro")
        .arg("tools")
        .arg(&tools)
        .arg("--init")
        .arg("/run/mnt/tools/check.sh")
        .arg(&root);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "chrootvm should exit 0");
    for line in ["ROOT=read-only", "RO=read-only", "RW=writable"] {
        vm.check(vm.stdout.contains(line), &format!("expected {line}"));
    }
    assert!(!root.join("root-write").exists(), "the root took a write");
    assert_eq!(fs::read_to_string(ro.join("keep")).unwrap(), "original\n");
    assert_eq!(
        fs::read_to_string(rw.join("written")).unwrap(),
        "from-the-guest\n"
    );
}

/// A missing root tag: the VM powers off with init's error line and
/// chrootvm exits non-zero (123, the VM did not boot) well within the
/// timeout.
#[test]
fn missing_root_tag_powers_off_with_inits_error() {
    let scratch = Scratch::new("missing-tag");
    let root = scratch.dir("root");
    busybox_root(&root);
    let mut command = chrootvm_command();
    command.arg("--append").arg("rootfs=nosuchtag").arg(&root);
    let vm = run(command);
    vm.check(
        vm.code() == Some(123),
        "chrootvm should exit 123 (the VM did not boot)",
    );
    vm.check(
        vm.output().contains(
            "init: cannot mount virtiofs tag \"nosuchtag\" on /sysroot: Invalid argument (",
        ),
        "init's error line should name the tag",
    );
    vm.check(
        vm.stderr.contains("chrootvm: the VM did not boot"),
        "chrootvm should say the VM did not boot",
    );
    vm.check(
        vm.elapsed < Duration::from_secs(60),
        "the failure should come well within the 300 s timeout",
    );
}

/// Modules were loaded in dependency order: every module in /proc/modules
/// was loaded after the modules it depends on (modules.dep), and init's
/// debug log shows the numbered order.
///
/// The default machine (microvm) has its devices on virtio-mmio.
#[test]
fn modules_load_in_dependency_order() {
    modules_load_in_order_on(None, "virtio_mmio");
}

/// The same on q35 (issue 17's old shape), where the transport is PCI.
#[test]
fn modules_load_in_dependency_order_on_q35() {
    modules_load_in_order_on(Some("q35"), "virtio_pci");
}

fn modules_load_in_order_on(machine: Option<&str>, transport: &str) {
    let scratch = Scratch::new("modules");
    let root = scratch.dir("root");
    busybox_root(&root);
    script(
        &root.join("mods.sh"),
        "echo MODULES-BEGIN\ncat /proc/modules\necho MODULES-END\npoweroff -f\n",
    );
    let mut command = chrootvm_command();
    if let Some(machine) = machine {
        command.arg("--machine").arg(machine);
    }
    command.arg("--init").arg("/mods.sh").arg(&root);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "chrootvm should exit 0");

    let listing: Vec<&str> = vm
        .stdout
        .lines()
        .skip_while(|l| !l.contains("MODULES-BEGIN"))
        .skip(1)
        .take_while(|l| !l.contains("MODULES-END"))
        // The console carries the kernel's messages too ("[    1.9] ...").
        .filter(|l| !l.trim_start().starts_with('['))
        .collect();
    // /proc/modules lists the most recently loaded module first.
    let loaded: Vec<String> = listing
        .iter()
        .rev()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for needed in [
        "virtio_ring",
        "virtio",
        transport,
        "fuse",
        "virtiofs",
        "virtio_console",
    ] {
        vm.check(
            loaded.iter().any(|m| m == needed),
            &format!("{needed} should be loaded"),
        );
    }
    let position: HashMap<&str, usize> = loaded
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let deps = fs::read_to_string(tests::moddir().join("modules.dep")).unwrap();
    let name = |path: &str| {
        path.rsplit('/')
            .next()
            .unwrap_or(path)
            .trim_end_matches(".ko")
            .replace('-', "_")
    };
    for line in deps.lines() {
        let Some((module, needs)) = line.split_once(':') else {
            continue;
        };
        let Some(&at) = position.get(name(module).as_str()) else {
            continue;
        };
        for dep in needs.split_whitespace() {
            let dep = name(dep);
            let dep_at = position.get(dep.as_str()).copied();
            vm.check(
                dep_at.is_some_and(|d| d < at),
                &format!("{} needs {dep}, which must load first", name(module)),
            );
        }
    }
    // init's own log ("loaded 004-virtio_pci.ko in 312 us"), same order.
    let names: Vec<String> = vm
        .output()
        .lines()
        .filter_map(|l| l.split("] loaded ").nth(1))
        .filter_map(|rest| rest.split_once(".ko in ").map(|(file, _)| file))
        .filter_map(|file| file.get(4..))
        .map(|stem| stem.replace('-', "_"))
        .collect();
    vm.check(
        names == loaded,
        &format!("init's log order {names:?} should be the kernel's {loaded:?}"),
    );
}

/// After a normal run nothing is left: no process chrootvm started (qemu,
/// virtiofsd, anything they started), no temp directory.
#[test]
fn normal_run_leaves_nothing_behind() {
    let scratch = Scratch::new("leftovers-normal");
    let root = scratch.dir("root");
    busybox_root(&root);
    script(&root.join("bye.sh"), "poweroff -f\n");
    let mut command = chrootvm_command();
    command.arg("--init").arg("/bye.sh").arg(&root);
    let vm = start_reaped(SUBREAPER, &command);
    let pid = vm.pid;
    let (vm, left) = vm.finish();
    vm.check(vm.code() == Some(0), "chrootvm should exit 0");
    vm.check(left.is_empty(), &format!("left running: {left:?}"));
    let dirs = temp_dirs_of(pid);
    vm.check(
        dirs.is_empty(),
        &format!("temp directories left behind: {dirs:?}"),
    );
}

/// SIGTERM mid-boot: chrootvm exits 143 and kills qemu and virtiofsd; its
/// temp directory is gone.
#[test]
fn sigterm_mid_boot_leaves_nothing_behind() {
    stop_mid_boot("sigterm", Signal::TERM, 143);
}

/// SIGKILL of chrootvm itself mid-boot: qemu and virtiofsd die with it.
#[test]
fn sigkill_of_chrootvm_takes_its_helpers_along() {
    stop_mid_boot("sigkill", Signal::KILL, 128 + 9);
}

/// Mid-boot: the kernel has started (its banner is on the console, which
/// --debug shows on stderr) and init has not handed over.
fn stop_mid_boot(name: &str, signal: Signal, code: i32) {
    let scratch = Scratch::new(name);
    let root = scratch.dir("root");
    busybox_root(&root);
    script(&root.join("slow.sh"), "sleep 1000\n");
    let mut command = chrootvm_command();
    command.arg("--init").arg("/slow.sh").arg(&root);
    stop_when_ready(
        SUBREAPER,
        &command,
        "Linux version",
        false,
        &Stop { signal, code },
    );
}

/// A VM started the way osbuild/initrd's own runner starts one, without
/// chrootvm (which always names a root): one C virtiofsd per shared
/// directory, qemu with the given kernel command line, the serial console
/// on qemu's stdout. Everything it starts is in one process group, killed
/// and reaped when it is dropped.
struct HandVm {
    children: Vec<std::process::Child>,
    group: Option<rustix::process::Pid>,
}

impl HandVm {
    /// The legacy C daemon, as scripts/install-deps installs it.
    const VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";

    /// Boots `image` with `append`, sharing each (tag, directory) in
    /// `shares`, and returns the console when qemu exits (within 300 s).
    fn boot(scratch: &Scratch, image: &Path, append: &str, shares: &[(&str, &Path)]) -> String {
        let mut vm = HandVm {
            children: Vec::new(),
            group: None,
        };
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-machine", "q35,memory-backend=mem"])
            .args(["-accel", "tcg", "-cpu", "max", "-m", "1G", "-smp", "1"])
            .args(["-object", "memory-backend-memfd,id=mem,size=1G,share=on"])
            .arg("-kernel")
            .arg(tests::kernel())
            .arg("-initrd")
            .arg(image)
            .args(["-append", append]);
        for (i, (tag, dir)) in shares.iter().enumerate() {
            let socket = scratch.path().join(format!("{tag}.sock"));
            let mut daemon = Command::new(Self::VIRTIOFSD);
            daemon
                .arg(format!("--socket-path={}", socket.display()))
                .arg("-o")
                .arg(format!("source={}", dir.display()))
                .args(["-o", "cache=auto"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            vm.spawn(daemon);
            vm.wait_for_socket(&socket);
            qemu.arg("-chardev")
                .arg(format!("socket,id=fs{i},path={}", socket.display()))
                .arg("-device")
                .arg(format!("vhost-user-fs-pci,chardev=fs{i},tag={tag}"));
        }
        qemu.args(["-chardev", "stdio,id=console,signal=off"])
            .args(["-serial", "chardev:console"])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .arg("-no-reboot");
        eprintln!("running {qemu:?}");
        qemu.stdout(Stdio::piped());
        let at = vm.spawn(qemu);
        let mut stdout = vm.children[at].stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut console = String::new();
            let _ = stdout.read_to_string(&mut console);
            console
        });
        // Under a deadline: a VM that hangs is killed with its group.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut hung = false;
        while matches!(vm.children[at].try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                hung = true;
                drop(vm);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let console = reader.join().unwrap();
        assert!(!hung, "qemu did not exit within 300 s:\n{console}");
        console
    }

    /// Starts `command` in the VM's process group (the first one makes it).
    fn spawn(&mut self, mut command: Command) -> usize {
        let group = self.group.map_or(0, |pid| pid.as_raw_nonzero().get());
        command.process_group(group).stdin(Stdio::null());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        if self.group.is_none() {
            self.group = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap());
        }
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits up to 10 s for a virtiofsd's socket; fails if it exits.
    fn wait_for_socket(&mut self, socket: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            let daemon = self.children.last_mut().unwrap();
            if let Ok(Some(status)) = daemon.try_wait() {
                panic!("virtiofsd for {} exited: {status}", socket.display());
            }
            assert!(
                Instant::now() < deadline,
                "no virtiofsd socket {} after 10 s",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for HandVm {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            // ESRCH: everything has exited already.
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) {
                assert!(Instant::now() < deadline, "a helper survived SIGKILL");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Issue 12: osbuild/initrd's own runner passes no root at all
/// (`console=ttyS0 quiet init=/run/mnt/test/init.sh mount-ro=test`) and
/// shares the root as tag `rootfs`. init mounts that tag as root, mounts
/// the read-only share, and runs the share's script as PID 1 there.
#[test]
fn osbuild_runner_without_a_root_parameter_gets_tag_rootfs() {
    let scratch = Scratch::new("osbuild-runner");
    let root = scratch.dir("root");
    busybox_root(&root);
    fs::write(root.join("in-root"), "root-tree\n").unwrap();
    let share = scratch.dir("share");
    fs::write(share.join("in-share"), "share-tree\n").unwrap();
    script(
        &share.join("init.sh"),
        "echo \"PID=$$ ROOT=$(cat /in-root) SHARE=$(cat /run/mnt/test/in-share)\"\n\
         touch /run/mnt/test/w 2>/dev/null && echo SHARE=writable || echo SHARE=read-only\n\
         grep -E '^rootfs / |^test /run/mnt/test ' /proc/mounts\n\
         poweroff -f\n",
    );
    let image = scratch.path().join("image.cpio");
    let status = Command::new(tests::bin("mkinitrd"))
        .arg("--moddir")
        .arg(tests::moddir())
        .arg("-o")
        .arg(&image)
        .status()
        .unwrap();
    assert!(status.success(), "mkinitrd should pack the image");
    let console = HandVm::boot(
        &scratch,
        &image,
        "console=ttyS0 quiet init=/run/mnt/test/init.sh mount-ro=test",
        &[("rootfs", &root), ("test", &share)],
    );
    for line in [
        "PID=1 ROOT=root-tree SHARE=share-tree",
        "SHARE=read-only",
        "rootfs / virtiofs ro,",
        "test /run/mnt/test virtiofs ro,",
    ] {
        assert!(
            console.contains(line),
            "the console should show {line:?}:\n{console}"
        );
    }
    assert!(
        !share.join("w").exists(),
        "the read-only share took a write"
    );
}

/// Issue 13: more shares than init takes stop the boot with one line
/// naming the limit (28: the PCI slots qemu's q35 bus has left), where
/// init used to mount the first 16 and drop the rest quietly.
#[test]
fn more_shares_than_init_takes_is_a_fatal_error() {
    let scratch = Scratch::new("too-many-shares");
    let root = scratch.dir("root");
    busybox_root(&root);
    let shares: Vec<String> = (0..30).map(|i| format!("mount=t{i}")).collect();
    let mut command = chrootvm_command();
    command
        .arg("--append")
        .arg(shares.join(" "))
        .arg(&root)
        .arg("true");
    let vm = run(command);
    vm.check(
        vm.code() == Some(123),
        "chrootvm should exit 123 (the VM did not boot)",
    );
    vm.check(
        vm.output()
            .contains("init: cannot mount 30 shares: 2 more than the 28 init takes ("),
        "init should refuse the shares it cannot take, naming the limit",
    );
}
