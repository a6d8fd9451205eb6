//! `LoopFuture<T>`: asyncio's `Future`, a result slot with done-callbacks.
//!
//! A `LoopFuture` is a box that starts empty and is filled once: with a result, an
//! exception, or a cancellation. Whoever is interested registers a *done-callback*; when the
//! box is filled, every callback is **scheduled** with `call_soon`, in registration order,
//! never run inline (F1). A task that awaits the future is just one more done-callback: its
//! waker sits in the same list, so it resumes between the callbacks registered before and
//! after it (F2).
//!
//! ```text
//!   LoopFuture<T> ── Rc ──► Shared { lp: LoopHandle,
//!   (every clone: the same Rc)        cell: RefCell<FutureCell {
//!                                       state: Pending | Value(T) | Failed(Box<Error>),
//!                                       callbacks: first: cb#1 | rest: [waker(T3), cb#2] }> }
//!   set_result(v):  state = Value(v)
//!                   call_soon(cb#1); wake(T3); call_soon(cb#2)   ──► ready queue, in order
//! ```
//!
//! # asyncio equivalent
//! `asyncio.Future` (`futures.py`): `set_result`, `set_exception`, `cancel`,
//! `add_done_callback`, `remove_done_callback`, `done`, `cancelled`, `result`, `exception`.
//! `Future` is the name of the std trait, so ours is `LoopFuture<T>`. Awaiting it yields
//! `Result<T, Error>`; `T: Clone` because every awaiter and every `result()` call gets a copy,
//! as every Python awaiter gets a reference to the same object.
//!
//! # Invariants
//! - **F1** Completing a future never runs a callback inline; a callback added after
//!   completion is scheduled too.
//! - **F2** Callbacks and awaiting tasks are scheduled in registration order.
//! - **F3** A future is completed at most once; a second `set_*` is an `InvalidState` error.
//! - **F4** A task waiting here by id is counted in its header (`parked`) from registration
//!   until it is woken or the future is dropped, so the loop can tell a task that something
//!   can still wake from a task nothing will ever wake (the lost-waker lint).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::error::{CancelledError, Error, Exception};
use crate::events::LoopHandle;
use crate::task::TaskId;
use crate::task::raw_waker::task_of;

/// One entry of a done-callback list: a callback, or an awaiting task's waker.
pub(crate) enum Watcher<C> {
    /// A registered callback, with the id `remove_done_callback` refers to.
    Callback {
        /// Registration id.
        id: u64,
        /// The callback.
        f: C,
    },
    /// The waker of something awaiting the future (not a looplab task of this loop).
    Waker(Waker),
    /// A looplab task awaiting the future: its id is all we need to wake it, so its lent
    /// waker is never cloned (no allocation, W4). Counted in the task's `parked` (F4).
    Task(TaskId),
}

impl<C> Watcher<C> {
    /// The entry for an awaiter with `waker` on loop `loop_id`. The caller counts a task
    /// entry (F4) once it holds no borrow of the task slab.
    pub(crate) fn for_waker(waker: &Waker, loop_id: u64) -> Watcher<C> {
        match task_of(waker, loop_id) {
            Some(id) => Watcher::Task(id),
            None => Watcher::Waker(waker.clone()),
        }
    }

    /// Does this entry wake the same thing as `waker`?
    fn same_awaiter(&self, waker: &Waker, loop_id: u64) -> bool {
        match self {
            Watcher::Waker(w) => w.will_wake(waker),
            Watcher::Task(id) => task_of(waker, loop_id) == Some(*id),
            Watcher::Callback { .. } => false,
        }
    }
}

/// The entries of a [`DoneCallbacks`], taken out to be fired: the first, then the rest.
pub(crate) type Entries<C> = (Option<Watcher<C>>, Option<Vec<Watcher<C>>>);

/// Done-callbacks in registration order (F2).
///
/// Nearly every future has exactly one watcher (the task awaiting it), so the first entry is
/// kept inline and only the second and later ones go to a `Vec`: a future that one task
/// awaits allocates nothing for its list (the ping-pong benchmark, W2, made a `Vec`
/// allocation per future before).
pub(crate) struct DoneCallbacks<C> {
    /// The first entry; `None` only if the list is empty.
    first: Option<Watcher<C>>,
    /// The entries after the first, in order; `None` until there is a second entry (so a
    /// list of one drops with a tag check, not a call to drop an empty `Vec`'s elements).
    rest: Option<Vec<Watcher<C>>>,
    next_id: u64,
}

impl<C> Default for DoneCallbacks<C> {
    fn default() -> Self {
        DoneCallbacks { first: None, rest: None, next_id: 0 }
    }
}

impl<C> DoneCallbacks<C> {
    /// An empty list (allocates nothing).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn iter(&self) -> impl Iterator<Item = &Watcher<C>> {
        self.first.iter().chain(self.rest.iter().flatten())
    }

    /// Append a callback; returns its id.
    pub(crate) fn push_callback(&mut self, f: C) -> u64 {
        self.next_id += 1;
        self.push(Watcher::Callback { id: self.next_id, f });
        self.next_id
    }

    /// Register an awaiter's waker: refresh it if that task already waits here (keeping its
    /// place), else append it.
    /// Returns the task to count (F4) if a new task entry was added.
    #[must_use = "a new task entry must be counted (F4)"]
    pub(crate) fn set_waker(&mut self, waker: &Waker, loop_id: u64) -> Option<TaskId> {
        if self.iter().any(|w| w.same_awaiter(waker, loop_id)) {
            return None;
        }
        let w = Watcher::for_waker(waker, loop_id);
        let added = if let Watcher::Task(id) = &w { Some(*id) } else { None };
        self.push(w);
        added
    }

    /// F4: the list is dropped unfired (its future was dropped while tasks awaited it): those
    /// tasks no longer count it as something that can wake them.
    pub(crate) fn release_tasks(&mut self, lp: &LoopHandle) {
        for w in self.iter() {
            if let Watcher::Task(id) = w {
                lp.adjust_parked(*id, -1);
            }
        }
        self.first = None;
        self.rest = None;
    }

    /// Append an already-built entry.
    pub(crate) fn push(&mut self, w: Watcher<C>) {
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.rest.get_or_insert_with(Vec::new).push(w);
        }
    }

    /// Remove the callback with `id`; true if it was there.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let is_it = |w: &Watcher<C>| matches!(w, Watcher::Callback { id: i, .. } if *i == id);
        if self.first.as_ref().is_some_and(is_it) {
            // The second entry, if any, moves up: the order of the others is kept.
            self.first = self.rest.as_mut().filter(|r| !r.is_empty()).map(|r| r.remove(0));
            return true;
        }
        let Some(rest) = &mut self.rest else {
            return false;
        };
        let before = rest.len();
        rest.retain(|w| !is_it(w));
        before != rest.len()
    }

    /// Take every entry out, in order: the first, then the rest (a future that is done
    /// fires them; taking two fields is cheaper than moving the whole list).
    pub(crate) fn take_entries(&mut self) -> Entries<C> {
        (self.first.take(), self.rest.take())
    }

    /// No entries?
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.as_ref().map_or(0, Vec::len)
    }
}

/// Fire entries taken out of a [`DoneCallbacks`], in registration order (F1, F2): a callback
/// goes to `schedule`, which knows what to call it with (a future's callback gets the future,
/// a task's the loop), and an awaiter is woken (F4: it stops counting). Futures and tasks
/// both finish through here.
///
/// Written out rather than `first.into_iter().chain(rest)`: the chain cost ~40 instructions
/// a future in the ping-pong benchmark (callgrind), where `rest` is empty; and inlined by
/// force, since as a call it cost that benchmark 14 instructions a round trip.
#[inline(always)]
pub(crate) fn fire_entries<C>(entries: Entries<C>, lp: &LoopHandle, mut schedule: impl FnMut(C)) {
    // An awaiter is woken; F4: a task entry stops counting as it fires.
    let mut fire = |w: Watcher<C>| match w {
        Watcher::Callback { f, .. } => schedule(f),
        Watcher::Waker(w) => w.wake(),
        Watcher::Task(id) => lp.wake_task_unparking(id, true),
    };
    let (first, rest) = entries;
    if let Some(w) = first {
        fire(w);
    }
    if let Some(rest) = rest {
        rest.into_iter().for_each(fire);
    }
}

/// Where a future's outcome stands.
enum FutState<T> {
    Pending,
    Value(T),
    /// Boxed: an `Error` is 56 bytes, and every future would carry them inline.
    Failed(Box<Error>),
}

impl<T> FutState<T> {
    /// Done by cancellation?
    fn is_cancelled(&self) -> bool {
        matches!(self, FutState::Failed(e) if e.is_cancelled())
    }
}

impl<T: Clone> FutState<T> {
    /// The outcome as awaiters and `result()` get it (a copy each, F2).
    fn outcome(&self) -> Option<Result<T, Error>> {
        match self {
            FutState::Pending => None,
            FutState::Value(v) => Some(Ok(v.clone())),
            FutState::Failed(e) => Some(Err((**e).clone())),
        }
    }
}

/// A done-callback of a `LoopFuture<T>`: it receives the future, as in asyncio.
type FutCallback<T> = Box<dyn FnOnce(&LoopFuture<T>)>;

/// What a future's clones share: the loop (outside the `RefCell`: `get_loop` hands out a
/// plain reference) and the cell.
struct Shared<T> {
    /// The loop the callbacks are scheduled on; also what dropping an unfired cell uses to
    /// release its awaiters' counts (F4).
    lp: LoopHandle,
    cell: RefCell<FutureCell<T>>,
}

struct FutureCell<T> {
    state: FutState<T>,
    callbacks: DoneCallbacks<FutCallback<T>>,
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let c = self.cell.get_mut();
        if !c.callbacks.is_empty() {
            c.callbacks.release_tasks(&self.lp);
        }
    }
}

/// asyncio's `Future`: a slot filled once, with done-callbacks. Cheap to clone (one `Rc`,
/// shared by every clone).
pub struct LoopFuture<T> {
    inner: Rc<Shared<T>>,
}

impl<T> Clone for LoopFuture<T> {
    fn clone(&self) -> Self {
        LoopFuture { inner: self.inner.clone() }
    }
}

impl<T> fmt::Debug for LoopFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.inner.cell.borrow();
        let state = match &c.state {
            FutState::Pending => "pending",
            s if s.is_cancelled() => "cancelled",
            FutState::Value(_) => "finished",
            FutState::Failed(_) => "failed",
        };
        f.debug_struct("LoopFuture").field("state", &state).field("callbacks", &c.callbacks.len()).finish()
    }
}

/// Identifies a registered done-callback, for `remove_done_callback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackToken(u64);

impl<T: 'static> LoopFuture<T> {
    /// A pending future bound to `lp`. asyncio: `loop.create_future()`.
    pub fn new(lp: &LoopHandle) -> LoopFuture<T> {
        LoopFuture {
            inner: Rc::new(Shared {
                lp: lp.clone(),
                cell: RefCell::new(FutureCell { state: FutState::Pending, callbacks: DoneCallbacks::new() }),
            }),
        }
    }

    /// The loop this future schedules its callbacks on.
    pub fn get_loop(&self) -> &LoopHandle {
        &self.inner.lp
    }

    /// Done (with a result, an exception or cancelled)? asyncio: `done()`.
    pub fn is_done(&self) -> bool {
        !matches!(self.inner.cell.borrow().state, FutState::Pending)
    }

    /// Cancelled? asyncio: `cancelled()`.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cell.borrow().state.is_cancelled()
    }

    /// Complete with a value (F3). asyncio: `set_result`.
    pub fn set_result(&self, value: T) -> Result<(), Error> {
        self.complete(Ok(value))
    }

    /// Complete with an exception (F3). asyncio: `set_exception`.
    pub fn set_exception(&self, exc: impl Into<Error>) -> Result<(), Error> {
        self.complete(Err(exc.into()))
    }

    /// Cancel: returns false if already done. asyncio: `cancel()`.
    pub fn cancel(&self) -> bool {
        self.complete(Err(Error::cancelled())).is_ok()
    }

    /// Cancel with a message. asyncio: `cancel(msg)`.
    pub fn cancel_with(&self, message: impl Into<String>) -> bool {
        self.complete(Err(Error::Cancelled(CancelledError { message: Some(message.into()) }))).is_ok()
    }

    fn complete(&self, outcome: Result<T, Error>) -> Result<(), Error> {
        let callbacks = {
            let mut c = self.inner.cell.borrow_mut();
            if !matches!(c.state, FutState::Pending) {
                let what = if c.state.is_cancelled() { "cancelled" } else { "finished" };
                return Err(Error::invalid_state(format!("invalid state: the future is already {what}")));
            }
            c.state = match outcome {
                Ok(v) => FutState::Value(v),
                Err(e) => FutState::Failed(Box::new(e)),
            };
            c.callbacks.take_entries()
        };
        // F1, F2: schedule, in order, with no borrow held; a callback is called with the future.
        fire_entries(callbacks, &self.inner.lp, |f| {
            let me = self.clone();
            self.inner.lp.call_soon(move |_| f(&me));
        });
        Ok(())
    }

    /// Register `f` to be scheduled when the future is done (F1: scheduled even if it
    /// already is). asyncio: `add_done_callback`.
    pub fn add_done_callback(&self, f: impl FnOnce(&LoopFuture<T>) + 'static) -> CallbackToken {
        let mut c = self.inner.cell.borrow_mut();
        if matches!(c.state, FutState::Pending) {
            return CallbackToken(c.callbacks.push_callback(Box::new(f)));
        }
        drop(c);
        let me = self.clone();
        self.inner.lp.call_soon(move |_| f(&me));
        CallbackToken(0)
    }

    /// Unregister a callback; returns how many were removed (0 or 1).
    /// asyncio: `remove_done_callback`.
    pub fn remove_done_callback(&self, token: CallbackToken) -> usize {
        usize::from(self.inner.cell.borrow_mut().callbacks.remove(token.0))
    }

    /// The exception, if the future failed; `InvalidState` while pending; `Cancelled` if
    /// cancelled. asyncio: `exception()`.
    pub fn exception(&self) -> Result<Option<Error>, Error> {
        match &self.inner.cell.borrow().state {
            FutState::Pending => Err(Error::invalid_state("Exception is not set.")),
            FutState::Failed(e) if e.is_cancelled() => Err((**e).clone()),
            FutState::Failed(e) => Ok(Some((**e).clone())),
            FutState::Value(_) => Ok(None),
        }
    }

    /// A user exception shorthand: `set_exception(Exception::new(kind, msg))`.
    pub fn set_error(&self, kind: &str, message: &str) -> Result<(), Error> {
        self.set_exception(Exception::new(kind, message))
    }
}

impl<T: Clone + 'static> LoopFuture<T> {
    /// The result: `InvalidState` while pending, the error if it failed or was cancelled.
    /// asyncio: `result()`.
    pub fn result(&self) -> Result<T, Error> {
        self.inner.cell.borrow().state.outcome().unwrap_or_else(|| Err(Error::invalid_state("Result is not set.")))
    }
}

impl<T: Clone + 'static> Future for LoopFuture<T> {
    type Output = Result<T, Error>;

    /// Already done: ready at once, no trip through the loop (asyncio: `await` on a done
    /// future does not yield). Else park the waker as a done-callback (F2).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let mut c = self.inner.cell.borrow_mut();
        match c.state.outcome() {
            Some(r) => Poll::Ready(r),
            None => {
                let added = c.callbacks.set_waker(cx.waker(), self.inner.lp.id());
                drop(c);
                if let Some(id) = added {
                    self.inner.lp.adjust_parked(id, 1); // F4
                }
                Poll::Pending
            }
        }
    }
}
