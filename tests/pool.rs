//! Pool tests: the thread pool, the process pool, the frame decoder.
//!
//! How the process pool finds its workers here: a worker is *this test
//! binary*, re-run by the pool with the libtest arguments
//! `worker_entry --exact --nocapture --test-threads=1 -q`
//! ([`ProcessPoolOptions::libtest_worker`]) and `LOOPLAB_POOL_WORKER` set. That
//! filter selects exactly one test, [`worker_entry`], whose body is the
//! documented entry call `registry().run_worker_if_child()`: in a worker it
//! serves calls and exits the process; in a normal run it returns and the
//! test passes. It works the same under `cargo test` and `cargo nextest`
//! (both run the binary with libtest arguments), and needs no `[[bin]]`.
//! Workers cannot outlive a test: every pool is dropped (P3), and the kernel
//! kills a worker whose spawning thread is gone (`PR_SET_PDEATHSIG`).
//!
//! Process-pool tests hold [`serial`] so that the `/proc` checks (children,
//! fd counts) see only their own pool when libtest runs tests in threads.
//! No test sleeps to wait for a result: they block on results (with
//! timeouts) or on explicit gates.

use looplab::pool::{
    Codec, CodecError, Decoder, Frame, FrameBuf, FrameError, FrameKind, JobFuture, PoolError, ProcessPool,
    ProcessPoolOptions, Registry, ReturnWhen, SharedBytes, ThreadPool, WorkerStatus, as_completed, frame, wait,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Long enough for a loaded CI machine, short enough that a bug fails.
const LONG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The registry shared by the test process and its workers
// ---------------------------------------------------------------------------

fn inc(x: i64) -> i64 {
    x + 1
}

fn square(x: i64) -> i64 {
    x * x
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn panics(x: i64) -> i64 {
    panic!("job {x} panicked on purpose")
}

/// Crash fixtures must not write core files (slow, and litter).
fn no_core_dump() {
    let lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) };
}

fn abort(_: ()) {
    no_core_dump();
    std::process::abort()
}

fn segfault(_: ()) {
    no_core_dump();
    // Rust installs a SIGSEGV handler (stack-overflow detection); restore the
    // default so the raised signal kills us.
    // SAFETY: signal/raise with constant arguments.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    unreachable!("SIGSEGV was raised")
}

fn exit3(_: ()) {
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(3) }
}

fn kill_self(_: ()) {
    // SAFETY: kill with our own pid and a constant signal.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    loop {
        std::thread::park();
    }
}

/// Writes bytes that are not a frame onto the worker's result pipe (fd 4).
fn garbage(_: ()) {
    let junk = [0xffu8; 16];
    // SAFETY: fd 4 is the worker's result pipe; `junk` is valid for 16 bytes.
    unsafe { libc::write(4, junk.as_ptr().cast(), junk.len()) };
}

/// A type whose decoding always fails in the parent.
#[derive(Debug)]
struct Undecodable;

impl Codec for Undecodable {
    const NAME: &'static str = "Undecodable";
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(0xee);
    }
    fn decode(_: &mut Decoder<'_>) -> Result<Self, CodecError> {
        Err(CodecError { what: "Undecodable", reason: "always fails".into() })
    }
}

fn bad_result(_: ()) -> Undecodable {
    Undecodable
}

fn park(_: ()) {
    loop {
        std::thread::park();
    }
}

/// Item 0 announces its pid through the FIFO `path` and parks; others double.
fn park_or_double((x, path): (i64, String)) -> i64 {
    if x == 0 {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        writeln!(f, "{}", std::process::id()).unwrap();
        drop(f);
        park(());
    }
    x * 2
}

/// Sums a shared block's bytes in the worker (it maps the block; nothing is copied).
fn shared_sum(b: SharedBytes) -> u64 {
    b.iter().map(|&x| u64::from(x)).sum()
}

/// Tries to send a shared block back (Z3: refused).
fn shared_echo(b: SharedBytes) -> SharedBytes {
    b
}

fn registry() -> Registry {
    Registry::new()
        .register("shared_sum", shared_sum)
        .register("shared_echo", shared_echo)
        .register("inc", inc)
        .register("square", square)
        .register("pid", pid)
        .register("panics", panics)
        .register("abort", abort)
        .register("segfault", segfault)
        .register("exit3", exit3)
        .register("kill_self", kill_self)
        .register("garbage", garbage)
        .register("bad_result", bad_result)
        .register("park", park)
        .register("park_or_double", park_or_double)
}

/// The worker entry point (see the module doc). Not a real test: in a
/// normal run it returns at once.
#[test]
fn worker_entry() {
    registry().run_worker_if_child();
}

fn options(workers: usize) -> ProcessPoolOptions {
    ProcessPoolOptions::new(workers).libtest_worker("worker_entry").shutdown_grace(Duration::from_millis(500))
}

fn pool(workers: usize) -> ProcessPool {
    ProcessPool::with_options(registry(), options(workers)).expect("pool starts")
}

/// Serializes process-pool tests (see the module doc).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits for a job's result, failing the test instead of hanging.
fn get<T>(mut f: JobFuture<T>) -> Result<T, PoolError> {
    match f.result_timeout(LONG) {
        Err(PoolError::Timeout) => panic!("job did not finish within {LONG:?}"),
        r => r,
    }
}

/// Yields until the job was handed to a worker (no sleeping). Bounded by a count of yields,
/// not by the clock: a guard against a hang, not a timing assertion.
fn wait_running<T>(f: &JobFuture<T>) {
    for _ in 0..100_000_000u64 {
        if f.running() {
            return;
        }
        std::thread::yield_now();
    }
    panic!("job never started");
}

/// Pids of the live processes whose parent is this process.
fn our_children() -> Vec<u32> {
    let me = std::process::id();
    let mut kids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state, ppid, ...
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == me {
            kids.push(pid);
        }
    }
    kids
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// ---------------------------------------------------------------------------
// Process pool
// ---------------------------------------------------------------------------

/// concurrent.futures: `executor.map` yields results in input order,
/// whatever the chunking.
#[test]
fn process_map_results_in_order() {
    let _g = serial();
    let pool = pool(2);
    for chunksize in [1, 7, 1000] {
        let got: Vec<i64> = pool.map("square", 0..500i64, chunksize).unwrap().map(Result::unwrap).collect();
        let want: Vec<i64> = (0..500).map(|x| x * x).collect();
        assert_eq!(got, want, "chunksize {chunksize}");
    }
    assert_eq!(pool.map::<i64, i64, _>("square", Vec::new(), 3).unwrap().count(), 0);
}

/// A `SharedBytes` argument reaches the worker through shared memory: the job holds a lease
/// on it (Z2), so the caller may drop its own handle at once; a worker cannot send one back
/// (Z3); and no descriptor is left open once the jobs are done.
#[test]
fn process_shared_bytes_cross_by_mapping() {
    let _g = serial();
    let pool = pool(2);
    let fds = open_fds();
    let blocks: Vec<SharedBytes> = (0..6u32)
        .map(|i| SharedBytes::from_fn(300_000 + i as usize, |b| b.iter_mut().for_each(|x| *x = i as u8 + 1)).unwrap())
        .collect();
    let want: Vec<u64> = blocks.iter().map(|b| b.len() as u64 * u64::from(b[0])).collect();
    // The handles move into `submit` and are gone on this side before the workers open them.
    let jobs: Vec<_> = blocks.into_iter().map(|b| pool.submit::<SharedBytes, u64>("shared_sum", b)).collect();
    let got: Vec<u64> = jobs.into_iter().map(|f| get(f).unwrap()).collect();
    assert_eq!(got, want);
    let chunked: Vec<u64> = pool
        .map("shared_sum", (0..5u8).map(|i| SharedBytes::from_slice(&[i; 1000]).unwrap()), 2)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunked, (0..5).map(|i| 1000 * i).collect::<Vec<u64>>());
    match get(pool.submit::<SharedBytes, SharedBytes>("shared_echo", SharedBytes::from_slice(b"x").unwrap())) {
        Err(PoolError::Codec(e)) => assert!(e.reason.contains("only as a job's argument"), "{e}"),
        other => panic!("Z3: expected a codec error, got {other:?}"),
    }
    assert_eq!(open_fds(), fds, "Z2: every lease was released");
}

/// Workers are real, distinct processes, and our children.
#[test]
fn process_workers_are_distinct_children() {
    let _g = serial();
    let pool = pool(2);
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 2);
    assert_ne!(pids[0], pids[1]);
    assert!(!pids.contains(&std::process::id()));
    let kids = our_children();
    assert!(pids.iter().all(|p| kids.contains(p)), "{pids:?} vs {kids:?}");
    let answered = get(pool.submit::<(), u32>("pid", ())).unwrap();
    assert!(pids.contains(&answered));
}

/// The crash matrix: each kind of death fails exactly the job that killed
/// the worker, with its pid and status; every other job completes; the pool
/// replaces the worker and goes on.
#[test]
fn process_crash_matrix() {
    let _g = serial();
    // (fixture, expected status, words the reason must contain)
    let cases: [(&str, WorkerStatus, &str); 5] = [
        ("abort", signaled(libc::SIGABRT), "exited while running"),
        ("segfault", signaled(libc::SIGSEGV), "exited while running"),
        ("exit3", WorkerStatus::Exited(3), "exited while running"),
        ("kill_self", signaled(libc::SIGKILL), "exited while running"),
        ("garbage", signaled(libc::SIGKILL), "malformed frame"),
    ];
    let pool = pool(2);
    for (name, status, reason) in cases {
        let before: HashSet<u32> = pool.worker_pids().into_iter().collect();
        let mut others = Vec::new();
        for i in 0..10 {
            others.push(pool.submit::<i64, i64>("inc", i));
        }
        let crash = pool.submit::<(), ()>(name, ());
        for i in 10..30 {
            others.push(pool.submit::<i64, i64>("inc", i));
        }
        match get(crash) {
            Err(PoolError::WorkerDied { pid, status: got, reason: why }) => {
                assert!(before.contains(&pid), "{name}: pid {pid} was not a worker");
                assert_eq!(strip_core(got), status, "{name}");
                assert!(why.contains(reason), "{name}: {why}");
                assert!(!pool.worker_pids().contains(&pid), "{name}: dead pid still listed");
            }
            other => panic!("{name}: expected WorkerDied, got {other:?}"),
        }
        for (i, f) in others.into_iter().enumerate() {
            assert_eq!(get(f), Ok(i as i64 + 1), "{name}: job {i} was lost");
        }
        // Recovered: both workers serve again.
        let after: Vec<i64> = pool.map("inc", 0..20i64, 1).unwrap().map(Result::unwrap).collect();
        assert_eq!(after, (1..21).collect::<Vec<_>>(), "{name}");
        assert_eq!(pool.worker_pids().len(), 2, "{name}");
    }
    let status = WorkerStatus::Signaled { signal: 9, core_dumped: false };
    assert_eq!(status.to_string(), "signal 9 (SIGKILL)");
    assert_eq!(WorkerStatus::Exited(3).to_string(), "exit code 3");
}

fn signaled(signal: i32) -> WorkerStatus {
    WorkerStatus::Signaled { signal, core_dumped: false }
}

fn strip_core(s: WorkerStatus) -> WorkerStatus {
    match s {
        WorkerStatus::Signaled { signal, .. } => signaled(signal),
        e => e,
    }
}

/// A panic is caught in the worker and sent back as an error frame; the
/// same worker process serves the next job.
#[test]
fn process_panic_is_an_error_and_the_worker_survives() {
    let _g = serial();
    let pool = pool(1);
    let before = get(pool.submit::<(), u32>("pid", ())).unwrap();
    match get(pool.submit::<i64, i64>("panics", 7)) {
        Err(PoolError::Panicked { message }) => assert_eq!(message, "job 7 panicked on purpose"),
        other => panic!("{other:?}"),
    }
    // A map chunk with a panicking item fails only that item.
    let got: Vec<Result<i64, _>> = pool.map("panics", [1i64], 4).unwrap().collect();
    assert!(matches!(&got[0], Err(PoolError::Panicked { .. })), "{got:?}");
    // An undecodable result is that job's error, not a death.
    match get(pool.submit::<(), Undecodable>("bad_result", ())) {
        Err(PoolError::Codec(e)) => assert_eq!(e.what, "Undecodable"),
        other => panic!("{other:?}"),
    }
    assert_eq!(get(pool.submit::<(), u32>("pid", ())), Ok(before));
}

/// Misuse is reported, not hung: unknown names and wrong types.
#[test]
fn process_unknown_function_and_type_mismatch() {
    let _g = serial();
    let pool = pool(1);
    assert_eq!(get(pool.submit::<i64, i64>("nope", 1)), Err(PoolError::UnknownFunction { name: "nope".into() }));
    assert!(matches!(get(pool.submit::<String, i64>("inc", "x".into())), Err(PoolError::TypeMismatch { .. })));
    assert!(matches!(
        pool.map::<i64, i64, _>("inc", [1], 0),
        Err(PoolError::InvalidArgument { name: "chunksize", .. })
    ));
    assert!(matches!(
        ProcessPool::with_options(registry(), options(0)),
        Err(PoolError::InvalidArgument { name: "workers", .. })
    ));
}

/// A worker killed from outside with SIGKILL in the middle of a `map`:
/// the item it was running fails with its pid and signal, every other item
/// completes in order.
#[test]
fn process_sigkill_mid_map() {
    let _g = serial();
    let fifo = std::env::temp_dir().join(format!("looplab-pool-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // O_RDWR open of a FIFO does not block; the read waits for the job.
    let reader = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(reader).read_line(&mut line).unwrap();
        let _ = tx.send(line.trim().parse::<u32>().unwrap());
    });
    let pool = pool(2);
    let path = fifo.to_str().unwrap().to_string();
    let results = pool.map("park_or_double", (0..40i64).map(|x| (x, path.clone())), 1).unwrap();
    let victim = rx.recv_timeout(LONG).expect("item 0 started");
    assert!(pool.worker_pids().contains(&victim));
    // SAFETY: `victim` is an unreaped child of this process (the pool's).
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let got: Vec<_> = results.collect();
    match &got[0] {
        Err(PoolError::WorkerDied { pid, status, .. }) => {
            assert_eq!(*pid, victim);
            assert_eq!(status.to_string(), "signal 9 (SIGKILL)");
        }
        other => panic!("{other:?}"),
    }
    for (i, r) in got.iter().enumerate().skip(1) {
        assert_eq!(r, &Ok(i as i64 * 2));
    }
    let _ = std::fs::remove_file(&fifo);
}

/// CPython gh-115634: `max_tasks_per_child` with more jobs than workers
/// deadlocked. Here every job completes, and each worker really retires.
#[test]
fn process_max_tasks_per_child_more_jobs_than_workers() {
    let _g = serial();
    for (workers, max) in [(1, 2), (2, 1), (2, 2)] {
        let pool = ProcessPool::with_options(registry(), options(workers).max_tasks_per_child(max)).unwrap();
        let futs: Vec<_> = (0..10).map(|_| pool.submit::<(), u32>("pid", ())).collect();
        let pids: Vec<u32> = futs.into_iter().map(|f| get(f).unwrap()).collect();
        // Each worker ran at most `max` jobs, so at least 10 / max workers ran (more when
        // breadth-first dealing (P8) gives the last jobs to fresh workers one each).
        let mut per_pid: HashMap<u32, usize> = HashMap::new();
        for p in &pids {
            *per_pid.entry(*p).or_default() += 1;
        }
        assert!(per_pid.values().all(|&n| n <= max), "workers {workers}, max {max}: {pids:?}");
        assert!(per_pid.len() >= 10usize.div_ceil(max), "workers {workers}, max {max}: {pids:?}");
        // `map` chunks count as one task each (cpython #111498 hung here).
        let got: Vec<i64> = pool.map("inc", 0..50i64, 5).unwrap().map(Result::unwrap).collect();
        assert_eq!(got, (1..51).collect::<Vec<_>>());
    }
}

/// `shutdown(wait=true)` with jobs queued runs them all, then refuses more.
#[test]
fn process_shutdown_while_jobs_are_queued() {
    let _g = serial();
    let mut pool = pool(1);
    let futs: Vec<_> = (0..50).map(|i| pool.submit::<i64, i64>("inc", i)).collect();
    pool.shutdown(true);
    for (i, f) in futs.into_iter().enumerate() {
        assert_eq!(get(f), Ok(i as i64 + 1));
    }
    assert!(pool.worker_pids().is_empty());
    assert_eq!(get(pool.submit::<i64, i64>("inc", 1)), Err(PoolError::ShutDown));
    assert!(matches!(pool.map::<i64, i64, _>("inc", [1], 1), Err(PoolError::ShutDown)));
}

/// Dropping a pool with a stuck job and a queue: the queue fails with
/// `ShutDown`, the stuck worker gets SIGTERM after the grace period.
#[test]
fn process_drop_escalates_and_answers_every_job() {
    let _g = serial();
    let pool = pool(1);
    let stuck = pool.submit::<(), ()>("park", ());
    wait_running(&stuck);
    let queued: Vec<_> = (0..10).map(|i| pool.submit::<i64, i64>("inc", i)).collect();
    drop(pool);
    match get(stuck) {
        Err(PoolError::WorkerDied { status, reason, .. }) => {
            assert_eq!(status, signaled(libc::SIGTERM));
            assert!(reason.contains("shutdown"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    for f in queued {
        assert_eq!(get(f), Err(PoolError::ShutDown));
    }
    assert!(our_children().is_empty());
}

/// No zombie, no orphan and no leaked fd after drop, even after a crash and
/// a replacement, and when the pool is dropped while unwinding a panic.
#[test]
fn process_no_zombies_no_leaked_fds() {
    let _g = serial();
    assert!(our_children().is_empty(), "a previous test left children");
    let fds_before = open_fds();
    let mut seen = HashSet::new();
    {
        let pool = pool(2);
        seen.extend(pool.worker_pids());
        assert!(matches!(get(pool.submit::<(), ()>("exit3", ())), Err(PoolError::WorkerDied { .. })));
        assert_eq!(get(pool.submit::<i64, i64>("inc", 1)), Ok(2));
        seen.extend(pool.worker_pids());
        assert_eq!(seen.len(), 3, "one replacement");
    }
    let unwound = std::panic::catch_unwind(|| {
        let pool = pool(2);
        let _stuck = pool.submit::<(), ()>("park", ());
        panic!("test panic with {} workers", pool.worker_pids().len());
    });
    assert!(unwound.is_err());
    assert!(our_children().is_empty(), "children left: {:?}", our_children());
    for pid in &seen {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} remains");
        let mut status = 0;
        // SAFETY: valid out-pointer; the pid is no longer our child.
        let r = unsafe { libc::waitpid(*pid as i32, &mut status, libc::WNOHANG) };
        assert_eq!(r, -1, "pid {pid} was not reaped by the pool");
    }
    assert_eq!(open_fds(), fds_before, "fds leaked");
}

/// `wait`, `as_completed` and `submit_with` on process jobs.
#[test]
fn process_wait_as_completed_and_callbacks() {
    let _g = serial();
    let pool = pool(2);
    let futs: Vec<_> = (0..20).map(|i| pool.submit::<i64, i64>("square", i)).collect();
    let (done, pending) = wait(futs, ReturnWhen::AllCompleted, Some(LONG));
    assert_eq!((done.len(), pending.len()), (20, 0));
    let mut got: Vec<i64> = as_completed(done).map(|f| f.result().unwrap()).collect();
    got.sort();
    assert_eq!(got, (0..20).map(|x| x * x).collect::<Vec<_>>());
    let (tx, rx) = crossbeam_channel::bounded(1);
    pool.submit_with::<i64, i64, _>("inc", 41, move |r| tx.send(r).unwrap());
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok(42));
}

/// Awaiting a process job on a minimal executor (the loop bridge does the same).
#[test]
fn process_job_is_awaitable() {
    let _g = serial();
    let pool = pool(1);
    assert_eq!(block_on(pool.submit::<i64, i64>("inc", 1)), Ok(2));
}

// ---------------------------------------------------------------------------
// Thread pool
// ---------------------------------------------------------------------------

/// A waker that unparks the blocked thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The smallest executor: poll, park until woken, repeat.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// A gate a job blocks on until the test opens it.
fn gate() -> (crossbeam_channel::Sender<()>, crossbeam_channel::Receiver<()>) {
    crossbeam_channel::bounded(0)
}

#[test]
fn thread_map_results_in_order() {
    let pool = ThreadPool::new(3).unwrap();
    let got: Vec<u64> = pool.map(|x: u64| x * 3, 0..1000).map(Result::unwrap).collect();
    assert_eq!(got, (0..1000).map(|x| x * 3).collect::<Vec<_>>());
}

/// concurrent.futures: an exception in a job is that future's; the worker
/// goes on (H2).
#[test]
fn thread_panic_is_an_error_and_the_worker_survives() {
    let pool = ThreadPool::new(1).unwrap();
    let bad = pool.submit(|| -> u8 { panic!("boom") });
    assert_eq!(get(bad), Err(PoolError::Panicked { message: "boom".into() }));
    assert_eq!(get(pool.submit(|| 5)), Ok(5));
    let (tx, rx) = crossbeam_channel::bounded(1);
    pool.submit_with(|| std::thread::current().name().map(String::from), move |r| tx.send(r).unwrap()).unwrap();
    let name = rx.recv_timeout(LONG).unwrap().unwrap().unwrap();
    assert!(name.starts_with("looplab-pool-"), "callback ran on {name}");
}

/// `as_completed` yields in completion order; `wait` honours
/// FIRST_COMPLETED, ALL_COMPLETED and its timeout; `cancel` works only on
/// a queued job (J3).
#[test]
fn thread_wait_as_completed_and_cancel() {
    let pool = ThreadPool::new(2).unwrap();
    let (open, gated) = gate();
    let slow = pool.submit(move || {
        gated.recv().unwrap();
        "slow"
    });
    let fast = pool.submit(|| "fast");
    let (done, pending) = wait(vec![slow, fast], ReturnWhen::FirstCompleted, Some(LONG));
    assert_eq!((done.len(), pending.len()), (1, 1));
    let (done2, pending) = wait(pending, ReturnWhen::AllCompleted, Some(Duration::from_millis(20)));
    assert_eq!((done2.len(), pending.len()), (0, 1), "timeout returns what is pending");
    // Both workers are now busy or idle; fill one with a gate to queue a job.
    let (open2, gated2) = gate();
    let blocker = pool.submit(move || gated2.recv().unwrap());
    let queued = pool.submit(|| "never runs");
    // `queued` cannot start: both workers wait on gates. It is cancellable.
    let mut order = Vec::new();
    let mut it = as_completed(pending.into_iter().chain(done).collect());
    order.push(it.next().unwrap().result().unwrap()); // "fast" was already done
    // Cancel before any worker frees up, so `queued` is surely not started.
    assert!(queued.cancel());
    assert_eq!(get(queued), Err(PoolError::Cancelled));
    open.send(()).unwrap();
    order.push(it.next().unwrap().result().unwrap());
    assert_eq!(order, ["fast", "slow"]);
    open2.send(()).unwrap();
    assert_eq!(get(blocker), Ok(()));
    let running = {
        let (open3, gated3) = gate();
        let f = pool.submit(move || gated3.recv().unwrap());
        (f, open3)
    };
    // A started job cannot be cancelled; wait until it is surely running.
    let (f, open3) = running;
    open3.send(()).unwrap(); // rendezvous: the job is running when this returns
    assert!(!f.cancel());
    assert_eq!(get(f), Ok(()));
}

#[test]
fn thread_job_is_awaitable_and_shutdown_drains() {
    let pool = ThreadPool::new(2).unwrap();
    assert_eq!(block_on(pool.submit(|| 40 + 2)), Ok(42));
    let futs: Vec<_> = (0..100).map(|i| pool.submit(move || i)).collect();
    pool.shutdown(true);
    for (i, f) in futs.into_iter().enumerate() {
        assert_eq!(get(f), Ok(i));
    }
    assert_eq!(get(pool.submit(|| 1)), Err(PoolError::ShutDown));
    assert!(matches!(ThreadPool::new(0), Err(PoolError::InvalidArgument { name: "workers", .. })));
}

// ---------------------------------------------------------------------------
// Frames fed to the decoder
// ---------------------------------------------------------------------------

fn call_frame(id: u64, name: &str, arg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let s = frame::begin_frame(&mut out, FrameKind::Call, id);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(arg);
    frame::end_frame(&mut out, s).unwrap();
    out
}

#[test]
fn frames_malformed_are_errors() {
    let good = call_frame(9, "inc", &[1, 0, 0, 0, 0, 0, 0, 0]);
    let (f, used) = Frame::parse(&good).unwrap().unwrap();
    assert_eq!((f.kind, f.id, used), (FrameKind::Call, 9, good.len()));
    assert_eq!(f.call_parts().unwrap(), ("inc", &[1u8, 0, 0, 0, 0, 0, 0, 0][..]));

    let mut bad_version = good.clone();
    bad_version[4] = 7;
    assert_eq!(Frame::parse(&bad_version), Err(FrameError::BadVersion { found: 7 }));
    let mut bad_kind = good.clone();
    bad_kind[5] = 99;
    assert_eq!(Frame::parse(&bad_kind), Err(FrameError::UnknownKind { found: 99 }));
    assert_eq!(Frame::parse(&[3, 0, 0, 0]), Err(FrameError::TooShort { len: 3 }));
    // A forged 4 GiB length fails at once, before any allocation (M1, M2).
    assert!(matches!(Frame::parse(&[0xff, 0xff, 0xff, 0xff]), Err(FrameError::Oversized { len: 0xffff_ffff, .. })));
    // Name longer than the body.
    let mut long_name = call_frame(1, "x", &[]);
    long_name[14] = 200;
    let (f, _) = Frame::parse(&long_name).unwrap().unwrap();
    assert!(matches!(f.call_parts(), Err(FrameError::BadBody { .. })));
}

#[test]
fn frames_truncated_are_detected_at_end_of_stream() {
    let good = call_frame(1, "inc", &[0; 8]);
    for cut in 1..good.len() {
        let mut buf = FrameBuf::new();
        buf.extend(&good[..cut]);
        assert_eq!(buf.peek().unwrap(), None, "cut {cut}: incomplete, not an error");
        let err = buf.at_eof().unwrap_err();
        assert!(matches!(err, FrameError::Truncated { have, .. } if have == cut), "{err}");
    }
    // Two frames back to back, fed one byte at a time, come out whole.
    let mut buf = FrameBuf::new();
    let mut ids = Vec::new();
    let two = [call_frame(1, "a", &[1]), call_frame(2, "b", &[2, 2])].concat();
    for b in &two {
        buf.extend(&[*b]);
        while let Some((f, used)) = buf.peek().unwrap() {
            ids.push(f.id);
            buf.consume(used);
        }
    }
    assert_eq!(ids, [1, 2]);
    assert!(buf.at_eof().is_ok());
}

/// xorshift64: the same "random" bytes every run.
fn step(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Random bytes and random mutations of a good frame never panic (M3).
#[test]
fn frames_random_garbage_never_panics() {
    let mut rng = 0x5eed_u64;
    let good = call_frame(3, "square", &[5, 0, 0, 0, 0, 0, 0, 0]);
    for _ in 0..20_000 {
        let mut bytes = good.clone();
        let flips = step(&mut rng) % 4 + 1;
        for _ in 0..flips {
            let i = (step(&mut rng) as usize) % bytes.len();
            bytes[i] = step(&mut rng) as u8;
        }
        bytes.truncate((step(&mut rng) as usize) % (bytes.len() + 1));
        if let Ok(Some((f, _))) = Frame::parse(&bytes) {
            let _ = f.call_parts();
            let _ = looplab::pool::from_bytes::<(i64, String)>(f.body);
        }
    }
}

// ---------------------------------------------------------------------------
// The bridge to the loop: run_in_executor, run_in_process, to_thread
// ---------------------------------------------------------------------------

/// A thread-pool job's result comes back to the loop through `call_soon_threadsafe`; while it
/// runs, the virtual clock does not jump past the pending 1 h timer (R3), and the loop keeps
/// running other callbacks.
/// CPython: test_events.py::EventLoopTestsMixin::test_run_in_executor
#[test]
fn run_in_executor_on_the_virtual_clock() {
    let pool = ThreadPool::new(2).unwrap();
    let lp = looplab::EventLoop::new_virtual();
    lp.call_later(Duration::from_secs(3600), |_| {});
    let r = lp.run_until_complete(lp.handle().run_in_executor(&pool, || (1..=10u64).product::<u64>())).unwrap();
    assert_eq!(r, Ok(3_628_800));
    assert_eq!(lp.time(), Duration::ZERO, "virtual time stood still while the job ran");
}

/// A panicking job is an error for its awaiter; the loop and the pool keep working.
#[test]
fn run_in_executor_panic_is_an_error() {
    let pool = ThreadPool::new(1).unwrap();
    let lp = looplab::EventLoop::new_virtual();
    let h = lp.handle();
    let (bad, good) = lp
        .run_until_complete(async move {
            let bad = h.run_in_executor(&pool, || -> u32 { panic!("job failed") }).await;
            let good = h.run_in_executor(&pool, || 7u32).await;
            (bad, good)
        })
        .unwrap();
    assert!(matches!(bad, Err(PoolError::Panicked { .. })), "{bad:?}");
    assert_eq!(good, Ok(7));
}

/// `to_thread` uses the default pool; results come back in await order.
/// CPython: test_threads.py::ToThreadTests::test_to_thread
#[test]
fn to_thread_runs_blocking_work() {
    let out = looplab::run_virtual(async {
        let a = looplab::to_thread(|| "from a thread".to_string());
        let b = looplab::to_thread(|| std::thread::current().name().map(str::to_string));
        (a.await.unwrap(), b.await.unwrap().is_some_and(|n| n != "main"))
    })
    .unwrap();
    assert_eq!(out.0, "from a thread");
}

/// Dropping the awaiting future does not stop the job; its result is discarded on arrival
/// and the loop does not wait for it forever.
/// CPython: test_events.py::EventLoopTestsMixin::test_run_in_executor_cancel
#[test]
fn run_in_executor_dropped_future_discards_result() {
    let pool = ThreadPool::new(1).unwrap();
    let lp = looplab::EventLoop::new_virtual();
    let h = lp.handle();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let v = lp
        .run_until_complete(async move {
            let slow = h.run_in_executor(&pool, move || rx.recv().is_ok());
            drop(slow); // cancelled from the loop's side
            tx.send(()).unwrap(); // let the job finish
            h.run_in_executor(&pool, || 5).await
        })
        .unwrap();
    assert_eq!(v, Ok(5));
}

/// A process-pool job awaited on the loop.
#[test]
fn run_in_process_on_the_loop() {
    let _g = serial();
    let pool = pool(2);
    let lp = looplab::EventLoop::new_virtual();
    let h = lp.handle();
    let out = lp
        .run_until_complete(async move {
            let a = h.run_in_process::<i64, i64>(&pool, "square", 12);
            let b = h.run_in_process::<i64, i64>(&pool, "inc", 41);
            (a.await, b.await)
        })
        .unwrap();
    assert_eq!(out, (Ok(144), Ok(42)));
}
