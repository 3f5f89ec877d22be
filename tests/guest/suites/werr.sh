# SPDX-License-Identifier: GPL-2.0
# Members that fail writes, or reads, at run time, on every level (what md's raid1/raid10
# do: a failed copy takes its member out of service, the I/O goes on with the others while
# the level allows it). The members are dm-linear devices m0, m1... over whole disks; one
# is failed under the live volume by swapping its table to dm-flakey (always down, with
# `error_writes` or `error_reads`: only that direction fails) or to the error target. Every
# check of data compares the whole volume (O_DIRECT) with a reference file in tmpfs
# (lib/raid.sh). The groups have superblocks (`amfctl format`, `group <uuid>`), raid0 not.
#
#   raid0 x2:         a write, then a read, of a chunk on the failing member: EIO, no hang
#   raid1 x3:         member 1 fails writes: random writes succeed, 1 is D, named once in the
#                     kernel log and recorded in the superblocks at run time; member 1 back
#                     on its disk (stale) and a reload: still D, never read; then member 2
#                     fails reads and writes (error): the volume reads back right (reads
#                     retried on another copy), writes go on with member 0 alone
#   raid10 x4 (near, 2 copies), raid5 x4: one volume with member 1 failing writes, one with
#                     a member failing reads (raid10: 3, the member whose copies are read;
#                     raid5: 2), each as raid1's member 1
#   raid6 x5:         member 1 fails writes, then member 3 fails reads and writes (rebuilt
#                     from P and Q), as raid1;
#                     then a fresh group created with member 1 missing (`-`) while member 3
#                     fails writes: the superblock round at resume fails on member 3 only,
#                     which is failed (not the group), and the group serves without 1 and 3
#
# Needs 5 disks of at least 8 MiB (vda..vde); about 75-85 s (TCG, debug kernel).
# shellcheck disable=SC1091 # the guest's path
. /amf/lib/ktap.sh
# shellcheck source-path=SCRIPTDIR source=../lib/raid.sh
. /amf/lib/raid.sh

N_R0=6
N_W=10                # w_fails, w_restart
N_TWO=$((1 + N_W + 6)) # raid1 x3, raid6 x5
N_ONE=$((1 + N_W + 1)) # raid10 and raid5, writes and reads
N_R6S=8
ktap_plan $((1 + N_R0 + 2 * N_TWO + 4 * N_ONE + N_R6S + 1))

W_WRITES=12 # random writes after each failure
W_HANG=60   # seconds an I/O that must fail may take before it counts as hung
W_UUID=5b0e6a52-7c1d-4a8e-9f3b-2d4c6e8a0b1c

amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"

# ------------------------------------------------------------------ helpers

# w_setup NAME LEVEL COPIES SEED DISK...: the P_* state of a volume over members m0..
# (dm-linear over DISK...), 2 MiB of data on each from sector 8192, 32 KiB chunks; W_TABLE
# its table (with `group`, but for raid0) and W_MEMBERS its member list.
w_setup() {
	P_NAME=$1 P_LEVEL=$2 W_COPIES=$3 P_RNG=$4
	shift 4
	W_DISKS=$* P_N=$# P_CHUNK=64 P_U=1 P_DEV=/dev/mapper/$P_NAME P_PAR=1
	case $P_LEVEL in
	raid0) P_D=$P_N ;;
	raid1) P_D=1 ;;
	raid10) P_D=$((P_N / W_COPIES)) ;;
	raid5) P_D=$((P_N - 1)) ;;
	*) P_D=$((P_N - 2)) P_PAR=2 ;;
	esac
	P_S=$((P_CHUNK * P_D)) P_LEN=$((4096 * P_D)) P_MEMBERS='' W_MEMBERS=''
	w_i=0
	while [ $w_i -lt "$P_N" ]; do
		P_MEMBERS="$P_MEMBERS mapper/m$w_i:8192" W_MEMBERS="$W_MEMBERS /dev/mapper/m$w_i"
		w_i=$((w_i + 1))
	done
	W_COPYARG='' W_PARAMS=1 W_GROUP=''
	[ "$P_LEVEL" = raid10 ] && W_COPYARG="raid10_copies $W_COPIES" W_PARAMS=3
	[ "$P_LEVEL" = raid0 ] || W_PARAMS=$((W_PARAMS + 2)) W_GROUP="group $W_UUID"
	W_TABLE=$(w_table "")
}

# w_table MISSING: the volume's table with member MISSING (if given) as `-`.
w_table() {
	w_t="0 $P_LEN amf $P_LEVEL $W_PARAMS $P_CHUNK $W_COPYARG $W_GROUP $P_N"
	w_i=0
	for w_m in $W_MEMBERS; do
		if [ "$w_i" = "$1" ]; then w_t="$w_t - 8192"; else w_t="$w_t $w_m 8192"; fi
		w_i=$((w_i + 1))
	done
	echo "$w_t" | tr -s ' '
}

# w_each OK BAD SEP I...: one word per member, BAD for members I and OK for the others,
# joined by SEP.
w_each() {
	w_ok=$1 w_bad=$2 w_sep=$3 w_k=0 w_o=''
	shift 3
	while [ $w_k -lt "$P_N" ]; do
		case " $* " in *" $w_k "*) w_o="$w_o$w_sep$w_bad" ;; *) w_o="$w_o$w_sep$w_ok" ;; esac
		w_k=$((w_k + 1))
	done
	echo "${w_o#"$w_sep"}"
}

# w_chars I...: the health characters with members I failed ("ADA").
w_chars() { w_each A D '' "$@"; }

# w_states I...: the member states the superblocks should record with members I failed.
w_states() { w_each in_sync failed ' ' "$@"; }

# w_diff (p_compare's P_DIFF): how many chunks differ, the first few named.
w_diff() {
	w_nc=$((P_LEN / P_CHUNK)) w_cb=$((P_CHUNK * 512)) w_c=0 w_n=0
	while [ $w_c -lt $w_nc ]; do
		if ! cmp -s -n $w_cb "$P_TMP/ref" "$P_TMP/p_dev" $((w_c * w_cb)) $((w_c * w_cb)); then
			w_n=$((w_n + 1))
			[ $w_n -le 8 ] && echo "chunk $w_c differs"
		fi
		w_c=$((w_c + 1))
	done
	echo "$w_n of $w_nc chunks differ"
}
P_DIFF=w_diff

# w_create: members over the disks, formatted (but raid0), the volume created and filled
# with random data (full stripes), the same as the reference.
w_create() {
	# shellcheck disable=SC2086 # word lists
	p_members $W_DISKS || return 1
	if [ "$P_LEVEL" != raid0 ]; then
		w_c=''
		[ "$P_LEVEL" = raid10 ] && w_c="--copies $W_COPIES"
		# shellcheck disable=SC2086 # word lists
		amfctl format --force --level "$P_LEVEL" $w_c --chunk 32K --uuid "$W_UUID" --size 2M \
			$W_MEMBERS >"$P_TMP/w_fmt" 2>&1 || { cat "$P_TMP/w_fmt"; return 1; }
	fi
	echo "table: $W_TABLE"
	dm_create "$P_NAME" "$W_TABLE" || { echo "create failed: $DM_OUT"; return 1; }
	p_health "$(w_chars)" && p_fill && p_compare
}

# w_begin TITLE NAME LEVEL COPIES SEED DISK...: a scenario's first two checks.
w_begin() {
	w_title=$1
	shift
	kmsg_mark
	w_setup "$@"
	ktap_check "$w_title: members over $W_DISKS, created, filled = reference" w_create
}

# w_disk I: the disk under member mI.
w_disk() {
	# shellcheck disable=SC2086 # word list
	set -- $W_DISKS
	shift "$w_idx"
	echo "$1"
}

# w_fail I error|error_writes|error_reads: member mI fails every I/O (the error target) or
# only writes or only reads (dm-flakey, always down, over the same disk).
w_fail() {
	w_idx=$1 w_sz=$(blockdev --getsz "/dev/mapper/m$1") || return 1
	case $2 in
	error) p_swap "$1" "0 $w_sz error" ;;
	*) p_swap "$1" "0 $w_sz flakey /dev/$(w_disk) 0 0 1 1 $2" ;;
	esac
}

# w_back I: member mI on its disk again (holding what it had when it failed: stale).
w_back() { w_idx=$1 && p_swap "$1" "0 $(dev_sectors "$(w_disk)") linear /dev/$(w_disk) 0"; }

# w_sb LIVE I...: the superblock on live member mLIVE, read at run time, records exactly
# members I failed.
w_sb() {
	w_l=/dev/mapper/m$1
	shift
	blockdev --flushbufs "$w_l" 2>/dev/null || p_drop
	w_j=$(amfctl examine --json "$w_l" 2>&1) || { echo "amfctl examine $w_l: $w_j"; return 1; }
	w_got=$(echo "$w_j" | sed -n 's/^ *"state": "\([a-z_]*\)".*/\1/p' | tr '\n' ' ')
	echo "$w_l: events $(echo "$w_j" | sed -n 's/^  "events": \([0-9]*\).*/\1/p')"
	p_expect "${w_got% }" "$(w_states "$@")"
}

# w_read: the whole volume read back (O_DIRECT) equals the reference.
w_read() { p_compare; }

# w_writes: W_WRITES random writes (all must succeed), then the whole volume = reference.
w_writes() { : >"$P_TMP/p_writes" && p_random $W_WRITES; }

# w_reload: the volume suspended, loaded with its table again and resumed: the constructor
# takes the member states from the superblocks.
w_reload() {
	dmsetup suspend "$P_NAME" && dmsetup load "$P_NAME" --table "$W_TABLE" &&
		dmsetup resume "$P_NAME" || { echo "reload failed"; return 1; }
}

# w_fails HOW I LIVE FAILED...: member I starts failing (HOW: w_fail's second word), then
# I/O that reaches it (writes for error_writes, else a read of the whole volume); the
# member is D, named once in the kernel log, writes go on and the superblock of live member
# LIVE records it at run time, before any suspend (6 checks). FAILED: every member failed.
w_fails() {
	w_how=$1 w_m=$2 w_live=$3
	shift 3
	ktap_check "$w_title: member $w_m fails ($w_how under m$w_m)" w_fail "$w_m" "$w_how"
	if [ "$w_how" = error_writes ]; then
		ktap_check "$w_title: $W_WRITES random writes succeed, volume = reference" w_writes
	else
		ktap_check "$w_title: whole volume read = reference (reads of member $w_m retried)" w_read
	fi
	ktap_check "$w_title: status $(w_chars "$@")" p_health "$(w_chars "$@")"
	ktap_check "$w_title: kernel log: member(s) $* failed, once each" p_logged 'dm_amf: member' "$@"
	# A failure is recorded before a write relies on it (or the write's ack waits for it).
	ktap_check "$w_title: $W_WRITES more random writes succeed, volume = reference" w_writes
	ktap_check "$w_title: superblock on m$w_live (at run time) records $* failed" w_sb "$w_live" "$@"
}

# w_restart FAILED...: the failed members back on their (stale) disks, the volume reloaded:
# they stay D and are never read (4 checks).
w_restart() {
	w_ok=0
	for w_x in "$@"; do w_back "$w_x" || w_ok=1; done
	ktap_result "$w_title: member(s) $* back on their disks (stale data)" $w_ok
	ktap_check "$w_title: reloaded (superblocks read again)" w_reload
	ktap_check "$w_title: status $(w_chars "$@") after the reload" p_health "$(w_chars "$@")"
	ktap_check "$w_title: whole volume = reference (stale members never read)" w_read
}

w_teardown() { p_teardown w_err w_fmt; }

# w_io_fails read|write SECTOR: an O_DIRECT read (or write of random data) of the chunk at
# SECTOR fails with EIO within W_HANG seconds.
w_io_fails() {
	w_cb=$((P_CHUNK * 512))
	if [ "$1" = read ]; then
		dd if="$P_DEV" of=/dev/null bs=$w_cb count=1 skip=$(($2 * 512)) \
			iflag=skip_bytes,direct status=none 2>"$P_TMP/w_err" &
	else
		dd if=/dev/urandom of="$P_DEV" bs=$w_cb count=1 seek=$(($2 * 512)) \
			iflag=fullblock oflag=seek_bytes,direct conv=notrunc status=none 2>"$P_TMP/w_err" &
	fi
	w_pid=$! w_w=0
	while [ -d "/proc/$w_pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$w_pid/status" 2>/dev/null &&
		[ $w_w -lt $((W_HANG * 10)) ]; do
		usleep 100000
		w_w=$((w_w + 1))
	done
	if [ $w_w -ge $((W_HANG * 10)) ]; then
		echo "dd still running after $W_HANG s"
		sed 's/^/  /' "/proc/$w_pid/stack" 2>/dev/null
		kill -9 $w_pid
		return 1
	fi
	wait $w_pid
	w_rc=$?
	cat "$P_TMP/w_err"
	[ $w_rc -ne 0 ] || { echo "the $1 succeeded"; return 1; }
	grep -q 'Input/output error' "$P_TMP/w_err" || { echo "the error is not EIO"; return 1; }
}

# ------------------------------------------------------------------ raid0 x2 (N_R0 checks)
w_begin "raid0 x2" w0 raid0 1 701 vda vdb
ktap_check "$w_title: member 1 fails writes (error_writes under m1)" w_fail 1 error_writes
ktap_check "$w_title: write of chunk 1 (member 1) fails with EIO, no hang" w_io_fails write 64
ktap_check "$w_title: member 1 fails reads (error_reads under m1)" w_fail 1 error_reads
ktap_check "$w_title: read of chunk 3 (member 1) fails with EIO, no hang" w_io_fails read 192
ktap_check "$w_title: volume and members removed" w_teardown

# ------------------------------------------------------------------ raid1 x3 (N_R1 checks)
w_begin "raid1 x3" w1 raid1 1 702 vda vdb vdc
w_fails error_writes 1 0 1
w_restart 1
w_title="raid1 x3, second"
ktap_check "$w_title: member 2 fails (error under m2)" w_fail 2 error
ktap_check "$w_title: whole volume read = reference (reads of member 2 retried)" w_read
ktap_check "$w_title: status $(w_chars 1 2)" p_health "$(w_chars 1 2)"
ktap_check "$w_title: $W_WRITES random writes on member 0 alone, volume = reference" w_writes
ktap_check "$w_title: superblock on m0 (at run time) records 1 and 2 failed" w_sb 0 1 2
ktap_check "$w_title: volume and members removed" w_teardown

# ------------------------------------------------------------------ one failure (N_ONE checks each)
w_begin "raid10 x4 writes" w10 raid10 2 703 vda vdb vdc vdd
w_fails error_writes 1 0 1
w_restart 1
ktap_check "$w_title: volume and members removed" w_teardown

w_begin "raid10 x4 reads" w10 raid10 2 704 vda vdb vdc vdd
w_fails error_reads 3 0 3
w_restart 3
ktap_check "$w_title: volume and members removed" w_teardown

w_begin "raid5 x4 writes" w5 raid5 1 705 vda vdb vdc vdd
w_fails error_writes 1 0 1
w_restart 1
ktap_check "$w_title: volume and members removed" w_teardown

w_begin "raid5 x4 reads" w5 raid5 1 706 vda vdb vdc vdd
w_fails error_reads 2 0 2
w_restart 2
ktap_check "$w_title: volume and members removed" w_teardown

# ------------------------------------------------------------------ raid6 x5
w_begin "raid6 x5" w6 raid6 1 707 vda vdb vdc vdd vde
w_fails error_writes 1 0 1
w_restart 1
w_title="raid6 x5, second"
ktap_check "$w_title: member 3 fails (error under m3)" w_fail 3 error
ktap_check "$w_title: whole volume read = reference (rebuilt from P and Q)" w_read
ktap_check "$w_title: status $(w_chars 1 3)" p_health "$(w_chars 1 3)"
ktap_check "$w_title: $W_WRITES random writes without members 1 and 3, volume = reference" w_writes
ktap_check "$w_title: superblock on m0 (at run time) records 1 and 3 failed" w_sb 0 1 3
ktap_check "$w_title: volume and members removed" w_teardown

# ------------------------------------------------------------------ raid6 superblock write (N_R6S checks)
w_begin "raid6 x5 superblock" w6 raid6 1 708 vda vdb vdc vdd vde
w_sbfail() { dmsetup remove "$P_NAME" && w_fail 3 error_writes; }
ktap_check "$w_title: volume removed, member 3 fails writes (error_writes under m3)" w_sbfail
w_missing() {
	W_TABLE=$(w_table 1)
	echo "table: $W_TABLE"
	dm_create "$P_NAME" "$W_TABLE" || { echo "create failed: $DM_OUT"; return 1; }
	p_health "$(w_chars 1 3)"
}
ktap_check "$w_title: created without member 1 (-): the round at resume fails on m3, status $(w_chars 1 3)" \
	w_missing
ktap_check "$w_title: kernel log: member 3 failed, once" p_logged 'dm_amf: member' 3
ktap_check "$w_title: superblock on m0 records 1 and 3 failed" w_sb 0 1 3
ktap_check "$w_title: whole volume read = reference (rebuilt from P and Q)" w_read
ktap_check "$w_title: $W_WRITES random writes without members 1 and 3, volume = reference" w_writes
ktap_check "$w_title: volume and members removed" w_teardown

# shellcheck disable=SC2016 # expanded by that sh
ktap_check "no device left behind" sh -c '[ "$(dmsetup ls 2>&1)" = "No devices found" ]'

ktap_done
