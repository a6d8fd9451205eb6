//! The asyncio guide's rate limiter: ten API calls, at most three in any two seconds.
//!
//! All ten calls start at once (`gather`). Each waits for the [`RateLimiter`]
//! (`looplab::RateLimiter`, a semaphore whose permits come back one period after they were
//! taken) and then "calls the API" for 0.1 s. Calls go out in batches of three at 0, 2, 4
//! and 6 s.
//!
//! ```text
//! cargo run --example rate_limiter -- --fast --timeline
//! ```
//!
//! # What to look for
//! 1. Calls 0, 1, 2 at 0.00 s; 3, 4, 5 at 2.00 s; ...; call 9 at 6.00 s. Waiters are served
//!    FIFO (V2), so the calls keep their order.
//! 2. Nobody polls: a waiting call sleeps in the semaphore's queue until a permit's
//!    `call_later(period, release)` timer hands it over (V1). The material's version loops on
//!    `time.time()` and `sleep`; `--trace` shows here one wake-up per call, no retries.
//! 3. A permit comes back 2 s after it was *taken*, not after the call ended: the window
//!    counts starts of calls, as the material's list of timestamps does.
//!
//! # The same program in asyncio
//! ```text
//! async def api_call(call_id, limiter):
//!     async with limiter:
//!         print(f"API call {call_id} at {time.time():.2f}"); await asyncio.sleep(0.1)
//! async def main():
//!     limiter = RateLimiter(max_calls=3, period=2)    # the material's class
//!     await asyncio.gather(*[api_call(i, limiter) for i in range(10)])
//! ```

use std::time::Duration;

use looplab::RateLimiter;
use looplab::combinators::gather;
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "rate_limiter", usage: "", positional: &[], options: &[] };

async fn api_call(out: Out, id: u32, limiter: RateLimiter) {
    limiter.acquire().await;
    let t = looplab::get_running_loop().map_or(0.0, |lp| lp.time().as_secs_f64());
    writeln!(out, "API call {id} at {t:.2}s ({} permits left)", limiter.available());
    looplab::sleep(Duration::from_millis(100)).await;
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let o = out.clone();
    lp.run_until_complete(async move {
        let limiter = RateLimiter::new(3, Duration::from_secs(2));
        gather((0..10).map(|i| api_call(o.clone(), i, limiter.clone()))).await.expect("calls do not fail");
    })?;
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
