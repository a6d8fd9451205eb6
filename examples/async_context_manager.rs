//! The asyncio guide's async context manager: a resource whose acquire and release both
//! await, used for the length of a block.
//!
//! `AsyncResource` takes 1 s to acquire and 1 s to release. Rust has no `async with` and no
//! async destructor, so the block is spelled with [`Scoped`]: `Scoped::open(acquire).await`
//! is `__aenter__`, `close().await` at the end of the block is `__aexit__`. If the block is
//! left early (here: its task is cancelled), `Scoped`'s `Drop` spawns the same release as a
//! task, so it still runs, a little later.
//!
//! ```text
//! cargo run --example async_context_manager -- --fast --trace
//! ```
//!
//! # What to look for
//! 1. Normal path: acquiring at 0.0 s, using at 1.0 s, releasing at 1.0 s, released at
//!    2.0 s, and "Resource released" only after that: `close()` awaits in place.
//! 2. Cancelled path: the task is cancelled at 3.5 s while using the resource; its future is
//!    dropped (K1), `Scoped`'s destructor spawns the release, which starts in the next
//!    iteration and finishes 1 s later, at 4.5 s. asyncio would run `__aexit__` before the
//!    `CancelledError` propagates; a destructor cannot await, hence the separate task
//!    (DESIGN.md §3, cancellation).
//!
//! # The same program in asyncio
//! ```text
//! class AsyncResource:
//!     async def __aenter__(self): print("Acquiring resource"); await asyncio.sleep(1); return self
//!     async def __aexit__(self, *exc): print("Releasing resource"); await asyncio.sleep(1)
//!     async def use(self): print("Using resource")
//! async def main():
//!     async with AsyncResource() as resource: await resource.use()
//!     print("Resource released")
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};
use looplab::scoped::{AsyncResource, Scoped};

/// The command line.
pub const SPEC: Spec = Spec { name: "async_context_manager", usage: "", positional: &[], options: &[] };

/// The loop time, for the log lines.
fn now() -> String {
    format!("{:.1}s", looplab::get_running_loop().map_or(0.0, |lp| lp.time().as_secs_f64()))
}

/// The material's `AsyncResource`.
struct Resource {
    out: Out,
    name: &'static str,
}

impl Resource {
    /// asyncio: `__aenter__`.
    async fn acquire(out: Out, name: &'static str) -> Resource {
        writeln!(out, "{} {name}: Acquiring resource", now());
        looplab::sleep(Duration::from_secs(1)).await;
        Resource { out, name }
    }

    /// asyncio: `async def use(self)`.
    async fn use_it(&self, seconds: u64) {
        writeln!(self.out, "{} {}: Using resource", now(), self.name);
        looplab::sleep(Duration::from_secs(seconds)).await;
    }
}

impl AsyncResource for Resource {
    /// asyncio: `__aexit__`.
    async fn close(self) {
        writeln!(self.out, "{} {}: Releasing resource", now(), self.name);
        looplab::sleep(Duration::from_secs(1)).await;
        writeln!(self.out, "{} {}: released", now(), self.name);
    }
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        // async with AsyncResource() as resource: await resource.use()
        let resource = Scoped::open(Resource::acquire(o.clone(), "block")).await;
        resource.use_it(0).await;
        resource.close().await;
        writeln!(o, "{} Resource released", now());

        // The same block in a task that is cancelled while it uses the resource.
        let o2 = o.clone();
        let t = h.spawn_named("user", async move {
            let resource = Scoped::open(Resource::acquire(o2.clone(), "task")).await;
            resource.use_it(10).await;
            resource.close().await; // not reached: cancelled in use_it
        });
        looplab::sleep(Duration::from_millis(1500)).await;
        writeln!(o, "{} main: cancelling the task", now());
        t.cancel();
        let outcome = t.await;
        writeln!(o, "{} main: task ended ({}); its release runs on its own", now(), outcome.unwrap_err());
        looplab::sleep(Duration::from_millis(1500)).await;
    })?;
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
