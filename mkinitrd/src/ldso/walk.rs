//! Paths under the sysroot, resolved as the kernel resolves them: one
//! component at a time, symlinks followed (absolute ones re-rooted at the
//! sysroot) and recorded, with what `lstat(2)` and `readlink(2)` said of
//! each path cached in the [`Resolver`].

use std::fs;
use std::io;
use std::path::PathBuf;

use super::*;

/// What [`Resolver::walk`] learned of one path under the sysroot.
#[derive(Clone, Debug)]
pub(super) enum Node {
    /// Not a symlink: what `lstat(2)` said (for the sysroot itself,
    /// `stat(2)`, which follows a symlink).
    Meta(fs::Metadata),
    /// A symlink, and its target as stored.
    Link(String),
    /// A symlink whose target cannot be read.
    BadLink(Failure),
    /// `lstat(2)` failed.
    Failed(Failure),
}

/// A failed `lstat(2)` or `readlink(2)`, kept to be given again.
#[derive(Clone, Copy, Debug)]
pub(super) enum Failure {
    /// The errno.
    Os(i32),
    /// A symlink target that is not UTF-8.
    NotUtf8,
    /// An error without an errno (none is expected from these calls).
    Kind(io::ErrorKind),
}

impl Failure {
    pub(super) fn of(e: &io::Error) -> Failure {
        e.raw_os_error()
            .map_or(Failure::Kind(e.kind()), Failure::Os)
    }

    pub(super) fn error(self) -> io::Error {
        match self {
            Failure::Os(errno) => io::Error::from_raw_os_error(errno),
            Failure::NotUtf8 => {
                io::Error::new(io::ErrorKind::InvalidData, "symlink target is not UTF-8")
            }
            Failure::Kind(kind) => io::Error::from(kind),
        }
    }
}

/// Where a path led: the real path at the end and the symlinks on the way.
#[derive(Clone, Debug)]
pub(super) struct Walk {
    /// The resolved path relative to the sysroot, no leading slash.
    pub(super) real: String,
    /// `(link path, target as stored)` for each symlink met, in order.
    pub(super) links: Vec<(String, String)>,
    /// What is at `real`.
    pub(super) meta: fs::Metadata,
}

impl Resolver {
    /// The host path of `rel`, a path relative to the sysroot.
    pub(super) fn host(&self, rel: &str) -> PathBuf {
        self.sysroot.join(rel)
    }

    /// Resolves absolute `path` under the sysroot one component at a time,
    /// as the kernel's path walk does, recording each symlink met: a
    /// relative target continues from the link's directory, an absolute one
    /// from the sysroot, and `..` never leaves the sysroot.
    ///
    /// # Errors
    ///
    /// The `io::Error` of the failing `lstat` or `readlink` (`NotFound` for
    /// a missing component), `ENOTDIR` when a non-directory has a component
    /// after it, `ELOOP` after [`MAX_SYMLINKS`] symlinks, `InvalidData` for a
    /// symlink target that is not UTF-8.
    pub(super) fn walk(&mut self, path: &str) -> io::Result<Walk> {
        // The same path comes back for every program that needs the same
        // library in the same directories.
        if let Some(walked) = self.walks.get(path) {
            return walked.clone().map_err(Failure::error);
        }
        let walked = self.walk_path(path);
        self.walks.insert(path.to_owned(), walked.clone());
        walked.map_err(Failure::error)
    }

    /// [`Resolver::walk`], the first time `path` is asked for.
    pub(super) fn walk_path(&mut self, path: &str) -> Result<Walk, Failure> {
        let mut real: Vec<String> = Vec::new();
        // Components still to resolve, the next one last.
        let mut todo: Vec<String> = components_reversed(path);
        let mut links = Vec::new();
        let mut followed = 0;
        let mut meta = self.dir_meta("")?;
        while let Some(name) = todo.pop() {
            if !meta.is_dir() {
                return Err(Failure::Os(ENOTDIR));
            }
            if name == "." {
                continue;
            }
            if name == ".." {
                real.pop();
                meta = self.dir_meta(&real.join("/"))?;
                continue;
            }
            let candidate = join(&real, &name);
            let target = match self.node(&candidate) {
                Node::Meta(this) => {
                    meta = this.clone();
                    real.push(name);
                    continue;
                }
                Node::Failed(failure) => return Err(*failure),
                Node::Link(target) => Ok(target.clone()),
                Node::BadLink(failure) => Err(*failure),
            };
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(Failure::Os(Errno::LOOP.raw_os_error()));
            }
            let target = target?;
            if target.starts_with('/') {
                real.clear();
                meta = self.dir_meta("")?;
            }
            todo.extend(components_reversed(&target));
            links.push((candidate, target));
        }
        Ok(Walk {
            real: real.join("/"),
            links,
            meta,
        })
    }

    /// What is at `rel`, a path relative to the sysroot (`""`: the sysroot
    /// itself), asking `lstat(2)` and, for a symlink, `readlink(2)` the
    /// first time only.
    pub(super) fn node(&mut self, rel: &str) -> &Node {
        if !self.nodes.contains_key(rel) {
            let node = self.stat_node(rel);
            self.nodes.insert(rel.to_owned(), node);
        }
        &self.nodes[rel]
    }

    /// Asks the kernel what is at `rel`, for [`Resolver::node`].
    pub(super) fn stat_node(&self, rel: &str) -> Node {
        let host = self.host(rel);
        // The sysroot may be a symlink to the tree; nothing under it is
        // followed here.
        let meta = if rel.is_empty() {
            fs::metadata(&host)
        } else {
            fs::symlink_metadata(&host)
        };
        match meta {
            Err(e) => Node::Failed(Failure::of(&e)),
            Ok(meta) if meta.file_type().is_symlink() => match fs::read_link(&host) {
                Ok(target) => match target.into_os_string().into_string() {
                    Ok(target) => Node::Link(target),
                    Err(_) => Node::BadLink(Failure::NotUtf8),
                },
                Err(e) => Node::BadLink(Failure::of(&e)),
            },
            Ok(meta) => Node::Meta(meta),
        }
    }

    /// What [`Resolver::node`] says of `rel`, a directory the walk has
    /// resolved already (or the sysroot), which is never a symlink.
    pub(super) fn dir_meta(&mut self, rel: &str) -> Result<fs::Metadata, Failure> {
        match self.node(rel) {
            Node::Meta(meta) => Ok(meta.clone()),
            Node::Failed(failure) | Node::BadLink(failure) => Err(*failure),
            Node::Link(_) => Err(Failure::Os(ENOTDIR)),
        }
    }
}
