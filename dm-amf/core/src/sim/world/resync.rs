// SPDX-License-Identifier: GPL-2.0
//! Whole-group crashes and the restart resync: every AMF dies at once, then each one, before
//! serving, resyncs the regions its own write-intent bitmap marks dirty (md's bitmap resync,
//! per node as in md-cluster). Kept apart from the takeover machinery in `world.rs`, which
//! handles one AMF dying while the others live.

use super::super::super::geometry::{Level, MemberSet, ReadPlan};
use super::super::super::parity::{gen_p, gen_pq};
use super::super::arbiter::Arbiter;
use super::super::Fault;
use super::{fresh_node, Ev, IoTag, ResyncCtx, Work, World, SECTOR_BYTES};
use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::vec;
use std::vec::Vec;

impl World {
    /// Every AMF dies at once: each member write in flight lands or not (a coin per write,
    /// so multi-member operations tear), every message, lock request and read is lost, the
    /// DLM starts a new lockspace, and every node restarts with empty memory (keeping its
    /// remaining host workload) and resyncs its dirty regions before serving.
    pub(super) fn crash_all(&mut self) {
        self.crashed += 1;
        self.stats.whole_crashes += 1;
        let events = std::mem::take(&mut self.events);
        self.heap.clear();
        for (_, ev) in events {
            match ev {
                Ev::DiskWrite {
                    member,
                    sector,
                    bytes,
                    ..
                } => {
                    if self.rng.chance(1, 2) {
                        self.stats.torn_landed += 1;
                        self.land(member, sector, &bytes);
                    } else {
                        self.stats.torn_lost += 1;
                    }
                }
                Ev::LogWrite {
                    member,
                    slot,
                    header,
                    pp,
                    ..
                } => self.land_log_torn(member, slot, &header, pp.as_deref()),
                _ => {}
            }
        }
        self.chk.whole_crash();
        self.bits.lose_memory();
        self.arb = Arbiter::default();
        self.epoch = 0;
        self.acks_needed = 0;
        self.resynced_at = None;
        for id in 0..self.nodes.len() {
            let (left, next_op) = (self.nodes[id].host_left, self.nodes[id].next_op);
            self.nodes[id] = fresh_node(id, left, next_op);
        }
        for id in 0..self.nodes.len() {
            self.restart(id);
        }
    }

    /// The regions of member sectors stripe `st` occupies.
    fn footprint(&self, st: u64) -> BTreeSet<u64> {
        let g = self.g;
        let cs = g.chunk_sectors();
        let mut out = BTreeSet::new();
        match g.level() {
            Level::Raid5 | Level::Raid6 => {
                if let Ok(layout) = g.layout(st) {
                    out.insert(self.bits.region(layout.member_sector));
                }
            }
            Level::Raid0 => {}
            _ => {
                for l in (st * cs..(st + 1) * cs).filter(|l| *l < g.logical_sectors()) {
                    if let Ok(copies) = g.copies(l) {
                        out.extend(copies.as_slice().iter().map(|p| self.bits.region(p.sector)));
                    }
                }
            }
        }
        out
    }

    /// Boot after a whole-group crash: replay every live entry of the partial parity log
    /// (any node slot's: a node that does not come back is covered too; the replays of one
    /// entry meet under its stripe's lock and only the first finds it live), then queue a
    /// resync of every stripe in a dirty region of the node's own bitmap (the `SkipResync`
    /// bug serves at once).
    fn restart(&mut self, node: usize) {
        let regions = if self.cfg.fault == Fault::SkipResync {
            Vec::new()
        } else {
            self.bits.pin_dirty(node)
        };
        let mut todo: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        let mut stripes = BTreeSet::new();
        for st in 0..self.g.stripes() {
            for r in self.footprint(st) {
                if regions.contains(&r) {
                    todo.entry(r).or_default().insert(st);
                    stripes.insert(st);
                }
            }
        }
        for r in regions.iter().filter(|r| !todo.contains_key(r)) {
            self.bits.resynced(node, *r);
        }
        let n = &mut self.nodes[node];
        n.restarting = true;
        n.paused = true;
        n.resync_regions = todo;
        let replays = if self.cfg.ppl {
            self.live_slots(u64::MAX)
        } else {
            Vec::new()
        };
        if replays.is_empty() {
            self.restart_resync(node, stripes);
            return;
        }
        let n = &mut self.nodes[node];
        n.replays_left = replays.len();
        n.pending_resync = stripes;
        for (slot, stripe) in replays {
            self.enqueue(node, stripe, Work::Replay { slot, epoch: None });
        }
    }

    /// The restart's replays are done: resync the dirty regions' stripes.
    pub(super) fn restart_resync(&mut self, node: usize, stripes: BTreeSet<u64>) {
        if stripes.is_empty() {
            self.restart_done(node);
            return;
        }
        for st in stripes {
            self.enqueue(node, st, Work::Resync);
        }
    }

    fn restart_done(&mut self, node: usize) {
        if self.cfg.ppl {
            self.slot_boot(node);
        }
        let n = &mut self.nodes[node];
        n.restarting = false;
        if n.epoch == 0 {
            // No membership change since the restart (else the recovery unpauses it).
            n.paused = false;
        }
        self.schedule(0, Ev::Host { node });
        if self.nodes.iter().all(|n| !n.restarting) {
            self.resynced_at = Some(self.processed);
        }
    }

    pub(super) fn start_resync(&mut self, node: usize, stripe: u64) {
        let g = self.g;
        let cs = g.chunk_sectors();
        let failed = self.failed;
        let mut reads = Vec::new();
        match g.level() {
            Level::Raid5 | Level::Raid6 => match g.layout(stripe) {
                Ok(layout) => {
                    let data = layout.data_members();
                    // With a data member lost, its chunk exists only as the parity a torn
                    // write may have left stale: nothing to recompute from (the write hole).
                    if data.iter().all(|m| failed & (1 << m) == 0) {
                        for m in data {
                            reads.push((*m as usize, layout.member_sector, cs, 0));
                        }
                    }
                }
                Err(e) => self.violation(format!("resync layout: {e:?}")),
            },
            Level::Raid0 => {}
            _ => {
                // The copy reads are served from: the others are made equal to it.
                for l in (stripe * cs..(stripe + 1) * cs).filter(|l| *l < g.logical_sectors()) {
                    if let Ok(ReadPlan::Direct(p)) = g.read_plan(l, MemberSet(failed)) {
                        reads.push((p.member, p.sector, 1, l));
                    }
                }
            }
        }
        if reads.is_empty() {
            self.finish_resync(node, stripe);
            return;
        }
        let ctx = ResyncCtx {
            got: vec![None; reads.len()],
            left: reads.len(),
            reads: reads.clone(),
            writes_left: 0,
        };
        self.nodes[node].resync.insert(stripe, ctx);
        for (idx, (member, sector, sectors, _)) in reads.into_iter().enumerate() {
            self.disk_read(
                node,
                member,
                sector,
                sectors,
                IoTag::ResyncRead { stripe, idx },
            );
        }
    }

    /// Every read of the stripe's resync is in: write the redundancy from the data.
    pub(super) fn resync_write(&mut self, node: usize, stripe: u64) {
        let g = self.g;
        let failed = self.failed;
        let Some(ctx) = self.nodes[node].resync.get(&stripe) else {
            return;
        };
        let mut evs: Vec<(usize, u64, Vec<u8>)> = Vec::new();
        match g.level() {
            Level::Raid5 | Level::Raid6 => {
                let layout = match g.layout(stripe) {
                    Ok(l) => l,
                    Err(_) => return,
                };
                let data: Vec<Vec<u8>> = ctx
                    .got
                    .iter()
                    .map(|b| b.clone().unwrap_or_default())
                    .collect();
                let refs: Vec<&[u8]> = data.iter().map(|b| b.as_slice()).collect();
                let len = g.chunk_sectors() as usize * SECTOR_BYTES;
                let (mut p, mut q) = (vec![0u8; len], vec![0u8; len]);
                let _ = if layout.q.is_some() {
                    gen_pq(&refs, &mut p, &mut q)
                } else {
                    gen_p(&refs, &mut p)
                };
                for (m, b) in [(layout.p, p), (layout.q, q)] {
                    if let Some(m) = m.filter(|m| failed & (1 << m) == 0) {
                        evs.push((m, layout.member_sector, b));
                    }
                }
            }
            _ => {
                for ((src, _, _, l), b) in ctx.reads.iter().zip(ctx.got.iter()) {
                    let Ok(copies) = g.copies(*l) else { continue };
                    for p in copies.as_slice() {
                        if p.member != *src && failed & (1 << p.member) == 0 {
                            evs.push((p.member, p.sector, b.clone().unwrap_or_default()));
                        }
                    }
                }
            }
        }
        if evs.is_empty() {
            self.finish_resync(node, stripe);
            return;
        }
        if let Some(ctx) = self.nodes[node].resync.get_mut(&stripe) {
            ctx.writes_left = evs.len();
        }
        for (member, sector, bytes) in evs {
            self.disk_write(node, member, sector, bytes, IoTag::ResyncWrite { stripe });
        }
    }

    /// The stripe is resynced: a region whose stripes are all done gets its bit cleared.
    pub(super) fn finish_resync(&mut self, node: usize, stripe: u64) {
        self.stats.rows_resynced += 1;
        let n = &mut self.nodes[node];
        n.resync.remove(&stripe);
        let mut done = Vec::new();
        for (r, left) in n.resync_regions.iter_mut() {
            left.remove(&stripe);
            if left.is_empty() {
                done.push(*r);
            }
        }
        for r in done {
            n.resync_regions.remove(&r);
            self.bits.resynced(node, r);
            self.stats.regions_resynced += 1;
        }
        let finished = n.restarting && n.resync_regions.is_empty();
        self.work_done(node, stripe);
        if finished {
            self.restart_done(node);
        }
    }
}
