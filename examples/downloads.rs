//! asyncio basics, task 3: download files concurrently (each "download" a 2 s sleep).
//!
//! ```text
//! cargo run --example downloads -- --fast
//! ```
//!
//! # What to look for
//! 1. All downloads start at t=0, and all finish at t=2 s: three 2 s downloads take 2 s.
//! 2. Equal deadlines fire in scheduling order (E3), so the "downloaded" lines come in the
//!    order the downloads started, every run. (asyncio does not promise this tie order.)
//!
//! # The same program in asyncio
//! ```text
//! async def download(file):
//!     print(f"Start downloading {file}"); await asyncio.sleep(2); print(f"{file} downloaded")
//! async def main():
//!     files = ["file1.pdf", "file2.jpg", "file3.mp4"]
//!     await asyncio.gather(*[asyncio.create_task(download(f)) for f in files])
//! ```

use std::time::Duration;

use looplab::inspect::cli::{self, Args, Out, RunError, Session, Spec};

/// The command line.
pub const SPEC: Spec = Spec { name: "downloads", usage: "", positional: &[], options: &[] };

async fn download(out: Out, file: &'static str) {
    writeln!(out, "Start downloading {file}");
    looplab::sleep(Duration::from_secs(2)).await;
    writeln!(out, "{file} downloaded");
}

/// The program, printing to `out`.
pub fn run(args: &Args, out: &Out) -> Result<(), RunError> {
    let lp = Session::new(args);
    let (h, o) = (lp.handle(), out.clone());
    lp.run_until_complete(async move {
        let tasks = ["file1.pdf", "file2.jpg", "file3.mp4"].map(|f| h.spawn_named(f, download(o.clone(), f)));
        for t in tasks {
            let _ = t.await;
        }
    })?;
    writeln!(out, "total loop time: {:.1}s", lp.time().as_secs_f64());
    lp.finish(out)?;
    Ok(())
}

#[allow(dead_code)] // unused when another program includes this file with #[path]
fn main() {
    cli::main(&SPEC, run)
}
