//! Steps 2, 3, 5 and 6: the API file systems and /dev, the command line,
//! the root at /sysroot and the shares at /run/mnt/TAG.

use core::ffi::CStr;
use core::fmt::Write;
use core::mem::MaybeUninit;
use init::buf::{CPath, Line, Show};
use init::cmdline::{DEFAULT_ROOT_TAG, MAX_SHARES, Root, is_valid_tag};
use init::errno::Text;
use init::plan::{
    ApiMount, DEV_LINKS, DEV_NODES, OVERLAY_DATA, OVERLAY_DIR, OVERLAY_LOWER, OVERLAY_UPPER,
    OVERLAY_WORK, SHARE_DIR, SYSROOT,
};
use rustix::fs::{CWD, Mode, OFlags, RawDir, makedev, mknodat, symlink};
use rustix::io::Errno;
use rustix::mount::{MountFlags, mount};

use crate::boot::{Boot, fatal};
use crate::fsutil::{ensure_dir, read_file, sleep_ms};
use crate::log::{debug, warning};
use crate::modules::Loaded;

/// How long a tag may take to appear while a device of its kind is still
/// probing (present without a bound driver) or none is present yet. Once
/// every such device has its driver, the tags are final and a wrong one
/// fails at once.
const TAG_WAIT_MS: u32 = 3000;
const TAG_POLL_MS: u32 = 10;

/// Mounts rows of the API file system table ([`API_MOUNTS`]), in order.
pub fn mount_api_filesystems(boot: &Boot<'_>, rows: &[ApiMount]) {
    for api in rows {
        mount_api(boot, api);
    }
}

fn mount_api(boot: &Boot<'_>, api: &ApiMount) {
    let data = (!api.data.is_empty()).then_some(api.data);
    let result = ensure_dir(api.target.to_bytes(), 0o755)
        .and_then(|()| mount(api.fstype, api.target, api.fstype, api.flags, data));
    match result {
        Ok(()) => debug!(
            boot.log,
            "mounted {} on {}",
            Show(api.fstype.to_bytes()),
            Show(api.target.to_bytes())
        ),
        // Already there (a kernel with CONFIG_DEVTMPFS_MOUNT mounts /dev).
        Err(Errno::BUSY) => debug!(
            boot.log,
            "{} is already mounted",
            Show(api.target.to_bytes())
        ),
        Err(errno) if api.required => fatal!(
            boot,
            "cannot mount {} on {}: {}",
            Show(api.fstype.to_bytes()),
            Show(api.target.to_bytes()),
            Text(errno)
        ),
        Err(errno) => warning!(
            boot.log,
            "cannot mount {} on {}: {}",
            Show(api.fstype.to_bytes()),
            Show(api.target.to_bytes()),
            Text(errno)
        ),
    }
}

/// Reads /proc/cmdline into `buf`.
pub fn read_cmdline<'b>(boot: &Boot<'_>, buf: &'b mut [u8]) -> &'b [u8] {
    let capacity = buf.len();
    match read_file(b"/proc/cmdline", buf) {
        Ok(text) => {
            if text.len() == capacity {
                warning!(
                    boot.log,
                    "the kernel command line is longer than {capacity} bytes: the rest is ignored"
                );
            }
            text
        }
        Err(errno) => fatal!(boot, "cannot read /proc/cmdline: {}", Text(errno)),
    }
}

/// Creates the /dev nodes and links devtmpfs may lack. Best effort: a
/// program that needs one will say so.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn populate_dev(boot: &Boot<'_>) {
    for node in DEV_NODES {
        let dev = makedev(node.major, node.minor);
        match mknodat(
            CWD,
            node.path,
            node.kind,
            Mode::from_raw_mode(node.mode),
            dev,
        ) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(errno) => debug!(
                boot.log,
                "cannot create {}: {}",
                Show(node.path.to_bytes()),
                Text(errno)
            ),
        }
    }
    for (target, link) in DEV_LINKS {
        match symlink(target, link) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(errno) => debug!(
                boot.log,
                "cannot create {}: {}",
                Show(link.to_bytes()),
                Text(errno)
            ),
        }
    }
}

/// Step 5: the root at /sysroot, or its read-only layer under a tmpfs
/// overlay with `rootfs.overlay`. Returns false when there is none to
/// switch to: no root given and no virtiofs device with tag `rootfs`.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn mount_root(boot: &Boot<'_>, root: Root<'_>, modules: &Loaded) -> bool {
    // No root given: osbuild/initrd's runner passes none and shares the
    // root as tag `rootfs`. Only a virtio-fs device can have it; with none
    // (`chrootvm --initrd` without shares) there is nothing to wait for.
    // The devices are all on the bus once the modules have loaded, as
    // virtio_pci probes them synchronously.
    if root == Root::Initramfs && devices(Kind::Virtiofs).present == 0 {
        debug!(boot.log, "no root given: staying in the initramfs");
        return false;
    }
    let overlay = boot.cmdline.overlay;
    let mut flags = MountFlags::empty();
    if overlay || boot.cmdline.root_read_only() {
        flags |= MountFlags::RDONLY;
    }
    let target = if overlay { OVERLAY_LOWER } else { SYSROOT };
    let dirs: &[&CStr] = if overlay {
        &[
            SYSROOT,
            OVERLAY_DIR,
            OVERLAY_LOWER,
            OVERLAY_UPPER,
            OVERLAY_WORK,
        ]
    } else {
        &[SYSROOT]
    };
    for dir in dirs {
        if let Err(errno) = ensure_dir(dir.to_bytes(), 0o755) {
            fatal!(
                boot,
                "cannot create {}: {}",
                Show(dir.to_bytes()),
                Text(errno)
            );
        }
    }
    match root {
        Root::Virtiofs(tag) => mount_tag(boot, Kind::Virtiofs, tag, target, flags, modules),
        Root::NineP(tag) => mount_tag(boot, Kind::NineP, tag, target, flags, modules),
        Root::Block { device, fstype } => {
            crate::block::mount_block(boot, device, fstype, target, flags);
        }
        // A virtio-fs device is there: mount `rootfs` when one has it,
        // waiting as for a named root while a device probes. virtiofs
        // answers EINVAL for a tag no device has: then the initramfs stays.
        Root::Initramfs => {
            let tag = DEFAULT_ROOT_TAG;
            match try_mount_tag(Kind::Virtiofs, tag, target, flags) {
                Ok(()) => log_mounted(boot, Kind::Virtiofs, tag, target, flags),
                Err(Errno::INVAL) => {
                    debug!(
                        boot.log,
                        "no root given and no virtiofs tag \"{}\": staying in the initramfs",
                        Show(tag)
                    );
                    return false;
                }
                Err(errno) => tag_failed(boot, Kind::Virtiofs, tag, target, errno, modules),
            }
        }
    }
    if overlay {
        match mount(
            c"overlay",
            SYSROOT,
            c"overlay",
            MountFlags::empty(),
            Some(OVERLAY_DATA),
        ) {
            Ok(()) => debug!(
                boot.log,
                "mounted a tmpfs overlay on {}",
                Show(SYSROOT.to_bytes())
            ),
            Err(errno) => fatal!(
                boot,
                "cannot mount the overlay on {}: {}{}",
                Show(SYSROOT.to_bytes()),
                Text(errno),
                Show(if errno == Errno::NODEV {
                    b" (the kernel has no overlay file system: pack its module)"
                } else {
                    b""
                })
            ),
        }
    }
    true
}

/// Step 6: each `mount=TAG`/`mount-ro=TAG` at /run/mnt/TAG, over virtiofs,
/// or 9p when `rootfstype=9p` says that is how this host shares. In the
/// initramfs's /run, which moves into the new root, or stays when the
/// initramfs is the root.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn mount_shares(boot: &Boot<'_>, modules: &Loaded) {
    // A share the command expects must not be quietly missing.
    let dropped = boot.cmdline.shares_dropped;
    if dropped > 0 {
        fatal!(
            boot,
            "cannot mount {} shares: {} more than the {MAX_SHARES} init takes (qemu's PCI bus has no slots for more)",
            MAX_SHARES + dropped,
            dropped
        );
    }
    if boot.cmdline.shares().is_empty() {
        return;
    }
    // Shares travel the way the root does: 9p when `rootfstype=9p`.
    let kind = if boot.cmdline.rootfstype == Some(b"9p") {
        Kind::NineP
    } else {
        Kind::Virtiofs
    };
    if let Err(errno) = ensure_dir(SHARE_DIR.to_bytes(), 0o755) {
        fatal!(
            boot,
            "cannot create {}: {}",
            Show(SHARE_DIR.to_bytes()),
            Text(errno)
        );
    }
    for share in boot.cmdline.shares() {
        if !is_valid_tag(share.tag) {
            fatal!(
                boot,
                "cannot mount share \"{}\": a tag must be a plain directory name",
                Show(share.tag)
            );
        }
        let target = match CPath::<256>::join(&[SHARE_DIR.to_bytes(), b"/", share.tag]) {
            Ok(target) => target,
            Err(errno) => fatal!(
                boot,
                "cannot mount share \"{}\": {}",
                Show(share.tag),
                Text(errno)
            ),
        };
        if let Err(errno) = ensure_dir(target.as_bytes(), 0o755) {
            fatal!(
                boot,
                "cannot create {}: {}",
                Show(target.as_bytes()),
                Text(errno)
            );
        }
        let flags = if share.read_only {
            MountFlags::RDONLY
        } else {
            MountFlags::empty()
        };
        mount_tag(boot, kind, share.tag, target.as_c_str(), flags, modules);
    }
}

/// The tag-addressed file systems init mounts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Virtiofs,
    NineP,
}

impl Kind {
    fn fstype(self) -> &'static CStr {
        match self {
            Kind::Virtiofs => c"virtiofs",
            Kind::NineP => c"9p",
        }
    }

    /// The virtio device id (virtio spec 5: 9 is 9P transport, 26 file system).
    fn device_id(self) -> &'static [u8] {
        match self {
            Kind::Virtiofs => b"0x001a",
            Kind::NineP => b"0x0009",
        }
    }

    fn data(self) -> Option<&'static CStr> {
        match self {
            Kind::Virtiofs => None,
            // 9P2000.L for POSIX semantics; a large msize, as virtme-ng uses,
            // because the default 8 KiB makes every read a round trip.
            Kind::NineP => Some(c"trans=virtio,version=9p2000.L,msize=512000,cache=loose"),
        }
    }
}

/// Mounts a virtiofs or 9p tag, retrying for a bounded time while the tag
/// may still be probing; a final failure is fatal and says what is there.
fn mount_tag(
    boot: &Boot<'_>,
    kind: Kind,
    tag: &[u8],
    target: &CStr,
    flags: MountFlags,
    modules: &Loaded,
) {
    match try_mount_tag(kind, tag, target, flags) {
        Ok(()) => log_mounted(boot, kind, tag, target, flags),
        Err(errno) => tag_failed(boot, kind, tag, target, errno, modules),
    }
}

/// The mount itself, retried while a device of the kind is present
/// without its driver or none is there yet (see [`TAG_WAIT_MS`]).
fn try_mount_tag(kind: Kind, tag: &[u8], target: &CStr, flags: MountFlags) -> Result<(), Errno> {
    let mut waited = 0;
    loop {
        match mount(tag, target, kind.fstype(), flags, kind.data()) {
            // virtiofs answers EINVAL for an unknown tag, 9p ENOENT.
            Err(Errno::INVAL | Errno::NOENT)
                if waited < TAG_WAIT_MS && !devices(kind).settled() =>
            {
                sleep_ms(TAG_POLL_MS);
                waited += TAG_POLL_MS;
            }
            result => return result,
        }
    }
}

fn log_mounted(boot: &Boot<'_>, kind: Kind, tag: &[u8], target: &CStr, flags: MountFlags) {
    debug!(
        boot.log,
        "mounted {} \"{}\" on {}{}",
        Show(kind.fstype().to_bytes()),
        Show(tag),
        Show(target.to_bytes()),
        Show(if flags.contains(MountFlags::RDONLY) {
            b" read-only"
        } else {
            b""
        })
    );
}

/// The fatal error of a tag that cannot be mounted, with what is there.
fn tag_failed(
    boot: &Boot<'_>,
    kind: Kind,
    tag: &[u8],
    target: &CStr,
    errno: Errno,
    modules: &Loaded,
) -> ! {
    let mut hint = Line::<512>::new();
    write_tag_hint(&mut hint, kind, errno, modules);
    let hint = hint.finish();
    fatal!(
        boot,
        "cannot mount {} tag \"{}\" on {}: {}{}",
        Show(kind.fstype().to_bytes()),
        Show(tag),
        Show(target.to_bytes()),
        Text(errno),
        Show(hint.trim_ascii_end())
    )
}

/// The parenthesised hint after a failed tag mount: what tags exist, or
/// why the file system type is unknown, and which modules failed.
fn write_tag_hint(out: &mut Line<512>, kind: Kind, errno: Errno, modules: &Loaded) {
    out.push(b" (");
    if errno == Errno::NODEV {
        let _ = write!(
            out,
            "the kernel has no {} file system: pack its module",
            Show(kind.fstype().to_bytes())
        );
    } else if kind == Kind::Virtiofs {
        write_virtiofs_tags(out);
    } else {
        out.push(b"is the 9p share attached with this mount tag?");
    }
    if !modules.failed.is_empty() {
        out.push(b"; modules that failed to load:");
        for name in modules.failed.iter() {
            out.push(b" ");
            out.push(name);
        }
    }
    out.push(b")");
}

/// Lists the virtiofs tags present from /sys/fs/virtiofs/N/tag (Linux
/// 6.9+); older kernels only let us count virtio-fs devices.
fn write_virtiofs_tags(out: &mut Line<512>) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    if let Ok(dir) = rustix::fs::open(
        c"/sys/fs/virtiofs",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let mut entries = RawDir::new(&dir, &mut buf);
        let mut found = 0;
        while let Some(Ok(entry)) = entries.next() {
            let name = entry.file_name().to_bytes();
            let Ok(path) = CPath::<128>::join(&[b"/sys/fs/virtiofs/", name, b"/tag"]) else {
                continue;
            };
            let mut tag = [0u8; 64];
            if let Ok(tag) = read_file(path.as_bytes(), &mut tag) {
                out.push(if found == 0 { b"tags present: " } else { b", " });
                out.push(tag.trim_ascii_end());
                found += 1;
            }
        }
        if found == 0 {
            out.push(b"no virtiofs tags present");
        }
        return;
    }
    match devices(Kind::Virtiofs).present {
        0 => out.push(b"no virtio-fs device present: is vhost-user-fs-pci attached?"),
        n => {
            let _ = write!(
                out,
                "{n} virtio-fs device(s) present; this kernel does not list their tags"
            );
        }
    }
}

/// The virtio devices of one kind, from /sys/bus/virtio/devices.
struct Devices {
    present: usize,
    unbound: usize,
}

impl Devices {
    /// Every device present has its driver: no tag is still to come.
    fn settled(&self) -> bool {
        self.present > 0 && self.unbound == 0
    }
}

fn devices(kind: Kind) -> Devices {
    const BUS: &[u8] = b"/sys/bus/virtio/devices/";
    let mut found = Devices {
        present: 0,
        unbound: 0,
    };
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    let Ok(dir) = rustix::fs::open(
        BUS,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return found;
    };
    let mut entries = RawDir::new(&dir, &mut buf);
    while let Some(Ok(entry)) = entries.next() {
        let name = entry.file_name().to_bytes();
        let Ok(path) = CPath::<128>::join(&[BUS, name, b"/device"]) else {
            continue;
        };
        let mut id = [0u8; 16];
        if !read_file(path.as_bytes(), &mut id)
            .is_ok_and(|id| id.trim_ascii_end() == kind.device_id())
        {
            continue;
        }
        found.present += 1;
        let bound = CPath::<128>::join(&[BUS, name, b"/driver"])
            .is_ok_and(|p| rustix::fs::stat(p.as_c_str()).is_ok());
        if !bound {
            found.unbound += 1;
        }
    }
    found
}
