//! The user's terminal, when the command or system runs on it: chrootvm
//! relays it to the guest's console, so it is put in raw mode (every key,
//! Ctrl-C included, goes to the guest) and its settings are restored
//! however chrootvm ends (normal exit, error, signal); its size goes to
//! the guest.

use std::io::{self, IsTerminal};
use std::os::fd::AsFd;

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};

/// A terminal whose settings are put back when this is dropped.
pub struct Terminal {
    saved: Termios,
}

impl Terminal {
    /// The terminal, when both stdin and stdout are one (an interactive
    /// session); `None` otherwise (CI, pipes, redirections).
    pub fn attach() -> Option<Terminal> {
        if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
            return None;
        }
        let saved = tcgetattr(io::stdin().as_fd()).ok()?;
        Some(Terminal { saved })
    }

    /// Raw mode: no line editing, echo or signal keys on the host side;
    /// the guest's terminal does all of that.
    ///
    /// # Errors
    /// The terminal refused the settings.
    pub fn make_raw(&self) -> io::Result<()> {
        let mut raw = self.saved.clone();
        raw.make_raw();
        tcsetattr(io::stdin().as_fd(), OptionalActions::Now, &raw).map_err(io::Error::from)
    }

    /// Rows and columns, for the guest's console.
    pub fn size(&self) -> Option<(u16, u16)> {
        let size = tcgetwinsize(io::stdin().as_fd()).ok()?;
        (size.ws_row > 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // Best effort: a terminal that is gone needs no restoring.
        let _ = tcsetattr(io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}
