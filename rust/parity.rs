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

/// Blocks gathered as raw pointers for the C routines, after the common checks: equal,
/// non-zero lengths that are a multiple of 512 bytes, [`ALIGN`]ed, at most [`MAX_BLOCKS`].
/// Callers hand blocks over as iterators and each routine keeps one pointer array (512
/// bytes), filled in place: arrays of slices, or a copy of the array, would each take as
/// much again of a kernel stack frame.
struct Gathered {
    ptrs: [*mut c_void; MAX_BLOCKS],
    n: usize,
    len: usize,
}

impl Gathered {
    const EMPTY: Gathered = Gathered {
        ptrs: [ptr::null_mut(); MAX_BLOCKS],
        n: 0,
        len: 0,
    };

    /// Takes `blocks` as (pointer, length); `None` (a range outside its buffer) is a length
    /// error.
    fn take(
        &mut self,
        blocks: impl Iterator<Item = Option<(*mut u8, usize)>>,
    ) -> Result<(), BlockError> {
        for blk in blocks {
            let (p, len) = blk.ok_or(BlockError::Length)?;
            if p as usize % ALIGN != 0 {
                return Err(BlockError::Alignment);
            }
            if self.n == 0 {
                self.len = len;
            } else if self.len != len {
                return Err(BlockError::Length);
            }
            *self.ptrs.get_mut(self.n).ok_or(BlockError::Count)? = p.cast();
            self.n += 1;
        }
        if self.n == 0 {
            return Err(BlockError::Count);
        }
        if self.len == 0 || self.len % 512 != 0 || self.len > u32::MAX as usize {
            return Err(BlockError::Length);
        }
        Ok(())
    }

    /// Blocks the routine only reads.
    fn take_shared<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Result<(), BlockError> {
        self.take(
            blocks
                .into_iter()
                .map(|b| b.map(|b| (b.as_ptr().cast_mut(), b.len()))),
        )
    }

    /// Blocks the routine may write (each a unique borrow, so no two overlap).
    fn take_unique<'a>(
        &mut self,
        blocks: impl IntoIterator<Item = Option<&'a mut [u8]>>,
    ) -> Result<(), BlockError> {
        self.take(
            blocks
                .into_iter()
                .map(|b| b.map(|b| (b.as_mut_ptr(), b.len()))),
        )
    }

    /// The raid6 routines' block count (data + P + Q: at least four).
    fn disks(&self) -> Result<c_int, BlockError> {
        if self.n < 4 {
            return Err(BlockError::Count);
        }
        Ok(self.n as c_int)
    }
}

/// `dest ^= src_0 ^ src_1 ^ ...` with `xor_blocks`, which takes at most `MAX_XOR_BLOCKS`
/// sources per call; `None` among `srcs` is a length error.
#[inline(never)]
pub(crate) fn xor_into<'a>(
    dest: &mut [u8],
    srcs: impl IntoIterator<Item = Option<&'a [u8]>>,
) -> Result<(), BlockError> {
    let mut g = Gathered::EMPTY;
    g.take_shared(srcs)?;
    if g.n >= MAX_BLOCKS {
        return Err(BlockError::Count);
    }
    if dest.len() != g.len {
        return Err(BlockError::Length);
    }
    if dest.as_ptr() as usize % ALIGN != 0 {
        return Err(BlockError::Alignment);
    }
    let n = g.n;
    for group in g
        .ptrs
        .get_mut(..n)
        .unwrap_or(&mut [])
        .chunks_mut(b::MAX_XOR_BLOCKS as usize)
    {
        // SAFETY: `dest` and every source are `len` bytes, aligned, and valid; `dest` is a
        // unique borrow so it overlaps no source; `xor_blocks` only reads the sources and
        // takes `group.len() <= MAX_XOR_BLOCKS` of them.
        unsafe {
            b::xor_blocks(
                group.len() as c_uint,
                g.len as c_uint,
                dest.as_mut_ptr().cast(),
                group.as_mut_ptr(),
            )
        };
    }
    Ok(())
}

/// Computes P and Q of a RAID6 stripe: `blocks` is `D_0 .. D_{n-3}, P, Q` (at least two data
/// blocks), the layout and generator of md's raid6.
#[inline(never)]
pub(crate) fn gen_syndrome<'a>(
    blocks: impl IntoIterator<Item = Option<&'a mut [u8]>>,
) -> Result<(), BlockError> {
    let mut g = Gathered::EMPTY;
    g.take_unique(blocks)?;
    let disks = g.disks()?;
    // SAFETY: `raid6_call` is set once at boot by the raid6 library's algorithm selection
    // (before any module can call it) and never written again; reading a copy is sound.
    let calls = unsafe { ptr::addr_of!(b::raid6_call).read() };
    let gen = calls.gen_syndrome.ok_or(BlockError::Count)?;
    // SAFETY: `ptrs` holds `disks` distinct, aligned, `len`-byte buffers that we borrow
    // mutably for the call, in the order the routine expects (data, P, Q).
    unsafe { gen(disks, g.len, g.ptrs.as_mut_ptr()) };
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

/// Read-modify-write of RAID6 parity: `data` yields one block per data chunk, where blocks
/// `start..=stop` are the *change* (old XOR new) of each chunk (a zero block for a chunk that
/// did not change); `p` and `q` hold the old parity and become the new. Data blocks outside
/// `start..=stop` are not read, and the same block may be passed several times.
#[inline(never)]
pub(crate) fn xor_syndrome<'a>(
    data: impl IntoIterator<Item = Option<&'a [u8]>>,
    p: &mut [u8],
    q: &mut [u8],
    start: usize,
    stop: usize,
) -> Result<(), BlockError> {
    // P and Q are written: their pointers come from the unique borrows.
    let data = data
        .into_iter()
        .map(|b| b.map(|b| (b.as_ptr().cast_mut(), b.len())));
    let pq = [
        Some((p.as_mut_ptr(), p.len())),
        Some((q.as_mut_ptr(), q.len())),
    ];
    let mut g = Gathered::EMPTY;
    g.take(data.chain(pq))?;
    let disks = g.disks()?;
    if start > stop || stop >= g.n - 2 {
        return Err(BlockError::Index);
    }
    // SAFETY: see `gen_syndrome`.
    let calls = unsafe { ptr::addr_of!(b::raid6_call).read() };
    let xor = calls.xor_syndrome.ok_or(BlockError::Count)?;
    // SAFETY: every pointer is a valid, aligned `len`-byte block; the routine only reads the
    // data blocks (so shared and repeated ones are fine) and writes P and Q, which are
    // unique borrows distinct from the data.
    unsafe {
        xor(
            disks,
            start as c_int,
            stop as c_int,
            g.len,
            g.ptrs.as_mut_ptr(),
        )
    };
    Ok(())
}

/// Rebuilds data blocks `a` and `b` (both data, `a != b`) of a RAID6 stripe (`blocks`: data,
/// P, Q) from the others.
#[inline(never)]
pub(crate) fn recover_two_data<'a>(
    blocks: impl IntoIterator<Item = Option<&'a mut [u8]>>,
    a: usize,
    b: usize,
) -> Result<(), BlockError> {
    let mut g = Gathered::EMPTY;
    g.take_unique(blocks)?;
    let disks = g.disks()?;
    let data = g.n - 2;
    if a == b || a >= data || b >= data {
        return Err(BlockError::Index);
    }
    // SAFETY: the raid6 library sets its recovery routine once at boot.
    let recov = unsafe { ptr::addr_of!(b::raid6_2data_recov).read() }.ok_or(BlockError::Count)?;
    per_page(&mut g, |page, bytes| {
        // SAFETY: as in `gen_syndrome`, for one page of every block; the routine wants
        // `faila < failb`.
        unsafe { recov(disks, bytes, a.min(b) as c_int, a.max(b) as c_int, page) }
    });
    Ok(())
}

/// Runs a recovery routine page by page: the raid6 recovery routines stand the shared zero
/// page (`raid6_empty_zero_page`, one page long) in for the lost blocks, so, as md does, they
/// must never be given more than a page at once. The pointers advance in place.
fn per_page(g: &mut Gathered, mut f: impl FnMut(*mut *mut c_void, usize)) {
    let page = kernel::page::PAGE_SIZE;
    let mut off = 0;
    while off < g.len {
        let bytes = page.min(g.len - off);
        f(g.ptrs.as_mut_ptr(), bytes);
        for p in g.ptrs.iter_mut().take(g.n) {
            *p = p.cast::<u8>().wrapping_add(bytes).cast();
        }
        off += bytes;
    }
}

/// Rebuilds data block `a` and P of a RAID6 stripe (`blocks`: data, P, Q) from the other
/// data blocks and Q.
#[inline(never)]
pub(crate) fn recover_data_and_p<'a>(
    blocks: impl IntoIterator<Item = Option<&'a mut [u8]>>,
    a: usize,
) -> Result<(), BlockError> {
    let mut g = Gathered::EMPTY;
    g.take_unique(blocks)?;
    let disks = g.disks()?;
    if a >= g.n - 2 {
        return Err(BlockError::Index);
    }
    // SAFETY: the raid6 library sets its recovery routine once at boot.
    let recov = unsafe { ptr::addr_of!(b::raid6_datap_recov).read() }.ok_or(BlockError::Count)?;
    per_page(&mut g, |page, bytes| {
        // SAFETY: as in `gen_syndrome`, for one page of every block.
        unsafe { recov(disks, bytes, a as c_int, page) }
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
