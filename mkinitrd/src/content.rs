//! Host files, trees, directories, symlinks and device nodes added to an image.
//!
//! Two steps, as everywhere in this crate. The `parse_*_spec` functions turn
//! a command line value (`--file SRC[:DST]`, ...) into a [`Directive`]
//! without touching the disk; [`crate::manifest`] builds the same directives
//! from a file. [`apply`] then adds directives to an [`Image`] in order,
//! reading the host only to stat files, list directories and read symlinks:
//! file data is read when the image is written. Programs are resolved as
//! their directive comes ([`crate::programs`]), so a later directive
//! replaces what an earlier one put at a path whatever their kinds; kernel
//! modules are handed back in [`Applied`] for the module resolver. Each
//! entry is added with its directive as its [`Source`], so a clash with
//! what the image needs to boot names both. Nothing is kept between calls.
//!
//! Every entry is owned by root (the archive writer stores uid/gid 0), and
//! parent directories that no directive names are added with mode 0755.
//! Destinations go through [`normalize_path`], so none leaves the image.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{major, minor};

use crate::cpio::{self, NodKind, PERMISSION_BITS};
use crate::error::Error;
use crate::image::{DIR_MODE, Image, Source, normalize_path};
use crate::programs::Programs;

/// Mode of a `--nod` device node given without one: only root opens it,
/// as for /dev/console.
pub const NOD_MODE: u32 = 0o600;
/// Largest device major the kernel can unpack: initramfs.c builds the
/// device with `MKDEV`, which keeps 12 bits of major
/// (include/linux/kdev_t.h, `MINORBITS` 20 of a 32-bit `dev_t`).
pub const MAX_MAJOR: u32 = (1 << 12) - 1;
/// Largest device minor the kernel can unpack (20 bits, see [`MAX_MAJOR`]).
pub const MAX_MINOR: u32 = (1 << 20) - 1;

/// One thing to put in the image, as given on the command line or in a
/// manifest line.
///
/// Host paths are used as given (relative ones against the current
/// directory when applied; [`crate::manifest`] makes them relative to the
/// manifest first). Image paths are checked with [`normalize_path`] when
/// parsed and normalised when applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Directive {
    /// A host file, followed if it is a symlink: the target's data and
    /// permission bits are packed under the link's name, as dracut's
    /// `inst` does for a symlink given as a file.
    File {
        /// The host file.
        src: PathBuf,
        /// Where it goes; `None` for the absolute path of `src`, with the
        /// last component kept as named (a symlink's name, not its target).
        dst: Option<String>,
        /// `try-file`: skip it when `src` does not exist.
        optional: bool,
    },
    /// A host directory and everything under it, copied as it is: symlinks
    /// stay symlinks (never followed below `src` itself), device nodes
    /// keep their numbers, and every entry keeps its permission bits
    /// (setuid, setgid and sticky included).
    Tree {
        /// The host directory; followed if it is a symlink.
        src: PathBuf,
        /// The image directory it becomes (`/` merges it into the root).
        dst: String,
        /// `try-tree`: skip it when `src` does not exist.
        optional: bool,
    },
    /// A directory.
    Dir {
        /// Image path.
        path: String,
        /// Permission bits; `None` for [`DIR_MODE`].
        mode: Option<u32>,
    },
    /// A symbolic link.
    Symlink {
        /// Image path.
        path: String,
        /// Where it points, stored as given.
        target: String,
    },
    /// A device node made from numbers, without a host file.
    Nod {
        /// Image path.
        path: String,
        /// Character or block device.
        kind: NodKind,
        /// Device major, up to [`MAX_MAJOR`].
        major: u32,
        /// Device minor, up to [`MAX_MINOR`].
        minor: u32,
        /// Permission bits ([`NOD_MODE`] unless given).
        mode: u32,
    },
    /// A kernel module by name or alias, for the module resolver.
    Module {
        /// The name as given.
        name: String,
        /// `try-module`: the resolver may skip it when it is missing.
        optional: bool,
    },
    /// A program with its libraries, for the ELF resolver.
    Bin {
        /// A name looked up in the search path, or a path.
        name: String,
        /// `try-bin`: the resolver may skip it when it is missing.
        optional: bool,
    },
}

/// What [`apply`] left for others: the modules and programs to resolve, in
/// the order given, and the optional host paths that were absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Modules that must be found.
    pub modules: Vec<String>,
    /// Modules from `try-module`: skip them when missing.
    pub optional_modules: Vec<String>,
    /// Host paths of `try-file` and `try-tree` that did not exist.
    pub skipped: Vec<PathBuf>,
}

/// The kinds of directive, with how each is written on the command line
/// and in a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Tree,
    Dir,
    Symlink,
    Nod,
    Module,
    Bin,
}

impl Kind {
    /// The manifest name of each kind.
    const NAMES: [(&'static str, Kind); 7] = [
        ("file", Kind::File),
        ("tree", Kind::Tree),
        ("dir", Kind::Dir),
        ("symlink", Kind::Symlink),
        ("nod", Kind::Nod),
        ("module", Kind::Module),
        ("bin", Kind::Bin),
    ];

    /// The kind a manifest directive names (`file`, not `try-file`).
    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        Kind::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|&(_, kind)| kind)
    }

    /// Whether a `try-` form exists, tolerating a missing source.
    pub(crate) fn can_be_optional(self) -> bool {
        matches!(self, Kind::File | Kind::Tree | Kind::Module | Kind::Bin)
    }

    /// Smallest and largest number of fields.
    fn arity(self) -> (usize, usize) {
        match self {
            Kind::File | Kind::Dir => (1, 2),
            Kind::Tree | Kind::Symlink => (2, 2),
            Kind::Nod => (4, 5),
            Kind::Module | Kind::Bin => (1, 1),
        }
    }

    /// The fields as a manifest line has them.
    pub(crate) fn manifest_usage(self) -> &'static str {
        match self {
            Kind::File => "SRC [DST]",
            Kind::Tree => "DIR DST",
            Kind::Dir => "PATH [MODE]",
            Kind::Symlink => "PATH TARGET",
            Kind::Nod => "PATH c|b MAJOR MINOR [MODE]",
            Kind::Module => "NAME",
            Kind::Bin => "PROG",
        }
    }

    /// The fields as a command line value has them.
    fn option_usage(self) -> &'static str {
        match self {
            Kind::File => "SRC[:DST]",
            Kind::Tree => "DIR:DST",
            Kind::Dir => "PATH[:MODE]",
            Kind::Symlink => "PATH:TARGET",
            Kind::Nod => "PATH:c|b:MAJOR:MINOR[:MODE]",
            Kind::Module => "NAME",
            Kind::Bin => "PROG",
        }
    }
}

/// Parses a `--file SRC[:DST]` value.
///
/// SRC ends at the first `:`; DST may hold more. Without DST the file goes
/// to SRC's absolute path. Errors: [`Error::BadOption`] for an empty SRC
/// or a DST that would leave the image.
///
/// # Example
/// ```
/// use mkinitrd::content::{parse_file_spec, Directive};
/// let file = parse_file_spec("etc/motd:/etc/motd")?;
/// assert_eq!(file, Directive::File {
///     src: "etc/motd".into(),
///     dst: Some("/etc/motd".into()),
///     optional: false,
/// });
/// assert!(parse_file_spec("motd:../../etc/motd").is_err());
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn parse_file_spec(value: &str) -> Result<Directive, Error> {
    parse_option("--file", Kind::File, value)
}

/// Parses a `--tree DIR:DST` value. DIR ends at the first `:`.
///
/// Errors: [`Error::BadOption`] when DST is missing or leaves the image.
pub fn parse_tree_spec(value: &str) -> Result<Directive, Error> {
    parse_option("--tree", Kind::Tree, value)
}

/// Parses a `--dir PATH[:MODE]` value; MODE is octal, at most 7777
/// ([`DIR_MODE`] when not given).
///
/// Errors: [`Error::BadOption`].
pub fn parse_dir_spec(value: &str) -> Result<Directive, Error> {
    parse_option("--dir", Kind::Dir, value)
}

/// Parses a `--symlink PATH:TARGET` value. PATH ends at the first `:`; the
/// target is stored as given, so relative targets stay relative.
///
/// Errors: [`Error::BadOption`].
pub fn parse_symlink_spec(value: &str) -> Result<Directive, Error> {
    parse_option("--symlink", Kind::Symlink, value)
}

/// Parses a `--nod PATH:c|b:MAJOR:MINOR[:MODE]` value: a character (`c`)
/// or block (`b`) device, decimal numbers up to [`MAX_MAJOR`] and
/// [`MAX_MINOR`], an octal mode ([`NOD_MODE`] when not given).
///
/// Errors: [`Error::BadOption`].
///
/// # Example
/// ```
/// use mkinitrd::content::{parse_nod_spec, Directive};
/// use mkinitrd::image::NodKind;
/// let null = parse_nod_spec("/dev/null:c:1:3:666")?;
/// assert_eq!(null, Directive::Nod {
///     path: "/dev/null".into(), kind: NodKind::Char, major: 1, minor: 3, mode: 0o666,
/// });
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn parse_nod_spec(value: &str) -> Result<Directive, Error> {
    parse_option("--nod", Kind::Nod, value)
}

/// Splits an option value on `:` (the last field keeps any further `:`)
/// and builds its directive.
fn parse_option(option: &'static str, kind: Kind, value: &str) -> Result<Directive, Error> {
    let (_, most) = kind.arity();
    let fields: Vec<&str> = value.splitn(most, ':').collect();
    build(kind, &fields, false)
        .map_err(|problem| {
            if problem.is_empty() {
                format!("expected {}", kind.option_usage())
            } else {
                problem
            }
        })
        .map_err(|problem| Error::BadOption {
            option,
            value: value.to_string(),
            problem,
        })
}

/// Builds a directive of `kind` from its fields, checking each.
///
/// The error is what is wrong, or an empty string when the number of
/// fields is wrong (the caller knows how its form is written).
pub(crate) fn build(kind: Kind, fields: &[&str], optional: bool) -> Result<Directive, String> {
    let (least, most) = kind.arity();
    if fields.len() < least || fields.len() > most {
        return Err(String::new());
    }
    let field = |i: usize| fields.get(i).copied();
    Ok(match kind {
        Kind::File => Directive::File {
            src: host_path(fields[0], "SRC")?,
            dst: field(1).map(check_image_path).transpose()?,
            optional,
        },
        Kind::Tree => Directive::Tree {
            src: host_path(fields[0], "DIR")?,
            dst: check_tree_dst(fields[1])?,
            optional,
        },
        Kind::Dir => Directive::Dir {
            path: check_image_path(fields[0])?,
            mode: field(1).map(parse_mode).transpose()?,
        },
        Kind::Symlink => Directive::Symlink {
            path: check_image_path(fields[0])?,
            target: check_target(fields[0], fields[1])?,
        },
        Kind::Nod => Directive::Nod {
            path: check_image_path(fields[0])?,
            kind: parse_nod_kind(fields[1])?,
            major: parse_device_number(fields[2], "major", MAX_MAJOR)?,
            minor: parse_device_number(fields[3], "minor", MAX_MINOR)?,
            mode: field(4).map(parse_mode).transpose()?.unwrap_or(NOD_MODE),
        },
        Kind::Module => Directive::Module {
            name: non_empty(fields[0], "NAME")?,
            optional,
        },
        Kind::Bin => Directive::Bin {
            name: non_empty(fields[0], "PROG")?,
            optional,
        },
    })
}

/// A host path field, which must not be empty.
fn host_path(field: &str, what: &str) -> Result<PathBuf, String> {
    non_empty(field, what).map(PathBuf::from)
}

/// A field that must not be empty.
fn non_empty(field: &str, what: &str) -> Result<String, String> {
    if field.is_empty() {
        Err(format!("{what} is empty"))
    } else {
        Ok(field.to_string())
    }
}

/// An image path: kept as given once [`normalize_path`] accepts it.
fn check_image_path(path: &str) -> Result<String, String> {
    match normalize_path(path) {
        Ok(_) => Ok(path.to_string()),
        Err(Error::BadPath { problem, .. }) => Err(format!("bad path \"{path}\": {problem}")),
        Err(other) => Err(other.to_string()),
    }
}

/// A tree destination: an image path, or the image root.
fn check_tree_dst(path: &str) -> Result<String, String> {
    if names_root(path) {
        Ok(path.to_string())
    } else {
        check_image_path(path)
    }
}

/// True for `/`, `.`, `//./` and the like: nothing but the root.
fn names_root(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(|c| c.is_empty() || c == ".")
}

/// A symlink target the kernel will unpack (see
/// [`cpio::check_symlink_target`]).
fn check_target(path: &str, target: &str) -> Result<String, String> {
    match cpio::check_symlink_target(path, target) {
        Ok(()) => Ok(target.to_string()),
        Err(cpio::WriteError::BadPath { problem, .. }) => Err(problem.to_string()),
        Err(other) => Err(other.to_string()),
    }
}

/// Permission bits in octal, up to 7777 in at most 5 digits (`755`, `0644`,
/// `4755`, `01777`).
pub(crate) fn parse_mode(field: &str) -> Result<u32, String> {
    let bad = || format!("mode \"{field}\" is not octal from 0 to 7777");
    if field.is_empty() || field.len() > 5 || !field.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    match u32::from_str_radix(field, 8) {
        Ok(mode) if mode <= PERMISSION_BITS => Ok(mode),
        _ => Err(bad()),
    }
}

/// `c` (character device) or `b` (block device).
fn parse_nod_kind(field: &str) -> Result<NodKind, String> {
    match field {
        "c" => Ok(NodKind::Char),
        "b" => Ok(NodKind::Block),
        _ => Err(format!(
            "device type \"{field}\" is neither c (character) nor b (block)"
        )),
    }
}

/// A decimal device number up to `max`.
fn parse_device_number(field: &str, what: &str, max: u32) -> Result<u32, String> {
    let bad = || format!("{what} \"{field}\" is not a whole number from 0 to {max}");
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match field.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(bad()),
    }
}

/// Adds `directives` to `image` in order; a later directive for the same
/// path replaces an earlier one (a directory keeps being a directory).
///
/// Modules and programs are collected in [`Applied`], not resolved. Errors
/// are those of the [`Image`] methods, plus [`Error::NotADirectory`],
/// [`Error::ReadDir`], [`Error::ReadLink`], [`Error::NonUtf8Path`],
/// [`Error::UnsupportedFileType`] and [`Error::DirectoryLoop`] for trees.
/// The image may hold part of the directives when it fails.
///
/// # Example
/// ```
/// use mkinitrd::content::{apply, parse_dir_spec, parse_symlink_spec, Directive};
/// use mkinitrd::image::Image;
/// let mut image = Image::new(0);
/// let directives = [
///     parse_dir_spec("/mnt/test:1777")?,
///     parse_symlink_spec("/bin/sh:busybox")?,
///     Directive::Module { name: "zram".into(), optional: false },
/// ];
/// let applied = apply(&mut image, &directives)?;
/// assert_eq!(applied.modules, ["zram"]);
/// let paths: Vec<&str> = image.entries().map(|(path, _)| path).collect();
/// assert_eq!(paths, ["bin", "bin/sh", "mnt", "mnt/test"]);
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn apply(image: &mut Image, directives: &[Directive]) -> Result<Applied, Error> {
    let mut applied = Applied::default();
    let mut programs = Programs::default();
    for directive in directives {
        image.set_source(Some(Source::directive(directive.to_string())));
        let done = apply_one(image, directive, &mut applied, &mut programs);
        image.set_source(None);
        done?;
    }
    Ok(applied)
}

/// Adds one directive, or records it in `applied`.
fn apply_one(
    image: &mut Image,
    directive: &Directive,
    applied: &mut Applied,
    programs: &mut Programs,
) -> Result<(), Error> {
    match directive {
        Directive::File { src, dst, optional } => {
            let added = add_host_file(image, src, dst.as_deref());
            skip_if_absent(added, *optional, src, applied)
        }
        Directive::Tree { src, dst, optional } => {
            let added = add_tree(image, src, dst);
            skip_if_absent(added, *optional, src, applied)
        }
        Directive::Dir { path, mode } => image.add_dir(path, mode.unwrap_or(DIR_MODE)),
        Directive::Symlink { path, target } => image.add_symlink(path, target),
        Directive::Nod {
            path,
            kind,
            major,
            minor,
            mode,
        } => image.add_nod(path, *kind, *major, *minor, *mode),
        Directive::Module { name, optional } => {
            let list = if *optional {
                &mut applied.optional_modules
            } else {
                &mut applied.modules
            };
            list.push(name.clone());
            Ok(())
        }
        Directive::Bin { name, optional } => programs.add(image, name, *optional),
    }
}

/// The directive as a command-line option (a manifest line reads the same
/// with a space for the colon): for error lines naming two directives.
impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let try_ = |optional: bool| if optional { "try-" } else { "" };
        match self {
            Directive::File { src, dst, optional } => {
                write!(f, "--{}file {}", try_(*optional), src.display())?;
                match dst {
                    Some(dst) => write!(f, ":{dst}"),
                    None => Ok(()),
                }
            }
            Directive::Tree { src, dst, optional } => {
                write!(f, "--{}tree {}:{dst}", try_(*optional), src.display())
            }
            Directive::Dir { path, mode: None } => write!(f, "--dir {path}"),
            Directive::Dir {
                path,
                mode: Some(mode),
            } => write!(f, "--dir {path}:{mode:o}"),
            Directive::Symlink { path, target } => write!(f, "--symlink {path}:{target}"),
            Directive::Nod {
                path,
                kind,
                major,
                minor,
                mode,
            } => {
                let kind = match kind {
                    NodKind::Char => 'c',
                    NodKind::Block => 'b',
                };
                write!(f, "--nod {path}:{kind}:{major}:{minor}:{mode:o}")
            }
            Directive::Module { name, optional } => {
                write!(f, "--{}module {name}", try_(*optional))
            }
            Directive::Bin { name, optional } => write!(f, "--{}bin {name}", try_(*optional)),
        }
    }
}

/// Turns "`src` does not exist" into a skip for `try-` directives.
fn skip_if_absent(
    added: Result<(), Error>,
    optional: bool,
    src: &Path,
    applied: &mut Applied,
) -> Result<(), Error> {
    match added {
        Err(Error::StatFile { path, source }) if optional && path == src && is_absent(&source) => {
            applied.skipped.push(path);
            Ok(())
        }
        other => other,
    }
}

/// Whether an error of stat means the path is not there: ENOENT, or
/// ENOTDIR when a parent is a file.
pub(crate) fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Adds the host file `src` (followed if a symlink) at `dst`, or at its own
/// absolute path.
fn add_host_file(image: &mut Image, src: &Path, dst: Option<&str>) -> Result<(), Error> {
    match dst {
        Some(dst) => image.add_file(dst, src, None),
        None => {
            let dst = default_dst(src)?;
            image.add_file(&dst, src, None)
        }
    }
}

/// The image path of a `--file` without DST: `src` made absolute.
///
/// A path with `..` is resolved on the host (the directory holding the
/// last component is canonicalised), since `..` after a symlink does not
/// mean what it says. The last component keeps its name, so a symlink is
/// packed under the link's name. Errors: [`Error::StatFile`] when the
/// directory cannot be resolved, [`Error::NonUtf8Path`].
fn default_dst(src: &Path) -> Result<String, Error> {
    let stat_error = |source| Error::StatFile {
        path: src.to_path_buf(),
        source,
    };
    let absolute = std::path::absolute(src).map_err(stat_error)?;
    let resolved = if absolute.components().any(|c| c == Component::ParentDir) {
        match (absolute.parent(), absolute.file_name()) {
            (Some(parent), Some(name)) => fs::canonicalize(parent).map_err(stat_error)?.join(name),
            _ => fs::canonicalize(&absolute).map_err(stat_error)?,
        }
    } else {
        absolute
    };
    utf8(&resolved).map(str::to_string)
}

/// `path` as UTF-8, or [`Error::NonUtf8Path`].
fn utf8(path: &Path) -> Result<&str, Error> {
    path.to_str().ok_or_else(|| Error::NonUtf8Path {
        path: path.to_path_buf(),
    })
}

/// Adds the host directory `src` as `dst` with everything under it.
///
/// Directories are listed once each, in name order, without recursion
/// (a deep tree cannot overflow the stack). A directory met twice by
/// device and inode, which only bind mounts can do, is an error rather
/// than an endless walk.
fn add_tree(image: &mut Image, src: &Path, dst: &str) -> Result<(), Error> {
    // The root is followed: `--tree /lib/firmware:...` works where /lib
    // is a symlink, as `cp -rH` would.
    let root = fs::metadata(src).map_err(|source| Error::StatFile {
        path: src.to_path_buf(),
        source,
    })?;
    if !root.is_dir() {
        return Err(Error::NotADirectory {
            path: src.to_path_buf(),
        });
    }
    let mut seen = SeenDirs::default();
    seen.enter(root.dev(), root.ino(), src)?;
    // The image root has no entry of its own, so a tree merged into it
    // gives its children only.
    let top = if names_root(dst) {
        String::new()
    } else {
        image.add_dir(dst, root.mode())?;
        normalize_path(dst)?
    };
    let mut pending = vec![(src.to_path_buf(), top)];
    while let Some((dir, at)) = pending.pop() {
        for (host, metadata) in read_dir_sorted(&dir)? {
            let name = host.file_name().unwrap_or_default();
            let name = name
                .to_str()
                .ok_or_else(|| Error::NonUtf8Path { path: host.clone() })?;
            let path = if at.is_empty() {
                name.to_string()
            } else {
                format!("{at}/{name}")
            };
            if metadata.is_dir() {
                seen.enter(metadata.dev(), metadata.ino(), &host)?;
                image.add_dir(&path, metadata.mode())?;
                pending.push((host, path));
            } else {
                add_tree_leaf(image, &path, &host, &metadata)?;
            }
        }
    }
    Ok(())
}

/// Lists `dir` with each entry's own metadata (symlinks not followed),
/// sorted by name so errors come in a stable order.
fn read_dir_sorted(dir: &Path) -> Result<Vec<(PathBuf, Metadata)>, Error> {
    let read_error = |source| Error::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let host = entry.path();
        // DirEntry::metadata is an lstat (fstatat AT_SYMLINK_NOFOLLOW).
        let metadata = entry.metadata().map_err(|source| Error::StatFile {
            path: host.clone(),
            source,
        })?;
        entries.push((host, metadata));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// Adds one non-directory of a tree as what it is on the host.
fn add_tree_leaf(
    image: &mut Image,
    path: &str,
    host: &Path,
    metadata: &Metadata,
) -> Result<(), Error> {
    let file_type = metadata.file_type();
    let mode = metadata.mode();
    if file_type.is_file() {
        image.add_file(path, host, Some(mode))
    } else if file_type.is_symlink() {
        let target = fs::read_link(host).map_err(|source| Error::ReadLink {
            path: host.to_path_buf(),
            source,
        })?;
        let target = target.to_str().ok_or_else(|| Error::NonUtf8Path {
            path: host.to_path_buf(),
        })?;
        image.add_symlink(path, target)
    } else if file_type.is_char_device() || file_type.is_block_device() {
        let kind = if file_type.is_char_device() {
            NodKind::Char
        } else {
            NodKind::Block
        };
        let rdev = metadata.rdev();
        image.add_nod(path, kind, major(rdev), minor(rdev), mode)
    } else {
        // The newc format and the kernel's unpacker have fifos and
        // sockets (init/initramfs.c, do_create), but NodKind has no
        // variant for them yet.
        let kind = if file_type.is_fifo() {
            "a fifo"
        } else if file_type.is_socket() {
            "a socket"
        } else {
            "of an unknown type"
        };
        Err(Error::UnsupportedFileType {
            path: host.to_path_buf(),
            kind,
        })
    }
}

/// The directories of one tree walk by (device, inode), with where each
/// was first met.
#[derive(Default)]
struct SeenDirs(HashMap<(u64, u64), PathBuf>);

impl SeenDirs {
    /// Records a directory about to be read; [`Error::DirectoryLoop`] if
    /// it was met before.
    fn enter(&mut self, dev: u64, ino: u64, path: &Path) -> Result<(), Error> {
        match self.0.entry((dev, ino)) {
            MapEntry::Occupied(first) => Err(Error::DirectoryLoop {
                path: path.to_path_buf(),
                first: first.get().clone(),
            }),
            MapEntry::Vacant(slot) => {
                slot.insert(path.to_path_buf());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Entry;
    use crate::testutil::TempDir;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn entry<'a>(image: &'a Image, path: &str) -> Option<&'a Entry> {
        image.entries().find(|(p, _)| *p == path).map(|(_, e)| e)
    }

    fn paths(image: &Image) -> Vec<&str> {
        image.entries().map(|(path, _)| path).collect()
    }

    fn message(result: Result<Directive, Error>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn file_specs() {
        assert_eq!(
            parse_file_spec("/etc/hosts").unwrap(),
            Directive::File {
                src: "/etc/hosts".into(),
                dst: None,
                optional: false
            }
        );
        // DST keeps any further ':'.
        assert_eq!(
            parse_file_spec("a:/b:c").unwrap(),
            Directive::File {
                src: "a".into(),
                dst: Some("/b:c".into()),
                optional: false
            }
        );
        assert_eq!(
            message(parse_file_spec(":/x")),
            "cannot use --file :/x: SRC is empty"
        );
        assert_eq!(
            message(parse_file_spec("a:")),
            "cannot use --file a:: bad path \"\": the path is empty or names the image root"
        );
        assert_eq!(
            message(parse_file_spec("a:/usr/../../etc/shadow")),
            "cannot use --file a:/usr/../../etc/shadow: bad path \"/usr/../../etc/shadow\": \
             the path has a \"..\" component (paths stay inside the image)"
        );
    }

    #[test]
    fn tree_specs() {
        assert_eq!(
            parse_tree_spec("fw:/lib/firmware").unwrap(),
            Directive::Tree {
                src: "fw".into(),
                dst: "/lib/firmware".into(),
                optional: false
            }
        );
        // The root is a valid destination for a tree only.
        assert!(parse_tree_spec("root:/").is_ok());
        assert!(parse_tree_spec("root:./").is_ok());
        assert_eq!(
            message(parse_tree_spec("fw")),
            "cannot use --tree fw: expected DIR:DST"
        );
        assert_eq!(
            message(parse_tree_spec("fw:..")),
            "cannot use --tree fw:..: bad path \"..\": the path has a \"..\" component \
             (paths stay inside the image)"
        );
        assert_eq!(
            message(parse_tree_spec(":/x")),
            "cannot use --tree :/x: DIR is empty"
        );
    }

    #[test]
    fn dir_specs() {
        assert_eq!(
            parse_dir_spec("/mnt").unwrap(),
            Directive::Dir {
                path: "/mnt".into(),
                mode: None
            }
        );
        assert_eq!(
            parse_dir_spec("/tmp:1777").unwrap(),
            Directive::Dir {
                path: "/tmp".into(),
                mode: Some(0o1777)
            }
        );
        assert_eq!(
            parse_dir_spec("x:07").unwrap(),
            Directive::Dir {
                path: "x".into(),
                mode: Some(0o7)
            }
        );
        for bad in [
            "x:", "x:8", "x:17777", "x:+7", "x:0o755", "x:755:1", "x:000000",
        ] {
            assert!(parse_dir_spec(bad).is_err(), "{bad}");
        }
        assert_eq!(
            message(parse_dir_spec("/x:rwx")),
            "cannot use --dir /x:rwx: mode \"rwx\" is not octal from 0 to 7777"
        );
        assert_eq!(
            message(parse_dir_spec("/")),
            "cannot use --dir /: bad path \"/\": the path is empty or names the image root"
        );
    }

    #[test]
    fn symlink_specs() {
        assert_eq!(
            parse_symlink_spec("/bin/sh:busybox").unwrap(),
            Directive::Symlink {
                path: "/bin/sh".into(),
                target: "busybox".into()
            }
        );
        // The target is stored as given, '..' and ':' included.
        assert_eq!(
            parse_symlink_spec("lib:../usr/lib:x").unwrap(),
            Directive::Symlink {
                path: "lib".into(),
                target: "../usr/lib:x".into()
            }
        );
        assert_eq!(
            message(parse_symlink_spec("/bin/sh")),
            "cannot use --symlink /bin/sh: expected PATH:TARGET"
        );
        assert_eq!(
            message(parse_symlink_spec("/bin/sh:")),
            "cannot use --symlink /bin/sh:: the symlink target is empty"
        );
        assert!(parse_symlink_spec("../sh:busybox").is_err());
    }

    #[test]
    fn nod_specs() {
        assert_eq!(
            parse_nod_spec("/dev/vda:b:254:0").unwrap(),
            Directive::Nod {
                path: "/dev/vda".into(),
                kind: NodKind::Block,
                major: 254,
                minor: 0,
                mode: NOD_MODE
            }
        );
        assert_eq!(
            parse_nod_spec("dev/null:c:1:3:666").unwrap(),
            Directive::Nod {
                path: "dev/null".into(),
                kind: NodKind::Char,
                major: 1,
                minor: 3,
                mode: 0o666
            }
        );
        assert!(parse_nod_spec("x:c:4095:1048575").is_ok());
        assert_eq!(
            message(parse_nod_spec("x:p:1:3")),
            "cannot use --nod x:p:1:3: device type \"p\" is neither c (character) nor b (block)"
        );
        assert_eq!(
            message(parse_nod_spec("x:c:4096:0")),
            "cannot use --nod x:c:4096:0: major \"4096\" is not a whole number from 0 to 4095"
        );
        assert_eq!(
            message(parse_nod_spec("x:c:1:1048576")),
            "cannot use --nod x:c:1:1048576: minor \"1048576\" is not a whole number \
             from 0 to 1048575"
        );
        assert_eq!(
            message(parse_nod_spec("x:c:1")),
            "cannot use --nod x:c:1: expected PATH:c|b:MAJOR:MINOR[:MODE]"
        );
        for bad in [
            "x:c:-1:0",
            "x:c:1:0x3",
            "x:c::3",
            "x:c:1:3:9",
            "x:c:1:3:666:1",
        ] {
            assert!(parse_nod_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn module_and_bin_fields() {
        assert_eq!(
            build(Kind::Module, &["zram"], true).unwrap(),
            Directive::Module {
                name: "zram".into(),
                optional: true
            }
        );
        assert_eq!(build(Kind::Bin, &[""], false).unwrap_err(), "PROG is empty");
        assert_eq!(build(Kind::Bin, &["a", "b"], false).unwrap_err(), "");
    }

    #[test]
    fn apply_collects_modules_in_order() {
        let mut image = Image::new(0);
        let module = |name: &str, optional| Directive::Module {
            name: name.into(),
            optional,
        };
        let directives = [
            module("zram", false),
            module("lzo", true),
            module("xfs", false),
        ];
        let applied = apply(&mut image, &directives).unwrap();
        assert_eq!(applied.modules, ["zram", "xfs"]);
        assert_eq!(applied.optional_modules, ["lzo"]);
        assert!(image.entries().next().is_none());
    }

    #[test]
    fn directives_read_as_options() {
        let text = |value: &str, parse: fn(&str) -> Result<Directive, Error>| {
            parse(value).unwrap().to_string()
        };
        assert_eq!(
            text("one:/usr/bin/x", parse_file_spec),
            "--file one:/usr/bin/x"
        );
        assert_eq!(text("/etc/hosts", parse_file_spec), "--file /etc/hosts");
        assert_eq!(
            text("/bin/sh:busybox", parse_symlink_spec),
            "--symlink /bin/sh:busybox"
        );
        assert_eq!(text("/mnt:1777", parse_dir_spec), "--dir /mnt:1777");
        assert_eq!(
            text("/dev/null:c:1:3", parse_nod_spec),
            "--nod /dev/null:c:1:3:600"
        );
    }

    #[test]
    fn apply_dirs_symlinks_and_nods() {
        let mut image = Image::new(0);
        let directives = [
            parse_dir_spec("/mnt/scratch").unwrap(),
            parse_dir_spec("/tmp:1777").unwrap(),
            parse_symlink_spec("/bin/sh:busybox").unwrap(),
            parse_nod_spec("/dev/zram0:b:252:0:660").unwrap(),
        ];
        apply(&mut image, &directives).unwrap();
        assert_eq!(
            paths(&image),
            [
                "bin",
                "bin/sh",
                "dev",
                "dev/zram0",
                "mnt",
                "mnt/scratch",
                "tmp"
            ]
        );
        assert_eq!(entry(&image, "mnt"), Some(&Entry::Dir { mode: 0o755 }));
        assert_eq!(entry(&image, "tmp"), Some(&Entry::Dir { mode: 0o1777 }));
        assert_eq!(
            entry(&image, "dev/zram0"),
            Some(&Entry::Nod {
                kind: NodKind::Block,
                major: 252,
                minor: 0,
                mode: 0o660
            })
        );
    }

    #[test]
    fn file_without_dst_goes_to_its_absolute_path() {
        let tmp = TempDir::new("content-file");
        let real = tmp.write("real.conf", b"x=1\n");
        fs::set_permissions(&real, fs::Permissions::from_mode(0o4750)).unwrap();
        let link = tmp.path().join("link.conf");
        symlink("real.conf", &link).unwrap();
        fs::create_dir(tmp.path().join("sub")).unwrap();
        let mut image = Image::new(0);
        apply(
            &mut image,
            &[
                Directive::File {
                    src: link.clone(),
                    dst: None,
                    optional: false,
                },
                // The OS resolves '..' of a source.
                Directive::File {
                    src: tmp.path().join("sub/../real.conf"),
                    dst: Some("/etc/real.conf".into()),
                    optional: false,
                },
            ],
        )
        .unwrap();
        // A symlink given as a file: the target's data and mode under the
        // link's name (dracut's behaviour).
        let at = link.to_str().unwrap().trim_start_matches('/');
        assert_eq!(
            entry(&image, at),
            Some(&Entry::File {
                source: link.clone(),
                mode: 0o4750,
                size: 4
            })
        );
        assert!(matches!(
            entry(&image, "etc/real.conf"),
            Some(Entry::File { mode: 0o4750, .. })
        ));
    }

    #[test]
    fn default_dst_resolves_dot_dot_on_the_host() {
        let tmp = TempDir::new("content-dotdot");
        tmp.write("a/f", b"");
        fs::create_dir(tmp.path().join("b")).unwrap();
        let dst = default_dst(&tmp.path().join("b/../a/./f")).unwrap();
        let expected = fs::canonicalize(tmp.path()).unwrap().join("a/f");
        assert_eq!(dst, expected.to_str().unwrap());
        let plain = default_dst(&tmp.path().join("./a/f")).unwrap();
        assert!(normalize_path(&plain).is_ok());
        assert!(!plain.contains("/./"), "{plain}");
    }

    #[test]
    fn try_file_and_try_tree_skip_what_is_absent() {
        let tmp = TempDir::new("content-try");
        let missing = tmp.path().join("missing");
        let under_file = tmp.write("file", b"").join("x");
        let mut image = Image::new(0);
        let applied = apply(
            &mut image,
            &[
                Directive::File {
                    src: missing.clone(),
                    dst: None,
                    optional: true,
                },
                Directive::Tree {
                    src: missing.clone(),
                    dst: "/t".into(),
                    optional: true,
                },
                Directive::File {
                    src: under_file.clone(),
                    dst: Some("x".into()),
                    optional: true,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            applied.skipped,
            [missing.clone(), missing.clone(), under_file]
        );
        assert!(image.entries().next().is_none());
        // Without try- it is an error naming the file.
        let err = apply(
            &mut image,
            &[Directive::File {
                src: missing.clone(),
                dst: None,
                optional: false,
            }],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot stat {}: No such file or directory",
                missing.display()
            )
        );
        // try- tolerates absence only, not a directory given as a file.
        let err = apply(
            &mut image,
            &[Directive::File {
                src: tmp.path().to_path_buf(),
                dst: Some("d".into()),
                optional: true,
            }],
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotRegularFile { .. }), "{err}");
    }

    /// A host tree with one entry of each kind the image can hold.
    fn sample_tree(tmp: &TempDir) -> PathBuf {
        let root = tmp.path().join("tree");
        tmp.write("tree/bin/tool", b"#!/bin/sh\n");
        tmp.write("tree/etc/conf", b"a");
        tmp.write("tree/empty/.keep", b"");
        fs::remove_file(root.join("empty/.keep")).unwrap();
        let set_mode = |rel: &str, mode| {
            fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap()
        };
        set_mode("bin/tool", 0o4755);
        set_mode("etc/conf", 0o600);
        set_mode("empty", 0o1777);
        set_mode("etc", 0o750);
        symlink("../etc/conf", root.join("bin/conf-link")).unwrap();
        symlink("/nowhere", root.join("dangling")).unwrap();
        // A symlink to a directory stays a symlink: nothing below it is
        // walked.
        symlink("..", root.join("etc/up")).unwrap();
        root
    }

    #[test]
    fn trees_keep_types_modes_and_symlinks() {
        let tmp = TempDir::new("content-tree");
        let root = sample_tree(&tmp);
        let mut image = Image::new(0);
        apply(
            &mut image,
            &[parse_tree_spec(&format!("{}:/opt/t", root.display())).unwrap()],
        )
        .unwrap();
        assert_eq!(
            paths(&image),
            [
                "opt",
                "opt/t",
                "opt/t/bin",
                "opt/t/bin/conf-link",
                "opt/t/bin/tool",
                "opt/t/dangling",
                "opt/t/empty",
                "opt/t/etc",
                "opt/t/etc/conf",
                "opt/t/etc/up",
            ]
        );
        let host_mode = fs::metadata(&root).unwrap().mode() & PERMISSION_BITS;
        assert_eq!(entry(&image, "opt"), Some(&Entry::Dir { mode: DIR_MODE }));
        assert_eq!(
            entry(&image, "opt/t"),
            Some(&Entry::Dir { mode: host_mode })
        );
        assert_eq!(
            entry(&image, "opt/t/empty"),
            Some(&Entry::Dir { mode: 0o1777 })
        );
        assert_eq!(
            entry(&image, "opt/t/etc"),
            Some(&Entry::Dir { mode: 0o750 })
        );
        assert_eq!(
            entry(&image, "opt/t/bin/tool"),
            Some(&Entry::File {
                source: root.join("bin/tool"),
                mode: 0o4755,
                size: 10
            })
        );
        assert!(matches!(
            entry(&image, "opt/t/etc/conf"),
            Some(Entry::File { mode: 0o600, .. })
        ));
        let target = |path| match entry(&image, path) {
            Some(Entry::Symlink { target }) => target.as_str(),
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(target("opt/t/bin/conf-link"), "../etc/conf");
        assert_eq!(target("opt/t/dangling"), "/nowhere");
        assert_eq!(target("opt/t/etc/up"), "..");
    }

    #[test]
    fn a_tree_merged_into_the_root() {
        let tmp = TempDir::new("content-tree-root");
        tmp.write("root/etc/hostname", b"vm\n");
        let mut image = Image::new(0);
        apply(
            &mut image,
            &[Directive::Tree {
                src: tmp.path().join("root"),
                dst: "/".into(),
                optional: false,
            }],
        )
        .unwrap();
        assert_eq!(paths(&image), ["etc", "etc/hostname"]);
    }

    #[test]
    fn tree_errors() {
        let tmp = TempDir::new("content-tree-errors");
        let file = tmp.write("file", b"");
        let mut image = Image::new(0);
        let tree = |src: &Path| Directive::Tree {
            src: src.to_path_buf(),
            dst: "/t".into(),
            optional: false,
        };
        let err = apply(&mut image, &[tree(&file)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot add tree {}: not a directory", file.display())
        );
        let missing = tmp.path().join("missing");
        let err = apply(&mut image, &[tree(&missing)]).unwrap_err();
        assert!(matches!(err, Error::StatFile { .. }), "{err}");
        // A tree cannot replace a file planned at its destination.
        image.add_bytes("t", Vec::new(), 0o644).unwrap();
        let err = apply(&mut image, &[tree(tmp.path())]).unwrap_err();
        assert!(matches!(err, Error::PathConflict { .. }), "{err}");
    }

    #[test]
    fn tree_names_that_are_not_utf8_are_refused() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let tmp = TempDir::new("content-tree-utf8");
        let bad = tmp.path().join("t").join(OsStr::from_bytes(b"caf\xe9"));
        fs::create_dir_all(bad.parent().unwrap()).unwrap();
        fs::write(&bad, b"").unwrap();
        let mut image = Image::new(0);
        let err = add_tree(&mut image, &tmp.path().join("t"), "t").unwrap_err();
        assert!(
            matches!(&err, Error::NonUtf8Path { path } if *path == bad),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with(": the name is not UTF-8 (image paths are UTF-8)")
        );
    }

    #[test]
    fn fifos_and_sockets_are_refused_for_now() {
        let tmp = TempDir::new("content-tree-fifo");
        fs::create_dir(tmp.path().join("t")).unwrap();
        let socket = tmp.path().join("t/sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let mut image = Image::new(0);
        let err = add_tree(&mut image, &tmp.path().join("t"), "t").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot add {} to the image: it is a socket (only files, directories, \
                 symlinks and device nodes can be packed)",
                socket.display()
            )
        );
    }

    #[test]
    fn device_nodes_of_a_tree_keep_their_numbers() {
        // /dev/null is char 1:3 on every Linux (devices.txt). Only root
        // can mknod one into a test tree, so take the leaf step on
        // /dev/null itself.
        let metadata = fs::symlink_metadata("/dev/null").unwrap();
        let mut image = Image::new(0);
        add_tree_leaf(&mut image, "dev/null", Path::new("/dev/null"), &metadata).unwrap();
        assert_eq!(
            entry(&image, "dev/null"),
            Some(&Entry::Nod {
                kind: NodKind::Char,
                major: 1,
                minor: 3,
                mode: metadata.mode() & PERMISSION_BITS
            })
        );
    }

    #[test]
    fn a_directory_met_twice_is_a_loop() {
        // Only bind mounts can make a directory loop, and tests cannot
        // mount: check the bookkeeping the walk uses.
        let mut seen = SeenDirs::default();
        seen.enter(1, 100, Path::new("/t")).unwrap();
        seen.enter(1, 101, Path::new("/t/a")).unwrap();
        // Same inode on another device is another directory.
        seen.enter(2, 100, Path::new("/t/a/mnt")).unwrap();
        let err = seen.enter(1, 100, Path::new("/t/a/loop")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot walk /t/a/loop: it is /t again (a bind mount loop?)"
        );
    }

    #[test]
    fn unreadable_directories_are_reported_when_walking() {
        let tmp = TempDir::new("content-unreadable-dir");
        tmp.write("t/locked/f", b"");
        let locked = tmp.path().join("t/locked");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let mut image = Image::new(0);
        let result = add_tree(&mut image, &tmp.path().join("t"), "t");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        let err = match result {
            Err(err) => err,
            Ok(()) => {
                // Root (CAP_DAC_OVERRIDE) lists a mode 000 directory: check
                // the walk took it, then the error text on its own.
                assert!(entry(&image, "t/locked/f").is_some());
                Error::ReadDir {
                    path: locked.clone(),
                    source: io::Error::from_raw_os_error(13),
                }
            }
        };
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read directory {}: Permission denied",
                locked.display()
            )
        );
    }

    #[test]
    fn an_unreadable_tree_file_fails_the_write_naming_it() {
        // Files are opened when the image is written. Mode 000 stops any
        // user but root; for root, the file goes away after planning,
        // which fails the same open.
        let tmp = TempDir::new("content-unreadable-file");
        let secret = tmp.write("t/secret", b"data");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
        let mut image = Image::new(0);
        add_tree(&mut image, &tmp.path().join("t"), "t").unwrap();
        let root_reads_it = fs::File::open(&secret).is_ok();
        if root_reads_it {
            fs::remove_file(&secret).unwrap();
        }
        let err = image.write_to(Vec::new()).unwrap_err();
        let why = if root_reads_it {
            "No such file or directory"
        } else {
            "Permission denied"
        };
        assert_eq!(
            err.to_string(),
            format!("cannot open {}: {why}", secret.display())
        );
    }
}
