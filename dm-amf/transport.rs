// SPDX-License-Identifier: GPL-2.0

//! The byte streams the replication channel runs on. The channel (`repl_session`, `repl`)
//! frames, authenticates and orders its messages itself and needs only an ordered,
//! reliable stream per peer pair; this trait is that contract, so that a second transport
//! (RDMA) can carry the same protocol unchanged. TCP over kernel sockets implements it now.

use kernel::prelude::*;

use crate::kernel_ext::net::{TcpListener, TcpStream};

/// An ordered, reliable, connected byte stream to one peer. One thread may send while
/// another receives.
pub(crate) trait Stream: Send + Sync {
    /// Sends every byte of `parts`, in order, or fails (the stream is then unusable).
    fn send(&self, parts: &[&[u8]]) -> Result;
    /// Receives up to `buf.len()` bytes: `Ok(0)` when the peer closed, `EAGAIN` when the
    /// receive timeout passed with nothing received.
    fn recv(&self, buf: &mut [u8]) -> Result<usize>;
    /// Send and receive timeouts in milliseconds.
    fn set_timeouts(&self, send_ms: u32, recv_ms: u32);
    /// Wakes any blocked call; the stream is unusable afterwards.
    fn shutdown(&self);
}

/// Accepts streams from peers.
pub(crate) trait Listener: Send + Sync {
    /// Waits at most `timeout_ms` for a stream; `Ok(None)` on timeout.
    fn accept(&self, timeout_ms: u32) -> Result<Option<KBox<dyn Stream>>>;
    /// Wakes a blocked `accept`.
    fn shutdown(&self);
}

/// The transports a table can choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// TCP over kernel sockets.
    Tcp,
}

impl Transport {
    /// Listens on `ip:port`.
    pub(crate) fn listen(self, ip: [u8; 4], port: u16) -> Result<KBox<dyn Listener>> {
        match self {
            Transport::Tcp => {
                let l = KBox::new(TcpListener::bind(ip, port)?, GFP_KERNEL)?;
                let raw: *mut TcpListener = KBox::into_raw(l);
                let raw: *mut dyn Listener = raw;
                // SAFETY: the allocation `into_raw` just gave up, as a trait object (the
                // kernel's box has no unsized coercion).
                Ok(unsafe { KBox::from_raw(raw) })
            }
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
            Transport::Tcp => Ok(boxed_stream(TcpStream::connect(ip, port, timeout_ms)?)?),
        }
    }
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
}

impl Listener for TcpListener {
    fn accept(&self, timeout_ms: u32) -> Result<Option<KBox<dyn Stream>>> {
        Ok(match TcpListener::accept(self, timeout_ms)? {
            Some(s) => Some(boxed_stream(s)?),
            None => None,
        })
    }

    fn shutdown(&self) {
        TcpListener::shutdown(self)
    }
}
