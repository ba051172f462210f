//! Writing the image to the path `-o` names, without destroying what is
//! not an image.
//!
//! What is at the path decides how ([`Destination`], looked at before
//! anything is written):
//! - nothing, or a regular file: the image goes to a new temporary file
//!   beside it, which takes the path's place only when it is complete. A
//!   failed or killed run leaves no partial image and never replaces a
//!   good one.
//! - a symlink to a regular file (or to nothing): the same, at the file the
//!   link points to, so the link stays, as editors do. The links are
//!   followed here, one by one, to find that file.
//! - a character device or a FIFO (`/dev/null`, a named pipe), and
//!   whatever a `/proc` link such as `/dev/stdout` or `/dev/fd/N` leads to:
//!   opened and written to as it is, as `cat > PATH` does. Where that is a
//!   regular file (`-o /dev/stdout >> log`), the image is appended.
//! - a directory (with or without a trailing `/`), a block device or a
//!   socket: an error, and nothing is touched.
//!
//! Host file data is copied into the output in the kernel
//! ([`crate::sink::copy_into`]).
//!
//! The temporary file has no name (`O_TMPFILE`) where the filesystem
//! allows it (ext4, XFS, btrfs, tmpfs): the kernel frees it however the
//! process ends, SIGKILL included. Once complete it is linked at the
//! path if nothing is there; otherwise at a hidden name (`.NAME.tmpPID`)
//! that is at once exchanged with the old file, which is then unlinked:
//! the hidden name lasts tens of microseconds. Where there is no
//! `O_TMPFILE` (vfat, NFS), the image is written under the hidden name.
//! Either way the name is removed on an error, and on a signal that ends
//! the process (`signal_cleanup`); only SIGKILL in those
//! microseconds, or during a whole write without `O_TMPFILE`, can leave
//! it.
//!
//! An existing output is replaced by exchanging it with the finished file
//! (`renameat2(RENAME_EXCHANGE)`) and unlinking the old one, not by
//! `rename(2)` over it: on ext4, a rename over an existing file makes the
//! kernel start writeback of the whole new file inside the call
//! (`auto_da_alloc`, ext4(5)), which took 20 ms of a 50 ms run for a 25 MB
//! image; the exchange and unlink take 3 ms, mostly freeing the old file's
//! blocks, which happens after the unlink (see `replace`). Like the missing
//! fsync, this trades durability for speed: after a power cut just after a
//! run, the image may be empty, as after any unsynced write.

use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, File, FileType};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process;

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, MAX_SYMLINKS};
use crate::signal_cleanup;

/// Mode of the finished image, whatever the umask: qemu or a boot loader
/// may read it as another user, and it holds nothing secret.
pub const OUTPUT_MODE: u32 = 0o644;
/// Temporary names tried before giving up (`.NAME.tmpPID`, `.NAME.tmpPID.1`,
/// ...): one process may write several images into one directory at once.
const TEMP_ATTEMPTS: u32 = 100;
/// `f_type` of procfs (`PROC_SUPER_MAGIC`, include/uapi/linux/magic.h),
/// whose fd links name open files rather than paths.
const PROC_SUPER_MAGIC: u64 = 0x9fa0;

/// Where an image goes: a path, and how to write to it, decided from what
/// is there (see the module doc). Deciding changes nothing, so a caller
/// can fail on a directory in the way before doing any work.
#[derive(Debug, PartialEq, Eq)]
pub struct Destination {
    /// The path as given.
    path: PathBuf,
    how: How,
}

/// How the image gets to a [`Destination`].
#[derive(Debug, PartialEq, Eq)]
enum How {
    /// A new file takes the place of `file` (a regular file, or nothing
    /// yet) when complete. `file` is the path given, or the end of the
    /// symlinks it starts.
    Replace {
        /// The file to create or replace.
        file: PathBuf,
    },
    /// The path is opened and written to: a FIFO or a character device,
    /// or what a `/proc` link leads to, appended to when it is a regular
    /// file.
    WriteThrough {
        /// Open with `O_APPEND`.
        append: bool,
    },
}

/// Writes the image to `path` through `write`: [`Destination::of`], then
/// [`Destination::write`].
///
/// # Example
/// ```
/// use std::io::Write;
/// let path = std::env::temp_dir().join(format!("doc-{}.cpio", std::process::id()));
/// mkinitrd::output::write_output(&path, |file| {
///     file.write_all(b"image")
///         .map_err(|source| mkinitrd::Error::WriteImage { path: None, source })
/// })?;
/// assert_eq!(std::fs::read(&path).unwrap(), b"image");
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn write_output(
    path: &Path,
    write: impl FnOnce(&mut File) -> Result<(), Error>,
) -> Result<(), Error> {
    Destination::of(path)?.write(write)
}

impl Destination {
    /// What `path` names, and so how to write to it: a new file in place
    /// of nothing or a regular file (or the regular file at the end of the
    /// symlinks `path` starts); the FIFO or character device itself, or the
    /// open file behind a `/proc` link. Nothing is changed.
    ///
    /// Errors: [`Error::UnsuitableOutput`] for a directory (also `DIR/`),
    /// a block device or a socket; [`Error::BadOutputPath`] for another
    /// path ending in `/`, `.` or `..`; [`Error::StatOutput`] and
    /// [`Error::ReadLink`] when what is there cannot be looked at (`ELOOP`
    /// after 40 symlinks).
    pub fn of(path: &Path) -> Result<Destination, Error> {
        let how = plan(path)?;
        Ok(Destination {
            path: path.to_path_buf(),
            how,
        })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the image through `write`, which gets the file to write
    /// into: a new, empty temporary file in the destination's directory
    /// (unnamed, or created with O_EXCL, so nothing else is overwritten),
    /// or the FIFO or device opened for writing.
    ///
    /// A new file gets mode [`OUTPUT_MODE`] and takes the destination's
    /// place once `write` succeeds; on any error, or a signal that ends the
    /// process, it is removed and the destination is left as it was. There
    /// is no fsync: an image is cheap to rebuild and fast matters more.
    ///
    /// Errors: [`Error::OpenOutput`], [`Error::CreateOutput`],
    /// [`Error::RenameOutput`], and those of `write`, where
    /// [`Error::WriteImage`] gets the path as its destination.
    pub fn write(&self, write: impl FnOnce(&mut File) -> Result<(), Error>) -> Result<(), Error> {
        match &self.how {
            How::Replace { file } => write_atomically(&self.path, file, true, write),
            How::WriteThrough { append } => write_through(&self.path, *append, write),
        }
    }
}

/// How to write to `path`, from what is there.
fn plan(path: &Path) -> Result<How, Error> {
    if split_name(path).is_none() {
        // `DIR/`, `DIR/.`, `..`: a directory, whatever is there.
        return match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Err(unsuitable(path, "a directory")),
            _ => Err(Error::BadOutputPath {
                path: path.to_path_buf(),
            }),
        };
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(How::Replace {
            file: path.to_path_buf(),
        }),
        Err(source) => Err(Error::StatOutput {
            path: path.to_path_buf(),
            source,
        }),
        Ok(meta) if meta.file_type().is_symlink() => follow_symlinks(path),
        Ok(meta) => by_type(path, meta.file_type(), path),
    }
}

/// The destination behind the symlink `path`: the file at the end of the
/// links, unless one of them is a `/proc` link (`/dev/stdout` leads to
/// `/proc/self/fd/1`), which names an open file, not a path to replace.
fn follow_symlinks(path: &Path) -> Result<How, Error> {
    let mut link = path.to_path_buf();
    // Symlinks are followed up to the kernel's limit, then ELOOP.
    for _ in 0..MAX_SYMLINKS {
        let dir = split_name(&link).map_or(Path::new("/"), |(dir, _)| dir);
        if is_on_procfs(dir) {
            return through_proc(path);
        }
        let target = fs::read_link(&link).map_err(|source| Error::ReadLink {
            path: link.clone(),
            source,
        })?;
        // A relative target is relative to the link's directory; joined as
        // text, `..` in it is resolved by the kernel as it would be.
        let next = dir.join(target);
        match fs::symlink_metadata(&next) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && split_name(&next).is_some() => {
                return Ok(How::Replace { file: next });
            }
            Err(source) => {
                return Err(Error::StatOutput {
                    path: path.to_path_buf(),
                    source,
                });
            }
            Ok(meta) if meta.file_type().is_symlink() => link = next,
            Ok(meta) if split_name(&next).is_none() && !meta.is_dir() => {
                return Err(Error::BadOutputPath {
                    path: path.to_path_buf(),
                });
            }
            Ok(meta) => return by_type(path, meta.file_type(), &next),
        }
    }
    Err(Error::StatOutput {
        path: path.to_path_buf(),
        source: io::Error::from(rustix::io::Errno::LOOP),
    })
}

/// The destination for a path that goes through a `/proc` fd link: what
/// the open file is.
fn through_proc(path: &Path) -> Result<How, Error> {
    let meta = fs::metadata(path).map_err(|source| Error::StatOutput {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        return Ok(How::WriteThrough { append: true });
    }
    by_type(path, meta.file_type(), path)
}

/// The destination for a file of type `kind` at `file`, which `path`
/// (as given, for errors) names.
fn by_type(path: &Path, kind: FileType, file: &Path) -> Result<How, Error> {
    if kind.is_file() {
        Ok(How::Replace {
            file: file.to_path_buf(),
        })
    } else if kind.is_char_device() || kind.is_fifo() {
        Ok(How::WriteThrough { append: false })
    } else if kind.is_dir() {
        Err(unsuitable(path, "a directory"))
    } else if kind.is_block_device() {
        Err(unsuitable(path, "a block device"))
    } else if kind.is_socket() {
        Err(unsuitable(path, "a socket"))
    } else {
        Err(unsuitable(path, "not a file"))
    }
}

fn unsuitable(path: &Path, kind: &'static str) -> Error {
    Error::UnsuitableOutput {
        path: path.to_path_buf(),
        kind,
    }
}

/// True when `dir` is on procfs; false when that cannot be told.
fn is_on_procfs(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|stat| u64::try_from(stat.f_type) == Ok(PROC_SUPER_MAGIC))
}

/// `path`'s directory and last name, split as the kernel reads the path
/// (not as [`Path::file_name`], which drops a trailing `/` or `/.`);
/// `None` when the last name is empty, `.` or `..`: such a path names a
/// directory.
fn split_name(path: &Path) -> Option<(&Path, &OsStr)> {
    let bytes = path.as_os_str().as_bytes();
    let (dir, name) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], &bytes[1..]),
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (&b"."[..], bytes),
    };
    if matches!(name, b"" | b"." | b"..") {
        return None;
    }
    Some((Path::new(OsStr::from_bytes(dir)), OsStr::from_bytes(name)))
}

/// Opens the FIFO or device at `path` (`O_APPEND` if `append`) and writes
/// to it.
fn write_through(
    path: &Path,
    append: bool,
    write: impl FnOnce(&mut File) -> Result<(), Error>,
) -> Result<(), Error> {
    // No O_CREAT: the FIFO or device is there. O_NOCTTY: a terminal given
    // as the output does not become ours.
    let mut flags = OFlags::WRONLY | OFlags::NOCTTY | OFlags::CLOEXEC;
    if append {
        flags |= OFlags::APPEND;
    }
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|errno| Error::OpenOutput {
        path: path.to_path_buf(),
        source: errno.into(),
    })?;
    write(&mut File::from(fd)).map_err(|e| name_destination(e, path))
}

/// Writes the regular file `file` atomically: into a temporary file in
/// its directory, which takes `file`'s place once complete. `path` is the
/// output as given, for errors. `unnamed`: use `O_TMPFILE` where it works
/// (false only to test the named fallback).
fn write_atomically(
    path: &Path,
    file: &Path,
    unnamed: bool,
    write: impl FnOnce(&mut File) -> Result<(), Error>,
) -> Result<(), Error> {
    let Some((dir_path, name)) = split_name(file) else {
        return Err(Error::BadOutputPath {
            path: path.to_path_buf(),
        });
    };
    let create_error = |source| Error::CreateOutput {
        path: file.to_path_buf(),
        source,
    };
    // Opened once: every step below happens in this directory, even if
    // its path changes meanwhile.
    let dir = open_dir(dir_path).map_err(create_error)?;
    // On an error below, dropping `temp` removes a named file; an unnamed
    // one goes with its descriptor.
    let mut temp = Temp::create(&dir, name, unnamed).map_err(create_error)?;
    write(&mut temp.file).map_err(|e| name_destination(e, path))?;
    // Set once written: O_TMPFILE and O_CREAT apply the umask.
    rustix::fs::fchmod(&temp.file, Mode::from_raw_mode(OUTPUT_MODE)).map_err(|errno| {
        Error::WriteImage {
            path: Some(path.to_path_buf()),
            source: errno.into(),
        }
    })?;
    temp.put_in_place(name, dir_path, file)
}

/// Opens `dir` to work in (`O_PATH`: no read permission needed).
fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(dir, flags, Mode::empty())?)
}

/// The file an image is written into before it takes the destination's
/// place: unnamed where the filesystem allows, else named.
struct Temp<'d> {
    file: File,
    /// The destination's directory.
    dir: &'d OwnedFd,
    /// The name of a named file, removed on drop and on a signal.
    name: Option<TempName<'d>>,
}

impl<'d> Temp<'d> {
    /// An unnamed file in `dir` if `unnamed` and it can be made (see
    /// [`create_unnamed`]), else `.NAME.tmpPID`, created with O_EXCL so
    /// that nothing else is overwritten.
    fn create(dir: &'d OwnedFd, name: &OsStr, unnamed: bool) -> io::Result<Temp<'d>> {
        if unnamed && let Some(file) = create_unnamed(dir)? {
            return Ok(Temp {
                file,
                dir,
                name: None,
            });
        }
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(OUTPUT_MODE);
        let (temp_name, fd) =
            TempName::create(dir, name, |temp| rustix::fs::openat(dir, temp, flags, mode))?;
        Ok(Temp {
            file: File::from(fd),
            dir,
            name: Some(temp_name),
        })
    }

    /// Gives the finished file the name `name`, in place of what is
    /// there; `dir_path` and `file` are for errors.
    ///
    /// An unnamed file is linked at `name` directly when nothing is there:
    /// it never has another name. Otherwise it is linked at a hidden name
    /// and exchanged with the old file ([`replace`]), and the hidden name
    /// lasts only that long.
    fn put_in_place(self, name: &OsStr, dir_path: &Path, file: &Path) -> Result<(), Error> {
        use rustix::fs::{AtFlags, CWD, linkat};
        let create_error = |errno: rustix::io::Errno| Error::CreateOutput {
            path: file.to_path_buf(),
            source: errno.into(),
        };
        let temp_name = match self.name {
            Some(temp_name) => temp_name,
            None => {
                // The /proc link names the open file; linkat follows it
                // to link the file itself.
                let source = fd_path(&self.file);
                let link = |at: &CStr| linkat(CWD, &source, self.dir, at, AtFlags::SYMLINK_FOLLOW);
                match linkat(CWD, &source, self.dir, name, AtFlags::SYMLINK_FOLLOW) {
                    Ok(()) => return Ok(()),
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(errno) => return Err(create_error(errno)),
                }
                let (temp_name, ()) = TempName::create(self.dir, name, link).map_err(|source| {
                    Error::CreateOutput {
                        path: file.to_path_buf(),
                        source,
                    }
                })?;
                temp_name
            }
        };
        let from = dir_path.join(OsStr::from_bytes(temp_name.name.to_bytes()));
        let old = temp_name
            .settle(|dir, temp| replace(dir, temp, name))
            .map_err(|source| Error::RenameOutput {
                from,
                to: file.to_path_buf(),
                source,
            })?;
        // Freeing the old file's blocks takes milliseconds: done with the
        // names settled and no signal waiting on them (see `replace`).
        drop(old);
        Ok(())
    }
}

/// An unnamed file in `dir` (`open(2)` with `O_TMPFILE`, Linux 3.11),
/// which the kernel frees whenever the process ends before it is linked,
/// even by SIGKILL; `None` where it cannot be made or linked.
///
/// It is linked later through `/proc/self/fd/N` (`linkat(2)` with
/// `AT_SYMLINK_FOLLOW`): `AT_EMPTY_PATH` on the descriptor would need
/// CAP_DAC_READ_SEARCH, the /proc link works for any user. Without /proc,
/// a named file is used.
///
/// # References
/// - [`open(2)`](https://man7.org/linux/man-pages/man2/open.2.html), `O_TMPFILE`
fn create_unnamed(dir: &OwnedFd) -> io::Result<Option<File>> {
    use rustix::io::Errno;
    let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, ".", flags, Mode::from_raw_mode(OUTPUT_MODE)) {
        Ok(fd) => {
            let linkable = rustix::fs::stat(fd_path(&fd)).is_ok();
            Ok(linkable.then(|| File::from(fd)))
        }
        // A filesystem without O_TMPFILE (vfat, NFS), or a kernel before
        // 3.11, which sees only the O_DIRECTORY in it.
        Err(Errno::OPNOTSUPP | Errno::ISDIR) => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

/// `/proc/self/fd/N`, the path of the open file `fd`.
fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// A temporary name (`.NAME.tmpPID`, or `.NAME.tmpPID.N` if that is
/// taken) in the output's directory. Registered for removal if a signal
/// ends the process ([`signal_cleanup`]), and removed on drop unless it
/// was [settled](TempName::settle).
struct TempName<'d> {
    dir: &'d OwnedFd,
    name: CString,
    /// Taken when the name is settled or removed.
    on_signal: Option<signal_cleanup::Registration>,
}

impl<'d> TempName<'d> {
    /// Picks a free temporary name for `name` in `dir`, and gives it to
    /// `create`, which fails with EEXIST when it is taken. The name is
    /// registered as `create` runs (see [`signal_cleanup`]), so no moment
    /// is uncovered; a name holding this process's id that is taken
    /// belongs to this process, or to an earlier one with the same id,
    /// which left it.
    fn create<T>(
        dir: &'d OwnedFd,
        name: &OsStr,
        mut create: impl FnMut(&CStr) -> rustix::io::Result<T>,
    ) -> io::Result<(TempName<'d>, T)> {
        let pid = process::id();
        for attempt in 0..TEMP_ATTEMPTS {
            let mut temp = b".".to_vec();
            temp.extend_from_slice(name.as_bytes());
            temp.extend_from_slice(format!(".tmp{pid}").as_bytes());
            if attempt > 0 {
                temp.extend_from_slice(format!(".{attempt}").as_bytes());
            }
            let temp = CString::new(temp)?;
            match signal_cleanup::create_registered(dir.as_fd(), &temp, &mut create) {
                Ok((on_signal, made)) => {
                    let temp_name = TempName {
                        dir,
                        name: temp,
                        on_signal: Some(on_signal),
                    };
                    return Ok((temp_name, made));
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
        Err(io::Error::from(io::ErrorKind::AlreadyExists))
    }

    /// Runs `settle` with the directory and the name, to rename the name
    /// away or unlink its file, and unregisters it, with no signal cleanup
    /// in between (a signal waits for it); if `settle` fails, the name is
    /// removed too.
    fn settle<T>(mut self, settle: impl FnOnce(&OwnedFd, &CStr) -> io::Result<T>) -> io::Result<T> {
        let on_signal = self.on_signal.take();
        let settle = || {
            let settled = settle(self.dir, &self.name);
            if settled.is_err() {
                remove_name(self.dir, &self.name);
            }
            settled
        };
        match on_signal {
            Some(on_signal) => on_signal.settle(settle),
            // Not reached: taken only here and on drop.
            None => settle(),
        }
    }
}

impl Drop for TempName<'_> {
    fn drop(&mut self) {
        if let Some(on_signal) = self.on_signal.take() {
            on_signal.settle(|| remove_name(self.dir, &self.name));
        }
    }
}

/// Removes the temporary `name` in `dir`. Best effort: the error that
/// stopped the write is the one to report.
fn remove_name(dir: &OwnedFd, name: &CStr) {
    let _ = rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty());
}

/// Puts the file named `temp` at `name` in `dir` in one step, as
/// `rename(2)` does, and removes what was at `name`, if anything.
///
/// The two names are exchanged first (`RENAME_EXCHANGE`, Linux 3.15), then
/// `temp`, now the old file, is unlinked: see the module doc for why. The
/// old file is held open meanwhile and returned, so that its blocks are
/// freed when the caller drops it, after the names are settled, rather
/// than inside the unlink: the temporary name lasts microseconds, not the
/// 3 ms that freeing 25 MB takes on ext4. Where the exchange fails
/// (nothing at `name` yet, a filesystem without it) this is `rename(2)`,
/// which reports any real problem. When the old entry cannot be unlinked
/// (a directory put there since the destination was looked at, which
/// `rename(2)` refuses to replace with a file), the exchange is undone and
/// `rename(2)` gives the error.
///
/// # References
/// - [`rename(2)`](https://man7.org/linux/man-pages/man2/rename.2.html)
fn replace(dir: &OwnedFd, temp: &CStr, name: &OsStr) -> io::Result<Option<OwnedFd>> {
    use rustix::fs::{AtFlags, RenameFlags, openat, renameat, renameat_with, unlinkat};
    let hold = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let old = openat(dir, name, hold, Mode::empty()).ok();
    if renameat_with(dir, temp, dir, name, RenameFlags::EXCHANGE).is_err() {
        renameat(dir, temp, dir, name)?;
        return Ok(None);
    }
    if unlinkat(dir, temp, AtFlags::empty()).is_ok() {
        return Ok(old);
    }
    renameat_with(dir, temp, dir, name, RenameFlags::EXCHANGE)?;
    renameat(dir, temp, dir, name)?;
    Ok(None)
}

/// Gives a write error of the image its destination path.
fn name_destination(error: Error, path: &Path) -> Error {
    match error {
        Error::WriteImage { path: None, source } => Error::WriteImage {
            path: Some(path.to_path_buf()),
            source,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::io::{Read, Write};
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn write_bytes(bytes: &'static [u8]) -> impl FnOnce(&mut File) -> Result<(), Error> {
        move |file| {
            file.write_all(bytes)
                .map_err(|source| Error::WriteImage { path: None, source })
        }
    }

    fn dir_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Makes a device node (as root) or FIFO at `path`, here rather than
    /// using the machine's /dev.
    fn mknod(path: &Path, kind: rustix::fs::FileType, major: u32, minor: u32) {
        let dev = rustix::fs::makedev(major, minor);
        let mode = rustix::fs::Mode::from_raw_mode(0o666);
        rustix::fs::mknodat(rustix::fs::CWD, path, kind, mode, dev).unwrap();
    }

    /// The memory devices null (1:3) and full (1:7),
    /// Documentation/admin-guide/devices.txt.
    fn null_and_full(tmp: &TempDir) -> (PathBuf, PathBuf) {
        use rustix::fs::FileType::CharacterDevice;
        let null = tmp.path().join("null");
        mknod(&null, CharacterDevice, 1, 3);
        let full = tmp.path().join("full");
        mknod(&full, CharacterDevice, 1, 7);
        (null, full)
    }

    fn is_char_device(path: &Path) -> bool {
        fs::symlink_metadata(path)
            .unwrap()
            .file_type()
            .is_char_device()
    }

    #[test]
    fn output_gets_its_content_and_mode_0644() {
        let tmp = TempDir::new("output-ok");
        let path = tmp.path().join("init.cpio");
        write_output(&path, write_bytes(b"new")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        assert_eq!(dir_names(tmp.path()), ["init.cpio"]);
    }

    #[test]
    fn an_existing_output_is_replaced_and_nothing_is_left_behind() {
        let tmp = TempDir::new("output-replace");
        let path = tmp.write("init.cpio", b"old image");
        tmp.write("other", b"other");
        fs::hard_link(&path, tmp.path().join("old-link")).unwrap();
        write_output(&path, write_bytes(b"new")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        // Another name of the old file keeps the old content.
        assert_eq!(fs::read(tmp.path().join("old-link")).unwrap(), b"old image");
        assert_eq!(dir_names(tmp.path()), ["init.cpio", "old-link", "other"]);
    }

    #[test]
    fn the_named_fallback_replaces_and_cleans_up_alike() {
        let tmp = TempDir::new("output-named");
        let path = tmp.path().join("init.cpio");
        write_atomically(&path, &path, false, write_bytes(b"first")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        fs::hard_link(&path, tmp.path().join("old-link")).unwrap();
        write_atomically(&path, &path, false, write_bytes(b"second")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read(tmp.path().join("old-link")).unwrap(), b"first");
        let err = write_atomically(&path, &path, false, |file| {
            file.write_all(b"half").unwrap();
            Err(Error::WriteImage {
                path: None,
                source: io::Error::from_raw_os_error(28),
            })
        })
        .unwrap_err();
        assert!(matches!(err, Error::WriteImage { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(dir_names(tmp.path()), ["init.cpio", "old-link"]);
    }

    #[test]
    fn issue_12_no_name_is_seen_while_the_image_is_written() {
        let tmp = TempDir::new("output-unnamed");
        let path = tmp.write("init.cpio", b"good image");
        let mut seen = Vec::new();
        write_output(&path, |file| {
            file.write_all(b"new image")
                .map_err(|source| Error::WriteImage { path: None, source })?;
            seen = dir_names(tmp.path());
            Ok(())
        })
        .unwrap();
        // The new file had no name: a kill then would have left nothing.
        assert_eq!(seen, ["init.cpio"]);
        assert_eq!(fs::read(&path).unwrap(), b"new image");
        assert_eq!(dir_names(tmp.path()), ["init.cpio"]);
    }

    /// Set to `WHEN:SIGNAL:PATH` for [`signal_child`] to write PATH through
    /// a named temporary file and send itself SIGNAL: `mid` halfway, then
    /// wait to be ended; `ignored` halfway, then finish the write; `after`
    /// once the image is in place, then wait to be ended.
    const SIGNAL_CHILD: &str = "MKINITRD_TEST_SIGNAL_CHILD";

    /// Not a test: run by the issue_12 signal tests below in a child
    /// process (the test binary again), it does nothing otherwise.
    #[test]
    fn signal_child() {
        let Some(spec) = std::env::var_os(SIGNAL_CHILD) else {
            return;
        };
        let spec = spec.into_string().unwrap();
        let mut fields = spec.splitn(3, ':');
        let (when, signal, path) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            Path::new(fields.next().unwrap()),
        );
        // As a user would, from outside: to the process, not a thread.
        let send = || {
            std::process::Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(process::id().to_string())
                .status()
                .unwrap()
        };
        // The signal ends the process, here or a moment later; a minute
        // on, the test has failed.
        let wait_to_be_ended = || {
            std::thread::sleep(std::time::Duration::from_secs(60));
            process::exit(3)
        };
        let written = write_atomically(path, path, false, |file| {
            file.write_all(&[7; 1 << 20]).unwrap();
            match when {
                "mid" => {
                    send();
                    wait_to_be_ended()
                }
                "ignored" => {
                    // kill(2) drops an ignored signal before it returns.
                    send();
                    file.write_all(b"finished").unwrap();
                }
                _ => {}
            }
            Ok(())
        });
        written.unwrap();
        if when == "after" {
            send();
            wait_to_be_ended();
        }
    }

    /// Runs [`signal_child`] on `path` (through `nohup` if `nohup`) and
    /// returns how it ended.
    fn run_signal_child(when: &str, signal: i32, path: &Path, nohup: bool) -> process::ExitStatus {
        let test_binary = std::env::current_exe().unwrap();
        // Every signal at its default first, whatever this test inherited
        // (a suite run under nohup or as a background job ignores some).
        let mut command = process::Command::new("env");
        command.arg("--default-signal");
        if nohup {
            command.arg("nohup");
        }
        command.arg(test_binary);
        command
            .args(["--exact", "output::tests::signal_child", "--test-threads=1"])
            .env(SIGNAL_CHILD, format!("{when}:{signal}:{}", path.display()))
            .stdin(process::Stdio::null())
            .stdout(process::Stdio::null())
            .stderr(process::Stdio::null())
            .status()
            .unwrap()
    }

    #[test]
    fn issue_12_a_named_temp_file_goes_with_a_signal() {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        use std::os::unix::process::ExitStatusExt;
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            let tmp = TempDir::new("output-signal");
            let path = tmp.write("init.cpio", b"good image");
            let status = run_signal_child("mid", signal, &path, false);
            assert_eq!(status.signal(), Some(signal), "{status:?}");
            assert_eq!(dir_names(tmp.path()), ["init.cpio"], "signal {signal}");
            assert_eq!(fs::read(&path).unwrap(), b"good image");
        }
    }

    #[test]
    fn issue_12_a_signal_ignored_at_start_stays_ignored_and_the_write_goes_on() {
        use signal_hook::consts::SIGHUP;
        let tmp = TempDir::new("output-nohup");
        let path = tmp.write("init.cpio", b"good image");
        let status = run_signal_child("ignored", SIGHUP, &path, true);
        assert!(status.success(), "{status:?}");
        assert_eq!(dir_names(tmp.path()), ["init.cpio"]);
        assert_eq!(fs::read(&path).unwrap().len(), (1 << 20) + 8);
    }

    #[test]
    fn issue_12_with_no_name_left_a_signal_ends_the_process_as_by_default() {
        use signal_hook::consts::{SIGTERM, SIGUSR1};
        use std::os::unix::process::ExitStatusExt;
        for signal in [SIGTERM, SIGUSR1] {
            let tmp = TempDir::new("output-after");
            let path = tmp.write("init.cpio", b"good image");
            let status = run_signal_child("after", signal, &path, false);
            assert_eq!(status.signal(), Some(signal), "{status:?}");
            assert_eq!(dir_names(tmp.path()), ["init.cpio"]);
            assert_eq!(fs::read(&path).unwrap().len(), 1 << 20);
        }
    }

    #[test]
    fn issue_12_a_symlink_keeps_and_the_file_it_names_is_replaced() {
        let tmp = TempDir::new("output-symlink");
        let images = tmp.path().join("images");
        let target = tmp.write("images/init.cpio", b"old image");
        // A relative link to a relative link, from another directory.
        symlink("images/init.cpio", tmp.path().join("step")).unwrap();
        fs::create_dir(tmp.path().join("vm")).unwrap();
        let link = tmp.path().join("vm/init.cpio");
        symlink("../step", &link).unwrap();
        write_output(&link, write_bytes(b"via link")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../step"));
        assert_eq!(fs::read(&target).unwrap(), b"via link");
        assert_eq!(dir_names(&images), ["init.cpio"]);
        assert_eq!(dir_names(&tmp.path().join("vm")), ["init.cpio"]);

        // A dangling link: the file it names is created.
        let dangling = tmp.path().join("dangling");
        symlink("images/new.cpio", &dangling).unwrap();
        write_output(&dangling, write_bytes(b"new")).unwrap();
        assert!(fs::symlink_metadata(&dangling).unwrap().is_symlink());
        assert_eq!(fs::read(images.join("new.cpio")).unwrap(), b"new");
    }

    #[test]
    fn issue_12_devices_and_fifos_are_written_through() {
        let tmp = TempDir::new("output-through");
        let (null, full) = null_and_full(&tmp);
        write_output(&null, write_bytes(b"gone")).unwrap();
        assert!(is_char_device(&null));

        let err = write_output(&full, write_bytes(b"no room")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot write the image to {}: No space left on device",
                full.display()
            )
        );
        assert!(is_char_device(&full));

        let fifo = tmp.path().join("fifo");
        mknod(&fifo, rustix::fs::FileType::Fifo, 0, 0);
        // Opened O_RDWR first (at once, fifo(7)), which lets the read end
        // open at once too, and closed after the write, so that the reader
        // ends with what it got even if nothing writes to the FIFO.
        let keep_open = File::options().read(true).write(true).open(&fifo).unwrap();
        let mut read_end = File::open(&fifo).unwrap();
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            read_end.read_to_end(&mut bytes).unwrap();
            bytes
        });
        let written = write_output(&fifo, write_bytes(b"through"));
        drop(keep_open);
        written.unwrap();
        assert_eq!(reader.join().unwrap(), b"through");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(dir_names(tmp.path()), ["fifo", "full", "null"]);
    }

    #[test]
    fn issue_12_a_proc_fd_link_writes_to_the_open_file() {
        let tmp = TempDir::new("output-procfd");
        // As `mkinitrd -o /dev/stdout >> log` would: appended to.
        let log = tmp.write("log", b"head:");
        let open = File::options().append(true).open(&log).unwrap();
        let link = tmp.path().join("stdout");
        symlink(
            format!("/proc/self/fd/{}", rustix::fd::AsRawFd::as_raw_fd(&open)),
            &link,
        )
        .unwrap();
        write_output(&link, write_bytes(b"image")).unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"head:image");
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(dir_names(tmp.path()), ["log", "stdout"]);
    }

    #[test]
    fn issue_12_a_directory_is_refused_and_left_as_it_was() {
        let tmp = TempDir::new("output-isdir");
        let dir = tmp.path().join("image");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("inside"), b"kept").unwrap();
        let shown = dir.display().to_string();
        for given in [shown.clone(), format!("{shown}/"), format!("{shown}/.")] {
            let err = write_output(Path::new(&given), write_bytes(b"x")).unwrap_err();
            let inside = given.trim_end_matches('/');
            assert_eq!(
                err.to_string(),
                format!(
                    "cannot write the image to {given}: it is a directory \
                     (-o takes the image's file name, such as {inside}/init.cpio)"
                )
            );
            assert_eq!(dir_names(tmp.path()), ["image"]);
            assert_eq!(dir_names(&dir), ["inside"]);
            assert_eq!(fs::read(dir.join("inside")).unwrap(), b"kept");
        }
        // Through a symlink too, and an empty directory.
        let link = tmp.path().join("link");
        symlink("image", &link).unwrap();
        let err = write_output(&link, write_bytes(b"x")).unwrap_err();
        assert!(matches!(err, Error::UnsuitableOutput { .. }), "{err}");
        let err = write_output(Path::new("/"), write_bytes(b"x")).unwrap_err();
        assert!(matches!(err, Error::UnsuitableOutput { .. }), "{err}");
        assert_eq!(dir_names(&dir), ["inside"]);
    }

    #[test]
    fn the_destination_is_decided_from_what_is_there() {
        use rustix::fs::FileType::{BlockDevice, CharacterDevice, Fifo};
        let tmp = TempDir::new("output-plan");
        let at = |name: &str| tmp.path().join(name);
        let replace = |path: PathBuf| Ok(How::Replace { file: path });
        let plan = |name: &str| {
            Destination::of(&at(name))
                .map(|destination| destination.how)
                .map_err(|e| e.to_string())
        };
        tmp.write("file", b"");
        fs::create_dir(at("dir")).unwrap();
        mknod(&at("char"), CharacterDevice, 1, 3);
        mknod(&at("block"), BlockDevice, 7, 0);
        mknod(&at("fifo"), Fifo, 0, 0);
        let _socket = std::os::unix::net::UnixListener::bind(at("socket")).unwrap();
        symlink("file", at("to-file")).unwrap();
        symlink("missing", at("to-missing")).unwrap();
        symlink("char", at("to-char")).unwrap();
        symlink("loop", at("loop")).unwrap();

        assert_eq!(plan("absent"), replace(at("absent")));
        assert_eq!(plan("file"), replace(at("file")));
        assert_eq!(plan("to-file"), replace(tmp.path().join("file")));
        assert_eq!(plan("to-missing"), replace(tmp.path().join("missing")));
        let through = Ok(How::WriteThrough { append: false });
        assert_eq!(plan("char"), through);
        assert_eq!(plan("fifo"), through);
        assert_eq!(plan("to-char"), through);
        let shown = |name: &str| at(name).display().to_string();
        let refused = |name: &str, kind: &str| {
            Err(format!(
                "cannot write the image to {}: it is {kind} (-o takes a file, a FIFO or a \
                 character device, or - for stdout)",
                shown(name)
            ))
        };
        assert_eq!(plan("block"), refused("block", "a block device"));
        assert_eq!(plan("socket"), refused("socket", "a socket"));
        assert_eq!(
            plan("loop"),
            Err(format!(
                "cannot stat {}: Too many levels of symbolic links",
                shown("loop")
            ))
        );
        assert_eq!(
            plan("file/"),
            Err(format!(
                "cannot write to {}/: not a file name",
                shown("file")
            ))
        );
        assert_eq!(
            plan("file/x"),
            Err(format!("cannot stat {}/x: Not a directory", shown("file")))
        );
    }

    #[test]
    fn names_split_as_the_kernel_reads_paths() {
        let split = |path: &str| {
            split_name(Path::new(path)).map(|(dir, name)| {
                (
                    dir.to_str().unwrap().to_string(),
                    name.to_str().unwrap().to_string(),
                )
            })
        };
        let pair = |dir: &str, name: &str| Some((dir.to_string(), name.to_string()));
        assert_eq!(split("init.cpio"), pair(".", "init.cpio"));
        assert_eq!(split("/init.cpio"), pair("/", "init.cpio"));
        assert_eq!(split("a/b/init.cpio"), pair("a/b", "init.cpio"));
        for directory in ["a/", "a/.", "a/..", ".", "..", "/", ""] {
            assert_eq!(split(directory), None, "{directory}");
        }
    }

    #[test]
    fn failure_leaves_the_old_file_and_no_temp_file() {
        let tmp = TempDir::new("output-fail");
        let path = tmp.write("init.cpio", b"good image");
        let err = write_output(&path, |file| {
            file.write_all(b"half").unwrap();
            Err(Error::WriteImage {
                path: None,
                source: io::Error::from_raw_os_error(28),
            })
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot write the image to {}: No space left on device",
                path.display()
            )
        );
        assert_eq!(fs::read(&path).unwrap(), b"good image");
        assert_eq!(dir_names(tmp.path()), ["init.cpio"]);
    }

    #[test]
    fn an_existing_temp_name_is_not_touched() {
        let tmp = TempDir::new("output-taken");
        let taken = tmp.write(&format!(".init.cpio.tmp{}", process::id()), b"other");
        let path = tmp.path().join("init.cpio");
        write_output(&path, write_bytes(b"new")).unwrap();
        assert_eq!(fs::read(&taken).unwrap(), b"other");
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn missing_directory_names_the_destination() {
        let tmp = TempDir::new("output-nodir");
        let path = tmp.path().join("no/such/dir/init.cpio");
        let err = write_output(&path, write_bytes(b"x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot create {}: No such file or directory",
                path.display()
            )
        );
        let err = write_output(Path::new("no-such-dir/"), write_bytes(b"x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot write to no-such-dir/: not a file name"
        );
    }
}
