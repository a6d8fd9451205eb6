//! The thread pool: `n` OS threads pulling boxed closures off one channel.
//!
//! A *job* is a boxed `FnOnce` that runs the user's closure and then
//! completes the job's [`JobFuture`] (or calls the
//! `on_done` callback of [`ThreadPool::submit_with`]). All workers share one
//! multi-consumer `crossbeam-channel`: whichever worker is idle takes the next
//! job, so jobs start in submission order (H1).
//!
//! ```text
//!   submit(f) --+                         +--> worker 0: loop { recv; run }
//!   submit(g) --+--> Sender<Job> ==> Receiver<Job> --> worker 1
//!   map(f, xs) -+     (unbounded)         +--> worker n-1
//!                                               |
//!                 JobFuture <--- complete ------+  (or on_done(result))
//!   shutdown(): drop the Sender; workers drain the queue, see
//!               "disconnected", and return; Drop joins them.
//! ```
//!
//! # concurrent.futures equivalent
//! `ThreadPoolExecutor(max_workers=n)`: its `_work_queue` is our channel, its
//! `_worker` loop is `worker_loop`, `shutdown(wait)` is
//! [`ThreadPool::shutdown`]. CPython starts threads lazily; we start all `n`
//! at once. A job that raises in Python sets the future's exception; here a
//! job that panics becomes [`PoolError::Panicked`] and the worker goes on (H2).
//! Unlike CPython under the GIL, these threads run Rust code in parallel.
//!
//! # Invariants
//! - **H1** Jobs are taken from the queue in submission order.
//! - **H2** A panicking job completes its own future with `Panicked`; the
//!   worker thread survives and takes the next job.
//! - **H3** After `shutdown`, `submit` returns an already-failed future
//!   (`ShutDown`); jobs queued before it still run (Python's default,
//!   `cancel_futures=False`).
//! - **H4** Drop joins every worker: no thread outlives the pool.

use crate::pool::{JobFuture, PoolError, job_pair, panic_message};
use crossbeam_channel::{Receiver, Sender};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A unit of work as the workers see it: everything is already captured.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of worker threads. concurrent.futures: `ThreadPoolExecutor`.
pub struct ThreadPool {
    /// The job queue's sending side; `None` after `shutdown` (H3). Behind a
    /// mutex so `shutdown` can take `&self`, as Python's does.
    sender: Mutex<Option<Sender<Job>>>,
    /// The worker threads, joined by `shutdown(true)` or `Drop` (H4).
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// How many workers were started.
    size: usize,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool").field("size", &self.size).field("shut_down", &self.is_shut_down()).finish()
    }
}

/// One worker: run jobs until the channel is closed and empty.
/// concurrent.futures: `thread._worker`.
fn worker_loop(jobs: Receiver<Job>) {
    loop {
        // J5: right after a job the next one often follows within microseconds (a caller
        // submitting in a loop); spin briefly before parking in the kernel.
        let (mut next, mut closed) = (None, false);
        super::spin_until(|| match jobs.try_recv() {
            Ok(job) => {
                next = Some(job);
                true
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                closed = true;
                true
            }
            Err(crossbeam_channel::TryRecvError::Empty) => false,
        });
        // `recv` (and `try_recv`'s `Disconnected`) fail only once every sender is gone *and*
        // the queue is empty, which is exactly "shut down and drained" (H3).
        let job = match (next, closed) {
            (Some(job), _) => job,
            (None, true) => return,
            (None, false) => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        job(); // never unwinds: the closure built in `submit` catches (H2)
    }
}

impl ThreadPool {
    /// Starts `workers` threads. Zero workers is an error naming the
    /// argument, as `ThreadPoolExecutor(0)` raises `ValueError`.
    pub fn new(workers: usize) -> Result<ThreadPool, PoolError> {
        if workers == 0 {
            return Err(PoolError::InvalidArgument {
                name: "workers",
                reason: "a pool needs at least one worker".into(),
            });
        }
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = rx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("looplab-pool-{i}"))
                .spawn(move || worker_loop(rx))
                .map_err(|e| PoolError::Spawn { reason: e.to_string() })?;
            handles.push(handle);
        }
        Ok(ThreadPool { sender: Mutex::new(Some(tx)), workers: Mutex::new(handles), size: workers })
    }

    /// The number of worker threads.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether `shutdown` was called.
    pub fn is_shut_down(&self) -> bool {
        self.lock_sender().is_none()
    }

    /// Locks the sender slot, recovering from poison (we never panic under it).
    fn lock_sender(&self) -> std::sync::MutexGuard<'_, Option<Sender<Job>>> {
        self.sender.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a boxed job; gives it back if the pool is shut down (H3).
    fn enqueue(&self, job: Job) -> Result<(), Job> {
        match &*self.lock_sender() {
            Some(tx) => tx.send(job).map_err(|e| e.into_inner()),
            None => Err(job),
        }
    }

    /// Runs `f` on a worker. concurrent.futures: `executor.submit(f)`.
    pub fn submit<T, F>(&self, f: F) -> JobFuture<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (fut, done) = job_pair();
        let job: Job = Box::new(move || {
            if !done.set_running() {
                return; // cancelled while queued (J3)
            }
            let result =
                catch_unwind(AssertUnwindSafe(f)).map_err(|p| PoolError::Panicked { message: panic_message(&*p) });
            done.complete(result);
        });
        match self.enqueue(job) {
            Ok(()) => fut,
            // The rejected job drops its completer, which completes `fut` with
            // `ShutDown` (J2), so the caller still gets an answer.
            Err(job) => {
                drop(job);
                fut
            }
        }
    }

    /// Runs `f` on a worker, then calls `on_done(result)` on that same worker
    /// thread. This is the hook the event loop's `run_in_executor` uses: its
    /// `on_done` hands the result back with `call_soon_threadsafe`. If the
    /// pool is shut down, returns `Err(ShutDown)` and drops `on_done` uncalled.
    pub fn submit_with<T, F, D>(&self, f: F, on_done: D) -> Result<(), PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
        D: FnOnce(Result<T, PoolError>) + Send + 'static,
    {
        let job: Job = Box::new(move || {
            let result =
                catch_unwind(AssertUnwindSafe(f)).map_err(|p| PoolError::Panicked { message: panic_message(&*p) });
            // A panicking callback must not kill the worker either (H2).
            let _ = catch_unwind(AssertUnwindSafe(move || on_done(result)));
        });
        self.enqueue(job).map_err(|_| PoolError::ShutDown)
    }

    /// Runs `f` over `items` and yields the results in the order of `items`
    /// (not of completion). All jobs are queued at once, as
    /// `executor.map` does.
    pub fn map<A, T, F, I>(&self, f: F, items: I) -> MapResults<T>
    where
        A: Send + 'static,
        T: Send + 'static,
        F: Fn(A) -> T + Send + Sync + 'static,
        I: IntoIterator<Item = A>,
    {
        let f = Arc::new(f);
        let futures: Vec<JobFuture<T>> = items
            .into_iter()
            .map(|a| {
                let f = Arc::clone(&f);
                self.submit(move || f(a))
            })
            .collect();
        MapResults { futures: futures.into_iter() }
    }

    /// Stops accepting jobs. Queued jobs still run (H3). With `wait`, blocks
    /// until they have and the workers have exited.
    /// concurrent.futures: `executor.shutdown(wait)`.
    pub fn shutdown(&self, wait: bool) {
        self.lock_sender().take(); // last sender gone: workers drain and exit
        if wait {
            let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
            for h in handles {
                let _ = h.join(); // a worker never panics (H2)
            }
        }
    }
}

impl Drop for ThreadPool {
    /// Shuts down and joins every worker (H4), like leaving a `with` block.
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

/// The ordered results of [`ThreadPool::map`].
pub struct MapResults<T> {
    /// The jobs' futures in submission order.
    futures: std::vec::IntoIter<JobFuture<T>>,
}

impl<T> fmt::Debug for MapResults<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapResults").field("left", &self.futures.len()).finish()
    }
}

impl<T> Iterator for MapResults<T> {
    type Item = Result<T, PoolError>;

    /// Blocks for the next result in input order.
    fn next(&mut self) -> Option<Self::Item> {
        self.futures.next().map(JobFuture::result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.futures.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_workers_is_an_error_naming_the_argument() {
        let err = ThreadPool::new(0).unwrap_err();
        assert!(matches!(err, PoolError::InvalidArgument { name: "workers", .. }));
    }

    #[test]
    fn submit_after_shutdown_fails_fast() {
        let pool = ThreadPool::new(1).unwrap();
        pool.shutdown(true);
        assert_eq!(pool.submit(|| 1).result(), Err(PoolError::ShutDown));
        assert_eq!(pool.submit_with(|| 1, |_| {}), Err(PoolError::ShutDown));
    }
}
