//! Error text for the errnos init can meet. Without libc there is no
//! `strerror`, and rustix alone prints `os error N`; users read these lines
//! on a serial console, so they get glibc's words.

use core::fmt;
use rustix::io::Errno;

/// Two constants from one list of `(ERRNO, "text")`: the errnos in order,
/// and their texts in one string, each ended by a NUL. Separate arrays hold
/// no pointer per entry: a table of `(Errno, &str)` put 1.3 KB of
/// relocated pointers into init, which has a 64 KiB budget.
macro_rules! errno_table {
    ($(($errno:ident, $text:literal)),* $(,)?) => {
        /// The errnos with a text, in the order of [`TEXTS`].
        const CODES: &[Errno] = &[$(Errno::$errno),*];
        /// Their texts, each ended by a NUL.
        const TEXTS: &[u8] = concat!($($text, "\0"),*).as_bytes();
    };
}

// glibc's `strerror` text for the errnos mount, finit_module, execve and
// the file calls init makes can return.
errno_table! {
    (PERM, "Operation not permitted"),
    (NOENT, "No such file or directory"),
    (SRCH, "No such process"),
    (INTR, "Interrupted system call"),
    (IO, "Input/output error"),
    (NXIO, "No such device or address"),
    (TOOBIG, "Argument list too long"),
    (NOEXEC, "Exec format error"),
    (BADF, "Bad file descriptor"),
    (CHILD, "No child processes"),
    (AGAIN, "Resource temporarily unavailable"),
    (NOMEM, "Cannot allocate memory"),
    (ACCESS, "Permission denied"),
    (FAULT, "Bad address"),
    (NOTBLK, "Block device required"),
    (BUSY, "Device or resource busy"),
    (EXIST, "File exists"),
    (XDEV, "Invalid cross-device link"),
    (NODEV, "No such device"),
    (NOTDIR, "Not a directory"),
    (ISDIR, "Is a directory"),
    (INVAL, "Invalid argument"),
    (NFILE, "Too many open files in system"),
    (MFILE, "Too many open files"),
    (NOTTY, "Inappropriate ioctl for device"),
    (TXTBSY, "Text file busy"),
    (FBIG, "File too large"),
    (NOSPC, "No space left on device"),
    (SPIPE, "Illegal seek"),
    (ROFS, "Read-only file system"),
    (MLINK, "Too many links"),
    (PIPE, "Broken pipe"),
    (RANGE, "Numerical result out of range"),
    (NAMETOOLONG, "File name too long"),
    (NOSYS, "Function not implemented"),
    (NOTEMPTY, "Directory not empty"),
    (LOOP, "Too many levels of symbolic links"),
    (NODATA, "No data available"),
    (TIME, "Timer expired"),
    (NOLINK, "Link has been severed"),
    (PROTO, "Protocol error"),
    (BADMSG, "Bad message"),
    (OVERFLOW, "Value too large for defined data type"),
    (ILSEQ, "Invalid or incomplete multibyte or wide character"),
    (NOTSUP, "Operation not supported"),
    (CONNREFUSED, "Connection refused"),
    (TIMEDOUT, "Connection timed out"),
    (HOSTDOWN, "Host is down"),
    (STALE, "Stale file handle"),
    (NOMEDIUM, "No medium found"),
    (MEDIUMTYPE, "Wrong medium type"),
    (CANCELED, "Operation canceled"),
    (NOKEY, "Required key not available"),
    (KEYEXPIRED, "Key has expired"),
    (KEYREVOKED, "Key has been revoked"),
    (KEYREJECTED, "Key was rejected by service"),
}

/// The text of `errno`, if the table has it.
fn text(errno: Errno) -> Option<&'static [u8]> {
    let index = CODES.iter().position(|&code| code == errno)?;
    TEXTS.split(|&b| b == 0).nth(index)
}

/// Displays an errno as glibc's text, or `os error N` for one not in the
/// table.
///
/// # Example
/// ```
/// use init::errno::Text;
/// use rustix::io::Errno;
/// assert_eq!(format!("{}", Text(Errno::NOENT)), "No such file or directory");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Text(pub Errno);

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match text(self.0) {
            Some(text) => crate::buf::Show(text).fmt(f),
            None => write!(f, "os error {}", self.0.raw_os_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown() {
        assert_eq!(Text(Errno::INVAL).to_string(), "Invalid argument");
        assert_eq!(Text(Errno::NOTSUP).to_string(), "Operation not supported");
        assert_eq!(
            Text(Errno::from_raw_os_error(4000)).to_string(),
            "os error 4000"
        );
    }

    #[test]
    fn table_has_no_duplicates_and_a_text_for_each() {
        for (i, a) in CODES.iter().enumerate() {
            assert!(CODES[i + 1..].iter().all(|b| a != b), "{a:?}");
        }
        assert_eq!(TEXTS.split(|&b| b == 0).count(), CODES.len() + 1);
        assert_eq!(
            text(Errno::KEYREJECTED),
            Some(&b"Key was rejected by service"[..])
        );
        assert_eq!(text(Errno::PERM), Some(&b"Operation not permitted"[..]));
    }
}
