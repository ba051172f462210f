//! One VM from start to end: kernel, engine, initramfs, one virtiofsd per
//! share, qemu, then an event loop over qemu's exit, init's status port,
//! stop signals and the timeout. Every helper is dropped (killed and
//! reaped) and the temp directory removed on every way out.

use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use init::status::Status;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fd::OwnedFd;
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::accel;
use crate::cli::Options;
use crate::error::Error;
use crate::initramfs;
use crate::kernel::{self, Host, Request};
use crate::process::{Helper, Streams, find_program};
use crate::qemu::{self, FsDevice, Machine, QEMU, QEMU_PACKAGE, ROOT_TAG};
use crate::signals::Signals;
use crate::tempdir::TempDir;
use crate::virtiofsd::{Export, Virtiofsd};

/// Boots the VM and waits for its end.
///
/// # Errors
/// Any step's failure; [`Error::NotBooted`] when init did not hand over.
pub fn run(options: &Options, signals: &Signals) -> Result<(), Error> {
    let rootfs = check_dir(&options.rootfs)?;
    let debug = options.debug;

    // 1. The kernel and the module tree that matches it.
    let request = Request {
        image: options.kernel.as_deref(),
        version: options.kver.as_deref(),
        moddir: options.moddir.as_deref(),
    };
    let kernel = kernel::find(&rootfs, request, &Host::current())?;
    if debug {
        eprintln!(
            "chrootvm: kernel {} ({}), modules {}, from {}",
            kernel.image.display(),
            kernel.version.as_deref().unwrap_or("version unknown"),
            kernel.moddir.display(),
            kernel.source
        );
    }

    // 2. qemu, and whether KVM works here.
    let qemu_path = find_program(QEMU).ok_or(Error::NotInstalled {
        program: QEMU.into(),
        package: QEMU_PACKAGE,
    })?;
    let mut scratch =
        TempDir::create("vm").map_err(|e| Error::Io("create a temp directory".into(), e))?;
    let engine = accel::choose(options.accel, &qemu_path, scratch.path(), debug)?;

    // 3. The initramfs, in memory.
    let initrd = initramfs::build(&kernel)?;
    if debug {
        eprintln!(
            "chrootvm: initramfs with modules {}",
            initrd.modules.join(", ")
        );
    }

    // 4. One virtiofsd per shared directory, each socket awaited.
    let virtiofsd = Virtiofsd::find()?;
    let mut shares = vec![(ROOT_TAG.to_string(), rootfs.clone(), true)];
    for share in &options.shares {
        shares.push((share.tag.clone(), check_dir(&share.path)?, share.read_only));
    }
    let mut daemons = Vec::new();
    let mut filesystems = Vec::new();
    for (i, (tag, dir, read_only)) in shares.iter().enumerate() {
        let socket = scratch.path().join(format!("fs{i}.sock"));
        let export = Export {
            dir,
            socket: &socket,
            read_only: *read_only,
        };
        daemons.push(virtiofsd.start(&export, debug)?);
        filesystems.push(FsDevice {
            tag: tag.clone(),
            socket,
        });
    }

    // 5. The status port's socket; qemu connects to it.
    let status_path = scratch.path().join("status.sock");
    let listener = UnixListener::bind(&status_path)
        .map_err(|e| Error::Io(format!("listen on {}", status_path.display()), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Io("set up the status socket".into(), e))?;

    // 6. qemu.
    let cmdline = qemu::kernel_cmdline(&options.init, &options.shares, debug, &options.append);
    let initrd_path = initrd.pass_to_child()?;
    let machine = Machine {
        qemu: &qemu_path,
        engine,
        memory: &options.memory,
        cpus: options.cpus,
        kernel: &kernel.image,
        initrd: &initrd_path,
        cmdline: &cmdline,
        filesystems: &filesystems,
        status: &status_path,
    };
    let argv = qemu::argv(&machine);
    if debug {
        eprintln!("chrootvm: running {}", crate::shell_words(&argv));
    }
    let mut vm = Helper::spawn(&argv, Streams::inherit())?;
    drop(initrd);

    // 7. Wait for the end.
    let deadline = options.timeout.map(|limit| (Instant::now() + limit, limit));
    let end = wait(&mut vm, listener, signals, deadline, &mut scratch);
    drop(vm);
    drop(daemons);
    let (exit, status) = end?;
    if debug {
        eprintln!("chrootvm: qemu exited ({exit}); init's last status: {status:?}");
    }
    outcome(exit, status)
}

/// The ROOTFS or a share: an existing directory, made absolute.
fn check_dir(path: &Path) -> Result<PathBuf, Error> {
    let dir = path
        .canonicalize()
        .map_err(|e| Error::Rootfs(path.to_path_buf(), e))?;
    if !dir.is_dir() {
        return Err(Error::Rootfs(
            path.to_path_buf(),
            io::Error::from_raw_os_error(rustix::io::Errno::NOTDIR.raw_os_error()),
        ));
    }
    Ok(dir)
}

/// What the VM's end means for chrootvm.
fn outcome(exit: ExitStatus, status: Option<Status>) -> Result<(), Error> {
    match status {
        Some(Status::Handover) => Ok(()),
        Some(Status::Exit(_)) => Ok(()),
        Some(Status::Fatal) => Err(Error::NotBooted("init failed (its error is above)".into())),
        None if exit.success() => Err(Error::NotBooted(
            "the guest powered off before init reported (see the console output above)".into(),
        )),
        None => Err(Error::NotBooted(format!("qemu failed ({exit})"))),
    }
}

/// The event loop: returns qemu's exit status and the last status line
/// init sent, or the timeout or signal that ended the wait.
fn wait(
    vm: &mut Helper,
    listener: UnixListener,
    signals: &Signals,
    deadline: Option<(Instant, Duration)>,
    scratch: &mut TempDir,
) -> Result<(ExitStatus, Option<Status>), Error> {
    let pid = Pid::from_child(vm.child());
    let vm_exit = pidfd_open(pid, PidfdFlags::empty())
        .map_err(|e| Error::Io("watch qemu".into(), e.into()))?;
    let mut listener = Some(listener);
    let mut port = StatusPort::default();
    loop {
        if let Some(exit) = vm.try_wait() {
            port.drain();
            return Ok((exit, port.last));
        }
        let timeout = match deadline {
            Some((at, limit)) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout(limit));
                }
                Some(left)
            }
            None => None,
        };
        poll_once(
            &vm_exit,
            signals,
            listener.as_ref(),
            port.stream.as_ref(),
            timeout,
        )?;
        if let Some(signal) = signals.caught() {
            return Err(Error::Signal(signal));
        }
        if let Some(accepted) = listener.as_ref().and_then(|l| l.accept().ok()) {
            // qemu connects here after every other socket: nothing in the
            // temp directory is needed any more, so it goes now, and even
            // a SIGKILLed chrootvm leaves nothing behind.
            listener = None;
            scratch.remove();
            let _ = accepted.0.set_nonblocking(true);
            port.stream = Some(accepted.0);
        }
        port.read_available();
    }
}

/// Waits until one of the fds is readable or the timeout passes.
fn poll_once(
    vm_exit: &OwnedFd,
    signals: &Signals,
    listener: Option<&UnixListener>,
    port: Option<&UnixStream>,
    timeout: Option<Duration>,
) -> Result<(), Error> {
    let mut fds = vec![
        PollFd::new(vm_exit, PollFlags::IN),
        PollFd::from_borrowed_fd(signals.fd(), PollFlags::IN),
    ];
    if let Some(listener) = listener {
        fds.push(PollFd::new(listener, PollFlags::IN));
    }
    if let Some(port) = port {
        fds.push(PollFd::new(port, PollFlags::IN));
    }
    let timeout = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    match poll(&mut fds, timeout.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(Error::Io("wait for the VM".into(), e.into())),
    }
}

/// init's status port, read line by line; the last valid line counts.
#[derive(Default)]
struct StatusPort {
    stream: Option<UnixStream>,
    pending: Vec<u8>,
    last: Option<Status>,
}

impl StatusPort {
    /// Reads what is there without blocking.
    fn read_available(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.stream = None;
                    break;
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(status) = Status::parse(&line[..end]) {
                self.last = Some(status);
            }
        }
    }

    /// Reads the rest after qemu exited (its end of the socket is closed).
    fn drain(&mut self) {
        self.read_available();
    }
}
