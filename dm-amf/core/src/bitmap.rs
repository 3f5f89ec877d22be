// SPDX-License-Identifier: GPL-2.0
//! The write-intent bitmap of one AMF (node slot) in the members' reserved area
//! (Documentation/on-disk-format.rst, "Write-intent bitmaps").
//!
//! A bit covers one region (`region_sectors` of every member's data area). The AMF makes its
//! bit durable on every live member *before* the first write into the region is issued and
//! clears it only after the region has had no write in flight for a whole sweep period, so a
//! region whose bit is clear on disk never holds a torn stripe. When every AMF died at once,
//! the next start resyncs exactly the regions whose bit is set.
//!
//! This file holds the on-disk header of a slot, the bitmap's addressing and the transitions
//! of a region's in-memory state word, which the kernel keeps in an atomic so that the map
//! path of a mirror can start a write in a region that is already marked without sleeping.

use super::superblock::{Uuid, BITMAP_HEADER_SECTOR, BITMAP_HEADER_SECTORS, BITMAP_SECTOR};
use super::superblock::{BITMAP_BITS, BITMAP_SLOTS, BITMAP_SLOT_SECTORS};
use super::wire::Crc32c;

/// Magic of a bitmap header: the ASCII bytes `AMFBITMP`.
pub const MAGIC: [u8; 8] = *b"AMFBITMP";
/// Bitmap format version (the superblock's version 1 defines it).
pub const VERSION: u32 = 1;
/// Bytes of a header, and of one bitmap block (the unit written at once, 4Kn-safe).
pub const BLOCK_BYTES: usize = 4096;
/// Regions per bitmap block.
pub const BITS_PER_BLOCK: u64 = BLOCK_BYTES as u64 * 8;
/// Sectors per bitmap block.
pub const BLOCK_SECTORS: u64 = BLOCK_BYTES as u64 / 512;
const CRC_OFFSET: usize = BLOCK_BYTES - 4;

/// What a node slot's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The group the bitmap belongs to.
    pub group: Uuid,
    /// The group's creation time (with the UUID: the incarnation).
    pub ctime: u64,
    /// The node slot (0 .. 7) it is written in.
    pub slot: u8,
    /// Sectors per region, as the superblock records.
    pub region_sectors: u64,
    /// Regions the bitmap covers.
    pub regions: u64,
}

/// Why a header cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// All zero: the slot was never used (as `amfctl format` leaves it). Its bits are zero.
    Unused,
    /// Not a bitmap header, a torn or corrupted one, or another version.
    Invalid,
    /// A valid header of another group, incarnation, slot or region size.
    Foreign,
}

/// The highest cluster node id that has a node slot.
pub const MAX_SLOT_NODE: u32 = BITMAP_SLOTS as u32;

/// The node slot (bitmap and partial parity log) of cluster node id `node`: `node - 1` for
/// ids 1 to [`MAX_SLOT_NODE`], none beyond the format's slots.
pub fn node_slot(node: u32) -> Option<u8> {
    (1..=MAX_SLOT_NODE)
        .contains(&node)
        .then(|| u8::try_from(node - 1).ok())
        .flatten()
}

/// Sector of node slot `slot`'s header on a member (`None` beyond the slots).
pub fn header_sector(slot: u8) -> Option<u64> {
    (usize::from(slot) < BITMAP_SLOTS)
        .then(|| BITMAP_HEADER_SECTOR + u64::from(slot) * BITMAP_HEADER_SECTORS)
}

/// Sector of bitmap block `block` of node slot `slot` (`None` beyond the slot's bitmap).
pub fn block_sector(slot: u8, block: u64) -> Option<u64> {
    if usize::from(slot) >= BITMAP_SLOTS || block >= BITMAP_SLOT_SECTORS / BLOCK_SECTORS {
        return None;
    }
    Some(BITMAP_SECTOR + u64::from(slot) * BITMAP_SLOT_SECTORS + block * BLOCK_SECTORS)
}

/// Blocks of a bitmap of `regions` regions.
pub fn blocks(regions: u64) -> u64 {
    regions.div_ceil(BITS_PER_BLOCK)
}

/// The block holding region `region`'s bit, and the bit's byte and mask in that block.
pub fn bit_of(region: u64) -> (u64, usize, u8) {
    let in_block = region % BITS_PER_BLOCK;
    (
        region / BITS_PER_BLOCK,
        (in_block / 8) as usize,
        1u8 << (in_block % 8),
    )
}

/// Writes `h` as a header block.
pub fn encode_header<C: Crc32c>(h: &Header, out: &mut [u8; BLOCK_BYTES]) {
    out.fill(0);
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[16..32].copy_from_slice(&h.group);
    out[32..40].copy_from_slice(&h.ctime.to_le_bytes());
    out[40] = h.slot;
    out[48..56].copy_from_slice(&h.region_sectors.to_le_bytes());
    out[56..64].copy_from_slice(&h.regions.to_le_bytes());
    let crc = C::crc32c(&out[..CRC_OFFSET]);
    out[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
}

/// Reads a header block, whichever group it is of. Fields no dm-amf header can hold (a slot
/// beyond the format's, a region size that is not a power of two, no regions or more than
/// a slot's bitmap has bits for) make it [`HeaderError::Invalid`], as a bad CRC does.
pub fn decode_header<C: Crc32c>(buf: &[u8]) -> Result<Header, HeaderError> {
    let buf = buf.get(..BLOCK_BYTES).ok_or(HeaderError::Invalid)?;
    if buf.iter().all(|b| *b == 0) {
        return Err(HeaderError::Unused);
    }
    let le64 = |r: core::ops::Range<usize>| {
        buf.get(r)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let crc = buf
        .get(CRC_OFFSET..)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    let version = buf
        .get(8..12)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    if buf.get(..8) != Some(&MAGIC[..])
        || version != VERSION
        || crc != C::crc32c(buf.get(..CRC_OFFSET).unwrap_or(&[]))
    {
        return Err(HeaderError::Invalid);
    }
    let h = Header {
        group: buf
            .get(16..32)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 16]),
        ctime: le64(32..40),
        slot: buf.get(40).copied().unwrap_or(u8::MAX),
        region_sectors: le64(48..56),
        regions: le64(56..64),
    };
    let fits = usize::from(h.slot) < BITMAP_SLOTS
        && h.region_sectors.is_power_of_two()
        && (1..=BITMAP_BITS).contains(&h.regions);
    if fits {
        Ok(h)
    } else {
        Err(HeaderError::Invalid)
    }
}

/// Reads a header block and checks that it is `want`'s (same group, incarnation, slot,
/// region size and count).
pub fn check_header<C: Crc32c>(buf: &[u8], want: &Header) -> Result<(), HeaderError> {
    if decode_header::<C>(buf)? == *want {
        Ok(())
    } else {
        Err(HeaderError::Foreign)
    }
}

/// The regions whose bit is set in `image`, bitmap block `block` of a bitmap of `regions`
/// regions, in increasing order. Bits beyond the last region (which no dm-amf writes) and
/// blocks beyond the bitmap yield nothing.
pub fn set_regions(block: u64, image: &[u8], regions: u64) -> impl Iterator<Item = u64> + '_ {
    let first = block.checked_mul(BITS_PER_BLOCK).filter(|f| *f < regions);
    let image = if first.is_some() { image } else { &[] };
    let first = first.unwrap_or(0);
    image
        .iter()
        .take(BLOCK_BYTES)
        .enumerate()
        .filter(|(_, b)| **b != 0)
        .flat_map(move |(i, b)| {
            (0..8u64)
                .filter(move |bit| b & (1 << bit) != 0)
                .map(move |bit| first + i as u64 * 8 + bit)
        })
        .take_while(move |r| *r < regions)
}

/// A region's in-memory state word: writes in flight from the map path (low 16 bits) and
/// the flags below.
pub mod state {
    /// Writes in flight that the map path started without the worker.
    pub const COUNT: u32 = 0xffff;
    /// The region's bit is set on disk: writes may be issued into it.
    pub const DURABLE: u32 = 1 << 16;
    /// A write started since the last sweep: keep the bit one more period.
    pub const TOUCHED: u32 = 1 << 17;
    /// The region waits for its resync: its bit stays set, mirrors read the first copy.
    pub const RESYNC: u32 = 1 << 18;
    /// The worker is writing the bit: it goes into block images, but no write may start
    /// before it is durable.
    pub const MARKING: u32 = 1 << 19;

    /// Whether a block image written now carries the region's bit.
    pub fn in_image(word: u32) -> bool {
        word & (DURABLE | MARKING) != 0
    }

    /// The word after a map-path write starts in the region, if it may start without the
    /// worker: the bit is durable, no resync is pending, and the counter has room.
    pub fn start(word: u32) -> Option<u32> {
        let ok = word & DURABLE != 0 && word & RESYNC == 0 && word & COUNT < COUNT;
        ok.then_some((word + 1) | TOUCHED)
    }

    /// The word after a map-path write in the region completed.
    pub fn end(word: u32) -> u32 {
        if word & COUNT == 0 {
            word
        } else {
            word - 1
        }
    }

    /// What a sweep does to a region.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Sweep {
        /// Nothing to do (bit clear, or it must stay).
        Keep,
        /// Written to since the last sweep: forget that, clear at a later sweep.
        Untouch,
        /// Idle for a whole period: clear the bit (memory first, then on disk).
        Clear,
    }

    /// The sweep's decision for a region in state `word`.
    pub fn sweep(word: u32) -> Sweep {
        if word & DURABLE == 0 || word & RESYNC != 0 || word & COUNT != 0 {
            Sweep::Keep
        } else if word & TOUCHED != 0 {
            Sweep::Untouch
        } else {
            Sweep::Clear
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::TestCrc as Crc;
    use super::state::{self, Sweep};
    use super::*;

    fn header() -> Header {
        Header {
            group: [7; 16],
            ctime: 1_700_000_000,
            slot: 3,
            region_sectors: 1024,
            regions: 40_000,
        }
    }

    #[test]
    fn node_slots() {
        assert_eq!(node_slot(0), None);
        assert_eq!(node_slot(1), Some(0));
        assert_eq!(node_slot(8), Some(7));
        assert_eq!(node_slot(9), None);
        assert_eq!(node_slot(u32::MAX), None);
    }

    #[test]
    fn header_round_trip_and_refusals() {
        let h = header();
        let mut b = [0u8; BLOCK_BYTES];
        assert_eq!(check_header::<Crc>(&b, &h), Err(HeaderError::Unused));
        encode_header::<Crc>(&h, &mut b);
        assert_eq!(check_header::<Crc>(&b, &h), Ok(()));
        let other = Header { slot: 2, ..h };
        assert_eq!(check_header::<Crc>(&b, &other), Err(HeaderError::Foreign));
        let other = Header { ctime: 1, ..h };
        assert_eq!(check_header::<Crc>(&b, &other), Err(HeaderError::Foreign));
        b[100] ^= 1;
        assert_eq!(check_header::<Crc>(&b, &h), Err(HeaderError::Invalid));
        b[100] ^= 1;
        b[8] = 2; // another version
        assert_eq!(check_header::<Crc>(&b, &h), Err(HeaderError::Invalid));
        assert_eq!(
            check_header::<Crc>(&b[..100], &h),
            Err(HeaderError::Invalid)
        );
    }

    #[test]
    fn header_fields_are_checked() {
        let h = header();
        let mut b = [0u8; BLOCK_BYTES];
        encode_header::<Crc>(&h, &mut b);
        assert_eq!(decode_header::<Crc>(&b), Ok(h));
        let too_many = super::super::superblock::BITMAP_BITS + 1;
        let bad = [
            Header { slot: 8, ..h },
            Header { slot: u8::MAX, ..h },
            Header {
                region_sectors: 0,
                ..h
            },
            Header {
                region_sectors: 1000,
                ..h
            },
            Header { regions: 0, ..h },
            Header {
                regions: too_many,
                ..h
            },
            Header {
                regions: u64::MAX,
                ..h
            },
        ];
        for bad in bad {
            encode_header::<Crc>(&bad, &mut b);
            assert_eq!(
                decode_header::<Crc>(&b),
                Err(HeaderError::Invalid),
                "{bad:?}"
            );
            assert_eq!(check_header::<Crc>(&b, &bad), Err(HeaderError::Invalid));
        }
    }

    #[test]
    fn set_regions_stay_in_the_bitmap() {
        let image = [0xffu8; BLOCK_BYTES];
        assert_eq!(set_regions(u64::MAX, &image, u64::MAX).count(), 0);
        assert!(set_regions(0, &image, 10).eq(0..10));
        let last = BITS_PER_BLOCK + 5;
        assert!(set_regions(1, &image, last).eq(BITS_PER_BLOCK..last));
        assert_eq!(set_regions(2, &image, last).count(), 0);
        let mut one = [0u8; BLOCK_BYTES];
        one[3] = 0b0100_0001;
        assert!(set_regions(0, &one, 1000).eq([24, 30]));
    }

    #[test]
    fn addressing_stays_in_the_slot() {
        assert_eq!(header_sector(0), Some(128));
        assert_eq!(header_sector(7), Some(184));
        assert_eq!(header_sector(8), None);
        assert_eq!(block_sector(0, 0), Some(2048));
        assert_eq!(block_sector(1, 0), Some(2560));
        assert_eq!(block_sector(7, 63), Some(2048 + 7 * 512 + 63 * 8));
        assert_eq!(block_sector(0, 64), None);
        assert_eq!(bit_of(0), (0, 0, 1));
        assert_eq!(bit_of(9), (0, 1, 2));
        assert_eq!(bit_of(BITS_PER_BLOCK + 3), (1, 0, 8));
        assert_eq!(blocks(1), 1);
        assert_eq!(blocks(BITS_PER_BLOCK + 1), 2);
        // Every region of a full bitmap lands in the slot.
        let last = super::super::superblock::BITMAP_BITS - 1;
        assert!(block_sector(0, bit_of(last).0).is_some());
    }

    #[test]
    fn state_transitions() {
        assert_eq!(
            state::start(0),
            None,
            "bit not durable: the worker marks it"
        );
        let w = state::start(state::DURABLE).unwrap();
        assert_eq!(w, state::DURABLE | state::TOUCHED | 1);
        assert_eq!(state::sweep(w), Sweep::Keep, "a write in flight");
        let w = state::end(w);
        assert_eq!(state::sweep(w), Sweep::Untouch);
        assert_eq!(state::sweep(w & !state::TOUCHED), Sweep::Clear);
        assert_eq!(state::start(state::DURABLE | state::RESYNC), None);
        assert_eq!(state::sweep(state::DURABLE | state::RESYNC), Sweep::Keep);
        assert_eq!(state::start(state::DURABLE | state::COUNT), None);
        assert_eq!(state::end(0), 0);
        assert_eq!(state::start(state::MARKING), None, "not durable yet");
        assert!(state::in_image(state::MARKING) && state::in_image(state::DURABLE));
        assert!(!state::in_image(state::TOUCHED | state::RESYNC));
    }
}
