//! `gather`: run children concurrently, return their results in argument order.
//!
//! `gather` spawns one task per child *at the call* (as asyncio wraps each coroutine in a
//! task before returning), gives each a done-callback, and counts. The callback of the
//! last child completes the gather (G2). In fail-fast mode the first failing child completes
//! it at once with that error, and the other children keep running, unwatched.
//!
//! ```text
//!   gather([a, b, c]) ─► spawn a, b, c; link each ─► Gather { core: [a, b, c], remaining 3 }
//!   c done ─► link(c) (one hop later): c held, remaining 2
//!   a done ─► link(a): a held, remaining 1
//!   b done ─► link(b): b held, remaining 0 ─► wake awaiter ─► read a, b, c ─► Ok([a, b, c])
//!   fail-fast: link(x) finds x failed ─► wake awaiter ─► Err(e); the others run on
//!   drop(Gather) before it completed ─► cancel a, b, c (unfinished ones) in order (G1)
//! ```
//!
//! The homogeneous form keeps no result cells and boxes no callbacks (G4): like asyncio's
//! `gather`, which reads `fut.result()` from each child once the last one is done, it owns
//! the children's task handles and reads their results out of their slots at the end. A
//! child's done-callback is a [`ChildLink`] (the shared core and the child's index, 16 bytes)
//! stored in the child's slot and then in a callback slot: the same callback hop as
//! `add_done_callback`, without an allocation per child.
//!
//! # asyncio equivalent
//! `asyncio.gather(*aws, return_exceptions=False)` in `tasks.py`: [`gather`] (fail-fast)
//! and [`gather_all`] (`return_exceptions=True`, one `Result` per child). The tuple forms
//! [`gather!`](crate::gather) and [`gather_all!`](crate::gather_all) take children of
//! different output types. `gather` of nothing is done at once (asyncio: `[]`).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{on_done, running_loop};
use crate::error::Error;
use crate::events::LoopHandle;
use crate::task::{Task, TaskId};

/// What a tuple gather keeps, whatever its children's types: the count and the outcome.
/// asyncio: the closure variables of `gather` (`nfinished`, `outer`).
struct Core {
    /// The loop the children run on (to cancel them).
    lp: LoopHandle,
    /// Children in argument order (G1).
    children: Vec<TaskId>,
    /// Children whose callback has not run yet.
    remaining: usize,
    /// Fail-fast (`return_exceptions=False`)?
    fail_fast: bool,
    /// The error that completed a fail-fast gather.
    error: Option<Error>,
    /// Completed? asyncio: `outer.done()`.
    done: bool,
    /// The awaiting task, to wake on completion.
    waker: Option<Waker>,
}

impl Core {
    fn new(lp: LoopHandle, fail_fast: bool) -> Core {
        Core { lp, children: Vec::new(), remaining: 0, fail_fast, error: None, done: true, waker: None }
    }

    /// Count one more child; a gather with children is not done until they are.
    fn add(&mut self, id: TaskId) {
        self.children.push(id);
        self.remaining += 1;
        self.done = false;
    }

    /// asyncio's `_done_callback` (tuple form): returns the waker to wake if this completed
    /// the gather.
    fn child_done(&mut self, err: Option<&Error>) -> Option<Waker> {
        self.remaining -= 1;
        if self.done {
            return None; // completed already (fail-fast): the result was read, nothing else
        }
        match err {
            Some(e) if self.fail_fast => self.error = Some(e.clone()),
            _ if self.remaining == 0 => {}
            _ => return None,
        }
        self.done = true;
        self.waker.take()
    }

    /// Poll helper: done? else remember who to wake.
    fn poll_done(&mut self, cx: &Context<'_>) -> bool {
        if !self.done {
            self.waker = Some(cx.waker().clone());
        }
        self.done
    }

    /// G1: the ids to cancel if the gather is dropped unfinished.
    fn take_unfinished(&mut self) -> Vec<TaskId> {
        if self.done { Vec::new() } else { std::mem::take(&mut self.children) }
    }
}

/// Cancel `ids` in order (outside any borrow: cancelling wakes tasks).
fn cancel_all(lp: &LoopHandle, ids: Vec<TaskId>) {
    for id in ids {
        lp.cancel_task(id);
    }
}

// ----- homogeneous children: gather(vec) -----------------------------------------------------

/// One child of a homogeneous gather, in argument order.
struct Child {
    /// The child task. The gather owns its handle (the slot stays until the result is read).
    id: TaskId,
    /// Its done-callback ran and the gather keeps its finished slot, to read it at the end.
    held: bool,
}

/// The state of a homogeneous gather. It keeps no results: as asyncio's `gather` does, it
/// reads every child's result out of the child itself once the last one finished, so a child
/// costs no result cell and no boxed callback (G4).
pub(crate) struct VecCore {
    /// Children in argument order (G1, G2).
    children: Vec<Child>,
    /// Children whose done-callback has not run yet.
    remaining: usize,
    /// Fail-fast (`return_exceptions=False`)?
    fail_fast: bool,
    /// The error that completed a fail-fast gather.
    error: Option<Error>,
    /// Completed (asyncio: `outer.done()`), or dropped before it completed: a child whose
    /// callback runs after this releases its own slot.
    done: bool,
    /// The awaiting task, to wake on completion.
    waker: Option<Waker>,
}

/// A child's link to its gather: what the child's task slot holds instead of a boxed
/// done-callback, and what the callback slot holds when the child finished (G4). 16 bytes,
/// no allocation.
pub(crate) struct ChildLink {
    /// The gather's shared state.
    pub(crate) core: GatherCore,
    /// The child's argument index.
    pub(crate) index: u32,
}

/// The shared state of a homogeneous gather, as a child's slot refers to it.
pub(crate) type GatherCore = Rc<RefCell<VecCore>>;

impl ChildLink {
    /// asyncio's `_done_callback`, run one hop after the child finished (G2).
    pub(crate) fn fire(self, lp: &LoopHandle) {
        let index = self.index as usize;
        let mut c = self.core.borrow_mut();
        c.remaining -= 1;
        let id = c.children[index].id;
        if c.done {
            // Completed already (fail-fast) or dropped: nobody reads this result. Mark a
            // failure retrieved (asyncio: `fut.exception()`) and free the slot.
            drop(c);
            lp.release_child(id);
            return;
        }
        if c.fail_fast {
            if let Some(e) = lp.task_exception(id) {
                c.error = Some(e);
                c.done = true;
                let held = c.take_held();
                let waker = c.waker.take();
                drop(c);
                lp.release_child(id);
                for k in held {
                    lp.release_child(k);
                }
                if let Some(w) = waker {
                    w.wake();
                }
                return;
            }
        }
        c.children[index].held = true;
        if c.remaining == 0 {
            c.done = true;
            let waker = c.waker.take();
            drop(c);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl VecCore {
    /// Poll helper: done? else remember who to wake.
    fn poll_done(&mut self, cx: &Context<'_>) -> bool {
        if !self.done {
            self.waker = Some(cx.waker().clone());
        }
        self.done
    }

    /// The children whose results the gather still holds, now no longer held.
    fn take_held(&mut self) -> Vec<TaskId> {
        self.children
            .iter_mut()
            .filter(|k| k.held)
            .map(|k| {
                k.held = false;
                k.id
            })
            .collect()
    }
}

type Shared = GatherCore;

fn start<T: 'static>(tasks: Vec<Task<T>>, fail_fast: bool) -> (LoopHandle, Shared) {
    let lp = running_loop("gather");
    let n = tasks.len();
    let children: Vec<Child> = tasks.iter().map(|t| Child { id: t.id(), held: false }).collect();
    let state =
        Rc::new(RefCell::new(VecCore { children, remaining: n, fail_fast, error: None, done: n == 0, waker: None }));
    for (i, task) in tasks.into_iter().enumerate() {
        let index = u32::try_from(i).expect("gather: more than u32::MAX children");
        lp.link_gather_child(task.into_id(), ChildLink { core: state.clone(), index });
    }
    (lp, state)
}

fn spawn_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<Task<F::Output>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let lp = running_loop("gather");
    futs.into_iter().map(|f| lp.spawn(f)).collect()
}

/// Run `futs` as tasks; their outputs in argument order, or the first error at once
/// (the others keep running). asyncio: `await asyncio.gather(*futs)`.
///
/// # Panics
/// Outside a running looplab loop.
pub fn gather<F>(futs: impl IntoIterator<Item = F>) -> Gather<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    gather_tasks(spawn_all(futs))
}

/// [`gather`] over tasks you already spawned.
pub fn gather_tasks<T: 'static>(tasks: Vec<Task<T>>) -> Gather<T> {
    let (lp, state) = start(tasks, true);
    Gather { lp, state, _output: PhantomData }
}

/// Run `futs` as tasks; one `Result` per child, in argument order, after all finished.
/// asyncio: `await asyncio.gather(*futs, return_exceptions=True)`.
pub fn gather_all<F>(futs: impl IntoIterator<Item = F>) -> GatherAll<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    gather_all_tasks(spawn_all(futs))
}

/// [`gather_all`] over tasks you already spawned.
pub fn gather_all_tasks<T: 'static>(tasks: Vec<Task<T>>) -> GatherAll<T> {
    let (lp, state) = start(tasks, false);
    GatherAll { lp, state, _output: PhantomData }
}

/// The future of [`gather`]: `Ok(outputs)` or the first error.
#[must_use = "the children run anyway; await the gather for their results"]
pub struct Gather<T> {
    /// The loop the children run on.
    lp: LoopHandle,
    /// Shared with the children's done-callbacks.
    state: Shared,
    _output: PhantomData<fn() -> T>,
}

/// The future of [`gather_all`]: one `Result` per child.
#[must_use = "the children run anyway; await the gather for their results"]
pub struct GatherAll<T> {
    /// The loop the children run on.
    lp: LoopHandle,
    /// Shared with the children's done-callbacks.
    state: Shared,
    _output: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("Gather").field("remaining", &s.remaining).field("done", &s.done).finish()
    }
}

impl<T> fmt::Debug for GatherAll<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("GatherAll").field("remaining", &s.remaining).field("done", &s.done).finish()
    }
}

impl<T: 'static> Future for Gather<T> {
    type Output = Result<Vec<T>, Error>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.state.borrow_mut();
        if !s.poll_done(cx) {
            return Poll::Pending;
        }
        if let Some(e) = s.error.take() {
            return Poll::Ready(Err(e));
        }
        let held = s.take_held();
        drop(s);
        let out = held.into_iter().map(|id| self.lp.take_child_result::<T>(id).expect("no error")).collect();
        Poll::Ready(Ok(out))
    }
}

impl<T: 'static> Future for GatherAll<T> {
    type Output = Vec<Result<T, Error>>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.state.borrow_mut();
        if !s.poll_done(cx) {
            return Poll::Pending;
        }
        let held = s.take_held();
        drop(s);
        Poll::Ready(held.into_iter().map(|id| self.lp.take_child_result::<T>(id)).collect())
    }
}

/// Dropping a gather: release the results it still holds; if it had not completed, cancel
/// every child in argument order (G1).
fn drop_vec_gather(lp: &LoopHandle, state: &Shared) {
    let (held, cancel) = {
        let mut s = state.borrow_mut();
        let cancel: Vec<TaskId> = if s.done { Vec::new() } else { s.children.iter().map(|k| k.id).collect() };
        s.done = true;
        (s.take_held(), cancel)
    };
    for id in held {
        lp.release_child(id);
    }
    cancel_all(lp, cancel);
}

impl<T> Drop for Gather<T> {
    fn drop(&mut self) {
        drop_vec_gather(&self.lp, &self.state);
    }
}

impl<T> Drop for GatherAll<T> {
    fn drop(&mut self) {
        drop_vec_gather(&self.lp, &self.state);
    }
}

// ----- heterogeneous children: gather!(a, b, c) -------------------------------------------

/// The untyped half of a tuple gather (used by the `gather!` macros).
#[derive(Clone)]
pub struct TupleCore {
    /// The shared count and outcome.
    core: Rc<RefCell<Core>>,
}

impl fmt::Debug for TupleCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TupleCore").field("remaining", &self.core.borrow().remaining).finish()
    }
}

/// One child's result slot in a tuple gather.
pub type TupleSlot<T> = Rc<RefCell<Option<Result<T, Error>>>>;

impl TupleCore {
    /// A core on the running loop.
    #[track_caller]
    pub fn new(fail_fast: bool) -> TupleCore {
        TupleCore { core: Rc::new(RefCell::new(Core::new(running_loop("gather!"), fail_fast))) }
    }

    /// Spawn one child and watch it; returns its slot.
    #[track_caller]
    pub fn attach<F>(&self, fut: F) -> TupleSlot<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let task = self.core.borrow().lp.spawn(fut);
        self.core.borrow_mut().add(task.id());
        let slot: TupleSlot<F::Output> = Rc::new(RefCell::new(None));
        let (s2, core) = (slot.clone(), self.core.clone());
        on_done(task, move |r| {
            let w = core.borrow_mut().child_done(r.as_ref().err());
            *s2.borrow_mut() = Some(r);
            if let Some(w) = w {
                w.wake();
            }
        });
        slot
    }
}

/// A tuple of [`TupleSlot`]s that can be read out as a tuple of values or of results.
pub trait TupleSlots {
    /// `(A, B, ..)`.
    type Values;
    /// `(Result<A, Error>, Result<B, Error>, ..)`.
    type Results;
    /// Take every result (all are `Ok` when this is called).
    fn values(&self) -> Self::Values;
    /// Take every result.
    fn results(&self) -> Self::Results;
}

macro_rules! tuple_slots {
    ($($T:ident $i:tt),+) => {
        impl<$($T),+> TupleSlots for ($(TupleSlot<$T>,)+) {
            type Values = ($($T,)+);
            type Results = ($(Result<$T, Error>,)+);
            fn values(&self) -> Self::Values {
                ($(self.$i.borrow_mut().take().expect("G2: every child reported").ok().expect("no error"),)+)
            }
            fn results(&self) -> Self::Results {
                ($(self.$i.borrow_mut().take().expect("G2: every child reported"),)+)
            }
        }
    };
}
tuple_slots!(A 0);
tuple_slots!(A 0, B 1);
tuple_slots!(A 0, B 1, C 2);
tuple_slots!(A 0, B 1, C 2, D 3);
tuple_slots!(A 0, B 1, C 2, D 3, E 4);
tuple_slots!(A 0, B 1, C 2, D 3, E 4, F 5);

/// The future of [`gather!`](macro@crate::gather) (fail-fast) and [`gather_all!`](macro@crate::gather_all).
#[must_use = "the children run anyway; await the gather for their results"]
pub struct GatherTuple<S> {
    /// Count and outcome.
    core: TupleCore,
    /// The typed result slots.
    slots: S,
}

impl<S> fmt::Debug for GatherTuple<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherTuple").field("core", &self.core).finish()
    }
}

impl<S: TupleSlots> GatherTuple<S> {
    /// Used by the macros.
    pub fn new(core: TupleCore, slots: S) -> GatherTuple<S> {
        GatherTuple { core, slots }
    }

    /// Wait for every child; one `Result` each (the `gather_all!` form).
    pub async fn all(self) -> S::Results {
        std::future::poll_fn(|cx| {
            let mut c = self.core.core.borrow_mut();
            if c.poll_done(cx) { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
        self.slots.results()
    }
}

impl<S: TupleSlots + Unpin> Future for GatherTuple<S> {
    type Output = Result<S::Values, Error>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut c = self.core.core.borrow_mut();
        if !c.poll_done(cx) {
            return Poll::Pending;
        }
        if let Some(e) = c.error.take() {
            return Poll::Ready(Err(e));
        }
        drop(c);
        Poll::Ready(Ok(self.slots.values()))
    }
}

impl<S> Drop for GatherTuple<S> {
    fn drop(&mut self) {
        let (lp, ids) = {
            let mut c = self.core.core.borrow_mut();
            (c.lp.clone(), c.take_unfinished())
        };
        cancel_all(&lp, ids);
    }
}

/// Gather futures of different output types: `Ok((a, b, ..))` in argument order, or the
/// first error at once. asyncio: `a, b = await asyncio.gather(fa(), fb())`.
///
/// ```
/// use std::time::Duration;
/// let out = looplab::run_virtual(async {
///     let slow = async { looplab::sleep(Duration::from_secs(2)).await; "two" };
///     let fast = async { 1 };
///     looplab::gather!(slow, fast).await
/// }).unwrap();
/// assert_eq!(out.unwrap(), ("two", 1));
/// ```
#[macro_export]
macro_rules! gather {
    ($($fut:expr),+ $(,)?) => {{
        let core = $crate::combinators::TupleCore::new(true);
        let slots = ($(core.attach($fut),)+);
        $crate::combinators::GatherTuple::new(core, slots)
    }};
}

/// Gather futures of different output types, one `Result` each, after all finished.
/// asyncio: `await asyncio.gather(fa(), fb(), return_exceptions=True)`.
#[macro_export]
macro_rules! gather_all {
    ($($fut:expr),+ $(,)?) => {{
        let core = $crate::combinators::TupleCore::new(false);
        let slots = ($(core.attach($fut),)+);
        $crate::combinators::GatherTuple::new(core, slots).all()
    }};
}
