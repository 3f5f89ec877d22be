# SPDX-License-Identifier: GPL-2.0
# dm-amf loads and unloads cleanly, twice; it cannot be unloaded while a device uses it.
# Each step's kernel log is checked right away (the init checks the whole suite again).
. /amf/lib/ktap.sh

ktap_plan 18

if [ ! -f "$AMF_KO" ]; then
	ktap_fail "module file present" "no $AMF_KO in the initramfs (make module, then vm.sh --module)"
	ktap_done
fi
ktap_ok "module file present"
ktap_check "module declares license GPL" sh -c "strings '$AMF_KO' | grep -x 'license=GPL'"
if amf_loaded; then rmmod dm_amf; fi

log_clean() {
	if dmesg_since_mark >"$KTAP_TMP/log" && splat_scan "$KTAP_TMP/log" >/dev/null; then
		ktap_diag_file "$KTAP_TMP/log"
		ktap_fail "$1"
	else
		ktap_ok "$1"
	fi
}

parity_selftest_logged() {
	dmesg_since_mark | grep "dm-amf: parity self-test passed: .* agree on [1-9][0-9]* cases"
}

for round in 1 2; do
	kmsg_mark
	ktap_check "insmod (round $round)" insmod "$AMF_KO"
	ktap_check "target amf registered (round $round)" sh -c 'dmsetup targets | grep "^amf "'
	# Load refuses to go on unless the kernel's xor/raid6 and the core's parity agree.
	ktap_check "parity self-test passed (round $round)" parity_selftest_logged
	ktap_check "rmmod (round $round)" rmmod dm_amf
	ktap_check "module and target gone (round $round)" sh -c \
		'! grep "^dm_amf " /proc/modules && ! dmsetup targets | grep "^amf "'
	log_clean "kernel log clean (round $round)"
done

# In use: the device holds a reference; rmmod must refuse, then work once it is removed.
kmsg_mark
insmod "$AMF_KO"
if dm_create ldtest "0 1024 amf raid0 1 128 1 /dev/vda 0"; then
	ktap_ok "create a 1-member amf device"
else
	ktap_fail "create a 1-member amf device" "$DM_OUT"
fi
if ! dmsetup info ldtest >/dev/null 2>&1; then
	ktap_skip "rmmod refused while a device uses the target" "no device"
elif rmmod dm_amf >"$KTAP_TMP/rm" 2>&1; then
	ktap_fail "rmmod refused while a device uses the target" "rmmod succeeded"
	insmod "$AMF_KO"
else
	ktap_diag_file "$KTAP_TMP/rm"
	ktap_ok "rmmod refused while a device uses the target"
fi
dmsetup remove ldtest 2>/dev/null
ktap_check "rmmod after the device is removed" rmmod dm_amf
log_clean "kernel log clean (in use)"

ktap_done
