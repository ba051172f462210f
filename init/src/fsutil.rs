//! Small file helpers shared by the steps: reading a short file into a
//! buffer, creating a directory that may exist, waiting, and finding a
//! virtio-serial port by name.

use core::mem::MaybeUninit;
use init::buf::CPath;
use rustix::event::Timespec;
use rustix::fs::{Mode, OFlags, RawDir, mkdir};
use rustix::io::Errno;
use rustix::thread::{NanosleepRelativeResult, nanosleep};

/// Reads a whole small file (procfs, sysfs) into `buf`; stops when full.
pub fn read_file<'b>(path: &[u8], buf: &'b mut [u8]) -> Result<&'b [u8], Errno> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(&buf[..len])
}

/// mkdir that treats an existing entry as success.
pub fn ensure_dir(path: &[u8], mode: u32) -> Result<(), Errno> {
    match mkdir(path, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// Whether `path` is a directory (following symlinks, as mount does).
pub fn is_dir(path: &[u8]) -> bool {
    rustix::fs::stat(path)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        })
        .unwrap_or(false)
}

/// Sleeps `ms` milliseconds.
pub fn sleep_ms(ms: u32) {
    let mut request = Timespec {
        tv_sec: i64::from(ms / 1000),
        tv_nsec: i64::from(ms % 1000) * 1_000_000,
    };
    while let NanosleepRelativeResult::Interrupted(rest) = nanosleep(&request) {
        request = rest;
    }
}

/// Where virtio_console lists its ports, one directory per port with a
/// `name` file holding the name the host gave it.
const VIRTIO_PORTS: &[u8] = b"/sys/class/virtio-ports";

/// The /dev node of the virtio-serial port called `name`, waiting up to
/// `wait_ms` for it to appear.
pub fn find_virtio_port(name: &[u8], wait_ms: u32) -> Option<CPath<64>> {
    const POLL_MS: u32 = 5;
    let mut waited = 0;
    loop {
        if let Some(path) = scan_virtio_ports(name) {
            return Some(path);
        }
        if waited >= wait_ms {
            return None;
        }
        sleep_ms(POLL_MS);
        waited += POLL_MS;
    }
}

fn scan_virtio_ports(name: &[u8]) -> Option<CPath<64>> {
    let dir = rustix::fs::open(
        VIRTIO_PORTS,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    let mut entries = RawDir::new(&dir, &mut buf);
    while let Some(Ok(entry)) = entries.next() {
        let port = entry.file_name().to_bytes();
        if port.starts_with(b".") {
            continue;
        }
        let Ok(name_path) = CPath::<128>::join(&[VIRTIO_PORTS, b"/", port, b"/name"]) else {
            continue;
        };
        let mut text = [0u8; 128];
        if read_file(name_path.as_bytes(), &mut text)
            .is_ok_and(|found| found.trim_ascii_end() == name)
        {
            return CPath::join(&[b"/dev/", port]).ok();
        }
    }
    None
}
