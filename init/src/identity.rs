//! Who the VM is (SPEC §3.2): rapido's hostname, NIS domain, console size
//! and expected MAC addresses, systemd's machine id, and the loopback
//! interface up. A malformed value is reported and ignored; nothing here
//! is fatal, as a VM with the wrong hostname is still worth booting.

use init::buf::{CPath, CStrList, Show};
use init::errno::Text;
use init::rapido::{self, UTS_MAX};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions, waitpid};
use rustix::termios::{Winsize, tcsetwinsize};

use crate::boot::{Boot, write_all};
use crate::fsutil::ensure_dir;
use crate::log::{debug, warning};
use crate::rt;

/// Where the `rapido.mac.IF=` values are written, one file per interface.
const MAC_DIR: &[u8] = b"/run/rapido";

/// Before the root is mounted: names, console size, MAC files (under
/// /run, which moves into the root with it), and lo brought up by a child
/// so the kernel's work for it (~15 ms under TCG) overlaps the root mount;
/// [`wait_for_loopback`] waits for it before step 9.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn apply(boot: &Boot<'_>) -> Option<Pid> {
    let line = &boot.cmdline;
    let mut buf = [0u8; UTS_MAX * 2];
    match rapido::names(line.hostname, line.vm_num, &mut buf) {
        Ok(Some(names)) => {
            set(
                boot,
                b"hostname",
                names.host,
                rustix::system::sethostname(names.host),
            );
            if let Some(domain) = names.domain {
                set(
                    boot,
                    b"NIS domain",
                    domain,
                    rustix::system::setdomainname(domain),
                );
            }
        }
        Ok(None) => {}
        Err(refused) => warning!(
            boot.log,
            "cannot use rapido.hostname/rapido.vm_num: {refused}; ignored"
        ),
    }
    if let Some(value) = line.stty {
        match rapido::stty(value) {
            Ok((rows, cols)) => {
                let size = Winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                match tcsetwinsize(rt::console(), size) {
                    Ok(()) => debug!(
                        boot.log,
                        "set the console size to {rows} rows, {cols} columns"
                    ),
                    Err(errno) => {
                        warning!(boot.log, "cannot set the console size: {}", Text(errno))
                    }
                }
            }
            Err(refused) => warning!(
                boot.log,
                "cannot use rapido.stty={}: {refused}; ignored",
                Show(value)
            ),
        }
    }
    write_macs(boot);
    match rt::fork() {
        Ok(None) => match crate::network::bring_up(boot) {
            Ok(()) => rt::exit_group(0),
            Err(errno) => {
                warning!(boot.log, "cannot bring the network up: {}", Text(errno));
                rt::exit_group(1)
            }
        },
        Ok(Some(child)) => Some(child),
        Err(errno) => {
            warning!(boot.log, "cannot bring lo up: {}", Text(errno));
            None
        }
    }
}

/// Waits for the child [`apply`] started: lo is up before the real init or
/// the command runs.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn wait_for_loopback(boot: &Boot<'_>, child: Option<Pid>) {
    let Some(child) = child else { return };
    loop {
        match waitpid(Some(child), WaitOptions::empty()) {
            Err(Errno::INTR) => {}
            Ok(Some((_, status))) if status.exit_status() == Some(0) => {
                debug!(boot.log, "brought the network up");
                return;
            }
            _ => return,
        }
    }
}

/// Reports the outcome of setting one name.
fn set(boot: &Boot<'_>, what: &[u8], value: &[u8], result: Result<(), rustix::io::Errno>) {
    match result {
        Ok(()) => debug!(boot.log, "set the {} to {}", Show(what), Show(value)),
        Err(errno) => warning!(
            boot.log,
            "cannot set the {} to {}: {}",
            Show(what),
            Show(value),
            Text(errno)
        ),
    }
}

/// /run/rapido/mac.IF holding MAC and a newline, for each valid
/// `rapido.mac.IF=MAC`.
fn write_macs(boot: &Boot<'_>) {
    let macs = boot.cmdline.macs();
    if macs.is_empty() {
        return;
    }
    if let Err(errno) = ensure_dir(MAC_DIR, 0o755) {
        warning!(boot.log, "cannot create {}: {}", Show(MAC_DIR), Text(errno));
        return;
    }
    for entry in macs.iter().filter(|m| valid_mac(boot, m)) {
        let Ok(path) = CPath::<64>::join(&[MAC_DIR, b"/mac.", entry.interface]) else {
            continue;
        };
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
        let written = rustix::fs::open(path.as_c_str(), flags, Mode::from_raw_mode(0o644))
            .and_then(|fd| write_all(&fd, entry.mac).and_then(|()| write_all(&fd, b"\n")));
        if let Err(errno) = written {
            warning!(
                boot.log,
                "cannot write {}: {}",
                Show(path.as_bytes()),
                Text(errno)
            );
        }
    }
}

/// Whether a `rapido.mac.IF=` value is usable; says why not.
fn valid_mac(boot: &Boot<'_>, entry: &init::cmdline::Mac<'_>) -> bool {
    match rapido::mac(entry.interface, entry.mac) {
        Ok(()) => true,
        Err(refused) => {
            warning!(
                boot.log,
                "cannot use rapido.mac.{}={}: {refused}; ignored",
                Show(entry.interface),
                Show(entry.mac)
            );
            false
        }
    }
}

/// In the new root: /etc/machine-id from `systemd.machine_id=` when the
/// root is writable (a read-only root keeps its own).
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn write_machine_id(boot: &Boot<'_>) {
    let Some(id) = boot.cmdline.machine_id else {
        return;
    };
    if let Err(refused) = rapido::machine_id(id) {
        warning!(
            boot.log,
            "cannot use systemd.machine_id={}: {refused}; ignored",
            Show(id)
        );
        return;
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
    let written = rustix::fs::open(c"/etc/machine-id", flags, Mode::from_raw_mode(0o444))
        .and_then(|fd| write_all(&fd, id).and_then(|()| write_all(&fd, b"\n")));
    match written {
        Ok(()) => debug!(boot.log, "wrote /etc/machine-id"),
        Err(rustix::io::Errno::ROFS) => debug!(
            boot.log,
            "the root is read-only: /etc/machine-id left as it is"
        ),
        Err(errno) => warning!(boot.log, "cannot write /etc/machine-id: {}", Text(errno)),
    }
}

/// The environment for the real init: the kernel's, plus
/// `RAPIDO_MAC_IF=MAC` for each valid `rapido.mac.IF=`.
pub fn environment<const B: usize, const N: usize>(
    boot: &Boot<'_>,
    kernel: &[&core::ffi::CStr],
    env: &mut CStrList<B, N>,
) {
    for var in kernel {
        if env.push(&[var.to_bytes()]).is_err() {
            warning!(
                boot.log,
                "cannot pass {} on: the environment is full",
                Show(var.to_bytes())
            );
        }
    }
    for entry in boot.cmdline.macs() {
        if rapido::mac(entry.interface, entry.mac).is_err() {
            continue;
        }
        let mut name = [0u8; rapido::IFNAME_MAX];
        let name = &mut name[..entry.interface.len()];
        for (to, &from) in name.iter_mut().zip(entry.interface) {
            *to = rapido::env_byte(from);
        }
        if env.push(&[b"RAPIDO_MAC_", name, b"=", entry.mac]).is_err() {
            warning!(
                boot.log,
                "cannot pass RAPIDO_MAC_{} on: the environment is full",
                Show(name)
            );
        }
    }
}
