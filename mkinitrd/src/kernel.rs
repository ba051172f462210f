//! Host lookups: the running kernel's version and its module tree.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::kmod::MODULES_DEP;

/// The running kernel's release (`uname -r`).
pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
/// Where module trees are installed under a root, in the order both
/// programs look: /usr/lib first, where a usr-merged system keeps them.
pub const MODULE_SUBDIRS: [&str; 2] = ["usr/lib/modules", "lib/modules"];

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

/// The module tree of kernel `kver` on the host: [`moddir_under`] `/`.
///
/// Errors: [`Error::FindModdir`] naming both places.
pub fn find_moddir(kver: &str) -> Result<PathBuf, Error> {
    find_moddir_in(Path::new("/"), kver)
}

/// The places a module tree of `kver` can be under `root`, in lookup
/// order ([`MODULE_SUBDIRS`]).
pub fn moddir_candidates(root: &Path, kver: &str) -> [PathBuf; 2] {
    MODULE_SUBDIRS.map(|sub| root.join(sub).join(kver))
}

/// The module tree of `kver` under `root`: the first candidate holding a
/// `modules.dep`. chrootvm looks in a root's tree and the host's with it.
pub fn moddir_under(root: &Path, kver: &str) -> Option<PathBuf> {
    moddir_candidates(root, kver)
        .into_iter()
        .find(|dir| dir.join(MODULES_DEP).is_file())
}

/// [`find_moddir`] under `root`.
pub fn find_moddir_in(root: &Path, kver: &str) -> Result<PathBuf, Error> {
    match moddir_under(root, kver) {
        Some(dir) => Ok(dir),
        None => Err(Error::FindModdir {
            kver: kver.to_string(),
            tried: moddir_candidates(root, kver).to_vec(),
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
        let root = tmp.path();
        let usr = root.join("usr/lib/modules");
        let lib = root.join("lib/modules");
        fs::create_dir_all(usr.join("6.1")).unwrap(); // no modules.dep: skipped
        tmp.write("lib/modules/6.1/modules.dep", b"");
        assert_eq!(find_moddir_in(root, "6.1").unwrap(), lib.join("6.1"));
        tmp.write("usr/lib/modules/6.1/modules.dep", b"");
        assert_eq!(find_moddir_in(root, "6.1").unwrap(), usr.join("6.1"));

        let err = find_moddir_in(root, "9.9").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot find the module tree of kernel 9.9 (looked in {} and {}; is the \
                 kernel's module tree installed? pass --moddir)",
                usr.join("9.9").display(),
                lib.join("9.9").display()
            )
        );
    }
}
