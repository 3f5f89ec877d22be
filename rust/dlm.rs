// SPDX-License-Identifier: GPL-2.0

//! The kernel DLM (`include/linux/dlm.h`): lockspaces with recovery callbacks, and tables
//! of locks whose completion and blocking callbacks are turned into events a worker polls.
//!
//! The DLM calls back from its own threads (`dlm_recoverd` for recovery, the lockspace's
//! callback workqueue for ASTs and BASTs; we never pass `DLM_LSFL_SOFTIRQ`), sometimes while
//! the requester is still inside `dlm_lock`. The callbacks here therefore only store the
//! event in atomics and wake the owner: they never sleep and never take a lock a requester
//! could hold around a DLM call.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use kernel::{bindings, error::to_result, prelude::*, sync::Arc, types::Opaque};

use super::bindings as b;

/// A DLM lock mode (`DLM_LOCK_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Null: keeps the lock handle, grants nothing.
    Nl,
    /// Concurrent read.
    Cr,
    /// Protected read.
    Pr,
    /// Protected write.
    Pw,
    /// Exclusive.
    Ex,
}

impl LockMode {
    fn raw(self) -> i32 {
        (match self {
            Self::Nl => b::DLM_LOCK_NL,
            Self::Cr => b::DLM_LOCK_CR,
            Self::Pr => b::DLM_LOCK_PR,
            Self::Pw => b::DLM_LOCK_PW,
            Self::Ex => b::DLM_LOCK_EX,
        }) as i32
    }

    /// The mode of a raw `DLM_LOCK_*` value; CW (unused by dm-amf) and unknown values are
    /// reported as the strongest mode, so that a holder always yields to them.
    fn from_raw(raw: i32) -> Self {
        match raw {
            r if r == b::DLM_LOCK_NL as i32 => Self::Nl,
            r if r == b::DLM_LOCK_CR as i32 => Self::Cr,
            r if r == b::DLM_LOCK_PR as i32 => Self::Pr,
            r if r == b::DLM_LOCK_PW as i32 => Self::Pw,
            _ => Self::Ex,
        }
    }
}

/// A node's slot in a lockspace (`struct dlm_slot`): node ids come from corosync, slots
/// (1-based) are assigned by the DLM and stay with a node while it is a member.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    /// corosync node id.
    pub(crate) node: i32,
    /// Slot number, 1 to the number of members.
    pub(crate) slot: i32,
}

/// Bytes of a lock value block (the lockspace's `lvblen`, the same on every node).
pub(crate) const LVB_LEN: usize = 8;

/// Receives a lockspace's recovery events, in `dlm_recoverd`'s process context.
pub(crate) trait Recovery: Send + Sync {
    /// Locking stopped: the membership is changing (a node joined, left or died).
    fn prep(&self);
    /// `dead` left the lockspace; its locks are being purged.
    fn slot(&self, dead: Slot);
    /// Recovery finished: locking runs again with these members.
    fn done(&self, members: &[Slot], our_slot: i32, generation: u32);
}

/// Why a lockspace could not be joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JoinError {
    /// No cluster manager daemon (dlm_controld) runs on this node (-EUNATCH).
    NoDaemon,
    /// The cluster name differs from the one the DLM was configured with (-EBADR).
    WrongCluster,
    /// The DLM runs without recovery callbacks (configfs `cluster/recover_callbacks` is 0),
    /// so dead nodes would never be reported.
    NoRecoveryCallbacks,
    /// Another error from `dlm_new_lockspace`.
    Other(i32),
}

/// A joined lockspace. Dropping it leaves the lockspace (`dlm_release_lockspace`).
pub(crate) struct Lockspace<R: Recovery> {
    raw: NonNull<c_void>,
    /// The `ops_arg` of the callbacks: kept alive as long as the lockspace.
    handler: Arc<R>,
}

// SAFETY: a lockspace handle may be used from any thread; the handler is `Send + Sync`.
unsafe impl<R: Recovery> Send for Lockspace<R> {}
// SAFETY: as above: every DLM entry point takes its own locks.
unsafe impl<R: Recovery> Sync for Lockspace<R> {}

struct Ops<R>(core::marker::PhantomData<R>);

impl<R: Recovery> Ops<R> {
    const TABLE: b::dlm_lockspace_ops = b::dlm_lockspace_ops {
        recover_prep: Some(recover_prep::<R>),
        recover_slot: Some(recover_slot::<R>),
        recover_done: Some(recover_done::<R>),
    };
}

/// # Safety
///
/// Called by the DLM with the `ops_arg` given to `dlm_new_lockspace`: an `Arc<R>` that the
/// [`Lockspace`] keeps alive until the lockspace is released.
unsafe extern "C" fn recover_prep<R: Recovery>(arg: *mut c_void) {
    // SAFETY: see the function's contract.
    let r = unsafe { &*arg.cast::<R>() };
    r.prep();
}

/// # Safety
///
/// As [`recover_prep`]; `slot` points to a valid `dlm_slot` for the call.
unsafe extern "C" fn recover_slot<R: Recovery>(arg: *mut c_void, slot: *mut b::dlm_slot) {
    // SAFETY: see the function's contract.
    let (r, s) = unsafe { (&*arg.cast::<R>(), &*slot) };
    r.slot(Slot {
        node: s.nodeid,
        slot: s.slot,
    });
}

/// Members passed to [`Recovery::done`] at most (the rest are not reported).
const MAX_SLOTS: usize = 64;

/// # Safety
///
/// As [`recover_prep`]; `slots` points to `num` valid `dlm_slot`s for the call.
unsafe extern "C" fn recover_done<R: Recovery>(
    arg: *mut c_void,
    slots: *mut b::dlm_slot,
    num: i32,
    our_slot: i32,
    generation: u32,
) {
    // SAFETY: see the function's contract.
    let r = unsafe { &*arg.cast::<R>() };
    let mut copy = [Slot { node: 0, slot: 0 }; MAX_SLOTS];
    let n = usize::try_from(num).unwrap_or(0).min(MAX_SLOTS);
    for (i, c) in copy.iter_mut().enumerate().take(n) {
        // SAFETY: `i < num`: inside the array the DLM passed.
        let s = unsafe { &*slots.add(i) };
        *c = Slot {
            node: s.nodeid,
            slot: s.slot,
        };
    }
    r.done(&copy[..n], our_slot, generation);
}

impl<R: Recovery> Lockspace<R> {
    /// Joins (creates on first use in the cluster) lockspace `name` of cluster `cluster`
    /// with recovery callbacks into `handler`.
    ///
    /// Sleeps until dlm_controld has added this node to the lockspace. That wait cannot be
    /// interrupted: join only when the cluster is quorate. Every join gets its own handle,
    /// but the DLM installs the callbacks of the first join of a name only: join each name
    /// once per module and share the [`Lockspace`].
    pub(crate) fn join(name: &CStr, cluster: &CStr, handler: Arc<R>) -> Result<Self, JoinError> {
        let mut raw: *mut c_void = ptr::null_mut();
        let mut ops_result: i32 = 0;
        // SAFETY: `name` and `cluster` are NUL-terminated; the ops table is a `'static`
        // promoted constant; `ops_arg` points into `handler`, which the returned lockspace
        // keeps alive until `dlm_release_lockspace`; `ops_result` and `raw` are valid for
        // writes during the call.
        let rc = unsafe {
            b::dlm_new_lockspace(
                name.as_char_ptr(),
                cluster.as_char_ptr(),
                b::DLM_LSFL_NEWEXCL,
                LVB_LEN as i32,
                &Ops::<R>::TABLE,
                ptr::from_ref::<R>(&handler).cast_mut().cast(),
                &mut ops_result,
                &mut raw,
            )
        };
        if rc != 0 {
            return Err(match -rc {
                e if e == bindings::EUNATCH as i32 => JoinError::NoDaemon,
                e if e == bindings::EBADR as i32 => JoinError::WrongCluster,
                _ => JoinError::Other(rc),
            });
        }
        let raw = NonNull::new(raw).ok_or(JoinError::Other(-(bindings::EINVAL as i32)))?;
        let ls = Self { raw, handler };
        if ops_result != 0 {
            // Dropping `ls` leaves the lockspace again.
            return Err(JoinError::NoRecoveryCallbacks);
        }
        Ok(ls)
    }

    /// The recovery handler.
    pub(crate) fn handler(&self) -> &Arc<R> {
        &self.handler
    }
}

impl<R: Recovery> Drop for Lockspace<R> {
    fn drop(&mut self) {
        // SAFETY: `raw` is a lockspace we joined and leave once; force 2 releases it even if
        // a lock table leaked locks after a failed unlock (the DLM then frees them).
        let rc = unsafe { b::dlm_release_lockspace(self.raw.as_ptr(), 2) };
        if rc != 0 {
            pr_warn!("dlm_release_lockspace failed: {rc}\n");
        }
    }
}

/// Whom a [`LockTable`] wakes when a callback arrives (a worker that is idle must react to a
/// blocking callback).
pub(crate) trait Wake: Send + Sync {
    /// Called from the DLM's callback context: must not sleep.
    fn wake(this: &Arc<Self>);
}

/// An event one lock reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockEvent {
    /// A request or conversion was granted.
    Granted,
    /// An unlock finished: the slot is free.
    Unlocked,
    /// A request or conversion failed (its errno); a failed conversion keeps the old mode.
    Failed(i32),
}

/// One lock's status block and pending events. The DLM writes `lksb` and calls back with a
/// pointer to this slot for as long as the lock exists, so slots never move (they live in
/// the table's boxed state).
struct LockSlot {
    lksb: Opaque<b::dlm_lksb>,
    ast: AtomicBool,
    /// Mode a blocked requester wants, or -1.
    bast: AtomicI32,
    /// The table the slot belongs to (set once at creation).
    shared: *const Shared,
    /// Owner-only bookkeeping, never touched by callbacks: whether the DLM holds a lock for
    /// this slot, and whether a request, conversion or unlock awaits its AST.
    live: UnsafeCell<bool>,
    pending: UnsafeCell<bool>,
    /// The lock value block `lksb.sb_lvbptr` points to (used with [`LockTable::request_value`]).
    lvb: UnsafeCell<[u8; LVB_LEN]>,
}

/// What every callback of a table signals: a completion the owner sleeps on, and the wake
/// hook for an owner that is not sleeping.
struct Events {
    done: Opaque<bindings::completion>,
    wake: unsafe fn(*const c_void),
    /// From `Arc::into_raw`: the table owns that reference.
    wake_arg: *const c_void,
}

/// The part of a table that callbacks see; boxed so that it never moves.
struct Shared {
    events: Events,
    /// Callbacks running now: the table is freed only when none is.
    active: AtomicU32,
    /// Callbacks so far, counted after their event is stored: an owner that saw the count
    /// unchanged need not look at the slots.
    callbacks: AtomicU64,
    /// Large tables come from vmalloc when kmalloc cannot serve them.
    slots: KVVec<LockSlot>,
}

/// Calls `W::wake` on the `Arc<W>` whose raw pointer is `arg`.
///
/// # Safety
///
/// `arg` comes from `Arc::into_raw` of an `Arc<W>` whose reference is still held.
unsafe fn wake_arc<W: Wake>(arg: *const c_void) {
    // SAFETY: the caller guarantees a live reference; `ManuallyDrop` leaves the count alone.
    let arc = core::mem::ManuallyDrop::new(unsafe { Arc::from_raw(arg.cast::<W>()) });
    W::wake(&arc);
}

/// A fixed number of lock slots in one lockspace, owned by one requester.
///
/// Dropping the table unlocks every lock it holds and waits for the DLM to confirm.
pub(crate) struct LockTable<R: Recovery, W: Wake> {
    space: Arc<Lockspace<R>>,
    shared: core::mem::ManuallyDrop<KBox<Shared>>,
    _wake: core::marker::PhantomData<Arc<W>>,
}

// SAFETY: the raw pointers point into the table's own boxed state or at the `Arc<W>` it owns;
// every field shared with callbacks is atomic or written before the first DLM request.
unsafe impl<R: Recovery, W: Wake> Send for LockTable<R, W> {}
// SAFETY: `&self` methods only read atomics and the completion.
unsafe impl<R: Recovery, W: Wake> Sync for LockTable<R, W> {}

/// # Safety
///
/// Called by the DLM with the `astarg` of a request: a [`LockSlot`] of a live table.
unsafe extern "C" fn lock_ast(arg: *mut c_void) {
    // SAFETY: see the function's contract.
    let slot = unsafe { &*arg.cast::<LockSlot>() };
    // SAFETY: `shared` is the table the slot belongs to, alive while it has locks, and
    // after its last lock until `active` drops to zero.
    let sh = unsafe { &*slot.shared };
    sh.report(|| slot.ast.store(true, Ordering::Release));
}

/// # Safety
///
/// As [`lock_ast`].
unsafe extern "C" fn lock_bast(arg: *mut c_void, mode: i32) {
    // SAFETY: see the function's contract.
    let slot = unsafe { &*arg.cast::<LockSlot>() };
    // SAFETY: as in `lock_ast`.
    let sh = unsafe { &*slot.shared };
    sh.report(|| slot.bast.store(mode, Ordering::Release));
}

impl Shared {
    /// One callback: `record` stores its event, then it is counted and the owner woken.
    /// Marked active throughout: the owner frees the table only once no callback is.
    fn report(&self, record: impl FnOnce()) {
        self.active.fetch_add(1, Ordering::Acquire);
        record();
        self.callbacks.fetch_add(1, Ordering::Release);
        self.signal();
        // The last access to the table.
        self.active.fetch_sub(1, Ordering::Release);
    }

    /// Wakes the owner: sleeping in [`LockTable::wait`], or not.
    fn signal(&self) {
        // SAFETY: `done` is initialised; `wake_arg` holds the table's `Arc<W>` reference.
        unsafe {
            bindings::complete(self.events.done.get());
            (self.events.wake)(self.events.wake_arg);
        }
    }
}

impl<R: Recovery, W: Wake> LockTable<R, W> {
    /// A table of `n` slots in `space`; callbacks wake `wake`.
    pub(crate) fn new(space: Arc<Lockspace<R>>, n: usize, wake: Arc<W>) -> Result<Self> {
        let mut shared = KBox::new(
            Shared {
                events: Events {
                    done: Opaque::uninit(),
                    wake: wake_arc::<W>,
                    wake_arg: ptr::null(),
                },
                active: AtomicU32::new(0),
                callbacks: AtomicU64::new(0),
                slots: KVVec::with_capacity(n, GFP_KERNEL)?,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `done` lives in the box, which never moves; initialised before any use.
        unsafe { b::amf_init_completion(shared.events.done.get()) };
        let me: *const Shared = &*shared;
        for _ in 0..n {
            // Within the capacity reserved above: never reallocates, so slots stay put.
            shared.slots.push(
                LockSlot {
                    lksb: Opaque::new(b::dlm_lksb::default()),
                    ast: AtomicBool::new(false),
                    bast: AtomicI32::new(-1),
                    shared: me,
                    live: UnsafeCell::new(false),
                    pending: UnsafeCell::new(false),
                    lvb: UnsafeCell::new([0; LVB_LEN]),
                },
                GFP_KERNEL,
            )?;
        }
        shared.events.wake_arg = Arc::into_raw(wake).cast();
        Ok(Self {
            space,
            shared: core::mem::ManuallyDrop::new(shared),
            _wake: core::marker::PhantomData,
        })
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.shared.slots.len()
    }

    /// The lockspace.
    pub(crate) fn space(&self) -> &Arc<Lockspace<R>> {
        &self.space
    }

    /// How many callbacks arrived so far. Every event of a callback counted here is visible
    /// to [`Self::take_event`] and [`Self::take_blocking`].
    pub(crate) fn callbacks(&self) -> u64 {
        self.shared.callbacks.load(Ordering::Acquire)
    }

    fn slot(&self, i: usize) -> Result<&LockSlot> {
        self.shared.slots.get(i).ok_or(EINVAL)
    }

    /// Whether slot `i` holds a lock (granted, or requested and not yet answered).
    pub(crate) fn is_live(&self, i: usize) -> bool {
        // SAFETY: owner-only field.
        self.shared
            .slots
            .get(i)
            .is_some_and(|s| unsafe { *s.live.get() })
    }

    fn is_pending(&self, i: usize) -> bool {
        // SAFETY: owner-only field.
        self.shared
            .slots
            .get(i)
            .is_some_and(|s| unsafe { *s.pending.get() })
    }

    /// Asks for a new lock on `name` in `mode` in slot `i` (free), or converts slot `i`'s
    /// lock (live) to `mode`. An up-conversion passes `DLM_LKF_CONVDEADLK` (the DLM may
    /// demote the granted mode to break a conversion deadlock). The answer is a later
    /// [`LockEvent`] of slot `i`.
    ///
    /// Sleeps while the lockspace recovers: call it only when no recovery is under way.
    pub(crate) fn request(&mut self, i: usize, mode: LockMode, name: &[u8]) -> Result {
        self.send_request(i, mode, name, 0)
    }

    /// As [`Self::request`], with the resource's lock value block: a grant copies it into
    /// the slot ([`Self::value`]); a conversion down from PW or EX stores the slot's value
    /// ([`Self::set_value`]) into it.
    pub(crate) fn request_value(&mut self, i: usize, mode: LockMode, name: &[u8]) -> Result {
        self.send_request(i, mode, name, b::DLM_LKF_VALBLK)
    }

    /// The value block of slot `i` after a grant of [`Self::request_value`]; `None` when the
    /// DLM says it is not valid (its last writer died holding PW or EX).
    pub(crate) fn value(&self, i: usize) -> Option<[u8; LVB_LEN]> {
        let s = self.shared.slots.get(i)?;
        // SAFETY: owner-only reads after the AST; the DLM writes both before it.
        unsafe {
            let flags = (*s.lksb.get()).sb_flags;
            (flags & b::DLM_SBF_VALNOTVALID as kernel::ffi::c_char == 0).then(|| *s.lvb.get())
        }
    }

    /// Sets slot `i`'s value block, stored by the next down-conversion with
    /// [`Self::request_value`].
    pub(crate) fn set_value(&mut self, i: usize, value: [u8; LVB_LEN]) {
        if let Some(s) = self.shared.slots.get(i) {
            if !self.is_pending(i) {
                // SAFETY: no request outstanding: the DLM does not access the block now.
                unsafe { *s.lvb.get() = value };
            }
        }
    }

    fn send_request(&mut self, i: usize, mode: LockMode, name: &[u8], extra: u32) -> Result {
        if self.is_pending(i) {
            return Err(EBUSY);
        }
        let live = self.is_live(i);
        let slot = self.slot(i)?;
        let mut flags = extra;
        if live {
            flags |= b::DLM_LKF_CONVERT | b::DLM_LKF_CONVDEADLK;
        }
        let namelen = u32::try_from(name.len()).map_err(|_| EINVAL)?;
        if namelen == 0 || namelen > b::DLM_RESNAME_MAXLEN {
            return Err(EINVAL);
        }
        slot.ast.store(false, Ordering::Relaxed);
        if !live {
            // SAFETY: no request is outstanding: the DLM does not touch the block now.
            unsafe {
                *slot.lksb.get() = b::dlm_lksb {
                    sb_lvbptr: slot.lvb.get().cast(),
                    ..Default::default()
                };
            }
        }
        // SAFETY: the lockspace is joined; `lksb` and the slot stay at their address until
        // the lock is gone (the table unlocks everything before it is freed); `name` is read
        // during the call only; the callbacks take the slot as their argument.
        let rc = unsafe {
            b::dlm_lock(
                self.space.raw.as_ptr(),
                mode.raw(),
                slot.lksb.get(),
                flags,
                name.as_ptr().cast(),
                namelen,
                0,
                Some(lock_ast),
                ptr::from_ref(slot).cast_mut().cast(),
                Some(lock_bast),
            )
        };
        to_result(rc)?;
        // SAFETY: owner-only fields.
        unsafe {
            *slot.live.get() = true;
            *slot.pending.get() = true;
        }
        Ok(())
    }

    /// Releases slot `i`'s lock; [`LockEvent::Unlocked`] follows.
    pub(crate) fn unlock(&mut self, i: usize) -> Result {
        if !self.is_live(i) || self.is_pending(i) {
            return Err(EINVAL);
        }
        let slot = self.slot(i)?;
        slot.ast.store(false, Ordering::Relaxed);
        // SAFETY: the DLM filled `sb_lkid` when it accepted the request.
        let lkid = unsafe { (*slot.lksb.get()).sb_lkid };
        // SAFETY: as in `request`; the AST of the unlock is the lock's last callback.
        let rc = unsafe {
            b::dlm_unlock(
                self.space.raw.as_ptr(),
                lkid,
                0,
                slot.lksb.get(),
                ptr::from_ref(slot).cast_mut().cast(),
            )
        };
        to_result(rc)?;
        // SAFETY: owner-only field.
        unsafe { *slot.pending.get() = true };
        Ok(())
    }

    /// The completion event of slot `i`, if one arrived since the last call.
    pub(crate) fn take_event(&mut self, i: usize) -> Option<LockEvent> {
        let slot = self.shared.slots.get(i)?;
        if !slot.ast.swap(false, Ordering::Acquire) {
            return None;
        }
        // SAFETY: the DLM wrote the block before the AST that set the flag we just read;
        // `live` and `pending` are owner-only.
        unsafe {
            *slot.pending.get() = false;
            let sb = &*slot.lksb.get();
            Some(if sb.sb_status == 0 {
                LockEvent::Granted
            } else if sb.sb_status == -(b::DLM_EUNLOCK as i32) {
                *slot.live.get() = false;
                slot.bast.store(-1, Ordering::Relaxed);
                LockEvent::Unlocked
            } else {
                // A failed new request leaves no lock (no lock id); a failed conversion
                // keeps the old one.
                if sb.sb_lkid == 0 {
                    *slot.live.get() = false;
                }
                LockEvent::Failed(sb.sb_status)
            })
        }
    }

    /// The mode another requester is blocked on by slot `i`'s lock, if a blocking callback
    /// arrived since the last call.
    pub(crate) fn take_blocking(&mut self, i: usize) -> Option<LockMode> {
        let m = self.shared.slots.get(i)?.bast.swap(-1, Ordering::Acquire);
        (m >= 0).then(|| LockMode::from_raw(m))
    }

    /// Arms the wait: events that arrive after this call end the next [`Self::wait`].
    /// Check for events after arming and before waiting.
    pub(crate) fn arm(&self) {
        // SAFETY: `done` is initialised; only the owner waits on it.
        unsafe { b::amf_reinit_completion(self.shared.events.done.get()) };
    }

    /// Sleeps until a callback arrives or `ms` milliseconds passed.
    pub(crate) fn wait(&self, ms: u32) {
        let j = kernel::time::msecs_to_jiffies(ms);
        // SAFETY: `done` is initialised; process context.
        unsafe { bindings::wait_for_completion_timeout(self.shared.events.done.get(), j) };
    }

    /// Waits for slot `i`'s outstanding AST, if any, and returns it.
    pub(crate) fn settle(&mut self, i: usize) -> Option<LockEvent> {
        while self.is_pending(i) {
            self.arm();
            if let Some(e) = self.take_event(i) {
                return Some(e);
            }
            self.wait(100);
        }
        None
    }
}

impl<R: Recovery, W: Wake> Drop for LockTable<R, W> {
    fn drop(&mut self) {
        for i in 0..self.len() {
            // A request waiting for its grant cannot be unlocked: wait for its answer first.
            self.settle(i);
            if self.is_live(i) && self.unlock(i).is_ok() {
                self.settle(i);
            }
        }
        if (0..self.len()).any(|i| self.is_live(i) || self.is_pending(i)) {
            // The DLM may still call back into the slots: never free them (releasing the
            // lockspace purges the locks).
            pr_warn!("dlm: locks left after unlock; leaking their lock table\n");
            return;
        }
        while self.shared.active.load(Ordering::Acquire) != 0 {
            // The final AST is returning.
            super::delay::msleep(1);
        }
        let wake = self.shared.events.wake_arg;
        // SAFETY: no lock is left, so no callback can run any more; the box is dropped once.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.shared) };
        // SAFETY: the reference `new` took with `Arc::into_raw`, given back once.
        drop(unsafe { Arc::<W>::from_raw(wake.cast()) });
    }
}
