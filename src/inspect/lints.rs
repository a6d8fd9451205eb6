//! Lints and the iteration ledger: what a learner should notice, read from the event stream.
//!
//! ```text
//!   Model (built from events, I3) ──► lints()         slow steps, errors never retrieved,
//!                                 │                   tasks still pending at the end
//!                                 └─► render_ledger() per iteration: ready at start, why
//!                                                     it slept (which timer, level, slot),
//!                                                     clock jump, I/O, timers due,
//!                                                     cascades, callbacks and polls run;
//!                                                     then the wheel view
//! ```
//!
//! - **Slow step**: a callback or poll that held the loop longer than a threshold (100 ms,
//!   asyncio's `slow_callback_duration`). Measured on the thread's CPU clock, so it works on
//!   the virtual clock too, where every step takes zero loop time; a step that *blocks*
//!   (`std::thread::sleep`) without computing is not caught, which asyncio's wall-clock
//!   check would catch.
//! - **Error never retrieved**: the loop reported a failed task nobody awaited (K4).
//! - **Pending at the end**: a task with no `TaskFinished` when the run ended; closing the
//!   loop drops it unfinished (asyncio: "Task was destroyed but it is pending!").
//!
//! # asyncio equivalent
//! Debug mode's "Executing <Handle ...> took 0.150 seconds", "Task exception was never
//! retrieved", "Task was destroyed but it is pending!". asyncio has no ledger; the nearest
//! is reading `_run_once` with a debugger.
//!
//! - **Lost waker**: a waiting task that nothing can ever wake, found by the loop itself at
//!   the end of each iteration (`LoopHandle::set_lost_waker_check`, turned on by `--lints`)
//!   and reported as a `LostWaker` event: exact in a single-threaded loop (F4, W1) in the
//!   sense of the definition: no timer, no I/O interest, no live waker. A waker kept alive
//!   only by something the waiting task itself owns (a `LoopFuture` it awaits and nobody
//!   else holds) still counts as live: telling that apart needs reachability, a GC's job.
//!
//! The heap backend's cancelled count and compactions are not in the event stream: `--ledger`
//! prints them after the ledger from `LoopHandle::timer_stats`.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Model, Track};
use crate::clock::Nanos;
use crate::timer::Placement;
use crate::trace::{TimeoutReason, fmt_secs};

/// asyncio's default `slow_callback_duration`.
pub const SLOW_STEP: Duration = Duration::from_millis(100);

/// What a lint found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LintKind {
    /// A poll or callback used more CPU than the threshold.
    SlowStep {
        /// CPU nanoseconds it used.
        cpu_ns: u64,
    },
    /// The loop reported an error nobody retrieved.
    ErrorNeverRetrieved,
    /// A task had not finished when the run ended.
    PendingAtEnd,
    /// A waiting task that nothing could ever wake (the loop's check, `LostWaker`).
    LostWaker,
}

/// One finding, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lint {
    /// What kind.
    pub kind: LintKind,
    /// Loop time.
    pub at: Nanos,
    /// Loop iteration.
    pub iteration: u64,
    /// One line for the learner.
    pub text: String,
}

/// Every lint over `model`, in the order they happened (pending-at-end ones last).
pub fn lints(model: &Model, slow: Duration) -> Vec<Lint> {
    let mut out = Vec::new();
    let limit = slow.as_nanos() as u64;
    for s in &model.slices {
        if s.cpu_ns > limit {
            let what = match s.track {
                Track::Task(t) => format!("task {t} ({}) poll", s.name),
                Track::Callback => s.name.clone(),
            };
            out.push(Lint {
                kind: LintKind::SlowStep { cpu_ns: s.cpu_ns },
                at: s.start,
                iteration: s.iteration,
                text: format!(
                    "slow step: {what} held the loop for {} ms of CPU (threshold {} ms)",
                    s.cpu_ns / 1_000_000,
                    slow.as_millis()
                ),
            });
        }
    }
    for (at, iteration, message) in &model.reports {
        if message.contains("never retrieved") {
            out.push(Lint {
                kind: LintKind::ErrorNeverRetrieved,
                at: *at,
                iteration: *iteration,
                text: format!("error never retrieved: {message}"),
            });
        }
    }
    for (at, iteration, task, name) in &model.lost {
        out.push(Lint {
            kind: LintKind::LostWaker,
            at: *at,
            iteration: *iteration,
            text: format!(
                "lost waker: task {task} ({name}) is waiting, but no timer, future, socket or thread \
                 holds its waker: it can never run again"
            ),
        });
    }
    out.sort_by_key(|l| (l.iteration, l.at));
    for t in model.tasks_in_order() {
        if t.finished.is_none() {
            out.push(Lint {
                kind: LintKind::PendingAtEnd,
                at: model.end,
                iteration: model.iterations,
                text: format!(
                    "pending at the end: task {} ({}) is {}; closing the loop drops it unfinished",
                    t.id,
                    t.name,
                    t.state.as_str()
                ),
            });
        }
    }
    out
}

/// The lints as text, one per line (or a line saying there were none).
pub fn render_lints(lints: &[Lint]) -> String {
    let mut out = String::from("lints:\n");
    if lints.is_empty() {
        out.push_str("  none\n");
    }
    for l in lints {
        let _ = writeln!(out, "  [{} it {}] {}", fmt_secs(l.at), l.iteration, l.text);
    }
    out
}

fn placement(p: &Placement) -> String {
    match p {
        Placement::Wheel { level, slot } => format!("L{level} slot {slot}"),
        Placement::Heap { index } => format!("heap[{index}]"),
    }
}

/// The ledger (one line per iteration, and indented details) and the wheel view.
pub fn render_ledger(model: &Model) -> String {
    let mut out = String::from("iteration ledger:\n");
    for r in &model.ledger {
        let why = match (r.reason, &r.sleeper) {
            (TimeoutReason::Ready, _) => "no sleep (work ready)".to_string(),
            (TimeoutReason::Stopping, _) => "no sleep (stopping)".to_string(),
            (TimeoutReason::NoTimers, _) => "block: no timers (waits for I/O or a thread)".to_string(),
            (TimeoutReason::Timer { deadline }, Some((id, _, p))) => {
                format!(
                    "sleep {} for timer {id} due {} (scheduled at {})",
                    fmt_secs(deadline - r.start),
                    fmt_secs(deadline),
                    placement(p)
                )
            }
            (TimeoutReason::Timer { deadline }, None) => format!("sleep until {}", fmt_secs(deadline)),
        };
        let _ = writeln!(out, "  #{:<4} {}  ready={}  {why}", r.iteration, fmt_secs(r.start), r.ready_at_start);
        if let Some((from, to)) = r.jumped {
            let _ = writeln!(out, "         virtual clock {} -> {}", fmt_secs(from), fmt_secs(to));
        }
        if !r.io.is_empty() {
            let _ = writeln!(out, "         io ready: {:?}", r.io);
        }
        for (level, slot, moved) in &r.cascaded {
            let _ = writeln!(out, "         cascade: L{level} slot {slot} moved {moved} down");
        }
        if !r.due.is_empty() {
            let ids: Vec<String> = r.due.iter().map(|d| d.to_string()).collect();
            let _ = writeln!(out, "         timers due: {}", ids.join(" "));
        }
        let _ = writeln!(out, "         ran: {} callbacks, {} polls", r.callbacks, r.polls);
    }
    let _ = writeln!(
        out,
        "wheel: {} timers scheduled, {} cancelled, {} still armed",
        model.timers_scheduled,
        model.timers_cancelled,
        model.live_timers.len()
    );
    let mut levels = [0usize; 8];
    for (_, p) in model.live_timers.values() {
        if let Placement::Wheel { level, .. } = p {
            levels[(*level as usize).min(7)] += 1;
        }
    }
    for (l, armed) in levels.iter().enumerate() {
        if *armed > 0 || model.cascades[l] > 0 {
            let _ = writeln!(
                out,
                "  L{l}: {armed} armed (where scheduled), {} cascades moved {} entries",
                model.cascades[l], model.cascaded_entries[l]
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventLoop;
    use crate::inspect::Inspector;

    /// Spin until this thread has used `d` of CPU.
    fn burn(d: Duration) {
        let start = crate::pool::sys::thread_cpu_time();
        while crate::pool::sys::thread_cpu_time() - start < d {
            std::hint::black_box(0u64);
        }
    }

    /// The kinds found, leaving out slow steps: a panic's message and backtrace printing can
    /// itself take 100 ms of CPU (with `RUST_BACKTRACE` set), which is a true slow step but
    /// not what these tests are about.
    fn kinds(l: &[Lint]) -> Vec<&LintKind> {
        l.iter().map(|l| &l.kind).filter(|k| !matches!(k, LintKind::SlowStep { .. })).collect()
    }

    /// A callback burning 150 ms of CPU fires the lint, on the virtual clock too.
    #[cfg_attr(miri, ignore = "measures 100+ ms of thread CPU time: meaningless (and very slow) in the interpreter")]
    #[test]
    fn slow_step_fires_on_cpu_time() {
        let lp = EventLoop::new_virtual();
        let ins = Inspector::attach(&lp);
        lp.call_soon(|_| burn(Duration::from_millis(150)));
        lp.run_until_complete(async {}).unwrap();
        let l = ins.lints(SLOW_STEP);
        assert!(matches!(l[..], [Lint { kind: LintKind::SlowStep { cpu_ns }, .. }] if cpu_ns >= 150_000_000), "{l:?}");
        assert!(l[0].text.contains("callback #"), "{}", l[0].text);
    }

    /// Sleeping the thread uses no CPU, and a quick step is under the threshold: no lint.
    #[cfg_attr(miri, ignore = "measures 100+ ms of thread CPU time: meaningless (and very slow) in the interpreter")]
    #[test]
    fn slow_step_quiet_for_quick_or_blocked_steps() {
        let lp = EventLoop::new_virtual();
        let ins = Inspector::attach(&lp);
        lp.call_soon(|_| std::thread::sleep(Duration::from_millis(150)));
        lp.run_until_complete(async { burn(Duration::from_millis(5)) }).unwrap();
        assert_eq!(ins.lints(SLOW_STEP), []);
    }

    /// The two classic lost wake-ups: a poll that returns Pending without keeping its waker
    /// ("forgetful"), and a hand-made wait list that drops the waker it kept without waking
    /// it ("dropped"): the loop's check reports each once, by name, when it happens.
    #[test]
    fn lost_waker_fires_when_nothing_can_wake_a_task() {
        let lp = EventLoop::new_virtual();
        lp.set_lost_waker_check(true);
        let ins = Inspector::attach(&lp);
        let slot: std::rc::Rc<std::cell::RefCell<Option<std::task::Waker>>> = Default::default();
        let s2 = slot.clone();
        let mut first = true;
        lp.spawn_named(
            "dropped",
            std::future::poll_fn(move |cx| {
                if std::mem::take(&mut first) {
                    *s2.borrow_mut() = Some(cx.waker().clone()); // kept in a wait list...
                }
                std::task::Poll::<()>::Pending
            }),
        )
        .detach();
        lp.spawn_named("forgetful", std::future::poll_fn(|_cx| std::task::Poll::<()>::Pending)).detach();
        lp.call_later(Duration::from_secs(1), move |_| drop(slot.borrow_mut().take())); // ...then lost
        lp.call_later(Duration::from_secs(2), |lp| lp.stop());
        lp.run_forever().unwrap();
        let l: Vec<_> = ins.lints(SLOW_STEP).into_iter().filter(|l| l.kind == LintKind::LostWaker).collect();
        let texts: Vec<_> =
            l.iter().map(|l| (fmt_secs(l.at), l.text.split(" is waiting").next().unwrap().to_string())).collect();
        assert_eq!(
            texts,
            [
                ("0.000s".to_string(), "lost waker: task T2 (forgetful)".to_string()), // iteration 1
                ("1.000s".to_string(), "lost waker: task T1 (dropped)".to_string()),   // once its waker is gone
            ]
        );
    }

    /// Tasks waiting on a timer, on a live future, on another task, on a lock or on a thread
    /// pool job are all wakeable: no lint.
    #[test]
    fn lost_waker_quiet_for_every_way_of_waiting() {
        let lp = EventLoop::new_virtual();
        lp.set_lost_waker_check(true);
        let ins = Inspector::attach(&lp);
        let fut = crate::LoopFuture::<u8>::new(&lp);
        let f2 = fut.clone();
        let h = lp.handle();
        lp.run_until_complete(async move {
            let sleeper = h.spawn(crate::sleep(Duration::from_secs(1)));
            let waiter = h.spawn(async move { f2.await.ok() });
            let joiner = h.spawn(async move { sleeper.await.ok() });
            let lock = std::rc::Rc::new(crate::Lock::new());
            let guard = lock.acquire().await;
            let l2 = lock.clone();
            let locker = h.spawn(async move {
                let _g = l2.acquire().await;
            });
            let pool = crate::pool::ThreadPool::new(1).unwrap();
            let job = h.run_in_executor(&pool, || 7);
            crate::sleep(Duration::from_millis(500)).await;
            drop(guard);
            fut.set_result(1).unwrap();
            assert_eq!(job.await.unwrap(), 7);
            joiner.await.unwrap();
            waiter.await.unwrap();
            locker.await.unwrap();
        })
        .unwrap();
        let l: Vec<_> = ins.lints(SLOW_STEP).into_iter().filter(|l| l.kind == LintKind::LostWaker).collect();
        assert_eq!(l, []);
    }

    /// A failed task whose handle is dropped unread is reported; an awaited one is not.
    #[test]
    fn error_never_retrieved() {
        let lp = EventLoop::new_virtual();
        lp.set_exception_handler(|_| {});
        let ins = Inspector::attach(&lp);
        let h = lp.handle();
        lp.run_until_complete(async move {
            let read = h.spawn_named("read", async { panic!("read boom") });
            assert!(read.await.is_err());
            drop(h.spawn_named("unread", async { panic!("unread boom") }));
            crate::yield_now().await;
            crate::yield_now().await;
        })
        .unwrap();
        let l = ins.lints(SLOW_STEP);
        assert_eq!(kinds(&l), [&LintKind::ErrorNeverRetrieved], "{l:?}");
        let e = l.iter().find(|l| l.kind == LintKind::ErrorNeverRetrieved).unwrap();
        assert!(e.text.contains("unread panicked: unread boom"), "{}", e.text);
    }

    /// A task still sleeping when `main` returns is pending at the end; none when all finish.
    #[test]
    fn pending_at_end() {
        let lp = EventLoop::new_virtual();
        let ins = Inspector::attach(&lp);
        let h = lp.handle();
        lp.run_until_complete(async move {
            h.spawn_named("sleeper", crate::sleep(Duration::from_secs(10))).detach();
            crate::sleep(Duration::from_secs(1)).await;
        })
        .unwrap();
        let l = ins.lints(SLOW_STEP);
        assert_eq!(kinds(&l), [&LintKind::PendingAtEnd]);
        let p = l.iter().find(|l| l.kind == LintKind::PendingAtEnd).unwrap();
        assert!(p.text.contains("(sleeper) is WAITING"), "{}", p.text);

        let lp = EventLoop::new_virtual();
        let ins = Inspector::attach(&lp);
        let h = lp.handle();
        lp.run_until_complete(async move {
            h.spawn(crate::sleep(Duration::from_secs(1))).await.unwrap();
        })
        .unwrap();
        assert_eq!(ins.lints(SLOW_STEP), []);
    }

    /// One `call_later(2 s)`: the ledger says iteration 2 slept for that timer, placed on
    /// wheel level 1, slot 31 (tick 2000 >> 6), and the next iteration ran its callback.
    #[test]
    fn ledger_of_one_timer() {
        let lp = EventLoop::new_virtual();
        let ins = Inspector::attach(&lp);
        lp.call_later(Duration::from_secs(2), |lp| lp.stop());
        lp.run_forever().unwrap();
        let m = ins.model();
        let slept = m.ledger.iter().find(|r| r.sleeper.is_some()).expect("an iteration slept");
        let (id, deadline, placement) = slept.sleeper.unwrap();
        assert_eq!((deadline, placement), (2_000_000_000, Placement::Wheel { level: 1, slot: 31 }));
        assert_eq!(slept.jumped, Some((0, 2_000_000_000)));
        assert!(slept.cascaded.iter().any(|(level, slot, moved)| (*level, *slot, *moved) == (1, 31, 1)));
        assert_eq!(slept.due, [id]);
        assert_eq!(slept.callbacks, 1);
        let text = render_ledger(&m);
        assert!(text.contains(&format!("sleep 2.000s for timer {id} due 2.000s (scheduled at L1 slot 31)")), "{text}");
        assert!(text.contains("cascade: L1 slot 31 moved 1 down"), "{text}");
        assert!(text.contains("wheel: 1 timers scheduled, 0 cancelled, 0 still armed"), "{text}");
    }
}
