//! Decompressing kernel modules at pack time, and knowing when not to.
//!
//! Distributions ship modules as `.ko.gz`, `.ko.xz` or `.ko.zst`. A kernel
//! built with `CONFIG_MODULE_DECOMPRESS=y` unpacks the one format it was
//! configured to compress with when init passes `MODULE_INIT_COMPRESSED_FILE`
//! to `finit_module` (Linux 5.17; zstd since 6.2): [`KernelDecompress`]
//! reads that from the kernel's config. Every other compressed module is
//! unpacked here into memory with [`decompress`], since every kernel loads
//! an uncompressed one. Output is capped ([`MAX_MODULE_SIZE`]) so a damaged
//! or hostile file cannot exhaust memory. Nothing here keeps state.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Most bytes a module may unpack to: far above any real module (amdgpu,
/// the largest, is about 20 MiB unpacked), far below the 4 GiB a newc
/// entry can hold.
pub const MAX_MODULE_SIZE: usize = 1 << 30;

/// How a module file is compressed, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `.ko.gz`
    Gzip,
    /// `.ko.xz`
    Xz,
    /// `.ko.zst`
    Zstd,
}

impl Compression {
    /// What follows `.ko` in the file name: `.gz`, `.xz` or `.zst`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        })
    }
}

/// Largest xz dictionary accepted. The decoder allocates the dictionary the
/// header asks for up front, up to 4 GiB; xz's presets use at most 64 MiB.
pub const MAX_XZ_DICTIONARY: u64 = 256 << 20;

/// gzip's magic (RFC 1952 §2.3.1).
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// xz's stream header magic (xz-file-format.txt §2.1.1.1).
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
/// zstd's frame magic, 0xFD2FB528 little-endian (RFC 8878 §3.1.1).
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Size of an xz stream header: magic, 2 flag bytes, CRC32.
const XZ_STREAM_HEADER: usize = 12;
/// Filter ID of LZMA2 in an xz block header (xz-file-format.txt §5.3.1).
const XZ_FILTER_LZMA2: u64 = 0x21;

/// Why a compressed module could not be unpacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The data is not valid data of its format.
    Corrupt {
        /// The format the file name promised.
        compression: Compression,
        /// What the decoder said.
        detail: String,
    },
    /// It unpacks to more than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Its xz dictionary is larger than [`MAX_XZ_DICTIONARY`].
    XzDictionary {
        /// The dictionary size the header asks for.
        size: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Corrupt {
                compression,
                detail,
            } => write!(
                f,
                "not valid {compression} data: {detail} (is the file damaged? reinstall \
                 the package that owns it)"
            ),
            Problem::TooLarge { limit } => write!(
                f,
                "it unpacks to more than {limit} bytes (no kernel module is that big: is \
                 the file damaged?)"
            ),
            Problem::XzDictionary { size } => write!(
                f,
                "its xz dictionary of {size} bytes is over the limit of {MAX_XZ_DICTIONARY} \
                 (xz presets use at most 64 MiB: is the file damaged?)"
            ),
        }
    }
}

/// Unpacks `data`, compressed with `compression`, capped at
/// [`MAX_MODULE_SIZE`] bytes.
///
/// gzip and xz data may hold several members or streams one after the
/// other, zstd data several frames, as their tools write when files are
/// concatenated. Errors: [`Problem`]. Never panics in this crate's code.
///
/// # Example
/// ```
/// use mkinitrd::decompress::{decompress, Problem};
/// use mkinitrd::kmod::Compression;
/// let err = decompress(Compression::Zstd, b"\x7fELF").unwrap_err();
/// assert!(matches!(err, Problem::Corrupt { .. }));
/// ```
pub fn decompress(compression: Compression, data: &[u8]) -> Result<Vec<u8>, Problem> {
    decompress_limited(compression, data, MAX_MODULE_SIZE)
}

/// [`decompress`] with a cap of `limit` bytes (fuzzers use a small one).
pub fn decompress_limited(
    compression: Compression,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, Problem> {
    check_magic(compression, data)?;
    let corrupt = |e: io::Error| Problem::Corrupt {
        compression,
        detail: e.to_string(),
    };
    let mut out = Vec::new();
    match compression {
        Compression::Gzip => {
            read_limited(flate2::read::MultiGzDecoder::new(data), &mut out, limit)
                .map_err(|e| e.or_corrupt(corrupt))?;
        }
        Compression::Xz => {
            if let Some(size) = xz_first_dictionary(data)
                && size > MAX_XZ_DICTIONARY
            {
                return Err(Problem::XzDictionary { size });
            }
            let reader = lzma_rust2::XzReader::new(data, true);
            read_limited(reader, &mut out, limit).map_err(|e| e.or_corrupt(corrupt))?;
        }
        Compression::Zstd => unzstd(data, &mut out, limit)?,
    }
    Ok(out)
}

/// A failed bounded read: over the limit, or an error of the decoder.
enum ReadError {
    TooLarge(usize),
    Decoder(io::Error),
}

impl ReadError {
    /// The [`Problem`], `corrupt` making one of a decoder error.
    fn or_corrupt(self, corrupt: impl FnOnce(io::Error) -> Problem) -> Problem {
        match self {
            ReadError::TooLarge(limit) => Problem::TooLarge { limit },
            ReadError::Decoder(e) => corrupt(e),
        }
    }
}

/// Appends what `reader` gives to `out`, failing once `out` would pass
/// `limit` bytes: one byte more than the room left is asked for, to tell
/// "exactly at the limit" from "over it".
fn read_limited(reader: impl Read, out: &mut Vec<u8>, limit: usize) -> Result<(), ReadError> {
    let room = u64::try_from(limit.saturating_sub(out.len())).unwrap_or(u64::MAX);
    reader
        .take(room.saturating_add(1))
        .read_to_end(out)
        .map_err(ReadError::Decoder)?;
    if out.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(())
}

/// Unpacks one or more zstd frames, checking each content checksum.
fn unzstd(data: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Problem> {
    let corrupt = |detail: String| Problem::Corrupt {
        compression: Compression::Zstd,
        detail,
    };
    let mut input = data;
    while !input.is_empty() {
        let mut decoder = ruzstd::decoding::StreamingDecoder::new(&mut input)
            .map_err(|e| corrupt(e.to_string()))?;
        read_limited(&mut decoder, out, limit)
            .map_err(|e| e.or_corrupt(|e| corrupt(e.to_string())))?;
        let frame = decoder.into_frame_decoder();
        if let (Some(stored), Some(computed)) = (
            frame.get_checksum_from_data(),
            frame.get_calculated_checksum(),
        ) && stored != computed
        {
            return Err(corrupt(format!(
                "content checksum {computed:08x} instead of {stored:08x}"
            )));
        }
    }
    Ok(())
}

/// Refuses data that does not start with its format's magic, naming the
/// format it looks like instead.
fn check_magic(compression: Compression, data: &[u8]) -> Result<(), Problem> {
    let magic = |c| match c {
        Compression::Gzip => GZIP_MAGIC,
        Compression::Xz => XZ_MAGIC,
        Compression::Zstd => ZSTD_MAGIC,
    };
    if data.starts_with(magic(compression)) {
        return Ok(());
    }
    let actual = [Compression::Gzip, Compression::Xz, Compression::Zstd]
        .into_iter()
        .find(|&c| data.starts_with(magic(c)));
    let detail = match actual {
        Some(actual) => format!("no {compression} magic: it is {actual} data"),
        None if data.starts_with(b"\x7fELF") => {
            format!("no {compression} magic: it is an uncompressed ELF file")
        }
        None if data.is_empty() => "the file is empty".to_string(),
        None => format!("no {compression} magic at the start"),
    };
    Err(Problem::Corrupt {
        compression,
        detail,
    })
}

/// The LZMA2 dictionary size the first block of an xz stream asks for, when
/// its header can be read (xz-file-format.txt §3.1 and §5.3.1).
///
/// Only the first block is checked: `xz` writes one dictionary size for
/// all blocks, and modules are one block. A later block's header is only
/// seen by the decoder, which allocates whatever it asks for; such a file
/// would be hand-made, and its allocation is zeroed memory that stays
/// untouched beyond what is written, which the output cap bounds.
fn xz_first_dictionary(data: &[u8]) -> Option<u64> {
    let header = data.get(XZ_STREAM_HEADER..)?;
    // The real header size is (byte + 1) * 4; 0 starts the index instead.
    let size_byte = *header.first()?;
    if size_byte == 0 {
        return None;
    }
    let block = header.get(..(usize::from(size_byte) + 1) * 4)?;
    let flags = *block.get(1)?;
    let mut at = 2;
    // Optional compressed and uncompressed sizes.
    if flags & 0x40 != 0 {
        read_varint(block, &mut at)?;
    }
    if flags & 0x80 != 0 {
        read_varint(block, &mut at)?;
    }
    for _ in 0..=(flags & 0x03) {
        let id = read_varint(block, &mut at)?;
        let props_len = usize::try_from(read_varint(block, &mut at)?).ok()?;
        let props = block.get(at..at.checked_add(props_len)?)?;
        at += props_len;
        if id == XZ_FILTER_LZMA2 {
            // Dictionary sizes are 2^n or 3 * 2^(n-1), from 4 KiB; 40 means
            // 4 GiB - 1.
            let bits = *props.first()? & 0x3f;
            return match bits {
                0..=39 => Some((2 | u64::from(bits & 1)) << (bits / 2 + 11)),
                40 => Some(u64::from(u32::MAX)),
                _ => None,
            };
        }
    }
    None
}

/// Reads an xz multibyte integer at `data[*at]`: 7 bits per byte, low
/// first, at most 9 bytes (xz-file-format.txt §1.2).
fn read_varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *data.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Which compressed modules the target kernel decompresses itself, so they
/// can be packed as they are.
///
/// kernel/module/decompress.c is built for one format only, the
/// `CONFIG_MODULE_COMPRESS_*` choice (gzip or xz, zstd since Linux 6.2),
/// and only with `CONFIG_MODULE_DECOMPRESS=y`; a module in another format
/// fails with EINVAL, and without the option every compressed module fails
/// with EOPNOTSUPP. [`KernelDecompress::NONE`] (unpack everything here) is
/// always safe.
///
/// # Example
/// ```
/// use mkinitrd::decompress::KernelDecompress;
/// use mkinitrd::kmod::Compression;
/// let kernel = KernelDecompress::from_config(
///     "CONFIG_MODULE_COMPRESS_XZ=y\nCONFIG_MODULE_DECOMPRESS=y\n",
/// );
/// assert!(kernel.handles(Compression::Xz));
/// assert!(!kernel.handles(Compression::Zstd));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelDecompress {
    compression: Option<Compression>,
}

impl KernelDecompress {
    /// A kernel that decompresses nothing (or one whose config is unknown).
    pub const NONE: KernelDecompress = KernelDecompress { compression: None };

    /// A kernel that decompresses `compression`.
    pub fn only(compression: Compression) -> KernelDecompress {
        KernelDecompress {
            compression: Some(compression),
        }
    }

    /// The format the kernel decompresses, if any.
    pub fn compression(self) -> Option<Compression> {
        self.compression
    }

    /// True when a module compressed with `compression` can be packed as
    /// it is.
    pub fn handles(self, compression: Compression) -> bool {
        self.compression == Some(compression)
    }

    /// What a kernel with this `.config` text decompresses. When several
    /// formats are `=y` (a hand-edited config), the first that
    /// decompress.c's `#if` chain tests wins: gzip, xz, zstd.
    pub fn from_config(config: &str) -> KernelDecompress {
        const FORMATS: [(&str, Compression); 3] = [
            ("CONFIG_MODULE_COMPRESS_GZIP", Compression::Gzip),
            ("CONFIG_MODULE_COMPRESS_XZ", Compression::Xz),
            ("CONFIG_MODULE_COMPRESS_ZSTD", Compression::Zstd),
        ];
        // Only four of a config's thousands of options matter: look for
        // them, not at all the others.
        let mut decompress = false;
        let mut enabled = [false; FORMATS.len()];
        for option in config
            .lines()
            .filter_map(|line| line.trim().strip_suffix("=y"))
            .filter(|option| option.starts_with("CONFIG_MODULE_"))
        {
            decompress |= option == "CONFIG_MODULE_DECOMPRESS";
            for ((name, _), on) in FORMATS.iter().zip(&mut enabled) {
                *on |= option == *name;
            }
        }
        if !decompress {
            return KernelDecompress::NONE;
        }
        let compression = FORMATS
            .iter()
            .zip(enabled)
            .find(|(_, on)| *on)
            .map(|((_, compression), _)| *compression);
        KernelDecompress { compression }
    }

    /// What the kernel decompresses, from the first of `candidates` that can
    /// be read ([`kernel_config_candidates`]). When none can,
    /// [`KernelDecompress::NONE`]: the safe answer, so an unreadable config
    /// is not an error.
    pub fn read_config(candidates: &[PathBuf]) -> KernelDecompress {
        candidates
            .iter()
            .find_map(|path| fs::read_to_string(path).ok())
            .map_or(KernelDecompress::NONE, |text| {
                KernelDecompress::from_config(&text)
            })
    }
}

/// Where the config of the kernel of module tree `moddir` may be, in the
/// order to try: `moddir/config` (Fedora, Arch), `moddir/build/.config`
/// (the headers or build tree), `/boot/config-VER` (Debian), VER being
/// `moddir`'s file name.
pub fn kernel_config_candidates(moddir: &Path) -> Vec<PathBuf> {
    let mut candidates = vec![moddir.join("config"), moddir.join("build/.config")];
    if let Some(kver) = moddir.file_name() {
        let mut name = std::ffi::OsString::from("config-");
        name.push(kver);
        candidates.push(Path::new("/boot").join(name));
    }
    candidates
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Compresses `data` with a host tool, as distributions do. The tools
    /// are required: a missing one fails the test, naming its package.
    pub(crate) fn compress_with(compression: Compression, data: &[u8]) -> Vec<u8> {
        let (tool, args, package): (&str, &[&str], &str) = match compression {
            Compression::Gzip => ("gzip", &["-c", "-9"], "gzip"),
            // Kbuild's flags for modules (scripts/Makefile.modinst).
            Compression::Xz => (
                "xz",
                &["-c", "--check=crc32", "--lzma2=dict=1MiB"],
                "xz-utils",
            ),
            Compression::Zstd => ("zstd", &["-c", "-q", "-T0"], "zstd"),
        };
        let mut child = Command::new(tool)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {tool}: {e} (install it: apt-get install -y {package})")
            });
        let mut stdin = child.stdin.take().unwrap();
        let input = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(output.status.success(), "{tool} failed");
        output.stdout
    }

    /// Bytes that compress but not to nothing: an ELF-looking header and a
    /// varied body.
    fn sample(len: usize) -> Vec<u8> {
        let mut data = b"\x7fELF\x02\x01\x01".to_vec();
        let mut x = 1u32;
        while data.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            data.push(b"abcdefgh.modinfo\0"[(x >> 16) as usize % 17]);
        }
        data
    }

    const ALL: [Compression; 3] = [Compression::Gzip, Compression::Xz, Compression::Zstd];

    #[test]
    fn each_format_round_trips_through_its_host_tool() {
        let data = sample(300_000);
        for compression in ALL {
            let packed = compress_with(compression, &data);
            assert!(packed.len() < data.len());
            assert_eq!(
                decompress(compression, &packed).unwrap(),
                data,
                "{compression}"
            );
        }
    }

    #[test]
    fn concatenated_members_streams_and_frames_are_all_read() {
        for compression in ALL {
            let mut packed = compress_with(compression, b"first ");
            packed.extend(compress_with(compression, b"second"));
            assert_eq!(
                decompress(compression, &packed).unwrap(),
                b"first second",
                "{compression}"
            );
        }
    }

    #[test]
    fn empty_content_is_fine_but_an_empty_file_is_not() {
        for compression in ALL {
            assert_eq!(
                decompress(compression, &compress_with(compression, b"")).unwrap(),
                b""
            );
            assert_eq!(
                decompress(compression, b"").unwrap_err().to_string(),
                format!(
                    "not valid {compression} data: the file is empty (is the file damaged? \
                     reinstall the package that owns it)"
                )
            );
        }
    }

    #[test]
    fn output_is_capped() {
        let data = vec![0u8; 100_000];
        for compression in ALL {
            let packed = compress_with(compression, &data);
            assert_eq!(
                decompress_limited(compression, &packed, 100_000)
                    .unwrap()
                    .len(),
                100_000
            );
            assert_eq!(
                decompress_limited(compression, &packed, 99_999),
                Err(Problem::TooLarge { limit: 99_999 }),
                "{compression}"
            );
        }
        assert_eq!(
            Problem::TooLarge { limit: 10 }.to_string(),
            "it unpacks to more than 10 bytes (no kernel module is that big: is the file \
             damaged?)"
        );
    }

    #[test]
    fn wrong_format_and_damage_are_named() {
        let data = sample(50_000);
        let zst = compress_with(Compression::Zstd, &data);
        let err = decompress(Compression::Xz, &zst).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not valid xz data: no xz magic: it is zstd data (is the file damaged? \
             reinstall the package that owns it)"
        );
        let err = decompress(Compression::Gzip, &data).unwrap_err();
        assert!(err.to_string().contains("uncompressed ELF file"), "{err}");
        for compression in ALL {
            let mut packed = compress_with(compression, &data);
            let middle = packed.len() / 2;
            packed[middle] ^= 0x55;
            assert!(
                matches!(
                    decompress(compression, &packed),
                    Err(Problem::Corrupt { .. })
                ),
                "{compression}"
            );
            let whole = compress_with(compression, &data);
            let truncated = &whole[..whole.len() - 5];
            assert!(
                matches!(
                    decompress(compression, truncated),
                    Err(Problem::Corrupt { .. })
                ),
                "{compression}"
            );
        }
    }

    #[test]
    fn a_huge_xz_dictionary_is_refused_before_allocating() {
        let mut packed = compress_with(Compression::Xz, b"module");
        // The LZMA2 filter's property byte is the last byte of the block
        // header before its padding; find it from the flags.
        assert_eq!(xz_first_dictionary(&packed), Some(1 << 20));
        let header_len = (usize::from(packed[12]) + 1) * 4;
        let block = &mut packed[12..12 + header_len];
        let at = block
            .windows(3)
            .position(|w| w == [0x21, 0x01, 16])
            .unwrap();
        block[at + 2] = 40;
        assert_eq!(xz_first_dictionary(&packed), Some(u64::from(u32::MAX)));
        assert_eq!(
            decompress(Compression::Xz, &packed),
            Err(Problem::XzDictionary {
                size: u64::from(u32::MAX)
            })
        );
    }

    #[test]
    fn damaged_input_never_panics() {
        // A cheap stand-in for the fuzzer: bit flips and truncations of
        // valid files of each format.
        let data = sample(4000);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for compression in ALL {
            let packed = compress_with(compression, &data);
            for _ in 0..1500 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut damaged = packed.clone();
                let at = usize::try_from(seed % packed.len() as u64).unwrap();
                damaged[at] ^= 1 << (seed >> 61);
                if seed & (1 << 40) != 0 {
                    damaged.truncate(at + 1);
                }
                let _ = decompress_limited(compression, &damaged, 1 << 20);
            }
        }
    }

    #[test]
    fn kernel_config_says_which_format_the_kernel_decompresses() {
        let config = |text: &str| KernelDecompress::from_config(text).compression();
        // Debian 12's kernels: modules are not compressed.
        assert_eq!(
            config(
                "CONFIG_MODULE_COMPRESS_NONE=y\n# CONFIG_MODULE_COMPRESS_GZIP is not set\n\
                 # CONFIG_MODULE_COMPRESS_XZ is not set\n# CONFIG_MODULE_COMPRESS_ZSTD is not set\n"
            ),
            None
        );
        // Compressed by the build, but not decompressed by the kernel.
        assert_eq!(config("CONFIG_MODULE_COMPRESS_ZSTD=y\n"), None);
        assert_eq!(
            config("CONFIG_MODULE_COMPRESS_ZSTD=y\nCONFIG_MODULE_DECOMPRESS=y\n"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            config("CONFIG_MODULE_DECOMPRESS=y\nCONFIG_MODULE_COMPRESS_GZIP=y\n"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            config(
                "CONFIG_MODULE_DECOMPRESS=y\nCONFIG_MODULE_COMPRESS_XZ=y\nCONFIG_MODULE_COMPRESS_GZIP=y"
            ),
            Some(Compression::Gzip)
        );
        assert_eq!(config("CONFIG_MODULE_DECOMPRESS=y\n"), None);
        assert_eq!(
            config("CONFIG_MODULE_DECOMPRESS=m\nCONFIG_MODULE_COMPRESS_XZ=y\n"),
            None
        );
        assert_eq!(
            config("# CONFIG_MODULE_DECOMPRESS=y\nCONFIG_MODULE_COMPRESS_XZ=y\n"),
            None
        );
    }

    #[test]
    fn the_first_readable_config_is_used() {
        let tmp = TempDir::new("decompress-config");
        let moddir = tmp.path().join("6.9.0-test");
        let candidates = kernel_config_candidates(&moddir);
        assert_eq!(
            candidates,
            [
                moddir.join("config"),
                moddir.join("build/.config"),
                PathBuf::from("/boot/config-6.9.0-test"),
            ]
        );
        assert_eq!(
            KernelDecompress::read_config(&candidates),
            KernelDecompress::NONE
        );
        tmp.write(
            "6.9.0-test/build/.config",
            b"CONFIG_MODULE_DECOMPRESS=y\nCONFIG_MODULE_COMPRESS_XZ=y\n",
        );
        assert_eq!(
            KernelDecompress::read_config(&candidates),
            KernelDecompress::only(Compression::Xz)
        );
        tmp.write("6.9.0-test/config", b"CONFIG_MODULE_COMPRESS_NONE=y\n");
        assert_eq!(
            KernelDecompress::read_config(&candidates),
            KernelDecompress::NONE
        );
    }
}
