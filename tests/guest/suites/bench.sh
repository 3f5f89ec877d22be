# SPDX-License-Identifier: GPL-2.0
# `make bench`: amf against its peers on the same four member disks in the same guest, fio
# (libaio, direct) for a few seconds per case, one line per case:
#   bench: <level>-<seq|rand>-<read|write> amf/<peer> = <ratio>
# Peers: dm-striped for raid0, dm-raid (md) raid1 and raid10 for the mirrors, dm-raid raid5_ls
# and raid6_nc for raid5 and raid6. Not pass/fail: the KTAP results only say that each case ran.
. /amf/lib/ktap.sh

SECS=${AMF_BENCH_SECS:-5}
DISKS="/dev/vda /dev/vdb /dev/vdc /dev/vdd"
CHUNK=1024 # 512 KiB
M=$(dev_sectors vda)
ROWS=$(( (M - 8192) / CHUNK ))

# fio_case DEV RW BS DEPTH: prints KiB/s (bandwidth) for seq, IOPS for rand (terse v3 fields).
fio_case() {
	_out=$(fio --name=b --filename="$1" --direct=1 --ioengine=libaio --rw="$2" --bs="$3" \
		--iodepth="$4" --numjobs=1 --time_based --runtime="$SECS" --ramp_time=1 \
		--randseed=1 --output-format=terse --terse-version=3 2>/dev/null) || return 1
	echo "$_out" | awk -F';' -v rw="$2" '{
		if (rw ~ /read/) { bw = $7; iops = $8 } else { bw = $48; iops = $49 }
		if (rw ~ /^rand/) print iops; else print bw }'
}

# measure NAME TABLE: runs the four workloads on a fresh device, prints "sw sr rw rr". Its
# dmsetup status after the run goes to stderr, a diagnostic (members still A, md not resyncing).
measure() {
	dm_create "$1" "$2" || { echo "create $1 failed: $DM_OUT" >&2; dmesg | tail -n 5 >&2; return 1; }
	_d=/dev/mapper/$1
	_sw=$(fio_case $_d write 1M 4) && _sr=$(fio_case $_d read 1M 4) &&
		_rw=$(fio_case $_d randwrite 4k 16) && _rr=$(fio_case $_d randread 4k 16)
	_rc=$?
	echo "status $1: $(dmsetup status "$1")" >&2
	dmsetup remove "$1"
	[ $_rc -eq 0 ] && echo "$_sw $_sr $_rw $_rr"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

# compare LEVEL PEER AMF_TABLE PEER_TABLE
compare() {
	_a=$(measure amfb "$3") || return 1
	_p=$(measure peer "$4") || return 1
	report "$1" "$2" $_a $_p
}

# report LEVEL PEER A_SW A_SR A_RW A_RR P_SW P_SR P_RW P_RR: the bench: lines.
report() {
	echo "bench: $1-seq-write amf/$2 = $(ratio $3 $7)"
	echo "bench: $1-seq-read amf/$2 = $(ratio $4 $8)"
	echo "bench: $1-rand-write amf/$2 = $(ratio $5 $9)"
	echo "bench: $1-rand-read amf/$2 = $(ratio $6 ${10})"
	echo "# $1 amf: seq-write ${3} KiB/s, seq-read ${4} KiB/s, rand-write ${5} IOPS, rand-read ${6} IOPS"
	echo "# $1 $2: seq-write ${7} KiB/s, seq-read ${8} KiB/s, rand-write ${9} IOPS, rand-read ${10} IOPS"
}

pairs() { for d in $DISKS; do printf ' %s %s' "$d" 8192; done; }
mdpairs() { for d in $DISKS; do printf ' - %s' "$d"; done; }

# dm-raid raid10 takes its layout from the metadata devices only (without them md sees layout 0
# and refuses), so its members get one: dm-linear slices of each disk, metadata in the first
# 4 MiB (where amf's members have their offset), data after it.
md_meta_up() {
	_i=0
	for d in $DISKS; do
		dm_create mm$_i "0 8192 linear $d 0" || return 1
		dm_create md$_i "0 $((M - 8192)) linear $d 8192" || return 1
		_i=$((_i + 1))
	done
}
md_meta_down() { for i in 0 1 2 3; do dmsetup remove mm$i md$i 2>/dev/null; done; }
mdmeta() { for i in 0 1 2 3; do printf ' /dev/mapper/mm%s /dev/mapper/md%s' $i $i; done; }

# zero_disks: every member disk all zeroes. amf raid5/raid6 need members whose parity is
# consistent (Documentation/table-syntax.rst); each raid5/raid6 run, amf's and md's, starts from
# the same all-zero disks.
zero_disks() {
	for d in $DISKS; do
		dd if=/dev/zero of="$d" bs=1M count=$((M / 2048)) oflag=direct conv=notrunc status=none ||
			{ echo "zeroing $d failed"; return 1; }
	done
}

# parity_compare LEVEL PEER AMF_TABLE PEER_TABLE: compare, the disks zeroed before each volume.
parity_compare() {
	zero_disks || return 1
	_a=$(measure amfb "$3") || return 1
	zero_disks || return 1
	_p=$(measure peer "$4") || return 1
	report "$1" "$2" $_a $_p
}

ktap_plan 6
ktap_check "load dm-amf" amf_load

LEN0=$((ROWS * CHUNK * 4))
ktap_check "raid0 vs dm-striped" compare raid0 dm-striped \
	"0 $LEN0 amf raid0 1 $CHUNK 4$(pairs)" "0 $LEN0 striped 4 $CHUNK$(pairs)"

LEN1=$((ROWS * CHUNK))
ktap_check "raid1 vs dm-raid raid1" compare raid1 md-raid1 \
	"0 $LEN1 amf raid1 1 $CHUNK 4$(pairs)" "0 $LEN1 raid raid1 2 0 nosync 4$(mdpairs)"

LEN10=$((ROWS * CHUNK * 2))
raid10_compare() {
	md_meta_up || { md_meta_down; return 1; }
	compare raid10 md-raid10 "0 $LEN10 amf raid10 1 $CHUNK 4$(pairs)" \
		"0 $LEN10 raid raid10 6 $CHUNK nosync raid10_copies 2 raid10_format near 4$(mdmeta)"
	_r=$?
	md_meta_down
	return $_r
}
ktap_check "raid10 vs dm-raid raid10" raid10_compare

# raid5 and raid6: md without metadata devices, so it starts in sync (no resync competes with
# the run; 'nosync' for raid5 as for raid1; dm-raid refuses 'nosync' only for a new raid6 with
# metadata). md's members start at sector 0, amf's at 8192, both on the same disks.
# raid6_nc is md's left-symmetric P rotation with Q before P instead of after it: the closest
# of dm-raid's raid6 layouts to amf's (dm-raid has no name for md's raid6 left-symmetric).
LEN5=$((ROWS * CHUNK * 3))
ktap_check "raid5 vs dm-raid raid5_ls" parity_compare raid5 md-raid5 \
	"0 $LEN5 amf raid5 1 $CHUNK 4$(pairs)" "0 $LEN5 raid raid5_ls 2 $CHUNK nosync 4$(mdpairs)"

LEN6=$((ROWS * CHUNK * 2))
ktap_check "raid6 vs dm-raid raid6_nc" parity_compare raid6 md-raid6 \
	"0 $LEN6 amf raid6 1 $CHUNK 4$(pairs)" "0 $LEN6 raid raid6_nc 1 $CHUNK 4$(mdpairs)"
ktap_done
