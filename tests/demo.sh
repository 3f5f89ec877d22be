#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make demo`: install what is needed, build the test kernel (cached) and dm-amf.ko, boot a
# QEMU guest with four member disks and walk through an amf volume's life with dmsetup.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
step() { printf '\n[demo] %s\n' "$*"; }

step "1/4 host packages, rust-src, bindgen (tests/rig/setup-host.sh)"
tests/rig/setup-host.sh
export PATH="$HOME/.cargo/bin:$PATH"

step "2/4 test kernel from Debian's linux-source-6.12 (built once, then cached)"
kdir=$(tests/rig/build-kernel.sh debug | tail -n1)
echo "KDIR=$kdir"

step "3/4 dm-amf.ko, out of tree: make -C \$KDIR M=$repo"
make -s -C "$kdir" M="$repo" modules
ls -l dm-amf.ko

step "4/4 a guest with 4 x 64 MiB member disks runs tests/guest/suites/demo.sh"
rc=0
tests/rig/vm.sh --name demo --module dm-amf.ko --disk 8M --disk 64M --disk 64M --disk 64M --disk 64M \
	--test demo --timeout 600 || rc=$?
# Show the guest's own words: the demo lines and the results.
grep -E '^ *(# demo:|ok|not ok)' tests/out/demo.g0.ktap | sed 's/^ *//'
echo
if [ $rc -eq 0 ]; then
	echo "[demo] done: the amf volume was created, written, verified, suspended, resumed and removed."
else
	echo "[demo] FAILED (vm.sh exit $rc); full console: tests/out/demo.g0.console.log"
fi
exit $rc
