//! Timers: the loop's list of "call this later" entries, and how it finds the due ones.
//!
//! A *timer* is a payload (for the loop: a callback handle) plus a *deadline*, an
//! integer count of nanoseconds since the loop started ([`Nanos`]), plus a *seq*,
//! the loop's scheduling counter at the moment the timer was made. A timer is
//! *due* at time `now` when `deadline <= now`, and *live* until it is handed out
//! (it *fires*) or cancelled. A [`TimerQueue`] holds the live timers; the loop asks
//! it two questions per iteration: "how long may I sleep?" ([`TimerQueue::next_deadline`])
//! and "which timers are due now?" ([`TimerQueue::expire`]).
//!
//! Two backends answer them, built to the same contract:
//!
//! ```text
//!  call_at(deadline, cb)                                   run_once
//!        |  seq = loop counter                     phase 1   |   phase 3
//!        v                                         timeout   |   due timers
//!  +--------------------------------------+  next_deadline() | expire(now, out)
//!  | TimerQueue<T>                        | <----------------+---------+
//!  |  TimerWheel (default): 8 levels x 64 |                            |
//!  |    slots, 1 ms tick, O(1) insert and |   out: Vec<Expired<T>> ----+--> ready
//!  |    cancel, cascades on the way down  |   sorted by (deadline, seq)
//!  |  TimerHeap: asyncio's _scheduled     |
//!  |    binary heap, lazy cancellation    |
//!  +--------------------------------------+
//!        ^ both keep entries in store.rs: a slab + forwarding map
//! ```
//!
//! The wheel (`wheel.rs`) is a hierarchical timing wheel after Varghese & Lauck
//! (scheme 7), laid out as tokio's time driver lays it out; the heap (`heap.rs`) is
//! asyncio's `BaseEventLoop._scheduled`, sift for sift. Both keep their entries in a
//! [`slab::Slab`] wrapped by `store.rs`, which hands out [`TimerKey`]s and compacts
//! the slab when most of it is empty, so memory follows the *live* timers.
//!
//! # asyncio equivalent
//! `loop.call_at(when, cb)` pushes a `TimerHandle` onto the `_scheduled` heap;
//! `TimerHandle.cancel()` only flags it; `BaseEventLoop._run_once` purges flagged
//! handles, computes the `select` timeout from `_scheduled[0]._when`, then pops every
//! handle with `_when < time() + _clock_resolution` onto `_ready`. Where we differ:
//! - Time is integer nanoseconds, not float seconds, so "due" is exactly
//!   `deadline <= now` (asyncio's `_when < now + 1e-9` is the same test).
//! - asyncio's `TimerHandle.__lt__` compares `_when` only, so equal deadlines come
//!   out in heap-shape order (10 equal `call_at`s ran as `0,2,6,5,9,8,7,1,3,4` on
//!   CPython 3.11.7). looplab promises `(deadline, seq)` order instead (**T3**), which
//!   is stricter than asyncio, tokio, trio or Linux. `TimerHeap` with
//!   [`TieOrder::Asyncio`] reproduces asyncio's order bit for bit, for comparison.
//! - asyncio's timeout can only be as early as the heap top; ours is the same
//!   (**T4**): the wheel never reports a slot start, unlike tokio, so the loop never
//!   wakes just to cascade.
//!
//! # Invariants
//! Contract (both backends; tested against a `BTreeMap` model in this file):
//! - **T1** `seq` is unique per queue and is the caller's duty (the loop's counter).
//!   Keys and ordering rely on it; we do not check it.
//! - **T2** Never early, never lost: `expire(now)` hands out exactly the live timers
//!   with `deadline <= now`, each once; cancelled timers are never handed out.
//! - **T3** One `expire` call appends its timers in `(deadline, seq)` order
//!   (`TimerHeap` in [`TieOrder::Asyncio`] mode: in `heapq.heappop` order instead).
//! - **T4** `next_deadline()` is the *exact* earliest live deadline, `None` if empty.
//! - **T5** A [`TimerKey`] finds its timer while the timer is live, across slab
//!   compactions; once the timer fired or was cancelled the key finds nothing, even
//!   when its slab index now holds another timer (the seq differs, by T1).
//! - **T6** Memory follows live timers: at each clean-up point (`next_deadline` and
//!   `expire`, asyncio's clean-up in `_run_once`), if the slab has at least 4096 slots and
//!   fewer than a quarter are used, it is compacted; a slab emptied by a removal is
//!   released at once; the forwarding map holds only live timers that compaction moved.
//!
//! Wheel (`wheel.rs`):
//! - **T7** Every entry's tick (`deadline / TICK_NS`, raised to `elapsed` if already
//!   past) is `>= elapsed`; it sits at level `level_for(elapsed, tick)`, in the slot
//!   numbered by its tick's 6-bit digit at that level.
//! - **T8** Every entry of a lower level is earlier than every entry of a higher
//!   level, and a level above 0 never has an entry in the slot `elapsed` is in. So
//!   the first occupied slot of the lowest occupied level holds the earliest timer.
//! - **T9** A level's `occupied` bit is set iff its slot list is non-empty; a slot's
//!   cached minimum is `<=` the true minimum of its list, and equal unless `stale`.
//! - **T12** An entry that an `expire` found in `elapsed`'s own level-0 slot but not yet
//!   due waits in the *run*, a min-heap by `(deadline, seq)`, instead of going back on the
//!   slot's list; every live entry of the run is of tick `elapsed`, and is in no slot
//!   list. A cancelled one stays in the run until popped, recognised by its key (T5).
//!
//! Heap (`heap.rs`):
//! - **T10** `heap` satisfies the heap property for the mode's `<`; `heap[0]` is the
//!   minimum. In Asyncio mode every sift is CPython's `heapq`, so order matches it.
//! - **T11** A cancelled entry has no payload (it went back to the caller) and stays
//!   in the heap until purged; `cancelled` counts exactly those entries.
//!
//! # In production
//! tokio rounds deadlines up to 1 ms ticks and wakes at slot starts; Linux stopped
//! cascading in 2016 and accepts 12.5 % lateness on high levels. We keep exact
//! nanosecond deadlines and let the wheel only say *where to look*.

mod heap;
mod store;
mod wheel;

pub use heap::{TieOrder, TimerHeap};
pub use wheel::{NUM_LEVELS, SLOTS_PER_LEVEL, TICK_NS, TimerWheel};

use std::fmt;

/// A point in loop time: nanoseconds since the loop started. asyncio: `loop.time()`,
/// a float in seconds; an integer here so deadlines compare exactly (T2).
pub type Nanos = u64;

/// Opaque handle to a scheduled timer. Holds an index hint plus the timer's seq;
/// stays valid across compaction (T5).
///
/// Looking a key up is O(1): `slab[index].seq == seq` is checked first; only if the
/// entry was moved by compaction do we consult the forwarding map (`store.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    /// Where the entry was when the key was made. A *hint*: compaction may move the
    /// entry, and the index may since hold another timer. `u32` keeps keys small;
    /// `store.rs` refuses more than `u32::MAX - 1` live timers.
    index: u32,
    /// The timer's seq (T1): what really identifies it, because seqs are never reused.
    seq: u64,
}

impl TimerKey {
    /// The index hint, so an owner that already stores the seq can keep just this (4 bytes).
    pub(crate) fn index_hint(&self) -> u32 {
        self.index
    }

    /// Rebuild a key from its index hint and seq (the inverse of the two accessors).
    pub(crate) fn from_parts(index: u32, seq: u64) -> TimerKey {
        TimerKey { index, seq }
    }

    /// The seq the timer was inserted with (the loop's scheduling counter).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// One timer handed out by [`TimerQueue::expire`]. asyncio: the `TimerHandle` that
/// `_run_once` pops and appends to `_ready`.
#[derive(Debug)]
pub struct Expired<T> {
    /// The exact deadline the timer was inserted with (never later than `now`, T2).
    pub deadline: Nanos,
    /// The timer's seq, the tie-breaker of T3.
    pub seq: u64,
    /// What the caller stored: for the loop, the callback handle.
    pub payload: T,
}

/// Where a timer sits, for the event log and the learner's walkthrough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In the wheel: `level` 0..8 (slot width `64^level` ticks), `slot` 0..64.
    Wheel {
        /// Level: 0 is the finest (1 ms slots), 7 the coarsest.
        level: u8,
        /// Slot within the level: the tick's 6-bit digit at that level.
        slot: u8,
    },
    /// In the heap: the position in the heap array (0 is the top).
    Heap {
        /// Position in the heap array; moves with every push and pop.
        index: usize,
    },
}

/// Counters for the inspector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerStats {
    /// Live timers: inserted, not yet fired or cancelled.
    pub live: usize,
    /// Wheel: higher-level slots emptied downward so far (always 0 for the heap).
    pub cascades: u64,
    /// Wheel: entries taken out of those slots (re-bucketed lower, or handed out).
    pub cascaded_entries: u64,
    /// Storage shrinks so far: slab compactions (T6), plus, for the heap, rebuilds by
    /// asyncio's "more than 100 and more than half cancelled" rule.
    pub compactions: u64,
    /// Heap: cancelled entries still in the heap (T11). Always 0 for the wheel,
    /// which unlinks eagerly.
    pub cancelled_in_heap: usize,
    /// Slots the slab has allocated: the memory T6 bounds.
    pub capacity: usize,
}

/// A cascade that happened inside expire()/next_deadline(), recorded only when
/// recording is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cascade {
    /// The level the slot was on (1..8; level 0 slots fire, they never cascade).
    pub level: u8,
    /// The slot that was emptied.
    pub slot: u8,
    /// How many entries left the slot: re-bucketed into lower levels, or handed
    /// out directly when already due.
    pub moved: usize,
}

/// The timer queue's contract: see the module docs, invariants T1–T6.
pub trait TimerQueue<T> {
    /// Schedules `payload` at `deadline` with the loop's counter `seq` (T1).
    /// asyncio: `call_at`. O(1) for the wheel, O(log n) for the heap.
    fn insert(&mut self, deadline: Nanos, seq: u64, payload: T) -> TimerKey;
    /// Cancels a live timer and gives its payload back; `None` if it already fired,
    /// was cancelled, or is unknown (T5). asyncio: `TimerHandle.cancel()`. O(1).
    fn cancel(&mut self, key: TimerKey) -> Option<T>;
    /// The exact earliest live deadline (T4), `None` if no timer is live. Takes
    /// `&mut self` because it may refresh caches or purge cancelled entries.
    fn next_deadline(&mut self) -> Option<Nanos>;
    /// Appends every live timer with `deadline <= now` to `out` (T2), in
    /// `(deadline, seq)` order (T3; heap in Asyncio mode: heappop order).
    fn expire(&mut self, now: Nanos, out: &mut Vec<Expired<T>>);
    /// Number of live timers.
    fn len(&self) -> usize;
    /// True when no timer is live.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Where a live timer sits; `None` if the key is stale.
    fn placement(&self, key: TimerKey) -> Option<Placement>;
    /// Counters for the inspector.
    fn stats(&self) -> TimerStats;
    /// When on, cascades are recorded for [`TimerQueue::drain_cascades`].
    fn set_recording(&mut self, on: bool);
    /// Moves the recorded cascades, oldest first, into `out`.
    fn drain_cascades(&mut self, out: &mut Vec<Cascade>);
    /// A deterministic picture of the structure, for the walkthrough.
    fn snapshot(&self) -> TimerSnapshot;
}

/// A picture of a timer queue for the walkthrough: plain data, ids not addresses,
/// so golden tests can pin it. `Display` gives one line per level (or one for a heap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimerSnapshot {
    /// A [`TimerWheel`].
    Wheel(WheelSnapshot),
    /// A [`TimerHeap`].
    Heap(HeapSnapshot),
}

/// The wheel's state: its clock and the occupied slots of every level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WheelSnapshot {
    /// The wheel's current tick (`elapsed`, in units of [`TICK_NS`]).
    pub elapsed_tick: u64,
    /// All [`NUM_LEVELS`] levels, level 0 first.
    pub levels: Vec<LevelSnapshot>,
}

/// One wheel level: its occupied slots in ascending slot number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelSnapshot {
    /// The level number, 0..8.
    pub level: u8,
    /// Occupied slots only, ascending by `slot`.
    pub slots: Vec<SlotSnapshot>,
}

/// One occupied wheel slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotSnapshot {
    /// Slot number, 0..64.
    pub slot: u8,
    /// Entries in the slot's list.
    pub entries: usize,
    /// The earliest exact deadline among them.
    pub earliest: Nanos,
}

/// The heap's state, as asyncio would show `_scheduled`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapSnapshot {
    /// Entries in the heap array, cancelled ones included (asyncio: `len(_scheduled)`).
    pub len: usize,
    /// Cancelled entries still in it (asyncio: `_timer_cancelled_count`).
    pub cancelled: usize,
    /// The first few `(deadline, seq)` in heap-array order (position 0 first).
    pub top: Vec<(Nanos, u64)>,
}

/// Writes nanoseconds as milliseconds with 6 decimals, e.g. `12.300000ms`.
fn write_ms(f: &mut fmt::Formatter<'_>, ns: Nanos) -> fmt::Result {
    write!(f, "{}.{:06}ms", ns / 1_000_000, ns % 1_000_000)
}

impl fmt::Display for TimerSnapshot {
    /// One header line, then one line per wheel level (`-` when empty), e.g.
    /// `L1 [3: 5 @200.000000ms]` = slot 3 holds 5 entries, earliest at 200 ms.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimerSnapshot::Wheel(w) => {
                write!(f, "wheel elapsed={} tick", w.elapsed_tick)?;
                for level in &w.levels {
                    write!(f, "\nL{} ", level.level)?;
                    if level.slots.is_empty() {
                        write!(f, "-")?;
                        continue;
                    }
                    write!(f, "[")?;
                    for (i, s) in level.slots.iter().enumerate() {
                        let sep = if i == 0 { "" } else { ", " };
                        write!(f, "{sep}{}: {} @", s.slot, s.entries)?;
                        write_ms(f, s.earliest)?;
                    }
                    write!(f, "]")?;
                }
                Ok(())
            }
            TimerSnapshot::Heap(h) => {
                write!(f, "heap len={} cancelled={} top=[", h.len, h.cancelled)?;
                for (i, (deadline, seq)) in h.top.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}#{seq} @")?;
                    write_ms(f, *deadline)?;
                }
                write!(f, "]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Contract tests (T1–T6): both backends against a sorted-map model.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// One year in ns, for the huge jumps.
    const YEAR: Nanos = 365 * 24 * 3600 * 1_000_000_000;

    /// xorshift64: the same "random" steps every run, without a `rand` dependency.
    fn step(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// One step of a random run.
    #[derive(Clone, Debug)]
    enum Op {
        /// Insert at `now + delta`, or `now - delta` (already past) if `past`.
        Insert { delta: Nanos, past: bool },
        /// Cancel the i-th key ever handed out (modulo), live or stale.
        Cancel(usize),
        /// Move `now` forward and expire both queues.
        Advance(Nanos),
        /// Ask both queues for their next deadline.
        Next,
    }

    /// Deadline offsets: sub-ms, within 200 ms, level boundaries, one repeated
    /// value (many equal deadlines), and years.
    fn delta() -> impl Strategy<Value = Nanos> {
        prop_oneof![
            3 => 0..TICK_NS,
            3 => 0..200 * TICK_NS,
            2 => Just(5 * TICK_NS + 17),
            1 => prop::sample::select(vec![0, TICK_NS - 1, TICK_NS, 64 * TICK_NS, 4096 * TICK_NS]),
            1 => 0..5 * YEAR,
        ]
    }

    /// A random operation, weighted toward inserts.
    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (delta(), prop::bool::weighted(0.1))
                .prop_map(|(delta, past)| Op::Insert { delta, past }),
            2 => any::<usize>().prop_map(Op::Cancel),
            2 => prop_oneof![
                3 => 0..2 * TICK_NS,
                3 => 0..300 * TICK_NS,
                1 => 0..10 * YEAR,
            ]
            .prop_map(Op::Advance),
            1 => Just(Op::Next),
        ]
    }

    /// Runs `ops` through the wheel, a Fifo heap and a `BTreeMap` model, checking
    /// T2 (exactly the due ones, never early, never cancelled), T3 (order),
    /// T4 (exact next deadline) and T5 (cancel results) after every step.
    fn run_model(ops: &[Op]) -> Result<(), TestCaseError> {
        let mut wheel = TimerWheel::new();
        let mut heap = TimerHeap::new(TieOrder::Fifo);
        let mut model: BTreeMap<(Nanos, u64), u64> = BTreeMap::new();
        let mut keys: Vec<(TimerKey, TimerKey, Nanos, u64)> = Vec::new();
        let (mut now, mut wout, mut hout) = (0u64, Vec::new(), Vec::new());
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Insert { delta, past } => {
                    let deadline = if past { now.saturating_sub(delta) } else { now.saturating_add(delta) };
                    let seq = keys.len() as u64;
                    let wk = wheel.insert(deadline, seq, seq);
                    let hk = heap.insert(deadline, seq, seq);
                    prop_assert_eq!(wk.seq(), seq);
                    model.insert((deadline, seq), seq);
                    keys.push((wk, hk, deadline, seq));
                }
                Op::Cancel(n) => {
                    if keys.is_empty() {
                        continue;
                    }
                    let (wk, hk, deadline, seq) = keys[n % keys.len()];
                    let expect = model.remove(&(deadline, seq));
                    prop_assert_eq!(wheel.cancel(wk), expect, "T5 wheel, step {}", i);
                    prop_assert_eq!(heap.cancel(hk), expect, "T5 heap, step {}", i);
                    prop_assert_eq!(wheel.placement(wk), None);
                    prop_assert_eq!(heap.placement(hk), None);
                }
                Op::Advance(d) => {
                    now = now.saturating_add(d);
                    wout.clear();
                    hout.clear();
                    wheel.expire(now, &mut wout);
                    heap.expire(now, &mut hout);
                    let rest = model.split_off(&(now.saturating_add(1), 0));
                    let due: Vec<(Nanos, u64, u64)> =
                        std::mem::replace(&mut model, rest).into_iter().map(|((d, s), p)| (d, s, p)).collect();
                    let w: Vec<_> = wout.iter().map(|e| (e.deadline, e.seq, e.payload)).collect();
                    let h: Vec<_> = hout.iter().map(|e| (e.deadline, e.seq, e.payload)).collect();
                    prop_assert_eq!(&w, &due, "T2/T3 wheel, step {}, now {}", i, now);
                    prop_assert_eq!(&h, &due, "T2/T3 heap, step {}, now {}", i, now);
                }
                Op::Next => {
                    let expect = model.keys().next().map(|&(d, _)| d);
                    prop_assert_eq!(wheel.next_deadline(), expect, "T4 wheel, step {}", i);
                    prop_assert_eq!(heap.next_deadline(), expect, "T4 heap, step {}", i);
                }
            }
            prop_assert_eq!(wheel.len(), model.len());
            prop_assert_eq!(heap.len(), model.len());
        }
        // Finally everything left fires, in order, and nothing else.
        let expect = model.keys().next().map(|&(d, _)| d);
        prop_assert_eq!(wheel.next_deadline(), expect);
        wout.clear();
        wheel.expire(u64::MAX, &mut wout);
        let w: Vec<_> = wout.iter().map(|e| (e.deadline, e.seq)).collect();
        let m: Vec<_> = model.keys().copied().collect();
        prop_assert_eq!(w, m);
        prop_assert!(wheel.is_empty());
        Ok(())
    }

    proptest! {
        // Under Miri every step is interpreted (1000x slower or worse): 4 short cases still hit
        // every op.
        // Miri also isolates the file system, where proptest persists failing seeds.
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
            ..ProptestConfig::default()
        })]
        /// T2–T5 on random runs with sub-ms deadlines, equal deadlines, past
        /// deadlines and jumps of years.
        #[test]
        fn backends_agree_with_sorted_map(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 40 } else { 300 })) {
            run_model(&ops)?;
        }
    }

    /// A longer deterministic run than proptest's: 20,000 xorshift steps.
    #[test]
    fn long_xorshift_run_agrees_with_model() {
        let mut rng = 0x5EED_u64;
        let steps = if cfg!(miri) { 300 } else { 20_000 };
        let ops: Vec<Op> = (0..steps)
            .map(|_| match step(&mut rng) % 10 {
                0..=4 => Op::Insert {
                    delta: match step(&mut rng) % 4 {
                        0 => step(&mut rng) % TICK_NS,
                        1 => step(&mut rng) % (5000 * TICK_NS),
                        2 => 7 * TICK_NS,
                        _ => step(&mut rng) % (3 * YEAR),
                    },
                    past: step(&mut rng).is_multiple_of(20),
                },
                5 | 6 => Op::Cancel(step(&mut rng) as usize),
                7 | 8 => Op::Advance(match step(&mut rng) % 10 {
                    0 => step(&mut rng) % YEAR,
                    _ => step(&mut rng) % (100 * TICK_NS),
                }),
                _ => Op::Next,
            })
            .collect();
        run_model(&ops).unwrap();
    }

    /// T5: keys of fired or cancelled timers return `None`, even after their slab
    /// index was reused by a new timer, and do not cancel that new timer.
    fn stale_keys<Q: TimerQueue<&'static str>>(q: &mut Q) {
        let fired = q.insert(10, 0, "fired");
        let cancelled = q.insert(20, 1, "cancelled");
        assert_eq!(q.cancel(cancelled), Some("cancelled"));
        assert_eq!(q.cancel(cancelled), None, "T5: second cancel");
        let mut out = Vec::new();
        q.expire(10, &mut out);
        q.next_deadline(); // lets the heap purge its cancelled entry
        assert_eq!(out.len(), 1);
        // New timers reuse the freed slab indices.
        let a = q.insert(30, 2, "a");
        let b = q.insert(40, 3, "b");
        let reused: Vec<u32> = [a, b].iter().map(|k| k.index).collect();
        assert!(reused.contains(&fired.index) && reused.contains(&cancelled.index));
        assert_eq!(q.cancel(fired), None, "T5: fired key, reused slot");
        assert_eq!(q.cancel(cancelled), None, "T5: cancelled key, reused slot");
        assert_eq!(q.placement(fired), None);
        assert_eq!(q.len(), 2, "the new timers are untouched");
        assert_eq!(q.cancel(b), Some("b"));
    }

    /// T5 for the wheel.
    #[test]
    fn stale_keys_wheel() {
        stale_keys(&mut TimerWheel::new());
    }

    /// T5 for the heap.
    #[test]
    fn stale_keys_heap() {
        stale_keys(&mut TimerHeap::new(TieOrder::Fifo));
    }

    /// T6 and T5 at scale: 1,000,000 timers, 99 % cancelled, leaves capacity
    /// proportional to the 10,000 live ones; keys made before the compactions
    /// still cancel the right timer, and the survivors fire in order.
    fn cancel_99_percent<Q: TimerQueue<u64>>(q: &mut Q) {
        const N: u64 = 1_000_000;
        let mut rng = 0xC0FFEE_u64;
        let keys: Vec<TimerKey> = (0..N).map(|seq| q.insert(step(&mut rng) % (10_000 * TICK_NS), seq, seq)).collect();
        for (seq, key) in keys.iter().enumerate() {
            if seq % 100 != 0 {
                assert_eq!(q.cancel(*key), Some(seq as u64));
            }
        }
        q.next_deadline(); // asyncio's clean-up point: the heap rebuilds here
        let stats = q.stats();
        assert_eq!(stats.live, 10_000);
        assert!(stats.compactions > 0, "{stats:?}");
        assert!(stats.capacity < 4 * stats.live, "T6: {stats:?}");
        // Keys from before compaction: cancel half the survivors through them.
        for seq in (0..N).step_by(200) {
            assert_eq!(q.cancel(keys[seq as usize]), Some(seq), "T5: moved key");
            assert_eq!(q.cancel(keys[seq as usize]), None, "T5: now stale");
        }
        assert_eq!(q.cancel(keys[1]), None, "T5: long-cancelled key");
        let mut out = Vec::new();
        q.expire(u64::MAX, &mut out);
        assert_eq!(out.len(), 5_000);
        assert!(out.iter().all(|e| e.seq % 200 == 100 && e.payload == e.seq));
        assert!(out.windows(2).all(|w| (w[0].deadline, w[0].seq) < (w[1].deadline, w[1].seq)));
    }

    /// T6 for the wheel (eager unlink, compaction at the clean-up point).
    #[test]
    #[cfg_attr(miri, ignore = "a million timers: hours under Miri; compaction is covered by timer::store's tests")]
    fn memory_follows_live_timers_wheel() {
        cancel_99_percent(&mut TimerWheel::new());
    }

    /// T6 for the heap (lazy cancel, rebuild by asyncio's rule, then compaction).
    #[test]
    #[cfg_attr(miri, ignore = "a million timers: hours under Miri; compaction is covered by timer::store's tests")]
    fn memory_follows_live_timers_heap() {
        cancel_99_percent(&mut TimerHeap::new(TieOrder::Fifo));
    }

    /// Snapshot and Display are deterministic and show what the docs promise.
    #[test]
    fn heap_snapshot_display() {
        let mut h = TimerHeap::new(TieOrder::Fifo);
        h.insert(2_500_000, 7, ());
        let k = h.insert(1_000_000, 8, ());
        h.cancel(k);
        assert_eq!(h.snapshot().to_string(), "heap len=2 cancelled=1 top=[#8 @1.000000ms, #7 @2.500000ms]");
    }

    /// Timing, not a test: `cargo test --release --lib -- --ignored --nocapture bench`.
    /// 200,000 timers at random 0–200 ms deadlines; best of 5 rounds, ns per timer:
    /// - *pair*: with 200,000 timers pending, insert one and cancel it at once (a
    ///   timeout that did not fire: the common case on a loop);
    /// - *bulk cancel*: insert 200,000, then cancel all in random order (cold
    ///   caches: every unlink touches two random neighbours), then `next_deadline`;
    /// - *fire*: insert 200,000, then `expire` in 1 ms steps until all fired.
    ///
    /// `WHEEL_ONLY=1` skips the heaps (for `perf record`).
    #[test]
    #[ignore]
    fn bench_wheel_vs_heap() {
        use std::time::Instant;
        const N: usize = 200_000;
        /// Runs the three workloads on `q`: ns per (pair, bulk cancel, fire).
        fn run<Q: TimerQueue<u64>>(q: &mut Q) -> [f64; 3] {
            let mut best = [f64::MAX; 3];
            let mut rng = 0xBEEF_u64;
            let (mut seq, mut now) = (0u64, 0u64);
            let mut out = Vec::with_capacity(N);
            let mut keys = Vec::with_capacity(N);
            for _ in 0..5 {
                let base = now;
                let deadlines: Vec<Nanos> = (0..N).map(|_| now + step(&mut rng) % (200 * TICK_NS)).collect();
                let mut order: Vec<usize> = (0..N).collect();
                for i in (1..N).rev() {
                    order.swap(i, step(&mut rng) as usize % (i + 1));
                }
                // Bulk: insert all, cancel all in random order.
                keys.clear();
                let t = Instant::now();
                for &d in &deadlines {
                    keys.push(q.insert(d, seq, seq));
                    seq += 1;
                }
                for &i in &order {
                    q.cancel(keys[i]);
                }
                q.next_deadline();
                best[1] = best[1].min(t.elapsed().as_nanos() as f64 / N as f64);
                assert!(q.is_empty());
                // Fire: insert all, then expire 1 ms at a time.
                let t = Instant::now();
                for &d in &deadlines {
                    q.insert(d, seq, seq);
                    seq += 1;
                }
                out.clear();
                for _ in 0..=200 {
                    now += TICK_NS;
                    q.expire(now, &mut out);
                }
                best[2] = best[2].min(t.elapsed().as_nanos() as f64 / N as f64);
                assert_eq!(out.len(), N);
                // Pair: refill (untimed), then insert+cancel against the full queue;
                // the heap pays for its lazy cancels in `next_deadline`.
                for &d in &deadlines {
                    q.insert(d - base + now, seq, seq);
                    seq += 1;
                }
                let t = Instant::now();
                for &i in &order {
                    let key = q.insert(deadlines[i] - base + now, seq, seq);
                    seq += 1;
                    q.cancel(key);
                }
                q.next_deadline();
                best[0] = best[0].min(t.elapsed().as_nanos() as f64 / N as f64);
                now += 400 * TICK_NS;
                out.clear();
                q.expire(now, &mut out);
                assert_eq!(out.len(), N);
            }
            best
        }
        let w = run(&mut TimerWheel::new());
        if std::env::var_os("WHEEL_ONLY").is_some() {
            println!("wheel {w:?}");
            return;
        }
        let h = run(&mut TimerHeap::new(TieOrder::Fifo));
        let a = run(&mut TimerHeap::new(TieOrder::Asyncio));
        println!("ns/timer, {N} timers, 0-200 ms: pair / bulk cancel / insert+fire");
        println!("wheel          {:6.1} / {:6.1} / {:6.1}", w[0], w[1], w[2]);
        println!("heap (Fifo)    {:6.1} / {:6.1} / {:6.1}", h[0], h[1], h[2]);
        println!("heap (Asyncio) {:6.1} / {:6.1} / {:6.1}", a[0], a[1], a[2]);
    }
}
