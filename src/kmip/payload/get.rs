//! Get (KMIP 1.4 §4.11). vCenter sends only the Unique Identifier and expects a
//! Raw, unwrapped AES-256 Symmetric Key.

use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::object::{ManagedObject, take_object};
use crate::kmip::payload::Payload;
use crate::kmip::{KeyCompressionType, KeyFormatType, KeyWrapType, ObjectType, Operation, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub key_format_type: Option<KeyFormatType>,
    /// KMIP 1.4.
    pub key_wrap_type: Option<KeyWrapType>,
    pub key_compression_type: Option<KeyCompressionType>,
    pub key_wrapping_specification: Option<Item>,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::GET;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Request {
            unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
            key_format_type: f.opt(tags::KEY_FORMAT_TYPE)?,
            key_wrap_type: f.opt(tags::KEY_WRAP_TYPE)?,
            key_compression_type: f.opt(tags::KEY_COMPRESSION_TYPE)?,
            key_wrapping_specification: f.opt(tags::KEY_WRAPPING_SPECIFICATION)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .opt(tags::KEY_FORMAT_TYPE, &self.key_format_type)
            .opt(tags::KEY_WRAP_TYPE, &self.key_wrap_type)
            .opt(tags::KEY_COMPRESSION_TYPE, &self.key_compression_type)
            .opt_item(&self.key_wrapping_specification)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub object_type: ObjectType,
    pub unique_identifier: String,
    pub object: ManagedObject,
    pub extra: Vec<Item>,
}

impl Response {
    /// Like [`Payload::to_payload`], moving the key material into the payload
    /// instead of copying it.
    pub fn into_payload(self) -> Item {
        let mut b = Builder::new();
        b.put(tags::OBJECT_TYPE, &self.object_type)
            .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .push(self.object.into_item());
        for item in self.extra {
            b.push(item);
        }
        b.finish(tags::RESPONSE_PAYLOAD)
    }
}

impl Payload for Response {
    const OPERATION: Operation = Operation::GET;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        let object_type = f.req(tags::OBJECT_TYPE)?;
        let unique_identifier = f.req(tags::UNIQUE_IDENTIFIER)?;
        let object = take_object(&mut f)?.ok_or(MessageError::Missing {
            parent: Self::TAG,
            tag: crate::kmip::object::object_tag(object_type).unwrap_or(tags::SYMMETRIC_KEY),
        })?;
        if object.object_type() != object_type {
            return Err(MessageError::InvalidValue {
                tag: tags::OBJECT_TYPE,
                reason: "does not match the object",
            });
        }
        Ok(Response {
            object_type,
            unique_identifier,
            object,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::OBJECT_TYPE, &self.object_type)
            .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .push(self.object.to_item())
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::CryptographicAlgorithm;
    use crate::kmip::object::KeyBlock;
    use crate::kmip::payload::test_support::round_trip;
    use crate::secret::SecretBytes;

    #[test]
    fn round_trips() {
        round_trip(&Request {
            unique_identifier: Some("k1".into()),
            ..Request::default()
        });
        round_trip(&Request {
            unique_identifier: None,
            key_format_type: Some(KeyFormatType::RAW),
            key_wrap_type: Some(KeyWrapType(1)),
            key_compression_type: Some(KeyCompressionType(1)),
            key_wrapping_specification: Some(Item::structure(tags::KEY_WRAPPING_SPECIFICATION, vec![])),
            extra: vec![],
        });
        round_trip(&Response {
            object_type: ObjectType::SYMMETRIC_KEY,
            unique_identifier: "k1".into(),
            object: ManagedObject::SymmetricKey {
                key_block: KeyBlock::raw(CryptographicAlgorithm::AES, SecretBytes::new(vec![9; 32])),
            },
            extra: vec![],
        });
    }
}
