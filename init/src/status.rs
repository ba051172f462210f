//! How init and the host talk, apart from the console (SPEC §3.4).
//!
//! With `init.status` on the command line, init writes one line to the
//! virtio-serial port named [`PORT_NAME`] at each turning point; the host
//! (chrootvm) keeps the last line it read when qemu exits. The console
//! carries people's text; this carries the machine's, so neither mixes
//! with a command's output.
//!
//! | line | meaning |
//! | --- | --- |
//! | `run` | the command is about to start (run mode): the guest has booted |
//! | `handover` | init is about to exec the real init as PID 1 |
//! | `exit N OUT ERR` | the command ended with status N (0-255) after writing OUT bytes to its stdout port and ERR to its stderr port |
//! | `fatal` | init hit a fatal error and is powering off |
//!
//! After `exit`, init waits for the host to answer [`ACK`] on the same port
//! before powering off: the host answers once it has received OUT and ERR
//! bytes, so no output still queued in qemu is lost at power-off.
//!
//! In run mode without a console (see [`crate::runspec`]) the command's
//! stdin, stdout and stderr are the ports [`STDIN_PORT`], [`STDOUT_PORT`]
//! and [`STDERR_PORT`].

use core::fmt;

/// The virtio-serial port name (`-device virtserialport,name=...`).
pub const PORT_NAME: &[u8] = b"init.status";
/// The port the command reads its stdin from.
pub const STDIN_PORT: &[u8] = b"init.stdin";
/// The port the command's stdout goes to.
pub const STDOUT_PORT: &[u8] = b"init.stdout";
/// The port the command's stderr goes to.
pub const STDERR_PORT: &[u8] = b"init.stderr";
/// The host's answer to `exit`: all output arrived.
pub const ACK: &[u8] = b"ok\n";

/// One report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The command is about to start: the boot is over.
    Run,
    /// PID 1 goes to the real init; the VM's end is that system's power-off.
    Handover,
    /// The command ended.
    Exit {
        /// Its status (shell convention: 128+N for a signal, 126 not
        /// executable, 127 not found).
        code: u8,
        /// Bytes written to the stdout port.
        stdout: u64,
        /// Bytes written to the stderr port.
        stderr: u64,
    },
    /// init failed and powers the VM off.
    Fatal,
}

impl Status {
    /// Reads one line as sent (without its newline).
    ///
    /// # Example
    /// ```
    /// use init::status::Status;
    /// assert_eq!(Status::parse(b"exit 3 10 0"), Some(Status::Exit { code: 3, stdout: 10, stderr: 0 }));
    /// assert_eq!(Status::parse(b"exit 300 0 0"), None);
    /// ```
    pub fn parse(line: &[u8]) -> Option<Status> {
        match line {
            b"run" => Some(Status::Run),
            b"handover" => Some(Status::Handover),
            b"fatal" => Some(Status::Fatal),
            _ => {
                let mut fields = line.strip_prefix(b"exit ")?.split(|&b| b == b' ');
                let code = u8::try_from(number(fields.next()?)?).ok()?;
                let stdout = number(fields.next()?)?;
                let stderr = number(fields.next()?)?;
                if fields.next().is_some() {
                    return None;
                }
                Some(Status::Exit {
                    code,
                    stdout,
                    stderr,
                })
            }
        }
    }
}

/// A decimal number without sign or leading zeros (but `0` itself).
fn number(digits: &[u8]) -> Option<u64> {
    let plain = !digits.is_empty() && digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit);
    if !plain || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

impl fmt::Display for Status {
    /// The line as sent, newline included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Run => f.write_str("run\n"),
            Status::Handover => f.write_str("handover\n"),
            Status::Exit {
                code,
                stdout,
                stderr,
            } => writeln!(f, "exit {code} {stdout} {stderr}"),
            Status::Fatal => f.write_str("fatal\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut all = vec![Status::Run, Status::Handover, Status::Fatal];
        all.extend((0..=255).map(|code| Status::Exit {
            code,
            stdout: 0,
            stderr: 0,
        }));
        all.push(Status::Exit {
            code: 1,
            stdout: u64::from(u32::MAX) * 7,
            stderr: 12,
        });
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
