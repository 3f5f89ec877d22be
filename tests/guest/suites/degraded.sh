# SPDX-License-Identifier: GPL-2.0
# Degraded raid5/raid6: members that fail at runtime. The members are dm-linear devices
# (m0, m1...) over the virtio disks, so that one can be failed under a live volume by
# swapping its table to dm-error (dm-flakey, always down, if the guest kernel has no error
# target). The kernel must mark a member that returns an I/O error failed (`D` in the
# status, one "member <i> (<maj:min>) failed" line in the kernel log), serve its data from
# the others (P, or P and Q), keep accepting writes without it, and fail I/O with EIO, not
# hang, once more members have failed than the level tolerates. Every check of data compares
# the whole volume (O_DIRECT) with a reference file in tmpfs (helpers: lib/raid.sh).
#
#   raid5 x4: fail member 1 with no write since the fill, read everything, degraded random
#             writes, fail member 3: reads and writes of the lost chunks fail with EIO
#   raid6 x5: fail member 1, then 3 (reads rebuilt from P and Q), degraded writes after each,
#             fail member 0: reads and writes of the lost chunks fail with EIO
#   raid6 x5: scrub after the fill, then fail members 1 and 3 at once: rebuilt from P and Q
#   raid5 x4: fail member 0 and write straight away (the first write to reach it marks it)
# Each failure and each rebuild raises a device-mapper event (`dmsetup wait`, the event
# number of `dmsetup info`), checked in the raid6 double scenario.
#
# Needs 6 disks of 32 MiB (vda..vdf; vdf is kept for the rebuild checks, see d_rebuild).
# shellcheck disable=SC1091 # the guest's path
. /amf/lib/ktap.sh
# shellcheck source-path=SCRIPTDIR source=../lib/raid.sh
. /amf/lib/raid.sh

N_R5=17
N_R6=23
N_R6D=14
N_R5W=12
ktap_plan $((2 + N_R5 + N_R6 + N_R6D + N_R5W + 1))

D_WRITES=100 # random writes each time the volume runs degraded
D_HANG=60    # seconds an I/O that must fail may take before it counts as hung

amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"

# How a member is failed: the error target (part of dm core), else dm-flakey with an up
# interval of 0 (every I/O fails), else nothing and the checks that need it are skipped.
D_FAILTGT='' D_WHY=''
d_targets=$(dmsetup targets 2>&1)
if echo "$d_targets" | grep -q '^error '; then
	D_FAILTGT=error
elif echo "$d_targets" | grep -q '^flakey '; then
	D_FAILTGT=flakey
else
	D_WHY="neither the error nor the flakey target in this kernel (dmsetup targets)"
fi
if [ -n "$D_FAILTGT" ]; then
	ktap_ok "a member can be failed under the volume: dm target '$D_FAILTGT'"
else
	echo "$d_targets" | sed 's/^/# /'
	ktap_skip "a member can be failed under the volume" "$D_WHY"
fi

# d_check NAME CMD...: ktap_check, or skipped when members cannot be failed.
d_check() {
	if [ -n "$D_FAILTGT" ]; then ktap_check "$@"; else ktap_skip "$1" "$D_WHY"; fi
}

# d_fail I: member I's device (mI) starts failing every I/O: its table swapped to the error
# target (or always-down flakey over the same disk) with the volume live on it.
d_fail() {
	d_sz=$(blockdev --getsz "/dev/mapper/m$1") || return 1
	case $D_FAILTGT in
	error) d_tab="0 $d_sz error" ;;
	*) d_tab="0 $d_sz flakey $(dmsetup table "m$1" | awk '{ print $4 }') 0 0 1" ;;
	esac
	p_swap "$1" "$d_tab" || return 1
	D_FAILED="$D_FAILED $1"
}

d_fail_all() { for d_a in "$@"; do d_fail "$d_a" || return 1; done; }

# d_logged I...: since the scenario began the kernel log says exactly once of each member
# I that it failed, and of no other member (p_logged).
d_logged() { p_logged 'dm_amf: member' "$@"; }

# d_chunk_on I [P]: d_sec = the first sector of a data chunk on member I (whose stripe has
# P on member P, if given), searched from a random chunk on.
d_chunk_on() {
	p_rand $((P_LEN / P_CHUNK))
	d_c=$p_r d_k=0
	while [ $d_k -lt $((P_LEN / P_CHUNK)) ]; do
		p_map $((d_c * P_CHUNK))
		if [ "$p_mm" -eq "$1" ] && [ "$p_mp" -eq "${2:-$p_mp}" ]; then
			d_sec=$((d_c * P_CHUNK))
			return 0
		fi
		d_c=$(((d_c + 1) % (P_LEN / P_CHUNK))) d_k=$((d_k + 1))
	done
	echo "no data chunk on member $1${2:+ with P on member $2}"
	return 1
}

# d_roles: after p_map, d_r = what each failed member holds in that stripe ("m1=D m3=P").
d_roles() {
	d_r=''
	for d_f in $D_FAILED; do
		if [ "$d_f" -eq "$p_mp" ]; then
			d_x=P
		elif [ "$P_PAR" -eq 2 ] && [ "$d_f" -eq $(((p_mp + 1) % P_N)) ]; then
			d_x=Q
		else
			d_x=D
		fi
		d_r="$d_r m$d_f=$d_x"
	done
	d_r=${d_r# }
}

# d_diff_classes (p_compare's P_DIFF): the first differing chunks, then every chunk classed
# by whether it is on a failed member and by what the failed members hold in its stripe,
# with how many of each class differ from the reference.
d_diff_classes() {
	d_nc=$((P_LEN / P_CHUNK)) d_cb=$((P_CHUNK * 512)) d_c=0 d_n=0
	while [ $d_c -lt $d_nc ]; do
		p_map $((d_c * P_CHUNK))
		d_roles
		case " $D_FAILED " in *" $p_mm "*) d_on=failed ;; *) d_on=live ;; esac
		if cmp -s -n $d_cb "$P_TMP/ref" "$P_TMP/p_dev" $((d_c * d_cb)) $((d_c * d_cb)); then
			d_s=same
		else
			d_s=differs d_n=$((d_n + 1))
			[ $d_n -le 8 ] && echo "differs: $(p_where $((d_c * P_CHUNK)))" >&2
		fi
		echo "$d_s chunk on a $d_on member; failed members in its stripe: $d_r"
		d_c=$((d_c + 1))
	done 2>&1 | awk '/^differs:/ { print; next }
		{ k = substr($0, index($0, " ") + 1); n[k]++; a++; if ($1 == "differs") { d[k]++; b++ } }
		END {
			printf "%d of %d chunks differ\n", b, a
			for (k in n) printf "%d of %d differ: %s\n", d[k], n[k], k | "sort -t: -k2"
		}'
}
P_DIFF=d_diff_classes

# d_write_where OFF LEN: each chunk a write touches: stripe, member, whole or part, and
# what the failed members hold in that stripe.
d_write_where() {
	d_c=$(($1 / P_CHUNK))
	while [ $((d_c * P_CHUNK)) -lt $(($1 + $2)) ]; do
		p_map $((d_c * P_CHUNK))
		d_roles
		d_x=whole
		[ $((d_c * P_CHUNK)) -ge "$1" ] && [ $(((d_c + 1) * P_CHUNK)) -le $(($1 + $2)) ] || d_x=part
		echo "  chunk $d_c ($d_x) on member $p_mm, stripe $p_mst; failed members in it: $d_r"
		d_c=$((d_c + 1))
	done
}

# d_write_classes: every stripe the writes of p_random touched (p_writes), classed by whether
# the write failed (d_rand), covered the whole stripe, and what the failed members hold in it.
d_write_classes() {
	d_bad=" $(sed -n 's/^write \([0-9]*\) (kind.*failed$/\1/p' "$P_TMP/d_rand" | tr '\n' ' ')"
	while read -r d_n _ d_o d_l; do
		case $d_bad in *" $d_n "*) d_ok=failed ;; *) d_ok=ok ;; esac
		d_st=$((d_o / P_S))
		while [ $((d_st * P_S)) -lt $((d_o + d_l)) ]; do
			p_map $((d_st * P_S))
			d_roles
			d_x=whole
			[ $((d_st * P_S)) -ge "$d_o" ] && [ $(((d_st + 1) * P_S)) -le $((d_o + d_l)) ] || d_x=part
			echo "$d_ok write, $d_x stripe; failed members in it: $d_r"
			d_st=$((d_st + 1))
		done
	done <"$P_TMP/p_writes" | sort | uniq -c | sed 's/^ */stripes: /'
}

# d_random N: p_random N; when writes fail, where each failed one went and the classes of
# the stripes written (when the device differs afterwards, p_compare prints d_diff_classes).
d_random() {
	: >"$P_TMP/p_writes"
	p_random "$1" >"$P_TMP/d_rand" 2>&1 && { cat "$P_TMP/d_rand"; return 0; }
	cat "$P_TMP/d_rand"
	if grep -q '^write [0-9]* (kind' "$P_TMP/d_rand"; then
		sed -n 's/^write [0-9]* (kind [0-9], \([0-9]*\) sectors at \([0-9]*\)) failed$/\2 \1/p' \
			"$P_TMP/d_rand" | while read -r d_o d_l; do
			echo "failed write of $d_l sectors at $d_o:"
			d_write_where "$d_o" "$d_l"
		done
		d_write_classes
	fi
	return 1
}

# d_alive PID: the process exists and is not a zombie.
d_alive() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# d_io_fails read|write I [P]: an O_DIRECT read (or write of random data) of one whole data
# chunk on member I (in a stripe with P on member P) fails with EIO within D_HANG seconds.
# A dd still running then is reported with its state and kernel stack and killed.
d_io_fails() {
	d_chunk_on "$2" ${3:+"$3"} || return 1
	d_cb=$((P_CHUNK * 512))
	d_roles
	echo "$1 of $(p_where "$d_sec"); failed members in the stripe: $d_r"
	if [ "$1" = read ]; then
		dd if="$P_DEV" of=/dev/null bs=$d_cb count=1 skip=$((d_sec * 512)) \
			iflag=skip_bytes,direct status=none 2>"$P_TMP/d_err" &
	else
		dd if=/dev/urandom of="$P_DEV" bs=$d_cb count=1 seek=$((d_sec * 512)) \
			iflag=fullblock oflag=seek_bytes,direct conv=notrunc status=none 2>"$P_TMP/d_err" &
	fi
	d_pid=$! d_w=0
	while d_alive $d_pid && [ $d_w -lt $((D_HANG * 10)) ]; do
		usleep 100000
		d_w=$((d_w + 1))
	done
	if d_alive $d_pid; then
		echo "dd still running after $D_HANG s: $(grep '^State' "/proc/$d_pid/status")"
		sed 's/^/  /' "/proc/$d_pid/stack" 2>/dev/null
		kill -9 $d_pid
		return 1
	fi
	wait $d_pid
	d_rc=$?
	cat "$P_TMP/d_err"
	echo "dd exit $d_rc after about $((d_w / 10)) s"
	[ $d_rc -ne 0 ] || { echo "the $1 succeeded"; return 1; }
	grep -q 'Input/output error' "$P_TMP/d_err" || { echo "the error is not EIO"; return 1; }
}

d_fill() { p_fill && p_compare; }

# d_teardown: the volume and every member removed (also after a failed check).
d_teardown() { p_teardown d_err d_rand; }

# d_rebuild I DISK: mI becomes a linear device over DISK (same maj:min, so the volume's
# table still names it), the volume is reloaded with `rebuild I`, and the rebuild runs to
# the end: status `recover` then `idle` with every member A.
d_rebuild() {
	d_remap "$1" "$2" || { echo "m$1 over $2 failed"; return 1; }
	d_rt=$(echo "$P_TABLE" | sed "s/ amf $P_LEVEL 1 $P_CHUNK / amf $P_LEVEL 3 $P_CHUNK rebuild $1 /")
	echo "reload: $d_rt"
	if ! dmsetup load "$P_NAME" --table "$d_rt" || ! dmsetup suspend "$P_NAME" ||
		! dmsetup resume "$P_NAME"; then
		echo "reload with rebuild $1 failed"
		return 1
	fi
	d_all=$(printf "%${P_N}s" '' | tr ' ' A) d_w=0
	while [ $d_w -lt 600 ]; do
		d_st=$(dmsetup status "$P_NAME")
		case $d_st in *" $d_all $P_LEN/$P_LEN idle 0") echo "$d_st"; return 0 ;; esac
		sleep 1
		d_w=$((d_w + 1))
	done
	echo "no end of the rebuild after 600 s: $d_st"
	return 1
}

# d_remap I DISK: member mI becomes a linear device over DISK (same maj:min).
d_remap() {
	dmsetup suspend "m$1" &&
		dmsetup load "m$1" --table "0 $(dev_sectors "$2") linear /dev/$2 0" &&
		dmsetup resume "m$1"
}

# d_rebuild_msg I DISK: mI moves to DISK (stale data on it) and the live volume is told
# `dmsetup message <vol> 0 rebuild I`; waits until the status shows no member `a` and
# `idle` again, after having seen `recover` or the end.
d_rebuild_msg() {
	d_remap "$1" "$2" || { echo "m$1 over $2 failed"; return 1; }
	dmsetup message "$P_NAME" 0 rebuild "$1" || { echo "message rebuild $1 refused"; return 1; }
	d_w=0
	while [ $d_w -lt 600 ]; do
		d_st=$(dmsetup status "$P_NAME")
		case $d_st in
		*a*" recover 0") ;;
		*" $P_LEN/$P_LEN idle 0") echo "$d_st"; return 0 ;;
		esac
		sleep 1
		d_w=$((d_w + 1))
	done
	echo "no end of the rebuild after 600 s: $d_st"
	return 1
}

# d_event_nr: the volume's device-mapper event number (`dmsetup info`).
d_event_nr() { dmsetup info "$P_NAME" | sed -n 's/^Event number: *//p'; }

# d_event_after N WHAT: the volume raised a device-mapper event since its event number was
# N (what `dmsetup wait <vol> N` waits for, and dmeventd listens to): the number is above N
# and `dmsetup wait` returns at once.
d_event_after() {
	d_en=$(d_event_nr)
	echo "event number $1 -> $d_en ($2)"
	[ -n "$d_en" ] && [ "$d_en" -gt "$1" ] || return 1
	timeout 10 dmsetup wait "$P_NAME" "$1" >/dev/null || { echo "dmsetup wait $1 did not return"; return 1; }
}

# d_begin TITLE "DISK..." NAME LEVEL CHUNK LEN SEED DEV:OFFSET...: a scenario's first two
# checks: members m0.. over the disks (p_members), then the volume (p_setup) zeroed, created
# and read as zeroes; its table as a diagnostic in between.
d_begin() {
	d_t=$1 D_FAILED='' d_disks=$2
	shift 2
	kmsg_mark
	p_setup "$@"
	# shellcheck disable=SC2086 # a word list
	ktap_check "$d_t: members m0..m$((P_N - 1)), dm-linear over ${d_disks%% *}..${d_disks##* }" \
		p_members $d_disks
	ktap_diag "$d_t: $P_TABLE"
	ktap_check "$d_t: members zeroed, created, reads as zeroes" p_create
}

# ------------------------------------------------------------------ raid5 x4 (N_R5 checks)
d_begin "raid5 x4" "vda vdb vdc vdd" d5 raid5 64 12288 801 mapper/m0:0 mapper/m1:2048 mapper/m2:8 mapper/m3:64
ktap_check "$d_t: status AAAA" p_health AAAA
ktap_check "$d_t: filled with random data = reference" d_fill
d_check "$d_t: member 1 fails ($D_FAILTGT under m1), no write since the fill" d_fail 1
d_check "$d_t: whole volume = reference (member 1's chunks rebuilt from the others)" p_compare
d_check "$d_t: status health ADAA" p_health ADAA
d_check "$d_t: kernel log: member 1 failed, exactly once" d_logged 1
d_check "$d_t: $D_WRITES degraded random writes, whole volume = reference" d_random $D_WRITES
d_check "$d_t: member 3 fails too ($D_FAILTGT under m3)" d_fail 3
d_check "$d_t: read of a data chunk on member 3 fails with EIO, no hang" d_io_fails read 3
d_check "$d_t: read of a data chunk on member 1 fails with EIO, no hang" d_io_fails read 1
d_check "$d_t: write of a data chunk on member 3, P on live member 0, fails with EIO, no hang" \
	d_io_fails write 3 0
d_check "$d_t: write of a data chunk on member 3, P on failed member 1, fails with EIO, no hang" \
	d_io_fails write 3 1
d_check "$d_t: status health ADAD" p_health ADAD
d_check "$d_t: kernel log: members 1 and 3 failed, once each" d_logged 1 3
ktap_check "$d_t: volume and members removed" d_teardown

# ------------------------------------------------------------------ raid6 x5 (N_R6 checks)
d_begin "raid6 x5" "vda vdb vdc vdd vde" d6 raid6 64 12288 802 mapper/m0:16 mapper/m1:0 mapper/m2:4096 mapper/m3:8 mapper/m4:0
ktap_check "$d_t: status AAAAA" p_health AAAAA
ktap_check "$d_t: filled with random data = reference" d_fill
d_check "$d_t: member 1 fails ($D_FAILTGT under m1), no write since the fill" d_fail 1
d_check "$d_t: whole volume = reference (member 1's chunks rebuilt)" p_compare
d_check "$d_t: status health ADAAA" p_health ADAAA
d_check "$d_t: kernel log: member 1 failed, exactly once" d_logged 1
d_check "$d_t: $D_WRITES random writes, one member failed, whole volume = reference" d_random $D_WRITES
d_check "$d_t: member 3 fails too ($D_FAILTGT under m3)" d_fail 3
d_check "$d_t: whole volume = reference (members 1 and 3 rebuilt from P and Q)" p_compare
d_check "$d_t: status health ADADA" p_health ADADA
d_check "$d_t: kernel log: members 1 and 3 failed, once each" d_logged 1 3
d_check "$d_t: $D_WRITES random writes, two members failed, whole volume = reference" d_random $D_WRITES
d_check "$d_t: status health still ADADA" p_health ADADA
d_check "$d_t: member 0 fails as well, a third ($D_FAILTGT under m0)" d_fail 0
d_check "$d_t: read of a data chunk on member 0 fails with EIO, no hang" d_io_fails read 0
d_check "$d_t: read of a data chunk on member 1 fails with EIO, no hang" d_io_fails read 1
d_check "$d_t: read of a data chunk on member 3 fails with EIO, no hang" d_io_fails read 3
d_check "$d_t: write of a data chunk on member 0 fails with EIO, no hang" d_io_fails write 0
d_check "$d_t: status health DDADA" p_health DDADA
d_check "$d_t: kernel log: members 0, 1 and 3 failed, once each" d_logged 0 1 3
ktap_check "$d_t: volume and members removed" d_teardown

# ------------------------------------------------------------------ raid6 x5, two at once (N_R6D checks)
# Reconstruction from P and Q alone: parity verified on the members (scrub) after the fill,
# then two members fail with no write in between.
d_begin "raid6 x5 double" "vda vdb vdc vdd vde" d6d raid6 64 12288 804 mapper/m0:0 mapper/m1:8 mapper/m2:0 mapper/m3:2048 mapper/m4:64
ktap_check "$d_t: filled with random data = reference" d_fill
ktap_check "$d_t: scrub clean after the fill (P and Q right on the members)" p_scrub_live
D_EV=$(d_event_nr)
d_check "$d_t: members 1 and 3 fail ($D_FAILTGT under m1, m3), no write since the fill" \
	d_fail_all 1 3
d_check "$d_t: whole volume = reference (members 1 and 3 rebuilt from P and Q)" p_compare
d_check "$d_t: status health ADADA" p_health ADADA
d_check "$d_t: kernel log: members 1 and 3 failed, once each" d_logged 1 3
d_check "$d_t: a device-mapper event for the failures (dmsetup wait returns)" \
	d_event_after "$D_EV" "members failed"
D_EV=$(d_event_nr)
d_check "$d_t: member 3 moved to a disk with stale data (vdf), 'dmsetup message rebuild 3'" \
	d_rebuild_msg 3 vdf
d_check "$d_t: a device-mapper event for the rebuild (dmsetup wait returns)" \
	d_event_after "$D_EV" "rebuild started and ended"
d_check "$d_t: status health ADAAA after the rebuild" p_health ADAAA
d_check "$d_t: whole volume = reference after the rebuild (member 1 still failed)" p_compare
ktap_check "$d_t: volume and members removed" d_teardown

# ------------------------------------------------------------------ raid5, failing while written (N_R5W checks)
d_begin "raid5 x4 written" "vdb vdc vdd vde" d5w raid5 64 12288 803 mapper/m0:8 mapper/m1:0 mapper/m2:64 mapper/m3:2048
ktap_check "$d_t: filled with random data = reference" d_fill
d_check "$d_t: member 0 fails ($D_FAILTGT under m0)" d_fail 0
d_check "$d_t: $D_WRITES random writes straight away (the first to reach member 0 marks it), = reference" \
	d_random $D_WRITES
d_check "$d_t: status health DAAA" p_health DAAA
d_check "$d_t: kernel log: member 0 failed, exactly once" d_logged 0
d_check "$d_t: member 0 replaced by a fresh disk (vdf), reload with rebuild 0, rebuilt" \
	d_rebuild 0 vdf
d_check "$d_t: status health AAAA after the rebuild" p_health AAAA
d_check "$d_t: scrub clean after the rebuild" p_scrub_live
d_check "$d_t: whole volume = reference after the rebuild" p_compare
ktap_check "$d_t: volume and members removed" d_teardown

# shellcheck disable=SC2016 # expanded by that sh
ktap_check "no device left behind" sh -c '[ "$(dmsetup ls 2>&1)" = "No devices found" ]'

ktap_done
