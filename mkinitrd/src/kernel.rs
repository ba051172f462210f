//! Host lookups: the running kernel's version, its module tree, and the
//! init binary built or installed alongside mkinitrd.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use crate::elf;
use crate::error::Error;
use crate::kmod::MODULES_DEP;

/// The running kernel's release (`uname -r`).
pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
/// Where module trees are installed, in the order they are looked in.
pub const MODULE_ROOTS: [&str; 2] = ["/lib/modules", "/usr/lib/modules"];
/// init as installed by `make install`, relative to mkinitrd's directory
/// (`PREFIX/bin/mkinitrd` and `PREFIX/lib/chrootvm/init`).
pub const INSTALLED_INIT: &str = "lib/chrootvm/init";

/// What a virtiofs root needs: the virtio PCI transport, and virtiofs; the
/// virtio core, virtio_ring and fuse come in as their dependencies.
pub const DEFAULT_MODULES: &[&str] = &["virtio_pci", "virtiofs"];

/// The running kernel's version, from [`OSRELEASE`].
///
/// Errors: [`Error::ReadKernelRelease`].
pub fn running_kver() -> Result<String, Error> {
    read_kver(Path::new(OSRELEASE))
}

/// Reads a kernel version from `path`, without its newline.
fn read_kver(path: &Path) -> Result<String, Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::ReadKernelRelease {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim().to_string())
}

/// The module tree of kernel `kver`: the first of `/lib/modules/VER` and
/// `/usr/lib/modules/VER` that holds a `modules.dep`.
///
/// Errors: [`Error::FindModdir`] naming both.
pub fn find_moddir(kver: &str) -> Result<PathBuf, Error> {
    find_moddir_in(&MODULE_ROOTS.map(Path::new), kver)
}

/// [`find_moddir`] over the given roots.
pub fn find_moddir_in(roots: &[&Path], kver: &str) -> Result<PathBuf, Error> {
    let tried: Vec<PathBuf> = roots.iter().map(|root| root.join(kver)).collect();
    match tried.iter().find(|dir| dir.join(MODULES_DEP).is_file()) {
        Some(dir) => Ok(dir.clone()),
        None => Err(Error::FindModdir {
            kver: kver.to_string(),
            tried,
        }),
    }
}

/// The init binary to pack: `explicit` if given, else the first static ELF
/// executable of [`init_candidates`] of the running mkinitrd.
///
/// The candidates must be static so that a system's own /sbin/init (say,
/// systemd, which needs its libraries) is never picked by mistake.
/// Errors: [`Error::FindInit`] naming every candidate.
pub fn find_init(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    match env::current_exe() {
        Ok(exe) => find_init_near(&exe),
        Err(_) => Err(Error::FindInit { tried: Vec::new() }),
    }
}

/// Where init is looked for, given mkinitrd's own path: the installed
/// layout (`BIN/../lib/chrootvm/init`), then cargo's target directory
/// (`target/release/init` next to `target/release/mkinitrd`).
pub fn init_candidates(exe: &Path) -> Vec<PathBuf> {
    let Some(bin) = exe.parent() else {
        return Vec::new();
    };
    let prefix = bin.parent().unwrap_or(bin);
    vec![prefix.join(INSTALLED_INIT), bin.join("init")]
}

/// [`find_init`] for a mkinitrd at `exe`.
pub fn find_init_near(exe: &Path) -> Result<PathBuf, Error> {
    let tried = init_candidates(exe);
    match tried.iter().find(|path| elf::is_static_executable(path)) {
        Some(path) => Ok(path.clone()),
        None => Err(Error::FindInit { tried }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{Class, ET_EXEC, Endian, PT_INTERP, make_elf};
    use crate::testutil::TempDir;

    #[test]
    fn kver_is_trimmed() {
        let tmp = TempDir::new("kernel-kver");
        let path = tmp.write("osrelease", b"6.1.0-56-cloud-amd64\n");
        assert_eq!(read_kver(&path).unwrap(), "6.1.0-56-cloud-amd64");
        let err = read_kver(&tmp.path().join("none")).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("(is /proc mounted? pass --kver or --moddir)")
        );
    }

    #[test]
    fn moddir_is_the_first_with_modules_dep() {
        let tmp = TempDir::new("kernel-moddir");
        let lib = tmp.path().join("lib");
        let usr = tmp.path().join("usr");
        fs::create_dir_all(lib.join("6.1")).unwrap(); // no modules.dep: skipped
        tmp.write("usr/6.1/modules.dep", b"");
        let roots = [lib.as_path(), usr.as_path()];
        assert_eq!(find_moddir_in(&roots, "6.1").unwrap(), usr.join("6.1"));
        tmp.write("lib/6.1/modules.dep", b"");
        assert_eq!(find_moddir_in(&roots, "6.1").unwrap(), lib.join("6.1"));

        let err = find_moddir_in(&roots, "9.9").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot find the module tree of kernel 9.9 (looked in {} and {}; is the \
                 kernel's module tree installed? pass --moddir)",
                lib.join("9.9").display(),
                usr.join("9.9").display()
            )
        );
    }

    #[test]
    fn candidates_cover_installed_and_cargo_layouts() {
        assert_eq!(
            init_candidates(Path::new("/usr/local/bin/mkinitrd")),
            [
                PathBuf::from("/usr/local/lib/chrootvm/init"),
                PathBuf::from("/usr/local/bin/init")
            ]
        );
        assert_eq!(
            init_candidates(Path::new("/src/target/release/mkinitrd"))[1],
            Path::new("/src/target/release/init")
        );
    }

    #[test]
    fn only_static_executables_are_picked() {
        let tmp = TempDir::new("kernel-init");
        let exe = tmp.path().join("bin/mkinitrd");
        // A dynamic init in the installed place (like systemd's) is skipped.
        tmp.write(
            "lib/chrootvm/init",
            &make_elf(Class::Elf64, Endian::Little, ET_EXEC, &[PT_INTERP, 1]),
        );
        let err = find_init_near(&exe).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot find the init binary (looked in {} and {}; build it with make, \
                 or pass --init PATH)",
                tmp.path().join("lib/chrootvm/init").display(),
                tmp.path().join("bin/init").display()
            )
        );
        tmp.write(
            "bin/init",
            &make_elf(Class::Elf64, Endian::Little, ET_EXEC, &[1]),
        );
        assert_eq!(find_init_near(&exe).unwrap(), tmp.path().join("bin/init"));
        tmp.write(
            "lib/chrootvm/init",
            &make_elf(Class::Elf32, Endian::Big, ET_EXEC, &[1]),
        );
        assert_eq!(
            find_init_near(&exe).unwrap(),
            tmp.path().join("lib/chrootvm/init")
        );
    }

    #[test]
    fn explicit_init_is_taken_as_given() {
        let path = Path::new("/nonexistent/init");
        assert_eq!(find_init(Some(path)).unwrap(), path);
    }
}
