//! Erasing a task's output type, without doubling its size: pin projection by hand.
//!
//! The slab holds tasks of every output type, so each task's future is boxed as
//! `dyn Future<Output = Box<dyn Any>>`. The obvious wrapper is an `async` block:
//! `async move { Box::new(fut.await) as Box<dyn Any> }`. But today's compiler keeps the
//! captured `fut` *and* the awaited copy of it in the block's state: a 48-byte `sleep` future
//! became a 104-byte task. [`EraseOutput`] is the same wrapper written by hand: exactly one `F`
//! plus nothing.
//!
//! ```text
//!   Pin<Box<EraseOutput<F>>>  ──poll──►  Pin<&mut F>  ──poll──►  Poll<F::Output>
//!        structural pin projection          │ Ready(v) ─► Ready(Box::new(v) as Box<dyn Any>)
//! ```
//!
//! # Invariants
//! - **B1** `EraseOutput<F>` never moves its `F` out of a pinned `self` and has no `Drop` impl
//!   and no `Unpin` impl of its own, so projecting `Pin<&mut Self>` to `Pin<&mut F>` keeps the
//!   pinning promise (the std docs' "structural pinning" conditions).
//!
//! # asyncio equivalent
//! None needed: Python's coroutine objects are all one type. This is Rust's price for
//! storing futures of many types in one slab.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future whose output is boxed as `Any` (B1).
pub(crate) struct EraseOutput<F>(F);

impl<F> EraseOutput<F> {
    /// Wrap `fut`.
    pub(crate) fn new(fut: F) -> Self {
        EraseOutput(fut)
    }
}

impl<F> Future for EraseOutput<F>
where
    F: Future,
    F::Output: 'static,
{
    type Output = Box<dyn Any>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Box<dyn Any>> {
        // SAFETY: B1. `self.0` is structurally pinned: we never move it out of a pinned
        // `EraseOutput`, and `EraseOutput` has no `Drop` or `Unpin` impl that could.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        match inner.poll(cx) {
            Poll::Ready(v) => Poll::Ready(Box::new(v)),
            Poll::Pending => Poll::Pending,
        }
    }
}
