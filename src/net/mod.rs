//! I/O: the reactor inside the loop, sockets as futures, and asyncio's `add_reader`.
//!
//! Read in this order: `reactor.rs` (mio's `Poll` and the slab of sources, where readiness
//! lands), `registration.rs` (the try / `WouldBlock` / park loop every operation runs),
//! `tcp.rs` and `udp.rs` (the sockets), `fd.rs` (callbacks on raw file descriptors).
//!
//! ```text
//!   TcpStream::read ─► IoRegistration::poll_io ─► Reactor slot[t] ─► park waker
//!   run_once phase 2: epoll_wait ─► Reactor::dispatch ─► waker.wake() ─► ready queue
//!   add_reader(fd, cb) ─► Reactor slot[t] (callback) ─► phase 2 ─► call_soon(cb)
//! ```
//!
//! # asyncio equivalent
//! `selector_events.py` (`BaseSelectorEventLoop`, `_SelectorSocketTransport`) and the
//! `loop.sock_*` coroutines.
mod fd;
pub(crate) mod reactor;
mod registration;
pub mod tcp;
pub mod udp;

pub use reactor::Direction;
pub use tcp::{BACKLOG, TcpListener, TcpStream};
pub use udp::UdpSocket;

pub(crate) use fd::schedule_fd_callback;
