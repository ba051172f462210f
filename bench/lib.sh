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

# busybox_root DIR: a busybox tree with /bye.sh that powers off.
busybox_root() {
	rm -rf "$1"
	for dir in bin dev proc sys run tmp etc root; do mkdir -p "$1/$dir"; done
	cp /bin/busybox "$1/bin/busybox"
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -s busybox "$1/bin/$applet"
	done
	printf '#!/bin/sh\npoweroff -f\n' > "$1/bye.sh"
	chmod +x "$1/bye.sh"
}
