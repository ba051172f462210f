//! One module file of a tree ([`Module`]): its name from its path, what
//! its suffix says about compression, and the names and aliases as
//! modprobe compares them (`-` as `_`).

use std::path::{Path, PathBuf};

use super::*;

/// Module file suffixes and what they say about compression. `.ko` last:
/// every other suffix is tried first.
pub(super) const MODULE_SUFFIXES: [(&str, Option<Compression>); 4] = [
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
        let (stem, compression) = split_module_path(rel)?;
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

/// Reads the module file at `path` and unpacks it.
///
/// Errors: [`Error::ReadFile`], [`Error::DecompressModule`] naming the file.
pub fn decompress_file(path: &Path, compression: Compression) -> Result<Vec<u8>, Error> {
    let data = fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    decompress::decompress(compression, &data).map_err(|problem| Error::DecompressModule {
        path: path.to_path_buf(),
        problem,
    })
}

/// The file name of module path `rel` without its suffix, and the
/// compression the suffix says; `None` when it is not a module file.
pub(super) fn split_module_path(rel: &str) -> Option<(&str, Option<Compression>)> {
    let (without, compression) = strip_module_suffix(rel)?;
    let stem = without.rsplit_once('/').map_or(without, |(_, stem)| stem);
    Some((stem, compression))
}

/// `rel` without its module suffix, and the compression the suffix says;
/// `None` when it is not a module file (no suffix, or nothing before it in
/// the file name).
pub(super) fn strip_module_suffix(rel: &str) -> Option<(&str, Option<Compression>)> {
    MODULE_SUFFIXES.iter().find_map(|(suffix, compression)| {
        rel.strip_suffix(suffix)
            .filter(|without| !without.is_empty() && !without.ends_with('/'))
            .map(|without| (without, *compression))
    })
}

/// The module name for `name`: `-` and `_` are the same to the kernel and
/// to modprobe, so names are compared with `_` only.
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// An alias or alias pattern as modprobe compares it: `-` as `_`, except
/// inside `[...]` where `-` makes a range (libkmod's `alias_normalize`;
/// depmod normalises the patterns of `modules.alias.bin` the same way, so
/// `fs-virtiofs` and `fs_virtiofs` are one alias).
pub fn normalize_alias(alias: &str) -> String {
    if !alias.contains('-') {
        return alias.to_owned();
    }
    let mut out = String::with_capacity(alias.len());
    let mut in_brackets = false;
    for ch in alias.chars() {
        match ch {
            '[' if !in_brackets => in_brackets = true,
            ']' if in_brackets => in_brackets = false,
            _ => {}
        }
        out.push(if ch == '-' && !in_brackets { '_' } else { ch });
    }
    out
}
