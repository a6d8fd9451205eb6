//! The entry store both timer backends share: a slab of entries, keys that survive
//! compaction, and the compaction that keeps memory proportional to live timers.
//!
//! A *slab* ([`slab::Slab`]) is a `Vec` of slots, each occupied or vacant, with a
//! free list threaded through the vacant ones: insert and remove are O(1) and an
//! entry's *index* never changes while it lives. Its weakness: the `Vec` never
//! shrinks. Schedule a million timers, cancel 99 % of them, and a million slots stay
//! allocated. So after each removal we check whether fewer than a quarter of at
//! least 4096 slots are used and, if so, *compact*: move the entries at the end into
//! the holes at the front, then shrink the `Vec` (T6).
//!
//! Moving entries breaks two kinds of references. Inside the backend (wheel list
//! links, heap items) the backend fixes them with the old-to-new index table that
//! [`Store::compact`] returns. Outside, callers hold [`TimerKey`]s with the old
//! index; for them we keep a *forwarding map* from seq to new index:
//!
//! ```text
//!   key {index: 7, seq: 42}
//!        |
//!        v            slab[7].seq == 42 ? --yes--> found at 7        (O(1), usual)
//!   Store::find  ---> no: forward[42] ? --yes----> found at new index (moved)
//!                                        --no----> None: fired/cancelled (T5)
//! ```
//!
//! A forwarding record is dropped as soon as its entry fires or is cancelled, so
//! the map holds only live, moved entries; a flag on each entry says whether it has
//! a record, so removing an entry that was never moved costs no hash lookup.
//!
//! # asyncio equivalent
//! None needed: asyncio's `TimerHandle`s are garbage-collected objects, and the
//! `_scheduled` list is rebuilt (so shrunk) by `_run_once`'s clean-up rule. Our
//! equivalent of "the object is freed" is "the slab slot is vacant".
//!
//! # Invariants
//! This file upholds **T5** (a key finds its entry iff it is live: by seq, never by
//! index alone, relying on **T1**) and **T6** (compaction threshold; forwarding map
//! holds only live moved entries).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use slab::Slab;

use crate::timer::TimerKey;

/// "No entry" in a `u32` index field (list links, slot heads). `u32::MAX` is never
/// a valid index because [`Store::insert`] refuses to grow that far.
pub(crate) const NIL: u32 = u32::MAX;

/// Below this many slots we never compact: small slabs cost little, and compacting
/// them often would cost more than the memory it saves (T6).
pub(crate) const COMPACT_MIN_CAPACITY: usize = 4096;

/// Hashes a seq with one multiply by 2^64 / phi ("Fibonacci hashing"). The map's
/// keys are the loop's own counter, never attacker-chosen, so std's DoS-resistant
/// SipHash would only cost time: compaction can forward tens of thousands of
/// entries at once, and each later cancel of a moved entry hashes again.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Generic path (unused by `u64` keys, kept correct for any key).
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    /// The path `u64` keys take: mix in, multiply; the product's bits are well
    /// spread for consecutive seqs, which is what the map gets.
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The forwarding map's type: seq -> current slab index, hashed by [`SeqHasher`].
type ForwardMap = HashMap<u64, u32, BuildHasherDefault<SeqHasher>>;

/// One slab slot's content: the backend's entry plus what the store itself needs.
#[derive(Debug)]
struct Stored<E> {
    /// The timer's seq: what a [`TimerKey`] is checked against (T5).
    seq: u64,
    /// True while the forwarding map holds a record for this entry, i.e. compaction
    /// moved it. Lets [`Store::remove`] skip the hash lookup for unmoved entries.
    forwarded: bool,
    /// The backend's data (wheel links, heap payload).
    entry: E,
}

/// A slab of timer entries with compaction and compaction-proof keys (T5, T6).
#[derive(Debug)]
pub(crate) struct Store<E> {
    /// The entries. `Slab` gives O(1) insert/remove with stable indices; `u32`
    /// indices of it are what the backends link together.
    slab: Slab<Stored<E>>,
    /// seq -> current index, only for live entries that compaction moved (T6).
    /// A hash map because lookups are by seq, which is sparse.
    forward: ForwardMap,
    /// How many times [`Store::compact`] ran, for [`crate::timer::TimerStats`].
    compactions: u64,
}

impl<E> Store<E> {
    /// An empty store; allocates nothing until the first insert.
    pub(crate) fn new() -> Self {
        Store { slab: Slab::new(), forward: ForwardMap::default(), compactions: 0 }
    }

    /// Live entries (for the heap: including cancelled ones not yet purged).
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Allocated slots: the memory T6 bounds.
    pub(crate) fn capacity(&self) -> usize {
        self.slab.capacity()
    }

    /// Compactions so far.
    pub(crate) fn compactions(&self) -> u64 {
        self.compactions
    }

    /// Entries in the forwarding map (for tests of T6).
    #[cfg(test)]
    pub(crate) fn forwarded(&self) -> usize {
        self.forward.len()
    }

    /// Stores `entry` for timer `seq` and returns its key. O(1) amortized.
    pub(crate) fn insert(&mut self, seq: u64, entry: E) -> TimerKey {
        let index = self.slab.insert(Stored { seq, forwarded: false, entry });
        // NIL must stay free to mean "no entry"; four billion timers is a bug anyway.
        assert!(index < NIL as usize, "T5: more than u32::MAX - 1 timers");
        TimerKey { index: index as u32, seq }
    }

    /// The current index of the live entry `key` names, or `None` (T5).
    #[inline]
    pub(crate) fn find(&self, key: TimerKey) -> Option<u32> {
        // Usual case: the entry never moved, so the hint is right.
        if let Some(stored) = self.slab.get(key.index as usize)
            && stored.seq == key.seq
        {
            return Some(key.index);
        }
        // Rare case: compaction moved it. An empty map costs no hashing.
        if self.forward.is_empty() {
            return None;
        }
        self.forward.get(&key.seq).copied()
    }

    /// The entry at `index`. Panics if vacant: backends only follow their own
    /// links, which point at live entries.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> &E {
        &self.slab[index as usize].entry
    }

    /// The seq of the entry at `index`. Panics if vacant, like [`Store::get`].
    #[inline]
    pub(crate) fn seq(&self, index: u32) -> u64 {
        self.slab[index as usize].seq
    }

    /// The entry at `index`, mutably. Panics if vacant, like [`Store::get`].
    #[inline]
    pub(crate) fn get_mut(&mut self, index: u32) -> &mut E {
        &mut self.slab[index as usize].entry
    }

    /// Removes the entry at `index`, returning its seq and data, and drops its
    /// forwarding record if it has one (T6). Does not compact: the backend calls
    /// [`Store::should_compact`] when its own links are consistent again.
    #[inline]
    pub(crate) fn remove(&mut self, index: u32) -> (u64, E) {
        let stored = self.slab.remove(index as usize);
        if stored.forwarded {
            self.forward.remove(&stored.seq);
        }
        (stored.seq, stored.entry)
    }

    /// Drops the forwarding record of an entry that stays in the slab but is no
    /// longer live (the heap's lazily cancelled entries, T11), so the map holds
    /// only live entries (T6) and the key stops finding it by forwarding.
    pub(crate) fn unforward(&mut self, index: u32) {
        let stored = &mut self.slab[index as usize];
        if stored.forwarded {
            stored.forwarded = false;
            self.forward.remove(&stored.seq);
        }
    }

    /// T6's trigger: at least [`COMPACT_MIN_CAPACITY`] slots, under a quarter used.
    /// Two compares, so backends call it after every removal.
    #[inline]
    pub(crate) fn should_compact(&self) -> bool {
        let capacity = self.slab.capacity();
        capacity >= COMPACT_MIN_CAPACITY && self.slab.len() * 4 < capacity
    }

    /// An empty store gives its slots back at once (T6), if it has at least
    /// [`COMPACT_MIN_CAPACITY`]: nothing is live, so nothing moves and nothing is forwarded.
    pub(crate) fn release(&mut self) {
        if self.slab.is_empty() && self.slab.capacity() >= COMPACT_MIN_CAPACITY {
            debug_assert!(self.forward.is_empty(), "T6: the forwarding map holds only live entries");
            self.slab = Slab::new();
            self.forward = ForwardMap::default();
            self.compactions += 1;
        }
    }

    /// Moves entries from the end into the holes, shrinks the slab, records moved
    /// entries in the forwarding map, and returns `remap`, where `remap[old]` is
    /// the new index of the entry that was at `old` (identity for unmoved ones).
    /// The caller must rewrite every index it holds through `remap`. O(capacity).
    pub(crate) fn compact(&mut self) -> Vec<u32> {
        let old_len = self.slab.capacity().max(self.slab.len());
        // Identity first; only moved entries get a different target.
        let mut remap: Vec<u32> = (0..old_len as u32).collect();
        let forward = &mut self.forward;
        self.slab.compact(|stored, from, to| {
            remap[from] = to as u32;
            stored.forwarded = true;
            // An entry moved twice keeps one record, with its newest index.
            forward.insert(stored.seq, to as u32);
            true
        });
        // `HashMap` keeps its buckets too; let it follow the live count down.
        self.forward.shrink_to_fit();
        self.compactions += 1;
        remap
    }

    /// Every entry mutably, with its index; used to rewrite links after compaction.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut E)> {
        self.slab.iter_mut().map(|(i, s)| (i as u32, &mut s.entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// T5: a key finds its entry before and after the entry is moved, and finds
    /// nothing once it is removed, even though its old index is reused.
    #[test]
    fn keys_survive_compaction_and_go_stale_on_removal() {
        let mut store = Store::new();
        let keys: Vec<TimerKey> = (0..8192u64).map(|seq| store.insert(seq, seq * 10)).collect();
        // Remove all but the last 100: they sit at the end and must move.
        for key in &keys[..8092] {
            let index = store.find(*key).expect("live");
            store.remove(index);
        }
        assert!(store.should_compact(), "T6: 100 of 8192 used");
        let remap = store.compact();
        assert!(store.capacity() < 400, "T6: capacity {}", store.capacity());
        assert_eq!(store.forwarded(), 100, "T6: exactly the moved live entries");
        for key in &keys[8092..] {
            let index = store.find(*key).expect("T5: moved entry still found");
            assert_eq!(remap[key.index as usize], index);
            assert_eq!(*store.get(index), key.seq() * 10);
        }
        // Reuse old indices with fresh seqs: stale keys must not find them (T5).
        for seq in 10_000..10_050u64 {
            store.insert(seq, 0);
        }
        for key in &keys[..8092] {
            assert_eq!(store.find(*key), None, "T5: stale key {key:?}");
        }
        // Removing a moved entry drops its forwarding record (T6).
        for key in &keys[8092..] {
            let index = store.find(*key).expect("live");
            store.remove(index);
        }
        assert_eq!(store.forwarded(), 0, "T6: map follows live entries");
    }

    /// T6: no compaction below the minimum capacity, however empty.
    #[test]
    fn small_slabs_are_left_alone() {
        let mut store = Store::new();
        let keys: Vec<TimerKey> = (0..1000u64).map(|seq| store.insert(seq, ())).collect();
        for key in &keys[1..] {
            let index = store.find(*key).expect("live");
            store.remove(index);
        }
        assert!(!store.should_compact());
    }
}
