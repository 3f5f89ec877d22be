// SPDX-License-Identifier: GPL-2.0

//! The stripe worker's side of the partial parity log (`parity_log`): the entry of a write
//! to a stripe that lacks a data member, made durable before the write reaches the members;
//! its retirement; and the replay at start of the entry a crash left live.
//!
//! The partial parity is the stripe rows' new parity minus the written chunks on present
//! members; the replay adds what those chunks hold then. Both are the same fold
//! ([`fold_written`]): XOR for P, the syndrome routine's `xor_syndrome` for Q.

use core::ops::Range;

use kernel::prelude::*;

use crate::core_proto::{
    geometry::MemberSet,
    op::{Block, ChunkSet, Io, WriteRequest},
    parity as reference,
    ppl::{self, Entry},
    wire::OpKind,
};
use crate::kernel_ext::parity::{self, BlockError};
use crate::parity_log::ParityLog;
use crate::stripe_buf::StripeBuffers;
use crate::stripe_write::{IoDir, Scratch, StripeEngine, WriteError};

impl StripeEngine<'_> {
    /// The longest range of a chunk one logged operation of `req`'s stripe may cover
    /// (`None` when its writes are not logged).
    fn log_limit(&self, req: &WriteRequest) -> Option<u64> {
        let log = self.group.parity_log()?;
        let layout = self.group.geometry.layout(req.stripe).ok()?;
        log.logs(&layout, self.group.unavailable(req.stripe))
            .then(|| ppl::max_sectors(log.parity()))
    }

    /// Cuts a write request of part of one chunk (covering `covered` host sectors) to what
    /// one log entry holds, when its stripe's writes are logged. Whole chunks are left to
    /// [`Self::log_slice`].
    pub(crate) fn cap_for_log(&self, req: WriteRequest, covered: u64) -> (WriteRequest, u64) {
        match self.log_limit(&req) {
            Some(max) if req.chunks.len() == 1 => ppl::cap_request(req, covered, max),
            _ => (req, covered),
        }
    }

    /// Sectors of each chunk one operation of `req` (whole chunks) covers: all of them, or,
    /// when an entry cannot hold them, slices of the rows that are still written whole (a
    /// full-stripe write stays one, without reads).
    pub(crate) fn log_slice(&self, req: &WriteRequest) -> u64 {
        self.log_limit(req)
            .filter(|max| *max > 0)
            .map_or(req.sectors, |max| max.min(req.sectors))
    }

    /// Before the writes of `req` (planned without the members `unavailable`) are issued,
    /// with its new data and parity in `bufs`: logs its partial parity when the log takes it
    /// ([`ParityLog::logs`]: the stripe lacks a data member, or the table says `ppl`), or else
    /// retires a live entry of the same stripe (the write changes what that entry's partial
    /// parity assumes). Returns members whose log write failed.
    #[inline(never)]
    pub(crate) fn log_write(
        &self,
        bufs: &mut StripeBuffers,
        req: &WriteRequest,
        r: &Range<usize>,
        unavailable: MemberSet,
    ) -> Result<MemberSet, WriteError> {
        let Some(log) = self.group.parity_log() else {
            return Ok(MemberSet::EMPTY);
        };
        let members = &self.group.members;
        let targets = !self.group.failed().0;
        let layout = self
            .group
            .geometry
            .layout(req.stripe)
            .map_err(|_| WriteError::Plan)?;
        let mut io = log.lock();
        let logged = log.logs(&layout, unavailable);
        let fits = req.sectors <= ppl::max_sectors(log.parity());
        if logged && !fits {
            // Only when a member failed after the request was cut (`cap_for_log`).
            pr_warn!(
                "ppl: stripe {}: a write of {} sectors is too long to log\n",
                req.stripe,
                req.sectors
            );
        }
        if !logged || !fits {
            if io.live() != Some(req.stripe) {
                return Ok(MemberSet::EMPTY);
            }
            let bad = log
                .retire(&mut io, members, targets)
                .map_err(|_| WriteError::Io)?;
            return Ok(MemberSet(bad));
        }
        let written = ppl::written_present(req, &layout, unavailable);
        let (pp_p, pp_q) = io.pp_mut(r.len(), log.parity()).ok_or(WriteError::Plan)?;
        let (p, q) = (bufs.p.get(r.clone()), bufs.q.get(r.clone()));
        copy(pp_p, p)?;
        let pp_q = if log.parity() == 2 {
            copy(pp_q, q)?;
            Some(pp_q)
        } else {
            None
        };
        fold_written(&bufs.data, &bufs.zero, pp_p, pp_q, written, r)
            .map_err(|_| WriteError::Parity)?;
        let bad = log
            .append(&mut io, members, targets, req, written)
            .map_err(|_| WriteError::Io)?;
        Ok(MemberSet(bad))
    }

    /// After a write's member writes: with other AMFs (`shared`), the stripe's lock may go
    /// to one of them, which would change the stripe behind the entry's back, so a live
    /// entry is retired now.
    #[inline(never)]
    pub(crate) fn after_write(&self, shared: bool) -> Result<(), WriteError> {
        if !shared {
            return Ok(());
        }
        self.group.retire_log().map_err(|_| WriteError::Io)
    }

    /// Replays the entry the constructor found live, under its stripe's lock; the stripe
    /// worker calls it before anything else, so no write or rebuild meets the torn stripe.
    pub(crate) fn replay_log(&self, scratch: &mut Scratch) -> Result<(), WriteError> {
        let Some(log) = self.group.parity_log() else {
            return Ok(());
        };
        let Some(e) = log.lock().to_replay() else {
            return Ok(());
        };
        scratch.with_stripe_lock(self, e.stripe, |s| self.replay_entry(&mut s.bufs, log, &e))
    }

    /// Rewrites the parity of `e`'s rows: partial parity plus what the written chunks hold.
    #[inline(never)]
    fn replay_entry(
        &self,
        bufs: &mut StripeBuffers,
        log: &ParityLog,
        e: &Entry,
    ) -> Result<(), WriteError> {
        let span = e.span(&self.group.geometry);
        let unavailable = self.group.unavailable(e.stripe);
        let written = ChunkSet(e.written);
        let gone = span.as_ref().ok().and_then(|s| {
            (0..s.layout.data_members().len())
                .filter(|k| written.contains(*k))
                .filter_map(|k| s.layout.data_member(k))
                .find(|m| unavailable.contains(*m))
        });
        let span = match span {
            Ok(s) if gone.is_none() => s,
            _ => {
                pr_warn!(
                    "ppl: stripe {}: entry {} cannot be replayed (member {:?} gone, or not this geometry's)\n",
                    e.stripe,
                    e.seq,
                    gone
                );
                return self.retire_replayed(log);
            }
        };
        let ppl::Span {
            layout,
            sector,
            sectors,
            bytes: r,
        } = span;
        if layout.data_members().len() > usize::from(u8::MAX) {
            return Err(WriteError::Plan);
        }
        let reads = layout
            .data_members()
            .iter()
            .enumerate()
            .filter(|(k, _)| written.contains(*k))
            .map(|(k, m)| Io {
                member: usize::from(*m),
                sector,
                sectors,
                what: Block::Data(k as u8),
            });
        self.run_ios_all(bufs, reads, OpKind::Mirror, &r, IoDir::Read)?;
        {
            let mut io = log.lock();
            let (pp_p, pp_q) = io.pp_mut(r.len(), log.parity()).ok_or(WriteError::Plan)?;
            copy_into(bufs.p.get_mut(r.clone()), pp_p)?;
            if log.parity() == 2 {
                copy_into(bufs.q.get_mut(r.clone()), pp_q)?;
            }
        }
        let StripeBuffers {
            data, p, q, zero, ..
        } = &mut *bufs;
        let p = p.get_mut(r.clone()).ok_or(WriteError::Plan)?;
        let q = q.get_mut(r.clone()).filter(|_| log.parity() == 2);
        fold_written(data, zero, p, q, written, &r).map_err(|_| WriteError::Parity)?;
        let writes = [(layout.p, Block::P), (layout.q, Block::Q)]
            .into_iter()
            .filter_map(|(m, what)| {
                Some(Io {
                    member: m.filter(|m| !unavailable.contains(*m))?,
                    sector,
                    sectors,
                    what,
                })
            });
        self.run_ios_all(bufs, writes, OpKind::Mirror, &r, IoDir::WriteFua)?;
        pr_info!(
            "ppl: stripe {} replayed (entry {}): parity rewritten for sectors {}..{} of its chunks\n",
            e.stripe,
            e.seq,
            e.offset,
            u64::from(e.offset) + sectors
        );
        self.retire_replayed(log)
    }

    fn retire_replayed(&self, log: &ParityLog) -> Result<(), WriteError> {
        let mut io = log.lock();
        let bad = log
            .retire_replayed(&mut io, &self.group.members, !self.group.failed().0)
            .map_err(|_| WriteError::Io)?;
        self.group.mark_failed(MemberSet(bad));
        Ok(())
    }
}

/// `dst = src` (same length, or an error).
pub(crate) fn copy(dst: &mut [u8], src: Option<&[u8]>) -> Result<(), WriteError> {
    let src = src
        .filter(|s| s.len() == dst.len())
        .ok_or(WriteError::Plan)?;
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
    Ok(())
}

/// `dst = src` for an optional destination.
fn copy_into(dst: Option<&mut [u8]>, src: &[u8]) -> Result<(), WriteError> {
    let dst = dst.ok_or(WriteError::Plan)?;
    copy(dst, Some(src))
}

/// `p ^= ` the XOR, and `q ^= ` the Q syndrome, of the data chunks `written` of `data`
/// over `r` (`zero`: a zero chunk) (`p` and `q` are `r.len()` long). Linear, so it both takes the
/// written chunks out of new parity (the partial parity) and puts what they hold back in.
fn fold_written(
    data: &[KVec<u8>],
    zero: &[u8],
    p: &mut [u8],
    q: Option<&mut [u8]>,
    written: ChunkSet,
    r: &Range<usize>,
) -> Result<(), BlockError> {
    let (mut first, mut last) = (None, 0);
    match q {
        Some(q) if !parity::has_xor_syndrome() => {
            // The CPU's raid6 routines cannot update a syndrome in place (md then gives up
            // read-modify-write): fold each chunk with its coefficient, {02}^k.
            for (k, d) in data
                .iter()
                .enumerate()
                .filter(|(k, _)| written.contains(*k))
            {
                let d = d.get(r.clone()).ok_or(BlockError::Length)?;
                parity::xor_into(p, [Some(d)])?;
                reference::mul_xor_into(q, d, reference::gf_exp2(k))
                    .map_err(|_| BlockError::Length)?;
            }
            Ok(())
        }
        Some(q) => {
            let zero = zero.get(r.clone()).ok_or(BlockError::Length)?;
            for k in (0..data.len()).filter(|k| written.contains(*k)) {
                first.get_or_insert(k);
                last = k;
            }
            let Some(first) = first else {
                return Ok(());
            };
            let srcs = data.iter().enumerate().map(|(k, d)| {
                if written.contains(k) {
                    d.get(r.clone())
                } else {
                    Some(zero)
                }
            });
            parity::xor_syndrome(srcs, p, q, first, last)
        }
        None => {
            if !(0..data.len()).any(|k| written.contains(k)) {
                return Ok(());
            }
            let chosen = data
                .iter()
                .enumerate()
                .filter(|(k, _)| written.contains(*k))
                .map(|(_, d)| d.get(r.clone()));
            parity::xor_into(p, chosen)
        }
    }
}
