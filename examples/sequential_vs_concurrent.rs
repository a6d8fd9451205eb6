//! The asyncio guide's timing demo: three 2 s operations awaited one after another take
//! 6 s; started as tasks and then awaited, they take 2 s.
//!
//! ```text
//! cargo run --example sequential_vs_concurrent            # watch it take ~8 s
//! cargo run --example sequential_vs_concurrent -- --fast  # same output, at once
//! ```
//!
//! # What to look for
//! 1. Sequential: `await op()` runs each operation to its end before the next starts.
//! 2. Concurrent: `spawn` starts all three before the first `await`, so their sleeps
//!    overlap. The times printed are loop time: exactly 6.000 s and 2.000 s on the virtual
//!    clock, a few ms more on the real one (shown with one decimal, so the same).
//!
//! # The same program in asyncio
//! ```text
//! start = time.perf_counter()
//! for i in range(3): await op(i)                               # ~6 s
//! start = time.perf_counter()
//! await asyncio.gather(*(asyncio.create_task(op(i)) for i in range(3)))  # ~2 s
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "sequential_vs_concurrent", usage: "", positional: &[], options: &[] };

const OPS: u32 = 3;
const EACH: Duration = Duration::from_secs(2);

async fn op(out: Out, i: u32) -> u32 {
    writeln!(out, "  operation {i} started");
    looplab::sleep(EACH).await;
    writeln!(out, "  operation {i} done");
    i * 10
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        writeln!(o, "Sequential:");
        let start = h.time();
        let mut results = Vec::new();
        for i in 1..=OPS {
            results.push(op(o.clone(), i).await);
        }
        let seq = h.time() - start;
        writeln!(o, "  results {results:?} in {:.1} s", seq.as_secs_f64());
        writeln!(o, "Concurrent:");
        let start = h.time();
        let tasks: Vec<_> = (1..=OPS).map(|i| h.spawn_named(format!("op{i}"), op(o.clone(), i))).collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("ops do not fail"));
        }
        let conc = h.time() - start;
        writeln!(o, "  results {results:?} in {:.1} s", conc.as_secs_f64());
        writeln!(o, "Speed-up: {:.1}x", seq.as_secs_f64() / conc.as_secs_f64().max(1e-9));
    })?;
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
