# SPDX-License-Identifier: GPL-2.0
# Bad tables (Documentation/table-syntax.rst, "Errors"): each must fail `dmsetup create`
# with -EINVAL, log exactly "device-mapper: table: <maj:min>: amf: <message> (-EINVAL)",
# and leave no device behind. Then a bad reload must leave a live device untouched, and a
# good table must still work.
. /amf/lib/ktap.sh

VDA_MM=$(dev_majmin vda)
# message|table (disks are 32 MiB = 65536 sectors)
CASES="Not enough arguments|0 1024 amf
Not enough arguments|0 1024 amf raid0 1 128
Unknown RAID level|0 1024 amf raid9 1 128 1 /dev/vda 0
Unknown RAID level|0 1024 amf mirror 1 128 1 /dev/vda 0
Too few devices for the RAID level|0 1024 amf raid5 1 128 1 /dev/vda 0
Too few devices for the RAID level|0 1024 amf raid6 1 128 3 /dev/vda 0 /dev/vdb 0 /dev/vdc 0
Too few devices for the RAID level|0 1024 amf raid1 1 128 1 /dev/vda 0
Too few devices for the RAID level|0 1024 amf raid10 1 128 1 /dev/vda 0
Unknown optional parameter|0 1024 amf raid10 3 128 copies 2 2 /dev/vda 0 /dev/vdb 0
Duplicate optional parameter|0 1024 amf raid10 5 128 raid10_copies 2 raid10_copies 2 2 /dev/vda 0 /dev/vdb 0
Invalid number of parameters|0 1024 amf raid0 x 128 1 /dev/vda 0
Invalid number of parameters|0 1024 amf raid0 0 1 /dev/vda 0
Invalid number of parameters|0 1024 amf raid0 9 128 1 /dev/vda 0
Invalid chunk size|0 1024 amf raid0 1 12x 1 /dev/vda 0
Invalid chunk size|0 1024 amf raid0 1 -128 1 /dev/vda 0
Chunk size must be a power of two|0 1152 amf raid0 1 24 1 /dev/vda 0
Chunk size must be a power of two|0 3000 amf raid0 1 1000 1 /dev/vda 0
Chunk size out of range|0 1024 amf raid0 1 4 1 /dev/vda 0
Chunk size out of range|0 4194304 amf raid0 1 4194304 1 /dev/vda 0
Unknown optional parameter|0 1024 amf raid0 2 128 foo 1 /dev/vda 0
Invalid number of devices|0 1024 amf raid0 1 128 0
Invalid number of devices|0 1024 amf raid0 1 128 65 /dev/vda 0
Invalid number of devices|0 1024 amf raid0 1 128 x /dev/vda 0
Wrong number of device arguments|0 1024 amf raid0 1 128 2 /dev/vda 0
Wrong number of device arguments|0 1024 amf raid0 1 128 2 /dev/vda 0 /dev/vdb
Too many arguments|0 1024 amf raid0 1 128 1 /dev/vda 0 extra
Invalid device offset|0 1024 amf raid0 1 128 1 /dev/vda x
Invalid device offset|0 1024 amf raid0 1 128 1 /dev/vda -1
Duplicate device|0 1024 amf raid0 1 128 2 /dev/vda 0 /dev/vda 4096
Duplicate device|0 1024 amf raid0 1 128 2 /dev/vda 0 $VDA_MM 8192
Target length is not a multiple of the full stripe|0 1000 amf raid0 1 128 2 /dev/vda 0 /dev/vdb 0
Target length is not a multiple of the full stripe|0 384 amf raid0 1 128 2 /dev/vda 0 /dev/vdb 0
Target length is not a multiple of the full stripe|0 384 amf raid5 1 128 3 /dev/vda 0 /dev/vdb 0 /dev/vdc 0
Target length is not a multiple of the full stripe|0 1024 amf raid6 1 128 5 /dev/vda 0 /dev/vdb 0 /dev/vdc 0 /dev/vdd 0 /dev/vde 0
Device lookup failed|0 1024 amf raid0 1 128 1 /dev/nonexistent 0
Device lookup failed|0 1024 amf raid0 1 128 2 /dev/vda 0 /dev/vdz 0
Device too small|0 131072 amf raid0 1 128 1 /dev/vda 0
Device too small|0 65536 amf raid0 1 128 1 /dev/vda 8
Device too small|0 65536 amf raid0 1 128 2 /dev/vda 0 /dev/vdb 32776
Invalid rebuild index|0 768 amf raid5 3 128 rebuild 3 3 /dev/vda 0 /dev/vdb 0 /dev/vdc 0
Invalid rebuild index|0 768 amf raid5 2 128 rebuild 3 /dev/vda 0 /dev/vdb 0 /dev/vdc 0
Duplicate rebuild index|0 768 amf raid5 5 128 rebuild 1 rebuild 1 3 /dev/vda 0 /dev/vdb 0 /dev/vdc 0
rebuild is only valid for raid1, raid5, raid6 and raid10|0 256 amf raid0 3 128 rebuild 0 2 /dev/vda 0 /dev/vdb 0
rebuild is only implemented for raid5 and raid6|0 1024 amf raid1 3 128 rebuild 1 2 /dev/vda 0 /dev/vdb 0
rebuild is only implemented for raid5 and raid6|0 1024 amf raid10 3 128 rebuild 1 2 /dev/vda 0 /dev/vdb 0
Too many failed members for the RAID level|0 768 amf raid5 1 128 3 - 0 - 0 /dev/vdc 0
Too many failed members for the RAID level|0 768 amf raid5 3 128 rebuild 0 3 /dev/vda 0 - 0 /dev/vdc 0
Too many failed members for the RAID level|0 768 amf raid6 5 128 rebuild 0 rebuild 1 4 /dev/vda 0 /dev/vdb 0 - 0 /dev/vdd 0
Too many failed members for the RAID level|0 512 amf raid0 1 128 2 /dev/vda 0 - 0
Device lookup failed|0 768 amf raid5 1 128 3 - 0 /dev/vdz 0 /dev/vdc 0
ppl needs group <uuid>|0 768 amf raid5 2 128 ppl 3 /dev/vda 0 /dev/vdb 0 /dev/vdc 0
ppl is only valid for raid5 and raid6|0 1024 amf raid1 4 128 group 0123456789abcdef0123456789abcdef ppl 2 /dev/vda 0 /dev/vdb 0
Duplicate optional parameter|0 768 amf raid5 5 128 ppl group 0123456789abcdef0123456789abcdef ppl 3 /dev/vda 0 /dev/vdb 0 /dev/vdc 0"
NCASES=$(echo "$CASES" | wc -l)

ktap_plan $((NCASES + 1 + 1 + 2))

if amf_load >"$KTAP_TMP/ld" 2>&1; then
	ktap_ok "load dm-amf"
else
	ktap_diag_file "$KTAP_TMP/ld"
	ktap_fail "load dm-amf"
fi

# The kernel log line the document promises, after the last mark.
# The errno is printed with %pe: "-EINVAL" with CONFIG_SYMBOLIC_ERRNAME, "-22" without.
has_msg() {
	dmesg_since_mark | awk -v s=": amf: $1 (-EINVAL)" -v n=": amf: $1 (-22)" '
		function ends(x) { return substr($0, length($0) - length(x) + 1) == x }
		/device-mapper: table: [0-9]+:[0-9]+: amf: / && (ends(s) || ends(n)) { f = 1 }
		END { exit !f }'
}

# check_bad NAME MESSAGE TABLE [DEVICE]: the create (or reload of DEVICE) fails as documented.
# Prints the reasons it does not; returns non-zero then.
check_bad() {
	_msg=$2 _table=$3 _dev=${4:-}
	kmsg_mark
	if [ -z "$_dev" ]; then
		_out=$(dmsetup create bad --table "$_table" 2>&1)
	else
		_out=$(dmsetup reload "$_dev" --table "$_table" 2>&1)
	fi
	_rc=$?
	_ok=0
	if [ $_rc -eq 0 ]; then
		echo "the table was accepted"
		_ok=1
	fi
	if ! echo "$_out" | grep -q 'Invalid argument'; then
		echo "dmsetup did not report EINVAL: $_out"
		_ok=1
	fi
	if ! has_msg "$_msg"; then
		echo "no kernel log line ending in ': amf: $_msg (-EINVAL)'; the log says:"
		dmesg_since_mark | grep -v amf-test-mark | tail -5
		_ok=1
	fi
	return $_ok
}

k=0
while [ $k -lt "$NCASES" ]; do
	k=$((k + 1))
	line=$(echo "$CASES" | sed -n "${k}p")
	msg=${line%%|*}
	table=${line#*|}
	check_bad "$msg" "$msg" "$table" >"$KTAP_TMP/why" 2>&1
	rc=$?
	left=$(dmsetup ls 2>&1)
	if [ "$left" != "No devices found" ]; then
		echo "a device was left behind: $left" >>"$KTAP_TMP/why"
		rc=1
		dmsetup remove_all >/dev/null 2>&1
	fi
	ktap_diag "table: $table"
	ktap_diag_file "$KTAP_TMP/why"
	ktap_result "rejected with '$msg': $(echo "$table" | cut -d' ' -f4-)" $rc
done

# A bad reload of a live device changes nothing: no inactive table, same table, same data.
reload_test() {
	good="0 2048 amf raid0 1 128 2 /dev/vda 0 /dev/vdb 0"
	dm_create live "$good" || { echo "create failed: $DM_OUT"; return 1; }
	before=$(dmsetup table live)
	amf-iotool write --dev /dev/mapper/live --seed 31 --gen 1 || return 1
	_r=0
	check_bad "" "Chunk size must be a power of two" "0 2048 amf raid0 1 96 2 /dev/vda 0 /dev/vdb 0" live || _r=1
	[ "$(dmsetup table live)" = "$before" ] || { echo "table changed: $(dmsetup table live)"; _r=1; }
	dmsetup info live | grep -q 'Tables present: *LIVE$' || { echo "inactive table left:"; dmsetup info live; _r=1; }
	amf-iotool verify --dev /dev/mapper/live --seed 31 --gen 1 || _r=1
	dmsetup remove live || _r=1
	return $_r
}
ktap_check "bad reload of a live device changes nothing" reload_test

good_test() {
	dm_create good "0 4096 amf raid0 1 8 2 /dev/vdc 8 /dev/vdd 0" || { echo "create failed: $DM_OUT"; return 1; }
	amf-iotool write --dev /dev/mapper/good --seed 32 --gen 1 && amf-iotool verify --dev /dev/mapper/good --seed 32 --gen 1
	_r=$?
	dmsetup remove good || _r=1
	return $_r
}
ktap_check "a good table still works afterwards" good_test
ktap_check "no device left at the end" sh -c '[ "$(dmsetup ls 2>&1)" = "No devices found" ]'

ktap_done
