//! [`Lz4Writer`]: cuts its input into [`BLOCK_SIZE`] blocks, has the
//! [`pool`](super::pool) compress them in order and writes each with its
//! size field after the magic. It is a [`FileSink`], reading host files
//! straight into its blocks.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::mpsc;

use super::pool::{Done, Input, Pool, compress_block};
use super::*;
use crate::sink::{FileSink, SinkError};

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
