//! Link init as a static, non-PIE executable with its own `_start` (rt.rs)
//! and no C runtime: it is PID 1 in an initramfs that holds no libc.
//! Here rather than in the Makefile, so `cargo build --release` and `make`
//! produce the same binary.

fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
