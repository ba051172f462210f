/* The floor for init's own work: the least code that does an initramfs
 * init's job (mount devtmpfs, proc and sysfs, load the modules, mount the
 * virtiofs root, move /dev, switch root, exec the hand-over), one raw
 * syscall after another: no libc, no parsing, no error reports, no lo, and
 * the initramfs is not emptied. Under TCG its own time is what any first
 * process pays to cross into and out of the kernel; bench/run compares
 * ours against it. MODULES (a list of C strings) and HANDOVER are given at
 * build time:
 *   gcc -Os -static -nostdlib -fno-pie -no-pie -DMODULES='"a.ko", "b.ko"'
 *       -DHANDOVER='"/trace.sh"' -o floor bench/floor.c
 */

enum {
	SYS_open = 2, SYS_close = 3, SYS_execve = 59, SYS_exit = 60, SYS_chdir = 80,
	SYS_mount = 165, SYS_chroot = 161, SYS_finit_module = 313,
	MS_MOVE = 8192, O_RDONLY_CLOEXEC = 02000000,
};

static long syscall5(long nr, long a, long b, long c, long d, long e)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall" : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

static long mount(const char *source, const char *target, const char *type, long flags)
{
	return syscall5(SYS_mount, (long)source, (long)target, (long)type, flags, 0);
}

static const char *const modules[] = { MODULES };

void _start(void)
{
	static const char *const argv[] = { HANDOVER, 0 };
	static const char *const envp[] = { 0 };

	mount("dev", "/dev", "devtmpfs", 0);
	mount("proc", "/proc", "proc", 0);
	mount("sys", "/sys", "sysfs", 0);
	for (unsigned long i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
		long fd = syscall5(SYS_open, (long)modules[i], O_RDONLY_CLOEXEC, 0, 0, 0);
		syscall5(SYS_finit_module, fd, (long)"", 0, 0, 0);
		syscall5(SYS_close, fd, 0, 0, 0, 0);
	}
	/* Bounded: a root that never mounts ends in exit, a kernel panic and,
	 * with panic=-1 and -no-reboot, qemu's exit; not a hung benchmark. */
	for (long tries = 0; mount("rootfs", "/sysroot", "virtiofs", 0) < 0; tries++)
		if (tries == 100000)
			syscall5(SYS_exit, 1, 0, 0, 0, 0);
	mount("/dev", "/sysroot/dev", 0, MS_MOVE);
	syscall5(SYS_chdir, (long)"/sysroot", 0, 0, 0, 0);
	mount(".", "/", 0, MS_MOVE);
	syscall5(SYS_chroot, (long)".", 0, 0, 0, 0);
	syscall5(SYS_chdir, (long)"/", 0, 0, 0, 0);
	syscall5(SYS_execve, (long)argv[0], (long)argv, (long)envp, 0, 0);
	syscall5(SYS_exit, 1, 0, 0, 0, 0);
}
