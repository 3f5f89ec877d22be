// SPDX-License-Identifier: GPL-2.0
//! The simulated cluster: AMF nodes running the real core (`geometry`, `parity`, `wire`,
//! `lock`, `op`, `recovery`) over shared in-memory member disks, a network that delays and
//! reorders, and the [`Arbiter`]. Everything happens through events in one deterministic
//! queue, so a (config, seed, crash list, failure list) replays exactly.

use super::super::geometry::{Geometry, Level, MemberSet, ReadPlan};
use super::super::lock::{Action as LockAction, LockState, Mode};
use super::super::op::{
    plan_write, validate_record, Block, ChunkSet, OpError, Phase, Plan, WriteOp, WriteRequest,
};
use super::super::parity::{gen_p, gen_pq, recover_p, recover_pq, update_pq};
use super::super::recovery::{
    self, Action as RecAction, Coordinator, HeldRecord, Merge, RecordTable,
};
use super::super::wire::{
    self, Ack, AckStatus, Block as WireBlock, Body, Message, RecordHeader, Recovery, RecoveryPhase,
    Role, Step,
};
use super::arbiter::{Arbiter, Notice};
use super::bitmap::Bitmaps;
use super::checker::Checker;
use super::rng::Rng;
use super::{Config, Crash, Fail, Fault, Outcome, ALL};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

mod parity_log;
mod resync;

use parity_log::{ReplayCtx, Slot, SlotCopy};

/// Bytes per simulated sector: one u64 naming the write that produced it.
pub const SECTOR_BYTES: usize = 8;
const MAX_EVENTS: u64 = 400_000;
const TABLE_SLOTS: usize = 64;

struct SimCrc;
impl wire::Crc32c for SimCrc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

/// A keyed tag standing in for HMAC-SHA256 (the sim checks plumbing, not cryptography).
struct SimTagger;
impl wire::Tagger for SimTagger {
    fn tag(&mut self, signed: &[u8], out: &mut [u8; wire::TAG_LEN]) -> bool {
        for (i, chunk) in out.chunks_mut(4).enumerate() {
            let c = crc32c::crc32c_append(0x5eed_0000 + i as u32, signed);
            chunk.copy_from_slice(&c.to_le_bytes());
        }
        true
    }
}

#[derive(Clone, Copy, Debug)]
enum LockMsg {
    Notice(Notice),
    Dead { dead: u64, epoch: u64 },
    RecoverDone { epoch: u64 },
}

#[derive(Clone, Debug)]
enum IoTag {
    OpRead { op: u64, idx: usize },
    OpWrite { op: u64 },
    HostRead { rid: u64, idx: usize },
    HostPart { rid: u64, idx: usize, member: usize },
    Rewrite { stripe: u64 },
    ResyncRead { stripe: u64, idx: usize },
    ResyncWrite { stripe: u64 },
    // The partial parity log: a copy of an entry of the node's own slot; a replay's read,
    // its parity write (no write-intent bit: the live entry covers it), a copy of the
    // Retired entry that ends it.
    SlotCopy,
    ReplayRead { stripe: u64, idx: usize },
    ReplayWrite { stripe: u64 },
    ReplayRetire { stripe: u64 },
}

#[derive(Clone, Debug)]
enum Ev {
    Net {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    },
    ToArb {
        from: usize,
        stripe: u64,
        mode: Mode,
    },
    MemberAck {
        from: usize,
        epoch: u64,
    },
    ToNode {
        to: usize,
        msg: LockMsg,
    },
    DiskRead {
        node: usize,
        member: usize,
        sector: u64,
        sectors: u64,
        tag: IoTag,
        /// Issued to a member already failed: a planning bug.
        stale: bool,
    },
    DiskWrite {
        node: usize,
        member: usize,
        sector: u64,
        bytes: Vec<u8>,
        tag: IoTag,
    },
    /// A write to node slot `slot` of the partial parity log on `member`: the header block,
    /// and the partial parity (`None`: the header alone, as a retirement writes it).
    LogWrite {
        node: usize,
        member: usize,
        slot: usize,
        header: Vec<u8>,
        pp: Option<Vec<u8>>,
        tag: IoTag,
    },
    Host {
        node: usize,
    },
}

#[derive(Clone, Debug)]
enum Work {
    Write {
        w: u64,
        req: WriteRequest,
    },
    Read {
        rid: u64,
    },
    Recover {
        epoch: u64,
        ops: Vec<(u32, u64)>,
    },
    /// Restart resync of one stripe (its rows lie in a dirty region of the node's bitmap).
    Resync,
    /// Replay of node slot `slot`'s live log entry for this stripe, then its retirement: at
    /// a restart (`epoch` None) or in the takeover of a dead AMF.
    Replay {
        slot: usize,
        epoch: Option<u64>,
    },
}

impl Work {
    fn mode(&self) -> Mode {
        match self {
            Work::Read { .. } => Mode::Pr,
            _ => Mode::Ex,
        }
    }
}

#[derive(Default)]
struct StripeQ {
    lock: LockState,
    queue: VecDeque<Work>,
    active: bool,
}

struct OpCtx {
    op: WriteOp,
    plan: Plan,
    w: u64,
    new: BTreeMap<u8, Vec<u8>>,
    reads: Vec<Option<Vec<u8>>>,
    p: Vec<u8>,
    q: Vec<u8>,
    writes_left: usize,
    early: bool,
    /// Its writes follow a log entry: the node's slot is its until they complete.
    logged: bool,
}

#[derive(Default, Clone)]
struct Held {
    data: BTreeMap<u8, Vec<u8>>,
    p: Option<Vec<u8>>,
    q: Option<Vec<u8>>,
}

struct ReadCtx {
    start: u64,
    floors: Vec<u64>,
    left: usize,
    values: Vec<u64>,
    /// Sectors being rebuilt from parity, by index in the read.
    parts: BTreeMap<usize, Rebuild>,
}

/// One sector of a degraded read: (stripe, chunk, sources still missing, bytes read).
type Rebuild = (u64, usize, usize, BTreeMap<usize, Vec<u8>>);

struct RewriteCtx {
    epoch: u64,
    ops: VecDeque<(u32, u64)>,
    left: usize,
    /// The record being rewritten (its write is durable once `left` reaches 0).
    cur: Option<(u32, u64)>,
    /// Its writes, while they wait for the node's log slot.
    pending: Vec<(usize, u64, Vec<u8>)>,
    /// They follow a log entry: the node's slot is theirs until they complete.
    logged: bool,
}

/// Stores what read `idx` of a gather (a resync's or a replay's reads) returned; true once
/// every read (`left` of them were outstanding) came back.
fn gathered(
    got: &mut [Option<Vec<u8>>],
    left: &mut usize,
    idx: usize,
    data: Option<Vec<u8>>,
) -> bool {
    if let Some(slot) = got.get_mut(idx) {
        *slot = data;
    }
    *left = left.saturating_sub(1);
    *left == 0
}

/// One stripe's restart resync: what it reads (member, sector, sectors, logical sector for
/// mirrors), what came back, and the writes still in flight.
struct ResyncCtx {
    reads: Vec<(usize, u64, u64, u64)>,
    got: Vec<Option<Vec<u8>>>,
    left: usize,
    writes_left: usize,
}

struct RecCtx {
    coord: Coordinator,
    stripes_left: usize,
    /// Dead AMFs' live log entries still to replay; the rewrites wait for them.
    replays_left: usize,
    rewrites: BTreeMap<u64, Vec<(u32, u64)>>,
}

struct Node {
    id: usize,
    alive: bool,
    epoch: u64,
    dead: u64,
    paused: bool,
    stripes: BTreeMap<u64, StripeQ>,
    ops: BTreeMap<u64, OpCtx>,
    next_op: u64,
    seq: u64,
    /// Peers' unfinished operations: headers in the core's table, blocks beside it.
    table: RecordTable<TABLE_SLOTS>,
    held: BTreeMap<(u32, u64), Held>,
    host_left: usize,
    host_inflight: usize,
    reads: BTreeMap<u64, ReadCtx>,
    rewrites: BTreeMap<u64, RewriteCtx>,
    rec: Option<RecCtx>,
    /// Restarted after a whole-group crash and still resyncing: serves no host I/O yet.
    restarting: bool,
    resync: BTreeMap<u64, ResyncCtx>,
    /// Dirty regions of the node's own bitmap left to resync, with their stripes left.
    resync_regions: BTreeMap<u64, BTreeSet<u64>>,
    /// Its own slot of the partial parity log.
    slot: Slot,
    /// Log replays in progress, by stripe.
    replays: BTreeMap<u64, ReplayCtx>,
    /// Restart replays left before the resync of `pending_resync` may start.
    replays_left: usize,
    pending_resync: BTreeSet<u64>,
}

/// A node as it boots: empty memory, the workload's remaining host requests, and operation
/// ids that keep counting (so the simulator's op-to-write map stays unambiguous).
fn fresh_node(id: usize, host_left: usize, next_op: u64) -> Node {
    Node {
        id,
        alive: true,
        epoch: 0,
        dead: 0,
        paused: false,
        stripes: BTreeMap::new(),
        ops: BTreeMap::new(),
        next_op,
        seq: 0,
        table: RecordTable::new(),
        held: BTreeMap::new(),
        host_left,
        host_inflight: 0,
        reads: BTreeMap::new(),
        rewrites: BTreeMap::new(),
        rec: None,
        restarting: false,
        resync: BTreeMap::new(),
        resync_regions: BTreeMap::new(),
        slot: Slot::default(),
        replays: BTreeMap::new(),
        replays_left: 0,
        pending_resync: BTreeSet::new(),
    }
}

/// One simulation run.
pub struct World {
    cfg: Config,
    g: Geometry,
    rng: Rng,
    now: u64,
    seq: u64,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    disks: Vec<Vec<u8>>,
    nodes: Vec<Node>,
    arb: Arbiter,
    epoch: u64,
    acks_needed: u64,
    chk: Checker,
    next_rid: u64,
    crashes: Vec<Crash>,
    crashed: usize,
    processed: u64,
    stats: super::Stats,
    /// Failed members now (the configuration's, plus those failed during the run).
    failed: u64,
    fails: Vec<Fail>,
    bits: Bitmaps,
    /// (owner, op id) to host write: lets a takeover's rewrite mark the write durable.
    op_w: BTreeMap<(usize, u64), u64>,
    resynced_at: Option<u64>,
    /// Durable: every member's copy of every node slot of the partial parity log.
    log: Vec<Vec<SlotCopy>>,
    /// A replay had to be skipped: the group stops serving (host I/O fails).
    lost: bool,
    /// Event index at which the first replay started recomputing parity.
    replayed_at: Option<u64>,
}

fn val(bytes: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = bytes.get(i * SECTOR_BYTES..(i + 1) * SECTOR_BYTES) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

fn filled(w: u64, sectors: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(sectors as usize * SECTOR_BYTES);
    for _ in 0..sectors {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

/// Rebuild data chunk `chunk` of `stripe` (one sector) from the sources read, the way a
/// degraded read does: members are placed in md's order (data, P, Q) and the missing ones
/// recovered with the reference parity code.
fn rebuild(
    g: &Geometry,
    stripe: u64,
    chunk: usize,
    got: &BTreeMap<usize, Vec<u8>>,
) -> Result<u64, String> {
    let layout = g.layout(stripe).map_err(|e| format!("{e:?}"))?;
    let mut members: Vec<usize> = layout.data_members().iter().map(|m| *m as usize).collect();
    members.extend(layout.p);
    members.extend(layout.q);
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    let mut lost = Vec::new();
    for (i, m) in members.iter().enumerate() {
        match got.get(m) {
            Some(b) => bufs.push(b.clone()),
            None => {
                // Failed, or not needed by this plan (Q when P suffices): rebuilt too.
                bufs.push(vec![0u8; SECTOR_BYTES]);
                lost.push(i);
            }
        }
    }
    let mut refs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
    let r = if layout.q.is_some() {
        recover_pq(&mut refs, &lost)
    } else {
        match lost.as_slice() {
            [one] => recover_p(&mut refs, *one),
            _ => return Err(format!("RAID5 rebuild with {} chunks missing", lost.len())),
        }
    };
    r.map_err(|e| format!("rebuild failed: {e:?}"))?;
    Ok(val(&bufs[chunk], 0))
}

fn encode_frame(node: usize, seq: u64, msg: &Message<'_>) -> Vec<u8> {
    let len = wire::encoded_len(msg).expect("frame fits");
    let mut buf = vec![0u8; len];
    let used = wire::encode::<SimCrc>(msg, node as u32, seq, Some(&mut SimTagger), &mut buf)
        .expect("encode");
    buf.truncate(used);
    buf
}

impl World {
    /// Build the world for `cfg` with these crashes and member failures.
    pub fn new(cfg: &Config, crashes: &[Crash], fails: &[Fail]) -> World {
        let g = Geometry::new(
            cfg.level,
            cfg.members,
            cfg.chunk_sectors,
            cfg.chunk_sectors * cfg.rows,
        )
        .expect("valid simulator geometry");
        let member_bytes = (cfg.chunk_sectors * cfg.rows) as usize * SECTOR_BYTES;
        let nodes = (0..cfg.nodes)
            .map(|id| fresh_node(id, cfg.host_ops, 1))
            .collect();
        let mut crashes = crashes.to_vec();
        crashes.sort_by_key(|c| c.at_event);
        let mut fails = fails.to_vec();
        fails.sort_by_key(|f| f.at_event);
        let mut w = World {
            cfg: *cfg,
            g,
            rng: Rng::new(cfg.seed),
            now: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            events: BTreeMap::new(),
            disks: vec![vec![0u8; member_bytes]; cfg.members],
            nodes,
            arb: Arbiter::default(),
            epoch: 0,
            acks_needed: 0,
            chk: Checker::new(g.logical_sectors()),
            next_rid: 1,
            crashes,
            crashed: 0,
            processed: 0,
            stats: super::Stats::default(),
            failed: cfg.failed,
            fails,
            bits: Bitmaps::new(cfg.nodes, cfg.region_rows.max(1) * cfg.chunk_sectors),
            op_w: BTreeMap::new(),
            resynced_at: None,
            log: vec![vec![SlotCopy::default(); cfg.nodes]; cfg.members],
            lost: false,
            replayed_at: None,
        };
        for n in 0..cfg.nodes {
            w.schedule(0, Ev::Host { node: n });
        }
        w
    }

    fn schedule(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((self.now + delay, self.seq)));
        self.events.insert(self.seq, ev);
    }

    /// A disk read of `sectors` sectors, completing after a random 1 to 5 ticks.
    fn disk_read(&mut self, node: usize, member: usize, sector: u64, sectors: u64, tag: IoTag) {
        let d = self.rng.range(1, 6);
        let stale = self.failed & (1 << member) != 0;
        self.schedule(
            d,
            Ev::DiskRead {
                node,
                member,
                sector,
                sectors,
                tag,
                stale,
            },
        );
    }

    /// A disk write of `bytes`, landing after a random 1 to 5 ticks. The node's write-intent
    /// bit of the region is set durably first (the `SkipBitmap` bug skips it for operations).
    fn disk_write(&mut self, node: usize, member: usize, sector: u64, bytes: Vec<u8>, tag: IoTag) {
        let region = self.bits.region(sector);
        let set = !(self.cfg.fault == Fault::SkipBitmap && matches!(tag, IoTag::OpWrite { .. }));
        if !matches!(tag, IoTag::ReplayWrite { .. }) && self.bits.write_issued(node, region, set) {
            self.stats.bits_set += 1;
        }
        let d = self.rng.range(1, 6);
        self.schedule(
            d,
            Ev::DiskWrite {
                node,
                member,
                sector,
                bytes,
                tag,
            },
        );
    }

    fn violation(&mut self, s: String) {
        self.chk.violations.push(s);
    }

    /// Run to quiescence; return what happened.
    pub fn run(mut self) -> Outcome {
        while let Some(Reverse((t, s))) = self.heap.pop() {
            let Some(ev) = self.events.remove(&s) else {
                continue;
            };
            while let Some(f) = self.fails.first().copied() {
                if f.at_event > self.processed {
                    break;
                }
                self.fails.remove(0);
                if self.failed & (1 << f.member) == 0 {
                    self.failed |= 1 << f.member;
                    self.stats.member_failures += 1;
                }
            }
            let mut whole = false;
            while let Some(c) = self.crashes.first().copied() {
                if c.at_event > self.processed {
                    break;
                }
                self.crashes.remove(0);
                if c.node == ALL {
                    whole = true;
                } else {
                    self.crash(c.node);
                }
            }
            if whole {
                // The event popped was in flight too: it goes with the rest.
                self.events.insert(s, ev);
                self.heap.push(Reverse((t, s)));
                self.crash_all();
                continue;
            }
            self.now = t;
            self.processed += 1;
            self.handle(ev);
            self.check_locks();
            if self.processed > MAX_EVENTS {
                self.violation(format!("runaway: more than {MAX_EVENTS} events"));
                break;
            }
            if self.chk.violations.len() > 20 {
                break;
            }
        }
        self.final_checks();
        Outcome {
            events: self.processed,
            crashes: self.crashed,
            violations: self.chk.violations,
            stats: self.stats,
            resynced_at: self.resynced_at,
            replayed_at: self.replayed_at,
        }
    }

    fn alive_mask(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.alive)
            .fold(0, |m, n| m | 1 << n.id)
    }

    fn crash(&mut self, node: usize) {
        let alive = self.alive_mask();
        if alive & (1 << node) == 0 || alive.count_ones() < 2 {
            return;
        }
        self.crashed += 1;
        self.nodes[node].alive = false;
        // Fencing: the dead node's in-flight disk writes land now or never.
        let pending: Vec<u64> = self
            .events
            .iter()
            .filter(|(_, e)| {
                matches!(e, Ev::DiskWrite { node: n, .. } | Ev::LogWrite { node: n, .. } if *n == node)
            })
            .map(|(s, _)| *s)
            .collect();
        for s in pending {
            match self.events.remove(&s) {
                Some(Ev::DiskWrite {
                    member,
                    sector,
                    bytes,
                    ..
                }) => {
                    let lands = self.rng.chance(1, 2);
                    if lands {
                        self.land(member, sector, &bytes);
                    }
                }
                Some(Ev::LogWrite {
                    member,
                    slot,
                    header,
                    pp,
                    ..
                }) => self.land_log_torn(member, slot, &header, pp.as_deref()),
                _ => {}
            }
        }
        self.arb.mark_dead(node);
        self.epoch += 1;
        self.acks_needed = alive & !(1 << node);
        let dead = !self.acks_needed & ((1u64 << self.nodes.len()) - 1);
        for n in 0..self.nodes.len() {
            if self.acks_needed & (1 << n) != 0 {
                let d = self.rng.range(3, 15);
                let epoch = self.epoch;
                self.schedule(
                    d,
                    Ev::ToNode {
                        to: n,
                        msg: LockMsg::Dead { dead, epoch },
                    },
                );
            }
        }
    }

    /// A member write lands, unless the member has failed meanwhile (nothing reaches it).
    fn land(&mut self, member: usize, sector: u64, bytes: &[u8]) {
        if self.failed & (1 << member) == 0 {
            self.put(member, sector, bytes);
        }
    }

    fn put(&mut self, member: usize, sector: u64, bytes: &[u8]) {
        let at = sector as usize * SECTOR_BYTES;
        if let Some(d) = self.disks.get_mut(member) {
            if let Some(dst) = d.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
    }

    fn get(&self, member: usize, sector: u64, sectors: u64) -> Vec<u8> {
        let at = sector as usize * SECTOR_BYTES;
        let len = sectors as usize * SECTOR_BYTES;
        self.disks[member][at..at + len].to_vec()
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Host { node } => self.host(node),
            Ev::Net { from, to, bytes } => {
                if self.nodes[to].alive {
                    self.net(from, to, &bytes);
                }
            }
            Ev::ToArb { from, stripe, mode } => {
                let out = self.arb.request(from, stripe, mode);
                self.notify(out);
            }
            Ev::MemberAck { from, epoch } => {
                if epoch == self.epoch {
                    self.acks_needed &= !(1 << from);
                    if self.acks_needed == 0 {
                        let out = self.arb.purge();
                        self.notify(out);
                        for n in 0..self.nodes.len() {
                            if self.nodes[n].alive {
                                let d = self.rng.range(1, 4);
                                self.schedule(
                                    d,
                                    Ev::ToNode {
                                        to: n,
                                        msg: LockMsg::RecoverDone { epoch },
                                    },
                                );
                            }
                        }
                    }
                }
            }
            Ev::ToNode { to, msg } => {
                if self.nodes[to].alive {
                    self.lock_msg(to, msg);
                }
            }
            Ev::DiskRead {
                node,
                member,
                sector,
                sectors,
                tag,
                stale,
            } => {
                if stale {
                    self.violation(format!("read issued to failed member {member}"));
                }
                if self.nodes[node].alive {
                    let data = self.get(member, sector, sectors);
                    self.io_done(node, tag, Some(data));
                }
            }
            Ev::DiskWrite {
                node,
                member,
                sector,
                bytes,
                tag,
            } => {
                // Failed before the run: no plan may include it. (A member failing during
                // the run still gets the writes planned before; `land` drops them.)
                if self.cfg.failed & (1 << member) != 0 {
                    self.violation(format!("write to failed member {member}"));
                }
                self.land(member, sector, &bytes);
                if self.nodes[node].alive {
                    if !matches!(tag, IoTag::ReplayWrite { .. }) {
                        let region = self.bits.region(sector);
                        self.bits.write_done(node, region);
                    }
                    self.io_done(node, tag, None);
                }
            }
            Ev::LogWrite {
                node,
                member,
                slot,
                header,
                pp,
                tag,
            } => {
                if self.cfg.failed & (1 << member) != 0 {
                    self.violation(format!("log write to failed member {member}"));
                }
                self.land_log(member, slot, &header, pp.as_deref());
                if self.nodes[node].alive {
                    self.io_done(node, tag, None);
                }
            }
        }
    }

    fn notify(&mut self, out: Vec<(usize, Notice)>) {
        for (to, n) in out {
            let d = self.rng.range(1, 4);
            self.schedule(
                d,
                Ev::ToNode {
                    to,
                    msg: LockMsg::Notice(n),
                },
            );
        }
    }

    fn peers(&self, node: usize) -> u64 {
        let n = &self.nodes[node];
        let all = (1u64 << self.nodes.len()) - 1;
        all & !n.dead & !(1 << node)
    }

    // ---- host requests -------------------------------------------------------------------

    fn host(&mut self, node: usize) {
        if !self.nodes[node].alive {
            return;
        }
        // The bitmap sweep rides on the node's host tick (deterministic, no extra events).
        self.stats.bits_cleared += self.bits.sweep(node);
        let n = &self.nodes[node];
        if n.host_left == 0 {
            return;
        }
        if n.host_inflight >= self.cfg.host_depth {
            return;
        }
        self.nodes[node].host_left -= 1;
        self.nodes[node].host_inflight += 1;
        let cs = self.cfg.chunk_sectors;
        let stripe = self.rng.range(0, self.g.stripes() - 1);
        let offset = self.rng.range(0, cs - 1);
        let sectors = self.rng.range(1, cs - offset);
        if self.rng.chance(3, 5) {
            let dc = self.g.data_chunks();
            let mut chunks = if dc == 1 {
                1
            } else {
                self.rng.next() & ((1u64 << dc) - 1)
            };
            if self.rng.chance(1, 4) {
                chunks = (1u64 << dc) - 1;
            }
            if chunks == 0 {
                chunks = 1 << self.rng.range(0, dc as u64 - 1);
            }
            let req = WriteRequest {
                stripe,
                offset,
                sectors,
                chunks: ChunkSet(chunks),
            };
            let secs: Vec<u64> = (0..dc)
                .filter(|k| chunks >> k & 1 == 1)
                .flat_map(|k| {
                    let base = (stripe * dc as u64 + k as u64) * cs;
                    (offset..offset + sectors).map(move |o| base + o)
                })
                .collect();
            let w = self.chk.new_write(secs.into_iter());
            self.enqueue(node, stripe, Work::Write { w, req });
        } else {
            let dc = self.g.data_chunks() as u64;
            let k = self.rng.range(0, dc - 1);
            let start = (stripe * dc + k) * cs + offset;
            let rid = self.next_rid;
            self.next_rid += 1;
            self.nodes[node].reads.insert(
                rid,
                ReadCtx {
                    start,
                    floors: Vec::new(),
                    left: sectors as usize,
                    values: vec![0; sectors as usize],
                    parts: BTreeMap::new(),
                },
            );
            self.enqueue(node, stripe, Work::Read { rid });
        }
        let d = self.rng.range(0, 5);
        self.schedule(d, Ev::Host { node });
    }

    fn host_done(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.host_inflight -= 1;
        let d = self.rng.range(0, 3);
        self.schedule(d, Ev::Host { node });
    }

    // ---- per-stripe work queue and locks ---------------------------------------------------

    fn enqueue(&mut self, node: usize, stripe: u64, work: Work) {
        let q = self.nodes[node].stripes.entry(stripe).or_default();
        if matches!(
            work,
            Work::Recover { .. } | Work::Resync | Work::Replay { .. }
        ) {
            q.queue.push_front(work);
        } else {
            q.queue.push_back(work);
        }
        self.pump(node, stripe);
    }

    /// Send a lock action; a down-conversion waits until the node's log entry for the stripe,
    /// if live, is retired (another AMF may change the stripe once it has the lock).
    fn send_lock(&mut self, node: usize, stripe: u64, a: LockAction) {
        if let LockAction::Convert(m) = a {
            if m != Mode::Ex && self.retire_before_release(node, stripe, a) {
                return;
            }
        }
        self.send_lock_now(node, stripe, a);
    }

    fn send_lock_now(&mut self, node: usize, stripe: u64, a: LockAction) {
        match a {
            LockAction::Request(m) | LockAction::Convert(m) => {
                let d = self.rng.range(1, 4);
                self.schedule(
                    d,
                    Ev::ToArb {
                        from: node,
                        stripe,
                        mode: m,
                    },
                );
            }
            LockAction::Unlock => self.violation(format!("node {node}: unexpected unlock")),
            LockAction::None | LockAction::Proceed | LockAction::Wait => {}
        }
    }

    fn pump(&mut self, node: usize, stripe: u64) {
        let n = &mut self.nodes[node];
        let paused = n.paused;
        let Some(q) = n.stripes.get_mut(&stripe) else {
            return;
        };
        if q.active {
            return;
        }
        let Some(head) = q.queue.front() else {
            return;
        };
        if paused
            && !matches!(
                head,
                Work::Recover { .. } | Work::Resync | Work::Replay { .. }
            )
        {
            return;
        }
        let mode = head.mode();
        match q.lock.acquire(mode) {
            Ok(LockAction::Proceed) => {
                q.active = true;
                let work = q.queue.pop_front();
                if let Some(work) = work {
                    self.start(node, stripe, work);
                }
            }
            Ok(a) => self.send_lock(node, stripe, a),
            Err(e) => self.violation(format!("node {node}: lock error {e:?}")),
        }
    }

    fn work_done(&mut self, node: usize, stripe: u64) {
        let Some(q) = self.nodes[node].stripes.get_mut(&stripe) else {
            return;
        };
        q.active = false;
        match q.lock.op_done() {
            Ok(a) => self.send_lock(node, stripe, a),
            Err(e) => self.violation(format!("node {node}: lock error {e:?}")),
        }
        self.pump(node, stripe);
    }

    fn lock_msg(&mut self, node: usize, msg: LockMsg) {
        match msg {
            LockMsg::Notice(Notice::Grant(stripe, mode)) => {
                let q = self.nodes[node].stripes.entry(stripe).or_default();
                if let Err(e) = q.lock.granted(mode) {
                    self.violation(format!("node {node}: grant {mode:?} refused: {e:?}"));
                    return;
                }
                self.pump(node, stripe);
                let a = self.nodes[node]
                    .stripes
                    .get_mut(&stripe)
                    .map(|q| q.lock.settle())
                    .unwrap_or(LockAction::None);
                self.send_lock(node, stripe, a);
            }
            LockMsg::Notice(Notice::Bast(stripe, mode)) => {
                let q = self.nodes[node].stripes.entry(stripe).or_default();
                let a = q.lock.blocking(mode);
                self.send_lock(node, stripe, a);
            }
            LockMsg::Dead { dead, epoch } => self.member_dead(node, dead, epoch),
            LockMsg::RecoverDone { epoch } => self.recover_done(node, epoch),
        }
    }

    fn start(&mut self, node: usize, stripe: u64, work: Work) {
        match work {
            Work::Write { w, req } => self.start_write(node, w, req),
            Work::Read { rid } => {
                if !self.serving() {
                    // The host gets an I/O error.
                    self.nodes[node].reads.remove(&rid);
                    self.stats.refused += 1;
                    self.host_done(node);
                    self.work_done(node, stripe);
                    return;
                }
                let Some(r) = self.nodes[node].reads.get(&rid) else {
                    return;
                };
                let (start, len) = (r.start, r.left);
                let mut floors = Vec::new();
                let mut parts = BTreeMap::new();
                let failed = MemberSet(self.failed);
                for i in 0..len {
                    let l = start + i as u64;
                    floors.push(self.chk.read_floor(l));
                    match self.g.read_plan(l, failed) {
                        Ok(ReadPlan::Direct(p)) => {
                            self.disk_read(
                                node,
                                p.member,
                                p.sector,
                                1,
                                IoTag::HostRead { rid, idx: i },
                            );
                        }
                        Ok(ReadPlan::Reconstruct {
                            stripe,
                            chunk,
                            sources,
                            member_sector,
                        }) => {
                            self.stats.degraded_reads += 1;
                            parts.insert(i, (stripe, chunk, sources.len(), BTreeMap::new()));
                            for member in sources.iter() {
                                self.disk_read(
                                    node,
                                    member,
                                    member_sector,
                                    1,
                                    IoTag::HostPart {
                                        rid,
                                        idx: i,
                                        member,
                                    },
                                );
                            }
                        }
                        Err(e) => self.violation(format!("read plan failed: {e:?}")),
                    }
                }
                if let Some(r) = self.nodes[node].reads.get_mut(&rid) {
                    r.floors = floors;
                    r.parts = parts;
                }
            }
            Work::Recover { epoch, ops } => {
                self.nodes[node].rewrites.insert(
                    stripe,
                    RewriteCtx {
                        epoch,
                        ops: ops.into_iter().collect(),
                        left: 0,
                        cur: None,
                        pending: Vec::new(),
                        logged: false,
                    },
                );
                self.next_rewrite(node, stripe);
            }
            Work::Resync => self.start_resync(node, stripe),
            Work::Replay { slot, epoch } => self.start_replay(node, stripe, slot, epoch),
        }
    }

    // ---- write operations -------------------------------------------------------------------

    fn start_write(&mut self, node: usize, w: u64, req: WriteRequest) {
        let plan = match plan_write(&self.g, &req, MemberSet(self.failed)) {
            Ok(_) if !self.serving() => Err(OpError::TooManyFailures),
            r => r,
        };
        let plan = match plan {
            Ok(p) => p,
            Err(OpError::TooManyFailures) => {
                // The host gets an I/O error: nothing written, nothing acked.
                self.stats.refused += 1;
                self.host_done(node);
                self.work_done(node, req.stripe);
                return;
            }
            Err(e) => {
                self.violation(format!("plan failed: {e:?}"));
                return;
            }
        };
        let peers = self.peers(node);
        let n = &mut self.nodes[node];
        let id = n.next_op;
        n.next_op += 1;
        let (op, fx) = WriteOp::start(id, n.epoch, node as u32, req, &plan, peers);
        self.op_w.insert((node, id), w);
        let mut new = BTreeMap::new();
        for k in 0..self.g.data_chunks() {
            if req.chunks.contains(k) {
                new.insert(k as u8, filled(w, req.sectors));
            }
        }
        let len = req.sectors as usize * SECTOR_BYTES;
        n.ops.insert(
            id,
            OpCtx {
                op,
                plan,
                w,
                new,
                reads: vec![None; plan.reads.as_slice().len()],
                p: vec![0; len],
                q: vec![0; len],
                writes_left: 0,
                early: false,
                logged: false,
            },
        );
        if self.cfg.fault == Fault::AckBeforeReplication {
            self.chk.acked(w);
            self.host_done(node);
        }
        self.apply(node, id, fx);
    }

    fn apply(&mut self, node: usize, id: u64, fx: super::super::op::Effects) {
        if let Some(step) = fx.replicate {
            self.replicate(node, id, step);
        }
        if fx.read {
            let ios: Vec<_> = match self.nodes[node].ops.get(&id) {
                Some(c) => c.plan.reads.as_slice().to_vec(),
                None => return,
            };
            for (idx, io) in ios.iter().enumerate() {
                self.disk_read(
                    node,
                    io.member,
                    io.sector,
                    io.sectors,
                    IoTag::OpRead { op: id, idx },
                );
            }
        }
        if fx.compute {
            self.compute(node, id);
            let peers = self.peers(node);
            if self.cfg.fault == Fault::WriteBeforePrepared {
                self.issue_writes(node, id);
                if let Some(c) = self.nodes[node].ops.get_mut(&id) {
                    c.early = true;
                }
                let w = self.nodes[node].ops.get(&id).map(|c| c.w).unwrap_or(0);
                self.chk.acked(w);
                self.host_done(node);
            }
            let fx2 = match self.nodes[node].ops.get_mut(&id) {
                Some(c) => c.op.computed(peers),
                None => return,
            };
            match fx2 {
                Ok(fx2) => self.apply(node, id, fx2),
                Err(e) => self.violation(format!("op error {e:?}")),
            }
        }
        let early = self.nodes[node].ops.get(&id).is_some_and(|c| c.early);
        let broken_ack = matches!(
            self.cfg.fault,
            Fault::AckBeforeReplication | Fault::WriteBeforePrepared
        );
        if fx.ack_host && !broken_ack {
            let w = self.nodes[node].ops.get(&id).map(|c| c.w).unwrap_or(0);
            self.chk.acked(w);
            self.stats.writes_acked += 1;
            self.host_done(node);
        }
        if fx.write {
            if early {
                // Writes already out (broken protocol): report them done at once.
                let peers = self.peers(node);
                if let Some(c) = self.nodes[node].ops.get_mut(&id) {
                    c.writes_left = 0;
                    if c.op.phase() == Phase::Write {
                        if let Ok(fx3) = c.op.writes_done(peers) {
                            let fx3 = super::super::op::Effects {
                                ack_host: false,
                                ..fx3
                            };
                            self.apply(node, id, fx3);
                        }
                    }
                }
            } else {
                self.op_write(node, id);
            }
        }
        if fx.retire {
            let stripe = match self.nodes[node].ops.remove(&id) {
                Some(c) => c.op.req.stripe,
                None => return,
            };
            self.work_done(node, stripe);
        }
    }

    fn compute(&mut self, node: usize, id: u64) {
        let g = self.g;
        let Some(c) = self.nodes[node].ops.get_mut(&id) else {
            return;
        };
        self.chk.ordered(c.w);
        let len = c.op.req.sectors as usize * SECTOR_BYTES;
        let dc = g.data_chunks();
        match c.plan.kind {
            wire::OpKind::FullStripe => self.stats.full_stripe += 1,
            wire::OpKind::ReadModifyWrite => self.stats.rmw += 1,
            wire::OpKind::ReconstructWrite => self.stats.rcw += 1,
            wire::OpKind::Mirror => self.stats.mirror += 1,
        }
        match c.plan.kind {
            wire::OpKind::Mirror => {}
            wire::OpKind::ReadModifyWrite => {
                let mut p = vec![0u8; len];
                let mut q = vec![0u8; len];
                let mut olds: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
                for (io, data) in c.plan.reads.as_slice().iter().zip(c.reads.iter()) {
                    let data = data.clone().unwrap_or_default();
                    match io.what {
                        Block::P => p = data,
                        Block::Q => q = data,
                        Block::Data(k) => {
                            olds.insert(k, data);
                        }
                    }
                }
                for (k, new) in c.new.iter() {
                    let old = olds.get(k).cloned().unwrap_or_else(|| vec![0; len]);
                    let qq = if c.plan.q { Some(&mut q[..]) } else { None };
                    let _ = update_pq(*k as usize, &old, new, &mut p, qq);
                }
                c.p = p;
                c.q = q;
            }
            _ => {
                let mut chunks: Vec<Vec<u8>> = vec![vec![0; len]; dc];
                for (io, data) in c.plan.reads.as_slice().iter().zip(c.reads.iter()) {
                    if let (Block::Data(k), Some(d)) = (io.what, data) {
                        chunks[k as usize] = d.clone();
                    }
                }
                for (k, new) in c.new.iter() {
                    chunks[*k as usize] = new.clone();
                }
                let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
                if c.plan.q {
                    let _ = gen_pq(&refs, &mut c.p, &mut c.q);
                } else {
                    let _ = gen_p(&refs, &mut c.p);
                }
            }
        }
    }

    fn issue_writes(&mut self, node: usize, id: u64) {
        let Some(c) = self.nodes[node].ops.get_mut(&id) else {
            return;
        };
        let mut evs = Vec::new();
        for io in c.plan.writes.as_slice() {
            let bytes = match io.what {
                Block::Data(k) => c.new.get(&k).cloned().unwrap_or_default(),
                Block::P => c.p.clone(),
                Block::Q => c.q.clone(),
            };
            evs.push((io.member, io.sector, bytes));
        }
        c.writes_left = evs.len();
        for (member, sector, bytes) in evs {
            self.disk_write(node, member, sector, bytes, IoTag::OpWrite { op: id });
        }
    }

    fn replicate(&mut self, node: usize, id: u64, step: Step) {
        let peers = self.peers(node);
        self.nodes[node].seq += 1;
        let seq = self.nodes[node].seq;
        let Some(c) = self.nodes[node].ops.get(&id) else {
            return;
        };
        let header = c.op.record(step);
        let mut blocks = Vec::new();
        match step {
            Step::Intent => {
                for (k, b) in c.new.iter() {
                    blocks.push(WireBlock {
                        role: Role::NewData,
                        index: *k,
                        bytes: b,
                    });
                }
            }
            Step::Prepared => {
                if c.plan.p {
                    blocks.push(WireBlock {
                        role: Role::NewP,
                        index: 0,
                        bytes: &c.p,
                    });
                }
                if c.plan.q {
                    blocks.push(WireBlock {
                        role: Role::NewQ,
                        index: 0,
                        bytes: &c.q,
                    });
                }
            }
            Step::Done => {}
        }
        let msg = Message::Record(header, &blocks);
        let frame = encode_frame(node, seq, &msg);
        for to in 0..self.nodes.len() {
            if peers & (1 << to) != 0 {
                let d = self.rng.range(1, 8);
                self.schedule(
                    d,
                    Ev::Net {
                        from: node,
                        to,
                        bytes: frame.clone(),
                    },
                );
            }
        }
    }

    fn encode(&mut self, node: usize, msg: &Message<'_>) -> Vec<u8> {
        let n = &mut self.nodes[node];
        n.seq += 1;
        encode_frame(node, n.seq, msg)
    }

    fn send(&mut self, from: usize, to: usize, msg: &Message<'_>) {
        let bytes = self.encode(from, msg);
        let d = self.rng.range(1, 8);
        self.schedule(d, Ev::Net { from, to, bytes });
    }

    // ---- replication channel ------------------------------------------------------------------

    fn net(&mut self, from: usize, to: usize, bytes: &[u8]) {
        let frame = match wire::decode::<SimCrc>(bytes) {
            Ok((f, _)) => f,
            Err(e) => {
                self.violation(format!("decode failed: {e:?}"));
                return;
            }
        };
        if frame.verify(&mut SimTagger).is_err() {
            self.violation("tag did not verify".into());
            return;
        }
        if self.nodes[to].dead & (1 << from) != 0 {
            return;
        }
        match frame.body {
            Body::Record(r) => {
                let h = r.header;
                if let Err(e) = validate_record(&self.g, &r, SECTOR_BYTES) {
                    self.violation(format!("node {to}: invalid record from {from}: {e:?}"));
                    return;
                }
                let key = (h.owner, h.op_id);
                let owner_dead = self.nodes[to].dead & (1 << h.owner) != 0;
                let merged = self.nodes[to].table.receive(h, owner_dead);
                match merged {
                    Err(e) => {
                        self.violation(format!("node {to}: record table {e:?}"));
                        return;
                    }
                    Ok(Merge::Refuse) => return,
                    Ok(Merge::Ignore) => {}
                    Ok(Merge::Store) => {
                        let e = self.nodes[to].held.entry(key).or_default();
                        for b in r.blocks() {
                            match b.role {
                                Role::NewData => {
                                    e.data.insert(b.index, b.bytes.to_vec());
                                }
                                Role::NewP => e.p = Some(b.bytes.to_vec()),
                                Role::NewQ => e.q = Some(b.bytes.to_vec()),
                                _ => {}
                            }
                        }
                        if h.step == Step::Done {
                            // Retired: nothing left to recover (stop-and-wait replication
                            // means no older record of this op can still arrive).
                            self.nodes[to].held.remove(&key);
                        }
                    }
                }
                let ack = Message::Ack(Ack {
                    op_id: h.op_id,
                    generation: h.generation,
                    owner: h.owner,
                    step: h.step,
                    status: AckStatus::Ok,
                });
                self.send(to, from, &ack);
            }
            Body::Ack(a) => {
                let peers_ok = a.owner as usize == to;
                let fx = match self.nodes[to].ops.get_mut(&a.op_id) {
                    Some(c) if peers_ok => c.op.ack(from as u32, a.step).ok(),
                    _ => None,
                };
                if let Some(fx) = fx {
                    self.apply(to, a.op_id, fx);
                }
            }
            Body::Recovery(rc) => self.recovery_msg(from, to, rc),
            Body::Hello(_) | Body::Proof(_) | Body::Confirm(_) => {}
        }
    }

    // ---- membership and recovery -------------------------------------------------------------

    fn member_dead(&mut self, node: usize, dead: u64, epoch: u64) {
        let n = &mut self.nodes[node];
        if epoch <= n.epoch {
            return;
        }
        let newly = dead & !n.dead;
        n.dead |= dead;
        n.epoch = epoch;
        n.paused = true;
        n.rec = None;
        let ids: Vec<u64> = n.ops.keys().copied().collect();
        for lost in 0..64u32 {
            if newly & (1 << lost) == 0 {
                continue;
            }
            for id in ids.iter() {
                let fx = match self.nodes[node].ops.get_mut(id) {
                    Some(c) => c.op.peer_lost(lost),
                    None => continue,
                };
                self.apply(node, *id, fx);
            }
        }
        let d = self.rng.range(1, 4);
        self.schedule(d, Ev::MemberAck { from: node, epoch });
    }

    fn recover_done(&mut self, node: usize, epoch: u64) {
        let n = &self.nodes[node];
        if n.epoch != epoch {
            return;
        }
        let live = ((1u64 << self.nodes.len()) - 1) & !n.dead;
        if recovery::recoverer(live) != Some(node as u32) {
            return;
        }
        let dead = n.dead;
        let mut recs = vec![
            HeldRecord {
                header: RecordHeader {
                    op_id: 0,
                    generation: 0,
                    stripe: 0,
                    owner: 0,
                    step: Step::Done,
                    kind: wire::OpKind::Mirror,
                    offset: 0,
                    sectors: 0,
                    chunks: 0,
                },
            };
            TABLE_SLOTS
        ];
        let count = n.table.collect(dead, &mut recs);
        recs.truncate(count);
        let mut by_stripe: BTreeMap<u64, Vec<(u32, u64)>> = BTreeMap::new();
        for r in &recs {
            let act = recovery::action(r.header.step);
            match act {
                RecAction::Rewrite => self.stats.rewrites += 1,
                RecAction::RollBack => self.stats.rollbacks += 1,
                RecAction::Forget => {}
            }
            if act == RecAction::Rewrite && self.cfg.fault != Fault::SkipRecovery {
                by_stripe
                    .entry(r.header.stripe)
                    .or_default()
                    .push((r.header.owner, r.header.op_id));
            }
        }
        self.stats.recoveries += 1;
        // The dead AMFs' live log entries are replayed (and retired) first: their stripes
        // may be torn, and the rewrites change them.
        let replays = if self.cfg.ppl {
            self.live_slots(dead)
        } else {
            Vec::new()
        };
        self.nodes[node].rec = Some(RecCtx {
            coord: Coordinator::new(dead, epoch),
            stripes_left: by_stripe.len(),
            replays_left: replays.len(),
            rewrites: BTreeMap::new(),
        });
        if replays.is_empty() {
            self.start_rewrites(node, epoch, by_stripe);
            return;
        }
        if let Some(rec) = self.nodes[node].rec.as_mut() {
            rec.rewrites = by_stripe;
        }
        for (slot, stripe) in replays {
            self.enqueue(
                node,
                stripe,
                Work::Replay {
                    slot,
                    epoch: Some(epoch),
                },
            );
        }
    }

    fn start_rewrites(
        &mut self,
        node: usize,
        epoch: u64,
        by_stripe: BTreeMap<u64, Vec<(u32, u64)>>,
    ) {
        if by_stripe.is_empty() {
            self.rewrites_finished(node);
            return;
        }
        for (stripe, ops) in by_stripe {
            self.enqueue(node, stripe, Work::Recover { epoch, ops });
        }
    }

    fn next_rewrite(&mut self, node: usize, stripe: u64) {
        loop {
            let Some(rw) = self.nodes[node].rewrites.get_mut(&stripe) else {
                return;
            };
            let Some(key) = rw.ops.pop_front() else {
                let epoch = rw.epoch;
                self.nodes[node].rewrites.remove(&stripe);
                self.work_done(node, stripe);
                let stale = match self.nodes[node].rec.as_mut() {
                    Some(r) if r.coord.epoch == epoch => {
                        r.stripes_left = r.stripes_left.saturating_sub(1);
                        r.stripes_left != 0
                    }
                    _ => true,
                };
                if !stale {
                    self.rewrites_finished(node);
                }
                return;
            };
            let Some(h) = self.nodes[node].table.get(key.0, key.1).map(|r| r.header) else {
                // Dropped meanwhile by a Complete of an older recovery: already on disk.
                continue;
            };
            let held = self.nodes[node].held.get(&key).cloned().unwrap_or_default();
            let ios = match recovery::rewrite_ios(&self.g, &h, MemberSet(self.failed)) {
                Ok(ios) => ios,
                Err(_) if !self.serving() => continue,
                Err(e) => {
                    self.violation(format!("rewrite plan failed: {e:?}"));
                    continue;
                }
            };
            let mut evs = Vec::new();
            for io in ios.as_slice() {
                let bytes = match io.what {
                    Block::Data(k) => held.data.get(&k).cloned(),
                    Block::P => held.p.clone(),
                    Block::Q => held.q.clone(),
                };
                match bytes {
                    Some(b) => evs.push((io.member, io.sector, b)),
                    None => {
                        self.violation(format!("record {key:?} lacks {:?} for a rewrite", io.what))
                    }
                }
            }
            if evs.is_empty() {
                continue;
            }
            if let Some(rw) = self.nodes[node].rewrites.get_mut(&stripe) {
                rw.left = evs.len();
                rw.cur = Some(key);
                rw.pending = evs;
            }
            if self.cfg.ppl {
                self.rewrite_write(node, &h, &held);
            } else {
                self.issue_rewrite(node, stripe);
            }
            return;
        }
    }

    /// Issue the writes of the record being rewritten on `stripe`.
    fn issue_rewrite(&mut self, node: usize, stripe: u64) {
        let evs = match self.nodes[node].rewrites.get_mut(&stripe) {
            Some(rw) => std::mem::take(&mut rw.pending),
            None => Vec::new(),
        };
        for (member, sector, bytes) in evs {
            self.disk_write(node, member, sector, bytes, IoTag::Rewrite { stripe });
        }
    }

    fn rewrites_finished(&mut self, node: usize) {
        let others = self.peers(node);
        let n = &mut self.nodes[node];
        let dead = n.dead;
        n.table.drop_owners(dead);
        n.held.retain(|(owner, _), _| dead & (1 << owner) == 0);
        let epoch = n.epoch;
        let Some(rec) = n.rec.as_mut() else { return };
        if rec.coord.rewrites_done(others) {
            self.check_after_recovery();
            self.resume(node);
            return;
        }
        let msg = Message::Recovery(Recovery {
            dead: (63 - dead.leading_zeros()),
            phase: RecoveryPhase::Complete,
            epoch,
        });
        for to in 0..self.nodes.len() {
            if others & (1 << to) != 0 {
                self.send(node, to, &msg);
            }
        }
    }

    fn recovery_msg(&mut self, from: usize, to: usize, rc: Recovery) {
        if rc.epoch != self.nodes[to].epoch {
            return;
        }
        match rc.phase {
            RecoveryPhase::Complete => {
                let is_echo = self.nodes[to]
                    .rec
                    .as_ref()
                    .is_some_and(|r| r.coord.epoch == rc.epoch);
                if is_echo {
                    let done = self.nodes[to]
                        .rec
                        .as_mut()
                        .is_some_and(|r| r.coord.completed_by(from as u32));
                    if done {
                        self.check_after_recovery();
                        let others = self.peers(to);
                        let msg = Message::Recovery(Recovery {
                            phase: RecoveryPhase::Resume,
                            ..rc
                        });
                        for n in 0..self.nodes.len() {
                            if others & (1 << n) != 0 {
                                self.send(to, n, &msg);
                            }
                        }
                        self.resume(to);
                    }
                } else {
                    let dead = self.nodes[to].dead;
                    self.nodes[to].table.drop_owners(dead);
                    self.nodes[to]
                        .held
                        .retain(|(owner, _), _| dead & (1 << owner) == 0);
                    self.send(to, from, &Message::Recovery(rc));
                }
            }
            RecoveryPhase::Resume => self.resume(to),
        }
    }

    fn resume(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.paused = n.restarting;
        n.rec = None;
        let stripes: Vec<u64> = n.stripes.keys().copied().collect();
        for s in stripes {
            self.pump(node, s);
        }
    }

    // ---- I/O completion -------------------------------------------------------------------

    fn io_done(&mut self, node: usize, tag: IoTag, data: Option<Vec<u8>>) {
        match tag {
            IoTag::OpRead { op, idx } => {
                let fx = match self.nodes[node].ops.get_mut(&op) {
                    Some(c) => {
                        if let Some(slot) = c.reads.get_mut(idx) {
                            *slot = data;
                        }
                        if c.reads.iter().all(|r| r.is_some()) {
                            c.op.reads_done().ok()
                        } else {
                            None
                        }
                    }
                    None => None,
                };
                if let Some(fx) = fx {
                    self.apply(node, op, fx);
                }
            }
            IoTag::OpWrite { op } => {
                let peers = self.peers(node);
                let mut durable = None;
                let mut release = false;
                let fx = match self.nodes[node].ops.get_mut(&op) {
                    Some(c) if !c.early => {
                        c.writes_left -= 1;
                        if c.writes_left == 0 {
                            durable = Some(c.w);
                            release = std::mem::take(&mut c.logged);
                            c.op.writes_done(peers).ok()
                        } else {
                            None
                        }
                    }
                    _ => None,
                };
                if let Some(w) = durable {
                    self.chk.durable(w);
                }
                if release {
                    self.slot_release(node);
                }
                if let Some(fx) = fx {
                    self.apply(node, op, fx);
                }
            }
            IoTag::HostPart { rid, idx, member } => {
                let g = self.g;
                let value = match self.nodes[node].reads.get_mut(&rid) {
                    Some(r) => match r.parts.get_mut(&idx) {
                        Some((stripe, chunk, missing, got)) => {
                            got.insert(member, data.unwrap_or_default());
                            *missing -= 1;
                            if *missing == 0 {
                                Some(rebuild(&g, *stripe, *chunk, got))
                            } else {
                                None
                            }
                        }
                        None => None,
                    },
                    None => None,
                };
                if let Some(v) = value {
                    let v = match v {
                        Ok(v) => v,
                        Err(e) => {
                            self.violation(e);
                            0
                        }
                    };
                    self.sector_read(node, rid, idx, v);
                }
            }
            IoTag::HostRead { rid, idx } => {
                let v = val(data.as_deref().unwrap_or(&[]), 0);
                self.sector_read(node, rid, idx, v);
            }
            IoTag::Rewrite { stripe } => {
                let mut release = false;
                let next = match self.nodes[node].rewrites.get_mut(&stripe) {
                    Some(rw) => {
                        rw.left -= 1;
                        if rw.left == 0 {
                            release = std::mem::take(&mut rw.logged);
                        }
                        (rw.left == 0).then_some(rw.cur)
                    }
                    None => None,
                };
                if release {
                    self.slot_release(node);
                }
                if let Some(cur) = next {
                    let w = cur.and_then(|(o, id)| self.op_w.get(&(o as usize, id)).copied());
                    if let Some(w) = w {
                        self.chk.durable(w);
                    }
                    self.next_rewrite(node, stripe);
                }
            }
            IoTag::ResyncRead { stripe, idx } => {
                let all = match self.nodes[node].resync.get_mut(&stripe) {
                    Some(c) => gathered(&mut c.got, &mut c.left, idx, data),
                    None => false,
                };
                if all {
                    self.resync_write(node, stripe);
                }
            }
            IoTag::SlotCopy => self.slot_copy_done(node),
            IoTag::ReplayRead { stripe, idx } => self.replay_read_done(node, stripe, idx, data),
            IoTag::ReplayWrite { stripe } | IoTag::ReplayRetire { stripe } => {
                self.replay_write_done(node, stripe)
            }
            IoTag::ResyncWrite { stripe } => {
                let all = match self.nodes[node].resync.get_mut(&stripe) {
                    Some(c) => {
                        c.writes_left -= 1;
                        c.writes_left == 0
                    }
                    None => false,
                };
                if all {
                    self.finish_resync(node, stripe);
                }
            }
        }
    }

    fn sector_read(&mut self, node: usize, rid: u64, idx: usize, v: u64) {
        let done = match self.nodes[node].reads.get_mut(&rid) {
            Some(r) => {
                r.values[idx] = v;
                r.left -= 1;
                r.left == 0
            }
            None => false,
        };
        if !done {
            return;
        }
        if let Some(r) = self.nodes[node].reads.remove(&rid) {
            self.stats.reads_checked += 1;
            for (i, v) in r.values.iter().enumerate() {
                let l = r.start + i as u64;
                self.chk.read_result("host read", l, *v, r.floors[i]);
            }
            let stripe = self.g.map(r.start).map(|l| l.stripe).unwrap_or(0);
            self.host_done(node);
            self.work_done(node, stripe);
        }
    }

    // ---- invariants -----------------------------------------------------------------------

    fn check_locks(&mut self) {
        if let Some((s, a, b)) = self.arb.conflict() {
            self.violation(format!(
                "arbiter granted conflicting locks on stripe {s} to {a} and {b}"
            ));
        }
        let mut seen: BTreeMap<u64, Vec<(usize, Mode)>> = BTreeMap::new();
        for n in self.nodes.iter().filter(|n| n.alive) {
            for (s, q) in n.stripes.iter() {
                let m = q.lock.held();
                if m != Mode::Nl {
                    seen.entry(*s).or_default().push((n.id, m));
                }
            }
        }
        for (s, v) in seen {
            for (i, (a, ma)) in v.iter().enumerate() {
                for (b, mb) in v.iter().skip(i + 1) {
                    if !ma.compatible(*mb) {
                        self.violation(format!(
                            "nodes {a} ({ma:?}) and {b} ({mb:?}) both hold stripe {s}"
                        ));
                    }
                }
            }
        }
    }

    /// Redundancy of stripe `s` is consistent: rebuild what failed members held from the
    /// rest, then every live parity member must match the data; live mirror copies agree.
    fn stripe_consistent(&self, s: u64) -> Result<(), String> {
        let g = self.g;
        let cs = g.chunk_sectors();
        let failed = self.failed;
        let layout = g.layout(s).map_err(|e| format!("{e:?}"))?;
        if !matches!(g.level(), Level::Raid5 | Level::Raid6) {
            for off in 0..cs {
                let l = s * cs + off;
                if g.level() == Level::Raid0 || l >= g.logical_sectors() {
                    break;
                }
                let copies = g.copies(l).map_err(|e| format!("{e:?}"))?;
                let vals: Vec<u64> = copies
                    .as_slice()
                    .iter()
                    .filter(|p| failed & (1 << p.member) == 0)
                    .map(|p| val(&self.get(p.member, p.sector, 1), 0))
                    .collect();
                if vals.iter().any(|v| *v != vals[0]) {
                    return Err(format!("sector {l}: mirror copies differ {vals:?}"));
                }
            }
            return Ok(());
        }
        let mut members: Vec<usize> = layout.data_members().iter().map(|m| *m as usize).collect();
        members.extend(layout.p);
        members.extend(layout.q);
        let mut bufs: Vec<Vec<u8>> = members
            .iter()
            .map(|m| self.get(*m, layout.member_sector, cs))
            .collect();
        let lost: Vec<usize> = (0..members.len())
            .filter(|i| failed & (1 << members[*i]) != 0)
            .collect();
        let mut refs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        let r = match (lost.as_slice(), layout.q.is_some()) {
            ([], _) => Ok(()),
            (_, true) => recover_pq(&mut refs, &lost),
            ([one], false) => recover_p(&mut refs, *one),
            _ => Ok(()),
        };
        if r.is_err() {
            return Err(format!("stripe {s}: cannot rebuild {lost:?}"));
        }
        let k = layout.data_members().len();
        let refs: Vec<&[u8]> = bufs[..k].iter().map(|b| b.as_slice()).collect();
        let len = cs as usize * SECTOR_BYTES;
        let (mut p, mut q) = (vec![0u8; len], vec![0u8; len]);
        let _ = gen_pq(&refs, &mut p, &mut q);
        if bufs[k] != p {
            return Err(format!("stripe {s}: P inconsistent"));
        }
        if layout.q.is_some() && bufs[k + 1] != q {
            return Err(format!("stripe {s}: Q inconsistent"));
        }
        Ok(())
    }

    /// Right after a recovery: every stripe nobody is working on must be consistent.
    fn check_after_recovery(&mut self) {
        if !self.serving() {
            return;
        }
        for st in 0..self.g.stripes() {
            let busy = self
                .nodes
                .iter()
                .any(|n| n.alive && n.stripes.get(&st).is_some_and(|q| q.active));
            if !busy {
                if let Err(e) = self.stripe_consistent(st) {
                    self.violation(format!("after recovery: {e}"));
                }
            }
        }
    }

    fn final_checks(&mut self) {
        for n in 0..self.nodes.len() {
            let node = &self.nodes[n];
            if node.alive
                && (node.host_left > 0
                    || node.host_inflight > 0
                    || node.paused
                    || !node.ops.is_empty()
                    || node.slot.busy()
                    || !node.replays.is_empty())
            {
                let msg = format!(
                    "stuck: node {n} left {} inflight {} paused {} ops {} log slot busy {} replays {}",
                    node.host_left,
                    node.host_inflight,
                    node.paused,
                    node.ops.len(),
                    node.slot.busy(),
                    node.replays.len()
                );
                self.violation(msg);
            }
        }
        self.chk.final_check();
        if !self.serving() {
            // The group stopped serving (more members failed than it tolerates, or a replay
            // could not run): what it holds is not read any more.
            return;
        }
        let g = self.g;
        for st in 0..g.stripes() {
            if let Err(e) = self.stripe_consistent(st) {
                self.violation(e);
            }
        }
        // Every sector: the value read (rebuilt if need be) is at least as new as required.
        let failed = self.failed;
        for l in 0..g.logical_sectors() {
            let v = match g.read_plan(l, MemberSet(failed)) {
                Ok(ReadPlan::Direct(p)) => val(&self.get(p.member, p.sector, 1), 0),
                Ok(ReadPlan::Reconstruct {
                    stripe,
                    chunk,
                    sources,
                    member_sector,
                }) => {
                    let got: BTreeMap<usize, Vec<u8>> = sources
                        .iter()
                        .map(|m| (m, self.get(m, member_sector, 1)))
                        .collect();
                    match rebuild(&g, stripe, chunk, &got) {
                        Ok(v) => v,
                        Err(e) => {
                            self.violation(e);
                            continue;
                        }
                    }
                }
                Err(e) => {
                    self.violation(format!("sector {l}: unreadable: {e:?}"));
                    continue;
                }
            };
            let floor = self.chk.read_floor(l);
            self.chk.read_result("final state", l, v, floor);
        }
    }
}
