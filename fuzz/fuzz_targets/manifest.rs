//! The --manifest parser on arbitrary text: every line is accepted or
//! refused with its location, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mkinitrd::manifest::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(items) = parse(text, Path::new("/m/manifest")) {
            for (_, location) in items {
                assert!(location.line >= 1 && location.line <= text.lines().count());
            }
        }
    }
});
