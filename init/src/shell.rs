//! The emergency shell (SPEC §3.5): on a fatal error with `init.shell`, or
//! with `debug` when a shell exists, /bin/sh runs on the console so the
//! problem can be looked at; leaving it powers off as the error would have.

use init::errno::Text;
use rustix::fs::{Access, access};
use rustix::process::{WaitOptions, wait};

use crate::boot::Boot;
use crate::log::{error, warning};
use crate::rt;

/// The shell, in whichever root is current when the error happens.
const SHELL: &core::ffi::CStr = c"/bin/sh";

/// Whether this error should open a shell: asked for, or debugging and
/// one exists.
pub fn wanted(boot: &Boot<'_>) -> bool {
    boot.cmdline.shell || (boot.log.debugging() && access(SHELL, Access::EXEC_OK).is_ok())
}

/// Runs /bin/sh on the console as its controlling terminal and waits until
/// it exits, reaping whatever else ends meanwhile.
pub fn run(boot: &Boot<'_>) {
    error!(
        boot.log,
        "starting an emergency shell: leave it to power off"
    );
    match rt::fork() {
        Ok(None) => {
            let _ = rustix::process::setsid();
            let tty = crate::console::open_terminal();
            if let Err(errno) = tty.and_then(|tty| crate::console::take_terminal(&tty, None)) {
                warning!(
                    boot.log,
                    "cannot make the console the shell's terminal: {}",
                    Text(errno)
                );
            }
            let _ = rt::unblock_signals();
            let argv = [SHELL];
            let env = [
                c"HOME=/",
                c"TERM=linux",
                c"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                c"PS1=(init) # ",
            ];
            let mut slots = [core::ptr::null(); 7];
            let errno = rt::execve(SHELL, argv, env, &mut slots);
            error!(boot.log, "cannot execute /bin/sh: {}", Text(errno));
            rt::exit_group(127)
        }
        Ok(Some(shell)) => loop {
            match wait(WaitOptions::empty()) {
                Ok(Some((pid, _))) if pid == shell => return,
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
        },
        Err(errno) => error!(boot.log, "cannot start an emergency shell: {}", Text(errno)),
    }
}
