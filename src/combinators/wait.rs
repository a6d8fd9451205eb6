//! `wait` and `as_completed`: watch tasks without owning their fate.
//!
//! Both register a done-callback on every task and never cancel anything. `wait` sleeps on
//! one *waiter* until a condition holds (first completed, first failed, all completed) or
//! its timeout fires, then splits the tasks into `done` and `pending` by looking at them:
//! `done` may hold more than the task that triggered the return. `as_completed` queues each
//! result as its callback runs and hands them out in that (completion) order.
//!
//! ```text
//!   wait(tasks, when, timeout):   on_completion(t) ─► counter -= 1
//!       counter == 0 | FirstCompleted | (FirstException && t panicked) ─► release waiter
//!       timer(timeout) ─► release waiter           then: done = [t | t.is_done()], pending
//!   as_completed(tasks):  cb(t) ─► done_queue.push(result) ─► wake the consumer
//!       timer(timeout) ─► every result not yet queued becomes Err(Timeout); tasks run on
//! ```
//!
//! # asyncio equivalent
//! `asyncio.wait(fs, timeout, return_when)` (`tasks.py: _wait`) and
//! `asyncio.as_completed(fs, timeout)`. asyncio returns sets; we return `Vec`s in argument
//! order. asyncio's "exception" for `FIRST_EXCEPTION` is a failed, not cancelled, task: here a
//! task that panicked (K4). `wait([])` is asyncio's `ValueError`; here it returns two empty
//! lists at once.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::{on_done, running_loop};
use crate::error::{Error, TimeoutError};
use crate::stream::AsyncIterator;
use crate::task::{Task, TaskState};

/// When [`wait`] returns. asyncio: `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any task finishes (or is cancelled).
    FirstCompleted,
    /// As soon as any task fails (panics); else when all have finished.
    FirstException,
    /// When every task has finished.
    AllCompleted,
}

/// The state `wait`'s callbacks share. asyncio: `_wait`'s `counter` and `waiter`.
struct WaitState {
    /// Callbacks not run yet.
    counter: usize,
    /// The waiter was released.
    released: bool,
    /// The waiting task.
    waker: Option<Waker>,
}

impl WaitState {
    fn release(&mut self) -> Option<Waker> {
        if self.released {
            return None;
        }
        self.released = true;
        self.waker.take()
    }
}

/// Wait for `tasks` until `return_when` holds or `timeout` passes; returns `(done,
/// pending)` in argument order. Cancels nothing, and a timeout is not an error.
/// asyncio: `done, pending = await asyncio.wait(tasks, timeout=.., return_when=..)`.
///
/// # Panics
/// Outside a running looplab loop.
pub async fn wait<T: 'static>(
    tasks: Vec<Task<T>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> (Vec<Task<T>>, Vec<Task<T>>) {
    if tasks.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let lp = running_loop("wait");
    let state = Rc::new(RefCell::new(WaitState { counter: tasks.len(), released: false, waker: None }));
    // asyncio creates the timeout handle before adding the callbacks.
    let timer = timeout.map(|d| {
        let st = state.clone();
        lp.call_later(d, move |_| {
            let w = st.borrow_mut().release();
            if let Some(w) = w {
                w.wake();
            }
        })
    });
    for t in &tasks {
        let (st, id) = (state.clone(), t.id());
        t.add_done_callback(move |lp| {
            let failed = lp.task_state(id) == Some(TaskState::Failed);
            let w = {
                let mut s = st.borrow_mut();
                s.counter -= 1;
                let fire = s.counter == 0
                    || return_when == ReturnWhen::FirstCompleted
                    || (return_when == ReturnWhen::FirstException && failed);
                if fire { s.release() } else { None }
            };
            if let Some(w) = w {
                w.wake();
            }
        });
    }
    std::future::poll_fn(|cx| {
        let mut s = state.borrow_mut();
        if s.released {
            Poll::Ready(())
        } else {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await;
    if let Some(t) = timer {
        t.cancel();
    }
    tasks.into_iter().partition(|t| t.is_done())
}

/// What the `as_completed` callbacks share.
struct AsCompletedState<T> {
    /// Results in completion order, not yet handed out. asyncio: the `done` queue.
    done: VecDeque<Result<T, Error>>,
    /// Results (or timeouts) still to hand out.
    remaining: usize,
    /// The timeout fired: the rest are `Err(Timeout)`.
    timed_out: bool,
    /// The consumer.
    waker: Option<Waker>,
}

/// Results in completion order. asyncio: `for f in asyncio.as_completed(tasks, timeout=..)`.
/// Consume it with [`AsCompleted::next`] or through [`AsyncIterator`].
#[must_use = "iterate it to get the results"]
pub struct AsCompleted<T> {
    /// Shared with the callbacks and the timer.
    state: Rc<RefCell<AsCompletedState<T>>>,
    /// The timeout timer, cancelled when dropped.
    timer: Option<crate::TimerHandle>,
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("AsCompleted").field("ready", &s.done.len()).field("remaining", &s.remaining).finish()
    }
}

/// Watch `tasks`; hand their results out in completion order. After `timeout` the results
/// not yet in are `Err(Timeout)` and the tasks keep running.
///
/// # Panics
/// Outside a running looplab loop.
pub fn as_completed<T: 'static>(tasks: Vec<Task<T>>, timeout: Option<Duration>) -> AsCompleted<T> {
    let lp = running_loop("as_completed");
    let state = Rc::new(RefCell::new(AsCompletedState {
        done: VecDeque::new(),
        remaining: tasks.len(),
        timed_out: false,
        waker: None,
    }));
    for t in tasks {
        let st = state.clone();
        on_done(t, move |r| {
            let w = {
                let mut s = st.borrow_mut();
                if s.timed_out {
                    return; // asyncio's `_on_timeout` removed this callback
                }
                s.done.push_back(r);
                s.waker.take()
            };
            if let Some(w) = w {
                w.wake();
            }
        });
    }
    let timer = timeout.map(|d| {
        let st = state.clone();
        lp.call_later(d, move |_| {
            let w = {
                let mut s = st.borrow_mut();
                s.timed_out = true;
                s.waker.take()
            };
            if let Some(w) = w {
                w.wake();
            }
        })
    });
    AsCompleted { state, timer }
}

impl<T> AsCompleted<T> {
    /// The next result in completion order; `None` when all were handed out.
    pub fn poll_next_result(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        let mut s = self.state.borrow_mut();
        if s.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(r) = s.done.pop_front() {
            s.remaining -= 1;
            return Poll::Ready(Some(r));
        }
        if s.timed_out {
            s.remaining -= 1;
            return Poll::Ready(Some(Err(TimeoutError.into())));
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Await the next result. asyncio: `await next_future_from_as_completed`.
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        std::future::poll_fn(|cx| self.poll_next_result(cx)).await
    }
}

impl<T> AsyncIterator for AsCompleted<T> {
    type Item = Result<T, Error>;
    async fn next(&mut self) -> Option<Self::Item> {
        AsCompleted::next(self).await
    }
}

impl<T> Drop for AsCompleted<T> {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            t.cancel();
        }
    }
}
