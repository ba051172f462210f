//! Black-box tests of the `mkinitrd` binary: a fake module tree and a
//! hand-made static ELF as init, images read back with `--list`, with GNU
//! cpio, and with a naive header walker written here.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use signal_hook::consts::{SIGHUP, SIGINT, SIGKILL, SIGTERM};

/// The workspace's one temporary-directory helper.
use tests::Scratch as TempDir;

/// A modules.dep shaped like Debian's for the default set, plus a module
/// with a dash in its file name.
const MODULES_DEP: &str = "\
kernel/fs/fuse/fuse.ko:
kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/loop-extra.ko: kernel/fs/fuse/fuse.ko
";

/// What every test image holds with the default modules, in order.
const DEFAULT_NAMES: [&str; 16] = [
    "dev",
    "dev/console",
    "init",
    "proc",
    "run",
    "sys",
    "sysroot",
    "tmp",
    "usr",
    "usr/lib",
    "usr/lib/modules",
    "usr/lib/modules/000-virtio_ring.ko",
    "usr/lib/modules/001-virtio.ko",
    "usr/lib/modules/002-virtio_pci.ko",
    "usr/lib/modules/003-fuse.ko",
    "usr/lib/modules/004-virtiofs.ko",
];

/// A minimal static ELF64 executable: a header and one PT_LOAD program
/// header, no PT_INTERP, padded with zeros to `len` bytes.
fn static_elf(len: usize) -> Vec<u8> {
    let mut elf = vec![0u8; len.max(64 + 56)];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // ELFCLASS64
    elf[5] = 1; // ELFDATA2LSB
    elf[6] = 1; // EV_CURRENT
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    elf[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf
}

/// A fake module tree and init in a temp dir.
struct Fixture {
    dir: TempDir,
    moddir: PathBuf,
    init: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        Fixture::with_init_size(name, 4096)
    }

    fn with_init_size(name: &str, init_size: usize) -> Fixture {
        let dir = TempDir::new(name);
        let moddir = dir.path().join("modules/6.1.0-test");
        dir.write("modules/6.1.0-test/modules.dep", MODULES_DEP.as_bytes());
        dir.write(
            "modules/6.1.0-test/modules.builtin",
            b"kernel/fs/ext4/ext4.ko\n",
        );
        for line in MODULES_DEP.lines() {
            let rel = line.split(':').next().unwrap();
            let contents = format!("fake module {rel}\n");
            dir.write(&format!("modules/6.1.0-test/{rel}"), contents.as_bytes());
        }
        let init = dir.write("init", &static_elf(init_size));
        Fixture { dir, moddir, init }
    }

    /// `mkinitrd --moddir M --init I ARGS...` without SOURCE_DATE_EPOCH.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = mkinitrd(&[]);
        command
            .arg("--moddir")
            .arg(&self.moddir)
            .arg("--init")
            .arg(&self.init)
            .args(args);
        command
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Packs to `name` and returns the bytes.
    fn pack(&self, name: &str, args: &[&str]) -> Vec<u8> {
        let out = self.out(name);
        let output = self.command(args).arg("-o").arg(&out).output().unwrap();
        assert_success(&output);
        fs::read(out).unwrap()
    }
}

/// `mkinitrd ARGS...`, with every signal at its default whatever the tests
/// inherited (a suite run under nohup or as a background job ignores
/// some, and mkinitrd keeps ignored signals ignored): `env` execs it, so
/// the child's pid is mkinitrd's.
fn mkinitrd(args: &[&str]) -> Command {
    let mut command = Command::new("env");
    command
        .arg("--default-signal")
        .arg(env!("CARGO_BIN_EXE_mkinitrd"))
        .env_remove("SOURCE_DATE_EPOCH")
        .args(args);
    command
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "status {:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// The lines of stderr other than warnings (the fixture's modules are not
/// ELF, so each gets one about its firmware).
fn errors_of(output: &Output) -> String {
    stderr_of(output)
        .lines()
        .filter(|line| !line.starts_with("mkinitrd: warning: "))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The header fields the tests look at.
#[derive(Debug)]
struct Header {
    name: String,
    mode: u32,
    mtime: u32,
}

/// Walks newc headers naively (a reference independent of the library),
/// up to the trailer.
fn walk_headers(bytes: &[u8]) -> Vec<Header> {
    let field = |at: usize, i: usize| {
        let text = std::str::from_utf8(&bytes[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
        u32::from_str_radix(text, 16).unwrap()
    };
    let mut headers = Vec::new();
    let mut at = 0;
    loop {
        assert_eq!(&bytes[at..at + 6], b"070701", "magic at {at}");
        let namesize = field(at, 11) as usize;
        let filesize = field(at, 6) as usize;
        // Big files' names are padded with NULs to align their data.
        let raw = &bytes[at + 110..at + 110 + namesize - 1];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let name = std::str::from_utf8(&raw[..end]).unwrap();
        if name == "TRAILER!!!" {
            return headers;
        }
        headers.push(Header {
            name: name.to_string(),
            mode: field(at, 1),
            mtime: field(at, 5),
        });
        at = (at + 110 + namesize).next_multiple_of(4);
        at = (at + filesize).next_multiple_of(4);
    }
}

/// The names `mkinitrd --list` prints for `image`, checked line by line.
fn list_names(image: &Path) -> Vec<String> {
    let output = mkinitrd(&["--list"]).arg(image).output().unwrap();
    assert_success(&output);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            // mode, size (or "major, minor"), date, time, path [-> target]
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path_at = if line.starts_with('c') || line.starts_with('b') {
                5
            } else {
                4
            };
            fields[path_at].to_string()
        })
        .collect()
}

#[test]
fn list_shows_what_was_packed() {
    let fx = Fixture::new("list");
    fx.pack("init.cpio", &[]);
    assert_eq!(list_names(&fx.out("init.cpio")), DEFAULT_NAMES);

    let output = mkinitrd(&["--list"])
        .arg(fx.out("init.cpio"))
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "drwxr-xr-x         0 1970-01-01 00:00 dev");
    assert_eq!(
        lines[1],
        "crw-------      5, 1 1970-01-01 00:00 dev/console"
    );
    assert_eq!(lines[2], "-rwxr-xr-x      4096 1970-01-01 00:00 init");
    assert_eq!(lines[7], "drwxrwxrwt         0 1970-01-01 00:00 tmp");
    assert!(lines[11].starts_with("-rw-r--r-- "), "{}", lines[11]);
}

#[test]
fn list_reads_stdin() {
    let fx = Fixture::new("list-stdin");
    let bytes = fx.pack("init.cpio", &[]);
    let mut child = mkinitrd(&["--list", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().lines().count(),
        16
    );
}

#[test]
fn gnu_cpio_lists_every_name_in_order() {
    let fx = Fixture::new("gnu-cpio");
    fx.pack("init.cpio", &[]);
    let output = match Command::new("cpio")
        .arg("-it")
        .stdin(fs::File::open(fx.out("init.cpio")).unwrap())
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            tests::require(false, &format!("GNU cpio ({e})"));
            return;
        }
    };
    assert_success(&output);
    let names: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(names, DEFAULT_NAMES);
}

#[test]
fn stdout_gets_the_same_bytes_as_a_file() {
    let fx = Fixture::new("stdout");
    let file = fx.pack("init.cpio", &[]);
    let output = fx.command(&["-o", "-"]).output().unwrap();
    assert_success(&output);
    assert_eq!(output.stdout, file);
    assert_eq!(file.len() % 512, 0);
}

#[test]
fn two_runs_give_identical_bytes() {
    let fx = Fixture::new("repro");
    let first = fx.pack("a.cpio", &["-m", "loop_extra"]);
    let second = fx.pack("b.cpio", &["-m", "loop_extra"]);
    assert_eq!(first, second);
    let headers = walk_headers(&first);
    assert!(headers.iter().all(|h| h.mtime == 0));
    let mode = fs::metadata(fx.out("a.cpio")).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o644
    );
}

#[test]
fn module_option_adds_to_the_defaults() {
    let fx = Fixture::new("modules");
    // ext4 is built in: nothing to pack; loop-extra needs fuse, already in.
    let bytes = fx.pack("init.cpio", &["-m", "ext4", "--module", "loop-extra"]);
    let names: Vec<String> = walk_headers(&bytes).into_iter().map(|h| h.name).collect();
    let mut expected: Vec<String> = DEFAULT_NAMES.iter().map(|s| s.to_string()).collect();
    expected.push("usr/lib/modules/005-loop-extra.ko".to_string());
    assert_eq!(names, expected);
}

#[test]
fn missing_modules_fail_in_one_line_and_write_nothing() {
    let fx = Fixture::new("missing");
    let out = fx.out("init.cpio");
    let output = fx
        .command(&["-m", "nope", "-m", "fuse", "-m", "also-nope", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr_of(&output),
        format!(
            "mkinitrd: cannot find modules nope, also-nope in {} (not in modules.dep or \
             modules.builtin; check the names with modinfo)\n",
            fx.moddir.display()
        )
    );
    assert!(output.stdout.is_empty());
    assert!(!out.exists());

    // An existing image is left as it was, and no temporary file remains.
    fs::write(&out, b"the good image").unwrap();
    let output = fx
        .command(&["-m", "nope", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(fs::read(&out).unwrap(), b"the good image");
    let leftovers: Vec<_> = fs::read_dir(fx.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn source_date_epoch_sets_every_mtime() {
    let fx = Fixture::new("epoch");
    let out = fx.out("init.cpio");
    let output = fx
        .command(&["-o"])
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert_success(&output);
    let headers = walk_headers(&fs::read(&out).unwrap());
    assert_eq!(headers.len(), DEFAULT_NAMES.len());
    assert!(
        headers.iter().all(|h| h.mtime == 1_700_000_000),
        "{headers:?}"
    );
    let listing = mkinitrd(&["--list"]).arg(&out).output().unwrap();
    let text = String::from_utf8(listing.stdout).unwrap();
    assert!(
        text.lines().all(|l| l.contains(" 2023-11-14 22:13 ")),
        "{text}"
    );
}

#[test]
fn bad_source_date_epoch_is_an_error() {
    let fx = Fixture::new("bad-epoch");
    let output = fx
        .command(&["-o", "-"])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        stderr_of(&output),
        "mkinitrd: cannot use SOURCE_DATE_EPOCH=yesterday: not a whole number of seconds \
         from 0 to 4294967295 (newc mtimes are 32 bits)\n"
    );
}

#[test]
fn modes_of_the_base_layout() {
    let fx = Fixture::new("modes");
    let bytes = fx.pack("init.cpio", &[]);
    let modes: Vec<(String, u32)> = walk_headers(&bytes)
        .into_iter()
        .map(|h| (h.name, h.mode))
        .take(8)
        .collect();
    let expected = [
        ("dev", 0o040755),
        ("dev/console", 0o020600),
        ("init", 0o100755),
        ("proc", 0o040755),
        ("run", 0o040755),
        ("sys", 0o040755),
        ("sysroot", 0o040755),
        ("tmp", 0o041777),
    ];
    let expected: Vec<(String, u32)> = expected.iter().map(|(n, m)| (n.to_string(), *m)).collect();
    assert_eq!(modes, expected);
}

#[test]
fn unknown_kernel_version_names_where_it_looked() {
    let output = mkinitrd(&["--kver", "0.0-none", "--init", "/nonexistent", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr_of(&output),
        "mkinitrd: cannot find the module tree of kernel 0.0-none (looked in \
         /usr/lib/modules/0.0-none and /lib/modules/0.0-none; is the kernel's module tree \
         installed? pass --moddir)\n"
    );
}

#[test]
fn missing_init_is_named() {
    let fx = Fixture::new("no-init");
    let out = fx.out("init.cpio");
    let output = mkinitrd(&["--moddir"])
        .arg(&fx.moddir)
        .args(["--init", "/nonexistent/init", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr_of(&output),
        "mkinitrd: cannot stat /nonexistent/init: No such file or directory\n"
    );
    assert!(!out.exists());
}

#[test]
fn usage_errors_exit_2_with_a_pointer_to_help() {
    for args in [
        &[][..],
        &["--bogus"][..],
        &["-o"][..],
        &["-o", "x", "--list", "y"][..],
    ] {
        let output = mkinitrd(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = stderr_of(&output);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("mkinitrd: "), "{stderr}");
        assert!(stderr.ends_with("(see mkinitrd --help)\n"), "{stderr}");
    }
}

#[test]
fn help_lists_every_option_and_exit_code() {
    let output = mkinitrd(&["--help"]).output().unwrap();
    assert_success(&output);
    let help = String::from_utf8(output.stdout).unwrap();
    for option in [
        "-o, --output",
        "--kver",
        "--moddir",
        "--init",
        "-m, --module",
        "--list",
        "-h, --help",
        "-V, --version",
        "SOURCE_DATE_EPOCH",
        "0  success",
        "1  error",
        "2  usage error",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
    }
    let version = mkinitrd(&["-V"]).output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap(),
        format!("mkinitrd {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn listing_another_cpio_format_gives_a_hint() {
    let fx = Fixture::new("odc");
    fx.dir.write("hello", b"hi\n");
    let odc = fx.out("odc.cpio");
    let made = Command::new("cpio")
        .args(["-o", "-H", "odc", "-O"])
        .arg(&odc)
        .current_dir(fx.dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(b"hello\n")?;
            child.wait()
        });
    if !tests::require(matches!(made, Ok(status) if status.success()), "GNU cpio") {
        return;
    }
    let output = mkinitrd(&["--list"]).arg(&odc).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr_of(&output),
        "mkinitrd: cannot read the archive at byte 0: bad magic \"070707\" (this is an odc \
         (old portable) cpio archive, not newc; repack it with cpio -H newc)\n"
    );
}

#[test]
fn listing_a_truncated_image_names_the_offset() {
    let fx = Fixture::new("truncated");
    let bytes = fx.pack("init.cpio", &[]);
    // init's data starts at 4096 (aligned); cut inside it.
    let cut = fx.dir.write("cut.cpio", &bytes[..5000]);
    let output = mkinitrd(&["--list"]).arg(&cut).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr_of(&output),
        "mkinitrd: cannot read the archive at byte 5000: the input ends inside the data of init\n"
    );
    // The entries before the cut are still listed.
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 3);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    // An init bigger than a pipe's buffer, so the write must hit EPIPE.
    let fx = Fixture::with_init_size("epipe", 4 << 20);
    let mut child = fx
        .command(&["-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    // The fixture's modules are not ELF, so only their firmware warnings.
    let stderr = stderr_of(&output);
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with("mkinitrd: warning: cannot read the .modinfo")),
        "{stderr}"
    );
}

/// Makes a device node (as root) or FIFO at `path`, in the test's own
/// directory rather than the machine's /dev.
fn mknod(path: &Path, kind: rustix::fs::FileType, major: u32, minor: u32) {
    let dev = rustix::fs::makedev(major, minor);
    let mode = rustix::fs::Mode::from_raw_mode(0o666);
    rustix::fs::mknodat(rustix::fs::CWD, path, kind, mode, dev).unwrap();
}

/// The names in `dir`, sorted.
fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A thread reading the FIFO at `fifo` to its end, and a descriptor that
/// keeps that end away until dropped: the reads do not wait for a writer
/// that may never come, so a test fails rather than hangs when mkinitrd
/// does not write to the FIFO.
fn read_fifo(fifo: &Path) -> (std::thread::JoinHandle<Vec<u8>>, fs::File) {
    use std::io::Read;
    // O_RDWR on a FIFO opens at once on Linux (fifo(7)), as a writer.
    let keep_open = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo)
        .unwrap();
    // Opened here, at once since there is a writer, not on the thread: a
    // thread that opens it late, after a small image went into the pipe's
    // buffer and every writer closed, waits for a writer forever.
    let mut read_end = fs::File::open(fifo).unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        read_end.read_to_end(&mut bytes).unwrap();
        bytes
    });
    (reader, keep_open)
}

fn file_type(path: &Path) -> fs::FileType {
    fs::symlink_metadata(path).unwrap().file_type()
}

#[test]
fn issue_12_device_nodes_are_written_through() {
    use std::os::unix::fs::FileTypeExt;
    let fx = Fixture::new("devices");
    let out = TempDir::new("devices-out");
    // null (1:3) and full (1:7), Documentation/admin-guide/devices.txt.
    let null = out.path().join("null");
    mknod(&null, rustix::fs::FileType::CharacterDevice, 1, 3);
    let full = out.path().join("full");
    mknod(&full, rustix::fs::FileType::CharacterDevice, 1, 7);

    let output = fx.command(&["-o"]).arg(&null).output().unwrap();
    assert_success(&output);
    assert!(file_type(&null).is_char_device());

    let output = fx.command(&["-o"]).arg(&full).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        errors_of(&output),
        format!(
            "mkinitrd: cannot write the image to {}: No space left on device\n",
            full.display()
        )
    );
    assert!(file_type(&full).is_char_device());
    assert_eq!(dir_names(out.path()), ["full", "null"]);
}

#[test]
fn issue_12_a_fifo_gets_the_image() {
    use std::os::unix::fs::FileTypeExt;
    let fx = Fixture::new("fifo");
    let image = fx.pack("init.cpio", &[]);
    let out = TempDir::new("fifo-out");
    let fifo = out.path().join("pipe");
    mknod(&fifo, rustix::fs::FileType::Fifo, 0, 0);
    let (reader, keep_open) = read_fifo(&fifo);
    let output = fx.command(&["-o"]).arg(&fifo).output().unwrap();
    assert_success(&output);
    drop(keep_open);
    let read = reader.join().unwrap();
    assert!(read == image, "{} bytes through the FIFO", read.len());
    assert!(file_type(&fifo).is_fifo());
    assert_eq!(dir_names(out.path()), ["pipe"]);
}

#[test]
fn issue_12_a_link_to_the_open_stdout_writes_to_it() {
    let fx = Fixture::new("procfd");
    let image = fx.pack("init.cpio", &[]);
    let out = TempDir::new("procfd-out");
    // What /dev/stdout is, made here rather than using the machine's.
    let link = out.path().join("stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    let output = fx.command(&["-o"]).arg(&link).output().unwrap();
    assert_success(&output);
    assert!(output.stdout == image, "{} bytes", output.stdout.len());
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("/proc/self/fd/1"));
    assert_eq!(dir_names(out.path()), ["stdout"]);
}

#[test]
fn issue_12_a_symlink_keeps_and_its_file_gets_the_image() {
    let fx = Fixture::new("symlink");
    let image = fx.pack("init.cpio", &[]);
    let out = TempDir::new("symlink-out");
    let target = out.write("images/current.cpio", b"old image");
    let link = out.path().join("init.cpio");
    std::os::unix::fs::symlink("images/current.cpio", &link).unwrap();
    let output = fx.command(&["-o"]).arg(&link).output().unwrap();
    assert_success(&output);
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("images/current.cpio")
    );
    assert!(fs::read(&target).unwrap() == image);
    assert_eq!(dir_names(out.path()), ["images", "init.cpio"]);
    assert_eq!(dir_names(&out.path().join("images")), ["current.cpio"]);
}

#[test]
fn issue_12_a_directory_is_one_error_and_stays_as_it_was() {
    let fx = Fixture::new("isdir");
    let out = TempDir::new("isdir-out");
    let victim = out.path().join("victim");
    out.write("victim/kept", b"the user's file");
    let shown = victim.display().to_string();
    for given in [shown.clone(), format!("{shown}/")] {
        let output = fx.command(&["-o", &given]).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "-o {given}");
        assert_eq!(
            stderr_of(&output),
            format!(
                "mkinitrd: cannot write the image to {given}: it is a directory \
                 (-o takes the image's file name, such as {shown}/init.cpio)\n"
            )
        );
        assert!(output.stdout.is_empty());
        // No hidden directory or temporary file beside it, nothing inside.
        assert_eq!(dir_names(out.path()), ["victim"], "-o {given}");
        assert_eq!(dir_names(&victim), ["kept"], "-o {given}");
        assert_eq!(fs::read(victim.join("kept")).unwrap(), b"the user's file");
    }
}

/// How long a step of a run held mid-write may take before the test
/// gives up on it.
const STEP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Size of the big file packed before mkinitrd is held: a large image.
const BIG_FILE: u64 = 128 << 20;

/// Replaces a good image with one holding a big file, stops mkinitrd in
/// the middle of writing it, sends `signal`, and returns the output
/// directory (holding `init.cpio`, which must still be the good image)
/// with mkinitrd's exit status.
///
/// mkinitrd is held by an event, not a sleep: the entry after the big file
/// is a symlink to a small file while mkinitrd plans (it must be a regular
/// file then), switched to a FIFO once inotify reports that mkinitrd
/// opened the big file to pack it; opening that FIFO for writing succeeds
/// once mkinitrd opens it to read, after writing the big file, and it then
/// waits for data that never comes.
fn kill_mid_write(name: &str, signal: i32) -> (TempDir, std::process::ExitStatus) {
    use rustix::fs::inotify;
    let fx = Fixture::new(name);
    let input = TempDir::new(&format!("{name}-in"));
    let out = TempDir::new(&format!("{name}-out"));
    let image = out.write("init.cpio", b"the good image");
    let big = input.path().join("big");
    fs::File::create(&big).unwrap().set_len(BIG_FILE).unwrap();
    let small = input.write("small", &[1; 4096]);
    let fifo = input.path().join("fifo");
    mknod(&fifo, rustix::fs::FileType::Fifo, 0, 0);
    let hold = input.path().join("hold");
    std::os::unix::fs::symlink(&small, &hold).unwrap();
    let watch =
        inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap();
    inotify::add_watch(&watch, &big, inotify::WatchFlags::OPEN).unwrap();

    let mut child = Reaped(
        fx.command(&[
            "--file",
            &format!("{}:/a/big", big.display()),
            "--file",
            &format!("{}:/z/hold", hold.display()),
            "-o",
        ])
        .arg(&image)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let child = &mut child.0;
    // 1. mkinitrd opens the big file: planning is over, writing begun.
    let mut buf = [std::mem::MaybeUninit::uninit(); 1024];
    let mut events = inotify::Reader::new(&watch, &mut buf);
    wait_until(child, "the open of the big file", || events.next().is_ok());
    let switch = input.path().join("hold.new");
    std::os::unix::fs::symlink(&fifo, &switch).unwrap();
    fs::rename(&switch, &hold).unwrap();
    // 2. mkinitrd opens the FIFO: the big file is in the image. Opening
    // without blocking fails (ENXIO) until then.
    let mut writer = None;
    wait_until(child, "the open of the FIFO", || {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
        writer = rustix::fs::open(&fifo, flags, Mode::empty()).ok();
        writer.is_some()
    });
    // 3. Held mid-write, the image's file open and large: the signal.
    let written = written_by(child.id(), out.path());
    assert!(written > BIG_FILE / 2, "{written} bytes written so far");
    if signal == SIGKILL {
        child.kill().unwrap();
    } else {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let status = child.wait().unwrap();
    drop(writer);
    (out, status)
}

/// The size of the file in `dir` that process `pid` has open, as
/// /proc/PID/fd shows it: a temporary file's name, or `DIR/#INODE
/// (deleted)` for an unnamed one.
fn written_by(pid: u32, dir: &Path) -> u64 {
    let fds = Path::new("/proc").join(pid.to_string()).join("fd");
    for fd in fs::read_dir(&fds).unwrap() {
        let fd = fd.unwrap().path();
        let Ok(target) = fs::read_link(&fd) else {
            continue;
        };
        // Not the directory itself, which mkinitrd holds open too.
        if target.starts_with(dir) && target != dir {
            return fs::metadata(&fd).unwrap().len();
        }
    }
    panic!("mkinitrd has no file open in {}", dir.display());
}

/// A child process killed and waited for when dropped, so that a failed
/// test leaves no mkinitrd blocked on its FIFO.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // Both fail harmlessly once the test has waited for it.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `done`, failing if `child` ends first or it takes longer
/// than [`STEP_DEADLINE`]; `done` is asked every millisecond.
fn wait_until(child: &mut std::process::Child, what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("mkinitrd ended ({status}) before {what}");
        }
        assert!(start.elapsed() < STEP_DEADLINE, "no {what} in time");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Checks what `kill_mid_write` left: the good image, nothing else.
fn assert_nothing_left(out: &TempDir, status: std::process::ExitStatus, signal: i32) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(signal), "{status}");
    assert_eq!(
        dir_names(out.path()),
        ["init.cpio"],
        "after signal {signal}"
    );
    assert_eq!(
        fs::read(out.path().join("init.cpio")).unwrap(),
        b"the good image"
    );
}

#[test]
fn issue_12_sigkill_mid_write_leaves_no_temporary_file() {
    let (out, status) = kill_mid_write("sigkill", SIGKILL);
    assert_nothing_left(&out, status, SIGKILL);
}

#[test]
fn issue_12_sigterm_mid_write_leaves_no_temporary_file() {
    let (out, status) = kill_mid_write("sigterm", SIGTERM);
    assert_nothing_left(&out, status, SIGTERM);
}

#[test]
fn issue_12_sigint_mid_write_leaves_no_temporary_file() {
    let (out, status) = kill_mid_write("sigint", SIGINT);
    assert_nothing_left(&out, status, SIGINT);
}

#[test]
fn issue_12_sighup_mid_write_leaves_no_temporary_file() {
    let (out, status) = kill_mid_write("sighup", SIGHUP);
    assert_nothing_left(&out, status, SIGHUP);
}

/// `--nod`, `--net` and `--manifest -` through the command line: the node,
/// the rapido-rsc entry and the manifest's directives are in the image.
#[test]
fn nod_net_and_a_manifest_on_stdin_reach_the_image() {
    let fx = Fixture::new("nod-net-manifest");
    let out = fx.out("image.cpio");
    let mut child = fx
        .command(&[
            "--nod",
            "/dev/zero:c:1:5:0666",
            "--net",
            "--manifest",
            "-",
            "-o",
        ])
        .arg(&out)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# from stdin\ndir /srv/data 0700\nsymlink /srv/link data\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let listing = mkinitrd(&["--list"]).arg(&out).output().unwrap();
    let text = String::from_utf8(listing.stdout).unwrap();
    for line in [
        "crw-rw-rw-      1, 5 1970-01-01 00:00 dev/zero",
        "drwxr-xr-x         0 1970-01-01 00:00 rapido-rsc/net",
        "drwx------         0 1970-01-01 00:00 srv/data",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.ends_with("srv/link -> data") && l.starts_with("lrwxrwxrwx")),
        "{text}"
    );
}

/// `--kver` finds the module tree of an installed kernel by its version
/// (here Debian's cloud kernel, which the VM tests boot).
#[test]
fn kver_finds_an_installed_kernels_modules() {
    let release = tests::release(&tests::kernel());
    if !tests::require(
        Path::new("/lib/modules").join(&release).is_dir(),
        "the cloud kernel's module tree (linux-image-cloud-amd64)",
    ) {
        return;
    }
    let fx = Fixture::new("kver");
    let out = fx.out("kver.cpio");
    let output = mkinitrd(&["--kver", &release, "--init"])
        .arg(&fx.init)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&output);
    let names = list_names(&out);
    for module in tests::virtiofs_modules() {
        assert!(
            names.iter().any(|n| n.ends_with(&format!("-{module}.ko"))),
            "{module} should be packed: {names:?}"
        );
    }
}

/// Issue 15: a symlink that points at nothing in the image was packed
/// without a word (`--bin busybox --symlink /bin/sh:busybox` on a
/// usr-merged host, where busybox lands in usr/bin).
#[test]
fn dangling_symlinks_are_warned_about() {
    let fx = Fixture::new("dangling");
    let out = fx.out("init.cpio");
    let output = fx
        .command(&[
            "--symlink",
            "/bin/sh:busybox",
            "--symlink",
            "/etc/mtab:/proc/mounts",
        ])
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&output);
    let stderr = stderr_of(&output);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("symlink"))
        .collect();
    assert_eq!(
        warnings,
        [
            "mkinitrd: warning: symlink /bin/sh -> busybox points at nothing in the image \
          (/bin/busybox is not in it)"
        ]
    );
    assert!(list_names(&out).contains(&"bin/sh".to_string()));
}

/// Issue 15: one precedence. A later directive replaces what an earlier one
/// put at a path, whatever their kinds (a program and a file here); what
/// the image needs to boot is never replaced, and the error names both.
#[test]
fn later_directives_win_and_boot_entries_are_kept() {
    let fixture = Fixture::new("precedence");
    let one = fixture.dir.write("one", b"one\n");
    let one = one.to_str().unwrap();
    let sh = Path::new("/bin/sh").canonicalize().unwrap();
    let sh = sh.to_str().unwrap();
    let file_at_sh = format!("{one}:{sh}");
    let data_of = |args: &[&str]| {
        let bytes = fixture.pack("p.cpio", args);
        let entries = mkinitrd::cpio::read_archive(&bytes).unwrap();
        let at = sh.trim_start_matches('/');
        let entry = entries.iter().find(|e| e.name == at).unwrap();
        entry.size
    };
    // The program, then the file: the file.
    assert_eq!(data_of(&["--bin", sh, "--file", &file_at_sh]), 4);
    // The file, then the program: the program.
    assert!(data_of(&["--file", &file_at_sh, "--bin", sh]) > 4);

    for (dst, first) in [
        ("/init", "mkinitrd's init and its layout"),
        ("/usr/lib/modules/004-virtiofs.ko", "the kernel modules"),
    ] {
        let spec = format!("{one}:{dst}");
        let output = fixture
            .command(&["--file", &spec, "-o"])
            .arg(fixture.out("clash.cpio"))
            .output()
            .unwrap();
        let errors = errors_of(&output);
        assert_eq!(output.status.code(), Some(1), "{errors}");
        assert!(
            errors.starts_with(&format!("mkinitrd: cannot add {dst} for --file {spec}: "))
                || errors.starts_with(&format!("mkinitrd: cannot add {dst} for {first}: ")),
            "{errors}"
        );
        assert!(
            errors.contains(first) && errors.contains(&format!("--file {spec}")),
            "the error should name both: {errors}"
        );
        assert!(!fixture.out("clash.cpio").exists());
    }
}

/// Issue 15: the host's `bin -> usr/bin` link yields to the user's own
/// /bin directory, and the program's paths still resolve through it; in
/// the other order the error names both directives.
#[test]
fn host_links_yield_to_the_users_directories() {
    let fixture = Fixture::new("yield");
    let script = fixture.dir.write("script.sh", b"#!/bin/sh\necho hi\n");
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = script.to_str().unwrap();
    let usr_merged = fs::symlink_metadata("/bin").unwrap().is_symlink();
    let names = |args: &[&str]| {
        let out = fixture.out("y.cpio");
        let output = fixture.command(args).arg("-o").arg(&out).output().unwrap();
        (output, list_names(&out))
    };
    let (output, listed) = names(&["--symlink", "/bin/sh:dash", "--bin", script]);
    assert_success(&output);
    assert!(listed.iter().any(|n| n == "bin/sh"), "{listed:?}");
    if usr_merged {
        // No bin -> usr/bin link: the user's bin/ stayed a directory, and
        // the host's dash, which /bin/sh leads to, is linked into it.
        assert!(listed.iter().any(|n| n == "bin/dash"), "{listed:?}");
        let (output, _) = names(&["--bin", script, "--symlink", "/bin/sh:dash"]);
        let errors = errors_of(&output);
        assert_eq!(output.status.code(), Some(1), "{errors}");
        assert!(
            errors.contains(&format!("(--bin {script}; then --symlink /bin/sh:dash)")),
            "{errors}"
        );
    }
}
