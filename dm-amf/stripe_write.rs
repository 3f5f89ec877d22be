// SPDX-License-Identifier: GPL-2.0

//! One RAID5/6 write, run by the stripe worker (reads that need the parity are in
//! `stripe_read`): the host bio is cut into per-stripe
//! requests (`op::split_write`), each planned by the core (`op::plan_write_with`: full
//! stripe, read-modify-write or reconstruct-write, by read count) and driven through the
//! core's `WriteOp` state machine: pre-reads, parity, writes. With no peers the machine
//! acknowledges the host only after the member writes; the cluster adds its replication
//! steps between the same states.
//!
//! Failed members are left out of the plan (the core picks the method that does not need
//! them). A member that fails a pre-read is marked failed and the operation re-planned; one
//! that fails a write is marked failed, and the write still succeeds while the group holds
//! all data (the stripe is consistent without that member), as md does.

use core::ops::Range;

use kernel::{prelude::*, sync::Arc};

use crate::core_proto::{
    geometry::{Level, MemberSet},
    op::{self, Block, ChunkSet, Io, OpError, Plan, WriteOp, WriteRequest},
    wire::{Block as WireBlock, OpKind, RecordHeader, Role, Step},
};
use crate::failover;
use crate::group::Group;
use crate::kernel_ext::{
    bio::{BioSet, BlkStatus, DeferredBio},
    block_io::{self, MemberIo},
    parity::{self, BlockError},
    zeroed,
};
use crate::repl::{FaultPoint, ReplError, ReplOp, Replication};
use crate::repl_session::MAX_RECORD_BLOCKS;
use crate::stripe_buf::StripeBuffers;
use crate::stripe_lock::StripeLocks;
use crate::stripe_read::{rebuild, stripe_ios};

/// Member I/Os submitted at once; larger steps go in several batches (bounds the stack).
const BATCH: usize = 16;

/// Why a write failed; the host bio fails with an I/O error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The core refused to plan or advance the operation.
    Plan,
    /// The bio's data could not be copied.
    Copy,
    /// A parity routine refused its blocks.
    Parity,
    /// A member read or write failed.
    Io,
    /// Cluster mode: this server lost the cluster and must not write.
    Cluster,
}

/// What the worker keeps between writes, on the heap: the stripe buffers, the plan (a few
/// KiB, too big for a kernel stack) and the operation counter.
pub(crate) struct Scratch {
    pub(crate) bufs: StripeBuffers,
    pub(crate) plan: KBox<Plan>,
    pub(crate) op_id: u64,
    /// Cluster mode: the stripe locks this target holds (set once the worker exists).
    pub(crate) locks: Option<StripeLocks>,
    /// Cluster mode with `peers`: the replication channel.
    pub(crate) repl: Option<Arc<Replication>>,
}

impl Scratch {
    /// Scratch space for stripes of `data_chunks` chunks of `chunk_bytes`, on the heap
    /// (constructor only).
    #[inline(never)]
    pub(crate) fn boxed(data_chunks: usize, chunk_bytes: usize, raid6: bool) -> Result<KBox<Self>> {
        Ok(KBox::new(
            Self {
                bufs: StripeBuffers::new(data_chunks, chunk_bytes, raid6)?,
                plan: zeroed::boxed_plan(GFP_KERNEL)?,
                op_id: 0,
                locks: None,
                repl: None,
            },
            GFP_KERNEL,
        )?)
    }

    /// Runs the operation `op` on `stripe` under the stripe's cluster lock (cluster mode;
    /// without it, just runs it), once no dead AMF's operation waits for its takeover. The
    /// lock stays cached afterwards.
    pub(crate) fn with_stripe_lock<T>(
        &mut self,
        engine: &StripeEngine<'_>,
        stripe: u64,
        op: impl FnOnce(&mut Self) -> Result<T, WriteError>,
    ) -> Result<T, WriteError> {
        failover::settle(engine, self)?;
        let held = match self.locks.as_mut() {
            None => None,
            Some(l) => Some(l.acquire(stripe).map_err(|_| WriteError::Cluster)?),
        };
        let done = self.learn_members(engine).and_then(|()| op(self));
        if let (Some(l), Some(slot)) = (self.locks.as_mut(), held) {
            l.release(slot);
        }
        done
    }
}

impl Scratch {
    /// Cluster mode with superblocks: holds the member-state lock in PR for the operation
    /// and, on a new grant, takes in the rounds other AMFs wrote meanwhile.
    #[inline(never)]
    fn learn_members(&mut self, engine: &StripeEngine<'_>) -> Result<(), WriteError> {
        let Some(l) = self.locks.as_mut() else {
            return Ok(());
        };
        let round = l.members_shared().map_err(|_| WriteError::Cluster)?;
        match round {
            Some(r) => engine.group.learn(r).map_err(|_| WriteError::Io),
            None => Ok(()),
        }
    }
}

/// What a stripe write needs besides its scratch space.
pub(crate) struct StripeEngine<'a> {
    pub(crate) group: &'a Group,
    pub(crate) pool: &'a BioSet,
    /// Whether RAID6 may use read-modify-write (the CPU's raid6 routines have
    /// `xor_syndrome`).
    pub(crate) raid6_rmw: bool,
}

impl StripeEngine<'_> {
    /// Writes the whole `bio`, whose sector is the target-relative `logical`.
    pub(crate) fn write_bio(
        &self,
        scratch: &mut Scratch,
        bio: &DeferredBio,
        logical: u64,
    ) -> Result<(), WriteError> {
        let g = &self.group.geometry;
        let (mut sector, mut left, mut skip) = (logical, bio.sectors(), 0u64);
        while left > 0 {
            let (req, covered) = op::split_write(g, sector, left).map_err(|_| WriteError::Plan)?;
            let (req, covered) = self.cap_for_log(req, covered);
            // The row's write-intent bit is durable before anything of it is written.
            self.group
                .mark_intent(req.stripe * g.chunk_sectors())
                .map_err(|_| WriteError::Io)?;
            // Whole chunks go as one operation, unless a log entry cannot hold them: then as
            // slices of the rows, each still written whole (`cap_for_log`).
            let cs = g.chunk_sectors();
            let slice = self.log_slice(&req);
            let mut offset = 0;
            while offset < req.sectors {
                let piece = WriteRequest {
                    offset: req.offset + offset,
                    sectors: slice.min(req.sectors - offset),
                    ..req
                };
                // Chunk k's bytes of the piece are `stride` after chunk k - 1's in the bio.
                let (at, stride) = if slice < req.sectors {
                    (skip + offset * 512, cs * 512)
                } else {
                    (skip, req.sectors * 512)
                };
                scratch.op_id = scratch.op_id.wrapping_add(1);
                scratch.with_stripe_lock(self, req.stripe, |s| {
                    self.write_request(s, bio, (at, stride), &piece)
                })?;
                offset += piece.sectors;
            }
            sector += covered;
            left -= covered;
            skip += covered * 512;
        }
        Ok(())
    }

    /// One operation: the new data of `req`'s chunks, in chunk order, is in `bio` from
    /// byte `skip` on, each chunk's `stride` bytes after the previous one's.
    #[inline(never)]
    fn write_request(
        &self,
        scratch: &mut Scratch,
        bio: &DeferredBio,
        (skip, stride): (u64, u64),
        req: &WriteRequest,
    ) -> Result<(), WriteError> {
        let Scratch {
            bufs,
            plan,
            op_id,
            repl,
            locks,
            ..
        } = scratch;
        let (id, repl) = (*op_id, repl.as_deref());
        let g = &self.group.geometry;
        let rmw_allowed = g.level() != Level::Raid6 || self.raid6_rmw;
        let r = byte_range(req)?;
        let mut skip = u32::try_from(skip).map_err(|_| WriteError::Copy)?;
        let stride = u32::try_from(stride).map_err(|_| WriteError::Copy)?;
        for (k, buf) in bufs.data.iter_mut().enumerate() {
            if req.chunks.contains(k) {
                let dst = buf.get_mut(r.clone()).ok_or(WriteError::Copy)?;
                bio.copy_to_buf(skip, dst).map_err(|_| WriteError::Copy)?;
                skip = skip.saturating_add(stride);
            }
        }
        // A member failing during the pre-reads changes the plan: start again without it.
        // Each round fails one more member, so this ends.
        for _ in 0..=g.members() {
            // A write never relies on a failure the superblocks do not record yet.
            self.group
                .record_state_locked(locks.as_mut())
                .map_err(|_| WriteError::Io)?;
            let unavailable = self.group.unavailable(req.stripe);
            if unavailable.len() > g.tolerated_failures() {
                // The new data could not be stored recoverably: refuse it.
                return Err(WriteError::Io);
            }
            let mut req = *req;
            match op::plan_write_into(plan, g, &req, unavailable, rmw_allowed) {
                Ok(()) => {}
                Err(OpError::TooManyFailures) => {
                    // Neither method can read what it needs (e.g. RAID6 with a written and
                    // an untouched data chunk lost): rebuild the old range first, then
                    // write the stripe's range whole.
                    let bad = self.reconstruct_untouched(bufs, &req, &r, unavailable)?;
                    if !bad.is_empty() {
                        self.group.mark_failed(bad);
                        continue;
                    }
                    req.chunks = ChunkSet(all_chunks(g.data_chunks()));
                    op::plan_write_into(plan, g, &req, unavailable, rmw_allowed)
                        .map_err(|_| WriteError::Io)?;
                }
                Err(_) => return Err(WriteError::Io),
            }
            let plan = &*plan;
            let req = &req;
            let (mut state, mut fx) = WriteOp::start(id, 0, 0, *req, plan, 0);
            let mut rop = match repl {
                Some(rp) => Some(replicate_intent(rp, bufs, id, plan, req, &r)?),
                None => None,
            };
            if fx.read {
                let bad = self.run_ios(
                    bufs,
                    plan.reads.as_slice().iter().copied(),
                    plan.kind,
                    &r,
                    IoDir::Read,
                )?;
                if !bad.is_empty() {
                    self.group.mark_failed(bad);
                    continue;
                }
                fx = state.reads_done().map_err(|_| WriteError::Plan)?;
            }
            if !fx.compute {
                return Err(WriteError::Plan);
            }
            if plan.kind != OpKind::Mirror {
                compute(bufs, plan, req, &r).map_err(|_| WriteError::Parity)?;
            }
            fx = state.computed(0).map_err(|_| WriteError::Plan)?;
            if !fx.write {
                return Err(WriteError::Plan);
            }
            if plan.kind != OpKind::Mirror {
                // A stripe without one of its data members: its partial parity first.
                let bad = self.log_write(bufs, req, &r, unavailable)?;
                if !bad.is_empty() {
                    self.group.mark_failed(bad);
                    continue;
                }
            }
            if let (Some(rp), Some(op)) = (repl, rop.as_mut()) {
                replicate_prepared(rp, op, bufs, plan, req, &r)?;
            }
            let dir = if bio.is_fua() {
                IoDir::WriteFua
            } else {
                IoDir::Write
            };
            let writes = plan.writes.as_slice();
            let halt = match repl {
                Some(rp) => rp.fault_armed(FaultPoint::Data),
                None => self.group.halt_armed(),
            };
            if halt {
                // Fault injection: the new data reaches the disks, the parity does not (a
                // mirror: the first copy only).
                let most = if plan.kind == OpKind::Mirror {
                    1
                } else {
                    usize::MAX
                };
                let data = writes
                    .iter()
                    .copied()
                    .filter(|io| matches!(io.what, Block::Data(_)))
                    .take(most);
                self.run_ios(bufs, data, plan.kind, &r, dir)?;
                match repl {
                    Some(rp) => rp.fault_point(FaultPoint::Data)?,
                    None => {
                        self.group.halt_after_data();
                        return Err(WriteError::Io);
                    }
                }
            }
            let bad = self.run_ios(bufs, writes.iter().copied(), plan.kind, &r, dir)?;
            if !bad.is_empty() {
                // What reached the other members is consistent without the failed ones,
                // once the superblocks say they failed.
                self.group.mark_failed(bad);
                if !self.group.can_serve() {
                    return Err(WriteError::Io);
                }
                self.group
                    .record_state_locked(locks.as_mut())
                    .map_err(|_| WriteError::Io)?;
            }
            if let (Some(rp), Some(op)) = (repl, rop.as_mut()) {
                rp.fault_point(FaultPoint::Parity)?;
                // The peers drop the records; the lock may go to another AMF only after.
                rp.send_step(op, Step::Done, &[])?;
                rp.wait_step(op, Step::Done, &[], &[])?;
                rp.fault_point(FaultPoint::Done)?;
            }
            self.after_write(locks.is_some())?;
            let fx = state.writes_done(0).map_err(|_| WriteError::Plan)?;
            return if fx.ack_host && fx.retire {
                Ok(())
            } else {
                Err(WriteError::Plan)
            };
        }
        Err(WriteError::Io)
    }

    /// For a degraded write that no plan can serve: reads every available block of `req`'s
    /// range into the scratch buffers, rebuilds the lost data chunks there, and copies the
    /// old contents of every chunk `req` does not write into `data` beside the new data, so
    /// that the whole range can be written as a full stripe. Returns members that failed.
    #[inline(never)]
    fn reconstruct_untouched(
        &self,
        bufs: &mut StripeBuffers,
        req: &WriteRequest,
        r: &Range<usize>,
        unavailable: MemberSet,
    ) -> Result<MemberSet, WriteError> {
        let g = &self.group.geometry;
        let layout = g.layout(req.stripe).map_err(|_| WriteError::Plan)?;
        let sources = (0..g.members()).filter(|m| !unavailable.contains(*m));
        let reads = stripe_ios(
            &layout,
            layout.member_sector + req.offset,
            req.sectors,
            sources,
        )?;
        // The old contents go to `old` (swapped in as `data` for the read and the rebuild,
        // which work on `data`), keeping the new data apart.
        core::mem::swap(&mut bufs.data, &mut bufs.old);
        let rebuilt = self
            .run_ios(bufs, reads, OpKind::Mirror, r, IoDir::Read)
            .and_then(|bad| {
                let lost = layout
                    .data_members()
                    .iter()
                    .position(|m| unavailable.contains(usize::from(*m)));
                if let (true, Some(k)) = (bad.is_empty(), lost) {
                    rebuild(bufs, &layout, unavailable, k, r).map_err(|_| WriteError::Parity)?;
                }
                Ok(bad)
            });
        core::mem::swap(&mut bufs.data, &mut bufs.old);
        let bad = rebuilt?;
        if bad.is_empty() {
            for (k, (new, old)) in bufs.data.iter_mut().zip(bufs.old.iter()).enumerate() {
                if !req.chunks.contains(k) {
                    let (Some(d), Some(o)) = (new.get_mut(r.clone()), old.get(r.clone())) else {
                        return Err(WriteError::Plan);
                    };
                    for (d, o) in d.iter_mut().zip(o) {
                        *d = *o;
                    }
                }
            }
        }
        Ok(bad)
    }

    /// Issues the I/Os of `list` (reads into the buffers the computation expects them in, or
    /// writes from them), `BATCH` at a time, and waits for them. Returns the members whose
    /// I/O failed. `list` is walked, never copied into an array.
    pub(crate) fn run_ios(
        &self,
        bufs: &mut StripeBuffers,
        list: impl Iterator<Item = Io> + Clone,
        kind: OpKind,
        r: &Range<usize>,
        dir: IoDir,
    ) -> Result<MemberSet, WriteError> {
        self.run_ios_at(bufs, &|i| list.clone().nth(i), kind, r, dir)
    }

    /// [`Self::run_ios`] where any member's failure fails the step: those members are
    /// failed in the group and the step returns [`WriteError::Io`].
    pub(crate) fn run_ios_all(
        &self,
        bufs: &mut StripeBuffers,
        list: impl Iterator<Item = Io> + Clone,
        kind: OpKind,
        r: &Range<usize>,
        dir: IoDir,
    ) -> Result<(), WriteError> {
        let bad = self.run_ios(bufs, list, kind, r, dir)?;
        if bad.is_empty() {
            return Ok(());
        }
        self.group.mark_failed(bad);
        Err(WriteError::Io)
    }

    /// [`Self::run_ios`] with the list as `at(i)`, the I/O at position `i` (`None` past
    /// the end): one function, not one per kind of list, with only `BATCH` bios' worth of
    /// state in its frame.
    #[inline(never)]
    fn run_ios_at(
        &self,
        bufs: &mut StripeBuffers,
        at: &dyn Fn(usize) -> Option<Io>,
        kind: OpKind,
        r: &Range<usize>,
        dir: IoDir,
    ) -> Result<MemberSet, WriteError> {
        // Read-modify-write reads old data beside the new; everything else uses `data`.
        let into_old = kind == OpKind::ReadModifyWrite && dir == IoDir::Read;
        let mut bad = MemberSet::EMPTY;
        let mut start = 0;
        loop {
            let n = (0..BATCH).take_while(|i| at(start + i).is_some()).count();
            if n == 0 {
                break;
            }
            let part = (start..start + n).filter_map(at);
            start += n;
            let mut ios: [MemberIo<'_>; BATCH] = [MemberIo::EMPTY; BATCH];
            let StripeBuffers {
                data, old, p, q, ..
            } = &mut *bufs;
            if dir == IoDir::Read {
                // Each buffer is read into by at most one I/O of a step (a plan names each
                // block once): each buffer is handed to the I/O that names it.
                let source = if into_old { old } else { data };
                let blocks = Iterator::chain(
                    source
                        .iter_mut()
                        .enumerate()
                        .map(|(k, b)| (u8::try_from(k).ok().map(Block::Data), b)),
                    [(Some(Block::P), p), (Some(Block::Q), q)],
                );
                let mut given = 0usize;
                for (what, buf) in blocks {
                    let Some((i, step)) =
                        part.clone().enumerate().find(|(_, s)| Some(s.what) == what)
                    else {
                        continue;
                    };
                    let (Some(io), Some(buf)) = (ios.get_mut(i), buf.get_mut(r.clone())) else {
                        return Err(WriteError::Plan);
                    };
                    let member = self.group.member(step.member).ok_or(WriteError::Plan)?;
                    // A missing member is never planned (it starts failed); if it were, its
                    // I/O fails without being sent.
                    if let Some(dev) = member.dev.as_ref() {
                        *io = MemberIo::read(dev, member.offset + step.sector, buf);
                    }
                    given += 1;
                }
                if given != n {
                    return Err(WriteError::Plan);
                }
            } else {
                // Writes only read the buffers: a mirror writes one block to every copy.
                for (io, step) in ios.iter_mut().zip(part.clone()) {
                    let member = self.group.member(step.member).ok_or(WriteError::Plan)?;
                    let buf = match step.what {
                        Block::Data(k) => data.get(usize::from(k)).and_then(|b| b.get(r.clone())),
                        Block::P => p.get(r.clone()),
                        Block::Q => q.get(r.clone()),
                    }
                    .ok_or(WriteError::Plan)?;
                    if let Some(dev) = member.dev.as_ref() {
                        let fua = dir == IoDir::WriteFua;
                        *io = MemberIo::write(dev, member.offset + step.sector, buf, fua);
                    }
                }
            }
            let ios = ios.get_mut(..n).ok_or(WriteError::Plan)?;
            if !block_io::submit_all(self.pool, ios) {
                for (io, step) in ios.iter().zip(part) {
                    if io.status() != BlkStatus::OK {
                        bad = bad.with(step.member);
                    }
                }
            }
        }
        Ok(bad)
    }
}

/// The fields every record of the operation `id` (planned as `plan`) carries.
fn record_header(
    rp: &Replication,
    id: u64,
    plan: &Plan,
    req: &WriteRequest,
) -> Result<RecordHeader, WriteError> {
    Ok(RecordHeader {
        op_id: id,
        generation: 0,
        stripe: req.stripe,
        owner: rp.node(),
        step: Step::Intent,
        kind: plan.kind,
        offset: u32::try_from(req.offset).map_err(|_| WriteError::Plan)?,
        sectors: u32::try_from(req.sectors).map_err(|_| WriteError::Plan)?,
        chunks: req.chunks.0,
    })
}

/// Replication, step Intent: the operation's record with the new data of every written
/// chunk, to every live peer. Apart from the write so that the record's block list is in
/// this frame only.
#[inline(never)]
fn replicate_intent(
    rp: &Replication,
    bufs: &StripeBuffers,
    id: u64,
    plan: &Plan,
    req: &WriteRequest,
    r: &Range<usize>,
) -> Result<ReplOp, WriteError> {
    let mut op = ReplOp::new(record_header(rp, id, plan, req)?);
    let mut ib = [NO_BLOCK; MAX_RECORD_BLOCKS];
    let n = intent_blocks(&mut ib, bufs, req, r)?;
    rp.send_step(&mut op, Step::Intent, ib.get(..n).unwrap_or(&[]))?;
    rp.fault_point(FaultPoint::Intent)?;
    Ok(op)
}

/// Replication, step Prepared: the new parity to every live peer, then their acks of both
/// records. Nothing reaches the disks before every live peer holds the new image.
#[inline(never)]
fn replicate_prepared(
    rp: &Replication,
    op: &mut ReplOp,
    bufs: &StripeBuffers,
    plan: &Plan,
    req: &WriteRequest,
    r: &Range<usize>,
) -> Result<(), WriteError> {
    let mut ib = [NO_BLOCK; MAX_RECORD_BLOCKS];
    let n = intent_blocks(&mut ib, bufs, req, r)?;
    let ib = ib.get(..n).unwrap_or(&[]);
    let (pb, m) = parity_blocks(bufs, plan, r)?;
    let pb = pb.get(..m).unwrap_or(&[]);
    rp.send_step(op, Step::Prepared, pb)?;
    rp.wait_step(op, Step::Prepared, ib, pb)?;
    rp.fault_point(FaultPoint::Prepared)?;
    Ok(())
}

const NO_BLOCK: WireBlock<'static> = WireBlock {
    role: Role::NewData,
    index: 0,
    bytes: &[],
};

/// The Intent record's blocks into `out`: the new data of every written chunk. Returns how
/// many.
fn intent_blocks<'a>(
    out: &mut [WireBlock<'a>; MAX_RECORD_BLOCKS],
    bufs: &'a StripeBuffers,
    req: &WriteRequest,
    r: &Range<usize>,
) -> Result<usize, WriteError> {
    let mut n = 0;
    for (k, d) in bufs.data.iter().enumerate() {
        if !req.chunks.contains(k) {
            continue;
        }
        let slot = out.get_mut(n).ok_or(WriteError::Plan)?;
        *slot = WireBlock {
            role: Role::NewData,
            index: u8::try_from(k).map_err(|_| WriteError::Plan)?,
            bytes: d.get(r.clone()).ok_or(WriteError::Plan)?,
        };
        n += 1;
    }
    Ok(n)
}

/// The Prepared record's blocks: the new P (and Q); none for a mirror.
fn parity_blocks<'a>(
    bufs: &'a StripeBuffers,
    plan: &Plan,
    r: &Range<usize>,
) -> Result<([WireBlock<'a>; 2], usize), WriteError> {
    let mut out = [NO_BLOCK; 2];
    if plan.kind == OpKind::Mirror {
        // A mirror's Prepared record carries nothing: Intent holds the whole new image.
        return Ok((out, 0));
    }
    out[0] = WireBlock {
        role: Role::NewP,
        index: 0,
        bytes: bufs.p.get(r.clone()).ok_or(WriteError::Plan)?,
    };
    if !plan.q {
        return Ok((out, 1));
    }
    out[1] = WireBlock {
        role: Role::NewQ,
        index: 0,
        bytes: bufs.q.get(r.clone()).ok_or(WriteError::Plan)?,
    };
    Ok((out, 2))
}

impl From<ReplError> for WriteError {
    fn from(_: ReplError) -> Self {
        WriteError::Cluster
    }
}

/// Which way [`StripeEngine::run_ios`] moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IoDir {
    Read,
    Write,
    WriteFua,
}

/// The set of all `n` data chunks of a stripe.
fn all_chunks(n: usize) -> u64 {
    1u64.checked_shl(n as u32).map_or(u64::MAX, |b| b - 1)
}

/// The bytes of a chunk that `req` covers.
fn byte_range(req: &WriteRequest) -> Result<Range<usize>, WriteError> {
    let start = usize::try_from(req.offset * 512).map_err(|_| WriteError::Plan)?;
    let len = usize::try_from(req.sectors * 512).map_err(|_| WriteError::Plan)?;
    Ok(start..start + len)
}

/// New P (and Q) over `r` from what the reads left in the buffers.
#[inline(never)]
fn compute(
    bufs: &mut StripeBuffers,
    plan: &Plan,
    req: &WriteRequest,
    r: &Range<usize>,
) -> Result<(), BlockError> {
    let StripeBuffers {
        data,
        old,
        p,
        q,
        zero,
    } = bufs;
    let p = p.get_mut(r.clone()).ok_or(BlockError::Length)?;
    let q = q.get_mut(r.clone()).filter(|_| plan.q);
    if plan.kind == OpKind::ReadModifyWrite {
        return read_modify_write(data, old, zero, p, q, req, r);
    }
    // Full stripe or reconstruct-write: every data chunk's range is in `data`.
    full_parity(data, p, q, r)
}

/// P (and Q, if given) over `r` of every data chunk in `data`.
pub(crate) fn full_parity(
    data: &mut [KVec<u8>],
    p: &mut [u8],
    q: Option<&mut [u8]>,
    r: &Range<usize>,
) -> Result<(), BlockError> {
    match q {
        Some(q) => {
            let all = Iterator::chain(
                data.iter_mut().map(|d| d.get_mut(r.clone())),
                [Some(p), Some(q)],
            );
            parity::gen_syndrome(all)
        }
        None => {
            let mut srcs = data.iter().map(|d| d.get(r.clone()));
            let first = srcs.next().flatten().ok_or(BlockError::Count)?;
            // Element-wise so that no length-mismatch panic path is compiled in.
            for (d, s) in p.iter_mut().zip(first) {
                *d = *s;
            }
            if data.len() < 2 {
                return Ok(());
            }
            parity::xor_into(p, srcs)
        }
    }
}

/// Read-modify-write: `old` holds the old data of the written chunks, `p` (and `q`) the old
/// parity. Each written chunk's change (old XOR new) is folded into the parity.
#[inline(never)]
fn read_modify_write(
    data: &[KVec<u8>],
    old: &mut [KVec<u8>],
    zero: &[u8],
    p: &mut [u8],
    q: Option<&mut [u8]>,
    req: &WriteRequest,
    r: &Range<usize>,
) -> Result<(), BlockError> {
    let dc = data.len();
    let (mut first, mut last) = (None, 0);
    for (k, (o, n)) in old.iter_mut().zip(data).enumerate() {
        if req.chunks.contains(k) {
            let (Some(o), Some(n)) = (o.get_mut(r.clone()), n.get(r.clone())) else {
                return Err(BlockError::Length);
            };
            parity::xor_into(o, [Some(n)])?;
            first.get_or_insert(k);
            last = k;
        }
    }
    let first = first.ok_or(BlockError::Count)?;
    match q {
        Some(q) => {
            // The syndrome routine wants every data position from `first` to `last`: a
            // chunk that did not change contributes zeroes.
            let zero = zero.get(r.clone()).ok_or(BlockError::Length)?;
            let changes = old.iter().enumerate().map(|(k, o)| {
                if req.chunks.contains(k) {
                    o.get(r.clone())
                } else {
                    Some(zero)
                }
            });
            if old.len() != dc {
                return Err(BlockError::Count);
            }
            parity::xor_syndrome(changes, p, q, first, last)
        }
        None => {
            let changed = old
                .iter()
                .enumerate()
                .filter(|(k, _)| req.chunks.contains(*k))
                .map(|(_, o)| o.get(r.clone()));
            parity::xor_into(p, changed)
        }
    }
}
