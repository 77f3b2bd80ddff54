//! A minimal CBOR (RFC 8949) reader for COSE_Sign1 envelopes (RFC 9052),
//! and the one encoder COSE verification needs (`Sig_structure`).
//!
//! Written here rather than taken from a crate because a Notary Project
//! COSE envelope uses a small subset (integers, byte and text strings,
//! arrays, maps, tags) and the input is hostile: every length is checked
//! against the bytes that are left before anything is allocated, nesting is
//! bounded, and indefinite lengths and floats (which no envelope carries)
//! are refused.

/// Nesting deeper than this is refused (a COSE envelope nests 3 levels).
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Uint(u64),
    /// A negative integer `-1 - n`, kept as `n` so no value overflows.
    Nint(u64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Tag(u64, Box<Value>),
    Bool(bool),
    Null,
}

impl Value {
    /// The integer value for small integers (COSE labels and algorithms).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Uint(n) => i64::try_from(*n).ok(),
            Value::Nint(n) => i64::try_from(*n).ok().map(|n| -1 - n),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The entry of a map under an integer label.
    pub fn get_int(&self, label: i64) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_i64() == Some(label))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The entry of a map under a text label.
    pub fn get_text(&self, label: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_text() == Some(label))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CborError {
    #[error("truncated CBOR")]
    Truncated,
    #[error("CBOR nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("unsupported CBOR item (major type {major}, info {info})")]
    Unsupported { major: u8, info: u8 },
    #[error("CBOR text is not UTF-8")]
    BadText,
    #[error("{0} bytes after the CBOR item")]
    Trailing(usize),
}

/// Decodes exactly one item from `bytes` (trailing bytes are an error).
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut reader = Reader { rest: bytes };
    let value = reader.item(0)?;
    if !reader.rest.is_empty() {
        return Err(CborError::Trailing(reader.rest.len()));
    }
    Ok(value)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        if self.rest.len() < n {
            return Err(CborError::Truncated);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// The argument of an item head: the value of `info` or the 1, 2, 4 or
    /// 8 bytes after it.
    fn argument(&mut self, major: u8, info: u8) -> Result<u64, CborError> {
        let width = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Err(CborError::Unsupported { major, info }),
        };
        Ok(self
            .take(width)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A count of items or bytes, which cannot exceed the bytes left (each
    /// item takes at least one byte), so it is safe to reserve.
    fn count(&mut self, major: u8, info: u8) -> Result<usize, CborError> {
        let n = self.argument(major, info)?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.rest.len())
            .ok_or(CborError::Truncated)
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let head = self.take(1)?[0];
        let (major, info) = (head >> 5, head & 0x1f);
        Ok(match major {
            0 => Value::Uint(self.argument(major, info)?),
            1 => Value::Nint(self.argument(major, info)?),
            2 => {
                let n = self.count(major, info)?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.count(major, info)?;
                let text = std::str::from_utf8(self.take(n)?).map_err(|_| CborError::BadText)?;
                Value::Text(text.to_owned())
            }
            4 => {
                let n = self.count(major, info)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                let n = self.count(major, info)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.item(depth + 1)?;
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Value::Map(entries)
            }
            6 => {
                let tag = self.argument(major, info)?;
                Value::Tag(tag, Box::new(self.item(depth + 1)?))
            }
            7 => match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 => Value::Null,
                _ => return Err(CborError::Unsupported { major, info }),
            },
            _ => unreachable!("a 3-bit major type"),
        })
    }
}

/// Appends a CBOR item head of `major` type with argument `n`.
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

/// `Sig_structure` for a COSE_Sign1 (RFC 9052 §4.4): the bytes that were
/// signed: `["Signature1", protected, external_aad = h'', payload]`.
pub(crate) fn sig_structure1(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(protected.len() + payload.len() + 32);
    head(&mut out, 4, 4);
    head(&mut out, 3, 10);
    out.extend_from_slice(b"Signature1");
    head(&mut out, 2, protected.len() as u64);
    out.extend_from_slice(protected);
    head(&mut out, 2, 0);
    head(&mut out, 2, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// Encodes `v` (tests build COSE envelopes with it, as Notation writes them).
#[cfg(test)]
pub(crate) fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Uint(n) => head(out, 0, *n),
        Value::Nint(n) => head(out, 1, *n),
        Value::Bytes(b) => {
            head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Text(t) => {
            head(out, 3, t.len() as u64);
            out.extend_from_slice(t.as_bytes());
        }
        Value::Array(items) => {
            head(out, 4, items.len() as u64);
            items.iter().for_each(|i| encode(i, out));
        }
        Value::Map(entries) => {
            head(out, 5, entries.len() as u64);
            for (k, v) in entries {
                encode(k, out);
                encode(v, out);
            }
        }
        Value::Tag(t, inner) => {
            head(out, 6, *t);
            encode(inner, out);
        }
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Null => out.push(0xf6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_cose_subset() {
        // 18([h'A10126', {}, h'00', h'']) from RFC 9052 style
        let bytes = [0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0x41, 0x00, 0x40];
        let v = decode(&bytes).unwrap();
        let Value::Tag(18, inner) = v else {
            panic!("not tag 18")
        };
        let Value::Array(items) = *inner else {
            panic!()
        };
        assert_eq!(items.len(), 4);
        let protected = decode(items[0].as_bytes().unwrap()).unwrap();
        assert_eq!(protected.get_int(1).and_then(Value::as_i64), Some(-7));
    }

    #[test]
    fn sig_structure_matches_rfc_layout() {
        let s = sig_structure1(&[0xa1, 0x01, 0x26], b"hi");
        assert_eq!(
            s,
            [
                &[0x84, 0x6a][..],
                b"Signature1",
                &[0x43, 0xa1, 0x01, 0x26, 0x40, 0x42],
                b"hi"
            ]
            .concat()
        );
        let v = decode(&s).unwrap();
        assert!(matches!(v, Value::Array(ref a) if a.len() == 4));
    }

    #[test]
    fn hostile_input_fails_without_allocating() {
        // an array that claims 2^64-1 items, a byte string of 4 GiB
        assert_eq!(
            decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(CborError::Truncated)
        );
        assert_eq!(
            decode(&[0x5a, 0xff, 0xff, 0xff, 0xff, 0x00]),
            Err(CborError::Truncated)
        );
        // deep nesting
        let deep = vec![0x81; 10_000];
        assert_eq!(decode(&deep), Err(CborError::TooDeep));
        // indefinite length, floats, trailing bytes
        assert!(matches!(
            decode(&[0x9f, 0xff]),
            Err(CborError::Unsupported { .. })
        ));
        assert!(matches!(
            decode(&[0xf9, 0x3c, 0x00]),
            Err(CborError::Unsupported { .. })
        ));
        assert_eq!(decode(&[0x01, 0x02]), Err(CborError::Trailing(1)));
        assert_eq!(decode(&[0x62, 0xff, 0xfe]), Err(CborError::BadText));
    }
}
