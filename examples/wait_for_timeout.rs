//! The asyncio guide's `wait_for`: give up on a slow operation after a deadline.
//!
//! `slow_operation` takes 5 s. Awaited with a 2 s limit it is cancelled at 2 s (its cleanup
//! runs, as a dropped future's destructors do) and `wait_for` returns `Err(Timeout)`. Given
//! 6 s it finishes and its result comes through.
//!
//! ```text
//! cargo run --example wait_for_timeout -- --fast --trace
//! ```
//!
//! # What to look for
//! 1. At 2 s the timer fires first, then the inner task is cancelled and its cleanup line
//!    prints *before* "Operation timed out!": `wait_for` awaits the cancelled task's end
//!    (G3, K2).
//! 2. The 5 s sleep of the cancelled operation never fires: its timer left the wheel when
//!    the future was dropped (S2). The second attempt starts at 2 s and ends at 7 s.
//! 3. A result that is already there wins over a deadline reached at the same time (G3).
//!
//! # The same program in asyncio
//! ```text
//! async def slow_operation():
//!     await asyncio.sleep(5); return "Done"
//! async def main():
//!     try: print(await asyncio.wait_for(slow_operation(), timeout=2.0))
//!     except asyncio.TimeoutError: print("Operation timed out!")
//! ```

use std::time::Duration;

use looplab::combinators::wait_for;
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "wait_for_timeout", usage: "", positional: &[], options: &[] };

/// Printed when the operation's future is dropped: asyncio's `finally:` in the coroutine.
struct Cleanup(Out);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let t = looplab::get_running_loop().map_or(0.0, |lp| lp.time().as_secs_f64());
        writeln!(self.0, "  slow_operation: cleanup at {t:.1}s");
    }
}

async fn slow_operation(out: Out) -> &'static str {
    let _cleanup = Cleanup(out.clone());
    writeln!(out, "  slow_operation: started, needs 5s");
    looplab::sleep(Duration::from_secs(5)).await;
    "Done"
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        for limit in [2, 6] {
            writeln!(o, "wait_for(slow_operation(), timeout={limit}.0) at {:.1}s", h.time().as_secs_f64());
            match wait_for(slow_operation(o.clone()), Duration::from_secs(limit)).await {
                Ok(result) => writeln!(o, "{result} at {:.1}s", h.time().as_secs_f64()),
                Err(e) if e.is_timeout() => {
                    writeln!(o, "Operation timed out! ({e}) at {:.1}s", h.time().as_secs_f64())
                }
                Err(e) => writeln!(o, "unexpected error: {e}"),
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
