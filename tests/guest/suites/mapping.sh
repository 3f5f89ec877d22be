# SPDX-License-Identifier: GPL-2.0
# Byte-exact RAID0 mapping: data written through the device lands at exactly the member
# sectors the table-syntax document defines. amf-iotool computes the layout itself (no code
# shared with the module), fills every member area (and margins around it) with a
# background pattern, writes sequential multi-chunk, chunk/stripe-boundary and seeded random
# I/O through the device, reads it back, then compares every member sector.
# dm-striped (same layout) runs through the same checker as a control, and three
# deliberately wrong layouts must make the checker fail: the checker itself is proven.
. /amf/lib/ktap.sh

# chunk ndevs stripes offsets...
CONFIGS='8 1 64 0
8 3 40 0 8 2048
16 2 50 16 0
16 5 20 1 2 3 4 5
128 4 12 2048 2048 2048 2048
128 3 10 7 0 4096
1024 5 3 4096 0 1024 512 7
1024 2 4 0 2048'
NCONF=$(echo "$CONFIGS" | wc -l)
OPS=48
DISKS="vda vdb vdc vdd vde"

ktap_plan $((NCONF * 2 + 3 + 1))

if amf_load >"$KTAP_TMP/ld" 2>&1; then
	ktap_ok "load dm-amf"
	have_amf=1
else
	ktap_diag_file "$KTAP_TMP/ld"
	ktap_fail "load dm-amf"
	have_amf=0
fi

# run_map TARGETTYPE SEED CHUNK N LEN TOOLCHUNK "TOOLMEMBERS" "DEVICE PAIRS"
run_map() {
	_type=$1 _seed=$2 _chunk=$3 _n=$4 _len=$5 _tchunk=$6 _tmembers=$7 _pairs=$8
	if [ "$_type" = amf ]; then
		_table="0 $_len amf raid0 1 $_chunk $_n $_pairs"
	else
		_table="0 $_len striped $_n $_chunk $_pairs"
	fi
	echo "table: $_table"
	if ! dm_create map "$_table"; then
		echo "dmsetup create failed: $DM_OUT"
		dmesg | tail -5
		return 2
	fi
	_args=
	for m in $_tmembers; do _args="$_args --member $m"; done
	amf-iotool mapping --target /dev/mapper/map --chunk "$_tchunk" --len "$_len" --seed "$_seed" --ops $OPS $_args
	_rc=$?
	dmsetup remove map || _rc=2
	return $_rc
}

k=0
while [ $k -lt "$NCONF" ]; do
	k=$((k + 1))
	set -- $(echo "$CONFIGS" | sed -n "${k}p")
	chunk=$1 n=$2 stripes=$3
	shift 3
	offsets=$*
	len=$((chunk * n * stripes))
	pairs=
	members=
	i=0
	for off in $offsets; do
		i=$((i + 1))
		d=$(echo $DISKS | cut -d' ' -f$i)
		pairs="$pairs /dev/$d $off"
		members="$members /dev/$d:$off"
	done
	desc="chunk $chunk x$n offsets $(echo $offsets | tr ' ' ,) len $len"
	if [ $have_amf -eq 1 ]; then
		ktap_check "amf: $desc" run_map amf $((1000 + k)) "$chunk" "$n" "$len" "$chunk" "$members" "$pairs"
	else
		ktap_fail "amf: $desc" "dm-amf not loaded"
	fi
	ktap_check "striped (control): $desc" run_map striped $((1000 + k)) "$chunk" "$n" "$len" "$chunk" "$members" "$pairs"
done

# Negative controls: a striped device with chunk 16 over vda:0 vdb:8 vdc:2048; the checker,
# told a wrong layout, must find mismatches (exit 1, not 0 and not an error).
neg() {
	run_map striped 2000 16 3 1920 "$2" "$3" "/dev/vda 0 /dev/vdb 8 /dev/vdc 2048" >"$KTAP_TMP/neg" 2>&1
	_rc=$?
	grep -v MISMATCH "$KTAP_TMP/neg" | sed 's/^/# /'
	ktap_result "checker catches $1" $([ $_rc -eq 1 ] && echo 0 || echo 1) "checker exit $_rc, want 1"
}
neg "a wrong chunk size (told 32, device has 16)" 32 "/dev/vda:0 /dev/vdb:8 /dev/vdc:2048"
neg "a wrong member order" 16 "/dev/vdb:8 /dev/vdc:2048 /dev/vda:0"
neg "an offset one sector off" 16 "/dev/vda:0 /dev/vdb:8 /dev/vdc:2049"

ktap_done
