//! The kernel command line, split and quoted the way the kernel splits it
//! (`next_arg()` in lib/cmdline.c), and the keys init acts on (SPEC §3.2).
//!
//! Nothing is copied: every value borrows from the text read from
//! /proc/cmdline. A key given twice keeps its last value, as the kernel does
//! for its own parameters; `mount=`/`mount-ro=` accumulate, one per tag.

use crate::rapido::MAX_MACS;

/// Most shares one boot can mount at /run/mnt/TAG; more are a fatal
/// error, as a share the command expects must not silently be missing.
/// qemu's q35 machine with `-nodefaults` has 30 free PCI slots on its root
/// bus (`-device` number 31 fails with "PCI: no slot/function available"),
/// and chrootvm takes one for the virtio-serial ports and one for the root:
/// 28 are left, one per virtiofs share. chrootvm refuses more with the same
/// number.
pub const MAX_SHARES: usize = 28;

/// The virtiofs tag mounted as root when the command line names no root
/// (osbuild/initrd's runner passes none), if a device has it.
pub const DEFAULT_ROOT_TAG: &[u8] = b"rootfs";

/// The key prefix of `rapido.mac.IF=MAC`.
const MAC_PREFIX: &[u8] = b"rapido.mac.";

/// One `key[=value]` word of the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// Text before the first `=` (the whole word when there is none).
    pub key: &'a [u8],
    /// Text after the first `=`, without the quotes that group it.
    pub value: Option<&'a [u8]>,
}

/// Iterator over the words of a command line, kernel style: split on white
/// space, `"` toggles quoting anywhere in a word, a leading quote of the word
/// or of its value is dropped together with the word's closing quote.
#[derive(Clone, Debug)]
pub struct Params<'a> {
    rest: &'a [u8],
}

impl<'a> Params<'a> {
    /// Words of `text`, from the start.
    pub fn new(text: &'a [u8]) -> Self {
        Params {
            rest: skip_spaces(text),
        }
    }

    /// The text not yet split: after a `--` word this is what the kernel
    /// hands to init as arguments.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (param, rest) = next_arg(self.rest);
        self.rest = skip_spaces(rest);
        Some(param)
    }
}

/// The kernel's `isspace()` for command-line splitting.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn skip_spaces(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(text.len());
    &text[start..]
}

/// One word off the front of `args` (which starts at a non-space), and what
/// follows it. A line-for-line port of lib/cmdline.c `next_arg()`.
fn next_arg(args: &[u8]) -> (Param<'_>, &[u8]) {
    let quoted = args.first() == Some(&b'"');
    let args = if quoted { &args[1..] } else { args };
    let mut in_quote = quoted;
    let mut equals = 0;
    let mut end = 0;
    while end < args.len() {
        let byte = args[end];
        if is_space(byte) && !in_quote {
            break;
        }
        // As in the kernel, an `=` at offset 0 does not start a value.
        if equals == 0 && byte == b'=' {
            equals = end;
        }
        if byte == b'"' {
            in_quote = !in_quote;
        }
        end += 1;
    }
    let word = &args[..end];
    let rest = args.get(end + 1..).unwrap_or(&[]);
    let closing_quote = end > 0 && word[end - 1] == b'"';
    let param = if equals == 0 {
        let key = if quoted && closing_quote {
            &word[..end - 1]
        } else {
            word
        };
        Param { key, value: None }
    } else {
        let mut value = &word[equals + 1..];
        if value.first() == Some(&b'"') {
            value = &value[1..];
            if closing_quote && !value.is_empty() {
                value = &value[..value.len() - 1];
            }
        } else if quoted && closing_quote && !value.is_empty() {
            value = &value[..value.len() - 1];
        }
        Param {
            key: &word[..equals],
            value: Some(value),
        }
    };
    (param, rest)
}

/// A virtiofs share to mount at /run/mnt/TAG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share<'a> {
    /// The virtiofs tag, also the directory name under /run/mnt.
    pub tag: &'a [u8],
    /// `mount-ro=` rather than `mount=`.
    pub read_only: bool,
}

/// What the root file system is, decided from `rootfs=`, `root=` and
/// `rootfstype=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root<'a> {
    /// No root given: virtiofs tag [`DEFAULT_ROOT_TAG`] when a device has
    /// it, as osbuild/initrd does; else the initramfs stays the root
    /// (rapido style). Only the boot can tell which.
    Initramfs,
    /// A virtiofs tag (`rootfs=TAG`, or `root=TAG rootfstype=virtiofs`).
    Virtiofs(&'a [u8]),
    /// A 9p mount tag over virtio (`root=TAG rootfstype=9p`).
    NineP(&'a [u8]),
    /// A block device (`root=/dev/X`, `UUID=`, `LABEL=`, ...).
    Block {
        /// The `root=` value.
        device: &'a [u8],
        /// `rootfstype=`, when given.
        fstype: Option<&'a [u8]>,
    },
}

/// How much init prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `quiet`: errors only.
    Quiet,
    /// Errors and warnings (a module that failed to load).
    Normal,
    /// `debug` or `init.debug`: every step, with a monotonic timestamp.
    Debug,
}

/// The keys init acts on. Everything else on the line is ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmdline<'a> {
    /// `rootfs=TAG` (osbuild/initrd).
    pub rootfs: Option<&'a [u8]>,
    /// `root=`.
    pub root: Option<&'a [u8]>,
    /// `rootfstype=`.
    pub rootfstype: Option<&'a [u8]>,
    /// `rootflags=`: mount data for a block root.
    pub rootflags: Option<&'a [u8]>,
    /// `ro` (Some(true)) or `rw` (Some(false)), the last one given.
    pub read_only: Option<bool>,
    /// `init=`: the program to hand PID 1 over to.
    pub init: Option<&'a [u8]>,
    /// The text after a `--` word: arguments for the program.
    pub init_args: &'a [u8],
    /// `debug`, `init.debug`, `quiet`.
    pub verbosity: Verbosity,
    /// `init.status`: the host listens on the virtio port of that name for
    /// how the boot ended (see [`crate::status`]).
    pub status: bool,
    /// `rootfs.overlay`: a writable overlay with a tmpfs upper over the
    /// read-only root; writes vanish at power-off.
    pub overlay: bool,
    shares: [Share<'a>; MAX_SHARES],
    share_count: usize,
    /// Shares given beyond [`MAX_SHARES`], which init refuses to boot with.
    pub shares_dropped: usize,
    /// `rapido.hostname=H[.D]`.
    pub hostname: Option<&'a [u8]>,
    /// `rapido.vm_num=N`.
    pub vm_num: Option<&'a [u8]>,
    /// `rapido.stty=ROWS,COLS`.
    pub stty: Option<&'a [u8]>,
    /// `ip=`: static network setup (see [`crate::net`]).
    pub ip: Option<&'a [u8]>,
    /// `systemd.machine_id=ID`.
    pub machine_id: Option<&'a [u8]>,
    /// `init.shell`: a shell on the console instead of a fatal power-off.
    pub shell: bool,
    macs: [Mac<'a>; MAX_MACS],
    mac_count: usize,
}

/// A `rapido.mac.IF=MAC` parameter, unchecked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac<'a> {
    /// The interface name (IF).
    pub interface: &'a [u8],
    /// The value.
    pub mac: &'a [u8],
}

impl<'a> Cmdline<'a> {
    /// Reads the keys init acts on out of `text` (the content of
    /// /proc/cmdline). Never fails: malformed words are ignored, as the
    /// kernel ignores parameters it does not know.
    ///
    /// # Example
    /// ```
    /// use init::cmdline::{Cmdline, Root};
    /// let line = Cmdline::parse(b"rootfstype=virtiofs root=rootfs ro mount=mnt0 init=/run/mnt/mnt0/vm.py\n");
    /// assert_eq!(line.root(), Root::Virtiofs(b"rootfs"));
    /// assert_eq!(line.shares()[0].tag, b"mnt0");
    /// ```
    pub fn parse(text: &'a [u8]) -> Self {
        let mut line = Cmdline {
            rootfs: None,
            root: None,
            rootfstype: None,
            rootflags: None,
            read_only: None,
            init: None,
            init_args: &[],
            verbosity: Verbosity::Normal,
            status: false,
            overlay: false,
            shares: [Share {
                tag: &[],
                read_only: false,
            }; MAX_SHARES],
            share_count: 0,
            shares_dropped: 0,
            hostname: None,
            vm_num: None,
            stty: None,
            ip: None,
            machine_id: None,
            shell: false,
            macs: [Mac {
                interface: &[],
                mac: &[],
            }; MAX_MACS],
            mac_count: 0,
        };
        let mut debug = false;
        let mut quiet = false;
        let mut params = Params::new(text);
        while let Some(param) = params.next() {
            match (param.key, param.value) {
                (b"--", None) => {
                    line.init_args = params.rest();
                    break;
                }
                (b"rootfs", Some(v)) => line.rootfs = non_empty(v),
                (b"root", Some(v)) => line.root = non_empty(v),
                (b"rootfstype", Some(v)) => line.rootfstype = non_empty(v),
                (b"rootflags", Some(v)) => line.rootflags = non_empty(v),
                (b"ro", None) => line.read_only = Some(true),
                (b"rw", None) => line.read_only = Some(false),
                (b"init", Some(v)) => line.init = non_empty(v),
                (b"mount", Some(tag)) => line.add_share(tag, false),
                (b"mount-ro", Some(tag)) => line.add_share(tag, true),
                (b"debug" | b"init.debug", None) => debug = true,
                (b"quiet", None) => quiet = true,
                (b"init.status", None) => line.status = true,
                (b"rootfs.overlay", None) => line.overlay = true,
                (b"init.shell", None) => line.shell = true,
                (b"rapido.hostname", Some(v)) => line.hostname = non_empty(v),
                (b"rapido.vm_num", Some(v)) => line.vm_num = non_empty(v),
                (b"rapido.stty", Some(v)) => line.stty = non_empty(v),
                (b"ip", Some(v)) => line.ip = non_empty(v),
                (b"systemd.machine_id", Some(v)) => line.machine_id = non_empty(v),
                (key, Some(mac)) if key.starts_with(MAC_PREFIX) => {
                    line.add_mac(&key[MAC_PREFIX.len()..], mac);
                }
                _ => {}
            }
        }
        line.verbosity = if debug {
            Verbosity::Debug
        } else if quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        };
        line
    }

    /// Keeps `rapido.mac.IF=MAC`, the last value per interface; beyond
    /// [`MAX_MACS`] interfaces the rest are ignored.
    fn add_mac(&mut self, interface: &'a [u8], mac: &'a [u8]) {
        let known = &mut self.macs[..self.mac_count];
        if let Some(slot) = known.iter_mut().find(|m| m.interface == interface) {
            slot.mac = mac;
        } else if self.mac_count < MAX_MACS {
            self.macs[self.mac_count] = Mac { interface, mac };
            self.mac_count += 1;
        }
    }

    /// The `rapido.mac.IF=` parameters, in order of first appearance.
    pub fn macs(&self) -> &[Mac<'a>] {
        &self.macs[..self.mac_count]
    }

    fn add_share(&mut self, tag: &'a [u8], read_only: bool) {
        if tag.is_empty() {
            return;
        }
        // The last mount=/mount-ro= for a tag decides how it is mounted.
        if let Some(share) = self.shares[..self.share_count]
            .iter_mut()
            .find(|share| share.tag == tag)
        {
            share.read_only = read_only;
        } else if self.share_count < MAX_SHARES {
            self.shares[self.share_count] = Share { tag, read_only };
            self.share_count += 1;
        } else {
            self.shares_dropped += 1;
        }
    }

    /// The `mount=`/`mount-ro=` shares, in the order first given.
    pub fn shares(&self) -> &[Share<'a>] {
        &self.shares[..self.share_count]
    }

    /// The root to mount. `rootfs=` wins over `root=`, as osbuild/initrd
    /// reads only `rootfs=`.
    pub fn root(&self) -> Root<'a> {
        if let Some(tag) = self.rootfs {
            return Root::Virtiofs(tag);
        }
        let Some(root) = self.root else {
            return Root::Initramfs;
        };
        match self.rootfstype {
            Some(b"virtiofs") => Root::Virtiofs(root),
            Some(b"9p") => Root::NineP(root),
            fstype if is_block_device(root) => Root::Block {
                device: root,
                fstype,
            },
            // `root=TAG` with no type: a tag is the only thing it can name.
            None => Root::Virtiofs(root),
            fstype => Root::Block {
                device: root,
                fstype,
            },
        }
    }

    /// Whether the root is mounted read-only: `ro`/`rw` when given, else
    /// read-only (the kernel's default, and osbuild/initrd's for virtiofs).
    pub fn root_read_only(&self) -> bool {
        self.read_only.unwrap_or(true)
    }
}

fn non_empty(value: &[u8]) -> Option<&[u8]> {
    (!value.is_empty()).then_some(value)
}

/// `root=` values that name a block device rather than a share tag.
fn is_block_device(root: &[u8]) -> bool {
    [
        &b"/dev/"[..],
        b"UUID=",
        b"PARTUUID=",
        b"LABEL=",
        b"PARTLABEL=",
    ]
    .iter()
    .any(|prefix| root.starts_with(prefix))
}

/// Whether `tag` can name a directory under /run/mnt: not empty, no `/`,
/// not `.` or `..`, no NUL.
pub fn is_valid_tag(tag: &[u8]) -> bool {
    !tag.is_empty() && tag != b"." && tag != b".." && !tag.iter().any(|&b| b == b'/' || b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, Option<String>)> {
        Params::new(text.as_bytes())
            .map(|p| {
                (
                    String::from_utf8(p.key.to_vec()).unwrap(),
                    p.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                )
            })
            .collect()
    }

    fn kv(key: &str, value: Option<&str>) -> (String, Option<String>) {
        (key.to_string(), value.map(str::to_string))
    }

    #[test]
    fn splits_on_any_white_space() {
        assert_eq!(
            words("  a=1\tb \n c=  "),
            [kv("a", Some("1")), kv("b", None), kv("c", Some(""))]
        );
    }

    #[test]
    fn quotes_group_words_and_are_dropped_like_the_kernel() {
        assert_eq!(
            words(r#"init="/a b" x"#),
            [kv("init", Some("/a b")), kv("x", None)]
        );
        assert_eq!(words(r#""a b" c"#), [kv("a b", None), kv("c", None)]);
        assert_eq!(words(r#""k=v w""#), [kv("k", Some("v w"))]);
        // A quote inside a value groups but stays (only a leading one goes).
        assert_eq!(words(r#"k=a"b c"d"#), [kv("k", Some(r#"a"b c"d"#))]);
    }

    #[test]
    fn unterminated_quote_runs_to_the_end() {
        assert_eq!(words(r#"a="b c d"#), [kv("a", Some("b c d"))]);
        assert_eq!(words(r#"""#), [kv("", None)]);
    }

    #[test]
    fn equals_at_offset_zero_is_not_a_value() {
        // lib/cmdline.c only records `equals` when it is non-zero.
        assert_eq!(words("=x"), [kv("=x", None)]);
    }

    #[test]
    fn osbuild_command_line() {
        let line = Cmdline::parse(
            b"console=ttyS0 rootfstype=virtiofs root=rootfs ro mount=mnt0 init=/run/mnt/mnt0/osbuild/vm.py\n",
        );
        assert_eq!(line.root(), Root::Virtiofs(b"rootfs"));
        assert!(line.root_read_only());
        assert_eq!(
            line.shares(),
            [Share {
                tag: b"mnt0",
                read_only: false
            }]
        );
        assert_eq!(line.init, Some(&b"/run/mnt/mnt0/osbuild/vm.py"[..]));
        assert_eq!(line.verbosity, Verbosity::Normal);
    }

    #[test]
    fn osbuild_runner_names_no_root() {
        // osbuild/initrd's own runner: the root is tag `rootfs`, unnamed.
        let line = Cmdline::parse(b"console=ttyS0 quiet init=/run/mnt/test/init.sh mount-ro=test");
        assert_eq!(line.root(), Root::Initramfs);
        assert_eq!(
            line.shares(),
            [Share {
                tag: b"test",
                read_only: true
            }]
        );
        assert_eq!(DEFAULT_ROOT_TAG, b"rootfs");
    }

    #[test]
    fn rootfs_wins_over_root() {
        let line = Cmdline::parse(b"root=a rootfstype=virtiofs rootfs=b");
        assert_eq!(line.root(), Root::Virtiofs(b"b"));
    }

    #[test]
    fn root_kinds() {
        assert_eq!(Cmdline::parse(b"").root(), Root::Initramfs);
        assert_eq!(Cmdline::parse(b"root=fs").root(), Root::Virtiofs(b"fs"));
        assert_eq!(
            Cmdline::parse(b"root=fs rootfstype=9p").root(),
            Root::NineP(b"fs")
        );
        assert_eq!(
            Cmdline::parse(b"root=/dev/vda rootfstype=ext4").root(),
            Root::Block {
                device: b"/dev/vda",
                fstype: Some(b"ext4")
            }
        );
        assert_eq!(
            Cmdline::parse(b"root=UUID=1234").root(),
            Root::Block {
                device: b"UUID=1234",
                fstype: None
            }
        );
    }

    #[test]
    fn last_key_wins() {
        let line = Cmdline::parse(b"init=/a init=/b ro rw rootfs=x rootfs=y");
        assert_eq!(line.init, Some(&b"/b"[..]));
        assert_eq!(line.read_only, Some(false));
        assert!(!line.root_read_only());
        assert_eq!(line.root(), Root::Virtiofs(b"y"));
    }

    #[test]
    fn last_mount_key_for_a_tag_wins_and_order_is_kept() {
        let line = Cmdline::parse(b"mount=a mount-ro=b mount-ro=a mount=");
        assert_eq!(
            line.shares(),
            [
                Share {
                    tag: b"a",
                    read_only: true
                },
                Share {
                    tag: b"b",
                    read_only: true
                }
            ]
        );
    }

    #[test]
    fn too_many_shares_are_counted() {
        let mut text = String::new();
        for i in 0..MAX_SHARES + 3 {
            text.push_str(&format!("mount=t{i} "));
        }
        let line = Cmdline::parse(text.as_bytes());
        assert_eq!(line.shares().len(), MAX_SHARES);
        assert_eq!(line.shares_dropped, 3);
    }

    #[test]
    fn arguments_after_dashes_are_left_for_init() {
        let line = Cmdline::parse(b"init=/bin/sh -- -c \"echo hi\" init=no");
        assert_eq!(line.init, Some(&b"/bin/sh"[..]));
        assert_eq!(line.init_args, b"-c \"echo hi\" init=no");
        assert_eq!(
            words("-c \"echo hi\" init=no"),
            [kv("-c", None), kv("echo hi", None), kv("init", Some("no"))]
        );
    }

    #[test]
    fn flags() {
        let line = Cmdline::parse(b"init.status rootfs.overlay");
        assert!(line.status && line.overlay);
        let line = Cmdline::parse(b"rootfs.overlay=1");
        assert!(!line.overlay && !line.status);
    }

    #[test]
    fn verbosity() {
        assert_eq!(Cmdline::parse(b"quiet").verbosity, Verbosity::Quiet);
        assert_eq!(Cmdline::parse(b"init.debug").verbosity, Verbosity::Debug);
        assert_eq!(Cmdline::parse(b"quiet debug").verbosity, Verbosity::Debug);
        // `debug=1` is someone else's parameter.
        assert_eq!(Cmdline::parse(b"debug=1").verbosity, Verbosity::Normal);
    }

    #[test]
    fn empty_values_are_absent() {
        let line = Cmdline::parse(b"rootfs= init=");
        assert_eq!(line.root(), Root::Initramfs);
        assert_eq!(line.init, None);
    }

    #[test]
    fn rapido_keys() {
        let line = Cmdline::parse(
            b"rapido.hostname=box.example rapido.vm_num=2 rapido.stty=40,120 \
              rapido.mac.eth0=52:54:00:00:00:01 rapido.mac.eth1=52:54:00:00:00:02 \
              rapido.mac.eth0=52:54:00:00:00:03 systemd.machine_id=abc init.shell",
        );
        assert_eq!(line.hostname, Some(&b"box.example"[..]));
        assert_eq!(line.vm_num, Some(&b"2"[..]));
        assert_eq!(line.stty, Some(&b"40,120"[..]));
        assert_eq!(line.machine_id, Some(&b"abc"[..]));
        assert!(line.shell);
        let macs: Vec<_> = line.macs().iter().map(|m| (m.interface, m.mac)).collect();
        assert_eq!(
            macs,
            [
                (&b"eth0"[..], &b"52:54:00:00:00:03"[..]),
                (b"eth1", b"52:54:00:00:00:02")
            ]
        );
        let many: Vec<u8> = (0..20)
            .flat_map(|i| format!("rapido.mac.e{i}=x ").into_bytes())
            .collect();
        assert_eq!(Cmdline::parse(&many).macs().len(), MAX_MACS);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for text in [
            &b"\""[..],
            b"\"\"\"",
            b"=",
            b"a=\"",
            b"--",
            b"-- ",
            b"\0\0=\0",
            &[0xff; 4096],
        ] {
            let _ = Cmdline::parse(text).root();
        }
    }

    #[test]
    fn tags() {
        assert!(is_valid_tag(b"mnt0"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0"] {
            assert!(!is_valid_tag(bad), "{bad:?}");
        }
    }
}
