//! Step 5 for a block device root (`root=/dev/X`): wait, bounded, for the
//! device to appear (drivers probe asynchronously after their module
//! loads), then mount it with `rootfstype=` or each disk file system the
//! kernel knows in turn, with `rootflags=`.

use core::ffi::CStr;
use init::buf::{CPath, Line, Show};
use init::errno::Text;
use init::plan::{BLOCK_ROOT_WAIT_MS, disk_filesystems};
use rustix::fs::{Mode, OFlags, RawDir};
use rustix::io::Errno;
use rustix::mount::{MountFlags, mount};

use crate::boot::{Boot, fatal};
use crate::fsutil::{read_file, sleep_ms};
use crate::log::debug;

const POLL_MS: u32 = 20;

/// Mounts the block device `device` on `target`.
pub fn mount_block(
    boot: &Boot<'_>,
    device: &[u8],
    fstype: Option<&[u8]>,
    target: &CStr,
    flags: MountFlags,
) {
    if !device.starts_with(b"/dev/") {
        fatal!(
            boot,
            "cannot mount root {}: only root=/dev/NAME is understood here (UUID= and LABEL= need udev; give the device, e.g. root=/dev/vda)",
            Show(device)
        );
    }
    let Ok(path) = CPath::<256>::join(&[device]) else {
        fatal!(
            boot,
            "cannot mount root {}: the name is too long",
            Show(device)
        );
    };
    wait_for(boot, &path);
    let Ok(data) = CPath::<1024>::join(&[boot.cmdline.rootflags.unwrap_or(b"")]) else {
        fatal!(boot, "cannot use rootflags=: longer than 1023 bytes");
    };
    let data = boot.cmdline.rootflags.map(|_| data.as_c_str());
    let mut filesystems = [0u8; 4096];
    let known = read_file(b"/proc/filesystems", &mut filesystems).unwrap_or(b"");
    let mut last = Errno::NODEV;
    let mut tried = Line::<512>::new();
    let single = fstype.map(|t| [t]);
    let candidates: &mut dyn Iterator<Item = &[u8]> = match &single {
        Some(one) => &mut one.iter().copied(),
        None => &mut disk_filesystems(known),
    };
    for candidate in candidates {
        let Ok(name) = CPath::<64>::join(&[candidate]) else {
            continue;
        };
        match mount(path.as_c_str(), target, name.as_c_str(), flags, data) {
            Ok(()) => {
                debug!(
                    boot.log,
                    "mounted {} ({}) on {}",
                    Show(device),
                    Show(candidate),
                    Show(target.to_bytes())
                );
                return;
            }
            Err(errno) => {
                last = errno;
                if !tried.is_empty() {
                    tried.push(b", ");
                }
                tried.push(candidate);
            }
        }
    }
    let hint: &[u8] = match (fstype, last) {
        (Some(_), Errno::NODEV) => {
            b" (the kernel does not know that file system: pack its module, or fix rootfstype=)"
        }
        (Some(_), Errno::INVAL) => b" (not that file system, or bad rootflags=: fix rootfstype=)",
        (None, _) => {
            b" (no file system the kernel knows fits: pack its module, or give rootfstype=)"
        }
        _ => b"",
    };
    fatal!(
        boot,
        "cannot mount root {} on {} (tried {}): {}{}",
        Show(device),
        Show(target.to_bytes()),
        Show(tried.finish().trim_ascii_end()),
        Text(last),
        Show(hint)
    )
}

/// Waits until `path` exists, up to [`BLOCK_ROOT_WAIT_MS`]; then a fatal
/// error listing the block devices there are.
fn wait_for(boot: &Boot<'_>, path: &CPath<256>) {
    let mut waited = 0;
    while rustix::fs::stat(path.as_c_str()).is_err() {
        if waited >= BLOCK_ROOT_WAIT_MS {
            let mut present = Line::<512>::new();
            list_block_devices(&mut present);
            let present = present.finish().trim_ascii_end();
            fatal!(
                boot,
                "cannot find root device {} after {} s; block devices present: {} (check root=, and that the disk's driver, e.g. virtio_blk, is in the image)",
                Show(path.as_bytes()),
                BLOCK_ROOT_WAIT_MS / 1000,
                Show(if present.is_empty() { b"none" } else { present })
            );
        }
        sleep_ms(POLL_MS);
        waited += POLL_MS;
    }
    if waited > 0 {
        debug!(
            boot.log,
            "{} appeared after {} ms",
            Show(path.as_bytes()),
            waited
        );
    }
}

/// The names under /sys/class/block, space-separated.
fn list_block_devices(out: &mut Line<512>) {
    let Ok(dir) = rustix::fs::open(
        c"/sys/class/block",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); 2048];
    let mut entries = RawDir::new(&dir, &mut buf);
    while let Some(Ok(entry)) = entries.next() {
        let name = entry.file_name().to_bytes();
        if name.starts_with(b".") {
            continue;
        }
        if !out.is_empty() {
            out.push(b" ");
        }
        out.push(name);
    }
}
