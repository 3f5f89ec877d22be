# SPDX-License-Identifier: GPL-2.0
# Self-test of the cluster rig (lib/cluster.sh) on several guests:
#   tests/rig/vm.sh --name cluster-rig --guests 3 --disk 8M --extra cluster --test cluster-rig
# The barrier disk is the last (here the only) disk. Every guest: barrier, corosync to quorum
# with all guests as members, dlm_controld, a DLM lockspace joined by all guests and shown
# with all of them as members, left again, then the cluster stopped cleanly.
. /amf/lib/ktap.sh
. /amf/lib/cluster.sh

LS=amftest
N=$AMF_NODES
ID=$(cluster_node_id)
T0=$(date +%s)
since() { echo "$(($(date +%s) - T0)) s"; }

ktap_plan 12

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
# Every node id listed once in the membership.
i=1
while [ $i -le "$N" ]; do
	awk -v id=$i '$1 == id { f = 1 } END { exit !f }' "$KTAP_TMP/ql" || {
		ktap_diag "node $i missing from corosync-quorumtool -l"
		rc=1
	}
	i=$((i + 1))
done
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
	i=1
	while [ $i -le "$N" ]; do
		case " $m " in *" $i "*) ;; *) return 1 ;; esac
		i=$((i + 1))
	done
	# shellcheck disable=SC2086 # one word per member
	set -- $m
	[ $# -eq "$N" ]
}
end=$(($(date +%s) + 30))
rc=0
until members_ok; do
	if [ "$(date +%s)" -ge $end ]; then
		rc=1
		break
	fi
	sleep 1
done
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

ktap_done
