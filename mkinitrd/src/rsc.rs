//! rapido resources: the VM size an image asks for.
//!
//! rapido marks what a test VM needs with entries under `rapido-rsc/` in
//! its initramfs, and its VM launcher reads them back from the image before
//! booting it: rapido-linux/rapido `src/bin/rapido-vm.rs`
//! (`vm_resource_line_process`, `vm_resources_get`); cut scripts add them
//! as empty files (`file /rapido-rsc/cpu/1` in a manifest, `--include
//! "dracut.conf.d/.empty /rapido-rsc/mem/512M"` before that). The layout:
//!
//! | entry                  | meaning                                      |
//! |------------------------|----------------------------------------------|
//! | `rapido-rsc/cpu/N`     | N vCPUs (`qemu -smp N`)                      |
//! | `rapido-rsc/mem/SIZE`  | memory, `qemu -m SIZE`: digits, then `M`, `G` or nothing (MiB), either case |
//! | `rapido-rsc/net`       | the VM gets network devices                  |
//!
//! The value is the entry's name; files are empty. rapido-cut puts its
//! net-conf directory at `rapido-rsc/net`; [`add_to_image`] adds an empty
//! directory there unless the image already has one (from `tree NETCONF
//! /rapido-rsc/net`). Without entries rapido-vm boots 2 vCPUs, 512M and no
//! network; chrootvm applies its own defaults.
//!
//! rapido-vm stops reading at the first name after the `rapido-rsc` ones,
//! so they must be adjacent in the archive: [`Image`] writes in byte order
//! of path, which keeps every name starting with `rapido-rsc` together.
//! This module keeps no state.

use crate::cpio;
use crate::error::Error;
use crate::image::{DIR_MODE, Image};

/// Directory of the resource entries.
pub const RSC_DIR: &str = "rapido-rsc";
/// Directory whose entry name is the vCPU count.
pub const CPU_DIR: &str = "rapido-rsc/cpu";
/// Directory whose entry name is the memory size.
pub const MEM_DIR: &str = "rapido-rsc/mem";
/// Entry whose presence asks for network devices.
pub const NET_PATH: &str = "rapido-rsc/net";
/// Mode of the empty marker files (rapido packs dracut.conf.d/.empty, 0644).
pub const MARKER_MODE: u32 = 0o644;
/// Most vCPUs accepted: qemu's x86 q35 limit is 1024 (`max_cpus`).
pub const MAX_CPUS: u32 = 1024;

/// What an image asks of the VM booting it; `None`/`false` asks nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// vCPUs, from 1 to [`MAX_CPUS`].
    pub cpus: Option<u32>,
    /// Memory as qemu's `-m` takes it: `512M`, `2G`, `1024` (MiB).
    pub mem: Option<String>,
    /// Whether the VM gets network devices.
    pub net: bool,
}

/// Parses a `--cpus` value: a whole number from 1 to [`MAX_CPUS`].
///
/// Errors: [`Error::BadOption`].
pub fn parse_cpus(value: &str) -> Result<u32, Error> {
    cpus_value(value).ok_or_else(|| bad_cpus(value))
}

/// Parses a `--mem` value: digits then `M`, `G` or nothing (MiB), in either
/// case, not zero; exactly what rapido-vm reads back.
///
/// Errors: [`Error::BadOption`].
///
/// # Example
/// ```
/// use mkinitrd::rsc::parse_mem;
/// assert_eq!(parse_mem("2G")?, "2G");
/// assert!(parse_mem("2 GiB").is_err());
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn parse_mem(value: &str) -> Result<String, Error> {
    if is_mem_value(value) {
        Ok(value.to_string())
    } else {
        Err(bad_mem(value))
    }
}

/// Adds the `rapido-rsc/` entries of `resources` to `image`.
///
/// Values are checked first, so nothing is added when one is bad. Errors:
/// [`Error::BadOption`] for a value [`parse_cpus`] or [`parse_mem`] would
/// refuse, [`Error::ResourceConflict`] when the image already asks for a
/// different count or size (a manifest's `file /rapido-rsc/cpu/2`), and
/// those of [`Image::add_bytes`].
///
/// # Example
/// ```
/// use mkinitrd::image::Image;
/// use mkinitrd::rsc::{add_to_image, Resources};
/// let mut image = Image::new(0);
/// let wanted = Resources { cpus: Some(4), mem: Some("2G".into()), net: true };
/// add_to_image(&wanted, &mut image)?;
/// let paths: Vec<&str> = image.entries().map(|(path, _)| path).collect();
/// assert_eq!(paths, [
///     "rapido-rsc", "rapido-rsc/cpu", "rapido-rsc/cpu/4",
///     "rapido-rsc/mem", "rapido-rsc/mem/2G", "rapido-rsc/net",
/// ]);
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn add_to_image(resources: &Resources, image: &mut Image) -> Result<(), Error> {
    if let Some(cpus) = resources.cpus {
        parse_cpus(&cpus.to_string())?;
    }
    if let Some(mem) = &resources.mem {
        parse_mem(mem)?;
    }
    if let Some(cpus) = resources.cpus {
        add_marker(image, CPU_DIR, &cpus.to_string())?;
    }
    if let Some(mem) = &resources.mem {
        add_marker(image, MEM_DIR, mem)?;
    }
    // A planned net-conf tree already says "networked"; add_dir would
    // reset its mode.
    if resources.net && !image.entries().any(|(path, _)| path == NET_PATH) {
        image.add_dir(NET_PATH, DIR_MODE)?;
    }
    Ok(())
}

/// Reads the resources an archive asks for from its entries, as rapido-vm
/// does: for each kind the last valid entry in archive order wins.
///
/// Names may start with `/` or `./` (archives made with `find . | cpio`).
/// Entries with a value rapido-vm would refuse are ignored, as is anything
/// else under `rapido-rsc/`.
///
/// # Example
/// ```
/// use mkinitrd::cpio::read_archive;
/// use mkinitrd::image::Image;
/// use mkinitrd::rsc::{add_to_image, read_from_entries, Resources};
/// let wanted = Resources { cpus: Some(1), mem: Some("512M".into()), net: false };
/// let mut image = Image::new(0);
/// add_to_image(&wanted, &mut image)?;
/// let mut bytes = Vec::new();
/// image.write_to(&mut bytes)?;
/// assert_eq!(read_from_entries(&read_archive(&bytes)?), wanted);
/// # Ok::<(), mkinitrd::Error>(())
/// ```
pub fn read_from_entries(entries: &[cpio::Entry]) -> Resources {
    let mut found = Resources::default();
    for entry in entries {
        let name = archive_name(&entry.name);
        let Some(rest) = name
            .strip_prefix(RSC_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            continue;
        };
        if let Some(value) = rest.strip_prefix("cpu/") {
            if let Some(cpus) = cpus_value(value) {
                found.cpus = Some(cpus);
            }
        } else if let Some(value) = rest.strip_prefix("mem/") {
            if is_mem_value(value) {
                found.mem = Some(value.to_string());
            }
        } else if rest == "net" || rest.starts_with("net/") {
            found.net = true;
        }
    }
    found
}

/// `name` without leading `/` and `./`.
fn archive_name(mut name: &str) -> &str {
    loop {
        if let Some(rest) = name.strip_prefix("./") {
            name = rest;
        } else if let Some(rest) = name.strip_prefix('/') {
            name = rest;
        } else {
            return name;
        }
    }
}

/// Adds the empty file `dir/value`, unless another value is planned there.
fn add_marker(image: &mut Image, dir: &str, value: &str) -> Result<(), Error> {
    let path = format!("{dir}/{value}");
    let prefix = format!("{dir}/");
    let other = image
        .entries()
        .map(|(planned, _)| planned)
        .find(|planned| planned.starts_with(&prefix) && *planned != path);
    if let Some(existing) = other {
        return Err(Error::ResourceConflict {
            path,
            existing: existing.to_string(),
        });
    }
    image.add_bytes(&path, Vec::new(), MARKER_MODE)
}

/// A vCPU count from 1 to [`MAX_CPUS`], in plain decimal digits.
fn cpus_value(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| (1..=MAX_CPUS).contains(n))
}

/// Whether `text` is a memory size rapido-vm reads: digits (not all
/// zeros), then `m`, `M`, `g`, `G` or nothing.
fn is_mem_value(text: &str) -> bool {
    let digits = text.strip_suffix(['m', 'M', 'g', 'G']).unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
}

fn bad_cpus(value: &str) -> Error {
    Error::BadOption {
        option: "--cpus",
        value: value.to_string(),
        problem: format!("not a whole number from 1 to {MAX_CPUS}"),
    }
}

fn bad_mem(value: &str) -> Error {
    Error::BadOption {
        option: "--mem",
        value: value.to_string(),
        problem: "not a size like 512M, 2G or 1024 (digits, then M, G or nothing for MiB)"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::{S_IFDIR, S_IFREG, read_archive};
    use crate::image::Entry;

    fn bytes_of(image: &Image) -> Vec<u8> {
        let mut out = Vec::new();
        image.write_to(&mut out).unwrap();
        out
    }

    /// An archive entry named `name` (read back from a real archive, so
    /// the test does not depend on every field of [`cpio::Entry`]).
    fn entry(name: &str) -> cpio::Entry {
        let mut writer = cpio::Writer::new(Vec::new());
        writer.write_bytes("x", 0o644, 0, b"").unwrap();
        let mut entry = read_archive(&writer.finish().unwrap()).unwrap().remove(0);
        entry.name = name.to_string();
        entry
    }

    #[test]
    fn cpus_values() {
        assert_eq!(parse_cpus("1").unwrap(), 1);
        assert_eq!(parse_cpus("1024").unwrap(), 1024);
        assert_eq!(parse_cpus("08").unwrap(), 8);
        for bad in [
            "0",
            "1025",
            "",
            "-1",
            "+2",
            "2.0",
            " 2",
            "4294967296",
            "two",
        ] {
            assert!(parse_cpus(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_cpus("0").unwrap_err().to_string(),
            "cannot use --cpus 0: not a whole number from 1 to 1024"
        );
    }

    #[test]
    fn mem_values() {
        for good in ["512M", "512m", "2G", "2g", "1024", "1"] {
            assert_eq!(parse_mem(good).unwrap(), good);
        }
        for bad in [
            "",
            "M",
            "0",
            "0G",
            "2T",
            "2GB",
            "2 G",
            "-1G",
            "1.5G",
            "G2",
            "99999999999999999999M",
        ] {
            assert!(parse_mem(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_mem("2GiB").unwrap_err().to_string(),
            "cannot use --mem 2GiB: not a size like 512M, 2G or 1024 (digits, then M, G or \
             nothing for MiB)"
        );
    }

    #[test]
    fn entries_are_empty_files_and_a_net_directory() {
        let mut image = Image::new(0);
        let resources = Resources {
            cpus: Some(8),
            mem: Some("4G".into()),
            net: true,
        };
        add_to_image(&resources, &mut image).unwrap();
        let entries = read_archive(&bytes_of(&image)).unwrap();
        let got: Vec<(&str, u32, u32)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.mode, e.size))
            .collect();
        assert_eq!(
            got,
            [
                ("rapido-rsc", S_IFDIR | 0o755, 0),
                ("rapido-rsc/cpu", S_IFDIR | 0o755, 0),
                ("rapido-rsc/cpu/8", S_IFREG | 0o644, 0),
                ("rapido-rsc/mem", S_IFDIR | 0o755, 0),
                ("rapido-rsc/mem/4G", S_IFREG | 0o644, 0),
                ("rapido-rsc/net", S_IFDIR | 0o755, 0),
            ]
        );
        assert!(entries.iter().all(|e| e.uid == 0 && e.gid == 0));
    }

    #[test]
    fn nothing_asked_adds_nothing() {
        let mut image = Image::new(0);
        add_to_image(&Resources::default(), &mut image).unwrap();
        assert!(image.entries().next().is_none());
    }

    #[test]
    fn round_trip_through_an_archive() {
        for resources in [
            Resources::default(),
            Resources {
                cpus: Some(1),
                mem: None,
                net: false,
            },
            Resources {
                cpus: None,
                mem: Some("1024".into()),
                net: true,
            },
            Resources {
                cpus: Some(1024),
                mem: Some("16g".into()),
                net: true,
            },
        ] {
            let mut image = Image::new(0);
            image
                .add_bytes("etc/hostname", b"vm\n".to_vec(), 0o644)
                .unwrap();
            add_to_image(&resources, &mut image).unwrap();
            let entries = read_archive(&bytes_of(&image)).unwrap();
            assert_eq!(read_from_entries(&entries), resources);
        }
    }

    #[test]
    fn bad_values_add_nothing() {
        let mut image = Image::new(0);
        let resources = Resources {
            cpus: Some(2),
            mem: Some("lots".into()),
            net: true,
        };
        let err = add_to_image(&resources, &mut image).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BadOption {
                    option: "--mem",
                    ..
                }
            ),
            "{err}"
        );
        let zero = Resources {
            cpus: Some(0),
            ..Resources::default()
        };
        assert!(add_to_image(&zero, &mut image).is_err());
        assert!(image.entries().next().is_none());
    }

    #[test]
    fn a_second_value_for_one_resource_is_refused() {
        let mut image = Image::new(0);
        // As a manifest's `file /rapido-rsc/cpu/2 empty` would plan it.
        image
            .add_bytes("rapido-rsc/cpu/2", Vec::new(), 0o644)
            .unwrap();
        let four = Resources {
            cpus: Some(4),
            ..Resources::default()
        };
        assert_eq!(
            add_to_image(&four, &mut image).unwrap_err().to_string(),
            "cannot add rapido-rsc/cpu/4 to the image: rapido-rsc/cpu/2 is already planned \
             (give each rapido resource once)"
        );
        // The same value again is fine.
        let two = Resources {
            cpus: Some(2),
            ..Resources::default()
        };
        add_to_image(&two, &mut image).unwrap();
    }

    #[test]
    fn a_planned_net_conf_tree_is_kept() {
        let mut image = Image::new(0);
        image.add_dir("rapido-rsc/net", 0o700).unwrap();
        image
            .add_bytes("rapido-rsc/net/vm1/hostname", b"vm1\n".to_vec(), 0o644)
            .unwrap();
        let net = Resources {
            net: true,
            ..Resources::default()
        };
        add_to_image(&net, &mut image).unwrap();
        let mode = image
            .entries()
            .find(|(path, _)| *path == NET_PATH)
            .map(|(_, e)| e.clone());
        assert_eq!(mode, Some(Entry::Dir { mode: 0o700 }));
    }

    #[test]
    fn reading_follows_rapido_vm() {
        let names = [
            "./rapido-rsc/cpu/3",
            "/rapido-rsc/mem/1G",
            // Values rapido-vm refuses are skipped; the last good one wins.
            "rapido-rsc/cpu/0",
            "rapido-rsc/cpu/many",
            "rapido-rsc/mem/2T",
            "rapido-rsc/mem/2G",
            "rapido-rsc/qemu/custom_args",
            "rapido-rsc/net/vm1/eth0.network",
            // Not resources.
            "rapido-rscx/cpu/9",
            "etc/rapido-rsc/cpu/9",
        ];
        let entries: Vec<cpio::Entry> = names.iter().map(|n| entry(n)).collect();
        assert_eq!(
            read_from_entries(&entries),
            Resources {
                cpus: Some(3),
                mem: Some("2G".into()),
                net: true
            }
        );
        assert_eq!(read_from_entries(&[]), Resources::default());
    }

    #[test]
    fn resource_entries_stay_adjacent_in_the_archive() {
        // rapido-vm stops at the first name after the rapido-rsc ones.
        let mut image = Image::new(0);
        for path in [
            "rapido",
            "rapido-rsc-notes",
            "rapido-rsd",
            "rapido.conf",
            "rapido_x/y",
        ] {
            image.add_bytes(path, Vec::new(), 0o644).unwrap();
        }
        let resources = Resources {
            cpus: Some(2),
            mem: Some("1G".into()),
            net: true,
        };
        add_to_image(&resources, &mut image).unwrap();
        let entries = read_archive(&bytes_of(&image)).unwrap();
        let in_rsc: Vec<bool> = entries
            .iter()
            .map(|e| e.name.starts_with(RSC_DIR))
            .collect();
        let first = in_rsc.iter().position(|&x| x).unwrap();
        let last = in_rsc.iter().rposition(|&x| x).unwrap();
        assert!(in_rsc[first..=last].iter().all(|&x| x), "{entries:?}");
    }
}
