//! The asyncio guide's cancellation demo: a worker is cancelled mid-sleep and cleans up.
//!
//! The worker reports progress every second; after 2.5 s `main` cancels it. In asyncio a
//! `CancelledError` is thrown into the worker at its `await` and a `finally:` block cleans
//! up. A Rust future cannot be resumed with an exception: looplab *drops* the worker's
//! future at its next step (K1), and dropping runs its destructors. So the cleanup lives
//! in a guard's `Drop`, and it runs exactly where asyncio's `finally` would.
//!
//! ```text
//! cargo run --example task_cancellation -- --fast --trace
//! ```
//!
//! # What to look for
//! 1. `cancel()` is a request: the worker is woken and its future dropped in a coming
//!    iteration, never inside `cancel()` itself (K1, K3). `--trace` shows
//!    `task T2 cancel requested`, then `task T2 finished: Cancelled`.
//! 2. The cleanup line comes *before* `main` learns the outcome: the awaiting task is woken
//!    only after the worker has finished (K2).
//! 3. The worker's pending sleep timer is cancelled with it (S2): the loop does not wait
//!    for it; the run ends at 2.5 s.
//!
//! # The same program in asyncio
//! ```text
//! async def worker():
//!     try:
//!         for i in itertools.count(1): print(f"working... {i}"); await asyncio.sleep(1)
//!     except asyncio.CancelledError: print("worker: cancelled, cleaning up"); raise
//!     finally: print("worker: resources released")
//! async def main():
//!     t = asyncio.create_task(worker()); await asyncio.sleep(2.5); t.cancel()
//!     try: await t
//!     except asyncio.CancelledError: print("main: worker is cancelled")
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "task_cancellation", usage: "", positional: &[], options: &[] };

/// Held by the worker while it runs; dropping it is the cleanup (asyncio's `finally`).
struct Resources {
    out: Out,
}

impl Drop for Resources {
    fn drop(&mut self) {
        let t = looplab::get_running_loop().map_or(0.0, |lp| lp.time().as_secs_f64());
        writeln!(self.out, "worker: resources released at {t:.1}s (cleanup ran)");
    }
}

async fn worker(out: Out) {
    let _resources = Resources { out: out.clone() };
    for i in 1.. {
        writeln!(out, "working... {i}");
        looplab::sleep(Duration::from_secs(1)).await;
    }
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let t = h.spawn_named("worker", worker(o.clone()));
        looplab::sleep(Duration::from_millis(2500)).await;
        writeln!(o, "main: cancelling the worker at {:.1}s", h.time().as_secs_f64());
        let requested = t.cancel();
        writeln!(o, "main: cancel() returned {requested}; state now {}", t.state());
        match t.await {
            Err(e) if e.is_cancelled() => writeln!(o, "main: worker is cancelled ({e})"),
            other => writeln!(o, "main: unexpected outcome {other:?}"),
        }
    })?;
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
