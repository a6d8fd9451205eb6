//! Futures and tasks: ports of CPython 3.11's test_futures and test_tasks, on the virtual
//! clock. Each test names the CPython test it mirrors; where Rust's model differs (a task
//! cannot catch its cancellation), the comment says how the port reads it.

// `async move { t.await }` is on purpose: run_until_complete runs it as the main task.
#![allow(clippy::redundant_async_block, clippy::async_yields_async)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{Log, ms, secs, traced_loop, virtual_loop};
use looplab::trace::{EventKind, Outcome, WakeSource};
use looplab::{Error, EventLoop, LoopError, LoopFuture, TaskState, get_running_loop, sleep, yield_now};

// ------------------------------------------------------------------ LoopFuture

/// CPython: test_futures.py::BaseFutureTests::test_initial_state
#[test]
fn future_initial_state() {
    let lp = EventLoop::new_virtual();
    let f = LoopFuture::<i32>::new(&lp);
    assert!(!f.is_cancelled());
    assert!(!f.is_done());
    f.cancel();
    assert!(f.is_cancelled());
}

/// CPython: test_futures.py::BaseFutureTests::test_cancel
#[test]
fn future_cancel() {
    let lp = EventLoop::new_virtual();
    let f = LoopFuture::<i32>::new(&lp);
    assert!(f.cancel());
    assert!(f.is_cancelled() && f.is_done());
    assert!(f.result().unwrap_err().is_cancelled());
    assert!(f.exception().unwrap_err().is_cancelled());
    assert!(matches!(f.set_result(1), Err(Error::InvalidState(_))));
    assert!(matches!(f.set_error("ValueError", "x"), Err(Error::InvalidState(_))));
    assert!(!f.cancel());
}

/// CPython: test_futures.py::BaseFutureTests::test_result
#[test]
fn future_result() {
    let lp = EventLoop::new_virtual();
    let f = LoopFuture::<i32>::new(&lp);
    assert!(matches!(f.result(), Err(Error::InvalidState(_))));
    f.set_result(42).unwrap();
    assert!(!f.is_cancelled() && f.is_done());
    assert_eq!(f.result(), Ok(42));
    assert_eq!(f.exception(), Ok(None));
    assert!(matches!(f.set_result(1), Err(Error::InvalidState(_))));
    assert!(!f.cancel());
}

/// CPython: test_futures.py::BaseFutureTests::test_exception
#[test]
fn future_exception() {
    let lp = EventLoop::new_virtual();
    let f = LoopFuture::<i32>::new(&lp);
    assert!(matches!(f.exception(), Err(Error::InvalidState(_))));
    f.set_error("RuntimeError", "boom").unwrap();
    let e = f.exception().unwrap().unwrap();
    assert_eq!(e.to_string(), "RuntimeError: boom");
    assert_eq!(f.result(), Err(e));
    assert!(!f.cancel());
}

/// Callbacks are scheduled, not run inline, and run in registration order (F1, F2).
/// CPython: test_futures.py::BaseFutureDoneCallbackTests::test_callbacks_invoked_on_set_result
#[test]
fn future_callbacks_invoked_on_set_result() {
    let (lp, log) = virtual_loop();
    let f = LoopFuture::<i32>::new(&lp);
    for name in ["A", "B", "C"] {
        let l = log.clone();
        f.add_done_callback(move |f| l.push(format!("{name}={}", f.result().unwrap())));
    }
    f.set_result(10).unwrap();
    assert!(log.take().is_empty(), "F1: nothing runs inside set_result");
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["A=10", "B=10", "C=10"]);
}

/// CPython: test_futures.py::BaseFutureDoneCallbackTests::test_callbacks_invoked_on_set_exception
#[test]
fn future_callbacks_invoked_on_set_exception() {
    let (lp, log) = virtual_loop();
    let f = LoopFuture::<i32>::new(&lp);
    let l = log.clone();
    f.add_done_callback(move |f| l.push(format!("{:?}", f.exception().unwrap().map(|e| e.to_string()))));
    f.set_error("ValueError", "bad").unwrap();
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), [r#"Some("ValueError: bad")"#]);
}

/// CPython: test_futures.py::BaseFutureDoneCallbackTests::test_remove_done_callback
#[test]
fn future_remove_done_callback() {
    let (lp, log) = virtual_loop();
    let f = LoopFuture::<()>::new(&lp);
    let l1 = log.clone();
    let a = f.add_done_callback(move |_| l1.push("a"));
    let l2 = log.clone();
    f.add_done_callback(move |_| l2.push("b"));
    assert_eq!(f.remove_done_callback(a), 1);
    assert_eq!(f.remove_done_callback(a), 0);
    f.set_result(()).unwrap();
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["b"]);
}

/// Three callbacks added, some removed, the others run in registration order. The first
/// entry of a future's list is kept inline and the rest in a `Vec` (src/future.rs): these
/// remove from the inline entry, from both, and from the `Vec`.
/// CPython: test_futures.py::BaseFutureDoneCallbackTests::test_callbacks_remove_first_callback,
/// test_callbacks_remove_first_and_second_callback, test_callbacks_remove_third_callback
#[test]
fn future_remove_first_second_third_callback() {
    for (remove, expected) in [(vec![0, 0], vec![17, 100]), (vec![0, 1, 0], vec![100]), (vec![2, 2], vec![42, 17])] {
        let (lp, log) = virtual_loop();
        let f = LoopFuture::<&str>::new(&lp);
        let tokens: Vec<_> = [42, 17, 100]
            .into_iter()
            .map(|v| {
                let l = log.clone();
                f.add_done_callback(move |_| l.push(v.to_string()))
            })
            .collect();
        for i in &remove {
            f.remove_done_callback(tokens[*i]);
        }
        assert!(log.take().is_empty());
        f.set_result("foo").unwrap();
        lp.run_until_idle().unwrap();
        let want: Vec<String> = expected.iter().map(|v| v.to_string()).collect();
        assert_eq!(log.take(), want, "removing {remove:?}");
        assert_eq!(f.result().unwrap(), "foo");
    }
}

/// A callback added after completion is scheduled too, never run inline (F1).
/// CPython: test_futures.py::BaseFutureDoneCallbackTests::test_callbacks_remove_first_callback
/// (its `_new_future` + `add_done_callback` after `set_result` path)
#[test]
fn future_callback_added_after_done_is_scheduled() {
    let (lp, log) = virtual_loop();
    let f = LoopFuture::<i32>::new(&lp);
    f.set_result(1).unwrap();
    let l = log.clone();
    f.add_done_callback(move |_| l.push("late"));
    assert!(log.take().is_empty());
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["late"]);
}

/// A task awaiting a future resumes between the callbacks registered before and after it
/// (F2): its wake-up is one more done-callback.
/// CPython: test_futures.py::BaseFutureDoneCallbackTests::test_schedule_callbacks_list_mutation_1
/// (ordering of callbacks around an awaiting task)
#[test]
fn awaiting_task_resumes_between_callbacks() {
    let (lp, log) = virtual_loop();
    let f = LoopFuture::<i32>::new(&lp);
    let l = log.clone();
    f.add_done_callback(move |_| l.push("cb before"));
    let (f2, l2) = (f.clone(), log.clone());
    let t = lp.spawn(async move {
        let v = f2.await.unwrap();
        l2.push(format!("task got {v}"));
    });
    let (f3, l3, l4) = (f.clone(), log.clone(), log.clone());
    lp.call_soon(move |_| {
        // by now the task is waiting; register one more callback, then complete
        f3.add_done_callback(move |_| l3.push("cb after"));
        l4.push("set_result");
        f3.set_result(7).unwrap();
    });
    lp.run_until_complete(async move { t.await.unwrap() }).unwrap();
    assert_eq!(log.take(), ["set_result", "cb before", "task got 7", "cb after"]);
}

/// Awaiting a future that is already done does not yield to the loop.
/// CPython: test_futures.py::BaseFutureTests::test_yield_from_twice
#[test]
fn await_done_future_does_not_yield() {
    let (lp, log) = virtual_loop();
    let f = LoopFuture::<i32>::new(&lp);
    f.set_result(5).unwrap();
    let (l, f2) = (log.clone(), f.clone());
    lp.call_soon(log.cb("other callback"));
    let t = lp.spawn(async move {
        let a = f2.clone().await.unwrap();
        let b = f2.await.unwrap();
        l.push(format!("got {a} {b} without yielding"));
    });
    lp.run_until_complete(async move { t.await.unwrap() }).unwrap();
    // The task's single step ran after the earlier callback, with no extra iteration.
    assert_eq!(log.take(), ["other callback", "got 5 5 without yielding"]);
}

// ------------------------------------------------------------------ tasks

/// Tasks start in creation order, only in a later iteration, never inside spawn (K3).
/// CPython: test_tasks.py::BaseTaskTests::test_task_basics
#[test]
fn tasks_start_in_creation_order_not_at_creation() {
    let (lp, log) = virtual_loop();
    for name in ["a", "b", "c"] {
        let l = log.clone();
        lp.spawn(async move { l.push(name) }).detach();
        log.push(format!("spawned {name}"));
    }
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["spawned a", "spawned b", "spawned c", "a", "b", "c"]);
}

/// Default names are `Task-N`, N counting from 1 per loop.
/// CPython: test_tasks.py::BaseTaskTests::test_task_repr_autogenerated
#[test]
fn default_task_names() {
    let lp = EventLoop::new_virtual();
    let a = lp.spawn(async {});
    let b = lp.spawn_named("worker", async {});
    let c = lp.spawn(async {});
    assert_eq!((a.name(), b.name(), c.name()), ("Task-1".into(), "worker".into(), "Task-3".into()));
}

/// The whole event log of one task that sleeps once: created, woken by spawn, polled,
/// waiting; the timer is scheduled, comes due, its callback runs and wakes the task; polled
/// again; finished.
/// CPython: test_tasks.py::BaseTaskTests::test_sleep
#[test]
fn sleep_event_log_in_full() {
    let (lp, rec) = traced_loop();
    let t = lp.spawn(async {
        sleep(ms(100)).await;
        "yeah"
    });
    let id = t.id();
    assert_eq!(lp.run_until_complete(async move { t.await.unwrap() }).unwrap(), "yeah");
    assert_eq!(lp.time(), ms(100));
    let kinds: Vec<String> = rec
        .kinds()
        .into_iter()
        .filter(|k| !matches!(k, EventKind::IterationStarted { .. }))
        .map(|k| match k {
            EventKind::TimerScheduled { deadline, .. } => format!("timer scheduled {deadline}"),
            EventKind::TimerDue { deadline, .. } => format!("timer due {deadline}"),
            EventKind::CallbackRan { .. } => "callback ran".into(),
            EventKind::CallbackScheduled { .. } => "callback scheduled".into(),
            EventKind::TaskWoken { task, by } => format!(
                "{} woken by {}",
                if task == id { "T1" } else { "main" },
                match by {
                    WakeSource::Spawn => "spawn",
                    WakeSource::Timer(_) => "timer",
                    WakeSource::Task(_) => "task",
                    _ => "other",
                }
            ),
            EventKind::TaskPolled { task } => {
                format!("{} polled", if task == id { "T1" } else { "main" })
            }
            EventKind::TaskSuspended { task } => {
                format!("{} waiting", if task == id { "T1" } else { "main" })
            }
            EventKind::TaskFinished { task, outcome } => {
                format!("{} finished {outcome:?}", if task == id { "T1" } else { "main" })
            }
            other => format!("{other}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "task T1 created (Task-1)".to_string(),
            "T1 woken by spawn".into(),
            "task T2 created (Task-2)".into(), // run_until_complete's main task
            "main woken by spawn".into(),
            "T1 polled".into(),                 // iteration 1
            "timer scheduled 100000000".into(), // sleep(100 ms) at t=0
            "T1 waiting".into(),
            "main polled".into(),
            "main waiting".into(), // awaits T1
            "virtual clock 0.000s -> 0.100s".into(),
            "wheel level 1 slot 1 cascaded 1 entries".into(), // 100 ms sat on level 1
            "timer due 100000000".into(),                     // iteration 2, phase 3
            "callback ran".into(),                            // phase 4: the timer's callback wakes T1
            "T1 woken by timer".into(),
            "T1 polled".into(), // iteration 3: one hop after the timer
            "T1 finished Done".into(),
            "main woken by task".into(), // T1's completion wakes its awaiter
            "main polled".into(),
            "main finished Done".into(),
            "callback scheduled".into(), // run_until_complete's stop callback
            "callback ran".into(),
            "loop stopped".into(),
        ]
    );
}

/// CPython: test_tasks.py::BaseTaskTests::test_cancel
/// A task cancelled before its first step never runs any of its body (K1).
#[test]
fn cancel_before_first_step_never_runs_body() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    let t = lp.spawn(async move {
        l.push("body ran");
        12
    });
    assert!(t.cancel());
    let err = lp.run_until_complete(async move { t.await }).unwrap().unwrap_err();
    assert!(err.is_cancelled());
    assert!(log.take().is_empty());
}

/// CPython: test_tasks.py::BaseTaskTests::test_cancel_yield
#[test]
fn cancel_after_first_step() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    let t = lp.spawn(async move {
        l.push("start");
        yield_now().await;
        l.push("never");
        yield_now().await;
        12
    });
    let id = t.id();
    lp.call_soon(move |lp| {
        assert!(lp.cancel_task(id));
    });
    let r = lp.run_until_complete(async move { (t.await, ()) }).unwrap();
    assert!(r.0.unwrap_err().is_cancelled());
    assert_eq!(log.take(), ["start"]);
    assert_eq!(lp.task_state(id), None, "slot freed after the handle read the result");
}

/// Cancelling a finished task returns false; a cancelled task reports done + cancelled.
/// CPython: test_tasks.py::BaseTaskTests::test_cancel (tail: `self.assertFalse(t.cancel())`)
#[test]
fn cancel_finished_task_returns_false() {
    let lp = EventLoop::new_virtual();
    let t = lp.spawn(async { 1 });
    let t = lp
        .run_until_complete(async move {
            yield_now().await;
            t
        })
        .unwrap();
    assert!(t.is_done() && !t.is_cancelled());
    assert!(!t.cancel());
}

/// In asyncio the awaiting task sees CancelledError at its await when the inner future is
/// cancelled; in Rust it sees `Err(Error::Cancelled)` as the await's value.
/// CPython: test_tasks.py::BaseTaskTests::test_cancel_inner_future
#[test]
fn cancel_inner_future() {
    let lp = EventLoop::new_virtual();
    let f = LoopFuture::<i32>::new(&lp);
    let f2 = f.clone();
    let t = lp.spawn(async move { f2.await });
    lp.call_soon(move |_| {
        f.cancel();
    });
    let r = lp.run_until_complete(async move { t.await.unwrap() }).unwrap();
    assert!(r.unwrap_err().is_cancelled());
}

/// CPython: test_tasks.py::BaseTaskTests::test_cancel_current_task
#[test]
fn cancel_current_task_lands_at_next_await() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    let t = lp.spawn(async move {
        let lp = get_running_loop().unwrap();
        let me = lp.current_task().unwrap();
        assert!(lp.cancel_task(me));
        l.push("still running after cancel()");
        sleep(secs(100)).await;
        l.push("never");
    });
    let r = lp.run_until_complete(async move { t.await }).unwrap();
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(log.take(), ["still running after cancel()"]);
    assert_eq!(lp.time(), Duration::ZERO, "the 100 s timer was cancelled with the task (S2)");
}

/// CPython: test_tasks.py::BaseTaskTests::test_cancel_at_end
#[test]
fn cancel_at_end_ends_cancelled() {
    let lp = EventLoop::new_virtual();
    let t = lp.spawn(async move {
        let lp = get_running_loop().unwrap();
        lp.cancel_task(lp.current_task().unwrap());
        12
    });
    let id = t.id();
    let r = lp.run_until_complete(async move { t.await }).unwrap();
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(lp.task_state(id), None);
}

/// Cancelling a task that awaits another task cancels the inner one first; the inner's
/// cleanup runs before the outer's (K2).
/// CPython: test_tasks.py::BaseTaskTests::test_cancel_awaited_task
#[test]
fn cancel_awaited_task_cancels_inner_first() {
    struct Cleanup(&'static str, Log);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            self.1.push(format!("cleanup {}", self.0));
        }
    }
    let (lp, log) = virtual_loop();
    let l = log.clone();
    let outer = lp.spawn(async move {
        let _g = Cleanup("outer", l.clone());
        let l2 = l.clone();
        let inner = get_running_loop().unwrap().spawn(async move {
            let _g = Cleanup("inner", l2);
            sleep(secs(10)).await;
        });
        let _ = inner.await;
        l.push("outer resumed (never)");
    });
    let id = outer.id();
    lp.call_later(secs(1), move |lp| {
        assert!(lp.cancel_task(id));
    });
    let r = lp.run_until_complete(async move { outer.await }).unwrap();
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(log.take(), ["cleanup inner", "cleanup outer"]);
    assert_eq!(lp.time(), secs(1));
}

/// CPython: test_tasks.py::BaseTaskTests::test_task_cancel_sleeping_task
#[test]
fn cancel_sleeping_task_from_timer() {
    let lp = EventLoop::new_virtual();
    let out = lp
        .run_until_complete(async {
            let lp = get_running_loop().unwrap();
            let sleeper = lp.spawn(sleep(secs(5000)));
            let id = sleeper.id();
            lp.call_later(ms(100), move |lp| {
                lp.cancel_task(id);
            });
            match sleeper.await {
                Err(e) if e.is_cancelled() => "cancelled",
                _ => "slept in",
            }
        })
        .unwrap();
    assert_eq!(out, "cancelled");
    assert_eq!(lp.time(), ms(100));
}

/// Cancelling a sleeping task cancels its timer: the event log shows the cancellation and
/// the clock never reaches the deadline.
/// CPython: test_tasks.py::BaseTaskTests::test_sleep_cancel
#[test]
fn sleep_cancel_cancels_the_timer() {
    let (lp, rec) = traced_loop();
    let t = lp.spawn(sleep(secs(10)));
    let id = t.id();
    lp.call_soon(move |lp| {
        lp.cancel_task(id);
    });
    let r = lp.run_until_complete(async move { t.await }).unwrap();
    assert!(r.unwrap_err().is_cancelled());
    let kinds = rec.kinds();
    assert_eq!(kinds.iter().filter(|k| matches!(k, EventKind::TimerScheduled { .. })).count(), 1);
    assert_eq!(kinds.iter().filter(|k| matches!(k, EventKind::CallbackCancelled { .. })).count(), 1);
    assert!(kinds.iter().any(|k| matches!(k, EventKind::TaskFinished { outcome: Outcome::Cancelled, .. })));
    assert_eq!(lp.time(), Duration::ZERO);
}

/// CPython: test_tasks.py::BaseTaskTests::test_current_task
#[test]
fn current_task_inside_and_outside() {
    let lp = EventLoop::new_virtual();
    assert_eq!(lp.current_task(), None);
    let seen = Rc::new(RefCell::new(None));
    let s2 = seen.clone();
    let t = lp.spawn(async move {
        *s2.borrow_mut() = get_running_loop().unwrap().current_task();
    });
    let id = t.id();
    lp.run_until_complete(async move { t.await.unwrap() }).unwrap();
    assert_eq!(*seen.borrow(), Some(id));
    assert_eq!(lp.current_task(), None);
}

/// CPython: test_tasks.py::BaseTaskTests::test_current_task_with_interleaving_tasks
#[test]
fn current_task_with_interleaving_tasks() {
    let (lp, log) = virtual_loop();
    let (fut1, fut2) = (LoopFuture::<bool>::new(&lp), LoopFuture::<bool>::new(&lp));
    let (f1, f2, l) = (fut1.clone(), fut2.clone(), log.clone());
    let t1 = lp.spawn_named("task1", async move {
        let lp = get_running_loop().unwrap();
        l.push(lp.task_name(lp.current_task().unwrap()).unwrap());
        f1.await.unwrap();
        l.push(lp.task_name(lp.current_task().unwrap()).unwrap());
        f2.set_result(true).unwrap();
    });
    let (f1, f2, l) = (fut1.clone(), fut2.clone(), log.clone());
    let t2 = lp.spawn_named("task2", async move {
        let lp = get_running_loop().unwrap();
        l.push(lp.task_name(lp.current_task().unwrap()).unwrap());
        f1.set_result(true).unwrap();
        f2.await.unwrap();
        l.push(lp.task_name(lp.current_task().unwrap()).unwrap());
    });
    lp.run_until_complete(async move {
        t1.await.unwrap();
        t2.await.unwrap();
    })
    .unwrap();
    assert_eq!(log.take(), ["task1", "task2", "task1", "task2"]);
}

/// `sleep(0)` yields exactly one iteration: two tasks looping on it alternate strictly (S1).
/// CPython: test_tasks.py::BaseTaskTests::test_sleep (the `sleep(0)` fast path) and
/// test_base_events.py::BaseEventLoopTests::test_run_once
#[test]
fn sleep_zero_alternates_strictly() {
    let (lp, log) = virtual_loop();
    for name in ["A", "B"] {
        let l = log.clone();
        lp.spawn(async move {
            for i in 0..3 {
                l.push(format!("{name}{i}"));
                sleep(Duration::ZERO).await;
            }
        })
        .detach();
    }
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["A0", "B0", "A1", "B1", "A2", "B2"]);
    assert_eq!(lp.iteration(), 4); // three rounds, plus the round in which both return
}

/// A task that wakes itself (as `yield_now` does) is queued as its step ends, after what
/// the step itself scheduled, even when the wake came first (W5).
/// CPython: test_tasks.py::BaseTaskTests::test_sleep (the bare `yield` inside `sleep(0)`:
/// `Task.__step` calls `call_soon(self.__step)` only after the coroutine has yielded)
#[test]
fn a_self_wake_is_queued_when_the_step_ends() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    /// Wakes its task, then schedules a callback, then suspends; ready when polled again.
    struct WakeThenSchedule(bool, Log);
    impl Future for WakeThenSchedule {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            let l = self.1.clone();
            get_running_loop().unwrap().call_soon(move |_| l.push("callback scheduled after the wake"));
            Poll::Pending
        }
    }
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.spawn(async move {
        WakeThenSchedule(false, l.clone()).await;
        l.push("task resumed");
    })
    .detach();
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["callback scheduled after the wake", "task resumed"]);
}

/// A task sleeping `d` resumes one hop after its timer: after other callbacks due at the
/// same time.
/// CPython: test_tasks.py::BaseTaskTests::test_sleep (with a `call_at` at the same deadline)
#[test]
fn sleeping_task_resumes_after_timers_due_with_it() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.spawn(async move {
        sleep(secs(1)).await;
        l.push("task resumed");
    })
    .detach();
    lp.call_soon(|lp| {
        // scheduled after the task's first step has armed its 1 s timer
        let lp2 = lp.clone();
        let _ = lp2;
    });
    let l2 = log.clone();
    lp.call_later(secs(1), move |_| l2.push("plain timer"));
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["plain timer", "task resumed"]);
}

/// A panic inside a task becomes an error for whoever awaits it; the loop goes on (K4).
/// CPython: test_tasks.py::BaseTaskTests::test_exception_chaining_after_await (a raising task)
#[test]
fn panic_in_task_becomes_error_for_awaiter() {
    let (lp, log) = virtual_loop();
    let bad = lp.spawn_named("bad", async {
        yield_now().await;
        panic!("kaboom");
    });
    let l = log.clone();
    lp.spawn(async move { l.push("other task still runs") }).detach();
    let r = lp.run_until_complete(async move { bad.await }).unwrap();
    match r {
        Err(Error::Panicked(p)) => {
            assert_eq!(p.task, "bad");
            assert_eq!(p.message, "kaboom");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert_eq!(log.take(), ["other task still runs"]);
}

/// An error nobody retrieves is reported when the task is forgotten (K4).
/// CPython: test_futures.py::BaseFutureTests::test_tb_logger_exception_unretrieved
#[test]
fn unretrieved_task_panic_is_reported() {
    let lp = EventLoop::new_virtual();
    let reports = Log::new();
    let r2 = reports.clone();
    lp.set_exception_handler(move |m| r2.push(m.to_string()));
    lp.spawn_named("lost", async { panic!("nobody listens") }).detach();
    lp.run_until_idle().unwrap();
    assert_eq!(reports.take(), ["Task exception was never retrieved: lost panicked: nobody listens"]);
}

/// A retrieved error is not reported.
/// CPython: test_futures.py::BaseFutureTests::test_tb_logger_exception_retrieved
#[test]
fn retrieved_task_panic_is_not_reported() {
    let lp = EventLoop::new_virtual();
    let reports = Log::new();
    let r2 = reports.clone();
    lp.set_exception_handler(move |m| r2.push(m.to_string()));
    let t = lp.spawn(async { panic!("seen") });
    let r = lp.run_until_complete(async move { t.await }).unwrap();
    assert!(matches!(r, Err(Error::Panicked(_))));
    assert!(reports.take().is_empty());
}

/// Task done-callbacks are scheduled in registration order, also after completion.
/// CPython: test_tasks.py::BaseTaskTests::test_task_set_methods (done-callback part) /
/// test_futures.py::BaseFutureDoneCallbackTests::test_callbacks_invoked_on_set_result
#[test]
fn task_done_callbacks_in_order() {
    let (lp, log) = virtual_loop();
    let t = lp.spawn(async { yield_now().await });
    t.add_done_callback(log.cb("first"));
    t.add_done_callback(log.cb("second"));
    let t = lp
        .run_until_complete(async move {
            sleep(ms(1)).await;
            t
        })
        .unwrap();
    assert_eq!(log.take(), ["first", "second"]);
    t.add_done_callback(log.cb("after done"));
    assert!(log.take().is_empty());
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["after done"]);
}

/// `result()` on a running task is InvalidState; on a finished one it takes the value once.
/// CPython: test_tasks.py::BaseTaskTests::test_task_set_methods / test_futures.py::BaseFutureTests::test_result
#[test]
fn task_result_states() {
    let lp = EventLoop::new_virtual();
    let mut t = lp.spawn(async { 5 });
    assert!(matches!(t.result(), Err(Error::InvalidState(_))));
    assert_eq!(t.state(), TaskState::Ready);
    lp.run_until_idle().unwrap();
    assert_eq!(t.state(), TaskState::Done);
    assert_eq!(t.result(), Ok(5));
    assert!(matches!(t.result(), Err(Error::InvalidState(_))));
}

/// Reading the value hands the slot over (K6, see `Task`): the slab forgets an unnamed task at
/// once, and the handle still answers as asyncio's task object does after `result()`: done,
/// not cancelled, its name, `cancel()` false, the value not readable twice, a done-callback
/// scheduled (not run inline). A named task keeps its slot, and its name, until the handle
/// goes. looplab's own rule (asyncio keeps the task object alive as long as it is referenced).
#[test]
fn reading_the_value_frees_the_slot_and_the_handle_answers() {
    let lp = EventLoop::new_virtual();
    let mut plain = lp.spawn(async { 5 });
    let mut named = lp.spawn_named("keeper", async { 6 });
    let (plain_id, named_id) = (plain.id(), named.id());
    lp.run_until_idle().unwrap();
    assert_eq!(lp.snapshot().tasks.len(), 2);

    assert_eq!(plain.result(), Ok(5));
    assert_eq!(lp.task_state(plain_id), None, "an unnamed task's slot is freed by the read");
    assert_eq!(plain.id(), plain_id, "the handle's id does not change");
    assert_eq!((plain.state(), plain.is_done(), plain.is_cancelled()), (TaskState::Done, true, false));
    assert_eq!(plain.name(), format!("Task-{}", plain_id.number()));
    assert!(!plain.cancel());
    assert!(matches!(plain.result(), Err(Error::InvalidState(e)) if e.message.contains("already taken")));

    assert_eq!(named.result(), Ok(6));
    assert_eq!(lp.task_state(named_id), Some(TaskState::Done), "a named task keeps its slot");
    assert_eq!(named.name(), "keeper");
    assert_eq!(lp.snapshot().tasks.len(), 1);

    let log = Log::new();
    let l = log.clone();
    plain.add_done_callback(move |_| l.push("done-callback"));
    assert!(log.take().is_empty(), "scheduled, not run inline");
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["done-callback"]);

    // Awaiting hands over the same way; dropping the handles afterwards frees the rest once.
    let awaited = lp.spawn(async { 7 });
    let (first, second, awaited) = lp
        .run_until_complete(async move {
            let mut t = awaited;
            let first = (&mut t).await;
            let second = (&mut t).await;
            (first, second, t)
        })
        .unwrap();
    assert_eq!(first, Ok(7));
    assert!(matches!(second, Err(Error::InvalidState(_))), "{second:?}");
    assert!(awaited.is_done());
    drop((plain, named, awaited));
    assert!(lp.snapshot().tasks.is_empty());
}

/// A waker used after its task is gone does nothing (W2).
#[test]
fn stale_waker_is_harmless() {
    let lp = EventLoop::new_virtual();
    let stash: Rc<RefCell<Option<std::task::Waker>>> = Rc::default();
    let s2 = stash.clone();
    let t = lp.spawn(std::future::poll_fn(move |cx| {
        *s2.borrow_mut() = Some(cx.waker().clone());
        std::task::Poll::Ready(())
    }));
    lp.run_until_complete(async move { t.await.unwrap() }).unwrap();
    let (log, l) = (Log::new(), Log::new());
    let l2 = l.clone();
    let t2 = lp.spawn(async move {
        l2.push("new task step");
        yield_now().await;
    });
    stash.borrow().as_ref().unwrap().wake_by_ref(); // the old task's waker
    lp.run_until_complete(async move { t2.await.unwrap() }).unwrap();
    assert_eq!(l.take(), ["new task step"]); // polled exactly as scheduled, no extra poll
    assert!(log.take().is_empty());
}

/// Waking a queued task again does not queue it twice (W3).
#[test]
fn double_wake_queues_once() {
    let (lp, rec) = traced_loop();
    let polls = Rc::new(RefCell::new(0));
    let p2 = polls.clone();
    let t = lp.spawn(std::future::poll_fn(move |cx| {
        *p2.borrow_mut() += 1;
        if *p2.borrow() == 1 {
            cx.waker().wake_by_ref();
            cx.waker().wake_by_ref();
            #[allow(clippy::waker_clone_wake)] // on purpose: the owned-waker path
            cx.waker().clone().wake();
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    }));
    lp.run_until_complete(async move { t.await.unwrap() }).unwrap();
    assert_eq!(*polls.borrow(), 2);
    let woken =
        rec.kinds().iter().filter(|k| matches!(k, EventKind::TaskWoken { by: WakeSource::Task(_), .. })).count();
    assert_eq!(woken, 2, "one self-wake for the task, one for main woken by it");
}

/// `run_until_complete` inside a running loop is an error, not a panic.
/// CPython: test_events.py::EventLoopTestsMixin::test_run_until_complete_nesting
#[test]
fn run_until_complete_nesting_is_an_error() {
    let lp = EventLoop::new_virtual();
    let r = lp
        .run_until_complete(async {
            let lp = get_running_loop().unwrap();
            matches!(lp.run_until_complete(async {}), Err(LoopError::AlreadyRunning))
        })
        .unwrap();
    assert!(r);
}

/// `stop()` inside the awaited future's task ends `run_until_complete` with an error.
/// CPython: test_events.py::EventLoopTestsMixin::test_run_until_complete_stopped
#[test]
fn run_until_complete_stopped() {
    let lp = EventLoop::new_virtual();
    let r = lp.run_until_complete(async {
        get_running_loop().unwrap().stop();
        sleep(ms(100)).await;
    });
    assert!(matches!(r, Err(LoopError::Stopped)), "{r:?}");
}

/// `run_until_complete` of a sleep advances loop time by the sleep.
/// CPython: test_events.py::EventLoopTestsMixin::test_run_until_complete
#[test]
fn run_until_complete_sleep_advances_time() {
    let lp = EventLoop::new_virtual();
    lp.run_until_complete(sleep(ms(100))).unwrap();
    assert_eq!(lp.time(), ms(100));
}

/// `asyncio.run` cancels tasks still pending when main returns, and their cleanup runs; a
/// task created just before main returns still gets its first step.
/// CPython: test_runners.py::RunTests::test_asyncio_run_cancels_hanging_tasks
#[test]
fn run_cancels_leftover_tasks_after_their_first_step() {
    let log = Log::new();
    let l = log.clone();
    let out = looplab::run_virtual(async move {
        let l2 = l.clone();
        looplab::spawn(async move {
            l2.push("late task first step");
            sleep(secs(3600)).await;
            l2.push("never");
        })
        .detach();
        "main done"
    })
    .unwrap();
    assert_eq!(out, "main done");
    assert_eq!(log.take(), ["late task first step"]);
}

/// A done-callback that reads a detached task's error retrieves it: no "never retrieved"
/// report (the slot is freed only after the task's done-callbacks ran).
/// CPython: test_futures.py::BaseFutureTests::test_tb_logger_exception_result_retrieved
#[test]
fn error_read_by_a_done_callback_is_retrieved() {
    let (lp, log) = virtual_loop();
    let reports = Log::new();
    let r2 = reports.clone();
    lp.set_exception_handler(move |m| r2.push(m.to_string()));
    let t = lp.spawn_named("child", async { panic!("seen by the callback") });
    let id = t.id();
    let l = log.clone();
    t.add_done_callback(move |lp| {
        let e = lp.task_exception(id).expect("still readable in its done-callback");
        l.push(format!("callback read: {e}"));
    });
    drop(t); // detached
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["callback read: child panicked: seen by the callback"]);
    assert!(reports.take().is_empty());
    assert_eq!(lp.task_state(id), None, "slot freed after its callbacks");
}

/// K5: a task whose last step wakes it and then returns (a Rust future may: a combinator
/// that yields in one branch and completes in another) keeps its result, and nothing runs
/// it again (a wake through the lent waker is dropped with the step that finished, W5; one
/// through an owned waker leaves a stale ready-queue entry that runs nothing). Also when
/// that last step panics. asyncio has no counterpart (its wake-ups are done-callbacks of
/// awaited futures, and `__step` refuses a done task), so this is looplab's own rule.
#[test]
fn self_wake_in_the_last_step_keeps_the_outcome() {
    let (lp, _log) = virtual_loop();
    let out = lp
        .run_until_complete(async {
            let lp = get_running_loop().unwrap();
            let ok = lp.spawn(std::future::poll_fn(|cx| {
                cx.waker().wake_by_ref();
                std::task::Poll::Ready(5)
            }));
            let bad = lp.spawn(std::future::poll_fn(|cx| -> std::task::Poll<u8> {
                cx.waker().wake_by_ref();
                panic!("after waking itself")
            }));
            // Let both finish and their stale entries come up before anyone awaits.
            yield_now().await;
            yield_now().await;
            yield_now().await;
            (ok.await, bad.await)
        })
        .unwrap();
    assert_eq!(out.0.unwrap(), 5);
    assert!(matches!(out.1, Err(Error::Panicked(ref p)) if p.message == "after waking itself"), "{:?}", out.1);
}
