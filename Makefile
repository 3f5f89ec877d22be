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

.PHONY: all module clippy check check-full demo bench clean setup kernel rustfmt

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

clean:
	@kdir=$(KDIR); [ -n "$$kdir" ] || kdir=$$(ls -d $${AMF_CACHE:-$$HOME/.cache/dm-amf}/build-*-debug-* 2>/dev/null | head -n1); \
	if [ -n "$$kdir" ]; then $(MAKE) -C "$$kdir" M=$(here) clean; fi
	@rm -f rust/bindings_generated.rs
