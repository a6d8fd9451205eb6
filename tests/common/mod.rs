//! Helpers shared by the integration tests: a virtual-clock loop and an ordered log.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use looplab::trace::Recorder;
use looplab::{EventLoop, LoopHandle, TimerBackend};

/// A shared list of strings that callbacks and tasks append to, in the order they run.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn new() -> Log {
        Log::default()
    }
    /// Append an entry.
    pub fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    /// A callback that appends `s` when it runs.
    pub fn cb(&self, s: &str) -> impl FnOnce(&LoopHandle) + 'static {
        let log = self.clone();
        let s = s.to_string();
        move |_| log.push(s)
    }
    /// Take everything logged so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

/// A loop on the virtual clock and a fresh log.
pub fn virtual_loop() -> (EventLoop, Log) {
    (EventLoop::new_virtual(), Log::new())
}

/// A virtual loop with the given timer backend.
pub fn virtual_loop_with(backend: TimerBackend) -> EventLoop {
    EventLoop::builder().virtual_clock().timer_backend(backend).build().unwrap()
}

/// A virtual loop with a recorder attached to its event log.
pub fn traced_loop() -> (EventLoop, Recorder) {
    let lp = EventLoop::new_virtual();
    let rec = Recorder::new();
    lp.add_trace_sink(rec.clone());
    (lp, rec)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
