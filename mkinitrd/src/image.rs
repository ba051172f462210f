//! The plan of an initramfs as data, and writing it out as one newc archive.
//!
//! An [`Image`] maps archive paths to [`Entry`] values: nothing touches the
//! disk until [`Image::write_to`], which streams host files straight into the
//! archive (there is never a staging directory). Paths are kept sorted, which
//! puts every directory before its contents and makes the output depend only
//! on what was added, not in which order: the same inputs give the same bytes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cpio::{self, PATH_MAX, PERMISSION_BITS, TRAILER};
use crate::decompress::KernelDecompress;
use crate::error::Error;
use crate::firmware::{FIRMWARE_MODE, Firmware, IMAGE_FIRMWARE_DIR};
use crate::init_binary::{BUILTIN_INIT, InitBinary};
use crate::kmod::Module;

pub use crate::cpio::{NodKind, PathProblem};

/// Mode of directories, including the ones added as parents.
pub const DIR_MODE: u32 = 0o755;
/// Mode of /init: the kernel executes it (init/main.c, ramdisk_execute_command).
pub const INIT_MODE: u32 = 0o755;
/// Mode of /tmp: world-writable with the sticky bit.
pub const TMP_MODE: u32 = 0o1777;
/// /dev/console is char 5:1 (Documentation/admin-guide/devices.txt).
pub const CONSOLE_MAJOR: u32 = 5;
/// See [`CONSOLE_MAJOR`].
pub const CONSOLE_MINOR: u32 = 1;
/// Mode of /dev/console: only root uses it before devtmpfs is mounted.
pub const CONSOLE_MODE: u32 = 0o600;
/// Directory the PID 1 init loads modules from, in byte order of file name.
pub const MODULES_DIR: &str = "usr/lib/modules";
/// Mode of packed module files: read by `finit_module`, never executed.
pub const MODULE_MODE: u32 = 0o644;
/// Narrowest load position prefix of a module file (`000-`).
pub const MODULE_POSITION_WIDTH: usize = 3;
/// Prefix of [`Image::add_late_modules`] names: `z` sorts after digits.
pub const LATE_MODULE_PREFIX: &str = "zzz-";
/// Environment variable giving the mtime of every entry
/// (<https://reproducible-builds.org/specs/source-date-epoch/>).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// One planned entry. Modes are permission bits; the file type is implied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file whose data is read from a host file when writing.
    File {
        /// The host file.
        source: PathBuf,
        /// Permission bits.
        mode: u32,
        /// Size when it was added; the same number of bytes is packed.
        size: u64,
    },
    /// A regular file whose data is held in memory.
    Bytes {
        /// The content.
        data: Vec<u8>,
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points, stored as is.
        target: String,
    },
    /// A device node.
    Nod {
        /// Character or block.
        kind: NodKind,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
        /// Permission bits.
        mode: u32,
    },
}

impl Entry {
    /// "a directory", "a file", ... for error messages.
    fn kind_name(&self) -> &'static str {
        match self {
            Entry::Dir { .. } => "a directory",
            Entry::File { .. } | Entry::Bytes { .. } => "a file",
            Entry::Symlink { .. } => "a symlink",
            Entry::Nod { .. } => "a device node",
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self, Entry::Dir { .. })
    }
}

/// The plan of an archive: entries by normalised path, one mtime for all.
///
/// Adding an entry adds its missing parent directories (mode [`DIR_MODE`]).
/// Adding a path again replaces the entry, except that a directory and a
/// non-directory never replace each other ([`Error::PathConflict`]).
///
/// # Example
/// ```
/// use mkinitrd::image::Image;
/// let mut image = Image::new(0);
/// image.add_bytes("/etc/hostname", b"vm\n".to_vec(), 0o644)?;
/// let paths: Vec<&str> = image.entries().map(|(path, _)| path).collect();
/// assert_eq!(paths, ["etc", "etc/hostname"]);
/// let mut bytes = Vec::new();
/// image.write_to(&mut bytes)?;
/// # Ok::<(), mkinitrd::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub(crate) mtime: u32,
    pub(crate) entries: BTreeMap<String, Entry>,
    /// Who asked for each entry added while a source was set.
    sources: BTreeMap<String, Source>,
    /// The source of what is added now ([`Image::set_source`]).
    source: Option<Source>,
}

/// Who asked for an entry: a directive (`--file one:/usr/bin/busybox`),
/// or mkinitrd itself for what the image needs to boot (init and its
/// layout, a module, firmware, a resource file).
///
/// The precedence (SPEC §4, README): entries a user directive adds replace
/// those of an earlier directive at the same path, whatever their kinds;
/// a *pinned* entry (what the image needs to boot) is never replaced and
/// never replaces another source's entry: that is an error naming both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// How the error line names it.
    pub what: String,
    /// What the image needs to boot.
    pub pinned: bool,
}

impl Source {
    /// A user's directive, described as given.
    pub fn directive(what: impl Into<String>) -> Source {
        Source {
            what: what.into(),
            pinned: false,
        }
    }

    /// Something mkinitrd adds for the image to boot.
    pub fn pinned(what: impl Into<String>) -> Source {
        Source {
            what: what.into(),
            pinned: true,
        }
    }
}

impl Image {
    /// An empty plan whose entries will all have `mtime`.
    pub fn new(mtime: u32) -> Image {
        Image {
            mtime,
            ..Image::default()
        }
    }

    /// Makes `source` the source of what is added from now on (`None`:
    /// none, no precedence checks).
    pub fn set_source(&mut self, source: Option<Source>) {
        self.source = source;
    }

    /// Who asked for the entry at `path`, when known.
    pub fn source_of(&self, path: &str) -> Option<&Source> {
        self.sources.get(path)
    }

    /// The mtime of every entry.
    pub fn mtime(&self) -> u32 {
        self.mtime
    }

    /// Adds a directory, or sets the mode of one already planned.
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<(), Error> {
        self.insert(
            path,
            Entry::Dir {
                mode: mode & PERMISSION_BITS,
            },
        )
    }

    /// Adds a host file, stat'ed once now and read when writing.
    ///
    /// `mode` `None` takes the host file's permission bits. Symlinks are
    /// followed. Errors: [`Error::StatFile`], [`Error::NotRegularFile`],
    /// [`Error::TooLarge`] for files of 4 GiB or more.
    pub fn add_file(&mut self, path: &str, source: &Path, mode: Option<u32>) -> Result<(), Error> {
        let metadata = fs::metadata(source).map_err(|e| Error::StatFile {
            path: source.to_path_buf(),
            source: e,
        })?;
        if !metadata.is_file() {
            return Err(Error::NotRegularFile {
                path: source.to_path_buf(),
            });
        }
        let size = metadata.len();
        if u32::try_from(size).is_err() {
            return Err(Error::TooLarge {
                what: source.display().to_string(),
                size,
            });
        }
        let mode = mode.unwrap_or_else(|| metadata.permissions().mode()) & PERMISSION_BITS;
        self.insert(
            path,
            Entry::File {
                source: source.to_path_buf(),
                mode,
                size,
            },
        )
    }

    /// Adds a file whose content is `data`.
    pub fn add_bytes(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<(), Error> {
        if u32::try_from(data.len()).is_err() {
            return Err(Error::TooLarge {
                what: path.to_string(),
                size: data.len() as u64,
            });
        }
        let mode = mode & PERMISSION_BITS;
        self.insert(path, Entry::Bytes { data, mode })
    }

    /// Adds a symbolic link to `target`, which is stored as given.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), Error> {
        cpio::check_symlink_target(path, target)?;
        self.insert(
            path,
            Entry::Symlink {
                target: target.to_string(),
            },
        )
    }

    /// Adds a device node.
    pub fn add_nod(
        &mut self,
        path: &str,
        kind: NodKind,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> Result<(), Error> {
        let mode = mode & PERMISSION_BITS;
        self.insert(
            path,
            Entry::Nod {
                kind,
                major,
                minor,
                mode,
            },
        )
    }

    /// Adds `init` as /init and the base layout it expects: /dev with
    /// /dev/console, /proc, /sys, /run, /tmp and /sysroot.
    ///
    /// Errors: those of [`Image::add_file`] for an [`InitBinary::File`].
    pub fn add_init(&mut self, init: &InitBinary) -> Result<(), Error> {
        // The kernel executes /init of the initramfs as PID 1.
        match init {
            InitBinary::File(path) => self.add_file("init", path, Some(INIT_MODE))?,
            InitBinary::Builtin => self.add_bytes("init", BUILTIN_INIT.to_vec(), INIT_MODE)?,
        }
        self.add_dir("dev", DIR_MODE)?;
        // The kernel opens /dev/console for init's stdio before init can
        // mount devtmpfs (init/main.c, console_on_rootfs), so it must be
        // in the archive.
        self.add_nod(
            "dev/console",
            NodKind::Char,
            CONSOLE_MAJOR,
            CONSOLE_MINOR,
            CONSOLE_MODE,
        )?;
        // Mount points of the API filesystems and of the real root.
        for dir in ["proc", "sys", "run", "sysroot"] {
            self.add_dir(dir, DIR_MODE)?;
        }
        self.add_dir("tmp", TMP_MODE)
    }

    /// Adds `modules` as `usr/lib/modules/NNN-<stem>.ko`, NNN the position
    /// in `modules` from 000, unpacking compressed ones (which every kernel
    /// can load); [`Image::add_modules_for`] keeps those the target kernel
    /// unpacks itself.
    ///
    /// init loads the files in byte order of name, so give them in load
    /// order ([`crate::kmod::ModuleTree::resolve`]). All prefixes have the
    /// same width, wider than 3 digits only past 1000 modules, so byte order
    /// is load order. Call it once per image. Errors: those of
    /// [`crate::kmod::decompress_file`] (before anything is added), and of
    /// [`Image::add_file`].
    pub fn add_modules(&mut self, modules: &[Module]) -> Result<(), Error> {
        self.add_modules_named(modules, "", KernelDecompress::NONE)
    }

    /// [`Image::add_modules`] for a kernel that decompresses `kernel`'s
    /// format itself ([`crate::kmod::ModuleTree::kernel_decompresses`]):
    /// modules in that format are packed as they are, keeping their suffix
    /// (`usr/lib/modules/003-virtio.ko.zst`), and init passes
    /// `MODULE_INIT_COMPRESSED_FILE` for them. Others are unpacked here.
    pub fn add_modules_for(
        &mut self,
        modules: &[Module],
        kernel: KernelDecompress,
    ) -> Result<(), Error> {
        self.add_modules_named(modules, "", kernel)
    }

    /// Adds `modules` as `usr/lib/modules/zzz-NNN-<stem>.ko`: names that
    /// sort after any [`Image::add_modules`] name, for a segment appended or
    /// prepended to another image whose own modules must load first (init
    /// reads the union of both; a module loaded twice is harmless).
    /// Compressed modules are unpacked, as by [`Image::add_modules`].
    pub fn add_late_modules(&mut self, modules: &[Module]) -> Result<(), Error> {
        self.add_modules_named(modules, LATE_MODULE_PREFIX, KernelDecompress::NONE)
    }

    /// [`Image::add_late_modules`] keeping the modules `kernel` decompresses
    /// itself, as [`Image::add_modules_for`] does.
    pub fn add_late_modules_for(
        &mut self,
        modules: &[Module],
        kernel: KernelDecompress,
    ) -> Result<(), Error> {
        self.add_modules_named(modules, LATE_MODULE_PREFIX, kernel)
    }

    /// Adds `modules` as `usr/lib/modules/<prefix>NNN-<stem>.ko[.gz|.xz|.zst]`.
    ///
    /// Unpacked modules go in as [`Entry::Bytes`]: modules are small (the
    /// largest unpacks to about 20 MiB, a typical image holds a few MiB),
    /// the archive writer needs no new kind of entry, and a damaged file
    /// fails here, while planning, before a byte of output is written.
    /// All unpacking happens before anything is added.
    fn add_modules_named(
        &mut self,
        modules: &[Module],
        prefix: &str,
        kernel: KernelDecompress,
    ) -> Result<(), Error> {
        let width = position_width(modules.len());
        let mut planned = Vec::with_capacity(modules.len());
        for (position, module) in modules.iter().enumerate() {
            let path = format!(
                "{MODULES_DIR}/{prefix}{position:0width$}-{}.ko",
                module.stem
            );
            planned.push(match module.compression {
                None => (path, None),
                Some(compression) if kernel.handles(compression) => {
                    (path + compression.suffix(), None)
                }
                Some(compression) => (
                    path,
                    Some(crate::kmod::decompress_file(&module.path, compression)?),
                ),
            });
        }
        for ((path, unpacked), module) in planned.into_iter().zip(modules) {
            match unpacked {
                Some(data) => self.add_bytes(&path, data, MODULE_MODE)?,
                None => self.add_file(&path, &module.path, Some(MODULE_MODE))?,
            }
        }
        Ok(())
    }

    /// The planned entries, sorted by path: the order they are written in.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .map(|(path, entry)| (path.as_str(), entry))
    }

    /// The entry planned at `path` (normalised, without a leading `/`).
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Normalises `path`, checks it against the plan, adds missing parents
    /// and the entry. Nothing changes when it fails.
    fn insert(&mut self, path: &str, entry: Entry) -> Result<(), Error> {
        let path = normalize_path(path)?;
        let parents: Vec<usize> = path.match_indices('/').map(|(at, _)| at).collect();
        for &at in &parents {
            self.check_kind(&path, &path[..at], true)?;
        }
        self.check_kind(&path, &path, entry.is_dir())?;
        self.check_precedence(&path, &entry)?;
        for &at in &parents {
            self.entries
                .entry(path[..at].to_string())
                .or_insert(Entry::Dir { mode: DIR_MODE });
        }
        if let Some(source) = &self.source {
            self.sources.insert(path.clone(), source.clone());
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// Refuses to put a directory where a non-directory is planned, or the
    /// reverse, naming who asked for each when known.
    fn check_kind(&self, path: &str, at: &str, want_dir: bool) -> Result<(), Error> {
        match self.entries.get(at) {
            Some(existing) if existing.is_dir() != want_dir => Err(Error::PathConflict {
                path: path.to_string(),
                existing: at.to_string(),
                existing_kind: existing.kind_name(),
                sources: self
                    .sources
                    .get(at)
                    .zip(self.source.as_ref())
                    .map(|(existing, adding)| (existing.what.clone(), adding.what.clone())),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses to replace a pinned entry, or to replace another source's
    /// entry with a pinned one ([`Source`]). Directories merge.
    fn check_precedence(&self, path: &str, entry: &Entry) -> Result<(), Error> {
        let (Some(existing), Some(adding)) = (self.sources.get(path), &self.source) else {
            return Ok(());
        };
        let both_dirs = entry.is_dir() && self.entries.get(path).is_some_and(Entry::is_dir);
        if both_dirs || existing == adding || !(existing.pinned || adding.pinned) {
            return Ok(());
        }
        Err(Error::Clash {
            path: path.to_string(),
            first: existing.what.clone(),
            second: adding.what.clone(),
        })
    }
}

/// Normalises an archive path: no leading `/`, no empty or `.` components.
///
/// Errors: [`Error::BadPath`] for `..` components, NUL bytes, empty
/// results, names the kernel would refuse as too long, and `TRAILER!!!`.
pub fn normalize_path(path: &str) -> Result<String, Error> {
    let bad = |problem| {
        Err(Error::BadPath {
            path: path.to_string(),
            problem,
        })
    };
    if path.contains('\0') {
        return bad(PathProblem::Nul);
    }
    let mut normal = String::with_capacity(path.len());
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return bad(PathProblem::DotDot),
            component => {
                if !normal.is_empty() {
                    normal.push('/');
                }
                normal.push_str(component);
            }
        }
    }
    if normal.is_empty() {
        bad(PathProblem::Empty)
    } else if normal.len() >= PATH_MAX as usize {
        bad(PathProblem::TooLong)
    } else if normal == TRAILER {
        bad(PathProblem::Trailer)
    } else {
        Ok(normal)
    }
}

/// Digits of the load position prefix for `count` modules: 3, or as many
/// as the last position needs.
fn position_width(count: usize) -> usize {
    let last = count.saturating_sub(1);
    last.to_string().len().max(MODULE_POSITION_WIDTH)
}

/// The mtime for every entry: `SOURCE_DATE_EPOCH` if set, else 0.
///
/// Errors: [`Error::BadSourceDateEpoch`] when it is set but is not a whole
/// number from 0 to 2^32 - 1 (newc mtimes are 32 bits).
pub fn source_date_epoch() -> Result<u32, Error> {
    parse_source_date_epoch(std::env::var_os(SOURCE_DATE_EPOCH).as_deref())
}

/// [`source_date_epoch`] on a given value; unset or empty means 0.
pub fn parse_source_date_epoch(value: Option<&OsStr>) -> Result<u32, Error> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let bad = || Error::BadSourceDateEpoch {
        value: value.to_string_lossy().into_owned(),
    };
    let text = value.to_str().ok_or_else(bad)?;
    // u32::from_str would also take "+5".
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

impl Image {
    /// Adds the files of `firmware` ([`crate::firmware::firmware_for`]) where
    /// `/lib/firmware` leads, mode [`FIRMWARE_MODE`].
    ///
    /// When the image has a `lib` symlink already, the files go where it
    /// points; when it has a `lib` directory, under it. When it has neither
    /// and the host's `lib` is a symlink, that symlink is added as it is
    /// first, so host files added later find the same layout. Errors:
    /// those of [`Image::add_file`] and [`Image::add_symlink`], for
    /// instance [`Error::PathConflict`] for a `lib` symlink pointing out of
    /// the image.
    pub fn add_firmware(&mut self, firmware: &Firmware) -> Result<(), Error> {
        if firmware.files.is_empty() {
            return Ok(());
        }
        let lib = match self.entries.get("lib") {
            Some(Entry::Symlink { target }) => symlinked_dir(target),
            Some(_) => None,
            None => match &firmware.lib_symlink {
                Some(target) => {
                    self.add_symlink("lib", target)?;
                    symlinked_dir(target)
                }
                None => None,
            },
        };
        let dir = match lib {
            Some(lib) => format!("{lib}/firmware"),
            None => IMAGE_FIRMWARE_DIR.to_string(),
        };
        for file in &firmware.files {
            let dest = format!("{dir}/{}", file.name);
            self.add_file(&dest, &file.source, Some(FIRMWARE_MODE))?;
        }
        Ok(())
    }
}

/// The image directory a top-level symlink's `target` names (`usr/lib`
/// for `usr/lib` or `/usr/lib`), or `None` when it leaves the image; then
/// files go under `lib/` and adding them fails with a clear conflict.
fn symlinked_dir(target: &str) -> Option<String> {
    normalize_path(target).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::{S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, read_archive};
    use crate::testutil::TempDir;

    fn paths(image: &Image) -> Vec<&str> {
        image.entries().map(|(path, _)| path).collect()
    }

    fn bytes_of(image: &Image) -> Vec<u8> {
        let mut out = Vec::new();
        image.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn paths_are_normalised() {
        for (given, normal) in [
            ("/etc/hostname", "etc/hostname"),
            ("etc//hostname/", "etc/hostname"),
            ("./etc/./hostname", "etc/hostname"),
            ("///a", "a"),
        ] {
            assert_eq!(normalize_path(given).unwrap(), normal);
        }
    }

    #[test]
    fn dot_dot_and_empty_paths_are_refused() {
        let mut image = Image::new(0);
        let err = image.add_dir("usr/../../etc", 0o755).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot add usr/../../etc to the image: the path has a \"..\" component \
             (paths stay inside the image)"
        );
        for path in ["", "/", "./", "a\0b", "TRAILER!!!", "/TRAILER!!!/"] {
            assert!(
                matches!(image.add_dir(path, 0o755), Err(Error::BadPath { .. })),
                "{path:?}"
            );
        }
        assert!(image.entries().next().is_none());
    }

    #[test]
    fn parents_are_added_and_come_first() {
        let mut image = Image::new(0);
        image.add_bytes("z/y/file", Vec::new(), 0o644).unwrap();
        image.add_bytes("a-b", Vec::new(), 0o644).unwrap();
        image.add_bytes("a/b", Vec::new(), 0o644).unwrap();
        assert_eq!(paths(&image), ["a", "a-b", "a/b", "z", "z/y", "z/y/file"]);
        assert_eq!(
            image.entries.get("z/y"),
            Some(&Entry::Dir { mode: DIR_MODE })
        );
    }

    #[test]
    fn explicit_dir_modes_win_over_implicit_parents() {
        let mut image = Image::new(0);
        image.add_dir("tmp", 0o1777).unwrap();
        image.add_bytes("tmp/x", Vec::new(), 0o600).unwrap();
        assert_eq!(image.entries.get("tmp"), Some(&Entry::Dir { mode: 0o1777 }));
        image.add_bytes("var/x", Vec::new(), 0o600).unwrap();
        image.add_dir("var", 0o700).unwrap();
        assert_eq!(image.entries.get("var"), Some(&Entry::Dir { mode: 0o700 }));
    }

    #[test]
    fn dirs_and_files_do_not_replace_each_other() {
        let mut image = Image::new(0);
        image.add_bytes("etc", b"x".to_vec(), 0o644).unwrap();
        let err = image
            .add_bytes("etc/hostname", Vec::new(), 0o644)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot add etc/hostname to the image: etc is already a file"
        );
        assert!(image.add_dir("etc", 0o755).is_err());
        image.add_symlink("bin", "usr/bin").unwrap();
        assert!(image.add_dir("bin/x", 0o755).is_err());
        assert!(image.add_symlink("bin/sh", "busybox").is_err());
        assert_eq!(paths(&image), ["bin", "etc"]);
        // A non-directory replaces a non-directory.
        image.add_symlink("etc", "/proc/self").unwrap();
        assert!(matches!(
            image.entries.get("etc"),
            Some(Entry::Symlink { .. })
        ));
    }

    #[test]
    fn base_layout_of_add_init() {
        let tmp = TempDir::new("image-init");
        let init = tmp.write("init", b"\x7fELF");
        let mut image = Image::new(7);
        image.add_init(&InitBinary::File(init)).unwrap();
        let entries = read_archive(&bytes_of(&image)).unwrap();
        let got: Vec<(&str, u32)> = entries.iter().map(|e| (e.name.as_str(), e.mode)).collect();
        assert_eq!(
            got,
            [
                ("dev", S_IFDIR | 0o755),
                ("dev/console", S_IFCHR | 0o600),
                ("init", S_IFREG | 0o755),
                ("proc", S_IFDIR | 0o755),
                ("run", S_IFDIR | 0o755),
                ("sys", S_IFDIR | 0o755),
                ("sysroot", S_IFDIR | 0o755),
                ("tmp", S_IFDIR | 0o1777),
            ]
        );
        assert_eq!((entries[1].rdev_major, entries[1].rdev_minor), (5, 1));
        assert_eq!(entries[2].size, 4);
        assert!(entries.iter().all(|e| e.mtime == 7));
    }

    #[test]
    fn the_builtin_init_is_packed_as_is() {
        let mut image = Image::new(0);
        image.add_init(&InitBinary::Builtin).unwrap();
        let (_, init) = image.entries().find(|(path, _)| *path == "init").unwrap();
        assert_eq!(
            init,
            &Entry::Bytes {
                data: BUILTIN_INIT.to_vec(),
                mode: INIT_MODE
            }
        );
    }

    #[test]
    fn add_file_takes_host_mode_and_streams_data() {
        let tmp = TempDir::new("image-file");
        let script = tmp.write("script", b"#!/bin/sh\n");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
        let mut image = Image::new(0);
        image.add_file("bin/script", &script, None).unwrap();
        image.add_file("bin/other", &script, Some(0o644)).unwrap();
        image.add_symlink("bin/link", "script").unwrap();
        let bytes = bytes_of(&image);
        let entries = read_archive(&bytes).unwrap();
        let got: Vec<(&str, u32, u32)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.mode, e.size))
            .collect();
        assert_eq!(
            got,
            [
                ("bin", S_IFDIR | 0o755, 0),
                ("bin/link", S_IFLNK | 0o777, 6),
                ("bin/other", S_IFREG | 0o644, 10),
                ("bin/script", S_IFREG | 0o750, 10),
            ]
        );
        let data_at = bytes.windows(10).position(|w| w == b"#!/bin/sh\n");
        assert!(data_at.is_some());
    }

    #[test]
    fn add_file_errors_name_the_host_path() {
        let tmp = TempDir::new("image-file-errors");
        let mut image = Image::new(0);
        let missing = tmp.path().join("missing");
        let err = image.add_file("x", &missing, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot stat {}: No such file or directory",
                missing.display()
            )
        );
        let err = image.add_file("x", tmp.path(), None).unwrap_err();
        assert!(matches!(err, Error::NotRegularFile { .. }));
        assert!(image.entries().next().is_none());
    }

    #[test]
    fn a_file_that_shrinks_before_writing_is_reported() {
        let tmp = TempDir::new("image-shrink");
        let file = tmp.write("f", b"0123456789");
        let mut image = Image::new(0);
        image.add_file("f", &file, None).unwrap();
        fs::write(&file, b"012").unwrap();
        let err = image.write_to(Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot pack {}: it got shorter while packing (it had 10 bytes)",
                file.display()
            )
        );
    }

    fn module(tmp: &TempDir, rel: &str) -> Module {
        tmp.write(rel, b"module");
        Module::from_dep_path(tmp.path(), rel).unwrap()
    }

    #[test]
    fn modules_are_numbered_in_load_order() {
        let tmp = TempDir::new("image-modules");
        let modules = [
            module(&tmp, "kernel/virtio_ring.ko"),
            module(&tmp, "kernel/virtio.ko"),
            module(&tmp, "kernel/amd-uncore.ko"),
        ];
        let mut image = Image::new(0);
        image.add_modules(&modules).unwrap();
        assert_eq!(
            paths(&image),
            [
                "usr",
                "usr/lib",
                "usr/lib/modules",
                "usr/lib/modules/000-virtio_ring.ko",
                "usr/lib/modules/001-virtio.ko",
                "usr/lib/modules/002-amd-uncore.ko",
            ]
        );
        let Some(Entry::File { mode, .. }) = image.entries.get("usr/lib/modules/001-virtio.ko")
        else {
            panic!("module is not a file");
        };
        assert_eq!(*mode, MODULE_MODE);
    }

    #[test]
    fn late_modules_sort_after_any_numbered_module() {
        let tmp = TempDir::new("image-late-modules");
        let mut image = Image::new(0);
        image.add_modules(&[module(&tmp, "kernel/zz.ko")]).unwrap();
        image
            .add_late_modules(&[module(&tmp, "kernel/aa.ko")])
            .unwrap();
        let names: Vec<&str> = paths(&image)
            .into_iter()
            .filter(|p| p.ends_with(".ko"))
            .collect();
        assert_eq!(
            names,
            ["usr/lib/modules/000-zz.ko", "usr/lib/modules/zzz-000-aa.ko"]
        );
        // Byte order (init's load order) puts the late one last even past
        // 9999 numbered modules.
        assert!("usr/lib/modules/99999-x.ko" < "usr/lib/modules/zzz-000-aa.ko");
    }

    #[test]
    fn position_width_grows_only_past_1000_modules() {
        assert_eq!(position_width(0), 3);
        assert_eq!(position_width(1000), 3);
        assert_eq!(position_width(1001), 4);
        assert_eq!(position_width(10_001), 5);
    }

    /// A compressed module file in `tmp`: `content` compressed by the host
    /// tool for the suffix of `rel`.
    fn compressed_module(tmp: &TempDir, rel: &str, content: &[u8]) -> Module {
        let compression = Module::from_dep_path(tmp.path(), rel)
            .unwrap()
            .compression
            .unwrap();
        let packed = crate::decompress::tests::compress_with(compression, content);
        tmp.write(rel, &packed);
        Module::from_dep_path(tmp.path(), rel).unwrap()
    }

    fn bytes_entry<'a>(image: &'a Image, path: &str) -> &'a [u8] {
        match image.entries.get(path) {
            Some(Entry::Bytes { data, mode }) => {
                assert_eq!(*mode, MODULE_MODE);
                data
            }
            other => panic!("{path} is {other:?}"),
        }
    }

    #[test]
    fn compressed_modules_are_unpacked_by_default() {
        let tmp = TempDir::new("image-compressed");
        let modules = [
            module(&tmp, "kernel/fuse.ko"),
            compressed_module(&tmp, "kernel/virtio.ko.gz", b"virtio module"),
            compressed_module(&tmp, "kernel/virtio_ring.ko.xz", b"ring module"),
            compressed_module(&tmp, "kernel/virtiofs.ko.zst", b"virtiofs module"),
        ];
        let mut image = Image::new(0);
        image.add_modules(&modules).unwrap();
        assert_eq!(
            paths(&image)[3..],
            [
                "usr/lib/modules/000-fuse.ko",
                "usr/lib/modules/001-virtio.ko",
                "usr/lib/modules/002-virtio_ring.ko",
                "usr/lib/modules/003-virtiofs.ko",
            ]
        );
        assert_eq!(
            bytes_entry(&image, "usr/lib/modules/001-virtio.ko"),
            b"virtio module"
        );
        assert_eq!(
            bytes_entry(&image, "usr/lib/modules/002-virtio_ring.ko"),
            b"ring module"
        );
        assert_eq!(
            bytes_entry(&image, "usr/lib/modules/003-virtiofs.ko"),
            b"virtiofs module"
        );
        // The archive holds the unpacked bytes.
        let entries = read_archive(&bytes_of(&image)).unwrap();
        let virtiofs = entries
            .iter()
            .find(|e| e.name.ends_with("virtiofs.ko"))
            .unwrap();
        assert_eq!(virtiofs.size, 15);
    }

    #[test]
    fn modules_the_kernel_unpacks_keep_their_suffix() {
        let tmp = TempDir::new("image-kernel-unpacks");
        let modules = [
            compressed_module(&tmp, "kernel/a.ko.zst", b"a"),
            compressed_module(&tmp, "kernel/b.ko.xz", b"b"),
            module(&tmp, "kernel/c.ko"),
        ];
        let mut image = Image::new(0);
        image
            .add_modules_for(
                &modules,
                KernelDecompress::only(crate::kmod::Compression::Zstd),
            )
            .unwrap();
        image
            .add_late_modules_for(
                &modules[..1],
                KernelDecompress::only(crate::kmod::Compression::Zstd),
            )
            .unwrap();
        assert_eq!(
            paths(&image)[3..],
            [
                "usr/lib/modules/000-a.ko.zst",
                "usr/lib/modules/001-b.ko",
                "usr/lib/modules/002-c.ko",
                "usr/lib/modules/zzz-000-a.ko.zst",
            ]
        );
        let Some(Entry::File { source, .. }) = image.entries.get("usr/lib/modules/000-a.ko.zst")
        else {
            panic!("a kept module is not a host file");
        };
        assert_eq!(source, &modules[0].path);
        assert_eq!(bytes_entry(&image, "usr/lib/modules/001-b.ko"), b"b");
    }

    #[test]
    fn a_damaged_module_fails_before_anything_is_added() {
        let tmp = TempDir::new("image-damaged");
        let modules = [
            module(&tmp, "kernel/fuse.ko"),
            module(&tmp, "kernel/virtiofs.ko.xz"),
        ];
        let mut image = Image::new(0);
        let err = image.add_modules(&modules).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot decompress {}: not valid xz data: no xz magic at the start (is the \
                 file damaged? reinstall the package that owns it)",
                tmp.path().join("kernel/virtiofs.ko.xz").display()
            )
        );
        assert!(image.entries().next().is_none());
    }

    #[test]
    fn same_inputs_give_the_same_bytes_in_any_order() {
        let tmp = TempDir::new("image-repro");
        let init = InitBinary::File(tmp.write("init", b"\x7fELF static"));
        let build = |order: [u8; 3]| {
            let mut image = Image::new(1_700_000_000);
            for step in order {
                match step {
                    0 => image.add_init(&init).unwrap(),
                    1 => image
                        .add_bytes("etc/hostname", b"vm".to_vec(), 0o644)
                        .unwrap(),
                    _ => image.add_symlink("bin/sh", "busybox").unwrap(),
                }
            }
            bytes_of(&image)
        };
        let first = build([0, 1, 2]);
        assert_eq!(first, build([0, 1, 2]));
        assert_eq!(first, build([2, 1, 0]));
    }

    #[test]
    fn source_date_epoch_values() {
        let parse = |v: &str| parse_source_date_epoch(Some(OsStr::new(v)));
        assert_eq!(parse_source_date_epoch(None).unwrap(), 0);
        assert_eq!(parse("").unwrap(), 0);
        assert_eq!(parse("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse("4294967295").unwrap(), u32::MAX);
        for bad in ["4294967296", "-1", "+5", "12abc", " 1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("soon").unwrap_err().to_string(),
            "cannot use SOURCE_DATE_EPOCH=soon: not a whole number of seconds from 0 \
             to 4294967295 (newc mtimes are 32 bits)"
        );
    }
}
