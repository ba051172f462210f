//! The newc reader on arbitrary bytes: whole, and fed in two chunks split
//! where the input says, which must agree.
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
    if let (Ok(n), Ok(())) = (&whole, &fed) {
        assert_eq!(*n, count, "chunked and whole reads disagree");
    }
});
