# SPDX-License-Identifier: GPL-2.0
# Parity levels (raid5, raid6; md's left-symmetric layout, Documentation/table-syntax.rst):
# what is written through the device reads back byte for byte against an independent
# reference file in tmpfs, every data chunk sits on the member and row the documented layout
# gives, and the parity on the members is consistent (`amfctl scrub`, run on the members
# with the device suspended or removed and the page cache dropped) after random writes of
# every shape, after concurrent writers sharing stripes, after fio, and after removal.
# Then parity tables the kernel must refuse, and the member length it must accept.
#
# Layout (the formula this suite checks the module against): logical chunk c is in stripe
# s = c / D (D = #devs - parity), P on member n-1-(s % n), Q (raid6) on (P+1) % n, data chunk
# k = c % D on member (P + parity + k) % n, at member sector offset + s * chunk + (sector
# within the chunk). Needs 6 disks of 32 MiB (vda..vdf) and amfctl in the initramfs; fio
# (vm.sh --extra fio) for the fio checks, which are skipped without it.
# shellcheck disable=SC1091 # the guest's path
. /amf/lib/ktap.sh
# shellcheck source-path=SCRIPTDIR source=../lib/raid.sh
. /amf/lib/raid.sh

NCASES=3
PER_CASE=11
NTABLE=6
ktap_plan $((2 + NCASES * PER_CASE + NTABLE))

P_WRITES=120 # random writes per volume
P_TMP=$KTAP_TMP

amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"

p_amfctl() { amfctl --version && amfctl scrub --help >/dev/null; }
ktap_check "amfctl (with scrub) runs in the guest" p_amfctl

if fio --enghelp 2>/dev/null | grep -qw libaio; then P_FIOENG=libaio; else P_FIOENG=psync; fi

# The shared helpers (p_setup, p_create, p_fill, p_random, p_compare, p_map, scrub_ok...) are
# in /amf/lib/raid.sh.

p_fill_random() { p_fill && p_random "$P_WRITES"; }

# Data chunks on the members where the layout says: every data chunk of the first n stripes
# (every position of P), of the last stripe, and 4 random ones, read through the device,
# then (suspended, page cache dropped) from the member directly. Parity is scrub's job.
p_layout() {
	p_need_dev || return 1
	p_nch=$((P_LEN / P_CHUNK)) p_cbytes=$((P_CHUNK * 512))
	p_list='' p_lc=0
	while [ $p_lc -lt $((P_N * P_D)) ]; do p_list="$p_list $p_lc"; p_lc=$((p_lc + 1)); done
	p_lc=$((p_nch - P_D))
	while [ $p_lc -lt $p_nch ]; do p_list="$p_list $p_lc"; p_lc=$((p_lc + 1)); done
	for _ in 1 2 3 4; do p_rand $p_nch; p_list="$p_list $p_r"; done
	p_drop
	for p_lc in $p_list; do
		dd if="$P_DEV" of="$P_TMP/p_dc.$p_lc" bs=$p_cbytes count=1 skip=$((p_lc * p_cbytes)) \
			iflag=skip_bytes,direct status=none || { echo "reading chunk $p_lc failed"; return 1; }
	done
	dmsetup suspend "$P_NAME" || { echo "suspend failed"; return 1; }
	p_drop
	p_lbad=0 p_ln=0
	for p_lc in $p_list; do
		p_ln=$((p_ln + 1))
		p_map $((p_lc * P_CHUNK))
		if ! dd if="$p_mdev" of="$P_TMP/p_mc" bs=$p_cbytes count=1 skip=$((p_ms * 512)) \
			iflag=skip_bytes,direct status=none; then
			echo "reading $p_mdev at $p_ms failed"
			p_lbad=$((p_lbad + 1))
		elif ! cmp -s "$P_TMP/p_dc.$p_lc" "$P_TMP/p_mc"; then
			echo "not on the member: $(p_where $((p_lc * P_CHUNK)))"
			p_lbad=$((p_lbad + 1))
		fi
	done
	# Removed only now: a random chunk may repeat one already in the list.
	rm -f "$P_TMP"/p_dc.*
	dmsetup resume "$P_NAME" || { echo "resume failed"; p_lbad=$((p_lbad + 1)); }
	echo "$p_ln data chunks checked (chunks$p_list), $p_lbad wrong"
	[ $p_lbad -eq 0 ]
}

# 4 concurrent writers (O_DIRECT, one 8-sector write each time) on interleaved, disjoint
# pieces from stripe 1 on: writer w writes piece 4i+w for i = 0..95, so all four work in the
# same chunk and stripe at the same time. Then the whole device against the reference.
p_concurrent() {
	p_need_dev || return 1
	p_t0=$(date +%s)
	p_cpw=96 p_cb4=$((P_S / 8))
	p_cn=$((4 * p_cpw))
	[ $(((p_cb4 + p_cn) * 8)) -le "$P_LEN" ] || { echo "volume too small for the writers"; return 1; }
	dd if=/dev/urandom of="$P_TMP/p_cw" bs=4096 count=$p_cn iflag=fullblock status=none || return 1
	p_cpids=
	for p_cw in 0 1 2 3; do
		(
			p_ci=0
			while [ $p_ci -lt $p_cpw ]; do
				p_cp=$((p_ci * 4 + p_cw))
				dd if="$P_TMP/p_cw" of="$P_DEV" bs=4096 count=1 skip=$p_cp seek=$((p_cb4 + p_cp)) \
					oflag=direct conv=notrunc status=none || exit 1
				p_ci=$((p_ci + 1))
			done
		) &
		p_cpids="$p_cpids $!"
	done
	p_cbad=0
	for p_cpid in $p_cpids; do wait "$p_cpid" || p_cbad=$((p_cbad + 1)); done
	echo "4 writers x $p_cpw pieces of 8 sectors from sector $((p_cb4 * 8)) in $(($(date +%s) - p_t0)) s"
	[ $p_cbad -eq 0 ] || { echo "$p_cbad writers failed"; return 1; }
	dd if="$P_TMP/p_cw" of="$P_TMP/ref" bs=4096 seek=$p_cb4 conv=notrunc status=none || return 1
	: >"$P_TMP/p_writes"
	P_BAD=
	p_compare && return 0
	if [ -n "$P_BAD" ] && [ "$P_BAD" -ge $((p_cb4 * 8)) ] && [ "$P_BAD" -lt $(((p_cb4 + p_cn) * 8)) ]; then
		echo "first difference in a piece of writer $(((P_BAD / 8 - p_cb4) % 4))"
	fi
	return 1
}

# fio: 2 jobs of random 4 KiB direct writes at queue depth 8 on the two halves, then one
# sequential 1 MiB pass over the whole volume; crc32c verify of every block after each.
p_fio() {
	p_need_dev || return 1
	p_t0=$(date +%s)
	p_fh=$((P_LEN * 256))
	fio --name=rand --filename="$P_DEV" --direct=1 --ioengine=$P_FIOENG --iodepth=8 \
		--rw=randwrite --bs=4k --numjobs=2 --size=$p_fh --offset_increment=$p_fh \
		--verify=crc32c --verify_fatal=1 --randseed=$((P_RNG % 100000)) --group_reporting \
		>"$P_TMP/p_fio" 2>&1
	p_fr=$?
	grep -E "err=|WRITE:|READ:|verify" "$P_TMP/p_fio" | head -6
	[ $p_fr -eq 0 ] || { tail -20 "$P_TMP/p_fio"; return 1; }
	fio --name=seq --filename="$P_DEV" --direct=1 --ioengine=$P_FIOENG --iodepth=8 \
		--rw=write --bs=1M --size=$((P_LEN * 512)) --verify=crc32c --verify_fatal=1 \
		>"$P_TMP/p_fio" 2>&1
	p_fr=$?
	grep -E "err=|WRITE:|READ:|verify" "$P_TMP/p_fio" | head -6
	[ $p_fr -eq 0 ] || { tail -20 "$P_TMP/p_fio"; return 1; }
	echo "fio ($P_FIOENG) in $(($(date +%s) - p_t0)) s"
}

p_remove() {
	dmsetup remove "$P_NAME" || { echo "remove failed"; return 1; }
	# shellcheck disable=SC2086 # word list
	scrub_ok "$P_LEVEL" "$P_CHUNK" "$P_LEN" $P_SCRUB
}

# p_case NAME LEVEL CHUNK LEN SEED DISK:OFFSET...: the PER_CASE checks of one volume.
p_case() {
	p_seed=$5
	p_setup "$@"
	P_TABLE_MM="0 $P_LEN amf $P_LEVEL 1 $P_CHUNK $P_N" p_health=''
	for p_x in $P_MEMBERS; do
		P_TABLE_MM="$P_TABLE_MM $(dev_majmin "${p_x%:*}") ${p_x#*:}"
		p_health="${p_health}A"
	done
	p_t="$P_LEVEL x$P_N chunk $P_CHUNK"
	ktap_diag "$p_t: $P_TABLE (offsets seed $p_seed)"

	ktap_check "$p_t: members zeroed, created, reads as zeroes" p_create
	ktap_check "$p_t: dmsetup status is '$P_LEVEL $P_N $p_health $P_LEN/$P_LEN idle 0'" \
		p_expect "$(dmsetup status "$P_NAME" 2>&1)" "0 $P_LEN amf $P_LEVEL $P_N $p_health $P_LEN/$P_LEN idle 0"
	ktap_check "$p_t: dmsetup table echoes the arguments, members as major:minor" \
		p_expect "$(dmsetup table "$P_NAME" 2>&1)" "$P_TABLE_MM"
	ktap_check "$p_t: full-stripe fill + $P_WRITES random writes (in-chunk, chunk-crossing, stripes) = reference" p_fill_random
	ktap_check "$p_t: data chunks on the members where the layout says" p_layout
	ktap_check "$p_t: scrub clean after the random writes" p_scrub_live
	ktap_check "$p_t: 4 concurrent writers sharing stripes: data = reference" p_concurrent
	ktap_check "$p_t: scrub clean after the concurrent writers" p_scrub_live
	if command -v fio >/dev/null 2>&1; then
		ktap_check "$p_t: fio 2 x randwrite 4k + sequential 1M, crc32c verified" p_fio
		ktap_check "$p_t: scrub clean after fio" p_scrub_live
	else
		ktap_skip "$p_t: fio 2 x randwrite 4k + sequential 1M, crc32c verified" "fio not in this initramfs (vm.sh --extra fio)"
		ktap_skip "$p_t: scrub clean after fio" "fio not in this initramfs (vm.sh --extra fio)"
	fi
	ktap_check "$p_t: removed; the members scrub clean" p_remove

	# Leave nothing behind for the next volume, whatever failed.
	if dmsetup info "$P_NAME" >/dev/null 2>&1; then
		dmsetup resume "$P_NAME" >/dev/null 2>&1
		dmsetup remove "$P_NAME" >/dev/null 2>&1
	fi
	rm -f "$P_TMP/ref" "$P_TMP/p_dev" "$P_TMP/p_cw" "$P_TMP/p_mc"
}

# 6 MiB raid5 over 4 members (2 MiB each), offsets not chunk-aligned.
p_case p5 raid5 64 12288 501 vda:0 vdb:2048 vdc:8 vdd:64
# 6 MiB raid6 over 5 members.
p_case p6 raid6 64 12288 602 vdb:0 vdc:16 vdd:0 vde:4096 vdf:8
# 4 MiB raid6 over 4 members (2 data chunks a stripe), the smallest chunk.
p_case p6s raid6 8 8192 603 vdf:0 vda:8 vde:24 vdc:0

# ------------------------------------------------------------------ tables
# dm_refused MESSAGE TABLE (lib/ktap.sh): refused with the documented message.

# The member length of a parity level is length / (#devs - parity): a raid5 of 4 members
# may be 3 x the member size long, and not a sector more per member.
P_WS=$(dev_sectors vda 2>/dev/null)
case $P_WS in [1-9]*) ;; *) ktap_diag "no size of vda: '$P_WS'"; P_WS=65536 ;; esac
P_WM=$((P_WS / 64 * 64))
P_WL=$((P_WM * 3))
p_whole() {
	dm_create w "0 $P_WL amf raid5 1 64 4 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd $((P_WS - P_WM))" ||
		{ echo "create failed: $DM_OUT"; return 1; }
	dmsetup table w
	dmsetup remove w
}

ktap_check "raid6 with 3 members refused" dm_refused "Too few devices for the RAID level" \
	"0 1024 amf raid6 1 64 3 /dev/vda 0 /dev/vdb 0 /dev/vdc 0"
ktap_check "raid5 x4 chunk 64, length 1024 (a multiple of chunk x #devs, not of chunk x 3) refused" \
	dm_refused "Target length is not a multiple of the full stripe" \
	"0 1024 amf raid5 1 64 4 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0"
ktap_check "raid6 x5 chunk 64, length 1280 (a multiple of chunk x #devs, not of chunk x 3) refused" \
	dm_refused "Target length is not a multiple of the full stripe" \
	"0 1280 amf raid6 1 64 5 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0 /dev/vde 0"
ktap_check "raid5 x4 of $P_WL sectors accepted on $P_WS-sector members ($P_WM each)" p_whole
ktap_check "raid5 x4 of $P_WL sectors with one member's offset 8 sectors too far refused" \
	dm_refused "Device too small" \
	"0 $P_WL amf raid5 1 64 4 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd $((P_WS - P_WM + 8))"
# shellcheck disable=SC2016 # expanded by that sh
ktap_check "no device left behind" sh -c '[ "$(dmsetup ls 2>&1)" = "No devices found" ]'

ktap_done
