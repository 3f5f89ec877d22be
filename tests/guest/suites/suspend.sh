# SPDX-License-Identifier: GPL-2.0
# suspend/resume/reload keep data intact; flush and discard pass through to the members;
# `dmsetup status` and `dmsetup table` print what Documentation/table-syntax.rst says.
. /amf/lib/ktap.sh

CHUNK=128
N=4
OFF=2048
LEN=$((CHUNK * N * 100))  # 12800 sectors per member
LEN2=$((CHUNK * N * 120)) # grown by 20 stripes
DEVS="vda vdb vdc vdd"
DEV=/dev/mapper/s

pairs_path=
pairs_mm=
members=
for d in $DEVS; do
	pairs_path="$pairs_path /dev/$d $OFF"
	pairs_mm="$pairs_mm $(dev_majmin $d) $OFF"
	members="$members --member /dev/$d:$OFF"
done
pairs_path=${pairs_path# }
pairs_mm=${pairs_mm# }
TABLE="0 $LEN amf raid0 1 $CHUNK $N $pairs_path"

# stat field F (1-based) of a disk, summed over the members
stat_sum() {
	_s=0
	for d in $DEVS; do _s=$((_s + $(awk -v f="$1" '{ print $f }' /sys/block/$d/stat))); done
	echo $_s
}
stat_each() { for d in $DEVS; do awk -v f="$1" '{ printf "%s ", $f }' /sys/block/$d/stat; done; }

verify_all() { amf-iotool verify --dev $DEV --seed 41 --gen 1 --count $LEN; }
expect_eq() {
	if [ "$1" = "$2" ]; then echo "$1"; else echo "got:  $1"; echo "want: $2"; return 1; fi
}

ktap_plan 19

amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"
if dm_create s "$TABLE"; then ktap_ok "create: $TABLE"; else ktap_fail "create: $TABLE" "$DM_OUT"; fi

ktap_check "dmsetup table prints the constructor arguments, devices as major:minor" \
	expect_eq "$(dmsetup table s)" "0 $LEN amf raid0 1 $CHUNK $N $pairs_mm"
ktap_check "dmsetup status: raid0 $N AAAA $LEN/$LEN idle 0" \
	expect_eq "$(dmsetup status s)" "0 $LEN amf raid0 $N AAAA $LEN/$LEN idle 0"

ktap_check "write a seeded pattern over the whole device" amf-iotool write --dev $DEV --seed 41 --gen 1 --bs 1000
ktap_check "members hold it at the documented offsets (stripes 0-1, 99)" sh -c "
	amf-iotool members --chunk $CHUNK --len $LEN $members --seed 41 --gen 1 --start 0 --count $((CHUNK * N * 2)) &&
	amf-iotool members --chunk $CHUNK --len $LEN $members --seed 41 --gen 1 --start $((LEN - CHUNK * N)) --count $((CHUNK * N))"

# I/O issued while suspended waits for the resume, then completes correctly.
suspended_io() {
	dmsetup suspend s || return 1
	dmsetup info s | grep -q SUSPENDED || { echo "not SUSPENDED:"; dmsetup info s; dmsetup resume s; return 1; }
	amf-iotool verify --dev $DEV --seed 41 --gen 1 --start 0 --count 64 >"$KTAP_TMP/bg" 2>&1 &
	_pid=$!
	sleep 1
	_r=0
	if ! kill -0 $_pid 2>/dev/null; then
		echo "a read completed while the device was suspended"
		_r=1
	fi
	dmsetup resume s || _r=1
	wait $_pid || { echo "the held read failed after resume:"; cat "$KTAP_TMP/bg"; _r=1; }
	dmsetup info s | grep -q ACTIVE || _r=1
	return $_r
}
ktap_check "suspend holds I/O, resume releases it" suspended_io
ktap_check "data intact after suspend/resume" verify_all

ktap_check "reload the same table + resume" sh -c "dmsetup reload s --table '$TABLE' && dmsetup resume s"
ktap_check "data intact after reload" verify_all
ktap_check "reload naming members by major:minor + resume" \
	sh -c "dmsetup reload s --table '0 $LEN amf raid0 1 $CHUNK $N $pairs_mm' && dmsetup resume s &&
		[ \"\$(dmsetup table s)\" = '0 $LEN amf raid0 1 $CHUNK $N $pairs_mm' ]"
ktap_check "data intact after the major:minor reload" verify_all

# Compatible change: grow by 20 full stripes (raid0 mapping does not depend on the length).
ktap_check "reload grown to $LEN2 sectors + resume; table and status follow" sh -c "
	dmsetup reload s --table '0 $LEN2 amf raid0 1 $CHUNK $N $pairs_path' && dmsetup resume s &&
	[ \"\$(dmsetup table s)\" = '0 $LEN2 amf raid0 1 $CHUNK $N $pairs_mm' ] &&
	[ \"\$(dmsetup status s)\" = '0 $LEN2 amf raid0 $N AAAA $LEN2/$LEN2 idle 0' ] &&
	[ \$(blockdev --getsz $DEV) -eq $LEN2 ]"
ktap_check "old data intact after growing; new area writable, lands where documented" sh -c "
	amf-iotool verify --dev $DEV --seed 41 --gen 1 --count $LEN &&
	amf-iotool write --dev $DEV --seed 41 --gen 2 --start $LEN --count $((LEN2 - LEN)) &&
	amf-iotool verify --dev $DEV --seed 41 --gen 2 --start $LEN --count $((LEN2 - LEN)) &&
	amf-iotool members --chunk $CHUNK --len $LEN2 $members --seed 41 --gen 2 --start $LEN --count $((CHUNK * N * 2))"

# Flush: an fsync of the dm device must reach every member (flush counter, stat field 16).
flush_test() {
	cat /sys/block/vda/queue/write_cache
	_b=$(stat_each 16)
	amf-iotool write --dev $DEV --seed 41 --gen 3 --start 0 --count 8 || return 1 # fsyncs
	_a=$(stat_each 16)
	echo "member flushes before: $_b after: $_a"
	set -- $_a
	for _x in $_b; do
		[ "$1" -gt "$_x" ] || { echo "a member got no flush"; return 1; }
		shift
	done
	sync && blockdev --flushbufs $DEV
}
ktap_check "fsync of the device flushes every member; sync, blockdev --flushbufs succeed" flush_test

# Discard: 10 full stripes from stripe 40 (chunk aligned); members must see exactly that many
# discarded sectors (stat field 14), the range must read back as zeroes (the rig's disks punch
# holes), and the data around it must be intact.
DS=$((CHUNK * N * 40))
DC=$((CHUNK * N * 10))
discard_test() {
	echo "discard_max_bytes: $(cat /sys/block/dm-$(dmsetup info -c --noheadings -o minor s)/queue/discard_max_bytes)"
	_b=$(stat_sum 14)
	blkdiscard -o $((DS * 512)) -l $((DC * 512)) $DEV || return 1
	_a=$(stat_sum 14)
	echo "member discard sectors: before $_b after $_a (want +$DC)"
	[ $((_a - _b)) -eq $DC ]
}
ktap_check "blkdiscard passes down: members discard exactly the range" discard_test
ktap_check "discarded range reads as zeroes" amf-iotool zero --dev $DEV --start $DS --count $DC
ktap_check "data around the discarded range intact" sh -c "
	amf-iotool verify --dev $DEV --seed 41 --gen 1 --start 8 --count $((DS - 8)) &&
	amf-iotool verify --dev $DEV --seed 41 --gen 1 --start $((DS + DC)) --count $((LEN - DS - DC)) &&
	amf-iotool verify --dev $DEV --seed 41 --gen 3 --start 0 --count 8"

ktap_check "remove; no device left" sh -c 'dmsetup remove s && [ "$(dmsetup ls 2>&1)" = "No devices found" ]'

ktap_done
