//! # looplab: asyncio's event loop, built by hand in Rust
//!
//! looplab reproduces the model of Python's asyncio with real parts: a FIFO ready queue,
//! a hierarchical timer wheel, a slab of tasks with hand-written wakers, a mio reactor, and a
//! virtual clock for deterministic tests. Read it in this order:
//!
//! ```text
//!   1. events/     the loop: run_once's four phases, call_soon / call_later   <- base_events.py
//!   2. timer/      the timer wheel (and asyncio's heap, to compare)           <- _scheduled
//!   3. task/       tasks in a slab, the waker vtable, cancellation            <- tasks.Task
//!   4. future.rs   LoopFuture: a result slot with done-callbacks              <- futures.Future
//!   5. time.rs     sleep(d), sleep(0), yield_now                              <- asyncio.sleep
//!   6. clock.rs    real and virtual clocks                                    <- loop.time()
//!   7. trace/      the event log every view is built on                       <- debug mode
//!   8. net/        the reactor (mio)                                          <- selector_events.py
//!   9. combinators/ gather, wait, as_completed, wait_for, timeout, shield,
//!                  task_group                                    <- tasks.py, taskgroups.py
//!  10. sync/       Lock, Event, Condition, Semaphore, RateLimiter             <- locks.py
//!  11. queue.rs    Queue, LifoQueue, PriorityQueue                            <- queues.py
//!  12. stream.rs   AsyncIterator, AsyncRange; scoped.rs: `async with`         <- async for
//! ```
//!
//! | asyncio | looplab |
//! |---|---|
//! | `asyncio.new_event_loop()` | [`EventLoop::new`], [`EventLoop::new_virtual`] |
//! | `asyncio.run(main())` | [`run`], [`run_virtual`] |
//! | `asyncio.get_running_loop()` | [`get_running_loop`] |
//! | `loop.call_soon(cb)` / `call_later` / `call_at` | [`LoopHandle::call_soon`], [`LoopHandle::call_later`], [`LoopHandle::call_at`] |
//! | `loop.call_soon_threadsafe(cb)` | [`ThreadsafeHandle::call_soon_threadsafe`] |
//! | `loop.run_until_complete` / `run_forever` / `stop` / `close` | same names on [`LoopHandle`] |
//! | `asyncio.create_task(coro)` | [`LoopHandle::spawn`], [`spawn`] |
//! | `Task.cancel()` / `done()` / `result()` | [`Task::cancel`], [`Task::is_done`], [`Task::result`] |
//! | `asyncio.Future` | [`LoopFuture`] |
//! | `asyncio.sleep(d)` / `sleep(0)` | [`sleep`], [`yield_now`] |
//! | `CancelledError`, `InvalidStateError`, `TimeoutError` | [`Error`] variants |
//! | `asyncio.gather` / `wait` / `as_completed` | [`gather`](gather()), [`gather_all`](gather_all()), [`gather!`], [`wait`], [`as_completed`] |
//! | `asyncio.wait_for` / `timeout` / `timeout_at` / `shield` | [`wait_for`], [`timeout`], [`timeout_at`], [`shield`] |
//! | `asyncio.TaskGroup` | [`task_group`], [`TaskGroup`] |
//! | `Lock`, `Event`, `Condition`, `Semaphore`, `BoundedSemaphore` | [`sync`] |
//! | `Queue`, `LifoQueue`, `PriorityQueue`, `QueueFull`, `QueueEmpty` | [`queue`] |
//! | `async for`, `async with` | [`AsyncIterator`], [`scoped::Scoped`] |
//!
//! ```
//! use std::time::Duration;
//! let out = looplab::run_virtual(async {
//!     let job = looplab::spawn(async { looplab::sleep(Duration::from_secs(2)).await; 21 });
//!     job.await.unwrap() * 2
//! });
//! assert_eq!(out.unwrap(), 42);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations, clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod clock;
pub mod combinators;
pub mod error;
pub mod events;
pub mod future;
pub mod inspect;
pub mod net;
pub mod pool;
pub mod queue;
pub mod scoped;
pub mod stream;
pub mod sync;
pub mod task;
pub mod time;
pub mod timer;
pub mod trace;

use std::future::Future;

pub use clock::Nanos;
pub use error::{
    CancelledError, DeadlockError, Error, Exception, InvalidStateError, LoopError, PanicError, TimeoutError,
};
pub use events::{
    Builder, EventLoop, Handle, KeepAlive, LoopHandle, ThreadsafeHandle, TimerBackend, TimerHandle, get_running_loop,
};
pub use future::LoopFuture;
pub use pool::to_thread;
pub use task::{Task, TaskId, TaskState};
pub use time::{Sleep, YieldNow, sleep, sleep_secs, yield_now};

pub use combinators::{
    ReturnWhen, TaskGroup, TaskGroupError, as_completed, gather, gather_all, shield, task_group, timeout, timeout_at,
    wait, wait_for,
};
pub use queue::{LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueFull};
pub use stream::{AsyncIterator, AsyncRange};
pub use sync::{BoundedSemaphore, Condition, Event, Lock, RateLimiter, Semaphore};

/// Spawn a task on the running loop. asyncio: `asyncio.create_task(coro)`.
///
/// # Panics
/// Outside a running looplab loop (as `asyncio.create_task` raises `RuntimeError` there).
/// Use [`LoopHandle::spawn`] when you hold a handle.
#[track_caller]
pub fn spawn<F>(fut: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match get_running_loop() {
        Some(lp) => lp.spawn(fut),
        None => panic!("looplab::spawn called with no running loop (use EventLoop::spawn)"),
    }
}

/// Run `main` on a new real-clock loop, then cancel what is left and close the loop.
/// asyncio: `asyncio.run(main())`.
pub fn run<F>(main: F) -> Result<F::Output, LoopError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    run_on(EventLoop::builder().build()?, main)
}

/// [`run`] on the virtual clock: the same program, the same event order, no waiting.
pub fn run_virtual<F>(main: F) -> Result<F::Output, LoopError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    run_on(EventLoop::builder().virtual_clock().build()?, main)
}

/// [`run`] on a loop you built (to pick the clock, the timer backend, or attach a sink).
pub fn run_on<F>(lp: EventLoop, main: F) -> Result<F::Output, LoopError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let result = lp.run_until_complete(main);
    // asyncio.run's `_cancel_all_tasks`: cancel the stragglers and let their cleanup run.
    let shutdown = lp.cancel_all_tasks();
    lp.close()?;
    let out = result?;
    shutdown?;
    Ok(out)
}
