//! looplab's coordination primitives beside tokio's, in the same run.
//!
//! Run: `cargo bench --bench coord`. Each workload runs as a spawned task on a
//! single-threaded runtime: looplab's `EventLoop` (real clock) and tokio's current_thread
//! runtime with the `tokio::sync` equivalent. Best of 3 runs each; the ratio is
//! looplab / tokio (below 1.0: looplab is faster).
//!
//! 1. 1,000,000 uncontended lock/unlock pairs (`sync::Lock` vs `tokio::sync::Mutex<()>`).
//! 2. 1,000,000 items through a bounded queue (1024), 4 producers and 4 consumers
//!    (`Queue` vs `tokio::sync::mpsc` with the receiver shared behind a `tokio::sync::Mutex`,
//!    tokio's MPMC recipe).
//! 3. `gather` of 100,000 trivial tasks vs spawning 100,000 tokio tasks and awaiting each
//!    `JoinHandle` in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use looplab::{EventLoop, Queue, sync::Lock};

const LOCKS: usize = 1_000_000;
const ITEMS: usize = 1_000_000;
const SIDES: usize = 4;
const TASKS: usize = 100_000;

fn best<F: FnMut() -> Duration>(mut f: F) -> Duration {
    (0..3).map(|_| f()).min().expect("three runs")
}

fn looplab_run<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F) -> Duration {
    let lp = EventLoop::new();
    let fut = f();
    let t = Instant::now();
    lp.run_until_complete(async move { looplab::spawn(fut).await.expect("bench task") }).expect("loop");
    t.elapsed()
}

fn tokio_run<F: Future<Output = ()> + 'static + Send>(f: impl FnOnce() -> F) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let fut = f();
    let t = Instant::now();
    rt.block_on(async move { tokio::spawn(fut).await.expect("bench task") });
    t.elapsed()
}

fn lock_looplab() -> Duration {
    looplab_run(|| async {
        let lock = Lock::new();
        for _ in 0..LOCKS {
            drop(std::hint::black_box(lock.acquire().await));
        }
    })
}

fn lock_tokio() -> Duration {
    tokio_run(|| async {
        let m = tokio::sync::Mutex::new(());
        for _ in 0..LOCKS {
            drop(std::hint::black_box(m.lock().await));
        }
    })
}

fn queue_looplab() -> Duration {
    looplab_run(|| async {
        let q: Queue<usize> = Queue::new(1024);
        let mut tasks = Vec::new();
        for p in 0..SIDES {
            let q = q.clone();
            tasks.push(looplab::spawn(async move {
                for i in 0..ITEMS / SIDES {
                    q.put(p * ITEMS + i).await;
                }
                0usize
            }));
        }
        for _ in 0..SIDES {
            let q = q.clone();
            tasks.push(looplab::spawn(async move {
                let mut sum = 0usize;
                for _ in 0..ITEMS / SIDES {
                    sum = sum.wrapping_add(q.get().await);
                }
                sum
            }));
        }
        for t in tasks {
            std::hint::black_box(t.await.expect("queue task"));
        }
    })
}

fn queue_tokio() -> Duration {
    tokio_run(|| async {
        let (tx, rx) = tokio::sync::mpsc::channel::<usize>(1024);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let mut tasks = Vec::new();
        for p in 0..SIDES {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..ITEMS / SIDES {
                    tx.send(p * ITEMS + i).await.expect("open");
                }
                0usize
            }));
        }
        drop(tx);
        for _ in 0..SIDES {
            let rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                let mut sum = 0usize;
                for _ in 0..ITEMS / SIDES {
                    let v = rx.lock().await.recv().await.expect("item");
                    sum = sum.wrapping_add(v);
                }
                sum
            }));
        }
        for t in tasks {
            std::hint::black_box(t.await.expect("queue task"));
        }
    })
}

fn gather_looplab() -> Duration {
    looplab_run(|| async {
        let out = looplab::gather((0..TASKS).map(|i| async move { i })).await.expect("gather");
        assert_eq!(out.len(), TASKS);
    })
}

fn gather_tokio() -> Duration {
    tokio_run(|| async {
        let handles: Vec<_> = (0..TASKS).map(|i| tokio::spawn(async move { i })).collect();
        let mut n = 0;
        for h in handles {
            std::hint::black_box(h.await.expect("task"));
            n += 1;
        }
        assert_eq!(n, TASKS);
    })
}

/// One benchmark row: its name, then the looplab and tokio runs.
type Row = (&'static str, fn() -> Duration, fn() -> Duration);

fn main() {
    let rows: [Row; 3] = [
        ("1M uncontended lock/unlock", lock_looplab, lock_tokio),
        ("1M items, 4 producers / 4 consumers", queue_looplab, queue_tokio),
        ("gather of 100k tasks", gather_looplab, gather_tokio),
    ];
    println!("| workload | looplab | tokio | looplab / tokio |");
    println!("|---|---:|---:|---:|");
    for (name, ours, theirs) in rows {
        let a = best(ours);
        let b = best(theirs);
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.2} |",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            a.as_secs_f64() / b.as_secs_f64()
        );
    }
}
