# SPDX-License-Identifier: GPL-2.0
# The optional programs of the initramfs (vm.sh --extra fio|cluster) start in the guest:
# their libraries were found and copied. Absent ones are skipped.
. /amf/lib/ktap.sh

ktap_plan 6

try() { # NAME CMD...: ok if CMD runs and prints something
	_p=$(command -v "$1" 2>/dev/null)
	if [ -z "$_p" ] || [ "${_p#/bin/}" != "$_p" ]; then
		ktap_skip "$1 runs" "not in this initramfs (vm.sh --extra)"
		return
	fi
	shift
	"$@" >"$KTAP_TMP/o" 2>&1
	_rc=$?
	head -3 "$KTAP_TMP/o" | sed 's/^/# /'
	if grep -q 'error while loading shared libraries\|not found' "$KTAP_TMP/o" || [ ! -s "$KTAP_TMP/o" ]; then
		ktap_fail "${_p##*/} runs" "exit $_rc"
	else
		ktap_ok "${_p##*/} runs"
	fi
}
try fio fio --version
try corosync corosync -v
try corosync-quorumtool corosync-quorumtool -h
try corosync-cfgtool corosync-cfgtool -h
try dlm_controld dlm_controld -V
try dlm_tool dlm_tool -h

ktap_done
