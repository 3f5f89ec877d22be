// SPDX-License-Identifier: GPL-2.0

//! One stripe of an online check or repair ([`crate::sync_action`]), run by the stripe
//! worker between host I/O under the stripe's cluster lock, like a rebuild step: read every
//! block, recompute P and Q from the data (or compare every copy of a mirrored chunk with
//! the first), count what differs and, for a repair, rewrite what differs.
//!
//! A repair rewrites only parity blocks or second copies, never the data a read returns:
//! a repair torn by a crash leaves the stripe no less consistent than it found it. Its
//! write-intent bit is set first, as for any write, so a resync covers it after a crash.

use core::ops::Range;

use kernel::prelude::*;

use crate::core_proto::{
    op::{Block, Io},
    wire::OpKind,
};
use crate::stripe_buf::StripeBuffers;
use crate::stripe_ppl::copy;
use crate::stripe_read::stripe_ios;
use crate::stripe_write::{full_parity, IoDir, Scratch, StripeEngine, WriteError};

/// Bytes compared at a time: md counts mismatches a 4 KiB block at a time.
const BLOCK: usize = 4096;

/// The sectors of the `BLOCK`s over which `differs(range)` says the stripe is inconsistent.
fn mismatched(r: &Range<usize>, differs: impl Fn(Range<usize>) -> bool) -> u64 {
    let mut sectors = 0u64;
    let mut at = r.start;
    while at < r.end {
        let end = r.end.min(at.saturating_add(BLOCK));
        if differs(at..end) {
            sectors = sectors.saturating_add(((end - at) / 512) as u64);
        }
        at = end;
    }
    sectors
}

/// Whether `a` and `b` differ over `w` (a range outside either counts as a difference).
fn differ(a: &[u8], b: &[u8], w: Range<usize>) -> bool {
    a.get(w.clone()) != b.get(w.clone()) || a.get(w).is_none()
}

impl StripeEngine<'_> {
    /// Checks (and with `repair` makes consistent) stripe `stripe`, or for a mirror the
    /// copies of logical chunk `stripe`; returns the mismatched sectors found. Every member
    /// must be available: a check of a degraded stripe has nothing to compare with.
    #[inline(never)]
    pub(crate) fn check_stripe(
        &self,
        scratch: &mut Scratch,
        stripe: u64,
        repair: bool,
    ) -> Result<u64, WriteError> {
        if !self.group.unavailable(stripe).is_empty() {
            return Err(WriteError::Io);
        }
        if self.group.geometry.parity_chunks() == 0 {
            self.check_copies(scratch, stripe, repair)
        } else {
            self.check_parity(scratch, stripe, repair)
        }
    }

    /// RAID5/6: the parity as read against the parity of the data as read.
    fn check_parity(
        &self,
        scratch: &mut Scratch,
        stripe: u64,
        repair: bool,
    ) -> Result<u64, WriteError> {
        let g = &self.group.geometry;
        let layout = g.layout(stripe).map_err(|_| WriteError::Plan)?;
        let chunk_bytes = usize::try_from(g.chunk_sectors() * 512).map_err(|_| WriteError::Plan)?;
        let r = 0..chunk_bytes;
        let bufs = &mut scratch.bufs;
        let reads = stripe_ios(
            &layout,
            layout.member_sector,
            g.chunk_sectors(),
            0..g.members(),
        )?;
        self.run_ios_all(bufs, reads, OpKind::Mirror, &r, IoDir::Read)?;
        let sectors = recompute_parity(bufs, g.parity_chunks() == 2, &r)?;
        if sectors != 0 && repair {
            self.group
                .mark_intent(layout.member_sector)
                .map_err(|_| WriteError::Io)?;
            let parity = Iterator::chain(layout.p.into_iter(), layout.q);
            let writes = stripe_ios(&layout, layout.member_sector, g.chunk_sectors(), parity)?;
            self.run_ios_all(bufs, writes, OpKind::Mirror, &r, IoDir::Write)?;
        }
        Ok(sectors)
    }

    /// RAID1/10: every copy of logical chunk `chunk` against its first copy.
    fn check_copies(
        &self,
        scratch: &mut Scratch,
        chunk: u64,
        repair: bool,
    ) -> Result<u64, WriteError> {
        let g = &self.group.geometry;
        let cs = g.chunk_sectors();
        let chunk_bytes = usize::try_from(cs * 512).map_err(|_| WriteError::Plan)?;
        let r = 0..chunk_bytes;
        let sector = chunk.checked_mul(cs).ok_or(WriteError::Plan)?;
        let mut places = g.copy_iter(sector).map_err(|_| WriteError::Plan)?;
        let io = |p: crate::core_proto::geometry::Place| Io {
            member: p.member,
            sector: p.sector,
            sectors: cs,
            what: Block::Data(0),
        };
        let first = places.next().ok_or(WriteError::Plan)?;
        let bufs = &mut scratch.bufs;
        self.run_ios_all(
            bufs,
            [io(first)].into_iter(),
            OpKind::Mirror,
            &r,
            IoDir::Read,
        )?;
        let mut sectors = 0u64;
        for place in places {
            // Read-modify-write reads data blocks into `old`: the copy beside the first.
            let read = [io(place)].into_iter();
            self.run_ios_all(bufs, read, OpKind::ReadModifyWrite, &r, IoDir::Read)?;
            let (Some(a), Some(b)) = (bufs.data.first(), bufs.old.first()) else {
                return Err(WriteError::Plan);
            };
            let found = mismatched(&r, |w| differ(a, b, w));
            sectors = sectors.saturating_add(found);
            if found != 0 && repair {
                self.group
                    .mark_intent(place.sector)
                    .map_err(|_| WriteError::Io)?;
                let write = [io(place)].into_iter();
                self.run_ios_all(bufs, write, OpKind::Mirror, &r, IoDir::Write)?;
            }
        }
        Ok(sectors)
    }
}

/// Sets the parity read (in `p`, `q`) aside in `old` (which holds a chunk for each data
/// chunk: at least one for RAID5, two for RAID6), recomputes it from the data in place and
/// returns the sectors where the two differ. `p` and `q` then hold the right parity.
#[inline(never)]
fn recompute_parity(
    bufs: &mut StripeBuffers,
    raid6: bool,
    r: &Range<usize>,
) -> Result<u64, WriteError> {
    let StripeBuffers {
        data, old, p, q, ..
    } = bufs;
    let mut aside = old.iter_mut();
    let saved_p = aside.next().ok_or(WriteError::Plan)?;
    let mut saved_q = if raid6 {
        Some(aside.next().ok_or(WriteError::Plan)?)
    } else {
        None
    };
    let aside_of = |dst: &mut [u8], src: &[u8]| {
        copy(
            dst.get_mut(r.clone()).ok_or(WriteError::Plan)?,
            src.get(r.clone()),
        )
    };
    aside_of(saved_p, p)?;
    if let Some(sq) = saved_q.as_deref_mut() {
        aside_of(sq, q)?;
    }
    {
        let p = p.get_mut(r.clone()).ok_or(WriteError::Plan)?;
        let q = q.get_mut(r.clone()).filter(|_| raid6);
        full_parity(data, p, q, r).map_err(|_| WriteError::Parity)?;
    }
    let (p, q): (&[u8], &[u8]) = (p, q);
    let saved_p: &[u8] = saved_p;
    let saved_q = saved_q.as_deref().map(|sq| sq.as_slice());
    Ok(mismatched(r, |w| {
        differ(p, saved_p, w.clone()) || saved_q.is_some_and(|sq| differ(q, sq, w))
    }))
}
