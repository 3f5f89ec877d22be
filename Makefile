# SPDX-License-Identifier: GPL-2.0
#
# dm-amf top-level Makefile.
#
#   make demo          build everything, boot a VM, run an amf volume, show it (README)
#   make check         every test: cargo, module build with CLIPPY=1, VM suites (README)
#   make module        build dm-amf.ko (KDIR=<Rust-enabled kernel build dir> to choose one)
#   make clippy        the same with CLIPPY=1
#   make bench         benchmarks against dm-striped / dm-raid, the write-intent bitmap
#                      against md's bitmap and PPL, cluster scaling, replication over TCP
#                      and RDMA (not pass/fail)
#   make install       dm-amf.ko into $(DESTDIR)/lib/modules/<kver>/extra (then depmod),
#                      amfctl, its man pages and bash/zsh/fish completions under $(PREFIX),
#                      amf-assemble.service, the udev rule and an example amf.conf
#   make man           the man pages (amfctl.8, amfctl-<command>.8) in target/man
#   make completions   the shell completions in target/completions
#   make dkms-src      the module's sources and dkms.conf into
#                      $(DESTDIR)/usr/src/dm-amf-<version> (then: dkms add/build/install)
#
# Without KDIR, the project's own test kernel is built once and cached outside the
# checkout (tests/rig/build-kernel.sh).

SHELL := /bin/bash
here := $(CURDIR)

ifeq ($(KDIR),)
kdir_cmd = $$($(here)/tests/rig/build-kernel.sh debug | tail -n1)
else
kdir_cmd = $(KDIR)
endif

.PHONY: all module clippy check check-full demo bench clean setup kernel rustfmt \
	amfctl man completions install install-module install-amfctl install-units dkms-src

all: module

setup:
	@$(here)/tests/rig/setup-host.sh

kernel: setup
	@$(here)/tests/rig/build-kernel.sh debug >/dev/null

module:
	@kdir=$(kdir_cmd) && $(MAKE) -C "$$kdir" M=$(here) modules

clippy:
	@kdir=$(kdir_cmd) && $(MAKE) -C "$$kdir" M=$(here) CLIPPY=1 modules

rustfmt:
	@rustfmt --check --edition 2021 --config-path $(here)/.rustfmt.toml \
		dm-amf/amf.rs rust/mod.rs

check:
	@$(here)/tests/run

# make check with the long matrices (suites read it from amf.env: LOGREPLAY_FULL=1)
check-full:
	@AMF_FULL=1 $(here)/tests/run

demo:
	@$(here)/tests/demo.sh

bench:
	@$(here)/tests/bench.sh

# ------------------------------------------------------------------ install
# DESTDIR: a staging root (packages, tests); PREFIX: where amfctl, its man pages and
# completions go. The module goes under /lib/modules/<kver>/extra of DESTDIR, where
# modprobe looks (depmod indexes extra/), whatever PREFIX is. <kver> is the release of the
# kernel tree the module is built against (KDIR, default the project's test kernel); give
# KDIR=/lib/modules/$(uname -r)/build for the running kernel (it must have CONFIG_RUST:
# Documentation/admin-guide.rst, "Installing").
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# systemd and udev read /usr/local/lib/... too; PREFIX=/usr puts them where packages do.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
DOCDIR ?= $(PREFIX)/share/doc/dm-amf
SYSTEMD_RUN ?= /usr/bin/systemd-run
DEPMOD ?= depmod
CARGO ?= cargo
# The module's version (its MODULE_VERSION-less `version` in module!, and DKMS's
# PACKAGE_VERSION), from amfctl's Cargo.toml, which moves with it.
AMF_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(here)/userspace-tools/amfctl/Cargo.toml | head -n1)

amfctl:
	@$(CARGO) build --release --locked -q -p amfctl

man: amfctl
	@rm -rf $(here)/target/man && $(here)/target/release/amfctl gen-man $(here)/target/man

completions: amfctl
	@rm -rf $(here)/target/completions && \
		$(here)/target/release/amfctl gen-completions $(here)/target/completions

install: install-module install-amfctl install-units

install-module: module
	@kdir=$(kdir_cmd) && kver=$$(cat "$$kdir/include/config/kernel.release") && \
	dest="$(DESTDIR)/lib/modules/$$kver/extra" && \
	install -D -m 0644 $(here)/dm-amf.ko "$$dest/dm-amf.ko" && \
	echo "installed $$dest/dm-amf.ko" && \
	if [ -n "$(DESTDIR)" ]; then $(DEPMOD) -b "$(DESTDIR)" "$$kver"; \
	else $(DEPMOD) "$$kver"; fi && echo "depmod $$kver done"

install-amfctl: man completions
	@install -D -m 0755 $(here)/target/release/amfctl "$(DESTDIR)$(SBINDIR)/amfctl"
	@install -d "$(DESTDIR)$(MANDIR)/man8"
	@install -m 0644 $(here)/target/man/*.8 "$(DESTDIR)$(MANDIR)/man8/"
	@install -D -m 0644 $(here)/target/completions/amfctl.bash "$(DESTDIR)$(BASHCOMPDIR)/amfctl"
	@install -D -m 0644 $(here)/target/completions/_amfctl "$(DESTDIR)$(ZSHCOMPDIR)/_amfctl"
	@install -D -m 0644 $(here)/target/completions/amfctl.fish "$(DESTDIR)$(FISHCOMPDIR)/amfctl.fish"
	@echo "installed $(DESTDIR)$(SBINDIR)/amfctl, $$(ls $(here)/target/man | wc -l) man pages, 3 completions"

# amf-assemble.service, the udev rule (both calling $(SBINDIR)/amfctl) and amf.conf's example.
install-units:
	@install -d "$(DESTDIR)$(SYSTEMDUNITDIR)" "$(DESTDIR)$(UDEVRULESDIR)" "$(DESTDIR)$(DOCDIR)"
	@sed -e 's|@SBINDIR@|$(SBINDIR)|g' $(here)/userspace-tools/systemd/amf-assemble.service.in \
		>"$(DESTDIR)$(SYSTEMDUNITDIR)/amf-assemble.service"
	@sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSTEMD_RUN@|$(SYSTEMD_RUN)|g' \
		$(here)/userspace-tools/udev/69-amf.rules.in >"$(DESTDIR)$(UDEVRULESDIR)/69-amf.rules"
	@chmod 0644 "$(DESTDIR)$(SYSTEMDUNITDIR)/amf-assemble.service" "$(DESTDIR)$(UDEVRULESDIR)/69-amf.rules"
	@install -m 0644 $(here)/userspace-tools/amf.conf.example "$(DESTDIR)$(DOCDIR)/amf.conf.example"
	@echo "installed $(DESTDIR)$(SYSTEMDUNITDIR)/amf-assemble.service, $(DESTDIR)$(UDEVRULESDIR)/69-amf.rules, $(DESTDIR)$(DOCDIR)/amf.conf.example"

# The sources DKMS builds the module from (Kbuild, the module's crate, the no_std core it
# compiles by `mod`, the FFI layer and C helpers) with dkms.conf, as /usr/src/<name>-<ver>.
dkms-src:
	@dest="$(DESTDIR)/usr/src/dm-amf-$(AMF_VERSION)" && rm -rf "$$dest" && \
	install -d "$$dest" && cd $(here) && \
	find Kbuild COPYING dm-amf/*.rs dm-amf/core/src rust -type f \
		\( -name Kbuild -o -name COPYING -o -name '*.rs' -o -name '*.c' -o -name '*.h' \) \
		! -name bindings_generated.rs ! -path 'dm-amf/core/src/bin/*' \
		! -path 'dm-amf/core/src/sim/*' | \
		while read -r f; do install -D -m 0644 "$$f" "$$dest/$$f"; done && \
	sed 's/@VERSION@/$(AMF_VERSION)/' dkms.conf.in >"$$dest/dkms.conf" && \
	echo "dkms source tree: $$dest"

clean:
	@kdir=$(KDIR); [ -n "$$kdir" ] || kdir=$$(ls -d $${AMF_CACHE:-$$HOME/.cache/dm-amf}/build-*-debug-* 2>/dev/null | head -n1); \
	if [ -n "$$kdir" ]; then $(MAKE) -C "$$kdir" M=$(here) clean; fi
	@rm -f rust/bindings_generated.rs
