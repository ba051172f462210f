//! The qemu command line and the kernel command line, built as data from a
//! [`Machine`], one `[flag, value]` pair per option, so tests check them
//! without starting anything.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cli::{Forward, Share, Writes};

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

/// A shared directory as qemu attaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsDevice {
    /// virtiofs: a vhost-user device served by a virtiofsd on `socket`.
    Virtiofs {
        /// The tag the guest mounts.
        tag: String,
        /// virtiofsd's socket.
        socket: PathBuf,
    },
    /// 9p: served by qemu itself (hosts without virtiofsd).
    NineP {
        /// The tag the guest mounts.
        tag: String,
        /// The host directory.
        dir: PathBuf,
        /// Refuse writes.
        read_only: bool,
    },
}

/// A virtio-serial port connected to a socket chrootvm listens on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// The name the guest finds it by.
    pub name: String,
    /// chrootvm's socket.
    pub socket: PathBuf,
}

/// The machine qemu emulates (issue 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// qemu's microvm: no PCI, no firmware detour; virtio devices on
    /// virtio-mmio transports, which the kernel finds in the ACPI tables
    /// (Debian's kernel has no virtio_mmio.device= support). Boots an ELF
    /// kernel through its PVH entry.
    Microvm,
    /// q35 with PCI devices: what any kernel boots.
    Q35,
}

impl Shape {
    /// The name `--machine` takes.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Microvm => "microvm",
            Shape::Q35 => "q35",
        }
    }

    /// The qemu device of a virtio `kind` on this machine's transport.
    fn device(self, kind: &str) -> String {
        match self {
            Shape::Microvm => format!("{kind}-device"),
            Shape::Q35 => format!("{kind}-pci"),
        }
    }

    /// The kernel module of the virtio transport.
    pub fn transport_module(self) -> &'static str {
        match self {
            Shape::Microvm => "virtio_mmio",
            Shape::Q35 => "virtio_pci",
        }
    }
}

/// virtio-mmio transports of qemu's microvm with its second IO-APIC (the
/// default): one per device, the serial ports' included.
pub const MICROVM_TRANSPORTS: usize = 24;

/// Everything qemu needs to know.
#[derive(Clone, Debug)]
pub struct Machine<'a> {
    /// qemu's binary.
    pub qemu: &'a Path,
    /// The machine.
    pub shape: Shape,
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
    /// The root first (when shared), then the shares.
    pub filesystems: &'a [FsDevice],
    /// Raw disk images, in guest order (vda, vdb, ...).
    pub disks: &'a [PathBuf],
    /// The socket of the serial console, which chrootvm relays: it keeps
    /// what the kernel and init print apart from what the user sees.
    pub console: &'a Path,
    /// The virtio-serial ports (the status port first).
    pub ports: &'a [Port],
    /// User-mode networking, with these forwards, or none.
    pub network: Option<&'a [Forward]>,
    /// qemu's gdb stub on this port of 127.0.0.1.
    pub gdb: Option<u16>,
}

/// The guest's side of qemu's user network (slirp's fixed plan): its
/// address, the gateway (which is also the host's 127.0.0.1), the name
/// server slirp answers on, and the interface virtio_net gets.
pub const GUEST_NET: &str = "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3";

/// qemu's argument vector.
pub fn argv(machine: &Machine<'_>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![machine.qemu.into()];
    let mut pair = |flag: &str, value: OsString| argv.extend([flag.into(), value]);

    let shape = machine.shape;
    match shape {
        // q35 rather than pc: its PCI interrupt routing skips the ACPI link
        // devices (LNKx) pc evaluates per device, ~300 ms under TCG.
        Shape::Q35 => pair("-machine", "q35,memory-backend=mem".into()),
        // ACPI describes the virtio-mmio devices to the kernel; the RTC
        // gives it the wall-clock time (qemu leaves it out under KVM by
        // default); qemu's auto-kernel-cmdline would add virtio_mmio.device=
        // for kernels that take it, listing the devices a second time.
        Shape::Microvm => {
            pair(
                "-machine",
                "microvm,memory-backend=mem,acpi=on,rtc=on,auto-kernel-cmdline=off".into(),
            );
            // virtio 1.0 on virtio-mmio (qemu's default there is legacy
            // 0.9, which vhost-user daemons refuse).
            pair("-global", "virtio-mmio.force-legacy=false".into());
        }
    }
    let accel = match machine.engine {
        Engine::Kvm => "kvm",
        Engine::Tcg => "tcg",
    };
    pair("-accel", accel.into());
    pair("-cpu", cpu_model(machine.engine).into());
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
        match fs {
            FsDevice::Virtiofs { tag, socket } => {
                pair("-chardev", chardev_socket(&format!("fs{i}"), socket));
                pair(
                    "-device",
                    format!("{},chardev=fs{i},tag={tag}", shape.device("vhost-user-fs")).into(),
                );
            }
            FsDevice::NineP {
                tag,
                dir,
                read_only,
            } => {
                // passthrough keeps owners and modes as they are on the host;
                // it needs root, so others get mapped-xattr.
                let model = if rustix::process::geteuid().is_root() {
                    "passthrough"
                } else {
                    "mapped-xattr"
                };
                let mut fsdev =
                    OsString::from(format!("local,id=fs{i},security_model={model},path="));
                fsdev.push(escape_commas(dir));
                if *read_only {
                    fsdev.push(",readonly=on");
                }
                pair("-fsdev", fsdev);
                pair(
                    "-device",
                    format!("{},fsdev=fs{i},mount_tag={tag}", shape.device("virtio-9p")).into(),
                );
            }
        }
    }
    // qemu's own user network (slirp): no daemon, no host configuration,
    // no root. Forwards listen on the host's loopback only.
    if let Some(forwards) = machine.network {
        let mut netdev = String::from("user,id=net0");
        for forward in forwards {
            netdev.push_str(&format!(
                ",hostfwd=tcp:127.0.0.1:{}-:{}",
                forward.host, forward.guest
            ));
        }
        pair("-netdev", netdev.into());
        pair(
            "-device",
            format!("{},netdev=net0", shape.device("virtio-net")).into(),
        );
    }
    if let Some(port) = machine.gdb {
        pair("-gdb", format!("tcp:127.0.0.1:{port}").into());
    }
    // Disks: raw, so qemu never guesses a format from the content; the
    // guest names them vda, vdb, ... in this order.
    for (i, disk) in machine.disks.iter().enumerate() {
        let mut drive = OsString::from("if=none,format=raw,cache=writeback,id=disk");
        drive.push(i.to_string());
        drive.push(",file=");
        drive.push(escape_commas(disk));
        pair("-drive", drive);
        pair(
            "-device",
            format!("{},drive=disk{i}", shape.device("virtio-blk")).into(),
        );
    }
    // The ports, after every other chardev: once qemu connects to the last
    // of them, it has connected to all virtiofsd sockets too.
    pair(
        "-device",
        format!("{},id=ports", shape.device("virtio-serial")).into(),
    );
    for (i, port) in machine.ports.iter().enumerate() {
        pair(
            "-chardev",
            chardev_socket(&format!("port{i}"), &port.socket),
        );
        pair(
            "-device",
            format!(
                "virtserialport,bus=ports.0,chardev=port{i},name={}",
                port.name
            )
            .into(),
        );
    }
    pair("-chardev", chardev_socket("console", machine.console));
    pair("-serial", "chardev:console".into());
    // No default devices, config files, window or monitor.
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

/// The CPU model for an engine: the host's own under KVM, qemu's fullest
/// emulation under TCG. The KVM probe (accel.rs) tests the same model.
pub fn cpu_model(engine: Engine) -> &'static str {
    match engine {
        Engine::Kvm => "host",
        Engine::Tcg => "max",
    }
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

/// The host's TSC, for a kernel that cannot calibrate its own (microvm
/// under TCG: see shape.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    /// The frequency in kHz.
    pub khz: u64,
    /// The kernel's CONFIG_HZ, when known.
    pub hz: Option<u64>,
}

/// What goes on the kernel command line.
#[derive(Clone, Copy, Debug)]
pub struct KernelArgs<'a> {
    /// The machine (microvm gets its own parameters).
    pub shape: Shape,
    /// The TSC frequency to tell the kernel.
    pub clock: Option<TscClock>,
    /// How directories are shared: `virtiofs` or `9p`.
    pub fstype: &'a str,
    /// What the root is.
    pub root: RootArg<'a>,
    /// How the root may be written.
    pub writes: Writes,
    /// The shares, mounted at /run/mnt/TAG.
    pub shares: &'a [Share],
    /// `--init PATH`.
    pub handover: Option<&'a str>,
    /// `--debug`.
    pub debug: bool,
    /// `--net`: configure the user network's interface ([`GUEST_NET`]).
    pub net: bool,
    /// `--gdb`: no address randomisation, so symbols match.
    pub gdb: bool,
    /// The kernel announces itself on the console at once, quiet or not
    /// (`loglevel=6`: its notices, "Linux version" first): the boot
    /// watchdog's sign of life under KVM.
    pub kernel_speaks: bool,
    /// `--append`, last.
    pub append: &'a [String],
}

/// The root as the kernel command line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootArg<'a> {
    /// The shared directory with tag [`ROOT_TAG`].
    Shared,
    /// A guest block device (`--root /dev/vda`).
    Device(&'a str),
    /// None: the initramfs stays the root (`--initrd`).
    Initramfs,
}

/// The kernel command line: console, no reboot loop, the root as osbuild
/// passes it (`root=rootfs rootfstype=virtiofs ro`), the shares, the
/// program for PID 1, the status port, verbosity, then the user's additions
/// (the last occurrence of a key wins).
pub fn kernel_cmdline(args: &KernelArgs<'_>) -> String {
    let mut words = vec![
        // The serial console; `panic=-1` reboots at once on a panic, and
        // qemu's -no-reboot turns that into an exit.
        "console=ttyS0".to_string(),
        "panic=-1".to_string(),
    ];
    let root = match args.root {
        RootArg::Shared => Some(ROOT_TAG),
        RootArg::Device(device) => Some(device),
        RootArg::Initramfs => None,
    };
    if let Some(root) = root {
        words.push(format!("root={root}"));
        if args.root == RootArg::Shared {
            words.push(format!("rootfstype={}", args.fstype));
        }
        words.push(
            if args.writes == Writes::Through {
                "rw"
            } else {
                "ro"
            }
            .to_string(),
        );
        if args.writes == Writes::Discarded {
            words.push("rootfs.overlay".to_string());
        }
    } else if args.fstype != "virtiofs" && !args.shares.is_empty() {
        // No root, but init mounts the shares with the root's type.
        words.push(format!("rootfstype={}", args.fstype));
    }
    for share in args.shares {
        let key = if share.read_only { "mount-ro" } else { "mount" };
        words.push(format!("{key}={}", share.tag));
    }
    if let Some(init) = args.handover {
        words.push(format!("init={}", quote(init)));
    }
    if args.net {
        words.push(GUEST_NET.to_string());
    }
    if args.gdb {
        words.push("nokaslr".to_string());
    }
    if let Some(clock) = args.clock {
        // The frequency itself, so the kernel neither calibrates the TSC
        // against the PIT (which fails under TCG on a busy host) nor hangs
        // without a reference clock; `tsc=reliable` because the TCG vCPUs
        // fail the kernel's TSC sync check though they read one counter,
        // and without the TSC microvm's only clock source is jiffies.
        words.push(format!("tsc_early_khz={}", clock.khz));
        words.push("tsc=reliable".to_string());
        if let Some(hz) = clock.hz.filter(|&hz| hz > 0) {
            // Loops per jiffy as the boot CPU derives them from the TSC:
            // the second CPU's own calibration takes 0.4 s under TCG.
            words.push(format!("lpj={}", clock.khz * 1000 / hz));
        }
    }
    if args.shape == Shape::Microvm {
        // The crypto self-tests take 0.4 s under TCG; they check the
        // kernel's own implementations, not the user's data.
        words.push("cryptomgr.notests".to_string());
        // Debian builds with INIT_ON_ALLOC_DEFAULT_ON: every kernel page
        // and slab object zeroed on allocation, a hardening against the
        // kernel's own bugs; pages given to programs are zeroed anyway.
        // 4% of a boot under TCG (bench: 9 paired runs).
        words.push("init_on_alloc=0".to_string());
    }
    words.push("init.status".to_string());
    if args.debug {
        words.push("init.debug".to_string());
    } else {
        words.push("quiet".to_string());
        if args.kernel_speaks {
            words.push(format!("loglevel={NOTICE_LOGLEVEL}"));
        }
    }
    words.extend(args.append.iter().cloned());
    words.join(" ")
}

/// The console log level that prints the kernel's notices (level 5, like
/// "Linux version ...") and above, which `quiet` (4) hides: a few lines,
/// the first as soon as the console is registered.
const NOTICE_LOGLEVEL: u8 = 6;

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
        shape_argv(engine, Shape::Q35)
    }

    fn shape_argv(engine: Engine, shape: Shape) -> Vec<String> {
        let filesystems = [
            FsDevice::Virtiofs {
                tag: "rootfs".into(),
                socket: "/t/fs0.sock".into(),
            },
            FsDevice::Virtiofs {
                tag: "mnt0".into(),
                socket: "/t/a,b.sock".into(),
            },
            FsDevice::NineP {
                tag: "nine".into(),
                dir: "/srv/nine".into(),
                read_only: true,
            },
        ];
        let ports = [
            Port {
                name: "init.status".into(),
                socket: "/t/status.sock".into(),
            },
            Port {
                name: "init.stdout".into(),
                socket: "/t/stdout.sock".into(),
            },
        ];
        let machine = Machine {
            qemu: Path::new("/usr/bin/qemu-system-x86_64"),
            shape,
            engine,
            memory: "2G",
            cpus: 2,
            kernel: Path::new("/boot/vmlinuz"),
            initrd: Path::new("/proc/self/fd/5"),
            cmdline: "console=ttyS0",
            filesystems: &filesystems,
            disks: &["/d/a,b.img".into()],
            console: Path::new("/t/console.sock"),
            ports: &ports,
            network: None,
            gdb: None,
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
    fn microvm_has_the_same_devices_on_virtio_mmio() {
        let q35 = shape_argv(Engine::Tcg, Shape::Q35);
        let microvm = shape_argv(Engine::Tcg, Shape::Microvm);
        assert_eq!(
            value_of(&microvm, "-machine"),
            ["microvm,memory-backend=mem,acpi=on,rtc=on,auto-kernel-cmdline=off"]
        );
        assert_eq!(
            value_of(&microvm, "-global"),
            ["virtio-mmio.force-legacy=false"]
        );
        assert!(value_of(&q35, "-global").is_empty());
        // Every device is there, its transport's variant.
        let devices = value_of(&microvm, "-device");
        let expected: Vec<String> = value_of(&q35, "-device")
            .iter()
            .map(|d| d.replacen("-pci,", "-device,", 1))
            .collect();
        assert_eq!(devices, expected);
        assert!(devices.contains(&"vhost-user-fs-device,chardev=fs0,tag=rootfs"));
        assert!(devices.contains(&"virtio-serial-device,id=ports"));
        assert!(!devices.iter().any(|d| d.contains("-pci")), "{devices:?}");
    }

    #[test]
    fn microvm_under_tcg_is_told_the_tsc_frequency() {
        let line = kernel_cmdline(&KernelArgs {
            shape: Shape::Microvm,
            clock: Some(TscClock {
                khz: 2_600_000,
                hz: Some(250),
            }),
            ..args(&[], Writes::None, None)
        });
        assert!(
            line.contains(" tsc_early_khz=2600000 tsc=reliable lpj=10400000 cryptomgr.notests init_on_alloc=0 "),
            "{line}"
        );
        let kvm = kernel_cmdline(&KernelArgs {
            shape: Shape::Microvm,
            ..args(&[], Writes::None, None)
        });
        assert!(!kvm.contains("tsc") && !kvm.contains("lpj"), "{kvm}");
        let q35 = kernel_cmdline(&args(&[], Writes::None, None));
        assert!(
            !q35.contains("cryptomgr") && !q35.contains("init_on_alloc"),
            "{q35}"
        );
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
    fn one_device_per_share_and_commas_escaped() {
        let argv = machine_argv(Engine::Tcg);
        let devices = value_of(&argv, "-device");
        assert_eq!(
            devices[..3],
            [
                "vhost-user-fs-pci,chardev=fs0,tag=rootfs",
                "vhost-user-fs-pci,chardev=fs1,tag=mnt0",
                "virtio-9p-pci,fsdev=fs2,mount_tag=nine"
            ]
        );
        let fsdev = value_of(&argv, "-fsdev");
        assert_eq!(fsdev.len(), 1);
        assert!(
            fsdev[0].ends_with(",path=/srv/nine,readonly=on"),
            "{}",
            fsdev[0]
        );
        let chardevs = value_of(&argv, "-chardev");
        assert_eq!(chardevs[1], "socket,id=fs1,path=/t/a,,b.sock");
        assert_eq!(
            value_of(&argv, "-drive"),
            ["if=none,format=raw,cache=writeback,id=disk0,file=/d/a,,b.img"]
        );
        assert_eq!(devices[3], "virtio-blk-pci,drive=disk0");
    }

    #[test]
    fn ports_come_after_the_file_systems_status_first() {
        let argv = machine_argv(Engine::Tcg);
        let chardevs = value_of(&argv, "-chardev");
        assert_eq!(
            chardevs[2..],
            [
                "socket,id=port0,path=/t/status.sock",
                "socket,id=port1,path=/t/stdout.sock",
                "socket,id=console,path=/t/console.sock"
            ]
        );
        let devices = value_of(&argv, "-device");
        assert!(devices.contains(&"virtserialport,bus=ports.0,chardev=port0,name=init.status"));
        assert!(devices.contains(&"virtserialport,bus=ports.0,chardev=port1,name=init.stdout"));
        assert_eq!(value_of(&argv, "-serial"), ["chardev:console"]);
    }

    #[test]
    fn network_and_gdb_stub_on_loopback_only() {
        let plain = machine_argv(Engine::Tcg);
        assert!(value_of(&plain, "-netdev").is_empty() && value_of(&plain, "-gdb").is_empty());
        let forwards = [
            Forward {
                host: 8080,
                guest: 80,
            },
            Forward { host: 2, guest: 22 },
        ];
        let filesystems = [];
        let machine = Machine {
            qemu: Path::new("/q"),
            shape: Shape::Q35,
            engine: Engine::Tcg,
            memory: "1G",
            cpus: 1,
            kernel: Path::new("/k"),
            initrd: Path::new("/i"),
            cmdline: "",
            filesystems: &filesystems,
            disks: &[],
            console: Path::new("/c"),
            ports: &[],
            network: Some(&forwards),
            gdb: Some(1234),
        };
        let argv: Vec<String> = argv(&machine)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            value_of(&argv, "-netdev"),
            ["user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2-:22"]
        );
        assert!(value_of(&argv, "-device").contains(&"virtio-net-pci,netdev=net0"));
        assert_eq!(value_of(&argv, "-gdb"), ["tcp:127.0.0.1:1234"]);
        let line = kernel_cmdline(&KernelArgs {
            net: true,
            gdb: true,
            ..args(&[], Writes::None, None)
        });
        let parsed = init::cmdline::Cmdline::parse(line.as_bytes());
        let ip = init::net::IpConfig::parse(parsed.ip.unwrap()).unwrap();
        assert_eq!((ip.device, ip.gateway), (&b"eth0"[..], Some([10, 0, 2, 2])));
        assert_eq!(ip.dns[0], Some(&b"10.0.2.3"[..]));
        assert!(line.contains(" nokaslr "), "{line}");
    }

    #[test]
    fn never_reboots_and_has_nothing_by_default() {
        let argv = machine_argv(Engine::Tcg);
        for flag in ["-no-reboot", "-nodefaults", "-no-user-config"] {
            assert!(argv.iter().any(|a| a == flag), "{flag}");
        }
    }

    fn args<'a>(shares: &'a [Share], writes: Writes, handover: Option<&'a str>) -> KernelArgs<'a> {
        KernelArgs {
            shape: Shape::Q35,
            clock: None,
            fstype: "virtiofs",
            root: RootArg::Shared,
            writes,
            shares,
            handover,
            debug: false,
            net: false,
            gdb: false,
            kernel_speaks: false,
            append: &[],
        }
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
        let append = ["x=1".to_string()];
        let line = kernel_cmdline(&KernelArgs {
            append: &append,
            ..args(&shares, Writes::None, Some("/run/mnt/mnt0/vm.py"))
        });
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
    fn writes_and_roots() {
        let line = |writes| kernel_cmdline(&args(&[], writes, None));
        assert!(line(Writes::None).contains(" ro "));
        assert!(line(Writes::Through).contains(" rw "));
        let overlay = init::cmdline::Cmdline::parse(line(Writes::Discarded).as_bytes()).overlay;
        assert!(overlay);
        let nine = kernel_cmdline(&KernelArgs {
            fstype: "9p",
            ..args(&[], Writes::None, None)
        });
        assert_eq!(
            init::cmdline::Cmdline::parse(nine.as_bytes()).root(),
            init::cmdline::Root::NineP(b"rootfs")
        );
        let image = kernel_cmdline(&KernelArgs {
            root: RootArg::Initramfs,
            ..args(&[], Writes::None, None)
        });
        assert_eq!(
            init::cmdline::Cmdline::parse(image.as_bytes()).root(),
            init::cmdline::Root::Initramfs
        );
        assert!(!image.contains("init="));
        let share = [Share {
            tag: "s".into(),
            path: "/s".into(),
            read_only: false,
        }];
        let image_9p = kernel_cmdline(&KernelArgs {
            root: RootArg::Initramfs,
            fstype: "9p",
            ..args(&share, Writes::None, None)
        });
        let parsed = init::cmdline::Cmdline::parse(image_9p.as_bytes());
        assert_eq!(parsed.root(), init::cmdline::Root::Initramfs);
        assert_eq!(parsed.rootfstype, Some(&b"9p"[..]));
        let disk = kernel_cmdline(&KernelArgs {
            root: RootArg::Device("/dev/vda"),
            ..args(&[], Writes::Through, None)
        });
        let parsed = init::cmdline::Cmdline::parse(disk.as_bytes());
        assert_eq!(
            parsed.root(),
            init::cmdline::Root::Block {
                device: b"/dev/vda",
                fstype: None
            }
        );
        assert!(!parsed.root_read_only());
    }

    #[test]
    fn the_kernel_speaks_when_the_watchdog_listens() {
        let quiet = kernel_cmdline(&args(&[], Writes::None, None));
        assert!(
            quiet.ends_with(" quiet") && !quiet.contains("loglevel"),
            "{quiet}"
        );
        let speaks = kernel_cmdline(&KernelArgs {
            kernel_speaks: true,
            ..args(&[], Writes::None, None)
        });
        assert!(speaks.ends_with(" quiet loglevel=6"), "{speaks}");
        // init still reads `quiet` as its own verbosity.
        assert_eq!(
            init::cmdline::Cmdline::parse(speaks.as_bytes()).verbosity,
            init::cmdline::Cmdline::parse(quiet.as_bytes()).verbosity
        );
    }

    #[test]
    fn debug_and_quoting() {
        let line = kernel_cmdline(&KernelArgs {
            debug: true,
            ..args(&[], Writes::None, Some("/my init"))
        });
        assert!(
            line.contains("init=\"/my init\" init.status init.debug"),
            "{line}"
        );
        let parsed = init::cmdline::Cmdline::parse(line.as_bytes());
        assert_eq!(parsed.init, Some(&b"/my init"[..]));
    }
}
