// SPDX-License-Identifier: GPL-2.0

//! The stripe lock arbiter of a clustered group: before the stripe worker reads, computes
//! or writes anything of a stripe it holds the stripe's DLM lock in EX, so that no two AMFs
//! (on this server or others) ever interleave the steps of two operations on one stripe.
//!
//! Locks are released lazily, as the core's lock model (`core::lock::LockState`) says: a
//! granted lock stays cached after its operation, so a server that keeps writing its own
//! region asks once per lock unit; only a blocking callback (another AMF wants the unit)
//! makes it down-convert, after the operation in flight finished. The worker runs one
//! operation at a time, so while it waits for a grant no other lock it holds is in use,
//! and it answers blocking callbacks while it waits: two AMFs each waiting for a unit the
//! other holds cannot deadlock.
//!
//! Membership changes stop all new operations: from `recover_prep` until `recover_done` no
//! operation starts, even under a cached lock, because a server cut off from the others
//! cannot tell whether its locks are still its own. One that stays cut off longer than
//! [`RECOVERY_TIMEOUT_MS`] fails its writes from then on and stays failed until its table
//! is reloaded.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::{prelude::*, sync::Arc, time::Ktime};

use crate::cluster::{GroupSpace, Membership};
use crate::core_proto::lock::{Action, LockState, Mode, Resource, ResourceName, State};
use crate::core_proto::superblock::Uuid;
use crate::group::Round;
use crate::kernel_ext::dlm::{LockEvent, LockMode, LockTable};
use crate::lock_stats::LockStats;
use crate::member_lock::MemberLock;
use crate::stripe_worker::StripeWorker;

/// Lock units cached per target: the least recently used idle one is unlocked to make room.
const CACHE_SLOTS: usize = 2048;
/// Longest time a membership change may stop locking before writes fail.
pub(crate) const RECOVERY_TIMEOUT_MS: i64 = 30_000;
/// How long one wait for a callback lasts before the worker looks again.
const POLL_MS: u32 = 100;

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn dlm_mode(m: Mode) -> LockMode {
    match m {
        Mode::Nl => LockMode::Nl,
        Mode::Cr => LockMode::Cr,
        Mode::Pr => LockMode::Pr,
        Mode::Pw => LockMode::Pw,
        Mode::Ex => LockMode::Ex,
    }
}

fn core_mode(m: LockMode) -> Mode {
    match m {
        LockMode::Nl => Mode::Nl,
        LockMode::Cr => Mode::Cr,
        LockMode::Pr => Mode::Pr,
        LockMode::Pw => Mode::Pw,
        LockMode::Ex => Mode::Ex,
    }
}

/// One cache slot: the lock unit it holds and its state.
#[derive(Clone, Copy)]
struct SlotState {
    unit: Option<u64>,
    lock: LockState,
    /// When it was last used (for eviction).
    used: u64,
    /// A DLM call the state machine asked for while locking was stopped.
    deferred: Option<Action>,
}

impl SlotState {
    const EMPTY: Self = Self {
        unit: None,
        lock: LockState::new(),
        used: 0,
        deferred: None,
    };
}

/// Why an operation may not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockFailure {
    /// This server lost the cluster (membership stopped for too long, or the DLM refused a
    /// request): it must not write to the shared members.
    Lost,
}

/// The stripe locks one target holds.
pub(crate) struct StripeLocks {
    table: LockTable<Membership, StripeWorker>,
    slots: KVVec<SlotState>,
    /// The table's callback count at the last look at every slot.
    seen: u64,
    /// Slots with a deferred DLM call.
    deferred: usize,
    /// The last look skipped blocking callbacks (locking was stopped): look again.
    recheck: bool,
    group: Uuid,
    lock_stripes: u64,
    clock: u64,
    /// The slot an operation is being admitted to: its grant is not settled by `service`.
    acquiring: Option<usize>,
    stats: Arc<LockStats>,
    /// The group's member-state lock (a group with superblocks).
    members: Option<MemberLock>,
    /// An operation runs (between `acquire` and `release`): it relies on the member states.
    in_op: bool,
}

impl StripeLocks {
    /// Locks for a target of group `group` in `space`, `lock_stripes` stripes per unit;
    /// callbacks wake `worker`.
    #[inline(never)]
    pub(crate) fn new(
        space: Arc<GroupSpace>,
        (group, with_members): (Uuid, bool),
        lock_stripes: u32,
        worker: Arc<StripeWorker>,
        stats: Arc<LockStats>,
    ) -> Result<Self> {
        let members = if with_members {
            let t = LockTable::new(space.clone(), 1, worker.clone())?;
            Some(MemberLock::new(t, &group)?)
        } else {
            None
        };
        let table = LockTable::new(space, CACHE_SLOTS, worker)?;
        let mut slots = KVVec::with_capacity(CACHE_SLOTS, GFP_KERNEL)?;
        for _ in 0..CACHE_SLOTS {
            slots.push(SlotState::EMPTY, GFP_KERNEL)?;
        }
        Ok(Self {
            table,
            slots,
            group,
            lock_stripes: u64::from(lock_stripes.max(1)),
            clock: 0,
            seen: 0,
            deferred: 0,
            recheck: false,
            acquiring: None,
            stats,
            members,
            in_op: false,
        })
    }

    /// The group's membership, as the lockspace's recovery callbacks report it.
    pub(crate) fn membership(&self) -> &Membership {
        self.table.space().handler()
    }

    fn name(&self, unit: u64) -> Option<ResourceName> {
        let res = if self.lock_stripes == 1 {
            Resource::Stripe(unit)
        } else {
            let first = unit.checked_mul(self.lock_stripes)?;
            Resource::Range {
                first,
                last: first.checked_add(self.lock_stripes - 1)?,
            }
        };
        ResourceName::new(&self.group, res).ok()
    }

    /// Whether this server lost the cluster (shown as `lost` in the status).
    fn lost(&self) -> bool {
        self.stats.lost.load(Ordering::Relaxed)
    }

    fn lose(&mut self, why: &str) {
        if !self.stats.lost.swap(true, Ordering::Relaxed) {
            pr_err!("cluster: {why}: failing writes until the table is reloaded\n");
            // `lost` in the status.
            self.membership().raise_events();
        }
    }

    /// Sends the DLM call `action` of slot `i` now, or later if locking is stopped.
    fn send(&mut self, i: usize, action: Action) {
        let Some(st) = self.slots.get(i).copied() else {
            return;
        };
        let call = match action {
            Action::None | Action::Proceed | Action::Wait => return,
            a => a,
        };
        if self.membership().recovering() {
            if let Some(s) = self.slots.get_mut(i) {
                if s.deferred.replace(call).is_none() {
                    self.deferred = self.deferred.saturating_add(1);
                }
            }
            return;
        }
        let sent = match (call, st.unit.and_then(|u| self.name(u))) {
            (Action::Request(m) | Action::Convert(m), Some(name)) => {
                if matches!(call, Action::Convert(Mode::Nl | Mode::Pr)) {
                    // Only a blocking callback makes the state machine convert down.
                    bump(&self.stats.blocking);
                }
                self.table.request(i, dlm_mode(m), name.as_bytes())
            }
            (Action::Unlock, _) => self.table.unlock(i),
            _ => Err(EINVAL),
        };
        if let Err(e) = sent {
            pr_err!("cluster: DLM request for lock slot {i} failed: {e:?}\n");
            self.lose("a DLM request failed");
        }
    }

    /// Feeds every callback that arrived to the slots' state machines and answers blocking
    /// callbacks. Returns whether anything happened.
    fn service(&mut self) -> bool {
        let stopped = self.membership().recovering();
        let in_op = self.in_op;
        let members = !stopped && self.members.as_mut().is_some_and(|m| m.service(in_op));
        let now = self.table.callbacks();
        if now == self.seen && !self.recheck && (stopped || self.deferred == 0) {
            // No callback since the last full look, nothing left over from it.
            return members;
        }
        self.seen = now;
        self.recheck = stopped;
        let mut progress = false;
        for i in 0..self.slots.len() {
            if let Some(ev) = self.table.take_event(i) {
                progress = true;
                self.on_event(i, ev);
            }
            if stopped {
                // Leave blocking callbacks and deferred calls for after the recovery.
                continue;
            }
            if let Some(m) = self.table.take_blocking(i) {
                progress = true;
                if let Some(st) = self.slots.get_mut(i) {
                    // Yields now, or when the operation in flight is done (`release`).
                    let a = st.lock.blocking(core_mode(m));
                    self.send(i, a);
                }
            }
            if let Some(a) = self.slots.get_mut(i).and_then(|s| s.deferred.take()) {
                self.deferred = self.deferred.saturating_sub(1);
                progress = true;
                self.send(i, a);
            }
        }
        progress || members
    }

    fn on_event(&mut self, i: usize, ev: LockEvent) {
        let acquiring = self.acquiring == Some(i);
        let Some(st) = self.slots.get_mut(i) else {
            return;
        };
        match ev {
            LockEvent::Granted => {
                let mode = match st.lock.state() {
                    State::Requesting(m) | State::Converting { to: m, .. } => m,
                    _ => {
                        pr_warn!("cluster: unexpected grant for lock slot {i}\n");
                        return;
                    }
                };
                let _ = st.lock.granted(mode);
                if !acquiring {
                    // A down-conversion (or an abandoned request): nobody to admit.
                    let a = st.lock.settle();
                    self.send(i, a);
                }
            }
            LockEvent::Unlocked => {
                if st.deferred.is_some() {
                    self.deferred = self.deferred.saturating_sub(1);
                }
                *st = SlotState::EMPTY;
            }
            LockEvent::Failed(e) => {
                pr_warn!("cluster: lock slot {i}: the DLM refused a request ({e})\n");
                if st.deferred.is_some() {
                    self.deferred = self.deferred.saturating_sub(1);
                }
                *st = SlotState::EMPTY;
                // A failed conversion keeps the old lock: let it go (the slot is reused
                // once the table says it is no longer live).
                if self.table.is_live(i) {
                    if self.table.unlock(i).is_err() {
                        self.lose("cannot unlock a lock after a failed conversion");
                    }
                }
            }
        }
    }

    /// Sleeps until a callback arrives, at most [`POLL_MS`], unless one already did.
    fn wait(&mut self) -> bool {
        self.table.arm();
        if self.service() {
            return true;
        }
        self.table.wait(POLL_MS);
        self.service()
    }

    /// Waits while locking is stopped for a membership change; gives up (and loses the
    /// cluster) after [`RECOVERY_TIMEOUT_MS`].
    fn wait_membership(&mut self) -> Result<(), LockFailure> {
        if !self.membership().recovering() {
            return Ok(());
        }
        let start = Ktime::ktime_get();
        while self.membership().recovering() {
            if kernel::time::ktime_ms_delta(Ktime::ktime_get(), start) > RECOVERY_TIMEOUT_MS {
                self.lose("the cluster membership did not recover in time");
                return Err(LockFailure::Lost);
            }
            self.wait();
        }
        Ok(())
    }

    /// A slot for `unit`: the one holding it, a free one, or none yet (an idle lock is
    /// being unlocked to make room).
    fn slot_for(&mut self, unit: u64) -> Option<usize> {
        if let Some(i) = self.slots.iter().position(|s| s.unit == Some(unit)) {
            return Some(i);
        }
        let table = &self.table;
        let free = self
            .slots
            .iter()
            .enumerate()
            .position(|(i, s)| s.unit.is_none() && !table.is_live(i));
        if let Some(i) = free {
            if let Some(s) = self.slots.get_mut(i) {
                s.unit = Some(unit);
            }
            return Some(i);
        }
        // Evict the least recently used idle lock.
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                matches!(s.lock.state(), State::Held(_))
                    && s.lock.in_flight() == 0
                    && s.deferred.is_none()
            })
            .min_by_key(|(_, s)| s.used)
            .map(|(i, _)| i);
        if let Some(i) = victim {
            if let Some(s) = self.slots.get_mut(i) {
                let a = s.lock.evict();
                self.send(i, a);
            }
        }
        None
    }

    /// Takes the lock of `stripe`'s unit in EX for one operation. Returns the slot to pass
    /// to [`Self::release`] when the operation is done.
    pub(crate) fn acquire(&mut self, stripe: u64) -> Result<usize, LockFailure> {
        let unit = stripe / self.lock_stripes;
        self.clock += 1;
        let mut waited = false;
        let r = self.admit(unit, &mut waited);
        self.acquiring = None;
        if r.is_ok() {
            bump(if waited {
                &self.stats.waits
            } else {
                &self.stats.cached
            });
        }
        r
    }

    fn admit(&mut self, unit: u64, waited: &mut bool) -> Result<usize, LockFailure> {
        loop {
            if self.lost() {
                return Err(LockFailure::Lost);
            }
            self.wait_membership()?;
            self.service();
            // Looked up again every round: the unit's slot may have been evicted meanwhile.
            if let Some(i) = self.slot_for(unit) {
                self.acquiring = Some(i);
                let clock = self.clock;
                let Some(st) = self.slots.get_mut(i) else {
                    return Err(LockFailure::Lost);
                };
                match st.lock.acquire(Mode::Ex) {
                    Ok(Action::Proceed) => {
                        st.used = clock;
                        // Closes the grant's admission window; with this operation in
                        // flight it never yields here.
                        let a = st.lock.settle();
                        self.send(i, a);
                        self.in_op = true;
                        return Ok(i);
                    }
                    Ok(a @ (Action::Request(_) | Action::Convert(_))) => {
                        bump(&self.stats.requests);
                        self.send(i, a);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        self.lose("the lock state machine refused an acquire");
                        return Err(LockFailure::Lost);
                    }
                }
            }
            *waited = true;
            self.wait();
        }
    }

    /// The operation admitted by [`Self::acquire`] in slot `i` finished: the lock stays
    /// cached, unless another AMF asked for it meanwhile.
    pub(crate) fn release(&mut self, i: usize) {
        self.in_op = false;
        let Some(st) = self.slots.get_mut(i) else {
            return;
        };
        match st.lock.op_done() {
            Ok(a) => self.send(i, a),
            Err(_) => pr_warn!("cluster: release of lock slot {i} without an operation\n"),
        }
    }

    /// Answers callbacks that arrived while the worker was idle.
    pub(crate) fn idle(&mut self) {
        while self.service() {}
    }

    /// Whether the group's member states are agreed through the member-state lock.
    pub(crate) fn agrees_members(&self) -> bool {
        self.members.is_some()
    }

    /// Holds the member-state lock in PR for an operation; returns what a new grant says
    /// (`None`: it was held already, or the group has no such lock).
    pub(crate) fn members_shared(&mut self) -> Result<Option<Round>, LockFailure> {
        self.hold_members(LockMode::Pr)
    }

    /// Holds the member-state lock in EX, to write a round.
    pub(crate) fn members_exclusive(&mut self) -> Result<(), LockFailure> {
        self.hold_members(LockMode::Ex).map(|_| ())
    }

    /// Holds the member-state lock in `mode` (waiting for it, answering other callbacks
    /// meanwhile). Returns what a new grant says (`None`: it was held already, or the group
    /// has no such lock).
    fn hold_members(&mut self, mode: LockMode) -> Result<Option<Round>, LockFailure> {
        let mut fresh = false;
        loop {
            if self.lost() {
                return Err(LockFailure::Lost);
            }
            self.wait_membership()?;
            let Some(m) = self.members.as_mut() else {
                return Ok(None);
            };
            match m.ask(mode) {
                Ok(true) => return Ok(fresh.then(|| m.round())),
                Ok(false) => fresh = true,
                Err(_) => {
                    self.lose("a DLM request for the member-state lock failed");
                    return Err(LockFailure::Lost);
                }
            }
            // The grant arrives on the member lock's own table: look at it often, and at
            // the stripe locks' callbacks in between.
            m.table().arm();
            if !self.service() {
                if let Some(m) = self.members.as_ref() {
                    m.table().wait(MEMBER_POLL_MS);
                }
            }
        }
    }

    /// Under the member-state lock in EX: the round `events` is on disk; back down to PR,
    /// publishing it.
    pub(crate) fn publish_members(&mut self, events: u64) -> Result<(), LockFailure> {
        if let Some(m) = self.members.as_mut() {
            m.publish(events);
        }
        self.hold_members(LockMode::Pr).map(|_| ())
    }
}

/// How long one wait for the member-state lock lasts before the stripe locks are looked at.
const MEMBER_POLL_MS: u32 = 10;
