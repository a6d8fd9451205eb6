//! Synchronization primitives: who waits where, and who wakes whom.
//!
//! Every primitive here is the same machine: a little *state* (is the lock held? how many
//! permits are left? is the event set?) and a FIFO of *waiters*. A waiter is a small shared
//! cell (`Waiter`) holding a `woken` flag and the waker of the task that waits. An
//! operation that cannot finish at once appends a waiter and suspends; an operation that
//! changes the state (`release`, `set`, `notify`) marks the first waiter(s) woken and wakes
//! their task, which runs in a coming iteration, exactly as asyncio's `fut.set_result(True)`
//! schedules the waiting task's `__wakeup`.
//!
//! ```text
//!   task A: lock.acquire() ── held? ──no──► locked = true, Ready(guard)
//!                                └─yes──► waiters.push_back(W_A) ── Pending
//!   task B: drop(guard) ─► locked = false ─► W_A.woken = true, W_A.waker.wake()
//!   next iteration, task A polled again: W_A.woken ─► remove W_A, locked = true, Ready
//!   task A cancelled (its future dropped) while W_A.woken: Drop passes the wake-up on
//! ```
//!
//! # asyncio equivalent
//! `asyncio/locks.py`: each waiter there is a `Future` in a `collections.deque`; ours is an
//! `Rc<Waiter>` in a `VecDeque`. asyncio's `except CancelledError:` branches become our
//! `Drop` impls, because cancelling a looplab task drops its future (see `task/`).
//! The primitives are `Clone` handles (an `Rc` inside): clone one into each task.
//!
//! # Invariants
//! - **V1** Waiters are served in FIFO order; a release wakes only the first waiter that is
//!   not yet woken (Lock, Semaphore), or every waiter in order (Event).
//! - **V2** A newcomer never takes the lock or a permit ahead of a woken waiter.
//! - **V3** A waiter dropped after being woken passes its wake-up on to the next waiter:
//!   a wake-up is never swallowed.
//! - **V4** A dropped waiter leaves its queue at once (asyncio: `_waiters.remove(fut)` in
//!   the `finally`), so the queue only holds live waiters.

mod condition;
mod event;
mod lock;
mod rate_limit;
mod semaphore;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::Waker;

pub use condition::{Condition, ConditionWait};
pub use event::{Event, EventWait};
pub use lock::{Acquire, Lock, LockGuard};
pub use rate_limit::RateLimiter;
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreAcquire, SemaphorePermit};

/// One suspended operation: the `Future` asyncio appends to a `_waiters` deque.
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    /// Set by the waking side. asyncio: `fut.done()` after `fut.set_result(...)`.
    woken: Cell<bool>,
    /// The waiting task's waker, refreshed at every poll; taken when woken.
    waker: RefCell<Option<Waker>>,
}

impl Waiter {
    /// A fresh waiter for the task behind `waker`.
    pub(crate) fn new(waker: &Waker) -> Rc<Waiter> {
        Rc::new(Waiter { woken: Cell::new(false), waker: RefCell::new(Some(waker.clone())) })
    }

    /// Has the waking side marked us? asyncio: `fut.done()`.
    pub(crate) fn is_woken(&self) -> bool {
        self.woken.get()
    }

    /// Mark woken and schedule the task (one hop, as `set_result` schedules `__wakeup`).
    pub(crate) fn wake(&self) {
        self.woken.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Keep the waker current: a future may be polled from a different task's context.
    pub(crate) fn refresh(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }
}

/// A FIFO of waiters. asyncio: `collections.deque` of futures.
#[derive(Debug, Default)]
pub(crate) struct WaitQueue {
    /// Oldest first (V1).
    list: VecDeque<Rc<Waiter>>,
}

impl WaitQueue {
    /// Append a waiter at the back.
    pub(crate) fn push(&mut self, w: Rc<Waiter>) {
        self.list.push_back(w);
    }

    /// Remove `w` wherever it is (V4). Usually it is at the front, so this is cheap.
    pub(crate) fn remove(&mut self, w: &Rc<Waiter>) {
        if let Some(i) = self.list.iter().position(|x| Rc::ptr_eq(x, w)) {
            self.list.remove(i);
        }
    }

    /// The first waiter not yet woken. asyncio: the `for fut in self._waiters: if not
    /// fut.done()` loop of `_wake_up_next`.
    pub(crate) fn first_unwoken(&self) -> Option<&Rc<Waiter>> {
        self.list.iter().find(|w| !w.is_woken())
    }

    /// The waiter at the front, woken or not. asyncio: `next(iter(self._waiters))`.
    pub(crate) fn front(&self) -> Option<&Rc<Waiter>> {
        self.list.front()
    }

    /// Pop the front waiter. asyncio: `waiters.popleft()` (queues do that).
    pub(crate) fn pop_front(&mut self) -> Option<Rc<Waiter>> {
        self.list.pop_front()
    }

    /// Number of waiters (woken or not).
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// No waiters at all?
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every waiter, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Rc<Waiter>> {
        self.list.iter()
    }
}
