//! Hardening: stress, leaks, load, faults and bad input (issue 7). `RELIABILITY.md` lists each
//! test with its figures and the command that runs it.
//!
//! Three kinds of test live here:
//! - **stress and leak tests** run with every `cargo test`, and (scaled down) under Miri;
//! - **fault tests** inject panics, SIGKILLs, connection resets, clock jumps and cross-thread
//!   stops, then check that the loop, the pools and the other tasks keep working;
//! - **load tests** are `#[ignore]`d (they need a release build and a minute or more):
//!   `cargo test --release --test reliability -- --ignored --nocapture --test-threads=1`
//!   (`scripts/load.sh`, which also times each one from outside). They assert counts and
//!   checksums and print memory per task; speed is for `benches/`.
//!
//! No test sleeps, reads the real clock or asserts a duration. A lost wake-up cannot hang a test: every loop here
//! runs with deadlock detection (DESIGN.md section 5), so a task that nobody will ever wake
//! ends the run with `LoopError::Deadlock` naming it.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use looplab::pool::{PoolError, ProcessPool, ProcessPoolOptions, Registry, ThreadPool};
use looplab::{Error, EventLoop, LoopError, LoopFuture, get_running_loop, sleep, yield_now};

/// xorshift64: the same "random" steps every run, without a `rand` dependency.
fn step(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Spin for a pseudo-random number of iterations: "a random moment" without sleeping.
fn spin(rng: &mut u64, max: u64) {
    for _ in 0..step(rng) % max {
        std::hint::spin_loop();
    }
}

// ------------------------------------------------------------------ cross-thread wake stress

/// What the loop and the waking threads share about one task.
#[derive(Default)]
struct WakeTarget {
    /// The task's latest waker (an owned, cloned one: the `VTABLE` path of raw_waker.rs).
    waker: Mutex<Option<Waker>>,
    /// Wake-ups sent to this task so far; a sender bumps it *before* waking.
    sent: AtomicU64,
    /// Times the loop polled the task.
    polls: AtomicU64,
    /// Set while the task is inside `poll`: a second, overlapping poll would see it.
    in_poll: AtomicBool,
    /// Set when the task returned `Ready`.
    done: AtomicBool,
}

/// A task that finishes once it has seen `quota` wake-ups, re-registering its waker at every
/// poll, as a socket or a channel would.
struct CountWakes {
    target: Arc<WakeTarget>,
    quota: u64,
    finished: bool,
}

impl Future for CountWakes {
    type Output = u64;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        assert!(!self.finished, "polled after Ready");
        let t = self.target.clone();
        assert!(!t.in_poll.swap(true, Ordering::SeqCst), "overlapping polls");
        t.polls.fetch_add(1, Ordering::SeqCst);
        // Register first, then look: a wake that bumps `sent` after the look finds the new
        // waker (the classic lost-wake-up window, closed by this order).
        *t.waker.lock().unwrap() = Some(cx.waker().clone());
        let seen = t.sent.load(Ordering::SeqCst);
        t.in_poll.store(false, Ordering::SeqCst);
        if seen == self.quota {
            self.finished = true;
            t.done.store(true, Ordering::SeqCst);
            *t.waker.lock().unwrap() = None;
            Poll::Ready(t.polls.load(Ordering::SeqCst))
        } else {
            Poll::Pending
        }
    }
}

/// W1–W3, R1 under concurrency: `THREADS` threads wake `TASKS` tasks at random moments,
/// `WAKES` times each, by value (`wake`, which consumes a clone made on the other thread) and
/// by reference (`wake_by_ref`), and drop clones there too. Every task must see every wake-up
/// (a lost one would leave it waiting forever: deadlock detection would end the run with an
/// error naming it), and no task is ever polled without a wake-up to justify it
/// (`polls <= wake-ups + 1`, the first poll being the spawn's) nor twice at once.
#[test]
fn cross_thread_wakes_are_never_lost_nor_doubled() {
    const TASKS: usize = 16;
    const THREADS: usize = 4;
    let wakes: u64 = if cfg!(miri) { 40 } else { 25_000 };
    // Each thread's sequence of targets, fixed by a seed, so the quotas are known up front.
    let plans: Vec<Vec<usize>> = (0..THREADS)
        .map(|t| {
            let mut rng = 0x5EED_u64 + t as u64;
            (0..wakes).map(|_| (step(&mut rng) % TASKS as u64) as usize).collect()
        })
        .collect();
    let mut quotas = [0u64; TASKS];
    for plan in &plans {
        for &i in plan {
            quotas[i] += 1;
        }
    }
    let targets: Vec<Arc<WakeTarget>> = (0..TASKS).map(|_| Arc::default()).collect();
    let lp = EventLoop::new();
    let handle = lp.threadsafe_handle(); // R4: the loop blocks while the referee may still call
    let start = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = plans
        .into_iter()
        .enumerate()
        .map(|(t, plan)| {
            let (targets, start) = (targets.clone(), start.clone());
            std::thread::spawn(move || {
                let mut rng = 0xC0FFEE_u64 + t as u64;
                while !start.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                for (n, i) in plan.into_iter().enumerate() {
                    spin(&mut rng, 64);
                    let target = &targets[i];
                    target.sent.fetch_add(1, Ordering::SeqCst);
                    let waker = target.waker.lock().unwrap().clone();
                    match (waker, n % 3) {
                        (Some(w), 0) => w.wake(), // by value: consumes the clone made here
                        (Some(w), 1) => w.wake_by_ref(),
                        (Some(w), _) => {
                            w.wake_by_ref();
                            drop(w.clone()); // a clone dropped on this thread
                        }
                        // Not polled yet: its first poll (the spawn's) will see `sent`.
                        (None, _) => {}
                    }
                }
            })
        })
        .collect();
    // The referee: once every thread has finished, every wake-up is in the inbox. A callback
    // sent now lands behind them (the channel is FIFO and `join` orders the sends), so when it
    // runs every task has been polled after its last wake-up and must be done. If one is not,
    // its wake-up was lost: stop the loop with a verdict instead of waiting forever.
    let verdict = Arc::new(Mutex::new(None::<String>));
    let referee = {
        let (targets, verdict) = (targets.clone(), verdict.clone());
        std::thread::spawn(move || {
            for t in threads {
                t.join().unwrap();
            }
            let check = move |lp: &looplab::LoopHandle| {
                let lost: Vec<usize> = (0..TASKS).filter(|&i| !targets[i].done.load(Ordering::SeqCst)).collect();
                if !lost.is_empty() {
                    *verdict.lock().unwrap() = Some(format!("tasks {lost:?} missed a wake-up"));
                    lp.stop();
                }
            };
            handle.call_soon_threadsafe(check).unwrap();
        })
    };
    let tasks: Vec<_> = targets
        .iter()
        .zip(quotas)
        .map(|(t, quota)| lp.spawn(CountWakes { target: t.clone(), quota, finished: false }))
        .collect();
    start.store(true, Ordering::SeqCst);
    let polls = lp
        .run_until_complete(async move {
            let mut polls = Vec::new();
            for t in tasks {
                polls.push(t.await.expect("task finished"));
            }
            polls
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}", verdict.lock().unwrap()));
    referee.join().unwrap();
    assert_eq!(*verdict.lock().unwrap(), None);
    let total_polls: u64 = polls.iter().sum();
    for (i, (&p, &q)) in polls.iter().zip(quotas.iter()).enumerate() {
        assert!(p >= 1 && p <= q + 1, "task {i}: {p} polls for {q} wake-ups (W3: no poll without a wake-up)");
        assert_eq!(targets[i].sent.load(Ordering::SeqCst), q);
    }
    assert_eq!(quotas.iter().sum::<u64>(), THREADS as u64 * wakes);
    println!(
        "{} wake-ups from {THREADS} threads to {TASKS} tasks: {total_polls} polls (coalesced by W3)",
        THREADS as u64 * wakes
    );
    // The loop is still usable, and every waker clone was released (W1: the count balanced,
    // or `TaskWaker`s would outlive the loop: the Miri run checks there are no leaks).
    assert_eq!(lp.run_until_complete(async { 7 }).unwrap(), 7);
}

// ------------------------------------------------------------------ no leaks

/// Counts destructors: `drops` goes up once per `Guard` dropped, wherever that happens.
#[derive(Clone, Default)]
struct DropCounter {
    made: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

/// One counted value; `Send`, so it can ride in a `call_soon_threadsafe` closure too.
struct Guard(Arc<AtomicUsize>);

impl DropCounter {
    fn guard(&self) -> Guard {
        self.made.fetch_add(1, Ordering::SeqCst);
        Guard(self.drops.clone())
    }
    fn made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }
    fn dropped(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `close()` with work of every kind still pending drops all of it: tasks never polled,
/// tasks asleep on timers, tasks awaiting a `LoopFuture` or another task, plain timers,
/// queued `call_soon` callbacks, done-callbacks, and `call_soon_threadsafe` closures still in
/// the inbox. Each holds a `Guard`; every guard's destructor must have run once `close`
/// returns (and not earlier: the loop has not run since they were made). Under Miri this
/// also proves that nothing the loop allocated outlives it (its leak check is on).
#[test]
fn close_drops_every_pending_task_timer_and_callback() {
    let n = if cfg!(miri) { 5 } else { 200 };
    let count = DropCounter::default();
    let lp = EventLoop::new_virtual();
    // Tasks that run until they wait: on a timer, on a LoopFuture, on another task.
    let fut = LoopFuture::<u32>::new(&lp);
    for i in 0..n {
        let g = count.guard();
        lp.spawn(async move {
            let _g = g;
            sleep(Duration::from_secs(3600 + i)).await;
        })
        .detach();
        let (g, f) = (count.guard(), fut.clone());
        lp.spawn(async move {
            let _g = g;
            let _ = f.await;
        })
        .detach();
        let g = count.guard();
        fut.add_done_callback(move |_| drop(g));
    }
    let g = count.guard();
    let sleeper = lp.spawn(async move {
        let _g = g;
        sleep(Duration::from_secs(7)).await;
    });
    let g = count.guard();
    lp.spawn(async move {
        let _g = g;
        let _ = sleeper.await;
    })
    .detach();
    // Run until every task waits (a couple of iterations; virtual time stays at zero, as
    // something is ready in each of them, so no timer fires).
    lp.run_until_complete(yield_now()).unwrap();
    assert_eq!(lp.time(), Duration::ZERO);
    assert_eq!(count.dropped(), 0, "nothing has finished yet");
    // Never polled: spawned after the last run.
    for _ in 0..n {
        let g = count.guard();
        lp.spawn(async move { drop(g) }).detach();
    }
    // Timers, callbacks, a task's done-callback, and closures from another thread.
    for i in 0..n {
        let g = count.guard();
        lp.call_later(Duration::from_millis(i + 1), move |_| drop(g));
        let g = count.guard();
        lp.call_soon(move |_| drop(g));
    }
    let t = lp.spawn(sleep(Duration::from_secs(1)));
    let g = count.guard();
    t.add_done_callback(move |_| drop(g));
    t.detach();
    let remote = lp.threadsafe_handle();
    let guards: Vec<Guard> = (0..n).map(|_| count.guard()).collect();
    std::thread::spawn(move || {
        for g in guards {
            remote.call_soon_threadsafe(move |_| drop(g)).unwrap();
        }
    })
    .join()
    .unwrap();
    assert_eq!(count.dropped(), 0);
    lp.close().unwrap();
    // The future's own done-callbacks belong to the future, which the test still holds (as
    // in asyncio); everything the loop held is gone, including the tasks' clones of `fut`.
    let owned_by_fut = n as usize;
    assert_eq!(count.dropped(), count.made() - owned_by_fut, "every destructor ran at close");
    assert_eq!(count.made() as u64, 7 * n + 3);
    // A closed loop refuses work politely, and dropping it drops nothing twice.
    assert!(matches!(lp.run_until_complete(async {}), Err(LoopError::Closed)));
    drop(fut);
    assert_eq!(count.dropped(), count.made());
    drop(lp);
    assert_eq!(count.dropped(), count.made());
}

/// The same with sockets: a listener awaiting `accept`, and two connected sockets (one
/// accepted, one connected out) awaiting `read`, left pending at `close`. Their descriptors
/// are closed by then: the listener's port refuses connections, and each peer (a plain std
/// socket) reads end of file.
#[test]
#[cfg_attr(miri, ignore = "real sockets: Miri cannot create them")]
fn close_closes_pending_sockets() {
    use looplab::net::{TcpListener, TcpStream};
    let count = DropCounter::default();
    let lp = EventLoop::new();
    let (g1, g2, g3) = (count.guard(), count.guard(), count.guard());
    let outside = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let outside_addr = outside.local_addr().unwrap();
    let (peer_in, listen_addr) = lp
        .run_until_complete(async move {
            let lp = get_running_loop().unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
            let (server_side, _) = listener.accept().await.unwrap();
            let peer = peer.join().unwrap();
            lp.spawn(async move {
                let _g = g1;
                let mut buf = [0u8; 16];
                let _ = server_side.read(&mut buf).await;
            })
            .detach();
            lp.spawn(async move {
                let _g = g2;
                let _ = listener.accept().await;
            })
            .detach();
            let outgoing = TcpStream::connect(outside_addr).await.unwrap();
            lp.spawn(async move {
                let _g = g3;
                let mut buf = [0u8; 1];
                let _ = outgoing.read(&mut buf).await;
            })
            .detach();
            yield_now().await; // let them reach their awaits
            (peer, addr)
        })
        .unwrap();
    let (peer_out, _) = outside.accept().unwrap();
    assert_eq!(count.dropped(), 0, "all three are still waiting");
    lp.close().unwrap();
    assert_eq!(count.dropped(), 3);
    let refused = std::net::TcpStream::connect(listen_addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // Bounded, not timed: the FIN is on its way when close returns.
    for mut peer in [peer_in, peer_out] {
        peer.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut peer, &mut buf).unwrap(), 0);
    }
}

// ------------------------------------------------------------------ the process pool's worker

/// Jobs for the process-pool tests: small, deterministic, and one that panics.
mod jobs {
    /// A small job with a checkable result: 64 xorshift steps from `x`.
    pub fn mix(x: u64) -> u64 {
        let mut s = x | 1;
        for _ in 0..64 {
            super::step(&mut s);
        }
        s
    }
    /// Panics for every argument divisible by 3.
    pub fn picky(x: u64) -> u64 {
        assert!(x % 3 != 0, "picky job {x} panicked on purpose");
        x * 2
    }
}

fn registry() -> Registry {
    Registry::new().register("mix", jobs::mix).register("picky", jobs::picky)
}

/// The worker processes' entry (tests/pool.rs explains the mechanism): in a worker started
/// with `libtest_worker("worker_entry")` this serves calls and exits; in a normal run it
/// returns at once.
#[test]
fn worker_entry() {
    registry().run_worker_if_child();
}

fn process_pool(workers: usize) -> ProcessPool {
    let options =
        ProcessPoolOptions::new(workers).libtest_worker("worker_entry").shutdown_grace(Duration::from_secs(5));
    ProcessPool::with_options(registry(), options).expect("pool starts")
}

/// Serializes the tests that start processes, so a SIGKILL aimed at one pool's worker can
/// only hit that pool (the victim is also checked to be our child just before the kill).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Is `pid` a live child of this process? (`/proc/PID/stat`, field 4 is the parent.)
fn is_our_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let after_name = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next();
    let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
    ppid == Some(std::process::id()) && state != Some("Z")
}

// ------------------------------------------------------------------ faults

/// E7, K4, F-callbacks, J*: a panic in a task, a `call_soon` callback, a timer callback, a
/// task's done-callback, a `LoopFuture`'s done-callback, a thread-pool job and a process-pool
/// job. Each is caught where it happens and becomes an error for whoever awaits, or a report
/// through the exception handler; a bystander task that ticks through all of it finishes with
/// every tick, and the pools serve the next job (the process worker survives its panic).
#[test]
#[cfg_attr(miri, ignore = "starts worker processes")]
fn fault_panics_everywhere_are_contained() {
    let _g = serial();
    let procs = process_pool(1);
    let threads = ThreadPool::new(2).unwrap();
    let lp = EventLoop::new_virtual();
    let reports = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = reports.clone();
    lp.set_exception_handler(move |msg| sink.lock().unwrap().push(msg.to_string()));
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    let bystander = lp.spawn(async move {
        for _ in 0..100 {
            sleep(Duration::from_millis(10)).await;
            t.fetch_add(1, Ordering::SeqCst);
        }
    });
    lp.call_soon(|_| panic!("callback panicked on purpose"));
    lp.call_later(Duration::from_millis(5), |_| panic!("timer callback panicked on purpose"));
    let out = lp
        .run_until_complete(async move {
            let lp = get_running_loop().unwrap();
            let bad = lp.spawn(async {
                yield_now().await;
                panic!("task panicked on purpose")
            });
            bad.add_done_callback(|_| panic!("done-callback panicked on purpose"));
            let task_err = bad.await.unwrap_err();
            let fut = LoopFuture::<u8>::new(&lp);
            fut.add_done_callback(|_| panic!("future done-callback panicked on purpose"));
            fut.set_result(1).unwrap();
            let thread_err = lp.run_in_executor(&threads, || -> u64 { panic!("thread job panicked on purpose") }).await;
            let thread_ok = lp.run_in_executor(&threads, || 5u64).await;
            let proc_err = lp.run_in_process::<u64, u64>(&procs, "picky", 9).await;
            let proc_ok = lp.run_in_process::<u64, u64>(&procs, "picky", 10).await;
            bystander.await.unwrap();
            (task_err, fut.result(), thread_err, thread_ok, proc_err, proc_ok)
        })
        .unwrap();
    let (task_err, fut_result, thread_err, thread_ok, proc_err, proc_ok) = out;
    assert!(
        matches!(&task_err, Error::Panicked(p) if p.to_string().contains("task panicked on purpose")),
        "{task_err}"
    );
    assert_eq!(fut_result, Ok(1), "a panicking done-callback leaves the result alone");
    assert!(
        matches!(&thread_err, Err(PoolError::Panicked { message }) if message.contains("thread job")),
        "{thread_err:?}"
    );
    assert_eq!(thread_ok, Ok(5));
    assert!(
        matches!(&proc_err, Err(PoolError::Panicked { message }) if message.contains("picky job 9")),
        "{proc_err:?}"
    );
    assert_eq!(proc_ok, Ok(20), "the worker survived its job's panic");
    assert_eq!(ticks.load(Ordering::SeqCst), 100, "the bystander missed nothing");
    let reports = reports.lock().unwrap();
    for what in ["callback", "timer callback", "done-callback", "future done-callback"] {
        let line = format!("panicked: {what} panicked on purpose");
        assert_eq!(reports.iter().filter(|r| r.ends_with(&line)).count(), 1, "{what}: {reports:?}");
    }
    assert_eq!(reports.len(), 4, "the task's panic went to its awaiter, not the handler: {reports:?}");
    // The loop still runs new work.
    assert_eq!(lp.run_until_complete(async { 3 }).unwrap(), 3);
}

/// P*: SIGKILL a worker at pseudo-random moments of a long `map` (at random result indices,
/// a random live worker). Every item either completes with the right value or fails with
/// `WorkerDied` naming SIGKILL; no item is lost or duplicated; at most one item fails per
/// kill (only the job the victim was running); resubmitting the failed items completes the
/// map, and the checksum over all items is the expected one.
#[test]
#[cfg_attr(miri, ignore = "starts and kills worker processes")]
fn fault_sigkill_workers_during_a_long_map() {
    let _g = serial();
    const N: u64 = 4_000;
    let pool = process_pool(3);
    let mut rng = 0xDEAD_BEEF_u64;
    let mut results: Vec<Option<u64>> = vec![None; N as usize];
    let mut failed = Vec::new();
    let mut kills = 0;
    for (i, r) in pool.map("mix", 0..N, 1).unwrap().enumerate() {
        match r {
            Ok(v) => results[i] = Some(v),
            Err(PoolError::WorkerDied { status, .. }) => {
                assert_eq!(status.to_string(), "signal 9 (SIGKILL)");
                failed.push(i as u64);
            }
            Err(e) => panic!("item {i}: unexpected {e:?}"),
        }
        if step(&mut rng) % 200 == 0 {
            let pids = pool.worker_pids();
            // Between a worker's death and its replacement the list is short, and it can be
            // empty (a run once found it so, and took the remainder by zero): no kill then.
            let victim = match pids.len() {
                0 => continue,
                n => pids[(step(&mut rng) % n as u64) as usize],
            };
            if is_our_child(victim) {
                // SAFETY: `victim` is an unreaped child of this process (checked just above;
                // the pool reaps only after its pidfd reports the death).
                if unsafe { libc::kill(victim as i32, libc::SIGKILL) } == 0 {
                    kills += 1;
                }
            }
        }
    }
    assert!(kills >= 3, "the schedule tries about 20 kills (one per 200 results): {kills}");
    // Resubmit what failed. A worker killed just before the map ended may still take a job
    // before its death is noticed, so this is a loop, bounded by the number of kills.
    let mut failures = failed.len();
    let mut rounds = 0;
    while !failed.is_empty() {
        rounds += 1;
        assert!(rounds <= kills + 1, "resubmission does not converge");
        let again = std::mem::take(&mut failed);
        for (i, r) in again.iter().zip(pool.map("mix", again.clone(), 1).unwrap()) {
            match r {
                Ok(v) => results[*i as usize] = Some(v),
                Err(PoolError::WorkerDied { .. }) => failed.push(*i),
                Err(e) => panic!("item {i}: unexpected {e:?}"),
            }
        }
        failures += failed.len();
    }
    assert!(failures <= kills, "{failures} failures for {kills} kills: only the victim's job fails");
    println!("{N} items, {kills} workers SIGKILLed, {failures} items failed and were resubmitted ({rounds} rounds)");
    let want: u64 = (0..N).map(jobs::mix).fold(0, u64::wrapping_add);
    let got: u64 = results.iter().map(|r| r.expect("every item accounted for")).fold(0, u64::wrapping_add);
    assert_eq!(got, want);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(*r, Some(jobs::mix(i as u64)), "item {i}");
    }
}

/// N1, N5 with a hostile peer: a client sends a frame header announcing 4,096 bytes, 1,000
/// of them, then resets the connection (SO_LINGER 0). The server task reading the frame gets
/// an error (reset or early end of file), never a short frame, a panic or a hang; the next
/// connection on the same loop is served normally.
#[test]
#[cfg_attr(miri, ignore = "real sockets")]
fn fault_peer_resets_mid_frame() {
    use looplab::net::TcpListener;
    use std::io::Write;
    let lp = EventLoop::new();
    let (first, second) = lp
        .run_until_complete(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let mut bad = std::net::TcpStream::connect(addr).unwrap();
                bad.write_all(&4096u32.to_le_bytes()).unwrap();
                bad.write_all(&[7u8; 1000]).unwrap();
                let linger = libc::linger { l_onoff: 1, l_linger: 0 };
                // SAFETY: `bad` owns an open socket, and `linger` is a valid value of the size
                // given for the duration of the call.
                let rc = unsafe {
                    libc::setsockopt(
                        std::os::fd::AsRawFd::as_raw_fd(&bad),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        (&linger as *const libc::linger).cast(),
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    )
                };
                assert_eq!(rc, 0);
                drop(bad); // RST, not FIN
                let mut good = std::net::TcpStream::connect(addr).unwrap();
                good.write_all(&3u32.to_le_bytes()).unwrap();
                good.write_all(b"abc").unwrap();
                let mut reply = [0u8; 8];
                std::io::Read::read_exact(&mut good, &mut reply).unwrap();
                u64::from_le_bytes(reply)
            });
            /// One frame: `u32 len | body`; replies with the body's byte sum.
            async fn serve(stream: looplab::net::TcpStream) -> std::io::Result<u64> {
                let mut len = [0u8; 4];
                stream.read_exact(&mut len).await?;
                let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
                stream.read_exact(&mut body).await?;
                let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
                stream.write_all(&sum.to_le_bytes()).await?;
                Ok(sum)
            }
            let (s1, _) = listener.accept().await.unwrap();
            let first = serve(s1).await;
            let (s2, _) = listener.accept().await.unwrap();
            let second = serve(s2).await;
            let client_saw = client.join().unwrap();
            (first, second.map(|s| (s, client_saw)))
        })
        .unwrap();
    let err = first.expect_err("a reset mid-frame is an error, never a short frame");
    assert!(matches!(err.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof), "{err:?}");
    assert_eq!(second.unwrap(), (294, 294), "the next connection is served");
}

/// C1–C2, T2–T4 across a jump of centuries: timers of 1 day, 1, 10 and 100 years, a sleep of
/// `Duration::MAX` (saturates at the clock's end, u64 nanoseconds, about 584 years), and a
/// `wait_for` with a 1-year timeout around a 200-year sleep, all on the virtual clock. They
/// fire in deadline order at their exact times; the timeout fires; after the jump, a 1 ms
/// sleep and a `call_soon` still work.
#[test]
fn fault_virtual_clock_jumps_by_years() {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let lp = EventLoop::new_virtual();
    let fired = Arc::new(Mutex::new(Vec::<(u32, Duration)>::new()));
    for (tag, d) in [(100, YEAR * 100), (1, YEAR), (10, YEAR * 10), (0, Duration::from_secs(86_400))] {
        let f = fired.clone();
        lp.call_later(d, move |lp| f.lock().unwrap().push((tag, lp.time())));
    }
    let forever = lp.spawn(sleep(Duration::MAX));
    let (timed_out, after) = lp
        .run_until_complete(async move {
            let lp = get_running_loop().unwrap();
            let timed_out = looplab::wait_for(sleep(YEAR * 200), YEAR).await;
            sleep(YEAR * 150).await;
            let t0 = lp.time();
            sleep(Duration::from_millis(1)).await;
            let fut = LoopFuture::<Duration>::new(&lp);
            let setter = fut.clone();
            lp.call_soon(move |lp| setter.set_result(lp.time()).unwrap());
            let soon = fut.await.unwrap();
            (timed_out, (t0, soon))
        })
        .unwrap();
    assert!(matches!(timed_out, Err(Error::Timeout(_))), "{timed_out:?}");
    let fired = fired.lock().unwrap().clone();
    let day = Duration::from_secs(86_400);
    assert_eq!(fired, [(0, day), (1, YEAR), (10, YEAR * 10), (100, YEAR * 100)], "exact, in order");
    assert_eq!(after.0, YEAR * 151, "1 year (timeout) + 150 years");
    assert_eq!(after.1, YEAR * 151 + Duration::from_millis(1));
    assert!(!forever.is_done(), "Duration::MAX is ~584 years away");
    assert!(forever.cancel());
    lp.run_until_complete(async {}).unwrap();
    assert!(forever.is_cancelled());
}

/// E5 from another thread: two tasks yield to each other as fast as they can while another
/// thread calls `stop()` at a pseudo-random moment, 50 times. Each time `run_forever` returns
/// after a whole iteration (both tasks took the same number of steps: the iteration in which
/// the stop arrived was finished), and the next `run_forever` picks up where it left off; in
/// the end both tasks complete every step.
#[test]
fn fault_stop_from_another_thread_mid_iteration() {
    let rounds = if cfg!(miri) { 3 } else { 50 };
    let steps: u64 = if cfg!(miri) { 300 } else { 1_000_000 };
    let lp = EventLoop::new();
    let counters: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let tasks: Vec<_> = (0..2)
        .map(|i| {
            let c = counters.clone();
            lp.spawn(async move {
                for _ in 0..steps {
                    c[i].fetch_add(1, Ordering::SeqCst);
                    yield_now().await;
                }
            })
        })
        .collect();
    let mut rng = 0xFACE_u64;
    let mut stops = 0;
    for _ in 0..rounds {
        if tasks.iter().all(|t| t.is_done()) {
            break;
        }
        let remote = lp.threadsafe_handle();
        let delay = step(&mut rng) % 20_000;
        let stopper = std::thread::spawn(move || {
            for _ in 0..delay {
                std::hint::spin_loop();
            }
            remote.stop().unwrap();
        });
        lp.run_forever().unwrap();
        stopper.join().unwrap();
        stops += 1;
        let (a, b) = (counters[0].load(Ordering::SeqCst), counters[1].load(Ordering::SeqCst));
        assert_eq!(a, b, "stop {stops}: the iteration was cut short");
    }
    let left = lp.run_until_complete(async move {
        for t in tasks {
            t.await.unwrap();
        }
    });
    left.unwrap();
    assert_eq!(counters[0].load(Ordering::SeqCst), steps);
    assert_eq!(counters[1].load(Ordering::SeqCst), steps);
    println!("stopped from another thread {stops} times mid-run");
}

// ------------------------------------------------------------------ load (release, #[ignore])

/// Resident memory of this process in bytes (`/proc/self/statm`, field 2, in pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// One loop holding 1,000,000 sleeping tasks (deadlines spread over 10,000 distinct
/// milliseconds, many equal: E3's tie order is exercised a million times). Each task records
/// that it woke no earlier than its deadline; the count and a checksum over the task numbers
/// account for every one. Prints resident memory per sleeping task.
#[test]
#[ignore = "load: 1,000,000 tasks; run in release via scripts/load.sh"]
fn load_million_sleeping_tasks() {
    const N: u64 = 1_000_000;
    let lp = EventLoop::new_virtual();
    let woke = Rc::new(Cell::new((0u64, 0u64))); // (count, checksum)
    let early = Rc::new(Cell::new(0u64));
    let before = rss_bytes();
    for i in 0..N {
        let (woke, early) = (woke.clone(), early.clone());
        lp.spawn(async move {
            let d = Duration::from_millis(1 + i % 10_000);
            sleep(d).await;
            let lp = get_running_loop().unwrap();
            if lp.time() < d {
                early.set(early.get() + 1);
            }
            let (n, sum) = woke.get();
            woke.set((n + 1, sum.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))));
        })
        .detach();
    }
    // One step each: every task is now asleep on a timer.
    lp.run_until_complete(yield_now()).unwrap();
    let per_task = (rss_bytes() - before) as f64 / N as f64;
    assert_eq!(lp.timer_stats().live, N as usize, "one timer per sleeping task");
    assert_eq!(woke.get().0, 0);
    lp.run_until_idle().unwrap();
    let want = (0..N).fold(0u64, |s, i| s.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    assert_eq!(woke.get(), (N, want), "every task woke once");
    assert_eq!(early.get(), 0, "T2: no timer fired early");
    assert_eq!(lp.time(), Duration::from_millis(10_000));
    println!("1,000,000 sleeping tasks: {per_task:.0} B resident per task; all woke, none early");
}

/// One loop holding 1,000,000 pending `call_later` timers with pseudo-random deadlines (up to
/// one hour, nanosecond precision); 1 % of them cancelled. The rest fire in `(deadline, seq)`
/// order, never early, each once: count and checksum. Prints resident memory per timer.
#[test]
#[ignore = "load: 1,000,000 timers; run in release via scripts/load.sh"]
fn load_million_pending_timers() {
    const N: u64 = 1_000_000;
    let lp = EventLoop::new_virtual();
    let state = Rc::new(Cell::new((0u64, 0u64, Duration::ZERO, 0u64))); // count, sum, last, bad
    let before = rss_bytes();
    let mut rng = 0xABCD_u64;
    let mut handles = Vec::with_capacity(N as usize);
    let mut want = (0u64, 0u64);
    for i in 0..N {
        let d = Duration::from_nanos(step(&mut rng) % 3_600_000_000_000);
        let s = state.clone();
        handles.push(lp.call_later(d, move |lp| {
            let (n, sum, last, mut bad) = s.get();
            if lp.time() < d || lp.time() < last {
                bad += 1;
            }
            s.set((n + 1, sum.wrapping_add(i ^ d.as_nanos() as u64), lp.time(), bad));
        }));
        if i % 100 != 7 {
            want = (want.0 + 1, want.1.wrapping_add(i ^ d.as_nanos() as u64));
        }
    }
    let per_timer = (rss_bytes() - before) as f64 / N as f64;
    for (i, h) in handles.iter().enumerate() {
        if i % 100 == 7 {
            assert!(h.cancel());
        }
    }
    assert_eq!(lp.timer_stats().live, (N - N / 100) as usize);
    lp.run_until_idle().unwrap();
    let (n, sum, _, bad) = state.get();
    assert_eq!((n, sum), want, "every live timer fired once, no cancelled one did");
    assert_eq!(bad, 0, "none early, none out of order");
    println!(
        "1,000,000 timers: {per_timer:.0} B resident per pending timer (with its TimerHandle); \
         10,000 cancelled, the rest fired in order"
    );
}

/// 100,000 tasks contend for one `Lock`, each holding it across a `yield_now` (so every other
/// task runs meanwhile): mutual exclusion never breaks and the lock is granted in request
/// order (V2). Then 50,000 producers and 50,000 consumers share one `Queue` of size 64: every
/// item is received exactly once (count and checksum) and `join` returns after the last
/// `task_done`.
#[test]
#[ignore = "load: 100,000 tasks; run in release via scripts/load.sh"]
fn load_lock_and_queue_contention() {
    const N: u64 = 100_000;
    let lp = EventLoop::new_virtual();
    let lock = looplab::Lock::new();
    let inside = Rc::new(Cell::new(false));
    let order = Rc::new(std::cell::RefCell::new(Vec::with_capacity(N as usize)));
    for i in 0..N {
        let (lock, inside, order) = (lock.clone(), inside.clone(), order.clone());
        lp.spawn(async move {
            let guard = lock.acquire().await;
            assert!(!inside.replace(true), "two tasks inside the lock");
            order.borrow_mut().push(i);
            yield_now().await;
            inside.set(false);
            drop(guard);
        })
        .detach();
    }
    lp.run_until_idle().unwrap();
    assert!(order.borrow().iter().copied().eq(0..N), "V2: granted in request order");
    let q = looplab::Queue::<u64>::new(64);
    let got = Rc::new(Cell::new((0u64, 0u64)));
    for i in 0..N / 2 {
        let producer = q.clone();
        lp.spawn(async move { producer.put(i * 3 + 1).await }).detach();
        let (q, got) = (q.clone(), got.clone());
        lp.spawn(async move {
            let v = q.get().await;
            let (n, s) = got.get();
            got.set((n + 1, s + v));
            q.task_done().unwrap();
        })
        .detach();
    }
    let q2 = q.clone();
    lp.run_until_complete(async move { q2.join().await }).unwrap();
    let want: u64 = (0..N / 2).map(|i| i * 3 + 1).sum();
    assert_eq!(got.get(), (N / 2, want));
    assert!(q.empty());
    println!("100,000 tasks on one Lock, then 50,000 + 50,000 on one Queue(64): every grant and item accounted for");
}

/// 1,000 concurrent loopback TCP connections on one loop, each client sending 1 MiB of
/// pseudo-random bytes (its own stream) in 16 KiB writes and half-closing; the server side
/// counts and checksums what it reads and answers with both; each client checks the answer.
#[test]
#[ignore = "load: 1,000 connections x 1 MiB; run in release via scripts/load.sh"]
fn load_thousand_connections_a_megabyte_each() {
    use looplab::net::{TcpListener, TcpStream};
    const CONNS: u64 = 1_000;
    const BYTES: usize = 1 << 20;
    const CHUNK: usize = 16 << 10;
    /// The bytes client `c` sends, chunk `k`.
    fn fill(c: u64, k: usize, buf: &mut [u8]) {
        let mut s = (c << 32) ^ k as u64 ^ 0x5EED;
        for b in buf.chunks_mut(8) {
            let v = step(&mut s).to_le_bytes();
            b.copy_from_slice(&v[..b.len()]);
        }
    }
    /// Order-sensitive checksum (FNV-1a over 64 bits).
    fn fnv(h: u64, bytes: &[u8]) -> u64 {
        bytes.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3))
    }
    let lp = EventLoop::new();
    let (ok, total) = lp
        .run_until_complete(async move {
            let lp = get_running_loop().unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // The listen backlog is 128 (mio's, as std's): 1,000 simultaneous handshakes
            // overflow it and the kernel resets some. So at most 100 connections are between
            // `connect` and `accept` at once: a client takes a token before connecting, the
            // server returns it after accepting. All 1,000 stay open and send concurrently.
            let tokens = looplab::Queue::<()>::unbounded();
            for _ in 0..100 {
                tokens.put_nowait(()).unwrap();
            }
            let server_tokens = tokens.clone();
            let server = lp.spawn(async move {
                let lp = get_running_loop().unwrap();
                let mut handlers = Vec::new();
                for _ in 0..CONNS {
                    let (s, _) = listener.accept().await.unwrap();
                    server_tokens.put_nowait(()).unwrap();
                    handlers.push(lp.spawn(async move {
                        let mut buf = vec![0u8; CHUNK];
                        let (mut n, mut h) = (0u64, 0xCBF2_9CE4_8422_2325u64);
                        loop {
                            let got = s.read(&mut buf).await.unwrap();
                            if got == 0 {
                                break;
                            }
                            n += got as u64;
                            h = fnv(h, &buf[..got]);
                        }
                        let mut reply = [0u8; 16];
                        reply[..8].copy_from_slice(&n.to_le_bytes());
                        reply[8..].copy_from_slice(&h.to_le_bytes());
                        s.write_all(&reply).await.unwrap();
                        n
                    }));
                }
                let mut total = 0;
                for h in handlers {
                    total += h.await.unwrap();
                }
                total
            });
            let clients: Vec<_> = (0..CONNS)
                .map(|c| {
                    let tokens = tokens.clone();
                    lp.spawn(async move {
                        tokens.get().await;
                        let s = TcpStream::connect(addr).await.unwrap();
                        let mut buf = vec![0u8; CHUNK];
                        let mut h = 0xCBF2_9CE4_8422_2325u64;
                        for k in 0..BYTES / CHUNK {
                            fill(c, k, &mut buf);
                            h = fnv(h, &buf);
                            s.write_all(&buf).await.unwrap();
                        }
                        s.shutdown(std::net::Shutdown::Write).unwrap();
                        let mut reply = [0u8; 16];
                        s.read_exact(&mut reply).await.unwrap();
                        let n = u64::from_le_bytes(reply[..8].try_into().unwrap());
                        let sum = u64::from_le_bytes(reply[8..].try_into().unwrap());
                        n == BYTES as u64 && sum == h
                    })
                })
                .collect();
            let mut ok = 0;
            for c in clients {
                ok += u64::from(c.await.unwrap());
            }
            (ok, server.await.unwrap())
        })
        .unwrap();
    assert_eq!(ok, CONNS, "every connection's count and checksum matched");
    assert_eq!(total, CONNS * BYTES as u64);
    println!("1,000 connections x 1 MiB: {:.0} MiB checked through one loop", total as f64 / (1 << 20) as f64);
}

/// A process pool of 4 workers runs 100,000 small jobs: 100,000 frames through `map` with
/// `chunksize=1`, then 10,000 more submitted one by one from loop tasks (`run_in_process`).
/// Every result is checked against the same function run here.
#[test]
#[ignore = "load: 110,000 process-pool jobs; run in release via scripts/load.sh"]
fn load_process_pool_hundred_thousand_jobs() {
    let _g = serial();
    const N: u64 = 100_000;
    let pool = Rc::new(process_pool(4));
    let mut count = 0u64;
    for (i, r) in pool.map("mix", 0..N, 1).unwrap().enumerate() {
        assert_eq!(r, Ok(jobs::mix(i as u64)), "item {i}");
        count += 1;
    }
    assert_eq!(count, N);
    let lp = EventLoop::new();
    let p = pool.clone();
    let sum = lp
        .run_until_complete(async move {
            let lp = get_running_loop().unwrap();
            let tasks: Vec<_> = (0..10_000u64)
                .map(|i| {
                    let (lp2, p) = (lp.clone(), p.clone());
                    lp.spawn(async move { lp2.run_in_process::<u64, u64>(&p, "mix", i).await.unwrap() })
                })
                .collect();
            let mut sum = 0u64;
            for t in tasks {
                sum = sum.wrapping_add(t.await.unwrap());
            }
            sum
        })
        .unwrap();
    assert_eq!(sum, (0..10_000u64).map(jobs::mix).fold(0, u64::wrapping_add));
    println!("process pool: 100,000 jobs by map(chunksize=1) and 10,000 by run_in_process, every result checked");
}

// ------------------------------------------------------------------ queues against models

/// One step of a random queue scenario.
#[derive(Clone, Debug)]
enum QOp {
    /// Spawn a task that `put`s this value (it may block while the queue is full).
    Put(u8),
    /// Spawn a task that `get`s (it may block while the queue is empty).
    Get,
    /// `put_nowait` from outside any task.
    PutNowait(u8),
    /// `get_nowait` from outside any task.
    GetNowait,
    /// Run the loop until nothing is ready.
    Run,
}

fn qop() -> impl proptest::strategy::Strategy<Value = QOp> {
    use proptest::prelude::*;
    prop_oneof![
        3 => any::<u8>().prop_map(QOp::Put),
        3 => Just(QOp::Get),
        1 => any::<u8>().prop_map(QOp::PutNowait),
        1 => Just(QOp::GetNowait),
        2 => Just(QOp::Run),
    ]
}

/// Q1–Q4 with blocked putters and getters: a random mix of `put`/`get` tasks and
/// `*_nowait` calls on a `Queue`, a `LifoQueue` and a `PriorityQueue` of a random `maxsize`.
/// A model (a `VecDeque` kept in step at the instant each operation completes, which is
/// inside the same poll as the queue's own change) must agree on every item taken out; the
/// size never exceeds `maxsize`; and at the end every value put is either taken or still
/// in the queue (nothing lost, nothing duplicated).
fn queue_agrees_with_model(kind: u8, maxsize: usize, ops: &[QOp]) -> Result<(), proptest::test_runner::TestCaseError> {
    use looplab::{LifoQueue, PriorityQueue, Queue};
    use proptest::prop_assert_eq;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    /// The three disciplines behind one interface, for the test.
    #[derive(Clone)]
    enum Q {
        Fifo(Queue<u8>),
        Lifo(LifoQueue<u8>),
        Prio(PriorityQueue<u8>),
    }
    impl Q {
        async fn put(&self, v: u8) {
            match self {
                Q::Fifo(q) => q.put(v).await,
                Q::Lifo(q) => q.put(v).await,
                Q::Prio(q) => q.put(v).await,
            }
        }
        async fn get(&self) -> u8 {
            match self {
                Q::Fifo(q) => q.get().await,
                Q::Lifo(q) => q.get().await,
                Q::Prio(q) => q.get().await,
            }
        }
        fn put_nowait(&self, v: u8) -> bool {
            match self {
                Q::Fifo(q) => q.put_nowait(v).is_ok(),
                Q::Lifo(q) => q.put_nowait(v).is_ok(),
                Q::Prio(q) => q.put_nowait(v).is_ok(),
            }
        }
        fn get_nowait(&self) -> Option<u8> {
            match self {
                Q::Fifo(q) => q.get_nowait().ok(),
                Q::Lifo(q) => q.get_nowait().ok(),
                Q::Prio(q) => q.get_nowait().ok(),
            }
        }
        fn qsize(&self) -> usize {
            match self {
                Q::Fifo(q) => q.qsize(),
                Q::Lifo(q) => q.qsize(),
                Q::Prio(q) => q.qsize(),
            }
        }
    }
    /// The model: what the queue holds, and which item a `get` must return.
    #[derive(Default)]
    struct Model {
        items: VecDeque<u8>,
        taken: Vec<(u8, u8)>, // (got, model said)
        put: Vec<u8>,
    }
    impl Model {
        fn push(&mut self, v: u8) {
            self.items.push_back(v);
            self.put.push(v);
        }
        fn pop(&mut self, kind: u8) -> Option<u8> {
            match kind {
                0 => self.items.pop_front(),
                1 => self.items.pop_back(),
                _ => {
                    let i = self.items.iter().enumerate().min_by_key(|&(_, v)| *v).map(|(i, _)| i)?;
                    self.items.remove(i)
                }
            }
        }
    }
    let lp = EventLoop::new_virtual();
    let q = match kind {
        0 => Q::Fifo(Queue::new(maxsize)),
        1 => Q::Lifo(LifoQueue::new(maxsize)),
        _ => Q::Prio(PriorityQueue::new(maxsize)),
    };
    let model = Rc::new(RefCell::new(Model::default()));
    let over = Rc::new(Cell::new(false));
    for op in ops {
        match op {
            QOp::Put(v) => {
                let (q, m, over, v) = (q.clone(), model.clone(), over.clone(), *v);
                lp.spawn(async move {
                    q.put(v).await;
                    m.borrow_mut().push(v);
                    over.set(over.get() || (maxsize > 0 && q.qsize() > maxsize));
                })
                .detach();
            }
            QOp::Get => {
                let (q, m) = (q.clone(), model.clone());
                lp.spawn(async move {
                    let got = q.get().await;
                    let mut m = m.borrow_mut();
                    let want = m.pop(kind).unwrap_or(u8::MAX);
                    m.taken.push((got, want));
                })
                .detach();
            }
            QOp::PutNowait(v) => {
                let full = maxsize > 0 && q.qsize() >= maxsize;
                prop_assert_eq!(q.put_nowait(*v), !full);
                if !full {
                    model.borrow_mut().push(*v);
                }
            }
            QOp::GetNowait => {
                let got = q.get_nowait();
                let mut m = model.borrow_mut();
                let want = m.pop(kind);
                prop_assert_eq!(got, want);
                if let (Some(g), Some(w)) = (got, want) {
                    m.taken.push((g, w));
                }
            }
            QOp::Run => lp.run_until_idle().unwrap(),
        }
        prop_assert_eq!(q.qsize(), model.borrow().items.len());
    }
    lp.run_until_idle().unwrap();
    let m = model.borrow();
    prop_assert_eq!(q.qsize(), m.items.len());
    for &(got, want) in &m.taken {
        prop_assert_eq!(got, want);
    }
    let mut out: Vec<u8> = m.taken.iter().map(|&(g, _)| g).chain(m.items.iter().copied()).collect();
    let mut put = m.put.clone();
    out.sort_unstable();
    put.sort_unstable();
    prop_assert_eq!(out, put, "every item put was taken or is still queued");
    proptest::prop_assert!(!over.get(), "qsize exceeded maxsize");
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]
    #[test]
    fn queues_agree_with_models_under_contention(
        kind in 0u8..3,
        maxsize in 0usize..5,
        ops in proptest::collection::vec(qop(), 1..if cfg!(miri) { 20 } else { 120 }),
    ) {
        queue_agrees_with_model(kind, maxsize, &ops)?;
    }
}
