//! What every step needs: the logger, the parsed command line, and the way
//! out. A fatal error prints one line, tells the host (`init.status`),
//! syncs and powers off; PID 1 never returns from here.

use core::cell::OnceCell;
use core::fmt::{self, Write};
use init::buf::{Line, Show};
use init::cmdline::Cmdline;
use init::errno::Text;
use init::status::{self, Status};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::system::{RebootCommand, reboot};

use crate::fsutil;
use crate::log::{Log, error, warning};

/// How long to wait for the status port to appear: virtio_console adds
/// ports from a work queue after the host answers, not during module init.
const STATUS_PORT_WAIT_MS: u32 = 2000;

/// The boot's shared state.
pub struct Boot<'a> {
    /// Console logger, verbosity from the command line.
    pub log: Log,
    /// The parsed kernel command line (empty until read).
    pub cmdline: Cmdline<'a>,
    /// The status port, opened on first use.
    status_port: OnceCell<OwnedFd>,
}

impl<'a> Boot<'a> {
    /// State before the command line is read.
    pub fn new() -> Self {
        Boot {
            log: Log::new(),
            cmdline: Cmdline::parse(b""),
            status_port: OnceCell::new(),
        }
    }

    /// Takes the parsed command line and its verbosity.
    pub fn set_cmdline(&mut self, cmdline: Cmdline<'a>) {
        self.log.set_verbosity(cmdline.verbosity);
        self.cmdline = cmdline;
    }

    /// Tells the host how the boot went, when it asked (`init.status`).
    /// Best effort: the console already has the human-readable story.
    pub fn report(&self, status: Status) {
        let Some(port) = self.status_port() else {
            return;
        };
        let mut line = Line::<80>::new();
        let _ = write!(line, "{status}");
        if let Err(errno) = write_all(port, line.finish()) {
            warning!(
                self.log,
                "cannot report status to the host: {}",
                Text(errno)
            );
        }
    }

    /// Waits until the host answers `ok` on the status port (it has all
    /// output) or goes away.
    pub fn wait_for_ack(&self) {
        let Some(port) = self.status_port() else {
            return;
        };
        let mut seen = 0;
        let mut byte = [0u8; 1];
        while seen < status::ACK.len() {
            match rustix::io::read(port, &mut byte) {
                Ok(1) if byte[0] == status::ACK[seen] => seen += 1,
                Ok(1) => seen = usize::from(byte[0] == status::ACK[0]),
                Err(Errno::INTR) => {}
                // EOF or an error: nobody is left to wait for.
                _ => return,
            }
        }
    }

    /// Opens the status port when `init.status` asks for one, while /dev
    /// and /sys are at hand: the new root may have neither.
    pub fn open_status_port(&self) {
        let _ = self.status_port();
    }

    /// The status port, when `init.status` asked for one and it opened.
    pub fn status(&self) -> Option<&OwnedFd> {
        self.status_port.get()
    }

    fn status_port(&self) -> Option<&OwnedFd> {
        if !self.cmdline.status {
            return None;
        }
        if self.status_port.get().is_none() {
            let Some(path) = fsutil::find_virtio_port(status::PORT_NAME, STATUS_PORT_WAIT_MS)
            else {
                warning!(
                    self.log,
                    "cannot report status: no virtio port named {} (is virtio_console loaded?)",
                    Show(status::PORT_NAME)
                );
                return None;
            };
            match rustix::fs::open(
                path.as_c_str(),
                OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    let _ = self.status_port.set(fd);
                }
                Err(errno) => {
                    warning!(
                        self.log,
                        "cannot open {}: {}",
                        Show(path.as_bytes()),
                        Text(errno)
                    );
                    return None;
                }
            }
        }
        self.status_port.get()
    }

    /// Prints `init: <message>`, opens the emergency shell when wanted,
    /// reports `fatal`, syncs and powers off.
    pub fn fatal(&self, message: fmt::Arguments<'_>) -> ! {
        error!(self.log, "{message}");
        if crate::shell::wanted(self) {
            crate::shell::run(self);
        }
        self.report(Status::Fatal);
        power_off()
    }
}

/// Writes all of `data` to `fd`, retrying short writes and EINTR.
pub fn write_all(fd: &OwnedFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

/// Syncs and powers the machine off. If even that fails, PID 1 waits
/// forever rather than exiting (which would panic the kernel).
pub fn power_off() -> ! {
    rustix::fs::sync();
    // Failure is only possible without CAP_SYS_BOOT, which PID 1 has.
    let _ = reboot(RebootCommand::PowerOff);
    loop {
        rustix::event::pause();
    }
}

/// `fatal!(boot, "fmt", args)`: report and power off.
macro_rules! fatal {
    ($boot:expr, $($arg:tt)*) => { $boot.fatal(format_args!($($arg)*)) };
}

pub(crate) use fatal;
