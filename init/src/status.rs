//! How init tells the host the boot's outcome, apart from the console.
//!
//! With `init.status` on the command line, init writes one line to the
//! virtio-serial port named [`PORT_NAME`] at each turning point; the host
//! (chrootvm) keeps the last line it read when qemu exits. The console
//! carries people's text; this carries the machine's, so neither mixes
//! with a command's output.
//!
//! | line | meaning |
//! | --- | --- |
//! | `handover` | init is about to exec the real init as PID 1 |
//! | `exit N` | the command run by init ended with status N (0-255) |
//! | `fatal` | init hit a fatal error and is powering off |

use core::fmt;

/// The virtio-serial port name (`-device virtserialport,name=...`).
pub const PORT_NAME: &[u8] = b"init.status";

/// One report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// PID 1 goes to the real init; the VM's end is that system's power-off.
    Handover,
    /// The command ended with this status (shell convention: 128+N for a
    /// signal, 126 not executable, 127 not found).
    Exit(u8),
    /// init failed and powers the VM off.
    Fatal,
}

impl Status {
    /// Reads one line as sent (without its newline).
    ///
    /// # Example
    /// ```
    /// use init::status::Status;
    /// assert_eq!(Status::parse(b"exit 3"), Some(Status::Exit(3)));
    /// assert_eq!(Status::parse(b"exit 300"), None);
    /// ```
    pub fn parse(line: &[u8]) -> Option<Status> {
        match line {
            b"handover" => Some(Status::Handover),
            b"fatal" => Some(Status::Fatal),
            _ => {
                let code = line.strip_prefix(b"exit ")?;
                if code.is_empty() || code.len() > 3 || !code.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let value = code.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
                u8::try_from(value).ok().map(Status::Exit)
            }
        }
    }
}

impl fmt::Display for Status {
    /// The line as sent, newline included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Handover => f.write_str("handover\n"),
            Status::Exit(code) => writeln!(f, "exit {code}"),
            Status::Fatal => f.write_str("fatal\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut all = vec![Status::Handover, Status::Fatal];
        all.extend((0..=255).map(Status::Exit));
        for status in all {
            let line = status.to_string();
            let line = line.strip_suffix('\n').unwrap();
            assert_eq!(Status::parse(line.as_bytes()), Some(status));
        }
    }

    #[test]
    fn junk_is_rejected() {
        for junk in [
            &b""[..],
            b"exit",
            b"exit ",
            b"exit -1",
            b"exit 256",
            b"exit 1a",
            b"exit 0001",
            b"EXIT 1",
        ] {
            assert_eq!(Status::parse(junk), None, "{junk:?}");
        }
    }
}
