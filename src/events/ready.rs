//! The ready queue: a ring buffer of what runs next, in FIFO order.
//!
//! asyncio keeps `_ready`, a `collections.deque` of `Handle`s: `call_soon` appends on the
//! right, `_run_once` pops on the left exactly as many as were there when phase 4 began. Here
//! it is a ring buffer written out, so the one operation every callback and every task switch
//! pays for (a push and a pop) is a few instructions the compiler inlines, with no call:
//!
//! ```text
//!   buf (capacity a power of two, 8 here)      push_back: buf[(head + len) & mask] = r
//!   ┌────┬────┬────┬────┬────┬────┬────┬────┐  pop_front: r = buf[head]; head = head+1 & mask
//!   │    │    │ T2 │ C9 │ T5 │    │    │    │  full: grow to twice the capacity in place,
//!   └────┴────┴────┴────┴────┴────┴────┴────┘        the shorter run moved into the new half
//!              head=2    len=3   mask=7
//! ```
//!
//! Entries are 8 bytes, one `u64` (see [`Ready`]), and the slots are plain values (`Copy`),
//! so the buffer is a `Vec` filled with an unused value: no `MaybeUninit`, no `unsafe`.
//!
//! # Invariants
//! - **E8** `buf.len()` is a power of two at least 8; `len <= buf.len()`; the live entries are
//!   `buf[(head + i) & mask]` for `i < len`, oldest first.
//! - **E9** A slab index in an entry is below 2^31 (bit 31 tells tasks from callbacks), and a
//!   callback entry keeps the low 32 bits of its sequence number: a stale entry could be
//!   mistaken for a newer callback in the same slot only if 2^32 callbacks were scheduled
//!   while it waited in the queue, which it does for at most one iteration.

use crate::task::TaskId;

/// One entry of the ready queue. asyncio: a `Handle` in `_ready`; a task step is a Handle
/// of `Task.__step` there, a task id here.
///
/// One plain `u64`, not an enum, on purpose: it travels in one register, so `push_back`
/// writes it straight from a register. An enum is built on the stack field by field and then
/// re-read as one load, which the CPU cannot forward from the smaller stores: that stall was a
/// quarter of a task switch (measured with `perf annotate` on the `yield_now` benchmark).
/// And 8 bytes, not 16: with a million tasks spawned at once (W1) the queue is a million
/// entries of fresh memory. [`Ready::kind`] decodes it (E9):
///
/// ```text
///   bit   63 ............ 32   31   30 ............ 0
///   task:     generation        0     slab index
///   callback: seq (low 32 bits) 1     slab index
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ready(u64);

/// What a ready-queue entry asks the loop to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadyKind {
    /// Poll this task.
    Task(TaskId),
    /// Run the callback in this slot of the callback slab (from `call_soon`, a due timer, or a
    /// done-callback) if its sequence number ends in `seq_low` (E9).
    Callback {
        /// Slot in the callback slab.
        index: u32,
        /// The low 32 bits of the callback's scheduling sequence number.
        seq_low: u32,
    },
}

impl Ready {
    /// Bit 31: a callback entry.
    const CALLBACK: u64 = 1 << 31;

    /// Fills the ring's empty slots; never read as an entry (E8).
    const UNUSED: Ready = Ready(0);

    /// The entry that polls task `id`.
    #[inline]
    pub(crate) fn task(id: TaskId) -> Ready {
        debug_assert!(u64::from(id.index) < Ready::CALLBACK, "E9: task slot index below 2^31");
        Ready((u64::from(id.generation) << 32) | u64::from(id.index))
    }

    /// The entry that runs the callback in slot `index` scheduled with sequence number `seq`.
    #[inline]
    pub(crate) fn callback(index: u32, seq: u64) -> Ready {
        debug_assert!(u64::from(index) < Ready::CALLBACK, "E9: callback slot index below 2^31");
        Ready((seq << 32) | Ready::CALLBACK | u64::from(index))
    }

    /// Decode.
    #[inline]
    pub(crate) fn kind(self) -> ReadyKind {
        let index = (self.0 as u32) & !(Ready::CALLBACK as u32);
        let high = (self.0 >> 32) as u32;
        if self.0 & Ready::CALLBACK == 0 {
            ReadyKind::Task(TaskId { index, generation: high })
        } else {
            ReadyKind::Callback { index, seq_low: high }
        }
    }
}

/// The loop's ready queue (E8). asyncio: `_ready`.
#[derive(Debug)]
pub(crate) struct ReadyQueue {
    buf: Vec<Ready>,
    head: usize,
    len: usize,
}

impl Default for ReadyQueue {
    fn default() -> Self {
        ReadyQueue::with_capacity(8)
    }
}

impl ReadyQueue {
    /// An empty queue with room for at least `n` entries before it grows.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let cap = n.max(8).next_power_of_two();
        ReadyQueue { buf: vec![Ready::UNUSED; cap], head: 0, len: 0 }
    }

    /// Entries waiting.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Nothing waiting?
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room before the next growth.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Append on the right. asyncio: `_ready.append(handle)`. (`inline(always)`: a handful of
    /// instructions, on every wake-up; the compiler otherwise kept it a call.)
    #[inline(always)]
    pub(crate) fn push_back(&mut self, r: Ready) {
        if self.len == self.buf.len() {
            self.grow();
        }
        let mask = self.buf.len() - 1;
        self.buf[(self.head + self.len) & mask] = r;
        self.len += 1;
    }

    /// Take from the left. asyncio: `_ready.popleft()`.
    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<Ready> {
        if self.len == 0 {
            return None;
        }
        let r = self.buf[self.head];
        self.head = (self.head + 1) & (self.buf.len() - 1);
        self.len -= 1;
        Some(r)
    }

    /// The entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Ready> + '_ {
        let mask = self.buf.len() - 1;
        (0..self.len).map(move |i| self.buf[(self.head + i) & mask])
    }

    /// Double the capacity in place (E8). `Vec::resize` reallocates, and for a large buffer
    /// glibc's `realloc` moves the pages with `mremap` rather than copying them, so growing to
    /// a million entries touches each page once. The ring was full, so its entries are the
    /// two runs `head..old` and `..head`; the shorter run moves into the new half so the
    /// entries are in order again from `head` (what `VecDeque` does):
    ///
    /// ```text
    ///   full, capacity 4, head 1:  [D|A B C]              A the oldest, D the newest
    ///   resized to 8:              [D|A B C|_ _ _ _]
    ///   `..head` is the shorter run, so it moves past the old end:
    ///                              [_|A B C|D _ _ _]      head 1: A B C D
    ///   (with head 3, [B C D|A], the run `head..` moves to the very end instead:
    ///                              [B C D|_ _ _ _|A]      head 7: A, then wrap to B C D)
    /// ```
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let old = self.buf.len();
        self.buf.resize(old * 2, Ready::UNUSED);
        if self.head <= old - self.head {
            // `..head` (the newest) follows `head..old` (the oldest) past the old end.
            self.buf.copy_within(..self.head, old);
        } else {
            // `head..old` (the oldest) moves to the end of the new buffer, before nothing:
            // the newest stay at `..head`, and wrapping reaches them.
            self.buf.copy_within(self.head..old, self.head + old);
            self.head += old;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u32) -> Ready {
        Ready::task(TaskId { index: n, generation: n + 1 })
    }

    /// FIFO across wrap-around and growth, compared with `VecDeque` on a mixed sequence.
    #[test]
    fn fifo_through_wrap_and_growth() {
        let mut q = ReadyQueue::with_capacity(8);
        let mut model = std::collections::VecDeque::new();
        let mut next = 0u32;
        for round in 0..200u32 {
            for _ in 0..(round % 13) {
                q.push_back(t(next));
                model.push_back(t(next));
                next += 1;
            }
            for _ in 0..(round % 7) {
                assert_eq!(q.pop_front(), model.pop_front());
            }
            assert_eq!(q.len(), model.len());
            assert!(q.iter().eq(model.iter().copied()));
            assert!(q.capacity().is_power_of_two() && q.capacity() >= q.len());
        }
        while let Some(r) = model.pop_front() {
            assert_eq!(q.pop_front(), Some(r));
        }
        assert!(q.is_empty() && q.pop_front().is_none());
    }

    /// Growth from every head position of a full ring, so both of `grow`'s branches (the
    /// wrapped run moved up, or the oldest run moved to the end) keep FIFO order.
    #[test]
    fn growth_from_every_head_position() {
        for head in 0..8u32 {
            let mut q = ReadyQueue::with_capacity(8);
            for i in 0..head {
                q.push_back(t(1000 + i));
            }
            for _ in 0..head {
                q.pop_front();
            }
            for i in 0..9 {
                q.push_back(t(i)); // the ninth grows a full ring whose head is `head`
            }
            assert_eq!(q.capacity(), 16);
            for i in 0..9 {
                assert_eq!(q.pop_front(), Some(t(i)), "head {head}");
            }
            assert!(q.is_empty());
        }
    }

    #[test]
    fn entries_decode_to_what_was_pushed() {
        let task = TaskId { index: (1 << 31) - 1, generation: u32::MAX };
        assert_eq!(Ready::task(task).kind(), ReadyKind::Task(task));
        let task = TaskId { index: 0, generation: 1 };
        assert_eq!(Ready::task(task).kind(), ReadyKind::Task(task));
        // E9: a callback entry keeps the low 32 bits of its sequence number.
        let seq = (5u64 << 32) | 0xdead_beef;
        assert_eq!(Ready::callback(3, seq).kind(), ReadyKind::Callback { index: 3, seq_low: 0xdead_beef });
        assert_eq!(Ready::callback((1 << 31) - 1, 1).kind(), ReadyKind::Callback { index: (1 << 31) - 1, seq_low: 1 });
        assert_eq!(std::mem::size_of::<Ready>(), 8);
    }
}
