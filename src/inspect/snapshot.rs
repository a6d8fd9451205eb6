//! A snapshot of the loop: every structure the memory walkthrough talks about, copied out
//! as plain data at one instant.
//!
//! [`LoopHandle::snapshot`] reads the loop's own fields (the ready queue, the task slab, the
//! timer queue, the reactor's slab, "what is running now") and returns a [`LoopSnapshot`].
//! Nothing in it points back into the loop, so you can keep it, compare two, or print it.
//! Its `Display` shows ids, never addresses, in a fixed order, so the same program prints
//! the same text every run (golden tests pin it):
//!
//! ```text
//!   == loop snapshot  t=1.000s  iteration=5  virtual clock ==
//!   running  T3 "Job-B"
//!   stack    run_forever > run_once [phase 4] > run_task(T3) > poll "Job-B"
//!   ready    ReadyQueue       len=1 cap=64  [Cb #9 (wakes T2)]
//!   tasks    TaskTable        live=4 cap=16  header=64 B each
//!     T1 slot 0  WAITING  future=  96 B  polls=1  "main"   awaiting T3
//!     T3 slot 2  RUNNING  future= 160 B  polls=2  "Job-B"
//!   timers   TimerWheel       live=2 next=2.000s
//!     #7  wakes T2   L1 slot 31     #8  wakes T4   L1 slot 46
//!     L1 [31: 1 @2.000s, 46: 1 @3.000s]   (other levels empty)
//!   reactor  mio::Poll        sources=0
//! ```
//!
//! # asyncio equivalent
//! There is no single call; the pieces are `loop._ready`, `loop._scheduled`,
//! `asyncio.all_tasks()`, `Task.get_stack()`, and the reprs of `Handle` and `Task`
//! (`<Task pending name='Job-B' coro=... wait_for=<Future pending cb=[...]>>`).
//!
//! # Invariants
//! - **I1** Taking a snapshot never changes what the loop will do next. (It asks the timer
//!   queue for its next deadline, which may refresh a cache; the answer is the same either
//!   way, T4.)
//! - **I2** Within a snapshot, tasks are sorted by spawn number and timers by `seq`; the
//!   ready queue keeps its own (FIFO) order, which is the point of showing it.

use std::fmt;
use std::mem::size_of;

use crate::clock::Nanos;
use crate::events::{CallbackFn, LoopHandle, ReadyKind, Running};
use crate::net::reactor::Waiter;
use crate::task::{TaskId, TaskSlot, TaskState};
use crate::timer::{Placement, TimerSnapshot};
use crate::trace::{CallbackId, fmt_secs};

/// Everything the walkthrough prints about the loop, at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopSnapshot {
    /// Loop time (ns since the loop started). asyncio: `loop.time()`.
    pub time: Nanos,
    /// Iterations run so far (`run_once` calls).
    pub iteration: u64,
    /// On the virtual clock?
    pub virtual_clock: bool,
    /// Inside `run_forever`/`run_until_complete`? asyncio: `loop.is_running()`.
    pub loop_running: bool,
    /// Closed? asyncio: `loop.is_closed()`.
    pub closed: bool,
    /// What the loop is executing at this instant.
    pub running: RunningNow,
    /// The ready queue, front first. asyncio: `loop._ready`.
    pub ready: Vec<ReadyEntry>,
    /// The ready queue's allocated capacity (`ReadyQueue::capacity`, a power of two).
    pub ready_capacity: usize,
    /// Every task with a slot, sorted by spawn number (I2).
    pub tasks: Vec<TaskInfo>,
    /// The task table's allocated capacity, in slots (over all its pages).
    pub task_capacity: usize,
    /// `size_of::<TaskSlot>()`: the header the loop keeps per task, beside the boxed future.
    pub task_header_size: usize,
    /// Chunks of the loop's task arena (`src/task/arena.rs`), where the boxed futures live.
    pub task_arena_chunks: usize,
    /// The timer queue's own picture (wheel levels and slots, or the heap's top).
    pub timers: TimerSnapshot,
    /// Live timers, sorted by `seq` (I2), with what each will do and where it sits.
    pub timer_entries: Vec<TimerEntry>,
    /// The earliest live deadline: how long the loop may sleep (T4).
    pub next_deadline: Option<Nanos>,
    /// Registered I/O sources, by token.
    pub io_sources: Vec<IoSource>,
}

/// What the loop is executing when the snapshot is taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunningNow {
    /// Nothing: the snapshot was taken between steps (or the loop is not running).
    Idle,
    /// Polling this task.
    Task {
        /// The task.
        id: TaskId,
        /// Its display name.
        name: String,
    },
    /// Running a `call_soon` callback.
    Callback(CallbackId),
    /// Running a timer's callback.
    Timer(CallbackId),
    /// Dispatching readiness of an I/O token.
    Io(usize),
    /// Running a call from another thread.
    Remote,
}

/// What a callback in the ready queue or the timer queue will do when it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackKind {
    /// A closure from `call_soon` / `call_later` / a done-callback.
    Closure,
    /// A closure sent from another thread (`call_soon_threadsafe`).
    Remote,
    /// Wake this task (what `sleep` schedules).
    WakeTask(TaskId),
    /// Call a waker that is not a looplab task's.
    Waker,
}

/// One entry of the ready queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyEntry {
    /// A task step. asyncio: a `Handle` of `Task.__step`.
    Task(TaskId),
    /// A callback. `kind` is `None` if it was cancelled while queued (it will be skipped, E4).
    Callback {
        /// Its id.
        id: CallbackId,
        /// What it does.
        kind: Option<CallbackKind>,
    },
}

/// One task, as the walkthrough prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// Its id (`T` + spawn number).
    pub id: TaskId,
    /// Its display name.
    pub name: String,
    /// Its state.
    pub state: TaskState,
    /// Its slab slot.
    pub slot: usize,
    /// `size_of_val` of its boxed future: the suspended `async fn`'s locals and state.
    pub future_size: usize,
    /// Polls so far.
    pub polls: u32,
    /// `cancel()` was requested and has not taken effect yet.
    pub cancel_requested: bool,
    /// The task it awaited when it last suspended. asyncio: `_fut_waiter`.
    pub awaiting: Option<TaskId>,
    /// Where it was spawned (`file:line:col`, from `#[track_caller]`).
    pub spawned_at: String,
}

/// One live timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerEntry {
    /// Its callback id (`#seq`).
    pub id: CallbackId,
    /// What it will do when it fires.
    pub kind: CallbackKind,
    /// Where the queue keeps it (wheel level and slot, or heap index).
    pub placement: Option<Placement>,
}

/// One registered I/O source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoSource {
    /// Its token (the reactor slab index).
    pub token: usize,
    /// Its label ("tcp listener 127.0.0.1:8080").
    pub label: String,
    /// A task or callback waits for readability.
    pub reader: bool,
    /// A task or callback waits for writability.
    pub writer: bool,
}

fn callback_kind(f: &CallbackFn) -> CallbackKind {
    match f {
        CallbackFn::Boxed(_) | CallbackFn::Gather(_) => CallbackKind::Closure,
        CallbackFn::Remote(_) => CallbackKind::Remote,
        CallbackFn::Wake(_) => CallbackKind::Waker,
        CallbackFn::WakeTask(t) => CallbackKind::WakeTask(*t),
    }
}

fn task_info(index: usize, s: &TaskSlot) -> TaskInfo {
    TaskInfo {
        id: s.id_at(index),
        name: s.display_name(),
        state: s.state,
        slot: index,
        future_size: s.future_size as usize,
        polls: s.polls,
        cancel_requested: s.cancel_requested(),
        awaiting: s.waiting_on(),
        spawned_at: s.spawned_at.to_string(),
    }
}

impl LoopHandle {
    /// Copy out the loop's state (see the module docs). Cost: O(tasks + timers + ready).
    ///
    /// Call it from the program (before or after running), from a task or from a callback;
    /// not from inside a [`TraceSink`](crate::trace::TraceSink) (the loop may be mid-update).
    pub fn snapshot(&self) -> LoopSnapshot {
        let inner = &self.inner;
        let running = match inner.current.get() {
            Running::Idle => RunningNow::Idle,
            Running::Task(id) => RunningNow::Task { id, name: self.task_name(id).unwrap_or_default() },
            Running::Callback { index, seq } => RunningNow::Callback(CallbackId { index, seq }),
            Running::Timer { index, seq } => RunningNow::Timer(CallbackId { index, seq }),
            Running::Io(t) => RunningNow::Io(t),
            Running::Remote => RunningNow::Remote,
        };
        let callbacks = inner.callbacks.borrow();
        // A ready entry keeps the low 32 bits of its callback's seq (E9): the slot has the rest.
        let entry_of = |index: u32, seq_low: u32| match callbacks.get(index as usize) {
            Some(s) if s.named_by(seq_low) => {
                ReadyEntry::Callback { id: CallbackId { index, seq: s.seq }, kind: Some(callback_kind(&s.f)) }
            }
            _ => ReadyEntry::Callback { id: CallbackId { index, seq: u64::from(seq_low) }, kind: None },
        };
        let (ready, ready_capacity) = {
            let q = inner.ready.borrow();
            let list = q
                .iter()
                .map(|r| match r.kind() {
                    ReadyKind::Task(t) => ReadyEntry::Task(t),
                    ReadyKind::Callback { index, seq_low } => entry_of(index, seq_low),
                })
                .collect();
            (list, q.capacity())
        };
        let (mut tasks, task_capacity) = {
            let slab = inner.tasks.borrow();
            let list: Vec<TaskInfo> = slab.iter().map(|(i, s)| task_info(i, s)).collect();
            (list, slab.capacity())
        };
        tasks.sort_by_key(|t| t.id.number());
        let (timers, next_deadline, mut timer_entries) = {
            let mut t = inner.timers.borrow_mut();
            // I1: next_deadline may refresh the wheel's cached minimum; the answer is exact.
            let next = t.queue_mut().next_deadline();
            let q = t.queue();
            let entries: Vec<TimerEntry> = callbacks
                .iter()
                .filter_map(|(index, s)| {
                    let key = s.timer_key()?;
                    Some(TimerEntry {
                        id: CallbackId { index: index as u32, seq: s.seq },
                        kind: callback_kind(&s.f),
                        placement: q.placement(key),
                    })
                })
                .collect();
            (q.snapshot(), next, entries)
        };
        timer_entries.sort_by_key(|e| e.id.seq);
        let io_sources = {
            let r = inner.reactor.borrow();
            r.slots
                .iter()
                .map(|(token, s)| IoSource {
                    token,
                    label: s.label.clone(),
                    reader: !matches!(s.reader, Waiter::None),
                    writer: !matches!(s.writer, Waiter::None),
                })
                .collect()
        };
        LoopSnapshot {
            time: inner.clock.now(),
            iteration: inner.iteration.get(),
            virtual_clock: inner.clock.is_virtual(),
            loop_running: inner.running.get(),
            closed: inner.closed.get(),
            running,
            ready,
            ready_capacity,
            tasks,
            task_capacity,
            task_header_size: size_of::<TaskSlot>(),
            task_arena_chunks: inner.arena.chunks(),
            timers,
            timer_entries,
            next_deadline,
            io_sources,
        }
    }
}

impl LoopSnapshot {
    /// The task with this id, if it has a slot.
    pub fn task(&self, id: TaskId) -> Option<&TaskInfo> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The task with this name, if any (the first by spawn number).
    pub fn task_named(&self, name: &str) -> Option<&TaskInfo> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// The live timer that will wake `task`, if any (a `sleep` in progress).
    pub fn timer_for(&self, task: TaskId) -> Option<&TimerEntry> {
        self.timer_entries.iter().find(|e| e.kind == CallbackKind::WakeTask(task))
    }

    /// The Rust frames on the call stack right now, outermost first, as this runtime's code
    /// path makes them (derived from [`RunningNow`], not by unwinding the stack).
    pub fn call_stack(&self) -> Vec<String> {
        if !self.loop_running {
            return vec!["main (the loop is not running)".to_string()];
        }
        let mut frames = vec!["run_forever".to_string(), "run_once [phase 4]".to_string()];
        match &self.running {
            RunningNow::Idle => frames[1] = "run_once".to_string(),
            RunningNow::Task { id, name } => {
                frames.push(format!("run_task({id})"));
                frames.push(format!("poll {name:?}"));
            }
            RunningNow::Callback(c) => frames.push(format!("run_callback({c})")),
            RunningNow::Timer(c) => frames.push(format!("run_callback({c}) [timer]")),
            RunningNow::Io(t) => {
                frames[1] = "run_once [phase 2]".to_string();
                frames.push(format!("poll_io: wake token {t}"));
            }
            RunningNow::Remote => frames.push("run_callback [from another thread]".to_string()),
        }
        frames
    }
}

impl fmt::Display for CallbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallbackKind::Closure => f.write_str("closure"),
            CallbackKind::Remote => f.write_str("from another thread"),
            CallbackKind::WakeTask(t) => write!(f, "wakes {t}"),
            CallbackKind::Waker => f.write_str("wakes a waker"),
        }
    }
}

impl fmt::Display for ReadyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadyEntry::Task(t) => write!(f, "Task({t})"),
            ReadyEntry::Callback { id, kind: Some(k) } => write!(f, "Cb {id} ({k})"),
            ReadyEntry::Callback { id, kind: None } => write!(f, "Cb {id} (cancelled)"),
        }
    }
}

impl fmt::Display for RunningNow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunningNow::Idle => f.write_str("nothing (between steps)"),
            RunningNow::Task { id, name } => write!(f, "{id} {name:?}"),
            RunningNow::Callback(c) => write!(f, "callback {c}"),
            RunningNow::Timer(c) => write!(f, "timer callback {c}"),
            RunningNow::Io(t) => write!(f, "I/O dispatch for token {t}"),
            RunningNow::Remote => f.write_str("a call from another thread"),
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Wheel { level, slot } => write!(f, "L{level} slot {slot}"),
            Placement::Heap { index } => write!(f, "heap[{index}]"),
        }
    }
}

impl fmt::Display for TaskInfo {
    /// `T3 slot 2  WAITING  future= 160 B  polls=1  "Job-B"  awaiting T1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<3} slot {:<2} {:<9} future={:>5} B  polls={:<2} {:?}",
            self.id.to_string(),
            self.slot,
            self.state.as_str(),
            self.future_size,
            self.polls,
            self.name
        )?;
        if let Some(a) = self.awaiting {
            write!(f, "  awaiting {a}")?;
        }
        if self.cancel_requested {
            f.write_str("  (cancel requested)")?;
        }
        Ok(())
    }
}

/// The timer queue in the snapshot's style: wheel levels with something in them, one line.
pub(crate) fn write_timer_levels(f: &mut fmt::Formatter<'_>, t: &TimerSnapshot) -> fmt::Result {
    match t {
        TimerSnapshot::Wheel(w) => {
            write!(f, "    wheel at tick {}:", w.elapsed_tick)?;
            let mut any = false;
            for level in w.levels.iter().filter(|l| !l.slots.is_empty()) {
                any = true;
                write!(f, "  L{} [", level.level)?;
                for (i, s) in level.slots.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}slot {}: {} @{}", s.slot, s.entries, fmt_secs(s.earliest))?;
                }
                f.write_str("]")?;
            }
            if !any {
                f.write_str("  every level empty")?;
            }
            Ok(())
        }
        TimerSnapshot::Heap(_) => write!(f, "    {t}"),
    }
}

impl fmt::Display for LoopSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clock = if self.virtual_clock { "virtual clock" } else { "real clock" };
        let status = if self.closed { "  CLOSED" } else { "" };
        writeln!(f, "== loop snapshot  t={}  iteration={}  {clock}{status} ==", fmt_secs(self.time), self.iteration)?;
        writeln!(f, "running  {}", self.running)?;
        writeln!(f, "stack    {}", self.call_stack().join(" > "))?;
        write!(f, "ready    ReadyQueue       len={} cap={}  [", self.ready.len(), self.ready_capacity)?;
        for (i, r) in self.ready.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{r}")?;
        }
        writeln!(f, "]")?;
        writeln!(
            f,
            "tasks    TaskTable        live={} cap={}  header={} B each",
            self.tasks.len(),
            self.task_capacity,
            self.task_header_size
        )?;
        for t in &self.tasks {
            writeln!(f, "  {t}")?;
        }
        writeln!(
            f,
            "arena    TaskArena        chunks={} x {} KiB  (futures of up to {} B, in {}-byte classes)",
            self.task_arena_chunks,
            crate::task::ARENA_CHUNK / 1024,
            crate::task::ARENA_LARGEST,
            crate::task::ARENA_GRAIN
        )?;
        let kind = match self.timers {
            TimerSnapshot::Wheel(_) => "TimerWheel",
            TimerSnapshot::Heap(_) => "TimerHeap ",
        };
        write!(f, "timers   {kind}       live={}", self.timer_entries.len())?;
        match self.next_deadline {
            Some(d) => writeln!(f, "  next deadline {}", fmt_secs(d))?,
            None => writeln!(f, "  no deadline")?,
        }
        for e in &self.timer_entries {
            write!(f, "  {:<4} {:<9}", e.id.to_string(), e.kind.to_string())?;
            match e.placement {
                Some(p) => writeln!(f, " at {p}")?,
                None => writeln!(f)?,
            }
        }
        write_timer_levels(f, &self.timers)?;
        writeln!(f)?;
        write!(f, "reactor  mio::Poll        sources={}", self.io_sources.len())?;
        for s in &self.io_sources {
            let dir = match (s.reader, s.writer) {
                (true, true) => "RW",
                (true, false) => "R",
                (false, true) => "W",
                (false, false) => "-",
            };
            write!(f, "\n  Token({}) {} {dir}", s.token, s.label)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{EventLoop, TaskState, yield_now};

    /// A task reads its own header from inside its poll: while its future is out of the slot
    /// being polled, the slot still holds what the walkthrough prints of it (poll count,
    /// spawn site, future size), so the snapshot sees the running task whole, beside a
    /// waiting one. (Fields kept with the future, in its box, would vanish from the slot
    /// during the poll.)
    #[test]
    fn a_running_task_sees_its_own_header() {
        let lp = EventLoop::new_virtual();
        let h = lp.handle();
        let waiting = h.spawn_named("waiting", std::future::pending::<()>());
        let waiting_id = waiting.id();
        let h2 = h.clone();
        let me = h.spawn_named("me", async move {
            yield_now().await;
            let me = h2.current_task().expect("inside a task");
            let snap = h2.snapshot();
            (snap.task(me).cloned(), snap.task(waiting_id).cloned())
        });
        let (mine, other) = lp.run_until_complete(me).unwrap().unwrap();
        let mine = mine.expect("the running task is in the snapshot");
        assert_eq!((mine.name.as_str(), mine.state, mine.polls), ("me", TaskState::Running, 2));
        assert!(mine.spawned_at.contains("snapshot.rs"), "{}", mine.spawned_at);
        assert!(mine.future_size > 0);
        let other = other.expect("the waiting task too");
        assert_eq!((other.name.as_str(), other.state, other.polls), ("waiting", TaskState::Waiting, 1));
        drop(waiting);
    }
}
