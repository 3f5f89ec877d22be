// SPDX-License-Identifier: GPL-2.0

//! A bio as a target's `map` sees it: where it points, what it does, and remapping it.
//!
//! C header: [`include/linux/blk_types.h`](srctree/include/linux/blk_types.h)

use super::bindings as b;
use super::device_mapper::DmDev;
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    alloc::flags::{__GFP_ZERO, GFP_KERNEL},
    error::{to_result, Result},
    prelude::*,
};

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
    /// An I/O error.
    pub(crate) const IOERR: Self = Self(b::AMF_CONST_BLK_STS_IOERR);
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

    /// Sends a copy of this bio to `sector` of `dev` and makes this bio complete only after
    /// the copy has (`bio_chain`: an error of the copy becomes this bio's error). The copy
    /// shares the data pages and comes from `pool` with GFP_NOIO, which waits rather than
    /// fails; the pool's rescuer keeps that wait from deadlocking on bios queued by this very
    /// submission.
    pub(crate) fn submit_chained_copy(
        &mut self,
        dev: &DmDev,
        sector: u64,
        pool: &BioSet,
    ) -> Result {
        // SAFETY: the bio is valid and lent to us; `pool` was initialised by `BioSet::new` and
        // outlives every bio it hands out (the target that owns it is destroyed only after dm
        // core has drained all I/O); `dev` holds its block device.
        let copy = unsafe {
            b::bio_alloc_clone(
                dev.bdev(),
                self.raw.as_ptr(),
                b::AMF_CONST_GFP_NOIO,
                pool.as_ptr(),
            )
        };
        let copy = NonNull::new(copy).ok_or(ENOMEM)?;
        // SAFETY: `copy` is a fresh clone that only we know; chaining it to our bio before
        // submitting it is `bio_chain`'s contract; `submit_bio_noacct` takes ownership.
        unsafe {
            (*copy.as_ptr()).bi_iter.bi_sector = sector;
            b::bio_chain(copy.as_ptr(), self.raw.as_ptr());
            b::submit_bio_noacct(copy.as_ptr());
        }
        Ok(())
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

/// A pool of bios for copies (`struct bio_set`), torn down on drop.
pub(crate) struct BioSet {
    raw: NonNull<b::bio_set>,
}

// SAFETY: a bio_set is used from any CPU through its own locking (mempools).
unsafe impl Send for BioSet {}
// SAFETY: see `Send`; `&BioSet` only allocates from the pool.
unsafe impl Sync for BioSet {}

impl BioSet {
    /// A pool that can always hand out `reserve` bios without memory allocation succeeding.
    pub(crate) fn new(reserve: u32) -> Result<Self> {
        let bs = KBox::<b::bio_set>::new_uninit(GFP_KERNEL | __GFP_ZERO)?;
        let raw = NonNull::new(KBox::into_raw(bs).cast::<b::bio_set>()).ok_or(ENOMEM)?;
        // SAFETY: `raw` is a zeroed, exclusively owned bio_set at a stable address, which is
        // what bioset_init expects.
        let r = unsafe { b::bioset_init(raw.as_ptr(), reserve, 0, b::BIOSET_NEED_RESCUER as i32) };
        if let Err(e) = to_result(r) {
            // SAFETY: bioset_init failed and cleaned up after itself; the memory is ours.
            drop(unsafe { KBox::from_raw(raw.as_ptr()) });
            return Err(e);
        }
        Ok(Self { raw })
    }

    fn as_ptr(&self) -> *mut b::bio_set {
        self.raw.as_ptr()
    }
}

impl Drop for BioSet {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`; every bio from the pool has been freed (the owner is
        // dropped after dm core drained the target's I/O); the memory came from KBox.
        unsafe {
            b::bioset_exit(self.raw.as_ptr());
            drop(KBox::from_raw(self.raw.as_ptr()));
        }
    }
}
