//! The asyncio guide's `as_completed`: results in the order they finish, not the order asked.
//!
//! Three "URLs" take 3 s, 1 s and 2 s. `as_completed` hands out each result as soon as its
//! task finishes, so `main` prints url2, url3, url1, one second apart, and could start
//! working on the first result while the others are still on their way.
//!
//! ```text
//! cargo run --example as_completed_demo -- --fast --timeline
//! ```
//!
//! # What to look for
//! 1. The three fetches start in argument order at 0.0 s (E1); the results come at 1, 2 and
//!    3 s, in deadline order (E3).
//! 2. Each result is printed one iteration after its task finished: the task's done-callback
//!    queues it, then wakes `main` (G2), which is polled in the next iteration.
//! 3. `AsCompleted` is an [`AsyncIterator`](looplab::AsyncIterator): `while let Some(r) =
//!    it.next().await` is `for coro in as_completed(...)` (A1).
//!
//! # The same program in asyncio
//! ```text
//! async def fetch_url(url, delay): await asyncio.sleep(delay); return f"Content from {url}"
//! async def main():
//!     urls = [("url1.com", 3), ("url2.com", 1), ("url3.com", 2)]
//!     for coro in asyncio.as_completed([fetch_url(u, d) for u, d in urls]):
//!         print(await coro)
//! ```

use std::time::Duration;

use looplab::combinators::as_completed;
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "as_completed_demo", usage: "", positional: &[], options: &[] };

async fn fetch_url(out: Out, url: &'static str, delay: u64) -> String {
    writeln!(out, "fetching {url} (takes {delay}s)");
    looplab::sleep(Duration::from_secs(delay)).await;
    format!("Content from {url}")
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let urls = [("url1.com", 3), ("url2.com", 1), ("url3.com", 2)];
        let tasks = urls.iter().map(|&(url, delay)| h.spawn_named(url, fetch_url(o.clone(), url, delay))).collect();
        let mut results = as_completed(tasks, None);
        while let Some(r) = results.next().await {
            match r {
                Ok(content) => writeln!(o, "{:.1}s  {content}", h.time().as_secs_f64()),
                Err(e) => writeln!(o, "{:.1}s  error: {e}", h.time().as_secs_f64()),
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
