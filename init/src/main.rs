//! init: PID 1 of an initramfs. Mounts the API file systems, loads the
//! bundled kernel modules in order, mounts the root (a virtiofs or 9p tag,
//! optionally under a tmpfs overlay) and the shares, switches root and
//! hands PID 1 to the real init, or runs chrootvm's command as its child
//! and reports its status (SPEC §3).
//!
//! `main` is SPEC §3.1 in order, one call per step. Any fatal error prints
//! one line and powers the VM off: PID 1 never exits and never hangs.
//!
//! The steps are `#[inline(never)]`: inlined, their locals would all sit
//! in `main`'s frame, whose every page is probed (faulted in) at entry.
//! Big buffers live in .bss instead (see `rt::take_once`). Under TCG each
//! page fault and each byte copied shows in the boot time.

#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod block;
mod boot;
mod console;
mod fsutil;
mod handover;
mod identity;
mod log;
mod modules;
mod mounts;
mod network;
mod profile;
mod rt;
mod run;
mod shell;
mod switch_root;

use core::ffi::CStr;
use init::cmdline::Cmdline;
use init::plan::API_MOUNTS;

use boot::Boot;
use log::debug;

/// Called by `rt::_start` with the environment the kernel gave init.
fn main(env: &[&CStr]) -> ! {
    // 1. stdio on /dev/console, before anything can print.
    let mut profile = profile::Profile::start();
    console::setup_stdio();
    let mut boot = Boot::new();

    // 2a. /proc first: the command line is read from it.
    mounts::mount_api_filesystems(&boot, &API_MOUNTS[..1]);

    // 3. The command line decides verbosity, root and hand-over.
    let text = mounts::read_cmdline(&boot, rt::cmdline_buffer());
    boot.set_cmdline(Cmdline::parse(text));
    debug!(
        boot.log,
        "command line: {}",
        init::buf::Show(text.trim_ascii_end())
    );
    // 3b. Run mode: chrootvm packed a command in /init.run, which must be
    // read now, before the initramfs is freed.
    let spec = run::read_spec(&boot, rt::spec_buffer());
    profile.step(&boot, "console, /proc, command line");

    // 2b. The other API file systems, then the /dev nodes and links that
    // devtmpfs may lack.
    mounts::mount_api_filesystems(&boot, &API_MOUNTS[1..]);
    mounts::populate_dev(&boot);
    profile.step(&boot, "API file systems and /dev");

    // 4. Modules, in name order; failures are kept for the root's error.
    let modules = modules::load_modules(&boot);
    profile.step(&boot, "modules");

    // 4b. Who the VM is: hostname, console size, lo, rapido's MACs.
    let loopback = identity::apply(&boot);
    profile.step(&boot, "identity");

    // 5-6. Root and shares. With no root given, virtiofs tag `rootfs` if
    // a device has it, else the initramfs stays root; shares either way.
    let switching = mounts::mount_root(&boot, boot.cmdline.root(), &modules);
    mounts::mount_shares(&boot, &modules);
    profile.step(&boot, "root and shares");
    // 9a. What the report and run mode need from /dev, /sys and /proc,
    // opened before the switch: a tree chroot(1) takes may have none.
    boot.open_status_port();
    let command = spec.map(|spec| run::prepare(&boot, spec));
    profile.step(&boot, "ports");
    // 7. Switch.
    if switching {
        switch_root::switch_root(&boot);
        identity::write_machine_id(&boot);
        profile.step(&boot, "switch root");
    }
    identity::wait_for_loopback(&boot, loopback);
    network::publish_resolver(&boot, !switching);
    profile.total(&boot, modules.init_us);

    // 9. Run the command as PID 1's child, or hand PID 1 to the real init.
    match command {
        Some(command) => run::run_command(&boot, command),
        None => handover::exec_init(&boot, env),
    }
}

/// A bug in init: say where, then power off like any fatal error. The
/// message is not formatted: core's panic messages would pull in its
/// string padding code (2.5 KB), and the location is what a fix needs.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let boot = Boot::new();
    match info.location() {
        Some(at) => boot.fatal(format_args!(
            "panic at {}:{}",
            init::buf::Show(at.file().as_bytes()),
            at.line()
        )),
        None => boot.fatal(format_args!("panic")),
    }
}
