// SPDX-License-Identifier: GPL-2.0

//! A bio as a target's `map` sees it: where it points, what it does, and remapping it.
//!
//! C header: [`include/linux/blk_types.h`](srctree/include/linux/blk_types.h)

use super::bindings as b;
use super::device_mapper::DmDev;
use core::{
    marker::PhantomData,
    ptr::{self, NonNull},
    sync::atomic::{AtomicPtr, AtomicU64, Ordering},
};
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

    /// A status the block layer reported.
    pub(crate) fn from_raw(raw: b::blk_status_t) -> Self {
        Self(raw)
    }

    /// The raw value.
    pub(crate) fn raw(self) -> b::blk_status_t {
        self.0
    }
}

/// A bio's data position and range (`struct bvec_iter`), see [`Bio::save_iter`].
#[derive(Clone, Copy)]
pub(crate) struct SavedIter(b::bvec_iter);

impl Default for SavedIter {
    fn default() -> Self {
        Self(b::bvec_iter {
            bi_sector: 0,
            bi_size: 0,
            bi_idx: 0,
            bi_bvec_done: 0,
        })
    }
}

/// A bio lent to a target callback for the duration of that call.
///
/// It is not `Send`: the target may only look at and remap the bio while dm core lends it.
pub(crate) struct Bio<'a> {
    raw: NonNull<b::bio>,
    deferred: bool,
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
            deferred: false,
            _lent: PhantomData,
        }
    }

    /// Takes the bio over from dm core: `map` then reports it as submitted and the target
    /// must end it (through the returned handle) exactly once, from any context.
    pub(crate) fn defer(&mut self) -> DeferredBio {
        self.deferred = true;
        DeferredBio { raw: self.raw }
    }

    /// The raw bio (for the device-mapper glue).
    pub(super) fn as_ptr(&self) -> *mut b::bio {
        self.raw.as_ptr()
    }

    /// Remembers where the bio's data and range are, before `map` points it elsewhere: the
    /// completed bio has its iterator advanced by the lower device, and a retry restores it
    /// (as dm's `dm_bio_record`/`dm_bio_restore` do).
    pub(crate) fn save_iter(&self) -> SavedIter {
        SavedIter(self.get().bi_iter)
    }

    /// Puts back a [`SavedIter`] taken from this bio in `map`.
    pub(crate) fn restore_iter(&mut self, saved: SavedIter) {
        self.get_mut().bi_iter = saved.0;
    }

    /// Whether [`Bio::defer`] was called.
    pub(super) fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// Keeps only the first `sectors` sectors of a read or write: dm core sends the rest to
    /// the target again as a new bio (`dm_accept_partial_bio`).
    pub(crate) fn accept_partial(&mut self, sectors: u32) {
        if u64::from(sectors) < self.sectors() && sectors > 0 {
            // SAFETY: the bio is a dm clone of a normal read or write lent to `map`, which is
            // the only place `dm_accept_partial_bio` may be called; `sectors` is smaller than
            // its size.
            unsafe { b::dm_accept_partial_bio(self.raw.as_ptr(), sectors) }
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

    /// Sends a copy of this bio to `sector` of `dev` (member `member` of the target) and
    /// makes this bio complete only after the copy has. The copy's error does not become
    /// this bio's: it sets bit `member` of `failed` instead, from the copy's completion (any
    /// context), before this bio can complete; one failed copy of a mirror write must not
    /// fail the write. `failed` must outlive the copy: a word of the target, which dm core
    /// destroys only after its I/O has drained (as `pool`). The copy shares the data pages
    /// and comes from `pool` with GFP_NOIO, which waits rather than fails; the pool's
    /// rescuer keeps that wait from deadlocking on bios queued by this very submission.
    pub(crate) fn submit_copy(
        &mut self,
        (dev, sector): (&DmDev, u64),
        pool: &CopyPool,
        failed: &AtomicU64,
        member: usize,
    ) -> Result {
        let bit = u32::try_from(member)
            .ok()
            .and_then(|m| 1u64.checked_shl(m))
            .ok_or(EINVAL)?;
        // SAFETY: the bio is valid and lent to us; `pool` was initialised by
        // `CopyPool::new` and outlives every bio it hands out (the target that owns it is
        // destroyed only after dm core has drained all I/O); `dev` holds its block device.
        let copy = unsafe {
            b::bio_alloc_clone(
                dev.bdev(),
                self.raw.as_ptr(),
                b::AMF_CONST_GFP_NOIO,
                pool.0.as_ptr(),
            )
        };
        let copy = NonNull::new(copy).ok_or(ENOMEM)?;
        // SAFETY: `copy` is a fresh clone from a pool with `COPY_PAD` bytes of front pad,
        // which hold its `CopyTag` (the slab object starts there, aligned for it). Setting
        // `bi_private`/`bi_end_io` and counting the copy in the parent's `__bi_remaining`
        // before submitting it is what `bio_chain` does; `submit_bio_noacct` takes
        // ownership, and `copy_end_io` ends the parent once.
        unsafe {
            copy_tag(copy.as_ptr()).write(CopyTag {
                failed: ptr::from_ref(failed),
                bit,
            });
            (*copy.as_ptr()).bi_iter.bi_sector = sector;
            (*copy.as_ptr()).bi_private = self.raw.as_ptr().cast();
            (*copy.as_ptr()).bi_end_io = Some(copy_end_io);
            b::amf_bio_inc_remaining(self.raw.as_ptr());
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

/// Adds `len` bytes at `buf` to `bio` as one segment; false if the bio has no room.
///
/// # Safety
///
/// `bio` must be a valid bio its caller owns and has not submitted; `buf` must be `len`
/// bytes of direct-mapped, physically contiguous memory (kmalloc memory, as [`KVec`] uses)
/// that outlives the bio's use of it: `virt_to_page` and the in-page offset then describe
/// it as one (multi-page) segment.
pub(super) unsafe fn add_kernel_buf(bio: *mut b::bio, buf: *mut u8, len: u32) -> bool {
    let page_mask = kernel::page::PAGE_SIZE - 1;
    // SAFETY: the caller's contract.
    let added = unsafe {
        b::bio_add_page(
            bio,
            b::amf_virt_to_page(buf.cast()),
            len,
            (buf as usize & page_mask) as u32,
        )
    };
    added == len as i32
}

/// A bio a target took over in `map` ([`Bio::defer`]) to complete later, e.g. from a worker.
///
/// Dropping it without [`DeferredBio::end`] fails the bio with an I/O error, so a bio is
/// never leaked.
pub(crate) struct DeferredBio {
    raw: NonNull<b::bio>,
}

// SAFETY: the bio was handed over by dm core; the target owns it until `bio_endio`, and
// nothing else touches it, so it may be completed on any CPU.
unsafe impl Send for DeferredBio {}

impl DeferredBio {
    fn get(&self) -> &b::bio {
        // SAFETY: owned by us until `end`, see the type's invariant.
        unsafe { self.raw.as_ref() }
    }

    /// First sector the bio addresses (on the dm device).
    pub(crate) fn sector(&self) -> u64 {
        self.get().bi_iter.bi_sector
    }

    /// Size in 512-byte sectors.
    pub(crate) fn sectors(&self) -> u64 {
        u64::from(self.get().bi_iter.bi_size >> 9)
    }

    /// The operation.
    pub(crate) fn op(&self) -> BioOp {
        // SAFETY: a valid lent bio that lives as long as `self`.
        unsafe { Bio::from_raw(self.raw) }.op()
    }

    /// Whether the write must be on stable media when it completes (`REQ_FUA`).
    pub(crate) fn is_fua(&self) -> bool {
        self.get().bi_opf & b::AMF_CONST_REQ_FUA != 0
    }

    /// Copies the bio's data from byte `skip` on into `buf` (at most `buf.len()` bytes).
    ///
    /// `buf` must be in the kernel's direct map (kmalloc memory, as [`KVec`] uses).
    pub(crate) fn copy_to_buf(&self, skip: u32, buf: &mut [u8]) -> Result {
        self.copy(skip, buf.as_mut_ptr(), buf.len(), true)
    }

    /// Copies `buf` into the bio's data pages from byte `skip` on (a read's result).
    pub(crate) fn copy_from_buf(&mut self, skip: u32, buf: &[u8]) -> Result {
        self.copy(skip, buf.as_ptr().cast_mut(), buf.len(), false)
    }

    /// Both copies: a one-segment bio over the buffer on the stack, and `bio_copy_data_iter`
    /// between it and ours, which walks the pages (and maps highmem) for us.
    fn copy(&self, skip: u32, buf: *mut u8, len: usize, to_buf: bool) -> Result {
        if skip > self.get().bi_iter.bi_size || len > u32::MAX as usize {
            return Err(EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        // SAFETY: all-zero is a valid initial state for both C structs; `bio_init` sets up
        // the bio on the one-entry table.
        let mut vec: b::bio_vec = unsafe { core::mem::zeroed() };
        // SAFETY: as above.
        let mut kb: b::bio = unsafe { core::mem::zeroed() };
        // SAFETY: `kb` and `vec` live on this stack frame until after `bio_uninit`; `buf` is
        // `len` bytes of direct-mapped memory (caller's contract); the bio is never
        // submitted, only used as a copy endpoint.
        unsafe {
            b::bio_init(&mut kb, ptr::null_mut(), &mut vec, 1, 0);
            if !add_kernel_buf(&mut kb, buf, len as u32) {
                b::bio_uninit(&mut kb);
                return Err(EINVAL);
            }
            let mut ours = self.get().bi_iter;
            b::amf_bio_advance_iter(self.raw.as_ptr(), &mut ours, skip);
            let mut theirs = kb.bi_iter;
            if to_buf {
                b::bio_copy_data_iter(&mut kb, &mut theirs, self.raw.as_ptr(), &mut ours);
            } else {
                b::bio_copy_data_iter(self.raw.as_ptr(), &mut ours, &mut kb, &mut theirs);
            }
            b::bio_uninit(&mut kb);
        }
        Ok(())
    }

    /// Submits the bio again, to the device and sector its owner set (a retry of a read
    /// elsewhere); its completion goes through dm core's `end_io` as before.
    pub(crate) fn resubmit(self) {
        let raw = self.raw;
        core::mem::forget(self);
        // SAFETY: we own this dm clone (type invariant) and hand it back to the block layer
        // once (clearing its status first); `dm_submit_bio_remap` is the call for bios a
        // target took over.
        unsafe {
            // The failed attempt's status would otherwise stay and fail the retry.
            (*raw.as_ptr()).bi_status = BlkStatus::OK.raw();
            b::dm_submit_bio_remap(raw.as_ptr(), ptr::null_mut());
        }
    }

    /// Completes the bio with `status`, handing it back to dm core.
    pub(crate) fn end(self, status: BlkStatus) {
        let raw = self.raw;
        core::mem::forget(self);
        // SAFETY: we own the bio (type invariant) and end it once: `self` is forgotten.
        unsafe {
            (*raw.as_ptr()).bi_status = status.raw();
            b::bio_endio(raw.as_ptr());
        }
    }

    /// Links bios into a FIFO without allocating: the raw `bi_next` chain that `bio_list`
    /// uses, which is the owner's to use while it holds the bio.
    fn next_mut(&mut self) -> &mut *mut b::bio {
        // SAFETY: owned by us, see the type's invariant.
        unsafe { &mut (*self.raw.as_ptr()).bi_next }
    }
}

impl Drop for DeferredBio {
    fn drop(&mut self) {
        // SAFETY: we own the bio and this is its only completion (`end` forgets `self`).
        unsafe {
            (*self.raw.as_ptr()).bi_status = BlkStatus::IOERR.raw();
            b::bio_endio(self.raw.as_ptr());
        }
    }
}

/// Deferred bios waiting for a worker: a lock-free list chained through `bi_next` (the
/// kernel's `llist`), so that `map` and `end_io` (which may run in interrupt context) can
/// queue a bio without a lock or an allocation. One consumer takes the whole list at once.
pub(crate) struct DeferredList {
    head: AtomicPtr<b::bio>,
}

impl DeferredList {
    /// An empty list.
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Adds `bio`; safe from any context.
    pub(crate) fn push(&self, mut bio: DeferredBio) {
        let raw = bio.raw.as_ptr();
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            *bio.next_mut() = head;
            match self
                .head
                .compare_exchange_weak(head, raw, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        // The list owns it now.
        core::mem::forget(bio);
    }

    /// Takes every queued bio, oldest first. Only one task may call this at a time (the
    /// worker): that is what makes the list free of ABA races.
    pub(crate) fn take_all(&self) -> DeferredBatch {
        let mut newest = self.head.swap(ptr::null_mut(), Ordering::AcqRel);
        // Reverse the LIFO chain into arrival order.
        let mut oldest = ptr::null_mut::<b::bio>();
        while let Some(cur) = NonNull::new(newest) {
            // SAFETY: every bio on the chain is owned by the list, now by this batch.
            unsafe {
                newest = (*cur.as_ptr()).bi_next;
                (*cur.as_ptr()).bi_next = oldest;
            }
            oldest = cur.as_ptr();
        }
        DeferredBatch {
            head: NonNull::new(oldest),
        }
    }
}

// SAFETY: the list only holds deferred bios, which are `Send`, behind an atomic pointer.
unsafe impl Sync for DeferredList {}
// SAFETY: see `Sync`.
unsafe impl Send for DeferredList {}

impl Drop for DeferredList {
    fn drop(&mut self) {
        // Bios still queued fail rather than leak.
        drop(self.take_all());
    }
}

/// Bios taken off a [`DeferredList`], oldest first.
pub(crate) struct DeferredBatch {
    head: Option<NonNull<b::bio>>,
}

impl Iterator for DeferredBatch {
    type Item = DeferredBio;

    fn next(&mut self) -> Option<DeferredBio> {
        let head = self.head?;
        // INVARIANT: the batch owns its chain; ownership of `head` moves to the handle.
        let mut bio = DeferredBio { raw: head };
        self.head = NonNull::new(core::mem::replace(bio.next_mut(), ptr::null_mut()));
        Some(bio)
    }
}

impl Drop for DeferredBatch {
    fn drop(&mut self) {
        // Bios not handed out fail rather than leak.
        for _ in self.by_ref() {}
    }
}

/// What a bio of a [`CopyPool`] carries in the front pad before it: the word and bit that
/// note its failure.
#[repr(C)]
struct CopyTag {
    failed: *const AtomicU64,
    bit: u64,
}

/// Front pad of a [`CopyPool`]'s bios (a multiple of 8: the bio after it stays aligned).
const COPY_PAD: usize = core::mem::size_of::<CopyTag>();

/// The tag in front of a copy.
///
/// # Safety
///
/// `copy` must be a bio allocated from a [`CopyPool`].
unsafe fn copy_tag(copy: *mut b::bio) -> *mut CopyTag {
    // SAFETY: the pool's bios have `COPY_PAD` bytes of front pad (the caller's promise).
    unsafe { copy.cast::<u8>().sub(COPY_PAD).cast::<CopyTag>() }
}

/// A copy of [`Bio::submit_copy`] completed: its failure noted, the copy freed, its share
/// of the parent's completion given. Any context (softirq): one atomic operation.
///
/// # Safety
///
/// Only the block layer calls this, once, as the `bi_end_io` of a copy set up by
/// [`Bio::submit_copy`].
unsafe extern "C" fn copy_end_io(copy: *mut b::bio) {
    // SAFETY: the block layer calls this once for a copy that `submit_copy` set up: the
    // tag is in its front pad, `bi_private` is the parent (alive: it waits for this
    // completion) and the tag's word outlives the parent (`submit_copy`'s contract).
    unsafe {
        let tag = copy_tag(copy).read();
        let parent = (*copy).bi_private.cast::<b::bio>();
        if (*copy).bi_status != BlkStatus::OK.raw() {
            (*tag.failed).fetch_or(tag.bit, Ordering::AcqRel);
        }
        b::bio_put(copy);
        b::bio_endio(parent);
    }
}

/// Bios for the copies of [`Bio::submit_copy`], with room for their tags.
pub(crate) struct CopyPool(BioSet);

impl CopyPool {
    /// A pool that can always hand out `reserve` copies without memory allocation
    /// succeeding.
    pub(crate) fn new(reserve: u32) -> Result<Self> {
        BioSet::init(reserve, COPY_PAD as u32, b::BIOSET_NEED_RESCUER).map(Self)
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
    /// A pool of bios that carry their own page vectors (for I/O on the target's buffers).
    pub(crate) fn with_bvecs(reserve: u32) -> Result<Self> {
        Self::init(reserve, 0, b::BIOSET_NEED_RESCUER | b::BIOSET_NEED_BVECS)
    }

    /// A pool with `front_pad` bytes before each bio for its owner.
    fn init(reserve: u32, front_pad: u32, flags: u32) -> Result<Self> {
        let bs = KBox::<b::bio_set>::new_uninit(GFP_KERNEL | __GFP_ZERO)?;
        let raw = NonNull::new(KBox::into_raw(bs).cast::<b::bio_set>()).ok_or(ENOMEM)?;
        // SAFETY: `raw` is a zeroed, exclusively owned bio_set at a stable address, which is
        // what bioset_init expects.
        let r = unsafe { b::bioset_init(raw.as_ptr(), reserve, front_pad, flags as i32) };
        if let Err(e) = to_result(r) {
            // SAFETY: bioset_init failed and cleaned up after itself; the memory is ours.
            drop(unsafe { KBox::from_raw(raw.as_ptr()) });
            return Err(e);
        }
        Ok(Self { raw })
    }

    pub(super) fn as_ptr(&self) -> *mut b::bio_set {
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
