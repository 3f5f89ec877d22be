// SPDX-License-Identifier: GPL-2.0
//! Fuzz the superblock reader: any bytes must decode or fail with a typed error, never panic.
//! The first input byte picks how the rest becomes slots: raw 4 KiB slots, slots with a valid
//! magic, version and CRC spliced in (so the field checks are reached), or a valid superblock
//! patched at fuzzer-chosen offsets and re-checksummed. Whatever decodes must re-encode to a
//! slot that decodes the same; the decoded slots then go through `choose` and
//! `validate_member_set` as the constructor would use them.
#![no_main]

use amf_core::geometry::Level;
use amf_core::superblock::{
    self, FormatParams, Superblock, CRC_OFFSET, DATA_OFFSET_DEFAULT, MAGIC, SLOT_SIZE, VERSION,
};
use amf_core::wire::Crc32c;
use libfuzzer_sys::fuzz_target;

struct Crc;
impl Crc32c for Crc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

fn fix_crc(slot: &mut [u8; SLOT_SIZE]) {
    let crc = crc32c::crc32c(&slot[..CRC_OFFSET]);
    slot[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
}

fn base(role: usize) -> [u8; SLOT_SIZE] {
    let uuids = [[1u8; 16], [2; 16], [3; 16], [4; 16]];
    let sb = Superblock::new(&FormatParams {
        group_uuid: [0x42; 16],
        level: Level::Raid5,
        chunk_sectors: 128,
        member_uuids: &uuids,
        data_offset: DATA_OFFSET_DEFAULT,
        data_sectors: 1 << 20,
        region_sectors: 1 << 17,
        ctime: 1,
    })
    .expect("valid base")
    .for_role(role)
    .expect("role exists");
    let mut out = [0u8; SLOT_SIZE];
    superblock::encode::<Crc>(&sb, &mut out).expect("base encodes");
    out
}

fn slots(data: &[u8]) -> Vec<[u8; SLOT_SIZE]> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    match mode % 3 {
        0 | 1 => rest
            .chunks(SLOT_SIZE)
            .take(4)
            .map(|c| {
                let mut s = [0u8; SLOT_SIZE];
                s[..c.len()].copy_from_slice(c);
                if mode % 3 == 1 {
                    s[..8].copy_from_slice(&MAGIC);
                    s[8..12].copy_from_slice(&VERSION.to_le_bytes());
                    fix_crc(&mut s);
                }
                s
            })
            .collect(),
        _ => {
            // Four members of one group; patches are (slot, offset u16 LE, value) quads.
            let mut out: Vec<_> = (0..4).map(base).collect();
            for p in rest.chunks_exact(4) {
                let slot = (p[0] % 4) as usize;
                let at = u16::from_le_bytes([p[1], p[2]]) as usize % CRC_OFFSET;
                out[slot][at] = p[3];
            }
            for s in &mut out {
                fix_crc(s);
            }
            out
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = superblock::decode::<Crc>(data);
    let slots = slots(data);
    let mut decoded = Vec::new();
    for s in &slots {
        let d = superblock::decode::<Crc>(s);
        if let Ok(sb) = d {
            let mut again = [0u8; SLOT_SIZE];
            superblock::encode::<Crc>(&sb, &mut again).expect("a decoded superblock encodes");
            assert_eq!(superblock::decode::<Crc>(&again), Ok(sb));
            let _ = sb.geometry();
        }
        decoded.push(d.ok());
    }
    if slots.len() >= 2 {
        if let Ok(c) = superblock::choose::<Crc>(&slots[0], &slots[1]) {
            assert!(decoded[0].is_some() || decoded[1].is_some());
            let _ = superblock::next_slot(Some(c.which));
        }
    }
    if let Ok(r) = superblock::validate_member_set(None, &decoded) {
        assert_eq!(r.verdicts().len(), decoded.len());
        assert!(r.authority < decoded.len());
        if let Some(a) = &decoded[r.authority] {
            if let Some(next) = r.record_failures(a, 0) {
                assert_eq!(next.events, a.events + 1);
                let mut out = [0u8; SLOT_SIZE];
                superblock::encode::<Crc>(&next, &mut out).expect("a recorded round encodes");
            }
        }
    }
});
