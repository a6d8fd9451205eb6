//! The asyncio guide's "working with blocking code": `to_thread`, `run_in_executor` with a
//! thread pool, and a process pool for CPU-bound work, all awaited on the loop.
//!
//! A blocking call (`std::thread::sleep`, asyncio's `time.sleep`) would freeze every task on
//! the loop. Handed to a pool, it runs on another thread while the loop goes on; its result
//! comes back through `call_soon_threadsafe` and wakes the awaiting task. CPU-bound work
//! goes to worker *processes* (`run_in_process`), which call a registered function by name.
//!
//! ```text
//! cargo run --example executors -- --fast --trace
//! ```
//!
//! The process pool re-runs this program as its workers, so `main` calls
//! `registry().run_worker_if_child()` before anything else (Python's
//! `if __name__ == "__main__":` guard).
//!
//! # What to look for
//! 1. While a pool job is in flight, the virtual clock does not jump (R3): the loop cannot
//!    know when the thread will finish, so it waits for it as the real clock would. The
//!    loop time printed stays 0.0 s under `--fast`; the blocking part is short there.
//! 2. `--trace` shows each result arriving as `woken by Remote`: a completion from another
//!    thread goes through the inbox and the bell (R1, R2, X2).
//! 3. The two `run_in_executor` jobs on a 2-thread pool run at the same time; `gather`
//!    returns their results in argument order (G1).
//! 4. The CPU-bound sum runs in a process other than this one (the pids differ) and gives
//!    the exact value of sum(i² for i < 1,000,000).
//!
//! # The same program in asyncio
//! ```text
//! def blocking_operation(): time.sleep(2); return "Blocking done"
//! def cpu_bound_task(n): return sum(i ** 2 for i in range(n))
//! async def main():
//!     print(await asyncio.to_thread(blocking_operation))
//!     with concurrent.futures.ProcessPoolExecutor() as pool:
//!         print(await asyncio.get_running_loop().run_in_executor(pool, cpu_bound_task, 1_000_000))
//! ```

use std::time::Duration;

use looplab::combinators::gather;
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};
use looplab::pool::{ProcessPool, Registry, ThreadPool};

/// The command line.
pub const SPEC: Spec = Spec { name: "executors", usage: "", positional: &[], options: &[] };

/// asyncio guide: `cpu_bound_task(n)`, the sum of `i²` for `i < n`; with the worker's pid.
fn cpu_bound_task(n: u64) -> (u64, u32) {
    ((0..n).map(|i| i * i).sum(), std::process::id())
}

/// The functions the worker processes can run, by name.
pub fn registry() -> Registry {
    Registry::new().register("cpu_bound_task", cpu_bound_task)
}

/// asyncio guide: `blocking_operation()`, `time.sleep(2)` then a result.
fn blocking_operation(pause: Duration, what: &'static str) -> String {
    std::thread::sleep(pause);
    format!("{what} done")
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    // The blocking pause is real even on the virtual clock: keep it short under --fast.
    let pause = if args.fast { Duration::from_millis(20) } else { Duration::from_secs(2) };
    let threads = ThreadPool::new(2).map_err(|e| std::io::Error::other(e.to_string()))?;
    let processes = ProcessPool::new(2, registry()).map_err(|e| std::io::Error::other(e.to_string()))?;
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let t = |h: &looplab::LoopHandle| format!("{:.1}s", h.time().as_secs_f64());
        let r = looplab::to_thread(move || blocking_operation(pause, "Blocking")).await;
        writeln!(o, "to_thread:        {} at loop time {}", r.expect("the thread job runs"), t(&h));

        let jobs = ["job A", "job B"].map(|what| h.run_in_executor(&threads, move || blocking_operation(pause, what)));
        let results = gather(jobs).await.expect("both jobs run");
        let results: Vec<String> = results.into_iter().map(|r| r.expect("no job panics")).collect();
        writeln!(o, "run_in_executor:  {results:?} at loop time {}", t(&h));

        let (sum, pid) = h
            .run_in_process::<u64, (u64, u32)>(&processes, "cpu_bound_task", 1_000_000)
            .await
            .expect("the worker runs");
        writeln!(o, "run_in_process:   Result: {sum} (in another process: {})", pid != std::process::id());
        let n: u64 = 1_000_000;
        writeln!(o, "                  check: (n-1)·n·(2n-1)/6 = {}", (n - 1) * n * (2 * n - 1) / 6);
    })?;
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    // The process pool re-runs this program as its workers: they stop here.
    registry().run_worker_if_child();
    cli::main(&SPEC, run)
}
