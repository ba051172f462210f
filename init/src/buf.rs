//! Fixed-size buffers that stand in for `String` and `CString`: init has no
//! allocator. A [`Line`] collects one message for a single `write`; a
//! [`CPath`] joins byte strings into a NUL-terminated path or argument.

use core::ffi::CStr;
use core::fmt;
use rustix::io::Errno;

/// One message line, formatted with `core::fmt` into a stack buffer and
/// written with one `write(2)`, so lines from init and the kernel never
/// interleave mid-line. Text beyond the capacity is cut and marked `...`.
pub struct Line<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Line<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Line {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// Appends raw bytes, cutting what does not fit.
    pub fn push(&mut self, bytes: &[u8]) {
        // Keep room for the "...\n" that marks a cut line.
        let room = N.saturating_sub(4).saturating_sub(self.len);
        let take = bytes.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        self.truncated |= take < bytes.len();
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The line, ending in one newline.
    pub fn finish(&mut self) -> &[u8] {
        if self.truncated {
            self.buf[self.len..self.len + 3].copy_from_slice(b"...");
            self.len += 3;
            self.truncated = false;
        }
        if self.len == 0 || self.buf[self.len - 1] != b'\n' {
            self.buf[self.len] = b'\n';
            self.len += 1;
        }
        &self.buf[..self.len]
    }
}

impl<const N: usize> Default for Line<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for Line<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// Displays bytes from the command line or a directory entry: printable
/// ASCII as is, anything else as `\xNN`, so a hostile name cannot drive the
/// console.
#[derive(Clone, Copy, Debug)]
pub struct Show<'a>(pub &'a [u8]);

impl fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0 {
            if (0x20..0x7f).contains(&byte) {
                fmt::Write::write_char(f, char::from(byte))?;
            } else {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// A NUL-terminated string built from parts, on the stack.
pub struct CPath<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> CPath<N> {
    /// Joins `parts` into one C string.
    ///
    /// # Errors
    /// `NAMETOOLONG` when it does not fit, `INVAL` when a part holds a NUL.
    ///
    /// # Example
    /// ```
    /// use init::buf::CPath;
    /// let path = CPath::<64>::join(&[b"/run/mnt/", b"mnt0"]).unwrap();
    /// assert_eq!(path.as_c_str().to_bytes(), b"/run/mnt/mnt0");
    /// ```
    pub fn join(parts: &[&[u8]]) -> Result<Self, Errno> {
        let mut path = CPath {
            buf: [0; N],
            len: 0,
        };
        for part in parts {
            if part.contains(&0) {
                return Err(Errno::INVAL);
            }
            let end = path.len + part.len();
            if end >= N {
                return Err(Errno::NAMETOOLONG);
            }
            path.buf[path.len..end].copy_from_slice(part);
            path.len = end;
        }
        Ok(path)
    }

    /// The string, NUL-terminated.
    pub fn as_c_str(&self) -> &CStr {
        // The buffer is zeroed past `len` and parts hold no NUL, so the
        // first NUL is at `len`.
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or_default()
    }

    /// The string without its NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A list of C strings stored back to back: an argv or envp for `execve`.
pub struct CStrList<const BYTES: usize, const COUNT: usize> {
    bytes: [u8; BYTES],
    used: usize,
    starts: [usize; COUNT],
    count: usize,
}

impl<const BYTES: usize, const COUNT: usize> CStrList<BYTES, COUNT> {
    /// An empty list.
    pub const fn new() -> Self {
        CStrList {
            bytes: [0; BYTES],
            used: 0,
            starts: [0; COUNT],
            count: 0,
        }
    }

    /// Appends one string, the concatenation of `parts`.
    ///
    /// # Errors
    /// `TOOBIG` when the list is full, `INVAL` when a part holds a NUL.
    pub fn push(&mut self, parts: &[&[u8]]) -> Result<(), Errno> {
        if self.count == COUNT {
            return Err(Errno::TOOBIG);
        }
        let start = self.used;
        let mut end = start;
        for part in parts {
            if part.contains(&0) {
                return Err(Errno::INVAL);
            }
            // Keep one byte for the NUL.
            if end + part.len() >= BYTES {
                return Err(Errno::TOOBIG);
            }
            self.bytes[end..end + part.len()].copy_from_slice(part);
            end += part.len();
        }
        self.bytes[end] = 0;
        self.used = end + 1;
        self.starts[self.count] = start;
        self.count += 1;
        Ok(())
    }

    /// Empties the list, keeping its storage.
    pub fn clear(&mut self) {
        self.used = 0;
        self.count = 0;
    }

    /// The strings, in order.
    pub fn iter(&self) -> impl Iterator<Item = &CStr> + Clone {
        self.starts[..self.count].iter().map(|&start| {
            CStr::from_bytes_until_nul(&self.bytes[start..self.used]).unwrap_or_default()
        })
    }

    /// The first string, if any.
    pub fn first(&self) -> Option<&CStr> {
        self.iter().next()
    }

    /// How many strings are held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl<const BYTES: usize, const COUNT: usize> Default for CStrList<BYTES, COUNT> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn line_ends_in_one_newline() {
        let mut line = Line::<32>::new();
        write!(line, "init: {}", 42).unwrap();
        assert_eq!(line.finish(), b"init: 42\n");
        let mut line = Line::<32>::new();
        line.push(b"done\n");
        assert_eq!(line.finish(), b"done\n");
    }

    #[test]
    fn long_line_is_cut_and_marked() {
        let mut line = Line::<16>::new();
        write!(line, "{}", "x".repeat(100)).unwrap();
        let out = line.finish();
        assert_eq!(out, b"xxxxxxxxxxxx...\n");
        assert!(out.len() <= 16);
    }

    #[test]
    fn show_escapes_control_bytes() {
        assert_eq!(Show(b"a\x1b[2Jb\xff").to_string(), "a\\x1b[2Jb\\xff");
    }

    #[test]
    fn cstr_list_joins_parts() {
        let mut list = CStrList::<16, 3>::new();
        list.push(&[b"a", b"=", b"b"]).unwrap();
        list.push(&[]).unwrap();
        let all: Vec<_> = list.iter().map(|s| s.to_bytes().to_vec()).collect();
        assert_eq!(all, [b"a=b".to_vec(), Vec::new()]);
        assert_eq!(list.push(&[b"0123456789ab"]), Err(Errno::TOOBIG));
        assert_eq!(list.push(&[b"x\0"]), Err(Errno::INVAL));
        list.push(&[b"z"]).unwrap();
        assert_eq!(list.push(&[b"y"]), Err(Errno::TOOBIG));
        assert_eq!(list.len(), 3);
        list.clear();
        assert!(list.is_empty());
        list.push(&[b"0123456789abcd"]).unwrap();
        let all: Vec<_> = list.iter().map(|s| s.to_bytes().to_vec()).collect();
        assert_eq!(all, [b"0123456789abcd".to_vec()]);
    }

    #[test]
    fn cpath_limits() {
        assert_eq!(
            CPath::<8>::join(&[b"1234567"]).unwrap().as_bytes(),
            b"1234567"
        );
        assert_eq!(
            CPath::<8>::join(&[b"12345678"]).err(),
            Some(Errno::NAMETOOLONG)
        );
        assert_eq!(CPath::<8>::join(&[b"a\0b"]).err(), Some(Errno::INVAL));
        assert_eq!(CPath::<8>::join(&[]).unwrap().as_c_str().to_bytes(), b"");
    }
}
