//! The task table: a slab of task headers, kept in pages of 1,024 slots.
//!
//! A task is found by its index in O(1), and a freed slot is reused by the next spawn: that
//! is a [`slab::Slab`]. One slab is one `Vec`, though, and a `Vec` grows by moving into a
//! block twice its size. With a million tasks alive the header `Vec` is 64 MiB, and glibc's
//! malloc serves a block that large with `mmap` (its ceiling for recycling big blocks
//! through the heap is 32 MiB) and gives it back with `munmap` when it is freed: each loop
//! that spawns a million tasks gets its table as fresh memory from the kernel and takes a
//! page fault per 4 KiB of it. Measured (W1 in `BENCHMARKS.md`, spawn and join 1,000,000
//! tasks, a new loop per run): 15,626 faults a run, and about 100 ns a task where the paged
//! table below, whose memory the allocator recycles, takes about 70 and no faults.
//!
//! So the table is a list of slabs ("pages") of at most 1,024 slots, 64 KiB each: a page is
//! a block glibc serves from its heap and hands out again after it is freed, and it is never
//! moved once full. (The heap's memory can still go back to the kernel: glibc trims a large
//! free region at the top of the heap. In the bench it did not for the task table, but it
//! did for a paged callback table tried the same way; see `BENCHMARKS.md` §1.) Page 0 starts
//! small and grows like any `Vec` (a loop with a few tasks allocates a few slots); each
//! further page is allocated whole when the pages before it are full.
//!
//! ```text
//!   index = page << 10 | slot in page      with_room: pages with a free slot (a stack)
//!
//!   first (page 0, inline)                 ┌────┐
//!   ┌──────┬──────┬─────┬───────┐          │ 2  │ ◄─ top: the next spawn goes here
//!   │ T1   │ T2   │ ... │ T1024 │          │ 1  │
//!   └──────┴──────┴─────┴───────┘          └────┘
//!   pages (page 1, 2, ...)                 page 0 is full: not on the stack
//!   ┌───┐   ┌──────┬──────┬─────┬───────┐
//!   │ 1 │──►│ T1025│(free)│ ... │ T2048 │
//!   │ 2 │──►│ T2049│(free)│(free)│ ...  │
//!   └───┘   └──────┴──────┴─────┴───────┘
//!           each page: a slab::Slab of at most 1,024 headers, with its own free list
//! ```
//!
//! The price is in the look-up: a slot in pages 1, 2, ... is one dependent load further
//! (the page's `Vec`, then the slot). Page 0 is kept inline in the table so that a loop with
//! fewer than 1,024 tasks pays only a compare: a task switch is a short chain of dependent
//! loads, and with every page behind the `Vec` the two-task switch of W2 took 21 ns instead
//! of 18 (`BENCHMARKS.md` §1).
//!
//! # Invariants
//! - **P1** Every page holds at most [`PAGE_SLOTS`] headers; pages 1, 2, ... are allocated
//!   with that capacity, so no page but page 0 ever grows, and page 0 only up to it.
//! - **P2** `with_room` holds exactly the pages with fewer than [`PAGE_SLOTS`] headers,
//!   each once; a spawn takes a slot of the page on top, or makes a new page if none has
//!   room.
//!
//! # asyncio equivalent
//! None: asyncio keeps its tasks as separate Python objects (and a `WeakSet` of them for
//! `all_tasks()`). The `sharded-slab` crate keeps its slabs in pages for the same reasons.

use slab::Slab;

use super::{TaskId, TaskSlot};

/// log2 of the slots in a page.
const PAGE_SHIFT: u32 = 10;
/// Slots in a page (P1): 64 KiB of headers, below glibc's 128 KiB mmap threshold.
pub(crate) const PAGE_SLOTS: usize = 1 << PAGE_SHIFT;
/// The slot's position within its page.
const SLOT_MASK: u32 = (PAGE_SLOTS as u32) - 1;
/// Page 0's first capacity: a loop with a few tasks allocates a few slots.
const FIRST_PAGE: usize = 16;

/// Every live task's header (see the module docs).
pub(crate) struct TaskTable {
    /// Page 0, kept inline: a loop with fewer than 1,024 tasks looks its tasks up with one
    /// load less (see the module docs).
    first: Slab<TaskSlot>,
    /// Pages 1, 2, ...: `pages[p - 1]` is page `p`.
    pages: Vec<Slab<TaskSlot>>,
    /// P2: the pages with a free slot, the one to fill next on top.
    with_room: Vec<u32>,
}

impl Default for TaskTable {
    /// An empty table with no slots allocated (what `close()` leaves).
    fn default() -> Self {
        TaskTable { first: Slab::new(), pages: Vec::new(), with_room: vec![0] }
    }
}

impl TaskTable {
    pub(crate) fn new() -> Self {
        TaskTable { first: Slab::with_capacity(FIRST_PAGE), pages: Vec::new(), with_room: vec![0] }
    }

    /// The index the next [`insert`](Self::insert) will use.
    #[cfg(test)]
    fn next_index(&self) -> usize {
        match self.with_room.last() {
            Some(&p) => ((p as usize) << PAGE_SHIFT) | self.page(p as usize).vacant_key(),
            None => (self.pages.len() + 1) << PAGE_SHIFT,
        }
    }

    /// Store a header in a free slot (of the page on top of `with_room`); returns its index.
    #[inline(always)]
    pub(crate) fn insert(&mut self, slot: TaskSlot) -> usize {
        let p = match self.with_room.last() {
            Some(&p) => p as usize,
            None => self.new_page(),
        };
        let page = self.page_mut(p);
        let key = page.insert(slot);
        if page.len() == PAGE_SLOTS {
            self.with_room.pop(); // P2: full now.
        }
        (p << PAGE_SHIFT) | key
    }

    /// Allocate a page whole (P1) and put it on top of `with_room`; returns its number.
    #[cold]
    #[inline(never)]
    fn new_page(&mut self) -> usize {
        let p = self.pages.len() + 1;
        self.pages.push(Slab::with_capacity(PAGE_SLOTS));
        self.with_room.push(p as u32);
        p
    }

    /// Page `p` (which exists).
    #[cfg(test)]
    fn page(&self, p: usize) -> &Slab<TaskSlot> {
        if p == 0 { &self.first } else { &self.pages[p - 1] }
    }

    /// [`page`](Self::page), to change it.
    #[inline]
    fn page_mut(&mut self, p: usize) -> &mut Slab<TaskSlot> {
        if p == 0 { &mut self.first } else { &mut self.pages[p - 1] }
    }

    /// The header in slot `index`, if the slot is occupied.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&TaskSlot> {
        if (index as usize) < PAGE_SLOTS {
            return self.first.get(index as usize);
        }
        self.pages.get((index >> PAGE_SHIFT) as usize - 1)?.get((index & SLOT_MASK) as usize)
    }

    /// [`get`](Self::get), to change it.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut TaskSlot> {
        if (index as usize) < PAGE_SLOTS {
            return self.first.get_mut(index as usize);
        }
        self.pages.get_mut((index >> PAGE_SHIFT) as usize - 1)?.get_mut((index & SLOT_MASK) as usize)
    }

    /// The slot of task `id`, if the task is still there (W2: the id of a finished task,
    /// whose slot may now hold another, finds nothing).
    #[inline]
    pub(crate) fn find(&self, id: TaskId) -> Option<&TaskSlot> {
        self.get(id.index).filter(|s| s.holds(id))
    }

    /// [`find`](Self::find), to change it.
    #[inline]
    pub(crate) fn find_mut(&mut self, id: TaskId) -> Option<&mut TaskSlot> {
        self.get_mut(id.index).filter(|s| s.holds(id))
    }

    /// The header in slot `index`, which the caller knows is occupied (the task in its step).
    #[inline]
    pub(crate) fn at_mut(&mut self, index: u32) -> &mut TaskSlot {
        self.get_mut(index).expect("looplab: the task being stepped has a slot")
    }

    /// Look task `id` up once, let `f` read or change its slot, and remove the slot in the
    /// same look-up if `f` says so (its second value). `None` if the task is not there;
    /// else `f`'s result and the removed header, if it was removed.
    #[inline(always)]
    pub(crate) fn update<R>(
        &mut self,
        id: TaskId,
        f: impl FnOnce(&mut TaskSlot) -> (R, bool),
    ) -> Option<(R, Option<TaskSlot>)> {
        let p = (id.index >> PAGE_SHIFT) as usize;
        let page = if p == 0 { &mut self.first } else { self.pages.get_mut(p - 1)? };
        let key = (id.index & SLOT_MASK) as usize;
        let (r, remove) = f(page.get_mut(key).filter(|s| s.holds(id))?);
        if !remove {
            return Some((r, None));
        }
        let slot = page.remove(key);
        if page.len() == PAGE_SLOTS - 1 {
            self.with_room.push(p as u32); // P2: it was full.
        }
        Some((r, Some(slot)))
    }

    /// Remove task `id`, if it is there, in one look-up.
    pub(crate) fn remove(&mut self, id: TaskId) -> Option<TaskSlot> {
        self.update(id, |_| ((), true)).and_then(|(_, slot)| slot)
    }

    /// Every task, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &TaskSlot)> {
        std::iter::once(&self.first)
            .chain(&self.pages)
            .enumerate()
            .flat_map(|(p, page)| page.iter().map(move |(k, s)| ((p << PAGE_SHIFT) | k, s)))
    }

    /// Every task, in slot order, to change.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut TaskSlot)> {
        std::iter::once(&mut self.first)
            .chain(&mut self.pages)
            .enumerate()
            .flat_map(|(p, page)| page.iter_mut().map(move |(k, s)| ((p << PAGE_SHIFT) | k, s)))
    }

    /// Slots allocated, over all pages.
    pub(crate) fn capacity(&self) -> usize {
        self.first.capacity() + self.pages.iter().map(Slab::capacity).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{HANDLE_ALIVE, TaskState};
    use std::panic::Location;

    fn slot(generation: u32) -> TaskSlot {
        TaskSlot {
            cell: None,
            watchers: super::super::Watchers::None,
            spawned_at: Location::caller(),
            extra: None,
            generation,
            polls: 0,
            future_size: 0,
            parked: 0,
            state: TaskState::Waiting,
            flags: HANDLE_ALIVE,
        }
    }

    /// P1 and P2, checked from the outside.
    fn check(t: &TaskTable) {
        let mut seen = vec![false; t.pages.len() + 1];
        for &p in &t.with_room {
            assert!(!seen[p as usize], "P2: page {p} is on the stack twice");
            seen[p as usize] = true;
        }
        for (p, &on_stack) in seen.iter().enumerate() {
            let page = t.page(p);
            assert!(page.len() <= PAGE_SLOTS, "P1: page {p} holds {}", page.len());
            if p > 0 {
                assert_eq!(page.capacity(), PAGE_SLOTS, "P1: page {p} was allocated whole and never grew");
            }
            assert_eq!(on_stack, page.len() < PAGE_SLOTS, "P2: page {p} with {} headers", page.len());
        }
    }

    #[test]
    fn fills_page_zero_then_allocates_whole_pages() {
        let mut t = TaskTable::new();
        assert_eq!(t.capacity(), FIRST_PAGE, "a new loop allocates a few slots, not a page");
        for g in 0..2_500u32 {
            let next = t.next_index();
            assert_eq!(t.insert(slot(g + 1)), next);
            assert_eq!(next, g as usize, "an empty table fills in index order");
        }
        check(&t);
        assert_eq!(t.pages.len(), 2);
        assert_eq!(t.capacity(), 3 * PAGE_SLOTS);
        for g in 0..2_500u32 {
            let id = TaskId { index: g, generation: g + 1 };
            assert_eq!(t.find(id).map(|s| s.generation), Some(g + 1));
        }
        let order: Vec<usize> = t.iter().map(|(i, _)| i).collect();
        assert_eq!(order, (0..2_500).collect::<Vec<_>>(), "iteration is in slot order across pages");
    }

    #[test]
    fn a_freed_slot_in_a_full_page_is_the_next_one_used() {
        let mut t = TaskTable::new();
        for g in 0..(2 * PAGE_SLOTS as u32 + 10) {
            t.insert(slot(g + 1));
        }
        // Page 0 and page 1 are full; page 2 has room and is on top.
        assert_eq!(t.next_index(), 2 * PAGE_SLOTS + 10);
        let freed = t.remove(TaskId { index: 5, generation: 6 }).expect("task 6 in slot 5");
        assert_eq!(freed.generation, 6);
        check(&t);
        assert_eq!(t.next_index(), 5, "the page that just got room is on top");
        assert_eq!(t.insert(slot(99)), 5);
        check(&t);
        assert_eq!(t.next_index(), 2 * PAGE_SLOTS + 10, "page 0 is full again, page 2 is back on top");
        let freed = t.remove(TaskId { index: PAGE_SLOTS as u32 + 3, generation: PAGE_SLOTS as u32 + 4 });
        assert_eq!(freed.map(|s| s.generation), Some(PAGE_SLOTS as u32 + 4));
        check(&t);
        assert_eq!(t.next_index(), PAGE_SLOTS + 3);
    }

    #[test]
    fn stale_and_foreign_ids_find_nothing() {
        let mut t = TaskTable::new();
        for g in 0..(PAGE_SLOTS as u32 + 1) {
            t.insert(slot(g + 1));
        }
        let last = PAGE_SLOTS as u32;
        assert!(t.find(TaskId { index: last, generation: last + 1 }).is_some());
        assert!(t.find(TaskId { index: last, generation: 7 }).is_none(), "W2: another task's generation");
        assert!(t.find_mut(TaskId { index: last + 1, generation: 1 }).is_none(), "a vacant slot of a page");
        assert!(t.get(5 * PAGE_SLOTS as u32).is_none(), "a page that was never allocated");
        assert!(t.get(u32::MAX).is_none());
        assert!(t.remove(TaskId { index: 3, generation: 9 }).is_none(), "W2: not another task's slot");
        assert!(t.remove(TaskId { index: 3, generation: 4 }).is_some());
        assert!(t.find(TaskId { index: 3, generation: 4 }).is_none(), "a removed task");
    }

    #[test]
    fn emptying_and_refilling_keeps_the_invariants() {
        let mut t = TaskTable::new();
        let n = 3 * PAGE_SLOTS as u32;
        for g in 0..n {
            t.insert(slot(g + 1));
        }
        // Free every other slot, then all, checking as we go.
        let gone = |i: u32| TaskId { index: i, generation: i + 1 };
        for i in (0..n).step_by(2) {
            assert!(t.remove(gone(i)).is_some());
        }
        check(&t);
        for i in (1..n).step_by(2) {
            assert!(t.remove(gone(i)).is_some());
        }
        check(&t);
        assert_eq!(t.iter().count(), 0);
        let cap = t.capacity();
        for g in 0..n {
            t.insert(slot(g + 1));
        }
        check(&t);
        assert_eq!(t.capacity(), cap, "refilling reuses the pages: none is added");
        assert_eq!(t.iter().count(), n as usize);
    }
}
