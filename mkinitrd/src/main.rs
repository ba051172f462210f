//! mkinitrd: pack an initramfs holding the static init and the kernel
//! modules a virtiofs root needs, or list an image's entries.
//!
//! This file only parses arguments, calls the library and prints the one
//! error line; exit statuses are decided in `main`.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mkinitrd::Error;
use mkinitrd::content::{self, Directive};
use mkinitrd::image::{self, Image};
use mkinitrd::init_binary;
use mkinitrd::kernel;
use mkinitrd::kmod::ModuleTree;
use mkinitrd::list;
use mkinitrd::lz4::Lz4Options;
use mkinitrd::manifest;
use mkinitrd::output::Destination;
use mkinitrd::request::{self, Request};
use mkinitrd::rsc;
use mkinitrd::write::Compression;

/// Exit status of a failed run.
const EXIT_ERROR: u8 = 1;
/// Exit status of a command line that could not be understood.
const EXIT_USAGE: u8 = 2;

const HELP: &str = "\
mkinitrd - pack an initramfs (newc cpio) with init and kernel modules

Usage:
  mkinitrd -o FILE|- [OPTIONS]
  mkinitrd --list FILE|-

Options:
  -o, --output FILE   write the image to FILE; - for stdout. A new file takes
                      FILE's place once complete: a failed or killed run
                      leaves no partial file and keeps an existing one.
                      Through a symlink, the file it points to is replaced
                      and the link kept. A FIFO or character device
                      (/dev/null, /dev/stdout) is written to as it is; a
                      directory is refused
  --kver VER          kernel version whose modules to pack (default: the
                      running kernel's)
  --moddir DIR        module tree holding modules.dep (default:
                      /usr/lib/modules/VER, then /lib/modules/VER)
  --init PATH         init binary to pack as /init (default:
                      PREFIX/lib/chrootvm/init when installed beside
                      PREFIX/bin/mkinitrd, else the init built into mkinitrd)
  -m, --module NAME   also pack module NAME (or alias, e.g. fs-virtiofs) with
                      its dependencies and softdeps; repeatable. It adds to
                      the default set virtio_pci, virtiofs
  --bin PROG          pack program PROG (a name in the system's bin
                      directories, or a path) with its ELF interpreter and
                      libraries, found as ld.so finds them; scripts bring
                      their #! interpreter
  --file SRC[:DST]    pack host file SRC as DST (default: SRC's path)
  --tree DIR:DST      pack directory DIR as DST, symlinks kept as symlinks
  --dir PATH[:MODE]   a directory (mode 0755 unless given, in octal)
  --symlink PATH:TARGET
                      a symbolic link
  --nod PATH:c|b:MAJOR:MINOR[:MODE]
                      a device node (mode 0600 unless given)
  --manifest FILE     one directive a line: file, tree, dir, symlink, nod,
                      module, bin, include, and try-file, try-tree,
                      try-module, try-bin, try-include that skip what is
                      absent; # comments (- for stdin)
  --compress none|lz4
                      the image's format: a plain newc cpio (none, the
                      default), or the kernel's legacy LZ4 (as lz4 -l), its
                      blocks compressed on every core
  --cpus N, --mem SIZE, --net
                      rapido resources: the VM size the image asks for
                      (rapido-rsc/ entries; chrootvm --initrd reads them)
  --list FILE         print the entries of an image (- for stdin), like ls
                      -l: plain, LZ4 and concatenated archives
  -h, --help          print this help
  -V, --version       print the version

Entries are owned by root and sorted by path; their mtime is
$SOURCE_DATE_EPOCH, or 0: the same inputs give the same bytes, whatever
the host's mtimes, directory order or core count. Compressed modules are
decompressed unless the kernel's config says it decompresses them itself;
firmware the modules name is packed from /lib/firmware when present.

Directives apply in order, and one replaces what an earlier one put at a
path (a --file after a --bin that packed the same file wins). What the
image needs to boot (/init, the modules, firmware, resources) is never
replaced: a directive in its way is an error naming both. A directory the
user plans where the host has a link (bin -> usr/bin) stays a directory.

Exit status:
  0  success
  1  error (one line on stderr: mkinitrd: <what failed>)
  2  usage error
";

/// What the command line asks for.
enum Command {
    Help,
    Version,
    Pack(PackArgs),
    List(PathBuf),
}

/// Options of a packing run.
#[derive(Default)]
struct PackArgs {
    output: PathBuf,
    kver: Option<String>,
    moddir: Option<PathBuf>,
    init: Option<PathBuf>,
    /// Content, modules and programs, in command-line order.
    directives: Vec<Directive>,
    /// `--manifest` files, each with the number of directives given
    /// before it (its place in the order).
    manifests_at: Vec<(usize, PathBuf)>,
    compression: Compression,
    resources: rsc::Resources,
}

fn main() -> ExitCode {
    let command = match parse_args(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("mkinitrd: {e} (see mkinitrd --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`mkinitrd -o - | head`) is not a failure.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkinitrd: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The value of a content option, parsed by `parse`.
fn content_arg(
    parser: &mut lexopt::Parser,
    parse: fn(&str) -> Result<Directive, Error>,
) -> Result<Directive, lexopt::Error> {
    use lexopt::ValueExt;
    let value = parser.value()?.string()?;
    parse(&value).map_err(|e| e.to_string().into())
}

/// Parses the arguments after the program name.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut pack = PackArgs::default();
    let mut output = None;
    let mut list = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('o') | Long("output") => output = Some(PathBuf::from(parser.value()?)),
            Long("kver") => pack.kver = Some(parser.value()?.string()?),
            Long("moddir") => pack.moddir = Some(PathBuf::from(parser.value()?)),
            Long("init") => pack.init = Some(PathBuf::from(parser.value()?)),
            Short('m') | Long("module") => pack.directives.push(Directive::Module {
                name: parser.value()?.string()?,
                optional: false,
            }),
            Long("bin") => pack.directives.push(Directive::Bin {
                name: parser.value()?.string()?,
                optional: false,
            }),
            Long("file") => pack
                .directives
                .push(content_arg(&mut parser, content::parse_file_spec)?),
            Long("tree") => pack
                .directives
                .push(content_arg(&mut parser, content::parse_tree_spec)?),
            Long("dir") => pack
                .directives
                .push(content_arg(&mut parser, content::parse_dir_spec)?),
            Long("symlink") => {
                pack.directives
                    .push(content_arg(&mut parser, content::parse_symlink_spec)?);
            }
            Long("nod") => pack
                .directives
                .push(content_arg(&mut parser, content::parse_nod_spec)?),
            Long("manifest") => pack
                .manifests_at
                .push((pack.directives.len(), PathBuf::from(parser.value()?))),
            Long("compress") => {
                pack.compression = match parser.value()?.string()?.as_str() {
                    "lz4" => Compression::Lz4(Lz4Options::from_env().map_err(|e| e.to_string())?),
                    "none" => Compression::None,
                    other => {
                        return Err(format!("unknown --compress \"{other}\" (lz4 or none)").into());
                    }
                };
            }
            Long("cpus") => {
                pack.resources.cpus =
                    Some(rsc::parse_cpus(&parser.value()?.string()?).map_err(|e| e.to_string())?);
            }
            Long("mem") => {
                pack.resources.mem =
                    Some(rsc::parse_mem(&parser.value()?.string()?).map_err(|e| e.to_string())?);
            }
            Long("net") => pack.resources.net = true,
            Long("list") => list = Some(PathBuf::from(parser.value()?)),
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            _ => return Err(arg.unexpected()),
        }
    }
    match (output, list) {
        (Some(_), Some(_)) => Err("-o and --list cannot be used together".into()),
        (None, None) => Err("nothing to do: give -o FILE to pack or --list FILE to list".into()),
        (None, Some(list)) => Ok(Command::List(list)),
        (Some(output), None) => {
            pack.output = output;
            Ok(Command::Pack(pack))
        }
    }
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Help => print_stdout(HELP),
        Command::Version => print_stdout(&format!("mkinitrd {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Pack(args) => pack(&args),
        Command::List(path) => list_image(&path),
    }
}

/// Plans the image, then writes it.
fn pack(args: &PackArgs) -> Result<(), Error> {
    // Every entry's mtime, and where the image goes; checked first so a
    // bad value or a directory in the way fails fast.
    let mtime = image::source_date_epoch()?;
    let destination = match args.output.as_path() {
        stdout if stdout == Path::new("-") => None,
        path => Some(Destination::of(path)?),
    };
    let directives = with_manifests(args)?;
    let tree = ModuleTree::open(&module_dir(args)?)?;
    let init = init_binary::find_init(args.init.as_deref());

    // The plan (request.rs, the precedence of image::Source); nothing is
    // written until it is complete.
    let request = Request {
        init: &init,
        modules: kernel::DEFAULT_MODULES,
        directives: &directives,
        resources: &args.resources,
        mtime,
    };
    let plan = request::plan(&request, &tree)?;
    for warning in &plan.warnings {
        eprintln!("mkinitrd: warning: {warning}");
    }
    let image = plan.image;
    write_image(&image, destination.as_ref(), &args.compression)
}

/// The command line's directives with each `--manifest` expanded in its
/// place.
fn with_manifests(args: &PackArgs) -> Result<Vec<Directive>, Error> {
    let mut directives = Vec::new();
    let mut given = args.directives.iter();
    let mut taken = 0;
    for (at, path) in &args.manifests_at {
        directives.extend(given.by_ref().take(at - taken).cloned());
        taken = *at;
        directives.extend(
            manifest::load(path)?
                .into_iter()
                .map(|(directive, _)| directive),
        );
    }
    directives.extend(given.cloned());
    Ok(directives)
}

/// --moddir, or the tree of --kver / the running kernel.
fn module_dir(args: &PackArgs) -> Result<PathBuf, Error> {
    if let Some(dir) = &args.moddir {
        return Ok(dir.clone());
    }
    let kver = match &args.kver {
        Some(kver) => kver.clone(),
        None => kernel::running_kver()?,
    };
    kernel::find_moddir(&kver)
}

/// Writes the image to `destination`, or to stdout (`-o -`).
fn write_image(
    image: &Image,
    destination: Option<&Destination>,
    compression: &Compression,
) -> Result<(), Error> {
    match destination {
        None => image.write_compressed_to(io::stdout().lock(), compression),
        Some(destination) => destination.write(|file| image.write_to_file(file, compression)),
    }
}

/// Lists the entries of the image at `path` (`-`: stdin).
fn list_image(path: &Path) -> Result<(), Error> {
    let stdout = io::stdout().lock();
    if path == Path::new("-") {
        list::list_archive(io::stdin().lock(), path, stdout)
    } else {
        let file = std::fs::File::open(path).map_err(|source| Error::ReadArchive {
            path: path.to_path_buf(),
            source,
        })?;
        list::list_archive(file, path, stdout)
    }
}

/// Prints `text` to stdout.
fn print_stdout(text: &str) -> Result<(), Error> {
    use std::io::Write;
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|source| Error::WriteListing { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(OsString::from)).map_err(|e| e.to_string())
    }

    /// Issue 15: `try-module` took any resolve error (a parse error, a
    /// dependency cycle) for "absent" and skipped the module silently.
    fn pack_args(args: &[&str]) -> PackArgs {
        match parse(args) {
            Ok(Command::Pack(pack)) => pack,
            Ok(_) => panic!("{args:?} should pack"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    /// Each option `--help` shows, with a value it takes: a test below
    /// checks that this covers the help, and that each one parses.
    const EXAMPLES: &[(&str, &[&str])] = &[
        ("--output", &["--output", "x.cpio"]),
        ("--kver", &["--kver", "6.1.0-57-cloud-amd64"]),
        ("--moddir", &["--moddir", "/m"]),
        ("--init", &["--init", "/i"]),
        ("--module", &["--module", "ext4"]),
        ("--bin", &["--bin", "busybox"]),
        ("--file", &["--file", "/etc/hosts:/h"]),
        ("--tree", &["--tree", "/srv:/srv"]),
        ("--dir", &["--dir", "/d:0700"]),
        ("--symlink", &["--symlink", "/bin/sh:busybox"]),
        ("--nod", &["--nod", "/dev/null:c:1:3"]),
        ("--manifest", &["--manifest", "-"]),
        ("--compress", &["--compress", "lz4"]),
        ("--cpus", &["--cpus", "2"]),
        ("--mem", &["--mem", "1G"]),
        ("--net", &["--net"]),
        ("--list", &["--list", "x.cpio"]),
        ("--help", &["--help"]),
        ("--version", &["--version"]),
    ];

    #[test]
    fn every_option_in_help_is_parsed() {
        let documented = ::tests::help_options(HELP);
        for option in &documented {
            assert!(
                EXAMPLES.iter().any(|(name, _)| name == option),
                "{option} is in --help but has no example here"
            );
        }
        for (name, args) in EXAMPLES {
            assert!(documented.contains(name), "{name} is not in --help");
            let mut full: Vec<&str> = args.to_vec();
            if !matches!(*name, "--output" | "--list" | "--help" | "--version") {
                full.extend(["-o", "x.cpio"]);
            }
            assert!(parse(&full).is_ok(), "{full:?}: {:?}", parse(&full).err());
        }
    }

    #[test]
    fn parse_args_builds_the_pack() {
        let pack = pack_args(&[
            "-o",
            "out.cpio",
            "--kver",
            "6.1",
            "--moddir",
            "/m",
            "--init",
            "/i",
            "-m",
            "ext4",
            "--bin",
            "sh",
            "--manifest",
            "a.txt",
            "--nod",
            "/dev/z:c:1:5",
            "--cpus",
            "3",
            "--mem",
            "512M",
            "--net",
            "--compress",
            "lz4",
        ]);
        assert_eq!(pack.output, PathBuf::from("out.cpio"));
        assert_eq!(pack.kver.as_deref(), Some("6.1"));
        assert_eq!(pack.moddir, Some(PathBuf::from("/m")));
        assert_eq!(pack.init, Some(PathBuf::from("/i")));
        assert_eq!(pack.directives.len(), 3);
        // The manifest's place: after the two directives before it.
        assert_eq!(pack.manifests_at, [(2, PathBuf::from("a.txt"))]);
        assert!(matches!(pack.compression, Compression::Lz4(_)));
        assert_eq!(pack.resources.cpus, Some(3));
        assert_eq!(pack.resources.mem.as_deref(), Some("512M"));
        assert!(pack.resources.net);
        assert!(matches!(parse(&["--list", "-"]), Ok(Command::List(p)) if p == Path::new("-")));
    }

    #[test]
    fn parse_args_refuses_what_makes_no_sense() {
        for (args, said) in [
            (
                &["-o", "a", "--list", "b"][..],
                "-o and --list cannot be used together",
            ),
            (&[][..], "nothing to do"),
            (
                &["-o", "a", "--compress", "zstd"][..],
                "unknown --compress \"zstd\"",
            ),
            (&["-o", "a", "--nod", "/x:q:1:2"][..], "/x:q:1:2"),
            (&["-o", "a", "--bogus"][..], "--bogus"),
            (&["-o"][..], "-o"),
        ] {
            let error = match parse(args) {
                Ok(_) => panic!("{args:?} should be refused"),
                Err(e) => e,
            };
            assert!(error.contains(said), "{args:?}: {error}");
        }
    }
}
