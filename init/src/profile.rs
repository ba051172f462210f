//! The boot-time profile under `init.debug` (issue 5): each step's start
//! and duration on the monotonic clock, in microseconds, and before step 9
//! one line with init's total, the part the kernel spent initialising
//! modules, and init's own user-mode CPU time (its work, as opposed to the
//! kernel's in its syscalls). Nothing is printed without `debug`.

use crate::boot::Boot;
use crate::log::{debug, now_us};
use crate::rt;

/// Times the steps of one boot.
pub struct Profile {
    started: u64,
    last: u64,
}

impl Profile {
    /// Starts the clock: init's first instruction is about now.
    pub fn start() -> Profile {
        let now = now_us();
        Profile {
            started: now,
            last: now,
        }
    }

    /// Ends the step that began when the previous one ended. Without
    /// `debug` nothing is read: the clock is a syscall (no vDSO here).
    pub fn step(&mut self, boot: &Boot<'_>, name: &str) {
        if !boot.log.debugging() {
            return;
        }
        let now = now_us();
        debug!(
            boot.log,
            "step {name}: started at {} us, took {} us",
            self.last,
            now - self.last
        );
        self.last = now;
    }

    /// The summary before the hand-over (or the command): total time in
    /// init, how much of it was module initialisation, how much printing
    /// this profile to the console took, the rest, and how much of the
    /// total init spent in user mode ([`rt::user_cpu_us`]).
    pub fn total(&self, boot: &Boot<'_>, module_us: u64) {
        if !boot.log.debugging() {
            return;
        }
        let total = now_us() - self.started;
        let printing = boot.log.printing_us();
        let user = rt::user_cpu_us();
        debug!(
            boot.log,
            "init took {total} us before hand-over: {module_us} us in module initialisation, {printing} us printing this log, {} us in the rest; {user} us of user-mode CPU",
            total.saturating_sub(module_us).saturating_sub(printing)
        );
    }
}
