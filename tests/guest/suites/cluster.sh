# SPDX-License-Identifier: GPL-2.0
# Cluster mode (Documentation/table-syntax.rst "Cluster mode"): AMF_NODES guests (3 in
# tests/plan) run corosync + dlm_controld and serve the same raid5 and raid6 groups at once,
# over the same shared disks, each with `cluster amftest node <id>` in its table.
#
#   - every node creates both volumes; status says "cluster ready <nodes>"
#   - interleaved writers: node i writes the 4 KiB blocks b with b % nodes == i of the whole
#     volume (every stripe is written by every node at once), two generations, while node
#     1 runs online checks of r5 and repairs of r6 (none may find a mismatch); then every
#     node checks every node's blocks (each holds exactly its owner's last write) and node
#     0 scrubs the members (no parity mismatch)
#   - contended blocks: all nodes write the same blocks; each block then holds one whole
#     write of one of the writers (tagged blocks), scrub clean
#   - lazy release: node i rewrites its own stripes many times: one lock request per lock
#     unit, not per write (status counters)
#   - ping-pong: nodes 0 and 1 take turns on one stripe: the lock moves back and forth
#     (requests and blocking callbacks on both), the data is each turn's
#   - two targets of the same group on one node arbitrate like two servers
#   - a member of r6 fails on node 1 only: the failure is recorded under the member-state
#     lock and every other node takes it in before its next write; node 1 rebuilds it alone
#   - bad cluster tables: wrong node id, wrong cluster name, another lock_stripes than the
#     group's other AMFs use
#   - the last node is killed while idle (its QEMU process, by vm.sh): the others see it
#     die through the DLM's recovery and go on writing, its last writes intact
#   - then node 2 cuts its network: it loses quorum, a write it issues fails (EIO after the
#     recovery timeout) and never reaches the disks; node 1 keeps quorum (expected votes
#     lowered to 2, auto_tie_breaker) and serves alone
#
# Node 0 prints the summary line
#   cluster: N nodes, W writes, M parity mismatches, S stale blocks, lock requests per write R
#
# Disks: vda..vde (32 MiB, shared), the barrier disk last (8 MiB). Each node builds the same
# dm-linear slices: a0..a3 = first 16 MiB of vda..vdd (raid5), b0..b4 = last 16 MiB of
# vda..vde (raid6); node 0 formats them.
# shellcheck disable=SC1091 # the guest's paths
. /amf/lib/ktap.sh
. /amf/lib/raid.sh
. /amf/lib/cluster.sh

CL=amftest
ID=$(cluster_node_id)
N=$AMF_NODES
U5=5a5a5a5a-0000-4000-8000-000000000005
U6=6b6b6b6b-0000-4000-8000-000000000006
CHUNK=64   # sectors (32 KiB)
DATA=8192 # data sectors a member (4 MiB)
LEN5=$((DATA * 3))
LEN6=$((DATA * 3))
BS=8 # the writers' block (4 KiB)
GENS=2
LAZY_ROUNDS=8
LAZY_STRIPES=8
B=0 # barrier number

# bar [NAME]: all nodes meet. Called at the top level only, the same number of times on
# every node whatever failed before, so that the barrier numbers stay in step.
bar() {
	B=$((B + 1))
	cluster_barrier $B >"$KTAP_TMP/bar" 2>&1 ||
		{ ktap_diag "barrier $B (${1:-}) failed:"; ktap_diag_file "$KTAP_TMP/bar"; }
}

# The last node is killed after the first 23 tests; node 2 (guest 1) after 30; node 1 runs 36.
case $AMF_NODE in
$((N - 1))) ktap_plan 23 ;;
1) ktap_plan 30 ;;
*) ktap_plan 36 ;;
esac

amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"

# auto_tie_breaker: in an even split of the expected votes the half with node 1 keeps
# quorum (used once the cluster has shrunk to two nodes, see "a node cut off").
CLUSTER_CONF_OPTS="--auto-tie-breaker"
ktap_check "corosync + dlm_controld: node $ID of $N quorate, DLM configured" cluster_start "$CL"
bar start

# ------------------------------------------------------------------ volumes
slices() {
	i=0
	for d in vda vdb vdc vdd; do
		dm_create "a$i" "0 32768 linear /dev/$d 0" || { echo "a$i: $DM_OUT"; return 1; }
		i=$((i + 1))
	done
	i=0
	for d in vda vdb vdc vdd vde; do
		dm_create "b$i" "0 32768 linear /dev/$d 32768" || { echo "b$i: $DM_OUT"; return 1; }
		i=$((i + 1))
	done
	# The disks are new (all zeroes): parity is consistent from the start.
	if [ "$AMF_NODE" -eq 0 ]; then
		amfctl format --level raid5 --chunk 32K --uuid "$U5" --size 4M \
			/dev/mapper/a0 /dev/mapper/a1 /dev/mapper/a2 /dev/mapper/a3 || return 1
		amfctl format --level raid6 --chunk 32K --uuid "$U6" --size 4M \
			/dev/mapper/b0 /dev/mapper/b1 /dev/mapper/b2 /dev/mapper/b3 /dev/mapper/b4 || return 1
	fi
}
ktap_check "dm-linear slices on every node, groups formatted by node 0" slices
bar format

# With AMF_TRANSPORT=rdma (amf.env; not in make check: 820 s instead of 300 on 2 cores) the
# raid6 group also runs the replication channel over RDMA (`peers ... auth_key ... transport
# rdma`, soft-RoCE rxe0 on every guest's eth0), so every step below on r6 runs replicated
# over RDMA while r5 has no replication; the bad-table checks use r6's table without it.
R6PEERS=
if [ -n "$(repl_transport)" ]; then
	R6PEERS=" peers $N"
	i=1
	while [ $i -le "$N" ]; do
		R6PEERS="$R6PEERS $i@10.199.0.$i:7795"
		i=$((i + 1))
	done
	R6PEERS="$R6PEERS auth_key dm-amf:cl$(repl_transport)"
fi
# t5/t6 [NODE [CLUSTER [plain]]]: the tables, with this node's id unless told otherwise
# (t6 ... plain: without the replication parameters).
t5() {
	echo "0 $LEN5 amf raid5 7 $CHUNK group $U5 cluster ${2:-$CL} node ${1:-$ID} 4" \
		"/dev/mapper/a0 8192 /dev/mapper/a1 8192 /dev/mapper/a2 8192 /dev/mapper/a3 8192"
}
t6() {
	_rp=$R6PEERS
	[ "${3:-}" = plain ] && _rp=
	echo "0 $LEN6 amf raid6 $((9 + $(echo $_rp | wc -w))) $CHUNK group $U6 cluster ${2:-$CL} node ${1:-$ID} lock_stripes 2$_rp 5" \
		"/dev/mapper/b0 8192 /dev/mapper/b1 8192 /dev/mapper/b2 8192 /dev/mapper/b3 8192 /dev/mapper/b4 8192"
}


# await SEC CMD...: until_ok, then r5's status and the quorum as diagnostics.
await() {
	until_ok "$@"
	_rc=$?
	echo "r5: $(dmsetup status r5) (after $WAITED s)"
	corosync-quorumtool -s 2>&1 | grep -E 'Quorate|Expected votes|Total votes|Flags'
	return $_rc
}

# recovered VOL DEATHS MEMBERS: VOL's lockspace saw more than DEATHS deaths, is ready and
# has MEMBERS members.
recovered() {
	[ "$(st "$1" deaths)" -gt "$2" ] && [ "$(st "$1" state)" = ready ] && [ "$(st "$1" members)" -eq "$3" ]
}

create() {
	kmsg_mark
	if [ -n "$R6PEERS" ]; then
		echo "cluster-suite-secret-0123456789" | amfctl key-add dm-amf:cl || return 1
	fi
	dm_create r5 "$(t5)" || { echo "r5: $DM_OUT"; dmesg_since_mark | grep -F amf; return 1; }
	dm_create r6 "$(t6)" || { echo "r6: $DM_OUT"; dmesg_since_mark | grep -F amf; return 1; }
}
ktap_check "raid5 x4 and raid6 x5 (lock_stripes 2) created on node $ID" create
bar create

created() {
	for v in r5 r6; do
		echo "$v: $(dmsetup status $v)"
		echo "$v: $(dmsetup table $v)"
		[ "$(st $v state)" = ready ] || { echo "$v: not ready"; return 1; }
		[ "$(st $v members)" -eq "$N" ] || { echo "$v: $(st $v members) members, want $N"; return 1; }
	done
	dmsetup table r6 | grep -q " group $U6 cluster $CL node $ID lock_stripes 2$R6PEERS 5 " ||
		{ echo "r6 table does not echo the cluster parameters"; return 1; }
	if [ -n "$R6PEERS" ]; then
		r6up() { [ "$(dmsetup status r6 | awk '{ for (i = 1; i <= NF; i++) if ($i == "replication") print $(i + 1) }')" = $((N - 1)) ]; }
		until_ok 30 r6up || { echo "r6: replication not connected to the $((N - 1)) peers"; return 1; }
	fi
	dlm_tool ls | grep '^name'
}
ktap_check "status: cluster ready, $N members; table echoes the cluster parameters" created

# ------------------------------------------------------------------ lazy release
# Node i's own stripes of r5, which no node has locked yet: LAZY_STRIPES stripes from stripe
# 100 + i * LAZY_STRIPES. The first write of each asks for its lock; every later one finds
# it cached.
SS=$((CHUNK * 3)) # r5 data sectors a stripe
LREQ=
lazy() {
	first=$(((100 + AMF_NODE * LAZY_STRIPES) * SS))
	r0=$(st r5 requests)
	c0=$(st r5 cached)
	k=1
	while [ $k -le $LAZY_ROUNDS ]; do
		amf-iotool write --dev /dev/mapper/r5 --seed "$ID" --gen $((10 + k)) --bs $BS \
			--start $first --count $((LAZY_STRIPES * SS)) || return 1
		k=$((k + 1))
	done
	amf-iotool verify --dev /dev/mapper/r5 --seed "$ID" --gen $((10 + LAZY_ROUNDS)) --bs $BS \
		--start $first --count $((LAZY_STRIPES * SS)) || return 1
	w=$((LAZY_ROUNDS * LAZY_STRIPES * SS / BS))
	r=$(($(st r5 requests) - r0))
	c=$(($(st r5 cached) - c0))
	LREQ="$r $w"
	echo "node $ID: $w writes to its own $LAZY_STRIPES stripes: $r lock requests, $c served from the cache"
	[ "$r" -eq $LAZY_STRIPES ] || { echo "want exactly one lock request per stripe"; return 1; }
	[ "$c" -ge $((w - LAZY_STRIPES)) ] || { echo "fewer cached grants than writes"; return 1; }
}
ktap_check "lazy release: node $ID rewrites its own stripes $LAZY_ROUNDS times with at most one lock request per stripe" lazy
bar lazy
WRITES=$((WRITES + N * LAZY_ROUNDS * LAZY_STRIPES * SS / BS))

# ------------------------------------------------------------------ interleaved writers
WRITES=0
# interleave VOL LEN: node i writes its blocks of VOL, GENS generations.
interleave() {
	g=1
	while [ $g -le $GENS ]; do
		amf-iotool write --dev "/dev/mapper/$1" --seed "$ID" --gen $g --bs $BS \
			--every "$N" --phase "$AMF_NODE" --count "$2" || return 1
		g=$((g + 1))
	done
}
# Node 1 checks r5 and repairs r6 online, again and again while every node writes
# (Documentation/table-syntax.rst, "Messages": any one AMF, each stripe under its lock):
# the writes racing the check must never show as a mismatch, nor a repair break a write.
SYNC_ROUNDS=0
SYNC_FOUND=0
# sync_idle VOL: until VOL's <sync_action> is idle (120 s); SYNC_GOT its <mismatch_cnt>.
sync_idle() {
	_t0=$(date +%s)
	while :; do
		eval "$(dmsetup status "$1" | awk '{ printf "_sa=%s SYNC_GOT=%s\n", $8, $9 }')"
		[ "$_sa" = idle ] && return 0
		[ $(($(date +%s) - _t0)) -ge 120 ] && { echo "$1: still $_sa after 120 s"; return 1; }
		sleep 0.2
	done
}
# sync_rounds PID...: rounds of check (r5) and repair (r6) while any PID runs.
sync_rounds() {
	while kill -0 "$1" 2>/dev/null || kill -0 "$2" 2>/dev/null; do
		dmsetup message r5 0 check && dmsetup message r6 0 repair || return 1
		for v in r5 r6; do
			sync_idle $v || return 1
			SYNC_FOUND=$((SYNC_FOUND + SYNC_GOT))
		done
		SYNC_ROUNDS=$((SYNC_ROUNDS + 1))
	done
	echo "$SYNC_ROUNDS rounds of check (r5) and repair (r6) during the writes, $SYNC_FOUND mismatched sectors"
	echo "r5: $(dmsetup status r5)"
	echo "r6: $(dmsetup status r6)"
	[ "$SYNC_ROUNDS" -ge 1 ] && [ "$SYNC_FOUND" -eq 0 ]
}
iw() {
	interleave r5 $LEN5 &
	p5=$!
	if [ "$AMF_NODE" -eq 0 ]; then
		interleave r6 $LEN6 &
		p6=$!
		sync_rounds $p5 $p6 >"$KTAP_TMP/sync" 2>&1
		SYNC_RC=$?
		wait $p6 || { wait $p5; return 1; }
		wait $p5
		return
	fi
	interleave r6 $LEN6 || { wait $p5; return 1; }
	wait $p5
}
ktap_check "interleaved writers: node $ID writes its 4 KiB blocks of every stripe, $GENS generations, both volumes at once" iw
if [ "$AMF_NODE" -eq 0 ]; then
	sync_result() { cat "$KTAP_TMP/sync"; return "$SYNC_RC"; }
	ktap_check "online check (r5) and repair (r6) on node 1 while every node writes: no mismatch found" sync_result
fi
bar interleave
WRITES=$(((LEN5 + LEN6) / BS * GENS))

STALE=0
verify_all() {
	rc=0
	for v in "r5 $LEN5" "r6 $LEN6"; do
		set -- $v
		j=0
		while [ $j -lt "$N" ]; do
			if ! amf-iotool verify --dev "/dev/mapper/$1" --seed $((j + 1)) --gen $GENS --bs $BS \
				--every "$N" --phase $j --count "$2" >"$KTAP_TMP/v" 2>&1; then
				tail -5 "$KTAP_TMP/v"
				nb=$(sed -n 's/.*: \([0-9]*\) bad.*/\1/p' "$KTAP_TMP/v" | tail -1)
				STALE=$((STALE + ${nb:-1}))
				rc=1
			fi
			j=$((j + 1))
		done
	done
	return $rc
}
ktap_check "every node's blocks hold its last write, read on node $ID" verify_all

MISMATCH=0
scrub_both() {
	rc=0
	if [ "$AMF_NODE" -eq 0 ]; then
		scrub_ok raid5 $CHUNK $LEN5 /dev/mapper/a0:8192 /dev/mapper/a1:8192 /dev/mapper/a2:8192 \
			/dev/mapper/a3:8192 || rc=1
		scrub_ok raid6 $CHUNK $LEN6 /dev/mapper/b0:8192 /dev/mapper/b1:8192 /dev/mapper/b2:8192 \
			/dev/mapper/b3:8192 /dev/mapper/b4:8192 || rc=1
	else
		echo "node 0 scrubs"
	fi
	return $rc
}
# scrub_step NAME: node 0 scrubs, counted in MISMATCH; then all meet.
scrub_step() {
	ktap_check "scrub (node 0) $1: no parity mismatch on either group" scrub_both
	grep -q 'scrub found mismatched' "$KTAP_TMP/out" && MISMATCH=$((MISMATCH + 1))
	bar "scrub $1"
}
scrub_step "after the interleaved writers"

# ------------------------------------------------------------------ contended blocks
CONT=$((64 * BS)) # the first 64 blocks of each volume: all nodes write them
contend() {
	for v in r5 r6; do
		g=1
		while [ $g -le $GENS ]; do
			amf-iotool write --dev "/dev/mapper/$v" --seed "$ID" --gen $g --bs $BS --count $CONT || return 1
			g=$((g + 1))
		done
	done
}
ktap_check "contended: all nodes write the same 64 blocks of each volume" contend
bar contend
WRITES=$((WRITES + 2 * CONT / BS * GENS * N))

seeds() {
	s=1
	o=1
	while [ $s -lt "$N" ]; do
		s=$((s + 1))
		o="$o,$s"
	done
	echo $o
}
whole() {
	rc=0
	for v in r5 r6; do
		amf-iotool verify-any --dev "/dev/mapper/$v" --seeds "$(seeds)" --max-gen $GENS --count $CONT ||
			rc=1
	done
	return $rc
}
ktap_check "contended blocks: each holds one whole write of one writer" whole
scrub_step "after the contended writes"

# ------------------------------------------------------------------ ping-pong
# Nodes 0 and 1 take turns writing one block each of stripe 50 of r5 (turns 1 and 3 are
# node 1's, 2 and 4 node 0's), meeting after each turn.
PP=$((50 * SS))
PR0=$(st r5 requests)
PB0=$(st r5 blocking)
turn() {
	if [ $(($1 % 2)) -eq "$AMF_NODE" ]; then
		amf-iotool write --dev /dev/mapper/r5 --seed "$ID" --gen $((20 + $1)) --bs $BS \
			--start $((PP + AMF_NODE * BS)) --count $BS >"$KTAP_TMP/turn" 2>&1 ||
			{ ktap_diag "turn $1 failed:"; ktap_diag_file "$KTAP_TMP/turn"; }
	fi
}
for t in 1 2 3 4; do
	[ "$AMF_NODE" -lt 2 ] && turn $t
	bar "turn $t"
done
pingpong() {
	r=$(($(st r5 requests) - PR0))
	b=$(($(st r5 blocking) - PB0))
	echo "node $ID: $r lock requests, $b blocking callbacks answered"
	[ "$AMF_NODE" -ge 2 ] && return 0
	amf-iotool verify --dev /dev/mapper/r5 --seed 1 --gen 24 --bs $BS --start $PP --count $BS || return 1
	amf-iotool verify --dev /dev/mapper/r5 --seed 2 --gen 23 --bs $BS --start $((PP + BS)) --count $BS || return 1
	# Node 1 asks at turns 2 and 4 (node 2 holds the lock then) and yields at 3; node 2
	# yields at 2 and 4 and asks at 3 (and at 1, unless the lock was still its own).
	min=1
	[ "$AMF_NODE" -eq 0 ] && min=2
	[ "$r" -ge $min ] && [ "$b" -ge 1 ] || { echo "the lock did not move back and forth"; return 1; }
}
ktap_check "ping-pong: nodes 1 and 2 alternate on one stripe: the lock moves both ways, the data is each turn's" pingpong
scrub_step "after the ping-pong"

# ------------------------------------------------------------------ two AMFs, one group
# A second target of the raid5 group on this node: the two arbitrate like two servers.
twin() {
	dm_create r5b "$(t5)" || { echo "r5b: $DM_OUT"; return 1; }
	# Two of this node's own blocks (b % N == node) in stripe 60.
	s=$((60 * SS + AMF_NODE * BS))
	amf-iotool write --dev /dev/mapper/r5 --seed "$ID" --gen 31 --bs $BS --start $s --count $BS || return 1
	amf-iotool write --dev /dev/mapper/r5b --seed "$ID" --gen 32 --bs $BS --start $((s + N * BS)) --count $BS || return 1
	amf-iotool write --dev /dev/mapper/r5 --seed "$ID" --gen 33 --bs $BS --start $s --count $BS || return 1
	amf-iotool verify --dev /dev/mapper/r5b --seed "$ID" --gen 33 --bs $BS --start $s --count $BS || return 1
	amf-iotool verify --dev /dev/mapper/r5 --seed "$ID" --gen 32 --bs $BS --start $((s + N * BS)) --count $BS || return 1
	echo "r5:  $(dmsetup status r5)"
	echo "r5b: $(dmsetup status r5b)"
	[ "$(st r5b blocking)" -ge 1 ] || { echo "r5b never yielded to r5"; return 1; }
	[ "$(st r5b members)" -eq "$N" ]
}
twin_check() {
	twin
	rc=$?
	dmsetup remove r5b || rc=1
	return $rc
}
ktap_check "two targets of the raid5 group on node $ID share its lockspace and hand the stripe lock to each other" twin_check
bar twin
scrub_step "after the twins"

# ------------------------------------------------------------------ an agreed member failure
# Member 4 of r6 (b4) fails on node 1 only (its dm-linear slice swapped to dm-error): node 1
# records the failure in a round of superblocks under the group's member-state lock in EX;
# the other nodes, whose own path to b4 works, take it in before their next write (status
# D, kernel log "failed on another AMF") and write without it. The nodes rewrite their own
# blocks of r6 above the contended ones with the content they hold (gen $GENS), in the
# stripes where b4 holds P (stripe % 5 == 0), so the later checks are unchanged. Then the
# others remove r6, node 1 puts b4 back and rebuilds it alone (a cluster rebuild needs the
# group's other AMFs stopped), and every node creates r6 again, all members in sync.
AGREE_FROM=$((10 * 3 * CHUNK)) # stripe 10 (3 data chunks a stripe), above the contended blocks
AGREE_LEN=$((3 * CHUNK))
own_blocks() { # the node's blocks of stripes 10 and 15 of r6, rewritten unchanged
	for st0 in $AGREE_FROM $((AGREE_FROM + 5 * 3 * CHUNK)); do
		amf-iotool write --dev /dev/mapper/r6 --seed "$ID" --gen $GENS --bs $BS \
			--every "$N" --phase "$AMF_NODE" --start "$st0" --count $AGREE_LEN || return 1
	done
}
health6() { dmsetup status r6 | awk '{ print $6 }'; }
fail_b4() {
	if [ "$AMF_NODE" -eq 0 ]; then
		kmsg_mark
		dmsetup suspend b4 && dmsetup load b4 --table "0 32768 error" && dmsetup resume b4 ||
			return 1
		own_blocks || return 1
		echo "r6: $(dmsetup status r6)"
		[ "$(health6)" = AAAAD ] || { echo "node 1 did not fail b4"; return 1; }
		amfctl examine /dev/mapper/b0 | grep -iE 'events|member 4|failed'
	else
		echo "node 1 fails b4"
	fi
}
ktap_check "r6 member 4 fails on node 1 only: recorded failed (status AAAAD there)" fail_b4
bar "b4 failed on node 1"
learn_b4() {
	if [ "$AMF_NODE" -ne 0 ]; then
		kmsg_mark
		[ "$(health6)" = AAAAA ] || { echo "b4 failed before any write: $(dmsetup status r6)"; return 1; }
		own_blocks || return 1
		echo "r6: $(dmsetup status r6)"
		dmesg_since_mark | grep -F 'failed on another AMF'
		[ "$(health6)" = AAAAD ] || { echo "node $ID wrote with a stale member set"; return 1; }
		dmesg_since_mark | grep -q 'member 4 .*failed on another AMF' ||
			{ echo "no kernel line: member 4 failed on another AMF"; return 1; }
	else
		echo "r6: $(dmsetup status r6)"
	fi
}
ktap_check "node $ID takes the failure in before its next write (status AAAAD, 'failed on another AMF')" learn_b4
bar "b4 failure agreed"
if [ "$AMF_NODE" -ne 0 ]; then dmsetup remove r6; fi
bar "r6 left by the others"
one_member() { [ "$(st r6 members)" -eq 1 ]; }
rebuild_b4() {
	if [ "$AMF_NODE" -eq 0 ]; then
		until_ok 60 one_member || { echo "r6: still $(st r6 members) members"; return 1; }
		dmsetup suspend b4 && dmsetup load b4 --table "0 32768 linear /dev/vde 32768" &&
			dmsetup resume b4 || return 1
		dmsetup message r6 0 rebuild 4 || return 1
		rebuilt() { dmsetup status r6 | grep -q " AAAAA $LEN6/$LEN6 idle 0"; }
		until_ok 120 rebuilt || { echo "r6: $(dmsetup status r6)"; return 1; }
		echo "r6: $(dmsetup status r6) after $WAITED s"
	else
		echo "node 1 rebuilds b4"
	fi
}
ktap_check "node 1 alone rebuilds b4 (the others removed r6)" rebuild_b4
bar "b4 rebuilt"
rejoin6() {
	if [ "$AMF_NODE" -ne 0 ]; then
		dm_create r6 "$(t6)" || { echo "r6: $DM_OUT"; return 1; }
	fi
	all_in() { [ "$(st r6 members)" -eq "$N" ]; }
	until_ok 60 all_in || { echo "r6: $(dmsetup status r6)"; return 1; }
	echo "r6: $(dmsetup status r6)"
	[ "$(health6)" = AAAAA ]
}
ktap_check "r6 on every node again, all members in sync" rejoin6
bar "r6 back"

# ------------------------------------------------------------------ bad cluster tables
refuse() { # MESSAGE TABLE
	kmsg_mark
	if dm_create bad "$2"; then
		dmsetup remove bad
		echo "created"
		return 1
	fi
	dmesg_since_mark | grep -F "amf: $1" || { echo "no kernel line 'amf: $1'"; dmesg_since_mark | tail -5; return 1; }
}
ktap_check "a table naming another node id is refused" \
	refuse "node is not this server's node id in the DLM" "$(t5 $((ID % N + 1)))"
ktap_check "a raid6 table with lock_stripes 1 (the group's AMFs use 2) is refused" \
	refuse "lock_stripes differs from the group's other AMFs" \
	"$(t6 "$ID" "$CL" plain | sed 's/ lock_stripes 2 / /; s/ raid6 9 / raid6 7 /')"
ktap_check "a table naming another cluster is refused" \
	refuse "cluster is not the DLM's cluster name (corosync totem.cluster_name)" "$(t6 "$ID" othercluster plain)"

# ------------------------------------------------------------------ a node dies
# The last node, idle with its volumes up and its locks cached, is killed (vm.sh kills its
# QEMU process). The survivors learn it from the DLM's recovery and go on: they rewrite
# their blocks of every stripe (the dead node held many of those locks), and every block
# of the dead node still holds its last write.
VICTIM=$((N - 1))
D5=$(st r5 deaths)
bar "before the kill"
if [ "$AMF_NODE" -eq "$VICTIM" ]; then
	ktap_diag "node $ID: to be killed now, idle, with its volumes up"
	touch /tmp/amf-killme
	ktap_done
fi
CLUSTER_NODES=$VICTIM # the survivors: guests 0 .. VICTIM-1

TAKEOVER=
both_recovered() { recovered r5 "$D5" $((N - 1)) && recovered r6 "$D5" $((N - 1)); }
dead() {
	until_ok 90 both_recovered
	ok=$?
	TAKEOVER=$WAITED
	echo "r5: $(dmsetup status r5)"
	echo "r6: $(dmsetup status r6)"
	dmesg | grep -E 'cluster: node|dlm: amf-' | tail -8
	[ $ok -eq 0 ] && echo "node $((VICTIM + 1)) reported dead, recovery done, $((N - 1)) members, $TAKEOVER s after the kill barrier"
}
ktap_check "node $((VICTIM + 1)) killed: the DLM reports it dead, recovery ends, $((N - 1)) members, ready" dead

after_kill() {
	for v in "r5 $LEN5" "r6 $LEN6"; do
		set -- $v
		amf-iotool write --dev "/dev/mapper/$1" --seed "$ID" --gen 3 --bs $BS \
			--every "$N" --phase "$AMF_NODE" --count "$2" || return 1
	done
}
ktap_check "survivors rewrite their blocks of every stripe (locks the dead node held)" after_kill
WRITES=$((WRITES + (N - 1) * (LEN5 + LEN6) / BS))
bar "after the kill"

# vcheck VOL SEED GEN FROM TO: the blocks of node SEED-1 in sectors FROM..TO hold GEN.
vcheck() {
	[ "$5" -gt "$4" ] || return 0
	if ! verify_bad --dev "/dev/mapper/$1" --seed "$2" --gen "$3" --bs $BS \
		--every "$N" --phase $(($2 - 1)) --start "$4" --count $(($5 - $4)); then
		STALE=$((STALE + VERIFY_BAD))
		return 1
	fi
}
survivors_verify() {
	rc=0
	j=0
	while [ $j -lt "$VICTIM" ]; do
		vcheck r5 $((j + 1)) 3 0 $LEN5 || rc=1
		vcheck r6 $((j + 1)) 3 0 $LEN6 || rc=1
		j=$((j + 1))
	done
	# The dead node's last writes: gen 2 of the interleaved writers after the contended
	# blocks, but in stripe 60 of r5 its twin writes (gen 33 and 32, see twin).
	v=$((VICTIM + 1))
	t=$((60 * SS + VICTIM * BS))
	vcheck r6 $v $GENS $CONT $LEN6 || rc=1
	vcheck r5 $v $GENS $CONT $((60 * SS)) || rc=1
	vcheck r5 $v 33 $t $((t + BS)) || rc=1
	vcheck r5 $v 32 $((t + N * BS)) $((t + N * BS + BS)) || rc=1
	vcheck r5 $v $GENS $((61 * SS)) $LEN5 || rc=1
	return $rc
}
ktap_check "survivors' blocks hold their new write, the dead node's blocks its last one" survivors_verify
scrub_step "after the kill"

# ------------------------------------------------------------------ a node cut off
# The survivors (nodes 1 and 2) declare the cluster a cluster of two, as an administrator
# does after losing a server for good (`corosync-quorumtool -e 2`). Node 2 cuts its own
# network: alone, it is not the tie breaker's half, so it loses quorum and its DLM stops; a
# write it issues from then on must fail, never reach the disks. Node 1 keeps quorum and
# serves on. Node 2 is then killed too.
CUT=1 # guest 1, node 2
expects2() { corosync-quorumtool -s 2>&1 | grep -q '^Expected votes: *2$'; }
shrink() {
	[ "$AMF_NODE" -eq 0 ] && { corosync-quorumtool -e 2 || return 1; }
	await 60 expects2
}
ktap_check "the $VICTIM survivors make a cluster of $VICTIM (corosync-quorumtool -e 2)" shrink
D5=$(st r5 deaths)
bar "before the cut"
if [ "$AMF_NODE" -eq $CUT ]; then
	cut_off() {
		ip link set eth0 down || return 1
		await 60 sh -c "! dmsetup status r5 | grep -q ' cluster ready '"
	}
	ktap_check "node $ID cut off: its lockspace stops (status recovering)" cut_off
	cut_write() {
		t0=$(date +%s)
		if amf-iotool write --dev /dev/mapper/r5 --seed "$ID" --gen 5 --bs $BS --every "$N" \
			--phase "$AMF_NODE" --start $((70 * SS)) --count $SS; then
			echo "the write succeeded"
			return 1
		fi
		echo "the write failed after $(($(date +%s) - t0)) s: $(dmsetup status r5)"
		dmesg | grep -F 'cluster:' | tail -3
		[ "$(st r5 state)" = lost ]
	}
	ktap_check "a write issued while cut off fails (I/O error after the 30 s recovery timeout), status lost" cut_write
	bar "cut write done"
	bar "cut verified"
	ktap_diag "node $ID: to be killed now, cut off, with its volumes up"
	touch /tmp/amf-killme
	ktap_done
fi
CLUSTER_NODES=$CUT # node 1 alone

ktap_check "node 2's departure seen, node 1 keeps quorum (tie breaker) and its lockspace recovers" \
	await 90 recovered r5 "$D5" 1
rewrite4() {
	amf-iotool write --dev /dev/mapper/r5 --seed "$ID" --gen 4 --bs $BS --every "$N" \
		--phase "$AMF_NODE" --count $LEN5
}
ktap_check "node 1 alone rewrites its blocks of every stripe of r5" rewrite4
WRITES=$((WRITES + LEN5 / BS))
bar "cut write done"
cut_verify() {
	rc=0
	vcheck r5 1 4 0 $LEN5 || rc=1
	# Node 2's blocks: its write before the cut (gen 3), untouched by the failed one.
	vcheck r5 2 3 0 $LEN5 || rc=1
	vcheck r6 1 3 0 $LEN6 || rc=1
	vcheck r6 2 3 0 $LEN6 || rc=1
	return $rc
}
ktap_check "node 2's write never reached the disks: every block as last acknowledged" cut_verify
scrub_step "after the cut"

# ------------------------------------------------------------------ summary, teardown
summary() {
	r="unknown (the lazy-release test failed)"
	if [ -n "$LREQ" ]; then
		set -- $LREQ
		r=$(awk -v r="$1" -v w="$2" 'BEGIN { printf "%.3f", r / w }')
	fi
	if [ "$AMF_NODE" -eq 0 ]; then
		echo "SUMMARY: cluster: $N nodes, $WRITES writes, $MISMATCH parity mismatches, $STALE stale blocks, lock requests per write $r"
		echo "node $((VICTIM + 1)) killed idle: the survivors served on after ${TAKEOVER:-?} s"
	fi
	echo "node $ID: lock requests per write (own region) $r"
}
ktap_check "summary" summary

bar summary
ktap_check "volumes removed on node $ID" sh -c 'dmsetup remove r5 && dmsetup remove r6'
bar remove
rmslices() {
	for i in 0 1 2 3; do dmsetup remove "a$i" || return 1; done
	for i in 0 1 2 3 4; do dmsetup remove "b$i" || return 1; done
	cluster_stop
}
ktap_check "lockspaces left, cluster stopped on node $ID" rmslices

ktap_done
