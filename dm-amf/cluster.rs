// SPDX-License-Identifier: GPL-2.0

//! Cluster membership of the groups this server serves: one DLM lockspace per group, named
//! after the group UUID and shared by every `amf` target of that group on this server (the
//! DLM installs the recovery callbacks of a lockspace's first join only, so a second target
//! of the group must reuse the first one's lockspace rather than join again), and what the
//! lockspace's recovery callbacks say about the other servers.

use core::mem::ManuallyDrop;
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering,
};

use kernel::{fmt, new_mutex, prelude::*, str::CString, sync::Arc, sync::Mutex, time::Ktime};

use crate::core_proto::lock::{Resource, ResourceName};
use crate::core_proto::superblock::{Uuid, UuidText};
use crate::kernel_ext::dlm::{
    JoinError, LockEvent, LockMode, LockTable, Lockspace, Recovery, Slot, Wake, LVB_LEN,
};
use crate::kernel_ext::dm_event::EventSender;

/// What the recovery callbacks of a group's lockspace reported.
#[pin_data]
pub(crate) struct Membership {
    /// Locking is stopped: between `recover_prep` and `recover_done`.
    recovering: AtomicBool,
    /// The DLM's recovery generation of the last `recover_done`; 0 before the first.
    generation: AtomicU32,
    /// This server's node id, from the slot table of the last `recover_done`.
    our_node: AtomicI32,
    /// Members after the last `recover_done`.
    members: AtomicU32,
    /// Nodes reported dead (`recover_slot`) so far.
    deaths: AtomicU64,
    /// Node ids (below 64) of the members after the last `recover_done`.
    live: AtomicU64,
    /// Node ids (below 64) reported dead whose operations are not taken over yet: the
    /// replication channel pauses the group's writes until they are (`failover`).
    pending: AtomicU64,
    /// When the last death was reported (ktime ns), for the takeover time.
    death_ns: AtomicI64,
    /// The device-mapper events of the targets that share the lockspace: a membership
    /// change is an event of each (`None`: a target gone; the kernel's vector cannot
    /// remove).
    #[pin]
    listeners: Mutex<KVec<Option<EventSender>>>,
}

impl Membership {
    fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            recovering: AtomicBool::new(true),
            generation: AtomicU32::new(0),
            our_node: AtomicI32::new(0),
            members: AtomicU32::new(0),
            deaths: AtomicU64::new(0),
            live: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            death_ns: AtomicI64::new(0),
            listeners <- new_mutex!(KVec::new(), "amf:membership_listeners"),
        })
    }

    /// Raises `events` at every membership change from now on (constructor; sleeps).
    fn listen(&self, events: EventSender) -> Result<(), ClusterError> {
        let mut l = self.listeners.lock();
        match l.iter_mut().find(|e| e.is_none()) {
            Some(free) => *free = Some(events),
            None => l
                .push(Some(events), GFP_KERNEL)
                .map_err(|_| ClusterError::NoMemory)?,
        }
        Ok(())
    }

    /// No more events to `events` (its target goes; sleeps).
    fn unlisten(&self, events: &EventSender) {
        for e in self.listeners.lock().iter_mut() {
            if e.as_ref().is_some_and(|e| e.same(events)) {
                *e = None;
            }
        }
    }

    /// A device-mapper event on every target of the group on this server (the DLM's
    /// recovery thread, or a target's worker; sleeps).
    pub(crate) fn raise_events(&self) {
        for e in self.listeners.lock().iter().flatten() {
            e.raise();
        }
    }

    /// Node ids (below 64) of the members after the last recovery.
    pub(crate) fn live_nodes(&self) -> u64 {
        self.live.load(Ordering::Acquire)
    }

    /// Dead nodes (below 64) whose operations are not taken over yet.
    pub(crate) fn pending_deaths(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// The takeover of the dead nodes in `mask` is over.
    pub(crate) fn clear_pending(&self, mask: u64) {
        self.pending.fetch_and(!mask, Ordering::AcqRel);
    }

    /// When the last death was reported.
    pub(crate) fn last_death(&self) -> Ktime {
        Ktime::from_raw(self.death_ns.load(Ordering::Relaxed))
    }

    /// Whether locking is stopped for a membership change.
    pub(crate) fn recovering(&self) -> bool {
        self.recovering.load(Ordering::Acquire)
    }

    /// Members of the lockspace after the last recovery.
    pub(crate) fn members(&self) -> u32 {
        self.members.load(Ordering::Relaxed)
    }

    /// Nodes that died (left without leaving the lockspace) since it was joined.
    pub(crate) fn deaths(&self) -> u64 {
        self.deaths.load(Ordering::Relaxed)
    }

    /// This server's node id (0 before the first recovery).
    pub(crate) fn our_node(&self) -> u32 {
        u32::try_from(self.our_node.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

impl Recovery for Membership {
    fn prep(&self) {
        self.recovering.store(true, Ordering::Release);
    }

    fn slot(&self, dead: Slot) {
        self.deaths.fetch_add(1, Ordering::Relaxed);
        self.death_ns
            .store(Ktime::ktime_get().to_ns(), Ordering::Relaxed);
        if let Ok(n @ 0..64) = u32::try_from(dead.node) {
            self.pending
                .fetch_or(1u64.checked_shl(n).unwrap_or(0), Ordering::AcqRel);
        }
        pr_info!(
            "cluster: node {} (slot {}) left the group's lockspace\n",
            dead.node,
            dead.slot
        );
    }

    fn done(&self, members: &[Slot], our_slot: i32, generation: u32) {
        if let Some(us) = members.iter().find(|s| s.slot == our_slot) {
            self.our_node.store(us.node, Ordering::Relaxed);
        }
        self.members.store(members.len() as u32, Ordering::Relaxed);
        let live = members
            .iter()
            .filter_map(|s| u32::try_from(s.node).ok().filter(|n| *n < 64))
            .fold(0u64, |m, n| m | 1u64.checked_shl(n).unwrap_or(0));
        let before = self.live.swap(live, Ordering::AcqRel);
        let first = self.generation.swap(generation.max(1), Ordering::AcqRel) == 0;
        self.recovering.store(false, Ordering::Release);
        if !first && before != live {
            // Servers joined or left (`<members>`, `<deaths>` in the status).
            self.raise_events();
        }
    }
}

/// A group's lockspace.
pub(crate) type GroupSpace = Lockspace<Membership>;

/// Longest wait in the constructor for the first recovery of a joined lockspace.
const FIRST_RECOVERY_MS: u32 = 20_000;

struct Entry {
    uuid: Uuid,
    /// The cluster name it was joined with: a second target must name the same.
    cluster: CString,
    space: Arc<GroupSpace>,
    users: usize,
}

/// The lockspaces in use on this server.
#[pin_data]
pub(crate) struct Registry {
    /// Freed entries are `None` and reused (the kernel's vector cannot remove).
    #[pin]
    entries: Mutex<KVec<Option<Entry>>>,
}

/// The module's registry, set between module init and exit.
static REGISTRY: AtomicPtr<Registry> = AtomicPtr::new(core::ptr::null_mut());

/// Owns the registry for the module's lifetime (a field of the module).
pub(crate) struct RegistryOwner(*mut Registry);

// SAFETY: the registry is a mutex-protected list; the pointer is only freed on drop.
unsafe impl Send for RegistryOwner {}
// SAFETY: as above.
unsafe impl Sync for RegistryOwner {}

impl RegistryOwner {
    /// Sets up the registry (module init, before the target type is registered).
    pub(crate) fn new() -> Result<Self> {
        let reg = KBox::pin_init(
            pin_init!(Registry {
                entries <- new_mutex!(KVec::new(), "amf:cluster_registry"),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: the box is never moved out of: it is turned back into a box in `drop`.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(reg) });
        REGISTRY.store(raw, Ordering::Release);
        Ok(Self(raw))
    }
}

impl Drop for RegistryOwner {
    fn drop(&mut self) {
        // Module exit: the target type is unregistered, so no target uses the registry.
        REGISTRY.store(core::ptr::null_mut(), Ordering::Release);
        // SAFETY: from `KBox::into_raw` in `new`, freed once.
        drop(unsafe { KBox::from_raw(self.0) });
    }
}

fn registry() -> Result<&'static Registry> {
    let p = REGISTRY.load(Ordering::Acquire);
    // SAFETY: set in module init and cleared at module exit, after the target type is
    // unregistered; targets (the only callers) exist only in between.
    unsafe { p.as_ref() }.ok_or(EINVAL)
}

/// Why a target could not join its group's lockspace; each maps to a `ti->error`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ClusterError {
    /// From the DLM.
    Join(JoinError),
    /// The first recovery did not finish in time.
    NoRecovery,
    /// The table's `node` is not the DLM's id of this server.
    WrongNode,
    /// The group's other AMFs use another `lock_stripes`.
    UnitMismatch,
    /// The group's configuration lock could not be taken.
    ConfigLock,
    /// Out of memory.
    NoMemory,
}

impl ClusterError {
    /// The message for `ti->error`, as documented.
    pub(crate) fn message(self) -> &'static core::ffi::CStr {
        match self {
            Self::Join(JoinError::NoDaemon) => c"No cluster: dlm_controld is not running",
            Self::Join(JoinError::WrongCluster) => {
                c"cluster is not the DLM's cluster name (corosync totem.cluster_name)"
            }
            Self::Join(JoinError::NoRecoveryCallbacks) => {
                c"The DLM runs without recovery callbacks (dlm_controld sets them)"
            }
            Self::Join(JoinError::Other(_)) => c"Cannot join the group's DLM lockspace",
            Self::NoRecovery => c"The group's DLM lockspace did not finish recovery",
            Self::WrongNode => c"node is not this server's node id in the DLM",
            Self::UnitMismatch => c"lock_stripes differs from the group's other AMFs",
            Self::ConfigLock => c"Cannot take the group's configuration lock",
            Self::NoMemory => c"Cannot allocate cluster state",
        }
    }
}

/// A target's use of its group's lockspace; dropping it leaves the lockspace when no other
/// target of the group on this server uses it.
pub(crate) struct GroupMembership {
    uuid: Uuid,
    /// Dropped by hand in `drop`, under the registry lock.
    space: ManuallyDrop<Arc<GroupSpace>>,
    /// The target's device-mapper events, raised at membership changes.
    events: EventSender,
}

impl GroupMembership {
    /// Joins the lockspace of group `uuid` in cluster `cluster` (or shares the one another
    /// target of the group joined), and checks that this server is `node` in the DLM.
    ///
    /// Sleeps until dlm_controld has added this server to the lockspace and its first
    /// recovery finished.
    /// Membership changes raise `events` from then on.
    pub(crate) fn join(
        uuid: &Uuid,
        cluster: &str,
        node: u32,
        events: EventSender,
    ) -> Result<Self, ClusterError> {
        let reg = registry().map_err(|_| ClusterError::NoMemory)?;
        let mut entries = reg.entries.lock();
        let space = match entries.iter_mut().flatten().find(|e| e.uuid == *uuid) {
            Some(e) => {
                if e.cluster.as_bytes() != cluster.as_bytes() {
                    return Err(ClusterError::Join(JoinError::WrongCluster));
                }
                e.users += 1;
                e.space.clone()
            }
            None => {
                let name = CString::try_from_fmt(fmt!("amf-{}", UuidText(uuid)))
                    .map_err(|_| ClusterError::NoMemory)?;
                let cluster =
                    CString::try_from_fmt(fmt!("{cluster}")).map_err(|_| ClusterError::NoMemory)?;
                let handler = Arc::pin_init(Membership::new(), GFP_KERNEL)
                    .map_err(|_| ClusterError::NoMemory)?;
                let space =
                    GroupSpace::join(&name, &cluster, handler).map_err(ClusterError::Join)?;
                let space = Arc::new(space, GFP_KERNEL).map_err(|_| ClusterError::NoMemory)?;
                let entry = Entry {
                    uuid: *uuid,
                    cluster,
                    space: space.clone(),
                    users: 1,
                };
                match entries.iter_mut().find(|e| e.is_none()) {
                    Some(free) => *free = Some(entry),
                    None => entries
                        .push(Some(entry), GFP_KERNEL)
                        .map_err(|_| ClusterError::NoMemory)?,
                }
                space
            }
        };
        drop(entries);
        let me = Self {
            uuid: *uuid,
            space: ManuallyDrop::new(space),
            events,
        };
        // Dropping `me` on an error below takes it out again.
        me.membership().listen(me.events.clone())?;
        // The join returns once this server is a member; the recovery that follows (and
        // reports the slot table) may still be running.
        let m = me.membership();
        let mut waited = 0;
        while m.generation.load(Ordering::Acquire) == 0 && waited < FIRST_RECOVERY_MS {
            // Process context (the constructor).
            crate::kernel_ext::delay::msleep(50);
            waited += 50;
        }
        if m.generation.load(Ordering::Acquire) == 0 {
            return Err(ClusterError::NoRecovery);
        }
        if i64::from(m.our_node.load(Ordering::Relaxed)) != i64::from(node) {
            return Err(ClusterError::WrongNode);
        }
        Ok(me)
    }

    /// What the lockspace's recovery callbacks reported.
    pub(crate) fn membership(&self) -> &Membership {
        self.space().handler()
    }

    /// The lockspace.
    pub(crate) fn space(&self) -> &Arc<GroupSpace> {
        &self.space
    }

    /// Agrees on the lock unit with the group's other AMFs. AMFs with different units
    /// would lock different resources for one stripe, so the first AMF of the group records
    /// its `lock_stripes` in the value block of the group's configuration resource and every
    /// later one must use the same. The returned lock (NL) keeps the value alive.
    ///
    /// Sleeps (constructor): waits for other AMFs' brief holds of that resource.
    pub(crate) fn agree_unit(
        &self,
        uuid: &Uuid,
        lock_stripes: u32,
    ) -> Result<UnitLock, ClusterError> {
        let wake = Arc::new(NoWake, GFP_KERNEL).map_err(|_| ClusterError::NoMemory)?;
        let mut t =
            LockTable::new(self.space().clone(), 1, wake).map_err(|_| ClusterError::NoMemory)?;
        let name =
            ResourceName::new(uuid, Resource::Config).map_err(|_| ClusterError::ConfigLock)?;
        t.request_value(0, LockMode::Ex, name.as_bytes())
            .map_err(|_| ClusterError::ConfigLock)?;
        wait_grant(&mut t)?;
        let ours = u64::from(lock_stripes).to_le_bytes();
        let theirs = t.value(0).filter(|v| *v != [0; LVB_LEN]);
        if theirs.is_none() {
            t.set_value(0, ours);
        }
        // Down to NL: stores the value (ours, or theirs unchanged) and lets others check.
        t.request_value(0, LockMode::Nl, name.as_bytes())
            .map_err(|_| ClusterError::ConfigLock)?;
        wait_grant(&mut t)?;
        match theirs {
            Some(v) if v != ours => {
                pr_err!(
                    "cluster: lock_stripes {lock_stripes}, but the group's other AMFs use {}\n",
                    u64::from_le_bytes(v)
                );
                Err(ClusterError::UnitMismatch)
            }
            _ => Ok(UnitLock { _lock: t }),
        }
    }
}

/// Callbacks of a lock the constructor waits for itself: nobody else to wake.
struct NoWake;

impl Wake for NoWake {
    fn wake(_this: &Arc<Self>) {}
}

/// A target's NL lock on its group's configuration resource (see
/// [`GroupMembership::agree_unit`]); dropping it unlocks.
pub(crate) struct UnitLock {
    _lock: LockTable<Membership, NoWake>,
}

/// Waits for slot 0's answer (constructor: no timeout, the holders hold it briefly).
fn wait_grant(t: &mut LockTable<Membership, NoWake>) -> Result<(), ClusterError> {
    match t.settle(0) {
        Some(LockEvent::Granted) => Ok(()),
        _ => Err(ClusterError::ConfigLock),
    }
}

impl Drop for GroupMembership {
    fn drop(&mut self) {
        self.membership().unlisten(&self.events);
        // SAFETY: `space` is taken once, here, and not used afterwards.
        let space = unsafe { ManuallyDrop::take(&mut self.space) };
        let Ok(reg) = registry() else { return };
        let mut entries = reg.entries.lock();
        let Some(slot) = entries
            .iter_mut()
            .find(|e| e.as_ref().is_some_and(|e| e.uuid == self.uuid))
        else {
            return;
        };
        let last = slot.as_mut().is_some_and(|e| {
            e.users -= 1;
            e.users == 0
        });
        if last {
            // The entry's reference and ours are the last: the lockspace is left here,
            // under the registry lock, so that a new target of the group cannot find it
            // half released.
            drop(slot.take());
            drop(space);
        }
    }
}
