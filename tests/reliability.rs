//! Hardening: stress, leaks, load, faults and bad input (issue 7). `RELIABILITY.md` lists each
//! test with its figures and the command that runs it.
//!
//! Three kinds of test live here:
//! - **stress and leak tests** run with every `cargo test`, and (scaled down) under Miri;
//! - **fault tests** inject panics, SIGKILLs, connection resets, clock jumps and cross-thread
//!   stops, then check that the loop, the pools and the other tasks keep working;
//! - **load tests** are `#[ignore]`d (they need a release build and a minute or more):
//!   `cargo test --release --test reliability -- --ignored --nocapture --test-threads=1`
//!   (`scripts/load.sh`). They assert counts and checksums and print durations and memory.
//!
//! No test sleeps or asserts a duration. A lost wake-up cannot hang a test: every loop here
//! runs with deadlock detection (DESIGN.md section 5), so a task that nobody will ever wake
//! ends the run with `LoopError::Deadlock` naming it.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use looplab::{EventLoop, LoopError, LoopFuture, get_running_loop, sleep, yield_now};

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
