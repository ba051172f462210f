//! The run spec: what chrootvm asks init to run (SPEC §3.4), read from
//! [`PATH`] in the initramfs. The kernel command line is limited to a few
//! KiB, so the argument vector, environment and working directory travel
//! as a file chrootvm puts in the image instead.
//!
//! The file is a sequence of records, each a one-byte tag, a payload and a
//! NUL, so payloads are C strings used in place for `execve`:
//!
//! | tag | payload | meaning |
//! | --- | --- | --- |
//! | `V` | `1` | format version; the first record |
//! | `a` | argument | the command, then its arguments, in order |
//! | `e` | `KEY=VALUE` | an environment variable |
//! | `c` | directory | the working directory (default `/`) |
//! | `t` | (none) | run on the console as controlling terminal |
//! | `w` | `ROWS COLS` | the console's window size |
//!
//! Without `t` the command's stdin, stdout and stderr are the virtio ports
//! named in [`crate::status`].

use core::ffi::CStr;

/// Where chrootvm puts the spec in the initramfs.
pub const PATH: &CStr = c"/init.run";

/// The format version this init reads.
pub const VERSION: &[u8] = b"1";

/// The largest spec init reads: twice what execve takes under the 8 MiB
/// stack limit PID 1 and the command get ([`exec_arg_limit`]: 2 MiB of
/// strings and pointers), so a command whose lists are too long fails at
/// execve, naming itself, rather than here. chrootvm refuses more.
pub const MAX_SIZE: usize = 4 << 20;

/// The most one argument or environment string may take, and the least
/// room execve gives them all (MAX_ARG_STRLEN and ARG_MAX in the kernel,
/// both 32 pages: 128 KiB).
pub const MAX_ARG_STRLEN: u64 = 128 << 10;

/// How many bytes of argument and environment strings, with a pointer to
/// each, execve takes under a stack size limit of `stack` bytes (None: no
/// limit): a quarter of it, at most 6 MiB (3/4 of the default 8 MiB) and
/// at least [`MAX_ARG_STRLEN`]. fs/exec.c, `prepare_arg_pages` (named
/// `bprm_stack_limits` since Linux 6.7).
///
/// # Example
/// ```
/// // PID 1, and so the command, gets the kernel's 8 MiB stack limit.
/// assert_eq!(init::runspec::exec_arg_limit(Some(8 << 20)), 2 << 20);
/// ```
pub fn exec_arg_limit(stack: Option<u64>) -> u64 {
    const STK_LIM: u64 = 8 << 20;
    stack
        .map_or(u64::MAX, |stack| stack / 4)
        .clamp(MAX_ARG_STRLEN, STK_LIM / 4 * 3)
}

/// A parsed spec, borrowing the file's bytes.
#[derive(Clone, Copy, Debug)]
pub struct RunSpec<'a> {
    data: &'a [u8],
    /// The working directory.
    pub cwd: &'a CStr,
    /// Console mode (`t`).
    pub tty: bool,
    /// Window size (`w`), rows and columns.
    pub winsize: Option<(u16, u16)>,
}

/// Why a spec was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// The last record has no NUL.
    Unterminated,
    /// The first record is not `V1`.
    Version,
    /// No `a` record: nothing to run.
    NoCommand,
    /// A record with an unknown tag.
    UnknownTag(u8),
    /// A `w` record that is not two numbers.
    BadWinsize,
}

impl core::fmt::Display for SpecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpecError::Unterminated => f.write_str("its last record is cut short"),
            SpecError::Version => {
                f.write_str("it is not format 1 (chrootvm and init are from different versions?)")
            }
            SpecError::NoCommand => f.write_str("it names no command"),
            SpecError::UnknownTag(tag) => write!(f, "it has a record of unknown kind 0x{tag:02x}"),
            SpecError::BadWinsize => f.write_str("its window size is not ROWS COLS"),
        }
    }
}

/// The records of a spec, as (tag, payload with its NUL).
#[derive(Clone, Debug)]
struct Records<'a> {
    rest: &'a [u8],
}

fn records(data: &[u8]) -> Records<'_> {
    Records { rest: data }
}

impl<'a> Iterator for Records<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let end = self.rest.iter().position(|&b| b == 0)?;
        let (record, tail) = self.rest.split_at(end + 1);
        self.rest = tail;
        Some((record[0], &record[1..]))
    }
}

/// A payload (with its NUL) as a C string.
fn c_str(payload: &[u8]) -> &CStr {
    CStr::from_bytes_with_nul(payload).unwrap_or_default()
}

impl<'a> RunSpec<'a> {
    /// Checks and reads a spec.
    ///
    /// # Errors
    /// A [`SpecError`] saying what is wrong.
    ///
    /// # Example
    /// ```
    /// use init::runspec::RunSpec;
    /// let spec = RunSpec::parse(b"V1\0aecho\0ahi\0ePATH=/bin\0").unwrap();
    /// let args: Vec<_> = spec.args().map(|a| a.to_bytes()).collect();
    /// assert_eq!(args, [&b"echo"[..], b"hi"]);
    /// assert_eq!(spec.cwd, c"/");
    /// ```
    pub fn parse(data: &'a [u8]) -> Result<Self, SpecError> {
        if data.last().is_some_and(|&b| b != 0) {
            return Err(SpecError::Unterminated);
        }
        let mut spec = RunSpec {
            data,
            cwd: c"/",
            tty: false,
            winsize: None,
        };
        let mut all = records(data);
        match all.next() {
            Some((b'V', version)) if version.strip_suffix(&[0]) == Some(VERSION) => {}
            _ => return Err(SpecError::Version),
        }
        let mut has_command = false;
        for (tag, payload) in all {
            match tag {
                b'a' => has_command = true,
                b'e' => {}
                b'c' => spec.cwd = c_str(payload),
                b't' => spec.tty = true,
                b'w' => spec.winsize = Some(parse_winsize(payload).ok_or(SpecError::BadWinsize)?),
                other => return Err(SpecError::UnknownTag(other)),
            }
        }
        if !has_command {
            return Err(SpecError::NoCommand);
        }
        Ok(spec)
    }

    /// The command and its arguments.
    pub fn args(&self) -> impl Iterator<Item = &'a CStr> + Clone + 'a {
        records(self.data)
            .filter(|(tag, _)| *tag == b'a')
            .map(|(_, p)| c_str(p))
    }

    /// The environment.
    pub fn env(&self) -> impl Iterator<Item = &'a CStr> + Clone + 'a {
        records(self.data)
            .filter(|(tag, _)| *tag == b'e')
            .map(|(_, p)| c_str(p))
    }

    /// The command (first argument).
    pub fn command(&self) -> &'a CStr {
        self.args().next().unwrap_or_default()
    }

    /// The value of environment variable `key`.
    pub fn var(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.env().find_map(|var| {
            let var = var.to_bytes();
            var.strip_prefix(key)?.strip_prefix(b"=")
        })
    }
}

fn parse_winsize(payload: &[u8]) -> Option<(u16, u16)> {
    let text = payload.strip_suffix(&[0])?;
    let space = text.iter().position(|&b| b == b' ')?;
    Some((parse_u16(&text[..space])?, parse_u16(&text[space + 1..])?))
}

fn parse_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value).ok()
}

/// Writes a spec: the inverse of [`RunSpec::parse`], for chrootvm and tests.
#[cfg(any(test, feature = "std"))]
pub fn encode<'s>(
    args: impl IntoIterator<Item = &'s [u8]>,
    env: impl IntoIterator<Item = &'s [u8]>,
    cwd: Option<&[u8]>,
    tty: bool,
    winsize: Option<(u16, u16)>,
) -> Vec<u8> {
    let mut out = b"V1\0".to_vec();
    let mut record = |tag: u8, payload: &[u8]| {
        out.push(tag);
        out.extend_from_slice(payload);
        out.push(0);
    };
    for arg in args {
        record(b'a', arg);
    }
    for var in env {
        record(b'e', var);
    }
    if let Some(cwd) = cwd {
        record(b'c', cwd);
    }
    if tty {
        record(b't', b"");
    }
    if let Some((rows, cols)) = winsize {
        record(b'w', format!("{rows} {cols}").as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let big = vec![b'x'; 64 * 1024];
        let mut var = b"BIG=".to_vec();
        var.extend_from_slice(&big);
        let args: Vec<Vec<u8>> = (0..200).map(|i| format!("{i:0100}").into_bytes()).collect();
        let data = encode(
            args.iter().map(Vec::as_slice),
            [&var[..], b"PATH=/bin"],
            Some(b"/tmp"),
            true,
            Some((40, 120)),
        );
        let spec = RunSpec::parse(&data).unwrap();
        assert_eq!(spec.args().count(), 200);
        assert!(
            spec.args()
                .zip(&args)
                .all(|(a, b)| a.to_bytes() == b.as_slice())
        );
        assert_eq!(spec.var(b"BIG").unwrap(), &big[..]);
        assert_eq!(spec.var(b"PATH"), Some(&b"/bin"[..]));
        assert_eq!(spec.var(b"PAT"), None);
        assert_eq!(spec.cwd, c"/tmp");
        assert!(spec.tty);
        assert_eq!(spec.winsize, Some((40, 120)));
    }

    #[test]
    fn defaults() {
        let spec = RunSpec::parse(b"V1\0a/bin/sh\0").unwrap();
        assert_eq!(spec.command(), c"/bin/sh");
        assert_eq!(spec.cwd, c"/");
        assert!(!spec.tty);
        assert_eq!(spec.winsize, None);
        assert_eq!(spec.env().count(), 0);
    }

    #[test]
    fn refusals() {
        assert_eq!(RunSpec::parse(b"").err(), Some(SpecError::Version));
        assert_eq!(RunSpec::parse(b"V2\0ax\0").err(), Some(SpecError::Version));
        assert_eq!(
            RunSpec::parse(b"V1\0ax").err(),
            Some(SpecError::Unterminated)
        );
        assert_eq!(
            RunSpec::parse(b"V1\0eA=1\0").err(),
            Some(SpecError::NoCommand)
        );
        assert_eq!(
            RunSpec::parse(b"V1\0ax\0z\0").err(),
            Some(SpecError::UnknownTag(b'z'))
        );
        for bad in [&b"w40\0"[..], b"w40 \0", b"wa b\0", b"w1 99999\0"] {
            let mut data = b"V1\0ax\0".to_vec();
            data.extend_from_slice(bad);
            assert_eq!(
                RunSpec::parse(&data).err(),
                Some(SpecError::BadWinsize),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn exec_arg_limit_is_a_quarter_of_the_stack_within_the_kernels_bounds() {
        assert_eq!(exec_arg_limit(Some(8 << 20)), 2 << 20);
        assert_eq!(exec_arg_limit(Some(16 << 20)), 4 << 20);
        assert_eq!(exec_arg_limit(Some(64 << 20)), 6 << 20);
        assert_eq!(exec_arg_limit(None), 6 << 20);
        assert_eq!(exec_arg_limit(Some(64 << 10)), 128 << 10);
    }

    #[test]
    fn empty_arguments_survive() {
        let spec = RunSpec::parse(b"V1\0aprintf\0a[%s]\0a\0").unwrap();
        let args: Vec<_> = spec.args().map(CStr::to_bytes).collect();
        assert_eq!(args, [&b"printf"[..], b"[%s]", b""]);
    }
}
