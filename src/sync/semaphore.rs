//! `Semaphore` and `BoundedSemaphore`: a counter of permits, and a FIFO of tasks wanting one.
//!
//! `acquire` takes a permit if one is free *and nobody queues* (V2); otherwise it waits.
//! `release` adds a permit and, if someone waits, hands it straight over: the count is
//! decremented for the woken waiter at the moment it is woken, so nobody can snatch it in
//! between. A woken waiter that is dropped before it ran gives its permit back and wakes the
//! next one (V3).
//!
//! ```text
//!   acquire(): value > 0 && no waiters ─1─► value -= 1, Ready(permit)
//!              else ─────────────────────2─► push W, Pending ─(woken)─3─► Ready(permit)
//!   release():  value += 1 ─4─► first unwoken W: value -= 1, wake W   (_wake_up_next)
//!   drop(SemaphoreAcquire) after woken ─5─► value += 1, _wake_up_next  (V3)
//!   (1..3: SemaphoreAcquire::poll; 4: release / SemaphorePermit::drop; 5: its Drop)
//! ```
//!
//! # asyncio equivalent
//! `asyncio.Semaphore` and `asyncio.BoundedSemaphore` (`locks.py`, 3.11.7, the version that
//! hands the permit over in `_wake_up_next`). `async with sem:` is
//! `let _permit = sem.acquire().await;`. A bounded semaphore released above its initial
//! value raises `ValueError` there; here [`BoundedSemaphore::release`] returns that error.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{WaitQueue, Waiter};
use crate::error::{Error, Exception};

/// The shared state behind a semaphore and its permits.
#[derive(Debug)]
struct SemInner {
    /// Free permits. asyncio: `Semaphore._value`.
    value: Cell<usize>,
    /// The initial value, for a bounded semaphore. asyncio: `_bound_value`.
    bound: Option<usize>,
    /// Tasks waiting for a permit, oldest first. asyncio: `_waiters`.
    waiters: RefCell<WaitQueue>,
}

impl SemInner {
    /// asyncio: `locked()`: no permit, or someone queued (a woken waiter still counts).
    fn locked(&self) -> bool {
        self.value.get() == 0 || !self.waiters.borrow().is_empty()
    }

    /// Edge 4 and 5. asyncio: `_wake_up_next`: hand one permit to the first unwoken waiter.
    fn wake_up_next(&self) {
        let next = self.waiters.borrow().first_unwoken().cloned();
        if let Some(w) = next {
            debug_assert!(self.value.get() > 0, "wake_up_next is called only after a permit came back");
            self.value.set(self.value.get() - 1);
            w.wake();
        }
    }

    /// Give one permit back (the unchecked part of `release`).
    fn release(&self) {
        self.value.set(self.value.get() + 1);
        self.wake_up_next();
    }
}

/// A counter of permits for tasks. asyncio: `asyncio.Semaphore`. Cheap to clone (shared).
#[derive(Clone)]
pub struct Semaphore {
    /// Shared by clones and permits.
    inner: Rc<SemInner>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("value", &self.value()).field("waiters", &self.waiters()).finish()
    }
}

impl Semaphore {
    /// A semaphore with `value` permits. asyncio: `Semaphore(value)`.
    pub fn new(value: usize) -> Semaphore {
        Semaphore { inner: Rc::new(SemInner { value: Cell::new(value), bound: None, waiters: RefCell::default() }) }
    }

    /// Free permits now. asyncio: `_value`.
    pub fn value(&self) -> usize {
        self.inner.value.get()
    }

    /// Tasks queued (woken or not).
    pub fn waiters(&self) -> usize {
        self.inner.waiters.borrow().len()
    }

    /// Would `acquire` have to wait? asyncio: `locked()`.
    pub fn locked(&self) -> bool {
        self.inner.locked()
    }

    /// Wait for a permit. asyncio: `await sem.acquire()` / `async with sem`.
    pub fn acquire(&self) -> SemaphoreAcquire {
        SemaphoreAcquire { inner: self.inner.clone(), waiter: None }
    }

    /// Add a permit (edge 4). asyncio: `release()`. Pair it with [`SemaphorePermit::forget`].
    pub fn release(&self) {
        self.inner.release();
    }
}

/// A semaphore that refuses to go above its initial value. asyncio: `BoundedSemaphore`.
#[derive(Clone, Debug)]
pub struct BoundedSemaphore {
    /// The same machine, with `bound` set.
    sem: Semaphore,
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` permits (and at most `value`).
    pub fn new(value: usize) -> BoundedSemaphore {
        let inner = SemInner { value: Cell::new(value), bound: Some(value), waiters: RefCell::default() };
        BoundedSemaphore { sem: Semaphore { inner: Rc::new(inner) } }
    }

    /// Free permits now.
    pub fn value(&self) -> usize {
        self.sem.value()
    }

    /// Would `acquire` have to wait? asyncio: `locked()`.
    pub fn locked(&self) -> bool {
        self.sem.locked()
    }

    /// Wait for a permit.
    pub fn acquire(&self) -> SemaphoreAcquire {
        self.sem.acquire()
    }

    /// Add a permit; releasing more than was acquired is an error.
    /// asyncio: `ValueError('BoundedSemaphore released too many times')`.
    pub fn release(&self) -> Result<(), Error> {
        let bound = self.sem.inner.bound.expect("a BoundedSemaphore always has a bound");
        if self.sem.inner.value.get() >= bound {
            return Err(Exception::new("ValueError", "BoundedSemaphore released too many times").into());
        }
        self.sem.inner.release();
        Ok(())
    }
}

/// One permit; gives it back on drop. asyncio: the body of `async with sem`.
#[must_use = "dropping the permit releases it at once"]
pub struct SemaphorePermit {
    /// The semaphore the permit came from; `None` once `forget` kept the permit.
    inner: Option<Rc<SemInner>>,
}

impl SemaphorePermit {
    /// Keep the permit taken without a guard; release it later with `release()`
    /// (asyncio's bare `acquire()` / `release()` pairs, and the rate limiter).
    ///
    /// Only the permit is kept, not the semaphore: this used to `mem::forget` the whole
    /// guard, which leaked its `Rc` and so the semaphore itself (found by Miri's leak check).
    pub fn forget(mut self) {
        self.inner = None;
    }
}

impl fmt::Debug for SemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}

impl Drop for SemaphorePermit {
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            inner.release();
        }
    }
}

/// The future of [`Semaphore::acquire`].
#[must_use = "futures do nothing unless awaited"]
pub struct SemaphoreAcquire {
    /// The semaphore.
    inner: Rc<SemInner>,
    /// Our place in the queue once we had to wait (edge 2).
    waiter: Option<Rc<Waiter>>,
}

impl fmt::Debug for SemaphoreAcquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreAcquire").field("queued", &self.waiter.is_some()).finish()
    }
}

impl Future for SemaphoreAcquire {
    type Output = SemaphorePermit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphorePermit> {
        match &self.waiter {
            None => {
                if !self.inner.locked() {
                    self.inner.value.set(self.inner.value.get() - 1); // edge 1
                    return Poll::Ready(SemaphorePermit { inner: Some(self.inner.clone()) });
                }
                let w = Waiter::new(cx.waker());
                self.inner.waiters.borrow_mut().push(w.clone());
                self.waiter = Some(w);
                Poll::Pending
            }
            Some(w) if w.is_woken() => {
                // Edge 3: the permit was already counted out for us in wake_up_next.
                let w = self.waiter.take().expect("matched Some");
                self.inner.waiters.borrow_mut().remove(&w);
                // asyncio: `if self._value > 0: self._wake_up_next()`.
                if self.inner.value.get() > 0 {
                    self.inner.wake_up_next();
                }
                Poll::Ready(SemaphorePermit { inner: Some(self.inner.clone()) })
            }
            Some(w) => {
                w.refresh(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for SemaphoreAcquire {
    /// asyncio: `except CancelledError: if not fut.cancelled(): self._value += 1;
    /// self._wake_up_next()`. A waiter that was never woken had no permit to return.
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.inner.waiters.borrow_mut().remove(&w);
            if w.is_woken() {
                self.inner.release(); // V3
            }
        }
    }
}
