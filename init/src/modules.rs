//! Step 4: load every /usr/lib/modules/*.ko in byte order of file name with
//! finit_module (SPEC §3.3). The packer numbered them in dependency order,
//! so init never resolves dependencies itself. Files ending in .ko.gz,
//! .ko.xz or .ko.zst were kept compressed because the kernel decompresses
//! them itself: init passes MODULE_INIT_COMPRESSED_FILE for those.

use core::ffi::c_int;
use core::mem::MaybeUninit;
use init::buf::Show;
use init::errno::Text;
use init::names::Names;
use init::plan::MODULE_DIR;
use rustix::fs::{Mode, OFlags, RawDir, openat};
use rustix::io::Errno;

use crate::boot::Boot;
use crate::log::{debug, now_us, warning};
use crate::rt::{self, ModuleNames};

/// finit_module flag: the file is compressed, the kernel decompresses it
/// (include/uapi/linux/module.h, Linux 5.17). Without
/// CONFIG_MODULE_DECOMPRESS the call fails with EOPNOTSUPP.
const MODULE_INIT_COMPRESSED_FILE: c_int = 4;

/// The module file suffixes the packer writes, with the finit_module flags
/// each needs.
const MODULE_SUFFIXES: [(&[u8], c_int); 4] = [
    (b".ko", 0),
    (b".ko.gz", MODULE_INIT_COMPRESSED_FILE),
    (b".ko.xz", MODULE_INIT_COMPRESSED_FILE),
    (b".ko.zst", MODULE_INIT_COMPRESSED_FILE),
];

/// What step 4 did, for the root mount's error message and the profile.
pub struct Loaded {
    /// Modules that failed to load, by file name.
    pub failed: Names<1024, 32>,
    /// Microseconds spent loading, measured under `debug` only: nearly all
    /// of it in finit_module, where the kernel decompresses, links and
    /// initialises each module.
    pub init_us: u64,
}

/// Loads the bundled modules. A failure is reported with the module's name
/// and errno text, and the boot goes on: the module may not be needed.
#[inline(never)] // its locals stay off main's frame: see main.rs
pub fn load_modules(boot: &Boot<'_>) -> Loaded {
    let mut loaded = Loaded {
        failed: Names::new(),
        init_us: 0,
    };
    let dir = match rustix::fs::open(
        MODULE_DIR,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        Err(Errno::NOENT) => {
            debug!(
                boot.log,
                "no {}: no modules to load",
                Show(MODULE_DIR.to_bytes())
            );
            return loaded;
        }
        Err(errno) => {
            warning!(
                boot.log,
                "cannot open {}: {}",
                Show(MODULE_DIR.to_bytes()),
                Text(errno)
            );
            return loaded;
        }
    };
    let names = rt::module_names();
    read_module_names(boot, &dir, names);
    // Timed only for the profile: the clock is a syscall.
    let clock = || if boot.log.debugging() { now_us() } else { 0 };
    let start = clock();
    for name in names.iter() {
        let begin = clock();
        let flags = finit_flags(name).unwrap_or(0);
        let result = openat(&dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .and_then(|module| rustix::system::finit_module(&module, c"", flags));
        match result {
            Ok(()) => debug!(boot.log, "loaded {} in {} us", Show(name), clock() - begin),
            // The module is built in or already loaded: what we wanted.
            Err(Errno::EXIST) => debug!(boot.log, "{} is already loaded", Show(name)),
            Err(errno) => {
                warning!(
                    boot.log,
                    "cannot load module {}: {}{}",
                    Show(name),
                    Text(errno),
                    Show(finit_hint(errno, flags))
                );
                let _ = loaded.failed.push(name);
            }
        }
    }
    loaded.init_us = clock() - start;
    debug!(
        boot.log,
        "loaded {} modules in {} us",
        names.len(),
        loaded.init_us
    );
    loaded
}

/// The module file names (`*.ko`, `*.ko.gz`, `*.ko.xz`, `*.ko.zst`) in the
/// module directory, sorted.
fn read_module_names(boot: &Boot<'_>, dir: &rustix::fd::OwnedFd, names: &mut ModuleNames) {
    // 2 KiB: the default image's names take one getdents, a few hundred
    // modules a handful; a bigger buffer is only more stack to fault in.
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    let mut entries = RawDir::new(dir, &mut buf);
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(errno) => {
                warning!(
                    boot.log,
                    "cannot read {}: {}",
                    Show(MODULE_DIR.to_bytes()),
                    Text(errno)
                );
                break;
            }
        };
        let name = entry.file_name().to_bytes();
        if finit_flags(name).is_none() {
            continue;
        }
        if names.push(name).is_err() {
            warning!(
                boot.log,
                "more than {} modules in {}: the rest are not loaded",
                names.len(),
                Show(MODULE_DIR.to_bytes())
            );
            break;
        }
    }
    names.sort();
}

/// The finit_module flags for module file `name`, or `None` when it is not
/// a module file.
fn finit_flags(name: &[u8]) -> Option<c_int> {
    MODULE_SUFFIXES
        .iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map(|&(_, flags)| flags)
}

/// What a finit_module errno usually means, where the text alone misleads.
fn finit_hint(errno: Errno, flags: c_int) -> &'static [u8] {
    match errno {
        // kernel/module/decompress.c refuses a format it was not built for.
        Errno::INVAL if flags & MODULE_INIT_COMPRESSED_FILE != 0 => {
            b" (compressed in a format this kernel cannot decompress? see the kernel log)"
        }
        // resolve_symbol() fails with ENOENT.
        Errno::NOENT => b" (unknown symbol: a module it needs is missing or numbered after it)",
        Errno::NOEXEC => b" (not a module for this kernel)",
        Errno::INVAL => b" (built for another kernel version? see the kernel log)",
        Errno::NOKEY | Errno::KEYREJECTED => {
            b" (signature rejected: this kernel enforces module signing)"
        }
        Errno::NOTSUP => {
            b" (compressed, and this kernel cannot decompress modules: repack it uncompressed)"
        }
        _ => b"",
    }
}
