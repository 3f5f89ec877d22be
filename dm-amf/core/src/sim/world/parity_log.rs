// SPDX-License-Identifier: GPL-2.0
//! The partial parity log (`crate::ppl`) in the simulated cluster, with the real entry
//! format: what closes the write hole of a degraded RAID5/6 group.
//!
//! Each AMF owns one node slot, a copy of which lives on every member (durable simulator
//! state, like the bitmaps). Before a write to a stripe that `ppl::needs_log` says needs an
//! entry, the AMF writes the entry (header and partial parity: the new P/Q minus the new data
//! of the written chunks on present members) to every live member, each copy its own
//! crash-injectable write (at a crash a copy lands whole, not at all, or torn: header without
//! its partial parity or the reverse); only then the data and parity. The slot is the write's
//! until those complete, then the entry stays live (lazily) until the stripe may change
//! otherwise: the node's next entry replaces it, and before its lock on the stripe goes down
//! (another AMF may then write the stripe) or a write to the stripe without an entry, the
//! node retires it (a Retired entry with a higher sequence number).
//!
//! Replay: after a whole-group crash every restarting AMF replays the live entry of every
//! slot (so a slot whose AMF does not come back is covered too) before its bitmap resync and
//! before it serves; the takeover of a dead AMF replays the dead one's slot before it
//! rewrites its operations (which it logs in its own slot, like writes). Under the stripe's
//! lock the newest valid copy of the slot (highest sequence number) is read again; if it is
//! still live for the stripe, P := ppP xor the written present chunks as they are now,
//! Q := ppQ xor their syndrome, written to the parity members that are there, then the entry
//! is retired (the other replays of it then find it so). If a written chunk's member has
//! failed meanwhile, the replay cannot know what it holds: it skips, writing nothing, and the
//! group stops serving (as md refuses to start an array whose log cannot be replayed).

use super::super::super::geometry::{Level, MemberSet, StripeLayout};
use super::super::super::lock::Action as LockAction;
use super::super::super::op::{ChunkSet, WriteRequest};
use super::super::super::parity::update_pq;
use super::super::super::ppl::{self, Entry, EntryState, HEADER_BYTES};
use super::super::super::wire::{Crc32c, RecordHeader};
use super::{Ev, Held, IoTag, SimCrc, World, SECTOR_BYTES};
use std::collections::{BTreeMap, VecDeque};
use std::format;
use std::vec;
use std::vec::Vec;

/// The simulated group's identity in the entries.
const GROUP: [u8; 16] = *b"amf-sim-ppl-grp1";
const CTIME: u64 = 1;
/// Bytes of a sector in the entry's partial parity area (the unit the header counts in).
const PP_SECTOR: usize = 512;

/// One member's copy of one node slot, as on disk: the header block and the partial parity
/// area (each simulated sector padded to 512 bytes). Empty: never written (zeros).
#[derive(Clone, Default)]
pub(super) struct SlotCopy {
    header: Vec<u8>,
    pp: Vec<u8>,
}

/// What follows once a slot job's entry is on every live member.
#[derive(Clone, Copy, Debug)]
enum After {
    /// Issue an operation's member writes (a logged one holds the slot until they complete).
    Op(u64),
    /// Issue the pending writes of the rewrite on the job's stripe (held likewise).
    Rewrite,
    /// Send this down-conversion of the job's stripe's lock.
    Lock(LockAction),
}

/// A use of the node's own slot; the slot serves one at a time.
#[derive(Clone, Debug)]
struct SlotJob {
    stripe: u64,
    /// A Live entry (compact partial parity) to log, or `None`: retire the slot's entry if it
    /// is live for `stripe`.
    log: Option<(Entry, Vec<u8>)>,
    then: After,
}

/// A node's own slot, as the node knows it (memory: lost at a crash, read again at boot).
#[derive(Default)]
pub(super) struct Slot {
    /// Highest sequence number written (or found at boot) in the slot.
    seq: u64,
    /// The slot's newest entry on the members, when it is live (durable on every live member).
    live: Option<Entry>,
    jobs: VecDeque<SlotJob>,
    /// A job runs: its entry copies are in flight, or its write holds the slot.
    running: bool,
    /// Entry copies of the running job still in flight.
    left: usize,
    /// The running job, with the entry it writes (its sequence number set).
    cur: Option<(SlotJob, Option<Entry>)>,
}

impl Slot {
    /// Whether a job runs or waits.
    pub(super) fn busy(&self) -> bool {
        self.running || !self.jobs.is_empty()
    }
}

/// One replay of a live entry.
pub(super) struct ReplayCtx {
    slot: usize,
    epoch: Option<u64>,
    entry: Entry,
    layout: StripeLayout,
    /// Compact partial parity: P, then Q.
    pp: Vec<u8>,
    /// (data chunk, member) of each written present chunk, read as it is now.
    reads: Vec<(usize, usize)>,
    got: Vec<Option<Vec<u8>>>,
    left: usize,
    /// Parity written: the Retired entry's copies are in flight.
    retiring: bool,
}

/// Partial parity as the entry stores it: each simulated sector padded to 512 bytes.
fn expand(compact: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; compact.len() / SECTOR_BYTES * PP_SECTOR];
    for (i, s) in compact.chunks(SECTOR_BYTES).enumerate() {
        if let Some(d) = out.get_mut(i * PP_SECTOR..i * PP_SECTOR + s.len()) {
            d.copy_from_slice(s);
        }
    }
    out
}

fn compact(expanded: &[u8]) -> Vec<u8> {
    expanded
        .chunks(PP_SECTOR)
        .flat_map(|s| s.iter().take(SECTOR_BYTES).copied())
        .collect()
}

impl World {
    /// Whether the group still serves host I/O: not after a replay had to be skipped, nor
    /// with more members failed than the level tolerates.
    pub(super) fn serving(&self) -> bool {
        if self.lost {
            return false;
        }
        match self.g.level() {
            Level::Raid5 | Level::Raid6 => {
                self.failed.count_ones() as usize <= self.g.parity_chunks()
            }
            _ => true,
        }
    }

    // ---- the copies on the members ----------------------------------------------------------

    /// The newest valid copy of node slot `slot` on the live members (a Retired header is
    /// valid alone; a Live one with its whole partial parity) with that parity (compact), and
    /// the highest sequence number of any header that checks out (a new entry goes above it).
    fn slot_read(&self, slot: usize) -> (Option<(Entry, Vec<u8>)>, u64) {
        let mut best: Option<(Entry, &[u8])> = None;
        let mut max = 0;
        for (m, copies) in self.log.iter().enumerate() {
            let Some(c) = copies.get(slot) else { continue };
            if self.failed & (1 << m) != 0 || c.header.is_empty() {
                continue;
            }
            let Ok(e) = ppl::decode::<SimCrc>(&c.header, &GROUP, CTIME, slot as u8, &self.g) else {
                continue;
            };
            max = max.max(e.seq);
            let valid = e.state == EntryState::Retired || e.pp_matches::<SimCrc>(&c.pp);
            if valid && best.as_ref().map_or(true, |(b, _)| e.newer_than(b)) {
                best = Some((e, &c.pp));
            }
        }
        (best.map(|(e, pp)| (e, compact(pp))), max)
    }

    /// The slots in `mask` whose newest valid entry is live, with its stripe.
    pub(super) fn live_slots(&self, mask: u64) -> Vec<(usize, u64)> {
        (0..self.nodes.len())
            .filter(|s| mask >> s & 1 == 1)
            .filter_map(|s| match self.slot_read(s).0 {
                Some((e, _)) if e.state == EntryState::Live => Some((s, e.stripe)),
                _ => None,
            })
            .collect()
    }

    /// Write `e` (with partial parity `pp`, compact, or the header alone) to node slot
    /// `slot` on every live member: one write per member. Returns how many.
    fn write_copies(
        &mut self,
        node: usize,
        slot: usize,
        e: &Entry,
        pp: Option<&[u8]>,
        tag: IoTag,
    ) -> usize {
        let mut header = [0u8; HEADER_BYTES];
        ppl::encode::<SimCrc>(e, &mut header);
        let pp = pp.map(expand);
        let mut n = 0;
        for member in 0..self.cfg.members {
            if self.failed & (1 << member) != 0 {
                continue;
            }
            let d = self.rng.range(1, 6);
            self.schedule(
                d,
                Ev::LogWrite {
                    node,
                    member,
                    slot,
                    header: header.to_vec(),
                    pp: pp.clone(),
                    tag: tag.clone(),
                },
            );
            n += 1;
        }
        n
    }

    /// A log write lands whole (unless the member has failed meanwhile).
    pub(super) fn land_log(
        &mut self,
        member: usize,
        slot: usize,
        header: &[u8],
        pp: Option<&[u8]>,
    ) {
        self.land_log_parts(member, slot, header, pp, true, true);
    }

    /// A log write in flight at a crash: it lands whole, not at all, or torn (the header
    /// without the partial parity, or the reverse).
    pub(super) fn land_log_torn(
        &mut self,
        member: usize,
        slot: usize,
        header: &[u8],
        pp: Option<&[u8]>,
    ) {
        let (h, p) = if pp.is_some() {
            let r = self.rng.range(0, 3);
            (r & 1 == 1, r & 2 == 2)
        } else {
            (self.rng.chance(1, 2), false)
        };
        if !(h && (p || pp.is_none())) {
            self.stats.log_torn += 1;
        }
        self.land_log_parts(member, slot, header, pp, h, p);
    }

    fn land_log_parts(
        &mut self,
        member: usize,
        slot: usize,
        header: &[u8],
        pp: Option<&[u8]>,
        h: bool,
        p: bool,
    ) {
        if self.failed & (1 << member) != 0 {
            return;
        }
        let Some(c) = self.log.get_mut(member).and_then(|m| m.get_mut(slot)) else {
            return;
        };
        if h {
            c.header = header.to_vec();
        }
        if let (true, Some(pp)) = (p, pp) {
            c.pp = pp.to_vec();
        }
    }

    // ---- logging writes ---------------------------------------------------------------------

    /// The entry (sequence number still 0) and compact partial parity of a write of `req`
    /// whose new parity is `p`/`q` and new data `new`, with the members failed now.
    fn log_entry(
        &mut self,
        node: usize,
        req: &WriteRequest,
        layout: &StripeLayout,
        p: Option<&[u8]>,
        q: Option<&[u8]>,
        new: &BTreeMap<u8, Vec<u8>>,
    ) -> (Entry, Vec<u8>) {
        let parity = self.g.parity_chunks();
        let failed = MemberSet(self.failed);
        if req.sectors > ppl::max_sectors(parity) {
            self.violation(format!("logged write of {} sectors", req.sectors));
        }
        let len = req.sectors as usize * SECTOR_BYTES;
        let written = ppl::written_present(req, layout, failed);
        let block = |b: Option<&[u8]>| match b {
            Some(b) if b.len() == len => b.to_vec(),
            _ => vec![0; len],
        };
        let (mut pp_p, mut pp_q) = (block(p), block(q));
        let zeros = vec![0u8; len];
        for (k, d) in new.iter() {
            if written.contains(usize::from(*k)) {
                let q = if parity == 2 {
                    Some(pp_q.as_mut_slice())
                } else {
                    None
                };
                let _ = update_pq(usize::from(*k), &zeros, d, &mut pp_p, q);
            }
        }
        // A failed parity member's block is never replayed.
        for (m, b) in [(layout.p, &mut pp_p), (layout.q, &mut pp_q)] {
            if !m.is_some_and(|m| !failed.contains(m)) {
                b.fill(0);
            }
        }
        let mut pp = pp_p;
        if parity == 2 {
            pp.extend_from_slice(&pp_q);
        }
        let e = Entry {
            group: GROUP,
            ctime: CTIME,
            slot: node as u8,
            state: EntryState::Live,
            seq: 0,
            stripe: req.stripe,
            offset: req.offset as u32,
            sectors: req.sectors as u32,
            written: written.0,
            parity: parity as u8,
            pp_crc: SimCrc::crc32c(&expand(&pp)),
        };
        (e, pp)
    }

    /// Whether the newest entry of the node's slot on some member may be live for `stripe`
    /// (`live` only moves on once a newer entry is on every live member).
    fn slot_pins(&self, node: usize, stripe: u64) -> bool {
        let s = &self.nodes[node].slot;
        s.live.is_some_and(|e| e.stripe == stripe)
    }

    /// Operation `id` computed its parity and may write: log it first if its stripe needs
    /// it; retire the slot's live entry for the stripe first if it does not.
    pub(super) fn op_write(&mut self, node: usize, id: u64) {
        let Some(c) = self.nodes[node].ops.get(&id) else {
            return;
        };
        let req = c.op.req;
        let failed = MemberSet(self.failed);
        let layout = match self.g.layout(req.stripe) {
            Ok(l) if self.cfg.ppl => l,
            _ => return self.issue_writes(node, id),
        };
        if ppl::needs_log(&layout, failed) {
            let (p, q, new) = (c.p.clone(), c.q.clone(), c.new.clone());
            let q = c.plan.q.then_some(q);
            let log = self.log_entry(node, &req, &layout, Some(&p), q.as_deref(), &new);
            self.slot_push(
                node,
                SlotJob {
                    stripe: req.stripe,
                    log: Some(log),
                    then: After::Op(id),
                },
            );
        } else if self.slot_pins(node, req.stripe) {
            self.slot_push(
                node,
                SlotJob {
                    stripe: req.stripe,
                    log: None,
                    then: After::Op(id),
                },
            );
        } else {
            self.issue_writes(node, id);
        }
    }

    /// A takeover rewrites the record `h` (its writes pending in the stripe's rewrite): it
    /// logs like an operation, from the record's new blocks.
    pub(super) fn rewrite_write(&mut self, node: usize, h: &RecordHeader, held: &Held) {
        let stripe = h.stripe;
        let req = WriteRequest {
            stripe,
            offset: u64::from(h.offset),
            sectors: u64::from(h.sectors),
            chunks: ChunkSet(h.chunks),
        };
        let failed = MemberSet(self.failed);
        let Ok(layout) = self.g.layout(stripe) else {
            return self.issue_rewrite(node, stripe);
        };
        let log = if ppl::needs_log(&layout, failed) {
            Some(self.log_entry(
                node,
                &req,
                &layout,
                held.p.as_deref(),
                held.q.as_deref(),
                &held.data,
            ))
        } else if self.slot_pins(node, stripe) {
            None
        } else {
            return self.issue_rewrite(node, stripe);
        };
        self.slot_push(
            node,
            SlotJob {
                stripe,
                log,
                then: After::Rewrite,
            },
        );
    }

    /// A down-conversion `a` of `stripe`'s lock is due: returns true if it must wait for the
    /// slot (its entry for the stripe retired first), false to send it now.
    pub(super) fn retire_before_release(
        &mut self,
        node: usize,
        stripe: u64,
        a: LockAction,
    ) -> bool {
        if !self.cfg.ppl || !self.slot_pins(node, stripe) {
            return false;
        }
        self.slot_push(
            node,
            SlotJob {
                stripe,
                log: None,
                then: After::Lock(a),
            },
        );
        true
    }

    fn slot_push(&mut self, node: usize, job: SlotJob) {
        self.nodes[node].slot.jobs.push_back(job);
        self.slot_next(node);
    }

    /// Start the slot's next job if it is free.
    fn slot_next(&mut self, node: usize) {
        loop {
            let s = &mut self.nodes[node].slot;
            if s.running {
                return;
            }
            let Some(job) = s.jobs.pop_front() else {
                return;
            };
            s.running = true;
            let write = match (&job.log, s.live) {
                (Some((e, pp)), _) => Some((
                    Entry {
                        seq: s.seq + 1,
                        ..*e
                    },
                    Some(pp.clone()),
                )),
                (None, Some(e)) if e.stripe == job.stripe => Some((
                    Entry {
                        state: EntryState::Retired,
                        seq: s.seq + 1,
                        ..e
                    },
                    None,
                )),
                (None, _) => None,
            };
            let Some((e, pp)) = write else {
                s.cur = Some((job, None));
                self.slot_job_done(node);
                continue;
            };
            s.seq = e.seq;
            s.cur = Some((job, Some(e)));
            match e.state {
                EntryState::Live => self.stats.log_entries += 1,
                EntryState::Retired => self.stats.log_retired += 1,
            }
            let n = self.write_copies(node, node, &e, pp.as_deref(), IoTag::SlotCopy);
            self.nodes[node].slot.left = n;
            if n > 0 {
                return;
            }
            self.slot_job_done(node);
        }
    }

    /// A copy of the running job's entry is written.
    pub(super) fn slot_copy_done(&mut self, node: usize) {
        let s = &mut self.nodes[node].slot;
        s.left = s.left.saturating_sub(1);
        if s.left == 0 && s.running {
            self.slot_job_done(node);
            self.slot_next(node);
        }
    }

    /// The logged write holding the slot is on the members.
    pub(super) fn slot_release(&mut self, node: usize) {
        self.nodes[node].slot.running = false;
        self.slot_next(node);
    }

    /// The running job's entry is durable (or it had none to write): what follows, and the
    /// slot is free again unless a logged write now holds it.
    fn slot_job_done(&mut self, node: usize) {
        let s = &mut self.nodes[node].slot;
        let Some((job, e)) = s.cur.take() else {
            s.running = false;
            return;
        };
        match e {
            Some(e) if e.state == EntryState::Live => s.live = Some(e),
            Some(_) => s.live = None,
            None => {}
        }
        let logged = job.log.is_some();
        let hold = match job.then {
            After::Op(id) => match self.nodes[node].ops.get_mut(&id) {
                Some(c) => {
                    c.logged = logged;
                    self.issue_writes(node, id);
                    logged
                        && self.nodes[node]
                            .ops
                            .get(&id)
                            .is_some_and(|c| c.writes_left > 0)
                }
                None => false,
            },
            After::Rewrite => match self.nodes[node].rewrites.get_mut(&job.stripe) {
                Some(rw) if !rw.pending.is_empty() => {
                    rw.logged = logged;
                    self.issue_rewrite(node, job.stripe);
                    logged
                }
                _ => false,
            },
            After::Lock(a) => {
                self.send_lock_now(node, job.stripe, a);
                false
            }
        };
        if !hold {
            self.nodes[node].slot.running = false;
        }
    }

    /// At the end of a restart: the node learns its slot from the members.
    pub(super) fn slot_boot(&mut self, node: usize) {
        let (newest, max) = self.slot_read(node);
        let s = &mut self.nodes[node].slot;
        s.seq = s.seq.max(max);
        s.live = newest
            .map(|(e, _)| e)
            .filter(|e| e.state == EntryState::Live);
    }

    // ---- replay -----------------------------------------------------------------------------

    /// Replay node slot `slot`'s entry for `stripe` if it is still the live one (under the
    /// stripe's lock: nothing else changes the stripe meanwhile).
    pub(super) fn start_replay(
        &mut self,
        node: usize,
        stripe: u64,
        slot: usize,
        epoch: Option<u64>,
    ) {
        let found = match self.slot_read(slot).0 {
            Some((e, pp)) if e.state == EntryState::Live && e.stripe == stripe => Some((e, pp)),
            _ => None,
        };
        let (Some((entry, pp)), true) = (found, self.serving()) else {
            return self.finish_replay(node, stripe, epoch);
        };
        let g = self.g;
        let Ok(layout) = g.layout(stripe) else {
            self.violation(format!(
                "log entry of slot {slot} for stripe {stripe} out of range"
            ));
            return self.finish_replay(node, stripe, epoch);
        };
        let parity = g.parity_chunks();
        let fits = u64::from(entry.offset) + u64::from(entry.sectors) <= g.chunk_sectors()
            && usize::from(entry.parity) == parity
            && pp.len() == parity * entry.sectors as usize * SECTOR_BYTES;
        if !fits {
            self.violation(format!("log entry of slot {slot} does not fit: {entry:?}"));
            return self.finish_replay(node, stripe, epoch);
        }
        let mut reads = Vec::new();
        let mut skip = false;
        for k in (0..g.data_chunks()).filter(|k| ChunkSet(entry.written).contains(*k)) {
            match layout.data_member(k) {
                Some(m) if self.failed & (1 << m) == 0 => reads.push((k, m)),
                _ => skip = true,
            }
        }
        if skip {
            // A written chunk's member failed: what it holds now is unknown, so is the
            // parity. Skip (writing nothing) and stop serving.
            self.stats.replays_skipped += 1;
            self.lost = true;
            return self.finish_replay(node, stripe, epoch);
        }
        self.replayed_at.get_or_insert(self.processed);
        let ios: Vec<usize> = reads.iter().map(|(_, m)| *m).collect();
        self.nodes[node].replays.insert(
            stripe,
            ReplayCtx {
                slot,
                epoch,
                entry,
                layout,
                pp,
                got: vec![None; reads.len()],
                left: reads.len(),
                reads,
                retiring: false,
            },
        );
        if ios.is_empty() {
            return self.replay_compute(node, stripe);
        }
        let sector = layout.member_sector + u64::from(entry.offset);
        for (idx, member) in ios.into_iter().enumerate() {
            self.disk_read(
                node,
                member,
                sector,
                u64::from(entry.sectors),
                IoTag::ReplayRead { stripe, idx },
            );
        }
    }

    pub(super) fn replay_read_done(
        &mut self,
        node: usize,
        stripe: u64,
        idx: usize,
        data: Option<Vec<u8>>,
    ) {
        let all = match self.nodes[node].replays.get_mut(&stripe) {
            Some(c) => super::gathered(&mut c.got, &mut c.left, idx, data),
            None => false,
        };
        if all {
            self.replay_compute(node, stripe);
        }
    }

    /// P := ppP xor the written present chunks, Q := ppQ xor their syndrome; written to the
    /// parity members still there.
    fn replay_compute(&mut self, node: usize, stripe: u64) {
        let parity = self.g.parity_chunks();
        let failed = self.failed;
        let Some(c) = self.nodes[node].replays.get(&stripe) else {
            return;
        };
        let len = c.entry.sectors as usize * SECTOR_BYTES;
        let mut p = c.pp.get(..len).unwrap_or_default().to_vec();
        let mut q = c.pp.get(len..2 * len).unwrap_or_default().to_vec();
        let zeros = vec![0u8; len];
        for ((k, _), d) in c.reads.iter().zip(c.got.iter()) {
            let d = d.as_deref().unwrap_or(&zeros);
            let qq = if parity == 2 {
                Some(q.as_mut_slice())
            } else {
                None
            };
            let _ = update_pq(*k, &zeros, d, &mut p, qq);
        }
        let sector = c.layout.member_sector + u64::from(c.entry.offset);
        let mut evs = Vec::new();
        for (m, b) in [(c.layout.p, p), (c.layout.q, q)] {
            if let Some(m) = m.filter(|m| failed & (1 << m) == 0) {
                evs.push((m, b));
            }
        }
        if let Some(c) = self.nodes[node].replays.get_mut(&stripe) {
            c.left = evs.len();
        }
        if evs.is_empty() {
            return self.replay_retire(node, stripe);
        }
        for (m, b) in evs {
            self.disk_write(node, m, sector, b, IoTag::ReplayWrite { stripe });
        }
    }

    /// A replay's parity write, or a copy of its Retired entry, is done.
    pub(super) fn replay_write_done(&mut self, node: usize, stripe: u64) {
        let (done, retiring, epoch) = match self.nodes[node].replays.get_mut(&stripe) {
            Some(c) => {
                c.left -= 1;
                (c.left == 0, c.retiring, c.epoch)
            }
            None => return,
        };
        match (done, retiring) {
            (false, _) => {}
            (true, false) => self.replay_retire(node, stripe),
            (true, true) => self.finish_replay(node, stripe, epoch),
        }
    }

    /// The parity agrees with the data: retire the entry (above every sequence number the
    /// slot's copies hold).
    fn replay_retire(&mut self, node: usize, stripe: u64) {
        let Some(c) = self.nodes[node].replays.get(&stripe) else {
            return;
        };
        let (slot, epoch) = (c.slot, c.epoch);
        let e = Entry {
            state: EntryState::Retired,
            seq: self.slot_read(slot).1 + 1,
            ..c.entry
        };
        self.stats.log_retired += 1;
        let n = self.write_copies(node, slot, &e, None, IoTag::ReplayRetire { stripe });
        if let Some(c) = self.nodes[node].replays.get_mut(&stripe) {
            c.retiring = true;
            c.left = n;
        }
        if slot == node {
            let s = &mut self.nodes[node].slot;
            s.seq = s.seq.max(e.seq);
            s.live = None;
        }
        if n == 0 {
            self.finish_replay(node, stripe, epoch);
        }
    }

    /// The replay is over (or had nothing to do): release the stripe, and go on with the
    /// restart (its resync) or the takeover (its rewrites) once the last one is.
    fn finish_replay(&mut self, node: usize, stripe: u64, epoch: Option<u64>) {
        if self.nodes[node]
            .replays
            .remove(&stripe)
            .is_some_and(|c| c.retiring)
        {
            self.stats.replays += 1;
        }
        self.work_done(node, stripe);
        match epoch {
            None => {
                let n = &mut self.nodes[node];
                if n.replays_left == 0 {
                    return;
                }
                n.replays_left -= 1;
                if n.replays_left == 0 {
                    let stripes = std::mem::take(&mut n.pending_resync);
                    self.restart_resync(node, stripes);
                }
            }
            Some(epoch) => {
                let next = match self.nodes[node].rec.as_mut() {
                    Some(r) if r.coord.epoch == epoch && r.replays_left > 0 => {
                        r.replays_left -= 1;
                        (r.replays_left == 0).then(|| std::mem::take(&mut r.rewrites))
                    }
                    _ => None,
                };
                if let Some(rewrites) = next {
                    self.start_rewrites(node, epoch, rewrites);
                }
            }
        }
    }
}
