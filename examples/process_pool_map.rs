//! The concurrency guide's process pool: `map`, `apply_async`/`get`, and many
//! `apply_async`s collected, with looplab's `ProcessPool`; then the same work awaited on
//! the loop.
//!
//! `cpu_task(n)` sums `0..n`. The pool has four worker processes (this program re-run in
//! worker mode), which find `cpu_task` by its registered *name*: a name and the encoded
//! argument are all that cross the pipe. `submit` is Python's `apply_async`, its
//! `JobFuture::result()` is `get()`; `map` returns results in input order.
//!
//! ```text
//! cargo run --example process_pool_map -- --fast
//! ```
//!
//! `main` calls `registry().run_worker_if_child()` first: in a worker it serves calls and
//! never returns (Python's `if __name__ == "__main__":` guard).
//!
//! # What to look for
//! 1. `map` yields results in the order of the inputs, whichever worker finished first; with
//!    `chunksize` 2 the four inputs travel in two frames (M1).
//! 2. `result()` blocks the calling thread: outside a loop that is fine, on a loop it would
//!    stall every task. On the loop, the same jobs are awaited with `run_in_process` and
//!    `gather` (X1, X2).
//! 3. A panic inside a worker comes back as `PoolError::Panicked`; the worker survives and
//!    the next job runs (P1).
//!
//! # The same program in Python
//! ```text
//! with Pool(processes=4) as pool:
//!     print(pool.map(cpu_task, [1_000_000, 2_000_000, 3_000_000, 4_000_000]))
//!     print(pool.apply_async(cpu_task, (1_000_000,)).get(timeout=5))
//!     print([r.get() for r in [pool.apply_async(cpu_task, (n,)) for n in (1e6, 2e6, 3e6)]])
//! ```

use std::time::Duration;

use looplab::combinators::gather;
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};
use looplab::pool::{PoolError, ProcessPool, Registry};

/// The command line.
pub const SPEC: Spec = Spec { name: "process_pool_map", usage: "", positional: &[], options: &[] };

/// The guide's `cpu_task(n)`: the sum of `0..n`. Zero is refused with a panic, to show
/// what a failing job looks like from the parent.
fn cpu_task(n: u64) -> u64 {
    assert!(n > 0, "cpu_task needs n > 0");
    (0..n).sum()
}

/// The functions worker processes can run, by name.
pub fn registry() -> Registry {
    Registry::new().register("cpu_task", cpu_task)
}

fn pool_err(e: PoolError) -> RunError {
    RunError::Io(std::io::Error::other(e.to_string()))
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let pool = ProcessPool::new(4, registry()).map_err(pool_err)?;
    let inputs = [1_000_000u64, 2_000_000, 3_000_000, 4_000_000];

    let results: Result<Vec<u64>, _> = pool.map("cpu_task", inputs, 2).map_err(pool_err)?.collect();
    writeln!(out, "map:           {:?}", results.map_err(pool_err)?);

    let mut one = pool.submit::<u64, u64>("cpu_task", 1_000_000);
    writeln!(out, "apply_async:   {}", one.result_timeout(Duration::from_secs(30)).map_err(pool_err)?);

    let many: Vec<_> = inputs[..3].iter().map(|&n| pool.submit::<u64, u64>("cpu_task", n)).collect();
    let results: Result<Vec<u64>, _> = many.into_iter().map(|f| f.result()).collect();
    writeln!(out, "many get():    {:?}", results.map_err(pool_err)?);

    match pool.submit::<u64, u64>("cpu_task", 0).result() {
        Ok(v) => writeln!(out, "cpu_task(0):   {v} (unexpected)"),
        Err(e) => writeln!(out, "cpu_task(0):   {e}"),
    }
    writeln!(out, "after a panic: {}", pool.submit::<u64, u64>("cpu_task", 10).result().map_err(pool_err)?);

    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let jobs = inputs.map(|n| h.run_in_process::<u64, u64>(&pool, "cpu_task", n));
        let results: Vec<u64> =
            gather(jobs).await.expect("no task fails").into_iter().map(|r| r.expect("workers run")).collect();
        writeln!(o, "on the loop:   {results:?} (gather of run_in_process)");
    })?;
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    // The worker's panic for n = 0 is expected: keep Rust's hook quiet for that one message.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"cpu_task needs n > 0") {
            default(info);
        }
    }));
    registry().run_worker_if_child();
    cli::main(&SPEC, run)
}
