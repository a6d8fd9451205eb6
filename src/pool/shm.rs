//! Shared memory for big arguments: [`SharedBytes`], bytes that a worker process *maps*
//! instead of receiving them through its pipe.
//!
//! A process worker shares no memory with its parent, so an argument normally crosses as
//! bytes: encoded into a frame, written into the call pipe 64 KiB at a time, read out again
//! and decoded (four copies of every byte, two of them through the kernel, plus the page
//! faults of each fresh buffer). For an 8 MB image that is most of what the process pool
//! pays and the thread pool does not. `SharedBytes` puts the bytes in an anonymous in-memory
//! file (a *memfd*) once; what crosses the pipe is a 24-byte reference to that file, and the
//! worker maps the same physical pages into its own address space.
//!
//! ```text
//!  parent                                            worker
//!  SharedBytes::from_fn(len, fill)
//!    memfd_create, ftruncate(len)
//!    mmap read-write, fill(&mut [u8]), munmap
//!    seal: no write, no grow, no shrink (Z1)
//!    mmap read-only            (fd N stays open)
//!  pool.submit("filter", img.clone())
//!    encode: pid | fd N | inode | len  ──pipe──►  decode: open /proc/<pid>/fd/N
//!    the job keeps a clone: a *lease* (Z2)          check inode, size and seals (Z1, Z2)
//!                                                   mmap read-only: the same pages, no copy
//!    reply arrives ◄───────────────────────────── filter(&img) … reply
//!    the job and its lease are dropped
//! ```
//!
//! # multiprocessing equivalent
//! `multiprocessing.shared_memory.SharedMemory`: `shm_open` + `mmap`, with the block's
//! *name* crossing the pipe. Differences: a memfd has no name in `/dev/shm`, so a parent
//! killed with SIGKILL leaks nothing (Python runs a `resource_tracker` process for that);
//! and the block is sealed before anyone reads it, so it is immutable everywhere (Python's
//! is writable by every process that maps it, with no synchronisation).
//!
//! # Invariants
//! - **Z1** The memfd behind a readable `SharedBytes` is sealed against writing, growing and
//!   shrinking before it is mapped for reading, in any process: the bytes behind `&[u8]` never
//!   change and are never truncated away (no `SIGBUS`). A worker refuses a file without
//!   those seals.
//! - **Z2** While a job that carries a `SharedBytes` is queued or running, the job holds a
//!   clone of it (its *lease*), so the memfd's descriptor stays open in the parent and the
//!   worker's `open("/proc/<pid>/fd/<n>")` finds it. The worker compares the inode with the
//!   encoded one, so a descriptor number reused by another file is an error, never a
//!   mapping of someone else's data.
//! - **Z3** Encoded anywhere but in a job's call (`to_bytes`, a worker's reply), a
//!   `SharedBytes` carries fd -1 and decodes to a [`CodecError`]: shared blocks cross from
//!   the pool to its workers only.

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::pool::codec::{Codec, CodecError, Decoder};
use crate::pool::sys;

/// The seals every readable block carries (Z1).
const SEALS: libc::c_int = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
/// The seals a worker insists on before it maps a block (Z1).
const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK;

/// One `mmap` of `len` bytes, unmapped on drop. `len == 0` maps nothing (mmap rejects it).
struct RawMap {
    /// Start of the mapping (dangling when `len == 0`).
    ptr: NonNull<u8>,
    /// Its length in bytes.
    len: usize,
}

impl RawMap {
    /// Maps `len` bytes of `fd` from offset 0, shared, with protection `prot`; `populate`
    /// asks the kernel to fault every page in now (one call instead of a fault per 4 KiB).
    fn new(fd: &OwnedFd, len: usize, prot: libc::c_int, populate: bool) -> io::Result<RawMap> {
        if len == 0 {
            return Ok(RawMap { ptr: NonNull::dangling(), len });
        }
        let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: a new mapping chosen by the kernel (address hint null), so it cannot
        // overlap any memory Rust knows about; `fd` is open and at least `len` bytes long
        // (the callers set or checked its size, and Z1's seals keep it so).
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd.as_raw_fd(), 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(RawMap { ptr, len })
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: `ptr`/`len` are exactly one mapping made by `RawMap::new`, unmapped only
            // here, once; no reference into it outlives the `RawMap` (slices borrow it).
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// A sealed block and its read-only mapping in this process.
struct Block {
    /// The read-only view of the whole block.
    map: RawMap,
    /// The memfd; open for as long as the block lives (Z2).
    fd: OwnedFd,
    /// The memfd's inode number, checked by the worker (Z2).
    ino: u64,
}

// SAFETY: a `Block` is the owner of a read-only mapping of a memfd sealed against writes and
// resizing (Z1): no process can change or remove the bytes while it exists, so sharing
// `&[u8]` views of it between threads is as safe as sharing an immutable `Box<[u8]>`. The
// raw pointer is what makes the compiler unsure; nothing else in it is thread-bound.
unsafe impl Send for Block {}
// SAFETY: as for `Send`: every access through a shared reference is a read of immutable bytes.
unsafe impl Sync for Block {}

/// Immutable bytes in shared memory (a sealed memfd) that worker processes map instead of
/// copying. Cloning is cheap (a reference count); the memory is freed when the last clone in
/// every process is gone. Read it through `Deref<Target = [u8]>`.
/// multiprocessing: `shared_memory.SharedMemory`.
///
/// Each block holds one file descriptor while it lives (Z2). As a job's argument it costs
/// 24 bytes of frame; a worker maps it read-only. It cannot be *returned* by a job (Z3).
#[derive(Clone)]
pub struct SharedBytes {
    /// The block, shared by clones (and by the leases of jobs that carry it, Z2).
    block: Arc<Block>,
}

impl SharedBytes {
    /// A block of `len` bytes, filled in place by `fill` (which sees zeros), then sealed
    /// (Z1): the bytes are written once, straight into the shared pages.
    pub fn from_fn(len: usize, fill: impl FnOnce(&mut [u8])) -> io::Result<SharedBytes> {
        let fd = sys::memfd_create(c"looplab-shared-bytes")?;
        sys::ftruncate(fd.as_fd(), len)?;
        {
            let rw = RawMap::new(&fd, len, libc::PROT_READ | libc::PROT_WRITE, false)?;
            // SAFETY: `rw` is a fresh, writable mapping of exactly `len` bytes of a memfd that
            // only this function knows (created above, not yet shared or sealed), so this is
            // the only reference to that memory; it ends before `rw` is unmapped below.
            let bytes = unsafe { std::slice::from_raw_parts_mut(rw.ptr.as_ptr(), len) };
            fill(bytes);
        } // `rw` unmapped: F_SEAL_WRITE refuses a file with a writable shared mapping
        sys::add_seals(fd.as_fd(), SEALS)?;
        // Populate: the data was just written, so these pages are all present; mapping them in
        // one call spares the first reader a fault per page.
        let map = RawMap::new(&fd, len, libc::PROT_READ, true)?;
        let ino = File::from(fd.try_clone()?).metadata()?.ino();
        Ok(SharedBytes { block: Arc::new(Block { map, fd, ino }) })
    }

    /// A block holding a copy of `bytes`.
    pub fn from_slice(bytes: &[u8]) -> io::Result<SharedBytes> {
        SharedBytes::from_fn(bytes.len(), |b| b.copy_from_slice(bytes))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        let m = &self.block.map;
        // SAFETY: `m` maps `m.len` readable bytes (or is empty with a dangling, aligned
        // pointer) for as long as `self.block` lives, which outlives the returned borrow; the
        // bytes never change (Z1), so an immutable slice over them is sound.
        unsafe { std::slice::from_raw_parts(m.ptr.as_ptr(), m.len) }
    }

    /// Opens the block that process `pid` holds as descriptor `fd` (Z2), checking that it is
    /// still the same file (`ino`), of `len` bytes, sealed (Z1); maps it read-only.
    fn open(pid: u32, fd: i32, ino: u64, len: usize) -> io::Result<SharedBytes> {
        let file = File::open(format!("/proc/{pid}/fd/{fd}"))?;
        let meta = file.metadata()?;
        if meta.ino() != ino {
            return Err(io::Error::other("the block's descriptor now names another file (the block was dropped)"));
        }
        if meta.len() != len as u64 {
            return Err(io::Error::other(format!("the block holds {} bytes, not {len}", meta.len())));
        }
        let fd = OwnedFd::from(file);
        let seals = sys::get_seals(fd.as_fd())?;
        if seals & REQUIRED_SEALS != REQUIRED_SEALS {
            return Err(io::Error::other("the block is not sealed against writes and shrinking"));
        }
        let map = RawMap::new(&fd, len, libc::PROT_READ, true)?;
        Ok(SharedBytes { block: Arc::new(Block { map, fd, ino }) })
    }
}

impl Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBytes").field("len", &self.len()).field("fd", &self.block.fd.as_raw_fd()).finish()
    }
}

impl PartialEq for SharedBytes {
    fn eq(&self, other: &SharedBytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

thread_local! {
    /// The leases of the call being encoded on this thread, if one is (Z2, Z3).
    static LEASES: RefCell<Option<Vec<SharedBytes>>> = const { RefCell::new(None) };
}

/// Runs `encode` with a lease collector: every `SharedBytes` it encodes is cloned into the
/// returned list (Z2), which the job keeps until its reply. The previous collector (if any)
/// is restored afterwards, also when `encode` panics.
pub(crate) fn collect_leases<T>(encode: impl FnOnce() -> T) -> (T, Vec<SharedBytes>) {
    /// Puts the outer collector back on drop, handing out the inner one.
    struct Restore(Option<Option<Vec<SharedBytes>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                LEASES.with(|l| *l.borrow_mut() = outer);
            }
        }
    }
    let mut restore = Restore(Some(LEASES.with(|l| l.replace(Some(Vec::new())))));
    let out = encode();
    let outer = restore.0.take().unwrap_or_default();
    let leases = LEASES.with(|l| l.replace(outer)).unwrap_or_default();
    (out, leases)
}

impl Codec for SharedBytes {
    const NAME: &'static str = "SharedBytes";
    const MIN_BYTES: usize = 24;

    /// `u32 pid | i32 fd | u64 inode | u64 len` (fd -1 outside a job's call, Z3).
    fn encode(&self, out: &mut Vec<u8>) {
        let fd = LEASES.with(|l| match l.borrow_mut().as_mut() {
            Some(leases) => {
                leases.push(self.clone());
                self.block.fd.as_raw_fd()
            }
            None => -1,
        });
        (sys::getpid() as u32).encode(out);
        fd.encode(out);
        self.block.ino.encode(out);
        (self.len() as u64).encode(out);
    }

    fn decode(input: &mut Decoder<'_>) -> Result<SharedBytes, CodecError> {
        let pid = u32::decode(input)?;
        let fd = i32::decode(input)?;
        let ino = u64::decode(input)?;
        let len = u64::decode(input)?;
        let err = |reason: String| CodecError { what: "SharedBytes", reason };
        if fd < 0 {
            return Err(err("no block attached: a SharedBytes crosses only as a job's argument".into()));
        }
        let len = usize::try_from(len).map_err(|_| err(format!("length {len} does not fit in memory")))?;
        SharedBytes::open(pid, fd, ino, len).map_err(|e| err(format!("cannot map block fd {fd} of pid {pid}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::codec::{from_bytes, to_bytes};

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create and mmap are foreign functions Miri cannot run")]
    fn a_block_holds_what_was_written_and_is_sealed() {
        let b = SharedBytes::from_fn(10_000, |buf| {
            for (i, x) in buf.iter_mut().enumerate() {
                *x = i as u8;
            }
        })
        .unwrap();
        assert_eq!(b.len(), 10_000);
        assert!(b.iter().enumerate().all(|(i, &x)| x == i as u8));
        let seals = sys::get_seals(b.block.fd.as_fd()).unwrap();
        assert_eq!(seals & SEALS, SEALS, "Z1");
        // Z1: the kernel refuses writes and resizing now.
        let f = File::from(b.block.fd.try_clone().unwrap());
        assert!(f.set_len(5).is_err());
        assert!(std::io::Write::write(&mut &f, b"x").is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create and mmap are foreign functions Miri cannot run")]
    fn encoded_inside_a_call_it_maps_the_same_pages() {
        let b = SharedBytes::from_slice(b"shared pixels").unwrap();
        let (bytes, leases) = collect_leases(|| to_bytes(&b));
        assert_eq!(leases.len(), 1, "Z2: the call holds a lease");
        let c: SharedBytes = from_bytes(&bytes).unwrap();
        assert_eq!(&*c, b"shared pixels");
        assert_ne!(c.block.map.ptr, b.block.map.ptr, "a second mapping, not a copy of the pointer");
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create and mmap are foreign functions Miri cannot run")]
    fn outside_a_call_it_does_not_decode() {
        let b = SharedBytes::from_slice(b"x").unwrap();
        let e = from_bytes::<SharedBytes>(&to_bytes(&b)).unwrap_err();
        assert!(e.reason.contains("only as a job's argument"), "Z3: {e}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create and mmap are foreign functions Miri cannot run")]
    fn a_dropped_block_is_not_found_again() {
        let b = SharedBytes::from_slice(b"gone").unwrap();
        let (bytes, leases) = collect_leases(|| to_bytes(&b));
        drop((b, leases));
        // A new block may reuse the descriptor number: the inode check tells them apart (Z2).
        let _other = SharedBytes::from_slice(b"other").unwrap();
        assert!(from_bytes::<SharedBytes>(&bytes).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create and mmap are foreign functions Miri cannot run")]
    fn empty_blocks_work() {
        let b = SharedBytes::from_slice(&[]).unwrap();
        let (bytes, _leases) = collect_leases(|| to_bytes(&b));
        assert!(from_bytes::<SharedBytes>(&bytes).unwrap().is_empty());
    }
}
