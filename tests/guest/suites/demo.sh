# SPDX-License-Identifier: GPL-2.0
# The `make demo` walk-through: an amf volume over four member disks, created with dmsetup,
# written and verified, suspended and resumed, inspected, removed. Each step says what it does.
. /amf/lib/ktap.sh

say() { echo "# demo: $*"; }
ktap_plan 7

say "loading dm-amf.ko; the kernel now knows the target type 'amf':"
ktap_check "load dm-amf" amf_load
dmsetup targets | grep amf | sed 's/^/#   /'

M=$(dev_sectors vdb)
LEN=$(( (M - 2048) / 128 * 128 * 4 ))
TABLE="0 $LEN amf raid0 1 128 4 /dev/vdb 2048 /dev/vdc 2048 /dev/vdd 2048 /dev/vde 2048"
say "creating volume 'vol0' (RAID0, 64 KiB chunks, 4 members, data from sector 2048):"
say "  dmsetup create vol0 --table \"$TABLE\""
ktap_check "dmsetup create vol0" dm_create vol0 "$TABLE"

say "writing $((LEN / 2048)) MiB of seeded data through /dev/mapper/vol0 with O_DIRECT..."
ktap_check "write the whole volume" amf-iotool write --dev /dev/mapper/vol0 --seed 7 --gen 1
ktap_check "read it back and verify every sector" amf-iotool verify --dev /dev/mapper/vol0 --seed 7 --gen 1

say "suspending and resuming the volume (what a table reload does):"
ktap_check "suspend + resume keep the data" sh -c 'dmsetup suspend vol0 && dmsetup resume vol0 &&
	amf-iotool verify --dev /dev/mapper/vol0 --seed 7 --gen 1'

say "dmsetup table vol0:   $(dmsetup table vol0)"
say "dmsetup status vol0:  $(dmsetup status vol0)"
say "io hints: minimum_io_size=$(cat /sys/block/dm-0/queue/minimum_io_size)" \
	"optimal_io_size=$(cat /sys/block/dm-0/queue/optimal_io_size)"
ktap_check "status shows 4 healthy members" sh -c 'dmsetup status vol0 | grep -q " amf raid0 4 AAAA "'

say "removing the volume and unloading the module"
ktap_check "remove + rmmod" sh -c 'dmsetup remove vol0 && rmmod dm_amf'
ktap_done
