//! Step 7: carry the API mounts into /sysroot, free the initramfs, make
//! /sysroot the root. The order is busybox's switch_root (and klibc's
//! run-init): move mounts first (so freeing never meets them), free, then
//! `mount --move . /` and `chroot .`, because pivot_root cannot leave the
//! initramfs (rootfs). systemd's and util-linux's switch_root free the old
//! root after the chroot instead, through a descriptor of it kept open;
//! freeing first needs no such descriptor across the chroot.

use core::mem::MaybeUninit;
use init::buf::Show;
use init::errno::Text;
use init::plan::{MOVES, RAMFS_MAGIC, SYSROOT, TMPFS_MAGIC};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, fstat, openat, unlinkat};
use rustix::mount::{UnmountFlags, mount_move, unmount};
use rustix::process::{chdir, chroot};

use crate::boot::{Boot, fatal};
use crate::fsutil::is_dir;
use crate::log::{debug, warning};

/// Directory depth freed in the initramfs; deeper trees are left (an
/// initramfs is a few levels deep, and the stack stays small).
const MAX_DEPTH: usize = 32;

/// Makes /sysroot the root, with the API mounts inside it.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn switch_root(boot: &Boot<'_>) {
    move_mounts(boot);
    free_initramfs(boot);
    // chdir first: after the move, "/" names the new root only through ".".
    let steps = chdir(SYSROOT)
        .map_err(|e| (&b"chdir to"[..], e))
        .and_then(|()| mount_move(c".", c"/").map_err(|e| (&b"move to /"[..], e)))
        .and_then(|()| chroot(c".").map_err(|e| (&b"chroot to"[..], e)))
        .and_then(|()| chdir(c"/").map_err(|e| (&b"chdir into"[..], e)));
    if let Err((what, errno)) = steps {
        fatal!(
            boot,
            "cannot {} the new root {}: {}",
            Show(what),
            Show(SYSROOT.to_bytes()),
            Text(errno)
        );
    }
    debug!(boot.log, "switched root to {}", Show(SYSROOT.to_bytes()));
}

/// Moves /run, /dev, /proc, /sys, /tmp under /sysroot where the new root
/// has the directory, and detaches them where it does not.
fn move_mounts(boot: &Boot<'_>) {
    for (from, to) in MOVES {
        if is_dir(to.to_bytes()) {
            match mount_move(from, to) {
                Ok(()) => {
                    debug!(
                        boot.log,
                        "moved {} to {}",
                        Show(from.to_bytes()),
                        Show(to.to_bytes())
                    );
                    continue;
                }
                Err(errno) => warning!(
                    boot.log,
                    "cannot move {} to {}: {}",
                    Show(from.to_bytes()),
                    Show(to.to_bytes()),
                    Text(errno)
                ),
            }
        } else {
            warning!(
                boot.log,
                "the new root has no {}: unmounting it",
                Show(from.to_bytes())
            );
        }
        // Lazily, with everything under it (/dev/pts, /run/mnt/*).
        let _ = unmount(from, UnmountFlags::DETACH);
    }
}

/// Deletes the initramfs contents so their memory returns to the system,
/// only when / is ramfs or tmpfs and never crossing into another mount.
fn free_initramfs(boot: &Boot<'_>) {
    let is_ram = rustix::fs::statfs(c"/").is_ok_and(|fs| {
        let magic = fs.f_type;
        magic == RAMFS_MAGIC || magic == TMPFS_MAGIC
    });
    if !is_ram {
        debug!(boot.log, "/ is not ramfs or tmpfs: not freeing it");
        return;
    }
    let Ok(root) = rustix::fs::open(
        c"/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let Ok(stat) = fstat(&root) else { return };
    remove_contents(root.as_fd(), stat.st_dev, 0);
    debug!(boot.log, "freed the initramfs");
}

/// Best effort: whatever cannot be removed stays and costs only memory.
fn remove_contents(dir: BorrowedFd<'_>, dev: u64, depth: usize) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    let mut entries = RawDir::new(dir, &mut buf);
    while let Some(Ok(entry)) = entries.next() {
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        if entry.file_type() != FileType::Directory {
            let _ = unlinkat(dir, name, AtFlags::empty());
            continue;
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let Ok(sub) = openat(dir, name, flags, Mode::empty()) else {
            continue;
        };
        // A different device is a mount point (/sysroot): never cross it.
        if fstat(&sub).is_ok_and(|st| st.st_dev == dev) {
            remove_contents(sub.as_fd(), dev, depth + 1);
            let _ = unlinkat(dir, name, AtFlags::REMOVEDIR);
        }
    }
}
