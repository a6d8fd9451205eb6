//! The process pool: named functions run in worker processes that are this
//! same executable, started again in *worker mode*.
//!
//! A *worker* is a child process running [`Registry::run_worker_if_child`]:
//! it reads call frames on fd 3, runs the named plain `fn`, and writes reply
//! frames on fd 4 ([`frame`] has the byte layout). The parent
//! side is one *manager thread* per pool that owns every worker: it writes
//! calls, reads replies, completes futures, notices deaths through a pidfd
//! per worker, reaps, and starts replacements. Callers never touch a pipe;
//! they talk to the manager through a channel plus an eventfd *doorbell*.
//!
//! ```text
//!  caller threads              manager thread (owns all fds)   workers
//!  --------------              -----------------------------   -------
//!  submit("sq", 9)
//!   encode Call frame --(1)--> inbox (crossbeam) + doorbell
//!                              backlog: VecDeque<Job>
//!                              (2) dispatch: <= depth jobs per worker
//!                                 call pipe (non-blocking) ----> fd 3: read
//!                                                                run sq(9)
//!                              (3) poll: result pipe  <--------- fd 4: Reply
//!   JobFuture <--(4) decode, complete
//!                              (5) pidfd readable: worker died
//!                                  waitpid (reap once), fail the job it ran,
//!                                  requeue the ones it had not started,
//!                                  spawn a replacement (6)
//! ```
//!
//! Worker life, edges numbered by the function that takes them:
//! ```text
//!   spawn_worker(6) --> Accepting --quota used (dispatch)--> Retiring
//!        |                 |  \--malformed frame (break_worker)--> Broken
//!        |                 |      (SIGKILL sent)                      |
//!        +-----------------+--------------+---------------------------+
//!                                         v
//!                 pidfd readable --> reap (on_worker_exit) --> removed
//! ```
//!
//! # concurrent.futures equivalent
//! `ProcessPoolExecutor` with the `spawn` start method: its
//! `_ExecutorManagerThread` is our manager, `_process_worker` is
//! `worker_loop`, `EXTRA_QUEUED_CALLS` is our per-worker pipeline depth,
//! and `if __name__ == "__main__":` is the call to
//! [`Registry::run_worker_if_child`] at the top of `main`. Differences:
//! - Functions are looked up by registered name, never pickled or found by
//!   pointer offset; arguments and results go through [`Codec`].
//! - A dead worker fails only the job it was running with
//!   [`PoolError::WorkerDied`] (pid and exit code or signal); jobs it had
//!   received but not started go back to the queue; the pool replaces the
//!   worker and goes on. CPython breaks the whole pool (`BrokenProcessPool`),
//!   and `multiprocessing.Pool` hung (bpo-22393).
//! - `max_tasks_per_child` is enforced by counting in the manager (P5), so a
//!   retiring worker always gets a replacement (CPython gh-115634 lost
//!   replacements through a semaphore that counted tasks, not workers).
//!
//! # Invariants
//! - **P1** Only the manager thread reads or writes a worker's pipes; a
//!   worker's call pipe and result pipe are non-blocking in the parent, so
//!   the manager never blocks on a slow or dead worker.
//! - **P2** Every child pid is reaped exactly once, by `waitpid` in the
//!   manager thread, and is signalled only before that reaping (so a reused
//!   pid is never signalled).
//! - **P3** A worker cannot outlive the pool: it exits at end of file on its
//!   call pipe, is `SIGKILL`ed by the kernel when the manager thread ends
//!   (`PR_SET_PDEATHSIG`, set before `exec`, re-checked with `getppid`), and
//!   shutdown escalates grace period -> SIGTERM -> SIGKILL.
//! - **P4** A worker runs its calls one at a time, in the order received, and
//!   writes each reply before starting the next call. So the manager's
//!   per-worker in-flight queue is in reply order, and when a worker dies
//!   only its *first* unanswered job can have started.
//! - **P5** A worker is sent at most `max_tasks_per_child` calls; it exits
//!   after that many replies, and the manager spawns replacements by
//!   counting accepting workers against `workers` (never by tokens).
//! - **P6** Every accepted job is completed exactly once (J2): by its reply,
//!   by `WorkerDied`, or by `ShutDown`/`Cancelled`.
//! - **P7** A process started in worker mode never runs `main`'s pool code:
//!   [`ProcessPool::with_options`] refuses to start inside a worker, so a
//!   program that forgot the entry call cannot fork-bomb.
//! - **P8** Jobs are dealt breadth first: no worker is sent its `k+1`-th
//!   unanswered call while another accepting worker has fewer than `k+1`.
//!   `depth` (calls in flight per worker, default 2) hides the pipe's latency
//!   for small jobs; dealt depth first it stacked the first jobs on the first
//!   workers (5 jobs on 5 idle workers ran on 3) while the others idled.
//!   A call already sent to a busy worker still waits for it (no stealing):
//!   for long jobs of uneven length, `jobs_in_flight_per_worker(1)` keeps
//!   every queued job free for whichever worker is next idle, as CPython's
//!   single call queue does.

use crate::pool::codec::{Codec, CodecError, Decoder};
use crate::pool::frame::{
    self, FrameBuf, FrameKind, STATUS_ERROR, STATUS_OK, STATUS_PANICKED, begin_frame, end_frame, put_name,
};
use crate::pool::shm::{self, SharedBytes};
use crate::pool::sys;
use crate::pool::{Completer, JobFuture, PoolError, WorkerStatus, job_pair, panic_message};
use crossbeam_channel::{Receiver, Sender};
use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The environment variable that puts a process in worker mode. Its value
/// is `<protocol version>:<parent pid>:<max tasks, 0 = unlimited>`.
pub const WORKER_ENV: &str = "LOOPLAB_POOL_WORKER";

/// The exit code of a worker that found its protocol stream broken.
const EXIT_PROTOCOL: i32 = 97;

// ---------------------------------------------------------------------------
// The registry: names -> type-erased functions
// ---------------------------------------------------------------------------

/// Runs a registered function on an encoded argument, appending
/// `status | payload` (one call) to the output.
type CallOne = Box<dyn Fn(&[u8], &mut Vec<u8>) + Send + Sync>;

/// One registered function, type-erased for the worker and typed for checks.
struct Entry {
    /// Decodes the argument, calls the `fn` under `catch_unwind`, encodes.
    call: CallOne,
    /// `TypeId` of the argument type, checked at `submit`.
    arg: TypeId,
    /// `TypeId` of the result type, checked at `submit`.
    ret: TypeId,
    /// `fn(A) -> R` spelled out, for `TypeMismatch` messages.
    signature: String,
}

/// The named functions a worker can run. Build the *same* registry in the
/// parent (for [`ProcessPool::new`]) and at the top of `main` (for
/// [`Registry::run_worker_if_child`]): a name is the only thing that
/// crosses the pipe. concurrent.futures: module-level functions that pickle
/// by qualified name.
#[derive(Default)]
pub struct Registry {
    /// Functions by name.
    entries: HashMap<String, Entry>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.entries.keys().collect();
        names.sort();
        f.debug_struct("Registry").field("functions", &names).finish()
    }
}

/// Appends the outcome of `f(decode(arg))` as `status byte | payload`; for
/// errors the payload is a message, raw (`raw_message`) or `String`-encoded.
fn run_one<A: Codec, R: Codec>(f: fn(A) -> R, arg: &mut Decoder<'_>, out: &mut Vec<u8>, raw_message: bool) {
    let put_message = |out: &mut Vec<u8>, status: u8, msg: String| {
        out.push(status);
        if raw_message {
            out.extend_from_slice(msg.as_bytes());
        } else {
            msg.encode(out);
        }
    };
    let a = match A::decode(arg) {
        Ok(a) => a,
        Err(e) => return put_message(out, STATUS_ERROR, format!("argument: {e}")),
    };
    match catch_unwind(AssertUnwindSafe(|| f(a))) {
        Ok(r) => {
            out.push(STATUS_OK);
            r.encode(out);
        }
        Err(p) => put_message(out, STATUS_PANICKED, panic_message(&*p)),
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds `f` under `name`. `f` must be a plain `fn` (no captures): only
    /// its name crosses to the worker, which finds the same `fn` in its own
    /// copy of the registry.
    ///
    /// # Panics
    /// If `name` is already registered or longer than 65,535 bytes: both are
    /// bugs in the program's setup, found on its first run.
    pub fn register<A, R>(mut self, name: &str, f: fn(A) -> R) -> Registry
    where
        A: Codec + 'static,
        R: Codec + 'static,
    {
        assert!(name.len() <= u16::MAX as usize, "function name {name:?} is too long");
        let call: CallOne = Box::new(move |arg, out| {
            let mut d = Decoder::new(arg);
            run_one(f, &mut d, out, true);
        });
        let entry = Entry {
            call,
            arg: TypeId::of::<A>(),
            ret: TypeId::of::<R>(),
            signature: format!("fn({}) -> {}", std::any::type_name::<A>(), std::any::type_name::<R>()),
        };
        let old = self.entries.insert(name.to_string(), entry);
        assert!(old.is_none(), "function {name:?} registered twice");
        // Chunks reuse the same fn under a hidden name: "name" + NUL.
        let chunk: CallOne = Box::new(move |args, out| run_chunk(f, args, out));
        self.entries.insert(
            chunk_name(name),
            Entry { call: chunk, arg: TypeId::of::<Vec<A>>(), ret: TypeId::of::<Vec<R>>(), signature: String::new() },
        );
        self
    }

    /// Checks that `name` is registered as `fn(A) -> R`.
    fn check<A: 'static, R: 'static>(&self, name: &str) -> Result<(), PoolError> {
        let e = self.entries.get(name).ok_or_else(|| PoolError::UnknownFunction { name: name.to_string() })?;
        if e.arg != TypeId::of::<A>() || e.ret != TypeId::of::<R>() {
            return Err(PoolError::TypeMismatch {
                name: name.to_string(),
                registered: e.signature.clone(),
                requested: format!("fn({}) -> {}", std::any::type_name::<A>(), std::any::type_name::<R>()),
            });
        }
        Ok(())
    }

    /// The worker entry point, Python's `if __name__ == "__main__":` guard
    /// turned inside out: call it first thing in `main` (and in the hidden
    /// test of an integration test binary). In a normal run it returns at
    /// once. In a process the pool started as a worker it serves calls until
    /// its call pipe closes and then exits the process: it never returns.
    pub fn run_worker_if_child(&self) {
        let Some(spec) = std::env::var_os(WORKER_ENV) else {
            return;
        };
        let spec = spec.to_string_lossy().into_owned();
        let mut parts = spec.split(':').map(|p| p.parse::<u64>());
        let (Some(Ok(version)), Some(Ok(parent)), Some(Ok(max_tasks))) = (parts.next(), parts.next(), parts.next())
        else {
            eprintln!("looplab worker: malformed {WORKER_ENV}={spec:?}");
            sys::exit_now(EXIT_PROTOCOL);
        };
        if version != u64::from(frame::VERSION) {
            eprintln!("looplab worker: protocol {version}, this build speaks {}", frame::VERSION);
            sys::exit_now(EXIT_PROTOCOL);
        }
        // P3: the parent that set the variable must still be our parent; a
        // grandchild that inherited the variable, or an orphan, stops here.
        if sys::arm_parent_death_signal(parent as libc::pid_t).is_err() {
            sys::exit_now(EXIT_PROTOCOL);
        }
        // SAFETY: Y2. fds 3 and 4 were placed by `child_setup` for us alone;
        // nothing else in this fresh process knows about them.
        let fds = unsafe { (sys::adopt(sys::CHILD_CALL_FD), sys::adopt(sys::CHILD_RESULT_FD)) };
        let (Ok(calls), Ok(replies)) = fds else {
            eprintln!("looplab worker: protocol fds 3 and 4 are not open");
            sys::exit_now(EXIT_PROTOCOL);
        };
        // Y1: processes that our jobs start must not inherit the protocol.
        let _ = sys::set_cloexec(calls.as_raw_fd());
        let _ = sys::set_cloexec(replies.as_raw_fd());
        let code = worker_loop(self, File::from(calls), File::from(replies), max_tasks as usize);
        sys::exit_now(code);
    }
}

/// The hidden registry name of the chunked variant of `name`.
fn chunk_name(name: &str) -> String {
    format!("{name}\0chunk")
}

/// Runs `f` over a chunk `u32 count | args`, appending `u32 count | count x
/// (status | R or String message)`. A panic fails only its own item.
fn run_chunk<A: Codec, R: Codec>(f: fn(A) -> R, args: &[u8], out: &mut Vec<u8>) {
    let mut d = Decoder::new(args);
    let n = match d.length(A::MIN_BYTES, "chunk") {
        Ok(n) => n,
        Err(_) => {
            0u32.encode(out);
            return;
        }
    };
    (n as u32).encode(out);
    // One status byte and at least `R::MIN_BYTES` per item: the reply of a first chunk does
    // not grow the worker's buffer item by item. Capped by the chunk's own size (D1: a count
    // of zero-byte items is not a reason to allocate).
    out.reserve(n.min(args.len()).saturating_mul(1 + R::MIN_BYTES));
    for _ in 0..n {
        run_one(f, &mut d, out, false);
    }
}

/// The worker's main loop (P4): one call at a time, reply before the next.
/// Returns the process exit code. concurrent.futures: `_process_worker`.
fn worker_loop(registry: &Registry, mut calls: File, mut replies: File, max_tasks: usize) -> i32 {
    let mut input = FrameBuf::new();
    let mut out = Vec::with_capacity(256);
    let mut done = 0usize;
    loop {
        // Phase 1: run every whole call frame already buffered, in order.
        loop {
            let used = match input.peek() {
                Ok(None) => break,
                Err(e) => {
                    eprintln!("looplab worker {}: {e}", sys::getpid());
                    return EXIT_PROTOCOL;
                }
                Ok(Some((frame, used))) => {
                    out.clear();
                    let (reply_kind, lookup) = match frame.kind {
                        FrameKind::Call => (FrameKind::Reply, None),
                        FrameKind::CallChunk => (FrameKind::ChunkReply, Some(())),
                        other => {
                            eprintln!("looplab worker: unexpected {other:?} frame");
                            return EXIT_PROTOCOL;
                        }
                    };
                    let start = begin_frame(&mut out, reply_kind, frame.id);
                    match frame.call_parts() {
                        Ok((name, arg)) => {
                            let key = match lookup {
                                Some(()) => chunk_name(name),
                                None => name.to_string(),
                            };
                            match registry.entries.get(&key) {
                                Some(entry) => (entry.call)(arg, &mut out),
                                None if lookup.is_none() => {
                                    out.push(STATUS_ERROR);
                                    out.extend_from_slice(format!("no function {name:?}").as_bytes());
                                }
                                None => 0u32.encode(&mut out),
                            }
                        }
                        Err(e) => {
                            eprintln!("looplab worker: {e}");
                            return EXIT_PROTOCOL;
                        }
                    }
                    if end_frame(&mut out, start).is_err() {
                        // The result is too big for one frame: say so instead.
                        let start = begin_frame(&mut out, reply_kind, frame.id);
                        if reply_kind == FrameKind::ChunkReply {
                            0u32.encode(&mut out);
                        } else {
                            out.push(STATUS_ERROR);
                            out.extend_from_slice(b"result exceeds the maximum frame size");
                        }
                        let _ = end_frame(&mut out, start);
                    }
                    used
                }
            };
            input.consume(used);
            // P4: the reply is written before the next call starts.
            if replies.write_all(&out).is_err() {
                return 0; // the parent is gone: nobody to answer
            }
            done += 1;
            if max_tasks != 0 && done >= max_tasks {
                return 0; // P5: retire; the manager counted the same calls
            }
        }
        // Phase 2: block for more calls; end of file means "shut down".
        match input.read_from(&mut calls) {
            Ok(0) => {
                return if input.at_eof().is_ok() { 0 } else { EXIT_PROTOCOL };
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return EXIT_PROTOCOL,
        }
    }
}

// ---------------------------------------------------------------------------
// Jobs as the manager sees them
// ---------------------------------------------------------------------------

/// Where a job's result goes: a future, or a callback (`submit_with`).
enum Target<T> {
    /// Complete a [`JobFuture`].
    Future(Completer<T>),
    /// Call this on the manager thread.
    Callback(Box<dyn FnOnce(Result<T, PoolError>) + Send>),
}

impl<T> Target<T> {
    /// Pending -> Running; `false` if the future was cancelled (J3).
    fn try_start(&self) -> bool {
        match self {
            Target::Future(c) => c.set_running(),
            Target::Callback(_) => true,
        }
    }

    /// Delivers the result (P6). A panicking callback is contained so it
    /// cannot take the manager thread down with it.
    fn finish(self, result: Result<T, PoolError>) {
        match self {
            Target::Future(c) => c.complete(result),
            Target::Callback(f) => {
                let _ = catch_unwind(AssertUnwindSafe(move || f(result)));
            }
        }
    }
}

/// The type-erased end of a job: decodes the reply into the caller's type.
trait Sink: Send {
    /// Pending -> Running, or `false` if cancelled.
    fn try_start(&self) -> bool;
    /// Completes the job from a reply body of the expected kind.
    fn reply(self: Box<Self>, body: &[u8]);
    /// Completes the job with an error.
    fn fail(self: Box<Self>, err: PoolError);
}

/// A single `Call`'s sink.
struct OneSink<R>(Target<R>);

/// Decodes one `status | payload` result; `raw` says whether a message is
/// the rest of the slice (single reply) or a `String` (chunk item).
fn decode_result<R: Codec>(d: &mut Decoder<'_>, raw: bool) -> Result<Result<R, PoolError>, CodecError> {
    let status = d.take(1, "reply status")?[0];
    let message = |d: &mut Decoder<'_>| -> Result<String, CodecError> {
        if raw {
            let rest = d.take(d.remaining(), "message")?;
            Ok(String::from_utf8_lossy(rest).into_owned())
        } else {
            String::decode(d)
        }
    };
    Ok(match status {
        STATUS_OK => Ok(R::decode(d)?),
        STATUS_PANICKED => Err(PoolError::Panicked { message: message(d)? }),
        STATUS_ERROR => Err(PoolError::Remote { message: message(d)? }),
        s => {
            return Err(CodecError { what: "reply status", reason: format!("unknown status {s}") });
        }
    })
}

impl<R: Codec + Send> Sink for OneSink<R> {
    fn try_start(&self) -> bool {
        self.0.try_start()
    }
    fn reply(self: Box<Self>, body: &[u8]) {
        let mut d = Decoder::new(body);
        let r = decode_result::<R>(&mut d, true)
            .and_then(|r| d.finish(R::NAME).map(|()| r))
            .unwrap_or_else(|e| Err(PoolError::Codec(e)));
        self.0.finish(r);
    }
    fn fail(self: Box<Self>, err: PoolError) {
        self.0.finish(Err(err));
    }
}

/// The decoded results of one chunk. Most chunks succeed entirely, so they
/// keep plain values (8 bytes per `i64`), not `Result<R, PoolError>` (80).
enum ChunkOut<R> {
    /// Every item succeeded.
    AllOk(Vec<R>),
    /// At least one item failed.
    Mixed(Vec<Result<R, PoolError>>),
}

/// A `CallChunk`'s sink: one result per item, in order.
struct ChunkSink<R> {
    /// Where the item results go.
    target: Target<ChunkOut<R>>,
    /// How many items the chunk holds.
    count: usize,
}

impl<R: Codec> ChunkSink<R> {
    /// Decodes `u32 count | count x (status | R or message)`.
    fn decode(&self, body: &[u8]) -> ChunkOut<R> {
        let mut d = Decoder::new(body);
        let n = match d.length(0, "chunk reply") {
            Ok(n) if n == self.count => n,
            Ok(n) => {
                let e = PoolError::Remote { message: format!("chunk of {} items answered with {n}", self.count) };
                return ChunkOut::Mixed((0..self.count).map(|_| Err(e.clone())).collect());
            }
            Err(e) => {
                return ChunkOut::Mixed((0..self.count).map(|_| Err(PoolError::Codec(e.clone()))).collect());
            }
        };
        // Fast path: all statuses OK.
        let mut values = Vec::with_capacity(n);
        let mut fast = d.clone();
        for _ in 0..n {
            match fast.take(1, "reply status") {
                Ok([STATUS_OK]) => match R::decode(&mut fast) {
                    Ok(v) => values.push(v),
                    Err(_) => break,
                },
                _ => break,
            }
        }
        if values.len() == n {
            return ChunkOut::AllOk(values);
        }
        // Slow path: some item failed; decode again keeping every outcome.
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            match decode_result::<R>(&mut d, false) {
                Ok(r) => items.push(r),
                Err(e) => {
                    // The stream position is lost: this item and the rest
                    // fail with the decode error.
                    items.resize_with(n, || Err(PoolError::Codec(e.clone())));
                    break;
                }
            }
        }
        ChunkOut::Mixed(items)
    }
}

impl<R: Codec + Send> Sink for ChunkSink<R> {
    fn try_start(&self) -> bool {
        self.target.try_start()
    }
    fn reply(self: Box<Self>, body: &[u8]) {
        let out = self.decode(body);
        self.target.finish(Ok(out));
    }
    fn fail(self: Box<Self>, err: PoolError) {
        self.target.finish(Err(err));
    }
}

/// An encoded call frame and the shared-memory blocks it names (Z2).
type EncodedCall = (Vec<u8>, Vec<SharedBytes>);

/// One queued or in-flight job.
struct Job {
    /// The request id in its frame, matched against the reply (P4).
    id: u64,
    /// The whole encoded call frame, written as is (kept so a job its dead worker never
    /// started can be requeued, P4).
    frame: Vec<u8>,
    /// The shared-memory blocks its argument names, kept open until the job is answered (Z2),
    /// and released *before* the answer is delivered, so whoever sees the result also sees
    /// the blocks' descriptors closed (see [`Job::reply`]).
    leases: Vec<SharedBytes>,
    /// The reply kind this call must get.
    expects: FrameKind,
    /// Where the result goes.
    sink: Box<dyn Sink>,
}

impl Job {
    /// Deliver the reply: the leases go first (Z2), then the result.
    fn reply(self, body: &[u8]) {
        let Job { sink, leases, .. } = self;
        drop(leases);
        sink.reply(body);
    }

    /// Fail the job: the leases go first (Z2), then the error.
    fn fail(self, err: PoolError) {
        let Job { sink, leases, .. } = self;
        drop(leases);
        sink.fail(err);
    }
}

/// What callers tell the manager.
enum Msg {
    /// Queue these jobs, in order.
    Submit(Vec<Job>),
    /// `shutdown`: finish the queue, then let the workers go.
    Drain,
    /// `Drop`: cancel the queue, then grace -> SIGTERM -> SIGKILL.
    Terminate,
}

// ---------------------------------------------------------------------------
// The pool handle
// ---------------------------------------------------------------------------

/// How a [`ProcessPool`] starts its workers. Defaults: re-run
/// `current_exe()` with no arguments, no task limit, 2 jobs in flight per
/// worker, 5 s grace at shutdown.
#[derive(Debug, Clone)]
pub struct ProcessPoolOptions {
    /// How many worker processes to keep.
    workers: usize,
    /// Replace a worker after it ran this many calls (P5).
    max_tasks_per_child: Option<usize>,
    /// The worker executable; `None` means `std::env::current_exe()`.
    program: Option<PathBuf>,
    /// Arguments for the worker (e.g. the libtest filter of a test binary).
    args: Vec<OsString>,
    /// Whether the workers' stdout goes to /dev/null instead of ours.
    stdout_null: bool,
    /// How long a dropped pool waits for workers before SIGTERM (and again
    /// before SIGKILL).
    grace: Duration,
    /// Calls sent to a worker before its first reply comes back. concurrent.futures:
    /// `EXTRA_QUEUED_CALLS` (queued calls can no longer be cancelled).
    depth: usize,
}

impl ProcessPoolOptions {
    /// Defaults with `workers` processes.
    pub fn new(workers: usize) -> ProcessPoolOptions {
        ProcessPoolOptions {
            workers,
            max_tasks_per_child: None,
            program: None,
            args: Vec::new(),
            stdout_null: false,
            grace: Duration::from_secs(5),
            depth: 2,
        }
    }

    /// Replace each worker after `n` calls (a `map` chunk is one call).
    /// concurrent.futures: `max_tasks_per_child`.
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// Run `program` as the worker instead of `current_exe()`.
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// Pass `args` to each worker.
    pub fn worker_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// For a pool inside a libtest (`cargo test`/`cargo nextest`) binary:
    /// the worker is the test binary itself, filtered to exactly the one
    /// test `test_name` whose body calls [`Registry::run_worker_if_child`],
    /// with stdout silenced so libtest's banner does not clutter the output.
    /// A free-form argument would be a test *filter* and re-run other tests.
    pub fn libtest_worker(mut self, test_name: &str) -> Self {
        self.args =
            [test_name, "--exact", "--nocapture", "--test-threads=1", "-q"].into_iter().map(OsString::from).collect();
        self.stdout_null = true;
        self
    }

    /// Send workers' stdout to /dev/null.
    pub fn worker_stdout_null(mut self, null: bool) -> Self {
        self.stdout_null = null;
        self
    }

    /// Grace period of drop-time shutdown, before SIGTERM and again before SIGKILL.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Calls in flight per worker (at least 1). More hides pipe latency for
    /// small jobs; fewer keeps more jobs cancellable.
    pub fn jobs_in_flight_per_worker(mut self, depth: usize) -> Self {
        self.depth = depth;
        self
    }
}

/// The doorbell: an eventfd the manager polls, rung at most once per wakeup.
struct Doorbell {
    /// The eventfd (non-blocking, close-on-exec).
    fd: File,
    /// `true` while a ring is pending, so submitters skip the syscall.
    rung: AtomicBool,
}

impl Doorbell {
    /// Wakes the manager unless a wakeup is already pending.
    fn ring(&self) {
        if !self.rung.swap(true, Ordering::SeqCst) {
            let _ = (&self.fd).write(&1u64.to_le_bytes());
        }
    }

    /// Manager side: drain the counter, *then* clear the flag; the inbox is
    /// read after this. Messages sent before a skipped ring are in the inbox.
    ///
    /// The order matters. Flag first, counter second lost wakeups: a
    /// submitter could ring between the two (flag set, counter 1), the read
    /// would swallow its write, and the flag would stay set with the counter
    /// at 0, so every later `ring` skipped its write and the manager slept
    /// forever in `poll` (a pool drop hung after ~100,000 jobs;
    /// `load_process_pool_hundred_thousand_jobs` in `tests/reliability.rs`).
    /// Counter first: a ring whose write we read saw the flag still set and
    /// skipped nothing, or set it before our read; either way the flag is
    /// clear only when no write is owed.
    fn clear(&self) {
        let mut b = [0u8; 8];
        let _ = (&self.fd).read(&mut b);
        self.rung.store(false, Ordering::SeqCst);
    }
}

/// A pool of worker processes running registered functions.
/// concurrent.futures: `ProcessPoolExecutor`.
pub struct ProcessPool {
    /// The registry, for name and type checks at `submit`.
    registry: Arc<Registry>,
    /// Messages to the manager.
    inbox: Sender<Msg>,
    /// Wakes the manager after a message.
    doorbell: Arc<Doorbell>,
    /// The manager thread, joined on drop.
    manager: Option<JoinHandle<()>>,
    /// Set by `shutdown`; `submit` then fails fast.
    shut_down: AtomicBool,
    /// Request ids, unique per pool.
    next_id: AtomicU64,
    /// Live worker pids, kept by the manager (for `worker_pids`).
    pids: Arc<Mutex<Vec<u32>>>,
    /// The options the pool was built with.
    options: ProcessPoolOptions,
}

impl fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPool")
            .field("options", &self.options)
            .field("worker_pids", &self.worker_pids())
            .field("shut_down", &self.shut_down.load(Ordering::Relaxed))
            .finish()
    }
}

impl ProcessPool {
    /// `workers` processes running `current_exe()`, whose `main` must call
    /// [`Registry::run_worker_if_child`] first.
    pub fn new(workers: usize, registry: Registry) -> Result<ProcessPool, PoolError> {
        ProcessPool::with_options(registry, ProcessPoolOptions::new(workers))
    }

    /// A pool with explicit options. Spawns the first workers from the
    /// manager thread (P3: `PR_SET_PDEATHSIG` follows the spawning thread).
    pub fn with_options(registry: Registry, options: ProcessPoolOptions) -> Result<ProcessPool, PoolError> {
        let invalid = |name, reason: &str| PoolError::InvalidArgument { name, reason: reason.to_string() };
        if options.workers == 0 {
            return Err(invalid("workers", "a pool needs at least one worker"));
        }
        if options.max_tasks_per_child == Some(0) {
            return Err(invalid("max_tasks_per_child", "must be at least 1"));
        }
        if options.depth == 0 {
            return Err(invalid("jobs_in_flight_per_worker", "must be at least 1"));
        }
        if std::env::var_os(WORKER_ENV).is_some() {
            // P7: we are a worker whose main skipped the entry call.
            return Err(invalid(
                "registry",
                "this process was started as a pool worker: call \
                 Registry::run_worker_if_child() at the top of main",
            ));
        }
        let program = match &options.program {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| PoolError::Spawn { reason: e.to_string() })?,
        };
        let spawn_err = |e: io::Error| PoolError::Spawn { reason: e.to_string() };
        let doorbell =
            Arc::new(Doorbell { fd: File::from(sys::eventfd().map_err(spawn_err)?), rung: AtomicBool::new(false) });
        let (tx, rx) = crossbeam_channel::unbounded();
        let pids = Arc::new(Mutex::new(Vec::new()));
        let mut manager = Manager {
            inbox: rx,
            doorbell: Arc::clone(&doorbell),
            backlog: VecDeque::new(),
            workers: Vec::new(),
            program,
            options: options.clone(),
            pids: Arc::clone(&pids),
            mode: Mode::Running,
            escalation: None,
            parent: sys::getpid(),
        };
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let handle = std::thread::Builder::new()
            .name("looplab-pool-manager".into())
            .spawn(move || {
                let first = manager.spawn_initial();
                let ok = first.is_ok();
                let _ = ready_tx.send(first);
                if ok {
                    manager.run();
                }
            })
            .map_err(spawn_err)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = handle.join();
                return Err(e);
            }
            Err(_) => {
                let _ = handle.join();
                return Err(PoolError::Spawn { reason: "the manager thread died".into() });
            }
        }
        Ok(ProcessPool {
            registry: Arc::new(registry),
            inbox: tx,
            doorbell,
            manager: Some(handle),
            shut_down: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            pids,
            options,
        })
    }

    /// The pids of the workers alive now (for tests and `ps`).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pids.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Builds the call frame for `name(arg)`.
    fn call_frame<A: Codec>(
        &self,
        kind: FrameKind,
        name: &str,
        items: usize,
        write_arg: impl FnOnce(&mut Vec<u8>),
    ) -> (u64, Result<EncodedCall, PoolError>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Sized for `items` arguments of the smallest encoding (a chunk adds its u32 count),
        // so a chunk of fixed-size items is encoded without growing the frame.
        let arg = if kind == FrameKind::CallChunk { 4 + items * A::MIN_BYTES } else { A::MIN_BYTES };
        let mut frame = Vec::with_capacity(frame::HEADER_BYTES + 2 + name.len() + arg);
        let start = begin_frame(&mut frame, kind, id);
        put_name(&mut frame, name);
        // Z2: shared-memory blocks in the argument are leased to the job until its reply.
        let ((), leases) = shm::collect_leases(|| write_arg(&mut frame));
        let r = end_frame(&mut frame, start)
            .map(|()| (frame, leases))
            .map_err(|e| PoolError::Remote { message: format!("argument too big: {e}") });
        (id, r)
    }

    /// Hands jobs to the manager; gives them back if it is gone.
    fn send(&self, jobs: Vec<Job>) -> Result<(), Vec<Job>> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(jobs);
        }
        self.inbox.send(Msg::Submit(jobs)).map_err(|e| match e.into_inner() {
            Msg::Submit(jobs) => jobs,
            _ => Vec::new(),
        })?;
        self.doorbell.ring();
        Ok(())
    }

    /// Queues `name(arg)` with its result going to `target`.
    fn submit_to<A, R>(&self, name: &str, arg: &A, target: Target<R>)
    where
        A: Codec + 'static,
        R: Codec + Send + 'static,
    {
        if let Err(e) = self.registry.check::<A, R>(name) {
            return target.finish(Err(e));
        }
        let (id, frame) = self.call_frame::<A>(FrameKind::Call, name, 1, |out| arg.encode(out));
        let (frame, leases) = match frame {
            Ok(f) => f,
            Err(e) => return target.finish(Err(e)),
        };
        let job = Job { id, frame, leases, expects: FrameKind::Reply, sink: Box::new(OneSink(target)) };
        if let Err(jobs) = self.send(vec![job]) {
            for j in jobs {
                j.fail(PoolError::ShutDown);
            }
        }
    }

    /// Runs the registered function `name` on `arg` in a worker.
    /// concurrent.futures: `executor.submit(fn, arg)`.
    pub fn submit<A, R>(&self, name: &str, arg: A) -> JobFuture<R>
    where
        A: Codec + 'static,
        R: Codec + Send + 'static,
    {
        let (fut, done) = job_pair();
        self.submit_to(name, &arg, Target::Future(done));
        fut
    }

    /// Like [`ProcessPool::submit`], but calls `on_done(result)` on the
    /// manager thread when the job finishes (the hook for the loop's
    /// `run_in_executor`, which forwards it with `call_soon_threadsafe`).
    /// Errors found at submission (unknown name, shut down) are delivered
    /// to `on_done` as well, before this returns.
    pub fn submit_with<A, R, D>(&self, name: &str, arg: A, on_done: D)
    where
        A: Codec + 'static,
        R: Codec + Send + 'static,
        D: FnOnce(Result<R, PoolError>) + Send + 'static,
    {
        self.submit_to(name, &arg, Target::Callback(Box::new(on_done)));
    }

    /// Runs `name` over `args` in chunks of `chunksize` (one frame per
    /// chunk) and yields the results in the order of `args`.
    /// concurrent.futures: `executor.map(fn, args, chunksize=...)`.
    pub fn map<A, R, I>(&self, name: &str, args: I, chunksize: usize) -> Result<MapResults<R>, PoolError>
    where
        A: Codec + 'static,
        R: Codec + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        if chunksize == 0 {
            return Err(PoolError::InvalidArgument { name: "chunksize", reason: "must be at least 1".into() });
        }
        self.registry.check::<A, R>(name)?;
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(PoolError::ShutDown);
        }
        let mut jobs = Vec::new();
        let mut chunks = VecDeque::new();
        let mut args = args.into_iter().peekable();
        while args.peek().is_some() {
            let chunk: Vec<A> = args.by_ref().take(chunksize).collect();
            let (id, frame) = self.call_frame::<A>(FrameKind::CallChunk, name, chunk.len(), |out| chunk.encode(out));
            let (fut, done) = job_pair();
            let sink = ChunkSink { target: Target::Future(done), count: chunk.len() };
            match frame {
                Ok((frame, leases)) => {
                    jobs.push(Job { id, frame, leases, expects: FrameKind::ChunkReply, sink: Box::new(sink) })
                }
                Err(e) => Box::new(sink).fail(e),
            }
            chunks.push_back((fut, chunk.len()));
        }
        if let Err(jobs) = self.send(jobs) {
            for j in jobs {
                j.fail(PoolError::ShutDown);
            }
        }
        Ok(MapResults { chunks, current: Current::Values(Vec::new().into_iter()) })
    }

    /// Stops accepting jobs; queued and running jobs still finish, then the
    /// workers exit at end of file and are reaped. With `wait`, blocks
    /// until all of that is done. concurrent.futures: `shutdown(wait)`.
    pub fn shutdown(&mut self, wait: bool) {
        if !self.shut_down.swap(true, Ordering::SeqCst) {
            let _ = self.inbox.send(Msg::Drain);
            self.doorbell.ring();
        }
        if wait && let Some(h) = self.manager.take() {
            let _ = h.join();
        }
    }
}

impl Drop for ProcessPool {
    /// Cancels queued jobs (they fail with `ShutDown`), gives running ones
    /// the grace period, then SIGTERM, then SIGKILL (P3), reaps every
    /// worker and joins the manager. The same path runs while unwinding
    /// from a panic, so a failing test leaves no processes behind.
    fn drop(&mut self) {
        self.shut_down.store(true, Ordering::SeqCst);
        let _ = self.inbox.send(Msg::Terminate);
        self.doorbell.ring();
        if let Some(h) = self.manager.take() {
            let _ = h.join();
        }
    }
}

/// The ordered results of [`ProcessPool::map`].
pub struct MapResults<R> {
    /// Chunk futures in order, with their item counts.
    chunks: VecDeque<(JobFuture<ChunkOut<R>>, usize)>,
    /// Results of the chunk being yielded.
    current: Current<R>,
}

/// The chunk [`MapResults`] is yielding from.
enum Current<R> {
    /// A chunk whose items all succeeded.
    Values(std::vec::IntoIter<R>),
    /// A chunk with failures (or a failed chunk).
    Results(std::vec::IntoIter<Result<R, PoolError>>),
}

impl<R> fmt::Debug for MapResults<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapResults").field("chunks_left", &self.chunks.len()).finish()
    }
}

impl<R> Iterator for MapResults<R> {
    type Item = Result<R, PoolError>;

    /// Blocks for the next result in input order; a failed chunk yields its
    /// error once per item.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let next = match &mut self.current {
                Current::Values(it) => it.next().map(Ok),
                Current::Results(it) => it.next(),
            };
            if next.is_some() {
                return next;
            }
            let (fut, n) = self.chunks.pop_front()?;
            self.current = match fut.result() {
                Ok(ChunkOut::AllOk(values)) => Current::Values(values.into_iter()),
                Ok(ChunkOut::Mixed(items)) => Current::Results(items.into_iter()),
                Err(e) => Current::Results((0..n).map(|_| Err(e.clone())).collect::<Vec<_>>().into_iter()),
            };
        }
    }
}

// ---------------------------------------------------------------------------
// The manager thread
// ---------------------------------------------------------------------------

/// The manager's shutdown state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Accepting and running jobs.
    Running,
    /// `shutdown`: run the backlog, then close every call pipe.
    Draining,
    /// `Drop`: backlog cancelled; grace -> SIGTERM -> SIGKILL.
    Terminating,
}

/// The call bytes waiting for a worker's pipe: `buf[offset..]`. Frames are appended whole
/// (small calls coalesce into one `write`); a partial write only moves the offset, and the
/// buffer is reset once drained, so a 50 MB frame through a 64 KiB pipe is not shifted down
/// after every write (that `drain(..n)` was quadratic in the frame size).
#[derive(Default)]
struct WriteQueue {
    /// Appended frames.
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    offset: usize,
}

impl WriteQueue {
    fn is_empty(&self) -> bool {
        self.offset == self.buf.len()
    }

    fn push(&mut self, frame: &[u8]) {
        self.buf.extend_from_slice(frame);
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.offset = 0;
    }

    /// One `write` of the pending bytes.
    fn write_to(&self, out: &mut File) -> io::Result<usize> {
        out.write(&self.buf[self.offset..])
    }

    /// `n` bytes were written.
    fn advance(&mut self, n: usize) {
        self.offset += n;
        if self.offset == self.buf.len() {
            self.clear();
        }
    }
}

/// One worker process as the manager tracks it.
struct Worker {
    /// Its pid; valid for signals until reaped (P2).
    pid: libc::pid_t,
    /// Our end of its call pipe (non-blocking, P1); `None` once closed.
    calls: Option<File>,
    /// Our end of its result pipe (non-blocking, P1).
    replies: File,
    /// Readable when the process has exited; `None` if pidfd_open failed
    /// (then we poll `waitpid(WNOHANG)` after end of file).
    pidfd: Option<OwnedFd>,
    /// Reply bytes received, not yet parsed.
    rbuf: FrameBuf,
    /// Call bytes not yet written (the pipe was full).
    wbuf: WriteQueue,
    /// Jobs sent, in order, not yet answered (P4).
    in_flight: VecDeque<Job>,
    /// Calls sent over its lifetime, against `max_tasks_per_child` (P5).
    sent: usize,
    /// Set when it broke the protocol and we killed it: the reason.
    broken: Option<String>,
    /// Its result pipe reached end of file.
    eof: bool,
}

impl Worker {
    /// Whether new jobs may go to this worker.
    fn accepting(&self, max_tasks: Option<usize>) -> bool {
        self.calls.is_some() && self.broken.is_none() && max_tasks.is_none_or(|m| self.sent < m)
    }
}

/// P8's rule: of the workers' loads (`None`: not accepting; `Some(n)`: `n` calls in
/// flight), the first of the least loaded below `depth`. Dealing each call to it gives every
/// accepting worker a first call before any gets a second.
///
/// ```text
///   loads [1, 0, None, 0], depth 2  ->  1      (idle workers first, in order)
///   loads [1, 1, None, 1], depth 2  ->  0      (then second calls, in order)
///   loads [2, 2, None, 2], depth 2  ->  None   (everyone is full)
/// ```
fn least_loaded(loads: impl Iterator<Item = Option<usize>>, depth: usize) -> Option<usize> {
    loads.enumerate().filter_map(|(i, load)| load.filter(|&n| n < depth).map(|n| (n, i))).min().map(|(_, i)| i)
}

/// Escalation deadlines of a terminating pool (P3).
#[derive(Debug, Clone, Copy)]
struct Escalation {
    /// When to send SIGTERM to the workers still alive.
    term_at: Instant,
    /// When to send SIGKILL.
    kill_at: Instant,
    /// Whether SIGTERM was sent.
    termed: bool,
    /// Whether SIGKILL was sent.
    killed: bool,
}

/// What a pollfd slot belongs to.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The doorbell eventfd.
    Doorbell,
    /// Worker `i`'s result pipe.
    Replies(usize),
    /// Worker `i`'s call pipe (writable).
    Calls(usize),
    /// Worker `i`'s pidfd.
    Exit(usize),
}

/// All process state, owned by the manager thread (P1).
struct Manager {
    /// Messages from the pool handle.
    inbox: Receiver<Msg>,
    /// Rung by the handle after each message.
    doorbell: Arc<Doorbell>,
    /// Jobs not sent to any worker yet; cancellable. CPython: `pending_work_items`.
    backlog: VecDeque<Job>,
    /// The worker processes not reaped yet.
    workers: Vec<Worker>,
    /// The executable to run as a worker.
    program: PathBuf,
    /// The pool's options.
    options: ProcessPoolOptions,
    /// Published worker pids.
    pids: Arc<Mutex<Vec<u32>>>,
    /// Running, draining or terminating.
    mode: Mode,
    /// Deadlines, once terminating.
    escalation: Option<Escalation>,
    /// Our pid, handed to workers for their `getppid` check (P3).
    parent: libc::pid_t,
}

impl Manager {
    /// Starts the first `workers` processes.
    fn spawn_initial(&mut self) -> Result<(), PoolError> {
        for _ in 0..self.options.workers {
            if let Err(e) = self.spawn_worker() {
                self.terminate_now();
                return Err(PoolError::Spawn { reason: e.to_string() });
            }
        }
        Ok(())
    }

    /// Edge (6): starts one worker: two `O_CLOEXEC` pipes, fds moved to 3
    /// and 4 in the child (Y3), a pidfd to watch it.
    fn spawn_worker(&mut self) -> io::Result<()> {
        let (call_r, call_w) = sys::pipe_cloexec()?;
        let (res_r, res_w) = sys::pipe_cloexec()?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.options.args)
            .env(
                WORKER_ENV,
                format!("{}:{}:{}", frame::VERSION, self.parent, self.options.max_tasks_per_child.unwrap_or(0)),
            )
            .stdin(Stdio::null());
        if self.options.stdout_null {
            cmd.stdout(Stdio::null());
        }
        let (cr, rw, parent) = (call_r.as_raw_fd(), res_w.as_raw_fd(), self.parent);
        let hook = move || {
            // SAFETY: Y3. `pre_exec` runs this between fork and exec in the
            // child, where `cr` and `rw` are open (fork copied them).
            unsafe { sys::child_setup(cr, rw, parent) }
        };
        // SAFETY: Y3. The hook only calls `child_setup`, which uses
        // async-signal-safe calls and never allocates.
        unsafe { cmd.pre_exec(hook) };
        let child = cmd.spawn()?;
        // std's `Child` neither waits nor kills on drop; the manager reaps (P2).
        let pid = child.id() as libc::pid_t;
        drop(child);
        drop(call_r); // the child's ends: only the child keeps them open
        drop(res_w);
        sys::set_nonblocking(call_w.as_fd())?;
        sys::set_nonblocking(res_r.as_fd())?;
        let pidfd = sys::pidfd_open(pid).ok();
        self.workers.push(Worker {
            pid,
            calls: Some(File::from(call_w)),
            replies: File::from(res_r),
            pidfd,
            rbuf: FrameBuf::new(),
            wbuf: WriteQueue::default(),
            in_flight: VecDeque::new(),
            sent: 0,
            broken: None,
            eof: false,
        });
        self.publish_pids();
        Ok(())
    }

    /// Copies the live pids to the handle's list.
    fn publish_pids(&self) {
        let mut p = self.pids.lock().unwrap_or_else(|p| p.into_inner());
        p.clear();
        p.extend(self.workers.iter().map(|w| w.pid as u32));
    }

    /// The manager loop. concurrent.futures: `_ExecutorManagerThread.run`.
    fn run(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut slots: Vec<Slot> = Vec::new();
        loop {
            // Phase 1: take messages from callers.
            self.intake();
            // Phase 2: replace workers, hand out jobs, write calls.
            self.dispatch();
            // Phase 3: shutdown progress; leave when nothing is left.
            if self.shutdown_step() {
                break;
            }
            // Phase 4: wait for a reply, a writable pipe, a death or the doorbell.
            fds.clear();
            slots.clear();
            let mut push = |fd: i32, events: i16, slot: Slot| {
                fds.push(libc::pollfd { fd, events, revents: 0 });
                slots.push(slot);
            };
            push(self.doorbell.fd.as_raw_fd(), libc::POLLIN, Slot::Doorbell);
            let mut need_tick = false;
            for (i, w) in self.workers.iter().enumerate() {
                if !w.eof && w.broken.is_none() {
                    push(w.replies.as_raw_fd(), libc::POLLIN, Slot::Replies(i));
                }
                if let Some(c) = &w.calls
                    && !w.wbuf.is_empty()
                {
                    push(c.as_raw_fd(), libc::POLLOUT, Slot::Calls(i));
                }
                match &w.pidfd {
                    Some(p) => push(p.as_raw_fd(), libc::POLLIN, Slot::Exit(i)),
                    None => need_tick |= w.eof || w.broken.is_some(),
                }
            }
            let mut timeout = need_tick.then_some(Duration::from_millis(10));
            if let Some(e) = self.escalation {
                let next = if !e.termed { e.term_at } else { e.kill_at };
                let left = next.saturating_duration_since(Instant::now());
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if let Err(e) = sys::poll(&mut fds, timeout) {
                // Only EINVAL/ENOMEM are possible here: nothing sane to do but
                // stop everything rather than spin (P6 still holds below).
                eprintln!("looplab pool manager: poll failed: {e}");
                self.terminate_now();
                break;
            }
            // Phase 5: handle what is ready. Exits last, after their replies.
            let mut exited = Vec::new();
            for (pfd, slot) in fds.iter().zip(&slots) {
                if pfd.revents == 0 {
                    continue;
                }
                match *slot {
                    Slot::Doorbell => self.doorbell.clear(),
                    Slot::Replies(i) => self.read_replies(i),
                    Slot::Calls(i) => self.flush(i),
                    Slot::Exit(i) => exited.push(i),
                }
            }
            if need_tick {
                exited.extend((0..self.workers.len()).filter(|&i| {
                    let w = &self.workers[i];
                    w.pidfd.is_none() && (w.eof || w.broken.is_some())
                }));
            }
            self.reap(exited);
        }
        self.publish_pids();
    }

    /// Phase 1: moves messages into the backlog or the mode.
    fn intake(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                Msg::Submit(jobs) if self.mode == Mode::Terminating => {
                    for j in jobs {
                        j.fail(PoolError::ShutDown);
                    }
                }
                Msg::Submit(jobs) => self.backlog.extend(jobs),
                Msg::Drain => {
                    if self.mode == Mode::Running {
                        self.mode = Mode::Draining;
                    }
                }
                Msg::Terminate => self.begin_terminate(),
            }
        }
    }

    /// Enters `Terminating`: fails the backlog (P6), closes every call pipe
    /// so idle workers exit now, and sets the escalation deadlines.
    fn begin_terminate(&mut self) {
        if self.mode == Mode::Terminating {
            return;
        }
        self.mode = Mode::Terminating;
        for j in self.backlog.drain(..) {
            j.fail(PoolError::ShutDown);
        }
        for w in &mut self.workers {
            w.calls = None; // end of file: the worker exits after its jobs
            w.wbuf.clear();
        }
        let now = Instant::now();
        let grace = self.options.grace;
        self.escalation =
            Some(Escalation { term_at: now + grace, kill_at: now + grace + grace, termed: false, killed: false });
    }

    /// Phase 2: spawns workers while jobs wait and fewer than `workers`
    /// accept (P5), then gives each accepting worker up to `depth` jobs.
    fn dispatch(&mut self) {
        if self.mode == Mode::Terminating {
            return;
        }
        let max = self.options.max_tasks_per_child;
        loop {
            let accepting = self.workers.iter().filter(|w| w.accepting(max)).count();
            if self.backlog.is_empty() || accepting >= self.options.workers {
                break;
            }
            if let Err(e) = self.spawn_worker() {
                if accepting == 0 {
                    // P6: nobody can run the backlog: fail it, don't hang.
                    for j in self.backlog.drain(..) {
                        j.fail(PoolError::Spawn { reason: e.to_string() });
                    }
                }
                break;
            }
        }
        // Breadth first (P8): each call goes to the least loaded accepting worker.
        while let Some(i) =
            least_loaded(self.workers.iter().map(|w| w.accepting(max).then_some(w.in_flight.len())), self.options.depth)
        {
            let Some(job) = self.backlog.pop_front() else {
                break;
            };
            if !job.sink.try_start() {
                continue; // cancelled while queued (J3): already completed
            }
            let w = &mut self.workers[i];
            w.wbuf.push(&job.frame);
            w.in_flight.push_back(job);
            w.sent += 1;
        }
        for i in 0..self.workers.len() {
            if !self.workers[i].wbuf.is_empty() {
                self.flush(i);
            }
        }
    }

    /// Writes as much of worker `i`'s pending calls as the pipe takes (P1).
    fn flush(&mut self, i: usize) {
        let w = &mut self.workers[i];
        let Some(calls) = &mut w.calls else { return };
        while !w.wbuf.is_empty() {
            match w.wbuf.write_to(calls) {
                Ok(n) => w.wbuf.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // EPIPE: the worker is dying; its pidfd will tell us how.
                    // Its jobs stay in flight until then (P6).
                    w.wbuf.clear();
                    w.calls = None;
                    return;
                }
            }
        }
    }

    /// Reads everything worker `i` has written and completes its jobs.
    fn read_replies(&mut self, i: usize) {
        loop {
            let w = &mut self.workers[i];
            if w.eof || w.broken.is_some() {
                return;
            }
            match w.rbuf.read_from(&mut w.replies) {
                Ok(0) => {
                    w.eof = true;
                    if let Err(e) = w.rbuf.at_eof() {
                        self.break_worker(i, format!("sent a truncated frame: {e}"));
                    }
                    return;
                }
                Ok(_) => self.parse_replies(i),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.break_worker(i, format!("result pipe failed: {e}"));
                    return;
                }
            }
        }
    }

    /// Completes the jobs whose replies are buffered, in order (P4).
    fn parse_replies(&mut self, i: usize) {
        loop {
            let w = &mut self.workers[i];
            let problem = match w.rbuf.peek() {
                Ok(None) => return,
                Err(e) => format!("sent a malformed frame: {e}"),
                Ok(Some((frame, used))) => match w.in_flight.front() {
                    Some(job) if job.id == frame.id && job.expects == frame.kind => {
                        let job = w.in_flight.pop_front().expect("front exists");
                        job.reply(frame.body);
                        w.rbuf.consume(used);
                        continue;
                    }
                    _ => format!("sent a {:?} for request {}, which it was not running", frame.kind, frame.id),
                },
            };
            self.break_worker(i, problem);
            return;
        }
    }

    /// Edge "Broken": the worker's stream can no longer be trusted. Kill it
    /// (P2: not reaped yet); its pidfd reports the death and `reap` fails
    /// the job it held with `reason`.
    fn break_worker(&mut self, i: usize, reason: String) {
        let w = &mut self.workers[i];
        if w.broken.is_none() {
            w.broken = Some(reason);
            // Kill before closing its call pipe: at end of file it would
            // exit 0 first and hide what happened.
            let _ = sys::kill(w.pid, libc::SIGKILL);
            w.calls = None;
        }
    }

    /// Reaps the workers at `indexes` that have exited (P2), fails the job
    /// each was running, requeues the ones it had not started (P4).
    fn reap(&mut self, mut indexes: Vec<usize>) {
        indexes.sort_unstable();
        indexes.dedup();
        // Highest index first, so `swap_remove` keeps lower indexes valid.
        for &i in indexes.iter().rev() {
            let pid = self.workers[i].pid;
            let raw = match sys::waitpid_nohang(pid) {
                Ok(Some(raw)) => raw,
                Ok(None) => continue, // not yet: pidfd and waitpid disagree briefly
                Err(e) => {
                    // ECHILD would mean someone else reaped our child (e.g. a
                    // SIGCHLD=SIG_IGN setting); report it as an unknown exit.
                    eprintln!("looplab pool manager: waitpid({pid}): {e}");
                    0
                }
            };
            // Replies written just before death are still in the pipe.
            self.read_replies(i);
            let mut w = self.workers.swap_remove(i);
            self.publish_pids(); // before any job fails: callers may look
            let status = WorkerStatus::from_raw(raw);
            let reason = w.broken.take().unwrap_or_else(|| match self.mode {
                Mode::Terminating => "stopped by the pool's shutdown".to_string(),
                _ => "exited while running the job".to_string(),
            });
            if let Some(first) = w.in_flight.pop_front() {
                first.fail(PoolError::WorkerDied { pid: pid as u32, status, reason });
            }
            // P4: the others never started; they go back to the front, in order.
            while let Some(job) = w.in_flight.pop_back() {
                if self.mode == Mode::Terminating {
                    job.fail(PoolError::ShutDown);
                } else {
                    self.backlog.push_front(job);
                }
            }
        }
    }

    /// Phase 3: closes idle workers when draining is done, escalates
    /// signals when terminating; `true` when the manager may exit.
    fn shutdown_step(&mut self) -> bool {
        match self.mode {
            Mode::Running => false,
            Mode::Draining => {
                let idle = self.backlog.is_empty() && self.workers.iter().all(|w| w.in_flight.is_empty());
                if idle {
                    for w in &mut self.workers {
                        w.calls = None; // end of file: the worker exits (P3)
                    }
                }
                idle && self.workers.is_empty()
            }
            Mode::Terminating => {
                let now = Instant::now();
                if let Some(e) = &mut self.escalation {
                    if !e.termed && now >= e.term_at {
                        e.termed = true;
                        for w in &self.workers {
                            let _ = sys::kill(w.pid, libc::SIGTERM); // P2: unreaped
                        }
                    }
                    if !e.killed && now >= e.kill_at {
                        e.killed = true;
                        for w in &self.workers {
                            let _ = sys::kill(w.pid, libc::SIGKILL);
                        }
                    }
                }
                self.workers.is_empty()
            }
        }
    }

    /// Last resort (spawn or poll failure): SIGKILL and reap every worker
    /// now, failing all jobs (P2, P6).
    fn terminate_now(&mut self) {
        self.mode = Mode::Terminating;
        for j in self.backlog.drain(..) {
            j.fail(PoolError::ShutDown);
        }
        for mut w in self.workers.drain(..) {
            let _ = sys::kill(w.pid, libc::SIGKILL);
            let raw = sys::waitpid_blocking(w.pid).unwrap_or(0);
            let status = WorkerStatus::from_raw(raw);
            for job in w.in_flight.drain(..) {
                job.fail(PoolError::WorkerDied {
                    pid: w.pid as u32,
                    status,
                    reason: "killed: the pool's manager failed".into(),
                });
            }
        }
        self.publish_pids();
    }
}

impl Drop for Manager {
    /// P6 even if the manager unwinds: every job still held gets an answer
    /// and every child is killed and reaped.
    fn drop(&mut self) {
        if !self.workers.is_empty() || !self.backlog.is_empty() {
            self.terminate_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::least_loaded;

    /// Deal `jobs` calls to workers with these starting loads by P8's rule; returns the
    /// worker each call went to.
    fn deal(mut loads: Vec<Option<usize>>, depth: usize, jobs: usize) -> Vec<usize> {
        let mut to = Vec::new();
        for _ in 0..jobs {
            let Some(i) = least_loaded(loads.iter().copied(), depth) else { break };
            loads[i] = loads[i].map(|n| n + 1);
            to.push(i);
        }
        to
    }

    /// P8: N calls on N idle workers go to N workers; depth-first dealing sent five calls to
    /// workers 0, 0, 1, 1, 2.
    #[test]
    fn calls_are_dealt_breadth_first() {
        assert_eq!(deal(vec![Some(0); 5], 2, 5), [0, 1, 2, 3, 4]);
        assert_eq!(deal(vec![Some(0); 5], 2, 12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
        // Busy and retiring workers: the idle one first, the retiring one never.
        assert_eq!(deal(vec![Some(1), None, Some(0), Some(1)], 2, 4), [2, 0, 2, 3]);
        assert_eq!(deal(vec![None, None], 2, 3), Vec::<usize>::new());
        // Depth 1: one call each, the rest wait in the backlog for whoever answers first.
        assert_eq!(deal(vec![Some(0); 3], 1, 5), [0, 1, 2]);
    }
}
