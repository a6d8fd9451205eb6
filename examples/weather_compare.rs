//! Sync against async in one command: runs the synchronous weather server (a `std::net`
//! thread, one client at a time, blocking sleep) and the looplab server (a second thread
//! with its own loop, `sleep().await`) on ephemeral 127.0.0.1 ports, asks each for five
//! cities at once, and prints both totals and the speedup.
//!
//! Run: `cargo run --example weather_compare` (about 10 s + 2 s), or with `--fast` (a 0.05 s
//! delay: well under a second; the clock stays real because the servers are reached over
//! real sockets from other threads, C3). `--delay SECONDS` sets the delay (2).
//!
//! # What to look for
//! 1. Sync total ≈ 5 × delay: each request waits for the previous one's `thread::sleep`.
//! 2. Async total ≈ 1 × delay: five handlers sleep *at the same time* on one thread.
//! 3. Speedup ≈ 5 (the number of clients), whatever the delay.
//!
//! # asyncio version
//! ```text
//! threading.Thread(target=run_weather_server, daemon=True).start()   # the sync one
//! t0 = time.time(); await asyncio.gather(*(ask(c) for c in cities)); sync = time.time() - t0
//! # ... the same against asyncio.start_server(handle, ...), then print(sync / async_)
//! ```

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use looplab::net::{TcpListener, TcpStream};

/// The material's five cities.
const CITIES: [&str; 5] = ["London", "Paris", "New York", "Tokyo", "Berlin"];

/// Parse `--delay`, `--fast`; exit 2 with a usage line otherwise.
fn args() -> f64 {
    let usage = "usage: weather_compare [--delay SECONDS] [--fast]";
    let mut delay = 2.0f64;
    let mut it = std::env::args().skip(1);
    let bad = |m: &str| -> ! {
        eprintln!("{m}\n{usage}");
        std::process::exit(2)
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--delay" => {
                let v = it.next().unwrap_or_else(|| bad("--delay needs a value"));
                delay = v
                    .parse()
                    .ok()
                    .filter(|d: &f64| (0.0..=3600.0).contains(d))
                    .unwrap_or_else(|| bad("bad --delay (seconds, 0 to 3600)"));
            }
            "--fast" => delay = 0.05,
            _ => bad(&format!("unknown argument {a}")),
        }
    }
    delay
}

/// The city named in a request like `{"city": "London"}`.
fn city_of(req: &str) -> Option<&str> {
    let rest = &req[req.find("\"city\"")? + 6..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(&rest[..rest.find('"')?])
}

/// The JSON-like answer of the material.
fn weather(city: &str) -> String {
    format!("{{\"city\": \"{city}\", \"temperature\": 20, \"conditions\": \"sunny\"}}")
}

/// `weather_sync_server` in a thread: serve five requests one after the other.
fn sync_server(delay: f64) -> std::io::Result<SocketAddr> {
    let server = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = server.local_addr()?;
    std::thread::spawn(move || {
        for _ in 0..CITIES.len() {
            let Ok((mut c, _)) = server.accept() else { return };
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).unwrap_or(0);
            let city = city_of(&String::from_utf8_lossy(&buf[..n])).unwrap_or("?").to_string();
            std::thread::sleep(Duration::from_secs_f64(delay)); // blocks everyone
            let _ = c.write_all(weather(&city).as_bytes());
        }
    });
    Ok(addr)
}

/// `weather_async_server` in a thread with its own loop: five requests, concurrently.
fn async_server(delay: f64) -> std::io::Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = looplab::run(async move {
            let server = match TcpListener::bind("127.0.0.1:0") {
                Ok(s) => s,
                Err(e) => return tx.send(Err(e)).unwrap_or(()),
            };
            let _ = tx.send(server.local_addr());
            let mut handlers = Vec::new();
            for _ in 0..CITIES.len() {
                let Ok((c, _)) = server.accept().await else { break };
                handlers.push(looplab::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = c.read(&mut buf).await?;
                    let city = city_of(&String::from_utf8_lossy(&buf[..n])).unwrap_or("?").to_string();
                    looplab::sleep(Duration::from_secs_f64(delay)).await; // others run meanwhile
                    c.write_all(weather(&city).as_bytes()).await
                }));
            }
            for h in handlers {
                let _ = h.await;
            }
        });
    });
    rx.recv().map_err(|_| std::io::Error::other("async server thread died"))?
}

/// The client of `weather_client`: five cities at once; returns the total seconds.
fn ask_all(addr: SocketAddr, label: &str) -> Result<f64, String> {
    println!("--- {label} server on {addr} ---");
    let out = looplab::run(async move {
        let lp = looplab::get_running_loop().expect("inside run");
        let start = lp.time();
        let tasks: Vec<_> = CITIES
            .iter()
            .map(|&city| {
                looplab::spawn(async move {
                    let s = TcpStream::connect(addr).await?;
                    s.write_all(format!("{{\"city\": \"{city}\"}}").as_bytes()).await?;
                    let mut resp = Vec::new();
                    s.read_to_end(&mut resp).await?;
                    println!("Received weather for {city}: {}", String::from_utf8_lossy(&resp));
                    Ok::<(), std::io::Error>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        }
        let total = (lp.time() - start).as_secs_f64();
        println!("Processed {} requests in {total:.2} seconds\n", CITIES.len());
        Ok(total)
    });
    out.map_err(|e| e.to_string())?
}

fn main() {
    let delay = args();
    println!("Delay per request: {delay} s, {} clients at once\n", CITIES.len());
    let result = (|| -> Result<(f64, f64), String> {
        let sync_total = ask_all(sync_server(delay).map_err(|e| e.to_string())?, "synchronous")?;
        let async_total = ask_all(async_server(delay).map_err(|e| e.to_string())?, "looplab async")?;
        Ok((sync_total, async_total))
    })();
    match result {
        Ok((s, a)) => {
            println!("synchronous: {s:.2} s");
            println!("async:       {a:.2} s");
            if a > 0.0 {
                println!("speedup:     {:.1}x", s / a);
            }
        }
        Err(e) => {
            eprintln!("weather_compare: {e}");
            std::process::exit(1);
        }
    }
}
