#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Run every amf-core fuzz target for a bounded time.
#
#   dm-amf/core/fuzz/run.sh [SECONDS_PER_TARGET]   (default 20)
#
# Installs cargo-fuzz if it is missing. cargo-fuzz needs nightly compiler features; on a
# stable toolchain RUSTC_BOOTSTRAP=1 enables them. Exits non-zero on the first finding
# (the crashing input is left under fuzz/artifacts/<target>/).
set -euo pipefail
secs=${1:-20}
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
	cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
for t in $targets; do
	# The table parser target only makes sense once table.rs exists.
	if [ "$t" = table_parse ] && [ ! -f ../src/table.rs ]; then
		continue
	fi
	echo "fuzz: $t for ${secs}s"
	mkdir -p "corpus/$t"
	log=$(mktemp)
	status=0
	cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
		>"$log" 2>&1 || status=$?
	grep -E "^(#[0-9]+ +DONE|Done [0-9]+ runs|==[0-9]+==|SUMMARY|thread '|Failing input)" "$log" || true
	if [ "$status" -ne 0 ]; then
		tail -n 40 "$log"
		rm -f "$log"
		echo "fuzz: $t FAILED (exit $status); see dm-amf/core/fuzz/artifacts/$t/"
		exit 1
	fi
	rm -f "$log"
	echo "fuzz: $t ok"
done
echo "fuzz: all targets ran ${secs}s without findings"
