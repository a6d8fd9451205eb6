//! Handles: what `call_soon` and `call_later` give back, so a callback can be cancelled.
//!
//! A scheduled callback lives in a slot of the loop's callback slab until it runs or is
//! cancelled. The ready queue (or the timer queue) refers to it by [`CallbackId`]: the slot
//! index plus the scheduling sequence number. Cancelling removes the slot; when the stale id
//! reaches the front of the ready queue, its slot is gone (or holds another sequence number)
//! and it is skipped (E4). So cancellation is O(1) and needs no search of the queue.
//!
//! ```text
//!   Handle { id: #7 @slot 2 } ──cancel()──► callbacks.remove(2)
//!   ready: [ Cb(#5@0) ][ Cb(#7@2) ][ Task(T1) ]
//!                          └── at its turn: slot 2 gone → skipped
//! ```
//!
//! # asyncio equivalent
//! `events.Handle` and `events.TimerHandle`: `cancel()`, `cancelled()`, `when()`. asyncio
//! marks the handle and leaves it in `_ready`; we free the slot at once.

use std::fmt;
use std::task::Waker;
use std::time::Duration;

use super::LoopHandle;
use crate::clock::Nanos;
use crate::timer::TimerKey;
use crate::trace::CallbackId;

/// What a callback slot runs.
pub(crate) enum CallbackFn {
    /// A closure from `call_soon`/`call_later`.
    Boxed(Box<dyn FnOnce(&LoopHandle)>),
    /// A closure sent from another thread.
    Remote(Box<dyn FnOnce(&LoopHandle) + Send>),
    /// Wake a waker (what `sleep` schedules when polled by a foreign waker).
    Wake(Waker),
    /// Wake a looplab task by id (what `sleep` schedules inside a task): no allocation.
    WakeTask(crate::task::TaskId),
    /// A gather child finished: its done-callback, without a boxed closure (G4).
    Gather(crate::combinators::ChildLink),
}

// A callback slot per pending timer: the payload stays at 24 bytes (W6).
const _: () = assert!(std::mem::size_of::<CallbackFn>() == 24);

/// A scheduled callback.
pub(crate) struct CallbackSlot {
    /// Scheduling sequence number: tells this callback from a later one in the same slot.
    pub(crate) seq: u64,
    /// What to run.
    pub(crate) f: CallbackFn,
    /// While the callback sits in the timer queue, the index hint of its key there (the key's
    /// seq is `seq` above); [`NO_TIMER`] otherwise. Four bytes instead of an `Option<TimerKey>`'s
    /// 24: there is one slot per pending timer.
    pub(crate) timer: u32,
}

/// `CallbackSlot::timer` when the callback is not (or no longer) in the timer queue.
pub(crate) const NO_TIMER: u32 = u32::MAX;

impl CallbackSlot {
    /// The timer key, if the callback waits in the timer queue.
    pub(crate) fn timer_key(&self) -> Option<TimerKey> {
        (self.timer != NO_TIMER).then(|| TimerKey::from_parts(self.timer, self.seq))
    }

    /// Is this the callback a ready entry with `seq_low` names (E9: the entry keeps the low 32
    /// bits of the sequence number)?
    pub(crate) fn named_by(&self, seq_low: u32) -> bool {
        self.seq as u32 == seq_low
    }
}

/// A cancellable reference to a callback scheduled with `call_soon`. asyncio: `Handle`.
#[derive(Clone)]
pub struct Handle {
    lp: LoopHandle,
    id: Option<CallbackId>,
}

impl Handle {
    pub(crate) fn new(lp: LoopHandle, id: CallbackId) -> Handle {
        Handle { lp, id: Some(id) }
    }

    /// A handle for a callback that was never scheduled (closed loop).
    pub(crate) fn dead(lp: LoopHandle) -> Handle {
        Handle { lp, id: None }
    }

    /// Make sure the callback never runs (E4). Returns true if this call prevented it;
    /// false if it had already run or been cancelled. asyncio: `Handle.cancel()`.
    pub fn cancel(&self) -> bool {
        self.id.is_some_and(|id| self.lp.cancel_callback(id))
    }

    /// True once the callback can no longer run: it ran, or it was cancelled.
    pub fn cancelled(&self) -> bool {
        !self.id.is_some_and(|id| self.lp.callback_pending(id))
    }

    /// The callback's id in the event log.
    pub fn id(&self) -> Option<CallbackId> {
        self.id
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("id", &self.id).field("pending", &!self.cancelled()).finish()
    }
}

/// A cancellable reference to a timer. asyncio: `TimerHandle`.
#[derive(Clone)]
pub struct TimerHandle {
    handle: Handle,
    when: Nanos,
}

impl TimerHandle {
    pub(crate) fn new(lp: LoopHandle, id: CallbackId, when: Nanos) -> TimerHandle {
        TimerHandle { handle: Handle::new(lp, id), when }
    }

    pub(crate) fn dead(lp: LoopHandle, when: Nanos) -> TimerHandle {
        TimerHandle { handle: Handle::dead(lp), when }
    }

    /// Make sure the callback never runs, even if its timer already came due and it waits in
    /// the ready queue (E4). asyncio: `TimerHandle.cancel()`.
    pub fn cancel(&self) -> bool {
        self.handle.cancel()
    }

    /// True once the callback can no longer run.
    pub fn cancelled(&self) -> bool {
        self.handle.cancelled()
    }

    /// The deadline, as loop time. asyncio: `TimerHandle.when()`.
    pub fn when(&self) -> Duration {
        Duration::from_nanos(self.when)
    }

    /// The callback's id in the event log.
    pub fn id(&self) -> Option<CallbackId> {
        self.handle.id
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle").field("id", &self.handle.id).field("when_ns", &self.when).finish()
    }
}
