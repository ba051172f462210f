//! modules.dep and modules.builtin parsing, then resolving a name from the
//! input: never a panic, a hang or a stack overflow.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mkinitrd::kmod::ModuleTree;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (dep, builtin) = text.split_once('\u{0}').unwrap_or((&text, ""));
    if let Ok(tree) = ModuleTree::parse(Path::new("/m"), dep, builtin) {
        let name = dep
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .find(|w| !w.is_empty());
        if let Some(name) = name {
            let _ = tree.resolve(&[name]);
        }
    }
});
