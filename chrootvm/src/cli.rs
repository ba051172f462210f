//! The command line (SPEC §5), parsed with lexopt into [`Options`]. Parsing
//! only: nothing is looked up or checked against the host here.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How qemu executes the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// KVM when it is usable, else TCG.
    Auto,
    /// KVM, failing if it is not usable.
    Kvm,
    /// TCG (software emulation), always available.
    Tcg,
}

/// `--machine`: the VM's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineChoice {
    /// microvm when the kernel and host allow it, else q35.
    Auto,
    /// microvm, failing when it cannot boot.
    Microvm,
    /// q35 (PCI devices, any kernel).
    Q35,
}

/// A shared host directory mounted at /run/mnt/TAG in the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// The virtiofs tag, and the directory name under /run/mnt.
    pub tag: String,
    /// The host directory.
    pub path: PathBuf,
    /// `--mount-ro`.
    pub read_only: bool,
}

/// What boots: a directory over a shared file system, or an initramfs
/// image that stays the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Root {
    /// `ROOTFS`.
    Dir(PathBuf),
    /// `--initrd IMAGE`.
    Image(PathBuf),
    /// `--root DEV`: a block device of the guest (a `--disk`).
    Device(String),
}

/// How the root may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Read-only, with writable /tmp and /run (the default).
    None,
    /// `--rw`: writes reach the directory.
    Through,
    /// `--overlay`: writes go to a tmpfs and vanish at power-off.
    Discarded,
}

/// What PID 1 does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// `--init PATH`: hand PID 1 over to PATH (a full system).
    Handover(String),
    /// Run a command (or, when empty, `$SHELL -i`) and return its status.
    Command(Vec<OsString>),
}

/// Everything the command line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// What boots.
    pub root: Root,
    /// What PID 1 does.
    pub job: Job,
    /// `--rw` / `--overlay`.
    pub writes: Writes,
    /// `--mount`/`--mount-ro` shares, in order.
    pub shares: Vec<Share>,
    /// `--disk IMAGE`, attached as virtio-blk disks /dev/vda, vdb, ...
    pub disks: Vec<PathBuf>,
    /// `--kernel PATH`.
    pub kernel: Option<PathBuf>,
    /// `--kver VER`.
    pub kver: Option<String>,
    /// `--moddir DIR`.
    pub moddir: Option<PathBuf>,
    /// `--memory SIZE`, as qemu takes it (`2G`, `512M`); `None` for the
    /// `--initrd` image's rapido resources, else [`DEFAULT_MEMORY`].
    pub memory: Option<String>,
    /// `--cpus N`; `None` for the image's, else [`DEFAULT_CPUS`].
    pub cpus: Option<u32>,
    /// `--accel`.
    pub accel: Accel,
    /// `--machine`.
    pub machine: MachineChoice,
    /// `--append ARGS`, added after chrootvm's own kernel parameters.
    pub append: Vec<String>,
    /// `--timeout SECS`.
    pub timeout: Option<Duration>,
    /// `--boot-timeout SECS`: how long init may take to report.
    pub boot_timeout: Duration,
    /// `--debug`.
    pub debug: bool,
    /// `--net` (or a `--forward`): user-mode networking.
    pub net: bool,
    /// `--forward HOSTPORT:GUESTPORT`, in order.
    pub forwards: Vec<Forward>,
    /// `--gdb[=PORT]`: qemu's gdb stub on 127.0.0.1:PORT.
    pub gdb: Option<u16>,
}

/// `--forward HOSTPORT:GUESTPORT`: the host's 127.0.0.1:HOSTPORT reaches
/// the guest's GUESTPORT (TCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The port on the host's loopback.
    pub host: u16,
    /// The port in the guest.
    pub guest: u16,
}

/// The gdb stub's port when `--gdb` names none (gdb's own default).
pub const DEFAULT_GDB_PORT: u16 = 1234;

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Boot a VM.
    Run(Box<Options>),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// A usage error: one line, without the program prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see chrootvm --help)", self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(error: lexopt::Error) -> Self {
        UsageError(error.to_string())
    }
}

/// `--memory` default.
pub const DEFAULT_MEMORY: &str = "2G";
/// `--cpus` default.
pub const DEFAULT_CPUS: u32 = 2;
/// `--boot-timeout` default. Under TCG a boot reports in about 2.5 s here,
/// a systemd or block-root boot in under 10 s, a loaded CI host four times
/// that: 120 s gives any real boot room and still ends a hung one.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The `--help` text.
pub const HELP: &str = "\
chrootvm: boot a directory tree as a virtual machine

Usage: chrootvm [OPTIONS] ROOTFS [COMMAND [ARGS...]]
       chrootvm [OPTIONS] --initrd IMAGE [COMMAND [ARGS...]]
       chrootvm [OPTIONS] --disk IMAGE --root DEV [COMMAND [ARGS...]]

Like chroot(1), in a VM: COMMAND runs in ROOTFS (shared read-only, with
writable /tmp and /run), its output on chrootvm's stdout and stderr, its
exit status as chrootvm's. Without COMMAND, \"$SHELL -i\" (default /bin/sh)
runs, interactively on a terminal. The kernel and its modules are found as
described below; the initramfs is built in memory. The environment is
passed on as chroot(1) does; the working directory is /.

Options:
  --init PATH              hand PID 1 over to PATH instead (boot a system)
  --rw                     the root is writable; writes reach ROOTFS
  --overlay                the root is writable; writes vanish at power-off
  --initrd IMAGE           boot an initramfs made by mkinitrd as the root
  --disk IMAGE             attach a raw disk image as virtio-blk (/dev/vda,
                           then vdb, ...; may be repeated)
  --root DEV               boot from guest block device DEV (e.g. /dev/vda):
                           --rw writes to it, --overlay discards writes
  --mount TAG PATH         share PATH read-write at /run/mnt/TAG
  --mount-ro TAG PATH      share PATH read-only at /run/mnt/TAG
  --kernel PATH            kernel image (default: discovered, see below)
  --kver VER               kernel version to look for
  --moddir DIR             module tree matching the kernel (holds modules.dep)
  --memory SIZE            guest memory, e.g. 512M, 2G (default: the
                           --initrd image's rapido-rsc/mem, else 2G)
  --cpus N                 guest CPUs (default: the image's rapido-rsc/cpu,
                           else 2)
  --accel auto|kvm|tcg     KVM when usable (auto, the default), or force one
  --machine auto|microvm|q35
                           qemu's machine: microvm (no PCI, the kernel booted
                           through PVH) when the kernel and host allow it
                           (auto, the default), or force one; q35 has PCI
  --append ARGS            extra kernel command line (may be repeated)
  --timeout SECS           kill the VM after SECS seconds
  --boot-timeout SECS      give up on a guest that shows no sign of life
                           (init has not reported) after SECS (default 120)
  --net                    user-mode network (qemu's): the guest gets 10.0.2.15,
                           a default route, a name server in /etc/resolv.conf,
                           and reaches the host's 127.0.0.1 as 10.0.2.2
  --forward HOST:GUEST     the guest's TCP port GUEST on the host's
                           127.0.0.1:HOST (implies --net; may be repeated)
  --gdb[=PORT]             qemu's gdb stub on 127.0.0.1:PORT (default 1234),
                           with nokaslr so the kernel's symbols match
  --debug                  show the kernel log, init's steps and what runs
  -h, --help               this text
  -V, --version            version

Kernel discovery: --kernel; else ROOTFS/usr/lib/modules/VER/vmlinuz (newest
VER); else ROOTFS/boot/vmlinuz-VER; else the host's /boot/vmlinuz-$(uname -r);
else the newest host /boot/vmlinuz-VER with modules in /lib/modules/VER.

init (PID 1 of the initramfs): PREFIX/lib/chrootvm/init when installed
beside PREFIX/bin/chrootvm, else the init built into chrootvm.

virtiofsd discovery: $VIRTIOFSD, PATH, /usr/libexec/virtiofsd,
/usr/lib/qemu/virtiofsd, /usr/lib/virtiofsd (Rust or legacy C daemon).

Without any virtiofsd, shares go over qemu's 9p when the kernel has it.
$VIRTIOFSD, when set, is the only daemon tried; set it empty for none.

Exit status:
  N        COMMAND's status: its exit code, 128+S when killed by signal
           S, 126 when it cannot be executed, 127 when it is not found
  0        with --init: the system powered off or halted
  122      the command's output could not be written (stdout or stderr
           failed, e.g. a full disk); the VM was killed
  123      the VM did not boot (init did not report within --boot-timeout,
           or failed), or it ended before the command did (the command
           powered off, halted or rebooted it, or the kernel panicked);
           the last line says which
  124      --timeout expired; the VM was killed
  125      chrootvm could not start the VM (bad usage, or a missing
           kernel, module, virtiofsd or qemu, or KVM that --accel kvm
           asked for)
  128+N    chrootvm was stopped by signal N (SIGINT 130, SIGTERM 143,
           SIGHUP 129), unless N was ignored when it started (nohup)
  141      chrootvm's stdout or stderr was closed (as SIGPIPE would end a
           command); the VM was killed
";

/// Parses the arguments after the program name.
///
/// # Errors
/// A [`UsageError`] naming the bad option or value.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let mut rootfs: Option<PathBuf> = None;
    let mut image: Option<PathBuf> = None;
    let mut device: Option<String> = None;
    let mut init: Option<String> = None;
    let mut command: Vec<OsString> = Vec::new();
    let mut writes = Vec::new();
    let mut options = Options {
        root: Root::Dir(PathBuf::new()),
        job: Job::Command(Vec::new()),
        writes: Writes::None,
        shares: Vec::new(),
        disks: Vec::new(),
        kernel: None,
        kver: None,
        moddir: None,
        memory: None,
        cpus: None,
        accel: Accel::Auto,
        machine: MachineChoice::Auto,
        net: false,
        forwards: Vec::new(),
        gdb: None,
        append: Vec::new(),
        timeout: None,
        boot_timeout: DEFAULT_BOOT_TIMEOUT,
        debug: false,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("init") => init = Some(parser.value()?.string()?),
            Long("rw") => writes.push(Writes::Through),
            Long("overlay") => writes.push(Writes::Discarded),
            Long("initrd") => image = Some(parser.value()?.into()),
            Long("disk") => options.disks.push(parser.value()?.into()),
            Long("root") => device = Some(parse_device(&parser.value()?.string()?)?),
            Long(flag @ ("mount" | "mount-ro")) => {
                let read_only = flag == "mount-ro";
                let tag = parser.value()?.string()?;
                let path = PathBuf::from(parser.value()?);
                check_tag(&tag)?;
                if options.shares.iter().any(|share| share.tag == tag) {
                    return Err(UsageError(format!("share tag \"{tag}\" is given twice")));
                }
                options.shares.push(Share {
                    tag,
                    path,
                    read_only,
                });
            }
            Long("kernel") => options.kernel = Some(parser.value()?.into()),
            Long("kver") => options.kver = Some(parser.value()?.string()?),
            Long("moddir") => options.moddir = Some(parser.value()?.into()),
            Long("memory") => options.memory = Some(parse_memory(&parser.value()?.string()?)?),
            Long("cpus") => options.cpus = Some(parse_cpus(&parser.value()?.string()?)?),
            Long("accel") => options.accel = parse_accel(&parser.value()?.string()?)?,
            Long("machine") => options.machine = parse_machine(&parser.value()?.string()?)?,
            Long("append") => options.append.push(parser.value()?.string()?),
            Long("timeout") => {
                options.timeout = Some(parse_seconds("--timeout", &parser.value()?.string()?)?);
            }
            Long("boot-timeout") => {
                options.boot_timeout = parse_seconds("--boot-timeout", &parser.value()?.string()?)?;
            }
            Long("debug") => options.debug = true,
            Long("net") => options.net = true,
            Long("forward") => {
                let forward = parse_forward(&parser.value()?.string()?)?;
                if options.forwards.iter().any(|f| f.host == forward.host) {
                    return Err(UsageError(format!(
                        "host port {} is forwarded twice",
                        forward.host
                    )));
                }
                options.forwards.push(forward);
                options.net = true;
            }
            Long("gdb") => {
                options.gdb = Some(match parser.optional_value() {
                    Some(port) => parse_port("--gdb", &port.string()?)?,
                    None => DEFAULT_GDB_PORT,
                });
            }
            // As with chroot(1), the command and its arguments are taken as
            // they are, options included: `chrootvm ROOT ls -l`.
            Value(value) => {
                if image.is_none() && device.is_none() && rootfs.is_none() {
                    rootfs = Some(PathBuf::from(value));
                } else {
                    command.push(value);
                }
                command.extend(parser.raw_args()?);
                break;
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    options.root = match (rootfs, image, device) {
        (Some(dir), None, None) => Root::Dir(dir),
        (None, Some(image), None) => Root::Image(image),
        (None, None, Some(device)) => Root::Device(device),
        (None, None, None) => {
            return Err(UsageError(
                "no ROOTFS directory, --initrd IMAGE or --root DEV given".to_string(),
            ));
        }
        _ => {
            return Err(UsageError(
                "give one root: ROOTFS, --initrd IMAGE or --root DEV".to_string(),
            ));
        }
    };
    if matches!(options.root, Root::Device(_)) && options.disks.is_empty() {
        return Err(UsageError(
            "--root DEV boots from a --disk IMAGE: give one".to_string(),
        ));
    }
    options.job = match init {
        Some(_) if !command.is_empty() => {
            return Err(UsageError(
                "--init and a COMMAND cannot be used together".to_string(),
            ));
        }
        Some(init) => Job::Handover(init),
        None => Job::Command(command),
    };
    options.writes = match writes.as_slice() {
        [] => Writes::None,
        [one] => *one,
        _ => {
            return Err(UsageError(
                "--rw and --overlay cannot be used together".to_string(),
            ));
        }
    };
    check_devices(&options)?;
    if options.writes != Writes::None && matches!(options.root, Root::Image(_)) {
        return Err(UsageError(
            "--rw and --overlay need a ROOTFS directory (an --initrd root is always writable)"
                .to_string(),
        ));
    }
    Ok(Command::Run(Box::new(options)))
}

/// `--root DEV`: a guest device path, which goes on the kernel command
/// line as `root=`.
fn parse_device(value: &str) -> Result<String, UsageError> {
    let plain = value.strip_prefix("/dev/").is_some_and(|name| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
    });
    if plain {
        Ok(value.to_string())
    } else {
        Err(UsageError(format!(
            "--root takes a guest device like /dev/vda, not \"{value}\""
        )))
    }
}

/// A tag names a directory under /run/mnt and goes on the kernel command
/// line, so it must be a plain word.
fn check_tag(tag: &str) -> Result<(), UsageError> {
    let plain = !tag.is_empty()
        && tag != "."
        && tag != ".."
        && tag.len() <= 36
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if plain && tag != "rootfs" {
        Ok(())
    } else if tag == "rootfs" {
        Err(UsageError(
            "share tag \"rootfs\" is the root's own".to_string(),
        ))
    } else {
        Err(UsageError(format!(
            "bad share tag \"{tag}\": use up to 36 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// The smallest guest memory chrootvm boots with, in MiB. Debian's cloud
/// kernel with chrootvm's initramfs does not boot in 64 MiB (qemu ends
/// before the kernel prints a line) and does in 72 MiB; 96 MiB leaves room
/// for a larger initramfs or kernel.
pub const MIN_MEMORY_MIB: u64 = 96;

/// `--memory` (or an image's rapido-rsc/mem) as qemu takes it (`512M`),
/// refusing what is not a size or too small to boot in.
///
/// # Errors
/// A [`UsageError`] naming the value and what would do.
pub fn parse_memory(value: &str) -> Result<String, UsageError> {
    let digits = value.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let suffix = &value[digits.len()..];
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "K" => 10,
        // qemu reads a bare number as MiB.
        "" | "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => 0,
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .filter(|_| shift > 0 && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.checked_mul(1 << shift));
    let Some(bytes) = bytes else {
        return Err(UsageError(format!(
            "bad --memory \"{value}\": give a size like 512M or 2G"
        )));
    };
    if bytes < MIN_MEMORY_MIB << 20 {
        return Err(UsageError(format!(
            "--memory {value} is too small: the guest needs at least {MIN_MEMORY_MIB}M to boot"
        )));
    }
    // qemu reads a bare number as MiB; say so explicitly.
    Ok(if suffix.is_empty() {
        format!("{digits}M")
    } else {
        value.to_ascii_uppercase()
    })
}

/// PCI slots qemu's q35 machine has free on its root bus with
/// `-nodefaults`: the 31st `-device` fails ("PCI: no slot/function
/// available"). Each share, the shared root and each disk take one, and
/// chrootvm's serial ports one more.
pub const PCI_SLOTS: usize = 30;

/// Refuses, before anything starts, more shares and disks than the guest
/// can have: init mounts at most [`init::cmdline::MAX_SHARES`] shares, and
/// every device needs a PCI slot.
fn check_devices(options: &Options) -> Result<(), UsageError> {
    let shares = options.shares.len();
    if shares > init::cmdline::MAX_SHARES {
        return Err(UsageError(format!(
            "{shares} shares are too many: the guest mounts at most {}",
            init::cmdline::MAX_SHARES
        )));
    }
    let root = usize::from(matches!(options.root, Root::Dir(_)));
    let devices = shares + options.disks.len() + root + 1 + usize::from(options.net);
    if devices > PCI_SLOTS {
        return Err(UsageError(format!(
            "{shares} shares and {} disks are too many: qemu's machine has {PCI_SLOTS} PCI slots, {} of them for the root and chrootvm's ports",
            options.disks.len(),
            root + 1
        )));
    }
    Ok(())
}

fn parse_cpus(value: &str) -> Result<u32, UsageError> {
    match value.parse::<u32>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(UsageError(format!("bad --cpus \"{value}\": give 1 to 256"))),
    }
}

/// `HOSTPORT:GUESTPORT`.
fn parse_forward(value: &str) -> Result<Forward, UsageError> {
    let bad = || {
        UsageError(format!(
            "bad --forward \"{value}\": give HOSTPORT:GUESTPORT, e.g. 8080:80"
        ))
    };
    let (host, guest) = value.split_once(':').ok_or_else(bad)?;
    Ok(Forward {
        host: parse_port("--forward", host).map_err(|_| bad())?,
        guest: parse_port("--forward", guest).map_err(|_| bad())?,
    })
}

/// A TCP port, 1 to 65535.
fn parse_port(option: &str, value: &str) -> Result<u16, UsageError> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(UsageError(format!(
            "bad {option} port \"{value}\": give 1 to 65535"
        ))),
    }
}

fn parse_accel(value: &str) -> Result<Accel, UsageError> {
    match value {
        "auto" => Ok(Accel::Auto),
        "kvm" => Ok(Accel::Kvm),
        "tcg" => Ok(Accel::Tcg),
        _ => Err(UsageError(format!(
            "bad --accel \"{value}\": give auto, kvm or tcg"
        ))),
    }
}

fn parse_machine(value: &str) -> Result<MachineChoice, UsageError> {
    match value {
        "auto" => Ok(MachineChoice::Auto),
        "microvm" => Ok(MachineChoice::Microvm),
        "q35" => Ok(MachineChoice::Q35),
        _ => Err(UsageError(format!(
            "bad --machine \"{value}\": give auto, microvm or q35"
        ))),
    }
}

fn parse_seconds(option: &str, value: &str) -> Result<Duration, UsageError> {
    match value.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() && secs < 1e9 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(UsageError(format!(
            "bad {option} \"{value}\": give a number of seconds"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn options(args: &[&str]) -> Options {
        match parse_str(args) {
            Ok(Command::Run(options)) => *options,
            other => panic!("{other:?}"),
        }
    }

    fn command(words: &[&str]) -> Job {
        Job::Command(words.iter().map(OsString::from).collect())
    }

    #[test]
    fn disk_roots() {
        let o = options(&[
            "--disk", "/d.img", "--root", "/dev/vda", "--rw", "cat", "/x",
        ]);
        assert_eq!(o.root, Root::Device("/dev/vda".into()));
        assert_eq!(o.disks, [PathBuf::from("/d.img")]);
        assert_eq!(o.job, Job::Command(vec!["cat".into(), "/x".into()]));
        let err = |args: &[&str]| parse_str(args).unwrap_err().to_string();
        assert!(err(&["--root", "/dev/vda", "true"]).contains("--disk IMAGE"));
        assert!(err(&["--disk", "/d", "--root", "vda"]).contains("like /dev/vda"));
        assert!(
            err(&["--disk", "/d", "--root", "/dev/vda", "--initrd", "/i"]).contains("one root")
        );
    }

    #[test]
    fn defaults() {
        let o = options(&["./root"]);
        assert_eq!(o.root, Root::Dir(PathBuf::from("./root")));
        assert_eq!(o.job, command(&[]));
        assert_eq!(o.writes, Writes::None);
        assert_eq!(o.memory, None);
        assert_eq!(o.cpus, None);
        assert_eq!(o.accel, Accel::Auto);
        assert_eq!(o.machine, MachineChoice::Auto);
        assert_eq!(
            options(&["--machine", "q35", "/r"]).machine,
            MachineChoice::Q35
        );
        assert!(o.shares.is_empty() && !o.debug && o.timeout.is_none());
    }

    #[test]
    fn the_command_is_taken_verbatim_like_chroot() {
        let o = options(&["--debug", "/r", "ls", "-l", "--init", "--", "x"]);
        assert_eq!(o.job, command(&["ls", "-l", "--init", "--", "x"]));
        assert!(o.debug);
        let o = options(&["--initrd", "/i.cpio", "sh", "-c", "exit 3"]);
        assert_eq!(o.root, Root::Image(PathBuf::from("/i.cpio")));
        assert_eq!(o.job, command(&["sh", "-c", "exit 3"]));
    }

    #[test]
    fn all_options() {
        let o = options(&[
            "--init",
            "/x",
            "--mount",
            "mnt0",
            "/a",
            "--mount-ro",
            "ro",
            "/b",
            "--kernel",
            "/k",
            "--kver",
            "6.1",
            "--moddir",
            "/m",
            "--memory",
            "512",
            "--cpus",
            "4",
            "--accel",
            "tcg",
            "--append",
            "a=1",
            "--append",
            "b",
            "--timeout",
            "2.5",
            "--boot-timeout",
            "9",
            "--debug",
            "--overlay",
            "/root",
        ]);
        assert_eq!(o.job, Job::Handover("/x".into()));
        assert_eq!(o.writes, Writes::Discarded);
        assert_eq!(
            o.shares,
            [
                Share {
                    tag: "mnt0".into(),
                    path: "/a".into(),
                    read_only: false
                },
                Share {
                    tag: "ro".into(),
                    path: "/b".into(),
                    read_only: true
                },
            ]
        );
        assert_eq!(o.kernel, Some(PathBuf::from("/k")));
        assert_eq!(o.kver.as_deref(), Some("6.1"));
        assert_eq!(o.moddir, Some(PathBuf::from("/m")));
        assert_eq!(o.memory.as_deref(), Some("512M"));
        assert_eq!(o.cpus, Some(4));
        assert_eq!(o.accel, Accel::Tcg);
        assert_eq!(o.append, ["a=1", "b"]);
        assert_eq!(o.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(o.boot_timeout, Duration::from_secs(9));
        assert!(o.debug);
        assert_eq!(options(&["--rw", "/r"]).writes, Writes::Through);
    }

    #[test]
    fn shares_and_disks_are_refused_beyond_what_the_guest_takes() {
        let mut args: Vec<String> = Vec::new();
        for i in 0..29 {
            args.extend(["--mount-ro".into(), format!("t{i}"), "/x".into()]);
        }
        args.push("/r".into());
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let error = parse_str(&words).unwrap_err().to_string();
        assert!(error.starts_with("29 shares are too many: the guest mounts at most 28"));
        // 28 shares fit; with the root, the ports and two disks they do not.
        let fits = &words[3..];
        assert!(parse_str(fits).is_ok());
        let mut disks = vec!["--disk", "/a", "--disk", "/b"];
        disks.extend_from_slice(fits);
        let error = parse_str(&disks).unwrap_err().to_string();
        assert!(
            error
                .starts_with("28 shares and 2 disks are too many: qemu's machine has 30 PCI slots"),
            "{error}"
        );
    }

    /// Each option `--help` shows, with a value it takes.
    const EXAMPLES: &[(&str, &[&str])] = &[
        ("--init", &["--init", "/sbin/init"]),
        ("--rw", &["--rw"]),
        ("--overlay", &["--overlay"]),
        ("--initrd", &["--initrd", "i.cpio"]),
        ("--disk", &["--disk", "d.img"]),
        ("--root", &["--disk", "d.img", "--root", "/dev/vda"]),
        ("--mount", &["--mount", "t", "/x"]),
        ("--mount-ro", &["--mount-ro", "t", "/x"]),
        ("--kernel", &["--kernel", "/k"]),
        ("--kver", &["--kver", "6.1"]),
        ("--moddir", &["--moddir", "/m"]),
        ("--memory", &["--memory", "512M"]),
        ("--cpus", &["--cpus", "2"]),
        ("--accel", &["--accel", "tcg"]),
        ("--machine", &["--machine", "q35"]),
        ("--append", &["--append", "x=1"]),
        ("--timeout", &["--timeout", "10"]),
        ("--boot-timeout", &["--boot-timeout", "60"]),
        ("--net", &["--net"]),
        ("--forward", &["--forward", "8080:80"]),
        ("--gdb", &["--gdb=1234"]),
        ("--debug", &["--debug"]),
        ("--help", &["--help"]),
        ("--version", &["--version"]),
    ];

    #[test]
    fn every_option_in_help_is_parsed() {
        let documented = ::tests::help_options(HELP);
        for option in &documented {
            assert!(
                EXAMPLES.iter().any(|(name, _)| name == option),
                "{option} is in --help but has no example here"
            );
        }
        for (name, args) in EXAMPLES {
            assert!(documented.contains(name), "{name} is not in --help");
            let mut full: Vec<&str> = args.to_vec();
            full.push("/root");
            assert!(
                parse_str(&full).is_ok(),
                "{full:?}: {:?}",
                parse_str(&full).err()
            );
        }
    }

    #[test]
    fn network_and_debugger_options() {
        let o = options(&[
            "--forward",
            "8080:80",
            "--forward",
            "2222:22",
            "--gdb",
            "/r",
        ]);
        assert!(o.net);
        assert_eq!(
            o.forwards,
            [
                Forward {
                    host: 8080,
                    guest: 80
                },
                Forward {
                    host: 2222,
                    guest: 22
                }
            ]
        );
        assert_eq!(o.gdb, Some(1234));
        assert_eq!(options(&["--gdb=9000", "/r"]).gdb, Some(9000));
        let plain = options(&["/r"]);
        assert!(!plain.net && plain.forwards.is_empty() && plain.gdb.is_none());
        assert!(options(&["--net", "/r"]).net);
        let err = |args: &[&str]| parse_str(args).unwrap_err().to_string();
        assert!(err(&["--forward", "80", "/r"]).starts_with("bad --forward \"80\""));
        assert!(err(&["--forward", "0:80", "/r"]).starts_with("bad --forward"));
        assert!(err(&["--forward", "1:2", "--forward", "1:3", "/r"]).contains("twice"));
        assert!(err(&["--gdb=x", "/r"]).starts_with("bad --gdb port \"x\""));
    }

    #[test]
    fn usage_errors_name_the_problem() {
        let err = |args: &[&str]| parse_str(args).unwrap_err().to_string();
        assert_eq!(
            err(&[]),
            "no ROOTFS directory, --initrd IMAGE or --root DEV given (see chrootvm --help)"
        );
        assert!(err(&["--accel", "xen", "/r"]).starts_with("bad --accel \"xen\""));
        assert!(err(&["--machine", "pc", "/r"]).starts_with("bad --machine \"pc\""));
        assert!(err(&["--cpus", "0", "/r"]).starts_with("bad --cpus \"0\""));
        assert!(err(&["--memory", "lots", "/r"]).starts_with("bad --memory \"lots\""));
        assert!(err(&["--memory", "0", "/r"]).contains("too small: the guest needs at least 96M"));
        assert!(err(&["--memory", "64M", "/r"]).contains("too small"));
        assert!(err(&["--memory", "98303K", "/r"]).contains("too small"));
        assert!(err(&["--memory", "99999999999T", "/r"]).starts_with("bad --memory"));
        assert!(err(&["--memory", "1X", "/r"]).starts_with("bad --memory"));
        assert!(err(&["--timeout", "-1", "/r"]).starts_with("bad --timeout"));
        assert!(err(&["--boot-timeout", "0", "/r"]).starts_with("bad --boot-timeout \"0\""));
        assert!(err(&["--mount", "a/b", "/x", "/r"]).starts_with("bad share tag \"a/b\""));
        assert!(err(&["--mount", "rootfs", "/x", "/r"]).contains("root's own"));
        assert!(
            err(&["--mount", "a", "/x", "--mount-ro", "a", "/y", "/r"]).contains("given twice")
        );
        assert!(err(&["--bogus", "/r"]).contains("--bogus"));
        assert!(err(&["--init", "/sbin/init", "/r", "true"]).contains("cannot be used together"));
        assert!(err(&["--rw", "--overlay", "/r"]).contains("cannot be used together"));
        assert!(err(&["--rw", "--initrd", "/i"]).contains("need a ROOTFS"));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse_str(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_str(&["-V"]), Ok(Command::Version));
    }
}
