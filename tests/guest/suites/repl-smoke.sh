# SPDX-License-Identifier: GPL-2.0
# Replication smoke (step `vm repl-smoke` of tests/plan): two nodes with corosync +
# dlm_controld, one raid5 group with `peers` and `auth_key`; the connections come up
# (authenticated both ways), interleaved writes are replicated (records sent), then node 2
# stops dead after the data step of a write (data on disk, parity stale: the write hole)
# and is killed; node 1 rewrites the operation from its records: the dead node's write is
# whole, scrub finds no mismatch, node 1 serves on. The failover kill matrix
# (tests/guest/suites/failover.sh) covers every step and write kind.
# shellcheck disable=SC1091
. /amf/lib/ktap.sh
. /amf/lib/raid.sh
. /amf/lib/cluster.sh

CL=amftest
ID=$(cluster_node_id)
U5=5a5a5a5a-0000-4000-8000-000000000005
CHUNK=64
LEN5=$((8192 * 3))
BS=8
B=0
bar() { B=$((B + 1)); cluster_barrier $B >"$KTAP_TMP/bar" 2>&1 || ktap_diag "barrier $B failed"; }
rst() { dmsetup status r5 | awk -v f="$1" '{ for (i = 1; i <= NF; i++) if ($i == "replication") break; print $(i + f) }'; }

if [ "$AMF_NODE" -eq 1 ]; then ktap_plan 6; else ktap_plan 8; fi
amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load" $? "$(cat "$KTAP_TMP/ld")"
ktap_check "cluster up" cluster_start "$CL"
bar
slices() {
	i=0
	for d in vda vdb vdc vdd; do
		dm_create "a$i" "0 32768 linear /dev/$d 0" || return 1
		i=$((i + 1))
	done
	[ "$AMF_NODE" -ne 0 ] || amfctl format --level raid5 --chunk 32K --uuid "$U5" --size 4M \
		/dev/mapper/a0 /dev/mapper/a1 /dev/mapper/a2 /dev/mapper/a3
}
ktap_check "slices" slices
bar
create() {
	echo "smoke-secret-0123456789" | amfctl key-add dm-amf:smoke || return 1
	kmsg_mark
	dm_create r5 "0 $LEN5 amf raid5 13 $CHUNK group $U5 cluster $CL node $ID peers 2 1@10.199.0.1:7790 2@10.199.0.2:7790 auth_key dm-amf:smoke 4 /dev/mapper/a0 8192 /dev/mapper/a1 8192 /dev/mapper/a2 8192 /dev/mapper/a3 8192" ||
		{ echo "$DM_OUT"; dmesg_since_mark | tail; return 1; }
	dmsetup table r5
	until_ok 30 sh -c '[ "$(dmsetup status r5 | awk "{for(i=1;i<=NF;i++) if (\$i==\"replication\") print \$(i+1)}")" = 1 ]'
	rc=$?
	dmsetup status r5
	return $rc
}
ktap_check "created with peers; connected both ways" create
bar
wr() {
	amf-iotool write --dev /dev/mapper/r5 --seed "$ID" --gen 1 --bs $BS --every 2 --phase "$AMF_NODE" --count 2048 || return 1
	dmsetup status r5
	[ "$(rst 3)" -gt 0 ]
}
ktap_check "interleaved writes replicate (records sent)" wr
bar
if [ "$AMF_NODE" -eq 1 ]; then
	dmsetup message r5 0 fail_after data
	amf-iotool write --dev /dev/mapper/r5 --seed "$ID" --gen 2 --bs $BS --start 64 --count $BS >/tmp/bg.log 2>&1 &
	until_ok 30 sh -c 'dmesg | grep -q "stopped dead after data"'
	ktap_result "stopped dead after data" $? "$(dmesg | grep 'stopped dead')"
	bar
	touch /tmp/amf-killme
	ktap_done
fi
bar
takeover() {
	until_ok 60 sh -c '[ "$(dmsetup status r5 | awk "{for(i=1;i<=NF;i++) if (\$i==\"replication\") print \$(i+7)}")" -ge 1 ]'
	rc=$?
	dmsetup status r5
	dmesg | grep -E "dm-amf|cluster:" | tail -8
	return $rc
}
ktap_check "node 2 died mid-write: its operation rewritten by node 1" takeover
LOST=0 MISMATCH=0
verify() {
	amf-iotool write --dev /dev/mapper/r5 --seed "$ID" --gen 3 --bs $BS --start 0 --count 64 || return 1
	# Node 2's acked blocks (gen 1, odd blocks) and its in-flight one (gen 2, or gen 1 if it
	# did not land).
	amf-iotool verify --dev /dev/mapper/r5 --seed 2 --gen 1 --bs $BS --every 2 --phase 1 --start 128 --count 1920 ||
		LOST=1
	amf-iotool verify-any --dev /dev/mapper/r5 --seeds 2 --max-gen 2 --count $BS --start 64 || LOST=1
	scrub_ok raid5 $CHUNK $LEN5 /dev/mapper/a0:8192 /dev/mapper/a1:8192 /dev/mapper/a2:8192 /dev/mapper/a3:8192 ||
		MISMATCH=1
	[ $LOST -eq 0 ] && [ $MISMATCH -eq 0 ]
}
ktap_check "node 1 serves on; the dead node's acked and in-flight writes whole, parity clean" verify
ktap_diag "SUMMARY: failover (smoke): 1 kill points, $LOST lost acked writes, $MISMATCH parity mismatches, max takeover $(rst 8) ms"
teardown() { dmsetup remove r5 && dm_remove_all && cluster_stop; }
ktap_check "volume removed (replication stopped), cluster stopped" teardown
ktap_done
