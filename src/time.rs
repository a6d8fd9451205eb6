//! Sleeping and yielding: the two ways a task hands the loop back on purpose.
//!
//! `sleep(d)` schedules a timer whose callback wakes the task, then suspends. When the timer
//! comes due (phase 3) its callback joins the ready queue; when that callback runs (phase 4)
//! it wakes the task, which joins the *back* of the queue and runs in the next iteration.
//! So a sleeping task resumes one hop after its timer fires, behind the other timers due at
//! the same time: exactly asyncio's order (its `sleep` completes a future from the timer,
//! and the future's done-callback wakes the task).
//!
//! ```text
//!   iteration k:    task polls sleep(1s) ─► call_at(now+1s, Wake(waker)) ─► Pending
//!   iteration n:    phase 3: timer due ─► ready [.., Cb(#9)]
//!                   phase 4: Cb(#9) runs: waker.wake() ─► ready [.., Task(T2)]
//!   iteration n+1:  phase 4: T2 polled, sleep returns Ready
//!
//!   sleep(0) / yield_now(): wake_by_ref() then Pending ─► back of the queue, one iteration
//! ```
//!
//! # asyncio equivalent
//! `asyncio.sleep(delay)` (`tasks.py`): `sleep(0)` is a bare `yield` (one iteration,
//! **S1**); otherwise `call_later(delay, futures._set_result_unless_cancelled, ...)`.
//! Dropping a `Sleep` (its task was cancelled) cancels its timer (**S2**).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::duration_to_nanos;
use crate::events::{CallbackFn, LoopHandle, get_running_loop};
use crate::trace::CallbackId;

/// Suspend the current task for `delay` of loop time. asyncio: `await asyncio.sleep(delay)`.
///
/// # Panics
/// When polled outside a running looplab loop (like `tokio::time::sleep` outside tokio).
pub fn sleep(delay: Duration) -> Sleep {
    Sleep { delay: duration_to_nanos(delay), state: SleepState::Init }
}

/// Suspend for `secs` seconds (a float, as in asyncio; negative or NaN counts as zero, and
/// anything too large for a `Duration`, infinity included, as forever: `Duration::MAX`).
pub fn sleep_secs(secs: f64) -> Sleep {
    sleep(secs_to_duration(secs))
}

/// asyncio's float seconds as a `Duration`: saturating, never panicking.
fn secs_to_duration(secs: f64) -> Duration {
    match Duration::try_from_secs_f64(secs) {
        Ok(d) => d,
        Err(_) if secs > 0.0 => Duration::MAX, // 1e300 or inf: too long, not zero
        Err(_) => Duration::ZERO,              // negative or NaN
    }
}

/// Give every other ready task and callback one turn. asyncio: `await asyncio.sleep(0)`.
///
/// The same as `sleep(Duration::ZERO)` (S1), as a future of its own: one flag, no timer state
/// and no destructor, so a task switch costs as little as it can.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[derive(Debug)]
enum SleepState {
    /// Not polled yet: the deadline is computed at the first poll, as asyncio computes it
    /// when the coroutine reaches the `await`.
    Init,
    /// `sleep(0)`: woke itself, returns at the next poll (S1).
    Yielded,
    /// Waiting on a timer.
    Waiting { lp: LoopHandle, timer: CallbackId },
    /// Finished.
    Done,
}

/// The future returned by [`sleep`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    /// The delay in nanoseconds (8 bytes rather than a `Duration`'s 16: a parked task is
    /// mostly its sleep).
    delay: crate::clock::Nanos,
    state: SleepState,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &self.state {
            SleepState::Init => {
                if self.delay == 0 {
                    cx.waker().wake_by_ref();
                    self.state = SleepState::Yielded;
                    return Poll::Pending;
                }
                self.start_timer(cx)
            }
            SleepState::Yielded => {
                self.state = SleepState::Done;
                Poll::Ready(())
            }
            SleepState::Waiting { lp, timer } => {
                if lp.callback_pending(*timer) {
                    Poll::Pending // polled early (e.g. by a combinator): keep waiting
                } else {
                    self.state = SleepState::Done;
                    Poll::Ready(())
                }
            }
            SleepState::Done => Poll::Ready(()),
        }
    }
}

impl Sleep {
    /// First poll of a real delay: schedule the timer. Out of line, so that the `sleep(0)`
    /// path (a task switch) stays small.
    #[inline(never)]
    fn start_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let lp = get_running_loop().expect("looplab::sleep polled outside a running looplab loop");
        let when = lp.now_ns().saturating_add(self.delay);
        // A looplab task's waker: store the task id, not a waker clone (no allocation).
        let f = match crate::task::raw_waker::task_of(cx.waker(), lp.id()) {
            Some(task) => CallbackFn::WakeTask(task),
            None => CallbackFn::Wake(cx.waker().clone()),
        };
        match lp.schedule_timer(when, f) {
            Some(timer) => {
                self.state = SleepState::Waiting { lp, timer };
                Poll::Pending
            }
            None => {
                // Closed loop: nothing will ever fire; finish rather than hang.
                self.state = SleepState::Done;
                Poll::Ready(())
            }
        }
    }
}

impl Drop for Sleep {
    #[inline]
    fn drop(&mut self) {
        if let SleepState::Waiting { lp, timer } = &self.state {
            cancel_timer(lp, *timer); // S2
        }
    }
}

/// S2, out of line: most `Sleep`s end `Done` and have nothing to cancel.
#[cold]
#[inline(never)]
fn cancel_timer(lp: &LoopHandle, timer: CallbackId) {
    lp.cancel_callback(timer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// asyncio takes any float; an absurd one must neither panic nor turn into "now" (a
    /// `sleep_secs(1e300)` used to return at once).
    #[test]
    fn float_seconds_saturate() {
        assert_eq!(secs_to_duration(1.5), Duration::from_millis(1500));
        assert_eq!(secs_to_duration(0.0), Duration::ZERO);
        assert_eq!(secs_to_duration(-1.0), Duration::ZERO);
        assert_eq!(secs_to_duration(f64::NAN), Duration::ZERO);
        assert_eq!(secs_to_duration(f64::INFINITY), Duration::MAX);
        assert_eq!(secs_to_duration(1e300), Duration::MAX);
    }
}
