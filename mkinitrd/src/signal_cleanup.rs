//! Removing the output's named temporary files when a signal ends the
//! process.
//!
//! The image is written into an unnamed file (`O_TMPFILE`) where the
//! output's filesystem allows it, which the kernel frees whatever kills
//! the process, SIGKILL included. A name exists only where it does not
//! (`.NAME.tmpPID`, for the whole write), and for the microseconds a
//! finished image takes to be exchanged into place. While it exists, the
//! name is registered here ([`create_registered`]); a signal that would end
//! the process (SIGINT from ^C, SIGTERM, SIGHUP from a closed terminal)
//! unlinks every registered name, then ends the process by that same
//! signal, as if there had been no handler.
//!
//! How, with no `unsafe` (it lives in init's `rt.rs` only, STYLE.md):
//! signal-hook's iterator. Installing a handler of our own takes
//! sigaction(2), and signal-hook's `register`, which would run our code
//! in its handler, is `unsafe` too. The iterator's handler only writes a
//! byte to a pipe; a thread of this module reads the pipe, locks the table
//! of names, unlinks them, and calls [`emulate_default_handler`], which
//! puts the default action back and raises the signal again on that
//! thread: the process ends by the signal, with the status (and core
//! dump, for SIGQUIT and the like) the default action gives. The unlinking
//! runs on an ordinary thread, so it may lock and allocate, which a
//! handler may not.
//!
//! Because the thread acts a moment after the signal, names change only
//! with the table locked: a name is registered and created under one lock
//! ([`create_registered`]), and renamed away or unlinked and unregistered
//! under another ([`Registration::settle`]). The thread so finds every
//! registered name created, or not yet made and never to be (it keeps the
//! lock until the process has ended). A signal during the exchange waits
//! for it, tens of microseconds.
//!
//! Which signals: those whose default action ends the process ([`SIGNALS`])
//! and that are at their default when the first name is registered, as
//! /proc/self/status tells ([`Dispositions`]). One ignored (`nohup`) stays
//! ignored and the write goes on; one the program handles itself
//! (chrootvm's stop signals) is left to it.
//!
//! State: the table of registered names, the one global state of the
//! library, shared by the writer and the thread. The thread and the
//! handlers are set up at the first registration and stay: signal-hook
//! cannot put a default action back (`signal_hook::low_level::unregister`
//! leaves the signal ignored: its handler stays, with nothing to run), so
//! instead, with no name registered, the thread does what the default
//! would do and ends the process by the signal. Seen from outside, this is
//! the default action, a few microseconds later; only `SigCgt` shows the
//! handler. A program that later adds its own signal-hook handler for one
//! of these signals would see the process end after it ran; chrootvm
//! installs its own at start, before it builds an image.
//!
//! A panic calls abort(3) in release builds (`panic = "abort"`), whose
//! SIGABRT may end the process before the thread acts: abort(3) puts the
//! default action back and raises it again as soon as the handler
//! returns. A panic hook unlinks the names first.

use std::ffi::{CStr, CString};
use std::mem::ManuallyDrop;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, Once, PoisonError, mpsc};

use signal_hook::consts::{
    SIGABRT, SIGALRM, SIGHUP, SIGINT, SIGPROF, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGVTALRM,
    SIGXCPU, SIGXFSZ,
};
use signal_hook::iterator::Signals;
use signal_hook::low_level::emulate_default_handler;

use crate::signal_disposition::Dispositions;

/// The signals handled: those whose default action ends the process and
/// that are sent to stop a program, or sent by the kernel for a limit
/// (SIGXFSZ when a write passes RLIMIT_FSIZE, SIGXCPU) or by an abort
/// (SIGABRT). Faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE) are left alone:
/// after one, memory may not be what the table says.
///
/// SIGIO and SIGPWR end a process too, but are left at their default, so
/// they end it without removing the names: [`emulate_default_handler`]
/// takes SIGIO's default for "ignore" and does not know SIGPWR, and nothing
/// else safe puts a default action back to end the process by them.
pub(crate) const SIGNALS: [i32; 12] = [
    SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGXCPU, SIGXFSZ,
    SIGVTALRM, SIGPROF,
];

/// The registered names.
static TABLE: Mutex<Table> = Mutex::new(Table {
    next_id: 0,
    names: Vec::new(),
});

/// Set up the thread and handlers once, at the first registration.
static START: Once = Once::new();

struct Table {
    /// The id of the next registration.
    next_id: u64,
    names: Vec<Temp>,
}

/// A registered name: `name` in the directory `dir`.
struct Temp {
    id: u64,
    /// A descriptor of its own: the writer's may be closed meanwhile.
    dir: OwnedFd,
    name: CString,
}

impl Table {
    /// Unlinks every registered name. Best effort: a name may not have
    /// been created, and the process is about to end either way.
    fn unlink_all(&self) {
        for temp in &self.names {
            let _ = rustix::fs::unlinkat(&temp.dir, &temp.name, rustix::fs::AtFlags::empty());
        }
    }

    fn remove(&mut self, id: u64) {
        self.names.retain(|temp| temp.id != id);
    }
}

/// The table, locked. A panic while it was held (only when unwinding)
/// leaves it consistent: each change is one push or one removal.
fn lock() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A name registered for removal on a signal, until
/// [settled](Registration::settle) or dropped.
#[must_use = "the name is unregistered when this is dropped"]
pub(crate) struct Registration {
    id: u64,
}

/// Registers `name` in `dir` for removal if a signal ends the process, and
/// creates it with `create`, both with the table locked; on an error from
/// `create`, the name is unregistered and the error returned.
///
/// The first call sets up the thread and handlers (see the module doc).
pub(crate) fn create_registered<T>(
    dir: BorrowedFd<'_>,
    name: &CStr,
    create: impl FnOnce(&CStr) -> rustix::io::Result<T>,
) -> rustix::io::Result<(Registration, T)> {
    START.call_once(start);
    let dir = rustix::io::fcntl_dupfd_cloexec(dir, 0)?;
    let mut table = lock();
    let id = table.next_id;
    table.next_id += 1;
    table.names.push(Temp {
        id,
        dir,
        name: name.to_owned(),
    });
    match create(name) {
        Ok(made) => Ok((Registration { id }, made)),
        Err(errno) => {
            table.remove(id);
            Err(errno)
        }
    }
}

impl Registration {
    /// Runs `settle`, which renames the name away or unlinks it, then
    /// unregisters the name, both with the table locked, and returns what
    /// `settle` returned.
    pub(crate) fn settle<T>(self, settle: impl FnOnce() -> T) -> T {
        // Not dropped: that would lock the table again, and deadlock if
        // `settle` unwinds.
        let id = ManuallyDrop::new(self).id;
        let mut table = lock();
        let settled = settle();
        table.remove(id);
        settled
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock().remove(self.id);
    }
}

/// Sets up, where a panic aborts, the panic hook, then the handlers for
/// [`SIGNALS`] at their default and the thread that acts on them. Best
/// effort: if the thread cannot start, no handler is installed, and a
/// signal ends the process without removing the names.
fn start() {
    #[cfg(panic = "abort")]
    unlink_on_panic();
    let now = Dispositions::read();
    let signals: Vec<i32> = SIGNALS
        .into_iter()
        .filter(|&signal| !now.is_ignored(signal) && !now.is_caught(signal))
        .collect();
    if signals.is_empty() {
        return;
    }
    // The handlers are registered on the thread, so that they exist only
    // if it runs: a handler nobody reads for would swallow its signal.
    let (ready, ready_rx) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("mkinitrd-signals".into())
        .spawn(move || match Signals::new(&signals) {
            Ok(mut caught) => {
                let _ = ready.send(());
                for signal in caught.forever() {
                    end_by(signal);
                }
            }
            // Nothing registered: signal-hook makes its pipe first.
            Err(_) => drop(ready),
        });
    if thread.is_ok() {
        // The handlers are in place (or never will be) before the first
        // name is created.
        let _ = ready_rx.recv();
    }
}

/// Unlinks every registered name and ends the process by `signal`, as its
/// default action would.
fn end_by(signal: i32) {
    let table = lock();
    table.unlink_all();
    // The table stays locked: no name is created after the look above.
    let _ = emulate_default_handler(signal);
    // Not reached: every one of SIGNALS ends the process by default, and
    // emulate_default_handler aborts where raising it did not.
    std::process::abort();
}

/// Adds a panic hook that unlinks the registered names before the panic
/// aborts the process, then runs the hook there was (which prints the
/// message).
#[cfg(panic = "abort")]
fn unlink_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Not waited for: this thread may hold the table (a panic while a
        // name changes), or the signal thread, which ends the process.
        if let Ok(table) = TABLE.try_lock() {
            table.unlink_all();
        }
        previous(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn registered(id: u64) -> bool {
        lock().names.iter().any(|temp| temp.id == id)
    }

    #[test]
    fn a_name_is_registered_until_settled_and_the_handlers_stay() {
        let dir = std::fs::File::open(".").unwrap();
        let (first, ()) = create_registered(dir.as_fd(), c".never-created-a", |_| Ok(())).unwrap();
        let (second, ()) = create_registered(dir.as_fd(), c".never-created-b", |_| Ok(())).unwrap();
        let (first_id, second_id) = (first.id, second.id);
        assert!(registered(first_id) && registered(second_id));
        // The test harness handles none of these: all are ours now, but
        // for any ignored when the tests started (nohup).
        let now = Dispositions::read();
        assert!(
            SIGNALS
                .into_iter()
                .all(|s| now.is_caught(s) != now.is_ignored(s))
        );
        assert_eq!(first.settle(|| 7), 7);
        assert!(!registered(first_id) && registered(second_id));
        drop(second);
        assert!(!registered(second_id));
        // Kept, to act as the default would (output's tests check that).
        let now = Dispositions::read();
        assert!(now.is_caught(SIGTERM) != now.is_ignored(SIGTERM));
    }

    #[test]
    fn a_failed_create_leaves_nothing_registered() {
        let dir = std::fs::File::open(".").unwrap();
        let name = c".never-created-c";
        let err = create_registered(dir.as_fd(), name, |_| {
            Err::<(), _>(rustix::io::Errno::EXIST)
        })
        .err();
        assert_eq!(err, Some(rustix::io::Errno::EXIST));
        assert!(lock().names.iter().all(|temp| temp.name.as_c_str() != name));
    }
}
