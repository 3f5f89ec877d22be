#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: builds the bench kernel (the test kernel without its debug options, so the
# ratios measure dm-amf and not lockdep), dm-amf.ko against it in a scratch copy, and runs
# tests/guest/suites/bench.sh in one guest on four RAM-backed disks. Prints the `bench:` lines
# (raid0, raid1, raid10, raid5, raid6), the raw numbers under them, and any failed KTAP test.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
tests/rig/setup-host.sh
export PATH="$HOME/.cargo/bin:$PATH"
kdir=$(tests/rig/build-kernel.sh bench | tail -n1)
scratch=$(mktemp -d /tmp/amf-bench.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$scratch"
make -s -C "$kdir" M="$scratch" modules
rc=0
tests/rig/vm.sh --name bench --kernel "$kdir/arch/x86/boot/bzImage" --module "$scratch/dm-amf.ko" \
	--extra fio --disk 512M --disk 512M --disk 512M --disk 512M --test bench \
	--timeout 1800 || rc=$?
# The suite prints its lines as KTAP diagnostics: strip the '# '.
sed -n 's/^ *# \(bench: .*\)$/\1/p; s/^ *# # \(raid.*\)$/  \1/p; s/^ *\(not ok .*\)$/\1/p' \
	tests/out/bench.g0.ktap
exit $rc
