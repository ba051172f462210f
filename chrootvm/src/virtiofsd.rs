//! How directories are shared with the guest. virtiofsd: finding it,
//! telling the Rust daemon from the legacy C one by its `--help`, building
//! its command line as data, and starting one per shared directory with its
//! socket awaited under a deadline. Without any virtiofsd, qemu's own 9p,
//! when the kernel has it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Step};
use crate::process::{Helper, Streams, find_program, is_executable};

/// Where distributions install virtiofsd outside PATH, in SPEC §5's order.
const KNOWN_PATHS: [&str; 3] = [
    "/usr/libexec/virtiofsd",
    "/usr/lib/qemu/virtiofsd",
    "/usr/lib/virtiofsd",
];

/// How long a virtiofsd may take to create its socket.
const SOCKET_DEADLINE: Duration = Duration::from_secs(10);

/// Which daemon, and what it supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// The Rust daemon (`--shared-dir`).
    Rust {
        /// It has `--readonly`.
        readonly: bool,
    },
    /// QEMU's legacy C daemon (`-o source=`).
    Legacy,
}

/// A virtiofsd binary and its flavor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Virtiofsd {
    /// The binary.
    pub path: PathBuf,
    /// What it is.
    pub flavor: Flavor,
}

/// One shared directory.
#[derive(Clone, Debug)]
pub struct Export<'a> {
    /// The host directory.
    pub dir: &'a Path,
    /// The vhost-user socket to create.
    pub socket: &'a Path,
    /// Share it read-only where the daemon can.
    pub read_only: bool,
}

/// How shared directories reach the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// virtiofs, one virtiofsd per directory.
    Virtiofs(Virtiofsd),
    /// 9p, served by qemu.
    NineP,
}

/// The 9p modules a guest needs to mount a 9p share over virtio.
pub const NINEP_MODULES: &[&str] = &["9pnet_virtio", "9p"];

impl Transport {
    /// virtiofsd when there is one, else 9p when `kernel_has_9p`.
    ///
    /// # Errors
    /// [`Error::NoVirtiofsd`] when neither works, naming what to install;
    /// [`Error::BadVirtiofsd`] when $VIRTIOFSD names something else.
    pub fn choose(kernel_has_9p: bool) -> Result<Transport, Error> {
        let as_root = rustix::process::geteuid().is_root();
        match Virtiofsd::find(as_root)? {
            Found::Usable(daemon) => Ok(Transport::Virtiofs(daemon)),
            _ if kernel_has_9p => Ok(Transport::NineP),
            Found::NeedsRoot(legacy) => Err(Error::LegacyVirtiofsdNeedsRoot(legacy)),
            Found::None => Err(Error::NoVirtiofsd(KNOWN_PATHS.map(PathBuf::from).to_vec())),
        }
    }

    /// The file system type init mounts (`rootfstype=`).
    pub fn fstype(&self) -> &'static str {
        match self {
            Transport::Virtiofs(_) => "virtiofs",
            Transport::NineP => "9p",
        }
    }
}

/// What looking for virtiofsd found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A daemon that runs as this user.
    Usable(Virtiofsd),
    /// Only the legacy C daemon, which needs root, and we are not.
    NeedsRoot(PathBuf),
    /// None at all.
    None,
}

impl Virtiofsd {
    /// Finds virtiofsd: $VIRTIOFSD when set (only it; empty for none), else
    /// PATH, then [`KNOWN_PATHS`]. The legacy C daemon counts only for root
    /// (it cannot even write its pid file as anyone else).
    ///
    /// # Errors
    /// [`Error::BadVirtiofsd`] when $VIRTIOFSD is not a virtiofsd.
    pub fn find(as_root: bool) -> Result<Found, Error> {
        let candidates: Vec<PathBuf> = match std::env::var_os("VIRTIOFSD") {
            Some(chosen) if chosen.is_empty() => return Ok(Found::None),
            Some(chosen) => {
                let path = PathBuf::from(chosen);
                if !is_executable(&path) || probe(&path).is_none() {
                    return Err(Error::BadVirtiofsd(path));
                }
                vec![path]
            }
            None => find_program("virtiofsd")
                .into_iter()
                .chain(KNOWN_PATHS.map(PathBuf::from))
                .collect(),
        };
        let mut found = Found::None;
        for path in candidates {
            if !is_executable(&path) {
                continue;
            }
            match probe(&path) {
                Some(Flavor::Legacy) if !as_root && found == Found::None => {
                    found = Found::NeedsRoot(path);
                }
                Some(Flavor::Legacy) if !as_root => {}
                Some(flavor) => return Ok(Found::Usable(Virtiofsd { path, flavor })),
                None => {}
            }
        }
        Ok(found)
    }

    /// The daemon's command line for one export.
    pub fn argv(&self, export: &Export<'_>, as_root: bool) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![self.path.clone().into()];
        match self.flavor {
            Flavor::Rust { readonly } => {
                argv.extend(["--socket-path".into(), export.socket.into()]);
                argv.extend(["--shared-dir".into(), export.dir.into()]);
                argv.extend(["--cache".into(), "auto".into()]);
                // The namespace sandbox needs root; without it, run unsandboxed
                // as the calling user, who owns what it shares anyway.
                argv.extend([
                    "--sandbox".into(),
                    if as_root { "namespace" } else { "none" }.into(),
                ]);
                if readonly && export.read_only {
                    argv.push("--readonly".into());
                }
            }
            Flavor::Legacy => {
                let mut socket = OsString::from("--socket-path=");
                socket.push(export.socket);
                argv.push(socket);
                let mut source = OsString::from("source=");
                source.push(escape_option(export.dir));
                argv.extend(["-o".into(), source]);
                argv.extend(["-o".into(), "cache=auto".into()]);
                // Its default sandbox pivot_roots into the directory, which
                // fails for / itself ("pivot_root(., .): Device or resource
                // busy"); the chroot sandbox (QEMU 5.2 on) shares / fine.
                if export.dir == Path::new("/") {
                    argv.extend(["-o".into(), "sandbox=chroot".into()]);
                }
            }
        }
        argv
    }

    /// Starts the daemon for `export` and waits for its socket. Its output
    /// goes to a memory file, shown if it fails, or to our stderr under
    /// `--debug`.
    ///
    /// # Errors
    /// [`Error::Virtiofsd`] when it exits or makes no socket in time.
    pub fn start(&self, export: &Export<'_>, debug: bool) -> Result<Helper, Error> {
        let as_root = rustix::process::geteuid().is_root();
        let argv = self.argv(export, as_root);
        if debug {
            note!("running {}", crate::shell_words(&argv));
        }
        let mut log = if debug {
            None
        } else {
            let fd = rustix::fs::memfd_create("virtiofsd-log", rustix::fs::MemfdFlags::CLOEXEC)
                .map_err(|e| Error::Host(Step::VirtiofsdLog, e.into()))?;
            Some(File::from(fd))
        };
        let stderr = match &log {
            Some(file) => Stdio::from(
                file.try_clone()
                    .map_err(|e| Error::Host(Step::VirtiofsdLog, e))?,
            ),
            None => Stdio::inherit(),
        };
        let streams = Streams {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr,
        };
        let mut helper = Helper::spawn(&argv, streams)?;
        let deadline = Instant::now() + SOCKET_DEADLINE;
        loop {
            if export.socket.exists() {
                return Ok(helper);
            }
            let failure = if let Some(status) = helper.try_wait() {
                format!("exited ({status}) before creating its socket")
            } else if Instant::now() > deadline {
                format!("made no socket within {}s", SOCKET_DEADLINE.as_secs())
            } else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            return Err(Error::Virtiofsd {
                dir: export.dir.to_path_buf(),
                what: failure,
                log: log.as_mut().map(last_line).unwrap_or_default(),
            });
        }
    }
}

/// A path as a value in the C daemon's `-o` list: it splits on commas and
/// takes a backslash as an escape (libfuse's fuse_opt), so both are
/// escaped.
fn escape_option(path: &Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        if b == b',' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    OsString::from_vec(out)
}

/// Asks `--help` which daemon this is; `None` if it is neither.
fn probe(path: &Path) -> Option<Flavor> {
    let output = Command::new(path)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let mut help = String::from_utf8_lossy(&output.stdout).into_owned();
    help.push_str(&String::from_utf8_lossy(&output.stderr));
    flavor_from_help(&help)
}

fn flavor_from_help(help: &str) -> Option<Flavor> {
    if help.contains("--shared-dir") {
        Some(Flavor::Rust {
            readonly: help.contains("--readonly"),
        })
    } else if help.contains("source=") {
        Some(Flavor::Legacy)
    } else {
        None
    }
}

/// The last non-empty line a daemon wrote to its log.
fn last_line(log: &mut File) -> String {
    let mut text = String::new();
    let _ = log.rewind().and_then(|()| log.read_to_string(&mut text));
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY_HELP: &str =
        "usage: virtiofsd [options]\n    -o source=PATH             shared directory tree\n";
    const RUST_HELP: &str =
        "Usage: virtiofsd [OPTIONS]\n      --shared-dir <SHARED_DIR>\n      --readonly\n";

    #[test]
    fn flavors_from_help() {
        assert_eq!(flavor_from_help(LEGACY_HELP), Some(Flavor::Legacy));
        assert_eq!(
            flavor_from_help(RUST_HELP),
            Some(Flavor::Rust { readonly: true })
        );
        assert_eq!(
            flavor_from_help("--shared-dir"),
            Some(Flavor::Rust { readonly: false })
        );
        assert_eq!(flavor_from_help("usage: something else"), None);
    }

    fn argv(flavor: Flavor, read_only: bool, as_root: bool) -> Vec<String> {
        let daemon = Virtiofsd {
            path: "/v".into(),
            flavor,
        };
        let export = Export {
            dir: Path::new("/srv/root"),
            socket: Path::new("/t/fs.sock"),
            read_only,
        };
        daemon
            .argv(&export, as_root)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn legacy_command_line() {
        assert_eq!(
            argv(Flavor::Legacy, true, true),
            [
                "/v",
                "--socket-path=/t/fs.sock",
                "-o",
                "source=/srv/root",
                "-o",
                "cache=auto"
            ]
        );
    }

    #[test]
    fn legacy_sources_keep_commas_and_backslashes() {
        let daemon = Virtiofsd {
            path: "/v".into(),
            flavor: Flavor::Legacy,
        };
        let export = Export {
            dir: Path::new("/tmp/odd dir,with=comma\\x"),
            socket: Path::new("/t/fs.sock"),
            read_only: true,
        };
        let argv = daemon.argv(&export, true);
        assert_eq!(argv[3], "source=/tmp/odd dir\\,with=comma\\\\x");
    }

    #[test]
    fn legacy_shares_the_host_root_in_a_chroot_sandbox() {
        let daemon = Virtiofsd {
            path: "/v".into(),
            flavor: Flavor::Legacy,
        };
        let export = |dir| Export {
            dir,
            socket: Path::new("/t/fs.sock"),
            read_only: true,
        };
        let host = daemon.argv(&export(Path::new("/")), true);
        assert!(host.ends_with(&["-o".into(), "sandbox=chroot".into()]));
        let tree = daemon.argv(&export(Path::new("/srv")), true);
        assert!(!tree.iter().any(|a| a == "sandbox=chroot"));
    }

    #[test]
    fn rust_command_line() {
        assert_eq!(
            argv(Flavor::Rust { readonly: true }, true, true),
            [
                "/v",
                "--socket-path",
                "/t/fs.sock",
                "--shared-dir",
                "/srv/root",
                "--cache",
                "auto",
                "--sandbox",
                "namespace",
                "--readonly"
            ]
        );
        let unprivileged = argv(Flavor::Rust { readonly: false }, true, false);
        assert!(unprivileged.ends_with(&["--sandbox".to_string(), "none".to_string()]));
    }

    #[test]
    fn finds_debians_legacy_daemon() {
        let legacy = Path::new("/usr/lib/qemu/virtiofsd");
        if !::tests::require(
            legacy.exists(),
            "/usr/lib/qemu/virtiofsd (qemu-system-common)",
        ) {
            return;
        }
        assert_eq!(
            probe(Path::new("/usr/lib/qemu/virtiofsd")),
            Some(Flavor::Legacy)
        );
    }
}
