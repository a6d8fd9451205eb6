//! The asyncio guide's producer/consumer: two producers, three consumers, one `Queue`, and
//! `join()` to wait until every item has been processed.
//!
//! Each producer puts five items with a random 0.1–0.5 s pause between them; each consumer
//! takes an item, works on it for a random 0.5–1.0 s and marks it done with `task_done()`.
//! `main` waits for the producers, then `queue.join()` (every item marked done), then
//! cancels the consumers, which are parked in `get()` forever otherwise. `--seed` picks the
//! random pauses (the same seed, the same run).
//!
//! The material's version ends with a `None` sentinel that each consumer puts back for the
//! others, without calling `task_done()` for it: its `join()` never returns (the re-queued
//! sentinel is never marked done). looplab would report that as `LoopError::Deadlock`
//! naming the waiting tasks. We use the pattern of the asyncio documentation instead:
//! `join()`, then cancel.
//!
//! ```text
//! cargo run --example producer_consumer -- --fast --seed 7 --timeline
//! ```
//!
//! # What to look for
//! 1. An item put while consumers wait in `get()` wakes the *first* waiting consumer (Q1),
//!    so with all three idle, work goes to them in the order they started waiting.
//! 2. `join()` returns only after the tenth `task_done()` (Q4), one iteration later.
//! 3. Cancelling a consumer parked in `get()` drops its wait: it leaves the getters list
//!    (K1). Each prints its count of items as it stops.
//!
//! # The same program in asyncio
//! ```text
//! async def producer(q, pid):
//!     for i in range(5): await q.put(f"P{pid}-Item{i}"); await asyncio.sleep(random.uniform(.1, .5))
//! async def consumer(q, cid):
//!     while True: item = await q.get(); await asyncio.sleep(random.uniform(.5, 1)); q.task_done()
//! async def main():
//!     q = asyncio.Queue(); ps = [create_task(producer(q, i)) for i in range(2)]
//!     cs = [create_task(consumer(q, i)) for i in range(3)]
//!     await asyncio.gather(*ps); await q.join()
//!     for c in cs: c.cancel()
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use looplab::Queue;
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "producer_consumer", usage: "[--seed N]", positional: &[], options: &["--seed"] };

/// The seeded generator shared by every task: xorshift64, no `rand` crate.
#[derive(Clone)]
struct Rng(Rc<Cell<u64>>);

impl Rng {
    /// A random duration in `[lo_ms, hi_ms]`. asyncio: `random.uniform(lo, hi)`.
    fn uniform_ms(&self, lo_ms: u64, hi_ms: u64) -> Duration {
        let mut s = self.0.get();
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0.set(s);
        Duration::from_millis(lo_ms + s % (hi_ms - lo_ms + 1))
    }
}

/// Prints a consumer's total when its future is dropped (it is cancelled at the end).
struct Stopping {
    out: Out,
    id: usize,
    handled: Rc<Cell<u32>>,
}

impl Drop for Stopping {
    fn drop(&mut self) {
        writeln!(self.out, "Consumer {} stopping after {} items", self.id, self.handled.get());
    }
}

fn stamp() -> String {
    format!("{:>6.3}s", looplab::get_running_loop().map_or(0.0, |lp| lp.time().as_secs_f64()))
}

async fn producer(out: Out, q: Queue<String>, rng: Rng, id: usize) {
    for i in 0..5 {
        let item = format!("P{id}-Item{i}");
        q.put(item.clone()).await;
        writeln!(out, "{} Produced: {item}", stamp());
        looplab::sleep(rng.uniform_ms(100, 500)).await;
    }
}

async fn consumer(out: Out, q: Queue<String>, rng: Rng, id: usize) {
    let handled = Rc::new(Cell::new(0));
    let _stopping = Stopping { out: out.clone(), id, handled: handled.clone() };
    loop {
        let item = q.get().await;
        writeln!(out, "{} Consumer {id} consumed: {item}", stamp());
        looplab::sleep(rng.uniform_ms(500, 1000)).await;
        handled.set(handled.get() + 1);
        q.task_done().expect("one task_done per item taken");
    }
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let rng = Rng(Rc::new(Cell::new(args.option_u64("--seed")?.unwrap_or(42).max(1))));
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let q: Queue<String> = Queue::unbounded();
        let producers: Vec<_> = (0..2)
            .map(|i| h.spawn_named(format!("producer-{i}"), producer(o.clone(), q.clone(), rng.clone(), i)))
            .collect();
        let consumers: Vec<_> = (0..3)
            .map(|i| h.spawn_named(format!("consumer-{i}"), consumer(o.clone(), q.clone(), rng.clone(), i)))
            .collect();
        for p in producers {
            p.await.expect("producers do not fail");
        }
        writeln!(o, "{} producers done, {} items still queued; join()", stamp(), q.qsize());
        q.join().await;
        writeln!(o, "{} join() returned: every item was marked done", stamp());
        for c in &consumers {
            c.cancel();
        }
        for c in consumers {
            let _ = c.await; // Err(Cancelled): the consumers were parked in get()
        }
    })?;
    writeln!(out, "total loop time: {:.3}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
