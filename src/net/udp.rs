//! UDP: datagrams in and out, through the same reactor as TCP.
//!
//! A datagram socket has no connection: each `send_to` names its destination, each
//! `recv_from` says who sent. The readiness story is TCP's (N1), with one difference: a
//! datagram shorter than the buffer does *not* mean the queue is empty (the next datagram
//! may be waiting), so the short-read shortcut of N5 is not taken here.
//!
//! ```text
//!   a.send_to(b"ping", b_addr) ──► kernel queue of b ──► epoll (b, R) ──► b.recv_from()
//!                                                         wakes the parked task
//! ```
//!
//! # asyncio equivalent
//! `loop.sock_sendto(sock, data, addr)` and `loop.sock_recvfrom(sock, n)` (Python 3.11),
//! or `create_datagram_endpoint` with a protocol's `datagram_received` callback.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};

use super::reactor::Direction;
use super::registration::IoRegistration;
use super::tcp::{ctx, first_addr};

/// A UDP socket registered with the running loop.
pub struct UdpSocket {
    /// The non-blocking socket.
    io: mio::net::UdpSocket,
    /// Its token in the running loop's reactor.
    reg: IoRegistration,
}

impl UdpSocket {
    /// Bind to `addr` (`"127.0.0.1:0"` picks a free port). Must be called with a loop running.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addr = first_addr(addr, "udp bind")?;
        let mut io = mio::net::UdpSocket::bind(addr).map_err(|e| ctx(e, format_args!("udp bind {addr}")))?;
        let reg = IoRegistration::new(&mut io, || format!("udp socket {addr}"))?;
        Ok(UdpSocket { io, reg })
    }

    /// Send one datagram to `target`; returns the bytes sent. asyncio: `loop.sock_sendto`.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        poll_fn(|cx| self.reg.poll_io(cx, Direction::Write, || self.io.send_to(buf, target)))
            .await
            .map_err(|e| ctx(e, format_args!("send_to {target}")))
    }

    /// Receive one datagram (truncated to `buf`'s length) and its sender.
    /// asyncio: `loop.sock_recvfrom`.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.reg.poll_io(cx, Direction::Read, || self.io.recv_from(buf)))
            .await
            .map_err(|e| ctx(e, "recv_from"))
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.reg.deregister(&mut self.io); // N7
    }
}

/// The raw fd, for `setsockopt` and friends; keep it registered with the loop (do not
/// `add_reader` it) and do not close it.
impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket").field("local", &self.io.local_addr().ok()).finish()
    }
}
