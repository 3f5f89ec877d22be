// SPDX-License-Identifier: GPL-2.0

//! Kernel TCP over IPv4 (`include/linux/net.h`) for the replication channel, with no
//! userspace helper: a listener and byte streams in `init_net`.
//!
//! The sockets serve the block I/O path, so they allocate like drbd's and nbd's: with
//! GFP_NOIO and without the task's page fragment, never recursing into block I/O for memory.
//! Blocking calls are bounded by the socket timeouts (`sk_sndtimeo`, `sk_rcvtimeo`), and
//! `shutdown` from another thread wakes them.
//!
//! C header: [`include/linux/net.h`](srctree/include/linux/net.h)

use core::mem::size_of;
use core::ptr::{self, NonNull};

use kernel::{bindings, error::to_result, ffi::c_long, prelude::*};

use super::bindings as b;
use super::block_io::NoIoScope;

/// kvecs handed to one `kernel_sendmsg` at most; further parts go in the next call.
const MAX_KVECS: usize = 16;

/// Bytes per `kernel_sendmsg` or `kernel_recvmsg` at most: they return the count as an int.
const MAX_IO: usize = 1 << 30;

/// Backlog of a listening socket.
const BACKLOG: i32 = 8;

/// The [`Error`] of a positive errno constant.
fn err(errno: u32) -> Error {
    Error::from_errno(-(errno as i32))
}

/// A socket timeout in jiffies; 0 ms means none (`MAX_SCHEDULE_TIMEOUT`), as for
/// `SO_RCVTIMEO`.
fn timeo(ms: u32) -> c_long {
    if ms == 0 {
        return c_long::MAX;
    }
    // SAFETY: a pure computation; it rounds up, so a non-zero timeout stays non-zero.
    let j = unsafe { bindings::__msecs_to_jiffies(ms) };
    c_long::try_from(j).unwrap_or(c_long::MAX)
}

/// `struct sockaddr_in` of an address in dotted-quad order and a port in host order.
fn sockaddr(ip: [u8; 4], port: u16) -> b::sockaddr_in {
    b::sockaddr_in {
        sin_family: bindings::AF_INET as _,
        sin_port: port.to_be(),
        // Network byte order is the order of the bytes in memory.
        sin_addr: b::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        ..Default::default()
    }
}

/// An owned kernel socket, released on drop.
struct Socket(NonNull<bindings::socket>);

impl Socket {
    /// A new TCP socket in `init_net`, set up for the block I/O path.
    fn tcp() -> Result<Self> {
        let mut raw: *mut bindings::socket = ptr::null_mut();
        // The socket's own allocations (inode, sock) must not recurse into block I/O either.
        let _noio = NoIoScope::enter();
        // SAFETY: `init_net` is the initial namespace, which lives as long as the kernel;
        // `raw` is valid for writes.
        to_result(unsafe {
            bindings::sock_create_kern(
                ptr::addr_of_mut!(b::init_net),
                bindings::AF_INET as i32,
                bindings::sock_type_SOCK_STREAM as i32,
                b::AMF_CONST_IPPROTO_TCP,
                &mut raw,
            )
        })?;
        let sock = Self(NonNull::new(raw).ok_or(EINVAL)?);
        sock.no_io();
        Ok(sock)
    }

    /// Takes ownership of a socket from `kernel_accept`, set up like [`Socket::tcp`].
    ///
    /// # Safety
    ///
    /// `raw` is a socket with its `sk` attached that nothing else owns.
    unsafe fn from_accepted(raw: NonNull<bindings::socket>) -> Self {
        let sock = Self(raw);
        sock.no_io();
        sock
    }

    fn as_ptr(&self) -> *mut bindings::socket {
        self.0.as_ptr()
    }

    /// The `struct sock`.
    fn sk(&self) -> *mut bindings::sock {
        // SAFETY: we own the socket; its `sk` is set at creation (or by accept) and stays
        // until `sock_release`.
        unsafe { (*self.as_ptr()).sk }
    }

    /// Socket allocations as in nbd/drbd: GFP_NOIO, and never the task's page fragment
    /// (which a caller in the I/O path may be using itself).
    fn no_io(&self) {
        // SAFETY: `sk` is valid (see `sk`); fields set before the socket carries data, as
        // nbd does.
        unsafe {
            b::amf_sk_set_allocation(self.sk(), b::AMF_CONST_GFP_NOIO);
            b::amf_sk_set_use_task_frag(self.sk(), false);
        }
    }

    fn set_timeouts(&self, send_ms: u32, recv_ms: u32) {
        // SAFETY: `sk` is valid; the helpers store with WRITE_ONCE as SO_SNDTIMEO does.
        unsafe {
            b::amf_sk_set_sndtimeo(self.sk(), timeo(send_ms));
            b::amf_sk_set_rcvtimeo(self.sk(), timeo(recv_ms));
        }
    }

    fn shutdown(&self) {
        // SAFETY: we own the socket; shutdown takes the socket lock and may run while
        // another thread is blocked in it. An error (ENOTCONN: not connected) is moot.
        unsafe {
            bindings::kernel_sock_shutdown(self.as_ptr(), bindings::sock_shutdown_cmd_SHUT_RDWR)
        };
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: we own the socket and nothing uses it any more (`&mut self`).
        unsafe { bindings::sock_release(self.as_ptr()) };
    }
}

// SAFETY: a kernel socket may be used and released from any thread.
unsafe impl Send for Socket {}
// SAFETY: every socket operation takes the socket lock; concurrent send, receive and
// shutdown are what sockets are built for.
unsafe impl Sync for Socket {}

/// A listening TCP socket.
pub(crate) struct TcpListener {
    sock: Socket,
}

impl TcpListener {
    /// Listening socket on ip:port (SO_REUSEADDR, backlog 8), in init_net.
    pub(crate) fn bind(ip: [u8; 4], port: u16) -> Result<Self> {
        let sock = Socket::tcp()?;
        // SAFETY: `sk` is valid; a restarted node must rebind while old connections linger
        // in TIME_WAIT.
        unsafe { b::sock_set_reuseaddr(sock.sk()) };
        let mut addr = sockaddr(ip, port);
        // SAFETY: `addr` is a `sockaddr_in` of the length given, read during the call.
        to_result(unsafe {
            bindings::kernel_bind(
                sock.as_ptr(),
                ptr::from_mut(&mut addr).cast(),
                size_of::<b::sockaddr_in>() as i32,
            )
        })?;
        // SAFETY: a bound socket of ours.
        to_result(unsafe { bindings::kernel_listen(sock.as_ptr(), BACKLOG) })?;
        Ok(Self { sock })
    }

    /// Waits at most `timeout_ms` (0: no limit) for a connection; Ok(None) on timeout.
    ///
    /// The new stream's send and receive timeouts are `timeout_ms` until
    /// [`TcpStream::set_timeouts`]. After [`TcpListener::shutdown`] it fails (EINVAL).
    pub(crate) fn accept(&self, timeout_ms: u32) -> Result<Option<TcpStream>> {
        // inet_csk_accept waits for `sk_rcvtimeo` of the listener.
        self.sock.set_timeouts(timeout_ms, timeout_ms);
        let mut raw: *mut bindings::socket = ptr::null_mut();
        let rc = {
            let _noio = NoIoScope::enter();
            // SAFETY: a listening socket of ours; `raw` is valid for writes and receives an
            // owned socket on success.
            unsafe { bindings::kernel_accept(self.sock.as_ptr(), &mut raw, 0) }
        };
        if rc == -(bindings::EAGAIN as i32) {
            return Ok(None);
        }
        to_result(rc)?;
        let raw = NonNull::new(raw).ok_or(EINVAL)?;
        // SAFETY: `kernel_accept` succeeded: `raw` is a connected socket that we now own.
        let stream = TcpStream::new(unsafe { Socket::from_accepted(raw) });
        stream.set_timeouts(timeout_ms, timeout_ms);
        Ok(Some(stream))
    }
}

/// A connected TCP stream. One thread may send while another receives; concurrent senders
/// must take turns themselves (a partial send is completed by further calls).
pub(crate) struct TcpStream {
    sock: Socket,
}

impl TcpStream {
    fn new(sock: Socket) -> Self {
        // SAFETY: `sk` is a TCP socket's; the replication messages are latency-bound.
        unsafe { b::tcp_sock_set_nodelay(sock.sk()) };
        Self { sock }
    }

    /// Connects with a timeout (ms; 0: only TCP's own SYN retries limit it); error
    /// (ETIMEDOUT/ECONNREFUSED/...) otherwise.
    ///
    /// The stream's send and receive timeouts are `timeout_ms` until
    /// [`TcpStream::set_timeouts`].
    pub(crate) fn connect(ip: [u8; 4], port: u16, timeout_ms: u32) -> Result<Self> {
        let stream = Self::new(Socket::tcp()?);
        // A blocking connect waits for `sk_sndtimeo`.
        stream.set_timeouts(timeout_ms, timeout_ms);
        let mut addr = sockaddr(ip, port);
        let rc = {
            let _noio = NoIoScope::enter();
            // SAFETY: `addr` is a `sockaddr_in` of the length given, read during the call.
            unsafe {
                bindings::kernel_connect(
                    stream.sock.as_ptr(),
                    ptr::from_mut(&mut addr).cast(),
                    size_of::<b::sockaddr_in>() as i32,
                    0,
                )
            }
        };
        // A blocking connect that timed out reports the SYN still in flight.
        if rc == -(bindings::EINPROGRESS as i32) {
            return Err(err(bindings::ETIMEDOUT));
        }
        to_result(rc)?;
        Ok(stream)
    }

    /// Sends all bytes of `parts` in order (one kernel_sendmsg with a kvec array, looping on
    /// partial sends); fails with the socket error, or ETIMEDOUT after the send timeout.
    ///
    /// Up to 16 parts go in one `kernel_sendmsg`; with more, every call but the last carries
    /// MSG_MORE. A timeout after a partial send leaves the stream mid-message: the caller
    /// must drop the connection.
    pub(crate) fn send(&self, parts: &[&[u8]]) -> Result {
        // Position: part `i`, byte `off` of it.
        let (mut i, mut off) = (0usize, 0usize);
        loop {
            // Skip finished and empty parts.
            while let Some(p) = parts.get(i) {
                if off < p.len() {
                    break;
                }
                i += 1;
                off = 0;
            }
            let Some(first) = parts.get(i) else {
                return Ok(());
            };
            let mut vecs = [bindings::kvec::default(); MAX_KVECS];
            let mut n = 0;
            let mut len = 0;
            let mut next = i;
            let mut from = first.get(off..).unwrap_or_default();
            while n < MAX_KVECS && len < MAX_IO {
                let take = from.len().min(MAX_IO - len);
                if take > 0 {
                    if let Some(v) = vecs.get_mut(n) {
                        *v = bindings::kvec {
                            iov_base: from.as_ptr().cast_mut().cast(),
                            iov_len: take,
                        };
                    }
                    n += 1;
                    len += take;
                }
                next += 1;
                let Some(p) = parts.get(next) else { break };
                from = p;
            }
            let more = parts
                .get(next..)
                .is_some_and(|rest| rest.iter().any(|p| !p.is_empty()));
            let mut msg = bindings::msghdr {
                msg_flags: bindings::MSG_NOSIGNAL | if more { bindings::MSG_MORE } else { 0 },
                ..Default::default()
            };
            // SAFETY: the first `n` kvecs describe `len` bytes of borrowed slices, only read
            // during the call; `msg` is a kernel-space message without address or control.
            let rc = unsafe {
                bindings::kernel_sendmsg(self.sock.as_ptr(), &mut msg, vecs.as_mut_ptr(), n, len)
            };
            let sent = match rc {
                r if r == -(bindings::EAGAIN as i32) => return Err(err(bindings::ETIMEDOUT)),
                r if r < 0 => return Err(Error::from_errno(r)),
                0 => return Err(err(bindings::EPIPE)),
                r => r as usize,
            };
            // Advance over `sent` bytes.
            let mut left = sent;
            while left > 0 {
                let Some(p) = parts.get(i) else { break };
                let here = p.len().saturating_sub(off);
                if left < here {
                    off += left;
                    left = 0;
                } else {
                    left -= here;
                    i += 1;
                    off = 0;
                }
            }
        }
    }

    /// Receives up to buf.len() bytes: Ok(0) = peer closed, Err(EAGAIN) = receive timeout
    /// passed with nothing received (so a receive loop can check a stop flag).
    ///
    /// An empty `buf` is EINVAL (it could not tell a closed peer). After
    /// [`TcpStream::shutdown`] it returns Ok(0).
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Err(EINVAL);
        }
        let len = buf.len().min(MAX_IO);
        let mut vec = bindings::kvec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        let mut msg = bindings::msghdr::default();
        // SAFETY: `vec` describes `len` bytes of `buf`, borrowed mutably for the call; `msg`
        // is a kernel-space message without address or control.
        let rc = unsafe {
            bindings::kernel_recvmsg(
                self.sock.as_ptr(),
                &mut msg,
                &mut vec,
                1,
                len,
                bindings::MSG_NOSIGNAL as i32,
            )
        };
        to_result(rc.min(0))?;
        Ok(rc as usize)
    }

    /// Sets the send and receive timeouts (ms; 0: no timeout).
    pub(crate) fn set_timeouts(&self, send_ms: u32, recv_ms: u32) {
        self.sock.set_timeouts(send_ms, recv_ms);
    }

    /// Shuts both directions down: wakes a blocked recv/send in another thread.
    pub(crate) fn shutdown(&self) {
        self.sock.shutdown();
    }

    /// The other end's IPv4 address and port (for logs), if the socket still knows it.
    pub(crate) fn peer_addr(&self) -> Option<([u8; 4], u16)> {
        let mut addr = b::sockaddr_in::default();
        // SAFETY: the socket is ours and AF_INET (made by `Socket::tcp` or accepted from
        // such a listener), so getpeername writes at most a `sockaddr_in` into `addr`.
        let rc = unsafe {
            bindings::kernel_getpeername(self.sock.as_ptr(), ptr::from_mut(&mut addr).cast())
        };
        (rc >= 0 && u32::from(addr.sin_family) == bindings::AF_INET).then(|| {
            (
                addr.sin_addr.s_addr.to_ne_bytes(),
                u16::from_be(addr.sin_port),
            )
        })
    }
}
