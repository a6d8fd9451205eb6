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

use looplab::net::TcpStream;

/// Parse the options; exit 2 with a usage line on anything else.
fn args() -> (u16, usize, usize, usize) {
    let usage = "usage: echo_client [--port P] [--connections N] [--requests R] [--size B] [--fast]";
    let (mut port, mut conns, mut reqs, mut size) = (7000u16, 10usize, 1000usize, 64usize);
    let mut it = std::env::args().skip(1);
    let bad = |m: &str| -> ! {
        eprintln!("{m}\n{usage}");
        std::process::exit(2)
    };
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| bad(&format!("{a} needs a value")));
        match a.as_str() {
            "--port" => port = val().parse().unwrap_or_else(|_| bad("bad --port")),
            "--connections" => {
                conns = val().parse().ok().filter(|n| *n > 0).unwrap_or_else(|| bad("bad --connections (at least 1)"))
            }
            "--requests" => reqs = val().parse().unwrap_or_else(|_| bad("bad --requests")),
            "--size" => size = val().parse().ok().filter(|s| *s > 0).unwrap_or_else(|| bad("bad --size")),
            "--fast" => reqs = 100,
            _ => bad(&format!("unknown argument {a}")),
        }
    }
    (port, conns, reqs, size)
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
