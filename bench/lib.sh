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

# ms_us MICROSECONDS: milliseconds with one decimal.
ms_us() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }

# ms_list MICROSECONDS...: each in whole milliseconds, space-separated.
ms_list() { printf '%s\n' "$@" | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 / 1000 }'; }

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
	# chrootvm --net names its resolver here (it warns when there is none).
	: > "$1/etc/resolv.conf"
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

# interleave ROUNDS NAME COMMAND [NAME COMMAND]...: runs each COMMAND
# (with sh -c, no input, output discarded) once per round, for one
# warm-up round and then ROUNDS timed rounds, in the order given on even
# rounds and reversed on odd ones. Taking turns spreads the load of other
# work on the machine over all the commands alike (hyperfine runs all of
# one command's runs in a row), and reversing cancels a trend within a
# round. Sets times_NAME to NAME's wall times and cpu_NAME to the CPU
# time (user + system) of the processes it waited for, in microseconds,
# one per round in round order, for paired_ratio. Under TCG a boot is CPU
# work, so its CPU time varies less with the load than its wall time. A
# command that fails stops the benchmark with its last lines of stderr.
interleave() {
	il_rounds=$1; shift
	il_pairs=$(($# / 2)); il_i=1
	while [ "$#" -gt 0 ]; do
		eval "il_name_$il_i=\$1; il_command_$il_i=\$2; times_$1=''; cpu_$1=''"
		shift 2; il_i=$((il_i + 1))
	done
	il_round=0
	while [ "$il_round" -le "$il_rounds" ]; do
		il_step=1
		while [ "$il_step" -le "$il_pairs" ]; do
			il_i=$il_step; [ $((il_round % 2)) -eq 0 ] || il_i=$((il_pairs + 1 - il_step))
			eval "il_name=\$il_name_$il_i; il_command=\$il_command_$il_i"
			il_start=$(date +%s%N)
			/usr/bin/time -f '%U %S' -o "$WORK/$il_name.cpu" sh -c "$il_command" </dev/null >/dev/null 2>"$WORK/$il_name.err" || {
				echo "bench: $il_name failed: $il_command" >&2
				tail -n 5 "$WORK/$il_name.err" >&2
				exit 1
			}
			il_end=$(date +%s%N)
			if [ "$il_round" -gt 0 ]; then
				eval "times_$il_name=\"\$times_$il_name $(((il_end - il_start) / 1000))\""
				eval "cpu_$il_name=\"\$cpu_$il_name $(awk '{ printf "%d", ($1 + $2) * 1000000 }' "$WORK/$il_name.cpu")\""
			fi
			il_step=$((il_step + 1))
		done
		il_round=$((il_round + 1))
	done
}

# paired_ratio "TIMES_A" "TIMES_B": the median over rounds of A/B, each
# round's A against the same round's B (lists from interleave), with two
# decimals. Load that slows a whole round cancels out.
paired_ratio() {
	printf '%s\n' "$1" "$2" | awk '
		NR == 1 { n = split($0, a, " ") } NR == 2 { split($0, b, " ") }
		END {
			for (i = 1; i <= n; i++) r[i] = a[i] / b[i]
			for (i = 2; i <= n; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
			printf "%.2f", (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
		}'
}

# paired_diff "TIMES_A" "TIMES_B": the median over rounds of A-B, in
# milliseconds with one decimal.
paired_diff() {
	printf '%s\n' "$1" "$2" | awk '
		NR == 1 { n = split($0, a, " ") } NR == 2 { split($0, b, " ") }
		END {
			for (i = 1; i <= n; i++) r[i] = a[i] - b[i]
			for (i = 2; i <= n; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
			printf "%.1f", ((n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2) / 1000
		}'
}

# peer_error NAME COMMAND: runs COMMAND once; when it fails, prints one
# line: its first three lines of note (the guest kernel's panic, the
# peer's own error), else its exit status.
peer_error() {
	status=0
	VMTEST_NO_UI=1 timeout 600 sh -c "$2" </dev/null >"$WORK/$1.out" 2>&1 || status=$?
	[ "$status" -eq 0 ] && return 0
	sed 's/\x1b\[[0-9;]*[A-Za-z]//g; s/\r//g; s/^\[ *[0-9.]*\] *//; s/^ *//' "$WORK/$1.out" |
		grep -E 'Kernel panic|VFS: Cannot|Failed|[Ee]rror|not found|[Cc]annot|stuck' | head -n 3 |
		awk '{ printf "%s%s", (NR > 1 ? "; " : ""), $0 }' | grep . || echo "exit status $status, no message"
}

# peer_row LABEL NAME: a table row of NAME's medians and paired ratios
# against ours_host (chrootvm), from interleave.
peer_row() {
	eval "pw=\$times_$2; pc=\$cpu_$2"
	report "| $1 | $(ms_us "$(median $pw)") ms | $(paired_ratio "$pw" "$times_ours_host") | $(ms_us "$(median $pc)") ms | $(paired_ratio "$pc" "$cpu_ours_host") |"
}
