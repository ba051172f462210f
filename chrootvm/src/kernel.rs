//! Finding the kernel to boot and the module tree that matches it
//! (SPEC §5): `--kernel`; the root's /usr/lib/modules/VER/vmlinuz (newest
//! VER); the root's /boot/vmlinuz-VER; the host's running kernel; the
//! newest host kernel that has its modules. A kernel whose version we can
//! read (an x86 bzImage) must match its module tree.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use mkinitrd::kernel::{moddir_candidates, moddir_under};

use crate::error::Error;

/// The kernel chosen, with its modules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// The image qemu boots.
    pub image: PathBuf,
    /// Its release (`uname -r`), when known.
    pub version: Option<String>,
    /// The module tree (holds modules.dep).
    pub moddir: PathBuf,
    /// How it was found, for `--debug`.
    pub source: &'static str,
}

/// What the command line says about the kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request<'a> {
    /// `--kernel`.
    pub image: Option<&'a Path>,
    /// `--kver`.
    pub version: Option<&'a str>,
    /// `--moddir`.
    pub moddir: Option<&'a Path>,
}

/// Where the host keeps kernels and modules; a parameter so tests can use a
/// fake host.
#[derive(Clone, Debug)]
pub struct Host {
    /// The host's root, `/` in real use.
    pub root: PathBuf,
    /// `uname -r` of the running kernel.
    pub running: Option<String>,
}

impl Host {
    /// The machine we run on.
    pub fn current() -> Host {
        let running = fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|text| text.trim().to_string());
        Host {
            root: PathBuf::from("/"),
            running,
        }
    }
}

/// Finds the kernel and its modules.
///
/// # Errors
/// [`Error::NoKernel`] listing where it looked, [`Error::NoModules`] when
/// the kernel's module tree is missing, [`Error::KernelMismatch`] when the
/// image's version differs from the tree's.
pub fn find(rootfs: Option<&Path>, request: Request<'_>, host: &Host) -> Result<Kernel, Error> {
    let mut kernel = match request.image {
        Some(image) => given_image(image, rootfs, request, host)?,
        None => discover(rootfs, request.version, host)?,
    };
    if let Some(moddir) = request.moddir {
        kernel.moddir = moddir.to_path_buf();
        kernel.source = "--moddir";
    }
    check_match(&kernel)?;
    Ok(kernel)
}

/// `--kernel PATH`: its modules by `--kver`, else by the version in the
/// image, looked up in the root, then the host.
fn given_image(
    image: &Path,
    rootfs: Option<&Path>,
    request: Request<'_>,
    host: &Host,
) -> Result<Kernel, Error> {
    let version = request
        .version
        .map(str::to_string)
        .or_else(|| read_version(image).ok().flatten());
    let moddir = match (request.moddir, &version) {
        (Some(moddir), _) => moddir.to_path_buf(),
        (None, Some(version)) => module_dirs(rootfs, &host.root, version)
            .into_iter()
            .find(|dir| dir.join("modules.dep").is_file())
            .ok_or_else(|| Error::NoModules {
                kernel: image.to_path_buf(),
                version: version.clone(),
            })?,
        (None, None) => return Err(Error::UnknownKernelVersion(image.to_path_buf())),
    };
    Ok(Kernel {
        image: image.to_path_buf(),
        version,
        moddir,
        source: "--kernel",
    })
}

/// The places a module tree for `version` can be: the root's, then the
/// host's; /usr/lib first, as usr-merged systems keep it there.
fn module_dirs(rootfs: Option<&Path>, host: &Path, version: &str) -> Vec<PathBuf> {
    rootfs
        .into_iter()
        .chain([host])
        .flat_map(|base| moddir_candidates(base, version))
        .collect()
}

/// The SPEC §5 discovery order, restricted to `version` when given. An
/// image root (`--initrd`) has no directory to look in: the host only.
fn discover(rootfs: Option<&Path>, version: Option<&str>, host: &Host) -> Result<Kernel, Error> {
    let mut looked = Vec::new();
    if let Some(rootfs) = rootfs
        && let Some(kernel) = discover_in_root(rootfs, version, &mut looked)
    {
        return Ok(kernel);
    }
    discover_on_host(version, host, looked)
}

/// The root's own kernel: its /usr/lib/modules/VER/vmlinuz (newest first),
/// then its /boot/vmlinuz-VER.
fn discover_in_root(
    rootfs: &Path,
    version: Option<&str>,
    looked: &mut Vec<PathBuf>,
) -> Option<Kernel> {
    let wanted = |v: &str| version.is_none_or(|want| want == v);

    // The root's own kernel, the Fedora/usr-merged way.
    let usr_modules = rootfs.join("usr/lib/modules");
    looked.push(usr_modules.join("VER/vmlinuz"));
    for v in versions_newest_first(list_dir(&usr_modules)) {
        let image = usr_modules.join(&v).join("vmlinuz");
        if wanted(&v) && image.is_file() {
            return Some(Kernel {
                image,
                moddir: usr_modules.join(&v),
                version: Some(v),
                source: "the root's /usr/lib/modules",
            });
        }
    }
    // The root's /boot, the Debian way.
    looked.push(rootfs.join("boot/vmlinuz-VER"));
    boot_kernel(rootfs, rootfs, &wanted, "the root's /boot")
}

/// The host's running kernel (or the one asked for), then the newest one
/// installed.
fn discover_on_host(
    version: Option<&str>,
    host: &Host,
    mut looked: Vec<PathBuf>,
) -> Result<Kernel, Error> {
    if let Some(v) = version.or(host.running.as_deref()) {
        let image = host.root.join("boot").join(format!("vmlinuz-{v}"));
        looked.push(image.clone());
        if image.is_file() {
            let moddir = module_dirs(None, &host.root, v)
                .into_iter()
                .find(|dir| dir.join("modules.dep").is_file())
                .ok_or_else(|| Error::NoModules {
                    kernel: image.clone(),
                    version: v.to_string(),
                })?;
            return Ok(Kernel {
                image,
                moddir,
                version: Some(v.to_string()),
                source: "the host's /boot",
            });
        }
    }
    // A host whose running kernel is not installed (a container, a CI VM)
    // can still boot an installed one.
    if version.is_none() {
        looked.push(host.root.join("boot/vmlinuz-*"));
        if let Some(kernel) = boot_kernel(
            &host.root,
            &host.root,
            &|_| true,
            "the newest kernel in the host's /boot",
        ) {
            return Ok(kernel);
        }
    }
    Err(Error::NoKernel(looked))
}

/// The newest `BASE/boot/vmlinuz-VER` that has a module tree under MODS.
fn boot_kernel(
    base: &Path,
    mods: &Path,
    wanted: &dyn Fn(&str) -> bool,
    source: &'static str,
) -> Option<Kernel> {
    let boot = base.join("boot");
    let versions = list_dir(&boot)
        .into_iter()
        .filter_map(|name| name.strip_prefix("vmlinuz-").map(str::to_string));
    for v in versions_newest_first(versions.collect()) {
        if !wanted(&v) {
            continue;
        }
        if let Some(moddir) = moddir_under(mods, &v) {
            return Some(Kernel {
                image: boot.join(format!("vmlinuz-{v}")),
                version: Some(v),
                moddir,
                source,
            });
        }
    }
    None
}

fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect()
}

/// Sorts versions newest first, comparing digit runs as numbers
/// (`6.10.0` after `6.9.0`), as `sort -V` does.
fn versions_newest_first(mut versions: Vec<String>) -> Vec<String> {
    versions.sort_by_key(|v| std::cmp::Reverse(version_key(v)));
    versions
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Text(String),
    Number(u64),
}

fn version_key(version: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = version;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            parts.push(Part::Number(rest[..digits].parse().unwrap_or(u64::MAX)));
            rest = &rest[digits..];
        } else {
            let text = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
            parts.push(Part::Text(rest[..text].to_string()));
            rest = &rest[text..];
        }
    }
    parts
}

/// x86 boot protocol (Documentation/arch/x86/boot.rst): the setup header
/// signature "HdrS" at 0x202, and at 0x20E a pointer (minus 0x200) to the
/// NUL-terminated version string, which starts with the release.
const HDRS_OFFSET: usize = 0x202;
const KERNEL_VERSION_OFFSET: usize = 0x20e;
const SETUP_BASE: usize = 0x200;

/// The release of an x86 bzImage (`6.1.0-56-cloud-amd64`), `None` for
/// other images (an arm64 Image, a vmlinux).
pub fn read_version(image: &Path) -> io::Result<Option<String>> {
    let mut head = vec![0u8; 64 * 1024];
    let mut file = fs::File::open(image)?;
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..])? {
            0 => break,
            n => len += n,
        }
    }
    head.truncate(len);
    Ok(parse_version(&head))
}

fn parse_version(head: &[u8]) -> Option<String> {
    if head.get(HDRS_OFFSET..HDRS_OFFSET + 4)? != b"HdrS" {
        return None;
    }
    let pointer = head.get(KERNEL_VERSION_OFFSET..KERNEL_VERSION_OFFSET + 2)?;
    let start = usize::from(u16::from_le_bytes([pointer[0], pointer[1]])) + SETUP_BASE;
    let text = head.get(start..)?;
    let end = text.iter().position(|&b| b == 0 || b == b' ')?;
    let release = std::str::from_utf8(&text[..end]).ok()?;
    (!release.is_empty()).then(|| release.to_string())
}

/// A bzImage's version must be the module tree's: modules built for
/// another kernel fail to load with confusing errors inside the guest.
fn check_match(kernel: &Kernel) -> Result<(), Error> {
    let Some(version) = kernel.version.as_deref() else {
        return Ok(());
    };
    let image_version = read_version(&kernel.image).ok().flatten();
    let tree_version = kernel.moddir.file_name().and_then(|n| n.to_str());
    match (image_version, tree_version) {
        (Some(image), Some(tree)) if image != tree && tree == version => {
            Err(Error::KernelMismatch {
                image: kernel.image.clone(),
                image_version: image,
                moddir: kernel.moddir.clone(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tempdir::TempDir;

    /// A fake bzImage with `release` in its header.
    fn bzimage(release: &str) -> Vec<u8> {
        let mut image = vec![0u8; 0x1000];
        image[HDRS_OFFSET..HDRS_OFFSET + 4].copy_from_slice(b"HdrS");
        let string_at = 0x800usize;
        let pointer = u16::try_from(string_at - SETUP_BASE).unwrap();
        image[KERNEL_VERSION_OFFSET..KERNEL_VERSION_OFFSET + 2]
            .copy_from_slice(&pointer.to_le_bytes());
        let text = format!("{release} (builder@example) #1 SMP\0");
        image[string_at..string_at + text.len()].copy_from_slice(text.as_bytes());
        image
    }

    fn kernel_at(root: &Path, image: &str, moddir: &str, release: &str) {
        let image = root.join(image);
        fs::create_dir_all(image.parent().unwrap()).unwrap();
        fs::write(&image, bzimage(release)).unwrap();
        let moddir = root.join(moddir);
        fs::create_dir_all(&moddir).unwrap();
        fs::write(moddir.join("modules.dep"), "").unwrap();
    }

    fn host(root: &Path, running: Option<&str>) -> Host {
        Host {
            root: root.to_path_buf(),
            running: running.map(str::to_string),
        }
    }

    #[test]
    fn reads_the_release_from_a_bzimage() {
        assert_eq!(
            parse_version(&bzimage("6.1.0-56-cloud-amd64")).as_deref(),
            Some("6.1.0-56-cloud-amd64")
        );
        assert_eq!(parse_version(b"\x7fELF"), None);
        assert_eq!(parse_version(&[0; 0x300]), None);
    }

    #[test]
    fn real_kernel_version_matches_its_file_name() {
        // The kernel the VM tests boot, which make check installs.
        let image = ::tests::kernel();
        assert_eq!(
            read_version(&image).unwrap(),
            Some(::tests::release(&image))
        );
    }

    #[test]
    fn versions_sort_like_sort_v() {
        let sorted = versions_newest_first(vec![
            "6.9.0".into(),
            "6.10.0".into(),
            "6.1.0-56".into(),
            "6.10.0-rc1".into(),
        ]);
        assert_eq!(sorted, ["6.10.0-rc1", "6.10.0", "6.9.0", "6.1.0-56"]);
    }

    #[test]
    fn discovery_order() {
        let tmp = TempDir::new("kernel-order");
        let (rootfs, hostdir) = (tmp.path().join("root"), tmp.path().join("host"));
        fs::create_dir_all(&rootfs).unwrap();
        kernel_at(&hostdir, "boot/vmlinuz-6.0.0", "lib/modules/6.0.0", "6.0.0");
        kernel_at(&hostdir, "boot/vmlinuz-5.0.0", "lib/modules/5.0.0", "5.0.0");
        let h = host(&hostdir, Some("5.0.0"));
        let found = |h: &Host| find(Some(&rootfs), Request::default(), h).unwrap();

        // The running kernel wins over a newer installed one.
        assert_eq!(found(&h).image, hostdir.join("boot/vmlinuz-5.0.0"));
        // A running kernel that is not installed falls back to the newest.
        assert_eq!(
            found(&host(&hostdir, Some("9.9"))).image,
            hostdir.join("boot/vmlinuz-6.0.0")
        );
        // The root's /boot wins over the host.
        kernel_at(&rootfs, "boot/vmlinuz-4.0.0", "lib/modules/4.0.0", "4.0.0");
        assert_eq!(found(&h).moddir, rootfs.join("lib/modules/4.0.0"));
        // The root's /usr/lib/modules/VER/vmlinuz wins over its /boot, newest first.
        kernel_at(
            &rootfs,
            "usr/lib/modules/3.0.0/vmlinuz",
            "usr/lib/modules/3.0.0",
            "3.0.0",
        );
        kernel_at(
            &rootfs,
            "usr/lib/modules/3.10.0/vmlinuz",
            "usr/lib/modules/3.10.0",
            "3.10.0",
        );
        let k = found(&h);
        assert_eq!(k.image, rootfs.join("usr/lib/modules/3.10.0/vmlinuz"));
        assert_eq!(k.version.as_deref(), Some("3.10.0"));
        // --kver picks a version anywhere in the order.
        let k = find(
            Some(&rootfs),
            Request {
                version: Some("6.0.0"),
                ..Request::default()
            },
            &h,
        )
        .unwrap();
        assert_eq!(k.image, hostdir.join("boot/vmlinuz-6.0.0"));
    }

    #[test]
    fn kernel_option_finds_modules_by_image_version() {
        let tmp = TempDir::new("kernel-option");
        let rootfs = tmp.path().join("root");
        kernel_at(tmp.path(), "k/bzImage", "root/lib/modules/6.2.0", "6.2.0");
        let request = Request {
            image: Some(&tmp.path().join("k/bzImage")),
            ..Request::default()
        };
        let k = find(Some(&rootfs), request, &host(tmp.path(), None)).unwrap();
        assert_eq!(k.moddir, rootfs.join("lib/modules/6.2.0"));
        assert_eq!(k.version.as_deref(), Some("6.2.0"));
    }

    #[test]
    fn errors_say_where_we_looked_and_what_mismatched() {
        let tmp = TempDir::new("kernel-errors");
        let rootfs = tmp.path().join("root");
        fs::create_dir_all(&rootfs).unwrap();
        let err = find(
            Some(&rootfs),
            Request::default(),
            &host(tmp.path(), Some("6.5.0")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("cannot find a kernel to boot (looked for "),
            "{err}"
        );
        assert!(err.contains("boot/vmlinuz-6.5.0"), "{err}");
        assert!(err.ends_with("pass --kernel PATH or --kver VER)"), "{err}");

        kernel_at(
            tmp.path(),
            "boot/vmlinuz-6.5.0",
            "lib/modules/6.4.0",
            "6.5.0",
        );
        fs::create_dir_all(tmp.path().join("lib/modules/6.5.0")).unwrap();
        fs::write(tmp.path().join("lib/modules/6.5.0/modules.dep"), "").unwrap();
        fs::write(tmp.path().join("boot/vmlinuz-6.5.0"), bzimage("6.4.0")).unwrap();
        let err = find(
            Some(&rootfs),
            Request::default(),
            &host(tmp.path(), Some("6.5.0")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is version 6.4.0"), "{err}");
    }
}
