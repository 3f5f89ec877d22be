// SPDX-License-Identifier: GPL-2.0

//! Reliable-connected RDMA message streams over the kernel's connection manager and verbs
//! (`include/rdma/rdma_cm.h`, `include/rdma/ib_verbs.h`), in `init_net`, IPv4.
//!
//! A connection is one RC queue pair with one completion queue polled in process context
//! (`IB_POLL_WORKQUEUE`). Messages are IB SENDs of at most [`MSG_BYTES`] into receive
//! buffers posted ahead; each carries an 8-byte header with the credits its sender grants
//! back. Flow control is credit based, as SMB Direct's: a sender spends one credit per data
//! message and waits (bounded by the send timeout) when it has none, so a receiver's buffers
//! are never overrun and a slow reader pushes back on the writer. A receiver grants a credit
//! back for each buffer it has consumed and re-posted: on its next data message, or in a
//! credit-only message once it owes half of them or the peer said it is out. Credit-only
//! messages use [`CTRL_SLOTS`] extra receive buffers, one in flight at a time, re-posted by
//! the completion handler itself, so credits always flow even when neither side has data.
//!
//! Connections are made in a NOIO scope (writes may be waiting for them), like the TCP
//! sockets' GFP_NOIO. Data is copied into and out of buffers that are DMA-mapped once per
//! connection: the replication records come from stripe buffers that may be vmalloc'ed,
//! which a real HCA cannot gather from. The RC transport retries lost packets itself
//! (`retry_count` 7) and reports a dead peer as a failed completion; a disconnect, a device
//! removal or a failed completion closes the stream, which wakes every waiter. A message that
//! breaks the framing (bad magic, impossible length or grant) is not delivered, nor is
//! anything after it; the next call reports it once (`EBADMSG`) so the layer above counts it
//! and closes the stream.
//!
//! C headers: [`include/rdma/rdma_cm.h`](srctree/include/rdma/rdma_cm.h),
//! [`include/rdma/ib_verbs.h`](srctree/include/rdma/ib_verbs.h)

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

use kernel::{
    bindings,
    ffi::{c_int, c_void},
    new_condvar, new_mutex,
    prelude::*,
    sync::{CondVar, Mutex},
    time::{msecs_to_jiffies, Jiffies, Ktime},
};

use super::bindings as b;
use super::block_io::NoIoScope;

/// Bytes of one message, header included (the size of every posted buffer).
pub(crate) const MSG_BYTES: usize = 16384;
/// Receive buffers for data messages: the credits a sender starts with.
pub(crate) const CREDITS: u32 = 32;
/// Extra receive buffers for credit-only messages.
const CTRL_SLOTS: usize = 4;
const RECV_SLOTS: usize = CREDITS as usize + CTRL_SLOTS;
/// Send buffers for data messages; one more is kept for credit-only messages.
const DATA_SEND_SLOTS: usize = 16;
const SEND_SLOTS: usize = DATA_SEND_SLOTS + 1;
/// A credit-only message is sent once this many credits are owed.
const GRANT_AT: u32 = CREDITS / 2;
/// Pending connection requests a listener keeps.
const BACKLOG: usize = 8;
/// Address and route resolution timeout.
const RESOLVE_MS: u32 = 2000;

const HDR: usize = 8;
const MAGIC: u16 = 0xa3f1;
/// Header flag: the sender spent its last credit.
const FLAG_STARVED: u8 = 1;

// The event and status constants, as the bindings name them.
const EV_ADDR_RESOLVED: u32 = b::rdma_cm_event_type_RDMA_CM_EVENT_ADDR_RESOLVED;
const EV_ROUTE_RESOLVED: u32 = b::rdma_cm_event_type_RDMA_CM_EVENT_ROUTE_RESOLVED;
const EV_CONNECT_REQUEST: u32 = b::rdma_cm_event_type_RDMA_CM_EVENT_CONNECT_REQUEST;
const EV_ESTABLISHED: u32 = b::rdma_cm_event_type_RDMA_CM_EVENT_ESTABLISHED;
const EV_DEVICE_REMOVAL: u32 = b::rdma_cm_event_type_RDMA_CM_EVENT_DEVICE_REMOVAL;
const EV_TIMEWAIT_EXIT: u32 = b::rdma_cm_event_type_RDMA_CM_EVENT_TIMEWAIT_EXIT;
const EV_ADDR_CHANGE: u32 = b::rdma_cm_event_type_RDMA_CM_EVENT_ADDR_CHANGE;
const WC_SUCCESS: i32 = b::ib_wc_status_IB_WC_SUCCESS as i32;

/// The [`Error`] of a positive errno constant.
fn err(errno: u32) -> Error {
    Error::from_errno(-(errno as i32))
}

/// A deadline `ms` from now (0: none).
struct Deadline(Option<Ktime>, u32);

impl Deadline {
    fn new(ms: u32) -> Self {
        Self((ms != 0).then(Ktime::ktime_get), ms)
    }

    /// Jiffies left, or `None` once passed.
    fn left(&self) -> Option<Jiffies> {
        let Some(start) = self.0 else {
            return Some(msecs_to_jiffies(1000));
        };
        let spent = kernel::time::ktime_ms_delta(Ktime::ktime_get(), start);
        let left = i64::from(self.1) - spent;
        (left > 0).then(|| msecs_to_jiffies(u32::try_from(left).unwrap_or(u32::MAX)))
    }
}

// ---------------------------------------------------------------------------------------
// Connection manager events

/// What the connection manager reported for one id (the id's context).
#[pin_data]
struct CmEvents {
    #[pin]
    state: Mutex<CmState>,
    #[pin]
    changed: CondVar,
}

#[derive(Default)]
struct CmState {
    /// The id these events belong to (a listener's children report here until accepted).
    own: usize,
    /// The last event that ends a wait, with its status.
    last: Option<(u32, i32)>,
    established: bool,
    /// Disconnected, removed, failed: nothing more will come.
    closed: bool,
    /// A listener's connection requests not yet accepted (ids as addresses).
    requests: [usize; BACKLOG],
    nrequests: usize,
}

impl CmEvents {
    fn new() -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(
            pin_init!(Self {
                state <- new_mutex!(CmState::default(), "amf:rdma_cm"),
                changed <- new_condvar!("amf:rdma_cm_changed"),
            }),
            GFP_KERNEL,
        )
    }

    fn as_context(&self) -> *mut c_void {
        ptr::from_ref(self).cast_mut().cast()
    }

    /// Waits for `want` (or `ESTABLISHED` when `want` is it); fails on any other
    /// terminal event or after `ms`.
    fn wait_for(&self, want: u32, ms: u32) -> Result {
        let deadline = Deadline::new(ms);
        let mut st = self.state.lock();
        loop {
            if want == EV_ESTABLISHED && st.established {
                return Ok(());
            }
            if let Some((ev, status)) = st.last.take() {
                if ev == want && status == 0 {
                    return Ok(());
                }
                return Err(if status < 0 {
                    Error::from_errno(status)
                } else {
                    err(bindings::ECONNREFUSED)
                });
            }
            if st.closed {
                return Err(err(bindings::ECONNRESET));
            }
            let Some(j) = deadline.left() else {
                return Err(err(bindings::ETIMEDOUT));
            };
            let _ = self.changed.wait_interruptible_timeout(&mut st, j);
        }
    }

    fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

/// The connection manager's event handler for every id dm-amf creates.
///
/// # Safety
///
/// Called by the connection manager with a live id whose context is a [`CmEvents`] that
/// outlives the id (every owner destroys its ids before dropping their events).
unsafe extern "C" fn cm_handler(id: *mut b::rdma_cm_id, ev: *mut b::rdma_cm_event) -> c_int {
    // SAFETY: the id and event are live for the call (the function's contract).
    let (ctx, kind, status) = unsafe {
        (
            b::amf_rdma_context(id).cast::<CmEvents>(),
            b::amf_rdma_event_type(ev) as u32,
            b::amf_rdma_event_status(ev),
        )
    };
    // SAFETY: the context of every id we create is a live `CmEvents` (the contract).
    let events = unsafe { &*ctx };
    let mut st = events.state.lock();
    let mut destroy = 0;
    if kind == EV_CONNECT_REQUEST {
        // A new id for a peer's request; it reports here until accepted.
        if st.nrequests < BACKLOG && !st.closed {
            let n = st.nrequests;
            st.requests[n] = id as usize;
            st.nrequests += 1;
        } else {
            // Non-zero: the connection manager rejects and destroys the new id.
            destroy = 1;
        }
    } else if st.own != 0 && id as usize != st.own {
        // A request that went away before we accepted it: drop it, the CM destroys it.
        let n = st.nrequests;
        if let Some(i) = st.requests[..n].iter().position(|&r| r == id as usize) {
            st.requests.copy_within(i + 1..n, i);
            st.nrequests -= 1;
            destroy = 1;
        }
    } else {
        match kind {
            EV_ESTABLISHED => st.established = true,
            EV_ADDR_RESOLVED | EV_ROUTE_RESOLVED => st.last = Some((kind, status)),
            EV_TIMEWAIT_EXIT | EV_ADDR_CHANGE => {}
            _ => {
                // Errors, rejection, disconnection, device removal: terminal.
                st.last = Some((kind, if status < 0 { status } else { 1 }));
                st.closed = true;
                if kind == EV_DEVICE_REMOVAL {
                    pr_warn!("dm-amf: rdma device removed under a replication connection\n");
                }
            }
        }
    }
    drop(st);
    events.changed.notify_all();
    destroy
}

/// An owned connection manager id, destroyed on drop.
struct CmId(*mut b::rdma_cm_id);

impl CmId {
    /// A new RC id reporting to `events`, which must outlive it.
    fn new(events: &CmEvents) -> Result<Self> {
        // SAFETY: `cm_handler` has the handler's signature; `events` outlives the id
        // (callers keep both in one struct that drops the id first).
        let id = unsafe { b::amf_rdma_create_id(Some(cm_handler), events.as_context()) };
        let id = kernel::error::from_err_ptr(id)?;
        events.state.lock().own = id as usize;
        Ok(Self(id))
    }
}

impl Drop for CmId {
    fn drop(&mut self) {
        // SAFETY: we own the id; after this no handler runs for it.
        unsafe { b::rdma_destroy_id(self.0) };
    }
}

// SAFETY: the id is used from any thread; the CM serialises its own state.
unsafe impl Send for CmId {}
// SAFETY: as above.
unsafe impl Sync for CmId {}

// ---------------------------------------------------------------------------------------
// Buffers and completions

/// One posted buffer; its completion finds it through `cqe` (the first field).
#[repr(C)]
struct Slot {
    cqe: b::ib_cqe,
    conn: AtomicPtr<Conn>,
    index: usize,
    /// The buffer's owner; it is only reached through `ptr` (the device writes it too).
    _buf: KVec<u8>,
    ptr: *mut u8,
    dma: u64,
}

impl Slot {
    fn new(done: unsafe extern "C" fn(*mut b::ib_cq, *mut b::ib_wc), index: usize) -> Result<Self> {
        let mut buf = KVec::from_elem(0u8, MSG_BYTES, GFP_KERNEL)?;
        Ok(Self {
            cqe: b::ib_cqe { done: Some(done) },
            conn: AtomicPtr::new(ptr::null_mut()),
            index,
            ptr: buf.as_mut_ptr(),
            _buf: buf,
            dma: 0,
        })
    }

    /// The buffer.
    ///
    /// # Safety
    ///
    /// No work request using the slot is in flight, and no `bytes_mut` of it is live.
    unsafe fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is the slot's MSG_BYTES-long buffer; the caller excludes writers.
        unsafe { core::slice::from_raw_parts(self.ptr, MSG_BYTES) }
    }

    /// The buffer, to fill.
    ///
    /// # Safety
    ///
    /// The caller owns the slot (taken from the free set), and no work request uses it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn bytes_mut(&self) -> &mut [u8] {
        // SAFETY: `ptr` is the slot's MSG_BYTES-long buffer; the caller owns it alone.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, MSG_BYTES) }
    }

    fn cqe(&self) -> *mut b::ib_cqe {
        ptr::from_ref(&self.cqe).cast_mut()
    }
}

/// The completed slot and its connection.
///
/// # Safety
///
/// `wc` is a completion of a work request posted with a [`Slot`]'s cqe, whose connection
/// is live (connections drain their queue pair before they are freed).
unsafe fn completed<'a>(wc: *mut b::ib_wc) -> (&'a Slot, &'a Conn, i32, u32) {
    // SAFETY: the function's contract.
    unsafe {
        let slot = &*b::amf_ib_wc_cqe(wc).cast::<Slot>();
        let conn = &*slot.conn.load(Ordering::Acquire);
        (
            slot,
            conn,
            b::amf_ib_wc_status(wc),
            b::amf_ib_wc_byte_len(wc),
        )
    }
}

/// # Safety
///
/// Called by the RDMA core for a receive posted with a [`Slot`] (see [`completed`]).
unsafe extern "C" fn recv_done(_cq: *mut b::ib_cq, wc: *mut b::ib_wc) {
    // SAFETY: the function's contract.
    let (slot, conn, status, len) = unsafe { completed(wc) };
    conn.received(slot, status, len);
}

/// # Safety
///
/// Called by the RDMA core for a send posted with a [`Slot`] (see [`completed`]).
unsafe extern "C" fn send_done(_cq: *mut b::ib_cq, wc: *mut b::ib_wc) {
    // SAFETY: the function's contract.
    let (slot, conn, status, _) = unsafe { completed(wc) };
    conn.sent(slot, status);
}

// ---------------------------------------------------------------------------------------
// A connection

struct RxState {
    /// Received data messages, oldest first (slot indices).
    ready: [u8; RECV_SLOTS],
    head: usize,
    count: usize,
    /// Payload bytes of each slot, and how far the oldest one has been read.
    len: [u32; RECV_SLOTS],
    off: usize,
    /// A malformed message arrived: the next recv reports it (once), later ones fail.
    malformed: Malformed,
}

impl Default for RxState {
    fn default() -> Self {
        Self {
            ready: [0; RECV_SLOTS],
            head: 0,
            count: 0,
            len: [0; RECV_SLOTS],
            off: 0,
            malformed: Malformed::No,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Malformed {
    No,
    Pending,
    Reported,
}

impl Malformed {
    /// `EBADMSG` the first time after a malformed message, `ECONNRESET` later.
    fn report(&mut self) -> Option<Error> {
        match *self {
            Self::No => None,
            Self::Pending => {
                *self = Self::Reported;
                Some(err(bindings::EBADMSG))
            }
            Self::Reported => Some(err(bindings::ECONNRESET)),
        }
    }
}

struct TxState {
    credits: u32,
    /// Free data send slots (bit per slot).
    free: u32,
    /// The credit-only slot is in flight.
    ctrl_busy: bool,
}

/// The verbs objects of a connection (null until created).
struct Verbs {
    dev: *mut b::ib_device,
    pd: *mut b::ib_pd,
    cq: *mut b::ib_cq,
    qp: *mut b::ib_qp,
    lkey: u32,
}

#[derive(Default)]
struct Flags {
    /// Credits owed to the peer (buffers consumed and re-posted, not yet granted).
    owed: AtomicU32,
    /// The peer said it is out of credits.
    peer_starved: AtomicBool,
    broken: AtomicBool,
    send_ms: AtomicU32,
    recv_ms: AtomicU32,
}

/// The resources of one connected id. Field order is not drop order: `teardown` is.
#[pin_data]
struct Conn {
    cm: Pin<KBox<CmEvents>>,
    id: Option<CmId>,
    v: Verbs,
    recv: KVec<Slot>,
    send: KVec<Slot>,
    f: Flags,
    #[pin]
    rx: Mutex<RxState>,
    #[pin]
    rx_wait: CondVar,
    #[pin]
    tx: Mutex<TxState>,
    #[pin]
    tx_wait: CondVar,
}

// SAFETY: the raw pointers are RDMA objects owned by the connection; the verbs may be
// called from any thread, and mutable state is behind the mutexes and atomics.
unsafe impl Send for Conn {}
// SAFETY: as above.
unsafe impl Sync for Conn {}

impl Conn {
    /// Allocates the connection's state; resources come with [`Conn::setup`].
    fn new(cm: Pin<KBox<CmEvents>>, id: CmId) -> Result<Pin<KBox<Self>>> {
        let mut recv = KVec::with_capacity(RECV_SLOTS, GFP_KERNEL)?;
        for i in 0..RECV_SLOTS {
            recv.push(Slot::new(recv_done, i)?, GFP_KERNEL)?;
        }
        let mut send = KVec::with_capacity(SEND_SLOTS, GFP_KERNEL)?;
        for i in 0..SEND_SLOTS {
            send.push(Slot::new(send_done, i)?, GFP_KERNEL)?;
        }
        KBox::pin_init(
            pin_init!(Self {
                cm,
                id: Some(id),
                v: Verbs {
                    dev: ptr::null_mut(),
                    pd: ptr::null_mut(),
                    cq: ptr::null_mut(),
                    qp: ptr::null_mut(),
                    lkey: 0,
                },
                recv,
                send,
                f: Flags {
                    send_ms: AtomicU32::new(RESOLVE_MS),
                    recv_ms: AtomicU32::new(RESOLVE_MS),
                    ..Default::default()
                },
                rx <- new_mutex!(RxState::default(), "amf:rdma_rx"),
                rx_wait <- new_condvar!("amf:rdma_rx_wait"),
                tx <- new_mutex!(
                    TxState {
                        credits: CREDITS,
                        free: (1u32 << DATA_SEND_SLOTS) - 1,
                        ctrl_busy: false,
                    },
                    "amf:rdma_tx"
                ),
                tx_wait <- new_condvar!("amf:rdma_tx_wait"),
            }),
            GFP_KERNEL,
        )
    }

    fn id(&self) -> *mut b::rdma_cm_id {
        self.id.as_ref().map_or(ptr::null_mut(), |i| i.0)
    }

    /// Protection domain, completion queue, queue pair and mapped buffers on the id's
    /// device, then every receive posted: the peer may send as soon as it is connected.
    fn setup(self: Pin<&mut Self>) -> Result {
        // SAFETY: nothing here moves the connection; the slots' back pointers are to its
        // pinned address.
        let this = unsafe { self.get_unchecked_mut() };
        let id = this.id();
        // SAFETY: the id has a device once its address is resolved or it was requested.
        this.v.dev = unsafe { b::amf_rdma_device(id) };
        if this.v.dev.is_null() {
            return Err(err(bindings::ENODEV));
        }
        // SAFETY: a live device.
        this.v.pd = kernel::error::from_err_ptr(unsafe { b::amf_ib_alloc_pd(this.v.dev) })?;
        // SAFETY: a live PD.
        this.v.lkey = unsafe { b::amf_ib_pd_local_dma_lkey(this.v.pd) };
        let ncqe = (RECV_SLOTS + SEND_SLOTS + 1) as c_int;
        // SAFETY: a live device; completions only use the slots' own back pointers.
        this.v.cq = kernel::error::from_err_ptr(unsafe {
            b::amf_ib_alloc_cq(this.v.dev, ptr::null_mut(), ncqe)
        })?;
        // SAFETY: live id, PD and CQ.
        kernel::error::to_result(unsafe {
            b::amf_rdma_create_qp(
                id,
                this.v.pd,
                this.v.cq,
                SEND_SLOTS as u32,
                RECV_SLOTS as u32,
                1,
            )
        })?;
        // SAFETY: the queue pair was just created on the id.
        this.v.qp = unsafe { b::amf_rdma_qp(id) };
        let me: *mut Conn = this;
        let dev = this.v.dev;
        for (slots, to_dev) in [(&mut this.recv, false), (&mut this.send, true)] {
            for s in slots.iter_mut() {
                // SAFETY: a live device and a kmalloc'ed buffer the slot owns.
                let dma = unsafe { b::amf_ib_dma_map_single(dev, s.ptr.cast(), MSG_BYTES, to_dev) };
                // SAFETY: as above.
                if unsafe { b::amf_ib_dma_mapping_error(dev, dma) } != 0 {
                    return Err(ENOMEM);
                }
                s.dma = dma;
                s.conn.store(me, Ordering::Release);
            }
        }
        for s in this.recv.iter() {
            this.post_recv(s)?;
        }
        Ok(())
    }

    fn post_recv(&self, s: &Slot) -> Result {
        let mut sge = b::ib_sge {
            addr: s.dma,
            length: MSG_BYTES as u32,
            lkey: self.v.lkey,
        };
        // SAFETY: the buffer is mapped for the device; the slot outlives the request.
        unsafe { b::amf_ib_dma_sync_for_device(self.v.dev, s.dma, MSG_BYTES, false) };
        // SAFETY: a live queue pair; the work request is copied by the driver.
        kernel::error::to_result(unsafe { b::amf_ib_post_recv(self.v.qp, s.cqe(), &mut sge) })
    }

    fn post_send(&self, s: &Slot, len: usize) -> Result {
        let mut sge = b::ib_sge {
            addr: s.dma,
            length: len as u32,
            lkey: self.v.lkey,
        };
        // SAFETY: the buffer is mapped for the device and the CPU wrote `len` bytes.
        unsafe { b::amf_ib_dma_sync_for_device(self.v.dev, s.dma, len, true) };
        // SAFETY: a live queue pair; the work request is copied by the driver.
        kernel::error::to_result(unsafe { b::amf_ib_post_send(self.v.qp, s.cqe(), &mut sge, 1) })
    }

    /// Marks the stream unusable and wakes every waiter.
    fn fail(&self) {
        self.f.broken.store(true, Ordering::Release);
        self.rx_wait.notify_all();
        self.tx_wait.notify_all();
    }

    fn is_broken(&self) -> bool {
        self.f.broken.load(Ordering::Acquire) || self.cm.is_closed()
    }

    /// A receive completed (completion context: process context, may not wait for I/O).
    fn received(&self, slot: &Slot, status: i32, len: u32) {
        if status != WC_SUCCESS {
            self.fail();
            return;
        }
        let len = len as usize;
        // SAFETY: the buffer is mapped; the device finished writing `len` bytes.
        unsafe { b::amf_ib_dma_sync_for_cpu(self.v.dev, slot.dma, len.min(MSG_BYTES), false) };
        // SAFETY: the receive completed: the device is done with the buffer, and it is not
        // posted again before it is parsed here or read by `recv`.
        let h = unsafe { slot.bytes() }.get(..HDR);
        let parsed = h.and_then(|h| {
            let magic = u16::from_le_bytes([h[0], h[1]]);
            let grant = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            (magic == MAGIC && (HDR..=MSG_BYTES).contains(&len) && grant <= CREDITS)
                .then_some((h[2], grant))
        });
        let Some((flags, grant)) = parsed else {
            // Nothing after it is delivered; sends still work, so the layer above can
            // count the frame before it closes the stream (the buffer is not re-posted).
            let mut rx = self.rx.lock();
            if rx.malformed == Malformed::No {
                rx.malformed = Malformed::Pending;
            }
            drop(rx);
            self.rx_wait.notify_all();
            return;
        };
        if grant != 0 {
            let mut tx = self.tx.lock();
            tx.credits = (tx.credits + grant).min(CREDITS);
            drop(tx);
            self.tx_wait.notify_all();
        }
        if flags & FLAG_STARVED != 0 {
            self.f.peer_starved.store(true, Ordering::Release);
        }
        if len == HDR {
            // Credit-only: its buffer goes straight back and is not owed.
            if self.post_recv(slot).is_err() {
                self.fail();
            }
        } else {
            let mut rx = self.rx.lock();
            if rx.malformed != Malformed::No {
                return;
            }
            if rx.count == RECV_SLOTS {
                drop(rx);
                self.fail();
                return;
            }
            let tail = (rx.head + rx.count) % RECV_SLOTS;
            rx.ready[tail] = slot.index as u8;
            rx.len[slot.index] = (len - HDR) as u32;
            rx.count += 1;
            drop(rx);
            self.rx_wait.notify_all();
        }
        self.maybe_grant();
    }

    /// A send completed.
    fn sent(&self, slot: &Slot, status: i32) {
        if status != WC_SUCCESS {
            self.fail();
        }
        let mut tx = self.tx.lock();
        if slot.index == DATA_SEND_SLOTS {
            tx.ctrl_busy = false;
        } else {
            tx.free |= 1 << slot.index;
        }
        drop(tx);
        self.tx_wait.notify_all();
        if status == WC_SUCCESS {
            self.maybe_grant();
        }
    }

    /// Sends a credit-only message if enough credits are owed (or the peer is out) and
    /// none is in flight; otherwise a later completion or data message grants them.
    fn maybe_grant(&self) {
        let owed = self.f.owed.load(Ordering::Acquire);
        if owed == 0
            || (owed < GRANT_AT && !self.f.peer_starved.load(Ordering::Acquire))
            || self.f.broken.load(Ordering::Acquire)
        {
            return;
        }
        let mut tx = self.tx.lock();
        if tx.ctrl_busy {
            return;
        }
        tx.ctrl_busy = true;
        drop(tx);
        let Some(slot) = self.send.get(DATA_SEND_SLOTS) else {
            return;
        };
        let grant = self.f.owed.swap(0, Ordering::AcqRel);
        self.f.peer_starved.store(false, Ordering::Release);
        // SAFETY: the credit-only slot is ours while `ctrl_busy` is set, and no DMA reads
        // it until the post below.
        let buf = unsafe { slot.bytes_mut() };
        write_header(buf, 0, grant);
        if self.post_send(slot, HDR).is_err() {
            self.f.owed.fetch_add(grant, Ordering::AcqRel);
            self.fail();
        }
    }

    fn send(&self, parts: &[&[u8]]) -> Result {
        if let Some(e) = self.rx.lock().malformed.report() {
            return Err(e);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let deadline = Deadline::new(self.f.send_ms.load(Ordering::Relaxed));
        let (mut part, mut at, mut left) = (0usize, 0usize, total);
        while left > 0 {
            let (index, starved) = {
                let mut tx = self.tx.lock();
                loop {
                    if self.is_broken() {
                        return Err(err(bindings::EPIPE));
                    }
                    if tx.credits > 0 && tx.free != 0 {
                        break;
                    }
                    let Some(j) = deadline.left() else {
                        return Err(err(bindings::ETIMEDOUT));
                    };
                    let _ = self.tx_wait.wait_interruptible_timeout(&mut tx, j);
                }
                let index = tx.free.trailing_zeros() as usize;
                tx.free &= !(1 << index);
                tx.credits -= 1;
                (index, tx.credits == 0)
            };
            let Some(slot) = self.send.get(index) else {
                return Err(EINVAL);
            };
            // SAFETY: the slot was taken from the free mask above and no DMA reads it until
            // the post below.
            let buf = unsafe { slot.bytes_mut() };
            let n = left.min(MSG_BYTES - HDR);
            let mut filled = 0;
            while filled < n {
                let src = parts.get(part).and_then(|p| p.get(at..)).unwrap_or(&[]);
                let k = src.len().min(n - filled);
                buf[HDR + filled..HDR + filled + k].copy_from_slice(&src[..k]);
                filled += k;
                at += k;
                if !matches!(parts.get(part), Some(p) if at < p.len()) {
                    part += 1;
                    at = 0;
                }
            }
            let grant = self.f.owed.swap(0, Ordering::AcqRel);
            if grant != 0 {
                self.f.peer_starved.store(false, Ordering::Release);
            }
            write_header(buf, if starved { FLAG_STARVED } else { 0 }, grant);
            if self.post_send(slot, HDR + n).is_err() {
                self.f.owed.fetch_add(grant, Ordering::AcqRel);
                self.fail();
                return Err(err(bindings::EPIPE));
            }
            left -= n;
        }
        Ok(())
    }

    fn recv(&self, out: &mut [u8]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let deadline = Deadline::new(self.f.recv_ms.load(Ordering::Relaxed));
        let mut rx = self.rx.lock();
        loop {
            if let Some(e) = rx.malformed.report() {
                return Err(e);
            }
            if rx.count > 0 {
                break;
            }
            if self.f.broken.load(Ordering::Acquire) {
                return Err(err(bindings::ECONNRESET));
            }
            if self.cm.is_closed() {
                return Ok(0);
            }
            let Some(j) = deadline.left() else {
                return Err(EAGAIN);
            };
            let _ = self.rx_wait.wait_interruptible_timeout(&mut rx, j);
        }
        let index = rx.ready[rx.head] as usize;
        let Some(slot) = self.recv.get(index) else {
            return Err(EINVAL);
        };
        let len = rx.len[index] as usize;
        let from = HDR + rx.off;
        let n = out.len().min(len - rx.off);
        // SAFETY: a completed receive, not re-posted until it has been read (below).
        out[..n].copy_from_slice(&unsafe { slot.bytes() }[from..from + n]);
        rx.off += n;
        if rx.off == len {
            rx.off = 0;
            rx.head = (rx.head + 1) % RECV_SLOTS;
            rx.count -= 1;
            if self.post_recv(slot).is_err() {
                drop(rx);
                self.fail();
                return Ok(n);
            }
            self.f.owed.fetch_add(1, Ordering::AcqRel);
        }
        drop(rx);
        self.maybe_grant();
        Ok(n)
    }

    /// Disconnects and frees everything in the order the verbs require; the id goes last,
    /// after which no handler or completion refers to this connection.
    fn teardown(&mut self) {
        let id = self.id();
        if !self.v.qp.is_null() {
            // SAFETY: a live id with a queue pair: disconnect moves it to the error state,
            // the drain waits until every posted request has completed (flushed).
            unsafe {
                b::rdma_disconnect(id);
                b::ib_drain_qp(self.v.qp);
                b::rdma_destroy_qp(id);
            }
            self.v.qp = ptr::null_mut();
        }
        if !self.v.cq.is_null() {
            // SAFETY: no queue pair uses the CQ any more; this waits for its handler.
            unsafe { b::ib_free_cq(self.v.cq) };
            self.v.cq = ptr::null_mut();
        }
        let dev = self.v.dev;
        for (slots, to_dev) in [(&mut self.recv, false), (&mut self.send, true)] {
            for s in slots.iter_mut().filter(|s| s.dma != 0) {
                // SAFETY: mapped in `setup` on this device; no request uses it any more.
                unsafe { b::amf_ib_dma_unmap_single(dev, s.dma, MSG_BYTES, to_dev) };
                s.dma = 0;
            }
        }
        if !self.v.pd.is_null() {
            // SAFETY: nothing uses the PD any more.
            unsafe { b::amf_ib_dealloc_pd(self.v.pd) };
            self.v.pd = ptr::null_mut();
        }
        self.id = None;
    }
}

fn write_header(buf: &mut [u8], flags: u8, grant: u32) {
    let m = MAGIC.to_le_bytes();
    let g = grant.to_le_bytes();
    buf[..HDR].copy_from_slice(&[m[0], m[1], flags, 0, g[0], g[1], g[2], g[3]]);
}

// ---------------------------------------------------------------------------------------
// Public types

/// A connected RDMA message stream used as an ordered byte stream.
pub(crate) struct RdmaStream {
    conn: Pin<KBox<Conn>>,
}

impl RdmaStream {
    /// Connects to `ip:port` (an address of an RDMA device's netdev) within `timeout_ms`.
    pub(crate) fn connect(ip: [u8; 4], port: u16, timeout_ms: u32) -> Result<Self> {
        // Writes may wait for this connection: its allocations must not wait for them.
        let _noio = NoIoScope::enter();
        let cm = CmEvents::new()?;
        let id = CmId::new(&cm)?;
        let addr = u32::from_ne_bytes(ip);
        // SAFETY: a live id; the handler reports to `cm`.
        kernel::error::to_result(unsafe {
            b::amf_rdma_resolve_addr(id.0, addr, port.to_be(), RESOLVE_MS as _)
        })?;
        cm.wait_for(EV_ADDR_RESOLVED, timeout_ms)?;
        // SAFETY: a live id whose address is resolved.
        kernel::error::to_result(unsafe { b::rdma_resolve_route(id.0, RESOLVE_MS as _) })?;
        cm.wait_for(EV_ROUTE_RESOLVED, timeout_ms)?;
        let mut stream = Self {
            conn: Conn::new(cm, id)?,
        };
        stream.conn.as_mut().setup()?;
        // SAFETY: a live id with its queue pair and receives posted.
        kernel::error::to_result(unsafe { b::amf_rdma_connect(stream.conn.id()) })?;
        stream.conn.cm.wait_for(EV_ESTABLISHED, timeout_ms)?;
        stream.set_timeouts(timeout_ms, timeout_ms);
        Ok(stream)
    }

    /// Waits at most `ms` for an accepted connection to be established: `ETIMEDOUT` if it
    /// is not yet, another error if it failed (the peer rejected or went away).
    pub(crate) fn wait_established(&self, ms: u32) -> Result {
        self.conn.cm.wait_for(EV_ESTABLISHED, ms.max(1))
    }

    /// Sends every byte of `parts` in order.
    pub(crate) fn send(&self, parts: &[&[u8]]) -> Result {
        self.conn.send(parts)
    }

    /// Receives up to `buf.len()` bytes: `Ok(0)` when the peer disconnected, `EAGAIN` after
    /// the receive timeout, `EBADMSG` once for a malformed message (the stream is closed).
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.conn.recv(buf)
    }

    /// Send (waiting for credits) and receive timeouts, ms (0: none).
    pub(crate) fn set_timeouts(&self, send_ms: u32, recv_ms: u32) {
        self.conn.f.send_ms.store(send_ms, Ordering::Relaxed);
        self.conn.f.recv_ms.store(recv_ms, Ordering::Relaxed);
    }

    /// The other end's IPv4 address and port, if known.
    pub(crate) fn peer_addr(&self) -> Option<([u8; 4], u16)> {
        let id = self.conn.id();
        if id.is_null() {
            return None;
        }
        let (mut addr, mut port) = (0u32, 0u16);
        // SAFETY: a live id (its route stays until the id is destroyed at teardown); both
        // outputs are valid for writes.
        let r = unsafe { b::amf_rdma_peer_in(id, &mut addr, &mut port) };
        (r == 0).then(|| (addr.to_ne_bytes(), u16::from_be(port)))
    }

    /// Disconnects: wakes blocked calls here and at the peer.
    pub(crate) fn shutdown(&self) {
        self.conn.fail();
        let id = self.conn.id();
        if !id.is_null() {
            // SAFETY: a live id; disconnecting twice is harmless.
            unsafe { b::rdma_disconnect(id) };
        }
    }
}

impl Drop for RdmaStream {
    fn drop(&mut self) {
        // SAFETY: teardown does not move the connection; afterwards nothing points at it.
        unsafe { self.conn.as_mut().get_unchecked_mut() }.teardown();
    }
}

/// Accepts RDMA connections on an address of an RDMA device's netdev.
pub(crate) struct RdmaListener {
    // The id first: it must be destroyed before its events.
    id: CmId,
    cm: Pin<KBox<CmEvents>>,
}

impl RdmaListener {
    /// Listens on `ip:port`; fails (EADDRNOTAVAIL, ENODEV) when no RDMA device has `ip`.
    pub(crate) fn bind(ip: [u8; 4], port: u16) -> Result<Self> {
        let cm = CmEvents::new()?;
        let id = CmId::new(&cm)?;
        // SAFETY: a live id.
        kernel::error::to_result(unsafe {
            b::amf_rdma_bind_addr(id.0, u32::from_ne_bytes(ip), port.to_be())
        })?;
        // SAFETY: a bound id.
        kernel::error::to_result(unsafe { b::rdma_listen(id.0, BACKLOG as c_int) })?;
        Ok(Self { id, cm })
    }

    /// Waits at most `timeout_ms` for a request and accepts it; `Ok(None)` on timeout.
    /// It does not wait for the peer to complete the connection: a request that never
    /// does must not hold the listener. The caller waits for that with
    /// [`RdmaStream::wait_established`]. A request that cannot be accepted (no memory, the
    /// peer gone) fails with `ECONNABORTED`, and the listener goes on.
    pub(crate) fn accept(&self, timeout_ms: u32) -> Result<Option<RdmaStream>> {
        // Writes may wait for this connection: its allocations must not wait for them.
        let _noio = NoIoScope::enter();
        let deadline = Deadline::new(timeout_ms);
        let req = {
            let mut st = self.cm.state.lock();
            loop {
                if st.nrequests > 0 {
                    let r = st.requests[0];
                    let n = st.nrequests;
                    st.requests.copy_within(1..n, 0);
                    st.nrequests -= 1;
                    break r;
                }
                if st.closed {
                    return Err(err(bindings::ENODEV));
                }
                let Some(j) = deadline.left() else {
                    return Ok(None);
                };
                let _ = self.cm.changed.wait_interruptible_timeout(&mut st, j);
            }
        };
        Self::take(req, timeout_ms)
            .map(Some)
            .map_err(|_| err(bindings::ECONNABORTED))
    }

    /// Accepts the request `req` taken from the queue (without waiting for the peer).
    fn take(req: usize, timeout_ms: u32) -> Result<RdmaStream> {
        // The request's id is ours now (removed from the queue under the lock, so the
        // handler will not destroy it); it reports to the new events once accepted.
        let cm = CmEvents::new().inspect_err(|_| {
            // SAFETY: an id nobody else owns.
            unsafe { b::rdma_destroy_id(req as *mut b::rdma_cm_id) }
        })?;
        let id = CmId(req as *mut b::rdma_cm_id);
        cm.state.lock().own = id.0 as usize;
        let mut stream = RdmaStream {
            conn: Conn::new(cm, id)?,
        };
        stream.conn.as_mut().setup()?;
        // SAFETY: a requested id with its queue pair; the context outlives the id.
        kernel::error::to_result(unsafe {
            b::amf_rdma_accept(stream.conn.id(), stream.conn.cm.as_context())
        })?;
        stream.set_timeouts(timeout_ms, timeout_ms);
        Ok(stream)
    }
}

impl Drop for RdmaListener {
    fn drop(&mut self) {
        // Requests never accepted: destroying them rejects the peers.
        let mut st = self.cm.state.lock();
        st.closed = true;
        let n = st.nrequests;
        st.nrequests = 0;
        let reqs = st.requests;
        drop(st);
        for &r in &reqs[..n] {
            // SAFETY: ids nobody else owns (removed from the queue under the lock).
            unsafe { b::rdma_destroy_id(r as *mut b::rdma_cm_id) };
        }
        let _ = &self.id;
    }
}
