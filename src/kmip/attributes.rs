//! The standard attributes of KMIP 1.x (KMIP 1.4 §3): name, tag and value type.
//!
//! In KMIP 1.x an attribute travels as `Attribute { Attribute Name (text),
//! Attribute Index?, Attribute Value }`; the name says what the value is. Each
//! standard attribute is named after the tag of its value, so the value's
//! enumeration or mask comes from [`super::enums::enum_for_tag`] /
//! [`super::enums::mask_for_tag`] with [`AttributeDef::tag`].

use super::names::collapse_whitespace;
use super::tag::tags;
use crate::ttlv::{ItemType, Tag};

/// One standard attribute.
#[derive(Debug)]
pub struct AttributeDef {
    /// The name as an Attribute Name carries it, `Cryptographic Algorithm`.
    pub name: &'static str,
    /// The tag of its value (and of the attribute itself in KMIP 2.x).
    pub tag: Tag,
    /// The type of its value; `None` for Custom Attribute, which may be any.
    pub item_type: Option<ItemType>,
    /// Whether an object may carry several instances.
    pub multi_valued: bool,
}

macro_rules! attrs {
    ($($name:literal, $tag:ident, $ty:expr, $multi:literal;)*) => {
        &[$(AttributeDef { name: $name, tag: tags::$tag, item_type: $ty, multi_valued: $multi }),*]
    };
}

use ItemType::{
    Boolean as B, DateTime as D, Enumeration as E, Integer as I, Interval as V, Structure as S,
    TextString as T,
};

/// The standard attributes of KMIP 1.0–1.4.
pub static STANDARD_ATTRIBUTES: &[AttributeDef] = attrs![
    "Unique Identifier", UNIQUE_IDENTIFIER, Some(T), false;
    "Name", NAME, Some(S), true;
    "Object Type", OBJECT_TYPE, Some(E), false;
    "Cryptographic Algorithm", CRYPTOGRAPHIC_ALGORITHM, Some(E), false;
    "Cryptographic Length", CRYPTOGRAPHIC_LENGTH, Some(I), false;
    "Cryptographic Parameters", CRYPTOGRAPHIC_PARAMETERS, Some(S), true;
    "Cryptographic Domain Parameters", CRYPTOGRAPHIC_DOMAIN_PARAMETERS, Some(S), false;
    "Certificate Type", CERTIFICATE_TYPE, Some(E), false;
    "Certificate Length", CERTIFICATE_LENGTH, Some(I), false;
    "X.509 Certificate Identifier", X_509_CERTIFICATE_IDENTIFIER, Some(S), false;
    "X.509 Certificate Subject", X_509_CERTIFICATE_SUBJECT, Some(S), false;
    "X.509 Certificate Issuer", X_509_CERTIFICATE_ISSUER, Some(S), false;
    "Certificate Identifier", CERTIFICATE_IDENTIFIER, Some(S), false;
    "Certificate Subject", CERTIFICATE_SUBJECT, Some(S), false;
    "Certificate Issuer", CERTIFICATE_ISSUER, Some(S), false;
    "Digital Signature Algorithm", DIGITAL_SIGNATURE_ALGORITHM, Some(E), true;
    "Digest", DIGEST, Some(S), true;
    "Operation Policy Name", OPERATION_POLICY_NAME, Some(T), false;
    "Cryptographic Usage Mask", CRYPTOGRAPHIC_USAGE_MASK, Some(I), false;
    "Lease Time", LEASE_TIME, Some(V), false;
    "Usage Limits", USAGE_LIMITS, Some(S), false;
    "State", STATE, Some(E), false;
    "Initial Date", INITIAL_DATE, Some(D), false;
    "Activation Date", ACTIVATION_DATE, Some(D), false;
    "Process Start Date", PROCESS_START_DATE, Some(D), false;
    "Protect Stop Date", PROTECT_STOP_DATE, Some(D), false;
    "Deactivation Date", DEACTIVATION_DATE, Some(D), false;
    "Destroy Date", DESTROY_DATE, Some(D), false;
    "Compromise Occurrence Date", COMPROMISE_OCCURRENCE_DATE, Some(D), false;
    "Compromise Date", COMPROMISE_DATE, Some(D), false;
    "Revocation Reason", REVOCATION_REASON, Some(S), false;
    "Archive Date", ARCHIVE_DATE, Some(D), false;
    "Object Group", OBJECT_GROUP, Some(T), true;
    "Fresh", FRESH, Some(B), false;
    "Link", LINK, Some(S), true;
    "Application Specific Information", APPLICATION_SPECIFIC_INFORMATION, Some(S), true;
    "Contact Information", CONTACT_INFORMATION, Some(T), false;
    "Last Change Date", LAST_CHANGE_DATE, Some(D), false;
    "Custom Attribute", CUSTOM_ATTRIBUTE, None, true;
    "Alternative Name", ALTERNATIVE_NAME, Some(S), true;
    "Key Value Present", KEY_VALUE_PRESENT, Some(B), false;
    "Key Value Location", KEY_VALUE_LOCATION, Some(S), true;
    "Original Creation Date", ORIGINAL_CREATION_DATE, Some(D), false;
    "Random Number Generator", RANDOM_NUMBER_GENERATOR, Some(S), false;
    "PKCS#12 Friendly Name", PKCS_12_FRIENDLY_NAME, Some(T), false;
    "Description", DESCRIPTION, Some(T), false;
    "Comment", COMMENT, Some(T), false;
    "Sensitive", SENSITIVE, Some(B), false;
    "Always Sensitive", ALWAYS_SENSITIVE, Some(B), false;
    "Extractable", EXTRACTABLE, Some(B), false;
    "Never Extractable", NEVER_EXTRACTABLE, Some(B), false;
];

/// The standard attribute an Attribute Name names; runs of white space in
/// `name` count as one space. `None` for custom (`x-`, `y-`) and unknown names.
pub fn standard_attribute(name: &str) -> Option<&'static AttributeDef> {
    let name = collapse_whitespace(name);
    STANDARD_ATTRIBUTES.iter().find(|a| a.name == name)
}

/// The standard attribute whose value carries `tag`.
pub fn attribute_for_tag(tag: Tag) -> Option<&'static AttributeDef> {
    STANDARD_ATTRIBUTES.iter().find(|a| a.tag == tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::enums::{attribute_tag, enum_for_tag, mask_for_tag};

    #[test]
    fn every_attribute_is_named_after_its_tag() {
        for a in STANDARD_ATTRIBUTES {
            assert_eq!(attribute_tag(a.name), Some(a.tag), "{}", a.name);
            if a.item_type == Some(ItemType::Enumeration) {
                assert!(enum_for_tag(a.tag).is_some(), "{}", a.name);
            }
        }
        assert!(mask_for_tag(tags::CRYPTOGRAPHIC_USAGE_MASK).is_some());
    }

    #[test]
    fn looks_up_by_name_and_tag() {
        let a = standard_attribute("Cryptographic   Length").unwrap();
        assert_eq!(
            (a.tag, a.item_type),
            (tags::CRYPTOGRAPHIC_LENGTH, Some(ItemType::Integer))
        );
        assert!(standard_attribute("x-ID").is_none());
        assert_eq!(attribute_for_tag(tags::STATE).map(|a| a.name), Some("State"));
    }
}
