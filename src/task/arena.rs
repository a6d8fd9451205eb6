//! The task arena: where the loop keeps its tasks' boxes, by size class.
//!
//! Every task is one allocation (its future, then its output: `boxed.rs`). Spawning and
//! joining a million trivial tasks spends 40 % of its instructions in glibc's `malloc` and
//! `free` (callgrind, `BENCHMARKS.md` §1): a block freed by one run goes to a fastbin, the
//! next large request (a page of the task table) merges the fastbins back into big free
//! chunks, and the next million mallocs each split one again, about 360 instructions a task
//! for the pair. A loop knows more than `malloc` does: its task boxes are small, of a few
//! sizes, freed on the thread that made them, and made again soon. So it keeps them itself,
//! as CPython's `pymalloc` keeps every small object (each asyncio `Task` and coroutine frame
//! among them): blocks of one size class are carved from 64 KiB chunks, and a freed block
//! goes on its class's free list, to be the next block of that size handed out.
//!
//! ```text
//!   size classes: 16, 32, 48, ... 512 bytes (a box of n bytes takes a block of ⌈n/16⌉ × 16)
//!
//!   class 32 B   free ──► [blk] ──► [blk] ──► null        (freed blocks, LIFO: the next
//!                bump ─┐                                   alloc reuses the last freed)
//!   chunk (64 KiB)     ▼
//!   ┌─────┬─────┬─────┬─────┬────────────────────────────┐
//!   │ blk │ blk │ blk │ blk │ (not handed out yet)   end ┘
//!   └─────┴─────┴─────┴─────┴────────────────────────────┘
//!   alloc: pop the free list, else bump, else a new chunk (from the thread's spares first)
//!   free:  run the box's destructor, push the block on its class's free list
//! ```
//!
//! A box over 512 bytes or aligned to more than 16 goes to the global allocator, as before.
//! A chunk is never split between classes and never handed back while the loop lives: the
//! arena's memory is its peak (as the task table's is), and every chunk goes back when the
//! loop is dropped. Up to [`SPARE_MAX`] of them stay with the thread for its next loop
//! (`SPARE`): without that, a program that builds loop after loop (a test suite, a bench)
//! took every chunk as fresh pages from the kernel each time, one page fault per 4 KiB.
//!
//! # Invariants
//! - **M1** A block is handed out by [`TaskArena::alloc`] only while it belongs to no live
//!   box: it is either never handed out before (bump), or on its class's free list, which
//!   holds only blocks whose box was destroyed ([`TaskArena::free`]).
//! - **M2** Which allocator owns a box follows from its layout alone ([`TaskArena::takes`]):
//!   the same function decides at allocation and at release, so a block goes back where it
//!   came from.
//! - **M3** The arena outlives every box in it: boxes live only in the loop's task table
//!   and, during a step or a join, on the loop's stack; the table is a field of the loop
//!   declared (and so dropped) before the arena, and no box is ever handed out of the crate.
//!   A box dropped without [`TaskArena::free`] (a loop closing drops its table) runs its
//!   destructor; its block is given back with its chunk.
//!
//! # asyncio equivalent
//! None in asyncio itself: CPython's `pymalloc` (`Objects/obmalloc.c`) does this for every
//! object of 512 bytes or less, with 16-byte classes, pools of one class and arenas of pools.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr::{self, NonNull};

use super::boxed::{TaskCell, TaskFuture};

/// Bytes between size classes, and the blocks' alignment.
pub(crate) const GRAIN: usize = 16;
/// The largest box the arena takes.
pub(crate) const LARGEST: usize = 512;
/// Size classes: 16, 32, ... 512 bytes.
const CLASSES: usize = LARGEST / GRAIN;
/// Bytes in a chunk: below glibc's 128 KiB mmap threshold, so the chunks come from (and go
/// back to) its heap.
pub(crate) const CHUNK: usize = 64 * 1024;
/// A chunk's layout.
const CHUNK_LAYOUT: Layout = match Layout::from_size_align(CHUNK, GRAIN) {
    Ok(l) => l,
    Err(_) => panic!("chunk layout"),
};
/// At most this many chunks (64 MiB) stay with a thread after its loops are dropped.
pub(crate) const SPARE_MAX: usize = 1024;

/// A freed block: the first word of its bytes points to the next freed block of its class.
struct FreeBlock {
    next: *mut FreeBlock,
}

/// One size class: its free list and the unused end of its newest chunk.
struct Class {
    /// Freed blocks (M1), the most recently freed first.
    free: Cell<*mut FreeBlock>,
    /// The next block never handed out, in the newest chunk of this class.
    bump: Cell<*mut u8>,
    /// The end of that chunk.
    end: Cell<*mut u8>,
}

/// A loop's task boxes (see the module docs).
pub(crate) struct TaskArena {
    classes: [Class; CLASSES],
    /// Every chunk of this arena, to give back when it is dropped.
    chunks: RefCell<Vec<NonNull<u8>>>,
    /// Blocks handed out and not yet freed through [`TaskArena::free`] (tests check that
    /// the loop's paths give every block back; not kept outside tests).
    #[cfg(test)]
    live: Cell<usize>,
}

/// The chunks a thread keeps for its next loop (see the module docs).
struct Spare(Vec<NonNull<u8>>);

impl Drop for Spare {
    fn drop(&mut self) {
        for c in self.0.drain(..) {
            // SAFETY: every spare chunk was allocated with `CHUNK_LAYOUT` and belongs to no
            // arena any more (it was moved here when its arena was dropped).
            unsafe { dealloc(c.as_ptr(), CHUNK_LAYOUT) };
        }
    }
}

thread_local! {
    static SPARE: RefCell<Spare> = const { RefCell::new(Spare(Vec::new())) };
}

impl TaskArena {
    /// An arena with no chunks.
    pub(crate) fn new() -> Self {
        let class = |_| Class {
            free: Cell::new(ptr::null_mut()),
            bump: Cell::new(ptr::null_mut()),
            end: Cell::new(ptr::null_mut()),
        };
        TaskArena {
            classes: std::array::from_fn(class),
            chunks: RefCell::new(Vec::new()),
            #[cfg(test)]
            live: Cell::new(0),
        }
    }

    /// Does the arena take a box of this layout (M2)? Else the global allocator does.
    #[inline]
    fn takes(layout: Layout) -> bool {
        layout.size() <= LARGEST && layout.align() <= GRAIN
    }

    /// The class of a size the arena takes: 0 for 1..=16 bytes (and for 0), 1 for 17..=32...
    #[inline]
    fn class_of(size: usize) -> usize {
        size.saturating_sub(1) / GRAIN
    }

    /// Blocks handed out and not freed through [`TaskArena::free`].
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live.get()
    }

    /// Chunks this arena holds (the memory walkthrough prints it).
    pub(crate) fn chunks(&self) -> usize {
        self.chunks.borrow().len()
    }

    /// A block for a box of `layout`: from the arena if it takes the layout (M2), else from
    /// the global allocator. Never null; aborts through `handle_alloc_error` as `Box` does.
    #[inline]
    fn alloc(&self, layout: Layout) -> NonNull<u8> {
        if !Self::takes(layout) {
            // SAFETY: the layout's size is over LARGEST, so not zero.
            let p = unsafe { alloc(layout) };
            return NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout));
        }
        #[cfg(test)]
        self.live.set(self.live.get() + 1);
        let k = Self::class_of(layout.size());
        let class = &self.classes[k];
        let head = class.free.get();
        if let Some(block) = NonNull::new(head) {
            // SAFETY: M1: a block on the free list was written by `free` with its `next`
            // and belongs to no box; this arena is the only one that reads it.
            class.free.set(unsafe { (*head).next });
            return block.cast();
        }
        let size = (k + 1) * GRAIN;
        let bump = class.bump.get();
        // (Both null before the class's first chunk: no room.)
        if class.end.get().addr() - bump.addr() >= size {
            // SAFETY: `bump + size` stays within the chunk `bump` points into (checked just
            // above), so the add is in bounds of one allocation.
            class.bump.set(unsafe { bump.add(size) });
            // SAFETY: `bump` is in a live chunk, so not null.
            return unsafe { NonNull::new_unchecked(bump) };
        }
        self.refill(class, size)
    }

    /// A new chunk for `class` (a spare one if the thread has one); returns its first block.
    #[cold]
    #[inline(never)]
    fn refill(&self, class: &Class, size: usize) -> NonNull<u8> {
        let chunk = SPARE.try_with(|s| s.borrow_mut().0.pop()).ok().flatten().unwrap_or_else(|| {
            // SAFETY: CHUNK_LAYOUT has a non-zero size.
            NonNull::new(unsafe { alloc(CHUNK_LAYOUT) }).unwrap_or_else(|| handle_alloc_error(CHUNK_LAYOUT))
        });
        self.chunks.borrow_mut().push(chunk);
        let base = chunk.as_ptr();
        // SAFETY: `size` <= LARGEST < CHUNK, and `base + CHUNK` is one past the chunk's end,
        // so both adds stay within (or one past) the chunk's allocation.
        unsafe {
            class.bump.set(base.add(size));
            class.end.set(base.add(CHUNK));
        }
        chunk
    }

    /// Destroy a box and give its block back: to its class's free list if the arena made it
    /// (M2), else to the global allocator.
    pub(crate) fn free(&self, b: TaskBox) {
        let mut b = ManuallyDrop::new(b);
        // SAFETY: `b` is ManuallyDrop and not used after this: `destroy` is its last use.
        // (If a destructor panics, the block is not reused: it goes back with its chunk, M3.)
        let Some((block, layout)) = (unsafe { b.destroy() }) else {
            return;
        };
        #[cfg(test)]
        self.live.set(self.live.get() - 1);
        let class = &self.classes[Self::class_of(layout.size())];
        let freed = block.cast::<FreeBlock>();
        // SAFETY: M2: the block is one of this arena's, at least GRAIN (16) bytes and aligned
        // to GRAIN, so it holds a `FreeBlock`; its box was just destroyed, so nothing else
        // reads or writes it until `alloc` hands it out again (M1).
        unsafe { freed.write(FreeBlock { next: class.free.get() }) };
        class.free.set(freed);
    }
}

impl Default for TaskArena {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TaskArena {
    fn drop(&mut self) {
        let chunks = std::mem::take(self.chunks.get_mut());
        // M3: no box is left in any chunk. Keep up to SPARE_MAX chunks for the thread's
        // next loop; give the rest back (all of them if the thread is exiting).
        let mut rest = chunks.into_iter();
        let _ = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            let room = SPARE_MAX.saturating_sub(s.0.len());
            s.0.extend(rest.by_ref().take(room));
        });
        for c in rest {
            // SAFETY: allocated with CHUNK_LAYOUT by `refill` (or taken from the spares,
            // which were), owned by this arena alone, and holding no live box (M3).
            unsafe { dealloc(c.as_ptr(), CHUNK_LAYOUT) };
        }
    }
}

/// A task's box: a `TaskCell<F>` behind `dyn TaskFuture`, in a block of the loop's arena
/// (or of the global allocator, M2). Pinned: the cell never moves while the box lives.
///
/// Invariant: the pointer is to a live, initialized `TaskCell` that only this box owns.
pub(crate) struct TaskBox(NonNull<dyn TaskFuture>);

impl TaskBox {
    /// Box `fut` in a block of `arena`.
    #[inline]
    pub(crate) fn new<F>(arena: &TaskArena, fut: F) -> TaskBox
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let block = arena.alloc(Layout::new::<TaskCell<F>>()).cast::<TaskCell<F>>();
        // SAFETY: the block is fresh (M1), sized and aligned for a `TaskCell<F>`.
        unsafe { block.as_ptr().write(TaskCell::new(fut)) };
        let p: NonNull<dyn TaskFuture> = block;
        TaskBox(p)
    }

    /// The cell, pinned.
    #[inline]
    pub(crate) fn as_mut(&mut self) -> Pin<&mut dyn TaskFuture> {
        // SAFETY: the cell is live and owned by this box (the invariant), and never moves
        // while the box lives: its block is freed only after it is dropped in place.
        unsafe { Pin::new_unchecked(self.0.as_mut()) }
    }

    /// Run the cell's destructor and give a block of the global allocator back (M2). Returns
    /// an arena block, with its layout, for the caller to reuse or to leave to its chunk.
    ///
    /// # Safety
    /// The box's last use: the cell is dropped here, so nothing may touch it (or drop the
    /// box) afterwards.
    unsafe fn destroy(&mut self) -> Option<(*mut u8, Layout)> {
        let p = self.0.as_ptr();
        // SAFETY: the cell is live (the invariant); its layout is read before it is dropped.
        let layout = Layout::for_value(unsafe { &*p });
        // SAFETY: the box owns the cell, and by this function's contract this is its only
        // drop.
        unsafe { ptr::drop_in_place(p) };
        let block = p.cast::<u8>();
        if TaskArena::takes(layout) {
            return Some((block, layout));
        }
        // SAFETY: M2: the global allocator made this block with this layout.
        unsafe { dealloc(block, layout) };
        None
    }

    /// The cell's size in bytes.
    pub(crate) fn size(&self) -> usize {
        // SAFETY: the cell is live (the invariant).
        std::mem::size_of_val(unsafe { self.0.as_ref() })
    }
}

impl Drop for TaskBox {
    /// A box dropped rather than given to [`TaskArena::free`] (a closing loop's table): run
    /// the cell's destructor; an arena block goes back with its chunk (M3).
    fn drop(&mut self) {
        // SAFETY: `drop` is the box's last use.
        unsafe { self.destroy() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::boxed::tests::Guard;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    #[test]
    fn a_freed_block_is_the_next_one_handed_out_and_destructors_run_once() {
        let arena = TaskArena::new();
        let drops = Rc::new(Cell::new(0));
        let g = Guard(drops.clone());
        let a = TaskBox::new(&arena, async move {
            let _g = g;
            1u64
        });
        let a_at = a.0.as_ptr().cast::<u8>();
        assert_eq!((arena.live(), arena.chunks()), (1, 1));
        arena.free(a);
        assert_eq!((drops.get(), arena.live()), (1, 0), "the future's destructor ran, the block is free");
        let g = Guard(drops.clone());
        let mut b = TaskBox::new(&arena, async move {
            let _g = g;
            2u64
        });
        assert_eq!(b.0.as_ptr().cast::<u8>(), a_at, "same class: the freed block is reused");
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(b.as_mut().poll_task(&mut cx), Poll::Ready(()));
        assert_eq!(drops.get(), 2);
        drop(b);
        assert_eq!(drops.get(), 2, "the finished future is not dropped twice");
        assert_eq!(arena.live(), 1, "a dropped box's block goes back only with its chunk (M3)");
    }

    #[test]
    fn classes_are_kept_apart_and_big_or_overaligned_boxes_use_the_global_allocator() {
        #[repr(align(64))]
        struct Aligned(u8);
        let arena = TaskArena::new();
        let small = TaskBox::new(&arena, async { 1u8 });
        let big = TaskBox::new(&arena, async {
            let pad = [7u8; 1000];
            std::future::ready(()).await;
            pad[999]
        });
        let aligned = TaskBox::new(&arena, async {
            let a = Aligned(3);
            std::future::ready(()).await;
            a.0
        });
        assert!(big.size() > LARGEST);
        assert_eq!(aligned.0.as_ptr().cast::<u8>() as usize % 64, 0, "alignment kept");
        assert_eq!((arena.live(), arena.chunks()), (1, 1), "only the small box is the arena's");
        // 200 boxes of one class fill more than one chunk's worth of blocks of 512 bytes.
        let many: Vec<TaskBox> = (0..200)
            .map(|i: u32| {
                TaskBox::new(&arena, async move {
                    let pad = [i; 100];
                    std::future::ready(()).await;
                    pad[0]
                })
            })
            .collect();
        let (lo, hi) = (many.iter().map(|b| b.size()).min(), many.iter().map(|b| b.size()).max());
        assert_eq!(lo, hi);
        assert!(arena.chunks() >= 3, "a second class gets its own chunks");
        for b in many {
            arena.free(b);
        }
        arena.free(small);
        arena.free(big);
        arena.free(aligned);
        assert_eq!(arena.live(), 0);
    }

    #[test]
    fn a_dropped_arena_leaves_its_chunks_to_the_thread_up_to_the_limit() {
        SPARE.with(|s| drop(std::mem::replace(&mut *s.borrow_mut(), Spare(Vec::new()))));
        let arena = TaskArena::new();
        let boxes: Vec<TaskBox> = (0..5000).map(|i: u64| TaskBox::new(&arena, async move { i })).collect();
        let chunks = arena.chunks();
        assert!(chunks >= 2);
        for b in boxes {
            arena.free(b);
        }
        drop(arena);
        assert_eq!(SPARE.with(|s| s.borrow().0.len()), chunks);
        let again = TaskArena::new();
        let b = TaskBox::new(&again, async { 0u64 });
        assert_eq!(SPARE.with(|s| s.borrow().0.len()), chunks - 1, "a new loop takes a spare chunk first");
        again.free(b);
    }
}

/// The loop's paths give every block back: a task that ends in any way frees its block
/// through [`TaskArena::free`] once its slot goes, so a loop that runs tasks for ever keeps
/// only as many blocks as it has tasks alive (a missed path would hold a block per task until
/// the loop is dropped).
#[cfg(test)]
mod loop_tests {
    use crate::combinators::gather_tasks;
    use crate::{EventLoop, Task, sleep, yield_now};
    use std::time::Duration;

    fn blocks(lp: &EventLoop) -> usize {
        lp.handle().inner.arena.live()
    }

    #[test]
    fn every_way_a_task_ends_gives_its_block_back() {
        let lp = EventLoop::new_virtual();
        let h = lp.handle();
        let out = lp
            .run_until_complete(async move {
                // Joined: the value is read, the slot and the block go.
                let joined: Vec<Task<u64>> = (0..100).map(|i| h.spawn(async move { i })).collect();
                // Detached: the handle is dropped before the task runs, and after it finished.
                for i in 0..100u64 {
                    drop(h.spawn(async move { i }));
                }
                let early: Vec<Task<u64>> = (0..100).map(|i| h.spawn(async move { i })).collect();
                // Cancelled before the first step, and while waiting.
                let before: Vec<Task<()>> = (0..10).map(|_| h.spawn(async {})).collect();
                before.iter().for_each(|t| assert!(t.cancel()));
                let waiting: Vec<Task<()>> = (0..10).map(|_| h.spawn(sleep(Duration::from_secs(60)))).collect();
                // Panicking, read and unread.
                let panics: Vec<Task<()>> = (0..10).map(|_| h.spawn(async { panic!("on purpose") })).collect();
                // Children of a gather.
                let children: Vec<Task<u64>> = (0..10).map(|i| h.spawn(async move { i * 2 })).collect();
                yield_now().await;
                waiting.iter().for_each(|t| assert!(t.cancel()));
                drop(early);
                let mut sum = 0;
                for t in joined {
                    sum += t.await.unwrap();
                }
                for t in before.into_iter().chain(waiting) {
                    assert!(t.await.is_err());
                }
                for (i, t) in panics.into_iter().enumerate() {
                    if i % 2 == 0 {
                        assert!(t.await.is_err());
                    }
                }
                let doubled: u64 = gather_tasks(children).await.unwrap().into_iter().sum();
                sum + doubled
            })
            .unwrap();
        assert_eq!(out, 4950 + 90);
        assert_eq!(blocks(&lp), 0, "every task's block was freed");
    }

    #[test]
    fn a_loop_that_spawns_for_ever_reuses_its_blocks() {
        let lp = EventLoop::new_virtual();
        let h = lp.handle();
        lp.run_until_complete(async move {
            // (Smaller under Miri, which interprets every instruction.)
            let (rounds, batch) = if cfg!(miri) { (5, 300) } else { (50, 1000) };
            for round in 0..rounds {
                let batch: Vec<Task<u64>> = (0..batch).map(|i| h.spawn(async move { i + round })).collect();
                for t in batch {
                    t.await.unwrap();
                }
            }
        })
        .unwrap();
        let chunks = lp.handle().inner.arena.chunks();
        // 1,000 small boxes at a time (plus the main task's) fit in a chunk or two; 50 rounds
        // without reuse would have taken at least 50 (under Miri: one, and at least 5).
        assert!(chunks <= 2, "{chunks} chunks for 1,000 live tasks");
        assert_eq!(blocks(&lp), 0);
    }
}
