//! Pools: run blocking or CPU-bound work off the loop, on threads or processes.
//!
//! A *pool* owns a fixed set of *workers* and a queue of *jobs*. You hand it a
//! job and get back a [`JobFuture`]: a one-shot slot that the worker fills in
//! with the job's result. The slot can be read three ways: blocking
//! ([`JobFuture::result`]), with a deadline ([`JobFuture::result_timeout`]), or
//! by `.await` on any executor (it implements [`std::future::Future`] with a
//! waker stored under its mutex). [`ThreadPool`] runs closures on threads;
//! [`ProcessPool`] runs *named* plain functions in separate worker processes,
//! moving arguments and results through the [`Codec`] trait and the pipe
//! protocol of [`frame`].
//!
//! ```text
//!   caller thread                 pool                       worker
//!   -------------                 ----                       ------
//!   submit(f) ---(1) queue job--> crossbeam channel --(2)--> run f
//!      |                                                       |
//!      v                                                       v
//!   JobFuture <-----(3) complete: store result, wake waker, notify condvar
//!      |
//!      +-- result() / result_timeout(d)   (block on the condvar)
//!      +-- .await                         (any executor, via the waker)
//!      +-- submit_with(f, on_done)        (callback on the worker instead)
//! ```
//!
//! # concurrent.futures equivalent
//! `ThreadPoolExecutor` is [`ThreadPool`], `ProcessPoolExecutor` is
//! [`ProcessPool`], `Future` is [`JobFuture`], `wait(..., return_when=...)` is
//! [`wait`] with [`ReturnWhen`], `as_completed` is [`as_completed`]. Where we
//! differ: a panic is an error value ([`PoolError::Panicked`]), not a raised
//! exception; a dead process worker fails only the job it was running and is
//! replaced ([`PoolError::WorkerDied`]) instead of breaking the whole pool
//! (`BrokenProcessPool`); and results are taken out of the future once, since
//! Rust values move.
//!
//! # Invariants
//! - **J1** A job's result is stored at most once; a second `complete` is a
//!   broken invariant (`debug_assert!` cites J1).
//! - **J2** Every job that was accepted is completed exactly once: with its
//!   result, an error, or `Cancelled`/`ShutDown`. No future waits forever
//!   because its job was lost (the CPython bpo-22393 lesson).
//! - **J3** `cancel()` succeeds only while the job is still `Pending` (not
//!   started), as in `concurrent.futures.Future.cancel`.
//! - **J4** The waker and the condvar are both notified *after* the result is
//!   stored and under the same mutex, so a waiter never misses a completion.
//! - **J5** A thread that expects an answer within microseconds (a caller in `result()`, a
//!   worker that just finished) spins for at most `SPIN_FOR` (50 µs) before sleeping in the
//!   kernel: a round trip then costs no OS wake-up, and an idle pool uses no CPU after 50 µs.

pub(crate) mod bridge;
pub mod codec;
pub mod frame;
pub mod process;
pub mod shm;
pub(crate) mod sys;
pub mod thread;

pub use bridge::{ExecutorFuture, default_thread_pool, to_thread};
pub use codec::{Codec, CodecError, Decoder, from_bytes, to_bytes};
pub use frame::{Frame, FrameBuf, FrameError, FrameKind};
pub use process::{ProcessPool, ProcessPoolOptions, Registry};
pub use shm::SharedBytes;
pub use thread::ThreadPool;

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How a worker process ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerStatus {
    /// The process called `exit`/`_exit` with this code (`WEXITSTATUS`).
    Exited(i32),
    /// The process was ended by a signal (`WTERMSIG`), maybe with a core dump.
    Signaled {
        /// The signal number, e.g. 9 for `SIGKILL`.
        signal: i32,
        /// Whether the kernel wrote a core file (`WCOREDUMP`).
        core_dumped: bool,
    },
}

impl WorkerStatus {
    /// Decodes a raw `waitpid` status word.
    pub(crate) fn from_raw(status: i32) -> WorkerStatus {
        if libc::WIFSIGNALED(status) {
            WorkerStatus::Signaled { signal: libc::WTERMSIG(status), core_dumped: libc::WCOREDUMP(status) }
        } else {
            WorkerStatus::Exited(libc::WEXITSTATUS(status))
        }
    }
}

/// The conventional name of a signal, for messages like `signal 9 (SIGKILL)`.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => "unknown signal",
    }
}

impl fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WorkerStatus::Exited(code) => write!(f, "exit code {code}"),
            WorkerStatus::Signaled { signal, core_dumped } => {
                write!(f, "signal {signal} ({})", signal_name(signal))?;
                if core_dumped {
                    f.write_str(", core dumped")?;
                }
                Ok(())
            }
        }
    }
}

/// Everything that can go wrong with a pooled job.
/// concurrent.futures: `CancelledError`, `TimeoutError`, `BrokenExecutor`,
/// and the job's own exception.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolError {
    /// A constructor argument was out of range, e.g. zero workers.
    InvalidArgument {
        /// The argument's name, e.g. `"workers"`.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The pool was shut down before the job could run (`RuntimeError:
    /// cannot schedule new futures after shutdown` in Python).
    ShutDown,
    /// The job was cancelled before it started (J3).
    Cancelled,
    /// `result_timeout` ran out; the job is still pending and the future
    /// can be waited on again.
    Timeout,
    /// The result was already taken out of this future.
    ResultTaken,
    /// The job panicked; the worker survived and serves other jobs.
    Panicked {
        /// The panic payload, if it was a string.
        message: String,
    },
    /// The worker process running the job ended; the pool replaced it.
    /// concurrent.futures: `BrokenProcessPool`, but only for this job.
    WorkerDied {
        /// The dead worker's process id.
        pid: u32,
        /// How it ended (`exit code 3`, `signal 9 (SIGKILL)`).
        status: WorkerStatus,
        /// What the manager saw, e.g. "exited while running the job" or the
        /// malformed frame it sent.
        reason: String,
    },
    /// No function of that name is in the pool's [`Registry`].
    UnknownFunction {
        /// The name asked for.
        name: String,
    },
    /// The function is registered with other argument or result types.
    TypeMismatch {
        /// The function's name.
        name: String,
        /// What the registry holds, e.g. `fn(i64) -> i64`.
        registered: String,
        /// What the caller asked for.
        requested: String,
    },
    /// The result bytes could not be decoded in the parent.
    Codec(CodecError),
    /// The worker reported an error before running the function (e.g. the
    /// argument did not decode there).
    Remote {
        /// The worker's message.
        message: String,
    },
    /// A worker process could not be started.
    Spawn {
        /// The OS error, as text (io::Error is not `Clone`).
        reason: String,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::InvalidArgument { name, reason } => {
                write!(f, "invalid argument `{name}`: {reason}")
            }
            PoolError::ShutDown => f.write_str("the pool is shut down"),
            PoolError::Cancelled => f.write_str("the job was cancelled"),
            PoolError::Timeout => f.write_str("timed out waiting for the job"),
            PoolError::ResultTaken => f.write_str("the result was already taken"),
            PoolError::Panicked { message } => write!(f, "the job panicked: {message}"),
            PoolError::WorkerDied { pid, status, reason } => {
                write!(f, "worker process {pid} died ({status}): {reason}")
            }
            PoolError::UnknownFunction { name } => {
                write!(f, "no function named {name:?} in the registry")
            }
            PoolError::TypeMismatch { name, registered, requested } => {
                write!(f, "{name:?} is registered as {registered}, called as {requested}")
            }
            PoolError::Codec(e) => write!(f, "could not decode the result: {e}"),
            PoolError::Remote { message } => write!(f, "worker error: {message}"),
            PoolError::Spawn { reason } => write!(f, "could not start a worker: {reason}"),
        }
    }
}

impl std::error::Error for PoolError {}

/// Turns a `catch_unwind` payload into the panic's message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Where a job is in its life. concurrent.futures: `Future._state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Queued, not started: `cancel` still works (J3).
    Pending,
    /// A worker took it.
    Running,
    /// The result (or error) is in `JobState::result`.
    Done,
}

/// Something to call once when the job is done (used by [`wait`] and
/// [`as_completed`] to learn about completions without polling).
type DoneHook = Box<dyn FnOnce() + Send>;

/// The part of a job shared by the future and the worker, under one mutex.
struct JobState<T> {
    /// Life stage, for `cancel` and `is_done` (J3).
    stage: Stage,
    /// The result, from `Done` until it is taken.
    result: Option<Result<T, PoolError>>,
    /// Whether the result has been moved out already.
    taken: bool,
    /// The task awaiting this future, if any (J4).
    waker: Option<Waker>,
    /// Hooks of `wait`/`as_completed`, run once at completion.
    hooks: Vec<DoneHook>,
}

/// How long a thread that expects an answer soon (a caller blocked in `result()`, a worker
/// that just finished a job) spins before it sleeps (J5).
pub(crate) const SPIN_FOR: Duration = Duration::from_micros(50);

/// Spin until `ready()` or [`SPIN_FOR`] has passed; returns whether it became ready. J5:
/// the spin is bounded, so an idle pool goes back to sleeping in the kernel at once.
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN_FOR {
            return false;
        }
    }
}

/// The shared slot: state under a mutex plus a condvar for blocking readers.
struct JobShared<T> {
    /// The state (J4: every change happens under this lock).
    state: Mutex<JobState<T>>,
    /// Signalled at completion, for `result()` and `result_timeout()`.
    done: Condvar,
    /// Set (with `Release`) whenever `stage` becomes `Done`: what `result()` spins on before
    /// it sleeps on the condvar (J5), without taking the mutex.
    finished: AtomicBool,
}

impl<T> JobShared<T> {
    /// Locks the state; a poisoned lock still holds consistent data because
    /// we never panic while holding it, so we recover it.
    fn lock(&self) -> MutexGuard<'_, JobState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The result of a pooled job, to block on or to `.await`.
/// concurrent.futures: `Future`.
pub struct JobFuture<T> {
    /// The slot shared with the worker side ([`Completer`]).
    shared: Arc<JobShared<T>>,
}

impl<T> fmt::Debug for JobFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("JobFuture").field("stage", &st.stage).field("taken", &st.taken).finish()
    }
}

/// The worker's half of a job: it marks the job running and completes it.
pub(crate) struct Completer<T> {
    /// The same slot the [`JobFuture`] reads.
    shared: Arc<JobShared<T>>,
}

impl<T> fmt::Debug for Completer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Completer")
    }
}

/// Makes a pending job: the caller keeps the future, the pool the completer.
pub(crate) fn job_pair<T>() -> (JobFuture<T>, Completer<T>) {
    let shared = Arc::new(JobShared {
        state: Mutex::new(JobState {
            stage: Stage::Pending,
            result: None,
            taken: false,
            waker: None,
            hooks: Vec::new(),
        }),
        done: Condvar::new(),
        finished: AtomicBool::new(false),
    });
    (JobFuture { shared: Arc::clone(&shared) }, Completer { shared })
}

impl<T> Completer<T> {
    /// Moves the job from `Pending` to `Running`. Returns `false` if it was
    /// cancelled (J3): the worker must then skip it.
    pub(crate) fn set_running(&self) -> bool {
        let mut st = self.shared.lock();
        match st.stage {
            Stage::Pending => {
                st.stage = Stage::Running;
                true
            }
            Stage::Running => true,
            Stage::Done => false,
        }
    }

    /// Stores the result and wakes every kind of waiter (J1, J4). A job that
    /// was cancelled meanwhile keeps `Cancelled`.
    pub(crate) fn complete(self, result: Result<T, PoolError>) {
        // `Done` already: cancelled before it ran, J3 wins and the result is dropped.
        self.shared.settle(|stage| stage != Stage::Done, result);
    }
}

impl<T> JobShared<T> {
    /// The one way a job becomes `Done` (J1, J4): if `allowed(stage)`, store `result`, mark
    /// it finished (J5's flag), notify the condvar under the lock, then wake the awaiting
    /// task and run the `wait`/`as_completed` hooks outside it (so a hook may touch the
    /// future). Returns whether it settled the job.
    fn settle(&self, allowed: impl FnOnce(Stage) -> bool, result: Result<T, PoolError>) -> bool {
        let (waker, hooks) = {
            let mut st = self.lock();
            if !allowed(st.stage) {
                return false;
            }
            debug_assert!(st.result.is_none(), "J1: a job completed twice");
            st.stage = Stage::Done;
            st.result = Some(result);
            self.finished.store(true, Ordering::Release);
            self.done.notify_all();
            (st.waker.take(), std::mem::take(&mut st.hooks))
        };
        if let Some(w) = waker {
            w.wake();
        }
        for hook in hooks {
            hook();
        }
        true
    }
}

impl<T> Drop for Completer<T> {
    /// J2: a completer dropped without a result (its job was discarded at
    /// shutdown, or a worker thread unwound) still completes the job.
    fn drop(&mut self) {
        self.shared.settle(|stage| stage != Stage::Done, Err(PoolError::ShutDown));
    }
}

impl<T> JobFuture<T> {
    /// Whether the job finished (with a result, an error or a cancel).
    /// concurrent.futures: `Future.done()`.
    pub fn is_done(&self) -> bool {
        self.shared.lock().stage == Stage::Done
    }

    /// Whether a worker has taken the job (for a process pool: it was sent
    /// to a worker and can no longer be cancelled).
    /// concurrent.futures: `Future.running()`.
    pub fn running(&self) -> bool {
        self.shared.lock().stage == Stage::Running
    }

    /// Cancels the job if it has not started; returns whether it did (J3).
    /// concurrent.futures: `Future.cancel()`.
    pub fn cancel(&self) -> bool {
        self.shared.settle(|stage| stage == Stage::Pending, Err(PoolError::Cancelled))
    }

    /// Blocks until the job is done and returns its result.
    /// concurrent.futures: `Future.result()`.
    pub fn result(self) -> Result<T, PoolError> {
        // J5: a short job answers within microseconds; waiting for it on the condvar would
        // add the OS's wake-up latency (tens of µs on a VM) to every round trip.
        spin_until(|| self.shared.finished.load(Ordering::Acquire));
        let mut st = self.shared.lock();
        while st.stage != Stage::Done {
            st = self.shared.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        take_result(&mut st)
    }

    /// Blocks at most `timeout`. On `Err(PoolError::Timeout)` the job is
    /// still pending and you may wait again; otherwise the result is moved
    /// out and later calls return `Err(PoolError::ResultTaken)`.
    /// concurrent.futures: `Future.result(timeout)`.
    pub fn result_timeout(&mut self, timeout: Duration) -> Result<T, PoolError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.stage != Stage::Done {
            let now = Instant::now();
            if now >= deadline {
                return Err(PoolError::Timeout);
            }
            st = self.shared.done.wait_timeout(st, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        take_result(&mut st)
    }

    /// Calls `hook` once when the job is done (now, if it already is).
    /// concurrent.futures: `Future.add_done_callback`, without the argument.
    fn on_done(&self, hook: DoneHook) {
        let mut st = self.shared.lock();
        if st.stage == Stage::Done {
            drop(st);
            hook();
        } else {
            st.hooks.push(hook);
        }
    }
}

/// Moves the result out of a done job's state.
fn take_result<T>(st: &mut JobState<T>) -> Result<T, PoolError> {
    match st.result.take() {
        Some(r) => {
            st.taken = true;
            r
        }
        None => Err(PoolError::ResultTaken),
    }
}

impl<T> Future for JobFuture<T> {
    type Output = Result<T, PoolError>;

    /// Ready once the job is done; otherwise stores the waker (J4) so the
    /// completing worker thread can wake this task on any executor.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.shared.lock();
        if st.stage == Stage::Done {
            return Poll::Ready(take_result(&mut st));
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// When [`wait`] returns. asyncio/concurrent.futures: `FIRST_COMPLETED`,
/// `ALL_COMPLETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future is done.
    FirstCompleted,
    /// When every future is done.
    AllCompleted,
}

/// Waits until `futures` satisfy `return_when` or `timeout` passes, and
/// splits them into `(done, pending)`, each in the order given.
/// concurrent.futures: `wait(fs, timeout, return_when)`.
pub fn wait<T>(
    futures: Vec<JobFuture<T>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> (Vec<JobFuture<T>>, Vec<JobFuture<T>>) {
    let deadline = timeout.map(|t| Instant::now() + t);
    let (tx, rx) = crossbeam_channel::unbounded::<()>();
    for f in &futures {
        let tx = tx.clone();
        f.on_done(Box::new(move || {
            let _ = tx.send(());
        }));
    }
    drop(tx);
    let need = match return_when {
        ReturnWhen::FirstCompleted => 1.min(futures.len()),
        ReturnWhen::AllCompleted => futures.len(),
    };
    for _ in 0..need {
        let got = match deadline {
            Some(d) => rx.recv_deadline(d).is_ok(),
            None => rx.recv().is_ok(),
        };
        if !got {
            break;
        }
    }
    futures.into_iter().partition(|f| f.is_done())
}

/// Yields the futures in the order they complete, each already done.
/// concurrent.futures: `as_completed(fs)`.
pub fn as_completed<T>(futures: Vec<JobFuture<T>>) -> AsCompleted<T> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut slots = Vec::with_capacity(futures.len());
    for (i, f) in futures.into_iter().enumerate() {
        let tx = tx.clone();
        f.on_done(Box::new(move || {
            let _ = tx.send(i);
        }));
        slots.push(Some(f));
    }
    AsCompleted { left: slots.len(), slots, done: rx }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<T> {
    /// The futures by submission index; `None` once yielded.
    slots: Vec<Option<JobFuture<T>>>,
    /// Indexes of completed futures, in completion order (from done hooks).
    done: crossbeam_channel::Receiver<usize>,
    /// How many futures are still to be yielded.
    left: usize,
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted").field("left", &self.left).finish()
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = JobFuture<T>;

    fn next(&mut self) -> Option<JobFuture<T>> {
        if self.left == 0 {
            return None;
        }
        // J2: every accepted job completes, so this recv returns.
        let i = self.done.recv().ok()?;
        self.left -= 1;
        self.slots[i].take()
    }
}
