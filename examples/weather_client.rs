//! The weather client: asks for London, Paris, New York, Tokyo and Berlin at once (five
//! tasks on one looplab loop), prints each answer as it arrives and the total time.
//!
//! Run (with `weather_sync_server` or `weather_async_server` running):
//! `cargo run --example weather_client`. Options: `--port P` (8000), `--delay SECONDS` (2:
//! the server's delay you expect; the client gives up after `6 × delay + 5` s, so it always
//! stops), `--fast` (expect a 0.05 s delay; the clock stays real, the server is another
//! process, C3).
//!
//! # What to look for
//! 1. Against the sync server: answers trickle in one per delay; total ≈ 5 × delay.
//! 2. Against the async server: all answers come together; total ≈ 1 × delay.
//! 3. The client is the same in both cases: the difference is all in the server.
//!
//! # asyncio version
//! ```text
//! async def ask(city):
//!     reader, writer = await asyncio.open_connection("127.0.0.1", 8000)
//!     writer.write(json.dumps({"city": city}).encode()); await writer.drain()
//!     print(f"Received weather for {city}: {(await reader.read()).decode()}")
//! await asyncio.gather(*(ask(c) for c in cities))
//! ```

use std::time::Duration;

use looplab::net::TcpStream;

/// The material's five cities.
const CITIES: [&str; 5] = ["London", "Paris", "New York", "Tokyo", "Berlin"];

/// Parse `--port`, `--delay`, `--fast`; exit 2 with a usage line otherwise.
fn args() -> (u16, f64) {
    let usage = "usage: weather_client [--port P] [--delay SECONDS] [--fast]";
    let (mut port, mut delay) = (8000u16, 2.0f64);
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
            "--fast" => delay = 0.05,
            _ => bad(&format!("unknown argument {a}")),
        }
    }
    (port, delay)
}

/// One request: connect, send `{"city": ...}`, read the answer until the server closes.
async fn ask(port: u16, city: &'static str) -> std::io::Result<String> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("{{\"city\": \"{city}\"}}").as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn main() {
    let (port, delay) = args();
    let give_up = Duration::from_secs_f64(6.0 * delay + 5.0);
    let result = looplab::run(async move {
        let lp = looplab::get_running_loop().expect("inside run");
        let start = lp.time();
        let tasks: Vec<_> = CITIES
            .iter()
            .map(|&city| {
                looplab::spawn(async move {
                    match ask(port, city).await {
                        Ok(resp) => println!("Received weather for {city}: {resp}"),
                        Err(e) => println!("Request for {city} failed: {e}"),
                    }
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
            true
        };
        let finished = futures_lite::future::or(all, async {
            looplab::sleep(give_up).await;
            false
        })
        .await;
        if !finished {
            println!("Gave up after {:.1} s (is a weather server running on port {port}?)", give_up.as_secs_f64());
        }
        println!("\nProcessed {} requests in {:.2} seconds", CITIES.len(), (lp.time() - start).as_secs_f64());
        finished
    });
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("weather_client: {e}");
            std::process::exit(1);
        }
    }
}
