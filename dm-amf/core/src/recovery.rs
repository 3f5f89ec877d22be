// SPDX-License-Identifier: GPL-2.0
//! Recovery: finishing a dead AMF's operations from the records the survivors hold.
//!
//! Every live peer acked every record before the owner went on (see `super::op`), so each
//! survivor holds, for each unfinished operation of the dead owner, a record at least as far
//! as the owner's disks went:
//!
//! * **Intent** only: no block was written. The operation was never acked to the host, so it
//!   is rolled back: the record is dropped and the stripe stays as it was (consistent).
//! * **Prepared**: some, all or none of the blocks may be on disk. The records hold the full
//!   new image (new data from Intent, new P/Q from Prepared): rewrite every block of it. The
//!   writes are absolute values, so doing this twice, or after a partial earlier recovery,
//!   gives the same stripe.
//! * **Done**: the disks hold the new stripe; drop the record.
//!
//! Operations of one owner on one stripe are replayed in operation-id order, so a replay
//! never puts an older image over a newer one. One survivor (the lowest live node id) does
//! the rewriting under EX locks, then sends `Complete` (everyone drops the dead owner's
//! records but stays paused), waits for every ack, then sends `Resume`. Nobody starts new
//! I/O in between, so no survivor writes a stripe that still has a record to replay; if the
//! recoverer dies midway, the next one replays again (idempotent).

use super::geometry::{Geometry, MemberSet};
use super::op::{plan_write, Block, ChunkSet, IoList, OpError, WriteRequest};
use super::wire::{OpKind, RecordHeader, RecoveryPhase, Step};

/// What a survivor keeps about one operation of a peer (its data stays in the caller's
/// buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldRecord {
    /// Record fields at the highest step received.
    pub header: RecordHeader,
}

/// Outcome of merging an incoming record into what a survivor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Store (or advance to) the incoming step; keep earlier blocks.
    Store,
    /// Duplicate or older than what is held: ack, change nothing.
    Ignore,
    /// From an owner already declared dead: refuse.
    Refuse,
}

/// How to merge a record of `incoming` step when `held` is already stored for the same
/// (owner, op id); `owner_dead` means the owner was declared dead.
pub fn merge(held: Option<Step>, incoming: Step, owner_dead: bool) -> Merge {
    if owner_dead {
        return Merge::Refuse;
    }
    match held {
        Some(h) if h >= incoming => Merge::Ignore,
        _ => Merge::Store,
    }
}

/// Why a record could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// Every slot is taken: the owner must be throttled (ack later).
    Full,
}

/// A survivor's fixed-capacity table of its peers' unfinished operations (headers only: the
/// blocks live in the caller's buffers, keyed by the same owner and operation id).
#[derive(Clone, Copy, Debug)]
pub struct RecordTable<const N: usize> {
    slots: [Option<HeldRecord>; N],
}

impl<const N: usize> Default for RecordTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RecordTable<N> {
    /// An empty table.
    pub const fn new() -> Self {
        RecordTable { slots: [None; N] }
    }

    fn find(&self, owner: u32, op_id: u64) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.is_some_and(|r| r.header.owner == owner && r.header.op_id == op_id))
    }

    /// The record held for (owner, op id).
    pub fn get(&self, owner: u32, op_id: u64) -> Option<&HeldRecord> {
        self.find(owner, op_id)
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.as_ref())
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take in a received record (see [`merge`]): a newer step replaces the held one, and a
    /// Done record retires the operation (its slot is freed: with stop-and-wait replication
    /// no older record of it can still arrive). Returns what was done; the caller acks
    /// unless it is [`Merge::Refuse`], and keeps the blocks when it is [`Merge::Store`].
    pub fn receive(&mut self, header: RecordHeader, owner_dead: bool) -> Result<Merge, TableError> {
        let at = self.find(header.owner, header.op_id);
        let held = at
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.map(|r| r.header.step));
        let m = merge(held, header.step, owner_dead);
        if m != Merge::Store {
            return Ok(m);
        }
        let slot = match at {
            Some(i) => i,
            None if header.step == Step::Done => return Ok(m),
            None => self
                .slots
                .iter()
                .position(|s| s.is_none())
                .ok_or(TableError::Full)?,
        };
        if let Some(s) = self.slots.get_mut(slot) {
            *s = if header.step == Step::Done {
                None
            } else {
                Some(HeldRecord { header })
            };
        }
        Ok(m)
    }

    /// Copy the records of the owners in `dead` (bit i = node i) into `out`, in replay
    /// order; returns how many (at most `out.len()`).
    pub fn collect(&self, dead: u64, out: &mut [HeldRecord]) -> usize {
        let mut n = 0;
        for r in self.slots.iter().flatten() {
            if r.header.owner < 64 && dead & (1u64 << r.header.owner) != 0 {
                if let Some(o) = out.get_mut(n) {
                    *o = *r;
                    n += 1;
                }
            }
        }
        if let Some(done) = out.get_mut(..n) {
            order(done);
        }
        n
    }

    /// Drop every record of the owners in `dead` (on `Complete`); returns how many.
    pub fn drop_owners(&mut self, dead: u64) -> usize {
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if s.is_some_and(|r| r.header.owner < 64 && dead & (1u64 << r.header.owner) != 0) {
                *s = None;
                n += 1;
            }
        }
        n
    }
}

/// What recovery does with one held record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing was written and the host was not acked: drop the record.
    RollBack,
    /// Rewrite every block of the new image (absolute, idempotent).
    Rewrite,
    /// Already on disk: drop the record.
    Forget,
}

/// The recovery action for a record at `step`.
pub fn action(step: Step) -> Action {
    match step {
        Step::Intent => Action::RollBack,
        Step::Prepared => Action::Rewrite,
        Step::Done => Action::Forget,
    }
}

/// Put records in replay order: by stripe, then owner, then operation id.
pub fn order(records: &mut [HeldRecord]) {
    records.sort_unstable_by_key(|r| (r.header.stripe, r.header.owner, r.header.op_id));
}

/// The survivor that runs recovery: the lowest live node id.
pub fn recoverer(live: u64) -> Option<u32> {
    if live == 0 {
        None
    } else {
        Some(live.trailing_zeros())
    }
}

/// Whether a `Recovery` message about `dead` in `phase` may come from node `from`, as node
/// `me` sees the membership (`live` members, `pending` deaths not taken over yet; masks
/// of node ids). `Complete` and `Resume` arrive on the sender's own connection
/// (`echo == false`) and only the recoverer sends them: the lowest live node other than
/// `dead` and the deaths pending here. The death need not be pending here yet (this node's
/// DLM recovery may report it after the recoverer's message arrives) or still (it may have
/// been cleared): requiring it dropped every genuine `Complete` in such a window, and the
/// recoverer waited for ever. A `Complete` echo arrives on our connection to the peer and
/// is due only while we are the recoverer of a pending death. Anything else would let an
/// AMF drop a live peer's records or end a takeover it does not run.
pub fn may_coordinate(
    from: u32,
    dead: u32,
    phase: RecoveryPhase,
    echo: bool,
    me: u32,
    live: u64,
    pending: u64,
) -> bool {
    let Some(dead_bit) = 1u64.checked_shl(dead).filter(|_| dead < 64) else {
        return false;
    };
    if dead == from || dead == me {
        return false;
    }
    let recoverer = recoverer(live & !pending & !dead_bit);
    if echo {
        phase == RecoveryPhase::Complete && pending & dead_bit != 0 && recoverer == Some(me)
    } else {
        recoverer == Some(from)
    }
}

/// The member writes that rewrite the image of a Prepared record, skipping `failed`
/// members. The I/Os say which block (new data of chunk k, P, Q) each carries.
pub fn rewrite_ios(
    g: &Geometry,
    header: &RecordHeader,
    failed: MemberSet,
) -> Result<IoList, OpError> {
    let req = WriteRequest {
        stripe: header.stripe,
        offset: header.offset as u64,
        sectors: header.sectors as u64,
        chunks: ChunkSet(header.chunks),
    };
    // Planned as if no member had failed, then the failed members' writes dropped: the image
    // is absolute (the record holds every new block), so a rewrite reads nothing, and
    // planning with `failed` could pick a reconstruct-write whose (unneeded) reads hit a
    // member that failed after the operation was planned, and refuse the rewrite.
    let plan = plan_write(g, &req, MemberSet::EMPTY)?;
    if (plan.kind == OpKind::Mirror) != (header.kind == OpKind::Mirror) {
        return Err(OpError::WrongStep);
    }
    let mut ios = IoList::new();
    for io in plan.writes.as_slice() {
        if !failed.contains(io.member) {
            ios.push(*io);
        }
    }
    if ios.as_slice().is_empty() {
        return Err(OpError::TooManyFailures);
    }
    Ok(ios)
}

/// Whether an I/O of a rewrite carries parity.
pub fn is_parity(block: Block) -> bool {
    matches!(block, Block::P | Block::Q)
}

/// Phase of the recoverer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Rewriting the dead owners' Prepared operations.
    Rewriting,
    /// `Complete` sent: waiting for these nodes' acks.
    Completing {
        /// Live nodes yet to ack.
        waiting: u64,
    },
    /// `Resume` sent: recovery is over.
    Resumed,
}

/// The recoverer's progress through one recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coordinator {
    /// Dead nodes being recovered (bit i = node i).
    pub dead: u64,
    /// Membership generation of this recovery.
    pub epoch: u64,
    phase: Phase,
}

impl Coordinator {
    /// Start recovering `dead` at membership generation `epoch`.
    pub fn new(dead: u64, epoch: u64) -> Coordinator {
        Coordinator {
            dead,
            epoch,
            phase: Phase::Rewriting,
        }
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// All rewrites are on disk; `others` are the other live nodes to tell. Returns true if
    /// nobody needs telling (go straight to resume).
    pub fn rewrites_done(&mut self, others: u64) -> bool {
        self.phase = if others == 0 {
            Phase::Resumed
        } else {
            Phase::Completing { waiting: others }
        };
        others == 0
    }

    /// `node` acked `Complete` (or died). Returns true when `Resume` should be sent.
    pub fn completed_by(&mut self, node: u32) -> bool {
        if let Phase::Completing { waiting } = self.phase {
            let waiting = if node < 64 {
                waiting & !(1u64 << node)
            } else {
                waiting
            };
            if waiting == 0 {
                self.phase = Phase::Resumed;
                return true;
            }
            self.phase = Phase::Completing { waiting };
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::geometry::Level;
    use super::super::parity::{gen_pq, update_pq};
    use super::*;

    #[test]
    fn merge_keeps_highest_step_and_refuses_the_dead() {
        assert_eq!(merge(None, Step::Intent, false), Merge::Store);
        assert_eq!(
            merge(Some(Step::Intent), Step::Prepared, false),
            Merge::Store
        );
        assert_eq!(
            merge(Some(Step::Prepared), Step::Intent, false),
            Merge::Ignore
        );
        assert_eq!(merge(Some(Step::Done), Step::Done, false), Merge::Ignore);
        assert_eq!(merge(None, Step::Intent, true), Merge::Refuse);
    }

    fn hdr(owner: u32, op_id: u64, stripe: u64, step: Step) -> RecordHeader {
        RecordHeader {
            op_id,
            generation: 1,
            stripe,
            owner,
            step,
            kind: OpKind::ReconstructWrite,
            offset: 0,
            sectors: 1,
            chunks: 1,
        }
    }

    #[test]
    fn record_table_stores_advances_retires_and_orders() {
        let mut t = RecordTable::<3>::new();
        assert_eq!(
            t.receive(hdr(1, 5, 9, Step::Intent), false),
            Ok(Merge::Store)
        );
        assert_eq!(
            t.receive(hdr(1, 5, 9, Step::Prepared), false),
            Ok(Merge::Store)
        );
        assert_eq!(
            t.receive(hdr(1, 5, 9, Step::Intent), false),
            Ok(Merge::Ignore)
        );
        assert_eq!(t.get(1, 5).map(|r| r.header.step), Some(Step::Prepared));
        assert_eq!(
            t.receive(hdr(2, 1, 3, Step::Intent), false),
            Ok(Merge::Store)
        );
        assert_eq!(
            t.receive(hdr(1, 4, 3, Step::Prepared), false),
            Ok(Merge::Store)
        );
        assert_eq!(
            t.receive(hdr(3, 1, 3, Step::Intent), false),
            Err(TableError::Full)
        );
        assert_eq!(
            t.receive(hdr(3, 1, 3, Step::Intent), true),
            Ok(Merge::Refuse)
        );
        let mut out = [HeldRecord {
            header: hdr(0, 0, 0, Step::Done),
        }; 4];
        assert_eq!(t.collect(0b10, &mut out), 2);
        assert_eq!((out[0].header.stripe, out[1].header.stripe), (3, 9));
        assert_eq!(t.receive(hdr(1, 5, 9, Step::Done), false), Ok(Merge::Store));
        assert!(t.get(1, 5).is_none());
        assert_eq!(t.drop_owners(0b110), 2);
        assert!(t.is_empty());
    }

    #[test]
    fn only_the_recoverer_coordinates() {
        use RecoveryPhase::{Complete, Resume};
        // Nodes 1, 2, 3 live, 2 dead: node 1 is the recoverer; we are node 3.
        let (live, pending) = (0b1110, 0b0100);
        for phase in [Complete, Resume] {
            assert!(may_coordinate(1, 2, phase, false, 3, live, pending));
            // Not seen as pending here (yet, or any more): still the recoverer's to send.
            assert!(may_coordinate(1, 2, phase, false, 3, live, 0));
            assert!(may_coordinate(1, 2, phase, false, 3, 0b1010, 0));
            // Not the recoverer, about ourselves, the dead node itself, a node id past 63.
            assert!(!may_coordinate(3, 2, phase, false, 3, live, pending));
            assert!(!may_coordinate(1, 3, phase, false, 3, live, pending));
            assert!(!may_coordinate(2, 2, phase, false, 3, live, pending));
            assert!(!may_coordinate(1, 64, phase, false, 3, live, u64::MAX));
        }
        // Echoes: only Complete, only to the recoverer.
        assert!(may_coordinate(3, 2, Complete, true, 1, live, pending));
        assert!(!may_coordinate(3, 2, Resume, true, 1, live, pending));
        assert!(!may_coordinate(1, 2, Complete, true, 3, live, pending));
        assert!(!may_coordinate(3, 2, Complete, true, 1, live, 0));
        // Node 1 dead too: node 3 recovers both.
        assert!(may_coordinate(3, 1, Resume, false, 2, 0b1110, 0b0110));
        assert!(!may_coordinate(1, 2, Resume, false, 3, 0b1110, 0b0110));
    }

    #[test]
    fn actions_and_recoverer() {
        assert_eq!(action(Step::Intent), Action::RollBack);
        assert_eq!(action(Step::Prepared), Action::Rewrite);
        assert_eq!(action(Step::Done), Action::Forget);
        assert_eq!(recoverer(0b1010), Some(1));
        assert_eq!(recoverer(0), None);
    }

    #[test]
    fn coordinator_waits_for_every_complete_ack() {
        let mut c = Coordinator::new(0b1, 3);
        assert!(!c.rewrites_done(0b110));
        assert!(!c.completed_by(1));
        assert!(c.completed_by(2));
        assert_eq!(c.phase(), Phase::Resumed);
        let mut c = Coordinator::new(0b1, 3);
        assert!(c.rewrites_done(0));
    }

    /// A member failing after the operation was planned (found by the simulator): the
    /// rewrite still writes the image to the live members instead of refusing because a
    /// reconstruct-write plan would read the failed member.
    #[test]
    fn rewrite_skips_a_member_that_failed_since() {
        let g = Geometry::new(Level::Raid6, 5, 1, 4).unwrap();
        let layout = g.layout(0).unwrap();
        let h = RecordHeader {
            op_id: 1,
            generation: 1,
            stripe: 0,
            owner: 0,
            step: Step::Prepared,
            kind: OpKind::ReconstructWrite,
            offset: 0,
            sectors: 1,
            chunks: 0b001,
        };
        let untouched = layout.data_member(2).unwrap();
        let failed = MemberSet::EMPTY.with(untouched).with(layout.p.unwrap());
        let ios = rewrite_ios(&g, &h, failed).unwrap();
        let members: std::vec::Vec<usize> = ios.as_slice().iter().map(|io| io.member).collect();
        assert_eq!(members, [layout.data_member(0).unwrap(), layout.q.unwrap()]);
    }

    /// A RAID6 stripe torn at every subset of its writes recovers to the new image, and a
    /// second recovery changes nothing.
    #[test]
    fn rewrite_is_idempotent_over_every_torn_state() {
        let g = Geometry::new(Level::Raid6, 5, 1, 4).unwrap();
        let h = RecordHeader {
            op_id: 1,
            generation: 1,
            stripe: 2,
            owner: 0,
            step: Step::Prepared,
            kind: OpKind::ReadModifyWrite,
            offset: 0,
            sectors: 1,
            chunks: 0b010,
        };
        let layout = g.layout(2).unwrap();
        let old = [[10u8], [20], [30]];
        let (mut p, mut q) = ([0u8], [0u8]);
        gen_pq(&[&old[0], &old[1], &old[2]], &mut p, &mut q).unwrap();
        let mut disk_old = [0u8; 5];
        for (k, m) in layout.data_members().iter().enumerate() {
            disk_old[*m as usize] = old[k][0];
        }
        disk_old[layout.p.unwrap()] = p[0];
        disk_old[layout.q.unwrap()] = q[0];
        let new_d = [99u8];
        let (mut np, mut nq) = (p, q);
        update_pq(1, &old[1], &new_d, &mut np, Some(&mut nq)).unwrap();
        let ios = rewrite_ios(&g, &h, MemberSet::EMPTY).unwrap();
        assert_eq!(ios.as_slice().len(), 3);
        let value = |b: Block| match b {
            Block::Data(_) => new_d[0],
            Block::P => np[0],
            Block::Q => nq[0],
        };
        let mut expect = disk_old;
        for io in ios.as_slice() {
            expect[io.member] = value(io.what);
        }
        for torn in 0u32..8 {
            let mut disk = disk_old;
            for (i, io) in ios.as_slice().iter().enumerate() {
                if torn & (1 << i) != 0 {
                    disk[io.member] = value(io.what);
                }
            }
            for _ in 0..2 {
                for io in ios.as_slice() {
                    disk[io.member] = value(io.what);
                }
                assert_eq!(disk, expect, "torn {torn:b}");
            }
        }
        let d: std::vec::Vec<[u8; 1]> = layout
            .data_members()
            .iter()
            .map(|m| [expect[*m as usize]])
            .collect();
        let (mut cp, mut cq) = ([0u8], [0u8]);
        gen_pq(&[&d[0], &d[1], &d[2]], &mut cp, &mut cq).unwrap();
        assert_eq!(
            (cp[0], cq[0]),
            (expect[layout.p.unwrap()], expect[layout.q.unwrap()])
        );
    }
}
