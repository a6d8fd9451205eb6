//! `IoRegistration`: one socket's place in the reactor, and the retry loop every operation
//! runs through.
//!
//! A socket in looplab is a non-blocking mio socket plus a registration (its token in the
//! loop's reactor). Every operation (`read`, `write`, `accept`, `recv_from`, ...) is the same
//! loop, [`IoRegistration::poll_io`]:
//!
//! ```text
//!   poll_io(cx, Read, op):
//!     ┌─► reactor: readable? ── no ─► park cx.waker() in slot.reader ─► Pending
//!     │        │ yes
//!     │        ▼
//!     │   op() (the syscall) ── Ok(n) / Err(e) ─► Ready
//!     │        │ WouldBlock
//!     └─── clear readable (N1) ◄┘
//! ```
//!
//! Readiness is delivered by phase 2 of the loop: `epoll_wait` reports the token, the reactor
//! sets the flag and hands the parked waker to the loop, which wakes it with no borrow held;
//! the task then runs in phase 4 and calls `poll_io` again.
//!
//! # asyncio equivalent
//! `selector_events._SelectorSocketTransport._read_ready` tries `sock.recv` and, on
//! `BlockingIOError`, simply returns: the level-triggered selector will call it again. Here
//! the selector is edge-triggered, so the "try, and forget the readiness only on
//! `WouldBlock`" discipline (N1) is what keeps us from missing data.
//!
//! # Invariants
//! - **N1**, **N2**, **N3**, **N5**: see `reactor.rs`.
//! - **N7** A registration is deregistered exactly once, when its socket is dropped; a
//!   future dropped mid-operation (a timeout, a cancelled task) leaves at most a stale waker
//!   in the slot, which the next poll replaces and which is harmless if woken (W2).

use std::io;
use std::task::{Context, Poll};

use mio::{Interest, Token};

use super::reactor::Direction;
use crate::events::{LoopHandle, get_running_loop};

/// A source's token in its loop's reactor. Owned by the socket types; they deregister
/// it from their `Drop`.
#[derive(Debug)]
pub(crate) struct IoRegistration {
    /// The loop whose reactor holds the source.
    lp: LoopHandle,
    /// The source's token: its slab index in the reactor (N3).
    token: Token,
}

impl IoRegistration {
    /// Register `source` with the running loop's reactor for reading and writing.
    pub(crate) fn new(source: &mut dyn mio::event::Source, label: impl FnOnce() -> String) -> io::Result<Self> {
        let lp = get_running_loop().ok_or_else(|| {
            io::Error::other("looplab sockets must be created inside a running loop (no running loop)")
        })?;
        if lp.is_closed() {
            return Err(io::Error::other("the loop is closed"));
        }
        let token = lp.inner.reactor.borrow_mut().register(source, Interest::READABLE | Interest::WRITABLE, label())?;
        Ok(IoRegistration { lp, token })
    }

    /// Run `op` until it does not return `WouldBlock`, parking `cx`'s waker on `dir` when the
    /// source is not ready (N1). The reactor borrow is released before `op` runs.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            if !self.lp.inner.reactor.borrow_mut().poll_ready(self.token, dir, cx.waker()) {
                return Poll::Pending;
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.lp.inner.reactor.borrow_mut().clear_ready(self.token, dir);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return Poll::Ready(other),
            }
        }
    }

    /// A stream read returned fewer bytes than asked: forget readability (N5).
    pub(crate) fn short_read(&self) {
        self.lp.inner.reactor.borrow_mut().clear_read_after_short_read(self.token);
    }

    /// A stream write took fewer bytes than offered: forget writability (N5).
    pub(crate) fn short_write(&self) {
        self.lp.inner.reactor.borrow_mut().clear_write_after_short_write(self.token);
    }

    /// Deregister `source` and free the token (N3, N7). Errors are ignored: the fd is about
    /// to be closed, which removes it from epoll anyway.
    pub(crate) fn deregister(&self, source: &mut dyn mio::event::Source) {
        if let Ok(mut reactor) = self.lp.inner.reactor.try_borrow_mut() {
            let _ = reactor.deregister(source, self.token);
        }
    }
}
