//! [`KmipSchema`]: what the generic TTLV code needs to know about KMIP — tag
//! names, enumeration names and which values are secret.

use super::enums::value_names;
use super::tag::{tag_name, tags};
use crate::ttlv::{Item, ItemType, Schema, Tag};

/// The KMIP 1.0–2.0 schema.
pub struct KmipSchema;

impl Schema for KmipSchema {
    fn tag_name(&self, tag: Tag) -> Option<&'static str> {
        tag_name(tag)
    }

    fn enum_name(&self, tag: Tag, siblings: &[Item], value: u32) -> Option<&'static str> {
        value_names(tag, siblings, true)?.name(value)
    }

    fn is_secret(&self, tag: Tag, item_type: ItemType) -> bool {
        is_secret(tag, item_type)
    }
}

/// Tags whose value (a whole subtree for a Structure) is secret: key material,
/// the private parts of transparent keys, passwords, and the plaintext data the
/// cryptographic operations carry.
const SECRET_TAGS: &[Tag] = &[
    tags::KEY_MATERIAL,
    tags::PASSWORD,
    tags::DATA,
    tags::OPAQUE_DATA_VALUE,
    tags::PRIVATE_EXPONENT,
    tags::P,
    tags::Q,
    tags::PRIME_EXPONENT_P,
    tags::PRIME_EXPONENT_Q,
    tags::CRT_COEFFICIENT,
    tags::D,
    tags::X,
    tags::HASHED_PASSWORD,
    tags::ONE_TIME_PASSWORD,
    tags::SERVER_HASHED_PASSWORD,
    tags::TICKET_VALUE,
];

/// Whether the value under `tag` is secret. A Key Value is secret when it is a
/// Byte String (wrapped or raw key bytes); as a Structure it holds Key Material,
/// which is secret by itself, beside attributes, which are not.
pub fn is_secret(tag: Tag, item_type: ItemType) -> bool {
    if tag == tags::KEY_VALUE {
        return item_type == ItemType::ByteString;
    }
    SECRET_TAGS.contains(&tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;
    use crate::ttlv::{TreePrinter, Value};

    #[test]
    fn printer_names_tags_and_enums_and_hides_key_material() {
        let tree = Item::structure(
            tags::KEY_BLOCK,
            vec![
                Item::new(tags::KEY_FORMAT_TYPE, Value::Enumeration(1)),
                Item::structure(
                    tags::KEY_VALUE,
                    vec![Item::new(
                        tags::KEY_MATERIAL,
                        Value::ByteString(SecretBytes::new(vec![0x5A; 32])),
                    )],
                ),
                Item::new(tags::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(3)),
                Item::structure(
                    tags::ATTRIBUTE,
                    vec![
                        Item::new(tags::ATTRIBUTE_NAME, Value::TextString("State".into())),
                        Item::new(tags::ATTRIBUTE_VALUE, Value::Enumeration(2)),
                    ],
                ),
                Item::new(Tag(0x540001), Value::Enumeration(7)),
            ],
        );
        let out = TreePrinter {
            schema: &KmipSchema,
            reveal: false,
        }
        .print(&tree);
        assert!(out.contains("KeyFormatType (Enumeration) Raw"), "{out}");
        assert!(
            out.contains("KeyMaterial (ByteString) <redacted 32 bytes>"),
            "{out}"
        );
        assert!(!out.contains("5a5a"), "{out}");
        assert!(out.contains("CryptographicAlgorithm (Enumeration) AES"), "{out}");
        assert!(out.contains("AttributeValue (Enumeration) Active"), "{out}");
        assert!(out.contains("0x540001 (Enumeration) 0x00000007"), "{out}");
    }

    #[test]
    fn secrecy_by_tag_and_type() {
        assert!(is_secret(tags::KEY_MATERIAL, ItemType::Structure));
        assert!(is_secret(tags::PASSWORD, ItemType::TextString));
        assert!(is_secret(tags::DATA, ItemType::ByteString));
        assert!(is_secret(tags::KEY_VALUE, ItemType::ByteString));
        assert!(!is_secret(tags::KEY_VALUE, ItemType::Structure));
        assert!(!is_secret(tags::UNIQUE_IDENTIFIER, ItemType::TextString));
        assert!(!is_secret(tags::IV_COUNTER_NONCE, ItemType::ByteString));
    }
}
