// SPDX-License-Identifier: GPL-2.0

//! The byte streams the replication channel runs on. The channel (`repl_session`, `repl`)
//! frames, authenticates and orders its messages itself and needs only an ordered,
//! reliable stream per peer pair; this trait is that contract, so that a second transport
//! (RDMA) carries the same protocol unchanged. TCP over kernel sockets and RDMA reliable
//! connections (`rust/rdma.rs`, when the kernel has the RDMA connection manager) implement
//! it; the table's `transport` chooses.

use kernel::prelude::*;

use crate::kernel_ext::net::{TcpListener, TcpStream};
#[cfg(CONFIG_INFINIBAND_ADDR_TRANS)]
use crate::kernel_ext::rdma::{RdmaListener, RdmaStream};

/// An ordered, reliable, connected byte stream to one peer. One thread may send while
/// another receives.
pub(crate) trait Stream: Send + Sync {
    /// Sends every byte of `parts`, in order, or fails (the stream is then unusable).
    /// `EBADMSG` (from either call, once): the peer broke the transport's own framing.
    fn send(&self, parts: &[&[u8]]) -> Result;
    /// Receives up to `buf.len()` bytes: `Ok(0)` when the peer closed, `EAGAIN` when the
    /// receive timeout passed with nothing received.
    fn recv(&self, buf: &mut [u8]) -> Result<usize>;
    /// Send and receive timeouts in milliseconds.
    fn set_timeouts(&self, send_ms: u32, recv_ms: u32);
    /// Wakes any blocked call; the stream is unusable afterwards.
    fn shutdown(&self);
    /// The other end's IPv4 address and port, for logs (None if not known).
    fn peer_addr(&self) -> Option<([u8; 4], u16)>;
    /// Waits at most `ms` for an accepted stream to be usable (an RDMA connection whose
    /// request was accepted but is not established yet); `ETIMEDOUT` when it is not yet,
    /// another error when it never will be. TCP streams are usable once accepted.
    fn wait_ready(&self, _ms: u32) -> Result {
        Ok(())
    }
}

/// Accepts streams from peers.
pub(crate) trait Listener: Send + Sync {
    /// Waits at most `timeout_ms` for a stream; `Ok(None)` on timeout, an error once the
    /// listener is unusable (e.g. its RDMA device was removed), except `ECONNABORTED`:
    /// one request could not be taken (see [`aborted`]) and the listener goes on. It does
    /// not wait for the peer: the stream may still need [`Stream::wait_ready`].
    fn accept(&self, timeout_ms: u32) -> Result<Option<KBox<dyn Stream>>>;
}

/// Whether an `accept` error concerns one connection request only (`ECONNABORTED`).
pub(crate) fn aborted(e: Error) -> bool {
    e.to_errno() == -(kernel::bindings::ECONNABORTED as i32)
}

/// The transports a table can choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// TCP over kernel sockets.
    Tcp,
    /// RDMA reliable connections (RoCE, InfiniBand, soft-RoCE).
    Rdma,
}

impl Transport {
    /// Whether this kernel can run the transport (RDMA needs the connection manager).
    pub(crate) fn available(self) -> bool {
        match self {
            Transport::Tcp => true,
            Transport::Rdma => cfg!(CONFIG_INFINIBAND_ADDR_TRANS),
        }
    }

    /// Listens on `ip:port`.
    pub(crate) fn listen(self, ip: [u8; 4], port: u16) -> Result<KBox<dyn Listener>> {
        match self {
            Transport::Tcp => boxed_listener(TcpListener::bind(ip, port)?),
            #[cfg(CONFIG_INFINIBAND_ADDR_TRANS)]
            Transport::Rdma => boxed_listener(RdmaListener::bind(ip, port)?),
            #[cfg(not(CONFIG_INFINIBAND_ADDR_TRANS))]
            Transport::Rdma => Err(ENODEV),
        }
    }

    /// Connects to `ip:port` within `timeout_ms`.
    pub(crate) fn connect(
        self,
        ip: [u8; 4],
        port: u16,
        timeout_ms: u32,
    ) -> Result<KBox<dyn Stream>> {
        match self {
            Transport::Tcp => boxed_stream(TcpStream::connect(ip, port, timeout_ms)?),
            #[cfg(CONFIG_INFINIBAND_ADDR_TRANS)]
            Transport::Rdma => boxed_stream(RdmaStream::connect(ip, port, timeout_ms)?),
            #[cfg(not(CONFIG_INFINIBAND_ADDR_TRANS))]
            Transport::Rdma => Err(ENODEV),
        }
    }
}

/// `l` boxed as a trait object.
fn boxed_listener<L: Listener + 'static>(l: L) -> Result<KBox<dyn Listener>> {
    let raw: *mut L = KBox::into_raw(KBox::new(l, GFP_KERNEL)?);
    let raw: *mut dyn Listener = raw;
    // SAFETY: the allocation `into_raw` just gave up, as a trait object (the kernel's box
    // has no unsized coercion).
    Ok(unsafe { KBox::from_raw(raw) })
}

/// `s` boxed as a trait object.
fn boxed_stream<S: Stream + 'static>(s: S) -> Result<KBox<dyn Stream>> {
    let raw: *mut S = KBox::into_raw(KBox::new(s, GFP_KERNEL)?);
    let raw: *mut dyn Stream = raw;
    // SAFETY: the allocation `into_raw` just gave up, as a trait object (the kernel's box
    // has no unsized coercion).
    Ok(unsafe { KBox::from_raw(raw) })
}

impl Stream for TcpStream {
    fn send(&self, parts: &[&[u8]]) -> Result {
        TcpStream::send(self, parts)
    }

    fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        TcpStream::recv(self, buf)
    }

    fn set_timeouts(&self, send_ms: u32, recv_ms: u32) {
        TcpStream::set_timeouts(self, send_ms, recv_ms)
    }

    fn shutdown(&self) {
        TcpStream::shutdown(self)
    }

    fn peer_addr(&self) -> Option<([u8; 4], u16)> {
        TcpStream::peer_addr(self)
    }
}

impl Listener for TcpListener {
    fn accept(&self, timeout_ms: u32) -> Result<Option<KBox<dyn Stream>>> {
        Ok(match TcpListener::accept(self, timeout_ms)? {
            Some(s) => Some(boxed_stream(s)?),
            None => None,
        })
    }
}

#[cfg(CONFIG_INFINIBAND_ADDR_TRANS)]
impl Stream for RdmaStream {
    fn send(&self, parts: &[&[u8]]) -> Result {
        RdmaStream::send(self, parts)
    }

    fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        RdmaStream::recv(self, buf)
    }

    fn set_timeouts(&self, send_ms: u32, recv_ms: u32) {
        RdmaStream::set_timeouts(self, send_ms, recv_ms)
    }

    fn shutdown(&self) {
        RdmaStream::shutdown(self)
    }

    fn peer_addr(&self) -> Option<([u8; 4], u16)> {
        RdmaStream::peer_addr(self)
    }

    fn wait_ready(&self, ms: u32) -> Result {
        RdmaStream::wait_established(self, ms)
    }
}

#[cfg(CONFIG_INFINIBAND_ADDR_TRANS)]
impl Listener for RdmaListener {
    fn accept(&self, timeout_ms: u32) -> Result<Option<KBox<dyn Stream>>> {
        Ok(match RdmaListener::accept(self, timeout_ms)? {
            Some(s) => Some(boxed_stream(s)?),
            None => None,
        })
    }
}
