//! Writing an [`Image`] out as one newc archive, plain or LZ4-compressed,
//! streaming host files straight into it.
//!
//! Every path gives the same archive bytes for the same plan: a plain
//! output is the archive, an LZ4 output decompresses to it. Host files are
//! opened once and never stat'ed again (their size comes from the plan).
//!
//! Into a regular file, plain output takes one of two paths, by what the
//! output's filesystem does with `copy_file_range(2)`:
//! - where it can share extents (btrfs, XFS, and any filesystem not known
//!   to copy), file data is copied with it
//!   ([`crate::cpio::Writer::copy_file`]), which costs no data copy there;
//! - on ext2/3/4 and tmpfs, which copy the data anyway, page by page from
//!   the page cache into the new file's, the archive is built in blocks of
//!   256 KiB, host files read straight into them, and written in large
//!   writes by a second thread while the next blocks are read. That is two
//!   copies instead of one, but `copy_file_range` copies between
//!   page-aligned addresses, the slow case of `rep movsb` on some x86 CPUs,
//!   and the blocks are placed to avoid it (`sink::BUFFER_SKEW`): for a 25 MB
//!   image on ext4 (AMD EPYC, 2 cores) 18 ms against 29 ms, and 20 to 23 ms
//!   with the writes on the reading thread.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use crate::cpio;
use crate::error::Error;
use crate::image::{Entry, Image};
use crate::lz4::{Lz4Options, Lz4Writer};
use crate::sink::{self, FileSink, SinkError};

/// Size of the output buffer: big enough that headers and small files go
/// out in few writes.
const WRITE_BUF: usize = 128 * 1024;
/// Bytes of one block of the buffered path: a block this small stays in
/// the CPU's cache between the read and the write (1 MiB blocks took 1 ms
/// more for a 25 MB image, 4 MiB ones 3 ms).
const BLOCK_LEN: usize = 256 * 1024;
/// `f_type` of ext2, ext3 and ext4 (`EXT4_SUPER_MAGIC`,
/// include/uapi/linux/magic.h).
const EXT4_SUPER_MAGIC: u64 = 0xEF53;
/// `f_type` of tmpfs (`TMPFS_MAGIC`, include/uapi/linux/magic.h).
const TMPFS_MAGIC: u64 = 0x0102_1994;

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
                // No BufWriter: the LZ4 writer gathers 8 MiB blocks itself,
                // and reads host files straight into them.
                let mut writer = cpio::Writer::new(Lz4Writer::with_options(out, options));
                self.write_entries(&mut writer, |writer, path, file, mode, size| {
                    writer.copy_file(path, mode, self.mtime, size, file)
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
    /// Into a regular file, plain output copies the data of host files of
    /// [`cpio::DATA_ALIGN`] bytes or more with `copy_file_range(2)`, which
    /// shares extents on copy-on-write filesystems; the data is aligned for
    /// it counting from the start of `file`, so the archive's offsets start
    /// at the current position. On filesystems that would copy the data
    /// anyway, host files are read into blocks of the archive instead (see
    /// the module doc). The bytes are those
    /// [`Image::write_compressed_to`] writes when `file` starts empty.
    /// Into anything else (a FIFO, a character device such as `/dev/null`,
    /// a file opened with `O_APPEND`), which has no position to seek or
    /// copy to, the archive is streamed as [`Image::write_compressed_to`]
    /// does.
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
    /// mkinitrd::output::write_output(&path, |file| {
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
        if !is_positioned_file(file) {
            return self.write_compressed_to(file, compression);
        }
        let mut position = file;
        let start = position.stream_position().map_err(write_error)?;
        if shares_extents(file) {
            self.copy_to_file(file, start)
        } else {
            self.write_blocks(file, start)
        }
    }

    /// Writes the plain archive into `file`, whose position is `start`,
    /// copying the data of host files with `copy_file_range(2)`.
    fn copy_to_file(&self, file: &File, start: u64) -> Result<(), Error> {
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

    /// Writes the plain archive into `file`, whose position is `start`, in
    /// blocks of [`BLOCK_LEN`] bytes that host files are read into.
    fn write_blocks(&self, file: &File, start: u64) -> Result<(), Error> {
        let mut writer = cpio::Writer::with_offset(Blocks::new(file), start);
        self.write_entries(&mut writer, |writer, path, data, mode, size| {
            writer.copy_file(path, mode, self.mtime, size, data)
        })?;
        writer.finish()?.finish().map_err(write_error)
    }

    /// Writes every planned entry, in path order, and no trailer; host
    /// files are opened here and handed to `pack_file(writer, path, file,
    /// mode, size)`.
    fn write_entries<W: Write>(
        &self,
        writer: &mut cpio::Writer<W>,
        mut pack_file: impl FnMut(
            &mut cpio::Writer<W>,
            &str,
            &File,
            u32,
            u64,
        ) -> Result<(), cpio::WriteError>,
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
                        .map_err(|e| name_host_file(e.into(), source))?;
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

/// True when `file` is a regular file written at its position, as the
/// file paths need: they ask for the position (a FIFO has none: ESPIPE),
/// align data from it, and `copy_file_range(2)` refuses a character device
/// and an `O_APPEND` file.
fn is_positioned_file(file: &File) -> bool {
    use rustix::fs::{FileType, OFlags};
    let regular = rustix::fs::fstat(file)
        .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile);
    regular && rustix::fs::fcntl_getfl(file).is_ok_and(|flags| !flags.contains(OFlags::APPEND))
}

/// False for the filesystems known to copy data on `copy_file_range(2)`,
/// ext2/3/4 and tmpfs, where [`Image::write_blocks`] is faster; true for
/// the others and when `fstatfs(2)` fails.
fn shares_extents(file: &File) -> bool {
    let Ok(stat) = rustix::fs::fstatfs(file) else {
        return true;
    };
    !matches!(
        u64::try_from(stat.f_type),
        Ok(EXT4_SUPER_MAGIC | TMPFS_MAGIC)
    )
}

/// The archive in blocks of [`BLOCK_LEN`] bytes, which host files are read
/// straight into ([`FileSink`]) and which a second thread writes to the
/// output while the next are filled. `flush` does nothing:
/// [`Blocks::finish`] writes the last, partial block and waits for the
/// writes.
struct Blocks<'f> {
    /// The block being filled.
    block: Block,
    out: &'f File,
    /// The writer thread, once a first block is full: it takes full blocks
    /// and gives them back empty.
    writer: Option<Writer>,
    /// Blocks made so far, at most [`BLOCKS`].
    made: usize,
}

/// Blocks in use at once: one filling, the others queued or being written.
const BLOCKS: usize = 4;

/// One block, from `start`, which is [`sink::BUFFER_SKEW`] bytes into a
/// page.
struct Block {
    buf: Vec<u8>,
    start: usize,
    /// Bytes of the block filled.
    filled: usize,
}

impl Block {
    fn new() -> Block {
        let (buf, start) = sink::skewed_buffer(BLOCK_LEN);
        Block {
            buf,
            start,
            filled: 0,
        }
    }

    /// A block with no buffer, to put in place of one taken out.
    fn empty() -> Block {
        Block {
            buf: Vec::new(),
            start: 0,
            filled: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.filled]
    }
}

/// The thread that writes full blocks, and the channels to it.
struct Writer {
    full: mpsc::SyncSender<Block>,
    empty: mpsc::Receiver<Block>,
    thread: thread::JoinHandle<io::Result<()>>,
}

impl Writer {
    /// Starts a thread writing to `out` (a duplicate of the output's
    /// descriptor: same open file, same position).
    fn start(out: File) -> Writer {
        let (full, blocks) = mpsc::sync_channel::<Block>(BLOCKS);
        let (give_back, empty) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut out = out;
            for mut block in blocks {
                out.write_all(block.data())?;
                block.filled = 0;
                // The filler may be gone after an error of its own.
                let _ = give_back.send(block);
            }
            Ok(())
        });
        Writer {
            full,
            empty,
            thread,
        }
    }

    /// Waits for the thread and gives its result: it ends early only on a
    /// write error.
    fn join(self) -> io::Result<()> {
        drop(self.full);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the image writer thread panicked")))
    }
}

impl<'f> Blocks<'f> {
    fn new(out: &'f File) -> Blocks<'f> {
        Blocks {
            block: Block::new(),
            out,
            writer: None,
            made: 1,
        }
    }

    /// The unfilled rest of the block, at most `max` bytes of it.
    fn room(&mut self, max: usize) -> &mut [u8] {
        let block = &mut self.block;
        let from = block.start + block.filled;
        let len = max.min(BLOCK_LEN - block.filled);
        &mut block.buf[from..from + len]
    }

    /// Hands the full block to the writer thread (started on the first)
    /// and takes an empty one.
    fn write_block(&mut self) -> io::Result<()> {
        if self.writer.is_none() {
            self.writer = Some(Writer::start(self.out.try_clone()?));
        }
        let Some(writer) = self.writer.as_mut() else {
            unreachable!("started above");
        };
        let next = match writer.empty.try_recv() {
            Ok(block) => block,
            Err(_) if self.made < BLOCKS => {
                self.made += 1;
                Block::new()
            }
            Err(_) => match writer.empty.recv() {
                Ok(block) => block,
                Err(_) => return self.writer_failed(),
            },
        };
        let full = std::mem::replace(&mut self.block, next);
        if writer.full.send(full).is_err() {
            return self.writer_failed();
        }
        Ok(())
    }

    /// The writer thread stopped: its error.
    fn writer_failed(&mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(writer) => writer
                .join()
                .and(Err(io::Error::other("the image writer thread stopped"))),
            None => Ok(()),
        }
    }

    /// Writes the last block and waits for every write.
    fn finish(mut self) -> io::Result<()> {
        let last = std::mem::replace(&mut self.block, Block::empty());
        match self.writer.take() {
            Some(writer) => {
                // A send fails only when the thread stopped on an error,
                // which join gives.
                let _ = writer.full.send(last);
                writer.join()
            }
            None => {
                let mut out = self.out;
                out.write_all(last.data())
            }
        }
    }
}

impl Drop for Blocks<'_> {
    /// After an error elsewhere (a host file that cannot be read), the
    /// writer thread is stopped and waited for, so that nothing writes to
    /// the output once the error is reported.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Write for Blocks<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.block.filled == BLOCK_LEN {
            self.write_block()?;
        }
        let room = self.room(buf.len());
        let n = room.len();
        room.copy_from_slice(&buf[..n]);
        self.block.filled += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileSink for Blocks<'_> {
    fn append_file(&mut self, mut file: &File, len: u64) -> Result<u64, SinkError> {
        let mut copied = 0;
        while copied < len {
            if self.block.filled == BLOCK_LEN {
                self.write_block().map_err(SinkError::Write)?;
            }
            let left = usize::try_from(len - copied).unwrap_or(usize::MAX);
            match file.read(self.room(left)) {
                Ok(0) => break,
                Ok(n) => {
                    self.block.filled += n;
                    copied += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SinkError::Read(e)),
            }
        }
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::read_archive;
    use crate::lz4::decompress_legacy;
    use crate::output::write_output;
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
        write_output(&path, |file| image.write_to_file(file, &Compression::None)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);

        for threads in [1, 3] {
            let lz4 = Compression::Lz4(Lz4Options {
                threads: NonZeroUsize::new(threads),
            });
            let path = tmp.path().join("image.lz4");
            write_output(&path, |file| image.write_to_file(file, &lz4)).unwrap();
            let compressed = std::fs::read(&path).unwrap();
            assert_eq!(decompress_legacy(&compressed).unwrap(), expected);
            let mut streamed = Vec::new();
            image.write_compressed_to(&mut streamed, &lz4).unwrap();
            assert_eq!(streamed, compressed);
        }
    }

    /// Both ways of writing a plain archive into a file, whatever the
    /// filesystem of the test's directory.
    type ToFile = fn(&Image, &File, u64) -> Result<(), Error>;
    const TO_FILE: [(&str, ToFile); 2] = [
        ("copy_file_range", Image::copy_to_file),
        ("blocks", Image::write_blocks),
    ];

    /// The bytes `write` puts into a file that holds `head` already.
    fn written(tmp: &TempDir, image: &Image, head: &[u8], write: ToFile) -> Vec<u8> {
        let path = tmp.write("out", head);
        let mut file = File::options().read(true).write(true).open(&path).unwrap();
        let start = file.seek(io::SeekFrom::End(0)).unwrap();
        write(image, &file, start).unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn both_file_paths_write_the_same_archive_across_many_blocks() {
        let tmp = TempDir::new("write-blocks");
        let mut image = image(&tmp);
        // Files that end at, just before, and past block boundaries.
        for (i, size) in [BLOCK_LEN - 1, BLOCK_LEN, 3 * BLOCK_LEN + 17, 1]
            .into_iter()
            .enumerate()
        {
            let data: Vec<u8> = (0..size)
                .map(|b| ((b % 251) ^ i).to_le_bytes()[0])
                .collect();
            let host = tmp.write(&format!("big{i}"), &data);
            image.add_file(&format!("big/{i}"), &host, None).unwrap();
        }
        let expected = plain(&image);
        for (name, write) in TO_FILE {
            assert!(written(&tmp, &image, b"", write) == expected, "{name}");
            // Appended after other data, offsets count from the file's start.
            let head = vec![7; 512];
            let appended = written(&tmp, &image, &head, write);
            assert_eq!(appended[..512], head[..], "{name}");
            let entries = read_archive(&appended[512..]).unwrap();
            assert_eq!(entries.len(), read_archive(&expected).unwrap().len());
            let big = entries.iter().find(|e| e.name == "big/2").unwrap();
            assert_eq!((512 + big.data_offset) % cpio::DATA_ALIGN, 0, "{name}");
        }
    }

    #[test]
    fn both_file_paths_report_a_file_that_shrank() {
        let tmp = TempDir::new("write-shrink");
        for (name, write) in TO_FILE {
            for size in [100, 70_000] {
                let host = tmp.write("host", &vec![1; size]);
                let mut image = Image::new(0);
                image.add_file("f", &host, None).unwrap();
                std::fs::write(&host, b"short").unwrap();
                let file = File::create(tmp.path().join("out")).unwrap();
                let err = write(&image, &file, 0).unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!(
                        "cannot pack {}: it got shorter while packing (it had {size} bytes)",
                        host.display()
                    ),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn the_blocks_start_off_page_alignment() {
        let tmp = TempDir::new("write-skew");
        let file = File::create(tmp.path().join("out")).unwrap();
        let mut blocks = Blocks::new(&file);
        let at = blocks.room(1).as_ptr().addr();
        assert_eq!(at % sink::PAGE, sink::BUFFER_SKEW);
        assert_eq!(blocks.room(usize::MAX).len(), BLOCK_LEN);
    }

    /// Makes a device node (as root) or FIFO at `path`.
    fn mknod(path: &Path, kind: rustix::fs::FileType, major: u32, minor: u32) {
        let dev = rustix::fs::makedev(major, minor);
        let mode = rustix::fs::Mode::from_raw_mode(0o666);
        rustix::fs::mknodat(rustix::fs::CWD, path, kind, mode, dev).unwrap();
    }

    #[test]
    fn issue_12_write_to_file_streams_into_what_has_no_position() {
        use rustix::fs::FileType;
        let tmp = TempDir::new("write-through");
        let image = image(&tmp);
        let expected = plain(&image);

        // A FIFO (ESPIPE on the position), read by another thread.
        let fifo = tmp.path().join("fifo");
        mknod(&fifo, FileType::Fifo, 0, 0);
        let reader = {
            let fifo = fifo.clone();
            thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let file = File::options().write(true).open(&fifo).unwrap();
        image.write_to_file(&file, &Compression::None).unwrap();
        drop(file);
        assert!(reader.join().unwrap() == expected);

        // The null and full devices (1:3 and 1:7, Documentation/admin-guide/
        // devices.txt), made here rather than using the machine's /dev.
        let null = tmp.path().join("null");
        mknod(&null, FileType::CharacterDevice, 1, 3);
        let file = File::options().write(true).open(&null).unwrap();
        image.write_to_file(&file, &Compression::None).unwrap();
        let full = tmp.path().join("full");
        mknod(&full, FileType::CharacterDevice, 1, 7);
        let file = File::options().write(true).open(&full).unwrap();
        let err = image.write_to_file(&file, &Compression::None).unwrap_err();
        assert!(
            matches!(&err, Error::WriteImage { source, .. } if source.raw_os_error() == Some(28)),
            "{err}"
        );

        // Appended after what a file holds, the archive is the stream's.
        let path = tmp.write("log", b"head");
        let file = File::options().append(true).open(&path).unwrap();
        image.write_to_file(&file, &Compression::None).unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(&written[..4], b"head");
        assert!(written[4..] == expected[..]);
    }

    #[test]
    fn a_failed_write_on_the_writer_thread_is_reported() {
        // /dev/full refuses every write with ENOSPC, as a full disk does.
        let full = File::options().write(true).open("/dev/full").unwrap();
        let mut blocks = Blocks::new(&full);
        let data = vec![1; BLOCK_LEN];
        let mut result = Ok(());
        for _ in 0..2 * BLOCKS {
            result = blocks.write_all(&data);
            if result.is_err() {
                break;
            }
        }
        let err = result.and_then(|()| blocks.finish()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
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
