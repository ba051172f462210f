//! Just enough ELF (elf(5)) to tell a static executable from a dynamic one:
//! the file header and the program header table, ELF32 and ELF64, either
//! byte order. An executable with a `PT_INTERP` program header needs a
//! dynamic loader; our init has none. Reads at most the header and the
//! program header table, whose size is bounded before it is read.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The first four bytes of every ELF file.
pub const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// `e_ident[EI_CLASS]` of 32-bit files.
pub const ELFCLASS32: u8 = 1;
/// `e_ident[EI_CLASS]` of 64-bit files.
pub const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]` of little-endian files.
pub const ELFDATA2LSB: u8 = 1;
/// `e_ident[EI_DATA]` of big-endian files.
pub const ELFDATA2MSB: u8 = 2;
/// e_type of a fixed-address executable.
pub const ET_EXEC: u16 = 2;
/// e_type of a position-independent executable (static-pie) or library.
pub const ET_DYN: u16 = 3;
/// p_type of the program header naming the dynamic loader.
pub const PT_INTERP: u32 = 3;
/// Program header tables bigger than this are refused unread: real
/// executables have a few dozen entries of 56 bytes.
const MAX_PHDR_TABLE: u64 = 1 << 20;

/// 32 or 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// ELFCLASS32.
    Elf32,
    /// ELFCLASS64.
    Elf64,
}

/// Byte order of the file's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// ELFDATA2LSB.
    Little,
    /// ELFDATA2MSB.
    Big,
}

/// What the header and program headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// 32 or 64 bits.
    pub class: Class,
    /// Byte order.
    pub endian: Endian,
    /// e_type ([`ET_EXEC`], [`ET_DYN`], ...).
    pub e_type: u16,
    /// True when a [`PT_INTERP`] program header is present.
    pub has_interp: bool,
}

impl ElfInfo {
    /// An executable that runs without a dynamic loader.
    pub fn is_static_executable(&self) -> bool {
        matches!(self.e_type, ET_EXEC | ET_DYN) && !self.has_interp
    }
}

/// Reads the ELF header and program headers of `file`.
///
/// `Ok(None)` when it is not ELF or its headers are truncated or
/// implausible; `Err` only for I/O errors.
pub fn read_elf_info<R: Read + Seek>(file: &mut R) -> io::Result<Option<ElfInfo>> {
    let mut header = [0; 64];
    let len = read_up_to(file, &mut header)?;
    let header = &header[..len];
    if header.len() < 16 || &header[..4] != ELF_MAGIC {
        return Ok(None);
    }
    let class = match header[4] {
        ELFCLASS32 => Class::Elf32,
        ELFCLASS64 => Class::Elf64,
        _ => return Ok(None),
    };
    let endian = match header[5] {
        ELFDATA2LSB => Endian::Little,
        ELFDATA2MSB => Endian::Big,
        _ => return Ok(None),
    };
    // e_ehsize and the minimum e_phentsize of each class.
    let (header_len, min_phentsize) = match class {
        Class::Elf32 => (52, 32),
        Class::Elf64 => (64, 56),
    };
    if header.len() < header_len {
        return Ok(None);
    }
    let e_type = read_u16(header, 16, endian);
    let (phoff, phentsize, phnum) = match class {
        Class::Elf32 => (
            u64::from(read_u32(header, 28, endian)),
            read_u16(header, 42, endian),
            read_u16(header, 44, endian),
        ),
        Class::Elf64 => (
            read_u64(header, 32, endian),
            read_u16(header, 54, endian),
            read_u16(header, 56, endian),
        ),
    };
    let table_len = u64::from(phentsize) * u64::from(phnum);
    if phnum > 0 && phentsize < min_phentsize || table_len > MAX_PHDR_TABLE {
        return Ok(None);
    }
    let mut table = vec![0; usize::try_from(table_len).unwrap_or(0)];
    file.seek(SeekFrom::Start(phoff))?;
    if read_up_to(file, &mut table)? < table.len() {
        return Ok(None);
    }
    let has_interp = table
        .chunks_exact(usize::from(phentsize.max(1)))
        .any(|phdr| read_u32(phdr, 0, endian) == PT_INTERP);
    Ok(Some(ElfInfo {
        class,
        endian,
        e_type,
        has_interp,
    }))
}

/// True when `path` is a regular file holding a static ELF executable; any
/// error reading it counts as no.
pub fn is_static_executable(path: &Path) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    matches!(read_elf_info(&mut file), Ok(Some(info)) if info.is_static_executable())
}

/// Fills as much of `buf` as the input has; returns how much that is.
fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_u16(bytes: &[u8], at: usize, endian: Endian) -> u16 {
    let b = [bytes[at], bytes[at + 1]];
    match endian {
        Endian::Little => u16::from_le_bytes(b),
        Endian::Big => u16::from_be_bytes(b),
    }
}

fn read_u32(bytes: &[u8], at: usize, endian: Endian) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    match endian {
        Endian::Little => u32::from_le_bytes(b),
        Endian::Big => u32::from_be_bytes(b),
    }
}

fn read_u64(bytes: &[u8], at: usize, endian: Endian) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    match endian {
        Endian::Little => u64::from_le_bytes(b),
        Endian::Big => u64::from_be_bytes(b),
    }
}

/// Builds ELF files with given program header types, for tests here and in
/// kernel.rs.
#[cfg(test)]
pub(crate) fn make_elf(class: Class, endian: Endian, e_type: u16, phdr_types: &[u32]) -> Vec<u8> {
    let (header_len, phentsize): (usize, usize) = match class {
        Class::Elf32 => (52, 32),
        Class::Elf64 => (64, 56),
    };
    let put16 = |v: u16| match endian {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    };
    let put32 = |v: u32| match endian {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    };
    let mut elf = vec![0; header_len + phentsize * phdr_types.len()];
    elf[..4].copy_from_slice(ELF_MAGIC);
    elf[4] = match class {
        Class::Elf32 => ELFCLASS32,
        Class::Elf64 => ELFCLASS64,
    };
    elf[5] = match endian {
        Endian::Little => ELFDATA2LSB,
        Endian::Big => ELFDATA2MSB,
    };
    elf[6] = 1; // EI_VERSION
    elf[16..18].copy_from_slice(&put16(e_type));
    let count = u16::try_from(phdr_types.len()).unwrap();
    let entsize = u16::try_from(phentsize).unwrap();
    let offset = u32::try_from(header_len).unwrap();
    match class {
        Class::Elf32 => {
            elf[28..32].copy_from_slice(&put32(offset));
            elf[42..44].copy_from_slice(&put16(entsize));
            elf[44..46].copy_from_slice(&put16(count));
        }
        Class::Elf64 => {
            let offset = match endian {
                Endian::Little => u64::from(offset).to_le_bytes(),
                Endian::Big => u64::from(offset).to_be_bytes(),
            };
            elf[32..40].copy_from_slice(&offset);
            elf[54..56].copy_from_slice(&put16(entsize));
            elf[56..58].copy_from_slice(&put16(count));
        }
    }
    for (i, &p_type) in phdr_types.iter().enumerate() {
        let at = header_len + i * phentsize;
        elf[at..at + 4].copy_from_slice(&put32(p_type));
    }
    elf
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// PT_LOAD, PT_NOTE, PT_GNU_STACK: what a static binary has.
    const STATIC: [u32; 3] = [1, 4, 0x6474_e551];
    /// PT_PHDR, PT_INTERP, PT_LOAD, PT_DYNAMIC: what a dynamic one has.
    const DYNAMIC: [u32; 4] = [6, PT_INTERP, 1, 2];

    fn info(bytes: &[u8]) -> Option<ElfInfo> {
        read_elf_info(&mut Cursor::new(bytes)).unwrap()
    }

    #[test]
    fn every_class_and_byte_order() {
        for class in [Class::Elf32, Class::Elf64] {
            for endian in [Endian::Little, Endian::Big] {
                let stat = info(&make_elf(class, endian, ET_EXEC, &STATIC)).unwrap();
                assert_eq!((stat.class, stat.endian), (class, endian));
                assert!(stat.is_static_executable(), "{class:?} {endian:?}");
                let dynamic = info(&make_elf(class, endian, ET_DYN, &DYNAMIC)).unwrap();
                assert!(dynamic.has_interp);
                assert!(!dynamic.is_static_executable(), "{class:?} {endian:?}");
            }
        }
    }

    #[test]
    fn static_pie_counts_as_static_but_objects_do_not() {
        let pie = info(&make_elf(Class::Elf64, Endian::Little, ET_DYN, &STATIC)).unwrap();
        assert!(pie.is_static_executable());
        // ET_REL: a .o or .ko file.
        let object = info(&make_elf(Class::Elf64, Endian::Little, 1, &[])).unwrap();
        assert!(!object.is_static_executable());
    }

    #[test]
    fn non_elf_and_truncated_files_are_not_elf() {
        assert_eq!(info(b"#!/bin/sh\nexec /bin/busybox sh\n"), None);
        assert_eq!(info(b""), None);
        let elf = make_elf(Class::Elf64, Endian::Little, ET_EXEC, &DYNAMIC);
        assert_eq!(info(&elf[..40]), None);
        assert_eq!(info(&elf[..elf.len() - 1]), None);
        let mut bad_class = elf.clone();
        bad_class[4] = 3;
        assert_eq!(info(&bad_class), None);
    }

    #[test]
    fn hostile_program_header_fields_are_refused() {
        let mut elf = make_elf(Class::Elf64, Endian::Little, ET_EXEC, &STATIC);
        // e_phentsize below the size of an ELF64 program header.
        elf[54..56].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(info(&elf), None);
        // A huge table is not read.
        elf[54..56].copy_from_slice(&u16::MAX.to_le_bytes());
        elf[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(info(&elf), None);
        // A table past the end of the file.
        let mut far = make_elf(Class::Elf64, Endian::Little, ET_EXEC, &STATIC);
        far[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            read_elf_info(&mut Cursor::new(&far)),
            Ok(None) | Err(_)
        ));
    }

    #[test]
    fn real_busybox_is_static_when_present() {
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            println!("note: skipped, {} is not installed", busybox.display());
            return;
        }
        // Debian's busybox package is dynamic, busybox-static is static:
        // only check that reading it works.
        let info = read_elf_info(&mut File::open(busybox).unwrap()).unwrap();
        assert!(info.is_some());
    }
}
