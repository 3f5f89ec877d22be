// SPDX-License-Identifier: GPL-2.0

//! RAID parity through the kernel's own libraries, as md's raid5/raid6 use them:
//! `xor_blocks` (crypto/xor.c) for P and the raid6 library (lib/raid6) for P+Q and for
//! rebuilding lost blocks. Both pick the fastest SIMD routine for the CPU at boot.
//!
//! C headers: [`include/linux/raid/xor.h`](srctree/include/linux/raid/xor.h),
//! [`include/linux/raid/pq.h`](srctree/include/linux/raid/pq.h)
//!
//! The wrappers check what the C routines silently assume: equal block lengths, a multiple of
//! 512 bytes, SIMD-friendly alignment, sane block counts and distinct indexes.

use super::bindings as b;
use core::ptr;
use kernel::ffi::{c_int, c_uint, c_void};

/// Alignment the SIMD routines need for their aligned loads (AVX-512 uses 64 bytes).
pub(crate) const ALIGN: usize = 64;
/// Most blocks in one call (data + P + Q), matching the core's member limit.
pub(crate) const MAX_BLOCKS: usize = 64;

/// Why a parity call was refused; nothing was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockError {
    /// Blocks of different lengths, empty, not a multiple of 512 bytes, or too long.
    Length,
    /// A block not aligned to [`ALIGN`] bytes.
    Alignment,
    /// Too few or too many blocks for the operation.
    Count,
    /// A lost-block index out of range, not a data block, or given twice.
    Index,
}

/// Common checks; returns the block length.
fn check<'a>(blocks: impl Iterator<Item = &'a [u8]>) -> Result<usize, BlockError> {
    let mut len = None;
    for blk in blocks {
        if blk.as_ptr() as usize % ALIGN != 0 {
            return Err(BlockError::Alignment);
        }
        match len {
            None => len = Some(blk.len()),
            Some(l) if l != blk.len() => return Err(BlockError::Length),
            Some(_) => {}
        }
    }
    let len = len.ok_or(BlockError::Count)?;
    if len == 0 || len % 512 != 0 || len > u32::MAX as usize {
        return Err(BlockError::Length);
    }
    Ok(len)
}

/// `dest ^= srcs[0] ^ srcs[1] ^ ...` with `xor_blocks`, which takes at most
/// `MAX_XOR_BLOCKS` sources per call.
pub(crate) fn xor_into(dest: &mut [u8], srcs: &[&[u8]]) -> Result<(), BlockError> {
    if srcs.is_empty() || srcs.len() >= MAX_BLOCKS {
        return Err(BlockError::Count);
    }
    let len = check(core::iter::once(&*dest).chain(srcs.iter().copied()))?;
    for group in srcs.chunks(b::MAX_XOR_BLOCKS as usize) {
        let mut ptrs = [ptr::null_mut::<c_void>(); b::MAX_XOR_BLOCKS as usize];
        for (p, s) in ptrs.iter_mut().zip(group) {
            *p = s.as_ptr().cast_mut().cast();
        }
        // SAFETY: `dest` and every source are `len` bytes, aligned, and valid; `dest` is a
        // unique borrow so it overlaps no source; `xor_blocks` only reads the sources and
        // takes `group.len() <= MAX_XOR_BLOCKS` of them.
        unsafe {
            b::xor_blocks(
                group.len() as c_uint,
                len as c_uint,
                dest.as_mut_ptr().cast(),
                ptrs.as_mut_ptr(),
            )
        };
    }
    Ok(())
}

/// Collects raw pointers for the raid6 routines after the common checks.
fn raid6_ptrs(
    blocks: &mut [&mut [u8]],
    ptrs: &mut [*mut c_void; MAX_BLOCKS],
) -> Result<usize, BlockError> {
    if blocks.len() < 4 || blocks.len() > MAX_BLOCKS {
        return Err(BlockError::Count);
    }
    let len = check(blocks.iter().map(|b| &**b))?;
    for (p, blk) in ptrs.iter_mut().zip(blocks.iter_mut()) {
        *p = blk.as_mut_ptr().cast();
    }
    Ok(len)
}

/// Computes P and Q of a RAID6 stripe: `blocks` is `D_0 .. D_{n-3}, P, Q` (at least two data
/// blocks), the layout and generator of md's raid6.
pub(crate) fn gen_syndrome(blocks: &mut [&mut [u8]]) -> Result<(), BlockError> {
    let mut ptrs = [ptr::null_mut(); MAX_BLOCKS];
    let len = raid6_ptrs(blocks, &mut ptrs)?;
    // SAFETY: `raid6_call` is set once at boot by the raid6 library's algorithm selection
    // (before any module can call it) and never written again; reading a copy is sound.
    let calls = unsafe { ptr::addr_of!(b::raid6_call).read() };
    let gen = calls.gen_syndrome.ok_or(BlockError::Count)?;
    // SAFETY: `ptrs` holds `blocks.len()` distinct, aligned, `len`-byte buffers that we
    // borrow mutably for the call, in the order the routine expects (data, P, Q).
    unsafe { gen(blocks.len() as c_int, len, ptrs.as_mut_ptr()) };
    Ok(())
}

/// Whether the selected raid6 routines can update P and Q in place ([`xor_syndrome`]); md
/// disables read-modify-write for RAID6 when they cannot.
pub(crate) fn has_xor_syndrome() -> bool {
    // SAFETY: see `gen_syndrome`.
    unsafe { ptr::addr_of!(b::raid6_call).read() }
        .xor_syndrome
        .is_some()
}

/// Read-modify-write of RAID6 parity: `data` holds one block per data chunk, where blocks
/// `start..=stop` are the *change* (old XOR new) of each chunk (a zero block for a chunk that
/// did not change); `p` and `q` hold the old parity and become the new. Data blocks outside
/// `start..=stop` are not read, and the same block may be passed several times.
pub(crate) fn xor_syndrome(
    data: &[&[u8]],
    p: &mut [u8],
    q: &mut [u8],
    start: usize,
    stop: usize,
) -> Result<(), BlockError> {
    let disks = data.len() + 2;
    if start > stop || stop >= data.len() {
        return Err(BlockError::Index);
    }
    if !(4..=MAX_BLOCKS).contains(&disks) {
        return Err(BlockError::Count);
    }
    let len = check(data.iter().copied().chain([&*p, &*q]))?;
    let mut ptrs = [ptr::null_mut::<c_void>(); MAX_BLOCKS];
    for (ptr, blk) in ptrs.iter_mut().zip(data) {
        *ptr = blk.as_ptr().cast_mut().cast();
    }
    ptrs[disks - 2] = p.as_mut_ptr().cast();
    ptrs[disks - 1] = q.as_mut_ptr().cast();
    // SAFETY: see `gen_syndrome`.
    let calls = unsafe { ptr::addr_of!(b::raid6_call).read() };
    let xor = calls.xor_syndrome.ok_or(BlockError::Count)?;
    // SAFETY: every pointer is a valid, aligned `len`-byte block; the routine only reads the
    // data blocks (so shared and repeated ones are fine) and writes P and Q, which are
    // unique borrows distinct from the data.
    unsafe {
        xor(
            disks as c_int,
            start as c_int,
            stop as c_int,
            len,
            ptrs.as_mut_ptr(),
        )
    };
    Ok(())
}

/// Rebuilds data blocks `a` and `b` (both data, `a != b`) of a RAID6 stripe from the others.
pub(crate) fn recover_two_data(
    blocks: &mut [&mut [u8]],
    a: usize,
    b: usize,
) -> Result<(), BlockError> {
    let data = blocks.len().saturating_sub(2);
    if a == b || a >= data || b >= data {
        return Err(BlockError::Index);
    }
    let mut ptrs = [ptr::null_mut(); MAX_BLOCKS];
    let len = raid6_ptrs(blocks, &mut ptrs)?;
    // SAFETY: the raid6 library sets its recovery routine once at boot.
    let recov = unsafe { ptr::addr_of!(b::raid6_2data_recov).read() }.ok_or(BlockError::Count)?;
    per_page(&ptrs, blocks.len(), len, |page, bytes| {
        // SAFETY: as in `gen_syndrome`, for one page of every block; the routine wants
        // `faila < failb`.
        unsafe {
            recov(
                blocks.len() as c_int,
                bytes,
                a.min(b) as c_int,
                a.max(b) as c_int,
                page.as_mut_ptr(),
            )
        }
    });
    Ok(())
}

/// Runs a recovery routine page by page: the raid6 recovery routines stand the shared zero
/// page (`raid6_empty_zero_page`, one page long) in for the lost blocks, so, as md does, they
/// must never be given more than a page at once.
fn per_page(
    ptrs: &[*mut c_void; MAX_BLOCKS],
    n: usize,
    len: usize,
    mut f: impl FnMut(&mut [*mut c_void; MAX_BLOCKS], usize),
) {
    let page = kernel::page::PAGE_SIZE;
    let mut off = 0;
    while off < len {
        let bytes = page.min(len - off);
        let mut piece = [ptr::null_mut::<c_void>(); MAX_BLOCKS];
        for (dst, src) in piece.iter_mut().zip(ptrs.iter()).take(n) {
            *dst = src.cast::<u8>().wrapping_add(off).cast();
        }
        f(&mut piece, bytes);
        off += bytes;
    }
}

/// Rebuilds data block `a` and P of a RAID6 stripe from the other data blocks and Q.
pub(crate) fn recover_data_and_p(blocks: &mut [&mut [u8]], a: usize) -> Result<(), BlockError> {
    if a >= blocks.len().saturating_sub(2) {
        return Err(BlockError::Index);
    }
    let mut ptrs = [ptr::null_mut(); MAX_BLOCKS];
    let len = raid6_ptrs(blocks, &mut ptrs)?;
    // SAFETY: the raid6 library sets its recovery routine once at boot.
    let recov = unsafe { ptr::addr_of!(b::raid6_datap_recov).read() }.ok_or(BlockError::Count)?;
    per_page(&ptrs, blocks.len(), len, |page, bytes| {
        // SAFETY: as in `gen_syndrome`, for one page of every block.
        unsafe { recov(blocks.len() as c_int, bytes, a as c_int, page.as_mut_ptr()) }
    });
    Ok(())
}

/// Name of the raid6 routine set the kernel selected at boot (e.g. `avx2x4`).
pub(crate) fn raid6_algorithm() -> &'static str {
    // SAFETY: see `gen_syndrome`; `name` points to a static string of the routine set.
    let name = unsafe { ptr::addr_of!(b::raid6_call).read() }.name;
    if name.is_null() {
        return "?";
    }
    // SAFETY: non-null `name` is a NUL-terminated string in the raid6 library's static data.
    let name = unsafe { core::ffi::CStr::from_ptr(name.cast()) };
    name.to_str().unwrap_or("?")
}
