//! Ordering of locks, events, conditions, semaphores and queues: ports of CPython 3.11's
//! test_locks.py and test_queues.py, on the virtual clock.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{ms, virtual_loop};
use looplab::sync::{BoundedSemaphore, Condition, Event, Lock, LockGuard, RateLimiter, Semaphore};
use looplab::{LifoQueue, LoopHandle, PriorityQueue, Queue, QueueEmpty, QueueFull, yield_now};

/// A place to park guards so the test body can release them one by one.
type Held = Rc<RefCell<Vec<LockGuard>>>;

/// `name t=..ms`, for logs where time matters.
fn at(lp: &LoopHandle, what: &str) -> String {
    format!("{what} t={}", lp.time().as_millis())
}

/// CPython: test_locks.py::LockTests::test_lock
#[test]
fn lock_acquire_and_release() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.run_until_complete(async move {
        let lock = Lock::new();
        l.push(format!("locked={}", lock.locked()));
        let g = lock.acquire().await;
        l.push(format!("locked={}", lock.locked()));
        drop(g);
        l.push(format!("locked={}", lock.locked()));
    })
    .unwrap();
    assert_eq!(log.take(), ["locked=false", "locked=true", "locked=false"]);
}

/// Waiters acquire in FIFO order; a release wakes only the first; a task created at the
/// release queues behind the woken one.
/// CPython: test_locks.py::LockTests::test_acquire
#[test]
fn lock_waiters_acquire_in_fifo_order() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let lock = Lock::new();
        let held: Held = Rc::default();
        let first = lock.acquire().await;
        held.borrow_mut().push(first);
        let c = |n: u32| {
            let (lock, held, l) = (lock.clone(), held.clone(), l.clone());
            async move {
                let g = lock.acquire().await;
                l.push(format!("c{n} acquired"));
                held.borrow_mut().push(g);
            }
        };
        let _t1 = lpc.spawn(c(1));
        let _t2 = lpc.spawn(c(2));
        yield_now().await;
        l.push("release 1");
        held.borrow_mut().pop();
        yield_now().await;
        yield_now().await;
        let _t3 = lpc.spawn(c(3)); // a newcomer at the moment of the release
        l.push("release 2");
        held.borrow_mut().pop();
        yield_now().await;
        l.push("release 3");
        held.borrow_mut().pop();
        yield_now().await;
        l.push(format!("locked={}", lock.locked()));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "release 1",   // c1 and c2 queued behind the main task
            "c1 acquired", // only the first waiter was woken
            "release 2",   // c3 is created now, c2 is woken now
            "c2 acquired", // c3 could not barge ahead of the woken c2 (V2)
            "release 3",
            "c3 acquired",
            "locked=true", // c3 still holds it
        ]
    );
}

/// A cancelled acquire never takes the lock.
/// CPython: test_locks.py::LockTests::test_acquire_cancel
#[test]
fn lock_acquire_cancelled_leaves_lock_alone() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let lock = Lock::new();
        let g = lock.acquire().await;
        let lk = lock.clone();
        let task = lpc.spawn(async move { lk.acquire().await.release() });
        lpc.call_soon({
            let id = task.id();
            move |lp| {
                lp.cancel_task(id);
            }
        });
        l.push(format!("{:?}", task.await.map(|_| ()).unwrap_err().is_cancelled()));
        l.push(format!("waiters={} locked={}", lock.waiters(), lock.locked()));
        drop(g);
        l.push(format!("locked={}", lock.locked()));
    })
    .unwrap();
    assert_eq!(log.take(), ["true", "waiters=0 locked=true", "locked=false"]);
}

/// B is cancelled while A releases: C must get the lock (B's wake-up is passed on).
/// CPython: test_locks.py::LockTests::test_cancel_race
#[test]
fn lock_cancel_race_passes_wakeup_on() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let lock = Lock::new();
        let blocker = Event::new();
        let lockit = |name: &'static str, block: bool| {
            let (lock, l, blocker) = (lock.clone(), l.clone(), blocker.clone());
            async move {
                let _g = lock.acquire().await;
                l.push(format!("{name} acquired"));
                if block {
                    blocker.wait().await;
                }
                l.push(format!("{name} releases"));
            }
        };
        let ta = lpc.spawn(lockit("A", true));
        yield_now().await;
        let tb = lpc.spawn(lockit("B", false));
        yield_now().await;
        let tc = lpc.spawn(lockit("C", false));
        yield_now().await;
        l.push(format!("waiters={}", lock.waiters()));
        blocker.set();
        tb.cancel();
        yield_now().await;
        yield_now().await;
        l.push(format!("A done={} B cancelled={}", ta.is_done(), tb.is_cancelled()));
        tc.await.unwrap();
        l.push(format!("locked={}", lock.locked()));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "A acquired",
            "waiters=2",  // B, C
            "A releases", // wakes B (front), which is about to be dropped...
            "C acquired", // ... B was dropped woken, so it woke C (V3), one iteration later
            "C releases",
            "A done=true B cancelled=true", // main's second yield_now comes after C's step
            "locked=false",
        ]
    );
}

/// Acquire 4 times, cancel the second, release the first: only one more acquisition.
/// CPython: test_locks.py::LockTests::test_cancel_release_race
#[test]
fn lock_cancel_release_race_takes_one_lock() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let lock = Lock::new();
        let count = Rc::new(RefCell::new((0, 0))); // (calls, acquisitions)
        let held: Held = Rc::default();
        let first = lock.acquire().await;
        held.borrow_mut().push(first);
        let lockit = || {
            let (lock, count, held) = (lock.clone(), count.clone(), held.clone());
            async move {
                count.borrow_mut().0 += 1;
                let g = lock.acquire().await;
                count.borrow_mut().1 += 1;
                held.borrow_mut().push(g);
            }
        };
        let t1 = lpc.spawn(lockit());
        let t2 = lpc.spawn(lockit());
        let t3 = lpc.spawn(lockit());
        yield_now().await;
        let (id1, h) = (t1.id(), held.clone());
        lpc.call_soon(move |lp| {
            lp.cancel_task(id1);
            h.borrow_mut().pop();
        });
        l.push(format!("t1 cancelled={}", t1.await.unwrap_err().is_cancelled()));
        l.push(format!("(calls, acquisitions)={:?}", *count.borrow()));
        l.push(format!("t2 done={}", t2.is_done()));
        t3.cancel();
        yield_now().await;
        l.push(format!("t3 cancelled={}", t3.is_cancelled()));
    })
    .unwrap();
    assert_eq!(log.take(), ["t1 cancelled=true", "(calls, acquisitions)=(3, 1)", "t2 done=true", "t3 cancelled=true"]);
}

/// The woken first waiter is cancelled: the second one is woken instead. looplab keeps a
/// cancelled waiter queued until its task's next step (asyncio marks it cancelled at once, so
/// there the newcomer acquires directly); the wake-up is passed on either way.
/// CPython: test_locks.py::LockTests::test_finished_waiter_cancelled
#[test]
fn lock_finished_waiter_cancelled_wakes_next() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let lock = Lock::new();
        let g = lock.acquire().await;
        let lk = lock.clone();
        let tb = lpc.spawn(async move { lk.acquire().await.release() });
        yield_now().await;
        l.push(format!("waiters={}", lock.waiters()));
        let (lk, l2) = (lock.clone(), l.clone());
        let tc = lpc.spawn(async move {
            let _g = lk.acquire().await;
            l2.push("tc acquired");
        });
        tb.cancel();
        drop(g);
        yield_now().await;
        l.push(format!("tb cancelled={} waiters={}", tb.is_cancelled(), lock.waiters()));
        tc.await.unwrap();
    })
    .unwrap();
    assert_eq!(log.take(), ["waiters=1", "tb cancelled=true waiters=1", "tc acquired"]);
}

/// `async with lock:` is a guard: the end of the scope releases.
/// CPython: test_locks.py::LockTests::test_lock_by_with_statement
#[test]
fn lock_guard_scope_releases() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.run_until_complete(async move {
        let lock = Lock::new();
        {
            let _g = lock.acquire().await;
            l.push(format!("inside locked={}", lock.locked()));
            l.push(format!("try_acquire={}", lock.try_acquire().is_some()));
        }
        l.push(format!("after locked={}", lock.locked()));
    })
    .unwrap();
    assert_eq!(log.take(), ["inside locked=true", "try_acquire=false", "after locked=false"]);
}

/// `set()` wakes every waiter, in the order they started waiting.
/// CPython: test_locks.py::EventTests::test_wait
#[test]
fn event_set_wakes_waiters_in_order() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let ev = Event::new();
        let mut tasks = Vec::new();
        for n in 1..=3 {
            let (ev, l) = (ev.clone(), l.clone());
            tasks.push(lpc.spawn(async move {
                ev.wait().await;
                l.push(format!("c{n}"));
            }));
        }
        yield_now().await;
        l.push("set");
        ev.set();
        yield_now().await;
        l.push(format!("all done={}", tasks.iter().all(|t| t.is_done())));
    })
    .unwrap();
    assert_eq!(log.take(), ["set", "c1", "c2", "c3", "all done=true"]);
}

/// `wait()` on a set event returns without a trip through the loop.
/// CPython: test_locks.py::EventTests::test_wait_on_set
#[test]
fn event_wait_on_set_does_not_yield() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let ev = Event::new();
        ev.set();
        let l2 = l.clone();
        let other = lpc.spawn(async move { l2.push("other task ran") });
        ev.wait().await;
        l.push("wait returned");
        other.await.unwrap();
    })
    .unwrap();
    assert_eq!(log.take(), ["wait returned", "other task ran"]);
}

/// A cancelled waiter leaves the queue.
/// CPython: test_locks.py::EventTests::test_wait_cancel
#[test]
fn event_wait_cancel_removes_waiter() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let ev = Event::new();
        let e2 = ev.clone();
        let t = lpc.spawn(async move { e2.wait().await });
        yield_now().await;
        l.push(format!("{ev:?}"));
        t.cancel();
        l.push(format!("cancelled={}", t.await.unwrap_err().is_cancelled()));
        l.push(format!("{ev:?}"));
    })
    .unwrap();
    assert_eq!(log.take(), ["Event { set: false, waiters: 1 }", "cancelled=true", "Event { set: false, waiters: 0 }"]);
}

/// `clear()` after `set()` does not take back a delivered wake-up.
/// CPython: test_locks.py::EventTests::test_clear_with_waiters
#[test]
fn event_clear_with_waiters_still_wakes_them() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let ev = Event::new();
        let (e2, l2) = (ev.clone(), l.clone());
        let t = lpc.spawn(async move {
            e2.wait().await;
            l2.push("woke");
        });
        yield_now().await;
        ev.set();
        ev.clear();
        l.push(format!("is_set={}", ev.is_set()));
        ev.set();
        ev.set();
        l.push(format!("is_set={}", ev.is_set()));
        t.await.unwrap();
    })
    .unwrap();
    assert_eq!(log.take(), ["is_set=false", "is_set=true", "woke"]);
}

/// Condition waiters are notified in order and each re-acquires the lock before returning.
/// CPython: test_locks.py::ConditionTests::test_wait
#[test]
fn condition_notify_wakes_in_order_with_lock() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let cond = Condition::new();
        let mut tasks = Vec::new();
        for n in 1..=3 {
            let (cond, l) = (cond.clone(), l.clone());
            tasks.push(lpc.spawn(async move {
                let g = cond.acquire().await;
                let g = cond.wait(g).await;
                l.push(format!("c{n} woke, locked={}", cond.locked()));
                drop(g);
            }));
        }
        yield_now().await;
        l.push(format!("waiters={} locked={}", cond.waiters(), cond.locked()));
        let g = cond.acquire().await;
        cond.notify(1).unwrap();
        l.push("notify(1)");
        yield_now().await;
        l.push("still holding: nobody woke");
        drop(g);
        yield_now().await;
        yield_now().await;
        let g = cond.acquire().await;
        cond.notify(2).unwrap();
        l.push("notify(2)");
        drop(g);
        for t in tasks {
            t.await.unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "waiters=3 locked=false", // each released the lock inside wait()
            "notify(1)",
            "still holding: nobody woke", // c1 was notified but needs the lock
            "c1 woke, locked=true",
            "notify(2)",
            "c2 woke, locked=true",
            "c3 woke, locked=true",
        ]
    );
}

/// A cancelled condition wait leaves the waiters list and the lock free.
/// CPython: test_locks.py::ConditionTests::test_wait_cancel
#[test]
fn condition_wait_cancel_cleans_up() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let cond = Condition::new();
        let c2 = cond.clone();
        let t = lpc.spawn(async move {
            let g = c2.acquire().await;
            drop(c2.wait(g).await);
        });
        yield_now().await;
        l.push(format!("waiters={} locked={}", cond.waiters(), cond.locked()));
        t.cancel();
        l.push(format!("cancelled={}", t.await.unwrap_err().is_cancelled()));
        l.push(format!("waiters={} locked={}", cond.waiters(), cond.locked()));
    })
    .unwrap();
    assert_eq!(log.take(), ["waiters=1 locked=false", "cancelled=true", "waiters=0 locked=false"]);
}

/// A notified waiter cancelled while it waits for the lock gives the lock wake-up on.
/// CPython: test_locks.py::ConditionTests::test_wait_cancel_contested
#[test]
fn condition_wait_cancel_contested() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let cond = Condition::new();
        let (c2, l2) = (cond.clone(), l.clone());
        let waiter = lpc.spawn(async move {
            let g = c2.acquire().await;
            let _g = c2.wait(g).await;
            l2.push("waiter got the lock back");
        });
        yield_now().await;
        let g = cond.acquire().await;
        cond.notify(1).unwrap();
        yield_now().await; // the waiter is notified and now queues for the lock
        waiter.cancel();
        drop(g);
        l.push(format!("cancelled={}", waiter.await.unwrap_err().is_cancelled()));
        l.push(format!("locked={}", cond.locked()));
        let _g = cond.acquire().await;
        l.push("main re-acquired");
    })
    .unwrap();
    assert_eq!(log.take(), ["cancelled=true", "locked=false", "main re-acquired"]);
}

/// `wait_for(predicate)` re-checks after each notification.
/// CPython: test_locks.py::ConditionTests::test_wait_for
#[test]
fn condition_wait_for_predicate() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let cond = Condition::new();
        let presult = Rc::new(RefCell::new(false));
        let (c2, l2, p2) = (cond.clone(), l.clone(), presult.clone());
        let t = lpc.spawn(async move {
            let g = c2.acquire().await;
            let _g = c2
                .wait_for(g, || {
                    l2.push("predicate checked");
                    *p2.borrow()
                })
                .await;
            l2.push("wait_for returned");
        });
        yield_now().await;
        let g = cond.acquire().await;
        cond.notify(1).unwrap();
        drop(g);
        yield_now().await;
        yield_now().await;
        *presult.borrow_mut() = true;
        let g = cond.acquire().await;
        cond.notify(1).unwrap();
        drop(g);
        t.await.unwrap();
    })
    .unwrap();
    assert_eq!(log.take(), ["predicate checked", "predicate checked", "predicate checked", "wait_for returned"]);
}

/// `notify(n)` wakes n waiters; `notify_all` the rest.
/// CPython: test_locks.py::ConditionTests::test_notify
#[test]
fn condition_notify_counts_and_notify_all() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let cond = Condition::new();
        let mut tasks = Vec::new();
        for n in 1..=4 {
            let (cond, l) = (cond.clone(), l.clone());
            tasks.push(lpc.spawn(async move {
                let g = cond.acquire().await;
                drop(cond.wait(g).await);
                l.push(format!("c{n}"));
            }));
        }
        yield_now().await;
        let g = cond.acquire().await;
        cond.notify(1).unwrap();
        drop(g);
        for _ in 0..3 {
            yield_now().await;
        }
        l.push("notify_all");
        let g = cond.acquire().await;
        cond.notify_all().unwrap();
        drop(g);
        for t in tasks {
            t.await.unwrap();
        }
    })
    .unwrap();
    assert_eq!(log.take(), ["c1", "notify_all", "c2", "c3", "c4"]);
}

/// notify without the lock is asyncio's RuntimeError.
/// CPython: test_locks.py::ConditionTests::test_notify_unacquired
#[test]
fn condition_notify_unacquired_is_an_error() {
    let cond = Condition::new();
    let e = cond.notify(1).unwrap_err();
    assert_eq!(e.to_string(), "RuntimeError: cannot notify on un-acquired lock");
    assert!(cond.notify_all().is_err());
}

/// A wait that times out still re-acquires the lock before returning.
/// CPython: test_locks.py::ConditionTests::test_timeout_in_block
#[test]
fn condition_timeout_reacquires_lock() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let cond = Condition::new();
        let g = cond.acquire().await;
        let (g, timed_out) = cond.wait_timeout(g, ms(100)).await;
        l.push(at(&lpc, &format!("timed_out={timed_out} locked={}", cond.locked())));
        drop(g);
        l.push(format!("waiters={} locked={}", cond.waiters(), cond.locked()));
    })
    .unwrap();
    assert_eq!(log.take(), ["timed_out=true locked=true t=100", "waiters=0 locked=false"]);
}

/// Permits are handed to waiters in order; a newcomer queues.
/// CPython: test_locks.py::SemaphoreTests::test_acquire
#[test]
fn semaphore_hands_permits_in_order() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let sem = Semaphore::new(3);
        let p1 = sem.acquire().await;
        let p2 = sem.acquire().await;
        l.push(format!("locked={}", sem.locked()));
        let mut tasks = Vec::new();
        let c = |n: u32| {
            let (sem, l) = (sem.clone(), l.clone());
            async move {
                sem.acquire().await.forget();
                l.push(format!("c{n}"));
            }
        };
        for n in 1..=3 {
            tasks.push(lpc.spawn(c(n)));
        }
        yield_now().await;
        l.push(format!("locked={} waiters={} value={}", sem.locked(), sem.waiters(), sem.value()));
        tasks.push(lpc.spawn(c(4)));
        drop(p1);
        drop(p2);
        l.push(format!("value={}", sem.value()));
        yield_now().await;
        l.push(format!("waiters={} value={}", sem.waiters(), sem.value()));
        sem.release();
        for t in tasks {
            t.await.unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "locked=false",
            "c1",
            "locked=true waiters=2 value=0",
            "value=0", // both permits went straight to c2 and c3
            "c2",
            "c3",
            "waiters=1 value=0", // c4 waits
            "c4",
        ]
    );
}

/// Two waiters cancelled before the release: the permit goes to the third.
/// CPython: test_locks.py::SemaphoreTests::test_acquire_cancel_before_awoken
#[test]
fn semaphore_cancel_before_awoken() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let sem = Semaphore::new(0);
        let t: Vec<_> = (0..4)
            .map(|_| {
                let s = sem.clone();
                lpc.spawn(async move { s.acquire().await.forget() })
            })
            .collect();
        yield_now().await;
        t[0].cancel();
        t[1].cancel();
        sem.release();
        yield_now().await;
        yield_now().await;
        l.push(format!("done: {:?}", t.iter().map(|t| t.is_done()).collect::<Vec<_>>()));
        l.push(format!("cancelled: {:?}", t.iter().map(|t| t.is_cancelled()).collect::<Vec<_>>()));
        t[3].cancel();
        yield_now().await;
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "done: [true, true, true, false]", // t1's woken permit was passed on to t3 (V3)
            "cancelled: [true, true, false, false]",
        ]
    );
}

/// A cancelled woken waiter does not leave the semaphore hanging.
/// CPython: test_locks.py::SemaphoreTests::test_acquire_hang
#[test]
fn semaphore_acquire_hang() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let sem = Semaphore::new(0);
        let (s1, s2) = (sem.clone(), sem.clone());
        let t1 = lpc.spawn(async move { s1.acquire().await.forget() });
        let t2 = lpc.spawn(async move { s2.acquire().await.forget() });
        yield_now().await;
        t1.cancel();
        sem.release();
        yield_now().await;
        yield_now().await;
        l.push(format!("locked={} t2 done={}", sem.locked(), t2.is_done()));
    })
    .unwrap();
    assert_eq!(log.take(), ["locked=true t2 done=true"]);
}

/// Three tasks each take the permit twice: strictly round-robin.
/// CPython: test_locks.py::SemaphoreTests::test_acquire_fifo_order
#[test]
fn semaphore_fifo_order_round_robin() {
    let (lp, log) = virtual_loop();
    let l = log.clone();
    lp.run_until_complete(async move {
        let sem = Semaphore::new(1);
        let coro = |tag: &'static str| {
            let (sem, l) = (sem.clone(), l.clone());
            async move {
                for round in 1..=2 {
                    let p = sem.acquire().await;
                    l.push(format!("{tag}_{round}"));
                    looplab::sleep(ms(10)).await;
                    drop(p);
                }
            }
        };
        looplab::task_group(|tg| async move {
            for tag in ["c1", "c2", "c3"] {
                tg.spawn(coro(tag)).unwrap().detach();
            }
        })
        .await
        .unwrap();
    })
    .unwrap();
    assert_eq!(log.take(), ["c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"]);
}

/// Release twice with three waiters; the one that re-acquires queues behind c3.
/// CPython: test_locks.py::SemaphoreTests::test_acquire_fifo_order_2
#[test]
fn semaphore_fifo_order_2() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let sem = Semaphore::new(1);
        let (s1, s2, s3) = (sem.clone(), sem.clone(), sem.clone());
        let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
        let t1 = lpc.spawn(async move {
            s1.acquire().await.forget();
            l1.push("1");
        });
        let t2 = lpc.spawn(async move {
            s2.acquire().await.forget();
            l2.push("2");
            s2.release();
            s2.acquire().await.forget();
            l2.push("4");
        });
        let t3 = lpc.spawn(async move {
            s3.acquire().await.forget();
            l3.push("3");
        });
        yield_now().await;
        sem.release();
        sem.release();
        looplab::combinators::gather_tasks(vec![t1, t2, t3]).await.unwrap();
    })
    .unwrap();
    assert_eq!(log.take(), ["1", "2", "3", "4"]);
}

/// A cancelled waiter is skipped; the two permits go to c2 and c3.
/// CPython: test_locks.py::SemaphoreTests::test_acquire_fifo_order_3
#[test]
fn semaphore_fifo_order_3_skips_cancelled() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let sem = Semaphore::new(0);
        let tasks: Vec<_> = (1..=3)
            .map(|n| {
                let (s, l) = (sem.clone(), l.clone());
                lpc.spawn(async move {
                    s.acquire().await.forget();
                    l.push(format!("{n}"));
                })
            })
            .collect();
        yield_now().await;
        tasks[0].cancel();
        yield_now().await;
        sem.release();
        sem.release();
        let results = looplab::combinators::gather_all_tasks(tasks).await;
        l.push(format!("{:?}", results.iter().map(|r| r.is_ok()).collect::<Vec<_>>()));
    })
    .unwrap();
    assert_eq!(log.take(), ["2", "3", "[false, true, true]"]);
}

/// Releasing a bounded semaphore above its initial value is asyncio's ValueError.
/// CPython: test_locks.py::SemaphoreTests::test_release_not_acquired
#[test]
fn bounded_semaphore_over_release_is_an_error() {
    let sem = BoundedSemaphore::new(1);
    assert_eq!(sem.release().unwrap_err().to_string(), "ValueError: BoundedSemaphore released too many times");
    let lp = looplab::EventLoop::new_virtual();
    let s = sem.clone();
    let ok = lp
        .run_until_complete(async move {
            s.acquire().await.forget();
            let locked = s.locked();
            (locked, s.release().is_ok(), s.release().is_ok())
        })
        .unwrap();
    assert_eq!(ok, (true, true, false));
}

/// The putter blocks after two items and resumes one iteration after a get.
/// CPython: test_queues.py::QueueBasicTests::test_maxsize
#[test]
fn queue_maxsize_blocks_putter() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let q = Queue::new(2);
        let (q2, l2) = (q.clone(), l.clone());
        let t = lpc.spawn(async move {
            for i in 0..3 {
                q2.put(i).await;
                l2.push(format!("put {i}"));
            }
        });
        yield_now().await;
        yield_now().await;
        l.push(format!("full={} got {}", q.full(), q.get().await));
        yield_now().await;
        l.push(format!("got {}", q.get().await));
        l.push(format!("got {}", q.get().await));
        l.push(format!("done={}", t.is_done()));
    })
    .unwrap();
    assert_eq!(log.take(), ["put 0", "put 1", "full=true got 0", "put 2", "got 1", "got 2", "done=true"]);
}

/// A cancelled getter does not swallow the item: the other getter gets it.
/// CPython: test_queues.py::QueueGetTests::test_get_cancelled_race
#[test]
fn queue_get_cancelled_race() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let q = Queue::unbounded();
        let (q1, q2) = (q.clone(), q.clone());
        let t1 = lpc.spawn(async move { q1.get().await });
        let t2 = lpc.spawn(async move { q2.get().await });
        yield_now().await;
        t1.cancel();
        yield_now().await;
        l.push(format!("t1 done={} waiting={:?}", t1.is_done(), q.waiting()));
        q.put("a").await;
        yield_now().await;
        l.push(format!("t2 got {}", t2.await.unwrap()));
    })
    .unwrap();
    assert_eq!(log.take(), ["t1 done=true waiting=(1, 0)", "t2 got a"]);
}

/// A reader cancelled after being woken passes the wake-up on; no item is lost.
/// CPython: test_queues.py::QueuePutTests::test_get_cancel_drop_one_pending_reader
#[test]
fn queue_get_cancel_drop_one_pending_reader() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let q = Queue::unbounded();
        let q1 = q.clone();
        let reader = lpc.spawn(async move { q1.get().await });
        yield_now().await;
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        reader.cancel();
        let r = reader.await;
        l.push(format!("first reader cancelled={}", r.unwrap_err().is_cancelled()));
        let q2 = q.clone();
        l.push(format!("retry got {}", lpc.spawn(async move { q2.get().await }).await.unwrap()));
    })
    .unwrap();
    assert_eq!(log.take(), ["first reader cancelled=true", "retry got 1"]);
}

/// A writer cancelled after being woken does not lose its slot for the retry.
/// CPython: test_queues.py::QueuePutTests::test_put_cancel_drop
#[test]
fn queue_put_cancel_drop() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let q = Queue::new(1);
        q.put_nowait(1).unwrap();
        let q1 = q.clone();
        let writer = lpc.spawn(async move { q1.put(2).await });
        yield_now().await;
        l.push(format!("got {}", q.get_nowait().unwrap()));
        writer.cancel();
        l.push(format!("writer cancelled={}", writer.await.unwrap_err().is_cancelled()));
        let q2 = q.clone();
        lpc.spawn(async move { q2.put(2).await }).await.unwrap();
        l.push(format!("got {} qsize={}", q.get_nowait().unwrap(), q.qsize()));
    })
    .unwrap();
    assert_eq!(log.take(), ["got 1", "writer cancelled=true", "got 2 qsize=0"]);
}

/// Blocked putters are served in order; a cancelled one is skipped.
/// CPython: test_queues.py::QueuePutTests::test_put_cancelled_race
#[test]
fn queue_put_cancelled_race() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let q = Queue::new(1);
        let put = |v: &'static str| {
            let q = q.clone();
            lpc.spawn(async move { q.put(v).await })
        };
        let (a, b, c) = (put("a"), put("b"), put("X"));
        yield_now().await;
        l.push(format!("a done={} b done={}", a.is_done(), b.is_done()));
        c.cancel();
        yield_now().await;
        l.push(format!("c done={}", c.is_done()));
        l.push(q.get_nowait().unwrap().to_string());
        yield_now().await;
        l.push(q.get_nowait().unwrap().to_string());
        b.await.unwrap();
        l.push(format!("empty={}", q.empty()));
    })
    .unwrap();
    assert_eq!(log.take(), ["a done=true b done=false", "c done=true", "a", "b", "empty=true"]);
}

/// `put` wakes a getter but does not hand it the item: a `get_nowait` in between takes it
/// and the getter waits again.
/// CPython: test_queues.py::QueuePutTests::test_put_with_waiting_getters
#[test]
fn queue_put_wakes_getter_without_handing_item() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let q = Queue::unbounded();
        let (q1, l1) = (q.clone(), l.clone());
        let getter = lpc.spawn(async move {
            let v = q1.get().await;
            l1.push(format!("getter got {v}"));
        });
        yield_now().await;
        q.put_nowait("a").unwrap(); // wakes the getter...
        l.push(format!("main stole {}", q.get_nowait().unwrap())); // ...but we take it first
        yield_now().await;
        l.push(format!("waiting={:?}", q.waiting())); // the getter queued again
        q.put("b").await;
        getter.await.unwrap();
    })
    .unwrap();
    assert_eq!(log.take(), ["main stole a", "waiting=(1, 0)", "getter got b"]);
}

/// CPython: test_queues.py::LifoQueueTests::test_order and PriorityQueueTests::test_order
#[test]
fn lifo_and_priority_order() {
    let lifo = LifoQueue::unbounded();
    let prio = PriorityQueue::unbounded();
    for i in [1, 3, 2] {
        lifo.put_nowait(i).unwrap();
        prio.put_nowait(i).unwrap();
    }
    let l: Vec<i32> = (0..3).map(|_| lifo.get_nowait().unwrap()).collect();
    let p: Vec<i32> = (0..3).map(|_| prio.get_nowait().unwrap()).collect();
    assert_eq!((l, p), (vec![2, 3, 1], vec![1, 2, 3]));
}

/// CPython: test_queues.py::QueueGetTests::test_nonblocking_get_exception and
/// QueuePutTests::test_nonblocking_put_exception
#[test]
fn nowait_errors() {
    let q = Queue::new(1);
    assert_eq!(q.get_nowait(), Err(QueueEmpty));
    q.put_nowait(1).unwrap();
    assert_eq!(q.put_nowait(2), Err(QueueFull(2)));
    assert_eq!((q.qsize(), q.full(), q.empty()), (1, true, false));
}

/// join() returns after the last task_done(); one too many is asyncio's ValueError.
/// CPython: test_queues.py::_QueueJoinTestMixin::test_task_done
#[test]
fn queue_task_done_and_join() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let q = Queue::unbounded();
        let mut workers = Vec::new();
        for w in 0..2 {
            let (q, l, lp) = (q.clone(), l.clone(), lpc.clone());
            workers.push(lpc.spawn(async move {
                loop {
                    let item: u64 = q.get().await;
                    looplab::sleep(ms(item)).await;
                    l.push(at(&lp, &format!("w{w} did {item}")));
                    q.task_done().unwrap();
                }
            }));
        }
        for item in [30, 10, 20] {
            q.put_nowait(item).unwrap();
        }
        q.join().await;
        l.push(at(&lpc, "joined"));
        l.push(format!("extra task_done: {}", q.task_done().unwrap_err()));
        for w in workers {
            w.cancel();
        }
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "w1 did 10 t=10",
            "w0 did 30 t=30",
            "w1 did 20 t=30",
            "joined t=30",
            "extra task_done: ValueError: task_done() called too many times"
        ]
    );
}

/// join() on a queue with nothing unfinished returns at once.
/// CPython: test_queues.py::_QueueJoinTestMixin::test_join_empty_queue
#[test]
fn queue_join_empty_returns() {
    let (lp, _log) = virtual_loop();
    let t = lp
        .run_until_complete(async {
            let q: Queue<u8> = Queue::unbounded();
            q.join().await;
            q.put_nowait(1).unwrap();
            q.get_nowait().unwrap();
            q.task_done().unwrap();
            q.join().await;
            looplab::get_running_loop().unwrap().iteration()
        })
        .unwrap();
    assert_eq!(t, 1); // never yielded
}

/// At most N acquisitions per period, served in order.
/// CPython: (no asyncio class) built on test_locks.py::SemaphoreTests::test_acquire_fifo_order
#[test]
fn rate_limiter_allows_n_per_period() {
    let (lp, log) = virtual_loop();
    let (l, lpc) = (log.clone(), lp.handle());
    lp.run_until_complete(async move {
        let rl = RateLimiter::new(2, Duration::from_secs(1));
        let tasks: Vec<_> = (1..=5)
            .map(|n| {
                let (rl, l, lp) = (rl.clone(), l.clone(), lpc.clone());
                lpc.spawn(async move {
                    rl.acquire().await;
                    l.push(at(&lp, &format!("call {n}")));
                })
            })
            .collect();
        looplab::combinators::gather_tasks(tasks).await.unwrap();
    })
    .unwrap();
    assert_eq!(log.take(), ["call 1 t=0", "call 2 t=0", "call 3 t=1000", "call 4 t=1000", "call 5 t=2000"]);
}
