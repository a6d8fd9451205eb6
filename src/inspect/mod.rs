//! The learner's view: what happens inside the loop, shown three ways from one event stream.
//!
//! An [`Inspector`] is a [`TraceSink`]: it never looks inside the loop, it only listens to
//! the facts the loop emits (`TaskWoken`, `TaskPolled`, `CallbackRan`, ...) and builds a
//! model of every task's life from them. Three renderers read that model:
//!
//! ```text
//!   EventLoop ─emit─► Tracer ─► Inspector (TraceSink) ──model──┬─► table.rs    task table
//!                                 per task: spans, wakes,      ├─► timeline.rs ASCII Gantt
//!                                 who woke it, polls           └─► chrome.rs   trace JSON
//!   LoopHandle::snapshot() ─────► snapshot.rs  (the loop's structures at one instant)
//! ```
//!
//! - `table.rs`: one row per task, in the style of tokio-console: state, polls, time busy
//!   (being polled), scheduled (ready, not yet polled), idle (waiting), wake-ups and who
//!   woke it, where it was spawned.
//! - `timeline.rs`: an ASCII Gantt chart of tasks over loop time (`--timeline`).
//! - `chrome.rs`: Chrome trace-event JSON (`--trace-json FILE`), for Perfetto or
//!   `chrome://tracing`: each poll and callback a slice, wake-ups as flow arrows, the
//!   ready queue's length as a counter.
//! - `snapshot.rs`: [`LoopSnapshot`], the loop's state copied out at one instant (the only
//!   part that reads the loop directly; the memory walkthrough prints it).
//! - `cli.rs`: the examples' shared flags (`--fast`, `--trace`, `--timeline`, ...).
//!
//! Times come in two kinds. *Loop time* is what `lp.time()` says: on the virtual clock it
//! jumps and a poll takes zero of it, so busy time is 0 there and the output is the same
//! every run. *CPU time* is measured by the inspector with the thread's CPU clock around
//! each poll and callback; it is real, varies run to run, and is shown only where nothing
//! pins it (and by the slow-step lint, `lints.rs`).
//!
//! # asyncio equivalent
//! asyncio's debug mode (slow-callback warnings, handle reprs); tokio-console's task list;
//! Perfetto for the timeline. None of them gives all three from one stream.
//!
//! # Invariants
//! - **I3** The inspector's model is a function of the event stream alone (plus the spawn
//!   location, read once when a task is created): replaying the same events gives the same
//!   model.
//! - **I4** With no inspector attached, the loop pays nothing for it (L1).

pub mod chrome;
pub mod cli;
pub mod lints;
pub mod snapshot;
pub mod table;
pub mod timeline;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::clock::Nanos;
use crate::events::{Inner, LoopHandle};
use crate::task::{TaskId, TaskState};
use crate::timer::Placement;
use crate::trace::{CallbackId, EventKind, Outcome, TimeoutReason, TraceEvent, TraceSink, WakeSource};

pub use snapshot::{CallbackKind, IoSource, LoopSnapshot, ReadyEntry, RunningNow, TaskInfo, TimerEntry};

/// What one slice of the loop's time was spent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Track {
    /// A task step (a poll).
    Task(TaskId),
    /// A callback (`call_soon`, a timer, a done-callback).
    Callback,
}

/// One poll or callback run.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    /// Whose step.
    pub track: Track,
    /// Label: the task's name or `callback #7`.
    pub name: String,
    /// Loop time when it began.
    pub start: Nanos,
    /// Loop time when it ended (equal to `start` on the virtual clock).
    pub end: Nanos,
    /// The loop iteration it ran in.
    pub iteration: u64,
    /// CPU nanoseconds it took: this thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`).
    pub cpu_ns: u64,
    /// Index into [`Model::flows`] of the wake that led to this poll, if any.
    pub woken_by_flow: Option<usize>,
}

/// A wake-up: a flow arrow from the waker's step to the woken task's next poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The slice (index into [`Model::slices`]) that was running when the wake happened.
    pub from_slice: Option<usize>,
    /// The task woken.
    pub to: TaskId,
    /// Who woke it.
    pub by: WakeSource,
    /// Loop time of the wake.
    pub at: Nanos,
    /// The loop iteration of the wake.
    pub iteration: u64,
}

/// Everything the inspector learned about one task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// The task.
    pub id: TaskId,
    /// Its name.
    pub name: String,
    /// Where it was spawned, if the loop still knew when it was created.
    pub spawned_at: Option<String>,
    /// Loop time of `TaskCreated`.
    pub created: Nanos,
    /// Iteration of `TaskCreated` (0: before the loop ran).
    pub created_iteration: u64,
    /// Loop time and outcome of `TaskFinished`.
    pub finished: Option<(Nanos, Outcome)>,
    /// Iteration of `TaskFinished`.
    pub finished_iteration: Option<u64>,
    /// State as of the last event.
    pub state: TaskState,
    /// `TaskPolled` count.
    pub polls: u64,
    /// Loop time spent being polled.
    pub busy: Nanos,
    /// Loop time spent ready but not yet polled.
    pub scheduled: Nanos,
    /// Loop time spent waiting (suspended, not ready).
    pub idle: Nanos,
    /// CPU time spent being polled (measured).
    pub cpu_ns: u64,
    /// Wake-ups by kind of waker ("spawn", "timer", "T3", ...), sorted by kind.
    pub woken_by: BTreeMap<String, u64>,
    /// Loop time of the last state change (to account the next interval).
    last_change: Nanos,
    /// Index of the open slice while being polled.
    open_slice: Option<usize>,
    /// The flow of the wake that made it ready, until the poll consumes it.
    pending_flow: Option<usize>,
}

impl TaskRecord {
    /// Total wake-ups.
    pub fn wakes(&self) -> u64 {
        self.woken_by.values().sum()
    }
}

/// One loop iteration, as the ledger prints it (`lints.rs`): built from the events between
/// one `IterationStarted` and the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IterationRecord {
    /// 1-based iteration number.
    pub iteration: u64,
    /// Loop time when it began.
    pub start: Nanos,
    /// Entries in the ready queue when it began.
    pub ready_at_start: usize,
    /// The poll timeout chosen (None: block without limit).
    pub timeout: Option<Nanos>,
    /// Why that timeout.
    pub reason: TimeoutReason,
    /// When the loop slept for a timer: which one, its deadline, and where the timer queue
    /// put it when it was scheduled (a later cascade may have moved it lower).
    pub sleeper: Option<(CallbackId, Nanos, Placement)>,
    /// The virtual clock's jump, if it jumped.
    pub jumped: Option<(Nanos, Nanos)>,
    /// I/O tokens that reported readiness.
    pub io: Vec<usize>,
    /// Timers that came due, in firing order.
    pub due: Vec<CallbackId>,
    /// Wheel slots that cascaded: (level, slot, entries moved).
    pub cascaded: Vec<(u8, u8, usize)>,
    /// Callbacks run.
    pub callbacks: usize,
    /// Task polls.
    pub polls: usize,
}

/// The inspector's model of a run: tasks, slices, flows and the ready-queue counter.
#[derive(Debug, Default)]
pub struct Model {
    /// Tasks by id (sorted by spawn number, as `TaskId` orders by index then generation:
    /// see [`Model::tasks_in_order`]).
    pub tasks: BTreeMap<TaskId, TaskRecord>,
    /// Every poll and callback, in the order they began.
    pub slices: Vec<Slice>,
    /// Every wake-up, in order.
    pub flows: Vec<Flow>,
    /// `(loop time, ready-queue length)` at each iteration start.
    pub ready_len: Vec<(Nanos, usize)>,
    /// Loop time of the last event seen.
    pub end: Nanos,
    /// The last iteration seen (iterations count from 1).
    pub iterations: u64,
    /// The loop ran on the virtual clock (so loop-time durations of polls are zero).
    pub virtual_clock: bool,
    /// One record per loop iteration (the ledger).
    pub ledger: Vec<IterationRecord>,
    /// Messages the loop reported (`ExceptionReported`), with their loop time and iteration.
    pub reports: Vec<(Nanos, u64, String)>,
    /// Tasks the loop found nothing can ever wake (`LostWaker`): time, iteration, task, name.
    pub lost: Vec<(Nanos, u64, crate::task::TaskId, String)>,
    /// Timers scheduled and not yet due or cancelled: deadline and placement when scheduled.
    pub live_timers: BTreeMap<CallbackId, (Nanos, Placement)>,
    /// Cascades seen, per wheel level (index = level).
    pub cascades: [u64; 8],
    /// Entries moved by cascades, per wheel level.
    pub cascaded_entries: [u64; 8],
    /// Timers scheduled / cancelled before they fired, over the run.
    pub timers_scheduled: u64,
    /// See `timers_scheduled`.
    pub timers_cancelled: u64,
    /// The callback slice open now, with the CPU time it began.
    open_callback: Option<(usize, Duration)>,
    /// The CPU time the open task poll began.
    poll_started: Option<Duration>,
}

impl Model {
    /// Tasks sorted by spawn number.
    pub fn tasks_in_order(&self) -> Vec<&TaskRecord> {
        let mut v: Vec<&TaskRecord> = self.tasks.values().collect();
        v.sort_by_key(|t| t.id.number());
        v
    }

    /// The slice running now (a poll or a callback), for attributing wakes.
    fn current_slice(&self) -> Option<usize> {
        if let Some((i, _)) = self.open_callback {
            return Some(i);
        }
        self.tasks.values().find_map(|t| t.open_slice)
    }

    /// Close the open callback slice (a new step began).
    fn close_callback(&mut self, now: Nanos) {
        if let Some((i, started)) = self.open_callback.take() {
            let s = &mut self.slices[i];
            s.end = now;
            s.cpu_ns = cpu_now().saturating_sub(started).as_nanos() as u64;
        }
    }

    /// Fold one event into the model (I3).
    pub fn apply(&mut self, ev: &TraceEvent, spawned_at: Option<String>) {
        let now = ev.time;
        self.end = self.end.max(now);
        use EventKind::*;
        // A new step (or the loop's own work) ends the callback that was running.
        if matches!(
            ev.kind,
            IterationStarted { .. }
                | CallbackRan { .. }
                | TaskPolled { .. }
                | ClockAdvanced { .. }
                | TimerDue { .. }
                | IoReady { .. }
                | Stopped
        ) {
            self.close_callback(now);
        }
        match &ev.kind {
            IterationStarted { iteration, ready, timeout, reason } => {
                self.iterations = *iteration;
                self.ready_len.push((now, *ready));
                // The loop sleeps until the earliest live timer: find it by (deadline, seq).
                let sleeper = match reason {
                    TimeoutReason::Timer { .. } => self
                        .live_timers
                        .iter()
                        .min_by_key(|(id, (deadline, _))| (*deadline, id.seq))
                        .map(|(id, (deadline, placement))| (*id, *deadline, *placement)),
                    _ => None,
                };
                self.ledger.push(IterationRecord {
                    iteration: *iteration,
                    start: now,
                    ready_at_start: *ready,
                    timeout: *timeout,
                    reason: *reason,
                    sleeper,
                    jumped: None,
                    io: Vec::new(),
                    due: Vec::new(),
                    cascaded: Vec::new(),
                    callbacks: 0,
                    polls: 0,
                });
            }
            TimerScheduled { id, deadline, placement } => {
                self.timers_scheduled += 1;
                self.live_timers.insert(*id, (*deadline, *placement));
            }
            CallbackCancelled { id } if self.live_timers.remove(id).is_some() => self.timers_cancelled += 1,
            TimerDue { id, .. } => {
                self.live_timers.remove(id);
                if let Some(r) = self.ledger.last_mut() {
                    r.due.push(*id);
                }
            }
            TimerCascaded { level, slot, moved } => {
                let l = (*level as usize).min(7);
                self.cascades[l] += 1;
                self.cascaded_entries[l] += *moved as u64;
                if let Some(r) = self.ledger.last_mut() {
                    r.cascaded.push((*level, *slot, *moved));
                }
            }
            ClockAdvanced { from, to } => {
                if let Some(r) = self.ledger.last_mut() {
                    r.jumped = Some((*from, *to));
                }
            }
            IoReady { token, .. } => {
                if let Some(r) = self.ledger.last_mut() {
                    r.io.push(*token);
                }
            }
            ExceptionReported { message } => self.reports.push((now, self.iterations, message.clone())),
            LostWaker { task, name } => self.lost.push((now, self.iterations, *task, name.clone())),
            TaskCreated { task, name } => {
                self.tasks.insert(
                    *task,
                    TaskRecord {
                        id: *task,
                        name: name.clone(),
                        spawned_at,
                        created: now,
                        created_iteration: self.iterations,
                        finished: None,
                        finished_iteration: None,
                        state: TaskState::Created,
                        polls: 0,
                        busy: 0,
                        scheduled: 0,
                        idle: 0,
                        cpu_ns: 0,
                        woken_by: BTreeMap::new(),
                        last_change: now,
                        open_slice: None,
                        pending_flow: None,
                    },
                );
            }
            TaskWoken { task, by } => {
                let from_slice = self.current_slice();
                let flow = self.flows.len();
                self.flows.push(Flow { from_slice, to: *task, by: *by, at: now, iteration: self.iterations });
                if let Some(t) = self.tasks.get_mut(task) {
                    if t.state == TaskState::Waiting {
                        t.idle += now - t.last_change;
                    }
                    if t.state != TaskState::Running {
                        t.state = TaskState::Ready;
                        t.last_change = now;
                    }
                    t.pending_flow = Some(flow);
                    *t.woken_by.entry(wake_label(*by)).or_default() += 1;
                }
            }
            TaskPolled { task } => {
                if let Some(r) = self.ledger.last_mut() {
                    r.polls += 1;
                }
                let index = self.slices.len();
                if let Some(t) = self.tasks.get_mut(task) {
                    t.scheduled += now - t.last_change;
                    t.state = TaskState::Running;
                    t.last_change = now;
                    t.polls += 1;
                    t.open_slice = Some(index);
                    let woken_by_flow = t.pending_flow.take();
                    self.slices.push(Slice {
                        track: Track::Task(*task),
                        name: t.name.clone(),
                        start: now,
                        end: now,
                        iteration: self.iterations,
                        cpu_ns: 0,
                        woken_by_flow,
                    });
                    self.poll_started = Some(cpu_now());
                }
            }
            TaskSuspended { task } => self.end_poll(*task, now, None),
            TaskFinished { task, outcome } => {
                self.close_callback(now);
                self.end_poll(*task, now, Some(outcome.clone()));
            }
            CallbackRan { id } => {
                if let Some(r) = self.ledger.last_mut() {
                    r.callbacks += 1;
                }
                let index = self.slices.len();
                self.slices.push(Slice {
                    track: Track::Callback,
                    name: format!("callback {id}"),
                    start: now,
                    end: now,
                    iteration: self.iterations,
                    cpu_ns: 0,
                    woken_by_flow: None,
                });
                self.open_callback = Some((index, cpu_now()));
            }
            _ => {}
        }
    }

    /// A poll returned (Pending, Ready, or a panic), or a task finished without a poll
    /// (cancelled before its next step).
    fn end_poll(&mut self, task: TaskId, now: Nanos, outcome: Option<Outcome>) {
        let cpu = self.poll_started.take().map(|s| cpu_now().saturating_sub(s).as_nanos() as u64);
        let Some(t) = self.tasks.get_mut(&task) else {
            return;
        };
        match t.state {
            TaskState::Running => t.busy += now - t.last_change,
            TaskState::Ready => t.scheduled += now - t.last_change,
            TaskState::Waiting => t.idle += now - t.last_change,
            _ => {}
        }
        if let Some(i) = t.open_slice.take() {
            let cpu = cpu.unwrap_or(0);
            t.cpu_ns += cpu;
            self.slices[i].end = now;
            self.slices[i].cpu_ns = cpu;
        }
        t.last_change = now;
        match outcome {
            None => {
                t.state = if t.pending_flow.is_some() {
                    TaskState::Ready // woke itself (or was woken) while running
                } else {
                    TaskState::Waiting
                };
            }
            Some(o) => {
                t.state = match o {
                    Outcome::Done => TaskState::Done,
                    Outcome::Panicked(_) => TaskState::Failed,
                    Outcome::Cancelled => TaskState::Cancelled,
                };
                t.finished = Some((now, o));
                t.finished_iteration = Some(self.iterations);
            }
        }
    }
}

/// This thread's CPU clock: what the inspector measures steps with (works on the virtual
/// clock too, where a step takes no loop time).
fn cpu_now() -> Duration {
    crate::pool::sys::thread_cpu_time()
}

/// The short name of a waker kind, as the table and timeline print it.
pub fn wake_label(by: WakeSource) -> String {
    match by {
        WakeSource::Spawn => "spawn".to_string(),
        WakeSource::Task(t) => t.to_string(),
        WakeSource::Callback(_) => "callback".to_string(),
        WakeSource::Timer(_) => "timer".to_string(),
        WakeSource::Io(token) => format!("io:{token}"),
        WakeSource::Remote => "thread".to_string(),
        WakeSource::Outside => "outside".to_string(),
    }
}

/// The sink: attach a clone to a loop, keep one to read the model afterwards.
#[derive(Clone)]
pub struct Inspector {
    model: Rc<RefCell<Model>>,
    /// The loop, weakly (a strong handle would keep the loop alive through its own tracer).
    /// Used once per task, to read where it was spawned.
    lp: Weak<Inner>,
}

impl fmt::Debug for Inspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.model.borrow();
        f.debug_struct("Inspector").field("tasks", &m.tasks.len()).field("slices", &m.slices.len()).finish()
    }
}

impl Inspector {
    /// Attach a new inspector to `lp` and return a handle to read it.
    pub fn attach(lp: &LoopHandle) -> Inspector {
        let model = Model { virtual_clock: lp.is_virtual(), ..Model::default() };
        let ins = Inspector { model: Rc::new(RefCell::new(model)), lp: Rc::downgrade(&lp.inner) };
        lp.add_trace_sink(ins.clone());
        ins
    }

    /// Read the model.
    pub fn model(&self) -> std::cell::Ref<'_, Model> {
        self.model.borrow()
    }

    /// The task table (see `table.rs`).
    pub fn table(&self) -> String {
        table::render(&self.model())
    }

    /// The ASCII timeline, `width` columns of time (see `timeline.rs`).
    pub fn timeline(&self, width: usize) -> String {
        timeline::render(&self.model(), width)
    }

    /// The lints with a slow-step threshold (see `lints.rs`).
    pub fn lints(&self, slow: Duration) -> Vec<lints::Lint> {
        lints::lints(&self.model(), slow)
    }

    /// The iteration ledger and the wheel view, as text (see `lints.rs`).
    pub fn ledger(&self) -> String {
        lints::render_ledger(&self.model())
    }

    /// The Chrome trace-event JSON (see `chrome.rs`).
    pub fn chrome_json(&self) -> String {
        chrome::render(&self.model())
    }
}

impl TraceSink for Inspector {
    fn event(&mut self, event: &TraceEvent) {
        let spawned_at = match &event.kind {
            EventKind::TaskCreated { task, .. } => {
                self.lp.upgrade().and_then(|inner| LoopHandle { inner }.task_spawned_at(*task).map(|l| l.to_string()))
            }
            _ => None,
        };
        self.model.borrow_mut().apply(event, spawned_at);
    }
}
