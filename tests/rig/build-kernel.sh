#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build (once) the kernel dm-amf is tested on, from Debian's linux-source-6.12, and cache it
# outside the checkout, keyed by source version + config hash.
#
#   build-kernel.sh [debug|bench|size]     build if needed, print the build dir (KDIR) last
#
# debug: tinyconfig + tests/rig/kernel.config (lockdep, kmemleak, kfence...): for tests.
# bench: the same without the debug section: for benchmarks only.
# size:  debug built with CONFIG_CC_OPTIMIZE_FOR_SIZE (tinyconfig's default; Rust at
#        opt-level s), whose frames differ from -O2's: the stack check builds against both.
set -euo pipefail

flavour=${1:-debug}
here=$(cd "$(dirname "$0")" && pwd)
cache=${AMF_CACHE:-$HOME/.cache/dm-amf}
tarball=/usr/src/linux-source-6.12.tar.xz
log() { printf '[kernel] %s\n' "$*" >&2; }

[ -f "$tarball" ] || { log "missing $tarball: run tests/rig/setup-host.sh"; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)

frag=$(mktemp)
trap 'rm -f "$frag"' EXIT
case "$flavour" in
debug) grep -v '^#' "$here/kernel.config" | sed '/^$/d' >"$frag" ;;
bench) sed '/^# --- debug set/,$d' "$here/kernel.config" | grep -v '^#' | sed '/^$/d' >"$frag" ;;
size)
	grep -v '^#' "$here/kernel.config" | sed '/^$/d' |
		sed 's/^CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE=y$/CONFIG_CC_OPTIMIZE_FOR_SIZE=y/' >"$frag"
	;;
*) log "unknown flavour '$flavour' (debug|bench|size)"; exit 2 ;;
esac
# Bump when the build recipe below changes in a way that changes the result.
recipe=1
key=$( (cat "$frag"; echo "recipe=$recipe") | sha256sum | cut -c1-12)

src=$cache/linux-$srcver
out=$cache/build-$srcver-$flavour-$key
# A finished build is never written again: found, it needs no lock.
if [ -f "$out/.amf-complete" ]; then
	log "cached: $out"
	echo "$out"
	exit 0
fi
# One build of each kind at a time: a second caller waits, then finds the result cached
# (without the lock it would delete the directory the first one is building in). Builds of
# other kinds go on beside it; the shared source is extracted under its own lock.
mkdir -p "$cache"
exec 9>"$cache/.build-$flavour-$key.lock"
if ! flock -n 9; then
	log "another build of this kernel is running: waiting for it"
	flock 9
fi
if [ -f "$out/.amf-complete" ]; then
	log "cached: $out"
	echo "$out"
	exit 0
fi

exec 8>"$cache/.source.lock"
flock 8
if [ ! -f "$src/.amf-extracted" ]; then
	log "extracting $tarball (about 1 min)"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -xf "$tarball" -C "$src.tmp" --strip-components=1
	touch "$src.tmp/.amf-extracted"
	mv "$src.tmp" "$src"
fi
flock -u 8

export PATH="$HOME/.cargo/bin:$PATH"
rm -rf "$out"
mkdir -p "$out"
t0=$(date +%s)
log "configuring $flavour kernel in $out"
make -s -C "$src" O="$out" tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$frag" >/dev/null
make -s -C "$src" O="$out" olddefconfig >/dev/null

bad=0
while IFS= read -r line; do
	case "$line" in
	*=n) opt=${line%=n}; grep -q "^$opt=" "$out/.config" && { log "config: $opt should be off"; bad=1; } ;;
	*=*) grep -qx "$line" "$out/.config" || { log "config: wanted '$line', got '$(grep "^${line%%=*}[= ]" "$out/.config" || echo unset)'"; bad=1; } ;;
	esac
done <"$frag"
[ $bad -eq 0 ] || { log "config fragment not honoured (see above)"; exit 1; }

log "building bzImage + rust + modules_prepare on $(nproc) cores (15-20 min the first time)"
make -s -C "$src" O="$out" -j"$(nproc)" bzImage modules >"$out/build.log" 2>&1 || {
	tail -40 "$out/build.log" >&2
	exit 1
}
touch "$out/.amf-complete"
log "built in $(($(date +%s) - t0)) s"
echo "$out"
