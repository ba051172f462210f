//! The runtime init needs without libc: the process entry point `_start`,
//! the memory functions the compiler emits calls to, the console's file
//! descriptor, and the raw syscall rustix 1.1 keeps private (`execve`).
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
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// Most environment entries kept from the kernel (it passes at most 32,
/// `MAX_INIT_ENVS` in init/main.c).
pub const MAX_ENV: usize = 64;

/// Most arguments or environment entries `execve` takes from init.
pub const MAX_ARGS: usize = 1024;

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
const SYS_EXECVE: usize = 59;

/// Converts a raw syscall return into a result.
fn check(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        // The kernel returns -errno in [-4095, -1].
        Err(Errno::from_raw_os_error(i32::try_from(-ret).unwrap_or(0)))
    } else {
        Ok(ret.unsigned_abs())
    }
}

/// `execve`—replaces the process image. Returns only on failure.
///
/// # References
/// - [execve(2)](https://man7.org/linux/man-pages/man2/execve.2.html)
pub fn execve<'a>(
    path: &CStr,
    argv: impl IntoIterator<Item = &'a CStr>,
    envp: impl IntoIterator<Item = &'a CStr>,
) -> Errno {
    let mut argv_ptrs = [ptr::null::<c_char>(); MAX_ARGS + 1];
    let mut envp_ptrs = [ptr::null::<c_char>(); MAX_ARGS + 1];
    if !fill_pointers(&mut argv_ptrs, argv) || !fill_pointers(&mut envp_ptrs, envp) {
        return Errno::TOOBIG;
    }
    let ret: isize;
    // SAFETY: `path` and every pointer in both arrays point to NUL-terminated
    // strings borrowed for this call; both arrays end in a NULL because
    // `fill_pointers` leaves the last slot untouched.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_EXECVE => ret,
            in("rdi") path.as_ptr(),
            in("rsi") argv_ptrs.as_ptr(),
            in("rdx") envp_ptrs.as_ptr(),
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    check(ret).err().unwrap_or(Errno::INVAL)
}

/// Copies string pointers into `slots`, keeping its last slot NULL. False
/// when there are more strings than fit.
fn fill_pointers<'a>(
    slots: &mut [*const c_char; MAX_ARGS + 1],
    strings: impl IntoIterator<Item = &'a CStr>,
) -> bool {
    let mut strings = strings.into_iter();
    for slot in slots[..MAX_ARGS].iter_mut() {
        match strings.next() {
            Some(string) => *slot = string.as_ptr(),
            None => return true,
        }
    }
    strings.next().is_none()
}

// The memory functions the compiler calls. `rep movsb`/`rep stosb` are fast
// on every x86-64 since Ivy Bridge (ERMSB) and keep init small; written in
// assembly so LLVM cannot turn a copy loop back into a call to memcpy.

/// `memcpy`: copies `n` bytes between non-overlapping buffers.
///
/// # Safety
/// As C's memcpy: both ranges valid for `n` bytes and not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the ranges; the direction flag is clear
    // per the ABI, so rep movsb copies forwards.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
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
    // SAFETY: the caller guarantees the range; rep stosb stores al.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
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
