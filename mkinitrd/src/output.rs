//! Writing the output file atomically: the image goes to a new temporary
//! file beside the destination, which is renamed over the destination only
//! when it is complete. A failed run leaves no partial image and never
//! replaces a good one.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
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
            fs::rename(&temp, path).map_err(|source| Error::RenameOutput {
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
    fn a_directory_in_the_way_is_reported_and_cleaned_up() {
        let tmp = TempDir::new("output-isdir");
        let path = tmp.path().join("image");
        fs::create_dir(&path).unwrap();
        let err = write_atomically(&path, write_bytes(b"x")).unwrap_err();
        assert!(matches!(err, Error::RenameOutput { .. }), "{err}");
        assert_eq!(dir_names(tmp.path()), ["image"]);
    }
}
