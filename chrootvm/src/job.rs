//! What PID 1 is asked to do in run mode, as the run spec init reads
//! (init::runspec): the command, or `$SHELL -i` like chroot(1) when none is
//! given; the environment as chroot(1) passes it, with PATH, HOME and TERM
//! ensured; the working directory /; and whether it runs on the terminal.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::error::Error;

/// PATH when the caller has none (init's default too).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The run spec for `command` (empty: an interactive shell). `winsize` is
/// `Some` when the command runs on the user's terminal.
///
/// # Errors
/// [`Error::CommandTooLong`] when init could not read it.
pub fn run_spec(
    command: &[OsString],
    tty: bool,
    winsize: Option<(u16, u16)>,
) -> Result<Vec<u8>, Error> {
    let argv = argv(command, std::env::var_os("SHELL"), tty);
    let env = environment(std::env::vars_os(), tty);
    let spec = init::runspec::encode(
        argv.iter().map(Vec::as_slice),
        env.iter().map(Vec::as_slice),
        None,
        tty,
        winsize,
    );
    if spec.len() > init::runspec::MAX_SIZE {
        return Err(Error::CommandTooLong(spec.len()));
    }
    Ok(spec)
}

/// The command, or the shell (`$SHELL`, default /bin/sh) as chroot(1)
/// runs it: interactive (`-i`) on a terminal, else reading its commands
/// from stdin with no prompt, as `echo 'ls; exit 4' | chroot ROOT` does.
fn argv(command: &[OsString], shell: Option<OsString>, tty: bool) -> Vec<Vec<u8>> {
    if command.is_empty() {
        let shell = shell
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        let mut argv = vec![shell.as_bytes().to_vec()];
        if tty {
            argv.push(b"-i".to_vec());
        }
        return argv;
    }
    command.iter().map(|arg| arg.as_bytes().to_vec()).collect()
}

/// `KEY=VALUE` for each variable, plus PATH, HOME and TERM when missing.
fn environment(vars: impl Iterator<Item = (OsString, OsString)>, tty: bool) -> Vec<Vec<u8>> {
    let mut env: Vec<Vec<u8>> = vars
        .map(|(key, value)| {
            let mut var = key.as_bytes().to_vec();
            var.push(b'=');
            var.extend_from_slice(value.as_bytes());
            var
        })
        .collect();
    let term = if tty { "vt220" } else { "dumb" };
    for (key, default) in [("PATH", DEFAULT_PATH), ("HOME", "/root"), ("TERM", term)] {
        let prefix = format!("{key}=");
        if !env.iter().any(|var| var.starts_with(prefix.as_bytes())) {
            env.push(format!("{key}={default}").into_bytes());
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use init::runspec::RunSpec;

    #[test]
    fn no_command_is_the_shell_interactive_on_a_terminal() {
        assert_eq!(argv(&[], None, true), [b"/bin/sh".to_vec(), b"-i".to_vec()]);
        assert_eq!(
            argv(&[], Some("/bin/bash".into()), true),
            [b"/bin/bash".to_vec(), b"-i".to_vec()]
        );
        // No terminal: commands come from stdin, without prompts.
        assert_eq!(argv(&[], None, false), [b"/bin/sh".to_vec()]);
        assert_eq!(
            argv(&["ls".into(), "-l".into()], Some("/bin/bash".into()), true),
            [b"ls".to_vec(), b"-l".to_vec()]
        );
    }

    #[test]
    fn environment_passes_through_with_defaults() {
        let vars = [
            ("PATH".into(), "/x".into()),
            ("BIG".into(), "y".repeat(65536).into()),
        ];
        let env = environment(vars.into_iter(), false);
        assert!(env.contains(&b"PATH=/x".to_vec()));
        assert!(env.contains(&b"HOME=/root".to_vec()));
        assert!(env.contains(&b"TERM=dumb".to_vec()));
        assert!(env.iter().any(|v| v.len() == 4 + 65536));
        let env = environment([("TERM".into(), "xterm".into())].into_iter(), true);
        assert!(env.contains(&b"TERM=xterm".to_vec()));
    }

    #[test]
    fn a_command_init_cannot_read_is_refused() {
        let huge: Vec<OsString> = vec!["x".repeat(init::runspec::MAX_SIZE).into()];
        let error = run_spec(&huge, false, None).unwrap_err();
        let error = error.to_string();
        assert!(
            error.starts_with("cannot run a command and environment of ")
                && error.contains("the guest takes at most 4194304"),
            "{error}"
        );
    }

    #[test]
    fn spec_reads_back_in_init() {
        let spec = run_spec(
            &["printf".into(), "%s".into(), "a b".into()],
            true,
            Some((40, 120)),
        )
        .unwrap();
        let parsed = RunSpec::parse(&spec).unwrap();
        let args: Vec<_> = parsed.args().map(|a| a.to_bytes().to_vec()).collect();
        assert_eq!(args, [b"printf".to_vec(), b"%s".to_vec(), b"a b".to_vec()]);
        assert!(parsed.tty);
        assert_eq!(parsed.winsize, Some((40, 120)));
        assert!(parsed.var(b"PATH").is_some());
    }
}
