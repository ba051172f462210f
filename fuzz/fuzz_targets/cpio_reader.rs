//! The newc reader on arbitrary bytes: whole, and fed in two chunks split
//! where the input says, which must agree on success and on the count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mkinitrd::cpio::{Reader, read_archive};

fuzz_target!(|data: &[u8]| {
    let whole = read_archive(data).map(|entries| entries.len());
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) * data.len() / 256);
    let mut reader = Reader::new();
    let mut count = 0;
    let fed = reader
        .feed(&data[..split], |_| count += 1)
        .and_then(|()| reader.feed(&data[split..], |_| count += 1))
        .and_then(|()| reader.finish());
    // Where the input is cut must not change the verdict, nor the count.
    assert_eq!(
        whole.is_ok(),
        fed.is_ok(),
        "one read failed, the other did not"
    );
    if let Ok(n) = whole {
        assert_eq!(n, count, "chunked and whole reads disagree");
    }
});
