//! `TimerWheel`: a hierarchical timing wheel (Varghese & Lauck's scheme 7, laid out
//! as tokio's time driver), the default [`TimerQueue`].
//!
//! Time is cut into *ticks* of [`TICK_NS`] = 1 ms. The wheel has 8 *levels* of 64
//! *slots*; a slot of level `L` spans `64^L` ticks, so level 0 slots are 1 ms wide,
//! level 1 slots 64 ms, level 2 ~4 s, ... level 7 ~139 years, and 8 levels of 6 bits
//! cover every `u64` deadline (2^64 ns is about 2^44 ticks). `elapsed` is the tick
//! the wheel has processed up to. An entry with tick `t` goes to the level of the
//! highest 6-bit *digit* in which `t` and `elapsed` differ (`level_for`, tokio's
//! name), into the slot numbered by `t`'s digit at that level:
//!
//! ```text
//!  elapsed = 0b000001_000010_000011 ticks        digits:  L2=1  L1=2  L0=3
//!  t       = 0b000001_000101_100000              digits:  L2=1  L1=5  L0=32
//!  highest differing digit: L1  -> level 1, slot 5 (covers ticks 4416..4480)
//!
//!  L2 |  |##|  |  |...   one bit per slot in `occupied: u64`;
//!  L1 |  |  |  |  |  |##|...   each slot: a doubly-linked list through
//!  L0 |  |  |  |@@|##|  |...   slab indices, plus a cached min deadline
//!               ^ elapsed's slot at L0
//! ```
//!
//! When `elapsed` reaches the start of a level-1 slot, that slot is *cascaded*: its
//! entries are re-inserted with the new `elapsed`, landing in level 0 (or fired at
//! once if already due). We never step tick by tick: `occupied.rotate_right(cur)
//! .trailing_zeros()` finds the next occupied slot of a level in one instruction,
//! and `expire` jumps `elapsed` straight to it, so advancing years costs at most a
//! few cascades per level.
//!
//! The wheel only says *where to look*. Every entry keeps its exact nanosecond
//! deadline; `expire` checks `deadline <= now` entry by entry, and sorts what it hands
//! out by `(deadline, seq)`. `next_deadline` is exact too: by T8 the earliest entry is in
//! the first occupied slot of the lowest occupied level, and each slot caches its
//! minimum deadline.
//!
//! The slot of the current tick may hold entries due later in the same millisecond. They
//! wait in the *run* (T12), a binary heap of the current tick's entries by `(deadline,
//! seq)`, where the next `expire` finds the due ones on top. Put back on the slot's list
//! instead (as this wheel first did), they were all walked again by every `expire` until
//! the tick ended: on the virtual clock, which jumps from deadline to deadline, 200,000
//! timers spread over 200 ms (a thousand a tick) took 67,000 instructions a timer, against
//! 2,400 for the heap backend (callgrind; BENCHMARKS.md §1).
//!
//! ```text
//!   expire(now) in tick 5, now = 5 ms + 300 ns:
//!     run (min-heap, tick 5)       [5 ms+300]  [5 ms+700]  [5 ms+900] ...
//!        pop while deadline <= now ──►  out
//!     L0 slot 5 (arrivals since)   ──► due: out;  not due: pushed on the run
//! ```
//!
//! Costs: `insert` and `cancel` O(1) (bitmap, list link/unlink, min update; a cancel in
//! the run only removes the entry, the run drops its key when it reaches the top).
//! `next_deadline`: O(levels) bit scans and a look at the run's top, plus O(k) to rescan a
//! slot of k entries whose cached minimum was cancelled (the cache is then stale; one
//! rescan refreshes it). Pathological: cancelling a big slot's minimum before every
//! `next_deadline` costs O(k) each time. `expire`: O(due + cascaded + levels), the run's
//! O(log k) per entry of the current tick, plus the sort of the due batch, O(d log d).
//!
//! # asyncio equivalent
//! asyncio uses a binary heap (`TimerHeap` here): O(log n) push and pop, O(1) lazy
//! cancel whose memory asyncio reclaims by rebuilding the heap. The wheel unlinks
//! at once, so cancelled timers cost nothing later. tokio's wheel is the same shape
//! (6 levels, 1 ms), but rounds deadlines to ticks, wakes at slot starts to cascade,
//! and orders nothing inside a tick; we keep exact deadlines, an exact
//! `next_deadline` (T4) and `(deadline, seq)` order (T3).
//!
//! # Invariants
//! **T7** placement by `level_for`, **T8** lower levels are earlier and a level
//! above 0 never holds `elapsed`'s own slot, **T9** occupancy bits and slot minimum
//! caches, **T12** the current tick's run; plus the contract T2–T6 (see `mod.rs`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use crate::timer::store::{NIL, Store};
use crate::timer::{
    Cascade, Expired, LevelSnapshot, Nanos, Placement, SlotSnapshot, TimerKey, TimerQueue, TimerSnapshot, TimerStats,
    WheelSnapshot,
};

/// Length of one tick: 1 ms, as tokio and Linux at HZ=1000. Deadlines stay exact;
/// the tick only decides which slot an entry waits in.
pub const TICK_NS: Nanos = 1_000_000;

/// Bits of the tick number each level consumes: 6, so 64 slots per level.
const LEVEL_BITS: u32 = 6;

/// Slots per level: one `u64` occupancy bitmap covers them.
pub const SLOTS_PER_LEVEL: usize = 1 << LEVEL_BITS;

/// Levels: 8 x 6 = 48 bits of ticks >= the 45 bits `u64::MAX / TICK_NS` needs,
/// so no deadline overflows the top level (tokio needs 6 levels plus clamping).
pub const NUM_LEVELS: usize = 8;

/// The level an entry with tick `tick` belongs to when the wheel is at `elapsed`
/// (T7): the highest 6-bit digit in which the two differ. `| 63` maps "differ
/// only in digit 0" and "equal" to level 0. tokio: `wheel::level_for`.
#[inline]
fn level_for(elapsed: u64, tick: u64) -> usize {
    let masked = (elapsed ^ tick) | (SLOTS_PER_LEVEL as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / LEVEL_BITS) as usize
}

/// `tick`'s digit at `level`: the slot it occupies there (T7).
#[inline]
fn slot_for(tick: u64, level: usize) -> usize {
    ((tick >> (level as u32 * LEVEL_BITS)) & (SLOTS_PER_LEVEL as u64 - 1)) as usize
}

/// Ticks spanned by one slot of `level`: `64^level`.
#[inline]
fn slot_range(level: usize) -> u64 {
    1u64 << (level as u32 * LEVEL_BITS)
}

/// `Entry::level` of an entry waiting in the run (T12), in no slot list.
const IN_RUN: u8 = u8::MAX;

/// One timer inside the wheel, stored in the slab; `seq` lives in the store.
#[derive(Debug)]
struct Entry<T> {
    /// Exact deadline in ns: the wheel's slots are approximate, this is not (T2).
    deadline: Nanos,
    /// Previous entry in the slot's list, or [`NIL`] if this is the head.
    /// Indices, not pointers: the links are safe code and survive `Vec` growth.
    prev: u32,
    /// Next entry in the slot's list, or [`NIL`] at the tail.
    next: u32,
    /// The level whose slot list holds us, so `cancel` can unlink in O(1); [`IN_RUN`]
    /// while we wait in the run (T12).
    level: u8,
    /// The slot within that level.
    slot: u8,
    /// The caller's value, returned by `cancel` or handed out by `expire`.
    payload: T,
}

/// One slot: the head of a list of entries and its cached minimum (T9).
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// First entry of the list, or [`NIL`] when the slot is empty.
    head: u32,
    /// A lower bound of the list's earliest deadline, exact unless `stale` (T9).
    /// Meaningless while the slot is empty.
    min_deadline: Nanos,
    /// True when the entry holding `min_deadline` was cancelled and the list has
    /// not been rescanned since; `next_deadline` rescans lazily.
    stale: bool,
}

/// An empty slot.
const EMPTY_SLOT: Slot = Slot { head: NIL, min_deadline: 0, stale: false };

/// One level: 64 slots and a bitmap of the non-empty ones (T9).
#[derive(Clone, Copy, Debug)]
struct Level {
    /// Bit `s` set iff `slots[s]` is non-empty. tokio: `Level::occupied`.
    occupied: u64,
    /// The slots, indexed by digit.
    slots: [Slot; SLOTS_PER_LEVEL],
}

/// The hierarchical timing wheel. See the module docs; the default backend.
pub struct TimerWheel<T> {
    /// All entries, linked into slot lists by index; compacts itself (T6).
    store: Store<Entry<T>>,
    /// The levels, boxed: 8 x 64 slots is 8 KiB we do not want to move around
    /// whenever the wheel itself moves.
    levels: Box<[Level; NUM_LEVELS]>,
    /// The tick processed up to: every entry's tick is `>= elapsed` (T7).
    /// tokio: `Wheel::elapsed`.
    elapsed: u64,
    /// T12: entries of tick `elapsed` an `expire` found not yet due, earliest on top, as
    /// `(deadline, seq, index hint)`: a key (T5), so a cancelled entry is recognised.
    run: BinaryHeap<Reverse<(Nanos, u64, u32)>>,
    /// Slots cascaded so far (stats).
    cascades: u64,
    /// Entries taken out of cascaded slots so far (stats).
    cascaded_entries: u64,
    /// Whether to record cascades into `recorded` (off: one branch per cascade).
    recording: bool,
    /// Recorded cascades, oldest first, until `drain_cascades`.
    recorded: Vec<Cascade>,
}

impl<T> fmt::Debug for TimerWheel<T> {
    /// Counters only, so `T` need not be `Debug`; use `snapshot()` for the layout.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel").field("elapsed", &self.elapsed).field("stats", &self.stats()).finish()
    }
}

impl<T> Default for TimerWheel<T> {
    /// Same as [`TimerWheel::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerWheel<T> {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        TimerWheel {
            store: Store::new(),
            levels: Box::new([Level { occupied: 0, slots: [EMPTY_SLOT; SLOTS_PER_LEVEL] }; NUM_LEVELS]),
            elapsed: 0,
            run: BinaryHeap::new(),
            cascades: 0,
            cascaded_entries: 0,
            recording: false,
            recorded: Vec::new(),
        }
    }

    /// The tick the wheel has processed up to (`now / TICK_NS` of the last expire).
    pub fn elapsed_tick(&self) -> u64 {
        self.elapsed
    }

    /// Pushes entry `index` onto the front of the slot its tick belongs to (T7),
    /// updating the bitmap and the slot minimum (T9). O(1).
    #[inline]
    fn link(&mut self, index: u32) {
        let deadline = self.store.get(index).deadline;
        // Past deadlines wait in elapsed's own slot at level 0 (T7).
        let tick = (deadline / TICK_NS).max(self.elapsed);
        let level = level_for(self.elapsed, tick);
        let slot = slot_for(tick, level);
        let lvl = &mut self.levels[level];
        let s = &mut lvl.slots[slot];
        let old_head = s.head;
        if old_head == NIL {
            lvl.occupied |= 1 << slot;
            *s = Slot { head: index, min_deadline: deadline, stale: false };
        } else {
            s.head = index;
            // The cache is a lower bound (T9): a smaller deadline is the true min.
            if deadline <= s.min_deadline {
                s.min_deadline = deadline;
                s.stale = false;
            }
            self.store.get_mut(old_head).prev = index;
        }
        let e = self.store.get_mut(index);
        e.prev = NIL;
        e.next = old_head;
        e.level = level as u8;
        e.slot = slot as u8;
    }

    /// Removes entry `index` from its slot list, keeping T9. O(1).
    #[inline]
    fn unlink(&mut self, index: u32) {
        let e = self.store.get(index);
        let (prev, next, deadline) = (e.prev, e.next, e.deadline);
        let (level, slot) = (e.level as usize, e.slot as usize);
        if next != NIL {
            self.store.get_mut(next).prev = prev;
        }
        if prev != NIL {
            self.store.get_mut(prev).next = next;
        }
        let lvl = &mut self.levels[level];
        let s = &mut lvl.slots[slot];
        if prev == NIL {
            s.head = next;
        }
        if s.head == NIL {
            lvl.occupied &= !(1 << slot);
        } else if deadline <= s.min_deadline {
            // We held the minimum; the next one is unknown until a rescan (T9).
            s.stale = true;
        }
    }

    /// Detaches slot `(level, slot)`'s whole list and returns its head; the slot is
    /// left empty and its bit cleared (T9).
    #[inline]
    fn take_slot(&mut self, level: usize, slot: usize) -> u32 {
        let lvl = &mut self.levels[level];
        lvl.occupied &= !(1 << slot);
        std::mem::replace(&mut lvl.slots[slot], EMPTY_SLOT).head
    }

    /// The first occupied slot of the lowest occupied level, with the tick its span
    /// starts at. By T8 it holds the earliest entry of the wheel.
    #[inline]
    fn next_occupied(&self) -> Option<(usize, usize, u64)> {
        for (level, lvl) in self.levels.iter().enumerate() {
            if lvl.occupied == 0 {
                continue;
            }
            let cur = slot_for(self.elapsed, level);
            // tokio's trick: rotate elapsed's slot to bit 0, count zeros to the next.
            let distance = lvl.occupied.rotate_right(cur as u32).trailing_zeros() as usize;
            let slot = (cur + distance) % SLOTS_PER_LEVEL;
            let level_start = self.elapsed & !(slot_range(level + 1).wrapping_sub(1));
            let start = level_start + slot as u64 * slot_range(level);
            debug_assert!(
                slot >= cur && (level == 0 || slot > cur),
                "T8: level {level} slot {slot} is behind elapsed's slot {cur}"
            );
            return Some((level, slot, start));
        }
        None
    }

    /// The exact minimum deadline of a non-empty slot, rescanning its list if the
    /// cache is stale (T9). O(1), or O(k) for a stale slot of k entries.
    fn slot_min(&mut self, level: usize, slot: usize) -> Nanos {
        let s = self.levels[level].slots[slot];
        if !s.stale {
            return s.min_deadline;
        }
        let mut min = Nanos::MAX;
        let mut index = s.head;
        while index != NIL {
            let e = self.store.get(index);
            min = min.min(e.deadline);
            index = e.next;
        }
        let s = &mut self.levels[level].slots[slot];
        s.min_deadline = min;
        s.stale = false;
        min
    }

    /// T12: entry `index` (detached from its slot) waits in the run.
    #[inline]
    fn push_run(&mut self, index: u32) {
        let seq = self.store.seq(index);
        let e = self.store.get_mut(index);
        (e.level, e.prev, e.next) = (IN_RUN, NIL, NIL);
        self.run.push(Reverse((e.deadline, seq, index)));
    }

    /// The live entry a run item names, if it was not cancelled meanwhile (T5).
    #[inline]
    fn run_entry(&self, seq: u64, hint: u32) -> Option<u32> {
        self.store.find(TimerKey { index: hint, seq })
    }

    /// The run's earliest live deadline, dropping cancelled items from its top (T12).
    fn run_min(&mut self) -> Option<Nanos> {
        while let Some(&Reverse((deadline, seq, hint))) = self.run.peek() {
            if self.run_entry(seq, hint).is_some() {
                return Some(deadline);
            }
            self.run.pop();
        }
        None
    }

    /// Fires the run's entries due by `now`, earliest first (T12).
    fn drain_run(&mut self, now: Nanos, out: &mut Vec<Expired<T>>) {
        while let Some(&Reverse((deadline, seq, hint))) = self.run.peek() {
            if deadline > now {
                break;
            }
            self.run.pop();
            if let Some(index) = self.run_entry(seq, hint) {
                self.fire(index, out);
            }
        }
    }

    /// Removes entry `index` (already unlinked or detached) and appends it to `out`.
    #[inline]
    fn fire(&mut self, index: u32, out: &mut Vec<Expired<T>>) {
        let (seq, e) = self.store.remove(index);
        out.push(Expired { deadline: e.deadline, seq, payload: e.payload });
    }

    /// T6: compacts the slab if it is mostly empty, then rewrites every list link
    /// and slot head through the returned index table.
    fn maybe_compact(&mut self) {
        if !self.store.should_compact() {
            return;
        }
        let remap = self.store.compact();
        let fix = |i: u32| if i == NIL { NIL } else { remap[i as usize] };
        for (_, e) in self.store.iter_mut() {
            e.prev = fix(e.prev);
            e.next = fix(e.next);
        }
        for lvl in self.levels.iter_mut() {
            for s in lvl.slots.iter_mut() {
                s.head = fix(s.head);
            }
        }
    }
}

impl<T> TimerQueue<T> for TimerWheel<T> {
    /// O(1): one slab insert, one list push, one bit set (T7, T9).
    fn insert(&mut self, deadline: Nanos, seq: u64, payload: T) -> TimerKey {
        let key = self.store.insert(seq, Entry { deadline, prev: NIL, next: NIL, level: 0, slot: 0, payload });
        self.link(key.index);
        key
    }

    /// O(1): unlink from the slot list, remove from the slab (T5). Compaction waits for the
    /// clean-up points, `next_deadline` and `expire`, where the heap cleans up too (T6): a
    /// mass cancel then moves the survivors once, not at every quarter. The last cancel
    /// releases an emptied slab at once.
    fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let index = self.store.find(key)?;
        // In the run (T12) it is in no list; the run drops the key when it reaches it.
        if self.store.get(index).level != IN_RUN {
            self.unlink(index);
        }
        let (_, e) = self.store.remove(index);
        if self.store.len() == 0 {
            // Nothing live: the run holds only stale keys, and the slab nothing to move.
            self.run.clear();
            self.store.release();
        }
        Some(e.payload)
    }

    /// Exact (T4): by T8 the earliest entry is in the first occupied slot of the
    /// lowest occupied level; its cached minimum (rescanned if stale) is the answer.
    /// No cascade is needed, so the loop never wakes only to re-bucket.
    fn next_deadline(&mut self) -> Option<Nanos> {
        self.maybe_compact(); // a clean-up point (T6)
        let run = if self.run.is_empty() { None } else { self.run_min() };
        let slots = self.next_occupied().map(|(level, slot, _)| self.slot_min(level, slot));
        match (run, slots) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Jumps `elapsed` from occupied slot to occupied slot up to `now`'s tick,
    /// cascading higher slots and firing level-0 entries with `deadline <= now`
    /// (T2), then sorts the batch by `(deadline, seq)` (T3).
    fn expire(&mut self, now: Nanos, out: &mut Vec<Expired<T>>) {
        // The wheel's clock never runs backwards (T7), but `now` is still what
        // decides dueness, so a backwards `now` just fires less.
        let now_tick = (now / TICK_NS).max(self.elapsed);
        let first_out = out.len();
        // The current tick's run first (T12): when `now` is past its tick, all of it.
        if !self.run.is_empty() {
            self.drain_run(now, out);
        }
        // Phase 1: visit occupied slots in time order (T8) while they start by now.
        while let Some((level, slot, start)) = self.next_occupied() {
            if start > now_tick {
                break; // Everything left is in later ticks: not due (T2).
            }
            // Jump, never step: empty time in between costs nothing.
            self.elapsed = start;
            let mut index = self.take_slot(level, slot);
            if level == 0 {
                // Phase 2: a level-0 slot is one tick. Fire the due entries; the
                // rest (now's tick, later ns) wait in the run (T12). A slot of an
                // earlier tick holds only due entries.
                while index != NIL {
                    let e = self.store.get(index);
                    let (next, deadline) = (e.next, e.deadline);
                    if deadline <= now {
                        self.fire(index, out);
                    } else {
                        self.push_run(index);
                    }
                    index = next;
                }
                if start == now_tick {
                    // That was now's own tick; all else is later (T8). Stop here,
                    // or we would find this slot again forever.
                    break;
                }
            } else {
                // Phase 3: cascade. Re-bucket each entry relative to the new
                // `elapsed` (T7); entries already due skip the trip down.
                let mut moved = 0;
                while index != NIL {
                    let e = self.store.get(index);
                    let (next, deadline) = (e.next, e.deadline);
                    if deadline <= now {
                        self.fire(index, out);
                    } else {
                        self.link(index);
                        debug_assert!(
                            (self.store.get(index).level as usize) < level,
                            "T8: cascade from level {level} must go down"
                        );
                    }
                    moved += 1;
                    index = next;
                }
                self.cascades += 1;
                self.cascaded_entries += moved as u64;
                if self.recording {
                    self.recorded.push(Cascade { level: level as u8, slot: slot as u8, moved });
                }
            }
        }
        // Every slot starting by now_tick is processed, so moving the clock keeps
        // each entry's level (T7: shown in the tests by the model comparison).
        self.elapsed = now_tick;
        // Phase 4: the wheel found the batch; `(deadline, seq)` orders it (T3).
        // seqs are unique (T1), so an unstable sort is deterministic.
        out[first_out..].sort_unstable_by_key(|x| (x.deadline, x.seq));
        self.maybe_compact();
    }

    fn len(&self) -> usize {
        self.store.len()
    }

    /// O(1): the entry records its own level and slot.
    fn placement(&self, key: TimerKey) -> Option<Placement> {
        let e = self.store.get(self.store.find(key)?);
        // An entry in the run (T12) belongs to level 0's slot of its tick.
        let level = if e.level == IN_RUN { 0 } else { e.level };
        Some(Placement::Wheel { level, slot: e.slot })
    }

    fn stats(&self) -> TimerStats {
        TimerStats {
            live: self.store.len(),
            cascades: self.cascades,
            cascaded_entries: self.cascaded_entries,
            compactions: self.store.compactions(),
            cancelled_in_heap: 0,
            capacity: self.store.capacity(),
        }
    }

    fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    fn drain_cascades(&mut self, out: &mut Vec<Cascade>) {
        out.append(&mut self.recorded);
    }

    /// O(live): walks every occupied slot's list for its count and exact minimum. The
    /// run's live entries (T12) are shown in level 0's slot of `elapsed`, where they were.
    fn snapshot(&self) -> TimerSnapshot {
        let mut levels: Vec<LevelSnapshot> = (0..NUM_LEVELS)
            .map(|level| {
                let lvl = &self.levels[level];
                let slots = (0..SLOTS_PER_LEVEL)
                    .filter(|s| lvl.occupied & (1 << s) != 0)
                    .map(|s| {
                        let (mut entries, mut earliest) = (0, Nanos::MAX);
                        let mut index = lvl.slots[s].head;
                        while index != NIL {
                            let e = self.store.get(index);
                            entries += 1;
                            earliest = earliest.min(e.deadline);
                            index = e.next;
                        }
                        SlotSnapshot { slot: s as u8, entries, earliest }
                    })
                    .collect();
                LevelSnapshot { level: level as u8, slots }
            })
            .collect();
        let live = self.run.iter().filter(|r| self.run_entry(r.0.1, r.0.2).is_some());
        let (entries, earliest) = live.fold((0, Nanos::MAX), |(n, min), r| (n + 1, min.min(r.0.0)));
        if entries > 0 {
            let here = slot_for(self.elapsed, 0) as u8;
            let l0 = &mut levels[0].slots;
            match l0.iter_mut().find(|s| s.slot == here) {
                Some(s) => (s.entries, s.earliest) = (s.entries + entries, s.earliest.min(earliest)),
                None => {
                    l0.push(SlotSnapshot { slot: here, entries, earliest });
                    l0.sort_by_key(|s| s.slot);
                }
            }
        }
        TimerSnapshot::Wheel(WheelSnapshot { elapsed_tick: self.elapsed, levels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds to ns.
    fn ms(n: u64) -> Nanos {
        n * TICK_NS
    }

    /// Boundary sweep, as tokio's `test_level_for`: at every level, the first and
    /// last tick of each digit's range land on that level, from several `elapsed`.
    #[test]
    fn level_for_boundaries() {
        for elapsed in [0u64, 1, 63, 64, 4095, 123_456_789] {
            assert_eq!(level_for(elapsed, elapsed), 0, "equal ticks are level 0");
            for level in 0..NUM_LEVELS {
                let shift = level as u32 * LEVEL_BITS;
                // Flip the lowest and the highest bit of this level's digit.
                for bit in [shift, shift + LEVEL_BITS - 1] {
                    let tick = elapsed ^ (1u64 << bit);
                    assert_eq!(level_for(elapsed, tick), level, "elapsed {elapsed} bit {bit}");
                }
            }
        }
        // Every u64 ns deadline fits (no top-level overflow list needed).
        assert_eq!(level_for(0, u64::MAX / TICK_NS), NUM_LEVELS - 1);
        // Slot ranges: 63 is the last tick of level 0, 64 the first of level 1.
        assert_eq!((level_for(0, 63), slot_for(63, 0)), (0, 63));
        assert_eq!((level_for(0, 64), slot_for(64, 1)), (1, 1));
        assert_eq!((level_for(0, 4095), slot_for(4095, 1)), (1, 63));
        assert_eq!((level_for(0, 4096), slot_for(4096, 2)), (2, 1));
    }

    /// T7 via `placement`: sub-ms, ms, and far deadlines land where the docs say.
    #[test]
    fn placement_matches_level_for() {
        let mut w = TimerWheel::new();
        let cases = [
            (0, 0, 0),            // due now: level 0, slot 0
            (999_999, 0, 0),      // sub-ms: still tick 0
            (ms(1), 0, 1),        // tick 1
            (ms(63) + 5, 0, 63),  // last tick of level 0
            (ms(64), 1, 1),       // first tick of level 1
            (ms(200), 1, 3),      // 200 ms: 64-ms slot 3
            (ms(4096 * 3), 2, 3), // ~12 s
            (u64::MAX, 7, slot_for(u64::MAX / TICK_NS, 7) as u8),
        ];
        for (seq, &(deadline, level, slot)) in cases.iter().enumerate() {
            let key = w.insert(deadline, seq as u64, ());
            assert_eq!(w.placement(key), Some(Placement::Wheel { level, slot }), "{deadline}");
        }
    }

    /// Entries in now's tick with a later ns stay (T2); a jump of centuries costs
    /// only a handful of cascades, and next_deadline is exact all along (T4).
    #[test]
    fn sub_ms_stays_and_long_jumps_are_cheap() {
        let mut w = TimerWheel::new();
        let mut out = Vec::new();
        w.insert(ms(5) + 700, 0, "late in tick 5");
        w.insert(ms(5) + 300, 1, "early in tick 5");
        let far = 200 * 365 * 24 * 3600 * 1_000_000_000u64; // ~200 years
        w.insert(far, 2, "far");
        assert_eq!(w.next_deadline(), Some(ms(5) + 300));
        w.expire(ms(5) + 500, &mut out);
        assert_eq!(out.iter().map(|e| e.payload).collect::<Vec<_>>(), ["early in tick 5"]);
        assert_eq!(w.next_deadline(), Some(ms(5) + 700), "T4: exact, same tick");
        w.expire(ms(5) + 700, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(w.next_deadline(), Some(far), "T4: exact across levels");
        w.set_recording(true);
        w.expire(far - 1, &mut out);
        assert_eq!(out.len(), 2, "T2: not early");
        w.expire(far, &mut out);
        assert_eq!(out[2].payload, "far");
        let mut cascades = Vec::new();
        w.drain_cascades(&mut cascades);
        // One cascade per level at most between here and there.
        assert!(!cascades.is_empty() && cascades.len() <= NUM_LEVELS, "{cascades:?}");
        assert_eq!(w.stats().cascades as usize, cascades.len());
    }

    /// T12: a tick of many entries fired one deadline at a time, as the virtual clock does:
    /// each `expire` hands out exactly the due entries in order, cancels and arrivals in
    /// the current tick are honoured, the snapshot and `placement` still show the waiting
    /// entries in level 0's slot, and compaction (which moves entries the run names by key)
    /// loses none.
    #[test]
    fn a_busy_tick_is_fired_from_the_run() {
        let mut w = TimerWheel::new();
        let base = ms(5);
        // 6,000 distinct deadlines in tick 5, inserted in a scrambled order (600 under
        // Miri, which interprets every step: this file has no unsafe code, and the store's
        // compaction is checked by its own tests there).
        let n = if cfg!(miri) { 600 } else { 6000u64 };
        let mut keys = Vec::new();
        for i in 0..n {
            let j = (i * 7919) % n; // a permutation of 0..n
            keys.push((j, w.insert(base + 1 + j * 100, i, j)));
        }
        let mut out = Vec::new();
        w.expire(base, &mut out);
        assert!(out.is_empty());
        assert_eq!(w.next_deadline(), Some(base + 1));
        // The first expire inside the tick fires one and puts the rest in the run.
        w.expire(base + 1, &mut out);
        assert_eq!(out.iter().map(|e| e.payload).collect::<Vec<_>>(), [0]);
        assert!(w.run.len() == (n - 1) as usize, "the rest wait in the run");
        let TimerSnapshot::Wheel(snap) = w.snapshot() else { unreachable!() };
        assert_eq!(snap.levels[0].slots.iter().map(|s| (s.slot, s.entries)).collect::<Vec<_>>(), [(5, n as usize - 1)]);
        assert_eq!(
            w.placement(keys.iter().find(|k| k.0 == 1).unwrap().1),
            Some(Placement::Wheel { level: 0, slot: 5 })
        );
        // Cancel three quarters of what waits (enough to compact the store, T6), among
        // them the next one due.
        let mut cancelled = 0;
        for &(j, key) in &keys {
            if (j % 4 != 0 || j == 1) && w.cancel(key).is_some() {
                cancelled += 1;
            }
        }
        assert_eq!(w.len(), (n - 1) as usize - cancelled);
        // An arrival in the current tick, earlier than everything left.
        w.insert(base + 2, n, 99_999);
        assert_eq!(w.next_deadline(), Some(base + 2));
        if !cfg!(miri) {
            // next_deadline is a clean-up point (T6).
            assert!(w.stats().compactions > 0, "the store compacted while the run named its entries");
        }
        // Fire the rest one deadline at a time.
        out.clear();
        let mut fired = Vec::new();
        while let Some(d) = w.next_deadline() {
            w.expire(d, &mut out);
            assert!(out.iter().all(|e| e.deadline == d), "T2: only what is due at {d}");
            fired.extend(out.drain(..).map(|e| e.payload));
        }
        let mut expected: Vec<u64> = (4..n).step_by(4).collect();
        expected.insert(0, 99_999);
        assert_eq!(fired, expected, "T3: in deadline order, nothing cancelled, nothing lost");
        assert!(w.run.is_empty() && w.is_empty());
    }

    /// T9: cancelling a slot's minimum makes next_deadline rescan, not lie.
    #[test]
    fn stale_minimum_is_rescanned() {
        let mut w = TimerWheel::new();
        let a = w.insert(ms(100) + 1, 0, ());
        w.insert(ms(100) + 9, 1, ());
        w.insert(ms(101), 2, ());
        assert_eq!(w.next_deadline(), Some(ms(100) + 1));
        w.cancel(a);
        assert_eq!(w.next_deadline(), Some(ms(100) + 9));
    }

    /// A recorded cascade, and a snapshot pinned as the walkthrough shows it.
    #[test]
    fn cascade_record_and_snapshot() {
        let mut w = TimerWheel::new();
        w.set_recording(true);
        w.insert(ms(3), 0, ());
        w.insert(ms(70), 1, ());
        w.insert(ms(71), 2, ());
        w.insert(ms(200) + 5, 3, ());
        let text = w.snapshot().to_string();
        assert_eq!(
            text,
            "wheel elapsed=0 tick\n\
             L0 [3: 1 @3.000000ms]\n\
             L1 [1: 2 @70.000000ms, 3: 1 @200.000005ms]\n\
             L2 -\nL3 -\nL4 -\nL5 -\nL6 -\nL7 -"
        );
        let mut out = Vec::new();
        w.expire(ms(70), &mut out);
        assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1]);
        let mut cascades = Vec::new();
        w.drain_cascades(&mut cascades);
        assert_eq!(cascades, [Cascade { level: 1, slot: 1, moved: 2 }]);
        assert_eq!(w.stats().cascaded_entries, 2);
    }
}
