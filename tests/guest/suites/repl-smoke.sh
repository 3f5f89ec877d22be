# SPDX-License-Identifier: GPL-2.0
# Replication smoke (step `vm repl-smoke` of tests/plan): two nodes with corosync +
# dlm_controld serve a raid5 group and a raid1 group, both with `peers` and `auth_key`:
#   - a peer with the wrong secret and a sender of garbage are refused and counted
#     (auth_failures, bad_frames), nothing of theirs is held
#   - the connections come up, authenticated both ways (status: 1 of 1 peers up)
#   - a relay without the secret joins node 1's and node 2's raid5 listeners (each takes it
#     for the other dialling): both handshakes fail (acceptor's proofs where a dialler's is
#     due), are counted and logged with the address, and no connection is replaced
#   - a stranger that sends one byte of a header and then nothing is dropped at the
#     handshake's 10 s deadline (logged); garbage sent behind it is read and counted at once
#   - interleaved writes of both nodes are replicated (records sent) and stay correct
#   - node 2 stops dead after the data step of one write on each volume (raid5: new data on
#     disk, parity stale; raid1: the first copy new, the second old: the write hole) and is
#     killed; node 1 rewrites both operations from its records: node 2's acked blocks and
#     its in-flight block are whole, raid5 parity scrubs clean, the raid1 copies are equal,
#     node 1 serves on; then it removes its volumes (the channel stops cleanly).
# The failover kill matrix (tests/guest/suites/failover.sh) covers every step and kind.
# AMF_TRANSPORT=rdma (amf.env, as make check boots it): the raid1 volume runs over
# soft-RoCE (`transport rdma`, rxe0 on eth0) and the raid5 one over TCP, so every step above
# runs on both transports in one boot. On the RDMA port, rdma-peer (tests/tools) first dies
# in the middle of its connection set-up, then connects and sends 256 bytes that are not our
# framing: node 1's raid1 counts them (bad_frames) and serves on. Summary line
# `rdma: N replicated writes, L lost acked writes, R reconnects, M malformed dropped`.
# shellcheck disable=SC1091
. /amf/lib/ktap.sh
. /amf/lib/raid.sh
. /amf/lib/cluster.sh

CL=amftest
ID=$(cluster_node_id)
U5=5a5a5a5a-0000-4000-8000-000000000005
U1=1a1a1a1a-0000-4000-8000-000000000001
CHUNK=64
LEN5=$((8192 * 3))
LEN1=8192
BS=8
B=0
bar() { B=$((B + 1)); cluster_barrier $B >"$KTAP_TMP/bar" 2>&1 || ktap_diag "barrier $B failed"; }
# rst VOL N: the N-th field after "replication" in VOL's status (1 up, 3 records sent,
# 5 bad frames, 7 replayed, 8 last takeover ms, 9 reconnects).
rst() { dmsetup status "$1" | awk -v f="$2" '{ for (i = 1; i <= NF; i++) if ($i == "replication") break; print $(i + f) }'; }
TR=$(repl_transport)
P5="peers 2 1@10.199.0.1:7790 2@10.199.0.2:7790 auth_key dm-amf:smoke"
P1="peers 2 1@10.199.0.1:7791 2@10.199.0.2:7791 auth_key dm-amf:smoke$TR"

if [ "$AMF_NODE" -eq 1 ]; then ktap_plan 9; elif [ -n "$TR" ]; then ktap_plan 14; else ktap_plan 12; fi
amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load" $? "$(cat "$KTAP_TMP/ld")"
ktap_check "corosync + dlm_controld up" cluster_start "$CL"
bar
slices() {
	i=0
	for d in vda vdb vdc vdd; do
		dm_create "a$i" "0 32768 linear /dev/$d 0" || return 1
		i=$((i + 1))
	done
	dm_create m0 "0 32768 linear /dev/vda 32768" || return 1
	dm_create m1 "0 32768 linear /dev/vdb 32768" || return 1
	[ "$AMF_NODE" -ne 0 ] && return 0
	amfctl format --level raid5 --chunk 32K --uuid "$U5" --size 4M \
		/dev/mapper/a0 /dev/mapper/a1 /dev/mapper/a2 /dev/mapper/a3 || return 1
	amfctl format --level raid1 --chunk 32K --uuid "$U1" --size 4M /dev/mapper/m0 /dev/mapper/m1
}
ktap_check "dm-linear slices, groups formatted by node 1" slices
bar
up() { [ "$(rst r5 1)" = 1 ] && [ "$(rst r1 1)" = 1 ]; }
T5="0 $LEN5 amf raid5 13 $CHUNK group $U5 cluster $CL node $ID"
D5="4 /dev/mapper/a0 8192 /dev/mapper/a1 8192 /dev/mapper/a2 8192 /dev/mapper/a3 8192"
create() {
	echo "smoke-secret-0123456789" | amfctl key-add dm-amf:smoke || return 1
	kmsg_mark
	dm_create r5 "$T5 $P5 $D5" || { echo "r5: $DM_OUT"; dmesg_since_mark | tail; return 1; }
	dm_create r1 "0 $LEN1 amf raid1 $((13 + $(repl_transport_words))) $CHUNK group $U1 cluster $CL node $ID $P1 2 /dev/mapper/m0 8192 /dev/mapper/m1 8192" ||
		{ echo "r1: $DM_OUT"; dmesg_since_mark | tail; return 1; }
	dmsetup table r5
	dmsetup table r1
}
# Node 2 first joins raid5 with another secret (a peer that cannot prove the key), and
# node 1 gets garbage on its replication port.
impostor() {
	echo "not-the-group-secret" | amfctl key-add dm-amf:wrong || return 1
	dm_create r5 "$T5 ${P5%dm-amf:smoke}dm-amf:wrong $D5" || { echo "r5: $DM_OUT"; return 1; }
}
# A logon key shorter than 16 bytes (amfctl key-add refuses it; amf-iotool adds any) is
# refused at table load with a precise error.
short_key() {
	amf-iotool add-logon-key --desc dm-amf:short --secret 0123456789abcde >/dev/null || return 1
	kmsg_mark
	if dm_create r5 "$T5 ${P5%dm-amf:smoke}dm-amf:short $D5"; then
		dmsetup remove r5
		echo "r5 created with a 15-byte secret"
		return 1
	fi
	dmesg_since_mark | grep -q "auth_key: the logon key holds fewer than 16 bytes" && return 0
	echo "no precise error: $DM_OUT"
	dmesg_since_mark | tail -n 3
	return 1
}
refused() {
	head -c 300 /dev/urandom | nc -w 2 10.199.0.1 7790 >/dev/null 2>&1
	refusals() { [ "$(rst r5 6)" -ge 1 ] && [ "$(rst r5 5)" -ge 1 ]; }
	until_ok 30 refusals
	rc=$?
	dmsetup status r5
	[ $rc -eq 0 ] && [ "$(rst r5 1)" = 0 ] && [ "$(rst r5 4)" = 0 ]
}
# RDMA: a peer that dies during its connection set-up, then one that sends garbage; r1
# (node 2 has not created its r1 yet) counts one bad frame and holds nothing.
rdma_faults() {
	rdma-peer abort 10.199.0.1 7791
	rdma-peer garbage 10.199.0.1 7791 || return 1
	garbage_counted() { [ "$(rst r1 5)" -ge 1 ]; }
	until_ok 30 garbage_counted
	rc=$?
	dmsetup status r1
	[ $rc -eq 0 ] && [ "$(rst r1 1)" = 0 ] && [ "$(rst r1 4)" = 0 ]
}
if [ "$AMF_NODE" -eq 0 ]; then
	ktap_check "raid5 and raid1 created with peers and auth_key" create
	bar
	bar
	ktap_check "a peer with the wrong secret and garbage on the port: refused, counted, nothing held" refused
	[ -z "$TR" ] || ktap_check "rdma: a peer killed during set-up, then garbage: counted, nothing held" rdma_faults
	bar
else
	ktap_check "a 15-byte secret refused at table load" short_key
	bar
	ktap_check "raid5 created with the wrong secret" impostor
	bar
	bar
	dmsetup remove r5 || ktap_diag "cannot remove the impostor's r5"
	ktap_check "raid5 and raid1 created with peers and the right auth_key" create
fi
bar
connected() {
	until_ok 30 up
	rc=$?
	dmsetup status r5
	dmsetup status r1
	return $rc
}
ktap_check "connected and authenticated both ways" connected
bar
# The relay of issue 18: two outgoing connections, to node 1's and to node 2's raid5
# listener, spliced together (busybox nc and a fifo: the relay holds no key). Before the
# handshake bound the sides, both accepted it and each closed the other's genuine
# connection (a reconnect); now both refuse it.
relay() {
	fails=$(rst r5 6) again=$(rst r5 9)
	kmsg_mark
	rm -f "$KTAP_TMP/relay" && mkfifo "$KTAP_TMP/relay" || return 1
	timeout 10 sh -c "nc 10.199.0.1 7790 <'$KTAP_TMP/relay' | nc 10.199.0.2 7790 >'$KTAP_TMP/relay'"
	refused() { [ "$(rst r5 6)" -gt "$fails" ]; }
	until_ok 30 refused
	rc=$?
	dmsetup status r5
	dmesg_since_mark | grep 'authentication failed with' || rc=1
	[ $rc -eq 0 ] && [ "$(rst r5 9)" = "$again" ] && [ "$(rst r5 1)" = 1 ]
}
[ "$AMF_NODE" -ne 0 ] || ktap_check "a relay between the two listeners: refused, counted, logged, nothing replaced" relay
# Slow loris (issue 18): a stranger sends one byte of a frame header and then nothing for
# 40 s. Handshakes run side by side, so garbage sent right after it is read and counted at
# once (within 8 s: before the loris's 10 s deadline; the listener that ran every handshake
# itself read it only after that deadline), and the loris is dropped at its deadline (logged).
# The `hostile` suite attacks the listeners harder.
loris() {
	bad=$(rst r5 5)
	kmsg_mark
	(printf 'A'; sleep 40) | nc 10.199.0.1 7790 >/dev/null 2>&1 &
	lpid=$!
	sleep 1
	(printf 'GARBAGEGARBAGEGARBAGEGARBAGEGARBAGEGARBAGEGARBAGEGARBAGE'; sleep 25) |
		nc 10.199.0.1 7790 >/dev/null 2>&1 &
	gpid=$!
	counted() { [ "$(rst r5 5)" -gt "$bad" ]; }
	until_ok 20 counted
	rc=$?
	echo "garbage counted after ${WAITED:-?} s (bad frames $bad -> $(rst r5 5))"
	[ "${WAITED:-20}" -lt 8 ] || rc=1
	dropped() { dmesg_since_mark | grep -q 'did not finish'; }
	until_ok 20 dropped || rc=1
	kill "$lpid" "$gpid" 2>/dev/null
	dmesg_since_mark | grep 'did not finish' || rc=1
	[ $rc -eq 0 ] && [ "$(rst r5 1)" = 1 ]
}
[ "$AMF_NODE" -ne 0 ] || ktap_check "a stranger sending one byte then nothing is dropped after the handshake deadline; the listener serves the next connection" loris
# RDMA link flap: node 1 removes its rxe device under the live raid1 connections (the
# removal waits until every RDMA id on it is destroyed: no hang) and adds it again; both
# directions come back on their own.
flap() {
	timeout 60 rdma link delete rxe0 || { echo "rdma link delete rxe0 failed or hung"; return 1; }
	rdma link add rxe0 type rxe netdev eth0 || return 1
	back() { [ "$(rst r1 1)" = 1 ] && [ "$(rst r1 9)" -ge 2 ]; }
	until_ok 60 back
	rc=$?
	dmsetup status r1
	dmesg | grep -E 'dm-amf: group .*(listener|listening)' | tail -2
	return $rc
}
if [ -n "$TR" ] && [ "$AMF_NODE" -eq 0 ]; then
	ktap_check "rdma: device removed under live connections and added again: reconnected" flap
fi
bar
wr() {
	for v in r5 r1; do
		amf-iotool write --dev /dev/mapper/$v --seed "$ID" --gen 1 --bs $BS --every 2 --phase "$AMF_NODE" --count 2048 || return 1
		dmsetup status $v
		[ "$(rst $v 3)" -gt 0 ] || { echo "$v: no records sent"; return 1; }
	done
}
ktap_check "interleaved writes of both nodes are replicated (records sent)" wr
bar
if [ "$AMF_NODE" -eq 1 ]; then
	dead() {
		for v in r5 r1; do
			dmsetup message $v 0 fail_after data || return 1
			amf-iotool write --dev /dev/mapper/$v --seed "$ID" --gen 2 --bs $BS --start 64 --count $BS >/tmp/bg.$v 2>&1 &
		done
		until_ok 30 sh -c '[ "$(dmesg | grep -c "stopped dead after data")" -eq 2 ]'
		rc=$?
		dmesg | grep 'stopped dead'
		return $rc
	}
	ktap_check "both volumes stopped dead after the data step of a write" dead
	bar
	touch /tmp/amf-killme
	ktap_done
fi
bar
taken() { [ "$(rst r5 7)" -ge 1 ] && [ "$(rst r1 7)" -ge 1 ]; }
takeover() {
	until_ok 60 taken
	rc=$?
	dmsetup status r5
	dmsetup status r1
	dmesg | grep -E "dm-amf|cluster:" | tail -8
	return $rc
}
ktap_check "node 2 killed mid-write: node 1 rewrote its raid5 and raid1 operations" takeover
LOST=0 LOST1=0 MISMATCH=0
lost() { LOST=$((LOST + 1)); [ "$1" != r1 ] || LOST1=$((LOST1 + 1)); }
verify() {
	for v in r5 r1; do
		amf-iotool write --dev /dev/mapper/$v --seed "$ID" --gen 3 --bs $BS --start 0 --count 64 || return 1
		# Node 2's acked blocks (gen 1, odd blocks) and its in-flight one (gen 2, or gen 1
		# if it did not land).
		amf-iotool verify --dev /dev/mapper/$v --seed 2 --gen 1 --bs $BS --every 2 --phase 1 --start 128 --count 1920 ||
			lost $v
		amf-iotool verify-any --dev /dev/mapper/$v --seeds 2 --max-gen 2 --count $BS --start 64 ||
			lost $v
	done
	scrub_ok raid5 $CHUNK $LEN5 /dev/mapper/a0:8192 /dev/mapper/a1:8192 /dev/mapper/a2:8192 /dev/mapper/a3:8192 ||
		MISMATCH=$((MISMATCH + 1))
	p_drop
	if cmp /dev/mapper/m0 /dev/mapper/m1 $((8192 * 512)) $((8192 * 512)); then
		echo "raid1 copies equal"
	else
		echo "raid1 copies differ"
		MISMATCH=$((MISMATCH + 1))
	fi
	[ $LOST -eq 0 ] && [ $MISMATCH -eq 0 ]
}
ktap_check "node 1 serves on; node 2's acked and in-flight writes whole, parity and copies consistent" verify
T5=$(rst r5 8) T1=$(rst r1 8)
ktap_diag "SUMMARY: failover (smoke): 2 kill points, $LOST lost acked writes, $MISMATCH parity mismatches, max takeover $((T5 > T1 ? T5 : T1)) ms"
[ -z "$TR" ] || ktap_diag "SUMMARY: rdma: $(rst r1 3) replicated writes, $LOST1 lost acked writes, $(rst r1 9) reconnects, $(rst r1 5) malformed dropped"
teardown() { dmsetup remove r5 && dmsetup remove r1 && dm_remove_all && cluster_stop; }
ktap_check "volumes removed (replication stopped), cluster stopped" teardown
ktap_done
