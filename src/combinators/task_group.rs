//! `TaskGroup`: structured concurrency, asyncio 3.11 style.
//!
//! A *task group* is a body (your code, running inline in the awaiting task) plus the child
//! tasks it spawns through the group. The group does not return until every child has
//! finished. If a child fails, the group *aborts*: it cancels every other unfinished child
//! (in spawn order) and the body itself (dropped at its next step, so its cleanup runs), then
//! waits for the children and returns all the errors together.
//!
//! ```text
//!   task_group(|tg| body) ─► poll body ─► tg.spawn(child) ... ─► body returns R
//!        │                                                        └─► wait: live == 0 ─► Ok(R)
//!   child fails ─► done cb (one hop later): errors.push(e)
//!        ─1─► cancel live children in spawn order  ─2─► cancel the body (wake the parent)
//!   parent's next step: drop(body) ─► wait until live == 0 ─► Err(TaskGroupError { errors })
//!   drop(TaskGroupRun) unfinished (the parent was cancelled) ─► cancel live children (G1)
//! ```
//!
//! # asyncio equivalent
//! `asyncio.TaskGroup` (`taskgroups.py`, 3.11): `async with TaskGroup() as tg:` becomes
//! `task_group(|tg| async move { .. }).await`; `tg.create_task` is [`TaskGroup::spawn`];
//! `_on_task_done`, `_abort` and `__aexit__` are the edges above. A child *fails* when it
//! panics (K4); a cancelled child is not an error. The `ExceptionGroup` is
//! [`TaskGroupError`]. asyncio cancels children in `set` order (by hash); we use spawn order.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::running_loop;
use crate::error::{Error, PanicError, panic_message};
use crate::events::LoopHandle;
use crate::task::{Task, TaskId};

/// The errors of a failed task group. asyncio: `ExceptionGroup('unhandled errors in a
/// TaskGroup', [...])`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskGroupError {
    /// Every child's error, in the order their done-callbacks ran.
    pub errors: Vec<Error>,
}

impl fmt::Display for TaskGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unhandled errors in a TaskGroup ({} sub-exception{})",
            self.errors.len(),
            if self.errors.len() == 1 { "" } else { "s" }
        )
    }
}
impl std::error::Error for TaskGroupError {}

/// The group's shared state. asyncio: the `TaskGroup` object's attributes.
struct GroupState {
    /// The loop.
    lp: LoopHandle,
    /// Unfinished children, spawn order. asyncio: `_tasks`.
    live: Vec<TaskId>,
    /// Child errors. asyncio: `_errors`.
    errors: Vec<Error>,
    /// A child failed; no more spawning. asyncio: `_aborting`.
    aborting: bool,
    /// The body must be dropped at the parent's next step. asyncio: `_parent_cancel_requested`.
    cancel_body: bool,
    /// The group returned. asyncio: `_exiting` with no tasks left.
    exited: bool,
    /// The parent task (the one awaiting the group).
    waker: Option<Waker>,
}

/// The handle the body spawns children with. Cheap to clone. asyncio: `tg` in
/// `async with TaskGroup() as tg`.
#[derive(Clone)]
pub struct TaskGroup {
    /// Shared with the children's callbacks and the run future.
    state: Rc<RefCell<GroupState>>,
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("TaskGroup")
            .field("live", &s.live.len())
            .field("errors", &s.errors.len())
            .field("aborting", &s.aborting)
            .finish()
    }
}

/// A child's future, with its panic caught long enough to record the message for the
/// group, then re-raised so the task itself ends FAILED as usual (K4).
struct Child<F> {
    /// The child's work.
    fut: Pin<Box<F>>,
    /// Where the panic's message goes.
    failure: Rc<RefCell<Option<String>>>,
}

impl<F: Future> Future for Child<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let fut = self.fut.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(p) => p,
            Err(payload) => {
                *self.failure.borrow_mut() = Some(panic_message(&*payload));
                resume_unwind(payload)
            }
        }
    }
}

impl TaskGroup {
    /// Spawn a child in the group. asyncio: `tg.create_task(coro)`, which raises
    /// `RuntimeError` once the group is finished or shutting down: here `InvalidState`.
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let lp = {
            let s = self.state.borrow();
            if s.exited {
                return Err(Error::invalid_state("TaskGroup is finished"));
            }
            if s.aborting {
                return Err(Error::invalid_state("TaskGroup is shutting down"));
            }
            s.lp.clone()
        };
        let failure = Rc::new(RefCell::new(None));
        let task = lp.spawn(Child { fut: Box::pin(fut), failure: failure.clone() });
        let id = task.id();
        self.state.borrow_mut().live.push(id);
        let state = self.state.clone();
        // The name now: a detached child's slot is gone by the time its callback runs.
        let name = task.name();
        task.add_done_callback(move |lp| on_task_done(&state, lp, id, name, failure));
        Ok(task)
    }

    /// Children not finished yet.
    pub fn live(&self) -> usize {
        self.state.borrow().live.len()
    }
}

/// asyncio: `TaskGroup._on_task_done`. A child failed exactly when its `Child` wrapper
/// recorded a panic; a cancelled child records nothing (asyncio: `if task.cancelled()`).
fn on_task_done(
    state: &Rc<RefCell<GroupState>>,
    lp: &LoopHandle,
    id: TaskId,
    task: String,
    failure: Rc<RefCell<Option<String>>>,
) {
    let mut wake = None;
    let mut to_cancel = Vec::new();
    {
        let mut s = state.borrow_mut();
        s.live.retain(|t| *t != id);
        if s.live.is_empty() {
            wake = s.waker.clone(); // asyncio: `_on_completed_fut.set_result(True)`
        }
        let failed = failure.borrow_mut().take();
        // asyncio's `_on_task_done` reads `task.exception()`: the group has the error now,
        // so it is not "never retrieved" (K4).
        let _ = lp.task_exception(id);
        if let Some(message) = failed {
            s.errors.push(PanicError { task, message }.into());
            if !s.aborting && !s.cancel_body && !s.exited {
                // asyncio: `self._abort()` then `self._parent_task.cancel()`.
                s.aborting = true;
                to_cancel = s.live.clone();
                s.cancel_body = true;
                wake = s.waker.clone();
            }
        }
    }
    for t in to_cancel {
        lp.cancel_task(t);
    }
    if let Some(w) = wake {
        w.wake();
    }
}

/// Run `body` with a fresh [`TaskGroup`]; return its value once every child finished, or
/// every child error. asyncio: `async with asyncio.TaskGroup() as tg: body`.
///
/// ```
/// use std::time::Duration;
/// use looplab::combinators::task_group;
/// let out = looplab::run_virtual(async {
///     let (mut a, mut b) = task_group(|tg| async move {
///         let a = tg.spawn(async { looplab::sleep(Duration::from_secs(1)).await; 1 }).unwrap();
///         let b = tg.spawn(async { 2 }).unwrap();
///         (a, b)
///     }).await.unwrap();
///     (a.result().unwrap(), b.result().unwrap()) // both finished when the group returned
/// }).unwrap();
/// assert_eq!(out, (1, 2));
/// ```
///
/// # Panics
/// Outside a running looplab loop (at the first poll).
pub fn task_group<B, Fut>(body: B) -> TaskGroupRun<B, Fut>
where
    B: FnOnce(TaskGroup) -> Fut,
    Fut: Future,
{
    TaskGroupRun { body: Some(body), fut: None, group: None, output: None }
}

/// The future of [`task_group`].
#[must_use = "futures do nothing unless awaited"]
pub struct TaskGroupRun<B, Fut: Future> {
    /// The body closure, until the first poll.
    body: Option<B>,
    /// The running body; `None` once it returned or was cancelled.
    fut: Option<Pin<Box<Fut>>>,
    /// The group, from the first poll.
    group: Option<TaskGroup>,
    /// The body's value, kept while the children finish.
    output: Option<Fut::Output>,
}

impl<B, Fut: Future> fmt::Debug for TaskGroupRun<B, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroupRun").field("group", &self.group).field("body_running", &self.fut.is_some()).finish()
    }
}

impl<B, Fut> Future for TaskGroupRun<B, Fut>
where
    B: FnOnce(TaskGroup) -> Fut,
    Fut: Future,
{
    type Output = Result<Fut::Output, TaskGroupError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The body future is boxed, so the struct is `Unpin` and `&mut` access is fine.
        let this = Pin::into_inner(self);
        if let Some(body) = this.body.take() {
            let state = GroupState {
                lp: running_loop("task_group"),
                live: Vec::new(),
                errors: Vec::new(),
                aborting: false,
                cancel_body: false,
                exited: false,
                waker: None,
            };
            let group = TaskGroup { state: Rc::new(RefCell::new(state)) };
            this.fut = Some(Box::pin(body(group.clone())));
            this.group = Some(group);
        }
        let group = this.group.clone().expect("set at the first poll");
        group.state.borrow_mut().waker = Some(cx.waker().clone());
        // Phase 1: the body, unless a failing child cancelled it.
        if this.fut.is_some() {
            if group.state.borrow().cancel_body {
                this.fut = None; // the body's cleanup runs here, inside the parent's step
            } else if let Poll::Ready(v) = this.fut.as_mut().expect("checked").as_mut().poll(cx) {
                this.fut = None;
                this.output = Some(v);
            } else {
                return Poll::Pending;
            }
        }
        // Phase 2: asyncio's `__aexit__`: wait until no child is left.
        let mut s = group.state.borrow_mut();
        if !s.live.is_empty() {
            return Poll::Pending;
        }
        s.exited = true;
        s.waker = None;
        if !s.errors.is_empty() {
            return Poll::Ready(Err(TaskGroupError { errors: std::mem::take(&mut s.errors) }));
        }
        match this.output.take() {
            Some(v) => Poll::Ready(Ok(v)),
            None => panic!("TaskGroupRun polled after completion"),
        }
    }
}

/// The body future lives in a `Pin<Box<_>>`, so nothing here needs structural pinning.
impl<B, Fut: Future> Unpin for TaskGroupRun<B, Fut> {}

impl<B, Fut: Future> Drop for TaskGroupRun<B, Fut> {
    /// G1: the parent was cancelled (or its body panicked) before the group finished.
    fn drop(&mut self) {
        self.fut = None; // the body first, as asyncio cancels the parent's body first
        if let Some(g) = &self.group {
            let (lp, live) = {
                let s = g.state.borrow();
                (s.lp.clone(), s.live.clone())
            };
            for t in live {
                lp.cancel_task(t);
            }
        }
    }
}
