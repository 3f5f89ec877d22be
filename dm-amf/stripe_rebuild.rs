// SPDX-License-Identifier: GPL-2.0

//! Rebuilding members, one stripe at a time, by the stripe worker between host I/O (so a
//! rebuilt stripe never races a write to it): read every available block of the stripe,
//! rebuild the lost data chunks, recompute P and Q, and write the rebuilt members' blocks.

use kernel::prelude::*;

use crate::core_proto::{geometry::MemberSet, wire::OpKind};
use crate::stripe_read::{rebuild, stripe_ios};
use crate::stripe_write::{full_parity, IoDir, Scratch, StripeEngine, WriteError};

impl StripeEngine<'_> {
    /// Rebuilds the blocks of `stripe` on `targets`.
    #[inline(never)]
    pub(crate) fn rebuild_stripe(
        &self,
        scratch: &mut Scratch,
        stripe: u64,
        targets: MemberSet,
    ) -> Result<(), WriteError> {
        let g = &self.group.geometry;
        let layout = g.layout(stripe).map_err(|_| WriteError::Plan)?;
        let chunk_bytes = usize::try_from(g.chunk_sectors() * 512).map_err(|_| WriteError::Plan)?;
        let r = 0..chunk_bytes;
        let lost = MemberSet(self.group.failed().0 | targets.0);
        let bufs = &mut scratch.bufs;

        let sources = (0..g.members()).filter(|m| !lost.contains(*m));
        let reads = stripe_ios(&layout, layout.member_sector, g.chunk_sectors(), sources)?;
        self.run_ios_all(bufs, reads, OpKind::Mirror, &r, IoDir::Read)?;
        let lost_data = layout
            .data_members()
            .iter()
            .position(|m| lost.contains(usize::from(*m)));
        if let Some(k) = lost_data {
            rebuild(bufs, &layout, lost, k, &r).map_err(|_| WriteError::Parity)?;
        }
        {
            let p = bufs.p.get_mut(r.clone()).ok_or(WriteError::Plan)?;
            let q = bufs.q.get_mut(r.clone());
            full_parity(&mut bufs.data, p, q, &r).map_err(|_| WriteError::Parity)?;
        }

        let writes = stripe_ios(
            &layout,
            layout.member_sector,
            g.chunk_sectors(),
            targets.iter(),
        )?;
        let bad = self.run_ios(bufs, writes, OpKind::Mirror, &r, IoDir::Write)?;
        if !bad.is_empty() {
            // A new member that fails its writes is no use: it stays failed.
            self.group.abandon_rebuild(bad);
            self.group.mark_failed(bad);
            return Err(WriteError::Io);
        }
        Ok(())
    }
}
