# SPDX-License-Identifier: GPL-2.0
# Group metadata (`group <uuid>`, Documentation/table-syntax.rst "Group metadata",
# Documentation/on-disk-format.rst): members formatted with `amfctl format`, the table from
# `amfctl table --group`, the kernel assembling the group from the members' superblocks.
# Only the public interface: dmsetup (create, table, status, message), amfctl
# (format, examine --json, table, scrub), the kernel log, and dd on the members' reserved
# areas (slots A and B at sectors 8 and 16, 4 KiB each). The members are dm-linear devices
# (m0, m1...) over the disks, so that one can be failed under a live volume by swapping its
# table to the error target, and put back on its disk afterwards.
#
#   raid5 x4: assembled (AAAA, `group <uuid>` in the table, one event counter); refused:
#             a member of another group, two members swapped, a wrong data offset, another
#             chunk size, three members of four, two members with one role; one member's
#             newer slot corrupted (assembles from the other slot); an unknown format
#             version in one slot (refused); a member failed at runtime (recorded, comes
#             back D, its stale data never read; `rebuild` with it is too many failures);
#             `message rebuild` recorded (in sync after a restart, scrub clean); a stale
#             superblock restored on a member (D, never read, recorded failed at resume)
#   raid6 x5: two members failed at runtime, recorded, back as D D after a restart, rebuilt
#             one after the other by message, in sync after a restart
#
# Every check of data compares the whole volume (O_DIRECT) with a reference file in tmpfs
# (lib/raid.sh). Needs 6 disks of 32 MiB (vda..vdf; vdf holds the foreign member).
# shellcheck disable=SC1091 # the guest's path
. /amf/lib/ktap.sh
# shellcheck source-path=SCRIPTDIR source=../lib/raid.sh
. /amf/lib/raid.sh

N_R5=34
N_R6=10
N_PPL=9
ktap_plan $((1 + N_R5 + N_R6 + N_PPL + 1))

G_WRITES=20  # random writes while a member is failed
G_WAIT=300   # seconds a rebuild may take

amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"

# ------------------------------------------------------------------ helpers

# Members m0, m1...: p_members, p_majmin, p_swap (lib/raid.sh).
g_fail() { p_swap "$1" "0 $(blockdev --getsz "/dev/mapper/m$1") error"; }
g_remap() { p_swap "$1" "0 $(dev_sectors "$2") linear /dev/$2 0"; }

# g_ex DEV: `amfctl examine --json DEV` -> EX_EVENTS, EX_ROLE, EX_SLOT, EX_OTHER (why the
# other slot lost, or "valid"), EX_STATES (member table states, "in_sync failed ..."), and
# one line of it. The device's page cache is dropped first: the kernel writes the slots
# with bios underneath it.
g_ex() {
	blockdev --flushbufs "$1" 2>/dev/null || p_drop
	g_j=$(amfctl examine --json "$1" 2>&1) || { echo "amfctl examine $1: $g_j"; return 1; }
	EX_EVENTS=$(echo "$g_j" | sed -n 's/^  "events": \([0-9]*\).*/\1/p')
	EX_ROLE=$(echo "$g_j" | sed -n 's/^  "role": \([0-9]*\).*/\1/p')
	EX_SLOT=$(echo "$g_j" | sed -n 's/^  "slot": "\(.*\)",*$/\1/p')
	EX_OTHER=$(echo "$g_j" | sed -n 's/^  "other_slot": "\(.*\)",*$/\1/p')
	EX_STATES=$(echo "$g_j" | sed -n 's/^ *"state": "\([a-z_]*\)".*/\1/p' | tr '\n' ' ')
	EX_STATES=${EX_STATES% }
	echo "$1: events $EX_EVENTS, role $EX_ROLE, slot $EX_SLOT (other: $EX_OTHER), members: $EX_STATES"
	if [ -z "$EX_EVENTS" ] || [ -z "$EX_ROLE" ]; then echo "$g_j"; return 1; fi
}

# g_meta EVENTS STATES I...: members mI hold their own role, event counter EVENTS ("" for
# any, the same on all of them) and the member states STATES.
g_meta() {
	g_e=$1 g_s=$2 g_bad=0
	shift 2
	for g_i in "$@"; do
		g_ex "/dev/mapper/m$g_i" || { g_bad=1; continue; }
		[ -n "$g_e" ] || g_e=$EX_EVENTS
		[ "$EX_EVENTS" = "$g_e" ] || { echo "  m$g_i: events $EX_EVENTS, want $g_e"; g_bad=1; }
		[ "$EX_ROLE" = "$g_i" ] || { echo "  m$g_i: role $EX_ROLE, want $g_i"; g_bad=1; }
		[ "$EX_STATES" = "$g_s" ] || { echo "  m$g_i: states '$EX_STATES', want '$g_s'"; g_bad=1; }
	done
	G_EV=$g_e
	return $g_bad
}

# g_states [I...]: the member states of a group of P_N members, "failed" for each I.
g_states() {
	g_k=0 g_o=''
	while [ $g_k -lt "$P_N" ]; do
		case " $* " in *" $g_k "*) g_o="$g_o failed" ;; *) g_o="$g_o in_sync" ;; esac
		g_k=$((g_k + 1))
	done
	echo "${g_o# }"
}

# g_create CHARS: the volume created from $G_TABLE, status with CHARS.
g_create() {
	echo "table: $G_TABLE"
	kmsg_mark
	if ! dm_create "$P_NAME" "$G_TABLE"; then
		echo "create failed: $DM_OUT"
		dmesg_since_mark | grep -F 'amf'
		return 1
	fi
	p_health "$1"
}

# g_remove: the volume removed.
g_remove() {
	dmsetup remove "$P_NAME" || { echo "remove $P_NAME failed"; return 1; }
}

# g_refused TABLE MESSAGE: `dmsetup create` with TABLE fails, the kernel log has exactly one
# line "device-mapper: table: <maj:min>: amf: MESSAGE (-EINVAL)" (no other amf refusal; the
# errno is "-22" without CONFIG_SYMBOLIC_ERRNAME), and no device is left.
g_refused() {
	echo "table: $1"
	kmsg_mark
	if dm_create "$P_NAME" "$1"; then
		echo "created: $(dmsetup status "$P_NAME")"
		dmsetup remove "$P_NAME"
		return 1
	fi
	echo "dmsetup: $DM_OUT"
	dmesg_since_mark | sed -n 's/^.*\(device-mapper: table: [0-9]*:[0-9]*: amf: .*\)$/\1/p' \
		>"$P_TMP/g_ref"
	cat "$P_TMP/g_ref"
	g_rc=0
	g_got=$(sed 's/^device-mapper: table: [0-9]*:[0-9]*: amf: //' "$P_TMP/g_ref")
	case $g_got in
	"$2 (-EINVAL)" | "$2 (-22)") ;;
	*) echo "want exactly one kernel line '...: amf: $2 (-EINVAL)'"; g_rc=1 ;;
	esac
	if dmsetup info "$P_NAME" >/dev/null 2>&1; then
		echo "$P_NAME left behind"
		dmsetup remove "$P_NAME"
		g_rc=1
	fi
	return $g_rc
}

# g_amftable LEVEL CHUNK SIZE UUID I...: g_t = `amfctl table --group UUID` of members mI
# (4M data offset each); printed when amfctl fails. With G_OFFLINE=--offline amfctl reads no
# superblock (it would refuse a table that does not match them, as the kernel does), so
# that the kernel's own refusal is tested.
G_OFFLINE=
g_amftable() {
	g_al=$1 g_ac=$2 g_as=$3 g_au=$4 g_ad=''
	shift 4
	for g_i in "$@"; do g_ad="$g_ad --dev /dev/mapper/m$g_i:4M"; done
	# shellcheck disable=SC2086 # g_ad is a word list, G_OFFLINE empty or one word
	g_t=$(amfctl table $G_OFFLINE --level "$g_al" --chunk "$g_ac" --size "$g_as" --group "$g_au" $g_ad 2>&1) ||
		{ echo "$g_t"; return 1; }
}

# g_amfrefuses WANT LEVEL CHUNK SIZE UUID I...: amfctl table (members opened, superblocks
# read) refuses the table with the kernel's message WANT before any kernel sees it.
g_amfrefuses() {
	g_want=$1
	shift
	if g_amftable "$@" >"$P_TMP/g_ar"; then echo "amfctl accepted: $g_t"; return 1; fi
	cat "$P_TMP/g_ar"
	case $(cat "$P_TMP/g_ar") in
	"amfctl: $g_want ("*) ;;
	*) echo "amfctl did not refuse with '$g_want'"; return 1 ;;
	esac
}

# g_wait CHARS: the volume's status reaches health CHARS and idle (after `message
# rebuild`), within G_WAIT seconds.
g_wait() {
	g_w=0
	while [ $g_w -lt $G_WAIT ]; do
		g_st=$(dmsetup status "$P_NAME")
		# raid5/6 groups end with their write-intent bitmap part: nothing left to resync.
		case $g_st in
		"0 $P_LEN amf $P_LEVEL $P_N $1 $P_LEN/$P_LEN idle 0" | \
			"0 $P_LEN amf $P_LEVEL $P_N $1 $P_LEN/$P_LEN idle 0 bitmap "[0-9]*" "[0-9]*" 0 "[0-9]*)
			echo "$g_st after about $g_w s"
			return 0
			;;
		esac
		sleep 1
		g_w=$((g_w + 1))
	done
	echo "no '$1 ... idle' after $G_WAIT s: $g_st"
	return 1
}

# g_rebuild I CHARS: `dmsetup message <vol> 0 rebuild I` on the live volume; waits for
# health CHARS and idle. The kernel's lines about it.
g_rebuild() {
	kmsg_mark
	dmsetup message "$P_NAME" 0 rebuild "$1" || { echo "message rebuild $1 refused"; return 1; }
	g_wait "$2" || return 1
	dmesg_since_mark | grep -E 'rebuild|superblock|cannot record'
	return 0
}

# g_logged I...: the kernel log since the mark says once of each member I that it failed,
# and of no other member (p_logged), and has no superblock update failure.
g_logged() {
	p_logged 'dm_amf: ' "$@"
	g_bad=$?
	grep -E 'superblock update failed|cannot record' "$P_TMP/p_log" && g_bad=1
	return $g_bad
}

# g_degraded_writes: one full-stripe write (every member written), then G_WRITES random
# writes, all succeed; the volume equals the reference.
g_degraded_writes() {
	p_write 0 "$P_S" || { echo "full-stripe write at 0 failed"; return 1; }
	: >"$P_TMP/p_writes"
	p_random $G_WRITES
}

# g_get DEV SECTOR COUNT FILE: COUNT sectors of DEV from SECTOR into FILE (O_DIRECT).
g_get() { dd if="$1" of="$4" bs=512 skip="$2" count="$3" iflag=direct status=none; }
# g_put FILE DEV SECTOR: FILE onto DEV from SECTOR (O_DIRECT).
g_put() { dd if="$1" of="$2" bs=512 seek="$3" oflag=direct conv=notrunc status=none; }

# g_flip FILE BYTE N: the N bytes of FILE from BYTE inverted.
g_flip() {
	for g_b in $(od -An -tu1 -j"$2" -N"$3" "$1"); do
		# shellcheck disable=SC2059 # an octal escape built on purpose
		printf "\\$(printf %o $((g_b ^ 255)))"
	done | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# g_slot_sector A|B: first sector of the slot.
g_slot_sector() { case $1 in A) echo 8 ;; *) echo 16 ;; esac; }
g_other() { case $1 in A) echo B ;; *) echo A ;; esac; }

# ------------------------------------------------------------------ raid5 x4 (N_R5 checks)
# 4 MiB of data on each member (from the default data offset, 8192), chunk 32K: a volume of
# 24576 sectors, 128 stripes.
t="raid5 x4"
U5=0123ABCD-4567-89EF-FEDC-BA9876543210
u5=0123abcd-4567-89ef-fedc-ba9876543210
p_setup r5 raid5 64 24576 901 mapper/m0:8192 mapper/m1:8192 mapper/m2:8192 mapper/m3:8192

g_format5() {
	p_members vda vdb vdc vdd || return 1
	amfctl format --level raid5 --chunk 32K --uuid "$U5" --size 4M \
		/dev/mapper/m0 /dev/mapper/m1 /dev/mapper/m2 /dev/mapper/m3 || return 1
	g_meta "" "$(g_states)" 0 1 2 3 || return 1
	amfctl examine /dev/mapper/m2 | grep -E 'Group UUID|Data offset|Data size' >"$P_TMP/g_x"
	cat "$P_TMP/g_x"
	grep -q "Group UUID : $u5\$" "$P_TMP/g_x" || { echo "no 'Group UUID : $u5'"; return 1; }
	grep -q 'Data offset : 8192 sectors$' "$P_TMP/g_x" || { echo "data offset not 8192"; return 1; }
	grep -q 'Data size : 8192 sectors' "$P_TMP/g_x" || { echo "data size not 8192"; return 1; }
}
ktap_check "$t: members m0..m3 (dm-linear over vda..vdd) formatted (upper-case --uuid), examine: roles 0..3, one event counter, all in sync" \
	g_format5

g_table5() {
	g_amftable raid5 32K "$P_LEN" "$U5" 0 1 2 3
	g_r=$? G_TABLE=$g_t
	[ $g_r -eq 0 ] || return 1
	p_expect "$G_TABLE" "0 $P_LEN amf raid5 3 64 group $u5 4 /dev/mapper/m0 8192 /dev/mapper/m1 8192 /dev/mapper/m2 8192 /dev/mapper/m3 8192"
}
ktap_check "$t: amfctl table --group: 'group <uuid>' in lower case, members at 8192" g_table5

ktap_check "$t: created from the superblocks: status AAAA" g_create AAAA

g_dmtable() {
	p_expect "$(dmsetup table "$P_NAME")" \
		"0 $P_LEN amf raid5 3 64 group $u5 4 $(p_majmin 0) 8192 $(p_majmin 1) 8192 $(p_majmin 2) 8192 $(p_majmin 3) 8192"
}
ktap_check "$t: dmsetup table: 3 params, 'group $u5'" g_dmtable

g_fill() { p_fill && p_random 12; }
ktap_check "$t: filled with random data, 12 random writes, volume = reference" g_fill

g_same() {
	g_meta "" "$(g_states)" 0 1 2 3 || return 1
	G_E0=$G_EV
	echo "event counter of the group: $G_E0"
}
ktap_check "$t: examine --json on every member: the same event counter, all in sync" g_same

# --- refused tables (the volume removed; each refusal leaves the members as they were)
ktap_check "$t: volume removed" g_remove

g_foreign() {
	for g_f in 1 2 3; do
		dd if=/dev/zero of="$P_TMP/f$g_f.img" bs=1M count=8 status=none || return 1
	done
	amfctl format --level raid5 --chunk 32K --size 4M \
		/dev/vdf "$P_TMP/f1.img" "$P_TMP/f2.img" "$P_TMP/f3.img" || return 1
	rm -f "$P_TMP"/f?.img
	g_ex /dev/vdf || return 1
	g_refused "$(echo "$G_TABLE" | sed 's#/dev/mapper/m3 8192#/dev/vdf 8192#')" \
		"Member belongs to another group"
}
ktap_check "$t: refused: member 3 replaced by a member of another group (vdf, same shape)" g_foreign

ktap_check "$t: refused: members 1 and 2 swapped" g_refused \
	"$(echo "$G_TABLE" | sed 's#m1 8192#mX 8192#; s#m2 8192#m1 8192#; s#mX 8192#m2 8192#')" \
	"Member given in the wrong position"

ktap_check "$t: refused: member 1 at offset 8200, not its data offset" g_refused \
	"$(echo "$G_TABLE" | sed 's#m1 8192#m1 8200#')" \
	"Member offset is not its superblock's data offset"

g_chunk() {
	g_amfrefuses "Table does not match the group's superblock" raid5 64K "$P_LEN" "$U5" 0 1 2 3 ||
		return 1
	G_OFFLINE=--offline
	g_amftable raid5 64K "$P_LEN" "$U5" 0 1 2 3 || { G_OFFLINE=; return 1; }
	G_OFFLINE=
	g_refused "$g_t" "Table does not match the group's superblock"
}
ktap_check "$t: refused: chunk 64K, the group's is 32K (by amfctl table first)" g_chunk

g_three() {
	g_amfrefuses "Wrong number of members for the group" raid5 32K 16384 "$U5" 0 1 2 || return 1
	G_OFFLINE=--offline
	g_amftable raid5 32K 16384 "$U5" 0 1 2 || { G_OFFLINE=; return 1; }
	G_OFFLINE=
	g_refused "$g_t" "Wrong number of members for the group"
}
ktap_check "$t: refused: members 0..2 only, as a raid5 of three (by amfctl table first)" g_three

g_clone() {
	g_get /dev/mapper/m1 0 24 "$P_TMP/g_clone" && g_put "$P_TMP/g_clone" /dev/vdf 0 || return 1
	g_ex /dev/vdf || return 1
	g_refused "$(echo "$G_TABLE" | sed 's#/dev/mapper/m2 8192#/dev/vdf 8192#')" \
		"Two members with the same role"
}
ktap_check "$t: refused: member 2 replaced by a clone of member 1's superblocks (vdf)" g_clone

g_after() {
	g_create AAAA || return 1
	p_compare || return 1
	g_remove || return 1
	g_meta "$G_E0" "$(g_states)" 0 1 2 3
}
ktap_check "$t: the right table after the refusals: AAAA, volume = reference; removed: event counter still $G_E0" \
	g_after

# --- one member's newer superblock copy corrupted (checksum bytes of member 3's winning slot)
g_corrupt() {
	g_ex /dev/mapper/m3 || return 1
	G_CSLOT=$EX_SLOT
	g_s=$(($(g_slot_sector "$G_CSLOT") + 7))
	echo "inverting bytes 4092..4095 (the CRC) of slot $G_CSLOT: sector $g_s, bytes 508..511"
	g_get /dev/mapper/m3 $g_s 1 "$P_TMP/g_sec" && g_flip "$P_TMP/g_sec" 508 4 &&
		g_put "$P_TMP/g_sec" /dev/mapper/m3 $g_s || return 1
	g_ex /dev/mapper/m3 || return 1
	[ "$EX_SLOT" = "$(g_other "$G_CSLOT")" ] || { echo "examine still takes slot $EX_SLOT"; return 1; }
	case $EX_OTHER in
	"Superblock checksum mismatch"*) ;;
	*) echo "other slot: '$EX_OTHER', want 'Superblock checksum mismatch ...'"; return 1 ;;
	esac
	g_create AAAA || return 1
	p_compare || return 1
	g_remove
}
ktap_check "$t: member 3's winning slot corrupted (CRC): assembles from the other slot, AAAA, volume = reference" \
	g_corrupt

# --- an unknown format version in member 1's other slot (version field 2; the CRC then fails
# too, but decode checks the version first)
g_version() {
	g_ex /dev/mapper/m1 || return 1
	G_VSLOT=$(g_other "$EX_SLOT")
	G_VSEC=$(g_slot_sector "$G_VSLOT")
	echo "version field of slot $G_VSLOT (sector $G_VSEC, bytes 8..11) set to 2"
	g_get /dev/mapper/m1 "$G_VSEC" 1 "$P_TMP/g_vsave" || return 1
	cp "$P_TMP/g_vsave" "$P_TMP/g_sec"
	printf '\002\000\000\000' | dd of="$P_TMP/g_sec" bs=1 seek=8 conv=notrunc status=none
	g_put "$P_TMP/g_sec" /dev/mapper/m1 "$G_VSEC" || return 1
	blockdev --flushbufs /dev/mapper/m1
	g_o=$(amfctl examine /dev/mapper/m1 2>&1) && { echo "examine accepted it: $g_o"; return 1; }
	echo "examine: $g_o"
	echo "$g_o" | grep -q 'Unknown superblock format version' || { echo "examine: not the version"; return 1; }
	g_refused "$G_TABLE" "Unknown superblock format version"
}
ktap_check "$t: refused: member 1's other slot with format version 2 (its winning slot valid)" g_version

g_restore_version() {
	g_put "$P_TMP/g_vsave" /dev/mapper/m1 "$G_VSEC" || return 1
	g_meta "$G_E0" "$(g_states)" 1 || return 1
	[ "$EX_OTHER" = valid ] || { echo "other slot: $EX_OTHER"; return 1; }
	# Member 1's reserved area as it is now (event $G_E0), for the stale-member checks.
	g_get /dev/mapper/m1 0 24 "$P_TMP/g_m1old"
}
ktap_check "$t: member 1's slot restored: examine valid, both slots (area saved for later)" g_restore_version

# --- a member failing at runtime: recorded before the writes that rely on it complete
g_runtime() {
	g_create AAAA || return 1
	kmsg_mark
	g_fail 2 || return 1
	g_degraded_writes
}
ktap_check "$t: member 2 fails (error under m2): a full-stripe and $G_WRITES random writes succeed, volume = reference" \
	g_runtime
ktap_check "$t: status AADA" p_health AADA
ktap_check "$t: kernel log: member 2 failed, once; no superblock update failure" g_logged 2

g_recorded() {
	g_remove || return 1
	g_remap 2 vdc || return 1
	g_meta $((G_E0 + 1)) "$(g_states 2)" 0 1 3 || return 1
	g_meta "$G_E0" "$(g_states)" 2
}
ktap_check "$t: removed, m2 on vdc again: m0, m1, m3 at event $((G_E0 + 1)) record member 2 failed; m2's own superblock still $G_E0, all in sync" \
	g_recorded

g_repaired() {
	g_ex /dev/mapper/m3 || return 1
	if [ "$EX_SLOT" != "$G_CSLOT" ] || [ "$EX_OTHER" != valid ]; then
		echo "want slot $G_CSLOT (rewritten) winning, the other valid"
		return 1
	fi
}
ktap_check "$t: that round went to member 3's corrupted slot: both slots valid again" g_repaired

g_stale_data() {
	p_drop
	g_args=
	for g_m in $P_SCRUB; do g_args="$g_args --dev $g_m"; done
	# shellcheck disable=SC2086 # word list
	g_o=$(amfctl scrub --level "$P_LEVEL" --chunk "$P_CHUNK" --size "$P_LEN" $g_args 2>&1)
	g_rc=$?
	echo "$g_o" | tail -1
	echo "amfctl scrub: exit $g_rc"
	[ $g_rc -eq 1 ] ||
		{ echo "want exit 1 (mismatches): else the next check cannot tell whether member 2 is read"; return 1; }
}
ktap_check "$t: precondition: scrub finds mismatched stripes (member 2 missed the writes)" g_stale_data

ktap_check "$t: refused: 'rebuild 0' with member 2 recorded failed" g_refused \
	"$(echo "$G_TABLE" | sed "s# amf raid5 3 64 group $u5 # amf raid5 5 64 group $u5 rebuild 0 #")" \
	"Too many failed members for the RAID level"

g_back_d() {
	g_create AADA || return 1
	p_compare || return 1
	g_meta $((G_E0 + 1)) "$(g_states 2)" 0 1 3
}
ktap_check "$t: recreated with the same table: AADA (member 2 recorded failed), volume = reference; nothing new recorded" \
	g_back_d

# --- a rebuild by message: its start, its checkpoint (every 64 stripes: one in these
# 128-stripe groups) and its end recorded
ktap_check "$t: 'dmsetup message r5 0 rebuild 2': AAAA idle" g_rebuild 2 AAAA

g_rebuilt() {
	g_remove || return 1
	g_meta $((G_E0 + 4)) "$(g_states)" 0 1 2 3
}
ktap_check "$t: removed: every member at event $((G_E0 + 4)) (the rebuild's start, checkpoint and end), all in sync" \
	g_rebuilt

g_restart() { g_create "$1" && p_scrub_live && p_compare; }
ktap_check "$t: recreated: AAAA, scrub clean, volume = reference" g_restart AAAA

# --- a stale member: member 1's reserved area from event $G_E0 put back, three rounds later
g_stale() {
	g_remove || return 1
	g_put "$P_TMP/g_m1old" /dev/mapper/m1 0 || return 1
	# Its data area overwritten too: the next checks fail if it is read.
	dd if=/dev/urandom of=/dev/mapper/m1 bs=1M seek=4 count=4 oflag=direct conv=notrunc \
		status=none || return 1
	g_meta "$G_E0" "$(g_states)" 1
}
ktap_check "$t: removed; member 1's superblocks of event $G_E0 restored, its data area overwritten with random bytes" \
	g_stale

g_stale_d() { g_create ADAA && p_compare; }
ktap_check "$t: recreated: ADAA (member 1 stale), volume = reference (member 1 not read)" g_stale_d

g_stale_rec() {
	g_meta $((G_E0 + 5)) "$(g_states 1)" 0 2 3 || return 1
	g_meta "$G_E0" "$(g_states)" 1
}
ktap_check "$t: the stale member recorded failed at resume: m0, m2, m3 at event $((G_E0 + 5)); m1 untouched ($G_E0)" \
	g_stale_rec

g_stale_rebuild() { g_rebuild 1 AAAA && p_scrub_live && p_compare; }
ktap_check "$t: 'dmsetup message r5 0 rebuild 1': AAAA idle, scrub clean, volume = reference" g_stale_rebuild

g_end5() {
	g_remove || return 1
	g_meta $((G_E0 + 8)) "$(g_states)" 0 1 2 3
}
ktap_check "$t: removed: every member at event $((G_E0 + 8)), all in sync" g_end5

ktap_check "$t: members removed" p_teardown g_ref g_m1old

# ------------------------------------------------------------------ raid6 x5 (N_R6 checks)
t="raid6 x5"
U6=6a1f0c2e93b44d5e8f701a2b3c4d5e6f
u6=6a1f0c2e-93b4-4d5e-8f70-1a2b3c4d5e6f
p_setup r6 raid6 64 24576 902 mapper/m0:8192 mapper/m1:8192 mapper/m2:8192 mapper/m3:8192 \
	mapper/m4:8192

g_start6() {
	p_members vda vdb vdc vdd vde || return 1
	amfctl format --force --level raid6 --chunk 32K --uuid "$U6" --size 4M \
		/dev/mapper/m0 /dev/mapper/m1 /dev/mapper/m2 /dev/mapper/m3 /dev/mapper/m4 || return 1
	g_amftable raid6 32K "$P_LEN" "$U6" 0 1 2 3 4
	g_r=$? G_TABLE=$g_t
	[ $g_r -eq 0 ] || return 1
	g_create AAAAA || return 1
	p_expect "$(dmsetup table "$P_NAME" | cut -d' ' -f1-8)" "0 $P_LEN amf raid6 3 64 group $u6"
}
ktap_check "$t: members m0..m4 (vda..vde) formatted (--force), created from the superblocks: AAAAA, 'group $u6'" \
	g_start6

g_fill6() {
	p_fill && p_random 12 || return 1
	g_meta "" "$(g_states)" 0 1 2 3 4
	G_E0=$G_EV
}
ktap_check "$t: filled, 12 random writes, volume = reference; one event counter, all in sync" g_fill6

g_runtime6() {
	kmsg_mark
	g_fail 1 && g_fail 3 || return 1
	g_degraded_writes || return 1
	p_health ADADA || return 1
	g_logged 1 3
}
ktap_check "$t: members 1 and 3 fail: writes succeed, volume = reference, ADADA, each failure logged once" \
	g_runtime6

g_recorded6() {
	g_remove || return 1
	g_remap 1 vdb && g_remap 3 vdd || return 1
	g_meta "" "$(g_states 1 3)" 0 2 4 || return 1
	G_EF=$G_EV
	[ "$G_EF" -gt "$G_E0" ] || { echo "event counter $G_EF, not above $G_E0"; return 1; }
	g_meta "$G_E0" "$(g_states)" 1 3
}
ktap_check "$t: removed, m1 and m3 on their disks: m0, m2, m4 record members 1 and 3 failed at a later event than theirs" \
	g_recorded6

g_back6() { g_create ADADA && p_compare; }
ktap_check "$t: recreated: ADADA, volume = reference (members 1 and 3 not read)" g_back6

ktap_check "$t: 'dmsetup message r6 0 rebuild 1' (member 3 still failed): AAADA idle" g_rebuild 1 AAADA
ktap_check "$t: 'dmsetup message r6 0 rebuild 3': AAAAA idle" g_rebuild 3 AAAAA

g_rebuilt6() {
	g_remove || return 1
	g_meta $((G_EF + 6)) "$(g_states)" 0 1 2 3 4
}
ktap_check "$t: removed: every member in sync at event $((G_EF + 6)) (two rebuilds, each start, checkpoint and end)" \
	g_rebuilt6

ktap_check "$t: recreated: AAAAA, scrub clean, volume = reference" g_restart AAAAA
ktap_check "$t: volume and members removed" p_teardown g_ref g_m1old

# ------------------------------------------------------------------ raid6 x4, big chunks (N_PPL checks)
# The partial parity log (Documentation/on-disk-format.rst) holds at most 112 sectors of a
# chunk for raid6: with 256 KiB chunks (512 sectors) a logged write of whole chunks goes as
# slices of its rows, each a full-stripe write of its own, and a write into one chunk is cut.
# Logged while member 1 is missing, then on the whole group with the table's `ppl`.
t="raid6 x4 ppl"
U7=7b2e1d3fa4c55e6f9a812b3c4d5e6f70
u7=7b2e1d3f-a4c5-5e6f-9a81-2b3c4d5e6f70
p_setup r6p raid6 512 32768 903 mapper/m0:8192 mapper/m1:8192 mapper/m2:8192 mapper/m3:8192

# g_seq: the sequence number of node slot 0's log header on member 0 (sector 192, bytes 48..55).
g_seq() {
	dd if=/dev/mapper/m0 bs=512 skip=192 count=1 iflag=direct status=none |
		od -An -tu8 -j48 -N8 | tr -d ' '
}

g_start7() {
	p_members vda vdb vdc vdd || return 1
	amfctl format --force --level raid6 --chunk 256K --uuid "$U7" --size 8M \
		/dev/mapper/m0 /dev/mapper/m1 /dev/mapper/m2 /dev/mapper/m3 || return 1
	g_amftable raid6 256K "$P_LEN" "$U7" 0 1 2 3 || return 1
	G_TABLE7=$g_t
	G_TABLE=$(echo "$g_t" | sed 's|/dev/mapper/m1 8192|- 8192|')
	g_create ADAA
}
ktap_check "$t: members m0..m3 formatted with 256 KiB chunks, created with member 1 missing: ADAA" \
	g_start7

g_logged7() {
	kmsg_mark
	p_fill && p_random 16 || return 1
	g_seq=$(g_seq)
	echo "log slot 0: sequence $g_seq"
	[ "${g_seq:-0}" -gt 0 ] || { echo "no log entry written"; return 1; }
	! dmesg_since_mark | grep -E 'ppl: .*too long|ppl: replay failed'
}
ktap_check "$t: degraded: filled in full stripes, 16 random writes of every shape, volume = reference; entries logged" \
	g_logged7

g_clean7() {
	g_remove || return 1
	kmsg_mark
	g_create ADAA && p_compare || return 1
	# A clean remove retired the entry: nothing to replay.
	! dmesg_since_mark | grep 'ppl: stripe'
}
ktap_check "$t: removed and recreated: ADAA, volume = reference, no entry to replay" g_clean7

g_back7() {
	g_remove || return 1
	# Member 1's device back, to be rebuilt (`-` had no device for `message rebuild`).
	G_TABLE=$(echo "$G_TABLE7" | sed 's| raid6 3 512 | raid6 5 512 rebuild 1 |')
	echo "table: $G_TABLE"
	dm_create "$P_NAME" "$G_TABLE" || { echo "create failed: $DM_OUT"; return 1; }
	g_wait AAAA && p_compare
}
ktap_check "$t: recreated with member 1's device and 'rebuild 1': AAAA idle, volume = reference" g_back7

g_always7() {
	g_remove || return 1
	G_TABLE=$(echo "$G_TABLE7" | sed "s|group $u7|group $u7 ppl|; s| raid6 3 | raid6 4 |")
	g_create AAAA || return 1
	p_expect "$(dmsetup table "$P_NAME" | cut -d' ' -f4-9)" "raid6 4 512 group $u7 ppl" || return 1
	g_s0=$(g_seq)
	p_random 16 || return 1
	g_s1=$(g_seq)
	echo "log slot 0: sequence $g_s0 -> $g_s1"
	[ "${g_s1:-0}" -gt "${g_s0:-0}" ] || { echo "the whole group logged nothing"; return 1; }
}
ktap_check "$t: whole, recreated with 'ppl' (printed back): 16 random writes logged, volume = reference" \
	g_always7

# g_forge BYTES: node slot 0's log header, member 0's copy with the sequence number (bytes
# 48..55) set to BYTES (8 printf escapes, little-endian) and its CRC-32C (bytes 4092..4095)
# recomputed, written to every member: a forged header that checks out.
g_forge() {
	g_get /dev/mapper/m0 192 8 "$P_TMP/g_ppl" || return 1
	# shellcheck disable=SC2059 # the escapes are the point
	printf "$1" | dd of="$P_TMP/g_ppl" bs=1 seek=48 conv=notrunc status=none || return 1
	od -An -tu1 -v -N4092 "$P_TMP/g_ppl" | awk '
		BEGIN {
			for (i = 0; i < 256; i++) {
				c = i
				for (k = 0; k < 8; k++) c = and(c, 1) ? xor(rshift(c, 1), 2197175160) : rshift(c, 1)
				T[i] = c
			}
			crc = 4294967295
		}
		{ for (j = 1; j <= NF; j++) crc = xor(T[and(xor(crc, $j), 255)], rshift(crc, 8)) }
		END {
			crc = xor(crc, 4294967295)
			printf "\\%o\\%o\\%o\\%o", and(crc, 255), and(rshift(crc, 8), 255),
				and(rshift(crc, 16), 255), rshift(crc, 24)
		}' >"$P_TMP/g_crc" || return 1
	# shellcheck disable=SC2059
	printf "$(cat "$P_TMP/g_crc")" |
		dd of="$P_TMP/g_ppl" bs=1 seek=4092 conv=notrunc status=none || return 1
	for g_m in 0 1 2 3; do
		g_put "$P_TMP/g_ppl" /dev/mapper/m$g_m 192 || return 1
	done
}

# Forged headers (issue 18: anyone who can write a member may put any bytes there): a
# sequence number of 2^64 - 1 is invalid (ignored, as a bad CRC) and the next header starts
# over; 2^63 - 1 leaves no number for the next header: the table is refused until the slot
# is zeroed. Neither may overflow in the kernel.
g_forged7() {
	g_remove || return 1
	g_forge '\377\377\377\377\377\377\377\377' || return 1
	g_create AAAA || return 1
	# Writes first: each takes the next sequence number (the old code overflowed here).
	p_random 8 || return 1
	dmesg_since_mark | grep -q 'partial parity log of slot 0 unusable (Invalid)' ||
		{ echo "the forged header was not refused"; return 1; }
	g_s=$(g_seq)
	echo "log slot 0: sequence $g_s after writes"
	[ "${g_s:-0}" -gt 0 ] && [ "$g_s" -lt 1000000 ] || return 1
	! dmesg_since_mark | grep -E "$SPLAT_RE"
}
ktap_check "$t: slot 0's header forged with sequence 2^64 - 1 on every member: ignored, writes logged from 1" \
	g_forged7

g_exhausted7() {
	g_remove || return 1
	g_forge '\377\377\377\377\377\377\377\177' || return 1
	g_refused "$G_TABLE" "Partial parity log sequence numbers exhausted" || return 1
	dmesg_since_mark | grep -q 'ppl: node slot 0: no sequence number after 9223372036854775807' ||
		{ echo "the kernel log does not name the slot"; return 1; }
	dd if=/dev/zero of="$P_TMP/g_ppl" bs=4096 count=1 status=none
	for g_m in 0 1 2 3; do
		g_put "$P_TMP/g_ppl" /dev/mapper/m$g_m 192 || return 1
	done
	g_create AAAA && p_compare
}
ktap_check "$t: slot 0's header forged with sequence 2^63 - 1: refused (exhausted); zeroed: AAAA, volume = reference" \
	g_exhausted7

g_end7() { g_remove && g_restart AAAA; }
ktap_check "$t: removed, recreated: AAAA, scrub clean, volume = reference" g_end7
ktap_check "$t: volume and members removed" p_teardown g_ref g_m1old

# shellcheck disable=SC2016 # expanded by that sh
ktap_check "no device left behind" sh -c '[ "$(dmsetup ls 2>&1)" = "No devices found" ]'

ktap_done
