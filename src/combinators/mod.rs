//! Combinators: waiting for several tasks at once, with deadlines, shields and groups.
//!
//! Every combinator here watches its children the way asyncio does: with a *done-callback*
//! on each child task. A finished task schedules its callbacks with `call_soon`, so a
//! combinator learns of a child one iteration after the child finished, and wakes the task
//! awaiting it, which runs one iteration later again. That is asyncio's timing to the hop:
//!
//! ```text
//!   iteration N     child task returns ─► finish_step ─► call_soon(done_cb)
//!   iteration N+1   done_cb: record the result; last child? ─► wake the awaiting task
//!   iteration N+2   the awaiting task resumes: gather(...) / wait(...) returns
//! ```
//!
//! A combinator never polls a child [`Task`] itself: polling a task handle registers the
//! poller as that task's awaiter (K2 in `task/`), and cancelling the poller would then
//! cancel the child, which `wait` and `shield` must never do.
//!
//! # asyncio equivalent
//! `asyncio/tasks.py` and `asyncio/timeouts.py`, `asyncio/taskgroups.py` (3.11):
//! [`gather`], [`gather_all`] (`return_exceptions=True`), [`gather!`](macro@crate::gather),
//! [`wait`], [`as_completed`], [`wait_for`], [`timeout`], [`timeout_at`], [`shield`],
//! [`task_group`]. A child *fails* when its task ends with an [`Error`]: it panicked
//! (looplab's "an exception escaped the coroutine", K4) or was cancelled.
//!
//! ## Where Rust differs: cancelling the *awaiting* task
//! asyncio cancels the outer task by throwing `CancelledError` into it, and `gather`,
//! `wait_for` or a `TaskGroup` then *await* their children's cancellation before the outer
//! task finishes. A cancelled looplab task is dropped at its next step (K1), and a
//! destructor cannot await. So when the task awaiting a combinator is cancelled, the
//! combinator's `Drop` *requests* cancellation of its unfinished children, in argument (or
//! spawn) order (**G1**); their cleanup runs at their next step, in the iteration after the
//! outer task was dropped. Since they were woken before the outer task's own awaiters, their
//! cleanup still runs before anyone awaiting the outer task resumes. On every other path (a timeout, a failing TaskGroup child) the
//! combinator is still running and does wait for its children's cleanup, as asyncio does.
//!
//! # Invariants
//! - **G1** Dropping an unfinished `gather`, `wait_for` or task group requests cancellation
//!   of its unfinished children in argument order; `wait`, `as_completed` and `shield`
//!   never cancel anything.
//! - **G2** A combinator completes one callback hop after the child that completes it, and
//!   returns results in argument order whatever the completion order.
//! - **G3** `wait_for` and `timeout` return `Error::Timeout` only after the inner work was
//!   cancelled and its cleanup ran; a result that was ready first is returned instead.
//! - **G4** A homogeneous `gather` owns its children's task handles: a child's slot is freed
//!   when the gather reads its result, or, once nobody will (the gather completed with an
//!   error or was dropped), when its done-callback runs; a failure freed that way counts as
//!   retrieved, as asyncio's `_done_callback` calls `fut.exception()`.

mod gather;
mod shield;
mod task_group;
mod timeout;
mod wait;

use std::cell::RefCell;
use std::rc::Rc;

pub(crate) use gather::{ChildLink, GatherCore};
pub use gather::{Gather, GatherAll, GatherTuple, gather, gather_all, gather_all_tasks, gather_tasks};
#[doc(hidden)]
pub use gather::{TupleCore, TupleSlot, TupleSlots};
pub use shield::{Shield, shield};
pub use task_group::{TaskGroup, TaskGroupError, TaskGroupRun, task_group};
pub use timeout::{Timeout, timeout, timeout_at, wait_for, wait_for_task};
pub use wait::{AsCompleted, ReturnWhen, as_completed, wait};

use crate::error::Error;
use crate::events::{LoopHandle, get_running_loop};
use crate::task::Task;

/// Run `f` with the task's result one hop after the task finishes (a done-callback that
/// owns the handle, so the result is read exactly once and never reported as unretrieved).
pub(crate) fn on_done<T: 'static>(task: Task<T>, f: impl FnOnce(Result<T, Error>) + 'static) {
    let cell: Rc<RefCell<Option<Task<T>>>> = Rc::new(RefCell::new(None));
    let inside = cell.clone();
    task.add_done_callback(move |_| {
        let taken = inside.borrow_mut().take();
        if let Some(mut t) = taken {
            let r = t.result();
            drop(t);
            f(r);
        }
    });
    *cell.borrow_mut() = Some(task);
}

/// The running loop, or a panic naming the combinator (as asyncio raises `RuntimeError`
/// "no running event loop").
#[track_caller]
pub(crate) fn running_loop(what: &str) -> LoopHandle {
    match get_running_loop() {
        Some(lp) => lp,
        None => panic!("looplab::{what} called with no running loop"),
    }
}
