// SPDX-License-Identifier: GPL-2.0
//! Reference parity maths: XOR (P) and the RAID6 Q syndrome over GF(2^8).
//!
//! Definitions follow md/lib/raid6 exactly so userspace scrub and tests agree with the
//! kernel's `xor_blocks` and `raid6_call.gen_syndrome`: the field is GF(2^8) with polynomial
//! 0x11d and generator {02}; `P = D_0 ^ ... ^ D_{k-1}`; `Q = sum g^i * D_i` where `D_i` is the
//! i-th data chunk of the stripe in md's syndrome order (which is the data chunk order of
//! [`super::geometry::StripeLayout::data_members`]). This is a byte-at-a-time reference, not the
//! data path: the kernel uses its own SIMD libraries.

use super::geometry::MAX_MEMBERS;

/// Why a parity computation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParityError {
    /// Buffers of different lengths.
    LengthMismatch,
    /// More chunks than [`MAX_MEMBERS`] or fewer than the level needs.
    BadChunkCount,
    /// A lost index outside the chunk list, or listed twice.
    BadIndex,
    /// More lost chunks than the parity can rebuild.
    TooManyLost,
}

const fn gf_mul_slow(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            r ^= a;
        }
        let carry = a & 0x80;
        a <<= 1;
        if carry != 0 {
            a ^= 0x1d;
        }
        b >>= 1;
    }
    r
}

const fn build_exp() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut x = 1u8;
    let mut i = 0;
    while i < 255 {
        t[i] = x;
        x = gf_mul_slow(x, 2);
        i += 1;
    }
    t[255] = t[0];
    t
}

const fn build_log() -> [u8; 256] {
    let exp = build_exp();
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 255 {
        t[exp[i] as usize] = i as u8;
        i += 1;
    }
    t
}

static GF_EXP: [u8; 256] = build_exp();
static GF_LOG: [u8; 256] = build_log();

/// {02}^`e` in GF(2^8) (the RAID6 coefficient of data chunk `e`).
pub fn gf_exp2(e: usize) -> u8 {
    GF_EXP.get(e % 255).copied().unwrap_or(0)
}

fn gf_log(a: u8) -> usize {
    GF_LOG.get(a as usize).copied().unwrap_or(0) as usize
}

/// Product of `a` and `b` in GF(2^8) mod 0x11d.
pub fn gf_mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    gf_exp2(gf_log(a) + gf_log(b))
}

/// Multiplicative inverse of `a` (0 for 0).
pub fn gf_inv(a: u8) -> u8 {
    if a == 0 {
        return 0;
    }
    gf_exp2(255 - gf_log(a))
}

/// `dst ^= src`.
pub fn xor_into(dst: &mut [u8], src: &[u8]) -> Result<(), ParityError> {
    if dst.len() != src.len() {
        return Err(ParityError::LengthMismatch);
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= *s;
    }
    Ok(())
}

/// `dst ^= coef * src` in GF(2^8).
pub fn mul_xor_into(dst: &mut [u8], src: &[u8], coef: u8) -> Result<(), ParityError> {
    if dst.len() != src.len() {
        return Err(ParityError::LengthMismatch);
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= gf_mul(coef, *s);
    }
    Ok(())
}

fn check_lengths(data: &[&[u8]], len: usize) -> Result<(), ParityError> {
    if data.len() > MAX_MEMBERS {
        return Err(ParityError::BadChunkCount);
    }
    if data.iter().any(|d| d.len() != len) {
        return Err(ParityError::LengthMismatch);
    }
    Ok(())
}

/// P = XOR of the data chunks.
pub fn gen_p(data: &[&[u8]], p: &mut [u8]) -> Result<(), ParityError> {
    check_lengths(data, p.len())?;
    p.fill(0);
    for d in data {
        xor_into(p, d)?;
    }
    Ok(())
}

/// P and Q of the data chunks (at least one data chunk).
pub fn gen_pq(data: &[&[u8]], p: &mut [u8], q: &mut [u8]) -> Result<(), ParityError> {
    if data.is_empty() {
        return Err(ParityError::BadChunkCount);
    }
    if p.len() != q.len() {
        return Err(ParityError::LengthMismatch);
    }
    gen_p(data, p)?;
    q.fill(0);
    // Horner from the highest data chunk down, like lib/raid6/int.uc.
    for d in data.iter().rev() {
        for (qb, db) in q.iter_mut().zip(d.iter()) {
            *qb = gf_mul(*qb, 2) ^ *db;
        }
    }
    Ok(())
}

/// Update P and Q in place for data chunk `index` changing from `old` to `new`
/// (the read-modify-write identity: `P ^= old ^ new`, `Q ^= g^index * (old ^ new)`).
pub fn update_pq(
    index: usize,
    old: &[u8],
    new: &[u8],
    p: &mut [u8],
    q: Option<&mut [u8]>,
) -> Result<(), ParityError> {
    let len = p.len();
    if old.len() != len || new.len() != len || q.as_ref().is_some_and(|q| q.len() != len) {
        return Err(ParityError::LengthMismatch);
    }
    if index >= MAX_MEMBERS {
        return Err(ParityError::BadIndex);
    }
    let coef = gf_exp2(index);
    match q {
        Some(q) => {
            for (((pb, qb), o), n) in p.iter_mut().zip(q.iter_mut()).zip(old).zip(new) {
                *pb ^= *o ^ *n;
                *qb ^= gf_mul(coef, *o ^ *n);
            }
        }
        None => {
            for ((pb, o), n) in p.iter_mut().zip(old).zip(new) {
                *pb ^= *o ^ *n;
            }
        }
    }
    Ok(())
}

fn common_len(chunks: &[&mut [u8]]) -> Result<usize, ParityError> {
    let len = chunks.first().map(|c| c.len()).unwrap_or(0);
    if chunks.iter().any(|c| c.len() != len) {
        return Err(ParityError::LengthMismatch);
    }
    Ok(len)
}

/// Rebuild chunk `lost` of a RAID5 stripe in place. `chunks` is `D_0 .. D_{k-1}, P`.
pub fn recover_p(chunks: &mut [&mut [u8]], lost: usize) -> Result<(), ParityError> {
    if chunks.len() < 2 || chunks.len() > MAX_MEMBERS {
        return Err(ParityError::BadChunkCount);
    }
    if lost >= chunks.len() {
        return Err(ParityError::BadIndex);
    }
    let len = common_len(chunks)?;
    for pos in 0..len {
        let mut x = 0u8;
        for (i, c) in chunks.iter().enumerate() {
            if i != lost {
                x ^= c.get(pos).copied().unwrap_or(0);
            }
        }
        if let Some(b) = chunks.get_mut(lost).and_then(|c| c.get_mut(pos)) {
            *b = x;
        }
    }
    Ok(())
}

/// Rebuild up to two lost chunks of a RAID6 stripe in place.
/// `chunks` is `D_0 .. D_{k-1}, P, Q`; `lost` lists indexes into it.
pub fn recover_pq(chunks: &mut [&mut [u8]], lost: &[usize]) -> Result<(), ParityError> {
    let n = chunks.len();
    if !(3..=MAX_MEMBERS).contains(&n) {
        return Err(ParityError::BadChunkCount);
    }
    let k = n - 2;
    let (a, b) = match *lost {
        [] => return Ok(()),
        [a] => (a, None),
        [a, b] if a != b => (a.min(b), Some(a.max(b))),
        [_, _] => return Err(ParityError::BadIndex),
        _ => return Err(ParityError::TooManyLost),
    };
    if a >= n || b.is_some_and(|b| b >= n) {
        return Err(ParityError::BadIndex);
    }
    let is_lost = |i: usize| i == a || Some(i) == b;
    let len = common_len(chunks)?;
    let mut col = [0u8; MAX_MEMBERS];
    for pos in 0..len {
        for (slot, c) in col.iter_mut().zip(chunks.iter()) {
            *slot = c.get(pos).copied().unwrap_or(0);
        }
        // Partial syndromes over the surviving data chunks.
        let mut ps = 0u8;
        let mut qs = 0u8;
        for (i, d) in col.iter().take(k).enumerate() {
            if !is_lost(i) {
                ps ^= *d;
                qs ^= gf_mul(gf_exp2(i), *d);
            }
        }
        let p = col.get(k).copied().unwrap_or(0);
        let q = col.get(k + 1).copied().unwrap_or(0);
        match (a < k, b.map(|b| b < k)) {
            // Two data chunks: solve Dx ^ Dy = P', g^x Dx ^ g^y Dy = Q'.
            (true, Some(true)) => {
                let y = b.unwrap_or(0);
                let pxy = p ^ ps;
                let qxy = q ^ qs;
                let gx = gf_exp2(a);
                let gy = gf_exp2(y);
                let dx = gf_mul(qxy ^ gf_mul(gy, pxy), gf_inv(gx ^ gy));
                set(&mut col, a, dx);
                set(&mut col, y, pxy ^ dx);
            }
            // One data chunk and P, or a data chunk alone when P survives.
            (true, _) => {
                if b == Some(k) {
                    let dx = gf_mul(q ^ qs, gf_inv(gf_exp2(a)));
                    set(&mut col, a, dx);
                } else {
                    set(&mut col, a, p ^ ps);
                }
            }
            // Only parity lost: recomputed below.
            (false, _) => {}
        }
        let mut np = 0u8;
        let mut nq = 0u8;
        for (i, d) in col.iter().take(k).enumerate() {
            np ^= *d;
            nq ^= gf_mul(gf_exp2(i), *d);
        }
        if is_lost(k) {
            set(&mut col, k, np);
        }
        if is_lost(k + 1) {
            set(&mut col, k + 1, nq);
        }
        for (i, c) in chunks.iter_mut().enumerate() {
            if is_lost(i) {
                if let (Some(dst), Some(v)) = (c.get_mut(pos), col.get(i)) {
                    *dst = *v;
                }
            }
        }
    }
    Ok(())
}

fn set(col: &mut [u8; MAX_MEMBERS], i: usize, v: u8) {
    if let Some(s) = col.get_mut(i) {
        *s = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gf_basics() {
        assert_eq!(gf_exp2(0), 1);
        assert_eq!(gf_exp2(8), 0x1d);
        assert_eq!(gf_mul(0x80, 2), 0x1d);
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "{a}");
            for b in [1u8, 2, 3, 0x53, 0xff] {
                assert_eq!(gf_mul(a, b), gf_mul_slow(a, b));
            }
        }
    }

    #[test]
    fn q_matches_definition() {
        // Q = D0 ^ 2*D1 ^ 4*D2 for one byte.
        let d: [&[u8]; 3] = [&[0x11], &[0x80], &[0x03]];
        let (mut p, mut q) = ([0u8], [0u8]);
        gen_pq(&d, &mut p, &mut q).unwrap();
        assert_eq!(p[0], 0x11 ^ 0x80 ^ 0x03);
        assert_eq!(q[0], 0x11 ^ 0x1d ^ 0x0c);
    }

    #[test]
    fn update_matches_regeneration() {
        let mut d = [[1u8, 2, 3], [4, 5, 6], [7, 8, 9]];
        let (mut p, mut q) = ([0u8; 3], [0u8; 3]);
        gen_pq(&[&d[0], &d[1], &d[2]], &mut p, &mut q).unwrap();
        let new = [0xaa, 0xbb, 0xcc];
        update_pq(2, &d[2], &new, &mut p, Some(&mut q)).unwrap();
        d[2] = new;
        let (mut p2, mut q2) = ([0u8; 3], [0u8; 3]);
        gen_pq(&[&d[0], &d[1], &d[2]], &mut p2, &mut q2).unwrap();
        assert_eq!((p, q), (p2, q2));
    }

    #[test]
    fn rejects_bad_input() {
        let mut p = [0u8; 2];
        assert_eq!(
            gen_p(&[&[1, 2, 3]], &mut p),
            Err(ParityError::LengthMismatch)
        );
        let mut a = [0u8; 1];
        let mut b = [0u8; 1];
        let mut c = [0u8; 1];
        let mut chunks: [&mut [u8]; 3] = [&mut a, &mut b, &mut c];
        assert_eq!(recover_pq(&mut chunks, &[0, 0]), Err(ParityError::BadIndex));
        assert_eq!(recover_pq(&mut chunks, &[3]), Err(ParityError::BadIndex));
        assert_eq!(
            recover_pq(&mut chunks, &[0, 1, 2]),
            Err(ParityError::TooManyLost)
        );
        assert_eq!(recover_p(&mut chunks, 7), Err(ParityError::BadIndex));
    }
}
