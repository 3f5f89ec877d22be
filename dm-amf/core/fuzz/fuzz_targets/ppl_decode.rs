// SPDX-License-Identifier: GPL-2.0
//! Fuzz the partial parity log's header reader: any bytes must decode or fail with a typed
//! error, never panic. The first two input bytes pick the group's geometry (RAID5 or RAID6,
//! members, chunk size, stripes) and how the rest becomes a header: raw bytes, raw bytes
//! with a valid magic, version and CRC spliced in (so the field checks are reached), or a
//! valid entry with fuzzer-chosen values in whole fields, re-checksummed. Whatever decodes goes
//! through the arithmetic the kernel does on it (the next sequence numbers, the partial
//! parity's length, the entry's rows and byte range) and must stay in the slot and in the
//! geometry.
#![no_main]

use amf_core::geometry::{Geometry, Level};
use amf_core::ppl::{
    self, Entry, EntryState, HEADER_BYTES, MAGIC, PP_SECTORS, SEQ_MAX, SLOT_SECTORS, VERSION,
};
use amf_core::wire::Crc32c;
use libfuzzer_sys::fuzz_target;

struct Crc;
impl Crc32c for Crc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

const GROUP: [u8; 16] = [0x42; 16];
const CTIME: u64 = 7;
const SLOT: u8 = 3;
const CRC_OFFSET: usize = HEADER_BYTES - 4;
/// (offset, width) of the header's fields after the version.
const FIELDS: [(usize, usize); 11] = [
    (16, 8),
    (32, 8),
    (40, 1),
    (41, 1),
    (42, 1),
    (48, 8),
    (56, 8),
    (64, 4),
    (68, 4),
    (72, 8),
    (80, 4),
];

fn fix_crc(h: &mut [u8; HEADER_BYTES]) {
    let crc = crc32c::crc32c(&h[..CRC_OFFSET]);
    h[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
}

/// RAID5 over 3..=10 or RAID6 over 4..=11, chunks of 8..=1024 sectors, 1..=64 stripes.
fn geometry(pick: u8) -> Geometry {
    let raid6 = pick & 1 == 1;
    let members = 3 + usize::from(pick >> 1 & 7) + usize::from(raid6);
    let chunk = 8u64 << (pick >> 4 & 7);
    let stripes = 1 + u64::from(pick >> 2 & 63);
    let level = if raid6 { Level::Raid6 } else { Level::Raid5 };
    Geometry::new(level, members, chunk, chunk * stripes).expect("a valid geometry")
}

fn base(g: &Geometry) -> [u8; HEADER_BYTES] {
    let parity = g.parity_chunks() as u8;
    let e = Entry {
        group: GROUP,
        ctime: CTIME,
        slot: SLOT,
        state: EntryState::Live,
        seq: 5,
        stripe: g.stripes() - 1,
        offset: 0,
        sectors: 8,
        written: 1,
        parity,
        pp_crc: 0,
    };
    let mut h = [0u8; HEADER_BYTES];
    ppl::encode::<Crc>(&e, &mut h);
    h
}

fn header(mode: u8, g: &Geometry, rest: &[u8]) -> [u8; HEADER_BYTES] {
    match mode % 3 {
        0 | 1 => {
            let mut h = [0u8; HEADER_BYTES];
            let n = rest.len().min(HEADER_BYTES);
            h[..n].copy_from_slice(&rest[..n]);
            if mode % 3 == 1 {
                h[..8].copy_from_slice(&MAGIC);
                h[8..12].copy_from_slice(&VERSION.to_le_bytes());
                fix_crc(&mut h);
            }
            h
        }
        _ => {
            // Patches are (field, u64 LE) nine-byte groups: the value's low bytes replace a
            // whole field of a valid entry, so extreme values (u64::MAX) are one mutation.
            let mut h = base(g);
            for p in rest.chunks_exact(9) {
                let (at, width) = FIELDS[usize::from(p[0]) % FIELDS.len()];
                h[at..at + width].copy_from_slice(&p[1..1 + width]);
            }
            fix_crc(&mut h);
            h
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[mode, pick], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let g = geometry(pick);
    let _ = ppl::decode::<Crc>(rest, &GROUP, CTIME, SLOT, &g);
    let h = header(mode, &g, rest);
    let Ok(e) = ppl::decode::<Crc>(&h, &GROUP, CTIME, SLOT, &g) else {
        return;
    };
    // What the kernel's load and the replay compute from it.
    assert!(e.seq <= SEQ_MAX);
    if let Some(next) = ppl::next_seq(e.seq) {
        assert!(next > e.seq && next <= SEQ_MAX);
    }
    let pp = e.pp_bytes();
    assert!(pp > 0 && pp as u64 <= PP_SECTORS * 512);
    assert!(HEADER_BYTES + pp <= (SLOT_SECTORS * 512) as usize);
    let span = e.span(&g).expect("a decoded entry fits its geometry");
    assert_eq!(span.layout.member_sector, e.stripe * g.chunk_sectors());
    assert!(span.sector + span.sectors <= g.stripes() * g.chunk_sectors());
    assert_eq!(span.bytes.len() as u64, span.sectors * 512);
    assert!(span.bytes.end as u64 <= g.chunk_sectors() * 512);
    assert!(span.bytes.len() * usize::from(e.parity) <= pp);
    assert!(ppl::slot_sector(e.slot).is_some());
    // It re-encodes to itself, and so does the header that retires it.
    let mut again = [0u8; HEADER_BYTES];
    ppl::encode::<Crc>(&e, &mut again);
    assert_eq!(ppl::decode::<Crc>(&again, &GROUP, CTIME, SLOT, &g), Ok(e));
    if let Some(seq) = ppl::next_seq(e.seq) {
        let retired = Entry {
            state: EntryState::Retired,
            seq,
            offset: 0,
            sectors: 8,
            written: 0,
            pp_crc: 0,
            ..e
        };
        ppl::encode::<Crc>(&retired, &mut again);
        let back = ppl::decode::<Crc>(&again, &GROUP, CTIME, SLOT, &g);
        assert!(back.is_ok_and(|r| r.newer_than(&e)));
    }
});
