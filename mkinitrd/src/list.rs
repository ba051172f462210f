//! `mkinitrd --list`: one line per entry of an image, like `ls -l`:
//! mode string, size (or `major, minor` for device nodes), mtime in UTC,
//! path, and ` -> target` for symlinks.
//!
//! An image is read as the kernel's `unpack_to_rootfs` (init/initramfs.c)
//! reads it: segments one after another, with zero padding between them,
//! each a plain newc archive (or several) or LZ4 legacy data holding
//! archives ([`ImageReader`]). The input is read in chunks, so listing a
//! pipe needs no memory for file data, and at most one LZ4 block (and its
//! decompressed 8 MiB) is held.

use std::io::{BufWriter, Read, Write};
use std::mem;
use std::path::Path;

use crate::cpio::{
    self, Entry, Problem, Reader, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG,
    S_IFSOCK,
};
use crate::error::Error;
use crate::lz4::{Decoder, LZ4_LEGACY_MAGIC_BYTES};

/// Bytes read from the input at a time.
const READ_BUF: usize = 64 * 1024;

/// Reads the image in `input` (called `name` in errors) and writes one line
/// per entry to `out`.
///
/// The entries read before a malformed part are listed before the error is
/// returned. Errors: [`Error::ReadArchive`], [`Error::BadArchive`] with the
/// offset, [`Error::BadLz4`], [`Error::BadCompressedArchive`],
/// [`Error::WriteListing`].
pub fn list_archive<R: Read, W: Write>(mut input: R, name: &Path, out: W) -> Result<(), Error> {
    let mut out = BufWriter::new(out);
    let mut reader = ImageReader::new();
    let mut buf = vec![0; READ_BUF];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::ReadArchive {
                    path: name.to_path_buf(),
                    source,
                });
            }
        };
        let mut lines = Vec::new();
        let fed = reader.feed(&buf[..n], &mut |entry| lines.push(format_entry(&entry)));
        write_lines(&mut out, &lines)?;
        fed?;
    }
    let mut lines = Vec::new();
    let finished = reader.finish(&mut |entry| lines.push(format_entry(&entry)));
    write_lines(&mut out, &lines)?;
    finished?;
    out.flush().map_err(|source| Error::WriteListing { source })
}

/// Where an [`ImageReader`] is.
enum Segment {
    /// Between segments: zero bytes are skipped.
    Gap,
    /// In plain newc archives.
    Plain(Reader),
    /// In LZ4 legacy data starting at input offset `start`, whose
    /// decompressed content goes to `content`.
    Lz4 {
        start: u64,
        decoder: Box<Decoder>,
        content: Reader,
    },
}

/// Reads an initramfs image fed in chunks of any size, segment by segment,
/// as the kernel's `unpack_to_rootfs` does.
///
/// Between segments zero bytes are skipped. A segment starting with the
/// first byte of [`LZ4_LEGACY_MAGIC_BYTES`] is LZ4 legacy data
/// ([`Decoder`]) whose decompressed content must be complete newc
/// archives; it ends at the end of the input or at an end mark (a zero
/// size), and only LZ4 data continues it. Anything else is plain newc
/// archives, which must start at a multiple of 4 bytes, and end where a
/// byte other than `'0'` follows a `TRAILER!!!` and its padding
/// ([`Reader::feed_segment`]). So plain archives then LZ4, several plain
/// archives, or concatenated LZ4 outputs all read. Other formats get the
/// [`Reader`]'s hint (`this is gzip data; ...`).
///
/// Entries are reported as they are read; the first error stops the
/// reader, and later calls fail.
///
/// # Example
/// ```
/// use mkinitrd::cpio::Writer;
/// use mkinitrd::list::read_image;
/// use mkinitrd::lz4::{Lz4Options, compress_legacy};
/// let mut early = Writer::new(Vec::new());
/// early.write_bytes("early", 0o644, 0, b"1")?;
/// let mut main = Writer::new(Vec::new());
/// main.write_bytes("main", 0o644, 0, b"2")?;
/// let mut image = early.finish()?;
/// image.extend(compress_legacy(&main.finish()?, &Lz4Options::default()));
/// let names: Vec<String> = read_image(&image)?.into_iter().map(|e| e.name).collect();
/// assert_eq!(names, ["early", "main"]);
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub struct ImageReader {
    segment: Segment,
    /// Input bytes consumed so far.
    offset: u64,
    /// Archives completed in finished segments.
    archives: u64,
    /// The first error, returned again by every later call.
    failed: Option<Error>,
}

impl Default for ImageReader {
    fn default() -> Self {
        ImageReader::new()
    }
}

impl ImageReader {
    /// A reader at the start of an image.
    pub fn new() -> ImageReader {
        ImageReader {
            segment: Segment::Gap,
            offset: 0,
            archives: 0,
            failed: None,
        }
    }

    /// Reads `chunk`, calling `on_entry` for each entry completed in it.
    ///
    /// Errors: [`Error::BadArchive`] (offsets in the image),
    /// [`Error::BadLz4`], [`Error::BadCompressedArchive`].
    pub fn feed(&mut self, chunk: &[u8], on_entry: &mut dyn FnMut(Entry)) -> Result<(), Error> {
        self.check_failed()?;
        self.feed_segments(chunk, on_entry)
            .map_err(|e| self.failed.insert(e).repeat())
    }

    /// Ends the input: an error unless it ended after complete archives.
    ///
    /// Errors: as [`ImageReader::feed`]; [`Problem::Empty`] when the image
    /// holds no archive.
    pub fn finish(mut self, on_entry: &mut dyn FnMut(Entry)) -> Result<(), Error> {
        self.check_failed()?;
        match mem::replace(&mut self.segment, Segment::Gap) {
            Segment::Gap => {}
            Segment::Plain(reader) => {
                self.archives += reader.archives();
                reader.finish()?;
            }
            Segment::Lz4 {
                start,
                decoder,
                content,
            } => {
                let leftover = decoder.finish()?;
                self.end_lz4(start, content)?;
                // The kernel's unlz4 stops before a size cut short by the
                // end of input and leaves those bytes to unpack_to_rootfs.
                self.offset -= leftover.len() as u64;
                self.feed_segments(&leftover, on_entry)?;
                return self.finish(on_entry);
            }
        }
        if self.archives == 0 {
            return Err(Error::BadArchive {
                offset: self.offset,
                problem: Problem::Empty,
            });
        }
        Ok(())
    }

    /// Returns the first error again, if there was one.
    fn check_failed(&self) -> Result<(), Error> {
        match &self.failed {
            Some(error) => Err(error.repeat()),
            None => Ok(()),
        }
    }

    /// Splits `input` among segments.
    fn feed_segments(
        &mut self,
        mut input: &[u8],
        on_entry: &mut dyn FnMut(Entry),
    ) -> Result<(), Error> {
        while !input.is_empty() {
            let used = match &mut self.segment {
                Segment::Gap => {
                    // unpack_to_rootfs skips zeros between segments.
                    let zeros = input.iter().take_while(|&&b| b == 0).count();
                    if zeros == input.len() {
                        zeros
                    } else {
                        self.segment = self.start_segment(input[zeros]);
                        zeros
                    }
                }
                Segment::Plain(reader) => {
                    let used = reader.feed_segment(input, &mut *on_entry)?;
                    if used < input.len() {
                        self.archives += reader.archives();
                        self.segment = Segment::Gap;
                    }
                    used
                }
                Segment::Lz4 {
                    start,
                    decoder,
                    content,
                } => {
                    let start = *start;
                    let used = decoder.feed(input, &mut |_, data| {
                        content
                            .feed(data, &mut *on_entry)
                            .map_err(|e| in_segment(start, e))
                    })?;
                    if decoder.is_ended() {
                        let Segment::Lz4 { content, .. } =
                            mem::replace(&mut self.segment, Segment::Gap)
                        else {
                            unreachable!("matched Segment::Lz4 above");
                        };
                        self.end_lz4(start, content)?;
                    }
                    used
                }
            };
            input = &input[used..];
            self.offset += used as u64;
        }
        Ok(())
    }

    /// The segment that a non-zero byte `first` at the current offset starts.
    fn start_segment(&self, first: u8) -> Segment {
        if first == LZ4_LEGACY_MAGIC_BYTES[0] {
            Segment::Lz4 {
                start: self.offset,
                decoder: Box::new(Decoder::new(self.offset)),
                content: Reader::new(),
            }
        } else {
            // The reader checks the alignment and names other formats.
            Segment::Plain(Reader::at_offset(self.offset))
        }
    }

    /// Ends the archives decompressed from an LZ4 segment: they must be
    /// complete, as unpack_to_rootfs requires ("junk in compressed
    /// archive"). Data holding nothing but zeros is accepted, as there.
    fn end_lz4(&mut self, start: u64, content: Reader) -> Result<(), Error> {
        self.archives += content.archives();
        match content.finish() {
            Err(cpio::ReadError {
                problem: Problem::Empty,
                ..
            }) => Ok(()),
            other => other.map_err(|e| in_segment(start, e)),
        }
    }
}

impl Error {
    /// A copy of an error an [`ImageReader`] returns (they hold no
    /// `io::Error`), to return it again.
    fn repeat(&self) -> Error {
        match self {
            Error::BadArchive { offset, problem } => Error::BadArchive {
                offset: *offset,
                problem: problem.clone(),
            },
            Error::BadLz4 { offset, problem } => Error::BadLz4 {
                offset: *offset,
                problem: problem.clone(),
            },
            Error::BadCompressedArchive {
                segment,
                offset,
                problem,
            } => Error::BadCompressedArchive {
                segment: *segment,
                offset: *offset,
                problem: problem.clone(),
            },
            // Not returned by the reader; a stand-in keeps this total.
            other => Error::BadArchive {
                offset: 0,
                problem: Problem::Truncated(other.to_string()),
            },
        }
    }
}

/// Places an error of the archives decompressed from the LZ4 segment at
/// `start` in that segment.
fn in_segment(start: u64, error: cpio::ReadError) -> Error {
    Error::BadCompressedArchive {
        segment: start,
        offset: error.offset,
        problem: error.problem,
    }
}

/// Reads all entries of the image `data`, as [`ImageReader`] does.
pub fn read_image(data: &[u8]) -> Result<Vec<Entry>, Error> {
    let mut reader = ImageReader::new();
    let mut entries = Vec::new();
    reader.feed(data, &mut |entry| entries.push(entry))?;
    reader.finish(&mut |entry| entries.push(entry))?;
    Ok(entries)
}

/// Writes listing lines.
fn write_lines<W: Write>(out: &mut W, lines: &[String]) -> Result<(), Error> {
    for line in lines {
        writeln!(out, "{line}").map_err(|source| Error::WriteListing { source })?;
    }
    Ok(())
}

/// One listing line for `entry`.
pub fn format_entry(entry: &Entry) -> String {
    let size = match entry.file_type() {
        S_IFCHR | S_IFBLK => format!("{}, {}", entry.rdev_major, entry.rdev_minor),
        _ => entry.size.to_string(),
    };
    let mut line = format!(
        "{} {size:>9} {} {}",
        mode_string(entry.mode),
        format_mtime(entry.mtime),
        entry.name
    );
    if let Some(target) = &entry.symlink_target {
        line.push_str(" -> ");
        line.push_str(target);
    }
    line
}

/// The `ls -l` mode string: type letter, then rwx for user, group, other,
/// with s/S and t/T for setuid, setgid and sticky.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        S_IFDIR => 'd',
        S_IFREG => '-',
        S_IFLNK => 'l',
        S_IFCHR => 'c',
        S_IFBLK => 'b',
        S_IFIFO => 'p',
        S_IFSOCK => 's',
        _ => '?',
    };
    let mut text = String::with_capacity(10);
    text.push(kind);
    // (shift of the rwx triple, special bit, its letter)
    for (shift, special, letter) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = mode >> shift;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    text
}

/// `YYYY-MM-DD HH:MM` in UTC, so listings do not depend on the time zone.
fn format_mtime(secs: u32) -> String {
    let secs = u64::from(secs);
    let (year, month, day) = civil_from_days(secs / 86_400);
    let minutes = secs % 86_400 / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        minutes / 60,
        minutes % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01, by Howard
/// Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>),
/// for non-negative days only.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::{NodKind, Writer};
    use crate::lz4::{Lz4Options, compress_legacy};

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(S_IFDIR | 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(S_IFREG | 0o755), "-rwxr-xr-x");
        assert_eq!(mode_string(S_IFCHR | 0o600), "crw-------");
        assert_eq!(mode_string(S_IFLNK | 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(S_IFDIR | 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(S_IFREG | 0o6644), "-rwSr-Sr--");
        assert_eq!(mode_string(S_IFBLK | 0o4755), "brwsr-xr-x");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(format_mtime(0), "1970-01-01 00:00");
        assert_eq!(format_mtime(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(format_mtime(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_mtime(u32::MAX), "2106-02-07 06:28");
    }

    #[test]
    fn listing_of_each_entry_type() {
        let mut w = Writer::new(Vec::new());
        w.write_dir("dev", 0o755, 0).unwrap();
        w.write_nod("dev/console", NodKind::Char, 5, 1, 0o600, 0)
            .unwrap();
        w.write_bytes("init", 0o755, 0, b"12345").unwrap();
        w.write_symlink("bin/sh", "busybox", 0).unwrap();
        let bytes = w.finish().unwrap();
        let mut out = Vec::new();
        list_archive(&bytes[..], Path::new("x.cpio"), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "drwxr-xr-x         0 1970-01-01 00:00 dev\n\
             crw-------      5, 1 1970-01-01 00:00 dev/console\n\
             -rwxr-xr-x         5 1970-01-01 00:00 init\n\
             lrwxrwxrwx         7 1970-01-01 00:00 bin/sh -> busybox\n"
        );
    }

    #[test]
    fn entries_before_an_error_are_listed() {
        let mut w = Writer::new(Vec::new());
        w.write_dir("dev", 0o755, 0).unwrap();
        let mut bytes = w.finish().unwrap();
        bytes.truncate(200);
        let mut out = Vec::new();
        let err = list_archive(&bytes[..], Path::new("x.cpio"), &mut out).unwrap_err();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
        assert_eq!(
            err.to_string(),
            "cannot read the archive at byte 200: the input ends inside a header"
        );
    }

    /// A plain archive holding `name`, then the LZ4 data of one holding
    /// `compressed`, then zero padding.
    fn plain_then_lz4(name: &str, compressed: &str) -> Vec<u8> {
        let mut plain = Writer::new(Vec::new());
        plain.write_bytes(name, 0o644, 0, b"1").unwrap();
        let mut inner = Writer::new(Vec::new());
        inner.write_dir(compressed, 0o755, 0).unwrap();
        let lz4 = compress_legacy(&inner.finish().unwrap(), &Lz4Options::default());
        let mut image = plain.finish().unwrap();
        image.extend_from_slice(&lz4);
        image.extend_from_slice(&[0; 3]);
        image
    }

    #[test]
    fn segments_read_the_same_in_any_chunking() {
        let image = plain_then_lz4("early", "main");
        let whole = read_image(&image).unwrap();
        let names: Vec<&str> = whole.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["early", "main"]);
        assert_eq!(whole[0].offset, 0);
        // Offsets of decompressed entries are in the decompressed data.
        assert_eq!(whole[1].offset, 0);
        for size in [1, 2, 5, 511, 512, 513, 4096] {
            let mut reader = ImageReader::new();
            let mut entries = Vec::new();
            for chunk in image.chunks(size) {
                reader.feed(chunk, &mut |e| entries.push(e)).unwrap();
            }
            reader.finish(&mut |e| entries.push(e)).unwrap();
            assert_eq!(entries, whole, "chunks of {size}");
        }
    }

    #[test]
    fn image_reader_errors_stick_and_name_the_segment() {
        let mut image = plain_then_lz4("early", "main");
        image.truncate(image.len() - 3);
        // Corrupt the size field of the only block.
        let block_size_at = 512 + 4;
        image[block_size_at..block_size_at + 4].copy_from_slice(&[0xff; 4]);
        let mut reader = ImageReader::new();
        let err = reader.feed(&image, &mut |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot decompress the LZ4 data at byte 516: block size 4294967295 is over \
             LZ4_compressBound(8 MiB) = 8421520"
        );
        let again = reader.feed(&[0], &mut |_| {}).unwrap_err();
        assert_eq!(again.to_string(), err.to_string());
    }
}
