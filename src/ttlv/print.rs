//! A human-readable, redacting tree printer.

use std::fmt::Write as _;

use super::encode::encoded_len;
use super::value::{Item, ItemType, Tag, Value};

/// What a protocol layer tells the generic TTLV code about its tags: names, the
/// names of enumeration values, and which subtrees hold secrets.
pub trait Schema {
    /// The tag's name, as the KMIP XML encoding spells it (`UniqueIdentifier`).
    fn tag_name(&self, tag: Tag) -> Option<&'static str>;

    /// The name of an enumeration value. `siblings` are the other items of the
    /// structure holding it: an Attribute Value's meaning depends on the Attribute
    /// Name beside it.
    fn enum_name(&self, tag: Tag, siblings: &[Item], value: u32) -> Option<&'static str>;

    /// Whether the value under `tag` (a whole subtree for a Structure) is secret:
    /// key material, a password, plaintext data.
    fn is_secret(&self, tag: Tag, item_type: ItemType) -> bool;
}

/// A schema that knows nothing: tags print in hex and every byte string and big
/// integer is treated as secret.
pub struct NoSchema;

impl Schema for NoSchema {
    fn tag_name(&self, _: Tag) -> Option<&'static str> {
        None
    }

    fn enum_name(&self, _: Tag, _: &[Item], _: u32) -> Option<&'static str> {
        None
    }

    fn is_secret(&self, _: Tag, item_type: ItemType) -> bool {
        matches!(item_type, ItemType::ByteString | ItemType::BigInteger)
    }
}

/// Prints a tree one item per line, indented by depth. Secrets print as
/// `<redacted N bytes>` unless `reveal` is set.
pub struct TreePrinter<'a> {
    pub schema: &'a dyn Schema,
    pub reveal: bool,
}

impl TreePrinter<'_> {
    pub fn print(&self, item: &Item) -> String {
        let mut out = String::new();
        self.item(item, &[], 0, &mut out);
        out
    }

    fn item(&self, item: &Item, siblings: &[Item], depth: usize, out: &mut String) {
        let name = self
            .schema
            .tag_name(item.tag)
            .map(str::to_owned)
            .unwrap_or_else(|| item.tag.to_string());
        let ty = item.value.item_type();
        let _ = write!(out, "{:indent$}{} ({})", "", name, ty.name(), indent = depth * 2);
        if !self.reveal && self.schema.is_secret(item.tag, ty) {
            // The value's own length, as the XML and JSON writers report it.
            let len = match &item.value {
                Value::ByteString(b) | Value::BigInteger(b) => b.len(),
                Value::TextString(t) => t.len(),
                _ => encoded_len(item) - super::HEADER_LEN,
            };
            let _ = writeln!(out, " <redacted {len} bytes>");
            return;
        }
        match &item.value {
            Value::Structure(children) => {
                out.push('\n');
                for child in children {
                    self.item(child, children, depth + 1, out);
                }
            }
            Value::Integer(v) => {
                let _ = writeln!(out, " {v}");
            }
            Value::LongInteger(v) => {
                let _ = writeln!(out, " {v}");
            }
            Value::Enumeration(v) => match self.schema.enum_name(item.tag, siblings, *v) {
                Some(n) => {
                    let _ = writeln!(out, " {n}");
                }
                None => {
                    let _ = writeln!(out, " 0x{v:08X}");
                }
            },
            Value::Boolean(v) => {
                let _ = writeln!(out, " {v}");
            }
            Value::TextString(s) => {
                let _ = writeln!(out, " {s:?}");
            }
            Value::ByteString(b) | Value::BigInteger(b) => {
                let _ = writeln!(out, " {}", hex::encode(b.expose()));
            }
            Value::DateTime(t) => {
                let _ = writeln!(out, " {}", format_datetime(*t));
            }
            Value::DateTimeExtended(t) => {
                let _ = writeln!(out, " {}us", t);
            }
            Value::Interval(v) => {
                let _ = writeln!(out, " {v}s");
            }
        }
    }
}

fn format_datetime(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| secs.to_string()),
        Err(_) => secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;

    #[test]
    fn redacts_byte_strings_without_schema() {
        let item = Item::structure(
            Tag(0x420001),
            vec![
                Item::new(Tag(0x420043), Value::ByteString(SecretBytes::new(vec![0xAB; 32]))),
                Item::new(Tag(0x420094), Value::TextString("uid-1".into())),
            ],
        );
        let p = TreePrinter {
            schema: &NoSchema,
            reveal: false,
        }
        .print(&item);
        assert!(p.contains("<redacted 32 bytes>"), "{p}");
        assert!(!p.contains("abab"), "{p}");
        assert!(p.contains("\"uid-1\""));
        let p = TreePrinter {
            schema: &NoSchema,
            reveal: true,
        }
        .print(&item);
        assert!(p.contains(&"ab".repeat(32)));
    }
}
