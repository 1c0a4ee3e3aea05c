//! Redaction in the XML and JSON writers: secret values (as
//! [`KmipSchema`](super::KmipSchema) classifies them) written as
//! `<redacted N bytes>`.
//!
//! A redacted document must never pass for a real one: read back, the marker
//! would otherwise become a Text String password, or fail with a puzzling "not
//! hex". So both readers refuse the marker wherever the writers could have put
//! it — every non-text value, and text under a secret tag — with an error that
//! says the value was redacted.

use super::schema::is_secret;
use crate::ttlv::{Item, ItemType, Tag, Value, encoded_len};

/// Options of [`super::xml`] and [`super::json`] writers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Write secret values as `<redacted N bytes>` (N is the value's length on
    /// the wire, without padding). Off by default: the writers serve test files
    /// and tools that need the real values.
    pub redact: bool,
}

/// The marker that replaces `item`'s value, if `opts` asks for redaction and
/// the value is secret.
pub(crate) fn marker(item: &Item, opts: &WriteOptions) -> Option<String> {
    if !opts.redact || !is_secret(item.tag, item.value.item_type()) {
        return None;
    }
    let len = match &item.value {
        Value::Structure(children) => children.iter().map(encoded_len).sum(),
        Value::TextString(s) => s.len(),
        Value::ByteString(b) | Value::BigInteger(b) => b.len(),
        Value::Integer(_) | Value::Enumeration(_) | Value::Interval(_) => 4,
        Value::LongInteger(_) | Value::Boolean(_) | Value::DateTime(_) | Value::DateTimeExtended(_) => 8,
    };
    Some(format!("<redacted {len} bytes>"))
}

/// Whether `text` is a redaction marker.
pub fn is_marker(text: &str) -> bool {
    text.strip_prefix("<redacted ")
        .and_then(|t| t.strip_suffix(" bytes>"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Refuses a redaction marker read as the value of a `ty` item under `tag`.
pub(crate) fn refuse_marker(tag: Tag, ty: ItemType, text: &str) -> Result<(), String> {
    if is_marker(text) && (ty != ItemType::TextString || is_secret(tag, ty)) {
        return Err(format!(
            "the value was redacted when written ({text}); a redacted document cannot be \
             read back — produce it again with secrets revealed (`keyward ttlv decode --reveal`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::tags;
    use crate::secret::SecretBytes;

    #[test]
    fn marks_only_secrets_and_only_when_asked() {
        let key = Item::new(
            tags::KEY_MATERIAL,
            Value::ByteString(SecretBytes::new(vec![1; 5])),
        );
        let on = WriteOptions { redact: true };
        assert_eq!(marker(&key, &on).as_deref(), Some("<redacted 5 bytes>"));
        assert_eq!(marker(&key, &WriteOptions::default()), None);
        let uid = Item::new(tags::UNIQUE_IDENTIFIER, Value::TextString("x".into()));
        assert_eq!(marker(&uid, &on), None);
    }

    #[test]
    fn refuses_markers_where_a_writer_puts_them() {
        assert!(is_marker("<redacted 32 bytes>"));
        assert!(!is_marker("<redacted bytes>"));
        assert!(refuse_marker(tags::KEY_MATERIAL, ItemType::ByteString, "<redacted 32 bytes>").is_err());
        assert!(refuse_marker(tags::PASSWORD, ItemType::TextString, "<redacted 8 bytes>").is_err());
        assert!(refuse_marker(tags::KEY_MATERIAL, ItemType::Structure, "<redacted 8 bytes>").is_err());
        // Ordinary text that happens to look like a marker is just text.
        assert!(refuse_marker(tags::RESULT_MESSAGE, ItemType::TextString, "<redacted 8 bytes>").is_ok());
        assert!(refuse_marker(tags::KEY_MATERIAL, ItemType::ByteString, "00ff").is_ok());
    }

    fn secret_tree() -> Item {
        Item::structure(
            tags::KEY_BLOCK,
            vec![
                Item::structure(
                    tags::KEY_VALUE,
                    vec![Item::new(
                        tags::KEY_MATERIAL,
                        Value::ByteString(SecretBytes::new(vec![0x5A; 32])),
                    )],
                ),
                Item::structure(
                    tags::CREDENTIAL_VALUE,
                    vec![Item::new(tags::PASSWORD, Value::TextString("hunter22".into()))],
                ),
                Item::structure(
                    tags::KEY_MATERIAL,
                    vec![Item::new(
                        tags::MODULUS,
                        Value::BigInteger(SecretBytes::new(vec![7; 8])),
                    )],
                ),
            ],
        )
    }

    #[test]
    fn redacted_xml_hides_secrets_and_cannot_be_read_back() {
        use crate::kmip::{Placeholders, xml};
        let ph = Placeholders::new();
        let on = WriteOptions { redact: true };
        let out = xml::write_item_with(&secret_tree(), &ph, &on).unwrap();
        assert!(
            out.contains(r#"<KeyMaterial type="ByteString" value="&lt;redacted 32 bytes&gt;"/>"#),
            "{out}"
        );
        assert!(
            out.contains(r#"<Password type="TextString" value="&lt;redacted 8 bytes&gt;"/>"#),
            "{out}"
        );
        assert!(
            out.contains(r#"<KeyMaterial type="Structure" value="&lt;redacted 16 bytes&gt;"/>"#),
            "{out}"
        );
        assert!(!out.contains("5a5a") && !out.contains("hunter"), "{out}");
        let e = xml::read_item(&out, &mut Placeholders::new()).unwrap_err();
        assert!(e.message.contains("redacted"), "{e}");
        for one in out.lines().filter(|l| l.contains("redacted")) {
            let e = xml::read_item(one.trim(), &mut Placeholders::new()).unwrap_err();
            assert!(e.message.contains("was redacted"), "{one}: {e}");
        }
        let full = xml::write_item(&secret_tree(), &ph).unwrap();
        assert_eq!(
            xml::read_item(&full, &mut Placeholders::new()).unwrap(),
            secret_tree()
        );
    }

    #[test]
    fn redacted_json_hides_secrets_and_cannot_be_read_back() {
        use crate::kmip::{Placeholders, json};
        let ph = Placeholders::new();
        let on = WriteOptions { redact: true };
        let out = json::write_item_with(&secret_tree(), &ph, &on);
        assert!(out.contains(r#""value": "<redacted 32 bytes>""#), "{out}");
        assert!(
            out.contains(r#"{"tag": "KeyMaterial", "type": "Structure", "value": "<redacted 16 bytes>"}"#),
            "{out}"
        );
        assert!(!out.contains("5a5a") && !out.contains("hunter"), "{out}");
        let e = json::read_item(&out, &mut Placeholders::new()).unwrap_err();
        assert!(e.message.contains("was redacted"), "{e}");
        let two = json::write_messages_with(&[secret_tree(), secret_tree()], &ph, &WriteOptions::default());
        let back = json::read_messages(&two, &mut Placeholders::new()).unwrap();
        assert_eq!(back, vec![secret_tree(), secret_tree()]);
    }
}
