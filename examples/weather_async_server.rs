//! The weather service on looplab: the same protocol as `weather_sync_server`, but each
//! connection is a task and the 2 s "API call" is `sleep(delay).await`, so five clients
//! wait together and are all answered after one delay.
//!
//! Run: `cargo run --example weather_async_server` in one terminal, then
//! `cargo run --example weather_client` in another. Options: `--port P` (8000),
//! `--delay SECONDS` (2), `--requests N` (5: stop after N answers), `--fast` (a 0.05 s delay;
//! the clock stays real, since the client is another process, C3).
//!
//! # What to look for
//! 1. All "Accepted connection" lines appear at once: `accept` is a future, and while
//!    handlers sleep the loop goes back to phase 2 and waits on the listener (N1).
//! 2. The client's total is about one delay (2 s), not five.
//! 3. Idle, the server uses no CPU: phase 2 blocks in `epoll_wait` until the next timer.
//!
//! # asyncio version
//! ```text
//! async def handle(reader, writer):
//!     city = json.loads(await reader.read(1024))["city"]
//!     await asyncio.sleep(2)
//!     writer.write(json.dumps(weather).encode()); await writer.drain(); writer.close()
//! asyncio.run(asyncio.start_server(handle, "127.0.0.1", 8000)).serve_forever()
//! ```

use std::time::Duration;

use looplab::net::{TcpListener, TcpStream};

/// Parse `--port`, `--delay`, `--requests`, `--fast`; exit 2 with a usage line otherwise.
fn args() -> (u16, f64, usize) {
    let usage = "usage: weather_async_server [--port P] [--delay SECONDS] [--requests N] [--fast]";
    let (mut port, mut delay, mut requests) = (8000u16, 2.0f64, 5usize);
    let mut it = std::env::args().skip(1);
    let bad = |m: &str| -> ! {
        eprintln!("{m}\n{usage}");
        std::process::exit(2)
    };
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| bad(&format!("{a} needs a value")));
        match a.as_str() {
            "--port" => port = val().parse().unwrap_or_else(|_| bad("bad --port")),
            "--delay" => {
                delay = val()
                    .parse()
                    .ok()
                    .filter(|d: &f64| (0.0..=3600.0).contains(d))
                    .unwrap_or_else(|| bad("bad --delay (seconds, 0 to 3600)"))
            }
            "--requests" => requests = val().parse().unwrap_or_else(|_| bad("bad --requests")),
            "--fast" => delay = 0.05,
            _ => bad(&format!("unknown argument {a}")),
        }
    }
    (port, delay, requests)
}

/// The city named in a request like `{"city": "London"}`.
fn city_of(req: &str) -> Option<&str> {
    let rest = &req[req.find("\"city\"")? + 6..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(&rest[..rest.find('"')?])
}

/// One client: read the request, "call the API" (a sleep that lets others run), answer.
async fn handle(client: TcpStream, delay: f64) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    let n = client.read(&mut buf).await?;
    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
    let reply = match city_of(&req) {
        Some(city) => {
            looplab::sleep(Duration::from_secs_f64(delay)).await; // the loop serves others meanwhile
            format!("{{\"city\": \"{city}\", \"temperature\": 20, \"conditions\": \"sunny\"}}")
        }
        None => "{\"error\": \"bad request\"}".to_string(),
    };
    client.write_all(reply.as_bytes()).await
}

fn main() {
    let (port, delay, requests) = args();
    let served = looplab::run(async move {
        let server = TcpListener::bind(("127.0.0.1", port))?;
        println!("Weather server started on port {}", server.local_addr()?.port());
        let mut handlers = Vec::new();
        for _ in 0..requests {
            let (client, addr) = server.accept().await?;
            println!("Accepted connection from {addr}");
            handlers.push(looplab::spawn(handle(client, delay)));
        }
        let mut ok = 0;
        for h in handlers {
            match h.await {
                Ok(Ok(())) => ok += 1,
                Ok(Err(e)) => eprintln!("a client failed: {e}"), // the others are unharmed
                Err(e) => eprintln!("a handler failed: {e}"),
            }
        }
        Ok::<usize, std::io::Error>(ok)
    });
    match served {
        Ok(Ok(n)) => println!("Served {n} requests; bye."),
        Ok(Err(e)) => {
            eprintln!("weather_async_server: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("weather_async_server: loop error: {e}");
            std::process::exit(1);
        }
    }
}
