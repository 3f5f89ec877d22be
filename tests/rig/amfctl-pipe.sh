#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A closed pipe is not an error (issue 21): `amfctl status | head -1` (text and --json) with
# pipefail exits 0 and amfctl prints nothing on standard error. The status comes from a file
# of 20000 volumes (1.3 MB, far more than a pipe holds), so amfctl is still writing when head
# exits. Before the fix amfctl said "amfctl: Broken pipe (os error 32)" and exited 1.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
cargo build -q -p amfctl || exit 1
amfctl=$repo/target/debug/amfctl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seq 20000 | sed 's|.*|vol&: 0 2097152 amf raid0 4 AAAA 2097152/2097152 idle 0|' >"$tmp/status"
rc=0
for opt in "" --json; do
	# shellcheck disable=SC2086 # opt is empty or one word
	first=$("$amfctl" status $opt --from-file "$tmp/status" 2>"$tmp/err" | head -1)
	st=$?
	echo "amfctl status $opt | head -1: exit $st, first line: $first"
	if [ $st -ne 0 ] || [ -s "$tmp/err" ]; then
		echo "FAIL: exit $st, stderr: $(cat "$tmp/err")"
		rc=1
	fi
done
exit $rc
