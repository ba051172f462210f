//! Choosing KVM or TCG. A readable /dev/kvm is not enough: nested hosts
//! expose one whose guests hang or whose CPU model qemu cannot set up. So
//! `auto` runs a tiny guest under KVM first: a 64 KiB "BIOS" whose reset
//! vector writes to qemu's isa-debug-exit port. qemu exits with a known
//! status only if KVM really executed guest code.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Accel;
use crate::error::Error;
use crate::qemu::Engine;

/// How long the probe guest may take; a working KVM needs milliseconds.
const PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// The port the probe writes to (`-device isa-debug-exit,iobase=0xf4`).
const DEBUG_EXIT_PORT: u8 = 0xf4;
/// The value it writes; qemu exits with `(value << 1) | 1`.
const PROBE_VALUE: u8 = 0x2a;

/// qemu requires a BIOS image to be a multiple of 64 KiB; its last 16
/// bytes sit at the x86 reset vector (0xFFFFFFF0, real mode F000:FFF0).
const BIOS_SIZE: usize = 64 * 1024;

/// Decides the engine for `--accel`.
///
/// # Errors
/// [`Error::KvmUnusable`] for `--accel kvm` when the probe fails.
pub fn choose(accel: Accel, qemu: &Path, scratch: &Path, debug: bool) -> Result<Engine, Error> {
    match accel {
        Accel::Tcg => Ok(Engine::Tcg),
        Accel::Kvm => probe_kvm(qemu, scratch)
            .map(|()| Engine::Kvm)
            .map_err(Error::KvmUnusable),
        Accel::Auto => match probe_kvm(qemu, scratch) {
            Ok(()) => {
                if debug {
                    eprintln!("chrootvm: using KVM");
                }
                Ok(Engine::Kvm)
            }
            Err(reason) => {
                if debug {
                    eprintln!("chrootvm: using TCG (software emulation): {reason}");
                }
                Ok(Engine::Tcg)
            }
        },
    }
}

/// The probe BIOS: `mov al, 0x2a; out 0xf4, al; hlt; jmp hlt` at the
/// reset vector, `hlt` everywhere else.
fn probe_bios() -> Vec<u8> {
    let mut bios = vec![0xf4; BIOS_SIZE];
    let code = [0xb0, PROBE_VALUE, 0xe6, DEBUG_EXIT_PORT, 0xf4, 0xeb, 0xfd];
    let reset = BIOS_SIZE - 16;
    bios[reset..reset + code.len()].copy_from_slice(&code);
    bios
}

/// Whether a guest runs under KVM here; the reason if not.
fn probe_kvm(qemu: &Path, scratch: &Path) -> Result<(), String> {
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Err(format!(
            "cannot open /dev/kvm: {}",
            crate::error::OsText(&e)
        ));
    }
    let bios = scratch.join("kvm-probe.bin");
    std::fs::write(&bios, probe_bios())
        .map_err(|e| format!("cannot write {}: {e}", bios.display()))?;
    let argv = probe_argv(&bios);
    let mut child = Command::new(qemu)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu.display()))?;
    let deadline = Instant::now() + PROBE_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "a test guest did not finish within {}s under KVM",
                    PROBE_DEADLINE.as_secs()
                ));
            }
        }
    };
    let _ = std::fs::remove_file(&bios);
    let expected = (i32::from(PROBE_VALUE) << 1) | 1;
    if status.code() == Some(expected) {
        Ok(())
    } else {
        Err(format!("a test guest failed under KVM ({status})"))
    }
}

fn probe_argv(bios: &Path) -> Vec<OsString> {
    let mut argv: Vec<OsString> = Vec::new();
    for (flag, value) in [
        ("-machine", "pc"),
        ("-accel", "kvm"),
        // The CPU model the real run uses: some hosts fail on exactly it.
        ("-cpu", "host"),
        ("-m", "16"),
        ("-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"),
        ("-display", "none"),
    ] {
        argv.extend([flag.into(), value.into()]);
    }
    argv.extend(["-bios".into(), bios.into()]);
    argv.extend(["-nodefaults".into(), "-no-user-config".into()]);
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_has_the_probe_at_the_reset_vector() {
        let bios = probe_bios();
        assert_eq!(bios.len() % (64 * 1024), 0);
        assert_eq!(
            &bios[BIOS_SIZE - 16..BIOS_SIZE - 9],
            &[0xb0, 0x2a, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]
        );
    }

    #[test]
    fn probe_runs_the_debug_exit_guest_under_tcg() {
        // The same guest under TCG proves the probe code itself is right.
        let Some(qemu) = crate::process::find_program(crate::qemu::QEMU) else {
            eprintln!("note: qemu not installed, skipped");
            return;
        };
        let dir = crate::tempdir::TempDir::new("probe-test");
        let bios = dir.path().join("bios.bin");
        std::fs::write(&bios, probe_bios()).unwrap();
        let argv: Vec<OsString> = probe_argv(&bios)
            .into_iter()
            .map(|a| {
                if a == "kvm" {
                    "tcg".into()
                } else if a == "host" {
                    "max".into()
                } else {
                    a
                }
            })
            .collect();
        let status = Command::new(qemu).args(&argv).status().unwrap();
        assert_eq!(status.code(), Some(85));
    }

    #[test]
    fn tcg_needs_no_probe() {
        assert_eq!(
            choose(
                Accel::Tcg,
                Path::new("/nonexistent"),
                Path::new("/nonexistent"),
                false
            )
            .unwrap(),
            Engine::Tcg
        );
    }
}
