//! W5, TCP echo on loopback: looplab beside tokio `current_thread` and smol's
//! `LocalExecutor`, in the same run.
//!
//! Client and server live on the same loop (one thread): `C` client tasks each connect, then
//! do `R` round trips of 64 bytes (`write_all`, then `read_exact` of the echo); the server
//! spawns one echo task per connection. We time from the first connect to the last reply
//! and report ns per round trip; `ratio` is the runtime's time over looplab's.
//!
//! Run: `cargo bench --bench net_echo` (all runtimes, 3 interleaved rounds, medians), or
//! `cargo bench --bench net_echo -- --only looplab --workload 50x2000` to run one cell, e.g.
//! under `strace -c -f` to count syscalls per round trip.
//!
//! All peers set `TCP_NODELAY` on both ends, as asyncio does.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

const MSG: usize = 64;
const RUNTIMES: [&str; 3] = ["looplab", "tokio", "smol"];
const WORKLOADS: [(usize, usize); 2] = [(50, 2000), (1000, 100)];

type BoxFut = Pin<Box<dyn Future<Output = f64>>>;

/// looplab: the loop under test.
fn looplab_echo(conns: usize, rounds: usize) -> BoxFut {
    use looplab::net::{TcpListener, TcpStream};
    Box::pin(async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = looplab::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                s.set_nodelay(true).unwrap();
                looplab::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = s.read(&mut buf).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        s.write_all(&buf[..n]).await.unwrap();
                    }
                })
                .detach();
            }
        });
        let start = Instant::now();
        let clients: Vec<_> = (0..conns)
            .map(|_| {
                looplab::spawn(async move {
                    let s = TcpStream::connect(addr).await.unwrap();
                    s.set_nodelay(true).unwrap();
                    let msg = [7u8; MSG];
                    let mut back = [0u8; MSG];
                    for _ in 0..rounds {
                        s.write_all(&msg).await.unwrap();
                        s.read_exact(&mut back).await.unwrap();
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        start.elapsed().as_nanos() as f64
    })
}

/// Give a peer's listener the accept queue looplab's `TcpListener` asks for
/// (`looplab::net::BACKLOG`): std and mio listen with 128, and at 1,000 simultaneous connects
/// an overflowing queue drops SYNs that are retried a second later, which would measure the
/// backlog, not the runtime. (Calling `listen` again on a listening socket updates its
/// backlog on Linux.)
fn same_backlog(fd: std::os::fd::RawFd) {
    // SAFETY: `fd` is a listening socket owned by the caller for the duration of the call;
    // `listen` only reads the integer arguments.
    let rc = unsafe { libc::listen(fd, looplab::net::BACKLOG) };
    assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
}

/// tokio `current_thread` with a `LocalSet`, every task `spawn_local`ed.
fn tokio_echo(conns: usize, rounds: usize) -> BoxFut {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    Box::pin(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        same_backlog(std::os::fd::AsRawFd::as_raw_fd(&listener));
        let addr = listener.local_addr().unwrap();
        tokio::task::spawn_local(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                s.set_nodelay(true).unwrap();
                tokio::task::spawn_local(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = s.read(&mut buf).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        s.write_all(&buf[..n]).await.unwrap();
                    }
                });
            }
        });
        let start = Instant::now();
        let clients: Vec<_> = (0..conns)
            .map(|_| {
                tokio::task::spawn_local(async move {
                    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                    s.set_nodelay(true).unwrap();
                    let msg = [7u8; MSG];
                    let mut back = [0u8; MSG];
                    for _ in 0..rounds {
                        s.write_all(&msg).await.unwrap();
                        s.read_exact(&mut back).await.unwrap();
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        start.elapsed().as_nanos() as f64
    })
}

/// smol: `async_executor::LocalExecutor` driven by `async_io::block_on`, sockets from async-io.
fn smol_echo(ex: Rc<async_executor::LocalExecutor<'static>>, conns: usize, rounds: usize) -> BoxFut {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    Box::pin(async move {
        let listener = async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
        same_backlog(std::os::fd::AsRawFd::as_raw_fd(listener.get_ref()));
        let addr = listener.get_ref().local_addr().unwrap();
        let ex2 = ex.clone();
        ex.spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                s.get_ref().set_nodelay(true).unwrap();
                ex2.spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = s.read(&mut buf).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        s.write_all(&buf[..n]).await.unwrap();
                    }
                })
                .detach();
            }
        })
        .detach();
        let start = Instant::now();
        let clients: Vec<_> = (0..conns)
            .map(|_| {
                ex.spawn(async move {
                    let mut s = async_io::Async::<std::net::TcpStream>::connect(addr).await.unwrap();
                    s.get_ref().set_nodelay(true).unwrap();
                    let msg = [7u8; MSG];
                    let mut back = [0u8; MSG];
                    for _ in 0..rounds {
                        s.write_all(&msg).await.unwrap();
                        s.read_exact(&mut back).await.unwrap();
                    }
                })
            })
            .collect();
        for c in clients {
            c.await;
        }
        start.elapsed().as_nanos() as f64
    })
}

/// Run one cell on a fresh runtime; returns ns per round trip.
fn run(rt: &str, conns: usize, rounds: usize) -> f64 {
    let total = match rt {
        "looplab" => looplab::run(looplab_echo(conns, rounds)).unwrap(),
        "tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move { tokio::task::spawn_local(tokio_echo(conns, rounds)).await.unwrap() })
        }
        "smol" => {
            let ex = Rc::new(async_executor::LocalExecutor::new());
            let task = ex.spawn(smol_echo(ex.clone(), conns, rounds));
            async_io::block_on(ex.run(task))
        }
        other => panic!("unknown runtime {other}"),
    };
    total / (conns * rounds) as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut only: Option<String> = None;
    let mut workload: Option<(usize, usize)> = None;
    let mut rounds = 3;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--only" if i + 1 < args.len() => {
                only = Some(args[i + 1].clone());
                i += 1;
            }
            "--workload" if i + 1 < args.len() => {
                let (c, r) = args[i + 1].split_once('x').expect("--workload CONNSxROUNDS");
                workload = Some((c.parse().unwrap(), r.parse().unwrap()));
                i += 1;
            }
            "--rounds" if i + 1 < args.len() => {
                rounds = args[i + 1].parse().expect("--rounds N");
                i += 1;
            }
            "--bench" => {} // passed by `cargo bench`
            other => {
                eprintln!(
                    "usage: net_echo [--only looplab|tokio|smol] [--workload CONNSxROUNDS] [--rounds N] ({other}?)"
                );
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let runtimes: Vec<&str> = RUNTIMES.iter().copied().filter(|r| only.as_deref().is_none_or(|o| o == *r)).collect();
    let workloads: Vec<(usize, usize)> = workload.map(|w| vec![w]).unwrap_or_else(|| WORKLOADS.to_vec());
    println!("| workload | runtime | ns/round trip (median of {rounds}) | ratio to looplab |");
    println!("|---|---|---:|---:|");
    for (conns, per) in workloads {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); runtimes.len()];
        for _ in 0..rounds {
            for (k, rt) in runtimes.iter().enumerate() {
                samples[k].push(run(rt, conns, per));
            }
        }
        let medians: Vec<f64> = samples
            .iter_mut()
            .map(|s| {
                s.sort_by(|a, b| a.partial_cmp(b).unwrap());
                s[s.len() / 2]
            })
            .collect();
        let base = runtimes.iter().position(|r| *r == "looplab").map(|k| medians[k]);
        for (k, rt) in runtimes.iter().enumerate() {
            let ratio = base.map(|b| format!("{:.2}", medians[k] / b)).unwrap_or_else(|| "-".into());
            println!("| {conns} conns x {per} x {MSG} B | {rt} | {:.0} | {ratio} |", medians[k]);
        }
    }
}
