//! Queues: `Queue` (FIFO), `LifoQueue` and `PriorityQueue`, with waiting `put` and `get`.
//!
//! A queue is a store of items plus two FIFOs of waiters: *getters* (tasks blocked in `get`
//! on an empty queue) and *putters* (tasks blocked in `put` on a full one). `put_nowait`
//! adds an item and wakes the first getter; `get_nowait` removes one and wakes the first
//! putter. A woken getter is **not handed the item**: it only learns that the queue is worth
//! looking at again. When it runs, it re-checks; if someone took the item in between (a
//! `get_nowait` from another task), it queues again, at the back (Q2).
//!
//! ```text
//!   get():  empty? ─yes─► push G, Pending ─(woken)─► loop: empty again? ─► new G at the back
//!                  └─no──► get_nowait(): pop item, wake first putter ─► Ready(item)
//!   put(x): full?  ─yes─► push P, Pending ─(woken)─► loop
//!                  └─no──► put_nowait(x): push x, unfinished += 1, wake first getter
//!   task_done(): unfinished -= 1 ─(0)─► finished.set() ─► join() returns
//! ```
//!
//! # asyncio equivalent
//! `asyncio.Queue`, `LifoQueue`, `PriorityQueue` (`queues.py`, 3.11): `maxsize` 0 means
//! unbounded; `put`, `get`, `put_nowait`, `get_nowait`, `task_done`, `join`, `qsize`,
//! `empty`, `full`; `QueueFull` and `QueueEmpty`. `PriorityQueue` pops the *smallest* item
//! first, as `heapq` does. `put_nowait` on a full queue returns the item inside
//! [`QueueFull`], since Rust moved it in. Too many `task_done` calls return asyncio's
//! `ValueError`.
//!
//! # Invariants
//! - **Q1** Getters and putters are each woken in FIFO order, one per item or free slot.
//! - **Q2** A woken getter re-checks the queue; waking does not reserve the item.
//! - **Q3** A woken waiter that is dropped (its task cancelled) passes the wake-up on to the
//!   next one if the queue still has an item (getter) or a free slot (putter).
//! - **Q4** `join()` returns when every item put has been matched by a `task_done()`.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::error::{Error, Exception};
use crate::sync::{Event, WaitQueue, Waiter};

/// `get_nowait` on an empty queue. asyncio: `asyncio.QueueEmpty`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueEmpty;

impl fmt::Display for QueueEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue is empty")
    }
}
impl std::error::Error for QueueEmpty {}

/// `put_nowait` on a full queue; gives the item back. asyncio: `asyncio.QueueFull`.
#[derive(Clone, PartialEq, Eq)]
pub struct QueueFull<T>(pub T);

impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}
impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue is full")
    }
}
impl<T> std::error::Error for QueueFull<T> {}

/// How a queue stores its items: the one thing `Queue`, `LifoQueue` and `PriorityQueue`
/// differ in. asyncio: the `_init`, `_put`, `_get` and `_qsize` hooks subclasses override.
pub trait QueueStore: Default {
    /// What the queue holds.
    type Item;
    /// Add an item. asyncio: `_put`.
    fn push(&mut self, item: Self::Item);
    /// Remove the next item. asyncio: `_get`.
    fn pop(&mut self) -> Option<Self::Item>;
    /// Items held. asyncio: `_qsize`.
    fn len(&self) -> usize;
    /// No items?
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// First in, first out: a `VecDeque`. asyncio: `Queue`'s `collections.deque`.
#[derive(Debug)]
pub struct Fifo<T>(VecDeque<T>);
impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}
impl<T> QueueStore for Fifo<T> {
    type Item = T;
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Last in, first out: a `Vec` used as a stack. asyncio: `LifoQueue`'s list.
#[derive(Debug)]
pub struct Lifo<T>(Vec<T>);
impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}
impl<T> QueueStore for Lifo<T> {
    type Item = T;
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Smallest first: a min-heap (`BinaryHeap` of `Reverse`). asyncio: `heapq` in
/// `PriorityQueue`. Equal items come out in heap order, not insertion order, as in asyncio.
#[derive(Debug)]
pub struct Priority<T: Ord>(BinaryHeap<Reverse<T>>);
impl<T: Ord> Default for Priority<T> {
    fn default() -> Self {
        Priority(BinaryHeap::new())
    }
}
impl<T: Ord> QueueStore for Priority<T> {
    type Item = T;
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(x)| x)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The shared state behind every clone of a queue.
struct QueueInner<S> {
    /// The items. asyncio: `_queue`.
    store: RefCell<S>,
    /// 0 means unbounded. asyncio: `_maxsize`.
    maxsize: usize,
    /// Tasks blocked in `get`, oldest first. asyncio: `_getters`.
    getters: RefCell<WaitQueue>,
    /// Tasks blocked in `put`, oldest first. asyncio: `_putters`.
    putters: RefCell<WaitQueue>,
    /// Items put and not yet `task_done`. asyncio: `_unfinished_tasks`.
    unfinished: Cell<usize>,
    /// Set when `unfinished` is 0. asyncio: `_finished`.
    finished: Event,
}

/// A queue for tasks, generic over its store. Use the aliases [`Queue`], [`LifoQueue`],
/// [`PriorityQueue`]. Cheap to clone (shared).
pub struct GenericQueue<S> {
    /// Shared by all clones.
    inner: Rc<QueueInner<S>>,
}

/// FIFO queue. asyncio: `asyncio.Queue`.
pub type Queue<T> = GenericQueue<Fifo<T>>;
/// LIFO queue. asyncio: `asyncio.LifoQueue`.
pub type LifoQueue<T> = GenericQueue<Lifo<T>>;
/// Smallest-first queue. asyncio: `asyncio.PriorityQueue`.
pub type PriorityQueue<T> = GenericQueue<Priority<T>>;

impl<S> Clone for GenericQueue<S> {
    fn clone(&self) -> Self {
        GenericQueue { inner: self.inner.clone() }
    }
}

impl<S: QueueStore> fmt::Debug for GenericQueue<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("maxsize", &self.inner.maxsize)
            .field("qsize", &self.qsize())
            .field("getters", &self.inner.getters.borrow().len())
            .field("putters", &self.inner.putters.borrow().len())
            .field("unfinished", &self.inner.unfinished.get())
            .finish()
    }
}

/// Which waiter list a [`QueueWait`] sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Waiting for an item.
    Getter,
    /// Waiting for a free slot.
    Putter,
}

impl<S: QueueStore> GenericQueue<S> {
    /// A queue holding at most `maxsize` items; 0 means unbounded. asyncio: `Queue(maxsize)`.
    pub fn new(maxsize: usize) -> Self {
        let finished = Event::new();
        finished.set();
        GenericQueue {
            inner: Rc::new(QueueInner {
                store: RefCell::new(S::default()),
                maxsize,
                getters: RefCell::default(),
                putters: RefCell::default(),
                unfinished: Cell::new(0),
                finished,
            }),
        }
    }

    /// An unbounded queue. asyncio: `Queue()`.
    pub fn unbounded() -> Self {
        Self::new(0)
    }

    /// The bound (0: none). asyncio: `maxsize`.
    pub fn maxsize(&self) -> usize {
        self.inner.maxsize
    }

    /// Items held. asyncio: `qsize()`.
    pub fn qsize(&self) -> usize {
        self.inner.store.borrow().len()
    }

    /// No items? asyncio: `empty()`.
    pub fn empty(&self) -> bool {
        self.inner.store.borrow().is_empty()
    }

    /// At `maxsize` (never, if unbounded)? asyncio: `full()`.
    pub fn full(&self) -> bool {
        self.inner.maxsize > 0 && self.qsize() >= self.inner.maxsize
    }

    /// Tasks blocked in `get` / in `put` (for tests and the walkthrough).
    pub fn waiting(&self) -> (usize, usize) {
        (self.inner.getters.borrow().len(), self.inner.putters.borrow().len())
    }

    /// Wake the first waiter on `side` (Q1). asyncio: `_wakeup_next`, which pops it.
    fn wakeup_next(&self, side: Side) {
        let w = self.waiters(side).borrow_mut().pop_front();
        if let Some(w) = w {
            w.wake();
        }
    }

    fn waiters(&self, side: Side) -> &RefCell<WaitQueue> {
        match side {
            Side::Getter => &self.inner.getters,
            Side::Putter => &self.inner.putters,
        }
    }

    /// Add an item if there is room, and wake the first getter. asyncio: `put_nowait`.
    pub fn put_nowait(&self, item: S::Item) -> Result<(), QueueFull<S::Item>> {
        if self.full() {
            return Err(QueueFull(item));
        }
        self.inner.store.borrow_mut().push(item);
        self.inner.unfinished.set(self.inner.unfinished.get() + 1);
        self.inner.finished.clear();
        self.wakeup_next(Side::Getter);
        Ok(())
    }

    /// Remove an item if there is one, and wake the first putter. asyncio: `get_nowait`.
    pub fn get_nowait(&self) -> Result<S::Item, QueueEmpty> {
        let item = self.inner.store.borrow_mut().pop().ok_or(QueueEmpty)?;
        self.wakeup_next(Side::Putter);
        Ok(item)
    }

    /// Add an item, waiting while the queue is full. asyncio: `await queue.put(item)`.
    pub async fn put(&self, item: S::Item) {
        while self.full() {
            QueueWait { q: self.clone(), side: Side::Putter, waiter: None }.await;
        }
        if self.put_nowait(item).is_err() {
            unreachable!("Q-invariant: checked not full with no await in between");
        }
    }

    /// Remove an item, waiting while the queue is empty. asyncio: `await queue.get()`.
    pub async fn get(&self) -> S::Item {
        loop {
            if let Ok(item) = self.get_nowait() {
                return item;
            }
            // Q2: woken means "look again", not "here is your item".
            QueueWait { q: self.clone(), side: Side::Getter, waiter: None }.await;
        }
    }

    /// Mark one item processed. asyncio: `task_done()`; calling it more often than items
    /// were put is asyncio's `ValueError`.
    pub fn task_done(&self) -> Result<(), Error> {
        let n = self.inner.unfinished.get();
        if n == 0 {
            return Err(Exception::new("ValueError", "task_done() called too many times").into());
        }
        self.inner.unfinished.set(n - 1);
        if n == 1 {
            self.inner.finished.set();
        }
        Ok(())
    }

    /// Wait until every item put has been marked done (Q4). asyncio: `await queue.join()`.
    pub async fn join(&self) {
        if self.inner.unfinished.get() > 0 {
            self.inner.finished.wait().await;
        }
    }
}

/// One wait of `get` or `put` for its turn: asyncio's `getter`/`putter` future.
struct QueueWait<S: QueueStore> {
    /// The queue.
    q: GenericQueue<S>,
    /// Which list we are in.
    side: Side,
    /// Our entry, once queued.
    waiter: Option<Rc<Waiter>>,
}

impl<S: QueueStore> Future for QueueWait<S> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &self.waiter {
            None => {
                let w = Waiter::new(cx.waker());
                self.q.waiters(self.side).borrow_mut().push(w.clone());
                self.waiter = Some(w);
                Poll::Pending
            }
            Some(w) if w.is_woken() => {
                self.waiter = None; // the waker popped us already
                Poll::Ready(())
            }
            Some(w) => {
                w.refresh(cx.waker());
                Poll::Pending
            }
        }
    }
}

impl<S: QueueStore> Drop for QueueWait<S> {
    /// asyncio's bare `except:` in `get`/`put`: leave the list; if we had been woken and
    /// there is still something for the next one, pass the wake-up on (Q3).
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            self.q.waiters(self.side).borrow_mut().remove(&w);
            let still = match self.side {
                Side::Getter => !self.q.empty(),
                Side::Putter => !self.q.full(),
            };
            if w.is_woken() && still {
                self.q.wakeup_next(self.side);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64: the same "random" steps every run, without a `rand` dependency.
    fn step(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// The `*_nowait` operations of the three queues agree with plain std models, item for
    /// item and error for error, over random sequences, bounded and not.
    #[test]
    fn nowait_ops_agree_with_std_models() {
        let mut rng = 0x5EED_u64;
        for maxsize in [0usize, 1, 3, 8] {
            let (fifo, lifo, prio) =
                (Queue::<u64>::new(maxsize), LifoQueue::<u64>::new(maxsize), PriorityQueue::<u64>::new(maxsize));
            let (mut mf, mut ml, mut mp) = (VecDeque::new(), Vec::new(), Vec::new());
            let mut unfinished = 0usize;
            // Under Miri (about 1000x slower) 300 steps per size still fill and drain each queue.
            for i in 0..if cfg!(miri) { 300 } else { 4_000 } {
                let r = step(&mut rng);
                match r % 5 {
                    0 | 1 => {
                        let v = step(&mut rng) % 50;
                        let room = maxsize == 0 || mf.len() < maxsize;
                        assert_eq!(fifo.put_nowait(v).is_ok(), room, "step {i}");
                        assert_eq!(lifo.put_nowait(v).is_ok(), room);
                        assert_eq!(prio.put_nowait(v).is_ok(), room);
                        if room {
                            mf.push_back(v);
                            ml.push(v);
                            mp.push(v);
                            unfinished += 1;
                        }
                    }
                    2 | 3 => {
                        assert_eq!(fifo.get_nowait().ok(), mf.pop_front(), "step {i}");
                        assert_eq!(lifo.get_nowait().ok(), ml.pop());
                        let min = mp.iter().copied().enumerate().min_by_key(|&(_, v)| v).map(|(k, _)| k);
                        assert_eq!(prio.get_nowait().ok(), min.map(|k| mp.swap_remove(k)));
                    }
                    _ => {
                        let ok = unfinished > 0;
                        assert_eq!(fifo.task_done().is_ok(), ok, "step {i}");
                        if ok {
                            unfinished -= 1;
                        }
                    }
                }
                assert_eq!(
                    (fifo.qsize(), fifo.empty(), fifo.full()),
                    (mf.len(), mf.is_empty(), maxsize > 0 && mf.len() >= maxsize)
                );
                assert_eq!(lifo.qsize(), ml.len());
                assert_eq!(prio.qsize(), mp.len());
            }
        }
    }
}
