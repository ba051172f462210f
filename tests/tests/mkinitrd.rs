//! Issue 4: mkinitrd, the complete packer, end to end. Images are made
//! with the mkinitrd binary from Debian's cloud kernel tree and booted
//! with `chrootvm --initrd` under TCG, or read back with GNU cpio and lz4.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tests::{Scratch, bin, busybox_root, chrootvm_command, kernel, moddir, run};

/// mkinitrd with the test kernel's module tree.
fn mkinitrd() -> Command {
    let mut command = Command::new(bin("mkinitrd"));
    command.arg("--moddir").arg(moddir());
    command
}

/// Runs mkinitrd; panics with its stderr unless it succeeds.
#[track_caller]
fn pack(mut command: Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "mkinitrd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs mkinitrd expecting failure; returns its stderr.
#[track_caller]
fn refused(mut command: Command) -> String {
    let output: Output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "mkinitrd should fail: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("mkinitrd: cannot "), "{stderr}");
    stderr
}

/// Entry names of an image, as `mkinitrd --list` prints them.
fn listing(image: &Path) -> Vec<String> {
    let output = Command::new(bin("mkinitrd"))
        .arg("--list")
        .arg(image)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // `MODE SIZE|MAJOR, MINOR DATE TIME NAME[ -> TARGET]`: the name follows
    // the time, which follows the date.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split(' ').filter(|w| !w.is_empty()).collect();
            let date = words.iter().position(|w| {
                w.len() == 10
                    && w.as_bytes()[4] == b'-'
                    && w[..4].bytes().all(|b| b.is_ascii_digit())
            })?;
            let name = words.get(date + 2..)?.join(" ");
            Some(name.split(" -> ").next().unwrap_or_default().to_string())
        })
        .collect()
}

/// The packed module stems in load order.
fn module_order(image: &Path) -> Vec<String> {
    listing(image)
        .iter()
        .filter_map(|p| p.strip_prefix("usr/lib/modules/"))
        .filter_map(|name| name.split_once('-').map(|(_, rest)| rest))
        .map(|stem| stem.trim_end_matches(".ko").replace('-', "_"))
        .collect()
}

/// `--bin bash --bin ls --bin mount` (and wc for the pipe) with the
/// virtiofs modules boots with no root and runs bash from the image; the
/// rapido resources of the image size the VM.
#[test]
fn programs_with_their_libraries_boot_as_the_root() {
    let scratch = Scratch::new("mk-bin");
    let image = scratch.path().join("bin.cpio");
    let mut command = mkinitrd();
    command
        .args([
            "--bin", "bash", "--bin", "ls", "--bin", "mount", "--bin", "wc",
        ])
        .args(["--cpus", "1", "--mem", "768M", "-o"])
        .arg(&image);
    pack(command);
    let mut command = chrootvm_command();
    command.arg("--initrd").arg(&image).args([
        "bash",
        "-c",
        "echo modules=$(ls /usr/lib/modules | wc -l); \
         n=0; while read -r l; do [[ $l == processor* ]] && n=$((n+1)); done < /proc/cpuinfo; \
         echo cpus=$n; true",
    ]);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "bash from the image should run");
    let modules: usize = vm
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("modules="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    vm.check(modules >= 7, "ls | wc should count the packed modules");
    vm.check(
        vm.stdout.contains("cpus=1\n"),
        "--cpus 1 in the image should size the VM",
    );
    vm.check(
        vm.stderr.contains("chrootvm: 1 CPUs, 768M of memory"),
        "chrootvm should take the image's resources",
    );
}

/// A module tree of .ko.xz and .ko.zst files (the Debian modules,
/// compressed here, depmod run on the copy) packs decompressed and boots.
#[test]
fn compressed_modules_are_decompressed_and_load() {
    let scratch = Scratch::new("mk-compressed");
    let version = moddir().file_name().unwrap().to_string_lossy().into_owned();
    let base = scratch.path().join("base");
    let tree = base.join("lib/modules").join(&version);
    let mut wanted = tests::virtiofs_modules();
    wanted.push("virtio_console".into());
    let dep = fs::read_to_string(moddir().join("modules.dep")).unwrap();
    for (i, line) in dep.lines().enumerate() {
        let rel = line.split(':').next().unwrap();
        let stem = Path::new(rel)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace('-', "_");
        if !wanted.contains(&stem) {
            continue;
        }
        let target = tree.join(rel);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(moddir().join(rel), &target).unwrap();
        let (tool, suffix) = if i % 2 == 0 {
            ("xz", "xz")
        } else {
            ("zstd", "zst")
        };
        // Both remove the original after compressing: xz by default, zstd
        // with --rm.
        let mut compress = Command::new(tool);
        compress.arg("-q");
        if tool == "zstd" {
            compress.arg("--rm");
        }
        let status = compress
            .arg(&target)
            .status()
            .unwrap_or_else(|e| panic!("{tool} should run ({e}): install xz-utils and zstd"));
        assert!(status.success());
        assert!(target.with_extension(format!("ko.{suffix}")).exists());
    }
    for file in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        let _ = fs::copy(moddir().join(file), tree.join(file));
    }
    let status = Command::new("depmod")
        .arg("-b")
        .arg(&base)
        .arg(&version)
        .status()
        .unwrap();
    assert!(status.success(), "depmod -b should index the copy");
    let dep = fs::read_to_string(tree.join("modules.dep")).unwrap();
    assert!(dep.contains(".ko.xz") && dep.contains(".ko.zst"), "{dep}");

    let image = scratch.path().join("image.cpio");
    let mut command = Command::new(bin("mkinitrd"));
    command.arg("--moddir").arg(&tree).arg("-o").arg(&image);
    pack(command);
    let names = listing(&image);
    assert!(
        names.iter().any(|n| n.ends_with("-virtiofs.ko"))
            && !names
                .iter()
                .any(|n| n.ends_with(".xz") || n.ends_with(".zst")),
        "modules should be packed decompressed: {names:?}"
    );

    let root = scratch.dir("root");
    busybox_root(&root);
    let mut command = chrootvm_command();
    command
        .arg("--moddir")
        .arg(&tree)
        .arg(&root)
        .args(["cat", "/proc/modules"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0),
        "the VM should boot from the compressed tree",
    );
    for module in ["virtiofs", "fuse", "virtio_pci", "virtio_console"] {
        vm.check(
            vm.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{module} "))),
            &format!("{module} should be loaded"),
        );
    }
}

/// `-m fs-virtiofs` (an alias) and softdep modules (xt_LOG needs
/// nf_log_syslog first, libcrc32c needs crc32c) come with what they need,
/// in an order the kernel accepts: every one is loaded in the VM.
#[test]
fn aliases_and_softdeps_pull_in_what_they_need() {
    let scratch = Scratch::new("mk-alias");
    let tree = scratch.dir("busybox");
    busybox_root(&tree);
    let image = scratch.path().join("alias.cpio");
    let mut command = mkinitrd();
    command
        .args(["-m", "fs-virtiofs", "-m", "xt_LOG", "-m", "libcrc32c"])
        .arg("--tree")
        .arg(format!("{}:/", tree.display()))
        .arg("-o")
        .arg(&image);
    pack(command);
    let order = module_order(&image);
    let at = |name: &str| {
        order
            .iter()
            .position(|m| m == name)
            .unwrap_or_else(|| panic!("{name} should be packed: {order:?}"))
    };
    assert!(
        at("fuse") < at("virtiofs") && at("virtio_ring") < at("virtiofs"),
        "{order:?}"
    );
    assert!(
        at("nf_log_syslog") < at("xt_LOG") && at("x_tables") < at("xt_LOG"),
        "{order:?}"
    );
    let crc32c = order
        .iter()
        .position(|m| m.starts_with("crc32c"))
        .expect("a crc32c module");
    assert!(crc32c < at("libcrc32c"), "{order:?}");
    let mut command = chrootvm_command();
    command
        .arg("--initrd")
        .arg(&image)
        .args(["cat", "/proc/modules"]);
    let vm = run(command);
    vm.check(vm.code() == Some(0), "the image should boot");
    for module in [
        "virtiofs",
        "xt_LOG",
        "nf_log_syslog",
        "x_tables",
        "libcrc32c",
    ] {
        vm.check(
            vm.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{module} "))),
            &format!("{module} should be loaded in the VM"),
        );
    }
}

/// `--compress lz4`: the kernel unpacks it (no "Initramfs unpacking
/// failed"), `lz4 -d` gives the plain image byte for byte, and 1 and 2
/// threads write the same bytes.
#[test]
fn lz4_images_boot_and_match_the_plain_image() {
    let scratch = Scratch::new("mk-lz4");
    let tree = scratch.dir("busybox");
    busybox_root(&tree);
    fs::write(tree.join("marker"), "unpacked from lz4\n").unwrap();
    let make = |name: &str, threads: &str, lz4: bool| -> PathBuf {
        let image = scratch.path().join(name);
        let mut command = mkinitrd();
        command
            .env("MKINITRD_THREADS", threads)
            .args(["-m", "ext4", "-m", "xfs", "-m", "btrfs"])
            .arg("--tree")
            .arg(format!("{}:/", tree.display()))
            .arg("-o")
            .arg(&image);
        if lz4 {
            command.args(["--compress", "lz4"]);
        }
        pack(command);
        image
    };
    let plain = make("plain.cpio", "1", false);
    let one = make("one.lz4", "1", true);
    let two = make("two.lz4", "2", true);
    let plain_bytes = fs::read(&plain).unwrap();
    assert!(plain_bytes.len() > 8 << 20, "more than one LZ4 block");
    assert_eq!(
        fs::read(&one).unwrap(),
        fs::read(&two).unwrap(),
        "thread count changed the bytes"
    );
    let unpacked = Command::new("lz4")
        .args(["-d", "-c"])
        .arg(&one)
        .output()
        .expect("lz4 should run: install lz4");
    assert!(unpacked.status.success());
    assert!(
        unpacked.stdout == plain_bytes,
        "lz4 -d should give the plain image"
    );

    let mut command = chrootvm_command();
    command.arg("--initrd").arg(&one).args(["cat", "/marker"]);
    let vm = run(command);
    vm.check(
        vm.code() == Some(0) && vm.stdout == "unpacked from lz4\n",
        "the LZ4 image should be the root",
    );
    vm.check(
        !vm.output().contains("Initramfs unpacking failed"),
        "the kernel should unpack every segment",
    );
}

/// The same inputs give the same bytes after the host files' mtimes
/// change; GNU cpio lists every entry of the plain image.
#[test]
fn images_are_reproducible_and_read_by_gnu_cpio() {
    let scratch = Scratch::new("mk-repro");
    let tree = scratch.dir("tree");
    busybox_root(&tree);
    let make = |name: &str| -> PathBuf {
        let image = scratch.path().join(name);
        let mut command = mkinitrd();
        command
            .args([
                "--bin",
                "bash",
                "--dir",
                "/data:0700",
                "--symlink",
                "/sh:bin/busybox",
            ])
            .arg("--tree")
            .arg(format!("{}:/busybox", tree.display()))
            .arg("-o")
            .arg(&image);
        pack(command);
        image
    };
    let first = make("first.cpio");
    let status = Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(tree.join("bin/busybox"))
        .arg(tree.join("etc/passwd"))
        .status()
        .unwrap();
    assert!(status.success());
    let second = make("second.cpio");
    assert!(
        fs::read(&first).unwrap() == fs::read(&second).unwrap(),
        "mtimes on the host should not change the image"
    );
    let cpio = Command::new("cpio")
        .args(["-t", "--quiet", "-F"])
        .arg(&first)
        .output()
        .expect("GNU cpio should run: install cpio");
    assert!(
        cpio.status.success(),
        "{}",
        String::from_utf8_lossy(&cpio.stderr)
    );
    let theirs: Vec<String> = String::from_utf8_lossy(&cpio.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        theirs,
        listing(&first),
        "GNU cpio and mkinitrd should list the same entries"
    );
    assert!(theirs.contains(&"usr/bin/bash".to_string()) && theirs.contains(&"data".to_string()));
}

/// Bad input: one line naming the thing, status 1, no output file, and an
/// existing one left as it was.
#[test]
fn bad_input_fails_cleanly_and_keeps_the_old_image() {
    let scratch = Scratch::new("mk-bad");
    let output = scratch.path().join("good.cpio");
    fs::write(&output, "the good image\n").unwrap();
    let attempt = |args: &[&str]| {
        let mut command = mkinitrd();
        command.args(args).arg("-o").arg(&output);
        let stderr = refused(command);
        assert_eq!(
            fs::read_to_string(&output).unwrap(),
            "the good image\n",
            "{stderr}"
        );
        stderr
    };
    assert!(attempt(&["--bin", "no-such-program"]).contains("cannot find program no-such-program"));
    let missing = attempt(&["-m", "no_such_a", "-m", "no_such_b"]);
    assert!(missing.contains("no_such_a, no_such_b"), "{missing}");
    assert!(attempt(&["--file", "/no/such/file"]).contains("/no/such/file"));
    assert!(attempt(&["--file", "/etc"]).contains("/etc"));
    let manifest = scratch.path().join("manifest");
    fs::write(&manifest, "dir /ok\nfile /etc/hostname /h\nfiel /x\n").unwrap();
    let syntax = attempt(&["--manifest", manifest.to_str().unwrap()]);
    assert!(
        syntax.contains(&format!("{}:3: ", manifest.display())),
        "{syntax}"
    );
    let leftovers: Vec<_> = fs::read_dir(scratch.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A destination with ".." is a usage error (status 2), before any work.
    let mut command = mkinitrd();
    command
        .args(["--file", "/etc/hostname:../../etc/x", "-o"])
        .arg(&output);
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"..\" component"));

    // Disk full: a 256 KiB tmpfs holds the old image but not a new one.
    let small = scratch.dir("small");
    let _mounted = Tmpfs::mount(&small, "256k");
    let full = small.join("image.cpio");
    fs::write(&full, "the good image\n").unwrap();
    let mut command = mkinitrd();
    command.arg("-o").arg(&full);
    let stderr = refused(command);
    let after = fs::read_to_string(&full).unwrap_or_default();
    let entries: Vec<_> = fs::read_dir(&small)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(
        after, "the good image\n",
        "the old image should be untouched"
    );
    assert_eq!(entries.len(), 1, "no partial output: {entries:?}");
}

/// The kernel the module tree belongs to is the one booted: the release
/// in the image's own header names the tree.
#[test]
fn the_test_kernel_matches_its_modules() {
    let tree = moddir().file_name().unwrap().to_string_lossy().into_owned();
    let image = fs::read(kernel()).unwrap();
    // The x86 boot protocol: "HdrS" at 0x202, and at 0x20E the offset
    // (from 0x200) of the NUL-ended version string.
    assert_eq!(&image[0x202..0x206], b"HdrS", "not a bzImage");
    let at = 0x200 + usize::from(u16::from_le_bytes([image[0x20e], image[0x20f]]));
    let version = image[at..].split(|&b| b == 0 || b == b' ').next().unwrap();
    assert_eq!(String::from_utf8_lossy(version), tree);
}

/// A small tmpfs on a directory of the test's, unmounted when dropped,
/// even when an assertion fails first.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mounting a tmpfs needs root (make check runs as root)"
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
