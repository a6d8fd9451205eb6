//! asyncio basics, example 1: three jobs started with `create_task`, then awaited.
//!
//! Job-A takes 2 s, Job-B 1 s, Job-C 3 s. All three start at t=0 and the whole program
//! takes 3 s of loop time, not 6: while one job sleeps, the loop runs the others.
//! `memory_walkthrough` shows the same program with the loop's state at each step.
//!
//! ```text
//! cargo run --example jobs_create_task -- --fast --timeline
//! ```
//!
//! # What to look for
//! 1. "started" lines come in spawn order (FIFO ready queue, E1); "finished" lines in
//!    deadline order (E3): B, A, C.
//! 2. `main` awaits t1 first, yet Job-B finishes before Job-A: awaiting a task does not make
//!    it run sooner, it only waits for it.
//! 3. The last line prints the loop time: 3.000s.
//!
//! # The same program in asyncio
//! ```text
//! async def do_work(name, seconds):
//!     print(f"{name} started (will take {seconds}s)")
//!     await asyncio.sleep(seconds)
//!     print(f"{name} finished")
//!     return f"{name}-result"
//! async def main():
//!     t1 = asyncio.create_task(do_work("Job-A", 2)); t2 = ...("Job-B", 1); t3 = ...("Job-C", 3)
//!     await t1; await t2; await t3
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "jobs_create_task", usage: "", positional: &[], options: &[] };

async fn do_work(out: Out, name: &'static str, seconds: u64) -> String {
    writeln!(out, "{name} started (will take {seconds}s)");
    looplab::sleep(Duration::from_secs(seconds)).await;
    writeln!(out, "{name} finished");
    format!("{name}-result")
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    let results = lp.run_until_complete(async move {
        let t1 = h.spawn_named("Job-A", do_work(o.clone(), "Job-A", 2));
        let t2 = h.spawn_named("Job-B", do_work(o.clone(), "Job-B", 1));
        let t3 = h.spawn_named("Job-C", do_work(o.clone(), "Job-C", 3));
        [t1.await, t2.await, t3.await].map(|r| r.expect("jobs do not fail"))
    })?;
    writeln!(out, "results: {results:?}");
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
