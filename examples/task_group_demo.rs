//! The asyncio guide's "gather vs TaskGroup": the same three children, two ways, then what a
//! task group does when a child fails.
//!
//! Each child sleeps 1 s and returns `n * 2`. `gather` and `task_group` both give `[2, 4, 6]`
//! after 1 s. The difference shows on failure: a task group *cancels the other children*
//! (and its own body) and returns every error together; a fail-fast `gather` leaves them
//! running (see `gather_errors`).
//!
//! ```text
//! cargo run --example task_group_demo -- --fast --table
//! ```
//!
//! # What to look for
//! 1. Both ways take 1.0 s of loop time: the children run concurrently either way.
//! 2. With the task group, `result()` is read *after* the group returned: every child has
//!    finished by then (asyncio: "tasks completed when exiting context").
//! 3. On failure (at 0.5 s) the two sleeping siblings are cancelled in spawn order, their
//!    cleanup runs at 0.5 s, and the group returns `TaskGroupError` with the one error
//!    (DESIGN.md §11). `--table` shows them CANCELLED with 0.5 s of life.
//! 4. The body's line after the spawns never prints: the body is cancelled too.
//! 5. The failing child's error is not reported as "never retrieved" (K4): the group's
//!    done-callback reads it with `task_exception`, as asyncio's TaskGroup calls
//!    `task.exception()`. `--lints` confirms: none.
//!
//! # The same program in asyncio
//! ```text
//! async def task(n): await asyncio.sleep(1); return n * 2
//! async def with_gather(): return await asyncio.gather(task(1), task(2), task(3))
//! async def with_taskgroup():
//!     async with asyncio.TaskGroup() as group:
//!         t1 = group.create_task(task(1)); t2 = ...(task(2)); t3 = ...(task(3))
//!     return [t1.result(), t2.result(), t3.result()]
//! ```

use std::time::Duration;

use looplab::combinators::{gather, task_group};
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "task_group_demo", usage: "", positional: &[], options: &[] };

/// What the failing child panics with; `main`'s panic hook recognises it.
const FAILURE: &str = "ValueError: n must be positive";

/// Prints when a child's future is dropped before it finished (its cleanup).
struct Cleanup(Out, u64, bool);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.2 {
            let t = looplab::get_running_loop().map_or(0.0, |lp| lp.time().as_secs_f64());
            writeln!(self.0, "    task({}) cancelled at {t:.1}s, cleanup ran", self.1);
        }
    }
}

async fn task(out: Out, n: u64) -> u64 {
    let mut guard = Cleanup(out, n, false);
    if n == 0 {
        looplab::sleep(Duration::from_millis(500)).await;
        guard.2 = true;
        panic!("{FAILURE}");
    }
    looplab::sleep(Duration::from_secs(1)).await;
    guard.2 = true;
    n * 2
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let secs = |h: &looplab::LoopHandle| h.time().as_secs_f64();
        let start = secs(&h);
        let results = gather((1..=3).map(|n| task(o.clone(), n))).await.expect("no child fails");
        writeln!(o, "with_gather:    {results:?} after {:.1}s", secs(&h) - start);

        let start = secs(&h);
        let o2 = o.clone();
        let (mut t1, mut t2, mut t3) = task_group(|g| async move {
            let spawn = |n| g.spawn(task(o2.clone(), n)).expect("the group is open");
            (spawn(1), spawn(2), spawn(3))
        })
        .await
        .expect("no child fails");
        let results = [t1.result(), t2.result(), t3.result()].map(|r| r.expect("finished"));
        writeln!(o, "with_taskgroup: {results:?} after {:.1}s", secs(&h) - start);

        writeln!(o, "a task group with a failing child, at {:.1}s:", secs(&h));
        let start = secs(&h);
        let o3 = o.clone();
        let outcome = task_group(|g| async move {
            let spawn = |n| g.spawn(task(o3.clone(), n)).expect("the group is open");
            let _children = (spawn(1), spawn(0), spawn(3));
            looplab::sleep(Duration::from_secs(2)).await;
            writeln!(o3, "    body: after the children (never printed)");
        })
        .await;
        match outcome {
            Ok(()) => writeln!(o, "  the group succeeded (unexpected)"),
            Err(e) => {
                writeln!(o, "  after {:.1}s: {e}", secs(&h) - start);
                for err in &e.errors {
                    writeln!(o, "    - {err}");
                }
            }
        }
    })?;
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<String>().map(String::as_str) != Some(FAILURE) {
            default(info); // only this example's expected failure is silent
        }
    }));
    cli::main(&SPEC, run)
}
