# SPDX-License-Identifier: GPL-2.0
# `amfctl monitor` (Documentation/admin-guide.rst, "Monitoring") on a live raid5 x4 whose
# members are dm-linear devices m0..m3 over vda..vdd (lib/raid.sh):
#
#   - `amfctl monitor --json --program /tmp/mon-prog.sh --test` runs in the background,
#     waiting in DM_DEV_WAIT; its TestMessage says it has read the volume;
#   - member 1 fails (its table swapped to the error target, then a read hits it): a `Fail`
#     line naming /dev/mapper/m1 with a higher event number, and the program called with
#     `Fail mon5 /dev/mapper/m1` and AMF_MEMBER=1; `--oneshot` reports DegradedArray and
#     `amfctl status` names the member's device;
#   - m1 moved to vde behind dm-delay (a rebuild of a few seconds) and rebuilt by message:
#     `amfctl status` shows its speed (the kernel's, or sampled from a module without it)
#     and the time left, and RebuildStarted and RebuildFinished come out, as lines and as
#     program calls;
#   - `dmsetup remove` of the volume is not held up by the waiting monitor, which reports
#     DeviceDisappeared and nothing on stderr.
#
# Needs 5 disks of at least 8 MiB (vda..vde); about 20 s.
# shellcheck disable=SC1091 # the guest's path
. /amf/lib/ktap.sh
# shellcheck source-path=SCRIPTDIR source=../lib/raid.sh
. /amf/lib/raid.sh

ktap_plan 17
amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"

M_OUT=$KTAP_TMP/mon.out M_ERR=$KTAP_TMP/mon.err M_LOG=$KTAP_TMP/prog.log M_PID=''
M_PROG=/tmp/mon-prog.sh
cat >"$M_PROG" <<EOF
#!/bin/sh
echo "\$* member=\${AMF_MEMBER-} health=\${AMF_HEALTH-}" >>"$M_LOG"
EOF
chmod 755 "$M_PROG"

# m_wait FILE PATTERN...: a line of FILE matches every PATTERN (grep -F) within 20 s; that
# line in M_LINE.
m_wait() {
	m_f=$1
	shift
	m_t=0
	while [ $m_t -lt 100 ]; do
		M_LINE=$(
			m_l=$(cat "$m_f")
			for m_p in "$@"; do m_l=$(echo "$m_l" | grep -F -- "$m_p"); done
			echo "$m_l" | head -1
		)
		[ -n "$M_LINE" ] && { echo "$M_LINE"; return 0; }
		usleep 200000
		m_t=$((m_t + 1))
	done
	echo "no line with: $* after 20 s in $m_f:"
	cat "$m_f"
	[ -s "$M_ERR" ] && { echo "monitor stderr:"; cat "$M_ERR"; }
	return 1
}

# m_nr: the event number of the JSON line M_LINE.
m_nr() { echo "$M_LINE" | sed -n 's/.*"event_nr":\([0-9]*\).*/\1/p'; }

m_start() {
	amfctl monitor --json --program "$M_PROG" --interval 1 --test >"$M_OUT" 2>"$M_ERR" &
	M_PID=$!
	m_wait "$M_OUT" '"event":"TestMessage"' '"volume":"mon5"' || return 1
	M_NR0=$(m_nr)
	[ -n "$M_NR0" ] || { echo "no event number in the line"; return 1; }
}

m_fail() {
	p_swap 1 "0 $(blockdev --getsz /dev/mapper/m1) error" || return 1
	# A read that reaches member 1 marks it failed.
	dd if="$P_DEV" of=/dev/null bs=64k iflag=direct status=none
	p_health ADAA
}

m_failed_line() {
	m_wait "$M_OUT" '"event":"Fail"' '"device":"/dev/mapper/m1"' '"member":1' \
		'"volume":"mon5"' || return 1
	m_n=$(m_nr)
	echo "event number $M_NR0 -> $m_n"
	[ -n "$m_n" ] && [ "$m_n" -gt "$M_NR0" ]
}

m_oneshot() {
	m_o=$(amfctl monitor --oneshot mon5 2>&1)
	echo "$m_o"
	echo "$m_o" | grep -q " DegradedArray mon5: health ADAA, degraded: failed member 1 /dev/mapper/m1 ($(p_majmin 1))$"
}

m_status_names() {
	m_o=$(amfctl status mon5 2>&1)
	echo "$m_o"
	echo "$m_o" | grep -qx "  member 1:   /dev/mapper/m1 ($(p_majmin 1)), failed" &&
		echo "$m_o" | grep -qx "  member 0:   /dev/mapper/m0 ($(p_majmin 0)), in sync"
}

# m_rebuild: m1 over vde behind dm-delay (80 ms an I/O), `rebuild 1`, `amfctl status`
# while it runs (the speed), then until the status is AAAA idle.
m_rebuild() {
	p_swap 1 "0 $(dev_sectors vde) delay /dev/vde 0 80" || return 1
	dmsetup message "$P_NAME" 0 rebuild 1 || { echo "message rebuild 1 refused"; return 1; }
	# The kernel's speed covers its last half second (0 just after the start).
	sleep 1
	M_ST=$(amfctl status mon5 --sample 0.5 2>&1)
	echo "$M_ST"
	m_w=0
	while [ $m_w -lt 120 ]; do
		case $(dmsetup status "$P_NAME") in *" AAAA $P_LEN/$P_LEN idle 0") return 0 ;; esac
		sleep 1
		m_w=$((m_w + 1))
	done
	echo "no end of the rebuild after 120 s: $(dmsetup status "$P_NAME")"
	return 1
}

m_speed() {
	echo "$M_ST"
	echo "$M_ST" | grep -qx "  member 1:   /dev/mapper/m1 ($(p_majmin 1)), being rebuilt" &&
		echo "$M_ST" | grep -Eq "^  speed:      .*/s, about [0-9:]+ left \((the kernel's, over its last half second|sampled over [0-9]+\.[0-9] s: this kernel reports no speed)\)$"
}

m_program() {
	echo "program calls:"
	cat "$M_LOG"
	for m_want in "TestMessage mon5 member= health=AAAA" "$@"; do
		grep -qxF "$m_want" "$M_LOG" || { echo "missing: $m_want"; return 1; }
	done
}

m_remove() {
	timeout 10 dmsetup remove "$P_NAME" || { echo "dmsetup remove $P_NAME failed or hung"; return 1; }
	m_wait "$M_OUT" '"event":"DeviceDisappeared"' '"volume":"mon5"'
}

m_stop() {
	kill "$M_PID" 2>/dev/null
	wait "$M_PID" 2>/dev/null
	echo "monitor output:"
	cat "$M_OUT"
	[ ! -s "$M_ERR" ] || { echo "monitor stderr:"; cat "$M_ERR"; return 1; }
}

p_setup mon5 raid5 64 12288 901 mapper/m0:0 mapper/m1:0 mapper/m2:0 mapper/m3:0
ktap_check "members m0..m3, dm-linear over vda..vdd" p_members vda vdb vdc vdd
ktap_check "raid5 x4 mon5 created, reads as zeroes" p_create
# shellcheck disable=SC2016 # expanded by that sh
ktap_check "amfctl monitor --oneshot of a healthy volume reports nothing" \
	sh -c '[ -z "$(amfctl monitor --oneshot mon5 2>&1)" ]'
ktap_check "amfctl monitor in the background: TestMessage with an event number" m_start
ktap_check "member 1 fails (error target under m1, then a read): status ADAA" m_fail
ktap_check "monitor: Fail of member 1 /dev/mapper/m1, higher event number" m_failed_line
ktap_check "monitor --oneshot: DegradedArray naming /dev/mapper/m1" m_oneshot
ktap_check "amfctl status names the members' devices" m_status_names
ktap_check "m1 over vde behind dm-delay, 'dmsetup message rebuild 1', rebuilt" m_rebuild
ktap_check "amfctl status during the rebuild: member 1 being rebuilt, speed and time left" m_speed
ktap_check "monitor: RebuildStarted of member 1 /dev/mapper/m1" \
	m_wait "$M_OUT" '"event":"RebuildStarted"' '"device":"/dev/mapper/m1"' '"member":1'
ktap_check "monitor: RebuildFinished of member 1 /dev/mapper/m1, status AAAA" \
	m_wait "$M_OUT" '"event":"RebuildFinished"' '"device":"/dev/mapper/m1"' '"health":"AAAA"'
ktap_check "program called per event: <event> <volume> [<member device>], AMF_* variables" \
	m_program "Fail mon5 /dev/mapper/m1 member=1 health=ADAA" \
	"RebuildStarted mon5 /dev/mapper/m1 member=1 health=AaAA" \
	"RebuildFinished mon5 /dev/mapper/m1 member=1 health=AAAA"
ktap_check "dmsetup remove not held up by the waiting monitor; DeviceDisappeared" m_remove
ktap_check "monitor stopped, nothing on its stderr" m_stop
ktap_check "members removed" p_teardown
rm -f "$M_PROG"
ktap_done
