//! `Lock`: one holder at a time, waiters served first come, first served.
//!
//! The state is one flag, `locked`, and a FIFO of waiters. `release` clears the flag and
//! wakes the *first* waiter only; it does not hand the lock over. The woken waiter takes the
//! lock when its task next runs. In between, a newcomer sees `locked == false` but also a
//! non-empty queue, and queues up behind (V2): that is what makes the lock fair.
//!
//! ```text
//!   acquire():  !locked && no waiters ─1─► locked = true ─► Ready(LockGuard)
//!               otherwise ─────────────2─► push W, Pending ─(woken)─3─► locked = true, Ready
//!   drop(LockGuard) ─4─► locked = false, wake the first waiter (if it is not woken yet)
//!   drop(Acquire) while queued ─5─► leave the queue; if the lock is free, wake the new first
//!   (1, 2, 3: Acquire::poll; 4: LockGuard::drop; 5: Acquire::drop)
//! ```
//!
//! # asyncio equivalent
//! `asyncio.Lock` (`locks.py`, 3.11): `acquire` (edges 1 to 3), `release` (edge 4),
//! `_wake_up_first`, and the `except CancelledError` branch (edge 5). `async with lock:`
//! becomes `let _guard = lock.acquire().await;`: the guard releases on drop, so a forgotten
//! `release()` or a double release cannot happen. asyncio's condition "every waiter is
//! cancelled" becomes "no waiters" because a cancelled waiter leaves the queue at once (V4).
//!
//! # Invariants
//! V1 to V4 of the module `sync`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{WaitQueue, Waiter};

/// The shared state behind every clone of a [`Lock`].
#[derive(Debug, Default)]
struct LockInner {
    /// Held right now? asyncio: `Lock._locked`.
    locked: Cell<bool>,
    /// Tasks waiting to acquire, oldest first. asyncio: `Lock._waiters`.
    waiters: RefCell<WaitQueue>,
}

/// A mutual-exclusion lock for tasks. asyncio: `asyncio.Lock`. Cheap to clone (shared).
///
/// ```
/// use looplab::sync::Lock;
/// looplab::run_virtual(async {
///     let lock = Lock::new();
///     let guard = lock.acquire().await; // asyncio: `async with lock:`
///     assert!(lock.locked());
///     drop(guard);                      // the end of the `async with` block
///     assert!(!lock.locked());
/// }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct Lock {
    /// Shared by all clones and guards.
    inner: Rc<LockInner>,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("locked", &self.locked()).field("waiters", &self.waiters()).finish()
    }
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Lock {
        Lock::default()
    }

    /// Held right now? asyncio: `locked()`.
    pub fn locked(&self) -> bool {
        self.inner.locked.get()
    }

    /// How many tasks wait to acquire (for tests and the walkthrough).
    pub fn waiters(&self) -> usize {
        self.inner.waiters.borrow().len()
    }

    /// Wait until the lock is ours. asyncio: `await lock.acquire()` / `async with lock`.
    pub fn acquire(&self) -> Acquire {
        Acquire { lock: self.clone(), waiter: None, done: false }
    }

    /// Are `self` and `other` clones of the same lock?
    pub fn same_lock(&self, other: &Lock) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// Take the lock only if that needs no waiting (edge 1), else `None`.
    pub fn try_acquire(&self) -> Option<LockGuard> {
        if !self.inner.locked.get() && self.inner.waiters.borrow().is_empty() {
            self.inner.locked.set(true);
            Some(LockGuard { lock: self.clone() })
        } else {
            None
        }
    }

    /// Edge 4. asyncio: `Lock.release()`; here only a guard can call it, so releasing an
    /// unlocked lock (asyncio's `RuntimeError`) cannot be written.
    fn release(&self) {
        debug_assert!(self.inner.locked.get(), "L-invariant: only a guard releases, and it holds the lock");
        self.inner.locked.set(false);
        self.wake_up_first();
    }

    /// Wake the front waiter unless it is already woken. asyncio: `_wake_up_first`.
    fn wake_up_first(&self) {
        let front = self.inner.waiters.borrow().front().cloned();
        if let Some(w) = front {
            if !w.is_woken() {
                w.wake();
            }
        }
    }
}

/// Proof that the lock is held; releases it on drop. asyncio: the body of `async with lock`.
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    /// The lock we hold.
    lock: Lock,
}

impl LockGuard {
    /// The lock this guard holds (a `Condition` checks it is its own).
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Give the lock back without dropping a guard value the caller still names.
    pub fn release(self) {}
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.lock.release();
    }
}

/// The future of [`Lock::acquire`].
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire {
    /// The lock being acquired.
    lock: Lock,
    /// Our place in the queue once we had to wait (edge 2).
    waiter: Option<Rc<Waiter>>,
    /// Returned the guard already.
    done: bool,
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire").field("queued", &self.waiter.is_some()).field("done", &self.done).finish()
    }
}

impl Future for Acquire {
    type Output = LockGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard> {
        let inner = &self.lock.inner;
        match &self.waiter {
            None => {
                // Edge 1: free and nobody queued (V2: a woken waiter still counts as queued).
                if !inner.locked.get() && inner.waiters.borrow().is_empty() {
                    inner.locked.set(true);
                    self.done = true;
                    return Poll::Ready(LockGuard { lock: self.lock.clone() });
                }
                // Edge 2.
                let w = Waiter::new(cx.waker());
                inner.waiters.borrow_mut().push(w.clone());
                self.waiter = Some(w);
                Poll::Pending
            }
            Some(w) if w.is_woken() => {
                // Edge 3: asyncio's `finally: self._waiters.remove(fut)` then `_locked = True`.
                let w = w.clone();
                inner.waiters.borrow_mut().remove(&w);
                debug_assert!(!inner.locked.get(), "V2: the lock cannot be taken ahead of a woken waiter");
                inner.locked.set(true);
                self.waiter = None;
                self.done = true;
                Poll::Ready(LockGuard { lock: self.lock.clone() })
            }
            Some(w) => {
                w.refresh(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire {
    /// Edge 5, asyncio's `except CancelledError: if not self._locked: self._wake_up_first()`.
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.lock.inner.waiters.borrow_mut().remove(&w);
            if !self.lock.inner.locked.get() {
                self.lock.wake_up_first(); // V3
            }
        }
    }
}
