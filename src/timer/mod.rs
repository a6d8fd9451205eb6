//! PLACEHOLDER (development only): replaced by the real wheel/heap module.
#![allow(missing_docs)]
use std::collections::BTreeMap;
pub type Nanos = u64;
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey { seq: u64 }
impl TimerKey { pub fn seq(&self) -> u64 { self.seq } }
#[derive(Debug)]
pub struct Expired<T> { pub deadline: Nanos, pub seq: u64, pub payload: T }
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement { Wheel { level: u8, slot: u8 }, Heap { index: usize } }
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerStats { pub live: usize, pub cascades: u64, pub cascaded_entries: u64, pub compactions: u64, pub cancelled_in_heap: usize, pub capacity: usize }
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cascade { pub level: u8, pub slot: u8, pub moved: usize }
#[derive(Clone, Debug)]
pub struct TimerSnapshot;
pub trait TimerQueue<T> {
    fn insert(&mut self, deadline: Nanos, seq: u64, payload: T) -> TimerKey;
    fn cancel(&mut self, key: TimerKey) -> Option<T>;
    fn next_deadline(&mut self) -> Option<Nanos>;
    fn expire(&mut self, now: Nanos, out: &mut Vec<Expired<T>>);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool { self.len() == 0 }
    fn placement(&self, key: TimerKey) -> Option<Placement>;
    fn stats(&self) -> TimerStats;
    fn set_recording(&mut self, on: bool);
    fn drain_cascades(&mut self, out: &mut Vec<Cascade>);
    fn snapshot(&self) -> TimerSnapshot;
}
#[derive(Debug)]
pub struct TimerWheel<T> { m: BTreeMap<(u64, u64), T> }
impl<T> TimerWheel<T> { pub fn new() -> Self { TimerWheel { m: BTreeMap::new() } } }
impl<T> Default for TimerWheel<T> { fn default() -> Self { Self::new() } }
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TieOrder { #[default] Fifo, Asyncio }
pub type TimerHeap<T> = TimerWheel<T>;
impl<T> TimerWheel<T> { pub fn with_tie_order(_t: TieOrder) -> Self { Self::new() } }
impl<T> TimerQueue<T> for TimerWheel<T> {
    fn insert(&mut self, deadline: Nanos, seq: u64, payload: T) -> TimerKey { self.m.insert((deadline, seq), payload); TimerKey { seq } }
    fn cancel(&mut self, key: TimerKey) -> Option<T> { let k = self.m.keys().find(|k| k.1 == key.seq).copied()?; self.m.remove(&k) }
    fn next_deadline(&mut self) -> Option<Nanos> { self.m.keys().next().map(|k| k.0) }
    fn expire(&mut self, now: Nanos, out: &mut Vec<Expired<T>>) { while let Some(e) = self.m.first_entry() { if e.key().0 > now { break } let ((d, s), p) = e.remove_entry(); out.push(Expired { deadline: d, seq: s, payload: p }); } }
    fn len(&self) -> usize { self.m.len() }
    fn placement(&self, _key: TimerKey) -> Option<Placement> { Some(Placement::Heap { index: 0 }) }
    fn stats(&self) -> TimerStats { TimerStats::default() }
    fn set_recording(&mut self, _on: bool) {}
    fn drain_cascades(&mut self, _out: &mut Vec<Cascade>) {}
    fn snapshot(&self) -> TimerSnapshot { TimerSnapshot }
}
