//! A TCP echo server on looplab: every byte a client sends comes back. The server side of
//! the `net_echo` benchmark, as a program you can watch.
//!
//! Run: `cargo run --example echo_server` in one terminal, then
//! `cargo run --example echo_client` in another. Options: `--port P` (7000),
//! `--connections N` (10: stop after N clients have come and gone), `--fast` (accepted for
//! symmetry with the other examples: an echo server has no delay to shorten).
//!
//! # What to look for
//! 1. One task per connection; all of them share one thread and one `epoll`.
//! 2. A read shorter than the buffer clears readiness without a second `read` (N5): with
//!    `strace -f` you see `read`, `write`, `epoll_wait`, and no `EAGAIN` per message.
//! 3. A client that vanishes mid-stream ends its own task with an error; the others go on.
//!
//! # asyncio version
//! ```text
//! async def echo(reader, writer):
//!     while data := await reader.read(4096):
//!         writer.write(data); await writer.drain()
//! server = await asyncio.start_server(echo, "127.0.0.1", 7000)
//! ```

use looplab::net::{TcpListener, TcpStream};

/// Parse `--port`, `--connections`, `--fast`; exit 2 with a usage line otherwise.
fn args() -> (u16, usize) {
    let usage = "usage: echo_server [--port P] [--connections N] [--fast]";
    let (mut port, mut conns) = (7000u16, 10usize);
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
            "--fast" => {}
            _ => bad(&format!("unknown argument {a}")),
        }
    }
    (port, conns)
}

/// Echo until the client closes; returns the bytes echoed.
async fn echo(s: TcpStream) -> std::io::Result<u64> {
    s.set_nodelay(true)?;
    let mut buf = [0u8; 4096];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        s.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

fn main() {
    let (port, conns) = args();
    let res = looplab::run(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        println!("echo server on {} for {conns} connection(s)", listener.local_addr()?);
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (s, peer) = listener.accept().await?;
            tasks.push((peer, looplab::spawn(echo(s))));
        }
        for (peer, t) in tasks {
            match t.await {
                Ok(Ok(n)) => println!("{peer}: echoed {n} bytes"),
                Ok(Err(e)) => println!("{peer}: {e}"),
                Err(e) => println!("{peer}: task failed: {e}"),
            }
        }
        Ok::<(), std::io::Error>(())
    });
    if let Err(e) = res.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}
