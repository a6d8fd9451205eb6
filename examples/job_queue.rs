//! A small job queue in the style of the concurrency guide's task-queue section (Celery),
//! built on the loop and the process pool: countdowns, retries with backoff, expiry,
//! periodic jobs, and each job's status printed as it changes.
//!
//! ```text
//!   apply_async(job, countdown, expires) ─► PENDING ─(countdown: call_later)─► queue
//!   beat: every 4 s ─► apply_async(cleanup)                                      │
//!   worker slot (2 of them, a Semaphore) ◄──────────────────────────────────────┘
//!     expired? ─► REVOKED (expired)
//!     STARTED ─► run_in_process(pool, name, (arg, attempt)) ──► Ok ─► SUCCESS
//!                                                          └──► Err ─► RETRY (backoff 1 s, 2 s, ...)
//!                                                                └─ retries used up ─► FAILURE
//! ```
//!
//! The broker is the loop itself (a timer per countdown, a `Semaphore` for the worker
//! slots), the workers are a [`ProcessPool`]: each job body runs in a worker process, found
//! by its registered name. A job's simulated duration is loop time (a `sleep` started with
//! the job), so the schedule is the same on the real and the virtual clock. Whether an
//! attempt fails is decided by the job's input (`flaky` fails on its first two attempts,
//! `unreliable` always), so `--fast` runs print the same lines every time.
//!
//! ```text
//! cargo run --example job_queue -- --fast
//! ```
//!
//! `main` calls `registry().run_worker_if_child()` first: the pool re-runs this program.
//!
//! # What to look for
//! 1. A countdown is a `call_later` timer: the job is PENDING until it fires (E3: equal
//!    deadlines in submission order).
//! 2. Only two jobs run at once (two permits); a job waiting for a slot past its `expires`
//!    is revoked without running, as Celery does with expired messages.
//! 3. Retries wait 1 s, then 2 s (exponential backoff), each a timer; `unreliable` gives up
//!    after its third attempt: FAILURE with the worker's error.
//! 4. The periodic `cleanup` is submitted at 0, 4 and 8 s by a beat task until it is
//!    cancelled (K1); the final report reads every job's status, like `AsyncResult.status`.
//!
//! # The same program in Celery
//! ```text
//! @app.task(bind=True, max_retries=2)
//! def flaky(self, x):
//!     try: return risky(x)
//!     except Exception as exc: raise self.retry(exc=exc, countdown=2 ** self.request.retries)
//! send_email.apply_async(("ann@example.com",), countdown=1)
//! report.apply_async((8,), expires=0.5)
//! app.conf.beat_schedule = {"cleanup": {"task": "tasks.cleanup", "schedule": 4.0}}
//! AsyncResult(task_id).status   # PENDING, STARTED, RETRY, SUCCESS, FAILURE
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};
use looplab::pool::{ProcessPool, Registry};
use looplab::{LoopHandle, Semaphore};

/// The command line.
pub const SPEC: Spec = Spec { name: "job_queue", usage: "", positional: &[], options: &[] };

// ----- the job bodies: run in the worker processes ------------------------------------------

/// `send_email(to)`: a confirmation line. Argument: (recipient, attempt).
fn send_email((to, _attempt): (String, u64)) -> Result1 {
    (true, format!("Email sent to {to}"))
}

/// `report(user)`: a checksum over the user's "rows". Argument: (user id, attempt).
fn report((user, _attempt): (u64, u64)) -> Result1 {
    let sum: u64 = (0..100_000u64).map(|i| (i * user) % 97).sum();
    (true, format!("Report for user {user}: checksum {sum}"))
}

/// `flaky(x)`: fails on attempts 0 and 1 (a service that is briefly down), then works.
fn flaky((x, attempt): (u64, u64)) -> Result1 {
    if attempt < 2 {
        (false, format!("ConnectionError: try {attempt} refused"))
    } else {
        (true, format!("{x}² = {}", x * x))
    }
}

/// `unreliable(x)`: always fails.
fn unreliable((_x, attempt): (u64, u64)) -> Result1 {
    (false, format!("ValueError: bad input (attempt {attempt})"))
}

/// `cleanup(round)`: removes "expired sessions".
fn cleanup((round, _attempt): (u64, u64)) -> Result1 {
    (true, format!("cleanup round {round}: {} sessions removed", 3 + round * 2))
}

/// What a job body returns: success flag and the result or error text.
type Result1 = (bool, String);

/// The functions the workers can run, by name.
pub fn registry() -> Registry {
    Registry::new()
        .register("send_email", send_email)
        .register("report", report)
        .register("flaky", flaky)
        .register("unreliable", unreliable)
        .register("cleanup", cleanup)
}

// ----- the queue: runs on the loop ----------------------------------------------------------

/// A job's argument: the two argument types the bodies take.
#[derive(Clone, Debug)]
enum Arg {
    Text(String),
    Number(u64),
}

/// What `apply_async` takes. Celery: the task, its args and options.
#[derive(Clone, Debug)]
struct JobSpec {
    name: &'static str,
    arg: Arg,
    /// Loop time the job spends running (its simulated duration).
    runs_for: Duration,
    /// Celery's `countdown`: wait this long before queueing.
    countdown: Duration,
    /// Celery's `expires`: revoke if not started this long after submission.
    expires: Option<Duration>,
    /// Celery's `max_retries`.
    max_retries: u64,
}

/// The shared state: the loop, the pool, the worker slots, each job's status history.
struct Broker {
    lp: LoopHandle,
    pool: ProcessPool,
    slots: Semaphore,
    out: Out,
    /// Per job id: its name and last status line.
    status: RefCell<Vec<(String, String)>>,
}

impl Broker {
    /// Record and print a status change.
    fn set(&self, id: usize, status: &str) {
        let name = self.status.borrow()[id].0.clone();
        writeln!(self.out, "{:>5.1}s  job-{id:<2} {name:<30} {status}", self.lp.time().as_secs_f64());
        self.status.borrow_mut()[id].1 = status.to_string();
    }

    /// Celery's `apply_async`: register the job as PENDING and start its life as a task.
    fn apply_async(self: &Rc<Self>, spec: JobSpec) -> usize {
        let id = {
            let mut s = self.status.borrow_mut();
            s.push((format!("{}({})", spec.name, arg_text(&spec.arg)), String::new()));
            s.len() - 1
        };
        self.set(id, "PENDING");
        let me = self.clone();
        self.lp.spawn_named(format!("job-{id}"), async move { me.life(id, spec).await }).detach();
        id
    }

    /// One job from PENDING to SUCCESS, FAILURE or REVOKED.
    async fn life(self: Rc<Self>, id: usize, spec: JobSpec) {
        let submitted = self.lp.time();
        looplab::sleep(spec.countdown).await;
        let mut attempt = 0;
        loop {
            let permit = self.slots.acquire().await;
            if let Some(exp) = spec.expires
                && self.lp.time() > submitted + exp
            {
                self.set(id, "REVOKED (expired before a worker was free)");
                return;
            }
            self.set(id, &format!("STARTED (attempt {})", attempt + 1));
            // The duration starts with the job, so completions are ordered by loop time.
            let duration = self.lp.spawn(looplab::sleep(spec.runs_for));
            let (ok, text) = match &spec.arg {
                Arg::Text(t) => self.lp.run_in_process(&self.pool, spec.name, (t.clone(), attempt)).await,
                Arg::Number(n) => self.lp.run_in_process(&self.pool, spec.name, (*n, attempt)).await,
            }
            .unwrap_or_else(|e| (false, format!("worker: {e}")));
            let _ = duration.await;
            drop(permit);
            if ok {
                self.set(id, &format!("SUCCESS  {text}"));
                return;
            }
            if attempt == spec.max_retries {
                self.set(id, &format!("FAILURE  {text}"));
                return;
            }
            let backoff = Duration::from_secs(1 << attempt);
            self.set(id, &format!("RETRY in {}s  ({text})", backoff.as_secs()));
            looplab::sleep(backoff).await;
            attempt += 1;
        }
    }
}

fn arg_text(a: &Arg) -> String {
    match a {
        Arg::Text(t) => format!("{t:?}"),
        Arg::Number(n) => n.to_string(),
    }
}

/// A job with defaults: 1 s of work, no countdown, no expiry, no retries.
fn job(name: &'static str, arg: Arg) -> JobSpec {
    JobSpec { name, arg, runs_for: Duration::from_secs(1), countdown: Duration::ZERO, expires: None, max_retries: 0 }
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let pool = ProcessPool::new(2, registry()).map_err(|e| std::io::Error::other(e.to_string()))?;
    let lp = Session::new(args);
    let broker = Rc::new(Broker {
        lp: lp.handle(),
        pool,
        slots: Semaphore::new(2),
        out: out.clone(),
        status: RefCell::new(Vec::new()),
    });
    let b = broker.clone();
    lp.run_until_complete(async move {
        let secs = Duration::from_secs;
        // Celery beat: a periodic job every 4 s, until the run is over.
        let beat_broker = b.clone();
        let beat = b.lp.spawn_named("beat", async move {
            for round in 0.. {
                beat_broker.apply_async(JobSpec {
                    runs_for: Duration::from_millis(500),
                    ..job("cleanup", Arg::Number(round))
                });
                looplab::sleep(secs(4)).await;
            }
        });
        b.apply_async(JobSpec { runs_for: secs(2), ..job("report", Arg::Number(7)) });
        b.apply_async(JobSpec { countdown: secs(1), ..job("send_email", Arg::Text("ann@example.com".into())) });
        b.apply_async(JobSpec { max_retries: 2, ..job("flaky", Arg::Number(12)) });
        b.apply_async(JobSpec {
            runs_for: secs(3),
            expires: Some(Duration::from_millis(500)),
            ..job("report", Arg::Number(8))
        });
        b.apply_async(JobSpec { max_retries: 2, countdown: secs(2), ..job("unreliable", Arg::Number(5)) });
        looplab::sleep(secs(10)).await;
        beat.cancel();
        let _ = beat.await;
    })?;
    writeln!(out, "\nfinal status (AsyncResult(id).status):");
    for (id, (name, status)) in broker.status.borrow().iter().enumerate() {
        let word = status.split_whitespace().next().unwrap_or("?");
        writeln!(out, "  job-{id:<2} {name:<24} {word}");
    }
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    registry().run_worker_if_child();
    cli::main(&SPEC, run)
}
