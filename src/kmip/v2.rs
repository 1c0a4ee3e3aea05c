//! KMIP 2.0 and 2.1 payloads, read into and written from the 1.x forms the
//! rest of keyward speaks: one key store and one set of operations under both
//! (a key made over 1.1 reads over 2.1 and the other way round).
//!
//! What changes on the wire from 1.x to 2.x, for the operations keyward runs:
//! - Attributes travel as items tagged by the attribute (`<CryptographicLength>`)
//!   inside an `Attributes` structure (also Common/Private Key/Public Key
//!   Attributes), not as Attribute {Name, Index, Value} in a Template-Attribute.
//! - 1.x custom attributes (`x-…`, `y-…`) are Vendor Attributes with Vendor
//!   Identification `x` or `y` (KMIP 2.0 reserves both for them); another vendor's
//!   attribute is kept as `x-VENDOR::NAME`.
//! - Get Attributes names attributes by Attribute Reference (the attribute's tag,
//!   or a vendor and name); Get Attribute List answers with references.
//! - Add/Modify/Delete Attribute carry New Attribute / Current Attribute; their
//!   answers hold only the Unique Identifier. Create, Register and the rest
//!   answer without a Template-Attribute.
//!
//! Pure functions over [`Item`] trees: no I/O, no logging.

use super::attribute::{Attribute, STANDARD_ATTRIBUTES, custom};
use super::error::MessageError;
use super::message::ProtocolVersion;
use super::tag::tag_by_name;
use super::{Operation, tags};
use crate::ttlv::{Item, Tag, Value};

/// Whether a message in `version` uses the 2.x payload forms.
pub fn is_v2(version: ProtocolVersion) -> bool {
    version.major >= 2
}

/// The tag a standard attribute travels under in 2.x: the tag whose name is
/// the attribute's, spelled as the tag tables spell names ("Cryptographic
/// Length" → CryptographicLength, "X.509 Certificate Identifier" →
/// X_509CertificateIdentifier, "PKCS#12 Friendly Name" → PKCS_12FriendlyName).
pub fn attribute_tag(name: &str) -> Option<Tag> {
    let canonical = super::attribute::standard(name)?.name;
    tables().by_name.get(canonical).copied()
}

/// The 1.x name of the standard attribute that travels under `tag`.
pub fn attribute_name(tag: Tag) -> Option<&'static str> {
    tables().by_tag.get(&tag.0).copied()
}

/// Both directions, built once: a 2.x request may name thousands of
/// attributes, each looked up in constant time.
struct Tables {
    by_name: std::collections::HashMap<&'static str, Tag>,
    by_tag: std::collections::HashMap<u32, &'static str>,
}

fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = Tables {
            by_name: std::collections::HashMap::new(),
            by_tag: std::collections::HashMap::new(),
        };
        for spec in STANDARD_ATTRIBUTES {
            if let Some(tag) = tag_by_name(&table_spelling(spec.name)) {
                t.by_name.insert(spec.name, tag);
                t.by_tag.insert(tag.0, spec.name);
            }
        }
        t
    })
}

/// Words joined, each capitalized; punctuation inside a word becomes `_`
/// unless a new word (capital or small letter, then a small one) follows it.
fn table_spelling(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len());
    let mut word_start = true;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() || c == '_' {
            out.extend(if word_start {
                c.to_uppercase().collect::<Vec<_>>()
            } else {
                vec![c]
            });
            word_start = false;
        } else if c.is_whitespace() || c == '(' || c == ')' {
            word_start = true;
        } else {
            let next_word = chars.get(i + 1).is_some_and(char::is_ascii_alphabetic)
                && chars.get(i + 2).is_some_and(char::is_ascii_lowercase);
            if next_word {
                word_start = true;
            } else {
                out.push('_');
                word_start = false;
            }
        }
    }
    out
}

/// Separates another vendor's identification from the attribute's name in the
/// 1.x-style name keyward stores (`x-VENDOR::NAME`).
const VENDOR_SEPARATOR: &str = "::";

/// The stored (1.x) name of a Vendor Attribute.
fn vendor_to_name(vendor: &str, name: &str) -> String {
    match vendor {
        "x" | "y" => format!("{vendor}-{name}"),
        other => format!("x-{other}{VENDOR_SEPARATOR}{name}"),
    }
}

/// The vendor and name of a stored custom attribute (`x-…` or `y-…`).
fn name_to_vendor(name: &str) -> Option<(&str, &str)> {
    custom(name)?;
    let (prefix, rest) = name.split_at(2);
    let vendor = &prefix[..1];
    match rest.split_once(VENDOR_SEPARATOR) {
        Some((other, attribute)) if vendor.eq_ignore_ascii_case("x") && !other.is_empty() => {
            Some((other, attribute))
        }
        _ => Some((vendor, rest)),
    }
}

fn text_child(item: &Item, tag: Tag) -> Result<&str, MessageError> {
    item.child(tag)
        .and_then(Item::as_text)
        .ok_or(MessageError::Missing {
            parent: item.tag,
            tag,
        })
}

/// A 2.x attribute item (tagged by the attribute, or a Vendor Attribute) as a
/// 1.x Attribute.
pub fn attribute_from_v2(item: &Item) -> Result<Attribute, MessageError> {
    if item.tag == tags::ATTRIBUTE {
        let vendor = text_child(item, tags::VENDOR_IDENTIFICATION)?;
        let name = text_child(item, tags::ATTRIBUTE_NAME)?;
        let value = item.child(tags::ATTRIBUTE_VALUE).ok_or(MessageError::Missing {
            parent: item.tag,
            tag: tags::ATTRIBUTE_VALUE,
        })?;
        return Ok(Attribute {
            name: vendor_to_name(vendor, name),
            index: None,
            value: value.clone(),
        });
    }
    let name = attribute_name(item.tag).ok_or_else(|| MessageError::UnknownAttribute {
        name: super::tag::tag_name(item.tag)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{:#08X}", item.tag.0)),
    })?;
    Ok(Attribute {
        name: name.to_owned(),
        index: None,
        value: Item::new(tags::ATTRIBUTE_VALUE, item.value.clone()),
    })
}

/// A 1.x Attribute as the 2.x item, if 2.x has a form for it.
pub fn attribute_to_v2(attribute: &Attribute) -> Option<Item> {
    if let Some((vendor, name)) = name_to_vendor(&attribute.name) {
        return Some(Item::structure(
            tags::ATTRIBUTE,
            vec![
                Item::new(tags::VENDOR_IDENTIFICATION, Value::TextString(vendor.to_owned())),
                Item::new(tags::ATTRIBUTE_NAME, Value::TextString(name.to_owned())),
                attribute.value.clone(),
            ],
        ));
    }
    let tag = attribute_tag(&attribute.name)?;
    Some(Item::new(tag, attribute.value.value.clone()))
}

/// An Attribute Reference (an Enumeration naming the attribute's tag, or a
/// structure of vendor and name) as the 1.x Attribute Name.
pub fn reference_to_name(item: &Item) -> Result<Item, MessageError> {
    let name =
        match &item.value {
            Value::Enumeration(tag) => attribute_name(Tag(*tag)).map(str::to_owned).ok_or_else(|| {
                MessageError::UnknownAttribute {
                    name: super::tag::tag_name(Tag(*tag))
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{tag:#08X}")),
                }
            })?,
            Value::Structure(_) => vendor_to_name(
                text_child(item, tags::VENDOR_IDENTIFICATION)?,
                text_child(item, tags::ATTRIBUTE_NAME)?,
            ),
            _ => {
                return Err(MessageError::InvalidValue {
                    tag: tags::ATTRIBUTE_REFERENCE,
                    reason: "an Attribute Reference is a tag or a vendor and name",
                });
            }
        };
    Ok(Item::new(tags::ATTRIBUTE_NAME, Value::TextString(name)))
}

/// A 1.x attribute name as the 2.x Attribute Reference, if 2.x has one.
fn name_to_reference(name: &str) -> Option<Item> {
    if let Some((vendor, attribute)) = name_to_vendor(name) {
        return Some(Item::structure(
            tags::ATTRIBUTE_REFERENCE,
            vec![
                Item::new(tags::VENDOR_IDENTIFICATION, Value::TextString(vendor.to_owned())),
                Item::new(tags::ATTRIBUTE_NAME, Value::TextString(attribute.to_owned())),
            ],
        ));
    }
    attribute_tag(name).map(|t| Item::new(tags::ATTRIBUTE_REFERENCE, Value::Enumeration(t.0)))
}

fn children(item: &Item) -> &[Item] {
    match &item.value {
        Value::Structure(c) => c,
        _ => &[],
    }
}

/// The 1.x Attribute items of an `Attributes` structure.
fn attributes_from_v2(item: &Item) -> Result<Vec<Item>, MessageError> {
    children(item)
        .iter()
        .map(|a| attribute_from_v2(a).map(|a| a.to_item()))
        .collect()
}

/// The one attribute a New Attribute or Current Attribute carries.
fn single_attribute(item: &Item) -> Result<Attribute, MessageError> {
    match children(item) {
        [one] => attribute_from_v2(one),
        _ => Err(MessageError::InvalidValue {
            tag: item.tag,
            reason: "holds exactly one attribute",
        }),
    }
}

/// A 2.x request payload in the 1.x form of the same operation. A Current
/// Attribute stays, as a 1.x Attribute under the Current Attribute tag, for
/// Modify and Delete Attribute to find the instance by value.
pub fn request_to_v1(operation: Operation, payload: &Item) -> Result<Item, MessageError> {
    let mut out = Vec::with_capacity(children(payload).len());
    for child in children(payload) {
        let tag = child.tag;
        if tag == tags::ATTRIBUTES && operation == Operation::LOCATE {
            out.extend(attributes_from_v2(child)?);
        } else if let Some(template) = template_tag(tag) {
            out.push(Item::structure(template, attributes_from_v2(child)?));
        } else if tag == tags::ATTRIBUTE_REFERENCE {
            out.push(reference_to_name(child)?);
        } else if tag == tags::NEW_ATTRIBUTE {
            out.push(single_attribute(child)?.to_item());
        } else if tag == tags::CURRENT_ATTRIBUTE {
            let current = single_attribute(child)?;
            if operation == Operation::DELETE_ATTRIBUTE {
                out.push(Item::new(
                    tags::ATTRIBUTE_NAME,
                    Value::TextString(current.name.clone()),
                ));
            }
            let mut kept = current.to_item();
            kept.tag = tags::CURRENT_ATTRIBUTE;
            out.push(kept);
        } else {
            out.push(child.clone());
        }
    }
    Ok(Item::structure(payload.tag, out))
}

/// The 1.x Template-Attribute tag for a 2.x Attributes tag.
fn template_tag(tag: Tag) -> Option<Tag> {
    [
        (tags::ATTRIBUTES, tags::TEMPLATE_ATTRIBUTE),
        (tags::COMMON_ATTRIBUTES, tags::COMMON_TEMPLATE_ATTRIBUTE),
        (tags::PRIVATE_KEY_ATTRIBUTES, tags::PRIVATE_KEY_TEMPLATE_ATTRIBUTE),
        (tags::PUBLIC_KEY_ATTRIBUTES, tags::PUBLIC_KEY_TEMPLATE_ATTRIBUTE),
    ]
    .into_iter()
    .find(|(v2, _)| *v2 == tag)
    .map(|(_, v1)| v1)
}

/// A 1.x response payload in the 2.x form.
pub fn response_to_v2(operation: Operation, payload: Item) -> Item {
    let tag = payload.tag;
    let Value::Structure(items) = payload.value else {
        return payload;
    };
    let templates = [
        tags::TEMPLATE_ATTRIBUTE,
        tags::COMMON_TEMPLATE_ATTRIBUTE,
        tags::PRIVATE_KEY_TEMPLATE_ATTRIBUTE,
        tags::PUBLIC_KEY_TEMPLATE_ATTRIBUTE,
    ];
    let attribute_answer = [
        Operation::ADD_ATTRIBUTE,
        Operation::MODIFY_ATTRIBUTE,
        Operation::DELETE_ATTRIBUTE,
    ]
    .contains(&operation);
    let mut out = Vec::with_capacity(items.len());
    let mut attributes = Vec::new();
    for item in items {
        if templates.contains(&item.tag) || (attribute_answer && item.tag == tags::ATTRIBUTE) {
            continue;
        }
        if operation == Operation::GET_ATTRIBUTES && item.tag == tags::ATTRIBUTE {
            if let Some(v2) = Attribute::from_item(&item)
                .ok()
                .as_ref()
                .and_then(attribute_to_v2)
            {
                attributes.push(v2);
            }
            continue;
        }
        if operation == Operation::GET_ATTRIBUTE_LIST && item.tag == tags::ATTRIBUTE_NAME {
            if let Some(reference) = item.as_text().and_then(name_to_reference) {
                out.push(reference);
            }
            continue;
        }
        out.push(item);
    }
    if operation == Operation::GET_ATTRIBUTES {
        out.push(Item::structure(tags::ATTRIBUTES, attributes));
    }
    Item::structure(tag, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_attribute_has_a_tag_and_back() {
        for spec in STANDARD_ATTRIBUTES {
            let tag = attribute_tag(spec.name).unwrap_or_else(|| panic!("no tag for {}", spec.name));
            assert_eq!(attribute_name(tag), Some(spec.name));
        }
    }

    #[test]
    fn custom_attributes_are_vendor_attributes() {
        for (name, vendor, attribute) in [
            ("x-Name", "x", "Name"),
            ("y-Created-By", "y", "Created-By"),
            ("x-acme::colour", "acme", "colour"),
        ] {
            let a = Attribute::new(name, Value::TextString("v".into()));
            let v2 = attribute_to_v2(&a).unwrap();
            assert_eq!(text_child(&v2, tags::VENDOR_IDENTIFICATION).unwrap(), vendor);
            assert_eq!(text_child(&v2, tags::ATTRIBUTE_NAME).unwrap(), attribute);
            assert_eq!(attribute_from_v2(&v2).unwrap(), a);
            let reference = name_to_reference(name).unwrap();
            assert_eq!(reference_to_name(&reference).unwrap().as_text(), Some(name));
        }
    }

    #[test]
    fn create_reads_as_the_1x_form_and_answers_without_template() {
        let v2 = Item::structure(
            tags::REQUEST_PAYLOAD,
            vec![
                Item::new(tags::OBJECT_TYPE, Value::Enumeration(2)),
                Item::structure(
                    tags::ATTRIBUTES,
                    vec![
                        Item::new(tags::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(3)),
                        Item::new(tags::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
                        Item::structure(
                            tags::NAME,
                            vec![
                                Item::new(tags::NAME_VALUE, Value::TextString("k".into())),
                                Item::new(tags::NAME_TYPE, Value::Enumeration(1)),
                            ],
                        ),
                    ],
                ),
            ],
        );
        let v1 = request_to_v1(Operation::CREATE, &v2).unwrap();
        let request = crate::kmip::payload::create::Request::from_payload(&v1).unwrap();
        let names: Vec<_> = request
            .template_attribute
            .attributes
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, ["Cryptographic Algorithm", "Cryptographic Length", "Name"]);
        use crate::kmip::payload::Payload;
        let response = crate::kmip::payload::create::Response {
            object_type: crate::kmip::ObjectType::SYMMETRIC_KEY,
            unique_identifier: "u".into(),
            template_attribute: Some(Default::default()),
            extra: Vec::new(),
        };
        let v2 = response_to_v2(Operation::CREATE, response.to_payload());
        assert!(v2.child(tags::TEMPLATE_ATTRIBUTE).is_none());
        assert_eq!(
            v2.child(tags::UNIQUE_IDENTIFIER).and_then(Item::as_text),
            Some("u")
        );
    }

    #[test]
    fn get_attributes_references_and_answer() {
        let v2 = Item::structure(
            tags::REQUEST_PAYLOAD,
            vec![
                Item::new(tags::UNIQUE_IDENTIFIER, Value::TextString("u".into())),
                Item::new(tags::ATTRIBUTE_REFERENCE, Value::Enumeration(tags::STATE.0)),
                Item::new(tags::ATTRIBUTE_REFERENCE, Value::Enumeration(0x42_0001)),
            ],
        );
        let v1 = request_to_v1(Operation::GET_ATTRIBUTES, &v2).unwrap();
        let names: Vec<_> = v1
            .children_with(tags::ATTRIBUTE_NAME)
            .filter_map(Item::as_text)
            .collect();
        assert_eq!(names, ["State", "Activation Date"]);
        let answer = Item::structure(
            tags::RESPONSE_PAYLOAD,
            vec![
                Item::new(tags::UNIQUE_IDENTIFIER, Value::TextString("u".into())),
                Attribute::new("State", Value::Enumeration(1)).to_item(),
                Attribute::new("x-vm", Value::TextString("db".into())).to_item(),
            ],
        );
        let v2 = response_to_v2(Operation::GET_ATTRIBUTES, answer);
        let attributes = v2.child(tags::ATTRIBUTES).unwrap();
        assert_eq!(attributes.child(tags::STATE).and_then(Item::as_enum), Some(1));
        assert!(attributes.child(tags::ATTRIBUTE).is_some());
        // An unknown tag is refused by name.
        let bad = Item::structure(
            tags::REQUEST_PAYLOAD,
            vec![Item::new(
                tags::ATTRIBUTE_REFERENCE,
                Value::Enumeration(tags::BATCH_COUNT.0),
            )],
        );
        assert!(matches!(
            request_to_v1(Operation::GET_ATTRIBUTES, &bad),
            Err(MessageError::UnknownAttribute { .. })
        ));
    }
}
