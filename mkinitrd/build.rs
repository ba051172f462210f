//! Builds init, the static PID 1 (its own workspace in ../init), and leaves
//! it in OUT_DIR for src/init_binary.rs to carry: mkinitrd and chrootvm
//! then work alone, as `cargo install --path` leaves them (issue 18).
//!
//! A cargo inside a build script, because init cannot be a dependency:
//! cargo builds dependencies as libraries, for the host's features, and
//! init is a no_std binary whose rustix must not have `std` (issue 15).
//! The build is the one `make` runs, so the bytes are the same: init's own
//! workspace, profile and lock file, `--release`, none of the flags meant
//! for the host programs.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{self, Command, Stdio};

/// What cargo tells a build script about the package it builds (the Cargo
/// book, "Environment variables Cargo sets for build scripts"). They are
/// about mkinitrd, not init, and cargo sets only those of the package it
/// builds: a stray `CARGO_FEATURE_USE_LIBC` or `CARGO_CFG_RUSTIX_USE_LIBC`
/// would switch rustix's own build script (which reads them) to libc.
const BUILD_SCRIPT_VARS: &[&str] = &[
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTC_LINKER",
];
/// Prefixes of the same, one variable per feature, cfg, package field or
/// `links` key.
const BUILD_SCRIPT_PREFIXES: &[&str] = &[
    "CARGO_FEATURE_",
    "CARGO_CFG_",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_PRIMARY_",
    "DEP_",
];
/// Flags for the host programs, not for init: init runs on the guest's
/// CPU (`-C target-cpu=native` would not do under TCG), links with its own
/// arguments (init/build.rs), and must not carry a fuzzer's sanitizers. The
/// target directory is ours (below), and a wrapper such as clippy-driver
/// is for the outer build. `make` leaves the same out.
const HOST_FLAG_VARS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
];

fn main() {
    let here = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let init_dir = here.join("../init");
    let manifest = init_dir.join("Cargo.toml");
    if !manifest.is_file() {
        fail(&format!(
            "cannot build init: {} is missing (mkinitrd builds from the chrootvm \
             source tree, with init/ beside mkinitrd/)",
            manifest.display()
        ));
    }
    // Directories are scanned whole; init's own target/ is not looked at.
    for input in ["src", "build.rs", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", init_dir.join(input).display());
    }

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let target = env::var("TARGET").expect("cargo sets it");
    let host = env::var("HOST").expect("cargo sets it");
    let target_dir = out.join("init-target");
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    // Only when cross-compiling: --target changes the output's path and
    // nothing else, but `make` never passes it.
    let built = if target == host {
        target_dir.join("release/init")
    } else {
        cargo.args(["--target", &target]);
        target_dir.join(&target).join("release/init")
    };
    for (name, _) in env::vars_os() {
        if is_for_outer_build(&name) {
            cargo.env_remove(&name);
        }
    }
    // cargo prints nothing on stdout, and what a build script prints there
    // is read as instructions: keep the two apart.
    cargo.stdout(Stdio::null());
    match cargo.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!(
            "cannot build init: `cargo build --release --locked --manifest-path {}` {status} \
             (its errors are above; if init/Cargo.lock is out of date, run make)",
            manifest.display()
        )),
        Err(e) => fail(&format!("cannot build init: cannot run cargo: {e}")),
    }
    copy(&built, &out.join("init"));
}

/// Whether `name` is a variable of the outer build that init's must not
/// see ([`BUILD_SCRIPT_VARS`], [`BUILD_SCRIPT_PREFIXES`],
/// [`HOST_FLAG_VARS`]).
fn is_for_outer_build(name: &OsString) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    BUILD_SCRIPT_VARS.contains(&name)
        || HOST_FLAG_VARS.contains(&name)
        || BUILD_SCRIPT_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Copies the built init where src/init_binary.rs includes it from.
fn copy(from: &Path, to: &Path) {
    if let Err(e) = fs::copy(from, to) {
        fail(&format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        ));
    }
}

/// Prints the error line and fails the build.
fn fail(message: &str) -> ! {
    eprintln!("mkinitrd: {message}");
    process::exit(1);
}
