# SPDX-License-Identifier: GPL-2.0
# Self-test of the VM rig: disks, result channel, dm core, and with several guests the
# private network and the shared disks (each guest writes a marker, all must see all).
. /amf/lib/ktap.sh

ktap_plan 5

n=0
for d in /sys/block/vd*; do [ -e "$d" ] && n=$((n + 1)); done
ktap_diag "disks: $(for d in /sys/block/vd*; do [ -e "$d" ] && printf '%s=%s(%s) ' "${d##*/}" "$(cat "$d/size")" "$(cat "$d/serial" 2>/dev/null)"; done)"
ktap_result "virtio disks present" $([ "$n" -gt 0 ] && echo 0 || echo 1) "no /sys/block/vd*"

ktap_check "device-mapper core answers (dmsetup targets lists striped)" sh -c 'dmsetup targets && dmsetup targets | grep -q "^striped "'

if [ "$n" -gt 0 ]; then
	ktap_check "O_DIRECT write/verify on vda" sh -c \
		"amf-iotool write --dev /dev/vda --seed 5 --gen 1 --start 1024 --count 256 && amf-iotool verify --dev /dev/vda --seed 5 --gen 1 --start 1024 --count 256"
else
	ktap_skip "O_DIRECT write/verify on vda" "no disk"
fi

if [ "$AMF_NODES" -gt 1 ]; then
	# Peers boot at their own pace: allow 90 s (wall clock) for all of them.
	deadline=$(($(date +%s) + 90))
	rc=0
	j=0
	while [ $j -lt "$AMF_NODES" ]; do
		if [ $j -ne "$AMF_NODE" ]; then
			peer=10.199.0.$((j + 1))
			n=0
			until timeout 5 ping -c 1 -W 2 "$peer" >"$KTAP_TMP/ping" 2>&1; do
				n=$((n + 1))
				if [ "$(date +%s)" -ge $deadline ]; then
					ktap_diag "no answer from $peer after $n tries:"
					ktap_diag_file "$KTAP_TMP/ping"
					rc=1
					break
				fi
				sleep 1
			done
			[ $rc -eq 0 ] && ktap_diag "$peer answers ($(grep -o 'time=[0-9.]* ms' "$KTAP_TMP/ping"))"
		fi
		j=$((j + 1))
	done
	ktap_diag "eth0 packets: rx $(cat /sys/class/net/eth0/statistics/rx_packets) tx $(cat /sys/class/net/eth0/statistics/tx_packets)"
	ktap_result "private network: every peer answers ping" $rc

	# Shared disk: our marker at sector N of the last 64 KiB of vda, then wait for all.
	base=$(($(dev_sectors vda) - 128))
	amf-iotool write --dev /dev/vda --seed 77 --gen 1 --start $((base + AMF_NODE)) --count 1 >/dev/null
	deadline=$(($(date +%s) + 90))
	until amf-iotool verify --dev /dev/vda --seed 77 --gen 1 --start "$base" --count "$AMF_NODES" >"$KTAP_TMP/sv" 2>&1; do
		[ "$(date +%s)" -ge $deadline ] && break
		sleep 1
	done
	ktap_diag_file "$KTAP_TMP/sv"
	ktap_result "shared disk: every guest's O_DIRECT write is visible here" $([ "$(date +%s)" -lt $deadline ] && echo 0 || echo 1)
else
	ktap_skip "private network: every peer answers ping" "single guest"
	ktap_skip "shared disk: every guest's O_DIRECT write is visible here" "single guest"
fi

ktap_done
