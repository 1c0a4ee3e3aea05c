//! Placeholders of the OASIS test cases: `$UNIQUE_IDENTIFIER_0` (Text String),
//! `$NOW`, `$NOW-3600` (Date-Time), `$DATA_0` (Byte String). The cases are kept
//! in the repository, in `tests/data/kmip-test-cases`.
//!
//! A test file states what a server returns without knowing the identifiers and
//! times it will pick. A [`Placeholders`] table gives each placeholder one of two
//! meanings while a document is read:
//!
//! * **bound** — [`Placeholders::bind`] gave it a real value (taken, say, from an
//!   earlier server response); the reader substitutes that value (plus the
//!   offset, for `$NOW-3600`).
//! * **unbound** — the reader puts a *sentinel* in the tree: a value of the right
//!   type that survives TTLV encoding and that the writers map back to the
//!   placeholder text. Text strings are their own sentinel (the literal
//!   `$UNIQUE_IDENTIFIER_0`); byte strings are a fixed marker followed by the
//!   placeholder text; date-times are a per-name base far beyond year 9999 plus
//!   the offset, which is why those need the table that made them.
//!
//! A Text String that starts with `$` but is no placeholder read through the
//! table (text in a binary capture: `keyward ttlv decode` has read none) is
//! written as `$$…`, and `$$…` reads back as that text: bytes → XML/JSON →
//! bytes gives the same bytes whatever the strings hold. Byte-string and
//! date-time sentinels likewise stand for placeholders only in the table that
//! made them.
//!
//! So XML → tree → TTLV → tree → XML reproduces every placeholder, and
//! [`Placeholders::learn`] lets a harness bind them from a real response that
//! matches an expected one.

use std::collections::HashMap;

use crate::secret::SecretBytes;
use crate::ttlv::{Item, ItemType, Value};

/// Byte-string sentinels start with this marker, then the placeholder text.
const BYTES_MARKER: &[u8] = b"\xFFkeyward-placeholder:";
/// Date-time sentinels: name number `k` stands at `DATETIME_BASE + k * STRIDE`.
const DATETIME_BASE: i64 = 0x4B57_0000_0000_0000;
const DATETIME_STRIDE: i64 = 1 << 32;
/// Offsets a date-time sentinel can carry (`$NOW-3600`).
const MAX_OFFSET: i64 = (1 << 31) - 1;

/// A parsed placeholder reference: `$NAME`, `$NAME+N` or `$NAME-N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placeholder<'a> {
    /// The name without the `$`.
    pub name: &'a str,
    pub offset: i64,
}

impl<'a> Placeholder<'a> {
    /// Parses `$NAME[+-N]`; `None` if `text` is not of that form.
    pub fn parse(text: &'a str) -> Option<Placeholder<'a>> {
        let rest = text.strip_prefix('$')?;
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, tail) = rest.split_at(end);
        if name.is_empty() {
            return None;
        }
        let offset = match tail.as_bytes().first() {
            None => 0,
            Some(b'+' | b'-') => {
                let digits = &tail[1..];
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let n: i64 = digits.parse().ok()?;
                if tail.starts_with('-') { -n } else { n }
            }
            Some(_) => return None,
        };
        Some(Placeholder { name, offset })
    }

    /// The text form, `$NAME`, `$NAME+N` or `$NAME-N`.
    pub fn text(&self) -> String {
        match self.offset {
            0 => format!("${}", self.name),
            o if o > 0 => format!("${}+{}", self.name, o),
            o => format!("${}{}", self.name, o),
        }
    }
}

/// The binding table; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Placeholders {
    bound: HashMap<String, Value>,
    /// Names of unbound date-time placeholders, in the order met; the index is
    /// the sentinel's `k`.
    datetime_names: Vec<String>,
    /// Every placeholder name met while reading, in the order met.
    seen: Vec<String>,
}

impl Placeholders {
    pub fn new() -> Placeholders {
        Placeholders::default()
    }

    /// Gives `name` (without `$`) a real value; later reads substitute it.
    pub fn bind(&mut self, name: &str, value: Value) {
        self.bound.insert(name.to_owned(), value);
    }

    pub fn bound(&self, name: &str) -> Option<&Value> {
        self.bound.get(name)
    }

    /// Every placeholder name met while reading, in the order met.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// The names met while reading that have no value bound.
    pub fn unbound(&self) -> impl Iterator<Item = &str> {
        self.seen
            .iter()
            .map(String::as_str)
            .filter(|n| !self.bound.contains_key(*n))
    }

    fn note(&mut self, name: &str) {
        if !self.seen.iter().any(|n| n == name) {
            self.seen.push(name.to_owned());
        }
    }

    /// The value for placeholder text `text` in an item of type `ty`:
    /// `Ok(None)` if `text` is no placeholder, the bound value or a sentinel
    /// otherwise, an error if it cannot stand for a value of that type.
    pub(crate) fn resolve(&mut self, text: &str, ty: ItemType) -> Result<Option<Value>, String> {
        let Some(p) = Placeholder::parse(text) else {
            return Ok(None);
        };
        self.note(p.name);
        if let Some(v) = self.bound.get(p.name) {
            return offset_value(v, p.offset, ty).map(Some);
        }
        match ty {
            ItemType::TextString => Ok(Some(Value::TextString(text.to_owned()))),
            ItemType::ByteString => {
                let mut b = BYTES_MARKER.to_vec();
                b.extend_from_slice(p.text().as_bytes());
                Ok(Some(Value::ByteString(SecretBytes::new(b))))
            }
            ItemType::DateTime | ItemType::DateTimeExtended => {
                if p.offset.abs() > MAX_OFFSET {
                    return Err(format!("placeholder offset {} is too large", p.offset));
                }
                let k = match self.datetime_names.iter().position(|n| n == p.name) {
                    Some(k) => k,
                    None => {
                        self.datetime_names.push(p.name.to_owned());
                        self.datetime_names.len() - 1
                    }
                };
                let k = i64::try_from(k).map_err(|_| "too many placeholders".to_owned())?;
                let v = DATETIME_BASE + k * DATETIME_STRIDE + p.offset;
                Ok(Some(if ty == ItemType::DateTime {
                    Value::DateTime(v)
                } else {
                    Value::DateTimeExtended(v)
                }))
            }
            _ => Err(format!(
                "placeholder ${} is not bound and cannot stand for a {}",
                p.name,
                ty.name()
            )),
        }
    }

    /// Whether a Text String is the sentinel of a placeholder read, unbound,
    /// through this table (text strings are their own sentinel), rather than
    /// text that merely looks like one.
    pub(crate) fn is_text_sentinel(&self, text: &str) -> bool {
        Placeholder::parse(text)
            .is_some_and(|p| self.seen.iter().any(|n| n == p.name) && !self.bound.contains_key(p.name))
    }

    /// The placeholder a sentinel value stands for, for the writers.
    pub fn placeholder_of(&self, value: &Value) -> Option<Placeholder<'_>> {
        match value {
            Value::DateTime(v) | Value::DateTimeExtended(v) => {
                let rel = v.checked_sub(DATETIME_BASE)?;
                let k = (rel + DATETIME_STRIDE / 2).div_euclid(DATETIME_STRIDE);
                let offset = rel - k * DATETIME_STRIDE;
                let name = self.datetime_names.get(usize::try_from(k).ok()?)?;
                (offset.abs() <= MAX_OFFSET).then_some(Placeholder { name, offset })
            }
            _ => None,
        }
    }

    /// The placeholder text a byte string sentinel carries.
    pub fn bytes_placeholder(bytes: &[u8]) -> Option<&str> {
        let text = std::str::from_utf8(bytes.strip_prefix(BYTES_MARKER)?).ok()?;
        Placeholder::parse(text).map(|_| text)
    }

    /// The placeholder text for `value`, if it is a sentinel: the writers call
    /// this before formatting a Text String, Byte String or Date-Time.
    pub(crate) fn text_for(&self, value: &Value) -> Option<String> {
        match value {
            // Only a sentinel this table made: bytes that merely carry the
            // marker (a capture of keyward's own test traffic) are bytes.
            Value::ByteString(b) => Placeholders::bytes_placeholder(b.expose())
                .filter(|text| {
                    Placeholder::parse(text).is_some_and(|p| self.seen.iter().any(|n| n == p.name))
                })
                .map(str::to_owned),
            Value::DateTime(_) | Value::DateTimeExtended(_) => self.placeholder_of(value).map(|p| p.text()),
            _ => None,
        }
    }

    /// Walks `expected` (read with unbound placeholders) beside `actual` and binds
    /// each unbound placeholder to the value at the same place in `actual`.
    /// Structures are matched child by child while their tags agree. Returns
    /// how many placeholders it bound.
    pub fn learn(&mut self, expected: &Item, actual: &Item) -> usize {
        if expected.tag != actual.tag {
            return 0;
        }
        match (&expected.value, &actual.value) {
            (Value::Structure(e), Value::Structure(a)) => {
                e.iter().zip(a.iter()).map(|(e, a)| self.learn(e, a)).sum()
            }
            (Value::TextString(t), Value::TextString(_)) => match Placeholder::parse(t) {
                Some(p) if p.offset == 0 && !self.bound.contains_key(p.name) => {
                    self.bind(p.name, actual.value.clone());
                    1
                }
                _ => 0,
            },
            (Value::ByteString(b), Value::ByteString(_)) => {
                match Placeholders::bytes_placeholder(b.expose()).and_then(Placeholder::parse) {
                    Some(p) if p.offset == 0 && !self.bound.contains_key(p.name) => {
                        self.bind(p.name, actual.value.clone());
                        1
                    }
                    _ => 0,
                }
            }
            (Value::DateTime(_), Value::DateTime(a))
            | (Value::DateTimeExtended(_), Value::DateTimeExtended(a)) => {
                let Some(p) = self.placeholder_of(&expected.value) else {
                    return 0;
                };
                if self.bound.contains_key(p.name) {
                    return 0;
                }
                let (name, base) = (p.name.to_owned(), a.saturating_sub(p.offset));
                let v = if matches!(actual.value, Value::DateTime(_)) {
                    Value::DateTime(base)
                } else {
                    Value::DateTimeExtended(base)
                };
                self.bind(&name, v);
                1
            }
            _ => 0,
        }
    }
}

/// A bound value moved by a placeholder offset, checked against the item type.
fn offset_value(v: &Value, offset: i64, ty: ItemType) -> Result<Value, String> {
    if v.item_type() != ty {
        return Err(format!(
            "placeholder is bound to a {}, the item is a {}",
            v.item_type().name(),
            ty.name()
        ));
    }
    if offset == 0 {
        return Ok(v.clone());
    }
    let overflow = || "placeholder offset overflows the value".to_owned();
    Ok(match *v {
        Value::DateTime(t) => Value::DateTime(t.checked_add(offset).ok_or_else(overflow)?),
        Value::DateTimeExtended(t) => {
            let micros = offset.checked_mul(1_000_000).ok_or_else(overflow)?;
            Value::DateTimeExtended(t.checked_add(micros).ok_or_else(overflow)?)
        }
        Value::LongInteger(n) => Value::LongInteger(n.checked_add(offset).ok_or_else(overflow)?),
        Value::Integer(n) => {
            let o = i32::try_from(offset).map_err(|_| overflow())?;
            Value::Integer(n.checked_add(o).ok_or_else(overflow)?)
        }
        Value::Interval(n) => {
            let sum = i64::from(n).checked_add(offset).ok_or_else(overflow)?;
            Value::Interval(u32::try_from(sum).map_err(|_| overflow())?)
        }
        _ => return Err(format!("a {} placeholder cannot carry an offset", ty.name())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::tags;

    #[test]
    fn parses_placeholder_text() {
        assert_eq!(
            Placeholder::parse("$NOW"),
            Some(Placeholder {
                name: "NOW",
                offset: 0
            })
        );
        assert_eq!(
            Placeholder::parse("$NOW-3600"),
            Some(Placeholder {
                name: "NOW",
                offset: -3600
            })
        );
        assert_eq!(
            Placeholder::parse("$NOW+120").map(|p| p.text()),
            Some("$NOW+120".into())
        );
        assert_eq!(
            Placeholder::parse("$UNIQUE_IDENTIFIER_0").map(|p| p.name),
            Some("UNIQUE_IDENTIFIER_0")
        );
        for bad in ["NOW", "$", "$NOW-", "$NOW-x", "$NOW 1", "$-1"] {
            assert_eq!(Placeholder::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn unbound_placeholders_become_sentinels_that_map_back() {
        let mut p = Placeholders::new();
        let t = p
            .resolve("$UNIQUE_IDENTIFIER_0", ItemType::TextString)
            .unwrap()
            .unwrap();
        assert_eq!(t, Value::TextString("$UNIQUE_IDENTIFIER_0".into()));
        let now = p.resolve("$NOW", ItemType::DateTime).unwrap().unwrap();
        let earlier = p.resolve("$NOW-3600", ItemType::DateTime).unwrap().unwrap();
        let other = p.resolve("$THEN+5", ItemType::DateTime).unwrap().unwrap();
        assert_eq!(p.text_for(&now).as_deref(), Some("$NOW"));
        assert_eq!(p.text_for(&earlier).as_deref(), Some("$NOW-3600"));
        assert_eq!(p.text_for(&other).as_deref(), Some("$THEN+5"));
        assert_eq!(p.text_for(&Value::DateTime(1_335_514_344)), None);
        let b = p.resolve("$DATA_0", ItemType::ByteString).unwrap().unwrap();
        assert_eq!(p.text_for(&b).as_deref(), Some("$DATA_0"));
        assert!(p.resolve("$X", ItemType::Integer).is_err());
        assert_eq!(p.resolve("plain", ItemType::TextString).unwrap(), None);
        assert_eq!(p.seen(), ["UNIQUE_IDENTIFIER_0", "NOW", "THEN", "DATA_0", "X"]);
    }

    #[test]
    fn bound_placeholders_substitute_real_values() {
        let mut p = Placeholders::new();
        p.bind("NOW", Value::DateTime(1_000_000));
        p.bind("UNIQUE_IDENTIFIER_0", Value::TextString("uid-7".into()));
        assert_eq!(
            p.resolve("$NOW-3600", ItemType::DateTime).unwrap(),
            Some(Value::DateTime(996_400))
        );
        assert_eq!(
            p.resolve("$UNIQUE_IDENTIFIER_0", ItemType::TextString).unwrap(),
            Some(Value::TextString("uid-7".into()))
        );
        assert!(p.resolve("$UNIQUE_IDENTIFIER_0", ItemType::ByteString).is_err());
        assert!(p.resolve("$UNIQUE_IDENTIFIER_0+1", ItemType::TextString).is_err());
        assert_eq!(p.unbound().count(), 0);
    }

    #[test]
    fn learns_bindings_from_a_matching_response() {
        let mut p = Placeholders::new();
        let uid = p
            .resolve("$UNIQUE_IDENTIFIER_0", ItemType::TextString)
            .unwrap()
            .unwrap();
        let ts = p.resolve("$NOW-10", ItemType::DateTime).unwrap().unwrap();
        let expected = Item::structure(
            tags::RESPONSE_PAYLOAD,
            vec![
                Item::new(tags::UNIQUE_IDENTIFIER, uid),
                Item::new(tags::INITIAL_DATE, ts),
            ],
        );
        let actual = Item::structure(
            tags::RESPONSE_PAYLOAD,
            vec![
                Item::new(tags::UNIQUE_IDENTIFIER, Value::TextString("abc".into())),
                Item::new(tags::INITIAL_DATE, Value::DateTime(5000)),
            ],
        );
        assert_eq!(p.learn(&expected, &actual), 2);
        assert_eq!(
            p.bound("UNIQUE_IDENTIFIER_0"),
            Some(&Value::TextString("abc".into()))
        );
        assert_eq!(p.bound("NOW"), Some(&Value::DateTime(5010)));
        assert_eq!(p.learn(&expected, &actual), 0);
    }
}
