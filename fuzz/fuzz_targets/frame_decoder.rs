//! Fuzz the bytes a process-pool manager or worker reads from a pipe: the frame decoder
//! (`FrameBuf`, `Frame::parse`, `call_parts`) fed in arbitrary pieces, and the codec
//! (`from_bytes`) over every frame body it yields, for the types jobs use.
//!
//! Properties, beyond "no panic, no hang, no huge allocation" (M1–M3, D1–D2):
//! - splitting the stream differently never changes the frames found or the error hit;
//! - a frame's `used` covers its header and body exactly, and never exceeds what arrived;
//! - the codec is canonical: whatever decodes re-encodes to the very same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use looplab::pool::codec::{Codec, from_bytes, to_bytes};
use looplab::pool::frame::{Frame, FrameBuf, FrameError, HEADER_BYTES};

/// Decode `bytes` as `T`; if that works, the encoding must give the same bytes back.
fn canonical<T: Codec>(bytes: &[u8]) {
    if let Ok(v) = from_bytes::<T>(bytes) {
        assert_eq!(to_bytes(&v), bytes, "{} is not canonical", T::NAME);
    }
}

/// Every codec the pool's jobs and replies use, on one body.
fn decode_all(body: &[u8]) {
    canonical::<u64>(body);
    canonical::<i64>(body);
    canonical::<f64>(body);
    canonical::<bool>(body);
    canonical::<()>(body);
    canonical::<String>(body);
    canonical::<Vec<u8>>(body);
    canonical::<Vec<u64>>(body);
    canonical::<Vec<()>>(body);
    canonical::<Vec<String>>(body);
    canonical::<Option<Vec<u8>>>(body);
    canonical::<(i64, String)>(body);
    canonical::<(u8, Vec<(u32, bool)>, Option<String>)>(body);
}

/// What one frame looked like, to compare two ways of reading the same stream.
#[derive(Debug, PartialEq)]
struct Seen {
    kind: u8,
    id: u64,
    body: Vec<u8>,
}

/// Feed `stream` to a `FrameBuf` in pieces, the k-th of `piece(k)` bytes, taking every whole
/// frame out as soon as it is there; returns the frames and the error that ended the stream.
fn read_stream(stream: &[u8], piece: impl Fn(usize) -> usize) -> (Vec<Seen>, Option<FrameError>) {
    let mut buf = FrameBuf::new();
    let mut seen = Vec::new();
    let (mut at, mut k) = (0, 0);
    loop {
        loop {
            match buf.peek() {
                Ok(Some((frame, used))) => {
                    assert_eq!(used, HEADER_BYTES + frame.body.len());
                    assert!(used <= buf.pending());
                    if let Ok((name, rest)) = frame.call_parts() {
                        assert!(name.len() + rest.len() + 2 == frame.body.len());
                        decode_all(rest);
                    }
                    decode_all(frame.body);
                    seen.push(Seen { kind: frame.kind as u8, id: frame.id, body: frame.body.to_vec() });
                    buf.consume(used);
                }
                Ok(None) => break,
                Err(e) => return (seen, Some(e)),
            }
        }
        if at == stream.len() {
            return (seen, buf.at_eof().err());
        }
        let n = piece(k).clamp(1, stream.len() - at);
        k += 1;
        buf.extend(&stream[at..at + n]);
        at += n;
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how many of the next bytes are piece sizes; the rest is the stream.
    let Some((&npieces, rest)) = data.split_first() else { return };
    let split = usize::from(npieces % 32).min(rest.len());
    let (pieces, stream) = rest.split_at(split);
    let (frames, err) = read_stream(stream, |k| pieces.get(k).map_or(usize::MAX, |&p| usize::from(p) + 1));
    // All at once, and a byte at a time, must find the same frames and the same error (M2:
    // no decision depends on how the bytes arrived).
    let err = err.map(|e| e.to_string());
    for piece in [usize::MAX, 1] {
        let (other, other_err) = read_stream(stream, |_| piece);
        assert_eq!(frames, other);
        assert_eq!(err, other_err.map(|e| e.to_string()));
    }
    // `Frame::parse` on the raw stream agrees with the buffer's first frame.
    match Frame::parse(stream) {
        Ok(Some((f, used))) => {
            assert_eq!(used, HEADER_BYTES + f.body.len());
            assert_eq!(frames.first().map(|s| (s.kind, s.id, s.body.as_slice())), Some((f.kind as u8, f.id, f.body)));
        }
        Ok(None) => assert!(frames.is_empty()),
        Err(_) => assert!(frames.is_empty()),
    }
    // Bodies straight from the input, too (not only those inside a valid frame).
    decode_all(stream);
});
