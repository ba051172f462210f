//! Which signals this process ignores and which it catches, read from
//! `/proc/self/status` (`SigIgn`, `SigCgt`): sigaction(2) would tell as
//! much, but only through `unsafe`, which mkinitrd and chrootvm do not
//! have.
//!
//! A program leaves a signal that was ignored when it started ignored:
//! `nohup` ignores SIGHUP, and a shell ignores SIGINT and SIGQUIT in its
//! background jobs. chrootvm installs its stop handlers only for the others,
//! and mkinitrd's `signal_cleanup` catches only signals at their default.
//!
//! No state: each [`Dispositions::read`] reads the file again.

/// The signals this process ignores and those it catches with a handler,
/// as the kernel reports them: the others have their default action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dispositions {
    /// `SigIgn`: bit N-1 for signal N.
    ignored: u64,
    /// `SigCgt`: bit N-1 for signal N.
    caught: u64,
}

impl Dispositions {
    /// The dispositions now, process-wide (threads share them); every
    /// signal at its default when /proc cannot tell (not mounted).
    pub fn read() -> Dispositions {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Dispositions::parse(&status)
    }

    /// The dispositions `status`, the text of `/proc/PID/status`, gives; a
    /// missing or unreadable line counts as no signal.
    ///
    /// # Example
    /// ```
    /// use mkinitrd::signal_disposition::Dispositions;
    /// // Under nohup, in a background job: SIGHUP (1), SIGINT (2) and
    /// // SIGQUIT (3) ignored; SIGTERM (15) caught.
    /// let now = Dispositions::parse("SigIgn:\t0000000000000007\nSigCgt:\t0000000000004000\n");
    /// assert!(now.is_ignored(1) && now.is_ignored(3) && !now.is_ignored(15));
    /// assert!(now.is_caught(15) && !now.is_caught(1));
    /// ```
    pub fn parse(status: &str) -> Dispositions {
        Dispositions {
            ignored: parse_mask(status, "SigIgn:"),
            caught: parse_mask(status, "SigCgt:"),
        }
    }

    /// Whether `signal` is ignored (`SIG_IGN`).
    pub fn is_ignored(&self, signal: i32) -> bool {
        is_in(self.ignored, signal)
    }

    /// Whether `signal` runs a handler.
    pub fn is_caught(&self, signal: i32) -> bool {
        is_in(self.caught, signal)
    }
}

/// The hexadecimal mask on the line of `status` that starts with `field`;
/// 0 when there is none.
fn parse_mask(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0)
}

/// Whether signal number `signal` (1 to 64) is in `mask`.
fn is_in(mask: u64, signal: i32) -> bool {
    (1..=64).contains(&signal) && mask & (1 << (signal - 1)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};

    #[test]
    fn ignored_signals_are_read_from_sigign() {
        // nohup: SIGHUP (1) ignored; a background job: SIGINT (2), SIGQUIT (3).
        let mask = parse_mask(
            "Name:\tchrootvm\nSigIgn:\t0000000000000007\nSigCgt:\t0\n",
            "SigIgn:",
        );
        assert!(is_in(mask, SIGHUP) && is_in(mask, SIGINT));
        assert!(!is_in(mask, SIGTERM));
        assert_eq!(parse_mask("no such line", "SigIgn:"), 0);
        assert!(!is_in(u64::MAX, 0) && !is_in(u64::MAX, 65));
    }

    #[test]
    fn ignored_and_caught_are_told_apart() {
        // SIGUSR1 (10) caught, SIGQUIT (3) ignored; the other lines hold
        // signals too and must not be taken for these.
        let status = "SigPnd:\tffffffffffffffff\nShdPnd:\tffffffffffffffff\n\
                      SigBlk:\tffffffffffffffff\nSigIgn:\t0000000000000004\n\
                      SigCgt:\t0000000000000200\n";
        let now = Dispositions::parse(status);
        assert!(now.is_ignored(SIGQUIT) && !now.is_caught(SIGQUIT));
        assert!(now.is_caught(SIGUSR1) && !now.is_ignored(SIGUSR1));
        assert!(!now.is_ignored(SIGTERM) && !now.is_caught(SIGTERM));
        assert_eq!(Dispositions::parse(""), Dispositions::default());
    }
}
