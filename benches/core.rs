//! Core workloads of issue 2, looplab beside tokio `current_thread` and smol's
//! `LocalExecutor`, in one run, every peer's work run as a spawned task (as asyncio runs
//! `main`). Workload names follow `../shared/PEERS.md` (W1..W6).
//!
//! Run: `cargo bench --bench core` (all), `cargo bench --bench core -- w1` (one workload),
//! `cargo bench --bench core -- --runs 5`. Prints a markdown table of per-op medians and the
//! ratio of looplab to the fastest peer (< 1.00 means looplab is faster).
//!
//! After the table, the floor of W1, W2 and W3 (PEERS.md's definitions: the same operation
//! with no runtime at all, `mod floor` below) is measured in the same rounds, interleaved
//! with the runtimes, with looplab's ratio to it: issue 2 asks for at most 3×.
//!
//! `FAULTS=1 cargo bench --bench core -- w1` also prints, on stderr, each run's time and the
//! page faults the process took during it: a runtime whose memory comes fresh from the
//! kernel in every run pays for it there (see `src/task/table.rs`).
//!
//! W6 (bytes per parked task) runs each runtime in a fresh child process (the bench binary
//! re-executed with `--w6-child RUNTIME`), so allocator state from other workloads does not
//! skew the RSS delta.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use looplab::{EventLoop, LoopFuture, TimerBackend};

const RUNTIMES: [&str; 5] = ["looplab", "looplab-heap", "looplab-traced", "tokio", "smol"];

// ------------------------------------------------------------------ runtime adapters

fn looplab_loop(rt: &str) -> EventLoop {
    let backend = if rt == "looplab-heap" { TimerBackend::Heap } else { TimerBackend::Wheel };
    let lp = EventLoop::builder().timer_backend(backend).build().unwrap();
    if rt == "looplab-traced" {
        // A sink that counts events: shows what an attached sink costs (the untraced run
        // shows that no sink costs nothing measurable).
        struct Count(u64);
        impl looplab::trace::TraceSink for Count {
            fn event(&mut self, _e: &looplab::trace::TraceEvent) {
                self.0 += 1;
            }
        }
        lp.add_trace_sink(Count(0));
    }
    lp
}

/// Run `make()` as the main task of a fresh runtime `rt` and return the seconds it took as
/// measured inside the task.
fn run_on(rt: &str, make: impl FnOnce(Kind) -> std::pin::Pin<Box<dyn Future<Output = f64>>>) -> f64 {
    match rt {
        r if r.starts_with("looplab") => {
            let lp = looplab_loop(r);
            let fut = make(Kind::Looplab(lp.handle()));
            lp.run_until_complete(fut).unwrap()
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let local = tokio::task::LocalSet::new();
            let fut = make(Kind::Tokio);
            local.block_on(&rt, async move { tokio::task::spawn_local(fut).await.unwrap() })
        }
        "smol" => {
            let ex = Rc::new(async_executor::LocalExecutor::new());
            let fut = make(Kind::Smol(ex.clone()));
            let task = ex.spawn(fut);
            async_io::block_on(ex.run(task))
        }
        _ => unreachable!(),
    }
}

/// Which runtime a workload body is running on, with what it needs to spawn and sleep.
#[derive(Clone)]
enum Kind {
    Looplab(looplab::LoopHandle),
    Tokio,
    Smol(Rc<async_executor::LocalExecutor<'static>>),
}

/// A join handle of any of the three.
enum Join<T> {
    L(looplab::Task<T>),
    T(tokio::task::JoinHandle<T>),
    S(async_executor::Task<T>),
}

impl<T: 'static> Join<T> {
    async fn join(self) -> T {
        match self {
            Join::L(t) => t.await.unwrap(),
            Join::T(t) => t.await.unwrap(),
            Join::S(t) => t.await,
        }
    }
}

impl Kind {
    fn spawn<F: Future + 'static>(&self, f: F) -> Join<F::Output> {
        match self {
            Kind::Looplab(lp) => Join::L(lp.spawn(f)),
            Kind::Tokio => Join::T(tokio::task::spawn_local(f)),
            Kind::Smol(ex) => Join::S(ex.spawn(f)),
        }
    }
    async fn yield_now(&self) {
        match self {
            Kind::Looplab(_) => looplab::yield_now().await,
            Kind::Tokio => tokio::task::yield_now().await,
            Kind::Smol(_) => futures_lite::future::yield_now().await,
        }
    }
    /// Spawn a task that is just the runtime's own sleep future (as asyncio's
    /// `create_task(asyncio.sleep(d))`), so no runtime's task carries another's future type.
    fn spawn_sleep(&self, d: Duration) -> Join<()> {
        match self {
            Kind::Looplab(lp) => Join::L(lp.spawn(looplab::sleep(d))),
            Kind::Tokio => Join::T(tokio::task::spawn_local(tokio::time::sleep(d))),
            Kind::Smol(ex) => Join::S(ex.spawn(async move {
                async_io::Timer::after(d).await;
            })),
        }
    }
    async fn sleep(&self, d: Duration) {
        match self {
            Kind::Looplab(_) => looplab::sleep(d).await,
            Kind::Tokio => tokio::time::sleep(d).await,
            Kind::Smol(_) => {
                async_io::Timer::after(d).await;
            }
        }
    }
}

// ------------------------------------------------------------------ workloads

/// splitmix64 durations, as `asyncio_peers.py` makes them (seeded, in microseconds).
fn durations(n: usize, seed: u64, base_us: u64, span_us: u64) -> Vec<Duration> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            Duration::from_micros(base_us + z % (span_us + 1))
        })
        .collect()
}

/// Spawn `n` trivial tasks, then await each handle in spawn order. Each runtime's own
/// spawn and join handle, in a `Vec` of that handle (as W2 does for `yield_now`: a shared
/// `Join` enum and `async fn join` wrapper around all three would add the same 24-byte
/// element and wrapper future to every peer's join and hide part of what is measured).
fn w1_spawn_join(k: Kind, n: usize) -> std::pin::Pin<Box<dyn Future<Output = f64>>> {
    Box::pin(async move {
        let t = Instant::now();
        let s = match &k {
            Kind::Looplab(lp) => spawn_all_then_join(n, |i| lp.spawn(async move { i }), |r| r.unwrap()).await,
            Kind::Tokio => spawn_all_then_join(n, |i| tokio::task::spawn_local(async move { i }), |r| r.unwrap()).await,
            Kind::Smol(ex) => spawn_all_then_join(n, |i| ex.spawn(async move { i }), |v| v).await,
        };
        assert_eq!(s, n * (n - 1) / 2);
        t.elapsed().as_secs_f64()
    })
}

/// W1's body for one runtime's handle type `H` (generic, so each runtime gets its own
/// monomorphized copy with no dispatch): spawn `n`, then await them in order and sum.
async fn spawn_all_then_join<H: Future>(
    n: usize,
    spawn: impl Fn(usize) -> H,
    value: impl Fn(H::Output) -> usize,
) -> usize {
    let tasks: Vec<H> = (0..n).map(spawn).collect();
    let mut s = 0usize;
    for tk in tasks {
        s += value(tk.await);
    }
    s
}

/// Two tasks yielding in turn. Each task's loop awaits its runtime's own `yield_now`
/// directly (not through `Kind::yield_now`, whose dispatch would add the same wrapper future
/// to every peer's switch and hide part of what is measured).
fn w2_yield(k: Kind, n: usize) -> std::pin::Pin<Box<dyn Future<Output = f64>>> {
    Box::pin(async move {
        let per = n / 2;
        let t = Instant::now();
        let (a, b) = match &k {
            Kind::Looplab(_) => {
                let body = move || async move {
                    for _ in 0..per {
                        looplab::yield_now().await;
                    }
                };
                (k.spawn(body()), k.spawn(body()))
            }
            Kind::Tokio => {
                let body = move || async move {
                    for _ in 0..per {
                        tokio::task::yield_now().await;
                    }
                };
                (k.spawn(body()), k.spawn(body()))
            }
            Kind::Smol(_) => {
                let body = move || async move {
                    for _ in 0..per {
                        futures_lite::future::yield_now().await;
                    }
                };
                (k.spawn(body()), k.spawn(body()))
            }
        };
        a.join().await;
        b.join().await;
        t.elapsed().as_secs_f64()
    })
}

/// Ping-pong between two tasks: each round trip sends two messages. looplab completes two
/// fresh `LoopFuture`s (asyncio's Future) per round trip; tokio uses `mpsc` bound 1 and smol
/// `async-channel` bound 1 (a channel each way, reused).
fn w2_chan(k: Kind, n: usize) -> std::pin::Pin<Box<dyn Future<Output = f64>>> {
    Box::pin(async move {
        let t = Instant::now();
        match &k {
            Kind::Looplab(lp) => {
                type Pair = (LoopFuture<usize>, LoopFuture<usize>);
                let slot: Rc<Cell<Option<Pair>>> = Rc::new(Cell::new(None));
                let (req, resp) = (LoopFuture::new(lp), LoopFuture::new(lp));
                slot.set(Some((req.clone(), resp.clone())));
                let s2 = slot.clone();
                let lp2 = lp.clone();
                let echo = lp.spawn(async move {
                    let mut cur: Pair = s2.take().unwrap();
                    loop {
                        let v = cur.0.clone().await.unwrap();
                        if v == usize::MAX {
                            return;
                        }
                        let next: Pair = (LoopFuture::new(&lp2), LoopFuture::new(&lp2));
                        s2.set(Some(next.clone()));
                        cur.1.set_result(v + 1).unwrap();
                        cur = next;
                    }
                });
                let mut cur = (req, resp);
                let mut v = 0;
                for i in 0..n {
                    cur.0.set_result(i).unwrap();
                    v = cur.1.clone().await.unwrap();
                    cur = slot.take().unwrap();
                }
                assert_eq!(v, n);
                cur.0.set_result(usize::MAX).unwrap();
                echo.await.unwrap();
            }
            Kind::Tokio => {
                let (tx1, mut rx1) = tokio::sync::mpsc::channel::<usize>(1);
                let (tx2, mut rx2) = tokio::sync::mpsc::channel::<usize>(1);
                let e = tokio::task::spawn_local(async move {
                    while let Some(v) = rx1.recv().await {
                        tx2.send(v + 1).await.unwrap();
                    }
                });
                let mut v = 0;
                for i in 0..n {
                    tx1.send(i).await.unwrap();
                    v = rx2.recv().await.unwrap();
                }
                assert_eq!(v, n);
                drop(tx1);
                e.await.unwrap();
            }
            Kind::Smol(ex) => {
                let (tx1, rx1) = async_channel::bounded::<usize>(1);
                let (tx2, rx2) = async_channel::bounded::<usize>(1);
                let e = ex.spawn(async move {
                    while let Ok(v) = rx1.recv().await {
                        tx2.send(v + 1).await.unwrap();
                    }
                });
                let mut v = 0;
                for i in 0..n {
                    tx1.send(i).await.unwrap();
                    v = rx2.recv().await.unwrap();
                }
                assert_eq!(v, n);
                drop(tx1);
                e.await;
            }
        }
        t.elapsed().as_secs_f64()
    })
}

/// looplab: `call_soon(noop)` n times, then a future completed by one more `call_soon`.
/// The Rust peers have no callback queue: a detached trivial task each (as PEERS.md).
fn w3_callbacks(k: Kind, n: usize) -> std::pin::Pin<Box<dyn Future<Output = f64>>> {
    Box::pin(async move {
        let t = Instant::now();
        match &k {
            Kind::Looplab(lp) => {
                for _ in 0..n {
                    lp.call_soon(|_| {});
                }
                let fut = LoopFuture::<()>::new(lp);
                let f2 = fut.clone();
                lp.call_soon(move |_| {
                    f2.set_result(()).unwrap();
                });
                fut.await.unwrap();
            }
            _ => {
                let done = Rc::new(Cell::new(0usize));
                for _ in 0..n {
                    let d = done.clone();
                    match &k {
                        Kind::Tokio => drop(tokio::task::spawn_local(async move { d.set(d.get() + 1) })),
                        Kind::Smol(ex) => ex.spawn(async move { d.set(d.get() + 1) }).detach(),
                        Kind::Looplab(_) => unreachable!(),
                    }
                }
                while done.get() < n {
                    k.yield_now().await;
                }
            }
        }
        t.elapsed().as_secs_f64()
    })
}

/// 200,000 tasks each sleeping a random 0–200 ms; the figure is the overhead beyond the
/// longest sleep.
fn w4_timers(k: Kind, ds: Rc<Vec<Duration>>) -> std::pin::Pin<Box<dyn Future<Output = f64>>> {
    Box::pin(async move {
        let t = Instant::now();
        let tasks: Vec<_> = ds.iter().map(|d| k.spawn_sleep(*d)).collect();
        for tk in tasks {
            tk.join().await;
        }
        t.elapsed().as_secs_f64()
    })
}

/// 200,000 timers inserted then cancelled. looplab: `call_later` + `cancel` (asyncio's
/// `w4_cancel`); the Rust peers have no callback timers: a `Sleep` polled once then dropped.
fn w4_cancel(k: Kind, ds: Rc<Vec<Duration>>) -> std::pin::Pin<Box<dyn Future<Output = f64>>> {
    Box::pin(async move {
        let t = Instant::now();
        match &k {
            Kind::Looplab(lp) => {
                let hs: Vec<_> = ds.iter().map(|d| lp.call_later(*d, |_| {})).collect();
                for h in &hs {
                    h.cancel();
                }
                looplab::yield_now().await;
            }
            Kind::Tokio => {
                let mut sleeps: Vec<_> = ds.iter().map(|d| Box::pin(tokio::time::sleep(*d))).collect();
                // Poll each once so it registers with the driver, then drop (= cancel).
                futures_lite::future::poll_fn(|cx| {
                    for s in sleeps.iter_mut() {
                        let _ = s.as_mut().poll(cx);
                    }
                    std::task::Poll::Ready(())
                })
                .await;
                drop(sleeps);
                tokio::task::yield_now().await;
            }
            Kind::Smol(_) => {
                let mut timers: Vec<_> = ds.iter().map(|d| async_io::Timer::after(*d)).collect();
                futures_lite::future::poll_fn(|cx| {
                    for s in timers.iter_mut() {
                        let _ = std::pin::Pin::new(&mut *s).poll(cx);
                    }
                    std::task::Poll::Ready(())
                })
                .await;
                drop(timers);
                futures_lite::future::yield_now().await;
            }
        }
        t.elapsed().as_secs_f64()
    })
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// Child process: spawn n tasks parked on a 1 h sleep, poll each once, print the RSS delta.
fn w6_child(rt: &str, n: usize) {
    let out = run_on(rt, |k| {
        Box::pin(async move {
            k.sleep(Duration::from_millis(20)).await;
            let before = rss_bytes();
            let tasks: Vec<_> = (0..n).map(|_| k.spawn_sleep(Duration::from_secs(3600))).collect();
            k.yield_now().await;
            k.sleep(Duration::from_millis(20)).await;
            let after = rss_bytes();
            std::mem::forget(tasks);
            (after.saturating_sub(before)) as f64 / n as f64
        })
    });
    println!("{out}");
    std::process::exit(0);
}

fn w6(rt: &str) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe).args(["--w6-child", rt]).output().expect("re-run bench for w6");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(f64::NAN)
}

// ------------------------------------------------------------------ driver

/// Page faults this process has taken so far (`getrusage`), for `FAULTS=1`.
fn minflt() -> i64 {
    // SAFETY: `rusage` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a live, writable `rusage`; RUSAGE_SELF is a valid `who`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_minflt
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--w6-child") {
        w6_child(&args[i + 1], 100_000);
    }
    let runs: usize = args.iter().position(|a| a == "--runs").map(|i| args[i + 1].parse().unwrap()).unwrap_or(3);
    let filter: Vec<&String> = args.iter().filter(|a| a.starts_with('w')).collect();
    // `--only RUNTIME`: run one runtime (for profiling); the ratio column is then meaningless.
    let only: Option<String> = args.iter().position(|a| a == "--only").map(|i| args[i + 1].clone());
    let want = |w: &str| filter.is_empty() || filter.iter().any(|f| w.starts_with(f.as_str()));

    let ds_timers = Rc::new(durations(200_000, 42, 0, 200_000));
    let max_sleep = ds_timers.iter().max().unwrap().as_secs_f64();
    let ds_cancel = Rc::new(durations(200_000, 43, 10_000_000, 200_000));

    type Work = Box<dyn Fn(Kind) -> std::pin::Pin<Box<dyn Future<Output = f64>>>>;
    let workloads: Vec<(&str, &str, usize, Work)> = vec![
        ("w1_spawn_join", "ns/task", 1_000_000, Box::new(|k| w1_spawn_join(k, 1_000_000))),
        ("w2_yield", "ns/switch", 1_000_000, Box::new(|k| w2_yield(k, 1_000_000))),
        ("w2_chan", "ns/round trip", 500_000, Box::new(|k| w2_chan(k, 500_000))),
        ("w3_callbacks", "ns/callback", 1_000_000, Box::new(|k| w3_callbacks(k, 1_000_000))),
        ("w4_timers", "ns/timer overhead", 200_000, {
            let ds = ds_timers.clone();
            Box::new(move |k| w4_timers(k, ds.clone()))
        }),
        ("w4_cancel", "ns/insert+cancel", 200_000, {
            let ds = ds_cancel.clone();
            Box::new(move |k| w4_cancel(k, ds.clone()))
        }),
    ];

    println!("| workload (unit) | {} | looplab / fastest peer |", RUNTIMES.join(" | "));
    println!("|---|{}---:|", "---:|".repeat(RUNTIMES.len()));
    // PEERS.md's floor for three workloads (`mod floor`): (workload, row label, the floor).
    /// (workload it is the floor of, row label, the floor)
    type Floor = (&'static str, &'static str, fn(usize) -> f64);
    let floors: [Floor; 4] = [
        ("w1_spawn_join", "w1_spawn_join", floor::spawn_poll),
        ("w2_yield", "w2_yield", floor::switch),
        ("w3_callbacks", "w3_callbacks (no-op closures, as W3's)", floor::callbacks),
        ("w3_callbacks", "w3_callbacks (closures capturing an Rc)", floor::callbacks_capturing),
    ];
    let mut floor_rows: Vec<(&str, f64, f64)> = Vec::new();
    let faults = std::env::var_os("FAULTS").is_some();
    for (name, unit, n, work) in &workloads {
        if !want(name) {
            continue;
        }
        let mine: Vec<&Floor> = floors.iter().filter(|f| f.0 == *name).collect();
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); RUNTIMES.len()];
        let mut floor_samples: Vec<Vec<f64>> = vec![Vec::new(); mine.len()];
        for _ in 0..runs {
            // Interleaved: one run of each runtime (and of the floor) per round, so drift
            // hits all alike.
            for (i, rt) in RUNTIMES.iter().enumerate() {
                if only.as_deref().is_some_and(|o| o != *rt) {
                    samples[i].push(f64::NAN);
                    continue;
                }
                let f0 = if faults { minflt() } else { 0 };
                let secs = run_on(rt, |k| work(k));
                if faults {
                    eprintln!("{name} {rt} {:.1} ns faults {}", secs * 1e9 / *n as f64, minflt() - f0);
                }
                let secs = if *name == "w4_timers" { (secs - max_sleep).max(0.0) } else { secs };
                samples[i].push(secs * 1e9 / *n as f64);
            }
            for (j, f) in mine.iter().enumerate() {
                floor_samples[j].push((f.2)(*n));
            }
        }
        let med: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
        print_row(name, unit, &med);
        for (j, f) in mine.iter().enumerate() {
            floor_rows.push((f.1, median(&mut floor_samples[j]), med[0]));
        }
    }
    if !floor_rows.is_empty() {
        println!(
            "\n| floor (no runtime, PEERS.md's definitions, interleaved with the runs above) | floor ns/op | looplab ns/op | looplab / floor |"
        );
        println!("|---|---:|---:|---:|");
        for (label, fl, ours) in floor_rows {
            println!("| {label} | {fl:.1} | {ours:.1} | {:.2} |", ours / fl);
        }
    }
    if want("w4_queue") {
        println!("\n| timer queues alone: 200k timers inserted, then expired | wheel | heap | wheel / heap |");
        println!("|---|---:|---:|---:|");
        // 1 ms at a time, as a loop on the real clock woken every millisecond would; then
        // deadline by deadline, as the virtual clock jumps (each expire fires one timer).
        for (label, each) in
            [("w4_queue, 1 ms at a time (ns/timer)", false), ("w4_queue, deadline by deadline (ns/timer)", true)]
        {
            let (mut wheel, mut heap) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                wheel.push(timer_queue(&mut looplab::timer::TimerWheel::new(), &ds_timers, each));
                let mut h = looplab::timer::TimerHeap::new(looplab::timer::TieOrder::Fifo);
                heap.push(timer_queue(&mut h, &ds_timers, each));
            }
            let (w, h) = (median(&mut wheel), median(&mut heap));
            println!("| {label} | {w:.0} | {h:.0} | {:.2} |", w / h);
        }
    }
    if want("w6_parked_mem") {
        let med: Vec<f64> = RUNTIMES.iter().map(|rt| w6(rt)).collect();
        print_row("w6_parked_mem", "bytes/task", &med);
    }
}

// ------------------------------------------------------------------ the floor

/// PEERS.md's floor, measured in this run on this machine: what the hardware allows for the
/// three operations issue 2 compares with it, with no runtime at all. Each is the shape of
/// its workload with everything else taken away.
mod floor {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Instant;

    type BoxFut = Pin<Box<dyn Future<Output = usize>>>;

    /// W1's floor: "trivial future polled from a slab through a queue of indices, no-op
    /// waker". All `n` are spawned (boxed into a slab, index queued) before any is polled, as
    /// in W1, so the same number of futures is alive at once; then each is polled once, its
    /// output summed and its slot freed. Returns ns per task.
    pub fn spawn_poll(n: usize) -> f64 {
        let t = Instant::now();
        let mut slab: slab::Slab<BoxFut> = slab::Slab::new();
        let mut queue = VecDeque::new();
        for i in 0..n {
            queue.push_back(slab.insert(Box::pin(async move { i })));
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut sum = 0;
        while let Some(k) = queue.pop_front() {
            if let Poll::Ready(v) = slab[k].as_mut().poll(&mut cx) {
                sum += v;
                drop(slab.remove(k));
            }
        }
        assert_eq!(sum, n * (n - 1) / 2);
        t.elapsed().as_secs_f64() * 1e9 / n as f64
    }

    thread_local! {
        static QUEUE: RefCell<VecDeque<usize>> = const { RefCell::new(VecDeque::new()) };
    }

    /// A real waker that re-queues its task's index.
    struct Requeue(usize);
    impl Wake for Requeue {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            QUEUE.with(|q| q.borrow_mut().push_back(self.0));
        }
    }

    /// Returns `Pending` once after waking itself.
    struct YieldOnce(bool);
    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// W2's floor: "one task switch with a real waker that re-queues the task index": two
    /// tasks in a slab, each yielding `n / 2` times. Returns ns per switch.
    pub fn switch(n: usize) -> f64 {
        let per = n / 2;
        type Unit = Pin<Box<dyn Future<Output = ()>>>;
        let mut tasks: Vec<(Unit, Waker)> = (0..2)
            .map(|i| {
                let fut: Unit = Box::pin(async move {
                    for _ in 0..per {
                        YieldOnce(false).await;
                    }
                });
                (fut, Waker::from(Arc::new(Requeue(i))))
            })
            .collect();
        let t = Instant::now();
        QUEUE.with(|q| q.borrow_mut().extend([0, 1]));
        while let Some(i) = QUEUE.with(|q| q.borrow_mut().pop_front()) {
            let (fut, waker) = &mut tasks[i];
            let _ = fut.as_mut().poll(&mut Context::from_waker(waker));
        }
        t.elapsed().as_secs_f64() * 1e9 / n as f64
    }

    /// W3's floor: "boxed closure pushed through a `VecDeque` and called (1M queued)". The
    /// closures are no-ops, as W3's are (a capture-less closure boxes without allocating).
    /// Returns ns per callback.
    pub fn callbacks(n: usize) -> f64 {
        let t = Instant::now();
        let mut q: VecDeque<Box<dyn FnOnce()>> = VecDeque::new();
        for _ in 0..n {
            q.push_back(Box::new(|| {}));
        }
        let mut called = 0;
        while let Some(f) = q.pop_front() {
            f();
            called += 1;
        }
        assert_eq!(called, n);
        t.elapsed().as_secs_f64() * 1e9 / n as f64
    }

    /// The same with closures that capture an `Rc` (so each box allocates): this reproduces
    /// PEERS.md's 38–50 ns figure for its floor, which the no-op version does not.
    pub fn callbacks_capturing(n: usize) -> f64 {
        let t = Instant::now();
        let count = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let mut q: VecDeque<Box<dyn FnOnce()>> = VecDeque::new();
        for _ in 0..n {
            let c = count.clone();
            q.push_back(Box::new(move || c.set(c.get() + 1)));
        }
        while let Some(f) = q.pop_front() {
            f();
        }
        assert_eq!(count.get(), n);
        t.elapsed().as_secs_f64() * 1e9 / n as f64
    }
}

// ------------------------------------------------------------------ the timer queues alone

/// The two timer backends with nothing around them: `n` timers inserted at random deadlines
/// (0–200 ms, W4's durations), then expired either by a clock that advances 1 ms at a time,
/// as a loop woken every millisecond would, or (`each`) deadline by deadline, as the virtual
/// clock jumps: one expire per timer, most of them inside a tick that still holds hundreds
/// of later ones. Returns ns per timer (insert + expire). W4's wall-clock overhead is mostly
/// spawning and first polls, so this is where the backends' own cost shows.
fn timer_queue(queue: &mut dyn looplab::timer::TimerQueue<u32>, ds: &[Duration], each: bool) -> f64 {
    let t = Instant::now();
    for (i, d) in ds.iter().enumerate() {
        queue.insert(d.as_nanos() as u64, i as u64 + 1, i as u32);
    }
    let mut out = Vec::new();
    let mut fired = 0;
    let mut now = 0;
    while !queue.is_empty() {
        now = if each { queue.next_deadline().unwrap_or(now) } else { now + 1_000_000 };
        queue.expire(now, &mut out);
        fired += out.len();
        out.clear();
    }
    assert_eq!(fired, ds.len());
    t.elapsed().as_secs_f64() * 1e9 / ds.len() as f64
}

fn print_row(name: &str, unit: &str, med: &[f64]) {
    let fastest_peer = med[3].min(med[4]);
    let cells: Vec<String> = med.iter().map(|v| format!("{v:.0}")).collect();
    println!("| {name} ({unit}) | {} | {:.2} |", cells.join(" | "), med[0] / fastest_peer);
}
