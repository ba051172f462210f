//! chrootvm's errors: one variant per failing step, holding the object and
//! the cause. `Display` writes one line without the program prefix; main
//! prints it and maps the variant to the exit status in [`Error::exit_code`],
//! the one place exit codes are decided.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Exit status: the command's output could not be written (stdout or
/// stderr failed, other than by its reader going away).
pub const EXIT_OUTPUT_FAILED: u8 = 122;
/// Exit status: the VM started but did not boot to a system or command.
pub const EXIT_NOT_BOOTED: u8 = 123;
/// Exit status: `--timeout` expired and the VM was killed.
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit status: chrootvm could not start the VM (usage or host setup).
pub const EXIT_SETUP: u8 = 125;
/// Exit status: stdout or stderr was closed, as a command killed by
/// SIGPIPE (128+13).
pub const EXIT_OUTPUT_CLOSED: u8 = 141;

/// Everything that can stop chrootvm.
#[derive(Debug)]
pub enum Error {
    /// ROOTFS is not a directory we can share.
    Rootfs(PathBuf, io::Error),
    /// A `--mount`/`--mount-ro` path is not a directory we can share.
    Share {
        /// Its tag.
        tag: String,
        /// The path given.
        path: PathBuf,
        /// Why not.
        cause: io::Error,
    },
    /// No kernel image in any of these places.
    NoKernel(Vec<PathBuf>),
    /// The kernel's module tree is missing.
    NoModules {
        /// The kernel image.
        kernel: PathBuf,
        /// Its release.
        version: String,
    },
    /// `--kernel` names an image whose version we cannot read.
    UnknownKernelVersion(PathBuf),
    /// The image's version is not the module tree's.
    KernelMismatch {
        /// The kernel image.
        image: PathBuf,
        /// The release read from it.
        image_version: String,
        /// The module tree.
        moddir: PathBuf,
    },
    /// Building the initramfs failed.
    Initramfs(mkinitrd::Error),
    /// No virtiofsd in any of these places, and no 9p in the kernel.
    NoVirtiofsd(Vec<PathBuf>),
    /// $VIRTIOFSD names something that is not a virtiofsd.
    BadVirtiofsd(PathBuf),
    /// The only virtiofsd is the legacy C daemon, which needs root.
    LegacyVirtiofsdNeedsRoot(PathBuf),
    /// ROOTFS is given, but the image file is not usable.
    Image(PathBuf, io::Error),
    /// The `--initrd` image asks for resources the VM cannot have.
    ImageResources(PathBuf, String),
    /// A virtiofsd exited or never made its socket.
    Virtiofsd {
        /// The shared directory.
        dir: PathBuf,
        /// What went wrong.
        what: String,
        /// Its last line of output.
        log: String,
    },
    /// A program is not installed.
    NotInstalled {
        /// The program.
        program: String,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// A helper program could not be started.
    Spawn(String, io::Error),
    /// `--accel kvm`, but KVM does not work here.
    KvmUnusable(String),
    /// `--machine microvm`, but the kernel or host lacks what it needs.
    Machine(String),
    /// The command and its environment are more than init reads.
    CommandTooLong(usize),
    /// A host port for `--forward` or `--gdb` is not free.
    Port {
        /// What it was for.
        what: &'static str,
        /// The port.
        port: u16,
        /// Why not.
        cause: io::Error,
    },
    /// A step on the host failed.
    Host(Step, io::Error),
    /// The VM ran past `--timeout`.
    Timeout(Duration),
    /// The VM ended without reaching its system or command.
    NotBooted(String),
    /// chrootvm's stdout or stderr was closed while the command wrote to it.
    OutputClosed,
    /// Writing the command's output to chrootvm's own stream failed.
    WriteOutput(crate::channels::Output, io::Error),
    /// chrootvm was stopped by a signal.
    Signal(i32),
}

impl Error {
    /// The exit status for this error (documented in `--help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Timeout(_) => EXIT_TIMEOUT,
            Error::NotBooted(_) => EXIT_NOT_BOOTED,
            Error::Signal(signal) => 128u8.saturating_add(u8::try_from(*signal).unwrap_or(127)),
            Error::OutputClosed => EXIT_OUTPUT_CLOSED,
            Error::WriteOutput(..) => EXIT_OUTPUT_FAILED,
            _ => EXIT_SETUP,
        }
    }
}

/// io::Error's text without std's " (os error N)" suffix: the library's.
pub use mkinitrd::error::OsText;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rootfs(path, e) => write!(
                f,
                "cannot use {} as the root: {}",
                path.display(),
                OsText(e)
            ),
            Error::Share { tag, path, cause } => write!(
                f,
                "cannot share {} as \"{tag}\": {}",
                path.display(),
                OsText(cause)
            ),
            Error::NoKernel(looked) => {
                let places: Vec<_> = looked.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "cannot find a kernel to boot (looked for {}; pass --kernel PATH or --kver VER)",
                    places.join(", ")
                )
            }
            Error::NoModules { kernel, version } => write!(
                f,
                "cannot find the modules of {} (version {version}) in the root's or the host's /lib/modules (pass --moddir DIR)",
                kernel.display()
            ),
            Error::UnknownKernelVersion(image) => write!(
                f,
                "cannot tell the version of {} (pass --kver VER or --moddir DIR)",
                image.display()
            ),
            Error::KernelMismatch {
                image,
                image_version,
                moddir,
            } => write!(
                f,
                "cannot boot {}: it is version {image_version} but its modules in {} are not (pass --moddir DIR)",
                image.display(),
                moddir.display()
            ),
            // Modules chrootvm itself asks for: the kernel lacks what the
            // VM's devices need, which no module name the user gave fixes.
            Error::Initramfs(mkinitrd::Error::MissingModules { moddir, names }) => write!(
                f,
                "cannot boot this kernel: {} {} neither in its module tree {} nor built in (use a kernel with virtio and virtiofs support, e.g. Debian's linux-image-cloud-amd64, with --kernel, or give its module tree with --moddir)",
                names.join(", "),
                if names.len() == 1 { "is" } else { "are" },
                moddir.display()
            ),
            // The library's line says what failed ("cannot read ...").
            Error::Initramfs(e) => write!(f, "{e}"),
            Error::NoVirtiofsd(looked) => {
                let places: Vec<_> = looked.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "cannot share directories: no virtiofsd (looked in PATH, {}) and the kernel has no 9p to fall back on (install virtiofsd, or qemu-system-common on Debian 12)",
                    places.join(", ")
                )
            }
            Error::LegacyVirtiofsdNeedsRoot(path) => write!(
                f,
                "cannot share directories: the only virtiofsd here, {}, is QEMU's legacy C daemon, which runs only as root (install the Rust virtiofsd, which runs as any user: `cargo install virtiofsd`, then put it in PATH or set VIRTIOFSD; or run chrootvm as root)",
                path.display()
            ),
            Error::BadVirtiofsd(path) => write!(
                f,
                "cannot use VIRTIOFSD={}: not a virtiofsd (set it to the daemon, or empty for none)",
                path.display()
            ),
            Error::Image(path, e) => write!(f, "cannot boot {}: {}", path.display(), OsText(e)),
            Error::ImageResources(path, why) => write!(
                f,
                "cannot boot {}: its rapido-rsc/mem: {why} (pass --memory)",
                path.display()
            ),
            Error::Virtiofsd { dir, what, log } => {
                write!(f, "cannot share {}: virtiofsd {what}", dir.display())?;
                if !log.is_empty() {
                    write!(f, " ({log})")?;
                }
                Ok(())
            }
            Error::NotInstalled { program, package } => {
                write!(f, "cannot find {program} (install {package})")
            }
            Error::Spawn(program, e) => write!(f, "cannot start {program}: {}", OsText(e)),
            Error::KvmUnusable(reason) => write!(f, "cannot use KVM: {reason} (use --accel tcg)"),
            Error::Machine(reason) => {
                write!(f, "cannot boot a microvm: {reason} (use --machine q35)")
            }
            Error::CommandTooLong(bytes) => write!(
                f,
                "cannot run a command and environment of {bytes} bytes: the guest takes at most {} (and execve about half that)",
                init::runspec::MAX_SIZE
            ),
            Error::Port { what, port, cause } => write!(
                f,
                "cannot {what} 127.0.0.1:{port}: {} (choose another port)",
                OsText(cause)
            ),
            Error::Host(step, e) => write!(f, "cannot {step}: {}", OsText(e)),
            Error::Timeout(limit) => write!(
                f,
                "the VM ran past --timeout {}s and was killed",
                limit.as_secs_f64()
            ),
            Error::NotBooted(reason) => write!(f, "the VM did not boot: {reason}"),
            Error::Signal(signal) => write!(f, "stopped by signal {signal}; the VM was killed"),
            Error::OutputClosed => write!(f, "the command's output was closed; the VM was killed"),
            Error::WriteOutput(output, e) => write!(
                f,
                "cannot write the command's output to {}: {}; the VM was killed",
                match output {
                    crate::channels::Output::Stdout => "stdout",
                    crate::channels::Output::Stderr => "stderr",
                },
                OsText(e)
            ),
        }
    }
}

/// The host steps that fail only by an operating-system error, named as
/// the error line says them ("cannot <step>: <os error>").
#[derive(Debug)]
pub enum Step {
    /// Installing chrootvm's signal handlers.
    SignalHandlers,
    /// Becoming the child subreaper that reaps the helpers' children.
    Subreaper,
    /// Creating the run's temporary directory.
    TempDir,
    /// Switching the user's terminal to raw mode.
    RawTerminal,
    /// Listening on a channel's socket.
    Listen(PathBuf),
    /// Answering init on the status port.
    StatusPort,
    /// Creating a log file for virtiofsd.
    VirtiofsdLog,
    /// Creating, writing or passing on the in-memory initramfs.
    Initramfs(&'static str),
    /// Watching qemu's process for its exit.
    WatchQemu,
    /// Waiting for the VM's events.
    WaitVm,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::SignalHandlers => f.write_str("install signal handlers"),
            Step::Subreaper => f.write_str("become the reaper of helpers"),
            Step::TempDir => f.write_str("create a temp directory"),
            Step::RawTerminal => f.write_str("put the terminal in raw mode"),
            Step::Listen(path) => write!(f, "listen on {}", path.display()),
            Step::StatusPort => f.write_str("answer init on the status port"),
            Step::VirtiofsdLog => f.write_str("create a log for virtiofsd"),
            Step::Initramfs(what) => write!(f, "{what} the initramfs"),
            Step::WatchQemu => f.write_str("watch qemu"),
            Step::WaitVm => f.write_str("wait for the VM"),
        }
    }
}

impl From<mkinitrd::Error> for Error {
    fn from(e: mkinitrd::Error) -> Self {
        Error::Initramfs(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_the_style_guide() {
        let e = Error::Rootfs("/nope".into(), io::Error::from_raw_os_error(2));
        assert_eq!(
            e.to_string(),
            "cannot use /nope as the root: No such file or directory"
        );
        let e = Error::NotInstalled {
            program: "qemu-system-x86_64".into(),
            package: "qemu-system-x86",
        };
        assert_eq!(
            e.to_string(),
            "cannot find qemu-system-x86_64 (install qemu-system-x86)"
        );
    }

    #[test]
    fn a_kernel_without_the_vms_modules_is_named_with_the_fix() {
        let e = Error::Initramfs(mkinitrd::Error::MissingModules {
            moddir: "/lib/modules/6.1.0-x".into(),
            names: vec!["virtiofs".into(), "virtio_console".into()],
        });
        assert_eq!(
            e.to_string(),
            "cannot boot this kernel: virtiofs, virtio_console are neither in its module tree /lib/modules/6.1.0-x nor built in (use a kernel with virtio and virtiofs support, e.g. Debian's linux-image-cloud-amd64, with --kernel, or give its module tree with --moddir)"
        );
        assert_eq!(e.exit_code(), EXIT_SETUP);
    }

    #[test]
    fn exit_codes_are_distinct() {
        assert_eq!(Error::Timeout(Duration::from_secs(1)).exit_code(), 124);
        assert_eq!(Error::NotBooted(String::new()).exit_code(), 123);
        assert_eq!(Error::NoKernel(Vec::new()).exit_code(), 125);
        assert_eq!(Error::Signal(15).exit_code(), 143);
        assert_eq!(Error::Signal(2).exit_code(), 130);
        assert_eq!(Error::OutputClosed.exit_code(), 141);
        let full = io::Error::from_raw_os_error(28);
        let e = Error::WriteOutput(crate::channels::Output::Stdout, full);
        assert_eq!(e.exit_code(), 122);
        assert_eq!(
            e.to_string(),
            "cannot write the command's output to stdout: No space left on device; the VM was killed"
        );
    }
}
