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
//! ([`Writer::copy_file`] into a [`BufWriter`](std::io::BufWriter) of a file copies with
//! `copy_file_range`).
//!
//! [`Reader`] is `init/initramfs.c`'s state machine: it is fed input in any
//! chunking, checks every length field before using it, and, like the kernel,
//! accepts archives concatenated after a `TRAILER!!!` with zero padding between
//! them. It keeps only the bytes of the field it is collecting (at most
//! [`PATH_MAX`]), never file data.

use std::fmt;

mod reader;
mod writer;

pub use reader::{Entry, Problem, ReadError, Reader, read_archive};
pub(crate) use writer::check_symlink_target;
pub use writer::{WriteError, Writer};

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

/// Bytes from `offset` to the next multiple of `align`.
fn padding(offset: u64, align: u64) -> u64 {
    offset.next_multiple_of(align) - offset
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use reader::parse_hex;
    use std::fs::File;
    use std::io::{self, BufWriter, Write};

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
        let mut mutator = ::tests::Mutator::default();
        let original = sample();
        for _ in 0..2000 {
            let bytes = mutator.damage(&original, 8);
            let chunk = mutator.up_to(64);
            let _ = read_chunked(&bytes, chunk);
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
