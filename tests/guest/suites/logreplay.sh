# SPDX-License-Identifier: GPL-2.0
# Crash tests that lose the disk cache (issue 18 item 5), the xfstests generic/455 method:
# every write, flush and FUA that the target sends to its members is recorded by one
# dm-log-writes device (vda, its log on vdb), whose dm-linear slices are the members, so one
# log orders every member's writes. dm-log-writes logs a plain write only when a later flush
# covers it (a volatile cache may lose it until then) and a FUA write at once. The log is
# then replayed onto a scratch disk (vdc: the replay base, advanced from point to point;
# vdd: the copy each point is checked on) up to every replay point:
#
#   full point  every entry up to and including a flush entry, a FUA entry or a mark
#   sub-point   every entry up to the previous flush, then the entries after it up to a
#               seeded index (the first sub-point: up to the flush itself, not included)
#               with a seeded half of the plain writes among them dropped: what a power cut
#               before that flush may leave on disk
#
# At each point the group is started on the replayed members (`group <uuid>`, its bitmap and
# superblocks as the log left them), resynced (resync_pending 0), every block of the volume
# checked against the acknowledged phases (amf-iotool phase-check), removed and its parity or
# copies checked by `amfctl scrub` of the members. Degraded (raid5/raid6 without member 1):
# at the phase marks (a quiesced group) for every group, and at every point for raid5 `ppl`,
# whose log must close the write hole of a group that was dirty at the cut; at the
# sub-points for raid5 (every point in check-full, raid6 too), where the group was dirty
# and has no log entry for its torn rows: the start must be refused ("Dirty degraded
# group", as md refuses a dirty degraded array), or succeed with every acknowledged block.
# Before that refusal, check-full found 596 acknowledged blocks read back wrong there.
#
# Workload per group (amf-iotool phase-write): phase 1 writes the whole volume and
# fdatasyncs; phases 2..K write seeded 4..96 KiB extents (so writes cross chunks and stripes:
# torn across members when a cut drops part of them), plain O_DIRECT (no O_DSYNC: the target
# writes a FUA bio's parity with FUA, which dm-log-writes logs at once, before an earlier
# plain write of the same parity block that it logs only at the next flush; a replay would
# end with the older parity, see amf-iotool's replay.rs); then the regions are cleaned (phase 2: the bitmap sweeper after 11 s of idleness;
# the others: a suspend and resume) and the phase ends with an fdatasync (a flush) and the log
# mark `ack<P>`. A phase is acknowledged at a replay point when its mark is in the replayed
# part: its blocks must hold its generation or a later phase's (never garbage, never older).
# Without a flush before the "clean" marks, the clearing bitmap write is logged before the
# phase's data, which the next flush covers: a sub-point there drops part of a stripe's
# writes in a region the bitmap calls clean; no resync repairs it (scrub mismatches, and a
# degraded start rebuilds acknowledged blocks wrong).
#
# make check: 4 phases, the points every `ack` mark, the last flush before each (and its
# sub-point: where a module without the flush before "clean" marks loses) and one FUA
# entry, 11 points a group.
# LOGREPLAY_FULL=1 (amf.env, `make check-full`): 6 phases, the last 3 carrying flushes
# before each mark, 24 more flushes and 12 FUA entries spread over the log (amf.env LR_LAST,
# LR_SPREAD, LR_FUA: more), 3 sub-points a flush, degraded at every point of every
# raid5/raid6 group, and the ext4 group (LOGREPLAY_FS=1 adds it to the short run).
#
# Once more with a file system (xfstests generic/482): ext4 on a raid5 x4 group, a small
# seeded file-system workload while logging (fs_stress below; fsstress is not packaged),
# then at each point the replayed ext4 mounted (its journal replayed), unmounted and
# `e2fsck -fn` clean, and the group's parity scrubbed.
#
# Disks: vda 96 MiB (16 MiB a group: 4 members of 4 MiB, 3 MiB reserved area + 1 MiB data,
# 128 KiB regions, 32 KiB chunks; the ext4 group 4 x 7 MiB, 4 MiB data a member), vdb 96 MiB
# (the log, started again for every group), vdc and vdd 96 MiB (the replays). Prints
#   # SUMMARY: logreplay: <n> replay points, <l> lost acked writes, <m> parity mismatches,
#     <r> dirty degraded starts refused
# shellcheck disable=SC1091 # the guest's path
. /amf/lib/ktap.sh

FULL=${LOGREPLAY_FULL:-0}
GROUPS_ALL="r1 r5 r6 r5p fs"
SEED=4242
WRITES=24
MAXSPAN=24
if [ "$FULL" = 1 ]; then
	# (every flush of raid5 ppl, ~900 entries, would take hours: LR_* cap the points)
	PHASES=6 SUBS=3 LR_FUA=${LR_FUA:-12} LR_LAST=${LR_LAST:-3} LR_SPREAD=${LR_SPREAD:-24} FS_OPS=400 FS_SPREAD=${LR_SPREAD:-24}
else
	PHASES=4 SUBS=1 LR_FUA=1 LR_LAST=1 LR_SPREAD=0 FS_OPS=80 FS_SPREAD=8
	# ext4 only in the full run (LOGREPLAY_FS=1 adds it here)
	[ "${LOGREPLAY_FS:-0}" = 1 ] || GROUPS_ALL="r1 r5 r6 r5p"
fi
# amf.env=LR_GROUPS=r5+r6: these groups only (a partial run, e.g. to repeat part of check-full).
[ -n "${LR_GROUPS:-}" ] && GROUPS_ALL=$(echo "$LR_GROUPS" | tr '+' ' ')
NG=$(echo $GROUPS_ALL | wc -w)
W=/tmp/lr
mkdir -p $W
POINTS=0 LOST=0 MISM=0 FSCK=0 FS_POINTS=0 REFUSED=0

ktap_plan $((2 + 2 * NG))
ktap_check "load dm-amf" amf_load

# gv NAME: GL level, GN members, GLEN volume sectors, GU uuid, GB base sector on vda, GPPL,
# GI index.
gv() {
	GPPL=0 GMS=8192
	case $1 in
	r1) GI=0 GL=raid1 GN=2 GLEN=2048 ;;
	r5) GI=1 GL=raid5 GN=4 GLEN=6144 ;;
	r6) GI=2 GL=raid6 GN=4 GLEN=4096 ;;
	r5p) GI=3 GL=raid5 GN=4 GLEN=6144 GPPL=1 ;;
	# ext4 on raid5 x4: 4 MiB of data a member, 12 MiB volume
	fs) GI=4 GL=raid5 GN=4 GMS=14336 GLEN=24576 ;;
	esac
	GU=1060e1a5-0000-4000-8000-00000000000$GI
	GB=$((GI * 32768))
}
MOFF=6144 # data offset; GMS the member slice

# members NAME DISK PREFIX: create PREFIX0.. as slices of DISK.
mk_members() {
	gv "$1"
	_k=0
	while [ $_k -lt "$GN" ]; do
		dm_create "$3$_k" "0 $GMS linear $2 $((GB + _k * GMS))" || { echo "$3$_k: $DM_OUT"; return 1; }
		_k=$((_k + 1))
	done
}
rm_members() {
	gv "$1"
	_k=0
	while [ $_k -lt "$GN" ]; do
		dmsetup remove "$2$_k" || return 1
		_k=$((_k + 1))
	done
}
# table NAME PREFIX [MISSING]
table() {
	gv "$1"
	_t="0 $GLEN amf $GL $((3 + GPPL)) 64 group $GU$([ "$GPPL" = 1 ] && echo ' ppl') $GN"
	_k=0
	while [ $_k -lt "$GN" ]; do
		if [ "$_k" = "${3:-}" ]; then _t="$_t - $MOFF"; else _t="$_t /dev/mapper/$2$_k $MOFF"; fi
		_k=$((_k + 1))
	done
	echo "$_t"
}

pending0() {
	_s=$(dmsetup status "$1" 2>/dev/null) || return 1
	echo "$_s" | awk '{ for (i = 10; i <= NF; i++) if ($i == "bitmap") b = i; exit !(b && $(b + 3) == 0) }'
}
poll() {
	_ps=$1
	shift
	_pt=$(date +%s)
	until "$@" >/dev/null 2>&1; do
		[ $(($(date +%s) - _pt)) -ge "$_ps" ] && return 1
		sleep 0.5
	done
}

# ------------------------------------------------------------------ logging the workload
workload() {
	g=$1
	gv $g
	dmsetup info lw >/dev/null 2>&1 && { dmsetup remove lw || return 1; }
	dd if=/dev/zero of=/dev/vdb bs=4096 count=1 oflag=direct status=none || return 1
	dm_create lw "0 $(blockdev --getsz /dev/vda) log-writes /dev/vda /dev/vdb" ||
		{ echo "log-writes: $DM_OUT"; return 1; }
	mk_members $g /dev/mapper/lw m || return 1
	_m=
	_k=0
	while [ $_k -lt "$GN" ]; do _m="$_m /dev/mapper/m$_k"; _k=$((_k + 1)); done
	# shellcheck disable=SC2086 # member list
	amfctl format --force --level $GL --chunk 32K --region 128K --uuid $GU \
		--data-offset $((MOFF / 2))K --size $(((GMS - MOFF) / 2))K $_m >$W/fmt 2>&1 ||
		{ cat $W/fmt; return 1; }
	dm_create v "$(table $g m)" || { echo "create: $DM_OUT"; return 1; }
	table $g m
	if [ $g = fs ]; then
		fs_workload || return 1
	else
		amf-iotool write --dev /dev/mapper/v --seed $SEED --gen 1 --bs 256 || return 1
		dmsetup message lw 0 mark ack1 || return 1
	fi
	p=2
	[ $g = fs ] && p=$((PHASES + 1))
	while [ $p -le $PHASES ]; do
		amf-iotool phase-write --dev /dev/mapper/v --seed $SEED --phase $p --writes $WRITES \
			--maxspan $MAXSPAN || return 1
		if [ $p -eq 2 ]; then
			# The sweeper clears a region's bit after one to two idle periods of 5 s; it
			# runs when the stripe worker does: one more write of this phase wakes it
			sleep 11
			# (the phase's first write again: the checker knows it)
			amf-iotool phase-write --dev /dev/mapper/v --seed $SEED --phase $p --writes 1 --maxspan $MAXSPAN >/dev/null || return 1
		else
			dmsetup suspend v && dmsetup resume v || return 1
		fi
		amf-iotool phase-write --dev /dev/mapper/v --seed $SEED --phase $p --writes 0 --fsync 1 >/dev/null || return 1
		dmsetup message lw 0 mark ack$p || return 1
		p=$((p + 1))
	done
	dmsetup status v
	dmsetup remove v && rm_members $g m && dmsetup remove lw || return 1
	amf-iotool replay --log /dev/vdb --points >$W/points || { cat $W/points; return 1; }
	echo "log: $(tail -1 $W/points), $(grep -c ' F' $W/points) flushes ($(awk '$2 ~ /F/ && $3 > 0' $W/points | wc -l) carrying plain writes), $(grep -c ' U$' $W/points) FUA-only, marks: $(awk '$2 == "M" { printf "%s@%s ", $3, $1 }' $W/points)"
}

# ------------------------------------------------------------------ the file system (generic/482)
# fs_stress DIR N SEED: N seeded operations of a small file-system workload (busybox): create
# or overwrite a file (1..8 KiB written with fsync), append with fsync, rename, unlink,
# mkdir, sync. Not fsstress (xfstests' ltp/fsstress.c is not packaged in Debian): this is the
# same kind of metadata churn, smaller.
fs_stress() {
	_d=$1 _n=$2 _r=$3 _i=0
	mkdir -p "$_d/d0" "$_d/d1" "$_d/d2" "$_d/d3" || return 1
	while [ $_i -lt "$_n" ]; do
		_r=$(((_r * 1103515245 + 12345) % 2147483648))
		_x=$((_r >> 8))
		_f=$_d/d$((_x % 4))/f$((_x / 4 % 16))
		_t=$_d/d$((_x / 64 % 4))/f$((_x / 256 % 16))
		case $((_x / 4096 % 8)) in
		0 | 1) dd if=/dev/urandom of="$_f" bs=1k count=$((1 + _x / 32768 % 8)) conv=fsync status=none ;;
		2) [ -e "$_f" ] && dd if=/dev/urandom of="$_f" bs=1k count=2 oflag=append conv=notrunc,fsync status=none ;;
		3) [ -e "$_f" ] && mv "$_f" "$_t" ;;
		4) rm -f "$_f" ;;
		5) mkdir -p "$_d/d$((_x % 4))/s$((_x / 4 % 4))" ;;
		6) rm -rf "$_d/d$((_x % 4))/s$((_x / 4 % 4))" ;;
		7) sync ;;
		esac
		_i=$((_i + 1))
	done
	sync
}

# fs_workload: ext4 made on the volume, mounted, the mark ack1 (points start there), the
# stress, unmounted.
fs_workload() {
	/usr/sbin/mke2fs -q -F -t ext4 /dev/mapper/v || return 1
	mkdir -p /mnt/lr
	mount -t ext4 /dev/mapper/v /mnt/lr || return 1
	dmsetup message lw 0 mark ack1 || { umount /mnt/lr; return 1; }
	fs_stress /mnt/lr $FS_OPS $SEED
	_rc=$?
	echo "ext4: $(find /mnt/lr -type f | wc -l) files, $(df -k /mnt/lr | awk 'NR == 2 { print $3 }') KiB used after $FS_OPS operations"
	umount /mnt/lr || return 1
	dmsetup message lw 0 mark fs-end || return 1
	return $_rc
}

# fs_check DESC: the replayed ext4 mounted (its journal replayed), unmounted, `e2fsck -fn`
# clean. FSCK += 1 otherwise.
fs_check() {
	mkdir -p /mnt/lr
	if ! mount -t ext4 /dev/mapper/c /mnt/lr >$W/fsck 2>&1; then
		echo "$1: mount failed: $(tail -1 $W/fsck)"
		FSCK=$((FSCK + 1))
		return
	fi
	umount /mnt/lr
	if ! /usr/sbin/e2fsck -fn /dev/mapper/c >$W/fsck 2>&1; then
		echo "$1: e2fsck -fn:"
		tail -5 $W/fsck
		FSCK=$((FSCK + 1))
	fi
}

# ------------------------------------------------------------------ one replay point
# acked_at N: the highest phase whose mark has an index below N.
acked_at() { awk -v n="$1" '$2 == "M" && $1 < n && $3 ~ /^ack/ { a = substr($3, 4) } END { print a + 0 }' $W/points; }

# work FROM TO [SEED DROPFROM]: vdd's slices = vdc's (the base, replayed up to FROM), then
# the entries FROM..TO replayed onto vdd (with a seed: a seeded half of the plain writes from
# DROPFROM on dropped).
work() {
	dd if=/dev/vdc of=/dev/vdd bs=1M skip=$((GB / 2048)) seek=$((GB / 2048)) count=$(((GN * GMS + 2047) / 2048)) \
		iflag=direct oflag=direct status=none || return 1
	amf-iotool replay --log /dev/vdb --dev /dev/vdd --from "$1" --to "$2" \
		${3:+--drop-seed "$3" --drop-from "$4"} || return 1
}

# check_on NAME DESC [MISSING]: the group on vdd's slices: started, resynced, every block
# checked; scrubbed when whole. PT_LOST, PT_MISM.
check_on() {
	g=$1
	mk_members $g /dev/vdd w || return 1
	kmsg_mark
	if ! dm_create c "$(table $g w "${3:-}")"; then
		rm_members $g w
		# A degraded start of a group that was dirty (regions to resync) is refused without
		# ppl, as md refuses a dirty degraded array: the lost member's chunks of torn rows
		# are unrecoverable. With ppl it must start. (dm core logs the target's reason.)
		if [ -n "${3:-}" ] && [ "$GPPL" = 0 ] &&
			dmesg_since_mark | grep -q "amf: Dirty degraded group: start it whole to resync"; then
			PT_REFUSED=$((PT_REFUSED + 1))
			return 0
		fi
		echo "$2: create: $DM_OUT"
		dmesg_since_mark | tail -3
		return 1
	fi
	if ! poll 60 pending0 c; then
		echo "$2: resync_pending not 0 after 60 s: $(dmsetup status c)"
		dmsetup remove c
		rm_members $g w
		return 1
	fi
	if [ $g = fs ]; then
		fs_check "$2"
	else
		amf-iotool phase-check --dev /dev/mapper/c --seed $SEED --phases $PHASES --acked "$PT_ACKED" \
			--writes $WRITES --maxspan $MAXSPAN >$W/pc 2>&1
		_rc=$?
		_b=$(sed -n 's/^phase-check: [0-9]* blocks, \([0-9]*\) bad.*/\1/p' $W/pc)
	fi
	if [ $g != fs ] && { [ $_rc -ne 0 ] || [ -z "$_b" ]; }; then
		echo "$2: $(tail -1 $W/pc)"
		grep LOST $W/pc | head -3
		PT_LOST=$((PT_LOST + ${_b:-1}))
	fi
	dmsetup remove c || return 1
	if [ -z "${3:-}" ]; then
		_a=
		_k=0
		while [ $_k -lt "$GN" ]; do _a="$_a --dev /dev/mapper/w$_k:$MOFF"; _k=$((_k + 1)); done
		# shellcheck disable=SC2086 # word list
		amfctl scrub --level $GL --chunk 32K --size $GLEN $_a >$W/sc 2>&1
		_rc=$?
		_mm=$(sed -n 's/^scrub: [0-9]* stripes checked, \([0-9]*\) mismatched$/\1/p' $W/sc)
		if [ $_rc -ne 0 ] || [ "${_mm:-x}" != 0 ]; then
			echo "$2: amfctl scrub exit $_rc: $(tail -1 $W/sc)"
			head -2 $W/sc
			PT_MISM=$((PT_MISM + ${_mm:-1}))
		fi
	fi
	rm_members $g w
}

# point NAME DESC FROM TO [SEED DROPFROM]: one replay point, whole and (DEG=1) degraded.
point() {
	PT_ACKED=$(acked_at "$4")
	work "$3" "$4" "${5:-}" "${6:-}" >$W/rp 2>&1 || { cat $W/rp; return 1; }
	check_on "$1" "$2 (acked 1..$PT_ACKED)" || return 1
	if [ "$DEG" = 1 ]; then
		work "$3" "$4" "${5:-}" "${6:-}" >$W/rp 2>&1 || { cat $W/rp; return 1; }
		check_on "$1" "$2 degraded (acked 1..$PT_ACKED)" 1 || return 1
	fi
	G_POINTS=$((G_POINTS + 1))
}

replays() {
	g=$1
	gv $g
	G_POINTS=0 PT_LOST=0 PT_MISM=0 PT_REFUSED=0
	n=$(awk '$1 == "entries" { print $2 }' $W/points)
	# The points: from the mark ack1 on (before it the volume is being formatted and
	# filled); every `ack` mark; the last LR_LAST flushes that carry plain writes before
	# each mark (the flush that covers a phase's data and the clean marks before it: a
	# flush of the volume is one flush entry a member, the first carries the writes); LR_SPREAD other flushes and LR_FUA FUA
	# entries, evenly spread (LOGREPLAY_FULL=1: every flush and FUA entry).
	_sp=$LR_SPREAD
	[ $g = fs ] && _sp=$FS_SPREAD
	awk -v last="$LR_LAST" -v spread="$_sp" -v nfua="$LR_FUA" '
		{ i[NR] = $1; f[NR] = $2; m[NR] = $3; n = NR; pf[NR] = lf; if ($2 ~ /F/) lf = $1 + 1 }
		$2 == "M" && $3 == "ack1" && !a1 { a1 = NR }
		END {
			if (!a1) exit 1
			for (k = a1; k <= n; k++) {
				if (f[k] == "M" && m[k] ~ /^ack/) { take[k] = 1; c = 0; for (j = k - 1; j > a1 && c < last; j--) if (f[j] ~ /F/ && m[j] > 0) { take[j] = 1; c++ } }
			}
			for (k = a1; k <= n; k++) {
				if (f[k] ~ /F/ && !take[k]) of[++no] = k
				if (f[k] == "U") ou[++nu] = k
			}
			for (t = 1; t <= spread && no; t++) take[of[int((t - 0.5) * no / spread) + 1]] = 1
			for (t = 1; t <= nfua && nu; t++) take[ou[int((t - 0.5) * nu / nfua) + 1]] = 1
			for (k = a1; k <= n; k++) if (take[k] && i[k] != "entries") print i[k], f[k], pf[k] + 0, m[k]
		}' $W/points >$W/sel || { echo "no mark ack1 in the log"; return 1; }
	# The base starts at the first point (ack1): vdc replayed up to it.
	base=$(awk 'NR == 1 { print $1 }' $W/sel)
	amf-iotool replay --log /dev/vdb --dev /dev/vdc --from 0 --to "$base" >/dev/null || return 1
	rnd=$((SEED + GI * 1000))
	# Each line: index, flags, the first entry after the flush before it, mark (a flush:
	# the plain writes it carries).
	while read -r idx fl lastf mk; do
		to=$((idx + 1))
		# Sub-points before a flush: from the previous flush, a seeded half of the plain
		# writes dropped, up to the flush (the first) or a seeded index below it.
		case $fl in
		*F*)
			s=0
			while [ $s -lt $SUBS ]; do
				rnd=$(((rnd * 1103515245 + 12345) % 2147483648))
				sub=$idx
				[ $s -gt 0 ] && [ "$idx" -gt "$lastf" ] && sub=$((lastf + (rnd >> 8) % (idx - lastf) + 1))
				[ "$sub" -gt "$base" ] || sub=$idx
				DEG=$((SUBDEG | SUBONLYDEG)) point $g "sub-point $lastf..$sub of flush $idx, drop seed $rnd" \
					$base "$sub" $rnd $lastf >>$W/pts 2>&1 || return 1
				s=$((s + 1))
			done
			;;
		esac
		d=$SUBDEG
		[ "$fl" = M ] && d=$MARKDEG
		DEG=$d point $g "point $idx ($fl${mk:+ $mk})" $base $to >>$W/pts 2>&1 || return 1
		# The base advances to this point.
		amf-iotool replay --log /dev/vdb --dev /dev/vdc --from $base --to $to >/dev/null || return 1
		base=$to
	done <$W/sel
	[ "$base" -le "$n" ] || return 1
	return 0
}

lr_group() {
	g=$1
	gv $g
	MARKDEG=0 SUBDEG=0 SUBONLYDEG=0
	case $g in r5 | r6) MARKDEG=1 ;; r5p) MARKDEG=1 SUBDEG=1 ;; esac
	# make check: raid5 degraded at its sub-points too (each one dirty: refused).
	[ $g = r5 ] && SUBONLYDEG=1
	[ "$FULL" = 1 ] && [ $g != r1 ] && [ $g != fs ] && SUBDEG=1
	: >$W/pts
	fsck0=$FSCK
	t0=$(date +%s)
	replays $g
	rc=$?
	cat $W/pts
	echo "$g: $G_POINTS replay points (degraded too: marks $MARKDEG, sub-points $((SUBDEG | SUBONLYDEG)), others $SUBDEG), $PT_REFUSED dirty degraded starts refused, $PT_LOST lost acked blocks, $PT_MISM parity mismatches, $((FSCK - fsck0)) fsck failures, $(($(date +%s) - t0)) s"
	REFUSED=$((REFUSED + PT_REFUSED))
	if [ $g = fs ]; then
		FS_POINTS=$G_POINTS
	else
		POINTS=$((POINTS + G_POINTS)) LOST=$((LOST + PT_LOST))
	fi
	MISM=$((MISM + PT_MISM))
	[ $rc -eq 0 ] && [ "$PT_LOST" -eq 0 ] && [ "$PT_MISM" -eq 0 ] && [ "$FSCK" -eq "$fsck0" ] && [ "$G_POINTS" -gt 0 ]
}

for g in $GROUPS_ALL; do
	gv $g
	if [ $g = fs ]; then
		ktap_check "fs ($GL x$GN): ext4 made, mounted, $FS_OPS seeded file-system operations (write+fsync, append, rename, unlink, mkdir, sync) logged" workload $g
		lr_group $g >$W/out 2>&1
		rc=$?
		ktap_diag_file $W/out
		ktap_result "fs: replayed at flushes (some), FUA entries (some), marks and sub-points: started, resynced, mounted (journal replayed), e2fsck -fn clean, scrub clean" $rc \
			"fs: fsck failures or parity mismatches after a replay"
		continue
	fi
	ktap_check "$g ($GL x$GN$([ "$GPPL" = 1 ] && echo ', ppl')): members slices of one dm-log-writes device; $PHASES phases written and logged (phase 2 cleaned by the sweeper, the others by a suspend)" workload $g
	lr_group $g >$W/out 2>&1
	rc=$?
	ktap_diag_file $W/out
	ktap_result "$g: replayed at its points (marks, flushes, FUA entries) and sub-points dropping unflushed writes: started, resynced, every acknowledged block intact, scrub clean" $rc \
		"$g: lost acked blocks or parity mismatches after a replay"
done

summary() {
	echo "SUMMARY: logreplay: $POINTS replay points, $LOST lost acked writes, $MISM parity mismatches, $REFUSED dirty degraded starts refused"
	case " $GROUPS_ALL " in
	*" fs "*)
		echo "SUMMARY: logreplay-fs: ext4, $FS_POINTS replay points, $FSCK fsck failures"
		[ "$FS_POINTS" -gt 0 ] || return 1 ;;
	esac
	[ "$POINTS" -gt 0 ] && [ "$LOST" -eq 0 ] && [ "$MISM" -eq 0 ] && [ "$FSCK" -eq 0 ]
}
ktap_check "summary: no lost acked write, no parity mismatch" summary
ktap_done
