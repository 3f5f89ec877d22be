// SPDX-License-Identifier: GPL-2.0

//! Load-time proof that the kernel's parity libraries and the core's reference maths agree.
//!
//! The data path computes parity with `xor_blocks` and the raid6 library; the userspace scrub
//! tool checks it with `amf-core`'s reference code. Were they ever to disagree (a new SIMD
//! routine, a misread layout), scrub would flag good stripes or pass bad ones. The module
//! therefore refuses to load unless, on this CPU, both give the same P and Q and the kernel's
//! recovery routines rebuild what the reference says, for several widths and lengths.

use kernel::prelude::*;

use crate::core_proto::parity as reference;
use crate::kernel_ext::parity::{self as kparity, BlockError};

/// Longest block: several pages, since the raid6 recovery routines work a page at a time.
const BLOCK: usize = 16384;
/// Data blocks at most; the buffer then holds kernel P, Q and reference P, Q.
const DATA: usize = 4;

/// One byte of the deterministic test pattern of data block `blk`.
fn pattern(seed: u64, blk: usize, j: usize) -> u8 {
    // splitmix64 of (seed, block, 8-byte word), one byte of it.
    let mut z = seed
        .wrapping_add((blk as u64) << 40)
        .wrapping_add((j / 8) as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> ((j % 8) * 8)) as u8
}

fn matches_pattern(buf: &[u8], seed: u64, blk: usize) -> bool {
    buf.iter()
        .enumerate()
        .all(|(j, &x)| x == pattern(seed, blk, j))
}

/// What went wrong, for the log.
#[derive(Debug)]
enum Mismatch {
    Kernel(BlockError),
    Reference,
    XorVsRaid6P,
    KernelVsReferenceP,
    KernelVsReferenceQ,
    TwoDataRecovery,
    DataPRecovery,
}

/// One stripe of `k` data blocks of `len` bytes: every comparison; returns cases checked.
fn check_stripe(v: &mut [&mut [u8]], k: usize, len: usize, seed: u64) -> Result<u32, Mismatch> {
    let mut cases = 0;
    for (i, blk) in v.iter_mut().enumerate().take(k) {
        for (j, x) in blk[..len].iter_mut().enumerate() {
            *x = pattern(seed, i, j);
        }
    }
    let (data, parity) = v.split_at_mut(DATA);
    let (kpq, rpq) = parity.split_at_mut(2);

    // Kernel P+Q with gen_syndrome over D_0..D_{k-1}, P, Q.
    {
        let mut set = KVec::with_capacity(k + 2, GFP_KERNEL).map_err(|_| Mismatch::Reference)?;
        for d in data.iter_mut().take(k) {
            set.push(&mut d[..len], GFP_KERNEL)
                .map_err(|_| Mismatch::Reference)?;
        }
        let (kp, kq) = kpq.split_at_mut(1);
        set.push(&mut kp[0][..len], GFP_KERNEL)
            .map_err(|_| Mismatch::Reference)?;
        set.push(&mut kq[0][..len], GFP_KERNEL)
            .map_err(|_| Mismatch::Reference)?;
        kparity::gen_syndrome(set.iter_mut().map(|b| Some(&mut **b))).map_err(Mismatch::Kernel)?;
    }

    // Kernel P again with xor_blocks: D_0 ^ ... into the reference-P slot, compared, then the
    // reference P+Q over the same data.
    {
        let (rp, rq) = rpq.split_at_mut(1);
        rp[0][..len].copy_from_slice(&data[0][..len]);
        let mut srcs = KVec::with_capacity(k, GFP_KERNEL).map_err(|_| Mismatch::Reference)?;
        for d in data.iter().take(k).skip(1) {
            srcs.push(&d[..len], GFP_KERNEL)
                .map_err(|_| Mismatch::Reference)?;
        }
        kparity::xor_into(&mut rp[0][..len], srcs.iter().map(|s| Some(*s)))
            .map_err(Mismatch::Kernel)?;
        if rp[0][..len] != kpq[0][..len] {
            return Err(Mismatch::XorVsRaid6P);
        }
        cases += 1;
        drop(srcs);
        let mut srcs = KVec::with_capacity(k, GFP_KERNEL).map_err(|_| Mismatch::Reference)?;
        for d in data.iter().take(k) {
            srcs.push(&d[..len], GFP_KERNEL)
                .map_err(|_| Mismatch::Reference)?;
        }
        reference::gen_pq(&srcs, &mut rp[0][..len], &mut rq[0][..len])
            .map_err(|_| Mismatch::Reference)?;
        if rp[0][..len] != kpq[0][..len] {
            return Err(Mismatch::KernelVsReferenceP);
        }
        if rq[0][..len] != kpq[1][..len] {
            return Err(Mismatch::KernelVsReferenceQ);
        }
        cases += 2;
    }

    // Kernel recovery of every pair of data blocks, and of each data block with P.
    for a in 0..k {
        for b in (a + 1)..k {
            data[a][..len].fill(0);
            data[b][..len].fill(0);
            recover(data, kpq, k, len, |set| {
                kparity::recover_two_data(set.iter_mut().map(|b| Some(&mut **b)), a, b)
            })?;
            if !matches_pattern(&data[a][..len], seed, a)
                || !matches_pattern(&data[b][..len], seed, b)
            {
                return Err(Mismatch::TwoDataRecovery);
            }
            cases += 1;
        }
        data[a][..len].fill(0);
        kpq[0][..len].fill(0);
        recover(data, kpq, k, len, |set| {
            kparity::recover_data_and_p(set.iter_mut().map(|b| Some(&mut **b)), a)
        })?;
        if !matches_pattern(&data[a][..len], seed, a) || kpq[0][..len] != rpq[0][..len] {
            return Err(Mismatch::DataPRecovery);
        }
        cases += 1;
    }
    Ok(cases)
}

/// Runs a kernel recovery routine over D_0..D_{k-1}, P, Q.
fn recover(
    data: &mut [&mut [u8]],
    kpq: &mut [&mut [u8]],
    k: usize,
    len: usize,
    f: impl FnOnce(&mut [&mut [u8]]) -> Result<(), BlockError>,
) -> Result<(), Mismatch> {
    let mut set = KVec::with_capacity(k + 2, GFP_KERNEL).map_err(|_| Mismatch::Reference)?;
    for d in data.iter_mut().take(k) {
        set.push(&mut d[..len], GFP_KERNEL)
            .map_err(|_| Mismatch::Reference)?;
    }
    for p in kpq.iter_mut() {
        set.push(&mut p[..len], GFP_KERNEL)
            .map_err(|_| Mismatch::Reference)?;
    }
    f(&mut set).map_err(Mismatch::Kernel)
}

/// Runs the comparison for 2..=4 data blocks and three block lengths (up to four pages).
pub(crate) fn self_test() -> Result {
    // 8 x 16 KiB = 128 KiB: above the kmalloc caches, so page-aligned, which the SIMD
    // routines need (the wrappers check it too).
    let mut buf = KVec::from_elem(0u8, (DATA + 4) * BLOCK, GFP_KERNEL)?;
    let mut v = KVec::with_capacity(DATA + 4, GFP_KERNEL)?;
    for blk in buf.chunks_exact_mut(BLOCK) {
        v.push(blk, GFP_KERNEL)?;
    }
    let mut cases = 0;
    for k in 2..=DATA {
        for (n, len) in [512, 4096, BLOCK].into_iter().enumerate() {
            let seed = (k * 16 + n) as u64;
            match check_stripe(&mut v, k, len, seed) {
                Ok(c) => cases += c,
                Err(m) => {
                    if let Mismatch::Kernel(e) = &m {
                        pr_err!(
                            "dm-amf: the kernel parity wrapper refused the call: {:?}\n",
                            e
                        );
                    }
                    pr_err!(
                        "dm-amf: parity self-test FAILED: {:?} ({} data blocks of {} bytes, raid6 {})\n",
                        m,
                        k,
                        len,
                        kparity::raid6_algorithm()
                    );
                    return Err(EIO);
                }
            }
        }
    }
    pr_info!(
        "dm-amf: parity self-test passed: kernel xor/raid6 ({}) and the core agree on {} cases\n",
        kparity::raid6_algorithm(),
        cases
    );
    Ok(())
}
