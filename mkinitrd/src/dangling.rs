//! Image symlinks that lead nowhere in the image: `--symlink /bin/sh:busybox`
//! beside a `--bin busybox` that landed in `usr/bin` (a usr-merged host,
//! and no `bin -> usr/bin` link planned) makes `/bin/sh` dangle, and the VM
//! then says it cannot execute `/bin/sh` (issue 15). [`dangling_symlinks`]
//! finds them in a plan, for the caller to warn about, naming the link, its
//! target and the first path missing. Targets inside the filesystems init
//! mounts at boot ([`RUNTIME_DIRS`]) are not checked: `/etc/mtab ->
//! /proc/self/mounts` is fine. No state is kept.

use std::fmt;

use crate::error::MAX_SYMLINKS;
use crate::image::{Entry, Image};
use crate::ldso::components_reversed;

/// Top-level directories whose content exists only once init has mounted
/// them (SPEC §3.1 step 2): a symlink into them is not checked.
pub const RUNTIME_DIRS: [&str; 5] = ["proc", "sys", "dev", "run", "tmp"];

/// A symlink of the image whose target is not in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dangling {
    /// The symlink's path in the image, without a leading `/`.
    pub path: String,
    /// Its target, as stored.
    pub target: String,
    /// The first path of the resolution that the image does not hold (or
    /// holds as a file where a directory is needed, or where symlinks loop).
    pub missing: String,
}

impl fmt::Display for Dangling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "symlink /{} -> {} points at nothing in the image (/{} is not in it)",
            self.path, self.target, self.missing
        )
    }
}

/// The symlinks of `image` that do not resolve to an entry of the image,
/// in path order. Each is resolved as the kernel would inside the image:
/// relative to its directory, `..` going up, symlinks on the way followed
/// up to [`MAX_SYMLINKS`].
///
/// # Example
/// ```
/// use mkinitrd::dangling::dangling_symlinks;
/// use mkinitrd::image::Image;
/// let mut image = Image::new(0);
/// image.add_symlink("/bin/sh", "busybox")?;
/// let dangling = dangling_symlinks(&image);
/// assert_eq!(
///     dangling[0].to_string(),
///     "symlink /bin/sh -> busybox points at nothing in the image (/bin/busybox is not in it)"
/// );
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn dangling_symlinks(image: &Image) -> Vec<Dangling> {
    image
        .entries()
        .filter_map(|(path, entry)| match entry {
            Entry::Symlink { target } => {
                let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
                let start = if target.starts_with('/') {
                    target.clone()
                } else {
                    format!("{dir}/{target}")
                };
                let missing = missing_in(image, &start)?;
                Some(Dangling {
                    path: path.to_string(),
                    target: target.clone(),
                    missing,
                })
            }
            _ => None,
        })
        .collect()
}

/// The first path on the way to `path` (from the image root) that the
/// image does not hold, or `None` when it resolves or leads into
/// [`RUNTIME_DIRS`].
fn missing_in(image: &Image, path: &str) -> Option<String> {
    // Components still to walk, the next one last.
    let mut todo = components_reversed(path);
    let mut at: Vec<String> = Vec::new();
    let mut followed = 0;
    while let Some(name) = todo.pop() {
        match name.as_str() {
            "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => at.push(name),
        }
        if at.len() == 1 && RUNTIME_DIRS.contains(&at[0].as_str()) {
            return None;
        }
        let here = at.join("/");
        match image.entry(&here) {
            None => return Some(here),
            Some(Entry::Symlink { target }) => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Some(here);
                }
                at.pop();
                if target.starts_with('/') {
                    at.clear();
                }
                todo.extend(components_reversed(target));
            }
            Some(Entry::Dir { .. }) => {}
            // A file or node where more components follow.
            Some(_) if !todo.is_empty() => return Some(here),
            Some(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(links: &[(&str, &str)], files: &[&str]) -> Image {
        let mut image = Image::new(0);
        for file in files {
            image.add_bytes(file, b"x".to_vec(), 0o755).unwrap();
        }
        for (path, target) in links {
            image.add_symlink(path, target).unwrap();
        }
        image
    }

    fn missing(image: &Image) -> Vec<(String, String)> {
        dangling_symlinks(image)
            .into_iter()
            .map(|d| (d.path, d.missing))
            .collect()
    }

    /// Issue 15: `--bin busybox --symlink /bin/sh:busybox` on a
    /// usr-merged host packed a /bin/sh that dangles, without a word.
    #[test]
    fn a_link_beside_a_program_in_usr_bin_dangles() {
        let packed = image(&[("bin/sh", "busybox")], &["usr/bin/busybox"]);
        assert_eq!(
            missing(&packed),
            [("bin/sh".to_string(), "bin/busybox".to_string())]
        );
        // With the host's bin -> usr/bin link it resolves.
        let merged = image(
            &[("bin", "usr/bin"), ("usr/bin/sh", "busybox")],
            &["usr/bin/busybox"],
        );
        assert!(missing(&merged).is_empty());
    }

    #[test]
    fn links_resolve_as_the_kernel_resolves_them() {
        let ok = image(
            &[
                ("lib", "usr/lib"),
                ("lib64/ld.so", "/lib/x86_64/ld.so"),
                ("usr/lib/x86_64/libc.so", "../x86_64/./libc.so.6"),
                ("etc/mtab", "/proc/self/mounts"),
                ("dev/stdin", "/proc/self/fd/0"),
                ("top", "/"),
            ],
            &["usr/lib/x86_64/ld.so", "usr/lib/x86_64/libc.so.6"],
        );
        assert!(missing(&ok).is_empty(), "{:?}", missing(&ok));
        let bad = image(
            &[
                ("a", "b"),
                ("b", "a"),
                ("through-a-file", "usr/bin/file/x"),
                ("up", "../../nothing"),
            ],
            &["usr/bin/file"],
        );
        assert_eq!(
            missing(&bad),
            [
                // A loop: where the 41st link was met.
                ("a".to_string(), "b".to_string()),
                ("b".to_string(), "a".to_string()),
                ("through-a-file".to_string(), "usr/bin/file".to_string()),
                ("up".to_string(), "nothing".to_string()),
            ]
        );
    }
}
