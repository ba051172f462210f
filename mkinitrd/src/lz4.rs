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

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::mem;
use std::num::NonZeroUsize;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use crate::sink::{self, FileSink, SinkError};

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

/// A `Write` adapter that writes the legacy LZ4 format to `W`.
///
/// Input is cut into [`BLOCK_SIZE`] blocks, compressed on up to
/// [`Lz4Options::thread_count`] threads (started when a second block is
/// under way, so small images start none) and written in order as soon as
/// they are done. At most that many blocks are compressed at once, besides
/// the one being filled, so memory stays at about 17 MiB per thread.
/// Input and output buffers are reused, and allocated zeroed, which costs
/// only the pages that are used: a new 8 MiB buffer costs 2048 page faults
/// when first filled. As a [`FileSink`], it reads host files straight into
/// the block being filled, which starts off a page boundary
/// (`crate::sink::BUFFER_SKEW`: copies between page-aligned addresses
/// are slow on some CPUs).
/// Call [`Lz4Writer::finish`] to write the last block: dropping the writer
/// loses it. `flush` writes every completed block and flushes `W` but keeps
/// a partial block, so flushing does not change the output.
///
/// After an error of `W` the writer is broken: later calls fail.
///
/// # Example
/// ```
/// use std::io::Write;
/// use mkinitrd::lz4::{Lz4Writer, decompress_legacy};
/// let mut w = Lz4Writer::new(Vec::new());
/// w.write_all(b"hello, hello, hello")?;
/// let compressed = w.finish()?;
/// assert_eq!(&compressed[..4], b"\x02\x21\x4c\x18");
/// assert_eq!(decompress_legacy(&compressed)?, b"hello, hello, hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lz4Writer<W: Write> {
    out: W,
    /// The block being filled, up to [`BLOCK_SIZE`] bytes; allocated when
    /// the first byte comes.
    chunk: Option<Input>,
    /// Blocks allowed under way at once; 1 compresses on the caller's thread.
    threads: usize,
    /// The worker threads, once a second block is under way.
    pool: Option<Pool>,
    /// Results of the blocks under way, oldest first.
    in_flight: VecDeque<mpsc::Receiver<Done>>,
    /// Input buffers of finished blocks, for reuse.
    spare_inputs: Vec<Input>,
    /// Output buffers of written blocks, for reuse.
    spare_outputs: Vec<Vec<u8>>,
    /// The magic has been written.
    started: bool,
    /// A write failed; the output is incomplete.
    broken: bool,
}

/// The input of one block: [`BLOCK_SIZE`] bytes that start
/// [`crate::sink::BUFFER_SKEW`] bytes into a page, `len` of them filled.
struct Input {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Input {
    fn new() -> Input {
        let (buf, start) = sink::skewed_buffer(BLOCK_SIZE);
        Input { buf, start, len: 0 }
    }

    /// The filled bytes.
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The unfilled rest, at most `max` bytes of it.
    fn room(&mut self, max: usize) -> &mut [u8] {
        let from = self.start + self.len;
        let len = max.min(BLOCK_SIZE - self.len);
        &mut self.buf[from..from + len]
    }

    fn is_full(&self) -> bool {
        self.len == BLOCK_SIZE
    }
}

/// Compresses `input` into `output`, a buffer reused from block to block
/// (allocated on first use), and returns the compressed length.
fn compress_block(input: &[u8], output: &mut Vec<u8>) -> usize {
    // lz4_flex wants room for its own bound, a little over the format's.
    let bound = lz4_flex::block::get_maximum_output_size(BLOCK_SIZE);
    if output.len() < bound {
        *output = vec![0; bound];
    }
    match lz4_flex::block::compress_into(input, output) {
        Ok(len) => len,
        // Only a short output fails, which the bound rules out; the
        // allocating call cannot fail at all.
        Err(_) => {
            *output = lz4_flex::block::compress(input);
            output.len()
        }
    }
}

impl<W: Write> Lz4Writer<W> {
    /// A writer with the default options (a thread per CPU).
    pub fn new(out: W) -> Lz4Writer<W> {
        Lz4Writer::with_options(out, &Lz4Options::default())
    }

    /// A writer with `options`.
    pub fn with_options(out: W, options: &Lz4Options) -> Lz4Writer<W> {
        Lz4Writer {
            out,
            chunk: None,
            threads: options.thread_count(),
            pool: None,
            in_flight: VecDeque::new(),
            spare_inputs: Vec::new(),
            spare_outputs: Vec::new(),
            started: false,
            broken: false,
        }
    }

    /// Compresses and writes the last block, writes the magic if nothing
    /// was written (empty input gives just the magic, as with `lz4 -l`),
    /// flushes `W`, stops the threads and gives `W` back.
    pub fn finish(mut self) -> io::Result<W> {
        self.check_broken()?;
        let result = self.write_rest();
        self.broken |= result.is_err();
        result?;
        // The workers have no job left: dropping the pool joins them at once.
        drop(self.pool.take());
        Ok(self.out)
    }

    /// The last block, every block under way, the magic if it is still
    /// missing, and a flush.
    fn write_rest(&mut self) -> io::Result<()> {
        if let Some(chunk) = self.chunk.take_if(|chunk| chunk.len > 0) {
            if self.in_flight.is_empty() {
                // Nothing else is under way: no thread needed.
                self.compress_here(chunk)?;
            } else {
                self.submit(chunk)?;
            }
        }
        self.drain()?;
        self.start()?;
        self.out.flush()
    }

    /// Hands a full chunk to a worker, or compresses it here with one
    /// thread, then writes finished blocks so that at most `threads` stay
    /// under way.
    fn send_chunk(&mut self, chunk: Input) -> io::Result<()> {
        if self.threads == 1 {
            return self.compress_here(chunk);
        }
        self.submit(chunk)?;
        while self.in_flight.len() > self.threads {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Compresses `chunk` on this thread and writes it.
    fn compress_here(&mut self, mut chunk: Input) -> io::Result<()> {
        let mut output = self.spare_outputs.pop().unwrap_or_default();
        let len = compress_block(chunk.data(), &mut output);
        let written = self.write_block(&output[..len]);
        chunk.len = 0;
        self.spare_inputs.push(chunk);
        self.spare_outputs.push(output);
        written
    }

    /// Sends `chunk` to the pool (starting a worker if all are busy).
    fn submit(&mut self, chunk: Input) -> io::Result<()> {
        let output = self.spare_outputs.pop().unwrap_or_default();
        let busy = self.in_flight.len();
        let pool = self.pool.get_or_insert_with(Pool::new);
        let reply = pool.submit(chunk, output, busy, self.threads)?;
        self.in_flight.push_back(reply);
        Ok(())
    }

    /// Waits for every block under way and writes it.
    fn drain(&mut self) -> io::Result<()> {
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest block under way and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(reply) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let done = reply
            .recv()
            .map_err(|_| io::Error::other("an LZ4 compression thread died"))?;
        let written = self.write_block(&done.output[..done.len]);
        let mut input = done.input;
        input.len = 0;
        self.spare_inputs.push(input);
        self.spare_outputs.push(done.output);
        written
    }

    /// Writes one compressed block, after the magic: its size, then it.
    fn write_block(&mut self, block: &[u8]) -> io::Result<()> {
        // At most LZ4_compressBound(BLOCK_SIZE), about 8.4 MB.
        let size = u32::try_from(block.len())
            .map_err(|_| io::Error::other("LZ4 block of 4 GiB or more"))?;
        self.start()?;
        self.out.write_all(&size.to_le_bytes())?;
        self.out.write_all(block)
    }

    /// Writes the magic once, before the first block.
    fn start(&mut self) -> io::Result<()> {
        if !self.started {
            self.out.write_all(&LZ4_LEGACY_MAGIC_BYTES)?;
            self.started = true;
        }
        Ok(())
    }

    /// Fails once a write has failed.
    fn check_broken(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("an earlier write of the LZ4 data failed"));
        }
        Ok(())
    }

    /// The block being filled, with room in it, after a check that the
    /// writer works: a full one is sent first. An error breaks the writer.
    fn room(&mut self) -> io::Result<&mut Input> {
        self.check_broken()?;
        // A full chunk is sent only when more input comes (or at finish),
        // so that an error here consumes no input.
        if let Some(chunk) = self.chunk.take_if(|chunk| chunk.is_full()) {
            let sent = self.send_chunk(chunk);
            self.broken |= sent.is_err();
            sent?;
        }
        let spare = &mut self.spare_inputs;
        Ok(self
            .chunk
            .get_or_insert_with(|| spare.pop().unwrap_or_else(Input::new)))
    }
}

impl<W: Write> Write for Lz4Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            self.check_broken()?;
            return Ok(0);
        }
        let chunk = self.room()?;
        let room = chunk.room(buf.len());
        let n = room.len();
        room.copy_from_slice(&buf[..n]);
        chunk.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check_broken()?;
        let result = self.drain().and_then(|()| self.out.flush());
        self.broken |= result.is_err();
        result
    }
}

impl<W: Write> FileSink for Lz4Writer<W> {
    /// Reads `file` straight into the blocks.
    fn append_file(&mut self, mut file: &File, len: u64) -> Result<u64, SinkError> {
        let mut copied = 0;
        while copied < len {
            let left = usize::try_from(len - copied).unwrap_or(usize::MAX);
            let chunk = self.room().map_err(SinkError::Write)?;
            match file.read(chunk.room(left)) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.len += n;
                    copied += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SinkError::Read(e)),
            }
        }
        Ok(copied)
    }
}

/// A compressed block coming back from a worker, with its buffers.
struct Done {
    input: Input,
    /// The compressed block is its first `len` bytes.
    output: Vec<u8>,
    len: usize,
}

/// A block for a worker to compress.
struct Job {
    input: Input,
    /// Where to compress it: a buffer to reuse, or empty.
    output: Vec<u8>,
    reply: mpsc::Sender<Done>,
}

/// Worker threads taking [`Job`]s from one queue. Threads are spawned, not
/// scoped: the writer outlives any scope its constructor could open. Dropping
/// the pool closes the queue and joins the workers.
struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool with no worker yet.
    fn new() -> Pool {
        let (jobs, queue) = mpsc::channel();
        Pool {
            jobs: Some(jobs),
            queue: Arc::new(Mutex::new(queue)),
            workers: Vec::new(),
        }
    }

    /// Queues a block, starting a worker when the `busy` blocks under way
    /// keep every worker busy and fewer than `max` run. Returns where its
    /// result will come.
    fn submit(
        &mut self,
        input: Input,
        output: Vec<u8>,
        busy: usize,
        max: usize,
    ) -> io::Result<mpsc::Receiver<Done>> {
        if busy >= self.workers.len() && self.workers.len() < max {
            let queue = Arc::clone(&self.queue);
            let spawned = thread::Builder::new()
                .name("mkinitrd-lz4".into())
                .spawn(move || run_worker(&queue));
            match spawned {
                Ok(worker) => self.workers.push(worker),
                // Fewer threads only make it slower, not different.
                Err(_) if !self.workers.is_empty() => {}
                Err(e) => return Err(e),
            }
        }
        let (reply, result) = mpsc::channel();
        let job = Job {
            input,
            output,
            reply,
        };
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        match sent {
            Some(Ok(())) => Ok(result),
            _ => Err(io::Error::other("the LZ4 compression threads stopped")),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends each worker after its current job.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            // A worker that panicked has nothing more to report.
            let _ = worker.join();
        }
    }
}

/// A worker: compresses jobs until the queue closes.
fn run_worker(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for a job, not while
        // compressing it. A poisoned lock still guards a valid receiver.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(mut job) = job else {
            return;
        };
        let len = compress_block(job.input.data(), &mut job.output);
        // The writer may be gone (dropped after an error): nothing to do.
        let _ = job.reply.send(Done {
            input: job.input,
            output: job.output,
            len,
        });
    }
}

/// Compresses `data` into the legacy format.
///
/// # Example
/// ```
/// use mkinitrd::lz4::{Lz4Options, compress_legacy, decompress_legacy};
/// let data = vec![7; 100_000];
/// let compressed = compress_legacy(&data, &Lz4Options::default());
/// assert!(compressed.len() < 1000);
/// assert_eq!(decompress_legacy(&compressed)?, data);
/// # Ok::<(), mkinitrd::lz4::Lz4Error>(())
/// ```
pub fn compress_legacy(data: &[u8], options: &Lz4Options) -> Vec<u8> {
    let mut writer = Lz4Writer::with_options(Vec::new(), options);
    // Writes to a Vec cannot fail, and the blocks fit the size field.
    let written = writer.write_all(data).and_then(|()| writer.finish());
    written.unwrap_or_default()
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut bytes = original.clone();
            for _ in 0..(next() % 8 + 1) {
                let at = usize::try_from(next() % bytes.len() as u64).unwrap();
                bytes[at] = next().to_le_bytes()[0];
            }
            let cut = usize::try_from(next() % (bytes.len() as u64 + 1)).unwrap();
            let _ = decompress_legacy(&bytes[..cut]);
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
