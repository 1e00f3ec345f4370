//! msgpack encoding of [`Value`]s, the payload format of flag `0x80`.
//!
//! The writer picks the smallest encoding for every value, as the C++ (msgpack-c) and Python
//! writers do, so that our payloads are byte-identical to theirs: non-negative integers use
//! positive fixint or `uint8..64`, negative ones negative fixint or `int8..64`, strings of
//! 32..255 bytes use `str8`.
//!
//! The reader accepts every msgpack type, never trusts a length prefix for an allocation larger
//! than the input, limits nesting to [`MAX_DEPTH`] and never panics.

use crate::value::Value;

/// The deepest nesting of arrays and maps the reader accepts.
pub const MAX_DEPTH: usize = 128;

/// The most items an array or a map reserves room for before they are read; past that, its
/// vector grows as items actually arrive.
///
/// Bounding a reservation by the input left is not enough on its own: a header at each of the
/// [`MAX_DEPTH`] levels may claim 2^32 - 1 items, and each level would then reserve a
/// `Value` (32 bytes) per byte of input, 4 096 times the input in all (32 GiB for an 8 MiB
/// frame).
const MAX_RESERVE: usize = 1024;

/// Why a msgpack byte string could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgpackError {
    /// The input ended inside a value.
    #[error("msgpack input ends inside a value")]
    UnexpectedEof,
    /// The byte 0xc1, which msgpack reserves and never uses.
    #[error("reserved msgpack byte 0xc1 at offset {0}")]
    Reserved(usize),
    /// Arrays and maps nested deeper than [`MAX_DEPTH`].
    #[error("msgpack nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Bytes left over after the root value.
    #[error("{0} unexpected bytes after the msgpack value")]
    TrailingBytes(usize),
    /// A string, binary, array or map too long for msgpack (over 2^32 - 1).
    #[error("value too long for msgpack: {0} items or bytes")]
    TooLong(usize),
}

/// Appends the msgpack encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) -> Result<(), MsgpackError> {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Int(i) => write_int(*i, out),
        Value::UInt(u) => write_uint(*u, out),
        Value::F32(f) => {
            out.push(0xca);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::F64(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => write_str(s.as_bytes(), out)?,
        Value::Bin(b) => write_bin(b, out)?,
        Value::Array(items) => {
            write_len(items.len(), 0x90, 16, 0xdc, 0xdd, out)?;
            for item in items {
                encode_into(item, out)?;
            }
        }
        Value::Map(entries) => {
            write_len(entries.len(), 0x80, 16, 0xde, 0xdf, out)?;
            for (k, v) in entries {
                encode_into(k, out)?;
                encode_into(v, out)?;
            }
        }
        Value::Ext(tag, data) => write_ext(*tag, data, out)?,
    }
    Ok(())
}

/// The msgpack encoding of `value`.
pub fn encode(value: &Value) -> Result<Vec<u8>, MsgpackError> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Reads exactly one value that fills `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, MsgpackError> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.value(0)?;
    match bytes.len() - reader.pos {
        0 => Ok(value),
        n => Err(MsgpackError::TrailingBytes(n)),
    }
}

/// Writes an integer in the smallest msgpack form (unsigned forms for non-negative values).
pub fn write_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        write_uint(i as u64, out);
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= i64::from(i8::MIN) {
        out.push(0xd0);
        out.push(i as i8 as u8);
    } else if i >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

/// Writes a non-negative integer in the smallest msgpack form.
pub fn write_uint(u: u64, out: &mut Vec<u8>) {
    if u < 0x80 {
        out.push(u as u8);
    } else if u <= 0xff {
        out.push(0xcc);
        out.push(u as u8);
    } else if u <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

/// Writes a msgpack `str` (fixstr, str8, str16 or str32) holding `bytes`.
pub fn write_str(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), MsgpackError> {
    let n = bytes.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.push(0xd9);
        out.push(n as u8);
    } else {
        write_len(n, 0, 0, 0xda, 0xdb, out)?;
    }
    out.extend_from_slice(bytes);
    Ok(())
}

/// Writes a msgpack `bin` (bin8, bin16 or bin32).
pub fn write_bin(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), MsgpackError> {
    let n = bytes.len();
    if n <= 0xff {
        out.push(0xc4);
        out.push(n as u8);
    } else {
        write_len(n, 0, 0, 0xc5, 0xc6, out)?;
    }
    out.extend_from_slice(bytes);
    Ok(())
}

/// Writes a map header for `n` entries.
pub fn write_map_len(n: usize, out: &mut Vec<u8>) -> Result<(), MsgpackError> {
    write_len(n, 0x80, 16, 0xde, 0xdf, out)
}

/// Writes an array header for `n` items.
pub fn write_array_len(n: usize, out: &mut Vec<u8>) -> Result<(), MsgpackError> {
    write_len(n, 0x90, 16, 0xdc, 0xdd, out)
}

/// Writes a length header: the fix form (`fix | n`) when `n < fix_limit`, else the 16-bit or
/// 32-bit form.
fn write_len(
    n: usize,
    fix: u8,
    fix_limit: usize,
    tag16: u8,
    tag32: u8,
    out: &mut Vec<u8>,
) -> Result<(), MsgpackError> {
    if n < fix_limit {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(tag16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        let n32 = u32::try_from(n).map_err(|_| MsgpackError::TooLong(n))?;
        out.push(tag32);
        out.extend_from_slice(&n32.to_be_bytes());
    }
    Ok(())
}

fn write_ext(tag: i8, data: &[u8], out: &mut Vec<u8>) -> Result<(), MsgpackError> {
    let n = data.len();
    match n {
        1 => out.push(0xd4),
        2 => out.push(0xd5),
        4 => out.push(0xd6),
        8 => out.push(0xd7),
        16 => out.push(0xd8),
        _ if n <= 0xff => {
            out.push(0xc7);
            out.push(n as u8);
        }
        _ if n <= 0xffff => {
            out.push(0xc8);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            let n32 = u32::try_from(n).map_err(|_| MsgpackError::TooLong(n))?;
            out.push(0xc9);
            out.extend_from_slice(&n32.to_be_bytes());
        }
    }
    out.push(tag as u8);
    out.extend_from_slice(data);
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self.pos.checked_add(n).ok_or(MsgpackError::UnexpectedEof)?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(MsgpackError::UnexpectedEof)?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, MsgpackError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, MsgpackError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A 32-bit length. On a target whose `usize` is narrower, a length that does not fit
    /// cannot be satisfied by the input either: it reads as the end of the input.
    fn len32(&mut self) -> Result<usize, MsgpackError> {
        usize::try_from(self.u32()?).map_err(|_| MsgpackError::UnexpectedEof)
    }

    fn u64(&mut self) -> Result<u64, MsgpackError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Bytes left; every item of an array or map takes at least one, which bounds reservations
    /// (with [`MAX_RESERVE`]).
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn value(&mut self, depth: usize) -> Result<Value, MsgpackError> {
        let at = self.pos;
        let tag = self.u8()?;
        Ok(match tag {
            0x00..=0x7f => Value::Int(i64::from(tag)),
            0x80..=0x8f => self.map(usize::from(tag & 0x0f), depth)?,
            0x90..=0x9f => self.array_items(usize::from(tag & 0x0f), depth)?,
            0xa0..=0xbf => self.string(usize::from(tag & 0x1f))?,
            0xc0 => Value::Nil,
            0xc1 => return Err(MsgpackError::Reserved(at)),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = usize::from(self.u8()?);
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc5 => {
                let n = usize::from(self.u16()?);
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc6 => {
                let n = self.len32()?;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc7 => {
                let n = usize::from(self.u8()?);
                self.ext(n)?
            }
            0xc8 => {
                let n = usize::from(self.u16()?);
                self.ext(n)?
            }
            0xc9 => {
                let n = self.len32()?;
                self.ext(n)?
            }
            0xca => Value::F32(f32::from_bits(self.u32()?)),
            0xcb => Value::F64(f64::from_bits(self.u64()?)),
            0xcc => Value::Int(i64::from(self.u8()?)),
            0xcd => Value::Int(i64::from(self.u16()?)),
            0xce => Value::Int(i64::from(self.u32()?)),
            0xcf => Value::from(self.u64()?),
            0xd0 => Value::Int(i64::from(self.u8()? as i8)),
            0xd1 => Value::Int(i64::from(self.u16()? as i16)),
            0xd2 => Value::Int(i64::from(self.u32()? as i32)),
            0xd3 => Value::Int(self.u64()? as i64),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let n = usize::from(self.u8()?);
                self.string(n)?
            }
            0xda => {
                let n = usize::from(self.u16()?);
                self.string(n)?
            }
            0xdb => {
                let n = self.len32()?;
                self.string(n)?
            }
            0xdc => {
                let n = usize::from(self.u16()?);
                self.array_items(n, depth)?
            }
            0xdd => {
                let n = self.len32()?;
                self.array_items(n, depth)?
            }
            0xde => {
                let n = usize::from(self.u16()?);
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.len32()?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(i64::from(tag as i8)),
        })
    }

    fn string(&mut self, n: usize) -> Result<Value, MsgpackError> {
        let bytes = self.take(n)?;
        Ok(match std::str::from_utf8(bytes) {
            Ok(s) => Value::Str(s.to_owned()),
            Err(_) => Value::Bin(bytes.to_vec()),
        })
    }

    fn ext(&mut self, n: usize) -> Result<Value, MsgpackError> {
        let tag = self.u8()? as i8;
        Ok(Value::Ext(tag, self.take(n)?.to_vec()))
    }

    fn array_items(&mut self, n: usize, depth: usize) -> Result<Value, MsgpackError> {
        if depth >= MAX_DEPTH {
            return Err(MsgpackError::TooDeep);
        }
        let mut items = Vec::with_capacity(n.min(self.remaining()).min(MAX_RESERVE));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, MsgpackError> {
        if depth >= MAX_DEPTH {
            return Err(MsgpackError::TooDeep);
        }
        let mut entries = Vec::with_capacity(n.min(self.remaining() / 2).min(MAX_RESERVE));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn enc(v: impl Into<Value>) -> String {
        hex(&encode(&v.into()).unwrap())
    }

    #[test]
    fn integers_use_the_smallest_form() {
        assert_eq!(enc(0), "00");
        assert_eq!(enc(127), "7f");
        assert_eq!(enc(128), "cc80");
        assert_eq!(enc(255), "ccff");
        assert_eq!(enc(256), "cd0100");
        assert_eq!(enc(65536), "ce00010000");
        assert_eq!(enc(1u64 << 32), "cf0000000100000000");
        assert_eq!(enc(-1), "ff");
        assert_eq!(enc(-32), "e0");
        assert_eq!(enc(-33), "d0df");
        assert_eq!(enc(-129), "d1ff7f");
        assert_eq!(enc(-32769), "d2ffff7fff");
        assert_eq!(enc(-(1i64 << 40)), "d3ffffff0000000000");
        assert_eq!(enc(u64::MAX), "cfffffffffffffffff");
    }

    #[test]
    fn strings_and_bins() {
        assert_eq!(enc(""), "a0");
        assert_eq!(enc("a".repeat(31)), format!("bf{}", "61".repeat(31)));
        assert_eq!(enc("a".repeat(32)), format!("d920{}", "61".repeat(32)));
        assert_eq!(enc("a".repeat(256)), format!("da0100{}", "61".repeat(256)));
        assert_eq!(enc(vec![1u8, 2, 3]), "c403010203");
        assert_eq!(enc(1.5f64), "cb3ff8000000000000");
        assert_eq!(enc(1.5f32), "ca3fc00000");
    }

    #[test]
    fn every_integer_width_decodes_by_value() {
        for bytes in [
            &[0x2a][..],
            &[0xcc, 0x2a],
            &[0xcd, 0x00, 0x2a],
            &[0xce, 0, 0, 0, 0x2a],
            &[0xcf, 0, 0, 0, 0, 0, 0, 0, 0x2a],
            &[0xd0, 0x2a],
            &[0xd1, 0x00, 0x2a],
            &[0xd2, 0, 0, 0, 0x2a],
            &[0xd3, 0, 0, 0, 0, 0, 0, 0, 0x2a],
        ] {
            assert_eq!(decode(bytes).unwrap(), Value::Int(42), "{}", hex(bytes));
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(decode(&[]), Err(MsgpackError::UnexpectedEof));
        assert_eq!(decode(&[0xc1]), Err(MsgpackError::Reserved(0)));
        assert_eq!(decode(&[0xa3, b'a']), Err(MsgpackError::UnexpectedEof));
        assert_eq!(decode(&[0x80, 0x00]), Err(MsgpackError::TrailingBytes(1)));
        // A map that claims 4 billion entries in 5 bytes must not allocate for them.
        assert_eq!(
            decode(&[0xdf, 0xff, 0xff, 0xff, 0xff]),
            Err(MsgpackError::UnexpectedEof)
        );
        let deep = vec![0x91; MAX_DEPTH + 1];
        assert_eq!(decode(&deep), Err(MsgpackError::TooDeep));
    }

    #[test]
    fn invalid_utf8_str_reads_as_bytes() {
        assert_eq!(decode(&[0xa1, 0xff]).unwrap(), Value::Bin(vec![0xff]));
    }

    #[test]
    fn ext_round_trips() {
        for n in [1usize, 2, 3, 4, 8, 16, 17, 300] {
            let v = Value::Ext(-1, vec![7; n]);
            assert_eq!(decode(&encode(&v).unwrap()).unwrap(), v);
        }
    }
}
