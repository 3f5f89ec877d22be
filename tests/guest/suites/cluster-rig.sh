# SPDX-License-Identifier: GPL-2.0
# Self-test of the cluster rig (lib/cluster.sh) on several guests:
#   tests/rig/vm.sh --name cluster-rig --guests 3 --disk 8M --extra cluster --test cluster-rig
# The barrier disk is the last (here the only) disk. Every guest: barrier, corosync to quorum
# with all guests as members, dlm_controld, a DLM lockspace joined by all guests and shown
# with all of them as members, left again, then the cluster stopped cleanly. Then amf-iotool's
# multi-writer checks on the shared disk: strided writers (write/verify --every --phase) and
# contended ones (verify-any).
. /amf/lib/ktap.sh
. /amf/lib/cluster.sh

LS=amftest
N=$AMF_NODES
ID=$(cluster_node_id)
T0=$(date +%s)
since() { echo "$(($(date +%s) - T0)) s"; }

ktap_plan 16

if [ "$N" -lt 2 ]; then
	ktap_diag "one guest: this suite needs vm.sh --guests N (N >= 2)"
fi

cluster_barrier 1
ktap_result "barrier 1: all $N guests booted" $?

# A barrier that cannot complete (one node more than there are) times out and names it.
amf-iotool barrier --dev "$(cluster_barrier_dev)" --sector 64 --node "$AMF_NODE" --nodes $((N + 1)) \
	--gen 1 --timeout 2 >"$KTAP_TMP/bt" 2>&1
rc=$?
ktap_diag_file "$KTAP_TMP/bt"
[ $rc -eq 1 ] && grep -q "TIMEOUT.*missing node(s).* $N (at 0)\$" "$KTAP_TMP/bt"
ktap_result "a barrier without node $N times out and names it" $?

cluster_start amftest
ktap_result "cluster_start: node $ID quorate, dlm_controld configured the kernel DLM ($(since))" $?

cluster_wait_members "$N" 60
rc=$?
corosync-quorumtool -s >"$KTAP_TMP/qs" 2>&1
corosync-quorumtool -l >"$KTAP_TMP/ql" 2>&1
ktap_diag_file "$KTAP_TMP/qs"
ktap_diag_file "$KTAP_TMP/ql"
# has_ids WORD...: the words are exactly the node ids 1..N, each once.
has_ids() {
	[ $# -eq "$N" ] || return 1
	i=1
	while [ $i -le "$N" ]; do
		case " $* " in *" $i "*) ;; *) return 1 ;; esac
		i=$((i + 1))
	done
}
# Every node id listed once in the membership.
# shellcheck disable=SC2046 # one word per node id
has_ids $(awk '$1 ~ /^[0-9]+$/ { print $1 }' "$KTAP_TMP/ql") || {
	ktap_diag "corosync-quorumtool -l does not list node ids 1..$N once each"
	rc=1
}
grep -q '^Quorate: *Yes' "$KTAP_TMP/qs" || rc=1
ktap_result "corosync: quorate with all $N nodes as members ($(since))" $rc

cluster_barrier 2
ktap_result "barrier 2: every node quorate" $?

timeout 120 dlm_tool join $LS >"$KTAP_TMP/join" 2>&1
rc=$?
ktap_diag_file "$KTAP_TMP/join"
ktap_result "dlm_tool join $LS ($(since))" $rc

cluster_barrier 3
ktap_result "barrier 3: every node joined $LS" $?

# The members line of our lockspace lists every node id (recovery of the last join may still
# finish on this node: a bounded wait).
members_ok() {
	dlm_tool ls >"$KTAP_TMP/ls" 2>&1 || return 1
	m=$(awk -v ls=$LS '$1 == "name" { cur = $2 } cur == ls && $1 == "members" { $1 = ""; print }' "$KTAP_TMP/ls")
	# shellcheck disable=SC2086 # one word per member
	has_ids $m
}
until_ok 30 members_ok
rc=$?
ktap_diag_file "$KTAP_TMP/ls"
ktap_result "dlm_tool ls: $LS with all $N nodes as members" $rc

# Nobody leaves before every node has seen all members.
cluster_barrier 4
ktap_result "barrier 4: every node saw all members" $?

timeout 60 dlm_tool leave $LS >"$KTAP_TMP/leave" 2>&1
rc=$?
ktap_diag_file "$KTAP_TMP/leave"
dlm_tool ls >"$KTAP_TMP/ls" 2>&1
grep -q "^name *$LS\$" "$KTAP_TMP/ls" && {
	ktap_diag "$LS still listed after leave:"
	ktap_diag_file "$KTAP_TMP/ls"
	rc=1
}
ktap_result "dlm_tool leave $LS ($(since))" $rc

cluster_barrier 5
ktap_result "barrier 5: every node left $LS" $?

cluster_stop
rc=$?
if pidof dlm_controld corosync >/dev/null; then
	ktap_diag "still running: $(pidof dlm_controld corosync)"
	rc=1
fi
ktap_result "cluster_stop: dlm_controld and corosync stopped ($(since))" $rc

# amf-iotool on the shared disk itself (no dm-amf): interleaved writers owning every N-th
# 4 KiB block of one range, then all writers on the same blocks of another.
BD=$(cluster_barrier_dev)
SEED=$ID
SEEDS=$(seq -s, 1 "$N")
cluster_barrier 6
rc=$?
for g in 1 2; do
	amf-iotool write --dev "$BD" --start 2048 --count 2048 --every "$N" --phase "$AMF_NODE" \
		--seed "$SEED" --gen $g >"$KTAP_TMP/w" 2>&1 || rc=1
done
ktap_diag_file "$KTAP_TMP/w"
cluster_barrier 7 || rc=1
ktap_result "strided writes: each node its own blocks of one range, at once" $rc

amf-iotool verify --dev "$BD" --start 2048 --count 2048 --every "$N" --phase "$AMF_NODE" \
	--seed "$SEED" --gen 2 >"$KTAP_TMP/v" 2>&1
rc=$?
ktap_diag_file "$KTAP_TMP/v"
ktap_result "strided verify: this node's blocks hold its last generation" $rc

amf-iotool verify-any --dev "$BD" --start 2048 --count 2048 --seeds "$SEEDS" --max-gen 2 >"$KTAP_TMP/va" 2>&1
rc=$?
ktap_diag_file "$KTAP_TMP/va"
i=1
while [ $i -le "$N" ]; do
	# blocks 256..511; node i owns those with b % N == i - 1
	first=$((256 + (i - 1 - 256 % N + N) % N))
	grep -q "seed $i: $(((511 - first) / N + 1)) (gen 2)" "$KTAP_TMP/va" || rc=1
	i=$((i + 1))
done
ktap_result "verify-any: every block a whole write of its owner" $rc

cluster_barrier 8
rc=$?
amf-iotool write --dev "$BD" --start 4096 --count 2048 --every 1 --phase 0 --seed "$SEED" --gen 1 \
	>"$KTAP_TMP/w" 2>&1 || rc=1
cluster_barrier 9 || rc=1
amf-iotool verify-any --dev "$BD" --start 4096 --count 2048 --seeds "$SEEDS" --max-gen 1 >"$KTAP_TMP/va" 2>&1 || rc=1
ktap_diag_file "$KTAP_TMP/va"
ktap_result "contended writes: every block a whole write of one of the $N writers" $rc

ktap_done
