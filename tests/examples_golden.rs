//! Golden-output tests for the examples, run in `--fast` mode (virtual clock).
//!
//! Each example's body is a function `run(&Args, &Out)`; this file includes the example
//! files as modules (`#[path]`) and calls them with a capturing [`Out`], so the tests need
//! no example binary and behave the same under `cargo test` and `cargo nextest`. One test
//! also runs a real example process, to check the exit status.

use looplab::inspect::cli::{self, Out, RunFn, Spec};

// The chapter's scenarios come in through the runner, which includes their files (a file
// may be included only once per crate).
#[allow(dead_code)]
#[path = "../examples/chapter5.rs"]
mod chapter5;

use chapter5::task1_order_processing as task1;
use chapter5::task2_smart_home as task2;
use chapter5::task3_ecommerce_analytics as task3;

#[allow(dead_code)]
#[path = "../examples/memory_walkthrough.rs"]
mod walkthrough;

/// Run an example body with `argv`; returns (exit status, stdout, stderr).
fn run(spec: &Spec, f: RunFn, argv: &[&str]) -> (i32, String, String) {
    let (out, captured) = Out::capture();
    let mut err = Vec::new();
    let argv = argv.iter().map(|s| s.to_string()).collect();
    let code = cli::run_with(spec, f, argv, &out, &mut err);
    (code, captured.text(), String::from_utf8(err).unwrap())
}

/// Run in `--fast` mode and insist on success.
fn fast(spec: &Spec, f: RunFn, argv: &[&str]) -> String {
    let mut a = vec!["--fast"];
    a.extend_from_slice(argv);
    let (code, out, err) = run(spec, f, &a);
    assert_eq!(code, 0, "stderr: {err}");
    out
}

/// The material's sample output for `task1_async_order_processing.py 5 4`, verbatim.
const TASK1_5_4: &str = "\
============================================================
    RESTAURANT ORDER PROCESSING SYSTEM
    Using Asyncio Coroutines with Futures
============================================================

Processing order with 5 items...
Customer has 4 previous orders.

Starting concurrent processing...

  [Bill Calculator] Adding item 1: $10
  [Bill Calculator] Adding item 2: $10
  [Bill Calculator] Adding item 3: $10
  [Bill Calculator] Adding item 4: $10
  [Bill Calculator] Adding item 5: $10
  [Loyalty System] Processing order 2: Points multiplied to 2
  [Loyalty System] Processing order 3: Points multiplied to 6
  [Loyalty System] Processing order 4: Points multiplied to 24

✓ COMPLETED: BILL SUMMARY: 5 items = $50 + Tax($5.00) = $55.00

✓ COMPLETED: LOYALTY POINTS: Based on 4 orders, you earned 24 bonus points!

============================================================
    ORDER PROCESSING COMPLETE!
============================================================
";

#[test]
fn task1_matches_the_material() {
    assert_eq!(fast(&task1::SPEC, task1::run, &["5", "4"]), TASK1_5_4);
}

/// Other arguments, other numbers: they are computed, not printed from literals.
#[test]
fn task1_computes_bill_and_factorial() {
    let out = fast(&task1::SPEC, task1::run, &["3", "6"]);
    assert!(out.contains("  [Bill Calculator] Adding item 3: $10\n"));
    assert!(!out.contains("Adding item 4"));
    assert!(out.contains("Points multiplied to 720\n"));
    assert!(out.contains("BILL SUMMARY: 3 items = $30 + Tax($3.00) = $33.00\n"));
    assert!(out.contains("Based on 6 orders, you earned 720 bonus points!"));
    let out = fast(&task1::SPEC, task1::run, &["7", "1"]);
    assert!(out.contains("7 items = $70 + Tax($7.00) = $77.00"));
    assert!(!out.contains("[Loyalty System]"));
    assert!(out.contains("Based on 1 orders, you earned 1 bonus points!"));
}

/// The material's sample for task 3, with the two corrected values (see the example's docs).
const TASK3: &str = "\
=================================================================
    E-COMMERCE ORDER ANALYTICS SYSTEM
    Using Asyncio.Task for Parallel Execution
=================================================================

Running three analytics tasks in PARALLEL:
  📊 Task 1: Daily Sales Revenue Calculation
  👥 Task 2: Customer Traffic Analysis
  📦 Task 3: Inventory Turnover Analysis

-----------------------------------------------------------------

📊 [SALES] Processing order #1 - Value: $25
👥 [TRAFFIC] Hour 1: 15 visitors on site
📦 [INVENTORY] Analyzing product batch #1 - Turnover factor: 15
📊 [SALES] Processing order #2 - Value: $50
👥 [TRAFFIC] Hour 2: 25 visitors on site
📦 [INVENTORY] Analyzing product batch #2 - Turnover factor: 105
📊 [SALES] Processing order #3 - Value: $75
👥 [TRAFFIC] Hour 3: 40 visitors on site
📦 [INVENTORY] Analyzing product batch #3 - Turnover factor: 455
📊 [SALES] Processing order #4 - Value: $100
👥 [TRAFFIC] Hour 4: 65 visitors on site
📦 [INVENTORY] Analyzing product batch #4 - Turnover factor: 1365
📊 [SALES] Processing order #5 - Value: $125
👥 [TRAFFIC] Hour 5: 105 visitors on site
📦 [INVENTORY] Analyzing product batch #5 - Turnover factor: 3003
📊 [SALES] Processing order #6 - Value: $150
👥 [TRAFFIC] Hour 6: 170 visitors on site
📦 [INVENTORY] Analyzing product batch #6 - Turnover factor: 5005
📊 [SALES] Processing order #7 - Value: $175
👥 [TRAFFIC] Hour 7: 275 visitors on site
📦 [INVENTORY] Analyzing product batch #7 - Turnover factor: 6435
📊 [SALES] Processing order #8 - Value: $200
👥 [TRAFFIC] Hour 8: 445 visitors on site
📦 [INVENTORY] Analyzing product batch #8 - Turnover factor: 6435

✅ [SALES COMPLETE] Total Daily Revenue = $900
   Average Order Value = $112.50

✅ [TRAFFIC COMPLETE] Total Visitors Today = 1140
   Peak Hour Visitors = 445

✅ [INVENTORY COMPLETE] Turnover Combinations = 6435
   Stock Efficiency = 53.3%

-----------------------------------------------------------------

=================================================================
    ALL ANALYTICS TASKS COMPLETED!
    Dashboard ready for business review
=================================================================
";

#[test]
fn task3_matches_the_material_with_corrected_totals() {
    assert_eq!(fast(&task3::SPEC, task3::run, &[]), TASK3);
}

/// Task 2's header, as the material shows it.
const TASK2_HEAD: &str = "\
============================================================
    SMART HOME AUTOMATION SYSTEM
    Using Asyncio Event Loop Scheduling
============================================================

This system rotates between three smart home tasks:
  1. 🔒 Security System Check
  2. 🌡️  Temperature Control
  3. 💡 Lighting Control

Running automation cycle for 30 seconds...
============================================================

🔒 [SECURITY] Checking all door and window sensors...
";

const TASK2_TAIL: &str = "
============================================================
    SMART HOME AUTOMATION STOPPED
    All systems in standby mode
============================================================
";

/// A model of task 2's schedule, rebuilt from the printed durations: step starts at t,
/// ends at t + d (printed "took ds"), next starts 1 s later; shutdown at 30 s wins ties.
/// The test checks the program printed exactly the steps the model says fit, in rotation,
/// and reports a cancelled same-instant step exactly when the model has one at 30 s.
#[test]
fn task2_schedule_follows_call_later_and_shutdown_wins_ties() {
    let mut ties = 0;
    for seed in 1..=40u64 {
        let s = seed.to_string();
        let out = fast(&task2::SPEC, task2::run, &["--seed", &s]);
        assert!(out.starts_with(TASK2_HEAD), "seed {seed}");
        assert!(out.ends_with(TASK2_TAIL), "seed {seed}");
        let shutdown = out.find("🏁 Automation cycle complete. Shutting down...\n").expect("shutdown line");
        let (body, after) = out.split_at(shutdown);
        // Nothing but the optional note and the banner after the shutdown message.
        let after_lines: Vec<&str> = after.lines().skip(1).filter(|l| !l.is_empty()).collect();
        let noted = after_lines.len() == 5;
        assert!(after_lines.len() == 4 || noted, "seed {seed}: {after:?}");
        // Replay the model from the printed starts and durations. `pending` is the one
        // scheduled callback: the next start at a known time, or the end of the step in
        // progress (started at a known time, duration not printed yet).
        #[derive(Clone, Copy, PartialEq, Debug)]
        enum Pending {
            Start(u64),
            End { started: u64 },
        }
        let starts = ["🔒 [SECURITY]", "🌡️  [THERMOSTAT]", "💡 [LIGHTS]"];
        let (mut t, mut i, mut pending) = (0u64, 0usize, Pending::Start(0));
        for line in body.lines() {
            if let Some(k) = starts.iter().position(|p| line.starts_with(p)) {
                assert_eq!(k, i % 3, "seed {seed}: rotation");
                assert_eq!(pending, Pending::Start(t), "seed {seed}");
                assert!(t < 30, "seed {seed}: a step started at {t}s");
                pending = Pending::End { started: t };
            }
            let took = line
                .split(" in ")
                .nth(1)
                .and_then(|r| r.strip_suffix("s - All sensors OK!"))
                .or_else(|| line.split("took ").nth(1).and_then(|r| r.strip_suffix("s)")));
            if let Some(d) = took {
                let d: u64 = d.parse().unwrap();
                assert!((1..=2).contains(&d), "seed {seed}: duration {d}");
                assert!(matches!(pending, Pending::End { .. }), "seed {seed}");
                t += d;
                assert!(t < 30, "seed {seed}: a step ended at {t}s, at or after shutdown");
                t += 1; // the next device starts a second later
                pending = Pending::Start(t);
                i += 1;
            }
        }
        match pending {
            // A start before 30 s would have been printed; one at exactly 30 s is cancelled.
            Pending::Start(at) => {
                assert!(at >= 30, "seed {seed}");
                assert_eq!(noted, at == 30, "seed {seed}: start pending at {at}s");
            }
            // An end due at 30 s needs a start at 28 (2 s) or 29 (1 s).
            Pending::End { started } => {
                assert!(!noted || (28..=29).contains(&started), "seed {seed}");
            }
        }
        if noted {
            ties += 1;
            assert!(after.contains("was due at this same instant, 30.000s"));
        }
    }
    assert!(ties > 0, "some seed should produce a step due at exactly 30 s");
}

#[test]
fn task2_same_seed_same_run_other_seed_other_run() {
    let a = fast(&task2::SPEC, task2::run, &["--seed", "7"]);
    let b = fast(&task2::SPEC, task2::run, &["--seed", "7"]);
    let c = fast(&task2::SPEC, task2::run, &["--seed", "8"]);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn chapter5_runs_the_scenarios_in_order() {
    // Task 4 starts worker processes by re-running the current program, which here is this
    // test binary: it runs as a real process in `chapter5_with_task4_as_a_process` instead.
    let out = fast(&chapter5::SPEC, chapter5::run, &["--tasks", "1,2,3"]);
    let t2 = fast(&task2::SPEC, task2::run, &[]);
    let expected = format!(
        ">>> task1_order_processing\n\n{TASK1_5_4}\n\n>>> task2_smart_home\n\n{t2}\n\n>>> task3_ecommerce_analytics\n\n{TASK3}"
    );
    assert_eq!(out, expected);
}

#[test]
fn bad_arguments_give_usage_and_status_2() {
    let usage1 = "usage: task1_order_processing [--fast] [--trace] [--timeline] [--table] [--trace-json FILE] [--lints] [--ledger] ITEMS PREVIOUS_ORDERS\n";
    for argv in [&[][..], &["5"], &["5", "x"], &["five", "4"], &["5", "4", "3"], &["--bogus", "5", "4"]] {
        let (code, out, err) = run(&task1::SPEC, task1::run, argv);
        assert_eq!(code, 2, "{argv:?}");
        assert_eq!(out, "", "{argv:?}: nothing on stdout");
        assert!(err.starts_with(usage1), "{argv:?}: {err}");
    }
    let (code, _, err) = run(&task2::SPEC, task2::run, &["--seed", "many"]);
    assert_eq!(code, 2);
    assert!(err.contains("--seed must be a whole number"), "{err}");
    let (code, _, err) = run(&walkthrough::SPEC, walkthrough::run, &["--jobs", "2", "--durations", "1,2,3"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("usage: memory_walkthrough"), "{err}");
    let (code, _, _) = run(&walkthrough::SPEC, walkthrough::run, &["--durations", "1,x"]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&task3::SPEC, task3::run, &["extra"]);
    assert_eq!(code, 2);
}

/// The same, as a real process: the example binary exits with status 2. Uses the binary
/// The path of example `name` as `cargo test` builds it (target/debug/examples), brought
/// up to date first (a no-op after `cargo test`, which builds the examples; needed when one
/// test target is run alone).
fn example_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug_dir = exe.parent().unwrap().parent().unwrap(); // target/debug/deps -> target/debug
    let bin = debug_dir.join("examples").join(name);
    {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", name])
            .env("CARGO_TARGET_DIR", debug_dir.parent().unwrap())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    bin
}

/// The whole chapter as a learner runs it: task 4 included, its pools real (worker processes
/// are this `chapter5` binary re-run). Its timings vary, so the test checks structure: every
/// image processed by each method, the same checksums, the summary.
#[test]
fn chapter5_with_task4_as_a_process() {
    let bin = example_bin("chapter5");
    let out = std::process::Command::new(&bin).args(["--fast", "--tasks", "4"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with(">>> task4_image_processing\n"), "{text}");
    for method in ["METHOD 1: SEQUENTIAL", "METHOD 2: THREAD POOL EXECUTION (5 workers)", "METHOD 3: PROCESS POOL"] {
        assert!(text.contains(method), "{method} missing: {text}");
    }
    assert_eq!(text.matches("📷 Processed: photo_").count(), 30, "10 images x 3 methods");
    assert_eq!(text.matches("📷 Processed: photo_004.jpg (8MB) - 160,000 pixels").count(), 3);
    assert!(text.contains("✔ all 10 checksums agree across the three methods"), "{text}");
    assert!(text.contains("effective parallelism here:"), "{text}");
    assert!(text.contains("the filter, on one photo:"), "{text}");
    let bad = std::process::Command::new(&bin).args(["--tasks", "9"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn bad_arguments_exit_status_2_as_a_process() {
    let bin = example_bin("task1_order_processing");
    let out = std::process::Command::new(&bin).arg("5").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("usage: task1_order_processing"), "{err}");
    assert!(err.contains("missing PREVIOUS_ORDERS"), "{err}");
    let ok = std::process::Command::new(&bin).args(["--fast", "5", "4"]).output().unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), TASK1_5_4);
}

/// Future and header sizes depend on the compiler; replace the numbers with `N`.
fn normalise_sizes(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        let mut l = line.to_string();
        for key in ["future=", "header="] {
            if let Some(i) = l.find(key) {
                let start = i + key.len();
                let rest = &l[start..];
                let digits_end =
                    rest.char_indices().find(|(_, c)| !c.is_ascii_digit() && *c != ' ').map_or(rest.len(), |(j, _)| j);
                l = format!("{}N {}", &l[..start], rest[digits_end..].trim_start());
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// The material's steps and output lines appear in order, with the loop's real state.
#[test]
fn walkthrough_prints_the_nine_steps_with_real_state() {
    let out = normalise_sizes(&fast(&walkthrough::SPEC, walkthrough::run, &[]));
    let headings: Vec<&str> =
        out.lines().filter(|l| l.len() > 2 && l.as_bytes()[0].is_ascii_digit() && &l[1..3] == ". ").collect();
    assert_eq!(
        headings,
        [
            "1. Program start",
            "2. Main thread starts",
            "3. Event loop creation",
            "4. Task registration (main is running as T1)",
            "5. Event loop scheduling (time 0s)",
            "6. Waiting / timer phase",
            "7. Timer expiry and resume",
            "8. await completion",
            "9. Event loop closes",
        ]
    );
    for expected in [
        // step 4: spawned, queued, not yet polled (K3)
        "    ready    ReadyQueue       len=3 cap=64  [Task(T2), Task(T3), Task(T4)]",
        "      T2  slot 1  READY     future=N B  polls=0  \"Job-A\"",
        // step 5: the material's output, then who is still queued
        "   Job-A started (will take 2s)",
        "      T2 RUNNING in slot 1, poll #1; still in the ready queue: [Task(T3), Task(T4), Cb #1 (closure)]",
        "   Job-C started (will take 3s)",
        // step 6: the wheel (1 ms ticks, level 1 = 64-tick slots)
        "   Every job is WAITING on a timer; the loop may sleep until 1.000s:",
        "      #3   wakes T3  at L1 slot 15",
        "        wheel at tick 0:  L1 [slot 15: 1 @1.000s, slot 31: 1 @2.000s, slot 46: 1 @3.000s]",
        // step 7
        "   Time 1.000s: T3 Job-B's timer came due -> READY -> RUNNING:",
        "    stack    run_forever > run_once [phase 4] > run_task(T3) > poll \"Job-B\"",
        "   Job-B finished -> T3 DONE",
        "   Time 3.000s: T4 Job-C's timer came due -> READY -> RUNNING:",
        // step 9
        "   results: [\"Job-A-result\", \"Job-B-result\", \"Job-C-result\"]",
        "    tasks    TaskTable        live=0 cap=0  header=N B each",
    ] {
        assert!(out.lines().any(|l| l == expected), "missing line {expected:?} in\n{out}");
    }
    // The material's order of events: B finishes before A before C.
    let pos = |s: &str| out.find(s).unwrap();
    assert!(pos("Job-B finished") < pos("Job-A finished"));
    assert!(pos("Job-A finished") < pos("Job-C finished"));
}

/// The numbers follow from the runtime: a job's timer sits at the wheel level and slot its
/// deadline in ms ticks gives (level 1 for 64..4095 ticks, slot tick/64 % 64; level 2 for
/// 4096..262143, slot tick/4096 % 64), so changing a duration moves it.
#[test]
fn walkthrough_wheel_slots_follow_the_durations() {
    for (durations, c_place) in [
        ("2,1,3", "L1 slot 46"),    // 3000 ticks / 64 = 46
        ("2,1,0.5", "L1 slot 7"),   // 500 / 64 = 7
        ("2,1,70", "L2 slot 17"),   // 70000 / 4096 = 17
        ("2,1,0.05", "L0 slot 50"), // 50 ticks: level 0, slot 50
    ] {
        let out = fast(&walkthrough::SPEC, walkthrough::run, &["--durations", durations]);
        let line = format!("      #4   wakes T4  at {c_place}");
        assert!(out.lines().any(|l| l == line), "{durations}: missing {line:?} in\n{out}");
    }
    let out = fast(&walkthrough::SPEC, walkthrough::run, &["--jobs", "5"]);
    assert!(out.contains("jobs: Job-A 2s, Job-B 1s, Job-C 3s, Job-D 2s, Job-E 1s\n"));
    assert!(
        out.contains("    ready    ReadyQueue       len=5 cap=64  [Task(T2), Task(T3), Task(T4), Task(T5), Task(T6)]")
    );
    // Two jobs of 1 s: both due at the same instant, resumed in spawn order (E3).
    assert!(out.find("Time 1.000s: T3 Job-B").unwrap() < out.find("Time 1.000s: T6 Job-E").unwrap());
}

/// The inspector, fed by the event stream only: table, timeline and trace JSON agree with
/// what task 3 did (3 workers x 8 steps, each woken by a timer after the spawn).
#[test]
fn inspector_views_of_task3() {
    let dir = std::env::temp_dir().join(format!("looplab-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("task3.json");
    let out = fast(&task3::SPEC, task3::run, &["--timeline", "--table", "--trace-json", json_path.to_str().unwrap()]);
    let after = &out[TASK3.len()..];
    for expected in [
        "timeline: 0.000s .. 4.000s, 1 column = 0.100s",
        "T2 sales      #----#----#----#----#----#----#----#----#",
        "callbacks          *    *    *    *    *    *    *    *",
    ] {
        assert!(after.lines().any(|l| l == expected), "missing {expected:?} in\n{after}");
    }
    let row = after.lines().find(|l| l.starts_with("T3   traffic")).expect("table row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    // ID NAME STATE TOTAL BUSY SCHED IDLE POLLS WAKES WOKEN-BY...
    assert_eq!(&cols[..9], ["T3", "traffic", "DONE", "4.000s", "0.000s", "0.000s", "4.000s", "9", "9"]);
    assert!(row.contains("spawn 1, timer 8"), "{row}");
    assert!(row.contains("task3_ecommerce_analytics.rs:"), "spawn location: {row}");
    let json = std::fs::read_to_string(&json_path).unwrap();
    assert!(json.starts_with("{\"traceEvents\":["));
    let count = |pat: &str| json.matches(pat).count();
    // Polls: main 4 (first, then after each awaited task... counted by the table) + 3 x 9.
    let polls: usize = out
        .lines()
        .filter(|l| l.starts_with('T') && l.contains(" DONE "))
        .map(|l| l.split_whitespace().nth(7).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(count("\"cat\":\"poll\""), polls);
    assert_eq!(count("\"ph\":\"s\""), count("\"ph\":\"f\""));
    assert!(count("\"ph\":\"s\"") >= 24, "each timer wake is a flow arrow");
    assert!(count("\"ph\":\"C\"") > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ----- the other teaching programs ------------------------------------------------------

macro_rules! golden {
    ($test:ident, $file:literal, $argv:expr, $expected:expr) => {
        #[test]
        fn $test() {
            #[allow(dead_code)]
            #[path = $file]
            mod example;
            assert_eq!(fast(&example::SPEC, example::run, $argv), $expected);
        }
    };
}

golden!(
    jobs_create_task,
    "../examples/jobs_create_task.rs",
    &[],
    "Job-A started (will take 2s)\nJob-B started (will take 1s)\nJob-C started (will take 3s)\n\
     Job-B finished\nJob-A finished\nJob-C finished\n\
     results: [\"Job-A-result\", \"Job-B-result\", \"Job-C-result\"]\ntotal loop time: 3.0s\n"
);

golden!(
    numbers_two_tasks,
    "../examples/numbers_two_tasks.rs",
    &[],
    "Thread-1 → 1\nThread-2 → 1\nThread-1 → 2\nThread-2 → 2\nThread-1 → 3\nThread-2 → 3\n\
     Thread-1 → 4\nThread-2 → 4\nThread-1 → 5\nThread-2 → 5\ntotal loop time: 5.0s\n"
);

golden!(
    api_endpoints,
    "../examples/api_endpoints.rs",
    &[],
    "User started\nOrders started\nPayments started\nOrders finished\nUser finished\n\
     Payments finished\nResults: ['User-result', 'Orders-result', 'Payments-result']\n\
     total loop time: 3.0s\n"
);

golden!(
    downloads,
    "../examples/downloads.rs",
    &[],
    "Start downloading file1.pdf\nStart downloading file2.jpg\nStart downloading file3.mp4\n\
     file1.pdf downloaded\nfile2.jpg downloaded\nfile3.mp4 downloaded\ntotal loop time: 2.0s\n"
);

golden!(
    drone_sensors,
    "../examples/drone_sensors.rs",
    &[],
    "GPS done\nBattery check done\nObject tracking done\ntotal loop time: 3.0s\n"
);

golden!(
    sequential_vs_concurrent,
    "../examples/sequential_vs_concurrent.rs",
    &[],
    "Sequential:\n  operation 1 started\n  operation 1 done\n  operation 2 started\n  operation 2 done\n\
     \x20 operation 3 started\n  operation 3 done\n  results [10, 20, 30] in 6.0 s\nConcurrent:\n\
     \x20 operation 1 started\n  operation 2 started\n  operation 3 started\n  operation 1 done\n\
     \x20 operation 2 done\n  operation 3 done\n  results [10, 20, 30] in 2.0 s\nSpeed-up: 3.0x\n"
);

golden!(
    task_cancellation,
    "../examples/task_cancellation.rs",
    &[],
    "working... 1\nworking... 2\nworking... 3\nmain: cancelling the worker at 2.5s\n\
     main: cancel() returned true; state now READY\n\
     worker: resources released at 2.5s (cleanup ran)\nmain: worker is cancelled (cancelled)\n\
     total loop time: 2.5s\n"
);

/// Chat: every user speaks once, in the order of the delays the seed chose (printed).
#[test]
fn chat_messages_arrive_in_delay_order() {
    #[allow(dead_code)]
    #[path = "../examples/chat_messages.rs"]
    mod chat;
    for seed in ["1", "2", "3", "42"] {
        let out = fast(&chat::SPEC, chat::run, &["--seed", seed]);
        let delays: Vec<f64> = out
            .lines()
            .map(|l| {
                let d = l.split("(after ").nth(1).unwrap().trim_end_matches("s)");
                d.parse().unwrap()
            })
            .collect();
        assert_eq!(delays.len(), 5, "{out}");
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "seed {seed}: {out}");
        assert!(delays.iter().all(|d| (0.5..=2.0).contains(d)));
        for user in ["Alice: Hello!", "Bob:", "Charlie:", "Diana:", "Evan:"] {
            assert!(out.contains(user), "{user} in {out}");
        }
        assert_eq!(out, fast(&chat::SPEC, chat::run, &["--seed", seed]));
    }
}

// ----- the asyncio guide's and the concurrency guide's programs ----------------------------

golden!(
    wait_for_timeout,
    "../examples/wait_for_timeout.rs",
    &[],
    r#"wait_for(slow_operation(), timeout=2.0) at 0.0s
  slow_operation: started, needs 5s
  slow_operation: cleanup at 2.0s
Operation timed out! (timed out) at 2.0s
wait_for(slow_operation(), timeout=6.0) at 2.0s
  slow_operation: started, needs 5s
  slow_operation: cleanup at 7.0s
Done at 7.0s
total loop time: 7.0s
"#
);

golden!(
    wait_first_completed,
    "../examples/wait_first_completed.rs",
    &[],
    r#"wait returned at 1.0s: 1 done, 2 pending
First completed: Task 1 -> "Task 1 done"
cancel(Task 2) -> true, state now READY
cancel(Task 3) -> true, state now READY
Task 2: cancelled at 1.0s
Task 3: cancelled at 1.0s
total loop time: 1.0s
"#
);

golden!(
    as_completed_demo,
    "../examples/as_completed_demo.rs",
    &[],
    r#"fetching url1.com (takes 3s)
fetching url2.com (takes 1s)
fetching url3.com (takes 2s)
1.0s  Content from url2.com
2.0s  Content from url3.com
3.0s  Content from url1.com
total loop time: 3.0s
"#
);

golden!(
    gather_errors,
    "../examples/gather_errors.rs",
    &[],
    r#"gather (fail fast):
  0.5s Error: Task-3 panicked: ValueError: Task failed!
gather_all (return_exceptions=True):
  1.5s Result: Success 1
  1.5s Exception: Task-6 panicked: ValueError: Task failed!
  1.5s Result: Success 2
total loop time: 1.5s
"#
);

#[allow(dead_code)]
#[path = "../examples/task_group_demo.rs"]
mod task_group_demo;

#[test]
fn task_group_demo() {
    assert_eq!(
        fast(&task_group_demo::SPEC, task_group_demo::run, &[]),
        r#"with_gather:    [2, 4, 6] after 1.0s
with_taskgroup: [2, 4, 6] after 1.0s
a task group with a failing child, at 2.0s:
    task(1) cancelled at 2.5s, cleanup ran
    task(3) cancelled at 2.5s, cleanup ran
  after 0.5s: unhandled errors in a TaskGroup (1 sub-exception)
    - Task-9 panicked: ValueError: n must be positive
total loop time: 2.5s
"#
    );
}

#[allow(dead_code)]
#[path = "../examples/producer_consumer.rs"]
mod producer_consumer;

#[test]
fn producer_consumer() {
    assert_eq!(
        fast(&producer_consumer::SPEC, producer_consumer::run, &["--seed", "7"]),
        r#" 0.000s Produced: P0-Item0
 0.000s Produced: P1-Item0
 0.000s Consumer 0 consumed: P0-Item0
 0.000s Consumer 1 consumed: P1-Item0
 0.205s Produced: P1-Item1
 0.205s Consumer 2 consumed: P1-Item1
 0.338s Produced: P0-Item1
 0.447s Produced: P0-Item2
 0.655s Produced: P1-Item2
 0.684s Consumer 1 consumed: P0-Item1
 0.778s Consumer 2 consumed: P0-Item2
 0.888s Produced: P0-Item3
 0.893s Consumer 0 consumed: P1-Item2
 0.979s Produced: P1-Item3
 1.117s Produced: P0-Item4
 1.415s Produced: P1-Item4
 1.495s Consumer 2 consumed: P0-Item3
 1.666s Consumer 1 consumed: P1-Item3
 1.798s Consumer 0 consumed: P0-Item4
 1.856s producers done, 1 items still queued; join()
 2.464s Consumer 2 consumed: P1-Item4
 3.078s join() returned: every item was marked done
Consumer 0 stopping after 3 items
Consumer 1 stopping after 3 items
Consumer 2 stopping after 4 items
total loop time: 3.078s
"#
    );
}

#[allow(dead_code)]
#[path = "../examples/rate_limiter.rs"]
mod rate_limiter;

#[test]
fn rate_limiter() {
    assert_eq!(
        fast(&rate_limiter::SPEC, rate_limiter::run, &[]),
        r#"API call 0 at 0.00s (2 permits left)
API call 1 at 0.00s (1 permits left)
API call 2 at 0.00s (0 permits left)
API call 3 at 2.00s (0 permits left)
API call 4 at 2.00s (0 permits left)
API call 5 at 2.00s (0 permits left)
API call 6 at 4.00s (0 permits left)
API call 7 at 4.00s (0 permits left)
API call 8 at 4.00s (0 permits left)
API call 9 at 6.00s (2 permits left)
total loop time: 6.1s
"#
    );
}

golden!(
    async_context_manager,
    "../examples/async_context_manager.rs",
    &[],
    r#"0.0s block: Acquiring resource
1.0s block: Using resource
1.0s block: Releasing resource
2.0s block: released
2.0s Resource released
2.0s task: Acquiring resource
3.0s task: Using resource
3.5s main: cancelling the task
3.5s task: Releasing resource
3.5s main: task ended (cancelled); its release runs on its own
4.5s task: released
total loop time: 5.0s
"#
);

golden!(
    async_iterator,
    "../examples/async_iterator.rs",
    &[],
    r#"0.5s  range 1
0.7s  countdown 3
1.0s  range 2
1.4s  countdown 2
1.5s  range 3
2.0s  range 4
2.0s  range exhausted: next() -> None
2.1s  countdown 1
2.1s  countdown: liftoff
2.4s  collected [1, 2, 3]
total loop time: 2.4s
"#
);

golden!(
    thread_primitives,
    "../examples/thread_primitives.rs",
    &[],
    r#"Lock: counter without the lock = 1
Lock: counter with the lock    = 5
Semaphore: 0.0s user 0 using the resource
Semaphore: 0.0s user 1 using the resource
Semaphore: 0.0s user 2 using the resource
Semaphore: 1.0s user 3 using the resource
Semaphore: 1.0s user 4 using the resource
Semaphore: 1.0s user 5 using the resource
BoundedSemaphore: release() -> Ok(())
BoundedSemaphore: release() -> Err("ValueError: BoundedSemaphore released too many times")
Event: 2.0s waiter waiting
Event: 4.0s signaler: set()
Event: 4.0s Event triggered!
Condition: 4.5s producer: 2 items, notify_all() (2 waiting)
Condition: 4.5s consumer 0 got item-1
Condition: 4.5s consumer 1 got item-2
total loop time: 4.5s
"#
);

/// `executors` starts worker processes (this example's binary, re-run), so it runs as a
/// process: the pool must never re-execute the test binary.
#[test]
fn executors_as_a_process() {
    assert_eq!(
        fast_process("executors"),
        r#"to_thread:        Blocking done at loop time 0.0s
run_in_executor:  ["job A done", "job B done"] at loop time 0.0s
run_in_process:   Result: 333332833333500000 (in another process: true)
                  check: (n-1)·n·(2n-1)/6 = 333332833333500000
"#
    );
}

/// `process_pool_map` starts worker processes (this example's binary, re-run), so it runs as a
/// process: the pool must never re-execute the test binary.
#[test]
fn process_pool_map_as_a_process() {
    assert_eq!(
        fast_process("process_pool_map"),
        r#"map:           [499999500000, 1999999000000, 4499998500000, 7999998000000]
apply_async:   499999500000
many get():    [499999500000, 1999999000000, 4499998500000]
cpu_task(0):   the job panicked: cpu_task needs n > 0
after a panic: 45
on the loop:   [499999500000, 1999999000000, 4499998500000, 7999998000000] (gather of run_in_process)
"#
    );
}

/// `job_queue` starts worker processes (this example's binary, re-run), so it runs as a
/// process: the pool must never re-execute the test binary.
#[test]
fn job_queue_as_a_process() {
    assert_eq!(
        fast_process("job_queue"),
        r#"  0.0s  job-0  report(7)                      PENDING
  0.0s  job-1  send_email("ann@example.com")  PENDING
  0.0s  job-2  flaky(12)                      PENDING
  0.0s  job-3  report(8)                      PENDING
  0.0s  job-4  unreliable(5)                  PENDING
  0.0s  job-5  cleanup(0)                     PENDING
  0.0s  job-0  report(7)                      STARTED (attempt 1)
  0.0s  job-2  flaky(12)                      STARTED (attempt 1)
  1.0s  job-2  flaky(12)                      RETRY in 1s  (ConnectionError: try 0 refused)
  1.0s  job-3  report(8)                      REVOKED (expired before a worker was free)
  1.0s  job-5  cleanup(0)                     STARTED (attempt 1)
  1.5s  job-5  cleanup(0)                     SUCCESS  cleanup round 0: 3 sessions removed
  1.5s  job-1  send_email("ann@example.com")  STARTED (attempt 1)
  2.0s  job-0  report(7)                      SUCCESS  Report for user 7: checksum 4799853
  2.0s  job-4  unreliable(5)                  STARTED (attempt 1)
  2.5s  job-1  send_email("ann@example.com")  SUCCESS  Email sent to ann@example.com
  2.5s  job-2  flaky(12)                      STARTED (attempt 2)
  3.0s  job-4  unreliable(5)                  RETRY in 1s  (ValueError: bad input (attempt 0))
  3.5s  job-2  flaky(12)                      RETRY in 2s  (ConnectionError: try 1 refused)
  4.0s  job-6  cleanup(1)                     PENDING
  4.0s  job-4  unreliable(5)                  STARTED (attempt 2)
  4.0s  job-6  cleanup(1)                     STARTED (attempt 1)
  4.5s  job-6  cleanup(1)                     SUCCESS  cleanup round 1: 5 sessions removed
  5.0s  job-4  unreliable(5)                  RETRY in 2s  (ValueError: bad input (attempt 1))
  5.5s  job-2  flaky(12)                      STARTED (attempt 3)
  6.5s  job-2  flaky(12)                      SUCCESS  12² = 144
  7.0s  job-4  unreliable(5)                  STARTED (attempt 3)
  8.0s  job-7  cleanup(2)                     PENDING
  8.0s  job-4  unreliable(5)                  FAILURE  ValueError: bad input (attempt 2)
  8.0s  job-7  cleanup(2)                     STARTED (attempt 1)
  8.5s  job-7  cleanup(2)                     SUCCESS  cleanup round 2: 7 sessions removed

final status (AsyncResult(id).status):
  job-0  report(7)                SUCCESS
  job-1  send_email("ann@example.com") SUCCESS
  job-2  flaky(12)                SUCCESS
  job-3  report(8)                REVOKED
  job-4  unreliable(5)            FAILURE
  job-5  cleanup(0)               SUCCESS
  job-6  cleanup(1)               SUCCESS
  job-7  cleanup(2)               SUCCESS
"#
    );
}

/// Run example `name` as a process with `--fast`; insist on exit status 0; its stdout.
fn fast_process(name: &str) -> String {
    let out = std::process::Command::new(example_bin(name)).arg("--fast").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The new programs refuse what they do not take: usage line, status 2, nothing run.
#[test]
fn new_programs_reject_bad_arguments() {
    use producer_consumer as pc;
    use rate_limiter as rl;
    let (code, out, err) = run(&pc::SPEC, pc::run, &["--fast", "--seed", "seven"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.starts_with("usage: producer_consumer") && err.contains("--seed must be a whole number"), "{err}");
    let (code, out, err) = run(&rl::SPEC, rl::run, &["--fast", "10"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("unexpected argument 10"), "{err}");
    let bad = std::process::Command::new(example_bin("job_queue")).args(["--fast", "--workers", "3"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown option --workers"));
}

/// Another seed, other pauses, the same guarantees: ten items produced and consumed, and
/// `join()` returns only after the last consumption.
#[test]
fn producer_consumer_other_seeds() {
    use producer_consumer as pc;
    for seed in ["1", "2", "99"] {
        let out = fast(&pc::SPEC, pc::run, &["--seed", seed]);
        assert_eq!(out.matches(" Produced: ").count(), 10, "{out}");
        assert_eq!(out.matches(" consumed: ").count(), 10, "{out}");
        let joined = out.lines().position(|l| l.contains("join() returned")).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let last = lines.iter().rposition(|l| l.contains(" consumed: ")).unwrap();
        assert!(last < joined, "{out}");
        assert_eq!(out, fast(&pc::SPEC, pc::run, &["--seed", seed]));
    }
}

/// `--lints` and `--ledger` on an example: the ledger shows why each sleep ended; the task
/// group's failing child is *not* an error never retrieved (the group read it, K4), while a
/// detached task whose panic nobody reads is (`lints.rs` unit tests).
#[test]
fn lints_and_ledger_flags() {
    let out = fast(&task3::SPEC, task3::run, &["--lints", "--ledger"]);
    let after = &out[TASK3.len()..];
    assert!(after.contains("\nlints:\n  none\n"), "{after}");
    assert!(after.contains("iteration ledger:\n  #1    0.000s  ready=1  no sleep (work ready)"), "{after}");
    // 500 ms = tick 500: wheel level 1, slot 500 >> 6 = 7; it cascades to level 0 when due.
    assert!(after.contains("ready=0  sleep 0.500s for timer #1 due 0.500s (scheduled at L1 slot 7)"), "{after}");
    assert!(after.contains("cascade: L1 slot 7 moved 3 down\n         timers due: #1 #2 #3\n"), "{after}");
    use task_group_demo as tg;
    let out = fast(&tg::SPEC, tg::run, &["--lints"]);
    assert!(out.contains("\nlints:\n  none\n"), "{out}");
}
