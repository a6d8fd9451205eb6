//! Chapter 5, task 2: a smart home driven only by `call_soon` and `call_later` callbacks.
//!
//! No tasks, no `async`: three devices take turns (security check → temperature control →
//! lighting control → security ...). Each step takes a random 1–2 s (a `call_later` for
//! its end), then schedules the next device one second later (another `call_later`). A
//! `call_later(30 s, shutdown)` made before anything else stops the cycle.
//!
//! ```text
//! cargo run --example task2_smart_home -- --fast --seed 7
//! ```
//!
//! # What to look for
//! 1. The first step is a `call_soon`: it runs in the first iteration, at t=0 (E1).
//! 2. Only one step is ever pending: each callback schedules the next one. `--trace` shows
//!    `timer #n scheduled for ...` then `timer #n due` one to two seconds later.
//! 3. The shutdown timer was scheduled first, so when a step falls due at exactly 30 s too,
//!    shutdown comes first ((deadline, seq) order, E3). `stop()` lets the rest of the
//!    iteration run (E5), so shutdown also *cancels* the pending step: a cancelled handle
//!    never runs, even when it is already in the batch being run (E4). Nothing runs after
//!    the shutdown message. When that happens the program says so (try `--seed 1`).
//! 4. The durations come from `--seed` (a splitmix64 generator, below): the same seed gives
//!    the same run, on both clocks.
//!
//! # The same program in asyncio
//! ```text
//! def security_check(loop):
//!     print("🔒 [SECURITY] Checking all door and window sensors...")
//!     loop.call_later(random.randint(1, 2), security_done, loop)
//! loop = asyncio.new_event_loop()
//! loop.call_soon(security_check, loop)
//! loop.call_later(30, shutdown, loop)      # prints, then loop.stop()
//! loop.run_forever()
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};
use looplab::{LoopHandle, TimerHandle};

/// The command line.
pub const SPEC: Spec = Spec { name: "task2_smart_home", usage: "[--seed N]", positional: &[], options: &["--seed"] };

/// How long the automation cycle runs.
const RUN_FOR: Duration = Duration::from_secs(30);
/// The pause between one device's step and the next.
const GAP: Duration = Duration::from_secs(1);
/// The seed when none is given.
const DEFAULT_SEED: u64 = 2024;

const RULE: &str = "============================================================";

/// splitmix64: a tiny, good-enough PRNG, so the example needs no `rand` crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The three devices, in rotation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    Security,
    Thermostat,
    Lights,
}

impl Device {
    fn next(self) -> Device {
        match self {
            Device::Security => Device::Thermostat,
            Device::Thermostat => Device::Lights,
            Device::Lights => Device::Security,
        }
    }
    fn title(self) -> &'static str {
        match self {
            Device::Security => "Security Check",
            Device::Thermostat => "Temperature Control",
            Device::Lights => "Lighting Control",
        }
    }
}

/// The home's state, shared by every callback.
struct Home {
    out: Out,
    rng: SplitMix,
    /// The one pending callback, so shutdown can cancel it, and what it is: `true` for the
    /// end of a step in progress, `false` for the start of the next one.
    pending: Option<(TimerHandle, Device, bool)>,
    /// Completed security checks (a separator line precedes every later one).
    cycles: u32,
    /// What the thermostat read and the lights did, decided when the step starts.
    reading: i64,
    room: usize,
}

type Shared = Rc<RefCell<Home>>;

const ROOMS: [&str; 3] = ["Living Room", "Bedroom", "Kitchen"];
const BRIGHTNESS: [u64; 4] = [25, 50, 75, 100];

/// A device starts its step: print what it does, schedule the end 1–2 s later.
fn start(lp: &LoopHandle, home: &Shared, device: Device) {
    let mut h = home.borrow_mut();
    let out = h.out.clone();
    match device {
        Device::Security => {
            if h.cycles > 0 {
                writeln!(out, "--------------------------------------------------");
            }
            writeln!(out, "🔒 [SECURITY] Checking all door and window sensors...");
        }
        Device::Thermostat => {
            h.reading = h.rng.range(18, 28) as i64;
            writeln!(out, "🌡️  [THERMOSTAT] Current temperature: {}°C", h.reading);
        }
        Device::Lights => {
            writeln!(out, "💡 [LIGHTS] Checking {} lighting...", ROOMS[h.room]);
        }
    }
    let secs = h.rng.range(1, 2);
    let home2 = home.clone();
    let handle = lp.call_later(Duration::from_secs(secs), move |lp| finish(lp, &home2, device, secs));
    h.pending = Some((handle, device, true));
}

/// A device's step ends: report, schedule the next device one second later.
fn finish(lp: &LoopHandle, home: &Shared, device: Device, secs: u64) {
    let mut h = home.borrow_mut();
    let out = h.out.clone();
    match device {
        Device::Security => {
            writeln!(out, "   ✓ Security check completed in {secs}s - All sensors OK!");
            h.cycles += 1;
        }
        Device::Thermostat => {
            let t = h.reading;
            if t > 24 {
                writeln!(out, "   ✓ Cooling activated! Adjusting to 22°C (took {secs}s)");
            } else if t < 20 {
                writeln!(out, "   ✓ Heating activated! Adjusting to 22°C (took {secs}s)");
            } else {
                writeln!(out, "   ✓ Temperature optimal at {t}°C (took {secs}s)");
            }
        }
        Device::Lights => {
            let level = BRIGHTNESS[h.rng.range(0, 3) as usize];
            let room = ROOMS[h.room];
            writeln!(out, "   ✓ {room} brightness set to {level}% (took {secs}s)");
            h.room = (h.room + 1) % ROOMS.len();
        }
    }
    let next = device.next();
    writeln!(out, "   → Scheduling: {} in 1 second...", next.title());
    writeln!(out);
    let home2 = home.clone();
    let handle = lp.call_later(GAP, move |lp| start(lp, &home2, next));
    h.pending = Some((handle, next, false));
}

/// The 30 s timer: announce, cancel the pending step (E4), stop the loop (E5).
fn shutdown(lp: &LoopHandle, home: &Shared) {
    let mut h = home.borrow_mut();
    let out = h.out.clone();
    let Some((handle, device, in_step)) = h.pending.take() else {
        unreachable!("a step is always pending: each callback schedules the next")
    };
    if in_step {
        writeln!(out); // the step in progress printed its first line only
    }
    writeln!(out, "🏁 Automation cycle complete. Shutting down...");
    let due_now = handle.when() == lp.time();
    if handle.cancel() && due_now {
        let what = if in_step {
            format!("the end of the {} step", device.title())
        } else {
            format!("the {} step", device.title())
        };
        writeln!(
            out,
            "   ({what} was due at this same instant, {:.3}s: cancelled, it never runs)",
            handle.when().as_secs_f64()
        );
    }
    lp.stop();
}

/// The scenario, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let seed = args.option_u64("--seed")?.unwrap_or(DEFAULT_SEED);
    let lp = Session::new(args);
    out.banner(RULE, &["SMART HOME AUTOMATION SYSTEM", "Using Asyncio Event Loop Scheduling"]);
    writeln!(out);
    writeln!(out, "This system rotates between three smart home tasks:");
    writeln!(out, "  1. 🔒 Security System Check");
    writeln!(out, "  2. 🌡️  Temperature Control");
    writeln!(out, "  3. 💡 Lighting Control");
    writeln!(out);
    writeln!(out, "Running automation cycle for {} seconds...", RUN_FOR.as_secs());
    writeln!(out, "{RULE}");
    writeln!(out);

    let home: Shared = Rc::new(RefCell::new(Home {
        out: out.clone(),
        rng: SplitMix(seed),
        pending: None,
        cycles: 0,
        reading: 0,
        room: 0,
    }));
    // The shutdown timer first: on a tie at 30 s it fires before any step (E3).
    let h = home.clone();
    lp.call_later(RUN_FOR, move |lp| shutdown(lp, &h));
    let h = home.clone();
    lp.call_soon(move |lp| start(lp, &h, Device::Security));
    lp.run_forever()?;

    writeln!(out);
    out.banner(RULE, &["SMART HOME AUTOMATION STOPPED", "All systems in standby mode"]);
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
