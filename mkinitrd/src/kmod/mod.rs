//! A kernel module tree (`/lib/modules/VER`): which modules exist, what each
//! depends on, what names and aliases stand for, which are built in, and the
//! order to load a set of them in.
//!
//! [`ModuleTree`] holds the tree's text indexes as parsed data:
//! `modules.dep`, `modules.alias`, `modules.softdep`, `modules.weakdep`,
//! `modules.builtin` and `modules.builtin.modinfo`, plus what the kernel can
//! decompress itself ([`KernelDecompress`]). `modules.alias` and the two
//! built-in indexes are read only when a name that is not a module name is
//! looked up (most runs ask for module names only), each once.
//! [`ModuleTree::resolve`] turns
//! requested names and aliases into the module files to pack, in the order
//! modprobe loads them. The parsers ([`parse_alias`], [`parse_softdep`],
//! [`parse_weakdep`], [`parse_builtin_modinfo`]) are pure functions over
//! the files' contents that never panic, for tests and fuzzers; patterns
//! are matched by [`crate::glob`].
//!
//! Deliberately not read: modprobe.d(5) (so blacklists never hide a
//! requested module, and its `alias`, `softdep`, `options` and `install`
//! lines do not apply: the image is built for a VM, not for the host's
//! configuration), `modules.symbols` (`symbol:` aliases) and the `.bin`
//! indexes, which hold the same data as the text files.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use crate::decompress::Compression;
use crate::decompress::{self, KernelDecompress};
use crate::error::Error;
use crate::glob::fnmatch;

mod hasher;
mod index;
mod module;
mod order;
mod pattern;

use hasher::FastHash;
use index::parse_dep_line;
pub use index::{
    Alias, BuiltinModinfo, LineProblem, Softdep, Weakdep, parse_alias, parse_builtin_modinfo,
    parse_softdep, parse_weakdep,
};
pub use module::{Module, decompress_file, normalize_alias, normalize_name};
use module::{split_module_path, strip_module_suffix};
use order::{Mark, SoftTargets, Walk};
use pattern::PatternIndex;

/// depmod's list of modules and their dependencies (depmod(8)).
pub const MODULES_DEP: &str = "modules.dep";
/// The modules built into the kernel image, one path per line.
pub const MODULES_BUILTIN: &str = "modules.builtin";
/// `alias PATTERN MODULE` lines from the modules' `MODULE_ALIAS` and device
/// tables.
pub const MODULES_ALIAS: &str = "modules.alias";
/// `softdep MODULE pre: ... post: ...` lines from `MODULE_SOFTDEP`.
pub const MODULES_SOFTDEP: &str = "modules.softdep";
/// `weakdep MODULE DEP...` lines from `MODULE_WEAKDEP` (kmod 33, Linux 6.11).
pub const MODULES_WEAKDEP: &str = "modules.weakdep";
/// The `.modinfo` of the built-in modules, `module.key=value` strings each
/// ended by a NUL (Linux 5.2).
pub const MODULES_BUILTIN_MODINFO: &str = "modules.builtin.modinfo";
/// A module of `modules.dep`: where its path and its dependencies are in
/// the tree. Its [`Module`] is made when first asked for: a run packs a few
/// dozen of a tree's thousands, so parsing allocates nothing per module but
/// its name.
#[derive(Debug)]
struct Node {
    /// The path as `modules.dep` has it: a range of [`ModuleTree::dep_text`].
    rel: Range<usize>,
    /// Its dependencies, in `modules.dep` order (loaded from the last one
    /// back): a range of [`ModuleTree::deps`].
    deps: Range<usize>,
    /// The module, once made.
    module: OnceLock<Module>,
}

impl Node {
    /// The node of the path at `rel` of the text, with no dependencies yet.
    fn new(rel: Range<usize>) -> Node {
        Node {
            rel,
            deps: 0..0,
            module: OnceLock::new(),
        }
    }
}

/// The range of `text` that `part`, a slice of it, is.
fn range_in(text: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr().addr() - text.as_ptr().addr();
    start..start + part.len()
}

/// What names that are not module names may be: built-in modules and
/// aliases.
#[derive(Debug, Default)]
struct Fallback {
    /// Names of the built-in modules (`modules.builtin` and
    /// `modules.builtin.modinfo`).
    builtin: HashSet<String>,
    /// Alias patterns of built-in modules.
    builtin_aliases: Vec<String>,
}

/// Why an index read on first use could not be read or parsed: kept, and
/// given to every call that needs the index.
#[derive(Debug)]
enum IndexError {
    /// `modules.builtin` could not be read.
    ReadBuiltin { path: PathBuf, source: io::Error },
    /// Another index could not be read.
    Read { path: PathBuf, source: io::Error },
    /// An index has bad lines.
    Parse {
        path: PathBuf,
        problems: Vec<LineProblem>,
    },
}

impl IndexError {
    /// The error to report, a copy each time.
    fn to_error(&self) -> Error {
        let copy = |e: &io::Error| match e.raw_os_error() {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::new(e.kind(), e.to_string()),
        };
        match self {
            IndexError::ReadBuiltin { path, source } => Error::ReadModulesBuiltin {
                path: path.clone(),
                source: copy(source),
            },
            IndexError::Read { path, source } => Error::ReadModuleIndex {
                path: path.clone(),
                source: copy(source),
            },
            IndexError::Parse { path, problems } => Error::ParseModuleIndex {
                path: path.clone(),
                problems: problems.clone(),
            },
        }
    }
}

/// The parsed indexes of one kernel's module tree.
///
/// # Example
/// ```
/// use std::path::Path;
/// use mkinitrd::kmod::{ModuleTree, parse_alias};
/// let tree = ModuleTree::parse(
///     Path::new("/lib/modules/6.1.0"),
///     "kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko\nkernel/fs/fuse/fuse.ko:\n",
///     "kernel/fs/ext4/ext4.ko\n",
/// )?
/// .with_aliases(parse_alias("alias fs-virtiofs virtiofs\n").unwrap());
/// let names: Vec<String> = tree.resolve(&["fs-virtiofs", "ext4"])?.into_iter().map(|m| m.name).collect();
/// assert_eq!(names, ["fuse", "virtiofs"]);
/// # Ok::<(), mkinitrd::Error>(())
/// ```
#[derive(Debug)]
pub struct ModuleTree {
    moddir: PathBuf,
    /// The text of `modules.dep`, which nodes' paths are ranges of.
    dep_text: String,
    nodes: Vec<Node>,
    /// Every node's dependencies, as indices into `nodes`, one run a node.
    deps: Vec<usize>,
    /// Module name to node, for the modules that have a line of their own.
    by_name: HashMap<String, usize, FastHash>,
    /// The built-in modules; read from the tree on first use after
    /// [`ModuleTree::open`].
    fallback: OnceLock<Result<Fallback, IndexError>>,
    /// `modules.alias`, in file order; read from the tree on first use
    /// after [`ModuleTree::open`].
    aliases: OnceLock<Result<Vec<Alias>, IndexError>>,
    /// `modules.softdep`, in file order.
    softdeps: Vec<Softdep>,
    /// `softdeps` by module pattern.
    softdep_index: PatternIndex,
    /// `modules.weakdep`, in file order.
    weakdeps: Vec<Weakdep>,
    /// `weakdeps` by module pattern.
    weakdep_index: PatternIndex,
    /// What the target kernel decompresses itself.
    kernel_decompress: KernelDecompress,
}

/// What a name given to [`ModuleTree::resolve`] stands for.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// These modules, in `modules.alias` order for an alias.
    Modules(Vec<usize>),
    /// A built-in module: present already.
    Builtin,
    /// Nothing in the tree.
    Missing,
}

impl ModuleTree {
    /// Reads the tree's indexes from `moddir`: `modules.dep` (required),
    /// `modules.softdep` and `modules.weakdep` now; `modules.alias`,
    /// `modules.builtin` and `modules.builtin.modinfo` when a name that is
    /// not a module name is first looked up. Each but `modules.dep` is
    /// optional: a missing one means empty, as with older depmods. What the
    /// kernel decompresses itself is read from its config
    /// ([`KernelDecompress::read_config`] over
    /// [`decompress::kernel_config_candidates`]) when the tree has
    /// compressed modules; otherwise there is nothing to decide and it is
    /// [`KernelDecompress::NONE`].
    ///
    /// Errors: [`Error::ReadModulesDep`], [`Error::ReadModuleIndex`],
    /// [`Error::ParseModulesDep`] and [`Error::ParseModuleIndex`] listing
    /// every bad line of a file. Those of the indexes read later
    /// ([`Error::ReadModulesBuiltin`] too) come from the call that needs
    /// them: [`ModuleTree::resolve`].
    pub fn open(moddir: &Path) -> Result<ModuleTree, Error> {
        let dep_path = moddir.join(MODULES_DEP);
        let modules_dep =
            fs::read_to_string(&dep_path).map_err(|source| Error::ReadModulesDep {
                path: dep_path,
                source,
            })?;
        let mut tree = ModuleTree::parse_dep(moddir, modules_dep)?;
        let softdeps = parse_index(moddir, MODULES_SOFTDEP, parse_softdep)
            .map_err(|e| IndexError::to_error(&e))?;
        let weakdeps = parse_index(moddir, MODULES_WEAKDEP, parse_weakdep)
            .map_err(|e| IndexError::to_error(&e))?;
        let compressed = (0..tree.nodes.len()).any(|node| {
            split_module_path(tree.rel(node)).is_some_and(|(_, compression)| compression.is_some())
        });
        if compressed {
            tree.kernel_decompress =
                KernelDecompress::read_config(&decompress::kernel_config_candidates(moddir));
        }
        Ok(tree.with_softdeps(softdeps).with_weakdeps(weakdeps))
    }

    /// Reads `modules.builtin` and `modules.builtin.modinfo`, for
    /// [`ModuleTree::fallback`].
    fn read_fallback(moddir: &Path) -> Result<Fallback, IndexError> {
        let builtin_path = moddir.join(MODULES_BUILTIN);
        let modules_builtin = match fs::read_to_string(&builtin_path) {
            Ok(text) => text,
            // Kernels without built-in modules (or old depmods) have none.
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(IndexError::ReadBuiltin {
                    path: builtin_path,
                    source,
                });
            }
        };
        let modinfo = read_index(moddir, MODULES_BUILTIN_MODINFO)?.unwrap_or_default();
        let mut fallback = Fallback {
            builtin: builtin_names(&modules_builtin),
            builtin_aliases: Vec::new(),
        };
        fallback.add_modinfo(parse_builtin_modinfo(&modinfo));
        Ok(fallback)
    }

    /// The built-in modules, read on first use.
    fn fallback(&self) -> Result<&Fallback, Error> {
        self.fallback
            .get_or_init(|| ModuleTree::read_fallback(&self.moddir))
            .as_ref()
            .map_err(IndexError::to_error)
    }

    /// `modules.alias`, read on first use.
    fn aliases(&self) -> Result<&[Alias], Error> {
        self.aliases
            .get_or_init(|| parse_index(&self.moddir, MODULES_ALIAS, parse_alias))
            .as_ref()
            .map(Vec::as_slice)
            .map_err(IndexError::to_error)
    }

    /// Builds the tree from the text of `modules.dep` and `modules.builtin`,
    /// with no aliases, soft or weak dependencies, and a kernel that
    /// decompresses nothing; the `with_` methods add those.
    pub fn parse(
        moddir: &Path,
        modules_dep: &str,
        modules_builtin: &str,
    ) -> Result<ModuleTree, Error> {
        let tree = ModuleTree::parse_dep(moddir, modules_dep.to_owned())?;
        let fallback = Fallback {
            builtin: builtin_names(modules_builtin),
            builtin_aliases: Vec::new(),
        };
        // Given, so never read from the tree.
        let _ = tree.fallback.set(Ok(fallback));
        let _ = tree.aliases.set(Ok(Vec::new()));
        Ok(tree)
    }

    /// The tree of `modules_dep` alone, whose other indexes are read from
    /// `moddir` when first needed.
    fn parse_dep(moddir: &Path, modules_dep: String) -> Result<ModuleTree, Error> {
        let mut tree = ModuleTree {
            moddir: moddir.to_path_buf(),
            dep_text: String::new(),
            nodes: Vec::new(),
            deps: Vec::new(),
            by_name: HashMap::default(),
            fallback: OnceLock::new(),
            aliases: OnceLock::new(),
            softdeps: Vec::new(),
            softdep_index: PatternIndex::default(),
            weakdeps: Vec::new(),
            weakdep_index: PatternIndex::default(),
            kernel_decompress: KernelDecompress::NONE,
        };
        tree.parse_modules_dep(modules_dep)?;
        Ok(tree)
    }

    /// The tree with `aliases` ([`parse_alias`]) as its `modules.alias`
    /// (which is then never read).
    pub fn with_aliases(mut self, aliases: Vec<Alias>) -> ModuleTree {
        self.aliases = OnceLock::from(Ok(aliases));
        self
    }

    /// The tree with `softdeps` ([`parse_softdep`]) as its `modules.softdep`.
    pub fn with_softdeps(mut self, softdeps: Vec<Softdep>) -> ModuleTree {
        self.softdep_index = PatternIndex::new(softdeps.iter().map(|s| s.module.as_str()));
        self.softdeps = softdeps;
        self
    }

    /// The tree with `weakdeps` ([`parse_weakdep`]) as its `modules.weakdep`.
    pub fn with_weakdeps(mut self, weakdeps: Vec<Weakdep>) -> ModuleTree {
        self.weakdep_index = PatternIndex::new(weakdeps.iter().map(|w| w.module.as_str()));
        self.weakdeps = weakdeps;
        self
    }

    /// The tree with the built-in modules and aliases of `info`
    /// ([`parse_builtin_modinfo`]) added; for a tree from
    /// [`ModuleTree::open`], the built-in indexes are read first.
    pub fn with_builtin_modinfo(mut self, info: BuiltinModinfo) -> ModuleTree {
        // A read error stays, to be reported by resolve.
        let _ = self.fallback();
        if let Some(Ok(fallback)) = self.fallback.get_mut() {
            fallback.add_modinfo(info);
        }
        self
    }

    /// The tree of a kernel that decompresses `kernel` itself.
    pub fn with_kernel_decompress(mut self, kernel: KernelDecompress) -> ModuleTree {
        self.kernel_decompress = kernel;
        self
    }

    /// What the target kernel decompresses itself, from its config when
    /// [`ModuleTree::open`] found it; give it to
    /// [`crate::image::Image::add_modules_for`].
    pub fn kernel_decompresses(&self) -> KernelDecompress {
        self.kernel_decompress
    }

    /// Parses `path: dep dep ...` lines, reporting every bad line at once,
    /// and keeps `text`.
    fn parse_modules_dep(&mut self, text: String) -> Result<(), Error> {
        // One module a line: no map or list grows as it fills.
        let count = text.lines().count();
        let mut by_path: HashMap<&str, usize, FastHash> =
            HashMap::with_capacity_and_hasher(count, FastHash::default());
        self.by_name.reserve(count);
        self.nodes.reserve(count);
        // Each line's dependency paths, one run a node in `dep_paths`.
        let mut dep_paths = Vec::new();
        let mut problems = Vec::new();
        for (number, line) in (1..).zip(text.lines()) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let start = dep_paths.len();
            match parse_dep_line(line, &mut dep_paths) {
                Ok((path, name)) => {
                    let index = self.nodes.len();
                    // depmod writes one line per file; a repeated name keeps
                    // the first line, as modprobe's lookup does.
                    self.by_name.entry(name).or_insert(index);
                    by_path.entry(path).or_insert(index);
                    let mut node = Node::new(range_in(&text, path));
                    node.deps = start..dep_paths.len();
                    self.nodes.push(node);
                }
                Err(problem) => problems.push((number, problem)),
            }
        }
        if !problems.is_empty() {
            return Err(Error::ParseModulesDep {
                path: self.moddir.join(MODULES_DEP),
                problems,
            });
        }
        // The same runs, of node indices: the ranges carry over.
        self.deps.reserve(dep_paths.len());
        for dep in dep_paths {
            let dep_index = *by_path.entry(dep).or_insert_with(|| {
                // A dependency without a line of its own is loaded from its
                // path with no dependencies, as modprobe would; once, however
                // many modules need it.
                self.nodes.push(Node::new(range_in(&text, dep)));
                self.nodes.len() - 1
            });
            self.deps.push(dep_index);
        }
        drop(by_path);
        self.dep_text = text;
        Ok(())
    }

    /// The `modules.dep` path of `node`.
    fn rel(&self, node: usize) -> &str {
        &self.dep_text[self.nodes[node].rel.clone()]
    }

    /// The module name of `node`, normalised.
    fn name(&self, node: usize) -> String {
        // The path was checked when the node was made.
        let (stem, _) = split_module_path(self.rel(node)).unwrap_or_default();
        normalize_name(stem)
    }

    /// The dependencies of `node`.
    fn deps_of(&self, node: usize) -> &[usize] {
        &self.deps[self.nodes[node].deps.clone()]
    }

    /// The module of `node`, made the first time.
    fn module(&self, node: usize) -> &Module {
        self.nodes[node].module.get_or_init(|| {
            let rel = self.rel(node);
            let (stem, compression) = split_module_path(rel).unwrap_or_default();
            Module {
                name: normalize_name(stem),
                stem: stem.to_owned(),
                rel_path: PathBuf::from(rel),
                // Old depmods wrote absolute paths; join keeps those as they are.
                path: self.moddir.join(rel),
                compression,
            }
        })
    }

    /// The module tree directory.
    pub fn moddir(&self) -> &Path {
        &self.moddir
    }

    /// The module called `name` (`-` or `_`), if it has a `modules.dep` line.
    pub fn get(&self, name: &str) -> Option<&Module> {
        let index = *self.by_name.get(&normalize_name(name))?;
        Some(self.module(index))
    }

    /// True when `name` (`-` or `_`) is built into the kernel; false too
    /// when the built-in indexes cannot be read ([`ModuleTree::resolve`]
    /// reports why).
    pub fn is_builtin(&self, name: &str) -> bool {
        self.fallback()
            .is_ok_and(|fallback| fallback.builtin.contains(&normalize_name(name)))
    }

    /// The modules to pack for `names`, each once, in modprobe's load order.
    ///
    /// Each name is looked up as modprobe does (libkmod's
    /// `kmod_module_new_from_lookup`), the first step that finds something
    /// winning: a module name in `modules.dep`; then an alias of
    /// `modules.alias`, the name matched against every pattern (so
    /// `fs-virtiofs` and `pci:v00001AF4d00001042sv*sd*bc*sc*i*` both work),
    /// giving *all* the modules whose patterns match, in file order, as
    /// modprobe loads them all; then a built-in name or alias
    /// (`modules.builtin`, `modules.builtin.modinfo`), which is present
    /// already and skipped. So a name wins over an alias.
    ///
    /// The order, for each module: its `modules.dep` dependencies from the
    /// last on its line back to the first (depmod writes them so), each
    /// placed the same way; then its `pre:` soft dependencies; the module;
    /// its `post:` soft dependencies; and its weak dependencies. Soft and
    /// weak dependencies are looked up like names (they are often aliases,
    /// `crypto-crc32c`), bring their own dependencies, and are skipped when
    /// the tree has nothing for them, as modprobe does.
    ///
    /// Where this departs from modprobe:
    /// - modprobe uses only the first `softdep` line matching a module;
    ///   depmod writes one line per `MODULE_SOFTDEP`, so ksmbd's twelve
    ///   lines would give one module. Here all matching lines count: the
    ///   module asked for all of them, and the initramfs has no modprobe to
    ///   load them later on request.
    /// - Weak dependencies are packed (modprobe does not load them; mkinitcpio
    ///   and dracut pack them), after their module: they are no load-order
    ///   constraint.
    /// - Soft dependency cycles are broken where they close, like kmod's
    ///   visited flag: a soft dependency met while its own dependencies are
    ///   being placed is not waited for. When a `modules.dep` dependency
    ///   meets a module waiting for its `pre:` soft dependencies, that
    ///   module is placed at once (its own dependencies are placed already),
    ///   dropping the soft constraint, which modprobe's order also breaks.
    ///
    /// Errors: [`Error::MissingModules`] naming every name that stands for
    /// nothing; [`Error::DependencyCycle`] when `modules.dep` dependencies
    /// (possibly through soft ones) come back to a module whose own
    /// dependencies are still being placed; those of reading and parsing
    /// `modules.alias` and the built-in indexes when a name needs them
    /// ([`ModuleTree::open`]).
    pub fn resolve(&self, names: &[&str]) -> Result<Vec<Module>, Error> {
        let mut roots = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for &name in names {
            match self.lookup(name)? {
                Lookup::Modules(found) => roots.extend(found),
                Lookup::Builtin => {}
                Lookup::Missing => {
                    let normal = normalize_name(name);
                    if !missing.iter().any(|m| normalize_name(m) == normal) {
                        missing.push(name.to_string());
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(Error::MissingModules {
                moddir: self.moddir.clone(),
                names: missing,
            });
        }
        let mut walk = Walk {
            tree: self,
            marks: vec![Mark::New; self.nodes.len()],
            order: Vec::new(),
            stack: Vec::new(),
        };
        for root in roots {
            walk.visit(root)?;
        }
        Ok(walk
            .order
            .into_iter()
            .map(|index| self.module(index).clone())
            .collect())
    }

    /// What `name` stands for; see [`ModuleTree::resolve`]. Only a name
    /// that is not a module name reads the alias and built-in indexes.
    fn lookup(&self, name: &str) -> Result<Lookup, Error> {
        let normal = normalize_name(name);
        if let Some(&index) = self.by_name.get(&normal) {
            return Ok(Lookup::Modules(vec![index]));
        }
        let alias = normalize_alias(name);
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        let mut builtin = false;
        for entry in self
            .aliases()?
            .iter()
            .filter(|a| fnmatch(&a.pattern, &alias))
        {
            match self.by_name.get(&entry.module) {
                Some(&index) => {
                    if seen.insert(index) {
                        found.push(index);
                    }
                }
                None => builtin |= self.fallback()?.builtin.contains(&entry.module),
            }
        }
        if !found.is_empty() {
            return Ok(Lookup::Modules(found));
        }
        let fallback = self.fallback()?;
        Ok(
            if builtin
                || fallback.builtin.contains(&normal)
                || fallback.builtin_aliases.iter().any(|p| fnmatch(p, &alias))
            {
                Lookup::Builtin
            } else {
                Lookup::Missing
            },
        )
    }

    /// The modules `node`'s soft and weak dependencies stand for, without
    /// `node` itself.
    fn soft_targets(&self, node: usize) -> Result<SoftTargets, Error> {
        let name = self.name(node);
        let mut targets = SoftTargets::default();
        for i in self
            .softdep_index
            .matching(&name, |i| &self.softdeps[i].module)
        {
            let softdep = &self.softdeps[i];
            self.add_targets(&mut targets.pre, &softdep.pre, node)?;
            self.add_targets(&mut targets.post, &softdep.post, node)?;
        }
        for i in self
            .weakdep_index
            .matching(&name, |i| &self.weakdeps[i].module)
        {
            self.add_targets(&mut targets.weak, &self.weakdeps[i].deps, node)?;
        }
        Ok(targets)
    }

    /// Appends the modules `names` stand for to `list`, each once, never
    /// `node`.
    fn add_targets(
        &self,
        list: &mut Vec<usize>,
        names: &[String],
        node: usize,
    ) -> Result<(), Error> {
        for name in names {
            if let Lookup::Modules(found) = self.lookup(name)? {
                for index in found {
                    if index != node && !list.contains(&index) {
                        list.push(index);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Reads `moddir/name`, or `None` when it does not exist.
fn read_index(moddir: &Path, name: &str) -> Result<Option<Vec<u8>>, IndexError> {
    let path = moddir.join(name);
    match fs::read(&path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IndexError::Read { path, source }),
    }
}

/// Reads and parses the optional text index `moddir/name`.
fn parse_index<T>(
    moddir: &Path,
    name: &str,
    parse: fn(&str) -> Result<Vec<T>, Vec<LineProblem>>,
) -> Result<Vec<T>, IndexError> {
    let Some(data) = read_index(moddir, name)? else {
        return Ok(Vec::new());
    };
    parse(&String::from_utf8_lossy(&data)).map_err(|problems| IndexError::Parse {
        path: moddir.join(name),
        problems,
    })
}

/// The names of the modules of a `modules.builtin` text, one path a line.
fn builtin_names(modules_builtin: &str) -> HashSet<String> {
    modules_builtin
        .lines()
        .filter_map(|line| split_module_path(line.trim()))
        .map(|(stem, _)| normalize_name(stem))
        .collect()
}

impl Fallback {
    /// Adds the built-in modules and aliases of `info`; its aliases replace
    /// any known.
    fn add_modinfo(&mut self, info: BuiltinModinfo) {
        self.builtin.extend(info.names);
        self.builtin_aliases = info.aliases;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    const MODDIR: &str = "/lib/modules/test";

    fn tree(dep: &str, builtin: &str) -> ModuleTree {
        ModuleTree::parse(Path::new(MODDIR), dep, builtin).unwrap()
    }

    fn names(tree: &ModuleTree, wanted: &[&str]) -> Vec<String> {
        tree.resolve(wanted)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect()
    }

    /// The virtio/fuse part of Debian 6.1's modules.dep, as depmod wrote it.
    const VIRTIO_DEP: &str = "\
kernel/fs/fuse/fuse.ko:
kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
";

    /// Lines of Debian 6.1's modules.alias for the same modules.
    const VIRTIO_ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias fs-virtiofs virtiofs
alias virtio:d0000001Av* virtiofs
alias fs-fuse fuse
alias char-major-10-229 fuse
alias devname:fuse fuse
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
";

    #[test]
    fn modprobe_order_for_a_virtiofs_root() {
        let tree = tree(VIRTIO_DEP, "");
        assert_eq!(
            names(&tree, &["virtio_pci", "virtiofs"]),
            ::tests::VIRTIOFS_MODULES
        );
    }

    #[test]
    fn diamond_dependencies_are_loaded_once() {
        let tree = tree(
            "kernel/a.ko: kernel/b.ko kernel/c.ko kernel/d.ko\n\
             kernel/b.ko: kernel/d.ko\n\
             kernel/c.ko: kernel/d.ko\n\
             kernel/d.ko:\n",
            "",
        );
        assert_eq!(names(&tree, &["a"]), ["d", "c", "b", "a"]);
        assert_eq!(names(&tree, &["b", "a", "b", "d"]), ["d", "b", "c", "a"]);
    }

    #[test]
    fn deep_dependencies_are_followed_recursively() {
        // Lines naming only direct dependencies still give a valid order.
        let tree = tree(
            "kernel/e5.ko: kernel/e4.ko\n\
             kernel/e4.ko: kernel/e3.ko\n\
             kernel/e3.ko: kernel/e2.ko kernel/x.ko\n\
             kernel/e2.ko: kernel/e1.ko\n\
             kernel/e1.ko:\n\
             kernel/x.ko: kernel/e1.ko\n",
            "",
        );
        assert_eq!(names(&tree, &["e5"]), ["e1", "x", "e2", "e3", "e4", "e5"]);
    }

    #[test]
    fn builtin_modules_are_skipped() {
        let tree = tree(
            VIRTIO_DEP,
            "kernel/fs/ext4/ext4.ko\nkernel/drivers/block/virtio_blk.ko\n",
        );
        assert_eq!(names(&tree, &["ext4", "virtio-blk", "fuse"]), ["fuse"]);
        assert!(tree.is_builtin("virtio-blk"));
        assert!(!tree.is_builtin("fuse"));
    }

    #[test]
    fn builtin_modinfo_names_and_aliases_are_skipped() {
        let modinfo = b"ext4.alias=fs-ext4\0ext4.alias=ext3\0ext4.license=GPL\0\
                        md5.alias=crypto-md5\0crc32c_generic.alias=crc32c\0";
        let tree = tree(VIRTIO_DEP, "").with_builtin_modinfo(parse_builtin_modinfo(modinfo));
        assert_eq!(
            names(
                &tree,
                &["fs-ext4", "ext3", "md5", "crypto-md5", "crc32c", "fuse"]
            ),
            ["fuse"]
        );
        assert!(tree.is_builtin("crc32c_generic"));
    }

    #[test]
    fn a_loadable_module_of_an_alias_wins_over_a_builtin_one() {
        // Debian's cloud kernel: crc32c is an alias of the loadable
        // crc32c_intel and of the built-in crc32c_generic; modprobe loads
        // crc32c_intel (the aliases file comes before the built-in ones).
        let tree = tree("kernel/arch/x86/crypto/crc32c-intel.ko:\n", "")
            .with_aliases(parse_alias("alias crc32c crc32c_intel\n").unwrap())
            .with_builtin_modinfo(parse_builtin_modinfo(b"crc32c_generic.alias=crc32c\0"));
        assert_eq!(names(&tree, &["crc32c"]), ["crc32c_intel"]);
    }

    #[test]
    fn aliases_resolve_with_their_dependencies() {
        let tree = tree(VIRTIO_DEP, "").with_aliases(parse_alias(VIRTIO_ALIAS).unwrap());
        assert_eq!(
            names(&tree, &["fs-virtiofs"]),
            ["fuse", "virtio_ring", "virtio", "virtiofs"]
        );
        // `-` and `_` are one in aliases too.
        assert_eq!(names(&tree, &["fs_fuse"]), ["fuse"]);
        assert_eq!(names(&tree, &["char_major_10_229"]), ["fuse"]);
    }

    #[test]
    fn device_aliases_match_wildcard_patterns() {
        let tree = tree(VIRTIO_DEP, "").with_aliases(parse_alias(VIRTIO_ALIAS).unwrap());
        // A concrete modalias, as the kernel's uevent gives it.
        assert_eq!(
            names(
                &tree,
                &["pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00"]
            ),
            [
                "virtio_ring",
                "virtio",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio_pci"
            ]
        );
        // The alias literal from modinfo matches the pattern too.
        assert_eq!(
            names(&tree, &["pci:v00001AF4d00001042sv*sd*bc*sc*i*"])
                .last()
                .unwrap(),
            "virtio_pci"
        );
        assert_eq!(
            names(&tree, &["virtio:d0000001Av00001AF4"]).last().unwrap(),
            "virtiofs"
        );
        let err = tree
            .resolve(&["pci:v00008086d00001234sv*sd*bc*sc*i*"])
            .unwrap_err();
        assert!(matches!(err, Error::MissingModules { .. }));
    }

    #[test]
    fn an_alias_of_several_modules_gives_all_of_them() {
        let tree = tree(
            "kernel/crc32-pclmul.ko:\nkernel/crc32_generic.ko:\nkernel/other.ko:\n",
            "",
        )
        .with_aliases(
            parse_alias(
                "alias crc32 crc32_pclmul\nalias crypto-crc32 crc32_pclmul\n\
                     alias crc32 crc32_generic\nalias crc* other\n",
            )
            .unwrap(),
        );
        assert_eq!(
            names(&tree, &["crc32"]),
            ["crc32_pclmul", "crc32_generic", "other"]
        );
    }

    #[test]
    fn a_module_name_wins_over_an_alias() {
        let tree = tree("kernel/a.ko:\nkernel/b.ko:\n", "")
            .with_aliases(parse_alias("alias a b\nalias * b\n").unwrap());
        assert_eq!(names(&tree, &["a"]), ["a"]);
        assert_eq!(names(&tree, &["anything"]), ["b"]);
    }

    /// A tree with softdeps like Debian's: btrfs pre-loads an alias, x_tables
    /// is a dependency of xt_LOG.
    fn softdep_tree() -> ModuleTree {
        tree(
            "kernel/net/netfilter/xt_LOG.ko: kernel/net/netfilter/x_tables.ko\n\
             kernel/net/netfilter/x_tables.ko:\n\
             kernel/net/netfilter/nf_log_syslog.ko: kernel/net/netfilter/nf_log_common.ko\n\
             kernel/net/netfilter/nf_log_common.ko:\n\
             kernel/lib/libcrc32c.ko:\n\
             kernel/arch/x86/crypto/crc32c-intel.ko:\n\
             kernel/drivers/vfio/vfio.ko:\n\
             kernel/drivers/vfio/vfio_iommu_type1.ko: kernel/drivers/vfio/vfio.ko\n",
            "",
        )
        .with_aliases(parse_alias("alias crc32c crc32c_intel\n").unwrap())
        .with_softdeps(
            parse_softdep(
                "softdep xt_LOG pre: nf_log_syslog\n\
                 softdep libcrc32c pre: crc32c\n\
                 softdep vfio post: vfio_iommu_type1 vfio_iommu_spapr_tce\n",
            )
            .unwrap(),
        )
    }

    #[test]
    fn pre_softdeps_load_before_with_their_dependencies() {
        let tree = softdep_tree();
        assert_eq!(
            names(&tree, &["xt_LOG"]),
            ["x_tables", "nf_log_common", "nf_log_syslog", "xt_LOG"]
        );
        assert_eq!(names(&tree, &["libcrc32c"]), ["crc32c_intel", "libcrc32c"]);
    }

    #[test]
    fn post_softdeps_load_after_and_missing_ones_are_skipped() {
        // vfio_iommu_spapr_tce is not in the tree (not an x86 module), and
        // vfio_iommu_type1 depends on vfio, which is placed already.
        let tree = softdep_tree();
        assert_eq!(names(&tree, &["vfio"]), ["vfio", "vfio_iommu_type1"]);
    }

    #[test]
    fn softdeps_of_dependencies_are_honoured() {
        let tree = tree(
            "kernel/a.ko: kernel/b.ko\nkernel/b.ko:\nkernel/p.ko:\nkernel/q.ko:\n",
            "",
        )
        .with_softdeps(parse_softdep("softdep b pre: p post: q\n").unwrap());
        assert_eq!(names(&tree, &["a"]), ["p", "b", "q", "a"]);
    }

    #[test]
    fn every_softdep_line_of_a_module_counts() {
        let tree = tree("kernel/k.ko:\nkernel/x.ko:\nkernel/y.ko:\n", "").with_softdeps(
            parse_softdep("softdep k pre: x\nsoftdep k pre: y\nsoftdep k gcm\n").unwrap(),
        );
        assert_eq!(names(&tree, &["k"]), ["x", "y", "k"]);
    }

    #[test]
    fn softdep_cycles_are_broken_where_they_close() {
        let tree = tree("kernel/a.ko:\nkernel/b.ko:\n", "")
            .with_softdeps(parse_softdep("softdep a pre: b\nsoftdep b pre: a\n").unwrap());
        assert_eq!(names(&tree, &["a"]), ["b", "a"]);
        assert_eq!(names(&tree, &["b"]), ["a", "b"]);
        let own = ModuleTree::parse(Path::new(MODDIR), "kernel/a.ko:\n", "")
            .unwrap()
            .with_softdeps(parse_softdep("softdep a pre: a post: a\n").unwrap());
        assert_eq!(names(&own, &["a"]), ["a"]);
    }

    #[test]
    fn a_hard_dependency_wins_over_a_pre_softdep() {
        // b needs a's symbols, a asks for b first: a goes first, as in
        // modprobe's list, where b would otherwise fail to load.
        let tree = tree("kernel/a.ko:\nkernel/b.ko: kernel/a.ko\n", "")
            .with_softdeps(parse_softdep("softdep a pre: b\n").unwrap());
        assert_eq!(names(&tree, &["a"]), ["a", "b"]);
        assert_eq!(names(&tree, &["b"]), ["a", "b"]);
    }

    #[test]
    fn a_cycle_through_a_softdep_and_hard_dependencies_is_an_error() {
        let tree = tree(
            "kernel/a.ko: kernel/d.ko\nkernel/d.ko:\nkernel/b.ko: kernel/a.ko\n",
            "",
        )
        .with_softdeps(parse_softdep("softdep d pre: b\n").unwrap());
        let err = tree.resolve(&["a"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("dependency cycle a -> d -> b -> a"),
            "{err}"
        );
    }

    #[test]
    fn weakdeps_are_packed_after_their_module() {
        let tree = tree(
            "kernel/a.ko:\nkernel/w.ko: kernel/wd.ko\nkernel/wd.ko:\n",
            "",
        )
        .with_weakdeps(parse_weakdep("weakdep a w missing\n").unwrap());
        assert_eq!(names(&tree, &["a"]), ["a", "wd", "w"]);
    }

    #[test]
    fn softdep_module_names_are_patterns() {
        let tree = tree("kernel/nf_a.ko:\nkernel/nf_b.ko:\nkernel/p.ko:\n", "")
            .with_softdeps(parse_softdep("softdep nf_* pre: p\n").unwrap());
        assert_eq!(names(&tree, &["nf_a", "nf_b"]), ["p", "nf_a", "nf_b"]);
    }

    #[test]
    fn dashes_and_underscores_are_the_same() {
        let tree = tree(
            "kernel/arch/x86/events/amd/amd-uncore.ko:\nkernel/virtio_pci.ko:\n",
            "",
        );
        assert_eq!(
            names(&tree, &["amd_uncore", "virtio-pci", "amd-uncore"]),
            ["amd_uncore", "virtio_pci"]
        );
        let module = tree.get("amd_uncore").unwrap();
        assert_eq!(module.stem, "amd-uncore");
        assert_eq!(
            module.path,
            Path::new("/lib/modules/test/kernel/arch/x86/events/amd/amd-uncore.ko")
        );
    }

    #[test]
    fn all_missing_names_are_in_one_error() {
        let tree = tree(VIRTIO_DEP, "kernel/fs/ext4/ext4.ko\n")
            .with_aliases(parse_alias(VIRTIO_ALIAS).unwrap());
        let err = tree
            .resolve(&[
                "nope",
                "fuse",
                "ext4",
                "zip-zap",
                "fs-virtiofs",
                "zip_zap",
                "nope",
            ])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot find modules nope, zip-zap in /lib/modules/test (not in modules.dep \
             or modules.builtin; check the names with modinfo)"
        );
    }

    #[test]
    fn every_bad_line_is_reported() {
        let err = ModuleTree::parse(
            Path::new(MODDIR),
            "kernel/a.ko:\nno colon here\n\nkernel/b.ko: kernel/readme.txt\nkernel/c.ko:\n",
            "",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot parse /lib/modules/test/modules.dep:2: no ':' after the module path \
             (and 1 more bad line: 4)"
        );
    }

    #[test]
    fn cycles_are_reported_not_followed() {
        let tree = tree(
            "kernel/x.ko: kernel/y.ko\nkernel/y.ko: kernel/z.ko\nkernel/z.ko: kernel/x.ko\n",
            "",
        );
        let err = tree.resolve(&["x"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot order modules from /lib/modules/test/modules.dep: dependency cycle \
             x -> y -> z -> x (run depmod to rebuild it)"
        );
    }

    #[test]
    fn compression_is_read_from_the_suffix() {
        let tree = tree(
            "kernel/a.ko.xz: kernel/b.ko.zst kernel/c.ko.gz\nkernel/b.ko.zst:\nkernel/c.ko.gz:\n",
            "",
        );
        let modules = tree.resolve(&["a"]).unwrap();
        let got: Vec<(&str, Option<Compression>)> = modules
            .iter()
            .map(|m| (m.stem.as_str(), m.compression))
            .collect();
        assert_eq!(
            got,
            [
                ("c", Some(Compression::Gzip)),
                ("b", Some(Compression::Zstd)),
                ("a", Some(Compression::Xz)),
            ]
        );
        assert_eq!(Compression::Zstd.suffix(), ".zst");
        assert_eq!(Compression::Xz.to_string(), "xz");
    }

    #[test]
    fn dependencies_without_a_line_are_still_packed() {
        let tree = tree("kernel/a.ko: kernel/orphan.ko\n", "");
        assert_eq!(names(&tree, &["a"]), ["orphan", "a"]);
    }

    #[test]
    fn long_chains_do_not_overflow_the_stack() {
        let mut dep = String::new();
        for i in 1..100_000 {
            dep.push_str(&format!("m{i}.ko: m{}.ko\n", i - 1));
        }
        dep.push_str("m0.ko:\n");
        let tree = tree(&dep, "");
        let modules = tree.resolve(&["m99999"]).unwrap();
        assert_eq!(modules.len(), 100_000);
        assert_eq!(modules[0].name, "m0");
    }

    #[test]
    fn long_softdep_chains_do_not_overflow_the_stack() {
        let mut dep = String::new();
        let mut softdep = String::new();
        for i in 0..20_000 {
            dep.push_str(&format!("s{i}.ko:\n"));
            softdep.push_str(&format!("softdep s{i} pre: s{}\n", i + 1));
        }
        let tree = tree(&dep, "").with_softdeps(parse_softdep(&softdep).unwrap());
        let modules = tree.resolve(&["s0"]).unwrap();
        assert_eq!(modules.len(), 20_000);
        assert_eq!(modules[0].name, "s19999");
    }

    #[test]
    fn open_reads_the_files_and_tolerates_no_builtin() {
        let tmp = TempDir::new("kmod-open");
        tmp.write("modules.dep", VIRTIO_DEP.as_bytes());
        let tree = ModuleTree::open(tmp.path()).unwrap();
        assert_eq!(
            tree.resolve(&["fuse"]).unwrap()[0].path,
            tmp.path().join("kernel/fs/fuse/fuse.ko")
        );
        assert_eq!(tree.kernel_decompresses(), KernelDecompress::NONE);

        let empty = TempDir::new("kmod-open-empty");
        let err = ModuleTree::open(empty.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read {}: No such file or directory (is the kernel's module tree \
                 installed? pass --moddir)",
                empty.path().join(MODULES_DEP).display()
            )
        );
    }

    #[test]
    fn open_reads_every_index_and_the_kernel_config() {
        let tmp = TempDir::new("kmod-open-all");
        tmp.write(
            "modules.dep",
            b"kernel/a.ko.xz:\nkernel/p.ko:\nkernel/w.ko:\n",
        );
        tmp.write("modules.alias", b"alias fs-a a\n");
        tmp.write(
            "modules.softdep",
            b"# Soft dependencies\nsoftdep a pre: p\n",
        );
        tmp.write("modules.weakdep", b"weakdep a w\n");
        tmp.write("modules.builtin.modinfo", b"ext4.alias=fs-ext4\0");
        tmp.write(
            "config",
            b"CONFIG_MODULE_DECOMPRESS=y\nCONFIG_MODULE_COMPRESS_XZ=y\n",
        );
        let tree = ModuleTree::open(tmp.path()).unwrap();
        assert_eq!(names(&tree, &["fs-a", "fs-ext4"]), ["p", "a", "w"]);
        assert!(tree.kernel_decompresses().handles(Compression::Xz));
    }

    #[test]
    fn bad_lines_of_the_other_indexes_are_reported_when_they_are_needed() {
        let tmp = TempDir::new("kmod-open-bad");
        tmp.write("modules.dep", b"kernel/a.ko:\n");
        tmp.write(
            "modules.alias",
            b"alias fs-a a\nalias lonely\nblacklist a\n",
        );
        let tree = ModuleTree::open(tmp.path()).unwrap();
        // A module name needs no alias.
        assert_eq!(names(&tree, &["a"]), ["a"]);
        let expected = format!(
            "cannot parse {}:2: expected \"alias PATTERN MODULE\" (and 1 more bad line: 3)",
            tmp.path().join(MODULES_ALIAS).display()
        );
        for _ in 0..2 {
            let err = tree.resolve(&["a", "fs-a"]).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
        // modules.softdep is read by open.
        tmp.write("modules.softdep", b"softdep a\n");
        let err = ModuleTree::open(tmp.path()).unwrap_err();
        assert!(
            err.to_string().contains("modules.softdep:1: expected"),
            "{err}"
        );
    }

    #[test]
    fn only_names_that_are_not_module_names_read_the_other_indexes() {
        let tmp = TempDir::new("kmod-lazy");
        tmp.write("modules.dep", b"kernel/a.ko:\nkernel/b.ko.xz:\n");
        // Unreadable as files: reading them would fail.
        for index in [MODULES_ALIAS, MODULES_BUILTIN, MODULES_BUILTIN_MODINFO] {
            fs::create_dir(tmp.path().join(index)).unwrap();
        }
        tmp.write(
            "config",
            b"CONFIG_MODULE_DECOMPRESS=y\nCONFIG_MODULE_COMPRESS_XZ=y\n",
        );
        let tree = ModuleTree::open(tmp.path()).unwrap();
        assert_eq!(names(&tree, &["a", "b"]), ["a", "b"]);
        assert!(tree.get("b").is_some());
        // A tree with a compressed module reads the kernel config.
        assert!(tree.kernel_decompresses().handles(Compression::Xz));
        let err = tree.resolve(&["fs-a"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read {}: Is a directory",
                tmp.path().join(MODULES_ALIAS).display()
            )
        );
        assert!(!tree.is_builtin("ext4"));
        // Without compressed modules there is nothing to decide.
        tmp.write("modules.dep", b"kernel/a.ko:\n");
        let tree = ModuleTree::open(tmp.path()).unwrap();
        assert_eq!(tree.kernel_decompresses(), KernelDecompress::NONE);
    }

    #[test]
    fn a_dependency_without_a_line_is_one_module() {
        let tree = tree(
            "kernel/a.ko: kernel/orphan.ko\nkernel/b.ko: kernel/orphan.ko\n",
            "",
        );
        assert_eq!(names(&tree, &["a", "b"]), ["orphan", "a", "b"]);
        assert_eq!(
            tree.resolve(&["b"]).unwrap()[0].path,
            Path::new(MODDIR).join("kernel/orphan.ko")
        );
    }

    #[test]
    fn alias_lines_parse_like_libkmod() {
        let aliases = parse_alias(
            "# comment\n\n  alias   fs-virtiofs\tvirtiofs  extra\nalias usb:v*p*d*dc*dsc*dp*ic09isc*ip*in* hub\n",
        )
        .unwrap();
        assert_eq!(
            aliases,
            [
                Alias {
                    pattern: "fs_virtiofs".into(),
                    module: "virtiofs".into()
                },
                Alias {
                    pattern: "usb:v*p*d*dc*dsc*dp*ic09isc*ip*in*".into(),
                    module: "hub".into()
                },
            ]
        );
        assert_eq!(
            parse_alias("alias a\nalias\nsoftdep a pre: b\nalias ok ok\n").unwrap_err(),
            [
                (1, "expected \"alias PATTERN MODULE\"".to_string()),
                (2, "expected \"alias PATTERN MODULE\"".to_string()),
                (
                    3,
                    "unknown command \"softdep\" (expected \"alias\")".to_string()
                ),
            ]
        );
    }

    #[test]
    fn softdep_lines_parse_like_libkmod() {
        let softdeps = parse_softdep(
            "softdep nfsd pre: crypto-md5\nsoftdep cifs gcm\n\
             softdep x pre: a post: b pre: c\nsoftdep y-z post:\n",
        )
        .unwrap();
        let got: Vec<(&str, Vec<&str>, Vec<&str>)> = softdeps
            .iter()
            .map(|s| {
                (
                    s.module.as_str(),
                    s.pre.iter().map(String::as_str).collect(),
                    s.post.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("nfsd", vec!["crypto-md5"], vec![]),
                ("cifs", vec![], vec![]),
                ("x", vec!["a", "c"], vec!["b"]),
                ("y_z", vec![], vec![]),
            ]
        );
        let problems = parse_softdep("softdep\nsoftdep lonely\nsoftdep ok pre: a\n").unwrap_err();
        assert_eq!(problems.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn weakdep_lines_parse() {
        let weakdeps = parse_weakdep("weakdep drm-x a b\n").unwrap();
        assert_eq!(weakdeps[0].module, "drm_x");
        assert_eq!(weakdeps[0].deps, ["a", "b"]);
        assert_eq!(parse_weakdep("weakdep a\n").unwrap_err()[0].0, 1);
    }

    #[test]
    fn builtin_modinfo_skips_malformed_strings() {
        let info = parse_builtin_modinfo(
            b"\0\0noequals\0.alias=x\0nodot=1\0\xff.alias=y\0a-b.alias=q-r\0a-b.file=x\0",
        );
        assert_eq!(info.names, ["a_b"]);
        assert_eq!(info.aliases, ["q_r"]);
        assert_eq!(parse_builtin_modinfo(b""), BuiltinModinfo::default());
    }

    #[test]
    fn alias_normalisation_keeps_ranges() {
        assert_eq!(normalize_alias("char-major-10-229"), "char_major_10_229");
        assert_eq!(
            normalize_alias("acpi*:PNP0C0[A-F]:*-x"),
            "acpi*:PNP0C0[A-F]:*_x"
        );
        assert_eq!(normalize_alias("a[-b"), "a[-b");
    }

    #[test]
    fn decompress_file_names_the_file() {
        let tmp = TempDir::new("decompress-file");
        let path = tmp.write("virtio.ko.xz", b"not xz");
        let err = decompress_file(&path, Compression::Xz).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot decompress {}: not valid xz data: no xz magic at the start (is the \
                 file damaged? reinstall the package that owns it)",
                path.display()
            )
        );
        let missing = tmp.path().join("missing.ko.gz");
        let err = decompress_file(&missing, Compression::Gzip).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read {}: No such file or directory",
                missing.display()
            )
        );
    }

    #[test]
    fn parsers_never_panic_on_junk() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let alphabet = b"alias softdep weakdep pre: post: \n\t#*?[]!^-:\\\0ab\xc3\xa9";
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..(seed % 64) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = usize::try_from(seed % alphabet.len() as u64).unwrap();
                bytes.push(alphabet[at]);
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_alias(&text);
            let _ = parse_softdep(&text);
            let _ = parse_weakdep(&text);
            let _ = parse_builtin_modinfo(&bytes);
            let middle = text.char_indices().nth(text.chars().count() / 2);
            let (pattern, subject) = text.split_at(middle.map_or(0, |(at, _)| at));
            let _ = fnmatch(pattern, subject);
            let _ = normalize_alias(&text);
        }
    }
}
