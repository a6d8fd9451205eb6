//! Pool overhead benchmark: the trivial job `x + 1` on both pools, 2 workers.
//!
//! Run: `cargo run --release --example pool_bench` (`-- --fast`: 1/20 of the jobs, for CI).
//! Compare with CPython: `python3 ../shared/peers/pool_peers.py thread|process roundtrip|map`.
//!
//! What to look for:
//! 1. Round trip (submit, then block on the result, 20,000 times in a row)
//!    is pure latency: thread wakeups for the thread pool; for the process
//!    pool also two pipe hops through the manager thread (P1).
//! 2. `map` with chunksize 1 sends one frame per job but keeps two jobs in
//!    flight per worker, so pipe latency overlaps with work.
//! 3. `map` with chunksize 1,000 sends one frame per chunk: per-job cost is
//!    then just encoding, decoding and `x + 1`. Its first run is timed the way
//!    `pool_peers.py` times CPython's: a fresh pool whose workers were started by one
//!    submitted job before the clock starts, then the map and the sum of its results
//!    (no more, no less). It is also timed right after the chunksize-1 map, where the
//!    first 8 KiB allocation pays for glibc consolidating the ~200,000 small blocks
//!    that map freed (see BENCHMARKS.md §4).
//! 4. "on the loop" rows: the same round trip awaited from a looplab task
//!    (`run_in_executor` / `run_in_process`), the result handed back with
//!    `call_soon_threadsafe` (pool/bridge.rs): the loop's share of the cost.
//!
//! The same in Python: `with ProcessPoolExecutor(2) as ex: list(ex.map(inc, range(100_000), chunksize=1000))`.

use looplab::pool::{ProcessPool, Registry, ThreadPool};
use std::time::Instant;

/// The trivial job.
fn inc(x: i64) -> i64 {
    x + 1
}

/// Prints one result line: name, jobs, total seconds, µs per job.
fn report(name: &str, n: usize, t: Instant) {
    let s = t.elapsed().as_secs_f64();
    println!("{name:<34} n={n:<7} {s:>8.3} s  {:>8.3} us/job", s / n as f64 * 1e6);
}

/// The functions the workers can run (built again for each pool).
fn registry() -> Registry {
    Registry::new().register("inc", inc)
}

/// One timed `map` of `x + 1` over `0..n`, checked, reported.
fn timed_map(pool: &ProcessPool, n: usize, chunksize: usize, label: &str) {
    let t = Instant::now();
    let sum: i64 = pool.map::<i64, i64, _>("inc", 0..n as i64, chunksize).unwrap().map(Result::unwrap).sum();
    assert_eq!(sum, (n * (n + 1) / 2) as i64);
    report(label, n, t);
}

fn main() {
    registry().run_worker_if_child(); // workers stop here; see Registry docs
    let fast = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--fast") => true,
        Some(other) => {
            eprintln!("pool_bench: unknown argument '{other}'\nusage: pool_bench [--fast]");
            std::process::exit(2);
        }
    };
    let (rt, mp) = if fast { (1_000usize, 5_000usize) } else { (20_000usize, 100_000usize) };

    let threads = ThreadPool::new(2).expect("thread pool");
    threads.submit(|| 0).result().unwrap(); // warm up
    let t = Instant::now();
    for i in 0..rt as i64 {
        assert_eq!(threads.submit(move || inc(i)).result(), Ok(i + 1));
    }
    report("thread  roundtrip", rt, t);
    let t = Instant::now();
    let sum: i64 = threads.map(inc, 0..mp as i64).map(Result::unwrap).sum();
    assert_eq!(sum, (mp * (mp + 1) / 2) as i64);
    report("thread  map", mp, t);
    let lp = looplab::EventLoop::new();
    let (threads, h) = (std::rc::Rc::new(threads), lp.handle());
    let t = Instant::now();
    let pool = threads.clone();
    lp.run_until_complete(async move {
        for i in 0..rt as i64 {
            assert_eq!(h.run_in_executor(&pool, move || inc(i)).await, Ok(i + 1));
        }
    })
    .unwrap();
    report("thread  roundtrip on the loop", rt, t);
    drop(threads);

    let procs = ProcessPool::new(2, registry()).expect("process pool");
    procs.submit::<i64, i64>("inc", 0).result().unwrap(); // warm up
    let t = Instant::now();
    for i in 0..rt as i64 {
        assert_eq!(procs.submit::<i64, i64>("inc", i).result(), Ok(i + 1));
    }
    report("process roundtrip", rt, t);
    let procs = std::rc::Rc::new(procs);
    let (p2, h) = (procs.clone(), lp.handle());
    let t = Instant::now();
    lp.run_until_complete(async move {
        for i in 0..rt as i64 {
            assert_eq!(h.run_in_process::<i64, i64>(&p2, "inc", i).await, Ok(i + 1));
        }
    })
    .unwrap();
    report("process roundtrip on the loop", rt, t);
    timed_map(&procs, mp, 1, "process map chunksize 1");
    timed_map(&procs, mp, 1000, "process map 1000 after chunksize 1");
    drop(procs);
    // As pool_peers.py: a fresh pool, its workers started by one job before timing.
    let fresh = ProcessPool::new(2, registry()).expect("process pool");
    fresh.submit::<i64, i64>("inc", 0).result().unwrap();
    timed_map(&fresh, mp, 1000, "process map 1000 first, fresh pool");
    timed_map(&fresh, mp, 1000, "process map 1000 repeated");
}
