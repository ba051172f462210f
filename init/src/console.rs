//! Step 1: stdin, stdout and stderr on /dev/console. The kernel opens it
//! for init when the image has the node; an image without it (osbuild's
//! cpio holds only /init and modules) gets the node made here first.
//! Also the console as a child's controlling terminal (run mode, the
//! emergency shell).

use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{CWD, Mode, OFlags, makedev, mkdir, mknodat};
use rustix::io::Errno;
use rustix::termios::{Winsize, tcsetwinsize};

use init::buf::CPath;
use init::plan::CONSOLE;

use crate::fsutil::read_file;

/// Puts the console on fds 0-2. Nothing can be reported if this fails, so
/// failures are ignored: the boot goes on silently, as the kernel's does.
#[inline(never)] // its locals stay off main's frame: see main.rs
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

/// The console's real tty (/dev/console itself cannot be a controlling
/// terminal), opened close-on-exec for [`take_terminal`].
pub fn open_terminal() -> Result<OwnedFd, Errno> {
    let tty = active_console();
    rustix::fs::open(
        tty.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// In a new session: `tty` on fds 0-2, as controlling terminal (TIOCSCTTY
/// works on an fd opened O_NOCTTY), with `winsize` when given (the host's).
pub fn take_terminal(tty: &OwnedFd, winsize: Option<(u16, u16)>) -> Result<(), Errno> {
    rustix::process::ioctl_tiocsctty(tty)?;
    if let Some((rows, cols)) = winsize {
        let _ = tcsetwinsize(
            tty,
            Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        );
    }
    rustix::stdio::dup2_stdin(tty)?;
    rustix::stdio::dup2_stdout(tty)?;
    rustix::stdio::dup2_stderr(tty)
}

/// /dev/NAME of the console /dev/console points at: the last name in
/// /sys/class/tty/console/active.
fn active_console() -> CPath<64> {
    let mut buf = [0u8; 128];
    let name = read_file(b"/sys/class/tty/console/active", &mut buf)
        .ok()
        .and_then(|text| text.trim_ascii().rsplit(|&b| b == b' ').next())
        .filter(|name| !name.is_empty());
    match name.map(|name| CPath::join(&[b"/dev/", name])) {
        Some(Ok(path)) => path,
        _ => CPath::join(&[b"/dev/console"]).unwrap_or_else(|_| unreachable!()),
    }
}
