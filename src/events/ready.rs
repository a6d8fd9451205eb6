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
//! Entries are 16 bytes, two `u64`s (see [`Ready`]), and the slots are plain values (`Copy`),
//! so the buffer is a `Vec` filled with an unused value: no `MaybeUninit`, no `unsafe`.
//!
//! # Invariants
//! - **E8** `buf.len()` is a power of two at least 8; `len <= buf.len()`; the live entries are
//!   `buf[(head + i) & mask]` for `i < len`, oldest first.

use crate::task::TaskId;
use crate::trace::CallbackId;

/// One entry of the ready queue. asyncio: a `Handle` in `_ready`; a task step is a Handle
/// of `Task.__step` there, a task id here.
///
/// Two plain `u64`s, not an enum, on purpose: Rust passes a pair of integers in two
/// registers, so `push_back` writes them straight from registers. An enum of the same 16 bytes
/// is built on the stack field by field and then re-read as one 16-byte load, which the CPU
/// cannot forward from the smaller stores: that stall was a quarter of a task switch (measured
/// with `perf annotate` on the `yield_now` benchmark). [`Ready::kind`] decodes it.
///
/// ```text
///   task:      key = generation << 32 | index   seq = TASK (u64::MAX, never a callback's seq)
///   callback:  key = index                      seq = the callback's scheduling seq
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ready {
    key: u64,
    seq: u64,
}

/// What a ready-queue entry asks the loop to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadyKind {
    /// Poll this task.
    Task(TaskId),
    /// Run this callback (from `call_soon`, a due timer, or a done-callback).
    Callback(CallbackId),
}

impl Ready {
    /// Marks a task entry: callback seqs count up from 1 and never get here.
    const TASK: u64 = u64::MAX;

    /// Fills the ring's empty slots; never read as an entry (E8).
    const UNUSED: Ready = Ready { key: 0, seq: 0 };

    /// The entry that polls task `id`.
    #[inline]
    pub(crate) fn task(id: TaskId) -> Ready {
        Ready { key: (u64::from(id.generation) << 32) | u64::from(id.index), seq: Ready::TASK }
    }

    /// The entry that runs callback `id`.
    #[inline]
    pub(crate) fn callback(id: CallbackId) -> Ready {
        Ready { key: u64::from(id.index), seq: id.seq }
    }

    /// Decode.
    #[inline]
    pub(crate) fn kind(self) -> ReadyKind {
        if self.seq == Ready::TASK {
            ReadyKind::Task(TaskId { index: self.key as u32, generation: (self.key >> 32) as u32 })
        } else {
            ReadyKind::Callback(CallbackId { index: self.key as u32, seq: self.seq })
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
        let task = TaskId { index: 7, generation: u32::MAX };
        let cb = CallbackId { index: 3, seq: u64::MAX - 1 };
        assert_eq!(Ready::task(task).kind(), ReadyKind::Task(task));
        assert_eq!(Ready::callback(cb).kind(), ReadyKind::Callback(cb));
    }
}
