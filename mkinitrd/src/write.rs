//! Writing an [`Image`] out as one newc archive, streaming host files
//! straight into it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::cpio;
use crate::error::Error;
use crate::image::{Entry, Image};

/// Size of the output buffer: big enough that headers and small files go
/// out in few writes.
const WRITE_BUF: usize = 128 * 1024;

impl Image {
    /// Writes the archive to `out`, reading host files as it goes, then
    /// flushes `out`.
    ///
    /// Errors: [`Error::OpenFile`], [`Error::ReadFile`] and
    /// [`Error::FileChanged`] naming the host file, [`Error::WriteImage`].
    pub fn write_to<W: Write>(&self, out: W) -> Result<(), Error> {
        let mut writer = cpio::Writer::new(BufWriter::with_capacity(WRITE_BUF, out));
        for (path, entry) in &self.entries {
            write_entry(&mut writer, path, entry, self.mtime)?;
        }
        let buffered = writer.finish()?;
        let mut out = buffered
            .into_inner()
            .map_err(|e| write_error(e.into_error()))?;
        out.flush().map_err(write_error)
    }

}

/// Writes one planned entry.
fn write_entry<W: Write>(
    writer: &mut cpio::Writer<W>,
    path: &str,
    entry: &Entry,
    mtime: u32,
) -> Result<(), Error> {
    match entry {
        Entry::Dir { mode } => writer.write_dir(path, *mode, mtime),
        Entry::File { source, mode, size } => {
            write_host_file(writer, path, source, *mode, *size, mtime)
        }
        Entry::Bytes { data, mode } => writer.write_bytes(path, *mode, mtime, data),
        Entry::Symlink { target } => writer.write_symlink(path, target, mtime),
        Entry::Nod {
            kind,
            major,
            minor,
            mode,
        } => writer.write_nod(path, *kind, *major, *minor, *mode, mtime),
    }
}

/// Streams a host file into the archive; read errors name the host file.
fn write_host_file<W: Write>(
    writer: &mut cpio::Writer<W>,
    path: &str,
    source: &Path,
    mode: u32,
    size: u64,
    mtime: u32,
) -> Result<(), Error> {
    let mut file = File::open(source).map_err(|e| Error::OpenFile {
        path: source.to_path_buf(),
        source: e,
    })?;
    writer
        .write_file(path, mode, mtime, size, &mut file)
        .map_err(|e| match e {
            Error::ReadFile { source: cause, .. } => Error::ReadFile {
                path: source.to_path_buf(),
                source: cause,
            },
            Error::FileChanged { expected, .. } => Error::FileChanged {
                path: source.to_path_buf(),
                expected,
            },
            other => other,
        })
}

/// Wraps an error of the output.
fn write_error(source: std::io::Error) -> Error {
    Error::WriteImage { path: None, source }
}

