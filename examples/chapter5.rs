//! Chapter 5: the scenarios in order, as the material's README runs them one by one.
//!
//! ```text
//! cargo run --example chapter5 -- --fast
//! ```
//!
//! Each scenario is its own example file with a `run(&Args, &Out)` function; this runner
//! includes those files as modules (`#[path]`) and calls them in order, passing its own
//! flags on (`--fast`, `--trace`, `--timeline`, ...). Task 1 gets the README's arguments
//! (`5 4`), tasks 2, 3 and 4 none (task 2 its default seed; task 4 its default 10 images and
//! 5 workers, at a 2 % scale under `--fast`).
//!
//! To add a scenario, add one line to the `chapter!` list below, with its file in
//! `examples/` exposing `SPEC` and `run` like the others. Task 4 starts worker processes by
//! re-running this program, so `main` calls its registry's `run_worker_if_child()` first.
//!
//! # What to look for
//! 1. Each scenario builds its own loop: nothing carries over from one to the next.
//! 2. With `--fast` the whole chapter takes no time, and prints what the real clock prints.

use looplab::inspect::cli::{self, Args, Out, RunError, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "chapter5", usage: "[--tasks 1,2,3,4]", positional: &[], options: &["--tasks"] };

/// Which scenarios `--tasks` selects (1-based, in the list's order); all when absent.
fn selected(args: &Args) -> Result<Vec<usize>, cli::UsageError> {
    let Some(list) = args.option("--tasks") else {
        return Ok((1..=SCENARIOS.len()).collect());
    };
    list.split(',')
        .map(|t| {
            t.trim().parse::<usize>().ok().filter(|n| (1..=SCENARIOS.len()).contains(n)).ok_or_else(|| {
                cli::UsageError(format!("--tasks takes numbers from 1 to {}, not {t:?}", SCENARIOS.len()))
            })
        })
        .collect()
}

/// Declares each scenario as a module (its example file) with the arguments it gets, and
/// `run` calls them in order.
macro_rules! chapter {
    ($($name:ident ($file:literal) => [$($arg:expr),*],)*) => {
        $(
            #[allow(dead_code)] // each file's own `main` is unused here
            #[path = $file]
            pub mod $name;
        )*

        /// The scenarios in order: module name, its `SPEC`, its `run`, its arguments.
        const SCENARIOS: &[(&str, &Spec, cli::RunFn, &[&str])] = &[
            $((stringify!($name), &$name::SPEC, $name::run, &[$($arg),*]),)*
        ];
    };
}

chapter! {
    task1_order_processing("task1_order_processing.rs") => ["5", "4"],
    task2_smart_home("task2_smart_home.rs") => [],
    task3_ecommerce_analytics("task3_ecommerce_analytics.rs") => [],
    task4_image_processing("task4_image_processing.rs") => [],
}

/// Run every scenario with this runner's flags plus its own arguments.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let chosen = selected(args)?;
    for (i, &n) in chosen.iter().enumerate() {
        let (name, spec, run, extra) = &SCENARIOS[n - 1];
        if i > 0 {
            writeln!(out);
            writeln!(out);
        }
        writeln!(out, ">>> {name}");
        writeln!(out);
        let mut argv: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if args.fast {
            argv.push("--fast".into());
        }
        if args.trace {
            argv.push("--trace".into());
        }
        if args.timeline {
            argv.push("--timeline".into());
        }
        if args.table {
            argv.push("--table".into());
        }
        let scenario_args = Args::parse(spec, argv)?;
        run(&scenario_args, out)?;
    }
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    // Task 4's process pool re-runs this binary as its workers: they serve jobs here and exit.
    task4_image_processing::registry().run_worker_if_child();
    cli::main(&SPEC, run)
}
