# SPDX-License-Identifier: GPL-2.0
# Cluster helpers for multi-guest suites (busybox sh; vm.sh --guests N --extra cluster).
# Source after /amf/lib/ktap.sh:
#
#   cluster_node_id             this guest's corosync (and DLM) node id: AMF_NODE + 1
#   cluster_start NAME          corosync for the cluster NAME (more `amfctl cluster-conf`
#                               options in CLUSTER_CONF_OPTS), until quorate; then
#                               dlm_controld, until the kernel DLM has this node's address
#                               (configfs comms/<id>/local) and recover_callbacks is 1.
#                               Status 0, or non-zero after diagnostics (the logs' tails)
#   cluster_wait_members N [S]  corosync's membership has N nodes and is quorate (S s, 60)
#   cluster_stop                stop dlm_controld, then corosync (each with SIGTERM, waited
#                               for). Call it after every lockspace is gone (dm devices
#                               removed, dlm_tool leave): dlm_controld ignores SIGTERM while
#                               lockspaces exist, and status 1 says so
#   cluster_barrier G           all AMF_NODES guests (the first CLUSTER_NODES ones when set:
#                               the survivors once the last guests died) meet: G is the barrier's number, the
#                               same on every guest, increasing (1, 2, 3...). Status 1 on
#                               timeout (CLUSTER_BARRIER_TIMEOUT, 300 s), naming the guests
#                               missing (0-based guest numbers)
#   cluster_diag                ktap_diag lines: the tails of corosync's, dlm_controld's logs
#   until_ok SEC CMD...         runs CMD every second until it succeeds (status 1 after SEC
#                               seconds); WAITED: the seconds it took
#   st VOL FIELD                one field of the cluster part of an amf volume's status
#                               (state members requests cached blocking waits deaths)
#   cluster_barrier_at S I N G  a barrier of N guests (not necessarily all) on sectors S..S+N-1
#                               of the barrier disk, this guest being the I-th (0-based);
#                               G as for cluster_barrier. Keep S >= 8 (0.. is cluster_barrier's)
#   cluster_note S TEXT         TEXT (one line, < 512 bytes) to sector S of the barrier disk,
#                               O_DIRECT: a message other guests (or a later boot) read with
#   cluster_read_note S         the line in sector S (empty if none was written)
#
# The cluster: AMF_NODES guests; guest i (AMF_NODE, 0-based) has address 10.199.0.(i+1)
# (vm.sh's private network) and node id i+1. corosync.conf comes from
# `amfctl cluster-conf`; logs in /tmp/cluster/ (corosync.log, corosync.out,
# dlm_controld.log). dlm_controld runs with --enable_fencing 0: the test guests have no fence
# device, and a test kills a guest by killing its QEMU process (it is dead for good). That
# is only acceptable in tests (Documentation/admin-guide.rst, "Cluster set-up").
#
# The barrier needs a dedicated shared disk, the LAST virtio disk of the run: suites that use
# it get `--disk 8M` as their last vm.sh disk (CLUSTER_BARRIER_DEV overrides). Guest i
# writes generation G to its sector i with O_DIRECT and polls sectors 0..AMF_NODES-1 with
# O_DIRECT until every guest's shows >= G (`amf-iotool barrier`).

CLUSTER_LOGDIR=/tmp/cluster
CLUSTER_NAME=
CLUSTER_COROSYNC_PID=
CLUSTER_DLM_PID=
CLUSTER_DLMCFG=/sys/kernel/config/dlm/cluster
mkdir -p "$CLUSTER_LOGDIR"

cluster_node_id() { echo $((AMF_NODE + 1)); }

# cluster_tail FILE [N]: the last N (20) lines of FILE as diagnostics.
cluster_tail() {
	if [ -s "$1" ]; then
		ktap_diag "--- tail of $1:"
		tail -n "${2:-20}" "$1" | sed 's/^/#   /'
	else
		ktap_diag "--- $1: empty or missing"
	fi
}

cluster_diag() {
	cluster_tail "$CLUSTER_LOGDIR/corosync.log"
	cluster_tail "$CLUSTER_LOGDIR/corosync.out" 5
	cluster_tail "$CLUSTER_LOGDIR/dlm_controld.log" 30
}

# cluster_alive PID: the process runs.
cluster_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# cluster_wait_members N [SEC]: corosync-quorumtool -s shows N nodes and quorate.
cluster_wait_members() {
	_cw_end=$(($(date +%s) + ${2:-60}))
	while :; do
		corosync-quorumtool -s >"$CLUSTER_LOGDIR/quorum" 2>&1
		if grep -q '^Quorate: *Yes' "$CLUSTER_LOGDIR/quorum" &&
			grep -q "^Nodes: *$1\$" "$CLUSTER_LOGDIR/quorum"; then
			return 0
		fi
		if [ "$(date +%s)" -ge $_cw_end ]; then
			ktap_diag "corosync membership did not reach $1 nodes, quorate, in ${2:-60} s:"
			ktap_diag_file "$CLUSTER_LOGDIR/quorum"
			return 1
		fi
		sleep 1
	done
}

cluster_start() {
	CLUSTER_NAME=$1
	_id=$(cluster_node_id)
	mkdir -p "$CLUSTER_LOGDIR" /etc/corosync /var/lib/corosync /var/log/cluster
	if [ -z "$AMF_IP" ]; then
		ktap_diag "cluster_start: no amf.ip; a cluster needs vm.sh's private network (--guests N)"
		return 1
	fi
	_nodes=
	_i=0
	while [ $_i -lt "$AMF_NODES" ]; do
		_nodes="$_nodes --node $((_i + 1))=10.199.0.$((_i + 1))"
		_i=$((_i + 1))
	done
	# shellcheck disable=SC2086 # one word per option
	# shellcheck disable=SC2086 # CLUSTER_CONF_OPTS: more cluster-conf options, word-split
	if ! amfctl cluster-conf --name "$CLUSTER_NAME" $_nodes ${CLUSTER_CONF_OPTS:-} --logfile "$CLUSTER_LOGDIR/corosync.log" \
		>/etc/corosync/corosync.conf 2>"$CLUSTER_LOGDIR/amfctl.err"; then
		ktap_diag "cluster_start: amfctl cluster-conf refused the cluster:"
		ktap_diag_file "$CLUSTER_LOGDIR/amfctl.err"
		return 1
	fi

	# corosync in the foreground, in the background: its pid is ours to stop.
	_t0=$(date +%s)
	corosync -f >"$CLUSTER_LOGDIR/corosync.out" 2>&1 &
	CLUSTER_COROSYNC_PID=$!
	_end=$((_t0 + ${CLUSTER_QUORUM_TIMEOUT:-60}))
	until corosync-quorumtool -s >"$CLUSTER_LOGDIR/quorum" 2>&1; do
		if ! cluster_alive "$CLUSTER_COROSYNC_PID"; then
			ktap_diag "cluster_start: corosync exited:"
			cluster_diag
			CLUSTER_COROSYNC_PID=
			return 1
		fi
		if [ "$(date +%s)" -ge $_end ]; then
			ktap_diag "cluster_start: corosync not quorate after ${CLUSTER_QUORUM_TIMEOUT:-60} s:"
			ktap_diag_file "$CLUSTER_LOGDIR/quorum"
			cluster_diag
			return 1
		fi
		sleep 1
	done
	_t1=$(date +%s)

	# dlm_controld (foreground, in the background), until it configured the kernel DLM: a
	# lockspace created before comms/<id>/local exists fails with -ENOTCONN.
	dlm_controld --foreground --daemon_debug --enable_fencing 0 >"$CLUSTER_LOGDIR/dlm_controld.log" 2>&1 &
	CLUSTER_DLM_PID=$!
	_end=$(($(date +%s) + ${CLUSTER_DLM_TIMEOUT:-30}))
	until [ -e "$CLUSTER_DLMCFG/comms/$_id/local" ]; do
		if ! cluster_alive "$CLUSTER_DLM_PID"; then
			ktap_diag "cluster_start: dlm_controld exited:"
			cluster_diag
			CLUSTER_DLM_PID=
			return 1
		fi
		if [ "$(date +%s)" -ge $_end ]; then
			ktap_diag "cluster_start: no $CLUSTER_DLMCFG/comms/$_id/local after ${CLUSTER_DLM_TIMEOUT:-30} s:"
			find "$CLUSTER_DLMCFG" 2>&1 | head -20 | sed 's/^/#   /'
			cluster_diag
			return 1
		fi
		sleep 1
	done
	_rc=$(cat "$CLUSTER_DLMCFG/recover_callbacks" 2>/dev/null)
	_cn=$(cat "$CLUSTER_DLMCFG/cluster_name" 2>/dev/null)
	if [ "$_rc" != 1 ] || [ "$_cn" != "$CLUSTER_NAME" ]; then
		ktap_diag "cluster_start: kernel DLM recover_callbacks '$_rc' (want 1), cluster_name '$_cn' (want '$CLUSTER_NAME')"
		cluster_diag
		return 1
	fi
	ktap_diag "cluster $CLUSTER_NAME: node $_id quorate after $((_t1 - _t0)) s, DLM configured after $(($(date +%s) - _t0)) s"
	return 0
}

# cluster_kill NAME PID SIGNAL-WAIT: SIGTERM, then wait up to SIGNAL-WAIT seconds for PID.
cluster_kill() {
	cluster_alive "$2" || return 0
	kill -TERM "$2" 2>/dev/null
	_n=0
	while cluster_alive "$2"; do
		_n=$((_n + 1))
		if [ $_n -gt $(($3 * 5)) ]; then
			ktap_diag "cluster_stop: $1 ($2) still runs $3 s after SIGTERM"
			return 1
		fi
		sleep 0.2
	done
	return 0
}

cluster_stop() {
	_st=0
	: "${CLUSTER_DLM_PID:=$(pidof dlm_controld)}"
	: "${CLUSTER_COROSYNC_PID:=$(pidof corosync)}"
	if cluster_alive "$CLUSTER_DLM_PID"; then
		_ls=$(dlm_tool ls 2>/dev/null | awk '$1 == "name" { printf "%s ", $2 }')
		if [ -n "$_ls" ]; then
			ktap_diag "cluster_stop: lockspaces still exist: $_ls(dlm_controld would ignore SIGTERM)"
			return 1
		fi
		cluster_kill dlm_controld "$CLUSTER_DLM_PID" 10 || _st=1
	fi
	if [ $_st -eq 0 ]; then
		cluster_kill corosync "$CLUSTER_COROSYNC_PID" 20 || _st=1
	fi
	[ $_st -eq 0 ] || cluster_diag
	if [ $_st -eq 0 ]; then
		CLUSTER_DLM_PID=
		CLUSTER_COROSYNC_PID=
	fi
	return $_st
}

# The barrier disk: the virtio disk with the highest vm.sh index (serial amf-d<i>), else the
# last in name order.
cluster_barrier_dev() {
	if [ -n "${CLUSTER_BARRIER_DEV:-}" ]; then
		echo "$CLUSTER_BARRIER_DEV"
		return 0
	fi
	_best=
	_bi=-1
	for _d in /sys/block/vd*; do
		[ -e "$_d" ] || continue
		_s=$(cat "$_d/serial" 2>/dev/null)
		_x=${_s#amf-d}
		case "$_x" in '' | *[!0-9]*) continue ;; esac
		if [ "$_x" -gt "$_bi" ]; then
			_bi=$_x
			_best=${_d##*/}
		fi
	done
	if [ -z "$_best" ]; then
		# vda..vdz, then vdaa...: shorter names first.
		_best=$(for _d in /sys/block/vd*; do [ -e "$_d" ] && echo "${#_d} ${_d##*/}"; done |
			sort -n -k1,1 -k2,2 | tail -1 | cut -d' ' -f2)
	fi
	[ -n "$_best" ] || return 1
	echo "/dev/$_best"
}

cluster_barrier() {
	_bd=$(cluster_barrier_dev) || {
		ktap_diag "cluster_barrier $1: no virtio disk for the barrier (vm.sh --disk 8M, last)"
		return 1
	}
	amf-iotool barrier --dev "$_bd" --sector 0 --node "$AMF_NODE" --nodes "${CLUSTER_NODES:-$AMF_NODES}" --gen "$1" \
		--timeout "${CLUSTER_BARRIER_TIMEOUT:-300}" >"$CLUSTER_LOGDIR/barrier" 2>&1
	_br=$?
	# Its report lines are "# ..." already; an error message is not.
	sed 's/^\([^#]\)/# \1/' "$CLUSTER_LOGDIR/barrier"
	return $_br
}

# cluster_barrier_at SECTOR INDEX COUNT GEN: cluster_barrier among COUNT guests only.
cluster_barrier_at() {
	_bd=$(cluster_barrier_dev) || {
		ktap_diag "cluster_barrier_at $1 $2 $3 $4: no virtio disk for the barrier"
		return 1
	}
	amf-iotool barrier --dev "$_bd" --sector "$1" --node "$2" --nodes "$3" --gen "$4" \
		--timeout "${CLUSTER_BARRIER_TIMEOUT:-300}" >"$CLUSTER_LOGDIR/barrier" 2>&1
	_br=$?
	sed 's/^\([^#]\)/# \1/' "$CLUSTER_LOGDIR/barrier"
	return $_br
}

# cluster_note SECTOR TEXT / cluster_read_note SECTOR: one line of text in a sector of the
# barrier disk, written and read with O_DIRECT (visible to every guest at once).
cluster_note() {
	_bd=$(cluster_barrier_dev) || return 1
	printf '%-511.511s\n' "$2" | dd of="$_bd" bs=512 seek="$1" count=1 oflag=direct conv=notrunc status=none
}
cluster_read_note() {
	_bd=$(cluster_barrier_dev) || return 1
	dd if="$_bd" bs=512 skip="$1" count=1 iflag=direct status=none | tr -d '\000' | head -1 | sed 's/ *$//'
}

# st VOL FIELD: one field of the cluster part of `dmsetup status VOL`
# (Documentation/table-syntax.rst, "Status"):
#   <level> <#devs> <health> <ratio> <action> <mismatch> cluster <state> <members>
#   <requests> <cached> <blocking> <waits> <deaths>
st() {
	dmsetup status "$1" | awk -v f="$2" '{
		for (i = 1; i <= NF; i++) if ($i == "cluster") break
		m["state"] = i + 1; m["members"] = i + 2; m["requests"] = i + 3; m["cached"] = i + 4
		m["blocking"] = i + 5; m["waits"] = i + 6; m["deaths"] = i + 7
		print $(m[f])
	}'
}

# until_ok SEC CMD...: runs CMD every second until it succeeds (status 1 after SEC
# seconds); WAITED: the seconds it took.
until_ok() {
	_s=$1
	shift
	_t0=$(date +%s)
	until "$@" >/dev/null 2>&1; do
		[ $(($(date +%s) - _t0)) -ge "$_s" ] && { WAITED=$_s; return 1; }
		sleep 1
	done
	WAITED=$(($(date +%s) - _t0))
}

# verify_bad ARGS...: `amf-iotool verify ARGS`; on a mismatch prints the end of its report,
# sets VERIFY_BAD to the number of bad blocks it counted (1 if it said none) and fails.
verify_bad() {
	VERIFY_BAD=0
	amf-iotool verify "$@" >"$KTAP_TMP/v" 2>&1 && return 0
	tail -6 "$KTAP_TMP/v"
	VERIFY_BAD=$(sed -n 's/.*: \([0-9]*\) bad.*/\1/p' "$KTAP_TMP/v" | tail -1)
	VERIFY_BAD=${VERIFY_BAD:-1}
	return 1
}

# The replication transport words of a table (empty for TCP, the default) and their count
# in <#params>: AMF_TRANSPORT=rdma (amf.env) runs the replication suites over soft-RoCE.
repl_transport() { [ "${AMF_TRANSPORT:-tcp}" = rdma ] && echo " transport rdma"; }
repl_transport_words() { if [ "${AMF_TRANSPORT:-tcp}" = rdma ]; then echo 2; else echo 0; fi; }
