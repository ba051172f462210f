# Build, install, demo, test and benchmark the three programs.
#
#   make            build init (static, no libc), mkinitrd and chrootvm
#   make install    PREFIX=/usr/local DESTDIR=: binaries in PREFIX/bin, init
#                   in PREFIX/lib/chrootvm where mkinitrd and chrootvm look
#   make demo       install what it needs, build, boot a VM over a directory
#   make check      install what it needs, build, check the formatting, run
#                   every test (VM boots too) and every fuzz target for a
#                   few seconds
#   make bench      benchmarks, reports in bench/

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
BIN := target/release

.PHONY: all install deps demo check bench

all:
	# init is a workspace of its own (init/Cargo.toml says why); its
	# binary lands in target/release beside the others. RUSTFLAGS are for
	# the host programs: init runs on the guest's CPU. mkinitrd's build.rs
	# builds the same bytes for mkinitrd and chrootvm to carry.
	env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS \
		$(CARGO) build --release --manifest-path init/Cargo.toml --target-dir target
	$(CARGO) build --release

install: all
	install -D -m 0755 $(BIN)/mkinitrd $(DESTDIR)$(PREFIX)/bin/mkinitrd
	install -D -m 0755 $(BIN)/chrootvm $(DESTDIR)$(PREFIX)/bin/chrootvm
	install -D -m 0755 $(BIN)/init $(DESTDIR)$(PREFIX)/lib/chrootvm/init

deps:
	scripts/install-deps

demo: all
	scripts/install-deps demo
	scripts/demo

check: deps all
	$(CARGO) fmt --all --check
	cd fuzz && $(CARGO) fmt --check
	$(CARGO) test --release --manifest-path init/Cargo.toml --target-dir target
	$(CARGO) test --release
	# What every Rust developer and editor runs (issue 15).
	$(CARGO) clippy --workspace --all-targets
	$(CARGO) clippy --manifest-path init/Cargo.toml --all-targets --target-dir target
	scripts/fuzz

bench: deps all
	bench/run
