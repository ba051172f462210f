//! SIGINT, SIGTERM and SIGHUP (and SIGWINCH, a resized terminal) turned
//! into an event for the main loop: the
//! handlers (signal-hook's) only record the signal and write a byte to a
//! socket the loop polls, so cleanup (killing helpers, removing the temp
//! directory) runs on the main thread in the ordinary drop order.
//!
//! A signal ignored when chrootvm starts stays ignored, as for any
//! program: `nohup` ignores SIGHUP, and a shell ignores SIGINT and SIGQUIT
//! in its background jobs. Which ones are ignored is read from
//! /proc/self/status (`SigIgn`, [`Dispositions`]), which needs no unsafe
//! sigaction call.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mkinitrd::signal_disposition::Dispositions;
use rustix::fd::{AsFd, BorrowedFd};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH};

/// The signals that stop chrootvm (and its VM) cleanly.
pub const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// Signals caught so far, readable through a pollable fd.
pub struct Signals {
    wake: UnixStream,
    caught: Arc<AtomicUsize>,
    resized: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// The socket pair or a handler cannot be set up.
    pub fn install() -> io::Result<Signals> {
        let (wake, notify) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        notify.set_nonblocking(true)?;
        let caught = Arc::new(AtomicUsize::new(0));
        let at_start = Dispositions::read();
        for signal in STOP_SIGNALS
            .into_iter()
            .filter(|s| !at_start.is_ignored(*s))
        {
            let number = usize::try_from(signal).unwrap_or(0);
            signal_hook::flag::register_usize(signal, Arc::clone(&caught), number)?;
            signal_hook::low_level::pipe::register(signal, notify.try_clone()?)?;
        }
        // The terminal's window changed: its size goes to the guest.
        let resized = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGWINCH, Arc::clone(&resized))?;
        signal_hook::low_level::pipe::register(SIGWINCH, notify)?;
        Ok(Signals {
            wake,
            caught,
            resized,
        })
    }

    /// Whether the terminal was resized since the last call.
    pub fn resized(&self) -> bool {
        self.resized.swap(false, Ordering::SeqCst)
    }

    /// Readable when a signal has arrived.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// The last stop signal caught, if any.
    pub fn caught(&self) -> Option<i32> {
        // Drain the wake-up bytes so the fd stops polling readable.
        let mut sink = [0u8; 64];
        while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
        match self.caught.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }
}
