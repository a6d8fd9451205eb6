//! Export a run as Chrome trace-event JSON (`--trace-json FILE`), for Perfetto
//! (ui.perfetto.dev) or `chrome://tracing`.
//!
//! ```text
//!   {"traceEvents":[
//!     {"ph":"M","name":"thread_name","pid":1,"tid":2,"args":{"name":"T2 Job-A"}},
//!     {"ph":"X","name":"Job-A","pid":1,"tid":2,"ts":0.0,"dur":3.1,"args":{"poll":1}},
//!     {"ph":"s","id":4,"name":"wake","pid":1,"tid":0,"ts":1000000.0, ...},   flow start
//!     {"ph":"f","id":4,"bp":"e","name":"wake","pid":1,"tid":2,"ts":1000001.2} flow end
//!     {"ph":"C","name":"ready queue","pid":1,"ts":0.0,"args":{"len":3}}
//!   ],"displayTimeUnit":"ms"}
//! ```
//!
//! - Each task is a track (`tid` = its spawn number); callbacks share track 0.
//! - Each poll and each callback is an `X` (complete) slice. Its `dur` is the CPU time the
//!   inspector measured around it (real, even on the virtual clock).
//! - `ts` is loop time in µs, pushed later when needed so that slices never overlap:
//!   the loop is one thread, so its steps really did run one after another. On the
//!   virtual clock, all the steps of one instant sit just after that instant.
//! - A wake-up is a flow arrow (`s` on the waker's slice, `f` on the woken task's next
//!   poll); wakes from outside any slice (spawn from `main`) have no arrow.
//! - The ready queue's length at each iteration start is a counter (`C`).
//!
//! # asyncio equivalent
//! None built in (asyncio has no structured trace); tokio has `tracing-chrome`.

use std::fmt::Write as _;

use super::{Model, Track};
use crate::trace::WakeSource;

/// Escape a string for a JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn tid(track: Track) -> u32 {
    match track {
        Track::Task(t) => t.number(),
        Track::Callback => 0,
    }
}

/// Render the model as a trace-event JSON object.
pub fn render(model: &Model) -> String {
    let mut ev: Vec<String> = Vec::new();
    ev.push(r#"{"ph":"M","name":"process_name","pid":1,"tid":0,"args":{"name":"looplab"}}"#.into());
    ev.push(r#"{"ph":"M","name":"thread_name","pid":1,"tid":0,"args":{"name":"callbacks"}}"#.into());
    for t in model.tasks_in_order() {
        ev.push(format!(
            r#"{{"ph":"M","name":"thread_name","pid":1,"tid":{},"args":{{"name":{}}}}}"#,
            t.id.number(),
            json_str(&format!("{} {}", t.id, t.name))
        ));
    }
    // Place slices: ts = max(loop time, end of the previous slice), in µs.
    let mut cursor = 0f64;
    let mut placed: Vec<(f64, f64)> = Vec::with_capacity(model.slices.len());
    let mut polls_seen = std::collections::HashMap::new();
    for s in &model.slices {
        let ts = (s.start as f64 / 1000.0).max(cursor);
        let dur = (s.cpu_ns as f64 / 1000.0).max(0.001);
        cursor = ts + dur;
        placed.push((ts, dur));
        let mut args = String::new();
        if let Track::Task(t) = s.track {
            let n = polls_seen.entry(t).or_insert(0u64);
            *n += 1;
            let _ = write!(args, r#""poll":{n},"task":{}"#, json_str(&t.to_string()));
        }
        ev.push(format!(
            r#"{{"ph":"X","name":{},"cat":"{}","pid":1,"tid":{},"ts":{ts:.3},"dur":{dur:.3},"args":{{{args}}}}}"#,
            json_str(&s.name),
            if s.track == Track::Callback { "callback" } else { "poll" },
            tid(s.track),
        ));
    }
    // Flows: from the waker's slice to the woken task's poll that consumed the wake.
    for (i, s) in model.slices.iter().enumerate() {
        let Some(f) = s.woken_by_flow else { continue };
        let flow = &model.flows[f];
        let Some(from) = flow.from_slice else {
            continue;
        };
        let (fts, fdur) = placed[from];
        let name = match flow.by {
            WakeSource::Timer(_) => "wake (timer)",
            WakeSource::Task(_) => "wake (task)",
            WakeSource::Callback(_) => "wake (callback)",
            WakeSource::Io(_) => "wake (io)",
            _ => "wake",
        };
        ev.push(format!(
            r#"{{"ph":"s","id":{f},"name":"{name}","cat":"wake","pid":1,"tid":{},"ts":{:.3}}}"#,
            tid(model.slices[from].track),
            fts + fdur / 2.0
        ));
        ev.push(format!(
            r#"{{"ph":"f","bp":"e","id":{f},"name":"{name}","cat":"wake","pid":1,"tid":{},"ts":{:.3}}}"#,
            tid(s.track),
            placed[i].0
        ));
    }
    for (t, len) in &model.ready_len {
        ev.push(format!(
            r#"{{"ph":"C","name":"ready queue","pid":1,"tid":0,"ts":{:.3},"args":{{"len":{len}}}}}"#,
            *t as f64 / 1000.0
        ));
    }
    format!("{{\"traceEvents\":[\n{}\n],\"displayTimeUnit\":\"ms\"}}\n", ev.join(",\n"))
}
