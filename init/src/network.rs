//! The network before the hand-over: lo up, and with `ip=` its interface
//! configured (address, netmask, MTU, up, default route) by the ioctls
//! init::net builds; then its name servers in a resolv.conf the command
//! sees at /etc/resolv.conf even on a read-only root, without writing to
//! the root: a file in /run, bound over /etc/resolv.conf, or created where
//! /etc/resolv.conf links into /run (as systemd-resolved's stub does).

use init::buf::{CPath, Show};
use init::errno::Text;
use init::net::{self, IpConfig};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, mount};

use crate::boot::{Boot, write_all};
use crate::fsutil::ensure_dir;
use crate::log::error;
use crate::rt;

/// Where the resolver file is written, in the /run every root gets.
const RESOLV_FILE: &CStr = c"/run/chrootvm/resolv.conf";
const RESOLV_DIR: &[u8] = b"/run/chrootvm";
/// The file the command reads.
const RESOLV_CONF: &CStr = c"/etc/resolv.conf";

use core::ffi::CStr;

/// Brings lo up, then the `ip=` interface. Run in a child (see
/// identity.rs), which reports the error and exits non-zero.
pub fn bring_up(boot: &Boot<'_>) -> Result<(), Errno> {
    let socket = rt::inet_socket()?;
    link_up(&socket, b"lo")?;
    let Some(value) = boot.cmdline.ip else {
        return Ok(());
    };
    let Some(ip) = IpConfig::parse(value) else {
        error!(
            boot.log,
            "cannot use ip={}: give ADDR::GW:MASK::IF:off[:DNS]",
            Show(value)
        );
        return Err(Errno::INVAL);
    };
    let configured = configure(&socket, &ip);
    if let Err(errno) = configured {
        error!(
            boot.log,
            "cannot configure {}: {}",
            Show(ip.device),
            Text(errno)
        );
    }
    configured
}

/// Address, netmask, MTU, up, default route: `ip addr add`, `ip link set
/// up`, `ip route add default`.
fn configure(socket: &OwnedFd, ip: &IpConfig<'_>) -> Result<(), Errno> {
    rt::net_ioctl(
        socket,
        net::SIOCSIFADDR,
        &mut net::ifreq_addr(ip.device, ip.addr),
    )?;
    rt::net_ioctl(
        socket,
        net::SIOCSIFNETMASK,
        &mut net::ifreq_addr(ip.device, ip.netmask),
    )?;
    if let Some(mtu) = ip.mtu {
        rt::net_ioctl(socket, net::SIOCSIFMTU, &mut net::ifreq_mtu(ip.device, mtu))?;
    }
    link_up(socket, ip.device)?;
    match ip.gateway {
        Some(gateway) => rt::net_ioctl(socket, net::SIOCADDRT, &mut net::default_route(gateway)),
        None => Ok(()),
    }
}

/// `ip link set DEVICE up`.
fn link_up(socket: &OwnedFd, device: &[u8]) -> Result<(), Errno> {
    let mut request = net::ifreq(device);
    rt::net_ioctl(socket, net::SIOCGIFFLAGS, &mut request)?;
    net::set_up(&mut request);
    rt::net_ioctl(socket, net::SIOCSIFFLAGS, &mut request)
}

/// After the switch: `ip=`'s name servers at /etc/resolv.conf. Creates
/// /etc/resolv.conf only in an initramfs root, which is ours.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn publish_resolver(boot: &Boot<'_>, initramfs_root: bool) {
    let Some(ip) = boot.cmdline.ip.and_then(IpConfig::parse) else {
        return;
    };
    let mut buf = [0u8; 64];
    let len = net::resolv_conf(&ip.dns, &mut buf);
    let text = &buf[..len];
    if text.is_empty() {
        return;
    }
    let result = if initramfs_root {
        write_file(RESOLV_CONF, text)
    } else {
        cover_resolv_conf(text)
    };
    if let Err(errno) = result {
        error!(
            boot.log,
            "cannot publish the name servers at /etc/resolv.conf: {}",
            Text(errno)
        );
    }
}

/// Where /etc/resolv.conf links into /run, the file is made there (/run
/// is ours); else ours is bound over it, which needs no write to the root.
fn cover_resolv_conf(text: &[u8]) -> Result<(), Errno> {
    let mut link = [0u8; 200];
    let len = rustix::fs::readlinkat_raw(rustix::fs::CWD, RESOLV_CONF, &mut link[..]).unwrap_or(0);
    let target = &link[..len];
    // An absolute link resolves in the root, a relative one from /etc.
    let in_run = if target.starts_with(b"/run/") {
        target
    } else if target.starts_with(b"../run/") {
        &target[2..]
    } else {
        ensure_dir(RESOLV_DIR, 0o755)?;
        write_file(RESOLV_FILE, text)?;
        return mount(RESOLV_FILE, RESOLV_CONF, c"", MountFlags::BIND, c"");
    };
    let path = CPath::<256>::join(&[in_run])?;
    make_parents(path.as_bytes())?;
    write_file(path.as_c_str(), text)
}

/// The directories above `path`, created 0755 where missing.
fn make_parents(path: &[u8]) -> Result<(), Errno> {
    for (i, &b) in path.iter().enumerate().skip(1) {
        if b == b'/' {
            ensure_dir(&path[..i], 0o755)?;
        }
    }
    Ok(())
}

fn write_file(path: &CStr, text: &[u8]) -> Result<(), Errno> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o644))?;
    write_all(&fd, text)
}
