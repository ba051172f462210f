//! Link init as a static, non-PIE executable with its own `_start` (rt.rs)
//! and no C runtime: it is PID 1 in an initramfs that holds no libc.
//! Here rather than in the Makefile, so `cargo build --release` and `make`
//! produce the same binary.

use std::path::PathBuf;

/// Unwind tables are dead weight with `panic = "abort"` (nothing unwinds,
/// and init prints no backtraces): 7 KB of a 58 KB binary. The script is
/// inserted into the linker's default layout, only discarding them.
const DISCARD_UNWIND_TABLES: &str = "\
SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) } } INSERT AFTER .text;
";

fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = out.join("discard-unwind-tables.ld");
    std::fs::write(&script, DISCARD_UNWIND_TABLES).expect("cannot write the linker script");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
    // RELRO pads the read-only-after-relocation segment to a page in the
    // file (1.3 KB here) to protect a GOT that a static init with no
    // dynamic linker never writes: no protection to lose.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,norelro");
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
