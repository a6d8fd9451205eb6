//! Ordering of callbacks and timers on the loop: ports of CPython 3.11's test_base_events
//! and test_events, on the virtual clock.

// `async move { t.await }` is on purpose: run_until_complete runs it as the main task.
#![allow(clippy::redundant_async_block, clippy::async_yields_async)]

mod common;

use common::{Log, ms, secs, virtual_loop, virtual_loop_with};
use looplab::trace::{EventKind, TimeoutReason};
use looplab::{EventLoop, LoopError, TimerBackend};
use std::time::Duration;

/// asyncio: `call_soon` is FIFO, `call_later(0)` waits for the timer phase, and a callback
/// scheduled by a callback runs one iteration later (E1, E2).
/// CPython: test_base_events.py::BaseEventLoopTests::test__run_once_schedule_handle
#[test]
fn soon_then_due_timers_then_nested() {
    let (lp, log) = virtual_loop();
    lp.call_later(Duration::ZERO, log.cb("later(0)"));
    let (a, inner) = (log.cb("soon A"), log.cb("soon from A"));
    lp.call_soon(move |lp| {
        a(lp);
        lp.call_soon(inner);
    });
    lp.call_soon(log.cb("soon B"));
    lp.run_until_idle().unwrap();
    assert_eq!(
        log.take(),
        [
            "soon A",      // iteration 1, phase 4, in registration order
            "soon B",      //
            "later(0)",    // due in phase 3, queued behind A and B
            "soon from A", // scheduled during phase 4: waits for iteration 2 (E2)
        ]
    );
    assert_eq!(lp.time(), Duration::ZERO); // virtual time never moved
}

/// CPython: test_events.py::EventLoopTestsMixin::test_call_soon
#[test]
fn call_soon_runs_in_order() {
    let (lp, log) = virtual_loop();
    for i in 0..5 {
        lp.call_soon(log.cb(&format!("cb{i}")));
    }
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["cb0", "cb1", "cb2", "cb3", "cb4"]);
}

/// CPython: test_events.py::EventLoopTestsMixin::test_call_later
#[test]
fn call_later_waits_its_delay() {
    let (lp, log) = virtual_loop();
    let l2 = log.clone();
    lp.call_later(ms(100), move |lp| l2.push(format!("fired at {:?}", lp.time())));
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["fired at 100ms"]);
}

/// Equal deadlines fire in scheduling order (E3, looplab's rule).
/// CPython: test_base_events.py::BaseEventLoopTests::test_call_at (there the heap's order)
#[test]
fn equal_deadlines_fire_in_scheduling_order_on_wheel_and_heap() {
    for backend in [TimerBackend::Wheel, TimerBackend::Heap] {
        let lp = virtual_loop_with(backend);
        let log = Log::new();
        for i in 0..10 {
            lp.call_at(secs(1), log.cb(&i.to_string()));
        }
        lp.run_until_idle().unwrap();
        assert_eq!(log.take(), ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], "{backend:?}");
    }
}

/// The asyncio-ties heap reproduces CPython 3.11's order for ten equal `call_at`s followed
/// by a later `call_at(stop)`: measured with
/// `for i in range(10): loop.call_at(t, out.append, i)` then `loop.call_at(t + 0.01, loop.stop)`
/// and `run_forever()`, which prints `[0, 2, 6, 5, 9, 8, 7, 1, 3, 4]` on CPython 3.11.7.
/// (The later timer is part of the heap's shape; without it `heapq` pops 0,2,6,9,8,5,7,4,1,3.)
/// CPython: test_base_events.py::BaseEventLoopTests::test_call_at (tie behaviour observed)
#[test]
fn asyncio_tie_mode_matches_cpython_heap_order() {
    let lp = virtual_loop_with(TimerBackend::HeapAsyncioTies);
    let log = Log::new();
    for i in 0..10 {
        lp.call_at(secs(1), log.cb(&i.to_string()));
    }
    lp.call_at(secs(2), |lp| lp.stop());
    lp.run_forever().unwrap();
    assert_eq!(log.take(), ["0", "2", "6", "5", "9", "8", "7", "1", "3", "4"]);
}

/// A cancelled handle never runs, even when it is already in the batch (E4).
/// CPython: test_base_events.py::BaseEventLoopTests::test__run_once_cancelled_event_cleanup
#[test]
fn cancelled_in_same_batch_never_runs() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    let victim_slot: std::rc::Rc<std::cell::RefCell<Option<looplab::Handle>>> = Default::default();
    let v2 = victim_slot.clone();
    lp.call_soon(move |_| {
        l.push("first");
        v2.borrow().as_ref().unwrap().cancel();
    });
    let victim = lp.call_soon(log.cb("victim"));
    *victim_slot.borrow_mut() = Some(victim.clone());
    lp.call_soon(log.cb("third"));
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["first", "third"]);
    assert!(victim.cancelled());
}

/// `stop()` before `run_forever()` runs exactly one iteration (E5).
/// CPython: test_base_events.py::BaseEventLoopTests::test_run_forever_pre_stopped... (test_events.py::EventLoopTestsMixin::test_run_once_in_executor... ) see test_base_events.py::RunningLoopTests
#[test]
fn stop_before_run_forever_runs_one_iteration() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.call_soon(move |lp| {
        l.push("one");
        let l2 = l.clone();
        lp.call_soon(move |_| l2.push("two"));
    });
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.take(), ["one"]);
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(log.take(), ["two"]);
}

/// A panicking callback is reported and the loop goes on (E7).
/// CPython: test_base_events.py::BaseEventLoopTests::test_default_exc_handler_callback
#[test]
fn panicking_callback_is_reported_and_loop_continues() {
    let (lp, log) = virtual_loop();
    let reports = Log::new();
    let r2 = reports.clone();
    lp.set_exception_handler(move |m| r2.push(m.to_string()));
    lp.call_soon(|_| panic!("boom"));
    lp.call_soon(log.cb("after"));
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["after"]);
    let r = reports.take();
    assert_eq!(r.len(), 1);
    assert!(r[0].contains("panicked: boom"), "{r:?}");
}

/// A loop waiting on a future that nothing can complete reports a deadlock.
#[test]
fn deadlock_is_reported_with_waiting_tasks() {
    let lp = EventLoop::new_virtual();
    let fut = looplab::LoopFuture::<i32>::new(&lp);
    let f2 = fut.clone();
    let err = lp.run_until_complete(f2).unwrap_err();
    match err {
        LoopError::Deadlock(d) => {
            assert_eq!(d.waiting.len(), 1);
            assert_eq!(d.waiting[0].name, "Task-1");
        }
        other => panic!("expected deadlock, got {other:?}"),
    }
}

/// Deadlines already in the past fire in deadline order, earliest first.
/// CPython: test_base_events.py::BaseEventLoopTests::test_call_later_negative_delays
#[test]
fn past_deadlines_fire_in_deadline_order() {
    let (lp, log) = virtual_loop();
    lp.run_until_complete(looplab::sleep(secs(5))).unwrap();
    lp.call_at(secs(4), log.cb("a")); // 1 s in the past
    lp.call_at(secs(3), log.cb("b")); // 2 s in the past
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["b", "a"]);
}

/// `call_at` uses loop time; the callback sees the time it was due.
/// CPython: test_base_events.py::BaseEventLoopTests::test_time_and_call_at
#[test]
fn time_and_call_at() {
    let (lp, log) = virtual_loop();
    let when = lp.time() + ms(100);
    let l = log.clone();
    lp.call_at(when, move |lp| l.push(format!("{:?}", lp.time())));
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["100ms"]);
}

/// The poll timeout of an idle iteration is exactly the time to the earliest live timer;
/// a cancelled earlier timer does not shorten it.
/// CPython: test_base_events.py::BaseEventLoopTests::test__run_once
#[test]
fn run_once_timeout_is_earliest_live_deadline() {
    let (lp, rec) = common::traced_loop();
    let h1 = lp.call_later(secs(5), |_| {});
    lp.call_later(secs(10), |_| {});
    h1.cancel();
    lp.call_soon(|lp| lp.stop());
    lp.run_forever().unwrap(); // iteration 1: ready work, timeout 0
    lp.stop();
    lp.run_forever().unwrap(); // iteration 2: stopping, timeout 0
    rec.take();
    let l = lp.handle();
    lp.call_later(secs(11), move |_| l.stop());
    lp.run_forever().unwrap();
    let starts: Vec<_> = rec
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::IterationStarted { timeout, reason, .. } => Some((timeout, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        [
            (Some(10_000_000_000), TimeoutReason::Timer { deadline: 10_000_000_000 }), // not 5 s
            (Some(1_000_000_000), TimeoutReason::Timer { deadline: 11_000_000_000 }),
        ]
    );
}

/// A due timer's callback runs in the same iteration; what it schedules waits one more.
/// CPython: test_base_events.py::BaseEventLoopTests::test__run_once_schedule_handle
#[test]
fn due_timer_runs_this_iteration_its_call_soon_next() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.call_later(ms(1), move |lp| {
        l.push(format!("timer in iteration {}", lp.iteration()));
        let l2 = l.clone();
        lp.call_soon(move |lp| l2.push(format!("its call_soon in iteration {}", lp.iteration())));
    });
    lp.run_until_idle().unwrap();
    assert_eq!(log.take(), ["timer in iteration 1", "its call_soon in iteration 2"]);
}

/// Many cancelled timers are purged from the heap by asyncio's rule (more than 100 and more
/// than half cancelled).
/// CPython: test_base_events.py::BaseEventLoopTests::test__run_once_cancelled_event_cleanup
#[test]
fn cancelled_timers_are_cleaned_up_by_asyncio_rule() {
    let lp = virtual_loop_with(TimerBackend::Heap);
    lp.call_later(secs(3000), |_| {});
    let hs: Vec<_> = (0..200).map(|_| lp.call_later(secs(3600), |_| {})).collect();
    for h in &hs {
        h.cancel();
    }
    lp.call_soon(|lp| lp.stop());
    lp.run_forever().unwrap();
    let snap = lp.timer_stats();
    assert_eq!(snap.live, 1);
    assert!(snap.compactions >= 1, "{snap:?}");
    assert_eq!(snap.cancelled_in_heap, 0);
}

/// `call_soon_threadsafe` from another thread wakes a loop blocked in its poll; a pool-like
/// `keep_alive` keeps the virtual clock from jumping past the 100 ms timer meanwhile.
/// CPython: test_events.py::EventLoopTestsMixin::test_call_soon_threadsafe
#[test]
fn call_soon_threadsafe_from_another_thread() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.call_later(ms(100), move |lp| {
        l.push("hello");
        lp.stop();
    });
    let ts = lp.threadsafe_handle();
    let guard = lp.keep_alive();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let th = std::thread::spawn(move || {
        rx.recv().unwrap(); // wait until the loop runs
        let l = Log::new(); // not shared: the callback runs on the loop thread
        drop(l);
        ts.call_soon_threadsafe(|lp| lp.trace_note("from thread")).unwrap();
        ts.call_soon_threadsafe(move |_| drop(guard)).unwrap();
    });
    let l2 = log.clone();
    lp.call_soon(move |_| {
        l2.push("loop running");
        tx.send(()).unwrap();
    });
    let l3 = log.clone();
    let (rec, _) = (looplab::trace::Recorder::new(), ());
    lp.add_trace_sink(rec.clone());
    lp.run_forever().unwrap();
    th.join().unwrap();
    let notes: Vec<_> = rec.kinds().into_iter().filter(|k| matches!(k, EventKind::Note { .. })).collect();
    assert_eq!(notes.len(), 1);
    drop(l3);
    assert_eq!(log.take(), ["loop running", "hello"]);
    assert_eq!(lp.time(), ms(100));
}

/// From the loop's own thread, thread-safe calls queue like call_soon: `world` before the
/// 100 ms `hello`.
/// CPython: test_events.py::EventLoopTestsMixin::test_call_soon_threadsafe_same_thread
#[test]
fn call_soon_threadsafe_same_thread() {
    let (lp, rec) = common::traced_loop();
    lp.call_later(ms(100), move |lp| {
        lp.trace_note("hello");
        lp.stop();
    });
    lp.threadsafe_handle().call_soon_threadsafe(|lp| lp.trace_note("world")).unwrap();
    lp.run_forever().unwrap();
    let notes: Vec<_> = rec
        .kinds()
        .into_iter()
        .filter_map(|k| match k {
            EventKind::Note { text } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(notes, ["world", "hello"]);
}

/// A closed loop refuses to run and to schedule, with errors, not panics.
/// CPython: test_base_events.py::BaseEventLoopTests::test_close
#[test]
fn closed_loop_refuses_work() {
    let lp = EventLoop::new_virtual();
    assert!(!lp.is_closed());
    lp.close().unwrap();
    assert!(lp.is_closed());
    lp.close().unwrap(); // closing twice is fine
    assert!(matches!(lp.run_forever(), Err(LoopError::Closed)));
    assert!(matches!(lp.run_until_complete(async {}), Err(LoopError::Closed)));
    assert!(matches!(lp.try_call_soon(|_| {}), Err(LoopError::Closed)));
    assert!(matches!(lp.threadsafe_handle().call_soon_threadsafe(|_| {}), Err(LoopError::Closed)));
}

/// Closing drops pending tasks: their destructors (cleanup) run.
/// CPython: test_base_events.py::BaseEventLoopTests::test_run_until_complete_loop_orphan_future_close_loop
#[test]
fn close_drops_pending_tasks_and_runs_their_cleanup() {
    struct Cleanup(Log);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            self.0.push("cleanup ran");
        }
    }
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.spawn(async move {
        let _g = Cleanup(l);
        looplab::sleep(secs(3600)).await;
    })
    .detach();
    lp.call_soon(|lp| lp.stop());
    lp.run_forever().unwrap();
    assert!(log.take().is_empty());
    lp.close().unwrap();
    assert_eq!(log.take(), ["cleanup ran"]);
}

/// The real clock gives the same order as the virtual one (a 1 ms program).
#[test]
#[cfg_attr(miri, ignore = "real clock: interpreted, scheduling the four timers takes longer than their 1 ms spacing")]
fn same_order_on_real_and_virtual_clock() {
    let run = |lp: EventLoop| {
        let log = Log::new();
        for (i, d) in [3u64, 1, 2, 1].iter().enumerate() {
            lp.call_later(ms(*d), log.cb(&format!("t{i}")));
        }
        lp.call_soon(log.cb("soon"));
        lp.run_until_idle().unwrap();
        log.take()
    };
    let v = run(EventLoop::new_virtual());
    let r = run(EventLoop::new());
    assert_eq!(v, ["soon", "t1", "t3", "t2", "t0"]);
    assert_eq!(v, r);
}

/// L3: a sink attached in the middle of an iteration hears what user code does at once (a
/// note, a spawn) and the loop's own steps (the rest of this iteration's task steps) from
/// the next iteration on. looplab's own rule: asyncio has no event stream.
#[test]
fn a_sink_attached_mid_iteration_hears_the_loops_own_steps_from_the_next_one() {
    let lp = EventLoop::new_virtual();
    let rec = looplab::trace::Recorder::new();
    let r = rec.clone();
    lp.call_soon(move |lp| {
        lp.add_trace_sink(r.clone());
        lp.trace_note("attached");
    });
    // Queued behind the callback: its first step runs in the same iteration, untraced.
    let mut t = lp.spawn(async {
        looplab::yield_now().await;
        7
    });
    let id = t.id();
    lp.run_until_idle().unwrap();
    assert_eq!(t.result().unwrap(), 7);
    let kinds = rec.kinds();
    assert!(matches!(&kinds[0], EventKind::Note { text } if text == "attached"), "{kinds:?}");
    assert!(
        matches!(kinds[1], EventKind::IterationStarted { iteration: 2, ready: 1, .. }),
        "the task's first step (iteration 1) is not heard: {kinds:?}"
    );
    assert_eq!(
        kinds[2..],
        [
            EventKind::TaskPolled { task: id },
            EventKind::TaskFinished { task: id, outcome: looplab::trace::Outcome::Done },
        ],
        "{kinds:?}"
    );
}
