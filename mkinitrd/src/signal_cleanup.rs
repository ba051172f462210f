//! Removing the output's named temporary files when a signal ends the
//! process.
//!
//! The image is written into an unnamed file (`O_TMPFILE`) where the
//! output's filesystem allows it, which the kernel frees whatever kills
//! the process, SIGKILL included. A name exists only where it does not
//! (`.NAME.tmpPID`, for the whole write), and for the microseconds a
//! finished image takes to be exchanged into place. While it exists, the
//! name is registered here ([`remove_on_signal`]); a signal that would end
//! the process (SIGINT from ^C, SIGTERM, SIGHUP from a closed terminal)
//! runs a handler that unlinks every registered name, then ends the
//! process by that same signal, as if there had been no handler.
//!
//! State: a process-wide table of the registered names and a count of
//! handlers running. A signal handler can reach nothing else, so this is
//! the one global state of the library. Handlers are installed while a
//! name is registered, and only for signals whose action is the default:
//! a signal that the program ignores (`nohup`) or handles itself does not
//! end it, so the write goes on and removes its file as usual. Afterwards
//! the default action is put back.
//!
//! # Safety
//! This is the one module of the library with `unsafe`: it calls
//! sigaction(2), unlinkat(2) and raise(3) through libc, since neither std
//! nor rustix's public API installs a signal handler. The handler only
//! loads and updates atomics and calls unlinkat and raise, which are
//! async-signal-safe (signal-safety(7)). A registered name is freed only
//! once it is out of the table and no handler is running, so a handler on
//! another thread never reads freed memory.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use libc::c_int;

/// The signals handled: those whose default action ends the process and
/// that are sent to stop a program, or sent by the kernel for a limit
/// (SIGXFSZ when a write passes RLIMIT_FSIZE, SIGXCPU) or by an abort
/// (SIGABRT, a panic here). Faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE) are
/// left alone: after one, memory may not be what the table says.
const SIGNALS: [c_int; 14] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGABRT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
];

/// Names registered at once, at most: one process writing this many
/// images at once is unlikely; a name beyond them is not removed on a
/// signal (its write still removes it on an error).
const SLOTS: usize = 16;

/// A registered name: `name` in the directory `dir`.
struct Temp {
    dir: RawFd,
    name: CString,
}

/// The registered names; null for a free slot.
static TEMPS: [AtomicPtr<Temp>; SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];
/// Handlers between their first and last look at [`TEMPS`].
static HANDLERS_RUNNING: AtomicUsize = AtomicUsize::new(0);
/// How many names are registered, and which of [`SIGNALS`] got the
/// handler; changed under the lock, never by the handler.
static INSTALLED: Mutex<Installed> = Mutex::new(Installed {
    names: 0,
    signals: [false; SIGNALS.len()],
});

struct Installed {
    names: usize,
    signals: [bool; SIGNALS.len()],
}

/// A name registered for removal on a signal, until dropped. It borrows
/// the directory's descriptor, which the handler uses.
#[must_use = "the name is unregistered when this is dropped"]
pub(crate) struct Registration<'dir> {
    /// The slot in [`TEMPS`], or `None` when the table was full.
    slot: Option<usize>,
    dir: PhantomData<BorrowedFd<'dir>>,
}

/// Registers `name` in `dir` for removal if a signal ends the process
/// before the returned [`Registration`] is dropped. Call it before the name
/// is created, so that no moment is left uncovered.
pub(crate) fn remove_on_signal<'dir>(dir: BorrowedFd<'dir>, name: &CStr) -> Registration<'dir> {
    let temp = Box::into_raw(Box::new(Temp {
        dir: dir.as_raw_fd(),
        name: name.to_owned(),
    }));
    install_handlers();
    let slot = TEMPS.iter().position(|slot| {
        slot.compare_exchange(ptr::null_mut(), temp, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    if slot.is_none() {
        // SAFETY: `temp` came from Box::into_raw above and, in no slot,
        // is seen by no handler.
        drop(unsafe { Box::from_raw(temp) });
    }
    Registration {
        slot,
        dir: PhantomData,
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let temp = TEMPS[slot].swap(ptr::null_mut(), Ordering::SeqCst);
            // A handler that loaded `temp` before the swap counts itself
            // running first (both SeqCst): wait for it to be done with it.
            while HANDLERS_RUNNING.load(Ordering::SeqCst) > 0 {
                std::thread::yield_now();
            }
            // SAFETY: `temp` came from Box::into_raw in remove_on_signal,
            // was in this slot only, and no handler can reach it now.
            drop(unsafe { Box::from_raw(temp) });
        }
        uninstall_handlers();
    }
}

/// Counts one more name and, for the first, installs the handler for each
/// of [`SIGNALS`] whose action is the default.
fn install_handlers() {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    installed.names += 1;
    if installed.names > 1 {
        return;
    }
    for (signal, done) in SIGNALS.into_iter().zip(&mut installed.signals) {
        if current_handler(signal) != Some(libc::SIG_DFL) {
            continue;
        }
        // SA_RESETHAND: the default action is back as the handler starts,
        // so the handler's raise ends the process (see remove_temps).
        *done = set_handler(
            signal,
            remove_temps as extern "C" fn(c_int) as usize,
            libc::SA_RESETHAND,
        );
    }
}

/// Counts one name less and, after the last, puts the default action
/// back where the handler is still this module's.
fn uninstall_handlers() {
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    installed.names -= 1;
    if installed.names > 0 {
        return;
    }
    let ours = remove_temps as extern "C" fn(c_int) as usize;
    for (signal, done) in SIGNALS.into_iter().zip(&mut installed.signals) {
        if *done && current_handler(signal) == Some(ours) {
            set_handler(signal, libc::SIG_DFL, 0);
        }
        *done = false;
    }
}

/// The handler of `signal` (`SIG_DFL`, `SIG_IGN` or a function), if
/// sigaction(2) tells.
fn current_handler(signal: c_int) -> Option<libc::sighandler_t> {
    // SAFETY: sigaction is plain data, for which all zeros is valid.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`.
    let read = unsafe { libc::sigaction(signal, ptr::null(), &mut old) };
    (read == 0).then_some(old.sa_sigaction)
}

/// Sets the handler of `signal` to `handler` with `flags`; true when done.
fn set_handler(signal: c_int, handler: libc::sighandler_t, flags: c_int) -> bool {
    // SAFETY: sigaction is plain data, for which all zeros is valid (an
    // empty mask, no restorer: libc adds its own).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = flags;
    // SAFETY: `action` is initialised; `handler` is SIG_DFL or
    // remove_temps, whose signature is that of a sa_handler.
    unsafe { libc::sigaction(signal, &action, ptr::null_mut()) == 0 }
}

/// The handler: unlinks every registered name, then raises `signal` again,
/// which, with the default action back (SA_RESETHAND) and the signal
/// blocked until this returns, ends the process by it.
extern "C" fn remove_temps(signal: c_int) {
    HANDLERS_RUNNING.fetch_add(1, Ordering::SeqCst);
    for slot in &TEMPS {
        let temp = slot.load(Ordering::SeqCst);
        if temp.is_null() {
            continue;
        }
        // SAFETY: a registered Temp is freed only after it left its slot
        // and no handler is running (Registration::drop), and this one
        // counted itself running before loading it.
        let temp = unsafe { &*temp };
        // SAFETY: unlinkat is async-signal-safe; `name` is NUL-terminated
        // and `dir` is open while the name is registered (the borrow).
        // Its result does not matter: the name may be gone already.
        unsafe { libc::unlinkat(temp.dir, temp.name.as_ptr(), 0) };
    }
    HANDLERS_RUNNING.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: raise is async-signal-safe.
    unsafe { libc::raise(signal) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_are_installed_while_a_name_is_registered_only() {
        // Another test's registration may overlap; SIGPWR is left at its
        // default by the test harness.
        let dir = std::fs::File::open(".").unwrap();
        let ours = remove_temps as extern "C" fn(c_int) as usize;
        {
            let _first = remove_on_signal(rustix::fd::AsFd::as_fd(&dir), c".never-created-a");
            let _second = remove_on_signal(rustix::fd::AsFd::as_fd(&dir), c".never-created-b");
            assert_eq!(current_handler(libc::SIGPWR), Some(ours));
        }
        let installed = INSTALLED.lock().unwrap();
        if installed.names == 0 {
            assert_eq!(current_handler(libc::SIGPWR), Some(libc::SIG_DFL));
        }
    }
}
