//! `/etc/ld.so.conf` and the files its `include` lines glob, read as
//! ldconfig reads them, for the directories ld.so's cache is built from.

use std::fs;

use super::*;

impl Resolver {
    /// Reads the `ld.so.conf` file at absolute `path` as ldconfig's
    /// `parse_conf` does, appending its directories to `dirs`: `#` starts a
    /// comment, `include PATTERN...` reads the files the glob(7) patterns
    /// match (a relative pattern is relative to this file's directory),
    /// `hwcap` lines are obsolete and skipped, any other line is a directory
    /// (an `=TYPE` suffix and trailing slashes dropped). Files already read,
    /// by resolved path, are skipped, which also ends include loops.
    pub(super) fn read_conf(
        &mut self,
        path: &str,
        dirs: &mut Vec<String>,
        seen: &mut HashSet<String>,
    ) -> Result<(), Error> {
        let walk = match self.walk(path) {
            Ok(walk) => walk,
            // ldconfig ignores a configuration file it cannot open.
            Err(e) if is_absent(&e) => return Ok(()),
            Err(source) => {
                return Err(Error::ResolvePath {
                    path: PathBuf::from(path),
                    source,
                });
            }
        };
        if !walk.meta.is_file() || !seen.insert(walk.real.clone()) {
            return Ok(());
        }
        let host = self.host(&walk.real);
        let text = fs::read(&host).map_err(|source| Error::ReadFile {
            path: host.clone(),
            source,
        })?;
        let base = parent(path);
        for line in String::from_utf8_lossy(&text).lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if let Some(patterns) = keyword_args(line, "include") {
                for pattern in patterns.split([' ', '\t']).filter(|p| !p.is_empty()) {
                    let pattern = if pattern.starts_with('/') {
                        pattern.to_owned()
                    } else {
                        format!("{}/{pattern}", base.trim_end_matches('/'))
                    };
                    for file in self.glob(&pattern) {
                        self.read_conf(&file, dirs, seen)?;
                    }
                }
            } else if keyword_args(line, "hwcap").is_none() {
                let dir = line.split('=').next().unwrap_or_default().trim_end();
                let dir = match dir.trim_end_matches('/') {
                    "" if dir.starts_with('/') => "/",
                    trimmed => trimmed,
                };
                // ldconfig would take a relative line from its working
                // directory; ld.so has no such notion.
                if dir.starts_with('/') && !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_owned());
                }
            }
        }
        Ok(())
    }

    /// The absolute paths under the sysroot matching glob(7) `pattern`,
    /// sorted. As glob(3) without `GLOB_ERR`, unreadable directories match
    /// nothing, and each component is matched by
    /// [`crate::glob::fnmatch_name`] (so a leading dot only by a dot).
    pub(super) fn glob(&mut self, pattern: &str) -> Vec<String> {
        let mut matches = vec![String::new()];
        for part in pattern.split('/').filter(|p| !p.is_empty()) {
            // As glob(3): a part with no pattern byte is looked up, not
            // matched; one with a `\` is matched, so the `\` quotes.
            if is_literal(part) {
                for path in &mut matches {
                    path.push('/');
                    path.push_str(part);
                }
                continue;
            }
            let mut next = Vec::new();
            for dir in &matches {
                let Ok(walk) = self.walk(if dir.is_empty() { "/" } else { dir }) else {
                    continue;
                };
                let Ok(entries) = fs::read_dir(self.host(&walk.real)) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    if fnmatch_name(part, &name) {
                        next.push(format!("{dir}/{name}"));
                    }
                }
            }
            matches = next;
        }
        matches.retain(|path| !path.is_empty());
        matches.sort();
        matches.dedup();
        matches
    }
}

/// The rest of `line` after `keyword` and a blank, as ldconfig matches
/// `include` (`strncmp` then `isblank`).
pub(super) fn keyword_args<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(keyword)?;
    rest.starts_with([' ', '\t']).then_some(rest)
}
