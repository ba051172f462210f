//! Reading the legacy format back: [`Decoder`] is fed chunks of any size,
//! as the kernel's `unlz4` is, and [`decompress_legacy`] reads a slice;
//! their error is [`Lz4Error`].

use std::fmt;
use std::mem;

use super::*;

/// What is wrong with LZ4 legacy data being read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The data does not start with [`LZ4_LEGACY_MAGIC`]; holds the bytes.
    BadMagic([u8; 4]),
    /// A block size is over [`MAX_COMPRESSED_BLOCK`]; holds the field.
    BlockTooLarge([u8; 4]),
    /// A block does not decompress to at most [`BLOCK_SIZE`] bytes; holds
    /// lz4_flex's reason.
    BadBlock(String),
    /// The input ends inside the magic or a block; holds which.
    Truncated(&'static str),
    /// The data decompresses to more than [`MAX_DECOMPRESSED`] bytes.
    TooMuchOutput,
    /// Non-zero bytes follow the data where only zero padding may.
    TrailingData,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::BadMagic(magic) => write!(
                f,
                "bad magic {} (LZ4 legacy data starts with 02 21 4c 18; \
                 compress with lz4 -l)",
                hex_bytes(magic)
            ),
            Problem::BlockTooLarge(field) => {
                write!(
                    f,
                    "block size {} is over LZ4_compressBound(8 MiB) = {MAX_COMPRESSED_BLOCK}",
                    u32::from_le_bytes(*field)
                )?;
                if field == b"0707" {
                    // A plain archive glued to the end of LZ4 data.
                    f.write_str(
                        " (a cpio archive follows the LZ4 data: put plain archives \
                         first, or end the LZ4 data with 4 zero bytes)",
                    )?;
                }
                Ok(())
            }
            Problem::BadBlock(why) => write!(f, "corrupt block: {why}"),
            Problem::Truncated(what) => write!(f, "the input ends inside {what}"),
            Problem::TooMuchOutput => write!(
                f,
                "it decompresses to more than {} GiB",
                MAX_DECOMPRESSED >> 30
            ),
            Problem::TrailingData => f.write_str("non-zero bytes follow the end of the LZ4 data"),
        }
    }
}

/// `02 21 4c 18` for error messages.
fn hex_bytes(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(" ")
}

/// Why legacy LZ4 data cannot be read: what is wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lz4Error {
    /// Byte offset in the input of the bad magic, size or block.
    pub offset: u64,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for Lz4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.problem)
    }
}

impl std::error::Error for Lz4Error {}

/// What a [`Decoder`] calls with the input offset and the decompressed
/// data of each block; its error `E` stops the decoder and is returned.
pub type OnBlock<'a, E> = dyn FnMut(u64, &[u8]) -> Result<(), E> + 'a;

/// Why a [`Decoder`] step stopped: the data, or the block callback.
enum Stop<E> {
    Lz4(Lz4Error),
    Block(E),
}

/// Where a [`Decoder`] is in its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DecodeState {
    /// Collecting the magic into `field`.
    Magic,
    /// Collecting a block size (or a repeated magic, or an end mark).
    Size,
    /// Collecting a block of `size` bytes starting at input offset `start`.
    Block { size: usize, start: u64 },
    /// After a zero size: the stream ended before its input.
    Ended,
}

/// Reads legacy LZ4 data fed in chunks of any size, as the kernel's
/// `unlz4` does, and hands each decompressed block to a callback.
///
/// It checks the magic, skips a repeated magic (concatenated `lz4 -l`
/// outputs), ends at a zero size (the kernel's end mark, followed by
/// anything), and refuses block sizes over [`MAX_COMPRESSED_BLOCK`] before
/// collecting them. It holds at most one compressed block and one
/// decompressed block (about 17 MiB). The first error stops it.
///
/// # Example
/// ```
/// use mkinitrd::lz4::{Decoder, Lz4Options, compress_legacy};
/// let compressed = compress_legacy(b"abcabcabc", &Lz4Options::default());
/// let mut decoder = Decoder::new(0);
/// let mut out = Vec::new();
/// for chunk in compressed.chunks(3) {
///     decoder.feed(chunk, &mut |_offset, data| {
///         out.extend_from_slice(data);
///         Ok(())
///     })?;
/// }
/// assert!(decoder.finish()?.is_empty());
/// assert_eq!(out, b"abcabcabc");
/// # Ok::<(), mkinitrd::lz4::Lz4Error>(())
/// ```
pub struct Decoder {
    state: DecodeState,
    /// Input offset of the next byte, counted from the start given to `new`.
    offset: u64,
    /// Where the field being collected starts.
    field_start: u64,
    /// The magic, size or block being collected.
    field: Vec<u8>,
    /// The decompressed block; allocated at the first block.
    out: Vec<u8>,
    /// The first error, returned again by every later call.
    failed: Option<Lz4Error>,
}

impl Decoder {
    /// A decoder whose input starts at byte `start` of a larger input
    /// (offsets in errors count from there).
    pub fn new(start: u64) -> Decoder {
        Decoder {
            state: DecodeState::Magic,
            offset: start,
            field_start: start,
            field: Vec::new(),
            out: Vec::new(),
            failed: None,
        }
    }

    /// True after the end mark (a zero size): later input is not LZ4 data.
    pub fn is_ended(&self) -> bool {
        self.state == DecodeState::Ended
    }

    /// Reads `input`, calling `on_block(offset, data)` with the input
    /// offset and decompressed data of each block completed in it. Returns
    /// the bytes consumed: all of `input` unless the stream ended (end mark
    /// consumed) inside it.
    ///
    /// Errors: [`Lz4Error`] (as `E`), and those of `on_block`.
    pub fn feed<E: From<Lz4Error>>(
        &mut self,
        mut input: &[u8],
        on_block: &mut OnBlock<'_, E>,
    ) -> Result<usize, E> {
        self.check_failed()?;
        let len = input.len();
        while !input.is_empty() {
            match self.step(&mut input, on_block) {
                Ok(true) => {}
                Ok(false) => break,
                Err(Stop::Lz4(error)) => {
                    self.failed = Some(error.clone());
                    return Err(error.into());
                }
                Err(Stop::Block(error)) => return Err(error),
            }
        }
        Ok(len - input.len())
    }

    /// Ends the input. Returns the 1 to 3 bytes of a size field cut short
    /// by the end of input, which the kernel leaves to `unpack_to_rootfs`
    /// (zero padding is fine there, anything else is junk), or nothing.
    ///
    /// Errors: [`Lz4Error`] when the input ends inside the magic or a
    /// block.
    pub fn finish(self) -> Result<Vec<u8>, Lz4Error> {
        self.check_failed()?;
        let what = match self.state {
            DecodeState::Size | DecodeState::Ended => return Ok(self.field),
            DecodeState::Magic => "the magic",
            DecodeState::Block { .. } => "a block",
        };
        Err(bad(self.field_start, Problem::Truncated(what)))
    }

    /// Returns the first error again, if there was one.
    fn check_failed(&self) -> Result<(), Lz4Error> {
        match &self.failed {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Takes one field (or as much of it as `input` holds). Returns false
    /// when the stream has ended.
    fn step<E>(
        &mut self,
        input: &mut &[u8],
        on_block: &mut OnBlock<'_, E>,
    ) -> Result<bool, Stop<E>> {
        match self.state {
            DecodeState::Ended => return Ok(false),
            DecodeState::Magic | DecodeState::Size => {
                let Some(word) = self.collect(input, SIZE_LEN) else {
                    return Ok(true);
                };
                let field: [u8; 4] = word.try_into().unwrap_or_default();
                self.field.clear();
                self.take_field(field).map_err(Stop::Lz4)?;
            }
            DecodeState::Block { size, start } => {
                if self.field.is_empty() && input.len() >= size {
                    // The whole block is in this chunk: no copy.
                    let (block, rest) = input.split_at(size);
                    *input = rest;
                    self.offset += size as u64;
                    self.decode(block, start, on_block)?;
                } else {
                    if self.collect(input, size).is_none() {
                        return Ok(true);
                    }
                    let block = mem::take(&mut self.field);
                    let decoded = self.decode(&block, start, on_block);
                    self.field = block;
                    self.field.clear();
                    decoded?;
                }
                self.state = DecodeState::Size;
                self.field_start = self.offset;
            }
        }
        Ok(self.state != DecodeState::Ended)
    }

    /// Acts on a complete magic or size field.
    fn take_field(&mut self, field: [u8; 4]) -> Result<(), Lz4Error> {
        let word = u32::from_le_bytes(field);
        let at = self.field_start;
        self.field_start = self.offset;
        if self.state == DecodeState::Magic {
            if word != LZ4_LEGACY_MAGIC {
                return Err(bad(at, Problem::BadMagic(field)));
            }
            self.state = DecodeState::Size;
            return Ok(());
        }
        // decompress_unlz4.c: a magic where a size is expected starts
        // another stream, which simply continues this one.
        if word == LZ4_LEGACY_MAGIC {
            return Ok(());
        }
        // decompress_unlz4.c: a zero size is the end (zero padding).
        if word == 0 {
            self.state = DecodeState::Ended;
            return Ok(());
        }
        let size = usize::try_from(word).unwrap_or(usize::MAX);
        if size > MAX_COMPRESSED_BLOCK {
            return Err(bad(at, Problem::BlockTooLarge(field)));
        }
        self.state = DecodeState::Block {
            size,
            start: self.offset,
        };
        Ok(())
    }

    /// Moves input into `field` until it holds `want` bytes; then returns it.
    fn collect(&mut self, input: &mut &[u8], want: usize) -> Option<&[u8]> {
        let n = want.saturating_sub(self.field.len()).min(input.len());
        self.field.extend_from_slice(&input[..n]);
        *input = &input[n..];
        self.offset += n as u64;
        (self.field.len() == want).then_some(&self.field[..])
    }

    /// Decompresses one block starting at input offset `start` and hands
    /// it on.
    fn decode<E>(
        &mut self,
        block: &[u8],
        start: u64,
        on_block: &mut OnBlock<'_, E>,
    ) -> Result<(), Stop<E>> {
        if self.out.is_empty() {
            // Zero pages until written: small outputs touch little of it.
            self.out = vec![0; BLOCK_SIZE];
        }
        let n = lz4_flex::block::decompress_into(block, &mut self.out)
            .map_err(|e| Stop::Lz4(bad(start, Problem::BadBlock(e.to_string()))))?;
        on_block(start, &self.out[..n]).map_err(Stop::Block)
    }
}

/// The error for `problem` at `offset`.
fn bad(offset: u64, problem: Problem) -> Lz4Error {
    Lz4Error { offset, problem }
}

/// Decompresses legacy LZ4 data that fills `data`, but for zero padding
/// after an end mark or at the end.
///
/// Safe on hostile input: sizes are checked before use, blocks decompress
/// into a fixed 8 MiB buffer, and the output is capped at
/// [`MAX_DECOMPRESSED`]. Errors: [`Lz4Error`] with the offset.
pub fn decompress_legacy(data: &[u8]) -> Result<Vec<u8>, Lz4Error> {
    let mut decoder = Decoder::new(0);
    let mut out = Vec::new();
    let used = decoder.feed(data, &mut |offset, block| {
        if (out.len() + block.len()) as u64 > MAX_DECOMPRESSED {
            return Err(bad(offset, Problem::TooMuchOutput));
        }
        out.extend_from_slice(block);
        Ok(())
    })?;
    let rest = &data[used..];
    let leftover = decoder.finish()?;
    let tail_start = (data.len() - rest.len() - leftover.len()) as u64;
    let tail = leftover.iter().chain(rest);
    if let Some(at) = tail.into_iter().position(|&b| b != 0) {
        return Err(bad(tail_start + at as u64, Problem::TrailingData));
    }
    Ok(out)
}
