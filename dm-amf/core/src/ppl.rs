// SPDX-License-Identifier: GPL-2.0
//! The partial parity log (PPL) of one AMF (node slot) in the members' reserved area
//! (Documentation/on-disk-format.rst, "Partial parity log"): what closes the write hole of a
//! degraded RAID5/6 group, as md's raid5-ppl does.
//!
//! In a stripe that lacks a data member, that member's chunk exists only as parity. A write
//! torn by a crash (new data on the members, old parity, or the reverse) would make it
//! rebuild as garbage, and the bitmap cannot help: nothing is left to recompute the parity
//! from. So before such a write touches the members the AMF logs the *partial parity*: the
//! parity (P, and Q for RAID6) the stripe's rows will have, minus the part of the data
//! chunks the write puts on present members. The replay after a crash adds what those
//! chunks hold then, old or new, to it: parity that agrees with the data on the members
//! and with the missing chunk as it was (or as the write made it).
//!
//! One entry per node slot: the stripe worker runs one write at a time, and an entry only
//! has to live until its write is on the members. It is written to every live member (the
//! newest valid copy by sequence number wins) and retired before anything else may change
//! its stripe: a write to the stripe without a log entry, the stripe lock going to another
//! AMF, or its replay.

use core::ops::Range;

use super::geometry::{Geometry, MemberSet, StripeLayout};
use super::op::{ChunkSet, WriteRequest};
use super::superblock::BITMAP_SLOTS;
use super::superblock::{Uuid, BITMAP_HEADER_SECTOR, BITMAP_HEADER_SECTORS, BITMAP_SECTOR};
use super::wire::Crc32c;

/// Magic of a log entry header: the ASCII bytes `AMFPPLOG`.
pub const MAGIC: [u8; 8] = *b"AMFPPLOG";
/// Log format version (the superblock's version 1 defines it).
pub const VERSION: u32 = 1;
/// First sector of the log area (node slot `i` at `+ SLOT_SECTORS * i`).
pub const LOG_SECTOR: u64 = BITMAP_HEADER_SECTOR + BITMAP_SLOTS as u64 * BITMAP_HEADER_SECTORS;
/// Sectors of one node slot's log: the area up to the bitmaps, in equal parts.
pub const SLOT_SECTORS: u64 = (BITMAP_SECTOR - LOG_SECTOR) / BITMAP_SLOTS as u64;
/// Bytes of an entry header (4Kn-safe).
pub const HEADER_BYTES: usize = 4096;
/// Sectors of an entry header; the partial parity follows it.
pub const HEADER_SECTORS: u64 = HEADER_BYTES as u64 / 512;
/// Sectors of partial parity a slot holds.
pub const PP_SECTORS: u64 = SLOT_SECTORS - HEADER_SECTORS;
const CRC_OFFSET: usize = HEADER_BYTES - 4;

const _: () = assert!(LOG_SECTOR == 192 && SLOT_SECTORS == 232);
const _: () = assert!(LOG_SECTOR + BITMAP_SLOTS as u64 * SLOT_SECTORS <= BITMAP_SECTOR);

/// The highest sequence number a header may carry. One is used per logged write or
/// retirement: 2^63 of them outlast any disk, so a header above was not written by dm-amf
/// and is refused like a bad CRC, and no arithmetic on a decoded one comes near `u64::MAX`.
pub const SEQ_MAX: u64 = (1 << 63) - 1;

/// The sequence number the next header of a slot whose newest is `seq` carries; `None` when
/// none is left (only a forged header gets there: the slot cannot take new entries).
pub fn next_seq(seq: u64) -> Option<u64> {
    seq.checked_add(1).filter(|s| *s <= SEQ_MAX)
}

/// Sector of node slot `slot`'s entry header on a member (`None` beyond the slots).
pub fn slot_sector(slot: u8) -> Option<u64> {
    (usize::from(slot) < BITMAP_SLOTS).then(|| LOG_SECTOR + u64::from(slot) * SLOT_SECTORS)
}

/// The longest range of a chunk (sectors, a multiple of 8) one logged write may cover with
/// `parity` parity chunks a stripe: the partial parity of each must fit the slot.
pub fn max_sectors(parity: usize) -> u64 {
    let parity = parity.max(1) as u64;
    (PP_SECTORS / parity) & !7
}

/// Whether a write to a stripe laid out as `layout`, with the members `unavailable`
/// out, needs a log entry: a data member is missing (its chunk lives only in the parity)
/// and some parity member is there to be torn.
pub fn needs_log(layout: &StripeLayout, unavailable: MemberSet) -> bool {
    logged(layout, unavailable, false)
}

/// Whether such a write is logged when the table asks for `every_write` (its `ppl`): then
/// any write with a parity member there to be torn is, not only those [`needs_log`] names.
pub fn logged(layout: &StripeLayout, unavailable: MemberSet, every_write: bool) -> bool {
    let data_lost = layout
        .data_members()
        .iter()
        .any(|m| unavailable.contains(usize::from(*m)));
    let parity_live = [layout.p, layout.q]
        .into_iter()
        .flatten()
        .any(|m| !unavailable.contains(m));
    (every_write || data_lost) && parity_live
}

/// The data chunks of `req` whose members are there: the replay reads what they hold then.
/// (A written chunk of a missing member has its new contents in the partial parity.)
pub fn written_present(
    req: &WriteRequest,
    layout: &StripeLayout,
    unavailable: MemberSet,
) -> ChunkSet {
    let mut mask = 0u64;
    for (k, m) in layout.data_members().iter().enumerate() {
        if req.chunks.contains(k) && !unavailable.contains(usize::from(*m)) {
            mask |= 1u64.checked_shl(k as u32).unwrap_or(0);
        }
    }
    ChunkSet(mask)
}

/// Cuts a write request (`req`, covering `covered` sectors of the host I/O) so that its
/// partial parity fits a slot: at most `max` sectors of one chunk. The host sectors are
/// contiguous, so the first `max` of them lie in the first written chunk.
pub fn cap_request(req: WriteRequest, covered: u64, max: u64) -> (WriteRequest, u64) {
    if req.sectors <= max || max == 0 {
        return (req, covered);
    }
    let first = req.chunks.0 & req.chunks.0.wrapping_neg();
    let capped = WriteRequest {
        sectors: max,
        chunks: ChunkSet(first),
        ..req
    };
    (capped, max)
}

/// Whether an entry's write may still be torn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// Logged before the write: the replay recomputes the stripe's parity from it.
    Live = 1,
    /// Nothing to replay (the write was replayed, or its stripe may have changed since).
    Retired = 2,
}

/// A log entry header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The group the log belongs to.
    pub group: Uuid,
    /// The group's creation time (with the UUID: the incarnation).
    pub ctime: u64,
    /// The node slot (0 .. 7) it is written in.
    pub slot: u8,
    /// Live or retired.
    pub state: EntryState,
    /// Grows with every entry of the slot: the newest valid copy on any member wins.
    pub seq: u64,
    /// The stripe (row) the write changes.
    pub stripe: u64,
    /// First sector of the range, within each chunk.
    pub offset: u32,
    /// Sectors of the range.
    pub sectors: u32,
    /// Data chunks written on present members ([`written_present`]).
    pub written: u64,
    /// Partial parity blocks that follow the header: 1 (P) or 2 (P, then Q).
    pub parity: u8,
    /// CRC-32C of the partial parity blocks.
    pub pp_crc: u32,
}

/// Where an entry's range lies ([`Entry::span`]).
#[derive(Clone, Debug)]
pub struct Span {
    /// The members of the entry's stripe.
    pub layout: StripeLayout,
    /// Member sector of the range's first sector (the same on every member of the row).
    pub sector: u64,
    /// Sectors of the range.
    pub sectors: u64,
    /// The range's bytes within a chunk-sized buffer.
    pub bytes: Range<usize>,
}

/// Why an entry header cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// All zero: the slot was never used (as `amfctl format` leaves it).
    Unused,
    /// Not an entry, a torn or corrupted one, or another version.
    Invalid,
    /// A valid entry of another group, incarnation or slot.
    Foreign,
}

impl Entry {
    /// Bytes of partial parity that follow the header.
    pub fn pp_bytes(&self) -> usize {
        (self.sectors as usize).saturating_mul(512 * usize::from(self.parity))
    }

    /// Whether `pp` is this entry's whole partial parity.
    pub fn pp_matches<C: Crc32c>(&self, pp: &[u8]) -> bool {
        pp.len() == self.pp_bytes() && C::crc32c(pp) == self.pp_crc
    }

    /// Where the entry's range lies in its stripe of `g`: what the replay reads and writes.
    /// Refused ([`EntryError::Invalid`]) unless the entry fits `g`: a stripe of it, a range
    /// within one chunk, `g`'s partial parity blocks, written chunks that are data chunks.
    pub fn span(&self, g: &Geometry) -> Result<Span, EntryError> {
        let layout = g.layout(self.stripe).map_err(|_| EntryError::Invalid)?;
        let (offset, sectors) = (u64::from(self.offset), u64::from(self.sectors));
        let data_chunks = u32::try_from(g.data_chunks()).unwrap_or(u32::MAX);
        let fits = usize::from(self.parity) == g.parity_chunks()
            && self.written.checked_shr(data_chunks).unwrap_or(0) == 0;
        let end = offset
            .checked_add(sectors)
            .filter(|end| fits && *end <= g.chunk_sectors())
            .ok_or(EntryError::Invalid)?;
        let byte = |s: u64| {
            s.checked_mul(512)
                .and_then(|b| usize::try_from(b).ok())
                .ok_or(EntryError::Invalid)
        };
        Ok(Span {
            sector: layout
                .member_sector
                .checked_add(offset)
                .ok_or(EntryError::Invalid)?,
            sectors,
            bytes: byte(offset)?..byte(end)?,
            layout,
        })
    }

    /// Whether `self` replaces `other` as the slot's entry.
    pub fn newer_than(&self, other: &Entry) -> bool {
        self.seq > other.seq
    }
}

/// Writes `e` as a header block.
pub fn encode<C: Crc32c>(e: &Entry, out: &mut [u8; HEADER_BYTES]) {
    out.fill(0);
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[16..32].copy_from_slice(&e.group);
    out[32..40].copy_from_slice(&e.ctime.to_le_bytes());
    out[40] = e.slot;
    out[41] = e.state as u8;
    out[42] = e.parity;
    out[48..56].copy_from_slice(&e.seq.to_le_bytes());
    out[56..64].copy_from_slice(&e.stripe.to_le_bytes());
    out[64..68].copy_from_slice(&e.offset.to_le_bytes());
    out[68..72].copy_from_slice(&e.sectors.to_le_bytes());
    out[72..80].copy_from_slice(&e.written.to_le_bytes());
    out[80..84].copy_from_slice(&e.pp_crc.to_le_bytes());
    let crc = C::crc32c(&out[..CRC_OFFSET]);
    out[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
}

/// Reads a header block that should be slot `slot`'s of the group `group` created at
/// `ctime`, laid out as `g`. Every field is checked: a header that is not one this group
/// can have written ([`Entry::span`], [`SEQ_MAX`]) is [`EntryError::Invalid`], as if its
/// CRC were wrong.
pub fn decode<C: Crc32c>(
    buf: &[u8],
    group: &Uuid,
    ctime: u64,
    slot: u8,
    g: &Geometry,
) -> Result<Entry, EntryError> {
    let buf = buf.get(..HEADER_BYTES).ok_or(EntryError::Invalid)?;
    if buf.iter().all(|b| *b == 0) {
        return Err(EntryError::Unused);
    }
    let le32 = |at: usize| {
        buf.get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    let le64 = |at: usize| {
        buf.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    if buf.get(..8) != Some(&MAGIC[..])
        || le32(8) != VERSION
        || le32(CRC_OFFSET) != C::crc32c(buf.get(..CRC_OFFSET).unwrap_or(&[]))
    {
        return Err(EntryError::Invalid);
    }
    let state = match buf.get(41) {
        Some(1) => EntryState::Live,
        Some(2) => EntryState::Retired,
        _ => return Err(EntryError::Invalid),
    };
    let e = Entry {
        group: buf
            .get(16..32)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 16]),
        ctime: le64(32),
        slot: buf.get(40).copied().unwrap_or(u8::MAX),
        state,
        parity: buf.get(42).copied().unwrap_or(0),
        seq: le64(48),
        stripe: le64(56),
        offset: le32(64),
        sectors: le32(68),
        written: le64(72),
        pp_crc: le32(80),
    };
    let fits = matches!(e.parity, 1 | 2)
        && e.sectors > 0
        && u64::from(e.sectors) * u64::from(e.parity) <= PP_SECTORS
        && e.seq <= SEQ_MAX;
    if !fits {
        return Err(EntryError::Invalid);
    }
    if e.group != *group || e.ctime != ctime || e.slot != slot {
        return Err(EntryError::Foreign);
    }
    e.span(g)?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Geometry, Level};

    struct Crc;
    impl Crc32c for Crc {
        fn append(crc: u32, data: &[u8]) -> u32 {
            crc32c::crc32c_append(crc, data)
        }
    }

    /// A geometry `entry()` fits: RAID6 over 5, chunks of 32 sectors, 2000 stripes.
    fn geo() -> Geometry {
        Geometry::new(Level::Raid6, 5, 32, 32 * 2000).unwrap()
    }

    fn entry() -> Entry {
        Entry {
            group: [7; 16],
            ctime: 99,
            slot: 2,
            state: EntryState::Live,
            seq: 5,
            stripe: 1234,
            offset: 8,
            sectors: 16,
            written: 0b101,
            parity: 2,
            pp_crc: Crc::crc32c(&[1u8; 16 * 512 * 2]),
        }
    }

    #[test]
    fn layout_fits_the_reserved_area() {
        assert_eq!(slot_sector(0), Some(192));
        assert_eq!(slot_sector(7), Some(192 + 7 * 232));
        assert_eq!(slot_sector(8), None);
        assert_eq!(max_sectors(1), 224);
        assert_eq!(max_sectors(2), 112);
    }

    #[test]
    fn round_trip_and_rejections() {
        let e = entry();
        let mut b = [0u8; HEADER_BYTES];
        encode::<Crc>(&e, &mut b);
        assert_eq!(decode::<Crc>(&b, &[7; 16], 99, 2, &geo()), Ok(e));
        assert!(e.pp_matches::<Crc>(&[1u8; 16 * 512 * 2]));
        assert!(!e.pp_matches::<Crc>(&[1u8; 16 * 512]));
        assert_eq!(
            decode::<Crc>(&b, &[7; 16], 99, 3, &geo()),
            Err(EntryError::Foreign)
        );
        assert_eq!(
            decode::<Crc>(&b, &[8; 16], 99, 2, &geo()),
            Err(EntryError::Foreign)
        );
        assert_eq!(
            decode::<Crc>(&b, &[7; 16], 98, 2, &geo()),
            Err(EntryError::Foreign)
        );
        assert_eq!(
            decode::<Crc>(&[0; HEADER_BYTES], &[7; 16], 99, 2, &geo()),
            Err(EntryError::Unused)
        );
        for at in [0, 9, 41, 60, CRC_OFFSET] {
            let mut c = b;
            c[at] ^= 1;
            assert_eq!(
                decode::<Crc>(&c, &[7; 16], 99, 2, &geo()),
                Err(EntryError::Invalid),
                "byte {at}"
            );
        }
        let mut v2 = b;
        v2[8] = 2;
        let crc = Crc::crc32c(&v2[..CRC_OFFSET]);
        v2[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode::<Crc>(&v2, &[7; 16], 99, 2, &geo()),
            Err(EntryError::Invalid)
        );
        let big = Entry { sectors: 113, ..e };
        encode::<Crc>(&big, &mut b);
        assert_eq!(
            decode::<Crc>(&b, &[7; 16], 99, 2, &geo()),
            Err(EntryError::Invalid)
        );
        assert!(decode::<Crc>(&b[..100], &[7; 16], 99, 2, &geo()).is_err());
    }

    fn encoded(e: &Entry) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        encode::<Crc>(e, &mut b);
        b
    }

    #[test]
    fn sequence_numbers_stay_below_the_limit() {
        let e = entry();
        let limit = (1u64 << 63) - 1;
        for seq in [u64::MAX, limit + 1] {
            let b = encoded(&Entry { seq, ..e });
            assert_eq!(
                decode::<Crc>(&b, &[7; 16], 99, 2, &geo()),
                Err(EntryError::Invalid),
                "seq {seq}"
            );
        }
        let b = encoded(&Entry { seq: limit, ..e });
        assert_eq!(
            decode::<Crc>(&b, &[7; 16], 99, 2, &geo()).map(|e| e.seq),
            Ok(limit)
        );
    }

    #[test]
    fn decode_checks_the_geometry() {
        let g = geo();
        let beyond = encoded(&Entry {
            stripe: 2000,
            ..entry()
        });
        assert_eq!(
            decode::<Crc>(&beyond, &[7; 16], 99, 2, &g),
            Err(EntryError::Invalid)
        );
        let raid5 = encoded(&Entry {
            parity: 1,
            ..entry()
        });
        assert_eq!(
            decode::<Crc>(&raid5, &[7; 16], 99, 2, &g),
            Err(EntryError::Invalid)
        );
        // Another group's entry is foreign whatever its geometry.
        assert_eq!(
            decode::<Crc>(&beyond, &[8; 16], 99, 2, &g),
            Err(EntryError::Foreign)
        );
    }

    #[test]
    fn next_seq_never_overflows() {
        assert_eq!(next_seq(u64::MAX), None);
        assert_eq!(next_seq(0), Some(1));
        assert_eq!(next_seq((1 << 63) - 2), Some((1 << 63) - 1));
        assert_eq!(next_seq((1 << 63) - 1), None, "no room left");
    }

    #[test]
    fn span_refuses_what_the_geometry_cannot_hold() {
        // RAID5 over 4: 3 data chunks of 16 sectors, 8 stripes.
        let g = Geometry::new(Level::Raid5, 4, 16, 16 * 8).unwrap();
        let e = Entry {
            stripe: 5,
            offset: 8,
            sectors: 8,
            written: 0b101,
            parity: 1,
            ..entry()
        };
        let s = e.span(&g).unwrap();
        assert_eq!(
            (s.sector, s.sectors, s.bytes),
            (5 * 16 + 8, 8, 8 * 512..16 * 512)
        );
        let bad = [
            Entry { stripe: 8, ..e },
            Entry {
                stripe: u64::MAX,
                ..e
            },
            Entry { offset: 9, ..e },
            Entry {
                offset: u32::MAX,
                sectors: u32::MAX,
                ..e
            },
            Entry { parity: 2, ..e },
            Entry {
                written: 0b1000,
                ..e
            },
            Entry {
                written: u64::MAX,
                ..e
            },
        ];
        for b in bad {
            assert_eq!(
                b.span(&g).map(|s| s.sector),
                Err(EntryError::Invalid),
                "{b:?}"
            );
        }
        let g6 = Geometry::new(Level::Raid6, 4, 16, 16 * 8).unwrap();
        assert!(Entry {
            parity: 2,
            written: 0b11,
            ..e
        }
        .span(&g6)
        .is_ok());
        assert!(e.span(&g6).is_err(), "one parity block for RAID6");
    }

    #[test]
    fn which_writes_are_logged() {
        let g = Geometry::new(Level::Raid5, 4, 16, 16 * 3 * 8).unwrap();
        let l = g.layout(0).unwrap();
        let p = l.p.unwrap();
        let d0 = l.data_member(0).unwrap();
        assert!(!needs_log(&l, MemberSet::EMPTY));
        assert!(
            !needs_log(&l, MemberSet::EMPTY.with(p)),
            "only the parity is lost"
        );
        assert!(needs_log(&l, MemberSet::EMPTY.with(d0)));
        let g6 = Geometry::new(Level::Raid6, 4, 16, 16 * 2 * 8).unwrap();
        let l6 = g6.layout(0).unwrap();
        let (p6, q6, d6) = (l6.p.unwrap(), l6.q.unwrap(), l6.data_member(1).unwrap());
        assert!(needs_log(&l6, MemberSet::EMPTY.with(d6)));
        assert!(needs_log(&l6, MemberSet::EMPTY.with(d6).with(p6)));
        assert!(!needs_log(&l6, MemberSet::EMPTY.with(p6).with(q6)));
        // Every write with the table's `ppl`, as long as a parity member can be torn.
        assert!(logged(&l, MemberSet::EMPTY, true));
        assert!(!logged(&l, MemberSet::EMPTY.with(p), true));
        assert!(!logged(&l6, MemberSet::EMPTY.with(p6).with(q6), true));
        let req = WriteRequest {
            stripe: 0,
            offset: 0,
            sectors: 8,
            chunks: ChunkSet(0b11),
        };
        let d1 = l6.data_member(1).unwrap();
        assert_eq!(
            written_present(&req, &l6, MemberSet::EMPTY.with(d1)),
            ChunkSet(0b01)
        );
        assert_eq!(written_present(&req, &l6, MemberSet::EMPTY), ChunkSet(0b11));
    }

    #[test]
    fn capping_keeps_the_first_sectors() {
        let whole = WriteRequest {
            stripe: 3,
            offset: 0,
            sectors: 256,
            chunks: ChunkSet(0b110),
        };
        let (r, c) = cap_request(whole, 512, 224);
        assert_eq!(
            (r.offset, r.sectors, r.chunks, c),
            (0, 224, ChunkSet(0b010), 224)
        );
        let part = WriteRequest {
            stripe: 3,
            offset: 100,
            sectors: 20,
            chunks: ChunkSet(0b1),
        };
        assert_eq!(cap_request(part, 20, 112), (part, 20));
        let long = WriteRequest {
            sectors: 150,
            ..part
        };
        assert_eq!(cap_request(long, 150, 112).1, 112);
    }
}
