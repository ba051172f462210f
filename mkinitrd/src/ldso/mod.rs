//! Host programs and the shared libraries they load, found as ld.so finds them.
//!
//! [`Resolver::add_program`] finds a program by name in [`PROGRAM_DIRS`] (or
//! takes its path), then follows what the kernel and glibc's ld.so would
//! load to run it: a `#!` script's interpreter, an ELF file's `PT_INTERP`
//! and, breadth-first, every `DT_NEEDED` library, searched in ld.so's order
//! (ld.so(8), `_dl_map_object` in glibc's elf/dl-load.c):
//!
//! 1. the `DT_RPATH` of the object that needs the library, then of the
//!    object that loaded that one, up to the program; none of it when the
//!    needing object has a `DT_RUNPATH`, and an object's own `DT_RPATH`
//!    counts only when it has no `DT_RUNPATH` (glibc drops it);
//! 2. `LD_LIBRARY_PATH`: ignored, the image's environment is not the host's;
//! 3. the needing object's `DT_RUNPATH`;
//! 4. the directories of `/etc/ld.so.conf` and the files it includes (what
//!    ld.so's cache is built from), unless the needing object has
//!    `DF_1_NODEFLIB`;
//! 5. the default directories of the program's machine ([`default_dirs`]),
//!    with the same `DF_1_NODEFLIB` exception.
//!
//! A name already loaded into the simulated process, by the name it was
//! needed as or by its `DT_SONAME`, is not searched again; so libc's
//! `DT_NEEDED` of `ld-linux-x86-64.so.2` is the interpreter itself. A
//! candidate is taken only if its ELF class, byte order and machine are the
//! program's; others are skipped, as ld.so skips them. In search paths,
//! `$ORIGIN`, `$LIB` and `$PLATFORM` (also braced) are expanded as glibc does
//! on Debian (`dst_values`); an entry that stays relative would be
//! relative to the runtime working directory, which the image does not
//! know, so it is skipped. glibc-hwcaps and legacy hwcap subdirectories are
//! not searched: the baseline library found instead runs on any CPU.
//!
//! Every path is resolved under a sysroot (`/` in production), component by
//! component, with absolute symlink targets re-rooted there: each symlink met
//! on the way becomes a [`HostItem::Symlink`] stored as is, so usr-merged
//! hosts (`/bin -> usr/bin`) come out the same in the image, and the file at
//! the end becomes a [`HostItem::File`]. Loops stop after [`MAX_SYMLINKS`].
//!
//! The resolver keeps the `ld.so.conf` directories (read once), the items
//! found so far, every ELF file parsed, by path, and what `lstat(2)` and
//! `readlink(2)` said of every path the walks met: each path is asked of
//! the kernel once, however many programs, libraries and search
//! directories pass through it, so the resolver sees the host as it was
//! when it first looked. Of an ELF file only the headers, the `PT_INTERP`
//! path, the dynamic section and its strings are read ([`elf::read_dynamic`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::io::Errno;

use crate::elf::{self, Class, Dynamic, EM_386, EM_AARCH64, EM_X86_64};
use crate::error::{Error, MAX_SYMLINKS};
use crate::glob::{fnmatch_name, is_literal};

mod conf;
mod search;
mod walk;

pub use crate::error::ProgramProblem;
pub use search::default_dirs;
use walk::{Failure, Node, Walk};

/// Where a program name is looked up, in order: the root `PATH` of Debian's
/// `/etc/profile` and login.defs.
pub const PROGRAM_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];
/// `ENOTDIR`, for paths whose parent is not a directory.
const ENOTDIR: i32 = Errno::NOTDIR.raw_os_error();
/// How many `#!` interpreters may be chained: the kernel's
/// `BINPRM_MAX_RECURSION` is 4 (include/linux/binfmts.h).
pub const MAX_INTERPRETERS: usize = 4;
/// Bytes of a file the kernel reads to find a `#!` line
/// (`BINPRM_BUF_SIZE`, include/uapi/linux/binfmts.h).
const SCRIPT_HEAD: usize = 256;
/// Bytes read from the start of a program or library in one go: the `#!`
/// line, the ELF header and program headers, and in small programs (most
/// of coreutils) the `PT_INTERP` path and dynamic string table too, so that
/// most files take two reads.
const HEAD_LEN: u64 = 8192;
/// ld.so's configuration, as ldconfig reads it.
const LD_SO_CONF: &str = "/etc/ld.so.conf";
/// ld.so's cache: the only way it finds libraries in `ld.so.conf`
/// directories outside its defaults, so packed when one was used.
const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// One thing to put in the image, at the same absolute path as on the host
/// (relative to the sysroot), without the leading slash: `usr/bin/bash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostItem {
    /// A regular file.
    File {
        /// Its path in the image.
        path: String,
        /// The file on the host, sysroot included.
        source: PathBuf,
    },
    /// A symbolic link.
    Symlink {
        /// Its path in the image.
        path: String,
        /// Its target as stored in the link: relative or absolute.
        target: String,
    },
}

impl HostItem {
    /// The item's path in the image.
    pub fn path(&self) -> &str {
        match self {
            HostItem::File { path, .. } | HostItem::Symlink { path, .. } => path,
        }
    }
}

/// Finds host programs and what they load, and collects them as
/// [`HostItem`]s.
///
/// # Example
///
/// ```no_run
/// use std::path::Path;
/// use mkinitrd::ldso::Resolver;
///
/// let mut resolver = Resolver::new(Path::new("/"))?;
/// resolver.add_program("bash")?;
/// for item in resolver.items() {
///     println!("{}", item.path());
/// }
/// # Ok::<(), mkinitrd::Error>(())
/// ```
#[derive(Debug)]
pub struct Resolver {
    /// The host tree every absolute path is taken under.
    sysroot: PathBuf,
    /// The `ld.so.conf` directories, absolute, each once, in file order.
    conf_dirs: Vec<String>,
    /// Everything found, by image path.
    items: BTreeMap<String, HostItem>,
    /// Parsed ELF files, by resolved path.
    elves: HashMap<String, Arc<Dynamic>>,
    /// What is at each path the walks met, relative to the sysroot.
    nodes: HashMap<String, Node>,
    /// Where each path given to [`Resolver::walk`] led.
    walks: HashMap<String, Result<Walk, Failure>>,
}

/// One object loaded into the simulated process.
#[derive(Debug)]
struct Object {
    /// The path it was opened as, absolute: the logical path for libraries,
    /// the resolved path for the program (the kernel's `/proc/self/exe`).
    path: String,
    /// `$ORIGIN`: the directory of `path`, as glibc takes it.
    origin: String,
    /// Its headers and dynamic section.
    dynamic: Arc<Dynamic>,
    /// The object whose `DT_NEEDED` loaded it; `None` for the program.
    loader: Option<usize>,
    /// False for the interpreter, which ld.so maps itself and which needs
    /// nothing.
    follow: bool,
}

/// The objects of one simulated process, and the names ld.so would match
/// them by.
#[derive(Debug, Default)]
struct Process {
    /// In load order: the program, its interpreter, then breadth-first.
    objects: Vec<Object>,
    /// `DT_NEEDED` names and `DT_SONAME`s of loaded objects.
    by_name: HashMap<String, usize>,
    /// Resolved paths of loaded objects: ld.so matches files by identity.
    by_real: HashMap<String, usize>,
}

impl Process {
    /// Adds `object`, found at resolved path `real`, known as `name`.
    fn add(&mut self, object: Object, real: &str, name: Option<&str>) {
        let index = self.objects.len();
        if let Some(soname) = &object.dynamic.soname {
            self.by_name.entry(soname.clone()).or_insert(index);
        }
        if let Some(name) = name {
            self.by_name.entry(name.to_owned()).or_insert(index);
        }
        self.by_real.entry(real.to_owned()).or_insert(index);
        self.objects.push(object);
    }
}

/// Where a search directory came from: only `ld.so.conf` ones matter later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DirSource {
    /// `DT_RPATH`, `DT_RUNPATH` or the default directories.
    Builtin,
    /// An `ld.so.conf` directory that is not a default one.
    Conf,
}

/// A library found on the search path.
#[derive(Debug)]
struct Found {
    /// The path it was opened as.
    path: String,
    /// Where that led.
    walk: Walk,
    /// Found in an `ld.so.conf` directory that ld.so reaches only through
    /// its cache.
    via_conf: bool,
    /// Its headers and dynamic section.
    dynamic: Arc<Dynamic>,
}

impl Resolver {
    /// A resolver for programs under `sysroot` (`/` for the running host).
    /// Reads `/etc/ld.so.conf` and what it includes, under `sysroot`; a
    /// missing file means no directories.
    ///
    /// # Errors
    ///
    /// [`Error::ReadFile`] when a configuration file exists but cannot be
    /// read; [`Error::ResolvePath`] for a symlink loop on the way to one.
    pub fn new(sysroot: &Path) -> Result<Resolver, Error> {
        let mut resolver = Resolver {
            sysroot: sysroot.to_owned(),
            conf_dirs: Vec::new(),
            items: BTreeMap::new(),
            elves: HashMap::new(),
            nodes: HashMap::new(),
            walks: HashMap::new(),
        };
        let mut seen = HashSet::new();
        let mut dirs = Vec::new();
        resolver.read_conf(LD_SO_CONF, &mut dirs, &mut seen)?;
        resolver.conf_dirs = dirs;
        Ok(resolver)
    }

    /// Adds `prog` and everything it loads.
    ///
    /// `prog` without a `/` is looked up in [`PROGRAM_DIRS`] (the first
    /// regular file with an execute bit wins); with one, it is a path under
    /// the sysroot (a relative one is taken from the sysroot's root, so the
    /// caller makes a user's relative path absolute first). A static
    /// executable adds just itself.
    ///
    /// # Errors
    ///
    /// [`Error::FindProgram`], [`Error::FindInterpreter`] or
    /// [`Error::FindLibrary`] naming what is missing;
    /// [`Error::ResolvePath`] for symlink loops and unreadable directories;
    /// [`Error::BadProgram`] or [`Error::ParseElf`] for files that cannot run;
    /// [`Error::OpenFile`]/[`Error::ReadFile`] for I/O errors. Items found
    /// before the error stay added.
    pub fn add_program(&mut self, prog: &str) -> Result<(), Error> {
        let path = if prog.contains('/') {
            absolute(prog)
        } else {
            self.find_program(prog)?
        };
        self.add_executable(&path, None, 0)
    }

    /// Adds a host path: the file at its end and every symlink on the way,
    /// without looking inside the file.
    ///
    /// # Errors
    ///
    /// [`Error::ResolvePath`] when the path does not lead anywhere,
    /// [`Error::NotRegularFile`] when it leads to a directory or device.
    pub fn add_path(&mut self, path: &str) -> Result<(), Error> {
        let path = absolute(path);
        let walk = self.walk(&path).map_err(|source| Error::ResolvePath {
            path: PathBuf::from(&path),
            source,
        })?;
        if !walk.meta.is_file() {
            return Err(Error::NotRegularFile {
                path: self.host(&walk.real),
            });
        }
        self.commit(&walk);
        Ok(())
    }

    /// Everything added so far, each path once, sorted by path.
    pub fn items(&self) -> Vec<HostItem> {
        self.items.values().cloned().collect()
    }

    /// The first executable `name` in [`PROGRAM_DIRS`].
    fn find_program(&mut self, name: &str) -> Result<String, Error> {
        for dir in PROGRAM_DIRS {
            let path = format!("{dir}/{name}");
            match self.walk(&path) {
                Ok(walk) if walk.meta.is_file() && walk.meta.permissions().mode() & 0o111 != 0 => {
                    return Ok(path);
                }
                Ok(_) => {}
                Err(e) if is_absent(&e) => {}
                Err(source) => {
                    return Err(Error::ResolvePath {
                        path: PathBuf::from(path),
                        source,
                    });
                }
            }
        }
        Err(Error::FindProgram {
            name: name.to_owned(),
            tried: PROGRAM_DIRS.iter().map(PathBuf::from).collect(),
        })
    }

    /// Adds the executable at absolute `path`, which `needed_by` (a script)
    /// names as its interpreter, `depth` interpreters deep, and what it
    /// loads.
    fn add_executable(
        &mut self,
        path: &str,
        needed_by: Option<&str>,
        depth: usize,
    ) -> Result<(), Error> {
        let walk = match (self.walk(path), needed_by) {
            (Ok(walk), _) => walk,
            (Err(e), Some(script)) if is_absent(&e) => {
                return Err(Error::FindInterpreter {
                    path: PathBuf::from(path),
                    needed_by: PathBuf::from(script),
                });
            }
            (Err(source), _) => {
                return Err(Error::ResolvePath {
                    path: PathBuf::from(path),
                    source,
                });
            }
        };
        if !walk.meta.is_file() {
            return Err(Error::NotRegularFile {
                path: self.host(&walk.real),
            });
        }
        if let Some(dynamic) = self.elves.get(&walk.real) {
            // Parsed before (a program given twice, a library as a
            // program): an ELF file, not a script.
            let dynamic = Arc::clone(dynamic);
            self.commit(&walk);
            return self.add_loaded(&walk.real, dynamic);
        }
        let (file, head) = self.read_head(&walk)?;
        if head.starts_with(b"#!") {
            let line = &head[..head.len().min(SCRIPT_HEAD)];
            let interp = parse_shebang(line).ok_or_else(|| Error::BadProgram {
                path: PathBuf::from(path),
                problem: ProgramProblem::NoInterpreter,
            })?;
            if depth == MAX_INTERPRETERS {
                return Err(Error::BadProgram {
                    path: PathBuf::from(path),
                    problem: ProgramProblem::TooManyInterpreters {
                        limit: MAX_INTERPRETERS,
                    },
                });
            }
            self.commit(&walk);
            return self.add_executable(&absolute(&interp), Some(path), depth + 1);
        }
        if !head.starts_with(elf::ELF_MAGIC) {
            return Err(Error::BadProgram {
                path: PathBuf::from(path),
                problem: ProgramProblem::NotExecutable,
            });
        }
        let dynamic = self.parse_elf(&walk, &file, &head)?;
        self.commit(&walk);
        self.add_loaded(&walk.real, dynamic)
    }

    /// Adds the interpreter and, breadth-first as ld.so maps them, the
    /// libraries of the program at resolved path `real`.
    fn add_loaded(&mut self, real: &str, program: Arc<Dynamic>) -> Result<(), Error> {
        let mut process = Process::default();
        let path = absolute(real);
        let main = Object {
            origin: parent(&path),
            path,
            dynamic: Arc::clone(&program),
            loader: None,
            follow: true,
        };
        process.add(main, real, None);
        if let Some(interp) = &program.interp {
            self.add_interpreter(&mut process, interp)?;
        }
        let mut via_conf = false;
        let mut next = 0;
        while let Some(object) = process.objects.get(next) {
            let loader = next;
            next += 1;
            if !object.follow {
                continue;
            }
            for name in object.dynamic.needed.clone() {
                if process.by_name.contains_key(&name) {
                    continue;
                }
                let found = self.find_library(&process, loader, &name, &program)?;
                via_conf |= found.via_conf;
                self.commit(&found.walk);
                if let Some(&index) = process.by_real.get(&found.walk.real) {
                    process.by_name.insert(name, index);
                    continue;
                }
                let object = Object {
                    origin: parent(&found.path),
                    path: found.path,
                    dynamic: found.dynamic,
                    loader: Some(loader),
                    follow: true,
                };
                process.add(object, &found.walk.real, Some(&name));
            }
        }
        if via_conf {
            self.add_ld_so_cache()?;
        }
        Ok(())
    }

    /// Adds the `PT_INTERP` of the process's program, known to ld.so by its
    /// path and its `DT_SONAME`.
    fn add_interpreter(&mut self, process: &mut Process, interp: &str) -> Result<(), Error> {
        let program = &process.objects[0].path;
        let walk = match self.walk(interp) {
            Ok(walk) if walk.meta.is_file() => walk,
            Ok(walk) => {
                return Err(Error::NotRegularFile {
                    path: self.host(&walk.real),
                });
            }
            Err(e) if is_absent(&e) => {
                return Err(Error::FindInterpreter {
                    path: PathBuf::from(interp),
                    needed_by: PathBuf::from(program),
                });
            }
            Err(source) => {
                return Err(Error::ResolvePath {
                    path: PathBuf::from(interp),
                    source,
                });
            }
        };
        let object = Object {
            path: interp.to_owned(),
            origin: parent(interp),
            dynamic: self.load_elf(&walk)?,
            loader: None,
            follow: false,
        };
        self.commit(&walk);
        process.add(object, &walk.real, Some(interp));
        Ok(())
    }

    /// The ELF file `walk` led to, parsed, when it has `want`'s class, byte
    /// order and machine; `None` when it has others or is not ELF. Only a
    /// file that matches is parsed past its header.
    fn same_abi(&mut self, walk: &Walk, want: &elf::Header) -> Result<Option<Arc<Dynamic>>, Error> {
        let same = |header: &elf::Header| {
            (header.class, header.endian, header.e_machine)
                == (want.class, want.endian, want.e_machine)
        };
        if let Some(dynamic) = self.elves.get(&walk.real) {
            return Ok(same(&dynamic.header).then(|| Arc::clone(dynamic)));
        }
        let (file, head) = self.read_head(walk)?;
        match elf::parse_header(&head) {
            Ok(header) if same(&header) => self.parse_elf(walk, &file, &head).map(Some),
            _ => Ok(None),
        }
    }

    /// The ELF file `walk` led to, parsed once.
    fn load_elf(&mut self, walk: &Walk) -> Result<Arc<Dynamic>, Error> {
        if let Some(dynamic) = self.elves.get(&walk.real) {
            return Ok(Arc::clone(dynamic));
        }
        let (file, head) = self.read_head(walk)?;
        self.parse_elf(walk, &file, &head)
    }

    /// Parses the ELF file `walk` led to, open as `file`, whose first bytes
    /// are `head`, and remembers it by its resolved path.
    fn parse_elf(&mut self, walk: &Walk, file: &File, head: &[u8]) -> Result<Arc<Dynamic>, Error> {
        let path = self.host(&walk.real);
        let dynamic = elf::read_dynamic(file, walk.meta.len(), head).map_err(|e| match e {
            elf::Failure::Elf(problem) => Error::ParseElf { path, problem },
            elf::Failure::Read(source) => Error::ReadFile { path, source },
        })?;
        let dynamic = Arc::new(dynamic);
        self.elves.insert(walk.real.clone(), Arc::clone(&dynamic));
        Ok(dynamic)
    }

    /// Opens the regular file `walk` led to and reads its first
    /// [`HEAD_LEN`] bytes (fewer if it is shorter).
    fn read_head(&self, walk: &Walk) -> Result<(File, Vec<u8>), Error> {
        let path = self.host(&walk.real);
        let file = File::open(&path).map_err(|source| Error::OpenFile {
            path: path.clone(),
            source,
        })?;
        let len = HEAD_LEN.min(walk.meta.len());
        let head =
            elf::read_at(&file, 0, len).map_err(|source| Error::ReadFile { path, source })?;
        Ok((file, head))
    }

    /// Adds `/etc/ld.so.cache`, through which ld.so finds libraries in
    /// `ld.so.conf` directories that are not default ones.
    fn add_ld_so_cache(&mut self) -> Result<(), Error> {
        match self.walk(LD_SO_CACHE) {
            Ok(walk) if walk.meta.is_file() => {
                self.commit(&walk);
                Ok(())
            }
            // Without a cache the host's ld.so would not find the library
            // either; the image gets it anyway, to be found by a user's
            // LD_LIBRARY_PATH.
            Ok(_) => Ok(()),
            Err(e) if is_absent(&e) => Ok(()),
            Err(source) => Err(Error::ResolvePath {
                path: PathBuf::from(LD_SO_CACHE),
                source,
            }),
        }
    }

    /// Records the symlinks and the file `walk` met.
    fn commit(&mut self, walk: &Walk) {
        for (path, target) in &walk.links {
            self.items
                .entry(path.clone())
                .or_insert_with(|| HostItem::Symlink {
                    path: path.clone(),
                    target: target.clone(),
                });
        }
        if walk.meta.is_file() {
            let source = self.host(&walk.real);
            self.items
                .entry(walk.real.clone())
                .or_insert_with(|| HostItem::File {
                    path: walk.real.clone(),
                    source,
                });
        }
    }
}

/// `path` made absolute: a relative one is taken from the root.
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// The directory part of absolute `path`, as glibc computes `$ORIGIN`: up to
/// the last slash, `/` for a file in the root.
fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(at) => path[..at].to_owned(),
    }
}

/// The non-empty components of `path`, last first: the work list of a
/// path walk (here, and over an image in [`crate::dangling`]).
pub(crate) fn components_reversed(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_owned)
        .collect()
}

/// `dir` (components) joined with `name`, no leading slash.
fn join(dir: &[String], name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{}/{name}", dir.join("/"))
    }
}

/// True for the errors of a path that is simply not there: ld.so and
/// ldconfig move on past them.
fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ENOTDIR)
}

/// The interpreter path of a `#!` line in `head`, the first bytes of a
/// file: after `#!` and blanks, up to a blank or the end of the line, as
/// the kernel's binfmt_script reads it. `None` when there is none.
fn parse_shebang(head: &[u8]) -> Option<String> {
    let line = head.strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let interp = line
        .split(|&b| b == b' ' || b == b'\t' || b == 0)
        .find(|word| !word.is_empty())?;
    String::from_utf8(interp.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{DF_1_NODEFLIB, EM_386, Endian, TestElf};
    use crate::testutil::TempDir;
    use search::{dst_values, expand_dsts, expand_search_path};
    use std::error::Error as _;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// The x86-64 interpreter path.
    const LD: &str = "/lib64/ld-linux-x86-64.so.2";

    /// A fake host tree to resolve under.
    struct Root(TempDir);

    impl Root {
        fn new(name: &str) -> Root {
            Root(TempDir::new(&format!("ldso-{name}")))
        }

        /// Writes an executable file at `rel`, creating its parents.
        fn file(&self, rel: &str, contents: &[u8]) {
            let path = self.0.write(rel, contents);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }

        fn elf(&self, rel: &str, elf: TestElf) {
            self.file(rel, &elf.build());
        }

        /// Creates the symlink `rel` -> `target`, creating its parents.
        fn link(&self, rel: &str, target: &str) {
            let path = self.0.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            symlink(target, path).unwrap();
        }

        fn resolver(&self) -> Resolver {
            Resolver::new(self.0.path()).unwrap()
        }

        /// The items for `progs`, as `path` or `path -> target`.
        fn resolve(&self, progs: &[&str]) -> Result<Vec<String>, Error> {
            let mut resolver = Resolver::new(self.0.path())?;
            for prog in progs {
                resolver.add_program(prog)?;
            }
            Ok(self.render(&resolver))
        }

        fn render(&self, resolver: &Resolver) -> Vec<String> {
            resolver
                .items()
                .into_iter()
                .map(|item| match item {
                    HostItem::File { path, source } => {
                        assert_eq!(source, self.0.path().join(&path));
                        path
                    }
                    HostItem::Symlink { path, target } => format!("{path} -> {target}"),
                })
                .collect()
        }

        /// The error line of adding `prog`.
        fn error(&self, prog: &str) -> String {
            self.resolver().add_program(prog).unwrap_err().to_string()
        }
    }

    /// A classic layout: real /lib, /lib64 holding the interpreter link.
    fn plain(name: &str) -> Root {
        let root = Root::new(name);
        root.elf(
            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            TestElf::x86_64().soname("ld-linux-x86-64.so.2"),
        );
        root.link(
            "lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        );
        root.elf(
            "lib/x86_64-linux-gnu/libc.so.6",
            TestElf::x86_64()
                .soname("libc.so.6")
                .needed(&["ld-linux-x86-64.so.2"]),
        );
        root
    }

    /// What [`plain`] contributes to every dynamic program.
    const PLAIN_BASE: [&str; 3] = [
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    ];

    /// A usr-merged Debian layout, as on the build host.
    fn debian(name: &str) -> Root {
        let root = Root::new(name);
        for (link, target) in [
            ("bin", "usr/bin"),
            ("sbin", "usr/sbin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            fs::create_dir_all(root.0.path().join(target)).unwrap();
            root.link(link, target);
        }
        root.elf(
            "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            TestElf::x86_64().soname("ld-linux-x86-64.so.2"),
        );
        root.link(
            "usr/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        );
        root.elf(
            "usr/lib/x86_64-linux-gnu/libc.so.6",
            TestElf::x86_64()
                .soname("libc.so.6")
                .needed(&["ld-linux-x86-64.so.2"]),
        );
        root
    }

    /// A dynamic x86-64 program needing libc and `more`.
    fn program(more: &[&str]) -> TestElf {
        let needed: Vec<&str> = ["libc.so.6"].iter().chain(more).copied().collect();
        TestElf::x86_64().interp(LD).needed(&needed)
    }

    fn with_base(base: &[&str], more: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = base.iter().chain(more).map(|s| s.to_string()).collect();
        all.sort();
        all
    }

    #[test]
    fn usr_merged_dirs_come_out_as_the_same_symlinks() {
        let root = debian("merged");
        root.elf("usr/bin/hello", program(&[]));
        assert_eq!(
            root.resolve(&["/bin/hello"]).unwrap(),
            [
                "bin -> usr/bin",
                "lib -> usr/lib",
                "lib64 -> usr/lib64",
                "usr/bin/hello",
                "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "usr/lib/x86_64-linux-gnu/libc.so.6",
                "usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            ]
        );
    }

    #[test]
    fn programs_are_looked_up_by_name_in_path_order() {
        let root = plain("lookup");
        root.elf("usr/bin/tool", TestElf::x86_64());
        root.elf("bin/tool", TestElf::x86_64());
        // Not executable: skipped, as a shell would.
        root.0.write("usr/local/bin/tool", b"\x7fELF");
        fs::create_dir_all(root.0.path().join("usr/sbin/tool")).unwrap();
        assert_eq!(root.resolve(&["tool"]).unwrap(), ["usr/bin/tool"]);
        assert_eq!(
            root.error("nope"),
            "cannot find program nope (looked in /usr/local/sbin, /usr/local/bin, \
             /usr/sbin, /usr/bin, /sbin and /bin)"
        );
    }

    #[test]
    fn static_binaries_add_only_themselves() {
        let root = Root::new("static");
        root.elf("sbin/busybox", TestElf::x86_64());
        root.elf("sbin/pie", TestElf::x86_64().soname("pie"));
        assert_eq!(
            root.resolve(&["busybox", "/sbin/pie"]).unwrap(),
            ["sbin/busybox", "sbin/pie"]
        );
    }

    #[test]
    fn rpath_is_searched_before_the_default_dirs() {
        let root = plain("rpath");
        root.elf("bin/p", program(&["libx.so.1"]).rpath("/opt/a"));
        root.elf("opt/a/libx.so.1", TestElf::x86_64());
        root.elf("lib/x86_64-linux-gnu/libx.so.1", TestElf::x86_64());
        assert_eq!(
            root.resolve(&["/bin/p"]).unwrap(),
            with_base(&PLAIN_BASE, &["bin/p", "opt/a/libx.so.1"])
        );
    }

    #[test]
    fn runpath_turns_rpath_off() {
        let root = plain("runpath");
        let p = program(&["libx.so.1"]).rpath("/opt/a").runpath("/opt/b");
        root.elf("bin/p", p);
        root.elf("opt/a/libx.so.1", TestElf::x86_64());
        root.elf("opt/b/libx.so.1", TestElf::x86_64());
        assert_eq!(
            root.resolve(&["/bin/p"]).unwrap(),
            with_base(&PLAIN_BASE, &["bin/p", "opt/b/libx.so.1"])
        );
    }

    #[test]
    fn rpath_is_inherited_by_dependencies_but_runpath_is_not() {
        let root = plain("inherit");
        root.elf("bin/r", program(&["liba.so"]).rpath("/opt/r"));
        root.elf("bin/u", program(&["liba.so"]).runpath("/opt/r"));
        root.elf("opt/r/liba.so", TestElf::x86_64().needed(&["libb.so"]));
        root.elf("opt/r/libb.so", TestElf::x86_64());
        assert_eq!(
            root.resolve(&["/bin/r"]).unwrap(),
            with_base(&PLAIN_BASE, &["bin/r", "opt/r/liba.so", "opt/r/libb.so"])
        );
        assert_eq!(
            root.error("/bin/u"),
            "cannot find library libb.so needed by /opt/r/liba.so (looked in \
             /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64, /lib \
             and /usr/lib)"
        );
    }

    #[test]
    fn origin_lib_and_platform_tokens_expand() {
        let root = plain("tokens");
        let rpath = "$ORIGIN/../lib:${ORIGIN}/../lib2/:/x/$LIB:/y/${PLATFORM}:$ORIGINAL:lib";
        root.elf(
            "opt/app/bin/app",
            program(&["liba.so", "libb.so", "libc1.so", "libd.so"]).rpath(rpath),
        );
        root.elf("opt/app/lib/liba.so", TestElf::x86_64());
        root.elf("opt/app/lib2/libb.so", TestElf::x86_64());
        root.elf("x/lib/x86_64-linux-gnu/libc1.so", TestElf::x86_64());
        root.elf("y/x86_64/libd.so", TestElf::x86_64());
        let more = [
            "opt/app/bin/app",
            "opt/app/lib/liba.so",
            "opt/app/lib2/libb.so",
            "x/lib/x86_64-linux-gnu/libc1.so",
            "y/x86_64/libd.so",
        ];
        assert_eq!(
            root.resolve(&["/opt/app/bin/app"]).unwrap(),
            with_base(&PLAIN_BASE, &more)
        );
    }

    #[test]
    fn tokens_follow_glibc_spelling_rules() {
        let x86 = dst_values(Class::Elf64, EM_X86_64);
        let expand = |s| expand_dsts(s, "/o", x86);
        assert_eq!(expand("$ORIGIN/a").as_deref(), Some("/o/a"));
        assert_eq!(expand("${ORIGIN}x").as_deref(), Some("/ox"));
        assert_eq!(expand("$ORIGINx").as_deref(), Some("$ORIGINx"));
        assert_eq!(expand("$LIB_").as_deref(), Some("$LIB_"));
        assert_eq!(
            expand("/$LIB/$").as_deref(),
            Some("/lib/x86_64-linux-gnu/$")
        );
        assert_eq!(expand("${PLATFORM").as_deref(), Some("${PLATFORM"));
        assert_eq!(
            expand_dsts("/$PLATFORM", "/", dst_values(Class::Elf32, EM_386)).as_deref(),
            Some("/i686")
        );
        // No $PLATFORM for an unknown machine: the entry is dropped.
        let riscv = dst_values(Class::Elf64, 243);
        assert_eq!(expand_dsts("/$PLATFORM", "/", riscv), None);
        assert_eq!(
            expand_search_path("/a:/$PLATFORM:/b//", "/", riscv),
            ["/a", "/b"]
        );
        assert_eq!(expand_search_path("$LIB", "/", riscv), Vec::<String>::new());
    }

    #[test]
    fn ld_so_conf_includes_are_globbed_relative_to_the_including_file() {
        let root = plain("conf");
        root.0.write(
            "etc/ld.so.conf",
            b"# comment\ninclude ld.so.conf.d/*.conf\n  /opt/first/  \nhwcap 0 x\nrelative\n",
        );
        root.0
            .write("etc/ld.so.conf.d/b.conf", b"/opt/b # trailing\n/opt/a\n");
        root.0.write(
            "etc/ld.so.conf.d/a.conf",
            b"/opt/a=libc5\ninclude\t/etc/more/*.conf a.conf\n",
        );
        root.0
            .write("etc/ld.so.conf.d/.hidden.conf", b"/opt/hidden\n");
        root.0.write("etc/ld.so.conf.d/x.txt", b"/opt/txt\n");
        root.0.write("etc/more/m.conf", b"/opt/m\n");
        let resolver = root.resolver();
        assert_eq!(
            resolver.conf_dirs,
            ["/opt/a", "/opt/m", "/opt/b", "/opt/first"]
        );

        // A library found only through them brings ld.so's cache along.
        root.0.write("etc/ld.so.cache", b"cache");
        root.elf("bin/p", program(&["libm.so"]));
        root.elf("opt/m/libm.so", TestElf::x86_64());
        let more = ["bin/p", "etc/ld.so.cache", "opt/m/libm.so"];
        assert_eq!(
            root.resolve(&["/bin/p"]).unwrap(),
            with_base(&PLAIN_BASE, &more)
        );
    }

    /// Issue 15: ld.so.conf's globs had no POSIX classes and took a `\\`
    /// literally, where ldconfig's glob(3) (fnmatch(3)) has classes and
    /// quotes with it.
    #[test]
    fn ld_so_conf_includes_glob_as_glibc_does() {
        let root = plain("conf-classes");
        root.0.write(
            "etc/ld.so.conf",
            b"include ld.so.conf.d/lib[[:digit:]].conf\ninclude ld.so.conf.d/x\\.conf\n",
        );
        root.0.write("etc/ld.so.conf.d/lib1.conf", b"/opt/one\n");
        root.0.write("etc/ld.so.conf.d/libx.conf", b"/opt/x\n");
        root.0.write("etc/ld.so.conf.d/x.conf", b"/opt/quoted\n");
        assert_eq!(root.resolver().conf_dirs, ["/opt/one", "/opt/quoted"]);
    }

    #[test]
    fn conf_dirs_that_are_default_dirs_need_no_cache() {
        let root = plain("conf-default");
        root.0.write("etc/ld.so.conf", b"/lib/x86_64-linux-gnu\n");
        root.0.write("etc/ld.so.cache", b"cache");
        root.elf("bin/p", program(&[]));
        assert_eq!(
            root.resolve(&["/bin/p"]).unwrap(),
            with_base(&PLAIN_BASE, &["bin/p"])
        );
    }

    #[test]
    fn libraries_of_another_class_or_machine_are_skipped() {
        let root = plain("mismatch");
        root.elf("bin/p", program(&["libm.so.6"]));
        let i386 = TestElf {
            class: Class::Elf32,
            machine: EM_386,
            ..TestElf::x86_64()
        };
        root.elf("lib/x86_64-linux-gnu/libm.so.6", i386);
        let big = TestElf {
            endian: Endian::Big,
            ..TestElf::x86_64()
        };
        root.elf("usr/lib/x86_64-linux-gnu/libm.so.6", big);
        let arm = TestElf {
            machine: EM_AARCH64,
            ..TestElf::x86_64()
        };
        root.elf("lib64/libm.so.6", arm);
        root.file("usr/lib64/libm.so.6", b"/* GNU ld script */\n");
        root.elf("lib/libm.so.6", TestElf::x86_64());
        assert_eq!(
            root.resolve(&["/bin/p"]).unwrap(),
            with_base(&PLAIN_BASE, &["bin/p", "lib/libm.so.6"])
        );
    }

    #[test]
    fn needed_names_match_loaded_sonames_without_a_search() {
        let root = Root::new("soname");
        // The interpreter is in no search directory, yet libc needs it by
        // its soname: ld.so matches it as already loaded.
        root.elf(
            "opt/ld.so",
            TestElf::x86_64().soname("ld-linux-x86-64.so.2"),
        );
        root.elf(
            "lib/libc.so.6",
            TestElf::x86_64().needed(&["ld-linux-x86-64.so.2", "libc.so.6"]),
        );
        root.elf(
            "bin/p",
            TestElf::x86_64()
                .interp("/opt/ld.so")
                .needed(&["libc.so.6", "/opt/ld.so"]),
        );
        assert_eq!(
            root.resolve(&["/bin/p"]).unwrap(),
            ["bin/p", "lib/libc.so.6", "opt/ld.so"]
        );
    }

    #[test]
    fn needed_paths_are_opened_as_they_are() {
        let root = plain("slash");
        root.elf(
            "opt/app/app",
            program(&["$ORIGIN/plugins/libp.so", "/opt/abs/liba.so"]),
        );
        root.elf("opt/app/plugins/libp.so", TestElf::x86_64());
        root.elf("opt/abs/liba.so", TestElf::x86_64());
        let more = ["opt/abs/liba.so", "opt/app/app", "opt/app/plugins/libp.so"];
        assert_eq!(
            root.resolve(&["/opt/app/app"]).unwrap(),
            with_base(&PLAIN_BASE, &more)
        );
        root.elf("opt/app/bad", program(&["/opt/none/libn.so"]));
        assert_eq!(
            root.error("/opt/app/bad"),
            "cannot find library /opt/none/libn.so needed by /opt/app/bad \
             (looked in /opt/none/libn.so)"
        );
    }

    #[test]
    fn nodeflib_skips_the_conf_and_default_dirs() {
        let root = plain("nodeflib");
        let p = TestElf {
            flags_1: DF_1_NODEFLIB,
            ..program(&[])
        };
        root.elf("bin/p", p);
        assert_eq!(
            root.error("/bin/p"),
            "cannot find library libc.so.6 needed by /bin/p (no directory to look in)"
        );
    }

    #[test]
    fn script_interpreters_are_followed() {
        let root = debian("script");
        root.link("usr/bin/sh", "dash");
        root.elf("usr/bin/dash", program(&[]));
        root.file("usr/local/bin/hi", b"#!/bin/sh -e\necho hi\n");
        root.file("usr/local/bin/two", b"#! \t/usr/local/bin/hi x\n");
        let items = root.resolve(&["two"]).unwrap();
        for want in [
            "bin -> usr/bin",
            "usr/bin/dash",
            "usr/bin/sh -> dash",
            "usr/lib/x86_64-linux-gnu/libc.so.6",
            "usr/local/bin/hi",
            "usr/local/bin/two",
        ] {
            assert!(items.iter().any(|i| i == want), "{want} not in {items:?}");
        }
    }

    #[test]
    fn bad_programs_and_interpreter_loops_are_refused() {
        let root = Root::new("bad");
        root.file("loop", b"#!/loop\n");
        root.file("empty", b"#!  \nx");
        root.file("text", b"hello\n");
        root.file("py", b"#!/usr/bin/python3\n");
        let cases = [
            (
                "/loop",
                "cannot add program /loop: more than 4 #! interpreters in a row (a loop?)",
            ),
            (
                "/empty",
                "cannot add program /empty: its #! line names no interpreter",
            ),
            (
                "/text",
                "cannot add program /text: not an ELF file or a #! script",
            ),
            (
                "/py",
                "cannot find interpreter /usr/bin/python3 needed by /py",
            ),
            ("/none", "cannot resolve /none: No such file or directory"),
        ];
        for (prog, want) in cases {
            assert_eq!(root.error(prog), want);
        }
        root.elf("bin/p", program(&[]));
        assert_eq!(
            root.error("/bin/p"),
            "cannot find interpreter /lib64/ld-linux-x86-64.so.2 needed by /bin/p"
        );
        root.file("bin/broken", &TestElf::x86_64().build()[..70]);
        let err = root.error("/bin/broken");
        assert!(err.starts_with("cannot parse "), "{err}");
        assert!(
            err.ends_with("bin/broken as ELF: the program header table is outside the file"),
            "{err}"
        );
    }

    #[test]
    fn symlink_loops_are_an_error_not_a_hang() {
        let root = plain("loop");
        root.link("bin/a", "b");
        root.link("bin/b", "/bin/a");
        assert_eq!(
            root.error("/bin/a"),
            "cannot resolve /bin/a: Too many levels of symbolic links \
             (more than 40 symbolic links: a loop?)"
        );
        // A loop in a search directory stops the search with that error.
        root.elf("bin/p", program(&["libq.so"]));
        root.link("usr/lib/x86_64-linux-gnu", "x86_64-linux-gnu");
        assert!(
            root.error("/bin/p")
                .starts_with("cannot resolve /usr/lib/x86_64-linux-gnu/libq.so: Too many")
        );
    }

    #[test]
    fn forty_symlinks_resolve_and_forty_one_do_not() {
        let root = Root::new("chain");
        root.elf("target", TestElf::x86_64());
        root.link("l0", "target");
        for i in 1..=40 {
            root.link(&format!("l{i}"), &format!("l{}", i - 1));
        }
        let mut resolver = root.resolver();
        resolver.add_path("/l39").unwrap();
        assert_eq!(resolver.items().len(), 41);
        let err = resolver.add_path("/l40").unwrap_err();
        assert_eq!(
            err.source().unwrap().to_string(),
            io::Error::from(Errno::LOOP).to_string()
        );
    }

    #[test]
    fn absolute_symlinks_stay_inside_the_sysroot() {
        let root = Root::new("reroot");
        root.elf("opt/tool", TestElf::x86_64());
        root.link("bin/tool", "/../../../opt/./tool");
        root.link("bin/up", "../../../../opt/tool");
        assert_eq!(
            root.resolve(&["/bin/tool", "/bin/up"]).unwrap(),
            [
                "bin/tool -> /../../../opt/./tool",
                "bin/up -> ../../../../opt/tool",
                "opt/tool"
            ]
        );
        // A file used as a directory.
        assert_eq!(
            root.error("/opt/tool/x"),
            "cannot resolve /opt/tool/x: Not a directory"
        );
    }

    #[test]
    fn items_are_deduplicated_and_sorted() {
        let root = debian("dedup");
        root.elf("usr/bin/b", program(&[]));
        root.elf("usr/bin/a", program(&[]));
        let mut resolver = root.resolver();
        resolver.add_program("/bin/b").unwrap();
        resolver.add_program("a").unwrap();
        resolver.add_program("/usr/bin/a").unwrap();
        resolver.add_path("/lib64/ld-linux-x86-64.so.2").unwrap();
        let items = root.render(&resolver);
        let mut sorted = items.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(items, sorted);
        assert_eq!(
            items,
            [
                "bin -> usr/bin",
                "lib -> usr/lib",
                "lib64 -> usr/lib64",
                "usr/bin/a",
                "usr/bin/b",
                "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "usr/lib/x86_64-linux-gnu/libc.so.6",
                "usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            ]
        );
    }

    #[test]
    fn add_path_keeps_the_chain_and_refuses_directories() {
        let root = debian("add-path");
        let mut resolver = root.resolver();
        resolver.add_path("lib64/ld-linux-x86-64.so.2").unwrap();
        assert_eq!(
            root.render(&resolver),
            [
                "lib -> usr/lib",
                "lib64 -> usr/lib64",
                "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            ]
        );
        let err = resolver.add_path("/lib").unwrap_err();
        assert!(matches!(err, Error::NotRegularFile { .. }), "{err}");
    }

    #[test]
    fn shebang_lines_are_read_as_the_kernel_does() {
        assert_eq!(parse_shebang(b"#!/bin/sh\n").as_deref(), Some("/bin/sh"));
        assert_eq!(
            parse_shebang(b"#! /bin/sh -e\n").as_deref(),
            Some("/bin/sh")
        );
        assert_eq!(parse_shebang(b"#!\t/x\ty").as_deref(), Some("/x"));
        assert_eq!(parse_shebang(b"#!\n/bin/sh"), None);
        assert_eq!(parse_shebang(b"#!"), None);
    }
}
