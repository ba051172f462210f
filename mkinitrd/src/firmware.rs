//! Firmware named by packed modules.
//!
//! A module lists the files it may ask `request_firmware` for as
//! `firmware=NAME` strings in its `.modinfo` ELF section ([`modinfo_values`]
//! reads them; [`firmware_for`] reads just the section headers and that
//! section of a module file, or unpacks a compressed one first).
//! [`firmware_for`] finds each under the host's firmware directory, and
//! [`Image::add_firmware`] packs it where `/lib/firmware/NAME` leads in the
//! image: the kernel's direct loader looks in `/lib/firmware/updates/VER`,
//! `/lib/firmware/updates`, `/lib/firmware/VER` and `/lib/firmware`, never
//! under `/usr` (drivers/base/firmware_loader/main.c, `fw_path`), and init
//! loads modules before `switch_root`, while the initramfs is the root.
//! `/lib` in the image follows the host, as the host files [`crate::ldso`]
//! packs do: on a merged-/usr host it is the symlink `lib -> usr/lib` and
//! firmware goes to `usr/lib/firmware`, so either can be added first.
//! Firmware that is not there is a warning returned as data, not an error:
//! most modules list firmware for devices the VM does not have. Nothing
//! here keeps state.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::decompress;
use crate::elf::{self, FileBytes, Source};
use crate::error::Error;
use crate::image::{Entry, Image, normalize_path};
use crate::kmod::Module;

/// Where firmware is on the host (linux-firmware's install path; on merged
/// /usr systems the same as /usr/lib/firmware).
pub const FIRMWARE_DIR: &str = "/lib/firmware";
/// Where the kernel looks for firmware in the image, relative to its root:
/// the last directory of `fw_path`. Its `lib` may be a symlink.
pub const IMAGE_FIRMWARE_DIR: &str = "lib/firmware";
/// Mode of packed firmware files: read by the kernel only.
pub const FIRMWARE_MODE: u32 = 0o644;
/// Suffixes tried for each name, in the kernel's order (`_request_firmware`):
/// as is, then zstd and xz when `CONFIG_FW_LOADER_COMPRESS_{ZSTD,XZ}` let
/// the kernel unpack them. Compressed files are packed as they are.
const FIRMWARE_SUFFIXES: [&str; 3] = ["", ".zst", ".xz"];
/// How many missing names a warning lists before "and N more".
const MISSING_SHOWN: usize = 5;

/// ELF section type of a section with no data in the file (elf(5)).
const SHT_NOBITS: u32 = 8;
/// `e_shstrndx` value meaning "the index is in section 0's `sh_link`".
const SHN_XINDEX: u16 = 0xffff;
/// The section holding a module's `key=value` strings.
const MODINFO: &[u8] = b".modinfo";
/// Bytes read from the start of a module in one go: the ELF header is 52
/// or 64 bytes.
const HEAD_LEN: usize = 64;
/// What a section header or section outside the file gives.
const PAST_END: ModinfoProblem =
    ModinfoProblem("an offset or size points past the end of the file");

/// One firmware file to pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareFile {
    /// Path under the firmware directory, with the suffix of the file found,
    /// e.g. `amdgpu/navi10_sos.bin` or `amdgpu/navi10_sos.bin.zst`.
    pub name: String,
    /// The file on the host (symlinks are followed when packing).
    pub source: PathBuf,
}

/// The firmware of a set of modules: what to pack, and what to tell the
/// user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Firmware {
    /// Files found, each once, in module order.
    pub files: Vec<FirmwareFile>,
    /// The target of the host's `lib` symlink when the firmware directory's
    /// parent is one (`usr/lib` on a merged-/usr host), as read.
    pub lib_symlink: Option<String>,
    /// One line per problem, without a program prefix: firmware not found
    /// (one line per module), names that cannot be packed, modules whose
    /// `.modinfo` cannot be read.
    pub warnings: Vec<String>,
}

/// Why a module's `.modinfo` section cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModinfoProblem(&'static str);

impl fmt::Display for ModinfoProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The firmware `modules` name that is under `firmware_dir`, and warnings
/// for the rest. `firmware_dir`'s parent is the host's `/lib` (see
/// [`Firmware::lib_symlink`]).
///
/// Errors: [`Error::ReadFile`] when a module cannot be read,
/// [`Error::DecompressModule`] when a compressed one cannot be unpacked;
/// a module whose ELF is malformed is a warning (the kernel will refuse it
/// anyway, and says why).
pub fn firmware_for(modules: &[Module], firmware_dir: &Path) -> Result<Firmware, Error> {
    let mut firmware = Firmware {
        lib_symlink: firmware_dir
            .parent()
            .and_then(|lib| fs::read_link(lib).ok())
            .and_then(|target| target.to_str().map(str::to_string)),
        ..Firmware::default()
    };
    let mut seen = HashSet::new();
    for module in modules {
        let modinfo = match read_modinfo(module)? {
            Ok(modinfo) => modinfo,
            Err(problem) => {
                firmware.warnings.push(format!(
                    "cannot read the .modinfo section of {}: {problem} (its firmware, if \
                     any, is not packed)",
                    module.path.display()
                ));
                continue;
            }
        };
        let mut missing = Vec::new();
        for raw in values_of(&modinfo, "firmware") {
            let name = String::from_utf8_lossy(raw);
            if !seen.insert(name.to_string()) {
                continue;
            }
            if let Some(reason) = unusable_name(raw) {
                firmware.warnings.push(format!(
                    "module {} names firmware \"{}\": {reason}; not packed",
                    module.name,
                    name.escape_debug()
                ));
                continue;
            }
            match find_firmware(firmware_dir, &name) {
                Some(file) => firmware.files.push(file),
                None => missing.push(name.into_owned()),
            }
        }
        if !missing.is_empty() {
            firmware
                .warnings
                .push(missing_warning(&module.name, firmware_dir, &missing));
        }
    }
    Ok(firmware)
}

impl Image {
    /// Adds the files of `firmware` ([`firmware_for`]) where
    /// `/lib/firmware` leads, mode [`FIRMWARE_MODE`].
    ///
    /// When the image has a `lib` symlink already, the files go where it
    /// points; when it has a `lib` directory, under it. When it has neither
    /// and the host's `lib` is a symlink, that symlink is added as it is
    /// first, so host files added later find the same layout. Errors:
    /// those of [`Image::add_file`] and [`Image::add_symlink`], for
    /// instance [`Error::PathConflict`] for a `lib` symlink pointing out of
    /// the image.
    pub fn add_firmware(&mut self, firmware: &Firmware) -> Result<(), Error> {
        if firmware.files.is_empty() {
            return Ok(());
        }
        let lib = match self.entries.get("lib") {
            Some(Entry::Symlink { target }) => symlinked_dir(target),
            Some(_) => None,
            None => match &firmware.lib_symlink {
                Some(target) => {
                    self.add_symlink("lib", target)?;
                    symlinked_dir(target)
                }
                None => None,
            },
        };
        let dir = match lib {
            Some(lib) => format!("{lib}/firmware"),
            None => IMAGE_FIRMWARE_DIR.to_string(),
        };
        for file in &firmware.files {
            let dest = format!("{dir}/{}", file.name);
            self.add_file(&dest, &file.source, Some(FIRMWARE_MODE))?;
        }
        Ok(())
    }
}

/// The image directory a top-level symlink's `target` names (`usr/lib`
/// for `usr/lib` or `/usr/lib`), or `None` when it leaves the image; then
/// files go under `lib/` and adding them fails with a clear conflict.
fn symlinked_dir(target: &str) -> Option<String> {
    normalize_path(target).ok()
}

/// The `.modinfo` section of `module`, or why it cannot be read. An
/// unpacked module is read at offsets: its ELF header, section headers and
/// section names and `.modinfo`, a few KiB of a file of up to some MiB,
/// which is read again when the image is written. A compressed one is
/// unpacked whole.
fn read_modinfo(module: &Module) -> Result<Result<Vec<u8>, ModinfoProblem>, Error> {
    let read_error = |source| Error::ReadFile {
        path: module.path.clone(),
        source,
    };
    if let Some(compression) = module.compression {
        let data = decompress::decompress_file(&module.path, compression)?;
        return Ok(section_in_slice(&data, MODINFO).map(<[u8]>::to_vec));
    }
    let file = File::open(&module.path).map_err(read_error)?;
    let head = elf::read_at(&file, 0, HEAD_LEN as u64).map_err(read_error)?;
    let src = FileBytes {
        file: &file,
        size: u64::MAX,
        head: &head,
    };
    let range = match find_section(&src, &head, MODINFO) {
        Ok(range) => range,
        Err(Failure::Problem(problem)) => return Ok(Err(problem)),
        Err(Failure::Read(source)) => return Err(read_error(source)),
    };
    let Some((at, len)) = range else {
        return Ok(Ok(Vec::new()));
    };
    match src.range(at, len).map_err(read_error)? {
        Some(section) => Ok(Ok(section.into_owned())),
        None => Ok(Err(PAST_END)),
    }
}

/// Why firmware `name` cannot go in the image, if it cannot: request_firmware
/// takes names relative to the firmware directories.
fn unusable_name(name: &[u8]) -> Option<&'static str> {
    if std::str::from_utf8(name).is_err() {
        Some("not UTF-8")
    } else if name.starts_with(b"/") {
        Some("an absolute path")
    } else if name.split(|&b| b == b'/').any(|c| c == b"..") {
        Some("a \"..\" component")
    } else if name
        .split(|&b| b == b'/')
        .all(|c| c.is_empty() || c == b".")
    {
        Some("no file name")
    } else {
        None
    }
}

/// The first of `name`, `name.zst`, `name.xz` that is a file (following
/// symlinks) under `dir`.
fn find_firmware(dir: &Path, name: &str) -> Option<FirmwareFile> {
    FIRMWARE_SUFFIXES.iter().find_map(|suffix| {
        let source = dir.join(format!("{name}{suffix}"));
        let is_file = fs::metadata(&source).is_ok_and(|m| m.is_file());
        is_file.then(|| FirmwareFile {
            name: format!("{name}{suffix}"),
            source,
        })
    })
}

/// The warning for a module's firmware not found in `dir`.
fn missing_warning(module: &str, dir: &Path, missing: &[String]) -> String {
    let mut list = missing
        .iter()
        .take(MISSING_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if missing.len() > MISSING_SHOWN {
        list.push_str(&format!(" and {} more", missing.len() - MISSING_SHOWN));
    }
    format!(
        "module {module} names firmware not in {}: {list} (not packed; a device that \
         needs it will not work: install its firmware package if the VM has one)",
        dir.display()
    )
}

/// The values of the `key=value` strings of `elf`'s `.modinfo` section with
/// this key, in order (a module has one `firmware=` string per file).
///
/// ELF32 and ELF64 in either byte order are read through the section header
/// table (elf(5)), every offset and size checked against the data. A module
/// with no `.modinfo` section has no values. Never panics.
///
/// # Example
/// ```
/// use mkinitrd::firmware::modinfo_values;
/// assert!(modinfo_values(b"not an ELF file", "firmware").is_err());
/// ```
pub fn modinfo_values<'a>(elf: &'a [u8], key: &str) -> Result<Vec<&'a [u8]>, ModinfoProblem> {
    Ok(values_of(section_in_slice(elf, MODINFO)?, key))
}

/// The values of the `key=value` strings of a `.modinfo` section.
fn values_of<'a>(section: &'a [u8], key: &str) -> Vec<&'a [u8]> {
    section
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let value = entry.strip_prefix(key.as_bytes())?;
            value.strip_prefix(b"=")
        })
        .collect()
}

/// The data of the section of `elf`, a whole file, called `wanted`; empty
/// when there is none.
fn section_in_slice<'a>(elf: &'a [u8], wanted: &[u8]) -> Result<&'a [u8], ModinfoProblem> {
    let head = &elf[..elf.len().min(HEAD_LEN)];
    let range = find_section(&elf, head, wanted).map_err(|failure| match failure {
        Failure::Problem(problem) => problem,
        Failure::Read(never) => match never {},
    })?;
    match range {
        Some((at, len)) => elf::slice_range(elf, at, len).ok_or(PAST_END),
        None => Ok(&[]),
    }
}

/// Why [`find_section`] failed: the file is malformed, or reading it
/// failed.
enum Failure<E> {
    Problem(ModinfoProblem),
    Read(E),
}

impl<E> From<ModinfoProblem> for Failure<E> {
    fn from(problem: ModinfoProblem) -> Failure<E> {
        Failure::Problem(problem)
    }
}

/// Reads fixed-size integers of one ELF file, in its byte order.
struct ElfReader<'a> {
    data: &'a [u8],
    little_endian: bool,
}

impl<'a> ElfReader<'a> {
    /// The `len` bytes at `at`.
    fn bytes(&self, at: u64, len: u64) -> Result<&'a [u8], ModinfoProblem> {
        elf::slice_range(self.data, at, len).ok_or(PAST_END)
    }

    fn array<const N: usize>(&self, at: u64) -> Result<[u8; N], ModinfoProblem> {
        let bytes = self.bytes(at, N as u64)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        if !self.little_endian {
            array.reverse();
        }
        Ok(array)
    }

    fn u16(&self, at: u64) -> Result<u16, ModinfoProblem> {
        self.array(at).map(u16::from_le_bytes)
    }

    fn u32(&self, at: u64) -> Result<u32, ModinfoProblem> {
        self.array(at).map(u32::from_le_bytes)
    }

    fn u64(&self, at: u64) -> Result<u64, ModinfoProblem> {
        self.array(at).map(u64::from_le_bytes)
    }
}

/// The fields of a section header that matter here.
struct SectionHeader {
    name: u32,
    kind: u32,
    link: u32,
    offset: u64,
    size: u64,
}

/// The section header table of one ELF file, read into memory.
struct Sections<'t> {
    /// The table, from its first entry.
    reader: ElfReader<'t>,
    elf64: bool,
    entry_size: u64,
}

impl Sections<'_> {
    /// Section header `index`; offsets per elf(5), `Elf32_Shdr` /
    /// `Elf64_Shdr`.
    fn get(&self, index: u64) -> Result<SectionHeader, ModinfoProblem> {
        let at = index
            .checked_mul(self.entry_size)
            .ok_or(ModinfoProblem("the section header table is out of range"))?;
        let r = &self.reader;
        let (link, offset, size) = if self.elf64 {
            (r.u32(at + 40)?, r.u64(at + 24)?, r.u64(at + 32)?)
        } else {
            (
                r.u32(at + 24)?,
                u64::from(r.u32(at + 16)?),
                u64::from(r.u32(at + 20)?),
            )
        };
        Ok(SectionHeader {
            name: r.u32(at)?,
            kind: r.u32(at + 4)?,
            link,
            offset,
            size,
        })
    }
}

/// Where the data of `section` is: its offset and size in the file
/// (nothing for `SHT_NOBITS`).
fn data_range(section: &SectionHeader) -> (u64, u64) {
    if section.kind == SHT_NOBITS {
        return (0, 0);
    }
    (section.offset, section.size)
}

/// The `len` bytes at `at` of `src`, or [`PAST_END`].
fn fetch<'a, S: Source<'a>>(
    src: &S,
    at: u64,
    len: u64,
) -> Result<Cow<'a, [u8]>, Failure<S::Error>> {
    src.range(at, len)
        .map_err(Failure::Read)?
        .ok_or(Failure::Problem(PAST_END))
}

/// Where the data of the section called `wanted` is in the ELF file `src`,
/// whose first bytes (64 or all, if fewer) are `head`: its offset and size,
/// not checked against the file. `None` when there is no such section.
/// Reads the section header table and the section names, nothing else.
fn find_section<'a, S: Source<'a>>(
    src: &S,
    head: &[u8],
    wanted: &[u8],
) -> Result<Option<(u64, u64)>, Failure<S::Error>> {
    // e_ident: magic, EI_CLASS, EI_DATA.
    let ident = head
        .get(..16)
        .ok_or(ModinfoProblem("shorter than an ELF header"))?;
    if !ident.starts_with(b"\x7fELF") {
        return Err(ModinfoProblem("not an ELF file").into());
    }
    let elf64 = match ident[4] {
        1 => false,
        2 => true,
        _ => return Err(ModinfoProblem("unknown ELF class").into()),
    };
    let little_endian = match ident[5] {
        1 => true,
        2 => false,
        _ => return Err(ModinfoProblem("unknown ELF byte order").into()),
    };
    let reader = ElfReader {
        data: head,
        little_endian,
    };
    // e_shoff, e_shentsize, e_shnum, e_shstrndx.
    let (table, entry_size, count, names_index) = if elf64 {
        (
            reader.u64(0x28)?,
            reader.u16(0x3a)?,
            reader.u16(0x3c)?,
            reader.u16(0x3e)?,
        )
    } else {
        (
            u64::from(reader.u32(0x20)?),
            reader.u16(0x2e)?,
            reader.u16(0x30)?,
            reader.u16(0x32)?,
        )
    };
    if table == 0 {
        return Ok(None);
    }
    let min_entry = if elf64 { 64 } else { 40 };
    if entry_size < min_entry {
        return Err(ModinfoProblem("section headers are smaller than elf(5) says").into());
    }
    let entry_size = u64::from(entry_size);
    // Extended numbering (elf(5)): a count or name index that does not fit
    // 16 bits is in section 0's sh_size or sh_link.
    let first = if count == 0 || names_index == SHN_XINDEX {
        // The fields `Sections::get` reads: up to sh_link.
        let entry = fetch(src, table, if elf64 { 44 } else { 28 })?;
        let first = Sections {
            reader: ElfReader {
                data: &entry,
                little_endian,
            },
            elf64,
            entry_size,
        };
        Some(first.get(0)?)
    } else {
        None
    };
    let count = match (count, &first) {
        (0, Some(first)) => first.size,
        (n, _) => u64::from(n),
    };
    let names_index = match (names_index, &first) {
        (SHN_XINDEX, Some(first)) => u64::from(first.link),
        (n, _) => u64::from(n),
    };
    // Every header must be in the file: this also bounds the loop below.
    let runs_past = ModinfoProblem("the section header table runs past the end of the file");
    let table_len = count.checked_mul(entry_size).ok_or(runs_past)?;
    let table = src
        .range(table, table_len)
        .map_err(Failure::Read)?
        .ok_or(runs_past)?;
    let sections = Sections {
        reader: ElfReader {
            data: &table,
            little_endian,
        },
        elf64,
        entry_size,
    };
    if names_index >= count {
        return Err(ModinfoProblem("the section name table index is out of range").into());
    }
    let (names_at, names_len) = data_range(&sections.get(names_index)?);
    let names = fetch(src, names_at, names_len)?;
    for index in 0..count {
        let section = sections.get(index)?;
        let name = usize::try_from(section.name)
            .ok()
            .and_then(|at| names.get(at..))
            .map(|rest| rest.split(|&b| b == 0).next().unwrap_or(rest));
        if name == Some(wanted) {
            return Ok(Some(data_range(&section)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmod::Compression;
    use crate::testutil::TempDir;

    /// A minimal relocatable ELF file with a `.modinfo` section holding
    /// `modinfo`, and a `.shstrtab`: what `modinfo_values` reads of a module.
    fn fake_module(modinfo: &[u8], elf64: bool, little_endian: bool) -> Vec<u8> {
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

    const MODINFO: &[u8] = b"license=GPL\0firmware=a.bin\0description=x\0\
                             firmware=vendor/b.bin\0firmware=missing.bin\0\0\0";

    #[test]
    fn modinfo_values_in_every_class_and_byte_order() {
        for elf64 in [true, false] {
            for little_endian in [true, false] {
                let elf = fake_module(MODINFO, elf64, little_endian);
                let got = modinfo_values(&elf, "firmware").unwrap();
                assert_eq!(
                    got,
                    [&b"a.bin"[..], b"vendor/b.bin", b"missing.bin"],
                    "elf64 {elf64}, little endian {little_endian}"
                );
                assert_eq!(modinfo_values(&elf, "license").unwrap(), [b"GPL"]);
                // A key is matched whole, not as a prefix.
                assert!(modinfo_values(&elf, "firm").unwrap().is_empty());
            }
        }
    }

    #[test]
    fn malformed_elf_is_a_problem_not_a_panic() {
        assert_eq!(
            modinfo_values(b"", "firmware").unwrap_err().to_string(),
            "shorter than an ELF header"
        );
        assert_eq!(
            modinfo_values(&[0u8; 64], "firmware")
                .unwrap_err()
                .to_string(),
            "not an ELF file"
        );
        let elf = fake_module(MODINFO, true, true);
        // Every truncation and every single-byte change of the headers.
        for len in 0..elf.len() {
            let _ = modinfo_values(&elf[..len], "firmware");
        }
        for at in 0..elf.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut damaged = elf.clone();
                damaged[at] = value;
                let _ = modinfo_values(&damaged, "firmware");
            }
        }
        // A huge section count is refused before any loop.
        let mut huge = elf.clone();
        huge[0x3c..0x3e].copy_from_slice(&0u16.to_le_bytes());
        let table =
            usize::try_from(u64::from_le_bytes(huge[0x28..0x30].try_into().unwrap())).unwrap();
        huge[table + 32..table + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            modinfo_values(&huge, "firmware").unwrap_err().to_string(),
            "the section header table runs past the end of the file"
        );
    }

    #[test]
    fn reading_a_module_at_offsets_gives_what_reading_it_whole_gives() {
        let tmp = TempDir::new("firmware-offsets");
        let path = tmp.path().join("m.ko");
        let module = Module::from_dep_path(tmp.path(), "m.ko").unwrap();
        let check = |data: &[u8]| {
            fs::write(&path, data).unwrap();
            // (MODINFO here is the test's section content.)
            let whole = section_in_slice(data, super::MODINFO).map(<[u8]>::to_vec);
            assert_eq!(read_modinfo(&module).unwrap(), whole, "{data:02x?}");
        };
        for elf64 in [true, false] {
            let elf = fake_module(MODINFO, elf64, !elf64);
            fs::write(&path, &elf).unwrap();
            assert_eq!(read_modinfo(&module).unwrap().unwrap(), MODINFO);
            for len in 0..=elf.len() {
                check(&elf[..len]);
            }
            for at in 0..elf.len() {
                for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                    let mut damaged = elf.clone();
                    damaged[at] = value;
                    check(&damaged);
                }
            }
        }
    }

    #[test]
    fn firmware_is_found_packed_and_missing_ones_are_warned_about() {
        let tmp = TempDir::new("firmware");
        let moddir = tmp.path().join("modules");
        let fwdir = tmp.path().join("firmware");
        tmp.write("firmware/a.bin", b"A");
        tmp.write("firmware/vendor/b.bin.xz", b"B");
        tmp.write("firmware/vendor/b.bin.zst", b"B zst");
        tmp.write("firmware/c.bin", b"C");
        tmp.write("modules/kernel/m.ko", &fake_module(MODINFO, true, true));
        let packed = crate::decompress::tests::compress_with(
            Compression::Zstd,
            &fake_module(
                b"firmware=c.bin\0firmware=a.bin\0firmware=../../etc/shadow\0",
                true,
                true,
            ),
        );
        tmp.write("modules/kernel/n.ko.zst", &packed);
        tmp.write("modules/kernel/junk.ko", b"\x7fELF junk");
        let modules: Vec<Module> = ["kernel/m.ko", "kernel/n.ko.zst", "kernel/junk.ko"]
            .iter()
            .map(|rel| Module::from_dep_path(&moddir, rel).unwrap())
            .collect();
        let firmware = firmware_for(&modules, &fwdir).unwrap();
        assert_eq!(
            firmware.files,
            [
                FirmwareFile {
                    name: "a.bin".into(),
                    source: fwdir.join("a.bin")
                },
                // zstd before xz, as the kernel tries them.
                FirmwareFile {
                    name: "vendor/b.bin.zst".into(),
                    source: fwdir.join("vendor/b.bin.zst")
                },
                FirmwareFile {
                    name: "c.bin".into(),
                    source: fwdir.join("c.bin")
                },
            ]
        );
        assert_eq!(
            firmware.warnings,
            [
                format!(
                    "module m names firmware not in {}: missing.bin (not packed; a device \
                     that needs it will not work: install its firmware package if the VM \
                     has one)",
                    fwdir.display()
                ),
                "module n names firmware \"../../etc/shadow\": a \"..\" component; not packed"
                    .to_string(),
                format!(
                    "cannot read the .modinfo section of {}: shorter than an ELF header (its \
                     firmware, if any, is not packed)",
                    moddir.join("kernel/junk.ko").display()
                ),
            ]
        );
        let mut image = Image::new(0);
        image.add_firmware(&firmware).unwrap();
        let paths: Vec<&str> = image.entries().map(|(path, _)| path).collect();
        assert_eq!(
            paths,
            [
                "lib",
                "lib/firmware",
                "lib/firmware/a.bin",
                "lib/firmware/c.bin",
                "lib/firmware/vendor",
                "lib/firmware/vendor/b.bin.zst",
            ]
        );
    }

    /// A firmware directory under `lib -> usr/lib`, as on Debian 12.
    fn merged_usr_firmware(tmp: &TempDir) -> Firmware {
        tmp.write("usr/lib/firmware/a.bin", b"A");
        std::os::unix::fs::symlink("usr/lib", tmp.path().join("lib")).unwrap();
        tmp.write(
            "usr/lib/modules/m.ko",
            &fake_module(b"firmware=a.bin\0", true, true),
        );
        let module = Module::from_dep_path(&tmp.path().join("usr/lib/modules"), "m.ko").unwrap();
        firmware_for(&[module], &tmp.path().join("lib/firmware")).unwrap()
    }

    fn image_paths(image: &Image) -> Vec<String> {
        image
            .entries()
            .map(|(path, entry)| match entry {
                Entry::Symlink { target } => format!("{path} -> {target}"),
                _ => path.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_merged_usr_host_gives_a_lib_symlink() {
        let tmp = TempDir::new("firmware-merged");
        let firmware = merged_usr_firmware(&tmp);
        assert_eq!(firmware.lib_symlink.as_deref(), Some("usr/lib"));
        let mut image = Image::new(0);
        image.add_firmware(&firmware).unwrap();
        assert_eq!(
            image_paths(&image),
            [
                "lib -> usr/lib",
                "usr",
                "usr/lib",
                "usr/lib/firmware",
                "usr/lib/firmware/a.bin"
            ]
        );
        // Host libraries added afterwards bring the same symlink.
        image.add_symlink("lib", "usr/lib").unwrap();
    }

    #[test]
    fn the_image_layout_wins_over_the_host_one() {
        let tmp = TempDir::new("firmware-layout");
        let firmware = merged_usr_firmware(&tmp);
        let mut image = Image::new(0);
        image.add_dir("lib", 0o755).unwrap();
        image.add_firmware(&firmware).unwrap();
        assert_eq!(
            image_paths(&image),
            ["lib", "lib/firmware", "lib/firmware/a.bin"]
        );
        let mut image = Image::new(0);
        image.add_symlink("lib", "/usr/lib").unwrap();
        image.add_firmware(&firmware).unwrap();
        assert_eq!(image_paths(&image)[0], "lib -> /usr/lib");
        assert_eq!(image_paths(&image)[3], "usr/lib/firmware");
        // No firmware, no symlink.
        let mut image = Image::new(0);
        image.add_firmware(&Firmware::default()).unwrap();
        assert!(image.entries().next().is_none());
    }

    #[test]
    fn long_missing_lists_are_shortened() {
        let missing: Vec<String> = (0..8).map(|i| format!("f{i}.bin")).collect();
        let warning = missing_warning("amdgpu", Path::new("/lib/firmware"), &missing);
        assert!(
            warning.starts_with(
                "module amdgpu names firmware not in /lib/firmware: f0.bin, f1.bin, f2.bin, \
                 f3.bin, f4.bin and 3 more (not packed;"
            ),
            "{warning}"
        );
    }

    #[test]
    fn unusable_names() {
        assert_eq!(unusable_name(b"/etc/x"), Some("an absolute path"));
        assert_eq!(unusable_name(b"a/../b"), Some("a \"..\" component"));
        assert_eq!(unusable_name(b""), Some("no file name"));
        assert_eq!(unusable_name(b"./"), Some("no file name"));
        assert_eq!(unusable_name(b"\xff"), Some("not UTF-8"));
        assert_eq!(unusable_name(b"iwlwifi-8000C-36.ucode"), None);
        assert_eq!(unusable_name(b"amdgpu/navi10_sos.bin"), None);
    }

    #[test]
    fn a_module_that_cannot_be_read_is_an_error() {
        let tmp = TempDir::new("firmware-unreadable");
        let module = Module::from_dep_path(tmp.path(), "kernel/gone.ko").unwrap();
        let err = firmware_for(&[module], tmp.path()).unwrap_err();
        assert!(matches!(err, Error::ReadFile { .. }), "{err}");
    }
}
