//! The asyncio guide's async iterator: `async for num in AsyncRange(1, 5)`.
//!
//! [`AsyncRange`] yields 1, 2, 3, 4, each after half a second of loop time. Rust has no
//! `async for`, so the loop is `while let Some(n) = it.next().await`. A second iterator,
//! written here from scratch (`Countdown`), shows what implementing
//! [`AsyncIterator`] takes: one `async fn next`, returning `None` where Python raises
//! `StopAsyncIteration`. The two run as concurrent tasks and interleave.
//!
//! ```text
//! cargo run --example async_iterator -- --fast --timeline
//! ```
//!
//! # What to look for
//! 1. The range's values come at 0.5, 1.0, 1.5, 2.0 s; `next()` after the last one returns
//!    `None` at once, without sleeping.
//! 2. The countdown ticks every 0.7 s; where both are due at once, timers fire in
//!    `(deadline, seq)` order (E3), so the output order is fixed.
//! 3. Once `next` returned `None`, `collect` and `for_each` stop calling it (A1).
//!
//! # The same program in asyncio
//! ```text
//! class AsyncRange:
//!     def __init__(self, start, end): self.start, self.end = start, end
//!     def __aiter__(self): self.current = self.start; return self
//!     async def __anext__(self):
//!         if self.current >= self.end: raise StopAsyncIteration
//!         await asyncio.sleep(0.5); value = self.current; self.current += 1; return value
//! async def main():
//!     async for num in AsyncRange(1, 5): print(num)
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};
use looplab::{AsyncIterator, AsyncRange};

/// The command line.
pub const SPEC: Spec = Spec { name: "async_iterator", usage: "", positional: &[], options: &[] };

/// Counts down from `from` to 1, one value every `every`. asyncio: a class with `__anext__`.
struct Countdown {
    left: u32,
    every: Duration,
}

impl AsyncIterator for Countdown {
    type Item = u32;
    async fn next(&mut self) -> Option<u32> {
        if self.left == 0 {
            return None; // asyncio: raise StopAsyncIteration
        }
        looplab::sleep(self.every).await;
        self.left -= 1;
        Some(self.left + 1)
    }
}

fn now() -> f64 {
    looplab::get_running_loop().map_or(0.0, |lp| lp.time().as_secs_f64())
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let o2 = o.clone();
        let countdown = h.spawn_named("countdown", async move {
            let it = Countdown { left: 3, every: Duration::from_millis(700) };
            it.for_each(|n| writeln!(o2, "{:.1}s  countdown {n}", now())).await;
            writeln!(o2, "{:.1}s  countdown: liftoff", now());
        });
        // async for num in AsyncRange(1, 5): print(num)
        let mut range = AsyncRange::new(1, 5);
        while let Some(num) = range.next().await {
            writeln!(o, "{:.1}s  range {num}", now());
        }
        writeln!(o, "{:.1}s  range exhausted: next() -> {:?}", now(), range.next().await);
        countdown.await.expect("the countdown does not fail");
        let values = AsyncRange::with_delay(1, 4, Duration::from_millis(100)).collect().await;
        writeln!(o, "{:.1}s  collected {values:?}", now());
    })?;
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
