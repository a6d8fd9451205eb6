//! Scoped async resources: Python's `async with`, as a guard.
//!
//! `async with res as r:` runs an *async* acquire (`__aenter__`), the body, then an *async*
//! release (`__aexit__`) whatever happened in the body. Rust has no async destructor, so the
//! release splits in two:
//!
//! - a **guard** whose `Drop` releases synchronously: [`LockGuard`](crate::sync::LockGuard),
//!   [`SemaphorePermit`](crate::sync::SemaphorePermit). Enough when release needs no await.
//! - [`Scoped<R>`] for a resource whose release must await (send a goodbye, flush a buffer):
//!   call [`Scoped::close`] at the end of the block to run the async release *in place*. If the
//!   guard is dropped instead (an early `return`, a `?`, or the task was cancelled), its `Drop`
//!   spawns the same release as a detached task on the running loop, so it still runs, a
//!   little later.
//!
//! ```text
//!   let conn = Scoped::open(Connection::connect("db")).await;   // __aenter__ (awaits)
//!   conn.query(..);                                              // body (Deref)
//!   conn.close().await;                                          // __aexit__ (awaits)
//!      └── or: drop(conn) ─► spawn(conn.close()) ─► runs in a coming iteration
//! ```
//!
//! # asyncio equivalent
//! `contextlib.asynccontextmanager` and classes with `__aenter__`/`__aexit__`
//! (`async with lock`, `async with session`). asyncio runs `__aexit__` before the block's
//! exception propagates; the dropped-guard path here runs it one iteration later instead,
//! because a destructor cannot await.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc, time::Duration};
//! use looplab::scoped::{AsyncResource, Scoped};
//!
//! /// A connection whose polite close takes a round trip.
//! struct Conn { log: Rc<RefCell<Vec<String>>> }
//! impl AsyncResource for Conn {
//!     async fn close(self) {
//!         looplab::sleep(Duration::from_millis(10)).await; // send "bye", await the ack
//!         self.log.borrow_mut().push("closed".into());
//!     }
//! }
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let l2 = log.clone();
//! looplab::run_virtual(async move {
//!     let conn = Scoped::open(async { Conn { log: l2.clone() } }).await;
//!     l2.borrow_mut().push("query".into());
//!     conn.close().await; // the end of the `async with` block
//!     l2.borrow_mut().push("after".into());
//! }).unwrap();
//! assert_eq!(*log.borrow(), ["query", "closed", "after"]);
//! ```

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};

use crate::events::get_running_loop;

/// A resource whose release must await. asyncio: an object's `__aexit__`.
#[allow(async_fn_in_trait)] // single-threaded loop: no `Send` bound is ever wanted
pub trait AsyncResource: Sized + 'static {
    /// Release the resource, awaiting whatever that takes.
    async fn close(self);
}

/// An open resource for the length of a block; see the module docs.
pub struct Scoped<R: AsyncResource> {
    /// The resource; `None` once closed.
    res: Option<R>,
}

impl<R: AsyncResource> fmt::Debug for Scoped<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped").field("open", &self.res.is_some()).finish()
    }
}

impl<R: AsyncResource> Scoped<R> {
    /// Await the acquire and hold the result. asyncio: `__aenter__`.
    pub async fn open(acquire: impl Future<Output = R>) -> Scoped<R> {
        Scoped { res: Some(acquire.await) }
    }

    /// Wrap a resource you already have.
    pub fn new(res: R) -> Scoped<R> {
        Scoped { res: Some(res) }
    }

    /// Release in place, awaiting it. asyncio: `__aexit__` at the end of the block.
    pub async fn close(mut self) {
        if let Some(r) = self.res.take() {
            r.close().await;
        }
    }
}

impl<R: AsyncResource> Deref for Scoped<R> {
    type Target = R;
    fn deref(&self) -> &R {
        self.res.as_ref().expect("a Scoped resource is open until close() consumes it")
    }
}

impl<R: AsyncResource> DerefMut for Scoped<R> {
    fn deref_mut(&mut self) -> &mut R {
        self.res.as_mut().expect("a Scoped resource is open until close() consumes it")
    }
}

impl<R: AsyncResource> Drop for Scoped<R> {
    /// Not closed explicitly: run the async release as a detached task (or, with no loop
    /// running, just drop the resource).
    fn drop(&mut self) {
        if let Some(r) = self.res.take() {
            if let Some(lp) = get_running_loop() {
                lp.spawn(r.close()).detach();
            }
        }
    }
}
