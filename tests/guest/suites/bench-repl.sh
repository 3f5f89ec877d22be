# SPDX-License-Identifier: GPL-2.0
# `make bench`, replication part (tests/bench.sh runs it on 2 guests, bench kernel, booted
# with amf.env=AMF_TRANSPORT=rdma so that each guest has the soft-RoCE device rxe0 on eth0):
# what the replication channel's transport costs a writer, TCP against RDMA, on the same
# guests in one boot.
#
#   - corosync + dlm_controld on both guests (cluster_start); node 1 (guest 0) formats a
#     raid5 group over vda..vdd (64 KiB chunk); both add the group's key (amfctl key-add)
#   - for each transport of TRANSPORTS (none tcp rdma): both nodes create the clustered
#     volume with `peers 2 1@10.199.0.1:<port> 2@10.199.0.2:<port> auth_key dm-amf:brp`
#     (and `transport rdma`), a port of its own per transport, and wait until the status
#     shows the peer connected (`replication <up>` = 1); "none" is the reference: the same
#     clustered volume without peers (no replication); node 1 writes REGION once (1 MiB
#     writes: every stripe's lock is then cached, so that the runs measure no DLM round
#     trip), then runs the cases; node 2 only serves (holds node 1's records, acks them);
#     both remove the volume
#   - cases, fio with libaio and O_DIRECT on REGION, time based, SECS seconds, no ramp:
#     rand-4k-qd1 (4 KiB random writes, queue depth 1: the completion latency, median and
#     p99, of a write whose records go to the peer and are acked before it completes) and
#     seq-1m (1 MiB sequential writes, queue depth 4: throughput)
#   - CPU: the busy jiffies of /proc/stat (user nice system irq softirq steal) of each guest
#     between the barriers around a case (node 2's include the barrier's polling), divided
#     by the records node 1 sent in it (status `<records_sent>`)
#
# Node 1 prints one diagnostic line per transport and case:
#   brp transport=<none|tcp|rdma> case=<rand-4k-qd1|seq-1m> lat_med_us=<clat p50> lat_p99_us=..
#       lat_mean_us=.. iops=.. kibs=.. writes=<n> records=<sent> lock_req=<DLM requests>
#       cpu1_ms=<node 1 busy> cpu2_ms=<node 2 busy> us_per_rec=<(cpu1 + cpu2) / records>
#       us_per_rec2=<cpu2 / records> clock=<the guest's clocksource>
# (us_per_rec and us_per_rec2 are "-" without records: transport none).
# tests/bench.sh prints the ratios rdma/tcp. Not pass/fail: the KTAP results only say that
# each step ran.
# shellcheck disable=SC1091 # the guest's paths
. /amf/lib/ktap.sh
. /amf/lib/cluster.sh

SECS=${AMF_BENCH_SECS:-8}
# AMF_BENCH_TRANSPORTS: a subset, '+'-separated (amf.env splits at spaces): tcp+rdma.
TRANSPORTS=$(echo "${AMF_BENCH_TRANSPORTS:-none+tcp+rdma}" | tr '+' ' ')
CASES="rand-4k-qd1 seq-1m"
CL=amfbrp
ID=$(cluster_node_id)
U=b5b5b5b5-0000-4000-8000-0000000000b7
KEY=dm-amf:brp
DISKS="/dev/vda /dev/vdb /dev/vdc /dev/vdd"
# 48 MiB from the volume's start: 256 stripes of 192 KiB (whole stripes, whole 1 MiB
# writes), fewer lock units than the target's lock cache holds.
REGION=$((48 * 1024 * 1024))
NOTE=8 # barrier-disk sector of node 2's CPU note
# The clock fio's latencies come from: "tsc" with tests/bench.sh's tsc_early_khz; without it
# "refined-jiffies", 4 ms steps.
CLK=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)
B=0

# bar [NAME]: both nodes meet. Called at the top level only, the same number of times on
# each node whatever failed before, so that the barrier numbers stay in step.
bar() {
	B=$((B + 1))
	cluster_barrier $B >"$KTAP_TMP/bar" 2>&1 ||
		{ ktap_diag "barrier $B (${1:-}) failed:"; ktap_diag_file "$KTAP_TMP/bar"; }
}

# rst VOL N: the N-th field after "replication" in VOL's status (1 up, 3 records sent); 0
# without replication.
rst() { dmsetup status "$1" | awk -v f="$2" '{ for (i = 1; i <= NF; i++) if ($i == "replication") { print $(i + f); exit } print 0 }'; }
# busy: this guest's busy jiffies (USER_HZ, 100 per second) since boot.
busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

NT=0
for t in $TRANSPORTS; do NT=$((NT + 1)); done
# Tests: load, cluster, format + key, cluster stop; per transport: create, connected,
# warm-up, one per case, remove.
ktap_plan $((4 + NT * 6))
ktap_check "load dm-amf" amf_load
ktap_check "corosync + dlm_controld: node $ID of $AMF_NODES quorate, DLM configured" cluster_start "$CL"
bar start

AMF_DEVS=
for d in $DISKS; do AMF_DEVS="$AMF_DEVS --dev $d:8192"; done
prepare() {
	echo "bench-repl-secret-0123456789" | amfctl key-add "$KEY" >/dev/null || return 1
	[ "$AMF_NODE" -eq 0 ] || { echo "node 1 formats"; return 0; }
	# The new disks are all zeroes: the parity is consistent from the start.
	# shellcheck disable=SC2086 # one word per member
	amfctl format --level raid5 --chunk 64K --uuid "$U" $DISKS
}
ktap_check "group key added; node 1 formats a raid5 group over 4 disks, 64 KiB chunk" prepare
bar format

# create T PORT: the clustered volume r5 with both nodes as peers on PORT, transport T
# (none: without peers).
create() {
	_tw="--peer 1@10.199.0.1:$2 --peer 2@10.199.0.2:$2 --auth-key $KEY"
	if [ "$1" = none ]; then
		_tw=
	elif [ "$1" = rdma ]; then
		rdma link show 2>&1 | grep -q rxe0 ||
			{ echo "no rxe0 (boot with amf.env=AMF_TRANSPORT=rdma)"; rdma link show; return 1; }
		_tw="$_tw --transport rdma"
	fi
	kmsg_mark
	# shellcheck disable=SC2086 # --dev, --peer... words
	amfctl create r5 --noudevsync --level raid5 --chunk 64K $AMF_DEVS --group "$U" \
		--cluster "$CL" --node "$ID" $_tw || { dmesg_since_mark | grep -F amf; return 1; }
	[ -b /dev/mapper/r5 ] || dmsetup mknodes r5
	dmsetup table r5
}
up() { [ "$(rst r5 1)" = 1 ]; }
connected() {
	until_ok 60 up
	_rc=$?
	echo "after $WAITED s: $(dmsetup status r5)"
	return $_rc
}
# warm: node 1 writes the region once (the lock of every stripe then cached).
warm() {
	fio --name=warm --filename=/dev/mapper/r5 --direct=1 --ioengine=libaio --rw=write \
		--bs=1M --iodepth=4 --size=$REGION --output-format=terse --terse-version=3 >"$KTAP_TMP/fio" 2>&1 ||
		{ cat "$KTAP_TMP/fio"; return 1; }
	awk -F';' '$1 == 3 { print "warm-up: " $47 " KiB at " $48 " KiB/s" }' "$KTAP_TMP/fio"
	echo "status: $(dmsetup status r5)"
	[ "$(rst r5 3)" -gt 0 ] || [ "$1" = none ] || { echo "no records sent"; return 1; }
}
# run CASE: node 1's fio run of CASE on the region; sets RES (the brp fields but CPU's).
run() {
	case "$1" in
	rand-4k-qd1) _rw=randwrite _bs=4k _qd=1 _bk=4 ;;
	seq-1m) _rw=write _bs=1M _qd=4 _bk=1024 ;;
	esac
	_r0=$(rst r5 3) _q0=$(st r5 requests)
	fio --name=brp --filename=/dev/mapper/r5 --direct=1 --ioengine=libaio --rw="$_rw" \
		--bs="$_bs" --iodepth="$_qd" --numjobs=1 --time_based --runtime="$SECS" \
		--size=$REGION --randseed=1 --percentile_list=50:99 \
		--output-format=terse --terse-version=3 >"$KTAP_TMP/fio" 2>&1 ||
		{ cat "$KTAP_TMP/fio"; return 1; }
	_r1=$(rst r5 3) _q1=$(st r5 requests)
	# terse v3, the write part: io (KiB) $47, bandwidth (KiB/s) $48, IOPS $49, completion
	# latency (us) mean $57, then the percentiles of --percentile_list as "50.000000%=<us>"
	# and "99.000000%=<us>" in $59 and $60.
	_res=$(awk -F';' '$1 == 3 {
		split($59, m, "="); split($60, p, "=")
		printf "%d %d %d %.0f %d %d\n", $47, $48, $49, $57, m[2], p[2]
	}' "$KTAP_TMP/fio")
	[ -n "$_res" ] || { cat "$KTAP_TMP/fio"; echo "no fio result"; return 1; }
	# shellcheck disable=SC2086 # six words
	set -- $_res
	RES="lat_med_us=$5 lat_p99_us=$6 lat_mean_us=$4 iops=$3 kibs=$2 writes=$(($1 / _bk))"
	RES="$RES records=$((_r1 - _r0)) lock_req=$((_q1 - _q0))"
	echo "status: $(dmsetup status r5)"
}
remove() { dmsetup remove r5; }

port=7800
for t in $TRANSPORTS; do
	port=$((port + 1))
	OK=1
	what="with peers (port $port)"
	[ "$t" = none ] && what="without peers"
	ktap_check "$t: node $ID creates the clustered raid5 $what" create "$t" $port
	[ -b /dev/mapper/r5 ] || OK=0
	bar "$t create"
	if [ $OK -eq 1 ] && [ "$t" = none ]; then
		ktap_ok "$t: no replication channel (the reference)"
	elif [ $OK -eq 1 ]; then
		ktap_check "$t: the peer connected (replication <up> 1)" connected
		up || OK=0
	else
		ktap_skip "$t: the peer connected" "no volume"
	fi
	bar "$t connected"
	if [ "$AMF_NODE" -eq 0 ] && [ $OK -eq 1 ]; then
		ktap_check "$t: node 1 writes the region once (locks cached)" warm "$t"
	elif [ "$AMF_NODE" -eq 0 ]; then
		ktap_skip "$t: node 1 writes the region once" "not connected"
	else
		ktap_ok "$t: node 2 serves (node 1 writes the region once)"
	fi
	bar "$t warm"
	for c in $CASES; do
		RES=
		bar "$t $c start"
		c0=$(busy)
		if [ "$AMF_NODE" -eq 0 ] && [ $OK -eq 1 ]; then
			ktap_check "$t $c: node 1 writes, node 2 holds its records" run "$c"
		fi
		bar "$t $c end"
		c1=$(busy)
		if [ "$AMF_NODE" -eq 0 ]; then
			[ $OK -eq 1 ] || ktap_skip "$t $c" "not connected"
		elif cluster_note $NOTE "cpu2 $((c1 - c0))" && [ $OK -eq 1 ]; then
			ktap_ok "$t $c: node 2 serves ($((c1 - c0)) busy jiffies)"
		else
			ktap_skip "$t $c: node 2 serves" "not connected"
		fi
		bar "$t $c note"
		if [ "$AMF_NODE" -eq 0 ] && [ -n "$RES" ]; then
			cpu1=$(((c1 - c0) * 10))
			cpu2=$(cluster_read_note $NOTE)
			cpu2=${cpu2#cpu2 }
			case "$cpu2" in '' | *[!0-9]*) cpu2=0 ;; *) cpu2=$((cpu2 * 10)) ;; esac
			rec=${RES#*records=}
			rec=${rec%% *}
			if [ "$rec" -gt 0 ]; then
				upr=$(((cpu1 + cpu2) * 1000 / rec)) upr2=$((cpu2 * 1000 / rec))
			else
				upr=- upr2=-
			fi
			ktap_diag "brp transport=$t case=$c $RES cpu1_ms=$cpu1 cpu2_ms=$cpu2 us_per_rec=$upr us_per_rec2=$upr2 clock=${CLK:-?}"
		fi
	done
	if [ -b /dev/mapper/r5 ]; then
		ktap_check "$t: node $ID removes the volume" remove
	else
		ktap_skip "$t: node $ID removes the volume" "no volume"
	fi
	bar "$t removed"
done

ktap_check "lockspaces left, cluster stopped on node $ID" cluster_stop
ktap_done
