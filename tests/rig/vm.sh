#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boot N test guests on the cached test kernel and return their verdict.
#
#   vm.sh --test load,mapping [options]
#
#   --test LIST        suites the guests run (amf.test=), comma-separated; "shell" = interactive
#   --name NAME        run name: logs are tests/out/NAME.gI.console.log and NAME.gI.ktap
#   --guests N         number of guests (default 1); N > 1 gets a private network
#   --disk SIZE        one raw disk shared by all guests (repeatable; 64M, 1G...): vda, vdb...
#   --module FILE      dm-amf.ko to put into the initramfs (default: the newest of ./dm-amf.ko
#                      and dm-amf/dm-amf.ko, if built)
#   --no-module        no module in the guest
#   --extra fio|cluster|mdadm|e2fs  more programs in the initramfs (repeatable)
#   --initrd FILE      use this initramfs instead of building one
#   --kernel FILE      bzImage (default: the cached `build-kernel.sh debug` kernel)
#   --mem MB           guest memory (default 1024; 768 with more than 2 guests)
#   --cpus N           vCPUs per guest (default 1). The test kernel has no ACPI: it finds the
#                      CPUs in SeaBIOS's MP table, which lists one CPU per socket, so N
#                      CPUs are N sockets of one core (a plain -smp N boots one CPU)
#   --timeout SEC      hard timeout of the whole run (default 600)
#   --suite-timeout S  per-suite timeout inside the guest (default: the hard timeout)
#   --append ARGS      extra kernel command line
#   --net              private network even with one guest
#   --accel tcg|kvm|auto  default auto: KVM only if a (cached) 20 s probe boots with it, else TCG
#   --keep             keep the disk images (prints where)
#
# Disks live in /dev/shm (raw, sparse; cache=unsafe because tmpfs has no O_DIRECT;
# file.locking=off + share-rw=on so several guests share them; discard=unmap). Guest I
# gets amf.node=I amf.nodes=N and, with a network, amf.ip=10.199.0.(I+1)/24 on a bridge
# inside a network namespace this script creates and deletes (also on failure): guest
# traffic never leaves that namespace.
#
# A guest that prints "AMF-KILL-ME node=I" on its result channel (after its verdict; see
# tests/guest/init) has its QEMU process killed with SIGKILL: a power loss, for the cluster
# suites. Its verdict is the one it printed.
# A guest that prints "AMF-RESTART-ME node=I" is killed the same way and booted again: the
# same disks, tap and MAC, the same command line plus " amf.boot=K" for its K-th restart
# (the guest's AMF_BOOT; 0 on the first boot). The logs of a killed boot K move to
# NAME.gI.bK.console.log and NAME.gI.bK.ktap; the guest's results (NAME.gI.ktap, what
# tests/run counts) are those of its last boot. A killed boot whose verdict was not PASS
# makes the exit 1 (listed in NAME.gI.earlier). --timeout bounds all boots together.
#
# Exit: 0 every guest printed "AMF-VERDICT: PASS"; 1 a guest failed (also an earlier boot of
# a restarted guest); 3 a guest ended without a verdict (crash, panic); 124 timeout; 2 set-up
# error.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { printf '[vm] %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

name=vm
guests=1
disks=()
tests=
module=auto
extras=()
initrd=
kernel=
mem=
cpus=1
timeout=600
stimeout=
append=
net=0
accel=${AMF_ACCEL:-auto}
keep=0
out=${AMF_OUT:-$repo/tests/out}

while [ $# -gt 0 ]; do
	case "$1" in
	--test) tests=$2; shift 2 ;;
	--name) name=$2; shift 2 ;;
	--guests) guests=$2; shift 2 ;;
	--disk) disks+=("$2"); shift 2 ;;
	--module) module=$2; shift 2 ;;
	--no-module) module=; shift ;;
	--extra) extras+=(--extra "$2"); shift 2 ;;
	--initrd) initrd=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--cpus) cpus=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--suite-timeout) stimeout=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--net) net=1; shift ;;
	--accel) accel=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) sed -n '3,40p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (--help)" ;;
	esac
done
[ -n "$tests" ] || die "--test is required"
[[ "$guests" =~ ^[1-9][0-9]*$ ]] || die "--guests wants a positive number"
[ "$guests" -gt 1 ] && net=1
[ -n "$mem" ] || { [ "$guests" -gt 2 ] && mem=768 || mem=1024; }
: "${stimeout:=$timeout}"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run tests/rig/setup-host.sh"

if [ -z "$kernel" ]; then
	kdir=$("$here/build-kernel.sh" debug | tail -1)
	kernel=$kdir/arch/x86/boot/bzImage
fi
[ -f "$kernel" ] || die "no kernel image $kernel"
kernel=$(realpath "$kernel")
case "$module" in auto | "") ;; *) module=$(realpath "$module") ;; esac
if [ "$module" = auto ]; then
	# Kbuild's obj-m puts it at the top (dm-amf.ko); dm-amf/dm-amf.ko if that changes.
	module=$(ls -t "$repo/dm-amf.ko" "$repo/dm-amf/dm-amf.ko" 2>/dev/null | head -1 || true)
fi
if [ -z "$initrd" ]; then
	initrd=$("$here/initramfs.sh" ${module:+--module "$module"} ${extras[@]+"${extras[@]}"} | tail -1)
fi
[ -f "$initrd" ] || die "no initramfs $initrd"
mkdir -p "$out"

# ------------------------------------------------------------------ accelerator
accel_args=(-accel tcg -cpu max)
if [ "$accel" = auto ] || [ "$accel" = kvm ]; then
	probe=${AMF_CACHE:-$HOME/.cache/dm-amf}/kvm-probe-$( { qemu-system-x86_64 --version | head -1;
		uname -r; sha256sum <"$kernel"; } | sha256sum | cut -c1-12)
	if [ "$accel" = kvm ] || [ ! -f "$probe" ]; then
		res=no
		if [ -w /dev/kvm ]; then
			log "probing KVM (20 s at most)"
			pl=$(mktemp)
			timeout -k 2 20 qemu-system-x86_64 -accel kvm -cpu max -m 256 -nodefaults -display none \
				-no-reboot -kernel "$kernel" -initrd "$initrd" -serial "file:$pl" \
				-append "console=ttyS0 panic=-1 amf.test=none" >/dev/null 2>&1 || true
			grep -aq 'AMF-VERDICT: PASS' "$pl" && res=yes
			rm -f "$pl"
		fi
		mkdir -p "$(dirname "$probe")"
		echo "$res" >"$probe"
		log "KVM probe: $res"
	fi
	if [ "$(cat "$probe")" = yes ]; then
		accel_args=(-accel kvm -cpu max)
	elif [ "$accel" = kvm ]; then
		die "KVM does not boot this kernel here (probe failed)"
	fi
fi

# ------------------------------------------------------------------ one run at a time
# Two cores: concurrent TCG runs slow each other into timeouts (and a run with the same
# --name would overwrite the other's logs). AMF_VM_NOLOCK=1 skips this.
if [ -z "${AMF_VM_NOLOCK:-}" ]; then
	lock=${AMF_CACHE:-$HOME/.cache/dm-amf}/vm.lock
	mkdir -p "$(dirname "$lock")"
	exec 8>"$lock"
	if ! flock -n 8; then
		log "another vm.sh run is active: waiting for it"
		flock 8
	fi
fi

# ------------------------------------------------------------------ cleanup
ns=
ddir=
pids=()
cleanup() {
	local p
	for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
	for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
	[ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true
	if [ -n "$ddir" ]; then
		if [ $keep -eq 1 ]; then log "disks kept in $ddir"; else rm -rf "$ddir"; fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ disks
drive_args=()
if [ ${#disks[@]} -gt 0 ]; then
	ddir=$(mktemp -d /dev/shm/amf-vm-XXXXXX)
	for i in "${!disks[@]}"; do
		img=$ddir/d$i.img
		truncate -s "${disks[$i]}" "$img" || die "bad disk size '${disks[$i]}'"
		drive_args+=(-drive "file=$img,format=raw,if=none,id=d$i,cache=unsafe,file.locking=off,discard=unmap"
			-device "virtio-blk-pci,drive=d$i,share-rw=on,serial=amf-d$i")
	done
fi

# ------------------------------------------------------------------ network
if [ $net -eq 1 ]; then
	ns=amf-vm-$$
	ip netns add "$ns" || die "cannot create network namespace $ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" link add br0 type bridge
	ip -n "$ns" link set br0 up
	for ((i = 0; i < guests; i++)); do
		ip -n "$ns" tuntap add "tap$i" mode tap
		ip -n "$ns" link set "tap$i" master br0 up
	done
fi

# ------------------------------------------------------------------ guests
t0=$(date +%s.%N)
deadline=$(($(date +%s) + timeout))
rm -f "$out/$name".g*.console.log "$out/$name".g*.ktap "$out/$name".g*.qemu.log "$out/$name".g*.earlier
log "$name: $guests guest(s), tests '$tests', ${#disks[@]} disk(s), ${accel_args[1]}, timeout ${timeout}s"

# guest_cmdline I: the kernel command line of guest I's first boot.
guest_cmdline() {
	local c="console=ttyS0 panic=-1 amf.test=$tests amf.node=$1 amf.nodes=$guests amf.timeout=$stimeout"
	[ $net -eq 1 ] && c+=" amf.ip=10.199.0.$(($1 + 1))/24"
	[ -n "$append" ] && c+=" $append"
	echo "$c"
}

# guest_qemu I CMDLINE: the QEMU command of guest I in the array qemu.
guest_qemu() {
	local net_args=()
	[ $net -eq 1 ] && net_args=(-netdev "tap,id=n0,ifname=tap$1,script=no,downscript=no"
		-device "virtio-net-pci,netdev=n0,mac=52:54:00:a3:f0:$(printf %02x $(($1 + 1)))")
	qemu=(qemu-system-x86_64 -name "amf$1" "${accel_args[@]}" -smp "$cpus,sockets=$cpus,cores=1,threads=1" -m "$mem"
		-nodefaults -display none -no-reboot
		-kernel "$kernel" -initrd "$initrd" -append "$2"
		-serial "$([ "$tests" = shell ] && echo mon:stdio || echo "file:$out/$name.g$1.console.log")"
		-serial "file:$out/$name.g$1.ktap" -pidfile "$out/$name.g$1.pid"
		${drive_args[@]+"${drive_args[@]}"} ${net_args[@]+"${net_args[@]}"})
}

if [ "$tests" = shell ]; then
	# Interactive: console on the terminal (one guest).
	guest_qemu 0 "$(guest_cmdline 0)"
	[ $net -eq 1 ] && exec_ns=(ip netns exec "$ns") || exec_ns=()
	${exec_ns[@]+"${exec_ns[@]}"} "${qemu[@]}"
	exit 0
fi

# run_guest I: guest I's incarnations, one after the other, until one ends without asking
# to be restarted; exits with the last QEMU's status (0 for a guest killed on request,
# 124/137 on timeout). Each incarnation runs under `timeout` for what is left of the run's
# time. A guest that prints "AMF-KILL-ME node=I" or "AMF-RESTART-ME node=I" on its result
# channel gets SIGKILL; after a restart request the logs of incarnation K move to
# NAME.gI.bK.{console.log,ktap}, a verdict other than PASS is noted in NAME.gI.earlier, and
# incarnation K+1 boots with the same disks, tap and command line plus " amf.boot=K+1".
run_guest() {
	local i=$1 k=0 tp='' qp='' what='' qrc left v cl
	local k_ktap=$out/$name.g$i.ktap k_con=$out/$name.g$i.console.log pidf=$out/$name.g$i.pid
	trap '[ -n "$tp" ] && kill "$tp" 2>/dev/null; wait 2>/dev/null; exit 143' TERM
	: >"$out/$name.g$i.qemu.log"
	while :; do
		left=$((deadline - $(date +%s)))
		[ $left -gt 0 ] || exit 124
		cl=$(guest_cmdline "$i")
		[ $k -gt 0 ] && cl+=" amf.boot=$k"
		guest_qemu "$i" "$cl"
		rm -f "$pidf"
		echo "=== boot $k: $(date +%T), $left s left" >>"$out/$name.g$i.qemu.log"
		if [ $net -eq 1 ]; then
			timeout -k 5 "$left" ip netns exec "$ns" "${qemu[@]}" >>"$out/$name.g$i.qemu.log" 2>&1 &
		else
			timeout -k 5 "$left" "${qemu[@]}" >>"$out/$name.g$i.qemu.log" 2>&1 &
		fi
		tp=$!
		what=''
		while kill -0 "$tp" 2>/dev/null; do
			if grep -aq "^AMF-RESTART-ME node=$i" "$k_ktap" 2>/dev/null; then
				what='restart'
			elif grep -aq "^AMF-KILL-ME node=$i" "$k_ktap" 2>/dev/null; then
				what='kill'
			fi
			if [ -n "$what" ]; then
				qp=$(cat "$pidf" 2>/dev/null || true)
				if [ -n "$qp" ] && kill -KILL "$qp" 2>/dev/null; then
					log "guest $i: killed (QEMU pid $qp, boot $k) $(($(date +%s) - ${t0%.*})) s into the run, as it asked$([ $what = restart ] && echo ", to be restarted")"
				else
					log "guest $i: asked to be killed but QEMU (pid '${qp}') is not there"
				fi
				break
			fi
			sleep 0.2
		done
		qrc=0
		wait "$tp" 2>/dev/null || qrc=$?  # no "Killed" job report
		tp=''
		[ $qrc -eq 124 ] && exit 124
		case $what in
		kill) exit 0 ;;
		restart) [ "$(date +%s)" -lt $deadline ] || exit 124 ;;
		*) exit $qrc ;;
		esac
		sed -i 's/\r$//' "$k_ktap" 2>/dev/null || true
		v=$(grep -a '^AMF-VERDICT:' "$k_ktap" 2>/dev/null | tail -1 | awk '{print $2}' || true)
		mv "$k_ktap" "$out/$name.g$i.b$k.ktap"
		mv "$k_con" "$out/$name.g$i.b$k.console.log" 2>/dev/null || true
		if [ "$v" != PASS ]; then
			echo "boot $k: ${v:-no verdict}" >>"$out/$name.g$i.earlier"
			log "guest $i: boot $k ended ${v:-without a verdict} before its restart (results: ${out#$repo/}/$name.g$i.b$k.ktap)"
		fi
		k=$((k + 1))
		log "guest $i: restarting as boot $k"
	done
}

for ((i = 0; i < guests; i++)); do
	run_guest "$i" &
	pids+=($!)
done

rc=0
for ((i = 0; i < guests; i++)); do
	qrc=0
	wait "${pids[$i]}" || qrc=$?
	k=$out/$name.g$i.ktap
	c=$out/$name.g$i.console.log
	boots=0
	for b in "$out/$name.g$i".b*.ktap; do [ -f "$b" ] && boots=$((boots + 1)); done
	# The clean channel (ttyS1) normally has everything; the console is the fallback.
	if ! grep -aq 'AMF-VERDICT:' "$k" 2>/dev/null && grep -aq 'AMF-VERDICT:' "$c" 2>/dev/null; then
		log "guest $i: the result channel (ttyS1) has no verdict: results taken from the console"
		mv "$k" "$k.ttyS1" 2>/dev/null || true
		tr -d '\r' <"$c" | sed -n '/^KTAP version 1/,$p' >"$k"
	fi
	sed -i 's/\r$//' "$k" 2>/dev/null || true
	v=$(grep -a '^AMF-VERDICT:' "$k" 2>/dev/null | tail -1 | awk '{print $2}' || true)
	rm -f "$out/$name.g$i.pid"
	[ "$boots" -gt 0 ] && log "guest $i: restarted $boots time(s) on request; its results are those of boot $boots"
	grep -aq "^AMF-KILL-ME node=$i" "$k" 2>/dev/null && [ $qrc -eq 0 ] && log "guest $i: killed on request after its verdict ($v)"
	if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
		log "guest $i: TIMEOUT after ${timeout}s (console: ${c#$repo/})"
		echo "AMF-VERDICT: TIMEOUT node=$i" >>"$k"
		[ $rc -eq 0 ] && rc=124
	elif [ "$v" = PASS ]; then
		log "guest $i: PASS (console: ${c#$repo/})"
	elif [ "$v" = FAIL ]; then
		log "guest $i: FAIL (console: ${c#$repo/}, results: ${k#$repo/})"
		[ $rc -eq 0 ] || [ $rc -eq 3 ] && rc=1
	else
		log "guest $i: no verdict, qemu exit $qrc (crash or panic?): tail of ${c#$repo/}:"
		tail -25 "$c" | tr -d '\r' | sed 's/^/    /' >&2
		echo "AMF-VERDICT: CRASH node=$i" >>"$k"
		[ $rc -eq 0 ] && rc=3
	fi
	if [ -s "$out/$name.g$i.earlier" ]; then
		log "guest $i: earlier boots did not pass: $(paste -sd, "$out/$name.g$i.earlier")"
		[ $rc -eq 0 ] && rc=1
	fi
done
log "$name: done in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s, exit $rc"
exit $rc
