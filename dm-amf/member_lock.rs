// SPDX-License-Identifier: GPL-2.0

//! The group-wide member-state lock of a clustered group with superblocks: the one DLM
//! resource (`Resource::Members`) through which the AMFs agree on which members are in
//! service, as md-cluster does with its metadata lock.
//!
//! Every AMF holds it in PR while it runs an operation, so the member states it relies on
//! cannot change under it. An AMF that must record a change (a member failed under its
//! writes) converts to EX, which makes every other AMF give its PR up at its next idle
//! moment (the blocking callback wakes its stripe worker), re-reads the newest superblocks,
//! writes the round and goes back down to PR, leaving the round's event counter in the
//! lock value block. An AMF that takes PR again finds a counter above the one it knows and
//! re-reads the superblocks before its next write: no AMF writes with a stale view of the
//! member set.

use kernel::prelude::*;

use crate::cluster::Membership;
use crate::core_proto::lock::{Resource, ResourceName};
use crate::core_proto::superblock::Uuid;
use crate::group::Round;
use crate::kernel_ext::dlm::{LockEvent, LockMode, LockTable, LVB_LEN};
use crate::stripe_worker::StripeWorker;

/// Where the lock stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    None,
    /// A request or conversion to this mode awaits its answer.
    Asking(LockMode),
    Granted(LockMode),
}

/// This target's hold on its group's member-state lock.
pub(crate) struct MemberLock {
    table: LockTable<Membership, StripeWorker>,
    name: ResourceName,
    held: Held,
    /// Another AMF asked for the lock while it was in use: give PR up when done.
    yield_pending: bool,
}

impl MemberLock {
    /// The lock of group `group` in `table`'s lockspace (one slot), unlocked.
    pub(crate) fn new(table: LockTable<Membership, StripeWorker>, group: &Uuid) -> Result<Self> {
        let name = ResourceName::new(group, Resource::Members).map_err(|_| EINVAL)?;
        Ok(Self {
            table,
            name,
            held: Held::None,
            yield_pending: false,
        })
    }

    /// Feeds the slot's callbacks: grants, and blocking callbacks, answered at once unless
    /// `in_use` (an operation relies on the states now). Returns whether anything happened.
    pub(crate) fn service(&mut self, in_use: bool) -> bool {
        let mut progress = false;
        if let Some(ev) = self.table.take_event(0) {
            progress = true;
            self.held = match (ev, self.held) {
                (LockEvent::Granted, Held::Asking(m)) => Held::Granted(m),
                (LockEvent::Failed(e), _) => {
                    pr_warn!("cluster: member-state lock: the DLM refused a request ({e})\n");
                    if self.table.is_live(0) {
                        // A failed conversion keeps the old lock: drop it.
                        let _ = self.table.unlock(0);
                        Held::Asking(LockMode::Nl)
                    } else {
                        Held::None
                    }
                }
                (LockEvent::Unlocked, _) => Held::None,
                (_, h) => h,
            };
        }
        if self.table.take_blocking(0).is_some() {
            progress = true;
            self.yield_pending = true;
        }
        if self.yield_pending && !in_use {
            if let Held::Granted(_) = self.held {
                if self.table.unlock(0).is_ok() {
                    self.held = Held::Asking(LockMode::Nl);
                }
            }
            self.yield_pending = false;
        }
        progress
    }

    /// Asks for `mode` (a request, or a conversion of the lock held), if not already held
    /// or asked for. `Ok(true)` once granted.
    pub(crate) fn ask(&mut self, mode: LockMode) -> Result<bool> {
        match self.held {
            Held::Granted(m) if m == mode => return Ok(true),
            Held::Asking(_) => return Ok(false),
            Held::Granted(LockMode::Ex) => {
                // Down from EX: a waiter for PR is served by the conversion itself.
                self.yield_pending = false;
            }
            Held::None | Held::Granted(_) => {}
        }
        self.table.request_value(0, mode, self.name.as_bytes())?;
        self.held = Held::Asking(mode);
        Ok(false)
    }

    /// The round the value block names, after a grant.
    pub(crate) fn round(&self) -> Round {
        match self.table.value(0) {
            Some(v) if v != [0; LVB_LEN] => Round::Events(u64::from_le_bytes(v)),
            _ => Round::Unknown,
        }
    }

    /// Under EX: the round `events` is on disk; the next conversion down publishes it.
    pub(crate) fn publish(&mut self, events: u64) {
        self.table.set_value(0, events.to_le_bytes());
    }

    /// Whether a blocking callback or grant may be waiting: arm before looking, then wait.
    pub(crate) fn table(&self) -> &LockTable<Membership, StripeWorker> {
        &self.table
    }
}
