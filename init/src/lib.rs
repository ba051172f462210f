//! The pure parts of init, the PID 1 of an initramfs: the kernel command
//! line parser, the boot plan as tables, errno text and the fixed-size
//! buffers that replace an allocator. No I/O happens here, so `cargo test`
//! runs all of it on the host; the binary (main.rs) executes it.
//!
//! `no_std` except under test (as memchr is) and for the host side's
//! `std` feature, which chrootvm uses to write run specs.

#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod buf;
pub mod cmdline;
pub mod errno;
pub mod names;
pub mod net;
pub mod plan;
pub mod rapido;
pub mod runspec;
pub mod status;
