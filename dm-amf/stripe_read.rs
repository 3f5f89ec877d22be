// SPDX-License-Identifier: GPL-2.0

//! Degraded RAID5/6 reads, run by the stripe worker (so never beside a write to the same
//! stripe): the core's `read_plan` names the surviving members to read, and the lost data
//! is rebuilt with the kernel's parity routines: XOR with P, or the raid6 recovery
//! routines when Q is needed.

use core::ops::Range;

use kernel::prelude::*;

use crate::core_proto::{
    geometry::{MemberSet, ReadPlan, StripeLayout},
    op::{Block, Io},
    wire::OpKind,
};
use crate::kernel_ext::{
    bio::DeferredBio,
    parity::{self, BlockError},
};
use crate::stripe_buf::StripeBuffers;
use crate::stripe_write::{IoDir, Scratch, StripeEngine, WriteError};

impl StripeEngine<'_> {
    /// Reads `bio` (within one chunk, at target-relative `logical`) while some members are
    /// out of service.
    #[inline(never)]
    pub(crate) fn read_bio(
        &self,
        scratch: &mut Scratch,
        bio: &mut DeferredBio,
        logical: u64,
    ) -> Result<(), WriteError> {
        let g = &self.group.geometry;
        let loc = g.map(logical).map_err(|_| WriteError::Plan)?;
        let start = usize::try_from(loc.offset * 512).map_err(|_| WriteError::Plan)?;
        let len = usize::try_from(bio.sectors() * 512).map_err(|_| WriteError::Plan)?;
        let r = start..start + len;
        scratch.with_stripe_lock(self, loc.stripe, |s| {
            self.read_locked(&mut s.bufs, bio, logical, &r)
        })
    }

    /// [`Self::read_bio`] once the stripe is locked (cluster mode): `r` is the bio's byte
    /// range in its chunk.
    #[inline(never)]
    fn read_locked(
        &self,
        bufs: &mut StripeBuffers,
        bio: &mut DeferredBio,
        logical: u64,
        r: &Range<usize>,
    ) -> Result<(), WriteError> {
        let g = &self.group.geometry;
        let loc = g.map(logical).map_err(|_| WriteError::Plan)?;
        // Each round fails one more member or ends.
        for _ in 0..=g.members() {
            let failed = self.group.unavailable(loc.stripe);
            let plan = g.read_plan(logical, failed).map_err(|_| WriteError::Io)?;
            let layout = g.layout(loc.stripe).map_err(|_| WriteError::Plan)?;
            // Either way every source is read at the chunk offset of the wanted sector.
            let sources = match plan {
                ReadPlan::Direct(place) => MemberSet::single(place.member),
                ReadPlan::Reconstruct { sources, .. } => sources,
            };
            let ios = stripe_ios(&layout, loc.member_sector, bio.sectors(), sources.iter())?;
            let bad = self.run_ios(bufs, ios, OpKind::Mirror, r, IoDir::Read)?;
            if !bad.is_empty() {
                self.group.mark_failed(bad);
                continue;
            }
            if let ReadPlan::Reconstruct { chunk, .. } = plan {
                rebuild(bufs, &layout, failed, chunk, r).map_err(|_| WriteError::Parity)?;
            }
            let data = bufs
                .data
                .get(loc.chunk)
                .and_then(|d| d.get(r.clone()))
                .ok_or(WriteError::Plan)?;
            return bio.copy_from_buf(0, data).map_err(|_| WriteError::Copy);
        }
        Err(WriteError::Io)
    }
}

/// One I/O per member of `members`, each `sectors` long from `sector` of the member's data
/// area, carrying the block the member holds in the stripe of `layout` (checked first: a
/// member that holds no block is a planning error).
pub(crate) fn stripe_ios<'a>(
    layout: &'a StripeLayout,
    sector: u64,
    sectors: u64,
    members: impl Iterator<Item = usize> + Clone + 'a,
) -> Result<impl Iterator<Item = Io> + Clone + 'a, WriteError> {
    if members.clone().any(|m| block_of(layout, m).is_none()) {
        return Err(WriteError::Plan);
    }
    Ok(members.filter_map(move |m| {
        Some(Io {
            member: m,
            sector,
            sectors,
            what: block_of(layout, m)?,
        })
    }))
}

/// The block member `m` holds in a stripe.
pub(crate) fn block_of(layout: &StripeLayout, m: usize) -> Option<Block> {
    if layout.p == Some(m) {
        Some(Block::P)
    } else if layout.q == Some(m) {
        Some(Block::Q)
    } else {
        layout.chunk_of(m).map(|k| Block::Data(k as u8))
    }
}

/// Rebuilds data chunk `want` over `r` from the blocks read (every surviving data chunk and
/// P, or Q where P or a second data chunk is lost).
#[inline(never)]
pub(crate) fn rebuild(
    bufs: &mut StripeBuffers,
    layout: &StripeLayout,
    failed: MemberSet,
    want: usize,
    r: &Range<usize>,
) -> Result<(), BlockError> {
    let lost_data = |k: &usize| layout.data_member(*k).is_some_and(|m| failed.contains(m));
    let other_lost = (0..bufs.data.len()).find(|k| *k != want && lost_data(k));
    let p_alive = layout.p.is_some_and(|m| !failed.contains(m));
    let StripeBuffers { data, p, q, .. } = bufs;
    if other_lost.is_none() && p_alive {
        // RAID5, or RAID6 with P: the chunk is P XOR the other data chunks.
        let at = want.min(data.len());
        let (before, rest) = data.split_at_mut(at);
        let (target, after) = rest.split_first_mut().ok_or(BlockError::Index)?;
        let target = target.get_mut(r.clone()).ok_or(BlockError::Length)?;
        target.fill(0);
        let others = Iterator::chain(before.iter(), after.iter()).map(|d| d.get(r.clone()));
        let srcs = Iterator::chain(others, [p.get(r.clone())]);
        return parity::xor_into(target, srcs);
    }
    // RAID6 with Q: every data block, P and Q, the lost ones rebuilt in place.
    let all = Iterator::chain(
        data.iter_mut().map(|d| d.get_mut(r.clone())),
        [p.get_mut(r.clone()), q.get_mut(r.clone())],
    );
    match other_lost {
        Some(other) => parity::recover_two_data(all, want, other),
        None => parity::recover_data_and_p(all, want),
    }
}
