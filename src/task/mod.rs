//! Tasks: futures driven by the loop, stored in a slab, with observable states.
//!
//! A *task* is a boxed `std::future::Future` plus a header the loop keeps about it (state,
//! name, who awaits it). Tasks live in a slab (`table.rs`: pages of 1,024 slots, each a
//! [`slab::Slab`]): slots with a free list, so spawning reuses freed slots and a task is
//! found by index in O(1). A [`TaskId`] is that index plus a *generation* (the task's spawn
//! number), so an id or waker that outlives its task can be recognised as stale (W2).
//!
//! ```text
//!   TaskTable (slab pages, table.rs)    ready queue (VecDeque<Ready>)
//!   ┌───┬──────────────────────────┐    ┌──────────┬──────────┬────────┐
//!   │ 0 │ T1 main   WAITING  fut ● │    │ Task(T3) │ Cb(#12)  │ ...    │
//!   │ 1 │ (free)                   │    └────┬─────┴──────────┴────────┘
//!   │ 2 │ T3 job-b  READY    fut ● │◄────────┘  run_task(T3): take fut out of
//!   └───┴──────────────────────────┘             the slot, poll it, put it back
//!
//!  state machine (edge: function that takes it)
//!   CREATED ─1─► READY ─2─► RUNNING ─3─► WAITING ─4─► READY ─► ...
//!                                  └─5─► DONE | FAILED          (1: spawn, 2: run_task,
//!   READY/WAITING ─6─► CANCELLED                                  3: poll → Pending,
//!                                                                4: wake_task,
//!   5: poll → Ready / panic caught, 6: run_task sees cancel_requested and drops the future)
//! ```
//!
//! # asyncio equivalent
//! `asyncio.Task` (`tasks.py`): `create_task` queues `__step` with `call_soon`; `__step` is
//! our `run_task`; `__wakeup` is the waker (raw_waker.rs); `_fut_waiter` is `waiting_on`.
//!
//! ## Cancellation: where Rust differs
//! asyncio's `cancel()` throws `CancelledError` *into* the coroutine at its await point; the
//! coroutine may catch it, clean up with more awaits, even refuse and return normally. A
//! Rust future cannot be resumed with an exception. looplab's `cancel()` is still a request
//! (**K1**): the task is woken, and at its next step the loop *drops* its future instead of
//! polling it. Dropping runs every destructor of the suspended `async fn` (its locals, guards,
//! open sockets): that is the cleanup. Cleanup that must itself await (send a goodbye, flush)
//! goes in a task that is `shield`ed or spawned from a `Drop` impl; see DESIGN.md.
//!
//! # Invariants
//! - **K1** A task cancelled before its first step never runs any of its body.
//! - **K2** Cancelling a task that is awaiting another task cancels that inner task first;
//!   the outer one is dropped when the inner has finished (its cleanup ran first).
//! - **K3** A task's future is polled only from `run_task`, never inside `spawn` or `wake`.
//! - **K4** A panic inside a task is caught; the task becomes FAILED with the panic message
//!   and the loop goes on. If nobody ever reads that error it is reported when the task is
//!   forgotten ("exception was never retrieved").
//! - **K5** A task that wakes itself and then finishes in the same step keeps its outcome:
//!   the wake-up's entry in the ready queue is stale and runs nothing (a bug, found this way,
//!   once dropped the output and left the awaiting task waiting forever).
//! - **K6** Reading a task's value (its handle's `await` or `result()`) frees its slot in the
//!   same look-up if the header keeps nothing else (no `SlotExtra`: no name, no failure);
//!   the handle answers for the task from then on. A named or failed task keeps its slot
//!   until its handle is dropped.

mod arena;
mod boxed;
pub(crate) mod raw_waker;
mod table;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::combinators::{ChildLink, GatherCore};
use crate::error::{Error, PanicError, panic_message};
use crate::events::{CallbackFn, LoopHandle, Ready, Running};
use crate::future::{DoneCallbacks, Watcher, fire_entries};

use crate::trace::{CallbackId, EventKind, Outcome, WakeSource};
use arena::TaskBox;
pub(crate) use arena::{CHUNK as ARENA_CHUNK, GRAIN as ARENA_GRAIN, LARGEST as ARENA_LARGEST, TaskArena};
use raw_waker::{LentWaker, waker_for, with_lent_waker};
pub(crate) use table::TaskTable;

/// A task's identity: its slab slot and its generation (spawn number, from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Slot in the task slab.
    pub(crate) index: u32,
    /// Spawn number within the loop; distinguishes tasks that reuse a slot (W2).
    pub(crate) generation: u32,
}

impl TaskId {
    /// Does a handle holding this id have its task's value (K6: the slot is gone)?
    pub(crate) fn handed_over(self) -> bool {
        self.index & HANDED_OVER != 0
    }

    /// The slab slot this task occupies (shown by the memory walkthrough).
    pub fn slot(&self) -> usize {
        self.index as usize
    }
    /// The spawn number: `Task-N` in asyncio's default naming.
    pub fn number(&self) -> u32 {
        self.generation
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}", self.generation)
    }
}

/// A task's life stage, as the memory walkthrough names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Being set up inside `spawn`.
    Created,
    /// In the ready queue, waiting for its turn.
    Ready,
    /// Being polled right now.
    Running,
    /// Suspended at an await; waiting for a waker.
    Waiting,
    /// Returned a value.
    Done,
    /// Panicked.
    Failed,
    /// Cancelled: its future was dropped.
    Cancelled,
}

impl TaskState {
    /// DONE, FAILED or CANCELLED.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Done | TaskState::Failed | TaskState::Cancelled)
    }
    /// Upper-case name, as the teaching material prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Created => "CREATED",
            TaskState::Ready => "READY",
            TaskState::Running => "RUNNING",
            TaskState::Waiting => "WAITING",
            TaskState::Done => "DONE",
            TaskState::Failed => "FAILED",
            TaskState::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The box a slot holds: the user's future, then its output in the same allocation
/// (boxed.rs), so tasks of every output type fit one slab at one allocation each, a block
/// of the loop's arena (arena.rs).
pub(crate) type BoxedTask = TaskBox;

/// How a task failed, and whether anyone read it (K4).
pub(crate) struct Failure {
    /// `Cancelled` or `Panicked`.
    pub(crate) error: Error,
    /// Read by `result()` or `await`?
    pub(crate) retrieved: bool,
}

/// Done-callbacks of a task: `FnOnce(&LoopHandle)` closures.
pub(crate) type TaskCallback = Box<dyn FnOnce(&LoopHandle)>;

/// Who waits for a task to finish. Nearly always nobody or one awaiting looplab task, so that
/// case is an id stored inline (16 bytes in all); done-callbacks, foreign wakers and several
/// awaiters move to a boxed list.
#[derive(Default)]
pub(crate) enum Watchers {
    /// Nobody.
    #[default]
    None,
    /// One awaiting task of this loop.
    Task(TaskId),
    /// Callbacks and wakers in registration order (F2).
    Many(Box<DoneCallbacks<TaskCallback>>),
    /// The task is a child of a `gather` and nothing else watches it: the gather's link,
    /// scheduled as a callback when the task finishes (no boxed closure, G4).
    /// (The link's two fields inline: as one struct its padding could not hold the tag.)
    Gather(GatherCore, u32),
}

// The header pays 16 bytes for its watchers, whatever the variant.
const _: () = assert!(std::mem::size_of::<Watchers>() == 16);

impl Watchers {
    /// Register an awaiter's waker (keeping its place if it is already registered). Returns
    /// the task to count (F4) if a new task entry was added.
    fn set_waker(&mut self, waker: &Waker, loop_id: u64) -> Option<TaskId> {
        match self {
            Watchers::None => match Watcher::for_waker(waker, loop_id) {
                Watcher::Task(id) => {
                    *self = Watchers::Task(id);
                    Some(id)
                }
                other => {
                    let mut list = Box::new(DoneCallbacks::new());
                    list.push(other);
                    *self = Watchers::Many(list);
                    None
                }
            },
            Watchers::Task(id) if raw_waker::task_of(waker, loop_id) == Some(*id) => None,
            Watchers::Task(id) => {
                let mut list = Box::new(DoneCallbacks::new());
                list.push(Watcher::Task(*id));
                let added = list.set_waker(waker, loop_id);
                *self = Watchers::Many(list);
                added
            }
            Watchers::Many(list) => list.set_waker(waker, loop_id),
            Watchers::Gather(..) => {
                let mut list = self.take_list();
                let added = list.set_waker(waker, loop_id);
                *self = Watchers::Many(list);
                added
            }
        }
    }

    /// The registration list this becomes when a second watcher arrives: a gather link turns
    /// into the boxed done-callback it stands for, keeping its place (F2).
    fn take_list(&mut self) -> Box<DoneCallbacks<TaskCallback>> {
        let mut list: Box<DoneCallbacks<TaskCallback>> = Box::new(DoneCallbacks::new());
        match std::mem::take(self) {
            Watchers::None => {}
            Watchers::Task(id) => list.push(Watcher::Task(id)),
            Watchers::Many(l) => return l,
            Watchers::Gather(core, index) => {
                let link = ChildLink { core, index };
                list.push_callback(Box::new(move |lp: &LoopHandle| link.fire(lp)));
            }
        }
        list
    }

    /// Register a done-callback.
    fn push_callback(&mut self, f: TaskCallback) {
        match self {
            Watchers::Many(list) => {
                list.push_callback(f);
            }
            _ => {
                let mut list = self.take_list();
                list.push_callback(f);
                *self = Watchers::Many(list);
            }
        }
    }
}

/// The header the loop keeps per task: 64 bytes, one cache line.
///
/// Its size is what a spawn costs in memory traffic: the table holds one header per live
/// task (in 64 KiB pages, `table.rs`), written by the spawn, the step and the join, and with
/// 1,000,000 tasks alive that is 64 MiB. Measured on W1 (spawn and join 1,000,000 tasks):
/// every byte of header cost about 0.7 ns per task (`DESIGN.md` §3). So the fields every
/// task uses are here, packed, and what few tasks use (a name, an owned waker, the task it
/// awaits, a failure) is in [`SlotExtra`], boxed, allocated the first time a task needs it.
///
/// ```text
///   0        16        32     40     48    52    56    60  62 63 64
///   ┌────────┬─────────┬──────┬──────┬─────┬─────┬─────┬───┬──┬──┐
///   │ cell   │watchers │ at   │extra │ gen │polls│size │prk│st│fl│
///   └────────┴─────────┴──────┴──────┴─────┴─────┴─────┴───┴──┴──┘
/// ```
pub(crate) struct TaskSlot {
    /// The task's box (boxed.rs): its future while it waits for a step, its output once
    /// DONE until the handle takes it. Empty while the future is out being polled, after the
    /// output was taken, and for a FAILED or CANCELLED task (its error is in `extra`).
    pub(crate) cell: Option<BoxedTask>,
    /// Done-callbacks and the wakers of tasks awaiting this one.
    pub(crate) watchers: Watchers,
    /// Where `spawn` was called (`#[track_caller]`), for the inspector.
    pub(crate) spawned_at: &'static Location<'static>,
    /// The rarely used fields, allocated on first use.
    pub(crate) extra: Option<Box<SlotExtra>>,
    /// The task's generation (spawn number); with the slot's index, its [`TaskId`].
    pub(crate) generation: u32,
    /// How many times it was polled.
    pub(crate) polls: u32,
    /// `size_of_val` of the future, for the walkthrough.
    pub(crate) future_size: u32,
    /// How many futures and tasks hold this task's id to wake it (F4): with the timers that
    /// name it and the clones of its owned waker, what the lost-waker check counts.
    pub(crate) parked: u16,
    /// Life stage (see the state machine above).
    pub(crate) state: TaskState,
    /// `QUEUED`, `CANCEL_REQUESTED`, `HANDLE_ALIVE`, `LOST_REPORTED`: see the methods.
    flags: u8,
}

// W1's cost follows the header's size (see above): keep it to one cache line.
const _: () = assert!(std::mem::size_of::<TaskSlot>() == 64);

/// The part of a task's header most tasks never use, boxed so that the slab pays 8 bytes
/// for it (see [`TaskSlot`]).
#[derive(Default)]
pub(crate) struct SlotExtra {
    /// Name given at spawn; `None` means `Task-N`.
    pub(crate) name: Option<Box<str>>,
    /// The task's owned waker, made the first time a poll cloned its lent waker (W4).
    pub(crate) waker: Option<Waker>,
    /// The task this one awaited when it last suspended (asyncio: `_fut_waiter`), for K2.
    /// `None` means none.
    pub(crate) waiting_on: Option<TaskId>,
    /// How a FAILED or CANCELLED task failed.
    pub(crate) failure: Option<Failure>,
}

/// asyncio's name for an unnamed task: `Task-N`, N its spawn number.
fn default_name(generation: u32) -> String {
    format!("Task-{generation}")
}

/// "Awaits nothing": generation 0 is never given to a task.
const NO_TASK: TaskId = TaskId { index: 0, generation: 0 };

/// Set in a handle's `id.index` once the task's value was handed to the handle and its slot
/// freed in the same look-up (see [`Task`]). Slot indices stay below it (`spawn` checks), so
/// a look-up with it finds nothing, and the handle has nothing left to release.
const HANDED_OVER: u32 = 1 << 31;

const QUEUED: u8 = 1;
const CANCEL_REQUESTED: u8 = 2;
const HANDLE_ALIVE: u8 = 4;
const LOST_REPORTED: u8 = 8;

impl TaskSlot {
    /// Does this slot hold task `id`? (The slab was indexed by `id.index`; a stale id has an
    /// older generation, W2.)
    pub(crate) fn holds(&self, id: TaskId) -> bool {
        self.generation == id.generation
    }

    /// The id of the task in slab slot `index` (this slot).
    pub(crate) fn id_at(&self, index: usize) -> TaskId {
        TaskId { index: index as u32, generation: self.generation }
    }

    /// The display name: the given one or `Task-N`.
    pub(crate) fn display_name(&self) -> String {
        match self.extra.as_ref().and_then(|e| e.name.as_ref()) {
            Some(n) => n.to_string(),
            None => default_name(self.generation),
        }
    }

    /// The rarely used fields, allocated now if this is their first use.
    pub(crate) fn extra_mut(&mut self) -> &mut SlotExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// The owned waker, if a poll ever cloned the lent one.
    pub(crate) fn owned_waker(&self) -> Option<&Waker> {
        self.extra.as_ref().and_then(|e| e.waker.as_ref())
    }

    /// The task this one awaited when it last suspended (K2).
    pub(crate) fn waiting_on(&self) -> Option<TaskId> {
        self.extra.as_ref().and_then(|e| e.waiting_on)
    }

    /// How it failed, if it is FAILED or CANCELLED.
    pub(crate) fn failure(&self) -> Option<&Failure> {
        self.extra.as_ref().and_then(|e| e.failure.as_ref())
    }

    /// [`failure`](Self::failure), to mark it retrieved.
    pub(crate) fn failure_mut(&mut self) -> Option<&mut Failure> {
        self.extra.as_mut().and_then(|e| e.failure.as_mut())
    }

    fn flag(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    fn set_flag(&mut self, f: u8, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    /// In the ready queue already? Makes waking idempotent (W3).
    pub(crate) fn queued(&self) -> bool {
        self.flag(QUEUED)
    }

    pub(crate) fn set_queued(&mut self, on: bool) {
        self.set_flag(QUEUED, on);
    }

    /// `cancel()` was called; takes effect at the next step (K1).
    pub(crate) fn cancel_requested(&self) -> bool {
        self.flag(CANCEL_REQUESTED)
    }

    /// A `Task<T>` handle still exists; if not, the slot is freed when the task finishes.
    pub(crate) fn handle_alive(&self) -> bool {
        self.flag(HANDLE_ALIVE)
    }

    /// The slot's part of finishing (its cell or failure already set): the final `state`,
    /// no owned waker, and the watchers taken out to be fired. Returns them, and whether the
    /// handle is gone (the slot is then freed).
    fn record_ending(&mut self, state: TaskState) -> (Watchers, bool) {
        self.state = state;
        // K5: a finished task has no step left; an entry it queued for itself during its
        // last step is now stale, and `run_task` returns at its `queued` check.
        self.set_queued(false);
        if let Some(extra) = self.extra.as_deref_mut() {
            extra.waker = None;
        }
        (std::mem::take(&mut self.watchers), !self.handle_alive())
    }

    /// The lost-waker check already reported this task.
    pub(crate) fn lost_reported(&self) -> bool {
        self.flag(LOST_REPORTED)
    }

    pub(crate) fn set_lost_reported(&mut self) {
        self.set_flag(LOST_REPORTED, true);
    }
}

/// A handle to a spawned task: await it for the result. asyncio: the `Task` object returned
/// by `create_task`.
///
/// Dropping the handle does not cancel the task (as in asyncio and tokio): the task runs on,
/// detached, and its slot is freed when it finishes.
///
/// Reading the value (awaiting the handle, or [`result`](Self::result)) frees the slot in
/// the same look-up when nothing else is kept about the task (no name, no failure): the
/// handle then answers for it (`Task-N`, DONE, result already taken). Awaiting a million
/// handles is then one pass over the slab, not two (W1 in `BENCHMARKS.md`).
#[must_use = "a task runs even if its handle is dropped; keep the handle to await the result"]
pub struct Task<T> {
    lp: LoopHandle,
    id: TaskId,
    _output: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}

impl<T> Task<T> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        TaskId { index: self.id.index & !HANDED_OVER, generation: self.id.generation }
    }

    /// Was the value handed over, and the slot freed (see [`Task`])?
    fn handed_over(&self) -> bool {
        self.id.handed_over()
    }

    /// The task's name (`Task-N` unless one was given). asyncio: `get_name()`.
    pub fn name(&self) -> String {
        if self.handed_over() {
            // Only an unnamed task's slot is freed at hand-over.
            return default_name(self.id.generation);
        }
        self.lp.task_name(self.id).unwrap_or_default()
    }

    /// The task's current state.
    pub fn state(&self) -> TaskState {
        self.lp.task_state(self.id).unwrap_or(TaskState::Done)
    }
}

impl<T: 'static> Task<T> {
    /// Finished (done, failed or cancelled)? asyncio: `done()`.
    pub fn is_done(&self) -> bool {
        self.state().is_finished()
    }

    /// Finished by cancellation? asyncio: `cancelled()`.
    pub fn is_cancelled(&self) -> bool {
        self.state() == TaskState::Cancelled
    }

    /// Request cancellation (K1, K2). Returns false if the task had already finished.
    /// asyncio: `Task.cancel()`.
    pub fn cancel(&self) -> bool {
        self.lp.cancel_task(self.id)
    }

    /// Read the result without awaiting. asyncio: `Task.result()`: `InvalidState` while the
    /// task runs (or if the value was already taken), `Cancelled` or `Panicked` if it failed.
    pub fn result(&mut self) -> Result<T, Error> {
        self.take_result().unwrap_or_else(|| Err(Error::invalid_state("Result is not set.")))
    }

    /// The result if the task finished (once), handing the slot over when it can.
    fn take_result(&mut self) -> Option<Result<T, Error>> {
        if self.handed_over() {
            return Some(Err(Error::invalid_state(TAKEN)));
        }
        self.lp.take_task_result::<T>(&mut self.id)
    }

    /// Schedule `f` when the task finishes (with `call_soon`, in registration order; also if
    /// it has already finished). asyncio: `add_done_callback`.
    pub fn add_done_callback(&self, f: impl FnOnce(&LoopHandle) + 'static) {
        self.lp.add_task_callback(self.id, Box::new(f));
    }

    /// Let the task run on without a handle (the same as dropping it, said out loud).
    pub fn detach(self) {}

    /// Give up the handle object but not the ownership it stands for: the slot stays until
    /// [`LoopHandle::release_child`] (a gather keeps its children this way, G4).
    pub(crate) fn into_id(mut self) -> TaskId {
        // Not `mem::forget(self)`: that would also forget the handle's `LoopHandle`, one
        // strong count of the loop that nothing ever releases (Miri's leak check found it).
        // `Drop` runs on a generation-0 id instead, which names no task: the slot stays.
        std::mem::replace(&mut self.id, NO_TASK)
    }
}

impl<T: 'static> Future for Task<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        // `Task` is `Unpin`: its fields are a loop handle and an id.
        let this = self.get_mut();
        match this.take_result() {
            Some(r) => Poll::Ready(r),
            None => {
                this.lp.watch_task(this.id, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if !self.handed_over() {
            self.lp.release_task_handle(self.id);
        }
    }
}

/// The error for a value read twice.
const TAKEN: &str = "the task's result was already taken";

impl LoopHandle {
    /// Schedule `fut` as a new task and return its handle. Its first step runs in a coming
    /// iteration, never inside this call (K3). asyncio: `loop.create_task(coro)`.
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_inner(None, fut, Location::caller())
    }

    /// [`spawn`](Self::spawn) with a name. asyncio: `create_task(coro, name=...)`.
    #[track_caller]
    pub fn spawn_named<F>(&self, name: impl Into<String>, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_inner(Some(name.into().into_boxed_str()), fut, Location::caller())
    }

    /// asyncio's name for [`spawn`](Self::spawn).
    #[track_caller]
    pub fn create_task<F>(&self, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_inner(None, fut, Location::caller())
    }

    fn spawn_inner<F>(&self, name: Option<Box<str>>, fut: F, at: &'static Location<'static>) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let inner = &self.inner;
        let boxed = TaskBox::new(&inner.arena, fut);
        let future_size = boxed.size();
        let closed = inner.closed.get();
        // A closed loop's future is freed at the end of this function, outside the borrow
        // (its destructors may call the loop).
        let (boxed, refused) = if closed { (None, Some(boxed)) } else { (Some(boxed), None) };
        let generation = inner.task_counter.get().wrapping_add(1);
        inner.task_counter.set(generation);
        let id = {
            let mut tasks = inner.tasks.borrow_mut();
            // Born READY and queued (edge 1 of the state machine, done here in one write of
            // the slot rather than a second lookup); a closed loop's task stays CREATED
            // until it is finished as cancelled below.
            let index = tasks.insert(TaskSlot {
                cell: boxed,
                watchers: Watchers::None,
                spawned_at: at,
                extra: name.map(|name| Box::new(SlotExtra { name: Some(name), ..SlotExtra::default() })),
                generation,
                polls: 0,
                future_size: u32::try_from(future_size).unwrap_or(u32::MAX),
                parked: 0,
                state: if closed { TaskState::Created } else { TaskState::Ready },
                flags: if closed { HANDLE_ALIVE } else { HANDLE_ALIVE | QUEUED },
            });
            // 2^31 live tasks would be 128 GiB of headers; the bit above is HANDED_OVER's.
            let index = u32::try_from(index).ok().filter(|i| i & HANDED_OVER == 0);
            TaskId { index: index.expect("looplab: more than 2^31 tasks alive at once"), generation }
        };
        if inner.tracer.on() {
            let name = self.task_name(id).unwrap_or_default();
            self.emit(EventKind::TaskCreated { task: id, name });
        }
        if closed {
            // A closed loop runs nothing: the task is born cancelled, and says so.
            if let Some(b) = refused {
                inner.arena.free(b);
            }
            self.report(&format!("spawn on a closed loop: task {id} was cancelled before it ran"));
            self.finish_task(id, Error::cancelled());
            // The report just told of it: its cancellation counts as read (K4).
            let _ = self.task_exception(id);
        } else {
            // What `schedule_task` does, minus the checks a fresh slot passes by construction.
            inner.ready.borrow_mut().push_back(Ready::task(id));
            self.emit_with(|| EventKind::TaskWoken { task: id, by: WakeSource::Spawn });
        }
        Task { lp: self.clone(), id, _output: PhantomData }
    }

    /// Wake `id` (W2, W3), recording who woke it from what is running now.
    pub(crate) fn wake_task(&self, id: TaskId) {
        self.wake_task_unparking(id, false);
    }

    /// [`wake_task`](Self::wake_task) for a watcher entry that named `id` and has now
    /// fired: with `unpark`, the entry also stops counting in the task's `parked` (F4), in
    /// the same look-up of the slot.
    pub(crate) fn wake_task_unparking(&self, id: TaskId, unpark: bool) {
        // Who woke it is only needed for the event log: worked out only when a sink listens.
        self.schedule_task_by(id, unpark, || match self.inner.current.get() {
            Running::Idle => WakeSource::Outside,
            Running::Task(t) => WakeSource::Task(t),
            Running::Callback { index, seq } => WakeSource::Callback(CallbackId { index, seq }),
            Running::Timer { index, seq } => WakeSource::Timer(CallbackId { index, seq }),
            Running::Io(t) => WakeSource::Io(t),
            Running::Remote => WakeSource::Remote,
        });
    }

    /// Put `id` in the ready queue unless it is stale, finished or already queued.
    pub(crate) fn schedule_task(&self, id: TaskId, by: WakeSource) {
        self.schedule_task_by(id, false, || by);
    }

    /// [`schedule_task`](Self::schedule_task), with the waker's identity computed on demand.
    #[inline]
    fn schedule_task_by(&self, id: TaskId, unpark: bool, by: impl FnOnce() -> WakeSource) {
        {
            let mut tasks = self.inner.tasks.borrow_mut();
            let Some(slot) = tasks.find_mut(id) else {
                return;
            };
            if unpark {
                slot.parked = slot.parked.saturating_sub(1); // F4
            }
            if slot.queued() || slot.state.is_finished() {
                return; // W2, W3
            }
            slot.set_queued(true);
            if slot.state != TaskState::Running {
                slot.state = TaskState::Ready;
            }
        }
        self.inner.ready.borrow_mut().push_back(Ready::task(id));
        self.emit_with(|| EventKind::TaskWoken { task: id, by: by() });
    }

    /// One step of a task. asyncio: `Task.__step`. The only place a task's future is polled.
    pub(crate) fn run_task<const T: bool>(&self, id: TaskId) {
        let inner = &self.inner;
        // Take the future (and the owned waker, if any) out, so user code runs with no slab
        // borrow held.
        let (mut fut, owned, cancel) = {
            let mut tasks = inner.tasks.borrow_mut();
            let Some(slot) = tasks.find_mut(id).filter(|s| s.queued()) else {
                return;
            };
            slot.set_queued(false);
            // A finished task's cell holds its output: no future to poll, leave it (K5).
            if slot.state.is_finished() {
                return;
            }
            let Some(fut) = slot.cell.take() else {
                return;
            };
            let cancel = slot.cancel_requested();
            if !cancel {
                slot.state = TaskState::Running;
                slot.polls = slot.polls.saturating_add(1);
            }
            let owned = match slot.extra.as_deref_mut() {
                Some(extra) => {
                    extra.waiting_on = None;
                    extra.waker.take()
                }
                None => None,
            };
            (fut, owned, cancel)
        };
        if cancel {
            // K1: drop instead of poll. Destructors of the suspended future run here.
            inner.arena.free(fut);
            drop(owned);
            self.finish_task(id, Error::cancelled());
            return;
        }
        self.emit_as::<T>(|| EventKind::TaskPolled { task: id });
        let prev = inner.current.replace(Running::Task(id));
        let poll_with = |waker: &Waker, fut: &mut BoxedTask| {
            let mut cx = Context::from_waker(waker);
            std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll_task(&mut cx)))
        };
        let (polled, owned, woken) = match owned {
            Some(w) => (poll_with(&w, &mut fut), Some(w), false),
            None => {
                // W4: lend a stack waker; allocate only if the poll clones it.
                let lent = LentWaker::new(id, &inner.remote);
                let polled = with_lent_waker(&lent, |w| poll_with(w, &mut fut));
                let woken = lent.woken();
                (polled, lent.promoted.into_inner().map(waker_for), woken)
            }
        };
        // `current` stays this task until the step is wrapped up, so the wake-ups its
        // completion causes are attributed to it (who woke whom).
        self.finish_step::<T>(id, polled, fut, owned, woken);
        inner.current.set(prev);
    }

    /// The end of a step: put a pending future back (queued again if it woke itself through
    /// its lent waker, `woken`, W5), or record the outcome.
    fn finish_step<const T: bool>(
        &self,
        id: TaskId,
        polled: std::thread::Result<Poll<()>>,
        fut: BoxedTask,
        owned: Option<Waker>,
        woken: bool,
    ) {
        let inner = &self.inner;
        match polled {
            Ok(Poll::Pending) => {
                let mut tasks = inner.tasks.borrow_mut();
                let slot = tasks.at_mut(id.index);
                slot.cell = Some(fut);
                if let Some(w) = owned {
                    slot.extra_mut().waker = Some(w);
                }
                if woken && !slot.queued() {
                    // W5: the self-wake of `yield_now`, queued as the step ends (asyncio's
                    // `call_soon(self.__step)` at the end of `__step`), in this look-up.
                    slot.set_queued(true);
                    slot.state = TaskState::Ready;
                    drop(tasks);
                    inner.ready.borrow_mut().push_back(Ready::task(id));
                    // One check of the tracer for both events (L1: the `yield_now` path).
                    if T && inner.tracer.on() {
                        self.emit(EventKind::TaskWoken { task: id, by: WakeSource::Task(id) });
                        self.emit(EventKind::TaskSuspended { task: id });
                    }
                    return;
                } else if slot.cancel_requested() && !slot.queued() {
                    // cancel() was called on ourselves while running: take effect next step.
                    drop(tasks);
                    self.schedule_task(id, WakeSource::Task(id));
                } else {
                    slot.state = if slot.queued() { TaskState::Ready } else { TaskState::Waiting };
                    drop(tasks);
                }
                self.emit_as::<T>(|| EventKind::TaskSuspended { task: id });
            }
            Ok(Poll::Ready(())) => {
                drop(owned);
                let mut tasks = inner.tasks.borrow_mut();
                let slot = tasks.at_mut(id.index);
                if !slot.cancel_requested() {
                    // The common ending, recorded in the look-up that checked for a cancel.
                    slot.cell = Some(fut);
                    let (watchers, free) = slot.record_ending(TaskState::Done);
                    drop(tasks);
                    self.announce_ending::<T>(id, || Outcome::Done, watchers, free);
                } else {
                    // asyncio's `_must_cancel` at the end of `__step`: a task that was asked to
                    // cancel and then returned ends cancelled; its value is dropped.
                    drop(tasks);
                    inner.arena.free(fut);
                    self.finish_task(id, Error::cancelled());
                }
            }
            Err(payload) => {
                inner.arena.free(fut);
                drop(owned);
                let message = panic_message(&*payload);
                let task = self.task_name(id).unwrap_or_default();
                self.finish_task(id, Error::from(PanicError { task, message }));
            }
        }
    }

    /// End a task that failed with `error`: CANCELLED for a cancellation, else FAILED.
    /// Record the failure (not yet read, K4), schedule done-callbacks and awaiters, free a
    /// detached slot. (A task that returned a value ends in `finish_step`, in the look-up
    /// that checked for a cancel request.)
    #[cold]
    #[inline(never)]
    fn finish_task(&self, id: TaskId, error: Error) {
        let (state, outcome) = match &error {
            Error::Cancelled(_) => (TaskState::Cancelled, Outcome::Cancelled),
            Error::Panicked(p) => (TaskState::Failed, Outcome::Panicked(p.message.clone())),
            _ => (TaskState::Failed, Outcome::Done),
        };
        let (watchers, free) = {
            let mut tasks = self.inner.tasks.borrow_mut();
            let slot = tasks.at_mut(id.index);
            debug_assert!(slot.cell.is_none(), "a failing task's box was freed when its step ended");
            slot.extra_mut().failure = Some(Failure { error, retrieved: false });
            slot.record_ending(state)
        };
        self.announce_ending::<true>(id, || outcome, watchers, free);
    }

    /// After [`TaskSlot::record_ending`], outside the borrow: log it, schedule the watchers,
    /// free a detached slot.
    fn announce_ending<const T: bool>(
        &self,
        id: TaskId,
        outcome: impl FnOnce() -> Outcome,
        watchers: Watchers,
        free: bool,
    ) {
        self.emit_as::<T>(|| EventKind::TaskFinished { task: id, outcome: outcome() });
        let has_callbacks = matches!(&watchers, Watchers::Many(_));
        // Most tasks end unwatched (their handle reads them later): no call for nothing.
        if !matches!(watchers, Watchers::None) {
            self.fire_watchers(watchers);
        }
        if free {
            if has_callbacks {
                // Its done-callbacks may still read its outcome (`task_exception`), as
                // asyncio's `TaskGroup` does: forget the slot only after they ran (queued
                // behind them), and only then decide whether an error went unread (K4).
                self.call_soon(move |lp| lp.free_task_slot(id));
            } else {
                self.free_task_slot(id);
            }
        }
    }

    /// Schedule every watcher in registration order: callbacks with `call_soon`, awaiting
    /// tasks by waking them (asyncio: both are done-callbacks, so they interleave in order).
    fn fire_watchers(&self, watchers: Watchers) {
        match watchers {
            Watchers::None => {}
            // The awaiting task's entry fires: it stops counting this task (F4).
            Watchers::Task(id) => self.wake_task_unparking(id, true),
            Watchers::Gather(core, index) => self.schedule_callback(CallbackFn::Gather(ChildLink { core, index })),
            Watchers::Many(mut list) => fire_entries(list.take_entries(), self, |f| {
                self.call_soon(f);
            }),
        }
    }

    /// Remove a finished task whose handle is gone; report an unread failure (K4).
    pub(crate) fn free_task_slot(&self, id: TaskId) {
        let Some(slot) = self.inner.tasks.borrow_mut().remove(id) else {
            return;
        };
        self.forget_slot(slot);
    }

    /// A removed slot: report an unread failure (K4), then drop it, with no borrow held
    /// (dropping the output may run user destructors).
    fn forget_slot(&self, mut slot: TaskSlot) {
        if let Some(f) = slot.failure() {
            if let (Error::Panicked(p), false) = (&f.error, f.retrieved) {
                self.report(&format!("Task exception was never retrieved: {p}"));
            }
        }
        if let Some(cell) = slot.cell.take() {
            self.inner.arena.free(cell);
        }
        drop(slot);
    }

    /// The handle was dropped: free the slot now if finished (in the same look-up), else
    /// when it finishes.
    fn release_task_handle(&self, id: TaskId) {
        let removed = {
            let Ok(mut tasks) = self.inner.tasks.try_borrow_mut() else {
                return;
            };
            tasks.update(id, |s| {
                let finished = s.state.is_finished();
                if !finished {
                    s.set_flag(HANDLE_ALIVE, false);
                }
                ((), finished)
            })
        };
        if let Some(((), Some(slot))) = removed {
            self.forget_slot(slot);
        }
    }

    /// If finished, take the result out (once); else None. The caller owns the task's handle
    /// (a `Task<T>`, or a gather holding its children's), so a task that returned a value and
    /// keeps nothing else in its header is removed from the slab in the same look-up (K6, the
    /// hand-over, see [`Task`]), and `id` gets the `HANDED_OVER` bit to say so.
    fn take_task_result<T: 'static>(&self, id: &mut TaskId) -> Option<Result<T, Error>> {
        let mut tasks = self.inner.tasks.borrow_mut();
        // What the slot gives: `None` while the task runs, its error, or its cell (`None` if
        // the value was taken); and whether the slot goes (K6) in the same look-up.
        let found = tasks.update(*id, |slot| match slot.state {
            TaskState::Failed | TaskState::Cancelled => {
                let error = match slot.failure_mut() {
                    Some(f) => {
                        f.retrieved = true;
                        f.error.clone()
                    }
                    // Only `close()` ends a task with no failure recorded (and then forgets it).
                    None => Error::cancelled(),
                };
                (Some(Err(error)), false)
            }
            // A DONE task has no watchers left (they fired) and, with no `extra`, no name or
            // failure to keep: the handle can answer for it from here on.
            TaskState::Done => (Some(Ok(slot.cell.take())), slot.extra.is_none()),
            _ => (None, false),
        });
        let Some((read, removed)) = found else {
            return Some(Err(Error::invalid_state("task is gone (loop closed)")));
        };
        if let Some(slot) = removed {
            // Nothing left in the slot owns anything (no `extra`, the watchers fired when it
            // finished, the cell just taken): forgetting it skips drop code that would find
            // nothing to drop.
            debug_assert!(matches!(slot.watchers, Watchers::None) && slot.cell.is_none());
            std::mem::forget(slot);
            id.index |= HANDED_OVER;
        }
        // Free the cell outside the borrow: nothing user-visible drops here (the future is
        // gone, the output moves out), but the rule keeps it simple.
        drop(tasks);
        let mut cell = match read? {
            Err(error) => return Some(Err(error)),
            Ok(None) => return Some(Err(Error::invalid_state(TAKEN))),
            Ok(Some(cell)) => cell,
        };
        let mut out: Option<T> = None;
        // SAFETY: `out` is an `Option<T>`, and `T` is the type `want` names.
        let read = unsafe { cell.as_mut().take_output(std::any::TypeId::of::<T>(), (&raw mut out).cast()) };
        self.inner.arena.free(cell);
        match out {
            Some(v) if read => Some(Ok(v)),
            _ => Some(Err(Error::invalid_state("task output type mismatch"))),
        }
    }

    /// Register the awaiting task's waker on `id`, and note what the current task awaits
    /// (for K2).
    fn watch_task(&self, id: TaskId, waker: &Waker) {
        let current = self.inner.current.get();
        let mut tasks = self.inner.tasks.borrow_mut();
        let added = tasks.find_mut(id).and_then(|slot| slot.watchers.set_waker(waker, self.inner.id));
        // F4: count the new entry in the awaiting task's header (same borrow).
        if let Some(s) = added.and_then(|a| tasks.find_mut(a)) {
            s.parked = s.parked.saturating_add(1);
        }
        if let Running::Task(me) = current {
            if let Some(s) = tasks.find_mut(me) {
                s.extra_mut().waiting_on = Some(id);
            }
        }
    }

    /// Make `link` the done-callback of `id`, whose handle the gather now owns (G4). If the
    /// task already finished, the link is scheduled at once, as `add_done_callback` would.
    pub(crate) fn link_gather_child(&self, id: TaskId, link: ChildLink) {
        if let Some(s) = self.inner.tasks.borrow_mut().find_mut(id).filter(|s| !s.state.is_finished()) {
            match &mut s.watchers {
                w @ Watchers::None => *w = Watchers::Gather(link.core, link.index),
                w => w.push_callback(Box::new(move |lp: &LoopHandle| link.fire(lp))),
            }
            return;
        }
        self.schedule_callback(CallbackFn::Gather(link));
    }

    /// Take a gather child's result and free its slot (the handle the gather owned, G4).
    pub(crate) fn take_child_result<T: 'static>(&self, id: TaskId) -> Result<T, Error> {
        let mut held = id;
        let r = self.take_task_result::<T>(&mut held);
        if !held.handed_over() {
            self.release_task_handle(id);
        }
        r.unwrap_or_else(|| Err(Error::invalid_state("Result is not set.")))
    }

    /// Drop a gather child nobody will read: a failure counts as retrieved (asyncio's
    /// `_done_callback` calls `fut.exception()`), and the slot is freed once it finished.
    pub(crate) fn release_child(&self, id: TaskId) {
        self.task_exception(id);
        self.release_task_handle(id);
    }

    fn add_task_callback(&self, id: TaskId, f: TaskCallback) {
        if let Some(s) = self.inner.tasks.borrow_mut().find_mut(id).filter(|s| !s.state.is_finished()) {
            s.watchers.push_callback(f);
            return;
        }
        // Already finished: scheduled, never run inline (asyncio).
        self.call_soon(f);
    }

    /// Cancel a task by id (K1, K2). Returns false if it had already finished.
    pub fn cancel_task(&self, id: TaskId) -> bool {
        let (inner_task, queued) = {
            let mut tasks = self.inner.tasks.borrow_mut();
            let Some(slot) = tasks.find_mut(id).filter(|s| !s.state.is_finished()) else {
                return false;
            };
            slot.set_flag(CANCEL_REQUESTED, true);
            (slot.waiting_on(), slot.queued())
        };
        self.emit_with(|| EventKind::TaskCancelRequested { task: id });
        // K2: cancel what we await first; we are woken when it finishes.
        if let Some(inner_id) = inner_task {
            if self.cancel_task(inner_id) {
                return true;
            }
        }
        if !queued && self.inner.current.get() != Running::Task(id) {
            self.wake_task(id);
        }
        true
    }

    /// The error a finished task ended with (panic or cancellation), marking it retrieved so
    /// it is not reported as "never retrieved" (K4); `None` if it succeeded, is still running,
    /// or is gone. asyncio: `Task.exception()`, as a done-callback calls it.
    pub fn task_exception(&self, id: TaskId) -> Option<Error> {
        let mut tasks = self.inner.tasks.borrow_mut();
        let f = tasks.find_mut(id)?.failure_mut()?;
        f.retrieved = true;
        Some(f.error.clone())
    }

    /// F4: one more (`delta` = 1) or one fewer (-1) future or task holds `id` to wake it.
    /// Never panics: a slab already borrowed (a destructor running inside the loop's own
    /// bookkeeping) leaves the count as it was, which can only hide a lost waker, never
    /// invent one.
    pub(crate) fn adjust_parked(&self, id: TaskId, delta: i32) {
        let Ok(mut tasks) = self.inner.tasks.try_borrow_mut() else { return };
        if let Some(s) = tasks.find_mut(id) {
            s.parked = if delta > 0 { s.parked.saturating_add(1) } else { s.parked.saturating_sub(1) };
        }
    }

    /// A task's display name, if the task exists.
    pub fn task_name(&self, id: TaskId) -> Option<String> {
        let tasks = self.inner.tasks.borrow();
        tasks.find(id).map(|s| s.display_name())
    }

    /// A task's state, if the task still has a slot.
    pub fn task_state(&self, id: TaskId) -> Option<TaskState> {
        let tasks = self.inner.tasks.borrow();
        tasks.find(id).map(|s| s.state)
    }

    /// Where a task was spawned (`#[track_caller]`), for the inspector.
    pub fn task_spawned_at(&self, id: TaskId) -> Option<&'static Location<'static>> {
        let tasks = self.inner.tasks.borrow();
        tasks.find(id).map(|s| s.spawned_at)
    }

    /// `size_of_val` of a task's future (its state machine), for the walkthrough.
    pub fn task_future_size(&self, id: TaskId) -> Option<usize> {
        let tasks = self.inner.tasks.borrow();
        tasks.find(id).map(|s| s.future_size as usize)
    }

    /// The task being polled right now, if any. asyncio: `asyncio.current_task()`.
    pub fn current_task(&self) -> Option<TaskId> {
        match self.inner.current.get() {
            Running::Task(t) => Some(t),
            _ => None,
        }
    }
}
