//! Managed objects (KMIP 1.4 §2.2) and the Key Block inside keys (§2.1.3).
//!
//! Key material only ever sits in [`SecretBytes`] (or in a TTLV [`Item`] whose
//! byte strings are `SecretBytes`), and no `Debug` here prints it.

use std::fmt;

use super::attribute::Attribute;
use super::enums::{
    CertificateType, CryptographicAlgorithm, KeyCompressionType, KeyFormatType, ObjectType, OpaqueDataType,
    SecretDataType,
};
use super::error::MessageError;
use super::fields::{Builder, Fields};
use super::tags;
use crate::secret::SecretBytes;
use crate::ttlv::{Item, ItemType, Tag, Value};

/// The Key Material of a Key Value.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// A Byte String: Raw, Opaque, PKCS#1, PKCS#8, X.509 ... formats.
    Bytes(SecretBytes),
    /// Transparent Symmetric Key: a structure holding one Key byte string.
    TransparentSymmetric { key: SecretBytes },
    /// Any other structure (transparent asymmetric keys ...), kept as it is.
    Other(Item),
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::Bytes(b) => write!(f, "Bytes({b:?})"),
            KeyMaterial::TransparentSymmetric { key } => write!(f, "TransparentSymmetric({key:?})"),
            KeyMaterial::Other(item) => {
                write!(f, "Other(<redacted {}>)", item.value.item_type().name())
            }
        }
    }
}

impl KeyMaterial {
    fn from_item(item: &Item, format: KeyFormatType) -> Result<Self, MessageError> {
        match &item.value {
            Value::ByteString(b) => Ok(KeyMaterial::Bytes(b.clone())),
            Value::Structure(_) if format == KeyFormatType::TRANSPARENT_SYMMETRIC_KEY => {
                let mut f = Fields::of(item, tags::KEY_MATERIAL)?;
                Ok(KeyMaterial::TransparentSymmetric {
                    key: f.req(tags::KEY)?,
                })
            }
            Value::Structure(_) => Ok(KeyMaterial::Other(item.clone())),
            v => Err(MessageError::wrong_type(
                tags::KEY_MATERIAL,
                ItemType::ByteString,
                v.item_type(),
            )),
        }
    }

    fn into_item(self) -> Item {
        match self {
            KeyMaterial::Bytes(b) => Item::new(tags::KEY_MATERIAL, Value::ByteString(b)),
            KeyMaterial::TransparentSymmetric { key } => Item::structure(
                tags::KEY_MATERIAL,
                vec![Item::new(tags::KEY, Value::ByteString(key))],
            ),
            KeyMaterial::Other(item) => item,
        }
    }

    fn to_item(&self) -> Item {
        match self {
            KeyMaterial::Bytes(b) => Item::new(tags::KEY_MATERIAL, Value::ByteString(b.clone())),
            KeyMaterial::TransparentSymmetric { key } => Item::structure(
                tags::KEY_MATERIAL,
                vec![Item::new(tags::KEY, Value::ByteString(key.clone()))],
            ),
            KeyMaterial::Other(item) => item.clone(),
        }
    }
}

/// The Key Value of a Key Block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyValue {
    /// The Key Value structure: key material and attributes bound to it.
    Plain {
        key_material: KeyMaterial,
        attributes: Vec<Attribute>,
    },
    /// A wrapped key: the whole Key Value encrypted, as a Byte String.
    Wrapped(SecretBytes),
}

impl KeyValue {
    fn from_item(item: &Item, format: KeyFormatType) -> Result<Self, MessageError> {
        if let Value::ByteString(b) = &item.value {
            return Ok(KeyValue::Wrapped(b.clone()));
        }
        let mut f = Fields::of(item, tags::KEY_VALUE)?;
        let key_material = KeyMaterial::from_item(f.req_item(tags::KEY_MATERIAL)?, format)?;
        let attributes = f
            .all_items(tags::ATTRIBUTE)
            .into_iter()
            .map(Attribute::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyValue::Plain {
            key_material,
            attributes,
        })
    }

    fn into_item(self) -> Item {
        match self {
            KeyValue::Wrapped(b) => Item::new(tags::KEY_VALUE, Value::ByteString(b)),
            KeyValue::Plain {
                key_material,
                attributes,
            } => {
                let mut b = Builder::new();
                b.push(key_material.into_item());
                for a in attributes {
                    b.push(a.to_item());
                }
                b.finish(tags::KEY_VALUE)
            }
        }
    }

    fn to_item(&self) -> Item {
        match self {
            KeyValue::Wrapped(b) => Item::new(tags::KEY_VALUE, Value::ByteString(b.clone())),
            KeyValue::Plain {
                key_material,
                attributes,
            } => {
                let mut b = Builder::new();
                b.push(key_material.to_item());
                for a in attributes {
                    b.push(a.to_item());
                }
                b.finish(tags::KEY_VALUE)
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBlock {
    pub key_format_type: KeyFormatType,
    pub key_compression_type: Option<KeyCompressionType>,
    /// Absent only for keys whose value is kept elsewhere (KMIP 1.2 Key
    /// Value Present = false).
    pub key_value: Option<KeyValue>,
    pub cryptographic_algorithm: Option<CryptographicAlgorithm>,
    pub cryptographic_length: Option<i32>,
    pub key_wrapping_data: Option<Item>,
}

impl KeyBlock {
    /// An unwrapped Raw key, as vCenter expects from Get.
    pub fn raw(algorithm: CryptographicAlgorithm, key: SecretBytes) -> KeyBlock {
        let bits = i32::try_from(key.len().saturating_mul(8)).unwrap_or(i32::MAX);
        KeyBlock {
            key_format_type: KeyFormatType::RAW,
            key_compression_type: None,
            key_value: Some(KeyValue::Plain {
                key_material: KeyMaterial::Bytes(key),
                attributes: Vec::new(),
            }),
            cryptographic_algorithm: Some(algorithm),
            cryptographic_length: Some(bits),
            key_wrapping_data: None,
        }
    }

    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::KEY_BLOCK)?;
        let key_format_type = f.req(tags::KEY_FORMAT_TYPE)?;
        Ok(KeyBlock {
            key_format_type,
            key_compression_type: f.opt(tags::KEY_COMPRESSION_TYPE)?,
            key_value: f
                .opt_item(tags::KEY_VALUE)?
                .map(|v| KeyValue::from_item(v, key_format_type))
                .transpose()?,
            cryptographic_algorithm: f.opt(tags::CRYPTOGRAPHIC_ALGORITHM)?,
            cryptographic_length: f.opt(tags::CRYPTOGRAPHIC_LENGTH)?,
            key_wrapping_data: f.opt(tags::KEY_WRAPPING_DATA)?,
        })
    }

    /// Like [`KeyBlock::to_item`], moving the key material instead of copying it.
    pub fn into_item(self) -> Item {
        let mut b = Builder::new();
        b.put(tags::KEY_FORMAT_TYPE, &self.key_format_type)
            .opt(tags::KEY_COMPRESSION_TYPE, &self.key_compression_type);
        if let Some(value) = self.key_value {
            b.push(value.into_item());
        }
        b.opt(tags::CRYPTOGRAPHIC_ALGORITHM, &self.cryptographic_algorithm)
            .opt(tags::CRYPTOGRAPHIC_LENGTH, &self.cryptographic_length);
        if let Some(wrapping) = self.key_wrapping_data {
            b.push(wrapping);
        }
        b.finish(tags::KEY_BLOCK)
    }

    pub fn to_item(&self) -> Item {
        Builder::new()
            .put(tags::KEY_FORMAT_TYPE, &self.key_format_type)
            .opt(tags::KEY_COMPRESSION_TYPE, &self.key_compression_type)
            .opt_item(&self.key_value.as_ref().map(KeyValue::to_item))
            .opt(tags::CRYPTOGRAPHIC_ALGORITHM, &self.cryptographic_algorithm)
            .opt(tags::CRYPTOGRAPHIC_LENGTH, &self.cryptographic_length)
            .opt_item(&self.key_wrapping_data)
            .finish(tags::KEY_BLOCK)
    }
}

/// A managed object as it travels in Register and Get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagedObject {
    SymmetricKey {
        key_block: KeyBlock,
    },
    PublicKey {
        key_block: KeyBlock,
    },
    /// Sealed like every key; its material is a PKCS#1 or PKCS#8 DER, or a
    /// transparent structure, in the key block.
    PrivateKey {
        key_block: KeyBlock,
    },
    /// An X.509 (DER) or PGP certificate.
    Certificate {
        certificate_type: CertificateType,
        value: SecretBytes,
    },
    SecretData {
        secret_data_type: SecretDataType,
        key_block: KeyBlock,
    },
    OpaqueObject {
        opaque_data_type: OpaqueDataType,
        value: SecretBytes,
    },
    /// A Template (deprecated in 1.3): attributes only.
    Template {
        attributes: Vec<Attribute>,
    },
    /// Split and PGP keys: kept as they are.
    Other {
        tag: Tag,
        item: Item,
    },
}

/// The object tag of each object type KMIP 1.x defines.
const OBJECT_TAGS: &[(ObjectType, Tag)] = &[
    (ObjectType::CERTIFICATE, tags::CERTIFICATE),
    (ObjectType::SYMMETRIC_KEY, tags::SYMMETRIC_KEY),
    (ObjectType::PUBLIC_KEY, tags::PUBLIC_KEY),
    (ObjectType::PRIVATE_KEY, tags::PRIVATE_KEY),
    (ObjectType::SPLIT_KEY, tags::SPLIT_KEY),
    (ObjectType::TEMPLATE, tags::TEMPLATE),
    (ObjectType::SECRET_DATA, tags::SECRET_DATA),
    (ObjectType::OPAQUE_OBJECT, tags::OPAQUE_OBJECT),
    (ObjectType::PGP_KEY, tags::PGP_KEY),
];

/// The tag under which an object of this type travels.
pub fn object_tag(object_type: ObjectType) -> Option<Tag> {
    OBJECT_TAGS
        .iter()
        .find(|(t, _)| *t == object_type)
        .map(|(_, tag)| *tag)
}

/// The object type whose objects travel under this tag.
pub fn object_type_of_tag(tag: Tag) -> Option<ObjectType> {
    OBJECT_TAGS.iter().find(|(_, t)| *t == tag).map(|(ot, _)| *ot)
}

impl ManagedObject {
    pub fn object_type(&self) -> ObjectType {
        match self {
            ManagedObject::SymmetricKey { .. } => ObjectType::SYMMETRIC_KEY,
            ManagedObject::PublicKey { .. } => ObjectType::PUBLIC_KEY,
            ManagedObject::PrivateKey { .. } => ObjectType::PRIVATE_KEY,
            ManagedObject::Certificate { .. } => ObjectType::CERTIFICATE,
            ManagedObject::SecretData { .. } => ObjectType::SECRET_DATA,
            ManagedObject::OpaqueObject { .. } => ObjectType::OPAQUE_OBJECT,
            ManagedObject::Template { .. } => ObjectType::TEMPLATE,
            // `from_item` only builds Other for tags in OBJECT_TAGS.
            ManagedObject::Other { tag, .. } => object_type_of_tag(*tag).unwrap_or(ObjectType(0)),
        }
    }

    pub fn tag(&self) -> Tag {
        match self {
            ManagedObject::SymmetricKey { .. } => tags::SYMMETRIC_KEY,
            ManagedObject::PublicKey { .. } => tags::PUBLIC_KEY,
            ManagedObject::PrivateKey { .. } => tags::PRIVATE_KEY,
            ManagedObject::Certificate { .. } => tags::CERTIFICATE,
            ManagedObject::SecretData { .. } => tags::SECRET_DATA,
            ManagedObject::OpaqueObject { .. } => tags::OPAQUE_OBJECT,
            ManagedObject::Template { .. } => tags::TEMPLATE,
            ManagedObject::Other { tag, .. } => *tag,
        }
    }

    /// The Key Block, for objects that have one.
    pub fn key_block(&self) -> Option<&KeyBlock> {
        match self {
            ManagedObject::SymmetricKey { key_block }
            | ManagedObject::PublicKey { key_block }
            | ManagedObject::PrivateKey { key_block }
            | ManagedObject::SecretData { key_block, .. } => Some(key_block),
            _ => None,
        }
    }

    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let tag = item.tag;
        let mut f = Fields::of(item, tag)?;
        Ok(match tag {
            t if t == tags::SYMMETRIC_KEY => ManagedObject::SymmetricKey {
                key_block: KeyBlock::from_item(f.req_item(tags::KEY_BLOCK)?)?,
            },
            t if t == tags::PUBLIC_KEY => ManagedObject::PublicKey {
                key_block: KeyBlock::from_item(f.req_item(tags::KEY_BLOCK)?)?,
            },
            t if t == tags::PRIVATE_KEY => ManagedObject::PrivateKey {
                key_block: KeyBlock::from_item(f.req_item(tags::KEY_BLOCK)?)?,
            },
            t if t == tags::CERTIFICATE => ManagedObject::Certificate {
                certificate_type: f.req(tags::CERTIFICATE_TYPE)?,
                value: f.req(tags::CERTIFICATE_VALUE)?,
            },
            t if t == tags::SECRET_DATA => ManagedObject::SecretData {
                secret_data_type: f.req(tags::SECRET_DATA_TYPE)?,
                key_block: KeyBlock::from_item(f.req_item(tags::KEY_BLOCK)?)?,
            },
            t if t == tags::OPAQUE_OBJECT => ManagedObject::OpaqueObject {
                opaque_data_type: f.req(tags::OPAQUE_DATA_TYPE)?,
                value: f.req(tags::OPAQUE_DATA_VALUE)?,
            },
            t if t == tags::TEMPLATE => ManagedObject::Template {
                attributes: f
                    .all_items(tags::ATTRIBUTE)
                    .into_iter()
                    .map(Attribute::from_item)
                    .collect::<Result<Vec<_>, _>>()?,
            },
            t if object_type_of_tag(t).is_some() => ManagedObject::Other {
                tag,
                item: item.clone(),
            },
            _ => {
                return Err(MessageError::InvalidValue {
                    tag,
                    reason: "not a managed object",
                });
            }
        })
    }

    /// Like [`ManagedObject::from_item`], moving the key material out of
    /// `item` instead of copying it (the Raw key of a Symmetric Key or Secret
    /// Data, the value of an Opaque Object; other forms are copied).
    pub fn from_tree(mut item: Item) -> Result<Self, MessageError> {
        let taken = material_slot(&mut item).map(std::mem::take);
        let mut object = ManagedObject::from_item(&item)?;
        if let Some(bytes) = taken {
            match &mut object {
                ManagedObject::SymmetricKey { key_block }
                | ManagedObject::PublicKey { key_block }
                | ManagedObject::PrivateKey { key_block }
                | ManagedObject::SecretData { key_block, .. } => {
                    if let Some(KeyValue::Plain {
                        key_material: KeyMaterial::Bytes(slot),
                        ..
                    }) = &mut key_block.key_value
                    {
                        *slot = bytes;
                    }
                }
                ManagedObject::OpaqueObject { value, .. } | ManagedObject::Certificate { value, .. } => {
                    *value = bytes
                }
                ManagedObject::Template { .. } | ManagedObject::Other { .. } => {}
            }
        }
        Ok(object)
    }

    /// Like [`ManagedObject::to_item`], moving the key material into the tree.
    pub fn into_item(self) -> Item {
        let tag = self.tag();
        let mut b = Builder::new();
        match self {
            ManagedObject::SymmetricKey { key_block }
            | ManagedObject::PublicKey { key_block }
            | ManagedObject::PrivateKey { key_block } => b.push(key_block.into_item()),
            ManagedObject::Certificate {
                certificate_type,
                value,
            } => b
                .put(tags::CERTIFICATE_TYPE, &certificate_type)
                .push(Item::new(tags::CERTIFICATE_VALUE, Value::ByteString(value))),
            ManagedObject::SecretData {
                secret_data_type,
                key_block,
            } => b
                .put(tags::SECRET_DATA_TYPE, &secret_data_type)
                .push(key_block.into_item()),
            ManagedObject::OpaqueObject {
                opaque_data_type,
                value,
            } => b
                .put(tags::OPAQUE_DATA_TYPE, &opaque_data_type)
                .push(Item::new(tags::OPAQUE_DATA_VALUE, Value::ByteString(value))),
            ManagedObject::Template { attributes } => {
                for a in attributes {
                    b.push(a.to_item());
                }
                &mut b
            }
            ManagedObject::Other { item, .. } => return item,
        };
        b.finish(tag)
    }

    pub fn to_item(&self) -> Item {
        let mut b = Builder::new();
        match self {
            ManagedObject::SymmetricKey { key_block }
            | ManagedObject::PublicKey { key_block }
            | ManagedObject::PrivateKey { key_block } => b.push(key_block.to_item()),
            ManagedObject::Certificate {
                certificate_type,
                value,
            } => b
                .put(tags::CERTIFICATE_TYPE, certificate_type)
                .put(tags::CERTIFICATE_VALUE, value),
            ManagedObject::SecretData {
                secret_data_type,
                key_block,
            } => b
                .put(tags::SECRET_DATA_TYPE, secret_data_type)
                .push(key_block.to_item()),
            ManagedObject::OpaqueObject {
                opaque_data_type,
                value,
            } => b
                .put(tags::OPAQUE_DATA_TYPE, opaque_data_type)
                .put(tags::OPAQUE_DATA_VALUE, value),
            ManagedObject::Template { attributes } => {
                for a in attributes {
                    b.push(a.to_item());
                }
                &mut b
            }
            ManagedObject::Other { item, .. } => return item.clone(),
        };
        b.finish(self.tag())
    }
}

/// The byte string [`ManagedObject::from_item`] turns into the object's
/// material, where it reads as `KeyMaterial::Bytes` or an Opaque Data Value.
fn material_slot(item: &mut Item) -> Option<&mut SecretBytes> {
    fn child(item: &mut Item, tag: Tag) -> Option<&mut Item> {
        match &mut item.value {
            Value::Structure(children) => children.iter_mut().find(|c| c.tag == tag),
            _ => None,
        }
    }
    let keyed = [
        tags::SYMMETRIC_KEY,
        tags::SECRET_DATA,
        tags::PUBLIC_KEY,
        tags::PRIVATE_KEY,
    ];
    let slot = if keyed.contains(&item.tag) {
        let value = child(child(item, tags::KEY_BLOCK)?, tags::KEY_VALUE)?;
        child(value, tags::KEY_MATERIAL)?
    } else if item.tag == tags::OPAQUE_OBJECT {
        child(item, tags::OPAQUE_DATA_VALUE)?
    } else if item.tag == tags::CERTIFICATE {
        child(item, tags::CERTIFICATE_VALUE)?
    } else {
        return None;
    };
    match &mut slot.value {
        Value::ByteString(bytes) => Some(bytes),
        _ => None,
    }
}

/// Takes the one managed object out of a payload's fields (whichever object
/// tag it has). `None` if there is none.
pub(crate) fn take_object(f: &mut Fields<'_>) -> Result<Option<ManagedObject>, MessageError> {
    let mut found = None;
    for &(_, tag) in OBJECT_TAGS {
        if let Some(item) = f.opt_item(tag)? {
            if found.is_some() {
                return Err(MessageError::Duplicate {
                    parent: f.parent(),
                    tag,
                });
            }
            found = Some(ManagedObject::from_item(item)?);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::enums::KeyFormatType;

    fn aes_key() -> ManagedObject {
        ManagedObject::SymmetricKey {
            key_block: KeyBlock::raw(CryptographicAlgorithm::AES, SecretBytes::new(vec![0xA5; 32])),
        }
    }

    #[test]
    fn symmetric_key_round_trips_and_hides_material() {
        let key = aes_key();
        let item = key.to_item();
        assert_eq!(item.tag, tags::SYMMETRIC_KEY);
        let back = ManagedObject::from_item(&item).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.object_type(), ObjectType::SYMMETRIC_KEY);
        let kb = back.key_block().unwrap();
        assert_eq!(kb.cryptographic_length, Some(256));
        assert_eq!(kb.key_format_type, KeyFormatType::RAW);
        let shown = format!("{key:?} {item:?}");
        assert!(
            !shown.contains("165") && !shown.to_lowercase().contains("a5a5"),
            "{shown}"
        );
    }

    #[test]
    fn other_shapes_round_trip() {
        let transparent = ManagedObject::SecretData {
            secret_data_type: SecretDataType::PASSWORD,
            key_block: KeyBlock {
                key_format_type: KeyFormatType::TRANSPARENT_SYMMETRIC_KEY,
                key_compression_type: None,
                key_value: Some(KeyValue::Plain {
                    key_material: KeyMaterial::TransparentSymmetric {
                        key: SecretBytes::new(vec![1; 16]),
                    },
                    attributes: vec![Attribute::new("x-a", Value::TextString("b".into()))],
                }),
                cryptographic_algorithm: None,
                cryptographic_length: None,
                key_wrapping_data: None,
            },
        };
        let wrapped = ManagedObject::SymmetricKey {
            key_block: KeyBlock {
                key_format_type: KeyFormatType::RAW,
                key_compression_type: None,
                key_value: Some(KeyValue::Wrapped(SecretBytes::new(vec![2; 40]))),
                cryptographic_algorithm: Some(CryptographicAlgorithm::AES),
                cryptographic_length: Some(256),
                key_wrapping_data: Some(Item::structure(tags::KEY_WRAPPING_DATA, vec![])),
            },
        };
        let opaque = ManagedObject::OpaqueObject {
            opaque_data_type: OpaqueDataType(0x8000_0001),
            value: SecretBytes::new(vec![3; 5]),
        };
        let template = ManagedObject::Template {
            attributes: vec![Attribute::new("Object Group", Value::TextString("g".into()))],
        };
        let cert = ManagedObject::Certificate {
            certificate_type: CertificateType::X_509,
            value: SecretBytes::new(vec![0x30, 0x00]),
        };
        let public = ManagedObject::PublicKey {
            key_block: KeyBlock {
                key_format_type: KeyFormatType::PKCS_1,
                ..KeyBlock::raw(CryptographicAlgorithm::RSA, SecretBytes::new(vec![0x30, 0x00]))
            },
        };
        let private = ManagedObject::PrivateKey {
            key_block: KeyBlock {
                key_format_type: KeyFormatType::PKCS_8,
                ..KeyBlock::raw(CryptographicAlgorithm::RSA, SecretBytes::new(vec![0x30, 0x01]))
            },
        };
        let split = ManagedObject::Other {
            tag: tags::SPLIT_KEY,
            item: Item::structure(tags::SPLIT_KEY, vec![]),
        };
        for o in [
            aes_key(),
            transparent,
            wrapped,
            opaque,
            template,
            cert,
            public,
            private,
            split,
        ] {
            // The moving forms read and write exactly what the copying ones do.
            assert_eq!(o.clone().into_item(), o.to_item());
            assert_eq!(ManagedObject::from_tree(o.to_item()).unwrap(), o);
            assert_eq!(ManagedObject::from_item(&o.to_item()).unwrap(), o);
            assert_eq!(object_tag(o.object_type()), Some(o.tag()));
        }
        let dbg = format!(
            "{:?}",
            KeyMaterial::Other(Item::structure(tags::KEY_MATERIAL, vec![]))
        );
        assert_eq!(dbg, "Other(<redacted Structure>)");
        assert!(ManagedObject::from_item(&Item::structure(tags::KEY_BLOCK, vec![])).is_err());
    }
}
