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
	# init alone: built beside the others, cargo would unify rustix's
	# features and link std into it (see Cargo.toml, default-members).
	$(CARGO) build --release -p init
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

# A tool a test needs and does not find fails the test here (a broken
# install), instead of skipping it as a bare `cargo test` may.
check: export CHROOTVM_REQUIRE_TOOLS = 1
check: deps all
	$(CARGO) fmt --all --check
	cd fuzz && $(CARGO) fmt --check
	$(CARGO) test --release -p init
	$(CARGO) test --release
	scripts/fuzz

bench: deps all
	bench/run
