// SPDX-License-Identifier: GPL-2.0

//! One authenticated replication connection between two AMFs of a group: the handshake
//! that proves both know the group's secret, and framed, tagged, sequence-numbered sending
//! and receiving of the core's wire messages over a [`Stream`] of the table's transport.
//!
//! The handshake is the core's state machine (`core::handshake`, `Documentation/protocol.rst`):
//! `Hello` both ways, a `Proof` both ways bound to the sides, node ids, nonces and group,
//! then a `Confirm` both ways tagged under the derived session key. A [`Session`] exists
//! only after the peer's `Confirm` verified, so nothing is installed, replaced or dropped
//! for a peer that has not shown it holds the key. Every later frame carries an HMAC tag
//! under that key, so a frame recorded on one connection is refused on any other, and a
//! strictly increasing sequence number, so it is refused when replayed on the same one.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::{new_mutex, prelude::*, sync::Mutex, time::Ktime};

use crate::core_proto::handshake::{
    Handshake, SecretMac, CONFIRM_SEQ, FIRST_SESSION_SEQ, HELLO_SEQ, PROOF_SEQ,
};
use crate::core_proto::wire::{
    self, Body, Crc32c, Frame, HandshakeError, Message, SeqWindow, Side, Tagger, WireError,
    HEADER_LEN, TAG_LEN, TRAILER_LEN,
};
use crate::kernel_ext::{
    checksum,
    crypto::{self, HmacSha256, KeyBytes},
};
use crate::transport::Stream;

/// Longest a whole handshake may take, from the connection to the peer's key confirmation:
/// a stranger that connects and then sends slowly or nothing holds the listener no longer.
pub(crate) const HANDSHAKE_MS: u32 = 10_000;
/// Longest a frame that has started may go without a byte arriving: a half-open or stalled
/// peer breaks its connection instead of holding the receiver for ever.
pub(crate) const STALL_MS: u32 = 10_000;
/// Receive timeout of a connection: how often a receive loop looks at its stop flag.
pub(crate) const RECV_POLL_MS: u32 = 200;
/// Send timeout: a peer that takes no data for this long is treated as gone.
pub(crate) const SEND_TIMEOUT_MS: u32 = 5_000;
/// Largest control frame (everything but a record).
pub(crate) const CONTROL_LEN: usize = wire::HEADER_LEN + wire::HELLO_LEN + wire::TRAILER_LEN;

/// The kernel's CRC-32C for the wire format.
pub(crate) struct KernelCrc;

impl Crc32c for KernelCrc {
    fn append(crc: u32, data: &[u8]) -> u32 {
        checksum::crc32c_append(crc, data)
    }
}

/// The group secret's HMAC for the core's handshake.
struct SecretHmac<'a>(&'a HmacSha256);

impl SecretMac for SecretHmac<'_> {
    fn mac(&self, parts: &[&[u8]], out: &mut [u8; 32]) -> bool {
        self.0.tag(parts, out).is_ok()
    }

    fn equal(&self, x: &[u8], y: &[u8]) -> bool {
        crypto::tags_equal(x, y)
    }
}

/// The core's `Tagger` over a kernel HMAC.
struct HmacTagger<'a>(&'a HmacSha256);

impl Tagger for HmacTagger<'_> {
    fn tag(&mut self, signed: &[u8], out: &mut [u8; TAG_LEN]) -> bool {
        self.0.tag(&[signed], out).is_ok()
    }
}

/// Why a connection could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// The socket failed, timed out or was closed.
    Io,
    /// The peer sent something malformed (counted as a bad frame).
    Malformed,
    /// A frame of an established session failed its tag or sequence number (counted as
    /// an authentication failure).
    Auth,
    /// The handshake refused the peer (counted as an authentication failure).
    Refused(HandshakeError),
    /// We are being torn down.
    Stopped,
    /// Out of memory.
    NoMemory,
    /// The peer sent part of a frame and then nothing for [`STALL_MS`], or did not finish
    /// its handshake within [`HANDSHAKE_MS`] (counted as a stall).
    Stalled,
}

/// What a side of the handshake needs.
pub(crate) struct Identity<'a> {
    /// Our node id.
    pub(crate) node: u32,
    /// The group UUID.
    pub(crate) group: [u8; 16],
    /// The shared secret (the `logon` key's payload).
    pub(crate) secret: &'a HmacSha256,
}

/// An established, authenticated connection.
pub(crate) struct Session {
    stream: KBox<dyn Stream>,
    /// The peer's node id (proven by the handshake).
    pub(crate) peer: u32,
    /// The peer's address and port, for logs.
    pub(crate) addr: Option<([u8; 4], u16)>,
    our_node: u32,
    /// Tags under the connection's key; freeing it wipes the key.
    key: HmacSha256,
    /// Sequence number of the next frame sent; the sending lock also orders whole frames.
    tx: Pin<KBox<Mutex<u64>>>,
    /// Receive side: replay window.
    rx_seq: Pin<KBox<Mutex<SeqWindow>>>,
    /// Set when the connection failed: nothing more is sent or received on it.
    broken: AtomicBool,
    /// Frames sent.
    pub(crate) sent: AtomicU64,
}

impl Session {
    /// Runs the handshake on a connected `stream` at `side` of it. `expect` is the peer
    /// node id we dialled, or None for an accepted connection, whose node id `known` must
    /// accept. Returns only once the peer confirmed the session key. Sleeps; not for the
    /// I/O path.
    #[inline(never)]
    pub(crate) fn handshake(
        stream: KBox<dyn Stream>,
        me: &Identity<'_>,
        side: Side,
        expect: Option<u32>,
        known: impl Fn(u32) -> bool,
        stop: &AtomicBool,
    ) -> Result<Self, SessionError> {
        stream.set_timeouts(SEND_TIMEOUT_MS, RECV_POLL_MS);
        let limit = Limit::handshake();
        // An accepted RDMA request the peer never completes counts against the deadline too.
        wait_ready(&*stream, limit, stop)?;
        let mut nonce = [0u8; 32];
        crypto::random_bytes(&mut nonce);
        let mut hs = Handshake::new(side, me.node, me.group, nonce, expect);
        let secret = SecretHmac(me.secret);
        // On the heap: the handshake's frame stays under 1 KiB.
        let mut buf =
            KBox::new([0u8; CONTROL_LEN], GFP_KERNEL).map_err(|_| SessionError::NoMemory)?;
        let hello = Message::Hello(hs.hello());
        send_control(&*stream, &hello, me.node, HELLO_SEQ, None, &mut buf)?;
        let theirs = match recv_control(&*stream, &mut buf, limit, stop)?.body {
            Body::Hello(h) => h,
            _ => return Err(SessionError::Malformed),
        };
        let proof = hs
            .on_hello(&theirs, known, &secret)
            .map_err(SessionError::Refused)?;
        send_control(
            &*stream,
            &Message::Proof(proof),
            me.node,
            PROOF_SEQ,
            None,
            &mut buf,
        )?;
        let got = match recv_control(&*stream, &mut buf, limit, stop)?.body {
            Body::Proof(p) => p,
            _ => return Err(SessionError::Malformed),
        };
        let key = {
            let mut bytes = KeyBytes::new();
            hs.on_proof(&got, &secret, &mut bytes.0)
                .map_err(SessionError::Refused)?;
            HmacSha256::new(&bytes.0).map_err(|_| SessionError::NoMemory)?
        };
        let confirm = Message::Confirm(hs.confirm());
        let mut tagger = HmacTagger(&key);
        send_control(
            &*stream,
            &confirm,
            me.node,
            CONFIRM_SEQ,
            Some(&mut tagger),
            &mut buf,
        )?;
        let mut window = SeqWindow::default();
        let f = recv_control(&*stream, &mut buf, limit, stop)?;
        hs.on_confirm(&f, &mut tagger, &mut window)
            .map_err(SessionError::Refused)?;
        let peer = hs
            .peer()
            .ok_or(SessionError::Refused(HandshakeError::OutOfOrder))?;
        let tx = KBox::pin_init(new_mutex!(FIRST_SESSION_SEQ, "amf:repl_tx"), GFP_KERNEL)
            .map_err(|_| SessionError::NoMemory)?;
        let rx_seq = KBox::pin_init(new_mutex!(window, "amf:repl_rx"), GFP_KERNEL)
            .map_err(|_| SessionError::NoMemory)?;
        Ok(Self {
            addr: stream.peer_addr(),
            stream,
            peer,
            our_node: me.node,
            key,
            tx,
            rx_seq,
            broken: AtomicBool::new(false),
            sent: AtomicU64::new(0),
        })
    }

    /// Whether the connection failed.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Marks the connection failed and wakes its receive loop.
    pub(crate) fn close(&self) {
        self.broken.store(true, Ordering::Release);
        self.stream.shutdown();
    }

    fn fail<T>(&self, e: SessionError) -> Result<T, SessionError> {
        if e == SessionError::Io {
            self.close();
        }
        Err(e)
    }

    /// Sends a control message (ack, recovery), authenticated.
    pub(crate) fn send(&self, msg: &Message<'_>) -> Result<(), SessionError> {
        if self.is_broken() {
            return Err(SessionError::Io);
        }
        let mut buf = [0u8; CONTROL_LEN];
        let mut seq = self.tx.lock();
        let mut tagger = HmacTagger(&self.key);
        let n = wire::encode::<KernelCrc>(msg, self.our_node, *seq, Some(&mut tagger), &mut buf)
            .map_err(|_| SessionError::Malformed)?;
        *seq += 1;
        let sent = send_parts(
            &*self.stream,
            &[buf.get(..n).ok_or(SessionError::Malformed)?],
        );
        drop(seq);
        self.sent_frame(sent)
    }

    /// Counts a sent frame, or breaks the connection on a socket error.
    fn sent_frame(&self, sent: Result<(), SessionError>) -> Result<(), SessionError> {
        match sent {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    /// Sends a record whose blocks stay in the caller's buffers (scatter-gather: head,
    /// blocks, trailer), authenticated.
    pub(crate) fn send_record(
        &self,
        header: &wire::RecordHeader,
        blocks: &[wire::Block<'_>],
    ) -> Result<(), SessionError> {
        if self.is_broken() {
            return Err(SessionError::Io);
        }
        let mut descs = [wire::BlockDesc {
            role: wire::Role::NewData,
            index: 0,
            len: 0,
        }; MAX_RECORD_BLOCKS];
        for (d, b) in descs.iter_mut().zip(blocks) {
            *d = wire::BlockDesc {
                role: b.role,
                index: b.index,
                len: u32::try_from(b.bytes.len()).map_err(|_| SessionError::Malformed)?,
            };
        }
        let descs = descs.get(..blocks.len()).ok_or(SessionError::Malformed)?;
        let mut head = [0u8; wire::HEADER_LEN + wire::RECORD_FIXED_LEN + 8 * MAX_RECORD_BLOCKS];
        let mut parts: [&[u8]; MAX_RECORD_BLOCKS + 2] = [&[]; MAX_RECORD_BLOCKS + 2];
        let mut seq = self.tx.lock();
        let (hlen, _total) =
            wire::encode_record_head(header, descs, self.our_node, *seq, true, &mut head)
                .map_err(|_| SessionError::Malformed)?;
        *seq += 1;
        let head = head.get(..hlen).ok_or(SessionError::Malformed)?;
        let mut n = 0;
        for (slot, p) in parts.iter_mut().zip(Iterator::chain(
            core::iter::once(head),
            blocks.iter().map(|b| b.bytes),
        )) {
            *slot = p;
            n += 1;
        }
        let signed = parts.get(..n).ok_or(SessionError::Malformed)?;
        let mut tag = [0u8; TAG_LEN];
        self.key
            .tag(signed, &mut tag)
            .map_err(|_| SessionError::Auth)?;
        let crc = signed.iter().fold(0, |c, p| checksum::crc32c_append(c, p));
        let trailer = wire::record_trailer::<KernelCrc>(crc, &tag);
        if let Some(slot) = parts.get_mut(n) {
            *slot = &trailer;
            n += 1;
        }
        let sent = send_parts(
            &*self.stream,
            parts.get(..n).ok_or(SessionError::Malformed)?,
        );
        drop(seq);
        self.sent_frame(sent)
    }

    /// Receives the next frame into `buf` (which must hold the largest frame the peer may
    /// send) and checks checksum, tag and sequence number. Returns its length; decode it
    /// again with [`Session::decode`]. `Ok(None)` when nothing arrived within the receive
    /// timeout (the caller looks at its stop flag and calls again).
    pub(crate) fn recv(
        &self,
        buf: &mut [u8],
        stop: &AtomicBool,
    ) -> Result<Option<usize>, SessionError> {
        if self.is_broken() {
            return Err(SessionError::Io);
        }
        let head = buf.get_mut(..HEADER_LEN).ok_or(SessionError::Malformed)?;
        let limit = Limit::Stall {
            ms: i64::from(STALL_MS),
        };
        match recv_exact(&*self.stream, head, true, stop, limit) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => return self.fail(e),
        }
        let len = match wire::frame_len(head) {
            Ok(l) if l <= buf.len() => l,
            // An unknown version, a bad magic or a frame larger than any record of this
            // group: the stream cannot be resynchronised.
            _ => {
                self.close();
                return Err(SessionError::Malformed);
            }
        };
        let rest = buf
            .get_mut(HEADER_LEN..len)
            .ok_or(SessionError::Malformed)?;
        if let Err(e) = recv_exact(&*self.stream, rest, false, stop, limit) {
            return self.fail(e);
        }
        let frame = buf.get(..len).ok_or(SessionError::Malformed)?;
        let (f, _) = wire::decode::<KernelCrc>(frame).map_err(|_| SessionError::Malformed)?;
        f.verify(&mut HmacTagger(&self.key))
            .map_err(|_| SessionError::Auth)?;
        if f.header.sender != self.peer || !self.rx_seq.lock().accept(f.header.seq) {
            return Err(SessionError::Auth);
        }
        Ok(Some(len))
    }

    /// Decodes a frame [`Session::recv`] already checked.
    pub(crate) fn decode(frame: &[u8]) -> Option<Frame<'_>> {
        wire::decode::<KernelCrc>(frame).ok().map(|(f, _)| f)
    }
}

/// Blocks a record carries at most: new data of every data chunk (replication takes groups
/// of at most 16 members), or P and Q; with the head, one HMAC over at most 16 parts.
pub(crate) const MAX_RECORD_BLOCKS: usize = 15;

/// Bytes of the largest record a group of `data_chunks` chunks of `chunk_bytes` sends.
pub(crate) fn max_record_len(data_chunks: usize, chunk_bytes: usize) -> usize {
    wire::record_head_len(data_chunks.max(2))
        .saturating_add(data_chunks.max(2).saturating_mul(chunk_bytes))
        .saturating_add(TRAILER_LEN)
}

fn send_parts(stream: &dyn Stream, parts: &[&[u8]]) -> Result<(), SessionError> {
    stream.send(parts).map_err(stream_error)
}

/// A stream error as the session counts it: `EBADMSG` is the transport's own framing
/// broken by the peer (RDMA), a bad frame; anything else is the connection failing.
fn stream_error(e: Error) -> SessionError {
    if e.to_errno() == -(kernel::bindings::EBADMSG as i32) {
        SessionError::Malformed
    } else {
        SessionError::Io
    }
}

/// When a receive gives up: at a fixed point (a handshake's overall deadline), or when a
/// frame makes no progress for a while (a session).
#[derive(Clone, Copy)]
pub(crate) enum Limit {
    /// Nothing may arrive after `ms` from `start`.
    Until { start: Ktime, ms: i64 },
    /// A frame that has started may go `ms` without a byte.
    Stall { ms: i64 },
}

impl Limit {
    /// The overall deadline of a handshake that starts now.
    fn handshake() -> Self {
        Limit::Until {
            start: Ktime::ktime_get(),
            ms: i64::from(HANDSHAKE_MS),
        }
    }

    /// Whether a receive that last made progress at `progress` gives up now.
    fn passed(&self, progress: Ktime) -> bool {
        let now = Ktime::ktime_get();
        match *self {
            Limit::Until { start, ms } => kernel::time::ktime_ms_delta(now, start) >= ms,
            Limit::Stall { ms } => kernel::time::ktime_ms_delta(now, progress) >= ms,
        }
    }
}

/// Fills `buf` from the stream. With `idle_ok` a receive timeout before the first byte
/// returns `Ok(false)`; once a frame has started, timeouts wait on (the rest of a frame is
/// on its way) until `limit` says the peer is stalled (`Io`), or we are stopping.
fn recv_exact(
    stream: &dyn Stream,
    buf: &mut [u8],
    idle_ok: bool,
    stop: &AtomicBool,
    limit: Limit,
) -> Result<bool, SessionError> {
    let mut at = 0;
    let mut progress = Ktime::ktime_get();
    while at < buf.len() {
        if stop.load(Ordering::Acquire) {
            return Err(SessionError::Stopped);
        }
        let Some(dst) = buf.get_mut(at..) else {
            return Err(SessionError::Malformed);
        };
        match stream.recv(dst) {
            Ok(0) => return Err(SessionError::Io),
            Ok(n) => {
                at += n;
                progress = Ktime::ktime_get();
            }
            Err(e) if e == EAGAIN => {
                if at == 0 && idle_ok {
                    return Ok(false);
                }
                if limit.passed(progress) {
                    return Err(SessionError::Stalled);
                }
            }
            Err(e) => return Err(stream_error(e)),
        }
    }
    Ok(true)
}

/// Waits until the stream is usable (see [`Stream::wait_ready`]), within `limit`.
fn wait_ready(stream: &dyn Stream, limit: Limit, stop: &AtomicBool) -> Result<(), SessionError> {
    let start = Ktime::ktime_get();
    loop {
        if stop.load(Ordering::Acquire) {
            return Err(SessionError::Stopped);
        }
        match stream.wait_ready(RECV_POLL_MS) {
            Ok(()) => return Ok(()),
            Err(e) if e.to_errno() == -(kernel::bindings::ETIMEDOUT as i32) => {
                if limit.passed(start) {
                    return Err(SessionError::Stalled);
                }
            }
            Err(_) => return Err(SessionError::Io),
        }
    }
}

/// Encodes and sends one handshake frame (authenticated with `tagger`).
#[inline(never)]
fn send_control(
    stream: &dyn Stream,
    msg: &Message<'_>,
    node: u32,
    seq: u64,
    tagger: Option<&mut dyn Tagger>,
    buf: &mut [u8; CONTROL_LEN],
) -> Result<(), SessionError> {
    let n = wire::encode::<KernelCrc>(msg, node, seq, tagger, buf)
        .map_err(|_| SessionError::Malformed)?;
    send_parts(stream, &[buf.get(..n).ok_or(SessionError::Malformed)?])
}

/// Receives one handshake frame within `ms` (its tag, if any, is not checked here).
#[inline(never)]
fn recv_control<'a>(
    stream: &dyn Stream,
    buf: &'a mut [u8; CONTROL_LEN],
    limit: Limit,
    stop: &AtomicBool,
) -> Result<Frame<'a>, SessionError> {
    let start = Ktime::ktime_get();
    loop {
        let head = buf.get_mut(..HEADER_LEN).ok_or(SessionError::Malformed)?;
        if recv_exact(stream, head, true, stop, limit)? {
            break;
        }
        if limit.passed(start) {
            return Err(SessionError::Stalled);
        }
    }
    let len = match wire::frame_len(buf.get(..HEADER_LEN).ok_or(SessionError::Malformed)?) {
        Ok(l) if l <= CONTROL_LEN => l,
        // A peer of another protocol version: say so rather than "malformed".
        Err(WireError::UnsupportedVersion(_)) => {
            return Err(SessionError::Refused(HandshakeError::NoCommonVersion))
        }
        _ => return Err(SessionError::Malformed),
    };
    let rest = buf
        .get_mut(HEADER_LEN..len)
        .ok_or(SessionError::Malformed)?;
    recv_exact(stream, rest, false, stop, limit)?;
    let frame = buf.get(..len).ok_or(SessionError::Malformed)?;
    wire::decode::<KernelCrc>(frame)
        .map(|(f, _)| f)
        .map_err(|_| SessionError::Malformed)
}
