// SPDX-License-Identifier: GPL-2.0
//! Property tests of the on-disk superblock: valid superblocks round-trip; any single-byte
//! corruption of a slot is refused; arbitrary bytes never panic; the A/B scheme never loses
//! the group to a torn write and never goes back to an older state once an update completed.

use amf_core::geometry::{Level, MemberSet, MAX_MEMBERS};
use amf_core::superblock::{
    choose, decode, default_region_sectors, encode, next_slot, validate_member_set, FormatParams,
    MemberEntry, MemberState, Superblock, Uuid, Verdict, Which, CRC_OFFSET, DATA_OFFSET_MIN, MAGIC,
    SLOT_SIZE, VERSION,
};
use amf_core::wire::Crc32c;
use proptest::prelude::*;

struct Crc;
impl Crc32c for Crc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

fn level_and_members() -> impl Strategy<Value = (Level, usize)> {
    prop_oneof![
        (1usize..=MAX_MEMBERS).prop_map(|n| (Level::Raid0, n)),
        (1usize..=MAX_MEMBERS).prop_map(|n| (Level::Raid1, n)),
        (2usize..=MAX_MEMBERS).prop_map(|n| (Level::Raid5, n)),
        (4usize..=MAX_MEMBERS).prop_map(|n| (Level::Raid6, n)),
        (2usize..=MAX_MEMBERS)
            .prop_flat_map(|n| (2u8..=n.min(8) as u8).prop_map(move |c| (c, n)))
            .prop_map(|(copies, n)| (Level::Raid10 { copies }, n)),
    ]
}

fn state() -> impl Strategy<Value = u64> {
    // 0: in sync, 1: failed, 2..: rebuilding at (value - 2) chunks.
    prop_oneof![Just(0u64), Just(1u64), 2u64..1000]
}

prop_compose! {
    fn superblock()((level, n) in level_and_members(), chunk_shift in 3u32..=21,
                    rows in 1u64..1_000_000, extra_offset in 0u64..100_000,
                    group in any::<[u8; 16]>(), seed in any::<u8>(),
                    events in any::<u64>(), ctime in any::<u64>(), utime in any::<u64>(),
                    role_pick in any::<usize>(), region_shift in 0u32..4,
                    states in proptest::collection::vec(state(), MAX_MEMBERS))
        -> Superblock
    {
        let chunk = 1u32 << chunk_shift;
        let data_sectors = rows * chunk as u64;
        let mut uuids: Vec<Uuid> = Vec::new();
        for i in 0..n {
            let mut u = [seed; 16];
            u[0] = i as u8;
            u[15] = 0x80;
            uuids.push(u);
        }
        let mut g = group;
        g[0] |= 1;
        let region = default_region_sectors(data_sectors, chunk).unwrap() << region_shift;
        let mut sb = Superblock::new(&FormatParams {
            group_uuid: g,
            level,
            chunk_sectors: chunk,
            member_uuids: &uuids,
            data_offset: DATA_OFFSET_MIN + extra_offset * 8,
            data_sectors,
            region_sectors: region,
            ctime,
        })
        .unwrap()
        .for_role(role_pick % n)
        .unwrap();
        sb.events = events;
        sb.utime = utime;
        for (role, s) in states.iter().enumerate().take(n) {
            let state = match s {
                0 => MemberState::InSync,
                1 => MemberState::Failed,
                k => MemberState::Rebuilding { checkpoint: ((k - 2) * chunk as u64).min(data_sectors) },
            };
            let uuid = sb.member(role).unwrap().uuid;
            assert!(sb.set_member(role, MemberEntry { state, uuid }));
        }
        sb
    }
}

fn enc(sb: &Superblock) -> [u8; SLOT_SIZE] {
    let mut out = [0u8; SLOT_SIZE];
    encode::<Crc>(sb, &mut out).expect("a valid superblock encodes");
    out
}

/// What a torn 4 KiB write leaves: for each 512-byte sector, the new or the old contents.
fn tear(old: &[u8; SLOT_SIZE], new: &[u8; SLOT_SIZE], sectors_written: u8) -> [u8; SLOT_SIZE] {
    let mut out = *old;
    for s in 0..8 {
        if sectors_written & (1 << s) != 0 {
            out[s * 512..(s + 1) * 512].copy_from_slice(&new[s * 512..(s + 1) * 512]);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn roundtrip(sb in superblock()) {
        let b = enc(&sb);
        prop_assert_eq!(decode::<Crc>(&b), Ok(sb));
        // Encoding overwrites every byte: a dirty buffer gives the same slot.
        let mut dirty = [0xffu8; SLOT_SIZE];
        encode::<Crc>(&sb, &mut dirty).unwrap();
        prop_assert_eq!(dirty, b);
    }

    #[test]
    fn any_single_byte_corruption_is_refused(sb in superblock(), at in 0usize..SLOT_SIZE,
                                              flip in 1u8..=255) {
        let mut b = enc(&sb);
        b[at] ^= flip;
        prop_assert!(decode::<Crc>(&b).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let _ = decode::<Crc>(&bytes);
    }

    /// Garbage behind a valid magic, version and CRC reaches every field check.
    #[test]
    fn checksummed_garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), SLOT_SIZE),
                                        small in proptest::collection::vec(0u8..4, SLOT_SIZE)) {
        // Mostly-small bytes make plausible counts and states more likely.
        for (b, s) in bytes.iter_mut().zip(&small) {
            if *s != 0 { *b = *s - 1; }
        }
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..CRC_OFFSET]);
        bytes[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        if let Ok(sb) = decode::<Crc>(&bytes) {
            // Whatever decodes encodes back to a slot that decodes the same.
            prop_assert_eq!(decode::<Crc>(&enc(&sb)), Ok(sb));
        }
    }

    /// A member goes through a series of updates, each written to `next_slot`; any of them may
    /// be torn (any subset of its eight sectors lands). After every write the winner is the
    /// last completed update or the one just written (if it landed whole), never older, and
    /// the group is never lost.
    #[test]
    fn ab_updates_survive_torn_writes(sb in superblock(),
                                      writes in proptest::collection::vec(any::<(bool, u8)>(), 1..12)) {
        let mut first = sb;
        first.events = 1;
        let fresh = enc(&first);
        let mut slots = [fresh, fresh];
        let mut committed = first;
        let mut current = Which::A;
        for (i, (torn, mask)) in writes.iter().enumerate() {
            let mut next = committed;
            next.events = committed.events + 1;
            next.utime = i as u64;
            if let Some(e) = next.member(0) {
                next.set_member(0, MemberEntry {
                    state: MemberState::Rebuilding { checkpoint: (i as u64 * 8).min(next.data_sectors) },
                    uuid: e.uuid,
                });
            }
            let target = next_slot(Some(current));
            prop_assert_ne!(target, current);
            let idx = if target == Which::A { 0 } else { 1 };
            let new = enc(&next);
            let old = slots[idx];
            slots[idx] = if *torn { tear(&slots[idx], &new, *mask) } else { new };
            let chosen = choose::<Crc>(&slots[0], &slots[1]);
            prop_assert!(chosen.is_ok(), "group lost: {:?}", chosen);
            let chosen = chosen.unwrap();
            let landed = slots[idx] == new;
            if landed {
                prop_assert_eq!(chosen.superblock, next);
                prop_assert_eq!(chosen.which, target);
                committed = next;
                current = target;
            } else {
                // The torn slot is refused (or untouched, if no sector landed), so the previous
                // state stands in the other slot.
                prop_assert_eq!(chosen.superblock, committed);
                prop_assert_eq!(chosen.which, current);
                prop_assert!(chosen.other.is_some() || slots[idx] == old);
            }
        }
    }

    /// Crash during a superblock update round: the new state reached an arbitrary subset of
    /// the members. The group always assembles; a member the round marked failed is failed
    /// iff some member got the round; no other member is counted as failed (the one-event
    /// margin); members that missed the round are reported `behind`.
    #[test]
    fn interrupted_rounds_never_lose_the_group(sb in superblock(), reached in any::<u64>(),
                                               fail_pick in any::<usize>(), do_fail in any::<bool>()) {
        let n = sb.member_count();
        let mut base = sb;
        for role in 0..n {
            let uuid = base.member(role).unwrap().uuid;
            base.set_member(role, MemberEntry { state: MemberState::InSync, uuid });
        }
        base.events = 10;
        let tolerated = base.geometry().unwrap().tolerated_failures();
        let failed = fail_pick % n;
        let do_fail = do_fail && tolerated > 0;
        let mut next = base;
        next.events = 11;
        if do_fail {
            let uuid = next.member(failed).unwrap().uuid;
            next.set_member(failed, MemberEntry { state: MemberState::Failed, uuid });
        }
        let mut sbs = Vec::new();
        let mut got = MemberSet::EMPTY;
        for role in 0..n {
            // A member being failed is not written.
            let write = reached >> (role % 64) & 1 == 1 && !(do_fail && role == failed);
            if write { got = got.with(role); }
            sbs.push(Some(if write { next } else { base }.for_role(role).unwrap()));
        }
        let r = validate_member_set(Some(&base.group_uuid), &sbs);
        prop_assert!(r.is_ok(), "{:?}", r);
        let r = r.unwrap();
        let expect_failed = do_fail && !got.is_empty();
        for role in 0..n {
            let want = if expect_failed && role == failed { Verdict::Failed } else { Verdict::InSync };
            prop_assert_eq!(r.verdict(role), Some(want));
        }
        if got.is_empty() {
            prop_assert_eq!(r.events, 10);
            prop_assert!(r.behind.is_empty());
        } else {
            prop_assert_eq!(r.events, 11);
            let mut behind = MemberSet::EMPTY;
            for role in 0..n {
                let failed_now = expect_failed && role == failed;
                if !got.contains(role) && !failed_now {
                    behind = behind.with(role);
                }
            }
            prop_assert_eq!(r.behind, behind);
        }
    }

    /// A member that missed two or more completed rounds is stale, never current.
    #[test]
    fn members_two_events_behind_are_stale(sb in superblock(), lag in 2u64..1000, pick in any::<usize>()) {
        let n = sb.member_count();
        let mut base = sb;
        for role in 0..n {
            let uuid = base.member(role).unwrap().uuid;
            base.set_member(role, MemberEntry { state: MemberState::InSync, uuid });
        }
        base.events = 1000;
        let stale = pick % n;
        let mut sbs: Vec<_> = (0..n).map(|r| base.for_role(r)).collect();
        let mut old = base.for_role(stale).unwrap();
        old.events -= lag;
        sbs[stale] = Some(old);
        let r = validate_member_set(Some(&base.group_uuid), &sbs);
        let tolerated = base.geometry().unwrap().tolerated_failures();
        if n == 1 {
            // The only member is its own authority.
            prop_assert!(r.is_ok());
        } else if tolerated == 0 {
            prop_assert!(r.is_err());
        } else {
            let r = r.unwrap();
            prop_assert_eq!(r.verdict(stale), Some(Verdict::Stale));
            prop_assert_eq!(r.unusable, MemberSet::single(stale));
        }
    }
}
