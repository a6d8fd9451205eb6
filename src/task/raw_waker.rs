//! A task's waker, built by hand from a `RawWakerVTable`: the unsafe lesson.
//!
//! A [`std::task::Waker`] is two pointers: `data` and a table of four functions
//! (`clone`, `wake`, `wake_by_ref`, `drop`). The executor decides what `data` is. Here it is
//! an `Arc<TaskWaker>`, turned into a raw pointer with `Arc::into_raw`: the waker *owns one
//! strong count* of that `Arc`. Cloning the waker adds a count, dropping it removes one, so the
//! `TaskWaker` lives exactly as long as the last waker that points to it, even if that waker
//! was sent to another thread and the task itself is long gone.
//!
//! ```text
//!   Waker { data ─────────────► ArcInner<TaskWaker> { strong, weak,
//!           vtable ─┐                                 task: TaskId (index, generation),
//!   }               │                                 remote: Arc<Remote> } }
//!                   ▼
//!   VTABLE { clone: +1 strong → new RawWaker(same data)
//!            wake:  schedule(task), then −1 strong (consumes the waker)
//!            wake_by_ref: schedule(task)
//!            drop:  −1 strong }
//!
//!   schedule(task): on the loop's own thread → push TaskId on the ready queue (once: W3)
//!                   on any other thread      → inbox + bell (events/threadsafe.rs)
//! ```
//!
//! The safe way to get the same thing is `impl std::task::Wake for TaskWaker` and
//! `Waker::from(arc)`; std writes exactly this vtable for you. We spell it out because
//! learners ask what a waker *is*.
//!
//! # asyncio equivalent
//! A task's `__wakeup` bound method, registered as a done-callback on the future it awaits.
//!
//! # Invariants
//! - **W1** Every `RawWaker` data pointer built here came from `Arc::<TaskWaker>::into_raw`
//!   and owns exactly one strong count.
//! - **W2** A waker whose task is gone (slot freed or reused: the generation differs) does
//!   nothing when woken: it can never poll another task.
//! - **W3** Waking a task that is already queued does not queue it twice (checked by the loop
//!   against the task's `queued` flag).

use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::TaskId;
use crate::events::LoopHandle;
use crate::events::threadsafe::{Remote, RemoteMsg};

/// What a waker points to: which task, and how to reach its loop from another thread.
#[derive(Debug)]
pub(crate) struct TaskWaker {
    /// The task to schedule (W2: carries the generation).
    pub(crate) task: TaskId,
    /// The loop's remote end, for wakes from other threads.
    pub(crate) remote: Arc<Remote>,
}

impl TaskWaker {
    /// Schedule the task: locally if we are on its loop's thread and the loop is running,
    /// else through the inbox.
    fn schedule(&self) {
        let done_locally = LoopHandle::with_current(|lp| {
            if lp.id() == self.remote.loop_id {
                lp.wake_task(self.task);
                true
            } else {
                false
            }
        });
        if done_locally != Some(true) {
            // Loop closed: nothing left to wake, which is what W2 asks for.
            let _ = self.remote.send(RemoteMsg::Wake(self.task));
        }
    }
}

/// The four functions std calls through a `Waker`.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

/// Build a `Waker` that owns one count of `arc` (W1).
pub(crate) fn waker_for(arc: Arc<TaskWaker>) -> Waker {
    let raw = RawWaker::new(Arc::into_raw(arc).cast::<()>(), &VTABLE);
    // SAFETY: W1. `raw.data` came from `Arc::into_raw` and owns one strong count; the vtable's
    // four functions treat it exactly so, and `TaskWaker` is `Send + Sync` (an `Arc<Remote>`
    // and two integers), so the waker may move to and be used from any thread.
    unsafe { Waker::from_raw(raw) }
}

/// `RawWakerVTable::clone`: a second waker for the same task.
///
/// # Safety
/// `data` satisfies W1 and the waker being cloned is still alive.
unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: W1. The waker being cloned still owns its count, so the allocation is alive
    // while we add one more for the clone.
    unsafe { Arc::increment_strong_count(data.cast::<TaskWaker>()) };
    RawWaker::new(data, &VTABLE)
}

/// `RawWakerVTable::wake`: schedule the task and consume the waker (its count).
///
/// # Safety
/// `data` satisfies W1; the waker is consumed, so its count is ours to release.
unsafe fn wake(data: *const ()) {
    // SAFETY: W1. We take back the count this waker owned; dropping the Arc releases it.
    let arc = unsafe { Arc::from_raw(data.cast::<TaskWaker>()) };
    arc.schedule();
}

/// `RawWakerVTable::wake_by_ref`: schedule the task, keep the waker.
///
/// # Safety
/// `data` satisfies W1 and the waker is alive for the duration of the call.
unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: W1. We borrow the count without owning it: ManuallyDrop keeps us from
    // releasing it when `arc` goes out of scope.
    let arc = ManuallyDrop::new(unsafe { Arc::from_raw(data.cast::<TaskWaker>()) });
    arc.schedule();
}

/// `RawWakerVTable::drop`: release this waker's count.
///
/// # Safety
/// `data` satisfies W1 and this waker is being dropped, so its count is ours to release.
unsafe fn drop_waker(data: *const ()) {
    // SAFETY: W1. Each waker owns exactly one count, released exactly once, here.
    unsafe { Arc::decrement_strong_count(data.cast::<TaskWaker>()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> Arc<Remote> {
        let poll = mio::Poll::new().unwrap();
        let bell = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        // Leak the poll so the bell stays valid for the test's duration.
        std::mem::forget(poll);
        Remote::new(99, bell).0
    }

    #[test]
    fn clone_and_drop_balance_the_count() {
        let arc = Arc::new(TaskWaker { task: TaskId { index: 0, generation: 1 }, remote: remote() });
        let w = waker_for(arc.clone());
        assert_eq!(Arc::strong_count(&arc), 2);
        let w2 = w.clone();
        assert_eq!(Arc::strong_count(&arc), 3);
        drop(w);
        drop(w2);
        assert_eq!(Arc::strong_count(&arc), 1);
    }

    #[test]
    fn waking_off_loop_goes_to_the_inbox_and_releases_the_count() {
        let arc = Arc::new(TaskWaker { task: TaskId { index: 3, generation: 7 }, remote: remote() });
        let w = waker_for(arc.clone());
        w.wake_by_ref();
        assert_eq!(Arc::strong_count(&arc), 2);
        w.wake();
        assert_eq!(Arc::strong_count(&arc), 1);
    }
}
