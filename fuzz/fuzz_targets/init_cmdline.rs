//! init's kernel command line parser (issue 5): quotes, unterminated
//! quotes, long lines, NULs, repeated keys. Never a panic; every value
//! borrows from the input; the rapido checks accept or refuse.
#![no_main]

use init::cmdline::Cmdline;
use init::rapido;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = Cmdline::parse(data);
    let _ = line.root();
    let _ = line.root_read_only();
    for share in line.shares() {
        assert!(!share.tag.is_empty());
    }
    let mut buf = [0; rapido::UTS_MAX * 2];
    if let Ok(Some(names)) = rapido::names(line.hostname, line.vm_num, &mut buf) {
        assert!(names.host.len() <= rapido::UTS_MAX);
    }
    if let Some(stty) = line.stty {
        let _ = rapido::stty(stty);
    }
    for mac in line.macs() {
        let _ = rapido::mac(mac.interface, mac.mac);
    }
});
