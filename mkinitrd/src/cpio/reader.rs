//! The newc reader: [`Reader`], `init/initramfs.c`'s state machine fed
//! input in any chunking, the [`Entry`] values it gives and its
//! [`ReadError`]. It keeps only the field it is collecting.

use std::fmt;
use std::mem;

use super::*;

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
pub(super) fn parse_hex(digits: &[u8]) -> Option<u32> {
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
