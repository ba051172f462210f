//! The --manifest file: one directive a line.
//!
//! [`parse`] turns the text of one manifest into [`Item`]s, purely (it
//! reads no file, so it can be fuzzed); [`load`] reads a manifest from disk
//! and expands its `include` lines into one list of [`Directive`]s, each
//! with the [`Location`] it came from. Neither keeps state between calls.
//!
//! # Format
//!
//! ```text
//! # rapido-style resources and a test tree
//! file /etc/hosts                     # SRC [DST]: DST defaults to SRC
//! file "my conf.txt" /etc/my.conf
//! try-file /etc/resolv.conf
//! tree xfstests /opt/xfstests         # DIR DST
//! dir /mnt/scratch 1777               # PATH [MODE]
//! symlink /etc/mtab /proc/self/mounts # PATH TARGET
//! nod /dev/zram0 b 252 0 660          # PATH c|b MAJOR MINOR [MODE]
//! module zram                         # NAME
//! try-module lzo_rle
//! bin mkfs.xfs                        # PROG
//! try-bin nano
//! include common.manifest             # FILE
//! try-include local.manifest
//! ```
//!
//! - A line is split into words at ASCII whitespace (spaces, tabs, a CR
//!   before the newline). The first word names the directive; the others
//!   are its fields, as described in [`Directive`] (the same as the
//!   command line options, with spaces for `:`).
//! - Double quotes group: inside `"..."` whitespace and `#` are ordinary
//!   characters, and a word may mix quoted and bare parts (`a" b"c` is
//!   `a bc`). There are no escapes: a word cannot hold a `"`. `""` is an
//!   empty word. A quote left open is an error.
//! - `#` at the start of a word, outside quotes, begins a comment that runs
//!   to the end of the line (`a#b` is one word). Blank lines are ignored.
//! - `try-file`, `try-tree` and `try-include` skip a source that does not
//!   exist; `try-module` and `try-bin` mark the directive `optional` for
//!   the resolvers. The other directives have no `try-` form.
//! - Relative host paths (the SRC of `file`, the DIR of `tree`, the FILE
//!   of `include`, a `bin` PROG holding a `/`) are relative to the
//!   directory of the manifest naming them, so a manifest and its files
//!   can move together. A manifest read from standard input (`-`) uses the
//!   current directory. Module and program names are left to the
//!   resolvers.
//! - Image paths (DST, PATH) are checked as the command line's are: none
//!   may leave the image.
//!
//! An include cycle is an error naming the chain; including one file twice
//! without a cycle just adds its directives twice. Errors say where they
//! are (`cannot read manifest m.txt:12: unknown directive "fiel"`), and
//! every bad line of a manifest is reported, not just the first.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::content::{self, Directive, Kind};
use crate::error::Error;

/// The manifest name meaning standard input.
pub const STDIN: &str = "-";

/// Where a directive was written: a manifest and a line in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The manifest, as given or as joined from an `include`.
    pub path: PathBuf,
    /// The line number, from 1.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// One meaningful line of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// Something to add to the image, or to resolve.
    Directive(Directive),
    /// `include FILE`: another manifest, read in place of the line.
    Include {
        /// The manifest to read, joined to the including one's directory.
        path: PathBuf,
        /// `try-include`: skip it when it does not exist.
        optional: bool,
    },
}

/// Parses the text of the manifest `origin` (used for relative paths and
/// in errors only; nothing is read).
///
/// Errors: [`Error::ParseManifest`] listing every bad line. Never panics,
/// whatever the text.
///
/// # Example
/// ```
/// use std::path::Path;
/// use mkinitrd::content::Directive;
/// use mkinitrd::manifest::{parse, Item};
/// let items = parse("# net tools\nfile hosts /etc/hosts\ntry-bin nc\n", Path::new("conf/m.txt"))?;
/// assert_eq!(items[0].0, Item::Directive(Directive::File {
///     src: "conf/hosts".into(), dst: Some("/etc/hosts".into()), optional: false,
/// }));
/// assert_eq!(items[1].1.to_string(), "conf/m.txt:3");
/// let err = parse("fiel x\n", Path::new("m.txt")).unwrap_err();
/// assert_eq!(err.to_string(), "cannot read manifest m.txt:1: unknown directive \"fiel\"");
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn parse(text: &str, origin: &Path) -> Result<Vec<(Item, Location)>, Error> {
    let base = base_dir(origin);
    let mut items = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        match parse_line(line, base) {
            Ok(None) => {}
            Ok(Some(item)) => items.push((
                item,
                Location {
                    path: origin.to_path_buf(),
                    line: number,
                },
            )),
            Err(problem) => problems.push((number, problem)),
        }
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(Error::ParseManifest {
            path: origin.to_path_buf(),
            problems,
        })
    }
}

/// Reads the manifest at `path` (`-`: standard input) and those it
/// includes, giving every directive in order with where it was written.
///
/// Errors: [`Error::ReadManifest`] (naming the `include` line for an
/// included file), [`Error::ParseManifest`] for bad lines or text that is
/// not UTF-8, [`Error::IncludeCycle`].
pub fn load(path: &Path) -> Result<Vec<(Directive, Location)>, Error> {
    let mut loader = Loader::default();
    loader.load_file(path, None, false)?;
    Ok(loader.out)
}

/// The directory relative host paths of `origin` are joined to.
fn base_dir(origin: &Path) -> &Path {
    if origin == Path::new(STDIN) {
        Path::new("")
    } else {
        origin.parent().unwrap_or(Path::new(""))
    }
}

/// Parses one line: `None` for blank and comment lines, or what is wrong.
fn parse_line(line: &str, base: &Path) -> Result<Option<Item>, String> {
    let words = split_words(line)?;
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    let (optional, bare) = match name.strip_prefix("try-") {
        Some(bare) => (true, bare),
        None => (false, name.as_str()),
    };
    if bare == "include" {
        let [file] = args else {
            return Err(arity_problem(name, "FILE", args.len()));
        };
        if file.is_empty() {
            return Err("FILE is empty".to_string());
        }
        return Ok(Some(Item::Include {
            path: base.join(file),
            optional,
        }));
    }
    let Some(kind) = Kind::from_name(bare) else {
        return Err(unknown_directive(name, optional, bare));
    };
    if optional && !kind.can_be_optional() {
        return Err(format!(
            "\"{name}\" is not a directive (try- goes with file, tree, module, bin and include)"
        ));
    }
    let fields: Vec<&str> = args.iter().map(String::as_str).collect();
    let directive = content::build(kind, &fields, optional).map_err(|problem| {
        if problem.is_empty() {
            arity_problem(name, kind.manifest_usage(), args.len())
        } else {
            problem
        }
    })?;
    relative_to(base, directive).map(|d| Some(Item::Directive(d)))
}

/// `file expects SRC [DST], got 3 arguments`.
fn arity_problem(name: &str, usage: &str, got: usize) -> String {
    let plural = if got == 1 { "" } else { "s" };
    format!("{name} expects {usage}, got {got} argument{plural}")
}

/// Directive names of rapido-cut manifests that are spelt differently here.
const RAPIDO_SPELLINGS: [(&str, &str); 2] = [("slink", "symlink"), ("kmod", "module")];

/// `unknown directive "fiel"`, with a hint for rapido's spellings.
fn unknown_directive(name: &str, optional: bool, bare: &str) -> String {
    let mut problem = format!("unknown directive \"{name}\"");
    if let Some((_, ours)) = RAPIDO_SPELLINGS.iter().find(|(theirs, _)| *theirs == bare) {
        let prefix = if optional { "try-" } else { "" };
        problem.push_str(&format!(" (did you mean \"{prefix}{ours}\"?)"));
    }
    problem
}

/// Joins the relative host paths of `directive` to `base`.
fn relative_to(base: &Path, directive: Directive) -> Result<Directive, String> {
    Ok(match directive {
        Directive::File { src, dst, optional } => Directive::File {
            src: base.join(src),
            dst,
            optional,
        },
        Directive::Tree { src, dst, optional } => Directive::Tree {
            src: base.join(src),
            dst,
            optional,
        },
        // A bare name is looked up by the resolver; a path is a file.
        Directive::Bin { name, optional } if name.contains('/') => {
            let joined = base.join(&name);
            let name = joined
                .to_str()
                .ok_or("the manifest's directory is not UTF-8, so a relative PROG cannot be")?
                .to_string();
            Directive::Bin { name, optional }
        }
        other => other,
    })
}

/// Splits a line into words (see the module documentation): whitespace
/// separates, double quotes group, `#` at a word's start ends the line.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    // Some while inside a word, which may be empty ("").
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        if quoted {
            if c == '"' {
                quoted = false;
            } else {
                word.get_or_insert_default().push(c);
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                word.get_or_insert_default();
            }
            c if c.is_ascii_whitespace() => words.extend(word.take()),
            '#' if word.is_none() => break,
            c => word.get_or_insert_default().push(c),
        }
    }
    if quoted {
        return Err("unterminated double quote".to_string());
    }
    words.extend(word);
    Ok(words)
}

/// Identity of an open manifest: device and inode, so a cycle is found
/// whatever path reaches the file (`/dev/stdin` included).
type FileId = (u64, u64);

/// State of one [`load`]: the manifests being read, outermost first, and
/// the directives so far.
#[derive(Default)]
struct Loader {
    stack: Vec<(PathBuf, Option<FileId>)>,
    out: Vec<(Directive, Location)>,
}

impl Loader {
    /// Reads, parses and expands one manifest; `from` is the include line
    /// naming it.
    fn load_file(
        &mut self,
        path: &Path,
        from: Option<&Location>,
        optional: bool,
    ) -> Result<(), Error> {
        let (bytes, id) = match read_manifest(path) {
            Ok(read) => read,
            Err(e) if optional && content::is_absent(&e) => return Ok(()),
            Err(source) => {
                return Err(Error::ReadManifest {
                    path: path.to_path_buf(),
                    included_from: from.map(|at| (at.path.clone(), at.line)),
                    source,
                });
            }
        };
        if let (Some(id), Some(from)) = (id, from) {
            self.check_cycle(path, id, from)?;
        }
        let text = decode(path, bytes)?;
        let items = parse(&text, path)?;
        self.stack.push((path.to_path_buf(), id));
        for (item, location) in items {
            match item {
                Item::Directive(directive) => self.out.push((directive, location)),
                Item::Include { path, optional } => {
                    self.load_file(&path, Some(&location), optional)?;
                }
            }
        }
        self.stack.pop();
        Ok(())
    }

    /// [`Error::IncludeCycle`] if the file `id` is being read already.
    fn check_cycle(&self, path: &Path, id: FileId, from: &Location) -> Result<(), Error> {
        let Some(start) = self.stack.iter().position(|(_, open)| *open == Some(id)) else {
            return Ok(());
        };
        let mut chain: Vec<PathBuf> = self.stack[start..]
            .iter()
            .map(|(path, _)| path.clone())
            .collect();
        chain.push(path.to_path_buf());
        Err(Error::IncludeCycle {
            path: from.path.clone(),
            line: from.line,
            chain,
        })
    }
}

/// The bytes of a manifest and its identity (none for standard input).
fn read_manifest(path: &Path) -> io::Result<(Vec<u8>, Option<FileId>)> {
    let mut bytes = Vec::new();
    if path == Path::new(STDIN) {
        io::stdin().lock().read_to_end(&mut bytes)?;
        return Ok((bytes, None));
    }
    let mut file = File::open(path)?;
    let metadata = file.metadata()?;
    // read_to_end on a directory fails with EISDIR, which says it well.
    file.read_to_end(&mut bytes)?;
    Ok((bytes, Some((metadata.dev(), metadata.ino()))))
}

/// The text of a manifest, or [`Error::ParseManifest`] naming every line
/// that is not UTF-8.
fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|e| {
        let problems = e
            .as_bytes()
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| std::str::from_utf8(line).is_err())
            .map(|(index, _)| (index + 1, "not UTF-8 text".to_string()))
            .collect();
        Error::ParseManifest {
            path: path.to_path_buf(),
            problems,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::NodKind;
    use crate::testutil::TempDir;

    fn items(text: &str) -> Vec<Item> {
        parse(text, Path::new("m.txt"))
            .unwrap()
            .into_iter()
            .map(|(item, _)| item)
            .collect()
    }

    fn directive(text: &str) -> Directive {
        match items(text).as_slice() {
            [Item::Directive(d)] => d.clone(),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn problem(text: &str) -> String {
        parse(text, Path::new("m.txt")).unwrap_err().to_string()
    }

    #[test]
    fn words_split_on_whitespace_with_quotes_and_comments() {
        let split = |line| split_words(line).unwrap();
        assert_eq!(split("  file\ta  b\r"), ["file", "a", "b"]);
        assert_eq!(split("file \"my file\" /x"), ["file", "my file", "/x"]);
        assert_eq!(split("a\" b\"c"), ["a bc"]);
        assert_eq!(split("a \"\" b"), ["a", "", "b"]);
        assert_eq!(split("a \"#not\" b#c # comment \"x"), ["a", "#not", "b#c"]);
        assert_eq!(split("# all comment"), Vec::<String>::new());
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(
            split_words("file \"open").unwrap_err(),
            "unterminated double quote"
        );
    }

    #[test]
    fn blank_and_comment_lines_are_skipped_and_lines_counted() {
        let parsed = parse(
            "\n# comment\n   \nmodule zram # trailing\r\n\nbin ls",
            Path::new("dir/m.txt"),
        )
        .unwrap();
        let lines: Vec<usize> = parsed.iter().map(|(_, at)| at.line).collect();
        assert_eq!(lines, [4, 6]);
        assert_eq!(parsed[1].1.to_string(), "dir/m.txt:6");
    }

    #[test]
    fn file_lines() {
        assert_eq!(
            directive("file /etc/hosts"),
            Directive::File {
                src: "/etc/hosts".into(),
                dst: None,
                optional: false
            }
        );
        assert_eq!(
            directive("try-file a:b \"/etc/x y\""),
            Directive::File {
                src: "a:b".into(),
                dst: Some("/etc/x y".into()),
                optional: true
            }
        );
        assert_eq!(
            problem("file"),
            "cannot read manifest m.txt:1: file expects SRC [DST], got 0 arguments"
        );
        assert_eq!(
            problem("file a b c"),
            "cannot read manifest m.txt:1: file expects SRC [DST], got 3 arguments"
        );
        assert_eq!(
            problem("file a ../../etc/passwd"),
            "cannot read manifest m.txt:1: bad path \"../../etc/passwd\": the path has a \"..\" \
             component (paths stay inside the image)"
        );
        assert_eq!(
            problem("file \"\""),
            "cannot read manifest m.txt:1: SRC is empty"
        );
    }

    #[test]
    fn tree_lines() {
        assert_eq!(
            directive("try-tree /usr/lib/firmware /lib/firmware"),
            Directive::Tree {
                src: "/usr/lib/firmware".into(),
                dst: "/lib/firmware".into(),
                optional: true
            }
        );
        assert_eq!(
            problem("tree /x"),
            "cannot read manifest m.txt:1: tree expects DIR DST, got 1 argument"
        );
        assert_eq!(
            problem("tree /x /a/../.."),
            "cannot read manifest m.txt:1: bad path \"/a/../..\": the path has a \"..\" \
             component (paths stay inside the image)"
        );
    }

    #[test]
    fn dir_symlink_and_nod_lines() {
        assert_eq!(
            directive("dir /mnt/test 1777"),
            Directive::Dir {
                path: "/mnt/test".into(),
                mode: Some(0o1777)
            }
        );
        assert_eq!(
            directive("dir /mnt"),
            Directive::Dir {
                path: "/mnt".into(),
                mode: None
            }
        );
        assert_eq!(
            directive("symlink /bin/sh busybox"),
            Directive::Symlink {
                path: "/bin/sh".into(),
                target: "busybox".into()
            }
        );
        assert_eq!(
            directive("nod /dev/vda b 254 0"),
            Directive::Nod {
                path: "/dev/vda".into(),
                kind: NodKind::Block,
                major: 254,
                minor: 0,
                mode: 0o600
            }
        );
        assert_eq!(
            problem("dir /x 999"),
            "cannot read manifest m.txt:1: mode \"999\" is not octal from 0 to 7777"
        );
        assert_eq!(
            problem("symlink /bin/sh"),
            "cannot read manifest m.txt:1: symlink expects PATH TARGET, got 1 argument"
        );
        assert_eq!(
            problem("nod /dev/x c 1"),
            "cannot read manifest m.txt:1: nod expects PATH c|b MAJOR MINOR [MODE], \
             got 3 arguments"
        );
        assert_eq!(
            problem("nod /dev/x p 1 3"),
            "cannot read manifest m.txt:1: device type \"p\" is neither c (character) \
             nor b (block)"
        );
    }

    #[test]
    fn module_bin_and_their_try_forms() {
        assert_eq!(
            directive("module zram"),
            Directive::Module {
                name: "zram".into(),
                optional: false
            }
        );
        assert_eq!(
            directive("try-module lzo_rle"),
            Directive::Module {
                name: "lzo_rle".into(),
                optional: true
            }
        );
        assert_eq!(
            directive("try-bin nano"),
            Directive::Bin {
                name: "nano".into(),
                optional: true
            }
        );
        assert_eq!(
            problem("module a b"),
            "cannot read manifest m.txt:1: module expects NAME, got 2 arguments"
        );
        assert_eq!(
            problem("bin"),
            "cannot read manifest m.txt:1: bin expects PROG, got 0 arguments"
        );
    }

    #[test]
    fn unknown_directives_and_try_forms_that_do_not_exist() {
        assert_eq!(
            problem("fiel x"),
            "cannot read manifest m.txt:1: unknown directive \"fiel\""
        );
        assert_eq!(
            problem("slink /a b"),
            "cannot read manifest m.txt:1: unknown directive \"slink\" \
             (did you mean \"symlink\"?)"
        );
        assert_eq!(
            problem("try-kmod zram"),
            "cannot read manifest m.txt:1: unknown directive \"try-kmod\" \
             (did you mean \"try-module\"?)"
        );
        assert_eq!(
            problem("try-dir /x"),
            "cannot read manifest m.txt:1: \"try-dir\" is not a directive \
             (try- goes with file, tree, module, bin and include)"
        );
        assert_eq!(
            problem("FILE /x"),
            "cannot read manifest m.txt:1: unknown directive \"FILE\""
        );
    }

    #[test]
    fn every_bad_line_is_reported() {
        let err = parse(
            "fiel a\nmodule ok\nbin\ndir /x 8\nfile \"x\n",
            Path::new("m.txt"),
        )
        .unwrap_err();
        let Error::ParseManifest { problems, .. } = &err else {
            panic!("{err}");
        };
        let lines: Vec<usize> = problems.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 3, 4, 5]);
        assert_eq!(
            err.to_string(),
            "cannot read manifest m.txt:1: unknown directive \"fiel\" \
             (and 3 more bad lines: 3, 4, 5)"
        );
    }

    #[test]
    fn relative_host_paths_follow_the_manifest() {
        let parsed = items(
            "file a.conf\ntree t /t\nbin ./tools/x\nbin ls\nmodule ./m\ninclude more.txt\n\
             file /abs\n",
        );
        let base = |text| {
            parse(text, Path::new("/srv/m/list.txt"))
                .unwrap()
                .remove(0)
                .0
        };
        assert_eq!(
            base("file a.conf"),
            Item::Directive(Directive::File {
                src: "/srv/m/a.conf".into(),
                dst: None,
                optional: false
            })
        );
        assert_eq!(
            base("tree t /t"),
            Item::Directive(Directive::Tree {
                src: "/srv/m/t".into(),
                dst: "/t".into(),
                optional: false
            })
        );
        assert_eq!(
            base("bin ./tools/x"),
            Item::Directive(Directive::Bin {
                name: "/srv/m/./tools/x".into(),
                optional: false
            })
        );
        assert_eq!(
            base("bin ls"),
            Item::Directive(Directive::Bin {
                name: "ls".into(),
                optional: false
            })
        );
        assert_eq!(
            base("try-include more.txt"),
            Item::Include {
                path: "/srv/m/more.txt".into(),
                optional: true
            }
        );
        // Module names are never paths; absolute paths stay as they are.
        assert_eq!(
            base("module ./m"),
            Item::Directive(Directive::Module {
                name: "./m".into(),
                optional: false
            })
        );
        assert_eq!(
            base("file /abs"),
            Item::Directive(Directive::File {
                src: "/abs".into(),
                dst: None,
                optional: false
            })
        );
        // In the current directory, and from standard input, nothing is
        // joined.
        assert!(
            matches!(&parsed[0], Item::Directive(Directive::File { src, .. }) if src == Path::new("a.conf"))
        );
        let stdin = parse("file a.conf", Path::new(STDIN)).unwrap();
        assert!(
            matches!(&stdin[0].0, Item::Directive(Directive::File { src, .. }) if src == Path::new("a.conf"))
        );
    }

    #[test]
    fn include_lines() {
        assert_eq!(
            items("include common.txt"),
            [Item::Include {
                path: "common.txt".into(),
                optional: false
            }]
        );
        assert_eq!(
            problem("include"),
            "cannot read manifest m.txt:1: include expects FILE, got 0 arguments"
        );
        assert_eq!(
            problem("try-include a b"),
            "cannot read manifest m.txt:1: try-include expects FILE, got 2 arguments"
        );
    }

    #[test]
    fn parse_never_panics_on_odd_text() {
        for text in [
            "\0",
            "\"",
            "\"\"\"",
            "nod a c 99999999999999999999 1",
            "dir \u{feff} 0",
            "file \u{10ffff} \u{10ffff}",
            "try-",
            "try-try-file x",
            "\r\r\n\n",
            "symlink a \"\"",
            "tree x \"/\"",
            "dir TRAILER!!!",
        ] {
            let _ = parse(text, Path::new("m"));
        }
    }

    #[test]
    fn load_expands_includes_relative_to_each_manifest() {
        let tmp = TempDir::new("manifest-include");
        tmp.write("top.txt", b"module a\ninclude sub/mid.txt\nmodule d\n");
        tmp.write(
            "sub/mid.txt",
            b"module b\ntry-include missing.txt\ninclude leaf.txt\n",
        );
        tmp.write("sub/leaf.txt", b"file data /data\n");
        let loaded = load(&tmp.path().join("top.txt")).unwrap();
        let got: Vec<String> = loaded
            .iter()
            .map(|(d, at)| {
                let what = match d {
                    Directive::Module { name, .. } => name.clone(),
                    Directive::File { src, .. } => src.display().to_string(),
                    other => format!("{other:?}"),
                };
                let file = at.path.strip_prefix(tmp.path()).unwrap().display();
                format!("{what} @ {file}:{}", at.line)
            })
            .collect();
        let data = tmp.path().join("sub/data");
        assert_eq!(
            got,
            [
                "a @ top.txt:1".to_string(),
                "b @ sub/mid.txt:1".to_string(),
                format!("{} @ sub/leaf.txt:1", data.display()),
                "d @ top.txt:3".to_string(),
            ]
        );
    }

    #[test]
    fn include_cycles_are_named() {
        let tmp = TempDir::new("manifest-cycle");
        tmp.write("a.txt", b"module x\ninclude b.txt\n");
        tmp.write("b.txt", b"\n\ninclude ./a.txt\n");
        let a = tmp.path().join("a.txt");
        let err = load(&a).unwrap_err();
        let b = tmp.path().join("b.txt");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read manifest {}:3: include cycle {} -> {} -> {}",
                b.display(),
                a.display(),
                b.display(),
                tmp.path().join("./a.txt").display()
            )
        );
        // A file including itself.
        tmp.write("self.txt", b"try-include self.txt\n");
        let err = load(&tmp.path().join("self.txt")).unwrap_err();
        assert!(matches!(err, Error::IncludeCycle { line: 1, .. }), "{err}");
        // One file included twice without a cycle is fine.
        tmp.write("leaf.txt", b"module l\n");
        tmp.write("twice.txt", b"include leaf.txt\ninclude leaf.txt\n");
        assert_eq!(load(&tmp.path().join("twice.txt")).unwrap().len(), 2);
    }

    #[test]
    fn load_errors_name_the_file_and_the_include_line() {
        let tmp = TempDir::new("manifest-errors");
        let missing = tmp.path().join("missing.txt");
        assert_eq!(
            load(&missing).unwrap_err().to_string(),
            format!(
                "cannot read manifest {}: No such file or directory",
                missing.display()
            )
        );
        let top = tmp.write("top.txt", b"\ninclude missing.txt\n");
        assert_eq!(
            load(&top).unwrap_err().to_string(),
            format!(
                "cannot read manifest {}: No such file or directory (included from {}:2)",
                missing.display(),
                top.display()
            )
        );
        // try-include tolerates absence only.
        let dir_include = tmp.write("dir.txt", b"try-include .\n");
        let err = load(&dir_include).unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                ": Is a directory (included from {}:1)",
                dir_include.display()
            )),
            "{err}"
        );
        // Errors of an included manifest name it and its own line.
        tmp.write("bad.txt", b"module ok\nfiel x\n");
        let outer = tmp.write("outer.txt", b"include bad.txt\n");
        assert_eq!(
            load(&outer).unwrap_err().to_string(),
            format!(
                "cannot read manifest {}:2: unknown directive \"fiel\"",
                tmp.path().join("bad.txt").display()
            )
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_reported_by_line() {
        let tmp = TempDir::new("manifest-utf8");
        let path = tmp.write("m.txt", b"module a\nfile caf\xe9\nmodule b\n\xff\n");
        assert_eq!(
            load(&path).unwrap_err().to_string(),
            format!(
                "cannot read manifest {}:2: not UTF-8 text (and 1 more bad line: 4)",
                path.display()
            )
        );
    }
}
