//! Error text for the errnos init can meet. Without libc there is no
//! `strerror`, and rustix alone prints `os error N`; users read these lines
//! on a serial console, so they get glibc's words.

use core::fmt;
use rustix::io::Errno;

/// glibc's `strerror` text for the errnos mount, finit_module, execve and
/// the file calls init makes can return.
const TEXTS: &[(Errno, &str)] = &[
    (Errno::PERM, "Operation not permitted"),
    (Errno::NOENT, "No such file or directory"),
    (Errno::SRCH, "No such process"),
    (Errno::INTR, "Interrupted system call"),
    (Errno::IO, "Input/output error"),
    (Errno::NXIO, "No such device or address"),
    (Errno::TOOBIG, "Argument list too long"),
    (Errno::NOEXEC, "Exec format error"),
    (Errno::BADF, "Bad file descriptor"),
    (Errno::CHILD, "No child processes"),
    (Errno::AGAIN, "Resource temporarily unavailable"),
    (Errno::NOMEM, "Cannot allocate memory"),
    (Errno::ACCESS, "Permission denied"),
    (Errno::FAULT, "Bad address"),
    (Errno::NOTBLK, "Block device required"),
    (Errno::BUSY, "Device or resource busy"),
    (Errno::EXIST, "File exists"),
    (Errno::XDEV, "Invalid cross-device link"),
    (Errno::NODEV, "No such device"),
    (Errno::NOTDIR, "Not a directory"),
    (Errno::ISDIR, "Is a directory"),
    (Errno::INVAL, "Invalid argument"),
    (Errno::NFILE, "Too many open files in system"),
    (Errno::MFILE, "Too many open files"),
    (Errno::NOTTY, "Inappropriate ioctl for device"),
    (Errno::TXTBSY, "Text file busy"),
    (Errno::FBIG, "File too large"),
    (Errno::NOSPC, "No space left on device"),
    (Errno::SPIPE, "Illegal seek"),
    (Errno::ROFS, "Read-only file system"),
    (Errno::MLINK, "Too many links"),
    (Errno::PIPE, "Broken pipe"),
    (Errno::RANGE, "Numerical result out of range"),
    (Errno::NAMETOOLONG, "File name too long"),
    (Errno::NOSYS, "Function not implemented"),
    (Errno::NOTEMPTY, "Directory not empty"),
    (Errno::LOOP, "Too many levels of symbolic links"),
    (Errno::NODATA, "No data available"),
    (Errno::TIME, "Timer expired"),
    (Errno::NOLINK, "Link has been severed"),
    (Errno::PROTO, "Protocol error"),
    (Errno::BADMSG, "Bad message"),
    (Errno::OVERFLOW, "Value too large for defined data type"),
    (
        Errno::ILSEQ,
        "Invalid or incomplete multibyte or wide character",
    ),
    (Errno::NOTSUP, "Operation not supported"),
    (Errno::CONNREFUSED, "Connection refused"),
    (Errno::TIMEDOUT, "Connection timed out"),
    (Errno::HOSTDOWN, "Host is down"),
    (Errno::STALE, "Stale file handle"),
    (Errno::NOMEDIUM, "No medium found"),
    (Errno::MEDIUMTYPE, "Wrong medium type"),
    (Errno::CANCELED, "Operation canceled"),
    (Errno::NOKEY, "Required key not available"),
    (Errno::KEYEXPIRED, "Key has expired"),
    (Errno::KEYREVOKED, "Key has been revoked"),
    (Errno::KEYREJECTED, "Key was rejected by service"),
];

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
        match TEXTS.iter().find(|(errno, _)| *errno == self.0) {
            Some((_, text)) => f.write_str(text),
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
    fn table_has_no_duplicates() {
        for (i, (a, _)) in TEXTS.iter().enumerate() {
            assert!(TEXTS[i + 1..].iter().all(|(b, _)| a != b), "{a:?}");
        }
    }
}
