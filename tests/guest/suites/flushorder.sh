# SPDX-License-Identifier: GPL-2.0
# Flush before clean: a write-intent bitmap block that clears bits reaches stable media only
# after the data it calls clean. The members of a raid1 x2 group are dm-linear slices of one
# dm-log-writes device (vda, log on vdb), so one log orders every member's writes; dm-log-
# writes logs a plain write only once a flush covers it (until then a volatile cache may
# lose it) and a FUA write at once. The volume is written (plain O_DIRECT writes: bit set,
# data), then suspended (every bit cleared); the log must show every data write, then a
# flush, before the first bitmap write that clears. Without the flush the clearing block is
# logged while the data is still unflushed: a power loss there leaves a region called clean
# whose copies differ.
. /amf/lib/ktap.sh

ktap_plan 5

ktap_check "load dm-amf" amf_load

U=0badf1a5-0000-4000-8000-0000000000f0
SLICE=32768 # sectors: 16 MiB per member
DATA=8192   # amfctl format's data offset

fo_setup() {
	lw_len=$(blockdev --getsz /dev/vda)
	# Zero the log's superblock: a log from an earlier run must not be read back.
	dd if=/dev/zero of=/dev/vdb bs=4096 count=1 oflag=direct status=none || return 1
	dm_create lw "0 $lw_len log-writes /dev/vda /dev/vdb" || { echo "log-writes: $DM_OUT"; return 1; }
	dm_create fo_m0 "0 $SLICE linear /dev/mapper/lw 0" || return 1
	dm_create fo_m1 "0 $SLICE linear /dev/mapper/lw $SLICE" || return 1
	amfctl format --force --level raid1 --chunk 64K --uuid "$U" --size 8M \
		/dev/mapper/fo_m0 /dev/mapper/fo_m1 || return 1
	fo_t=$(amfctl table --level raid1 --chunk 64K --size 16384 --group "$U" \
		--dev /dev/mapper/fo_m0:4M --dev /dev/mapper/fo_m1:4M) || { echo "$fo_t"; return 1; }
	echo "table: $fo_t"
	dm_create fo "$fo_t" || { echo "create: $DM_OUT"; return 1; }
}
ktap_check "raid1 x2 group on two slices of one dm-log-writes device" fo_setup

fo_run() {
	dmsetup message lw 0 mark start || return 1
	# Plain O_DIRECT writes (no FUA, no flush): the region's bit is set first, with FUA.
	dd if=/dev/urandom of=/dev/mapper/fo bs=64k count=16 oflag=direct status=none || return 1
	# Quiesced: every bit is cleared.
	dmsetup suspend fo || return 1
	dmsetup resume fo || return 1
	dmsetup message lw 0 mark end || return 1
}
ktap_check "1 MiB written, suspended (bits cleared), resumed" fo_run

# The entries that touch the data areas and bitmap slot 0 block 0 of both members, in log
# order, each as "<index> <kind> <flags>" (kind: d data, b bitmap, f flush, m mark).
fo_entries() {
	amf-iotool logwrites --log /dev/vdb | awk -v s="$SLICE" -v d="$DATA" '
		{ i = $1; sec = $2; n = $3; fl = $4; m = sec % s; k = "" }
		fl ~ /M/ { print i, "m", fl; next }
		n == 0 && fl ~ /F/ { print i, "f", fl; next }
		m >= d && m < d + 16384 { k = "d" }
		m >= 2048 && m < 2056 { k = "b" }
		k != "" { print i, k, fl; if (fl ~ /F/) print i, "f", fl }'
}

fo_check() {
	fo_entries >"$KTAP_TMP/fo" || return 1
	awk '{ printf "%s%s", sep, $2 $3; sep = " " } END { print "" }' "$KTAP_TMP/fo" | cut -c1-600
	awk '
		$2 == "d" { if (first_d == "") first_d = $1; last_d = $1; nd++ }
		$2 == "b" && first_d != "" && first_clear == "" { first_clear = $1 }
		$2 == "f" && last_d != "" && first_clear == "" && $1 >= last_d { flushed = 1 }
		END {
			printf "data writes logged: %d (first %s, last %s); first clearing bitmap write %s\n",
				nd, first_d, last_d, first_clear
			if (nd < 32) { print "fewer data writes logged than issued (32)"; exit 1 }
			if (first_clear == "") { print "no bitmap write after the data"; exit 1 }
			if (last_d > first_clear) { print "data still unflushed when the bits were cleared"; exit 1 }
			if (!flushed) { print "no flush between the data and the clearing write"; exit 1 }
		}' "$KTAP_TMP/fo"
}
ktap_check "log: every data write, then a flush, before the first bitmap write that clears" fo_check

fo_teardown() {
	dmsetup remove fo && dmsetup remove fo_m0 && dmsetup remove fo_m1 && dmsetup remove lw
}
ktap_check "teardown" fo_teardown

ktap_done
