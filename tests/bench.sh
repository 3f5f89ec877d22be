#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: builds the bench kernel (the test kernel without its debug options, so the
# ratios measure dm-amf and not lockdep), dm-amf.ko against it in a scratch copy, and runs
#   - tests/guest/suites/bench.sh in one guest on four RAM-backed disks: the `bench:` lines
#     amf/<peer> (raid0, raid1, raid10, raid5, raid6), the raw numbers under them;
#   - tests/guest/suites/bench-cluster.sh in three guests (a corosync + DLM cluster) on four
#     shared RAM-backed disks and the barrier disk: the `bench:` lines <k>n/1n of dm-amf's
#     clustered raid5 and of an md-cluster raid1, k nodes writing at once, each its own third
#     of the volume; the summed raw numbers and each node's lock counters under them.
# Then any failed KTAP test. Benchmarks never assert timings: the exit status says whether
# every set-up step ran.
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
t0=$(date +%s)
tests/rig/vm.sh --name bench --kernel "$kdir/arch/x86/boot/bzImage" --module "$scratch/dm-amf.ko" \
	--extra fio --disk 512M --disk 512M --disk 512M --disk 512M --test bench \
	--timeout 1800 || rc=$?
# The suite prints its lines as KTAP diagnostics: strip the '# '.
sed -n 's/^ *# \(bench: .*\)$/\1/p; s/^ *# # \(raid.*\)$/  \1/p; s/^ *\(not ok .*\)$/\1/p' \
	tests/out/bench.g0.ktap
t1=$(date +%s)

# The cluster part: 3 guests, 4 shared members of 256 MiB, the barrier disk last.
crc=0
tests/rig/vm.sh --name bench-cluster --guests 3 --kernel "$kdir/arch/x86/boot/bzImage" \
	--module "$scratch/dm-amf.ko" --extra cluster --extra fio --extra mdadm \
	--disk 256M --disk 256M --disk 256M --disk 256M --disk 8M --test bench-cluster \
	--timeout 1800 || crc=$?
# Each writer printed "bcl vol=.. case=.. phase=<k>n|solo node=.. kibs=.. iops=.. writes=..
# req=.. cached=.. blocking=.. waits=..": sum per phase, ratio to the phase with one node;
# for amf also one node against the reference without cluster (solo).
{ cat tests/out/bench-cluster.g*.ktap 2>/dev/null || true; } | awk '
	/^ *# bcl / {
		delete f
		for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		c = f["vol"] SUBSEP f["case"]
		v = (f["case"] ~ /^seq/) ? f["kibs"] * 1024 / 1e6 : f["iops"]
		if (f["phase"] == "solo") { solo[c] = v; next }
		k = f["phase"] + 0
		sum[c, k] += v
		nw[c, k]++
		per[c, k] = per[c, k] (nw[c, k] > 1 ? " + " : "") sprintf("%.1f", v)
		if (k > maxk[c]) maxk[c] = k
		if (f["req"] != "-") {
			lk[c, k] = lk[c, k] sprintf("    %s %dn node %s: %d writes, %d lock requests (%.3f per write), %d cached, %d blocking, %d waits\n",
				f["case"], k, f["node"], f["writes"], f["req"],
				f["writes"] ? f["req"] / f["writes"] : 0, f["cached"], f["blocking"], f["waits"])
		}
	}
	END {
		split("amf md", vols, " ")
		split("seq-1m rand-4k", cases, " ")
		for (vi = 1; vi <= 2; vi++) {
			vol = vols[vi]
			name = (vol == "amf") ? "cluster" : "md-cluster-raid1"
			any = 0
			for (ci = 1; ci <= 2; ci++) if (maxk[vol, cases[ci]] > 0) any = 1
			if (!any) {
				print "bench: " name " skipped: " (vol == "md" ? "no md-cluster array (see the not ok lines below)" : "no results (see the not ok lines below)")
				continue
			}
			for (ci = 1; ci <= 2; ci++) {
				cs = cases[ci]
				c = vol SUBSEP cs
				unit = (cs ~ /^seq/) ? "MB/s" : "IOPS"
				for (k = 2; k <= maxk[c]; k++)
					printf "bench: %s-%s %dn/1n = %s\n", name, cs, k,
						(sum[c, 1] > 0 ? sprintf("%.2f", sum[c, k] / sum[c, 1]) : "nan")
				if (c in solo)
					printf "bench: %s-%s 1n/no-cluster = %s\n", name, cs,
						(solo[c] > 0 ? sprintf("%.2f", sum[c, 1] / solo[c]) : "nan")
				if (c in solo)
					printf "  %s-%s no-cluster: %.1f %s (node 1 alone, the same raid5 without cluster)\n",
						name, cs, solo[c], unit
				for (k = 1; k <= maxk[c]; k++)
					printf "  %s-%s %dn: %.1f %s%s\n", name, cs, k, sum[c, k], unit,
						(nw[c, k] > 1 ? " (" per[c, k] ")" : "")
				for (k = 1; k <= maxk[c]; k++) printf "%s", lk[c, k]
			}
		}
	}'
for g in tests/out/bench-cluster.g*.ktap; do
	[ -f "$g" ] || continue
	n=${g%.ktap}
	n=${n##*.g}
	sed -n "s/^ *\(not ok .*\)$/guest $n: \1/p" "$g"
done
echo "cluster part: $(($(date +%s) - t1)) s (single-node part $((t1 - t0)) s)"
[ $rc -ne 0 ] || rc=$crc
exit $rc
