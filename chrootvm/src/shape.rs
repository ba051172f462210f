//! Choosing the VM's shape (issue 17): qemu's microvm booting the kernel
//! through PVH when the kernel and the host allow it, else q35 booting the
//! bzImage, which any kernel does. `--machine` forces one.
//!
//! microvm needs a PVH-bootable vmlinux ([`crate::vmlinux`]), the
//! virtio_mmio driver, room for every device on its virtio-mmio
//! transports, and under TCG the host's TSC frequency: microvm has no HPET
//! and no ACPI PM timer, and the kernel's PIT calibration of the TSC fails
//! under TCG whenever the host is busy (qemu emulates each PIT read too
//! slowly), after which it has no clock to calibrate against and hangs in
//! the delay loop's calibration. Under TCG the guest's TSC is the host's
//! (qemu's rdtsc helper reads the host's counter), so the host's known
//! frequency is the guest's, and `tsc_early_khz=` skips the calibration.

use std::fs;
use std::path::{Path, PathBuf};

use mkinitrd::kmod::ModuleTree;

use crate::cli::MachineChoice;
use crate::error::Error;
use crate::qemu::{MICROVM_TRANSPORTS, Shape, TscClock};
use crate::vmlinux;

/// The shape chosen, with what it boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// The machine.
    pub shape: Shape,
    /// The kernel file qemu loads: the bzImage, or the PVH vmlinux.
    pub kernel: PathBuf,
    /// Under TCG on microvm: the clock the kernel is told about.
    pub clock: Option<TscClock>,
}

/// What the choice depends on, gathered by the caller.
pub struct Needs<'a> {
    /// `--machine`.
    pub choice: MachineChoice,
    /// The bzImage (or ELF) found.
    pub kernel: &'a Path,
    /// Its module tree.
    pub tree: &'a ModuleTree,
    /// Its module tree's directory (the kernel's config is found from it).
    pub moddir: &'a Path,
    /// The guest may run under TCG (chosen, or the fallback from KVM).
    pub tcg: bool,
    /// virtio devices the VM has: shares, disks, network, the ports.
    pub devices: usize,
}

/// Chooses the shape: microvm when everything it needs is there, else q35
/// (with `--machine microvm`, what is missing is an error).
///
/// # Errors
/// [`Error::Machine`] when `--machine microvm` cannot be honoured.
pub fn choose(needs: &Needs<'_>, debug: bool) -> Result<Chosen, Error> {
    let q35 = Chosen {
        shape: Shape::Q35,
        kernel: needs.kernel.to_path_buf(),
        clock: None,
    };
    if needs.choice == MachineChoice::Q35 {
        return Ok(q35);
    }
    match microvm(needs) {
        Ok(chosen) => Ok(chosen),
        Err(why) if needs.choice == MachineChoice::Microvm => Err(Error::Machine(why)),
        Err(why) => {
            if debug {
                note!("booting q35, not microvm: {why}");
            }
            Ok(q35)
        }
    }
}

fn microvm(needs: &Needs<'_>) -> Result<Chosen, String> {
    let transport = Shape::Microvm.transport_module();
    if needs.tree.get(transport).is_none() && !needs.tree.is_builtin(transport) {
        return Err(format!("the kernel has no {transport} driver"));
    }
    if needs.devices > MICROVM_TRANSPORTS {
        return Err(format!(
            "{} virtio devices are more than microvm's {MICROVM_TRANSPORTS} transports",
            needs.devices
        ));
    }
    let clock = if needs.tcg {
        let khz = host_tsc_khz(&fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
            .ok_or("the host's TSC frequency is not known (the guest could not calibrate its clock under TCG)")?;
        Some(TscClock {
            khz,
            hz: kernel_hz(needs.moddir),
        })
    } else {
        None
    };
    let kernel =
        vmlinux::pvh_image(needs.kernel, vmlinux::cache_dir().as_deref()).map_err(|e| {
            format!(
                "{} cannot boot through PVH: {}",
                needs.kernel.display(),
                e.0
            )
        })?;
    Ok(Chosen {
        shape: Shape::Microvm,
        kernel,
        clock,
    })
}

/// The host's TSC frequency in kHz from /proc/cpuinfo's "cpu MHz", when
/// that is the TSC's: the kernel knew the frequency rather than measured
/// it (`tsc_known_freq`: from CPUID or the hypervisor), the TSC runs at a
/// constant rate (`constant_tsc`), and the line is not a sampled current
/// frequency (which it is with `aperfmperf`, on hosts with cpufreq).
pub fn host_tsc_khz(cpuinfo: &str) -> Option<u64> {
    let field = |name: &str| {
        cpuinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    };
    let flags: Vec<&str> = field("flags")?.split_whitespace().collect();
    let trusted = flags.contains(&"tsc_known_freq")
        && flags.contains(&"constant_tsc")
        && !flags.contains(&"aperfmperf");
    if !trusted {
        return None;
    }
    let (mhz, frac) = field("cpu MHz")?
        .split_once('.')
        .unwrap_or((field("cpu MHz")?, "0"));
    let frac = format!("{frac:0<3}");
    let khz = mhz.parse::<u64>().ok()? * 1000 + frac.get(..3)?.parse::<u64>().ok()?;
    (khz > 0).then_some(khz)
}

/// The kernel's timer frequency (CONFIG_HZ) from its config, for `lpj=`.
fn kernel_hz(moddir: &Path) -> Option<u64> {
    mkinitrd::decompress::kernel_config_candidates(moddir)
        .iter()
        .find_map(|path| fs::read_to_string(path).ok())
        .and_then(|config| {
            config
                .lines()
                .find_map(|line| line.strip_prefix("CONFIG_HZ="))
                .and_then(|hz| hz.trim().parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM: &str = "processor\t: 0\ncpu MHz\t\t: 2600.000\nflags\t\t: fpu tsc constant_tsc nonstop_tsc tsc_known_freq hypervisor\n\nprocessor\t: 1\ncpu MHz\t\t: 2600.000\n";

    #[test]
    fn the_tsc_frequency_only_when_cpuinfo_gives_it() {
        assert_eq!(host_tsc_khz(VM), Some(2_600_000));
        assert_eq!(
            host_tsc_khz(&VM.replace("2600.000", "2903.9")),
            Some(2_903_900)
        );
        // Measured by the kernel, or a sampled current frequency: not used.
        assert_eq!(host_tsc_khz(&VM.replace("tsc_known_freq", "")), None);
        assert_eq!(host_tsc_khz(&VM.replace("hypervisor", "aperfmperf")), None);
        assert_eq!(host_tsc_khz(""), None);
    }
}
