//! A chat room on looplab: every line a user sends is broadcast to the other users as
//! `name: message`. The teaching material's chat, with real sockets.
//!
//! Protocol (lines): the first line a client sends is its name; every later line is a
//! message. The server sends `* name joined`, `* all N users here` once `--users` have
//! joined, each other user's `name: message`, and `* name left`.
//!
//! Run: `cargo run --example chat_server` in one terminal, then
//! `cargo run --example chat_client` in another. Options: `--port P` (8888), `--users N`
//! (5: the room closes once N users have joined and all left), `--fast` (accepted for
//! symmetry: the server has no delay of its own; use `chat_client --fast`).
//!
//! # What to look for
//! 1. One task per user; a broadcast is a `write_all` to each other user's stream (shared
//!    with `Rc`, each written by whoever broadcasts: fine on one thread, N7).
//! 2. Messages arrive in the order users send them, not the order they connected.
//! 3. A user who disconnects is removed; the others are told and go on.
//!
//! # asyncio version
//! ```text
//! async def user(reader, writer):
//!     name = (await reader.readline()).decode().strip(); room.append(writer)
//!     while line := await reader.readline():
//!         for w in room:
//!             if w is not writer: w.write(f"{name}: {line.decode()}".encode())
//! ```

use looplab::inspect::cli::Options;
use std::cell::RefCell;
use std::rc::Rc;

use looplab::net::{TcpListener, TcpStream};

/// The room: each user's id, name and stream.
type Room = Rc<RefCell<Vec<(usize, String, Rc<TcpStream>)>>>;

/// Parse `--port`, `--users`, `--fast`; exit 2 with a usage line otherwise.
fn args() -> (u16, usize) {
    let o = Options::parse_or_exit("chat_server [--port P] [--users N] [--fast]", &["--port", "--users"], &["--fast"]);
    (
        o.get("--port", 8888, "a port number", |_| true),
        o.get("--users", 5, "a count from 1 to 1,000,000", |n: &usize| (1..=1_000_000).contains(n)),
    )
}

/// Reads lines off a stream (asyncio: `StreamReader.readline`).
struct Lines {
    /// Bytes read but not yet returned as a line.
    buf: Vec<u8>,
}

impl Lines {
    /// The next line without its `\n`, or `None` at EOF.
    async fn next(&mut self, s: &TcpStream) -> std::io::Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..i]).into_owned()));
            }
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Send `line` to everyone in the room except `from` (a user that fails is skipped).
async fn broadcast(room: &Room, from: Option<usize>, line: &str) {
    let targets: Vec<Rc<TcpStream>> =
        room.borrow().iter().filter(|(id, _, _)| Some(*id) != from).map(|(_, _, s)| s.clone()).collect();
    for s in targets {
        let _ = s.write_all(format!("{line}\n").as_bytes()).await;
    }
}

/// One user's session: name, then messages until EOF.
async fn session(id: usize, s: Rc<TcpStream>, room: Room, expected: usize) -> std::io::Result<()> {
    let mut lines = Lines { buf: Vec::new() };
    let Some(name) = lines.next(&s).await? else { return Ok(()) };
    room.borrow_mut().push((id, name.clone(), s.clone()));
    println!("* {name} joined");
    broadcast(&room, Some(id), &format!("* {name} joined")).await;
    if room.borrow().len() == expected {
        broadcast(&room, None, &format!("* all {expected} users here")).await;
    }
    let res = async {
        while let Some(msg) = lines.next(&s).await? {
            println!("{name}: {msg}");
            broadcast(&room, Some(id), &format!("{name}: {msg}")).await;
        }
        Ok(())
    }
    .await;
    room.borrow_mut().retain(|(i, _, _)| *i != id);
    println!("* {name} left");
    broadcast(&room, None, &format!("* {name} left")).await;
    res
}

fn main() {
    let (port, users) = args();
    let res = looplab::run(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        println!("chat server on {} for {users} users", listener.local_addr()?);
        let room: Room = Rc::default();
        let mut sessions = Vec::new();
        for id in 0..users {
            let (s, _) = listener.accept().await?;
            sessions.push(looplab::spawn(session(id, Rc::new(s), room.clone(), users)));
        }
        for t in sessions {
            if let Ok(Err(e)) = t.await {
                println!("a session ended with an error: {e}");
            }
        }
        println!("room empty; bye.");
        Ok::<(), std::io::Error>(())
    });
    if let Err(e) = res.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
        eprintln!("chat_server: {e}");
        std::process::exit(1);
    }
}
