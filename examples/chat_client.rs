//! The material's chat users (Alice, Bob, Charlie, Diana, Evan) as five connections to
//! `chat_server`, in one looplab loop. Each waits for the room to fill, then after a
//! pseudo-random 0.5–2.0 s sends its line, and prints what lands on its screen.
//!
//! Run (with `chat_server` running): `cargo run --example chat_client`. Options: `--port P`
//! (8888), `--seed N` (the delays' seed, 7), `--fast` (delays ÷ 100, real clock: the server is
//! another process, C3). Stops once every user has seen the four others' messages, or after
//! 30 s.
//!
//! # What to look for
//! 1. `Alice: Hello!` is printed when Alice sends, then shows on four other screens.
//! 2. Messages appear in delay order, whatever the connection order: one thread, no locks.
//! 3. The `[Bob sees]` lines of one message come together: one broadcast, four writes.
//!
//! # asyncio version (the material's, without the network)
//! ```text
//! async def send_message(user, msg):
//!     await asyncio.sleep(random.uniform(0.5, 2.0)); print(f"{user}: {msg}")
//! await asyncio.gather(*(send_message(u, m) for u, m in messages))
//! ```

use looplab::inspect::cli::Options;
use std::time::Duration;

use looplab::net::TcpStream;

/// The material's users and their messages.
const MESSAGES: [(&str, &str); 5] = [
    ("Alice", "Hello!"),
    ("Bob", "How are you?"),
    ("Charlie", "Anyone online?"),
    ("Diana", "Let's start the meeting."),
    ("Evan", "I'm joining now!"),
];

/// Parse `--port`, `--seed`, `--fast`; exit 2 with a usage line otherwise.
fn args() -> (u16, u64, f64) {
    let o = Options::parse_or_exit("chat_client [--port P] [--seed N] [--fast]", &["--port", "--seed"], &["--fast"]);
    let scale = if o.flag("--fast") { 0.01 } else { 1.0 };
    (o.get("--port", 8888, "a port number", |_| true), o.get("--seed", 7, "a whole number", |_| true), scale)
}

/// xorshift64: the same "random" delays for the same seed, without a `rand` dependency.
fn step(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// One user: join, wait for the room, send after `delay`, read until 4 messages were seen.
async fn user(port: u16, name: &'static str, msg: &'static str, delay: Duration) -> std::io::Result<()> {
    let s = std::rc::Rc::new(TcpStream::connect(("127.0.0.1", port)).await?);
    s.write_all(format!("{name}\n").as_bytes()).await?;
    let mut buf = Vec::new();
    let mut seen = 0;
    let mut sent = false;
    let mut sender: Option<looplab::Task<std::io::Result<()>>> = None;
    while seen < MESSAGES.len() - 1 {
        let mut chunk = [0u8; 1024];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "server closed the room"));
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line[..i]).into_owned();
            if line.starts_with("* all ") && !sent {
                sent = true;
                let s2 = s.clone();
                sender = Some(looplab::spawn(async move {
                    looplab::sleep(delay).await;
                    println!("{name}: {msg}");
                    s2.write_all(format!("{msg}\n").as_bytes()).await
                }));
            } else if !line.starts_with('*') {
                seen += 1;
                println!("    [{name} sees] {line}");
            }
        }
    }
    if let Some(t) = sender {
        t.await.map_err(|e| std::io::Error::other(e.to_string()))??;
    }
    Ok(())
}

fn main() {
    let (port, mut seed, scale) = args();
    let res = looplab::run(async move {
        let tasks: Vec<_> = MESSAGES
            .iter()
            .map(|&(name, msg)| {
                let secs = 0.5 + 1.5 * (step(&mut seed) % 1000) as f64 / 1000.0; // uniform(0.5, 2.0)
                let delay = Duration::from_secs_f64(secs * scale);
                (name, looplab::spawn(user(port, name, msg, delay)))
            })
            .collect();
        let all = async {
            let mut ok = true;
            for (name, t) in tasks {
                if let Ok(Err(e)) | Err(e) = t.await.map_err(|e| std::io::Error::other(e.to_string())) {
                    println!("{name}: {e}");
                    ok = false;
                }
            }
            ok
        };
        futures_lite::future::or(all, async {
            looplab::sleep(Duration::from_secs(30)).await;
            println!("gave up after 30 s (is chat_server running on port {port}?)");
            false
        })
        .await
    });
    if !matches!(res, Ok(true)) {
        std::process::exit(1);
    }
}
