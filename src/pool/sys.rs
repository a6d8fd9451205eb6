//! Thin, safe wrappers over the few Linux calls the process pool needs and
//! `std` lacks: `pipe2`, `pidfd_open`, `poll`, `waitpid`, `kill`, `prctl`, and for shared
//! memory (`shm.rs`) `memfd_create`, `ftruncate` and the seal `fcntl`s.
//!
//! Each wrapper turns a `-1` return into `io::Error::last_os_error()` and
//! hands out `OwnedFd`s, so a descriptor is closed exactly once, by `Drop`.
//!
//! ```text
//!   process.rs (manager, worker) --> sys.rs (one unsafe call per fn) --> libc
//! ```
//!
//! # asyncio equivalent
//! `os.pipe2`, `os.pidfd_open`, `select.poll`, `os.waitpid`, `os.kill`:
//! Python exposes the same syscalls one-to-one, and so do we.
//!
//! # Invariants
//! - **Y1** Every descriptor we create is `O_CLOEXEC` from birth (`pipe2`,
//!   `pidfd_open`, `eventfd` flags), so no other child inherits it; only
//!   `child_setup`, in the forked child, makes the two protocol fds survive
//!   `exec`.
//! - **Y2** A raw fd becomes an `OwnedFd` at most once (`adopt`), so it is
//!   closed at most once.
//! - **Y3** `child_setup` runs between `fork` and `exec` in a process that
//!   may have had threads: it calls only async-signal-safe functions
//!   (`fcntl`, `dup2`, `prctl`, `getppid`) and never allocates.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Maps a libc `-1` return to the OS error.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// A pipe, `(read end, write end)`, both close-on-exec (Y1).
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: Y1. `fds` is a valid, writable array of two c_ints, as pipe2
    // requires; the flags are plain constants.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: Y2. pipe2 succeeded, so both fds are open and owned by nobody else.
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: Y2, as above, for the write end.
    let write = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok((read, write))
}

/// Sets `O_NONBLOCK` on `fd`, keeping its other status flags.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL) only reads the flags of an fd that `BorrowedFd`
    // guarantees is open.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above; F_SETFL with an int argument.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Sets `FD_CLOEXEC` on a raw fd (the worker re-protects its protocol fds
/// so that processes it starts do not inherit them, Y1).
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD on any int is memory-safe; a bad fd gives EBADF.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    Ok(())
}

/// Takes ownership of an fd inherited across `exec` (the worker's fds 3 and
/// 4), after checking that it is open.
///
/// # Safety
/// Y2: nothing else in this process owns `fd` or will close it.
pub(crate) unsafe fn adopt(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the fd; EBADF if it is not open.
    check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: Y2 is the caller's duty; the fd is open (checked above).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_open(pid, 0)`: an fd that polls readable when `pid` exits
/// (Linux 5.3+). It is close-on-exec by definition (Y1).
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: the syscall takes two integers and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: Y2. A fresh fd returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// An `eventfd` used as the manager's doorbell, close-on-exec and non-blocking.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes an initial count and flags; returns a new fd or -1.
    let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: Y2. A fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `waitpid(pid, WNOHANG)`: `Some(raw status)` if the child has exited (it
/// is now reaped), `None` if it is still running.
pub(crate) fn waitpid_nohang(pid: libc::pid_t) -> io::Result<Option<libc::c_int>> {
    let mut status: libc::c_int = 0;
    // SAFETY: P2. `status` is a valid out-pointer; `pid` is our child, and
    // the manager thread is the only caller of waitpid for it.
    let r = check(unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) })?;
    Ok((r == pid).then_some(status))
}

/// `waitpid(pid, 0)`: blocks until the child exits, then reaps it.
pub(crate) fn waitpid_blocking(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: P2, as in `waitpid_nohang`.
        match check(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Ok(_) => return Ok(status),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sends `signal` to `pid`. P2 makes this safe from pid reuse: we only
/// signal children we have not reaped yet, and an unreaped child's pid
/// cannot be reused.
pub(crate) fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes two integers; it cannot touch our memory.
    check(unsafe { libc::kill(pid, signal) })?;
    Ok(())
}

/// `poll(2)` over `fds`, retried on `EINTR`; `None` waits forever.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ms = match timeout {
        None => -1,
        // Round up so a 0.5 ms timeout does not become a busy loop.
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    loop {
        // SAFETY: `fds` is a valid, writable slice of pollfd of the length given.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        match check(r) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Our parent's pid, as the kernel sees it now.
pub(crate) fn getppid() -> libc::pid_t {
    // SAFETY: getppid has no arguments and cannot fail.
    unsafe { libc::getppid() }
}

/// Our own pid.
pub(crate) fn getpid() -> libc::pid_t {
    // SAFETY: getpid has no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`: an anonymous, growable in-memory
/// file (Y1: close-on-exec), which can later be sealed (`shm.rs`, H1).
pub(crate) fn memfd_create(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call; the flags
    // are constants. Returns a new fd or -1.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) })?;
    // SAFETY: Y2. A fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ftruncate(fd, len)`: sets the size of a file (a fresh memfd reads as zeros).
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: ftruncate takes an fd that `BorrowedFd` guarantees is open and an integer.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    Ok(())
}

/// `fcntl(F_ADD_SEALS)`: forbids the operations in `seals` on the file for ever.
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS with an int argument on an open fd only changes the file's seals.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(())
}

/// `fcntl(F_GET_SEALS)`: the seals of a file (`EINVAL` if it cannot have any).
pub(crate) fn get_seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: F_GET_SEALS only reads the seals of an open fd.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
}

/// The protocol fds inside a worker: calls arrive on 3, replies leave on 4.
pub(crate) const CHILD_CALL_FD: RawFd = 3;
/// See [`CHILD_CALL_FD`].
pub(crate) const CHILD_RESULT_FD: RawFd = 4;

/// Runs in the forked child before `exec` (Y3): moves the two protocol fds
/// to 3 and 4 (clearing close-on-exec on those copies only), asks for
/// SIGKILL when the parent thread dies, and bails out if the parent is
/// already gone.
///
/// # Safety
/// Call only from a `pre_exec` hook: between `fork` and `exec`, in the child.
/// `call_read` and `result_write` must be open in the child.
pub(crate) unsafe fn child_setup(call_read: RawFd, result_write: RawFd, parent: libc::pid_t) -> io::Result<()> {
    // First copy both fds above 10 so that moving one onto 3 or 4 cannot
    // clobber the other (e.g. if `result_write` happens to be 3).
    // SAFETY: Y3. fcntl(F_DUPFD_CLOEXEC) is async-signal-safe; the copies are
    // close-on-exec, so they vanish at exec.
    let a = check(unsafe { libc::fcntl(call_read, libc::F_DUPFD_CLOEXEC, 10) })?;
    // SAFETY: Y3, as above.
    let b = check(unsafe { libc::fcntl(result_write, libc::F_DUPFD_CLOEXEC, 10) })?;
    // SAFETY: Y3. dup2 is async-signal-safe; the new fd has no FD_CLOEXEC,
    // so exactly these two survive exec (Y1).
    check(unsafe { libc::dup2(a, CHILD_CALL_FD) })?;
    // SAFETY: Y3, as above.
    check(unsafe { libc::dup2(b, CHILD_RESULT_FD) })?;
    // P3: the kernel SIGKILLs us if the thread that spawned us (the pool's
    // manager thread) ends. Preserved across exec.
    // SAFETY: Y3. prctl with integer arguments is async-signal-safe.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) })?;
    // If the parent died before prctl, the signal will never come: check.
    // SAFETY: Y3. getppid is async-signal-safe.
    if unsafe { libc::getppid() } != parent {
        // ESRCH: "no such process", our parent. No allocation here (Y3).
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Worker side of P3: (re)arms the parent-death signal and confirms the
/// parent that spawned us is still our parent.
pub(crate) fn arm_parent_death_signal(expected_parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl with integer arguments cannot touch our memory.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) })?;
    if getppid() != expected_parent {
        return Err(io::Error::other("the pool's process exited"));
    }
    Ok(())
}

/// Ends the worker at once, without unwinding or running `atexit` hooks
/// (which in a test binary could print a test summary onto our pipes).
pub(crate) fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// CPU time this thread has used so far (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`). The
/// inspector measures polls and callbacks with it: unlike wall time it does not count time
/// the thread spent descheduled, and unlike loop time it is not zero on the virtual clock.
/// asyncio's slow-callback check measures wall time (`loop.time()` around the handle).
pub(crate) fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable `timespec` for the duration of the call, and
    // CLOCK_THREAD_CPUTIME_ID is supported by every Linux kernel this crate runs on.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
