//! Reaching the loop from other threads: `call_soon_threadsafe` and remote wake-ups.
//!
//! The loop's data structures are single-threaded (`RefCell`s, `Rc`s). Another thread may
//! not touch them; it *sends* its request into an inbox (a crossbeam channel) and, if the
//! loop might be asleep in `epoll_wait`, rings a bell (a `mio::Waker`, an eventfd on Linux)
//! so the poll returns. The loop drains the inbox at the start of every iteration.
//!
//! ```text
//!   worker thread                       loop thread
//!   ─────────────                       ───────────
//!   tx.send(Call(f)) ──► inbox ──────►  drain_remote(): f → ready queue
//!   if !notified.swap(true):            notified.store(false); try_recv()...
//!       waker.wake()  ──► eventfd ──►   epoll_wait returns
//! ```
//!
//! # asyncio equivalent
//! `loop.call_soon_threadsafe` appends to `_ready` under the GIL and writes a byte to the
//! self-pipe (`_write_to_self`). We coalesce: one eventfd write per batch of messages, not
//! one per message (**R2**).
//!
//! # Invariants
//! - **R1** No message is stranded: a sender pushes *then* swaps `notified`; the loop clears
//!   `notified` *then* drains. Either the loop's drain sees the message, or the sender's swap
//!   sees `false` and rings the bell, so the next poll returns (both use `SeqCst`).
//! - **R2** Scheduling from the loop's own thread never touches this path (it never wakes the
//!   loop: PEERS.md's lesson from tokio's eventfd writes on timer insert).
//! - **R3** `external` counts work in flight on other threads that will call back (pool jobs).
//!   While it is non-zero the virtual clock does not jump and the loop is not deadlocked.
//! - **R4** `handles` counts live [`ThreadsafeHandle`]s: while one exists, an idle loop with
//!   nothing scheduled blocks (someone may still call) instead of reporting a deadlock.
//! - **R5** With a job in flight (R3) and nothing else to do, the loop spins at most 50 µs
//!   for its answer before blocking in the poller (`LoopHandle::spin_for_remote`): the
//!   pool's round trip then costs no eventfd wake-up. Without a job in flight it never spins.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};

use super::LoopHandle;
use crate::error::LoopError;
use crate::task::TaskId;

/// A request sent to the loop from another thread.
pub(crate) enum RemoteMsg {
    /// A task's waker was called off the loop's thread.
    Wake(TaskId),
    /// `call_soon_threadsafe(f)`.
    Call(Box<dyn FnOnce(&LoopHandle) + Send>),
}

/// The part of a loop that other threads may hold: inbox sender, bell, counters.
pub(crate) struct Remote {
    /// Identifies the loop (wakers compare it with the thread's running loop).
    pub(crate) loop_id: u64,
    /// The inbox's sending side.
    tx: Sender<RemoteMsg>,
    /// The bell: makes a blocked `Poll::poll` return.
    bell: mio::Waker,
    /// Set by a sender that rang the bell; cleared by the loop before draining (R1).
    notified: AtomicBool,
    /// Jobs running elsewhere that will call back (R3).
    pub(crate) external: AtomicUsize,
    /// Live thread-safe handles (R4).
    pub(crate) handles: AtomicUsize,
    /// Set by `close()`: senders get `LoopError::Closed` from then on.
    pub(crate) closed: AtomicBool,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("loop_id", &self.loop_id)
            .field("external", &self.external.load(Ordering::Relaxed))
            .field("handles", &self.handles.load(Ordering::Relaxed))
            .finish()
    }
}

impl Remote {
    /// A remote end for loop `loop_id`, ringing `bell`; returns it with the inbox receiver.
    pub(crate) fn new(loop_id: u64, bell: mio::Waker) -> (Arc<Remote>, Receiver<RemoteMsg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let remote = Remote {
            loop_id,
            tx,
            bell,
            notified: AtomicBool::new(false),
            external: AtomicUsize::new(0),
            handles: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        };
        (Arc::new(remote), rx)
    }

    /// Send a message and ring the bell if nobody has since the loop last drained (R1).
    /// Fails only when the loop is closed (its receiver is gone).
    pub(crate) fn send(&self, msg: RemoteMsg) -> Result<(), LoopError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LoopError::Closed);
        }
        self.tx.send(msg).map_err(|_| LoopError::Closed)?;
        if !self.notified.swap(true, Ordering::SeqCst) {
            // A failed eventfd write means the loop is being torn down; the message is in
            // the inbox regardless and will be dropped with it.
            let _ = self.bell.wake();
        }
        Ok(())
    }

    /// Loop side: has anything been sent since the last drain? (A cheap load per iteration.)
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Loop side: clear the flag before draining (R1).
    pub(crate) fn begin_drain(&self) {
        self.notified.store(false, Ordering::SeqCst);
    }
}

/// A `Send + Sync` handle to a loop, for other threads. asyncio: the loop object used from
/// another thread, where only `call_soon_threadsafe` is allowed.
///
/// While one exists the loop will not report a deadlock when idle (R4).
pub struct ThreadsafeHandle {
    remote: Arc<Remote>,
}

impl fmt::Debug for ThreadsafeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadsafeHandle").field("loop_id", &self.remote.loop_id).finish()
    }
}

impl ThreadsafeHandle {
    pub(crate) fn new(remote: Arc<Remote>) -> ThreadsafeHandle {
        remote.handles.fetch_add(1, Ordering::SeqCst);
        ThreadsafeHandle { remote }
    }

    /// Schedule `f` to run on the loop's thread in a coming iteration, waking the loop if it
    /// is blocked. asyncio: `loop.call_soon_threadsafe(f)`. Fails if the loop is closed.
    pub fn call_soon_threadsafe<F>(&self, f: F) -> Result<(), LoopError>
    where
        F: FnOnce(&LoopHandle) + Send + 'static,
    {
        self.remote.send(RemoteMsg::Call(Box::new(f)))
    }

    /// Ask the loop to stop, from any thread. asyncio: `loop.call_soon_threadsafe(loop.stop)`.
    pub fn stop(&self) -> Result<(), LoopError> {
        self.call_soon_threadsafe(|lp| lp.stop())
    }

    /// Mark one job as in flight on another thread until the returned guard is dropped (R3).
    pub fn keep_alive(&self) -> KeepAlive {
        KeepAlive::new(self.remote.clone())
    }
}

impl Clone for ThreadsafeHandle {
    fn clone(&self) -> ThreadsafeHandle {
        ThreadsafeHandle::new(self.remote.clone())
    }
}

impl Drop for ThreadsafeHandle {
    fn drop(&mut self) {
        self.remote.handles.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts one piece of work in flight on another thread that will call back (R3). Drop it on
/// the loop's thread, after the result has been handed to the loop.
pub struct KeepAlive {
    remote: Arc<Remote>,
}

impl fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAlive").field("loop_id", &self.remote.loop_id).finish()
    }
}

impl KeepAlive {
    pub(crate) fn new(remote: Arc<Remote>) -> KeepAlive {
        remote.external.fetch_add(1, Ordering::SeqCst);
        KeepAlive { remote }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.remote.external.fetch_sub(1, Ordering::SeqCst);
    }
}
