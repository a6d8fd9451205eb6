//! The reactor with real sockets on 127.0.0.1, ephemeral ports: TCP, UDP, `add_reader`.
//!
//! # Which clock, and why (C3)
//! Tests whose outcome depends on a *timer racing the network* use the **real clock**
//! (`looplab::run`): `slow_server_reply_arrives_after_its_delay`,
//! `read_timeout_then_the_same_stream_still_reads`, `connect_timeout_when_the_backlog_is_full`.
//! On the virtual clock the loop jumps to the next deadline as soon as a zero-timeout poll
//! finds nothing, so a timeout could fire while a SYN or a segment is still inside the
//! kernel (C3); their timeouts are short (≤ 300 ms) and measured with the loop's own timers
//! (`lp.time()`), never the wall clock or a sleeping thread.
//!
//! Every other test uses the **virtual clock** (`looplab::run_virtual`): it has no timer that
//! races I/O (both ends live on the same loop, and a loopback write is readable before the
//! next poll), so the clock never has a reason to move and the result is the same.
//!
//! Timeouts use a private `timeout` helper (a race against `sleep`), until the crate's
//! `wait_for` lands.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use looplab::net::{TcpListener, TcpStream, UdpSocket};
use looplab::{EventLoop, LoopHandle, sleep, spawn, yield_now};

/// Race `fut` against `sleep(d)`: `Some(output)` if it finished first, `None` on timeout.
/// The loser is dropped, which is exactly what `asyncio.wait_for` does to the awaited task.
async fn timeout<T>(d: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        sleep(d).await;
        None
    })
    .await
}

/// An echo server on 127.0.0.1:0 serving `conns` connections, each until EOF. Returns the
/// address and the task (which ends once every connection is done).
fn echo_server(conns: usize) -> (std::net::SocketAddr, looplab::Task<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let task = spawn(async move {
        let mut handlers = Vec::new();
        for _ in 0..conns {
            let (stream, _) = listener.accept().await.unwrap();
            handlers.push(spawn(async move {
                let mut buf = [0u8; 4096];
                let mut total = 0;
                loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return total;
                    }
                    stream.write_all(&buf[..n]).await.unwrap();
                    total += n;
                }
            }));
        }
        let mut total = 0;
        for h in handlers {
            total += h.await.unwrap();
        }
        total
    });
    (addr, task)
}

/// asyncio: `start_server` + several `open_connection` clients at once; each gets its own
/// echo back, none waits for another.
#[test]
fn concurrent_clients_get_their_own_echo() {
    let out = looplab::run_virtual(async {
        let (addr, server) = echo_server(20);
        let clients: Vec<_> = (0..20)
            .map(|i| {
                spawn(async move {
                    let s = TcpStream::connect(addr).await.unwrap();
                    assert_eq!(s.peer_addr().unwrap(), addr);
                    let msg = format!("hello from client {i:02}");
                    s.write_all(msg.as_bytes()).await.unwrap();
                    let mut back = vec![0u8; msg.len()];
                    s.read_exact(&mut back).await.unwrap();
                    s.shutdown(Shutdown::Write).unwrap();
                    String::from_utf8(back).unwrap()
                })
            })
            .collect();
        let mut got = Vec::new();
        for c in clients {
            got.push(c.await.unwrap());
        }
        (got, server.await.unwrap())
    })
    .unwrap();
    let (got, total) = out;
    for (i, line) in got.iter().enumerate() {
        assert_eq!(line, &format!("hello from client {i:02}"));
    }
    assert_eq!(total, 20 * "hello from client 00".len());
}

/// Partial writes: 8 MiB cannot fit the socket buffers while the reader is slow, so `write`
/// takes part of it and the writer parks (N5); partial reads: the reader takes 1000 bytes at a
/// time. Every byte arrives, in order.
#[test]
fn partial_reads_and_writes_deliver_every_byte() {
    const LEN: usize = 8 << 20;
    let (writes, sum) = looplab::run_virtual(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1000];
            let (mut sum, mut idx) = (0u64, 0u64);
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return (sum, idx);
                }
                for b in &buf[..n] {
                    assert_eq!(*b, (idx % 251) as u8, "byte {idx} out of order");
                    sum += u64::from(*b);
                    idx += 1;
                }
                yield_now().await; // a slow reader: let the writer fill the buffers
            }
        });
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let s = TcpStream::connect(addr).await.unwrap();
        let mut sent = 0;
        let mut writes = 0;
        while sent < LEN {
            sent += s.write(&data[sent..]).await.unwrap();
            writes += 1;
        }
        s.shutdown(Shutdown::Write).unwrap();
        let (sum, count) = reader.await.unwrap();
        assert_eq!(count as usize, LEN);
        (writes, sum)
    })
    .unwrap();
    assert!(writes > 1, "8 MiB went out in one write: no partial write was exercised");
    let expect: u64 = (0..LEN).map(|i| (i % 251) as u64).sum();
    assert_eq!(sum, expect);
}

/// A request split into tiny writes still arrives whole through `read_exact`.
#[test]
fn read_exact_assembles_tiny_writes() {
    let got = looplab::run_virtual(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            for chunk in b"a request in many pieces".chunks(3) {
                s.write_all(chunk).await.unwrap();
                yield_now().await;
            }
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 24];
        s.read_exact(&mut buf).await.unwrap();
        server.await.unwrap();
        buf
    })
    .unwrap();
    assert_eq!(&got, b"a request in many pieces");
}

/// A client that sends half a request and disconnects: the handler gets `UnexpectedEof`
/// saying how far it got; the loop and the other client are unharmed.
#[test]
fn client_disconnecting_mid_request_harms_nobody_else() {
    let outcomes = looplab::run_virtual(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        let log = outcomes.clone();
        let server = spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..2 {
                let (s, _) = listener.accept().await.unwrap();
                let log = log.clone();
                handlers.push(spawn(async move {
                    // Protocol: 4-byte big-endian length, then the body; reply "ok <len>".
                    let mut len = [0u8; 4];
                    let res = async {
                        s.read_exact(&mut len).await?;
                        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                        s.read_exact(&mut body).await?;
                        s.write_all(format!("ok {}", body.len()).as_bytes()).await
                    }
                    .await;
                    log.borrow_mut().push(match res {
                        Ok(()) => "served".to_string(),
                        Err(e) => format!("{:?}: {e}", e.kind()),
                    });
                }));
            }
            for h in handlers {
                h.await.unwrap();
            }
        });
        // Client A: promises 100 bytes, sends 10, hangs up.
        let a = TcpStream::connect(addr).await.unwrap();
        a.write_all(&100u32.to_be_bytes()).await.unwrap();
        a.write_all(&[7u8; 10]).await.unwrap();
        drop(a);
        // Client B: a whole request.
        let b = TcpStream::connect(addr).await.unwrap();
        b.write_all(&5u32.to_be_bytes()).await.unwrap();
        b.write_all(b"hello").await.unwrap();
        let mut reply = [0u8; 4];
        b.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"ok 5");
        server.await.unwrap();
        outcomes.take()
    })
    .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.contains(&"served".to_string()), "{outcomes:?}");
    assert!(
        outcomes.iter().any(|o| o.starts_with("UnexpectedEof") && o.contains("peer closed after 10 of 100 bytes")),
        "{outcomes:?}"
    );
}

/// A peer that resets the connection (SO_LINGER 0, then close) gives `ConnectionReset`, and
/// the server goes on accepting.
#[test]
fn reset_by_peer_is_an_error_not_a_panic() {
    let (first, second) = looplab::run_virtual(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rst = TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: a valid fd we own, a valid `linger` and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                rst.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        drop(rst); // close with linger 0: the kernel sends RST
        let mut buf = [0u8; 16];
        let first = server_side.read(&mut buf).await.map_err(|e| e.kind());
        // The loop still serves a new connection.
        let c = TcpStream::connect(addr).await.unwrap();
        let (s2, _) = listener.accept().await.unwrap();
        c.write_all(b"still here").await.unwrap();
        let n = s2.read(&mut buf).await.unwrap();
        (first, buf[..n].to_vec())
    })
    .unwrap();
    assert_eq!(first, Err(ErrorKind::ConnectionReset));
    assert_eq!(second, b"still here");
}

/// A slow server (150 ms before it answers) on the real clock: the reply comes, after the
/// delay as the loop measures it.
#[test]
fn slow_server_reply_arrives_after_its_delay() {
    let (reply, elapsed) = looplab::run(async {
        let lp = looplab::get_running_loop().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 4];
            s.read_exact(&mut req).await.unwrap();
            sleep(Duration::from_millis(150)).await;
            s.write_all(b"late answer").await.unwrap();
        });
        let start = lp.time();
        let c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut out = Vec::new();
        let got = timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await;
        assert!(got.is_some(), "timed out after 10 s");
        (out, lp.time() - start)
    })
    .unwrap();
    assert_eq!(reply, b"late answer");
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
}

/// A read that times out is dropped mid-way (N7): the stream, the loop and the other
/// connection carry on, and the late bytes are read by the next `read`. Real clock (C3).
#[test]
fn read_timeout_then_the_same_stream_still_reads() {
    let (first, second, other) = looplab::run(async {
        let (addr, _echo) = echo_server(1);
        let other = spawn(async move {
            let s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"unharmed").await.unwrap();
            let mut b = [0u8; 8];
            s.read_exact(&mut b).await.unwrap();
            b
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let quiet_addr = listener.local_addr().unwrap();
        let go = Rc::new(Cell::new(false));
        let go2 = go.clone();
        let _quiet = spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            while !go2.get() {
                sleep(Duration::from_millis(5)).await;
            }
            s.write_all(b"finally").await.unwrap();
            sleep(Duration::from_secs(5)).await; // keep it open
        });
        let c = TcpStream::connect(quiet_addr).await.unwrap();
        let mut buf = [0u8; 16];
        let first = timeout(Duration::from_millis(50), c.read(&mut buf)).await.map(|r| r.unwrap());
        go.set(true);
        let n = timeout(Duration::from_secs(10), c.read(&mut buf)).await.expect("second read timed out").unwrap();
        (first, buf[..n].to_vec(), other.await.unwrap())
    })
    .unwrap();
    assert_eq!(first, None, "the first read should have timed out");
    assert_eq!(second, b"finally");
    assert_eq!(&other, b"unharmed");
}

/// `connect` racing a timer: a listener with a full accept queue drops our SYN, so the
/// handshake never finishes and the timeout wins. Real clock (C3).
#[test]
fn connect_timeout_when_the_backlog_is_full() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: a valid listening socket; listen() again only changes the backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let addr = listener.local_addr().unwrap();
    // Fill the accept queue (backlog 0 admits one) with connections nobody accepts.
    let mut fillers = Vec::new();
    for _ in 0..3 {
        if let Ok(s) = mio::net::TcpStream::connect(addr) {
            fillers.push(s);
        }
    }
    let (outcome, elapsed) = looplab::run(async move {
        let lp = looplab::get_running_loop().unwrap();
        // Give the fillers' handshakes a moment to land in the queue first.
        sleep(Duration::from_millis(20)).await;
        let start = lp.time();
        let r = timeout(Duration::from_millis(300), TcpStream::connect(addr)).await;
        (r.map(|r| r.map(|_| ()).map_err(|e| e.kind())), lp.time() - start)
    })
    .unwrap();
    assert!(outcome.is_none(), "connect finished: {outcome:?}");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    drop(fillers);
}

/// Nobody listens: `ConnectionRefused`, with the address in the message.
#[test]
fn refused_connection_is_an_error_with_context() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nobody listens on `port` now
    let err = looplab::run_virtual(async move { TcpStream::connect(("127.0.0.1", port)).await.unwrap_err() }).unwrap();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert!(err.to_string().contains(&format!("connect to 127.0.0.1:{port}")), "{err}");
}

/// Two listeners on one port: `AddrInUse`, with the address in the message.
#[test]
fn address_in_use_is_an_error_with_context() {
    let err = looplab::run_virtual(async {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = first.local_addr().unwrap();
        let err = TcpListener::bind(addr).unwrap_err();
        (err, addr)
    })
    .unwrap();
    let (err, addr) = err;
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains(&format!("bind {addr}")), "{err}");
}

/// Outside a running loop a socket cannot register: an error, not a panic.
#[test]
fn binding_outside_a_loop_is_an_error() {
    let err = TcpListener::bind("127.0.0.1:0").unwrap_err();
    assert!(err.to_string().contains("no running loop"), "{err}");
}

/// UDP: a datagram there and back, sender addresses included.
#[test]
fn udp_round_trip() {
    let (got, from_ok, reply) = looplab::run_virtual(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let echo = spawn(async move {
            let mut buf = [0u8; 64];
            let (n, from) = b.recv_from(&mut buf).await.unwrap();
            b.send_to(&buf[..n], from).await.unwrap();
            (buf[..n].to_vec(), from)
        });
        assert_eq!(a.send_to(b"marco", b_addr).await.unwrap(), 5);
        let mut buf = [0u8; 64];
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        let (got, seen_from) = echo.await.unwrap();
        (got, seen_from == a_addr && from == b_addr, buf[..n].to_vec())
    })
    .unwrap();
    assert_eq!(got, b"marco");
    assert!(from_ok);
    assert_eq!(reply, b"marco");
}

/// asyncio's `add_reader` on a pipe is level-triggered: while a byte sits unread, the
/// callback runs once per iteration (N4). Once read, it stops; a new write makes it run
/// again; `remove_reader` stops it for good and reports that a reader was set.
#[test]
fn add_reader_on_a_pipe_is_level_triggered() {
    let lp = EventLoop::new_virtual();
    let (mut tx, rx) = mio::unix::pipe::new().unwrap();
    let fd = rx.as_raw_fd();
    let log: Rc<RefCell<Vec<(u64, String)>>> = Rc::default();
    let (log2, rx) = (log.clone(), Rc::new(rx));
    let runs = Rc::new(Cell::new(0));
    let runs2 = runs.clone();
    lp.add_reader(fd, move |lp: &LoopHandle| {
        runs2.set(runs2.get() + 1);
        let n = runs2.get();
        if n < 3 {
            // Leave the byte unread: level-triggered means we are called again next turn.
            log2.borrow_mut().push((lp.iteration(), "readable, not reading".into()));
            return;
        }
        let mut buf = [0u8; 8];
        let got = std::io::Read::read(&mut &*rx, &mut buf).unwrap();
        log2.borrow_mut().push((lp.iteration(), format!("read {got} byte(s)")));
        if n > 3 {
            assert!(lp.remove_reader(fd));
            lp.stop();
        }
    })
    .unwrap();
    tx.write_all(b"x").unwrap();
    // Run until the byte was consumed, then a few idle iterations with nothing readable.
    while runs.get() < 3 {
        lp.run_once_for_test();
    }
    for _ in 0..3 {
        lp.run_once_for_test();
    }
    assert_eq!(runs.get(), 3, "called again with nothing to read");
    tx.write_all(b"yz").unwrap();
    lp.run_forever().unwrap();
    assert!(!lp.remove_reader(fd), "already removed");
    let log = log.take();
    let texts: Vec<&str> = log.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["readable, not reading", "readable, not reading", "read 1 byte(s)", "read 2 byte(s)"]);
    // The first three runs happened on three consecutive iterations.
    assert_eq!(log[1].0, log[0].0 + 1);
    assert_eq!(log[2].0, log[1].0 + 1);
}

/// One iteration of the loop from a test: `run_forever` with `stop()` called first runs
/// exactly one iteration (E5).
trait RunOnce {
    fn run_once_for_test(&self);
}

impl RunOnce for EventLoop {
    fn run_once_for_test(&self) {
        self.stop();
        self.run_forever().unwrap();
    }
}

/// 1,000 connections at once, all served by one loop, every echo correct.
#[test]
fn thousand_concurrent_connections_on_one_loop() {
    const N: usize = 1000;
    let (ok, total) = looplab::run_virtual(async {
        let (addr, server) = echo_server(N);
        let clients: Vec<_> = (0..N)
            .map(|i| {
                spawn(async move {
                    let s = TcpStream::connect(addr).await?;
                    let msg = (i as u64).to_be_bytes();
                    s.write_all(&msg).await?;
                    let mut back = [0u8; 8];
                    s.read_exact(&mut back).await?;
                    s.shutdown(Shutdown::Write)?;
                    Ok::<bool, std::io::Error>(back == msg)
                })
            })
            .collect();
        let mut ok = 0;
        for c in clients {
            if c.await.unwrap().unwrap() {
                ok += 1;
            }
        }
        (ok, server.await.unwrap())
    })
    .unwrap();
    assert_eq!(ok, N);
    assert_eq!(total, N * 8);
}

/// N9: a small read takes up to `READ_AHEAD` bytes from the kernel; later reads, small or
/// large, get the rest in order without losing or repeating a byte, and the EOF behind them
/// is still seen (N5 never forgets readiness after the peer closed, so nothing hangs).
#[test]
fn read_ahead_hands_out_every_byte_once_then_eof() {
    let got = looplab::run_virtual(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = spawn(async move {
            let s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"0123456789abcdef").await.unwrap();
            sleep(Duration::from_millis(5)).await;
            s.write_all(b"ghij").await.unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            sleep(Duration::from_millis(5)).await;
        });
        let (s, _) = listener.accept().await.unwrap();
        let mut parts = Vec::new();
        let mut three = [0u8; 3];
        let n = s.read(&mut three).await.unwrap();
        parts.push(String::from_utf8_lossy(&three[..n]).into_owned());
        s.read_exact(&mut three).await.unwrap();
        parts.push(String::from_utf8_lossy(&three).into_owned());
        // A read that times out (its future dropped) loses nothing.
        let mut big = vec![0u8; 2 * looplab::net::tcp::READ_AHEAD];
        let n = s.read(&mut big).await.unwrap();
        parts.push(String::from_utf8_lossy(&big[..n]).into_owned());
        assert!(timeout(Duration::from_millis(1), s.read(&mut three)).await.is_none());
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        parts.push(String::from_utf8_lossy(&rest).into_owned());
        assert_eq!(s.read(&mut three).await.unwrap(), 0);
        writer.await.unwrap();
        parts
    })
    .unwrap();
    assert_eq!(got, ["012", "345", "6789abcdef", "ghij"]);
}
