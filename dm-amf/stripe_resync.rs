// SPDX-License-Identifier: GPL-2.0

//! Resyncing the rows of a region the write-intent bitmap found dirty at start: a write
//! may have reached some members of a row and not others when every AMF died. RAID5/6
//! recompute P (and Q) from the data chunks, whichever version each holds; a mirror copies
//! its first live member to the others. Run by the stripe worker between host I/O, under
//! the row's cluster lock, like a rebuild.

use kernel::prelude::*;

use crate::core_proto::{
    geometry::MemberSet,
    op::{Block, Io},
    wire::OpKind,
};
use crate::stripe_write::{IoDir, Scratch, StripeEngine, WriteError};

impl StripeEngine<'_> {
    /// Makes row `stripe` consistent again.
    #[inline(never)]
    pub(crate) fn resync_stripe(
        &self,
        scratch: &mut Scratch,
        stripe: u64,
    ) -> Result<(), WriteError> {
        let g = &self.group.geometry;
        if g.parity_chunks() == 0 {
            return self.resync_mirror_row(scratch, stripe);
        }
        let layout = g.layout(stripe).map_err(|_| WriteError::Plan)?;
        let unavailable = self.group.unavailable(stripe);
        if layout
            .data_members()
            .iter()
            .any(|m| unavailable.contains(usize::from(*m)))
        {
            // A lost data chunk can only be rebuilt from the parity in question: nothing
            // to recompute it from (the degraded write hole, see on-disk-format.rst).
            return Ok(());
        }
        let parity = [layout.p, layout.q]
            .into_iter()
            .flatten()
            .filter(|m| !unavailable.contains(*m))
            .fold(MemberSet::EMPTY, MemberSet::with);
        if parity.is_empty() {
            return Ok(());
        }
        // Rebuilding the parity blocks from every data chunk is exactly their resync.
        self.rebuild_stripe(scratch, stripe, parity)
    }

    /// A mirror row: the first live member's chunk to every other live member.
    fn resync_mirror_row(&self, scratch: &mut Scratch, row: u64) -> Result<(), WriteError> {
        let g = &self.group.geometry;
        let chunk_sectors = g.chunk_sectors();
        let chunk_bytes = usize::try_from(chunk_sectors * 512).map_err(|_| WriteError::Plan)?;
        let r = 0..chunk_bytes;
        let sector = row * chunk_sectors;
        let unavailable = self.group.unavailable(row);
        let mut live = (0..g.members()).filter(|m| !unavailable.contains(*m));
        let Some(source) = live.next() else {
            return Err(WriteError::Io);
        };
        let io = |member| Io {
            member,
            sector,
            sectors: chunk_sectors,
            what: Block::Data(0),
        };
        let read = [io(source)];
        self.run_ios_all(
            &mut scratch.bufs,
            read.into_iter(),
            OpKind::Mirror,
            &r,
            IoDir::Read,
        )?;
        let writes = live.map(io);
        self.run_ios_all(&mut scratch.bufs, writes, OpKind::Mirror, &r, IoDir::Write)?;
        Ok(())
    }
}
