//! init's messages: one line each, `init: ` first, written to the console
//! with one `write`. Under `debug`/`init.debug` each step line carries the
//! monotonic time in the kernel's `[    1.234567]` form, so init's steps line
//! up with the kernel log; warnings and errors keep the plain
//! `init: cannot ...` form at every verbosity, for people and tools to grep.

use core::cell::Cell;
use core::fmt::{self, Write};
use init::buf::Line;
use init::cmdline::Verbosity;

use crate::rt;

/// Longest line init prints; longer ones are cut and marked.
const LINE_MAX: usize = 1024;

/// The console logger.
pub struct Log {
    verbosity: Verbosity,
    /// Microseconds spent writing to the console, which is slow on an
    /// emulated serial port: the profile keeps it apart from init's work.
    printing_us: Cell<u64>,
}

impl Log {
    /// A logger printing warnings and errors until told otherwise.
    pub const fn new() -> Self {
        Log {
            verbosity: Verbosity::Normal,
            printing_us: Cell::new(0),
        }
    }

    /// Applies the command line's `debug`/`quiet`.
    pub fn set_verbosity(&mut self, verbosity: Verbosity) {
        self.verbosity = verbosity;
    }

    /// Microseconds spent printing so far.
    pub fn printing_us(&self) -> u64 {
        self.printing_us.get()
    }

    /// Whether step-by-step lines are printed.
    pub fn debugging(&self) -> bool {
        self.verbosity == Verbosity::Debug
    }

    /// A step, printed only under `debug`.
    pub fn debug(&self, args: fmt::Arguments<'_>) {
        if self.debugging() {
            self.write(true, args);
        }
    }

    /// Something lost but not fatal, printed unless `quiet`.
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        if self.verbosity > Verbosity::Quiet {
            self.write(false, args);
        }
    }

    /// An error, always printed.
    pub fn error(&self, args: fmt::Arguments<'_>) {
        self.write(false, args);
    }

    fn write(&self, stamp: bool, args: fmt::Arguments<'_>) {
        let mut line = Line::<LINE_MAX>::new();
        line.push(b"init: ");
        let start = now_us();
        if stamp {
            let _ = write!(line, "{} ", Stamp(start));
        }
        let _ = line.write_fmt(args);
        // Best effort: with no console there is nowhere to report failure.
        let _ = rustix::io::write(rt::console(), line.finish());
        self.printing_us
            .set(self.printing_us.get() + (now_us() - start));
    }
}

/// Microseconds since boot on the monotonic clock.
pub fn now_us() -> u64 {
    rt::monotonic_us()
}

/// A time in the kernel log's `[    1.234567]` form.
pub struct Stamp(pub u64);

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:5}.{:06}]", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// `debug!(log, "fmt", args)`: a step under `debug`.
macro_rules! debug {
    ($log:expr, $($arg:tt)*) => {
        // Checked here too, so the arguments are not even computed.
        if $log.debugging() {
            $log.debug(format_args!($($arg)*))
        }
    };
}

/// `warning!(log, "fmt", args)`: a warning unless `quiet`.
macro_rules! warning {
    ($log:expr, $($arg:tt)*) => { $log.warn(format_args!($($arg)*)) };
}

/// `error!(log, "fmt", args)`: an error line, always printed.
macro_rules! error {
    ($log:expr, $($arg:tt)*) => { $log.error(format_args!($($arg)*)) };
}

pub(crate) use {debug, error, warning};
