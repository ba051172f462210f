//! newc ("070701") cpio archives, the only format the kernel unpacks into its
//! initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! [`Writer`] is the kernel's `usr/gen_init_cpio.c` as a type: one method per
//! entry type, headers written field by field, and the running byte offset and
//! next inode number kept as fields (gen_init_cpio keeps them global), so two
//! archives can be built in one process. The data of regular files of
//! [`DATA_ALIGN`] bytes or more starts at a multiple of [`DATA_ALIGN`] in the
//! output, as dracut-cpio's `--data-align` does, so that a copy-on-write
//! filesystem can share the file's extents with the host file
//! ([`Writer::copy_file`] into a [`BufWriter`] of a file copies with
//! `copy_file_range`).
//!
//! [`Reader`] is `init/initramfs.c`'s state machine: it is fed input in any
//! chunking, checks every length field before using it, and, like the kernel,
//! accepts archives concatenated after a `TRAILER!!!` with zero padding between
//! them. It keeps only the bytes of the field it is collecting (at most
//! [`PATH_MAX`]), never file data.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::mem;
use std::path::PathBuf;

use crate::sink::{FileSink, SinkError, copy_into, read_into};

/// Magic of a newc header: ASCII, no checksum. The kernel unpacks nothing else.
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Magic of the "crc" variant (`cpio -H crc`): newc plus a checksum in c_check.
pub const CRC_MAGIC: &[u8; 6] = b"070702";
/// Magic of the old portable ASCII variant (`cpio -H odc`).
pub const ODC_MAGIC: &[u8; 6] = b"070707";
/// Name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
/// Length of a newc header: the magic and 13 fields of 8 hex digits.
pub const HEADER_LEN: usize = 110;
/// Headers and data start at multiples of 4 bytes from the start of the input.
pub const ALIGN: u64 = 4;
/// gen_init_cpio pads a finished archive to 512 bytes, the classic cpio block.
pub const BLOCK_SIZE: u64 = 512;
/// The kernel refuses names and symlink targets longer than PATH_MAX
/// (include/uapi/linux/limits.h); for names the count includes the NUL.
pub const PATH_MAX: u32 = 4096;
/// First inode number a [`Writer`] hands out; gen_init_cpio starts at 721 too.
pub const FIRST_INO: u32 = 721;
/// The data of regular files of at least this many bytes starts at a multiple
/// of it: the page and filesystem block size, so copy-on-write filesystems
/// can share extents between the host file and the image (`copy_file_range`
/// reflinks only whole, aligned blocks). Smaller files are not padded, which
/// keeps small images small.
pub const DATA_ALIGN: u64 = 4096;

/// Mask of the file type bits of c_mode (include/uapi/linux/stat.h).
pub const S_IFMT: u32 = 0o170_000;
/// File type: socket.
pub const S_IFSOCK: u32 = 0o140_000;
/// File type: symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// File type: regular file.
pub const S_IFREG: u32 = 0o100_000;
/// File type: block device.
pub const S_IFBLK: u32 = 0o060_000;
/// File type: directory.
pub const S_IFDIR: u32 = 0o040_000;
/// File type: character device.
pub const S_IFCHR: u32 = 0o020_000;
/// File type: fifo.
pub const S_IFIFO: u32 = 0o010_000;
/// Permission bits of c_mode, with setuid, setgid and sticky.
pub const PERMISSION_BITS: u32 = 0o7777;

/// Names of the 13 header fields after the magic, in order.
const FIELD_NAMES: [&str; 13] = [
    "c_ino",
    "c_mode",
    "c_uid",
    "c_gid",
    "c_nlink",
    "c_mtime",
    "c_filesize",
    "c_devmajor",
    "c_devminor",
    "c_rdevmajor",
    "c_rdevminor",
    "c_namesize",
    "c_check",
];

/// Which kind of device node an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodKind {
    /// Character device (`c`), like /dev/console.
    Char,
    /// Block device (`b`), like /dev/vda.
    Block,
}

impl NodKind {
    /// The c_mode file type bits of this kind.
    pub fn type_bits(self) -> u32 {
        match self {
            NodKind::Char => S_IFCHR,
            NodKind::Block => S_IFBLK,
        }
    }
}

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

/// Why a path cannot be used in the image (an archive name, or the image
/// model's paths, which [`crate::image`] normalises).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathProblem {
    /// Nothing is left after normalising (`""`, `/`, `./`).
    Empty,
    /// A `..` component, which could point outside the image.
    DotDot,
    /// A NUL byte, which ends a name in the archive.
    Nul,
    /// Longer than the kernel accepts ([`PATH_MAX`] with its NUL).
    TooLong,
    /// The name that ends a cpio archive.
    Trailer,
    /// An empty symlink target.
    EmptyTarget,
    /// A symlink target longer than [`PATH_MAX`].
    TargetTooLong,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Empty => "the path is empty or names the image root",
            PathProblem::DotDot => "the path has a \"..\" component (paths stay inside the image)",
            PathProblem::Nul => "it holds a NUL byte",
            PathProblem::TooLong => "the path is longer than PATH_MAX (4096)",
            PathProblem::Trailer => "TRAILER!!! is the name that ends a cpio archive",
            PathProblem::EmptyTarget => "the symlink target is empty",
            PathProblem::TargetTooLong => "the symlink target is longer than PATH_MAX (4096)",
        })
    }
}

/// Why reading an archive failed: [`Reader`]'s error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    /// Byte offset in the input where the problem is.
    pub offset: u64,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.problem)
    }
}

impl std::error::Error for ReadError {}

/// One entry of an archive, as read back by [`Reader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Byte offset of the entry's header in the input.
    pub offset: u64,
    /// Byte offset of the entry's data in the input: after the header, the
    /// name (with any NUL padding counted in c_namesize) and padding to 4.
    pub data_offset: u64,
    /// The name, up to its NUL; bytes that are not UTF-8 become U+FFFD.
    pub name: String,
    /// c_ino.
    pub ino: u32,
    /// c_mode: file type ([`S_IFMT`] bits) and permissions.
    pub mode: u32,
    /// c_uid.
    pub uid: u32,
    /// c_gid.
    pub gid: u32,
    /// c_nlink.
    pub nlink: u32,
    /// c_mtime, seconds since the epoch.
    pub mtime: u32,
    /// c_filesize: bytes of data.
    pub size: u32,
    /// c_devmajor: the device the file came from.
    pub dev_major: u32,
    /// c_devminor.
    pub dev_minor: u32,
    /// c_rdevmajor: for device nodes.
    pub rdev_major: u32,
    /// c_rdevminor.
    pub rdev_minor: u32,
    /// For symlinks, the target (the entry's data), else `None`.
    pub symlink_target: Option<String>,
}

impl Entry {
    /// The file type bits of the mode ([`S_IFDIR`], [`S_IFREG`], ...).
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
}

/// What is wrong with an archive being read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The header does not start with [`NEWC_MAGIC`]; holds the bytes found.
    BadMagic([u8; 6]),
    /// A header field is not 8 hex digits; holds the field's name.
    BadField(&'static str),
    /// c_namesize is 0 or over [`PATH_MAX`].
    BadNameSize(u32),
    /// The name's last byte is not a NUL.
    NameNotTerminated,
    /// A symlink's c_filesize is over [`PATH_MAX`].
    SymlinkTooLong(u32),
    /// After a trailer, a non-zero byte at an offset that is not a multiple
    /// of 4.
    BrokenPadding,
    /// The input ends in the middle of something; holds what.
    Truncated(String),
    /// The input ends between entries, without a `TRAILER!!!`.
    NoTrailer,
    /// The input is empty or all zeros.
    Empty,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::BadMagic(magic) => write!(
                f,
                "bad magic \"{}\" ({})",
                magic.escape_ascii(),
                describe_magic(magic)
            ),
            Problem::BadField(field) => write!(f, "{field} is not 8 hex digits"),
            Problem::BadNameSize(size) => {
                write!(f, "c_namesize {size} is out of range (1 to {PATH_MAX})")
            }
            Problem::NameNotTerminated => f.write_str("the name does not end with a NUL byte"),
            Problem::SymlinkTooLong(size) => write!(
                f,
                "symlink target of {size} bytes is longer than PATH_MAX ({PATH_MAX})"
            ),
            Problem::BrokenPadding => {
                f.write_str("an archive after a TRAILER!!! does not start at a multiple of 4 bytes")
            }
            Problem::Truncated(what) => write!(f, "the input ends inside {what}"),
            Problem::NoTrailer => f.write_str("the input ends without a TRAILER!!! entry"),
            Problem::Empty => f.write_str("the input holds no cpio archive"),
        }
    }
}

/// Says what a header that is not newc probably is, so the user knows how
/// to fix it (init/initramfs.c says "use -H newc option" for odc).
fn describe_magic(magic: &[u8; 6]) -> &'static str {
    match magic {
        m if m == ODC_MAGIC => {
            "this is an odc (old portable) cpio archive, not newc; repack it with cpio -H newc"
        }
        m if m == CRC_MAGIC => {
            "this is a crc cpio archive (newc with checksums), which the kernel does not \
             unpack; repack it with cpio -H newc"
        }
        // 070707 octal as a 16-bit word, little or big endian.
        [0xc7, 0x71, ..] | [0x71, 0xc7, ..] => {
            "this is an old binary cpio archive, not newc; repack it with cpio -H newc"
        }
        [0x1f, 0x8b, ..] => "this is gzip data; decompress it first",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "this is zstd data; decompress it first",
        [0xfd, b'7', b'z', b'X', b'Z', 0] => "this is xz data; decompress it first",
        [0x02, 0x21, 0x4c, 0x18, ..] => "this is LZ4 legacy data; decompress it first",
        [b'B', b'Z', b'h', ..] => "this is bzip2 data; decompress it first",
        [0x89, b'L', b'Z', b'O', ..] => "this is lzop data; decompress it first",
        [0x5d, 0, 0, ..] => "this is lzma data; decompress it first",
        _ => "not a newc cpio archive",
    }
}

/// The numeric header fields, in [`FIELD_NAMES`] order.
struct Fields([u32; 13]);

impl Fields {
    fn mode(&self) -> u32 {
        self.0[1]
    }
    fn filesize(&self) -> u32 {
        self.0[6]
    }
    fn namesize(&self) -> u32 {
        self.0[11]
    }
}

/// What a [`Reader::step`] left to do.
enum Step {
    /// Step again.
    Continue,
    /// The input is used up.
    NeedInput,
    /// Stopped before a byte that starts something other than a newc archive.
    Foreign,
}

/// Where the reader is in the input.
enum State {
    /// Before an archive or after a `TRAILER!!!`: zero bytes are skipped.
    Gap,
    /// Collecting the header that starts at `start` into `buf`.
    Header { start: u64 },
    /// Collecting c_namesize bytes of name into `buf`.
    Name { start: u64, fields: Fields },
    /// Skipping `left` bytes of padding after the name of `entry`.
    NamePad { left: u64, entry: Entry },
    /// Reading `left` bytes of data; a symlink's are collected into `buf`
    /// and its entry reported when they are complete.
    Data {
        left: u64,
        name: String,
        symlink: Option<Entry>,
    },
    /// Skipping `left` bytes of padding after the data.
    DataPad { left: u64 },
}

/// Reads newc archives from input fed in chunks of any size.
///
/// Entries are reported to the caller's closure as soon as their header and
/// name (and, for symlinks, target) are read; the trailer is not reported.
/// The first error stops the reader: later calls return it again.
///
/// # Example
/// ```
/// use mkinitrd::cpio::{Reader, Writer};
/// let mut w = Writer::new(Vec::new());
/// w.write_symlink("bin/sh", "busybox", 0)?;
/// let bytes = w.finish()?;
///
/// let mut reader = Reader::new();
/// let mut names = Vec::new();
/// for chunk in bytes.chunks(7) {
///     reader.feed(chunk, |e| names.push((e.name, e.symlink_target)))?;
/// }
/// reader.finish()?;
/// assert_eq!(names, [("bin/sh".to_string(), Some("busybox".to_string()))]);
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub struct Reader {
    state: State,
    /// Bytes consumed so far.
    offset: u64,
    /// The header, name or symlink target being collected.
    buf: Vec<u8>,
    /// Trailers seen.
    archives: u64,
    /// The first error, returned again by every later call.
    failed: Option<(u64, Problem)>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    /// A reader at the start of the input.
    pub fn new() -> Reader {
        Reader::at_offset(0)
    }

    /// A reader whose input starts `offset` bytes into a larger one (a
    /// segment of an image after others): offsets in entries and errors, and
    /// the 4-byte alignment the kernel checks, count from the larger start.
    pub fn at_offset(offset: u64) -> Reader {
        Reader {
            state: State::Gap,
            offset,
            buf: Vec::new(),
            archives: 0,
            failed: None,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Archives read completely so far (trailers seen).
    pub fn archives(&self) -> u64 {
        self.archives
    }

    /// Reads `chunk`, calling `on_entry` for each entry completed in it.
    ///
    /// Errors: [`ReadError`] with the offset of the bad header (or
    /// byte) and what is wrong with it.
    pub fn feed(&mut self, chunk: &[u8], mut on_entry: impl FnMut(Entry)) -> Result<(), ReadError> {
        self.feed_until(chunk, false, &mut on_entry).map(|_| ())
    }

    /// Like [`Reader::feed`], but stops before a byte that follows a
    /// `TRAILER!!!` and its zero padding and is not `'0'`: where the kernel's
    /// `unpack_to_rootfs` (init/initramfs.c) leaves a plain archive to look
    /// for a compressed one. Returns the bytes consumed: `chunk.len()` unless
    /// it stopped, and the reader then stays before that byte.
    ///
    /// As in the kernel, that byte must be at a multiple of 4 bytes
    /// ([`Problem::BrokenPadding`] otherwise).
    pub fn feed_segment(
        &mut self,
        chunk: &[u8],
        mut on_entry: impl FnMut(Entry),
    ) -> Result<usize, ReadError> {
        self.feed_until(chunk, true, &mut on_entry)
    }

    /// Steps through `chunk`; with `stop_at_foreign`, stops as
    /// [`Reader::feed_segment`] says. Returns the bytes consumed.
    fn feed_until(
        &mut self,
        chunk: &[u8],
        stop_at_foreign: bool,
        on_entry: &mut dyn FnMut(Entry),
    ) -> Result<usize, ReadError> {
        self.check_failed()?;
        let mut input = chunk;
        loop {
            match self.step(&mut input, stop_at_foreign, on_entry) {
                Ok(Step::Continue) => {}
                Ok(Step::NeedInput | Step::Foreign) => return Ok(chunk.len() - input.len()),
                Err((offset, problem)) => {
                    self.failed = Some((offset, problem.clone()));
                    return Err(ReadError { offset, problem });
                }
            }
        }
    }

    /// Ends the input: an error unless it ended after a complete archive.
    pub fn finish(self) -> Result<(), ReadError> {
        self.check_failed()?;
        let problem = match &self.state {
            State::Gap if self.archives > 0 => return Ok(()),
            State::Gap => Problem::Empty,
            State::Header { .. } if self.buf.is_empty() => Problem::NoTrailer,
            State::Header { .. } => Problem::Truncated("a header".into()),
            State::Name { .. } => Problem::Truncated("a name".into()),
            State::NamePad { entry, .. } => {
                Problem::Truncated(format!("the padding after the name {}", entry.name))
            }
            State::Data { name, .. } => Problem::Truncated(format!("the data of {name}")),
            State::DataPad { .. } => Problem::Truncated("the padding after an entry".into()),
        };
        Err(ReadError {
            offset: self.offset,
            problem,
        })
    }

    /// Returns the first error again, if there was one.
    fn check_failed(&self) -> Result<(), ReadError> {
        match &self.failed {
            Some((offset, problem)) => Err(ReadError {
                offset: *offset,
                problem: problem.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Advances by one state transition or by as much input as the state
    /// takes.
    fn step(
        &mut self,
        input: &mut &[u8],
        stop_at_foreign: bool,
        on_entry: &mut dyn FnMut(Entry),
    ) -> Result<Step, (u64, Problem)> {
        match mem::replace(&mut self.state, State::Gap) {
            State::Gap => {
                // init/initramfs.c do_reset: zeros between archives are
                // skipped, and the next one must start aligned.
                let zeros = input.iter().take_while(|&&b| b == 0).count();
                self.skip(input, zeros);
                let Some(&next) = input.first() else {
                    return Ok(Step::NeedInput);
                };
                if !self.offset.is_multiple_of(ALIGN) {
                    return Err((self.offset, Problem::BrokenPadding));
                }
                // unpack_to_rootfs starts a plain archive only at a '0'.
                if stop_at_foreign && self.archives > 0 && next != NEWC_MAGIC[0] {
                    return Ok(Step::Foreign);
                }
                self.buf.clear();
                self.state = State::Header { start: self.offset };
            }
            State::Header { start } => {
                let done = self.collect(input, HEADER_LEN);
                // Check the magic as soon as it is in, so that a short file
                // of another format still gets the hint.
                if let Some(magic) = self.buf.first_chunk::<6>() {
                    check_magic(magic).map_err(|p| (start, p))?;
                }
                if !done {
                    self.state = State::Header { start };
                    return Ok(Step::NeedInput);
                }
                let fields = parse_fields(&self.buf).map_err(|p| (start, p))?;
                self.buf.clear();
                self.state = State::Name { start, fields };
            }
            State::Name { start, fields } => {
                // Bounded by check_lengths: at most PATH_MAX bytes.
                let namesize = fields.namesize() as usize;
                if !self.collect(input, namesize) {
                    self.state = State::Name { start, fields };
                    return Ok(Step::NeedInput);
                }
                if self.buf.last() != Some(&0) {
                    return Err((start, Problem::NameNotTerminated));
                }
                let end = self.buf.iter().position(|&b| b == 0).unwrap_or(0);
                let name = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.clear();
                if name == TRAILER {
                    // Like do_name: a trailer ends the archive, whatever its
                    // size says, and zero padding may follow.
                    self.archives += 1;
                    self.state = State::Gap;
                } else {
                    let left = padding(self.offset, ALIGN);
                    let entry = make_entry(start, name, &fields);
                    self.state = State::NamePad { left, entry };
                }
            }
            State::NamePad { left, entry } => {
                let left = self.skip_up_to(input, left);
                if left > 0 {
                    self.state = State::NamePad { left, entry };
                    return Ok(Step::NeedInput);
                }
                let size = u64::from(entry.size);
                let name = entry.name.clone();
                let symlink = if entry.file_type() == S_IFLNK {
                    Some(entry)
                } else {
                    on_entry(entry);
                    None
                };
                self.state = State::Data {
                    left: size,
                    name,
                    symlink,
                };
            }
            State::Data {
                left,
                name,
                symlink,
            } => {
                let n = usize::try_from(left).map_or(input.len(), |left| left.min(input.len()));
                if symlink.is_some() {
                    // Bounded by check_lengths: at most PATH_MAX bytes.
                    self.buf.extend_from_slice(&input[..n]);
                }
                self.skip(input, n);
                let left = left - n as u64;
                if left > 0 {
                    self.state = State::Data {
                        left,
                        name,
                        symlink,
                    };
                    return Ok(Step::NeedInput);
                }
                if let Some(mut entry) = symlink {
                    entry.symlink_target = Some(String::from_utf8_lossy(&self.buf).into_owned());
                    self.buf.clear();
                    on_entry(entry);
                }
                self.state = State::DataPad {
                    left: padding(self.offset, ALIGN),
                };
            }
            State::DataPad { left } => {
                let left = self.skip_up_to(input, left);
                if left > 0 {
                    self.state = State::DataPad { left };
                    return Ok(Step::NeedInput);
                }
                self.buf.clear();
                self.state = State::Header { start: self.offset };
            }
        }
        Ok(Step::Continue)
    }

    /// Moves up to `want - buf.len()` bytes of input into `buf`; true when
    /// `buf` holds `want` bytes.
    fn collect(&mut self, input: &mut &[u8], want: usize) -> bool {
        let n = want.saturating_sub(self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        self.skip(input, n);
        self.buf.len() == want
    }

    /// Skips up to `left` bytes of input; returns how many are still left.
    fn skip_up_to(&mut self, input: &mut &[u8], left: u64) -> u64 {
        let n = usize::try_from(left).map_or(input.len(), |left| left.min(input.len()));
        self.skip(input, n);
        left - n as u64
    }

    /// Consumes `n` bytes of input.
    fn skip(&mut self, input: &mut &[u8], n: usize) {
        *input = &input[n..];
        self.offset += n as u64;
    }
}

/// Bytes from `offset` to the next multiple of `align`.
fn padding(offset: u64, align: u64) -> u64 {
    offset.next_multiple_of(align) - offset
}

/// Refuses anything but the newc magic.
fn check_magic(magic: &[u8; 6]) -> Result<(), Problem> {
    if magic == NEWC_MAGIC {
        Ok(())
    } else {
        Err(Problem::BadMagic(*magic))
    }
}

/// Parses the 13 hex fields of a complete header and checks the lengths.
fn parse_fields(header: &[u8]) -> Result<Fields, Problem> {
    let mut values = [0; 13];
    for (i, (value, name)) in values.iter_mut().zip(FIELD_NAMES).enumerate() {
        let at = NEWC_MAGIC.len() + i * 8;
        *value = parse_hex(&header[at..at + 8]).ok_or(Problem::BadField(name))?;
    }
    let fields = Fields(values);
    check_lengths(&fields)?;
    Ok(fields)
}

/// Checks the length fields before anything is collected by them (the
/// kernel's do_header does the same checks).
fn check_lengths(fields: &Fields) -> Result<(), Problem> {
    let namesize = fields.namesize();
    if namesize == 0 || namesize > PATH_MAX {
        return Err(Problem::BadNameSize(namesize));
    }
    if fields.mode() & S_IFMT == S_IFLNK && fields.filesize() > PATH_MAX {
        return Err(Problem::SymlinkTooLong(fields.filesize()));
    }
    Ok(())
}

/// Parses exactly 8 hex digits, either case.
fn parse_hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        Some(value << 4 | nibble)
    })
}

/// Builds the reported entry from the header fields and name.
fn make_entry(offset: u64, name: String, fields: &Fields) -> Entry {
    let [
        ino,
        mode,
        uid,
        gid,
        nlink,
        mtime,
        size,
        dev_major,
        dev_minor,
        rdev_major,
        rdev_minor,
        namesize,
        _check,
    ] = fields.0;
    Entry {
        offset,
        data_offset: (offset + HEADER_LEN as u64 + u64::from(namesize)).next_multiple_of(ALIGN),
        name,
        ino,
        mode,
        uid,
        gid,
        nlink,
        mtime,
        size,
        dev_major,
        dev_minor,
        rdev_major,
        rdev_minor,
        symlink_target: None,
    }
}

/// Reads all entries of `data`, which must end after a complete archive.
pub fn read_archive(data: &[u8]) -> Result<Vec<Entry>, ReadError> {
    let mut reader = Reader::new();
    let mut entries = Vec::new();
    reader.feed(data, |entry| entries.push(entry))?;
    reader.finish()?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive with one entry of each type.
    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        w.write_dir("dev", 0o755, 1000).unwrap();
        w.write_nod("dev/console", NodKind::Char, 5, 1, 0o600, 1000)
            .unwrap();
        let data = b"#!/bin/sh\necho hi\n";
        w.write_file("init", 0o755, 1000, data.len() as u64, &mut &data[..])
            .unwrap();
        w.write_bytes("etc/hostname", 0o644, 1000, b"vm\n").unwrap();
        w.write_symlink("bin/sh", "busybox", 1000).unwrap();
        w.write_dir("tmp", 0o1777, 1000).unwrap();
        w.finish().unwrap()
    }

    /// Reads `data` fed in chunks of `size` bytes.
    fn read_chunked(data: &[u8], size: usize) -> Result<Vec<Entry>, ReadError> {
        let mut reader = Reader::new();
        let mut entries = Vec::new();
        for chunk in data.chunks(size) {
            reader.feed(chunk, |e| entries.push(e))?;
        }
        reader.finish()?;
        Ok(entries)
    }

    fn bad_archive(result: Result<Vec<Entry>, ReadError>) -> (u64, Problem) {
        match result {
            Err(ReadError { offset, problem }) => (offset, problem),
            other => panic!("expected BadArchive, got {other:?}"),
        }
    }

    #[test]
    fn header_is_written_like_gen_init_cpio() {
        let mut w = Writer::new(Vec::new());
        w.write_dir("/dev", 0o755, 0x5f5e100).unwrap();
        let bytes = w.finish().unwrap();
        let expected = concat!(
            "070701",    // c_magic
            "000002D1",  // c_ino: FIRST_INO
            "000041ED",  // c_mode: S_IFDIR | 0755
            "00000000",  // c_uid
            "00000000",  // c_gid
            "00000002",  // c_nlink
            "05F5E100",  // c_mtime
            "00000000",  // c_filesize
            "00000000",  // c_devmajor
            "00000000",  // c_devminor
            "00000000",  // c_rdevmajor
            "00000000",  // c_rdevminor
            "00000004",  // c_namesize
            "00000000",  // c_check
            "dev\0\0\0", // name, NUL, padding to 4
        );
        assert_eq!(&bytes[..expected.len()], expected.as_bytes());
        assert_eq!(bytes.len() as u64 % BLOCK_SIZE, 0);
    }

    #[test]
    fn trailer_is_all_zeros_but_nlink_and_namesize() {
        let bytes = Writer::new(Vec::new()).finish().unwrap();
        let expected = concat!(
            "070701",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "0000000B",
            "00000000",
            "TRAILER!!!\0",
        );
        assert_eq!(&bytes[..expected.len()], expected.as_bytes());
        assert!(bytes[expected.len()..].iter().all(|&b| b == 0));
        assert_eq!(bytes.len(), 512);
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let entries = read_archive(&sample()).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "init",
                "etc/hostname",
                "bin/sh",
                "tmp"
            ]
        );
        let inos: Vec<u32> = entries.iter().map(|e| e.ino).collect();
        assert_eq!(inos, [721, 722, 723, 724, 725, 726]);
        assert!(entries.iter().all(|e| e.uid == 0 && e.gid == 0));
        assert!(entries.iter().all(|e| e.mtime == 1000));
        assert!(entries.iter().all(|e| e.offset % 4 == 0));

        let dev = &entries[0];
        assert_eq!((dev.mode, dev.nlink, dev.size), (S_IFDIR | 0o755, 2, 0));
        let console = &entries[1];
        assert_eq!(console.mode, S_IFCHR | 0o600);
        assert_eq!((console.rdev_major, console.rdev_minor), (5, 1));
        let init = &entries[2];
        assert_eq!((init.mode, init.nlink, init.size), (S_IFREG | 0o755, 1, 18));
        assert_eq!(entries[3].size, 3);
        let sh = &entries[4];
        assert_eq!(sh.mode, S_IFLNK | 0o777);
        assert_eq!(sh.symlink_target.as_deref(), Some("busybox"));
        assert_eq!(sh.size, 7);
        assert_eq!(entries[5].mode, S_IFDIR | 0o1777);
        assert!(
            entries
                .iter()
                .filter(|e| e.name != "bin/sh")
                .all(|e| e.symlink_target.is_none())
        );
    }

    #[test]
    fn any_chunking_gives_the_same_entries() {
        let bytes = sample();
        let whole = read_archive(&bytes).unwrap();
        for size in [1, 2, 3, 4, 5, 7, 110, 111, 512, 4096] {
            assert_eq!(
                read_chunked(&bytes, size).unwrap(),
                whole,
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn chunking_does_not_change_errors() {
        let mut bytes = sample();
        bytes.truncate(300);
        let whole = bad_archive(read_archive(&bytes));
        assert_eq!(bad_archive(read_chunked(&bytes, 1)), whole);
    }

    #[test]
    fn odc_archive_gets_a_hint() {
        let mut bytes = sample();
        bytes[..6].copy_from_slice(ODC_MAGIC);
        let err = read_archive(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "at byte 0: bad magic \"070707\" (this is an odc \
             (old portable) cpio archive, not newc; repack it with cpio -H newc)"
        );
    }

    #[test]
    fn crc_and_compressed_inputs_are_named() {
        let mut crc = sample();
        crc[..6].copy_from_slice(CRC_MAGIC);
        let text = read_archive(&crc).unwrap_err().to_string();
        assert!(text.contains("crc cpio archive"), "{text}");

        // Only 6 bytes: the magic is checked before the header is complete.
        let gzip = [0x1f, 0x8b, 0x08, 0, 0, 0];
        let text = read_archive(&gzip).unwrap_err().to_string();
        assert!(
            text.ends_with("(this is gzip data; decompress it first)"),
            "{text}"
        );
    }

    #[test]
    fn truncated_archive_reports_where_it_ends() {
        let bytes = sample();
        let (offset, problem) = bad_archive(read_archive(&bytes[..50]));
        assert_eq!(
            (offset, problem),
            (50, Problem::Truncated("a header".into()))
        );

        // Cut inside the data of "init" (third entry).
        let init_offset = read_archive(&bytes).unwrap()[2].offset;
        let cut = usize::try_from(init_offset).unwrap() + 116 + 5;
        let (offset, problem) = bad_archive(read_archive(&bytes[..cut]));
        assert_eq!(offset, cut as u64);
        assert_eq!(problem, Problem::Truncated("the data of init".into()));
    }

    #[test]
    fn archive_without_trailer_is_refused() {
        let bytes = sample();
        let trailer_at = bytes
            .windows(TRAILER.len())
            .position(|w| w == TRAILER.as_bytes())
            .unwrap()
            - HEADER_LEN;
        let (offset, problem) = bad_archive(read_archive(&bytes[..trailer_at]));
        assert_eq!((offset, problem), (trailer_at as u64, Problem::NoTrailer));
    }

    #[test]
    fn empty_input_is_refused() {
        assert_eq!(bad_archive(read_archive(&[])), (0, Problem::Empty));
        assert_eq!(
            bad_archive(read_archive(&[0; 1024])),
            (1024, Problem::Empty)
        );
    }

    #[test]
    fn concatenated_archives_are_read_like_the_kernel() {
        let mut second = Writer::new(Vec::new());
        second.write_bytes("etc/extra", 0o600, 5, b"x").unwrap();
        let second = second.finish().unwrap();

        let mut bytes = sample();
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&second);
        let mut reader = Reader::new();
        let mut names = Vec::new();
        for chunk in bytes.chunks(3) {
            reader.feed(chunk, |e| names.push(e.name)).unwrap();
        }
        assert_eq!(reader.archives(), 2);
        reader.finish().unwrap();
        assert_eq!(names.len(), 7);
        assert_eq!(names.last().map(String::as_str), Some("etc/extra"));

        // The next archive must start at a multiple of 4.
        let mut broken = sample();
        broken.extend_from_slice(&[0; 3]);
        let len = broken.len() as u64;
        broken.extend_from_slice(&second);
        assert_eq!(
            bad_archive(read_archive(&broken)),
            (len, Problem::BrokenPadding)
        );
    }

    /// A header with `value` in field `index` of the first entry of sample().
    fn with_field(index: usize, value: &str) -> Vec<u8> {
        let mut bytes = sample();
        let at = 6 + index * 8;
        bytes[at..at + 8].copy_from_slice(value.as_bytes());
        bytes
    }

    #[test]
    fn hostile_length_fields_are_refused() {
        let namesize = 11;
        assert_eq!(
            bad_archive(read_archive(&with_field(namesize, "00000000"))),
            (0, Problem::BadNameSize(0))
        );
        assert_eq!(
            bad_archive(read_archive(&with_field(namesize, "FFFFFFFF"))),
            (0, Problem::BadNameSize(u32::MAX))
        );
        assert_eq!(
            bad_archive(read_archive(&with_field(2, "0000x000"))),
            (0, Problem::BadField("c_uid"))
        );
        // A name that does not end where c_namesize says.
        assert_eq!(
            bad_archive(read_archive(&with_field(namesize, "00000003"))),
            (0, Problem::NameNotTerminated)
        );

        // A huge symlink size is refused before anything is collected.
        let mut w = Writer::new(Vec::new());
        w.write_symlink("l", "t", 0).unwrap();
        let mut bytes = w.finish().unwrap();
        bytes[54..62].copy_from_slice(b"FFFFFFFF");
        assert_eq!(
            bad_archive(read_archive(&bytes)),
            (0, Problem::SymlinkTooLong(u32::MAX))
        );

        // A huge file size is just skipped: the input ends inside the data.
        let (_, problem) = bad_archive(read_archive(&with_field(6, "FFFFFFFF")));
        assert_eq!(problem, Problem::Truncated("the data of dev".into()));
    }

    #[test]
    fn mutated_archives_never_panic() {
        // A small xorshift generator, so the test is the same every run.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let original = sample();
        for _ in 0..2000 {
            let mut bytes = original.clone();
            for _ in 0..(next() % 8 + 1) {
                let at = usize::try_from(next() % bytes.len() as u64).unwrap();
                bytes[at] = next().to_le_bytes()[0];
            }
            let cut = usize::try_from(next() % (bytes.len() as u64 + 1)).unwrap();
            let chunk = usize::try_from(next() % 64 + 1).unwrap();
            let _ = read_chunked(&bytes[..cut], chunk);
        }
    }

    #[test]
    fn errors_stick() {
        let mut reader = Reader::new();
        let mut bytes = sample();
        bytes[0] = b'X';
        assert!(reader.feed(&bytes, |_| {}).is_err());
        let again = reader.feed(&sample(), |_| panic!("no entries after an error"));
        assert!(matches!(again, Err(ReadError { offset: 0, .. })));
    }

    #[test]
    fn files_over_4_gib_are_refused_before_writing() {
        let mut w = Writer::new(Vec::new());
        let err = w
            .write_file("big.img", 0o644, 0, 1 << 32, &mut io::empty())
            .unwrap_err();
        assert!(matches!(
            err,
            WriteError::TooLarge {
                size: 4_294_967_296,
                ..
            }
        ));
        assert_eq!(w.offset(), 0);
    }

    #[test]
    fn short_data_is_reported() {
        let mut w = Writer::new(Vec::new());
        let err = w
            .write_file("init", 0o755, 0, 10, &mut &b"abc"[..])
            .unwrap_err();
        assert!(matches!(err, WriteError::FileChanged { expected: 10, .. }));
    }

    #[test]
    fn bad_names_and_targets_are_refused() {
        let mut w = Writer::new(Vec::new());
        for name in ["", "/", "a\0b", TRAILER] {
            assert!(
                matches!(w.write_dir(name, 0o755, 0), Err(WriteError::BadPath { .. })),
                "{name:?}"
            );
        }
        assert!(w.write_dir(&"a".repeat(4096), 0o755, 0).is_err());
        assert!(w.write_symlink("l", "", 0).is_err());
        assert!(w.write_symlink("l", &"t".repeat(4097), 0).is_err());
        assert_eq!(w.offset(), 0);
        w.write_dir(&"a".repeat(4095), 0o755, 0).unwrap();
        w.write_symlink("l", &"t".repeat(4096), 0).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(read_archive(&bytes).unwrap().len(), 2);
    }

    #[test]
    fn two_writers_in_one_process_are_independent() {
        assert_eq!(sample(), sample());
    }

    /// The c_namesize field of the header at `at`.
    fn namesize_at(bytes: &[u8], at: usize) -> u32 {
        let field = 6 + 11 * 8;
        parse_hex(&bytes[at + field..at + field + 8]).unwrap()
    }

    #[test]
    fn big_file_data_is_aligned_by_padding_the_name() {
        let mut w = Writer::new(Vec::new());
        w.write_dir("dev", 0o755, 0).unwrap();
        let big = vec![7; 5000];
        w.write_file("big", 0o644, 0, 5000, &mut &big[..]).unwrap();
        w.write_bytes("small", 0o644, 0, &[1; 4095]).unwrap();
        w.write_bytes("in-memory", 0o644, 0, &[2; 4096]).unwrap();
        let bytes = w.finish().unwrap();
        let entries = read_archive(&bytes).unwrap();

        let big_entry = &entries[1];
        assert_eq!(big_entry.name, "big");
        assert_eq!(big_entry.data_offset, DATA_ALIGN);
        let at = usize::try_from(big_entry.offset).unwrap();
        let namesize = namesize_at(&bytes, at);
        assert_eq!(u64::from(namesize), DATA_ALIGN - big_entry.offset - 110);
        let name = &bytes[at + HEADER_LEN..at + HEADER_LEN + namesize as usize];
        assert!(name.starts_with(b"big\0") && name.iter().skip(3).all(|&b| b == 0));
        assert_eq!(bytes[4096..9096], big[..]);

        // Under DATA_ALIGN: just the name and its NUL.
        assert_eq!(entries[2].name, "small");
        let at = usize::try_from(entries[2].offset).unwrap();
        assert_eq!(namesize_at(&bytes, at), 6);
        assert_eq!(entries[3].data_offset % DATA_ALIGN, 0);
    }

    #[test]
    fn alignment_gives_up_rather_than_pass_path_max() {
        // A header at 4084 with a 4000-byte name would need 4093 bytes of
        // padding: c_namesize would pass PATH_MAX, which the kernel skips.
        let name = "n".repeat(4000);
        let mut w = Writer::with_offset(Vec::new(), 4084);
        w.write_file(&name, 0o644, 0, 8192, &mut &[3; 8192][..])
            .unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(namesize_at(&bytes, 0), 4001);
        let mut reader = Reader::at_offset(4084);
        let mut entries = Vec::new();
        reader.feed(&bytes, |e| entries.push(e)).unwrap();
        reader.finish().unwrap();
        assert_eq!(entries[0].offset, 4084);
        assert_eq!(
            entries[0].data_offset,
            (4084 + 110 + 4001_u64).next_multiple_of(4)
        );
        // The trailer padding counts from the start of the whole output.
        assert_eq!((4084 + bytes.len() as u64) % BLOCK_SIZE, 0);
    }

    #[test]
    fn feed_segment_stops_where_the_kernel_looks_for_compressed_data() {
        let archive = sample();
        let mut input = archive.clone();
        input.extend_from_slice(&[0; 8]);
        let stop = input.len();
        input.extend_from_slice(b"\x02\x21\x4c\x18more");
        for chunk in [1, 3, input.len()] {
            let mut reader = Reader::new();
            let mut used = 0;
            for piece in input.chunks(chunk) {
                let n = reader.feed_segment(piece, |_| {}).unwrap();
                used += n;
                if n < piece.len() {
                    break;
                }
            }
            assert_eq!(used, stop, "chunks of {chunk}");
            assert_eq!(reader.offset(), stop as u64);
            assert_eq!(reader.archives(), 1);
        }

        // Another plain archive does not stop it.
        let mut two = archive.clone();
        two.extend_from_slice(&archive);
        let mut reader = Reader::new();
        assert_eq!(reader.feed_segment(&two, |_| {}).unwrap(), two.len());
        assert_eq!(reader.archives(), 2);

        // Before any trailer a foreign byte is an error, not a stop.
        let mut reader = Reader::new();
        let err = reader
            .feed_segment(b"\x02\x21\x4c\x18\0\0", |_| {})
            .unwrap_err();
        assert!(matches!(err, ReadError { offset: 0, .. }));

        // The next segment must start at a multiple of 4.
        let mut odd = archive.clone();
        odd.extend_from_slice(b"\0\x02");
        let mut reader = Reader::new();
        let err = reader.feed_segment(&odd, |_| {}).unwrap_err();
        assert!(matches!(
            err,
            ReadError {
                problem: Problem::BrokenPadding,
                ..
            }
        ));
    }

    #[test]
    fn copy_file_writes_what_write_file_writes() {
        let tmp = crate::testutil::TempDir::new("cpio-copy");
        let data: Vec<u8> = (0..20_000_u32).map(|i| i.to_le_bytes()[1]).collect();
        let host = tmp.write("host", &data);
        let small = tmp.write("small", b"tiny");

        let mut expected = Writer::new(Vec::new());
        expected.write_bytes("a", 0o644, 0, b"x").unwrap();
        expected
            .write_file("big", 0o644, 0, 20_000, &mut &data[..])
            .unwrap();
        expected
            .write_file("s", 0o600, 0, 4, &mut &b"tiny"[..])
            .unwrap();
        let expected = expected.finish().unwrap();

        let out = File::create(tmp.path().join("out")).unwrap();
        let mut w = Writer::new(BufWriter::new(&out));
        w.write_bytes("a", 0o644, 0, b"x").unwrap();
        w.copy_file("big", 0o644, 0, 20_000, &File::open(&host).unwrap())
            .unwrap();
        w.copy_file("s", 0o600, 0, 4, &File::open(&small).unwrap())
            .unwrap();
        w.finish().unwrap().flush().unwrap();
        assert!(std::fs::read(tmp.path().join("out")).unwrap() == expected);

        // A file shorter than planned.
        let mut w = Writer::new(BufWriter::new(&out));
        let err = w
            .copy_file("big", 0o644, 0, 30_000, &File::open(&host).unwrap())
            .unwrap_err();
        assert!(matches!(
            err,
            WriteError::FileChanged {
                expected: 30_000,
                ..
            }
        ));
    }
}
