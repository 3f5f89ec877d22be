# SPDX-License-Identifier: GPL-2.0
# Online check and repair (Documentation/table-syntax.rst, "Messages": check, repair, idle;
# "Status": <sync_action> <mismatch_cnt>), as an administrator runs them through dmsetup on
# a live volume, one group of each redundant level:
#
#   raid5 x4, raid6 x5: the volume filled with random data; `check` finds 0; one 4 KiB block
#     of P in one stripe (raid6: also one of Q in another) overwritten on the member behind
#     the volume's back; `check` counts exactly those sectors (8, raid6 16), changes no data
#     (the device still equals its reference) and raises device-mapper events; `repair`
#     counts and rewrites them; `check` then finds 0 and `amfctl scrub` of the members
#     (suspended) finds no mismatch
#   raid1 x2, raid10 x4 (near, 2 copies): one 4 KiB block of a second copy overwritten;
#     `check` counts 8 sectors; `repair` copies the first copy over it (the device equals
#     its reference, both copies equal); `check` finds 0
#   raid5 once more at sync_speed_max 512 KiB/s: the check takes at least the time the
#     limit allows (4 s for its 3 MiB), the status ends with `sync_speed <now> 0 512` while
#     it runs; `sync_speed_max 5x` refused
#   raid0: `check` refused (no redundancy), the status untouched
#
# Needs 5 disks of at least 8 MiB (vda..vde); about 30 s (TCG, debug kernel).
# shellcheck disable=SC1091 # the guest's path
. /amf/lib/ktap.sh
# shellcheck source-path=SCRIPTDIR source=../lib/raid.sh
. /amf/lib/raid.sh

N_PAR=7 # a parity group's results
N_MIR=5 # a mirror's
ktap_plan $((1 + 2 * N_PAR + 1 + 2 * N_MIR + 1))
amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"

C_STRIPES=32
C_WAIT=90 # seconds a check of a small group may take at most (TCG)

# c_field N: field N of the volume's status line, `0 <len> amf <level> <#devs> <health>
# <done>/<total> <action> <count> ...`: the health is 6, the action 8, the count 9.
c_field() { dmsetup status "$P_NAME" | awk -v n="$1" '{ print $n }'; }

# c_run ACTION [WANT]: `dmsetup message <vol> 0 ACTION`, then until the action is idle
# again; the mismatch count it ended with is WANT (when given). C_EV0/C_EV1: the event
# numbers before and after.
c_run() {
	C_EV0=$(dmsetup info "$P_NAME" | sed -n 's/^Event number: *//p')
	dmsetup message "$P_NAME" 0 "$1" || { echo "message $1 refused"; return 1; }
	c_t0=$(date +%s)
	while [ "$(c_field 8)" != idle ]; do
		[ $(($(date +%s) - c_t0)) -ge $C_WAIT ] && { echo "still $(c_field 8) after $C_WAIT s"; return 1; }
		sleep 0.2
	done
	C_EV1=$(dmsetup info "$P_NAME" | sed -n 's/^Event number: *//p')
	c_got=$(c_field 9)
	echo "$1: $(dmsetup status "$P_NAME") after $(($(date +%s) - c_t0)) s, events $C_EV0 -> $C_EV1"
	[ -z "${2:-}" ] || p_expect "$c_got" "$2"
}

# c_events: the last action raised an event at its start and one at its end.
c_events() {
	[ $((C_EV1 - C_EV0)) -ge 2 ] || { echo "events $C_EV0 -> $C_EV1: want 2 more"; return 1; }
}

# c_smash DEV SECTOR: 4 KiB of new random bytes at SECTOR of DEV, behind the volume's back.
c_smash() {
	dd if=/dev/urandom of="$1" bs=4096 count=1 seek=$(($2 * 512)) oflag=seek_bytes,direct \
		conv=notrunc status=none && echo "smashed 4 KiB at $1 sector $2"
}

# c_copies_equal DEV1 DEV2 SECTOR COUNT: COUNT sectors at SECTOR of both are the same bytes.
c_copies_equal() {
	dd if="$1" of="$KTAP_TMP/c1" bs=512 skip="$3" count="$4" iflag=direct status=none &&
		dd if="$2" of="$KTAP_TMP/c2" bs=512 skip="$3" count="$4" iflag=direct status=none &&
		cmp "$KTAP_TMP/c1" "$KTAP_TMP/c2" && echo "$1 = $2 over $4 sectors from $3"
}

c_made() { p_create && p_fill; }

# ------------------------------------------------------------------ raid5, raid6
# c_parity LEVEL DISK...: the parity group's results (N_PAR).
c_parity() {
	c_lv=$1
	shift
	c_m=
	for d in "$@"; do c_m="$c_m $d:2048"; done
	c_d=$(($# - 1))
	[ "$c_lv" = raid6 ] && c_d=$(($# - 2))
	# shellcheck disable=SC2086 # word list
	p_setup "c$c_lv" "$c_lv" 64 $((C_STRIPES * 64 * c_d)) 7 $c_m
	ktap_check "$c_lv x$#: created, filled with random data" c_made
	ktap_check "$c_lv: check of a consistent group: 0 mismatched sectors, events at start and end" \
		c_check0
	# P of stripe 3, its block 1; raid6 also Q of stripe 6, its block 2.
	smash() {
		p_map $((3 * P_S))
		p_member "$p_mp"
		c_smash "$p_mdev" $((p_moff + 3 * P_CHUNK + 8)) || return 1
		[ "$P_PAR" -eq 2 ] || return 0
		p_map $((6 * P_S))
		p_member $(((p_mp + 1) % P_N))
		c_smash "$p_mdev" $((p_moff + 6 * P_CHUNK + 16))
	}
	C_WANT=8
	[ "$c_lv" = raid6 ] && C_WANT=16
	ktap_check "$c_lv: parity overwritten behind the volume (P$([ "$c_lv" = raid6 ] && echo ' and Q'))" smash
	ktap_check "$c_lv: check counts $C_WANT mismatched sectors, leaves the data alone" c_check_bad
	ktap_check "$c_lv: repair counts and rewrites them" c_repair
	ktap_check "$c_lv: check after the repair: 0; amfctl scrub of the members clean" c_clean
	[ "$c_lv" = raid5 ] &&
		ktap_check "raid5: sync_speed_max 512: a check of $((P_LEN / 2)) KiB takes at least 4 s, status shows the limit; a bad speed refused" c_paced
	ktap_check "$c_lv: removed" p_teardown
}
# c_paced: with sync_speed_max 512 KiB/s a check of P_LEN sectors (one batch of 8 stripes
# may run ahead of the limit) lasts at least (P_LEN / 2 - 8 * P_S / 2) / 512 seconds, 4.5
# for 3 MiB; the status's last part says `sync_speed <now> 0 512` while it runs.
c_paced() {
	if dmsetup message "$P_NAME" 0 sync_speed_max 5x 2>/dev/null; then echo "sync_speed_max 5x accepted"; return 1; fi
	dmsetup message "$P_NAME" 0 sync_speed_max 512 || return 1
	c_t0=$(date +%s)
	dmsetup message "$P_NAME" 0 check || return 1
	c_seen=
	while [ "$(c_field 8)" != idle ]; do
		st=$(dmsetup status "$P_NAME")
		case $st in *" sync_speed "[0-9]*" 0 512") c_seen=$st ;; esac
		[ $(($(date +%s) - c_t0)) -ge $C_WAIT ] && { echo "still $(c_field 8) after $C_WAIT s"; return 1; }
		sleep 0.5
	done
	c_el=$(($(date +%s) - c_t0))
	dmsetup message "$P_NAME" 0 sync_speed_max 0 || return 1
	echo "check at sync_speed_max 512 took $c_el s; during it: ${c_seen:-no sync_speed part seen}"
	echo "after: $(dmsetup status "$P_NAME")"
	[ -n "$c_seen" ] && [ "$c_el" -ge 4 ] && [ "$(c_field 9)" = 0 ]
}
c_check0() { c_run check 0 && c_events; }
c_check_bad() { c_run check "$C_WANT" && c_events && p_compare; }
c_repair() { c_run repair "$C_WANT" && p_compare; }
c_clean() { c_run check 0 && p_compare && p_scrub_live; }

c_parity raid5 vda vdb vdc vdd
c_parity raid6 vda vdb vdc vdd vde

# ------------------------------------------------------------------ raid1, raid10
# c_mirror LEVEL COPIES SMASH_MEMBER SMASH_SECTOR DISK...: the mirror's results (N_MIR);
# SMASH_SECTOR (member data sector) holds a second copy on member SMASH_MEMBER, whose
# first copy is on member SMASH_MEMBER - 1.
c_mirror() {
	c_lv=$1 c_cp=$2 c_sm=$3 c_ss=$4
	shift 4
	P_NAME=c$c_lv P_LEVEL=$c_lv P_CHUNK=64 P_S=64 P_D=1 P_PAR=0 P_N=$# P_RNG=9
	P_MLEN=$((C_STRIPES * 64)) P_DEV=/dev/mapper/$P_NAME P_MEMBERS=
	P_LEN=$((P_MLEN * P_N / c_cp))
	if [ "$c_lv" = raid1 ]; then
		P_TABLE="0 $P_LEN amf raid1 1 64 $P_N"
	else
		P_TABLE="0 $P_LEN amf raid10 3 64 raid10_copies $c_cp $P_N"
	fi
	for d in "$@"; do
		P_MEMBERS="$P_MEMBERS $d:2048"
		P_TABLE="$P_TABLE /dev/$d 2048"
	done
	ktap_check "$c_lv x$P_N: created, filled with random data" c_made
	ktap_check "$c_lv: check of a consistent group: 0 mismatched sectors" c_check0
	p_member "$c_sm"
	c_bad=$p_mdev
	p_member $((c_sm - 1))
	c_good=$p_mdev
	C_WANT=8
	ktap_check "$c_lv: a second copy overwritten, check counts 8 mismatched sectors" \
		c_mirror_bad "$c_bad" "$c_ss"
	ktap_check "$c_lv: repair copies the first copy over it; check then finds 0" \
		c_mirror_repair "$c_good" "$c_bad" "$c_ss"
	ktap_check "$c_lv: removed" p_teardown
}
c_mirror_bad() { c_smash "$1" $((2048 + $2 + 8)) && c_run check 8 && c_events; }
c_mirror_repair() {
	c_run repair 8 && p_compare && c_copies_equal "$1" "$2" $((2048 + $3)) 64 && c_run check 0
}

# raid1: chunk 3's second copy (member 1). raid10 near x2 over 4: chunk 5 is at position
# 10, members 2 and 3, member sector 10 / 4 * 64 = 128.
c_mirror raid1 2 1 $((3 * 64)) vda vdb
c_mirror raid10 2 3 128 vda vdb vdc vdd

# ------------------------------------------------------------------ raid0
c_raid0() {
	dm_create c0 "0 4096 amf raid0 1 64 2 /dev/vda 2048 /dev/vdb 2048" || { echo "$DM_OUT"; return 1; }
	c_r=0
	if dmsetup message c0 0 check 2>&1; then echo "check accepted on raid0"; c_r=1; fi
	st=$(dmsetup status c0)
	echo "$st"
	case $st in *" idle 0") ;; *) echo "status changed"; c_r=1 ;; esac
	dmsetup remove c0 || c_r=1
	return $c_r
}
ktap_check "raid0: check refused (no redundancy), status untouched" c_raid0
ktap_done
