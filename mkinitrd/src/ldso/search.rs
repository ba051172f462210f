//! Where ld.so looks for a library: `DT_RPATH`, `DT_RUNPATH`, ld.so.conf
//! and the default directories, in `_dl_map_object`'s order, with
//! `$ORIGIN`, `$LIB` and `$PLATFORM` expanded as glibc does on Debian.

use std::path::PathBuf;

use super::*;

/// What `$LIB` and `$PLATFORM` expand to for a program.
#[derive(Clone, Copy, Debug)]
pub(super) struct DstValues {
    /// `$LIB`.
    pub(super) lib: &'static str,
    /// `$PLATFORM`, the kernel's `AT_PLATFORM`; `None` when unknown, and
    /// ld.so then drops the search path entry.
    pub(super) platform: Option<&'static str>,
}

/// What ld.so expands `$LIB` and `$PLATFORM` to for programs of a class and
/// machine.
///
/// glibc sets `$LIB` to the last component of its `slibdir`, or to the
/// multiarch path when built for it as Debian's is: on Debian 12 x86-64,
/// `LD_DEBUG=libs` on a program with `RPATH=/x/$LIB:/y/$PLATFORM` shows it
/// searching `/x/lib/x86_64-linux-gnu` and `/y/x86_64`. We follow Debian
/// (the supported host) for x86-64, i386 and arm64; other machines get
/// `lib64`/`lib` and no `$PLATFORM`.
pub(super) fn dst_values(class: Class, machine: u16) -> DstValues {
    match (class, machine) {
        (Class::Elf64, EM_X86_64) => DstValues {
            lib: "lib/x86_64-linux-gnu",
            platform: Some("x86_64"),
        },
        (Class::Elf32, EM_386) => DstValues {
            lib: "lib/i386-linux-gnu",
            platform: Some("i686"),
        },
        (Class::Elf64, EM_AARCH64) => DstValues {
            lib: "lib/aarch64-linux-gnu",
            platform: Some("aarch64"),
        },
        (Class::Elf64, _) => DstValues {
            lib: "lib64",
            platform: None,
        },
        (Class::Elf32, _) => DstValues {
            lib: "lib",
            platform: None,
        },
    }
}

/// ld.so's default directories for programs of a class and machine.
///
/// Debian 12's x86-64 ld.so (`ld.so --help`) searches
/// `/lib/x86_64-linux-gnu`, `/usr/lib/x86_64-linux-gnu`, `/lib`, `/usr/lib`;
/// Fedora's searches `/lib64`, `/usr/lib64`. We search the union, Debian's
/// multiarch directories first, so a host of either kind works; the class
/// check keeps a 32-bit `/lib` library out of a 64-bit program.
pub fn default_dirs(class: Class, machine: u16) -> &'static [&'static str] {
    match (class, machine) {
        (Class::Elf64, EM_X86_64) => &[
            "/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/lib64",
            "/usr/lib64",
            "/lib",
            "/usr/lib",
        ],
        (Class::Elf32, EM_386) => &[
            "/lib/i386-linux-gnu",
            "/usr/lib/i386-linux-gnu",
            "/lib32",
            "/usr/lib32",
            "/lib",
            "/usr/lib",
        ],
        (Class::Elf64, EM_AARCH64) => &[
            "/lib/aarch64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/lib64",
            "/usr/lib64",
            "/lib",
            "/usr/lib",
        ],
        (Class::Elf64, _) => &["/lib64", "/usr/lib64", "/lib", "/usr/lib"],
        (Class::Elf32, _) => &["/lib", "/usr/lib"],
    }
}

impl Resolver {
    /// Finds `name`, needed by object `loader` of `process`, whose program's
    /// headers are `program`.
    pub(super) fn find_library(
        &mut self,
        process: &Process,
        loader: usize,
        name: &str,
        program: &Dynamic,
    ) -> Result<Found, Error> {
        // Each candidate: (path, where its directory came from). `tried`
        // is what the error lists: the directories, or the one path.
        let (candidates, tried): (Vec<(String, DirSource)>, Vec<String>) = if name.contains('/') {
            // A path is opened as it is after expansion, without a search
            // (a relative one from the root: see `absolute`).
            let dst = dst_values(program.header.class, program.header.e_machine);
            let origin = &process.objects[loader].origin;
            let path = expand_dsts(name, origin, dst).map(|path| absolute(&path));
            let candidates = path.iter().map(|p| (p.clone(), DirSource::Builtin));
            (
                candidates.collect(),
                vec![path.unwrap_or_else(|| name.to_owned())],
            )
        } else {
            let dirs = self.search_dirs(process, loader, program);
            let candidates = dirs
                .iter()
                .map(|(dir, source)| (format!("{dir}/{name}"), *source));
            (
                candidates.collect(),
                dirs.into_iter().map(|(dir, _)| dir).collect(),
            )
        };
        for (path, source) in candidates {
            let walk = match self.walk(&path) {
                Ok(walk) if walk.meta.is_file() => walk,
                Ok(_) => continue,
                // ld.so moves on to the next directory when a file or
                // directory is missing; anything else (a loop, EACCES) is
                // worth stopping for.
                Err(e) if is_absent(&e) => continue,
                Err(source) => {
                    return Err(Error::ResolvePath {
                        path: PathBuf::from(path),
                        source,
                    });
                }
            };
            if let Some(dynamic) = self.same_abi(&walk, &program.header)? {
                return Ok(Found {
                    path,
                    walk,
                    via_conf: source == DirSource::Conf,
                    dynamic,
                });
            }
        }
        Err(Error::FindLibrary {
            name: name.to_owned(),
            needed_by: PathBuf::from(&process.objects[loader].path),
            tried: tried.into_iter().map(PathBuf::from).collect(),
        })
    }

    /// The directories searched for a name without `/` needed by object
    /// `loader`, in ld.so's order, each once.
    pub(super) fn search_dirs(
        &self,
        process: &Process,
        loader: usize,
        program: &Dynamic,
    ) -> Vec<(String, DirSource)> {
        let header = &program.header;
        let dst = dst_values(header.class, header.e_machine);
        let needing = &process.objects[loader];
        let mut dirs = Vec::new();
        // DT_RPATH up the chain of loaders, unless the needing object has
        // DT_RUNPATH; an object with both has no DT_RPATH for glibc.
        if needing.dynamic.runpath.is_none() {
            let mut at = Some(loader);
            while let Some(index) = at {
                let object = &process.objects[index];
                if let (Some(rpath), None) = (&object.dynamic.rpath, &object.dynamic.runpath) {
                    dirs.extend(expand_search_path(rpath, &object.origin, dst));
                }
                at = object.loader;
            }
        }
        if let Some(runpath) = &needing.dynamic.runpath {
            dirs.extend(expand_search_path(runpath, &needing.origin, dst));
        }
        let mut dirs: Vec<(String, DirSource)> = dirs
            .into_iter()
            .map(|dir| (dir, DirSource::Builtin))
            .collect();
        if !needing.dynamic.nodeflib() {
            let defaults = default_dirs(header.class, header.e_machine);
            for dir in &self.conf_dirs {
                let source = if defaults.contains(&dir.as_str()) {
                    DirSource::Builtin
                } else {
                    DirSource::Conf
                };
                dirs.push((dir.clone(), source));
            }
            dirs.extend(defaults.iter().map(|&d| (d.to_owned(), DirSource::Builtin)));
        }
        let mut seen = HashSet::new();
        dirs.retain(|(dir, _)| seen.insert(dir.clone()));
        dirs
    }
}

/// The absolute directories of a colon-separated `DT_RPATH` or
/// `DT_RUNPATH`, tokens expanded for an object whose `$ORIGIN` is `origin`.
/// As in glibc's `fillin_rpath`, an entry with a token that cannot be
/// expanded is dropped; entries that stay relative are dropped too (see the
/// module doc), and trailing slashes are removed.
pub(super) fn expand_search_path(list: &str, origin: &str, dst: DstValues) -> Vec<String> {
    list.split(':')
        .filter_map(|entry| expand_dsts(entry, origin, dst))
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| match dir.trim_end_matches('/') {
            "" => "/".to_owned(),
            trimmed => trimmed.to_owned(),
        })
        .collect()
}

/// `s` with `$ORIGIN`, `$LIB` and `$PLATFORM` (or `${...}`) replaced, as
/// glibc's `_dl_dst_substitute`: an unbraced name must not run on into
/// letters, digits or `_`, and any other `$` stays as it is. `None` when a
/// token has no value here.
pub(super) fn expand_dsts(s: &str, origin: &str, dst: DstValues) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let token = [
            ("ORIGIN", Some(origin)),
            ("LIB", Some(dst.lib)),
            ("PLATFORM", dst.platform),
        ]
        .into_iter()
        .find_map(|(name, value)| dst_len(after, name).map(|len| (len, value)));
        match token {
            Some((len, value)) => {
                out.push_str(value?);
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// How many bytes of `s` (what follows a `$`) are the token `name`, braced
/// or not; glibc's `is_dst`.
pub(super) fn dst_len(s: &str, name: &str) -> Option<usize> {
    if let Some(rest) = s.strip_prefix('{') {
        return rest
            .strip_prefix(name)?
            .starts_with('}')
            .then_some(name.len() + 2);
    }
    let rest = s.strip_prefix(name)?;
    let runs_on = rest
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    (!runs_on).then_some(name.len())
}
