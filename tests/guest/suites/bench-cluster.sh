# SPDX-License-Identifier: GPL-2.0
# `make bench`, cluster part (tests/bench.sh runs it on 3 guests, bench kernel): how writes
# scale with the number of nodes writing at once, each node to its own region.
#
#   - corosync + dlm_controld on every guest (cluster_start); node 1 (guest 0) formats a
#     raid5 group over vda..vdd (64 KiB chunk), every node creates the clustered volume
#     (`group <uuid> cluster amfbench node <id>`, amfctl create)
#   - cases: seq-1m (1 MiB sequential writes, queue depth 4) and rand-4k (4 KiB random
#     writes, queue depth 16), fio with libaio and O_DIRECT, time based, SECS seconds, no
#     ramp (so that the lock counters and fio count the same writes)
#   - first a reference: node 1 alone on the same group with a table without `cluster` (no
#     DLM, phase "solo"), its own third, both cases
#   - phases of each case: node 1 alone (1n), nodes 1 and 2 (2n), all (3n); a barrier before
#     and after each phase; node i writes only the i-th third of the volume (aligned to
#     3 MiB: whole stripes and whole 1 MiB writes), so the nodes never share a stripe
#   - then the same on an md-cluster RAID1 over the same four disks (mdadm --create
#     --bitmap=clustered --nodes=N on node 1, mdadm -A on the others): md-cluster serves
#     raid1 only and dm-amf's cluster mode raid5/raid6 only, so only the scaling compares
#
# Each writer prints its result of each phase as one diagnostic line:
#   bcl vol=<amf|md> case=<seq-1m|rand-4k> phase=<k>n|solo node=<id> kibs=<KiB/s>
#       iops=<IOPS> writes=<n> req=<r> cached=<c> blocking=<b> waits=<w>
# (the lock counters: the deltas of the cluster fields of dmsetup status over the phase;
# "-" for md and solo). tests/bench.sh sums them per phase and prints the ratios. Not pass/fail: the
# KTAP results only say that each step ran.
# shellcheck disable=SC1091 # the guest's paths
. /amf/lib/ktap.sh
. /amf/lib/cluster.sh

SECS=${AMF_BENCH_SECS:-8}
# Stripes per lock unit of the clustered volume (amf.env=AMF_BENCH_LOCK_STRIPES=8 on the
# kernel command line; a divisor of 16, so that no unit straddles two regions); default 1,
# the table's default.
LOCK_STRIPES=${AMF_BENCH_LOCK_STRIPES:-1}
CL=amfbench
ID=$(cluster_node_id)
N=$AMF_NODES
U=b5b5b5b5-0000-4000-8000-0000000000b5
DISKS="/dev/vda /dev/vdb /dev/vdc /dev/vdd"
CASES="seq-1m rand-4k"
ALIGN=6144 # sectors: 3 MiB, a multiple of the 192 KiB stripe and of 1 MiB
B=0

# bar [NAME]: all nodes meet. Called at the top level only, the same number of times on
# every node whatever failed before, so that the barrier numbers stay in step.
bar() {
	B=$((B + 1))
	cluster_barrier $B >"$KTAP_TMP/bar" 2>&1 ||
		{ ktap_diag "barrier $B (${1:-}) failed:"; ktap_diag_file "$KTAP_TMP/bar"; }
}

# Tests: load, cluster, amf format, amf create, md create, md join, md stop, cluster stop,
# and one per phase this node writes in: N - AMF_NODE phases of each case, on each volume;
# node 1 also the reference run without cluster.
ktap_plan $((8 + 2 * 2 * (N - AMF_NODE) + (AMF_NODE == 0)))
ktap_check "load dm-amf" amf_load
ktap_check "corosync + dlm_controld: node $ID of $N quorate, DLM configured" cluster_start "$CL"
bar start

# ------------------------------------------------------------------ helpers
counters() { echo "$(st "$1" requests) $(st "$1" cached) $(st "$1" blocking) $(st "$1" waits)"; }

# region DEV: "<offset> <size>" in bytes of this node's third of DEV.
region() {
	_len=$(blockdev --getsz "$1") || return 1
	_r=$((_len / N / ALIGN * ALIGN))
	[ $_r -gt 0 ] || { echo "$1: $_len sectors, too small for $N regions"; return 1; }
	echo "$((AMF_NODE * _r * 512)) $((_r * 512))"
}

# phase VOL DEV CASE K: this node's fio run of CASE on its region of DEV, K nodes writing
# (K "solo": the reference run without cluster); prints the bcl line.
phase() {
	_vol=$1 _dev=$2 _dn=${2#/dev/mapper/} _pc=$3 _pk=$4
	_reg=$(region "$_dev") || { echo "$_reg"; return 1; }
	case "$_pc" in
	seq-1m) _rw=write _bs=1M _qd=4 _bk=1024 ;;
	rand-4k) _rw=randwrite _bs=4k _qd=16 _bk=4 ;;
	esac
	_lk=0
	[ "$_vol" = amf ] && [ "$_pk" != solo ] && _lk=1
	[ $_lk -eq 1 ] && _c0=$(counters "$_dn")
	_out=$(fio --name=bcl --filename="$_dev" --direct=1 --ioengine=libaio --rw="$_rw" \
		--bs="$_bs" --iodepth="$_qd" --numjobs=1 --time_based --runtime="$SECS" \
		--offset="${_reg% *}" --size="${_reg#* }" --randseed="$ID" \
		--output-format=terse --terse-version=3 2>&1) || { echo "fio failed: $_out"; return 1; }
	# terse v3: write io (KiB) $47, bandwidth (KiB/s) $48, IOPS $49.
	_res=$(echo "$_out" | awk -F';' '$1 == 3 { print $47, $48, $49 }')
	[ -n "$_res" ] || { echo "no fio result: $_out"; return 1; }
	# shellcheck disable=SC2086 # three words
	set -- $_res
	_w=$(($1 / _bk)) _kibs=$2 _iops=$3
	_l="req=- cached=- blocking=- waits=-"
	if [ $_lk -eq 1 ]; then
		# shellcheck disable=SC2046,SC2086 # one word per counter
		set -- $_c0 $(counters "$_dn")
		_l="req=$(($5 - $1)) cached=$(($6 - $2)) blocking=$(($7 - $3)) waits=$(($8 - $4))"
		echo "status: $(dmsetup status "$_dn")"
	fi
	[ "$_pk" = solo ] || _pk=${_pk}n
	echo "bcl vol=$_vol case=$_pc phase=$_pk node=$ID kibs=$_kibs iops=$_iops writes=$_w $_l"
}

# run_phases VOL DEV: every case, 1 .. N nodes; the writers of a phase are the first K guests.
run_phases() {
	for _case in $CASES; do
		_k=1
		while [ $_k -le "$N" ]; do
			bar "$1 $_case ${_k}n start"
			if [ "$AMF_NODE" -lt $_k ]; then
				ktap_check "$1 $_case ${_k}n: node $ID writes its third" phase "$1" "$2" "$_case" $_k
			fi
			bar "$1 $_case ${_k}n end"
			_k=$((_k + 1))
		done
	done
}

# ------------------------------------------------------------------ dm-amf raid5
AMF_DEVS=
for d in $DISKS; do AMF_DEVS="$AMF_DEVS --dev $d:8192"; done
amf_format() {
	# The new disks are all zeroes: the parity is consistent from the start.
	[ "$AMF_NODE" -eq 0 ] || { echo "node 1 formats"; return 0; }
	# shellcheck disable=SC2086 # one word per member
	amfctl format --level raid5 --chunk 64K --uuid "$U" $DISKS
}
ktap_check "node 1 formats a raid5 group over 4 disks, 64 KiB chunk" amf_format
bar format
# The reference: node 1 alone, the same group and region without `cluster` (no DLM).
amf_solo() {
	# shellcheck disable=SC2086 # --dev words
	amfctl create r5s --noudevsync --level raid5 --chunk 64K $AMF_DEVS --group "$U" || return 1
	[ -b /dev/mapper/r5s ] || dmsetup mknodes r5s
	_rc=0
	for _case in $CASES; do
		phase amf /dev/mapper/r5s "$_case" solo || _rc=1
	done
	dmsetup remove r5s || _rc=1
	return $_rc
}
[ "$AMF_NODE" -eq 0 ] && ktap_check "reference: node 1 alone on the raid5 without cluster" amf_solo
bar solo
amf_create() {
	kmsg_mark
	# shellcheck disable=SC2086 # --dev words
	amfctl create r5 --noudevsync --level raid5 --chunk 64K $AMF_DEVS --group "$U" \
		--cluster "$CL" --node "$ID" --lock-stripes "$LOCK_STRIPES" ||
		{ dmesg_since_mark | grep -F amf; return 1; }
	[ -b /dev/mapper/r5 ] || dmsetup mknodes r5
	echo "status: $(dmsetup status r5)"
}
ktap_check "node $ID creates the clustered raid5 volume" amf_create
bar create
run_phases amf /dev/mapper/r5
amf_remove() { dmsetup remove r5; }
AMF_RM=0
amf_remove >"$KTAP_TMP/rm" 2>&1 || AMF_RM=1
bar "amf removed"

# ------------------------------------------------------------------ md-cluster raid1
export MDADM_NO_UDEV=1
md_create() {
	[ $AMF_RM -eq 0 ] || { cat "$KTAP_TMP/rm"; echo "r5 not removed"; return 1; }
	[ "$AMF_NODE" -eq 0 ] || { echo "r5 removed; node 1 creates md0"; return 0; }
	# The amf superblocks away (mdadm would not mind; this keeps the disks unambiguous).
	for d in $DISKS; do
		dd if=/dev/zero of="$d" bs=1M count=8 oflag=direct conv=notrunc status=none || return 1
	done
	# --assume-clean: no resync competes with the runs (the mirrors differ where amf wrote,
	# which a write benchmark does not read).
	# shellcheck disable=SC2086 # one word per member
	mdadm --create /dev/md0 --run --level=1 --raid-devices=4 --metadata=1.2 \
		--bitmap=clustered --nodes="$N" --home-cluster="$CL" --assume-clean $DISKS || return 1
	cat /proc/mdstat
}
ktap_check "node 1 creates an md-cluster raid1 over the 4 disks (--nodes $N)" md_create
bar "md created"
# md_join: node 1 created md0; the others assemble it, one after the other.
md_join() {
	if [ "$AMF_NODE" -gt 0 ]; then
		# shellcheck disable=SC2086 # one word per member
		mdadm -A /dev/md0 --home-cluster="$CL" $DISKS || return 1
	fi
	cat /proc/mdstat
	[ -b /dev/md0 ] && grep -q '^md0 : active' /proc/mdstat
}
j=0
while [ $j -lt "$N" ]; do
	[ "$AMF_NODE" -eq $j ] && ktap_check "md0 active on node $ID" md_join
	bar "md join $j"
	j=$((j + 1))
done
if [ -b /dev/md0 ] && grep -q '^md0 : active' /proc/mdstat; then
	run_phases md /dev/md0
else
	ktap_diag "node $ID: no active /dev/md0: md-cluster phases skipped"
	for _case in $CASES; do
		_k=1
		while [ $_k -le "$N" ]; do
			bar
			[ "$AMF_NODE" -lt $_k ] && ktap_skip "md $_case ${_k}n" "no md-cluster array"
			bar
			_k=$((_k + 1))
		done
	done
fi
md_stop() {
	[ -b /dev/md0 ] || return 0
	mdadm --stop /dev/md0
}
ktap_check "node $ID stops md0" md_stop
bar "md stopped"

ktap_check "lockspaces left, cluster stopped on node $ID" cluster_stop
ktap_done
