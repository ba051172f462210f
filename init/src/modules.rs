//! Step 4: load every /usr/lib/modules/*.ko in byte order of file name with
//! finit_module (SPEC §3.3). The packer numbered them in dependency order,
//! so init never resolves dependencies itself.

use core::mem::MaybeUninit;
use init::buf::Show;
use init::errno::Text;
use init::names::Names;
use init::plan::MODULE_DIR;
use rustix::fs::{Mode, OFlags, RawDir, openat};
use rustix::io::Errno;

use crate::boot::Boot;
use crate::log::{debug, now_us, warning};

/// Room for module file names: about 3000 names of typical length, far
/// beyond any initramfs (a full distribution image has a few hundred).
const NAME_BYTES: usize = 64 * 1024;
const MAX_MODULES: usize = 4096;

/// What step 4 did, for the root mount's error message.
pub struct Loaded {
    /// Modules that failed to load, by file name.
    pub failed: Names<1024, 32>,
}

/// Loads the bundled modules. A failure is reported with the module's name
/// and errno text, and the boot goes on: the module may not be needed.
pub fn load_modules(boot: &Boot<'_>) -> Loaded {
    let mut loaded = Loaded {
        failed: Names::new(),
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
    let names = read_module_names(boot, &dir);
    let start = now_us();
    for name in names.iter() {
        let begin = now_us();
        let result = openat(&dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .and_then(|module| rustix::system::finit_module(&module, c"", 0));
        match result {
            Ok(()) => debug!(boot.log, "loaded {} in {} us", Show(name), now_us() - begin),
            // The module is built in or already loaded: what we wanted.
            Err(Errno::EXIST) => debug!(boot.log, "{} is already loaded", Show(name)),
            Err(errno) => {
                warning!(
                    boot.log,
                    "cannot load module {}: {}{}",
                    Show(name),
                    Text(errno),
                    Show(finit_hint(errno))
                );
                let _ = loaded.failed.push(name);
            }
        }
    }
    debug!(
        boot.log,
        "loaded {} modules in {} us",
        names.len(),
        now_us() - start
    );
    loaded
}

/// The `*.ko` names in the module directory, sorted.
fn read_module_names(boot: &Boot<'_>, dir: &rustix::fd::OwnedFd) -> Names<NAME_BYTES, MAX_MODULES> {
    let mut names = Names::new();
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
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
        if !name.ends_with(b".ko") {
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
    names
}

/// What a finit_module errno usually means, where the text alone misleads.
fn finit_hint(errno: Errno) -> &'static [u8] {
    match errno {
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
