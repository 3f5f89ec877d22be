# SPDX-License-Identifier: GPL-2.0
# Whole-group crashes and the write-intent bitmap (Documentation/on-disk-format.rst, node
# slot 0 of a single node): one guest serves three groups with metadata (`group <uuid>`)
# at once, raid1 x2, raid5 x4 and raid6 x4, with writers on all of them, and is power-cycled
# by vm.sh (AMF-RESTART-ME: QEMU killed with SIGKILL) while they write: every AMF of every
# group dies at once in the middle of writes. Each boot after that reassembles the groups
# from their superblocks with the same tables and checks what the crash left.
#
#   boot 0     members formatted (`amfctl format --region 256K`: 16 regions of a 4 MiB
#              member), volumes created, filled (generation 0), removed and created again
#              (a clean remove clears the bitmap), writers started, crash
#   boot 1..K  each group: created again; the kernel's "resync: <n> dirty regions" and the
#              status part `bitmap <regions> <dirty> <resync_pending> <resynced>`; wait until
#              resync_pending is 0; resynced = n, and 0 < n <= 8 when writers were in flight
#              (they only write the first half of each volume: regions 0..7 of 16, so the
#              other half must never be resynced); every acknowledged block holds its last
#              acknowledged tag, the blocks written but not acknowledged their old or their
#              new tag, whole (amf-iotool crash-check); removed, `amfctl scrub` of the
#              members clean; created again, writers started, crash (the last boot ends
#              cleanly instead: volumes and members removed, the module unloaded by the init)
#   stale      boot 1: raid5's member 1 is swapped to dm-error under the writers, the
#              kernel records it failed (ADAA), raid5's writers stop, a suspend and resume
#              clears its bitmap (a crash of a degraded raid5 mid-write is the write hole,
#              which a bitmap cannot close: t5 and t6 below); the crash. Boot 2: member 1 is
#              presented again with its old superblock: it must come up D, never read (the
#              degraded reads check it); `message rebuild 1` with the raid5 members behind
#              dm-delay (300 ms a request, so that it runs for seconds), the crash during the
#              rebuild. Boot 3: created again on delayed members: the rebuild resumed (a,
#              recover), the members back to linear, AAAA idle, data and scrub clean
#   torn       the degraded write hole, made deterministic: t5 (raid5 x4) and t6 (raid6 x4)
#              run without one member (`-`, recorded failed) from their first load. Boot 0:
#              filled (generation 1); after the writers have started, `message fail_after
#              data` (without peers: the next write puts its new data on the members and not
#              its parity, logs "stopped dead after data" and waits) and one 4 KiB write
#              (generation 2) into a present data chunk of a stripe whose chunk on the
#              missing member is data: that chunk exists only as parity, which stays old;
#              the crash. Boot 1: created again, the same member missing; every block read
#              back: the torn one generation 1 or 2, whole, every other one generation 1, in
#              particular the missing member's block in the torn rows, rebuilt from P (P
#              and Q): garbage unless the table load made the parity agree again (a partial
#              parity log). One KTAP line a group: blocks checked, blocks bad; the kernel's
#              `ppl` lines shown for information; removed
#   dirty      degraded: the write hole of a group that was whole at the crash and misses a
#              member at the next start, closed by the table parameter `ppl` (every write
#              logged). t7 (raid5 x4, `group <uuid> ppl`, `dmsetup table` must print `ppl`
#              back): boot 0 created whole, filled (generation 1), torn with t5 and t6 in a
#              data chunk of stripe 5 (member 3), the crash; boot 1 created again with member
#              1, which holds another data chunk of that stripe, given as `-`: its block in
#              the torn rows is rebuilt from P, which only the log's replay made agree with
#              member 3's new data (without `ppl`: garbage); checked as t5 and t6 are
#
# Writers (amf-iotool crash-write): 4 jobs a volume, one 4 KiB O_DIRECT write at a time each,
# at seeded random blocks of the first half of the volume; every sector tagged (seed, its
# lba, generation = (boot + 1) << 32 | write number); after each completed write an
# acknowledgement record goes to the ack log on vde with O_DIRECT|O_DSYNC (QEMU completes a
# guest write into the host's page cache, which a killed QEMU keeps). The map of expected
# generations lives on vde too (crash-check --update writes what a boot found).
#
# One summary line, in the last boot:
#   metadata: N whole-group crashes, L lost acked writes, M parity mismatches, S stale members used
# and a failure for any L, M, S > 0 or N < 10. A whole-group crash is a group with writes in
# flight (the writers, the rebuild of boot 2 or a torn write) at the kill, checked by the
# next boot. L counts the bad blocks of t5, t6 and t7 too.
#
# Disks: vda..vdd 32 MiB (8 MiB slices: 0 raid1, 1 raid5, 2 raid6; a member is 4 MiB of
# reserved area + 4 MiB of data; slice 3 in halves of 4 MiB: t5, t6, their members 3 MiB of
# reserved area + 1 MiB of data), vde 16 MiB: the ack disk (sector 8 + b: boot b's numbers,
# for boot 0 the groups it tore; group i's map at 1024 + 10240 i, its ack log the 9216
# sectors after 1024 more). t7: the 4 MiB halves of slice 0 of vdc and vdd, which raid1 x2
# leaves free (members 0, 1 on vdc, 2, 3 on vdd; 3 MiB of reserved area + 1 MiB of data).
# amf.env=CRASH_BOOTS=K: the last boot (default 5: five crashes; at least 4).
# shellcheck disable=SC1091 # the guest's path
. /amf/lib/ktap.sh

BOOT=${AMF_BOOT:-0}
LAST=${CRASH_BOOTS:-5}
[ "$LAST" -ge 4 ] 2>/dev/null || LAST=4
ACK=/dev/vde
W=/tmp/crash
JOBS=4
MINACKS=100    # acknowledged writes a volume before the kill
DELAY=300      # ms a request of raid5's members during the rebuild of boot 2
REGION_KIB=256
mkdir -p $W

# ------------------------------------------------------------------ the groups
# gv NAME: GL level, GN members, GLEN volume sectors, GU uuid, GS seed, GI index (ack disk;
# -1: no writers), GSL slice, GW writers' sectors (the first half), GWR regions the writers touch; GSTART and
# GSIZE the members' slice on each disk (GDSK the members' disks), GOFF their data offset, GM
# the member the table gives as `-` (none: -1), GY the member whose data chunk the torn
# stripe loses (t5, t6: GM; t7: the one missing in boot 1), GP parity chunks a stripe, GPPL
# 1: the table says `ppl`.
gv() {
	GM=-1 GOFF=8192 GP=0 GI=-1 GY='' GPPL=0 GDSK=$DISKS
	case $1 in
	r1) GL=raid1 GN=2 GLEN=8192 GU=c0a51001-0000-4000-8000-000000000001 GS=11 GI=0 GSL=0 ;;
	r5) GL=raid5 GN=4 GLEN=24576 GU=c0a51005-0000-4000-8000-000000000005 GS=15 GI=1 GSL=1 GP=1 ;;
	# the degraded write hole: 4 MiB halves of slice 3, 1 MiB of data a member
	t5) GL=raid5 GN=4 GLEN=6144 GU=c0a51005-0000-4000-8000-0000000000f5 GS=25 GSL=3 GP=1 GM=1 ;;
	t6) GL=raid6 GN=4 GLEN=4096 GU=c0a51006-0000-4000-8000-0000000000f6 GS=26 GSL=3 GP=2 GM=0 ;;
	# dirty degraded: whole in boot 0 (`ppl`), member GY missing in boot 1; slice 0 of vdc, vdd
	t7) GL=raid5 GN=4 GLEN=6144 GU=c0a51005-0000-4000-8000-0000000000f7 GS=27 GSL=0 GP=1 GY=1 GPPL=1
		GDSK="vdc vdc vdd vdd"
		[ "$BOOT" -eq 0 ] || GM=$GY ;;
	*) GL=raid6 GN=4 GLEN=16384 GU=c0a51006-0000-4000-8000-000000000006 GS=16 GI=2 GSL=2 GP=2 ;;
	esac
	GSTART=$((GSL * 16384)) GSIZE=16384
	case $1 in
	t5) GOFF=6144 GSIZE=8192 ;;
	t6) GOFF=6144 GSIZE=8192 GSTART=$((GSTART + 8192)) ;;
	t7) GOFF=6144 GSIZE=8192 ;;
	esac
	GY=${GY:-$GM}
	GW=$((GLEN / 2))
	# member data 8192 sectors = 16 regions of 512; the writers' half is member rows 0..4095
	GWR=8
	GMAP=$((1024 + 10240 * GI))
	GLOG=$((GMAP + 1024))
}
GRPS="r1 r5 r6"
TGRPS="t5 t6 t7"   # the torn stripes of (dirty) degraded groups: set up in boot 0, checked in boot 1
DISKS="vda vdb vdc vdd"

# members NAME: the member devices of a group, in order.
members() {
	gv "$1"
	_k=0
	for _d in $DISKS; do
		[ $_k -lt "$GN" ] || break
		echo "/dev/mapper/$1m$_k"
		_k=$((_k + 1))
	done
}

# slice NAME K [delay]: member K of group NAME over its disk slice (dm-linear, or dm-delay
# with DELAY ms on every request).
slice_table() {
	gv "$1"
	_d=$(echo $GDSK | cut -d' ' -f$(($2 + 1)))
	_s=$GSTART
	# (t7: two members a disk, in its slice's halves)
	[ "$1" = t7 ] && _s=$((GSTART + $2 % 2 * GSIZE))
	if [ "${3:-}" = delay ]; then
		echo "0 $GSIZE delay /dev/$_d $_s $DELAY"
	else
		echo "0 $GSIZE linear /dev/$_d $_s"
	fi
}

# table NAME: the volume's table (member GM given as `-`: missing; `ppl` with GPPL=1).
table() {
	gv "$1"
	_t="0 $GLEN amf $GL $((3 + GPPL)) 64 group $GU$([ "$GPPL" = 1 ] && echo ' ppl') $GN"
	_k=0
	for _m in $(members "$1"); do
		[ $_k -eq "$GM" ] && _m=-
		_t="$_t $_m $GOFF"
		_k=$((_k + 1))
	done
	echo "$_t"
}

# swap DEV TABLE: a member device gets TABLE under the live volume.
swap() {
	dmsetup suspend "$1" && dmsetup load "$1" --table "$2" && dmsetup resume "$1" ||
		{ echo "swapping $1 to '$2' failed"; dmsetup resume "$1"; return 1; }
}

# bst VOL: B_HEALTH B_ACTION, and the bitmap part B_REGIONS B_DIRTY B_PENDING B_RESYNCED
# (B_REGIONS empty without it); B_LINE the status line.
bst() {
	B_LINE=$(dmsetup status "$1" 2>&1)
	eval "$(echo "$B_LINE" | awk '
		NR == 1 && $3 == "amf" {
			found = 1
			printf "B_HEALTH=%s B_ACTION=%s ", $6, $8
			for (i = 10; i <= NF; i++) if ($i == "bitmap") b = i
			if (b) printf "B_REGIONS=%s B_DIRTY=%s B_PENDING=%s B_RESYNCED=%s\n", $(b + 1), $(b + 2), $(b + 3), $(b + 4)
			else print "B_REGIONS= B_DIRTY= B_PENDING= B_RESYNCED="
		}
		END { if (!found) print "B_HEALTH= B_ACTION= B_REGIONS= B_DIRTY= B_PENDING= B_RESYNCED=" }')"
}

# poll SEC CMD...: CMD every 0.5 s until it succeeds; status 1 after SEC s. WAITED: seconds.
poll() {
	_ps=$1
	shift
	_pt=$(date +%s)
	until "$@" >/dev/null 2>&1; do
		[ $(($(date +%s) - _pt)) -ge "$_ps" ] && { WAITED=$_ps; return 1; }
		sleep 0.5
	done
	WAITED=$(($(date +%s) - _pt))
}

# note B TEXT / read_note B: boot B's numbers on the ack disk (sector 8 + B).
note() {
	printf '%-511.511s\n' "$2" | dd of=$ACK bs=512 seek=$((8 + $1)) count=1 oflag=direct conv=notrunc status=none
}
read_note() {
	dd if=$ACK bs=512 skip=$((8 + $1)) count=1 iflag=direct status=none | tr -d '\000' | head -1 | sed 's/ *$//'
}

# ------------------------------------------------------------------ what each boot does
# writers B NAME: 1 if group NAME had writers in boot B (their logs are checked in B + 1).
writers() {
	[ "$1" -lt "$LAST" ] || return 1
	[ "$1" -eq 2 ] && [ "$2" = r5 ] && return 1
	return 0
}
# midwrite B NAME: group NAME had writes in flight at the kill that ended boot B (a
# whole-group crash): the writers, or raid5's rebuild in boot 2; not raid5 in boot 1 (its
# writers stopped once member 1 failed).
midwrite() {
	[ "$1" -lt "$LAST" ] || return 1
	[ "$1" -eq 1 ] && [ "$2" = r5 ] && return 1
	return 0
}

if [ "$BOOT" -eq 0 ]; then
	ktap_plan 10
elif [ "$BOOT" -eq 1 ]; then
	ktap_plan 20
elif [ "$BOOT" -lt "$LAST" ]; then
	ktap_plan 16
else
	ktap_plan 16
fi
ktap_diag "crash suite, boot $BOOT of 0..$LAST"

LOST=0 MISM=0 STALE=0 CRASHES=0 PARTIAL=0 RES=

amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"

# ------------------------------------------------------------------ members
slices() {
	if [ "$BOOT" -eq 0 ]; then
		dd if=/dev/zero of=$ACK bs=1M count=16 oflag=direct status=none || { echo "zeroing $ACK failed"; return 1; }
	fi
	_gs=$GRPS
	[ "$BOOT" -le 1 ] && _gs="$GRPS $TGRPS"
	for g in $_gs; do
		gv $g
		k=0
		while [ $k -lt "$GN" ]; do
			how=
			[ "$BOOT" -eq 3 ] && [ $g = r5 ] && how=delay
			dm_create "${g}m$k" "$(slice_table $g $k $how)" || { echo "${g}m$k: $DM_OUT"; return 1; }
			k=$((k + 1))
		done
		if [ "$BOOT" -eq 0 ]; then
			# (the torn groups' missing member too: the group records it failed)
			# shellcheck disable=SC2046 # the member list
			amfctl format --level $GL --chunk 32K --region ${REGION_KIB}K --uuid $GU \
				--data-offset $((GOFF / 2))K --size $(((GSIZE - GOFF) / 2))K \
				$(members $g) >"$KTAP_TMP/fmt" 2>&1 || { cat "$KTAP_TMP/fmt"; return 1; }
			amfctl examine "$(members $g | head -1)" | grep -E 'Bitmap region|Data size'
		fi
	done
	dmsetup ls | sort | tr '\n' ' '
	echo
}
if [ "$BOOT" -eq 0 ]; then
	ktap_check "members: 8 MiB slices of vda..vdd, raid1 x2, raid5 x4, raid6 x4 formatted with 256 KiB regions; 4 MiB halves of slice 3: raid5 x4 and raid6 x4, of slice 0 of vdc, vdd: raid5 x4 (1 MiB data offset 3 MiB); ack disk zeroed" slices
elif [ "$BOOT" -eq 1 ]; then
	ktap_check "members: the same slices (and the halves for t5, t6, t7)" slices
elif [ "$BOOT" -eq 3 ]; then
	ktap_check "members: the same slices (raid5's behind dm-delay, $DELAY ms)" slices
else
	ktap_check "members: the same slices" slices
fi

# create NAME: the volume from its superblocks; CREATE_LOG the kernel's lines about it.
create() {
	kmsg_mark
	if ! dm_create "$1" "$(table "$1")"; then
		echo "create $1 failed: $DM_OUT"
		dmesg_since_mark | grep -F amf | tail -5
		return 1
	fi
	CREATE_LOG=$(dmesg_since_mark | grep -F amf || true)
}

# ------------------------------------------------------------------ boot 0: the groups
first() {
	g=$1
	gv $g
	create $g || return 1
	echo "$(table $g)"
	amf-iotool write --dev /dev/mapper/$g --seed $GS --gen 0 --bs 2048 || return 1
	dmsetup remove $g || { echo "remove $g failed"; return 1; }
	create $g || return 1
	echo "$CREATE_LOG" | grep -E 'resync' | sed 's/^/kernel: /'
	bst $g
	echo "status: $B_LINE"
	[ -n "$B_REGIONS" ] || { echo "no bitmap part in the status"; return 1; }
	[ "$B_REGIONS" = 16 ] || { echo "bitmap: $B_REGIONS regions, want 16"; return 1; }
	[ "$B_DIRTY" = 0 ] && [ "$B_PENDING" = 0 ] ||
		{ echo "bitmap: $B_DIRTY dirty, $B_PENDING to resync after a clean remove, want 0 0"; return 1; }
}

# ------------------------------------------------------------------ after a crash
# g_state NAME: the assembly: health as the plan says (S counted), ASM_NOTE why.
assembled() {
	g=$1
	gv $g
	create $g || return 1
	echo "$CREATE_LOG" | sed 's/^/kernel: /' | tail -6
	bst $g
	echo "status: $B_LINE"
	want=AAAA
	[ "$GN" -eq 2 ] && want=AA
	if [ $g = r5 ] && [ "$BOOT" -eq 2 ]; then
		want=ADAA
		case $B_HEALTH in
		?D??) echo "member 1 (stale: its superblock predates its recorded failure) is D" ;;
		*)
			echo "member 1 is '$(echo "$B_HEALTH" | cut -c2)', not D: a stale member used"
			STALE=$((STALE + 1))
			return 1
			;;
		esac
	elif [ $g = r5 ] && [ "$BOOT" -eq 3 ]; then
		case $B_HEALTH in
		AaAA)
			[ "$B_ACTION" = recover ] || { echo "member 1 rebuilding but action '$B_ACTION', not recover"; return 1; }
			echo "the rebuild killed in boot 2 resumed: AaAA, recover"
			RESUMED=1
			return 0
			;;
		AAAA) echo "no rebuild to resume: it ended before the kill of boot 2"; RESUMED=0 ;;
		*)
			echo "health $B_HEALTH: want AaAA (rebuild resumed)"
			case $B_HEALTH in ?A??) STALE=$((STALE + 1)) ;; esac
			return 1
			;;
		esac
	fi
	[ "$B_HEALTH" = "$want" ] || { echo "health $B_HEALTH, want $want"; return 1; }
}

# resynced NAME: the bitmap's resync: the log's n, pending 0, resynced = n, bounds.
resynced() {
	g=$1
	gv $g
	# (the kernel says nothing when no region is dirty)
	n=$(echo "$CREATE_LOG" | sed -n 's/.*resync: \([0-9]*\) dirty regions.*/\1/p' | tail -1)
	echo "kernel: resync: ${n:-(no line: 0)} dirty regions"
	n=${n:-0}
	bst $g
	[ -n "$B_REGIONS" ] || { echo "no bitmap part in the status: $B_LINE"; RES="$RES $g:-"; return 1; }
	echo "at creation: $B_LINE"
	rc=0
	if [ "$B_PENDING" -gt 0 ] && [ "$B_ACTION" != resync ] && [ "$B_ACTION" != recover ]; then
		echo "$B_PENDING regions to resync but action '$B_ACTION'"
		rc=1
	fi
	if [ $g = r5 ] && [ "$BOOT" -eq 3 ] && [ "${RESUMED:-0}" = 1 ]; then
		# The delay off again: the rebuild ends.
		for m in $(members r5); do
			k=${m#/dev/mapper/r5m}
			swap "r5m$k" "$(slice_table r5 "$k")" || rc=1
		done
		rebuilt() { bst r5; [ "$B_HEALTH" = AAAA ] && [ "$B_ACTION" = idle ]; }
		if poll 180 rebuilt; then
			echo "members linear again: AAAA idle after $WAITED s"
		else
			echo "no AAAA idle after $WAITED s: $B_LINE"
			rc=1
		fi
	fi
	done_() { bst "$1"; [ -n "$B_PENDING" ] && [ "$B_PENDING" -eq 0 ]; }
	if poll 180 done_ $g; then
		echo "resync_pending 0 after $WAITED s: $B_LINE"
	else
		echo "resync_pending still $B_PENDING after $WAITED s: $B_LINE"
		RES="$RES $g:?"
		return 1
	fi
	amfctl status $g | grep -E 'sync:|bitmap:' || { echo "amfctl status $g: no bitmap line"; rc=1; }
	RES="$RES $g:$B_RESYNCED/$B_REGIONS"
	[ "$B_RESYNCED" = "$n" ] || { echo "resynced $B_RESYNCED, the kernel log said $n"; rc=1; }
	if [ "$B_RESYNCED" -gt "$B_REGIONS" ]; then
		echo "resynced $B_RESYNCED of $B_REGIONS regions"
		rc=1
	fi
	# (raid5 after the rebuild's crash: whatever the rebuild dirtied)
	if midwrite $((BOOT - 1)) $g && ! { [ $g = r5 ] && [ "$BOOT" -eq 3 ]; }; then
		if [ "$B_RESYNCED" -lt 1 ]; then
			echo "writes were in flight at the crash, yet no region resynced"
			rc=1
		elif [ "$B_RESYNCED" -gt "$GWR" ]; then
			echo "resynced $B_RESYNCED regions; the writers only touched $GWR (regions 0..$((GWR - 1)))"
			rc=1
		fi
	fi
	[ "$B_RESYNCED" -gt 0 ] && [ "$B_RESYNCED" -lt "$B_REGIONS" ] && PARTIAL=1
	return $rc
}

# checked NAME: crash-check of the previous boot's writers (map updated).
checked() {
	g=$1
	gv $g
	j=0
	writers $((BOOT - 1)) $g && j=$JOBS
	amf-iotool crash-check --dev /dev/mapper/$g --seed $GS --boot $((BOOT - 1)) --jobs $j \
		--wstart 0 --wcount $GW --log $ACK --log-start $GLOG --log-size 9216 --map-start $GMAP \
		--update 1 >"$KTAP_TMP/cc" 2>&1
	rc=$?
	cat "$KTAP_TMP/cc"
	l=$(sed -n 's/.*: \([0-9]*\) lost acked, \([0-9]*\) garbage$/\1 \2/p' "$KTAP_TMP/cc" | tail -1)
	[ -n "$l" ] || { echo "crash-check said no result (exit $rc)"; return 1; }
	# shellcheck disable=SC2086 # two numbers
	set -- $l
	LOST=$((LOST + $1 + $2))
	midwrite $((BOOT - 1)) $g && CRASHES=$((CRASHES + 1))
	return $rc
}

# scrubbed NAME: amfctl scrub of the members; MISM += mismatched stripes.
scrub_members() {
	gv $1
	_a=
	for _m in $(members $1); do _a="$_a --dev $_m:8192"; done
	# shellcheck disable=SC2086 # word list
	amfctl scrub --level $GL --chunk 32K --size $GLEN $_a >"$KTAP_TMP/sc" 2>&1
	_rc=$?
	echo "amfctl scrub --level $GL --chunk 32K --size $GLEN$_a: exit $_rc"
	awk 'NR <= 8 { print } { l = $0 } END { if (NR > 8) print "...\n" l }' "$KTAP_TMP/sc"
	_mm=$(sed -n 's/^scrub: [0-9]* stripes checked, \([0-9]*\) mismatched$/\1/p' "$KTAP_TMP/sc")
	[ -n "$_mm" ] || { echo "no summary line"; return 1; }
	MISM=$((MISM + _mm))
	[ $_rc -eq 0 ] && [ "$_mm" -eq 0 ]
}
scrubbed() {
	g=$1
	dmsetup remove $g || { echo "remove $g failed"; return 1; }
	scrub_members $g || return 1
	if [ "$BOOT" -lt "$LAST" ]; then
		create $g || return 1
		bst $g
		echo "created again: $B_LINE"
	fi
}

# ------------------------------------------------------------------ the degraded write hole
# t5 and t6 ("torn" in the header): member GM missing, the torn write in stripe TSTRIPE; t7
# ("dirty degraded"): whole in boot 0, member GY missing in boot 1. Each bad block counts
# as a lost acknowledged write, each group as a whole-group crash.
TSTRIPE=5

# tspot NAME: where group NAME's stripe is torn (md left-symmetric, table-syntax.rst
# "Mapping"): in stripe TT, P on member TP = GN - 1 - TT % GN (raid6: Q on the next one) and
# data chunk k on member (TP + GP + k) % GN. The missing member GY holds data chunk TKL; the
# torn write is the third 4 KiB block of data chunk TKT (on member TMT, present): sectors
# TX..TX+7; the block of the lost chunk in the same rows: TL..TL+7.
tspot() {
	gv "$1"
	TT=$TSTRIPE
	TP=$((GN - 1 - TT % GN))
	_nd=$((GN - GP))
	TKL='' TKT=''
	_k=0
	while [ $_k -lt $_nd ]; do
		if [ $(((TP + GP + _k) % GN)) -eq "$GY" ]; then
			TKL=$_k
		elif [ -z "$TKT" ]; then
			TKT=$_k
		fi
		_k=$((_k + 1))
	done
	[ -n "$TKL" ] && [ -n "$TKT" ] || { echo "$1: member $GY holds no data chunk of stripe $TT"; return 1; }
	TMT=$(((TP + GP + TKT) % GN))
	TX=$(((TT * _nd + TKT) * 64 + 16))
	TL=$(((TT * _nd + TKL) * 64 + 16))
}

# dwant: the health of a group without member GM (D there, A elsewhere).
dwant() {
	_w=
	_k=0
	while [ $_k -lt "$GN" ]; do
		if [ $_k -eq "$GM" ]; then _w=${_w}D; else _w=${_w}A; fi
		_k=$((_k + 1))
	done
	echo "$_w"
}

# pplshown NAME: with GPPL=1, `dmsetup table` prints `ppl` back.
pplshown() {
	[ "$GPPL" = 1 ] || return 0
	_tb=$(dmsetup table "$1")
	echo "dmsetup table: $_tb"
	case " $_tb " in
	*" ppl "*) ;;
	*) echo "$1: no ppl in its table"; return 1 ;;
	esac
}

# boot 0: tfirst NAME: created degraded (t7: whole), filled with generation 1, read back.
tfirst() {
	g=$1
	tspot $g || return 1
	create $g || return 1
	table $g
	pplshown $g || return 1
	[ -z "$CREATE_LOG" ] || echo "$CREATE_LOG" | sed 's/^/kernel: /' | tail -4
	bst $g
	echo "status: $B_LINE"
	want=$(dwant)
	[ "$B_HEALTH" = "$want" ] || { echo "health $B_HEALTH, want $want (member $GM missing)"; return 1; }
	amf-iotool write --dev /dev/mapper/$g --seed $GS --gen 1 --bs 2048 || return 1
	amf-iotool verify --dev /dev/mapper/$g --seed $GS --gen 1 || return 1
	echo "stripe $TT: P on member $TP$([ "$GP" -eq 2 ] && echo ", Q on $(((TP + 1) % GN))"), data chunk $TKL on the missing member $GY$([ "$GM" -lt 0 ] && echo ' (missing in boot 1)'); the torn write will be data chunk $TKT on member $TMT, sectors $TX..$((TX + 7)); the missing member's block in those rows: sectors $TL..$((TL + 7))"
}

# boot 0, after the writers: torn: the groups armed and written at once; each must log
# "stopped dead after data" (the line names no group: one line a group) and its write must
# still wait. The groups torn go to note 0 on the ack disk.
stopped() { [ "$(dmesg_since_mark | grep -c 'stopped dead after data')" -ge "$1" ]; }
torn() {
	TORN=
	rc=0
	n=0
	kmsg_mark
	for g in $TGRPS; do
		tspot $g || return 1
		dmsetup message $g 0 fail_after data || { echo "$g: fail_after data refused"; dmesg_since_mark | tail -3; return 1; }
		amf-iotool write --dev /dev/mapper/$g --seed $GS --gen 2 --start $TX --count 8 --bs 8 \
			</dev/null >$W/$g.torn 2>&1 &
		echo $! >$W/$g.tpid
		n=$((n + 1))
	done
	poll 30 stopped $n || rc=1
	echo "after $WAITED s, kernel:"
	dmesg_since_mark | grep -E 'stopped dead|amf' | sed 's/^/  /'
	for g in $TGRPS; do
		tspot $g
		bst $g
		if kill -0 "$(cat $W/$g.tpid)" 2>/dev/null; then
			echo "$g: the write of sectors $TX..$((TX + 7)) (generation 2) waits; health $B_HEALTH"
			[ $rc -eq 0 ] && TORN="$TORN $g"
		else
			echo "$g: the write of sectors $TX..$((TX + 7)) ended: $(cat $W/$g.torn)"
			rc=1
		fi
	done
	note 0 "torn=$(echo $TORN | tr ' ' ,)"
	echo "note 0: $(read_note 0)"
	return $rc
}

# bad_blocks DEV SEED GEN RANGES: TBAD += the 4 KiB blocks (8 sectors, counted from sector 0)
# of RANGES ("start:count ...", whole blocks) that hold a sector other than (SEED, its lba,
# GEN). Bisects with amf-iotool verify down to single blocks (a range bad in every sector
# counts whole); after 300 verifies a bad range counts its bad sectors / 8, rounded up (a
# lower bound: TAPPROX=1).
bad_blocks() {
	_q=$4
	_calls=0
	while [ -n "$_q" ]; do
		_r=${_q%% *}
		case $_q in *" "*) _q=${_q#* } ;; *) _q= ;; esac
		_s=${_r%:*} _c=${_r#*:}
		[ "$_c" -gt 0 ] || continue
		_o=$(amf-iotool verify --dev "$1" --seed "$2" --gen "$3" --start "$_s" --count "$_c" 2>&1)
		_rc=$?
		_calls=$((_calls + 1))
		[ $_rc -eq 0 ] && continue
		_n=$(echo "$_o" | sed -n 's/.*: \([0-9]*\) bad$/\1/p')
		[ $_rc -eq 1 ] && [ -n "$_n" ] || { echo "$_o"; return 2; }
		if [ "$_c" -le 8 ] || [ "$_n" -eq "$_c" ]; then
			[ "$TBAD" -lt 4 ] && echo "$_o" | grep MISMATCH | head -2
			echo "bad: sectors $_s..$((_s + _c - 1)) ($_n bad sectors, $((_c / 8)) blocks)"
			TBAD=$((TBAD + _c / 8))
		elif [ $_calls -ge 300 ]; then
			echo "bad: $_n sectors in $_s..$((_s + _c - 1)): at least $(((_n + 7) / 8)) blocks"
			TBAD=$((TBAD + (_n + 7) / 8))
			TAPPROX=1
		else
			_h=$((_c / 16 * 8))
			_q="${_q:+$_q }$_s:$_h $((_s + _h)):$((_c - _h))"
		fi
	done
}

# boot 1: tchecked NAME: created again (member GM still missing; t7: now missing) after the
# crash; every block read back. TCHK blocks checked, TBAD bad (added to LOST); a whole-group
# crash.
pending0() { bst "$1"; [ -n "$B_PENDING" ] && [ "$B_PENDING" -eq 0 ]; }
tchecked() {
	g=$1
	TBAD=0 TCHK=0 TAPPROX=0
	tspot $g || return 1
	case ",$(read_note 0 | sed -n 's/^torn=//p')," in
	*",$g,"*) ;;
	*) echo "boot 0 did not tear a stripe of $g (note 0: '$(read_note 0)')"; return 1 ;;
	esac
	create $g || return 1
	table $g
	pplshown $g || return 1
	echo "$CREATE_LOG" | sed 's/^/kernel: /' | tail -8
	echo "kernel log, grep -i ppl (for information):"
	dmesg | grep -i ppl | tail -6 | sed 's/^/  /' | grep . || echo "  (no line)"
	bst $g
	echo "status: $B_LINE"
	want=$(dwant)
	[ "$B_HEALTH" = "$want" ] || { echo "health $B_HEALTH, want $want (member $GM missing)"; return 1; }
	if poll 60 pending0 $g; then
		echo "resync_pending 0 after $WAITED s: $B_LINE"
	else
		echo "resync_pending still $B_PENDING after $WAITED s: $B_LINE"
		return 1
	fi
	CRASHES=$((CRASHES + 1))
	# The torn block: generation 1 or 2, the same in all 8 sectors.
	amf-iotool verify-any --dev /dev/mapper/$g --seeds $GS --max-gen 2 --start $TX --count 8 --bs 8 \
		>"$KTAP_TMP/va" 2>&1
	_vrc=$?
	sed 's/^/torn block: /' "$KTAP_TMP/va"
	[ $_vrc -eq 0 ] || TBAD=$((TBAD + 1))
	# The missing member's block in the torn rows (reconstructed), for the record.
	if amf-iotool verify --dev /dev/mapper/$g --seed $GS --gen 1 --start $TL --count 8 >"$KTAP_TMP/vl" 2>&1; then
		echo "the missing member's block in the torn rows (sectors $TL..$((TL + 7))): generation 1"
	else
		echo "the missing member's block in the torn rows (sectors $TL..$((TL + 7))): NOT generation 1:"
		grep MISMATCH "$KTAP_TMP/vl" | head -1
	fi
	# Every other block: generation 1.
	bad_blocks /dev/mapper/$g $GS 1 "0:$TX $((TX + 8)):$((GLEN - TX - 8))" || return 1
	TCHK=$((GLEN / 8))
	LOST=$((LOST + TBAD))
	echo "$g: $TCHK blocks checked, $TBAD bad$([ "$TAPPROX" = 1 ] && echo ' (at least)')"
	[ "$TBAD" -eq 0 ]
}

tremoved() {
	for g in $TGRPS; do
		dmsetup info $g >/dev/null 2>&1 && { dmsetup remove $g || return 1; }
		for m in $(members $g); do dmsetup remove "${m#/dev/mapper/}" || return 1; done
	done
	dmsetup ls | sort | tr '\n' ' '
	echo
}

# ------------------------------------------------------------------ writers
start_writer() {
	gv $1
	rm -f $W/$1.stop $W/$1.acks
	# Niced (busybox has renice, not nice): the guest has one vCPU, and the suite's own
	# commands must not wait behind the writers.
	# shellcheck disable=SC2016 # $$ of that sh
	sh -c 'renice -n 19 -p $$ >/dev/null; exec "$@"' sh \
		amf-iotool crash-write --dev /dev/mapper/$1 --seed $GS --boot $BOOT --jobs $JOBS \
		--wstart 0 --wcount $GW --log $ACK --log-start $GLOG --log-size 9216 \
		--progress $W/$1.acks --stop $W/$1.stop </dev/null >$W/$1.out 2>&1 &
	echo $! >$W/$1.pid
}
acks() { _a=$(cat $W/$1.acks 2>/dev/null); echo "${_a:-0}"; }
enough() { for _g in "$@"; do [ "$(acks $_g)" -ge $MINACKS ] || return 1; done; }
alive() { for _g in "$@"; do kill -0 "$(cat $W/$_g.pid)" 2>/dev/null || return 1; done; }

# crash_writes NAMES...: writers on NAMES until each has MINACKS acknowledged, still running.
crash_writes() {
	for g in "$@"; do start_writer $g; done
	if ! poll 120 enough "$@"; then
		for g in "$@"; do echo "$g: $(acks $g) acknowledged writes"; cat $W/$g.out; done
		return 1
	fi
	for g in "$@"; do echo "$g: $(acks $g) acknowledged writes after $WAITED s"; done
	alive "$@" || { for g in "$@"; do cat $W/$g.out; done; echo "a writer ended early"; return 1; }
}

# boot 1: raid5's member 1 fails under its writer, then raid5 goes quiet.
fail5() {
	crash_writes r1 r5 r6 || return 1
	rc=0
	swap r5m1 "0 16384 error" || return 1
	degraded() { bst r5; [ "$B_HEALTH" = ADAA ]; }
	if poll 60 degraded; then
		echo "r5: ADAA after $WAITED s of writes: $B_LINE"
	else
		echo "r5: no ADAA after $WAITED s: $B_LINE"
		rc=1
	fi
	dmesg | grep -E 'dm_amf: member 1 .*failed' | tail -1
	touch $W/r5.stop
	wait "$(cat $W/r5.pid)"
	wrc=$?
	cat $W/r5.out
	[ $wrc -eq 0 ] || { echo "raid5's writer failed (exit $wrc): writes without member 1 must succeed"; rc=1; }
	# The bits of an idle volume are cleared by the next sweep, which needs I/O to the group
	# or a quiesced suspend: suspend and resume, so that no region of the degraded raid5 is
	# dirty at the crash (nothing in flight either).
	dmsetup suspend r5 && dmsetup resume r5 || { echo "suspend/resume r5 failed"; rc=1; }
	bst r5
	if [ "$B_DIRTY" = 0 ]; then
		echo "r5: bitmap clean after a suspend: $B_LINE"
	else
		echo "r5: $B_DIRTY regions dirty after a suspend: $B_LINE"
		rc=1
	fi
	alive r1 r6 || { echo "a writer of r1 or r6 ended"; cat $W/r1.out $W/r6.out; rc=1; }
	echo "r1: $(acks r1), r6: $(acks r6) acknowledged writes"
	return $rc
}

# boot 2: raid5's stale member rebuilt behind dm-delay; the kill comes during the rebuild.
rebuild5() {
	for m in $(members r5); do
		k=${m#/dev/mapper/r5m}
		swap "r5m$k" "$(slice_table r5 "$k" delay)" || return 1
	done
	kmsg_mark
	dmsetup message r5 0 rebuild 1 || { echo "message rebuild 1 refused"; dmesg_since_mark | tail -3; return 1; }
	bst r5
	echo "r5: $B_LINE"
	dmesg_since_mark | grep -E 'rebuild' | tail -2
	case "$B_HEALTH $B_ACTION" in
	"AaAA recover") echo "rebuild running ($(echo "$B_LINE" | awk '{print $7}') sectors)" ;;
	"AAAA idle") echo "the rebuild ended already: boot 3 has none to resume" ;;
	*) echo "want AaAA recover"; return 1 ;;
	esac
	crash_writes r1 r6 || return 1
	bst r5
	echo "r5 with the writers going: $B_LINE"
}

# ------------------------------------------------------------------ the boots
if [ "$BOOT" -eq 0 ]; then
	for g in $GRPS; do
		gv $g
		ktap_check "$g ($GL x$GN): created, filled (generation 0), removed, created again: bitmap part, 16 regions, none dirty" first $g
	done
	for g in $TGRPS; do
		gv $g
		if [ "$GM" -ge 0 ]; then
			ktap_check "$g ($GL x$GN): created without member $GM ('-', recorded failed): health $(dwant), filled (generation 1) and read back" tfirst $g
		else
			ktap_check "$g ($GL x$GN$([ "$GPPL" = 1 ] && echo ", ppl")): created whole$([ "$GPPL" = 1 ] && echo ", 'dmsetup table' prints ppl"), health $(dwant), filled (generation 1) and read back" tfirst $g
		fi
	done
	ktap_check "writers on r1, r5, r6 ($JOBS jobs each, the first half of each volume), $MINACKS acknowledged writes each" \
		crash_writes r1 r5 r6
	ktap_check "t5, t6, t7: fail_after data, one 4 KiB write into stripe $TSTRIPE beside the (t7: next boot's) missing member's data chunk: stopped dead after its data, before its parity; the crash" torn
	touch /tmp/amf-restartme
	ktap_diag "boot 0: power cut now"
	ktap_done
fi

for g in $GRPS; do
	gv $g
	what="assembled from its superblocks"
	[ $g = r5 ] && [ "$BOOT" -eq 2 ] && what="$what with member 1 presented again (stale): D"
	[ $g = r5 ] && [ "$BOOT" -eq 3 ] && what="$what on delayed members: member 1's rebuild resumed (a, recover)"
	ktap_check "crash $BOOT: $g ($GL x$GN): $what" assembled $g
	ktap_check "crash $BOOT: $g: resync of the dirty regions only (kernel log = status resynced, <= $GWR of 16), resync_pending 0" resynced $g
	ktap_check "crash $BOOT: $g: every acknowledged block holds its last tag, in-flight blocks old or new, whole$([ $g = r5 ] && [ "$BOOT" -eq 2 ] && echo ' (degraded reads)')" checked $g
	if [ $g = r5 ] && [ "$BOOT" -eq 2 ]; then
		ktap_skip "crash $BOOT: $g: removed, scrub of the members" "member 1 is stale until its rebuild: scrubbed in boot 3"
	else
		ktap_check "crash $BOOT: $g: removed, amfctl scrub of the members clean$([ "$BOOT" -lt "$LAST" ] && echo ', created again')" scrubbed $g
	fi
done
ktap_diag "crash $BOOT: resynced/regions:$RES"

if [ "$BOOT" -eq 1 ]; then
	for g in $TGRPS; do
		gv $g
		tchecked $g >"$KTAP_TMP/tc" 2>&1
		rc=$?
		ktap_diag_file "$KTAP_TMP/tc"
		twhat="without member $GM"
		[ $g = t7 ] && twhat="$([ "$GPPL" = 1 ] && echo "ppl, ")whole at the crash, created again without member $GM: dirty degraded"
		ktap_result "crash 1: $g ($GL x$GN $twhat, a stripe torn after its data): $TCHK blocks checked, $TBAD bad: every block holds its acknowledged tag (the missing member's from parity), the torn one old or new, whole" $rc \
			"$g: $TBAD bad blocks after the crash (the degraded write hole)"
	done
	ktap_check "t5, t6, t7 and their members removed" tremoved
fi

if [ "$BOOT" -lt "$LAST" ]; then
	case $BOOT in
	1) ktap_check "boot 1: writers on r1, r5, r6; raid5's member 1 swapped to dm-error under them: ADAA, its writer stopped, bitmap clean after a suspend; the crash" fail5 ;;
	2) ktap_check "boot 2: raid5 'message rebuild 1' (members delayed $DELAY ms): AaAA recover; writers on r1, r6; the crash" rebuild5 ;;
	*) ktap_check "boot $BOOT: writers on r1, r5, r6, $MINACKS acknowledged writes each: the crash" crash_writes r1 r5 r6 ;;
	esac
	noted() { note "$BOOT" "crashes=$CRASHES lost=$LOST mism=$MISM stale=$STALE partial=$PARTIAL res=$(echo $RES | tr ' ' ,)"; read_note "$BOOT"; }
	ktap_check "boot $BOOT's numbers on the ack disk" noted
	touch /tmp/amf-restartme
	ktap_diag "boot $BOOT: power cut now"
	ktap_done
fi

# ------------------------------------------------------------------ the last boot
summary() {
	MISSING=
	b=1
	while [ $b -lt "$LAST" ]; do
		n=$(read_note $b)
		echo "boot $b: ${n:-no note}"
		for kv in $n; do
			case $kv in
			crashes=*) CRASHES=$((CRASHES + ${kv#*=})) ;;
			lost=*) LOST=$((LOST + ${kv#*=})) ;;
			mism=*) MISM=$((MISM + ${kv#*=})) ;;
			stale=*) STALE=$((STALE + ${kv#*=})) ;;
			partial=1) PARTIAL=1 ;;
			esac
		done
		[ -n "$n" ] || MISSING="$MISSING $b"
		b=$((b + 1))
	done
	echo "boot $LAST: crashes=$CRASHES (total) res=$(echo $RES | tr ' ' ,)"
	echo "SUMMARY: metadata: $CRASHES whole-group crashes, $LOST lost acked writes, $MISM parity mismatches, $STALE stale members used"
	rc=0
	[ -z "$MISSING" ] || { echo "no numbers from boot(s)$MISSING: their results are not in the totals"; rc=1; }
	[ "$CRASHES" -ge 10 ] || { echo "fewer than 10 whole-group crashes"; rc=1; }
	[ "$LOST" -eq 0 ] && [ "$MISM" -eq 0 ] && [ "$STALE" -eq 0 ] || rc=1
	[ "$PARTIAL" = 1 ] || { echo "no crash resynced only part of a group's regions"; rc=1; }
	return $rc
}
ktap_check "summary: >= 10 whole-group crashes, no lost acked write, no parity mismatch, no stale member used, only dirty regions resynced" summary

teardown() {
	for g in $GRPS; do
		dmsetup info $g >/dev/null 2>&1 && { dmsetup remove $g || return 1; }
		for m in $(members $g); do dmsetup remove "${m#/dev/mapper/}" || return 1; done
	done
	[ "$(dmsetup ls 2>&1)" = "No devices found" ] || { dmsetup ls; return 1; }
}
ktap_check "volumes and members removed" teardown
ktap_done
