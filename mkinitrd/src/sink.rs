//! Where archive bytes go: the [`FileSink`] outputs that take a host
//! file's data whole (a plain file, which copies it in the kernel with
//! [`copy_into`]; the block buffers of the LZ4 writer and of the image
//! writer's thread, which read it straight in), and the page-skewed
//! buffers those blocks live in (`skewed_buffer`). The cpio writer
//! hands file data here; nothing here knows the cpio format. No state.

use std::fs::File;
use std::io::{self, Read, Write};

use rustix::io::Errno;

/// An output that takes the data of a host file whole, for
/// [`crate::cpio::Writer::copy_file`]: a file, which copies it in the kernel, or a
/// buffer that reads it straight in (`crate::write` has one).
pub trait FileSink: Write {
    /// Appends the `len` bytes of `file` that follow its position, and
    /// returns how many it appended: fewer only when `file` ends first.
    fn append_file(&mut self, file: &File, len: u64) -> Result<u64, SinkError>;
}

/// Why a [`FileSink`] failed.
#[derive(Debug)]
pub enum SinkError {
    /// Reading the host file failed.
    Read(io::Error),
    /// Writing the output failed.
    Write(io::Error),
    /// A copy in the kernel failed: its errno does not say which end.
    Copy(io::Error),
}

/// Where in a page the buffers that host files are read into start. Host
/// file data is page-aligned in the page cache and in the archive
/// ([`DATA_ALIGN`]), and on some x86 CPUs a copy between addresses at the
/// same offset in their pages is several times slower: reading 25 MB into
/// a page-aligned buffer took 13 ms, into one 64 bytes further 4.8 ms (AMD
/// EPYC, `rep movsb`).
pub(crate) const BUFFER_SKEW: usize = 64;
/// The page size [`BUFFER_SKEW`] is counted in.
pub(crate) const PAGE: usize = 4096;

/// A zeroed buffer with room for `len` bytes from the offset it comes
/// with, which is [`BUFFER_SKEW`] bytes into a page. Zeroed memory costs
/// only the pages that get used.
pub(crate) fn skewed_buffer(len: usize) -> (Vec<u8>, usize) {
    let buf = vec![0; len + PAGE];
    let start = (PAGE + BUFFER_SKEW - buf.as_ptr().addr() % PAGE) % PAGE;
    (buf, start)
}

/// Appends up to `len` bytes of `file` to `out` through a buffer; fewer
/// only when `file` ends first.
pub(crate) fn read_into(out: &mut impl Write, mut file: &File, len: u64) -> Result<u64, SinkError> {
    // Small files come here: one read of them fits.
    let mut buf = [0; 4096];
    let mut copied = 0;
    while copied < len {
        let want = usize::try_from(len - copied).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SinkError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(SinkError::Write)?;
        copied += n as u64;
    }
    Ok(copied)
}

/// Bytes asked of one `copy_file_range` call: Linux copies at most
/// `MAX_RW_COUNT` (2 GiB - 4 KiB) per call anyway.
const COPY_CHUNK: usize = 1 << 30;

/// Copies `len` bytes from `source` to `dest`, each at and advancing its
/// file position, with `copy_file_range(2)`: the data does not pass
/// through user space, and copy-on-write filesystems (btrfs, XFS) share
/// the extents when the offsets are block-aligned.
///
/// Where the call does not work before anything is copied (a kernel
/// before 4.5, files on two filesystems of different types since 5.19
/// (EXDEV), a seccomp filter, procfs files that report 0 bytes), it falls
/// back to `std::io::copy`, which tries `sendfile(2)` and then a read/write
/// loop. Returns the bytes copied: fewer than `len` when `source` ended
/// first. Unlike `std::io::copy`, it stats neither file.
///
/// # Example
/// ```
/// use std::io::{Seek, Write};
/// let dir = std::env::temp_dir();
/// let from = dir.join(format!("doc-copy-from-{}", std::process::id()));
/// let to = dir.join(format!("doc-copy-to-{}", std::process::id()));
/// std::fs::write(&from, b"0123456789")?;
/// let mut dest = std::fs::File::create(&to)?;
/// dest.write_all(b"head:")?;
/// let copied = mkinitrd::sink::copy_into(&dest, &std::fs::File::open(&from)?, 4)?;
/// assert_eq!(copied, 4);
/// assert_eq!(std::fs::read(&to)?, b"head:0123");
/// # std::fs::remove_file(&from)?;
/// # std::fs::remove_file(&to)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// - [`copy_file_range(2)`](https://man7.org/linux/man-pages/man2/copy_file_range.2.html)
pub fn copy_into(dest: &File, source: &File, len: u64) -> io::Result<u64> {
    let mut copied = 0;
    while copied < len {
        let want = usize::try_from(len - copied).map_or(COPY_CHUNK, |n| n.min(COPY_CHUNK));
        match rustix::fs::copy_file_range(source, None, dest, None, want) {
            // The end of the source, or (before any byte) a file system
            // that reports no data, such as procfs: read() decides which.
            Ok(0) if copied == 0 => break,
            Ok(0) => return Ok(copied),
            Ok(n) => copied += n as u64,
            Err(Errno::INTR) => continue,
            // The call cannot copy between these files at all.
            Err(
                Errno::XDEV
                | Errno::NOSYS
                | Errno::OPNOTSUPP
                | Errno::INVAL
                | Errno::PERM
                | Errno::BADF,
            ) if copied == 0 => break,
            Err(errno) => return Err(errno.into()),
        }
    }
    if copied == len {
        return Ok(copied);
    }
    let mut dest = dest;
    let rest = io::copy(&mut source.take(len - copied), &mut dest)?;
    Ok(copied + rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;

    #[test]
    fn copy_into_copies_at_both_positions() {
        let tmp = TempDir::new("output-copy");
        let data: Vec<u8> = (0..300_000_u32).map(|i| i.to_le_bytes()[0]).collect();
        let from = tmp.write("from", &data);
        let source = File::open(&from).unwrap();
        let mut dest = File::create(tmp.path().join("to")).unwrap();
        dest.write_all(b"head").unwrap();
        assert_eq!(copy_into(&dest, &source, 100_000).unwrap(), 100_000);
        assert_eq!(copy_into(&dest, &source, 150_000).unwrap(), 150_000);
        // Only 50000 bytes are left in the source.
        assert_eq!(copy_into(&dest, &source, 70_000).unwrap(), 50_000);
        assert_eq!(copy_into(&dest, &source, 1).unwrap(), 0);
        let written = fs::read(tmp.path().join("to")).unwrap();
        assert_eq!(&written[..4], b"head");
        assert!(written[4..] == data[..]);
    }

    #[test]
    fn copy_into_falls_back_where_the_kernel_cannot_copy() {
        // procfs files report no size: copy_file_range copies nothing.
        let tmp = TempDir::new("output-copy-proc");
        let source = File::open("/proc/self/status").unwrap();
        let dest = File::create(tmp.path().join("to")).unwrap();
        let copied = copy_into(&dest, &source, 6).unwrap();
        assert_eq!(copied, 6);
        assert_eq!(fs::read(tmp.path().join("to")).unwrap(), b"Name:\t"[..]);
    }
}
