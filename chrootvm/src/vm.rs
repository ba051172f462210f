//! One VM from start to end: root, kernel, engine, how directories are
//! shared, what PID 1 does, the initramfs, then a boot: one virtiofsd per
//! share, the channels, qemu, and an event loop over qemu's exit, stop
//! signals, the timeouts and the channels. Every helper is dropped (killed
//! and reaped), the temp directory removed and the terminal restored on
//! every way out.
//!
//! A boot has a watchdog, so it never hangs: under KVM the kernel must say
//! something on the console within [`KVM_FIRST_WORDS`], else the VM is
//! killed and (with `--accel auto`) booted once more under TCG, and the
//! verdict remembered; under any engine init must report within
//! `--boot-timeout`, else the run ends with "the VM did not boot".

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use init::status::Status;
use mkinitrd::kmod::ModuleTree;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::accel;
use crate::channels::{Channels, Event, GuestEnd, Kind, Setup, Slot};
use crate::cli::{DEFAULT_CPUS, DEFAULT_MEMORY, Job, Options, Root, Writes};
use crate::error::{Error, Step};
use crate::initramfs::{self, Contents, Initramfs};
use crate::job;
use crate::kernel::{self, Host, Request};
use crate::process::{Helper, Streams, find_program};
use crate::qemu::{
    self, Engine, FsDevice, KernelArgs, Machine, Port, QEMU, QEMU_PACKAGE, ROOT_TAG, RootArg,
    Shape, TscClock,
};
use crate::shape;
use crate::signals::Signals;
use crate::tempdir::TempDir;
use crate::terminal::Terminal;
use crate::virtiofsd::{Export, NINEP_MODULES, Transport};

/// The module that gives init its status and stdio ports.
const PORT_MODULE: &str = "virtio_console";

/// How long a kernel under KVM may take to say its first words on the
/// console. Under KVM qemu starts, the firmware loads the kernel and the
/// kernel registers its console in a few hundred milliseconds (under TCG,
/// ten times slower, about 0.6 s here); 5 s is over ten times that, so a
/// busy host is not mistaken for a KVM that cannot run Linux, which would
/// send every run of this host boot to TCG.
pub const KVM_FIRST_WORDS: Duration = Duration::from_secs(5);

/// Boots the VM, waits for its end and returns chrootvm's exit status.
///
/// # Errors
/// Any step's failure; [`Error::NotBooted`] when the guest ended without
/// reaching its system or reporting the command's status.
pub fn run(options: &Options, signals: &Signals) -> Result<u8, Error> {
    let debug = options.debug;

    // 1. The root: a directory to share, an image that stays the root, or
    // a disk's block device.
    let (rootfs, image) = match &options.root {
        Root::Dir(dir) => (
            Some(check_dir(dir).map_err(|e| Error::Rootfs(dir.clone(), e))?),
            None,
        ),
        Root::Image(image) => (None, Some(check_file(image)?)),
        Root::Device(_) => (None, None),
    };
    let disks = options
        .disks
        .iter()
        .map(|disk| check_file(disk))
        .collect::<Result<Vec<_>, _>>()?;

    let (memory, cpus, image_net) = vm_size(options, image.as_deref())?;
    let net = options.net || image_net;
    if net && let Some(root) = &rootfs {
        warn_without_resolv_conf(root);
    }
    if debug {
        note!("{cpus} CPUs, {memory} of memory");
    }
    // Host ports are taken before anything starts, or not at all.
    check_ports(options)?;

    // 2. The kernel and the module tree that matches it.
    let request = Request {
        image: options.kernel.as_deref(),
        version: options.kver.as_deref(),
        moddir: options.moddir.as_deref(),
    };
    let kernel = kernel::find(rootfs.as_deref(), request, &Host::current())?;
    if debug {
        note!(
            "kernel {} ({}), modules {}, from {}",
            kernel.image.display(),
            kernel.version.as_deref().unwrap_or("version unknown"),
            kernel.moddir.display(),
            kernel.source
        );
    }
    let tree = ModuleTree::open(&kernel.moddir)?;

    // 3. qemu, and whether KVM boots Linux here.
    let qemu_path = find_program(QEMU).ok_or(Error::NotInstalled {
        program: QEMU.into(),
        package: QEMU_PACKAGE,
    })?;
    let choice = {
        let probe_dir = TempDir::create("vm").map_err(|e| Error::Host(Step::TempDir, e))?;
        accel::choose(options.accel, &qemu_path, probe_dir.path(), debug)?
    };

    // 4. How directories reach the guest: virtiofsd, else qemu's 9p.
    let dirs = shared_dirs(rootfs.as_deref(), options)?;
    let transport = if dirs.is_empty() {
        None
    } else {
        let has_9p = NINEP_MODULES
            .iter()
            .all(|m| tree.get(m).is_some() || tree.is_builtin(m));
        Some(Transport::choose(has_9p)?)
    };
    if debug && let Some(transport) = &transport {
        note!("sharing directories over {}", transport.fstype());
    }

    // 4b. The machine: microvm when the kernel and host allow it.
    let devices = dirs.len() + disks.len() + usize::from(net) + 1;
    let chosen = shape::choose(
        &shape::Needs {
            choice: options.machine,
            kernel: &kernel.image,
            tree: &tree,
            moddir: &kernel.moddir,
            tcg: choice.engine == Engine::Tcg || choice.may_fall_back,
            devices,
        },
        debug,
    )?;
    if debug {
        note!(
            "machine {}, booting {}",
            chosen.shape.name(),
            chosen.kernel.display()
        );
    }

    // 5. What PID 1 does. A command runs on the terminal when chrootvm has
    // one, else on ports whose output is relayed byte for byte; a system
    // (--init) runs on the console. Either console is relayed to ours.
    let terminal = Terminal::attach();
    let (handover, run_spec) = match &options.job {
        Job::Handover(init) => (Some(init.as_str()), None),
        Job::Command(command) => {
            let size = terminal.as_ref().and_then(Terminal::size);
            let spec = job::run_spec(command, terminal.is_some(), size)?;
            (None, Some(spec))
        }
    };
    let pipes = run_spec.is_some() && terminal.is_none();
    // A command on the terminal follows its size; init sets the console's.
    let run_spec_on_tty = run_spec.is_some() && terminal.is_some();

    // 6. The initramfs, in memory.
    let mut modules = module_names(
        chosen.shape,
        transport.as_ref(),
        options.writes,
        rootfs.is_some(),
    );
    if net {
        modules.push(NET_MODULE);
    }
    if !disks.is_empty() {
        modules.extend(disk_modules(&tree, &options.root, options.writes));
    }
    let contents = Contents {
        modules: &modules,
        run_spec,
    };
    let initrd = match &image {
        None => initramfs::build(&tree, contents)?,
        Some(image) => initramfs::build_before(image, &tree, contents)?,
    };
    if debug {
        note!("initramfs with modules {}", initrd.modules.join(", "));
    }

    // 7. The terminal is the guest's from here on.
    if let Some(terminal) = &terminal {
        terminal
            .make_raw()
            .map_err(|e| Error::Host(Step::RawTerminal, e))?;
    }

    // 8. Boot; once more under TCG when KVM showed no sign of life.
    let guest = Guest {
        options,
        qemu: &qemu_path,
        kernel: &chosen.kernel,
        shape: chosen.shape,
        clock: chosen.clock,
        initrd: &initrd,
        memory: &memory,
        cpus,
        disks: &disks,
        dirs: &dirs,
        transport: transport.as_ref(),
        handover,
        pipes,
        net,
        terminal: terminal.as_ref().filter(|_| run_spec_on_tty),
        deadline: options.timeout.map(|limit| (Instant::now() + limit, limit)),
    };
    if let Some(port) = options.gdb {
        note!(
            "gdb stub on 127.0.0.1:{port}; attach with: gdb vmlinux -ex 'target remote 127.0.0.1:{port}'"
        );
    }
    let mut engine = choice.engine;
    let result = loop {
        match boot(&guest, engine, signals) {
            Err(Error::KvmUnusable(what)) if choice.may_fall_back => {
                note!(
                    "{what}: booting again under TCG (software emulation), as every run will until the host reboots"
                );
                accel::remember_unusable(&qemu_path, &what);
                engine = Engine::Tcg;
            }
            result => break result,
        }
    };
    drop(terminal);
    result
}

/// Everything one boot needs, decided once for every attempt.
struct Guest<'a> {
    options: &'a Options,
    qemu: &'a Path,
    kernel: &'a Path,
    shape: Shape,
    /// The TSC the kernel is told about under TCG.
    clock: Option<TscClock>,
    initrd: &'a Initramfs,
    memory: &'a str,
    cpus: u32,
    disks: &'a [PathBuf],
    dirs: &'a [(String, PathBuf, bool)],
    transport: Option<&'a Transport>,
    handover: Option<&'a str>,
    /// The command's stdio are ports (no terminal).
    pipes: bool,
    /// User-mode networking.
    net: bool,
    /// The user's terminal, when the command runs on it.
    terminal: Option<&'a Terminal>,
    /// `--timeout`: when, and the limit as given.
    deadline: Option<(Instant, Duration)>,
}

/// One boot under `engine`, to the VM's end.
///
/// # Errors
/// As [`run`]; [`Error::KvmUnusable`] when under KVM the kernel said
/// nothing in [`KVM_FIRST_WORDS`] or qemu ended before it did.
fn boot(guest: &Guest<'_>, engine: Engine, signals: &Signals) -> Result<u8, Error> {
    let options = guest.options;
    let debug = options.debug;
    let mut scratch = TempDir::create("vm").map_err(|e| Error::Host(Step::TempDir, e))?;

    // The shared directories: a virtiofsd each (socket awaited), or 9p.
    let mut daemons = Vec::new();
    let mut filesystems = Vec::new();
    for (i, (tag, dir, read_only)) in guest.dirs.iter().enumerate() {
        match guest.transport {
            Some(Transport::Virtiofs(virtiofsd)) => {
                let socket = scratch.path().join(format!("fs{i}.sock"));
                let export = Export {
                    dir,
                    socket: &socket,
                    read_only: *read_only,
                };
                daemons.push(virtiofsd.start(&export, debug)?);
                filesystems.push(FsDevice::Virtiofs {
                    tag: tag.clone(),
                    socket,
                });
            }
            _ => filesystems.push(FsDevice::NineP {
                tag: tag.clone(),
                dir: dir.clone(),
                read_only: *read_only,
            }),
        }
    }

    // The channels qemu connects to.
    let mut kinds = vec![Kind::Status];
    if guest.pipes {
        kinds.extend([Kind::Stdin, Kind::Stdout, Kind::Stderr]);
    }
    kinds.push(Kind::Console);
    let setup = Setup {
        live_console: debug,
        relay_console: !guest.pipes,
    };
    let mut channels = Channels::listen(scratch.path(), &kinds, setup)?;
    let ports: Vec<Port> = kinds
        .iter()
        .filter_map(|&kind| {
            let name = kind.port_name()?;
            Some(Port {
                name: String::from_utf8_lossy(name).into_owned(),
                socket: Channels::socket(scratch.path(), kind),
            })
        })
        .collect();
    let console = Channels::socket(scratch.path(), Kind::Console);

    // qemu.
    let cmdline = qemu::kernel_cmdline(&KernelArgs {
        shape: guest.shape,
        clock: guest.clock.filter(|_| engine == Engine::Tcg),
        fstype: guest.transport.map_or("virtiofs", Transport::fstype),
        root: match &options.root {
            Root::Dir(_) => RootArg::Shared,
            Root::Image(_) => RootArg::Initramfs,
            Root::Device(device) => RootArg::Device(device),
        },
        writes: options.writes,
        shares: &options.shares,
        handover: guest.handover,
        debug,
        net: guest.net,
        gdb: options.gdb.is_some(),
        kernel_speaks: engine == Engine::Kvm,
        append: &options.append,
    });
    let (initrd_fd, initrd_path) = guest.initrd.pass_to_child()?;
    let machine = Machine {
        shape: guest.shape,
        disks: guest.disks,
        qemu: guest.qemu,
        engine,
        memory: guest.memory,
        cpus: guest.cpus,
        kernel: guest.kernel,
        initrd: &initrd_path,
        cmdline: &cmdline,
        filesystems: &filesystems,
        console: &console,
        ports: &ports,
        network: guest.net.then_some(options.forwards.as_slice()),
        gdb: options.gdb,
    };
    let argv = qemu::argv(&machine);
    if debug {
        note!("running {}", crate::shell_words(&argv));
    }
    // qemu gets none of our streams but stderr: chrootvm relays the
    // command's stdio and the console.
    let streams = Streams {
        stdin: Stdio::null(),
        stdout: Stdio::null(),
        stderr: Stdio::inherit(),
    };
    let mut vm = Helper::spawn(&argv, streams)?;
    drop(initrd_fd);

    // Wait for the end.
    let watchdog = Watchdog {
        started: Instant::now(),
        first_words: (engine == Engine::Kvm).then_some(KVM_FIRST_WORDS),
        boot_limit: options.boot_timeout,
    };
    let end = wait(
        &mut vm,
        &mut channels,
        signals,
        guest.deadline,
        &watchdog,
        guest.terminal,
        &mut scratch,
    );
    drop(vm);
    drop(daemons);
    let exit = match end {
        Ok(exit) => exit,
        Err(e) => {
            report_console(&channels, &e, guest.pipes, debug);
            return Err(e);
        }
    };
    if debug {
        let how = exit.map_or("the guest halted".to_string(), |e| {
            format!("qemu exited ({e})")
        });
        match &channels.last_status {
            Some(status) => note!(
                "{how}; init's last status line: {}",
                status.to_string().trim_end()
            ),
            None => note!("{how}; init reported no status"),
        }
    }
    if let Some(exit) = exit
        && engine == Engine::Kvm
        && !channels.console_spoke()
        && channels.last_status.is_none()
    {
        // qemu ended under KVM before the kernel said a word.
        return Err(Error::KvmUnusable(format!(
            "qemu ended ({exit}) before the kernel wrote anything under KVM"
        )));
    }
    let outcome = outcome(
        &options.job,
        exit,
        channels.last_status,
        channels.guest_end().as_ref(),
    );
    if let Err(e) = &outcome {
        report_console(&channels, e, guest.pipes, debug);
    }
    outcome
}

/// Shows what the console said when a boot failed, unless it is already
/// on the screen (`--debug`, or a console relayed once the guest was up).
fn report_console(channels: &Channels, error: &Error, pipes: bool, debug: bool) {
    let shown = debug || (!pipes && channels.started());
    let story = matches!(error, Error::NotBooted(_) | Error::KvmUnusable(_));
    let tail = channels.console_tail();
    if story && !shown && !tail.is_empty() {
        let mut err = io::stderr().lock();
        let _ = err.write_all(tail);
        if !tail.ends_with(b"\n") {
            let _ = err.write_all(b"\n");
        }
    }
}

/// When a boot that shows no sign of life is given up.
struct Watchdog {
    /// When qemu was started.
    started: Instant,
    /// Under KVM: how long the kernel may take to say a first word.
    first_words: Option<Duration>,
    /// How long init may take to report.
    boot_limit: Duration,
}

impl Watchdog {
    /// The error when the guest has been silent too long; else how long it
    /// may still be.
    fn check(&self, channels: &Channels) -> Result<Option<Duration>, Error> {
        if channels.started() {
            return Ok(None);
        }
        let waited = self.started.elapsed();
        let mut next = self.boot_limit;
        if let Some(limit) = self.first_words.filter(|_| !channels.console_spoke()) {
            if waited >= limit {
                return Err(Error::KvmUnusable(format!(
                    "the kernel wrote nothing on the console within {}s under KVM",
                    limit.as_secs()
                )));
            }
            next = next.min(limit);
        }
        if waited >= self.boot_limit {
            let seen = match channels.last_console_line() {
                Some(line) => format!("the console's last line: {line}"),
                None => "nothing on the console (--debug shows the kernel's messages)".into(),
            };
            return Err(Error::NotBooted(format!(
                "init did not report within {}s (--boot-timeout); {seen}",
                self.boot_limit.as_secs()
            )));
        }
        Ok(Some(next - waited))
    }
}

/// The directories to share as (tag, path, read-only): the root first,
/// then `--mount`/`--mount-ro`.
fn shared_dirs(
    rootfs: Option<&Path>,
    options: &Options,
) -> Result<Vec<(String, PathBuf, bool)>, Error> {
    let mut dirs = Vec::new();
    if let Some(rootfs) = rootfs {
        // An overlay's lower layer stays read-only: writes go to tmpfs.
        dirs.push((
            ROOT_TAG.to_string(),
            rootfs.to_path_buf(),
            options.writes != Writes::Through,
        ));
    }
    for share in &options.shares {
        let dir = check_dir(&share.path).map_err(|e| Error::Share {
            tag: share.tag.clone(),
            path: share.path.clone(),
            cause: e,
        })?;
        dirs.push((share.tag.clone(), dir, share.read_only));
    }
    Ok(dirs)
}

/// The modules the guest needs: the share transport's, the port driver,
/// overlayfs for `--overlay`.
fn module_names(
    shape: Shape,
    transport: Option<&Transport>,
    writes: Writes,
    rootfs: bool,
) -> Vec<&'static str> {
    let mut names: Vec<&str> = vec![shape.transport_module()];
    match transport {
        // mkinitrd's default set names the PCI transport; the shape's is
        // already in.
        Some(Transport::Virtiofs(_)) => names.extend(
            mkinitrd::kernel::DEFAULT_MODULES
                .iter()
                .filter(|&&m| m != Shape::Q35.transport_module()),
        ),
        Some(Transport::NineP) => names.extend(NINEP_MODULES),
        None => {}
    }
    names.push(PORT_MODULE);
    if rootfs && writes == Writes::Discarded {
        names.push("overlay");
    }
    names
}

/// The modules for `--disk`: virtio_blk, and for a `--root` on it the
/// file systems a root usually has (those the kernel has as modules; the
/// built-in ones need nothing), and overlayfs for `--overlay`.
fn disk_modules(tree: &ModuleTree, root: &Root, writes: Writes) -> Vec<&'static str> {
    let mut names = vec![DISK_MODULE];
    if matches!(root, Root::Device(_)) {
        names.extend(
            DISK_ROOT_FILESYSTEMS
                .iter()
                .filter(|m| tree.get(m).is_some()),
        );
        if writes == Writes::Discarded {
            names.push("overlay");
        }
    }
    names
}

/// The ROOTFS or a share: an existing directory, made absolute.
fn check_dir(path: &Path) -> io::Result<PathBuf> {
    let dir = path.canonicalize()?;
    if !dir.is_dir() {
        return Err(io::Error::from_raw_os_error(
            rustix::io::Errno::NOTDIR.raw_os_error(),
        ));
    }
    Ok(dir)
}

/// The `--initrd` image: a readable file.
fn check_file(path: &Path) -> Result<PathBuf, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Image(path.to_path_buf(), e))?;
    if !meta.is_file() {
        return Err(Error::Image(
            path.to_path_buf(),
            io::Error::from_raw_os_error(rustix::io::Errno::INVAL.raw_os_error()),
        ));
    }
    Ok(path.to_path_buf())
}

/// Memory and CPUs: the options, else the rapido resources an `--initrd`
/// image asks for (mkinitrd --mem/--cpus), else the defaults.
fn vm_size(options: &Options, image: Option<&Path>) -> Result<(String, u32, bool), Error> {
    let wanted = match image {
        Some(image) => {
            let data = std::fs::read(image).map_err(|e| Error::Image(image.to_path_buf(), e))?;
            let entries = mkinitrd::list::read_image(&data)?;
            mkinitrd::rsc::read_from_entries(&entries)
        }
        _ => mkinitrd::rsc::Resources::default(),
    };
    let memory = match (&options.memory, wanted.mem, image) {
        (Some(memory), _, _) => memory.clone(),
        (None, Some(memory), Some(image)) => crate::cli::parse_memory(&memory)
            .map_err(|e| Error::ImageResources(image.to_path_buf(), e.0))?,
        _ => DEFAULT_MEMORY.to_string(),
    };
    let cpus = options.cpus.or(wanted.cpus).unwrap_or(DEFAULT_CPUS);
    Ok((memory, cpus, wanted.net))
}

/// init publishes the user network's name server by covering the root's
/// /etc/resolv.conf (or its link's target in /run): a root with none
/// gets no name server, which is better said now than found later.
fn warn_without_resolv_conf(root: &Path) {
    let conf = root.join("etc/resolv.conf");
    if conf.symlink_metadata().is_err() {
        note!(
            "warning: {} does not exist, so the guest gets no name server (create an empty one)",
            conf.display()
        );
    }
}

/// The virtio network driver, for `--net`.
const NET_MODULE: &str = "virtio_net";

/// Refuses host ports that are taken (`--forward`, `--gdb`), naming the
/// port, before qemu would fail on them after the boot began.
fn check_ports(options: &Options) -> Result<(), Error> {
    let ports = options
        .forwards
        .iter()
        .map(|f| (f.host, "forward"))
        .chain(options.gdb.map(|port| (port, "serve gdb on")));
    for (port, what) in ports {
        std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| Error::Port {
            what,
            port,
            cause: e,
        })?;
    }
    Ok(())
}

/// The virtio-blk driver, for `--disk`.
const DISK_MODULE: &str = "virtio_blk";
/// File systems packed for a `--root` disk when the kernel has them as
/// modules: what mkfs makes by default on the distributions we boot.
const DISK_ROOT_FILESYSTEMS: [&str; 3] = ["ext4", "xfs", "btrfs"];

/// chrootvm's exit status for how the VM ended: qemu's exit status (none
/// when the guest halted and qemu was left to kill), init's last report
/// and the kernel's last words.
fn outcome(
    job: &Job,
    exit: Option<ExitStatus>,
    status: Option<Status>,
    end: Option<&GuestEnd>,
) -> Result<u8, Error> {
    let ended = match end {
        Some(GuestEnd::Halted) => "halted".to_string(),
        Some(GuestEnd::Restarted) => "rebooted".to_string(),
        Some(GuestEnd::Panicked(line)) => format!("panicked ({line})"),
        Some(GuestEnd::PoweredOff) | None => "powered off".to_string(),
    };
    match (job, status) {
        (_, Some(Status::Exit { code, .. })) => Ok(code),
        // A system's end is its power-off or halt.
        (Job::Handover(_), Some(Status::Handover))
            if !matches!(end, Some(GuestEnd::Panicked(_)) | Some(GuestEnd::Restarted)) =>
        {
            Ok(0)
        }
        (Job::Handover(_), Some(Status::Handover)) => Err(Error::NotBooted(format!(
            "the system {ended} after init handed over"
        ))),
        (_, Some(Status::Fatal)) => {
            Err(Error::NotBooted("init failed (its error is above)".into()))
        }
        (_, _) if exit.is_some_and(|e| !e.success()) && end.is_none() => {
            let exit = exit.map_or(String::new(), |e| e.to_string());
            Err(Error::NotBooted(format!("qemu failed ({exit})")))
        }
        (Job::Command(_), Some(Status::Run)) => Err(Error::NotBooted(format!(
            "the command started, but the guest {ended} before it ended (did the command {}?)",
            match end {
                Some(GuestEnd::Panicked(_)) => "crash the kernel",
                Some(GuestEnd::Halted) => "halt the VM",
                Some(GuestEnd::Restarted) => "reboot the VM",
                _ => "power off the VM",
            }
        ))),
        (Job::Command(_), _) => Err(Error::NotBooted(format!(
            "the guest {ended} before the command started"
        ))),
        (Job::Handover(_), _) => Err(Error::NotBooted(format!(
            "the guest {ended} before init handed over"
        ))),
    }
}

/// The event loop: returns qemu's exit status (none when the guest
/// halted: qemu would wait forever), or the timeout, signal, closed output
/// or silent guest that ended the wait.
fn wait(
    vm: &mut Helper,
    channels: &mut Channels,
    signals: &Signals,
    deadline: Option<(Instant, Duration)>,
    watchdog: &Watchdog,
    terminal: Option<&Terminal>,
    scratch: &mut TempDir,
) -> Result<Option<ExitStatus>, Error> {
    let vm_exit = pidfd_open(Pid::from_child(vm.child()), PidfdFlags::empty())
        .map_err(|e| Error::Host(Step::WatchQemu, e.into()))?;
    loop {
        if let Some(exit) = vm.try_wait() {
            return match channels.drain()? {
                Event::OutputClosed => Err(Error::OutputClosed),
                _ => Ok(Some(exit)),
            };
        }
        let mut left = watchdog.check(channels)?;
        if let Some((at, limit)) = deadline {
            let until = at.saturating_duration_since(Instant::now());
            if until.is_zero() {
                return Err(Error::Timeout(limit));
            }
            left = Some(left.map_or(until, |left| left.min(until)));
        }
        let timeout = left.map(|left| Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        });
        let ready: Vec<Slot> = {
            let fds = channels.poll_fds();
            let mut polled = vec![
                PollFd::new(&vm_exit, PollFlags::IN),
                PollFd::from_borrowed_fd(signals.fd(), PollFlags::IN),
            ];
            polled.extend(
                fds.iter()
                    .map(|(fd, flags, _)| PollFd::from_borrowed_fd(*fd, *flags)),
            );
            match poll(&mut polled, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::Host(Step::WaitVm, e.into())),
            }
            fds.iter()
                .zip(&polled[2..])
                .filter(|(_, p)| !p.revents().is_empty())
                .map(|(f, _)| f.2)
                .collect()
        };
        if let Some(signal) = signals.caught() {
            return Err(Error::Signal(signal));
        }
        if signals.resized()
            && let Some((rows, cols)) = terminal.and_then(Terminal::size)
        {
            channels.send_size(rows, cols);
        }
        for slot in ready {
            match channels.handle(slot)? {
                // qemu has connected to its last socket: nothing in the temp
                // directory is needed any more, so it goes now, and even a
                // SIGKILLed chrootvm leaves nothing behind.
                Event::AllConnected => scratch.remove(),
                Event::OutputClosed => return Err(Error::OutputClosed),
                Event::Halted => return Ok(None),
                // Power-off took 0.9 s of a 4.6 s boot under TCG
                // (bench/breakdown): the VM is ended instead.
                Event::Reported => return Ok(None),
                Event::None => {}
            }
        }
    }
}
