//! The reactor: `mio::Poll` plus a slab of registered I/O sources.
//!
//! The loop owns one `mio::Poll`. Every socket (or raw fd) the program uses is registered
//! with it under a [`mio::Token`], which is the index of its entry in a slab of [`IoSlot`]s.
//! When `epoll_wait` reports the token readable or writable, the reactor records the
//! readiness in the slot and wakes whoever waits on that direction: a task's waker, or a
//! plain callback (`add_reader`).
//!
//! ```text
//!   register(fd) ─► Slab<IoSlot>[7] ◄── Token(7) ── epoll ── kernel
//!                     readable: bool      │ event(7, R)
//!                     reader:   Waker ◄───┘ wake → ready queue
//!   task: read() → WouldBlock → clear_readable(7), park waker → Pending
//! ```
//!
//! mio is edge-triggered: an event says "something changed", not "data is there". So the
//! rule is: try the operation; only on `WouldBlock` clear the readiness flag and wait for the
//! next edge (**N1**). The bell token (`BELL`) is the loop's own `mio::Waker` and is never a
//! source.
//!
//! # asyncio equivalent
//! `selector_events.py`: `BaseSelectorEventLoop._add_reader` registers a Handle per fd with a
//! level-triggered `selectors.EpollSelector`; `_process_events` appends the handles to
//! `_ready`. Tasks there wait on futures completed by those handles; here they park wakers.
//!
//! # Invariants
//! - **N1** A readiness flag is cleared only after an operation returned `WouldBlock`.
//! - **N2** A waker parked on a slot is woken at most once per event and then forgotten.
//! - **N3** Tokens are slab indices; a slot is removed (and its token freed) only after the
//!   source was deregistered.
//! - **N4** An `add_reader`/`add_writer` callback stays in its slot until removed; each event
//!   schedules one run, and after the run the fd is re-armed (`EPOLL_CTL_MOD`), so a
//!   still-readable fd is reported again at the next poll: asyncio's level-triggered
//!   behaviour, on edge-triggered epoll.
//! - **N5** The one exception to N1: a stream read that returned fewer bytes than asked
//!   (or a write that took fewer than offered) drained the kernel buffer, so readiness is
//!   cleared without the extra syscall that would say `WouldBlock`; never after the peer
//!   closed or the socket failed, since no further edge would come.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::events::LoopHandle;

/// The token of the loop's bell (`mio::Waker`); never a slab index.
pub(crate) const BELL: Token = Token(usize::MAX);

/// Which side of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Readable (or accept-able, or closed by the peer).
    Read,
    /// Writable (or connected).
    Write,
}

/// A callback registered with `add_reader`/`add_writer`. Shared (`Rc`) so that the loop can
/// run it while the slot keeps it, and boxed behind a `RefCell` because it is `FnMut`.
pub(crate) type FdCallback = Rc<RefCell<Box<dyn FnMut(&LoopHandle)>>>;

/// What waits on one direction of a source.
pub(crate) enum Waiter {
    /// Nobody.
    None,
    /// A task, through its waker (taken at the event: N2).
    Task(Waker),
    /// An `add_reader`/`add_writer` callback: stays in place, run once per event (N4).
    Callback(FdCallback),
}

impl Waiter {
    /// Take what waits here, for an event: a task's waker leaves the slot (N2), a callback
    /// stays (N4) and a clone of its `Rc` is returned.
    fn take(&mut self) -> Waiter {
        match self {
            Waiter::Callback(cb) => Waiter::Callback(Rc::clone(cb)),
            _ => std::mem::replace(self, Waiter::None),
        }
    }
}

/// An fd callback due to run: which fd, which side, and the callback itself.
pub(crate) type FdCall = (RawFd, Direction, FdCallback);

/// One registered source.
pub(crate) struct IoSlot {
    /// Readiness seen and not yet consumed by a `WouldBlock` (N1).
    pub(crate) readable: bool,
    /// Same for writing.
    pub(crate) writable: bool,
    /// The peer closed its side (or the socket has an error): a short read must not clear
    /// `readable`, since no further edge will come (N5).
    pub(crate) read_closed: bool,
    /// For `add_reader`/`add_writer` sources: the raw fd, to re-arm it (N4).
    pub(crate) fd: Option<RawFd>,
    /// Who waits for readability.
    pub(crate) reader: Waiter,
    /// Who waits for writability.
    pub(crate) writer: Waiter,
    /// A short description for the walkthrough ("tcp listener 127.0.0.1:8080").
    pub(crate) label: String,
}

/// A readiness event, copied out of `mio::Events` so the reactor can be released before
/// any waker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub(crate) token: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer closed its side, or the socket reported an error (N5).
    pub(crate) closed: bool,
}

/// `mio::Poll` and the slab of sources.
pub(crate) struct Reactor {
    /// The OS poller (epoll on Linux).
    pub(crate) poll: Poll,
    /// Reused event buffer.
    events: Events,
    /// Registered sources, indexed by token (N3).
    pub(crate) slots: Slab<IoSlot>,
    /// How many selector calls were made (for the inspector and the syscall budget).
    pub(crate) polls: u64,
    /// Raw fds watched with `add_reader`/`add_writer`, and their tokens.
    pub(crate) fds: HashMap<RawFd, Token>,
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<(usize, &str)> = self.slots.iter().map(|(t, s)| (t, s.label.as_str())).collect();
        f.debug_struct("Reactor").field("sources", &labels).field("polls", &self.polls).finish()
    }
}

impl Reactor {
    /// A poller with room for 1024 events per wait.
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            slots: Slab::new(),
            polls: 0,
            fds: HashMap::new(),
        })
    }

    /// The registry, for `mio::event::Source::register`.
    pub(crate) fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Number of registered sources.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Register `source` for `interest`; returns its token.
    pub(crate) fn register(
        &mut self,
        source: &mut dyn mio::event::Source,
        interest: Interest,
        label: String,
    ) -> io::Result<Token> {
        let entry = self.slots.vacant_entry();
        let token = Token(entry.key());
        self.poll.registry().register(source, token, interest)?;
        entry.insert(IoSlot {
            readable: false,
            writable: false,
            read_closed: false,
            fd: None,
            reader: Waiter::None,
            writer: Waiter::None,
            label,
        });
        Ok(token)
    }

    /// Deregister `source` and free its token (N3). Returns the parked wakers so the caller
    /// can drop them outside any borrow.
    pub(crate) fn deregister(&mut self, source: &mut dyn mio::event::Source, token: Token) -> io::Result<()> {
        let res = self.poll.registry().deregister(source);
        self.slots.try_remove(token.0);
        res
    }

    /// Is `dir` ready on `token`? If not, park `waker` there.
    pub(crate) fn poll_ready(&mut self, token: Token, dir: Direction, waker: &Waker) -> bool {
        let Some(slot) = self.slots.get_mut(token.0) else {
            return true;
        };
        let (ready, waiter) = match dir {
            Direction::Read => (slot.readable, &mut slot.reader),
            Direction::Write => (slot.writable, &mut slot.writer),
        };
        if ready {
            return true;
        }
        match waiter {
            Waiter::Task(w) if w.will_wake(waker) => {}
            _ => *waiter = Waiter::Task(waker.clone()),
        }
        false
    }

    /// An operation on `dir` returned `WouldBlock`: forget the readiness (N1).
    pub(crate) fn clear_ready(&mut self, token: Token, dir: Direction) {
        if let Some(slot) = self.slots.get_mut(token.0) {
            match dir {
                Direction::Read => slot.readable = false,
                Direction::Write => slot.writable = false,
            }
        }
    }

    /// Wait up to `timeout` for events; copy them into `out`. Returns whether the bell rang.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Readiness>) -> io::Result<bool> {
        self.polls += 1;
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        }
        let mut bell = false;
        for ev in self.events.iter() {
            if ev.token() == BELL {
                bell = true;
                continue;
            }
            out.push(Readiness {
                token: ev.token().0,
                readable: ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                writable: ev.is_writable() || ev.is_write_closed() || ev.is_error(),
                closed: ev.is_read_closed() || ev.is_error(),
            });
        }
        Ok(bell)
    }

    /// A read returned fewer bytes than asked on a stream socket: the kernel buffer is empty,
    /// so we may forget `readable` without paying for the read that would say `WouldBlock`
    /// (the exception to N1), unless the peer already closed (N5).
    pub(crate) fn clear_read_after_short_read(&mut self, token: Token) {
        if let Some(slot) = self.slots.get_mut(token.0)
            && !slot.read_closed
        {
            slot.readable = false;
        }
    }

    /// A write accepted fewer bytes than offered: the send buffer is full, a new edge will
    /// come when it drains (unless the socket is closed or failed: N5).
    pub(crate) fn clear_write_after_short_write(&mut self, token: Token) {
        if let Some(slot) = self.slots.get_mut(token.0)
            && !slot.read_closed
        {
            slot.writable = false;
        }
    }

    /// Record `r` in its slot, take the task wakers to wake (N2) and the fd callbacks to
    /// run (N4).
    pub(crate) fn dispatch(&mut self, r: Readiness, wake: &mut Vec<Waker>, calls: &mut Vec<FdCall>) {
        let Some(slot) = self.slots.get_mut(r.token) else { return };
        if r.closed {
            slot.read_closed = true;
        }
        if r.readable {
            slot.readable = true;
            match slot.reader.take() {
                Waiter::Task(w) => wake.push(w),
                Waiter::Callback(cb) => calls.extend(slot.fd.map(|fd| (fd, Direction::Read, cb))),
                Waiter::None => {}
            }
        }
        if r.writable {
            slot.writable = true;
            match slot.writer.take() {
                Waiter::Task(w) => wake.push(w),
                Waiter::Callback(cb) => calls.extend(slot.fd.map(|fd| (fd, Direction::Write, cb))),
                Waiter::None => {}
            }
        }
    }
}
