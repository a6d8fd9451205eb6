//! asyncio basics, task 2: fetch three "API endpoints" concurrently, results in order.
//!
//! User takes 2 s, Orders 1 s, Payments 3 s. They finish in the order of their delays, but
//! the results list is in the order the tasks were created, as `gather` returns it.
//!
//! ```text
//! cargo run --example api_endpoints -- --fast
//! ```
//!
//! # What to look for
//! 1. "finished" lines: Orders, User, Payments (shortest delay first, E3).
//! 2. `Results:` is `['User-result', 'Orders-result', 'Payments-result']`: collecting each
//!    task's result in creation order is what `gather` does, whenever each one finished.
//! 3. 3 s of loop time in all: the longest fetch, not the sum (6 s).
//!
//! # The same program in asyncio
//! ```text
//! async def fetch(name, delay):
//!     print(f"{name} started"); await asyncio.sleep(delay); print(f"{name} finished")
//!     return f"{name}-result"
//! async def main():
//!     tasks = [asyncio.create_task(fetch("User", 2)), asyncio.create_task(fetch("Orders", 1)),
//!              asyncio.create_task(fetch("Payments", 3))]
//!     print("Results:", await asyncio.gather(*tasks))
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "api_endpoints", usage: "", positional: &[], options: &[] };

async fn fetch(out: Out, name: &'static str, delay: u64) -> String {
    writeln!(out, "{name} started");
    looplab::sleep(Duration::from_secs(delay)).await;
    writeln!(out, "{name} finished");
    format!("{name}-result")
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    let results = lp.run_until_complete(async move {
        let tasks = [("User", 2), ("Orders", 1), ("Payments", 3)]
            .map(|(name, delay)| h.spawn_named(name, fetch(o.clone(), name, delay)));
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("fetches do not fail"));
        }
        results
    })?;
    let list: Vec<String> = results.iter().map(|r| format!("'{r}'")).collect();
    writeln!(out, "Results: [{}]", list.join(", "));
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
