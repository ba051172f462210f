//! A sorted list of file names read from a directory, in fixed storage.
//! init loads `/usr/lib/modules/*.ko` in byte order of name (SPEC §3.3);
//! readdir order on ramfs is not that order, so names are collected here
//! and heap-sorted: `core`'s slice sort would add 7 KB to a 50 KB init.

/// File names stored back to back in `BYTES` bytes, at most `COUNT` of them.
pub struct Names<const BYTES: usize, const COUNT: usize> {
    bytes: [u8; BYTES],
    used: usize,
    spans: [(u32, u32); COUNT],
    count: usize,
}

/// The list is full: more names than fit were offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl<const BYTES: usize, const COUNT: usize> Names<BYTES, COUNT> {
    /// An empty list.
    pub const fn new() -> Self {
        Names {
            bytes: [0; BYTES],
            used: 0,
            spans: [(0, 0); COUNT],
            count: 0,
        }
    }

    /// Adds a name.
    ///
    /// # Errors
    /// [`Full`] when the name or the entry does not fit.
    pub fn push(&mut self, name: &[u8]) -> Result<(), Full> {
        let end = self.used + name.len();
        if end > BYTES || self.count == COUNT {
            return Err(Full);
        }
        self.bytes[self.used..end].copy_from_slice(name);
        let start = u32::try_from(self.used).map_err(|_| Full)?;
        let len = u32::try_from(name.len()).map_err(|_| Full)?;
        self.spans[self.count] = (start, len);
        self.used = end;
        self.count += 1;
        Ok(())
    }

    /// Sorts the names in byte order.
    pub fn sort(&mut self) {
        let bytes = &self.bytes;
        heapsort(&mut self.spans[..self.count], |a, b| {
            span(bytes, *a) < span(bytes, *b)
        });
    }

    /// The names, in insertion order or, after [`Names::sort`], byte order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.spans[..self.count]
            .iter()
            .map(|s| span(&self.bytes, *s))
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl<const BYTES: usize, const COUNT: usize> Default for Names<BYTES, COUNT> {
    fn default() -> Self {
        Self::new()
    }
}

/// In-place heapsort: O(n log n), no allocation, a few hundred bytes of code.
fn heapsort<T>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
    let len = v.len();
    for root in (0..len / 2).rev() {
        sift_down(v, root, len, &less);
    }
    for end in (1..len).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, &less);
    }
}

/// Moves `v[root]` down the max-heap held in `v[..end]`.
fn sift_down<T>(v: &mut [T], mut root: usize, end: usize, less: &impl Fn(&T, &T) -> bool) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(&v[child], &v[child + 1]) {
            child += 1;
        }
        if !less(&v[root], &v[child]) {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

fn span(bytes: &[u8], (start, len): (u32, u32)) -> &[u8] {
    let start = start as usize;
    &bytes[start..start + len as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_bytes() {
        let mut names = Names::<64, 8>::new();
        for name in ["010-b.ko", "002-z.ko", "001-a.ko", "010-a.ko"] {
            names.push(name.as_bytes()).unwrap();
        }
        names.sort();
        let sorted: Vec<_> = names.iter().collect();
        assert_eq!(
            sorted,
            [&b"001-a.ko"[..], b"002-z.ko", b"010-a.ko", b"010-b.ko"]
        );
    }

    #[test]
    fn heapsort_matches_std_sort() {
        // A naive reference: std's sort over pseudo-random module names.
        let mut seed = 0x2545_f491_u32;
        for len in 0..200 {
            let mut names = Names::<8192, 256>::new();
            let mut expected = Vec::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let name = format!("{:03}-m{}.ko", seed % 50, seed % 7);
                names.push(name.as_bytes()).unwrap();
                expected.push(name.into_bytes());
            }
            names.sort();
            expected.sort();
            let sorted: Vec<_> = names.iter().map(<[u8]>::to_vec).collect();
            assert_eq!(sorted, expected);
        }
    }

    #[test]
    fn full_by_bytes_or_count() {
        let mut names = Names::<8, 2>::new();
        assert_eq!(names.push(b"12345"), Ok(()));
        assert_eq!(names.push(b"6789"), Err(Full));
        assert_eq!(names.push(b"678"), Ok(()));
        assert_eq!(names.push(b""), Err(Full));
        assert_eq!(names.len(), 2);
    }
}
