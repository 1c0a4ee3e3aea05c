//! KMIP 1.x attributes (KMIP 1.4 §2.1.1, §3): the Attribute structure, the
//! Template-Attribute that carries them in Create/Register/Re-key, the table of
//! standard attributes with their value types and client rules, and typed
//! views of the structured ones.

use std::borrow::Cow;

use super::enums::{LinkType, NameType, RevocationReasonCode};
use super::error::MessageError;
use super::fields::{Builder, Fields};
use super::names::collapse_whitespace;
use super::tags;
use crate::ttlv::{Item, ItemType, Tag, Value};

/// Standard attribute names (KMIP 1.4 §3), as they travel in Attribute Name.
pub mod attr {
    pub const UNIQUE_IDENTIFIER: &str = "Unique Identifier";
    pub const NAME: &str = "Name";
    pub const OBJECT_TYPE: &str = "Object Type";
    pub const CRYPTOGRAPHIC_ALGORITHM: &str = "Cryptographic Algorithm";
    pub const CRYPTOGRAPHIC_LENGTH: &str = "Cryptographic Length";
    pub const CRYPTOGRAPHIC_PARAMETERS: &str = "Cryptographic Parameters";
    pub const CRYPTOGRAPHIC_DOMAIN_PARAMETERS: &str = "Cryptographic Domain Parameters";
    pub const CERTIFICATE_TYPE: &str = "Certificate Type";
    pub const CERTIFICATE_LENGTH: &str = "Certificate Length";
    pub const X509_CERTIFICATE_IDENTIFIER: &str = "X.509 Certificate Identifier";
    pub const X509_CERTIFICATE_SUBJECT: &str = "X.509 Certificate Subject";
    pub const X509_CERTIFICATE_ISSUER: &str = "X.509 Certificate Issuer";
    pub const CERTIFICATE_IDENTIFIER: &str = "Certificate Identifier";
    pub const CERTIFICATE_SUBJECT: &str = "Certificate Subject";
    pub const CERTIFICATE_ISSUER: &str = "Certificate Issuer";
    pub const DIGITAL_SIGNATURE_ALGORITHM: &str = "Digital Signature Algorithm";
    // KMIP 2.x: the name fields of an X.509 certificate, derived by the server.
    pub const CERTIFICATE_SUBJECT_CN: &str = "Certificate Subject CN";
    pub const CERTIFICATE_SUBJECT_O: &str = "Certificate Subject O";
    pub const CERTIFICATE_SUBJECT_OU: &str = "Certificate Subject OU";
    pub const CERTIFICATE_SUBJECT_EMAIL: &str = "Certificate Subject Email";
    pub const CERTIFICATE_SUBJECT_C: &str = "Certificate Subject C";
    pub const CERTIFICATE_SUBJECT_ST: &str = "Certificate Subject ST";
    pub const CERTIFICATE_SUBJECT_L: &str = "Certificate Subject L";
    pub const CERTIFICATE_SUBJECT_UID: &str = "Certificate Subject UID";
    pub const CERTIFICATE_SUBJECT_SERIAL_NUMBER: &str = "Certificate Subject Serial Number";
    pub const CERTIFICATE_SUBJECT_TITLE: &str = "Certificate Subject Title";
    pub const CERTIFICATE_SUBJECT_DC: &str = "Certificate Subject DC";
    pub const CERTIFICATE_SUBJECT_DN_QUALIFIER: &str = "Certificate Subject DN Qualifier";
    pub const CERTIFICATE_ISSUER_CN: &str = "Certificate Issuer CN";
    pub const CERTIFICATE_ISSUER_O: &str = "Certificate Issuer O";
    pub const CERTIFICATE_ISSUER_OU: &str = "Certificate Issuer OU";
    pub const CERTIFICATE_ISSUER_EMAIL: &str = "Certificate Issuer Email";
    pub const CERTIFICATE_ISSUER_C: &str = "Certificate Issuer C";
    pub const CERTIFICATE_ISSUER_ST: &str = "Certificate Issuer ST";
    pub const CERTIFICATE_ISSUER_L: &str = "Certificate Issuer L";
    pub const CERTIFICATE_ISSUER_UID: &str = "Certificate Issuer UID";
    pub const CERTIFICATE_ISSUER_SERIAL_NUMBER: &str = "Certificate Issuer Serial Number";
    pub const CERTIFICATE_ISSUER_TITLE: &str = "Certificate Issuer Title";
    pub const CERTIFICATE_ISSUER_DC: &str = "Certificate Issuer DC";
    pub const CERTIFICATE_ISSUER_DN_QUALIFIER: &str = "Certificate Issuer DN Qualifier";
    pub const DIGEST: &str = "Digest";
    pub const OPERATION_POLICY_NAME: &str = "Operation Policy Name";
    pub const CRYPTOGRAPHIC_USAGE_MASK: &str = "Cryptographic Usage Mask";
    pub const LEASE_TIME: &str = "Lease Time";
    pub const USAGE_LIMITS: &str = "Usage Limits";
    pub const STATE: &str = "State";
    pub const INITIAL_DATE: &str = "Initial Date";
    pub const ACTIVATION_DATE: &str = "Activation Date";
    pub const PROCESS_START_DATE: &str = "Process Start Date";
    pub const PROTECT_STOP_DATE: &str = "Protect Stop Date";
    pub const DEACTIVATION_DATE: &str = "Deactivation Date";
    pub const DESTROY_DATE: &str = "Destroy Date";
    pub const COMPROMISE_OCCURRENCE_DATE: &str = "Compromise Occurrence Date";
    pub const COMPROMISE_DATE: &str = "Compromise Date";
    pub const REVOCATION_REASON: &str = "Revocation Reason";
    pub const ARCHIVE_DATE: &str = "Archive Date";
    pub const OBJECT_GROUP: &str = "Object Group";
    pub const FRESH: &str = "Fresh";
    pub const LINK: &str = "Link";
    pub const APPLICATION_SPECIFIC_INFORMATION: &str = "Application Specific Information";
    pub const CONTACT_INFORMATION: &str = "Contact Information";
    pub const LAST_CHANGE_DATE: &str = "Last Change Date";
    pub const ALTERNATIVE_NAME: &str = "Alternative Name";
    pub const KEY_VALUE_PRESENT: &str = "Key Value Present";
    pub const KEY_VALUE_LOCATION: &str = "Key Value Location";
    pub const ORIGINAL_CREATION_DATE: &str = "Original Creation Date";
    pub const RANDOM_NUMBER_GENERATOR: &str = "Random Number Generator";
    pub const PKCS12_FRIENDLY_NAME: &str = "PKCS#12 Friendly Name";
    pub const DESCRIPTION: &str = "Description";
    pub const COMMENT: &str = "Comment";
    pub const SENSITIVE: &str = "Sensitive";
    pub const ALWAYS_SENSITIVE: &str = "Always Sensitive";
    pub const EXTRACTABLE: &str = "Extractable";
    pub const NEVER_EXTRACTABLE: &str = "Never Extractable";
}

/// What KMIP says about one standard attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttributeSpec {
    pub name: &'static str,
    /// The TTLV type of its Attribute Value.
    pub value_type: ItemType,
    /// Whether an object may hold several instances.
    pub multi_instance: bool,
    /// Whether a client may supply it (in a Create/Register template or with
    /// Add Attribute). Cryptographic Algorithm/Length/Usage Mask count as
    /// client-supplied: the server takes them from the template.
    pub client_settable: bool,
    /// Whether Modify Attribute from a client may change it.
    pub client_modifiable: bool,
    /// Whether Delete Attribute from a client may remove it.
    pub client_deletable: bool,
}

const fn spec(
    name: &'static str,
    value_type: ItemType,
    multi_instance: bool,
    client_settable: bool,
    client_modifiable: bool,
    client_deletable: bool,
) -> AttributeSpec {
    AttributeSpec {
        name,
        value_type,
        multi_instance,
        client_settable,
        client_modifiable,
        client_deletable,
    }
}

use ItemType::{
    Boolean as B, DateTime as D, Enumeration as E, Integer as I, Interval as V, Structure as S,
    TextString as T,
};

/// The standard attributes of KMIP 1.0–1.4 and their rules (the "attribute
/// rules" table of each §3 subsection): name, value type, multi-instance,
/// client may set, modify, delete; then the 2.x certificate name fields
/// keyward derives from a registered certificate.
pub const STANDARD_ATTRIBUTES: &[AttributeSpec] = &[
    spec(attr::UNIQUE_IDENTIFIER, T, false, false, false, false),
    spec(attr::NAME, S, true, true, true, true),
    spec(attr::OBJECT_TYPE, E, false, false, false, false),
    spec(attr::CRYPTOGRAPHIC_ALGORITHM, E, false, true, false, false),
    spec(attr::CRYPTOGRAPHIC_LENGTH, I, false, true, false, false),
    spec(attr::CRYPTOGRAPHIC_PARAMETERS, S, true, true, true, true),
    spec(
        attr::CRYPTOGRAPHIC_DOMAIN_PARAMETERS,
        S,
        false,
        true,
        false,
        false,
    ),
    spec(attr::CERTIFICATE_TYPE, E, false, false, false, false),
    spec(attr::CERTIFICATE_LENGTH, I, false, false, false, false),
    spec(attr::X509_CERTIFICATE_IDENTIFIER, S, false, false, false, false),
    spec(attr::X509_CERTIFICATE_SUBJECT, S, false, false, false, false),
    spec(attr::X509_CERTIFICATE_ISSUER, S, false, false, false, false),
    spec(attr::CERTIFICATE_IDENTIFIER, S, false, false, false, false),
    spec(attr::CERTIFICATE_SUBJECT, S, false, false, false, false),
    spec(attr::CERTIFICATE_ISSUER, S, false, false, false, false),
    spec(attr::DIGITAL_SIGNATURE_ALGORITHM, E, true, false, false, false),
    spec(attr::DIGEST, S, true, false, false, false),
    spec(attr::OPERATION_POLICY_NAME, T, false, true, true, true),
    spec(attr::CRYPTOGRAPHIC_USAGE_MASK, I, false, true, false, false),
    spec(attr::LEASE_TIME, V, false, false, false, false),
    spec(attr::USAGE_LIMITS, S, false, true, true, true),
    spec(attr::STATE, E, false, false, false, false),
    spec(attr::INITIAL_DATE, D, false, false, false, false),
    spec(attr::ACTIVATION_DATE, D, false, true, true, false),
    spec(attr::PROCESS_START_DATE, D, false, true, true, false),
    spec(attr::PROTECT_STOP_DATE, D, false, true, true, false),
    spec(attr::DEACTIVATION_DATE, D, false, true, true, false),
    spec(attr::DESTROY_DATE, D, false, false, false, false),
    spec(attr::COMPROMISE_OCCURRENCE_DATE, D, false, false, false, false),
    spec(attr::COMPROMISE_DATE, D, false, false, false, false),
    spec(attr::REVOCATION_REASON, S, false, false, false, false),
    spec(attr::ARCHIVE_DATE, D, false, false, false, false),
    spec(attr::OBJECT_GROUP, T, true, true, true, true),
    spec(attr::FRESH, B, false, true, false, false),
    spec(attr::LINK, S, true, true, true, true),
    spec(attr::APPLICATION_SPECIFIC_INFORMATION, S, true, true, true, true),
    spec(attr::CONTACT_INFORMATION, T, false, true, true, true),
    spec(attr::LAST_CHANGE_DATE, D, false, false, false, false),
    spec(attr::ALTERNATIVE_NAME, S, true, true, true, true),
    spec(attr::KEY_VALUE_PRESENT, B, false, false, false, false),
    spec(attr::KEY_VALUE_LOCATION, S, true, true, false, false),
    spec(attr::ORIGINAL_CREATION_DATE, D, false, true, false, false),
    spec(attr::RANDOM_NUMBER_GENERATOR, S, false, true, false, false),
    spec(attr::PKCS12_FRIENDLY_NAME, T, false, true, true, true),
    spec(attr::DESCRIPTION, T, false, true, true, true),
    spec(attr::COMMENT, T, false, true, true, true),
    spec(attr::SENSITIVE, B, false, true, true, false),
    spec(attr::ALWAYS_SENSITIVE, B, false, false, false, false),
    spec(attr::EXTRACTABLE, B, false, true, true, false),
    spec(attr::NEVER_EXTRACTABLE, B, false, false, false, false),
    // KMIP 2.x certificate name fields (server-set; 1.x clients may read them).
    spec(attr::CERTIFICATE_SUBJECT_CN, T, true, false, false, false),
    spec(attr::CERTIFICATE_SUBJECT_O, T, true, false, false, false),
    spec(attr::CERTIFICATE_SUBJECT_OU, T, true, false, false, false),
    spec(attr::CERTIFICATE_SUBJECT_EMAIL, T, true, false, false, false),
    spec(attr::CERTIFICATE_SUBJECT_C, T, true, false, false, false),
    spec(attr::CERTIFICATE_SUBJECT_ST, T, true, false, false, false),
    spec(attr::CERTIFICATE_SUBJECT_L, T, true, false, false, false),
    spec(attr::CERTIFICATE_SUBJECT_UID, T, true, false, false, false),
    spec(
        attr::CERTIFICATE_SUBJECT_SERIAL_NUMBER,
        T,
        true,
        false,
        false,
        false,
    ),
    spec(attr::CERTIFICATE_SUBJECT_TITLE, T, true, false, false, false),
    spec(attr::CERTIFICATE_SUBJECT_DC, T, true, false, false, false),
    spec(
        attr::CERTIFICATE_SUBJECT_DN_QUALIFIER,
        T,
        true,
        false,
        false,
        false,
    ),
    spec(attr::CERTIFICATE_ISSUER_CN, T, true, false, false, false),
    spec(attr::CERTIFICATE_ISSUER_O, T, true, false, false, false),
    spec(attr::CERTIFICATE_ISSUER_OU, T, true, false, false, false),
    spec(attr::CERTIFICATE_ISSUER_EMAIL, T, true, false, false, false),
    spec(attr::CERTIFICATE_ISSUER_C, T, true, false, false, false),
    spec(attr::CERTIFICATE_ISSUER_ST, T, true, false, false, false),
    spec(attr::CERTIFICATE_ISSUER_L, T, true, false, false, false),
    spec(attr::CERTIFICATE_ISSUER_UID, T, true, false, false, false),
    spec(
        attr::CERTIFICATE_ISSUER_SERIAL_NUMBER,
        T,
        true,
        false,
        false,
        false,
    ),
    spec(attr::CERTIFICATE_ISSUER_TITLE, T, true, false, false, false),
    spec(attr::CERTIFICATE_ISSUER_DC, T, true, false, false, false),
    spec(
        attr::CERTIFICATE_ISSUER_DN_QUALIFIER,
        T,
        true,
        false,
        false,
        false,
    ),
];

/// The rules of a standard attribute (runs of white space in `name` ignored).
pub fn standard(name: &str) -> Option<&'static AttributeSpec> {
    let name = collapse_whitespace(name);
    STANDARD_ATTRIBUTES.iter().find(|s| s.name == name)
}

/// Custom attributes (KMIP 1.4 §3.39): `x-` names are set by clients, `y-`
/// names by the server. Their value may have any type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Custom {
    Client,
    Server,
}

pub fn custom(name: &str) -> Option<Custom> {
    if name.starts_with("x-") || name.starts_with("X-") {
        Some(Custom::Client)
    } else if name.starts_with("y-") || name.starts_with("Y-") {
        Some(Custom::Server)
    } else {
        None
    }
}

pub fn is_multi_instance(name: &str) -> bool {
    custom(name).is_some() || standard(name).is_some_and(|s| s.multi_instance)
}

pub fn client_may_set(name: &str) -> bool {
    custom(name) == Some(Custom::Client) || standard(name).is_some_and(|s| s.client_settable)
}

pub fn client_may_modify(name: &str) -> bool {
    custom(name) == Some(Custom::Client) || standard(name).is_some_and(|s| s.client_modifiable)
}

pub fn client_may_delete(name: &str) -> bool {
    custom(name) == Some(Custom::Client) || standard(name).is_some_and(|s| s.client_deletable)
}

/// One KMIP 1.x attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// The name, with runs of white space collapsed (some 1.0–1.2 clients pad).
    pub name: String,
    pub index: Option<i32>,
    /// The Attribute Value item (tag Attribute Value).
    pub value: Item,
}

impl Attribute {
    pub fn new(name: impl Into<String>, value: Value) -> Attribute {
        Attribute {
            name: name.into(),
            index: None,
            value: Item::new(tags::ATTRIBUTE_VALUE, value),
        }
    }

    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::ATTRIBUTE)?;
        let name: String = f.req(tags::ATTRIBUTE_NAME)?;
        let name = match collapse_whitespace(&name) {
            Cow::Borrowed(_) => name,
            Cow::Owned(n) => n,
        };
        let index: Option<i32> = f.opt(tags::ATTRIBUTE_INDEX)?;
        if index.is_some_and(|i| i < 0) {
            return Err(MessageError::InvalidValue {
                tag: tags::ATTRIBUTE_INDEX,
                reason: "negative",
            });
        }
        let value = f.req_item(tags::ATTRIBUTE_VALUE)?.clone();
        Ok(Attribute { name, index, value })
    }

    pub fn to_item(&self) -> Item {
        Builder::new()
            .put(tags::ATTRIBUTE_NAME, &self.name)
            .opt(tags::ATTRIBUTE_INDEX, &self.index)
            .item(&self.value)
            .finish(tags::ATTRIBUTE)
    }

    pub fn spec(&self) -> Option<&'static AttributeSpec> {
        standard(&self.name)
    }
}

/// Checks that an attribute has a known (or custom) name and a value of the
/// shape KMIP gives that name. Does not check who may set it.
pub fn validate_value(a: &Attribute) -> Result<(), MessageError> {
    let bad = |reason| MessageError::InvalidAttributeValue {
        name: a.name.clone(),
        reason,
    };
    if a.value.tag != tags::ATTRIBUTE_VALUE {
        return Err(MessageError::UnexpectedTag {
            expected: tags::ATTRIBUTE_VALUE,
            found: a.value.tag,
        });
    }
    if custom(&a.name).is_some() {
        return Ok(());
    }
    let Some(spec) = standard(&a.name) else {
        return Err(MessageError::UnknownAttribute { name: a.name.clone() });
    };
    if a.value.value.item_type() != spec.value_type {
        return Err(bad(type_reason(spec.value_type)));
    }
    for &(tag, ty, required) in structure_fields(spec.name) {
        let mut found = a.value.children_with(tag);
        match found.next() {
            None if required => return Err(bad("a required field of the structure is missing")),
            None => {}
            Some(item) if item.value.item_type() != ty => {
                return Err(bad("a field of the structure has the wrong type"));
            }
            Some(_) => {}
        }
        if found.next().is_some() {
            return Err(bad("a field of the structure appears twice"));
        }
    }
    match spec.name {
        attr::CRYPTOGRAPHIC_LENGTH | attr::CERTIFICATE_LENGTH if a.value.as_i32().is_some_and(|v| v <= 0) => {
            Err(bad("must be positive"))
        }
        _ => Ok(()),
    }
}

fn type_reason(t: ItemType) -> &'static str {
    match t {
        ItemType::Structure => "must be a Structure",
        ItemType::Integer => "must be an Integer",
        ItemType::Enumeration => "must be an Enumeration",
        ItemType::Boolean => "must be a Boolean",
        ItemType::TextString => "must be a Text String",
        ItemType::DateTime => "must be a Date-Time",
        ItemType::Interval => "must be an Interval",
        _ => "has the wrong type",
    }
}

/// The fields of the structured attributes: (tag, type, required).
fn structure_fields(name: &str) -> &'static [(Tag, ItemType, bool)] {
    use ItemType::{ByteString, Enumeration, LongInteger, TextString};
    match name {
        attr::NAME => &[
            (tags::NAME_VALUE, TextString, true),
            (tags::NAME_TYPE, Enumeration, true),
        ],
        attr::LINK => &[
            (tags::LINK_TYPE, Enumeration, true),
            (tags::LINKED_OBJECT_IDENTIFIER, TextString, true),
        ],
        attr::REVOCATION_REASON => &[
            (tags::REVOCATION_REASON_CODE, Enumeration, true),
            (tags::REVOCATION_MESSAGE, TextString, false),
        ],
        attr::DIGEST => &[
            (tags::HASHING_ALGORITHM, Enumeration, true),
            (tags::DIGEST_VALUE, ByteString, false),
            (tags::KEY_FORMAT_TYPE, Enumeration, false),
        ],
        attr::USAGE_LIMITS => &[
            (tags::USAGE_LIMITS_TOTAL, LongInteger, true),
            (tags::USAGE_LIMITS_COUNT, LongInteger, false),
            (tags::USAGE_LIMITS_UNIT, Enumeration, true),
        ],
        attr::APPLICATION_SPECIFIC_INFORMATION => &[
            (tags::APPLICATION_NAMESPACE, TextString, true),
            (tags::APPLICATION_DATA, TextString, false),
        ],
        attr::ALTERNATIVE_NAME => &[
            (tags::ALTERNATIVE_NAME_VALUE, TextString, true),
            (tags::ALTERNATIVE_NAME_TYPE, Enumeration, true),
        ],
        attr::KEY_VALUE_LOCATION => &[
            (tags::KEY_VALUE_LOCATION_VALUE, TextString, true),
            (tags::KEY_VALUE_LOCATION_TYPE, Enumeration, true),
        ],
        _ => &[],
    }
}

/// A Template-Attribute (also Common/Private/Public Template-Attribute): names
/// of stored Templates and attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateAttribute {
    /// Name structures naming Template objects (deprecated in 1.3).
    pub names: Vec<Item>,
    pub attributes: Vec<Attribute>,
}

impl TemplateAttribute {
    pub fn new(attributes: Vec<Attribute>) -> Self {
        TemplateAttribute {
            names: Vec::new(),
            attributes,
        }
    }

    /// Reads a structure tagged `tag` (Template-Attribute or one of its kin).
    pub fn from_item(item: &Item, tag: Tag) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tag)?;
        let names = f.all_items(tags::NAME).into_iter().cloned().collect();
        let attributes = f
            .all_items_at_most(tags::ATTRIBUTE, crate::limits::MAX_ATTRIBUTES_PER_TEMPLATE)?
            .into_iter()
            .map(Attribute::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TemplateAttribute { names, attributes })
    }

    pub fn to_item(&self, tag: Tag) -> Item {
        let mut b = Builder::new();
        b.items(&self.names);
        for a in &self.attributes {
            b.push(a.to_item());
        }
        b.finish(tag)
    }

    /// The first attribute with this name.
    pub fn get(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

/// The Name attribute's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub value: String,
    pub name_type: NameType,
}

impl Name {
    /// Reads the structure whatever its tag (Attribute Value, or Name).
    pub fn from_value(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, item.tag)?;
        Ok(Name {
            value: f.req(tags::NAME_VALUE)?,
            name_type: f.req(tags::NAME_TYPE)?,
        })
    }

    pub fn to_value(&self, tag: Tag) -> Item {
        Builder::new()
            .put(tags::NAME_VALUE, &self.value)
            .put(tags::NAME_TYPE, &self.name_type)
            .finish(tag)
    }
}

/// The Link attribute's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub link_type: LinkType,
    pub linked_object_identifier: String,
}

impl Link {
    pub fn from_value(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, item.tag)?;
        Ok(Link {
            link_type: f.req(tags::LINK_TYPE)?,
            linked_object_identifier: f.req(tags::LINKED_OBJECT_IDENTIFIER)?,
        })
    }

    pub fn to_value(&self, tag: Tag) -> Item {
        Builder::new()
            .put(tags::LINK_TYPE, &self.link_type)
            .put(tags::LINKED_OBJECT_IDENTIFIER, &self.linked_object_identifier)
            .finish(tag)
    }
}

/// The Revocation Reason attribute's value, also a Revoke request field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationReason {
    pub code: RevocationReasonCode,
    pub message: Option<String>,
}

impl RevocationReason {
    pub fn from_value(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, item.tag)?;
        Ok(RevocationReason {
            code: f.req(tags::REVOCATION_REASON_CODE)?,
            message: f.opt(tags::REVOCATION_MESSAGE)?,
        })
    }

    pub fn to_value(&self, tag: Tag) -> Item {
        Builder::new()
            .put(tags::REVOCATION_REASON_CODE, &self.code)
            .opt(tags::REVOCATION_MESSAGE, &self.message)
            .finish(tag)
    }
}

#[cfg(test)]
#[path = "attribute_tests.rs"]
mod tests;
