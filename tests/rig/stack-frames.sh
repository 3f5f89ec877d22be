#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The stack frames of a built dm-amf.ko, read from its object code: every function's
# `sub $N,%rsp` (its fixed frame; a frame of a page or more shows as an `lea -N(%rsp)` probe
# bound, counted the same). Rust code gets no -Wframe-larger-than, so this is the check.
#
#   stack-frames.sh KO [LABEL] [LIMIT]     LIMIT bytes (default 1024); LABEL names the build
#
# Prints the ten largest frames, then `SUMMARY: stack: largest frame <n> bytes (<function>)`
# (tests/run shows SUMMARY lines); exits 1 if any frame is above LIMIT.
set -euo pipefail
ko=${1:?usage: stack-frames.sh KO [LABEL] [LIMIT]}
label=${2:-}
limit=${3:-1024}
[ -f "$ko" ] || { echo "stack-frames: no $ko" >&2; exit 2; }

# One line per function: "<bytes> <demangled name>", largest first.
frames=$(objdump -d --no-show-raw-insn -C "$ko" | awk '
	function hex(s,    i, c, v) {
		v = 0
		s = tolower(substr(s, 3))
		for (i = 1; i <= length(s); i++) {
			c = index("0123456789abcdef", substr(s, i, 1)) - 1
			v = v * 16 + c
		}
		return v
	}
	/^[0-9a-f]+ <.*>:$/ {
		if (fn != "" && max > 0) printf "%d %s\n", max, fn
		fn = $0; sub(/^[0-9a-f]+ </, "", fn); sub(/>:$/, "", fn); max = 0; next
	}
	/sub +\$0x[0-9a-f]+,%rsp/ || /lea +-0x[0-9a-f]+\(%rsp\),/ {
		if (match($0, /0x[0-9a-f]+/)) {
			v = hex(substr($0, RSTART, RLENGTH))
			if (v > max) max = v
		}
	}
	END { if (fn != "" && max > 0) printf "%d %s\n", max, fn }' | sort -rn)

[ -n "$frames" ] || { echo "stack-frames: no frame found in $ko (objdump?)" >&2; exit 2; }
tag=
[ -n "$label" ] && tag=" [$label]"
echo "largest frames of $ko$tag:"
head -n 10 <<<"$frames" | sed 's/^/  /'
read -r top fn <<<"$(head -n1 <<<"$frames")"
over=$(awk -v l="$limit" '$1 > l' <<<"$frames" | wc -l)
echo "SUMMARY: stack: largest frame $top bytes ($fn)"
if [ "$over" -gt 0 ]; then
	echo "stack:$tag $over function(s) above $limit bytes:"
	awk -v l="$limit" '$1 > l' <<<"$frames" | sed 's/^/  /'
	exit 1
fi
