//! An ASCII Gantt chart of tasks over loop time (`--timeline` on the examples).
//!
//! One row per task (sorted by spawn number) and one for callbacks; one column per slice of
//! loop time. A cell shows the most telling thing that happened to the row in that slice:
//!
//! ```text
//!   timeline: 0.000s .. 3.000s, 1 column = 0.050s
//!               +---------+---------+---------+---------+---------+---------+
//!               0s        0.5s      1.0s      1.5s      2.0s      2.5s      3.0s
//!   T1 main     #-------------------#---------------------------------------#
//!   T2 Job-A    #---------------------------------------#
//!   callbacks   *                   *                   *                   *
//!   # polled   : ready, not yet polled   - waiting   (blank) not alive   * callback ran
//! ```
//!
//! On the virtual clock a poll takes no loop time, so it marks the one column its instant
//! falls in; what the chart shows is *when* each task ran and how long it waited between.
//!
//! # asyncio equivalent
//! None; tokio-console draws a per-task poll histogram, Perfetto a real timeline (chrome.rs).

use std::fmt::Write as _;

use super::{Model, Track};
use crate::clock::Nanos;
use crate::task::TaskState;
use crate::trace::fmt_secs;

/// Render the chart with `width` columns (at least 10).
///
/// The axis is loop time; but when the whole run happened at one instant (nothing slept),
/// loop time says nothing, so the axis becomes the loop's iterations, one column each.
pub fn render(model: &Model, width: usize) -> String {
    let width = width.max(10);
    let by_iteration = model.end == 0;
    let last_iter = model.iterations.max(1);
    let end = model.end.max(1);
    // On the time axis, one column is a round amount of loop time (1, 2, 2.5 or 5 × 10^k ns)
    // so the ruler reads easily: the smallest that fits the run in `width` columns.
    let per_col = (0..20)
        .flat_map(|k| [10, 20, 25, 50].map(|m| m * 10u64.pow(k) / 10))
        .find(|&step| step > 0 && end.div_ceil(step) < width as u64)
        .unwrap_or(end);
    let cols =
        if by_iteration { (last_iter as usize + 1).min(width) } else { (end.div_ceil(per_col) as usize + 1).max(2) };
    // Column of an event at loop time `t` in iteration `i`: 0 ..= cols-1.
    let col = |t: Nanos, i: u64| -> usize {
        if by_iteration { (i as usize).min(cols - 1) } else { ((t / per_col) as usize).min(cols - 1) }
    };
    let tasks = model.tasks_in_order();
    let label = |id: String, name: &str| format!("{id} {name}");
    let label_w =
        tasks.iter().map(|t| label(t.id.to_string(), &t.name).chars().count()).max().unwrap_or(0).clamp(9, 28);
    let mut out = String::new();
    if by_iteration {
        let _ = writeln!(
            out,
            "timeline: everything ran at t={}; 1 column = 1 loop iteration (0 = before the loop ran)",
            fmt_secs(model.end)
        );
    } else {
        let _ = writeln!(out, "timeline: 0.000s .. {}, 1 column = {}", fmt_secs(model.end), fmt_secs(per_col));
    }
    // Ruler: a '+' every 10 columns, the loop time (or iteration) of that column under it.
    let mut ruler = String::new();
    let mut marks = String::new();
    for c in 0..cols {
        if c % 10 == 0 {
            ruler.push('+');
            let t = if by_iteration { c.to_string() } else { fmt_secs(c as Nanos * per_col) };
            if marks.chars().count() <= c {
                while marks.chars().count() < c {
                    marks.push(' ');
                }
                marks.push_str(&t);
            }
        } else {
            ruler.push('-');
        }
    }
    let _ = writeln!(out, "{:label_w$}  {ruler}", "");
    let _ = writeln!(out, "{:label_w$}  {}", "", marks.trim_end());
    for t in &tasks {
        let mut row = vec![' '; cols];
        let (last, last_i) = match (&t.finished, t.finished_iteration) {
            (Some((at, _)), Some(i)) => (*at, i),
            _ => (model.end, model.iterations),
        };
        for cell in &mut row[col(t.created, t.created_iteration)..=col(last, last_i)] {
            *cell = '-';
        }
        // Ready intervals: from a wake to the next poll of this task.
        for f in model.flows.iter().filter(|f| f.to == t.id) {
            let next_poll = model
                .slices
                .iter()
                .filter(|s| s.track == Track::Task(t.id) && s.iteration >= f.iteration)
                .map(|s| (s.start, s.iteration))
                .next()
                .unwrap_or((last, last_i));
            let (a, b) = (col(f.at, f.iteration), col(next_poll.0, next_poll.1));
            if b > a {
                for cell in &mut row[a..=b] {
                    *cell = ':';
                }
            }
        }
        for s in model.slices.iter().filter(|s| s.track == Track::Task(t.id)) {
            for cell in &mut row[col(s.start, s.iteration)..=col(s.end, s.iteration)] {
                *cell = '#';
            }
        }
        let name: String = label(t.id.to_string(), &t.name).chars().take(label_w).collect();
        let tail = match t.state {
            TaskState::Failed => "  FAILED",
            TaskState::Cancelled => "  CANCELLED",
            _ => "",
        };
        let line: String = row.into_iter().collect();
        let _ = writeln!(out, "{name:label_w$}  {}{tail}", line.trim_end());
    }
    let mut row = vec![' '; cols];
    for s in model.slices.iter().filter(|s| s.track == Track::Callback) {
        row[col(s.start, s.iteration)] = '*';
    }
    let line: String = row.into_iter().collect();
    let _ = writeln!(out, "{:label_w$}  {}", "callbacks", line.trim_end());
    let _ = writeln!(out, "# polled   : ready, not yet polled   - waiting   (blank) not alive   * callback ran");
    out
}
