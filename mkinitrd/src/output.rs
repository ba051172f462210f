//! Writing the output file atomically: the image goes to a new temporary
//! file beside the destination, which is renamed over the destination only
//! when it is complete. A failed run leaves no partial image and never
//! replaces a good one. Host file data is copied into the output in the
//! kernel ([`copy_into`]).
//!
//! An existing output is replaced by exchanging it with the finished file
//! (`renameat2(RENAME_EXCHANGE)`) and unlinking the old one, not by
//! `rename(2)` over it: on ext4, a rename over an existing file makes the
//! kernel start writeback of the whole new file inside the call
//! (`auto_da_alloc`, ext4(5)), which took 20 ms of a 50 ms run for a 25 MB
//! image; the exchange and unlink take 3 ms, mostly freeing the old file's
//! blocks. Like the missing fsync, this trades durability for speed: after
//! a power cut just after a run, the image may be empty, as after any
//! unsynced write.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process;

use crate::error::Error;

/// Mode of the finished image, whatever the umask: qemu or a boot loader
/// may read it as another user, and it holds nothing secret.
pub const OUTPUT_MODE: u32 = 0o644;
/// Temporary names tried before giving up (`.NAME.tmpPID`, `.NAME.tmpPID.1`,
/// ...): one process may write several images into one directory at once.
const TEMP_ATTEMPTS: u32 = 100;

/// Writes `path` through `write`, atomically.
///
/// `write` gets a new, empty temporary file in `path`'s directory (created
/// with O_EXCL, so nothing else is overwritten); when it succeeds, the file
/// gets mode [`OUTPUT_MODE`] and is renamed over `path`. On any error the
/// temporary file is removed and `path` is left as it was. There is no
/// fsync: an image is cheap to rebuild and fast matters more.
///
/// Errors: [`Error::BadOutputPath`], [`Error::CreateOutput`],
/// [`Error::RenameOutput`], and those of `write`, where
/// [`Error::WriteImage`] gets `path` as its destination.
///
/// # Example
/// ```
/// use std::io::Write;
/// let path = std::env::temp_dir().join(format!("doc-{}.cpio", std::process::id()));
/// mkinitrd::output::write_atomically(&path, |file| {
///     file.write_all(b"image")
///         .map_err(|source| mkinitrd::Error::WriteImage { path: None, source })
/// })?;
/// assert_eq!(std::fs::read(&path).unwrap(), b"image");
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> Result<(), Error>,
) -> Result<(), Error> {
    let (temp, mut file) = create_temp_beside(path)?;
    let result = write(&mut file)
        .map_err(|e| name_destination(e, path))
        .and_then(|()| {
            file.set_permissions(Permissions::from_mode(OUTPUT_MODE))
                .map_err(|source| Error::WriteImage {
                    path: Some(path.to_path_buf()),
                    source,
                })
        })
        .and_then(|()| {
            replace(&temp, path).map_err(|source| Error::RenameOutput {
                from: temp.clone(),
                to: path.to_path_buf(),
                source,
            })
        });
    drop(file);
    if result.is_err() {
        // Best effort: the error that stopped the write is the one to report.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Puts the file `temp` at `path` in one step, as `rename(2)` does, and
/// removes what was at `path`, if anything.
///
/// The two names are exchanged first (`RENAME_EXCHANGE`, Linux 3.15), then
/// `temp`, now the old file, is unlinked: see the module doc for why. Where
/// the exchange fails (nothing at `path` yet, a filesystem without it) this
/// is `rename(2)`, which reports any real problem. When the old entry
/// cannot be unlinked (a directory, which `rename(2)` refuses to replace
/// with a file), the exchange is undone and `rename(2)` gives the error.
///
/// # References
/// - [`rename(2)`](https://man7.org/linux/man-pages/man2/rename.2.html)
fn replace(temp: &Path, path: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    if renameat_with(CWD, temp, CWD, path, RenameFlags::EXCHANGE).is_err() {
        return fs::rename(temp, path);
    }
    if fs::remove_file(temp).is_ok() {
        return Ok(());
    }
    renameat_with(CWD, temp, CWD, path, RenameFlags::EXCHANGE)?;
    fs::rename(temp, path)
}

/// Creates `.NAME.tmpPID` (or `.NAME.tmpPID.N` if that exists) beside `path`.
fn create_temp_beside(path: &Path) -> Result<(PathBuf, File), Error> {
    let name = path.file_name().ok_or_else(|| Error::BadOutputPath {
        path: path.to_path_buf(),
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let pid = process::id();
    for attempt in 0..TEMP_ATTEMPTS {
        let mut temp_name = OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".tmp{pid}"));
        if attempt > 0 {
            temp_name.push(format!(".{attempt}"));
        }
        let temp = dir.join(temp_name);
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(OUTPUT_MODE)
            .open(&temp);
        match created {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(Error::CreateOutput {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    Err(Error::CreateOutput {
        path: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::AlreadyExists),
    })
}

/// Bytes asked of one `copy_file_range` call: Linux copies at most
/// `MAX_RW_COUNT` (2 GiB - 4 KiB) per call anyway.
const COPY_CHUNK: usize = 1 << 30;

/// Copies `len` bytes from `source` to `dest`, each at and advancing its
/// file position, with `copy_file_range(2)`: the data does not pass
/// through user space, and copy-on-write filesystems (btrfs, XFS) share
/// the extents when the offsets are block-aligned.
///
/// Where the call does not work before anything is copied (a kernel
/// before 4.5, files on two filesystems of different types since 5.19
/// (EXDEV), a seccomp filter, procfs files that report 0 bytes), it falls
/// back to `std::io::copy`, which tries `sendfile(2)` and then a read/write
/// loop. Returns the bytes copied: fewer than `len` when `source` ended
/// first. Unlike `std::io::copy`, it stats neither file.
///
/// # Example
/// ```
/// use std::io::{Seek, Write};
/// let dir = std::env::temp_dir();
/// let from = dir.join(format!("doc-copy-from-{}", std::process::id()));
/// let to = dir.join(format!("doc-copy-to-{}", std::process::id()));
/// std::fs::write(&from, b"0123456789")?;
/// let mut dest = std::fs::File::create(&to)?;
/// dest.write_all(b"head:")?;
/// let copied = mkinitrd::output::copy_into(&dest, &std::fs::File::open(&from)?, 4)?;
/// assert_eq!(copied, 4);
/// assert_eq!(std::fs::read(&to)?, b"head:0123");
/// # std::fs::remove_file(&from)?;
/// # std::fs::remove_file(&to)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// - [`copy_file_range(2)`](https://man7.org/linux/man-pages/man2/copy_file_range.2.html)
pub fn copy_into(dest: &File, source: &File, len: u64) -> io::Result<u64> {
    use rustix::io::Errno;
    let mut copied = 0;
    while copied < len {
        let want = usize::try_from(len - copied).map_or(COPY_CHUNK, |n| n.min(COPY_CHUNK));
        match rustix::fs::copy_file_range(source, None, dest, None, want) {
            // The end of the source, or (before any byte) a file system
            // that reports no data, such as procfs: read() decides which.
            Ok(0) if copied == 0 => break,
            Ok(0) => return Ok(copied),
            Ok(n) => copied += n as u64,
            Err(Errno::INTR) => continue,
            // The call cannot copy between these files at all.
            Err(
                Errno::XDEV
                | Errno::NOSYS
                | Errno::OPNOTSUPP
                | Errno::INVAL
                | Errno::PERM
                | Errno::BADF,
            ) if copied == 0 => break,
            Err(errno) => return Err(errno.into()),
        }
    }
    if copied == len {
        return Ok(copied);
    }
    let mut dest = dest;
    let rest = io::copy(&mut source.take(len - copied), &mut dest)?;
    Ok(copied + rest)
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
    use std::io::Write;

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

    #[test]
    fn output_gets_its_content_and_mode_0644() {
        let tmp = TempDir::new("output-ok");
        let path = tmp.path().join("init.cpio");
        write_atomically(&path, write_bytes(b"new")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        assert_eq!(dir_names(tmp.path()), ["init.cpio"]);
    }

    #[test]
    fn an_existing_output_is_replaced_and_nothing_is_left_behind() {
        let tmp = TempDir::new("output-replace");
        let path = tmp.write("init.cpio", b"old image");
        let other = tmp.write("other", b"other");
        fs::hard_link(&path, tmp.path().join("old-link")).unwrap();
        write_atomically(&path, write_bytes(b"new")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        // Another name of the old file keeps the old content.
        assert_eq!(fs::read(tmp.path().join("old-link")).unwrap(), b"old image");
        assert_eq!(dir_names(tmp.path()), ["init.cpio", "old-link", "other"]);
        // A symlink at the destination is replaced, not followed.
        let link = tmp.path().join("link.cpio");
        std::os::unix::fs::symlink(&other, &link).unwrap();
        write_atomically(&link, write_bytes(b"via link")).unwrap();
        assert!(!fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs::read(&link).unwrap(), b"via link");
        assert_eq!(fs::read(&other).unwrap(), b"other");
    }

    #[test]
    fn failure_leaves_the_old_file_and_no_temp_file() {
        let tmp = TempDir::new("output-fail");
        let path = tmp.write("init.cpio", b"good image");
        let err = write_atomically(&path, |file| {
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
        write_atomically(&path, write_bytes(b"new")).unwrap();
        assert_eq!(fs::read(&taken).unwrap(), b"other");
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn missing_directory_names_the_destination() {
        let tmp = TempDir::new("output-nodir");
        let path = tmp.path().join("no/such/dir/init.cpio");
        let err = write_atomically(&path, write_bytes(b"x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot create {}: No such file or directory",
                path.display()
            )
        );
        let err = write_atomically(Path::new("/"), write_bytes(b"x")).unwrap_err();
        assert_eq!(err.to_string(), "cannot write to /: not a file name");
    }

    #[test]
    fn copy_into_copies_at_both_positions() {
        let tmp = TempDir::new("output-copy");
        let data: Vec<u8> = (0..300_000_u32).map(|i| i.to_le_bytes()[0]).collect();
        let from = tmp.write("from", &data);
        let source = File::open(&from).unwrap();
        let mut dest = File::create(tmp.path().join("to")).unwrap();
        dest.write_all(b"head").unwrap();
        assert_eq!(copy_into(&dest, &source, 100_000).unwrap(), 100_000);
        assert_eq!(copy_into(&dest, &source, 150_000).unwrap(), 150_000);
        // Only 50000 bytes are left in the source.
        assert_eq!(copy_into(&dest, &source, 70_000).unwrap(), 50_000);
        assert_eq!(copy_into(&dest, &source, 1).unwrap(), 0);
        let written = fs::read(tmp.path().join("to")).unwrap();
        assert_eq!(&written[..4], b"head");
        assert!(written[4..] == data[..]);
    }

    #[test]
    fn copy_into_falls_back_where_the_kernel_cannot_copy() {
        // procfs files report no size: copy_file_range copies nothing.
        let tmp = TempDir::new("output-copy-proc");
        let source = File::open("/proc/self/status").unwrap();
        let dest = File::create(tmp.path().join("to")).unwrap();
        let copied = copy_into(&dest, &source, 6).unwrap();
        assert_eq!(copied, 6);
        assert_eq!(fs::read(tmp.path().join("to")).unwrap(), b"Name:\t"[..]);
    }

    #[test]
    fn a_directory_in_the_way_is_reported_and_cleaned_up() {
        let tmp = TempDir::new("output-isdir");
        let path = tmp.path().join("image");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"kept").unwrap();
        let err = write_atomically(&path, write_bytes(b"x")).unwrap_err();
        assert!(matches!(err, Error::RenameOutput { .. }), "{err}");
        assert_eq!(dir_names(tmp.path()), ["image"]);
        assert_eq!(fs::read(path.join("inside")).unwrap(), b"kept");
        // An empty directory too: unlink(2) refuses it as rename(2) does.
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let err = write_atomically(&empty, write_bytes(b"x")).unwrap_err();
        assert!(err.to_string().ends_with("Is a directory"), "{err}");
        assert!(fs::metadata(&empty).unwrap().is_dir());
        assert_eq!(dir_names(tmp.path()), ["empty", "image"]);
    }
}
