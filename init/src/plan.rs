//! The fixed parts of the boot as data (SPEC §3.1 steps 2 and 7): which API
//! file systems to mount, which device nodes and links /dev needs, and which
//! mounts follow the root into /sysroot. main.rs executes these tables; tests
//! check them without root.

use core::ffi::CStr;
use rustix::fs::FileType;
use rustix::mount::MountFlags;

/// Where the new root is mounted before the switch.
pub const SYSROOT: &CStr = c"/sysroot";

/// Where `mount=TAG` shares go: `/run/mnt/TAG`.
pub const SHARE_DIR: &CStr = c"/run/mnt";

/// `rootfs.overlay`: the read-only root goes to [`OVERLAY_LOWER`], writes
/// to [`OVERLAY_UPPER`] in /run's tmpfs, and the overlay of both to
/// /sysroot. Under /run, so the layers move into the new root with it.
pub const OVERLAY_DIR: &CStr = c"/run/overlay";
/// See [`OVERLAY_DIR`].
pub const OVERLAY_LOWER: &CStr = c"/run/overlay/lower";
/// See [`OVERLAY_DIR`].
pub const OVERLAY_UPPER: &CStr = c"/run/overlay/upper";
/// See [`OVERLAY_DIR`].
pub const OVERLAY_WORK: &CStr = c"/run/overlay/work";
/// The overlay's mount data.
pub const OVERLAY_DATA: &CStr =
    c"lowerdir=/run/overlay/lower,upperdir=/run/overlay/upper,workdir=/run/overlay/work";

/// Where the packer puts kernel modules (SPEC §3.3).
pub const MODULE_DIR: &CStr = c"/usr/lib/modules";

/// One API file system.
#[derive(Clone, Copy, Debug)]
pub struct ApiMount {
    /// File system type, also used as the mount source.
    pub fstype: &'static CStr,
    /// Mount point, created 0755 if missing.
    pub target: &'static CStr,
    /// Mount flags.
    pub flags: MountFlags,
    /// Mount data. Only options every LSM accepts: Debian's kernel refuses
    /// SELinux's `seclabel` on devtmpfs and tmpfs (osbuild/initrd breaks there).
    pub data: &'static CStr,
    /// Whether the boot cannot go on without it.
    pub required: bool,
}

const NOSUID_NODEV: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV);
const NOSUID_NODEV_NOEXEC: MountFlags = NOSUID_NODEV.union(MountFlags::NOEXEC);

/// The API file systems, in mount order: /proc first because the command
/// line is read from it; /dev before the mounts inside it.
pub const API_MOUNTS: [ApiMount; 7] = [
    ApiMount {
        fstype: c"proc",
        target: c"/proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: c"",
        required: true,
    },
    ApiMount {
        fstype: c"sysfs",
        target: c"/sys",
        flags: NOSUID_NODEV_NOEXEC,
        data: c"",
        required: true,
    },
    ApiMount {
        fstype: c"devtmpfs",
        target: c"/dev",
        flags: MountFlags::NOSUID,
        data: c"",
        required: true,
    },
    // gid 5 is the tty group on Debian and Fedora; ptmx is used via /dev/ptmx.
    ApiMount {
        fstype: c"devpts",
        target: c"/dev/pts",
        flags: MountFlags::NOSUID.union(MountFlags::NOEXEC),
        data: c"mode=0620,gid=5,ptmxmode=000",
        required: false,
    },
    ApiMount {
        fstype: c"tmpfs",
        target: c"/dev/shm",
        flags: NOSUID_NODEV,
        data: c"mode=1777",
        required: false,
    },
    ApiMount {
        fstype: c"tmpfs",
        target: c"/run",
        flags: NOSUID_NODEV,
        data: c"mode=0755",
        required: true,
    },
    ApiMount {
        fstype: c"tmpfs",
        target: c"/tmp",
        flags: NOSUID_NODEV,
        data: c"mode=1777",
        required: false,
    },
];

/// A device node /dev should have even when devtmpfs lacks it (no driver
/// loaded yet registers it). Numbers from Documentation/admin-guide/devices.txt.
#[derive(Clone, Copy, Debug)]
pub struct DevNode {
    /// Node path.
    pub path: &'static CStr,
    /// Character or block.
    pub kind: FileType,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits.
    pub mode: u32,
}

/// /dev/console (5, 1) is created in the initramfs itself when the image
/// lacks it, before anything is mounted (step 1).
pub const CONSOLE: DevNode = DevNode {
    path: c"/dev/console",
    kind: FileType::CharacterDevice,
    major: 5,
    minor: 1,
    mode: 0o600,
};

/// Static nodes for programs that open them before their module loads
/// (misc devices, major 10).
pub const DEV_NODES: [DevNode; 3] = [
    DevNode {
        path: c"/dev/kvm",
        kind: FileType::CharacterDevice,
        major: 10,
        minor: 232,
        mode: 0o660,
    },
    DevNode {
        path: c"/dev/fuse",
        kind: FileType::CharacterDevice,
        major: 10,
        minor: 229,
        mode: 0o666,
    },
    DevNode {
        path: c"/dev/loop-control",
        kind: FileType::CharacterDevice,
        major: 10,
        minor: 237,
        mode: 0o660,
    },
];

/// The /dev symlinks udev would make, as (target, link).
pub const DEV_LINKS: [(&CStr, &CStr); 4] = [
    (c"/proc/self/fd", c"/dev/fd"),
    (c"/proc/self/fd/0", c"/dev/stdin"),
    (c"/proc/self/fd/1", c"/dev/stdout"),
    (c"/proc/self/fd/2", c"/dev/stderr"),
];

/// Mounts carried into the new root, as (old place, place under /sysroot).
/// /dev carries /dev/pts and /dev/shm with it; /run carries the shares.
pub const MOVES: [(&CStr, &CStr); 5] = [
    (c"/run", c"/sysroot/run"),
    (c"/dev", c"/sysroot/dev"),
    (c"/proc", c"/sysroot/proc"),
    (c"/sys", c"/sysroot/sys"),
    (c"/tmp", c"/sysroot/tmp"),
];

/// Programs tried in turn when no `init=` is given, as the kernel does.
pub const DEFAULT_INITS: [&CStr; 4] = [c"/sbin/init", c"/etc/init", c"/bin/init", c"/bin/sh"];

/// `statfs` magic numbers of the file systems an initramfs can be: only
/// these get their contents freed before the switch.
pub const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// See [`RAMFS_MAGIC`].
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

#[cfg(test)]
mod tests {
    use super::*;

    fn position(target: &CStr) -> usize {
        API_MOUNTS.iter().position(|m| m.target == target).unwrap()
    }

    #[test]
    fn proc_first_and_dev_before_its_children() {
        assert_eq!(API_MOUNTS[0].target, c"/proc");
        assert!(position(c"/dev") < position(c"/dev/pts"));
        assert!(position(c"/dev") < position(c"/dev/shm"));
    }

    #[test]
    fn no_selinux_only_options() {
        for mount in API_MOUNTS {
            let data = mount.data.to_str().unwrap();
            assert!(!data.contains("seclabel"), "{data}");
            assert!(!data.contains("context="), "{data}");
        }
    }

    #[test]
    fn every_moved_mount_is_mounted_and_lands_under_sysroot() {
        for (from, to) in MOVES {
            assert!(API_MOUNTS.iter().any(|m| m.target == from), "{from:?}");
            let to = to.to_bytes();
            assert!(to.starts_with(SYSROOT.to_bytes()));
            assert_eq!(&to[SYSROOT.to_bytes().len()..], from.to_bytes());
        }
    }

    #[test]
    fn shares_and_overlay_layers_live_under_a_moved_mount() {
        for dir in [
            SHARE_DIR,
            OVERLAY_DIR,
            OVERLAY_LOWER,
            OVERLAY_UPPER,
            OVERLAY_WORK,
        ] {
            assert!(dir.to_bytes().starts_with(b"/run/"), "{dir:?}");
        }
    }

    #[test]
    fn overlay_data_names_the_layers() {
        let data = OVERLAY_DATA.to_str().unwrap();
        for (key, dir) in [
            ("lowerdir", OVERLAY_LOWER),
            ("upperdir", OVERLAY_UPPER),
            ("workdir", OVERLAY_WORK),
        ] {
            assert!(
                data.contains(&format!("{key}={}", dir.to_str().unwrap())),
                "{data}"
            );
        }
    }
}

/// How long a block root may take to appear after the modules loaded
/// (virtio_blk and SCSI probe asynchronously).
pub const BLOCK_ROOT_WAIT_MS: u32 = 10_000;

/// The file systems that live on a device, from /proc/filesystems: the
/// lines not marked `nodev`, in the kernel's order (what it tries itself
/// for a root without `rootfstype=`).
pub fn disk_filesystems(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n').filter_map(|line| {
        let mut words = line
            .split(|&b| b == b'\t' || b == b' ')
            .filter(|w| !w.is_empty());
        match (words.next(), words.next()) {
            (Some(b"nodev"), _) | (None, _) => None,
            (Some(name), None) => Some(name),
            (Some(_), Some(_)) => None,
        }
    })
}

#[cfg(test)]
mod disk_tests {
    use super::*;

    #[test]
    fn disk_filesystems_skip_nodev() {
        let text = b"nodev\tsysfs\nnodev\ttmpfs\n\text4\n\tvfat\nnodev\tvirtiofs\n\txfs\n";
        let found: Vec<&[u8]> = disk_filesystems(text).collect();
        assert_eq!(found, [&b"ext4"[..], b"vfat", b"xfs"]);
        assert_eq!(disk_filesystems(b"").count(), 0);
    }
}
