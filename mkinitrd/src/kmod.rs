//! A kernel module tree (`/lib/modules/VER`): which modules exist, what each
//! depends on, which are built in, and the order to load a set of them in.
//!
//! [`ModuleTree`] holds `modules.dep` and `modules.builtin` as parsed data;
//! [`ModuleTree::resolve`] turns requested names into the list of module
//! files to pack, dependencies first, the way modprobe orders them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// depmod's list of modules and their dependencies (depmod(8)).
pub const MODULES_DEP: &str = "modules.dep";
/// The modules built into the kernel image, one path per line.
pub const MODULES_BUILTIN: &str = "modules.builtin";

/// How a module file is compressed, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `.ko.gz`
    Gzip,
    /// `.ko.xz`
    Xz,
    /// `.ko.zst`
    Zstd,
}

/// Module file suffixes and what they say about compression. `.ko` last:
/// every other suffix is tried first.
const MODULE_SUFFIXES: [(&str, Option<Compression>); 4] = [
    (".ko.gz", Some(Compression::Gzip)),
    (".ko.xz", Some(Compression::Xz)),
    (".ko.zst", Some(Compression::Zstd)),
    (".ko", None),
];

/// One module file of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// The module name: the file name without its suffix, `-` as `_`
    /// (`virtio_pci`).
    pub name: String,
    /// The file name without its suffix, as it is (`amd-uncore`).
    pub stem: String,
    /// The file as `modules.dep` names it, relative to the module tree.
    pub rel_path: PathBuf,
    /// The file on the host: the module tree joined with `rel_path`.
    pub path: PathBuf,
    /// Compression, from the suffix.
    pub compression: Option<Compression>,
}

impl Module {
    /// The module at `rel` (a `modules.dep` path) in tree `moddir`, or
    /// `None` when `rel` does not name a module file.
    pub fn from_dep_path(moddir: &Path, rel: &str) -> Option<Module> {
        let file_name = rel.rsplit('/').next()?;
        let (stem, compression) = MODULE_SUFFIXES.iter().find_map(|(suffix, compression)| {
            file_name
                .strip_suffix(suffix)
                .filter(|stem| !stem.is_empty())
                .map(|stem| (stem, *compression))
        })?;
        Some(Module {
            name: normalize_name(stem),
            stem: stem.to_string(),
            rel_path: PathBuf::from(rel),
            // Old depmods wrote absolute paths; join keeps those as they are.
            path: moddir.join(rel),
            compression,
        })
    }
}

/// The module name for `name`: `-` and `_` are the same to the kernel and
/// to modprobe, so names are compared with `_` only.
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// A module and its dependencies, as indices into [`ModuleTree::nodes`].
#[derive(Debug)]
struct Node {
    module: Module,
    /// In `modules.dep` order; loaded from the last one back.
    deps: Vec<usize>,
}

/// The parsed `modules.dep` and `modules.builtin` of one kernel.
///
/// # Example
/// ```
/// use std::path::Path;
/// use mkinitrd::kmod::ModuleTree;
/// let tree = ModuleTree::parse(
///     Path::new("/lib/modules/6.1.0"),
///     "kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko\nkernel/fs/fuse/fuse.ko:\n",
///     "kernel/fs/ext4/ext4.ko\n",
/// )?;
/// let names: Vec<String> = tree.resolve(&["virtiofs", "ext4"])?.into_iter().map(|m| m.name).collect();
/// assert_eq!(names, ["fuse", "virtiofs"]);
/// # Ok::<(), mkinitrd::Error>(())
/// ```
#[derive(Debug)]
pub struct ModuleTree {
    moddir: PathBuf,
    nodes: Vec<Node>,
    /// Module name to node, for the modules that have a line of their own.
    by_name: HashMap<String, usize>,
    /// Names of the built-in modules.
    builtin: HashSet<String>,
}

/// Where a module is in the depth-first walk of [`ModuleTree::resolve`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    /// Its dependencies are being walked: meeting it again is a cycle.
    Active,
    /// It is in the load order already.
    Done,
}

impl ModuleTree {
    /// Reads `moddir/modules.dep` and `moddir/modules.builtin` (a missing
    /// `modules.builtin` means nothing is built in).
    ///
    /// Errors: [`Error::ReadModulesDep`], [`Error::ReadModulesBuiltin`],
    /// [`Error::ParseModulesDep`] listing every bad line.
    pub fn open(moddir: &Path) -> Result<ModuleTree, Error> {
        let dep_path = moddir.join(MODULES_DEP);
        let modules_dep =
            fs::read_to_string(&dep_path).map_err(|source| Error::ReadModulesDep {
                path: dep_path,
                source,
            })?;
        let builtin_path = moddir.join(MODULES_BUILTIN);
        let modules_builtin = match fs::read_to_string(&builtin_path) {
            Ok(text) => text,
            // Kernels without built-in modules (or old depmods) have none.
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(Error::ReadModulesBuiltin {
                    path: builtin_path,
                    source,
                });
            }
        };
        ModuleTree::parse(moddir, &modules_dep, &modules_builtin)
    }

    /// Builds the tree from the text of `modules.dep` and `modules.builtin`.
    pub fn parse(
        moddir: &Path,
        modules_dep: &str,
        modules_builtin: &str,
    ) -> Result<ModuleTree, Error> {
        let mut tree = ModuleTree {
            moddir: moddir.to_path_buf(),
            nodes: Vec::new(),
            by_name: HashMap::new(),
            builtin: HashSet::new(),
        };
        tree.parse_modules_dep(modules_dep)?;
        tree.builtin = modules_builtin
            .lines()
            .filter_map(|line| Module::from_dep_path(moddir, line.trim()))
            .map(|module| module.name)
            .collect();
        Ok(tree)
    }

    /// Parses `path: dep dep ...` lines, reporting every bad line at once.
    fn parse_modules_dep(&mut self, text: &str) -> Result<(), Error> {
        let mut by_path: HashMap<&str, usize> = HashMap::new();
        let mut lines = Vec::new();
        let mut problems = Vec::new();
        for (number, line) in (1..).zip(text.lines()) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match self.parse_dep_line(line) {
                Ok((module, deps)) => {
                    let index = self.nodes.len();
                    // depmod writes one line per file; a repeated name keeps
                    // the first line, as modprobe's lookup does.
                    self.by_name.entry(module.name.clone()).or_insert(index);
                    by_path.entry(module_path(line)).or_insert(index);
                    self.nodes.push(Node {
                        module,
                        deps: Vec::new(),
                    });
                    lines.push((index, deps));
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
        for (index, deps) in lines {
            for dep in deps {
                let dep_index = match by_path.get(dep.rel_path.to_str().unwrap_or_default()) {
                    Some(&i) => i,
                    // A dependency without a line of its own is loaded from
                    // its path with no dependencies, as modprobe would.
                    None => {
                        let i = self.nodes.len();
                        let node = Node {
                            module: dep,
                            deps: Vec::new(),
                        };
                        self.nodes.push(node);
                        i
                    }
                };
                self.nodes[index].deps.push(dep_index);
            }
        }
        Ok(())
    }

    /// Parses one non-empty line into the module and its dependencies.
    fn parse_dep_line(&self, line: &str) -> Result<(Module, Vec<Module>), String> {
        let Some((path, deps)) = line.split_once(':') else {
            return Err("no ':' after the module path".to_string());
        };
        let parse = |path: &str| {
            Module::from_dep_path(&self.moddir, path).ok_or_else(|| {
                format!("{path} is not a kernel module file (.ko, .ko.gz, .ko.xz or .ko.zst)")
            })
        };
        let module = parse(path.trim())?;
        let deps = deps
            .split_whitespace()
            .map(parse)
            .collect::<Result<_, _>>()?;
        Ok((module, deps))
    }

    /// The module tree directory.
    pub fn moddir(&self) -> &Path {
        &self.moddir
    }

    /// The module called `name` (`-` or `_`), if it has a `modules.dep` line.
    pub fn get(&self, name: &str) -> Option<&Module> {
        let index = *self.by_name.get(&normalize_name(name))?;
        Some(&self.nodes[index].module)
    }

    /// True when `name` (`-` or `_`) is built into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize_name(name))
    }

    /// The modules to pack for `names`, each once, dependencies first.
    ///
    /// modprobe's order: for each name in turn, its dependencies from the
    /// last on its `modules.dep` line back to the first (depmod writes them
    /// so), each one's own dependencies before it, then the module. Built-in
    /// modules are present already and are skipped.
    ///
    /// Errors: [`Error::MissingModules`] naming every name that is neither in
    /// `modules.dep` nor built in; [`Error::DependencyCycle`].
    pub fn resolve(&self, names: &[&str]) -> Result<Vec<Module>, Error> {
        let mut roots = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for &name in names {
            let normal = normalize_name(name);
            match self.by_name.get(&normal) {
                Some(&index) => roots.push(index),
                None if self.builtin.contains(&normal) => {}
                None if missing.iter().any(|m| normalize_name(m) == normal) => {}
                None => missing.push(name.to_string()),
            }
        }
        if !missing.is_empty() {
            return Err(Error::MissingModules {
                moddir: self.moddir.clone(),
                names: missing,
            });
        }
        let mut marks = vec![Mark::New; self.nodes.len()];
        let mut order = Vec::new();
        for root in roots {
            self.visit(root, &mut marks, &mut order)?;
        }
        Ok(order
            .into_iter()
            .map(|index| self.nodes[index].module.clone())
            .collect())
    }

    /// Appends `root` and its dependencies not yet in `order`, dependencies
    /// first. Iterative, so a hostile `modules.dep` cannot overflow the stack.
    fn visit(&self, root: usize, marks: &mut [Mark], order: &mut Vec<usize>) -> Result<(), Error> {
        if marks[root] != Mark::New {
            return Ok(());
        }
        marks[root] = Mark::Active;
        // (module, how many of its dependencies were walked, from the end)
        let mut stack = vec![(root, 0)];
        while let Some((index, walked)) = stack.last_mut() {
            let deps = &self.nodes[*index].deps;
            if *walked == deps.len() {
                marks[*index] = Mark::Done;
                order.push(*index);
                stack.pop();
                continue;
            }
            let dep = deps[deps.len() - 1 - *walked];
            *walked += 1;
            match marks[dep] {
                Mark::Done => {}
                Mark::Active => return Err(self.cycle_error(&stack, dep)),
                Mark::New => {
                    marks[dep] = Mark::Active;
                    stack.push((dep, 0));
                }
            }
        }
        Ok(())
    }

    /// The error for a walk that met `dep` again while walking its
    /// dependencies.
    fn cycle_error(&self, stack: &[(usize, usize)], dep: usize) -> Error {
        let start = stack.iter().position(|&(i, _)| i == dep).unwrap_or(0);
        let chain = stack[start..]
            .iter()
            .map(|&(i, _)| i)
            .chain([dep])
            .map(|i| self.nodes[i].module.name.clone())
            .collect();
        Error::DependencyCycle {
            path: self.moddir.join(MODULES_DEP),
            chain,
        }
    }
}

/// The module path of a well-formed `modules.dep` line.
fn module_path(line: &str) -> &str {
    line.split_once(':').map_or(line, |(path, _)| path.trim())
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

    const VIRTIO_ORDER: [&str; 7] = [
        "virtio_ring",
        "virtio",
        "virtio_pci_modern_dev",
        "virtio_pci_legacy_dev",
        "virtio_pci",
        "fuse",
        "virtiofs",
    ];

    #[test]
    fn modprobe_order_for_a_virtiofs_root() {
        let tree = tree(VIRTIO_DEP, "");
        assert_eq!(names(&tree, &["virtio_pci", "virtiofs"]), VIRTIO_ORDER);
    }

    #[test]
    fn debian_cloud_kernel_gives_the_modprobe_order() {
        let moddir = Path::new("/lib/modules/6.1.0-56-cloud-amd64");
        if !moddir.join(MODULES_DEP).exists() {
            println!("note: skipped, {} is not installed", moddir.display());
            return;
        }
        let tree = ModuleTree::open(moddir).unwrap();
        let modules = tree.resolve(crate::kernel::DEFAULT_MODULES).unwrap();
        let got: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(got, VIRTIO_ORDER);
        assert!(modules.iter().all(|m| m.path.is_file()));
        assert_eq!(
            modules[4].rel_path,
            Path::new("kernel/drivers/virtio/virtio_pci.ko")
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
        let tree = tree(VIRTIO_DEP, "kernel/fs/ext4/ext4.ko\n");
        let err = tree
            .resolve(&["nope", "fuse", "ext4", "zip-zap", "zip_zap", "nope"])
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
    fn open_reads_the_files_and_tolerates_no_builtin() {
        let tmp = TempDir::new("kmod-open");
        tmp.write("modules.dep", VIRTIO_DEP.as_bytes());
        let tree = ModuleTree::open(tmp.path()).unwrap();
        assert_eq!(
            tree.resolve(&["fuse"]).unwrap()[0].path,
            tmp.path().join("kernel/fs/fuse/fuse.ko")
        );

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
}
