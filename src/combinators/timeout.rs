//! `wait_for` and `timeout`: give work a deadline.
//!
//! Two shapes, as in asyncio. [`wait_for`] runs the work as a *separate task* and waits for
//! one of two callbacks: the task finished, or the deadline timer fired. If the task is done
//! by then, its result wins, even if the timer fired in the same iteration (G3). Otherwise it
//! cancels the task and *waits for it to finish* (its destructors, the cleanup, run at its
//! next step) before returning `Error::Timeout`.
//!
//! [`timeout`] runs the work *inline*, inside the awaiting task (asyncio's
//! `async with asyncio.timeout(d):` block). When the deadline timer fires it wakes the task;
//! at the task's next step the inner future is dropped right there (its cleanup runs inside
//! that step) and `Error::Timeout` is returned.
//!
//! ```text
//!   wait_for(fut, d):  spawn(fut) ─► task ─┬─ done cb ─────► release ─► task done? ─► result
//!                      call_later(d) ──────┴─ timer ───────► release ─► cancel(task)
//!                                        ─► task dropped (cleanup) ─► done cb ─► Err(Timeout)
//!   timeout(d, fut):   first poll: arm call_at(now + d) (call_soon if already due)
//!                      timer ─► expired = true, wake ─► next poll: drop(fut) ─► Err(Timeout)
//! ```
//!
//! # asyncio equivalent
//! `asyncio.wait_for` (`tasks.py`, 3.11) and `asyncio.timeout` / `timeout_at`
//! (`timeouts.py`). `timeout(Duration::ZERO, fut)` interrupts even a `yield_now()`, as
//! `timeout(0)` interrupts `sleep(0)`: its expiry is a `call_soon`, queued ahead of the
//! task's own wake-up. asyncio's inner task may swallow the cancellation and return a value,
//! which `wait_for` then returns; a looplab task cannot (K1), so only a result that was
//! already there is returned.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::running_loop;
use crate::error::{Error, TimeoutError};
use crate::events::{Handle, LoopHandle, TimerHandle, get_running_loop};
use crate::task::{Task, TaskId};

/// A one-shot signal with a waker: asyncio's `waiter = loop.create_future()` used only to
/// be released.
#[derive(Clone, Default)]
struct Flag(Rc<RefCell<(bool, Option<Waker>)>>);

impl Flag {
    /// A callback that releases the flag (asyncio: `_release_waiter`).
    fn setter(&self) -> impl FnOnce(&LoopHandle) + 'static {
        let me = self.clone();
        move |_| me.set()
    }
    fn set(&self) {
        let w = {
            let mut s = self.0.borrow_mut();
            if s.0 {
                return;
            }
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
    fn is_set(&self) -> bool {
        self.0.borrow().0
    }
    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            if s.0 {
                Poll::Ready(())
            } else {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Cancels a task if dropped while armed (G1: the awaiting task was cancelled).
struct CancelOnDrop {
    /// The loop.
    lp: LoopHandle,
    /// The task to cancel.
    id: TaskId,
    /// Still responsible for the task?
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.lp.cancel_task(self.id);
        }
    }
}

/// Run `fut` as a task with a deadline `timeout` from now. On expiry the task is cancelled,
/// its cleanup runs, then `Err(Timeout)`. asyncio: `await asyncio.wait_for(fut, timeout)`.
///
/// # Panics
/// Outside a running looplab loop.
pub async fn wait_for<F>(fut: F, timeout: Duration) -> Result<F::Output, Error>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let task = running_loop("wait_for").spawn(fut);
    wait_for_task(task, timeout).await
}

/// [`wait_for`] on a task you already spawned (asyncio: `wait_for(task, timeout)`).
pub async fn wait_for_task<T: 'static>(mut task: Task<T>, timeout: Duration) -> Result<T, Error> {
    let lp = running_loop("wait_for");
    let mut guard = CancelOnDrop { lp: lp.clone(), id: task.id(), armed: true };
    if !timeout.is_zero() {
        let waiter = Flag::default();
        let timer = lp.call_later(timeout, waiter.setter());
        task.add_done_callback(waiter.setter());
        waiter.wait().await;
        timer.cancel();
        if task.is_done() {
            guard.armed = false;
            return task.result(); // G3: the result was there first
        }
    } else if task.is_done() {
        guard.armed = false;
        return task.result();
    }
    // asyncio: `await _cancel_and_wait(fut)`: cancel, then wait for the task's callback.
    let finished = Flag::default();
    task.add_done_callback(finished.setter());
    task.cancel();
    finished.wait().await;
    guard.armed = false;
    match task.result() {
        Err(Error::Cancelled(_)) => Err(TimeoutError.into()),
        other => other,
    }
}

/// When a [`Timeout`] expires.
#[derive(Clone, Copy, Debug)]
enum Deadline {
    /// This long after the first poll (no loop was running at the call).
    After(Duration),
    /// At this loop time.
    At(Duration),
}

/// The armed expiry: a `call_soon` when the deadline had passed already, else a timer.
enum Armed {
    Soon(Handle),
    At(TimerHandle),
}

impl Armed {
    fn cancel(&self) {
        match self {
            Armed::Soon(h) => h.cancel(),
            Armed::At(t) => t.cancel(),
        };
    }
}

/// The future of [`timeout`] and [`timeout_at`]: the inner future, or `Err(Timeout)`.
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F: Future> {
    /// The work; `None` once it finished or was dropped on expiry.
    fut: Option<Pin<Box<F>>>,
    /// When to give up.
    deadline: Deadline,
    /// Set by the expiry callback, with the task to wake. asyncio: `_State.EXPIRING`.
    expired: Flag,
    /// The expiry callback, once armed (at the first poll).
    armed: Option<Armed>,
}

impl<F: Future> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").field("deadline", &self.deadline).field("expired", &self.expired.is_set()).finish()
    }
}

/// Run `fut` inline, giving up `delay` from now: the inner future is dropped (its cleanup
/// runs) and `Err(Timeout)` returned. asyncio: `async with asyncio.timeout(delay): ...`.
pub fn timeout<F: Future>(delay: Duration, fut: F) -> Timeout<F> {
    let deadline = match get_running_loop() {
        Some(lp) => Deadline::At(lp.time() + delay),
        None => Deadline::After(delay),
    };
    Timeout { fut: Some(Box::pin(fut)), deadline, expired: Flag::default(), armed: None }
}

/// [`timeout`] with a deadline in loop time. asyncio: `asyncio.timeout_at(when)`.
pub fn timeout_at<F: Future>(when: Duration, fut: F) -> Timeout<F> {
    Timeout { fut: Some(Box::pin(fut)), deadline: Deadline::At(when), expired: Flag::default(), armed: None }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.armed.is_none() {
            // asyncio's `__aenter__` -> `reschedule(when)`.
            let lp = running_loop("timeout");
            let when = match this.deadline {
                Deadline::After(d) => lp.time() + d,
                Deadline::At(t) => t,
            };
            this.armed = Some(if when <= lp.time() {
                Armed::Soon(lp.call_soon(this.expired.setter()))
            } else {
                Armed::At(lp.call_at(when, this.expired.setter()))
            });
        }
        this.expired.0.borrow_mut().1 = Some(cx.waker().clone());
        if this.expired.is_set() {
            // The cancellation reaches the body at this await: drop it here (G3).
            this.fut = None;
            return Poll::Ready(Err(TimeoutError.into()));
        }
        let fut = this.fut.as_mut().expect("Timeout polled after completion");
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => {
                this.fut = None;
                if let Some(a) = this.armed.take() {
                    a.cancel();
                }
                Poll::Ready(Ok(v))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F: Future> Drop for Timeout<F> {
    fn drop(&mut self) {
        if let Some(a) = self.armed.take() {
            a.cancel();
        }
    }
}
