//! The threads that compress [`Lz4Writer`](super::Lz4Writer)'s blocks: a
//! queue of jobs, each an input block and the buffer to compress it into,
//! handed back in order with their buffers for reuse.

use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use super::*;
use crate::sink;

/// The input of one block: [`BLOCK_SIZE`] bytes that start
/// [`crate::sink::BUFFER_SKEW`] bytes into a page, `len` of them filled.
pub(super) struct Input {
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) len: usize,
}

impl Input {
    pub(super) fn new() -> Input {
        let (buf, start) = sink::skewed_buffer(BLOCK_SIZE);
        Input { buf, start, len: 0 }
    }

    /// The filled bytes.
    pub(super) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The unfilled rest, at most `max` bytes of it.
    pub(super) fn room(&mut self, max: usize) -> &mut [u8] {
        let from = self.start + self.len;
        let len = max.min(BLOCK_SIZE - self.len);
        &mut self.buf[from..from + len]
    }

    pub(super) fn is_full(&self) -> bool {
        self.len == BLOCK_SIZE
    }
}

/// Compresses `input` into `output`, a buffer reused from block to block
/// (allocated on first use), and returns the compressed length.
pub(super) fn compress_block(input: &[u8], output: &mut Vec<u8>) -> usize {
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
/// A compressed block coming back from a worker, with its buffers.
pub(super) struct Done {
    pub(super) input: Input,
    /// The compressed block is its first `len` bytes.
    pub(super) output: Vec<u8>,
    pub(super) len: usize,
}

/// A block for a worker to compress.
pub(super) struct Job {
    pub(super) input: Input,
    /// Where to compress it: a buffer to reuse, or empty.
    pub(super) output: Vec<u8>,
    pub(super) reply: mpsc::Sender<Done>,
}

/// Worker threads taking [`Job`]s from one queue. Threads are spawned, not
/// scoped: the writer outlives any scope its constructor could open. Dropping
/// the pool closes the queue and joins the workers.
pub(super) struct Pool {
    pub(super) jobs: Option<mpsc::Sender<Job>>,
    pub(super) queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    pub(super) workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool with no worker yet.
    pub(super) fn new() -> Pool {
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
    pub(super) fn submit(
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
