#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# DKMS (issue 21): `make dkms-src` into a scratch root, then `dkms add`, `dkms build` and
# `dkms install` of that source tree against the project's own kernel tree (the cached test
# kernel, a Rust-enabled 6.12), all in scratch trees (--dkmstree, --sourcetree,
# --installtree; --no-depmod, then depmod -b on the scratch root: dkms 3.0's own depmod has
# no -b). Checks that DKMS built and installed the module (modinfo: name, license, vermagic)
# and that a kernel tree without CONFIG_RUST is skipped (BUILD_EXCLUSIVE_CONFIG), not
# failed. Nothing is written to the host's /var/lib/dkms, /usr/src or /lib/modules.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
command -v dkms >/dev/null || { echo "FAIL: no dkms (tests/rig/setup-host.sh installs it)"; exit 1; }
export PATH=$HOME/.cargo/bin:$PATH
kdir=$(tests/rig/build-kernel.sh debug 2>/dev/null | tail -n1)
kver=$(cat "$kdir/include/config/kernel.release")
root=$(mktemp -d /tmp/amf-dkms.XXXXXX)
trap 'rm -rf "$root"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
make -s dkms-src DESTDIR="$root" || { echo "FAIL: make dkms-src"; exit 1; }
src=$(ls -d "$root"/usr/src/dm-amf-*)
ver=${src##*/dm-amf-}
mkdir -p "$root/var/lib/dkms" "$root/lib/modules/$kver"
o=(--dkmstree "$root/var/lib/dkms" --sourcetree "$root/usr/src" --installtree "$root/lib/modules")
dkms add "${o[@]}" -m dm-amf -v "$ver" || fail "dkms add"
t0=$(date +%s)
if dkms build "${o[@]}" -m dm-amf -v "$ver" -k "$kver" --kernelsourcedir "$kdir" >"$root/build.log" 2>&1; then
	echo "ok: dkms build dm-amf/$ver for $kver ($(($(date +%s) - t0)) s)"
else
	cat "$root/build.log" "$root/var/lib/dkms/dm-amf/$ver/build/make.log" 2>/dev/null | tail -30
	fail "dkms build"
fi
dkms install "${o[@]}" --no-depmod -m dm-amf -v "$ver" -k "$kver" --kernelsourcedir "$kdir" \
	>"$root/install.log" 2>&1 || { cat "$root/install.log"; fail "dkms install"; }
dkms status "${o[@]}"
dkms status "${o[@]}" | grep -q "^dm-amf/$ver, $kver, [^:]*: installed" || fail "dkms status: not installed"
ko=$(find "$root/lib/modules/$kver" -name dm-amf.ko)
echo "installed by dkms: ${ko#"$root"}"
[ -n "$ko" ] || fail "no dm-amf.ko under lib/modules/$kver"
depmod -b "$root" "$kver" 2>/dev/null || fail "depmod -b"
info=$(modinfo -b "$root" -k "$kver" dm-amf 2>&1)
echo "$info" | grep -E '^(filename|name|license|vermagic):'
grep -qx 'name: *dm_amf' <<<"$info" || fail "modinfo: name"
grep -qx 'license: *GPL' <<<"$info" || fail "modinfo: license"
grep -q "^vermagic: *$kver " <<<"$info" || fail "modinfo: vermagic is not $kver"
# A kernel tree without CONFIG_RUST (only its .config matters to the check): skipped.
norust=$root/norust
mkdir -p "$norust" "$root/lib/modules/0.0.0-norust"
printf 'CONFIG_BLK_DEV_DM=y\n# CONFIG_RUST is not set\n' >"$norust/.config"
dkms build "${o[@]}" -m dm-amf -v "$ver" -k 0.0.0-norust --kernelsourcedir "$norust" >"$root/norust.log" 2>&1
rc=$?
if [ $rc -eq 77 ] && grep -q 'BUILD_EXCLUSIVE' "$root/norust.log"; then
	echo "ok: a kernel without CONFIG_RUST is skipped (exit 77: $(grep -m1 -o 'includes a BUILD_EXCLUSIVE directive which does not match[^.]*' "$root/norust.log"))"
else
	cat "$root/norust.log"
	fail "kernel without CONFIG_RUST: exit $rc, not skipped"
fi
# The same fake tree with CONFIG_RUST=y is not skipped (it then fails to build: no kernel
# there), so the skip above is the CONFIG_RUST check.
printf 'CONFIG_BLK_DEV_DM=y\nCONFIG_RUST=y\n' >"$norust/.config"
dkms build "${o[@]}" -m dm-amf -v "$ver" -k 0.0.0-norust --kernelsourcedir "$norust" >"$root/norust.log" 2>&1
rc=$?
if [ $rc -ne 77 ] && [ $rc -ne 0 ]; then
	echo "ok: with CONFIG_RUST=y the same tree is built, not skipped (exit $rc: no kernel there)"
else
	cat "$root/norust.log"
	fail "fake tree with CONFIG_RUST=y: exit $rc"
fi
[ $fails -eq 0 ] && echo "dkms: all checks passed" || echo "dkms: $fails checks failed"
exit $((fails > 0))
