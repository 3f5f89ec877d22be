// SPDX-License-Identifier: GPL-2.0

//! This AMF's partial parity log (Documentation/on-disk-format.rst, "Partial parity log";
//! the entry format and the rules are core `ppl`'s): before a RAID5/6 write to a stripe that
//! lacks a data member reaches the members, its partial parity is made durable in the node
//! slot on every live member; at the next start the newest live entry is replayed, so that
//! a write torn by a crash of every AMF cannot turn the missing chunk into garbage.
//!
//! The stripe worker (one write at a time) is the only writer; the constructor loads the
//! slot. The replay itself, which needs the stripe buffers, is `stripe_ppl`'s.

use kernel::{new_mutex, prelude::*, sync::Mutex};

use crate::core_proto::{
    geometry::{Geometry, MemberSet, StripeLayout},
    op::{ChunkSet, WriteRequest},
    ppl::{self, Entry, EntryError, EntryState, HEADER_BYTES, HEADER_SECTORS},
    superblock::{Superblock, Uuid},
    wire::Crc32c,
};
use crate::group::Member;
use crate::kernel_ext::{
    bio::BioSet,
    block_io::{self, MemberIo},
    device_mapper::CtrError,
};
use crate::metadata::KernelCrc;
use crate::write_intent::{write_all, Mark, BATCH};

/// What only the stripe worker (and the constructor) touch.
pub(crate) struct LogIo {
    pool: BioSet,
    /// A whole slot: the header, then the partial parity (P, then Q).
    buf: KVec<u8>,
    /// Sequence number of the slot's newest entry on disk.
    seq: u64,
    /// The stripe of the entry on disk that is still live (written, not retired).
    live: Option<u64>,
    /// A live entry still to replay (its partial parity is in `buf`): this slot's, found by
    /// the constructor, or a dead node's; and the sequence number that retires it.
    replay: Option<(Entry, u64)>,
}

/// The partial parity log of one node slot.
#[pin_data]
pub(crate) struct ParityLog {
    group: Uuid,
    ctime: u64,
    slot: u8,
    /// The group's layout: an entry that does not fit it is invalid.
    geometry: Geometry,
    /// Parity chunks a stripe: partial parity blocks an entry holds.
    parity: u8,
    /// The table's `ppl`: every write is logged, not only those to rows that lack a data
    /// member.
    always: bool,
    #[pin]
    io: Mutex<LogIo>,
}

fn nomem() -> CtrError {
    CtrError::new(ENOMEM, c"Cannot allocate the partial parity log")
}

impl ParityLog {
    /// Loads node slot `slot`'s log of the group `sb` describes, laid out as `geometry`,
    /// from the members not in `unusable`: the newest valid entry (by sequence number, its
    /// partial parity intact) is kept for the replay if it is live. Refused when the slot's
    /// sequence numbers are exhausted (only a forged header gets there). Sleeps
    /// (constructor only).
    #[inline(never)]
    pub(crate) fn load(
        sb: &Superblock,
        slot: u8,
        (geometry, always): (&Geometry, bool),
        members: &[Member],
        unusable: u64,
    ) -> Result<Pin<KBox<Self>>, CtrError> {
        let bytes = usize::try_from(ppl::SLOT_SECTORS * 512).map_err(|_| nomem())?;
        let buf = KVec::from_elem(0u8, bytes, GFP_KERNEL).map_err(|_| nomem())?;
        let pool = BioSet::with_bvecs(BATCH as u32).map_err(|_| nomem())?;
        let parity = u8::try_from(geometry.parity_chunks()).map_err(|_| nomem())?;
        let this = KBox::pin_init(
            pin_init!(Self {
                group: sb.group_uuid,
                ctime: sb.ctime,
                slot,
                geometry: *geometry,
                parity,
                always,
                io <- new_mutex!(
                    LogIo { pool, buf, seq: 0, live: None, replay: None },
                    "amf:parity_log"
                ),
            }),
            GFP_KERNEL,
        )
        .map_err(|_| nomem())?;
        {
            let mut io = this.io.lock();
            let (seq, live) = this
                .find_live(&mut io, members, unusable, slot)
                .map_err(|_| CtrError::new(EIO, c"Cannot read the partial parity log"))?;
            io.seq = seq;
            let next = next_seq(seq, slot)
                .map_err(|_| CtrError::inval(c"Partial parity log sequence numbers exhausted"))?;
            if let Some(e) = live {
                io.live = Some(e.stripe);
                io.replay = Some((e, next));
            }
        }
        Ok(this)
    }

    /// Finds node slot `slot`'s newest entry: each usable member's header first, then the
    /// partial parity (read into `io`'s buffer) of the newest live one whose copy is whole
    /// (a torn newer entry never had its write started: the next older one is the slot's).
    /// Returns the highest sequence number seen and the live entry, if any. Sleeps.
    fn find_live(
        &self,
        io: &mut LogIo,
        members: &[Member],
        unusable: u64,
        slot: u8,
    ) -> Result<(u64, Option<Entry>)> {
        let sector = ppl::slot_sector(slot).ok_or(EINVAL)?;
        let mut found: KVec<Option<Entry>> = KVec::with_capacity(members.len(), GFP_KERNEL)?;
        let LogIo { pool, buf, .. } = io;
        for (i, m) in members.iter().enumerate() {
            let mut entry = None;
            if let Some(dev) = m.dev.as_ref().filter(|_| unusable & (1 << i) == 0) {
                let head = buf.get_mut(..HEADER_BYTES).ok_or(EINVAL)?;
                let mut ios = [MemberIo::read(dev, sector, head)];
                if block_io::submit_all(pool, &mut ios) {
                    let g = &self.geometry;
                    match ppl::decode::<KernelCrc>(head, &self.group, self.ctime, slot, g) {
                        Ok(e) => entry = Some(e),
                        Err(EntryError::Unused) => {}
                        Err(e) => pr_warn!(
                            "member {i}: partial parity log of slot {slot} unusable ({e:?})\n"
                        ),
                    }
                } else {
                    pr_warn!("member {i}: cannot read the partial parity log of slot {slot}\n");
                }
            }
            found.push(entry, GFP_KERNEL)?;
        }
        let max = found.iter().flatten().map(|e| e.seq).max().unwrap_or(0);
        // Newest first: the first whole copy decides.
        loop {
            let best = found
                .iter()
                .enumerate()
                .filter_map(|(i, e)| Some((i, (*e)?)))
                .max_by_key(|(_, e)| e.seq);
            let Some((i, e)) = best else {
                return Ok((max, None));
            };
            if e.state == EntryState::Retired {
                return Ok((max, None));
            }
            let whole = members
                .get(i)
                .and_then(|m| m.dev.as_ref())
                .is_some_and(|dev| {
                    let Some(pp) = buf.get_mut(HEADER_BYTES..HEADER_BYTES + e.pp_bytes()) else {
                        return false;
                    };
                    let mut ios = [MemberIo::read(dev, sector + HEADER_SECTORS, pp)];
                    block_io::submit_all(pool, &mut ios) && e.pp_matches::<KernelCrc>(pp)
                });
            if whole {
                pr_info!(
                    "ppl: stripe {} to replay (node slot {slot}, entry {})\n",
                    e.stripe,
                    e.seq
                );
                return Ok((max, Some(e)));
            }
            if let Some(f) = found.get_mut(i) {
                *f = None;
            }
        }
    }

    /// A cluster node died: its slot's live entry, if any, is to be replayed by this AMF
    /// (`replay`: no replication records covered its write) or only retired (the takeover
    /// rewrote its write from the records). This AMF's own entry is retired first (its
    /// buffer is needed). Stripe worker only; sleeps.
    pub(crate) fn adopt(&self, members: &[Member], failed: u64, slot: u8, replay: bool) -> Result {
        let mut io = self.io.lock();
        self.retire(&mut io, members, !failed)?;
        let (max, live) = self.find_live(&mut io, members, failed, slot)?;
        if let Some(e) = live {
            io.replay = Some((e, next_seq(max, slot)?));
            if !replay {
                self.retire_replayed(&mut io, members, !failed)?;
            }
        }
        Ok(())
    }

    /// The worker's side of the log.
    pub(crate) fn lock(
        &self,
    ) -> kernel::sync::lock::Guard<'_, LogIo, kernel::sync::lock::mutex::MutexBackend> {
        self.io.lock()
    }

    /// Parity chunks a stripe.
    pub(crate) fn parity(&self) -> usize {
        usize::from(self.parity)
    }

    /// Whether a write to a stripe laid out as `layout`, with the members `unavailable`
    /// out, is logged.
    pub(crate) fn logs(&self, layout: &StripeLayout, unavailable: MemberSet) -> bool {
        ppl::logged(layout, unavailable, self.always)
    }

    /// The table's `ppl`.
    pub(crate) fn always(&self) -> bool {
        self.always
    }

    /// Logs a write of `req`'s range whose data chunks `written` are on present members:
    /// the header and the partial parity that `io`'s buffer holds ([`LogIo::pp_mut`]) go to
    /// every member in `targets`, with FUA. Returns the members whose write failed; an
    /// error if it landed on none.
    pub(crate) fn append(
        &self,
        io: &mut LogIo,
        members: &[Member],
        targets: u64,
        req: &WriteRequest,
        written: ChunkSet,
    ) -> Result<u64> {
        let seq = next_seq(io.seq, self.slot)?;
        let mut e = Entry {
            group: self.group,
            ctime: self.ctime,
            slot: self.slot,
            state: EntryState::Live,
            seq,
            stripe: req.stripe,
            offset: u32::try_from(req.offset).map_err(|_| EINVAL)?,
            sectors: u32::try_from(req.sectors).map_err(|_| EINVAL)?,
            written: written.0,
            parity: self.parity,
            pp_crc: 0,
        };
        // A live entry of another write is overwritten: that write's data and parity must
        // be on stable media before its entry is gone (md flushes before reusing PPL space).
        let mark = if io.live.is_some() {
            Mark::Clean
        } else {
            Mark::Dirty
        };
        let LogIo { pool, buf, .. } = io;
        let pp = buf
            .get(HEADER_BYTES..HEADER_BYTES + e.pp_bytes())
            .ok_or(EINVAL)?;
        e.pp_crc = KernelCrc::crc32c(pp);
        let len = HEADER_BYTES + e.pp_bytes();
        let bad = self.write(pool, buf, len, members, targets, &e, mark)?;
        io.seq = seq;
        io.live = Some(e.stripe);
        Ok(bad)
    }

    /// Retires this slot's live entry, if any: its stripe may change in ways it does not
    /// know of (a write without an entry, another AMF). Returns the members whose write
    /// failed.
    pub(crate) fn retire(&self, io: &mut LogIo, members: &[Member], targets: u64) -> Result<u64> {
        let Some(stripe) = io.live else {
            return Ok(0);
        };
        let seq = next_seq(io.seq, self.slot)?;
        let bad = self.write_retired(io, members, targets, self.slot, stripe, seq)?;
        io.seq = seq;
        io.live = None;
        Ok(bad)
    }

    /// Retires the entry that was to be replayed (once replayed, or when it cannot be).
    pub(crate) fn retire_replayed(
        &self,
        io: &mut LogIo,
        members: &[Member],
        targets: u64,
    ) -> Result<u64> {
        let Some((e, seq)) = io.replay.take() else {
            return Ok(0);
        };
        let bad = self.write_retired(io, members, targets, e.slot, e.stripe, seq)?;
        if e.slot == self.slot {
            io.seq = io.seq.max(seq);
            io.live = None;
        }
        Ok(bad)
    }

    /// Writes a retired header with sequence number `seq` into node slot `slot`.
    fn write_retired(
        &self,
        io: &mut LogIo,
        members: &[Member],
        targets: u64,
        slot: u8,
        stripe: u64,
        seq: u64,
    ) -> Result<u64> {
        let e = Entry {
            group: self.group,
            ctime: self.ctime,
            slot,
            state: EntryState::Retired,
            seq,
            stripe,
            offset: 0,
            sectors: 8,
            written: 0,
            parity: self.parity,
            pp_crc: 0,
        };
        let LogIo { pool, buf, .. } = io;
        // Retired, the entry is never replayed: what it covered must be durable first.
        self.write(pool, buf, HEADER_BYTES, members, targets, &e, Mark::Clean)
    }

    /// Encodes `e` into the first block of `buf` and writes `buf[..len]` to the slot,
    /// ordered as `mark` says.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        pool: &BioSet,
        buf: &mut KVec<u8>,
        len: usize,
        members: &[Member],
        targets: u64,
        e: &Entry,
        mark: Mark,
    ) -> Result<u64> {
        let head: &mut [u8; HEADER_BYTES] = buf
            .get_mut(..HEADER_BYTES)
            .and_then(|h| h.try_into().ok())
            .ok_or(EINVAL)?;
        ppl::encode::<KernelCrc>(e, head);
        let sector = ppl::slot_sector(e.slot).ok_or(EINVAL)?;
        let out = buf.get(..len).ok_or(EINVAL)?;
        write_all(
            pool,
            out,
            members,
            targets,
            sector,
            "partial parity log",
            mark,
        )
    }
}

/// The sequence number after `seq` in node slot `slot` ([`ppl::next_seq`]), or `ERANGE`,
/// said in the kernel log: the slot takes no new entries.
fn next_seq(seq: u64, slot: u8) -> Result<u64> {
    ppl::next_seq(seq).ok_or_else(|| {
        pr_err!("ppl: node slot {slot}: no sequence number after {seq}; zero the slot's headers to use it again\n");
        ERANGE
    })
}

impl LogIo {
    /// The partial parity area: `parity` blocks of `bytes` bytes (P, then Q).
    pub(crate) fn pp_mut(&mut self, bytes: usize, parity: usize) -> Option<(&mut [u8], &mut [u8])> {
        let end = bytes.checked_mul(parity)?.checked_add(HEADER_BYTES)?;
        let area = self.buf.get_mut(HEADER_BYTES..end)?;
        Some(area.split_at_mut(bytes))
    }

    /// The entry still to replay.
    pub(crate) fn to_replay(&self) -> Option<Entry> {
        self.replay.map(|(e, _)| e)
    }

    /// The stripe of the live entry.
    pub(crate) fn live(&self) -> Option<u64> {
        self.live
    }
}
