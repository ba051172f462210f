//! Step 9: exec the real init as PID 1: `init=` with the words after `--`,
//! or the first of /sbin/init, /etc/init, /bin/init, /bin/sh, as the kernel
//! tries them. The environment is the one the kernel gave us, plus
//! `RAPIDO_MAC_IF=MAC` for each `rapido.mac.IF=`.

use core::ffi::CStr;
use init::buf::{CStrList, Show};
use init::cmdline::Params;
use init::errno::Text;
use init::plan::DEFAULT_INITS;
use init::status::Status;
use rustix::fs::{Access, access};
use rustix::io::Errno;

use crate::boot::{Boot, fatal};
use crate::log::{debug, warning};
use crate::rt;

/// Most arguments passed to the real init.
const ARGV_MAX: usize = 256;
/// Room for the argument vector built from the command line, itself at
/// most 4096 bytes (COMMAND_LINE_SIZE; 2048 on x86).
type Argv = CStrList<4096, ARGV_MAX>;
/// Most environment variables: the kernel's (at most 32, MAX_INIT_ENVS in
/// init/main.c) and rapido's MACs.
const ENV_MAX: usize = 48;
type Env = CStrList<4096, ENV_MAX>;

/// Hands PID 1 over; returns only through a fatal error.
pub fn exec_init(boot: &Boot<'_>, kernel_env: &[&CStr]) -> ! {
    let mut env = Env::new();
    crate::identity::environment(boot, kernel_env, &mut env);
    let env = &env;
    // Filled in place: returned by value, a list is copied whole.
    let mut argv = Argv::new();
    if let Some(path) = boot.cmdline.init {
        build_argv(boot, path, &mut argv);
        let errno = exec(boot, &argv, env);
        fatal!(
            boot,
            "cannot execute {}: {}{}",
            Show(path),
            Text(errno),
            Show(exec_hint(errno))
        );
    }
    for candidate in DEFAULT_INITS {
        if access(candidate, Access::EXEC_OK).is_err() {
            continue;
        }
        build_argv(boot, candidate.to_bytes(), &mut argv);
        let errno = exec(boot, &argv, env);
        warning!(
            boot.log,
            "cannot execute {}: {}{}",
            Show(candidate.to_bytes()),
            Text(errno),
            Show(exec_hint(errno))
        );
    }
    fatal!(
        boot,
        "cannot find an init to run (tried /sbin/init, /etc/init, /bin/init, /bin/sh; pass init=PATH)"
    )
}

/// argv: the program as named, then the command line's words after `--`.
fn build_argv(boot: &Boot<'_>, path: &[u8], argv: &mut Argv) {
    argv.clear();
    if let Err(errno) = argv.push(&[path]) {
        fatal!(boot, "cannot execute {}: {}", Show(path), Text(errno));
    }
    for word in Params::new(boot.cmdline.init_args) {
        let pushed = match word.value {
            Some(value) => argv.push(&[word.key, b"=", value]),
            None => argv.push(&[word.key]),
        };
        if let Err(errno) = pushed {
            fatal!(
                boot,
                "cannot pass argument \"{}\" to {}: {}",
                Show(word.key),
                Show(path),
                Text(errno)
            );
        }
    }
}

fn exec(boot: &Boot<'_>, argv: &Argv, env: &Env) -> Errno {
    let Some(path) = argv.first() else {
        return Errno::INVAL;
    };
    debug!(boot.log, "handing PID 1 to {}", Show(path.to_bytes()));
    boot.report(Status::Handover);
    let mut slots = [core::ptr::null(); ARGV_MAX + ENV_MAX + 2];
    rt::execve(path, argv.iter(), env.iter(), &mut slots)
}

fn exec_hint(errno: Errno) -> &'static [u8] {
    match errno {
        Errno::NOENT => b" (not in the root, or its #! interpreter is missing)",
        Errno::ACCESS => b" (not executable: check its mode, and noexec on its mount)",
        Errno::NOEXEC => b" (not a program for this machine, or a script without #!)",
        _ => b"",
    }
}
