// SPDX-License-Identifier: GPL-2.0
//! The write operation as an explicit state machine.
//!
//! An operation writes sectors `offset..offset + sectors` of a set of data chunks of one
//! stripe, under an EX lock on that stripe. Its named steps:
//!
//! 1. **Intent** — replicate the new data to every live peer, and at the same time read
//!    what the parity computation needs (old data and parity for read-modify-write, the
//!    untouched data chunks for reconstruct-write, nothing for a full-stripe write).
//! 2. **Compute** — new P (and Q) once the reads are in and every live peer acked Intent.
//! 3. **Prepared** — replicate the new parity. Nothing has been written to disk before every
//!    live peer acked this record. The host is acked here (when at least one peer holds
//!    the record; an AMF alone acks after its disk writes).
//! 4. **Write** — write new data and parity to the members.
//! 5. **Done** — replicate that the disks hold the new stripe; once every live peer acked,
//!    the operation retires and the lock may be yielded.
//!
//! Why no acknowledged write is lost: the host ack follows a Prepared record acked by every
//! live peer, and that record (with the Intent record before it) holds the complete new
//! image of every block the operation writes. If the owner dies at any later point, every
//! survivor holds that image and recovery rewrites it (absolute values: idempotent). If the
//! owner dies before that point, some survivors may hold Prepared and some only Intent, but
//! no disk block was written yet (writes wait for every live peer's ack), so the old stripe
//! is intact and consistent, and the operation, never acked to the host, may be dropped.

use super::geometry::{BoundedList, Geometry, GeometryError, Level, MemberSet, MAX_MEMBERS};
use super::wire::{OpKind, RecordHeader, RecordView, Role, Step};

/// Set of data chunk indexes of a stripe (bit i = data chunk i).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkSet(pub u64);

impl ChunkSet {
    /// Whether chunk `i` is in the set.
    pub fn contains(self, i: usize) -> bool {
        i < 64 && (self.0 >> i) & 1 == 1
    }

    /// Number of chunks.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One write operation's extent: the same sector range in each written data chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteRequest {
    /// Stripe written.
    pub stripe: u64,
    /// First sector written within each chunk.
    pub offset: u64,
    /// Sectors written in each chunk.
    pub sectors: u64,
    /// Data chunks written.
    pub chunks: ChunkSet,
}

/// Why an operation could not be planned or an event was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpError {
    /// Geometry refused the stripe.
    Geometry(GeometryError),
    /// No sectors or no chunks.
    Empty,
    /// The range leaves the chunk.
    OutsideChunk,
    /// A chunk index beyond the stripe's data chunks.
    BadChunk,
    /// The failed members leave no way to compute the parity.
    TooManyFailures,
    /// An event that does not belong to the current step.
    WrongStep,
    /// A received record whose blocks do not match its header (missing, extra, duplicate
    /// or wrongly sized blocks, or a kind that does not fit the level).
    BadRecord,
}

impl From<GeometryError> for OpError {
    fn from(e: GeometryError) -> Self {
        OpError::Geometry(e)
    }
}

/// One member I/O of a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Io {
    /// Member device.
    pub member: usize,
    /// First sector on the member.
    pub sector: u64,
    /// Sector count.
    pub sectors: u64,
    /// What the I/O carries: data chunk `index`, or P / Q.
    pub what: Block,
}

/// Which block of the stripe an I/O carries. `repr(u8)` with `Data` first, so that all
/// zero bytes are `Data(0)`: the kernel allocates its plans zeroed, in place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Block {
    /// Data chunk `n` of the stripe.
    Data(u8),
    /// P parity.
    #[default]
    P,
    /// Q syndrome.
    Q,
}

/// A bounded list of member I/Os.
pub type IoList = BoundedList<Io, MAX_MEMBERS>;

impl IoList {
    /// Members touched.
    pub fn members(&self) -> MemberSet {
        self.as_slice()
            .iter()
            .fold(MemberSet::EMPTY, |s, io| s.with(io.member))
    }
}

/// What an operation reads and writes.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Kind chosen.
    pub kind: OpKind,
    /// Pre-reads (step Intent).
    pub reads: IoList,
    /// Writes (step Write).
    pub writes: IoList,
    /// Whether P / Q are computed and written.
    pub p: bool,
    /// Whether Q is computed and written.
    pub q: bool,
}

impl Plan {
    /// A plan with nothing to do (what [`plan_write_into`] starts from).
    pub fn empty() -> Plan {
        Plan {
            kind: OpKind::Mirror,
            reads: IoList::new(),
            writes: IoList::new(),
            p: false,
            q: false,
        }
    }

    /// Empties the plan in place.
    fn clear(&mut self) {
        self.kind = OpKind::Mirror;
        self.reads.clear();
        self.writes.clear();
        self.p = false;
        self.q = false;
    }
}

/// Cut the first operation off a host write of `sectors` sectors at logical `sector`.
/// Returns the request and how many logical sectors it covers; call again with the rest.
///
/// Whole chunks of one stripe go into one request (a full-stripe write when all of them are
/// covered); a range that starts or ends inside a chunk gets a request of its own.
pub fn split_write(
    g: &Geometry,
    sector: u64,
    sectors: u64,
) -> Result<(WriteRequest, u64), OpError> {
    if sectors == 0 {
        return Err(OpError::Empty);
    }
    let loc = g.map(sector)?;
    let cs = g.chunk_sectors();
    let bit = |k: usize| 1u64.checked_shl(k as u32).unwrap_or(0);
    if loc.offset == 0 && sectors >= cs {
        let left_in_stripe = g.data_chunks().saturating_sub(loc.chunk) as u64;
        let whole = (sectors / cs).min(left_in_stripe);
        let mut mask = 0u64;
        for k in loc.chunk..loc.chunk + whole as usize {
            mask |= bit(k);
        }
        let req = WriteRequest {
            stripe: loc.stripe,
            offset: 0,
            sectors: cs,
            chunks: ChunkSet(mask),
        };
        return Ok((req, whole * cs));
    }
    let n = sectors.min(cs - loc.offset);
    let req = WriteRequest {
        stripe: loc.stripe,
        offset: loc.offset,
        sectors: n,
        chunks: ChunkSet(bit(loc.chunk)),
    };
    Ok((req, n))
}

/// Read counts of the two ways to update parity, like md's `handle_stripe_dirtying`: a
/// read from a failed member costs `2 * members` so that the other way wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Costs {
    /// Reads for read-modify-write (old data of written chunks, old P and Q).
    pub rmw: usize,
    /// Reads for reconstruct-write (untouched data chunks).
    pub rcw: usize,
}

fn check(g: &Geometry, req: &WriteRequest) -> Result<(), OpError> {
    if req.sectors == 0 || req.chunks.is_empty() {
        return Err(OpError::Empty);
    }
    let end = req
        .offset
        .checked_add(req.sectors)
        .ok_or(OpError::OutsideChunk)?;
    if end > g.chunk_sectors() {
        return Err(OpError::OutsideChunk);
    }
    let dc = g.data_chunks();
    if dc < 64 && req.chunks.0 >> dc != 0 {
        return Err(OpError::BadChunk);
    }
    if req.stripe >= g.stripes() {
        return Err(OpError::Geometry(GeometryError::StripeOutOfRange));
    }
    Ok(())
}

/// The costs of both parity-update methods for `req` with `failed` members.
pub fn costs(g: &Geometry, req: &WriteRequest, failed: MemberSet) -> Result<Costs, OpError> {
    check(g, req)?;
    let layout = g.layout(req.stripe)?;
    let penalty = 2 * g.members();
    let cost = |m: usize| if failed.contains(m) { penalty } else { 1 };
    let mut c = Costs { rmw: 0, rcw: 0 };
    for (k, m) in layout.data_members().iter().enumerate() {
        if req.chunks.contains(k) {
            c.rmw += cost(*m as usize);
        } else {
            c.rcw += cost(*m as usize);
        }
    }
    for m in [layout.p, layout.q].into_iter().flatten() {
        if !failed.contains(m) {
            c.rmw += 1;
        }
    }
    Ok(c)
}

/// Plan the operation for `req`: choose its kind and list its reads and writes.
///
/// Parity levels: a full-stripe write when every data chunk is written; otherwise
/// read-modify-write if it needs strictly fewer reads than reconstruct-write (md's default
/// `rmw_level`, ties go to reconstruct-write), else reconstruct-write. Failed members are
/// neither read nor written. Other levels: write every copy.
pub fn plan_write(g: &Geometry, req: &WriteRequest, failed: MemberSet) -> Result<Plan, OpError> {
    let mut plan = Plan::empty();
    plan_write_into(&mut plan, g, req, failed, true)?;
    Ok(plan)
}

/// [`plan_write`] into a caller's `plan` (a plan is a few KiB: the kernel keeps one on the
/// heap instead of on its small stack), with read-modify-write allowed or not (md turns it
/// off for RAID6 when the CPU's raid6 routines cannot update the syndrome in place).
#[inline(never)]
pub fn plan_write_into(
    plan: &mut Plan,
    g: &Geometry,
    req: &WriteRequest,
    failed: MemberSet,
    rmw_allowed: bool,
) -> Result<(), OpError> {
    check(g, req)?;
    plan.clear();
    if g.parity_chunks() == 0 {
        let cs = g.chunk_sectors();
        match g.level() {
            Level::Raid0 => {
                let layout = g.layout(req.stripe)?;
                for (k, m) in layout.data_members().iter().enumerate() {
                    if req.chunks.contains(k) && !failed.contains(*m as usize) {
                        plan.writes.push(Io {
                            member: *m as usize,
                            sector: layout.member_sector + req.offset,
                            sectors: req.sectors,
                            what: Block::Data(k as u8),
                        });
                    }
                }
            }
            _ => {
                let first = req.stripe * cs + req.offset;
                for place in g.copy_iter(first)? {
                    if !failed.contains(place.member) {
                        plan.writes.push(Io {
                            member: place.member,
                            sector: place.sector,
                            sectors: req.sectors,
                            what: Block::Data(0),
                        });
                    }
                }
            }
        }
        if plan.writes.as_slice().is_empty() {
            return Err(OpError::TooManyFailures);
        }
        return Ok(());
    }
    let layout = g.layout(req.stripe)?;
    let sector = layout.member_sector + req.offset;
    let io = |member: usize, what: Block| Io {
        member,
        sector,
        sectors: req.sectors,
        what,
    };
    let c = costs(g, req, failed)?;
    let live_p = layout.p.filter(|m| !failed.contains(*m));
    let live_q = layout.q.filter(|m| !failed.contains(*m));
    plan.p = live_p.is_some();
    plan.q = live_q.is_some();
    plan.kind = if c.rcw == 0 {
        OpKind::FullStripe
    } else if rmw_allowed && c.rmw < c.rcw && c.rmw > 0 {
        OpKind::ReadModifyWrite
    } else {
        OpKind::ReconstructWrite
    };
    let parity_needed = plan.p || plan.q;
    for (k, m) in layout.data_members().iter().enumerate() {
        let m = *m as usize;
        let written = req.chunks.contains(k);
        let read = match plan.kind {
            OpKind::ReadModifyWrite => written,
            OpKind::ReconstructWrite => !written,
            _ => false,
        };
        if read && parity_needed {
            if failed.contains(m) {
                return Err(OpError::TooManyFailures);
            }
            plan.reads.push(io(m, Block::Data(k as u8)));
        }
        if written && !failed.contains(m) {
            plan.writes.push(io(m, Block::Data(k as u8)));
        }
    }
    if plan.kind == OpKind::ReadModifyWrite {
        if let Some(p) = live_p {
            plan.reads.push(io(p, Block::P));
        }
        if let Some(q) = live_q {
            plan.reads.push(io(q, Block::Q));
        }
    }
    if let Some(p) = live_p {
        plan.writes.push(io(p, Block::P));
    }
    if let Some(q) = live_q {
        plan.writes.push(io(q, Block::Q));
    }
    Ok(())
}

/// Check a received record against the group before storing it: the extent must fit the
/// geometry, and the blocks must be exactly what the step carries (Intent: new data of each
/// written chunk; Prepared: at most one new P and one new Q, only where the level has them;
/// Done: nothing), each `sectors * sector_bytes` long.
pub fn validate_record(
    g: &Geometry,
    rec: &RecordView<'_>,
    sector_bytes: usize,
) -> Result<(), OpError> {
    let h = rec.header;
    let req = WriteRequest {
        stripe: h.stripe,
        offset: h.offset as u64,
        sectors: h.sectors as u64,
        chunks: ChunkSet(h.chunks),
    };
    check(g, &req)?;
    if (h.kind == OpKind::Mirror) != (g.parity_chunks() == 0) {
        return Err(OpError::BadRecord);
    }
    let want_len = (h.sectors as usize)
        .checked_mul(sector_bytes)
        .ok_or(OpError::BadRecord)?;
    let mut seen_data = 0u64;
    let (mut p, mut q) = (false, false);
    for b in rec.blocks() {
        if b.bytes.len() != want_len {
            return Err(OpError::BadRecord);
        }
        match (h.step, b.role) {
            (Step::Intent, Role::NewData) => {
                let bit = 1u64.checked_shl(b.index as u32).unwrap_or(0);
                if bit == 0 || h.chunks & bit == 0 || seen_data & bit != 0 {
                    return Err(OpError::BadRecord);
                }
                seen_data |= bit;
            }
            (Step::Prepared, Role::NewP) if !p && g.parity_chunks() >= 1 => p = true,
            (Step::Prepared, Role::NewQ) if !q && g.parity_chunks() == 2 => q = true,
            _ => return Err(OpError::BadRecord),
        }
    }
    if h.step == Step::Intent && seen_data != h.chunks {
        return Err(OpError::BadRecord);
    }
    Ok(())
}

/// The step an operation is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Intent record out, pre-reads out: waiting for both.
    Intent,
    /// Caller computes the parity.
    Compute,
    /// Prepared record out: waiting for acks.
    Prepared,
    /// Disk writes out.
    Write,
    /// Done record out: waiting for acks.
    Done,
    /// Finished: the caller drops its buffers and releases its lock reference.
    Retired,
}

/// What the caller must do next (several at once at some steps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Send the record of this step to every live peer.
    pub replicate: Option<Step>,
    /// Issue the plan's reads.
    pub read: bool,
    /// Compute P/Q, then call [`WriteOp::computed`].
    pub compute: bool,
    /// Complete the host write.
    pub ack_host: bool,
    /// Issue the plan's writes.
    pub write: bool,
    /// The operation is finished.
    pub retire: bool,
}

/// One write operation's progress on its owner.
#[derive(Clone, Copy, Debug)]
pub struct WriteOp {
    /// Operation id (unique per owner).
    pub id: u64,
    /// Membership generation at start.
    pub generation: u64,
    /// Owner node id.
    pub owner: u32,
    /// Extent.
    pub req: WriteRequest,
    /// Kind.
    pub kind: OpKind,
    phase: Phase,
    waiting: u64,
    reads_pending: bool,
    prepared_acked_by_peer: bool,
    host_acked: bool,
}

impl WriteOp {
    /// A new operation; `peers` is the set of live peer node ids (bit i = node i).
    /// Returns the first effects: replicate Intent and issue the reads.
    pub fn start(
        id: u64,
        generation: u64,
        owner: u32,
        req: WriteRequest,
        plan: &Plan,
        peers: u64,
    ) -> (WriteOp, Effects) {
        let reads = !plan.reads.as_slice().is_empty();
        let mut op = WriteOp {
            id,
            generation,
            owner,
            req,
            kind: plan.kind,
            phase: Phase::Intent,
            waiting: peers,
            reads_pending: reads,
            prepared_acked_by_peer: false,
            host_acked: false,
        };
        let mut fx = Effects {
            replicate: Some(Step::Intent),
            read: reads,
            ..Effects::default()
        };
        op.advance(&mut fx);
        (op, fx)
    }

    /// Current step.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the host has been acked.
    pub fn host_acked(&self) -> bool {
        self.host_acked
    }

    /// Peers whose ack for the current record is still awaited.
    pub fn waiting_for(&self) -> u64 {
        self.waiting
    }

    /// The record header for `step` of this operation.
    pub fn record(&self, step: Step) -> RecordHeader {
        RecordHeader {
            op_id: self.id,
            generation: self.generation,
            stripe: self.req.stripe,
            owner: self.owner,
            step,
            kind: self.kind,
            offset: u32::try_from(self.req.offset).unwrap_or(u32::MAX),
            sectors: u32::try_from(self.req.sectors).unwrap_or(u32::MAX),
            chunks: self.req.chunks.0,
        }
    }

    /// Peer `node` acked the record of `step`.
    pub fn ack(&mut self, node: u32, step: Step) -> Result<Effects, OpError> {
        let want = match self.phase {
            Phase::Intent => Step::Intent,
            Phase::Prepared => Step::Prepared,
            Phase::Done => Step::Done,
            _ => return Err(OpError::WrongStep),
        };
        if step != want || node >= 64 {
            return Err(OpError::WrongStep);
        }
        if self.waiting & (1 << node) != 0 && step == Step::Prepared {
            self.prepared_acked_by_peer = true;
        }
        self.waiting &= !(1u64 << node);
        let mut fx = Effects::default();
        self.advance(&mut fx);
        Ok(fx)
    }

    /// Peer `node` was declared dead: stop waiting for it.
    pub fn peer_lost(&mut self, node: u32) -> Effects {
        if node < 64 {
            self.waiting &= !(1u64 << node);
        }
        let mut fx = Effects::default();
        self.advance(&mut fx);
        fx
    }

    /// The pre-reads completed.
    pub fn reads_done(&mut self) -> Result<Effects, OpError> {
        if self.phase != Phase::Intent || !self.reads_pending {
            return Err(OpError::WrongStep);
        }
        self.reads_pending = false;
        let mut fx = Effects::default();
        self.advance(&mut fx);
        Ok(fx)
    }

    /// The parity is computed; `peers` is the current live peer set.
    pub fn computed(&mut self, peers: u64) -> Result<Effects, OpError> {
        if self.phase != Phase::Compute {
            return Err(OpError::WrongStep);
        }
        self.phase = Phase::Prepared;
        self.waiting = peers;
        let mut fx = Effects {
            replicate: Some(Step::Prepared),
            ..Effects::default()
        };
        self.advance(&mut fx);
        Ok(fx)
    }

    /// Every disk write completed; `peers` is the current live peer set.
    pub fn writes_done(&mut self, peers: u64) -> Result<Effects, OpError> {
        if self.phase != Phase::Write {
            return Err(OpError::WrongStep);
        }
        let mut fx = Effects::default();
        if !self.host_acked {
            // Alone (no peer holds the image): ack only now that the disks have it.
            self.host_acked = true;
            fx.ack_host = true;
        }
        self.phase = Phase::Done;
        self.waiting = peers;
        fx.replicate = Some(Step::Done);
        self.advance(&mut fx);
        Ok(fx)
    }

    fn advance(&mut self, fx: &mut Effects) {
        match self.phase {
            Phase::Intent if self.waiting == 0 && !self.reads_pending => {
                self.phase = Phase::Compute;
                fx.compute = true;
            }
            Phase::Prepared if self.waiting == 0 => {
                self.phase = Phase::Write;
                fx.write = true;
                if self.prepared_acked_by_peer {
                    self.host_acked = true;
                    fx.ack_host = true;
                }
            }
            Phase::Done if self.waiting == 0 => {
                self.phase = Phase::Retired;
                fx.retire = true;
            }
            _ => {}
        }
    }
}

/// Which role a planned block has in a record (new data or new parity).
pub fn new_role(block: Block) -> (Role, u8) {
    match block {
        Block::Data(k) => (Role::NewData, k),
        Block::P => (Role::NewP, 0),
        Block::Q => (Role::NewQ, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g5() -> Geometry {
        Geometry::new(Level::Raid5, 5, 8, 64).unwrap()
    }

    fn req(chunks: u64) -> WriteRequest {
        WriteRequest {
            stripe: 1,
            offset: 2,
            sectors: 4,
            chunks: ChunkSet(chunks),
        }
    }

    #[test]
    fn kind_follows_md_costs() {
        let g = g5();
        // 4 data chunks. One written: rmw 2 reads < rcw 3.
        let p = plan_write(&g, &req(0b0001), MemberSet::EMPTY).unwrap();
        assert_eq!(p.kind, OpKind::ReadModifyWrite);
        assert_eq!(p.reads.as_slice().len(), 2);
        assert_eq!(p.writes.as_slice().len(), 2);
        // Two written: rmw 3 > rcw 2.
        let p = plan_write(&g, &req(0b0011), MemberSet::EMPTY).unwrap();
        assert_eq!(p.kind, OpKind::ReconstructWrite);
        assert_eq!(p.reads.as_slice().len(), 2);
        // All written: no reads.
        let p = plan_write(&g, &req(0b1111), MemberSet::EMPTY).unwrap();
        assert_eq!(p.kind, OpKind::FullStripe);
        assert!(p.reads.as_slice().is_empty());
        assert_eq!(p.writes.as_slice().len(), 5);
        // RAID6, 6 members (4 data): one written: rmw 3 == rcw 3 -> rcw (md's default).
        let g6 = Geometry::new(Level::Raid6, 6, 8, 64).unwrap();
        let p = plan_write(&g6, &req(0b0001), MemberSet::EMPTY).unwrap();
        assert_eq!(p.kind, OpKind::ReconstructWrite);
    }

    #[test]
    fn degraded_plans_avoid_failed_members() {
        let g = g5();
        let layout = g.layout(1).unwrap();
        let m0 = layout.data_member(0).unwrap();
        // Written chunk's member failed: rmw impossible, rcw reads the others.
        let p = plan_write(&g, &req(0b0001), MemberSet::single(m0)).unwrap();
        assert_eq!(p.kind, OpKind::ReconstructWrite);
        assert!(!p.writes.members().contains(m0));
        // An untouched member failed under a 2-chunk write: rmw wins.
        let m3 = layout.data_member(3).unwrap();
        let p = plan_write(&g, &req(0b0011), MemberSet::single(m3)).unwrap();
        assert_eq!(p.kind, OpKind::ReadModifyWrite);
        assert!(!p.reads.members().contains(m3));
    }

    #[test]
    fn bad_requests_are_refused() {
        let g = g5();
        let mut r = req(1);
        r.sectors = 0;
        assert_eq!(
            plan_write(&g, &r, MemberSet::EMPTY).unwrap_err(),
            OpError::Empty
        );
        r.sectors = 7;
        assert_eq!(
            plan_write(&g, &r, MemberSet::EMPTY).unwrap_err(),
            OpError::OutsideChunk
        );
        assert_eq!(
            plan_write(&g, &req(0b10000), MemberSet::EMPTY).unwrap_err(),
            OpError::BadChunk
        );
        r = req(1);
        r.offset = u64::MAX;
        assert_eq!(
            plan_write(&g, &r, MemberSet::EMPTY).unwrap_err(),
            OpError::OutsideChunk
        );
    }

    #[test]
    fn step_sequence_and_ack_point() {
        let g = g5();
        let plan = plan_write(&g, &req(1), MemberSet::EMPTY).unwrap();
        let (mut op, fx) = WriteOp::start(1, 1, 0, req(1), &plan, 0b110);
        assert_eq!((fx.replicate, fx.read), (Some(Step::Intent), true));
        assert_eq!(op.ack(1, Step::Intent).unwrap(), Effects::default());
        assert_eq!(op.reads_done().unwrap(), Effects::default());
        assert_eq!(op.ack(2, Step::Prepared), Err(OpError::WrongStep));
        assert!(op.ack(2, Step::Intent).unwrap().compute);
        let fx = op.computed(0b110).unwrap();
        assert_eq!(fx.replicate, Some(Step::Prepared));
        assert!(!fx.write && !fx.ack_host);
        op.ack(1, Step::Prepared).unwrap();
        // Peer 2 dies: it no longer holds anyone back; peer 1 holds the image.
        let fx = op.peer_lost(2);
        assert!(fx.write && fx.ack_host);
        let fx = op.writes_done(0b010).unwrap();
        assert!(!fx.ack_host);
        assert_eq!(fx.replicate, Some(Step::Done));
        assert!(op.ack(1, Step::Done).unwrap().retire);
        assert_eq!(op.phase(), Phase::Retired);
    }

    #[test]
    fn alone_acks_only_after_disk_writes() {
        let g = g5();
        let plan = plan_write(&g, &req(0b1111), MemberSet::EMPTY).unwrap();
        let (mut op, fx) = WriteOp::start(1, 1, 0, req(0b1111), &plan, 0);
        assert!(fx.compute && !fx.read);
        let fx = op.computed(0).unwrap();
        assert!(fx.write && !fx.ack_host);
        let fx = op.writes_done(0).unwrap();
        assert!(fx.ack_host && fx.retire);
    }

    #[test]
    fn split_write_covers_the_range_exactly() {
        for g in [
            g5(),
            Geometry::new(Level::Raid6, 6, 4, 64).unwrap(),
            Geometry::new(Level::Raid1, 2, 4, 64).unwrap(),
            Geometry::new(Level::Raid10 { copies: 2 }, 3, 4, 64).unwrap(),
        ] {
            for start in 0..g.logical_sectors() {
                for len in 1..=(g.logical_sectors() - start).min(40) {
                    let (mut at, mut left) = (start, len);
                    while left > 0 {
                        let (r, n) = split_write(&g, at, left).unwrap();
                        assert!(n > 0 && n <= left);
                        // The request's sectors are exactly at..at + n, in order.
                        let dc = g.data_chunks() as u64;
                        let mut covered = std::vec::Vec::new();
                        for k in 0..dc {
                            if r.chunks.contains(k as usize) {
                                let base = (r.stripe * dc + k) * g.chunk_sectors();
                                covered.extend((r.offset..r.offset + r.sectors).map(|o| base + o));
                            }
                        }
                        let want: std::vec::Vec<u64> = (at..at + n).collect();
                        assert_eq!(covered, want);
                        plan_write(&g, &r, MemberSet::EMPTY).unwrap();
                        at += n;
                        left -= n;
                    }
                }
            }
        }
        let (r, n) = split_write(&g5(), 8 * 4, 100).unwrap();
        assert_eq!((r.chunks, n), (ChunkSet(0b1111), 32));
        assert_eq!(split_write(&g5(), 0, 0), Err(OpError::Empty));
        assert!(split_write(&g5(), u64::MAX, 1).is_err());
    }

    #[test]
    fn records_are_validated_against_the_geometry() {
        use super::super::wire::{decode, encode, Block as B, Body, Crc32c, Message};
        struct Crc;
        impl Crc32c for Crc {
            fn append(crc: u32, data: &[u8]) -> u32 {
                crc ^ data.len() as u32 // Not a CRC: this test only needs a consistent one.
            }
        }
        let g = g5();
        let plan = plan_write(&g, &req(0b0101), MemberSet::EMPTY).unwrap();
        let (op, _) = WriteOp::start(1, 1, 0, req(0b0101), &plan, 0);
        static D: [u8; 4 * 512] = [7; 4 * 512];
        let d: &'static [u8] = &D;
        let check_blocks = |step: Step, blocks: &[B<'_>]| {
            let mut buf = std::vec![0u8; 16384];
            let n = encode::<Crc>(
                &Message::Record(op.record(step), blocks),
                0,
                1,
                None,
                &mut buf,
            )
            .unwrap();
            let (f, _) = decode::<Crc>(&buf[..n]).unwrap();
            match f.body {
                Body::Record(r) => validate_record(&g, &r, 512),
                _ => panic!("not a record"),
            }
        };
        let nd = |index: u8, bytes: &'static [u8]| B {
            role: Role::NewData,
            index,
            bytes,
        };
        assert_eq!(check_blocks(Step::Intent, &[nd(0, d), nd(2, d)]), Ok(()));
        assert_eq!(
            check_blocks(Step::Intent, &[nd(0, d)]),
            Err(OpError::BadRecord)
        );
        assert_eq!(
            check_blocks(Step::Intent, &[nd(0, d), nd(2, d), nd(2, d)]),
            Err(OpError::BadRecord)
        );
        assert_eq!(
            check_blocks(Step::Intent, &[nd(0, d), nd(1, d)]),
            Err(OpError::BadRecord)
        );
        assert_eq!(
            check_blocks(Step::Intent, &[nd(0, d), nd(2, &d[1..])]),
            Err(OpError::BadRecord)
        );
        let p = B {
            role: Role::NewP,
            index: 0,
            bytes: d,
        };
        let q = B {
            role: Role::NewQ,
            ..p
        };
        assert_eq!(check_blocks(Step::Prepared, &[p]), Ok(()));
        assert_eq!(
            check_blocks(Step::Prepared, &[p, p]),
            Err(OpError::BadRecord)
        );
        assert_eq!(check_blocks(Step::Prepared, &[q]), Err(OpError::BadRecord));
        assert_eq!(check_blocks(Step::Done, &[]), Ok(()));
        assert_eq!(check_blocks(Step::Done, &[p]), Err(OpError::BadRecord));
    }

    #[test]
    fn mirror_writes_every_copy() {
        let g = Geometry::new(Level::Raid10 { copies: 2 }, 3, 4, 16).unwrap();
        let r = WriteRequest {
            stripe: 1,
            offset: 1,
            sectors: 2,
            chunks: ChunkSet(1),
        };
        let p = plan_write(&g, &r, MemberSet::EMPTY).unwrap();
        assert_eq!(p.kind, OpKind::Mirror);
        let w: std::vec::Vec<_> = p
            .writes
            .as_slice()
            .iter()
            .map(|i| (i.member, i.sector))
            .collect();
        assert_eq!(w, [(2, 1), (0, 5)]);
    }
}
