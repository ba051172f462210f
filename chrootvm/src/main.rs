//! chrootvm: boot a directory tree as a virtual machine (SPEC §5).
//!
//! `main` parses the command line, runs the VM, and exits with the guest
//! command's status, or prints chrootvm's own error as one line and exits
//! with its documented code.

/// Prints one `chrootvm: ...` line on stderr with a single write, so that
/// it never interleaves mid-line with what the helpers (virtiofsd, qemu),
/// which share the stream, write at the same instant.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!("chrootvm: {}\n", format_args!($($arg)*));
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

mod accel;
mod channels;
mod cli;
mod error;
mod initramfs;
mod job;
mod kernel;
mod process;
mod qemu;
mod shape;
mod signals;
mod tempdir;
mod terminal;
mod virtiofsd;
mod vm;
mod vmlinux;

use std::ffi::OsString;
use std::process::ExitCode;

use error::{EXIT_SETUP, Error, Step};

fn main() -> ExitCode {
    // 0. Started by ourselves to launch a helper (see process.rs)?
    let mut args = std::env::args_os();
    if args.next().as_deref() == Some(process::LAUNCHER_ARG0.as_ref()) {
        process::launch(args);
    }
    // 1. The command line.
    let options = match cli::parse(args) {
        Ok(cli::Command::Run(options)) => options,
        Ok(cli::Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Version) => {
            println!("chrootvm {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(usage) => {
            note!("{usage}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    // 2. Stop signals become events, so cleanup runs on this thread.
    let signals = match signals::Signals::install() {
        Ok(signals) => signals,
        Err(e) => return fail(&Error::Host(Step::SignalHandlers, e)),
    };
    // 3. Orphans of helpers become ours, so none outlives us.
    if let Err(e) = process::become_subreaper() {
        return fail(&Error::Host(Step::Subreaper, e));
    }
    // 4. The VM; its command's status is ours.
    let result = vm::run(&options, &signals);
    // 5. Every helper is gone (run drops them); their descendants go too.
    process::reap_descendants();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

fn fail(error: &Error) -> ExitCode {
    // A closed stdout ends us quietly, as SIGPIPE ends a command.
    if !matches!(error, Error::OutputClosed) {
        note!("{error}");
    }
    ExitCode::from(error.exit_code())
}

/// A command line as a shell would take it back, for `--debug` and for
/// rerunning by hand.
pub fn shell_words(argv: &[OsString]) -> String {
    argv.iter()
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if !arg.is_empty()
                && arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b))
            {
                arg.into_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quote_only_what_needs_it() {
        let argv: Vec<OsString> = ["qemu", "-append", "a=1 b", "it's", ""]
            .map(OsString::from)
            .to_vec();
        assert_eq!(shell_words(&argv), r"qemu -append 'a=1 b' 'it'\''s' ''");
    }
}
