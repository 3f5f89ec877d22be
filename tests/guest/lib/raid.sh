# SPDX-License-Identifier: GPL-2.0
# Helpers of the raid5/raid6 suites (parity.sh, degraded.sh), busybox sh: one volume's
# geometry in P_* variables, md's left-symmetric layout, a reference file in tmpfs the
# device is compared against, random writes of every shape, `amfctl scrub` of the members.
# Source it after ktap.sh. Layout (Documentation/table-syntax.rst): logical chunk c is in
# stripe s = c / D (D = #devs - parity), P on member n-1-(s % n), Q (raid6) on (P+1) % n,
# data chunk k = c % D on member (P + parity + k) % n, at member sector offset + s * chunk +
# (sector within the chunk).
#
#   p_setup NAME LEVEL CHUNK LEN SEED DEV:OFFSET...   the P_* variables of a volume (DEV is
#                               relative to /dev: vda, mapper/m0); P_TABLE its table line
#   p_create                    zero the members' data areas, create, compare (all zeroes)
#   p_fill                      the whole volume (and the reference) in full-stripe writes
#   p_random N                  N random writes of six shapes, then p_compare
#   p_write OFF LEN             one write of new random data (reference, then the device)
#   p_compare                   the whole device (O_DIRECT) equals the reference
#   p_map SECTOR / p_where SECTOR   where the layout puts a logical sector
#   scrub_ok LEVEL CHUNK SIZE DEV:OFFSET...   `amfctl scrub` of members finds no mismatch
#   p_scrub_live                scrub_ok of the volume's members, the volume suspended
#   p_expect GOT WANT           GOT = WANT, or both printed
#   p_members DISK...           dm-linear members m0, m1... each over a whole disk
#   p_majmin I / p_swap I TABLE member mI's maj:min / mI gets TABLE (volume live on it)
#   p_health CHARS              the volume's status line with these health characters
#   p_logged SHOW I...          the kernel log says once of each member I that it failed
#   p_teardown FILE...          the volume, every member and these files removed
# shellcheck shell=sh

P_TMP=${P_TMP:-$KTAP_TMP}

p_drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# scrub_ok LEVEL CHUNK SIZE DEV:OFFSET...: `amfctl scrub` of the group on these members
# (sizes in sectors; the chunk is handed over as `<CHUNK>s`, since a plain --chunk is KiB) exits 0 and reports every stripe checked, none mismatched.
scrub_ok() {
	s_level=$1 s_chunk=$2 s_size=$3
	shift 3
	case $s_level in
	raid5) s_par=1 ;;
	raid6) s_par=2 ;;
	*) echo "scrub_ok: unknown level $s_level"; return 1 ;;
	esac
	s_want=$((s_size / (s_chunk * ($# - s_par))))
	s_args=
	for s_m in "$@"; do s_args="$s_args --dev $s_m"; done
	p_drop
	# shellcheck disable=SC2086 # s_args is a word list
	s_out=$(amfctl scrub --level "$s_level" --chunk "${s_chunk}s" --size "$s_size" $s_args 2>&1)
	s_rc=$?
	echo "amfctl scrub --level $s_level --chunk ${s_chunk}s --size $s_size$s_args: exit $s_rc"
	# The first mismatch lines and the summary.
	echo "$s_out" | awk 'NR <= 10 { print } { l = $0 } END { if (NR > 10) print "...\n" l }'
	case $s_rc in
	0) ;;
	1) echo "scrub found mismatched stripes"; return 1 ;;
	*) echo "scrub did not run to the end (exit $s_rc)"; return 1 ;;
	esac
	echo "$s_out" | grep -q "^scrub: $s_want stripes checked, 0 mismatched$" ||
		{ echo "no line 'scrub: $s_want stripes checked, 0 mismatched'"; return 1; }
}

# ------------------------------------------------------------------ one volume's state
# P_NAME P_DEV P_LEVEL P_PAR P_CHUNK P_LEN P_N P_D (data chunks a stripe) P_S (data sectors
# a stripe) P_MLEN (member data length) P_MEMBERS ("vda:0 vdb:2048 ...") P_SCRUB
# ("/dev/vda:0 ...") P_U (logical block size in sectors) P_RNG (offset generator state).

# p_rand N: p_r = pseudo-random in 0..N-1 (31-bit LCG, upper bits; seeded per volume so a
# failing sequence of offsets can be replayed).
p_rand() {
	P_RNG=$(((P_RNG * 1103515245 + 12345) % 2147483648))
	p_r=$((P_RNG >> 16))
	P_RNG=$(((P_RNG * 1103515245 + 12345) % 2147483648))
	p_r=$((((p_r << 15) | (P_RNG >> 16)) % $1))
}

# p_member I: p_mdev, p_moff of member I (0-based).
p_member() {
	p_mi=$1
	# shellcheck disable=SC2086 # word list
	set -- $P_MEMBERS
	shift "$p_mi"
	p_mdev=/dev/${1%:*} p_moff=${1#*:}
}

# p_map SECTOR: the documented place of a logical sector: p_mst stripe, p_mk data chunk in
# it, p_mp P member, p_mm member, p_ms member sector (p_mdev, p_moff of that member).
p_map() {
	p_mc=$(($1 / P_CHUNK))
	p_mst=$((p_mc / P_D)) p_mk=$((p_mc % P_D))
	p_mp=$((P_N - 1 - p_mst % P_N))
	p_mm=$(((p_mp + P_PAR + p_mk) % P_N))
	p_member "$p_mm"
	p_ms=$((p_moff + p_mst * P_CHUNK + $1 % P_CHUNK))
}

# p_where SECTOR: that place in words.
p_where() {
	p_map "$1"
	printf 'sector %s: chunk %s, stripe %s, data chunk %s -> member %s (%s) sector %s; P on member %s' \
		"$1" "$p_mc" "$p_mst" "$p_mk" "$p_mm" "$p_mdev" "$p_ms" "$p_mp"
	[ "$P_PAR" -eq 2 ] && printf ', Q on member %s' $(((p_mp + 1) % P_N))
	echo
}

p_need_dev() { [ -b "$P_DEV" ] || { echo "no $P_DEV"; return 1; }; }

# p_diff_chunks: which chunks of $P_TMP/p_dev differ from the reference (first 8 named).
p_diff_chunks() {
	p_dn=0 p_dc=0 p_db=$((P_CHUNK * 512))
	while [ $p_dc -lt $((P_LEN / P_CHUNK)) ]; do
		if ! cmp -s -n $p_db "$P_TMP/ref" "$P_TMP/p_dev" $((p_dc * p_db)) $((p_dc * p_db)); then
			p_dn=$((p_dn + 1))
			[ $p_dn -le 8 ] && echo "differs: $(p_where $((p_dc * P_CHUNK)))"
		fi
		p_dc=$((p_dc + 1))
	done
	echo "$p_dn of $((P_LEN / P_CHUNK)) chunks differ"
}

# p_compare: the whole device (O_DIRECT reads, page cache dropped) equals the reference.
# On a difference: where it is in the layout, the last writes that covered it, which chunks
# ($P_DIFF if set, else p_diff_chunks; the device's data is in $P_TMP/p_dev).
P_BAD=
p_compare() {
	p_drop
	dd if="$P_DEV" of="$P_TMP/p_dev" bs=$((P_S * 512)) count=$((P_LEN / P_S)) iflag=direct status=none ||
		{ echo "reading $P_DEV failed"; return 1; }
	if p_co=$(cmp "$P_TMP/ref" "$P_TMP/p_dev" 2>&1); then
		echo "device = reference ($P_LEN sectors)"
		return 0
	fi
	echo "$p_co"
	p_cb=$(echo "$p_co" | sed -n 's/.*differ: [a-z]* \([0-9]*\).*/\1/p')
	if [ -n "$p_cb" ]; then
		P_BAD=$(((p_cb - 1) / 512))
		echo "first difference: $(p_where "$P_BAD")"
		if [ -s "$P_TMP/p_writes" ]; then
			echo "last writes covering it (n kind offset length):"
			awk -v s="$P_BAD" '$3 <= s && s < $3 + $4' "$P_TMP/p_writes" | tail -3
		fi
	fi
	${P_DIFF:-p_diff_chunks}
	return 1
}

p_expect() {
	if [ "$1" = "$2" ]; then echo "$1"; else echo "got:  $1"; echo "want: $2"; return 1; fi
}

# ------------------------------------------------------------------ members m0, m1...
# dm-linear devices over the disks, so that one can be failed under a live volume by
# swapping its table (degraded.sh, metadata.sh).

# p_members DISK...: dm-linear members m0, m1... each over a whole disk.
p_members() {
	p_i=0
	for p_disk in "$@"; do
		dm_create "m$p_i" "0 $(dev_sectors "$p_disk") linear /dev/$p_disk 0" ||
			{ echo "creating m$p_i over $p_disk failed: $DM_OUT"; return 1; }
		echo "m$p_i ($(p_majmin "$p_i")): $(dmsetup table "m$p_i")"
		p_i=$((p_i + 1))
	done
}

p_majmin() { dmsetup info -c --noheadings -o major,minor "m$1" | tr -d ' '; }

# p_swap I TABLE: member device mI gets TABLE (the volume may be live on it).
p_swap() {
	dmsetup suspend "m$1" || { echo "suspend m$1 failed"; return 1; }
	dmsetup load "m$1" --table "$2" || { echo "load m$1 failed"; dmsetup resume "m$1"; return 1; }
	dmsetup resume "m$1" || { echo "resume m$1 failed"; return 1; }
	echo "m$1: $(dmsetup table "m$1")"
}

# p_health CHARS: dmsetup status of the volume is exactly the documented line with these
# health characters (and for a group's table, its write-intent bitmap part with nothing
# left to resync).
p_health() {
	p_st=$(dmsetup status "$P_NAME" 2>&1)
	case $p_st in *" idle 0 bitmap "[0-9]*" "[0-9]*" 0 "[0-9]*) p_st=${p_st% bitmap *} ;; esac
	p_expect "$p_st" "0 $P_LEN amf $P_LEVEL $P_N $1 $P_LEN/$P_LEN idle 0"
}

# p_logged SHOW I...: the kernel log since the mark (kept in $P_TMP/p_log; its lines with
# SHOW printed) says exactly once of each member I "dm_amf: member I (<maj:min of mI>)
# failed: I/O error; the group runs degraded", and of no other member.
p_logged() {
	dmesg_since_mark >"$P_TMP/p_log"
	grep -F "$1" "$P_TMP/p_log"
	shift
	p_lbad=0 p_want=0
	for p_lm in "$@"; do
		p_line="dm_amf: member $p_lm ($(p_majmin "$p_lm")) failed: I/O error; the group runs degraded"
		p_c=$(grep -cF "$p_line" "$P_TMP/p_log")
		[ "$p_c" -eq 1 ] || { echo "'$p_line': $p_c times"; p_lbad=1; }
		p_want=$((p_want + 1))
	done
	p_c=$(grep -c 'dm_amf: member [0-9]* (.*) failed' "$P_TMP/p_log")
	[ "$p_c" -eq "$p_want" ] || { echo "$p_c member failure lines, want $p_want"; p_lbad=1; }
	return $p_lbad
}

# p_teardown FILE...: the volume and every member removed (also after a failed check), and
# the reference, the device's copy, the kernel log and FILE... in $P_TMP.
p_teardown() {
	p_tbad=0
	if dmsetup info "$P_NAME" >/dev/null 2>&1; then
		dmsetup resume "$P_NAME" >/dev/null 2>&1
		dmsetup remove "$P_NAME" || { echo "remove $P_NAME failed"; p_tbad=1; }
	fi
	for p_tm in $(dmsetup ls 2>/dev/null | awk '$1 ~ /^m[0-9]+$/ { print $1 }'); do
		dmsetup resume "$p_tm" >/dev/null 2>&1
		dmsetup remove "$p_tm" || { echo "remove $p_tm failed"; p_tbad=1; }
	done
	rm -f "$P_TMP/ref" "$P_TMP/p_dev" "$P_TMP/p_log"
	for p_tf in "$@"; do rm -f "$P_TMP/$p_tf"; done
	dmsetup ls
	return $p_tbad
}

# p_setup NAME LEVEL CHUNK LEN SEED DEV:OFFSET...: the state of a volume (above); P_TABLE
# is its table line with member paths.
p_setup() {
	P_NAME=$1 P_LEVEL=$2 P_CHUNK=$3 P_LEN=$4 P_RNG=$5
	shift 5
	P_MEMBERS=$* P_N=$#
	case $P_LEVEL in raid5) P_PAR=1 ;; *) P_PAR=2 ;; esac
	P_D=$((P_N - P_PAR))
	P_S=$((P_CHUNK * P_D)) P_MLEN=$((P_LEN / P_D)) P_DEV=/dev/mapper/$P_NAME P_U=1
	P_TABLE="0 $P_LEN amf $P_LEVEL 1 $P_CHUNK $P_N" P_SCRUB=''
	for p_x in $P_MEMBERS; do
		P_TABLE="$P_TABLE /dev/${p_x%:*} ${p_x#*:}"
		P_SCRUB="$P_SCRUB /dev/$p_x"
	done
}

# ------------------------------------------------------------------ the steps of a volume

# Zero each member's data area (all-zero is consistent parity), create, the device is all
# zeroes like the new reference file.
p_create() {
	for p_x in $P_MEMBERS; do
		p_member_sz=$(blockdev --getsz "/dev/${p_x%:*}")
		p_zc=$(((${p_x#*:} + P_MLEN + 2047) / 2048))
		[ $p_zc -le $((p_member_sz / 2048)) ] || p_zc=$((p_member_sz / 2048))
		dd if=/dev/zero of="/dev/${p_x%:*}" bs=1M count=$p_zc oflag=direct conv=notrunc status=none ||
			{ echo "zeroing /dev/${p_x%:*} failed"; return 1; }
	done
	dm_create "$P_NAME" "$P_TABLE" || { echo "create failed: $DM_OUT"; return 1; }
	p_need_dev || return 1
	p_ss=$(blockdev --getss "$P_DEV")
	case $p_ss in [1-9]*[0-9] | [1-9]) ;; *) echo "blockdev --getss $P_DEV: '$p_ss'"; return 1 ;; esac
	P_U=$((p_ss / 512))
	[ $P_U -ge 1 ] || P_U=1
	echo "logical block size $p_ss bytes"
	dd if=/dev/zero of="$P_TMP/ref" bs=$((P_S * 512)) count=$((P_LEN / P_S)) status=none || return 1
	: >"$P_TMP/p_writes"
	p_compare
}

# p_write OFF LEN: LEN sectors of new random data at OFF into the reference, then the same
# bytes from there to the device (O_DIRECT, one write call). Two processes a write: forks
# are what costs in the emulated guest.
p_write() {
	p_wb=$(($2 * 512))
	dd if=/dev/urandom of="$P_TMP/ref" bs=$p_wb count=1 seek=$(($1 * 512)) \
		iflag=fullblock oflag=seek_bytes conv=notrunc status=none &&
		dd if="$P_TMP/ref" of="$P_DEV" bs=$p_wb count=1 skip=$(($1 * 512)) seek=$(($1 * 512)) \
			iflag=skip_bytes oflag=seek_bytes,direct conv=notrunc status=none
}

# p_fill: the volume full of random data in full-stripe writes (so that every later write
# changes non-zero data and parity), the reference the same. No compare.
p_fill() {
	p_need_dev || return 1
	if ! dd if=/dev/urandom of="$P_TMP/ref" bs=$((P_S * 512)) count=$((P_LEN / P_S)) iflag=fullblock status=none ||
		! dd if="$P_TMP/ref" of="$P_DEV" bs=$((P_S * 512)) count=$((P_LEN / P_S)) oflag=direct conv=notrunc status=none; then
		echo "filling $P_DEV failed"
		return 1
	fi
	echo "filled $P_LEN sectors"
}

# p_random N: N random writes of six shapes, then the whole device against the reference:
#   0 inside one chunk, shorter than it    1 across a chunk boundary
#   2 one whole stripe, aligned            3 1..3 whole stripes, aligned
#   4 1 sector..3 stripes, anywhere        5 one whole chunk, aligned
p_random() {
	p_need_dev || return 1
	p_t0=$(date +%s) p_nw=$1
	p_nch=$((P_LEN / P_CHUNK)) p_nst=$((P_LEN / P_S))
	p_n=0 p_bad=0 p_k0=0 p_k1=0 p_k2=0 p_k3=0 p_k4=0 p_k5=0 p_sum=0
	while [ $p_n -lt "$p_nw" ] && [ $p_bad -lt 5 ]; do
		p_n=$((p_n + 1))
		p_rand 6
		p_kind=$p_r
		case $p_kind in
		0)
			p_rand $((P_CHUNK - 1)); p_len=$((p_r + 1))
			p_rand $p_nch; p_off=$((p_r * P_CHUNK))
			p_rand $((P_CHUNK - p_len + 1)); p_off=$((p_off + p_r))
			p_k0=$((p_k0 + 1)) ;;
		1)
			p_rand $((p_nch - 1)); p_b=$(((p_r + 1) * P_CHUNK))
			p_rand "$P_CHUNK"; p_off=$((p_b - p_r - 1))
			p_rand "$P_CHUNK"; p_len=$((p_b - p_off + p_r + 1))
			p_k1=$((p_k1 + 1)) ;;
		2)
			p_rand $p_nst; p_off=$((p_r * P_S)) p_len=$P_S
			p_k2=$((p_k2 + 1)) ;;
		3)
			p_rand 3; p_len=$(((p_r + 1) * P_S))
			p_rand $((p_nst - p_r)); p_off=$((p_r * P_S))
			p_k3=$((p_k3 + 1)) ;;
		4)
			p_rand $((3 * P_S)); p_len=$((p_r + 1))
			p_rand $((P_LEN - p_len + 1)); p_off=$p_r
			p_k4=$((p_k4 + 1)) ;;
		*)
			p_rand $p_nch; p_off=$((p_r * P_CHUNK)) p_len=$P_CHUNK
			p_k5=$((p_k5 + 1)) ;;
		esac
		if [ "$P_U" -gt 1 ]; then # a device with larger logical blocks: whole blocks only
			p_off=$((p_off / P_U * P_U)) p_len=$(((p_len + P_U - 1) / P_U * P_U))
			[ $((p_off + p_len)) -le "$P_LEN" ] || p_len=$((P_LEN - p_off))
		fi
		echo "$p_n $p_kind $p_off $p_len" >>"$P_TMP/p_writes"
		p_sum=$((p_sum + p_len))
		p_write "$p_off" "$p_len" || { echo "write $p_n (kind $p_kind, $p_len sectors at $p_off) failed"; p_bad=$((p_bad + 1)); }
	done
	echo "$p_n writes, $p_sum sectors (shapes: in-chunk $p_k0, chunk-crossing $p_k1, stripe $p_k2," \
		"1-3 stripes $p_k3, any $p_k4, chunk $p_k5) in $(($(date +%s) - p_t0)) s"
	[ $p_bad -eq 0 ] || return 1
	p_compare
}

# Data chunks on the members where the layout says: every data chunk of the first n stripes
# (every position of P), of the last stripe, and 4 random ones, read through the device,

# Scrub the members with the device suspended (every completed write is on them).
p_scrub_live() {
	p_need_dev || return 1
	dmsetup suspend "$P_NAME" || { echo "suspend failed"; return 1; }
	# shellcheck disable=SC2086 # word list
	scrub_ok "$P_LEVEL" "$P_CHUNK" "$P_LEN" $P_SCRUB
	p_sr=$?
	dmsetup resume "$P_NAME" || { echo "resume failed"; p_sr=1; }
	return $p_sr
}

# 4 concurrent writers (O_DIRECT, one 8-sector write each time) on interleaved, disjoint
