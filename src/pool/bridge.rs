//! The bridge from pools to the loop: `run_in_executor` and `to_thread`.
//!
//! A pool job runs on another thread (or in another process); its result must come back to
//! the loop's thread without ever blocking the loop. The job's completion callback (which runs
//! on the worker or manager thread) sends the result with `call_soon_threadsafe`; on the loop's
//! thread that callback stores it in a slot of the loop's *job table* and wakes the task that
//! awaits it. While the job is in flight, a [`KeepAlive`] counts it (R3), so a virtual clock
//! does not jump past it and the loop does not report a deadlock while it runs.
//!
//! ```text
//!   task: lp.run_in_executor(&pool, f).await
//!     ├─ slot = jobs.insert(Pending { waker: None, keep_alive })
//!     └─ pool.submit_with(f, on_done) ────────────► worker thread runs f()
//!                                                     on_done(result):
//!   loop thread, phase 0/2 ◄── inbox + eventfd ◄────── ts.call_soon_threadsafe(deliver)
//!     deliver: jobs[slot].result = Some(result); wake the task; drop keep_alive (R3)
//!   task polled again: takes the result from the slot
//! ```
//!
//! # asyncio equivalent
//! `loop.run_in_executor(executor, func)` wraps a `concurrent.futures.Future` with
//! `futures.wrap_future`, whose done-callback uses `call_soon_threadsafe` to copy the result
//! into an asyncio future. `asyncio.to_thread(func)` is `run_in_executor(None, ...)` with the
//! default thread pool. As there, dropping (cancelling) the awaiting future does not stop a
//! job already running: its result is discarded when it arrives (**X1**).
//!
//! # Invariants
//! - **X1** A job's result is delivered on the loop's thread exactly once; if its future was
//!   dropped, the result is dropped there.
//! - **X2** The job counts as in flight (R3) from submission until its result is delivered.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use super::{Codec, PoolError, ProcessPool, ThreadPool};
use crate::events::{KeepAlive, LoopHandle};

/// One job in flight or delivered, in the loop's job table.
pub(crate) struct JobSlot {
    /// The result, once delivered: a `Result<T, PoolError>` boxed as `Any`.
    result: Option<Box<dyn Any>>,
    /// The awaiting task's waker.
    waker: Option<Waker>,
    /// The awaiting future was dropped: discard the result on arrival (X1).
    abandoned: bool,
    /// Counts the job as in flight until delivery (X2).
    keep_alive: Option<KeepAlive>,
}

/// The loop's table of executor jobs.
pub(crate) type JobTable = Slab<JobSlot>;

/// Awaitable result of [`LoopHandle::run_in_executor`]: `Result<T, PoolError>`.
#[must_use = "futures do nothing unless awaited"]
pub struct ExecutorFuture<T> {
    lp: LoopHandle,
    key: usize,
    /// Set once the result was taken (the slot is gone).
    done: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ExecutorFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorFuture").field("key", &self.key).field("done", &self.done).finish()
    }
}

impl LoopHandle {
    /// Reserve a job slot and return (key, a delivery function to call with the result from
    /// any thread). Shared by both pools.
    fn job_slot<T: Send + 'static>(&self) -> (usize, impl FnOnce(Result<T, PoolError>) + Send + 'static) {
        let keep_alive = self.keep_alive();
        let key = self.inner.jobs.borrow_mut().insert(JobSlot {
            result: None,
            waker: None,
            abandoned: false,
            keep_alive: Some(keep_alive),
        });
        let ts = self.threadsafe_handle();
        let deliver = move |r: Result<T, PoolError>| {
            // Runs on the worker/manager thread. If the loop is closed the result has nowhere
            // to go; the loop dropped its job table already.
            let _ = ts.call_soon_threadsafe(move |lp| lp.deliver_job(key, Box::new(r)));
        };
        (key, deliver)
    }

    /// Loop side of the delivery (X1).
    fn deliver_job(&self, key: usize, result: Box<dyn Any>) {
        let (waker, keep, drop_result) = {
            let mut jobs = self.inner.jobs.borrow_mut();
            let Some(slot) = jobs.get_mut(key) else { return };
            let keep = slot.keep_alive.take();
            if slot.abandoned {
                jobs.remove(key);
                (None, keep, Some(result))
            } else {
                slot.result = Some(result);
                (slot.waker.take(), keep, None)
            }
        };
        drop(drop_result);
        if let Some(w) = waker {
            w.wake();
        }
        drop(keep); // X2: the job stops counting only now that its result is on the loop
    }

    /// Run `f` on `pool`'s threads; await the result on the loop.
    /// asyncio: `loop.run_in_executor(executor, func)`.
    pub fn run_in_executor<T, F>(&self, pool: &ThreadPool, f: F) -> ExecutorFuture<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (key, deliver) = self.job_slot::<T>();
        if let Err(e) = pool.submit_with(f, deliver) {
            self.fail_job::<T>(key, e);
        }
        ExecutorFuture { lp: self.clone(), key, done: false, _t: PhantomData }
    }

    /// Run the registered function `name` on `pool`'s worker processes; await the result on
    /// the loop. asyncio: `loop.run_in_executor(ProcessPoolExecutor(), func, arg)`.
    pub fn run_in_process<A, R>(&self, pool: &ProcessPool, name: &str, arg: A) -> ExecutorFuture<R>
    where
        A: Codec + 'static,
        R: Codec + Send + 'static,
    {
        let (key, deliver) = self.job_slot::<R>();
        pool.submit_with(name, arg, deliver);
        ExecutorFuture { lp: self.clone(), key, done: false, _t: PhantomData }
    }

    /// Fail a job that could not even be submitted.
    fn fail_job<T: 'static>(&self, key: usize, e: PoolError) {
        let mut jobs = self.inner.jobs.borrow_mut();
        if let Some(slot) = jobs.get_mut(key) {
            slot.result = Some(Box::new(Err::<T, PoolError>(e)));
            slot.keep_alive = None;
        }
    }
}

impl<T: 'static> Future for ExecutorFuture<T> {
    type Output = Result<T, PoolError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, PoolError>> {
        if self.done {
            return Poll::Ready(Err(PoolError::ResultTaken));
        }
        let mut jobs = self.lp.inner.jobs.borrow_mut();
        let Some(slot) = jobs.get_mut(self.key) else {
            return Poll::Ready(Err(PoolError::ShutDown));
        };
        match slot.result.take() {
            Some(r) => {
                jobs.remove(self.key);
                drop(jobs);
                self.done = true;
                match r.downcast::<Result<T, PoolError>>() {
                    Ok(b) => Poll::Ready(*b),
                    Err(_) => Poll::Ready(Err(PoolError::ShutDown)),
                }
            }
            None => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slot.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for ExecutorFuture<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(mut jobs) = self.lp.inner.jobs.try_borrow_mut() else { return };
        if let Some(slot) = jobs.get_mut(self.key) {
            if slot.result.is_some() {
                let slot = jobs.remove(self.key);
                drop(jobs);
                drop(slot);
            } else {
                slot.abandoned = true; // X1: the result is dropped when it arrives
                slot.waker = None;
            }
        }
    }
}

/// The default thread pool of `to_thread`: `min(32, cpus + 4)` workers, as CPython's
/// `ThreadPoolExecutor` default, created on first use and shared by every loop.
pub fn default_thread_pool() -> &'static ThreadPool {
    static POOL: OnceLock<ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        ThreadPool::new((cpus + 4).min(32)).expect("a pool of at least one thread")
    })
}

/// Run blocking `f` on the default thread pool and await its result without blocking the
/// loop. asyncio: `await asyncio.to_thread(func)`.
///
/// # Panics
/// When called with no running looplab loop on this thread.
pub fn to_thread<T, F>(f: F) -> ExecutorFuture<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let lp = crate::get_running_loop().expect("looplab::to_thread called with no running loop");
    lp.run_in_executor(default_thread_pool(), f)
}
