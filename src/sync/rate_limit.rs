//! `RateLimiter`: at most `max_calls` acquisitions in any window of `period`.
//!
//! Built from two pieces you already know: a [`Semaphore`] with `max_calls` permits, and a
//! timer. Each acquisition takes a permit and does *not* give it back when the caller is
//! done; instead it schedules `release()` with `call_later(period)`. So a permit is out for
//! exactly one period after it was taken, and no window of length `period` can contain more
//! than `max_calls` acquisitions. Waiters are served FIFO, as the semaphore serves them.
//!
//! ```text
//!   t=0.0  acquire #1 ─► permit 1 ─► call_later(1s, release)
//!   t=0.0  acquire #2 ─► permit 2 ─► call_later(1s, release)      max_calls = 2
//!   t=0.0  acquire #3 ─► queued in the semaphore
//!   t=1.0  timer: release() ─► hands the permit to #3 ─► call_later(1s, release)
//! ```
//!
//! # asyncio equivalent
//! No class in asyncio; the usual recipe is the `RateLimiter` of the teaching material
//! (a list of timestamps, polled with `sleep`) or this semaphore-plus-`call_later` one,
//! which needs no polling: nobody wakes until a permit really comes back.

use std::time::Duration;

use super::Semaphore;
use crate::events::get_running_loop;

/// At most `max_calls` acquisitions per `period`. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    /// The permits; one is out for one `period` after each acquisition.
    sem: Semaphore,
    /// How long a permit stays out.
    period: Duration,
}

impl RateLimiter {
    /// A limiter allowing `max_calls` acquisitions in any window of `period`.
    pub fn new(max_calls: usize, period: Duration) -> RateLimiter {
        RateLimiter { sem: Semaphore::new(max_calls), period }
    }

    /// Permits available right now.
    pub fn available(&self) -> usize {
        self.sem.value()
    }

    /// Wait until an acquisition is allowed, and count it.
    ///
    /// # Panics
    /// Outside a running looplab loop (the permit's return is a loop timer).
    pub async fn acquire(&self) {
        let permit = self.sem.acquire().await;
        permit.forget();
        let sem = self.sem.clone();
        let lp = get_running_loop().expect("RateLimiter::acquire needs a running looplab loop");
        lp.call_later(self.period, move |_| sem.release());
    }
}
