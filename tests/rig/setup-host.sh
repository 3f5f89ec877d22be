#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install everything dm-amf's build, demo and tests need on a fresh Debian 12 machine.
# Idempotent: each step checks first and is skipped when already satisfied.
set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }

APT_PKGS=(
	linux-source-6.12 flex bison bc cpio libelf-dev libssl-dev dwarves kmod
	libclang-dev clang qemu-system-x86 busybox-static dmsetup iproute2 xz-utils
	corosync dlm-controld fio mdadm libdlm3 ibverbs-providers librdmacm-dev gcc
	dkms man-db
)

missing=()
for p in "${APT_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "apt-get update (a new machine's package lists are empty)"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	say "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	say "apt packages present"
fi

if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	say "rustup component add rust-src"
	rustup component add rust-src
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v bindgen >/dev/null || ! bindgen --version 2>/dev/null | grep -q '0.71.1'; then
	say "cargo install bindgen-cli 0.71.1"
	cargo install --locked --quiet bindgen-cli@0.71.1
fi
say "host ready"
