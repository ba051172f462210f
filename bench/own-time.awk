# The user-mode time of an initramfs's processes before hand-over, from a
# kernel trace of the boot (bench/run boots with trace_event= and
# kprobe_event= and dumps the trace at hand-over):
#   raw_syscalls:sys_enter/sys_exit   each process's time between syscalls
#   exceptions:page_fault_user        a page fault starts ...
#   r_handle_mm_fault (kretprobe)     ... and is handled
#   irq_vectors:*, irq:softirq_*      interrupts (*_entry ... *_exit)
#   sched:sched_process_exec          the hand-over's exec ends the window
# A process's own time is its time between syscalls less its page faults
# and the interrupts taken meanwhile: its instructions, which under TCG
# includes translating them on first execution. Counted from PID 1's first
# return to user mode until it execs HANDOVER (-v handover=/path).
# Prints: own_us between_us faults processes
{
	if (!match($0, /-[0-9]+ +\[[0-9]+\]/)) next
	split(substr($0, RSTART + 1, RLENGTH - 1), who, " ")
	pid = who[1]
	if (!match($0, /[0-9]+\.[0-9]+: [a-z_0-9]+/)) next
	split(substr($0, RSTART, RLENGTH), f, ": ")
	t = f[1] * 1e6; ev = f[2]
	if (!started) {
		if (pid != 1 || ev != "sys_exit") next
		started = 1
	}
	if (ev == "sched_process_exec" && pid == 1 && index($0, "filename=" handover " ")) {
		if (pid in user && user[pid] && depth[pid] == 0) { own += t - mark[pid]; between += t - left[pid] }
		printf "%d %d %d %d\n", own, between, faults, processes
		done = 1
		exit
	}
	if (ev == "sys_exit") { if (!(pid in user)) processes++; user[pid] = 1; depth[pid] = 0; fault[pid] = 0; mark[pid] = left[pid] = t; next }
	if (!(pid in user) || !user[pid]) next
	if (ev == "sys_enter") {
		if (depth[pid] == 0) own += t - mark[pid]
		between += t - left[pid]; user[pid] = 0
		next
	}
	if (ev == "page_fault_user") { pause_at(t); fault[pid] = 1; faults++; next }
	if (ev ~ /^r_handle_mm_fault/ && fault[pid]) { fault[pid] = 0; resume_at(t); next }
	if (ev ~ /_entry$/) { pause_at(t); next }
	if (ev ~ /_exit$/ && depth[pid] > 0) { resume_at(t); next }
}

function pause_at(t) { if (depth[pid]++ == 0) own += t - mark[pid] }
function resume_at(t) { if (--depth[pid] == 0) mark[pid] = t }

END { if (!done) { print "own-time.awk: no exec of " handover " by PID 1 in the trace" > "/dev/stderr"; exit 1 } }
