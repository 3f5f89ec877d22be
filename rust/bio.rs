// SPDX-License-Identifier: GPL-2.0

//! A bio as a target's `map` sees it: where it points, what it does, and remapping it.
//!
//! C header: [`include/linux/blk_types.h`](srctree/include/linux/blk_types.h)

use super::bindings as b;
use super::device_mapper::DmDev;
use core::{marker::PhantomData, ptr::NonNull};

/// The operation a bio carries (`enum req_op`), reduced to what a target routes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BioOp {
    /// Read data.
    Read,
    /// Write data.
    Write,
    /// Flush the volatile write cache (an empty `REQ_OP_FLUSH` bio).
    Flush,
    /// Discard a range.
    Discard,
    /// Securely erase a range.
    SecureErase,
    /// Write zeroes to a range.
    WriteZeroes,
    /// Anything else (zoned operations, driver private ops).
    Other,
}

/// Completion status handed back to the block layer (`blk_status_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlkStatus(b::blk_status_t);

impl BlkStatus {
    /// Success.
    pub(crate) const OK: Self = Self(b::AMF_CONST_BLK_STS_OK);
    /// The operation is not supported.
    pub(crate) const NOTSUPP: Self = Self(b::AMF_CONST_BLK_STS_NOTSUPP);

    /// The raw value.
    pub(crate) fn raw(self) -> b::blk_status_t {
        self.0
    }
}

/// A bio lent to a target callback for the duration of that call.
///
/// It is not `Send`: the target may only look at and remap the bio while dm core lends it.
pub(crate) struct Bio<'a> {
    raw: NonNull<b::bio>,
    _lent: PhantomData<&'a mut b::bio>,
}

impl<'a> Bio<'a> {
    /// Wraps a bio that dm core hands to a target callback.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid bio that nothing else accesses for the lifetime `'a`
    /// (dm core guarantees this for the bio passed to `map` and `end_io`).
    pub(crate) unsafe fn from_raw(ptr: NonNull<b::bio>) -> Self {
        Self {
            raw: ptr,
            _lent: PhantomData,
        }
    }

    fn get(&self) -> &b::bio {
        // SAFETY: `from_raw`'s contract: valid and exclusively lent to us for `'a`.
        unsafe { self.raw.as_ref() }
    }

    fn get_mut(&mut self) -> &mut b::bio {
        // SAFETY: `from_raw`'s contract: valid and exclusively lent to us for `'a`.
        unsafe { self.raw.as_mut() }
    }

    /// First sector the bio addresses.
    pub(crate) fn sector(&self) -> u64 {
        self.get().bi_iter.bi_sector
    }

    /// Points the bio at another sector (of the device set with [`Bio::set_dev`]).
    pub(crate) fn set_sector(&mut self, sector: u64) {
        self.get_mut().bi_iter.bi_sector = sector;
    }

    /// Remaining size in bytes.
    pub(crate) fn size_bytes(&self) -> u32 {
        self.get().bi_iter.bi_size
    }

    /// Remaining size in 512-byte sectors.
    pub(crate) fn sectors(&self) -> u64 {
        u64::from(self.size_bytes() >> 9)
    }

    /// Shrinks the bio to `sectors` sectors (used for discard-like ranges that carry no data
    /// pages; data bios are split by dm core, never here).
    pub(crate) fn set_sectors(&mut self, sectors: u32) {
        self.get_mut().bi_iter.bi_size = sectors << 9;
    }

    /// The operation.
    pub(crate) fn op(&self) -> BioOp {
        // SAFETY: the bio is valid; `amf_bio_op` only reads `bi_opf`.
        let op = unsafe { b::amf_bio_op(self.raw.as_ptr()) };
        match op {
            b::req_op_REQ_OP_READ => BioOp::Read,
            b::req_op_REQ_OP_WRITE => BioOp::Write,
            b::req_op_REQ_OP_FLUSH => BioOp::Flush,
            b::req_op_REQ_OP_DISCARD => BioOp::Discard,
            b::req_op_REQ_OP_SECURE_ERASE => BioOp::SecureErase,
            b::req_op_REQ_OP_WRITE_ZEROES => BioOp::WriteZeroes,
            _ => BioOp::Other,
        }
    }

    /// Whether the bio asks for a cache flush before it (`REQ_PREFLUSH`).
    pub(crate) fn is_preflush(&self) -> bool {
        self.get().bi_opf & b::AMF_CONST_REQ_PREFLUSH != 0
    }

    /// For bios that dm core duplicates per target (flush, discard...), which copy this is:
    /// `0..n` where `n` is what the constructor set with `set_num_flush_bios` and friends.
    pub(crate) fn target_bio_nr(&self) -> u32 {
        // SAFETY: the bio was cloned by dm core for this target, which is what
        // `dm_bio_get_target_bio_nr` requires.
        unsafe { b::dm_bio_get_target_bio_nr(self.raw.as_ptr()) }
    }

    /// Sends the bio to `dev` (the sector is set separately).
    pub(crate) fn set_dev(&mut self, dev: &DmDev) {
        // SAFETY: the bio is valid and lent to us; `dev` holds a reference on its block device
        // for as long as the table that owns the target exists, which outlives this bio.
        unsafe { b::amf_bio_set_dev(self.raw.as_ptr(), dev.bdev()) }
    }

    /// Completes the bio with `status`. Only the device-mapper glue calls this, after the
    /// target's `map` asked for it, so a bio is completed exactly once.
    pub(super) fn complete(self, status: BlkStatus) {
        // SAFETY: the bio is valid and owned by the target while `map` runs; setting
        // `bi_status` and calling `bio_endio` once hands it back to its submitter.
        unsafe {
            (*self.raw.as_ptr()).bi_status = status.raw();
            b::bio_endio(self.raw.as_ptr());
        }
    }
}
