//! The ELF header and dynamic-section reader behind `--bin`: hostile
//! program headers, string tables and offsets are refused, never a panic
//! or an allocation beyond the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mkinitrd::elf::parse_dynamic;

fuzz_target!(|data: &[u8]| {
    if let Ok(dynamic) = parse_dynamic(data) {
        for name in &dynamic.needed {
            assert!(name.len() <= data.len());
        }
    }
});
