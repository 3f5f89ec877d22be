# SPDX-License-Identifier: GPL-2.0
# Failover kill matrix (Documentation/table-syntax.rst, "Replication peers" and the
# fail_after message): three guests serve a raid5 and a raid6 group in cluster mode with
# replication peers, over the same shared disks (as the cluster suite, 5 members each), and
# nodes 2 and 3 die in turn in the middle of a write, at every step of it, while node 1
# checks that the survivors took the operation over and lost nothing.
#
#   - node 1 never dies: it is the checker (and the recoverer: the lowest live node id) and
#     writes its own stripes of both volumes the whole time (4 stripes each, one chunk a
#     write, a new generation a pass)
#   - kill point r (round r) has a victim: node 2 when r is odd, node 3 when even, so one
#     boots again while the other is the next victim. The victim and node 1 meet (a barrier
#     of two); the victim writes its 2 stripes of the point's volume, a chunk a write, with
#     a tag of its own (seed 100+r, generation 1, all acknowledged); sets `fail_after <step>`
#     (not while the other node is creating its volumes: see below); starts one more write
#     (generation 2) of the point's kind to its first stripe in the background; waits for
#     the kernel's "stopped dead after <step> (fault injection)"; reports on the barrier
#     disk; and asks vm.sh to power-cycle it (AMF-RESTART-ME). The network point cuts the
#     victim's eth0 first (a partition, then the power loss).
#   - quorum: corosync with auto_tie_breaker, so that node 1 keeps quorum alone when the
#     victim dies before the other node is back: from a partition of two to one of one is a
#     "half - 1" split of 3 expected votes, won by the partition with the lowest node id.
#   - node 1 waits until both volumes saw the death (cluster deaths +1, ready), the takeover
#     ended (records_held 0 on both, the kernel's "takeover ... done" line for both, and on
#     the point's volume replayed +1 after prepared/data/parity, +0 after intent/done),
#     then checks: every acknowledged block holds its tag; the in-flight write's blocks are
#     each either tag (verify-any) and as the protocol says: not written after intent (the
#     Intent alone is dropped), written after every later step (the recoverer rewrites a
#     Prepared operation; data, parity and done had it on disk); scrub of the victim's
#     stripes clean; node 1 writes those stripes itself; its own writer went on after the
#     takeover and never failed. One result per kill point.
#   - the victim boots again (AMF_BOOT > 0) and waits until node 1 noted on the barrier disk
#     that it saw the death ("seen <r>", or "not seen <r>" after its 120 s): a node that
#     rejoins corosync before the survivors' membership dropped its old incarnation is
#     seen by dlm_controld as a process that left the lockspaces' groups (CPG_REASON_PROCDOWN)
#     and removed from the cluster again ("tell corosync to remove nodeid"); then corosync,
#     dlm_controld, key, the same tables
#     (no format), replication up to the live peers, while the next rounds go on; it notes
#     "joining <r+1>" on the barrier disk before it creates its volumes and "joined <r+1>"
#     once connected (the next victim does not die between the two: a death during the
#     DLM join of a lockspace is not what this matrix tests), and takes its next turn.
#     Where the run is comes from the barrier disk: a victim notes "died <r>" before it
#     asks for the restart, and reads it back after.
#   - at the end all three meet, node 1 checks its own stripes and scrubs both groups, all
#     remove their volumes and stop the cluster.
#
# Kill points (default; make check runs the six of tests/plan): raid5 rmw after intent,
# prepared, data, parity, done; raid5 rcw (3 of 4 data chunks) after prepared, data; raid5
# full stripe after prepared, parity; raid6 rmw after data, parity; raid5 rmw after data with
# the network cut. amf.env= knobs:
#   FAILOVER_FULL=1          every kind (raid5 rmw rcw full, raid6 rmw full) x every step,
#                            and the network point (26 points, about 18 min: give --timeout 1800)
#   FAILOVER_POINTS=p+p+...  these points only: <r5|r6>:<rmw|rcw|full>:<step>[:net]
#                            (ignored with FAILOVER_FULL=1: make check-full sets both)
#   FAILOVER_DRY=1           the rig without replication (for a module without it): tables
#                            without peers, no key, no fail_after (the last write completes),
#                            the death checked through the cluster status only
#
# AMF_TRANSPORT=rdma (amf.env, as make check boots it): every guest gets soft-RoCE (rxe0 on
# eth0) and the raid6 volume's channel runs over RDMA (`transport rdma`), raid5's over TCP:
# the same kill points, checks and takeover on both transports; a network point on raid6
# cuts the RDMA link mid-stream.
#
# Node 1 prints the summary line
#   failover: K kill points, L lost acked writes, M parity mismatches, max takeover T ms
#
# Disks: vda..vde (32 MiB, shared), the barrier disk last (8 MiB). raid5 a0..a4 = first
# 16 MiB of vda..vde, raid6 b0..b4 = the last 16 MiB; 4 MiB of data a member, chunk 32 KiB,
# 128 stripes. Stripes 0..3 are node 1's, 20..21 node 2's, 40..41 node 3's (both volumes).
# Barrier disk: sectors 0..2 cluster_barrier (all three, set-up and end), 8..9 node 1 with
# node 2, 16..17 node 1 with node 3 (gen = round), 64 + guest a node's state ("joining <r>",
# "joined <r>", "died <r>"), 128 + r the victim's report of round r, 192 + r node 1's
# "seen <r>" of the victim's death in round r.
# shellcheck disable=SC1091 # the guest's paths
. /amf/lib/ktap.sh
. /amf/lib/raid.sh
. /amf/lib/cluster.sh

CL=amftest
ID=$(cluster_node_id)
N=$AMF_NODES
BOOT=${AMF_BOOT:-0}
DRY=${FAILOVER_DRY:-0}
U5=f05a5a5a-0000-4000-8000-000000000005
U6=f06b6b6b-0000-4000-8000-000000000006
KEY=dm-amf:fo
SECRET="dm-amf failover test secret 7c41d0e2"
PORT5=7790
PORT6=7791
CHUNK=64 # sectors (32 KiB)
LEN5=$((8192 * 4))
LEN6=$((8192 * 3))
SS5=$((CHUNK * 4)) # data sectors a stripe
SS6=$((CHUNK * 3))
OWN=4   # node 1's stripes: 0..OWN-1
VST=2   # a victim's stripes
BS=8    # 4 KiB
ST_SECTOR=64
REPORT_SECTOR=128
SEEN_SECTOR=192
# shellcheck disable=SC2034 # read by lib/cluster.sh
CLUSTER_BARRIER_TIMEOUT=10 # a slice of meet()
# Found once: the notes are read often.
# shellcheck disable=SC2034 # read by lib/cluster.sh
CLUSTER_BARRIER_DEV=$(cluster_barrier_dev)
OWNDIR=/tmp/fo-own

# ------------------------------------------------------------------ the matrix
if [ -n "${FAILOVER_POINTS:-}" ] && [ "${FAILOVER_FULL:-0}" != 1 ]; then
	POINTS=$(echo "$FAILOVER_POINTS" | tr '+,' '  ')
elif [ "${FAILOVER_FULL:-0}" = 1 ]; then
	POINTS=
	for k in rmw rcw full; do
		for s in intent prepared data parity 'done'; do POINTS="$POINTS r5:$k:$s"; done
	done
	for k in rmw full; do
		for s in intent prepared data parity 'done'; do POINTS="$POINTS r6:$k:$s"; done
	done
	POINTS="$POINTS r5:rmw:data:net"
else
	POINTS="r5:rmw:intent r5:rmw:prepared r5:rmw:data r5:rmw:parity r5:rmw:done
		r5:rcw:prepared r5:rcw:data r5:full:prepared r5:full:parity r6:rmw:data r6:rmw:parity
		r5:rmw:data:net"
fi
# shellcheck disable=SC2086 # a word list
set -- $POINTS
R=$#

# point R: PV (r5/r6), PK (rmw/rcw/full), PS (step), PN (1: network cut), PNAME, PSS (data
# sectors a stripe of PV).
point() {
	_n=0
	for _p in $POINTS; do
		_n=$((_n + 1))
		[ $_n -eq "$1" ] && break
	done
	PV=${_p%%:*}
	_r=${_p#*:}
	PK=${_r%%:*}
	_r=${_r#*:}
	PS=${_r%%:*}
	PN=0
	[ "$_r" = "$PS:net" ] && PN=1
	case $PV in r5) PSS=$SS5 PLEVEL=raid5 ;; *) PSS=$SS6 PLEVEL=raid6 ;; esac
	PNAME="$PLEVEL $PK after $PS"
	[ $PN -eq 1 ] && PNAME="$PNAME, network cut"
	return 0
}

# The victim of round R (node id), the other one, a victim's first stripe.
victim_of() { if [ $(($1 % 2)) -eq 1 ]; then echo 2; else echo 3; fi; }
region_of() { echo $((20 * ($1 - 1))); }

# next_round NODE FROM: the first round >= FROM whose victim is NODE, or 0.
next_round() {
	_r=$2
	while [ "$_r" -le $R ]; do
		[ "$(victim_of "$_r")" -eq "$1" ] && { echo "$_r"; return 0; }
		_r=$((_r + 1))
	done
	echo 0
}

# The write of a point: IS (start sector) and IC (sectors) in a stripe starting at sector A.
inflight() {
	case $PK in
	rmw) IS=$(($1 + CHUNK)) IC=$BS ;;        # one 4 KiB block of data chunk 1
	rcw) IS=$1 IC=$((CHUNK * 3)) ;;          # data chunks 0..2 of 4 (raid5)
	*) IS=$1 IC=$PSS ;;                      # the whole stripe
	esac
}

# vst VOL: VOL's status in VS_STATE VS_MEMBERS VS_DEATHS (cluster part) VS_UP VS_PEERS
# VS_HELD VS_REPLAYED VS_TMS (replication part; 0 without one), with one dmsetup (forks are
# what costs in the emulated guests); VS_STATE "none" when VOL is missing.
# (Documentation/table-syntax.rst, "Status": ... cluster <state> <members> <requests>
# <cached> <blocking> <waits> <deaths> replication <up> <peers> <records_sent>
# <records_held> <bad_frames> <auth_failures> <replayed> <last_takeover_ms>)
vst() {
	eval "$(dmsetup status "$1" 2>/dev/null | awk '
		{
			c = 0; r = 0
			for (i = 1; i <= NF; i++) { if ($i == "cluster") c = i; if ($i == "replication") r = i }
			if (c == 0) next
			printf "VS_STATE=%s VS_MEMBERS=%d VS_DEATHS=%d ", $(c + 1), $(c + 2), $(c + 7)
			if (r) printf "VS_UP=%d VS_PEERS=%d VS_HELD=%d VS_REPLAYED=%d VS_TMS=%d\n", $(r + 1), $(r + 2), $(r + 4), $(r + 7), $(r + 8)
			else print "VS_UP=0 VS_PEERS=0 VS_HELD=0 VS_REPLAYED=0 VS_TMS=0"
			found = 1
		}
		END { if (!found) print "VS_STATE=none VS_MEMBERS=0 VS_DEATHS=0 VS_UP=0 VS_PEERS=0 VS_HELD=0 VS_REPLAYED=0 VS_TMS=0" }')"
}

# klog TEXT: a line in the kernel log (the consoles' timestamps make the rounds' timelines).
klog() { echo "failover: node $ID: $*" >/dev/kmsg; }

# poll SEC INTERVAL CMD...: until_ok with a shorter interval (for the waits on the
# critical path of a round); WAITED: the seconds it took.
poll() {
	_ps=$1 _pi=$2
	shift 2
	_pt=$(date +%s)
	until "$@" >/dev/null 2>&1; do
		[ $(($(date +%s) - _pt)) -ge "$_ps" ] && { WAITED=$_ps; return 1; }
		sleep "$_pi"
	done
	WAITED=$(($(date +%s) - _pt))
}

# A node whose set-up failed stops the run (the others skip what is left, without waiting
# for it at barriers) instead of every barrier and wait timing out in turn.
ABORT_SECTOR=60
aborted() { case $(cluster_read_note $ABORT_SECTOR) in abort*) return 0 ;; esac; return 1; }

# ------------------------------------------------------------------ the plan
if [ "$N" -ne 3 ]; then
	ktap_plan 1
	ktap_fail "failover needs 3 guests (vm.sh --guests 3), not $N"
	ktap_done
fi
# Where this boot starts: round 1 on the first boot, after its death on the others.
FIRST=1
if [ "$BOOT" -gt 0 ]; then
	_st=$(cluster_read_note $((ST_SECTOR + AMF_NODE)))
	case $_st in
	"died "[0-9]*) FIRST=$((${_st#died } + 1)) ;;
	*)
		# Victims alternate: node 2 died in round 2K-1, node 3 in round 2K.
		FIRST=$((2 * BOOT - (3 - ID) + 1))
		ktap_diag "no 'died <round>' note of node $ID on the barrier disk ('$_st'): round $FIRST from the boot count"
		;;
	esac
fi
MINE=0
[ "$ID" -ne 1 ] && MINE=$(next_round "$ID" "$FIRST")
SETUP=6
if [ "$ID" -eq 1 ]; then
	ktap_plan $((SETUP + R + 5))
elif [ "$MINE" -gt 0 ]; then
	ktap_plan $((SETUP + 1))
else
	ktap_plan $((SETUP + 2))
fi
ktap_diag "node $ID, boot $BOOT: $R kill points, this boot from round $FIRST$([ "$MINE" -gt 0 ] && echo ", victim in round $MINE")$([ "$DRY" = 1 ] && echo ' (dry run: no replication)')"

# meet CMD...: a barrier command, retried in slices of 10 s (CLUSTER_BARRIER_TIMEOUT)
# for 240 s at most, given up at once when the run stopped (see aborted).
meet() {
	_mt=$(date +%s)
	until "$@"; do
		aborted && { echo "# the run stopped: $(cluster_read_note $ABORT_SECTOR)"; return 1; }
		[ $(($(date +%s) - _mt)) -ge 240 ] && return 1
	done
	return 0
}
# bar G [NAME]: all three meet (set-up and end only; the rounds use pairs).
bar() {
	meet cluster_barrier "$1" >"$KTAP_TMP/bar" 2>&1 ||
		{ ktap_diag "barrier $1 (${2:-}) failed:"; ktap_diag_file "$KTAP_TMP/bar"; }
}
# pair G VICTIM: node 1 and VICTIM meet (node 1 is index 0).
pair() {
	meet cluster_barrier_at $((8 * ($2 - 1))) "$([ "$ID" -eq 1 ] && echo 0 || echo 1)" 2 "$1"
}

# ------------------------------------------------------------------ set-up
amf_load >"$KTAP_TMP/ld" 2>&1
ktap_result "load dm-amf" $? "$(cat "$KTAP_TMP/ld")"

# Node 1 keeps quorum alone (the others die one at a time): see the header.
# shellcheck disable=SC2034 # read by lib/cluster.sh
CLUSTER_CONF_OPTS="--auto-tie-breaker"
# A restarted victim joins only once node 1 saw it die (see the header).
if [ "$BOOT" -gt 0 ] && [ "$ID" -ne 1 ]; then
	seen() { [ -n "$(cluster_read_note $((SEEN_SECTOR + FIRST - 1)))" ]; }
	if until_ok 240 seen; then
		ktap_diag "node 1: '$(cluster_read_note $((SEEN_SECTOR + FIRST - 1)))' $WAITED s after this boot's start"
	else
		ktap_diag "no note from node 1 on round $((FIRST - 1)) in $WAITED s: joining anyway"
	fi
fi
ktap_check "corosync + dlm_controld: node $ID of $N quorate, DLM configured (boot $BOOT)" cluster_start "$CL"
[ "$BOOT" -eq 0 ] && bar 1 start

key() {
	printf '%s\n' "$SECRET" >/tmp/fo.secret
	amfctl key-add "$KEY" </tmp/fo.secret || return 1
	grep -F "$KEY" /proc/keys || true
}
if [ "$DRY" = 1 ]; then
	ktap_skip "shared secret added as logon key $KEY" "dry run"
else
	ktap_check "shared secret added as logon key $KEY" key
fi

slices() {
	i=0
	for d in vda vdb vdc vdd vde; do
		dm_create "a$i" "0 32768 linear /dev/$d 0" || { echo "a$i: $DM_OUT"; return 1; }
		dm_create "b$i" "0 32768 linear /dev/$d 32768" || { echo "b$i: $DM_OUT"; return 1; }
		i=$((i + 1))
	done
	# The disks are new (all zeroes): parity is consistent from the start.
	if [ "$ID" -eq 1 ] && [ "$BOOT" -eq 0 ]; then
		amfctl format --level raid5 --chunk 32K --uuid "$U5" --size 4M \
			/dev/mapper/a0 /dev/mapper/a1 /dev/mapper/a2 /dev/mapper/a3 /dev/mapper/a4 || return 1
		amfctl format --level raid6 --chunk 32K --uuid "$U6" --size 4M \
			/dev/mapper/b0 /dev/mapper/b1 /dev/mapper/b2 /dev/mapper/b3 /dev/mapper/b4 || return 1
	fi
}
ktap_check "dm-linear slices$([ "$ID" -eq 1 ] && [ "$BOOT" -eq 0 ] && echo ', groups formatted')" slices
[ "$BOOT" -eq 0 ] && bar 2 format
# The victim of the round waits while this note says so (see the header).
[ "$ID" -ne 1 ] && cluster_note $((ST_SECTOR + AMF_NODE)) "joining $FIRST"

# peers PORT [TRANSPORT]: the replication parameters (7 words in <#params>, and the
# transport's; raid6 takes the RDMA transport with AMF_TRANSPORT=rdma, raid5 always TCP).
peers() {
	if [ "$DRY" = 1 ]; then
		echo ""
	else
		echo " peers 3 1@10.199.0.1:$1 2@10.199.0.2:$1 3@10.199.0.3:$1 auth_key $KEY${2:-}"
	fi
}
# np N [TRANSPORT_WORDS]: <#params> of a table with N words before the replication ones.
np() { if [ "$DRY" = 1 ]; then echo "$1"; else echo $(($1 + 7 + ${2:-0})); fi; }
t5() {
	echo "0 $LEN5 amf raid5 $(np 7) $CHUNK group $U5 cluster $CL node $ID$(peers $PORT5) 5" \
		"/dev/mapper/a0 8192 /dev/mapper/a1 8192 /dev/mapper/a2 8192 /dev/mapper/a3 8192 /dev/mapper/a4 8192"
}
t6() {
	echo "0 $LEN6 amf raid6 $(np 9 "$(repl_transport_words)") $CHUNK group $U6 cluster $CL node $ID lock_stripes 2$(peers $PORT6 "$(repl_transport)") 5" \
		"/dev/mapper/b0 8192 /dev/mapper/b1 8192 /dev/mapper/b2 8192 /dev/mapper/b3 8192 /dev/mapper/b4 8192"
}
create() {
	kmsg_mark
	dm_create r5 "$(t5)" || { echo "r5: $DM_OUT"; dmesg_since_mark | grep -F amf | tail; return 1; }
	dm_create r6 "$(t6)" || { echo "r6: $DM_OUT"; dmesg_since_mark | grep -F amf | tail; return 1; }
	dmsetup table r5
	dmsetup table r6
}
ktap_check "raid5 x5 and raid6 x5 created$([ "$DRY" = 1 ] || echo ' with replication peers')$([ "$BOOT" -gt 0 ] && echo ' again (rejoin)')" create
[ "$BOOT" -eq 0 ] && bar 3 create

# connected: both volumes ready and (with peers) connected to every live peer (the
# lockspace's other members: a restarted node may find the next victim dead already).
vol_up() {
	vst "$1"
	[ "$VS_STATE" = ready ] || return 1
	[ "$DRY" = 1 ] && return 0
	[ "$VS_PEERS" = 2 ] && [ "$VS_UP" -ge $((VS_MEMBERS - 1)) ]
}
connected() {
	_t0=$(date +%s)
	_rc=0
	for v in r5 r6; do
		until_ok 90 vol_up $v || _rc=1
	done
	echo "r5: $(dmsetup status r5)"
	echo "r6: $(dmsetup status r6)"
	echo "after $(($(date +%s) - _t0)) s"
	return $_rc
}
# Without its volumes this node cannot take part: the run stops (a missing connection is
# only a failure: the rounds go on).
if [ "$KTAP_FAIL" -gt 0 ]; then
	cluster_note $ABORT_SECTOR "abort: the set-up of node $ID failed (boot $BOOT)"
	ktap_diag "set-up failed: the run stops (the other nodes skip the rest)"
fi
ktap_check "both volumes ready$([ "$DRY" = 1 ] || echo ', replication up to every live peer')" connected
[ "$BOOT" -eq 0 ] && bar 4 connected
[ "$ID" -ne 1 ] && cluster_note $((ST_SECTOR + AMF_NODE)) "joined $FIRST"

# ------------------------------------------------------------------ node 1's own writer
# own_loop: passes over node 1's stripes of both volumes (one chunk a write), generation
# 1, 2, ...; the last whole pass in $OWNDIR/gen, failures in $OWNDIR/err.
own_loop() {
	g=0
	while [ ! -e "$OWNDIR/stop" ]; do
		g=$((g + 1))
		for v in "r5 $SS5" "r6 $SS6"; do
			# shellcheck disable=SC2086 # two words
			set -- $v
			amf-iotool write --dev "/dev/mapper/$1" --seed 1 --gen $g --bs $CHUNK --start 0 \
				--count $((OWN * $2)) >"$OWNDIR/last" 2>&1 ||
				echo "pass $g on $1 failed at $(date +%s): $(tail -2 "$OWNDIR/last" | tr '\n' ' ')" >>"$OWNDIR/err"
		done
		echo $g >"$OWNDIR/gen.new"
		mv "$OWNDIR/gen.new" "$OWNDIR/gen"
		sleep 0.5
	done
}
own_gen() {
	_g=$(cat "$OWNDIR/gen" 2>/dev/null)
	echo "${_g:-0}"
}
own_errs() { if [ -s "$OWNDIR/err" ]; then wc -l <"$OWNDIR/err"; else echo 0; fi; }

# ------------------------------------------------------------------ a victim's round
victim() {
	r=$1
	point "$r"
	other=$((5 - ID))
	A=$(($(region_of "$ID") * PSS))
	seed=$((100 + r))
	inflight $A
	rep=
	if aborted; then
		ktap_skip "round $r: $PNAME: victim's part" "$(cluster_read_note $ABORT_SECTOR)"
		ktap_done
	fi
	ktap_diag "round $r: node $ID is the victim: $PNAME; its stripes $(region_of "$ID")..$(($(region_of "$ID") + VST - 1)) of $PV"
	pair "$r" "$ID" >"$KTAP_TMP/bar" 2>&1 || { ktap_diag_file "$KTAP_TMP/bar"; rep="$rep barrier-with-node-1-failed"; }
	t0=$(date +%s)
	if ! amf-iotool write --dev "/dev/mapper/$PV" --seed $seed --gen 1 --bs $CHUNK \
		--start $A --count $((VST * PSS)) >"$KTAP_TMP/w" 2>&1; then
		ktap_diag_file "$KTAP_TMP/w"
		rep="$rep acked-writes-failed"
	fi
	t1=$(date +%s)
	# Not while the other node creates its volumes (joins the lockspaces): its note says
	# so, or (the note was once seen stuck at "joining" for 90 s after the other node had
	# joined, cause unknown) this node's own view does: the other node is a member of both
	# lockspaces and connected to this one on both volumes, which it only is once it
	# created them both.
	all_in() {
		vst r5 && [ "$VS_MEMBERS" -eq "$N" ] && [ "$VS_UP" -eq $((N - 1)) ] &&
			vst r6 && [ "$VS_MEMBERS" -eq "$N" ] && [ "$VS_UP" -eq $((N - 1)) ]
	}
	gate() {
		case $(cluster_read_note $((ST_SECTOR + other - 1))) in
		joining*) [ "$DRY" != 1 ] && all_in ;;
		esac
	}
	until_ok 90 gate || rep="$rep node-$other-still-joining-after-90s"
	t2=$(date +%s)
	onote=$(cluster_read_note $((ST_SECTOR + other - 1)))
	kmsg_mark
	if [ "$DRY" = 1 ]; then
		amf-iotool write --dev "/dev/mapper/$PV" --seed $seed --gen 2 --start $IS --count $IC \
			>"$KTAP_TMP/w" 2>&1 || { ktap_diag_file "$KTAP_TMP/w"; rep="$rep last-write-failed"; }
	else
		dmsetup message "$PV" 0 fail_after "$PS" >"$KTAP_TMP/m" 2>&1 ||
			{ ktap_diag_file "$KTAP_TMP/m"; rep="$rep fail_after-refused"; }
		# Never completes: its output goes to a file, not to the init's pipe.
		amf-iotool write --dev "/dev/mapper/$PV" --seed $seed --gen 2 --start $IS --count $IC \
			</dev/null >/tmp/fo-inflight 2>&1 &
		# (This boot's first and only fail_after: no need to look past a mark.)
		dead() { dmesg | grep -F "stopped dead after $PS (fault injection)"; }
		if poll 30 0.2 dead; then
			ktap_diag "$(dead | tail -1)"
		else
			rep="$rep no-stopped-dead-line"
			dmesg_since_mark | tail -5 | sed 's/^/# /'
		fi
	fi
	t3=$(date +%s)
	klog "round $r: stopped dead"
	if [ $PN -eq 1 ]; then
		ip link set eth0 down || rep="$rep link-down-failed"
		noq() { corosync-quorumtool -s 2>&1 | grep -q '^Quorate: *No'; }
		until_ok 30 noq || rep="$rep still-quorate-30s-after-the-cut"
		ktap_diag "cut off, quorum lost after $WAITED s"
	fi
	if [ -z "$rep" ]; then
		rep="ok acked $((VST * PSS / CHUNK)) writes in $((t1 - t0)) s, waited $((t2 - t1)) s for node $other ($onote), dead after $((t3 - t2)) s"
	else
		rep="fail:$rep"
	fi
	cluster_note $((REPORT_SECTOR + r)) "$rep"
	cluster_note $((ST_SECTOR + AMF_NODE)) "died $r"
	touch /tmp/amf-restartme
	klog "round $r: reported, asking for the power cycle"
	case $rep in ok*) ktap_ok "round $r: $PNAME: victim's part ($rep)" ;; *) ktap_fail "round $r: $PNAME: victim's part" "$rep" ;; esac
	ktap_diag "node $ID: to be power-cycled now"
	ktap_done
}

if [ "$ID" -ne 1 ] && [ "$MINE" -gt 0 ]; then
	victim "$MINE" # does not return
fi

# ------------------------------------------------------------------ node 1: the rounds
LOST=0
MISMATCH=0
TMAX=0
POINTS_RUN=0

# scrub_count OUTFILE: the mismatched stripes amfctl scrub reported (0 if it did not say).
scrub_count() { sed -n 's/^scrub: [0-9]* stripes checked, \([0-9]*\) mismatched$/\1/p' "$1" | tail -1; }

# scrub_region VOL FIRST COUNT: scrub_ok of COUNT stripes from stripe FIRST (a multiple of
# 5, the members' count: the layout repeats every 5 stripes), members' offsets moved.
scrub_region() {
	_o=$((8192 + $2 * CHUNK))
	case $1 in
	r5) scrub_ok raid5 $CHUNK $(($3 * SS5)) /dev/mapper/a0:$_o /dev/mapper/a1:$_o /dev/mapper/a2:$_o \
		/dev/mapper/a3:$_o /dev/mapper/a4:$_o ;;
	*) scrub_ok raid6 $CHUNK $(($3 * SS6)) /dev/mapper/b0:$_o /dev/mapper/b1:$_o /dev/mapper/b2:$_o \
		/dev/mapper/b3:$_o /dev/mapper/b4:$_o ;;
	esac
}

# settled VOL DEATHS: VOL saw a death after DEATHS, is ready, holds no records.
settled() {
	vst "$1"
	[ "$VS_DEATHS" -gt "$2" ] && [ "$VS_STATE" = ready ] || return 1
	[ "$DRY" = 1 ] || [ "$VS_HELD" = 0 ]
}
taken_over() {
	settled r6 "$D6" && settled r5 "$D5" || return 1
	[ "$DRY" = 1 ] && return 0
	[ "$PV" = r5 ] || vst r6
	[ "$VS_REPLAYED" -ge $((RP0 + EXPR)) ] &&
		[ "$(dmesg_since_mark | grep -c 'takeover of dead nodes .* done')" -ge 2 ]
}

# vrange VOL SEED GEN FROM TO: strict verify, bad sectors added to BADS.
vrange() {
	[ "$5" -gt "$4" ] || return 0
	verify_bad --dev "/dev/mapper/$1" --seed "$2" --gen "$3" --start "$4" --count $(($5 - $4)) &&
		return 0
	BADS=$((BADS + VERIFY_BAD))
	return 1
}

check_point() {
	_ok=0
	# 1. the death and the takeover
	if poll 120 0.5 taken_over; then
		klog "round $r: death and takeover seen"
		echo "death seen and takeover done $WAITED s after the barrier"
		cluster_note $((SEEN_SECTOR + r)) "seen $r"
		# The membership change is a device-mapper event of both volumes.
		for v in r5 r6; do
			_ev=$(dmsetup info "$v" | sed -n 's/^Event number: *//p')
			eval "_ev0=\$EV0_$v"
			echo "$v: device-mapper event number $_ev0 -> $_ev"
			[ "${_ev:-0}" -gt "$_ev0" ] || { echo "$v: no event for the death"; _ok=1; }
		done
	else
		echo "no death and takeover in $WAITED s"
		cluster_note $((SEEN_SECTOR + r)) "not seen $r"
		_ok=1
	fi
	G0=$(own_gen)
	echo "r5: $(dmsetup status r5)"
	echo "r6: $(dmsetup status r6)"
	[ $_ok -eq 0 ] || dmesg_since_mark | grep -E 'dm-amf|dm_amf|dlm: amf|cluster:' | tail -12
	# 2. the victim's report
	reported() { [ -n "$(cluster_read_note $((REPORT_SECTOR + r)))" ]; }
	until_ok 10 reported
	rep=$(cluster_read_note $((REPORT_SECTOR + r)))
	echo "victim's report: ${rep:-none}"
	case $rep in ok*) ;; *) _ok=1 ;; esac
	# 3. acknowledged blocks; the in-flight write whole, one way or the other
	BADS=0
	vrange "$PV" $seed 1 $A $IS || _ok=1
	vrange "$PV" $seed 1 $((IS + IC)) $((A + VST * PSS)) || _ok=1
	amf-iotool verify-any --dev "/dev/mapper/$PV" --seeds $seed --max-gen 2 --start $IS --count $IC \
		>"$KTAP_TMP/va" 2>&1
	_va=$?
	cat "$KTAP_TMP/va"
	_bb=$(sed -n 's/.*; \([0-9]*\) bad of [0-9]*$/\1/p' "$KTAP_TMP/va" | tail -1)
	[ $_va -eq 0 ] || { _ok=1; BADS=$((BADS + BS * ${_bb:-1})); }
	_lost=$(((BADS + BS - 1) / BS))
	LOST=$((LOST + _lost))
	landed=$(sed -n "s/.*seed $seed: [0-9]* (gen \([0-9.]*\)).*/\1/p" "$KTAP_TMP/va" | tail -1)
	case $landed in 1) landed=no ;; 2) landed=yes ;; *) landed="mixed or none (${landed:-?})" ;; esac
	want=yes
	[ "$PS" = intent ] && [ "$DRY" != 1 ] && want=no
	echo "acked blocks lost: $_lost; the in-flight write landed: $landed (the protocol says $want)"
	[ "$landed" = "$want" ] || _ok=1
	# 4. parity of the victim's stripes
	scrub_region "$PV" "$(region_of "$V")" $VST >"$KTAP_TMP/sc" 2>&1 || _ok=1
	cat "$KTAP_TMP/sc"
	_m=$(scrub_count "$KTAP_TMP/sc")
	MISMATCH=$((MISMATCH + ${_m:-0}))
	# 5. the takeover's counters
	if [ "$DRY" != 1 ]; then
		vst "$PV"
		_rp=$((VS_REPLAYED - RP0))
		T=$VS_TMS
		echo "replayed +$_rp (want +$EXPR), last takeover $T ms"
		[ "$_rp" -eq "$EXPR" ] || _ok=1
		[ "${T:-0}" -gt "$TMAX" ] && TMAX=$T
	fi
	# 6. node 1 serves the victim's stripes
	if amf-iotool write --dev "/dev/mapper/$PV" --seed 1 --gen $((1000 + r)) --bs "$PSS" --start $A \
		--count $((VST * PSS)) >"$KTAP_TMP/w" 2>&1 &&
		amf-iotool verify --dev "/dev/mapper/$PV" --seed 1 --gen $((1000 + r)) --start $A \
			--count $((VST * PSS)) >>"$KTAP_TMP/w" 2>&1; then
		echo "node 1 rewrote the victim's stripes"
	else
		cat "$KTAP_TMP/w"
		_ok=1
	fi
	# 7. node 1's own writes went on, none failed
	went_on() { [ "$(own_gen)" -gt "$G0" ]; }
	if until_ok 60 went_on; then
		echo "node 1's own writer: passes $G0 -> $(own_gen) since the takeover"
	else
		echo "node 1's own writer stuck at pass $(own_gen) (was $G0 at the takeover)"
		_ok=1
	fi
	if [ "$(own_errs)" -gt "$E0" ]; then
		echo "node 1's own writes failed:"
		tail -n $(($(own_errs) - E0)) "$OWNDIR/err"
		_ok=1
	fi
	return $_ok
}

checker() {
	r=$1
	point "$r"
	V=$(victim_of "$r")
	A=$(($(region_of "$V") * PSS))
	seed=$((100 + r))
	inflight $A
	EXPR=1
	case $PS in intent | done) EXPR=0 ;; esac
	vst r6
	D6=$VS_DEATHS
	RP0=$VS_REPLAYED
	vst r5
	D5=$VS_DEATHS
	[ "$PV" = r5 ] && RP0=$VS_REPLAYED
	E0=$(own_errs)
	EV0_r5=$(dmsetup info r5 | sed -n 's/^Event number: *//p')
	EV0_r6=$(dmsetup info r6 | sed -n 's/^Event number: *//p')
	kmsg_mark
	pair "$r" "$V" >"$KTAP_TMP/bar" 2>&1 || { ktap_diag "barrier with node $V (round $r) failed:"; ktap_diag_file "$KTAP_TMP/bar"; }
	POINTS_RUN=$((POINTS_RUN + 1))
	klog "round $r: $PNAME, victim node $V"
	ktap_check "kill point $r: $PNAME (node $V): acknowledged writes kept, parity clean, node 1 served on" check_point
}

if [ "$ID" -eq 1 ]; then
	rm -rf "$OWNDIR"
	mkdir -p "$OWNDIR"
	own_loop </dev/null >/dev/null 2>&1 &
	OWNPID=$!
	r=1
	while [ $r -le $R ]; do
		if aborted; then
			point $r
			ktap_skip "kill point $r: $PNAME" "$(cluster_read_note $ABORT_SECTOR)"
		else
			checker $r
		fi
		r=$((r + 1))
	done
fi

# ------------------------------------------------------------------ the end
# bar, unless the run stopped (some node may never come).
endbar() { aborted || bar "$@"; }
endbar 900 end
if [ "$ID" -eq 1 ]; then
	own_check() {
		touch "$OWNDIR/stop"
		wait "$OWNPID"
		g=$(own_gen)
		echo "node 1 wrote its stripes $g times (both volumes)"
		rc=0
		BADS=0
		vrange r5 1 "$g" 0 $((OWN * SS5)) || rc=1
		vrange r6 1 "$g" 0 $((OWN * SS6)) || rc=1
		LOST=$((LOST + (BADS + BS - 1) / BS))
		if [ "$(own_errs)" -gt 0 ]; then
			echo "failed passes:"
			cat "$OWNDIR/err"
			rc=1
		fi
		[ "$g" -ge 1 ] || rc=1
		return $rc
	}
	ktap_check "node 1's own stripes: written all along, never failed, hold the last pass" own_check
	scrub_all() {
		rc=0
		scrub_ok raid5 $CHUNK $LEN5 /dev/mapper/a0:8192 /dev/mapper/a1:8192 /dev/mapper/a2:8192 \
			/dev/mapper/a3:8192 /dev/mapper/a4:8192 >"$KTAP_TMP/sc" 2>&1 || rc=1
		cat "$KTAP_TMP/sc"
		_m=$(scrub_count "$KTAP_TMP/sc")
		MISMATCH=$((MISMATCH + ${_m:-0}))
		scrub_ok raid6 $CHUNK $LEN6 /dev/mapper/b0:8192 /dev/mapper/b1:8192 /dev/mapper/b2:8192 \
			/dev/mapper/b3:8192 /dev/mapper/b4:8192 >"$KTAP_TMP/sc" 2>&1 || rc=1
		cat "$KTAP_TMP/sc"
		_m=$(scrub_count "$KTAP_TMP/sc")
		MISMATCH=$((MISMATCH + ${_m:-0}))
		return $rc
	}
	ktap_check "scrub of both groups at the end: no parity mismatch" scrub_all
	summary() {
		echo "SUMMARY: failover$([ "$DRY" = 1 ] && echo ' (dry run)'): $POINTS_RUN kill points, $LOST lost acked writes, $MISMATCH parity mismatches, max takeover $TMAX ms"
	}
	ktap_check "summary" summary
fi
endbar 901 summary
ktap_check "volumes removed on node $ID" sh -c 'dmsetup remove r5 && dmsetup remove r6'
endbar 902 remove
rmslices() {
	for i in 0 1 2 3 4; do
		dmsetup remove "a$i" || return 1
		dmsetup remove "b$i" || return 1
	done
	cluster_stop
}
ktap_check "lockspaces left, cluster stopped on node $ID" rmslices
ktap_done
