//! The host end of the guest's channels (SPEC §3.4): the status port, the
//! command's stdin, stdout and stderr ports, and the serial console. qemu
//! connects to a socket chrootvm listens on for each; the event loop
//! (vm.rs) polls them through [`Channels`].
//!
//! stdout and stderr are copied byte for byte to chrootvm's own, counted;
//! when init reports `exit N OUT ERR`, the answer `ok` goes back only once
//! OUT and ERR bytes have arrived, so nothing queued in qemu is lost at
//! power-off. Nothing is read from chrootvm's stdin before init's first
//! status line says the guest is up (a boot that is abandoned and retried
//! loses none of it); then it is copied to the guest without ever blocking
//! the loop, to the stdin port, whose end becomes a half-close the guest
//! reads as EOF, or to the console when the command or system runs on it.
//!
//! The console is always a socket: what the kernel and init print while
//! booting is kept (its tail) to show when the VM fails, or shown live on
//! stderr with --debug; once the guest is up, a console the command or
//! system runs on is relayed to chrootvm's stdout. Its first bytes are
//! also the boot watchdog's sign that the kernel runs.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use init::status::{self, Status};
use rustix::event::PollFlags;

use crate::error::{Error, Step};

/// The console tail kept to show when the VM fails.
const CONSOLE_KEEP: usize = 256 * 1024;
/// Largest read from any channel at once.
const CHUNK: usize = 64 * 1024;

/// What a channel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// init's status lines, and chrootvm's `ok`.
    Status,
    /// The command's stdin.
    Stdin,
    /// The command's stdout.
    Stdout,
    /// The command's stderr.
    Stderr,
    /// The serial console.
    Console,
}

impl Kind {
    /// The virtio port name init looks for (the console is no port).
    pub fn port_name(self) -> Option<&'static [u8]> {
        match self {
            Kind::Status => Some(status::PORT_NAME),
            Kind::Stdin => Some(status::STDIN_PORT),
            Kind::Stdout => Some(status::STDOUT_PORT),
            Kind::Stderr => Some(status::STDERR_PORT),
            Kind::Console => None,
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Kind::Status => "status.sock",
            Kind::Stdin => "stdin.sock",
            Kind::Stdout => "stdout.sock",
            Kind::Stderr => "stderr.sock",
            Kind::Console => "console.sock",
        }
    }
}

/// How the kernel says the guest ended (its emergency-level lines, which
/// `quiet` still prints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestEnd {
    /// `halt`: the CPUs stopped; qemu would wait forever.
    Halted,
    /// `poweroff`.
    PoweredOff,
    /// `reboot` (qemu's -no-reboot turns it into an exit).
    Restarted,
    /// A kernel panic, with its line.
    Panicked(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndKind {
    Halted,
    PoweredOff,
    Restarted,
    Panicked,
}

/// The kernel's lines for each end (kernel/reboot.c, kernel/panic.c).
const END_MARKERS: [(&[u8], EndKind); 4] = [
    (b"reboot: System halted", EndKind::Halted),
    (b"reboot: Power down", EndKind::PoweredOff),
    (b"reboot: Restarting system", EndKind::Restarted),
    (b"Kernel panic - not syncing", EndKind::Panicked),
];
const LONGEST_END_MARKER: usize = 32;

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The last position of `needle` in `haystack`.
fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Which of chrootvm's own streams a guest stream goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

/// Passes guest output on to chrootvm's own stream. A reader that went
/// away (EPIPE) ends the run as SIGPIPE would end a command; any other
/// failure is an error: the command's output cannot be delivered.
fn pass_on(output: Output, data: &[u8]) -> Result<Got, Error> {
    let written = match output {
        Output::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(data).and_then(|()| out.flush())
        }
        Output::Stderr => io::stderr().lock().write_all(data),
    };
    match written {
        Ok(()) => Ok(Got::Data),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Got::OutputClosed),
        Err(e) => Err(Error::WriteOutput(output, e)),
    }
}

/// Something the loop must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing to do.
    None,
    /// The kernel said the guest halted: it will do nothing more.
    Halted,
    /// Every socket is connected: the temp directory can go.
    AllConnected,
    /// chrootvm's stdout was closed (a reader like `head` went away).
    OutputClosed,
    /// init reported the command's status, after its sync, and every byte
    /// of its output is here (the ack went back): what is left, the
    /// guest's power-off, changes nothing the host sees, so the VM can go
    /// at once. Only when the command's output came over the counted ports
    /// and the console is not shown (no terminal, no `--debug`): console
    /// bytes still on the emulated serial line would be lost.
    Reported,
}

/// One channel: its listener until qemu connects, then the connection.
struct Channel {
    kind: Kind,
    listener: Option<UnixListener>,
    stream: Option<UnixStream>,
}

/// What one read from a channel found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    /// Some bytes, passed on.
    Data,
    /// Nothing now (or EOF, or an error that ends the channel).
    Nothing,
    /// chrootvm's stdout is gone.
    OutputClosed,
}

/// What one poll slot belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A channel's listener.
    Listener(usize),
    /// A channel's connection, for reading.
    Stream(usize),
    /// A channel's connection, for writing pending stdin.
    Input(usize),
    /// chrootvm's own stdin.
    HostStdin,
}

/// How a VM's channels are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Show the console on stderr as it comes (`--debug`).
    pub live_console: bool,
    /// The command or system runs on the console: once the guest is up,
    /// relay it to stdout, and stdin to it.
    pub relay_console: bool,
}

/// All channels of one VM.
pub struct Channels {
    channels: Vec<Channel>,
    setup: Setup,
    /// The console's tail.
    console: Vec<u8>,
    /// Bytes read from the console so far.
    console_bytes: u64,
    /// A status line has come: the guest is up.
    started: bool,
    /// How the kernel said the guest ended.
    guest_end: Option<EndKind>,
    /// A terminal size not yet sent.
    pending_size: Option<(u16, u16)>,
    status_line: Vec<u8>,
    /// The last valid status line.
    pub last_status: Option<Status>,
    acked: bool,
    stdout_bytes: u64,
    stderr_bytes: u64,
    stdin_pending: Vec<u8>,
    host_stdin_open: bool,
    stdin_closed: bool,
    connected: bool,
}

impl Channels {
    /// Listens on one socket per kind in `dir`.
    ///
    /// # Errors
    /// A socket cannot be created.
    pub fn listen(dir: &Path, kinds: &[Kind], setup: Setup) -> Result<Channels, Error> {
        let mut channels = Vec::new();
        for &kind in kinds {
            let path = dir.join(kind.file_name());
            let listener = UnixListener::bind(&path)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| Error::Host(Step::Listen(path.to_path_buf()), e))?;
            channels.push(Channel {
                kind,
                listener: Some(listener),
                stream: None,
            });
        }
        Ok(Channels {
            channels,
            setup,
            console: Vec::new(),
            console_bytes: 0,
            started: false,
            guest_end: None,
            pending_size: None,
            status_line: Vec::new(),
            last_status: None,
            acked: false,
            stdout_bytes: 0,
            stderr_bytes: 0,
            stdin_pending: Vec::new(),
            host_stdin_open: true,
            stdin_closed: false,
            connected: false,
        })
    }

    /// The socket path of a kind, for qemu's command line.
    pub fn socket(dir: &Path, kind: Kind) -> PathBuf {
        dir.join(kind.file_name())
    }

    /// The fds to poll now, with what each belongs to (the status port
    /// first, so a status line is seen before what follows it elsewhere).
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags, Slot)> {
        let mut fds = Vec::new();
        for (i, channel) in self.channels.iter().enumerate() {
            if let Some(listener) = &channel.listener {
                fds.push((listener.as_fd(), PollFlags::IN, Slot::Listener(i)));
            }
            let Some(stream) = &channel.stream else {
                continue;
            };
            if channel.kind != Kind::Stdin {
                fds.push((stream.as_fd(), PollFlags::IN, Slot::Stream(i)));
            }
        }
        if let Some(i) = self.input_channel() {
            if !self.stdin_pending.is_empty() {
                if let Some(stream) = &self.channels[i].stream {
                    fds.push((stream.as_fd(), PollFlags::OUT, Slot::Input(i)));
                }
            } else if self.host_stdin_open && self.started {
                fds.push((rustix::stdio::stdin(), PollFlags::IN, Slot::HostStdin));
            }
        }
        fds
    }

    /// Whether init has reported: the guest is up.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Whether anything has come on the console: the kernel runs.
    pub fn console_spoke(&self) -> bool {
        self.console_bytes > 0
    }

    /// Sends the terminal's size to init (`stty ROWS,COLS` on the status
    /// port), which sets the console's; held until the guest is up.
    pub fn send_size(&mut self, rows: u16, cols: u16) {
        self.pending_size = Some((rows, cols));
        self.flush_size();
    }

    fn flush_size(&mut self) {
        let Some((rows, cols)) = self.pending_size.filter(|_| self.started) else {
            return;
        };
        let Some(port) = self
            .channels
            .iter_mut()
            .find(|c| c.kind == Kind::Status)
            .and_then(|c| c.stream.as_mut())
        else {
            return;
        };
        // A few bytes into a socket init reads: a full buffer (init gone)
        // only loses the size, which nothing then needs.
        let _ = port.write_all(format!("stty {rows},{cols}\n").as_bytes());
        self.pending_size = None;
    }

    /// The console's last non-empty line, for a report on a failed boot.
    pub fn last_console_line(&self) -> Option<String> {
        String::from_utf8_lossy(&self.console)
            .lines()
            .map(|line| line.trim_matches(|c: char| c.is_whitespace() || c.is_control()))
            .rfind(|line| !line.is_empty())
            .map(str::to_string)
    }

    /// The connected channel chrootvm's stdin goes to: the stdin port, or
    /// the console the command or system runs on.
    fn input_channel(&self) -> Option<usize> {
        let kind = if self.setup.relay_console {
            Kind::Console
        } else {
            Kind::Stdin
        };
        self.channel_index(kind)
            .filter(|&i| self.channels[i].stream.is_some())
    }

    /// Handles a ready slot.
    ///
    /// # Errors
    /// Writing to the status port failed.
    pub fn handle(&mut self, slot: Slot) -> Result<Event, Error> {
        match slot {
            Slot::Listener(i) => return Ok(self.accept(i)),
            Slot::HostStdin => self.read_host_stdin(),
            Slot::Input(i) => self.write_stdin(i),
            Slot::Stream(i) => {
                if self.read_stream(i)? == Got::OutputClosed {
                    return Ok(Event::OutputClosed);
                }
                if self.guest_end == Some(EndKind::Halted) {
                    return Ok(Event::Halted);
                }
            }
        }
        self.answer_exit()?;
        if self.acked && !self.setup.relay_console && !self.setup.live_console {
            return Ok(Event::Reported);
        }
        Ok(Event::None)
    }

    /// Reads what is left on every connection after qemu exited (their
    /// peers are closed, so reads end at EOF).
    ///
    /// # Errors
    /// As [`Channels::handle`].
    pub fn drain(&mut self) -> Result<Event, Error> {
        for i in 0..self.channels.len() {
            if self.channels[i].kind == Kind::Stdin {
                continue;
            }
            loop {
                match self.read_stream(i)? {
                    Got::Data => {}
                    Got::OutputClosed => return Ok(Event::OutputClosed),
                    // qemu is gone: nothing more will come.
                    Got::Nothing => break,
                }
            }
        }
        Ok(Event::None)
    }

    /// The console output kept for a failure report.
    pub fn console_tail(&self) -> &[u8] {
        &self.console
    }

    fn accept(&mut self, i: usize) -> Event {
        let channel = &mut self.channels[i];
        let Some(listener) = &channel.listener else {
            return Event::None;
        };
        let Ok((stream, _)) = listener.accept() else {
            return Event::None;
        };
        let _ = stream.set_nonblocking(true);
        channel.stream = Some(stream);
        channel.listener = None;
        if channel.kind == Kind::Stdin && !self.host_stdin_open && self.stdin_pending.is_empty() {
            self.close_stdin(i);
        }
        if !self.connected && self.channels.iter().all(|c| c.listener.is_none()) {
            self.connected = true;
            return Event::AllConnected;
        }
        Event::None
    }

    /// Reads one chunk from a guest-to-host channel and passes it on.
    fn read_stream(&mut self, i: usize) -> Result<Got, Error> {
        let kind = self.channels[i].kind;
        let Some(stream) = self.channels[i].stream.as_mut() else {
            return Ok(Got::Nothing);
        };
        let mut buf = vec![0u8; CHUNK];
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                self.channels[i].stream = None;
                return Ok(Got::Nothing);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Got::Data),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Got::Nothing),
            Err(_) => {
                self.channels[i].stream = None;
                return Ok(Got::Nothing);
            }
        };
        let data = &buf[..n];
        match kind {
            Kind::Stdout => {
                self.stdout_bytes += n as u64;
                return pass_on(Output::Stdout, data);
            }
            Kind::Stderr => {
                self.stderr_bytes += n as u64;
                return pass_on(Output::Stderr, data);
            }
            Kind::Console => {
                self.console_bytes += n as u64;
                self.console.extend_from_slice(data);
                if self.console.len() > CONSOLE_KEEP {
                    let cut = self.console.len() - CONSOLE_KEEP;
                    self.console.drain(..cut);
                }
                self.watch_for_the_end(n);
                if self.setup.relay_console && self.started {
                    return pass_on(Output::Stdout, data);
                } else if self.setup.live_console {
                    let _ = io::stderr().lock().write_all(data);
                }
            }
            Kind::Status => self.read_status(data),
            Kind::Stdin => {}
        }
        Ok(Got::Data)
    }

    /// How the kernel said the guest ended, if it did; a panic with its
    /// line as it stands in the console's tail now.
    pub fn guest_end(&self) -> Option<GuestEnd> {
        Some(match self.guest_end? {
            EndKind::Halted => GuestEnd::Halted,
            EndKind::PoweredOff => GuestEnd::PoweredOff,
            EndKind::Restarted => GuestEnd::Restarted,
            EndKind::Panicked => {
                let marker = END_MARKERS[3].0;
                let at = rfind(&self.console, marker).unwrap_or(self.console.len());
                let rest = &self.console[at..];
                let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
                GuestEnd::Panicked(String::from_utf8_lossy(line).trim().to_string())
            }
        })
    }

    /// Looks for the kernel's last words in what just came (`new` bytes at
    /// the console tail's end, plus a marker's length before them).
    fn watch_for_the_end(&mut self, new: usize) {
        let from = self.console.len().saturating_sub(new + LONGEST_END_MARKER);
        let window = &self.console[from..];
        for (marker, end) in END_MARKERS {
            // A panic stays the story: the reboot it causes comes after.
            if find(window, marker).is_some() && self.guest_end != Some(EndKind::Panicked) {
                self.guest_end = Some(end);
            }
        }
    }

    fn read_status(&mut self, data: &[u8]) {
        self.status_line.extend_from_slice(data);
        while let Some(end) = self.status_line.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.status_line.drain(..=end).collect();
            if let Some(status) = Status::parse(&line[..end]) {
                self.last_status = Some(status);
                self.started = true;
                self.flush_size();
            }
        }
    }

    /// Answers `exit N OUT ERR` with `ok` once OUT and ERR bytes are here.
    fn answer_exit(&mut self) -> Result<(), Error> {
        let Some(Status::Exit { stdout, stderr, .. }) = self.last_status else {
            return Ok(());
        };
        if self.acked || self.stdout_bytes < stdout || self.stderr_bytes < stderr {
            return Ok(());
        }
        let Some(port) = self
            .channels
            .iter_mut()
            .find(|c| c.kind == Kind::Status)
            .and_then(|c| c.stream.as_mut())
        else {
            return Ok(());
        };
        // Three bytes into an empty socket: never blocks in practice, and
        // a short write is retried.
        let mut rest = status::ACK;
        while !rest.is_empty() {
            match port.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(Error::Host(Step::StatusPort, e)),
            }
        }
        self.acked = true;
        Ok(())
    }

    /// Reads chrootvm's stdin into the pending buffer (only when it is
    /// empty, so a guest that does not read stdin holds it back).
    fn read_host_stdin(&mut self) {
        let mut buf = vec![0u8; CHUNK];
        // Unbuffered: std's Stdin would keep bytes poll cannot see.
        match rustix::io::read(rustix::stdio::stdin(), &mut buf).map_err(io::Error::from) {
            Ok(0) | Err(_) => {
                self.host_stdin_open = false;
                if let Some(i) = self.input_channel()
                    && self.stdin_pending.is_empty()
                {
                    self.close_stdin(i);
                }
            }
            Ok(n) => self.stdin_pending.extend_from_slice(&buf[..n]),
        }
    }

    /// Writes pending stdin to the guest without blocking.
    fn write_stdin(&mut self, i: usize) {
        let Some(stream) = self.channels[i].stream.as_mut() else {
            return;
        };
        match stream.write(&self.stdin_pending) {
            Ok(n) => {
                self.stdin_pending.drain(..n);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(_) => {
                // The guest side is gone: nothing more will be read.
                self.stdin_pending.clear();
                self.host_stdin_open = false;
            }
        }
        if self.stdin_pending.is_empty() && !self.host_stdin_open {
            self.close_stdin(i);
        }
    }

    /// The end of stdin: a half-close, which qemu passes on as the port's
    /// host side going away, and the guest reads as EOF. The socket stays
    /// open: a full close could make qemu drop data it has not read yet.
    /// The console carries output too, and a terminal has no end of input:
    /// it stays as it is.
    fn close_stdin(&mut self, i: usize) {
        if self.stdin_closed || self.channels[i].kind != Kind::Stdin {
            return;
        }
        if let Some(stream) = &self.channels[i].stream {
            let _ = stream.shutdown(Shutdown::Write);
            self.stdin_closed = true;
        }
    }

    fn channel_index(&self, kind: Kind) -> Option<usize> {
        self.channels.iter().position(|c| c.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tempdir::TempDir;
    use rustix::event::PollFd;

    const QUIET: Setup = Setup {
        live_console: false,
        relay_console: false,
    };

    fn connect(dir: &Path, kind: Kind) -> UnixStream {
        UnixStream::connect(Channels::socket(dir, kind)).unwrap()
    }

    /// Runs the channels' part of the event loop until nothing is ready.
    fn pump(channels: &mut Channels) -> Vec<Event> {
        let mut events = Vec::new();
        for _ in 0..50 {
            let fds = channels.poll_fds();
            let mut polled: Vec<PollFd<'_>> = fds
                .iter()
                .map(|(fd, flags, _)| PollFd::from_borrowed_fd(*fd, *flags))
                .collect();
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 20_000_000,
            };
            rustix::event::poll(&mut polled, Some(&timeout)).unwrap();
            let slots: Vec<Slot> = fds
                .iter()
                .zip(&polled)
                .filter(|(_, p)| !p.revents().is_empty())
                .map(|(f, _)| f.2)
                .collect();
            drop(polled);
            drop(fds);
            if slots.is_empty() {
                break;
            }
            for slot in slots {
                events.push(channels.handle(slot).unwrap());
            }
        }
        events
    }

    #[test]
    fn everything_connected_is_reported_once() {
        let dir = TempDir::new("channels-connect");
        let mut channels =
            Channels::listen(dir.path(), &[Kind::Status, Kind::Console], QUIET).unwrap();
        let _a = connect(dir.path(), Kind::Status);
        let _b = connect(dir.path(), Kind::Console);
        let events = pump(&mut channels);
        assert_eq!(
            events.iter().filter(|e| **e == Event::AllConnected).count(),
            1
        );
    }

    #[test]
    fn exit_is_answered_only_after_all_output() {
        let dir = TempDir::new("channels-ack");
        let mut channels =
            Channels::listen(dir.path(), &[Kind::Status, Kind::Stderr], QUIET).unwrap();
        let mut status = connect(dir.path(), Kind::Status);
        let mut stderr = connect(dir.path(), Kind::Stderr);
        pump(&mut channels);
        // init says 5 bytes went to stderr; none have arrived yet.
        status.write_all(b"exit 3 0 5\n").unwrap();
        pump(&mut channels);
        assert_eq!(
            channels.last_status,
            Some(Status::Exit {
                code: 3,
                stdout: 0,
                stderr: 5
            })
        );
        status.set_nonblocking(true).unwrap();
        let mut answer = [0u8; 3];
        assert!(
            status.read(&mut answer).is_err(),
            "answered before the output arrived"
        );
        stderr.write_all(b"12345").unwrap();
        pump(&mut channels);
        status.set_nonblocking(false).unwrap();
        status.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, status::ACK);
    }

    #[test]
    fn console_tail_is_kept() {
        let dir = TempDir::new("channels-console");
        let mut channels = Channels::listen(dir.path(), &[Kind::Console], QUIET).unwrap();
        let mut console = connect(dir.path(), Kind::Console);
        pump(&mut channels);
        console.write_all(b"init: cannot mount\n").unwrap();
        drop(console);
        pump(&mut channels);
        channels.drain().unwrap();
        assert_eq!(channels.console_tail(), b"init: cannot mount\n");
    }

    #[test]
    fn the_kernels_last_words_are_read_across_chunks() {
        let dir = TempDir::new("channels-end");
        let mut channels = Channels::listen(dir.path(), &[Kind::Console], QUIET).unwrap();
        let mut console = connect(dir.path(), Kind::Console);
        pump(&mut channels);
        assert_eq!(channels.guest_end(), None);
        console.write_all(b"[ 1.7] Kernel panic - not sy").unwrap();
        pump(&mut channels);
        console
            .write_all(b"ncing: sysrq triggered crash\r\n")
            .unwrap();
        pump(&mut channels);
        console
            .write_all(b"[ 1.8] reboot: Restarting system\r\n")
            .unwrap();
        pump(&mut channels);
        assert_eq!(
            channels.guest_end(),
            Some(GuestEnd::Panicked(
                "Kernel panic - not syncing: sysrq triggered crash".into()
            ))
        );
        let dir = TempDir::new("channels-halt");
        let mut channels = Channels::listen(dir.path(), &[Kind::Console], QUIET).unwrap();
        let mut console = connect(dir.path(), Kind::Console);
        pump(&mut channels);
        console.write_all(b"[ 3.2] reboot: System ha").unwrap();
        assert!(!pump(&mut channels).contains(&Event::Halted));
        console.write_all(b"lted").unwrap();
        assert!(pump(&mut channels).contains(&Event::Halted));
    }

    #[test]
    fn signs_of_life_and_the_last_line_seen() {
        let dir = TempDir::new("channels-life");
        let mut channels =
            Channels::listen(dir.path(), &[Kind::Status, Kind::Console], QUIET).unwrap();
        let mut status = connect(dir.path(), Kind::Status);
        let mut console = connect(dir.path(), Kind::Console);
        pump(&mut channels);
        assert!(!channels.console_spoke() && !channels.started());
        assert_eq!(channels.last_console_line(), None);
        console
            .write_all(
                b"[    0.000000] Linux version 6.1\r\n[    0.1] Key type x registered\r\n\r\n",
            )
            .unwrap();
        pump(&mut channels);
        assert!(channels.console_spoke() && !channels.started());
        assert_eq!(
            channels.last_console_line().as_deref(),
            Some("[    0.1] Key type x registered")
        );
        // Half a line is no report; the whole one is.
        status.write_all(b"ru").unwrap();
        pump(&mut channels);
        assert!(!channels.started());
        status.write_all(b"n\n").unwrap();
        pump(&mut channels);
        assert!(channels.started());
        assert_eq!(channels.last_status, Some(Status::Run));
    }
}
