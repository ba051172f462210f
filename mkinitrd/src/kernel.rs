//! Host lookups: the running kernel's version and its module tree.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::kmod::MODULES_DEP;

/// The running kernel's release (`uname -r`).
pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
/// Where module trees are installed, in the order they are looked in.
pub const MODULE_ROOTS: [&str; 2] = ["/lib/modules", "/usr/lib/modules"];

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

#[cfg(test)]
mod tests {
    use super::*;
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
}
