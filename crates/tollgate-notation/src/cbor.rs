//! The part of CBOR (RFC 8949) a COSE_Sign1 envelope uses, read strictly: definite lengths only,
//! integers to 64 bits, byte and text strings, arrays, maps, tags and the simple values `false`,
//! `true` and `null`. Bounded in depth and in items, so hostile input cannot exhaust the stack or
//! memory. Pure.

/// A decoded CBOR value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An unsigned or negative integer (major types 0 and 1), as far as `i128` holds it.
    Int(i128),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
    /// An array.
    Array(Vec<Value>),
    /// A map, its pairs in the order written.
    Map(Vec<(Value, Value)>),
    /// A tag and its content.
    Tag(u64, Box<Value>),
    /// `false` or `true`.
    Bool(bool),
    /// `null`.
    Null,
}

impl Value {
    /// The value of `key` in a map.
    pub fn get(&self, key: &Value) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Nesting deeper than this is refused.
const MAX_DEPTH: usize = 16;
/// More items (array elements plus map pairs, over the whole document) than this are refused.
const MAX_ITEMS: usize = 4096;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    items: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("CBOR ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], String> {
        let n = usize::try_from(n).map_err(|_| "CBOR length too large")?;
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or("CBOR ends early")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// The argument of an initial byte's additional information.
    fn argument(&mut self, info: u8) -> Result<u64, String> {
        let n = |r: &mut Self, len: u64| -> Result<u64, String> {
            Ok(r.take(len)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
        };
        match info {
            0..=23 => Ok(u64::from(info)),
            24 => n(self, 1),
            25 => n(self, 2),
            26 => n(self, 4),
            27 => n(self, 8),
            31 => Err("indefinite-length CBOR items are not accepted in an envelope".into()),
            _ => Err(format!("reserved CBOR additional information {info}")),
        }
    }

    fn count(&mut self, n: u64) -> Result<usize, String> {
        let n = usize::try_from(n).map_err(|_| "CBOR item count too large")?;
        self.items = self.items.checked_add(n).filter(|i| *i <= MAX_ITEMS).ok_or("too many CBOR items")?;
        Ok(n)
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("CBOR nested too deeply".into());
        }
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        if major == 7 {
            return match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                _ => Err(format!("CBOR simple value or float {info} is not accepted in an envelope")),
            };
        }
        let arg = self.argument(info)?;
        Ok(match major {
            0 => Value::Int(i128::from(arg)),
            1 => Value::Int(-1 - i128::from(arg)),
            2 => Value::Bytes(self.take(arg)?.to_vec()),
            3 => Value::Text(String::from_utf8(self.take(arg)?.to_vec()).map_err(|_| "CBOR text is not UTF-8")?),
            4 => {
                let n = self.count(arg)?;
                let mut items = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                let n = self.count(arg)?;
                let mut pairs: Vec<(Value, Value)> = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    let k = self.value(depth + 1)?;
                    let v = self.value(depth + 1)?;
                    // A duplicate key would let two readers see two different envelopes.
                    if pairs.iter().any(|(seen, _)| *seen == k) {
                        return Err("a CBOR map repeats a key".into());
                    }
                    pairs.push((k, v));
                }
                Value::Map(pairs)
            }
            6 => Value::Tag(arg, Box::new(self.value(depth + 1)?)),
            _ => return Err(format!("CBOR major type {major}")),
        })
    }
}

/// Decodes exactly one CBOR value that fills `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let mut r = Reader { bytes, at: 0, items: 0 };
    let v = r.value(0)?;
    if r.at != bytes.len() {
        return Err("bytes follow the CBOR value".into());
    }
    Ok(v)
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// COSE's `Sig_structure` for COSE_Sign1 (RFC 9052 §4.4), encoded: `["Signature1", protected,
/// external_aad (empty), payload]`, the bytes the signature covers.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_subset_decodes_and_the_rest_is_refused() {
        // {1: -7, "a": h'01', 2: [true, null]} tagged 18
        let bytes = [0xd2, 0xa3, 0x01, 0x26, 0x61, 0x61, 0x41, 0x01, 0x02, 0x82, 0xf5, 0xf6];
        let v = decode(&bytes).unwrap();
        let Value::Tag(18, inner) = v else { panic!("{v:?}") };
        assert_eq!(inner.get(&Value::Int(1)), Some(&Value::Int(-7)));
        assert_eq!(inner.get(&Value::Text("a".into())), Some(&Value::Bytes(vec![1])));
        for bad in [
            &[0x9f, 0xff][..],               // indefinite array
            &[0xa2, 0x01, 0x01, 0x01, 0x02], // duplicate key
            &[0x42, 0x01],                   // short byte string
            &[0xf9, 0x00, 0x00],             // half float
            &[0x01, 0x01],                   // trailing bytes
            &[0x62, 0xff, 0xfe],             // text that is not UTF-8
        ] {
            assert!(decode(bad).is_err(), "{bad:02x?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n(0x81u8, 64).chain([0x00]).collect();
        assert!(decode(&deep).is_err(), "too deep");
        let wide = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode(&wide).is_err(), "a huge declared count allocates nothing");
    }

    #[test]
    fn the_sig_structure_is_rfc_9052s() {
        let s = sig_structure(&[0xa1, 0x01, 0x26], b"hi");
        let v = decode(&s).unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Text("Signature1".into()),
                Value::Bytes(vec![0xa1, 0x01, 0x26]),
                Value::Bytes(vec![]),
                Value::Bytes(b"hi".to_vec()),
            ])
        );
    }
}
