//! Chapter 5, task 1: restaurant orders with coroutines that complete futures.
//!
//! Two coroutines run as tasks on one loop: the bill calculator (items × $10, plus 10 %
//! tax) and the loyalty system (points multiplied by each previous order number: the
//! factorial of the number of previous orders). Each completes a [`LoopFuture`]; a
//! done-callback on each future prints the summary.
//!
//! ```text
//! cargo run --example task1_order_processing -- 5 4 --fast
//! ```
//!
//! # What to look for
//! 1. Both coroutines are ready at the same time; the bill calculator was spawned first, so
//!    it runs first (the ready queue is FIFO, E1). Neither awaits inside its loop, so each
//!    runs to the end in one step: all bill lines, then all loyalty lines.
//! 2. `set_result` does not run the done-callback inline (F1): it is *scheduled*, so the
//!    "✓ COMPLETED: BILL" line comes after the loyalty lines, one iteration later.
//! 3. `main` awaits both futures; its waker was registered after the printing callbacks,
//!    so it resumes after both summaries (F2).
//! 4. `--trace` shows it: `task T2 finished`, then `callback #n ran` one iteration later.
//!
//! # The same program in asyncio
//! ```text
//! async def bill(fut, items):
//!     for i in range(1, items + 1): print(f"  [Bill Calculator] Adding item {i}: $10")
//!     fut.set_result(items * 10)
//! async def main(items, orders):
//!     loop = asyncio.get_running_loop()
//!     bill_fut, points_fut = loop.create_future(), loop.create_future()
//!     bill_fut.add_done_callback(print_bill); points_fut.add_done_callback(print_points)
//!     asyncio.create_task(bill(bill_fut, items)); asyncio.create_task(loyalty(points_fut, orders))
//!     await bill_fut; await points_fut
//! ```

use looplab::LoopFuture;
use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec, UsageError};

/// The command line.
pub const SPEC: Spec = Spec {
    name: "task1_order_processing",
    usage: "ITEMS PREVIOUS_ORDERS",
    positional: &["ITEMS", "PREVIOUS_ORDERS"],
    options: &[],
};

/// Price of one item, in cents.
const ITEM_CENTS: u64 = 10_00;

const RULE: &str = "============================================================";

/// Format cents as dollars with two decimals: `$55.00`.
fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

/// The bill calculator coroutine: adds up the items and completes `fut` with
/// `(subtotal, tax)` in cents.
async fn bill_calculator(out: Out, fut: LoopFuture<(u64, u64)>, items: u64) {
    let mut subtotal = 0;
    for i in 1..=items {
        subtotal += ITEM_CENTS;
        writeln!(out, "  [Bill Calculator] Adding item {i}: ${}", ITEM_CENTS / 100);
    }
    let tax = subtotal / 10;
    fut.set_result((subtotal, tax)).expect("completed once");
}

/// The loyalty coroutine: multiplies the points by each previous order's number.
async fn loyalty_system(out: Out, fut: LoopFuture<u64>, orders: u64) {
    let mut points: u64 = 1;
    for order in 2..=orders {
        points = points.saturating_mul(order);
        writeln!(out, "  [Loyalty System] Processing order {order}: Points multiplied to {points}");
    }
    fut.set_result(points).expect("completed once");
}

/// The scenario, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let items = args.positional_u64(0, "ITEMS")?;
    let orders = args.positional_u64(1, "PREVIOUS_ORDERS")?;
    // One line is printed per item and per order: a billion would print for hours.
    for (name, n) in [("ITEMS", items), ("PREVIOUS_ORDERS", orders)] {
        if n > 10_000 {
            return Err(UsageError(format!("{name} must be at most 10000, not {n}")).into());
        }
    }
    let lp = Session::new(args);
    out.banner(RULE, &["RESTAURANT ORDER PROCESSING SYSTEM", "Using Asyncio Coroutines with Futures"]);
    writeln!(out);
    writeln!(out, "Processing order with {items} items...");
    writeln!(out, "Customer has {orders} previous orders.");
    writeln!(out);
    writeln!(out, "Starting concurrent processing...");
    writeln!(out);

    let handle = lp.handle();
    let o = out.clone();
    lp.run_until_complete(async move {
        let bill: LoopFuture<(u64, u64)> = LoopFuture::new(&handle);
        let points: LoopFuture<u64> = LoopFuture::new(&handle);
        let o1 = o.clone();
        bill.add_done_callback(move |f| {
            let (subtotal, tax) = f.result().expect("set by the bill calculator");
            writeln!(o1);
            writeln!(
                o1,
                "✓ COMPLETED: BILL SUMMARY: {items} items = ${} + Tax({}) = {}",
                subtotal / 100,
                dollars(tax),
                dollars(subtotal + tax)
            );
        });
        let o2 = o.clone();
        points.add_done_callback(move |f| {
            let p = f.result().expect("set by the loyalty system");
            writeln!(o2);
            writeln!(o2, "✓ COMPLETED: LOYALTY POINTS: Based on {orders} orders, you earned {p} bonus points!");
        });
        handle.spawn_named("bill calculator", bill_calculator(o.clone(), bill.clone(), items)).detach();
        handle.spawn_named("loyalty system", loyalty_system(o.clone(), points.clone(), orders)).detach();
        let _ = bill.await;
        let _ = points.await;
    })?;

    writeln!(out);
    out.banner(RULE, &["ORDER PROCESSING COMPLETE!"]);
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
