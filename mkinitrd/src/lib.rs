//! The initramfs packer: plans an image as data ([`image::Image`]) holding
//! the static `init`, the kernel modules it needs in load order
//! ([`kmod::ModuleTree`]) and the base layout, then writes it as one newc
//! archive ([`cpio::Writer`]) with no staging directory. The `mkinitrd`
//! binary is a thin command line over this; chrootvm calls it in-process.
//!
//! The library never prints: every failure is an [`Error`] whose
//! `Display` is one line for the caller to print. It keeps no global state
//! but one: the names of temporary output files to remove if a signal ends
//! the process, which the thread that acts on the signal shares with the
//! writer (`signal_cleanup`).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod content;
pub mod cpio;
pub mod dangling;
pub mod decompress;
pub mod elf;
pub mod error;
pub mod firmware;
pub mod glob;
pub mod image;
pub mod init_binary;
pub mod kernel;
pub mod kmod;
pub mod ldso;
pub mod list;
pub mod lz4;
pub mod manifest;
pub mod output;
pub mod programs;
pub mod request;
pub mod rsc;
mod signal_cleanup;
pub mod signal_disposition;
pub mod sink;
pub mod write;

#[cfg(test)]
mod testutil;

pub use error::Error;
