//! The asyncio guide's "gather with error handling": fail fast, or collect every outcome.
//!
//! Two successful tasks (1 s each) and one that fails at 0.5 s. `gather` (asyncio's default)
//! completes with the first error as soon as it happens; `gather_all` (asyncio's
//! `return_exceptions=True`) waits for every child and returns one `Result` per child, in
//! argument order. A child *fails* by panicking (asyncio: raising); the loop catches the
//! panic and stores it on the task as `Error::Panicked` (K4).
//!
//! ```text
//! cargo run --example gather_errors -- --fast --trace
//! ```
//!
//! # What to look for
//! 1. Fail-fast: the error arrives at 0.5 s, one callback hop after the failing child
//!    finished (G2). The two other children are *not* cancelled: they run on, unwatched,
//!    and finish at 1.0 s, as in asyncio.
//! 2. Collected: the results come at 1.5 s (the second gather started at 0.5 s), in argument
//!    order, whatever order the children finished in (G1).
//! 3. The failing child's panic message is not printed by Rust's panic hook: `main` installs
//!    a hook that stays quiet for this example's `ValueError` panics (the loop reports them as
//!    values); any other panic is printed as usual.
//!
//! # The same program in asyncio
//! ```text
//! async def successful_task(n): await asyncio.sleep(1); return f"Success {n}"
//! async def failing_task(): await asyncio.sleep(0.5); raise ValueError("Task failed!")
//! async def main():
//!     try: await asyncio.gather(successful_task(1), failing_task(), successful_task(2))
//!     except ValueError as e: print(f"Error: {e}")
//!     for r in await asyncio.gather(..., return_exceptions=True):
//!         print(f"Exception: {r}" if isinstance(r, Exception) else f"Result: {r}")
//! ```

use std::time::Duration;

use looplab::combinators::{gather, gather_all};
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "gather_errors", usage: "", positional: &[], options: &[] };

/// What a failing child panics with; `main`'s panic hook recognises it.
const FAILURE: &str = "ValueError: Task failed!";

/// `Some(n)`: asyncio's `successful_task(n)`; `None`: `failing_task()`.
async fn child(n: Option<u32>) -> String {
    match n {
        Some(n) => {
            looplab::sleep(Duration::from_secs(1)).await;
            format!("Success {n}")
        }
        None => {
            looplab::sleep(Duration::from_millis(500)).await;
            panic!("{FAILURE}")
        }
    }
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let t = |h: &looplab::LoopHandle| format!("{:.1}s", h.time().as_secs_f64());
        writeln!(o, "gather (fail fast):");
        match gather([child(Some(1)), child(None), child(Some(2))]).await {
            Ok(results) => writeln!(o, "  {} results: {results:?}", t(&h)),
            Err(e) => writeln!(o, "  {} Error: {e}", t(&h)),
        }
        writeln!(o, "gather_all (return_exceptions=True):");
        for r in gather_all([child(Some(1)), child(None), child(Some(2))]).await {
            match r {
                Ok(v) => writeln!(o, "  {} Result: {v}", t(&h)),
                Err(e) => writeln!(o, "  {} Exception: {e}", t(&h)),
            }
        }
    })?;
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

/// A panic hook that is silent for this example's expected failures and prints any other
/// panic as Rust's default hook would.
#[allow(dead_code)] // unused when another program includes this file with #[path]
fn quiet_expected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str);
        if msg != Some(FAILURE) {
            default(info);
        }
    }));
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    quiet_expected_panics();
    cli::main(&SPEC, run)
}
