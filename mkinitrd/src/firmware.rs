//! Firmware named by packed modules.
//!
//! A module lists the files it may ask `request_firmware` for as
//! `firmware=NAME` strings in its `.modinfo` ELF section ([`modinfo_values`]
//! reads them; [`firmware_for`] reads just the section headers and that
//! section of a module file, or unpacks a compressed one first).
//! [`firmware_for`] finds each under the host's firmware directory, and
//! [`crate::image::Image::add_firmware`] packs it where `/lib/firmware/NAME` leads in the
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

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::elf::{self, ElfProblem, Failure};
use crate::error::Error;
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
/// The section holding a module's `key=value` strings.
const MODINFO: &[u8] = b".modinfo";

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

/// The `.modinfo` section of `module` (empty when it has none), or why it
/// cannot be read. An unpacked module is read at offsets
/// ([`elf::read_section`]): its ELF header, section headers and section
/// names and `.modinfo`, a few KiB of a file of up to some MiB, which is
/// read again when the image is written. A compressed one is unpacked
/// whole.
fn read_modinfo(module: &Module) -> Result<Result<Vec<u8>, ElfProblem>, Error> {
    let read_error = |source| Error::ReadFile {
        path: module.path.clone(),
        source,
    };
    if let Some(compression) = module.compression {
        let data = crate::kmod::decompress_file(&module.path, compression)?;
        let section = elf::section_data(&data, MODINFO);
        return Ok(section.map(|found| found.unwrap_or_default().to_vec()));
    }
    let file = File::open(&module.path).map_err(read_error)?;
    match elf::read_section(&file, MODINFO) {
        Ok(section) => Ok(Ok(section.unwrap_or_default())),
        Err(Failure::Elf(problem)) => Ok(Err(problem)),
        Err(Failure::Read(source)) => Err(read_error(source)),
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
pub fn modinfo_values<'a>(elf: &'a [u8], key: &str) -> Result<Vec<&'a [u8]>, ElfProblem> {
    let section = elf::section_data(elf, MODINFO)?;
    Ok(values_of(section.unwrap_or_default(), key))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Entry, Image};
    use crate::kmod::Compression;
    use crate::testutil::TempDir;

    const MODINFO: &[u8] = b"license=GPL\0firmware=a.bin\0description=x\0\
                             firmware=vendor/b.bin\0firmware=missing.bin\0\0\0";

    #[test]
    fn modinfo_values_in_every_class_and_byte_order() {
        for elf64 in [true, false] {
            for little_endian in [true, false] {
                let elf = elf::make_module(MODINFO, elf64, little_endian);
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
            "not an ELF file"
        );
        assert_eq!(
            modinfo_values(&[0u8; 64], "firmware")
                .unwrap_err()
                .to_string(),
            "not an ELF file"
        );
        let elf = elf::make_module(MODINFO, true, true);
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
            "the section header table is outside the file"
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
            let whole = elf::section_data(data, super::MODINFO)
                .map(|found| found.unwrap_or_default().to_vec());
            assert_eq!(read_modinfo(&module).unwrap(), whole, "{data:02x?}");
        };
        for elf64 in [true, false] {
            let elf = elf::make_module(MODINFO, elf64, !elf64);
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
        tmp.write(
            "modules/kernel/m.ko",
            &elf::make_module(MODINFO, true, true),
        );
        let packed = crate::decompress::tests::compress_with(
            Compression::Zstd,
            &elf::make_module(
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
                    "cannot read the .modinfo section of {}: unknown ELF class 32 (its \
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
            &elf::make_module(b"firmware=a.bin\0", true, true),
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
