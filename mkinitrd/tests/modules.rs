//! The module resolver, decompression policy and firmware lookup against
//! the real Debian 12 module trees in /usr/lib/modules, checked against
//! modprobe itself (`modprobe --show-depends`, which loads nothing).
//!
//! The trees and kmod are part of the test environment (the VM tests boot
//! the same kernels): a missing one fails the test with the package to
//! install, rather than skipping it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use mkinitrd::decompress::KernelDecompress;
use mkinitrd::firmware;
use mkinitrd::image::Image;
use mkinitrd::kmod::{Module, ModuleTree, normalize_name};

/// The cloud kernel's release (`6.1.0-57-cloud-amd64`): the one the VM
/// tests boot.
fn cloud() -> String {
    tests::release(&tests::kernel())
}

/// The generic kernel's release (`6.1.0-57-amd64`).
fn generic() -> String {
    tests::release(&tests::generic_kernel())
}

/// The module tree of kernel `kver`, which must be installed.
fn moddir(kver: &str) -> PathBuf {
    let dir = Path::new("/usr/lib/modules").join(kver);
    assert!(
        dir.join("modules.dep").is_file(),
        "{} is missing: apt-get install -y linux-image-{kver}",
        dir.display()
    );
    dir
}

fn open(kver: &str) -> ModuleTree {
    ModuleTree::open(&moddir(kver)).unwrap()
}

fn names(modules: &[Module]) -> Vec<&str> {
    modules.iter().map(|m| m.name.as_str()).collect()
}

fn resolve(tree: &ModuleTree, wanted: &[&str]) -> Vec<String> {
    names(&tree.resolve(wanted).unwrap())
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn fs_virtiofs_resolves_to_virtiofs_after_its_dependencies() {
    let tree = open(&cloud());
    assert_eq!(
        resolve(&tree, &["fs-virtiofs"]),
        ["fuse", "virtio_ring", "virtio", "virtiofs"]
    );
}

#[test]
fn the_default_modules_resolve_in_modprobe_order() {
    let tree = open(&cloud());
    let modules = tree.resolve(mkinitrd::kernel::DEFAULT_MODULES).unwrap();
    assert_eq!(names(&modules), tests::virtiofs_modules());
    assert!(modules.iter().all(|m| m.path.is_file()));
    assert_eq!(
        modules[4].rel_path,
        Path::new("kernel/drivers/virtio/virtio_pci.ko")
    );
}

#[test]
fn a_pci_modalias_resolves_to_its_driver() {
    let tree = open(&cloud());
    // virtio-fs's PCI id, as modinfo would print a matching alias.
    let got = resolve(&tree, &["pci:v00001AF4d0000105Asv*sd*bc*sc*i*"]);
    assert_eq!(got.last().map(String::as_str), Some("virtio_pci"));
    assert!(got.contains(&"virtio_pci_modern_dev".to_string()));
}

#[test]
fn pre_softdeps_load_first_with_their_own_dependencies() {
    let tree = open(&cloud());
    // softdep xt_LOG pre: nf_log_syslog
    assert_eq!(
        resolve(&tree, &["xt_LOG"]),
        ["x_tables", "nf_log_syslog", "xt_LOG"]
    );
    // softdep libcrc32c pre: crc32c, an alias of crc32c_intel (loadable)
    // and of crc32c_generic (built in).
    assert_eq!(
        resolve(&tree, &["libcrc32c"]),
        ["crc32c_intel", "libcrc32c"]
    );
    // Four lines `softdep btrfs pre: blake2b-256`, `sha256`, `xxhash64`,
    // `crypto-crc32c` (the last is placed already, as libcrc32c's
    // softdep), and libcrc32c, a dependency, brings its own softdep first.
    // modprobe takes the first line only.
    let btrfs = resolve(&tree, &["btrfs"]);
    assert_eq!(
        btrfs,
        [
            "crc32c_intel",
            "libcrc32c",
            "zstd_compress",
            "raid6_pq",
            "xor",
            "blake2b_generic",
            "sha256_ssse3",
            "xxhash_generic",
            "btrfs"
        ]
    );
    assert_in_order(&show_depends(&cloud(), "btrfs"), &btrfs);
    // softdep nfsd pre: crypto-md5, built in: nothing to pack for it.
    assert_eq!(resolve(&tree, &["nfsd"]).last().unwrap(), "nfsd");
}

#[test]
fn all_softdep_lines_count_where_modprobe_takes_the_first() {
    // ksmbd has twelve `softdep ksmbd pre:` lines; modprobe loads the
    // first one's crc32 (two modules) only.
    let tree = open(&cloud());
    let got = resolve(&tree, &["ksmbd"]);
    let modprobe = show_depends(&cloud(), "ksmbd");
    assert_in_order(&modprobe, &got);
    assert!(got.len() > modprobe.len(), "{got:?}");
    assert_eq!(got.last().unwrap(), "ksmbd");
}

#[test]
fn missing_names_are_listed_together() {
    let tree = open(&cloud());
    let err = tree
        .resolve(&["virtiofs", "no-such-module", "ext4", "fs-nope"])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot find modules no-such-module, fs-nope in {} (not in modules.dep or \
             modules.builtin; check the names with modinfo)",
            moddir(&cloud()).display()
        )
    );
}

/// modprobe's load list for `name`, as module names, each once (modprobe
/// lists a module again where it meets it again, and skips it when
/// loading), built-ins dropped, ignoring the host's modprobe.d.
fn show_depends(kver: &str, name: &str) -> Vec<String> {
    let output = Command::new("/sbin/modprobe")
        .args(["-C", "/nonexistent", "-S", kver, "--show-depends", name])
        .output()
        .unwrap_or_else(|e| panic!("cannot run modprobe: {e} (apt-get install -y kmod)"));
    let mut seen = HashSet::new();
    assert!(
        output.status.success(),
        "modprobe --show-depends {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("insmod "))
        .map(|path| {
            let file = path.trim().rsplit('/').next().unwrap();
            normalize_name(&file[..file.find(".ko").unwrap()])
        })
        .filter(|name| seen.insert(name.clone()))
        .collect()
}

/// Asserts `sub` appears in `list` in the same order.
fn assert_in_order(sub: &[String], list: &[String]) {
    let mut rest = list.iter();
    for item in sub {
        assert!(
            rest.any(|x| x == item),
            "{item} missing or out of order: {sub:?} in {list:?}"
        );
    }
}

/// Every module of the tree resolves to exactly modprobe's list, except
/// where a module with several softdep lines is involved (there we pack a
/// superset, in an order that keeps modprobe's).
fn matches_modprobe_for_every_module(kver: &str) {
    let tree = open(kver);
    let text = std::fs::read_to_string(moddir(kver).join("modules.softdep")).unwrap();
    let mut seen = HashSet::new();
    let several: HashSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("softdep "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|m| !seen.insert(normalize_name(m)))
        .map(normalize_name)
        .collect();
    let dep = std::fs::read_to_string(moddir(kver).join("modules.dep")).unwrap();
    let mut checked = 0;
    for line in dep.lines() {
        let file = line.split(':').next().unwrap().rsplit('/').next().unwrap();
        let name = normalize_name(&file[..file.find(".ko").unwrap()]);
        let ours = resolve(&tree, &[&name]);
        let modprobe = show_depends(kver, &name);
        if ours.iter().any(|m| several.contains(m)) {
            assert_in_order(&modprobe, &ours);
        } else {
            assert_eq!(ours, modprobe, "{name}");
        }
        checked += 1;
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn every_cloud_module_resolves_as_modprobe_does() {
    matches_modprobe_for_every_module(&cloud());
}

#[test]
fn every_generic_module_resolves_as_modprobe_does() {
    matches_modprobe_for_every_module(&generic());
}

#[test]
fn debian_kernels_decompress_nothing_and_every_modinfo_parses() {
    for kver in [cloud(), generic()] {
        let kver = kver.as_str();
        let tree = open(kver);
        assert_eq!(tree.kernel_decompresses(), KernelDecompress::NONE);
        let dep = std::fs::read_to_string(moddir(kver).join("modules.dep")).unwrap();
        let modules: Vec<Module> = dep
            .lines()
            .filter_map(|l| Module::from_dep_path(&moddir(kver), l.split(':').next()?))
            .collect();
        // An empty firmware directory: every name is missing, and no
        // module's ELF is unreadable.
        let empty = std::env::temp_dir().join(format!("mkinitrd-fw-empty-{}", std::process::id()));
        let found = firmware::firmware_for(&modules, &empty).unwrap();
        assert!(found.files.is_empty());
        assert!(
            found
                .warnings
                .iter()
                .all(|w| w.starts_with("module ") && w.contains(" names firmware not in ")),
            "{:?}",
            found.warnings
        );
        assert!(
            !found.warnings.is_empty(),
            "{kver}: no module names firmware?"
        );
    }
}

#[test]
fn firmware_of_a_real_module_is_packed_from_a_firmware_dir() {
    // The generic kernel's bnx2 ethernet driver names its firmware files.
    let tree = open(&generic());
    let modules = tree.resolve(&["bnx2"]).unwrap();
    let bnx2 = modules.last().unwrap();
    let data = std::fs::read(&bnx2.path).unwrap();
    let wanted = firmware::modinfo_values(&data, "firmware").unwrap();
    assert!(!wanted.is_empty());
    let dir = std::env::temp_dir().join(format!("mkinitrd-fw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fwdir = dir.join("firmware");
    for name in &wanted {
        let path = fwdir.join(std::str::from_utf8(name).unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"firmware").unwrap();
    }
    let found = firmware::firmware_for(&modules, &fwdir).unwrap();
    assert_eq!(found.files.len(), wanted.len());
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    let mut image = Image::new(0);
    image
        .add_modules_for(&modules, tree.kernel_decompresses())
        .unwrap();
    image.add_firmware(&found).unwrap();
    let paths: Vec<&str> = image.entries().map(|(p, _)| p).collect();
    assert!(
        paths.contains(&"usr/lib/modules/000-bnx2.ko")
            || paths.iter().any(|p| p.ends_with("-bnx2.ko"))
    );
    for name in &wanted {
        let dest = format!("lib/firmware/{}", std::str::from_utf8(name).unwrap());
        assert!(paths.contains(&dest.as_str()), "{dest} not in {paths:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
