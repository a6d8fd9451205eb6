//! The concurrency guide's thread synchronisation, as the loop offers it: `Lock`,
//! `Semaphore`, `BoundedSemaphore`, `Event` and `Condition`, one short scene each.
//!
//! The guide shows `threading` primitives. On one loop, tasks only switch at an `await`, so
//! the same races appear exactly where a task awaits in the middle of a read-modify-write,
//! and the same primitives fix them (asyncio has the same five, in `asyncio.locks`; there is
//! no `RLock`, since a task that awaits its own lock would wait forever).
//!
//! ```text
//! cargo run --example thread_primitives -- --fast --table
//! ```
//!
//! # What to look for
//! 1. Lock: five tasks each read the counter, yield, and write it back plus one. Without
//!    the lock every task reads 0 before anyone writes: the counter ends at 1. With it the
//!    read-yield-write is one step for the others: 5. The lock passes to waiters in FIFO
//!    order (V2).
//! 2. Semaphore(3): six users, at most three inside at once; users 3, 4, 5 enter at 1.0 s
//!    when the first three leave (V1).
//! 3. BoundedSemaphore: one release too many is an error (asyncio: `ValueError`).
//! 4. Event: the waiter sleeps until `set()` at 2.0 s; every waiter wakes, in wait order.
//! 5. Condition: two consumers wait; the producer appends and calls `notify_all()`; each
//!    consumer re-acquires the lock in turn and takes one item (V4).
//!
//! # The same program in asyncio
//! ```text
//! lock = asyncio.Lock()
//! async def increment():
//!     global counter
//!     async with lock: temp = counter; await asyncio.sleep(0); counter = temp + 1
//! sem = asyncio.Semaphore(3)
//! async def limited(i):
//!     async with sem: print("Using resource"); await asyncio.sleep(1)
//! event = asyncio.Event()    # waiter: await event.wait(); signaler: sleep(2); event.set()
//! cond = asyncio.Condition() # consumer: async with cond: await cond.wait(); data.pop()
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use looplab::combinators::gather;
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};
use looplab::{BoundedSemaphore, Condition, Event, Lock, Semaphore};

/// The command line.
pub const SPEC: Spec = Spec { name: "thread_primitives", usage: "", positional: &[], options: &[] };

fn now() -> String {
    format!("{:.1}s", looplab::get_running_loop().map_or(0.0, |lp| lp.time().as_secs_f64()))
}

/// Five tasks add one to `counter`, each yielding between its read and its write.
async fn five_increments(lock: Option<Lock>) -> u32 {
    let counter = Rc::new(Cell::new(0));
    gather((0..5).map(|_| {
        let (counter, lock) = (counter.clone(), lock.clone());
        async move {
            let _guard = match &lock {
                Some(l) => Some(l.acquire().await),
                None => None,
            };
            let temp = counter.get();
            looplab::yield_now().await; // another task runs here
            counter.set(temp + 1);
        }
    }))
    .await
    .expect("no task fails");
    counter.get()
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        writeln!(o, "Lock: counter without the lock = {}", five_increments(None).await);
        writeln!(o, "Lock: counter with the lock    = {}", five_increments(Some(Lock::new())).await);

        let sem = Semaphore::new(3);
        gather((0..6).map(|i| {
            let (sem, o) = (sem.clone(), o.clone());
            async move {
                let _permit = sem.acquire().await;
                writeln!(o, "Semaphore: {} user {i} using the resource", now());
                looplab::sleep(Duration::from_secs(1)).await;
            }
        }))
        .await
        .expect("no user fails");

        let bounded = BoundedSemaphore::new(5);
        let permit = bounded.acquire().await;
        permit.forget(); // taken and not given back through the guard
        writeln!(o, "BoundedSemaphore: release() -> {:?}", bounded.release().map_err(|e| e.to_string()));
        writeln!(o, "BoundedSemaphore: release() -> {:?}", bounded.release().map_err(|e| e.to_string()));

        let event = Event::new();
        let (e2, o2) = (event.clone(), o.clone());
        let waiter = h.spawn_named("waiter", async move {
            writeln!(o2, "Event: {} waiter waiting", now());
            e2.wait().await;
            writeln!(o2, "Event: {} Event triggered!", now());
        });
        looplab::sleep(Duration::from_secs(2)).await;
        writeln!(o, "Event: {} signaler: set()", now());
        event.set();
        waiter.await.expect("the waiter does not fail");

        let cond = Condition::new();
        let data = Rc::new(RefCell::new(Vec::new()));
        let consumers: Vec<_> = (0..2)
            .map(|i| {
                let (cond, data, o) = (cond.clone(), data.clone(), o.clone());
                h.spawn_named(format!("consumer-{i}"), async move {
                    let guard = cond.acquire().await;
                    let _guard = cond.wait_for(guard, || !data.borrow().is_empty()).await;
                    writeln!(o, "Condition: {} consumer {i} got {}", now(), data.borrow_mut().remove(0));
                })
            })
            .collect();
        looplab::sleep(Duration::from_millis(500)).await;
        {
            let _guard = cond.acquire().await;
            data.borrow_mut().extend(["item-1", "item-2"]);
            writeln!(o, "Condition: {} producer: 2 items, notify_all() ({} waiting)", now(), cond.waiters());
            cond.notify_all().expect("we hold the lock");
        }
        for c in consumers {
            c.await.expect("consumers do not fail");
        }
    })?;
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
