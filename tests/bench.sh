#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: builds the bench kernel (the test kernel without its debug options, so the
# ratios measure dm-amf and not lockdep), dm-amf.ko against it in a scratch copy, and runs
#   - tests/guest/suites/bench.sh in one guest on four RAM-backed disks: the `bench:` lines
#     amf/<peer> (raid0, raid1, raid10, raid5, raid6), the raw numbers under them; then the
#     write-intent bitmap's cost on raid5 (bitmap-4k-randwrite, bitmap-full-stripe:
#     amf-bitmap/amf, md-bitmap/md, md-ppl/md, md with mdadm) and the partial parity log's
#     on a degraded raid5 (ppl-4k-randwrite, ppl-full-stripe: amf-degraded-ppl/amf-degraded,
#     md-degraded-ppl/md-degraded), with their raw numbers;
#   - tests/guest/suites/bench-cluster.sh in three guests (a corosync + DLM cluster) on four
#     shared RAM-backed disks and the barrier disk: the `bench:` lines <k>n/1n of dm-amf's
#     clustered raid5 and of an md-cluster raid1, k nodes writing at once, each its own third
#     of the volume; the summed raw numbers and each node's lock counters under them;
#   - tests/guest/suites/bench-repl.sh in two guests (a cluster, soft-RoCE rxe0 on eth0) on
#     the same kind of disks: the `bench:` lines rdma/tcp of the replication channel's
#     transport (4 KiB write latency at queue depth 1, median and p99; 1 MiB write
#     throughput), the raw numbers, records per write and CPU per record under them.
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
	--extra fio --extra mdadm --disk 512M --disk 512M --disk 512M --disk 512M --test bench \
	--timeout 1800 || rc=$?
# The suite prints its lines as KTAP diagnostics: strip the '# '.
sed -n 's/^ *# \(bench: .*\)$/\1/p; s/^ *# # \(\(raid\|bitmap\|ppl\).*\)$/  \1/p; s/^ *\(not ok .*\)$/\1/p' \
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
t2=$(date +%s)
echo "cluster part: $((t2 - t1)) s (single-node part $((t1 - t0)) s)"

# The replication part: 2 guests with soft-RoCE (rxe0 on eth0), four shared members of
# 256 MiB and the barrier disk; TCP, then RDMA, in one boot. Its latencies need a finer
# clock than the guests have: without ACPI the kernel finds no reference (HPET, PM timer)
# to calibrate the TSC against, marks it unstable and keeps jiffies (4 ms steps, every
# latency percentile a multiple of 4 ms). TCG's TSC is the host's, so the guests get the
# host's TSC rate (tsc_early_khz, measured here against CLOCK_MONOTONIC_RAW) and keep the
# TSC (tsc=reliable: one vCPU, no other clock to check it against).
clk=
if printf '%s\n' '#include <stdio.h>' '#include <time.h>' '#include <x86intrin.h>' \
	'static double t(void) { struct timespec s; clock_gettime(CLOCK_MONOTONIC_RAW, &s); return s.tv_sec + s.tv_nsec / 1e9; }' \
	'int main(void) { struct timespec d = { 0, 200000000 }; double t0 = t(); unsigned long long c0 = __rdtsc();' \
	'nanosleep(&d, 0); double t1 = t(); printf("%.0f\n", (__rdtsc() - c0) / (t1 - t0) / 1000); return 0; }' |
	cc -O2 -x c -o "$scratch/tsc-khz" - && khz=$("$scratch/tsc-khz") && [ "$khz" -gt 0 ]; then
	clk=" tsc_early_khz=$khz tsc=reliable"
else
	echo "bench: repl: no host TSC rate: the guests keep jiffies (latencies in 4 ms steps)"
fi
prc=0
tests/rig/vm.sh --name bench-repl --guests 2 --kernel "$kdir/arch/x86/boot/bzImage" \
	--module "$scratch/dm-amf.ko" --extra cluster --extra fio \
	--disk 256M --disk 256M --disk 256M --disk 256M --disk 8M --test bench-repl \
	--append "amf.env=AMF_TRANSPORT=rdma$clk" --timeout 1200 || prc=$?
# Node 1 printed "brp transport=<none|tcp|rdma> case=<rand-4k-qd1|seq-1m> lat_med_us=..
# lat_p99_us=.. lat_mean_us=.. iops=.. kibs=.. writes=.. records=.. lock_req=.. cpu1_ms=..
# cpu2_ms=.. us_per_rec=.. us_per_rec2=.. clock=..": the ratios rdma/tcp (latency: below 1
# is RDMA faster; throughput: above 1), the raw numbers under them, "none" (the same
# clustered volume without peers: no replication) first as the reference.
{ cat tests/out/bench-repl.g0.ktap 2>/dev/null || true; } | awk '
	/^ *# brp / {
		n++
		for (i = 3; i <= NF; i++) { split($i, kv, "="); f[$3 " " $4, kv[1]] = kv[2] }
		seen[$3 " " $4] = 1
		if ($NF != "clock=tsc") clock = $NF
	}
	function key(t, c) { return "transport=" t " case=" c }
	function have(t, c) { return key(t, c) in seen }
	function v(t, c, k) { return f[key(t, c), k] }
	function ratio(c, k) {
		if (!have("tcp", c) || !have("rdma", c) || v("tcp", c, k) <= 0) return "nan"
		return sprintf("%.2f", v("rdma", c, k) / v("tcp", c, k))
	}
	function raw(t, c, k, unit) { return have(t, c) ? v(t, c, k) " " unit : "-" }
	# more(T, C): records per write, DLM requests, CPU per write and per record.
	function more(t, c,   w) {
		if (!have(t, c)) return "no result"
		w = v(t, c, "writes")
		if (t == "none")
			return sprintf("%d writes, no replication, %d lock requests; CPU %d + %d ms (node 1 + node 2): %s us per write",
				w, v(t, c, "lock_req"), v(t, c, "cpu1_ms"), v(t, c, "cpu2_ms"),
				w > 0 ? sprintf("%d", (v(t, c, "cpu1_ms") + v(t, c, "cpu2_ms")) * 1000 / w) : "-")
		return sprintf("%d writes, %.2f records per write, %d lock requests; CPU %d + %d ms (node 1 + node 2): %s us per write, %s us per record (node 2: %s)",
			w, w > 0 ? v(t, c, "records") / w : 0, v(t, c, "lock_req"), v(t, c, "cpu1_ms"), v(t, c, "cpu2_ms"),
			w > 0 ? sprintf("%d", (v(t, c, "cpu1_ms") + v(t, c, "cpu2_ms")) * 1000 / w) : "-",
			v(t, c, "us_per_rec"), v(t, c, "us_per_rec2"))
	}
	END {
		if (!n) {
			print "bench: repl skipped: no results (see the not ok lines below)"
			exit
		}
		r = "rand-4k-qd1"
		s = "seq-1m"
		if (clock != "")
			print "bench: repl: the guests measured time with " substr(clock, 7) ", not the TSC: latencies in steps of a tick"
		printf "bench: repl-4k-latency rdma/tcp = %s\n", ratio(r, "lat_med_us")
		printf "bench: repl-4k-latency-p99 rdma/tcp = %s\n", ratio(r, "lat_p99_us")
		split("none tcp rdma", ts, " ")
		for (ti = 1; ti <= 3; ti++) {
			t = ts[ti]
			if (t == "none" && !have(t, r)) continue
			printf "  repl-4k %-5s median %s, p99 %s, mean %s, %s (4 KiB random writes, qd 1)\n", t ":",
				raw(t, r, "lat_med_us", "us"), raw(t, r, "lat_p99_us", "us"),
				raw(t, r, "lat_mean_us", "us"), raw(t, r, "iops", "IOPS")
			printf "    %s\n", more(t, r)
		}
		printf "bench: repl-1m-throughput rdma/tcp = %s\n", ratio(s, "kibs")
		for (ti = 1; ti <= 3; ti++) {
			t = ts[ti]
			if (t == "none" && !have(t, s)) continue
			printf "  repl-1m %-5s %s, median latency %s (1 MiB sequential writes, qd 4)\n", t ":",
				raw(t, s, "kibs", "KiB/s"), raw(t, s, "lat_med_us", "us")
			printf "    %s\n", more(t, s)
		}
	}'
for g in tests/out/bench-repl.g*.ktap; do
	[ -f "$g" ] || continue
	n=${g%.ktap}
	n=${n##*.g}
	sed -n "s/^ *\(not ok .*\)$/guest $n: \1/p" "$g"
done
echo "replication part: $(($(date +%s) - t2)) s"
[ $rc -ne 0 ] || rc=$crc
[ $rc -ne 0 ] || rc=$prc
exit $rc
