//! The task table, in the style of tokio-console's task list.
//!
//! One row per task, sorted by spawn number:
//!
//! ```text
//!   ID  NAME    STATE    TOTAL   BUSY    SCHED   IDLE    POLLS WAKES WOKEN BY          SPAWNED AT
//!   T1  main    DONE     3.000s  0.000s  0.000s  3.000s  4     4     T2 1, spawn 1, ... examples/x.rs:40:8
//! ```
//!
//! - TOTAL = BUSY + SCHED + IDLE, from creation to finish (or to the last event seen).
//! - BUSY: loop time being polled; SCHED: ready, waiting for its turn; IDLE: suspended.
//!   On the virtual clock a poll takes no loop time, so BUSY is 0 there: the CPU column
//!   (real time measured around each poll) is added only on the real clock, where nothing
//!   pins the output.
//! - WOKEN BY counts wake-ups by who made them: `spawn` (its first step), `timer` (a
//!   `sleep` or `call_later`), `callback` (e.g. a future completed in `call_soon`), `T3`
//!   (another task, or itself for `yield_now`), `io:N`, `thread`.
//!
//! # asyncio equivalent
//! None built in; `asyncio.all_tasks()` gives names and states only. tokio-console shows
//! these columns (its "Total/Busy/Sched/Idle/Polls/Location").

use std::fmt::Write as _;

use super::Model;
use crate::trace::fmt_secs;

/// Render the table as text (one header line, one line per task).
pub fn render(model: &Model) -> String {
    let tasks = model.tasks_in_order();
    let name_w = tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(4).clamp(4, 24);
    let woken: Vec<String> = tasks
        .iter()
        .map(|t| t.woken_by.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "))
        .collect();
    let woken_w = woken.iter().map(|w| w.chars().count()).max().unwrap_or(8).max(8);
    let cpu = !model.virtual_clock;
    let mut out = String::new();
    let _ = write!(
        out,
        "{:<4} {:<name_w$} {:<9} {:>8} {:>8} {:>8} {:>8} ",
        "ID", "NAME", "STATE", "TOTAL", "BUSY", "SCHED", "IDLE"
    );
    if cpu {
        let _ = write!(out, "{:>9} ", "CPU");
    }
    let _ = writeln!(out, "{:>5} {:>5}  {:<woken_w$}  SPAWNED AT", "POLLS", "WAKES", "WOKEN BY");
    for (t, w) in tasks.iter().zip(&woken) {
        let end = t.finished.as_ref().map_or(model.end, |(at, _)| *at);
        // The interval since the last event counts as the state the task is in.
        let open = end.saturating_sub(t.last_change);
        let (mut busy, mut sched, mut idle) = (t.busy, t.scheduled, t.idle);
        if t.finished.is_none() {
            match t.state {
                crate::TaskState::Running => busy += open,
                crate::TaskState::Ready | crate::TaskState::Created => sched += open,
                _ => idle += open,
            }
        }
        let name: String = t.name.chars().take(name_w).collect();
        let _ = write!(
            out,
            "{:<4} {:<name_w$} {:<9} {:>8} {:>8} {:>8} {:>8} ",
            t.id.to_string(),
            name,
            t.state.as_str(),
            fmt_secs(end - t.created),
            fmt_secs(busy),
            fmt_secs(sched),
            fmt_secs(idle),
        );
        if cpu {
            let _ = write!(out, "{:>7}µs ", t.cpu_ns / 1000);
        }
        let _ = writeln!(
            out,
            "{:>5} {:>5}  {:<woken_w$}  {}",
            t.polls,
            t.wakes(),
            w,
            t.spawned_at.as_deref().unwrap_or("?")
        );
    }
    out
}
