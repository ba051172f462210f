//! Resolves real host programs (`/usr/bin/bash`, `/bin/ls`, `/bin/mount`)
//! with sysroot `/`, then checks the items as the image would hold them:
//! the interpreter and every library `ldd` names must be reachable through
//! the packed symlinks, and `/bin` must stay a symlink where the host has it
//! as one (usr-merge).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mkinitrd::elf::parse_dynamic;
use mkinitrd::ldso::{HostItem, Resolver};

/// The programs of the issue.
const PROGRAMS: [&str; 3] = ["/usr/bin/bash", "/bin/ls", "/bin/mount"];

/// The items of `progs`, by image path.
fn resolve(progs: &[&str]) -> BTreeMap<String, HostItem> {
    let mut resolver = Resolver::new(Path::new("/")).unwrap();
    for prog in progs {
        resolver
            .add_program(prog)
            .unwrap_or_else(|e| panic!("{prog}: {e}"));
    }
    resolver
        .items()
        .into_iter()
        .map(|item| (item.path().to_owned(), item))
        .collect()
}

/// Follows absolute `path` through `items` as the kernel would in the
/// image, where directories not among the items exist only as parents:
/// the image path of the file it reaches, or `None`.
fn follow_in_image(items: &BTreeMap<String, HostItem>, path: &str) -> Option<String> {
    let mut real: Vec<String> = Vec::new();
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    for _ in 0..1000 {
        let Some(name) = todo.pop() else {
            let path = real.join("/");
            return matches!(items.get(&path), Some(HostItem::File { .. })).then_some(path);
        };
        match name.as_str() {
            "" | "." => continue,
            ".." => {
                real.pop();
                continue;
            }
            _ => {}
        }
        real.push(name);
        if let Some(HostItem::Symlink { target, .. }) = items.get(&real.join("/")) {
            real.pop();
            if target.starts_with('/') {
                real.clear();
            }
            todo.extend(target.split('/').rev().map(str::to_owned));
        }
    }
    None
}

/// The image path of a host path after resolving every symlink.
fn canonical(path: &Path) -> String {
    let real = fs::canonicalize(path).unwrap();
    real.to_str().unwrap().trim_start_matches('/').to_owned()
}

/// The library paths `ldd` prints for `prog` (`name => /path (addr)`).
fn ldd(prog: &str) -> Option<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(prog).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.split("=> ").nth(1))
            .filter_map(|rest| rest.split(' ').next())
            .filter(|path| path.starts_with('/'))
            .map(PathBuf::from)
            .collect(),
    )
}

#[test]
fn host_programs_resolve_like_ld_so() {
    let items = resolve(&PROGRAMS);
    for item in items.values() {
        if let HostItem::File { source, .. } = item {
            assert!(source.is_file(), "{}", source.display());
        }
    }
    for prog in PROGRAMS {
        let path = Path::new(prog);
        assert_eq!(
            follow_in_image(&items, prog),
            Some(canonical(path)),
            "{prog}"
        );

        // The interpreter, under its PT_INTERP path.
        let dynamic = parse_dynamic(&fs::read(path).unwrap()).unwrap();
        let interp = dynamic.interp.expect("a dynamic program");
        assert_eq!(
            follow_in_image(&items, &interp),
            Some(canonical(Path::new(&interp))),
            "{interp}"
        );
        if let Ok(target) = fs::read_link(&interp) {
            let link = items
                .values()
                .find(|item| matches!(item, HostItem::Symlink { target: t, .. } if Path::new(t) == target));
            assert!(link.is_some(), "no symlink to {}", target.display());
        }

        // Every library ld.so itself resolves.
        let libs = ldd(prog);
        if !tests::require(libs.is_some(), "ldd (libc-bin)") {
            continue;
        }
        let libs = libs.unwrap_or_default();
        assert!(!libs.is_empty(), "ldd found nothing for {prog}");
        for lib in libs {
            let lib = lib.to_str().unwrap();
            assert_eq!(
                follow_in_image(&items, lib),
                Some(canonical(Path::new(lib))),
                "{lib} of {prog}"
            );
        }
    }

    let libc = items
        .keys()
        .find(|path| path.ends_with("/libc.so.6"))
        .expect("libc.so.6");
    assert!(follow_in_image(&items, libc).is_some());
    assert!(items.contains_key(&canonical(Path::new(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    ))));
}

#[test]
fn symlinked_bin_stays_a_symlink() {
    let target = fs::read_link("/bin");
    if !tests::require(target.is_ok(), "a usr-merged /bin (Debian 12's layout)") {
        return;
    }
    let target = target.unwrap();
    let items = resolve(&["/bin/ls"]);
    assert_eq!(
        items.get("bin"),
        Some(&HostItem::Symlink {
            path: "bin".into(),
            target: target.to_str().unwrap().into(),
        })
    );
    assert!(!items.keys().any(|path| path.starts_with("bin/")));
}

#[test]
fn interpreter_symlink_and_target_are_both_packed() {
    let interp = "/lib64/ld-linux-x86-64.so.2";
    if !tests::require(Path::new(interp).exists(), interp) {
        return;
    }
    let items = resolve(&["/usr/bin/bash"]);
    let target = fs::read_link(interp).unwrap();
    // On a usr-merged host the link lives at usr/lib64/..., reached through
    // the lib64 -> usr/lib64 link.
    let link_dir = canonical(Path::new("/lib64"));
    let link_path = format!("{link_dir}/ld-linux-x86-64.so.2");
    assert_eq!(
        items.get(&link_path),
        Some(&HostItem::Symlink {
            path: link_path.clone(),
            target: target.to_str().unwrap().into(),
        })
    );
    let real = canonical(Path::new(interp));
    assert!(matches!(items.get(&real), Some(HostItem::File { .. })));
    if let Ok(lib64) = fs::read_link("/lib64") {
        assert_eq!(
            items.get("lib64"),
            Some(&HostItem::Symlink {
                path: "lib64".into(),
                target: lib64.to_str().unwrap().into(),
            })
        );
    }
}
