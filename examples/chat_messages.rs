//! asyncio basics, task 5: chat messages from five users, each after a random delay of
//! 0.5–2.0 s (seeded, so a run can be repeated).
//!
//! ```text
//! cargo run --example chat_messages -- --fast --seed 3
//! ```
//!
//! # What to look for
//! 1. Messages arrive in the order of their delays, not the order the users were listed.
//! 2. Each line shows the delay the seed chose for it.
//! 3. The same `--seed` gives the same conversation, on both clocks.
//!
//! # The same program in asyncio
//! ```text
//! async def send_message(user, msg):
//!     await asyncio.sleep(random.uniform(0.5, 2.0)); print(f"{user}: {msg}")
//! async def main():
//!     await asyncio.gather(*[asyncio.create_task(send_message(u, m)) for u, m in messages])
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "chat_messages", usage: "[--seed N]", positional: &[], options: &["--seed"] };

const MESSAGES: [(&str, &str); 5] = [
    ("Alice", "Hello!"),
    ("Bob", "How are you?"),
    ("Charlie", "Anyone online?"),
    ("Diana", "Let's start the meeting."),
    ("Evan", "I'm joining now!"),
];

/// xorshift64: the same "random" delays for the same seed, without a `rand` crate.
fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

async fn send_message(out: Out, user: &'static str, msg: &'static str, delay: Duration) {
    looplab::sleep(delay).await;
    // The delay, not the clock: the real clock would add a few µs and change the line.
    writeln!(out, "{user}: {msg}   (after {:.3}s)", delay.as_secs_f64());
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    // xorshift must not start at 0; any other seed is fine.
    let mut state = args.option_u64("--seed")?.unwrap_or(42).max(1);
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let tasks = MESSAGES.map(|(user, msg)| {
            let delay = Duration::from_millis(500 + xorshift(&mut state) % 1501);
            h.spawn_named(user, send_message(o.clone(), user, msg, delay))
        });
        for t in tasks {
            let _ = t.await;
        }
    })?;
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
