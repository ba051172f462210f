//! The qemu command line and the kernel command line, built as data from a
//! [`Machine`], one `[flag, value]` pair per option, so tests check them
//! without starting anything.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cli::Share;

/// The qemu binary for this host (x86-64 only for now: init's runtime is).
pub const QEMU: &str = "qemu-system-x86_64";
/// The Debian package that has it.
pub const QEMU_PACKAGE: &str = "qemu-system-x86";

/// The virtiofs tag of the root, as osbuild names it.
pub const ROOT_TAG: &str = "rootfs";

/// How the guest is executed, once decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Hardware virtualization.
    Kvm,
    /// Software emulation.
    Tcg,
}

/// A virtiofs device: a tag and the vhost-user socket of its daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsDevice {
    /// The tag the guest mounts.
    pub tag: String,
    /// virtiofsd's socket.
    pub socket: PathBuf,
}

/// Everything qemu needs to know.
#[derive(Clone, Debug)]
pub struct Machine<'a> {
    /// qemu's binary.
    pub qemu: &'a Path,
    /// KVM or TCG.
    pub engine: Engine,
    /// Guest memory, as qemu takes it (`2G`).
    pub memory: &'a str,
    /// Guest CPUs.
    pub cpus: u32,
    /// The kernel image.
    pub kernel: &'a Path,
    /// The initramfs (a path qemu can open).
    pub initrd: &'a Path,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// The root first, then the shares.
    pub filesystems: &'a [FsDevice],
    /// The socket chrootvm listens on for init's status port.
    pub status: &'a Path,
}

/// qemu's argument vector.
pub fn argv(machine: &Machine<'_>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![machine.qemu.into()];
    let mut pair = |flag: &str, value: OsString| argv.extend([flag.into(), value]);

    // q35 rather than pc: its PCI interrupt routing skips the ACPI link
    // devices (LNKx) pc evaluates per device, ~300 ms under TCG.
    pair("-machine", "q35,memory-backend=mem".into());
    match machine.engine {
        Engine::Kvm => {
            pair("-accel", "kvm".into());
            pair("-cpu", "host".into());
        }
        Engine::Tcg => {
            pair("-accel", "tcg".into());
            pair("-cpu", "max".into());
        }
    }
    pair("-m", machine.memory.into());
    pair("-smp", machine.cpus.to_string().into());
    // vhost-user devices need guest memory virtiofsd can map: a shared memfd.
    pair(
        "-object",
        format!(
            "memory-backend-memfd,id=mem,size={},share=on",
            machine.memory
        )
        .into(),
    );
    pair("-kernel", machine.kernel.into());
    pair("-initrd", machine.initrd.into());
    pair("-append", machine.cmdline.into());
    for (i, fs) in machine.filesystems.iter().enumerate() {
        pair("-chardev", chardev_socket(&format!("fs{i}"), &fs.socket));
        pair(
            "-device",
            format!("vhost-user-fs-pci,chardev=fs{i},tag={}", fs.tag).into(),
        );
    }
    // The status port, after every other chardev: once qemu connects here,
    // it has connected to all virtiofsd sockets too.
    pair("-device", "virtio-serial-pci,id=ports".into());
    pair("-chardev", chardev_socket("status", machine.status));
    pair(
        "-device",
        format!(
            "virtserialport,bus=ports.0,chardev=status,name={}",
            port_name()
        )
        .into(),
    );
    // The console on chrootvm's terminal; Ctrl-C goes to the guest. No
    // default devices, config files, window or monitor.
    pair("-chardev", "stdio,id=console,signal=off".into());
    pair("-serial", "chardev:console".into());
    argv.extend(
        [
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]
        .map(OsString::from),
    );
    argv
}

fn port_name() -> String {
    String::from_utf8_lossy(init::status::PORT_NAME).into_owned()
}

/// `socket,id=ID,path=PATH`, with commas in the path doubled as qemu's
/// option syntax requires.
fn chardev_socket(id: &str, path: &Path) -> OsString {
    let mut value = OsString::from(format!("socket,id={id},path="));
    value.push(escape_commas(path));
    value
}

fn escape_commas(path: &Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// The kernel command line: console, no reboot loop, the root as osbuild
/// passes it (`root=rootfs rootfstype=virtiofs ro`), the shares, the
/// program for PID 1, the status port, verbosity, then the user's additions
/// (the last occurrence of a key wins).
pub fn kernel_cmdline(init: &str, shares: &[Share], debug: bool, append: &[String]) -> String {
    let mut words = vec![
        // The serial console; `panic=-1` reboots at once on a panic, and
        // qemu's -no-reboot turns that into an exit.
        "console=ttyS0".to_string(),
        "panic=-1".to_string(),
        format!("root={ROOT_TAG}"),
        "rootfstype=virtiofs".to_string(),
        "ro".to_string(),
    ];
    for share in shares {
        let key = if share.read_only { "mount-ro" } else { "mount" };
        words.push(format!("{key}={}", share.tag));
    }
    words.push(format!("init={}", quote(init)));
    words.push("init.status".to_string());
    words.push(if debug { "init.debug" } else { "quiet" }.to_string());
    words.extend(append.iter().cloned());
    words.join(" ")
}

/// Quotes a value the way the kernel's parser groups words.
fn quote(value: &str) -> String {
    if value.contains(char::is_whitespace) {
        format!("\"{value}\"")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine_argv(engine: Engine) -> Vec<String> {
        let filesystems = [
            FsDevice {
                tag: "rootfs".into(),
                socket: "/t/fs0.sock".into(),
            },
            FsDevice {
                tag: "mnt0".into(),
                socket: "/t/a,b.sock".into(),
            },
        ];
        let machine = Machine {
            qemu: Path::new("/usr/bin/qemu-system-x86_64"),
            engine,
            memory: "2G",
            cpus: 2,
            kernel: Path::new("/boot/vmlinuz"),
            initrd: Path::new("/proc/self/fd/5"),
            cmdline: "console=ttyS0",
            filesystems: &filesystems,
            status: Path::new("/t/status.sock"),
        };
        argv(&machine)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn value_of<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
        argv.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn shared_memory_for_vhost_user() {
        let argv = machine_argv(Engine::Tcg);
        assert_eq!(
            value_of(&argv, "-object"),
            ["memory-backend-memfd,id=mem,size=2G,share=on"]
        );
        assert_eq!(value_of(&argv, "-machine"), ["q35,memory-backend=mem"]);
    }

    #[test]
    fn engines() {
        let tcg = machine_argv(Engine::Tcg);
        assert_eq!(value_of(&tcg, "-accel"), ["tcg"]);
        let kvm = machine_argv(Engine::Kvm);
        assert_eq!(value_of(&kvm, "-accel"), ["kvm"]);
        assert_eq!(value_of(&kvm, "-cpu"), ["host"]);
    }

    #[test]
    fn one_vhost_user_fs_device_per_share_and_commas_escaped() {
        let argv = machine_argv(Engine::Tcg);
        assert_eq!(
            value_of(&argv, "-device")[..2],
            [
                "vhost-user-fs-pci,chardev=fs0,tag=rootfs",
                "vhost-user-fs-pci,chardev=fs1,tag=mnt0"
            ]
        );
        let chardevs = value_of(&argv, "-chardev");
        assert_eq!(chardevs[1], "socket,id=fs1,path=/t/a,,b.sock");
        // The status chardev comes after every virtiofs one.
        assert_eq!(chardevs[2], "socket,id=status,path=/t/status.sock");
    }

    #[test]
    fn never_reboots_and_has_nothing_by_default() {
        let argv = machine_argv(Engine::Tcg);
        for flag in ["-no-reboot", "-nodefaults", "-no-user-config"] {
            assert!(argv.iter().any(|a| a == flag), "{flag}");
        }
        assert!(
            value_of(&argv, "-device")
                .contains(&"virtserialport,bus=ports.0,chardev=status,name=init.status")
        );
    }

    #[test]
    fn osbuild_style_command_line() {
        let shares = [
            Share {
                tag: "mnt0".into(),
                path: "/a".into(),
                read_only: false,
            },
            Share {
                tag: "ro".into(),
                path: "/b".into(),
                read_only: true,
            },
        ];
        let line = kernel_cmdline("/run/mnt/mnt0/vm.py", &shares, false, &["x=1".into()]);
        assert_eq!(
            line,
            "console=ttyS0 panic=-1 root=rootfs rootfstype=virtiofs ro mount=mnt0 mount-ro=ro init=/run/mnt/mnt0/vm.py init.status quiet x=1"
        );
        // What init parses out of it.
        let parsed = init::cmdline::Cmdline::parse(line.as_bytes());
        assert_eq!(parsed.root(), init::cmdline::Root::Virtiofs(b"rootfs"));
        assert!(parsed.status);
        assert_eq!(parsed.shares().len(), 2);
    }

    #[test]
    fn debug_and_quoting() {
        let line = kernel_cmdline("/my init", &[], true, &[]);
        assert!(
            line.contains("init=\"/my init\" init.status init.debug"),
            "{line}"
        );
        let parsed = init::cmdline::Cmdline::parse(line.as_bytes());
        assert_eq!(parsed.init, Some(&b"/my init"[..]));
    }
}
