//! Shell-style pattern matching as glibc's fnmatch(3) does it in the C
//! locale: the one matcher behind module aliases and softdeps
//! ([`crate::kmod`], as modprobe matches them) and `include` globs of
//! ld.so.conf ([`crate::ldso`], as ldconfig's glob(3) matches each path
//! component). It keeps no state.
//!
//! `*` matches any run of bytes (`/` included), `?` any one byte, and a
//! bracket expression one byte of a set: members, ranges (`a-z`), POSIX
//! classes (`[:digit:]`), negated by a leading `!` or `^`, with a `]` right
//! after the `[` (or `[!`) a member. `\` makes the next byte literal, inside
//! brackets too. As glibc does:
//! - a `\` that ends the pattern matches nothing (`a\` does not match `a\`);
//! - a `[` without its `]` is a literal `[`;
//! - a class name glibc does not know makes the bracket match nothing, even
//!   negated; a `[:` not followed by a lowercase name and `:]` is a plain `[`
//!   member;
//! - with [`fnmatch_name`] (glob(3)'s `FNM_PERIOD`), a leading `.` of the
//!   name is matched only by a literal `.` of the pattern.
//!
//! Not supported: collating symbols (`[.a.]`) and equivalence classes
//! (`[=a=]`), which neither depmod's aliases nor ld.so.conf files use (their
//! `[` is read as a plain member), and multibyte characters: matching is by bytes, exact for the ASCII of module
//! aliases and library directories.
//!
//! Time is at most pattern length times text length: only the last `*`
//! backtracks, which is enough because every other element matches exactly
//! one byte.

/// Whether `text` matches `pattern`, as glibc's `fnmatch(pattern, text, 0)`
/// in the C locale (see the module doc for the rules).
///
/// # Example
/// ```
/// use mkinitrd::glob::fnmatch;
/// assert!(fnmatch("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001042sv*sd*bc*sc*i*"));
/// assert!(fnmatch("virtio[_-]pci", "virtio_pci"));
/// assert!(fnmatch("lib[[:digit:]].so", "lib1.so"));
/// assert!(!fnmatch("fs_?", "fs_ext4"));
/// assert!(!fnmatch("a\\", "a\\"));
/// ```
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    match_bytes(pattern.as_bytes(), text.as_bytes())
}

/// Whether file name `name` matches `pattern` as glob(3) matches a path
/// component: [`fnmatch`] with `FNM_PERIOD`, so that `*`, `?` and brackets
/// never match a leading `.` (hidden files are found only by a pattern
/// starting with `.` or `\.`).
///
/// # Example
/// ```
/// use mkinitrd::glob::fnmatch_name;
/// assert!(fnmatch_name("*.conf", "libc.conf"));
/// assert!(!fnmatch_name("*.conf", ".hidden.conf"));
/// assert!(fnmatch_name(".*.conf", ".hidden.conf"));
/// ```
pub fn fnmatch_name(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    match n.split_first() {
        Some((b'.', rest)) => match p {
            [b'.', after @ ..] | [b'\\', b'.', after @ ..] => match_bytes(after, rest),
            _ => false,
        },
        _ => match_bytes(p, n),
    }
}

/// Whether `pattern` matches only the text equal to it: it has none of
/// `*`, `?`, `[` and `\`. glob(3) looks such a path component up instead
/// of reading its directory (glibc's `__glob_pattern_type`, which also
/// counts a `\` as a reason to match).
///
/// # Example
/// ```
/// use mkinitrd::glob::is_literal;
/// assert!(is_literal("ld.so.conf.d"));
/// assert!(!is_literal("*.conf"));
/// assert!(!is_literal("a\\b"));
/// ```
pub fn is_literal(pattern: &str) -> bool {
    !pattern.contains(['*', '?', '[', '\\'])
}

/// [`fnmatch`] over bytes.
fn match_bytes(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // After a `*`: the pattern position after it and the text position it
    // matches up to. A later mismatch lets the `*` take one more byte; only
    // the last `*` matters, since `*` matches anything.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            if p[pi] == b'*' {
                pi += 1;
                star = Some((pi, ti));
                continue;
            }
            if let Some(&c) = t.get(ti)
                && let Some(len) = match_one(p, pi, c)
            {
                pi += len;
                ti += 1;
                continue;
            }
        } else if ti == t.len() {
            return true;
        }
        match star {
            Some((after, upto)) if upto < t.len() => {
                star = Some((after, upto + 1));
                pi = after;
                ti = upto + 1;
            }
            _ => return false,
        }
    }
}

/// The length of the pattern element at `p[at]` (not `*`) when it matches
/// byte `c`; `None` when it does not.
fn match_one(p: &[u8], at: usize, c: u8) -> Option<usize> {
    match p[at] {
        b'?' => Some(1),
        b'[' => match bracket(p, at, c) {
            Bracket::Match(len) => Some(len),
            Bracket::NoMatch => None,
            Bracket::Unterminated => (c == b'[').then_some(1),
        },
        // glibc: "Trailing \ loses."
        b'\\' => p.get(at + 1).filter(|&&next| next == c).map(|_| 2),
        literal => (literal == c).then_some(1),
    }
}

/// What a bracket expression says about one byte.
enum Bracket {
    /// It matches; the expression's length.
    Match(usize),
    /// It does not match, or it is ill-formed in a way that makes glibc
    /// fail the match (an unknown class, a `\` at the end).
    NoMatch,
    /// No closing `]`: the `[` is a literal.
    Unterminated,
}

/// Matches the bracket expression at `p[at] == b'['` against `c`, following
/// glibc's `fnmatch_loop.c`: members are read left to right until one
/// matches, and an ill-formed part is only noticed if it is read.
fn bracket(p: &[u8], at: usize, c: u8) -> Bracket {
    let mut i = at + 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&b) = p.get(i) else {
            return Bracket::Unterminated;
        };
        // A `]` right after `[` or `[!` is a member, not the end.
        if b == b']' && !first {
            return if negate {
                Bracket::Match(i + 1 - at)
            } else {
                Bracket::NoMatch
            };
        }
        first = false;
        let (matched, next) = match member(p, i, c) {
            Some(found) => found,
            None => return Bracket::NoMatch,
        };
        if matched {
            return match (negate, skip_members(p, next)) {
                (_, None) => Bracket::Unterminated,
                (false, Some(end)) => Bracket::Match(end - at),
                (true, Some(_)) => Bracket::NoMatch,
            };
        }
        i = next;
    }
}

/// Matches the bracket member (a byte, a range or a class) at `p[i]`
/// against `c`: whether it matched and the position after it; `None` when
/// glibc fails the whole match there (an unknown class, a `\` or a range
/// with nothing after it, a range ending in a collating symbol).
fn member(p: &[u8], i: usize, c: u8) -> Option<(bool, usize)> {
    if p[i] == b'['
        && p.get(i + 1) == Some(&b':')
        && let Some((name, after)) = class_name(p, i + 2)
    {
        // glibc: "Invalid character class name."
        return Some((class_contains(name, c)?, after));
    }
    let (low, next) = escaped(p, i)?;
    match (p.get(next), p.get(next + 1)) {
        (Some(b'-'), Some(&end)) if end != b']' => {
            // glibc reads `[.` as a collating symbol even here; they are
            // not supported (see the module doc).
            if end == b'[' && p.get(next + 2) == Some(&b'.') {
                return None;
            }
            let (high, after) = escaped(p, next + 1)?;
            Some(((low..=high).contains(&c), after))
        }
        _ => Some((low == c, next)),
    }
}

/// The position after the `]` that ends a bracket expression whose members
/// from `p[i]` on are not read, as glibc skips them once one matched:
/// `\` quotes a byte and `[:name:]` is passed whole, wherever it stands.
/// `None` when the pattern ends first.
fn skip_members(p: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *p.get(i)? {
            b']' => return Some(i + 1),
            b'\\' => {
                p.get(i + 1)?;
                i += 2;
            }
            b'[' if p.get(i + 1) == Some(&b':') => {
                i = class_name(p, i + 2).map_or(i + 1, |(_, after)| after);
            }
            _ => i += 1,
        }
    }
}

/// The class name of a `[:name:]` whose name starts at `p[start]`, and the
/// position after its `:]`; `None` when it is not one (glibc takes only
/// `a` to `y` as name bytes, and reads the `[` as a plain member otherwise).
fn class_name(p: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = p.get(start..)?;
    // glibc's test is `c < 'a' || c >= 'z'`: `z` itself ends a name.
    let len = rest.iter().position(|&b| !(b'a'..=b'y').contains(&b))?;
    rest[len..]
        .starts_with(b":]")
        .then_some((&rest[..len], start + len + 2))
}

/// Whether `c` is in the POSIX class `name` in the C locale; `None` for a
/// name glibc does not know.
fn class_contains(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

/// The byte at `p[i]`, or the one after it when `p[i]` is `\`, and the
/// position after it; `None` when the pattern ends first.
fn escaped(p: &[u8], i: usize) -> Option<(u8, usize)> {
    match *p.get(i)? {
        b'\\' => Some((*p.get(i + 1)?, i + 2)),
        b => Some((b, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases checked against glibc 2.36's fnmatch(3) with flags 0 in the C
    /// locale (through Python's ctypes). The matcher also agreed with glibc
    /// on 1.8 million random patterns over `ab-]![^\*?:.` and classes, but
    /// for those with collating symbols.
    #[test]
    fn fnmatch_agrees_with_glibc() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything/with/slashes", true),
            ("**", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a*c", "abcbc", true),
            ("a*b", "ac", false),
            ("**a", "ba", true),
            ("?", "a", true),
            ("?", "", false),
            ("a?c", "abc", true),
            ("*.conf", "a.conf", true),
            ("*.conf", "a.conf~", false),
            ("[abc]x", "bx", true),
            ("[abc]x", "dx", false),
            ("[a-c]", "b", true),
            ("[a-c]x", "dx", false),
            ("[!a-c]", "b", false),
            ("[!a-c]x", "dx", true),
            ("[^a-c]", "d", true),
            ("[!a]", "a", false),
            ("[]]", "]", true),
            ("[!]]", "]", false),
            ("[!]]", "a", true),
            ("[a-]", "-", true),
            ("[c-a]", "b", false),
            // Issue 15: ld.so.conf's glob had no classes.
            ("lib[[:digit:]].so", "lib1.so", true),
            ("lib[[:digit:]].so", "libx.so", false),
            ("[[:digit:]]1", "71", true),
            ("[[:upper:]]", "a", false),
            ("[[:alpha:][:digit:]]", "7", true),
            ("[![:space:]]", " ", false),
            ("[[:xdigit:]]", "F", true),
            // An unknown class fails the match, negated or not, unless a
            // member before it matched.
            ("[[:nope:]]", "a", false),
            ("[![:nope:]]", "a", false),
            ("[a[:nope:]]", "a", true),
            // `[:` without a lowercase name and `:]`: a plain `[` member.
            ("[[:A]", "[", true),
            ("[[:A]", ":", true),
            ("[", "[", true),
            ("[ab", "[ab", true),
            ("[ab", "a", false),
            ("[a[", "[a[", true),
            // Once a member matched, glibc skips the rest reading `[:...:]`
            // whole, even where it ends a range.
            ("[:[a-[:nope:]", ":", false),
            ("[:[a-[:nope:]]", ":", true),
            ("[b-[:alpha:]", "a", true),
            ("[:.-[.]", "[", false),
            // Issue 15: ld.so.conf's glob let a final `\` match itself.
            ("a\\", "a\\", false),
            ("a\\", "a", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("\\a", "a", true),
            ("[\\]]", "]", true),
            ("[\\]]", "\\", false),
            ("[a\\-z]", "-", true),
            ("[a\\-z]", "b", false),
            ("[\\", "[\\", false),
            ("[a-\\z]", "m", true),
            (
                "pci:v00001AF4d*sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001042sv*sd*bc*sc*i*",
                true,
            ),
            (
                "pci:v00001AF4d*sv*sd*bc*sc*i*",
                "pci:v00008086d00001042sv*sd*bc*sc*i*",
                false,
            ),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(
                fnmatch(pattern, text),
                want,
                "fnmatch({pattern:?}, {text:?})"
            );
        }
    }

    /// glob(3) passes `FNM_PERIOD`: a leading dot is matched only by a
    /// literal one (glibc 2.36, through Python's ctypes).
    #[test]
    fn fnmatch_name_keeps_hidden_files_hidden() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", ".hidden", false),
            ("?hidden", ".hidden", false),
            ("[.]hidden", ".hidden", false),
            (".*", ".hidden", true),
            ("\\.*", ".hidden", true),
            ("*.conf", "a.conf", true),
            ("a*", "a.b", true),
            ("*", ".", false),
            (".", ".", true),
        ];
        for &(pattern, name, want) in cases {
            assert_eq!(
                fnmatch_name(pattern, name),
                want,
                "fnmatch_name({pattern:?}, {name:?})"
            );
        }
    }

    #[test]
    fn literal_patterns_have_no_special_bytes() {
        assert!(is_literal("modules.conf"));
        assert!(is_literal("a]b"));
        for pattern in ["*", "a?", "[ab]", "[", "a\\b"] {
            assert!(!is_literal(pattern), "{pattern}");
        }
    }

    #[test]
    fn fnmatch_has_no_exponential_backtracking() {
        let pattern = "*a".repeat(200) + "b";
        let text = "a".repeat(5000);
        assert!(!fnmatch(&pattern, &text));
    }
}
