//! Values as text, shared by the XML and JSON encodings: enumeration and mask
//! names, hex, ISO-8601 date-times, and placeholders.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::enums::{ValueNames, parse_u32};
use super::placeholders::Placeholders;
use crate::secret::SecretBytes;
use crate::ttlv::{ItemType, Value};

/// Parses the text form of a value of type `ty` (not Structure).
/// `names` says how to read names for Enumeration and Integer values.
pub(crate) fn parse_value(
    ty: ItemType,
    text: &str,
    names: Option<ValueNames>,
    placeholders: &mut Placeholders,
) -> Result<Value, String> {
    // `$$…` is a text that itself starts with `$` (see `format_value`).
    if ty == ItemType::TextString
        && let Some(literal) = text.strip_prefix("$$")
    {
        return Ok(Value::TextString(format!("${literal}")));
    }
    if text.starts_with('$')
        && let Some(v) = placeholders.resolve(text, ty)?
    {
        return Ok(v);
    }
    let bad = || format!("invalid {} value {:?}", ty.name(), text);
    Ok(match ty {
        ItemType::Structure => return Err("a Structure has no value text".into()),
        ItemType::Integer => Value::Integer(parse_integer(text, names).ok_or_else(bad)?),
        ItemType::LongInteger => Value::LongInteger(parse_i64(text).ok_or_else(bad)?),
        ItemType::BigInteger => Value::BigInteger(parse_big_integer(text)?),
        ItemType::Enumeration => Value::Enumeration(parse_enum(text, names).ok_or_else(bad)?),
        ItemType::Boolean => Value::Boolean(match text {
            "true" => true,
            "false" => false,
            _ => match parse_u64_hex(text) {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(bad()),
            },
        }),
        ItemType::TextString => Value::TextString(text.to_owned()),
        ItemType::ByteString => Value::ByteString(
            parse_hex(text)
                .ok_or_else(|| format!("invalid ByteString value: not hex ({} characters)", text.len()))?,
        ),
        ItemType::DateTime => Value::DateTime(parse_datetime(text, false).ok_or_else(bad)?),
        ItemType::DateTimeExtended => Value::DateTimeExtended(parse_datetime(text, true).ok_or_else(bad)?),
        ItemType::Interval => Value::Interval(parse_u32(text).ok_or_else(bad)?),
    })
}

/// The text form of a non-Structure value; `mask_sep` joins mask bit names
/// (space in XML, `|` in JSON). Placeholders read through `placeholders` are
/// written as placeholders; a literal text starting with `$` as `$$…`.
pub(crate) fn format_value(
    value: &Value,
    names: Option<ValueNames>,
    placeholders: &Placeholders,
    mask_sep: &str,
) -> String {
    if let Some(p) = placeholders.text_for(value) {
        return p;
    }
    match value {
        Value::Structure(_) => String::new(),
        Value::Integer(v) => match names {
            Some(ValueNames::Mask(def)) => {
                let s = def.format(*v as u32);
                if mask_sep == " " {
                    s
                } else {
                    s.replace(' ', mask_sep)
                }
            }
            _ => v.to_string(),
        },
        Value::LongInteger(v) => v.to_string(),
        Value::BigInteger(b) | Value::ByteString(b) => hex::encode(b.expose()),
        Value::Enumeration(v) => match names.and_then(|n| n.name(*v)) {
            Some(n) => n.to_owned(),
            None => format!("0x{v:08X}"),
        },
        Value::Boolean(v) => v.to_string(),
        // A text that starts with `$` but is no placeholder this table read
        // (text from a binary capture, say) is written with one more `$`, so
        // that reading it back gives the same text and not a placeholder.
        Value::TextString(s) if s.starts_with('$') && !placeholders.is_text_sentinel(s) => format!("${s}"),
        Value::TextString(s) => s.clone(),
        Value::DateTime(t) => format_datetime(*t, false),
        Value::DateTimeExtended(t) => format_datetime(*t, true),
        Value::Interval(v) => v.to_string(),
    }
}

fn parse_integer(text: &str, names: Option<ValueNames>) -> Option<i32> {
    if let Ok(v) = text.parse::<i32>() {
        return Some(v);
    }
    if let Some(v) = hex_u32(text) {
        return Some(v as i32);
    }
    match names {
        Some(ValueNames::Mask(def)) => def.parse(&text.replace('|', " ")).map(|m| m as i32),
        _ => None,
    }
}

fn parse_enum(text: &str, names: Option<ValueNames>) -> Option<u32> {
    if let Some(v) = names.and_then(|n| n.value(text)) {
        return Some(v);
    }
    parse_u32(text)
}

fn hex_u32(text: &str) -> Option<u32> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))?;
    if hex.is_empty() || hex.len() > 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

fn parse_u64_hex(text: &str) -> Option<u64> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))?;
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn parse_i64(text: &str) -> Option<i64> {
    text.parse::<i64>()
        .ok()
        .or_else(|| parse_u64_hex(text).map(|v| v as i64))
}

fn parse_hex(text: &str) -> Option<SecretBytes> {
    hex::decode(text).ok().map(SecretBytes::new)
}

/// Big integers are two's complement, big-endian; TTLV wants a multiple of 8
/// bytes, so shorter forms are sign-extended (the value stays the same).
fn parse_big_integer(text: &str) -> Result<SecretBytes, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let bad = || format!("invalid BigInteger value: not hex ({} characters)", text.len());
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut padded = String::with_capacity(digits.len() + 1);
    if digits.len() % 2 == 1 {
        padded.push('0');
    }
    padded.push_str(digits);
    let bytes = hex::decode(&padded).map_err(|_| bad())?;
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xFF
    } else {
        0x00
    };
    let pad = (8 - bytes.len() % 8) % 8;
    let mut out = vec![fill; pad];
    out.extend_from_slice(&bytes);
    Ok(SecretBytes::new(out))
}

/// ISO-8601 (`2012-04-27T08:12:24+00:00`) or `0x` hex seconds (microseconds for
/// Date-Time Extended).
fn parse_datetime(text: &str, extended: bool) -> Option<i64> {
    if let Some(v) = parse_u64_hex(text) {
        return Some(v as i64);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let secs = t.unix_timestamp();
    let nanos = t.nanosecond();
    if extended {
        if nanos % 1000 != 0 {
            return None;
        }
        secs.checked_mul(1_000_000)?.checked_add(i64::from(nanos / 1000))
    } else {
        (nanos == 0).then_some(secs)
    }
}

/// ISO-8601 in UTC as the OASIS files write it, or `0x` hex when the time is
/// outside the years 0000–9999 that ISO-8601 can show.
fn format_datetime(v: i64, extended: bool) -> String {
    let (secs, micros) = if extended {
        (v.div_euclid(1_000_000), v.rem_euclid(1_000_000))
    } else {
        (v, 0)
    };
    let hex = || format!("0x{:016X}", v as u64);
    let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) else {
        return hex();
    };
    if !(0..=9999).contains(&t.year()) {
        return hex();
    }
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if extended {
        format!("{base}.{micros:06}+00:00")
    } else {
        format!("{base}+00:00")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::enums::{CryptographicUsageMask, Operation};

    fn parse(ty: ItemType, text: &str, names: Option<ValueNames>) -> Result<Value, String> {
        parse_value(ty, text, names, &mut Placeholders::new())
    }

    #[test]
    fn datetimes_round_trip_as_iso_or_hex() {
        let v = parse(ItemType::DateTime, "2012-04-27T08:12:24+00:00", None).unwrap();
        assert_eq!(v, Value::DateTime(1_335_514_344));
        assert_eq!(
            format_value(&v, None, &Placeholders::new(), " "),
            "2012-04-27T08:12:24+00:00"
        );
        assert_eq!(
            parse(ItemType::DateTime, "2012-04-27T10:12:24+02:00", None).unwrap(),
            v
        );
        assert_eq!(
            parse(ItemType::DateTime, "2012-04-27T08:12:24Z", None).unwrap(),
            v
        );
        assert!(parse(ItemType::DateTime, "2012-04-27T08:12:24.5Z", None).is_err());
        for t in [i64::MIN, -1, i64::MAX, 253_402_300_800] {
            let s = format_datetime(t, false);
            assert_eq!(parse_datetime(&s, false), Some(t), "{s}");
        }
        let s = format_datetime(1_335_514_344_000_123, true);
        assert_eq!(s, "2012-04-27T08:12:24.000123+00:00");
        assert_eq!(parse_datetime(&s, true), Some(1_335_514_344_000_123));
    }

    #[test]
    fn integers_enums_and_masks() {
        let mask = Some(ValueNames::Mask(&CryptographicUsageMask::DEF));
        assert_eq!(
            parse(ItemType::Integer, "Decrypt   Encrypt", mask).unwrap(),
            Value::Integer(12)
        );
        assert_eq!(
            parse(ItemType::Integer, "Decrypt|Encrypt", mask).unwrap(),
            Value::Integer(12)
        );
        assert_eq!(parse(ItemType::Integer, "-5", mask).unwrap(), Value::Integer(-5));
        assert_eq!(
            parse(ItemType::Integer, "0xFFFFFFFF", None).unwrap(),
            Value::Integer(-1)
        );
        assert!(parse(ItemType::Integer, "Encrypt", None).is_err());
        assert_eq!(
            format_value(&Value::Integer(12), mask, &Placeholders::new(), "|"),
            "Encrypt|Decrypt"
        );
        let ops = Some(ValueNames::Enum(&Operation::DEF));
        assert_eq!(
            parse(ItemType::Enumeration, "Create", ops).unwrap(),
            Value::Enumeration(1)
        );
        assert_eq!(
            parse(ItemType::Enumeration, "0x80000001", ops).unwrap(),
            Value::Enumeration(0x8000_0001)
        );
        assert!(parse(ItemType::Enumeration, "NoSuchOp", ops).is_err());
        assert_eq!(
            format_value(&Value::Enumeration(0x8000_0001), ops, &Placeholders::new(), " "),
            "0x80000001"
        );
    }

    #[test]
    fn big_integers_are_sign_extended_to_eight_bytes() {
        let v = parse(ItemType::BigInteger, "010001", None).unwrap();
        assert_eq!(
            v,
            Value::BigInteger(SecretBytes::new(vec![0, 0, 0, 0, 0, 1, 0, 1]))
        );
        let v = parse(ItemType::BigInteger, "ff01", None).unwrap();
        assert_eq!(
            v,
            Value::BigInteger(SecretBytes::new(vec![
                0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01
            ]))
        );
        let err = parse(ItemType::BigInteger, "secretzz", None).unwrap_err();
        assert!(!err.contains("secretzz"), "{err}");
        let err = parse(ItemType::ByteString, "abcdefgh", None).unwrap_err();
        assert!(!err.contains("abcdefgh"), "{err}");
    }
}
