//! TCP: a listener that accepts connections and a stream that reads and writes, as futures.
//!
//! Both are a non-blocking `mio` socket plus an `IoRegistration` (`src/net/registration.rs`).
//! Every method that could block is an `async fn` that runs `IoRegistration::poll_io`: try
//! the syscall, and on `WouldBlock` park the task until phase 2 of the loop reports the
//! socket ready. Because the futures own no state besides their arguments, dropping one
//! mid-way (a timeout fired, the task was cancelled) loses nothing: bytes not yet read stay
//! in the kernel for the next `read` (N7).
//!
//! ```text
//!   server task                         loop                           client task
//!   TcpListener::bind ── epoll ADD ───► slot 0 (listener)
//!   accept().await ─ EAGAIN ─ park ───► slot 0.reader = T1             connect(addr)
//!                                       slot 1 (client) ◄─ epoll ADD ─ EINPROGRESS, park
//!   epoll_wait: (0, R) (1, W) ─► wake T1, T2 (phase 2) ─► run them (phase 4)
//!   accept() → stream (slot 2)                                         connected
//!   read(buf).await ─ EAGAIN ─ park ──► slot 2.reader = T1 ◄─ bytes ── write_all(b"hi")
//! ```
//!
//! Errors carry their context: `connect to 127.0.0.1:9: Connection refused (os error 111)`,
//! `bind 127.0.0.1:8000: Address already in use`, `read_exact: peer closed after 3 of 8
//! bytes`. The `kind()` is the OS one, so `e.kind() == ErrorKind::ConnectionRefused` works.
//!
//! # asyncio equivalent
//! `asyncio.start_server` / `asyncio.open_connection` with `StreamReader.read`,
//! `readexactly`, `StreamWriter.write` + `drain`, `close`; or, one level down,
//! `loop.sock_accept`, `sock_connect`, `sock_recv`, `sock_sendall`, which are the closest
//! match: an awaitable per operation, no buffering in between. asyncio resolves host names
//! in a thread pool; looplab takes a `SocketAddr` (or resolves `ToSocketAddrs` on the spot,
//! which for `"127.0.0.1:8000"` is pure parsing).
//!
//! # Invariants
//! - **N1**–**N7**: see `reactor.rs`, `registration.rs`.
//! - **N8** `connect` returns only once the kernel says the handshake finished: it checks
//!   `SO_ERROR` (`take_error`) and then `peer_addr` after the writable event.
//! - **N9** Bytes the kernel gave a `TcpStream` are handed out in order exactly once: a read
//!   smaller than `READ_AHEAD` fills the stream's buffer in the same poll as its syscall,
//!   and every read takes buffered bytes before asking the kernel.

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};

use super::reactor::Direction;
use super::registration::IoRegistration;

/// Resolve `addr` to its first socket address, with the context a learner needs.
pub(crate) fn first_addr(addr: impl ToSocketAddrs, what: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: cannot resolve address: {e}")))?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: no address to use")))
}

/// Wrap `e` with `context` in its message, keeping its kind.
pub(crate) fn ctx(e: io::Error, context: impl fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{context}: {e}"))
}

/// The accept queue a [`TcpListener`] asks for, as tokio's `TcpListener::bind` does (the
/// kernel caps it at `net.core.somaxconn`). asyncio's `create_server` defaults to 100.
pub const BACKLOG: i32 = 1024;

/// A listening TCP socket. asyncio: the socket behind `asyncio.start_server`.
pub struct TcpListener {
    /// The non-blocking socket (`SO_REUSEADDR`, a backlog of [`BACKLOG`]).
    io: mio::net::TcpListener,
    /// Its token in the running loop's reactor.
    reg: IoRegistration,
}

impl TcpListener {
    /// Bind and listen on `addr` (`"127.0.0.1:0"` picks a free port). Must be called with
    /// a loop running. Fails with `AddrInUse` if another socket listens there.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let addr = first_addr(addr, "bind")?;
        let mut io = mio::net::TcpListener::bind(addr).map_err(|e| ctx(e, format_args!("bind {addr}")))?;
        // mio listens with std's backlog of 128. Calling listen(2) again on a listening
        // socket resizes its accept queue (Linux); without this, 1000 connects issued in one
        // iteration overflow the queue and the dropped SYNs are retried a second later.
        // SAFETY: `io` owns a valid socket fd for the whole call.
        if unsafe { libc::listen(io.as_raw_fd(), BACKLOG) } != 0 {
            return Err(ctx(io::Error::last_os_error(), format_args!("listen {addr}")));
        }
        let reg = IoRegistration::new(&mut io, || format!("tcp listener {addr}"))?;
        Ok(TcpListener { io, reg })
    }

    /// Wait for the next connection. asyncio: `loop.sock_accept(sock)`.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (io, peer) = poll_fn(|cx| self.reg.poll_io(cx, Direction::Read, || self.io.accept()))
            .await
            .map_err(|e| ctx(e, "accept"))?;
        Ok((TcpStream::from_mio(io, peer)?, peer))
    }

    /// The address the listener is bound to (to learn the port after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.reg.deregister(&mut self.io); // N7
    }
}

/// The raw fd, for `setsockopt` and friends; keep it registered with the loop (do not
/// `add_reader` it) and do not close it.
impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener").field("local", &self.io.local_addr().ok()).finish()
    }
}

/// A connected TCP socket. Methods take `&self`, so one task may read while another writes
/// (share it with `Rc`); two tasks reading at once would steal each other's wake-ups.
///
/// A read smaller than [`READ_AHEAD`] bytes reads up to that much into a small buffer inside
/// the stream and hands out what was asked (N9); the rest is returned by the next reads
/// without a syscall. Do not read the raw fd yourself: bytes may be waiting in that buffer.
pub struct TcpStream {
    /// The non-blocking socket.
    io: mio::net::TcpStream,
    /// Its token in the running loop's reactor.
    reg: IoRegistration,
    /// Bytes read from the kernel and not yet handed out (N9).
    ahead: RefCell<ReadAhead>,
}

/// How much a small read asks the kernel for (N9): one page, a whole echo reply or request
/// line, and enough that a shorter answer proves the receive buffer empty (N5).
pub const READ_AHEAD: usize = 4096;

/// The read-ahead buffer of a [`TcpStream`]: `buf[start..end]` is unread. Allocated at the
/// first small read, so streams only read in large chunks never pay for it.
#[derive(Default)]
struct ReadAhead {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadAhead {
    /// Copy buffered bytes into `out`; how many (0 if none are buffered).
    fn take_into(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        n
    }
}

impl TcpStream {
    /// Register an accepted (or connecting) mio stream with the running loop.
    fn from_mio(mut io: mio::net::TcpStream, peer: SocketAddr) -> io::Result<TcpStream> {
        let reg = IoRegistration::new(&mut io, || format!("tcp stream to {peer}"))?;
        Ok(TcpStream { io, reg, ahead: RefCell::new(ReadAhead::default()) })
    }

    /// Open a connection to `addr`. asyncio: `loop.sock_connect` / `open_connection`.
    /// Fails with `ConnectionRefused` when nobody listens there.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addr = first_addr(addr, "connect")?;
        let what = format_args!("connect to {addr}").to_string();
        let io = mio::net::TcpStream::connect(addr).map_err(|e| ctx(e, &what))?;
        let stream = TcpStream::from_mio(io, addr)?;
        // N8: wait for writability, then ask the kernel how the handshake went.
        poll_fn(|cx| {
            stream.reg.poll_io(cx, Direction::Write, || {
                if let Some(e) = stream.io.take_error()? {
                    return Err(e);
                }
                match stream.io.peer_addr() {
                    Ok(_) => Ok(()),
                    // Not connected yet: a spurious edge. Wait for the next one.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
                    Err(e) => Err(e),
                }
            })
        })
        .await
        .map_err(|e| ctx(e, &what))?;
        Ok(stream)
    }

    /// Read some bytes into `buf`; `Ok(0)` means the peer closed its side (EOF).
    /// asyncio: `loop.sock_recv(sock, n)` / `StreamReader.read(n)`.
    ///
    /// Bytes left in the read-ahead buffer come first, without a syscall. A read of at least
    /// [`READ_AHEAD`] bytes goes straight into `buf`; a smaller one reads up to
    /// [`READ_AHEAD`] bytes into the stream's buffer and copies out what fits (N9), so an
    /// answer shorter than that proves the kernel buffer empty and the next read parks
    /// without the syscall that would say `WouldBlock` (N5). The copy happens in the same
    /// poll as the syscall: a read future dropped at its `await` loses no bytes (N7).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.ahead.borrow_mut().take_into(buf);
        if n > 0 {
            return Ok(n);
        }
        if buf.is_empty() || buf.len() >= READ_AHEAD {
            let n = poll_fn(|cx| self.reg.poll_io(cx, Direction::Read, || (&self.io).read(buf)))
                .await
                .map_err(|e| ctx(e, "read"))?;
            if n > 0 && n < buf.len() {
                self.reg.short_read(); // N5: the receive buffer is empty now
            }
            return Ok(n);
        }
        let got = poll_fn(|cx| {
            self.reg.poll_io(cx, Direction::Read, || {
                let mut ahead = self.ahead.borrow_mut();
                if ahead.buf.is_empty() {
                    ahead.buf = vec![0; READ_AHEAD].into_boxed_slice();
                }
                (&self.io).read(&mut ahead.buf)
            })
        })
        .await
        .map_err(|e| ctx(e, "read"))?;
        if got > 0 && got < READ_AHEAD {
            self.reg.short_read(); // N5: the receive buffer is empty now
        }
        let mut ahead = self.ahead.borrow_mut();
        (ahead.start, ahead.end) = (0, got);
        Ok(ahead.take_into(buf))
    }

    /// Write some of `buf`; returns how many bytes the kernel took.
    /// asyncio: `loop.sock_send`.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let n = poll_fn(|cx| self.reg.poll_io(cx, Direction::Write, || (&self.io).write(buf)))
            .await
            .map_err(|e| ctx(e, "write"))?;
        if n < buf.len() {
            self.reg.short_write(); // N5: the send buffer is full
        }
        Ok(n)
    }

    /// Fill `buf` exactly. A peer that closes first gives `UnexpectedEof` saying how many
    /// bytes had arrived. asyncio: `StreamReader.readexactly(n)` (`IncompleteReadError`).
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        let mut got = 0;
        while got < buf.len() {
            let n = self
                .read(&mut buf[got..])
                .await
                .map_err(|e| ctx(e, format_args!("read_exact ({got} of {} bytes)", buf.len())))?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read_exact: peer closed after {got} of {} bytes", buf.len()),
                ));
            }
            got += n;
        }
        Ok(())
    }

    /// Write all of `buf`, waiting for room as needed. asyncio: `loop.sock_sendall`, or
    /// `writer.write(data); await writer.drain()`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let mut sent = 0;
        while sent < buf.len() {
            let n = self
                .write(&buf[sent..])
                .await
                .map_err(|e| ctx(e, format_args!("write_all ({sent} of {} bytes)", buf.len())))?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, format!("write_all: wrote 0 after {sent} bytes")));
            }
            sent += n;
        }
        Ok(())
    }

    /// Read until the peer closes, appending to `out`; returns the number of bytes read.
    /// asyncio: `await reader.read()` (no argument).
    pub async fn read_to_end(&self, out: &mut Vec<u8>) -> io::Result<usize> {
        let start = out.len();
        let mut chunk = [0u8; 4096];
        loop {
            match self.read(&mut chunk).await? {
                0 => return Ok(out.len() - start),
                n => out.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Shut down one or both directions (`Shutdown::Write` sends FIN: the peer reads EOF).
    /// asyncio: `writer.write_eof()` / `sock.shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.shutdown(how).map_err(|e| ctx(e, "shutdown"))
    }

    /// The remote address. asyncio: `writer.get_extra_info("peername")`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }

    /// The local address. asyncio: `writer.get_extra_info("sockname")`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Disable Nagle's algorithm (`TCP_NODELAY`): small writes leave at once. asyncio sets
    /// it on every TCP transport.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.set_nodelay(on)
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.reg.deregister(&mut self.io); // N7
    }
}

/// The raw fd, for `setsockopt` and friends; keep it registered with the loop (do not
/// `add_reader` it) and do not close it.
impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.io.local_addr().ok())
            .field("peer", &self.io.peer_addr().ok())
            .finish()
    }
}
