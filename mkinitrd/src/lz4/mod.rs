//! The kernel's legacy LZ4 format over lz4_flex's block API: the format
//! `lz4 -l` writes and `lib/decompress_unlz4.c` reads (`CONFIG_RD_LZ4`).
//! lz4_flex's frame encoder cannot write it, so the framing is here:
//!
//! ```text
//! magic     4 bytes  0x184C2102, little-endian (ARCHIVE_MAGICNUMBER)
//! block...  4 bytes  compressed size n, little-endian, 1 to LZ4_compressBound(8 MiB)
//!           n bytes  one LZ4 block, independent of the others, that
//!                    decompresses to 8 MiB (LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE),
//!                    the last one to 1 byte to 8 MiB
//! ```
//!
//! There is no end mark and no checksum: the kernel decompresses blocks
//! until its input ends. On the way it skips a repeated magic, so
//! concatenated `lz4 -l` outputs read as one stream, and (since Linux 5.12,
//! "lib/decompress_unlz4.c: correctly handle zero-padding around initrds")
//! it stops at a zero size, leaving the rest to `unpack_to_rootfs`. So after
//! LZ4 data only more LZ4 data can follow (or, on newer kernels, 4 zero
//! bytes and padding to 4 before a plain archive): an image is plain
//! segments first, then at most one LZ4 segment. [`Lz4Writer`] writes no
//! end mark, as `lz4 -l` does not.
//!
//! [`Lz4Writer`] compresses blocks on a pool of threads, in order, each
//! block by itself: the output is the same whatever the thread count.
//! [`Decoder`] reads the format back in chunks of any size, as the kernel
//! does, for `--list`; [`decompress_legacy`] is the same on a byte slice.

use std::fmt;
use std::num::NonZeroUsize;
use std::thread;

mod decoder;
mod pool;
mod writer;

pub use decoder::{Decoder, Lz4Error, OnBlock, Problem, decompress_legacy};
pub use writer::{Lz4Writer, compress_legacy};

/// Magic at the start of the legacy format (ARCHIVE_MAGICNUMBER in
/// lib/decompress_unlz4.c), stored little-endian.
pub const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;
/// [`LZ4_LEGACY_MAGIC`] as it appears in the data.
pub const LZ4_LEGACY_MAGIC_BYTES: [u8; 4] = LZ4_LEGACY_MAGIC.to_le_bytes();
/// Bytes of input per block (LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE, 8 MiB):
/// the kernel decompresses each block into a buffer of this size, and
/// `lz4 -l` cuts its input the same way.
pub const BLOCK_SIZE: usize = 8 << 20;
/// Largest compressed block: `LZ4_compressBound(BLOCK_SIZE)`, the worst case
/// of the LZ4 block format, which the kernel checks when it reads blocks
/// through a fill function.
pub const MAX_COMPRESSED_BLOCK: usize = BLOCK_SIZE + BLOCK_SIZE / 255 + 16;
/// Most threads [`Lz4Writer`] uses: each holds up to two blocks (17 MiB).
pub const MAX_THREADS: usize = 64;
/// Environment variable that sets the thread count ([`Lz4Options::from_env`]).
pub const THREADS_ENV: &str = "MKINITRD_THREADS";
/// Most bytes [`decompress_legacy`] returns: an initramfs is unpacked into
/// RAM, and this keeps hostile input from asking for more.
pub const MAX_DECOMPRESSED: u64 = 1 << 32;

/// Bytes of the size field before each block.
const SIZE_LEN: usize = 4;

/// A thread count ([`THREADS_ENV`]) that is not a whole number from 1 to
/// [`MAX_THREADS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadThreads {
    /// The value as given.
    pub value: String,
}

impl fmt::Display for BadThreads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a whole number from 1 to {MAX_THREADS}")
    }
}

impl std::error::Error for BadThreads {}

/// How to compress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lz4Options {
    /// Threads that compress blocks; `None` for one per CPU
    /// (`std::thread::available_parallelism`), at most [`MAX_THREADS`].
    /// The output does not depend on it.
    pub threads: Option<NonZeroUsize>,
}

impl Lz4Options {
    /// Options with the thread count from [`THREADS_ENV`] when it is set and
    /// not empty.
    ///
    /// Errors: [`BadThreads`] when it is not a whole number from 1 to
    /// [`MAX_THREADS`].
    pub fn from_env() -> Result<Lz4Options, BadThreads> {
        let value = std::env::var_os(THREADS_ENV).unwrap_or_default();
        Lz4Options::parse_threads(&value.to_string_lossy())
    }

    /// [`Lz4Options::from_env`] on a given value; empty means unset.
    pub fn parse_threads(value: &str) -> Result<Lz4Options, BadThreads> {
        if value.is_empty() {
            return Ok(Lz4Options::default());
        }
        match value.parse::<NonZeroUsize>() {
            Ok(n) if n.get() <= MAX_THREADS => Ok(Lz4Options { threads: Some(n) }),
            _ => Err(BadThreads {
                value: value.to_string(),
            }),
        }
    }

    /// The number of threads to use.
    pub fn thread_count(&self) -> usize {
        let n = self
            .threads
            .or_else(|| thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get);
        n.min(MAX_THREADS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Write};

    fn threads(n: usize) -> Lz4Options {
        Lz4Options {
            threads: NonZeroUsize::new(n),
        }
    }

    /// Bytes that compress a little: a counter mixed with text.
    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                if i % 7 == 0 {
                    (i / 7 % 251).to_le_bytes()[0]
                } else {
                    b"initramfs"[i % 9]
                }
            })
            .collect()
    }

    /// The (compressed size, decompressed size) of each block.
    fn blocks(compressed: &[u8]) -> Vec<(usize, usize)> {
        assert_eq!(compressed[..4], LZ4_LEGACY_MAGIC_BYTES);
        let mut at = 4;
        let mut sizes = Vec::new();
        while at < compressed.len() {
            let n = u32::from_le_bytes(compressed[at..at + 4].try_into().unwrap()) as usize;
            let block = &compressed[at + 4..at + 4 + n];
            let out = lz4_flex::block::decompress(block, BLOCK_SIZE).unwrap();
            sizes.push((n, out.len()));
            at += 4 + n;
        }
        assert_eq!(at, compressed.len());
        sizes
    }

    #[test]
    fn empty_input_is_just_the_magic() {
        let compressed = compress_legacy(&[], &threads(1));
        assert_eq!(compressed, LZ4_LEGACY_MAGIC_BYTES);
        assert_eq!(decompress_legacy(&compressed).unwrap(), b"");
    }

    #[test]
    fn small_input_is_one_block() {
        let data = sample(1000);
        let compressed = compress_legacy(&data, &threads(1));
        assert_eq!(blocks(&compressed).len(), 1);
        assert_eq!(blocks(&compressed)[0].1, 1000);
        assert_eq!(decompress_legacy(&compressed).unwrap(), data);
    }

    #[test]
    fn blocks_are_8_mib_but_the_last() {
        for (len, expected) in [
            (BLOCK_SIZE - 1, vec![BLOCK_SIZE - 1]),
            (BLOCK_SIZE, vec![BLOCK_SIZE]),
            (BLOCK_SIZE + 1, vec![BLOCK_SIZE, 1]),
            (2 * BLOCK_SIZE, vec![BLOCK_SIZE, BLOCK_SIZE]),
            (2 * BLOCK_SIZE + 5, vec![BLOCK_SIZE, BLOCK_SIZE, 5]),
        ] {
            let data = sample(len);
            let compressed = compress_legacy(&data, &threads(2));
            let sizes: Vec<usize> = blocks(&compressed).iter().map(|b| b.1).collect();
            assert_eq!(sizes, expected, "input of {len} bytes");
            assert_eq!(decompress_legacy(&compressed).unwrap(), data);
        }
    }

    #[test]
    fn write_sizes_do_not_change_the_output() {
        let data = sample(BLOCK_SIZE + 12_345);
        let whole = compress_legacy(&data, &threads(1));
        for piece in [1 << 20, 4093, BLOCK_SIZE] {
            let mut w = Lz4Writer::with_options(Vec::new(), &threads(3));
            for chunk in data.chunks(piece) {
                w.write_all(chunk).unwrap();
                // Flushing keeps the partial block: no change.
                w.flush().unwrap();
            }
            assert_eq!(w.finish().unwrap(), whole, "writes of {piece}");
        }
    }

    #[test]
    fn incompressible_blocks_stay_within_the_kernel_bound() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let data: Vec<u8> = (0..BLOCK_SIZE + 100)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[3]
            })
            .collect();
        let compressed = compress_legacy(&data, &threads(2));
        let sizes = blocks(&compressed);
        assert!(
            sizes.iter().all(|&(n, _)| n <= MAX_COMPRESSED_BLOCK),
            "{sizes:?}"
        );
        assert_eq!(decompress_legacy(&compressed).unwrap(), data);
    }

    #[test]
    fn thread_counts_give_the_same_bytes() {
        let data = sample(3 * BLOCK_SIZE + 777);
        let one = compress_legacy(&data, &threads(1));
        for n in [2, 4, 7] {
            assert_eq!(compress_legacy(&data, &threads(n)), one, "{n} threads");
        }
    }

    #[test]
    fn repeated_magic_and_end_mark_are_read_like_the_kernel() {
        let mut data = compress_legacy(b"first ", &threads(1));
        data.extend_from_slice(&compress_legacy(b"second", &threads(1)));
        assert_eq!(decompress_legacy(&data).unwrap(), b"first second");

        // An end mark, then zero padding, even cut short.
        for padding in [4, 7, 9] {
            let mut padded = data.clone();
            padded.resize(data.len() + padding, 0);
            assert_eq!(decompress_legacy(&padded).unwrap(), b"first second");
        }
        let mut junk = data.clone();
        junk.extend_from_slice(&[0, 0, 0, 0, 0, 9]);
        assert_eq!(
            decompress_legacy(&junk).unwrap_err().to_string(),
            format!(
                "at byte {}: non-zero bytes follow \
                 the end of the LZ4 data",
                data.len() + 5
            )
        );
    }

    #[test]
    fn any_chunking_gives_the_same_output() {
        let data = sample(100_000);
        let compressed = compress_legacy(&data, &threads(1));
        for size in [1, 2, 3, 5, 4096] {
            let mut decoder = Decoder::new(0);
            let mut out = Vec::new();
            for chunk in compressed.chunks(size) {
                let used = decoder
                    .feed::<Lz4Error>(chunk, &mut |_, block| {
                        out.extend_from_slice(block);
                        Ok(())
                    })
                    .unwrap();
                assert_eq!(used, chunk.len());
            }
            assert!(decoder.finish().unwrap().is_empty());
            assert_eq!(out, data, "chunks of {size}");
        }
    }

    fn problem(data: &[u8]) -> (u64, Problem) {
        match decompress_legacy(data) {
            Err(Lz4Error { offset, problem }) => (offset, problem),
            other => panic!("expected BadLz4, got {other:?}"),
        }
    }

    #[test]
    fn hostile_inputs_are_refused_with_the_offset() {
        assert_eq!(problem(b""), (0, Problem::Truncated("the magic")));
        assert_eq!(problem(b"\x02\x21"), (0, Problem::Truncated("the magic")));
        assert_eq!(
            problem(b"\x1f\x8b\x08\x00"),
            (0, Problem::BadMagic([0x1f, 0x8b, 8, 0]))
        );
        let mut huge = LZ4_LEGACY_MAGIC_BYTES.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(problem(&huge), (4, Problem::BlockTooLarge([0xff; 4])));

        let mut cut = compress_legacy(&sample(5000), &threads(1));
        cut.truncate(cut.len() - 1);
        assert_eq!(problem(&cut), (8, Problem::Truncated("a block")));

        // A block whose match points before the start of the output.
        let mut bad_offset = LZ4_LEGACY_MAGIC_BYTES.to_vec();
        bad_offset.extend_from_slice(&[4, 0, 0, 0, 0x0f, 0x10, 0x00, 0x00]);
        let (at, p) = problem(&bad_offset);
        assert_eq!(at, 8);
        assert!(matches!(p, Problem::BadBlock(_)), "{p:?}");

        // A block that would decompress past 8 MiB.
        let mut too_long = LZ4_LEGACY_MAGIC_BYTES.to_vec();
        let mut block = vec![0x1f, b'x', 1, 0];
        block.extend(std::iter::repeat_n(0xff, BLOCK_SIZE / 255 + 1));
        block.extend_from_slice(&[0, 0x50, b'a', b'b', b'c', b'd', b'e']);
        too_long.extend_from_slice(&u32::try_from(block.len()).unwrap().to_le_bytes());
        too_long.extend_from_slice(&block);
        assert!(matches!(problem(&too_long), (8, Problem::BadBlock(_))));
    }

    #[test]
    fn a_plain_archive_after_lz4_gets_a_hint() {
        let mut data = compress_legacy(b"x", &threads(1));
        data.extend_from_slice(b"070701");
        let text = decompress_legacy(&data).unwrap_err().to_string();
        assert!(
            text.ends_with("or end the LZ4 data with 4 zero bytes)"),
            "{text}"
        );
    }

    #[test]
    fn mutated_streams_never_panic() {
        let original = compress_legacy(&sample(70_000), &threads(1));
        let mut mutator = ::tests::Mutator::default();
        for _ in 0..3000 {
            let _ = decompress_legacy(&mutator.damage(&original, 8));
        }
    }

    #[test]
    fn errors_stick() {
        let mut decoder = Decoder::new(100);
        let err = decoder
            .feed::<Lz4Error>(b"abcdefgh", &mut |_, _| Ok(()))
            .unwrap_err();
        assert!(matches!(err, Lz4Error { offset: 100, .. }));
        let again = decoder.feed::<Lz4Error>(&LZ4_LEGACY_MAGIC_BYTES, &mut |_, _| Ok(()));
        assert!(matches!(again, Err(Lz4Error { offset: 100, .. })));
    }

    #[test]
    fn thread_count_from_the_environment_value() {
        assert_eq!(
            Lz4Options::parse_threads("").unwrap(),
            Lz4Options::default()
        );
        assert_eq!(Lz4Options::parse_threads("3").unwrap(), threads(3));
        for bad in ["0", "-1", "x", "65"] {
            assert_eq!(
                Lz4Options::parse_threads(bad).unwrap_err(),
                BadThreads {
                    value: bad.to_string()
                }
            );
        }
        assert_eq!(
            BadThreads { value: "0".into() }.to_string(),
            "not a whole number from 1 to 64"
        );
        assert!(Lz4Options::default().thread_count() >= 1);
    }

    /// A writer that fails after `left` bytes.
    struct Failing {
        left: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_errors_are_reported_and_stick() {
        // Blocks are written once more input follows them, or at most
        // `threads` of them are under way.
        for (n, blocks) in [(1, 1), (2, 3)] {
            let data = sample(blocks * BLOCK_SIZE + 1);
            let mut w = Lz4Writer::with_options(Failing { left: 100 }, &threads(n));
            let err = w.write_all(&data).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(28), "{n} threads");
            assert!(w.write(b"more").is_err());
            assert!(w.finish().is_err());
        }

        let w = Lz4Writer::with_options(Failing { left: 0 }, &threads(1));
        assert!(w.finish().is_err());
    }
}
