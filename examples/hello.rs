//! hello: the loop at work, in one screen.
//!
//! Three jobs sleep for 2 s, 1 s and 3 s; they run concurrently, so the whole program takes
//! 3 s of loop time, not 6. With `--trace` every step of the loop is printed as it happens:
//! iterations and why they slept, timers landing in the wheel, tasks being woken and polled.
//!
//! Run: `cargo run --example hello` (real clock, about 3 s), `cargo run --example hello --
//! --fast` (virtual clock: the same output at once), add `--trace` to watch the loop.
//!
//! # What to look for
//! 1. All three jobs start in the first iteration, in creation order (K3: `spawn` only queues).
//! 2. Job-B finishes first, at 1 s: timers fire in deadline order (E3).
//! 3. The program ends at loop time 3 s: the waits overlapped.
//!
//! # The same program in asyncio
//! ```text
//! async def job(name, secs):
//!     print(f"{name} started"); await asyncio.sleep(secs); print(f"{name} done"); return secs
//! async def main():
//!     tasks = [asyncio.create_task(job(n, s)) for n, s in [("Job-A", 2), ("Job-B", 1), ("Job-C", 3)]]
//!     print(sum([await t for t in tasks]))
//! asyncio.run(main())
//! ```

use std::time::Duration;

use looplab::trace::Printer;
use looplab::{EventLoop, get_running_loop, sleep};

fn main() {
    let mut fast = false;
    let mut trace = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--fast" => fast = true,
            "--trace" => trace = true,
            other => {
                eprintln!("hello: unknown argument '{other}'\nusage: hello [--fast] [--trace]");
                std::process::exit(2);
            }
        }
    }
    let lp = EventLoop::builder().virtual_clock_if(fast).build().expect("create event loop");
    if trace {
        lp.add_trace_sink(Printer::default());
    }
    let result = looplab::run_on(lp, async {
        let lp = get_running_loop().expect("inside the loop");
        let jobs: Vec<_> = [("Job-A", 2), ("Job-B", 1), ("Job-C", 3)]
            .into_iter()
            .map(|(name, secs)| {
                lp.spawn_named(name, async move {
                    let lp = get_running_loop().expect("inside the loop");
                    println!("[{:>6.3}s] {name} started", lp.time().as_secs_f64());
                    sleep(Duration::from_secs(secs)).await;
                    println!("[{:>6.3}s] {name} done after {secs} s", lp.time().as_secs_f64());
                    secs
                })
            })
            .collect();
        let mut total = 0;
        for job in jobs {
            total += job.await.expect("job finished");
        }
        println!(
            "[{:>6.3}s] all done: {total} s of sleeping in {:.0} s of loop time",
            lp.time().as_secs_f64(),
            lp.time().as_secs_f64()
        );
    });
    if let Err(e) = result {
        eprintln!("hello: {e}");
        std::process::exit(1);
    }
}
