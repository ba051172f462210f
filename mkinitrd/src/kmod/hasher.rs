//! The hasher of the module name and path maps ([`FastHash`]).

use std::hash::{BuildHasherDefault, Hasher};

/// The hasher of the module name and path maps: FxHash, rustc's, which
/// costs a multiply per 8 bytes where std's SipHash-1-3 costs several
/// rounds. It does not resist chosen collisions, which only a hostile
/// module tree could bring, at the cost of a slow run.
pub(super) type FastHash = BuildHasherDefault<FxHasher>;

/// See [`FastHash`].
#[derive(Default)]
pub(super) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        let mut add = |word: u64| self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            add(u64::from_le_bytes(word));
        }
        for &byte in chunks.remainder() {
            add(u64::from(byte));
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
