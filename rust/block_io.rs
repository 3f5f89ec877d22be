// SPDX-License-Identifier: GPL-2.0

//! Synchronous batches of member I/O over kernel buffers: every I/O of a step (the pre-reads
//! of a stripe, or its writes) is submitted at once and the caller sleeps until the last one
//! completes, then learns the status of each (so a failing member can be named).
//!
//! C header: [`include/linux/bio.h`](srctree/include/linux/bio.h)

use super::bindings as b;
use super::bio::{add_kernel_buf, BioSet, BlkStatus};
use super::device_mapper::DmDev;
use core::{
    ptr::{self, NonNull},
    sync::atomic::{AtomicUsize, Ordering},
};
use kernel::{bindings, types::Opaque};

/// Direction of a member I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Read into the buffer.
    Read,
    /// Write the buffer.
    Write,
    /// Write the buffer with `REQ_FUA` (on stable media when it completes).
    WriteFua,
    /// An empty `REQ_PREFLUSH` write: every write completed before it is on stable media.
    Flush,
}

/// One member I/O of a batch: `buf` to or from `sector` of `dev`.
pub(crate) struct MemberIo<'a> {
    dev: Option<&'a DmDev>,
    sector: u64,
    buf: NonNull<u8>,
    len: u32,
    dir: Dir,
    status: BlkStatus,
    batch: *const Batch,
}

impl<'a> MemberIo<'a> {
    /// A read of `buf.len()` bytes from `sector` of `dev` into `buf`.
    ///
    /// `buf` must be kmalloc memory (direct-mapped, physically contiguous), at most 4 GiB.
    pub(crate) fn read(dev: &'a DmDev, sector: u64, buf: &'a mut [u8]) -> Self {
        Self::new(dev, sector, buf.as_mut_ptr(), buf.len(), Dir::Read)
    }

    /// A write of `buf` to `sector` of `dev` (same rules for `buf` as [`MemberIo::read`]).
    pub(crate) fn write(dev: &'a DmDev, sector: u64, buf: &'a [u8], fua: bool) -> Self {
        let dir = if fua { Dir::WriteFua } else { Dir::Write };
        Self::new(dev, sector, buf.as_ptr().cast_mut(), buf.len(), dir)
    }

    /// A cache flush of `dev` (an empty `REQ_PREFLUSH` write): what completed before it is
    /// on stable media when it completes.
    pub(crate) fn flush(dev: &'a DmDev) -> Self {
        Self::new(dev, 0, ptr::null_mut(), 0, Dir::Flush)
    }

    /// A placeholder that [`submit_all`] fails without I/O; fills fixed-size arrays in
    /// place (`[MemberIo::EMPTY; N]`: an array built by a function is moved, and the move
    /// doubles a frame).
    pub(crate) const EMPTY: Self = Self {
        dev: None,
        sector: 0,
        buf: NonNull::dangling(),
        len: 0,
        dir: Dir::Read,
        status: BlkStatus::OK,
        batch: ptr::null(),
    };

    fn new(dev: &'a DmDev, sector: u64, buf: *mut u8, len: usize, dir: Dir) -> Self {
        Self {
            dev: Some(dev),
            sector,
            buf: NonNull::new(buf).unwrap_or(NonNull::dangling()),
            // An over-long buffer is refused by `submit_all` (length 0).
            len: u32::try_from(len).unwrap_or(0),
            dir,
            status: BlkStatus::OK,
            batch: ptr::null(),
        }
    }

    /// The completion status (after [`submit_all`]).
    pub(crate) fn status(&self) -> BlkStatus {
        self.status
    }
}

/// What the completions of one batch share: the count of I/Os in flight and the completion
/// the submitter sleeps on.
struct Batch {
    in_flight: AtomicUsize,
    done: Opaque<bindings::completion>,
}

/// Submits every I/O of `ios` with bios from `pool` and waits for all of them. Returns
/// whether all succeeded; each I/O's own status is in [`MemberIo::status`].
///
/// Sleeps: process context only. Allocates only from `pool` with GFP_NOIO, which waits for
/// a bio rather than failing, so the pool must reserve at least `ios.len()` bios.
#[inline(never)]
pub(crate) fn submit_all(pool: &BioSet, ios: &mut [MemberIo<'_>]) -> bool {
    let batch = Batch {
        in_flight: AtomicUsize::new(1),
        done: Opaque::uninit(),
    };
    // SAFETY: `done` is a completion on this stack frame, initialised before any use.
    unsafe { b::amf_init_completion(batch.done.get()) };
    for io in ios.iter_mut() {
        io.batch = &batch;
        io.status = BlkStatus::OK;
        let Some(dev) = io.dev else {
            io.status = BlkStatus::IOERR;
            continue;
        };
        let flush = io.dir == Dir::Flush;
        if !flush && (io.len == 0 || io.len % 512 != 0) {
            io.status = BlkStatus::IOERR;
            continue;
        }
        let opf = match io.dir {
            Dir::Read => bindings::req_op_REQ_OP_READ,
            Dir::Write => bindings::req_op_REQ_OP_WRITE,
            Dir::WriteFua => bindings::req_op_REQ_OP_WRITE | b::AMF_CONST_REQ_FUA,
            Dir::Flush => bindings::req_op_REQ_OP_WRITE | b::AMF_CONST_REQ_PREFLUSH,
        };
        // SAFETY: `pool` outlives the batch (we wait for every bio below); `dev` holds its
        // block device; GFP_NOIO from a bio_set waits for a free bio instead of failing.
        let bio = unsafe {
            b::bio_alloc_bioset(
                dev.bdev(),
                u16::from(!flush),
                opf,
                b::AMF_CONST_GFP_NOIO,
                pool.as_ptr(),
            )
        };
        let Some(bio) = NonNull::new(bio) else {
            io.status = BlkStatus::IOERR;
            continue;
        };
        // SAFETY: `bio` is ours until submitted; `io.buf` is `io.len` bytes of direct-mapped,
        // physically contiguous memory (constructor contract) that the caller keeps borrowed
        // until this function returns, i.e. until the I/O completed; `io` itself stays in
        // place (the slice is borrowed mutably) so the completion may write its status.
        unsafe {
            if !flush && !add_kernel_buf(bio.as_ptr(), io.buf.as_ptr(), io.len) {
                bindings::bio_put(bio.as_ptr());
                io.status = BlkStatus::IOERR;
                continue;
            }
            (*bio.as_ptr()).bi_iter.bi_sector = io.sector;
            (*bio.as_ptr()).bi_private = ptr::from_mut(io).cast();
            (*bio.as_ptr()).bi_end_io = Some(member_io_done);
            batch.in_flight.fetch_add(1, Ordering::AcqRel);
            bindings::submit_bio(bio.as_ptr());
        }
    }
    if batch.in_flight.fetch_sub(1, Ordering::AcqRel) != 1 {
        // SAFETY: initialised above; the last completion calls `complete` on it.
        unsafe { bindings::wait_for_completion_io(batch.done.get()) };
    }
    ios.iter().all(|io| io.status == BlkStatus::OK)
}

/// Most I/Os in flight at once in [`submit_each`].
pub(crate) const EACH_BATCH: usize = 8;

/// Submits every I/O of `ios`, each with the index (below 64) it is reported under,
/// [`EACH_BATCH`] at a time from `pool` (which should reserve that many bios), and waits.
/// Returns the bit mask of the indexes whose I/O failed and whether any succeeded. Sleeps.
pub(crate) fn submit_each<'a>(
    pool: &BioSet,
    ios: impl Iterator<Item = (usize, MemberIo<'a>)>,
) -> (u64, bool) {
    let (mut bad, mut landed) = (0u64, false);
    let mut ios = ios.peekable();
    while ios.peek().is_some() {
        let mut batch: [MemberIo<'_>; EACH_BATCH] = [MemberIo::EMPTY; EACH_BATCH];
        let mut which = [0usize; EACH_BATCH];
        let mut n = 0;
        for ((slot, w), (i, io)) in batch.iter_mut().zip(which.iter_mut()).zip(ios.by_ref()) {
            *slot = io;
            *w = i;
            n += 1;
        }
        let Some(batch) = batch.get_mut(..n) else {
            break;
        };
        submit_all(pool, batch);
        for (io, i) in batch.iter().zip(which) {
            if io.status() == BlkStatus::OK {
                landed = true;
            } else {
                bad |= 1u64.checked_shl(i as u32).unwrap_or(0);
            }
        }
    }
    (bad, landed)
}

/// Flushes the volatile cache of every `(index, device)` of `devs` (an empty `REQ_PREFLUSH`
/// each) and waits: [`submit_each`]. Returns the bit mask of the indexes whose flush failed.
/// Sleeps.
pub(crate) fn flush_each<'a>(pool: &BioSet, devs: impl Iterator<Item = (usize, &'a DmDev)>) -> u64 {
    let (bad, _) = submit_each(pool, devs.map(|(i, dev)| (i, MemberIo::flush(dev))));
    if bad != 0 {
        kernel::pr_err!("cache flush failed on members {bad:#x}\n");
    }
    bad
}

/// Completion of one bio of a batch.
///
/// # Safety
///
/// Only the block layer calls this, once, for a bio set up by [`submit_all`].
unsafe extern "C" fn member_io_done(bio: *mut bindings::bio) {
    // SAFETY: `bi_private` is the `MemberIo` that `submit_all` keeps alive (and does not
    // touch) until every bio of its batch completed, and its `batch` likewise.
    unsafe {
        let io = (*bio).bi_private.cast::<MemberIo<'_>>();
        (*io).status = BlkStatus::from_raw((*bio).bi_status);
        let batch = (*io).batch;
        bindings::bio_put(bio);
        if (*batch).in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // After this the submitter may return and free `batch`; `complete` is the
            // last access, and it is safe against that (the on-stack completion pattern).
            bindings::complete((*batch).done.get());
        }
    }
}

/// While it lives, every allocation of this task behaves as GFP_NOIO
/// (`memalloc_noio_save`): code that writes a group's stripes must not recurse into
/// writeback of that very group to find memory.
pub(crate) struct NoIoScope {
    flags: kernel::ffi::c_uint,
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl NoIoScope {
    /// Enters the scope for the current task.
    pub(crate) fn enter() -> Self {
        // SAFETY: only changes the current task's allocation flags; restored on drop on the
        // same task (the type is not `Send`).
        let flags = unsafe { b::amf_memalloc_noio_save() };
        Self {
            flags,
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Drop for NoIoScope {
    fn drop(&mut self) {
        // SAFETY: pairs with the save in `enter`, on the same task.
        unsafe { b::amf_memalloc_noio_restore(self.flags) };
    }
}
