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
use mkinitrd::image::{self, Image};
use mkinitrd::kernel;
use mkinitrd::kmod::ModuleTree;
use mkinitrd::list;
use mkinitrd::output;

/// Exit status of a failed run.
const EXIT_ERROR: u8 = 1;
/// Exit status of a command line that could not be understood.
const EXIT_USAGE: u8 = 2;

const HELP: &str = "\
mkinitrd - pack an initramfs (newc cpio) with init and kernel modules

Usage:
  mkinitrd -o FILE|- [--kver VER] [--moddir DIR] [--init PATH] [-m NAME]...
  mkinitrd --list FILE|-

Options:
  -o, --output FILE   write the image to FILE (atomically: a failed run leaves
                      no partial file and keeps an existing one); - for stdout
  --kver VER          kernel version whose modules to pack (default: the
                      running kernel's)
  --moddir DIR        module tree holding modules.dep (default:
                      /lib/modules/VER, then /usr/lib/modules/VER)
  --init PATH         init binary to pack as /init (default: the static init
                      installed or built alongside mkinitrd)
  -m, --module NAME   also pack module NAME and its dependencies; repeatable.
                      It adds to the default set virtio_pci, virtiofs (with
                      virtio, virtio_ring, fuse as dependencies)
  --list FILE         print the entries of an image (- for stdin), like ls -l
  -h, --help          print this help
  -V, --version       print the version

Entries are owned by root and sorted by path; their mtime is
$SOURCE_DATE_EPOCH, or 0: the same inputs give the same bytes.

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
    modules: Vec<String>,
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
            Short('m') | Long("module") => pack.modules.push(parser.value()?.string()?),
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
    // Every entry's mtime; checked first so a bad value fails fast.
    let mtime = image::source_date_epoch()?;
    // The module tree: --moddir, or the one of --kver / the running kernel.
    let moddir = match &args.moddir {
        Some(dir) => dir.clone(),
        None => {
            let kver = match &args.kver {
                Some(kver) => kver.clone(),
                None => kernel::running_kver()?,
            };
            kernel::find_moddir(&kver)?
        }
    };
    // The modules in load order: the default set, then every -m.
    let tree = ModuleTree::open(&moddir)?;
    let names: Vec<&str> = kernel::DEFAULT_MODULES
        .iter()
        .copied()
        .chain(args.modules.iter().map(String::as_str))
        .collect();
    let modules = tree.resolve(&names)?;
    let init = kernel::find_init(args.init.as_deref())?;
    // The plan; nothing is written until it is complete.
    let mut image = Image::new(mtime);
    image.add_init(&init)?;
    image.add_modules(&modules)?;
    write_image(&image, &args.output)
}

/// Writes the image to stdout (`-`) or atomically to a file.
fn write_image(image: &Image, output: &Path) -> Result<(), Error> {
    if output == Path::new("-") {
        image.write_to(io::stdout().lock())
    } else {
        output::write_atomically(output, |file| image.write_to(file))
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
