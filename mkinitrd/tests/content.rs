//! Host content end to end through the library: a manifest (with an
//! include, a tree, files, directories, symlinks, device nodes, modules and
//! programs) and rapido resources planned into an [`Image`], written as an
//! archive and read back with [`read_archive`].

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use mkinitrd::Error;
use mkinitrd::content::{self, Directive};
use mkinitrd::cpio::{
    Entry, HEADER_LEN, S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, read_archive,
};
use mkinitrd::image::Image;
use mkinitrd::manifest;
use mkinitrd::rsc::{self, Resources};

/// The workspace's one temporary-directory helper.
use tests::Scratch as TempDir;

/// Builds the sample: a manifest in `m/`, its files beside it.
fn sample(tmp: &TempDir) -> PathBuf {
    tmp.write("m/files/motd", b"hello\n");
    tmp.write("m/files/my conf", b"a=1\n");
    tmp.write("m/tree/bin/tool", b"#!/bin/sh\necho hi\n");
    tmp.write("m/tree/etc/secret", b"s");
    tmp.chmod("m/tree/bin/tool", 0o4755);
    tmp.chmod("m/tree/etc/secret", 0o600);
    tmp.chmod("m/tree/etc", 0o750);
    symlink("tool", tmp.path().join("m/tree/bin/alias")).unwrap();
    symlink("/does/not/exist", tmp.path().join("m/tree/dangling")).unwrap();
    tmp.write(
        "m/common.manifest",
        b"# shared bits\nmodule zram\ntry-module lzo_rle\nbin sh\n",
    );
    tmp.write(
        "m/main.manifest",
        b"include common.manifest\n\
          try-include absent.manifest\n\
          file files/motd /etc/motd\n\
          file \"files/my conf\" \"/etc/my conf\"   # quoted\n\
          try-file files/absent /etc/absent\n\
          tree tree /opt/t\n\
          try-tree no-such-tree /opt/none\n\
          dir /mnt/scratch 1777\n\
          symlink /bin/sh busybox\n\
          nod /dev/vda b 254 0\n\
          nod /dev/null c 1 3 666\n\
          try-bin no-such-program-anywhere\n",
    );
    tmp.path().join("m/main.manifest")
}

fn pack(image: &Image) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_to(&mut bytes).unwrap();
    bytes
}

fn find<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} in the archive"))
}

/// The data of a regular file entry, found after its header and name.
fn data_of<'a>(bytes: &'a [u8], entry: &Entry) -> &'a [u8] {
    let offset = usize::try_from(entry.offset).unwrap();
    let size = usize::try_from(entry.size).unwrap();
    // A newc header is 110 bytes, then the name and its NUL, padded to 4.
    let start = (offset + HEADER_LEN + entry.name.len() + 1).next_multiple_of(4);
    &bytes[start..start + size]
}

#[test]
fn a_manifest_becomes_archive_entries() {
    let tmp = TempDir::new("manifest");
    let main = sample(&tmp);
    let directives: Vec<Directive> = manifest::load(&main)
        .unwrap()
        .into_iter()
        .map(|(directive, _)| directive)
        .collect();
    let mut image = Image::new(1_700_000_000);
    let applied = content::apply(&mut image, &directives).unwrap();
    let resources = Resources {
        cpus: Some(2),
        mem: Some("1G".into()),
        net: false,
    };
    rsc::add_to_image(&resources, &mut image).unwrap();

    // What is left for the resolvers, and what try- skipped.
    assert_eq!(applied.modules, ["zram"]);
    assert_eq!(applied.optional_modules, ["lzo_rle"]);
    // Programs are packed as their directive comes; a try-bin that is
    // not there is skipped.
    let sh = image
        .entries()
        .find(|(path, _)| path.ends_with("bin/sh"))
        .map(|(path, _)| path.to_string());
    assert!(sh.is_some(), "bin sh should pack the host's sh");
    assert!(
        !image
            .entries()
            .any(|(path, _)| path.contains("no-such-program-anywhere"))
    );
    assert_eq!(
        applied.skipped,
        [
            tmp.path().join("m/files/absent"),
            tmp.path().join("m/no-such-tree")
        ]
    );

    let bytes = pack(&image);
    let entries = read_archive(&bytes).unwrap();
    // The host's sh, its libraries and its usr-merge links vary by host:
    // only the manifest's own entries are compared.
    let got: Vec<(&str, u32)> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.mode))
        .filter(|(name, _)| !(name.starts_with("usr") || name.starts_with("lib")))
        .collect();
    let tree_mode = fs::metadata(tmp.path().join("m/tree"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(
        got,
        [
            ("bin", S_IFDIR | 0o755),
            ("bin/sh", S_IFLNK | 0o777),
            ("dev", S_IFDIR | 0o755),
            ("dev/null", S_IFCHR | 0o666),
            ("dev/vda", S_IFBLK | 0o600),
            ("etc", S_IFDIR | 0o755),
            ("etc/motd", S_IFREG | 0o644),
            ("etc/my conf", S_IFREG | 0o644),
            ("mnt", S_IFDIR | 0o755),
            ("mnt/scratch", S_IFDIR | 0o1777),
            ("opt", S_IFDIR | 0o755),
            ("opt/t", S_IFDIR | tree_mode),
            ("opt/t/bin", S_IFDIR | 0o755),
            ("opt/t/bin/alias", S_IFLNK | 0o777),
            ("opt/t/bin/tool", S_IFREG | 0o4755),
            ("opt/t/dangling", S_IFLNK | 0o777),
            ("opt/t/etc", S_IFDIR | 0o750),
            ("opt/t/etc/secret", S_IFREG | 0o600),
            ("rapido-rsc", S_IFDIR | 0o755),
            ("rapido-rsc/cpu", S_IFDIR | 0o755),
            ("rapido-rsc/cpu/2", S_IFREG | 0o644),
            ("rapido-rsc/mem", S_IFDIR | 0o755),
            ("rapido-rsc/mem/1G", S_IFREG | 0o644),
        ]
    );
    // Owned by root, one mtime.
    assert!(entries.iter().all(|e| e.uid == 0 && e.gid == 0));
    assert!(entries.iter().all(|e| e.mtime == 1_700_000_000));
    // Data, targets and device numbers.
    assert_eq!(data_of(&bytes, find(&entries, "etc/motd")), b"hello\n");
    assert_eq!(data_of(&bytes, find(&entries, "etc/my conf")), b"a=1\n");
    assert_eq!(
        data_of(&bytes, find(&entries, "opt/t/bin/tool")),
        b"#!/bin/sh\necho hi\n"
    );
    let target = |name| find(&entries, name).symlink_target.as_deref();
    assert_eq!(target("bin/sh"), Some("busybox"));
    assert_eq!(target("opt/t/bin/alias"), Some("tool"));
    assert_eq!(target("opt/t/dangling"), Some("/does/not/exist"));
    let numbers = |name| {
        let e = find(&entries, name);
        (e.rdev_major, e.rdev_minor)
    };
    assert_eq!(numbers("dev/vda"), (254, 0));
    assert_eq!(numbers("dev/null"), (1, 3));
    // chrootvm reads the resources back from the same archive.
    assert_eq!(rsc::read_from_entries(&entries), resources);
}

#[test]
fn the_same_manifest_gives_the_same_bytes() {
    let tmp = TempDir::new("repro");
    let main = sample(&tmp);
    let build = || {
        let directives: Vec<Directive> = manifest::load(&main)
            .unwrap()
            .into_iter()
            .map(|(directive, _)| directive)
            .collect();
        let mut image = Image::new(0);
        content::apply(&mut image, &directives).unwrap();
        pack(&image)
    };
    assert_eq!(build(), build());
}

#[test]
fn command_line_values_and_manifest_lines_agree() {
    let text = "file a /x:y\ntree d /t\ndir /m 700\nsymlink /l ../t\nnod /n c 5 1 620\n";
    let from_manifest: Vec<Directive> = manifest::parse(text, Path::new("m"))
        .unwrap()
        .into_iter()
        .map(|(item, _)| match item {
            manifest::Item::Directive(d) => d,
            other => panic!("{other:?}"),
        })
        .collect();
    let from_options = [
        content::parse_file_spec("a:/x:y").unwrap(),
        content::parse_tree_spec("d:/t").unwrap(),
        content::parse_dir_spec("/m:700").unwrap(),
        content::parse_symlink_spec("/l:../t").unwrap(),
        content::parse_nod_spec("/n:c:5:1:620").unwrap(),
    ];
    assert_eq!(from_manifest, from_options);
}

#[test]
fn destinations_never_leave_the_image() {
    for value in ["src:../etc/passwd", "src:/a/../../b", "src:a/..", "src:.."] {
        let err = content::parse_file_spec(value).unwrap_err();
        assert!(
            err.to_string().contains("the path has a \"..\" component"),
            "{value}: {err}"
        );
    }
    assert!(content::parse_tree_spec("d:/../x").is_err());
    assert!(content::parse_dir_spec("../x").is_err());
    assert!(content::parse_symlink_spec("../x:y").is_err());
    assert!(content::parse_nod_spec("/dev/../../x:c:1:3").is_err());
    let err = manifest::parse("file a /../../etc/shadow\n", Path::new("m")).unwrap_err();
    assert!(matches!(err, Error::ParseManifest { .. }), "{err}");
    // A default destination is the source's absolute host path: always
    // inside the image, '..' resolved on the host.
    let tmp = TempDir::new("dotdot");
    tmp.write("a/f", b"f");
    fs::create_dir(tmp.path().join("b")).unwrap();
    let mut image = Image::new(0);
    content::apply(
        &mut image,
        &[Directive::File {
            src: tmp.path().join("b/../a/f"),
            dst: None,
            optional: false,
        }],
    )
    .unwrap();
    let expected = fs::canonicalize(tmp.path()).unwrap().join("a/f");
    let names: Vec<String> = read_archive(&pack(&image))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names.last().map(String::as_str),
        expected.to_str().map(|p| p.trim_start_matches('/'))
    );
}
