# SPDX-License-Identifier: GPL-2.0
# KTAP helpers for the guest test suites (busybox sh). Source it, then:
#
#   ktap_plan N                 print the header and the plan (call once, first)
#   ktap_ok NAME / ktap_fail NAME [why...] / ktap_skip NAME WHY
#   ktap_check NAME CMD...      run CMD (output kept as diagnostics), ok if it exits 0
#   ktap_diag TEXT...           a "# " diagnostic line; ktap_diag_file FILE prints a file so
#   ktap_done                   totals; exits 1 if any test failed or the plan was not met
#
#   kmsg_mark                   write a unique marker to the kernel log
#   dmesg_since_mark            the kernel log after the last marker
#   dm_create NAME TABLE        dmsetup create without udev; output in $DM_OUT
#   dm_refused MESSAGE TABLE    a device with TABLE is refused, the kernel log has MESSAGE
#   splat_scan FILE             lines of FILE that look like a kernel splat (status 1: none)
#
# Every test prints exactly one result line; a suite that dies early leaves its plan short,
# which the host counts as failures.

KTAP_N=0
KTAP_PLAN=0
KTAP_PASS=0
KTAP_FAIL=0
KTAP_SKIP=0
KTAP_MARK=
KTAP_TMP=${KTAP_TMP:-/tmp/ktap.$$}
mkdir -p "$KTAP_TMP"
export DM_DISABLE_UDEV=1

ktap_plan() {
	KTAP_PLAN=$1
	echo "KTAP version 1"
	echo "1..$1"
}

ktap_diag() { echo "# $*"; }
ktap_diag_file() { sed 's/^/# /' "$1"; }

ktap_ok() {
	KTAP_N=$((KTAP_N + 1))
	KTAP_PASS=$((KTAP_PASS + 1))
	echo "ok $KTAP_N $1"
}

ktap_fail() {
	KTAP_N=$((KTAP_N + 1))
	KTAP_FAIL=$((KTAP_FAIL + 1))
	_n=$1
	shift
	[ $# -gt 0 ] && echo "# $*"
	echo "not ok $KTAP_N $_n"
}

ktap_skip() {
	KTAP_N=$((KTAP_N + 1))
	KTAP_SKIP=$((KTAP_SKIP + 1))
	echo "ok $KTAP_N $1 # SKIP $2"
}

# ktap_check NAME CMD...: the command's output becomes diagnostics.
ktap_check() {
	_name=$1
	shift
	if "$@" >"$KTAP_TMP/out" 2>&1; then
		ktap_diag_file "$KTAP_TMP/out"
		ktap_ok "$_name"
	else
		_rc=$?
		ktap_diag_file "$KTAP_TMP/out"
		ktap_fail "$_name" "command failed (exit $_rc): $*"
	fi
}

# ktap_result NAME RC [why]: ok when RC is 0.
ktap_result() {
	if [ "$2" -eq 0 ]; then ktap_ok "$1"; else ktap_fail "$1" "${3:-}"; fi
}

ktap_done() {
	if [ "$KTAP_N" -ne "$KTAP_PLAN" ]; then
		echo "# plan was $KTAP_PLAN tests, ran $KTAP_N"
		KTAP_FAIL=$((KTAP_FAIL + 1))
	fi
	echo "# totals: pass:$KTAP_PASS fail:$KTAP_FAIL skip:$KTAP_SKIP"
	rm -rf "$KTAP_TMP"
	[ "$KTAP_FAIL" -eq 0 ]
	exit $?
}

KTAP_MARKS=0
kmsg_mark() {
	KTAP_MARKS=$((KTAP_MARKS + 1))
	KTAP_MARK="amf-test-mark $$.$KTAP_MARKS"
	echo "$KTAP_MARK" >/dev/kmsg
}

dmesg_since_mark() {
	dmesg | awk -v m="$KTAP_MARK" 'found { print } index($0, m) { found = 1 }'
}

# Kernel splats. Case-sensitive on purpose: boot prints "MAX_LOCKDEP_KEYS" etc.
SPLAT_RE='WARNING:|BUG:|lockdep|possible recursive locking|possible circular locking|INFO:|new suspected memory leaks|Call Trace|general protection|UBSAN|Oops|Kernel panic|list_add corruption|list_del corruption'

# Known harmless lines that match: boot banners of the debug options.
SPLAT_OK_RE='RCU lockdep checking is enabled'

# splat_scan FILE: "<line number>:<line>" of every splat line; status 0 if there is one.
splat_scan() { grep -n -E "$SPLAT_RE" "$1" | grep -v -E "$SPLAT_OK_RE"; }

DM_OUT=
dm_create() {
	DM_OUT=$(dmsetup create "$1" --table "$2" 2>&1)
	_rc=$?
	[ $_rc -eq 0 ] && dmsetup mknodes "$1" >/dev/null 2>&1
	return $_rc
}

# dm_refused MESSAGE TABLE: `dmsetup create` with TABLE fails (a device it did create is
# removed), and the kernel log since then has "amf: MESSAGE (-EINVAL)" (or "(-22)").
dm_refused() {
	kmsg_mark
	if dmsetup create bad --table "$2" >/dev/null 2>&1; then
		dmsetup remove bad
		echo "accepted"
		return 1
	fi
	dmesg_since_mark | grep -E ": amf: $1 \((-EINVAL|-22)\)"
}

dm_remove_all() { dmsetup remove_all >/dev/null 2>&1; }

# Device helpers
dev_sectors() { cat "/sys/class/block/${1#/dev/}/size"; }
dev_majmin() { cat "/sys/class/block/${1#/dev/}/dev"; }

# The dm-amf module: load it unless loaded (dm_amf.ko built out of tree).
AMF_KO=${AMF_KO:-/lib/modules/dm-amf.ko}
amf_loaded() { grep -q '^dm_amf ' /proc/modules; }
amf_load() {
	amf_loaded && return 0
	[ -f "$AMF_KO" ] || { echo "# no module at $AMF_KO"; return 1; }
	insmod "$AMF_KO"
}
