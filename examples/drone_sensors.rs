//! asyncio basics, task 4: drone sensors read concurrently (GPS 1 s, battery 2 s,
//! object tracking 3 s).
//!
//! ```text
//! cargo run --example drone_sensors -- --fast --timeline
//! ```
//!
//! # What to look for
//! 1. The three lines come in the order of the delays, one second apart.
//! 2. `--timeline`: three rows that all begin at 0 and end at 1, 2 and 3 s.
//!
//! # The same program in asyncio
//! ```text
//! async def gps(): await asyncio.sleep(1); print("GPS done")
//! async def battery(): await asyncio.sleep(2); print("Battery check done")
//! async def tracking(): await asyncio.sleep(3); print("Object tracking done")
//! async def main(): await asyncio.gather(gps(), battery(), tracking())
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "drone_sensors", usage: "", positional: &[], options: &[] };

async fn sensor(out: Out, secs: u64, done: &'static str) {
    looplab::sleep(Duration::from_secs(secs)).await;
    writeln!(out, "{done}");
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let gps = h.spawn_named("gps", sensor(o.clone(), 1, "GPS done"));
        let battery = h.spawn_named("battery", sensor(o.clone(), 2, "Battery check done"));
        let tracking = h.spawn_named("tracking", sensor(o.clone(), 3, "Object tracking done"));
        for t in [gps, battery, tracking] {
            let _ = t.await;
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
