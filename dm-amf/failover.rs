// SPDX-License-Identifier: GPL-2.0

//! Taking over a dead AMF's operation (core `recovery`, `Documentation/protocol.rst`).
//!
//! When the DLM reports a node dead, every survivor's stripe worker stops starting
//! operations. The survivor with the lowest live node id (the recoverer) rewrites the new
//! image of the dead node's Prepared operation from the records it holds (new data from
//! Intent, new P/Q from Prepared: absolute values, so rewriting is idempotent), each under
//! the stripe's EX lock; an Intent alone is dropped (nothing reached the disks). It then
//! tells the others (`Complete`: drop the dead node's records), waits for every echo and
//! sends `Resume`. The others wait for that `Resume` and answer lock requests meanwhile
//! (the recoverer may need a lock they cache). A recoverer that dies during this is
//! replaced by the next lowest node at the next membership change, from its own records.

use core::ops::Range;

use kernel::{prelude::*, time::Ktime};

use crate::core_proto::{
    op::{self, ChunkSet, WriteRequest},
    recovery,
    wire::{Body, RecordHeader, Role},
};
use crate::repl::{bit, Held, Replication};
use crate::repl_session::Session;
use crate::stripe_buf::StripeBuffers;
use crate::stripe_lock::RECOVERY_TIMEOUT_MS;
use crate::stripe_write::{IoDir, Scratch, StripeEngine, WriteError};

/// Holds the worker back while dead nodes' operations are being taken over, and takes them
/// over itself when it is the recoverer. Called before every stripe operation.
#[inline(never)]
pub(crate) fn settle(engine: &StripeEngine<'_>, scratch: &mut Scratch) -> Result<(), WriteError> {
    let Some(repl) = scratch.repl.clone() else {
        return Ok(());
    };
    let start = Ktime::ktime_get();
    loop {
        let m = repl.membership();
        let pending = m.pending_deaths();
        if pending == 0 {
            return Ok(());
        }
        repl.drop_sessions(pending);
        if !m.recovering() {
            let live = m.live_nodes() & !pending;
            if recovery::recoverer(live) == Some(repl.node()) {
                take_over(engine, scratch, &repl, pending)?;
                m.clear_pending(pending);
                continue;
            }
        }
        if kernel::time::ktime_ms_delta(Ktime::ktime_get(), start) > RECOVERY_TIMEOUT_MS {
            pr_warn!("dm-amf: no takeover of dead nodes {pending:#x} finished in time\n");
            return Err(WriteError::Cluster);
        }
        if let Some(l) = scratch.locks.as_mut() {
            // The recoverer may need a lock this target caches.
            l.idle();
        }
        repl.wait_change();
    }
}

/// The recoverer's part for the dead nodes in `dead`.
#[inline(never)]
fn take_over(
    engine: &StripeEngine<'_>,
    scratch: &mut Scratch,
    repl: &Replication,
    dead: u64,
) -> Result<(), WriteError> {
    for node in (0..64u32).filter(|n| dead & bit(*n) != 0) {
        let mut job = None;
        let bufs = &mut scratch.bufs;
        repl.take_held(bit(node), |intent, prepared| {
            job = load_image(bufs, intent, prepared);
        });
        if let Some((h, r)) = job {
            rewrite(engine, scratch, &h, &r)?;
            repl.stats
                .replayed
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            pr_info!(
                "dm-amf: rewrote operation {} of dead node {node} (stripe {})\n",
                h.op_id,
                h.stripe
            );
        }
        repl.complete_round(node).map_err(|_| WriteError::Cluster)?;
        let slot = crate::core_proto::bitmap::node_slot(node);
        if let (Some(log), Some(slot)) = (engine.group.parity_log(), slot) {
            // What it logged is on disk whole now, or was never written: retire it before
            // anybody changes its stripe, so that its restart does not replay it.
            let failed = engine.group.failed().0;
            if let Err(e) = log.adopt(&engine.group.members, failed, slot, false) {
                pr_err!("ppl: cannot retire dead node {node}'s log: {e:?}\n");
            }
        }
    }
    let ms = kernel::time::ktime_ms_delta(Ktime::ktime_get(), repl.membership().last_death());
    repl.stats
        .last_takeover_ms
        .store(ms.max(0) as u64, core::sync::atomic::Ordering::Relaxed);
    pr_info!("dm-amf: takeover of dead nodes {dead:#x} done {ms} ms after the death\n");
    Ok(())
}

/// Copies a Prepared operation's new image (data from its Intent, parity from its
/// Prepared record) into the stripe buffers. None if there is nothing to rewrite.
#[inline(never)]
fn load_image(
    bufs: &mut StripeBuffers,
    intent: &Held,
    prepared: &Held,
) -> Option<(RecordHeader, Range<usize>)> {
    let (ih, ph) = (intent.header?, prepared.header?);
    if ih.op_id != ph.op_id || recovery::action(ph.step) != recovery::Action::Rewrite {
        return None;
    }
    let start = usize::try_from(ph.offset).ok()?.checked_mul(512)?;
    let len = usize::try_from(ph.sectors).ok()?.checked_mul(512)?;
    let r = start..start.checked_add(len)?;
    for held in [intent, prepared] {
        let f = Session::decode(held.bytes())?;
        let Body::Record(view) = f.body else {
            return None;
        };
        for b in view.blocks() {
            let dst = match b.role {
                Role::NewData => bufs.data.get_mut(usize::from(b.index))?,
                Role::NewP => &mut bufs.p,
                Role::NewQ => &mut bufs.q,
                _ => continue,
            };
            let dst = dst.get_mut(r.clone())?;
            if dst.len() != b.bytes.len() {
                return None;
            }
            for (d, s) in dst.iter_mut().zip(b.bytes) {
                *d = *s;
            }
        }
    }
    Some((ph, r))
}

/// Writes the image in the buffers to the members, under the stripe's lock.
#[inline(never)]
fn rewrite(
    engine: &StripeEngine<'_>,
    scratch: &mut Scratch,
    h: &RecordHeader,
    r: &Range<usize>,
) -> Result<(), WriteError> {
    let g = &engine.group.geometry;
    // The writes of the operation's plan (core `recovery::rewrite_ios`, planned into the
    // worker's heap copy: a plan is too big for the stack).
    let req = WriteRequest {
        stripe: h.stripe,
        offset: u64::from(h.offset),
        sectors: u64::from(h.sectors),
        chunks: ChunkSet(h.chunks),
    };
    op::plan_write_into(
        &mut scratch.plan,
        g,
        &req,
        engine.group.unavailable(h.stripe),
        true,
    )
    .map_err(|_| WriteError::Plan)?;
    let slot = match scratch.locks.as_mut() {
        Some(l) => Some(l.acquire(h.stripe).map_err(|_| WriteError::Cluster)?),
        None => None,
    };
    let Scratch { bufs, plan, .. } = scratch;
    let done = engine.run_ios(
        bufs,
        plan.writes.as_slice().iter().copied(),
        crate::core_proto::wire::OpKind::FullStripe,
        r,
        IoDir::WriteFua,
    );
    if let (Some(l), Some(s)) = (scratch.locks.as_mut(), slot) {
        l.release(s);
    }
    let bad = done?;
    if !bad.is_empty() {
        engine.group.mark_failed(bad);
        if !engine.group.can_serve() {
            return Err(WriteError::Io);
        }
    }
    Ok(())
}
