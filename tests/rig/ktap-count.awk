# SPDX-License-Identifier: GPL-2.0
# Flatten (nested) KTAP/TAP into one line per leaf test:
#   PASS <prefix><suite>/<test>
#   FAIL <prefix><suite>/<test>
#   SKIP <prefix><suite>/<test> # <reason>
#
#   awk -v prefix=issue2/g0/ -f ktap-count.awk results.ktap
#
# Leaves are counted, not the suite lines above them; but a suite that says "not ok" with no
# failing leaf (it crashed, timed out, exited non-zero) counts as one failure, and so does
# every test its plan promised but that never printed a result (per level, including
# suites missing from the top-level plan).
function indent(s) { match(s, /^ */); return RLENGTH }
function full(d, name,   p, k) {
	p = prefix
	for (k = 4; k <= d; k += 4) if (sub_name[k] != "") p = p sub_name[k] "/"
	return p name
}
function close_block(d, pname, pok,   c, m, missing) {
	# the block at depth d (children of a result line at depth d - 4) ends
	c = d + 0
	missing = plan[c] - nres[c]
	if (missing > 0) {
		for (m = nres[c] + 1; m <= plan[c]; m++)
			printf "FAIL %s # result %d of %d missing (crash or timeout)\n", full(c, "(test " m ")"), m, plan[c]
	} else if (!pok && nfail[c] == 0) {
		printf "FAIL %s # the suite failed without a failing test\n", full(c - 4, pname)
	}
	if (nfail[c] > 0 || missing > 0 || !pok) nfail[c - 4]++
	plan[c] = 0; nres[c] = 0; nfail[c] = 0; sub_name[c] = ""
}
{
	sub(/\r$/, "")
	d = indent($0)
	line = substr($0, d + 1)
}
line ~ /^# Subtest: / {
	sub_name[d + 4] = substr(line, 12)
	gsub(/ /, "_", sub_name[d + 4])
	next
}
line ~ /^1\.\.[0-9]+/ {
	plan[d] = substr(line, 4) + 0
	next
}
line ~ /^(not )?ok [0-9]+/ {
	ok = (line !~ /^not /)
	name = line
	sub(/^(not )?ok [0-9]+ (- )?/, "", name)
	reason = ""
	skip = 0
	if (match(name, /# *[Ss][Kk][Ii][Pp]/)) {
		skip = 1
		reason = substr(name, RSTART + RLENGTH)
		sub(/^ */, "", reason)
	}
	sub(/ *#.*$/, "", name)
	if (nres[d + 4] > 0 || plan[d + 4] > 0) {
		# a suite line: its block ends here
		nres[d]++
		close_block(d + 4, name, ok)
		next
	}
	nres[d]++
	if (skip) printf "SKIP %s # %s\n", full(d, name), (reason == "" ? "no reason given" : reason)
	else if (ok) printf "PASS %s\n", full(d, name)
	else { printf "FAIL %s\n", full(d, name); nfail[d]++ }
	next
}
END {
	# Blocks still open (the output stopped inside a suite), deepest first.
	for (k = 40; k >= 4; k -= 4)
		if (plan[k] > nres[k]) {
			for (m = nres[k] + 1; m <= plan[k]; m++)
				printf "FAIL %s # result %d of %d missing (output ends inside this suite)\n", full(k, "(test " m ")"), m, plan[k]
			nres[k - 4]++
		}
	for (m = nres[0] + 1; m <= plan[0]; m++)
		printf "FAIL %s # suite %d of %d never reported\n", prefix "(suite " m ")", m, plan[0]
	if (NR == 0 || (plan[0] == 0 && nres[0] == 0))
		printf "FAIL %s # no KTAP output at all\n", prefix "(no output)"
}
