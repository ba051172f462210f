# Build, install, demo, test and benchmark the three programs.
#
#   make            build init (static, no libc), mkinitrd and chrootvm
#                   (each carrying a copy of init), their manual pages
#                   (target/man) and shell completions (target/completions)
#   make install    PREFIX=/usr/local DESTDIR=: binaries in PREFIX/bin, init
#                   in PREFIX/lib/chrootvm where mkinitrd and chrootvm look,
#                   manual pages in PREFIX/share/man, completions where
#                   bash, zsh and fish look in PREFIX/share
#   make install-osbuild
#                   init also where osbuild looks for osbuild/initrd's,
#                   DESTDIR OSBUILD_LIBDIR/osbuild/initrd/initrd
#                   (OSBUILD_LIBDIR=/usr/lib): osbuild then boots with it
#   make dist       chrootvm-VERSION.tar.gz: the sources and every crate
#                   they build with (vendor/), to build with no network
#   make distcheck  unpack that, build, test and install it offline, and
#                   check what it installs and what cargo install gives
#   make demo       install what it needs, build, boot a VM over a directory
#   make check      install what it needs, build, check the formatting, the
#                   manual pages and completions, run every test (VM boots
#                   too) and every fuzz target for a few seconds, and
#                   distcheck
#   make bench      benchmarks, reports in bench/

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
# osbuild/initrd's LIBDIR, where osbuild's package expects it.
OSBUILD_LIBDIR ?= /usr/lib
BIN := target/release
MAN := target/man
COMPLETIONS := target/completions
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' chrootvm/Cargo.toml)
DIST := chrootvm-$(VERSION)
# The date the manual pages carry: the last commit's, or in a tarball
# (git archive dates its files so) Cargo.toml's.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || stat -c %Y Cargo.toml)

.PHONY: all programs man completions install install-osbuild dist distcheck deps demo check bench

all: programs man completions

programs:
	# init is a workspace of its own (init/Cargo.toml says why); its
	# binary lands in target/release beside the others. RUSTFLAGS are for
	# the host programs: init runs on the guest's CPU. mkinitrd's build.rs
	# builds the same bytes for mkinitrd and chrootvm to carry.
	env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS \
		$(CARGO) build --release --manifest-path init/Cargo.toml --target-dir target
	$(CARGO) build --release

# Made anew each time (in milliseconds) from what the programs print and
# docs/run-mode.md says: they cannot fall behind either (scripts/man).
man: programs
	mkdir -p $(MAN)
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) scripts/man help $(BIN)/chrootvm 1 \
		'mkinitrd(1), chrootvm-init(7), chroot(1), qemu-system-x86_64(1)' \
		> $(MAN)/chrootvm.1
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) scripts/man help $(BIN)/mkinitrd 1 \
		'chrootvm(1), chrootvm-init(7), cpio(1)' > $(MAN)/mkinitrd.1
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) scripts/man markdown docs/run-mode.md \
		chrootvm-init 7 "the PID 1 of chrootvm's initramfs: kernel command line and run mode" \
		'chrootvm(1), mkinitrd(1), bootparam(7)' > $(MAN)/chrootvm-init.7

# Made anew each time from the programs' --help, so a new option completes
# as soon as --help lists it (scripts/completions).
completions: programs
	mkdir -p $(COMPLETIONS)/bash $(COMPLETIONS)/zsh $(COMPLETIONS)/fish
	for program in chrootvm mkinitrd; do \
		scripts/completions bash $(BIN)/$$program > $(COMPLETIONS)/bash/$$program && \
		scripts/completions zsh $(BIN)/$$program > $(COMPLETIONS)/zsh/_$$program && \
		scripts/completions fish $(BIN)/$$program > $(COMPLETIONS)/fish/$$program.fish || exit 1; \
	done

install: all
	install -D -m 0755 $(BIN)/mkinitrd $(DESTDIR)$(PREFIX)/bin/mkinitrd
	install -D -m 0755 $(BIN)/chrootvm $(DESTDIR)$(PREFIX)/bin/chrootvm
	install -D -m 0755 $(BIN)/init $(DESTDIR)$(PREFIX)/lib/chrootvm/init
	install -D -m 0644 -t $(DESTDIR)$(MANDIR)/man1 $(MAN)/chrootvm.1 $(MAN)/mkinitrd.1
	install -D -m 0644 -t $(DESTDIR)$(MANDIR)/man7 $(MAN)/chrootvm-init.7
	# Where each shell looks for completions under PREFIX/share: bash's
	# bash-completion loads them by command name on first use.
	install -D -m 0644 -t $(DESTDIR)$(DATADIR)/bash-completion/completions \
		$(COMPLETIONS)/bash/chrootvm $(COMPLETIONS)/bash/mkinitrd
	install -D -m 0644 -t $(DESTDIR)$(DATADIR)/zsh/site-functions \
		$(COMPLETIONS)/zsh/_chrootvm $(COMPLETIONS)/zsh/_mkinitrd
	install -D -m 0644 -t $(DESTDIR)$(DATADIR)/fish/vendor_completions.d \
		$(COMPLETIONS)/fish/chrootvm.fish $(COMPLETIONS)/fish/mkinitrd.fish

# osbuild/initrd installs its init as $(LIBDIR)/osbuild/initrd/initrd, the
# file osbuild's --in-vm packs: ours there is a drop-in. Opt-in, as it
# takes over that file (osbuild's own package owns it).
install-osbuild: programs
	install -D -m 0755 $(BIN)/init $(DESTDIR)$(OSBUILD_LIBDIR)/osbuild/initrd/initrd

dist:
	scripts/dist $(DIST)

distcheck: dist
	scripts/distcheck $(DIST).tar.gz

deps:
	scripts/install-deps

demo: all
	scripts/install-deps demo
	scripts/demo

# A tool a test needs and does not find fails the test here (a broken
# install), instead of skipping it as a bare `cargo test` may.
check: export CHROOTVM_REQUIRE_TOOLS = 1
# The tests send stop signals and check what they do: they run with every
# signal at its default, even under nohup or as a background job (which
# start make with SIGHUP, or SIGINT and SIGQUIT, ignored).
check: CARGO_TEST = env --default-signal $(CARGO) test
check: deps all
	$(CARGO) fmt --all --check
	cd fuzz && $(CARGO) fmt --check
	scripts/check-docs
	$(CARGO_TEST) --release --manifest-path init/Cargo.toml --target-dir target
	$(CARGO_TEST) --release
	# What every Rust developer and editor runs (issue 15).
	$(CARGO) clippy --workspace --all-targets
	$(CARGO) clippy --manifest-path init/Cargo.toml --all-targets --target-dir target
	scripts/fuzz
	$(MAKE) distcheck

bench: deps all
	bench/run
