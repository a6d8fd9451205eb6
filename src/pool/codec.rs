//! The codec: how arguments and results become bytes and back.
//!
//! A process worker shares no memory with its parent, so every argument and
//! result crosses a pipe as bytes. [`Codec`] is the one trait a type needs to
//! cross: `encode` appends its bytes to a `Vec<u8>`, `decode` reads them back
//! from a [`Decoder`] (a cursor over a byte slice) and fails with a
//! [`CodecError`] that names what it was reading, never with a panic.
//!
//! ```text
//!   i64 7            07 00 00 00 00 00 00 00          fixed width, LE
//!   bool true        01                               0 or 1, else error
//!   "hi"             02 00 00 00 | 68 69              u32 length + UTF-8
//!   vec![1u8, 2]     02 00 00 00 | 01 02              u32 count + items
//!   Some(5u16)       01 | 05 00                       tag 0/1 + value
//!   (1u8, false)     01 | 00                          fields in order
//! ```
//!
//! # concurrent.futures equivalent
//! `pickle`: `ProcessPoolExecutor` pickles the function and its arguments.
//! We never send code, only a registered name ([`Registry`](crate::pool::Registry)) and
//! plain data; a user type joins by implementing [`Codec`] (or by wrapping a
//! serde format in one impl).
//!
//! # Invariants
//! - **D1** `decode(encode(v)) == v` for every implemented type.
//! - **D2** Decoding never reads past the slice and never allocates more than
//!   the bytes present justify: a length prefix is checked against the bytes
//!   left *before* any `Vec::with_capacity`.

use std::fmt;

/// Why bytes could not be decoded, naming the type being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// The type (or part) being decoded, e.g. `"String"`.
    pub what: &'static str,
    /// What was wrong, e.g. "needs 4 bytes, 2 left".
    pub reason: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad {}: {}", self.what, self.reason)
    }
}

impl std::error::Error for CodecError {}

/// A read cursor over encoded bytes (D2: every read is bounds-checked).
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Starts reading `bytes` from the front.
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { rest: bytes }
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Takes the next `n` bytes, or says which type wanted them.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < n {
            return Err(CodecError { what, reason: format!("needs {n} bytes, {} left", self.rest.len()) });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Reads a `u32` length prefix and checks that at least `len *
    /// min_item_bytes` bytes follow (D2), so a forged length cannot make us
    /// allocate.
    pub fn length(&mut self, min_item_bytes: usize, what: &'static str) -> Result<usize, CodecError> {
        let len = u32::decode(self)? as usize;
        if len.saturating_mul(min_item_bytes) > self.rest.len() {
            return Err(CodecError {
                what,
                reason: format!("length {len} exceeds the {} bytes left", self.rest.len()),
            });
        }
        Ok(len)
    }

    /// Fails unless every byte was consumed (trailing garbage is an error).
    pub fn finish(&self, what: &'static str) -> Result<(), CodecError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CodecError { what, reason: format!("{} trailing bytes", self.rest.len()) })
        }
    }
}

/// A type that can cross a process boundary as bytes. concurrent.futures:
/// being picklable.
pub trait Codec: Sized {
    /// A short type name for messages, e.g. `"i64"` or `"Vec<_>"`.
    const NAME: &'static str;
    /// Appends this value's bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one value from the front of `input` (D1, D2).
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError>;
    /// The fewest bytes one encoded value can take; lets `Vec` reject forged
    /// lengths before allocating (D2). Zero for zero-sized encodings.
    const MIN_BYTES: usize = 1;
    /// Appends the bytes of a run of values (what `Vec<Self>` calls). One at a
    /// time by default; `u8` overrides it with a single copy, so a byte vector
    /// (an image, a file) crosses the pipe at memcpy speed.
    fn encode_many(items: &[Self], out: &mut Vec<u8>) {
        for item in items {
            item.encode(out);
        }
    }
    /// Reads `len` values into `out` (what `Vec<Self>` calls; `len` was checked
    /// against the bytes left, D2). One at a time by default; `u8` copies.
    fn decode_many(input: &mut Decoder<'_>, len: usize, out: &mut Vec<Self>) -> Result<(), CodecError> {
        for _ in 0..len {
            out.push(Self::decode(input)?);
        }
        Ok(())
    }
}

/// Encodes `value` into a fresh buffer.
pub fn to_bytes<T: Codec>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// Decodes exactly one `T` from `bytes`, rejecting trailing bytes.
pub fn from_bytes<T: Codec>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut d = Decoder::new(bytes);
    let v = T::decode(&mut d)?;
    d.finish(T::NAME)?;
    Ok(v)
}

/// Integers and floats: fixed width, little-endian.
macro_rules! number_codec {
    ($($t:ty),*) => {$(
        impl Codec for $t {
            const NAME: &'static str = stringify!($t);
            const MIN_BYTES: usize = std::mem::size_of::<$t>();
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
                let bytes = input.take(std::mem::size_of::<$t>(), stringify!($t))?;
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                Ok(<$t>::from_le_bytes(a))
            }
        }
    )*};
}
number_codec!(u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);

/// Bytes: one byte each, and runs of them copied whole.
impl Codec for u8 {
    const NAME: &'static str = "u8";
    const MIN_BYTES: usize = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        Ok(input.take(1, "u8")?[0])
    }
    fn encode_many(items: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(items);
    }
    fn decode_many(input: &mut Decoder<'_>, len: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(input.take(len, "Vec<u8>")?);
        Ok(())
    }
}

impl Codec for usize {
    const NAME: &'static str = "usize";
    const MIN_BYTES: usize = 8;
    /// Always 8 bytes, so 32- and 64-bit processes agree.
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        let v = u64::decode(input)?;
        usize::try_from(v).map_err(|_| CodecError { what: "usize", reason: format!("{v} does not fit") })
    }
}

impl Codec for isize {
    const NAME: &'static str = "isize";
    const MIN_BYTES: usize = 8;
    /// Always 8 bytes, so 32- and 64-bit processes agree.
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as i64).encode(out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        let v = i64::decode(input)?;
        isize::try_from(v).map_err(|_| CodecError { what: "isize", reason: format!("{v} does not fit") })
    }
}

impl Codec for bool {
    const NAME: &'static str = "bool";
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        match input.take(1, "bool")?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(CodecError { what: "bool", reason: format!("byte {b:#04x} is neither 0 nor 1") }),
        }
    }
}

impl Codec for () {
    const NAME: &'static str = "()";
    const MIN_BYTES: usize = 0;
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        Ok(())
    }
}

impl Codec for String {
    const NAME: &'static str = "String";
    const MIN_BYTES: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        encode_len(self.len(), out);
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        let len = input.length(1, "String")?;
        let bytes = input.take(len, "String")?;
        String::from_utf8(bytes.to_vec()).map_err(|e| CodecError { what: "String", reason: format!("not UTF-8: {e}") })
    }
}

/// Writes a `u32` length prefix. Longer values cannot cross (a frame is far
/// smaller than 4 GiB anyway, see `frame::MAX_FRAME_BYTES`).
fn encode_len(len: usize, out: &mut Vec<u8>) {
    let len = u32::try_from(len).expect("D1: a value longer than u32::MAX cannot be encoded");
    len.encode(out);
}

/// The most items of a zero-byte encoding (`Vec<()>`) we decode: their count
/// cannot be checked against the bytes left, so it is capped instead (D2).
const MAX_ZERO_SIZED_ITEMS: usize = 1 << 20;

/// `Vec<T>`: a `u32` count, then the items. (`Vec<u8>` uses this too: one
/// byte per item, copied with `extend`, which the optimizer turns into a
/// memcpy.)
impl<T: Codec> Codec for Vec<T> {
    const NAME: &'static str = "Vec<_>";
    const MIN_BYTES: usize = 4;
    fn encode(&self, out: &mut Vec<u8>) {
        encode_len(self.len(), out);
        T::encode_many(self, out);
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        // D2: the length is checked against the bytes left before allocating.
        let len = input.length(T::MIN_BYTES, "Vec<_>")?;
        if T::MIN_BYTES == 0 && len > MAX_ZERO_SIZED_ITEMS {
            return Err(CodecError {
                what: "Vec<_>",
                reason: format!("{len} zero-sized items is more than we accept"),
            });
        }
        // Zero-sized encodings (`Vec<()>`) may claim any length; cap the
        // up-front reservation so a forged count costs no memory.
        let mut v = Vec::with_capacity(len.min(input.remaining().max(16)));
        T::decode_many(input, len, &mut v)?;
        Ok(v)
    }
}

impl<T: Codec> Codec for Option<T> {
    const NAME: &'static str = "Option<_>";
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
        match input.take(1, "Option<_>")?[0] {
            0 => Ok(None),
            1 => Ok(Some(T::decode(input)?)),
            b => {
                Err(CodecError { what: "Option<_>", reason: format!("tag {b:#04x} is neither 0 (None) nor 1 (Some)") })
            }
        }
    }
}

/// Tuples: the fields in order, no header.
macro_rules! tuple_codec {
    ($($name:ident)+) => {
        impl<$($name: Codec),+> Codec for ($($name,)+) {
            const NAME: &'static str = "tuple";
            const MIN_BYTES: usize = 0 $(+ $name::MIN_BYTES)+;
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode(out);)+
            }
            fn decode(input: &mut Decoder<'_>) -> Result<Self, CodecError> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    };
}
tuple_codec!(A);
tuple_codec!(A B);
tuple_codec!(A B C);
tuple_codec!(A B C D);

#[cfg(test)]
mod tests {
    use super::*;

    /// D1 for one value.
    fn round<T: Codec + PartialEq + std::fmt::Debug>(v: T) {
        assert_eq!(from_bytes::<T>(&to_bytes(&v)).unwrap(), v);
    }

    #[test]
    fn round_trips() {
        round(7i64);
        round(-3i8);
        round(u128::MAX);
        round(1.5f64);
        round(usize::MAX);
        round(true);
        round(());
        round(String::from("héllo"));
        round(vec![1u8, 2, 3]);
        round(vec![String::new(), "x".into()]);
        round(Some((1u16, false)));
        round(None::<u8>);
        round((1u8, 2i32, "three".to_string(), vec![4.0f64]));
    }

    #[test]
    fn errors_name_the_type() {
        let e = from_bytes::<String>(&[5, 0, 0, 0, b'a']).unwrap_err();
        assert_eq!(e.what, "String");
        let e = from_bytes::<bool>(&[2]).unwrap_err();
        assert!(e.reason.contains("neither"), "{e}");
        let e = from_bytes::<u32>(&[1, 2, 3, 4, 5]).unwrap_err();
        assert!(e.reason.contains("trailing"), "{e}");
        let e = from_bytes::<i64>(&[1, 2]).unwrap_err();
        assert_eq!(e.to_string(), "bad i64: needs 8 bytes, 2 left");
    }

    #[test]
    fn forged_lengths_do_not_allocate() {
        // D2: u32::MAX items claimed, 4 bytes present.
        let e = from_bytes::<Vec<u64>>(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).unwrap_err();
        assert!(e.reason.contains("exceeds"), "{e}");
        let v = from_bytes::<Vec<()>>(&[3, 0, 0, 0]).unwrap();
        assert_eq!(v.len(), 3);
    }
}
