//! A task's waker, built by hand from a `RawWakerVTable`: the unsafe lesson.
//!
//! A [`std::task::Waker`] is two pointers: `data` and a table of four functions
//! (`clone`, `wake`, `wake_by_ref`, `drop`). The executor decides what `data` is. Here it is
//! an `Arc<TaskWaker>`, turned into a raw pointer with `Arc::into_raw`: the waker *owns one
//! strong count* of that `Arc`. Cloning the waker adds a count, dropping it removes one, so the
//! `TaskWaker` lives exactly as long as the last waker that points to it, even if that waker
//! was sent to another thread and the task itself is long gone.
//!
//! ```text
//!   Waker { data ─────────────► ArcInner<TaskWaker> { strong, weak,
//!           vtable ─┐                                 task: TaskId (index, generation),
//!   }               │                                 remote: Arc<Remote> } }
//!                   ▼
//!   VTABLE { clone: +1 strong → new RawWaker(same data)
//!            wake:  schedule(task), then −1 strong (consumes the waker)
//!            wake_by_ref: schedule(task)
//!            drop:  −1 strong }
//!
//!   schedule(task): on the loop's own thread → push TaskId on the ready queue (once: W3)
//!                   on any other thread      → inbox + bell (events/threadsafe.rs)
//! ```
//!
//! The safe way to get the same thing is `impl std::task::Wake for TaskWaker` and
//! `Waker::from(arc)`; std writes exactly this vtable for you. We spell it out because
//! learners ask what a waker *is*.
//!
//! # asyncio equivalent
//! A task's `__wakeup` bound method, registered as a done-callback on the future it awaits.
//!
//! # Invariants
//! - **W1** Every `RawWaker` data pointer built here came from `Arc::<TaskWaker>::into_raw`
//!   and owns exactly one strong count.
//! - **W2** A waker whose task is gone (slot freed or reused: the generation differs) does
//!   nothing when woken: it can never poll another task.
//! - **W3** Waking a task that is already queued does not queue it twice (checked by the loop
//!   against the task's `queued` flag).
//! - **W4** A *lent* waker (`LENT_VTABLE`) points at a `LentWaker` on `run_task`'s stack and
//!   exists only as a `&Waker` inside that poll: it is never dropped or woken by value, and
//!   anything that wants to keep it must clone it, which yields an owned `VTABLE` waker.
//! - **W5** A lent waker woken on the loop's own thread only raises its `woken` flag, and
//!   `run_task` queues the task when the poll returns `Pending` (the lent waker is always the
//!   polled task's own, so there is no slot to look up mid-poll); from any other thread it
//!   uses only thread-safe parts (the inbox), never that flag.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::TaskId;
use crate::events::LoopHandle;
use crate::events::threadsafe::{Remote, RemoteMsg};

/// What a waker points to: which task, and how to reach its loop from another thread.
#[derive(Debug)]
pub(crate) struct TaskWaker {
    /// The task to schedule (W2: carries the generation).
    pub(crate) task: TaskId,
    /// The loop's remote end, for wakes from other threads.
    pub(crate) remote: Arc<Remote>,
}

impl TaskWaker {
    /// Schedule the task.
    fn schedule(&self) {
        schedule(self.task, &self.remote);
    }
}

/// Schedule `task`: locally if we are on its loop's thread while it runs, else through the
/// inbox (which fails only if the loop is closed: then there is nothing to wake, W2).
#[inline]
fn schedule(task: TaskId, remote: &Arc<Remote>) {
    let done_locally = LoopHandle::with_current(|lp| {
        if lp.id() == remote.loop_id {
            lp.wake_task(task);
            true
        } else {
            false
        }
    });
    if done_locally != Some(true) {
        schedule_remote(task, remote);
    }
}

/// The other-thread half of [`schedule`], kept out of line so the local path (every
/// `yield_now`) stays a few instructions with no registers to save.
#[cold]
#[inline(never)]
fn schedule_remote(task: TaskId, remote: &Arc<Remote>) {
    let _ = remote.send(RemoteMsg::Wake(task));
}

/// The four functions std calls through a `Waker`.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

/// Build a `Waker` that owns one count of `arc` (W1).
pub(crate) fn waker_for(arc: Arc<TaskWaker>) -> Waker {
    let raw = RawWaker::new(Arc::into_raw(arc).cast::<()>(), &VTABLE);
    // SAFETY: W1. `raw.data` came from `Arc::into_raw` and owns one strong count; the vtable's
    // four functions treat it exactly so, and `TaskWaker` is `Send + Sync` (an `Arc<Remote>`
    // and two integers), so the waker may move to and be used from any thread.
    unsafe { Waker::from_raw(raw) }
}

/// The waker lent to a task's poll before anyone needed a waker of their own.
///
/// Most polls only *look* at the waker (`wake_by_ref` in `yield_now`), or hand the loop a
/// task id (`sleep`, see [`task_of`]); they never keep it. So `run_task` builds this on its
/// stack and lends `&Waker` to the poll: no allocation. Only when a future *clones* the waker
/// (to keep it: a `LoopFuture`, a socket, another thread) do we allocate the `Arc<TaskWaker>`,
/// once per task: it is kept in `promoted` and becomes the task's owned waker after the poll.
///
/// ```text
///   run_task: LentWaker { task, remote, promoted: OnceLock } on the stack
///             Waker { data: &LentWaker, vtable: LENT_VTABLE }  ── &Waker ──► poll(cx)
///   cx.waker().clone() ──► promoted.get_or_init(Arc::new(TaskWaker)) ──► owned Waker (VTABLE)
/// ```
///
/// A `wake_by_ref` on the loop's own thread (every `yield_now`) wakes the task being polled,
/// so it only sets `woken`: `run_task` queues the task once the poll is over, in the look-up
/// of its slot it makes anyway (W5). That is asyncio's order, too: a bare `yield` in a
/// coroutine (what `sleep(0)` does) makes `Task.__step` call `call_soon(self.__step)` as the
/// step ends, after whatever the step itself scheduled. `thread` tells whether we are on the
/// loop's thread: it is the address of a thread-local byte, which differs between live
/// threads.
#[derive(Debug)]
pub(crate) struct LentWaker<'a> {
    /// The task being polled.
    pub(crate) task: TaskId,
    /// Its loop's remote end.
    pub(crate) remote: &'a Arc<Remote>,
    /// The owned waker, made at the first clone.
    pub(crate) promoted: std::sync::OnceLock<Arc<TaskWaker>>,
    /// Woken on the loop's own thread during the poll (W5); read and written only there.
    woken: Cell<bool>,
    /// [`thread_mark`] of the loop's thread.
    thread: *const u8,
}

thread_local! {
    /// A byte whose address names the thread (see [`LentWaker`]).
    static THREAD_MARK: u8 = const { 0 };
}

/// This thread's mark: the address of its [`THREAD_MARK`].
#[inline]
fn thread_mark() -> *const u8 {
    THREAD_MARK.with(|m| m as *const u8)
}

impl<'a> LentWaker<'a> {
    /// The waker `run_task` lends for one poll of `task` (W4).
    pub(crate) fn new(task: TaskId, remote: &'a Arc<Remote>) -> Self {
        LentWaker { task, remote, promoted: std::sync::OnceLock::new(), woken: Cell::new(false), thread: thread_mark() }
    }

    /// Was the task woken through this waker on the loop's own thread (W5)?
    pub(crate) fn woken(&self) -> bool {
        self.woken.get()
    }

    /// The owned waker data, allocating it at the first call.
    fn promote(&self) -> &Arc<TaskWaker> {
        self.promoted.get_or_init(|| Arc::new(TaskWaker { task: self.task, remote: self.remote.clone() }))
    }
}

/// The vtable of lent wakers (W4).
static LENT_VTABLE: RawWakerVTable = RawWakerVTable::new(lent_clone, lent_wake, lent_wake_by_ref, lent_drop);

/// Lend a `Waker` pointing at `lent` to `f` (W4: it cannot escape `f`, only its clones can).
pub(crate) fn with_lent_waker<R>(lent: &LentWaker<'_>, f: impl FnOnce(&Waker) -> R) -> R {
    let raw = RawWaker::new((lent as *const LentWaker<'_>).cast::<()>(), &LENT_VTABLE);
    // SAFETY: W4. The data pointer is a `&LentWaker` that outlives `f`, and the waker is
    // wrapped in ManuallyDrop and only lent by reference, so it is never dropped or woken by
    // value: only `lent_clone` and `lent_wake_by_ref` can be called on it, both of which
    // only use the pointer as a shared reference, while `f` runs. From another thread they
    // use only its Sync parts (a TaskId, a shared `Arc<Remote>`, a `OnceLock`, the `thread`
    // address compared by value); `woken` (a `Cell`) is touched only on the loop's own
    // thread (W5).
    let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw) });
    f(&waker)
}

/// `clone` of a lent waker: an owned waker (allocated once per task, then shared).
///
/// # Safety
/// `data` is a live `&LentWaker` (W4).
unsafe fn lent_clone(data: *const ()) -> RawWaker {
    // SAFETY: W4: the lent waker only exists while its `LentWaker` is borrowed.
    let lent = unsafe { &*data.cast::<LentWaker<'_>>() };
    let arc = lent.promote().clone();
    RawWaker::new(Arc::into_raw(arc).cast::<()>(), &VTABLE)
}

/// `wake` of a lent waker: never called, as a lent waker is never owned (W4). Treated as
/// `wake_by_ref` to be safe.
///
/// # Safety
/// `data` is a live `&LentWaker` (W4).
unsafe fn lent_wake(data: *const ()) {
    // SAFETY: as `lent_wake_by_ref`.
    unsafe { lent_wake_by_ref(data) }
}

/// `wake_by_ref` of a lent waker: schedule the task (the `yield_now` path: no allocation).
///
/// # Safety
/// `data` is a live `&LentWaker` (W4).
unsafe fn lent_wake_by_ref(data: *const ()) {
    // SAFETY: W4.
    let lent = unsafe { &*data.cast::<LentWaker<'_>>() };
    if thread_mark() == lent.thread {
        // W5: we are on the thread whose `run_task` is polling `lent.task`.
        lent.woken.set(true);
    } else {
        schedule(lent.task, lent.remote);
    }
}

/// `drop` of a lent waker: nothing is owned.
///
/// # Safety
/// None needed: it does nothing.
unsafe fn lent_drop(_data: *const ()) {}

/// If `waker` is a looplab task waker of loop `loop_id`, the task it wakes. Lets `sleep` store
/// a task id in its timer instead of cloning the waker.
pub(crate) fn task_of(waker: &Waker, loop_id: u64) -> Option<TaskId> {
    let vt = waker.vtable();
    if std::ptr::eq(vt, &VTABLE) {
        // SAFETY: W1. The vtable identifies the data as an `Arc<TaskWaker>` pointer, alive
        // while `waker` is.
        let w = unsafe { &*waker.data().cast::<TaskWaker>() };
        (w.remote.loop_id == loop_id).then_some(w.task)
    } else if std::ptr::eq(vt, &LENT_VTABLE) {
        // SAFETY: W4. The vtable identifies the data as a live `&LentWaker`.
        let w = unsafe { &*waker.data().cast::<LentWaker<'_>>() };
        (w.remote.loop_id == loop_id).then_some(w.task)
    } else {
        None
    }
}

/// How many *other* owned wakers share this task's `Arc<TaskWaker>`, for the lost-waker
/// check: the slot's own waker is one count, each clone held elsewhere (a socket, a lock's
/// wait list, another thread) one more. Zero for wakers that are not ours.
pub(crate) fn other_owned_clones(waker: &Waker) -> usize {
    if !std::ptr::eq(waker.vtable(), &VTABLE) {
        return 0;
    }
    // SAFETY: W1. The vtable says `data` came from `Arc::<TaskWaker>::into_raw` and `waker`
    // owns one count, alive while it is borrowed; ManuallyDrop keeps us from releasing it.
    let arc = ManuallyDrop::new(unsafe { Arc::from_raw(waker.data().cast::<TaskWaker>()) });
    Arc::strong_count(&arc).saturating_sub(1)
}

/// `RawWakerVTable::clone`: a second waker for the same task.
///
/// # Safety
/// `data` satisfies W1 and the waker being cloned is still alive.
unsafe fn clone_waker(data: *const ()) -> RawWaker {
    // SAFETY: W1. The waker being cloned still owns its count, so the allocation is alive
    // while we add one more for the clone.
    unsafe { Arc::increment_strong_count(data.cast::<TaskWaker>()) };
    RawWaker::new(data, &VTABLE)
}

/// `RawWakerVTable::wake`: schedule the task and consume the waker (its count).
///
/// # Safety
/// `data` satisfies W1; the waker is consumed, so its count is ours to release.
unsafe fn wake(data: *const ()) {
    // SAFETY: W1. We take back the count this waker owned; dropping the Arc releases it.
    let arc = unsafe { Arc::from_raw(data.cast::<TaskWaker>()) };
    arc.schedule();
}

/// `RawWakerVTable::wake_by_ref`: schedule the task, keep the waker.
///
/// # Safety
/// `data` satisfies W1 and the waker is alive for the duration of the call.
unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: W1. We borrow the count without owning it: ManuallyDrop keeps us from
    // releasing it when `arc` goes out of scope.
    let arc = ManuallyDrop::new(unsafe { Arc::from_raw(data.cast::<TaskWaker>()) });
    arc.schedule();
}

/// `RawWakerVTable::drop`: release this waker's count.
///
/// # Safety
/// `data` satisfies W1 and this waker is being dropped, so its count is ours to release.
unsafe fn drop_waker(data: *const ()) {
    // SAFETY: W1. Each waker owns exactly one count, released exactly once, here.
    unsafe { Arc::decrement_strong_count(data.cast::<TaskWaker>()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remote end of a loop that does not exist (id 99), and the poll its bell is
    /// registered with. The caller keeps the poll alive for the test's duration (not leaked:
    /// Miri's leak check would rightly flag it).
    fn remote() -> (mio::Poll, Arc<Remote>) {
        let poll = mio::Poll::new().unwrap();
        let bell = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        (poll, Remote::new(99, bell).0)
    }

    #[test]
    fn clone_and_drop_balance_the_count() {
        let (_poll, remote) = remote();
        let arc = Arc::new(TaskWaker { task: TaskId { index: 0, generation: 1 }, remote });
        let w = waker_for(arc.clone());
        assert_eq!(Arc::strong_count(&arc), 2);
        let w2 = w.clone();
        assert_eq!(Arc::strong_count(&arc), 3);
        drop(w);
        drop(w2);
        assert_eq!(Arc::strong_count(&arc), 1);
    }

    #[test]
    fn waking_off_loop_goes_to_the_inbox_and_releases_the_count() {
        let (_poll, remote) = remote();
        let arc = Arc::new(TaskWaker { task: TaskId { index: 3, generation: 7 }, remote });
        let w = waker_for(arc.clone());
        w.wake_by_ref();
        assert_eq!(Arc::strong_count(&arc), 2);
        w.wake();
        assert_eq!(Arc::strong_count(&arc), 1);
    }
}
