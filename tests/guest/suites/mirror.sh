# SPDX-License-Identifier: GPL-2.0
# Mirrored levels (raid1, raid10 near): every copy of every chunk lands where
# Documentation/table-syntax.rst says, byte for byte, checked by reading the members directly
# (with the page cache dropped) against what the device returns; reads spread over copies
# still return the written data; flush and discard reach every raid1 member; bad mirrored
# tables are refused as documented.
. /amf/lib/ktap.sh

ktap_plan 14

ktap_check "load dm-amf" amf_load

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }


# check_copies NAME CHUNK COPIES "DEV:OFF ..." CHUNKS: for every logical chunk c and copy k,
# device chunk p = c*COPIES + k sits on member p % n at OFF + (p / n) * CHUNK (raid1 is the
# case COPIES = n, where p % n = k and p / n = c).
check_copies() {
	_dmn=$1 _cs=$2 _copies=$3 _members=$4 _chunks=$5
	set --
	for _m in $_members; do set -- "$@" --member "$_m"; done
	drop_caches
	# In one process (a dd per chunk and copy made this suite take minutes).
	amf-iotool copies --target "/dev/mapper/$_dmn" --chunk "$_cs" --copies "$_copies" \
		--chunks "$_chunks" "$@"
}

# mirror_case NAME TABLE CHUNK COPIES MEMBERS CHUNKS SEED: create, write, verify, check copies.
mirror_case() {
	dm_create "$1" "$2" || { echo "create failed: $DM_OUT"; return 1; }
	_len=$(blockdev --getsz "/dev/mapper/$1")
	amf-iotool write --dev "/dev/mapper/$1" --seed "$7" --gen 1 || return 1
	# Rewrite a band in the middle with small unaligned writes: every copy must follow.
	amf-iotool write --dev "/dev/mapper/$1" --seed "$7" --gen 2 --start 3 --count $((_len / 3)) --bs 8 || return 1
	amf-iotool verify --dev "/dev/mapper/$1" --seed "$7" --gen 2 --start 3 --count $((_len / 3)) --bs 8 || return 1
	check_copies "$1" "$3" "$4" "$5" "$6" || return 1
	dmsetup remove "$1"
}

ktap_check "raid1 x3, chunk 8, offsets 0/8/2048: every member holds every chunk" \
	mirror_case m1 "0 2048 amf raid1 1 8 3 /dev/vda 0 /dev/vdb 8 /dev/vdc 2048" \
	8 3 "/dev/vda:0 /dev/vdb:8 /dev/vdc:2048" 256 51
ktap_check "raid1 x2, chunk 128" \
	mirror_case m2 "0 4096 amf raid1 1 128 2 /dev/vdd 0 /dev/vde 4096" \
	128 2 "/dev/vdd:0 /dev/vde:4096" 32 52
ktap_check "raid10 x4 near 2, chunk 8" \
	mirror_case r1 "0 2048 amf raid10 1 8 4 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0" \
	8 2 "/dev/vda:0 /dev/vdb:0 /dev/vdc:0 /dev/vdd:0" 256 53
ktap_check "raid10 x3 near 2 (odd member count), chunk 16, offsets" \
	mirror_case r2 "0 1536 amf raid10 1 16 3 /dev/vda 16 /dev/vdb 0 /dev/vde 8" \
	16 2 "/dev/vda:16 /dev/vdb:0 /dev/vde:8" 96 54
ktap_check "raid10 x5 near 3 (raid10_copies 3), chunk 8" \
	mirror_case r3 "0 1000 amf raid10 3 8 raid10_copies 3 5 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0 /dev/vde 0" \
	8 3 "/dev/vda:0 /dev/vdb:0 /dev/vdc:0 /dev/vdd:0 /dev/vde:0" 125 55

# Concurrent writers: fio, 4 jobs on disjoint regions of a raid10 volume, random 4 KiB..64 KiB
# direct writes at queue depth 8, each block verified (crc32c) after the run; then every copy
# of every chunk must still be identical.
fio_stress() {
	command -v fio >/dev/null || { echo "fio not in the initramfs (vm.sh --extra fio)"; return 1; }
	dm_create fs "0 16384 amf raid10 1 16 5 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0 /dev/vde 0" ||
		{ echo "create failed: $DM_OUT"; return 1; }
	fio --name=mirror --filename=/dev/mapper/fs --direct=1 --ioengine=libaio --iodepth=8 \
		--rw=randwrite --bsrange=4k-64k --numjobs=4 --size=2M --offset_increment=2M \
		--verify=crc32c --verify_fatal=1 --randseed=4242 --group_reporting >/tmp/fio.out 2>&1
	_rc=$?
	grep -E "err=|WRITE:|READ:|verify" /tmp/fio.out | head -8
	[ $_rc -eq 0 ] || { tail -20 /tmp/fio.out; return 1; }
	check_copies fs 16 2 "/dev/vda:0 /dev/vdb:0 /dev/vdc:0 /dev/vdd:0 /dev/vde:0" 512 || return 1
	dmsetup remove fs
}
ktap_check "raid10: 4 concurrent fio writers with crc32c verify; copies identical after" fio_stress

table_echo() {
	dm_create t "0 1024 amf raid10 3 8 raid10_copies 2 2 /dev/vda 0 /dev/vdb 0" || return 1
	_t=$(dmsetup table t)
	echo "$_t"
	dmsetup remove t
	[ "$_t" = "0 1024 amf raid10 3 8 raid10_copies 2 2 $(dev_majmin vda) 0 $(dev_majmin vdb) 0" ]
}
ktap_check "dmsetup table echoes raid10_copies" table_echo

# A raid1 flush reaches every member; a discard reaches every member with the whole range.
stat_field() { for d in vda vdb vdc; do awk -v f="$2" '{ print $f }' /sys/block/$d/stat; done | tr '\n' ' '; }
flush_discard() {
	dm_create f "0 2048 amf raid1 1 8 3 /dev/vda 0 /dev/vdb 8 /dev/vdc 2048" || return 1
	_b=$(stat_field x 16)
	amf-iotool write --dev /dev/mapper/f --seed 60 --gen 1 --start 0 --count 8 || return 1
	_a=$(stat_field x 16)
	echo "flushes before: $_b after: $_a"
	set -- $_a
	for _x in $_b; do [ "$1" -gt "$_x" ] || { echo "a member got no flush"; return 1; }; shift; done
	_b=$(stat_field x 14)
	blkdiscard -o $((64 * 512)) -l $((128 * 512)) /dev/mapper/f || return 1
	_a=$(stat_field x 14)
	echo "discarded sectors before: $_b after: $_a (want +128 on each)"
	set -- $_a
	for _x in $_b; do [ "$1" -eq $((_x + 128)) ] || { echo "a member did not discard exactly 128 sectors"; return 1; }; shift; done
	dmsetup remove f
}
ktap_check "raid1: fsync flushes every member; blkdiscard discards the range on each" flush_discard

# dm_refused MESSAGE TABLE (lib/ktap.sh): refused with the documented message.
ktap_check "raid1 with one member refused" dm_refused "Too few devices for the RAID level" \
	"0 1024 amf raid1 1 8 1 /dev/vda 0"
ktap_check "raid10 copies above the member count refused" dm_refused "Invalid raid10_copies" \
	"0 1024 amf raid10 3 8 raid10_copies 3 2 /dev/vda 0 /dev/vdb 0"
ktap_check "raid10_copies on raid1 refused" dm_refused "raid10_copies is only valid for raid10" \
	"0 1024 amf raid1 3 8 raid10_copies 2 2 /dev/vda 0 /dev/vdb 0"
ktap_check "raid1 length not a multiple of the chunk refused" \
	dm_refused "Target length is not a multiple of the full stripe" "0 1020 amf raid1 1 8 2 /dev/vda 0 /dev/vdb 0"
ktap_check "no device left behind" sh -c '[ "$(dmsetup ls 2>&1)" = "No devices found" ]'
ktap_done
