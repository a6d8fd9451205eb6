//! Ordering of gather, wait, as_completed, wait_for, timeout, shield and task groups:
//! ports of CPython 3.11's test_tasks.py, test_waitfor.py, test_timeouts.py and
//! test_taskgroups.py, on the virtual clock. A child "raises" by panicking (K4).

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{Log, ms, virtual_loop};
use looplab::combinators::{gather_tasks, shield, task_group, wait_for_task};
use looplab::scoped::{AsyncResource, Scoped};
use looplab::{
    AsyncIterator, AsyncRange, Error, LoopHandle, Queue, ReturnWhen, as_completed, gather, gather_all, sleep, timeout,
    timeout_at, wait, wait_for, yield_now,
};

/// `what t=..ms`.
fn at(lp: &LoopHandle, what: &str) -> String {
    format!("{what} t={}", lp.time().as_millis())
}

/// A child future, boxed so children of both kinds fit one `Vec`.
type Boxed = std::pin::Pin<Box<dyn Future<Output = i32>>>;

/// A child that sleeps `d` ms, logs, and returns `v`.
fn child(lp: &LoopHandle, log: &Log, name: &'static str, d: u64, v: i32) -> Boxed {
    let (lp, log) = (lp.clone(), log.clone());
    Box::pin(async move {
        sleep(ms(d)).await;
        log.push(at(&lp, &format!("{name} done")));
        v
    })
}

/// A child that sleeps `d` ms then "raises".
fn failing(lp: &LoopHandle, log: &Log, name: &'static str, d: u64) -> Boxed {
    let (lp, log) = (lp.clone(), log.clone());
    Box::pin(async move {
        sleep(ms(d)).await;
        log.push(at(&lp, &format!("{name} raises")));
        panic!("{name} failed");
    })
}

/// A guard that logs when the future holding it is dropped (the cleanup of a cancelled task).
struct Cleanup(Log, &'static str);
impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.push(format!("{} cleanup", self.1));
    }
}

/// Results come back in argument order, whatever the completion order.
/// CPython: test_tasks.py::GatherTestsBase::test_result_exception_success
#[test]
fn gather_results_in_argument_order() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    let out = lp
        .run_until_complete(async move {
            let r = gather(vec![child(&h, &l, "a", 30, 1), child(&h, &l, "b", 10, 2), child(&h, &l, "c", 20, 3)]).await;
            l.push(at(&h, "gathered"));
            r
        })
        .unwrap();
    assert_eq!(out.unwrap(), [1, 2, 3]);
    assert_eq!(log.take(), ["b done t=10", "c done t=20", "a done t=30", "gathered t=30"]);
}

/// Fail-fast: the first error returns at once; the other children keep running.
/// CPython: test_tasks.py::GatherTestsBase::test_one_exception
#[test]
fn gather_fail_fast_returns_first_error_others_keep_running() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let r = gather(vec![child(&h, &l, "a", 30, 1), failing(&h, &l, "b", 10), child(&h, &l, "c", 20, 3)]).await;
        let e = r.unwrap_err();
        l.push(at(&h, &format!("gather failed: {}", matches!(e, Error::Panicked(ref p) if p.message == "b failed"))));
        sleep(ms(50)).await;
    })
    .unwrap();
    assert_eq!(log.take(), ["b raises t=10", "gather failed: true t=10", "c done t=20", "a done t=30"]);
}

/// `return_exceptions=True`: one result per child, in order, after all finished.
/// CPython: test_tasks.py::GatherTestsBase::test_return_exceptions
#[test]
fn gather_all_collects_every_outcome() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let r = gather_all(vec![child(&h, &l, "a", 30, 1), failing(&h, &l, "b", 10), child(&h, &l, "c", 20, 3)]).await;
        let shape: Vec<String> =
            r.iter().map(|x| x.as_ref().map_or_else(|e| format!("err({e})"), |v| v.to_string())).collect();
        l.push(at(&h, &format!("{shape:?}")));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["b raises t=10", "c done t=20", "a done t=30", r#"["1", "err(Task-3 panicked: b failed)", "3"] t=30"#]
    );
}

/// gather completes one callback after its last child: the awaiting task resumes two
/// iterations after the child's last step (child -> done-callback -> awaiter).
/// CPython: tasks.py::gather (_done_callback sets the outer future; its waiter wakes later)
#[test]
fn gather_completes_one_hop_after_last_child() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let (l2, h2) = (l.clone(), h.clone());
        let g = gather(vec![async move { l2.push(format!("child returns, iteration {}", h2.iteration())) }]);
        g.await.unwrap();
        l.push(format!("gather returned, iteration {}", h.iteration()));
    })
    .unwrap();
    assert_eq!(log.take(), ["child returns, iteration 2", "gather returned, iteration 4"]);
}

/// Cancelling the task that awaits a gather cancels its children in argument order (G1).
/// CPython: test_tasks.py::BaseTaskTests::test_cancel_gather_2
#[test]
fn cancelling_gather_cancels_children_in_order() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let mk = |name: &'static str| {
            let l = l.clone();
            async move {
                let _c = Cleanup(l, name);
                sleep(ms(100)).await;
            }
        };
        let outer = h.spawn(gather(vec![mk("a"), mk("b"), mk("c")]));
        sleep(ms(10)).await;
        outer.cancel();
        l.push(format!("outer cancelled={}", outer.await.unwrap_err().is_cancelled()));
        yield_now().await;
        l.push(at(&h, "after"));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "a cleanup", // cancel requests in argument order (G1); the children step before
            "b cleanup", // the task awaiting `outer`, which is woken after them
            "c cleanup",
            "outer cancelled=true",
            "after t=10",
        ]
    );
}

/// The tuple form takes children of different types.
/// CPython: test_tasks.py::GatherTestsBase::test_result_exception_success (heterogeneous)
#[test]
fn gather_macro_heterogeneous() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let (a, b) = looplab::gather!(child(&h, &l, "num", 20, 7), async { "text" }).await.unwrap();
        l.push(format!("{a} {b}"));
        let (x, y) = looplab::gather_all!(failing(&h, &l, "bad", 5), async { 1u8 }).await;
        l.push(format!("{} {:?}", x.is_err(), y));
    })
    .unwrap();
    assert_eq!(log.take(), ["num done t=20", "7 text", "bad raises t=25", "true Ok(1)"]);
}

/// ALL_COMPLETED: returns when the last task finishes, cancels nothing.
/// CPython: test_tasks.py::BaseTaskTests::test_wait
#[test]
fn wait_all_completed() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let a = h.spawn(child(&h, &l, "a", 100, 1));
        let b = h.spawn(child(&h, &l, "b", 150, 2));
        let (done, pending) = wait(vec![a, b], ReturnWhen::AllCompleted, None).await;
        l.push(at(&h, &format!("done={} pending={}", done.len(), pending.len())));
    })
    .unwrap();
    assert_eq!(log.take(), ["a done t=100", "b done t=150", "done=2 pending=0 t=150"]);
}

/// FIRST_COMPLETED: returns after the first; the rest keep running.
/// CPython: test_tasks.py::BaseTaskTests::test_wait_first_completed
#[test]
fn wait_first_completed_leaves_rest_running() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let a = h.spawn(child(&h, &l, "a", 100, 1));
        let b = h.spawn(child(&h, &l, "b", 10, 2));
        let (done, pending) = wait(vec![a, b], ReturnWhen::FirstCompleted, None).await;
        l.push(at(
            &h,
            &format!("done={:?} pending={}", done.iter().map(|t| t.name()).collect::<Vec<_>>(), pending.len()),
        ));
        for mut t in pending {
            l.push(format!("later {:?}", (&mut t).await));
        }
    })
    .unwrap();
    assert_eq!(log.take(), ["b done t=10", r#"done=["Task-3"] pending=1 t=10"#, "a done t=100", "later Ok(1)"]);
}

/// FIRST_EXCEPTION: returns at the first failure.
/// CPython: test_tasks.py::BaseTaskTests::test_wait_first_exception
#[test]
fn wait_first_exception() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let a = h.spawn(child(&h, &l, "a", 100, 1));
        let b = h.spawn(failing(&h, &l, "b", 20));
        let c = h.spawn(child(&h, &l, "c", 10, 3));
        let (done, pending) = wait(vec![a, b, c], ReturnWhen::FirstException, None).await;
        l.push(at(&h, &format!("done={} pending={}", done.len(), pending.len())));
        for t in pending {
            t.cancel();
        }
    })
    .unwrap();
    assert_eq!(log.take(), ["c done t=10", "b raises t=20", "done=2 pending=1 t=20"]);
}

/// A timeout is not an error and cancels nothing.
/// CPython: test_tasks.py::BaseTaskTests::test_wait_first_exception_in_wait (timeout part: test_wait_with_timeout)
#[test]
fn wait_timeout_cancels_nothing() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let a = h.spawn(child(&h, &l, "a", 10, 1));
        let b = h.spawn(child(&h, &l, "b", 150, 2));
        let (done, pending) = wait(vec![a, b], ReturnWhen::AllCompleted, Some(ms(110))).await;
        l.push(at(&h, &format!("done={} pending={}", done.len(), pending.len())));
        for t in pending {
            l.push(format!("b -> {:?}", t.await));
        }
    })
    .unwrap();
    assert_eq!(log.take(), ["a done t=10", "done=1 pending=1 t=110", "b done t=150", "b -> Ok(2)"]);
}

/// Results in completion order.
/// CPython: test_tasks.py::BaseTaskTests::test_as_completed
#[test]
fn as_completed_yields_in_completion_order() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let tasks = vec![
            h.spawn(child(&h, &l, "a", 30, 1)),
            h.spawn(child(&h, &l, "b", 10, 2)),
            h.spawn(child(&h, &l, "c", 20, 3)),
        ];
        let mut it = as_completed(tasks, None);
        while let Some(r) = it.next().await {
            l.push(at(&h, &format!("got {}", r.unwrap())));
        }
    })
    .unwrap();
    assert_eq!(log.take(), ["b done t=10", "got 2 t=10", "c done t=20", "got 3 t=20", "a done t=30", "got 1 t=30"]);
}

/// After the timeout the rest are TimeoutError; the tasks keep running.
/// CPython: test_tasks.py::BaseTaskTests::test_as_completed_with_timeout
#[test]
fn as_completed_with_timeout() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let tasks = vec![h.spawn(child(&h, &l, "a", 100, 1)), h.spawn(child(&h, &l, "b", 10, 2))];
        let results = as_completed(tasks, Some(ms(50))).collect().await;
        l.push(at(&h, &format!("{results:?}")));
        sleep(ms(100)).await;
    })
    .unwrap();
    assert_eq!(log.take(), ["b done t=10", "[Ok(2), Err(Timeout(TimeoutError))] t=50", "a done t=100"]);
}

/// shield passes the result through.
/// CPython: test_tasks.py::BaseTaskTests::test_shield_result
#[test]
fn shield_passes_result() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let inner = h.spawn(child(&h, &l, "inner", 10, 42));
        l.push(format!("{:?}", shield(inner).await));
    })
    .unwrap();
    assert_eq!(log.take(), ["inner done t=10", "Ok(42)"]);
}

/// Cancelling the task awaiting a shield leaves the inner task running.
/// CPython: test_tasks.py::BaseTaskTests::test_shield_effect
#[test]
fn shield_protects_inner_from_outer_cancel() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let inner = h.spawn(child(&h, &l, "inner", 100, 1));
        let id = inner.id();
        let outer = h.spawn(shield(inner));
        sleep(ms(10)).await;
        outer.cancel();
        l.push(at(&h, &format!("outer cancelled={}", outer.await.unwrap_err().is_cancelled())));
        l.push(format!("inner state={:?}", h.task_state(id)));
        sleep(ms(100)).await;
    })
    .unwrap();
    assert_eq!(log.take(), ["outer cancelled=true t=10", "inner state=Some(Waiting)", "inner done t=100"]);
}

/// wait_for returns the result when it is in time.
/// CPython: test_waitfor.py::AsyncioWaitForTest::test_wait_for
#[test]
fn wait_for_in_time() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let r = wait_for(child(&h, &l, "job", 50, 5), ms(100)).await;
        l.push(at(&h, &format!("{r:?}")));
    })
    .unwrap();
    assert_eq!(log.take(), ["job done t=50", "Ok(5) t=50"]);
}

/// On timeout the inner task is cancelled and its cleanup runs before TimeoutError.
/// CPython: test_waitfor.py::AsyncioWaitForTest::test_wait_for_waits_for_task_cancellation
#[test]
fn wait_for_timeout_waits_for_cleanup() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let l2 = l.clone();
        let r = wait_for(
            async move {
                let _c = Cleanup(l2, "inner");
                sleep(ms(1000)).await;
            },
            ms(100),
        )
        .await;
        l.push(at(&h, &format!("{r:?}")));
    })
    .unwrap();
    assert_eq!(log.take(), ["inner cleanup", "Err(Timeout(TimeoutError)) t=100"]);
}

/// timeout 0: the coroutine is never started.
/// CPython: test_waitfor.py::AsyncioWaitForTest::test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started
#[test]
fn wait_for_zero_never_starts() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let l2 = l.clone();
        let r = wait_for(async move { l2.push("started") }, ms(0)).await;
        l.push(at(&h, &format!("{r:?}")));
    })
    .unwrap();
    assert_eq!(log.take(), ["Err(Timeout(TimeoutError)) t=0"]);
}

/// A result that arrives in the same iteration as the deadline is returned, not lost.
/// CPython: test_waitfor.py::AsyncioWaitForTest::test_wait_for_race_condition
#[test]
fn wait_for_result_at_deadline_is_kept() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let job = h.spawn(child(&h, &l, "job", 100, 7)); // its timer is armed first
        yield_now().await;
        let r = wait_for_task(job, ms(100)).await;
        l.push(at(&h, &format!("{r:?}")));
    })
    .unwrap();
    assert_eq!(log.take(), ["job done t=100", "Ok(7) t=100"]);
}

/// Cancelling the outer task of wait_for cancels the inner one (G1).
/// CPython: test_waitfor.py::AsyncioWaitForTest::test_cancel_wait_for
#[test]
fn cancelling_wait_for_cancels_inner() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let l2 = l.clone();
        let outer = h.spawn(wait_for(
            async move {
                let _c = Cleanup(l2, "inner");
                sleep(ms(1000)).await;
            },
            ms(500),
        ));
        sleep(ms(10)).await;
        outer.cancel();
        l.push(format!("outer cancelled={}", outer.await.unwrap_err().is_cancelled()));
        yield_now().await;
        l.push(at(&h, "end"));
    })
    .unwrap();
    assert_eq!(log.take(), ["inner cleanup", "outer cancelled=true", "end t=10"]);
}

/// The body is dropped at the deadline (its cleanup runs) and TimeoutError returned.
/// CPython: test_timeouts.py::TimeoutTests::test_timeout_basic
#[test]
fn timeout_basic() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let l2 = l.clone();
        let r = timeout(ms(10), async move {
            let _c = Cleanup(l2, "body");
            sleep(ms(1000)).await;
        })
        .await;
        l.push(at(&h, &format!("{r:?}")));
    })
    .unwrap();
    assert_eq!(log.take(), ["body cleanup", "Err(Timeout(TimeoutError)) t=10"]);
}

/// timeout_at with a deadline in loop time; not triggered when the body is quick.
/// CPython: test_timeouts.py::TimeoutTests::test_timeout_at_basic and test_timeout_not_called
#[test]
fn timeout_at_and_not_triggered() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let r = timeout_at(h.time() + ms(10), sleep(ms(100))).await;
        l.push(at(&h, &format!("{r:?}")));
        let r = timeout(ms(100), async {
            sleep(ms(10)).await;
            3
        })
        .await;
        l.push(at(&h, &format!("{r:?}")));
        sleep(ms(200)).await; // the cancelled timer must not fire into anything
        l.push(at(&h, "end"));
    })
    .unwrap();
    assert_eq!(log.take(), ["Err(Timeout(TimeoutError)) t=10", "Ok(3) t=20", "end t=220"]);
}

/// timeout(0) interrupts even sleep(0).
/// CPython: test_timeouts.py::TimeoutTests::test_timeout_zero_sleep_zero
#[test]
fn timeout_zero_interrupts_sleep_zero() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let l2 = l.clone();
        let r = timeout(ms(0), async move {
            yield_now().await;
            l2.push("body went on");
        })
        .await;
        l.push(at(&h, &format!("{r:?}")));
    })
    .unwrap();
    assert_eq!(log.take(), ["Err(Timeout(TimeoutError)) t=0"]);
}

/// The inner of two nested timeouts fires first; the outer one is not triggered.
/// CPython: test_timeouts.py::TimeoutTests::test_nested_timeouts
#[test]
fn nested_timeouts() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let r = timeout(ms(50), timeout(ms(10), sleep(ms(100)))).await;
        l.push(at(&h, &format!("{r:?}")));
    })
    .unwrap();
    assert_eq!(log.take(), ["Ok(Err(Timeout(TimeoutError))) t=10"]);
}

/// The group waits for every child.
/// CPython: test_taskgroups.py::TestTaskGroup::test_taskgroup_01
#[test]
fn task_group_waits_for_all_children() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let (l2, h2) = (l.clone(), h.clone());
        let r = task_group(|tg| async move {
            let a = tg.spawn(child(&h2, &l2, "t1", 100, 42)).unwrap();
            let b = tg.spawn(child(&h2, &l2, "t2", 200, 11)).unwrap();
            l2.push("body done");
            (a, b)
        })
        .await;
        let (mut a, mut b) = r.unwrap();
        l.push(at(&h, &format!("group done {:?} {:?}", a.result(), b.result())));
    })
    .unwrap();
    assert_eq!(log.take(), ["body done", "t1 done t=100", "t2 done t=200", "group done Ok(42) Ok(11) t=200"]);
}

/// A failing child cancels its siblings (spawn order) and the body, then the group
/// returns every error after all children finished.
/// CPython: test_taskgroups.py::TestTaskGroup::test_taskgroup_03
#[test]
fn task_group_failure_cancels_siblings_and_body() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let (l2, h2) = (l.clone(), h.clone());
        let r = task_group(|tg| async move {
            let mk = |name: &'static str, d: u64| {
                let l = l2.clone();
                async move {
                    let _c = Cleanup(l, name);
                    sleep(ms(d)).await;
                }
            };
            tg.spawn(mk("s1", 1000)).unwrap().detach();
            tg.spawn(failing(&h2, &l2, "bad", 10)).unwrap().detach();
            tg.spawn(mk("s2", 1000)).unwrap().detach();
            let _c = Cleanup(l2.clone(), "body");
            sleep(ms(500)).await;
            l2.push("body finished (must not happen)");
        })
        .await;
        let e = r.unwrap_err();
        l.push(at(&h, &format!("{e}: {:?}", e.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "bad raises t=10",
            "s1 cleanup", // siblings cancelled in spawn order...
            "s2 cleanup",
            "body cleanup", // ...then the body, in the parent's step
            r#"unhandled errors in a TaskGroup (1 sub-exception): ["Task-3 panicked: bad failed"] t=10"#,
        ]
    );
}

/// Cancelling the parent cancels the children (G1).
/// CPython: test_taskgroups.py::TestTaskGroup::test_cancellation
#[test]
fn task_group_parent_cancel_cancels_children() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let l2 = l.clone();
        let parent = h.spawn(task_group(|tg| async move {
            for name in ["c1", "c2"] {
                let l = l2.clone();
                tg.spawn(async move {
                    let _c = Cleanup(l, name);
                    sleep(ms(1000)).await;
                })
                .unwrap()
                .detach();
            }
        }));
        sleep(ms(10)).await;
        parent.cancel();
        l.push(format!("parent cancelled={}", parent.await.unwrap_err().is_cancelled()));
        yield_now().await;
    })
    .unwrap();
    assert_eq!(log.take(), ["c1 cleanup", "c2 cleanup", "parent cancelled=true"]);
}

/// Spawning into an aborting or finished group is asyncio's RuntimeError.
/// CPython: test_taskgroups.py::TestTaskGroup::test_taskgroup_21 (create_task on a finished group)
#[test]
fn task_group_spawn_after_exit_is_refused() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.run_until_complete(async move {
        let kept = Rc::new(RefCell::new(None));
        let k2 = kept.clone();
        task_group(|tg| async move { *k2.borrow_mut() = Some(tg) }).await.unwrap();
        let tg = kept.borrow_mut().take().unwrap();
        l.push(format!("{}", tg.spawn(async {}).unwrap_err()));
    })
    .unwrap();
    assert_eq!(log.take(), ["invalid state: TaskGroup is finished"]);
}

/// `async for x in AsyncRange(1, 5)`: one value every half second.
/// CPython: test_asyncgen.py (the __anext__ protocol); seed program AsyncRange
#[test]
fn async_range_and_queue_iteration() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let (l2, h2) = (l.clone(), h.clone());
        AsyncRange::new(1, 4).for_each(move |x| l2.push(at(&h2, &format!("got {x}")))).await;
        let q = Queue::unbounded();
        for i in 0..5 {
            q.put_nowait(i).unwrap();
        }
        l.push(format!("{:?}", q.iter().take(3).collect().await));
    })
    .unwrap();
    assert_eq!(log.take(), ["got 1 t=500", "got 2 t=1000", "got 3 t=1500", "[0, 1, 2]"]);
}

/// A resource whose release awaits: close() in place, or a spawned close on drop.
/// CPython: test_asyncio/test_tasks.py has none; contextlib's asynccontextmanager semantics
#[test]
fn scoped_resource_close_and_drop() {
    struct Conn(Log, &'static str);
    impl AsyncResource for Conn {
        async fn close(self) {
            sleep(ms(10)).await;
            self.0.push(format!("{} closed", self.1));
        }
    }
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let c = Scoped::open(async { Conn(l.clone(), "a") }).await;
        c.close().await;
        l.push(at(&h, "after a"));
        {
            let _c = Scoped::new(Conn(l.clone(), "b"));
        }
        l.push(at(&h, "after b scope"));
        sleep(ms(20)).await;
    })
    .unwrap();
    assert_eq!(log.take(), ["a closed", "after a t=10", "after b scope t=10", "b closed"]);
}

/// gather of tasks already spawned, as `asyncio.gather(*tasks)`.
/// CPython: test_tasks.py::BaseTaskTests::test_gather_shield
#[test]
fn gather_of_existing_tasks() {
    let (lp, log) = virtual_loop();
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let t = vec![h.spawn(child(&h, &l, "x", 20, 1)), h.spawn(child(&h, &l, "y", 10, 2))];
        l.push(format!("{:?}", gather_tasks(t).await));
    })
    .unwrap();
    assert_eq!(log.take(), ["y done t=10", "x done t=20", "Ok([1, 2])"]);
}

/// Children that fail after a fail-fast gather completed are not "never retrieved" (asyncio's
/// `_done_callback` calls `fut.exception()`; nothing is reported), and a
/// child that also has its own done-callback keeps both in registration order (G4).
/// CPython: tasks.py::gather `_done_callback` (`if outer.done(): fut.exception()`)
#[test]
fn gather_late_failures_are_retrieved_and_callbacks_keep_their_order() {
    let (lp, log) = virtual_loop();
    let reports = log.clone();
    lp.set_exception_handler(move |m| reports.push(format!("reported: {m}")));
    let (l, h) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let r = gather(vec![failing(&h, &l, "a", 10), failing(&h, &l, "b", 20), child(&h, &l, "c", 30, 3)]).await;
        l.push(at(&h, &format!("first error: {}", r.is_err())));
        let t = h.spawn(child(&h, &l, "d", 10, 4));
        let l2 = l.clone();
        t.add_done_callback(move |_| l2.push("d's own callback"));
        let g = gather_tasks(vec![t]);
        l.push(format!("{:?}", g.await));
        sleep(ms(100)).await;
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "a raises t=10",
            "first error: true t=10",
            "b raises t=20",
            "d done t=20",
            "d's own callback",
            "Ok([4])",
            "c done t=30",
        ]
    );
}
