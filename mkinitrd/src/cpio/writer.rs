//! The newc writer: [`Writer`], the kernel's `usr/gen_init_cpio.c` as a
//! type, and [`WriteError`]. The running byte offset and next inode number
//! are its fields.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use super::*;
use crate::sink::{FileSink, SinkError, copy_into, read_into};

/// The header fields that vary between entries; uid, gid and the device the
/// file came from are always 0.
struct Header<'a> {
    ino: u32,
    name: &'a str,
    mode: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    rdev_major: u32,
    rdev_minor: u32,
    /// Pad the name so that the data starts at a multiple of [`DATA_ALIGN`].
    align_data: bool,
}

/// Streams a newc archive into `W`, one method per entry type.
///
/// Names are stored without a leading `/`. Every entry is owned by root
/// (uid/gid 0); directories get nlink 2, everything else 1; inode numbers are
/// assigned in order from [`FIRST_INO`]. The caller gives the mtime, so the
/// same calls give the same bytes. Modes are permission bits: the writer adds
/// the file type. Writes go straight to `W`, so give it a `BufWriter`.
///
/// Regular files of [`DATA_ALIGN`] bytes or more get their name padded with
/// NUL bytes (counted in c_namesize) so that their data starts at a multiple
/// of [`DATA_ALIGN`] from the start of the output. The kernel reads the name
/// as a C string (init/initramfs.c, `do_name`) and only requires c_namesize
/// to be at most [`PATH_MAX`] with a NUL as its last byte; GNU cpio reads
/// such names too. When the padding would pass [`PATH_MAX`] the file is left
/// unaligned, as dracut-cpio does. The padding depends only on the offsets,
/// so it is part of the reproducible output.
///
/// # Example
/// ```
/// use mkinitrd::cpio::{read_archive, Writer};
/// let mut w = Writer::new(Vec::new());
/// w.write_dir("dev", 0o755, 0)?;
/// w.write_bytes("etc/hostname", 0o644, 0, b"vm\n")?;
/// let bytes = w.finish()?;
/// assert_eq!(bytes.len() % 512, 0);
/// assert_eq!(read_archive(&bytes)?[1].name, "etc/hostname");
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub struct Writer<W: Write> {
    out: W,
    /// Bytes written so far: padding is relative to the start of the archive.
    offset: u64,
    /// Inode number of the next entry.
    next_ino: u32,
}

impl<W: Write> Writer<W> {
    /// Starts an archive at offset 0.
    pub fn new(out: W) -> Writer<W> {
        Writer::with_offset(out, 0)
    }

    /// Starts an archive `offset` bytes into the output, for an archive
    /// appended to a file: padding and data alignment count from the start
    /// of the file. `offset` must be a multiple of [`ALIGN`], as the kernel
    /// requires of every archive after the first.
    pub fn with_offset(out: W, offset: u64) -> Writer<W> {
        Writer {
            out,
            offset,
            next_ino: FIRST_INO,
        }
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Writes a directory entry.
    pub fn write_dir(&mut self, name: &str, mode: u32, mtime: u32) -> Result<(), WriteError> {
        self.write_entry(name, S_IFDIR | (mode & PERMISSION_BITS), 2, mtime, &[])
    }

    /// Writes a regular file whose `size` bytes come from `data`.
    ///
    /// Exactly `size` bytes are copied. Errors: [`WriteError::TooLarge`] for
    /// files of 4 GiB or more (before anything is written),
    /// [`WriteError::ReadFile`] / [`WriteError::FileChanged`] when `data` fails or
    /// ends early (they name the archive path; [`crate::image::Image`]
    /// replaces it with the host path), [`WriteError::Write`].
    pub fn write_file<R: Read>(
        &mut self,
        name: &str,
        mode: u32,
        mtime: u32,
        size: u64,
        data: &mut R,
    ) -> Result<(), WriteError> {
        self.write_file_header(name, mode, mtime, size)?;
        self.copy_data(name, size, data)?;
        self.write_padding(ALIGN)
    }

    /// Writes a regular file whose content is `data`.
    pub fn write_bytes(
        &mut self,
        name: &str,
        mode: u32,
        mtime: u32,
        data: &[u8],
    ) -> Result<(), WriteError> {
        self.write_entry(name, S_IFREG | (mode & PERMISSION_BITS), 1, mtime, data)
    }

    /// Writes a symbolic link to `target`, mode 0777 as symlinks have.
    ///
    /// The target is the entry's data, without a NUL. Targets that are empty,
    /// hold a NUL or are longer than [`PATH_MAX`] are refused, as the kernel
    /// would refuse them when unpacking.
    pub fn write_symlink(
        &mut self,
        name: &str,
        target: &str,
        mtime: u32,
    ) -> Result<(), WriteError> {
        check_symlink_target(name, target)?;
        self.write_entry(name, S_IFLNK | 0o777, 1, mtime, target.as_bytes())
    }

    /// Writes a device node `kind` `major`:`minor`.
    pub fn write_nod(
        &mut self,
        name: &str,
        kind: NodKind,
        major: u32,
        minor: u32,
        mode: u32,
        mtime: u32,
    ) -> Result<(), WriteError> {
        let ino = self.take_ino();
        self.write_header(&Header {
            ino,
            name,
            mode: kind.type_bits() | (mode & PERMISSION_BITS),
            nlink: 1,
            mtime,
            filesize: 0,
            rdev_major: major,
            rdev_minor: minor,
            align_data: false,
        })
    }

    /// Ends the archive: writes the `TRAILER!!!` entry, pads to
    /// [`BLOCK_SIZE`], and gives back the output (not flushed).
    pub fn finish(mut self) -> Result<W, WriteError> {
        // The trailer is all zeros but for c_nlink and c_namesize, as
        // gen_init_cpio's cpio_trailer writes it.
        self.write_header(&Header {
            ino: 0,
            name: TRAILER,
            mode: 0,
            nlink: 1,
            mtime: 0,
            filesize: 0,
            rdev_major: 0,
            rdev_minor: 0,
            align_data: false,
        })?;
        self.write_padding(BLOCK_SIZE)?;
        Ok(self.out)
    }

    /// Writes the header of a regular file of `size` bytes whose data
    /// follows, aligned to [`DATA_ALIGN`] when it is that big.
    fn write_file_header(
        &mut self,
        name: &str,
        mode: u32,
        mtime: u32,
        size: u64,
    ) -> Result<(), WriteError> {
        let filesize = u32::try_from(size).map_err(|_| WriteError::TooLarge {
            what: name.to_string(),
            size,
        })?;
        let ino = self.take_ino();
        self.write_header(&Header {
            ino,
            name,
            mode: S_IFREG | (mode & PERMISSION_BITS),
            nlink: 1,
            mtime,
            filesize,
            rdev_major: 0,
            rdev_minor: 0,
            align_data: size >= DATA_ALIGN,
        })
    }

    /// Writes a header, then `data` and its padding.
    fn write_entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        mtime: u32,
        data: &[u8],
    ) -> Result<(), WriteError> {
        let filesize = u32::try_from(data.len()).map_err(|_| WriteError::TooLarge {
            what: name.to_string(),
            size: data.len() as u64,
        })?;
        let ino = self.take_ino();
        self.write_header(&Header {
            ino,
            name,
            mode,
            nlink,
            mtime,
            filesize,
            rdev_major: 0,
            rdev_minor: 0,
            align_data: mode & S_IFMT == S_IFREG && data.len() as u64 >= DATA_ALIGN,
        })?;
        self.emit(data)?;
        self.write_padding(ALIGN)
    }

    /// Hands out the next inode number.
    fn take_ino(&mut self) -> u32 {
        let ino = self.next_ino;
        // 4 billion entries do not fit in memory first; wrapping keeps it total.
        self.next_ino = self.next_ino.wrapping_add(1);
        ino
    }

    /// Writes the header, the NUL-terminated name and the padding after them.
    fn write_header(&mut self, h: &Header<'_>) -> Result<(), WriteError> {
        let name = check_name(h.name, h.ino == 0)?;
        let namelen = if h.align_data {
            aligned_name_len(self.offset, name.len())
        } else {
            name.len() + 1
        };
        // At most PATH_MAX (check_name, aligned_name_len), so this fits.
        let namesize = u32::try_from(namelen).map_err(|_| WriteError::TooLarge {
            what: name.to_string(),
            size: name.len() as u64,
        })?;
        let mut header = Vec::with_capacity(HEADER_LEN + name.len() + 4);
        header.extend_from_slice(NEWC_MAGIC); // c_magic
        push_hex(&mut header, h.ino); // c_ino
        push_hex(&mut header, h.mode); // c_mode: file type and permissions
        push_hex(&mut header, 0); // c_uid: root
        push_hex(&mut header, 0); // c_gid: root
        push_hex(&mut header, h.nlink); // c_nlink
        push_hex(&mut header, h.mtime); // c_mtime
        push_hex(&mut header, h.filesize); // c_filesize
        push_hex(&mut header, 0); // c_devmajor: no host device to pair links by
        push_hex(&mut header, 0); // c_devminor
        push_hex(&mut header, h.rdev_major); // c_rdevmajor: device nodes only
        push_hex(&mut header, h.rdev_minor); // c_rdevminor
        push_hex(&mut header, namesize); // c_namesize: with the NUL (and padding)
        push_hex(&mut header, 0); // c_check: only the crc variant uses it
        header.extend_from_slice(name.as_bytes());
        // The NUL, then any NULs that align the data.
        header.resize(HEADER_LEN + namelen, 0);
        // Every header starts aligned, so padding the header and name to a
        // multiple of 4 keeps the data aligned.
        header.resize(header.len().next_multiple_of(4), 0);
        self.emit(&header)
    }

    /// Copies exactly `size` bytes of `data` into the archive.
    fn copy_data<R: Read>(
        &mut self,
        name: &str,
        size: u64,
        data: &mut R,
    ) -> Result<(), WriteError> {
        const COPY_BUF: u64 = 128 * 1024;
        let mut buf = vec![0; usize::try_from(size.min(COPY_BUF)).unwrap_or(0)];
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(WriteError::FileChanged {
                        path: name.into(),
                        expected: size,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(WriteError::ReadFile {
                        path: name.into(),
                        source,
                    });
                }
            };
            self.emit(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Writes zeros up to the next multiple of `align`.
    fn write_padding(&mut self, align: u64) -> Result<(), WriteError> {
        let pad = self.offset.next_multiple_of(align) - self.offset;
        io::copy(&mut io::repeat(0).take(pad), &mut self.out).map_err(write_error)?;
        self.offset += pad;
        Ok(())
    }

    /// Writes `bytes` and advances the offset.
    fn emit(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.out.write_all(bytes).map_err(write_error)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

impl<W: FileSink> Writer<W> {
    /// Writes a regular file whose `size` bytes are the start of `data`,
    /// handed to the output whole ([`FileSink::append_file`]): no copy
    /// through a buffer of the writer's. The bytes written are the same as
    /// [`Writer::write_file`]'s.
    ///
    /// Errors: those of [`Writer::write_file`], and [`WriteError::CopyFile`]
    /// when a copy in the kernel fails (its errno does not say which end).
    pub fn copy_file(
        &mut self,
        name: &str,
        mode: u32,
        mtime: u32,
        size: u64,
        data: &File,
    ) -> Result<(), WriteError> {
        self.write_file_header(name, mode, mtime, size)?;
        let copied = self.out.append_file(data, size).map_err(|e| match e {
            SinkError::Read(source) => WriteError::ReadFile {
                path: name.into(),
                source,
            },
            SinkError::Write(source) => write_error(source),
            SinkError::Copy(source) => WriteError::CopyFile {
                path: name.into(),
                source,
            },
        })?;
        self.offset += copied;
        if copied < size {
            return Err(WriteError::FileChanged {
                path: name.into(),
                expected: size,
            });
        }
        self.write_padding(ALIGN)
    }
}

impl FileSink for BufWriter<&File> {
    /// Files of [`DATA_ALIGN`] bytes or more are copied by
    /// [`copy_into`] (`copy_file_range(2)`, which shares
    /// extents on copy-on-write filesystems; the data is aligned for it),
    /// after the buffer is flushed so that the header lands before the
    /// data. Smaller files are read into the buffer, which costs fewer
    /// syscalls.
    fn append_file(&mut self, file: &File, len: u64) -> Result<u64, SinkError> {
        if len < DATA_ALIGN {
            return read_into(self, file, len);
        }
        self.flush().map_err(SinkError::Write)?;
        copy_into(self.get_ref(), file, len).map_err(SinkError::Copy)
    }
}

/// The c_namesize that makes the data of an entry whose header starts at
/// `offset` begin at a multiple of [`DATA_ALIGN`]: the name, its NUL and
/// NUL padding. Just the name and NUL when that would pass [`PATH_MAX`]:
/// the kernel skips entries with longer names (`do_header`).
fn aligned_name_len(offset: u64, name_len: usize) -> usize {
    let plain = name_len + 1;
    let data_at = offset + HEADER_LEN as u64 + plain as u64;
    let pad = padding(data_at, DATA_ALIGN);
    match usize::try_from(pad) {
        Ok(pad) if plain + pad <= PATH_MAX as usize => plain + pad,
        _ => plain,
    }
}

/// Why writing an archive failed: [`Writer`]'s error. Names are archive
/// names; the caller knows the host file behind one.
#[derive(Debug)]
pub enum WriteError {
    /// A file or name is too big for the 32-bit newc size fields.
    TooLarge {
        /// The archive name.
        what: String,
        /// Its size in bytes.
        size: u64,
    },
    /// A file's data ended before the size given for it.
    FileChanged {
        /// The archive name.
        path: PathBuf,
        /// The size it was to have.
        expected: u64,
    },
    /// A file's data could not be read.
    ReadFile {
        /// The archive name.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel's file-to-file copy of a file's data failed.
    CopyFile {
        /// The archive name.
        path: PathBuf,
        /// The OS error (`copy_file_range(2)` has one for both ends).
        source: io::Error,
    },
    /// The output could not be written.
    Write {
        /// The OS error.
        source: io::Error,
    },
    /// A name or symlink target the kernel would not unpack.
    BadPath {
        /// The archive name.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::TooLarge { what, size } => {
                write!(f, "{what}: {size} bytes is over the newc limit of 4 GiB")
            }
            WriteError::FileChanged { path, expected } => {
                write!(f, "{}: shorter than {expected} bytes", path.display())
            }
            WriteError::ReadFile { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            WriteError::CopyFile { path, source } => {
                write!(f, "cannot copy {}: {source}", path.display())
            }
            WriteError::Write { source } => write!(f, "cannot write: {source}"),
            WriteError::BadPath { path, problem } => write!(f, "{path}: {problem}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Wraps an error of the output.
fn write_error(source: io::Error) -> WriteError {
    WriteError::Write { source }
}

/// Appends `value` as 8 uppercase hex digits, as gen_init_cpio's `%08lX`.
fn push_hex(out: &mut Vec<u8>, value: u32) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for shift in (0..8).rev() {
        out.push(DIGITS[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Strips a leading `/` (as gen_init_cpio does) and refuses names the kernel
/// would not unpack, and the trailer's name unless writing the trailer.
fn check_name(name: &str, is_trailer: bool) -> Result<&str, WriteError> {
    let name = name.trim_start_matches('/');
    let problem = if name.is_empty() {
        Some(PathProblem::Empty)
    } else if name.contains('\0') {
        Some(PathProblem::Nul)
    } else if name.len() >= PATH_MAX as usize {
        Some(PathProblem::TooLong)
    } else if name == TRAILER && !is_trailer {
        Some(PathProblem::Trailer)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(WriteError::BadPath {
            path: name.to_string(),
            problem,
        }),
        None => Ok(name),
    }
}

/// Refuses symlink targets the kernel would not unpack (init/initramfs.c
/// skips symlinks longer than PATH_MAX).
pub(crate) fn check_symlink_target(name: &str, target: &str) -> Result<(), WriteError> {
    let problem = if target.is_empty() {
        PathProblem::EmptyTarget
    } else if target.contains('\0') {
        PathProblem::Nul
    } else if target.len() > PATH_MAX as usize {
        PathProblem::TargetTooLong
    } else {
        return Ok(());
    };
    Err(WriteError::BadPath {
        path: name.to_string(),
        problem,
    })
}
