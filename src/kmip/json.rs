//! The KMIP JSON encoding (KMIP Profiles §5.5) of TTLV trees.
//!
//! Each item is an object `{"tag": "UniqueIdentifier", "type": "TextString",
//! "value": "..."}`; a Structure leaves out `type` and has an array of items as
//! its value; tags without a name are written in hex (`"tag": "0x540001"`).
//! Names, hex, date-times and placeholders follow the XML rules
//! ([`super::xml`]), except that mask bits are joined with `|`
//! (`"Encrypt|Decrypt"`) and numbers are JSON numbers: Integer, Interval,
//! LongInteger (as `0x` hex text beyond ±2^52, which JSON readers may not hold
//! exactly) and Boolean. The reader accepts either form for each.
//!
//! Like the XML writer, this writes key material in the clear unless
//! [`WriteOptions::redact`] is set (secrets become `"<redacted 32 bytes>"`, a
//! secret Structure `{"tag": .., "type": "Structure", "value": "<redacted ..>"}`),
//! and the reader refuses redacted values (see [`super::redact`]).
//!
//! Several messages are written as a JSON array; [`read_messages`] takes an
//! object, an array of them, or objects one after another.

use std::fmt;

use serde_json::Value as Json;

use super::enums::value_names;
use super::placeholders::Placeholders;
pub use super::redact::WriteOptions;
use super::redact::{marker, refuse_marker};
use super::tag::{parse_tag_hex, tag_by_name, tag_label};
use super::text::{format_value, parse_value};
use crate::secret::SecretBytes;
use crate::ttlv::{Item, ItemType, Tag, Value};

/// A reading failure: where in the tree (tag path) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// Tags from the root to the failing item, `RequestMessage/BatchItem/Operation`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for JsonError {}

/// Largest magnitude written as a JSON number for a Long Integer.
const MAX_JSON_SAFE: i64 = 1 << 52;

/// Writes one item as indented JSON.
pub fn write_item(item: &Item, placeholders: &Placeholders) -> String {
    write_item_with(item, placeholders, &WriteOptions::default())
}

pub fn write_item_with(item: &Item, placeholders: &Placeholders, opts: &WriteOptions) -> String {
    let mut out = String::new();
    write(&mut out, item, &[], 0, placeholders, opts);
    out.push('\n');
    out
}

/// Writes several items as a JSON array, one item after another.
pub fn write_messages_with(items: &[Item], placeholders: &Placeholders, opts: &WriteOptions) -> String {
    let mut out = String::from("[\n");
    for (i, item) in items.iter().enumerate() {
        write(&mut out, item, items, 1, placeholders, opts);
        out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}

fn quote(s: &str) -> String {
    // Serialising a str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

fn write(
    out: &mut String,
    item: &Item,
    siblings: &[Item],
    depth: usize,
    ph: &Placeholders,
    opts: &WriteOptions,
) {
    let indent = "  ".repeat(depth);
    let tag = quote(&tag_label(item.tag));
    if let Some(m) = marker(item, opts) {
        let ty = item.value.item_type().name();
        out.push_str(&format!(
            "{indent}{{\"tag\": {tag}, \"type\": \"{ty}\", \"value\": {}}}",
            quote(&m)
        ));
        return;
    }
    let value = match &item.value {
        Value::Structure(children) => {
            out.push_str(&format!("{indent}{{\"tag\": {tag}, \"value\": ["));
            if children.is_empty() {
                out.push_str("]}");
                return;
            }
            out.push('\n');
            for (i, child) in children.iter().enumerate() {
                write(out, child, children, depth + 1, ph, opts);
                out.push_str(if i + 1 < children.len() { ",\n" } else { "\n" });
            }
            out.push_str(&format!("{indent}]}}"));
            return;
        }
        Value::Integer(v) => {
            let names = value_names(item.tag, siblings, false);
            if names.is_some() {
                let s = format_value(&item.value, names, ph, "|");
                if s.parse::<i32>().is_ok() { s } else { quote(&s) }
            } else {
                v.to_string()
            }
        }
        Value::LongInteger(v) if (-MAX_JSON_SAFE..=MAX_JSON_SAFE).contains(v) => v.to_string(),
        Value::LongInteger(v) => quote(&format!("0x{:016X}", *v as u64)),
        Value::BigInteger(b) => quote(&format!("0x{}", hex::encode(b.expose()))),
        Value::Enumeration(_) => {
            let names = value_names(item.tag, siblings, true);
            quote(&format_value(&item.value, names, ph, "|"))
        }
        Value::Boolean(v) => v.to_string(),
        Value::Interval(v) => v.to_string(),
        Value::TextString(_) | Value::ByteString(_) | Value::DateTime(_) | Value::DateTimeExtended(_) => {
            quote(&format_value(&item.value, None, ph, "|"))
        }
    };
    let ty = item.value.item_type().name();
    out.push_str(&format!(
        "{indent}{{\"tag\": {tag}, \"type\": \"{ty}\", \"value\": {value}}}"
    ));
}

/// Reads one item from JSON text.
pub fn read_item(text: &str, placeholders: &mut Placeholders) -> Result<Item, JsonError> {
    let json: Json = serde_json::from_str(text).map_err(|e| JsonError {
        path: String::new(),
        message: format!("malformed JSON: {e}"),
    })?;
    let mut path = Vec::new();
    read(&json, &[], &mut path, placeholders)
}

/// Reads the messages of `text`: one item object, an array of them, or item
/// objects one after another.
pub fn read_messages(text: &str, placeholders: &mut Placeholders) -> Result<Vec<Item>, JsonError> {
    let malformed = |e: serde_json::Error| JsonError {
        path: String::new(),
        message: format!("malformed JSON: {e}"),
    };
    let mut items = Vec::new();
    for json in serde_json::Deserializer::from_str(text).into_iter::<Json>() {
        match json.map_err(malformed)? {
            Json::Array(list) => {
                for j in &list {
                    items.push(from_json_value(j, placeholders)?);
                }
            }
            j => items.push(from_json_value(&j, placeholders)?),
        }
    }
    if items.is_empty() {
        return Err(JsonError {
            path: String::new(),
            message: "no item in the input".into(),
        });
    }
    Ok(items)
}

/// Reads one item from a parsed JSON value.
pub fn from_json_value(json: &Json, placeholders: &mut Placeholders) -> Result<Item, JsonError> {
    read(json, &[], &mut Vec::new(), placeholders)
}

fn read(
    json: &Json,
    siblings: &[Item],
    path: &mut Vec<String>,
    ph: &mut Placeholders,
) -> Result<Item, JsonError> {
    let err = |path: &[String], m: String| JsonError {
        path: path.join("/"),
        message: m,
    };
    let Json::Object(obj) = json else {
        return Err(err(path, "an item must be a JSON object".into()));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "tag" | "type" | "value"))
    {
        return Err(err(path, format!("unknown member {k:?}")));
    }
    let tag_text = match obj.get("tag") {
        Some(Json::String(s)) => s.as_str(),
        _ => return Err(err(path, "missing \"tag\" string".into())),
    };
    let tag: Tag = tag_by_name(tag_text)
        .or_else(|| parse_tag_hex(tag_text))
        .ok_or_else(|| err(path, format!("unknown tag {tag_text:?}")))?;
    path.push(tag_label(tag).into_owned());
    if path.len() > crate::limits::MAX_DEPTH + 1 {
        return Err(err(
            path,
            format!("nested deeper than {}", crate::limits::MAX_DEPTH),
        ));
    }
    let ty = match obj.get("type") {
        None => ItemType::Structure,
        Some(Json::String(t)) => {
            ItemType::from_name(t).ok_or_else(|| err(path, format!("unknown type {t:?}")))?
        }
        Some(_) => return Err(err(path, "\"type\" must be a string".into())),
    };
    let Some(value) = obj.get("value") else {
        return Err(err(path, "missing \"value\"".into()));
    };
    if let Json::String(text) = value {
        refuse_marker(tag, ty, text).map_err(|m| err(path, m))?;
    }
    let value = if ty == ItemType::Structure {
        let Json::Array(items) = value else {
            return Err(err(path, "a Structure's value must be an array".into()));
        };
        let mut children = Vec::with_capacity(items.len());
        for child in items {
            let item = read(child, &children, path, ph)?;
            children.push(item);
        }
        Value::Structure(children)
    } else {
        leaf(tag, ty, value, siblings, ph).map_err(|m| err(path, m))?
    };
    path.pop();
    Ok(Item::new(tag, value))
}

fn leaf(
    tag: Tag,
    ty: ItemType,
    json: &Json,
    siblings: &[Item],
    ph: &mut Placeholders,
) -> Result<Value, String> {
    let names = match ty {
        ItemType::Enumeration | ItemType::Integer => value_names(tag, siblings, ty == ItemType::Enumeration),
        _ => None,
    };
    let bad = || format!("a JSON {} cannot hold a {}", json_kind(json), ty.name());
    match json {
        Json::String(s) => parse_value(ty, s, names, ph),
        Json::Bool(b) if ty == ItemType::Boolean => Ok(Value::Boolean(*b)),
        Json::Number(n) => {
            let i = n.as_i64();
            let u = n.as_u64();
            let out_of_range = || format!("number {n} is out of range for {}", ty.name());
            Ok(match ty {
                ItemType::Integer => {
                    Value::Integer(i.and_then(|v| i32::try_from(v).ok()).ok_or_else(out_of_range)?)
                }
                ItemType::LongInteger => Value::LongInteger(i.ok_or_else(out_of_range)?),
                ItemType::Enumeration => {
                    Value::Enumeration(u.and_then(|v| u32::try_from(v).ok()).ok_or_else(out_of_range)?)
                }
                ItemType::Interval => {
                    Value::Interval(u.and_then(|v| u32::try_from(v).ok()).ok_or_else(out_of_range)?)
                }
                ItemType::DateTime => Value::DateTime(i.ok_or_else(out_of_range)?),
                ItemType::DateTimeExtended => Value::DateTimeExtended(i.ok_or_else(out_of_range)?),
                ItemType::BigInteger => Value::BigInteger(SecretBytes::new(
                    i.ok_or_else(out_of_range)?.to_be_bytes().to_vec(),
                )),
                _ => return Err(bad()),
            })
        }
        _ => Err(bad()),
    }
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::tags;

    fn read(s: &str) -> Result<Item, JsonError> {
        read_item(s, &mut Placeholders::new())
    }

    #[test]
    fn reads_and_writes_the_profile_form() {
        let text = r#"{"tag": "RequestPayload", "value": [
            {"tag": "ObjectType", "type": "Enumeration", "value": "SymmetricKey"},
            {"tag": "Attribute", "value": [
                {"tag": "AttributeName", "type": "TextString", "value": "Cryptographic Usage Mask"},
                {"tag": "AttributeValue", "type": "Integer", "value": "Decrypt|Encrypt"}]},
            {"tag": "0x540001", "type": "TextString", "value": "na"},
            {"tag": "MaximumItems", "type": "Integer", "value": 5},
            {"tag": "LeaseTime", "type": "Interval", "value": 3600},
            {"tag": "TimeStamp", "type": "DateTime", "value": "$NOW"},
            {"tag": "Data", "type": "ByteString", "value": "00ff"},
            {"tag": "Modulus", "type": "BigInteger", "value": "0x010001"},
            {"tag": "Sensitive", "type": "Boolean", "value": true},
            {"tag": "Offset", "type": "LongInteger", "value": "0x7FFFFFFFFFFFFFFF"}
        ]}"#;
        let mut ph = Placeholders::new();
        let item = read_item(text, &mut ph).unwrap();
        assert_eq!(item.children()[0].as_enum(), Some(2));
        assert_eq!(item.children()[1].children()[1].as_i32(), Some(12));
        assert_eq!(item.children()[2].tag, Tag(0x540001));
        assert_eq!(item.children()[9].as_i64(), Some(i64::MAX));
        let out = write_item(&item, &ph);
        assert!(out.contains(r#""value": "Encrypt|Decrypt""#), "{out}");
        assert!(out.contains(r#""value": "SymmetricKey""#), "{out}");
        assert!(out.contains(r#""tag": "0x540001""#), "{out}");
        assert!(out.contains(r#""value": "$NOW""#), "{out}");
        assert!(out.contains(r#""value": 3600"#), "{out}");
        assert_eq!(read_item(&out, &mut ph).unwrap(), item);
    }

    #[test]
    fn malformed_json_is_an_error_with_a_path() {
        assert!(read("{").unwrap_err().message.contains("malformed JSON"));
        assert!(read("[]").is_err());
        let e = read(
            r#"{"tag": "RequestMessage", "value": [{"tag": "Operation", "type": "Enumeration", "value": "Nope"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "RequestMessage/Operation");
        let e = read(r#"{"tag": "NoSuchTag", "value": []}"#).unwrap_err();
        assert!(e.message.contains("unknown tag"), "{e}");
        let e = read(r#"{"tag": "BatchCount", "type": "Integer", "value": 4294967296}"#).unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
        let e = read(r#"{"tag": "BatchCount", "type": "Integer", "value": true}"#).unwrap_err();
        assert!(e.message.contains("boolean"), "{e}");
        let e = read(r#"{"tag": "BatchCount", "type": "Integer", "value": 1, "extra": 2}"#).unwrap_err();
        assert!(e.message.contains("extra"), "{e}");
        assert!(read(r#"{"tag": "BatchItem", "value": 3}"#).is_err());
        assert!(read(r#"{"tag": "BatchCount", "type": "Weird", "value": 3}"#).is_err());
        let ok = read(r#"{"tag": "BatchCount", "type": "Integer", "value": 3}"#).unwrap();
        assert_eq!(ok, Item::new(tags::BATCH_COUNT, Value::Integer(3)));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut s = String::new();
        for _ in 0..40 {
            s.push_str(r#"{"tag": "Attribute", "value": ["#);
        }
        for _ in 0..40 {
            s.push_str("]}");
        }
        assert!(read(&s).unwrap_err().message.contains("deeper"));
    }
}
