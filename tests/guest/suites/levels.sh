# SPDX-License-Identifier: GPL-2.0
# Every level created, written and read back, quickly: raid0, raid1, raid10 near, raid5 and
# raid6 (random writes of every shape against a reference, parity scrubbed), and a raid5 group
# with superblocks, bitmap and `ppl`, degraded (the stripe worker's logged writes). The
# `stack` step runs it on the test kernel built for size (CONFIG_CC_OPTIMIZE_FOR_SIZE): the
# larger Rust frames of that build once overflowed the 16 KiB kernel stack at the first
# `dmsetup create` of any redundant level. Disks: vda..vdf, 32 MiB each.
. /amf/lib/ktap.sh
. /amf/lib/raid.sh

ktap_plan 8

ktap_check "load dm-amf" amf_load

# simple_case NAME TABLE SEED: create, write it all, rewrite a band with small writes, verify
# both, remove.
simple_case() {
	dm_create "$1" "$2" || { echo "create failed: $DM_OUT"; return 1; }
	l_len=$(blockdev --getsz "/dev/mapper/$1")
	amf-iotool write --dev "/dev/mapper/$1" --seed "$3" --gen 1 || return 1
	amf-iotool write --dev "/dev/mapper/$1" --seed "$3" --gen 2 --start 5 --count $((l_len / 4)) --bs 8 ||
		return 1
	amf-iotool verify --dev "/dev/mapper/$1" --seed "$3" --gen 2 --start 5 --count $((l_len / 4)) --bs 8 ||
		return 1
	amf-iotool verify --dev "/dev/mapper/$1" --seed "$3" --gen 1 --start $((5 + l_len / 4)) \
		--count $((l_len - 5 - l_len / 4)) || return 1
	dmsetup remove "$1"
}

ktap_check "raid0 x4, chunk 64" \
	simple_case l0 "0 32768 amf raid0 1 64 4 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0" 71
ktap_check "raid1 x3, chunk 128" \
	simple_case l1 "0 16384 amf raid1 1 128 3 /dev/vda 0 /dev/vdb 0 /dev/vdc 0" 72
ktap_check "raid10 x4 near 2, chunk 16" \
	simple_case l10 "0 16384 amf raid10 1 16 4 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0" 73

# parity_case LEVEL SEED DEV:OFFSET...: create (zeroed members), 24 random writes of every
# shape against the reference, the members scrubbed, removed.
parity_case() {
	l_lv=$1 l_seed=$2
	shift 2
	l_d=$(($# - 1))
	[ "$l_lv" = raid6 ] && l_d=$(($# - 2))
	p_setup lp "$l_lv" 64 $((l_d * 64 * 96)) "$l_seed" "$@"
	p_create && p_random 24 || { p_teardown; return 1; }
	dmsetup remove "$P_NAME" || return 1
	l_m=
	for l_x in "$@"; do l_m="$l_m /dev/$l_x"; done
	# shellcheck disable=SC2086 # l_m is a word list
	scrub_ok "$l_lv" 64 "$P_LEN" $l_m || { p_teardown; return 1; }
	p_teardown
}
ktap_check "raid5 x4, chunk 64: random writes of every shape, parity scrubbed" \
	parity_case raid5 81 vda:0 vdb:0 vdc:0 vdd:0
ktap_check "raid6 x5, chunk 64: random writes of every shape, parity scrubbed" \
	parity_case raid6 82 vda:0 vdb:0 vdc:0 vdd:0 vde:0

# A formatted raid5 x4 group with `ppl`, member 2 missing: every write of a degraded row goes
# through the partial parity log, the bitmap marks its regions; volume = reference.
ppl_case() {
	amfctl format --force --level raid5 --chunk 32K --uuid 0badc0de-0000-4000-8000-00000000f5f5 \
		--size 4M /dev/vda /dev/vdb /dev/vdc /dev/vdd || return 1
	p_setup lg raid5 64 24576 83 vda:8192 vdb:8192 vdc:8192 vdd:8192
	P_TABLE="0 24576 amf raid5 4 64 group 0badc0de-0000-4000-8000-00000000f5f5 ppl 4"
	P_TABLE="$P_TABLE /dev/vda 8192 /dev/vdb 8192 - 8192 /dev/vdd 8192"
	dm_create "$P_NAME" "$P_TABLE" || { echo "create failed: $DM_OUT"; return 1; }
	dmsetup status "$P_NAME"
	dd if=/dev/zero of="$P_TMP/ref" bs=1M count=12 status=none || return 1
	p_fill && p_random 16 || { p_teardown; return 1; }
	p_teardown
}
ktap_check "raid5 x4 group with ppl, member 2 missing: logged writes, volume = reference" ppl_case

ktap_check "unload dm-amf" rmmod dm_amf

ktap_done
