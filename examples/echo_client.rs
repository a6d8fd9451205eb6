//! A TCP echo client on looplab: `--connections` tasks each do `--requests` round trips of
//! `--size` bytes (write, then read the echo back), then it prints round trips per second.
//!
//! Run (with `echo_server` running): `cargo run --example echo_client`. Options: `--port P`
//! (7000), `--connections N` (10, match the server's), `--requests R` (1000), `--size B`
//! (64), `--fast` (100 requests per connection instead of 1000).
//!
//! # What to look for
//! 1. Each task does strict ping-pong, yet N of them keep the loop busy: while one waits
//!    for its echo, the others' replies are being read.
//! 2. Compare with `cargo bench --bench net_echo`, which puts both ends on one loop.
//!
//! # asyncio version
//! ```text
//! async def client(n):
//!     reader, writer = await asyncio.open_connection("127.0.0.1", 7000)
//!     for _ in range(n):
//!         writer.write(msg); await writer.drain(); await reader.readexactly(len(msg))
//! await asyncio.gather(*(client(1000) for _ in range(10)))
//! ```

use looplab::inspect::cli::Options;
use looplab::net::TcpStream;

/// Parse the options; exit 2 with a usage line on anything else.
fn args() -> (u16, usize, usize, usize) {
    let o = Options::parse_or_exit(
        "echo_client [--port P] [--connections N] [--requests R] [--size B] [--fast]",
        &["--port", "--connections", "--requests", "--size"],
        &["--fast"],
    );
    let reqs = if o.flag("--fast") { 100 } else { 1000 };
    (
        o.get("--port", 7000, "a port number", |_| true),
        o.get("--connections", 10, "a count from 1 to 100,000", |n: &usize| (1..=100_000).contains(n)),
        o.get("--requests", reqs, "a count from 1 to 1,000,000", |n: &usize| (1..=1_000_000).contains(n)),
        o.get("--size", 64, "a size in bytes from 1 to 1 MiB", |n: &usize| (1..=1 << 20).contains(n)),
    )
}

fn main() {
    let (port, conns, reqs, size) = args();
    let res = looplab::run(async move {
        let lp = looplab::get_running_loop().expect("inside run");
        let start = lp.time();
        let tasks: Vec<_> = (0..conns)
            .map(|i| {
                looplab::spawn(async move {
                    let s = TcpStream::connect(("127.0.0.1", port)).await?;
                    s.set_nodelay(true)?;
                    let msg: Vec<u8> = (0..size).map(|k| (k + i) as u8).collect();
                    let mut back = vec![0u8; size];
                    for _ in 0..reqs {
                        s.write_all(&msg).await?;
                        s.read_exact(&mut back).await?;
                        if back != msg {
                            return Err(std::io::Error::other("echo differs from what was sent"));
                        }
                    }
                    Ok::<(), std::io::Error>(())
                })
            })
            .collect();
        let mut failed = 0;
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failed += 1;
                    eprintln!("connection failed: {e}");
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("task failed: {e}");
                }
            }
        }
        let secs = (lp.time() - start).as_secs_f64();
        let trips = ((conns - failed) * reqs) as f64;
        println!("{trips} round trips of {size} B over {conns} connection(s) in {secs:.3} s");
        if secs > 0.0 && trips > 0.0 {
            println!("{:.0} round trips/s, {:.1} µs per round trip", trips / secs, secs * 1e6 / trips);
        }
        failed
    });
    match res {
        Ok(0) => {}
        Ok(_) => std::process::exit(1),
        Err(e) => {
            eprintln!("echo_client: {e}");
            std::process::exit(1);
        }
    }
}
