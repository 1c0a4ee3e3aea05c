//! The canonical TTLV encoder: zero padding, exact lengths, nothing else to choose.

use super::frame::HEADER_LEN;
use super::value::{Item, Value};

/// Appends the encoding of `item` to `out`.
pub fn encode(item: &Item, out: &mut Vec<u8>) {
    let start = out.len();
    let tag = item.tag.0.to_be_bytes();
    out.extend_from_slice(&[tag[1], tag[2], tag[3], item.value.item_type().to_byte()]);
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let value_start = out.len();
    match &item.value {
        Value::Structure(items) => {
            for child in items {
                encode(child, out);
            }
        }
        Value::Integer(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::Enumeration(v) | Value::Interval(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::LongInteger(v) | Value::DateTime(v) | Value::DateTimeExtended(v) => {
            out.extend_from_slice(&v.to_be_bytes())
        }
        Value::Boolean(v) => out.extend_from_slice(&u64::from(*v).to_be_bytes()),
        Value::TextString(s) => out.extend_from_slice(s.as_bytes()),
        Value::ByteString(b) | Value::BigInteger(b) => out.extend_from_slice(b.expose()),
    }
    let length = out.len() - value_start;
    // Lengths above 4 GiB cannot be produced from input: messages are bounded by
    // `limits::MAX_MESSAGE_BYTES_CEILING` long before that.
    let length32 = u32::try_from(length).unwrap_or(u32::MAX);
    out[len_at..len_at + 4].copy_from_slice(&length32.to_be_bytes());
    let padded = length.div_ceil(8) * 8;
    out.resize(value_start + padded, 0);
    debug_assert_eq!(out.len() - start, HEADER_LEN + padded);
}

/// The encoding of `item` as a new buffer.
pub fn encode_to_vec(item: &Item) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(item));
    encode(item, &mut out);
    out
}

/// The number of bytes [`encode`] writes for `item`.
pub fn encoded_len(item: &Item) -> usize {
    let body = match &item.value {
        Value::Structure(items) => items.iter().map(encoded_len).sum(),
        Value::TextString(s) => s.len().div_ceil(8) * 8,
        Value::ByteString(b) | Value::BigInteger(b) => b.len().div_ceil(8) * 8,
        _ => 8,
    };
    HEADER_LEN + body
}
