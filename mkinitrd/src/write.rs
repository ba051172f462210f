//! Writing an [`Image`] out as one newc archive, plain or LZ4-compressed,
//! streaming host files straight into it.
//!
//! Every path gives the same archive bytes for the same plan: a plain
//! output is the archive, an LZ4 output decompresses to it. Host files are
//! opened once and never stat'ed again (their size comes from the plan).
//! Into a regular file, plain output copies file data with
//! `copy_file_range` ([`crate::cpio::Writer::copy_file`]).

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use crate::cpio;
use crate::error::Error;
use crate::image::{Entry, Image};
use crate::lz4::{Lz4Options, Lz4Writer};

/// Size of the output buffer: big enough that headers and small files go
/// out in few writes.
const WRITE_BUF: usize = 128 * 1024;

/// How the archive is compressed.
///
/// The kernel accepts plain archives, then LZ4 data, but (before Linux 5.12,
/// and without an end mark after) nothing plain after LZ4 data: to combine
/// segments, write plain ones first and the LZ4 one last (see
/// [`crate::lz4`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// A plain newc archive.
    #[default]
    None,
    /// The kernel's legacy LZ4 format, as `lz4 -l` writes (`CONFIG_RD_LZ4`).
    Lz4(Lz4Options),
}

impl Image {
    /// Writes the plain archive to `out`, reading host files as it goes,
    /// then flushes `out`.
    ///
    /// Errors: [`Error::OpenFile`], [`Error::ReadFile`] and
    /// [`Error::FileChanged`] naming the host file, [`Error::WriteImage`].
    pub fn write_to<W: Write>(&self, out: W) -> Result<(), Error> {
        self.write_compressed_to(out, &Compression::None)
    }

    /// Writes the archive to `out` compressed as `compression` says, then
    /// flushes `out`. For a pipe or stdout; [`Image::write_to_file`] is
    /// faster into a file.
    ///
    /// Errors: those of [`Image::write_to`].
    pub fn write_compressed_to<W: Write>(
        &self,
        out: W,
        compression: &Compression,
    ) -> Result<(), Error> {
        match compression {
            Compression::None => {
                let buffered = BufWriter::with_capacity(WRITE_BUF, out);
                let mut writer = cpio::Writer::new(buffered);
                self.write_entries(&mut writer, |writer, path, file, mode, size| {
                    writer.write_file(path, mode, self.mtime, size, &mut &*file)
                })?;
                let mut out = writer
                    .finish()?
                    .into_inner()
                    .map_err(|e| write_error(e.into_error()))?;
                out.flush().map_err(write_error)
            }
            Compression::Lz4(options) => {
                // No BufWriter: the LZ4 writer gathers 8 MiB blocks itself.
                let mut writer = cpio::Writer::new(Lz4Writer::with_options(out, options));
                self.write_entries(&mut writer, |writer, path, file, mode, size| {
                    writer.write_file(path, mode, self.mtime, size, &mut &*file)
                })?;
                // finish flushes the output.
                writer.finish()?.finish().map_err(write_error)?;
                Ok(())
            }
        }
    }

    /// Writes the archive into `file` at its current position, compressed
    /// as `compression` says.
    ///
    /// Plain output copies the data of host files of
    /// [`cpio::DATA_ALIGN`] bytes or more with `copy_file_range(2)`, which
    /// shares extents on copy-on-write filesystems; the data is aligned for
    /// it counting from the start of `file`, so the archive's offsets start
    /// at the current position. The bytes are those
    /// [`Image::write_compressed_to`] writes when `file` starts empty.
    ///
    /// Errors: those of [`Image::write_to`], and [`Error::CopyFile`].
    ///
    /// # Example
    /// ```
    /// use mkinitrd::image::Image;
    /// use mkinitrd::write::Compression;
    /// let mut image = Image::new(0);
    /// image.add_bytes("etc/hostname", b"vm\n".to_vec(), 0o644)?;
    /// let path = std::env::temp_dir().join(format!("doc-write-{}.cpio", std::process::id()));
    /// mkinitrd::output::write_atomically(&path, |file| {
    ///     image.write_to_file(file, &Compression::None)
    /// })?;
    /// let mut plain = Vec::new();
    /// image.write_to(&mut plain)?;
    /// assert_eq!(std::fs::read(&path).unwrap(), plain);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), mkinitrd::Error>(())
    /// ```
    pub fn write_to_file(&self, file: &File, compression: &Compression) -> Result<(), Error> {
        if let Compression::Lz4(_) = compression {
            // LZ4 blocks are written whole, so nothing is gained from a
            // file-specific path.
            return self.write_compressed_to(file, compression);
        }
        let mut position = file;
        let start = position.stream_position().map_err(write_error)?;
        let buffered = BufWriter::with_capacity(WRITE_BUF, file);
        let mut writer = cpio::Writer::with_offset(buffered, start);
        self.write_entries(&mut writer, |writer, path, data, mode, size| {
            writer.copy_file(path, mode, self.mtime, size, data)
        })?;
        let mut out = writer
            .finish()?
            .into_inner()
            .map_err(|e| write_error(e.into_error()))?;
        out.flush().map_err(write_error)
    }

    /// Writes every planned entry, in path order, and no trailer; host
    /// files are opened here and handed to `pack_file(writer, path, file,
    /// mode, size)`.
    fn write_entries<W: Write>(
        &self,
        writer: &mut cpio::Writer<W>,
        mut pack_file: impl FnMut(&mut cpio::Writer<W>, &str, &File, u32, u64) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mtime = self.mtime;
        for (path, entry) in &self.entries {
            match entry {
                Entry::Dir { mode } => writer.write_dir(path, *mode, mtime)?,
                Entry::File { source, mode, size } => {
                    let file = File::open(source).map_err(|e| Error::OpenFile {
                        path: source.to_path_buf(),
                        source: e,
                    })?;
                    pack_file(writer, path, &file, *mode, *size)
                        .map_err(|e| name_host_file(e, source))?;
                }
                Entry::Bytes { data, mode } => writer.write_bytes(path, *mode, mtime, data)?,
                Entry::Symlink { target } => writer.write_symlink(path, target, mtime)?,
                Entry::Nod {
                    kind,
                    major,
                    minor,
                    mode,
                } => writer.write_nod(path, *kind, *major, *minor, *mode, mtime)?,
            }
        }
        Ok(())
    }
}

/// Gives an error about the data of a file (which names the archive path)
/// the host file's path instead.
fn name_host_file(error: Error, source: &Path) -> Error {
    match error {
        Error::ReadFile { source: cause, .. } => Error::ReadFile {
            path: source.to_path_buf(),
            source: cause,
        },
        Error::CopyFile { source: cause, .. } => Error::CopyFile {
            path: source.to_path_buf(),
            source: cause,
        },
        Error::FileChanged { expected, .. } => Error::FileChanged {
            path: source.to_path_buf(),
            expected,
        },
        other => other,
    }
}

/// Wraps an error of the output.
fn write_error(source: std::io::Error) -> Error {
    Error::WriteImage { path: None, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::read_archive;
    use crate::lz4::decompress_legacy;
    use crate::output::write_atomically;
    use crate::testutil::TempDir;
    use std::num::NonZeroUsize;

    /// An image with host files on both sides of the copy threshold.
    fn image(tmp: &TempDir) -> Image {
        let mut image = Image::new(42);
        for (i, size) in [0, 100, 4096, 70_000].into_iter().enumerate() {
            let data: Vec<u8> = (0..size).map(|b: u32| b.to_le_bytes()[i]).collect();
            let host = tmp.write(&format!("host{i}"), &data);
            image.add_file(&format!("f/{size}"), &host, None).unwrap();
        }
        image
            .add_bytes("etc/hostname", b"vm\n".to_vec(), 0o644)
            .unwrap();
        image.add_symlink("bin/sh", "busybox").unwrap();
        image
    }

    fn plain(image: &Image) -> Vec<u8> {
        let mut out = Vec::new();
        image.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn every_path_writes_the_same_archive() {
        let tmp = TempDir::new("write-paths");
        let image = image(&tmp);
        let expected = plain(&image);
        assert_eq!(read_archive(&expected).unwrap().len(), 9);

        let path = tmp.path().join("plain.cpio");
        write_atomically(&path, |file| image.write_to_file(file, &Compression::None)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);

        for threads in [1, 3] {
            let lz4 = Compression::Lz4(Lz4Options {
                threads: NonZeroUsize::new(threads),
            });
            let path = tmp.path().join("image.lz4");
            write_atomically(&path, |file| image.write_to_file(file, &lz4)).unwrap();
            let compressed = std::fs::read(&path).unwrap();
            assert_eq!(decompress_legacy(&compressed).unwrap(), expected);
            let mut streamed = Vec::new();
            image.write_compressed_to(&mut streamed, &lz4).unwrap();
            assert_eq!(streamed, compressed);
        }
    }

    #[test]
    fn data_errors_name_the_host_file() {
        let tmp = TempDir::new("write-errors");
        let host = tmp.write("gone.ko", &[0; 5000]);
        let mut image = Image::new(0);
        image.add_file("m.ko", &host, None).unwrap();
        std::fs::remove_file(&host).unwrap();
        let err = image.write_to(Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot open {}: No such file or directory", host.display())
        );

        let copy = name_host_file(
            Error::CopyFile {
                path: "m.ko".into(),
                source: std::io::Error::from_raw_os_error(5),
            },
            &host,
        );
        assert_eq!(
            copy.to_string(),
            format!(
                "cannot copy {} into the image: Input/output error",
                host.display()
            )
        );
    }
}
