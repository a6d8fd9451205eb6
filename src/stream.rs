//! Async iteration: `async for` as a trait you can implement.
//!
//! An *async iterator* is an iterator whose `next` may suspend: between two values it can
//! sleep, wait for a socket, or wait for a queue. In Python you write a class with
//! `__anext__`; here you implement [`AsyncIterator::next`] as an `async fn` and return
//! `None` where Python raises `StopAsyncIteration`. There is no `for` syntax for it in Rust,
//! so the loop is spelled `while let Some(x) = it.next().await { .. }`, or use the
//! helpers [`AsyncIterator::for_each`] and [`AsyncIterator::collect`].
//!
//! ```text
//!   async for x in AsyncRange(1, 4):       let mut it = AsyncRange::new(1, 4);
//!       print(x)                           while let Some(x) = it.next().await { .. }
//!
//!   t=0.0 ─next()─► sleep(0.5) ─► t=0.5 Some(1) ─next()─► sleep(0.5) ─► t=1.0 Some(2) ...
//!   t=1.5 Some(3) ─next()─► None (no sleep: the range is exhausted)
//! ```
//!
//! # asyncio equivalent
//! The `__aiter__`/`__anext__` protocol and `async for`. Adapters: [`AsCompleted`](crate::combinators::AsCompleted)
//! (`for f in asyncio.as_completed(..)`) implements the trait, and [`QueueIter`] reads a
//! queue forever (the consumer loop `while True: item = await q.get()`); combine it with
//! [`AsyncIterator::take`] to stop. The trait uses `async fn` directly (no `poll_next`), so
//! implementing it reads like Python; the price is that it is not object-safe and its futures
//! are not `Send`, which a single-threaded loop never needs.
//!
//! # Invariants
//! - **A1** Once `next` returned `None`, the helpers stop calling it.

use std::time::Duration;

use crate::queue::{GenericQueue, QueueStore};
use crate::time::sleep;

/// An iterator whose `next` may await. asyncio: an object with `__anext__`.
#[allow(async_fn_in_trait)] // single-threaded loop: no `Send` bound is ever wanted
pub trait AsyncIterator {
    /// What it yields.
    type Item;

    /// The next value, or `None` when exhausted. asyncio: `await it.__anext__()`.
    async fn next(&mut self) -> Option<Self::Item>;

    /// Run `f` on every value, in order (A1). asyncio: `async for x in it: f(x)`.
    async fn for_each(mut self, mut f: impl FnMut(Self::Item))
    where
        Self: Sized,
    {
        while let Some(x) = self.next().await {
            f(x);
        }
    }

    /// Every value, in order. asyncio: `[x async for x in it]`.
    async fn collect(mut self) -> Vec<Self::Item>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        while let Some(x) = self.next().await {
            out.push(x);
        }
        out
    }

    /// At most `n` values, then `None`.
    fn take(self, n: usize) -> Take<Self>
    where
        Self: Sized,
    {
        Take { inner: self, left: n }
    }
}

/// The adapter of [`AsyncIterator::take`].
#[derive(Debug)]
pub struct Take<I> {
    /// The wrapped iterator.
    inner: I,
    /// Values still allowed.
    left: usize,
}

impl<I: AsyncIterator> AsyncIterator for Take<I> {
    type Item = I::Item;
    async fn next(&mut self) -> Option<I::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.inner.next().await
    }
}

/// `start..end`, one value every half second: the teaching material's `AsyncRange`.
///
/// ```
/// use looplab::stream::{AsyncIterator, AsyncRange};
/// let (values, t) = looplab::run_virtual(async {
///     let v = AsyncRange::new(1, 5).collect().await;
///     (v, looplab::get_running_loop().unwrap().time())
/// }).unwrap();
/// assert_eq!(values, [1, 2, 3, 4]);
/// assert_eq!(t.as_millis(), 2000); // four values, half a second each
/// ```
#[derive(Clone, Debug)]
pub struct AsyncRange {
    /// The next value. asyncio: `self.current`.
    current: i64,
    /// One past the last value. asyncio: `self.end`.
    end: i64,
    /// The pause before each value (half a second in the teaching material).
    step: Duration,
}

impl AsyncRange {
    /// Values `start..end`, each after half a second.
    pub fn new(start: i64, end: i64) -> AsyncRange {
        AsyncRange::with_delay(start, end, Duration::from_millis(500))
    }

    /// Values `start..end`, each after `step`.
    pub fn with_delay(start: i64, end: i64, step: Duration) -> AsyncRange {
        AsyncRange { current: start, end, step }
    }
}

impl AsyncIterator for AsyncRange {
    type Item = i64;
    /// asyncio: `if self.current >= self.end: raise StopAsyncIteration;
    /// await asyncio.sleep(0.5); value = self.current; self.current += 1; return value`.
    async fn next(&mut self) -> Option<i64> {
        if self.current >= self.end {
            return None;
        }
        sleep(self.step).await;
        let value = self.current;
        self.current += 1;
        Some(value)
    }
}

/// Reads a queue forever: `while True: yield await q.get()`. From [`GenericQueue::iter`].
pub struct QueueIter<S> {
    /// The queue read from.
    queue: GenericQueue<S>,
}

impl<S: QueueStore> std::fmt::Debug for QueueIter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueIter").field("queue", &self.queue).finish()
    }
}

impl<S: QueueStore> GenericQueue<S> {
    /// An async iterator over the items, waiting for each (never `None`: stop it with
    /// [`AsyncIterator::take`] or a sentinel item).
    pub fn iter(&self) -> QueueIter<S> {
        QueueIter { queue: self.clone() }
    }
}

impl<S: QueueStore> AsyncIterator for QueueIter<S> {
    type Item = S::Item;
    async fn next(&mut self) -> Option<S::Item> {
        Some(self.queue.get().await)
    }
}
