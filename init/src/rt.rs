//! The runtime init needs without libc: the process entry point `_start`,
//! the memory functions the compiler emits calls to, the console's file
//! descriptor, and the raw syscalls rustix 1.1 keeps private or lacks
//! (`execve`, `fork`, `exit_group`, `kill(-1)`, signal masks, signalfd).
//!
//! # Safety
//!
//! Everything here assumes what holds for init and nothing else:
//! - one thread: init never creates another, so `fork` copies a process
//!   whose only thread is the caller, with no locks held by anyone else;
//! - no libc: there is no user-space state (stdio buffers, atexit handlers,
//!   TLS destructors) that `fork` or `exit_group` would have to respect;
//! - the x86-64 System V process entry: at `_start`, `rsp` points at argc,
//!   followed by argc argument pointers, a NULL, the environment pointers
//!   and a NULL, all set up by the kernel's `execve`.
//!
//! This is the only module allowed `unsafe`; every block says why it holds.

#![allow(unsafe_code)]

#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "init's runtime (rt.rs) supports x86_64 only: add _start, the memory functions and the syscall stubs for this architecture"
);

use core::arch::{asm, naked_asm};
use core::ffi::{CStr, c_char};
use core::ptr;
use rustix::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::Errno;
use rustix::process::Pid;

/// Most environment entries kept from the kernel (it passes at most 32,
/// `MAX_INIT_ENVS` in init/main.c).
pub const MAX_ENV: usize = 64;

/// The process entry point. Aligns the stack as the ABI requires before a
/// call and passes the kernel's stack pointer to [`entry`].
#[unsafe(naked)]
#[unsafe(no_mangle)]
unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        // Mark the outermost frame for debuggers.
        "xor ebp, ebp",
        // argc is at the stack pointer the kernel gives us.
        "mov rdi, rsp",
        // A call needs rsp 16-byte aligned; the kernel does not promise it.
        "and rsp, -16",
        "call {entry}",
        "ud2",
        entry = sym entry,
    )
}

/// Collects the environment the kernel passed and runs `main`.
///
/// # Safety
/// `stack` is the stack pointer at process entry (see the module docs).
unsafe extern "C" fn entry(stack: *const usize) -> ! {
    // SAFETY: at entry the stack holds argc, then argc + 1 argument
    // pointers (the last NULL), then the environment pointers up to a NULL.
    let envp = unsafe {
        let argc = *stack;
        stack.add(1 + argc + 1).cast::<*const c_char>()
    };
    let mut env = [c""; MAX_ENV];
    let mut count = 0;
    while count < MAX_ENV {
        // SAFETY: the environment array is NULL-terminated and we stop at
        // the NULL, so every read is inside it.
        let entry = unsafe { *envp.add(count) };
        if entry.is_null() {
            break;
        }
        // SAFETY: each entry points at a NUL-terminated string the kernel
        // copied onto the stack, which lives as long as the process.
        env[count] = unsafe { CStr::from_ptr(entry) };
        count += 1;
    }
    crate::main(&env[..count])
}

/// The console, which init keeps on fds 0, 1 and 2 for its whole life.
pub fn console() -> BorrowedFd<'static> {
    // SAFETY: init dup2s the console onto 0-2 first thing and never closes
    // them; if that setup failed, writes get EBADF, which is harmless.
    unsafe { rustix::stdio::stderr() }
}

/// Linux x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const SYS_IOCTL: usize = 16;
const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_CLONE: usize = 56;
const SYS_EXECVE: usize = 59;
const SYS_KILL: usize = 62;
const SYS_CLOCK_GETTIME: usize = 228;
const SYS_EXIT_GROUP: usize = 231;
const SYS_GETRUSAGE: usize = 98;
/// getrusage(2)'s `who` for the calling process.
const RUSAGE_SELF: usize = 0;
/// `struct rusage` on x86-64: two timevals (user, system), then 14 longs.
const RUSAGE_WORDS: usize = 18;
/// clock_gettime(2)'s id of the monotonic clock.
const CLOCK_MONOTONIC: usize = 1;
const SYS_SIGNALFD4: usize = 289;
const SYS_SOCKET: usize = 41;
/// socket(2): AF_INET, SOCK_DGRAM | SOCK_CLOEXEC.
const AF_INET: usize = 2;
const SOCK_DGRAM_CLOEXEC: usize = 2 | 0o2000000;
/// clone(2) flags for a plain fork: only the child's exit signal.
const SIGCHLD: usize = 17;
/// rt_sigprocmask(2) `how` values (include/uapi/asm-generic/signal-defs.h).
const SIG_BLOCK: usize = 0;
const SIG_SETMASK: usize = 2;
/// The kernel's sigset_t on x86-64 is 64 bits (`_NSIG / 8` bytes).
const SIGSET_SIZE: usize = 8;
/// signalfd4(2) flags: O_NONBLOCK and O_CLOEXEC.
const SFD_NONBLOCK: usize = 0o4000;
const SFD_CLOEXEC: usize = 0o2000000;

/// A raw syscall with up to four arguments.
///
/// # Safety
/// The arguments must be what syscall `number` expects; pointers valid for
/// the access it makes.
unsafe fn syscall4(number: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; the syscall instruction
    // clobbers only rcx and r11 besides rax.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Converts a raw syscall return into a result.
fn check(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        // The kernel returns -errno in [-4095, -1].
        Err(Errno::from_raw_os_error(i32::try_from(-ret).unwrap_or(0)))
    } else {
        Ok(ret.unsigned_abs())
    }
}

/// `execve`—replaces the process image. Returns only on failure, with
/// E2BIG when `argv` and `envp`, each with its closing NULL, need more
/// pointers than `slots` holds: the caller sizes it (the hand-over's lists
/// fit on the stack, run mode's are in .bss, see [`exec_slots`]).
///
/// # References
/// - [execve(2)](https://man7.org/linux/man-pages/man2/execve.2.html)
pub fn execve<'a>(
    path: &CStr,
    argv: impl IntoIterator<Item = &'a CStr>,
    envp: impl IntoIterator<Item = &'a CStr>,
    slots: &mut [*const c_char],
) -> Errno {
    let Some(envp_at) = fill_pointers(slots, argv) else {
        return Errno::TOOBIG;
    };
    let (argv_ptrs, envp_ptrs) = slots.split_at_mut(envp_at);
    if fill_pointers(envp_ptrs, envp).is_none() {
        return Errno::TOOBIG;
    }
    // SAFETY: `path` and every pointer in both lists point to
    // NUL-terminated strings borrowed for this call; `fill_pointers` ended
    // each list with a NULL.
    let ret = unsafe {
        syscall4(
            SYS_EXECVE,
            path.as_ptr() as usize,
            argv_ptrs.as_ptr() as usize,
            envp_ptrs.as_ptr() as usize,
            0,
        )
    };
    check(ret).err().unwrap_or(Errno::INVAL)
}

/// Copies string pointers into `slots`, then a NULL. Returns how many
/// slots that took, or None when they do not fit.
fn fill_pointers<'a>(
    slots: &mut [*const c_char],
    strings: impl IntoIterator<Item = &'a CStr>,
) -> Option<usize> {
    let mut used = 0;
    for string in strings {
        *slots.get_mut(used)? = string.as_ptr();
        used += 1;
    }
    *slots.get_mut(used)? = ptr::null();
    Some(used + 1)
}

/// `fork`—as clone(2) with only SIGCHLD. `Ok(None)` in the child,
/// `Ok(Some(pid))` in the parent.
///
/// # References
/// - [clone(2)](https://man7.org/linux/man-pages/man2/clone.2.html)
pub fn fork() -> Result<Option<Pid>, Errno> {
    // SAFETY: init is single-threaded and has no libc (module docs), so the
    // child is a faithful copy with no half-held locks; with a NULL stack
    // the child runs on a copy of the parent's stack, as fork(2) does.
    let ret = unsafe { syscall4(SYS_CLONE, SIGCHLD, 0, 0, 0) };
    let pid = check(ret)?;
    Ok(Pid::from_raw(i32::try_from(pid).map_err(|_| Errno::INVAL)?))
}

/// `exit_group`—ends the process (a forked child whose exec failed; PID 1
/// itself never exits).
///
/// # References
/// - [exit_group(2)](https://man7.org/linux/man-pages/man2/exit_group.2.html)
pub fn exit_group(status: u8) -> ! {
    // SAFETY: exit_group takes an int and does not return; with no libc
    // there are no user-space buffers to flush first.
    unsafe {
        syscall4(SYS_EXIT_GROUP, usize::from(status), 0, 0, 0);
    }
    unreachable!("exit_group returned")
}

/// `kill(-1, sig)`—signals every process but init itself (rustix's `Pid`
/// cannot say -1).
///
/// # References
/// - [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html)
pub fn kill_all(signal: rustix::process::Signal) -> Result<(), Errno> {
    let number = usize::try_from(signal.as_raw()).map_err(|_| Errno::INVAL)?;
    // SAFETY: kill takes a pid and a signal number, no pointers.
    let ret = unsafe {
        syscall4(SYS_KILL, usize::MAX /* -1 */, number, 0, 0)
    };
    check(ret).map(|_| ())
}

/// Microseconds on the monotonic clock (since boot): the time base of the
/// kernel log. A plain syscall: rustix's vDSO path costs 2.6 KB, and init
/// reads the clock a few dozen times.
///
/// # References
/// - [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)
pub fn monotonic_us() -> u64 {
    let mut time = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a struct timespec (two i64 on x86-64) that outlives
    // the call, which only writes it.
    let ret = unsafe {
        syscall4(
            SYS_CLOCK_GETTIME,
            CLOCK_MONOTONIC,
            ptr::from_mut(&mut time) as usize,
            0,
            0,
        )
    };
    if check(ret).is_err() {
        return 0;
    }
    let secs = u64::try_from(time.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(time.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1_000
}

/// Microseconds of user-mode CPU this process has used: init's own work,
/// without the time the kernel spent in its syscalls (mounts, module
/// initialisation). Tick-sampled on kernels without full CPU time
/// accounting: the kernel splits the exact total by how many timer ticks
/// found the process in user mode. 0 if the call fails.
///
/// # References
/// - [getrusage(2)](https://man7.org/linux/man-pages/man2/getrusage.2.html)
pub fn user_cpu_us() -> u64 {
    let mut usage = [0i64; RUSAGE_WORDS];
    // SAFETY: `usage` has the size and alignment of struct rusage on
    // x86-64 and outlives the call, which only writes it.
    let ret = unsafe {
        syscall4(
            SYS_GETRUSAGE,
            RUSAGE_SELF,
            usage.as_mut_ptr() as usize,
            0,
            0,
        )
    };
    if check(ret).is_err() {
        return 0;
    }
    // ru_utime: tv_sec, tv_usec.
    let secs = u64::try_from(usage[0]).unwrap_or(0);
    let micros = u64::try_from(usage[1]).unwrap_or(0);
    secs * 1_000_000 + micros
}

/// The signal set holding only SIGCHLD.
const SIGCHLD_SET: u64 = 1 << (SIGCHLD - 1);

/// Blocks SIGCHLD, so it is delivered only through [`sigchld_fd`].
///
/// # References
/// - [rt_sigprocmask(2)](https://man7.org/linux/man-pages/man2/rt_sigprocmask.2.html)
pub fn block_sigchld() -> Result<(), Errno> {
    let set = SIGCHLD_SET;
    // SAFETY: `set` is a valid 8-byte sigset that outlives the call; the old
    // set is not asked for (NULL).
    let ret = unsafe {
        syscall4(
            SYS_RT_SIGPROCMASK,
            SIG_BLOCK,
            ptr::from_ref(&set) as usize,
            0,
            SIGSET_SIZE,
        )
    };
    check(ret).map(|_| ())
}

/// Unblocks every signal: a forked child calls this before exec, as the
/// mask survives exec.
pub fn unblock_signals() -> Result<(), Errno> {
    let set: u64 = 0;
    // SAFETY: as in `block_sigchld`, with the empty set.
    let ret = unsafe {
        syscall4(
            SYS_RT_SIGPROCMASK,
            SIG_SETMASK,
            ptr::from_ref(&set) as usize,
            0,
            SIGSET_SIZE,
        )
    };
    check(ret).map(|_| ())
}

/// A non-blocking, close-on-exec fd that is readable when a SIGCHLD is
/// pending (call [`block_sigchld`] first).
///
/// # References
/// - [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html)
pub fn sigchld_fd() -> Result<OwnedFd, Errno> {
    let set = SIGCHLD_SET;
    // SAFETY: fd -1 asks for a new signalfd; `set` is a valid 8-byte sigset.
    let ret = unsafe {
        syscall4(
            SYS_SIGNALFD4,
            usize::MAX, /* -1 */
            ptr::from_ref(&set) as usize,
            SIGSET_SIZE,
            SFD_NONBLOCK | SFD_CLOEXEC,
        )
    };
    let fd = i32::try_from(check(ret)?).map_err(|_| Errno::INVAL)?;
    // SAFETY: signalfd4 just returned this new fd, which nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// The memory functions the compiler calls, written in assembly so LLVM
// cannot turn a copy loop back into a call to memcpy. String instructions
// keep init small; they move 8 bytes at a time and then the tail, because
// TCG (qemu without KVM, where init runs in CI) executes each iteration of
// a `rep` as one translated block: a byte at a time, a 96 KiB copy took
// ~100k block executions. On hardware, `rep movsq` is as fast as ERMSB's
// `rep movsb`.

/// `memcpy`: copies `n` bytes between non-overlapping buffers.
///
/// # Safety
/// As C's memcpy: both ranges valid for `n` bytes and not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the ranges; the direction flag is clear
    // per the ABI, so both copies go forwards: n / 8 words, then n % 8 bytes.
    unsafe {
        asm!(
            "rep movsq",
            "mov ecx, edx",
            "and ecx, 7",
            "rep movsb",
            inout("rcx") n / 8 => _,
            in("rdx") n,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack),
        );
    }
    dest
}

/// `memmove`: copies `n` bytes between possibly overlapping buffers.
///
/// # Safety
/// As C's memmove: both ranges valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // dest is before src or past its end: a forward copy never reads a
        // byte it already overwrote.
        // SAFETY: as for memcpy; overlap is safe in this direction.
        unsafe { memcpy(dest, src, n) };
    } else {
        // SAFETY: dest overlaps the tail of src, so copy backwards from the
        // last byte (std), then restore the direction flag the ABI requires
        // to be clear (cld).
        unsafe {
            asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rcx") n => _,
                inout("rdi") dest.add(n - 1) => _,
                inout("rsi") src.add(n - 1) => _,
                options(nostack),
            );
        }
    }
    dest
}

/// `memset`: fills `n` bytes with `c`.
///
/// # Safety
/// As C's memset: the range is valid for `n` bytes.
#[unsafe(no_mangle)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "memset stores the low byte of c, as C does"
)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range; rep stosq stores rax (the
    // byte in all eight lanes) n / 8 times, rep stosb its low byte n % 8.
    unsafe {
        asm!(
            "rep stosq",
            "mov ecx, edx",
            "and ecx, 7",
            "rep stosb",
            inout("rcx") n / 8 => _,
            in("rdx") n,
            inout("rdi") dest => _,
            in("rax") u64::from(c as u8) * 0x0101_0101_0101_0101,
            options(nostack),
        );
    }
    dest
}

/// `memcmp`: compares `n` bytes.
///
/// # Safety
/// As C's memcmp: both ranges valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n and both ranges are valid for n bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// `bcmp`: whether `n` bytes differ (LLVM emits it for equality tests).
///
/// # Safety
/// As C's bcmp: both ranges valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// `strlen`: length of a NUL-terminated string.
///
/// # Safety
/// As C's strlen: `s` points at a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const c_char) -> usize {
    let mut n = 0;
    // SAFETY: the string is NUL-terminated, and we stop at the NUL.
    while unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

/// The unwinder's personality routine, which the prebuilt `core` refers to.
/// init is built with `panic = "abort"`, so nothing ever unwinds and this is
/// never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// An AF_INET datagram socket, the handle netdevice(7) and route ioctls
/// take. rustix has no netdevice ioctls.
///
/// # References
/// - [netdevice(7)](https://man7.org/linux/man-pages/man7/netdevice.7.html)
pub fn inet_socket() -> Result<OwnedFd, Errno> {
    // SAFETY: socket takes three integers and returns a new fd or -errno.
    let ret = unsafe { syscall4(SYS_SOCKET, AF_INET, SOCK_DGRAM_CLOEXEC, 0, 0) };
    let fd = i32::try_from(check(ret)?).map_err(|_| Errno::INVAL)?;
    // SAFETY: socket just returned this fd, which nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A netdevice(7) or route ioctl whose argument is a `struct ifreq` (40
/// bytes) or `struct rtentry` (120 bytes), built by `init::net`.
///
/// # References
/// - [netdevice(7)](https://man7.org/linux/man-pages/man7/netdevice.7.html)
/// - [route(4)](https://man7.org/linux/man-pages/man4/route.4.html)
pub fn net_ioctl(socket: &OwnedFd, request: usize, arg: &mut [u8]) -> Result<(), Errno> {
    // The kernel reads (and for the getters writes) one of these sizes.
    if arg.len() != init::net::IFREQ_SIZE && arg.len() != init::net::RTENTRY_SIZE {
        return Err(Errno::INVAL);
    }
    let fd = usize::try_from(socket.as_raw_fd()).map_err(|_| Errno::INVAL)?;
    // SAFETY: `arg` is a buffer of the struct's full size for `request`
    // (an ifreq for the netdevice requests, an rtentry for SIOCADDRT),
    // valid for the kernel's reads and writes for the call's duration; an
    // rtentry's rt_dev pointer is left null.
    let ret = unsafe { syscall4(SYS_IOCTL, fd, request, arg.as_mut_ptr() as usize, 0) };
    check(ret).map(|_| ())
}

/// Size of [`spec_buffer`]: the largest run spec init reads.
pub const SPEC_BUFFER: usize = init::runspec::MAX_SIZE;

/// Size of [`exec_slots`]: a pointer for every string execve takes under
/// the 8 MiB stack limit (2 MiB of strings and pointers, each string at
/// least its NUL: 9 bytes), and each list's NULL. More strings than this
/// the kernel would refuse too.
pub const EXEC_SLOTS: usize = (2 << 20) / 9 + 2;

/// Room for /proc/cmdline (COMMAND_LINE_SIZE is 2048 on x86, 4096 at most
/// on other architectures).
pub const CMDLINE_BUFFER: usize = 8192;

/// Size of [`relay_buffer`]: a pipe's default capacity.
pub const RELAY_BUFFER: usize = 64 * 1024;

/// Module file names: about 3000 of typical length, far beyond any
/// initramfs (a full distribution image has a few hundred).
pub type ModuleNames = init::names::Names<{ 64 * 1024 }, 4096>;

/// A `&'static mut` to a zeroed static of type `$ty`, handed out once.
///
/// Init's big buffers live in .bss this way, not on the stack: .bss pages
/// are mapped on first write, so a buffer costs only the pages it fills,
/// while every page of a stack frame is probed (faulted in, and cleared by
/// the kernel) at the function's entry, and a value returned by value is
/// copied whole. Under TCG each page is ~0.1-0.3 ms and each copied byte an
/// iteration of `rep movsb`.
macro_rules! take_once {
    ($ty:ty, $zero:expr, $what:literal) => {{
        static mut CELL: $ty = $zero;
        static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        assert!(
            !TAKEN.swap(true, core::sync::atomic::Ordering::Relaxed),
            concat!($what, " taken twice")
        );
        // SAFETY: TAKEN makes this the only reference ever made to CELL,
        // and init is single-threaded.
        unsafe { &mut *ptr::addr_of_mut!(CELL) }
    }};
}

/// The buffer the run spec is read into.
pub fn spec_buffer() -> &'static mut [u8; SPEC_BUFFER] {
    take_once!([u8; SPEC_BUFFER], [0; SPEC_BUFFER], "spec buffer")
}

/// The argument and environment pointers of run mode's command.
pub fn exec_slots() -> &'static mut [*const c_char; EXEC_SLOTS] {
    take_once!(
        [*const c_char; EXEC_SLOTS],
        [ptr::null(); EXEC_SLOTS],
        "exec pointer slots"
    )
}

/// The buffer /proc/cmdline is read into.
pub fn cmdline_buffer() -> &'static mut [u8; CMDLINE_BUFFER] {
    take_once!(
        [u8; CMDLINE_BUFFER],
        [0; CMDLINE_BUFFER],
        "command line buffer"
    )
}

/// The buffer run mode relays the command's output through.
pub fn relay_buffer() -> &'static mut [u8; RELAY_BUFFER] {
    take_once!([u8; RELAY_BUFFER], [0; RELAY_BUFFER], "relay buffer")
}

/// The list the module file names are read into.
pub fn module_names() -> &'static mut ModuleNames {
    take_once!(ModuleNames, ModuleNames::new(), "module name list")
}
