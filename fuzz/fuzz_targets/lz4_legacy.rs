//! The kernel-format LZ4 reader and the segment reader behind --list (and
//! chrootvm --initrd): hostile sizes, truncations and mixed segments are
//! refused with an offset, never a panic or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mkinitrd::list::read_image;
use mkinitrd::lz4::decompress_legacy;

fuzz_target!(|data: &[u8]| {
    let _ = decompress_legacy(data);
    let _ = read_image(data);
});
