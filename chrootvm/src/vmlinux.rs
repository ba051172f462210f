//! The uncompressed kernel for a PVH boot (issue 17). qemu boots an ELF
//! `vmlinux` that has the PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) by
//! jumping straight to the kernel in 32-bit mode: no real-mode setup, no
//! decompressor. Distributions ship only the bzImage, whose payload is
//! that ELF, compressed (Documentation/arch/x86/boot.rst, `payload_offset`
//! and `payload_length`). It is unpacked once and kept in the user's cache
//! directory, under a name made of the image's path, size and mtime, so a
//! kernel update makes a new one. Nothing is kept in memory.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mkinitrd::kmod::Compression;

/// Why a kernel cannot boot through PVH; the VM then boots the bzImage.
#[derive(Debug, PartialEq, Eq)]
pub struct NoPvh(pub String);

/// The x86 boot protocol's setup header (Documentation/arch/x86/boot.rst).
const SETUP_SECTS: usize = 0x1f1;
const HDRS_OFFSET: usize = 0x202;
const PROTOCOL_VERSION: usize = 0x206;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
/// `payload_offset` and `payload_length` exist from protocol 2.08 on.
const PAYLOAD_PROTOCOL: u16 = 0x208;

/// The ELF note the kernel's PVH entry is announced by
/// (xen/include/public/elfnote.h): owner "Xen", type 18.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const ELF_MAGIC: &[u8] = b"\x7fELF";
/// Program header type of a note segment.
const PT_NOTE: u32 = 4;

/// Magics of the kernel's payload compressions we can unpack.
const LZ4_LEGACY_MAGIC: &[u8] = &[0x02, 0x21, 0x4c, 0x18];
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Largest vmlinux accepted: Debian's is about 50 MiB.
const MAX_VMLINUX: usize = 512 << 20;

/// The PVH-bootable ELF for `image`: the image itself when it is one, else
/// its payload, unpacked into `cache` (once per image path, size and mtime).
///
/// # Errors
/// [`NoPvh`] saying why not: not a bzImage or ELF, a compression we cannot
/// unpack, no PVH note, or the cache cannot be written.
pub fn pvh_image(image: &Path, cache: Option<&Path>) -> Result<PathBuf, NoPvh> {
    let unreadable = |e: io::Error| NoPvh(format!("cannot read it: {e}"));
    let mut head = [0u8; 4];
    let mut file = fs::File::open(image).map_err(unreadable)?;
    file.read_exact(&mut head).map_err(unreadable)?;
    if head == ELF_MAGIC {
        let data = fs::read(image).map_err(unreadable)?;
        return if has_pvh_note(&data) {
            Ok(image.to_path_buf())
        } else {
            Err(NoPvh("the ELF kernel has no PVH entry note".into()))
        };
    }
    let cache = cache.ok_or_else(|| NoPvh("no cache directory ($HOME unset)".into()))?;
    let meta = file.metadata().map_err(unreadable)?;
    let path = cache.join(cache_name(
        image,
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    ));
    if path.is_file() {
        return Ok(path);
    }
    let vmlinux = unpack_payload(&fs::read(image).map_err(unreadable)?)?;
    if !has_pvh_note(&vmlinux) {
        return Err(NoPvh(
            "the kernel has no PVH entry note (CONFIG_PVH)".into(),
        ));
    }
    store(&path, &vmlinux).map_err(|e| NoPvh(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// `$XDG_CACHE_HOME/chrootvm`, else `$HOME/.cache/chrootvm`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("chrootvm"))
}

/// `vmlinux-<hash>`: FNV-1a of the image's path, size and mtime.
fn cache_name(image: &Path, size: u64, mtime: i64, mtime_nsec: i64) -> String {
    use std::os::unix::ffi::OsStrExt;
    let absolute = image.canonicalize().unwrap_or_else(|_| image.to_path_buf());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let key = [
        absolute.as_os_str().as_bytes(),
        &size.to_le_bytes(),
        &mtime.to_le_bytes(),
        &mtime_nsec.to_le_bytes(),
    ];
    for byte in key.iter().flat_map(|part| part.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("vmlinux-{hash:016x}")
}

/// Writes `data` to `path` through a temporary file and a rename, so a
/// concurrent run never reads half a kernel.
fn store(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".vmlinux.{}.tmp", std::process::id()));
    let result = fs::File::create(&temp)
        .and_then(|mut file| file.write_all(data))
        .and_then(|()| fs::rename(&temp, path));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// The bzImage's payload, unpacked.
fn unpack_payload(image: &[u8]) -> Result<Vec<u8>, NoPvh> {
    let payload = payload(image).ok_or_else(|| NoPvh("not an x86 bzImage".into()))?;
    // The kernel's build appends the unpacked size (size_append), 4 bytes
    // little-endian, to every compressed payload.
    let (compressed, size) = payload.split_at(payload.len().saturating_sub(4));
    let size = u32_at(size, 0)
        .and_then(|s| usize::try_from(s).ok())
        .unwrap_or(0);
    if size > MAX_VMLINUX {
        return Err(NoPvh(format!("its payload claims {size} bytes")));
    }
    let unpacked = if compressed.starts_with(LZ4_LEGACY_MAGIC) {
        unlz4(compressed)?
    } else {
        let compression = [
            (GZIP_MAGIC, Compression::Gzip),
            (XZ_MAGIC, Compression::Xz),
            (ZSTD_MAGIC, Compression::Zstd),
        ]
        .into_iter()
        .find(|(magic, _)| compressed.starts_with(magic))
        .map(|(_, compression)| compression)
        .ok_or_else(|| NoPvh("its payload's compression is not lz4, gzip, xz or zstd".into()))?;
        mkinitrd::decompress::decompress_limited(compression, compressed, MAX_VMLINUX)
            .map_err(|e| NoPvh(format!("cannot unpack its payload: {e}")))?
    };
    if unpacked.len() != size || !unpacked.starts_with(ELF_MAGIC) {
        return Err(NoPvh("its payload does not unpack to an ELF kernel".into()));
    }
    Ok(unpacked)
}

/// The compressed payload of a bzImage, from its setup header.
fn payload(image: &[u8]) -> Option<&[u8]> {
    if image.get(HDRS_OFFSET..HDRS_OFFSET + 4)? != b"HdrS"
        || u16_at(image, PROTOCOL_VERSION)? < PAYLOAD_PROTOCOL
    {
        return None;
    }
    // 0 setup sectors means 4 (boot.rst); the boot sector comes first.
    let sects = match *image.get(SETUP_SECTS)? {
        0 => 4,
        n => usize::from(n),
    };
    let start = (sects + 1) * 512 + usize::try_from(u32_at(image, PAYLOAD_OFFSET)?).ok()?;
    let length = usize::try_from(u32_at(image, PAYLOAD_LENGTH)?).ok()?;
    image.get(start..start.checked_add(length)?)
}

/// The kernel's legacy LZ4 (`lz4 -l`), with mkinitrd's decoder.
fn unlz4(data: &[u8]) -> Result<Vec<u8>, NoPvh> {
    let mut decoder = mkinitrd::lz4::Decoder::new(0);
    let mut out = Vec::new();
    decoder
        .feed(data, &mut |_, block| {
            out.extend_from_slice(block);
            Ok(())
        })
        .and_then(|_| decoder.finish())
        .map_err(|e| NoPvh(format!("cannot unpack its payload: {e}")))?;
    Ok(out)
}

/// Whether a 64-bit little-endian ELF has the PVH entry note in a note
/// segment.
fn has_pvh_note(elf: &[u8]) -> bool {
    let Some(phoff) = u64_at(elf, 0x20).and_then(|v| usize::try_from(v).ok()) else {
        return false;
    };
    let (Some(phentsize), Some(phnum)) = (u16_at(elf, 0x36), u16_at(elf, 0x38)) else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        let header = phoff + i * usize::from(phentsize);
        let segment = || {
            if u32_at(elf, header)? != PT_NOTE {
                return None;
            }
            let offset = usize::try_from(u64_at(elf, header + 8)?).ok()?;
            let size = usize::try_from(u64_at(elf, header + 32)?).ok()?;
            elf.get(offset..offset.checked_add(size)?)
        };
        segment().is_some_and(notes_have_pvh)
    })
}

/// Walks the notes of one segment: namesz, descsz, type, then the name
/// and the descriptor, each padded to 4 bytes.
fn notes_have_pvh(mut notes: &[u8]) -> bool {
    let pad = |n: usize| n.div_ceil(4) * 4;
    while let (Some(namesz), Some(descsz), Some(kind)) =
        (u32_at(notes, 0), u32_at(notes, 4), u32_at(notes, 8))
    {
        let (Ok(namesz), Ok(descsz)) = (usize::try_from(namesz), usize::try_from(descsz)) else {
            return false;
        };
        let name = notes.get(12..12 + namesz).unwrap_or_default();
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && name == b"Xen\0" {
            return true;
        }
        let next = 12 + pad(namesz) + pad(descsz);
        match notes.get(next..) {
            Some(rest) if next > 12 => notes = rest,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tempdir::TempDir;

    /// A 64-bit ELF with one note segment holding `notes`.
    fn elf_with_notes(notes: &[u8]) -> Vec<u8> {
        let mut elf = vec![0u8; 0x40 + 56];
        elf[..4].copy_from_slice(ELF_MAGIC);
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let offset = elf.len() as u64;
        elf[0x40..0x44].copy_from_slice(&PT_NOTE.to_le_bytes());
        elf[0x48..0x50].copy_from_slice(&offset.to_le_bytes());
        elf[0x60..0x68].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        elf.extend_from_slice(notes);
        elf
    }

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(name.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(desc.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(name);
        out.resize(out.len().div_ceil(4) * 4, 0);
        out.extend_from_slice(desc);
        out.resize(out.len().div_ceil(4) * 4, 0);
        out
    }

    #[test]
    fn finds_the_pvh_note_among_others() {
        let mut notes = note(b"GNU\0", 3, &[1; 20]);
        notes.extend(note(b"Xen\0", 6, b"linux\0"));
        assert!(!has_pvh_note(&elf_with_notes(&notes)));
        notes.extend(note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 8]));
        assert!(has_pvh_note(&elf_with_notes(&notes)));
        assert!(!has_pvh_note(b"\x7fELF"));
    }

    /// A fake bzImage whose payload is `payload` plus the size trailer.
    fn bzimage(compressed: &[u8], size: u32) -> Vec<u8> {
        let mut image = vec![0u8; 0x1000];
        image[SETUP_SECTS] = 1;
        image[HDRS_OFFSET..HDRS_OFFSET + 4].copy_from_slice(b"HdrS");
        image[PROTOCOL_VERSION..PROTOCOL_VERSION + 2].copy_from_slice(&0x20fu16.to_le_bytes());
        let mut payload = compressed.to_vec();
        payload.extend_from_slice(&size.to_le_bytes());
        image[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&0x10u32.to_le_bytes());
        image[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4]
            .copy_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
        image.truncate(1024 + 0x10);
        image.extend_from_slice(&payload);
        image
    }

    #[test]
    fn unpacks_an_lz4_payload_once_into_the_cache() {
        let elf = elf_with_notes(&note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 8]));
        let compressed =
            mkinitrd::lz4::compress_legacy(&elf, &mkinitrd::lz4::Lz4Options::default());
        let tmp = TempDir::new("vmlinux");
        let image = tmp.path().join("vmlinuz");
        fs::write(
            &image,
            bzimage(&compressed, u32::try_from(elf.len()).unwrap()),
        )
        .unwrap();
        let cache = tmp.path().join("cache");
        let vmlinux = pvh_image(&image, Some(&cache)).unwrap();
        assert!(vmlinux.starts_with(&cache));
        assert_eq!(fs::read(&vmlinux).unwrap(), elf);
        // The cached copy is used as it is.
        fs::write(&vmlinux, b"cached").unwrap();
        assert_eq!(pvh_image(&image, Some(&cache)).unwrap(), vmlinux);
        assert_eq!(fs::read(&vmlinux).unwrap(), b"cached");
    }

    #[test]
    fn says_why_a_kernel_cannot_boot_through_pvh() {
        let tmp = TempDir::new("vmlinux-no");
        let cache = tmp.path().join("cache");
        let plain = elf_with_notes(&note(b"GNU\0", 3, &[0; 4]));
        let compressed =
            mkinitrd::lz4::compress_legacy(&plain, &mkinitrd::lz4::Lz4Options::default());
        let image = tmp.path().join("vmlinuz");
        fs::write(
            &image,
            bzimage(&compressed, u32::try_from(plain.len()).unwrap()),
        )
        .unwrap();
        let why = pvh_image(&image, Some(&cache)).unwrap_err().0;
        assert!(why.contains("no PVH entry note"), "{why}");
        fs::write(&image, bzimage(b"BZh91AY", 7)).unwrap();
        let why = pvh_image(&image, Some(&cache)).unwrap_err().0;
        assert!(why.contains("not lz4, gzip, xz or zstd"), "{why}");
        fs::write(&image, b"MZ not a kernel").unwrap();
        assert_eq!(
            pvh_image(&image, Some(&cache)).unwrap_err().0,
            "not an x86 bzImage"
        );
    }

    #[test]
    fn the_real_kernel_boots_through_pvh() {
        let tmp = TempDir::new("vmlinux-real");
        let vmlinux = pvh_image(&::tests::kernel(), Some(tmp.path())).unwrap();
        assert!(fs::read(vmlinux).unwrap().starts_with(ELF_MAGIC));
    }
}
