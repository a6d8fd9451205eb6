//! The memory architecture walkthrough: the material's nine steps, with the loop's real
//! state printed at each one.
//!
//! The material explains Job-A/B/C (2 s, 1 s, 3 s: `create_task`, then `await`) in nine
//! steps, from "OS loads Python process" to "Event Loop Closes". This program runs the same
//! jobs on looplab and, at each step, prints what the loop actually holds, read through
//! [`LoopHandle::snapshot`](looplab::LoopHandle::snapshot): the ready queue, each task's id,
//! name, state, slab slot and the bytes of its future and header, the timer wheel's occupied
//! slots with their deadlines, the I/O sources, and the frames on the call stack.
//!
//! ```text
//! cargo run --example memory_walkthrough -- --fast
//! cargo run --example memory_walkthrough -- --fast --durations 2,1,70   # Job-C moves up a wheel level
//! cargo run --example memory_walkthrough -- --fast --jobs 5             # Job-D, Job-E: 2 s, 1 s
//! ```
//!
//! # What to look for
//! 1. Step 4: right after `spawn`, the jobs are READY, not CREATED: asyncio's `create_task`
//!    already queues the first step with `call_soon`, and so does looplab (K3: no poll yet).
//! 2. Step 5: each job runs until its first `await`, in spawn order (FIFO, E1); the others
//!    wait in the ready queue behind it.
//! 3. Step 6: three timers in the wheel. 1 s = 1000 ticks of 1 ms: too far for level 0
//!    (64 ticks), so they sit on level 1 (64-tick slots) in slot `tick / 64 % 64`: 15, 31, 46.
//!    `--durations 2,1,70` puts Job-C on level 2. The loop's timeout is the next deadline (T4).
//! 4. Step 7: a due timer's callback wakes its task (`Cb #n (wakes T3)`), and the task runs
//!    one iteration later (time.rs); the remaining timers have been re-bucketed lower as the
//!    wheel turned (cascades).
//! 5. Step 8: `main` awaited the tasks in turn (asyncio's `gather` waits the same way).
//! 6. Step 9: `close()` drops whatever is left; the slab is empty.
//!
//! # The same program in asyncio
//! ```text
//! async def do_work(name, seconds):
//!     print(f"{name} started (will take {seconds}s)")
//!     await asyncio.sleep(seconds)
//!     print(f"{name} finished")
//! async def main():
//!     t1 = asyncio.create_task(do_work("Job-A", 2)); t2 = ...; t3 = ...
//!     await t1; await t2; await t3
//! asyncio.run(main())
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec, UsageError};
use looplab::{LoopHandle, Task};

/// The command line.
pub const SPEC: Spec = Spec {
    name: "memory_walkthrough",
    usage: "[--jobs N] [--durations S,S,...]",
    positional: &[],
    options: &["--jobs", "--durations"],
};

/// The material's durations, repeated when more jobs are asked for.
const DEFAULT_DURATIONS: [f64; 3] = [2.0, 1.0, 3.0];

/// Print a snapshot of the loop, indented under the step.
fn show(out: &Out, lp: &LoopHandle) {
    for line in lp.snapshot().to_string().lines() {
        writeln!(out, "    {line}");
    }
}

/// One step's heading.
fn step(out: &Out, n: u32, title: &str) {
    writeln!(out);
    writeln!(out, "{n}. {title}");
}

/// The job's durations from `--jobs`/`--durations`.
fn durations(args: &Args) -> Result<Vec<f64>, UsageError> {
    let given: Option<Vec<f64>> = args
        .option("--durations")
        .map(|list| {
            list.split(',')
                .map(|s| {
                    s.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|d| d.is_finite() && *d >= 0.0 && *d < 1e9)
                        .ok_or_else(|| UsageError(format!("bad duration {s:?} in --durations")))
                })
                .collect()
        })
        .transpose()?;
    let jobs = args.option_u64("--jobs")?;
    match (given, jobs) {
        (Some(d), Some(n)) if d.len() as u64 != n => {
            Err(UsageError(format!("--jobs {n} but --durations lists {}", d.len())))
        }
        (Some(d), _) if d.is_empty() || d.len() > 26 => Err(UsageError("between 1 and 26 jobs".into())),
        (Some(d), _) => Ok(d),
        (None, Some(n)) if !(1..=26).contains(&n) => Err(UsageError("--jobs must be between 1 and 26".into())),
        (None, n) => Ok((0..n.unwrap_or(3) as usize).map(|i| DEFAULT_DURATIONS[i % DEFAULT_DURATIONS.len()]).collect()),
    }
}

/// The material's `do_work`, plus the walkthrough's own lines.
async fn do_work(lp: LoopHandle, out: Out, name: String, secs: f64, step7_shown: Rc<Cell<bool>>) -> String {
    writeln!(out, "   {name} started (will take {secs}s)");
    let me = lp.current_task().expect("running as a task");
    let s = lp.snapshot();
    let ready: Vec<String> = s.ready.iter().map(|r| r.to_string()).collect();
    writeln!(
        out,
        "      {me} {} in slot {}, poll #{}; still in the ready queue: [{}]",
        s.task(me).map_or("?", |t| t.state.as_str()),
        me.slot(),
        s.task(me).map_or(0, |t| t.polls),
        ready.join(", ")
    );
    looplab::sleep(Duration::from_secs_f64(secs)).await;
    if !step7_shown.replace(true) {
        step(&out, 7, "Timer expiry and resume");
    }
    writeln!(out, "   Time {:.3}s: {me} {name}'s timer came due -> READY -> RUNNING:", lp.time().as_secs_f64());
    show(&out, &lp);
    writeln!(out, "   {name} finished -> {me} DONE");
    format!("{name}-result")
}

/// The walkthrough, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let durations = durations(args)?;
    writeln!(out, "MEMORY ARCHITECTURE WALKTHROUGH: the event loop's real state, step by step");
    let names: Vec<String> = (0..durations.len()).map(|i| format!("Job-{}", (b'A' + i as u8) as char)).collect();
    let jobs: Vec<String> = names.iter().zip(&durations).map(|(n, d)| format!("{n} {d}s")).collect();
    writeln!(out, "jobs: {}", jobs.join(", "));

    step(out, 1, "Program start");
    writeln!(out, "   The OS has loaded this binary: code, a main thread and its stack. No loop yet:");
    writeln!(out, "   get_running_loop() = {:?}", looplab::get_running_loop().map(|l| l.id()));

    step(out, 2, "Main thread starts");
    writeln!(out, "   Call stack: main() > memory_walkthrough::run()");

    step(out, 3, "Event loop creation");
    let lp = Session::new(args);
    writeln!(
        out,
        "   EventLoop::new{}(): the handle is {} bytes (an Rc to the loop's state):",
        if args.fast { "_virtual" } else { "" },
        std::mem::size_of::<looplab::EventLoop>()
    );
    show(out, &lp);

    let handle = lp.handle();
    let o = out.clone();
    let step7 = Rc::new(Cell::new(false));
    let results = lp.run_until_complete(async move {
        step(&o, 4, "Task registration (main is running as T1)");
        let tasks: Vec<Task<String>> = names
            .iter()
            .zip(&durations)
            .map(|(name, &secs)| {
                handle.spawn_named(name.clone(), do_work(handle.clone(), o.clone(), name.clone(), secs, step7.clone()))
            })
            .collect();
        show(&o, &handle);
        // Queued behind the jobs' first steps: it runs once all of them reached their await.
        let o6 = o.clone();
        handle.call_soon(move |lp| {
            step(&o6, 6, "Waiting / timer phase");
            let s = lp.snapshot();
            let next = s.next_deadline.map_or(0.0, |d| d as f64 / 1e9);
            writeln!(o6, "   Every job is WAITING on a timer; the loop may sleep until {next:.3}s:");
            show(&o6, lp);
        });
        step(&o, 5, "Event loop scheduling (time 0s)");
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("jobs do not fail"));
        }
        step(&o, 8, "await completion");
        writeln!(o, "   Every job is DONE; main (T1) resumes:");
        show(&o, &handle);
        results
    })?;

    step(out, 9, "Event loop closes");
    writeln!(out, "   results: {results:?}");
    lp.close()?;
    writeln!(out, "   close() dropped everything left:");
    show(out, &lp);
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
