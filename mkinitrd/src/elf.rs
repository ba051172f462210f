//! Just enough ELF (elf(5)) for three questions: is an executable static (the
//! file header and program header table, read from a stream by
//! [`read_elf_info`]); what does an executable or library ask the
//! dynamic loader for (its `PT_INTERP`, and the `DT_NEEDED`, `DT_SONAME`,
//! `DT_RPATH`, `DT_RUNPATH` and `DT_FLAGS_1` entries of its dynamic
//! section): [`parse_dynamic`] on the whole file in memory, or
//! [`read_dynamic`] on a file, which reads only those parts with `pread(2)`;
//! and what is in a section found by name (a module's `.modinfo`), through
//! the section header table: [`section_data`] in memory, [`read_section`]
//! on a file. ELF32 and ELF64, either byte order.
//!
//! The readers take hostile input: every offset and size is checked before
//! use, with checked arithmetic, and nothing is allocated beyond what the
//! input itself holds (or [`MAX_PHDR_TABLE`] for the stream reader). No
//! state is kept.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
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
/// e_machine of 32-bit x86.
pub const EM_386: u16 = 3;
/// e_machine of x86-64.
pub const EM_X86_64: u16 = 62;
/// e_machine of 64-bit Arm.
pub const EM_AARCH64: u16 = 183;
/// p_type of a segment mapped from the file.
pub const PT_LOAD: u32 = 1;
/// p_type of the segment holding the dynamic section.
pub const PT_DYNAMIC: u32 = 2;
/// p_type of the program header naming the dynamic loader.
pub const PT_INTERP: u32 = 3;
/// d_tag ending the dynamic section.
pub const DT_NULL: u64 = 0;
/// d_tag of a needed library: a string table offset of its name.
pub const DT_NEEDED: u64 = 1;
/// d_tag of the string table's address.
pub const DT_STRTAB: u64 = 5;
/// d_tag of the string table's size in bytes.
pub const DT_STRSZ: u64 = 10;
/// d_tag of the object's own name.
pub const DT_SONAME: u64 = 14;
/// d_tag of the old-style search path, searched before `LD_LIBRARY_PATH`.
pub const DT_RPATH: u64 = 15;
/// d_tag of the new-style search path, searched after `LD_LIBRARY_PATH`.
pub const DT_RUNPATH: u64 = 29;
/// d_tag of the `DF_1_*` flags.
pub const DT_FLAGS_1: u64 = 0x6fff_fffb;
/// `DT_FLAGS_1` bit: do not search the default directories (`-z nodeflib`).
pub const DF_1_NODEFLIB: u64 = 0x800;
/// Section type of a section with no data in the file (`.bss`).
pub const SHT_NOBITS: u32 = 8;
/// `e_shstrndx` value meaning "the index is in section 0's `sh_link`"
/// (extended section numbering).
pub const SHN_XINDEX: u16 = 0xffff;
/// Bytes of an ELF file header, the larger class's.
const MAX_HEADER_LEN: u64 = 64;
/// Program header tables bigger than this are refused unread: real
/// executables have a few dozen entries of 56 bytes.
pub const MAX_PHDR_TABLE: u64 = 1 << 20;
/// Bytes [`read_at`] allocates ahead of what it has read: a hostile size
/// field costs no more memory than this.
const READ_STEP: u64 = 1 << 20;
/// The kernel refuses a `PT_INTERP` longer than `PATH_MAX`
/// (`load_elf_binary` in fs/binfmt_elf.c).
const PATH_MAX: u64 = 4096;

/// 32 or 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// ELFCLASS32.
    Elf32,
    /// ELFCLASS64.
    Elf64,
}

/// Byte order of the file's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// The fields of the ELF file header this module uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// 32 or 64 bits.
    pub class: Class,
    /// Byte order.
    pub endian: Endian,
    /// e_type ([`ET_EXEC`], [`ET_DYN`], ...).
    pub e_type: u16,
    /// e_machine ([`EM_X86_64`], ...): ld.so loads only libraries whose
    /// class, byte order and machine match the program's.
    pub e_machine: u16,
    /// File offset of the program header table.
    pub phoff: u64,
    /// Size of one program header, at least the class's own.
    pub phentsize: u16,
    /// Number of program headers.
    pub phnum: u16,
}

/// What an ELF file asks of the dynamic loader: the result of
/// [`parse_dynamic`]. A static executable has all of it empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dynamic {
    /// The file header.
    pub header: Header,
    /// The `PT_INTERP` path (the first such header, as the kernel takes it),
    /// without its NUL.
    pub interp: Option<String>,
    /// The `DT_NEEDED` names, in order.
    pub needed: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_RPATH` as stored (colon-separated, `$ORIGIN` unexpanded).
    /// glibc ignores it when `DT_RUNPATH` is present; that is the caller's
    /// business.
    pub rpath: Option<String>,
    /// `DT_RUNPATH` as stored.
    pub runpath: Option<String>,
    /// `DT_FLAGS_1`, 0 when absent.
    pub flags_1: u64,
}

impl Dynamic {
    /// True when the object was linked with `-z nodeflib`: ld.so then skips
    /// its cache and default directories when loading what it needs.
    pub fn nodeflib(&self) -> bool {
        self.flags_1 & DF_1_NODEFLIB != 0
    }
}

/// Why [`parse_header`] or [`parse_dynamic`] refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfProblem {
    /// The input does not start with [`ELF_MAGIC`].
    NotElf,
    /// The file header is cut short.
    TruncatedHeader,
    /// `e_ident[EI_CLASS]` is neither 32 nor 64 bits.
    BadClass(u8),
    /// `e_ident[EI_DATA]` is neither byte order.
    BadByteOrder(u8),
    /// `e_phentsize` is smaller than a program header of the class.
    BadProgramHeaderSize(u16),
    /// The program header table does not fit in the file.
    ProgramHeadersOutsideFile,
    /// The `PT_INTERP` segment does not fit in the file.
    InterpOutsideFile,
    /// The `PT_INTERP` path is empty, too long or not UTF-8.
    BadInterp,
    /// The `PT_DYNAMIC` segment does not fit in the file.
    DynamicOutsideFile,
    /// Strings are referenced but there is no `DT_STRTAB`.
    NoStringTable,
    /// `DT_STRTAB` is not inside any `PT_LOAD` segment's file bytes.
    StringTableNotMapped,
    /// A string offset is past the string table.
    BadStringOffset(u64),
    /// A string runs to the end of the string table without a NUL.
    UnterminatedString(u64),
    /// A string is not UTF-8 (paths in the image are UTF-8).
    NotUtf8(u64),
    /// `e_shentsize` is smaller than a section header of the class.
    BadSectionHeaderSize(u16),
    /// The section header table does not fit in the file.
    SectionHeadersOutsideFile,
    /// `e_shstrndx` names no section.
    BadSectionNameIndex(u64),
    /// A section's data does not fit in the file.
    SectionOutsideFile,
}

impl fmt::Display for ElfProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfProblem::NotElf => f.write_str("not an ELF file"),
            ElfProblem::TruncatedHeader => f.write_str("the ELF header is cut short"),
            ElfProblem::BadClass(c) => write!(f, "unknown ELF class {c}"),
            ElfProblem::BadByteOrder(d) => write!(f, "unknown ELF byte order {d}"),
            ElfProblem::BadProgramHeaderSize(n) => {
                write!(f, "program headers of {n} bytes are too small")
            }
            ElfProblem::ProgramHeadersOutsideFile => {
                f.write_str("the program header table is outside the file")
            }
            ElfProblem::InterpOutsideFile => f.write_str("PT_INTERP is outside the file"),
            ElfProblem::BadInterp => f.write_str("PT_INTERP is empty, too long or not UTF-8"),
            ElfProblem::DynamicOutsideFile => f.write_str("PT_DYNAMIC is outside the file"),
            ElfProblem::NoStringTable => f.write_str("the dynamic section has no DT_STRTAB"),
            ElfProblem::StringTableNotMapped => {
                f.write_str("DT_STRTAB is not in any PT_LOAD segment")
            }
            ElfProblem::BadStringOffset(at) => {
                write!(f, "string offset {at} is past the string table")
            }
            ElfProblem::UnterminatedString(at) => {
                write!(f, "the string at offset {at} has no NUL")
            }
            ElfProblem::NotUtf8(at) => write!(f, "the string at offset {at} is not UTF-8"),
            ElfProblem::BadSectionHeaderSize(n) => {
                write!(f, "section headers of {n} bytes are too small")
            }
            ElfProblem::SectionHeadersOutsideFile => {
                f.write_str("the section header table is outside the file")
            }
            ElfProblem::BadSectionNameIndex(i) => {
                write!(f, "the section name table index {i} is out of range")
            }
            ElfProblem::SectionOutsideFile => f.write_str("a section is outside the file"),
        }
    }
}

/// Fixed-size fields of `data` in its byte order; `None` past the end.
#[derive(Clone, Copy)]
struct Fields<'a> {
    data: &'a [u8],
    class: Class,
    endian: Endian,
}

impl<'a> Fields<'a> {
    /// `len` bytes at `at`, or `None` when they are not all in `data`.
    fn bytes(&self, at: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(at).ok()?;
        let end = usize::try_from(at.checked_add(len)?).ok()?;
        self.data.get(start..end)
    }

    fn u16(&self, at: u64) -> Option<u16> {
        let b: [u8; 2] = self.bytes(at, 2)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32(&self, at: u64) -> Option<u32> {
        let b: [u8; 4] = self.bytes(at, 4)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    fn u64(&self, at: u64) -> Option<u64> {
        let b: [u8; 8] = self.bytes(at, 8)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// An address, offset or size: `Elf32_Word`/`Elf32_Addr` or their
    /// 64-bit forms. Signed `d_tag`s read the same way: the tags used here
    /// are all positive.
    fn word(&self, at: u64) -> Option<u64> {
        match self.class {
            Class::Elf32 => self.u32(at).map(u64::from),
            Class::Elf64 => self.u64(at),
        }
    }

    /// Size of [`Fields::word`].
    fn word_len(&self) -> u64 {
        match self.class {
            Class::Elf32 => 4,
            Class::Elf64 => 8,
        }
    }
}

/// Parses the ELF file header at the start of `bytes` (at least 52 or 64
/// bytes, by class). The program header table is not looked at, so the
/// header alone is enough input.
pub fn parse_header(bytes: &[u8]) -> Result<Header, ElfProblem> {
    if bytes.get(..4) != Some(ELF_MAGIC.as_slice()) {
        return Err(ElfProblem::NotElf);
    }
    let (Some(&ei_class), Some(&ei_data)) = (bytes.get(4), bytes.get(5)) else {
        return Err(ElfProblem::TruncatedHeader);
    };
    let class = match ei_class {
        ELFCLASS32 => Class::Elf32,
        ELFCLASS64 => Class::Elf64,
        c => return Err(ElfProblem::BadClass(c)),
    };
    let endian = match ei_data {
        ELFDATA2LSB => Endian::Little,
        ELFDATA2MSB => Endian::Big,
        d => return Err(ElfProblem::BadByteOrder(d)),
    };
    let at = Fields {
        data: bytes,
        class,
        endian,
    };
    // Elf32_Ehdr / Elf64_Ehdr: e_ident[16], e_type, e_machine, e_version,
    // e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum.
    // Offsets past e_entry depend on the word size.
    let (phoff_at, phentsize_at, min_phentsize) = match class {
        Class::Elf32 => (28, 42, 32),
        Class::Elf64 => (32, 54, 56),
    };
    let header_len = match class {
        Class::Elf32 => 52,
        Class::Elf64 => 64,
    };
    if bytes.len() < header_len {
        return Err(ElfProblem::TruncatedHeader);
    }
    // In bounds: the whole header is there, so no default is ever used.
    let header = Header {
        class,
        endian,
        e_type: at.u16(16).unwrap_or_default(),
        e_machine: at.u16(18).unwrap_or_default(),
        phoff: at.word(phoff_at).unwrap_or_default(),
        phentsize: at.u16(phentsize_at).unwrap_or_default(),
        phnum: at.u16(phentsize_at + 2).unwrap_or_default(),
    };
    if header.phnum > 0 && header.phentsize < min_phentsize {
        return Err(ElfProblem::BadProgramHeaderSize(header.phentsize));
    }
    Ok(header)
}

/// The fields of one program header this module uses.
#[derive(Clone, Copy, Debug)]
struct ProgramHeader {
    p_type: u32,
    p_offset: u64,
    p_vaddr: u64,
    p_filesz: u64,
}

/// The program headers of `data`, after checking the table fits in it.
fn program_headers<'a>(
    data: &'a [u8],
    header: &Header,
) -> Result<impl Iterator<Item = ProgramHeader> + 'a, ElfProblem> {
    let at = Fields {
        data,
        class: header.class,
        endian: header.endian,
    };
    let entsize = u64::from(header.phentsize);
    let table_len = entsize * u64::from(header.phnum);
    // An empty table may say any offset: nothing is read from it.
    if header.phnum > 0 && at.bytes(header.phoff, table_len).is_none() {
        return Err(ElfProblem::ProgramHeadersOutsideFile);
    }
    let phoff = header.phoff;
    Ok((0..u64::from(header.phnum)).filter_map(move |i| {
        // In bounds: the whole table was checked above.
        let base = phoff + i * entsize;
        // Elf32_Phdr: p_type, p_offset, p_vaddr, p_paddr, p_filesz, ...
        // Elf64_Phdr: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz.
        let (offset, vaddr, filesz) = match at.class {
            Class::Elf32 => (4, 8, 16),
            Class::Elf64 => (8, 16, 32),
        };
        Some(ProgramHeader {
            p_type: at.u32(base)?,
            p_offset: at.word(base + offset)?,
            p_vaddr: at.word(base + vaddr)?,
            p_filesz: at.word(base + filesz)?,
        })
    }))
}

/// Reads what `data`, a whole ELF file, asks of the dynamic loader.
///
/// A file without `PT_DYNAMIC` (a static executable) gives an empty
/// [`Dynamic`]. The dynamic section is read from its `PT_DYNAMIC` file
/// bytes up to `DT_NULL`; `DT_STRTAB` is an address, mapped to a file offset
/// through the `PT_LOAD` segment holding it. Where a tag repeats, the last
/// wins, as in glibc's `elf_get_dynamic_info`. Never panics, and allocates
/// at most in proportion to `data`. [`read_dynamic`] is the same on a file,
/// reading only the parts it needs.
///
/// # Errors
///
/// [`ElfProblem`] saying which header, segment or string is malformed.
///
/// # Example
///
/// ```
/// use mkinitrd::elf::{parse_dynamic, ElfProblem};
/// assert_eq!(parse_dynamic(b"#!/bin/sh\n"), Err(ElfProblem::NotElf));
/// ```
pub fn parse_dynamic(data: &[u8]) -> Result<Dynamic, ElfProblem> {
    parse_dynamic_in(&data).map_err(|failure| match failure {
        Failure::Elf(problem) => problem,
        Failure::Read(never) => match never {},
    })
}

/// [`parse_dynamic`] on the file `file` of `size` bytes whose first bytes
/// are `head` (any number of them, even none): only the headers, the
/// `PT_INTERP` path, the dynamic section and its string table are read,
/// with `pread(2)`, and not the parts `head` holds. For a program or
/// library that is a few KiB of a file of 100 KiB to 2 MiB. The file
/// position is not used.
///
/// Errors: [`Failure::Elf`] as [`parse_dynamic`] gives it for the whole
/// file (a file that shrank since `size` was taken reads as cut short),
/// [`Failure::Read`] for I/O errors.
///
/// # Example
/// ```
/// use mkinitrd::elf::{read_dynamic, Failure, ElfProblem};
/// let file = std::fs::File::open("/proc/self/exe")?;
/// let size = file.metadata()?.len();
/// let dynamic = read_dynamic(&file, size, &[]).map_err(|e| match e {
///     Failure::Elf(problem) => std::io::Error::other(problem.to_string()),
///     Failure::Read(e) => e,
/// })?;
/// assert!(dynamic.header.phnum > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_dynamic(file: &File, size: u64, head: &[u8]) -> Result<Dynamic, Failure<io::Error>> {
    parse_dynamic_in(&FileBytes { file, size, head })
}

/// The data of the section called `name` in `elf`, a whole ELF file;
/// `None` when it has none (or no section header table). A `SHT_NOBITS`
/// section has no data. Never panics; reads only the file header, the
/// section header table, the section name table and the section.
///
/// # Errors
///
/// [`ElfProblem`] naming the header or table that is malformed.
///
/// # Example
/// ```
/// use mkinitrd::elf::{section_data, ElfProblem};
/// assert_eq!(section_data(b"#!/bin/sh\n", b".modinfo"), Err(ElfProblem::NotElf));
/// ```
pub fn section_data<'a>(elf: &'a [u8], name: &[u8]) -> Result<Option<&'a [u8]>, ElfProblem> {
    let head = &elf[..elf.len().min(64)];
    let found = find_section(&elf, head, name).map_err(|failure| match failure {
        Failure::Elf(problem) => problem,
        Failure::Read(never) => match never {},
    })?;
    found
        .map(|(at, len)| slice_range(elf, at, len).ok_or(ElfProblem::SectionOutsideFile))
        .transpose()
}

/// [`section_data`] on a file, read at offsets with `pread(2)`: for a
/// kernel module that is a few KiB of a file of up to some MiB. The file
/// position is not used.
///
/// Errors: [`Failure::Elf`] as [`section_data`] gives it for the whole
/// file, [`Failure::Read`] for I/O errors.
pub fn read_section(file: &File, name: &[u8]) -> Result<Option<Vec<u8>>, Failure<io::Error>> {
    let head = read_at(file, 0, MAX_HEADER_LEN).map_err(Failure::Read)?;
    // The size is not known: a short read says where the file ends.
    let src = FileBytes {
        file,
        size: u64::MAX,
        head: &head,
    };
    let Some((at, len)) = find_section(&src, &head, name)? else {
        return Ok(None);
    };
    let data = fetch(&src, at, len, ElfProblem::SectionOutsideFile)?;
    Ok(Some(data.into_owned()))
}

/// The fields of a section header this module uses (`Elf32_Shdr`,
/// `Elf64_Shdr`).
struct SectionHeader {
    sh_name: u32,
    sh_type: u32,
    sh_offset: u64,
    sh_size: u64,
    sh_link: u32,
}

impl SectionHeader {
    /// Where the section's data is in the file: its offset and size
    /// (nothing for [`SHT_NOBITS`]).
    fn data_range(&self) -> (u64, u64) {
        if self.sh_type == SHT_NOBITS {
            return (0, 0);
        }
        (self.sh_offset, self.sh_size)
    }
}

/// Section header `index` of the table `at` holds from its start, entries
/// `entsize` bytes apart; `None` past its end.
fn section_header(at: &Fields<'_>, entsize: u64, index: u64) -> Option<SectionHeader> {
    let base = index.checked_mul(entsize)?;
    // sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link: the
    // last three at 16, 20, 24 (ELF32) or 24, 32, 40 (ELF64).
    let (offset, size, link) = match at.class {
        Class::Elf32 => (16, 20, 24),
        Class::Elf64 => (24, 32, 40),
    };
    Some(SectionHeader {
        sh_name: at.u32(base)?,
        sh_type: at.u32(base.checked_add(4)?)?,
        sh_offset: at.word(base.checked_add(offset)?)?,
        sh_size: at.word(base.checked_add(size)?)?,
        sh_link: at.u32(base.checked_add(link)?)?,
    })
}

/// Where the data of the section called `name` is in the ELF file `src`,
/// whose first bytes (64, or all if fewer) are `head`: its offset and size,
/// not checked against the file. `None` when there is no such section.
/// Reads the section header table and the section names, nothing else.
fn find_section<'a, S: Source<'a>>(
    src: &S,
    head: &[u8],
    name: &[u8],
) -> Result<Option<(u64, u64)>, Failure<S::Error>> {
    let header = parse_header(head)?;
    let fields = Fields {
        data: head,
        class: header.class,
        endian: header.endian,
    };
    // e_shoff, then e_shentsize, e_shnum, e_shstrndx after e_flags,
    // e_ehsize, e_phentsize and e_phnum; in bounds, as parse_header checked.
    let (shoff_at, shentsize_at, min_entsize) = match header.class {
        Class::Elf32 => (32, 46, 40),
        Class::Elf64 => (40, 58, 64),
    };
    let shoff = fields.word(shoff_at).unwrap_or_default();
    let entsize = fields.u16(shentsize_at).unwrap_or_default();
    let shnum = fields.u16(shentsize_at + 2).unwrap_or_default();
    let shstrndx = fields.u16(shentsize_at + 4).unwrap_or_default();
    if shoff == 0 {
        return Ok(None);
    }
    if entsize < min_entsize {
        return Err(ElfProblem::BadSectionHeaderSize(entsize).into());
    }
    let entsize = u64::from(entsize);
    // Extended numbering (elf(5)): a count or name index that does not fit
    // 16 bits is in section 0's sh_size or sh_link.
    let first = if shnum == 0 || shstrndx == SHN_XINDEX {
        let entry = fetch(src, shoff, entsize, ElfProblem::SectionHeadersOutsideFile)?;
        section_header(
            &Fields {
                data: &entry,
                ..fields
            },
            entsize,
            0,
        )
    } else {
        None
    };
    let count = match (shnum, &first) {
        (0, Some(first)) => first.sh_size,
        (n, _) => u64::from(n),
    };
    let names_index = match (shstrndx, &first) {
        (SHN_XINDEX, Some(first)) => u64::from(first.sh_link),
        (n, _) => u64::from(n),
    };
    // Every header must be in the file: this also bounds the loop below.
    let table_len = count
        .checked_mul(entsize)
        .ok_or(ElfProblem::SectionHeadersOutsideFile)?;
    let table = fetch(src, shoff, table_len, ElfProblem::SectionHeadersOutsideFile)?;
    let table = Fields {
        data: &table,
        ..fields
    };
    let get = |index| section_header(&table, entsize, index);
    let names = get(names_index).ok_or(ElfProblem::BadSectionNameIndex(names_index))?;
    let (names_at, names_len) = names.data_range();
    let names = fetch(src, names_at, names_len, ElfProblem::SectionOutsideFile)?;
    for section in (0..count).filter_map(get) {
        let found = usize::try_from(section.sh_name)
            .ok()
            .and_then(|at| names.get(at..))
            .map(|rest| rest.split(|&b| b == 0).next().unwrap_or(rest));
        if found == Some(name) {
            return Ok(Some(section.data_range()));
        }
    }
    Ok(None)
}

/// Why reading an ELF file failed: its content, or reading it.
#[derive(Debug)]
pub enum Failure<E> {
    /// The file is malformed.
    Elf(ElfProblem),
    /// Reading it failed.
    Read(E),
}

impl<E> From<ElfProblem> for Failure<E> {
    fn from(problem: ElfProblem) -> Failure<E> {
        Failure::Elf(problem)
    }
}

/// Where the dynamic section and section readers take an ELF file's
/// bytes from: the whole file in a
/// slice, or a file read at offsets ([`FileBytes`]).
pub(crate) trait Source<'a> {
    /// What reading can fail with.
    type Error;
    /// The file's size in bytes.
    fn size(&self) -> u64;
    /// The `len` bytes at `at`, or `None` when they are not all in the file.
    fn range(&self, at: u64, len: u64) -> Result<Option<Cow<'a, [u8]>>, Self::Error>;
}

impl<'a> Source<'a> for &'a [u8] {
    type Error = Infallible;

    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn range(&self, at: u64, len: u64) -> Result<Option<Cow<'a, [u8]>>, Infallible> {
        Ok(slice_range(self, at, len).map(Cow::Borrowed))
    }
}

/// A file of `size` bytes read with `pread(2)`, whose first bytes are
/// `head`: ranges inside it cost no read. `size` may be `u64::MAX` when it
/// is not known: a short read then says where the file ends.
pub(crate) struct FileBytes<'a> {
    pub(crate) file: &'a File,
    pub(crate) size: u64,
    pub(crate) head: &'a [u8],
}

impl<'a> Source<'a> for FileBytes<'a> {
    type Error = io::Error;

    fn size(&self) -> u64 {
        self.size
    }

    fn range(&self, at: u64, len: u64) -> Result<Option<Cow<'a, [u8]>>, io::Error> {
        if at.checked_add(len).is_none_or(|end| end > self.size) {
            return Ok(None);
        }
        if let Some(bytes) = slice_range(self.head, at, len) {
            return Ok(Some(Cow::Borrowed(bytes)));
        }
        let data = read_at(self.file, at, len)?;
        // Shorter: the file shrank since its size was taken.
        Ok((data.len() as u64 == len).then_some(Cow::Owned(data)))
    }
}

/// `len` bytes of `data` at `at`, or `None` when they are not all there.
pub(crate) fn slice_range(data: &[u8], at: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(at).ok()?;
    let end = usize::try_from(at.checked_add(len)?).ok()?;
    data.get(start..end)
}

/// Reads up to `len` bytes of `file` at offset `at` with `pread(2)`:
/// fewer when the file ends first. Memory grows with the bytes read, not
/// with `len` (to at most twice them plus [`READ_STEP`]), so a hostile
/// length from a header costs nothing.
///
/// # References
/// - [`pread(2)`](https://man7.org/linux/man-pages/man2/pread.2.html)
pub(crate) fn read_at(file: &File, at: u64, len: u64) -> io::Result<Vec<u8>> {
    // Offsets past i64::MAX are EINVAL to pread: no file is that long.
    let Some(end) = at.checked_add(len).filter(|&end| end <= i64::MAX as u64) else {
        return Ok(Vec::new());
    };
    let mut data = Vec::new();
    let mut pos = at;
    while pos < end {
        let filled = data.len();
        let want = (end - pos).min(READ_STEP.max(filled as u64));
        data.resize(filled + usize::try_from(want).unwrap_or(0), 0);
        match file.read_at(&mut data[filled..], pos) {
            Ok(0) => {
                data.truncate(filled);
                break;
            }
            Ok(n) => {
                data.truncate(filled + n);
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => data.truncate(filled),
            Err(e) => return Err(e),
        }
    }
    Ok(data)
}

/// The `len` bytes at `at` of `src`, or `problem` when they are not all in
/// the file.
fn fetch<'a, S: Source<'a>>(
    src: &S,
    at: u64,
    len: u64,
    problem: ElfProblem,
) -> Result<Cow<'a, [u8]>, Failure<S::Error>> {
    src.range(at, len)
        .map_err(Failure::Read)?
        .ok_or(Failure::Elf(problem))
}

/// [`parse_dynamic`] on any [`Source`].
fn parse_dynamic_in<'a, S: Source<'a>>(src: &S) -> Result<Dynamic, Failure<S::Error>> {
    // The header is at most 64 bytes; a shorter file is refused by
    // parse_header as it would be whole.
    let head = fetch(src, 0, src.size().min(64), ElfProblem::TruncatedHeader)?;
    let header = parse_header(&head)?;
    let phdrs = read_program_headers(src, &header)?;
    let mut interp = None;
    let mut dynamic = None;
    for phdr in &phdrs {
        match phdr.p_type {
            PT_INTERP if interp.is_none() => interp = Some(read_interp(src, phdr)?),
            PT_DYNAMIC if dynamic.is_none() => dynamic = Some(*phdr),
            _ => {}
        }
    }
    let mut result = Dynamic {
        header,
        interp,
        needed: Vec::new(),
        soname: None,
        rpath: None,
        runpath: None,
        flags_1: 0,
    };
    if let Some(phdr) = dynamic {
        read_dynamic_section(src, &phdrs, &phdr, &mut result)?;
    }
    Ok(result)
}

/// The program headers of the file `header` heads, after checking the
/// table is in the file. At most one per 32 bytes of the file.
fn read_program_headers<'a, S: Source<'a>>(
    src: &S,
    header: &Header,
) -> Result<Vec<ProgramHeader>, Failure<S::Error>> {
    // An empty table may say any offset: nothing is read from it.
    if header.phnum == 0 {
        return Ok(Vec::new());
    }
    let table_len = u64::from(header.phentsize) * u64::from(header.phnum);
    let table = fetch(
        src,
        header.phoff,
        table_len,
        ElfProblem::ProgramHeadersOutsideFile,
    )?;
    // The table is now the whole input, at offset 0.
    let at_zero = Header {
        phoff: 0,
        ..*header
    };
    Ok(program_headers(&table, &at_zero)?.collect())
}

/// The path in a `PT_INTERP` segment, up to its NUL.
fn read_interp<'a, S: Source<'a>>(
    src: &S,
    phdr: &ProgramHeader,
) -> Result<String, Failure<S::Error>> {
    if phdr.p_filesz > PATH_MAX {
        return Err(ElfProblem::BadInterp.into());
    }
    let bytes = fetch(
        src,
        phdr.p_offset,
        phdr.p_filesz,
        ElfProblem::InterpOutsideFile,
    )?;
    let path = bytes.split(|&b| b == 0).next().unwrap_or_default();
    match std::str::from_utf8(path) {
        Ok(path) if !path.is_empty() => Ok(path.to_owned()),
        _ => Err(ElfProblem::BadInterp.into()),
    }
}

/// Walks the `Elf*_Dyn` entries (`d_tag`, `d_val`, one word each) of the
/// `PT_DYNAMIC` segment `phdr` and fills in `out`'s strings and flags;
/// `phdrs` are all the program headers, for finding the string table.
fn read_dynamic_section<'a, S: Source<'a>>(
    src: &S,
    phdrs: &[ProgramHeader],
    phdr: &ProgramHeader,
    out: &mut Dynamic,
) -> Result<(), Failure<S::Error>> {
    let section = fetch(
        src,
        phdr.p_offset,
        phdr.p_filesz,
        ElfProblem::DynamicOutsideFile,
    )?;
    let at = Fields {
        data: &section,
        class: out.header.class,
        endian: out.header.endian,
    };
    let word = at.word_len();
    // String table offsets, resolved once the string table is known.
    let mut needed = Vec::new();
    let (mut soname, mut rpath, mut runpath) = (None, None, None);
    let (mut strtab, mut strsz) = (None, None);
    for i in 0..phdr.p_filesz / (2 * word) {
        let entry = i * 2 * word;
        let (Some(tag), Some(val)) = (at.word(entry), at.word(entry + word)) else {
            break;
        };
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed.push(val),
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_SONAME => soname = Some(val),
            DT_RPATH => rpath = Some(val),
            DT_RUNPATH => runpath = Some(val),
            DT_FLAGS_1 => out.flags_1 = val,
            _ => {}
        }
    }
    if needed.is_empty() && soname.is_none() && rpath.is_none() && runpath.is_none() {
        return Ok(());
    }
    let strtab = strtab.ok_or(ElfProblem::NoStringTable)?;
    let table = string_table(src, phdrs, strtab, strsz)?;
    out.needed = needed
        .into_iter()
        .map(|offset| read_string(&table, offset))
        .collect::<Result<_, _>>()?;
    out.soname = soname.map(|o| read_string(&table, o)).transpose()?;
    out.rpath = rpath.map(|o| read_string(&table, o)).transpose()?;
    out.runpath = runpath.map(|o| read_string(&table, o)).transpose()?;
    Ok(())
}

/// The file bytes of the string table at address `strtab`: from its file
/// offset to the end of the `PT_LOAD` segment's file bytes holding it,
/// clipped to `DT_STRSZ` when given.
fn string_table<'a, S: Source<'a>>(
    src: &S,
    phdrs: &[ProgramHeader],
    strtab: u64,
    strsz: Option<u64>,
) -> Result<Cow<'a, [u8]>, Failure<S::Error>> {
    for load in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        let Some(delta) = strtab.checked_sub(load.p_vaddr) else {
            continue;
        };
        if delta >= load.p_filesz {
            continue;
        }
        let Some(offset) = load.p_offset.checked_add(delta) else {
            continue;
        };
        let in_file = src.size().saturating_sub(offset);
        let len = (load.p_filesz - delta)
            .min(in_file)
            .min(strsz.unwrap_or(u64::MAX));
        if let Some(table) = src.range(offset, len).map_err(Failure::Read)? {
            return Ok(table);
        }
    }
    Err(ElfProblem::StringTableNotMapped.into())
}

/// The NUL-terminated string at `offset` in `table`.
fn read_string(table: &[u8], offset: u64) -> Result<String, ElfProblem> {
    let rest = usize::try_from(offset)
        .ok()
        .and_then(|start| table.get(start..))
        .filter(|rest| !rest.is_empty())
        .ok_or(ElfProblem::BadStringOffset(offset))?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(ElfProblem::UnterminatedString(offset))?;
    std::str::from_utf8(&rest[..end])
        .map(str::to_owned)
        .map_err(|_| ElfProblem::NotUtf8(offset))
}

/// Reads the ELF header and program headers of `file`.
///
/// `Ok(None)` when it is not ELF or its headers are truncated or
/// implausible; `Err` only for I/O errors.
pub fn read_elf_info<R: Read + Seek>(file: &mut R) -> io::Result<Option<ElfInfo>> {
    let mut bytes = [0; 64];
    let len = read_up_to(file, &mut bytes)?;
    let Ok(header) = parse_header(&bytes[..len]) else {
        return Ok(None);
    };
    let table_len = u64::from(header.phentsize) * u64::from(header.phnum);
    if table_len > MAX_PHDR_TABLE {
        return Ok(None);
    }
    let mut table = vec![0; usize::try_from(table_len).unwrap_or(0)];
    file.seek(SeekFrom::Start(header.phoff))?;
    if read_up_to(file, &mut table)? < table.len() {
        return Ok(None);
    }
    // The table is now the whole input, at offset 0.
    let at_zero = Header { phoff: 0, ..header };
    let Ok(mut phdrs) = program_headers(&table, &at_zero) else {
        return Ok(None);
    };
    let has_interp = phdrs.any(|phdr| phdr.p_type == PT_INTERP);
    Ok(Some(ElfInfo {
        class: header.class,
        endian: header.endian,
        e_type: header.e_type,
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

/// Builds ELF files with given program header types, for tests here and in
/// init_binary.rs.
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

/// A dynamic ELF file built for tests here and in ldso.rs: one `PT_LOAD`
/// covering the whole file at [`TestElf::BASE`], then `PT_INTERP` and
/// `PT_DYNAMIC` when there is something to put in them. With nothing set it
/// is a static executable.
#[cfg(test)]
#[derive(Clone, Debug)]
pub(crate) struct TestElf {
    pub class: Class,
    pub endian: Endian,
    pub machine: u16,
    pub interp: Option<String>,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    pub flags_1: u64,
}

#[cfg(test)]
impl TestElf {
    /// The `p_vaddr` of the file's first byte.
    pub const BASE: u64 = 0x40_0000;

    /// A static little-endian x86-64 executable.
    pub fn x86_64() -> TestElf {
        TestElf {
            class: Class::Elf64,
            endian: Endian::Little,
            machine: EM_X86_64,
            interp: None,
            needed: Vec::new(),
            soname: None,
            rpath: None,
            runpath: None,
            flags_1: 0,
        }
    }

    /// Sets `PT_INTERP`.
    pub fn interp(mut self, path: &str) -> TestElf {
        self.interp = Some(path.to_owned());
        self
    }

    /// Sets the `DT_NEEDED` names.
    pub fn needed(mut self, names: &[&str]) -> TestElf {
        self.needed = names.iter().map(|&n| n.to_owned()).collect();
        self
    }

    /// Sets `DT_SONAME`.
    pub fn soname(mut self, name: &str) -> TestElf {
        self.soname = Some(name.to_owned());
        self
    }

    /// Sets `DT_RPATH`.
    pub fn rpath(mut self, path: &str) -> TestElf {
        self.rpath = Some(path.to_owned());
        self
    }

    /// Sets `DT_RUNPATH`.
    pub fn runpath(mut self, path: &str) -> TestElf {
        self.runpath = Some(path.to_owned());
        self
    }

    /// Lays the file out as: header, program headers, interpreter path,
    /// string table, dynamic section (8-aligned).
    pub fn build(&self) -> Vec<u8> {
        let (ehsize, phentsize, word) = match self.class {
            Class::Elf32 => (52, 32, 4),
            Class::Elf64 => (64, 56, 8),
        };
        let mut strtab = vec![0u8];
        let mut add = |s: &str| {
            let offset = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            offset
        };
        let mut dyns: Vec<(u64, u64)> = self.needed.iter().map(|n| (DT_NEEDED, add(n))).collect();
        for (tag, value) in [
            (DT_SONAME, &self.soname),
            (DT_RPATH, &self.rpath),
            (DT_RUNPATH, &self.runpath),
        ] {
            if let Some(value) = value {
                dyns.push((tag, add(value)));
            }
        }
        if self.flags_1 != 0 {
            dyns.push((DT_FLAGS_1, self.flags_1));
        }
        let has_dynamic = !dyns.is_empty() || self.interp.is_some();
        let phnum = 1 + usize::from(self.interp.is_some()) + usize::from(has_dynamic);
        let interp_at = ehsize + phnum * phentsize;
        let interp: Vec<u8> = match &self.interp {
            Some(path) => [path.as_bytes(), b"\0"].concat(),
            None => Vec::new(),
        };
        let strtab_at = interp_at + interp.len();
        let dyn_at = (strtab_at + strtab.len()).next_multiple_of(8);
        dyns.push((DT_STRTAB, Self::BASE + strtab_at as u64));
        dyns.push((DT_STRSZ, strtab.len() as u64));
        dyns.push((DT_NULL, 0));
        let dyn_len = if has_dynamic {
            dyns.len() * 2 * word
        } else {
            0
        };
        let total = dyn_at + dyn_len;

        let mut elf = vec![0; total];
        let endian = self.endian;
        let (phoff_at, phentsize_at) = match self.class {
            Class::Elf32 => (28, 42),
            Class::Elf64 => (32, 54),
        };
        elf[..4].copy_from_slice(ELF_MAGIC);
        elf[4] = match self.class {
            Class::Elf32 => ELFCLASS32,
            Class::Elf64 => ELFCLASS64,
        };
        elf[5] = match endian {
            Endian::Little => ELFDATA2LSB,
            Endian::Big => ELFDATA2MSB,
        };
        elf[6] = 1; // EI_VERSION
        let mut put = |at: usize, len: usize, value: u64| {
            let bytes = match endian {
                Endian::Little => value.to_le_bytes()[..len].to_vec(),
                Endian::Big => value.to_be_bytes()[8 - len..].to_vec(),
            };
            elf[at..at + len].copy_from_slice(&bytes);
        };
        put(16, 2, u64::from(ET_DYN));
        put(18, 2, u64::from(self.machine));
        put(20, 4, 1); // e_version
        put(phoff_at, word, ehsize as u64);
        put(phentsize_at - 2, 2, ehsize as u64); // e_ehsize
        put(phentsize_at, 2, phentsize as u64);
        put(phentsize_at + 2, 2, phnum as u64);
        let mut phdrs = vec![(PT_LOAD, 0, total)];
        if self.interp.is_some() {
            phdrs.push((PT_INTERP, interp_at, interp.len()));
        }
        if has_dynamic {
            phdrs.push((PT_DYNAMIC, dyn_at, dyn_len));
        }
        for (i, (p_type, offset, size)) in phdrs.into_iter().enumerate() {
            let at = ehsize + i * phentsize;
            let (offset_at, vaddr_at, filesz_at, memsz_at) = match self.class {
                Class::Elf32 => (4, 8, 16, 20),
                Class::Elf64 => (8, 16, 32, 40),
            };
            put(at, 4, u64::from(p_type));
            put(at + offset_at, word, offset as u64);
            put(at + vaddr_at, word, Self::BASE + offset as u64);
            put(at + filesz_at, word, size as u64);
            put(at + memsz_at, word, size as u64);
        }
        if has_dynamic {
            for (i, (tag, value)) in dyns.iter().enumerate() {
                put(dyn_at + i * 2 * word, word, *tag);
                put(dyn_at + i * 2 * word + word, word, *value);
            }
        }
        elf[interp_at..interp_at + interp.len()].copy_from_slice(&interp);
        elf[strtab_at..strtab_at + strtab.len()].copy_from_slice(&strtab);
        elf
    }
}

/// A minimal relocatable ELF file with a `.modinfo` section holding
/// `modinfo`, and a `.shstrtab`: what is read of a kernel module.
#[cfg(test)]
pub(crate) fn make_module(modinfo: &[u8], elf64: bool, little_endian: bool) -> Vec<u8> {
    let put = |out: &mut Vec<u8>, value: u64, len: usize| {
        let bytes = value.to_le_bytes();
        let mut field = bytes[..len].to_vec();
        if !little_endian {
            field.reverse();
        }
        out.extend(field);
    };
    let names = b"\0.modinfo\0.shstrtab\0";
    let (header_len, entry_len) = if elf64 { (64, 64) } else { (52, 40) };
    let modinfo_at = header_len;
    let names_at = modinfo_at + modinfo.len();
    let table_at = names_at + names.len();
    let mut out = b"\x7fELF".to_vec();
    out.push(if elf64 { 2 } else { 1 });
    out.push(if little_endian { 1 } else { 2 });
    out.push(1);
    out.resize(16, 0);
    // e_type ET_REL, e_machine, e_version.
    put(&mut out, 1, 2);
    put(&mut out, 62, 2);
    put(&mut out, 1, 4);
    let word = if elf64 { 8 } else { 4 };
    // e_entry, e_phoff, e_shoff.
    put(&mut out, 0, word);
    put(&mut out, 0, word);
    put(&mut out, table_at as u64, word);
    // e_flags, e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum,
    // e_shstrndx.
    put(&mut out, 0, 4);
    put(&mut out, header_len as u64, 2);
    put(&mut out, 0, 2);
    put(&mut out, 0, 2);
    put(&mut out, entry_len as u64, 2);
    put(&mut out, 3, 2);
    put(&mut out, 2, 2);
    assert_eq!(out.len(), header_len);
    out.extend(modinfo);
    out.extend(names);
    // Section headers: null, .modinfo (PROGBITS), .shstrtab (STRTAB).
    for (name, kind, offset, size) in [
        (0, 0, 0, 0),
        (1, 1, modinfo_at, modinfo.len()),
        (10, 3, names_at, names.len()),
    ] {
        let start = out.len();
        put(&mut out, name, 4);
        put(&mut out, kind, 4);
        // sh_flags, sh_addr, sh_offset, sh_size.
        put(&mut out, 0, word);
        put(&mut out, 0, word);
        put(&mut out, offset as u64, word);
        put(&mut out, size as u64, word);
        out.resize(start + entry_len, 0);
    }
    out
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
    fn busybox_static_reads_as_static_and_bash_does_not() {
        // busybox-static (which the VM tests use) replaces Debian's dynamic
        // busybox at /bin/busybox; bash is always dynamic.
        let busybox = Path::new("/bin/busybox");
        if !::tests::require(busybox.exists(), "/bin/busybox (busybox-static)") {
            return;
        }
        let info = read_elf_info(&mut File::open(busybox).unwrap())
            .unwrap()
            .unwrap();
        assert!(info.is_static_executable(), "{info:?}");
        let bash = read_elf_info(&mut File::open("/bin/bash").unwrap())
            .unwrap()
            .unwrap();
        assert!(bash.has_interp && !bash.is_static_executable());
    }

    /// Every field set, for the round trip.
    fn full(class: Class, endian: Endian) -> TestElf {
        TestElf {
            class,
            endian,
            flags_1: DF_1_NODEFLIB,
            ..TestElf::x86_64()
        }
        .interp("/lib64/ld-linux-x86-64.so.2")
        .needed(&["libfoo.so.1", "libc.so.6"])
        .soname("libbar.so.2")
        .rpath("$ORIGIN/../lib")
        .runpath("/opt/lib:/usr/local/lib")
    }

    /// Overwrites the first 8-byte-aligned little-endian `(tag, value)`
    /// dynamic entry with tag `tag` in an ELF64 LSB file.
    fn patch_dyn(elf: &mut [u8], tag: u64, new_tag: u64, new_value: u64) {
        let dynamic = parse_header(elf).unwrap();
        assert_eq!(dynamic.class, Class::Elf64);
        let at = (0..elf.len() - 16)
            .step_by(8)
            .rev()
            .find(|&at| elf[at..at + 8] == tag.to_le_bytes())
            .unwrap();
        elf[at..at + 8].copy_from_slice(&new_tag.to_le_bytes());
        elf[at + 8..at + 16].copy_from_slice(&new_value.to_le_bytes());
    }

    #[test]
    fn parse_dynamic_reads_every_class_and_byte_order() {
        for class in [Class::Elf32, Class::Elf64] {
            for endian in [Endian::Little, Endian::Big] {
                let d = parse_dynamic(&full(class, endian).build()).unwrap();
                let what = format!("{class:?} {endian:?}");
                assert_eq!((d.header.class, d.header.endian), (class, endian), "{what}");
                assert_eq!(d.header.e_machine, EM_X86_64, "{what}");
                assert_eq!(d.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
                assert_eq!(d.needed, ["libfoo.so.1", "libc.so.6"], "{what}");
                assert_eq!(d.soname.as_deref(), Some("libbar.so.2"), "{what}");
                assert_eq!(d.rpath.as_deref(), Some("$ORIGIN/../lib"), "{what}");
                assert_eq!(d.runpath.as_deref(), Some("/opt/lib:/usr/local/lib"));
                assert!(d.nodeflib(), "{what}");
                // The stream reader agrees.
                let info = info(&full(class, endian).build()).unwrap();
                assert!(info.has_interp && !info.is_static_executable(), "{what}");
            }
        }
    }

    #[test]
    fn static_executables_have_nothing_to_load() {
        let d = parse_dynamic(&TestElf::x86_64().build()).unwrap();
        assert_eq!((d.interp, d.needed.len(), d.soname), (None, 0, None));
        assert_eq!((d.rpath, d.runpath, d.flags_1), (None, None, 0));
        for class in [Class::Elf32, Class::Elf64] {
            let d = parse_dynamic(&make_elf(class, Endian::Big, ET_EXEC, &STATIC)).unwrap();
            assert!(d.needed.is_empty() && d.interp.is_none());
        }
        // A static-pie has PT_DYNAMIC, but nothing in it needs strings.
        let pie = TestElf {
            flags_1: 0x0800_0000, // DF_1_PIE
            ..TestElf::x86_64()
        };
        assert!(parse_dynamic(&pie.build()).unwrap().needed.is_empty());
    }

    #[test]
    fn non_elf_input_is_named() {
        assert_eq!(parse_dynamic(b"#!/bin/sh\n"), Err(ElfProblem::NotElf));
        assert_eq!(parse_dynamic(b""), Err(ElfProblem::NotElf));
        assert_eq!(
            parse_dynamic(b"\x7fELF\x02"),
            Err(ElfProblem::TruncatedHeader)
        );
        let elf = full(Class::Elf64, Endian::Little).build();
        assert_eq!(parse_dynamic(&elf[..63]), Err(ElfProblem::TruncatedHeader));
        let mut bad = elf.clone();
        bad[4] = 9;
        assert_eq!(parse_dynamic(&bad), Err(ElfProblem::BadClass(9)));
        bad[4] = ELFCLASS64;
        bad[5] = 0;
        assert_eq!(parse_dynamic(&bad), Err(ElfProblem::BadByteOrder(0)));
    }

    #[test]
    fn hostile_dynamic_sections_are_refused_by_name() {
        let elf = full(Class::Elf64, Endian::Little).build();
        let check = |tag, new_tag, value, want| {
            let mut bad = elf.clone();
            patch_dyn(&mut bad, tag, new_tag, value);
            assert_eq!(
                parse_dynamic(&bad),
                Err(want),
                "tag {tag:#x} -> {new_tag:#x} {value}"
            );
        };
        check(
            DT_NEEDED,
            DT_NEEDED,
            1 << 40,
            ElfProblem::BadStringOffset(1 << 40),
        );
        check(DT_STRSZ, DT_STRSZ, 4, ElfProblem::UnterminatedString(1));
        check(DT_STRTAB, DT_STRTAB, 0, ElfProblem::StringTableNotMapped);
        check(
            DT_STRTAB,
            DT_STRTAB,
            u64::MAX,
            ElfProblem::StringTableNotMapped,
        );
        check(DT_STRTAB, 0x7000_0000, 0, ElfProblem::NoStringTable);

        let mut not_utf8 = elf.clone();
        let at = elf.windows(6).position(|w| w == b"libfoo").unwrap();
        not_utf8[at + 3] = 0xff;
        assert_eq!(parse_dynamic(&not_utf8), Err(ElfProblem::NotUtf8(1)));

        // The file cut inside the dynamic section.
        let cut = &elf[..elf.len() - 8];
        assert_eq!(parse_dynamic(cut), Err(ElfProblem::DynamicOutsideFile));

        // The second program header is PT_INTERP: p_filesz is at 64+56+32.
        let mut long_interp = elf.clone();
        long_interp[152..160].copy_from_slice(&5000u64.to_le_bytes());
        assert_eq!(parse_dynamic(&long_interp), Err(ElfProblem::BadInterp));
        let mut far_interp = elf.clone();
        far_interp[128..136].copy_from_slice(&u64::MAX.to_le_bytes()); // p_offset
        assert_eq!(
            parse_dynamic(&far_interp),
            Err(ElfProblem::InterpOutsideFile)
        );

        let mut far_table = elf.clone();
        far_table[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        assert_eq!(
            parse_dynamic(&far_table),
            Err(ElfProblem::ProgramHeadersOutsideFile)
        );
        let mut small = elf;
        small[54..56].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(
            parse_dynamic(&small),
            Err(ElfProblem::BadProgramHeaderSize(8))
        );
    }

    #[test]
    fn sections_are_found_by_name_in_every_class_and_byte_order() {
        for elf64 in [true, false] {
            for little_endian in [true, false] {
                let elf = make_module(b"a=b\0", elf64, little_endian);
                assert_eq!(section_data(&elf, b".modinfo"), Ok(Some(&b"a=b\0"[..])));
                assert_eq!(section_data(&elf, b".modinf"), Ok(None));
                assert_eq!(
                    section_data(&elf, b".shstrtab"),
                    Ok(Some(&b"\0.modinfo\0.shstrtab\0"[..]))
                );
            }
        }
        // No section header table: no sections.
        let exe = full(Class::Elf64, Endian::Little).build();
        assert_eq!(section_data(&exe, b".modinfo"), Ok(None));
    }

    #[test]
    fn section_headers_are_checked_before_use() {
        let elf = make_module(b"a=b\0", true, true);
        let shoff =
            usize::try_from(u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap())).unwrap();
        let patched = |at: usize, bytes: &[u8]| {
            let mut bad = elf.clone();
            bad[at..at + bytes.len()].copy_from_slice(bytes);
            section_data(&bad, b".modinfo").map(|found| found.map(<[u8]>::to_vec))
        };
        assert_eq!(
            patched(0x3a, &[32, 0]),
            Err(ElfProblem::BadSectionHeaderSize(32))
        );
        assert_eq!(
            patched(0x3e, &[9, 0]),
            Err(ElfProblem::BadSectionNameIndex(9))
        );
        assert_eq!(
            patched(0x3c, &[0xff, 0]),
            Err(ElfProblem::SectionHeadersOutsideFile)
        );
        // .modinfo's sh_size runs past the end.
        assert_eq!(
            patched(shoff + 64 + 32, &u64::MAX.to_le_bytes()),
            Err(ElfProblem::SectionOutsideFile)
        );
        // SHT_NOBITS has no data, whatever its size says.
        assert_eq!(
            patched(shoff + 64 + 4, &SHT_NOBITS.to_le_bytes()),
            Ok(Some(Vec::new()))
        );
        // Extended numbering: e_shnum 0 and SHN_XINDEX, with the count and
        // the name table's index in section 0.
        let mut ext = elf.clone();
        ext[0x3c..0x40].copy_from_slice(&[0, 0, 0xff, 0xff]);
        ext[shoff + 32..shoff + 40].copy_from_slice(&3u64.to_le_bytes());
        ext[shoff + 40..shoff + 44].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(section_data(&ext, b".modinfo"), Ok(Some(&b"a=b\0"[..])));
    }

    #[test]
    fn last_repeated_tag_wins_as_in_glibc() {
        let mut elf = TestElf::x86_64()
            .needed(&["liba.so"])
            .rpath("/first")
            .runpath("/second")
            .build();
        // Turn DT_RUNPATH into a second DT_RPATH.
        patch_dyn(&mut elf, DT_RUNPATH, DT_RPATH, 1 + 8 + 7);
        let d = parse_dynamic(&elf).unwrap();
        assert_eq!((d.rpath.as_deref(), d.runpath), (Some("/second"), None));
    }

    /// A tiny deterministic generator (xorshift64), so the test needs no
    /// crate and fails the same way every run.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn truncations_and_mutations_never_panic() {
        let files = [
            full(Class::Elf64, Endian::Little).build(),
            full(Class::Elf32, Endian::Big).build(),
        ];
        for elf in &files {
            for len in 0..=elf.len() {
                let _ = parse_dynamic(&elf[..len]);
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let extremes = [0, 1, 0x7f, 0x80, 0xff];
        for round in 0..20_000 {
            let mut elf = files[round % 2].clone();
            for _ in 0..1 + next(&mut state) % 4 {
                let at = usize::try_from(next(&mut state)).unwrap() % elf.len();
                let pick = usize::try_from(next(&mut state) % 8).unwrap();
                elf[at] = match extremes.get(pick) {
                    Some(&b) => b,
                    None => next(&mut state).to_le_bytes()[0],
                };
            }
            if let Ok(d) = parse_dynamic(&elf) {
                assert!(d.needed.len() <= elf.len());
            }
            let _ = read_elf_info(&mut Cursor::new(&elf));
        }
    }

    /// [`read_dynamic`] on `elf` written to a file, with its first `head`
    /// bytes given, as [`parse_dynamic`] reports it.
    fn read_from_file(file: &File, elf: &[u8], head: usize) -> Result<Dynamic, ElfProblem> {
        file.set_len(0).unwrap();
        file.write_all_at(elf, 0).unwrap();
        match read_dynamic(file, elf.len() as u64, &elf[..head.min(elf.len())]) {
            Ok(dynamic) => Ok(dynamic),
            Err(Failure::Elf(problem)) => Err(problem),
            Err(Failure::Read(e)) => panic!("reading the file failed: {e}"),
        }
    }

    #[test]
    fn reading_a_file_at_offsets_gives_what_parsing_it_whole_gives() {
        let tmp = crate::testutil::TempDir::new("elf-read-dynamic");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp.path().join("elf"))
            .unwrap();
        let files = [
            full(Class::Elf64, Endian::Little).build(),
            full(Class::Elf32, Endian::Big).build(),
            TestElf::x86_64().build(),
        ];
        for elf in &files {
            for len in 0..=elf.len() {
                let cut = &elf[..len];
                for head in [0, 64, len / 2, len] {
                    assert_eq!(
                        read_from_file(&file, cut, head),
                        parse_dynamic(cut),
                        "{len} bytes, head {head}"
                    );
                }
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1d;
        for round in 0..2_000 {
            let mut elf = files[round % 2].clone();
            for _ in 0..1 + next(&mut state) % 4 {
                let at = usize::try_from(next(&mut state)).unwrap() % elf.len();
                elf[at] = next(&mut state).to_le_bytes()[0];
            }
            assert_eq!(read_from_file(&file, &elf, 64), parse_dynamic(&elf));
        }
    }

    #[test]
    fn read_at_stops_at_the_end_of_the_file_and_allocates_as_it_reads() {
        let tmp = crate::testutil::TempDir::new("elf-read-at");
        let path = tmp.write("data", b"0123456789");
        let file = File::open(path).unwrap();
        assert_eq!(read_at(&file, 2, 3).unwrap(), b"234");
        assert_eq!(read_at(&file, 8, 5).unwrap(), b"89");
        assert_eq!(read_at(&file, 20, 5).unwrap(), b"");
        assert_eq!(read_at(&file, u64::MAX, 5).unwrap(), b"");
        let far = read_at(&file, 0, u64::MAX / 2).unwrap();
        assert_eq!(far, b"0123456789");
        assert!(far.capacity() <= 2 * usize::try_from(READ_STEP).unwrap());
    }
}
