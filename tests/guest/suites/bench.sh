# SPDX-License-Identifier: GPL-2.0
# `make bench`: amf against its peers on the same four member disks in the same guest, fio
# (libaio, direct) for a few seconds per case, one line per case:
#   bench: <level>-<seq|rand>-<read|write> amf/<peer> = <ratio>
# Peers: dm-striped for raid0, dm-raid (md) raid1 and raid10 for the mirrors, dm-raid raid5_ls
# and raid6_nc for raid5 and raid6. Not pass/fail: the KTAP results only say that each case ran.
#
# Then the cost of the write-intent bitmap on raid5 (same disks, member sizes and chunk): 4 KiB
# random writes (qd 16) and full-stripe sequential writes (1.5 MiB, qd 4) on amf without
# `group` (no bitmap), amf with `group` (its default region, 64 MiB, and 1 MiB), md raid5
# (mdadm, left-symmetric) without bitmap, with an internal bitmap (64 MiB and 1 MiB chunks)
# and with PPL:
#   bench: bitmap-<4k-randwrite|full-stripe> <amf-bitmap|amf-bitmap-1m>/amf = <ratio>
#   bench: bitmap-<4k-randwrite|full-stripe> <md-bitmap|md-bitmap-1m|md-ppl>/md = <ratio>
# and the raw numbers with member writes per write.
#
# Then the cost of the partial parity log: the same two workloads on a DEGRADED raid5 (member
# 3, /dev/vdd, missing from the start) on amf without `group` (no bitmap, no log), amf with
# `group` (bitmap and log), md without bitmap and md with --consistency-policy=ppl:
#   bench: ppl-<4k-randwrite|full-stripe> amf-degraded-ppl/amf-degraded = <ratio>
#   bench: ppl-<4k-randwrite|full-stripe> md-degraded-ppl/md-degraded = <ratio>
# and the raw numbers with member writes and reads and amf's log headers per write.
#
# amf.env=AMF_BENCH_ONLY=<part>[+<part>...] runs only the parts named (peers, bitmap, ppl),
# the others are skipped. A check fails only when a tool fails or a set-up or data check
# does (the amf groups' parity is scrubbed after their runs).
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

ktap_plan $((6 + 7 + 4))
ktap_check "load dm-amf" amf_load

# part PART: whether PART (peers, bitmap, ppl) runs: every part without AMF_BENCH_ONLY
# (amf.env), else the parts it names, '+'-separated.
part() {
	case "+${AMF_BENCH_ONLY:-$1}+" in
	*"+$1+"*) return 0 ;;
	esac
	return 1
}

# part_check PART NAME CMD...: ktap_check when PART runs, else a skip.
part_check() {
	_part=$1
	shift
	if part "$_part"; then
		ktap_check "$@"
	else
		ktap_skip "$1" "AMF_BENCH_ONLY=$AMF_BENCH_ONLY: not the $_part part"
	fi
}

# md_check PART NAME CMD...: part_check, a skip without mdadm in the guest.
md_check() {
	if part "$1" && ! command -v mdadm >/dev/null; then
		ktap_skip "$2" "no mdadm in the guest (vm.sh --extra mdadm)"
	else
		part_check "$@"
	fi
}

peer_check() { part_check peers "$@"; }

LEN0=$((ROWS * CHUNK * 4))
peer_check "raid0 vs dm-striped" compare raid0 dm-striped \
	"0 $LEN0 amf raid0 1 $CHUNK 4$(pairs)" "0 $LEN0 striped 4 $CHUNK$(pairs)"

LEN1=$((ROWS * CHUNK))
peer_check "raid1 vs dm-raid raid1" compare raid1 md-raid1 \
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
peer_check "raid10 vs dm-raid raid10" raid10_compare

# raid5 and raid6: md without metadata devices, so it starts in sync (no resync competes with
# the run; 'nosync' for raid5 as for raid1; dm-raid refuses 'nosync' only for a new raid6 with
# metadata). md's members start at sector 0, amf's at 8192, both on the same disks.
# raid6_nc is md's left-symmetric P rotation with Q before P instead of after it: the closest
# of dm-raid's raid6 layouts to amf's (dm-raid has no name for md's raid6 left-symmetric).
LEN5=$((ROWS * CHUNK * 3))
peer_check "raid5 vs dm-raid raid5_ls" parity_compare raid5 md-raid5 \
	"0 $LEN5 amf raid5 1 $CHUNK 4$(pairs)" "0 $LEN5 raid raid5_ls 2 $CHUNK nosync 4$(mdpairs)"

LEN6=$((ROWS * CHUNK * 2))
peer_check "raid6 vs dm-raid raid6_nc" parity_compare raid6 md-raid6 \
	"0 $LEN6 amf raid6 1 $CHUNK 4$(pairs)" "0 $LEN6 raid raid6_nc 1 $CHUNK 4$(mdpairs)"

# ------------------------------------------------------------------ write-intent bitmap
# Seven raid5 volumes over the same four disks, one after the other, each over zeroed disks:
#   amf            the raid5 table above: no `group`, no bitmap (and no superblocks);
#   amf-bitmap     a group formatted by `amfctl format` (data at 4 MiB, the same size), the
#                  table with `group <uuid>`: the bitmap at the default region (64 MiB:
#                  8 regions over the 508 MiB of each member);
#   amf-bitmap-1m  the same with `--region 1M` (508 regions): bits flip 64 times as often;
#   md             mdadm raid5 over the same disks, left-symmetric (amf's layout), 512 KiB
#                  chunk, data at 4 MiB, the same size per member, --assume-clean (no resync),
#                  --bitmap=none: md's own reference;
#   md-bitmap      the same with --bitmap=internal --bitmap-chunk=64M (as amf's default);
#   md-bitmap-1m   --bitmap=internal --bitmap-chunk=1M;
#   md-ppl         --consistency-policy=ppl (partial parity log, md's raid5 write-hole answer).
# Each workload runs on a freshly loaded volume (amf: created again; md: stopped and assembled
# again), so that every run starts with every bit clear and pays for setting its bits; fio
# runs without a ramp for the same reason (the bits are set by the first writes into each
# region). The member disks' write counters (/sys/block/vdX/stat) give the member writes per
# fio write: data and parity, plus the bitmap's (amf: a 4 KiB FUA write to each of the four
# members per bit set) or PPL's.
BM_UUID=b17a5e00-0000-4000-8000-000000000005
BM_DATA=$((ROWS * CHUNK))      # sectors per member
BM_STRIPE_K=$((CHUNK * 3 / 2)) # KiB of data per stripe: 1536
export MDADM_NO_UDEV=1

# bm_io: writes, reads and cache flushes completed by the four member disks so far
# ("<writes> <reads> <flushes>"; the flushes are the stat file's 16th field, the disks have a
# volatile write cache, so the block layer passes every flush on).
bm_io() {
	_s=0 _r=0 _f=0
	for d in $DISKS; do
		# shellcheck disable=SC2046 # the stat fields
		set -- $(cat "/sys/block/${d#/dev/}/stat")
		_s=$((_s + $5)) _r=$((_r + $1)) _f=$((_f + ${16:-0}))
	done
	echo "$_s $_r $_f"
}

# bm_run KIND DEV: one workload (rand: 4 KiB random writes, qd 16; seq: full-stripe sequential
# writes, qd 4), no ramp. Sets BM_V (IOPS for rand, KiB/s for seq), BM_N (fio's writes),
# BM_PW, BM_PR and BM_PF (member writes, reads and cache flushes per fio write).
bm_run() {
	case $1 in
	rand) _rw=randwrite _bk=4 _qd=16 ;;
	*) _rw=write _bk=$BM_STRIPE_K _qd=4 ;;
	esac
	_io0=$(bm_io)
	_out=$(fio --name=b --filename="$2" --direct=1 --ioengine=libaio --rw=$_rw --bs=${_bk}k \
		--iodepth=$_qd --numjobs=1 --time_based --runtime="$SECS" --randseed=1 \
		--output-format=terse --terse-version=3 2>"$KTAP_TMP/fio.err") ||
		{ echo "fio $_rw on $2 failed:"; cat "$KTAP_TMP/fio.err"; return 1; }
	_io1=$(bm_io)
	# terse v3: write KiB in field 47, bandwidth (KiB/s) 48, IOPS 49.
	# shellcheck disable=SC2046 # two words
	set -- $(echo "$_out" | awk -F';' -v r=$_rw '{ print (r == "randwrite" ? $49 : $48), $47 }')
	BM_V=$1
	BM_N=$(awk -v k="$2" -v b=$_bk 'BEGIN { printf "%d", k / b }')
	# shellcheck disable=SC2086 # three words each
	set -- $_io0 $_io1
	BM_PW=$(per_write $(($4 - $1)))
	BM_PR=$(per_write $(($5 - $2)))
	BM_PF=$(per_write $(($6 - $3)))
	[ -n "$BM_V" ] || { echo "no fio result: $_out"; return 1; }
}

# per_write COUNT: COUNT over the last bm_run's fio writes.
per_write() {
	awk -v m="$1" -v n="$BM_N" 'BEGIN { if (n > 0) printf "%.2f", m / n; else print "nan" }'
}

# bm_keep CFG KIND [NOTE]: stores BM_V and BM_PW as CFG's result for KIND, prints it.
bm_keep() {
	eval "BMV_$2_$1=\$BM_V BMP_$2_$1=\$BM_PW BMF_$2_$1=\$BM_PF BMN_$2_$1=\${3:-}"
	if [ "$2" = rand ]; then _u=IOPS; else _u=KiB/s; fi
	echo "$1 $2: $BM_V $_u, $BM_PW member writes and $BM_PF flushes per write${3:+, $3}"
}

# bm_expect DEV WANT: dmsetup status of DEV is WANT.
# bm_reload_clean TABLE STATUS: the volume loaded once more shows STATUS with no bit set,
# nothing to resync and nothing resynced (the removes cleared every bit), and goes again.
bm_reload_clean() {
	dm_create bm "$1" || { echo "create failed: $DM_OUT"; return 1; }
	_rc=0
	bm_expect bm "$2 0 0 0" || _rc=1
	dmsetup remove bm || _rc=1
	return $_rc
}

bm_expect() {
	_st=$(dmsetup status "$1" 2>&1)
	[ "$_st" = "$2" ] && return 0
	echo "status: $_st"
	echo "want:   $2"
	return 1
}

# bm_amf CFG GROUP [REGION]: the amf volume (GROUP yes: formatted, `group <uuid>`, REGION
# sectors or "" for amfctl's default), both workloads, then a scrub of the members.
bm_amf() {
	_cfg=$1 _grp=$2 _reg=${3:-}
	zero_disks || return 1
	_bm=
	if [ "$_grp" = yes ]; then
		# shellcheck disable=SC2086 # one word per member
		amfctl format --level raid5 --chunk $((CHUNK / 2))K --uuid "$BM_UUID" --size "$BM_DATA" \
			${_reg:+--region "$_reg"} $DISKS || return 1
		_devs=
		for d in $DISKS; do _devs="$_devs --dev $d:4M"; done
		# shellcheck disable=SC2086 # --dev words
		_tab=$(amfctl table --level raid5 --chunk $((CHUNK / 2))K --size "$LEN5" \
			--group "$BM_UUID" $_devs) || return 1
		_r=${_reg:-131072}
		_bm=" bitmap $(((BM_DATA + _r - 1) / _r))"
	else
		_tab="0 $LEN5 amf raid5 1 $CHUNK 4$(pairs)"
	fi
	echo "table: $_tab"
	_idle="0 $LEN5 amf raid5 4 AAAA $LEN5/$LEN5 idle 0"
	for _k in rand seq; do
		dm_create bm "$_tab" || { echo "create failed: $DM_OUT"; dmesg | tail -n 5; return 1; }
		# Every bit clear at the start: the previous remove cleared them.
		_rc=0
		bm_expect bm "$_idle${_bm:+$_bm 0 0 0}" || _rc=1
		[ $_rc -eq 0 ] && { bm_run $_k /dev/mapper/bm || _rc=1; }
		_st=$(dmsetup status bm)
		dmsetup remove bm || _rc=1
		echo "status after $_k: $_st"
		[ $_rc -eq 0 ] || return 1
		case $_st in "$_idle"*) ;; *) echo "members not all in sync, or not idle"; return 1 ;; esac
		_note=
		[ -z "$_bm" ] || _note="$(echo "$_st" | awk '{ print $(NF - 2) " of " $(NF - 3) }') regions dirty at the end"
		bm_keep "$_cfg" $_k "$_note"
	done
	# Loaded once more: no bit left behind by the removes (and no resync), then the members'
	# parity scrubbed offline.
	[ -z "$_bm" ] || bm_reload_clean "$_tab" "$_idle$_bm" || return 1
	for d in $DISKS; do blockdev --flushbufs "$d"; done
	echo 3 >/proc/sys/vm/drop_caches
	_devs=
	for d in $DISKS; do _devs="$_devs --dev $d:4M"; done
	# shellcheck disable=SC2086 # --dev words
	_o=$(amfctl scrub --level raid5 --chunk $((CHUNK / 2))K --size "$LEN5" $_devs 2>&1)
	_rc=$?
	echo "$_o" | tail -n 3
	return $_rc
}

# bm_md CFG POLICY MDADM_OPTIONS...: the md volume (/dev/md0; POLICY: its expected
# consistency_policy), both workloads.
bm_md() {
	_cfg=$1 _pol=$2
	shift 2
	if ! command -v mdadm >/dev/null; then
		echo "no mdadm in the guest (vm.sh --extra mdadm)"
		return 1
	fi
	zero_disks || return 1
	# shellcheck disable=SC2086 # one word per member
	mdadm --create /dev/md0 --run --level=5 --raid-devices=4 --chunk=$((CHUNK / 2)) \
		--layout=left-symmetric --metadata=1.2 --data-offset=4M --size=$((BM_DATA / 2)) \
		--assume-clean "$@" $DISKS 2>&1 || return 1
	for _k in rand seq; do
		if [ $_k = seq ]; then
			# shellcheck disable=SC2086 # one word per member
			mdadm -A /dev/md0 --run $DISKS 2>&1 || return 1
		fi
		_rc=0
		_sys=/sys/block/md0/md
		_got="$(cat $_sys/consistency_policy) $(cat $_sys/sync_action) $(blockdev --getsz /dev/md0)"
		[ -r $_sys/bitmap/chunksize ] && _got="$_got $(cat $_sys/bitmap/chunksize)"
		echo "md0: policy, sync action, size, bitmap chunk: $_got"
		case "$_got" in
		"$_pol idle $LEN5"*) ;;
		*) echo "want: $_pol idle $LEN5"; _rc=1 ;;
		esac
		[ $_rc -eq 0 ] && { bm_run $_k /dev/md0 || _rc=1; }
		mdadm --stop /dev/md0 2>&1 || _rc=1
		[ $_rc -eq 0 ] || return 1
		bm_keep "$_cfg" $_k
	done
}

part_check bitmap "raid5 bitmap cost: amf without group (no bitmap)" bm_amf amf no
part_check bitmap "raid5 bitmap cost: amf with group, default region" bm_amf amf_bitmap yes
part_check bitmap "raid5 bitmap cost: amf with group, 1 MiB region" \
	bm_amf amf_bitmap_1m yes 2048
md_check bitmap "raid5 bitmap cost: md without bitmap" bm_md md resync --bitmap=none
md_check bitmap "raid5 bitmap cost: md, internal bitmap, 64 MiB chunk" \
	bm_md md_bitmap bitmap --bitmap=internal --bitmap-chunk=64M
md_check bitmap "raid5 bitmap cost: md, internal bitmap, 1 MiB chunk" \
	bm_md md_bitmap_1m bitmap --bitmap=internal --bitmap-chunk=1M
md_check bitmap "raid5 bitmap cost: md with PPL" bm_md md_ppl ppl --consistency-policy=ppl

# cost_report PART PAIRS CONFIGS: the bench: lines "<PART>-<4k-randwrite|full-stripe> A/B"
# for each A:B of PAIRS, then the raw numbers of CONFIGS ("# <PART>-..."). A ratio of a volume
# that did not run is nan.
cost_report() {
	for _k in rand seq; do
		if [ $_k = rand ]; then _n=$1-4k-randwrite _u=IOPS; else _n=$1-full-stripe _u=KiB/s; fi
		for _p in $2; do
			_a=${_p%:*} _b=${_p#*:} _va='' _vb=''
			eval "_va=\${BMV_${_k}_$_a:-} _vb=\${BMV_${_k}_$_b:-}"
			_q=nan
			[ -z "$_va" ] || _q=$(ratio "$_va" "$_vb")
			echo "bench: $_n $(echo "$_a" | tr _ -)/$(echo "$_b" | tr _ -) = $_q"
		done
		for _c in $3; do
			_v='' _w='' _t=''
			eval "_v=\${BMV_${_k}_$_c:-} _w=\${BMP_${_k}_$_c:-} _f=\${BMF_${_k}_$_c:-}"
			eval "_t=\${BMN_${_k}_$_c:-}"
			[ -n "$_v" ] || { echo "# $_n $(echo "$_c" | tr _ -): no result"; continue; }
			echo "# $_n $(echo "$_c" | tr _ -): $_v $_u, $_w member writes and $_f flushes" \
				"per write${_t:+, $_t}"
		done
	done
}
if part bitmap; then
	cost_report bitmap "amf_bitmap:amf amf_bitmap_1m:amf md_bitmap:md md_bitmap_1m:md md_ppl:md" \
		"amf amf_bitmap amf_bitmap_1m md md_bitmap md_bitmap_1m md_ppl" | sed 's/^/# /'
fi

# ------------------------------------------------------------------ partial parity log
# Four raid5 volumes over the same four disks, one after the other, each over zeroed disks,
# all DEGRADED from the start: member 3 (/dev/vdd) is missing. It holds a data chunk in three
# rows out of four (left-symmetric: P is on member 3 in rows 0, 4, 8...):
#   amf-degraded      the raid5 table above with `- 8192` for member 3: no `group`, so no
#                     bitmap and no log;
#   amf-degraded-ppl  a group formatted as amf-bitmap's (all four disks, default region), its
#                     table with `-` for member 3: the constructor records member 3 failed at
#                     the first resume. Each write to a row whose member-3 chunk is data
#                     first writes a log entry (4 KiB header + partial parity, FUA) to
#                     members 0-2 and waits for it; a write of more than 224 sectors to such
#                     a row is cut into pieces of at most 224 sectors of one chunk, each with
#                     its own entry (a full-stripe write: 3 chunks of 1024 sectors, 15 pieces);
#   md-degraded       md raid5 as `md` above, created with `missing` for member 3;
#   md-degraded-ppl   the same with --consistency-policy=ppl (md logs to the row's parity
#                     member, when that member is in sync).
# Workloads, fresh loads and member write counts as in the bitmap part (member 3 writes
# nothing). amf's log headers per write: how far the sequence number of node slot 0's log
# header (member 0, sector 192) moved during the run: one per entry and one per retirement.
PPL_GONE=/dev/vdd

# ppl_pairs: the member pairs of amf's table, PPL_GONE as `-`.
ppl_pairs() {
	for d in $DISKS; do
		if [ "$d" = $PPL_GONE ]; then printf ' - 8192'; else printf ' %s 8192' "$d"; fi
	done
}

# ppl_seq: the sequence number of node slot 0's log header on member 0 (sector 192, the 4 KiB
# block 24), read direct; 0 when the slot holds no header (never used, or no group).
ppl_seq() {
	dd if=/dev/vda of="$KTAP_TMP/pplhdr" bs=4096 skip=24 count=1 iflag=direct status=none ||
		return 1
	if [ "$(head -c 8 "$KTAP_TMP/pplhdr" | tr -d '\000')" = AMFPPLOG ]; then
		od -An -tu8 -j48 -N8 "$KTAP_TMP/pplhdr" | tr -d ' '
	else
		echo 0
	fi
}

# ppl_amf CFG GROUP: the degraded amf volume (GROUP yes: formatted, `group <uuid>`), both
# workloads.
ppl_amf() {
	_cfg=$1 _grp=$2
	zero_disks || return 1
	_bm=
	if [ "$_grp" = yes ]; then
		# shellcheck disable=SC2086 # one word per member
		amfctl format --level raid5 --chunk $((CHUNK / 2))K --uuid "$BM_UUID" --size "$BM_DATA" \
			$DISKS || return 1
		_tab="0 $LEN5 amf raid5 3 $CHUNK group $BM_UUID 4$(ppl_pairs)"
		_bm=" bitmap $(((BM_DATA + 131071) / 131072))"
	else
		_tab="0 $LEN5 amf raid5 1 $CHUNK 4$(ppl_pairs)"
	fi
	echo "table: $_tab"
	_h=
	for d in $DISKS; do
		if [ "$d" = $PPL_GONE ]; then _h=${_h}D; else _h=${_h}A; fi
	done
	_idle="0 $LEN5 amf raid5 4 $_h $LEN5/$LEN5 idle 0"
	for _k in rand seq; do
		_s0=$(ppl_seq) || return 1
		kmsg_mark
		dm_create bm "$_tab" || { echo "create failed: $DM_OUT"; dmesg | tail -n 5; return 1; }
		_rc=0
		bm_expect bm "$_idle${_bm:+$_bm 0 0 0}" || _rc=1
		[ $_rc -eq 0 ] && { bm_run $_k /dev/mapper/bm || _rc=1; }
		_st=$(dmsetup status bm)
		dmsetup remove bm || _rc=1
		echo "status after $_k: $_st"
		# The module's kernel messages (a live entry replayed at the load, warnings): the
		# first four and their number.
		dmesg_since_mark | grep -E 'amf' | sed 's/^\[[ 0-9.]*\] //' |
			awk 'NR <= 4 { print } END { if (NR > 4) print NR " lines from dm_amf in the kernel log" }'
		[ $_rc -eq 0 ] || return 1
		case $_st in "$_idle"*) ;; *) echo "members not as loaded, or not idle"; return 1 ;; esac
		_s1=$(ppl_seq) || return 1
		if [ -n "$_bm" ]; then
			[ "$_s1" -gt "$_s0" ] || { echo "no log header written (sequence $_s0 .. $_s1)"; return 1; }
			_note="$BM_PR member reads per write"
			_note="$_note, $(per_write $((_s1 - _s0))) log headers per write (sequence $_s0 .. $_s1)"
			_note="$_note, $(echo "$_st" | awk '{ print $(NF - 2) " of " $(NF - 3) }')"
			_note="$_note regions dirty at the end"
		else
			[ "$_s1" -eq 0 ] || { echo "a log header without group (sequence $_s1)"; return 1; }
			_note="$BM_PR member reads per write, no log"
		fi
		bm_keep "$_cfg" $_k "$_note"
	done
	# Loaded once more: no bit left behind by the removes (and no resync).
	[ -z "$_bm" ] || bm_reload_clean "$_tab" "$_idle$_bm" || return 1
}

# ppl_md CFG POLICY MDADM_OPTIONS...: the degraded md volume (/dev/md0, `missing` for
# PPL_GONE; POLICY: its expected consistency_policy), both workloads.
ppl_md() {
	_cfg=$1 _pol=$2
	shift 2
	zero_disks || return 1
	_devs='' _live=''
	for d in $DISKS; do
		if [ "$d" = $PPL_GONE ]; then
			_devs="$_devs missing"
		else
			_devs="$_devs $d" _live="$_live $d"
		fi
	done
	kmsg_mark
	# shellcheck disable=SC2086 # one word per member
	mdadm --create /dev/md0 --run --level=5 --raid-devices=4 --chunk=$((CHUNK / 2)) \
		--layout=left-symmetric --metadata=1.2 --data-offset=4M --size=$((BM_DATA / 2)) \
		--assume-clean "$@" $_devs 2>&1 || { dmesg_since_mark | tail -n 5; return 1; }
	dmesg_since_mark | grep 'md/raid' | sed 's/^\[[ 0-9.]*\] //' | head -n 6
	# What member 0 (never PPL_GONE) records: the policy, and the PPL's place with ppl.
	mdadm --examine /dev/vda 2>&1 | grep -i -E 'policy|ppl'
	for _k in rand seq; do
		if [ $_k = seq ]; then
			# shellcheck disable=SC2086 # one word per member
			mdadm -A /dev/md0 --run $_live 2>&1 || return 1
		fi
		_rc=0
		_sys=/sys/block/md0/md
		_got="$(cat $_sys/consistency_policy) $(cat $_sys/sync_action) $(blockdev --getsz /dev/md0)"
		_got="$_got $(cat $_sys/degraded)"
		echo "md0: policy, sync action, size, degraded: $_got"
		[ "$_got" = "$_pol idle $LEN5 1" ] || { echo "want: $_pol idle $LEN5 1"; _rc=1; }
		[ $_rc -eq 0 ] && { bm_run $_k /dev/md0 || _rc=1; }
		mdadm --stop /dev/md0 2>&1 || _rc=1
		[ $_rc -eq 0 ] || return 1
		bm_keep "$_cfg" $_k "$BM_PR member reads per write"
	done
}

part_check ppl "degraded raid5 log cost: amf without group (no bitmap, no log)" \
	ppl_amf amf_degraded no
part_check ppl "degraded raid5 log cost: amf with group (bitmap, log)" \
	ppl_amf amf_degraded_ppl yes
md_check ppl "degraded raid5 log cost: md without bitmap" \
	ppl_md md_degraded resync --bitmap=none
md_check ppl "degraded raid5 log cost: md with PPL" ppl_md md_degraded_ppl ppl \
	--consistency-policy=ppl
if part ppl; then
	cost_report ppl "amf_degraded_ppl:amf_degraded md_degraded_ppl:md_degraded" \
		"amf_degraded amf_degraded_ppl md_degraded md_degraded_ppl" | sed 's/^/# /'
fi
ktap_done
