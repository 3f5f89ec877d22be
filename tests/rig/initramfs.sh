#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the test guests' initramfs (gzip cpio) and print its path on the last stdout line.
#
#   initramfs.sh [--module FILE] [--extra fio|cluster|mdadm|e2fs]... [--iotool FILE] [--amfctl FILE]
#
# Two layers, each cached under ~/.cache/dm-amf/initramfs/ by a key of its content:
#   base: busybox-static + dmsetup (+ extras: fio; corosync, corosync-quorumtool,
#         corosync-cfgtool, dlm_controld, dlm_tool, rdma, rdma-peer with the rxe provider;
#         mdadm with libdlm_lt, which it dlopens for md-cluster) with the shared libraries
#         ldd finds.
#         Keyed by the binaries' names, sizes and mtimes: rebuilt only when packages change.
#   top:  tests/guest (init, lib, suites), amf-iotool and amfctl (static builds of the
#         workspace's crates, /usr/bin), the module as /lib/modules/dm-amf.ko.
#         Keyed by content: a few MiB, built in about a second (after cargo).
# The kernel unpacks concatenated gzip cpio archives in order, so the image is base + top.
# fio is an extra because it drags ~80 MB of libraries (ceph, icu) into the guest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${AMF_CACHE:-$HOME/.cache/dm-amf}/initramfs
log() { printf '[initramfs] %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

# rdma_tool NAME: tests/tools/NAME/NAME.c built against librdmacm once per source (cached
# by its hash); prints the binary's path.
rdma_tool() {
	local src=$repo/tests/tools/$1/$1.c bin
	bin=$cache/$1-$(sha256sum <"$src" | cut -c1-12)
	if [ ! -x "$bin" ]; then
		log "building $1"
		gcc -O2 -Wall -o "$bin.tmp" "$src" -lrdmacm -libverbs ||
			die "cannot build $src (librdmacm-dev: run tests/rig/setup-host.sh)"
		mv "$bin.tmp" "$bin"
	fi
	echo "$bin"
}

module=
iotool=
amfctl=
extras=()
while [ $# -gt 0 ]; do
	case "$1" in
	--module) module=$2; shift 2 ;;
	--iotool) iotool=$2; shift 2 ;;
	--amfctl) amfctl=$2; shift 2 ;;
	--extra) extras+=("$2"); shift 2 ;;
	-h|--help) sed -n '3,15p' "$0"; exit 0 ;;
	*) die "unknown argument '$1'" ;;
	esac
done
[ -z "$module" ] || [ -f "$module" ] || die "no module file '$module'"
mkdir -p "$cache"

# ------------------------------------------------------------------ base layer
bins=(/bin/busybox /usr/sbin/dmsetup)
files=()
for e in ${extras[@]+"${extras[@]}"}; do
	case "$e" in
	fio) bins+=(/usr/bin/fio) ;;
	cluster)
		bins+=(/usr/sbin/corosync /usr/sbin/corosync-quorumtool /usr/sbin/corosync-cfgtool
			/usr/sbin/dlm_controld /usr/sbin/dlm_tool /usr/bin/rdma)
		# knet loads its crypto/compression plugins at run time.
		for f in /usr/lib/x86_64-linux-gnu/kronosnet/*.so; do [ -e "$f" ] && files+=("$f"); done
		# tests/tools/rdma-peer (a foreign RDMA peer for the RDMA tests) and
		# tests/tools/amf-attack (the stranger of the `hostile` suite), built here against
		# librdmacm, with libibverbs' soft-RoCE provider, which they load at run time.
		peer_bin=$(rdma_tool rdma-peer)
		attack_bin=$(rdma_tool amf-attack)
		for f in /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so /etc/libibverbs.d/rxe.driver; do
			[ -e "$f" ] && files+=("$f")
		done
		;;
	mdadm)
		bins+=(/usr/sbin/mdadm)
		# md-cluster: mdadm dlopens libdlm_lt (package libdlm3) for its own locking, and
		# libcmap (corosync) for the cluster name when --home-cluster is not given.
		for f in /usr/lib/x86_64-linux-gnu/libdlm_lt.so.3 /usr/lib/x86_64-linux-gnu/libcmap.so.4; do
			[ -e "$f" ] && files+=("$f")
		done
		;;
	e2fs)
		# ext4 in the guest (the logreplay suite): mke2fs and e2fsck (e2fsprogs)
		bins+=(/usr/sbin/mke2fs /usr/sbin/e2fsck)
		[ -e /etc/mke2fs.conf ] && files+=(/etc/mke2fs.conf)
		;;
	*) die "unknown extra '$e' (fio|cluster|mdadm|e2fs)" ;;
	esac
done
for b in "${bins[@]}"; do
	[ -x "$b" ] || die "missing $b: run tests/rig/setup-host.sh"
done
case "$(ldd /bin/busybox 2>&1 || true)" in *'not a dynamic executable'*) ;; *) false ;; esac ||
	die "/bin/busybox is not the static build (install busybox-static)"

libs=$( { for b in "${bins[@]}" ${files[@]+"${files[@]}"} ${peer_bin:+"$peer_bin"} ${attack_bin:+"$attack_bin"}; do ldd "$b" 2>/dev/null || true; done; } |
	awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | sort -u)
basekey=$( { echo v3; cat "$0" | sha256sum; for f in "${bins[@]}" ${files[@]+"${files[@]}"} ${peer_bin:+"$peer_bin"} ${attack_bin:+"$attack_bin"} $libs; do
	stat -L -c '%n %s %Y' "$f"; done; } | sha256sum | cut -c1-16)
base=$cache/base-$basekey.cpio.gz

if [ ! -f "$base" ]; then
	t0=$(date +%s.%N)
	stage=$(mktemp -d "$cache/stage.XXXXXX")
	trap 'rm -rf "$stage"' EXIT
	mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,dev,proc,sys,tmp,run,root,var/lib,var/log,var/run}
	cp /bin/busybox "$stage/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -sf busybox "$stage/bin/$a"
	done
	for b in "${bins[@]}" ${files[@]+"${files[@]}"} $libs; do
		[ "$b" = /bin/busybox ] && continue
		mkdir -p "$stage$(dirname "$b")"
		cp -L "$b" "$stage$b"
	done
	[ -z "${peer_bin:-}" ] || cp "$peer_bin" "$stage/usr/bin/rdma-peer"
	[ -z "${attack_bin:-}" ] || cp "$attack_bin" "$stage/usr/bin/amf-attack"
	mknod -m 600 "$stage/dev/console" c 5 1
	mknod -m 666 "$stage/dev/null" c 1 3
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$stage/etc/passwd"
	printf 'root:x:0:\nhaclient:x:90:\nnogroup:x:65534:\n' >"$stage/etc/group"
	printf 'passwd: files\ngroup: files\nhosts: files\n' >"$stage/etc/nsswitch.conf"
	printf '127.0.0.1 localhost\n' >"$stage/etc/hosts"
	mkdir -p "$stage/etc/corosync" "$stage/var/lib/corosync" "$stage/var/log/cluster" "$stage/etc/dlm"
	(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$base.tmp"
	mv "$base.tmp" "$base"
	rm -rf "$stage"
	trap - EXIT
	# Keep the cache bounded: the 6 newest base layers.
	ls -1t "$cache"/base-*.cpio.gz 2>/dev/null | tail -n +7 | xargs -r rm -f
	log "base layer $(du -h "$base" | cut -f1) (${extras[*]:-no extras}) in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
fi

# ------------------------------------------------------------------ top layer
pkgs=()
[ -n "$iotool" ] || pkgs+=(-p amf-iotool)
[ -n "$amfctl" ] || pkgs+=(-p amfctl)
if [ ${#pkgs[@]} -gt 0 ]; then
	export PATH="$HOME/.cargo/bin:$PATH"
	# Static, so they need nothing from the base layer.
	(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release \
		"${pkgs[@]}" --target x86_64-unknown-linux-gnu) >&2 || die "building ${pkgs[*]} failed"
fi
: "${iotool:=$repo/target/x86_64-unknown-linux-gnu/release/amf-iotool}"
: "${amfctl:=$repo/target/x86_64-unknown-linux-gnu/release/amfctl}"
[ -x "$iotool" ] || die "no amf-iotool at $iotool"
[ -x "$amfctl" ] || die "no amfctl at $amfctl"

topkey=$( { echo v3; cat "$0"; tar -C "$repo/tests/guest" -cf - --sort=name --mtime=@0 --owner=0 --group=0 .;
	cat "$iotool" "$amfctl"; if [ -n "$module" ]; then cat "$module"; fi; } | sha256sum | cut -c1-16)
img=$cache/amf-$basekey-$topkey.cpio.gz
if [ ! -f "$img" ]; then
	stage=$(mktemp -d "$cache/stage.XXXXXX")
	trap 'rm -rf "$stage" "$stage.top"' EXIT
	mkdir -p "$stage/amf" "$stage/usr/bin" "$stage/lib/modules"
	cp "$repo/tests/guest/init" "$stage/init"
	cp -r "$repo/tests/guest/lib" "$repo/tests/guest/suites" "$stage/amf/"
	[ -d "$repo/tests/guest/files" ] && cp -r "$repo/tests/guest/files" "$stage/amf/"
	chmod 755 "$stage/init"
	cp "$iotool" "$stage/usr/bin/amf-iotool"
	cp "$amfctl" "$stage/usr/bin/amfctl"
	[ -n "$module" ] && cp "$module" "$stage/lib/modules/dm-amf.ko"
	# The archive goes outside the staged tree, or find would pack it into itself.
	(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$stage.top"
	cat "$base" "$stage.top" >"$img.tmp"
	rm -f "$stage.top"
	mv "$img.tmp" "$img"
	rm -rf "$stage"
	trap - EXIT
	# Keep the cache bounded: the 20 newest images.
	ls -1t "$cache"/amf-*.cpio.gz 2>/dev/null | tail -n +21 | xargs -r rm -f
	log "image $(du -h "$img" | cut -f1)${module:+ with $(basename "$module")}"
fi
echo "$img"
