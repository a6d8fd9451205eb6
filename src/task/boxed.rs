//! One allocation per task: the future, and then its output, in the same box.
//!
//! The slab holds tasks of every output type, so each task's future is boxed behind one
//! trait object. A task needs somewhere to keep its output between the step that produced it
//! and the `await` that reads it. Boxing the output as `Box<dyn Any>` would cost a second
//! allocation (and a free) per task whose output is not zero-sized: in a spawn-and-join
//! benchmark, malloc and free were 40 % of the instructions even with one allocation a task
//! (which is why the boxes now come from the loop's own arena, arena.rs). So the box that
//! held the future keeps the output instead, in the same bytes, as tokio's task cell does:
//!
//! ```text
//!   TaskBox → TaskCell<F>          (one block, size = max(F, F::Output) + tag)
//!   ┌─────────────────────────┐  poll → Ready(v)   ┌──────────────────────┐  take_output
//!   │ Running(F)  (pinned)    │ ─────────────────► │ Done(F::Output)      │ ─────────────►  (freed)
//!   └─────────────────────────┘  F dropped in place└──────────────────────┘  v moved into the
//!                                 (its destructors                            awaiting Task<T>,
//!                                  run right there)                           then the block freed
//! ```
//!
//! The reader names the type it expects by its `TypeId` and passes where to put it; the cell
//! writes there only if that is its output's type, so a wrong type is a checked error, never
//! a wrong read: one virtual call and a compare of two constants per join, where `&mut dyn
//! Any` cost two virtual calls, `Any::type_id` being one of them. The arena then frees the
//! emptied cell (its drop glue has nothing left to drop).
//!
//! # Invariants
//! - **B1** `F` is structurally pinned: while the cell is `Running`, `F` is never moved; it
//!   leaves only by being dropped in place (`Pin::set`). The output is *not* pinned (no one
//!   ever pinned it): it is moved out only in the `Done` state, when no `F` exists any more.
//!   `TaskCell` has no `Drop` or `Unpin` impl of its own that could break either promise.
//!
//! # asyncio equivalent
//! A `Task` object keeps its coroutine while it runs and its `_result` after; one object, two
//! lives. Rust's price for many output types in one slab is the type-erased read.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What the loop sees of a task's box: poll it, then read the output out of it.
pub(crate) trait TaskFuture {
    /// Poll the future; when it finishes, its output is kept inside (and the future dropped).
    fn poll_task(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// Move the kept output into `*dst`, leaving the cell empty (its box is then freed by
    /// the arena, arena.rs). Returns false if `want` is not the output's type or there is no
    /// output (not finished, or already taken).
    ///
    /// # Safety
    /// `dst` must point to a live `Option<T>` with `TypeId::of::<T>() == want`.
    unsafe fn take_output(self: Pin<&mut Self>, want: TypeId, dst: *mut ()) -> bool;
}

/// The boxed cell of one task (B1).
pub(crate) enum TaskCell<F: Future> {
    /// Still running: the future.
    Running(F),
    /// Finished: the output, waiting for its reader.
    Done(F::Output),
    /// The output was moved out (for the instant before the arena frees the block).
    Taken,
}

impl<F: Future> TaskCell<F> {
    /// A cell holding `fut`.
    pub(crate) fn new(fut: F) -> Self {
        TaskCell::Running(fut)
    }
}

impl<F> TaskFuture for TaskCell<F>
where
    F: Future,
    F::Output: 'static,
{
    fn poll_task(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: B1. We only look at the state and, in `Running`, hand out `Pin<&mut F>`:
        // nothing is moved out of the pinned cell here.
        let fut = match unsafe { self.as_mut().get_unchecked_mut() } {
            TaskCell::Running(f) => f,
            // Polled after it finished: the loop never does this (K3); report ready again.
            _ => return Poll::Ready(()),
        };
        // SAFETY: B1. `fut` lives inside a pinned cell and is never moved while it exists
        // (it leaves through `Pin::set` below, which drops it in place).
        match unsafe { Pin::new_unchecked(fut) }.poll(cx) {
            Poll::Ready(v) => {
                // Drops `F` in place (its destructors run now, as when a task returns), then
                // stores the output in the same bytes.
                self.set(TaskCell::Done(v));
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    unsafe fn take_output(self: Pin<&mut Self>, want: TypeId, dst: *mut ()) -> bool {
        if want != TypeId::of::<F::Output>() {
            return false;
        }
        // SAFETY: B1. The output is moved out only in the `Done` state, where no `F` exists;
        // the output was never pinned. A `Running` cell is left as it is.
        let cell = unsafe { self.get_unchecked_mut() };
        if !matches!(*cell, TaskCell::Done(_)) {
            return false;
        }
        let TaskCell::Done(v) = std::mem::replace(cell, TaskCell::Taken) else {
            return false;
        };
        // SAFETY: `want` is `F::Output`'s id (checked above), so by this method's contract
        // `dst` points to a live `Option<F::Output>`.
        unsafe { *dst.cast::<Option<F::Output>>() = Some(v) };
        true
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::Waker;

    /// Counts its drops: shows when the future's destructors run (the arena's tests too).
    pub(crate) struct Guard(pub(crate) Rc<Cell<u32>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn output_lives_in_the_cell_and_is_read_with_its_type() {
        let drops = Rc::new(Cell::new(0));
        let make = || -> Pin<Box<dyn TaskFuture>> {
            let g = Guard(drops.clone());
            Box::pin(TaskCell::new(async move {
                let _g = g;
                String::from("out")
            }))
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut cell = make();
        assert_eq!(cell.as_mut().poll_task(&mut cx), Poll::Ready(()));
        assert_eq!(drops.get(), 1, "the future (and its locals) is dropped when it finishes");
        let mut out: Option<String> = None;
        // SAFETY: `out` is an `Option<String>`, named by its `TypeId`.
        assert!(unsafe { cell.as_mut().take_output(TypeId::of::<String>(), (&raw mut out).cast()) });
        assert_eq!(out.as_deref(), Some("out"));

        let mut cell = make();
        assert_eq!(cell.as_mut().poll_task(&mut cx), Poll::Ready(()));
        let mut wrong: Option<u32> = None;
        assert!(
            // SAFETY: `wrong` is an `Option<u32>`, named by its `TypeId`.
            !unsafe { cell.as_mut().take_output(TypeId::of::<u32>(), (&raw mut wrong).cast()) },
            "a wrong type is refused"
        );
        assert_eq!(wrong, None);
    }

    #[test]
    fn no_output_before_it_finishes() {
        let drops = Rc::new(Cell::new(0));
        let g = Guard(drops.clone());
        let mut cell: Pin<Box<dyn TaskFuture>> = Box::pin(TaskCell::new(async move {
            let _g = g;
            std::future::pending::<u8>().await
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(cell.as_mut().poll_task(&mut cx), Poll::Pending);
        let mut out: Option<u8> = None;
        // SAFETY: `out` is an `Option<u8>`, named by its `TypeId`.
        assert!(!unsafe { cell.as_mut().take_output(TypeId::of::<u8>(), (&raw mut out).cast()) });
        assert_eq!(drops.get(), 0, "the unfinished future is left in place");
        drop(cell);
        assert_eq!(drops.get(), 1, "and dropped in place with its box");
    }
}
