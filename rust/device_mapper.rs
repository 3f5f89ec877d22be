// SPDX-License-Identifier: GPL-2.0

//! Device-mapper targets in safe Rust.
//!
//! C header: [`include/linux/device-mapper.h`](srctree/include/linux/device-mapper.h)
//!
//! A target type implements [`TargetOperations`] and is registered with [`Registration`].
//! The glue here turns dm core's C callbacks into trait calls: the constructor gets its table
//! arguments as `&str`s and returns a typed [`CtrError`] whose message becomes `ti->error`;
//! member devices are [`DmDev`] handles released on drop; `map` answers with a [`MapAction`];
//! status and message output go through a bounded [`StatusWriter`].

use super::bindings as b;
use super::bio::{Bio, BlkStatus};
use core::{
    ffi::CStr,
    fmt,
    marker::PhantomData,
    ptr::{self, NonNull},
};
use kernel::{
    alloc::flags::GFP_KERNEL,
    bindings,
    error::code,
    ffi::{c_char, c_int, c_uint, c_void},
    prelude::*,
    ThisModule,
};

/// A constructor failure: the errno dm returns to `dmsetup` and the message dm logs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CtrError {
    /// Negative errno returned by the constructor.
    pub(crate) errno: Error,
    /// Static message stored in `ti->error` (dm prints it with the device name).
    pub(crate) msg: &'static CStr,
}

impl CtrError {
    /// An invalid-table error (`-EINVAL`) with `msg`.
    pub(crate) const fn inval(msg: &'static CStr) -> Self {
        Self {
            errno: code::EINVAL,
            msg,
        }
    }

    /// A failure with another errno.
    pub(crate) const fn new(errno: Error, msg: &'static CStr) -> Self {
        Self { errno, msg }
    }
}

/// What `map` decided for a bio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapAction {
    /// The bio was pointed at a member device: dm core submits it.
    Remap,
    /// Complete the bio now with this status, without any I/O.
    Complete(BlkStatus),
    /// Fail the bio with an I/O error.
    Kill,
    /// The target took the bio over with [`Bio::defer`] and completes it later.
    Deferred,
}

/// Which `dmsetup` query a status call answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusKind {
    /// `dmsetup status`: run-time state.
    Info,
    /// `dmsetup table`: the constructor arguments.
    Table,
    /// Measurement for IMA: `key=value;` pairs.
    Ima,
}

/// The operations of a device-mapper target type.
///
/// The constructor builds the per-target state; every other callback gets it by shared
/// reference, since dm core may call `map` on many CPUs at once. Implementations keep mutable
/// state behind their own locks or atomics.
pub(crate) trait TargetOperations: Sized + Send + Sync {
    /// Target name as used in tables (e.g. `c"amf"`).
    const NAME: &'static CStr;
    /// Version reported by `dmsetup targets`.
    const VERSION: [u32; 3];

    /// Builds a target from its table arguments.
    fn ctr(ti: &mut TargetCtr<'_>, args: &[&str]) -> Result<KBox<Self>, CtrError>;

    /// What the target remembers about each bio between `map` and `end_io` (dm core keeps
    /// it next to the bio: `per_io_data_size`). `map` starts from `Default::default()`.
    type PerBio: Copy + Default;

    /// Whether dm core should call [`TargetOperations::end_io`] (an indirect call per bio).
    const HAS_END_IO: bool = false;

    /// Routes one bio.
    fn map(&self, ti: &Target, bio: &mut Bio<'_>, note: &mut Self::PerBio) -> MapAction;

    /// Called when a bio that `map` remapped (or deferred and ended) completes, with its
    /// status; returns the status to complete it with. A target that wants to finish the
    /// bio itself (e.g. retry a failed read) calls [`Bio::defer`] and ends it later; dm
    /// core then calls `end_io` again for that completion.
    fn end_io(
        &self,
        _ti: &Target,
        _bio: &mut Bio<'_>,
        _note: &mut Self::PerBio,
        status: BlkStatus,
    ) -> BlkStatus {
        status
    }

    /// Writes the status line (`dmsetup status`/`table`).
    fn status(&self, ti: &Target, kind: StatusKind, out: &mut StatusWriter<'_>);

    /// Handles `dmsetup message`; text written to `out` is returned to the caller.
    fn message(&self, _ti: &Target, _args: &[&str], _out: &mut StatusWriter<'_>) -> Result {
        Err(code::EINVAL)
    }

    /// Reports every member device and the area of it the target uses.
    fn iterate_devices(&self, ti: &Target, visit: &mut DeviceVisitor<'_>) -> c_int;

    /// Adjusts the queue limits dm core computed from the members.
    fn io_hints(&self, _ti: &Target, _limits: &mut QueueLimits<'_>) {}

    /// Called before the device is suspended (I/O may still be in flight).
    fn presuspend(&self, _ti: &Target) {}

    /// Called once the device is suspended and in-flight I/O has drained.
    fn postsuspend(&self, _ti: &Target) {}

    /// Called before the device resumes; an error keeps it suspended.
    fn preresume(&self, _ti: &Target) -> Result {
        Ok(())
    }

    /// Called when the device resumes.
    fn resume(&self, _ti: &Target) {}
}

/// A live target (`struct dm_target`) as the callbacks see it: read-only facts.
#[repr(transparent)]
pub(crate) struct Target(b::dm_target);

impl Target {
    /// # Safety
    ///
    /// `ptr` must be a valid `dm_target` that stays alive and unmodified for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut b::dm_target) -> &'a Self {
        // SAFETY: `Target` is a transparent wrapper; the caller guarantees validity.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// First sector of the mapped device that this target covers.
    pub(crate) fn begin(&self) -> u64 {
        self.0.begin
    }

    /// Number of sectors this target covers.
    pub(crate) fn len(&self) -> u64 {
        self.0.len
    }
}

/// The target under construction: lets the constructor configure it and open devices.
pub(crate) struct TargetCtr<'a> {
    ti: NonNull<b::dm_target>,
    _ctr: PhantomData<&'a mut b::dm_target>,
}

impl<'a> TargetCtr<'a> {
    fn get(&self) -> &b::dm_target {
        // SAFETY: dm core lends the target to the constructor exclusively for its duration.
        unsafe { self.ti.as_ref() }
    }

    fn get_mut(&mut self) -> &mut b::dm_target {
        // SAFETY: dm core lends the target to the constructor exclusively for its duration.
        unsafe { self.ti.as_mut() }
    }

    /// Number of sectors this target covers.
    pub(crate) fn len(&self) -> u64 {
        self.get().len
    }

    /// The events of this target's table ([`super::dm_event::TableEvents`]).
    pub(crate) fn events(&self) -> Result<super::dm_event::TableEvents, CtrError> {
        super::dm_event::TableEvents::new(self.get().table)
            .map_err(|_| CtrError::new(ENOMEM, c"Cannot allocate target context"))
    }

    /// Makes dm core split every bio so that none crosses a multiple of `sectors`.
    pub(crate) fn set_max_io_len(&mut self, sectors: u64) -> Result<(), CtrError> {
        // SAFETY: the target is valid and being constructed.
        let r = unsafe { b::dm_set_target_max_io_len(self.ti.as_ptr(), sectors) };
        if r != 0 {
            return Err(CtrError::new(
                Error::from_errno(r),
                c"Cannot set maximum I/O length",
            ));
        }
        Ok(())
    }

    /// How many copies of an empty flush bio `map` receives (one per member to flush).
    pub(crate) fn set_num_flush_bios(&mut self, n: u32) {
        self.get_mut().num_flush_bios = n;
    }

    /// How many copies of each discard bio `map` receives; 0 disables discards.
    pub(crate) fn set_num_discard_bios(&mut self, n: u32) {
        self.get_mut().num_discard_bios = n;
    }

    /// How many copies of each write-zeroes bio `map` receives; 0 disables them.
    pub(crate) fn set_num_write_zeroes_bios(&mut self, n: u32) {
        self.get_mut().num_write_zeroes_bios = n;
    }

    /// How many copies of each secure-erase bio `map` receives; 0 disables them.
    pub(crate) fn set_num_secure_erase_bios(&mut self, n: u32) {
        self.get_mut().num_secure_erase_bios = n;
    }

    /// Opens a member device by path or `major:minor`, in the table's mode, for as long as
    /// the returned handle lives.
    pub(crate) fn get_device(&mut self, path: &str) -> Result<DmDev, CtrError> {
        const MAX_PATH: usize = 256;
        let mut buf = [0u8; MAX_PATH + 1];
        let bytes = path.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_PATH || bytes.contains(&0) {
            return Err(CtrError::inval(c"Device lookup failed"));
        }
        buf[..bytes.len()].copy_from_slice(bytes);
        let mut dev: *mut b::dm_dev = ptr::null_mut();
        // SAFETY: the target and its table are valid during construction; `buf` is a
        // NUL-terminated string that outlives the call; `dev` is a valid out-pointer.
        let r = unsafe {
            let mode = b::dm_table_get_mode(self.get().table);
            b::dm_get_device(
                self.ti.as_ptr(),
                buf.as_ptr().cast::<c_char>(),
                mode,
                &mut dev,
            )
        };
        match NonNull::new(dev) {
            Some(dev) if r == 0 => Ok(DmDev { dev, ti: self.ti }),
            // A device that exists but cannot be had now (held exclusively elsewhere, no
            // memory) keeps its errno; any other failure means the table names no usable
            // block device: a bad table, -EINVAL.
            _ if r == code::EBUSY.to_errno() || r == code::ENOMEM.to_errno() => {
                Err(CtrError::new(Error::from_errno(r), c"Device lookup failed"))
            }
            _ => Err(CtrError::inval(c"Device lookup failed")),
        }
    }
}

/// A member device opened with `dm_get_device`; put back with `dm_put_device` on drop.
pub(crate) struct DmDev {
    dev: NonNull<b::dm_dev>,
    ti: NonNull<b::dm_target>,
}

// SAFETY: a `dm_dev` is reference counted by its table and may be used and put from any
// process context; the handle holds no thread-affine state.
unsafe impl Send for DmDev {}
// SAFETY: shared access only reads immutable fields (`bdev`, `name`).
unsafe impl Sync for DmDev {}

impl DmDev {
    fn get(&self) -> &b::dm_dev {
        // SAFETY: the handle keeps the `dm_dev` referenced until drop.
        unsafe { self.dev.as_ref() }
    }

    /// The block device, for bio remapping.
    pub(crate) fn bdev(&self) -> *mut bindings::block_device {
        self.get().bdev
    }

    /// `major:minor`, as dm prints devices in tables.
    pub(crate) fn name(&self) -> &str {
        let raw = &self.get().name;
        // SAFETY: `c_char` and `u8` have the same layout; the slice covers exactly `name`.
        let bytes = unsafe { core::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len()) };
        let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
        core::str::from_utf8(bytes.get(..end).unwrap_or(&[])).unwrap_or("?")
    }

    /// Size of the device in 512-byte sectors.
    pub(crate) fn sectors(&self) -> u64 {
        // SAFETY: the block device is valid while the handle holds it.
        unsafe { b::amf_bdev_nr_sectors(self.bdev()) }
    }

    /// The `dm_dev` pointer, for iterate_devices callouts.
    fn as_ptr(&self) -> *mut b::dm_dev {
        self.dev.as_ptr()
    }
}

impl Drop for DmDev {
    fn drop(&mut self) {
        // SAFETY: `dev` came from `dm_get_device` on `ti`, whose table outlives every handle
        // (handles are dropped by the target's destructor or a failing constructor).
        unsafe { b::dm_put_device(self.ti.as_ptr(), self.dev.as_ptr()) }
    }
}

/// The `iterate_devices` callout dm core passes in, bound to its private data.
pub(crate) struct DeviceVisitor<'a> {
    ti: *mut b::dm_target,
    f: b::iterate_devices_callout_fn,
    data: *mut c_void,
    _call: PhantomData<&'a ()>,
}

impl DeviceVisitor<'_> {
    /// Reports `len` sectors of `dev` starting at `start`; a non-zero result stops the walk
    /// and must be returned from `iterate_devices`.
    pub(crate) fn visit(&mut self, dev: &DmDev, start: u64, len: u64) -> c_int {
        match self.f {
            // SAFETY: dm core gave us `f` and `data` for this call; `dev` is one of ours.
            Some(f) => unsafe { f(self.ti, dev.as_ptr(), start, len, self.data) },
            None => 0,
        }
    }
}

/// The queue limits of the mapped device, offered to `io_hints`.
pub(crate) struct QueueLimits<'a>(&'a mut bindings::queue_limits);

impl QueueLimits<'_> {
    /// Preferred minimum I/O size in bytes (e.g. the chunk size).
    pub(crate) fn set_io_min(&mut self, bytes: u32) {
        self.0.io_min = bytes;
    }

    /// Optimal I/O size in bytes (e.g. a full stripe).
    pub(crate) fn set_io_opt(&mut self, bytes: u32) {
        self.0.io_opt = bytes;
    }

    /// Boundary in sectors that I/O should not cross.
    pub(crate) fn set_chunk_sectors(&mut self, sectors: u32) {
        self.0.chunk_sectors = sectors;
    }
}

/// A bounded, always NUL-terminated text buffer for status and message output (DMEMIT).
pub(crate) struct StatusWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    wrote: bool,
}

impl<'a> StatusWriter<'a> {
    /// # Safety
    ///
    /// `buf` must be valid for writes of `maxlen` bytes for `'a`.
    unsafe fn from_raw(buf: *mut c_char, maxlen: c_uint) -> Self {
        let buf: &mut [u8] = if buf.is_null() || maxlen == 0 {
            &mut []
        } else {
            // SAFETY: the caller guarantees `maxlen` writable bytes.
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), maxlen as usize) }
        };
        if let Some(first) = buf.first_mut() {
            *first = 0;
        }
        Self {
            buf,
            len: 0,
            wrote: false,
        }
    }

    /// Whether anything was written (dm then returns the buffer to userspace).
    fn wrote(&self) -> bool {
        self.wrote
    }
}

impl fmt::Write for StatusWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.wrote |= !s.is_empty();
        // Keep one byte for the terminating NUL; truncate silently like DMEMIT.
        let room = self.buf.len().saturating_sub(self.len + 1);
        let n = s.len().min(room);
        if let Some(dst) = self.buf.get_mut(self.len..self.len + n) {
            dst.copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
        }
        if let Some(nul) = self.buf.get_mut(self.len) {
            *nul = 0;
        }
        Ok(())
    }
}

/// A registered target type; unregistered on drop (module exit).
pub(crate) struct Registration<T: TargetOperations> {
    tt: NonNull<b::target_type>,
    _ops: PhantomData<T>,
}

// SAFETY: the registration only holds the address of a `target_type` that dm core owns a
// list link of; registering and unregistering may happen on any thread.
unsafe impl<T: TargetOperations> Send for Registration<T> {}
// SAFETY: no shared-reference method touches the `target_type`.
unsafe impl<T: TargetOperations> Sync for Registration<T> {}

impl<T: TargetOperations> Registration<T> {
    /// Registers target type `T` with dm core on behalf of `module`.
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        let tt = b::target_type {
            name: T::NAME.as_ptr().cast(),
            module: module.as_ptr(),
            version: T::VERSION,
            ctr: Some(ctr_callback::<T>),
            dtr: Some(dtr_callback::<T>),
            map: Some(map_callback::<T>),
            end_io: if T::HAS_END_IO {
                Some(end_io_callback::<T>)
            } else {
                None
            },
            status: Some(status_callback::<T>),
            message: Some(message_callback::<T>),
            iterate_devices: Some(iterate_devices_callback::<T>),
            io_hints: Some(io_hints_callback::<T>),
            presuspend: Some(presuspend_callback::<T>),
            postsuspend: Some(postsuspend_callback::<T>),
            preresume: Some(preresume_callback::<T>),
            resume: Some(resume_callback::<T>),
            ..Default::default()
        };
        let tt = NonNull::new(KBox::into_raw(KBox::new(tt, GFP_KERNEL)?)).ok_or(code::ENOMEM)?;
        // SAFETY: `tt` is a fully initialised target_type at a stable heap address that stays
        // allocated until after `dm_unregister_target` in `drop`.
        let r = unsafe { b::dm_register_target(tt.as_ptr()) };
        if r != 0 {
            // SAFETY: registration failed, so dm core holds no reference; we own the box.
            drop(unsafe { KBox::from_raw(tt.as_ptr()) });
            return Err(Error::from_errno(r));
        }
        Ok(Self {
            tt,
            _ops: PhantomData,
        })
    }
}

impl<T: TargetOperations> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: registered in `new`; module exit happens only when no table uses the type
        // (dm core holds a module reference per target). After unregistering, dm core no
        // longer refers to the box, so it can be freed.
        unsafe {
            b::dm_unregister_target(self.tt.as_ptr());
            drop(KBox::from_raw(self.tt.as_ptr()));
        }
    }
}

/// Collects C argv into UTF-8 strings. Table words are ASCII in practice; anything else is
/// refused rather than guessed at.
///
/// # Safety
///
/// `argv` must hold `argc` valid NUL-terminated strings that live for `'a`.
unsafe fn collect_args<'a>(
    argc: c_uint,
    argv: *mut *mut c_char,
) -> Result<KVec<&'a str>, CtrError> {
    let n = argc as usize;
    let mut v = KVec::with_capacity(n, GFP_KERNEL)
        .map_err(|_| CtrError::new(code::ENOMEM, c"Cannot allocate argument list"))?;
    for i in 0..n {
        // SAFETY: `i < argc`, so `argv.add(i)` is in bounds and holds a valid C string.
        let s = unsafe { CStr::from_ptr((*argv.add(i)).cast_const().cast()) };
        let s = s
            .to_str()
            .map_err(|_| CtrError::inval(c"Invalid argument encoding"))?;
        v.push(s, GFP_KERNEL)
            .map_err(|_| CtrError::new(code::ENOMEM, c"Cannot allocate argument list"))?;
    }
    Ok(v)
}

/// # Safety
///
/// `ti` must be a target constructed by `ctr_callback::<T>` and not yet destroyed.
unsafe fn private<'a, T: TargetOperations>(ti: *mut b::dm_target) -> &'a T {
    // SAFETY: `ctr_callback` stored a `KBox<T>` in `private`; it lives until `dtr`.
    unsafe { &*(*ti).private.cast::<T>() }
}

/// dm core's `ctr` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn ctr_callback<T: TargetOperations>(
    ti: *mut b::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
) -> c_int {
    let Some(raw) = NonNull::new(ti) else {
        return code::EINVAL.to_errno();
    };
    let mut ctx = TargetCtr {
        ti: raw,
        _ctr: PhantomData,
    };
    // Fits: a `PerBio` is a small struct, not gigabytes.
    ctx.get_mut().per_io_data_size = size_of::<T::PerBio>() as c_uint;
    // SAFETY: dm core passes `argc` valid strings that outlive the constructor.
    let result = unsafe { collect_args(argc, argv) }.and_then(|args| T::ctr(&mut ctx, &args));
    match result {
        Ok(t) => {
            ctx.get_mut().private = KBox::into_raw(t).cast::<c_void>();
            0
        }
        Err(e) => {
            // dm core prints `ti->error` and never writes through it.
            ctx.get_mut().error = e.msg.as_ptr().cast_mut().cast();
            e.errno.to_errno()
        }
    }
}

/// dm core's `dtr` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn dtr_callback<T: TargetOperations>(ti: *mut b::dm_target) {
    // SAFETY: dm core calls dtr once, on a target whose ctr succeeded; `private` holds the
    // `KBox<T>` from `ctr_callback`, which we take back and drop here.
    unsafe {
        let p = (*ti).private.cast::<T>();
        (*ti).private = ptr::null_mut();
        if !p.is_null() {
            drop(KBox::from_raw(p));
        }
    }
}

/// dm core's `map` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn map_callback<T: TargetOperations>(
    ti: *mut b::dm_target,
    bio: *mut bindings::bio,
) -> c_int {
    let Some(raw) = NonNull::new(bio) else {
        return b::DM_MAPIO_KILL as c_int;
    };
    // SAFETY: dm core calls map on a constructed target with a bio it lends to us.
    let (t, target, mut bio) =
        unsafe { (private::<T>(ti), Target::from_raw(ti), Bio::from_raw(raw)) };
    // SAFETY: the constructor set `per_io_data_size` to the size of `T::PerBio`, so dm core
    // reserved that much (aligned for its own pointers, enough for a `Copy` note) next to
    // this bio for as long as it lives; nothing else uses it. It is initialised here.
    let note = unsafe {
        let p = b::dm_per_bio_data(bio_ptr(&bio), size_of::<T::PerBio>()).cast::<T::PerBio>();
        p.write(T::PerBio::default());
        &mut *p
    };
    let action = t.map(target, &mut bio, note);
    if bio.is_deferred() {
        // The target owns the bio now and ends it itself, whatever it answered.
        return b::DM_MAPIO_SUBMITTED as c_int;
    }
    match action {
        MapAction::Deferred => b::DM_MAPIO_KILL as c_int,
        MapAction::Remap => b::DM_MAPIO_REMAPPED as c_int,
        MapAction::Complete(status) => {
            bio.complete(status);
            b::DM_MAPIO_SUBMITTED as c_int
        }
        MapAction::Kill => b::DM_MAPIO_KILL as c_int,
    }
}

/// dm core's `end_io` hook for target type `T` (installed only if `T::HAS_END_IO`).
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn end_io_callback<T: TargetOperations>(
    ti: *mut b::dm_target,
    bio: *mut bindings::bio,
    error: *mut b::blk_status_t,
) -> c_int {
    let (Some(raw), false) = (NonNull::new(bio), error.is_null()) else {
        return b::DM_ENDIO_DONE as c_int;
    };
    // SAFETY: dm core lends the completed clone to end_io on a constructed target; the
    // per-bio note was initialised by `map_callback` for this bio.
    let (t, target, mut bio, note) = unsafe {
        let bio = Bio::from_raw(raw);
        let note =
            &mut *b::dm_per_bio_data(raw.as_ptr(), size_of::<T::PerBio>()).cast::<T::PerBio>();
        (private::<T>(ti), Target::from_raw(ti), bio, note)
    };
    // SAFETY: `error` is dm core's status of this completion, valid for the call.
    let status = BlkStatus::from_raw(unsafe { *error });
    let status = t.end_io(target, &mut bio, note, status);
    if bio.is_deferred() {
        return b::DM_ENDIO_INCOMPLETE as c_int;
    }
    // SAFETY: as above.
    unsafe { *error = status.raw() };
    b::DM_ENDIO_DONE as c_int
}

/// The raw bio behind a lent one (for dm core calls the glue makes itself).
fn bio_ptr(bio: &Bio<'_>) -> *mut bindings::bio {
    bio.as_ptr()
}

/// dm core's `status` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn status_callback<T: TargetOperations>(
    ti: *mut b::dm_target,
    kind: b::status_type_t,
    _flags: c_uint,
    result: *mut c_char,
    maxlen: c_uint,
) {
    let kind = match kind {
        b::status_type_t_STATUSTYPE_INFO => StatusKind::Info,
        b::status_type_t_STATUSTYPE_TABLE => StatusKind::Table,
        _ => StatusKind::Ima,
    };
    // SAFETY: dm core passes a constructed target and a `maxlen`-byte result buffer.
    let (t, target, mut out) = unsafe {
        (
            private::<T>(ti),
            Target::from_raw(ti),
            StatusWriter::from_raw(result, maxlen),
        )
    };
    t.status(target, kind, &mut out);
}

/// dm core's `message` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn message_callback<T: TargetOperations>(
    ti: *mut b::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
    result: *mut c_char,
    maxlen: c_uint,
) -> c_int {
    // SAFETY: dm core passes `argc` valid strings for the duration of the call.
    let args = match unsafe { collect_args(argc, argv) } {
        Ok(a) => a,
        Err(e) => return e.errno.to_errno(),
    };
    // SAFETY: dm core passes a constructed target and a `maxlen`-byte result buffer.
    let (t, target, mut out) = unsafe {
        (
            private::<T>(ti),
            Target::from_raw(ti),
            StatusWriter::from_raw(result, maxlen),
        )
    };
    match t.message(target, &args, &mut out) {
        // 1 tells dm core that the result buffer holds a reply for userspace.
        Ok(()) => c_int::from(out.wrote()),
        Err(e) => e.to_errno(),
    }
}

/// dm core's `iterate_devices` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn iterate_devices_callback<T: TargetOperations>(
    ti: *mut b::dm_target,
    f: b::iterate_devices_callout_fn,
    data: *mut c_void,
) -> c_int {
    let mut visit = DeviceVisitor {
        ti,
        f,
        data,
        _call: PhantomData,
    };
    // SAFETY: dm core calls this on a constructed target.
    let (t, target) = unsafe { (private::<T>(ti), Target::from_raw(ti)) };
    t.iterate_devices(target, &mut visit)
}

/// dm core's `io_hints` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn io_hints_callback<T: TargetOperations>(
    ti: *mut b::dm_target,
    limits: *mut bindings::queue_limits,
) {
    // SAFETY: dm core passes a constructed target and the limits it is computing, which
    // nothing else touches during the call.
    let (t, target, limits) = unsafe { (private::<T>(ti), Target::from_raw(ti), &mut *limits) };
    t.io_hints(target, &mut QueueLimits(limits));
}

/// dm core's `presuspend` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn presuspend_callback<T: TargetOperations>(ti: *mut b::dm_target) {
    // SAFETY: dm core calls this on a constructed target.
    let (t, target) = unsafe { (private::<T>(ti), Target::from_raw(ti)) };
    t.presuspend(target);
}

/// dm core's `postsuspend` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn postsuspend_callback<T: TargetOperations>(ti: *mut b::dm_target) {
    // SAFETY: dm core calls this on a constructed target.
    let (t, target) = unsafe { (private::<T>(ti), Target::from_raw(ti)) };
    t.postsuspend(target);
}

/// dm core's `preresume` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn preresume_callback<T: TargetOperations>(ti: *mut b::dm_target) -> c_int {
    // SAFETY: dm core calls this on a constructed target.
    let (t, target) = unsafe { (private::<T>(ti), Target::from_raw(ti)) };
    match t.preresume(target) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// dm core's `resume` hook for target type `T`.
///
/// # Safety
///
/// Only dm core calls this, through the `target_type` that [`Registration`] registered,
/// with the arguments its contract in `device-mapper.h` guarantees.
unsafe extern "C" fn resume_callback<T: TargetOperations>(ti: *mut b::dm_target) {
    // SAFETY: dm core calls this on a constructed target.
    let (t, target) = unsafe { (private::<T>(ti), Target::from_raw(ti)) };
    t.resume(target);
}
