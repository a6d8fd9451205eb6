//! The event log: one stream of facts, emitted at every state change of the loop.
//!
//! Every part of the loop reports what it just did as a [`TraceEvent`], stamped with loop
//! time and a sequence number. Sinks consume the stream: a [`Recorder`] keeps it for tests to
//! assert on, a [`Printer`] writes it as text (`--trace` in the examples), and the learner's
//! views (inspector, timeline, trace export) are sinks too.
//!
//! ```text
//!   EventLoop ──emit(kind)──► Tracer ──► [Recorder]  Vec<TraceEvent>  (tests)
//!      │  one branch when          └───► [Printer]   "t=1.000s #42 task T3 polled"
//!      │  no sink is attached      └───► [your sink] impl TraceSink
//!      │  (none in the loop's own steps: they run a copy compiled without, L3)
//! ```
//!
//! # asyncio equivalent
//! asyncio's debug mode (`PYTHONASYNCIODEBUG=1`) logs slow callbacks and handle reprs;
//! there is no structured event stream. This is closer to tokio's `tracing` instrumentation
//! that tokio-console consumes.
//!
//! # Invariants
//! - **L1** With no sink attached, emitting costs one predictable branch: the event is
//!   built inside a closure that is never called.
//! - **L2** Sequence numbers are consecutive from 1 within a loop, so a recorded log is a
//!   total order of what happened.
//! - **L3** The loop's own steps (an iteration's start, a task's poll, suspension and end, a
//!   callback's run, a timer coming due) are compiled twice, with and without their emit
//!   points, and `run_once` picks the copy once per iteration by asking whether a sink is
//!   attached: with none, those steps carry no branch at all. So a sink attached *during*
//!   an iteration hears the loop's own steps from the next iteration on (what user code
//!   does, a spawn, a wake, a `call_soon`, it hears at once); one detached mid-iteration
//!   hears nothing more (the traced copy still checks).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use crate::clock::Nanos;
use crate::task::TaskId;
use crate::timer::Placement;

/// Identifies a callback scheduled on the loop (a `call_soon` or a timer).
/// `seq` is the loop's scheduling counter at the time, unique within the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallbackId {
    /// Slot in the loop's callback slab.
    pub(crate) index: u32,
    /// Scheduling sequence number: unique, increasing (the `seq` of `(deadline, seq)`).
    pub seq: u64,
}

impl fmt::Display for CallbackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.seq)
    }
}

/// Why the loop chose the poll timeout it did at the start of an iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutReason {
    /// Work was ready: don't block.
    Ready,
    /// `stop()` was requested: finish quickly.
    Stopping,
    /// Sleep until this timer's deadline.
    Timer {
        /// The earliest deadline.
        deadline: Nanos,
    },
    /// No timers at all: block until I/O or a thread-safe call arrives.
    NoTimers,
}

/// What woke a task: the answer to "who woke whom".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeSource {
    /// Its first step was scheduled by `spawn`/`create_task`.
    Spawn,
    /// Another task (or itself: `yield_now`, `sleep(0)`) woke it while running.
    Task(TaskId),
    /// A plain callback woke it (e.g. a future's `set_result` called from `call_soon`).
    Callback(CallbackId),
    /// A timer's callback woke it (`sleep`, `wait_for`).
    Timer(CallbackId),
    /// An I/O source became ready.
    Io(usize),
    /// A waker was called from another thread (pool job, `call_soon_threadsafe`).
    Remote,
    /// Woken from outside any callback or task (e.g. by the code that drives the loop).
    Outside,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It returned a value.
    Done,
    /// It panicked; the message.
    Panicked(String),
    /// It was cancelled and its future dropped (cleanup ran).
    Cancelled,
}

/// One fact about the loop. Variants are past-tense facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An iteration began. asyncio: the top of `_run_once`.
    IterationStarted {
        /// 1-based iteration count.
        iteration: u64,
        /// Handles in the ready queue when it began.
        ready: usize,
        /// The poll timeout chosen (None = block without limit), in ns.
        timeout: Option<Nanos>,
        /// Why that timeout.
        reason: TimeoutReason,
    },
    /// The virtual clock jumped because the loop was quiescent (C2).
    ClockAdvanced {
        /// Time before.
        from: Nanos,
        /// Time after.
        to: Nanos,
    },
    /// A callback was queued with `call_soon`.
    CallbackScheduled {
        /// Its id.
        id: CallbackId,
    },
    /// A callback ran.
    CallbackRan {
        /// Its id.
        id: CallbackId,
    },
    /// A callback or timer was cancelled before it ran.
    CallbackCancelled {
        /// Its id.
        id: CallbackId,
    },
    /// A timer was scheduled with `call_at`/`call_later`/`sleep`.
    TimerScheduled {
        /// Its callback id.
        id: CallbackId,
        /// Its deadline.
        deadline: Nanos,
        /// Where the timer queue put it (wheel level and slot, or heap index).
        placement: Placement,
    },
    /// A wheel slot cascaded its entries down to lower levels.
    TimerCascaded {
        /// Level of the slot emptied.
        level: u8,
        /// The slot.
        slot: u8,
        /// How many entries moved.
        moved: usize,
    },
    /// A timer came due and its callback joined the ready queue.
    TimerDue {
        /// Its callback id.
        id: CallbackId,
        /// Its deadline.
        deadline: Nanos,
    },
    /// A task was created (state CREATED).
    TaskCreated {
        /// The task.
        task: TaskId,
        /// Its display name.
        name: String,
    },
    /// A task was put in the ready queue (state READY).
    TaskWoken {
        /// The task.
        task: TaskId,
        /// Who woke it.
        by: WakeSource,
    },
    /// A task was polled (state RUNNING).
    TaskPolled {
        /// The task.
        task: TaskId,
    },
    /// A task's poll returned `Pending` (state WAITING).
    TaskSuspended {
        /// The task.
        task: TaskId,
    },
    /// Cancellation of a task was requested.
    TaskCancelRequested {
        /// The task.
        task: TaskId,
    },
    /// A task finished (state DONE, FAILED or CANCELLED).
    TaskFinished {
        /// The task.
        task: TaskId,
        /// How.
        outcome: Outcome,
    },
    /// An I/O source reported readiness.
    IoReady {
        /// The source's token.
        token: usize,
        /// Readable.
        readable: bool,
        /// Writable.
        writable: bool,
    },
    /// The loop's exception handler was called. asyncio: `call_exception_handler`.
    ExceptionReported {
        /// The message.
        message: String,
    },
    /// A waiting task that nothing can ever wake: not queued, no timer names it, no future or
    /// task holds its id, no clone of its waker exists (the lost-waker check, when enabled
    /// with `set_lost_waker_check`). Reported once per task.
    LostWaker {
        /// The task.
        task: TaskId,
        /// Its name.
        name: String,
    },
    /// `stop()` took effect at the end of an iteration.
    Stopped,
    /// A learner's own marker, emitted with `EventLoop::trace_note`.
    Note {
        /// Free text.
        text: String,
    },
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Consecutive from 1 (L2).
    pub seq: u64,
    /// Loop time when it happened.
    pub time: Nanos,
    /// What happened.
    pub kind: EventKind,
}

/// Format nanoseconds as seconds with millisecond precision: `1.250s`.
pub fn fmt_secs(ns: Nanos) -> String {
    format!("{}.{:03}s", ns / 1_000_000_000, (ns / 1_000_000) % 1000)
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EventKind::*;
        match self {
            IterationStarted { iteration, ready, timeout, reason } => {
                write!(f, "iteration {iteration}: {ready} ready, timeout ")?;
                match timeout {
                    Some(t) => write!(f, "{}", fmt_secs(*t))?,
                    None => f.write_str("none")?,
                }
                match reason {
                    TimeoutReason::Ready => f.write_str(" (work ready)"),
                    TimeoutReason::Stopping => f.write_str(" (stopping)"),
                    TimeoutReason::Timer { deadline } => {
                        write!(f, " (next timer at {})", fmt_secs(*deadline))
                    }
                    TimeoutReason::NoTimers => f.write_str(" (no timers)"),
                }
            }
            ClockAdvanced { from, to } => {
                write!(f, "virtual clock {} -> {}", fmt_secs(*from), fmt_secs(*to))
            }
            CallbackScheduled { id } => write!(f, "callback {id} scheduled"),
            CallbackRan { id } => write!(f, "callback {id} ran"),
            CallbackCancelled { id } => write!(f, "callback {id} cancelled"),
            TimerScheduled { id, deadline, placement } => {
                write!(f, "timer {id} scheduled for {} at {placement:?}", fmt_secs(*deadline))
            }
            TimerCascaded { level, slot, moved } => {
                write!(f, "wheel level {level} slot {slot} cascaded {moved} entries")
            }
            TimerDue { id, deadline } => write!(f, "timer {id} due ({})", fmt_secs(*deadline)),
            TaskCreated { task, name } => write!(f, "task {task} created ({name})"),
            TaskWoken { task, by } => write!(f, "task {task} ready (woken by {by:?})"),
            TaskPolled { task } => write!(f, "task {task} running"),
            TaskSuspended { task } => write!(f, "task {task} waiting"),
            TaskCancelRequested { task } => write!(f, "task {task} cancel requested"),
            TaskFinished { task, outcome } => write!(f, "task {task} finished: {outcome:?}"),
            IoReady { token, readable, writable } => {
                write!(f, "io token {token} ready (r={readable} w={writable})")
            }
            ExceptionReported { message } => write!(f, "exception: {message}"),
            LostWaker { task, name } => write!(f, "task {task} ({name}) can never be woken (lost waker)"),
            Stopped => f.write_str("loop stopped"),
            Note { text } => write!(f, "note: {text}"),
        }
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} #{}] {}", fmt_secs(self.time), self.seq, self.kind)
    }
}

/// A consumer of the event stream.
pub trait TraceSink {
    /// Called once per event, in order.
    fn event(&mut self, event: &TraceEvent);
}

/// The loop's fan-out point for events (L1).
#[derive(Default)]
pub(crate) struct Tracer {
    /// Fast check: is any sink attached?
    enabled: Cell<bool>,
    /// Next sequence number (L2).
    next_seq: Cell<u64>,
    /// The attached sinks.
    sinks: RefCell<Vec<Box<dyn TraceSink>>>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("enabled", &self.enabled.get())
            .field("sinks", &self.sinks.borrow().len())
            .finish()
    }
}

impl Tracer {
    /// Is anything listening? The hot paths check this before building an event.
    #[inline(always)]
    pub(crate) fn on(&self) -> bool {
        // The `no-trace` feature compiles every emit point away: only for measuring what the
        // branch costs when no sink is attached (L1), in `cargo bench --features no-trace`.
        !cfg!(feature = "no-trace") && self.enabled.get()
    }

    /// Attach a sink.
    pub(crate) fn add(&self, sink: Box<dyn TraceSink>) {
        self.sinks.borrow_mut().push(sink);
        self.enabled.set(true);
    }

    /// Detach every sink.
    pub(crate) fn clear(&self) {
        self.sinks.borrow_mut().clear();
        self.enabled.set(false);
    }

    /// Emit an event built by `make` at loop time `time` (L1: `make` runs only if on).
    #[inline(always)]
    pub(crate) fn emit(&self, time: impl FnOnce() -> Nanos, make: impl FnOnce() -> EventKind) {
        if self.on() {
            self.emit_slow(time(), make());
        }
    }

    #[cold]
    fn emit_slow(&self, time: Nanos, kind: EventKind) {
        let seq = self.next_seq.get() + 1;
        self.next_seq.set(seq);
        let ev = TraceEvent { seq, time, kind };
        // A sink must not re-enter the loop; if it does (a bug), skip rather than panic.
        if let Ok(mut sinks) = self.sinks.try_borrow_mut() {
            for s in sinks.iter_mut() {
                s.event(&ev);
            }
        }
    }
}

/// A sink that keeps every event in memory; clone it to read the log from a test.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    events: Rc<RefCell<Vec<TraceEvent>>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }
    /// Take the events recorded so far.
    pub fn take(&self) -> Vec<TraceEvent> {
        std::mem::take(&mut *self.events.borrow_mut())
    }
    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.events.borrow().clone()
    }
    /// The recorded events' kinds only (drops times and sequence numbers).
    pub fn kinds(&self) -> Vec<EventKind> {
        self.events.borrow().iter().map(|e| e.kind.clone()).collect()
    }
}

impl TraceSink for Recorder {
    fn event(&mut self, event: &TraceEvent) {
        self.events.borrow_mut().push(event.clone());
    }
}

/// A sink that prints each event as one line to stderr (so it interleaves with, but does
/// not corrupt, a program's stdout).
#[derive(Debug, Default)]
pub struct Printer {
    /// Skip iteration-start lines (they dominate busy logs).
    pub quiet_iterations: bool,
}

impl TraceSink for Printer {
    fn event(&mut self, event: &TraceEvent) {
        if self.quiet_iterations && matches!(event.kind, EventKind::IterationStarted { .. }) {
            return;
        }
        eprintln!("  trace {event}");
    }
}
