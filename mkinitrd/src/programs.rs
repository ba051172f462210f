//! Programs (`--bin`, `bin`, `try-bin`) into an image, each when its
//! directive comes, with its interpreter and libraries at their host paths
//! ([`crate::ldso::Resolver`]), so that a later directive replaces what an
//! earlier program brought and the reverse (issue 15).
//!
//! The host's directory links (`bin -> usr/bin` on a usr-merged host) yield
//! to a directory the user planned at the same path: instead of the link,
//! each entry the program put in the link's target gets a link of its name
//! in the user's directory, unless the user put something there, so every
//! path through the host's link still resolves in the image.

use std::collections::HashSet;
use std::path::Path;

use crate::error::Error;
use crate::image::{Entry, Image};
use crate::ldso::{HostItem, Resolver};

/// The programs of one image: one resolver for all (libraries are looked
/// up once), and the image paths it has handed out already.
#[derive(Default)]
pub struct Programs {
    resolver: Option<Resolver>,
    added: HashSet<String>,
}

impl Programs {
    /// Adds program `name` (looked up in the search path, or a path) and
    /// what it needs that no earlier program brought. With `optional`, a
    /// program that is not there is skipped.
    ///
    /// # Errors
    /// Those of [`Resolver::add_program`] and of the [`Image`] methods.
    pub fn add(&mut self, image: &mut Image, name: &str, optional: bool) -> Result<(), Error> {
        let resolver = match &mut self.resolver {
            Some(resolver) => resolver,
            None => self.resolver.insert(Resolver::new(Path::new("/"))?),
        };
        match resolver.add_program(&absolute(name)) {
            Err(Error::FindProgram { .. }) if optional => return Ok(()),
            other => other?,
        }
        let new: Vec<HostItem> = resolver
            .items()
            .into_iter()
            .filter(|item| self.added.insert(item.path().to_string()))
            .collect();
        let yielded: Vec<(String, String)> = new
            .iter()
            .filter_map(|item| match item {
                HostItem::Symlink { path, target }
                    if matches!(image.entry(path), Some(Entry::Dir { .. })) =>
                {
                    Some((path.clone(), link_target(path, target)?))
                }
                _ => None,
            })
            .collect();
        for item in &new {
            match item {
                HostItem::File { path, source } => image.add_file(path, source, None)?,
                HostItem::Symlink { path, .. } if yielded.iter().any(|(dir, _)| dir == path) => {}
                HostItem::Symlink { path, target } => image.add_symlink(path, target)?,
            }
        }
        for (dir, target) in &yielded {
            for item in &new {
                let Some(name) = item
                    .path()
                    .strip_prefix(target.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    .filter(|name| !name.contains('/'))
                else {
                    continue;
                };
                let link = format!("{dir}/{name}");
                if image.entry(&link).is_none() {
                    image.add_symlink(&link, &format!("/{}", item.path()))?;
                }
            }
        }
        Ok(())
    }
}

/// The image path a link at `path` to `target` names, for plain targets
/// (`usr/bin`, `/usr/bin`); `None` for targets going up with `..`.
fn link_target(path: &str, target: &str) -> Option<String> {
    if target.split('/').any(|part| part == "..") {
        return None;
    }
    let joined = match (target.strip_prefix('/'), path.rsplit_once('/')) {
        (Some(absolute), _) => absolute.to_string(),
        (None, Some((dir, _))) => format!("{dir}/{target}"),
        (None, None) => target.to_string(),
    };
    let parts: Vec<&str> = joined
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A program given as a relative path (`./tool`), made absolute: the
/// resolver reads paths from the root.
fn absolute(program: &str) -> String {
    if program.contains('/')
        && !program.starts_with('/')
        && let Ok(path) = std::path::absolute(program)
    {
        return path.to_string_lossy().into_owned();
    }
    program.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_become_image_paths() {
        assert_eq!(link_target("bin", "usr/bin").as_deref(), Some("usr/bin"));
        assert_eq!(link_target("bin", "/usr/bin/").as_deref(), Some("usr/bin"));
        assert_eq!(
            link_target("usr/lib64", "./lib").as_deref(),
            Some("usr/lib")
        );
        assert_eq!(link_target("lib", "../x"), None);
        assert_eq!(link_target("x", "/"), None);
    }
}
