#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build dm-amf.ko against another flavour of the test kernel, from a copy of the module's
# sources (an out-of-tree build writes its objects beside them, so two kernels cannot share
# one tree), then list its stack frames (tests/rig/stack-frames.sh).
#
#   module-build.sh FLAVOUR OUTDIR     FLAVOUR as build-kernel.sh (size, bench...)
#
# Leaves OUTDIR/dm-amf.ko and OUTDIR/bzImage (that kernel, for vm.sh --kernel).
set -euo pipefail
flavour=${1:?usage: module-build.sh FLAVOUR OUTDIR}
dst=${2:?usage: module-build.sh FLAVOUR OUTDIR}
mkdir -p "$dst"
dst=$(realpath "$dst")
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"

kdir=$("$repo/tests/rig/build-kernel.sh" "$flavour" | tail -n1)
rm -rf "$dst/src"
mkdir -p "$dst/src"
# Only the module's sources: Kbuild, dm-amf/ (with the core) and rust/, without build output.
tar -C "$repo" --exclude=target --exclude=fuzz --exclude='*.o' --exclude='*.ko' \
	--exclude='.*.cmd' --exclude='*.mod*' --exclude=bindings_generated.rs \
	-cf - Kbuild dm-amf rust | tar -C "$dst/src" -xf -
make -s -C "$kdir" M="$dst/src" modules
cp "$dst/src/dm-amf.ko" "$dst/dm-amf.ko"
cp "$kdir/arch/x86/boot/bzImage" "$dst/bzImage"
grep -E '^CONFIG_CC_OPTIMIZE_FOR_(SIZE|PERFORMANCE)=y' "$kdir/.config"
"$repo/tests/rig/stack-frames.sh" "$dst/dm-amf.ko" "$flavour"
