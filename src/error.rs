//! Errors, named after asyncio's exceptions.
//!
//! asyncio signals misuse and outcomes with exceptions; Rust returns values. Each asyncio
//! exception that a learner meets becomes a small type here, and [`Error`] gathers the ones
//! that *awaiting something* can produce, so that `task.await?` reads like Python's `await task`.
//!
//! ```text
//!   awaiting a Task / LoopFuture  --> Result<T, Error>
//!        Error::Cancelled     <- asyncio.CancelledError   (task.cancel(), fut.cancel())
//!        Error::InvalidState  <- asyncio.InvalidStateError (fut.result() too early)
//!        Error::Timeout       <- TimeoutError              (wait_for, timeout)
//!        Error::Panicked      <- an exception escaping a coroutine (a Rust panic)
//!        Error::Exception     <- fut.set_exception(...)
//!   running the loop              --> Result<T, LoopError>
//!        LoopError::Closed / AlreadyRunning / Stopped / Deadlock / Io / Task(Error)
//! ```
//!
//! # asyncio equivalent
//! `asyncio/exceptions.py`, plus the `RuntimeError`s of `base_events.py` ("Event loop is
//! closed", "This event loop is already running", "Event loop stopped before Future
//! completed."). The deadlock error has no asyncio twin: asyncio simply hangs there; looplab
//! reports who was waiting, as madsim does.
//!
//! OS errors stay [`std::io::Error`]. No error here is a `Box<dyn Error>`: a learner can
//! `match` on every case.

use std::fmt;

/// The task or future was cancelled. asyncio: `asyncio.CancelledError`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CancelledError {
    /// The message given to `cancel_with`, if any. asyncio: `cancel(msg=...)`.
    pub message: Option<String>,
}

impl fmt::Display for CancelledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "cancelled: {m}"),
            None => f.write_str("cancelled"),
        }
    }
}
impl std::error::Error for CancelledError {}

/// An operation was not allowed in the object's current state: reading the result of a
/// pending future, setting the result of a finished one. asyncio: `asyncio.InvalidStateError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidStateError {
    /// What was attempted and why it was refused.
    pub message: String,
}

impl fmt::Display for InvalidStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid state: {}", self.message)
    }
}
impl std::error::Error for InvalidStateError {}

/// A deadline passed before the awaited work finished. asyncio: `TimeoutError`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeoutError;

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}
impl std::error::Error for TimeoutError {}

/// A task (or a callback) panicked; the loop caught the panic and kept running.
/// asyncio: an exception escaping a coroutine, stored on its task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicError {
    /// The task's display name (`Task-3`, or the name given at spawn).
    pub task: String,
    /// The panic payload when it was a string, else a placeholder.
    pub message: String,
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} panicked: {}", self.task, self.message)
    }
}
impl std::error::Error for PanicError {}

/// A user-level exception stored on a future with `set_exception`: a kind (asyncio's
/// exception class name) and a message. Cheap to clone, as every awaiter receives a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The class of error, e.g. `"ValueError"` or `"ConnectionError"`.
    pub kind: String,
    /// Human-readable detail.
    pub message: String,
}

impl Exception {
    /// An exception of `kind` with `message`, like Python's `ValueError("message")`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Exception {
        Exception { kind: kind.into(), message: message.into() }
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}
impl std::error::Error for Exception {}

impl From<std::io::Error> for Exception {
    fn from(e: std::io::Error) -> Exception {
        Exception::new(format!("io::{:?}", e.kind()), e.to_string())
    }
}

/// Everything that awaiting a looplab task or future can fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// asyncio: `CancelledError`.
    Cancelled(CancelledError),
    /// asyncio: `InvalidStateError`.
    InvalidState(InvalidStateError),
    /// asyncio: `TimeoutError`.
    Timeout(TimeoutError),
    /// The task panicked (asyncio: the coroutine raised). Boxed, as is `Exception`: two
    /// strings each, and every `Result<T, Error>` an await returns would carry them inline
    /// (56 bytes instead of 32; see the assertion below).
    Panicked(Box<PanicError>),
    /// An exception set with `set_exception`.
    Exception(Box<Exception>),
}

// What every await of a task or future moves around: keep it to four words.
const _: () = assert!(std::mem::size_of::<Error>() == 32);

impl Error {
    /// True for [`Error::Cancelled`]. asyncio: `isinstance(e, CancelledError)`.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled(_))
    }
    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }
    /// A plain cancellation with no message.
    pub fn cancelled() -> Error {
        Error::Cancelled(CancelledError::default())
    }
    /// An invalid-state error with `message`.
    pub fn invalid_state(message: impl Into<String>) -> Error {
        Error::InvalidState(InvalidStateError { message: message.into() })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cancelled(e) => e.fmt(f),
            Error::InvalidState(e) => e.fmt(f),
            Error::Timeout(e) => e.fmt(f),
            Error::Panicked(e) => e.fmt(f),
            Error::Exception(e) => e.fmt(f),
        }
    }
}
impl std::error::Error for Error {}

impl From<CancelledError> for Error {
    fn from(e: CancelledError) -> Error {
        Error::Cancelled(e)
    }
}
impl From<TimeoutError> for Error {
    fn from(e: TimeoutError) -> Error {
        Error::Timeout(e)
    }
}
impl From<Exception> for Error {
    fn from(e: Exception) -> Error {
        Error::Exception(Box::new(e))
    }
}
impl From<PanicError> for Error {
    fn from(e: PanicError) -> Error {
        Error::Panicked(Box::new(e))
    }
}

/// One task that was still waiting when the loop found it could never wake again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingTask {
    /// The task's display name.
    pub name: String,
    /// How many times it had been polled.
    pub polls: u64,
}

/// The loop had nothing that could ever wake it (no ready work, no timers, no I/O sources,
/// no pool job in flight, no thread-safe handle alive) while a future was still awaited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadlockError {
    /// The tasks that were waiting, in spawn order.
    pub waiting: Vec<WaitingTask>,
}

impl fmt::Display for DeadlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadlock: nothing can wake the loop again; waiting tasks: ")?;
        if self.waiting.is_empty() {
            return f.write_str("(none)");
        }
        for (i, t) in self.waiting.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} ({} polls)", t.name, t.polls)?;
        }
        Ok(())
    }
}
impl std::error::Error for DeadlockError {}

/// Errors of the loop itself (running, stopping, closing).
#[derive(Debug)]
pub enum LoopError {
    /// The loop was closed. asyncio: `RuntimeError('Event loop is closed')`.
    Closed,
    /// `run_*` was called while the loop was already running.
    /// asyncio: `RuntimeError('This event loop is already running')`.
    AlreadyRunning,
    /// `stop()` ended `run_until_complete` before its future finished.
    /// asyncio: `RuntimeError('Event loop stopped before Future completed.')`.
    Stopped,
    /// Nothing could ever wake the loop again.
    Deadlock(DeadlockError),
    /// The poller failed.
    Io(std::io::Error),
    /// The awaited future itself failed (its task panicked or was cancelled).
    Task(Error),
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopError::Closed => f.write_str("event loop is closed"),
            LoopError::AlreadyRunning => f.write_str("this event loop is already running"),
            LoopError::Stopped => f.write_str("event loop stopped before the future completed"),
            LoopError::Deadlock(d) => d.fmt(f),
            LoopError::Io(e) => write!(f, "poller failed: {e}"),
            LoopError::Task(e) => write!(f, "main task failed: {e}"),
        }
    }
}

impl std::error::Error for LoopError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoopError::Io(e) => Some(e),
            LoopError::Task(e) => Some(e),
            LoopError::Deadlock(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for LoopError {
    fn from(e: std::io::Error) -> LoopError {
        LoopError::Io(e)
    }
}

/// Turn a caught panic payload into a message. Panics carry `&str` or `String` in practice.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}
