//! The strict TTLV decoder.

use super::DecodeLimits;
use super::error::{DecodeError, DecodeErrorKind};
use super::frame::HEADER_LEN;
use super::value::{Item, ItemType, Tag, Value};
use crate::secret::SecretBytes;

/// A bounded view of the input: a sub-reader made by [`Reader::sub`] can never read
/// past the end its parent gave it.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the whole message, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
        }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        let base = self.offset();
        let bytes = self.take(n)?;
        Some(Reader {
            buf: bytes,
            pos: 0,
            base,
        })
    }
}

/// Decodes one message under a set of limits; counts items across the message.
pub struct Decoder {
    limits: DecodeLimits,
    items: usize,
    path: Vec<Tag>,
}

/// Decodes exactly one top-level item filling `buf`, with the default limits.
pub fn decode(buf: &[u8]) -> Result<Item, DecodeError> {
    decode_with(buf, &DecodeLimits::default())
}

/// Decodes exactly one top-level item filling `buf`.
pub fn decode_with(buf: &[u8], limits: &DecodeLimits) -> Result<Item, DecodeError> {
    Decoder::new(*limits).decode(buf)
}

impl Decoder {
    pub fn new(limits: DecodeLimits) -> Self {
        Decoder {
            limits,
            items: 0,
            path: Vec::new(),
        }
    }

    pub fn decode(mut self, buf: &[u8]) -> Result<Item, DecodeError> {
        if buf.len() > self.limits.max_message_bytes {
            return Err(DecodeError::new(
                DecodeErrorKind::MessageTooLarge {
                    length: buf.len(),
                    max: self.limits.max_message_bytes,
                },
                0,
                &[],
            ));
        }
        let mut r = Reader::new(buf);
        let item = self.item(&mut r, 0)?;
        if r.remaining() != 0 {
            return Err(DecodeError::new(
                DecodeErrorKind::TrailingBytes {
                    count: r.remaining(),
                },
                r.offset(),
                &[],
            ));
        }
        Ok(item)
    }

    fn err(&self, kind: DecodeErrorKind, offset: usize) -> DecodeError {
        DecodeError::new(kind, offset, &self.path)
    }

    fn item(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<Item, DecodeError> {
        let start = r.offset();
        self.items += 1;
        if self.items > self.limits.max_items_per_message {
            return Err(self.err(
                DecodeErrorKind::TooManyItems {
                    max: self.limits.max_items_per_message,
                },
                start,
            ));
        }
        let available = r.remaining();
        let header = r.take(HEADER_LEN).ok_or_else(|| {
            self.err(
                DecodeErrorKind::Truncated {
                    needed: HEADER_LEN,
                    available,
                },
                start,
            )
        })?;
        let tag = Tag(u32::from_be_bytes([0, header[0], header[1], header[2]]));
        self.path.push(tag);
        let result = self.item_body(r, depth, start, header);
        self.path.pop();
        result.map(|value| Item { tag, value })
    }

    fn item_body(
        &mut self,
        r: &mut Reader<'_>,
        depth: usize,
        start: usize,
        header: &[u8],
    ) -> Result<Value, DecodeError> {
        let item_type = ItemType::from_byte(header[3])
            .ok_or_else(|| self.err(DecodeErrorKind::UnknownType(header[3]), start))?;
        let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let bad_length = || DecodeErrorKind::BadLength { item_type, length };

        // Check the declared length against the type and against what is left in the
        // enclosing structure before anything is allocated.
        if item_type
            .fixed_len()
            .is_some_and(|fixed| length as usize != fixed)
        {
            return Err(self.err(bad_length(), start));
        }
        match item_type {
            ItemType::Structure if !length.is_multiple_of(8) => {
                return Err(self.err(bad_length(), start));
            }
            ItemType::BigInteger if length == 0 || !length.is_multiple_of(8) => {
                return Err(self.err(bad_length(), start));
            }
            _ => {}
        }
        let length = length as usize;
        let padded = length.div_ceil(8).saturating_mul(8);
        if padded > r.remaining() {
            let kind = if r.base == 0 && depth == 0 {
                DecodeErrorKind::Truncated {
                    needed: padded,
                    available: r.remaining(),
                }
            } else {
                DecodeErrorKind::LengthOverrun {
                    length: length as u64,
                    available: r.remaining(),
                }
            };
            return Err(self.err(kind, start));
        }
        let mut body = match r.sub(padded) {
            Some(body) => body,
            None => {
                return Err(self.err(
                    DecodeErrorKind::Truncated {
                        needed: padded,
                        available: r.remaining(),
                    },
                    start,
                ));
            }
        };

        if item_type == ItemType::Structure {
            return self
                .structure(&mut body, depth, start)
                .map(Value::Structure);
        }

        let value_bytes = body.take(length).unwrap_or_default();
        let padding = body.take(padded - length).unwrap_or_default();
        if padding.iter().any(|b| *b != 0) {
            return Err(self.err(DecodeErrorKind::NonZeroPadding, start));
        }
        let be4 = |b: &[u8]| -> [u8; 4] { [b[0], b[1], b[2], b[3]] };
        let be8 = |b: &[u8]| -> [u8; 8] { [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]] };
        Ok(match item_type {
            ItemType::Integer => Value::Integer(i32::from_be_bytes(be4(value_bytes))),
            ItemType::Enumeration => Value::Enumeration(u32::from_be_bytes(be4(value_bytes))),
            ItemType::Interval => Value::Interval(u32::from_be_bytes(be4(value_bytes))),
            ItemType::LongInteger => Value::LongInteger(i64::from_be_bytes(be8(value_bytes))),
            ItemType::DateTime => Value::DateTime(i64::from_be_bytes(be8(value_bytes))),
            ItemType::DateTimeExtended => {
                Value::DateTimeExtended(i64::from_be_bytes(be8(value_bytes)))
            }
            ItemType::Boolean => match u64::from_be_bytes(be8(value_bytes)) {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                other => return Err(self.err(DecodeErrorKind::InvalidBoolean(other), start)),
            },
            ItemType::TextString => match std::str::from_utf8(value_bytes) {
                Ok(s) => Value::TextString(s.to_owned()),
                Err(_) => return Err(self.err(DecodeErrorKind::InvalidUtf8, start)),
            },
            ItemType::ByteString => Value::ByteString(SecretBytes::from_slice(value_bytes)),
            ItemType::BigInteger => Value::BigInteger(SecretBytes::from_slice(value_bytes)),
            ItemType::Structure => unreachable_structure(),
        })
    }

    fn structure(
        &mut self,
        body: &mut Reader<'_>,
        depth: usize,
        start: usize,
    ) -> Result<Vec<Item>, DecodeError> {
        if depth + 1 > self.limits.max_depth {
            return Err(self.err(
                DecodeErrorKind::TooDeep {
                    max: self.limits.max_depth,
                },
                start,
            ));
        }
        let mut items = Vec::new();
        while body.remaining() > 0 {
            if items.len() >= self.limits.max_items_per_structure {
                return Err(self.err(
                    DecodeErrorKind::TooManyItems {
                        max: self.limits.max_items_per_structure,
                    },
                    body.offset(),
                ));
            }
            items.push(self.item(body, depth + 1)?);
        }
        Ok(items)
    }
}

/// Structures return before the scalar match; this arm exists only to keep the
/// match exhaustive without a panic.
fn unreachable_structure() -> Value {
    Value::Structure(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ttlv::encode_to_vec;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    #[test]
    fn decodes_spec_examples() {
        // KMIP 1.x spec, section 9.1.2 examples.
        let i = decode(&hex("42002002000000040000000800000000")).unwrap();
        assert_eq!(i, Item::new(Tag(0x420020), Value::Integer(8)));
        let i = decode(&hex("420020030000000801B69B4BA5749200")).unwrap();
        assert_eq!(i.value, Value::LongInteger(123_456_789_000_000_000));
        let i = decode(&hex("4200200600000008 0000000000000001")).unwrap();
        assert_eq!(i.value, Value::Boolean(true));
        let i = decode(&hex("42002007 0000000B 48656C6C6F20576F726C640000000000")).unwrap();
        assert_eq!(i.value, Value::TextString("Hello World".into()));
        let i = decode(&hex("42002008 00000003 0102030000000000")).unwrap();
        assert_eq!(i.value, Value::ByteString(SecretBytes::new(vec![1, 2, 3])));
        let i = decode(&hex("42002009 00000008 0000000047DA67F8")).unwrap();
        assert_eq!(i.value, Value::DateTime(0x47DA67F8));
        let i = decode(&hex("4200200A 00000004 000D2F0000000000")).unwrap();
        assert_eq!(i.value, Value::Interval(864_000));
        let s = hex(
            "42002001 00000020 42000405 00000004 000000FE00000000 42000502 00000004 0000FFFF00000000",
        );
        let i = decode(&s).unwrap();
        assert_eq!(i.children().len(), 2);
        assert_eq!(i.children()[0].value, Value::Enumeration(254));
        assert_eq!(i.children()[1].value, Value::Integer(255 * 257));
        assert_eq!(encode_to_vec(&i), s);
    }

    #[test]
    fn refuses_bad_padding() {
        let e = decode(&hex("42002002000000040000000800000001")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::NonZeroPadding);
        let e = decode(&hex("42002007 00000001 4100000000000001")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::NonZeroPadding);
    }

    #[test]
    fn refuses_wrong_fixed_lengths() {
        let e = decode(&hex("4200200200000008 0000000000000008")).unwrap_err();
        assert!(matches!(
            e.kind,
            DecodeErrorKind::BadLength {
                item_type: ItemType::Integer,
                length: 8
            }
        ));
        let e = decode(&hex("4200200300000004 0000000100000000")).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::BadLength { .. }));
        let e = decode(&hex("4200200400000004 0000000100000000")).unwrap_err();
        assert!(matches!(
            e.kind,
            DecodeErrorKind::BadLength {
                item_type: ItemType::BigInteger,
                ..
            }
        ));
        let e = decode(&hex("4200200100000004 00000001 00000000")).unwrap_err();
        assert!(matches!(
            e.kind,
            DecodeErrorKind::BadLength {
                item_type: ItemType::Structure,
                ..
            }
        ));
    }

    #[test]
    fn refuses_bad_booleans_text_and_types() {
        let e = decode(&hex("4200200600000008 0000000000000002")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidBoolean(2));
        let e = decode(&hex("4200200700000002 C328000000000000")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::InvalidUtf8);
        let e = decode(&hex("4200200C00000000")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::UnknownType(0x0C));
    }

    #[test]
    fn reports_truncation_and_overrun_with_offset_and_path() {
        let e = decode(&hex("420020020000000400000008")).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::Truncated { .. }));
        let e = decode(&hex("4200780100000008 42000207 7FFFFFFF")).unwrap_err();
        assert!(matches!(
            e.kind,
            DecodeErrorKind::LengthOverrun {
                length: 0x7FFF_FFFF,
                ..
            }
        ));
        assert_eq!(e.offset, 8);
        assert_eq!(e.path, vec![Tag(0x420078), Tag(0x420002)]);
        let e = decode(&hex("42002002000000040000000800000000 00")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::TrailingBytes { count: 1 });
        let e = decode(&hex("4200")).unwrap_err();
        assert!(matches!(
            e.kind,
            DecodeErrorKind::Truncated {
                needed: 8,
                available: 2
            }
        ));
    }

    #[test]
    fn refuses_deep_nesting_without_recursing_further() {
        let depth = 100_000usize;
        let mut buf = Vec::with_capacity(depth * 8);
        for i in 0..depth {
            let len = ((depth - i - 1) * 8) as u32;
            buf.extend_from_slice(&[0x42, 0x00, 0x01, 0x01]);
            buf.extend_from_slice(&len.to_be_bytes());
        }
        let limits = DecodeLimits {
            max_message_bytes: usize::MAX,
            ..DecodeLimits::default()
        };
        let e = decode_with(&buf, &limits).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::TooDeep { .. }));
    }

    #[test]
    fn refuses_too_many_items() {
        let limits = DecodeLimits {
            max_items_per_structure: 2,
            ..DecodeLimits::default()
        };
        let s = hex("4200010100000018 4200020100000000 4200020100000000 4200020100000000");
        let e = decode_with(&s, &limits).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::TooManyItems { max: 2 }));
        let limits = DecodeLimits {
            max_items_per_message: 3,
            ..DecodeLimits::default()
        };
        let e = decode_with(&s, &limits).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::TooManyItems { max: 3 }));
    }

    #[test]
    fn refuses_oversized_message() {
        let limits = DecodeLimits {
            max_message_bytes: 8,
            ..DecodeLimits::default()
        };
        let e = decode_with(&hex("42002002000000040000000800000000"), &limits).unwrap_err();
        assert!(matches!(
            e.kind,
            DecodeErrorKind::MessageTooLarge { length: 16, max: 8 }
        ));
    }
}
