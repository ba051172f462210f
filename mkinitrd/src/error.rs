//! The one error type of the library: a variant per step that can fail.
//!
//! Each variant holds the object the step worked on (a path, module names, a
//! line number, a byte offset) and the `io::Error` cause where there is one.
//! `Display` writes a single line without the program prefix, in the form
//! `cannot <do what> <to what>: <os error> (<hint>)`; the hint appears only
//! when the cause is recognised. Only `main` prints, with `mkinitrd: ` in
//! front.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::cpio::{self, PathProblem, Problem};
use crate::decompress;
use crate::elf::ElfProblem;
use crate::lz4;

/// Symlinks followed while resolving one path before giving up with
/// `ELOOP`, as the kernel does (`MAXSYMLINKS` in include/linux/namei.h);
/// ldso.rs and output.rs follow as many, and [`Error::ResolvePath`] names
/// the limit.
pub const MAX_SYMLINKS: u32 = 40;

/// Everything that can go wrong while planning, packing or reading an image.
#[derive(Debug)]
pub enum Error {
    /// `modules.dep` could not be read.
    ReadModulesDep {
        /// The `modules.dep` file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `modules.dep` has malformed lines; every bad line is kept.
    ParseModulesDep {
        /// The `modules.dep` file.
        path: PathBuf,
        /// `(line number from 1, what is wrong)` for each bad line.
        problems: Vec<(usize, String)>,
    },
    /// `modules.builtin` exists but could not be read.
    ReadModulesBuiltin {
        /// The `modules.builtin` file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Requested modules that are neither in `modules.dep` nor built in.
    MissingModules {
        /// The module tree that was searched.
        moddir: PathBuf,
        /// The names as the caller gave them, each once, in request order.
        names: Vec<String>,
    },
    /// `modules.dep` makes a module depend on itself.
    DependencyCycle {
        /// The `modules.dep` file.
        path: PathBuf,
        /// The module names along the cycle; the first is repeated at the end.
        chain: Vec<String>,
    },
    /// A text index of the module tree other than `modules.dep` and
    /// `modules.builtin` (`modules.alias`, `modules.softdep`,
    /// `modules.weakdep`, `modules.builtin.modinfo`) exists but could not be
    /// read.
    ReadModuleIndex {
        /// The index file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `modules.alias`, `modules.softdep` or `modules.weakdep` has malformed
    /// lines; every bad line is kept.
    ParseModuleIndex {
        /// The index file.
        path: PathBuf,
        /// `(line number from 1, what is wrong)` for each bad line.
        problems: Vec<(usize, String)>,
    },
    /// A compressed module could not be decompressed.
    DecompressModule {
        /// The module file on the host.
        path: PathBuf,
        /// What is wrong with its data.
        problem: decompress::Problem,
    },
    /// A path inside the image is not acceptable.
    BadPath {
        /// The path as the caller gave it.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// An entry would turn a directory into a non-directory or the reverse.
    PathConflict {
        /// The (normalised) path being added.
        path: String,
        /// The existing entry in the way (the path itself or a parent).
        existing: String,
        /// What the existing entry is ("a directory", "a file", ...).
        existing_kind: &'static str,
        /// Who asked for the existing entry and who for the new one, when
        /// both are known.
        sources: Option<(String, String)>,
    },
    /// An entry the image needs to boot and another one want one path.
    Clash {
        /// The (normalised) path.
        path: String,
        /// Who asked for it first.
        first: String,
        /// Who asked for it again.
        second: String,
    },
    /// A host file could not be stat'ed.
    StatFile {
        /// The host file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A host path given as a file is something else (a directory, a fifo).
    NotRegularFile {
        /// The host path.
        path: PathBuf,
    },
    /// A file or name is too big for the 32-bit newc size fields.
    TooLarge {
        /// The host path or archive name.
        what: String,
        /// Its size in bytes.
        size: u64,
    },
    /// A host file could not be opened for packing.
    OpenFile {
        /// The host file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A host file could not be read while packing.
    ReadFile {
        /// The host file (or the archive name when no host file is known).
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A host file got shorter between planning and packing.
    FileChanged {
        /// The host file (or the archive name when no host file is known).
        path: PathBuf,
        /// The size it had when it was added to the plan.
        expected: u64,
    },
    /// The image could not be written out.
    WriteImage {
        /// The destination file, when the image goes to one.
        path: Option<PathBuf>,
        /// The OS error.
        source: io::Error,
    },
    /// `SOURCE_DATE_EPOCH` is set but is not a usable newc mtime.
    BadSourceDateEpoch {
        /// The value as found (lossily decoded).
        value: String,
    },
    /// A cpio archive being read is malformed.
    BadArchive {
        /// Byte offset in the input where the problem is.
        offset: u64,
        /// What is wrong.
        problem: Problem,
    },
    /// A cpio archive could not be read from its file.
    ReadArchive {
        /// The archive file (`-` for standard input).
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The listing of an archive could not be written.
    WriteListing {
        /// The OS error.
        source: io::Error,
    },
    /// The running kernel's release could not be read.
    ReadKernelRelease {
        /// Normally `/proc/sys/kernel/osrelease`.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// No module tree was found for a kernel version.
    FindModdir {
        /// The kernel version.
        kver: String,
        /// The directories looked at, in order.
        tried: Vec<PathBuf>,
    },
    /// The output path has no file name (`x/`, `..`) and names no
    /// directory either.
    BadOutputPath {
        /// The path as given.
        path: PathBuf,
    },
    /// The output path names what an image cannot be written to: a
    /// directory, a block device, a socket. Nothing is changed.
    UnsuitableOutput {
        /// The path as given.
        path: PathBuf,
        /// What is there ("a directory", "a block device", "a socket").
        kind: &'static str,
    },
    /// What is at the output path, or at the end of its symlinks, could
    /// not be looked at.
    StatOutput {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The FIFO or character device given as the output could not be
    /// opened for writing.
    OpenOutput {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The temporary output file could not be created.
    CreateOutput {
        /// The temporary file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A program given by name is in none of the program directories.
    FindProgram {
        /// The name as given.
        name: String,
        /// The directories looked in, in order.
        tried: Vec<PathBuf>,
    },
    /// The interpreter of a program (`PT_INTERP` or `#!`) does not exist.
    FindInterpreter {
        /// The interpreter path, under the sysroot.
        path: PathBuf,
        /// The program or script naming it.
        needed_by: PathBuf,
    },
    /// A shared library is in none of the directories ld.so would search.
    FindLibrary {
        /// The `DT_NEEDED` name.
        name: String,
        /// The program or library needing it.
        needed_by: PathBuf,
        /// The directories looked in, in order (or the path, for a name
        /// with a `/`).
        tried: Vec<PathBuf>,
    },
    /// A host path could not be followed: a symlink loop, a missing or
    /// unreadable component.
    ResolvePath {
        /// The path, under the sysroot.
        path: PathBuf,
        /// The OS error (`ELOOP` for a loop).
        source: io::Error,
    },
    /// A program or library has malformed ELF headers or dynamic section.
    ParseElf {
        /// The host file.
        path: PathBuf,
        /// What is wrong.
        problem: ElfProblem,
    },
    /// A program cannot run as it is (not ELF, a bad `#!` line).
    BadProgram {
        /// The program, under the sysroot.
        path: PathBuf,
        /// What is wrong.
        problem: ProgramProblem,
    },
    /// The finished temporary file could not be renamed over the output.
    RenameOutput {
        /// The temporary file.
        from: PathBuf,
        /// The destination.
        to: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A command line value (`--file`, `--tree`, `--nod`, `--cpus`, ...)
    /// is malformed.
    BadOption {
        /// The option, with its dashes.
        option: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A manifest could not be read.
    ReadManifest {
        /// The manifest file (`-` for standard input).
        path: PathBuf,
        /// The manifest and line whose `include` named it, if any.
        included_from: Option<(PathBuf, usize)>,
        /// The OS error.
        source: io::Error,
    },
    /// A manifest has malformed lines; every bad line is kept.
    ParseManifest {
        /// The manifest file.
        path: PathBuf,
        /// `(line number from 1, what is wrong)` for each bad line.
        problems: Vec<(usize, String)>,
    },
    /// A manifest includes itself, directly or through others.
    IncludeCycle {
        /// The manifest holding the `include` that closes the cycle.
        path: PathBuf,
        /// Its line number, from 1.
        line: usize,
        /// The manifests along the cycle; the first is repeated at the end.
        chain: Vec<PathBuf>,
    },
    /// A host path given as a tree is not a directory.
    NotADirectory {
        /// The host path.
        path: PathBuf,
    },
    /// A directory of a tree could not be listed.
    ReadDir {
        /// The host directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A symlink of a tree, or one the output path leads through, could
    /// not be read.
    ReadLink {
        /// The host symlink.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A host name or symlink target is not UTF-8, as image paths must be.
    NonUtf8Path {
        /// The host path.
        path: PathBuf,
    },
    /// A host file of a type the image cannot hold (a fifo, a socket).
    UnsupportedFileType {
        /// The host path.
        path: PathBuf,
        /// What it is ("a fifo", "a socket").
        kind: &'static str,
    },
    /// A tree reaches one directory twice (a bind mount of a directory
    /// inside itself, or of one directory at two places).
    DirectoryLoop {
        /// Where the directory was met again.
        path: PathBuf,
        /// Where it was met first.
        first: PathBuf,
    },
    /// A rapido resource is given two different values.
    ResourceConflict {
        /// The entry being added (`rapido-rsc/cpu/4`).
        path: String,
        /// The entry already planned (`rapido-rsc/cpu/2`).
        existing: String,
    },
    /// LZ4 legacy data being read is malformed.
    BadLz4 {
        /// Byte offset in the input of the bad magic, size or block.
        offset: u64,
        /// What is wrong.
        problem: lz4::Problem,
    },
    /// A cpio archive decompressed from an LZ4 segment is malformed.
    BadCompressedArchive {
        /// Byte offset in the input where the LZ4 segment starts.
        segment: u64,
        /// Byte offset in the decompressed data where the problem is.
        offset: u64,
        /// What is wrong.
        problem: Problem,
    },
    /// The kernel's file-to-file copy of a host file into the image failed;
    /// `copy_file_range(2)` reports one errno for both ends.
    CopyFile {
        /// The host file (or the archive name when no host file is known).
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Why a program cannot be run as it is ([`Error::BadProgram`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramProblem {
    /// Neither ELF nor a `#!` script: the kernel would refuse it.
    NotExecutable,
    /// A `#!` line with no interpreter path after it.
    NoInterpreter,
    /// `#!` interpreters chained deeper than the kernel allows.
    TooManyInterpreters {
        /// The kernel's limit (`BINPRM_MAX_RECURSION`).
        limit: usize,
    },
}

impl fmt::Display for ProgramProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramProblem::NotExecutable => f.write_str("not an ELF file or a #! script"),
            ProgramProblem::NoInterpreter => f.write_str("its #! line names no interpreter"),
            ProgramProblem::TooManyInterpreters { limit } => {
                write!(f, "more than {limit} #! interpreters in a row (a loop?)")
            }
        }
    }
}

impl Error {
    /// True when the error is a write to a reader that went away (`mkinitrd
    /// -o - | head`): the caller treats that as success, as `cat` does.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::WriteImage { source, .. } | Error::WriteListing { source } => {
                source.kind() == io::ErrorKind::BrokenPipe
            }
            _ => false,
        }
    }
}

/// An `io::Error` printed without the " (os error N)" suffix std adds, so
/// lines read `No such file or directory` as in the style guide; chrootvm
/// prints its own errors through it too.
///
/// # Example
/// ```
/// use mkinitrd::error::OsText;
/// let e = std::io::Error::from_raw_os_error(2);
/// assert_eq!(OsText(&e).to_string(), "No such file or directory");
/// ```
pub struct OsText<'a>(pub &'a io::Error);

impl fmt::Display for OsText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        match text.rfind(" (os error ") {
            Some(at) if text.ends_with(')') => f.write_str(&text[..at]),
            _ => f.write_str(&text),
        }
    }
}

/// Writes `a`, `a and b`, or `a, b and c` for a list of paths.
fn write_path_list(f: &mut fmt::Formatter<'_>, paths: &[PathBuf]) -> fmt::Result {
    for (i, path) in paths.iter().enumerate() {
        if i > 0 {
            f.write_str(if i + 1 == paths.len() { " and " } else { ", " })?;
        }
        write!(f, "{}", path.display())?;
    }
    Ok(())
}

/// How many further bad lines [`BadLines`] numbers after the first.
const MORE_LINES_SHOWN: usize = 5;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ReadModulesDep { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), OsText(source))?;
                if source.kind() == io::ErrorKind::NotFound {
                    f.write_str(" (is the kernel's module tree installed? pass --moddir)")?;
                }
                Ok(())
            }
            Error::ParseModulesDep { path, problems } => {
                write!(f, "cannot parse {}", BadLines { path, problems })
            }
            Error::ReadModulesBuiltin { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), OsText(source))
            }
            Error::MissingModules { moddir, names } => write!(
                f,
                "cannot find {} {} in {} (not in modules.dep or modules.builtin; \
                 check the names with modinfo)",
                if names.len() == 1 {
                    "module"
                } else {
                    "modules"
                },
                names.join(", "),
                moddir.display()
            ),
            Error::DependencyCycle { path, chain } => write!(
                f,
                "cannot order modules from {}: dependency cycle {} (run depmod to rebuild it)",
                path.display(),
                chain.join(" -> ")
            ),
            Error::ReadModuleIndex { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), OsText(source))
            }
            Error::ParseModuleIndex { path, problems } => {
                write!(f, "cannot parse {}", BadLines { path, problems })
            }
            Error::DecompressModule { path, problem } => {
                write!(f, "cannot decompress {}: {problem}", path.display())
            }
            Error::BadPath { path, problem } => {
                write!(f, "cannot add {path} to the image: {problem}")
            }
            Error::PathConflict {
                path,
                existing,
                existing_kind,
                sources,
            } => {
                write!(
                    f,
                    "cannot add {path} to the image: {existing} is already {existing_kind}"
                )?;
                match sources {
                    Some((first, second)) => write!(f, " ({first}; then {second})"),
                    None => Ok(()),
                }
            }
            Error::Clash {
                path,
                first,
                second,
            } if path == "init" => write!(
                f,
                "cannot add /init for {second}: it belongs to {first} (choose the init with --init PATH)"
            ),
            Error::Clash {
                path,
                first,
                second,
            } => write!(
                f,
                "cannot add /{path} for {second}: it belongs to {first} (the image needs both; choose another path)"
            ),
            Error::StatFile { path, source } => {
                write!(f, "cannot stat {}: {}", path.display(), OsText(source))
            }
            Error::NotRegularFile { path } => write!(
                f,
                "cannot add {} to the image: not a regular file",
                path.display()
            ),
            Error::TooLarge { what, size } => write!(
                f,
                "cannot pack {what}: {size} bytes is over the newc limit of 4 GiB \
                 (its size fields are 32 bits)"
            ),
            Error::OpenFile { path, source } => {
                write!(f, "cannot open {}: {}", path.display(), OsText(source))
            }
            Error::ReadFile { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), OsText(source))
            }
            Error::FileChanged { path, expected } => write!(
                f,
                "cannot pack {}: it got shorter while packing (it had {expected} bytes)",
                path.display()
            ),
            Error::WriteImage { path, source } => match path {
                Some(path) => write!(
                    f,
                    "cannot write the image to {}: {}",
                    path.display(),
                    OsText(source)
                ),
                None => write!(f, "cannot write the image: {}", OsText(source)),
            },
            Error::BadSourceDateEpoch { value } => write!(
                f,
                "cannot use SOURCE_DATE_EPOCH={value}: not a whole number of seconds \
                 from 0 to 4294967295 (newc mtimes are 32 bits)"
            ),
            Error::BadArchive { offset, problem } => {
                write!(f, "cannot read the archive at byte {offset}: {problem}")
            }
            Error::ReadArchive { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), OsText(source))
            }
            Error::WriteListing { source } => {
                write!(f, "cannot write the listing: {}", OsText(source))
            }
            Error::ReadKernelRelease { path, source } => write!(
                f,
                "cannot read {}: {} (is /proc mounted? pass --kver or --moddir)",
                path.display(),
                OsText(source)
            ),
            Error::FindModdir { kver, tried } => {
                write!(
                    f,
                    "cannot find the module tree of kernel {kver} (looked in "
                )?;
                write_path_list(f, tried)?;
                f.write_str("; is the kernel's module tree installed? pass --moddir)")
            }
            Error::BadOutputPath { path } => {
                write!(f, "cannot write to {}: not a file name", path.display())
            }
            Error::UnsuitableOutput { path, kind } => {
                write!(
                    f,
                    "cannot write the image to {}: it is {kind} ",
                    path.display()
                )?;
                if *kind == "a directory" {
                    let dir = path.to_string_lossy();
                    write!(
                        f,
                        "(-o takes the image's file name, such as {}/init.cpio)",
                        dir.trim_end_matches('/')
                    )
                } else {
                    f.write_str("(-o takes a file, a FIFO or a character device, or - for stdout)")
                }
            }
            Error::StatOutput { path, source } => {
                write!(f, "cannot stat {}: {}", path.display(), OsText(source))
            }
            Error::OpenOutput { path, source } => write!(
                f,
                "cannot open {} for writing: {}",
                path.display(),
                OsText(source)
            ),
            Error::CreateOutput { path, source } => {
                write!(f, "cannot create {}: {}", path.display(), OsText(source))
            }
            Error::FindProgram { name, tried } => {
                write!(f, "cannot find program {name} (looked in ")?;
                write_path_list(f, tried)?;
                f.write_str(")")
            }
            Error::FindInterpreter { path, needed_by } => write!(
                f,
                "cannot find interpreter {} needed by {}",
                path.display(),
                needed_by.display()
            ),
            Error::FindLibrary {
                name,
                needed_by,
                tried,
            } => {
                write!(
                    f,
                    "cannot find library {name} needed by {} (",
                    needed_by.display()
                )?;
                if tried.is_empty() {
                    f.write_str("no directory to look in")?;
                } else {
                    f.write_str("looked in ")?;
                    write_path_list(f, tried)?;
                }
                f.write_str(")")
            }
            Error::ResolvePath { path, source } => {
                write!(f, "cannot resolve {}: {}", path.display(), OsText(source))?;
                if source.raw_os_error() == Some(Errno::LOOP.raw_os_error()) {
                    write!(f, " (more than {MAX_SYMLINKS} symbolic links: a loop?)")?;
                }
                Ok(())
            }
            Error::ParseElf { path, problem } => {
                write!(f, "cannot parse {} as ELF: {problem}", path.display())
            }
            Error::BadProgram { path, problem } => {
                write!(f, "cannot add program {}: {problem}", path.display())
            }
            Error::RenameOutput { from, to, source } => write!(
                f,
                "cannot rename {} to {}: {}",
                from.display(),
                to.display(),
                OsText(source)
            ),
            Error::BadOption {
                option,
                value,
                problem,
            } => write!(f, "cannot use {option} {value}: {problem}"),
            Error::BadLz4 { offset, problem } => write!(
                f,
                "cannot decompress the LZ4 data at byte {offset}: {problem}"
            ),
            Error::BadCompressedArchive {
                segment,
                offset,
                problem,
            } => write!(
                f,
                "cannot read the archive in the LZ4 data at byte {segment}, \
                 at byte {offset} of its decompressed content: {problem}"
            ),
            Error::CopyFile { path, source } => write!(
                f,
                "cannot copy {} into the image: {}",
                path.display(),
                OsText(source)
            ),
            Error::ReadManifest {
                path,
                included_from,
                source,
            } => {
                write!(
                    f,
                    "cannot read manifest {}: {}",
                    path.display(),
                    OsText(source)
                )?;
                if let Some((from, line)) = included_from {
                    write!(f, " (included from {}:{line})", from.display())?;
                }
                Ok(())
            }
            Error::ParseManifest { path, problems } => {
                write!(f, "cannot read manifest {}", BadLines { path, problems })
            }
            Error::IncludeCycle { path, line, chain } => {
                write!(
                    f,
                    "cannot read manifest {}:{line}: include cycle ",
                    path.display()
                )?;
                for (i, step) in chain.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" -> ")?;
                    }
                    write!(f, "{}", step.display())?;
                }
                Ok(())
            }
            Error::NotADirectory { path } => {
                write!(f, "cannot add tree {}: not a directory", path.display())
            }
            Error::ReadDir { path, source } => write!(
                f,
                "cannot read directory {}: {}",
                path.display(),
                OsText(source)
            ),
            Error::ReadLink { path, source } => write!(
                f,
                "cannot read symlink {}: {}",
                path.display(),
                OsText(source)
            ),
            Error::NonUtf8Path { path } => write!(
                f,
                "cannot add {} to the image: the name is not UTF-8 (image paths are UTF-8)",
                path.display()
            ),
            Error::UnsupportedFileType { path, kind } => write!(
                f,
                "cannot add {} to the image: it is {kind} (only files, directories, \
                 symlinks and device nodes can be packed)",
                path.display()
            ),
            Error::DirectoryLoop { path, first } => write!(
                f,
                "cannot walk {}: it is {} again (a bind mount loop?)",
                path.display(),
                first.display()
            ),
            Error::ResourceConflict { path, existing } => write!(
                f,
                "cannot add {path} to the image: {existing} is already planned \
                 (give each rapido resource once)"
            ),
        }
    }
}

/// The bad lines of a text file (`modules.dep`, a module index, a
/// manifest), written as `PATH:LINE: WHAT (and N more bad lines: 4, 7)`:
/// the first in full, the numbers of up to [`MORE_LINES_SHOWN`] more, and
/// just `PATH` when there are none.
struct BadLines<'a> {
    path: &'a Path,
    problems: &'a [(usize, String)],
}

impl fmt::Display for BadLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let Some(((line, what), rest)) = self.problems.split_first() else {
            return write!(f, "{path}");
        };
        write!(f, "{path}:{line}: {what}")?;
        if rest.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = rest
            .iter()
            .take(MORE_LINES_SHOWN)
            .map(|(line, _)| line.to_string())
            .collect();
        let more = if rest.len() > MORE_LINES_SHOWN {
            ", ..."
        } else {
            ""
        };
        let plural = if rest.len() == 1 { "" } else { "s" };
        write!(
            f,
            " (and {} more bad line{plural}: {}{more})",
            rest.len(),
            lines.join(", ")
        )
    }
}

impl From<cpio::WriteError> for Error {
    fn from(error: cpio::WriteError) -> Error {
        match error {
            cpio::WriteError::TooLarge { what, size } => Error::TooLarge { what, size },
            cpio::WriteError::FileChanged { path, expected } => {
                Error::FileChanged { path, expected }
            }
            cpio::WriteError::ReadFile { path, source } => Error::ReadFile { path, source },
            cpio::WriteError::CopyFile { path, source } => Error::CopyFile { path, source },
            cpio::WriteError::Write { source } => Error::WriteImage { path: None, source },
            cpio::WriteError::BadPath { path, problem } => Error::BadPath { path, problem },
        }
    }
}

impl From<cpio::ReadError> for Error {
    fn from(error: cpio::ReadError) -> Error {
        Error::BadArchive {
            offset: error.offset,
            problem: error.problem,
        }
    }
}

impl From<lz4::Lz4Error> for Error {
    fn from(error: lz4::Lz4Error) -> Error {
        Error::BadLz4 {
            offset: error.offset,
            problem: error.problem,
        }
    }
}

impl From<lz4::BadThreads> for Error {
    fn from(error: lz4::BadThreads) -> Error {
        Error::BadOption {
            option: lz4::THREADS_ENV,
            problem: error.to_string(),
            value: error.value,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::ReadModulesDep { source, .. }
            | Error::ReadModulesBuiltin { source, .. }
            | Error::ReadModuleIndex { source, .. }
            | Error::StatFile { source, .. }
            | Error::OpenFile { source, .. }
            | Error::ReadFile { source, .. }
            | Error::WriteImage { source, .. }
            | Error::ReadArchive { source, .. }
            | Error::WriteListing { source }
            | Error::ReadKernelRelease { source, .. }
            | Error::CreateOutput { source, .. }
            | Error::StatOutput { source, .. }
            | Error::OpenOutput { source, .. }
            | Error::ResolvePath { source, .. }
            | Error::RenameOutput { source, .. }
            | Error::ReadManifest { source, .. }
            | Error::ReadDir { source, .. }
            | Error::ReadLink { source, .. }
            | Error::CopyFile { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enoent() -> io::Error {
        io::Error::from_raw_os_error(2)
    }

    #[test]
    fn os_error_suffix_is_stripped_and_hint_added() {
        let e = Error::ReadModulesDep {
            path: PathBuf::from("/lib/modules/X/modules.dep"),
            source: enoent(),
        };
        assert_eq!(
            e.to_string(),
            "cannot read /lib/modules/X/modules.dep: No such file or directory \
             (is the kernel's module tree installed? pass --moddir)"
        );
    }

    #[test]
    fn hint_only_for_a_recognised_cause() {
        let e = Error::ReadModulesDep {
            path: PathBuf::from("/m/modules.dep"),
            source: io::Error::from_raw_os_error(13),
        };
        assert_eq!(
            e.to_string(),
            "cannot read /m/modules.dep: Permission denied"
        );
    }

    #[test]
    fn custom_io_errors_print_as_they_are() {
        let e = Error::WriteImage {
            path: None,
            source: io::Error::other("disk on fire"),
        };
        assert_eq!(e.to_string(), "cannot write the image: disk on fire");
    }

    #[test]
    fn missing_modules_are_listed_in_one_line() {
        let e = Error::MissingModules {
            moddir: PathBuf::from("/lib/modules/X"),
            names: vec!["foo".into(), "bar".into()],
        };
        assert_eq!(
            e.to_string(),
            "cannot find modules foo, bar in /lib/modules/X (not in modules.dep or \
             modules.builtin; check the names with modinfo)"
        );
        let one = Error::MissingModules {
            moddir: PathBuf::from("/m"),
            names: vec!["foo".into()],
        };
        assert!(
            one.to_string()
                .starts_with("cannot find module foo in /m (")
        );
    }

    #[test]
    fn parse_errors_name_the_line_and_count_the_rest() {
        let e = Error::ParseModulesDep {
            path: PathBuf::from("/m/modules.dep"),
            problems: vec![(3, "no ':' after the module path".into()), (7, "x".into())],
        };
        assert_eq!(
            e.to_string(),
            "cannot parse /m/modules.dep:3: no ':' after the module path \
             (and 1 more bad line: 7)"
        );
    }

    #[test]
    fn bad_lines_read_the_same_for_every_text_file() {
        let problems: Vec<(usize, String)> = (1..=8).map(|n| (n * 2, format!("bad {n}"))).collect();
        let tail = ":2: bad 1 (and 7 more bad lines: 4, 6, 8, 10, 12, ...)";
        let dep = Error::ParseModulesDep {
            path: PathBuf::from("/m/modules.dep"),
            problems: problems.clone(),
        };
        assert_eq!(
            dep.to_string(),
            format!("cannot parse /m/modules.dep{tail}")
        );
        let index = Error::ParseModuleIndex {
            path: PathBuf::from("/m/modules.alias"),
            problems: problems.clone(),
        };
        assert_eq!(
            index.to_string(),
            format!("cannot parse /m/modules.alias{tail}")
        );
        let manifest = Error::ParseManifest {
            path: PathBuf::from("image.txt"),
            problems,
        };
        assert_eq!(
            manifest.to_string(),
            format!("cannot read manifest image.txt{tail}")
        );
        let none = Error::ParseManifest {
            path: PathBuf::from("image.txt"),
            problems: Vec::new(),
        };
        assert_eq!(none.to_string(), "cannot read manifest image.txt");
    }

    #[test]
    fn format_errors_become_the_library_lines() {
        let too_large = cpio::WriteError::TooLarge {
            what: "big".into(),
            size: 1 << 32,
        };
        assert_eq!(
            Error::from(too_large).to_string(),
            "cannot pack big: 4294967296 bytes is over the newc limit of 4 GiB \
             (its size fields are 32 bits)"
        );
        let lz4 = lz4::Lz4Error {
            offset: 4,
            problem: lz4::Problem::TrailingData,
        };
        assert_eq!(
            Error::from(lz4).to_string(),
            "cannot decompress the LZ4 data at byte 4: non-zero bytes follow the end of the \
             LZ4 data"
        );
        let threads = Error::from(lz4::BadThreads { value: "0".into() });
        assert_eq!(
            threads.to_string(),
            "cannot use MKINITRD_THREADS 0: not a whole number from 1 to 64"
        );
    }

    #[test]
    fn unsuitable_outputs_say_what_is_there_and_what_o_takes() {
        let dir = Error::UnsuitableOutput {
            path: PathBuf::from("images/"),
            kind: "a directory",
        };
        assert_eq!(
            dir.to_string(),
            "cannot write the image to images/: it is a directory \
             (-o takes the image's file name, such as images/init.cpio)"
        );
        let disk = Error::UnsuitableOutput {
            path: PathBuf::from("/dev/vdb"),
            kind: "a block device",
        };
        assert_eq!(
            disk.to_string(),
            "cannot write the image to /dev/vdb: it is a block device \
             (-o takes a file, a FIFO or a character device, or - for stdout)"
        );
    }

    #[test]
    fn broken_pipe_is_recognised_on_writes_only() {
        let pipe = || io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(
            Error::WriteImage {
                path: None,
                source: pipe()
            }
            .is_broken_pipe()
        );
        assert!(Error::WriteListing { source: pipe() }.is_broken_pipe());
        let read = Error::ReadArchive {
            path: PathBuf::from("-"),
            source: pipe(),
        };
        assert!(!read.is_broken_pipe());
    }
}
