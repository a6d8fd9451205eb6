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

#![allow(dead_code)] // The registration half is used by the socket types of the I/O issue.

use std::fmt;
use std::io;
use std::task::Waker;
use std::time::Duration;

use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

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

/// What waits on one direction of a source.
pub(crate) enum Waiter {
    /// Nobody.
    None,
    /// A task, through its waker.
    Task(Waker),
}

impl Waiter {
    fn take(&mut self) -> Waiter {
        std::mem::replace(self, Waiter::None)
    }
}

/// One registered source.
pub(crate) struct IoSlot {
    /// Readiness seen and not yet consumed by a `WouldBlock` (N1).
    pub(crate) readable: bool,
    /// Same for writing.
    pub(crate) writable: bool,
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
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("sources", &self.slots.len())
            .field("polls", &self.polls)
            .finish()
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
            reader: Waiter::None,
            writer: Waiter::None,
            label,
        });
        Ok(token)
    }

    /// Deregister `source` and free its token (N3). Returns the parked wakers so the caller
    /// can drop them outside any borrow.
    pub(crate) fn deregister(
        &mut self,
        source: &mut dyn mio::event::Source,
        token: Token,
    ) -> io::Result<()> {
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
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<Readiness>,
    ) -> io::Result<bool> {
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
            });
        }
        Ok(bell)
    }

    /// Record `r` in its slot and take the wakers to wake (N2).
    pub(crate) fn dispatch(&mut self, r: Readiness, wake: &mut Vec<Waker>) {
        let Some(slot) = self.slots.get_mut(r.token) else {
            return;
        };
        if r.readable {
            slot.readable = true;
            if let Waiter::Task(w) = slot.reader.take() {
                wake.push(w);
            }
        }
        if r.writable {
            slot.writable = true;
            if let Waiter::Task(w) = slot.writer.take() {
                wake.push(w);
            }
        }
    }
}
