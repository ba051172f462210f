//! Choosing KVM or TCG. A readable /dev/kvm is not enough: on some nested
//! hosts a Linux guest under KVM hangs right after the kernel's real-mode
//! setup, or qemu aborts setting up the CPU model. So `auto` first runs a
//! tiny guest under KVM, with the CPU model the real run uses, that does
//! what the kernel does next: a 64 KiB "BIOS" that reports from real mode,
//! enters protected mode, then 64-bit long mode with paging, and only then
//! writes to qemu's isa-debug-exit port.
//!
//! The probe's report from real mode tells a slow qemu start apart from a
//! guest that hangs: once the guest has spoken, KVM runs the mode switches
//! in microseconds, so silence after that is a verdict, not a slow host.
//!
//! A verdict is remembered for the host's current boot (keyed by
//! /proc/sys/kernel/random/boot_id) in the user's runtime or cache
//! directory, so later runs pay nothing. The real boot's watchdog
//! (vm.rs) can still overrule a passed probe with [`remember_unusable`].

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::cli::Accel;
use crate::error::Error;
use crate::process::{Helper, Streams};
use crate::qemu::{Engine, cpu_model};

/// How long qemu may take to start the probe guest: it loads no kernel, so
/// a few hundred milliseconds on a busy host.
const START_DEADLINE: Duration = Duration::from_secs(5);
/// How long the probe guest may take from its first report to the debug
/// port. Under KVM the whole run is a few hundred instructions.
const RUN_DEADLINE: Duration = Duration::from_secs(1);

/// The debug console port the probe reports to from real mode.
const DEBUGCON_PORT: u8 = 0xe9;
/// The byte it writes there.
const STARTED: u8 = b'R';
/// The port of qemu's isa-debug-exit device.
const DEBUG_EXIT_PORT: u8 = 0xf4;
/// The value written there from long mode; qemu exits `(value << 1) | 1`.
const PROBE_VALUE: u8 = 0x2a;

/// qemu requires a BIOS image to be a multiple of 64 KiB. It maps it below
/// 4 GiB, its last 16 bytes at the reset vector (0xFFFFFFF0, real mode
/// F000:FFF0), and a 64 KiB BIOS also at 0xF0000 (the ISA BIOS alias),
/// where the probe's code runs from.
const BIOS_SIZE: usize = 64 * 1024;
/// Physical address of the BIOS's first byte in the ISA alias.
const BIOS_LOW: u32 = 0xF_0000;
/// The probe's code: at the start of the BIOS.
const CODE_OFFSET: usize = 0;
/// Its GDT, after the code.
const GDT_OFFSET: usize = 0x90;
/// The GDT's descriptor (limit, base) for `lgdt`.
const GDT_DESCRIPTOR_OFFSET: usize = 0xb0;
/// Where protected mode starts (the far jump's target).
const PM32_OFFSET: usize = 0x1c;
/// Where long mode starts.
const LM64_OFFSET: usize = 0x83;

/// How the engine was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The engine to boot with.
    pub engine: Engine,
    /// With `auto` and KVM: the boot falls back to TCG when the kernel
    /// shows no sign of life.
    pub may_fall_back: bool,
}

/// Decides the engine for `--accel`.
///
/// # Errors
/// [`Error::KvmUnusable`] for `--accel kvm` when the probe fails.
pub fn choose(accel: Accel, qemu: &Path, scratch: &Path, debug: bool) -> Result<Choice, Error> {
    let kvm = |may_fall_back| Choice {
        engine: Engine::Kvm,
        may_fall_back,
    };
    let tcg = Choice {
        engine: Engine::Tcg,
        may_fall_back: false,
    };
    match accel {
        Accel::Tcg => Ok(tcg),
        Accel::Kvm => probe_kvm(qemu, scratch)
            .map(|()| kvm(false))
            .map_err(|failure| Error::KvmUnusable(failure.reason)),
        Accel::Auto => {
            if let Some(verdict) = Verdicts::load().lookup(qemu) {
                if debug {
                    note!("remembered for this host boot: {verdict}");
                }
                return Ok(if verdict.usable { kvm(true) } else { tcg });
            }
            match probe_kvm(qemu, scratch) {
                Ok(()) => {
                    if debug {
                        note!("using KVM");
                    }
                    Verdicts::store(qemu, true, "a test guest reached long mode");
                    Ok(kvm(true))
                }
                Err(failure) => {
                    if debug {
                        note!("using TCG (software emulation): {}", failure.reason);
                    }
                    if failure.definite {
                        Verdicts::store(qemu, false, &failure.reason);
                    }
                    Ok(tcg)
                }
            }
        }
    }
}

/// Records that KVM cannot boot Linux here after all (the boot watchdog
/// saw no sign of life), so later runs go to TCG at once.
pub fn remember_unusable(qemu: &Path, reason: &str) {
    Verdicts::store(qemu, false, reason);
}

/// Why the probe failed, and whether that settles it for this host boot.
#[derive(Debug)]
struct Failure {
    reason: String,
    /// A verdict on KVM itself, not a slow or broken start.
    definite: bool,
}

impl Failure {
    fn definite(reason: String) -> Failure {
        Failure {
            reason,
            definite: true,
        }
    }

    fn unsure(reason: String) -> Failure {
        Failure {
            reason,
            definite: false,
        }
    }
}

/// The probe BIOS: the code at [`CODE_OFFSET`], its GDT, and a far jump at
/// the reset vector into the ISA alias; `hlt` everywhere else.
fn probe_bios() -> Vec<u8> {
    let mut bios = vec![0xf4; BIOS_SIZE];
    let [pm_0, pm_1, pm_2, pm_3] = low_address(PM32_OFFSET);
    let [lm_0, lm_1, lm_2, lm_3] = low_address(LM64_OFFSET);
    let gdt_descriptor = u16::try_from(GDT_DESCRIPTOR_OFFSET)
        .unwrap_or(0)
        .to_le_bytes();
    #[rustfmt::skip]
    let code: &[u8] = &[
        // Real mode (16-bit), CS base 0xF0000 after the reset vector's jump.
        0xb0, STARTED,                  // mov al, 'R'
        0xe6, DEBUGCON_PORT,            // out 0xe9, al: "the guest runs"
        0xfa,                           // cli
        0x2e, 0x66, 0x0f, 0x01, 0x16,   // lgdt dword cs:[descriptor]
        gdt_descriptor[0], gdt_descriptor[1],
        0x0f, 0x20, 0xc0,               // mov eax, cr0
        0x0c, 0x01,                     // or al, 1 (PE)
        0x0f, 0x22, 0xc0,               // mov cr0, eax
        0x66, 0xea, pm_0, pm_1, pm_2, pm_3, 0x08, 0x00, // jmp dword 0x08:pm32
        // pm32: protected mode (32-bit), flat segments.
        0x66, 0xb8, 0x10, 0x00,         // mov ax, 0x10
        0x8e, 0xd8,                     // mov ds, ax
        0x8e, 0xc0,                     // mov es, ax
        0x8e, 0xd0,                     // mov ss, ax
        // Page tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD): the
        // first 2 MiB identity-mapped by one large page.
        0xbf, 0x00, 0x10, 0x00, 0x00,   // mov edi, 0x1000
        0x31, 0xc0,                     // xor eax, eax
        0xb9, 0x00, 0x0c, 0x00, 0x00,   // mov ecx, 3 * 1024
        0xf3, 0xab,                     // rep stosd: zero the three tables
        0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00, // PML4[0] = 0x2000 | P | W
        0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, // PDPT[0] = 0x3000 | P | W
        0xc7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, // PD[0] = 0 | P | W | PS
        0xb8, 0x00, 0x10, 0x00, 0x00,   // mov eax, 0x1000
        0x0f, 0x22, 0xd8,               // mov cr3, eax
        0x0f, 0x20, 0xe0,               // mov eax, cr4
        0x83, 0xc8, 0x20,               // or eax, 0x20 (PAE)
        0x0f, 0x22, 0xe0,               // mov cr4, eax
        0xb9, 0x80, 0x00, 0x00, 0xc0,   // mov ecx, 0xC0000080 (EFER)
        0x0f, 0x32,                     // rdmsr
        0x0d, 0x00, 0x01, 0x00, 0x00,   // or eax, 0x100 (LME)
        0x0f, 0x30,                     // wrmsr
        0x0f, 0x20, 0xc0,               // mov eax, cr0
        0x0d, 0x00, 0x00, 0x00, 0x80,   // or eax, 0x80000000 (PG)
        0x0f, 0x22, 0xc0,               // mov cr0, eax: long mode is active
        0xea, lm_0, lm_1, lm_2, lm_3, 0x18, 0x00, // jmp 0x18:lm64
        // lm64: long mode (64-bit).
        0xb0, PROBE_VALUE,              // mov al, 0x2a
        0xe6, DEBUG_EXIT_PORT,          // out 0xf4, al: qemu exits 85
        0xf4,                           // hlt
        0xeb, 0xfd,                     // jmp hlt
    ];
    bios[CODE_OFFSET..CODE_OFFSET + code.len()].copy_from_slice(code);
    // The GDT: null, 32-bit code (0x08), data (0x10), 64-bit code (0x18),
    // each flat over 4 GiB.
    for (i, descriptor) in [
        0u64,
        0x00cf_9a00_0000_ffff,
        0x00cf_9200_0000_ffff,
        0x00af_9a00_0000_ffff,
    ]
    .iter()
    .enumerate()
    {
        let at = GDT_OFFSET + 8 * i;
        bios[at..at + 8].copy_from_slice(&descriptor.to_le_bytes());
    }
    let limit: u16 = 4 * 8 - 1;
    bios[GDT_DESCRIPTOR_OFFSET..GDT_DESCRIPTOR_OFFSET + 2].copy_from_slice(&limit.to_le_bytes());
    bios[GDT_DESCRIPTOR_OFFSET + 2..GDT_DESCRIPTOR_OFFSET + 6]
        .copy_from_slice(&low_address(GDT_OFFSET));
    // The reset vector: jmp 0xF000:CODE_OFFSET, into the ISA alias.
    let reset = BIOS_SIZE - 16;
    let [code_0, code_1] = u16::try_from(CODE_OFFSET).unwrap_or(0).to_le_bytes();
    bios[reset..reset + 5].copy_from_slice(&[0xea, code_0, code_1, 0x00, 0xf0]);
    bios
}

/// The physical address of a BIOS offset in the ISA alias, little-endian.
fn low_address(offset: usize) -> [u8; 4] {
    (BIOS_LOW + u32::try_from(offset).unwrap_or(0)).to_le_bytes()
}

/// Whether Linux can boot under KVM here, as far as the probe can tell.
fn probe_kvm(qemu: &Path, scratch: &Path) -> Result<(), Failure> {
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Err(Failure::definite(format!(
            "cannot open /dev/kvm: {}",
            crate::error::OsText(&e)
        )));
    }
    let bios = scratch.join("kvm-probe.bin");
    std::fs::write(&bios, probe_bios())
        .map_err(|e| Failure::unsure(format!("cannot write {}: {e}", bios.display())))?;
    let result = run_probe(&probe_argv(qemu, Engine::Kvm, &bios));
    let _ = std::fs::remove_file(&bios);
    result
}

/// Runs the probe guest: its report from real mode, then its exit.
fn run_probe(argv: &[OsString]) -> Result<(), Failure> {
    let streams = Streams {
        stdin: Stdio::null(),
        stdout: Stdio::piped(),
        stderr: Stdio::null(),
    };
    let mut guest = Helper::spawn(argv, streams)
        .map_err(|e| Failure::unsure(format!("cannot start a test guest: {e}")))?;
    let Some(mut output) = guest.take_stdout() else {
        return Err(Failure::unsure("cannot read the test guest".into()));
    };
    let start = Instant::now();
    let mut started = false;
    loop {
        let now = Instant::now();
        let deadline = if started {
            start + RUN_DEADLINE
        } else {
            start + START_DEADLINE
        };
        if now >= deadline {
            return Err(if started {
                Failure::definite(format!(
                    "a test guest under KVM hung entering protected or long mode (nothing within {}s)",
                    RUN_DEADLINE.as_secs()
                ))
            } else {
                Failure::unsure(format!(
                    "qemu did not start a test guest under KVM within {}s",
                    START_DEADLINE.as_secs()
                ))
            });
        }
        let left = deadline - now;
        let timeout = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&output, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(Failure::unsure(format!("cannot watch a test guest: {e}"))),
        }
        let mut byte = [0u8; 64];
        match output.read(&mut byte) {
            Ok(n) if n > 0 => {
                if !started && byte[..n].contains(&STARTED) {
                    started = true;
                }
            }
            // EOF: qemu has exited.
            _ => break,
        }
    }
    let status = guest.wait();
    let expected = (i32::from(PROBE_VALUE) << 1) | 1;
    match status {
        Some(status) if status.code() == Some(expected) => Ok(()),
        Some(status) if started => Err(Failure::definite(format!(
            "a test guest failed under KVM ({status})"
        ))),
        Some(status) => Err(Failure::definite(format!(
            "qemu failed to run a test guest under KVM ({status})"
        ))),
        None => Err(Failure::unsure("cannot wait for a test guest".into())),
    }
}

/// The probe's qemu command line: the real run's machine and CPU model,
/// the probe as BIOS, its report port on qemu's stdout.
fn probe_argv(qemu: &Path, engine: Engine, bios: &Path) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![qemu.into()];
    let accel = match engine {
        Engine::Kvm => "kvm",
        Engine::Tcg => "tcg",
    };
    for (flag, value) in [
        ("-machine", "q35"),
        ("-accel", accel),
        // The CPU model the real run uses: some hosts fail on exactly it.
        ("-cpu", cpu_model(engine)),
        ("-m", "16"),
        ("-chardev", "stdio,id=probe"),
        ("-device", "isa-debugcon,iobase=0xe9,chardev=probe"),
        ("-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"),
        ("-display", "none"),
    ] {
        argv.extend([flag.into(), value.into()]);
    }
    argv.extend(["-bios".into(), bios.into()]);
    argv.extend(["-nodefaults".into(), "-no-user-config".into()]);
    argv
}

/// One remembered verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// KVM boots Linux here.
    pub usable: bool,
    /// Why we think so.
    pub reason: String,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = if self.usable { "KVM" } else { "TCG" };
        write!(f, "using {engine} ({})", self.reason)
    }
}

/// The verdicts file: one line `BOOT_ID<TAB>QEMU<TAB>kvm|tcg<TAB>REASON`
/// per qemu binary, for the host's current boot only.
struct Verdicts {
    path: Option<PathBuf>,
    boot_id: Option<String>,
    lines: Vec<String>,
}

/// The file's name in the runtime or cache directory.
const VERDICTS_FILE: &str = "chrootvm/kvm-verdicts";

impl Verdicts {
    fn load() -> Verdicts {
        let path = verdicts_path();
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty());
        let lines = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        Verdicts {
            path,
            boot_id,
            lines,
        }
    }

    fn lookup(&self, qemu: &Path) -> Option<Verdict> {
        let boot_id = self.boot_id.as_deref()?;
        let qemu = qemu.to_str()?;
        self.lines.iter().find_map(|line| {
            let mut fields = line.splitn(4, '\t');
            if fields.next()? != boot_id || fields.next()? != qemu {
                return None;
            }
            let usable = match fields.next()? {
                "kvm" => true,
                "tcg" => false,
                _ => return None,
            };
            Some(Verdict {
                usable,
                reason: fields.next().unwrap_or("").to_string(),
            })
        })
    }

    /// Best effort: a verdict that cannot be written is found again next
    /// time, at the probe's cost.
    fn store(qemu: &Path, usable: bool, reason: &str) {
        let mut verdicts = Verdicts::load();
        let (Some(path), Some(boot_id), Some(qemu)) =
            (verdicts.path.take(), verdicts.boot_id.take(), qemu.to_str())
        else {
            return;
        };
        // Lines of other boots are stale; other qemu binaries keep theirs.
        let prefix = format!("{boot_id}\t");
        let mine = format!("{prefix}{qemu}\t");
        let mut lines: Vec<String> = verdicts
            .lines
            .into_iter()
            .filter(|l| l.starts_with(&prefix) && !l.starts_with(&mine))
            .collect();
        let engine = if usable { "kvm" } else { "tcg" };
        let reason = reason.replace(['\t', '\n'], " ");
        lines.push(format!("{mine}{engine}\t{reason}"));
        let Some(dir) = path.parent() else { return };
        let temp = dir.join(format!(".kvm-verdicts.{}", std::process::id()));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&temp, lines.join("\n") + "\n"))
            .and_then(|()| std::fs::rename(&temp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
    }
}

/// $XDG_RUNTIME_DIR/chrootvm/kvm-verdicts (a tmpfs, gone at reboot), else
/// the cache directory's ($XDG_CACHE_HOME, else ~/.cache).
fn verdicts_path() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = absolute("XDG_RUNTIME_DIR")
        .filter(|dir| dir.is_dir())
        .or_else(|| absolute("XDG_CACHE_HOME"))
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))?;
    Some(base.join(VERDICTS_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_jumps_from_the_reset_vector_to_the_code() {
        let bios = probe_bios();
        assert_eq!(bios.len(), BIOS_SIZE);
        assert_eq!(
            &bios[BIOS_SIZE - 16..BIOS_SIZE - 11],
            &[0xea, 0x00, 0x00, 0x00, 0xf0]
        );
        // The far jumps land on the instructions they are named after.
        assert_eq!(&bios[PM32_OFFSET..PM32_OFFSET + 2], &[0x66, 0xb8]);
        assert_eq!(
            &bios[LM64_OFFSET..LM64_OFFSET + 4],
            &[0xb0, 0x2a, 0xe6, 0xf4]
        );
        assert_eq!(
            &bios[GDT_DESCRIPTOR_OFFSET..GDT_DESCRIPTOR_OFFSET + 6],
            &[31, 0, 0x90, 0, 0x0f, 0]
        );
    }

    #[test]
    fn the_probe_reaches_long_mode_under_tcg() {
        // The same guest under TCG proves the probe code itself is right:
        // it reports from real mode and exits from long mode.
        let qemu = crate::process::find_program(crate::qemu::QEMU)
            .expect("qemu-system-x86_64 is missing: install qemu-system-x86 (make check does)");
        let dir = crate::tempdir::TempDir::new("probe-test");
        let bios = dir.path().join("bios.bin");
        std::fs::write(&bios, probe_bios()).unwrap();
        let output = std::process::Command::new(&qemu)
            .args(&probe_argv(&qemu, Engine::Tcg, &bios)[1..])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.stdout, [STARTED]);
        assert_eq!(output.status.code(), Some(85));
    }

    #[test]
    fn tcg_needs_no_probe() {
        let choice = choose(
            Accel::Tcg,
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
            false,
        )
        .unwrap();
        assert_eq!(choice.engine, Engine::Tcg);
        assert!(!choice.may_fall_back);
    }

    #[test]
    fn verdicts_are_per_boot_and_per_qemu() {
        let verdicts = Verdicts {
            path: None,
            boot_id: Some("b1".into()),
            lines: vec![
                "b0\t/usr/bin/qemu\tkvm\told boot".into(),
                "b1\t/usr/bin/qemu\ttcg\thung in long mode".into(),
                "b1\t/opt/qemu\tkvm\treached long mode".into(),
                "b1\t/bad\tmaybe\t?".into(),
            ],
        };
        assert_eq!(
            verdicts.lookup(Path::new("/usr/bin/qemu")),
            Some(Verdict {
                usable: false,
                reason: "hung in long mode".into()
            })
        );
        assert!(verdicts.lookup(Path::new("/opt/qemu")).unwrap().usable);
        assert_eq!(verdicts.lookup(Path::new("/bad")), None);
        assert_eq!(verdicts.lookup(Path::new("/other")), None);
    }
}
