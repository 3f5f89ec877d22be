// SPDX-License-Identifier: GPL-2.0

//! The replication channel of a clustered RAID5/6 target (`peers` in the table): the owner
//! side sends each write's records (Intent: new data; Prepared: new parity; Done) to every
//! live peer and waits for their acks before it touches the disks, and the peer side holds
//! the other AMFs' unfinished records so that, if their owner dies, a survivor can finish
//! the operation (`failover`). The rules are the core's (`core::op`, `core::recovery`,
//! `Documentation/protocol.rst`); this file moves their messages.
//!
//! Connections (`repl_session`): we dial every peer (our records go out and their acks come
//! back on that connection) and accept each peer's dial (their records in, our acks out).
//! A new connection from a peer replaces the old one and drops what we held for it: the
//! peer is alive and resends whatever its operation in flight still needs.
//!
//! Memory is bounded and allocated up front: each peer has two held-record buffers (its
//! one operation in flight: Intent and Prepared, the worker runs one operation at a time)
//! and each connection one receive buffer, all of the largest record's size.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{Arc, CondVar, Mutex},
    time::{msecs_to_jiffies, Ktime},
    workqueue::{impl_has_work, new_work, Work, WorkItem},
};

use crate::cluster::Membership;
use crate::core_proto::{
    geometry::Geometry,
    op, recovery,
    table::PeerSpec,
    wire::{
        Ack, AckStatus, Block as WireBlock, Body, Message, RecordHeader, Recovery, RecoveryPhase,
        Side, Step,
    },
};
#[cfg(CONFIG_DLM)]
use crate::kernel_ext::dlm::Wake;
use crate::kernel_ext::{
    block_io::NoIoScope,
    crypto::HmacSha256,
    keyring::Secret,
    ratelimit::RateLimit,
    workqueue::{OwnedQueue, QueueHandle},
};
use crate::repl_session::{self, Identity, Session, SessionError, CONTROL_LEN};
use crate::stripe_worker::StripeWorker;
use crate::transport::{Listener, Stream, Transport};

/// Peers a target replicates to at most (the table allows 16 AMFs per group).
pub(crate) const MAX_PEERS: usize = 16;
/// Longest wait for the acks of one step, or for a peer to connect, before the write fails.
/// A peer that stops answering is either slow or dead; the cluster decides which (its token
/// timeout, then the DLM's recovery, takes ~10-15 s with corosync's defaults), so this is
/// as long as the lock arbiter's wait for a membership change.
const ACK_TIMEOUT_MS: i64 = crate::stripe_lock::RECOVERY_TIMEOUT_MS;
/// Pause between dial attempts to a peer that is not connected.
const DIAL_INTERVAL_MS: u32 = 300;
/// Connect timeout of one dial.
const DIAL_TIMEOUT_MS: u32 = 1_000;
/// How long one wait for an ack lasts before the waiter looks at the membership again.
const WAIT_SLICE_MS: u32 = 100;
/// Handshakes of accepted connections in progress at once from addresses that are not in
/// `peers` (strangers); a connection beyond it is closed at once (`hs_refused`).
pub(crate) const HS_MAX: usize = 16;
/// Handshakes of accepted connections in progress at once from one source address (a
/// peer's or a stranger's); a connection beyond it is closed at once (`hs_refused`).
pub(crate) const HS_PER_ADDR: u8 = 4;
/// Work items of a target's queue that may run at once: each connection's receive loop
/// (two a peer, and a replaced one until it sees its close), the listener, one dialler a
/// peer, and every handshake the caps let in (strangers' and peers' own).
const QUEUE_ACTIVE: usize =
    4 * MAX_PEERS + 1 + MAX_PEERS + HS_MAX + HS_PER_ADDR as usize * MAX_PEERS;

/// The mask of node (or peer index) `node`; 0 beyond 63.
pub(crate) fn bit(node: u32) -> u64 {
    1u64.checked_shl(node).unwrap_or(0)
}

/// Counters shown by `dmsetup status`.
#[derive(Default)]
pub(crate) struct ReplStats {
    pub(crate) records_sent: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) last_takeover_ms: AtomicU64,
    /// Connections that replaced an earlier one to the same peer and direction.
    pub(crate) reconnects: AtomicU64,
    /// Handshakes of accepted connections that completed (a peer proved the key).
    pub(crate) hs_accepted: AtomicU64,
    /// Accepted connections closed at once: [`HS_MAX`] or [`HS_PER_ADDR`] reached, or the
    /// connection request could not be taken.
    pub(crate) hs_refused: AtomicU64,
    /// Handshakes (either side) dropped at their deadline (`HANDSHAKE_MS`).
    pub(crate) hs_stalled: AtomicU64,
    /// Handshakes (either side) that failed otherwise: closed, malformed, refused.
    pub(crate) hs_failed: AtomicU64,
    /// Limits the warnings that go with the failure counters: failed handshakes and
    /// frames, refused recovery messages, lockspace members outside `peers`.
    warn_limit: RateLimit,
}

/// A record held for a peer: its header and the frame it came in.
pub(crate) struct Held {
    pub(crate) header: Option<RecordHeader>,
    pub(crate) frame: KVVec<u8>,
    pub(crate) len: usize,
}

impl Held {
    fn clear(&mut self) {
        self.header = None;
        self.len = 0;
    }

    /// The stored frame.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.frame.get(..self.len).unwrap_or(&[])
    }
}

/// What we know about one peer.
struct Peer {
    spec: PeerSpec,
    /// Our connection to it (our records out, its acks in) and its generation.
    out: Option<Arc<Session>>,
    out_gen: u64,
    /// Its connection to us (its records in), and how many it made.
    inbound: Option<Arc<Session>>,
    in_gen: u64,
    /// On the current `out`: the operation acked and the highest step it acked.
    ack_op: u64,
    ack_step: Option<Step>,
    ack_rejected: bool,
    /// Dead nodes whose `Complete` it echoed.
    echoed: u64,
    /// Its operation in flight: Intent and Prepared records.
    intent: Held,
    prepared: Held,
    /// Handshakes in progress on connections accepted from its address.
    hs_in: u8,
}

/// State shared by the worker and the connection loops.
struct State {
    peers: KVec<Peer>,
    /// Handshakes in progress on connections accepted from addresses not in `peers`: the
    /// address and how many (0: a free entry). At most [`HS_MAX`] in all, so there is
    /// always a free entry while the total is below it.
    strangers: [([u8; 4], u8); HS_MAX],
}

/// Whose handshake slot an accepted connection holds (see [`Replication::hs_admit`]).
#[derive(Clone, Copy)]
enum HsSlot {
    /// The address of a peer (index into the peer list).
    Peer(usize),
    /// A stranger's address.
    Stranger([u8; 4]),
}

/// Steps of a write after which a test can make this AMF stop dead (`fail_after`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FaultPoint {
    /// Intent sent: nothing on disk.
    Intent = 1,
    /// Prepared acked by every live peer: nothing on disk yet.
    Prepared = 2,
    /// New data on disk, parity not.
    Data = 3,
    /// Data and parity on disk, Done not sent.
    Parity = 4,
    /// Done acked: the host was not acked yet.
    Done = 5,
}

impl FaultPoint {
    /// Parses a `fail_after` argument.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "intent" => Self::Intent,
            "prepared" => Self::Prepared,
            "data" => Self::Data,
            "parity" => Self::Parity,
            "done" => Self::Done,
            _ => return None,
        })
    }

    /// The word for logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Intent => "intent",
            Self::Prepared => "prepared",
            Self::Data => "data",
            Self::Parity => "parity",
            Self::Done => "done",
        }
    }
}

/// Why replication could not cover a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplError {
    /// A live peer did not ack in time (or refused): nothing may be written.
    Timeout,
    /// This AMF was stopped (fault injection or teardown).
    Stopped,
    /// A lockspace member is not one of `peers`: the write may not start.
    Refused,
}

/// The replication state of one target.
#[pin_data]
pub(crate) struct Replication {
    node: u32,
    group: [u8; 16],
    geometry: Geometry,
    listen: ([u8; 4], u16),
    secret: HmacSha256,
    membership: Arc<Membership>,
    /// What the streams run on.
    transport: Transport,
    /// Largest frame a peer may send us.
    max_frame: usize,
    /// Teardown: every loop ends.
    stop: AtomicBool,
    /// Fault injection: stopped dead; nothing is sent or acked any more.
    dead: AtomicBool,
    /// Armed fault point (`FaultPoint as u8`, 0 none).
    fault: AtomicU8,
    /// The device name for logs.
    name: KVec<u8>,
    pub(crate) stats: ReplStats,
    #[pin]
    state: Mutex<State>,
    /// The stripe worker, while it exists (see `set_worker`).
    #[pin]
    worker: Mutex<Option<Arc<StripeWorker>>>,
    /// Signalled on acks, echoes, resumes and connection changes.
    #[pin]
    changed: CondVar,
}

/// What the constructor hands over.
pub(crate) struct ReplConfig<'a> {
    pub(crate) node: u32,
    pub(crate) group: [u8; 16],
    pub(crate) geometry: Geometry,
    pub(crate) peers: &'a [PeerSpec],
    pub(crate) secret: &'a Secret,
    pub(crate) membership: Arc<Membership>,
    pub(crate) name: &'a str,
    pub(crate) transport: Transport,
}

impl Replication {
    fn new(c: &ReplConfig<'_>) -> Result<Arc<Self>> {
        let g = c.geometry;
        let chunk_bytes = usize::try_from(g.chunk_sectors() * 512).map_err(|_| EINVAL)?;
        let max_frame = repl_session::max_record_len(g.data_chunks(), chunk_bytes);
        let own = c.peers.iter().find(|p| p.node == c.node).ok_or(EINVAL)?;
        let mut peers = KVec::with_capacity(c.peers.len(), GFP_KERNEL)?;
        for p in c.peers.iter().filter(|p| p.node != c.node) {
            let held = || -> Result<Held> {
                Ok(Held {
                    header: None,
                    frame: KVVec::from_elem(0u8, max_frame, GFP_KERNEL)?,
                    len: 0,
                })
            };
            peers.push(
                Peer {
                    spec: *p,
                    out: None,
                    out_gen: 0,
                    inbound: None,
                    in_gen: 0,
                    ack_op: 0,
                    ack_step: None,
                    ack_rejected: false,
                    echoed: 0,
                    intent: held()?,
                    prepared: held()?,
                    hs_in: 0,
                },
                GFP_KERNEL,
            )?;
        }
        let mut name = KVec::new();
        name.extend_from_slice(c.name.as_bytes(), GFP_KERNEL)?;
        let secret = HmacSha256::new(c.secret.bytes())?;
        Arc::pin_init(
            pin_init!(Self {
                node: c.node,
                group: c.group,
                geometry: g,
                listen: (own.ip, own.port),
                transport: c.transport,
                secret,
                membership: c.membership.clone(),
                max_frame,
                stop: AtomicBool::new(false),
                dead: AtomicBool::new(false),
                fault: AtomicU8::new(0),
                name,
                stats: ReplStats::default(),
                state <- new_mutex!(
                    State {
                        peers,
                        strangers: [([0; 4], 0); HS_MAX],
                    },
                    "amf:repl_state"
                ),
                worker <- new_mutex!(None, "amf:repl_worker"),
                changed <- new_condvar!("amf:repl_changed"),
            }),
            GFP_KERNEL,
        )
    }

    fn name(&self) -> &str {
        core::str::from_utf8(&self.name).unwrap_or("?")
    }

    /// Our node id.
    pub(crate) fn node(&self) -> u32 {
        self.node
    }

    /// The group's membership as the DLM reports it.
    pub(crate) fn membership(&self) -> &Membership {
        &self.membership
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.dead.load(Ordering::Acquire)
    }

    /// Peers that are live in the cluster and connected (authenticated both ways): a dead
    /// peer's connections may look open until TCP notices.
    pub(crate) fn peers_up(&self) -> (usize, usize) {
        let st = self.state.lock();
        let req = self.required(&st);
        let up = st
            .peers
            .iter()
            .enumerate()
            .filter(|(i, _)| req & bit(*i as u32) != 0)
            .map(|(_, p)| p)
            .filter(|p| {
                p.out.as_ref().is_some_and(|s| !s.is_broken())
                    && p.inbound.as_ref().is_some_and(|s| !s.is_broken())
            })
            .count();
        (up, st.peers.len())
    }

    /// Records of peers' unfinished operations held now.
    pub(crate) fn records_held(&self) -> usize {
        let st = self.state.lock();
        st.peers
            .iter()
            .map(|p| {
                usize::from(p.intent.header.is_some()) + usize::from(p.prepared.header.is_some())
            })
            .sum()
    }

    /// Arms (or with None disarms) the fault point.
    pub(crate) fn arm_fault(&self, at: Option<FaultPoint>) {
        self.fault
            .store(at.map_or(0, |f| f as u8), Ordering::Release);
    }

    /// Stops everything: the loops end, a worker stopped dead by a fault returns.
    pub(crate) fn halt(&self) {
        self.stop.store(true, Ordering::Release);
        self.changed.notify_all();
    }

    /// Whether the fault point is armed at `at`.
    pub(crate) fn fault_armed(&self, at: FaultPoint) -> bool {
        self.fault.load(Ordering::Acquire) == at as u8
    }

    /// Sets (or clears) the stripe worker that takeovers need: the dialler wakes it while
    /// dead nodes wait for their takeover, even when no host I/O comes.
    pub(crate) fn set_worker(&self, w: Option<Arc<StripeWorker>>) {
        *self.worker.lock() = w;
    }

    /// Called by the worker after each step of a write: if the fault point is armed at
    /// `at`, this AMF stops dead (no more I/O, messages or acks) and this returns an error
    /// only when the target is torn down.
    pub(crate) fn fault_point(&self, at: FaultPoint) -> Result<(), ReplError> {
        if self.fault.load(Ordering::Acquire) != at as u8 {
            return Ok(());
        }
        self.dead.store(true, Ordering::Release);
        pr_notice!(
            "dm-amf: {}: stopped dead after {} (fault injection)\n",
            self.name(),
            at.name()
        );
        while !self.stop.load(Ordering::Acquire) {
            // Process context (the stripe worker).
            crate::kernel_ext::delay::msleep(100);
        }
        Err(ReplError::Stopped)
    }

    /// Peers whose acks an operation needs: live in the DLM and not declared dead, as a
    /// mask of indexes into the peer list.
    fn required(&self, st: &State) -> u64 {
        let m = &self.membership;
        let live = m.live_nodes() & !m.pending_deaths();
        st.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| live & bit(p.spec.node) != 0)
            .fold(0, |acc, (i, _)| acc | bit(i as u32))
    }

    /// Live lockspace members other than us that are not in `peers`: AMFs of the group
    /// whose records we would not hold and that would not hold ours.
    fn strangers(&self, st: &State) -> u64 {
        let m = &self.membership;
        let known = st
            .peers
            .iter()
            .fold(bit(self.node), |acc, p| acc | bit(p.spec.node));
        m.live_nodes() & !m.pending_deaths() & !known
    }

    /// Sends one record of an operation to every required peer that is connected, and
    /// notes on which connection it went. An operation does not start (Intent) while a
    /// lockspace member is not in `peers`: its takeover could not be covered.
    #[inline(never)]
    pub(crate) fn send_step(
        &self,
        op: &mut ReplOp,
        step: Step,
        blocks: &[WireBlock<'_>],
    ) -> Result<(), ReplError> {
        if self.stopping() {
            return Err(ReplError::Stopped);
        }
        let header = op.header(step);
        let targets = {
            let st = self.state.lock();
            let strangers = self.strangers(&st);
            if step == Step::Intent && strangers != 0 {
                drop(st);
                self.warn(format_args!(
                    "writes refused: lockspace members {strangers:#x} are not in peers \
                     (their operations and ours would not be replicated to each other)"
                ));
                return Err(ReplError::Refused);
            }
            let req = self.required(&st);
            let mut t: [Option<(usize, u64, Arc<Session>)>; MAX_PEERS] = Default::default();
            for (i, p) in st.peers.iter().enumerate() {
                if req & bit(i as u32) == 0 {
                    continue;
                }
                if let (Some(s), Some(slot)) = (p.out.as_ref(), t.get_mut(i)) {
                    *slot = Some((i, p.out_gen, s.clone()));
                }
            }
            t
        };
        for (i, gen, s) in targets.into_iter().flatten() {
            if s.send_record(&header, blocks).is_ok() {
                self.stats.records_sent.fetch_add(1, Ordering::Relaxed);
                if let Some(sent) = op.sent.get_mut(i) {
                    *sent = (gen, Some(step));
                }
            }
        }
        Ok(())
    }

    /// Waits until every required peer acked `step` of `op` on its current connection,
    /// re-sending the earlier records (`intent`, `prepared`) to a peer whose connection
    /// changed since. A Done needs no re-sending: a new connection drops every record of
    /// ours the peer held.
    pub(crate) fn wait_step(
        &self,
        op: &mut ReplOp,
        step: Step,
        intent: &[WireBlock<'_>],
        prepared: &[WireBlock<'_>],
    ) -> Result<(), ReplError> {
        let start = Ktime::ktime_get();
        loop {
            if self.stopping() {
                return Err(ReplError::Stopped);
            }
            let mut resend: [Option<(u64, Arc<Session>)>; MAX_PEERS] = Default::default();
            {
                let mut st = self.state.lock();
                let req = self.required(&st);
                let mut missing = false;
                for (i, p) in st.peers.iter().enumerate() {
                    if req & bit(i as u32) == 0 {
                        continue;
                    }
                    let Some(s) = p.out.as_ref().filter(|s| !s.is_broken()) else {
                        missing = true;
                        continue;
                    };
                    let (gen, _) = op.sent.get(i).copied().unwrap_or((0, None));
                    if gen != p.out_gen {
                        if step == Step::Done {
                            // A new connection dropped our records there.
                            continue;
                        }
                        missing = true;
                        if let Some(r) = resend.get_mut(i) {
                            *r = Some((p.out_gen, s.clone()));
                        }
                        continue;
                    }
                    if p.ack_op == op.op_id && p.ack_rejected {
                        return Err(ReplError::Timeout);
                    }
                    if !(p.ack_op == op.op_id && p.ack_step.is_some_and(|a| a >= step)) {
                        missing = true;
                    }
                }
                if !missing {
                    return Ok(());
                }
                if resend.iter().all(Option::is_none) {
                    if kernel::time::ktime_ms_delta(Ktime::ktime_get(), start) > ACK_TIMEOUT_MS {
                        pr_warn!(
                            "dm-amf: {}: peers did not ack step {:?} of operation {} in time\n",
                            self.name(),
                            step,
                            op.op_id
                        );
                        return Err(ReplError::Timeout);
                    }
                    let _ = self
                        .changed
                        .wait_interruptible_timeout(&mut st, msecs_to_jiffies(WAIT_SLICE_MS));
                    continue;
                }
            }
            for (i, r) in resend.iter_mut().enumerate() {
                let Some((gen, s)) = r.take() else { continue };
                let mut ok = s.send_record(&op.header(Step::Intent), intent).is_ok();
                if ok && step >= Step::Prepared {
                    ok = s.send_record(&op.header(Step::Prepared), prepared).is_ok();
                }
                if ok {
                    if let Some(sent) = op.sent.get_mut(i) {
                        *sent = (gen, Some(step.min(Step::Prepared)));
                    }
                }
            }
        }
    }

    /// Sends `Complete(dead)` to every required peer, waits for their echoes, then sends
    /// `Resume(dead)`: the end of a takeover (core `recovery::Coordinator`).
    pub(crate) fn complete_round(&self, dead: u32) -> Result<(), ReplError> {
        let start = Ktime::ktime_get();
        let complete = Message::Recovery(Recovery {
            dead,
            phase: RecoveryPhase::Complete,
            epoch: 0,
        });
        let mut told = [0u64; MAX_PEERS];
        loop {
            if self.stopping() {
                return Err(ReplError::Stopped);
            }
            let mut send: [Option<Arc<Session>>; MAX_PEERS] = Default::default();
            {
                let mut st = self.state.lock();
                let req = self.required(&st);
                let mut missing = false;
                for (i, p) in st.peers.iter().enumerate() {
                    if req & bit(i as u32) == 0 || p.echoed & bit(dead) != 0 {
                        continue;
                    }
                    missing = true;
                    let (Some(s), Some(t)) = (p.out.as_ref(), told.get_mut(i)) else {
                        continue;
                    };
                    if *t != p.out_gen && !s.is_broken() {
                        *t = p.out_gen;
                        if let Some(slot) = send.get_mut(i) {
                            *slot = Some(s.clone());
                        }
                    }
                }
                if !missing {
                    break;
                }
                if send.iter().all(Option::is_none) {
                    if kernel::time::ktime_ms_delta(Ktime::ktime_get(), start) > ACK_TIMEOUT_MS {
                        pr_warn!(
                            "dm-amf: {}: peers did not confirm the takeover of node {dead}\n",
                            self.name()
                        );
                        return Err(ReplError::Timeout);
                    }
                    let _ = self
                        .changed
                        .wait_interruptible_timeout(&mut st, msecs_to_jiffies(WAIT_SLICE_MS));
                    continue;
                }
            }
            for s in send.iter().flatten() {
                let _ = s.send(&complete);
            }
        }
        let resume = Message::Recovery(Recovery {
            dead,
            phase: RecoveryPhase::Resume,
            epoch: 0,
        });
        let sessions: [Option<Arc<Session>>; MAX_PEERS] = {
            let mut st = self.state.lock();
            let mut out: [Option<Arc<Session>>; MAX_PEERS] = Default::default();
            for (slot, p) in out.iter_mut().zip(st.peers.iter_mut()) {
                p.echoed &= !bit(dead);
                *slot = p.out.clone();
            }
            out
        };
        for s in sessions.iter().flatten() {
            let _ = s.send(&resume);
        }
        Ok(())
    }

    /// Waits up to one slice for a change (an ack, an echo, a resume).
    pub(crate) fn wait_change(&self) {
        let mut st = self.state.lock();
        let _ = self
            .changed
            .wait_interruptible_timeout(&mut st, msecs_to_jiffies(WAIT_SLICE_MS));
    }

    /// Runs `f` on the records held for the dead nodes in `dead` (each peer's Intent and
    /// Prepared), under the state lock, then drops them.
    pub(crate) fn take_held(&self, dead: u64, mut f: impl FnMut(&Held, &Held)) {
        let mut st = self.state.lock();
        for p in st.peers.iter_mut() {
            if dead & bit(p.spec.node) == 0 {
                continue;
            }
            f(&p.intent, &p.prepared);
            p.intent.clear();
            p.prepared.clear();
        }
    }

    fn index_of(st: &State, node: u32) -> Option<usize> {
        st.peers.iter().position(|p| p.spec.node == node)
    }

    /// Installs a new connection from (`inbound`) or to a peer.
    fn install(&self, s: Arc<Session>, inbound: bool) -> Option<usize> {
        let mut st = self.state.lock();
        let i = Self::index_of(&st, s.peer)?;
        let p = st.peers.get_mut(i)?;
        let old = if inbound {
            // A new connection from the peer: what it sent on the old one is void (unless
            // it was declared dead and its operation still waits for the takeover).
            if self.membership.pending_deaths() & bit(p.spec.node) == 0 {
                p.intent.clear();
                p.prepared.clear();
            }
            p.in_gen += 1;
            p.inbound.replace(s)
        } else {
            p.out_gen += 1;
            p.ack_step = None;
            p.ack_rejected = false;
            p.out.replace(s)
        };
        if (if inbound { p.in_gen } else { p.out_gen }) > 1 {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(o) = old {
            o.close();
        }
        drop(st);
        self.changed.notify_all();
        Some(i)
    }

    /// Closes and forgets the connections to and from the nodes in `nodes` (declared dead):
    /// a connection to a node that died stays open as far as the transport knows (an RDMA
    /// queue pair to a dead host may not fail before the host is back), and the node dials
    /// anew when it rejoins. Records held for them are kept for the takeover.
    pub(crate) fn drop_sessions(&self, nodes: u64) {
        let mut gone: [Option<Arc<Session>>; 2 * MAX_PEERS] = Default::default();
        {
            let mut st = self.state.lock();
            let mut slots = gone.iter_mut();
            for p in st
                .peers
                .iter_mut()
                .filter(|p| nodes & bit(p.spec.node) != 0)
            {
                for s in [p.out.take(), p.inbound.take()] {
                    if let Some(slot) = slots.next() {
                        *slot = s;
                    }
                }
            }
        }
        for s in gone.iter().flatten() {
            s.close();
        }
    }

    /// Closes every connection to and from the peers (the `reconnect` message): the
    /// diallers on both sides connect again at once; records held are kept.
    pub(crate) fn reconnect(&self) {
        let st = self.state.lock();
        for p in st.peers.iter() {
            for s in Iterator::chain(p.out.iter(), p.inbound.iter()) {
                s.close();
            }
        }
    }

    /// Forgets `s` if it is still the installed connection (its receive loop ended: it is
    /// broken), so that its transport resources go now: an RDMA device is only removed once
    /// every connection on it is destroyed.
    fn detach(&self, s: &Arc<Session>, inbound: bool) {
        let mut st = self.state.lock();
        let Some(p) = Self::index_of(&st, s.peer).and_then(|i| st.peers.get_mut(i)) else {
            return;
        };
        let slot = if inbound { &mut p.inbound } else { &mut p.out };
        if slot.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, s)) {
            *slot = None;
        }
    }

    /// Handles one verified frame received on `s`.
    fn handle(&self, s: &Session, frame: &mut KVVec<u8>, len: usize, inbound: bool) {
        let Some(f) = frame.get(..len).and_then(Session::decode) else {
            self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match (f.body, inbound) {
            (Body::Record(r), true) => {
                let h = r.header;
                if h.owner != s.peer || op::validate_record(&self.geometry, &r, 512).is_err() {
                    self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if self.membership.pending_deaths() & bit(h.owner) != 0 {
                    // Declared dead: nothing more of it is taken.
                    return;
                }
                let status = self.store(h, frame, len);
                let ack = Message::Ack(Ack {
                    op_id: h.op_id,
                    generation: h.generation,
                    owner: h.owner,
                    step: h.step,
                    status,
                });
                let _ = s.send(&ack);
            }
            (Body::Ack(a), false) => {
                if a.owner != self.node {
                    self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let mut st = self.state.lock();
                if let Some(p) = Self::index_of(&st, s.peer).and_then(|i| st.peers.get_mut(i)) {
                    if p.ack_op != a.op_id {
                        p.ack_op = a.op_id;
                        p.ack_step = None;
                        p.ack_rejected = false;
                    }
                    if a.status == AckStatus::Ok {
                        p.ack_step = p.ack_step.max(Some(a.step));
                    } else {
                        p.ack_rejected = true;
                    }
                }
                drop(st);
                self.changed.notify_all();
            }
            (Body::Recovery(rc), inbound)
                if !recovery::may_coordinate(
                    s.peer,
                    rc.dead,
                    rc.phase,
                    !inbound,
                    self.node,
                    self.membership.live_nodes(),
                    self.membership.pending_deaths(),
                ) =>
            {
                self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                self.warn(format_args!(
                    "refused {:?} for node {} from node {}: not the recoverer of a pending death",
                    rc.phase, rc.dead, s.peer
                ));
            }
            (Body::Recovery(rc), true) => match rc.phase {
                RecoveryPhase::Complete => {
                    // The recoverer finished the dead node's operations: drop its records
                    // and confirm.
                    self.take_held(bit(rc.dead), |_, _| {});
                    let _ = s.send(&Message::Recovery(rc));
                }
                RecoveryPhase::Resume => {
                    self.membership.clear_pending(bit(rc.dead));
                    self.changed.notify_all();
                }
            },
            (Body::Recovery(rc), false) if rc.phase == RecoveryPhase::Complete => {
                let mut st = self.state.lock();
                if let Some(p) = Self::index_of(&st, s.peer).and_then(|i| st.peers.get_mut(i)) {
                    p.echoed |= bit(rc.dead);
                }
                drop(st);
                self.changed.notify_all();
            }
            _ => {
                self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Keeps a peer's record (swapping its frame buffer with a free held one).
    fn store(&self, h: RecordHeader, frame: &mut KVVec<u8>, len: usize) -> AckStatus {
        let mut st = self.state.lock();
        let Some(p) = Self::index_of(&st, h.owner).and_then(|i| st.peers.get_mut(i)) else {
            return AckStatus::Rejected;
        };
        // The owner runs one operation at a time: a record of another operation means the
        // earlier one finished or was abandoned before any disk write.
        if p.intent.header.is_some_and(|x| x.op_id != h.op_id) {
            p.intent.clear();
            p.prepared.clear();
        }
        let slot = match h.step {
            Step::Intent => &mut p.intent,
            Step::Prepared if p.intent.header.is_some() => &mut p.prepared,
            Step::Prepared => return AckStatus::Rejected,
            Step::Done => {
                p.intent.clear();
                p.prepared.clear();
                return AckStatus::Ok;
            }
        };
        if slot
            .header
            .is_some_and(|x| x.op_id == h.op_id && x.step == h.step)
        {
            return AckStatus::Ok;
        }
        core::mem::swap(&mut slot.frame, frame);
        slot.len = len;
        slot.header = Some(h);
        AckStatus::Ok
    }

    /// Takes a handshake slot for a connection accepted from `ip`, or None when the caps
    /// say it must be closed at once: [`HS_PER_ADDR`] from any one address, and
    /// [`HS_MAX`] from strangers together (the peers' own addresses do not count against
    /// that, so a flood from elsewhere cannot keep them out).
    fn hs_admit(&self, ip: [u8; 4]) -> Option<HsSlot> {
        let mut st = self.state.lock();
        if let Some(i) = st.peers.iter().position(|p| p.spec.ip == ip) {
            let p = st.peers.get_mut(i)?;
            if p.hs_in >= HS_PER_ADDR {
                return None;
            }
            p.hs_in += 1;
            return Some(HsSlot::Peer(i));
        }
        let total: usize = st.strangers.iter().map(|e| usize::from(e.1)).sum();
        if total >= HS_MAX {
            return None;
        }
        let slot = match st.strangers.iter().position(|e| e.1 > 0 && e.0 == ip) {
            Some(i) => i,
            None => st.strangers.iter().position(|e| e.1 == 0)?,
        };
        let e = st.strangers.get_mut(slot)?;
        if e.1 >= HS_PER_ADDR {
            return None;
        }
        *e = (ip, e.1 + 1);
        Some(HsSlot::Stranger(ip))
    }

    /// Gives back a slot [`Replication::hs_admit`] gave.
    fn hs_release(&self, slot: HsSlot) {
        let mut st = self.state.lock();
        match slot {
            HsSlot::Peer(i) => {
                if let Some(p) = st.peers.get_mut(i) {
                    p.hs_in = p.hs_in.saturating_sub(1);
                }
            }
            HsSlot::Stranger(ip) => {
                if let Some(e) = st.strangers.iter_mut().find(|e| e.1 > 0 && e.0 == ip) {
                    e.1 -= 1;
                }
            }
        }
    }

    /// Counts a handshake that ended (Ok: completed on an accepted connection).
    fn hs_done(&self, r: Result<(), SessionError>, inbound: bool) {
        let c = match r {
            Ok(()) if inbound => &self.stats.hs_accepted,
            Ok(()) | Err(SessionError::Stopped) => return,
            Err(SessionError::Stalled) => &self.stats.hs_stalled,
            Err(_) => &self.stats.hs_failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn identity(&self) -> Identity<'_> {
        Identity {
            node: self.node,
            group: self.group,
            secret: &self.secret,
        }
    }

    fn is_peer(&self, node: u32) -> bool {
        Self::index_of(&self.state.lock(), node).is_some()
    }

    /// Counts a failed handshake or frame, and logs (rate-limited) why and from where, so
    /// that a key mismatch shows at once rather than as stalled writes.
    #[inline(never)]
    fn failed(&self, addr: Option<([u8; 4], u16)>, e: SessionError) {
        let why = match e {
            SessionError::Auth => "a frame failed its tag or sequence number",
            SessionError::Refused(h) => h.reason(),
            SessionError::Malformed => {
                self.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                return;
            }
            SessionError::Stalled => {
                let ([a, b, c, d], port) = addr.unwrap_or(([0; 4], 0));
                self.warn(format_args!(
                    "connection with {a}.{b}.{c}.{d}:{port} dropped: the handshake did not finish in {} ms, or a frame stalled for {} ms",
                    crate::repl_session::HANDSHAKE_MS,
                    crate::repl_session::STALL_MS
                ));
                return;
            }
            SessionError::Io | SessionError::Stopped | SessionError::NoMemory => return,
        };
        self.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        let ([a, b, c, d], port) = addr.unwrap_or(([0; 4], 0));
        self.warn(format_args!(
            "authentication failed with {a}.{b}.{c}.{d}:{port}: {why}"
        ));
    }

    /// A rate-limited warning about the channel.
    fn warn(&self, msg: core::fmt::Arguments<'_>) {
        if let Some(missed) = self.stats.warn_limit.allow() {
            pr_warn!("dm-amf: {}: {msg}\n", self.name());
            if missed > 0 {
                pr_warn!(
                    "dm-amf: {}: {missed} similar warnings suppressed\n",
                    self.name()
                );
            }
        }
    }
}

/// One operation's replication bookkeeping on the owner side.
pub(crate) struct ReplOp {
    pub(crate) op_id: u64,
    base: RecordHeader,
    /// Per peer: the connection generation a record went out on, and the highest step.
    sent: [(u64, Option<Step>); MAX_PEERS],
}

impl ReplOp {
    /// Starts the bookkeeping of an operation whose records carry `base`'s fields.
    pub(crate) fn new(base: RecordHeader) -> Self {
        Self {
            op_id: base.op_id,
            base,
            sent: [(0, None); MAX_PEERS],
        }
    }

    fn header(&self, step: Step) -> RecordHeader {
        RecordHeader { step, ..self.base }
    }
}

/// The replication of a target with its connection loops; dropping it stops them.
pub(crate) struct ReplService {
    // Declared first: destroying the queue waits for the loops, which `drop` stops first.
    _queue: OwnedQueue,
    repl: Arc<Replication>,
}

impl ReplService {
    /// Starts listening on our `peers` address and dialling the others.
    pub(crate) fn start(c: &ReplConfig<'_>) -> Result<Self> {
        let repl = Replication::new(c)?;
        let (ip, port) = repl.listen;
        let socket = repl.transport.listen(ip, port)?;
        let queue = OwnedQueue::new_unbound(c"amf_repl", QUEUE_ACTIVE as i32)?;
        let wq = queue.handle();
        let r1 = repl.clone();
        let listener = Arc::pin_init(
            pin_init!(ListenWork {
                repl: r1,
                first <- new_mutex!(Some(socket), "amf:repl_listener"),
                wq,
                work <- new_work!("amf:repl_listen"),
            }),
            GFP_KERNEL,
        )?;
        let npeers = repl.state.lock().peers.len();
        let mut dialers = KVec::with_capacity(npeers, GFP_KERNEL)?;
        for peer in 0..npeers {
            let r2 = repl.clone();
            dialers.push(
                Arc::pin_init(
                    pin_init!(DialWork {
                        repl: r2,
                        peer,
                        wq,
                        work <- new_work!("amf:repl_dial"),
                    }),
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
        }
        let _ = queue.enqueue(listener);
        for d in dialers {
            let _ = queue.enqueue(d);
        }
        Ok(Self {
            _queue: queue,
            repl,
        })
    }

    /// The replication state.
    pub(crate) fn repl(&self) -> &Arc<Replication> {
        &self.repl
    }
}

impl Drop for ReplService {
    fn drop(&mut self) {
        // The listener's loop sees the stop within one accept timeout.
        self.repl.halt();
        {
            let st = self.repl.state.lock();
            for p in st.peers.iter() {
                for s in Iterator::chain(p.out.iter(), p.inbound.iter()) {
                    s.close();
                }
            }
        }
        self.repl.changed.notify_all();
        // `queue` drops after this: destroy_workqueue waits for the loops to return.
    }
}

/// Accepts peers' connections.
#[pin_data]
struct ListenWork {
    repl: Arc<Replication>,
    /// The listener the constructor opened (it proves the address is ours); the loop owns
    /// it from then on, and opens a new one if it breaks (an RDMA device removed and added
    /// again, e.g. `rdma link delete` and `add`).
    #[pin]
    first: Mutex<Option<KBox<dyn Listener>>>,
    wq: QueueHandle,
    #[pin]
    work: Work<ListenWork>,
}

impl_has_work! {
    impl HasWork<Self> for ListenWork { self.work }
}

impl WorkItem for ListenWork {
    type Pointer = Arc<ListenWork>;

    fn run(this: Arc<ListenWork>) {
        let repl = &this.repl;
        let mut socket = this.first.lock().take();
        while !repl.stopping() {
            // A reconnecting peer (or a listener coming back) may be what writes wait for:
            // nothing allocated here may wait for them.
            let _noio = NoIoScope::enter();
            let Some(l) = socket.as_ref() else {
                let (ip, port) = repl.listen;
                socket = repl.transport.listen(ip, port).ok();
                if socket.is_some() {
                    pr_info!("dm-amf: {}: listening again\n", repl.name());
                } else {
                    // Process context (a work item).
                    crate::kernel_ext::delay::msleep(DIAL_INTERVAL_MS);
                }
                continue;
            };
            let stream = match l.accept(repl_session::RECV_POLL_MS) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) if e == EAGAIN || e == EINTR => continue,
                Err(e) if crate::transport::aborted(e) => {
                    // One request that could not be taken; the others go on.
                    repl.stats.hs_refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(_) => {
                    // The listener is gone (its RDMA device was removed): close it (the
                    // device waits for that) and listen again once the address is back.
                    pr_warn!("dm-amf: {}: replication listener lost\n", repl.name());
                    socket = None;
                    continue;
                }
            };
            // The handshake runs on its own work item: the listener goes back to accept
            // at once, and a stranger that holds its connection holds only its own slot.
            spawn_handshake(repl, this.wq, stream);
        }
    }
}

/// Runs the handshake of one accepted connection on a work item of its own, if the caps
/// ([`HS_MAX`], [`HS_PER_ADDR`]) let it in; otherwise closes it at once (counted).
/// Called from the listener (a work item of the queue `wq`) in its NOIO scope.
#[inline(never)]
fn spawn_handshake(repl: &Arc<Replication>, wq: QueueHandle, stream: KBox<dyn Stream>) {
    let addr = stream.peer_addr();
    let Some(slot) = repl.hs_admit(addr.map_or([0; 4], |a| a.0)) else {
        repl.stats.hs_refused.fetch_add(1, Ordering::Relaxed);
        stream.shutdown();
        return;
    };
    let r = repl.clone();
    let Ok(hs) = Arc::pin_init(
        pin_init!(HsWork {
            repl: r,
            slot,
            addr,
            wq,
            stream <- new_mutex!(Some(stream), "amf:repl_hs"),
            work <- new_work!("amf:repl_hs"),
        }),
        GFP_KERNEL,
    ) else {
        repl.stats.hs_refused.fetch_add(1, Ordering::Relaxed);
        repl.hs_release(slot);
        return;
    };
    // SAFETY: called from a work item of that queue (the listener), which the queue
    // outlives.
    if unsafe { wq.get() }.enqueue(hs).is_err() {
        repl.hs_release(slot);
    }
}

/// The handshake of one accepted connection (see [`spawn_handshake`]).
#[pin_data]
struct HsWork {
    repl: Arc<Replication>,
    slot: HsSlot,
    addr: Option<([u8; 4], u16)>,
    wq: QueueHandle,
    /// The connection, taken by `run`.
    #[pin]
    stream: Mutex<Option<KBox<dyn Stream>>>,
    #[pin]
    work: Work<HsWork>,
}

impl_has_work! {
    impl HasWork<Self> for HsWork { self.work }
}

impl WorkItem for HsWork {
    type Pointer = Arc<HsWork>;

    fn run(this: Arc<HsWork>) {
        let repl = &this.repl;
        let stream = this.stream.lock().take();
        if let Some(stream) = stream {
            // A reconnecting peer may be what writes wait for (as in the listener).
            let _noio = NoIoScope::enter();
            let id = repl.identity();
            let known = |n| repl.is_peer(n);
            // Bounded: the handshake's deadline, or the stop flag at teardown.
            match Session::handshake(stream, &id, Side::Acceptor, None, known, &repl.stop) {
                Ok(s) => {
                    repl.hs_done(Ok(()), true);
                    spawn_rx(repl, this.wq, s, true);
                }
                Err(e) => {
                    repl.hs_done(Err(e), true);
                    repl.failed(this.addr, e);
                }
            }
        }
        repl.hs_release(this.slot);
    }
}

/// Dials one peer whenever it is not connected: one work item a peer, so that a slow or
/// unreachable peer (a connect timeout, a handshake up to its deadline) delays no other.
#[pin_data]
struct DialWork {
    repl: Arc<Replication>,
    /// Index of the peer in the peer list.
    peer: usize,
    wq: QueueHandle,
    #[pin]
    work: Work<DialWork>,
}

impl_has_work! {
    impl HasWork<Self> for DialWork { self.work }
}

impl WorkItem for DialWork {
    type Pointer = Arc<DialWork>;

    fn run(this: Arc<DialWork>) {
        let repl = &this.repl;
        while !repl.stopping() {
            let want: Option<PeerSpec> = {
                let st = repl.state.lock();
                st.peers
                    .get(this.peer)
                    .filter(|p| !p.out.as_ref().is_some_and(|s| !s.is_broken()))
                    .map(|p| p.spec)
            };
            if let Some(p) = want {
                // Writes may be waiting for this connection: nothing it allocates may wait
                // for them (the sockets' own GFP_NOIO does not cover the session's memory).
                let _noio = NoIoScope::enter();
                if let Ok(stream) = repl.transport.connect(p.ip, p.port, DIAL_TIMEOUT_MS) {
                    let id = repl.identity();
                    let (side, addr) = (Side::Dialler, Some((p.ip, p.port)));
                    let r =
                        Session::handshake(stream, &id, side, Some(p.node), |_| true, &repl.stop);
                    match r {
                        Ok(s) => spawn_rx(repl, this.wq, s, false),
                        Err(e) => {
                            repl.hs_done(Err(e), false);
                            repl.failed(addr, e);
                        }
                    }
                }
            }
            #[cfg(CONFIG_DLM)]
            if this.peer == 0 && repl.membership.pending_deaths() != 0 {
                if let Some(w) = repl.worker.lock().as_ref() {
                    StripeWorker::wake(w);
                }
            }
            // Process context (a work item).
            crate::kernel_ext::delay::msleep(DIAL_INTERVAL_MS);
        }
    }
}

/// Receives frames on one connection until it breaks or we stop.
#[pin_data]
struct RxWork {
    repl: Arc<Replication>,
    session: Arc<Session>,
    inbound: bool,
    #[pin]
    buf: Mutex<KVVec<u8>>,
    #[pin]
    work: Work<RxWork>,
}

impl_has_work! {
    impl HasWork<Self> for RxWork { self.work }
}

#[inline(never)]
fn spawn_rx(repl: &Arc<Replication>, wq: QueueHandle, s: Session, inbound: bool) {
    let len = if inbound { repl.max_frame } else { CONTROL_LEN };
    let Ok(buf) = KVVec::from_elem(0u8, len, GFP_KERNEL) else {
        return;
    };
    let Ok(session) = Arc::new(s, GFP_KERNEL) else {
        return;
    };
    let (r, s2) = (repl.clone(), session.clone());
    let Ok(rx) = Arc::pin_init(
        pin_init!(RxWork {
            repl: r,
            session: s2,
            inbound,
            buf <- new_mutex!(buf, "amf:repl_rxbuf"),
            work <- new_work!("amf:repl_rx"),
        }),
        GFP_KERNEL,
    ) else {
        return;
    };
    if repl.install(session, inbound).is_none() {
        return;
    }
    // SAFETY: called from a work item of that queue (a handshake or a dialler), which the queue
    // outlives.
    let _ = unsafe { wq.get() }.enqueue(rx);
}

impl WorkItem for RxWork {
    type Pointer = Arc<RxWork>;

    fn run(this: Arc<RxWork>) {
        let repl = &this.repl;
        let s = &this.session;
        let mut buf = this.buf.lock();
        while !repl.stop.load(Ordering::Acquire) && !s.is_broken() {
            match s.recv(&mut buf, &repl.stop) {
                Ok(None) => {}
                Ok(Some(len)) => {
                    if !repl.dead.load(Ordering::Acquire) {
                        repl.handle(s, &mut buf, len, this.inbound);
                    }
                }
                Err(e) => {
                    repl.failed(s.addr, e);
                    if e == SessionError::Auth {
                        // A frame that fails its tag or sequence number: the stream is
                        // not trusted any more.
                        s.close();
                    }
                }
            }
        }
        s.close();
        repl.detach(s, this.inbound);
        repl.changed.notify_all();
    }
}
