//! The event loop: a FIFO of ready callbacks and tasks, a timer queue, and a poller.
//!
//! One *iteration* (asyncio's `_run_once`) has four phases. Work that appears while phase 4
//! runs waits for the next iteration; that one rule explains most of asyncio's ordering.
//!
//! ```text
//!   call_soon(cb) ────────────────────────────► ready: ReadyQueue (ring) ─┐
//!   spawn(fut) / waker.wake() ── Task(id) ───────►   [Cb #4][Task T2]...   │ phase 4:
//!   call_later(d, cb) ─► TimerQueue ─(phase 3: due, (deadline,seq) order)─┘ run the n that
//!   socket readable ───► Reactor ────(phase 2: wake parked wakers)────────┘ were there at
//!   other thread ──────► inbox + bell ─(phase 0: drain)───────────────────┘ its start
//!
//!   run_once():
//!     0. drain the thread-safe inbox
//!     1. timeout = 0 if anything is ready (or stopping), else until the next timer, else ∞
//!     2. poll I/O for up to `timeout` (skipped when nothing is registered and work is ready;
//!        on the virtual clock: a zero-timeout poll, then jump the clock to the deadline)
//!     3. move due timers to the back of the ready queue, earliest (deadline, seq) first
//!     4. run exactly the entries that were in the ready queue when phase 4 began
//! ```
//!
//! # asyncio equivalent
//! `BaseEventLoop` (`asyncio/base_events.py`): `call_soon` appends a `Handle` to `_ready`,
//! `call_at` pushes a `TimerHandle` onto the `_scheduled` heap (a hierarchical wheel here, a
//! heap on request), `_run_once` is `LoopHandle::run_once`. asyncio breaks ties between
//! equal deadlines in heap-shape order; looplab fires them in scheduling order (E3).
//!
//! # Invariants
//! - **E1** Callbacks and task steps run only in phase 4, never inside `call_soon`, `spawn`
//!   or `wake`.
//! - **E2** An entry added during phase 4 runs in the next iteration.
//! - **E3** Timers fire in `(deadline, seq)` order, `seq` being the scheduling order, and
//!   never before their deadline.
//! - **E4** A cancelled handle never runs, even if it is already in the batch being run.
//! - **E5** `stop()` lets the current iteration finish; `stop()` before `run_forever()`
//!   makes it run exactly one iteration.
//! - **E6** Scheduling from the loop's thread never makes a syscall (no self-wake: R2), and
//!   an iteration with ready work and no I/O sources makes no selector call.
//! - **E7** A panic in a callback is caught and reported; the loop goes on.

mod handle;
mod ready;
pub(crate) mod threadsafe;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::Duration;

use crossbeam_channel::Receiver;
use slab::Slab;

use crate::clock::{Clock, Nanos, duration_to_nanos};
use crate::error::{DeadlockError, LoopError, WaitingTask, panic_message};
use crate::net::reactor::{BELL, FdCall, Reactor, Readiness};
use crate::task::{TaskArena, TaskId, TaskState, TaskTable};
use crate::timer::{Cascade, Expired, TieOrder, TimerHeap, TimerQueue, TimerWheel};
use crate::trace::{CallbackId, EventKind, TimeoutReason, TraceSink, Tracer, WakeSource};

pub(crate) use handle::{CallbackFn, CallbackSlot, NO_TIMER};
pub use handle::{Handle, TimerHandle};
pub(crate) use ready::{Ready, ReadyKind, ReadyQueue};
pub use threadsafe::{KeepAlive, ThreadsafeHandle};
use threadsafe::{Remote, RemoteMsg};

/// What the loop is executing right now: the answer to "who woke whom".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Running {
    /// Between steps.
    Idle,
    /// Polling a task.
    Task(TaskId),
    /// Running a `call_soon` callback. (Ids inline, as in `Ready`: 16 bytes in all, which
    /// matters because the loop swaps this value in and out around every step.)
    Callback { index: u32, seq: u64 },
    /// Running a timer's callback.
    Timer { index: u32, seq: u64 },
    /// Dispatching I/O readiness of a token.
    Io(usize),
    /// Running a message from another thread.
    Remote,
}

const _: () = assert!(std::mem::size_of::<Running>() == 16);

impl Running {
    /// Running callback `id`.
    pub(crate) fn callback(id: CallbackId) -> Running {
        Running::Callback { index: id.index, seq: id.seq }
    }
}

/// Which timer queue a loop uses. Learners can run the same program on both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimerBackend {
    /// The hierarchical timing wheel (default): O(1) insert and cancel.
    #[default]
    Wheel,
    /// A binary heap as asyncio has it, ties broken by scheduling order (E3).
    Heap,
    /// A binary heap that sifts exactly like CPython's `heapq`: equal deadlines come out in
    /// CPython's order. Breaks E3 on purpose, to show asyncio's behaviour.
    HeapAsyncioTies,
}

/// The timer queue, as an enum so the hot path is a direct call, not a virtual one.
pub(crate) enum Timers {
    Wheel(TimerWheel<u32>),
    Heap(TimerHeap<u32>),
}

macro_rules! timers_dispatch {
    ($self:expr, $t:ident => $e:expr) => {
        match $self {
            Timers::Wheel($t) => $e,
            Timers::Heap($t) => $e,
        }
    };
}

impl Timers {
    fn new(backend: TimerBackend) -> Timers {
        match backend {
            TimerBackend::Wheel => Timers::Wheel(TimerWheel::new()),
            TimerBackend::Heap => Timers::Heap(TimerHeap::new(TieOrder::Fifo)),
            TimerBackend::HeapAsyncioTies => Timers::Heap(TimerHeap::new(TieOrder::Asyncio)),
        }
    }
    /// The queue as the trait, for the rare paths (snapshots, stats).
    pub(crate) fn queue(&self) -> &dyn TimerQueue<u32> {
        timers_dispatch!(self, t => t)
    }
    pub(crate) fn queue_mut(&mut self) -> &mut dyn TimerQueue<u32> {
        timers_dispatch!(self, t => t)
    }
}

/// A replacement for the default report-to-stderr. asyncio: the `set_exception_handler` handler.
pub(crate) type ExceptionHandler = Box<dyn FnMut(&str)>;

/// Counter giving each loop a process-unique id (wakers compare it).
static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

/// Everything a loop owns. Single-threaded: `Cell`s and `RefCell`s, each borrowed briefly
/// and never across user code.
pub(crate) struct Inner {
    /// Process-unique id.
    pub(crate) id: u64,
    /// Real or virtual time.
    pub(crate) clock: Clock,
    /// The FIFO of work. asyncio: `_ready`.
    pub(crate) ready: RefCell<ReadyQueue>,
    /// Callbacks waiting to run (in the ready queue or in a timer), by slot.
    pub(crate) callbacks: RefCell<Slab<CallbackSlot>>,
    /// Scheduled timers; the payload is a callback slot index. asyncio: `_scheduled`.
    pub(crate) timers: RefCell<Timers>,
    /// Reused buffer for due timers.
    pub(crate) expired: RefCell<Vec<Expired<u32>>>,
    /// Reused buffer for cascades, when tracing.
    pub(crate) cascades: RefCell<Vec<Cascade>>,
    /// The task slab.
    pub(crate) tasks: RefCell<TaskTable>,
    /// The tasks' boxes (M3: declared after `tasks`, so dropped after it).
    pub(crate) arena: TaskArena,
    /// Scheduling sequence counter (the `seq` of `(deadline, seq)`).
    pub(crate) seq: Cell<u64>,
    /// Spawn counter (task generations).
    pub(crate) task_counter: Cell<u32>,
    /// The part other threads hold.
    pub(crate) remote: Arc<Remote>,
    /// The inbox's receiving side.
    pub(crate) inbox: Receiver<RemoteMsg>,
    /// mio::Poll and the I/O sources.
    pub(crate) reactor: RefCell<Reactor>,
    /// Reused buffers for readiness events, the wakers they release and the
    /// `add_reader`/`add_writer` callbacks they schedule.
    pub(crate) io_events: RefCell<(Vec<Readiness>, Vec<Waker>, Vec<FdCall>)>,
    /// Event log fan-out.
    pub(crate) tracer: Tracer,
    /// What is executing now.
    pub(crate) current: Cell<Running>,
    /// Inside `run_forever`/`run_until_complete`?
    pub(crate) running: Cell<bool>,
    /// `stop()` was called. asyncio: `_stopping`.
    pub(crate) stopping: Cell<bool>,
    /// `close()` was called.
    pub(crate) closed: Cell<bool>,
    /// Iterations run so far.
    pub(crate) iteration: Cell<u64>,
    /// Run the lost-waker check at the end of each iteration (off by default: O(tasks)).
    pub(crate) lost_waker_check: Cell<bool>,
    /// Pool jobs in flight and their delivered results (`pool/bridge.rs`).
    pub(crate) jobs: RefCell<crate::pool::bridge::JobTable>,
    /// Replaces the default report-to-stderr. asyncio: `set_exception_handler`.
    pub(crate) exception_handler: RefCell<Option<ExceptionHandler>>,
}

/// A handle to an event loop: clone it freely, capture it in callbacks and tasks.
/// asyncio: the loop object, as `asyncio.get_running_loop()` returns it.
#[derive(Clone)]
pub struct LoopHandle {
    pub(crate) inner: Rc<Inner>,
}

/// The owner of an event loop. Dropping it closes the loop (pending tasks are dropped, so
/// their destructors run). Derefs to [`LoopHandle`] for every operation.
pub struct EventLoop {
    handle: LoopHandle,
}

impl std::ops::Deref for EventLoop {
    type Target = LoopHandle;
    fn deref(&self) -> &LoopHandle {
        &self.handle
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        if !self.handle.inner.running.get() {
            let _ = self.handle.close();
        }
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.fmt(f)
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("LoopHandle")
            .field("id", &i.id)
            .field("time", &i.clock.now())
            .field("ready", &i.ready.try_borrow().map(|r| r.len()).ok())
            .field("running", &i.running.get())
            .field("closed", &i.closed.get())
            .finish()
    }
}

/// Builds an [`EventLoop`] with a chosen clock and timer backend.
#[derive(Debug, Default)]
pub struct Builder {
    virtual_clock: bool,
    backend: TimerBackend,
}

impl Builder {
    /// Use the virtual clock (deterministic, jumps when idle).
    pub fn virtual_clock(mut self) -> Builder {
        self.virtual_clock = true;
        self
    }
    /// Use the virtual clock if `on`.
    pub fn virtual_clock_if(mut self, on: bool) -> Builder {
        self.virtual_clock = on;
        self
    }
    /// Choose the timer queue.
    pub fn timer_backend(mut self, backend: TimerBackend) -> Builder {
        self.backend = backend;
        self
    }
    /// Build the loop. Fails only if the OS refuses an epoll instance or an eventfd.
    pub fn build(self) -> std::io::Result<EventLoop> {
        let reactor = Reactor::new()?;
        let bell = mio::Waker::new(reactor.registry(), BELL)?;
        let id = NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed);
        let (remote, inbox) = Remote::new(id, bell);
        let inner = Inner {
            id,
            clock: if self.virtual_clock { Clock::virtual_clock() } else { Clock::real() },
            ready: RefCell::new(ReadyQueue::with_capacity(64)),
            callbacks: RefCell::new(Slab::with_capacity(64)),
            timers: RefCell::new(Timers::new(self.backend)),
            expired: RefCell::new(Vec::new()),
            cascades: RefCell::new(Vec::new()),
            tasks: RefCell::new(TaskTable::new()),
            arena: TaskArena::new(),
            seq: Cell::new(0),
            task_counter: Cell::new(0),
            remote,
            inbox,
            reactor: RefCell::new(reactor),
            io_events: RefCell::new((Vec::new(), Vec::new(), Vec::new())),
            tracer: Tracer::default(),
            current: Cell::new(Running::Idle),
            running: Cell::new(false),
            stopping: Cell::new(false),
            closed: Cell::new(false),
            iteration: Cell::new(0),
            exception_handler: RefCell::new(None),
            jobs: RefCell::new(slab::Slab::new()),
            lost_waker_check: Cell::new(false),
        };
        Ok(EventLoop { handle: LoopHandle { inner: Rc::new(inner) } })
    }
}

impl EventLoop {
    /// A loop on the real clock with the wheel. asyncio: `asyncio.new_event_loop()`.
    ///
    /// # Panics
    /// If the OS refuses an epoll instance or an eventfd (out of file descriptors); use
    /// [`EventLoop::builder`] to get that as an error.
    pub fn new() -> EventLoop {
        EventLoop::builder().build().expect("cannot create the loop's epoll instance or eventfd")
    }

    /// A loop on the virtual clock (tests, `--fast`). Same panics as [`EventLoop::new`].
    pub fn new_virtual() -> EventLoop {
        EventLoop::builder().virtual_clock().build().expect("cannot create the loop's epoll instance or eventfd")
    }

    /// Choose clock and timer backend.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A new handle to this loop (what callbacks receive).
    pub fn handle(&self) -> LoopHandle {
        self.handle.clone()
    }
}

impl Default for EventLoop {
    fn default() -> Self {
        EventLoop::new()
    }
}

thread_local! {
    /// The loop running on this thread, if any. asyncio: `events._running_loop`.
    static CURRENT: RefCell<Option<LoopHandle>> = const { RefCell::new(None) };
}

/// The loop running on this thread. asyncio: `asyncio.get_running_loop()`, which raises
/// `RuntimeError` when none runs; here that is `None`.
pub fn get_running_loop() -> Option<LoopHandle> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Sets `CURRENT` and `running` for the duration of a run; restores both on drop (also
/// when a panic unwinds through the run).
struct RunGuard<'a> {
    lp: &'a LoopHandle,
    prev: Option<LoopHandle>,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.lp.inner.running.set(false);
        self.lp.inner.stopping.set(false);
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

impl LoopHandle {
    /// Process-unique id of the loop.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Run `f` with the loop running on this thread, if any (used by wakers).
    pub(crate) fn with_current<R>(f: impl FnOnce(&LoopHandle) -> R) -> Option<R> {
        CURRENT.with(|c| c.borrow().as_ref().map(f))
    }

    /// Loop time. asyncio: `loop.time()` (a float of seconds there).
    pub fn time(&self) -> Duration {
        Duration::from_nanos(self.inner.clock.now())
    }

    /// Loop time in nanoseconds.
    pub fn now_ns(&self) -> Nanos {
        self.inner.clock.now()
    }

    /// Is this loop on the virtual clock?
    pub fn is_virtual(&self) -> bool {
        self.inner.clock.is_virtual()
    }

    /// Iterations run so far.
    pub fn iteration(&self) -> u64 {
        self.inner.iteration.get()
    }

    /// Running right now? asyncio: `is_running()`.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Closed? asyncio: `is_closed()`.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    fn next_seq(&self) -> u64 {
        let s = self.inner.seq.get() + 1;
        self.inner.seq.set(s);
        s
    }

    /// Counters of the timer queue (live timers, cascades, compactions...).
    pub fn timer_stats(&self) -> crate::timer::TimerStats {
        self.inner.timers.borrow().queue().stats()
    }

    // ----- the event log ---------------------------------------------------------------

    /// Attach a sink to the event log.
    pub fn add_trace_sink(&self, sink: impl TraceSink + 'static) {
        self.inner.tracer.add(Box::new(sink));
        self.set_timer_recording(true);
    }

    /// Detach every sink.
    pub fn clear_trace_sinks(&self) {
        self.inner.tracer.clear();
        self.set_timer_recording(false);
    }

    fn set_timer_recording(&self, on: bool) {
        self.inner.timers.borrow_mut().queue_mut().set_recording(on);
    }

    /// Emit a free-text note into the event log.
    pub fn trace_note(&self, text: impl Into<String>) {
        let text = text.into();
        self.emit_with(|| EventKind::Note { text });
    }

    #[inline(always)]
    pub(crate) fn emit_with(&self, make: impl FnOnce() -> EventKind) {
        self.inner.tracer.emit(|| self.inner.clock.now(), make);
    }

    /// [`emit_with`](Self::emit_with) in code compiled twice (L3): nothing at all when `T` is
    /// false, the usual check when it is true.
    #[inline(always)]
    pub(crate) fn emit_as<const T: bool>(&self, make: impl FnOnce() -> EventKind) {
        if T {
            self.emit_with(make);
        }
    }

    pub(crate) fn emit(&self, kind: EventKind) {
        self.emit_with(|| kind);
    }

    /// Is a sink attached? (Lets callers skip building expensive event payloads.)
    pub fn tracing(&self) -> bool {
        self.inner.tracer.on()
    }

    // ----- errors that nobody awaits -----------------------------------------------------

    /// Replace the handler for errors that have nobody to go to (panicking callbacks, task
    /// errors never retrieved). asyncio: `loop.set_exception_handler`.
    pub fn set_exception_handler(&self, handler: impl FnMut(&str) + 'static) {
        *self.inner.exception_handler.borrow_mut() = Some(Box::new(handler));
    }

    /// Report an error nobody awaits. asyncio: `loop.call_exception_handler`.
    pub fn report(&self, message: &str) {
        self.emit_with(|| EventKind::ExceptionReported { message: message.to_string() });
        match self.inner.exception_handler.try_borrow_mut() {
            Ok(mut h) if h.is_some() => (h.as_mut().expect("checked"))(message),
            _ => eprintln!("looplab: {message}"),
        }
    }

    // ----- scheduling callbacks ---------------------------------------------------------

    /// Schedule `f` to run in a coming iteration, after everything already ready (E1, E2).
    /// asyncio: `loop.call_soon(f)`. On a closed loop the callback is dropped, the error is
    /// reported, and the returned handle says `cancelled()`; [`try_call_soon`](Self::try_call_soon)
    /// returns the error instead.
    pub fn call_soon(&self, f: impl FnOnce(&LoopHandle) + 'static) -> Handle {
        match self.try_call_soon(f) {
            Ok(h) => h,
            Err(e) => {
                self.report(&format!("call_soon: {e}: callback dropped"));
                Handle::dead(self.clone())
            }
        }
    }

    /// [`call_soon`](Self::call_soon) that fails with [`LoopError::Closed`] on a closed loop.
    pub fn try_call_soon(&self, f: impl FnOnce(&LoopHandle) + 'static) -> Result<Handle, LoopError> {
        if self.inner.closed.get() {
            return Err(LoopError::Closed);
        }
        let id = self.push_callback(CallbackFn::Boxed(Box::new(f)));
        Ok(Handle::new(self.clone(), id))
    }

    /// `call_soon` of a prepared callback, without a handle (done-callbacks).
    pub(crate) fn schedule_callback(&self, f: CallbackFn) {
        if self.inner.closed.get() {
            self.report(&format!("call_soon: {}: callback dropped", LoopError::Closed));
            return;
        }
        self.push_callback(f);
    }

    /// Queue a callback slot (no handle). The common path of `call_soon` and done-callbacks.
    fn push_callback(&self, f: CallbackFn) -> CallbackId {
        let seq = self.next_seq();
        let index = self.inner.callbacks.borrow_mut().insert(CallbackSlot { seq, f, timer: NO_TIMER }) as u32;
        let id = CallbackId { index, seq };
        self.inner.ready.borrow_mut().push_back(Ready::callback(id.index, id.seq));
        self.emit_with(|| EventKind::CallbackScheduled { id });
        id
    }

    /// Schedule `f` after `delay`. asyncio: `loop.call_later(delay, f)`.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce(&LoopHandle) + 'static) -> TimerHandle {
        let when = self.inner.clock.now().saturating_add(duration_to_nanos(delay));
        self.call_at_ns(when, CallbackFn::Boxed(Box::new(f)))
    }

    /// Schedule `f` at loop time `when`. asyncio: `loop.call_at(when, f)`.
    pub fn call_at(&self, when: Duration, f: impl FnOnce(&LoopHandle) + 'static) -> TimerHandle {
        self.call_at_ns(duration_to_nanos(when), CallbackFn::Boxed(Box::new(f)))
    }

    /// Schedule a callback at `when` ns (the one path every timer takes).
    pub(crate) fn call_at_ns(&self, when: Nanos, f: CallbackFn) -> TimerHandle {
        match self.schedule_timer(when, f) {
            Some(id) => TimerHandle::new(self.clone(), id, when),
            None => TimerHandle::dead(self.clone(), when),
        }
    }

    /// Schedule `f` at `when`; its id, or `None` (and a report) if the loop is closed. What
    /// `call_at` does without building a handle (`sleep` keeps only the id).
    pub(crate) fn schedule_timer(&self, when: Nanos, f: CallbackFn) -> Option<CallbackId> {
        if self.inner.closed.get() {
            self.report("call_at: event loop is closed: callback dropped");
            return None;
        }
        let seq = self.next_seq();
        let mut cbs = self.inner.callbacks.borrow_mut();
        let entry = cbs.vacant_entry();
        let index = entry.key() as u32;
        let key = self.inner.timers.borrow_mut().queue_mut().insert(when, seq, index);
        entry.insert(CallbackSlot { seq, f, timer: key.index_hint() });
        drop(cbs);
        let id = CallbackId { index, seq };
        if self.inner.tracer.on() {
            let placement = self.inner.timers.borrow().queue().placement(key);
            if let Some(placement) = placement {
                self.emit(EventKind::TimerScheduled { id, deadline: when, placement });
            }
        }
        Some(id)
    }

    /// Cancel a callback or timer (E4). True if it was still pending.
    pub(crate) fn cancel_callback(&self, id: CallbackId) -> bool {
        let slot = {
            let mut cbs = self.inner.callbacks.borrow_mut();
            match cbs.get(id.index as usize) {
                Some(s) if s.seq == id.seq => cbs.remove(id.index as usize),
                _ => return false,
            }
        };
        if let Some(key) = slot.timer_key() {
            self.inner.timers.borrow_mut().queue_mut().cancel(key);
        }
        self.emit_with(|| EventKind::CallbackCancelled { id });
        drop(slot); // the closure's captures are dropped with no borrow held
        true
    }

    /// Is the callback still waiting to run?
    pub(crate) fn callback_pending(&self, id: CallbackId) -> bool {
        matches!(self.inner.callbacks.borrow().get(id.index as usize), Some(s) if s.seq == id.seq)
    }

    /// Schedule `f` from this or any thread; on the loop's thread it is `call_soon`.
    /// asyncio: `loop.call_soon_threadsafe(f)`. Other threads use a [`ThreadsafeHandle`].
    pub fn threadsafe_handle(&self) -> ThreadsafeHandle {
        ThreadsafeHandle::new(self.inner.remote.clone())
    }

    /// Count one job as in flight on another thread (R3) until the guard drops.
    pub fn keep_alive(&self) -> KeepAlive {
        KeepAlive::new(self.inner.remote.clone())
    }

    // ----- running ----------------------------------------------------------------------

    /// Ask the loop to stop after the current iteration (E5). asyncio: `loop.stop()`.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    fn enter(&self) -> Result<RunGuard<'_>, LoopError> {
        if self.inner.closed.get() {
            return Err(LoopError::Closed);
        }
        if self.inner.running.get() || CURRENT.with(|c| c.borrow().is_some()) {
            return Err(LoopError::AlreadyRunning);
        }
        self.inner.running.set(true);
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        Ok(RunGuard { lp: self, prev })
    }

    /// Run until [`stop`](Self::stop) is called. asyncio: `loop.run_forever()`.
    /// Returns a deadlock error if nothing could ever stop it.
    pub fn run_forever(&self) -> Result<(), LoopError> {
        let _guard = self.enter()?;
        loop {
            self.run_once()?;
            if self.inner.stopping.get() {
                self.emit(EventKind::Stopped);
                return Ok(());
            }
        }
    }

    /// Run `fut` as a task until it completes, and return its output.
    /// asyncio: `loop.run_until_complete(fut)`. As there, the loop stops one iteration after
    /// the future finishes (its completion schedules `stop` with `call_soon`).
    pub fn run_until_complete<F>(&self, fut: F) -> Result<F::Output, LoopError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.inner.closed.get() {
            return Err(LoopError::Closed);
        }
        if self.inner.running.get() {
            return Err(LoopError::AlreadyRunning);
        }
        let mut task = self.spawn(fut);
        task.add_done_callback(|lp| lp.stop());
        let run = self.run_forever();
        let result = task.result();
        match (run, result) {
            (_, Ok(v)) => Ok(v),
            (Err(e), _) => Err(e),
            (Ok(()), Err(crate::Error::InvalidState(_))) => {
                task.cancel();
                Err(LoopError::Stopped)
            }
            (Ok(()), Err(e)) => Err(LoopError::Task(e)),
        }
    }

    /// Run iterations until nothing is ready and no timer is pending (tests and demos).
    pub fn run_until_idle(&self) -> Result<(), LoopError> {
        let _guard = self.enter()?;
        loop {
            let idle = self.inner.ready.borrow().is_empty()
                && self.inner.timers.borrow().queue().is_empty()
                && !self.inner.remote.pending();
            if idle || self.inner.stopping.get() {
                return Ok(());
            }
            self.run_once()?;
        }
    }

    /// One iteration (the four phases in the module docs). asyncio: `_run_once`.
    ///
    /// Whether a sink listens is read once, here (L3): with none, the iteration runs a copy
    /// of itself compiled without the loop's own emit points (`T = false`), so the event log
    /// costs the hot paths nothing; with one, a copy that emits (and still checks, so that
    /// a sink detached mid-iteration hears no more).
    ///
    /// Inlined into each of its three callers by force: left to itself the compiler stopped
    /// inlining it once a task's ending grew a few lines, and the call's saved registers cost
    /// a task switch 9 more instructions (callgrind, W2 `yield_now`: 297-301 per switch
    /// inlined, 312 called).
    #[inline(always)]
    pub(crate) fn run_once(&self) -> Result<(), LoopError> {
        if self.inner.tracer.on() { self.run_once_traced() } else { self.run_once_as::<false>() }
    }

    /// [`run_once`](Self::run_once) with a sink attached: out of line, so the untraced copy
    /// stays small.
    #[cold]
    #[inline(never)]
    fn run_once_traced(&self) -> Result<(), LoopError> {
        self.run_once_as::<true>()
    }

    /// One iteration, with the loop's own events emitted (`T`) or compiled out.
    #[inline(always)]
    fn run_once_as<const T: bool>(&self) -> Result<(), LoopError> {
        let inner = &self.inner;
        let iteration = inner.iteration.get() + 1;
        inner.iteration.set(iteration);

        // Phase 0: messages from other threads (R1).
        if inner.remote.pending() {
            self.drain_remote();
        }

        // Phase 1: how long may we block? Not at all if work is waiting (asyncio: the
        // `timeout = 0` branch of `_run_once`).
        let ready_now = inner.ready.borrow().len();
        let (timeout, reason) = if ready_now > 0 {
            (Some(0), TimeoutReason::Ready)
        } else if inner.stopping.get() {
            (Some(0), TimeoutReason::Stopping)
        } else {
            match inner.timers.borrow_mut().queue_mut().next_deadline() {
                Some(d) => (Some(d.saturating_sub(inner.clock.now())), TimeoutReason::Timer { deadline: d }),
                None => (None, TimeoutReason::NoTimers),
            }
        };
        if T && inner.tracer.on() {
            self.emit(EventKind::IterationStarted { iteration, ready: ready_now, timeout, reason });
            self.emit_cascades();
        }

        // Phase 2: wait for I/O (or jump the virtual clock).
        self.wait_phase(timeout, reason)?;

        // Phase 3: due timers join the back of the ready queue in (deadline, seq) order (E3).
        self.expire_timers::<T>();

        // Phase 4: run exactly what is ready now; what this adds waits a turn (E2).
        let ntodo = inner.ready.borrow().len();
        for _ in 0..ntodo {
            let Some(entry) = inner.ready.borrow_mut().pop_front() else {
                break;
            };
            match entry.kind() {
                ReadyKind::Task(id) => self.run_task::<T>(id),
                ReadyKind::Callback { index, seq_low } => self.run_callback::<T>(index, seq_low),
            }
        }
        if inner.lost_waker_check.get() {
            self.check_lost_wakers();
        }
        Ok(())
    }

    /// Check, at the end of every iteration, for waiting tasks that nothing can ever wake
    /// (the inspector's lost-waker lint). Costs a pass over the tasks and callbacks per
    /// iteration, so it is off unless asked for.
    pub fn set_lost_waker_check(&self, on: bool) {
        self.inner.lost_waker_check.set(on);
    }

    /// A waiting task is *lost* when nothing references it: it is not queued, no pending
    /// timer names it (`sleep`'s `WakeTask`, or a waker of it), no future or task holds its id
    /// (F4: `parked`), and no clone of its owned waker exists anywhere (a socket, a lock, a
    /// thread). In a single-threaded loop that is exact: nothing else can wake it. A wake-up
    /// in flight from another thread is waited for (the check skips an iteration while the
    /// inbox has mail).
    fn check_lost_wakers(&self) {
        let inner = &self.inner;
        if inner.remote.pending() {
            return;
        }
        let mut named_by_timers: Vec<TaskId> = Vec::new();
        for (_, c) in inner.callbacks.borrow().iter() {
            match &c.f {
                CallbackFn::WakeTask(t) => named_by_timers.push(*t),
                CallbackFn::Wake(w) => named_by_timers.extend(crate::task::raw_waker::task_of(w, inner.id)),
                _ => {}
            }
        }
        let mut lost = Vec::new();
        {
            let mut tasks = inner.tasks.borrow_mut();
            for (index, s) in tasks.iter_mut() {
                let id = s.id_at(index);
                let referenced = s.queued()
                    || s.parked > 0
                    || s.owned_waker().is_some_and(|w| crate::task::raw_waker::other_owned_clones(w) > 0)
                    || named_by_timers.contains(&id);
                if s.state == TaskState::Waiting && !referenced && !s.lost_reported() {
                    s.set_lost_reported();
                    lost.push((id, s.display_name()));
                }
            }
        }
        for (task, name) in lost {
            self.emit(EventKind::LostWaker { task, name });
        }
    }

    /// Phase 2 in full: the real poll, or the virtual clock's jump, or deadlock detection.
    /// The common case, work waiting and no I/O source (E6), inline; the rest out of line.
    #[inline(always)]
    fn wait_phase(&self, timeout: Option<Nanos>, reason: TimeoutReason) -> Result<(), LoopError> {
        let has_io = self.inner.reactor.borrow().len() > 0;
        if timeout == Some(0) && !has_io {
            // E6: with no sources registered, no selector call can report anything.
            return Ok(());
        }
        self.wait_phase_slow(timeout, reason, has_io)
    }

    #[inline(never)]
    fn wait_phase_slow(&self, timeout: Option<Nanos>, reason: TimeoutReason, has_io: bool) -> Result<(), LoopError> {
        let inner = &self.inner;
        if timeout == Some(0) {
            self.poll_io(Some(Duration::ZERO))?;
            return Ok(());
        }
        if inner.clock.is_virtual() {
            // C2/C3: look (without blocking) before jumping.
            let got = if has_io { self.poll_io(Some(Duration::ZERO))? } else { false };
            if got || !inner.ready.borrow().is_empty() || inner.remote.pending() {
                if inner.remote.pending() {
                    self.drain_remote();
                }
                return Ok(());
            }
            if inner.remote.external.load(Ordering::SeqCst) > 0 {
                // A pool job is running: virtual time stands still until it reports (R3).
                if !self.spin_for_remote() {
                    self.poll_io(None)?;
                }
                return Ok(());
            }
            match reason {
                TimeoutReason::Timer { deadline } => {
                    let from = inner.clock.advance_to(deadline);
                    self.emit_with(|| EventKind::ClockAdvanced { from, to: deadline });
                }
                _ => {
                    if self.nothing_can_wake(has_io) {
                        return Err(self.deadlock());
                    }
                    self.poll_io(None)?;
                }
            }
            return Ok(());
        }
        if timeout.is_none() && self.nothing_can_wake(has_io) {
            return Err(self.deadlock());
        }
        if self.spin_for_remote() {
            // R5: the job's answer came while we spun: look at I/O without blocking (E6: not
            // at all when nothing is registered), then run it.
            if has_io {
                self.poll_io(Some(Duration::ZERO))?;
            }
            return Ok(());
        }
        self.poll_io(timeout.map(Duration::from_nanos))?;
        Ok(())
    }

    /// R5: with a pool job in flight and nothing else to do, the answer often arrives within
    /// microseconds; spin for it (at most `pool::SPIN_FOR`, 50 µs) before blocking in
    /// `epoll_wait`, whose wake-up through the eventfd costs tens of µs on a VM. Returns whether
    /// mail arrived (it is drained here). Never spins without a job in flight.
    fn spin_for_remote(&self) -> bool {
        let r = &self.inner.remote;
        if r.external.load(Ordering::Relaxed) == 0 {
            return false;
        }
        if crate::pool::spin_until(|| r.pending()) {
            self.drain_remote();
            return true;
        }
        false
    }

    /// R3, R4 and the reactor: could anything ever make this loop runnable again?
    fn nothing_can_wake(&self, has_io: bool) -> bool {
        let r = &self.inner.remote;
        !has_io
            && r.external.load(Ordering::SeqCst) == 0
            && !r.pending()
            && r.handles.load(Ordering::SeqCst) == 0
            && self.inner.ready.borrow().is_empty()
            && self.inner.timers.borrow().queue().is_empty()
    }

    fn deadlock(&self) -> LoopError {
        let tasks = self.inner.tasks.borrow();
        let mut waiting: Vec<(u32, WaitingTask)> = tasks
            .iter()
            .filter(|(_, s)| !s.state.is_finished())
            .map(|(_, s)| (s.generation, WaitingTask { name: s.display_name(), polls: u64::from(s.polls) }))
            .collect();
        waiting.sort_by_key(|(g, _)| *g);
        LoopError::Deadlock(DeadlockError { waiting: waiting.into_iter().map(|(_, w)| w).collect() })
    }

    /// Poll the reactor and dispatch: wake parked wakers, note the bell. Returns whether any
    /// I/O event arrived.
    fn poll_io(&self, timeout: Option<Duration>) -> Result<bool, LoopError> {
        let inner = &self.inner;
        let mut bufs = inner.io_events.borrow_mut();
        let (events, wakers, calls) = &mut *bufs;
        events.clear();
        let bell = inner.reactor.borrow_mut().wait(timeout, events)?;
        let got = !events.is_empty();
        {
            let mut reactor = inner.reactor.borrow_mut();
            for r in events.iter() {
                reactor.dispatch(*r, wakers, calls);
            }
        }
        if got && inner.tracer.on() {
            for r in events.iter() {
                self.emit(EventKind::IoReady { token: r.token, readable: r.readable, writable: r.writable });
            }
        }
        let mut to_wake = std::mem::take(wakers);
        let fd_calls = std::mem::take(calls);
        let tokens: Vec<usize> = if got { events.iter().map(|r| r.token).collect() } else { Vec::new() };
        drop(bufs);
        // asyncio's `_process_events`: an fd callback joins the ready queue as a handle (N4).
        for (fd, dir, cb) in fd_calls {
            crate::net::schedule_fd_callback(self, fd, dir, cb);
        }
        let prev = inner.current.get();
        for (i, w) in to_wake.drain(..).enumerate() {
            inner.current.set(Running::Io(tokens.get(i).copied().unwrap_or(0)));
            w.wake();
        }
        inner.current.set(prev);
        inner.io_events.borrow_mut().1 = to_wake;
        if bell || inner.remote.pending() {
            self.drain_remote();
        }
        Ok(got)
    }

    /// Move messages from other threads onto the ready queue (R1).
    fn drain_remote(&self) {
        let inner = &self.inner;
        inner.remote.begin_drain();
        while let Ok(msg) = inner.inbox.try_recv() {
            match msg {
                RemoteMsg::Wake(id) => self.schedule_task(id, WakeSource::Remote),
                RemoteMsg::Call(f) => {
                    self.push_callback(CallbackFn::Remote(f));
                }
            }
        }
    }

    /// Phase 3: take due timers, queue their callbacks.
    fn expire_timers<const T: bool>(&self) {
        let inner = &self.inner;
        if inner.timers.borrow().queue().is_empty() {
            return;
        }
        let now = inner.clock.now();
        let mut due = inner.expired.borrow_mut();
        inner.timers.borrow_mut().queue_mut().expire(now, &mut due);
        if due.is_empty() {
            return;
        }
        {
            let mut cbs = inner.callbacks.borrow_mut();
            let mut ready = inner.ready.borrow_mut();
            for e in due.iter() {
                if let Some(slot) = cbs.get_mut(e.payload as usize) {
                    slot.timer = NO_TIMER;
                }
                ready.push_back(Ready::callback(e.payload, e.seq));
            }
        }
        if T && inner.tracer.on() {
            let list: Vec<(CallbackId, Nanos)> =
                due.iter().map(|e| (CallbackId { index: e.payload, seq: e.seq }, e.deadline)).collect();
            drop(due);
            self.emit_cascades();
            for (id, deadline) in list {
                self.emit(EventKind::TimerDue { id, deadline });
            }
            inner.expired.borrow_mut().clear();
        } else {
            due.clear();
        }
    }

    /// Log the cascades the timer queue recorded (only called with a sink attached: the
    /// queue records them only then).
    #[cold]
    fn emit_cascades(&self) {
        let mut buf = self.inner.cascades.borrow_mut();
        self.inner.timers.borrow_mut().queue_mut().drain_cascades(&mut buf);
        let list: Vec<Cascade> = buf.drain(..).collect();
        drop(buf);
        for c in list {
            self.emit(EventKind::TimerCascaded { level: c.level, slot: c.slot, moved: c.moved });
        }
    }

    /// Run the callback in slot `index` if its sequence number ends in `seq_low` (E9); a
    /// cancelled one is skipped (E4), a panic caught (E7).
    fn run_callback<const T: bool>(&self, index: u32, seq_low: u32) {
        let inner = &self.inner;
        let slot = {
            let mut cbs = inner.callbacks.borrow_mut();
            match cbs.get(index as usize) {
                Some(s) if s.named_by(seq_low) && s.timer == NO_TIMER => cbs.remove(index as usize),
                _ => return, // E4
            }
        };
        let id = CallbackId { index, seq: slot.seq };
        match slot.f {
            CallbackFn::Wake(w) => {
                // A sleep's timer: wake the task, attributing it to the timer.
                let prev = inner.current.replace(Running::Timer { index: id.index, seq: id.seq });
                self.emit_as::<T>(|| EventKind::CallbackRan { id });
                w.wake();
                inner.current.set(prev);
            }
            CallbackFn::WakeTask(task) => {
                self.emit_as::<T>(|| EventKind::CallbackRan { id });
                self.schedule_task(task, WakeSource::Timer(id));
            }
            CallbackFn::Boxed(f) => self.call_guarded::<T>(id, Running::callback(id), move |lp| f(lp)),
            CallbackFn::Remote(f) => self.call_guarded::<T>(id, Running::Remote, move |lp| f(lp)),
            CallbackFn::Gather(link) => self.call_guarded::<T>(id, Running::callback(id), move |lp| link.fire(lp)),
        }
    }

    fn call_guarded<const T: bool>(&self, id: CallbackId, running: Running, f: impl FnOnce(&LoopHandle)) {
        let prev = self.inner.current.replace(running);
        self.emit_as::<T>(|| EventKind::CallbackRan { id });
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(self)));
        self.inner.current.set(prev);
        if let Err(payload) = r {
            self.report(&format!("Exception in callback {id}: panicked: {}", panic_message(&*payload)));
        }
    }

    /// Cancel every unfinished task and run the loop until each has finished (its cleanup
    /// ran). asyncio: `asyncio.runners._cancel_all_tasks`, called by `asyncio.run`.
    pub fn cancel_all_tasks(&self) -> Result<(), LoopError> {
        if self.inner.closed.get() {
            return Ok(());
        }
        let pending: Vec<TaskId> = {
            let tasks = self.inner.tasks.borrow();
            tasks.iter().filter(|(_, s)| !s.state.is_finished()).map(|(i, s)| s.id_at(i)).collect()
        };
        if pending.is_empty() {
            return Ok(());
        }
        for id in &pending {
            self.cancel_task(*id);
        }
        let _guard = self.enter()?;
        loop {
            let left = pending.iter().any(|id| self.task_state(*id).is_some_and(|s| !s.is_finished()));
            if !left {
                return Ok(());
            }
            self.run_once()?;
        }
    }

    /// Close the loop: drop every pending callback, timer and task (their destructors run),
    /// refuse further work. asyncio: `loop.close()`. Closing twice is fine; closing a running
    /// loop is an error.
    pub fn close(&self) -> Result<(), LoopError> {
        let inner = &self.inner;
        if inner.running.get() {
            return Err(LoopError::AlreadyRunning);
        }
        if inner.closed.replace(true) {
            return Ok(());
        }
        inner.remote.closed.store(true, Ordering::Release);
        // Take everything out first, then drop it with no borrow held: destructors may call
        // back into the loop (which now refuses politely).
        let ready = std::mem::take(&mut *inner.ready.borrow_mut());
        let callbacks = std::mem::take(&mut *inner.callbacks.borrow_mut());
        let futures: Vec<_> = {
            let mut tasks = inner.tasks.borrow_mut();
            tasks
                .iter_mut()
                .filter(|(_, s)| !s.state.is_finished())
                .map(|(_, s)| {
                    s.state = TaskState::Cancelled;
                    (s.cell.take(), s.extra.as_mut().and_then(|e| e.waker.take()), std::mem::take(&mut s.watchers))
                })
                .collect()
        };
        let mut timers = Vec::new();
        inner.timers.borrow_mut().queue_mut().expire(Nanos::MAX, &mut timers);
        drop(ready);
        drop(futures);
        drop(timers);
        drop(callbacks);
        while inner.inbox.try_recv().is_ok() {}
        let tasks = std::mem::take(&mut *inner.tasks.borrow_mut());
        drop(tasks);
        let jobs = std::mem::take(&mut *inner.jobs.borrow_mut());
        drop(jobs);
        Ok(())
    }
}
