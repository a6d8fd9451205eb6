//! asyncio basics, task 1: print 1–5 from two tasks, one second apart, interleaved.
//!
//! ```text
//! cargo run --example numbers_two_tasks -- --fast
//! ```
//!
//! # What to look for
//! 1. `Thread-1 → 1`, `Thread-2 → 1`, `Thread-1 → 2`, ...: each task pauses at its
//!    `sleep`, and the loop runs the other (the names say "Thread", but it is one thread).
//! 2. The two sleeps of a round end at the same instant; the one scheduled first fires
//!    first (E3), so the order never changes from run to run.
//! 3. Five rounds of 1 s: 5 s of loop time in all.
//!
//! # The same program in asyncio
//! ```text
//! async def numbers(name):
//!     for i in range(1, 6):
//!         print(f"{name} → {i}")
//!         await asyncio.sleep(1)
//! async def main():
//!     await asyncio.gather(asyncio.create_task(numbers("Thread-1")),
//!                          asyncio.create_task(numbers("Thread-2")))
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "numbers_two_tasks", usage: "", positional: &[], options: &[] };

async fn numbers(out: Out, name: &'static str) {
    for i in 1..=5 {
        writeln!(out, "{name} → {i}");
        looplab::sleep(Duration::from_secs(1)).await;
    }
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let t1 = h.spawn_named("Thread-1", numbers(o.clone(), "Thread-1"));
        let t2 = h.spawn_named("Thread-2", numbers(o.clone(), "Thread-2"));
        // What `gather(t1, t2)` waits for: both (gather itself comes with the combinators).
        let _ = t1.await;
        let _ = t2.await;
    })?;
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
