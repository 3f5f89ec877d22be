// SPDX-License-Identifier: GPL-2.0
//! Fuzz the write-intent bitmap's header reader and block scan: any bytes must decode or
//! fail with a typed error, never panic. The first input byte picks how the rest becomes a
//! header: raw bytes, raw bytes with a valid magic, version and CRC spliced in (so the field
//! checks are reached), or a valid header patched at fuzzer-chosen offsets and
//! re-checksummed. Whatever decodes goes through the addressing the kernel does with a
//! header (every block's sector, the last region's bit) and must stay in its slot; the
//! input is also scanned as a bitmap block of that header's bitmap.
#![no_main]

use amf_core::bitmap::{self, Header, BITS_PER_BLOCK, BLOCK_BYTES, MAGIC, VERSION};
use amf_core::superblock::{BITMAP_BITS, BITMAP_SECTOR, BITMAP_SLOTS, BITMAP_SLOT_SECTORS};
use amf_core::wire::Crc32c;
use libfuzzer_sys::fuzz_target;

struct Crc;
impl Crc32c for Crc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

const CRC_OFFSET: usize = BLOCK_BYTES - 4;

fn fix_crc(h: &mut [u8; BLOCK_BYTES]) {
    let crc = crc32c::crc32c(&h[..CRC_OFFSET]);
    h[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
}

fn header(data: &[u8]) -> Option<[u8; BLOCK_BYTES]> {
    let (&mode, rest) = data.split_first()?;
    let mut h = [0u8; BLOCK_BYTES];
    match mode % 3 {
        0 | 1 => {
            let n = rest.len().min(BLOCK_BYTES);
            h[..n].copy_from_slice(&rest[..n]);
            if mode % 3 == 1 {
                h[..8].copy_from_slice(&MAGIC);
                h[8..12].copy_from_slice(&VERSION.to_le_bytes());
                fix_crc(&mut h);
            }
        }
        _ => {
            let valid = Header {
                group: [0x42; 16],
                ctime: 7,
                slot: 2,
                region_sectors: 1 << 17,
                regions: 40_000,
            };
            bitmap::encode_header::<Crc>(&valid, &mut h);
            // Patches are (offset, value) pairs into the header's fields.
            for p in rest.chunks_exact(2) {
                h[usize::from(p[0]) % 64] = p[1];
            }
            fix_crc(&mut h);
        }
    }
    Some(h)
}

fuzz_target!(|data: &[u8]| {
    let _ = bitmap::decode_header::<Crc>(data);
    let Some(h) = header(data) else {
        return;
    };
    let Ok(found) = bitmap::decode_header::<Crc>(&h) else {
        return;
    };
    assert_eq!(bitmap::check_header::<Crc>(&h, &found), Ok(()));
    let mut again = [0u8; BLOCK_BYTES];
    bitmap::encode_header::<Crc>(&found, &mut again);
    assert_eq!(bitmap::decode_header::<Crc>(&again), Ok(found));
    // The addressing the kernel does with it: every block of the bitmap in the slot.
    assert!(usize::from(found.slot) < BITMAP_SLOTS);
    assert!(found.regions > 0 && found.regions <= BITMAP_BITS);
    assert!(bitmap::header_sector(found.slot).is_some_and(|s| s < BITMAP_SECTOR));
    let blocks = bitmap::blocks(found.regions);
    let slot_end = BITMAP_SECTOR + (u64::from(found.slot) + 1) * BITMAP_SLOT_SECTORS;
    for b in 0..blocks {
        let s = bitmap::block_sector(found.slot, b).expect("every block is in the slot");
        assert!(s + bitmap::BLOCK_SECTORS <= slot_end);
    }
    let (last_block, byte, _) = bitmap::bit_of(found.regions - 1);
    assert!(last_block < blocks && byte < BLOCK_BYTES);
    // The input as one of its bitmap blocks: only regions of the bitmap, in order.
    let block = u64::from(data.first().copied().unwrap_or(0)) % (blocks + 1);
    let mut prev = None;
    for r in bitmap::set_regions(block, data, found.regions) {
        assert!(r < found.regions && r / BITS_PER_BLOCK == block);
        assert!(prev.is_none_or(|p| p < r));
        prev = Some(r);
    }
});
