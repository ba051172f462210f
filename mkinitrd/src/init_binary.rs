//! The init binary an image carries as /init: `--init PATH` when given,
//! else the one `make install` put beside the program
//! (`PREFIX/lib/chrootvm/init`), else the copy built into the program.
//!
//! build.rs builds that copy from ../init, the same bytes `make` builds, so
//! mkinitrd and chrootvm work alone, as `cargo install --path` leaves them
//! (issue 18). The installed file comes first so that a system can swap
//! init without rebuilding the programs.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::elf;

/// init as build.rs built it: static, no_std, no interpreter.
pub static BUILTIN_INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/init"));

/// init as installed by `make install`, relative to the program's prefix
/// (`PREFIX/bin/mkinitrd` and `PREFIX/lib/chrootvm/init`).
pub const INSTALLED_INIT: &str = "lib/chrootvm/init";

/// Where the packed init comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitBinary {
    /// A host file: `--init PATH`, or the installed init.
    File(PathBuf),
    /// [`BUILTIN_INIT`].
    Builtin,
}

impl fmt::Display for InitBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitBinary::File(path) => write!(f, "{}", path.display()),
            InitBinary::Builtin => f.write_str("the init built in"),
        }
    }
}

/// The init to pack: `explicit` if given, else [`find_init_near`] the
/// running program.
pub fn find_init(explicit: Option<&Path>) -> InitBinary {
    if let Some(path) = explicit {
        return InitBinary::File(path.to_path_buf());
    }
    match env::current_exe() {
        Ok(exe) => find_init_near(&exe),
        // No /proc: the installed file cannot be found, the copy can.
        Err(_) => InitBinary::Builtin,
    }
}

/// [`installed_init`] of the program at `exe` when it is a static ELF
/// executable, else [`InitBinary::Builtin`].
///
/// Static only, so that a system's own /sbin/init (say, systemd, which
/// needs its libraries) is never picked by mistake.
pub fn find_init_near(exe: &Path) -> InitBinary {
    match installed_init(exe) {
        Some(path) if elf::is_static_executable(&path) => InitBinary::File(path),
        _ => InitBinary::Builtin,
    }
}

/// Where `make install` puts init for a program at `exe`:
/// `BIN/../`[`INSTALLED_INIT`].
pub fn installed_init(exe: &Path) -> Option<PathBuf> {
    let prefix = exe.parent()?.parent()?;
    Some(prefix.join(INSTALLED_INIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{Class, ET_EXEC, Endian, PT_INTERP, make_elf, read_elf_info};
    use crate::testutil::TempDir;
    use std::io::Cursor;

    /// init's size budget (SPEC §2, issue 18: no change to its size).
    const INIT_BUDGET: usize = 64 * 1024;

    #[test]
    fn builtin_init_is_small_static_and_not_pie() {
        let info = read_elf_info(&mut Cursor::new(BUILTIN_INIT))
            .unwrap()
            .expect("the built-in init is ELF");
        assert!(info.is_static_executable(), "{info:?}");
        assert_eq!(info.e_type, ET_EXEC, "a static, non-PIE executable");
        assert!(
            BUILTIN_INIT.len() < INIT_BUDGET,
            "init is {} bytes, over its {INIT_BUDGET}-byte budget",
            BUILTIN_INIT.len()
        );
    }

    #[test]
    fn installed_init_is_beside_the_prefix() {
        assert_eq!(
            installed_init(Path::new("/usr/local/bin/mkinitrd")).unwrap(),
            Path::new("/usr/local/lib/chrootvm/init")
        );
        assert_eq!(
            installed_init(Path::new("/root/.cargo/bin/chrootvm")).unwrap(),
            Path::new("/root/.cargo/lib/chrootvm/init")
        );
        assert_eq!(installed_init(Path::new("mkinitrd")), None);
    }

    #[test]
    fn an_installed_static_init_comes_before_the_builtin_one() {
        let tmp = TempDir::new("init-binary");
        let exe = tmp.path().join("bin/mkinitrd");
        // Nothing installed, or a cargo target directory: the built-in one.
        assert_eq!(find_init_near(&exe), InitBinary::Builtin);
        // A dynamic init in the installed place (like systemd's) is skipped.
        tmp.write(
            "lib/chrootvm/init",
            &make_elf(Class::Elf64, Endian::Little, ET_EXEC, &[PT_INTERP, 1]),
        );
        assert_eq!(find_init_near(&exe), InitBinary::Builtin);
        tmp.write(
            "lib/chrootvm/init",
            &make_elf(Class::Elf64, Endian::Little, ET_EXEC, &[1]),
        );
        assert_eq!(
            find_init_near(&exe),
            InitBinary::File(tmp.path().join("lib/chrootvm/init"))
        );
    }

    #[test]
    fn explicit_init_is_taken_as_given() {
        let path = Path::new("/nonexistent/init");
        assert_eq!(find_init(Some(path)), InitBinary::File(path.into()));
        assert_eq!(find_init(Some(path)).to_string(), "/nonexistent/init");
        assert_eq!(InitBinary::Builtin.to_string(), "the init built in");
    }
}
