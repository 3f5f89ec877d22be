# SPDX-License-Identifier: GPL-2.0
# amfctl assemble / stop and /etc/amf/amf.conf (issue 21 item 2; Documentation/admin-guide.rst,
# "Assembling volumes"). Two groups, formatted with fixed UUIDs, found by their superblocks
# on dm-linear slices (the members live at sector 2048 of the disks, so a disk whose slice is
# removed shows no superblock itself: the member is missing):
#
#   r5: raid5 x3, a0 a1 a2 = sectors 2048..34816 of vda vdb vdc (24 MiB volume)
#   r1: raid1 x2, b0 b1    = sectors 34816..65536 of vda vdb (11 MiB volume)
#   vdd: sectors 2048..34816 a copy of a2 taken before a degraded write (the stale member);
#        sector 40960 on: what boot 0 leaves for boot 1 (checksums of the volumes)
#
# Boot 0: --dry-run; --scan creates both (AAA, AA), data written and read back; a second
# --scan skips them (already active); stop --scan; --scan again (data intact); stop r5;
# two members gone: refused even with --run (incomplete); a2 gone: --incremental waits,
# refused without --run (degraded), started with --run (AAD, data rebuilt from parity), a
# degraded write; the old a2 back: left out (the group records it failed), started without
# --run; a2 rebuilt (reload with `rebuild 2`); the copy of a2 from before the degraded write
# in its place: left out as stale (event counters), refused without --run, started with it,
# its old data never read. Then a power cut with both volumes up (AMF-RESTART-ME).
# Boot 1: the guest has no systemd, so the suite runs what amf-assemble.service runs at boot,
# `amfctl assemble --scan` (no --run): both volumes come back (r5 degraded as the group
# records it, the stale copy left out) with the data of boot 0; stop --scan.
# Needs 4 disks of 32 MiB; about 30 s.
# shellcheck disable=SC1091 # the guest's path
. /amf/lib/ktap.sh

BOOT=${AMF_BOOT:-0}
UA=a55e0005-0000-4000-8000-000000000005
UB=a55e0001-0000-4000-8000-000000000001
CONF=/etc/amf/amf.conf
W=/tmp/asm
R5LEN=49152
R1LEN=22528
STATE=/dev/vdd
STATE_SEEK=40960
mkdir -p $W /etc/amf

if [ "$BOOT" -eq 0 ]; then ktap_plan 21; else ktap_plan 6; fi

amf_load >"$W/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$W/ld")"

# slice NAME DISK START LEN
slice() { dm_create "$1" "0 $4 linear /dev/$2 $3" || { echo "slice $1: $DM_OUT"; return 1; }; }
a_slice() { # a_slice I [DISK]: a<I> at 2048 of DISK (default vda, vdb, vdc by I)
	_d=${2:-$(echo "vda vdb vdc" | cut -d' ' -f$(($1 + 1)))}
	slice "a$1" "$_d" 2048 32768
}
unslice() { dmsetup remove "$1" || { echo "remove $1 failed"; return 1; }; }

conf() {
	cat >$CONF <<EOF
# written by the assemble suite (boot $BOOT)
[group.$UA]
name = "r5"

[group.$UB]
name = "r1"
EOF
}

# asm ARGS...: amfctl assemble ARGS; output (both streams) in $W/out and printed, ASM_RC.
asm() {
	amfctl assemble "$@" >"$W/out" 2>&1
	ASM_RC=$?
	echo "amfctl assemble $*: exit $ASM_RC"
	cat "$W/out"
}
# has TEXT: the last output holds the line TEXT (fixed string, whole line).
has() { grep -qxF "$1" "$W/out" || { echo "missing line: $1"; return 1; }; }
rc_is() { [ "$ASM_RC" -eq "$1" ] || { echo "exit $ASM_RC, want $1"; return 1; }; }
# health NAME CHARS
health() {
	_s=$(dmsetup status "$1" 2>&1)
	echo "$1: $_s"
	[ "$(echo "$_s" | awk '{ print $6 }')" = "$2" ] || { echo "want $2"; return 1; }
}
absent() { ! dmsetup info "$1" >/dev/null 2>&1 || { echo "$1 exists"; return 1; }; }
no_amf() {
	_t=$(dmsetup table --target amf 2>&1)
	[ -z "$_t" ] || [ "$_t" = "No devices found" ] || { echo "amf volumes left: $_t"; return 1; }
}
# fill NAME LEN: new random data on the volume and in its reference file.
fill() {
	dd if=/dev/urandom of="$W/$1.ref" bs=512 count="$2" status=none &&
		dd if="$W/$1.ref" of="/dev/mapper/$1" bs=1M oflag=direct conv=notrunc status=none ||
		{ echo "writing $1 failed"; return 1; }
}
# same NAME: the volume (O_DIRECT) equals its reference.
same() {
	dd if="/dev/mapper/$1" of="$W/$1.dev" bs=1M iflag=direct status=none ||
		{ echo "reading $1 failed"; return 1; }
	cmp "$W/$1.ref" "$W/$1.dev" && echo "$1 = reference"
	_r=$?
	rm -f "$W/$1.dev"
	return $_r
}
events() { # events DEV: the event counter of DEV's superblock
	blockdev --flushbufs "$1" 2>/dev/null
	amfctl examine "$1" | sed -n 's/^ *Events : //p'
}

t_slices() {
	for i in 0 1 2; do a_slice $i || return 1; done
	slice b0 vda 34816 30720 && slice b1 vdb 34816 30720
}
t_conf_scan() { # the whole cycle of boot 1
	conf && asm --scan
}

if [ "$BOOT" -eq 0 ]; then
	ktap_check "slices a0 a1 a2 b0 b1" t_slices

	t_format() {
		amfctl format --level raid5 --chunk 64 --uuid $UA /dev/mapper/a0 /dev/mapper/a1 /dev/mapper/a2 &&
			amfctl format --level raid1 --chunk 64 --uuid $UB /dev/mapper/b0 /dev/mapper/b1 && conf &&
			cat $CONF
	}
	ktap_check "format r5 (raid5 x3) and r1 (raid1 x2), amf.conf" t_format

	t_dry() {
		asm --scan --dry-run && rc_is 0 &&
			has "r5: table: 0 $R5LEN amf raid5 3 128 group $UA 3 /dev/mapper/a0 8192 /dev/mapper/a1 8192 /dev/mapper/a2 8192" &&
			has "r1: table: 0 $R1LEN amf raid1 3 128 group $UB 2 /dev/mapper/b0 8192 /dev/mapper/b1 8192" &&
			absent r5 && absent r1
	}
	ktap_check "assemble --scan --dry-run: both tables, nothing created" t_dry

	t_scan() {
		asm --scan && rc_is 0 &&
			grep -qx 'r5: created /dev/mapper/r5: raid5, 3 of 3 members, event [0-9]* (newest: /dev/mapper/a0)' "$W/out" &&
			grep -qx 'r1: created /dev/mapper/r1: raid1, 2 of 2 members, event [0-9]* (newest: /dev/mapper/b0)' "$W/out" &&
			health r5 AAA && health r1 AA
	}
	ktap_check "assemble --scan creates r5 (AAA) and r1 (AA)" t_scan

	t_data() { fill r5 $R5LEN && fill r1 $R1LEN && same r5 && same r1; }
	ktap_check "data written to both, read back" t_data

	t_again() {
		asm --scan && rc_is 0 && has "r5: already active as /dev/mapper/r5" &&
			has "r1: already active as /dev/mapper/r1"
	}
	ktap_check "a second --scan skips the active volumes" t_again

	t_stop_scan() {
		amfctl stop --scan >"$W/out" 2>&1
		ASM_RC=$?
		cat "$W/out"
		rc_is 0 && has "stopped r5" && has "stopped r1" && no_amf
	}
	ktap_check "stop --scan removes both" t_stop_scan

	t_rescan() { asm --scan && rc_is 0 && health r5 AAA && health r1 AA && same r5 && same r1; }
	ktap_check "assembled again: data intact" t_rescan

	t_stop_one() {
		amfctl stop r5 && absent r5 && health r1 AA
	}
	ktap_check "stop r5 (r1 stays)" t_stop_one

	# The copy of a2 as it is now (event 1), at sector 2048 (1 MiB) of vdd.
	t_two_gone() {
		dd if=/dev/mapper/a2 of=$STATE bs=1M seek=1 count=16 conv=notrunc,fsync status=none || return 1
		unslice a1 && unslice a2 || return 1
		asm --run r5
		rc_is 1 &&
			has "amfctl: r5 (group $UA): refused: incomplete: 1 of 3 members usable, raid5 needs at least 2 (role 1 missing, role 2 missing)" &&
			absent r5
	}
	ktap_check "two of three members gone: refused even with --run" t_two_gone

	t_incremental() {
		a_slice 1 || return 1
		asm --incremental /dev/mapper/a1
		rc_is 0 &&
			has "r5: waiting for more members (degraded: role 2 missing; 2 of 3 members present; not started without --run (amfctl assemble --run starts it degraded))" &&
			absent r5
	}
	ktap_check "a2 gone: --incremental waits for it" t_incremental

	t_degraded() {
		asm r5
		rc_is 1 &&
			has "amfctl: r5 (group $UA): refused: degraded: role 2 missing; 2 of 3 members present; not started without --run (amfctl assemble --run starts it degraded)" &&
			absent r5
	}
	ktap_check "a2 gone: refused without --run" t_degraded

	t_run() {
		asm --run r5 && rc_is 0 &&
			grep -qx 'r5: created /dev/mapper/r5: raid5, 2 of 3 members, event [0-9]* (newest: /dev/mapper/a0), degraded: role 2 missing' "$W/out" &&
			health r5 AAD && same r5
	}
	ktap_check "started degraded with --run (AAD), data rebuilt from parity" t_run

	t_dwrite() {
		fill r5 $R5LEN && same r5 && amfctl stop r5 || return 1
		e=$(events /dev/mapper/a0)
		echo "a0 at event $e"
		[ "$e" -ge 2 ]
	}
	ktap_check "a degraded write; the group records a2 failed" t_dwrite

	t_failed_back() {
		a_slice 2 || return 1
		asm r5 && rc_is 0 &&
			has "r5: leaving out /dev/mapper/a2 (role 2): the group records it failed (to be replaced or rebuilt)" &&
			health r5 AAD && same r5
	}
	ktap_check "the old a2 back: left out (recorded failed), started without --run" t_failed_back

	t_rebuild() {
		kmsg_mark
		dmsetup reload r5 --table "0 $R5LEN amf raid5 5 128 group $UA rebuild 2 3 /dev/mapper/a0 8192 /dev/mapper/a1 8192 /dev/mapper/a2 8192" &&
			dmsetup resume r5 || return 1
		i=0
		while [ $i -lt 60 ]; do
			case $(dmsetup status r5) in *" AAA "*" idle "*) break ;; esac
			sleep 1
			i=$((i + 1))
		done
		health r5 AAA && same r5 && amfctl stop r5 || return 1
		E2=$(events /dev/mapper/a0)
		echo "a0 at event $E2, a2 at $(events /dev/mapper/a2)"
		echo "$E2" >"$W/e2"
	}
	ktap_check "a2 rebuilt (reload with rebuild 2): AAA" t_rebuild

	t_stale() {
		unslice a2 && a_slice 2 vdd || return 1
		se=$(events /dev/mapper/a2)
		echo "$se" >"$W/se"
		e2=$(cat "$W/e2")
		echo "the copy is at event $se, the group at $e2"
		asm r5
		rc_is 1 &&
			has "r5: leaving out /dev/mapper/a2 (role 2): stale, event $se while /dev/mapper/a0 is at $e2" &&
			has "amfctl: r5 (group $UA): refused: degraded: role 2 missing; 2 of 3 members present; not started without --run (amfctl assemble --run starts it degraded)" &&
			absent r5
	}
	ktap_check "the copy from before the degraded write: stale, left out, refused without --run" t_stale

	t_stale_run() {
		asm --run r5 && rc_is 0 &&
			has "r5: leaving out /dev/mapper/a2 (role 2): stale, event $(cat "$W/se") while /dev/mapper/a0 is at $(cat "$W/e2")" &&
			health r5 AAD && same r5
	}
	ktap_check "started with --run: AAD, the stale data never read" t_stale_run

	# With the stale copy read as member 2, the volume would differ from the reference:
	# prove that the copy really holds other data than the rebuilt a2 had.
	t_copy_differs() {
		dd if=/dev/mapper/a2 bs=1M skip=4 count=12 status=none | md5sum >"$W/copy.md5"
		dd if=/dev/vdc bs=1M skip=5 count=12 status=none | md5sum >"$W/cur.md5"
		cat "$W/copy.md5" "$W/cur.md5"
		! cmp -s "$W/copy.md5" "$W/cur.md5"
	}
	ktap_check "the stale copy's data area differs from the current a2" t_copy_differs

	t_save() {
		fill r1 $R1LEN && same r1 || return 1
		{
			md5sum <"$W/r5.ref" | cut -c1-32
			md5sum <"$W/r1.ref" | cut -c1-32
		} >"$W/sums"
		cat "$W/sums"
		dd if="$W/sums" of=$STATE bs=512 seek=$STATE_SEEK conv=notrunc,fsync status=none && sync &&
			touch /tmp/amf-restartme
	}
	ktap_check "checksums saved, power cut requested with r5 and r1 up" t_save
	ktap_done
fi

# ------------------------------------------------------------------ boot 1
t_slices1() {
	a_slice 0 && a_slice 1 && a_slice 2 vdd &&
		slice b0 vda 34816 30720 && slice b1 vdb 34816 30720
}
ktap_check "slices as at the power cut (a2: the stale copy)" t_slices1

t_boot() {
	e=$(events /dev/mapper/a0)
	se=$(events /dev/mapper/a2)
	t_conf_scan && rc_is 0 &&
		has "r5: leaving out /dev/mapper/a2 (role 2): stale, event $se while /dev/mapper/a0 is at $e" &&
		grep -q '^r5: created /dev/mapper/r5: raid5, 2 of 3 members, .*degraded: role 2 failed$' "$W/out" &&
		grep -q '^r1: created /dev/mapper/r1: raid1, 2 of 2 members' "$W/out"
}
ktap_check "assemble --scan at boot (no --run): both back, r5 degraded as recorded" t_boot

t_health() { health r5 AAD && health r1 AA; }
ktap_check "r5 AAD, r1 AA" t_health

t_sums() {
	dd if=$STATE bs=512 skip=$STATE_SEEK count=1 status=none | head -n 2 >"$W/sums"
	cat "$W/sums"
	a=$(dd if=/dev/mapper/r5 bs=1M iflag=direct status=none | md5sum | cut -c1-32)
	b=$(dd if=/dev/mapper/r1 bs=1M iflag=direct status=none | md5sum | cut -c1-32)
	echo "now: $a $b"
	[ "$(printf '%s\n%s\n' "$a" "$b")" = "$(cat "$W/sums")" ]
}
ktap_check "the data of boot 0 after the power cut" t_sums

t_end() {
	amfctl stop --scan && no_amf && for d in a0 a1 a2 b0 b1; do unslice $d || return 1; done
}
ktap_check "stop --scan; slices removed" t_end
ktap_done
