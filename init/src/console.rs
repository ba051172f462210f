//! Step 1: stdin, stdout and stderr on /dev/console. The kernel opens it
//! for init when the image has the node; an image without it (osbuild's
//! cpio holds only /init and modules) gets the node made here first.

use rustix::fd::AsRawFd;
use rustix::fs::{CWD, Mode, OFlags, makedev, mkdir, mknodat};
use rustix::io::Errno;

use init::plan::CONSOLE;

/// Puts the console on fds 0-2. Nothing can be reported if this fails, so
/// failures are ignored: the boot goes on silently, as the kernel's does.
pub fn setup_stdio() {
    let console = match open_console() {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            // The image has no /dev/console: make it in the initramfs.
            let _ = mkdir(c"/dev", Mode::from_raw_mode(0o755));
            let dev = makedev(CONSOLE.major, CONSOLE.minor);
            let _ = mknodat(
                CWD,
                CONSOLE.path,
                CONSOLE.kind,
                Mode::from_raw_mode(CONSOLE.mode),
                dev,
            );
            match open_console() {
                Ok(fd) => fd,
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    let _ = rustix::stdio::dup2_stdin(&console);
    let _ = rustix::stdio::dup2_stdout(&console);
    let _ = rustix::stdio::dup2_stderr(&console);
    if console.as_raw_fd() <= 2 {
        // It landed on 0-2 itself (all three were closed): keep it open.
        core::mem::forget(console);
    }
}

fn open_console() -> Result<rustix::fd::OwnedFd, Errno> {
    // No O_CLOEXEC: this is the fd the real init inherits as its console.
    rustix::fs::open(CONSOLE.path, OFlags::RDWR | OFlags::NOCTTY, Mode::empty())
}
