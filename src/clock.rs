//! The loop's clock: a real monotonic one, and a virtual one for deterministic tests.
//!
//! Loop time is a [`Duration`] since the loop was created, held as integer nanoseconds
//! ([`Nanos`]), never a float: two timers `1 ms` apart never collapse into one, and
//! `(deadline, seq)` comparisons are exact.
//!
//! ```text
//!   Real:     time() = Instant::now() - start          (moves by itself)
//!   Virtual:  time() = now_ns                          (moves only when the loop says)
//!
//!   virtual timeline:   0 ----------- 2 s ------------ 3 s
//!                       |  tasks run   | timer due      | timer due
//!                       '--- jump -----'---- jump ------'
//!   The loop jumps `now_ns` straight to the next deadline when it is *quiescent*:
//!   nothing ready, no pool job in flight, and a zero-timeout poll found no I/O.
//! ```
//!
//! # asyncio equivalent
//! `loop.time()` (`time.monotonic()`). asyncio has no virtual clock; the idea comes from
//! trio's `MockClock(autojump_threshold=0)` and tokio's `start_paused` time.
//!
//! # Invariants
//! - **C1** Loop time never goes backwards.
//! - **C2** The virtual clock only moves in [`Clock::advance_to`], called by the loop when it
//!   is quiescent (or by a test that asks for it), so the same program sees the same times.
//! - **C3** With real sockets, a virtual clock can fire a timeout while bytes are still in
//!   flight in the kernel (the flake trio and tokio users report). looplab's rule: the clock
//!   jumps only after a *zero-timeout* poll returned no events, so data already readable is
//!   always seen first; data a *remote* peer has not sent yet cannot be waited for. Tests that
//!   use real networking with timeouts should therefore use the real clock, or keep both
//!   ends of a connection on the same loop (then a write is readable before the clock moves).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Nanoseconds since the loop started: the unit of every deadline in looplab.
pub type Nanos = u64;

/// Convert a [`Duration`] to [`Nanos`], saturating at `u64::MAX` (about 584 years).
pub fn duration_to_nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Which clock a loop reads. Chosen when the loop is built.
#[derive(Debug)]
pub enum Clock {
    /// The monotonic clock of the OS, measured from `start`.
    Real {
        /// The instant the loop was created: loop time 0.
        start: Instant,
    },
    /// A counter that moves only when the loop jumps it (C2).
    Virtual {
        /// Current loop time.
        now: Cell<Nanos>,
    },
}

impl Clock {
    /// A real clock starting now.
    pub fn real() -> Clock {
        Clock::Real { start: Instant::now() }
    }

    /// A virtual clock at time zero.
    pub fn virtual_clock() -> Clock {
        Clock::Virtual { now: Cell::new(0) }
    }

    /// True for the virtual clock.
    pub fn is_virtual(&self) -> bool {
        matches!(self, Clock::Virtual { .. })
    }

    /// Current loop time in nanoseconds. asyncio: `loop.time()`.
    #[inline]
    pub fn now(&self) -> Nanos {
        match self {
            Clock::Real { start } => duration_to_nanos(start.elapsed()),
            Clock::Virtual { now } => now.get(),
        }
    }

    /// Move a virtual clock forward to `t` (never backwards, C1). Returns the previous time.
    /// On a real clock this does nothing and returns the current time.
    pub fn advance_to(&self, t: Nanos) -> Nanos {
        match self {
            Clock::Real { .. } => self.now(),
            Clock::Virtual { now } => {
                let prev = now.get();
                if t > prev {
                    now.set(t);
                }
                prev
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward() {
        let c = Clock::virtual_clock();
        assert_eq!(c.now(), 0);
        assert_eq!(c.advance_to(5), 0);
        assert_eq!(c.advance_to(3), 5); // C1: no going back
        assert_eq!(c.now(), 5);
    }

    #[test]
    fn durations_saturate() {
        assert_eq!(duration_to_nanos(Duration::from_millis(2)), 2_000_000);
        assert_eq!(duration_to_nanos(Duration::MAX), u64::MAX);
    }
}
