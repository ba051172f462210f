//! Parsers of the tree's text indexes: `modules.alias`, `modules.softdep`,
//! `modules.weakdep`, `modules.builtin.modinfo` and one `modules.dep`
//! line. Pure functions over the files' contents that report every bad
//! line and never panic, for tests and fuzzers.

use super::*;

/// A bad line of a text index: its number from 1 and what is wrong.
pub type LineProblem = (usize, String);

/// One line of `modules.alias`: `alias PATTERN MODULE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The fnmatch(3) pattern, normalised ([`normalize_alias`]).
    pub pattern: String,
    /// The module it stands for, normalised ([`normalize_name`]).
    pub module: String,
}

/// One line of `modules.softdep`: `softdep MODULE pre: A B post: C`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Softdep {
    /// The module, an fnmatch(3) pattern as in modprobe.d(5), normalised.
    pub module: String,
    /// Names or aliases to load before it, in order.
    pub pre: Vec<String>,
    /// Names or aliases to load after it, in order.
    pub post: Vec<String>,
}

/// One line of `modules.weakdep`: `weakdep MODULE DEP...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weakdep {
    /// The module, an fnmatch(3) pattern, normalised.
    pub module: String,
    /// Names or aliases it may use.
    pub deps: Vec<String>,
}

/// What `modules.builtin.modinfo` says: the built-in modules and their
/// aliases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuiltinModinfo {
    /// Names of built-in modules, normalised, each once, in file order.
    pub names: Vec<String>,
    /// Their alias patterns, normalised ([`normalize_alias`]).
    pub aliases: Vec<String>,
}

/// Parses the text of `modules.alias`. Lines are `alias PATTERN MODULE`;
/// empty lines and `#` comments are skipped, and words after the module
/// are ignored, as libkmod does.
///
/// Errors: every line that is not an `alias` line with two words, by line
/// number. Never panics.
///
/// # Example
/// ```
/// use mkinitrd::kmod::parse_alias;
/// let aliases = parse_alias("# Aliases extracted from modules themselves.\nalias fs-virtiofs virtiofs\n").unwrap();
/// assert_eq!(aliases[0].pattern, "fs_virtiofs");
/// assert_eq!(aliases[0].module, "virtiofs");
/// ```
pub fn parse_alias(text: &str) -> Result<Vec<Alias>, Vec<LineProblem>> {
    parse_lines(text, "alias", |words| match (words.next(), words.next()) {
        (Some(pattern), Some(module)) => Ok(Alias {
            pattern: normalize_alias(pattern),
            module: normalize_name(module),
        }),
        _ => Err("expected \"alias PATTERN MODULE\"".to_string()),
    })
}

/// Parses the text of `modules.softdep`: `softdep MODULE pre: A B post: C`.
///
/// As in libkmod, `pre:` and `post:` switch the list the following names go
/// to and may repeat; names before the first of them are ignored (depmod
/// copies `MODULE_SOFTDEP("gcm")` from cifs like that, and modprobe loads
/// nothing for it).
///
/// Errors: every line that is not a `softdep` line with a module and at
/// least one more word, by line number. Never panics.
///
/// # Example
/// ```
/// use mkinitrd::kmod::parse_softdep;
/// let softdeps = parse_softdep("softdep vfio post: vfio_iommu_type1 vfio_iommu_spapr_tce\n").unwrap();
/// assert_eq!(softdeps[0].post, ["vfio_iommu_type1", "vfio_iommu_spapr_tce"]);
/// ```
pub fn parse_softdep(text: &str) -> Result<Vec<Softdep>, Vec<LineProblem>> {
    parse_lines(text, "softdep", |words| {
        let usage = || "expected \"softdep MODULE pre: NAME... post: NAME...\"".to_string();
        let module = words.next().ok_or_else(usage)?;
        let mut softdep = Softdep {
            module: normalize_alias(module),
            pre: Vec::new(),
            post: Vec::new(),
        };
        let mut list: Option<&mut Vec<String>> = None;
        let mut any = false;
        for word in words {
            any = true;
            match word {
                "pre:" => list = Some(&mut softdep.pre),
                "post:" => list = Some(&mut softdep.post),
                name => {
                    if let Some(list) = list.as_mut() {
                        list.push(name.to_string());
                    }
                }
            }
        }
        if any { Ok(softdep) } else { Err(usage()) }
    })
}

/// Parses the text of `modules.weakdep`: `weakdep MODULE DEP...`.
///
/// Errors: every line that is not a `weakdep` line with a module and at
/// least one dependency, by line number. Never panics.
pub fn parse_weakdep(text: &str) -> Result<Vec<Weakdep>, Vec<LineProblem>> {
    parse_lines(text, "weakdep", |words| {
        let module = words.next().map(normalize_alias);
        let deps: Vec<String> = words.map(str::to_string).collect();
        match module {
            Some(module) if !deps.is_empty() => Ok(Weakdep { module, deps }),
            _ => Err("expected \"weakdep MODULE NAME...\"".to_string()),
        }
    })
}

/// Parses `modules.builtin.modinfo`: `module.key=value` strings, each ended
/// by a NUL. Every module named there is built in; its `alias` values are
/// aliases of a built-in module. Strings that are not UTF-8 or not of that
/// form are skipped: the file has no lines to report. Never panics.
///
/// # Example
/// ```
/// use mkinitrd::kmod::parse_builtin_modinfo;
/// let info = parse_builtin_modinfo(b"ext4.alias=fs-ext4\0ext4.license=GPL\0md5.alias=crypto-md5\0");
/// assert_eq!(info.names, ["ext4", "md5"]);
/// assert_eq!(info.aliases, ["fs_ext4", "crypto_md5"]);
/// ```
pub fn parse_builtin_modinfo(data: &[u8]) -> BuiltinModinfo {
    let mut info = BuiltinModinfo::default();
    let mut seen = HashSet::new();
    // The strings of one module come together: its name is normalised and
    // looked up once per run of them.
    let mut last = None;
    for entry in data.split(|&b| b == 0) {
        let Ok(entry) = std::str::from_utf8(entry) else {
            continue;
        };
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        let Some((module, field)) = key.split_once('.') else {
            continue;
        };
        if module.is_empty() {
            continue;
        }
        if last != Some(module) {
            last = Some(module);
            let module = normalize_name(module);
            if seen.insert(module.clone()) {
                info.names.push(module);
            }
        }
        if field == "alias" && !value.is_empty() {
            info.aliases.push(normalize_alias(value));
        }
    }
    info
}

/// Runs `parse` on the words after `command` of each line that is not
/// empty or a `#` comment, collecting every bad line.
pub(super) fn parse_lines<'a, T>(
    text: &'a str,
    command: &str,
    mut parse: impl FnMut(&mut dyn Iterator<Item = &'a str>) -> Result<T, String>,
) -> Result<Vec<T>, Vec<LineProblem>> {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    for (number, line) in (1..).zip(text.lines()) {
        let mut words = words(line);
        let result = match words.next() {
            None => continue,
            Some(word) if word.starts_with('#') => continue,
            Some(word) if word == command => parse(&mut words),
            Some(word) => Err(format!(
                "unknown command \"{word}\" (expected \"{command}\")"
            )),
        };
        match result {
            Ok(item) => items.push(item),
            Err(problem) => problems.push((number, problem)),
        }
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(problems)
    }
}

/// Parses one non-empty `modules.dep` line into the module's path and
/// name, appending its dependencies' paths to `deps`, checking that every
/// path names a module file. On an error `deps` is left as it was.
pub(super) fn parse_dep_line<'a>(
    line: &'a str,
    deps: &mut Vec<&'a str>,
) -> Result<(&'a str, String), String> {
    let Some((path, dep_text)) = line.split_once(':') else {
        return Err("no ':' after the module path".to_string());
    };
    let not_a_module =
        |path: &str| format!("{path} is not a kernel module file (.ko, .ko.gz, .ko.xz or .ko.zst)");
    let path = path.trim();
    let (stem, _) = split_module_path(path).ok_or_else(|| not_a_module(path))?;
    let start = deps.len();
    for dep in words(dep_text) {
        if strip_module_suffix(dep).is_none() {
            deps.truncate(start);
            return Err(not_a_module(dep));
        }
        deps.push(dep);
    }
    Ok((path, normalize_name(stem)))
}

/// The words of `text`, as `str::split_whitespace` gives them, faster for
/// ASCII text (all of depmod's).
pub(super) fn words(text: &str) -> impl Iterator<Item = &str> {
    let (ascii, other) = if text.is_ascii() {
        (Some(text.split_ascii_whitespace()), None)
    } else {
        (None, Some(text.split_whitespace()))
    };
    ascii
        .into_iter()
        .flatten()
        .chain(other.into_iter().flatten())
}
