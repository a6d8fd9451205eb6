//! `Event`: a flag that tasks can wait for.
//!
//! `set()` raises the flag and wakes *every* waiter, in the order they started waiting
//! (V1). `wait()` returns at once if the flag is up, without yielding to the loop. `clear()`
//! lowers it; a waiter already woken still returns (its wake-up was delivered).
//!
//! ```text
//!   wait(): is_set ─1─► Ready (no trip through the loop)
//!           else ───2─► push W, Pending ─(set)─3─► Ready
//!   set():  flag = true ─4─► wake W1, W2, ... in order
//!   (1, 2, 3: EventWait::poll; 4: Event::set)
//! ```
//!
//! # asyncio equivalent
//! `asyncio.Event` (`locks.py`): `set`, `clear`, `is_set`, `wait`. A dropped waiter leaves
//! the queue (V4), as asyncio's `finally: self._waiters.remove(fut)`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{WaitQueue, Waiter};

/// The shared state behind every clone of an [`Event`].
#[derive(Debug, Default)]
struct EventInner {
    /// The flag. asyncio: `Event._value`.
    value: Cell<bool>,
    /// Tasks blocked in `wait`, oldest first. asyncio: `Event._waiters`.
    waiters: RefCell<WaitQueue>,
}

/// A flag tasks can wait on. asyncio: `asyncio.Event`. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Event {
    /// Shared by all clones.
    inner: Rc<EventInner>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("waiters", &self.inner.waiters.borrow().len())
            .finish()
    }
}

impl Event {
    /// A cleared event.
    pub fn new() -> Event {
        Event::default()
    }

    /// Is the flag up? asyncio: `is_set()`.
    pub fn is_set(&self) -> bool {
        self.inner.value.get()
    }

    /// Raise the flag and wake every waiter in order (edge 4). asyncio: `set()`.
    pub fn set(&self) {
        if self.inner.value.replace(true) {
            return;
        }
        // Wake in order, leaving them queued: each removes itself when it runs (V4).
        let waiters: Vec<Rc<Waiter>> = self.inner.waiters.borrow().iter().cloned().collect();
        for w in waiters {
            if !w.is_woken() {
                w.wake();
            }
        }
    }

    /// Lower the flag. asyncio: `clear()`.
    pub fn clear(&self) {
        self.inner.value.set(false);
    }

    /// Wait until the flag is up. asyncio: `await event.wait()`.
    pub fn wait(&self) -> EventWait {
        EventWait { event: self.clone(), waiter: None }
    }
}

/// The future of [`Event::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait {
    /// The event waited on.
    event: Event,
    /// Our place in the queue (edge 2).
    waiter: Option<Rc<Waiter>>,
}

impl fmt::Debug for EventWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait").field("queued", &self.waiter.is_some()).finish()
    }
}

impl Future for EventWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &self.waiter {
            None if self.event.is_set() => Poll::Ready(()), // edge 1
            None => {
                let w = Waiter::new(cx.waker());
                self.event.inner.waiters.borrow_mut().push(w.clone());
                self.waiter = Some(w);
                Poll::Pending
            }
            Some(w) if w.is_woken() => {
                let w = self.waiter.take().expect("matched Some");
                self.event.inner.waiters.borrow_mut().remove(&w);
                Poll::Ready(()) // edge 3
            }
            Some(w) => {
                w.refresh(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for EventWait {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.event.inner.waiters.borrow_mut().remove(&w); // V4
        }
    }
}
