//! `TimerHeap`: asyncio's `_scheduled` heap, rebuilt in Rust sift for sift.
//!
//! A *binary heap* is an array read as a tree: the children of position `i` are
//! `2i+1` and `2i+2`, and every parent is `<=` its children (T10), so the earliest
//! timer is at position 0. A push appends and *sifts down* (CPython's name: moves
//! the new item toward the root while it is smaller than its parent); a pop moves
//! the last item to the root and *sifts up* (CPython walks it down to a leaf along
//! the smaller children, then sifts it back down into place).
//!
//! ```text
//!   heap: Vec<Item>  [ (5,#3) (7,#1) (6,#4) (9,#0) (8,#2) ]
//!                          0      1      2      3      4
//!              (5,#3)            Item = (deadline, seq, store index)
//!             /      \           the store holds the payload; cancel()
//!        (7,#1)      (6,#4)      takes it out and leaves the item in
//!        /    \                  place, flagged by `payload: None`
//!    (9,#0)  (8,#2)
//! ```
//!
//! Cancellation is *lazy*, as in asyncio: `cancel` takes the payload out of the
//! entry and bumps `cancelled`; the item stays in the heap. Before computing the
//! next deadline and before expiring, [`TimerHeap::clean_up`] applies asyncio's rule:
//! if more than 100 items and more than half are cancelled, rebuild the array
//! without them and heapify (O(n)); otherwise pop cancelled items off the top.
//!
//! Two orders, chosen at construction ([`TieOrder`]): `Fifo` compares
//! `(deadline, seq)`, the looplab contract (T3); `Asyncio` compares the deadline
//! only, as `TimerHandle.__lt__` does, so equal deadlines come out in the same
//! heap-shape order CPython's `heapq` gives them.
//!
//! Costs: `insert` O(log n), `cancel` O(1), `expire` O(d log n) for d popped items,
//! `next_deadline` O(1) plus clean-up (amortized O(1) per cancel), `placement` O(n)
//! (a linear search: tracking positions would cost a store write per sift step).
//!
//! # asyncio equivalent
//! `BaseEventLoop._scheduled` with `heapq` (`Lib/asyncio/base_events.py`,
//! `Lib/heapq.py`). Differences: asyncio pops a cancelled handle that is due onto
//! `_ready` and skips it when running it, without decrementing
//! `_timer_cancelled_count`; we drop it and keep the count exact (T11). This can
//! only change *when* the rebuild rule fires, and the Python mirror used by the
//! tests does the same.
//!
//! # Invariants
//! **T10** heap property under the mode's `<`, **T11** cancelled entries hold no
//! payload and `cancelled` counts them; plus the contract T2–T6 (see `mod.rs`).

use std::fmt;

use crate::timer::store::Store;
use crate::timer::{Cascade, Expired, HeapSnapshot, Nanos, Placement, TimerKey, TimerQueue, TimerSnapshot, TimerStats};

/// asyncio: `base_events._MIN_SCHEDULED_TIMER_HANDLES`. Below this many items the
/// heap is never rebuilt, only its top purged.
const MIN_SCHEDULED_TIMER_HANDLES: usize = 100;

/// How many `(deadline, seq)` pairs a snapshot shows.
const SNAPSHOT_TOP: usize = 8;

/// How equal deadlines are ordered. Chosen at construction; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TieOrder {
    /// Compare `(deadline, seq)`: equal deadlines fire in scheduling order (T3).
    #[default]
    Fifo,
    /// Compare the deadline only, like `TimerHandle.__lt__`: equal deadlines fire
    /// in CPython `heapq` order (e.g. `0,2,6,5,9,8,7,1,3,4`), not FIFO.
    Asyncio,
}

/// What the heap array holds: the sort key inline (no store access while
/// sifting) and where the entry lives.
#[derive(Clone, Copy, Debug)]
struct Item {
    /// Exact deadline, the primary key. asyncio: `TimerHandle._when`.
    deadline: Nanos,
    /// The tie-breaker in Fifo mode (T3); ignored by Asyncio mode's `<`.
    seq: u64,
    /// The entry's index in the store; rewritten when the store compacts (T6).
    index: u32,
}

/// One timer in the store. The seq lives in the store itself.
#[derive(Debug)]
struct Entry<T> {
    /// `Some` while live; `None` once cancelled, since `cancel` returned the
    /// payload (T11). asyncio: `TimerHandle._cancelled`.
    payload: Option<T>,
}

/// asyncio's timer heap with lazy cancellation; see the module docs.
pub struct TimerHeap<T> {
    /// Entries by index; `Item::index` points here. Compacts itself (T6).
    store: Store<Entry<T>>,
    /// The binary heap (T10). asyncio: `BaseEventLoop._scheduled`.
    heap: Vec<Item>,
    /// Which `<` the sifts use.
    tie: TieOrder,
    /// Cancelled items still in `heap` (T11). asyncio: `_timer_cancelled_count`.
    cancelled: usize,
    /// Rebuilds by the 100 / 50 % rule so far (stats).
    rebuilds: u64,
}

impl<T> fmt::Debug for TimerHeap<T> {
    /// Counters only, so `T` need not be `Debug`; use `snapshot()` for contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHeap").field("tie", &self.tie).field("stats", &self.stats()).finish()
    }
}

impl<T> Default for TimerHeap<T> {
    /// A `Fifo` heap, which satisfies the looplab contract.
    fn default() -> Self {
        Self::new(TieOrder::Fifo)
    }
}

impl<T> TimerHeap<T> {
    /// An empty heap ordering ties by `tie`.
    pub fn new(tie: TieOrder) -> Self {
        TimerHeap { store: Store::new(), heap: Vec::new(), tie, cancelled: 0, rebuilds: 0 }
    }

    /// The tie order chosen at construction.
    pub fn tie_order(&self) -> TieOrder {
        self.tie
    }

    /// The heap's `<`: the whole of `TimerHandle.__lt__` in Asyncio mode.
    #[inline]
    fn lt(&self, a: &Item, b: &Item) -> bool {
        match self.tie {
            TieOrder::Fifo => (a.deadline, a.seq) < (b.deadline, b.seq),
            TieOrder::Asyncio => a.deadline < b.deadline,
        }
    }

    /// `heapq._siftdown(heap, startpos, pos)`: moves `heap[pos]` toward the root
    /// while it is smaller than its parent, stopping at `startpos`.
    fn sift_down(&mut self, start: usize, mut pos: usize) {
        let new_item = self.heap[pos];
        while pos > start {
            let parent_pos = (pos - 1) >> 1;
            let parent = self.heap[parent_pos];
            if self.lt(&new_item, &parent) {
                self.heap[pos] = parent;
                pos = parent_pos;
                continue;
            }
            break;
        }
        self.heap[pos] = new_item;
    }

    /// `heapq._siftup(heap, pos)`: walks `heap[pos]`'s hole down to a leaf, always
    /// along the smaller child (the right one on ties: `not child < right`), then
    /// sifts the item back up from there. Fewer compares than stopping early.
    fn sift_up(&mut self, mut pos: usize) {
        let end = self.heap.len();
        let start = pos;
        let new_item = self.heap[pos];
        let mut child = 2 * pos + 1;
        while child < end {
            let right = child + 1;
            if right < end && !self.lt(&self.heap[child], &self.heap[right]) {
                child = right;
            }
            self.heap[pos] = self.heap[child];
            pos = child;
            child = 2 * pos + 1;
        }
        self.heap[pos] = new_item;
        self.sift_down(start, pos);
    }

    /// `heapq.heappush`: append, then `_siftdown(heap, 0, len-1)`.
    fn heap_push(&mut self, item: Item) {
        self.heap.push(item);
        let last = self.heap.len() - 1;
        self.sift_down(0, last);
    }

    /// `heapq.heappop`: pop the last item; if any remain, it replaces the root,
    /// which is returned, and `_siftup(heap, 0)` restores T10.
    fn heap_pop(&mut self) -> Option<Item> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.heap[0], last);
        self.sift_up(0);
        Some(top)
    }

    /// `heapq.heapify`: `_siftup(x, i) for i in reversed(range(n // 2))`. O(n).
    fn heapify(&mut self) {
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_up(i);
        }
    }

    /// True if the entry behind `item` was cancelled (T11).
    #[inline]
    fn is_cancelled(&self, item: &Item) -> bool {
        self.store.get(item.index).payload.is_none()
    }

    /// The top of `BaseEventLoop._run_once`: if more than 100 items and more than
    /// half cancelled, rebuild without them and heapify; else pop cancelled items
    /// off the top. Afterwards `heap[0]`, if any, is live (T4, T11).
    pub fn clean_up(&mut self) {
        let n = self.heap.len();
        // `cancelled / n > 0.5` in integers.
        if n > MIN_SCHEDULED_TIMER_HANDLES && self.cancelled * 2 > n {
            // asyncio: new_scheduled = [h for h in _scheduled if not h._cancelled],
            // keeping order, then heapify.
            let mut heap = std::mem::take(&mut self.heap);
            heap.retain(|item| {
                let dead = self.store.get(item.index).payload.is_none();
                if dead {
                    self.store.remove(item.index);
                }
                !dead
            });
            self.heap = heap;
            self.heapify();
            self.cancelled = 0;
            self.rebuilds += 1;
            self.heap.shrink_to(self.heap.len() * 2);
            self.maybe_compact();
        } else {
            while let Some(top) = self.heap.first()
                && self.is_cancelled(top)
            {
                let item = self.heap_pop().expect("first() was Some");
                self.store.remove(item.index);
                self.cancelled -= 1;
            }
        }
    }

    /// T6: compacts the store if mostly empty and rewrites every item's index.
    fn maybe_compact(&mut self) {
        if self.store.should_compact() {
            let remap = self.store.compact();
            for item in &mut self.heap {
                item.index = remap[item.index as usize];
            }
        }
    }
}

impl<T> TimerQueue<T> for TimerHeap<T> {
    /// O(log n): store the payload, push `(deadline, seq, index)`.
    fn insert(&mut self, deadline: Nanos, seq: u64, payload: T) -> TimerKey {
        let key = self.store.insert(seq, Entry { payload: Some(payload) });
        self.heap_push(Item { deadline, seq, index: key.index });
        key
    }

    /// O(1), lazy: take the payload, count the item as cancelled, leave it in the
    /// heap (T11). A second cancel finds `payload: None` and returns `None` (T5).
    fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let index = self.store.find(key)?;
        let payload = self.store.get_mut(index).payload.take()?;
        self.cancelled += 1;
        self.store.unforward(index);
        Some(payload)
    }

    /// asyncio: `_run_once` cleans up, then reads `_scheduled[0]._when` (T4).
    fn next_deadline(&mut self) -> Option<Nanos> {
        self.clean_up();
        self.heap.first().map(|item| item.deadline)
    }

    /// asyncio: `_run_once` cleans up, then `heappop`s while `_when < end_time`.
    /// Fifo mode pops in `(deadline, seq)` order, so no sort is needed (T3).
    fn expire(&mut self, now: Nanos, out: &mut Vec<Expired<T>>) {
        self.clean_up();
        while let Some(top) = self.heap.first()
            && top.deadline <= now
        {
            let item = self.heap_pop().expect("first() was Some");
            let (seq, entry) = self.store.remove(item.index);
            match entry.payload {
                Some(payload) => out.push(Expired { deadline: item.deadline, seq, payload }),
                // A cancelled item reached the top mid-batch: drop it (T2, T11).
                None => self.cancelled -= 1,
            }
        }
        self.maybe_compact();
    }

    fn len(&self) -> usize {
        self.store.len() - self.cancelled
    }

    /// O(n): searches the heap array for the entry's item.
    fn placement(&self, key: TimerKey) -> Option<Placement> {
        let index = self.store.find(key)?;
        self.store.get(index).payload.as_ref()?;
        let pos = self.heap.iter().position(|item| item.index == index)?;
        Some(Placement::Heap { index: pos })
    }

    fn stats(&self) -> TimerStats {
        TimerStats {
            live: self.len(),
            cascades: 0,
            cascaded_entries: 0,
            compactions: self.rebuilds + self.store.compactions(),
            cancelled_in_heap: self.cancelled,
            capacity: self.store.capacity(),
        }
    }

    /// A heap never cascades; nothing to record.
    fn set_recording(&mut self, _on: bool) {}

    /// A heap never cascades; leaves `out` as it is.
    fn drain_cascades(&mut self, _out: &mut Vec<Cascade>) {}

    fn snapshot(&self) -> TimerSnapshot {
        TimerSnapshot::Heap(HeapSnapshot {
            len: self.heap.len(),
            cancelled: self.cancelled,
            top: self.heap.iter().take(SNAPSHOT_TOP).map(|item| (item.deadline, item.seq)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pops everything, returning the seqs in the order they came out.
    fn drain(h: &mut TimerHeap<()>) -> Vec<u64> {
        let mut out = Vec::new();
        h.expire(u64::MAX, &mut out);
        out.iter().map(|e| e.seq).collect()
    }

    /// asyncio parity (T10): ten equal deadlines pushed 0..9, plus asyncio's later
    /// `loop.stop` timer from the design-anchors experiment, pop exactly as CPython:
    /// `python3 -c "import heapq ..."` with `__lt__` on the deadline only printed
    /// `[0, 2, 6, 5, 9, 8, 7, 1, 3, 4, 'stop']` (CPython 3.11.7). Without the stop
    /// timer, bare heapq gives `[0, 2, 6, 9, 8, 5, 7, 4, 1, 3]`; both are pinned.
    #[test]
    fn asyncio_tie_order_matches_cpython() {
        let mut h = TimerHeap::new(TieOrder::Asyncio);
        for seq in 0..10 {
            h.insert(50, seq, ());
        }
        h.insert(60, 10, ()); // the `loop.stop` timer, 10 ms later
        assert_eq!(drain(&mut h), [0, 2, 6, 5, 9, 8, 7, 1, 3, 4, 10]);
        for seq in 0..10 {
            h.insert(50, seq, ());
        }
        assert_eq!(drain(&mut h), [0, 2, 6, 9, 8, 5, 7, 4, 1, 3]);
        // Fifo mode on the same input keeps scheduling order (T3).
        let mut f = TimerHeap::new(TieOrder::Fifo);
        for seq in 0..10 {
            f.insert(50, seq, ());
        }
        assert_eq!(drain(&mut f), (0..10).collect::<Vec<_>>());
    }

    /// xorshift64: the same "random" steps every run, without a `rand` dependency.
    fn step(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// The fired order of `tools/heapq_reference.py` (same xorshift operations on
    /// CPython's real `heapq` and an `H.__lt__` that compares `when` only), obtained
    /// by running `python3 tools/heapq_reference.py` with CPython 3.11.7.
    const PYTHON_FIRED: [u64; 202] = [
        124, 120, 150, 39, 18, 26, 107, 111, 23, 40, 78, 22, 142, 148, 137, 139, 10, 63, 62, 125, 133, 59, 21, 71, 104,
        103, 95, 151, 91, 80, 79, 34, 147, 28, 33, 14, 56, 121, 29, 11, 24, 43, 109, 17, 129, 86, 46, 19, 135, 138,
        110, 0, 45, 94, 61, 117, 118, 88, 152, 157, 158, 155, 162, 153, 167, 168, 164, 160, 166, 163, 156, 154, 159,
        165, 161, 172, 173, 171, 177, 181, 182, 184, 174, 169, 170, 185, 180, 187, 188, 190, 175, 189, 176, 193, 186,
        179, 178, 183, 197, 191, 195, 192, 198, 196, 194, 206, 201, 209, 204, 213, 200, 203, 199, 202, 205, 212, 207,
        210, 211, 208, 214, 220, 219, 217, 218, 221, 222, 227, 215, 216, 223, 224, 228, 229, 225, 226, 235, 240, 230,
        243, 232, 238, 244, 241, 242, 233, 234, 231, 236, 239, 250, 237, 255, 257, 245, 252, 249, 248, 246, 253, 256,
        251, 247, 258, 254, 267, 260, 263, 272, 274, 273, 269, 268, 259, 280, 281, 265, 264, 276, 278, 261, 270, 262,
        266, 275, 271, 282, 279, 277, 283, 285, 286, 284, 288, 291, 290, 289, 287, 292, 293, 295, 294,
    ];

    /// asyncio parity on a random run (T10, T11): pushes, lazy cancels, a rebuild by
    /// the 100 / 50 % rule, top purges and due pops, exactly as the Python mirror.
    #[test]
    fn asyncio_mode_matches_python_heapq_run() {
        let mut h = TimerHeap::new(TieOrder::Asyncio);
        let mut keys = Vec::new();
        let mut out = Vec::new();
        let mut rng = 0x5EED_u64;
        for seq in 0..150 {
            keys.push(h.insert((step(&mut rng) % 5) * 1000, seq, ()));
        }
        for key in keys.clone() {
            if step(&mut rng) % 10 < 6 {
                h.cancel(key);
            }
        }
        assert!(h.stats().cancelled_in_heap > 75, "enough to trigger the rebuild");
        h.next_deadline();
        assert_eq!(h.stats().compactions, 1, "asyncio's rule rebuilt the heap");
        assert_eq!(h.stats().cancelled_in_heap, 0);
        let mut now = 0;
        for _ in 0..300 {
            match step(&mut rng) % 8 {
                0..=3 => {
                    let deadline = now + (step(&mut rng) % 6) * 1000;
                    let seq = keys.len() as u64;
                    keys.push(h.insert(deadline, seq, ()));
                }
                4 => {
                    let seq = step(&mut rng) % keys.len() as u64;
                    h.cancel(keys[seq as usize]);
                }
                5 => {
                    h.next_deadline();
                }
                _ => {
                    now += (step(&mut rng) % 3) * 1000;
                    h.expire(now, &mut out);
                }
            }
        }
        h.expire(u64::MAX, &mut out);
        let fired: Vec<u64> = out.iter().map(|e| e.seq).collect();
        assert_eq!(fired, PYTHON_FIRED);
    }

    /// T11 and asyncio's rule: at 100 items nothing is rebuilt, only the top is
    /// purged; at 101 with a cancelled majority the heap is rebuilt.
    #[test]
    fn clean_up_rule_thresholds() {
        let mut h = TimerHeap::new(TieOrder::Fifo);
        let keys: Vec<TimerKey> = (0..100).map(|seq| h.insert(1000 + seq, seq, ())).collect();
        for key in &keys[1..100] {
            h.cancel(*key);
        }
        assert_eq!(h.next_deadline(), Some(1000));
        assert_eq!(h.stats().compactions, 0, "n = 100 is not > 100");
        assert_eq!(h.stats().cancelled_in_heap, 99);
        h.cancel(keys[0]);
        assert_eq!(h.next_deadline(), None, "top purge pops all 100");
        assert_eq!(h.stats().cancelled_in_heap, 0);
        let keys: Vec<TimerKey> = (0..101).map(|seq| h.insert(1000, 200 + seq, ())).collect();
        for key in &keys[..51] {
            h.cancel(*key);
        }
        assert_eq!(h.next_deadline(), Some(1000));
        assert_eq!(h.stats().compactions, 1, "101 > 100 and 51/101 > 0.5");
        assert_eq!(h.snapshot().to_string().lines().count(), 1);
        assert_eq!(h.len(), 50);
    }
}
