//! `add_reader` / `add_writer`: asyncio's low-level API, a callback per raw file descriptor.
//!
//! Before streams and tasks, asyncio's selector loop offers this: "call `cb` whenever `fd`
//! is readable". The loop registers the fd with its selector; every iteration in which the
//! selector reports the fd, the callback joins the ready queue as a handle and runs in
//! phase 4. It is *level-triggered*: as long as the fd stays readable (you did not read
//! what is there), the callback runs again, once per iteration.
//!
//! mio only offers edge-triggered epoll: an event means "something changed". To give the
//! asyncio behaviour we re-arm the fd after every run of its callback (`EPOLL_CTL_MOD`, one
//! syscall): the kernel then re-checks the fd and, if it is still readable, queues a new
//! event for the next poll (N4).
//!
//! ```text
//!   add_reader(fd, cb) ─► epoll_ctl(ADD, fd, EPOLLIN|EPOLLET) ─► slot[t].reader = cb
//!   iteration k, phase 2: epoll_wait ─► (t, R) ─► ready += run(cb)
//!   iteration k, phase 4: cb(lp) ─► epoll_ctl(MOD, fd) ─► still readable? ─► (t, R) at k+1
//!   remove_reader(fd) ─► slot[t].reader = None ─► no writer either? epoll_ctl(DEL), free t
//! ```
//!
//! # asyncio equivalent
//! `loop.add_reader(fd, callback)`, `remove_reader(fd)` (returns whether the fd was watched),
//! `add_writer`, `remove_writer` (`selector_events.py`). asyncio passes `*args`; a Rust
//! closure captures them instead, and receives the loop handle. asyncio refuses an fd that a
//! transport owns; here epoll refuses an fd that a looplab socket already registered, and
//! you get that `io::Error`.
//!
//! # Invariants
//! - **N4** (see `reactor.rs`) A callback runs once per event, and the fd is re-armed after
//!   each run, also when the callback panicked.
//! - **N6** The fd is not owned: closing it is the caller's business, after `remove_*`.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use mio::Interest;
use mio::unix::SourceFd;

use super::reactor::{Direction, FdCallback, Waiter};
use crate::events::LoopHandle;

impl LoopHandle {
    /// Call `callback` every iteration in which `fd` is readable (level-triggered, N4).
    /// Replaces a reader already set on `fd`. asyncio: `loop.add_reader(fd, callback)`.
    pub fn add_reader(&self, fd: RawFd, callback: impl FnMut(&LoopHandle) + 'static) -> io::Result<()> {
        self.add_fd_callback(fd, Direction::Read, Rc::new(RefCell::new(Box::new(callback))))
    }

    /// Call `callback` every iteration in which `fd` is writable. asyncio: `loop.add_writer`.
    pub fn add_writer(&self, fd: RawFd, callback: impl FnMut(&LoopHandle) + 'static) -> io::Result<()> {
        self.add_fd_callback(fd, Direction::Write, Rc::new(RefCell::new(Box::new(callback))))
    }

    /// Stop watching `fd` for reading. Returns whether a reader was set.
    /// asyncio: `loop.remove_reader(fd)`.
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.remove_fd_callback(fd, Direction::Read)
    }

    /// Stop watching `fd` for writing. Returns whether a writer was set.
    /// asyncio: `loop.remove_writer(fd)`.
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.remove_fd_callback(fd, Direction::Write)
    }

    /// Register (or update) `fd` with the reactor and put `cb` on side `dir` of its slot.
    fn add_fd_callback(&self, fd: RawFd, dir: Direction, cb: FdCallback) -> io::Result<()> {
        if self.is_closed() {
            return Err(io::Error::other("add_reader/add_writer on a closed loop"));
        }
        let old;
        {
            let mut reactor = self.inner.reactor.borrow_mut();
            let token = match reactor.fds.get(&fd) {
                Some(&t) => t,
                None => {
                    let t = reactor
                        .register(&mut SourceFd(&fd), interest_for(dir), format!("fd {fd}"))
                        .map_err(|e| io::Error::new(e.kind(), format!("add_reader/add_writer fd {fd}: {e}")))?;
                    reactor.fds.insert(fd, t);
                    t
                }
            };
            let slot = &mut reactor.slots[token.0];
            slot.fd = Some(fd);
            let side = match dir {
                Direction::Read => &mut slot.reader,
                Direction::Write => &mut slot.writer,
            };
            old = std::mem::replace(side, Waiter::Callback(cb));
            rearm(&mut reactor, fd)?;
        }
        drop(old); // the replaced callback's captures drop with no borrow held
        Ok(())
    }

    /// Take the callback off side `dir`; deregister the fd when neither side is watched.
    fn remove_fd_callback(&self, fd: RawFd, dir: Direction) -> bool {
        let old;
        {
            let mut reactor = self.inner.reactor.borrow_mut();
            let Some(&token) = reactor.fds.get(&fd) else { return false };
            let Some(slot) = reactor.slots.get_mut(token.0) else { return false };
            let side = match dir {
                Direction::Read => &mut slot.reader,
                Direction::Write => &mut slot.writer,
            };
            old = std::mem::replace(side, Waiter::None);
            let idle = matches!((&slot.reader, &slot.writer), (Waiter::None, Waiter::None));
            if idle {
                reactor.fds.remove(&fd);
                // N3: deregister first, then free the token. The fd may already be closed
                // (EBADF): the slot goes anyway, which is what the caller wants.
                let _ = reactor.deregister(&mut SourceFd(&fd), token);
            } else {
                let _ = rearm(&mut reactor, fd);
            }
        }
        let was_set = matches!(old, Waiter::Callback(_));
        drop(old);
        was_set
    }
}

/// The epoll interest for one side.
fn interest_for(dir: Direction) -> Interest {
    match dir {
        Direction::Read => Interest::READABLE,
        Direction::Write => Interest::WRITABLE,
    }
}

/// `EPOLL_CTL_MOD` with the interest of the callbacks now set: re-arms the fd, so the kernel
/// re-checks it and reports it again if it is still ready (N4).
fn rearm(reactor: &mut super::reactor::Reactor, fd: RawFd) -> io::Result<()> {
    let Some(&token) = reactor.fds.get(&fd) else { return Ok(()) };
    let Some(slot) = reactor.slots.get(token.0) else { return Ok(()) };
    let interest = match (&slot.reader, &slot.writer) {
        (Waiter::Callback(_), Waiter::Callback(_)) => Interest::READABLE | Interest::WRITABLE,
        (_, Waiter::Callback(_)) => Interest::WRITABLE,
        _ => Interest::READABLE,
    };
    reactor.registry().reregister(&mut SourceFd(&fd), token, interest)
}

/// Re-arms the fd when dropped: after the callback returned, and also when it panicked
/// (the loop catches the panic, E7; the fd must keep being watched, N4).
struct Rearm<'a> {
    /// The loop whose reactor holds the fd.
    lp: &'a LoopHandle,
    /// The fd to re-arm.
    fd: RawFd,
    /// The side whose callback just ran.
    dir: Direction,
    /// The callback that ran: we re-arm only if it is still the one registered.
    cb: &'a FdCallback,
}

impl Drop for Rearm<'_> {
    fn drop(&mut self) {
        let mut reactor = self.lp.inner.reactor.borrow_mut();
        let Some(&token) = reactor.fds.get(&self.fd) else { return };
        let Some(slot) = reactor.slots.get(token.0) else { return };
        let side = match self.dir {
            Direction::Read => &slot.reader,
            Direction::Write => &slot.writer,
        };
        if matches!(side, Waiter::Callback(c) if Rc::ptr_eq(c, self.cb)) {
            let _ = rearm(&mut reactor, self.fd);
        }
    }
}

/// Phase 2 found `fd` ready on side `dir`: queue one run of `cb` (asyncio: `_process_events`
/// appends the reader's handle to `_ready`). Called by the loop with no reactor borrow held.
pub(crate) fn schedule_fd_callback(lp: &LoopHandle, fd: RawFd, dir: Direction, cb: FdCallback) {
    lp.call_soon(move |lp| {
        // Removed (or replaced) since the event? Then this run is stale: skip it.
        let current = {
            let reactor = lp.inner.reactor.borrow();
            reactor.fds.get(&fd).and_then(|t| reactor.slots.get(t.0)).is_some_and(|slot| {
                let side = match dir {
                    Direction::Read => &slot.reader,
                    Direction::Write => &slot.writer,
                };
                matches!(side, Waiter::Callback(c) if Rc::ptr_eq(c, &cb))
            })
        };
        if !current {
            return;
        }
        let _rearm = Rearm { lp, fd, dir, cb: &cb };
        // A callback that re-enters itself (it cannot, in phase 4) would be skipped, not panic.
        if let Ok(mut f) = cb.try_borrow_mut() {
            f(lp);
        }
    });
}
