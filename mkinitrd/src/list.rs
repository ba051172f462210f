//! `mkinitrd --list`: one line per entry of an archive, like `ls -l`:
//! mode string, size (or `major, minor` for device nodes), mtime in UTC,
//! path, and ` -> target` for symlinks. The archive is read in chunks, so
//! listing a pipe needs no memory for file data.

use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::cpio::{
    Entry, Reader, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use crate::error::Error;

/// Bytes read from the input at a time.
const READ_BUF: usize = 64 * 1024;

/// Reads the archive(s) in `input` (called `name` in errors) and writes
/// one line per entry to `out`.
///
/// The entries read before a malformed part are listed before the error is
/// returned. Errors: [`Error::ReadArchive`], [`Error::BadArchive`] with the
/// offset, [`Error::WriteListing`].
pub fn list_archive<R: Read, W: Write>(mut input: R, name: &Path, out: W) -> Result<(), Error> {
    let mut out = BufWriter::new(out);
    let mut reader = Reader::new();
    let mut buf = vec![0; READ_BUF];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::ReadArchive {
                    path: name.to_path_buf(),
                    source,
                });
            }
        };
        let mut lines = Vec::new();
        let fed = reader.feed(&buf[..n], |entry| lines.push(format_entry(&entry)));
        write_lines(&mut out, &lines)?;
        fed?;
    }
    reader.finish()?;
    out.flush().map_err(|source| Error::WriteListing { source })
}

/// Writes listing lines.
fn write_lines<W: Write>(out: &mut W, lines: &[String]) -> Result<(), Error> {
    for line in lines {
        writeln!(out, "{line}").map_err(|source| Error::WriteListing { source })?;
    }
    Ok(())
}

/// One listing line for `entry`.
pub fn format_entry(entry: &Entry) -> String {
    let size = match entry.file_type() {
        S_IFCHR | S_IFBLK => format!("{}, {}", entry.rdev_major, entry.rdev_minor),
        _ => entry.size.to_string(),
    };
    let mut line = format!(
        "{} {size:>9} {} {}",
        mode_string(entry.mode),
        format_mtime(entry.mtime),
        entry.name
    );
    if let Some(target) = &entry.symlink_target {
        line.push_str(" -> ");
        line.push_str(target);
    }
    line
}

/// The `ls -l` mode string: type letter, then rwx for user, group, other,
/// with s/S and t/T for setuid, setgid and sticky.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        S_IFDIR => 'd',
        S_IFREG => '-',
        S_IFLNK => 'l',
        S_IFCHR => 'c',
        S_IFBLK => 'b',
        S_IFIFO => 'p',
        S_IFSOCK => 's',
        _ => '?',
    };
    let mut text = String::with_capacity(10);
    text.push(kind);
    // (shift of the rwx triple, special bit, its letter)
    for (shift, special, letter) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = mode >> shift;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    text
}

/// `YYYY-MM-DD HH:MM` in UTC, so listings do not depend on the time zone.
fn format_mtime(secs: u32) -> String {
    let secs = u64::from(secs);
    let (year, month, day) = civil_from_days(secs / 86_400);
    let minutes = secs % 86_400 / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        minutes / 60,
        minutes % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01, by Howard
/// Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>),
/// for non-negative days only.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::{NodKind, Writer};

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(S_IFDIR | 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(S_IFREG | 0o755), "-rwxr-xr-x");
        assert_eq!(mode_string(S_IFCHR | 0o600), "crw-------");
        assert_eq!(mode_string(S_IFLNK | 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(S_IFDIR | 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(S_IFREG | 0o6644), "-rwSr-Sr--");
        assert_eq!(mode_string(S_IFBLK | 0o4755), "brwsr-xr-x");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(format_mtime(0), "1970-01-01 00:00");
        assert_eq!(format_mtime(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(format_mtime(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_mtime(u32::MAX), "2106-02-07 06:28");
    }

    #[test]
    fn listing_of_each_entry_type() {
        let mut w = Writer::new(Vec::new());
        w.write_dir("dev", 0o755, 0).unwrap();
        w.write_nod("dev/console", NodKind::Char, 5, 1, 0o600, 0)
            .unwrap();
        w.write_bytes("init", 0o755, 0, b"12345").unwrap();
        w.write_symlink("bin/sh", "busybox", 0).unwrap();
        let bytes = w.finish().unwrap();
        let mut out = Vec::new();
        list_archive(&bytes[..], Path::new("x.cpio"), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "drwxr-xr-x         0 1970-01-01 00:00 dev\n\
             crw-------      5, 1 1970-01-01 00:00 dev/console\n\
             -rwxr-xr-x         5 1970-01-01 00:00 init\n\
             lrwxrwxrwx         7 1970-01-01 00:00 bin/sh -> busybox\n"
        );
    }

    #[test]
    fn entries_before_an_error_are_listed() {
        let mut w = Writer::new(Vec::new());
        w.write_dir("dev", 0o755, 0).unwrap();
        let mut bytes = w.finish().unwrap();
        bytes.truncate(200);
        let mut out = Vec::new();
        let err = list_archive(&bytes[..], Path::new("x.cpio"), &mut out).unwrap_err();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
        assert_eq!(
            err.to_string(),
            "cannot read the archive at byte 200: the input ends inside a header"
        );
    }
}
