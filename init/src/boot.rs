//! What every step needs: the logger, the parsed command line, and the way
//! out. A fatal error prints one line, tells the host (`init.status`),
//! syncs and powers off; PID 1 never returns from here.

use core::fmt::{self, Write};
use init::buf::Line;
use init::cmdline::Cmdline;
use init::status::{self, Status};
use rustix::fs::{Mode, OFlags};
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
}

impl<'a> Boot<'a> {
    /// State before the command line is read.
    pub fn new() -> Self {
        Boot {
            log: Log::new(),
            cmdline: Cmdline::parse(b""),
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
        if !self.cmdline.status {
            return;
        }
        let Some(port) = fsutil::find_virtio_port(status::PORT_NAME, STATUS_PORT_WAIT_MS) else {
            warning!(
                self.log,
                "cannot report status: no virtio port named {} (is virtio_console loaded?)",
                init::buf::Show(status::PORT_NAME)
            );
            return;
        };
        let mut line = Line::<32>::new();
        let _ = write!(line, "{status}");
        let written = rustix::fs::open(
            port.as_c_str(),
            OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .and_then(|fd| rustix::io::write(&fd, line.finish()));
        if let Err(errno) = written {
            warning!(
                self.log,
                "cannot report status on {}: {}",
                init::buf::Show(port.as_bytes()),
                init::errno::Text(errno)
            );
        }
    }

    /// Prints `init: <message>`, reports `fatal`, syncs and powers off.
    pub fn fatal(&self, message: fmt::Arguments<'_>) -> ! {
        error!(self.log, "{message}");
        self.report(Status::Fatal);
        power_off()
    }
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
