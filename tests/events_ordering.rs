//! Ordering of callbacks and timers on the loop: ports of CPython 3.11's test_base_events
//! and test_events, on the virtual clock.

mod common;

use common::{Log, ms, secs, virtual_loop, virtual_loop_with};
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
