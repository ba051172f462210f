//! modules.alias, modules.softdep and modules.weakdep parsing, alias
//! pattern matching, and the .modinfo reader: never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mkinitrd::firmware::modinfo_values;
use mkinitrd::glob::{fnmatch, fnmatch_name};
use mkinitrd::kmod::{parse_alias, parse_softdep, parse_weakdep};

fuzz_target!(|data: &[u8]| {
    let _ = modinfo_values(data, "firmware");
    let text = String::from_utf8_lossy(data);
    let _ = parse_alias(&text);
    let _ = parse_softdep(&text);
    let _ = parse_weakdep(&text);
    if let Some((pattern, subject)) = text.split_once('\n') {
        let _ = fnmatch(pattern, subject);
        let _ = fnmatch_name(pattern, subject);
    }
});
