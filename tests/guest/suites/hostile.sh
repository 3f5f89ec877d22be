# SPDX-License-Identifier: GPL-2.0
# No stalls from strangers (issue 18 item 3; step `vm repl-smoke` of tests/plan, run before
# repl-smoke in the same boot: repl-smoke ends by killing node 2). Two nodes with corosync +
# dlm_controld serve a raid1 group with `peers` and `auth_key` over TCP (h) and, with
# AMF_TRANSPORT=rdma, a second one over soft-RoCE (g). Node 2 runs `amf-attack`
# (tests/tools) against node 1's listeners from addresses of its own (10.199.0.200-203,
# added to its eth0: strangers, not peers) for ~30 s:
#   - slow-loris: 4 connections that send one byte and then nothing, reopened when dropped
#   - trickle: 4 connections that send a byte a second, reopened when dropped
#   - a flood of 300 connections, and 20 connections of garbage
#   - RDMA: 4 connections established and silent (never a handshake), 8 requests whose
#     sender dies before completing them
# Meanwhile node 2 writes and verifies blocks on both volumes (replicated to node 1) and
# forces its genuine connections to reconnect 3 times per volume (`dmsetup message <vol> 0
# reconnect`), timing each until its status says the peer is up again (both directions:
# one of them is node 2's handshake at node 1's attacked listener).
# Checks: every write succeeds and reads back right; each reconnect completes within
# HS_BOUND_MS (5 s; the listener that ran every handshake in turn needed at least one
# 10 s handshake deadline per stranger ahead of the peer); node 1's `handshakes` counters
# show exactly the genuine handshakes accepted (no attacker), and the caps and deadlines
# at work (refused > 0, stalled > 0); node 1 then removes a target while 4 handshakes are
# in progress on its listener (within 5 s, no splat, no leak).
# `# SUMMARY: hostile: <n> attacks tried, <a> accepted, <w> writes failed, max handshake <ms> ms`
# (n: connections and requests the attacker opened; w: write batches that failed; ms: the
# longest genuine reconnect).
# shellcheck disable=SC1091
. /amf/lib/ktap.sh
. /amf/lib/raid.sh
. /amf/lib/cluster.sh

CL=amfhostile
ID=$(cluster_node_id)
UH=4a4a4a4a-0000-4000-8000-000000000004
UG=6a6a6a6a-0000-4000-8000-000000000006
LEN=8192
BS=8
RECONNECTS=3
HS_BOUND_MS=5000
ATTACK_S=30
# Barriers of this suite: sectors 16-17 of the barrier disk (repl-smoke's are 0-1).
B=0
bar() { B=$((B + 1)); cluster_barrier_at 16 "$AMF_NODE" 2 $B >"$KTAP_TMP/bar" 2>&1 || ktap_diag "barrier $B failed"; }
# hst VOL N: the N-th field after "handshakes" (1 accepted, 2 refused, 3 stalled, 4 failed).
hst() { dmsetup status "$1" | awk -v f="$2" '{ for (i = 1; i <= NF; i++) if ($i == "handshakes") break; print $(i + f) }'; }
rup() { dmsetup status "$1" | awk '{ for (i = 1; i <= NF; i++) if ($i == "replication") break; print $(i + 1) }'; }
ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
TR=$(repl_transport)
VOLS=h
[ -z "$TR" ] || VOLS="h g"

if [ "$AMF_NODE" -eq 0 ]; then ktap_plan 8; else ktap_plan 9; fi
amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load" $? "$(cat "$KTAP_TMP/ld")"
ktap_check "corosync + dlm_controld up" cluster_start "$CL"
bar
slices() {
	dm_create h0 "0 16384 linear /dev/vdc 32768" || return 1
	dm_create h1 "0 16384 linear /dev/vdd 32768" || return 1
	dm_create g0 "0 16384 linear /dev/vdc 49152" || return 1
	dm_create g1 "0 16384 linear /dev/vdd 49152" || return 1
	[ "$AMF_NODE" -ne 0 ] && return 0
	amfctl format --level raid1 --chunk 32K --uuid "$UH" --size 4M /dev/mapper/h0 /dev/mapper/h1 || return 1
	amfctl format --level raid1 --chunk 32K --uuid "$UG" --size 4M /dev/mapper/g0 /dev/mapper/g1
}
ktap_check "dm-linear slices, groups formatted by node 1" slices
bar
create() {
	echo "hostile-secret-0123456789" | amfctl key-add dm-amf:hostile || return 1
	kmsg_mark
	dm_create h "0 $LEN amf raid1 13 64 group $UH cluster $CL node $ID peers 2 1@10.199.0.1:7795 2@10.199.0.2:7795 auth_key dm-amf:hostile 2 /dev/mapper/h0 8192 /dev/mapper/h1 8192" ||
		{ echo "h: $DM_OUT"; dmesg_since_mark | tail; return 1; }
	[ -n "$TR" ] || return 0
	dm_create g "0 $LEN amf raid1 15 64 group $UG cluster $CL node $ID peers 2 1@10.199.0.1:7796 2@10.199.0.2:7796 auth_key dm-amf:hostile$TR 2 /dev/mapper/g0 8192 /dev/mapper/g1 8192" ||
		{ echo "g: $DM_OUT"; dmesg_since_mark | tail; return 1; }
}
ktap_check "raid1 groups created with peers and auth_key ($VOLS)" create
connected() {
	for v in $VOLS; do
		until_ok 60 sh -c "[ \"\$(dmsetup status $v | awk '{ for (i = 1; i <= NF; i++) if (\$i == \"replication\") break; print \$(i + 1) }')\" = 1 ]" || return 1
		dmsetup status $v
	done
}
ktap_check "connected and authenticated both ways" connected
bar
# Node 1's counters before the attacks.
if [ "$AMF_NODE" -eq 0 ]; then
	for v in $VOLS; do echo "$v $(hst $v 1) $(hst $v 2) $(hst $v 3) $(hst $v 4)"; done >"$KTAP_TMP/before"
fi
bar

ATTEMPTS=0 WFAIL=0 MAXHS=0 ACCEPTED=0
if [ "$AMF_NODE" -eq 1 ]; then
	attack() {
		for a in 200 201 202 203; do ip addr add 10.199.0.$a/24 dev eth0 || return 1; done
		sleep 1
		# Each bounded by timeout(1) too: a stuck attacker must not hang the suite.
		T=$((ATTACK_S + 20))
		timeout $T amf-attack loris 10.199.0.200 10.199.0.1 7795 4 $ATTACK_S >"$KTAP_TMP/a.loris" 2>&1 &
		APIDS="$!"
		timeout $T amf-attack trickle 10.199.0.201 10.199.0.1 7795 4 $ATTACK_S >"$KTAP_TMP/a.trickle" 2>&1 &
		APIDS="$APIDS $!"
		timeout $T amf-attack flood 10.199.0.202 10.199.0.1 7795 300 $ATTACK_S >"$KTAP_TMP/a.flood" 2>&1 &
		APIDS="$APIDS $!"
		timeout $T amf-attack garbage 10.199.0.203 10.199.0.1 7795 20 $ATTACK_S >"$KTAP_TMP/a.garbage" 2>&1 &
		APIDS="$APIDS $!"
		if [ -n "$TR" ]; then
			timeout $T amf-attack rdma-hold 10.199.0.200 10.199.0.1 7796 4 $ATTACK_S >"$KTAP_TMP/a.rhold" 2>&1 &
			APIDS="$APIDS $!"
			timeout $T amf-attack rdma-abort 10.199.0.201 10.199.0.1 7796 8 0 >"$KTAP_TMP/a.rabort" 2>&1 &
			APIDS="$APIDS $!"
		fi
		# The attacks are under way: the slow ones hold their connections.
		sleep 3
	}
	ktap_check "attacks started from 10.199.0.200-203 (loris, trickle, flood, garbage$([ -z "$TR" ] || echo ', rdma half-open'))" attack
	# Genuine traffic during the attacks: writes and verified reads, and forced reconnects.
	gen=1
	traffic() {
		rc=0
		r=0
		while [ $r -lt $RECONNECTS ]; do
			r=$((r + 1))
			for v in $VOLS; do
				amf-iotool write --dev /dev/mapper/$v --seed 7 --gen $gen --bs $BS --count 64 >"$KTAP_TMP/w" 2>&1 ||
					{ WFAIL=$((WFAIL + 1)); cat "$KTAP_TMP/w"; }
				amf-iotool verify --dev /dev/mapper/$v --seed 7 --gen $gen --bs $BS --count 64 >"$KTAP_TMP/w" 2>&1 ||
					{ WFAIL=$((WFAIL + 1)); cat "$KTAP_TMP/w"; }
				t0=$(ms)
				dmsetup message $v 0 reconnect || { echo "$v: reconnect message refused"; rc=1; }
				# Both directions down at once (closed here), then up again.
				until [ "$(rup $v)" = 1 ] || [ $(($(ms) - t0)) -ge 25000 ]; do sleep 0.1; done
				t=$(($(ms) - t0))
				echo "$v: reconnect $r took $t ms (status: $(dmsetup status $v | sed 's/.*replication/replication/'))"
				[ $t -gt $MAXHS ] && MAXHS=$t
				[ $t -le $HS_BOUND_MS ] || rc=1
			done
			gen=$((gen + 1))
		done
		# Writes and reads after the last reconnect, still under attack.
		for v in $VOLS; do
			amf-iotool write --dev /dev/mapper/$v --seed 7 --gen $gen --bs $BS --count 512 >"$KTAP_TMP/w" 2>&1 ||
				{ WFAIL=$((WFAIL + 1)); cat "$KTAP_TMP/w"; }
			p_drop
			amf-iotool verify --dev /dev/mapper/$v --seed 7 --gen $gen --bs $BS --count 512 >"$KTAP_TMP/w" 2>&1 ||
				{ WFAIL=$((WFAIL + 1)); cat "$KTAP_TMP/w"; }
		done
		echo "max reconnect $MAXHS ms (bound $HS_BOUND_MS ms), $WFAIL write/verify batches failed"
		[ $rc -eq 0 ] && [ $WFAIL -eq 0 ]
	}
	traffic >"$KTAP_TMP/traffic" 2>&1
	rc=$?
	ktap_diag_file "$KTAP_TMP/traffic"
	WFAIL=$(sed -n 's/.*ms), \([0-9]*\) write.*/\1/p' "$KTAP_TMP/traffic")
	MAXHS=$(sed -n 's/^max reconnect \([0-9]*\) ms.*/\1/p' "$KTAP_TMP/traffic")
	ktap_result "under attack: every write read back right, each genuine reconnect within $HS_BOUND_MS ms" $rc
	ended() {
		# shellcheck disable=SC2086 # one pid a word
		wait $APIDS
		cat "$KTAP_TMP"/a.*
		for a in 200 201 202 203; do ip addr del 10.199.0.$a/24 dev eth0; done
		true
	}
	ktap_check "attacks ended" ended
	ATTEMPTS=$(cat "$KTAP_TMP"/a.* | sed -n 's/.*attempts=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
fi
bar
# Node 1: what its listeners saw. Only node 2's forced reconnects may have been accepted.
if [ "$AMF_NODE" -eq 0 ]; then
	counted() {
		rc=0
		acc=0
		while read -r v a0 r0 s0 f0; do
			a=$(($(hst $v 1) - a0)) r=$(($(hst $v 2) - r0)) s=$(($(hst $v 3) - s0)) f=$(($(hst $v 4) - f0))
			echo "$v: handshakes accepted $a (genuine $RECONNECTS), refused $r, stalled $s, failed $f; $(dmsetup status $v | sed 's/.*replication/replication/')"
			[ $a -gt $RECONNECTS ] && acc=$((acc + a - RECONNECTS))
			[ "$(rup $v)" = 1 ] || { echo "$v: peer not up"; rc=1; }
		done <"$KTAP_TMP/before"
		read -r _ a0 r0 s0 f0 <"$KTAP_TMP/before"
		[ $(($(hst h 2) - r0)) -gt 0 ] || { echo "h: no connection refused at the caps"; rc=1; }
		[ $(($(hst h 3) - s0)) -gt 0 ] || { echo "h: no handshake dropped at its deadline"; rc=1; }
		echo "$acc attackers accepted"
		cluster_note 20 "$acc"
		[ $rc -eq 0 ] && [ $acc -eq 0 ]
	}
	ktap_check "no attacker accepted; connections refused at the caps and loris dropped at the deadline (counters)" counted
fi
bar
if [ "$AMF_NODE" -eq 1 ]; then
	ACCEPTED=$(cluster_read_note 20)
	ktap_diag "SUMMARY: hostile: $ATTEMPTS attacks tried, ${ACCEPTED:-?} accepted, $WFAIL writes failed, max handshake $MAXHS ms"
fi
# Removal with handshakes in progress: node 2 holds 4 silent connections to node 1's h
# listener (from its own address) while node 1 removes h; the removal stops them and waits
# for their work items, bounded (a handshake sees the stop within 200 ms).
if [ "$AMF_NODE" -eq 1 ]; then
	timeout 30 amf-attack loris 10.199.0.2 10.199.0.1 7795 4 15 >"$KTAP_TMP/a.last" 2>&1 &
	LPID=$!
	sleep 2
fi
bar
if [ "$AMF_NODE" -eq 0 ]; then
	removal() {
		t0=$(ms)
		dmsetup remove h || return 1
		t=$(($(ms) - t0))
		echo "h removed in $t ms with handshakes in progress"
		[ $t -le 5000 ]
	}
	ktap_check "target removed with handshakes in progress: within 5 s" removal
fi
bar
teardown() {
	for v in $VOLS; do [ ! -e /dev/mapper/$v ] || dmsetup remove $v || return 1; done
	dm_remove_all
	[ -z "${LPID:-}" ] || kill "$LPID" 2>/dev/null
	bar
	cluster_stop
}
ktap_check "volumes removed (replication stopped), cluster stopped" teardown
ktap_done
