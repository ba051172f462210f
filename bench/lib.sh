# Helpers for bench/run: hyperfine medians and the report.

# median_of JSON INDEX: the median (seconds) of command INDEX (0-based) in
# a hyperfine --export-json file.
median_of() {
	awk -v want="$2" '
		/"median":/ { if (n == want) { gsub(/[",]/, "", $2); print $2; exit } n++ }
	' "$1"
}

# ms SECONDS: milliseconds with one decimal.
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# report LINE...: append lines to the report.
report() { printf '%s\n' "$@" >> "$REPORT"; }

# busybox_root DIR: a busybox tree with /bye.sh that powers off and
# /trace.sh that dumps the kernel trace first.
busybox_root() {
	rm -rf "$1"
	for dir in bin dev proc sys run tmp etc root; do mkdir -p "$1/$dir"; done
	cp /bin/busybox "$1/bin/busybox"
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -s busybox "$1/bin/$applet"
	done
	printf '#!/bin/sh\npoweroff -f\n' > "$1/bye.sh"
	# The hand-over for traced boots: stop tracing, dump the trace.
	printf '#!/bin/sh\n[ -d /sys/kernel ] || mount -t sysfs sysfs /sys\nmount -t tracefs tracefs /sys/kernel/tracing\necho 0 > /sys/kernel/tracing/tracing_on\ncat /sys/kernel/tracing/trace > /dev/console\npoweroff -f\n' > "$1/trace.sh"
	chmod +x "$1/bye.sh" "$1/trace.sh"
}

# median LIST...: the median of numbers.
median() { printf "%s\n" "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%d\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# boot_virtiofs IMAGE APPEND ROOT OUT: boots IMAGE under TCG with ROOT
# shared as virtiofs tag "rootfs" by the C virtiofsd; the console goes
# to OUT.
boot_virtiofs() {
	sock=$WORK/fs.sock
	rm -f "$sock"
	/usr/lib/qemu/virtiofsd --socket-path="$sock" -o source="$3" -o cache=auto >/dev/null 2>&1 &
	daemon=$!
	while [ ! -S "$sock" ]; do sleep 0.01; done
	qemu-system-x86_64 -machine q35,memory-backend=mem -accel tcg -cpu max -m 2G -smp 2 \
		-object memory-backend-memfd,id=mem,size=2G,share=on \
		-chardev socket,id=fs0,path="$sock" -device vhost-user-fs-pci,chardev=fs0,tag=rootfs \
		-kernel "$KERNEL" -initrd "$1" -append "console=ttyS0 panic=-1 $2" \
		-serial file:"$4" -nodefaults -no-user-config -display none -no-reboot
	kill "$daemon" 2>/dev/null || true
	wait "$daemon" 2>/dev/null || true
}

# kmsg_us OUT TEXT: the kernel timestamp of the console line holding TEXT,
# in microseconds.
kmsg_us() {
	grep -F "$2" "$1" | head -n 1 | sed 's/^\[ *\([0-9]*\)\.\([0-9]*\)\].*/\1\2/' | sed 's/^0*//'
}
