# SPDX-License-Identifier: GPL-2.0
# `make bench`: amf against its peers on the same four member disks in the same guest, fio
# (libaio, direct) for a few seconds per case, one line per case:
#   bench: <level>-<seq|rand>-<read|write> amf/<peer> = <ratio>
# Peers: dm-striped for raid0, dm-raid (md) raid1 and raid10 for the mirrors. Not pass/fail:
# the KTAP results only say that each case ran.
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

# measure NAME TABLE: runs the four workloads on a fresh device, prints "sw sr rw rr".
measure() {
	dm_create "$1" "$2" || { echo "create $1 failed: $DM_OUT" >&2; return 1; }
	_d=/dev/mapper/$1
	_sw=$(fio_case $_d write 1M 4) && _sr=$(fio_case $_d read 1M 4) &&
		_rw=$(fio_case $_d randwrite 4k 16) && _rr=$(fio_case $_d randread 4k 16)
	_rc=$?
	dmsetup remove "$1"
	[ $_rc -eq 0 ] && echo "$_sw $_sr $_rw $_rr"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

# compare LEVEL PEER AMF_TABLE PEER_TABLE
compare() {
	_a=$(measure amfb "$3") || return 1
	_p=$(measure peer "$4") || return 1
	set -- "$1" "$2" $_a $_p
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

ktap_plan 4
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
ktap_done
