//! `Condition`: wait for a notification while giving the lock up, then take it back.
//!
//! A condition is a lock plus a FIFO of *notification* waiters. `wait` releases the lock,
//! queues, and when notified (or timed out) re-acquires the lock *before* it returns: the
//! caller always gets its guard back. The re-acquire is an ordinary `Lock::acquire`, so a
//! notified task queues behind tasks already waiting for the lock.
//!
//! ```text
//!   wait(guard) ─1─► drop(guard): lock released (wakes a lock waiter)
//!               ─2─► push W on the condition's queue, Pending
//!   notify(n)   ─3─► wake the first n unwoken W, in order (the lock must be held)
//!   W woken / timed out ─4─► leave the queue, lock.acquire() ─5─► Ready(guard)
//!   (1, 2, 4, 5: ConditionWait::poll; 3: Condition::notify)
//! ```
//!
//! # asyncio equivalent
//! `asyncio.Condition` (`locks.py`, 3.11): `wait`, `wait_for(predicate)`, `notify(n)`,
//! `notify_all`. asyncio's `wait()` re-acquires the lock in a `finally`, also when it is
//! cancelled. In Rust a cancelled task's future is *dropped*, and a destructor cannot await
//! the lock; but the caller's guard was moved into `wait`, so no code of the cancelled task
//! can run without the lock anyway. The case where asyncio's re-acquire matters to the
//! caller, a wait given up after a timeout (`async with timeout(..): await cond.wait()`),
//! is [`Condition::wait_timeout`]: it re-acquires and returns the guard with `timed_out`.
//! As in 3.11, a notified waiter that is dropped does not pass the notification on.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::lock::{Acquire, Lock, LockGuard};
use super::{WaitQueue, Waiter};
use crate::error::{Error, Exception};
use crate::time::{Sleep, sleep};

/// A condition variable for tasks. asyncio: `asyncio.Condition`. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Condition {
    /// The lock `wait` gives up and takes back. asyncio: `Condition._lock`.
    lock: Lock,
    /// Tasks waiting for a notification, oldest first. asyncio: `Condition._waiters`.
    waiters: Rc<RefCell<WaitQueue>>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").field("lock", &self.lock).field("waiters", &self.waiters.borrow().len()).finish()
    }
}

impl Condition {
    /// A condition with its own lock. asyncio: `Condition()`.
    pub fn new() -> Condition {
        Condition::default()
    }

    /// A condition over an existing lock. asyncio: `Condition(lock)`.
    pub fn with_lock(lock: Lock) -> Condition {
        Condition { lock, waiters: Rc::default() }
    }

    /// Acquire the underlying lock. asyncio: `async with cond:`.
    pub fn acquire(&self) -> Acquire {
        self.lock.acquire()
    }

    /// Is the underlying lock held? asyncio: `locked()`.
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// Tasks waiting for a notification.
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Release the lock, wait for a notification, re-acquire, return the guard.
    /// asyncio: `await cond.wait()`.
    ///
    /// # Panics
    /// If `guard` holds another lock than this condition's.
    pub fn wait(&self, guard: LockGuard) -> impl Future<Output = LockGuard> + 'static {
        let w = self.wait_inner(guard, None);
        async move { w.await.0 }
    }

    /// [`wait`](Self::wait) that gives up after `timeout`, still re-acquiring the lock:
    /// returns the guard and whether it timed out. asyncio:
    /// `async with asyncio.timeout(t): await cond.wait()` inside `async with cond:`.
    pub fn wait_timeout(&self, guard: LockGuard, timeout: Duration) -> ConditionWait {
        self.wait_inner(guard, Some(timeout))
    }

    fn wait_inner(&self, guard: LockGuard, timeout: Option<Duration>) -> ConditionWait {
        assert!(self.lock.same_lock(guard.lock()), "Condition::wait: the guard holds another lock");
        ConditionWait {
            cond: self.clone(),
            phase: Phase::Start(Some(guard)),
            timer: timeout.map(sleep),
            timed_out: false,
        }
    }

    /// Wait until `predicate()` is true, re-checking after every notification.
    /// asyncio: `await cond.wait_for(predicate)`.
    pub async fn wait_for(&self, mut guard: LockGuard, mut predicate: impl FnMut() -> bool) -> LockGuard {
        while !predicate() {
            guard = self.wait(guard).await;
        }
        guard
    }

    /// Wake up to `n` waiters, oldest first (edge 3). The lock must be held.
    /// asyncio: `notify(n)`, which raises `RuntimeError` on an un-acquired lock.
    pub fn notify(&self, n: usize) -> Result<(), Error> {
        if !self.lock.locked() {
            return Err(Exception::new("RuntimeError", "cannot notify on un-acquired lock").into());
        }
        let chosen: Vec<Rc<Waiter>> = self.waiters.borrow().iter().filter(|w| !w.is_woken()).take(n).cloned().collect();
        for w in chosen {
            w.wake();
        }
        Ok(())
    }

    /// Wake every waiter. asyncio: `notify_all()`.
    pub fn notify_all(&self) -> Result<(), Error> {
        let n = self.waiters.borrow().len();
        self.notify(n)
    }
}

/// Where a [`ConditionWait`] stands.
enum Phase {
    /// Created; still holds the caller's guard (edge 1 at the first poll).
    Start(Option<LockGuard>),
    /// Queued for a notification (edge 2).
    Waiting(Rc<Waiter>),
    /// Notified or timed out; taking the lock back (edge 5).
    Reacquire(Acquire),
    /// Returned.
    Done,
}

/// The future of [`Condition::wait`] and [`Condition::wait_timeout`]: yields the guard and
/// `timed_out` (always false for `wait`).
#[must_use = "futures do nothing unless awaited"]
pub struct ConditionWait {
    /// The condition.
    cond: Condition,
    /// The state machine above.
    phase: Phase,
    /// The timeout of `wait_timeout`, armed at the first poll.
    timer: Option<Sleep>,
    /// The timer won before a notification.
    timed_out: bool,
}

impl fmt::Debug for ConditionWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            Phase::Start(_) => "start",
            Phase::Waiting(_) => "waiting",
            Phase::Reacquire(_) => "reacquire",
            Phase::Done => "done",
        };
        f.debug_struct("ConditionWait").field("phase", &phase).finish()
    }
}

impl Future for ConditionWait {
    type Output = (LockGuard, bool);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(LockGuard, bool)> {
        let this = &mut *self;
        loop {
            match &mut this.phase {
                Phase::Start(guard) => {
                    // Edges 1 and 2, in asyncio's order: release, then queue.
                    drop(guard.take());
                    let w = Waiter::new(cx.waker());
                    this.cond.waiters.borrow_mut().push(w.clone());
                    this.phase = Phase::Waiting(w);
                    if let Some(t) = this.timer.as_mut() {
                        let _ = Pin::new(t).poll(cx); // arm the timer
                    }
                    return Poll::Pending;
                }
                Phase::Waiting(w) => {
                    let fired = !w.is_woken() && this.timer.as_mut().is_some_and(|t| Pin::new(t).poll(cx).is_ready());
                    if !w.is_woken() && !fired {
                        w.refresh(cx.waker());
                        return Poll::Pending;
                    }
                    // Edge 4: asyncio's `finally: self._waiters.remove(fut)`.
                    this.cond.waiters.borrow_mut().remove(w);
                    this.timed_out = fired;
                    this.timer = None;
                    this.phase = Phase::Reacquire(this.cond.lock.acquire());
                }
                Phase::Reacquire(acq) => {
                    let guard = std::task::ready!(Pin::new(acq).poll(cx));
                    this.phase = Phase::Done;
                    return Poll::Ready((guard, this.timed_out));
                }
                Phase::Done => panic!("ConditionWait polled after completion"),
            }
        }
    }
}

impl Drop for ConditionWait {
    fn drop(&mut self) {
        if let Phase::Waiting(w) = &self.phase {
            self.cond.waiters.borrow_mut().remove(w); // V4
        }
        // Phase::Reacquire drops its Acquire, which passes a lock wake-up on (V3).
    }
}
