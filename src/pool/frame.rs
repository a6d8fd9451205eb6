//! The pipe protocol between a [`ProcessPool`](crate::pool::ProcessPool) and its
//! workers: length-prefixed *frames*.
//!
//! A pipe is a byte stream with no message boundaries, so each message is
//! prefixed by its length; the reader accumulates bytes until a whole frame
//! is there ([`FrameBuf`]). Every frame carries a protocol version (so a
//! stale worker binary is detected, not misread) and a *request id* that
//! pairs each reply with its call.
//!
//! ```text
//!  byte 0        4         5        6                  14
//!       +--------+---------+--------+------------------+-----------------+
//!       | len    | version | kind   | request id       | body            |
//!       | u32 LE | u8 = 1  | u8     | u64 LE           | len - 10 bytes  |
//!       +--------+---------+--------+------------------+-----------------+
//!       len counts every byte after itself: 10 <= len <= MAX_FRAME_BYTES
//!
//!  kind 1 Call        body = name_len u16 LE | name (UTF-8) | argument bytes
//!  kind 2 CallChunk   body = name_len u16 LE | name | u32 count | arguments
//!  kind 3 Reply       body = status u8 | result bytes or message (UTF-8)
//!  kind 4 ChunkReply  body = u32 count | count x (status u8 | result/message)
//!                     status 0 = Ok, 1 = Panicked, 2 = Error
//!
//!  parent (manager thread)                    worker process
//!     Call{id 7, "square", 9} --call pipe (fd 3)-->  run square(9)
//!     <--result pipe (fd 4)--  Reply{id 7, Ok, 81}
//! ```
//!
//! # concurrent.futures equivalent
//! `multiprocessing.connection.Connection.send_bytes` also writes a length
//! prefix (4 bytes, big-endian) before a pickle; `_CallItem` and
//! `_ResultItem` carry a `work_id` like our request id. There is no version
//! byte in CPython: parent and child are always the same interpreter.
//!
//! # Invariants
//! - **M1** A reader never allocates for bytes it has not received: a length
//!   is only checked against the bounds, and the buffer grows as data
//!   arrives, so a forged `len` costs nothing.
//! - **M2** A header is validated as soon as its bytes are present (version,
//!   kind and length bounds), so garbage fails fast instead of waiting for
//!   gigabytes that will never come.
//! - **M3** Malformed input is a [`FrameError`], never a panic.

use std::fmt;
use std::io::{self, Read};

/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Bytes in the fixed header: length, version, kind, request id.
pub const HEADER_BYTES: usize = 14;
/// The smallest legal `len` field: version + kind + id.
const MIN_LEN: usize = HEADER_BYTES - 4;
/// The largest legal `len` field (64 MiB): big enough for a chunk of images,
/// small enough that a forged length is rejected outright (M1).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// What a frame asks for or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Parent to worker: run one named function on one argument.
    Call = 1,
    /// Parent to worker: run one named function on each of `count` arguments.
    CallChunk = 2,
    /// Worker to parent: the outcome of one `Call`.
    Reply = 3,
    /// Worker to parent: the outcomes of one `CallChunk`, in order.
    ChunkReply = 4,
}

impl FrameKind {
    /// Parses the kind byte (M2).
    fn from_byte(b: u8) -> Result<FrameKind, FrameError> {
        match b {
            1 => Ok(FrameKind::Call),
            2 => Ok(FrameKind::CallChunk),
            3 => Ok(FrameKind::Reply),
            4 => Ok(FrameKind::ChunkReply),
            found => Err(FrameError::UnknownKind { found }),
        }
    }
}

/// The status byte of one result in a `Reply` or `ChunkReply`.
pub(crate) const STATUS_OK: u8 = 0;
/// The function panicked; a UTF-8 message follows.
pub(crate) const STATUS_PANICKED: u8 = 1;
/// The worker could not run the function (e.g. bad argument); a message follows.
pub(crate) const STATUS_ERROR: u8 = 2;

/// Why bytes are not a valid frame (M3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The version byte is not [`VERSION`]: the peer is another build.
    BadVersion {
        /// The byte found.
        found: u8,
    },
    /// The kind byte names no [`FrameKind`].
    UnknownKind {
        /// The byte found.
        found: u8,
    },
    /// `len` is below the 10 bytes every frame has.
    TooShort {
        /// The `len` field.
        len: usize,
    },
    /// `len` is above [`MAX_FRAME_BYTES`].
    Oversized {
        /// The `len` field.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    Truncated {
        /// Bytes of the frame received.
        have: usize,
        /// Bytes the frame needs (header included), if known.
        need: Option<usize>,
    },
    /// The header was fine but the body does not fit its kind.
    BadBody {
        /// The frame's kind.
        kind: FrameKind,
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadVersion { found } => {
                write!(f, "protocol version {found}, expected {VERSION}")
            }
            FrameError::UnknownKind { found } => write!(f, "unknown frame kind {found}"),
            FrameError::TooShort { len } => {
                write!(f, "frame length {len} is below the minimum {MIN_LEN}")
            }
            FrameError::Oversized { len, max } => {
                write!(f, "frame length {len} exceeds the maximum {max}")
            }
            FrameError::Truncated { have, need } => match need {
                Some(n) => write!(f, "stream ended inside a frame ({have} of {n} bytes)"),
                None => write!(f, "stream ended inside a frame header ({have} bytes)"),
            },
            FrameError::BadBody { kind, reason } => write!(f, "bad {kind:?} body: {reason}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// One decoded frame, borrowing its body from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the frame is.
    pub kind: FrameKind,
    /// Pairs a reply with its call.
    pub id: u64,
    /// The kind-specific bytes.
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Parses the frame at the front of `bytes`. `Ok(None)` means "valid so
    /// far, need more bytes"; `Ok(Some((frame, used)))` gives the frame and
    /// how many bytes it took (M2: the header is checked as it arrives).
    pub fn parse(bytes: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, FrameError> {
        if bytes.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if len < MIN_LEN {
            return Err(FrameError::TooShort { len });
        }
        if len > MAX_FRAME_BYTES {
            return Err(FrameError::Oversized { len, max: MAX_FRAME_BYTES });
        }
        if let Some(&v) = bytes.get(4)
            && v != VERSION
        {
            return Err(FrameError::BadVersion { found: v });
        }
        let kind = match bytes.get(5) {
            Some(&k) => FrameKind::from_byte(k)?,
            None => return Ok(None),
        };
        let total = 4 + len;
        if bytes.len() < total {
            return Ok(None);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[6..14]);
        Ok(Some((Frame { kind, id: u64::from_le_bytes(id), body: &bytes[HEADER_BYTES..total] }, total)))
    }

    /// Splits a `Call`/`CallChunk` body into the function name and the rest.
    pub fn call_parts(&self) -> Result<(&'a str, &'a [u8]), FrameError> {
        let bad = |reason: &str| FrameError::BadBody { kind: self.kind, reason: reason.to_string() };
        if self.body.len() < 2 {
            return Err(bad("no name length"));
        }
        let n = u16::from_le_bytes([self.body[0], self.body[1]]) as usize;
        let name = self.body.get(2..2 + n).ok_or_else(|| bad("name runs past the body"))?;
        let name = std::str::from_utf8(name).map_err(|_| bad("name is not UTF-8"))?;
        Ok((name, &self.body[2 + n..]))
    }
}

/// Starts a frame at the end of `out`; returns where it starts, for
/// [`end_frame`]. The length is patched in once the body is written.
pub fn begin_frame(out: &mut Vec<u8>, kind: FrameKind, id: u64) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, VERSION, kind as u8]);
    out.extend_from_slice(&id.to_le_bytes());
    start
}

/// Finishes the frame begun at `start`: writes its length, or removes it
/// and fails if the body made it too big.
pub fn end_frame(out: &mut Vec<u8>, start: usize) -> Result<(), FrameError> {
    let len = out.len() - start - 4;
    if len > MAX_FRAME_BYTES {
        out.truncate(start);
        return Err(FrameError::Oversized { len, max: MAX_FRAME_BYTES });
    }
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Writes the `name_len | name` prefix of a call body.
pub(crate) fn put_name(out: &mut Vec<u8>, name: &str) {
    let n = u16::try_from(name.len()).expect("registry names are checked to fit in u16");
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
}

/// A growable read buffer that yields whole frames from a byte stream.
///
/// `buf` is zero-filled only when it grows, never per read (zeroing 64 KiB
/// on every `read` used to cost microseconds per job); `buf[start..end]` is
/// received and not yet consumed.
#[derive(Debug, Default)]
pub struct FrameBuf {
    /// Storage; `buf.len()` is its usable size, not the data length.
    buf: Vec<u8>,
    /// Where the unconsumed bytes begin.
    start: usize,
    /// Where the received bytes end.
    end: usize,
}

/// How many free bytes we offer to each `read` call, at least.
const READ_CHUNK: usize = 64 * 1024;

impl FrameBuf {
    /// An empty buffer.
    pub fn new() -> FrameBuf {
        FrameBuf::default()
    }

    /// Makes room for at least [`READ_CHUNK`] more bytes: first by moving
    /// unconsumed bytes to the front, then by growing (M1: growth follows
    /// received data, one chunk at a time).
    fn reserve_chunk(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end >= READ_CHUNK {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK {
            self.buf.resize(self.end + READ_CHUNK, 0);
        }
    }

    /// Reads once from `r` into the buffer. Returns the byte count (0 at end
    /// of stream); `WouldBlock` passes through for non-blocking pipes.
    pub fn read_from(&mut self, r: &mut impl Read) -> io::Result<usize> {
        self.reserve_chunk();
        let n = r.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Appends bytes directly (used by tests and fuzz-style feeds).
    pub fn extend(&mut self, bytes: &[u8]) {
        for piece in bytes.chunks(READ_CHUNK) {
            self.reserve_chunk();
            self.buf[self.end..self.end + piece.len()].copy_from_slice(piece);
            self.end += piece.len();
        }
    }

    /// The next whole frame, if one is buffered. The frame borrows the
    /// buffer; call [`FrameBuf::consume`] with the returned size afterwards.
    pub fn peek(&self) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
        Frame::parse(&self.buf[self.start..self.end])
    }

    /// Drops `n` bytes of consumed frames from the front.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end, "M1: consumed past the data");
    }

    /// Bytes buffered but not consumed.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// At end of stream: `Ok` if no partial frame is left, else `Truncated`.
    pub fn at_eof(&self) -> Result<(), FrameError> {
        let have = self.pending();
        if have == 0 {
            return Ok(());
        }
        let rest = &self.buf[self.start..self.end];
        let need = (have >= 4).then(|| 4 + u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize);
        Err(FrameError::Truncated { have, need })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_the_diagram() {
        let mut out = Vec::new();
        let s = begin_frame(&mut out, FrameKind::Reply, 7);
        out.extend_from_slice(&[STATUS_OK, 81]);
        end_frame(&mut out, s).unwrap();
        assert_eq!(out, [12, 0, 0, 0, 1, 3, 7, 0, 0, 0, 0, 0, 0, 0, 0, 81]);
        let (f, used) = Frame::parse(&out).unwrap().unwrap();
        assert_eq!((f.kind, f.id, f.body, used), (FrameKind::Reply, 7, &[0u8, 81][..], 16));
    }

    #[test]
    fn every_prefix_is_incomplete_not_an_error() {
        let mut out = Vec::new();
        let s = begin_frame(&mut out, FrameKind::Call, 1);
        put_name(&mut out, "f");
        end_frame(&mut out, s).unwrap();
        for cut in 0..out.len() {
            assert_eq!(Frame::parse(&out[..cut]), Ok(None), "cut at {cut}");
        }
    }
}
