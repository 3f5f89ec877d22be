#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make install` into a scratch root (issue 21): DESTDIR and PREFIX honoured, nothing
# written outside the root; the module under /lib/modules/<kver>/extra with a modules.dep
# that depmod -b made (modprobe resolves dm-amf there), modinfo of the installed module
# (name, license, vermagic = the kernel tree's release); amfctl runs from the root; one man
# page per visible subcommand plus amfctl.8, each rendered by man without warnings; bash,
# zsh and fish completions (the bash one loads and completes subcommands and options);
# amf-assemble.service and the udev rule calling the installed amfctl with options it takes
# (systemd-analyze verify of the unit where systemd-analyze exists, udevadm verify of the
# rule where udevadm has it), the example amf.conf that amfctl reads.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
root=$(mktemp -d /tmp/amf-install.XXXXXX)
trap 'rm -rf "$root"' EXIT
fails=0
check() { # check DESCRIPTION COMMAND...: one line, PASS or FAIL
	if "${@:2}" >"$root.out" 2>&1; then echo "ok: $1"; else
		echo "FAIL: $1"; sed 's/^/    /' "$root.out"; fails=$((fails + 1)); fi
	rm -f "$root.out"
}
make -s install DESTDIR="$root" PREFIX=/usr >"$root.log" 2>&1 ||
	{ cat "$root.log"; echo "FAIL: make install"; exit 1; }
grep -E '^(installed|depmod)' "$root.log"
rm -f "$root.log"
kdir=$(tests/rig/build-kernel.sh debug 2>/dev/null | tail -n1)
kver=$(cat "$kdir/include/config/kernel.release")
mods=$root/lib/modules/$kver

check "module at lib/modules/$kver/extra/dm-amf.ko" test -f "$mods/extra/dm-amf.ko"
check "modules.dep lists extra/dm-amf.ko" grep -qx 'extra/dm-amf.ko:' "$mods/modules.dep"
check "modprobe resolves dm-amf in the root" \
	bash -c "modprobe -d '$root' -S '$kver' --show-depends dm-amf | grep -q '$mods/extra/dm-amf.ko'"
info=$(modinfo -b "$root" -k "$kver" dm-amf 2>&1)
echo "$info" | grep -E '^(filename|name|license|vermagic):'
check "modinfo: name dm_amf" grep -qx 'name: *dm_amf' <<<"$info"
check "modinfo: license GPL" grep -qx 'license: *GPL' <<<"$info"
check "modinfo: vermagic $kver" grep -q "^vermagic: *$kver " <<<"$info"
check "amfctl in usr/sbin runs" "$root/usr/sbin/amfctl" --version
check "nothing outside lib/ and usr/" \
	bash -c "[ -z \"\$(ls -A '$root' | grep -vx -e lib -e usr)\" ]"

# One page per visible subcommand, from amfctl's own list.
subs=$("$root/usr/sbin/amfctl" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
pages=("$root/usr/share/man/man8/amfctl.8")
for s in $subs; do pages+=("$root/usr/share/man/man8/amfctl-$s.8"); done
echo "man pages: ${#pages[@]} (amfctl.8 and $(echo "$subs" | wc -w) subcommands)"
for p in "${pages[@]}"; do
	check "man page ${p##*/} renders without warnings" \
		bash -c "out=\$(MANWIDTH=80 man --warnings -l '$p' 2>&1 >/dev/null); [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }; man -l '$p' 2>/dev/null | grep -q '^NAME'"
done
refs=$(man -l "$root/usr/share/man/man8/amfctl.8" 2>/dev/null | grep -o 'amfctl-[a-z-]*(8)' | sort -u)
for r in $refs; do
	check "amfctl.8 names ${r}: its page exists" test -f "$root/usr/share/man/man8/${r%(8)}.8"
done
check "no page for the hidden generators" \
	bash -c "! ls '$root/usr/share/man/man8' | grep -q gen-"
check "amfctl-format.8 documents --force" grep -q 'force' "$root/usr/share/man/man8/amfctl-format.8"

bc=$root/usr/share/bash-completion/completions/amfctl
check "bash completion: subcommands" bash -c "
	source '$bc'; COMP_WORDS=(amfctl fo); COMP_CWORD=1; COMP_LINE='amfctl fo'; COMP_POINT=9
	_amfctl amfctl fo amfctl; printf '%s\n' \"\${COMPREPLY[@]}\" | grep -qx format"
check "bash completion: options of format" bash -c "
	source '$bc'; COMP_WORDS=(amfctl format --fo); COMP_CWORD=2; COMP_LINE='amfctl format --fo'
	COMP_POINT=18; _amfctl amfctl --fo format; printf '%s\n' \"\${COMPREPLY[@]}\" | grep -qx -- --force"
check "zsh completion defines _amfctl" grep -q '^#compdef amfctl' "$root/usr/share/zsh/site-functions/_amfctl"
check "fish completion completes format" \
	grep -q "complete -c amfctl .*-a \"format\"" "$root/usr/share/fish/vendor_completions.d/amfctl.fish"

unit=$root/usr/lib/systemd/system/amf-assemble.service
rule=$root/usr/lib/udev/rules.d/69-amf.rules
example=$root/usr/share/doc/dm-amf/amf.conf.example
check "amf-assemble.service runs /usr/sbin/amfctl assemble --scan" \
	grep -qx 'ExecStart=/usr/sbin/amfctl assemble --scan $AMF_ASSEMBLE_OPTS' "$unit"
check "amf-assemble.service stops with amfctl stop --scan" grep -qx 'ExecStop=/usr/sbin/amfctl stop --scan' "$unit"
check "amf-assemble.service is ordered after corosync and dlm" \
	bash -c "grep -q '^After=.* corosync.service dlm.service' '$unit'"
check "udev rule: probe and incremental with /usr/sbin/amfctl, no placeholder left" \
	bash -c "grep -q 'PROGRAM==\"/usr/sbin/amfctl assemble --probe \$devnode\"' '$rule' && grep -q 'RUN+=\"/usr/bin/systemd-run .*/usr/sbin/amfctl assemble --incremental \$devnode\"' '$rule' && ! grep -q @ '$unit' '$rule'"
check "amfctl reads the example amf.conf (every group commented out)" \
	bash -c "'$root/usr/sbin/amfctl' assemble --scan --dry-run --config '$example' | grep -qx '$example: no groups configured'"
check "the udev rule's --probe exists (exit 1 for a non-member, not a usage error)" \
	bash -c "'$root/usr/sbin/amfctl' assemble --probe /dev/null --config '$example'; [ \$? -eq 1 ]"
if command -v systemd-analyze >/dev/null; then
	# Verified with the installed amfctl and man pages where the unit names them.
	mkdir -p "$root.units"
	sed "s|/usr/sbin/amfctl|$root/usr/sbin/amfctl|g" "$unit" >"$root.units/amf-assemble.service"
	check "systemd-analyze verify amf-assemble.service" \
		bash -c "out=\$(MANPATH='$root/usr/share/man' systemd-analyze verify '$root.units/amf-assemble.service' 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
	rm -rf "$root.units"
else
	echo "skip: systemd-analyze verify (no systemd-analyze on this host)"
fi
if udevadm verify --help >/dev/null 2>&1; then
	check "udevadm verify 69-amf.rules" udevadm verify "$rule"
else
	echo "skip: udevadm verify (udevadm $(udevadm --version 2>/dev/null || echo missing) has no verify, systemd 254 and later)"
fi
[ $fails -eq 0 ] && echo "install: all checks passed" || echo "install: $fails checks failed"
exit $((fails > 0))
