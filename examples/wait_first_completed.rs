//! The asyncio guide's `wait(..., return_when=FIRST_COMPLETED)`: take the first result,
//! cancel the rest.
//!
//! Three tasks take 1 s, 2 s and 3 s. `wait` returns as soon as one has finished, with the
//! tasks split into `done` and `pending`; `main` cancels the pending ones and then awaits them
//! to see that they really ended.
//!
//! ```text
//! cargo run --example wait_first_completed -- --fast --table
//! ```
//!
//! # What to look for
//! 1. `wait` returns at 1.0 s with one task done and two pending. It cancels nothing itself
//!    (asyncio's `wait` does not either): the cancelling is `main`'s choice.
//! 2. `cancel()` returns true and the state is still not CANCELLED: a request that takes
//!    effect at the task's next step (K1). Awaiting the task gives `Err(Cancelled)`.
//! 3. The run ends at 1.0 s: the cancelled tasks' timers were removed with them (S2), so the
//!    loop has nothing left to wait for. `--table` shows two CANCELLED rows.
//! 4. `done` and `pending` come back in argument order, not as sets (DESIGN.md §11).
//!
//! # The same program in asyncio
//! ```text
//! async def task(name, duration): await asyncio.sleep(duration); return f"{name} done"
//! async def main():
//!     tasks = [asyncio.create_task(task(f"Task {i}", i)) for i in (1, 2, 3)]
//!     done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
//!     print(f"First completed: {done}")
//!     for t in pending: t.cancel()
//! ```

use std::time::Duration;

use looplab::combinators::{ReturnWhen, wait};
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "wait_first_completed", usage: "", positional: &[], options: &[] };

async fn task(name: String, seconds: u64) -> String {
    looplab::sleep(Duration::from_secs(seconds)).await;
    format!("{name} done")
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let tasks: Vec<_> = (1..=3)
            .map(|i| {
                let name = format!("Task {i}");
                h.spawn_named(name.clone(), task(name, i))
            })
            .collect();
        let (done, pending) = wait(tasks, ReturnWhen::FirstCompleted, None).await;
        writeln!(o, "wait returned at {:.1}s: {} done, {} pending", h.time().as_secs_f64(), done.len(), pending.len());
        for mut t in done {
            writeln!(o, "First completed: {} -> {:?}", t.name(), t.result().expect("it finished"));
        }
        for t in &pending {
            let requested = t.cancel();
            writeln!(o, "cancel({}) -> {requested}, state now {}", t.name(), t.state());
        }
        for t in pending {
            let name = t.name();
            match t.await {
                Err(e) if e.is_cancelled() => writeln!(o, "{name}: {e} at {:.1}s", h.time().as_secs_f64()),
                other => writeln!(o, "{name}: unexpected {other:?}"),
            }
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
