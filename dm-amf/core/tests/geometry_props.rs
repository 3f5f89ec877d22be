// SPDX-License-Identifier: GPL-2.0
//! Property tests: geometry is a bijection, parity rebuilds any tolerated loss.

use amf_core::geometry::{Content, Geometry, Level, MemberSet, ReadPlan};
use amf_core::parity::{gen_p, gen_pq, recover_p, recover_pq};
use proptest::prelude::*;

fn level_and_members() -> impl Strategy<Value = (Level, usize)> {
    prop_oneof![
        (1usize..=8).prop_map(|n| (Level::Raid0, n)),
        (1usize..=5).prop_map(|n| (Level::Raid1, n)),
        (2usize..=8).prop_map(|n| (Level::Raid5, n)),
        (4usize..=9).prop_map(|n| (Level::Raid6, n)),
        (2u8..=3).prop_flat_map(|c| (c as usize..=7).prop_map(move |n| (Level::Raid10 { copies: c }, n))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every (member, sector) slot holds exactly one thing, and every logical sector's copies
    /// are exactly the slots that say they hold it.
    #[test]
    fn logical_physical_bijection((level, n) in level_and_members(), cs in 1u64..=4, rows in 1u64..=6) {
        let g = Geometry::new(level, n, cs, rows * cs).unwrap();
        let mut seen = std::collections::HashMap::<u64, usize>::new();
        let mut parity = std::collections::HashSet::new();
        for m in 0..n {
            for s in 0..rows * cs {
                match g.unmap(m, s).unwrap() {
                    Content::Data(l) => {
                        prop_assert!(l < g.logical_sectors());
                        let c = g.copies(l).unwrap();
                        prop_assert!(c.as_slice().iter().any(|p| p.member == m && p.sector == s));
                        *seen.entry(l).or_default() += 1;
                    }
                    Content::P(st) => { prop_assert!(parity.insert((st, 'P', s % cs))); prop_assert_eq!(g.layout(st).unwrap().p, Some(m)); }
                    Content::Q(st) => { prop_assert!(parity.insert((st, 'Q', s % cs))); prop_assert_eq!(g.layout(st).unwrap().q, Some(m)); }
                    Content::Unused => {}
                }
            }
        }
        for l in 0..g.logical_sectors() {
            let c = g.copies(l).unwrap();
            prop_assert_eq!(seen.get(&l).copied().unwrap_or(0), c.as_slice().len());
            for p in c.as_slice() {
                prop_assert_eq!(g.unmap(p.member, p.sector).unwrap(), Content::Data(l));
            }
            let loc = g.map(l).unwrap();
            prop_assert_eq!((loc.member, loc.member_sector), (c.as_slice()[0].member, c.as_slice()[0].sector));
            let lay = g.layout(loc.stripe).unwrap();
            prop_assert_eq!(lay.data_member(loc.chunk), Some(loc.member));
        }
        prop_assert_eq!(parity.len() as u64, g.stripes() * g.parity_chunks() as u64 * cs);
    }

    /// Any one lost RAID5 chunk rebuilds.
    #[test]
    fn raid5_rebuilds_any_one(k in 1usize..=8, len in 1usize..=32, seed in any::<u64>(), lost_pick in any::<usize>()) {
        let data = chunks(k, len, seed);
        let mut p = vec![0u8; len];
        gen_p(&refs(&data), &mut p).unwrap();
        let mut all: Vec<Vec<u8>> = data.clone();
        all.push(p);
        let lost = lost_pick % (k + 1);
        let want = all[lost].clone();
        all[lost].fill(0xA5);
        let mut m: Vec<&mut [u8]> = all.iter_mut().map(|c| c.as_mut_slice()).collect();
        recover_p(&mut m, lost).unwrap();
        prop_assert_eq!(&all[lost], &want);
    }

    /// Any two lost RAID6 chunks (data, P or Q) rebuild.
    #[test]
    fn raid6_rebuilds_any_two(k in 2usize..=12, len in 1usize..=32, seed in any::<u64>(), a in any::<usize>(), b in any::<usize>()) {
        let data = chunks(k, len, seed);
        let (mut p, mut q) = (vec![0u8; len], vec![0u8; len]);
        gen_pq(&refs(&data), &mut p, &mut q).unwrap();
        let mut all = data.clone();
        all.push(p);
        all.push(q);
        let want = all.clone();
        let a = a % (k + 2);
        let mut b = b % (k + 2);
        if b == a { b = (a + 1) % (k + 2); }
        all[a].fill(0x5A);
        all[b].fill(0x3C);
        let mut m: Vec<&mut [u8]> = all.iter_mut().map(|c| c.as_mut_slice()).collect();
        recover_pq(&mut m, &[a, b]).unwrap();
        prop_assert_eq!(all, want);
    }

    /// A read plan with tolerated failures reads only live members and yields the data.
    #[test]
    fn degraded_reads_reconstruct(n in 4usize..=8, raid6 in any::<bool>(), f1 in any::<usize>(), f2 in any::<usize>(), sector in any::<u64>()) {
        let level = if raid6 { Level::Raid6 } else { Level::Raid5 };
        let cs = 2u64;
        let g = Geometry::new(level, n, cs, 4 * cs).unwrap();
        let mut failed = MemberSet::single(f1 % n);
        if raid6 { failed = failed.with(f2 % n); }
        // Disk image: content byte of each member sector = a hash of what it holds.
        let disks = build_disks(&g, 4 * cs);
        let l = sector % g.logical_sectors();
        match g.read_plan(l, failed).unwrap() {
            ReadPlan::Direct(p) => {
                prop_assert!(!failed.contains(p.member));
                prop_assert_eq!(disks[p.member][p.sector as usize], byte_of(l));
            }
            ReadPlan::Reconstruct { stripe, chunk, sources, member_sector } => {
                prop_assert_eq!(sources.0 & failed.0, 0);
                let lay = g.layout(stripe).unwrap();
                let k = lay.data_members().len();
                let mut col: Vec<Vec<u8>> = vec![vec![0u8]; k + g.parity_chunks()];
                let mut members: Vec<usize> = lay.data_members().iter().map(|m| *m as usize).collect();
                members.push(lay.p.unwrap());
                if let Some(q) = lay.q { members.push(q); }
                let mut lost = vec![];
                for (i, m) in members.iter().enumerate() {
                    if sources.contains(*m) { col[i][0] = disks[*m][member_sector as usize]; } else { lost.push(i); }
                }
                let mut refs: Vec<&mut [u8]> = col.iter_mut().map(|c| c.as_mut_slice()).collect();
                if raid6 { recover_pq(&mut refs, &lost).unwrap(); } else { prop_assert_eq!(lost.len(), 1); recover_p(&mut refs, lost[0]).unwrap(); }
                prop_assert_eq!(col[chunk][0], byte_of(l));
            }
        }
    }
}

fn byte_of(l: u64) -> u8 {
    (l.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

fn build_disks(g: &Geometry, sectors: u64) -> Vec<Vec<u8>> {
    let n = g.members();
    let mut disks = vec![vec![0u8; sectors as usize]; n];
    for (m, disk) in disks.iter_mut().enumerate() {
        for (s, b) in disk.iter_mut().enumerate() {
            if let Content::Data(l) = g.unmap(m, s as u64).unwrap() {
                *b = byte_of(l);
            }
        }
    }
    for st in 0..g.stripes() {
        let lay = g.layout(st).unwrap();
        for off in 0..g.chunk_sectors() {
            let s = (lay.member_sector + off) as usize;
            let data: Vec<Vec<u8>> = lay
                .data_members()
                .iter()
                .map(|m| vec![disks[*m as usize][s]])
                .collect();
            let (mut p, mut q) = (vec![0u8], vec![0u8]);
            if let Some(qm) = lay.q {
                gen_pq(&refs(&data), &mut p, &mut q).unwrap();
                disks[qm][s] = q[0];
            } else {
                gen_p(&refs(&data), &mut p).unwrap();
            }
            disks[lay.p.unwrap()][s] = p[0];
        }
    }
    disks
}

fn chunks(k: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed | 1;
    (0..k)
        .map(|_| {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(|c| c.as_slice()).collect()
}
