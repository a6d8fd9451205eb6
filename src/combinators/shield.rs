//! `shield`: await a task without exposing it to your own cancellation.
//!
//! Awaiting a [`Task`] directly ties it to you: if you are cancelled, it is cancelled first
//! (K2). `shield(task)` puts a buffer in between: the task's result reaches the shield
//! through a done-callback, and the shield is what you await. Cancel yourself and only the
//! shield is dropped; the task runs on, and its result is read (so an error is not reported
//! as never retrieved) by the callback.
//!
//! ```text
//!   outer task ── awaits ──► Shield ◄── done cb ── inner Task (runs on regardless)
//!   cancel(outer) ─► outer dropped ─► Shield dropped; inner untouched
//! ```
//!
//! # asyncio equivalent
//! `asyncio.shield(aw)` (`tasks.py`): the outer future is completed by
//! `_inner_done_callback`, one hop after the inner task finished (G2).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::on_done;
use crate::error::Error;
use crate::task::Task;

/// What the shield and the inner task's callback share.
struct ShieldState<T> {
    /// The inner task's result, once its callback ran.
    result: Option<Result<T, Error>>,
    /// The awaiting task.
    waker: Option<Waker>,
}

/// The future of [`shield`].
#[must_use = "futures do nothing unless awaited"]
pub struct Shield<T> {
    /// Shared with the inner task's done-callback.
    state: Rc<RefCell<ShieldState<T>>>,
}

impl<T> fmt::Debug for Shield<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield").field("done", &self.state.borrow().result.is_some()).finish()
    }
}

/// Await `task` without letting your cancellation reach it. asyncio: `await shield(task)`.
pub fn shield<T: 'static>(task: Task<T>) -> Shield<T> {
    let state = Rc::new(RefCell::new(ShieldState { result: None, waker: None }));
    let st = state.clone();
    on_done(task, move |r| {
        let w = {
            let mut s = st.borrow_mut();
            s.result = Some(r);
            s.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    });
    Shield { state }
}

impl<T> Future for Shield<T> {
    type Output = Result<T, Error>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.state.borrow_mut();
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
