//! The teaching material's synchronous weather service: one client at a time, and a
//! blocking `thread::sleep(delay)` per request, so five clients take five delays.
//!
//! Run: `cargo run --example weather_sync_server` in one terminal, then
//! `cargo run --example weather_client` in another (`--fast` on both: a 0.05 s delay).
//! Options: `--port P` (8000), `--delay SECONDS` (2), `--requests N` (5: stop after N).
//!
//! # What to look for
//! 1. "Accepted connection" lines appear one per delay: the second client waits in the
//!    kernel's accept queue while the first one's `sleep` blocks the only thread.
//! 2. The client's total is about `requests × delay` (10 s by default).
//! 3. No looplab here: this is the baseline `weather_async_server` improves on.
//!
//! # asyncio version
//! None: this is the material's plain `socket` program:
//! ```text
//! while True:
//!     client, addr = server.accept()
//!     data = client.recv(1024); city = json.loads(data)["city"]
//!     time.sleep(2); client.send(json.dumps(weather).encode()); client.close()
//! ```

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// Parse `--port`, `--delay`, `--requests`, `--fast`; exit 2 with a usage line otherwise.
fn args() -> (u16, f64, usize) {
    let usage = "usage: weather_sync_server [--port P] [--delay SECONDS] [--requests N] [--fast]";
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

/// The material's `get_weather_data`: a blocking sleep, then the answer.
fn get_weather_data(city: &str, delay: f64) -> String {
    std::thread::sleep(Duration::from_secs_f64(delay)); // blocks the whole server
    format!("{{\"city\": \"{city}\", \"temperature\": 20, \"conditions\": \"sunny\"}}")
}

fn main() -> std::io::Result<()> {
    let (port, delay, requests) = args();
    let server = TcpListener::bind(("127.0.0.1", port))?;
    println!("Weather server started on port {}", server.local_addr()?.port());
    for _ in 0..requests {
        let (mut client, addr) = server.accept()?;
        println!("Accepted connection from {addr}");
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf)?; // the material's recv(1024)
        let req = String::from_utf8_lossy(&buf[..n]);
        let reply = match city_of(&req) {
            Some(city) => get_weather_data(city, delay),
            None => "{\"error\": \"bad request\"}".to_string(),
        };
        client.write_all(reply.as_bytes())?;
    }
    println!("Served {requests} requests; bye.");
    Ok(())
}
