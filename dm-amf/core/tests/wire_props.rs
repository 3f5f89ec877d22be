// SPDX-License-Identifier: GPL-2.0
//! Property tests of the wire codec: arbitrary bytes never panic; records round-trip;
//! any single-byte corruption of a valid frame is refused.

use amf_core::wire::{
    decode, encode, Block, Body, Crc32c, Message, OpKind, RecordHeader, Role, Step,
};
use proptest::prelude::*;

struct Crc;
impl Crc32c for Crc {
    fn crc32c(data: &[u8]) -> u32 {
        crc32c::crc32c(data)
    }
}

fn roles() -> impl Strategy<Value = (Role, u8)> {
    prop_oneof![
        (0u8..64).prop_map(|i| (Role::NewData, i)),
        (0u8..64).prop_map(|i| (Role::OldData, i)),
        Just((Role::NewP, 0)),
        Just((Role::NewQ, 0)),
        Just((Role::OldP, 0)),
        Just((Role::OldQ, 0)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode::<Crc>(&bytes);
    }

    #[test]
    fn records_roundtrip_and_corruption_is_refused(
        op_id in any::<u64>(), generation in any::<u64>(), stripe in any::<u64>(),
        blocks in proptest::collection::vec((roles(), proptest::collection::vec(any::<u8>(), 0..40)), 0..6),
        flip in any::<(usize, u8)>(),
    ) {
        let h = RecordHeader { op_id, generation, stripe, owner: 1, step: Step::Intent,
            kind: OpKind::ReconstructWrite, offset: 0, sectors: 1, chunks: 1 };
        let bl: Vec<Block> = blocks.iter().map(|((r, i), b)| Block { role: *r, index: *i, bytes: b }).collect();
        let mut buf = vec![0u8; 4096];
        let n = encode::<Crc>(&Message::Record(h, &bl), 1, 9, None, &mut buf).unwrap();
        let (f, used) = decode::<Crc>(&buf[..n]).unwrap();
        prop_assert_eq!(used, n);
        match f.body {
            Body::Record(r) => {
                prop_assert_eq!(r.header, h);
                prop_assert_eq!(r.blocks().collect::<Vec<_>>(), bl);
            }
            _ => prop_assert!(false, "not a record"),
        }
        let (at, x) = (flip.0 % n, flip.1 | 1);
        buf[at] ^= x;
        prop_assert!(decode::<Crc>(&buf[..n]).is_err());
    }
}
